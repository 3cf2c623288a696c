//! A new remitter's e-KYC and registration (issue 11): the remitter's 202
//! exactly as AOPay's seed shows it, the Aadhaar number's checks, two
//! attempts a day per mobile, the `KycId` that registration needs within
//! 30 minutes and once, and fingerprint data that is never kept or logged.

use std::time::Duration;

use payrail_client::{sign_token, TokenClaims};
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{
    eventually, fresh_postgres_database, minify, spawn_app, spawn_app_with, text, Answer, AppOptions, Engine, SmsInbox,
    TempDatabase, TestApp, TestPartner, TestUpstream, AADHAAR, FINGERPRINT,
};
use crate::journey::{assert_field_order, assert_refused};
use crate::mock_upstream::{MockUpstream, Reply, Script};
use crate::upstream_paysprint::{connector, JWT_KEY, PARTNER_ID};

both_engines!(
    the_remitter_202_is_the_seeds_byte_for_byte_but_for_a_fresh_lower_case_uuid,
    a_malformed_aadhaar_or_ekyc_field_is_refused_with_code_8_and_nothing_is_sent_or_counted,
    the_third_ekyc_of_a_mobile_in_a_day_is_refused_unsent_until_a_day_after_the_second,
    the_sandbox_uidai_refuses_or_fails_by_magic_aadhaar_and_each_attempt_counts,
    registration_needs_this_remitters_kycid_from_less_than_thirty_minutes_ago_once,
    the_paysprint_connector_sends_the_ekyc_with_its_fingerprint_and_reads_the_answer,
    fingerprint_data_is_never_in_the_store_or_the_log,
    twenty_concurrent_ekycs_of_one_mobile_make_two_attempts,
    concurrent_registrations_with_one_kycid_register_once,
    the_documented_remitter_samples_are_sent_and_answered_as_docs_api_shows,
);

const MOBILE: &str = "9812345670";
const OTHER_MOBILE: &str = "9812345671";

/// The seed's 202 example (seeds/dmt-transaction-status.txt), as printed there.
const SEED_202: &str = r#"{
  "status": false,
  "response_code": 0,
  "stateresp": "b3c1e519-cf15-4145-8c26-c3d03e9d2f00",
  "message": "Remitter not registered OTP sent for new registration."
}"#;

/// Whether `text` is a lower-case UUID, 8-4-4-4-12 hex digits.
fn is_lower_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    lens == [8, 4, 4, 4, 12] && groups.iter().all(|g| g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Asserts the answer is the seed's 202 but for its `stateresp`, a fresh UUID; returns that.
fn assert_seed_202(answer: &Answer) -> String {
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.content_type, "application/json; charset=utf-8");
    let stateresp = answer.json()["stateresp"].as_str().expect("stateresp is a string").to_owned();
    assert!(is_lower_uuid(&stateresp), "{stateresp}");
    let expected = minify(SEED_202).replace("b3c1e519-cf15-4145-8c26-c3d03e9d2f00", &stateresp);
    assert_eq!(answer.body, expected);
    stateresp
}

/// A partner call with a token stamped by the app's (manual) clock, which a test moves by days.
async fn call_at_app_time(app: &TestApp, path: &str, partner: &TestPartner, fields: Value) -> Answer {
    let mut body = fields;
    body["RegistrationID"] = json!(partner.name());
    let claims = TokenClaims {
        timestamp: app.time.now().unix(),
        partner_id: partner.name(),
        reqid: format!("{:016x}", rand::random::<u64>()),
    };
    let token = sign_token(partner.secret.as_bytes(), &claims);
    app.post_raw(path, body.to_string(), &[("Token", token.as_str())]).await
}

fn ekyc_fields(mobile: &str, aadhaar: &str) -> Value {
    json!({"MobileNumber": mobile, "Lattitude": "28.61", "Longitude": "77.20", "AadhaarNumber": aadhaar,
           "FingerPrintData": FINGERPRINT})
}

fn texts_to(inbox: &SmsInbox, mobile: &str) -> usize {
    inbox.messages().iter().filter(|(to, _)| to == mobile).count()
}

