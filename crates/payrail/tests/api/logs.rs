//! The server's log (issue 14 item 3), read from the real binary's stderr:
//! `--log-format json` writes one JSON object a line; every request has an
//! id (the caller's `X-Request-Id` when sane, else a fresh one) that its
//! answer returns and every line of the request carries; one access line
//! per request; a transfer can be followed by its reference and ackno
//! through the handler, service and upstream spans; and no secret, token,
//! OTP, Aadhaar number or fingerprint is ever written.

use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::helpers::{eventually, free_port, text, Running, SmsInbox, TestPartner, AADHAAR, FINGERPRINT};

const MOBILE: &str = "9812312345";
const ADMIN_TOKEN: &str = "adm-7f3e9c1b5d2a4e6f8091a2b3c4d5e6f7";
const MASTER_KEY: &str = "4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e";
const AUTHORISED_KEY: &str = "ak-SECRET-e1f2a3b4c5d6";

/// `payrail serve` on a fresh SQLite store with `--log-format FORMAT`,
/// texting through an inbox, its stderr kept line by line.
struct LoggedServer {
    server: Option<Running>,
    reader: Option<std::thread::JoinHandle<()>>,
    lines: Arc<Mutex<Vec<String>>>,
    port: u16,
    partner: TestPartner,
    inbox: SmsInbox,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl LoggedServer {
    async fn start(format: &str) -> LoggedServer {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let data = dir.path().join("data");
        let command = |args: &[&str]| {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_payrail"));
            command.arg("--data-dir").arg(&data).args(args);
            command.env("PAYRAIL_MASTER_KEY", MASTER_KEY).env_remove("PAYRAIL_DATABASE_URL");
            command.env_remove("PAYRAIL_LOG_FORMAT").env_remove("PAYRAIL_LOG");
            command
        };
        let added = command(&["partner", "add", "--name", "Logged", "--authorised-key", AUTHORISED_KEY, "--json"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(added.status.success(), "{}", text(&added.stderr));
        let created: Value = serde_json::from_slice(&added.stdout).unwrap_or_else(|e| panic!("{e}"));
        let partner = TestPartner {
            id: payrail::domain::RegistrationId::parse(created["registration_id"].as_str().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}")),
            secret: created["secret"].as_str().unwrap_or_default().to_owned(),
        };
        let inbox = SmsInbox::start().await;
        let port = free_port();
        let mut child = command(&["--log-format", format, "serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--provider", "sandbox"])
            .env("PAYRAIL_SMS_GATEWAY_URL", &inbox.url)
            .env("PAYRAIL_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn payrail serve: {e}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let server = LoggedServer {
            server: Some(Running(child)),
            reader: Some(reader),
            lines,
            port,
            partner,
            inbox,
            http: reqwest::Client::new(),
            _dir: dir,
        };
        let url = server.url("/nothing-here");
        eventually(30, "the server answers", || async { server.http.get(&url).send().await.ok().map(|_| ()) }).await;
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A partner call with a fresh token and, if given, an `X-Request-Id`;
    /// returns the answer and the token used.
    async fn call(&self, path: &str, mut body: Value, request_id: Option<&str>) -> (reqwest::Response, String) {
        body["RegistrationID"] = json!(self.partner.name());
        let token = self.partner.token();
        let mut request = self
            .http
            .post(self.url(path))
            .header("Token", &token)
            .header("AuthorisedKey", AUTHORISED_KEY)
            .body(body.to_string());
        if let Some(id) = request_id {
            request = request.header("X-Request-Id", id);
        }
        (request.send().await.unwrap_or_else(|e| panic!("{path}: {e}")), token)
    }

    /// Stops the server and returns every line it wrote to stderr.
    fn finish(mut self) -> Vec<String> {
        drop(self.server.take());
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone();
        lines
    }
}

/// The answer's `X-Request-Id`.
fn answered_id(response: &reqwest::Response) -> String {
    let value = response.headers().get("x-request-id").unwrap_or_else(|| panic!("no X-Request-Id: {response:?}"));
    value.to_str().unwrap_or_else(|e| panic!("{e}")).to_owned()
}

fn is_generated_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn json_body(response: reqwest::Response) -> Value {
    let status = response.status();
    let body = response.text().await.unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {status} {body}"))
}

/// The spans a JSON line was written in, outermost first.
fn spans(line: &Value) -> Vec<Value> {
    line["spans"].as_array().cloned().unwrap_or_default()
}

/// The `id` of the `request` span a line was written in, if any.
fn request_id_of(line: &Value) -> Option<String> {
    spans(line).iter().find(|s| s["name"] == "request").and_then(|s| s["id"].as_str().map(str::to_owned))
}

/// The span named `name` a line was written in, if any.
fn span_named(line: &Value, name: &str) -> Option<Value> {
    spans(line).into_iter().find(|s| s["name"] == name)
}

/// The access lines (target `payrail::access`).
fn access_lines(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["target"] == "payrail::access").collect()
}

/// Sends raw bytes and returns the answer's head and body as text.
fn raw_request(port: u16, request: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap_or_else(|e| panic!("{e}"));
    stream.write_all(request).unwrap_or_else(|e| panic!("{e}"));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    text(&answer)
}

/// The value of `name` in a raw answer's head.
fn raw_header(answer: &str, name: &str) -> Option<String> {
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_follow_a_transfer_and_hold_no_secrets() {
    let server = LoggedServer::start("json").await;
    let mut tokens = Vec::new();

    // A remitter with e-KYC (Aadhaar and fingerprint), registered with its OTP.
    let ekyc = json!({"MobileNumber": MOBILE, "Lattitude": "28.61", "Longitude": "77.20",
                      "AadhaarNumber": AADHAAR, "FingerPrintData": FINGERPRINT});
    let (answer, token) = server.call("/api/AOP/DMTV1/RemitterEKyc", ekyc, Some("ekyc-0001")).await;
    tokens.push(token);
    assert_eq!(answer_id_and_status(&answer), ("ekyc-0001".to_owned(), 202));
    let stateresp = json_body(answer).await["stateresp"].clone();
    let fields = json!({"MobileNo": MOBILE, "OTP": server.inbox.last_otp(MOBILE), "Stateresp": stateresp,
                        "KycId": stateresp, "FirstName": "Asha", "LastName": "Verma"});
    let (answer, token) = server.call("/api/AOP/DMTV1/RegisterRemitter", fields, None).await;
    tokens.push(token);
    assert_eq!(answer.status(), 200);
    let generated = answered_id(&answer);
    assert!(is_generated_id(&generated), "no id sent: a fresh one is made: {generated}");

    let bene = json!({"MobileNo": MOBILE, "BeneName": "Ravi Verma", "AccountNo": "123456789888",
                      "IFSC": "sbin0001234", "BankName": "State Bank of India"});
    let (answer, token) = server.call("/api/AOP/DMTV1/RegisterBeneficiary", bene, None).await;
    tokens.push(token);
    let bene_id = json_body(answer).await["beneid"].as_str().expect("beneid").to_owned();

    // The operator tops the wallet up: the bearer token is a secret too.
    let topup = server
        .http
        .post(server.url(&format!("/admin/v1/partners/{}/wallet/topup", server.partner.name())))
        .bearer_auth(ADMIN_TOKEN)
        .header("X-Request-Id", "topup-0001")
        .json(&json!({"amount": "5000", "memo": "float"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer_id_and_status(&topup), ("topup-0001".to_owned(), 200));

    // The transfer (account ending 888: the sandbox pays it at once).
    let intent = json!({"MobileNumber": MOBILE, "BeneID": bene_id, "Txntype": "IMPS", "Amount": "1000"});
    let (answer, token) = server.call("/api/AOP/DMTV1/TransactionSendOtp", intent.clone(), None).await;
    tokens.push(token);
    let otp_state = json_body(answer).await["stateresp"].clone();
    let mut transaction = intent;
    transaction["referenceid"] = json!("LOGREF0001");
    transaction["Stateresp"] = otp_state;
    transaction["OTP"] = json!(server.inbox.last_otp(MOBILE));
    let (answer, token) = server.call("/api/AOP/DMTV1/Transaction", transaction, Some("txn-req:0001")).await;
    tokens.push(token);
    assert_eq!(answer_id_and_status(&answer), ("txn-req:0001".to_owned(), 200));
    let sent = json_body(answer).await;
    let ackno = sent["ackno"].as_str().map(str::to_owned).unwrap_or_else(|| sent["ackno"].to_string());
    assert!(ackno.chars().all(|c| c.is_ascii_digit()) && !ackno.is_empty(), "{sent}");

    // Its status, by a partner.
    let status = json!({"ReferanceID": "LOGREF0001"});
    let (answer, token) = server.call("/api/AOP/DMTV1/TransactionStatus", status, Some("status-0001")).await;
    tokens.push(token);
    assert_eq!(answer_id_and_status(&answer), ("status-0001".to_owned(), 200));

    // Insane ids are replaced, never echoed.
    let too_long = "a".repeat(129);
    let mut insane = Vec::new();
    for bad in [too_long.as_str(), "semi;colon<script>", "two words"] {
        let (answer, token) =
            server.call("/api/AOP/DMTV1/TransactionStatus", json!({"ReferanceID": "X1"}), Some(bad)).await;
        tokens.push(token);
        let id = answered_id(&answer);
        assert!(is_generated_id(&id), "{bad:?} was answered with {id:?}");
        insane.push((bad.to_owned(), id));
    }
    // CR LF in the value cannot smuggle a header; a tab or a non-ASCII byte is not sane.
    let injected = raw_request(
        server.port,
        b"GET /nothing HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc\tdef\r\nConnection: close\r\n\r\n",
    );
    let id = raw_header(&injected, "x-request-id").unwrap_or_else(|| panic!("no id in {injected}"));
    assert!(is_generated_id(&id), "{injected}");
    let obs_text = raw_request(
        server.port,
        b"GET /nothing HTTP/1.1\r\nHost: x\r\nX-Request-Id: \xe9t\xe9\r\nConnection: close\r\n\r\n",
    );
    assert!(raw_header(&obs_text, "x-request-id").is_some_and(|id| is_generated_id(&id)), "{obs_text}");
    // A 404 and a framing refusal have an id too.
    let missing = server.http.get(server.url("/no/such/page")).header("X-Request-Id", "nf-1").send().await;
    let missing = missing.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer_id_and_status(&missing), ("nf-1".to_owned(), 404));
    assert_eq!(
        missing.text().await.unwrap_or_default(),
        r#"{"status":false,"response_code":8,"message":"No such endpoint"}"#
    );
    let ambiguous = raw_request(
        server.port,
        b"POST /api/AOP/DMTV1/TransactionStatus HTTP/1.1\r\nHost: x\r\nX-Request-Id: framing-1\r\n\
          Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert!(ambiguous.starts_with("HTTP/1.1 400"), "{ambiguous}");
    assert_eq!(raw_header(&ambiguous, "x-request-id").as_deref(), Some("framing-1"), "{ambiguous}");

    let otps: Vec<String> =
        server.inbox.messages().iter().map(|(_, message)| message.chars().take(6).collect()).collect();
    let secret = server.partner.secret.clone();
    let partner = server.partner.name();
    let raw_lines = server.finish();

    // Every line is one JSON object.
    assert!(raw_lines.len() > 20, "the log was captured: {raw_lines:?}");
    let lines: Vec<Value> = raw_lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.iter().all(Value::is_object));
    let all = raw_lines.join("\n");

    // Each request's lines carry its id; its access line says what it was.
    let of_request = |id: &str| lines.iter().filter(|l| request_id_of(l).as_deref() == Some(id)).collect::<Vec<_>>();
    let access = access_lines(&lines);
    let access_of = |id: &str| {
        let found: Vec<_> = access.iter().filter(|l| l["fields"]["request_id"] == id).collect();
        assert_eq!(found.len(), 1, "one access line for {id}: {found:?}");
        (*found[0]).clone()
    };
    let txn_access = access_of("txn-req:0001");
    let fields = &txn_access["fields"];
    assert_eq!(fields["method"], "POST", "{txn_access}");
    assert_eq!(fields["path"], "/api/AOP/DMTV1/Transaction", "{txn_access}");
    assert_eq!(fields["status"], 200, "{txn_access}");
    assert_eq!(fields["partner"], partner.as_str(), "{txn_access}");
    assert!(fields["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{txn_access}");
    assert_eq!(txn_access["level"], "INFO");
    let topup_access = access_of("topup-0001");
    assert_eq!(topup_access["fields"]["operator"], "bootstrap", "{topup_access}");
    assert_eq!(topup_access["fields"]["status"], 200, "{topup_access}");
    assert_eq!(access_of("nf-1")["fields"]["status"], 404);
    assert_eq!(access_of("framing-1")["fields"]["status"], 400);
    assert_eq!(access_of(&generated)["fields"]["path"], "/api/AOP/DMTV1/RegisterRemitter");
    assert_eq!(access_of("status-0001")["fields"]["partner"], partner.as_str());
    let every_request = access.len();
    assert!(every_request >= 13, "one access line per request: {every_request}");

    // The transfer's request: handler, service and upstream lines, all with its id.
    let transfer_lines = of_request("txn-req:0001");
    assert!(transfer_lines.len() >= 4, "{transfer_lines:?}");
    let in_handler = transfer_lines.iter().filter_map(|l| span_named(l, "transaction")).collect::<Vec<_>>();
    assert!(!in_handler.is_empty() && in_handler.iter().all(|span| span["reference"] == "LOGREF0001"));
    for name in ["transfer", "submit_transfer"] {
        // Once the transfer is debited, its ackno is a field of the spans it goes through.
        let found = transfer_lines
            .iter()
            .filter_map(|l| span_named(l, name))
            .any(|span| span["reference"] == "LOGREF0001" && span["ackno"].to_string().trim_matches('"') == ackno);
        assert!(found, "no line in the {name} span with the reference and ackno {ackno}: {transfer_lines:#?}");
    }
    // And the decisions it went through are there by its ackno.
    let messages_about_it: Vec<&str> = lines
        .iter()
        .filter(|l| spans(l).iter().any(|s| s["ackno"].to_string().trim_matches('"') == ackno))
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    for said in ["transfer debited", "transfer submitted upstream", "transaction changed"] {
        assert!(messages_about_it.iter().any(|m| m.starts_with(said)), "{said:?} not in {messages_about_it:?}");
    }

    // Insane ids appear nowhere; their requests have the fresh ids.
    for (bad, fresh) in &insane {
        assert!(!all.contains(bad.as_str()), "{bad:?} is in the log");
        assert_eq!(access_of(fresh)["fields"]["status"], 200);
    }
    assert!(!all.contains("abc\\tdef") && !all.contains("abc\tdef"));

    // No secret of any kind.
    let mut secrets = vec![
        secret.clone(),
        ADMIN_TOKEN.to_owned(),
        MASTER_KEY.to_owned(),
        AUTHORISED_KEY.to_owned(),
        AADHAAR.to_owned(),
        "FP-7c1d-NEVER-STORED-e9a4".to_owned(),
    ];
    secrets.extend(tokens.iter().cloned());
    // A token's signature alone, too.
    secrets.extend(tokens.iter().filter_map(|t| t.rsplit('.').next().map(str::to_owned)));
    assert!(otps.len() >= 2, "OTPs were texted: {otps:?}");
    for otp in &otps {
        secrets.push(format!("\"{otp}\""));
        secrets.push(format!("={otp}"));
        secrets.push(format!("{otp} is your"));
    }
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(!all.contains(secret.as_str()), "{secret:?} is in the log");
    }
}

fn answer_id_and_status(response: &reqwest::Response) -> (String, u16) {
    (answered_id(response), response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_have_no_colours_when_piped_and_an_access_line_per_request() {
    let server = LoggedServer::start("text").await;
    let answer = server.http.get(server.url("/no/such/page")).header("X-Request-Id", "plain-1").send().await;
    assert_eq!(answer.map(|a| answer_id_and_status(&a)).ok(), Some(("plain-1".to_owned(), 404)));
    let lines = server.finish();
    let all = lines.join("\n");
    assert!(all.contains("payrail is listening"), "{all}");
    assert!(!all.contains('\u{1b}'), "an ANSI escape in piped text logs: {all:?}");
    let access = lines
        .iter()
        .find(|l| l.contains("payrail::access") && l.contains("request_id=plain-1"))
        .unwrap_or_else(|| panic!("no access line: {all}"));
    for part in ["payrail::access: answered", "method=GET", "path=/no/such/page", "status=404", "duration_ms="] {
        assert!(access.contains(part), "{part} not in {access}");
    }
    assert!(serde_json::from_str::<Value>(access).is_err(), "text, not JSON");
}

#[test]
fn an_unknown_log_format_is_refused_by_the_command_line() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payrail"))
        .args(["--log-format", "yaml", "partner", "list"])
        .env_remove("PAYRAIL_LOG_FORMAT")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let said = text(&out.stderr);
    assert!(said.contains("invalid value 'yaml'") && said.contains("json"), "{said}");
    let from_env = std::process::Command::new(env!("CARGO_BIN_EXE_payrail"))
        .args(["partner", "list"])
        .env("PAYRAIL_LOG_FORMAT", "xml")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_env.status.code(), Some(2), "{}", text(&from_env.stderr));
}

crate::both_engines!(every_answer_has_a_request_id_and_the_bodies_are_unchanged);

/// In process, on both engines: partner, operator and console answers,
/// refusals and 404s all carry `X-Request-Id`; the body is what it was.
async fn every_answer_has_a_request_id_and_the_bodies_are_unchanged(engine: crate::helpers::Engine) {
    let app = crate::helpers::spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let http = reqwest::Client::new();
    let status_body = json!({"ReferanceID": "NOPE1", "RegistrationID": partner.name()}).to_string();
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (http.post(app.url("/api/AOP/DMTV1/TransactionStatus")).header("Token", partner.token()), 200),
        (http.post(app.url("/api/AOP/DMTV1/TransactionStatus")), 401),
        (http.get(app.url("/admin/v1/verify")), 401),
        (http.get(app.url("/console/login")), 200),
        (http.get(app.url("/nowhere")), 404),
    ];
    for (n, (request, status)) in cases.into_iter().enumerate() {
        let sent = format!("case-{n}");
        let answer = request
            .header("X-Request-Id", &sent)
            .body(status_body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(answer_id_and_status(&answer), (sent, status));
        let generated = http.get(app.url("/nowhere")).send().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(is_generated_id(&answered_id(&generated)));
    }
    let with_id = http
        .post(app.url("/api/AOP/DMTV1/TransactionStatus"))
        .header("Token", partner.token())
        .header("X-Request-Id", "same-body")
        .body(status_body.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let body = with_id.text().await.unwrap_or_default();
    let without = app.dmt_status(&partner.name(), "NOPE1", Some(&partner.token())).await;
    assert_eq!(body, without.body, "the id changes no byte of the body");
    assert_eq!(body, r#"{"status":false,"response_code":2,"message":"Transaction not found"}"#);
}
