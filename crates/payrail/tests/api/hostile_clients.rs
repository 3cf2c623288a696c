//! Slow, idle, flooding and ambiguous clients, spoken to in raw TCP bytes:
//! they cannot exhaust the server, and ambiguous requests are refused.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::both_engines;
use crate::helpers::{eventually, spawn_app, spawn_app_with, text, AppOptions, Engine, ADMIN_TOKEN};
use payrail::http::connection::ConnectionLimits;

both_engines!(
    ambiguous_framing_is_refused_with_code_8,
    a_malformed_chunk_is_a_400_that_says_so,
    two_token_headers_are_a_401,
    a_declared_body_over_64_kib_is_refused_before_it_is_sent,
    slow_headers_idle_connections_and_slow_bodies_are_cut,
    an_address_that_keeps_failing_authentication_is_refused_without_a_store_lookup,
    past_the_connection_cap_new_connections_wait_for_a_free_slot,
);

const STATUS_PATH: &str = "/api/AOP/DMTV1/TransactionStatus";

/// A raw answer: status code, head (lower-cased), body.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// Reads one response (head, then `Content-Length` bytes), within 10 s.
async fn read_response(stream: &mut TcpStream) -> Raw {
    let read = async {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = text(&bytes[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if bytes.len() >= end + 4 + length {
                    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                    return Raw { status, head, body: text(&bytes[end + 4..end + 4 + length]) };
                }
            }
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            assert!(n > 0, "connection closed before a full response: {:?}", text(&bytes));
            bytes.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.unwrap_or_else(|_| panic!("no response within 10 s"))
}

/// Sends `bytes` on a fresh connection and reads the answer.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Raw {
    let mut stream = connect(addr).await;
    stream.write_all(bytes).await.unwrap_or_else(|e| panic!("write: {e}"));
    read_response(&mut stream).await
}

/// Waits (at most `secs`) for the server to close `stream`; how long it took.
async fn closed_within(stream: &mut TcpStream, secs: u64) -> Duration {
    let started = Instant::now();
    let mut sink = [0u8; 1024];
    let closed = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(secs), closed)
        .await
        .unwrap_or_else(|_| panic!("connection still open after {secs} s"));
    started.elapsed()
}

fn status_body(partner: &str) -> String {
    json!({"ReferanceID": "REF-1", "RegistrationID": partner}).to_string()
}

fn assert_refused(case: &str, answer: &Raw, status: u16, code: i64, needle: &str) {
    assert_eq!(answer.status, status, "{case}: {answer:?}");
    let json = answer.json();
    assert_eq!((json["status"].as_bool(), json["response_code"].as_i64()), (Some(false), Some(code)), "{case}");
    let message = json["message"].as_str().expect("message is a string");
    assert!(message.contains(needle), "{case}: message {message:?} should say {needle:?}");
}

async fn ambiguous_framing_is_refused_with_code_8(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &["127.0.0.1/32"]).await;
    let body = status_body(&partner.name());
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let head = |headers: &str| format!("POST {STATUS_PATH} HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
    let cases = [
        ("both lengths", head(&format!("Content-Length: {}\r\nTransfer-Encoding: chunked\r\n", body.len())), &chunked),
        (
            "both, coding first",
            head(&format!("Transfer-Encoding: chunked\r\nContent-Length: {}\r\n", body.len())),
            &chunked,
        ),
        ("gzip then chunked", head("Transfer-Encoding: gzip, chunked\r\n"), &chunked),
        ("chunked twice", head("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), &chunked),
        ("identity", head(&format!("Transfer-Encoding: identity\r\nContent-Length: {}\r\n", body.len())), &body),
        ("a coding not ending in chunked", head("Transfer-Encoding: chunked, gzip\r\n"), &chunked),
    ];
    for (case, head, body) in cases {
        let answer = exchange(app.addr, format!("{head}{body}").as_bytes()).await;
        assert_refused(case, &answer, 400, 8, "Transfer-Encoding");
        assert!(answer.head.contains("connection: close"), "{case}: the connection is not reused: {}", answer.head);
    }
    // Plain chunked and plain Content-Length are served.
    let plain = exchange(app.addr, format!("{}{chunked}", head("Transfer-Encoding: chunked\r\n")).as_bytes()).await;
    assert_eq!((plain.status, plain.json()["response_code"].as_i64()), (200, Some(2)), "{plain:?}");
    let sized = format!("{}{body}", head(&format!("Content-Length: {}\r\n", body.len())));
    assert_eq!(exchange(app.addr, sized.as_bytes()).await.status, 200);
}

async fn a_malformed_chunk_is_a_400_that_says_so(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &["127.0.0.1/32"]).await;
    let body = status_body(&partner.name());
    let request = format!(
        "POST {STATUS_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{body}\r\n0\r\n\r\n"
    );
    let answer = exchange(app.addr, request.as_bytes()).await;
    assert_refused("bad chunk size", &answer, 400, 8, "chunked");
    assert!(!answer.body.contains("64 KiB"), "{}", answer.body);
}

async fn two_token_headers_are_a_401(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let body = status_body(&partner.name());
    let send = |tokens: Vec<String>| {
        let headers: String = tokens.iter().map(|t| format!("Token: {t}\r\n")).collect();
        let request =
            format!("POST {STATUS_PATH} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\n\r\n{body}", body.len());
        async move { exchange(app.addr, request.as_bytes()).await }
    };
    let twice = send(vec![partner.token(), partner.token()]).await;
    assert_refused("two valid tokens", &twice, 401, 10, "Invalid JWT");
    let one_bad = send(vec![partner.token(), "garbage".into()]).await;
    assert_refused("a valid and a bad token", &one_bad, 401, 10, "Invalid JWT");
    let once = send(vec![partner.token()]).await;
    assert_eq!(once.status, 200, "{once:?}");
}

async fn a_declared_body_over_64_kib_is_refused_before_it_is_sent(engine: Engine) {
    let app = spawn_app(engine).await;
    for path in [STATUS_PATH, "/api/AOP/BillPaymentPaybill", "/admin/v1/dmt"] {
        let mut stream = connect(app.addr).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 100000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
        // Not a byte of the body is sent: the answer must come anyway.
        let answer = read_response(&mut stream).await;
        assert_refused(path, &answer, 400, 8, "64 KiB");
    }
}

fn short_limits() -> AppOptions {
    let connections = ConnectionLimits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        ..ConnectionLimits::default()
    };
    AppOptions { connections: Some(connections), ..AppOptions::default() }
}