async fn the_remitter_202_is_the_seeds_byte_for_byte_but_for_a_fresh_lower_case_uuid(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    // QueryRemitter of an unregistered mobile, under each of its mobile field names.
    let mut seen = Vec::new();
    for name in ["MobileNumber", "MobileNo", "mobile"] {
        let query = app.call("/api/AOP/DMTV1/QueryRemitter", &partner, json!({name: MOBILE})).await;
        seen.push(assert_seed_202(&query));
    }
    // RemitterEKyc, as AOPay's page sends it (values made valid).
    let ekyc = app.ekyc_with(&partner, MOBILE, "675828001083").await;
    seen.push(assert_seed_202(&ekyc));
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "each stateresp is fresh");
    assert_eq!(texts_to(&app.sms, MOBILE), 4, "each 202 sent an OTP");
}

async fn a_malformed_aadhaar_or_ekyc_field_is_refused_with_code_8_and_nothing_is_sent_or_counted(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let with = |field: &str, value: Value| {
        let mut fields = ekyc_fields(MOBILE, AADHAAR);
        fields[field] = value;
        fields
    };
    let refusals = [
        (ekyc_fields(MOBILE, "999999990018"), "AadhaarNumber has a wrong check digit"),
        (ekyc_fields(MOBILE, "999999990091"), "AadhaarNumber has a wrong check digit"),
        (ekyc_fields(MOBILE, "99999999001"), "AadhaarNumber must be 12 digits"),
        (ekyc_fields(MOBILE, "9999 9999 0019"), "AadhaarNumber must be 12 digits"),
        (ekyc_fields(MOBILE, "023456789019"), "AadhaarNumber must not start with 0 or 1"),
        (ekyc_fields(MOBILE, "123456789014"), "AadhaarNumber must not start with 0 or 1"),
        (with("AadhaarNumber", Value::Null), "AadhaarNumber is missing"),
        (with("FingerPrintData", json!("")), "FingerPrintData is missing"),
        (with("FingerPrintData", json!("x".repeat(60_001))), "FingerPrintData must be at most"),
        (with("Lattitude", json!("91.5")), "Lattitude must be a decimal"),
        (with("Longitude", json!("east")), "Longitude must be a decimal"),
        (ekyc_fields("12345", AADHAAR), "MobileNumber"),
    ];
    for (fields, needle) in refusals {
        let answer = app.call("/api/AOP/DMTV1/RemitterEKyc", &partner, fields).await;
        assert_refused(&answer, 400, 8, needle);
        assert!(!answer.body.contains("NEVER-STORED"), "the fingerprint is not echoed: {}", answer.body);
    }
    assert_eq!(texts_to(&app.sms, MOBILE), 0, "nothing was sent");
    // Nothing was counted either: both of the day's attempts are still there, under the aliases.
    let aliases = json!({"MobileNo": MOBILE, "Latitude": "-12.5", "Longitude": "170", "AadhaarNumber": AADHAAR,
                         "FingerPrintData": FINGERPRINT});
    assert_eq!(app.call("/api/AOP/DMTV1/RemitterEKyc", &partner, aliases).await.status, 202);
    assert_eq!(app.ekyc_with(&partner, MOBILE, AADHAAR).await.status, 202);
}

/// An app whose upstream is the Paysprint connector to a fresh mock, on a manual clock.
async fn app_with_mock(engine: Engine) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start(JWT_KEY, PARTNER_ID, "authorised-key-1").await;
    let options = AppOptions { upstream: TestUpstream::Provider(connector(&mock)), ..AppOptions::default() };
    (spawn_app_with(engine, options.on_manual_clock()).await, mock)
}

fn ekyc_calls(mock: &MockUpstream) -> Vec<Value> {
    mock.calls().into_iter().filter(|c| c.path == "dmt/kyc/remitter/queryremitter/kyc").map(|c| c.body).collect()
}

