//! payrail end to end against a fake Paysprint-compatible upstream (a real
//! HTTP server): what each upstream answer does to a transaction, that
//! nothing is sent, debited or refunded twice, that unknown answers never
//! decide a state, and that the upstream's callbacks are verified,
//! idempotent and safe out of order. And two payrail processes sharing one
//! PostgreSQL database, each poll and each callback attempt made once.

use std::sync::Arc;
use std::time::Duration;

use payrail::services::upstream::paysprint::{PaysprintConfig, PaysprintProvider};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{
    eventually, free_port, fresh_postgres_database, postgres_url, skip_postgres, spawn_app_with, text, AppOptions,
    CallbackReceiver, Engine, Running, TestApp, TestUpstream,
};
use crate::journey::{assert_verify_clean, balance, top_up};
use crate::mock_upstream::{MockUpstream, Reply, Script};
use crate::upstream_sandbox::{bill, bses, dmt, funded_partner, history, pay, send, until_dmt};

both_engines!(
    the_upstream_decides_transfers_through_the_connector_and_unknown_answers_decide_nothing,
    upstream_callbacks_are_verified_idempotent_and_never_move_a_decided_state_back,
    fifty_concurrent_lookups_of_one_undecided_transaction_ask_the_upstream_once,
);

pub const JWT_KEY: &str = "upstream-jwt-key";
pub const PARTNER_ID: &str = "PS004217";
const AUTHORISED_KEY: &str = "authorised-key-1";

pub fn connector(mock: &MockUpstream) -> Arc<PaysprintProvider> {
    let mut config = PaysprintConfig::new(&mock.url, PARTNER_ID, SecretString::from(JWT_KEY));
    config.authorised_key = Some(SecretString::from(AUTHORISED_KEY));
    config.submit_timeout = Duration::from_millis(700);
    config.status_timeout = Duration::from_millis(700);
    Arc::new(PaysprintProvider::new(config).unwrap_or_else(|e| panic!("{e:#}")))
}

pub async fn app_with_mock(engine: Engine, poll_schedule: &'static str) -> (TestApp, MockUpstream) {
    app_with_mock_and(engine, AppOptions { poll_schedule: Some(poll_schedule), ..AppOptions::default() }).await
}

/// An app on `options` whose upstream is the connector to a fresh mock.
pub async fn app_with_mock_and(engine: Engine, options: AppOptions) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start(JWT_KEY, PARTNER_ID, AUTHORISED_KEY).await;
    let options = AppOptions { upstream: TestUpstream::Provider(connector(&mock)), ..options };
    (spawn_app_with(engine, options).await, mock)
}

/// The reference the upstream knows transaction `kind` (`dmt`, `bbps`) `id`
/// by, from the operator API (references carry the installation id and a
/// random part: they cannot be worked out from the id).
pub async fn upstream_ref(app: &TestApp, kind: &str, id: &str) -> String {
    let shown = app.admin(&format!("/admin/v1/upstream/refs/{kind}/{id}"), None).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    shown.json()["upstream_ref"].as_str().expect("upstream_ref is a string").to_owned()
}

/// The upstream reference of the transfer a `Transaction` answer is about.
pub async fn dmt_ref(app: &TestApp, sent: &Value) -> String {
    upstream_ref(app, "dmt", sent["ackno"].as_str().expect("ackno is a string")).await
}

