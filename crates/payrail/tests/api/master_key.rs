//! The master key: checked against the store's key check value by every
//! command and the server before anything is written, and given only
//! through the environment or a private file, never on the command line.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use crate::both_engines;
use crate::helpers::{spawn_app, text, Engine, TestApp};

both_engines!(a_different_master_key_is_refused_by_every_command_and_the_server_before_writing);

/// `payrail ARGS…` on the app's store with no master key of the test's own.
fn command(app: &TestApp, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payrail"));
    command.arg("--data-dir").arg(app.data_dir.path()).args(args);
    command.env_remove("PAYRAIL_MASTER_KEY").env_remove("PAYRAIL_MASTER_KEY_FILE").env_remove("PAYRAIL_DATABASE_URL");
    if let Some(url) = &app.database_url {
        command.env("PAYRAIL_DATABASE_URL", url);
    }
    command
}

fn with_key(app: &TestApp, key: &str, args: &[&str]) -> std::process::Output {
    command(app, args).env("PAYRAIL_MASTER_KEY", key).output().unwrap_or_else(|e| panic!("{e}"))
}

fn key_file(app: &TestApp, name: &str, key: &str, mode: u32) -> String {
    let path = app.data_dir.path().join(name);
    std::fs::write(&path, format!("{key}\n")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("{e}"));
    path.to_str().expect("a UTF-8 path").to_owned()
}

fn assert_wrong_key(out: &std::process::Output, what: &str) {
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{what} succeeded with a wrong key: {}", text(&out.stdout));
    assert!(stderr.contains("not the one this store was set up with"), "{what}: {stderr}");
}

async fn a_different_master_key_is_refused_by_every_command_and_the_server_before_writing(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let wrong = "ab".repeat(32);
    let before = app.store.list_partners().await.unwrap_or_else(|e| panic!("{e}")).len();

    assert_wrong_key(&with_key(&app, &wrong, &["partner", "add", "--name", "Wrong Key Ltd"]), "partner add");
    assert_wrong_key(&with_key(&app, &wrong, &["partner", "rotate-secret", &partner.name()]), "rotate-secret");
    assert_wrong_key(&with_key(&app, &wrong, &["wallet", "topup", &partner.name(), "100"]), "wallet topup");
    let file = key_file(&app, "wrong.key", &wrong, 0o600);
    let from_file = command(&app, &["--master-key-file", &file, "partner", "add", "--name", "Wrong Key Ltd"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_wrong_key(&from_file, "partner add --master-key-file");
    assert_eq!(app.store.list_partners().await.unwrap_or_else(|e| panic!("{e}")).len(), before, "nothing added");
    assert_eq!(app.dmt_status(&partner.name(), "ref", Some(&partner.token())).await.status, 200, "secret unchanged");
    let balance = app.store.wallet_balance(partner.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(balance, payrail::domain::Paise::ZERO, "no top-up written");

    // The server refuses to start on a wrong key.
    let serve = command(&app, &["serve", "--listen", "127.0.0.1:0"])
        .env("PAYRAIL_MASTER_KEY", &wrong)
        .env("PAYRAIL_LOG", "error")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_wrong_key(&serve, "serve");

    // The right key, from a private file, works; the partner it adds answers.
    let right = key_file(&app, "right.key", &app.master_key_hex, 0o400);
    let added = command(&app, &["--master-key-file", &right, "partner", "add", "--name", "Right Ltd", "--json"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(added.status.success(), "{}", text(&added.stderr));
    let created: serde_json::Value = serde_json::from_slice(&added.stdout).unwrap_or_else(|e| panic!("{e}"));
    let (id, secret) =
        (created["registration_id"].as_str().expect("registration_id is a string"), created["secret"].as_str());
    let token = payrail_client::sign_token(
        secret.expect("secret is a string").as_bytes(),
        &payrail_client::TokenClaims::now(id),
    );
    assert_eq!(app.dmt_status(id, "ref", Some(&token)).await.status, 200, "its secret opens: not a 500");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_made_with_one_key_refuses_another_from_its_first_use_on() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = |key: &str, name: &str| {
        Command::new(env!("CARGO_BIN_EXE_payrail"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["partner", "add", "--name", name])
            .env("PAYRAIL_MASTER_KEY", key)
            .env_remove("PAYRAIL_MASTER_KEY_FILE")
            .env_remove("PAYRAIL_DATABASE_URL")
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let first = run(&"11".repeat(32), "First");
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_wrong_key(&run(&"22".repeat(32), "Second"), "a second key on a store made with the first");
    assert!(run(&"11".repeat(32), "Third").status.success(), "the first key still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_is_not_a_command_line_value_and_its_file_must_be_private() {
    let app = spawn_app(Engine::Sqlite).await;
    let flag = command(&app, &["--master-key", &app.master_key_hex, "partner", "list"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!flag.status.success(), "--master-key HEX is gone");
    assert!(text(&flag.stderr).contains("unexpected argument"), "{}", text(&flag.stderr));

    for mode in [0o644, 0o640, 0o604, 0o700] {
        let file = key_file(&app, &format!("key-{mode:o}"), &app.master_key_hex, mode);
        let out = command(&app, &["--master-key-file", &file, "partner", "add", "--name", "Leaky"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "mode {mode:o} accepted");
        assert!(stderr.contains(&format!("mode {mode:04o}")) && stderr.contains("chmod 600"), "{stderr}");
    }

    // No key at all: the message says how to make one, not to run the demo.
    let bare = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_payrail"))
        .arg("--data-dir")
        .arg(bare.path())
        .args(["partner", "add", "--name", "Keyless"])
        .env_remove("PAYRAIL_MASTER_KEY")
        .env_remove("PAYRAIL_MASTER_KEY_FILE")
        .env_remove("PAYRAIL_DATABASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("openssl rand -hex 32") && stderr.contains("PAYRAIL_MASTER_KEY"), "{stderr}");
    assert!(stderr.contains("--master-key-file") && !stderr.contains("--demo"), "{stderr}");
}