async fn the_third_ekyc_of_a_mobile_in_a_day_is_refused_unsent_until_a_day_after_the_second(engine: Engine) {
    let (app, mock) = app_with_mock(engine).await;
    let (first, second) = (app.add_partner(true, &[]).await, app.add_partner(true, &[]).await);
    async fn ekyc(app: &TestApp, partner: &TestPartner) -> Answer {
        call_at_app_time(app, "/api/AOP/DMTV1/RemitterEKyc", partner, ekyc_fields(MOBILE, AADHAAR)).await
    }
    // The first attempt is refused by UIDAI; it counts all the same.
    mock.script(MOBILE, Script::new().submit(Reply::answer(0, false, "Biometric data did not match")));
    assert_refused(&ekyc(&app, &first).await, 422, 18, "biometric data did not match");
    app.clock().advance(Duration::from_secs(3_600));
    mock.script(MOBILE, Script::new());
    assert_eq!(ekyc(&app, &second).await.status, 202, "the second attempt, by another partner");
    assert_eq!(ekyc_calls(&mock).len(), 2);

    // The third, by either partner, is refused and never reaches the upstream.
    app.clock().advance(Duration::from_secs(60));
    for partner in [&first, &second] {
        let third = ekyc(&app, partner).await;
        assert_refused(&third, 422, 15, "too many e-kyc attempts for this mobile: try again after");
        assert!(third.json()["message"].as_str().unwrap_or_default().contains("(in 86340 seconds)"), "{}", third.body);
    }
    app.clock().advance(Duration::from_secs(86_340 - 1));
    assert_refused(&ekyc(&app, &first).await, 422, 15, "(in 1 seconds)");
    assert_eq!(ekyc_calls(&mock).len(), 2, "nothing was sent upstream while blocked");
    assert_eq!(texts_to(&app.sms, MOBILE), 1, "one OTP, for the one success");
    // Another mobile was never blocked.
    let other = call_at_app_time(&app, "/api/AOP/DMTV1/RemitterEKyc", &first, ekyc_fields(OTHER_MOBILE, AADHAAR));
    assert_eq!(other.await.status, 202);

    // A day after the second attempt, the mobile may try again.
    app.clock().advance(Duration::from_secs(1));
    assert_eq!(ekyc(&app, &first).await.status, 202);
    assert_eq!(ekyc_calls(&mock).len(), 4);
}

async fn the_sandbox_uidai_refuses_or_fails_by_magic_aadhaar_and_each_attempt_counts(engine: Engine) {
    let options = AppOptions { upstream: TestUpstream::Sandbox { step_secs: 1 }, ..AppOptions::default() };
    let app = spawn_app_with(engine, options).await;
    let partner = app.add_partner(true, &[]).await;
    assert_refused(&app.ekyc_with(&partner, MOBILE, "234567891110").await, 422, 18, "e-kyc refused: biometric");
    assert_refused(&app.ekyc_with(&partner, MOBILE, "234567895559").await, 502, 17, "the upstream did not answer");
    assert_refused(&app.ekyc_with(&partner, MOBILE, AADHAAR).await, 422, 15, "too many e-kyc attempts");
    assert_eq!(texts_to(&app.sms, MOBILE), 0);
    assert_eq!(app.ekyc_with(&partner, OTHER_MOBILE, "675828001083").await.status, 202);
    assert_eq!(texts_to(&app.sms, OTHER_MOBILE), 1);
}

/// `RegisterRemitter` at the app's time, under the documented field names.
async fn register(app: &TestApp, partner: &TestPartner, mobile: &str, otp: &(String, String), kyc_id: &str) -> Answer {
    let fields = json!({"MobileNumber": mobile, "OTP": otp.1, "Stateresp": otp.0, "KycId": kyc_id});
    call_at_app_time(app, "/api/AOP/DMTV1/RegisterRemitter", partner, fields).await
}

/// A registration OTP from `QueryRemitter`, at the app's time: (stateresp, otp).
async fn query_otp(app: &TestApp, partner: &TestPartner, mobile: &str) -> (String, String) {
    let query = call_at_app_time(app, "/api/AOP/DMTV1/QueryRemitter", partner, json!({"mobile": mobile})).await;
    (assert_seed_202(&query), app.sms.last_otp(mobile))
}

