//! SPEC §1–2: wire rules and the table of outcomes, partner-facing.

use serde_json::json;

use crate::both_engines;
use crate::helpers::{spawn_app, spawn_app_with, AppOptions, Engine, TestApp};

const DMT: &str = "/api/AOP/DMTV1/TransactionStatus";
const BBPS: &str = "/api/AOP/BillPaymentStatus";
const DMT_NOT_FOUND: &str = r#"{"status":false,"response_code":2,"message":"Transaction not found"}"#;
const BBPS_NOT_FOUND: &str = r#"{"response_code":0,"status":false,"message":"No Transaction found"}"#;

/// Creates a transfer through the operator API and returns its ackno.
async fn create_transfer(app: &TestApp, partner: &str, reference: &str, amount: &str) -> i64 {
    let created = app
        .admin(
            "/admin/v1/dmt",
            Some(json!({"registration_id": partner, "reference_id": reference, "amount": amount, "account": "20018575947"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.json()["ackno"].as_i64().unwrap_or_else(|| panic!("no ackno: {}", created.body))
}

async fn move_transfer(app: &TestApp, ackno: i64, body: serde_json::Value) {
    let moved = app.admin(&format!("/admin/v1/dmt/{ackno}/transition"), Some(body)).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
}

both_engines!(
    every_dmt_state_is_reported_with_its_code_and_message,
    any_content_type_any_path_case_and_every_alias_are_accepted,
    unknown_references_get_the_documented_not_found_bodies,
    malformed_requests_get_400_code_8_naming_the_field,
    a_body_over_64_kib_is_refused,
    amounts_and_charges_render_as_the_seeds_do,
    a_partner_over_its_rate_limit_gets_429_with_retry_after,
    an_internal_failure_is_answered_generically,
);

async fn every_dmt_state_is_reported_with_its_code_and_message(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &[]).await;
    let steps: [(&str, &[serde_json::Value], &str, &str); 6] = [
        ("s2", &[], "2", "Transaction In Process"),
        ("s3", &[json!({"to": "sent_to_bank"})], "3", "Transaction Sent To Bank"),
        ("s4", &[json!({"to": "on_hold"})], "4", "Transaction On Hold"),
        ("s1", &[json!({"to": "success", "utr": "UTR1"})], "1", "Transaction Successful"),
        ("s5", &[json!({"to": "failed", "reason": "beneficiary bank down"})], "5", "Transaction Failed"),
        ("s0", &[json!({"to": "failed"}), json!({"to": "refunded"})], "0", "Transaction Refunded"),
    ];
    for (reference, moves, code, message) in steps {
        let ackno = create_transfer(&app, &partner.name(), reference, "250").await;
        for step in moves {
            move_transfer(&app, ackno, step.clone()).await;
        }
        let answer = app.dmt_status(&partner.name(), reference, None).await;
        assert_eq!(answer.status, 200);
        let body = answer.json();
        assert_eq!(body["txn_status"], code, "{reference}");
        assert_eq!(body["message"], message, "{reference}");
        assert_eq!(body["ackno"], ackno.to_string());
    }
}

async fn any_content_type_any_path_case_and_every_alias_are_accepted(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &[]).await;
    let name = partner.name();
    create_transfer(&app, &name, "12345", "100").await;
    let bodies = [
        json!({"ReferanceID": "12345", "RegistrationID": name}),
        json!({"ReferenceID": "12345", "RegistrationID": name}),
        json!({"referenceid": "12345", "RegistrationID": name}),
        json!({"ReferanceID": 12345, "RegistrationID": name, "Unknown": [1, 2]}),
    ];
    let content_types = ["application/json", "text/plain", "application/x-www-form-urlencoded", ""];
    let paths = [DMT, "/api/aop/dmtv1/transactionstatus", "/API/AOP/DMTV1/TRANSACTIONSTATUS/"];
    for (i, body) in bodies.iter().enumerate() {
        let content_type = content_types[i % content_types.len()];
        let path = paths[i % paths.len()];
        let headers: Vec<(&str, &str)> =
            if content_type.is_empty() { vec![] } else { vec![("Content-Type", content_type)] };
        let answer = app.post_raw(path, body.to_string(), &headers).await;
        assert_eq!(answer.status, 200, "{body} to {path} as {content_type:?}: {}", answer.body);
        assert_eq!(answer.json()["referenceid"], "12345");
    }
}

async fn unknown_references_get_the_documented_not_found_bodies(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &[]).await;
    let dmt = app.dmt_status(&partner.name(), "nobody-used-this", None).await;
    assert_eq!((dmt.status, dmt.body.as_str()), (200, DMT_NOT_FOUND));
    let bill = app.bill_status(&partner.name(), "nobody-used-this", None).await;
    assert_eq!((bill.status, bill.body.as_str()), (200, BBPS_NOT_FOUND));
}

async fn malformed_requests_get_400_code_8_naming_the_field(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &[]).await;
    let name = partner.name();
    let long = "9".repeat(65);
    let cases: Vec<(&str, String, &str)> = vec![
        (DMT, "{not json".into(), "not valid JSON"),
        (DMT, "".into(), "not valid JSON"),
        (DMT, "[1,2]".into(), "JSON object"),
        (DMT, json!({"ReferanceID": "1"}).to_string(), "RegistrationID is missing"),
        (DMT, json!({"ReferanceID": "1", "RegistrationID": 554}).to_string(), "RegistrationID must be a string"),
        (DMT, json!({"RegistrationID": name}).to_string(), "ReferanceID is missing"),
        (DMT, json!({"ReferanceID": long, "RegistrationID": name}).to_string(), "at most 64"),
        (DMT, json!({"ReferanceID": "", "RegistrationID": name}).to_string(), "must not be empty"),
        (DMT, json!({"ReferanceID": "a b", "RegistrationID": name}).to_string(), "may contain only"),
        (DMT, json!({"ReferanceID": 1.5, "RegistrationID": name}).to_string(), "must be a string"),
        (DMT, json!({"ReferanceID": {"x": 1}, "RegistrationID": name}).to_string(), "must be a string"),
        (BBPS, json!({"RegistrationID": name}).to_string(), "referenceid is missing"),
        (BBPS, json!({"referenceid": long, "RegistrationID": name}).to_string(), "at most 64"),
        (BBPS, json!({"referenceid": "1"}).to_string(), "RegistrationID is missing"),
    ];
    for (path, body, expected) in cases {
        let answer = app.post_raw(path, body.clone(), &[("Content-Type", "application/json")]).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        let json = answer.json();
        assert_eq!(json["status"], false);
        assert_eq!(json["response_code"], 8);
        let message = json["message"].as_str().expect("message is a string");
        assert!(message.contains(expected), "{body}: {message:?} lacks {expected:?}");
        assert!(answer.body.starts_with(r#"{"status":false,"response_code":8,"message":"#), "{}", answer.body);
    }
}

async fn a_body_over_64_kib_is_refused(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &[]).await;
    let padding = "x".repeat(65 * 1024);
    let body = json!({"ReferanceID": "1", "RegistrationID": partner.name(), "padding": padding}).to_string();
    let answer = app.post_raw(DMT, body, &[]).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body, r#"{"status":false,"response_code":8,"message":"request body is larger than 64 KiB"}"#);
    // Just under the limit is fine.
    let fits =
        json!({"ReferanceID": "1", "RegistrationID": partner.name(), "padding": "x".repeat(60 * 1024)}).to_string();
    assert_eq!(app.post_raw(DMT, fits, &[]).await.status, 200);
}

async fn amounts_and_charges_render_as_the_seeds_do(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &[]).await;
    create_transfer(&app, &partner.name(), "odd-amount", "1234.5").await;
    let body = app.dmt_status(&partner.name(), "odd-amount", None).await.json();
    assert_eq!(body["amount"], "1234.50");
    // Default plan: 1% with a ₹10 minimum → 12.35; GST 1.88; share 35% = 4.32;
    // commission 6.15; TDS at 2% (today) 0.12; net 6.03.
    assert_eq!(body["customercharge"], "12.35");
    assert_eq!(body["gst"], "1.88");
    assert_eq!(body["discount"], "1.88");
    assert_eq!(body["tds"], "0.12");
    assert_eq!(body["netcommission"], "6.03");
    assert_eq!(body["utr"], serde_json::Value::Null);
    assert_eq!(body["daterefunded"], serde_json::Value::Null);
    assert_eq!(body["refundtxnid"], serde_json::Value::Null);
}

