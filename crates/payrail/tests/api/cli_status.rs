//! `payrail status` exit codes: 0 found, 1 not found, 2 refused by the
//! server, 3 no answer from the API (unreachable, or not the API's answer).

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{payrail, spawn_app, text, Engine, TestApp};

fn status(app: &TestApp, url: &str, partner: &str, secret: Option<&str>) -> std::process::Output {
    let mut args = vec!["status", "dmt", "REF-1", "--url", url, "--registration-id", partner];
    if let Some(secret) = secret {
        args.extend(["--secret", secret]);
    }
    payrail(app, &args)
}

/// A server that answers every request with `answer`, bytes as given.
async fn garbage_server(answer: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

fn assert_no_answer(out: &std::process::Output, what: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{what}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: printed once: {stderr}");
    assert!(stderr.contains("no answer from the payrail API"), "{what}: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exit_codes_tell_found_not_found_refused_and_no_answer_apart() {
    let app = spawn_app(Engine::Sqlite).await;
    let partner = app.add_partner(true, &[]).await;
    let id = partner.name();
    let url = app.url("");
    let imported = app.data_dir.path().join("one.csv");
    std::fs::write(&imported, "reference_id,amount,account\nREF-1,100,20018575947\n").unwrap_or_else(|e| panic!("{e}"));
    let import = payrail(&app, &["import", "dmt", "--partner", &id, imported.to_str().expect("a UTF-8 path")]);
    assert!(import.status.success(), "{}", text(&import.stderr));

    assert_eq!(status(&app, &url, &id, Some(&partner.secret)).status.code(), Some(0), "found");
    let other = app.add_partner(true, &[]).await;
    assert_eq!(status(&app, &url, &other.name(), Some(&other.secret)).status.code(), Some(1), "not found");
    let refused = status(&app, &url, &id, None);
    assert_eq!(refused.status.code(), Some(2), "refused");
    assert!(text(&refused.stderr).contains("code 11"), "{}", text(&refused.stderr));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let unreachable = status(&app, &format!("http://127.0.0.1:{port}"), &id, Some(&partner.secret));
    assert_no_answer(&unreachable, "an unreachable port");

    let not_json = garbage_server("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello").await;
    assert_no_answer(&status(&app, &not_json, &id, Some(&partner.secret)), "a 200 that is not JSON");
    let proxy = garbage_server(
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 22\r\nConnection: close\r\n\r\n<h1>Bad Gateway</h1>\r\n",
    )
    .await;
    assert_no_answer(&status(&app, &proxy, &id, Some(&partner.secret)), "a proxy's error page");
    let not_http = garbage_server("garbage, not HTTP\r\n\r\n").await;
    assert_no_answer(&status(&app, &not_http, &id, Some(&partner.secret)), "not HTTP at all");

    // Not asked at all (the secret file is missing): neither "not found" nor "no answer".
    let args = ["status", "dmt", "REF-1", "--url", &url, "--registration-id", &id, "--secret-file", "/no/such/file"];
    let not_asked = payrail(&app, &args);
    assert_eq!(not_asked.status.code(), Some(4), "{}", text(&not_asked.stderr));
    assert!(text(&not_asked.stderr).contains("/no/such/file"), "{}", text(&not_asked.stderr));
}