/// A successful e-KYC at the app's time: (stateresp = KycId, otp).
async fn ekyc_at_app_time(app: &TestApp, partner: &TestPartner, mobile: &str) -> (String, String) {
    let answer = call_at_app_time(app, "/api/AOP/DMTV1/RemitterEKyc", partner, ekyc_fields(mobile, AADHAAR)).await;
    (assert_seed_202(&answer), app.sms.last_otp(mobile))
}

async fn registration_needs_this_remitters_kycid_from_less_than_thirty_minutes_ago_once(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let (partner, other_partner) = (app.add_partner(true, &[]).await, app.add_partner(true, &[]).await);
    let (kyc_a, _) = ekyc_at_app_time(&app, &partner, MOBILE).await;
    let (kyc_b, otp_b) = ekyc_at_app_time(&app, &partner, OTHER_MOBILE).await;

    // Another mobile's KycId, an unknown one, and another partner's are refused, naming KycId.
    assert_refused(
        &register(&app, &partner, OTHER_MOBILE, &(kyc_b.clone(), otp_b.clone()), &kyc_a).await,
        400,
        8,
        "kycid matches no e-kyc of this remitter",
    );
    assert_refused(
        &register(&app, &partner, OTHER_MOBILE, &(kyc_b.clone(), otp_b.clone()), "no-such-kyc").await,
        400,
        8,
        "kycid matches no e-kyc",
    );
    let theirs = query_otp(&app, &other_partner, MOBILE).await;
    assert_refused(&register(&app, &other_partner, MOBILE, &theirs, &kyc_a).await, 400, 8, "kycid matches no e-kyc");
    // Refused before the OTP was tried: the e-KYC's OTP still registers B, with B's own KycId.
    let registered = register(&app, &partner, OTHER_MOBILE, &(kyc_b.clone(), otp_b.clone()), &kyc_b).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    assert_field_order(&registered.body, &["status", "response_code", "message", "data"]);
    assert_eq!(
        registered.json()["data"],
        json!({"fname": null, "lname": null, "mobile": OTHER_MOBILE, "status": "Active", "bank3_limit": 25000,
               "bank3_status": "Active", "bank2_limit": 25000, "bank1_limit": 25000})
    );
    // Used once, the KycId is spent: the same registration again is refused naming it.
    let again = register(&app, &partner, OTHER_MOBILE, &(kyc_b.clone(), otp_b), &kyc_b).await;
    assert_refused(&again, 400, 8, "kycid was already used");

    // 29 minutes after its e-KYC, A's KycId still registers A (with a fresh OTP: the e-KYC's lived 90 s).
    app.clock().advance(Duration::from_secs(29 * 60));
    let fresh = query_otp(&app, &partner, MOBILE).await;
    let registered = register(&app, &partner, MOBILE, &fresh, &kyc_a).await;
    assert_eq!(registered.status, 200, "{}", registered.body);

    // 31 minutes after an e-KYC, its KycId is refused.
    let third = "9812345672";
    let (kyc_c, _) = ekyc_at_app_time(&app, &partner, third).await;
    app.clock().advance(Duration::from_secs(31 * 60));
    let late = query_otp(&app, &partner, third).await;
    assert_refused(
        &register(&app, &partner, third, &late, &kyc_c).await,
        400,
        8,
        "kycid is from an e-kyc more than 30 minutes old",
    );
    let query = call_at_app_time(&app, "/api/AOP/DMTV1/QueryRemitter", &partner, json!({"MobileNo": third})).await;
    assert_eq!(query.status, 202, "not registered: {}", query.body);
}