async fn the_upstream_decides_transfers_through_the_connector_and_unknown_answers_decide_nothing(engine: Engine) {
    let (app, mock) = app_with_mock(engine, "1s,1s,1s").await;
    let (partner, _receiver) = funded_partner(&app).await;
    let hang = Duration::from_secs(3);
    // PS-1..6 are made one after another: the mock takes these scripts in that order.
    mock.script_next(Script::new().status(Reply::dmt(2, None)).status(Reply::dmt(1, Some("UTR000000001"))));
    mock.script_next(Script::new().submit(Reply::http(406, 16, false, "Invalid Beneficiary Details.")));
    mock.script_next(Script::new().submit(Reply::Hang(hang)).status(Reply::dmt(1, Some("UTR000000003"))));
    mock.script_next(Script::new().status(Reply::Garbage));
    mock.script_next(Script::new().status(Reply::dmt(9, None)));
    mock.script_next(Script::new().status(Reply::dmt(1, None)).status(Reply::dmt(1, Some("UTR000000006"))));
    let start = balance(&app, &partner).await;

    let sent: Vec<Value> = {
        let mut sent = Vec::new();
        for n in 1..=6 {
            sent.push(send(&app, &partner, "123456789012", "1000", &format!("PS-{n}")).await);
        }
        sent
    };
    assert_eq!((&sent[1]["txn_status"], &sent[1]["message"]), (&json!("5"), &json!("Transaction Failed")));
    assert_eq!(sent[2]["txn_status"], "2", "a submission that timed out stays in process: {}", sent[2]);

    let paid = until_dmt(&app, &partner, "PS-1", "1", 10).await;
    assert_eq!(paid["utr"], "UTR000000001");
    assert_eq!(until_dmt(&app, &partner, "PS-3", "1", 10).await["utr"], "UTR000000003");
    let late = eventually(10, "PS-6's late UTR", || async {
        let status = dmt(&app, &partner, "PS-6").await;
        status["utr"].is_string().then_some(status)
    })
    .await;
    assert_eq!((&late["txn_status"], &late["utr"]), (&json!("1"), &json!("UTR000000006")));
    // Garbage and an unknown code decide nothing; when the schedule runs out they are held for review.
    for reference in ["PS-4", "PS-5"] {
        until_dmt(&app, &partner, reference, "4", 15).await;
    }
    let held = sent[4]["ackno"].as_str().expect("ackno is a string");
    let reasons: Vec<Value> = history(&app, held).await.into_iter().map(|h| h["to"].clone()).collect();
    assert_eq!(reasons, [json!("in_process"), json!("sent_to_bank"), json!("on_hold")], "no final state was invented");

    for transfer in &sent {
        let reference = dmt_ref(&app, transfer).await;
        assert_eq!(mock.submits(&reference), 1, "{reference} was submitted exactly once");
    }
    assert_eq!(mock.rejected(), 0, "every request carried valid credentials");
    // One debit each, no refund yet: six times (1000 + 10 charge) out of the wallet.
    let spent =
        start.parse::<f64>().expect("an amount") - balance(&app, &partner).await.parse::<f64>().expect("an amount");
    assert!((spent - 6.0 * 1010.0).abs() < 0.001, "debited once each: {spent}");
    assert_verify_clean(&app);
}

