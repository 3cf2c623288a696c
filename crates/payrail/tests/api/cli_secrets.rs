//! Secrets handed to the `payrail` binary without a command line that `ps`
//! shows: from the environment, a file or standard input; and `--flag=VALUE`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};

use crate::helpers::{spawn_app, text, Engine, TestApp};

/// `payrail ARGS…` on the app's store, with nothing of the test's own
/// environment that names a secret.
fn command(app: &TestApp, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payrail"));
    command.arg("--data-dir").arg(app.data_dir.path()).args(args);
    command.env("PAYRAIL_MASTER_KEY", &app.master_key_hex).env_remove("PAYRAIL_DATABASE_URL");
    command.env_remove("PAYRAIL_PARTNER_SECRET").env_remove("PAYRAIL_CALLBACK_SECRET");
    command
}

/// Runs `command` with `stdin` written to its standard input.
fn run_with_stdin(mut command: Command, stdin: &str) -> std::process::Output {
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("run payrail: {e}"));
    let mut input = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    input.write_all(stdin.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    drop(input);
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

fn output(mut command: Command) -> std::process::Output {
    command.output().unwrap_or_else(|e| panic!("run payrail: {e}"))
}

/// A token printed by `payrail token` is accepted by the server.
async fn assert_accepted(app: &TestApp, partner: &str, out: &std::process::Output, how: &str) {
    assert!(out.status.success(), "{how}: {}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    let answer = app.dmt_status(partner, "ref", Some(&token)).await;
    assert_eq!(answer.status, 200, "{how}: {}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_command_takes_its_secret_from_stdin_a_file_the_environment_or_flag_equals_value() {
    let app = spawn_app(Engine::Sqlite).await;
    let partner = app.add_partner(true, &[]).await;
    let id = partner.name();
    let base = ["token", "--registration-id", id.as_str()];

    let stdin = run_with_stdin(command(&app, &[&base[..], &["--secret-file", "-"]].concat()), &partner.secret);
    assert_accepted(&app, &id, &stdin, "--secret-file -").await;

    let file = app.data_dir.path().join("partner.secret");
    std::fs::write(&file, format!("{}\n", partner.secret)).unwrap_or_else(|e| panic!("{e}"));
    let path = file.to_str().expect("a UTF-8 path");
    assert_accepted(&app, &id, &output(command(&app, &[&base[..], &["--secret-file", path]].concat())), "file").await;

    let mut from_env = command(&app, &base);
    from_env.env("PAYRAIL_PARTNER_SECRET", &partner.secret);
    assert_accepted(&app, &id, &output(from_env), "PAYRAIL_PARTNER_SECRET").await;

    let equals = format!("--secret={}", partner.secret);
    assert_accepted(&app, &id, &output(command(&app, &[&base[..], &[equals.as_str()]].concat())), "--secret=").await;

    // A value that starts with '-' is read as the value, not as a flag.
    let dashed = output(command(&app, &[&base[..], &["--secret=-looks-like-a-flag"]].concat()));
    assert!(dashed.status.success(), "{}", text(&dashed.stderr));
    let refused = app.dmt_status(&id, "ref", Some(text(&dashed.stdout).trim())).await;
    assert_eq!(refused.status, 401, "signed with the wrong secret: {}", refused.body);

    let none = output(command(&app, &base));
    assert!(!none.status.success(), "no secret at all is refused");
    let empty = run_with_stdin(command(&app, &[&base[..], &["--secret-file", "-"]].concat()), "\n");
    assert!(!empty.status.success() && text(&empty.stderr).contains("empty"), "{}", text(&empty.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_command_takes_its_secret_from_a_file_or_the_environment() {
    let app = spawn_app(Engine::Sqlite).await;
    let partner = app.add_partner(true, &[]).await;
    let id = partner.name();
    let url = app.url("");
    let base = ["status", "dmt", "NO-SUCH-REF", "--url", url.as_str(), "--registration-id", id.as_str()];

    // Not found (1) needs an authenticated request; without the secret it is refused (2).
    assert_eq!(output(command(&app, &base)).status.code(), Some(2), "no secret: refused");
    let stdin = run_with_stdin(command(&app, &[&base[..], &["--secret-file", "-"]].concat()), &partner.secret);
    assert_eq!(stdin.status.code(), Some(1), "--secret-file -: {}", text(&stdin.stderr));
    let mut from_env = command(&app, &base);
    from_env.env("PAYRAIL_PARTNER_SECRET", &partner.secret);
    let from_env = output(from_env);
    assert_eq!(from_env.status.code(), Some(1), "environment: {}", text(&from_env.stderr));
    let equals = format!("--secret={}", partner.secret);
    assert_eq!(output(command(&app, &[&base[..], &[equals.as_str()]].concat())).status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_listen_reads_its_secret_from_stdin_and_checks_signatures_with_it() {
    let app = spawn_app(Engine::Sqlite).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut listener = command(&app, &["callback", "listen", "--listen", &listen, "--secret-file", "-"]);
    listener.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = listener.spawn().unwrap_or_else(|e| panic!("{e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    stdin.write_all(b"callback-secret-123\n").unwrap_or_else(|e| panic!("{e}"));
    drop(stdin);
    let mut lines = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("no stdout"))).lines();
    let mut next_line = move || lines.next().expect("the listener printed a line").expect("a readable line");
    let first = tokio::task::block_in_place(&mut next_line);
    assert!(first.contains("listening"), "{first}");

    let body = r#"{"event":"test"}"#;
    let http = reqwest::Client::new();
    for (secret, expected) in [("callback-secret-123", "signature ok"), ("another", "SIGNATURE DOES NOT VERIFY")] {
        let ts = 1_700_000_000;
        let signature = payrail::domain::event::signature(secret.as_bytes(), ts, body);
        http.post(format!("http://{listen}/"))
            .header("x-payrail-timestamp", ts.to_string())
            .header("x-payrail-signature", signature)
            .header("x-payrail-event-id", "1")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let line = tokio::task::block_in_place(&mut next_line);
        assert!(line.contains(expected), "{secret}: {line}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