async fn the_paysprint_connector_sends_the_ekyc_with_its_fingerprint_and_reads_the_answer(engine: Engine) {
    let (app, mock) = app_with_mock(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let done = call_at_app_time(&app, "/api/AOP/DMTV1/RemitterEKyc", &partner, ekyc_fields(MOBILE, AADHAAR)).await;
    assert_seed_202(&done);
    let sent = ekyc_calls(&mock);
    assert_eq!(
        sent,
        [json!({"mobile": MOBILE, "lat": "28.61", "long": "77.20", "aadhaar_number": AADHAAR, "data": FINGERPRINT,
                "is_iris": 2})]
    );
    // An upstream that fails (HTTP 503) or answers what payrail cannot place: 502, code 17.
    mock.script(OTHER_MOBILE, Script::new().submit(Reply::Http(503)));
    let failed = call_at_app_time(&app, "/api/AOP/DMTV1/RemitterEKyc", &partner, ekyc_fields(OTHER_MOBILE, AADHAAR));
    assert_refused(&failed.await, 502, 17, "e-kyc could not be done");
    mock.script(OTHER_MOBILE, Script::new().submit(Reply::Raw(json!({"status": true, "response_code": 1}))));
    let garbled = call_at_app_time(&app, "/api/AOP/DMTV1/RemitterEKyc", &partner, ekyc_fields(OTHER_MOBILE, AADHAAR));
    assert_refused(&garbled.await, 502, 17, "e-kyc could not be done");
    assert_eq!(texts_to(&app.sms, OTHER_MOBILE), 0);
}

/// `payrail` with the given store, as `serve` would see it.
fn payrail_command(dir: &std::path::Path, key: &str, database: Option<&TempDatabase>) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_payrail"));
    command.arg("--data-dir").arg(dir).env("PAYRAIL_MASTER_KEY", key).env_remove("PAYRAIL_DATABASE_URL");
    if let Some(database) = database {
        command.env("PAYRAIL_DATABASE_URL", &database.url);
    }
    command
}

/// Every byte the store holds: the SQLite files, or every row of every PostgreSQL table as text.
async fn store_contents(dir: &std::path::Path, database: Option<&TempDatabase>) -> String {
    let Some(database) = database else {
        let mut all = String::new();
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{e}")).map_while(Result::ok) {
            if entry.path().is_file() {
                all.push_str(&text(&std::fs::read(entry.path()).unwrap_or_default()));
            }
        }
        return all;
    };
    let (client, connection) =
        tokio_postgres::connect(&database.url, tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(connection);
    let tables = client
        .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut all = String::new();
    for table in tables {
        let name: String = table.get(0);
        let rows =
            client.query(&format!("SELECT t::text FROM \"{name}\" t"), &[]).await.unwrap_or_else(|e| panic!("{e}"));
        for row in rows {
            all.push_str(&row.get::<_, String>(0));
            all.push('\n');
        }
    }
    all
}

async fn fingerprint_data_is_never_in_the_store_or_the_log(engine: Engine) {
    let parent = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = parent.path().join("data");
    let key = "33".repeat(32);
    let database = match engine {
        Engine::Postgres => Some(fresh_postgres_database(&crate::helpers::postgres_url().unwrap_or_default()).await),
        Engine::Sqlite => None,
    };
    let added = payrail_command(&dir, &key, database.as_ref())
        .args(["partner", "add", "--name", "Ekyc", "--json"])
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
    let port = crate::helpers::free_port();
    let mut child = payrail_command(&dir, &key, database.as_ref())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--provider", "sandbox"])
        .env("PAYRAIL_SMS_GATEWAY_URL", &inbox.url)
        .env("PAYRAIL_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn payrail serve: {e}"));
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let kept = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                let mut log = kept.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    let server = crate::helpers::Running(child);
    let http = reqwest::Client::new();
    let post = |path: &str, mut body: Value| {
        body["RegistrationID"] = json!(partner.name());
        http.post(format!("http://127.0.0.1:{port}/api/AOP/DMTV1/{path}"))
            .header("Token", partner.token())
            .body(body.to_string())
            .send()
    };
    let ekyc = eventually(30, "the server answers", || async {
        post("RemitterEKyc", ekyc_fields(MOBILE, AADHAAR)).await.ok()
    })
    .await;
    assert_eq!(ekyc.status(), 202);
    let stateresp = ekyc.json::<Value>().await.unwrap_or_default()["stateresp"].clone();
    let otp = inbox.last_otp(MOBILE);
    let fields = json!({"MobileNo": MOBILE, "OTP": otp, "Stateresp": stateresp, "KycId": stateresp});
    let registered = post("RegisterRemitter", fields).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(registered.status(), 200);
    // A refused attempt too: its fingerprint goes nowhere either.
    let refused =
        post("RemitterEKyc", ekyc_fields(OTHER_MOBILE, "999999990018")).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refused.status(), 400);
    drop(server);

    let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(log.contains("payrail is listening"), "the log was captured: {log}");
    let stored = store_contents(&dir, database.as_ref()).await;
    assert!(stored.contains(MOBILE), "the store was read: the remitter is in it");
    for (what, haystack) in [("log", &log), ("store", &stored)] {
        assert!(!haystack.contains("FP-7c1d-NEVER-STORED-e9a4"), "the fingerprint data is in the {what}");
        assert!(!haystack.contains(AADHAAR), "the Aadhaar number is in the {what}");
    }
}