async fn upstream_callbacks_are_verified_idempotent_and_never_move_a_decided_state_back(engine: Engine) {
    // The poller waits an hour: only callbacks move these transactions.
    let options = AppOptions { poll_schedule: Some("1h"), ..AppOptions::default() }.on_manual_clock();
    let (app, mock) = app_with_mock_and(engine, options).await;
    let (partner, receiver) = funded_partner(&app).await;
    let base = app.url("");
    let cb1 = send(&app, &partner, "123456789012", "1000", "CB-1").await;
    let cb2 = send(&app, &partner, "123456789012", "1000", "CB-2").await;
    let (prd1, prd2) = (dmt_ref(&app, &cb1).await, dmt_ref(&app, &cb2).await);

    // A callback only triggers a status query, whose answer is applied:
    // the upstream's queries say what its callbacks say here.
    mock.script(&prd1, Script::new().status(Reply::dmt(1, Some("UTRCB0000001"))));
    mock.script(&prd2, Script::new().status(Reply::dmt(0, None)));
    // Success, then the same callback again (a duplicate), then a stale "sent to bank".
    let success = MockUpstream::dmt_callback(&prd1, 1, Some("UTRCB0000001"));
    let (status, body) = mock.send_callback(&base, &success).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":200,"message":"Transaction completed successfully"}"#));
    let queries = mock.status_queries(&prd1);
    let (status, body) = mock.send_callback(&base, &success).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":200,"message":"Duplicate callback: already received"}"#));
    assert_eq!(mock.status_queries(&prd1), queries, "a duplicate triggers no query");
    assert_eq!(mock.send_callback(&base, &MockUpstream::dmt_callback(&prd1, 3, None)).await.0, 200);
    let status = dmt(&app, &partner, "CB-1").await;
    assert_eq!((&status["txn_status"], &status["utr"]), (&json!("1"), &json!("UTRCB0000001")));
    let successes = history(&app, cb1["ackno"].as_str().expect("ackno is a string"))
        .await
        .iter()
        .filter(|h| h["to"] == "success")
        .count();
    assert_eq!(successes, 1, "a repeated callback is applied once");

    // Out of order: the bank return (0) arrives before the delayed success; the success changes nothing.
    assert_eq!(mock.send_callback(&base, &MockUpstream::dmt_callback(&prd2, 0, None)).await.0, 200);
    assert_eq!(mock.send_callback(&base, &MockUpstream::dmt_callback(&prd2, 1, Some("UTRLATE"))).await.0, 200);
    let status = dmt(&app, &partner, "CB-2").await;
    assert_eq!((&status["txn_status"], &status["utr"]), (&json!("5"), &Value::Null));

    // Refusals change nothing.
    let forged = mock.send_callback_with_bad_token(&base, &MockUpstream::dmt_callback(&prd1, 0, None)).await;
    assert_eq!(forged.0, 401, "{}", forged.1);
    let unsigned = mock.post_exactly(&base, None, &MockUpstream::dmt_callback(&prd1, 0, None)).await;
    assert_eq!(unsigned.0, 401, "{}", unsigned.1);
    // Signed, without a header (as Paysprint sends it): taken, but the query says paid.
    let headerless = mock.post_callback(&base, None, &MockUpstream::dmt_callback(&prd1, 0, None)).await;
    assert_eq!(headerless.0, 200, "{}", headerless.1);
    assert_eq!(mock.send_callback(&base, &MockUpstream::dmt_callback("PRD999", 1, Some("U"))).await.0, 404);
    assert_eq!(mock.send_callback(&base, &MockUpstream::dmt_callback("XYZ1", 1, Some("U"))).await.0, 404);
    assert_eq!(mock.send_callback(&base, &json!({"event": "DMT", "param": {}})).await.0, 400);
    assert_eq!(dmt(&app, &partner, "CB-1").await["txn_status"], "1", "still paid");

    // A bill failed twice over is refunded once.
    let before = balance(&app, &partner).await;
    let paid = pay(&app, &partner, "150012345678", "CB-BILL").await;
    let txnid = paid["ackno"].as_i64().expect("ackno is a JSON integer").to_string();
    let prb = upstream_ref(&app, "bbps", &txnid).await;
    mock.script(&prb, Script::new().status(Reply::bill(0, None)));
    let failed = MockUpstream::bill_callback(&prb, 0, None);
    for _ in 0..3 {
        assert_eq!(mock.send_callback(&base, &failed).await.0, 200);
    }
    let refunded = bill(&app, &partner, "CB-BILL").await;
    assert_eq!((&refunded["data"]["refunded"], &refunded["message"]), (&json!("1"), &json!("Transaction Refunded")));
    assert_eq!(balance(&app, &partner).await, before, "refunded exactly once");
    let late_success = MockUpstream::bill_callback(&prb, 1, Some("OP1"));
    assert_eq!(mock.send_callback(&base, &late_success).await.0, 200);
    assert_eq!(bill(&app, &partner, "CB-BILL").await["data"]["status"], "0", "refunded is final");

    // The partner heard each change once: CB-1 sent/success, CB-2 sent/failed, CB-BILL failed/refunded.
    let deliveries = eventually(10, "six partner callbacks", || async {
        let got = receiver.deliveries();
        (got.len() >= 6).then_some(got)
    })
    .await;
    // Past the callback retry (1 s): neither another event nor a repeat comes.
    app.advance(Duration::from_secs(2)).await;
    assert_eq!(receiver.deliveries().len(), 6, "{deliveries:?}");
    assert_verify_clean(&app);
}

