//! `--config FILE` and `payrail config check`, through the binary: the
//! file's values are used, the environment beats the file, a flag beats the
//! environment, and a bad file is refused with the key it got wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::helpers::{eventually, free_port, text, Running};

const KEY: &str = "4242424242424242424242424242424242424242424242424242424242424242";

/// `payrail ARGS…` with none of the caller's PAYRAIL_ variables, and these.
fn payrail_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payrail"));
    command.args(args);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("PAYRAIL_")) {
        command.env_remove(name);
    }
    command.env("PAYRAIL_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    payrail_command(args, env).output().unwrap_or_else(|e| panic!("run payrail: {e}"))
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap_or_else(|e| panic!("{e}"));
    path.to_str().expect("a UTF-8 path").to_owned()
}

fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn example() -> String {
    format!("{}/../../docs/payrail.example.toml", env!("CARGO_MANIFEST_DIR"))
}

/// A partner added through `payrail` lands in the data directory the settings name.
#[test]
fn the_files_data_dir_is_used_and_the_environment_and_a_flag_override_it() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (from_file, from_env, from_flag) =
        (path(tmp.path(), "file"), path(tmp.path(), "env"), path(tmp.path(), "flag"));
    let config = write(tmp.path(), "payrail.toml", &format!("data_dir = {:?}\n", from_file.to_str().expect("UTF-8")));
    let add = ["partner", "add", "--name", "Config Ltd", "--json"];
    let db = |dir: &Path| dir.join("payrail.db").exists();

    let out = run(&[&["--config", &config][..], &add].concat(), &[("PAYRAIL_MASTER_KEY", KEY)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(db(&from_file) && !db(&from_env) && !db(&from_flag), "the file's data_dir");

    let env = [("PAYRAIL_MASTER_KEY", KEY), ("PAYRAIL_DATA_DIR", from_env.to_str().expect("UTF-8"))];
    let out = run(&[&["--config", &config][..], &add].concat(), &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(db(&from_env) && !db(&from_flag), "PAYRAIL_DATA_DIR beats the file");

    let flag = from_flag.to_str().expect("UTF-8");
    let out = run(&[&["--config", &config, "--data-dir", flag][..], &add].concat(), &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(db(&from_flag), "--data-dir beats PAYRAIL_DATA_DIR");

    // PAYRAIL_CONFIG names the file as --config does (its partner joins the first).
    let out = run(&add, &[("PAYRAIL_MASTER_KEY", KEY), ("PAYRAIL_CONFIG", &config)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = run(&["--config", &config, "partner", "list", "--json"], &[("PAYRAIL_MASTER_KEY", KEY)]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
}

/// Starts `payrail serve` with these arguments and waits for its HTTP answer on `port`.
async fn serve_answers_on(port: u16, args: &[&str], env: &[(&str, &str)]) -> u16 {
    let mut command = payrail_command(args, env);
    let _server = Running(
        command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("run payrail: {e}")),
    );
    let url = format!("http://127.0.0.1:{port}/api/AOP/DMTV1/TransactionStatus");
    let http = reqwest::Client::new();
    eventually(30, "the server answers", || async {
        let answer = http.post(&url).body("{}").send().await.ok()?;
        Some(answer.status().as_u16())
    })
    .await
}

/// `[serve] listen` from the file, PAYRAIL_LISTEN over it, `--listen` over both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_listens_where_the_file_says_unless_the_environment_or_a_flag_says_otherwise() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let config = write(tmp.path(), "payrail.toml", &format!("[serve]\nlisten = \"127.0.0.1:{file_port}\"\n"));
    let data = |name: &str| path(tmp.path(), name).to_str().expect("UTF-8").to_owned();
    let key = ("PAYRAIL_MASTER_KEY", KEY);

    let (one, two, three) = (data("one"), data("two"), data("three"));
    let refused = 400..500; // an empty status request, answered by payrail
    assert!(refused
        .contains(&serve_answers_on(file_port, &["--config", &config, "--data-dir", &one, "serve"], &[key]).await));
    let env_listen = format!("127.0.0.1:{env_port}");
    let env = [key, ("PAYRAIL_LISTEN", env_listen.as_str())];
    assert!(
        refused.contains(&serve_answers_on(env_port, &["--config", &config, "--data-dir", &two, "serve"], &env).await)
    );
    let flag_listen = format!("127.0.0.1:{flag_port}");
    let args = ["--config", &config, "--data-dir", &three, "serve", "--listen", &flag_listen];
    assert!(refused.contains(&serve_answers_on(flag_port, &args, &env).await));
}

#[test]
fn an_unknown_key_is_refused_naming_the_key_and_the_file() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = write(tmp.path(), "payrail.toml", "[serve]\nrate_limit = 5\nrate_limt = 5\n");
    let data = path(tmp.path(), "data");
    for command in [&["serve"][..], &["config", "check"][..]] {
        let args = [&["--config", &config, "--data-dir", data.to_str().expect("UTF-8")][..], command].concat();
        let out = run(&args, &[("PAYRAIL_MASTER_KEY", KEY)]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(stderr.contains("unknown key `serve.rate_limt`") && stderr.contains(&config), "{stderr}");
    }
    assert!(!data.exists(), "nothing was started");

    let top = write(tmp.path(), "top.toml", "listen = \"127.0.0.1:1\"\n");
    let out = run(&["--config", &top, "config", "check"], &[]);
    assert!(text(&out.stderr).contains("`listen`: it is a serve setting"), "{}", text(&out.stderr));
    let secret = write(tmp.path(), "secret.toml", "master_key = \"42\"\n");
    let out = run(&["--config", &secret, "config", "check"], &[]);
    assert!(!out.status.success() && text(&out.stderr).contains("set PAYRAIL_MASTER_KEY"), "{}", text(&out.stderr));
}

#[test]
fn a_value_of_the_wrong_type_is_refused_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (content, expected) in [
        ("[serve]\nrate_limit = \"fast\"\n", "`serve.rate_limit`: expected an integer, found a string"),
        ("[serve]\nmax_connections = 1.5\n", "`serve.max_connections`: expected an integer, found a number"),
        ("[serve]\ntrusted_proxy = [\"10.0.0.0/8\", \"a proxy\"]\n", "`serve.trusted_proxy`: \"a proxy\" is not valid"),
        ("[serve]\nno_console = \"yes\"\n", "`serve.no_console`: expected true or false, found a string"),
        ("[serve]\nprovider = \"pigeon\"\n", "`serve.provider`: \"pigeon\" is not valid: expected one of manual"),
        ("data_dir = { path = \"/srv\" }\n", "`data_dir`: expected a string, found a table"),
        ("data_dir = \"/srv\"\ndata_dir = \"/var\"\n", "not valid TOML"),
    ] {
        let config = write(tmp.path(), "payrail.toml", content);
        let out = run(&["--config", &config, "config", "check"], &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{content}: {stderr}");
        assert!(stderr.contains(expected) && stderr.contains(&config), "{content}: {stderr}");
    }
}

#[test]
fn config_check_shows_each_settings_source_and_masks_the_database_password() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let content = "database_url = \"postgres://payrail:hunter2@db.internal:5432/payrail\"\n\
                   [serve]\nrate_limit = 7\nauth_failure_limit = 9\ntrusted_proxy = [\"10.0.0.0/8\", \"::1/128\"]\n";
    let config = write(tmp.path(), "payrail.toml", content);
    let env = [("PAYRAIL_AUTH_FAILURE_LIMIT", "3")];
    let out = run(&["--config", &config, "--data-dir", "/srv/payrail", "config", "check"], &env);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!stdout.contains("hunter2"), "the password is masked: {stdout}");
    for line in [
        format!("# {config}: valid"),
        "database_url = \"postgres://payrail:***@db.internal:5432/payrail\"  # file".to_owned(),
        "data_dir = \"/srv/payrail\"  # flag --data-dir".to_owned(),
        "[serve]".to_owned(),
        "rate_limit = 7  # file".to_owned(),
        "auth_failure_limit = 3  # env PAYRAIL_AUTH_FAILURE_LIMIT".to_owned(),
        "trusted_proxy = [\"10.0.0.0/8\", \"::1/128\"]  # file".to_owned(),
        "listen = \"127.0.0.1:8080\"  # default".to_owned(),
        "# sms_gateway_url: not set".to_owned(),
    ] {
        assert!(stdout.lines().any(|l| l == line), "no line {line:?} in:\n{stdout}");
    }
    // Help shows the file's values as defaults, but not its secrets.
    let help = run(&["--config", &config, "partner", "list", "--help"], &[]);
    assert!(help.status.success() && !text(&help.stdout).contains("hunter2"), "{}", text(&help.stdout));
    let help = run(&["--config", &config, "serve", "--help"], &[]);
    assert!(text(&help.stdout).contains("[default: 7]"), "the file's rate_limit: {}", text(&help.stdout));

    // What it prints is itself a config file that `config check` takes.
    let again = write(tmp.path(), "again.toml", &stdout);
    let out = run(&["--config", &again, "config", "check"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn config_check_refuses_a_setting_serve_would_refuse() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (content, expected) in [
        ("[serve]\nconsole_idle_minutes = 0\n", "--console-idle-minutes must be from 1 to 1440"),
        ("[serve]\npoll_schedule = \"soon\"\n", "--poll-schedule"),
        ("database_url = \"mysql://db/payrail\"\n", "--database-url must be a postgres:// URL"),
    ] {
        let config = write(tmp.path(), "payrail.toml", content);
        let out = run(&["--config", &config, "config", "check"], &[]);
        assert_eq!(out.status.code(), Some(1), "{content}");
        assert!(text(&out.stderr).contains(expected), "{content}: {}", text(&out.stderr));
    }
}

#[test]
fn the_example_config_in_docs_passes_config_check() {
    let out = run(&["--config", &example(), "config", "check"], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("provider = \"manual\"  # file"), "{stdout}");
    assert!(stdout.contains("data_dir = \"/var/lib/payrail\"  # file"), "{stdout}");
}