async fn slow_headers_idle_connections_and_slow_bodies_are_cut(engine: Engine) {
    let app = spawn_app_with(engine, short_limits()).await;
    let partner = app.add_partner(false, &["127.0.0.1/32"]).await;
    let body = status_body(&partner.name());

    // Silent after connecting: cut after the 1 s header timeout.
    let mut silent = connect(app.addr).await;
    let took = closed_within(&mut silent, 10).await;
    assert!(took >= Duration::from_millis(900), "cut too early: {took:?}");

    // Slowloris: a byte every 200 ms keeps nothing alive past the header timeout.
    let mut slow = connect(app.addr).await;
    let started = Instant::now();
    let drip = format!("POST {STATUS_PATH} HTTP/1.1\r\nHost: x\r\nX-Padding: ");
    let mut cut = false;
    for byte in drip.bytes().chain(std::iter::repeat(b'a')).take(100) {
        if slow.write_all(&[byte]).await.is_err() {
            cut = true;
            break;
        }
        // Pacing the drip, not waiting for an outcome.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut probe = [0u8; 64];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut probe)).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "a dripped head was never cut");
    assert!(started.elapsed() < Duration::from_secs(10), "cut late: {:?}", started.elapsed());

    // Idle keep-alive: one request answered, then closed after the 2 s idle timeout.
    let mut idle = connect(app.addr).await;
    let request = format!("POST {STATUS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    idle.write_all(request.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_response(&mut idle).await.status, 200);
    let idled = closed_within(&mut idle, 10).await;
    assert!(idled >= Duration::from_millis(1500), "idle connection cut before its timeout: {idled:?}");

    // A body that stops coming: 408 after the 1 s body timeout.
    let mut stalled = connect(app.addr).await;
    let head = format!("POST {STATUS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
    stalled.write_all(head.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
    stalled.write_all(&body.as_bytes()[..5]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_refused("stalled body", &read_response(&mut stalled).await, 408, 8, "not received");

    // And the server still answers.
    assert_eq!(app.dmt_status(&partner.name(), "REF-1", None).await.status, 200);
}

async fn an_address_that_keeps_failing_authentication_is_refused_without_a_store_lookup(engine: Engine) {
    let options = AppOptions { auth_failures_per_sec: 5, ..AppOptions::default() };
    let app = spawn_app_with(engine, options).await;
    let partner = app.add_partner(true, &[]).await;
    for attempt in 0..5 {
        let wrong = app.dmt_status(&partner.name(), "REF-1", Some("not.a.token")).await;
        assert_eq!(wrong.status, 401, "failure {attempt}: {}", wrong.body);
    }
    // Past the limit even a valid token is refused, before any lookup: its
    // reqid is not spent (that would be a store write), so it works later.
    let token = partner.token();
    let refused = app.dmt_status(&partner.name(), "REF-1", Some(&token)).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body, r#"{"status":false,"response_code":9,"message":"Too many requests"}"#);
    assert!(refused.retry_after.as_deref().is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)));
    let unknown = app.dmt_status("AOP-999999", "REF-1", None).await;
    assert_eq!(unknown.status, 429, "every request from the address is refused: {}", unknown.body);

    // Another address is not refused.
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let other = elsewhere
        .post(app.url(STATUS_PATH))
        .header("Token", partner.token())
        .body(status_body(&partner.name()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other.status().as_u16(), 200);

    let accepted = eventually(10, "the address to be admitted again", || async {
        let answer = app.dmt_status(&partner.name(), "REF-1", Some(&token)).await;
        (answer.status != 429).then_some(answer)
    })
    .await;
    assert_eq!(accepted.status, 200, "the refused token's reqid was never spent: {}", accepted.body);
}

/// A `payrail serve` process, killed when dropped, and the lines of its log.
struct Server {
    child: std::process::Child,
    addr: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _data_dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `payrail serve ARGS` on a free port over a fresh SQLite store, run
    /// with a soft open-files limit of 1,024; returns once it listens.
    async fn start(args: &str) -> Server {
        let data_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let key: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let command = format!("ulimit -S -n 1024 && exec \"$0\" serve --listen 127.0.0.1:{port} {args}");
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .arg(env!("CARGO_BIN_EXE_payrail"))
            .env("PAYRAIL_DATA_DIR", data_dir.path())
            .env("PAYRAIL_MASTER_KEY", &key)
            .env_remove("PAYRAIL_DATABASE_URL")
            .env_remove("PAYRAIL_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn payrail serve: {e}"));
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let kept = log.clone();
            std::thread::spawn(move || {
                use std::io::BufRead as _;
                for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                    kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        let server = Server { child, addr: ([127, 0, 0, 1], port).into(), log, _data_dir: data_dir };
        eventually(30, "the server to listen", || async { server.logged("payrail is listening").then_some(()) }).await;
        server
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|line| line.contains(needle))
    }
}

fn hard_open_files_limit() -> u64 {
    rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(_, hard)| hard).unwrap_or(0)
}

/// 1,100 requests whose headers never end, against the real binary started
/// with a soft limit of 1,024 open files: the server raises its limit to the
/// hard one and keeps answering a normal request at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_half_sent_requests_do_not_stop_a_normal_one() {
    let hard = hard_open_files_limit();
    if hard < 4096 {
        eprintln!("SKIPPED: the hard open-files limit ({hard}) is too low for this test");
        return;
    }
    // This test process holds 1,100 client sockets itself.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let server = Server::start("--header-timeout 60").await;
    let addr = server.addr;
    let mut half_sent = Vec::new();
    for _ in 0..1100 {
        let mut stream = connect(addr).await;
        let partial = format!("POST {STATUS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Le");
        stream.write_all(partial.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
        half_sent.push(stream);
    }
    let body = status_body("AOP-424242");
    let request = format!("POST {STATUS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let answer = exchange(addr, request.as_bytes()).await;
    assert_eq!(answer.status, 401, "a normal request is answered (unknown partner): {answer:?}");
    // The half-sent ones are still held open (the header timeout is 60 s): the
    // answer did not come from the server dropping them.
    let mut probe = [0u8; 16];
    let still_open = tokio::time::timeout(Duration::from_millis(200), half_sent[0].read(&mut probe)).await.is_err();
    assert!(still_open, "the first half-sent request was dropped");
}

async fn past_the_connection_cap_new_connections_wait_for_a_free_slot(engine: Engine) {
    let connections =
        ConnectionLimits { max_connections: 2, header_timeout: Duration::from_secs(60), ..ConnectionLimits::default() };
    let app = spawn_app_with(engine, AppOptions { connections: Some(connections), ..AppOptions::default() }).await;
    let partner = app.add_partner(false, &["127.0.0.1/32"]).await;
    let mut held = vec![connect(app.addr).await, connect(app.addr).await];
    for stream in &mut held {
        stream.write_all(b"POST / HTTP/1.1\r\n").await.unwrap_or_else(|e| panic!("{e}"));
    }
    let body = status_body(&partner.name());
    let request = format!("POST {STATUS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let addr = app.addr;
    let mut third = tokio::spawn(async move { exchange(addr, request.as_bytes()).await });
    // While both slots are held the third connection is not served (it
    // waits in the backlog; it is not closed either).
    let early = tokio::time::timeout(Duration::from_millis(500), &mut third).await;
    assert!(early.is_err(), "a third connection was served past a cap of 2: {early:?}");
    drop(held.pop());
    let answer = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .unwrap_or_else(|_| panic!("not served within 10 s of a slot freeing"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.status, 200, "{answer:?}");
}

/// The binary says in its log when the connection cap is reached, and the
/// connection past it waits rather than being closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_logs_when_the_connection_cap_is_reached() {
    let server = Server::start("--max-connections 2 --header-timeout 60").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(server.addr).await;
        stream.write_all(b"POST / HTTP/1.1\r\n").await.unwrap_or_else(|e| panic!("{e}"));
        held.push(stream);
    }
    eventually(10, "the connection limit line in the log", || async {
        server.logged("connection limit reached: new connections wait in the listen backlog").then_some(())
    })
    .await;
    // The third connection was not closed: it is served once a slot frees.
    let mut third = held.pop().unwrap_or_else(|| panic!("three connections"));
    drop(held);
    third.write_all(b"Host: x\r\nContent-Length: 0\r\n\r\n").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_response(&mut third).await.status, 404);
}