async fn a_partner_over_its_rate_limit_gets_429_with_retry_after(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions { rate_limit_per_sec: 3, ..AppOptions::default() }).await;
    let limited = app.add_partner(false, &[]).await;
    let other = app.add_partner(false, &[]).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.dmt_status(&limited.name(), "x", None).await);
    }
    let refused: Vec<_> = statuses.iter().filter(|a| a.status == 429).collect();
    assert!(!refused.is_empty(), "no request was limited");
    assert_eq!(refused[0].body, r#"{"status":false,"response_code":9,"message":"Too many requests"}"#);
    assert_eq!(refused[0].retry_after.as_deref(), Some("1"));
    assert_eq!(app.dmt_status(&other.name(), "x", None).await.status, 200, "limits are per partner");
}

async fn an_internal_failure_is_answered_generically(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &[]).await;
    match &app.database_url {
        None => {
            let conn =
                rusqlite::Connection::open(app.data_dir.path().join("payrail.db")).unwrap_or_else(|e| panic!("{e}"));
            conn.execute_batch("DROP TABLE status_history; DROP TABLE dmt_transfers;")
                .unwrap_or_else(|e| panic!("{e}"));
        }
        Some(url) => {
            let (client, connection) =
                tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("{e}"));
            tokio::spawn(connection);
            client.batch_execute("DROP TABLE dmt_transfers CASCADE").await.unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let answer = app.dmt_status(&partner.name(), "anything", None).await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.body, r#"{"status":false,"response_code":9,"message":"Unable to process request"}"#);
}

/// PostgreSQL only: a WAL-mode SQLite file cannot be made unreadable from
/// outside while the server holds it open; its busy-to-503 mapping is unit
/// tested in `store::sqlite` and `http::error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_is_answered_503_with_retry_after() {
    if crate::helpers::postgres_url().is_none() {
        crate::helpers::skip_postgres("an_unreachable_postgres_is_answered_503_with_retry_after");
        return;
    }
    let app = spawn_app(Engine::Postgres).await;
    let partner = app.add_partner(false, &[]).await;
    assert_eq!(app.dmt_status(&partner.name(), "x", None).await.status, 200);
    // The database stops taking connections and the pool's are cut.
    let name =
        app.database_url.as_deref().expect("a PostgreSQL app").rsplit('/').next().expect("a database name").to_owned();
    let base = crate::helpers::postgres_url().expect("PAYRAIL_TEST_DATABASE_URL is set");
    let (client, connection) =
        tokio_postgres::connect(&base, tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = app.dmt_status(&partner.name(), "x", None).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.body, r#"{"status":false,"response_code":9,"message":"Unable to process request"}"#);
    assert!(answer.retry_after.is_some());
}