/// `payrail serve` on `database_url`, polling the mock on a four-step schedule.
fn serve(app: &TestApp, database_url: &str, mock: &MockUpstream, instance: &str, port: u16) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_payrail"))
        .args(["serve", "--provider", "paysprint", "--listen", &format!("127.0.0.1:{port}")])
        .env("PAYRAIL_DATABASE_URL", database_url)
        .env("PAYRAIL_MASTER_KEY", &app.master_key_hex)
        .env("PAYRAIL_DATA_DIR", app.data_dir.path().join(instance))
        .env("PAYRAIL_PAYSPRINT_URL", &mock.url)
        .env("PAYRAIL_PAYSPRINT_PARTNER_ID", PARTNER_ID)
        .env("PAYRAIL_PAYSPRINT_JWT_KEY", JWT_KEY)
        .env("PAYRAIL_PAYSPRINT_AUTHORISED_KEY", AUTHORISED_KEY)
        .env("PAYRAIL_POLL_SCHEDULE", "1s,1s,1s,1s")
        .env("PAYRAIL_CALLBACK_RETRY", "1s")
        .env("PAYRAIL_WORKER_TICK_MS", "50")
        .env("PAYRAIL_INSTANCE", instance)
        .env("PAYRAIL_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn payrail: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_poll_each_transaction_and_deliver_each_callback_once() {
    let Some(base_url) = postgres_url() else {
        skip_postgres("two_servers_on_one_postgres_poll_each_transaction_and_deliver_each_callback_once");
        return;
    };
    let database = fresh_postgres_database(&base_url).await;
    let mock = MockUpstream::start(JWT_KEY, PARTNER_ID, AUTHORISED_KEY).await;
    // This app only sets things up: partner, wallet, callback URL. It runs no workers.
    let options = AppOptions { no_workers: true, ..AppOptions::default() };
    let setup = crate::helpers::spawn_app_on(&database.url, options).await;
    let partner = setup.add_partner(true, &[]).await;
    top_up(&setup, &partner, "100000").await;
    let receiver = CallbackReceiver::start().await;
    let set = crate::helpers::payrail(&setup, &["callback", "set", &partner.name(), &receiver.url]);
    assert!(set.status.success(), "{}", text(&set.stderr));

    let ports = [free_port(), free_port()];
    let _alpha = Running(serve(&setup, &database.url, &mock, "alpha", ports[0]));
    let _beta = Running(serve(&setup, &database.url, &mock, "beta", ports[1]));
    let http = reqwest::Client::new();
    for port in ports {
        eventually(20, "the servers listen", || async {
            http.post(format!("http://127.0.0.1:{port}/api/AOP/BillPaymentStatus"))
                .body("{}")
                .send()
                .await
                .ok()
                .map(|_| ())
        })
        .await;
    }

    // 20 bill payments, half through each server; each is paid on its third status query.
    const PAYMENTS: usize = 20;
    mock.script_others(
        Script::new().status(Reply::bill(2, None)).status(Reply::bill(2, None)).status(Reply::bill(1, Some("OP"))),
    );
    let operator = bses(&setup, &partner).await;
    let mut references = Vec::new();
    for n in 1..=PAYMENTS {
        let port = ports[n % 2];
        let body = json!({"RegistrationID": partner.name(), "operator": operator, "canumber": "150012345678",
                          "amount": "100", "referenceid": format!("TWO-{n}")});
        let paid = http
            .post(format!("http://127.0.0.1:{port}/api/AOP/BillPaymentPaybill"))
            .header("Token", partner.token())
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(paid.status(), 200);
        let paid: Value = paid.json().await.unwrap_or_else(|e| panic!("{e}"));
        let txnid = match &paid["ackno"] {
            Value::String(text) => text.clone(),
            number => number.to_string(),
        };
        references.push(upstream_ref(&setup, "bbps", &txnid).await);
    }

    // Every poll job runs its three steps and is done (a paid bill is decided:
    // its job ends with the success, issue 9 item 2); every success is called back.
    let done = eventually(30, "all polls finished and callbacks delivered", || async {
        let events = setup.store.events(&Default::default()).await.ok()?;
        let delivered = events.iter().filter(|e| e.state == payrail::domain::event::EventState::Delivered).count();
        let polled = references.iter().all(|reference| mock.status_queries(reference) >= 3);
        (polled && delivered == PAYMENTS).then_some(events)
    })
    .await;
    // Would a second poller or deliverer do more? These are `payrail serve`
    // processes on the system clock: only real time can tell.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for reference in &references {
        assert_eq!(mock.submits(reference), 1, "{reference} submitted once");
        assert_eq!(mock.status_queries(reference), 3, "{reference} polled once per step, by one server");
    }
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), PAYMENTS, "one delivery per event");
    let mut instances = std::collections::BTreeMap::new();
    for event in &done {
        let (_, attempts) = setup
            .store
            .event_with_attempts(event.id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("event {}", event.id));
        assert_eq!(attempts.len(), 1, "event {} attempted once: {attempts:?}", event.id);
        *instances.entry(attempts[0].instance.clone()).or_insert(0) += 1;
    }
    assert!(instances.keys().all(|i| i == "alpha" || i == "beta"), "{instances:?}");
    eprintln!("deliveries by instance: {instances:?}");
    let statuses: Vec<String> =
        futures_statuses(&setup, &partner, PAYMENTS).await.into_iter().filter(|s| s != "1").collect();
    assert!(statuses.is_empty(), "every payment paid: {statuses:?}");
    assert_verify_clean(&setup);
}

