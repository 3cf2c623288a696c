//! The `payrail` binary's operator and partner commands, against the store
//! a running test server uses.

use serde_json::json;

use crate::both_engines;
use crate::helpers::{payrail, spawn_app, text, Engine, TestPartner};

both_engines!(
    a_partner_added_by_the_cli_is_honoured_by_the_running_server,
    import_is_all_or_nothing_and_names_the_bad_line,
    import_refuses_a_file_imported_before,
    json_lines_import_and_the_status_command_agree,
);

/// The SQLite data directory and every file in it are private to their
/// owner: they hold remitters' names, mobiles and account numbers.
#[tokio::test]
async fn the_sqlite_data_directory_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = parent.path().join("data");
    let key = "11".repeat(32);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payrail"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["partner", "add", "--name", "Private Ltd", "--json"])
        .env("PAYRAIL_MASTER_KEY", &key)
        .env_remove("PAYRAIL_DATABASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("run payrail: {e}"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
    };
    assert_eq!(mode(&dir), 0o700, "the data directory");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(files >= 1, "payrail.db was made");
    assert!(dir.join("payrail.db").exists());
}

async fn a_partner_added_by_the_cli_is_honoured_by_the_running_server(engine: Engine) {
    let app = spawn_app(engine).await;
    let out = payrail(&app, &["partner", "add", "--name", "Acme Fintech", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    let id = created["registration_id"].as_str().expect("registration_id is a string").to_owned();
    let secret = created["secret"].as_str().expect("secret is a string").to_owned();
    assert!(id.starts_with("AOP-") && secret.len() >= 32, "{created}");

    // The token command makes a token the server accepts.
    let token_out = payrail(&app, &["token", "--registration-id", &id, "--secret", &secret]);
    let token = text(&token_out.stdout).trim().to_owned();
    let accepted = app.dmt_status(&id, "ref", Some(&token)).await;
    assert_eq!(accepted.status, 200, "a token from `payrail token`: {}", accepted.body);
    assert_eq!(app.dmt_status(&id, "ref", None).await.status, 401, "tokens are required by default");

    let listed = payrail(&app, &["partner", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert!(listed.as_array().is_some_and(|a| a.iter().any(|p| p["registration_id"] == id.as_str())));
    assert!(!text(&payrail(&app, &["partner", "list"]).stdout).contains(&secret), "list never shows secrets");

    assert!(payrail(&app, &["partner", "suspend", &id]).status.success());
    let partner =
        TestPartner { id: payrail::domain::RegistrationId::parse(&id).unwrap_or_else(|e| panic!("{e}")), secret };
    assert_eq!(app.dmt_status(&id, "ref", Some(&partner.token())).await.status, 401);
    assert!(payrail(&app, &["partner", "activate", &id]).status.success());
    assert_eq!(app.dmt_status(&id, "ref", Some(&partner.token())).await.status, 200);

    let no_token =
        payrail(&app, &["partner", "add", "--name", "Open", "--no-token", "--allow-ip", "127.0.0.1/32", "--json"]);
    let open: serde_json::Value = serde_json::from_slice(&no_token.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        app.dmt_status(open["registration_id"].as_str().expect("registration_id is a string"), "ref", None)
            .await
            .status,
        200
    );
}

const GOOD_CSV: &str = "reference_id,amount,account,status,utr,created_at\n\
    IMP-1,100,20018575947,success,101306003674,2021-01-15 18:30:00\n\
    IMP-2,2500.50,20018575948,sent_to_bank,,\n\
    IMP-3,75,20018575949,in_process,,\n";

async fn import_is_all_or_nothing_and_names_the_bad_line(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &[]).await;
    let file = app.data_dir.path().join("bad.csv");
    let bad = format!("{GOOD_CSV}IMP-4,12.345,20018575950,in_process,,\n");
    std::fs::write(&file, bad).unwrap_or_else(|e| panic!("{e}"));
    let out = payrail(&app, &["import", "dmt", "--partner", &partner.name(), file.to_str().expect("a UTF-8 path")]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("line 5") && stderr.contains("amount"), "{stderr}");
    assert_eq!(app.store.counts().await.unwrap_or_else(|e| panic!("{e}")).0, 0, "a bad row rejects the whole file");

    for (content, expected) in [
        ("reference_id,amount,acount\nX,1,123456\n", "unknown column \"acount\""),
        ("reference_id,amount,account,status\nX,1,123456,success\n", "utr is required"),
        ("reference_id,amount,account\nX,1,123456\nX,2,123456\n", "line 3: reference \"X\" repeats line 2"),
        ("reference_id,amount,account,created_at\nX,1,123456,2021-02-30 00:00:00\n", "created_at"),
    ] {
        std::fs::write(&file, content).unwrap_or_else(|e| panic!("{e}"));
        let out = payrail(&app, &["import", "dmt", "--partner", &partner.name(), file.to_str().expect("a UTF-8 path")]);
        assert!(!out.status.success(), "{content}");
        assert!(text(&out.stderr).contains(expected), "{content}: {}", text(&out.stderr));
    }
    let no_partner = payrail(&app, &["import", "dmt", "--partner", "AOP-999999", file.to_str().expect("a UTF-8 path")]);
    assert!(text(&no_partner.stderr).contains("no partner AOP-999999"), "{}", text(&no_partner.stderr));
    assert_eq!(app.store.counts().await.unwrap_or_else(|e| panic!("{e}")).0, 0);
}

async fn import_refuses_a_file_imported_before(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &[]).await;
    let file = app.data_dir.path().join("good.csv");
    std::fs::write(&file, GOOD_CSV).unwrap_or_else(|e| panic!("{e}"));
    let path = file.to_str().expect("a UTF-8 path");
    let first = payrail(&app, &["import", "dmt", "--partner", &partner.name(), path]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stdout).contains("Imported 3 rows"), "{}", text(&first.stdout));

    let again = payrail(&app, &["import", "dmt", "--partner", &partner.name(), path]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("line 2: reference \"IMP-1\" already exists"), "{}", text(&again.stderr));
    assert_eq!(app.store.counts().await.unwrap_or_else(|e| panic!("{e}")).0, 3, "nothing inserted twice");

    let seeded = app.dmt_status(&partner.name(), "IMP-1", None).await.json();
    assert_eq!(seeded["tds"], "0.19", "charges follow the transaction date, not the import date");
    assert_eq!(app.dmt_status(&partner.name(), "IMP-2", None).await.json()["amount"], "2500.50");
}

async fn json_lines_import_and_the_status_command_agree(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let lines = [
        json!({"reference_id": "BILL-1", "operator_name": "Mahanagar Gas Limited", "ca_number": "210000123", "amount": "845.50", "status": "success", "operator_id": "BB0001"}),
        json!({"reference_id": "BILL-2", "operator_name": "Delhi Jal Board", "ca_number": "KNO-77", "amount": 300, "status": "refunded", "refund_txn_id": "901", "refunded_at": "2025-01-02 10:00:00", "created_at": "2025-01-02 09:00:00"}),
    ];
    let file = app.data_dir.path().join("bills.jsonl");
    std::fs::write(&file, lines.iter().map(|l| l.to_string() + "\n").collect::<String>())
        .unwrap_or_else(|e| panic!("{e}"));
    let out = payrail(&app, &["import", "bbps", "--partner", &partner.name(), file.to_str().expect("a UTF-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let url = app.url("");
    let status = |reference: &str| {
        payrail(
            &app,
            &[
                "status",
                "bbps",
                reference,
                "--url",
                &url,
                "--registration-id",
                &partner.name(),
                "--secret",
                &partner.secret,
            ],
        )
    };
    let found = status("BILL-2");
    assert!(found.status.success(), "{}{}", text(&found.stdout), text(&found.stderr));
    let body: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["refundtxnid"], "901");
    assert_eq!(body["daterefunded"], "2025-01-02 10:00:00");
    assert_eq!(body["refunded"], "1");
    assert_eq!(status("BILL-404").status.code(), Some(1), "not found exits 1");
    let refused = payrail(&app, &["status", "dmt", "X", "--url", &url, "--registration-id", &partner.name()]);
    assert_eq!(refused.status.code(), Some(2), "no secret, token required: refused");
    assert!(text(&refused.stderr).contains("code 11"), "{}", text(&refused.stderr));
}