async fn twenty_concurrent_ekycs_of_one_mobile_make_two_attempts(engine: Engine) {
    let app = std::sync::Arc::new(spawn_app(engine).await);
    let partners = std::sync::Arc::new([app.add_partner(true, &[]).await, app.add_partner(true, &[]).await]);
    let mut racing = tokio::task::JoinSet::new();
    for n in 0..20 {
        let (app, partners) = (app.clone(), partners.clone());
        racing.spawn(async move { app.ekyc_with(&partners[n % 2], MOBILE, AADHAAR).await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = racing.join_next().await {
        answers.push(answer.unwrap_or_else(|e| panic!("{e}")));
    }
    let done = answers.iter().filter(|a| a.status == 202).count();
    let refused = answers.iter().filter(|a| a.status == 422 && a.json()["response_code"] == 15).count();
    assert_eq!((done, refused), (2, 18), "{:?}", answers.iter().map(|a| &a.body).collect::<Vec<_>>());
    assert_eq!(texts_to(&app.sms, MOBILE), 2);
}

async fn concurrent_registrations_with_one_kycid_register_once(engine: Engine) {
    let app = std::sync::Arc::new(spawn_app(engine).await);
    let partner = std::sync::Arc::new(app.add_partner(true, &[]).await);
    let (kyc_id, otp) = app.ekyc(&partner, MOBILE).await;
    // Five registration OTPs, each under its own stateresp, all naming the one KycId.
    let mut otps = vec![(kyc_id.clone(), otp)];
    for _ in 0..4 {
        let query = app.call("/api/AOP/DMTV1/QueryRemitter", &partner, json!({"MobileNo": MOBILE})).await;
        otps.push((assert_seed_202(&query), app.sms.last_otp(MOBILE)));
    }
    let mut racing = tokio::task::JoinSet::new();
    for (stateresp, code) in otps {
        let (app, partner, kyc_id) = (app.clone(), partner.clone(), kyc_id.clone());
        racing.spawn(async move {
            let fields = json!({"MobileNo": MOBILE, "OTP": code, "Stateresp": stateresp, "KycId": kyc_id});
            app.call("/api/AOP/DMTV1/RegisterRemitter", &partner, fields).await
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = racing.join_next().await {
        answers.push(answer.unwrap_or_else(|e| panic!("{e}")));
    }
    let bodies: Vec<&String> = answers.iter().map(|a| &a.body).collect();
    assert_eq!(answers.iter().filter(|a| a.status == 200).count(), 1, "{bodies:?}");
    for refused in answers.iter().filter(|a| a.status != 200) {
        let why = refused.json()["message"].as_str().unwrap_or_default().to_lowercase();
        assert!(why.contains("kycid was already used") || why.contains("already registered"), "{why}");
    }
}

/// The JSON blocks of docs/API.md's section whose heading starts with `heading`, in order.
fn doc_blocks(heading: &str) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let section =
        doc.split("\n#").find(|s| s.starts_with(&format!("## {heading}"))).unwrap_or_else(|| panic!("{heading}"));
    section.split("```json\n").skip(1).filter_map(|b| b.split_once("\n```").map(|(json, _)| json.to_owned())).collect()
}

/// A documented request as `partner` sends it, with `fields` set.
fn doc_request(block: &str, partner: &TestPartner, fields: &[(&str, &str)]) -> Value {
    let mut body: Value = serde_json::from_str(block).unwrap_or_else(|e| panic!("{e}: {block}"));
    body["RegistrationID"] = json!(partner.name());
    for (name, value) in fields {
        body[*name] = json!(value);
    }
    body
}

async fn the_documented_remitter_samples_are_sent_and_answered_as_docs_api_shows(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let (query, ekyc, register) =
        (doc_blocks("`QueryRemitter`"), doc_blocks("`RemitterEKyc`"), doc_blocks("`RegisterRemitter`"));
    assert_eq!((query.len(), ekyc.len(), register.len()), (3, 2, 2), "request and answers of each");
    let seed = minify(SEED_202);
    for answer in [&query[2], &ekyc[1]] {
        assert_eq!(minify(answer), seed, "docs/API.md shows the seed's 202");
    }
    let uuid = "b3c1e519-cf15-4145-8c26-c3d03e9d2f00";

    let unknown = app.call("/api/AOP/DMTV1/QueryRemitter", &partner, doc_request(&query[0], &partner, &[])).await;
    assert_seed_202(&unknown);
    let verified = app.call("/api/AOP/DMTV1/RemitterEKyc", &partner, doc_request(&ekyc[0], &partner, &[])).await;
    let stateresp = assert_seed_202(&verified);
    let otp = app.sms.last_otp("9812345670");
    let fields = [("OTP", otp.as_str()), ("Stateresp", stateresp.as_str()), ("KycId", stateresp.as_str())];
    let registered =
        app.call("/api/AOP/DMTV1/RegisterRemitter", &partner, doc_request(&register[0], &partner, &fields)).await;
    assert_eq!((registered.status, registered.body.as_str()), (200, minify(&register[1]).as_str()));
    let found = app.call("/api/AOP/DMTV1/QueryRemitter", &partner, doc_request(&query[0], &partner, &[])).await;
    assert_eq!((found.status, found.body.as_str()), (200, minify(&query[1]).as_str()));
    assert!(register[0].contains(uuid) && ekyc[1].contains(uuid));
}

/// The demo (`payrail serve --demo`, sandbox upstream): its partner AOP-554,
/// from loopback without a token, registers a new remitter through the e-KYC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_partner_does_the_whole_remitter_flow() {
    use std::io::BufRead as _;
    let data_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let inbox = SmsInbox::start().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_payrail"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .env_remove("PAYRAIL_MASTER_KEY")
        .env_remove("PAYRAIL_DATABASE_URL")
        .env("PAYRAIL_SMS_GATEWAY_URL", &inbox.url)
        .env("PAYRAIL_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let _server = crate::helpers::Running(child);
    let base = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines().map_while(Result::ok);
        let base = lines.find_map(|line| line.strip_prefix("payrail demo is ready at ").map(str::to_owned));
        std::thread::spawn(move || lines.for_each(drop));
        base
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|| panic!("the demo never said it was ready"));
    let http = reqwest::Client::new();
    let post = |path: &str, mut body: Value| {
        body["RegistrationID"] = json!("AOP-554");
        http.post(format!("{}/api/AOP/DMTV1/{path}", base.trim_end_matches('/'))).body(body.to_string()).send()
    };
    let answer = |response: reqwest::Response| async move {
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    };
    let (status, body) = answer(post("QueryRemitter", json!({"MobileNumber": MOBILE})).await.expect("query")).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = answer(post("RemitterEKyc", ekyc_fields(MOBILE, AADHAAR)).await.expect("ekyc")).await;
    assert_eq!(status, 202, "{body}");
    let stateresp = serde_json::from_str::<Value>(&body).unwrap_or_default()["stateresp"].clone();
    let fields = json!({"MobileNo": MOBILE, "OTP": inbox.last_otp(MOBILE), "Stateresp": stateresp, "KycId": stateresp});
    let (status, body) = answer(post("RegisterRemitter", fields).await.expect("register")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = answer(post("QueryRemitter", json!({"MobileNumber": MOBILE})).await.expect("query")).await;
    assert_eq!(status, 200, "{body}");
}