async fn futures_statuses(app: &TestApp, partner: &crate::helpers::TestPartner, count: usize) -> Vec<String> {
    let mut statuses = Vec::new();
    for n in 1..=count {
        let status = bill(app, partner, &format!("TWO-{n}")).await;
        statuses.push(status["data"]["status"].as_str().expect("status is a string").to_owned());
    }
    statuses
}

/// Fires 50 status lookups of `reference` at once; every one must be answered 200 with the undecided state.
async fn concurrent_lookups(app: &TestApp, partner: &crate::helpers::TestPartner, bbps: bool, reference: &str) {
    let (path, field) = if bbps {
        ("/api/AOP/BillPaymentStatus", "referenceid")
    } else {
        ("/api/AOP/DMTV1/TransactionStatus", "ReferanceID")
    };
    let mut lookups = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let request = app
            .http
            .post(app.url(path))
            .header("Token", partner.token())
            .body(json!({field: reference, "RegistrationID": partner.name()}).to_string());
        lookups.spawn(async move {
            let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
            (response.status().as_u16(), response.text().await.expect("a readable body"))
        });
    }
    while let Some(joined) = lookups.join_next().await {
        let (status, body) = joined.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200, "{body}");
        let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let undecided = if bbps { json["data"]["status"] == "2" } else { json["txn_status"] == "3" };
        assert!(undecided, "every lookup sees the undecided state: {json}");
    }
}

/// The upstream takes 1.2 s to answer each status query (within the 1.5 s
/// status budget, and the connector's 3 s timeout). 50 lookups sent at once
/// all arrive inside that window, so they share one query. The bound is 2,
/// not 1, only so that a machine too loaded to get 50 local requests through
/// authentication within 1.2 s does not fail the test: a lookup that arrives
/// after a query has ended rightly asks again. Without the shared query
/// every lookup asks: 50.
async fn fifty_concurrent_lookups_of_one_undecided_transaction_ask_the_upstream_once(engine: Engine) {
    let mock = MockUpstream::start(JWT_KEY, PARTNER_ID, AUTHORISED_KEY).await;
    let mut config = PaysprintConfig::new(&mock.url, PARTNER_ID, SecretString::from(JWT_KEY));
    config.authorised_key = Some(SecretString::from(AUTHORISED_KEY));
    config.status_timeout = Duration::from_secs(3);
    let connector = Arc::new(PaysprintProvider::new(config).unwrap_or_else(|e| panic!("{e:#}")));
    // The poller waits an hour: only status lookups ask the upstream here.
    let options =
        AppOptions { upstream: TestUpstream::Provider(connector), poll_schedule: Some("1h"), ..AppOptions::default() };
    let app = spawn_app_with(engine, options).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let slow = || Script::new().status(Reply::Hang(Duration::from_millis(1200)));
    // The transfer, then the bill: the mock takes these scripts in that order.
    mock.script_next(slow());
    mock.script_next(slow());
    let sent = send(&app, &partner, "123456789012", "1000", "FLOOD-D").await;
    assert_eq!(sent["txn_status"], "3", "{sent}");
    let paid = pay(&app, &partner, "150012345678", "FLOOD-B").await;
    assert_eq!(paid["message"], "Transaction Pending", "{paid}");
    let txnid = paid["ackno"].as_str().map_or_else(|| paid["ackno"].to_string(), str::to_owned);
    let bill_ref = upstream_ref(&app, "bbps", &txnid).await;
    let transfer_ref = dmt_ref(&app, &sent).await;

    concurrent_lookups(&app, &partner, false, "FLOOD-D").await;
    let dmt_queries = mock.status_queries(&transfer_ref);
    assert!((1..=2).contains(&dmt_queries), "50 DMT lookups asked the upstream {dmt_queries} times");
    concurrent_lookups(&app, &partner, true, "FLOOD-B").await;
    let bill_queries = mock.status_queries(&bill_ref);
    assert!((1..=2).contains(&bill_queries), "50 BBPS lookups asked the upstream {bill_queries} times");

    // The shared query is over and gone: the next lookup asks again.
    dmt(&app, &partner, "FLOOD-D").await;
    assert_eq!(mock.status_queries(&transfer_ref), dmt_queries + 1, "a later lookup asks afresh");
}
