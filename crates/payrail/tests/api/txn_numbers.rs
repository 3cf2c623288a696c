//! Transaction numbers do not leak volume (issue 9 item 24): a new `ackno`
//! or `txnid` is a nine-digit number from a keyed permutation, so consecutive
//! transactions get unrelated numbers; every way in by number still finds
//! the transaction; and a store made before keeps the numbers it gave out.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{
    fresh_postgres_database, payrail, postgres_url, spawn_app_in, spawn_app_on, spawn_app_with, text, AppOptions,
    Engine, TestApp, TestPartner, TestUpstream,
};
use crate::journey::{
    add_beneficiary, assert_verify_clean, operator_moves, register_remitter, top_up, transfer, MOBILE,
};

both_engines!(
    new_numbers_do_not_count_and_every_way_in_by_number_finds_the_transaction,
    a_store_made_before_keeps_its_numbers_and_new_ones_do_not_collide,
);

/// A sandbox that decides nothing within a test (its first step is 10 minutes away).
fn sandbox_that_waits() -> AppOptions {
    // Polls an hour apart, as in `settlement.rs`: the poller pays back a bill
    // an operator failed, and this test has the operator do it.
    AppOptions {
        upstream: TestUpstream::Sandbox { step_secs: 600 },
        poll_schedule: Some("1h"),
        ..AppOptions::default()
    }
}

/// An id sent as a string or a JSON number.
fn number(value: &Value) -> i64 {
    match value {
        Value::String(s) => s.parse().unwrap_or_else(|e| panic!("id {s:?}: {e}")),
        other => other.as_i64().unwrap_or_else(|| panic!("not an id: {other}")),
    }
}

/// What holds for the numbers of consecutive transactions, whatever the key.
fn assert_not_a_count(what: &str, ids: &[i64]) {
    assert!(ids.iter().all(|id| (100_000_000..1_000_000_000).contains(id)), "{what} not nine digits: {ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "{what} repeat: {ids:?}");
    assert!(!ids.windows(2).all(|w| w[1] - w[0] == 1), "{what} count up by one: {ids:?}");
    assert!(!ids.windows(2).all(|w| w[0] < w[1]), "{what} only grow: {ids:?}");
}

async fn pay_bills(app: &TestApp, partner: &TestPartner, count: usize) -> Vec<i64> {
    let mut txnids = Vec::new();
    for n in 0..count {
        let fields = json!({"operator": 1, "canumber": format!("1500{n:08}"), "amount": "100",
                            "referenceid": format!("NUM-B-{n}")});
        let paid = app.call("/api/AOP/BillPaymentPaybill", partner, fields).await;
        assert_eq!(paid.status, 200, "{}", paid.body);
        txnids.push(number(&paid.json()["ackno"]));
    }
    txnids
}

/// Three transfers through the partner API, the rest made by the operator.
async fn send_transfers(app: &TestApp, partner: &TestPartner, count: usize) -> Vec<i64> {
    register_remitter(app, partner, MOBILE).await;
    let bene = add_beneficiary(app, partner, MOBILE).await;
    let mut acknos = Vec::new();
    for n in 0..3 {
        let sent = transfer(app, partner, MOBILE, &bene, "100", &format!("NUM-D-{n}")).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        acknos.push(number(&sent.json()["ackno"]));
    }
    for n in 3..count {
        acknos.push(operator_transfer(app, &partner.name(), &format!("NUM-D-{n}")).await);
    }
    acknos
}

async fn operator_transfer(app: &TestApp, partner: &str, reference: &str) -> i64 {
    let body = json!({"registration_id": partner, "reference_id": reference, "amount": "100",
                      "account": "123456789012"});
    let made = app.admin("/admin/v1/dmt", Some(body)).await;
    assert!(made.status == 200 || made.status == 201, "{}", made.body);
    number(&made.json()["ackno"])
}

async fn operator_bill(app: &TestApp, partner: &str, reference: &str) -> i64 {
    let body = json!({"registration_id": partner, "reference_id": reference, "amount": "100",
                      "operator_name": "BSES Rajdhani Power Limited", "ca_number": "150012345678"});
    let made = app.admin("/admin/v1/bbps", Some(body)).await;
    assert!(made.status == 200 || made.status == 201, "{}", made.body);
    number(&made.json()["txnid"])
}

async fn new_numbers_do_not_count_and_every_way_in_by_number_finds_the_transaction(engine: Engine) {
    let app = spawn_app_with(engine, sandbox_that_waits()).await;
    let partner = app.add_partner(true, &[]).await;
    top_up(&app, &partner, "100000").await;

    let txnids = pay_bills(&app, &partner, 50).await;
    assert_not_a_count("txnids", &txnids);
    let acknos = send_transfers(&app, &partner, 50).await;
    assert_not_a_count("acknos", &acknos);

    // Status lookups report the numbers; the operator API finds them by number.
    for (n, txnid) in txnids.iter().enumerate().step_by(7) {
        let found = app.bill_status(&partner.name(), &format!("NUM-B-{n}"), Some(&partner.token())).await;
        assert_eq!(number(&found.json()["data"]["txnid"]), *txnid, "{}", found.body);
        let shown = app.admin(&format!("/admin/v1/bbps/{txnid}"), None).await;
        assert_eq!(shown.json()["reference_id"], format!("NUM-B-{n}"), "{}", shown.body);
    }
    for (n, ackno) in acknos.iter().enumerate().step_by(7) {
        let found = app.dmt_status(&partner.name(), &format!("NUM-D-{n}"), Some(&partner.token())).await;
        assert_eq!(number(&found.json()["ackno"]), *ackno, "{}", found.body);
        let shown = app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await;
        assert_eq!(shown.json()["reference_id"], format!("NUM-D-{n}"), "{}", shown.body);
    }

    // The upstream's word reaches a transaction by its number (the sandbox
    // applies it as an upstream callback would), and the operator moves one.
    let advance = json!({"kind": "dmt", "id": acknos[0], "to": "success", "utr": "UTR000000001"});
    let advanced = app.admin("/sandbox/v1/advance", Some(advance)).await;
    assert_eq!((advanced.status, &advanced.json()["status"]), (200, &json!("success")), "{}", advanced.body);
    let found = app.dmt_status(&partner.name(), "NUM-D-0", Some(&partner.token())).await;
    assert_eq!((&found.json()["txn_status"], &found.json()["utr"]), (&json!("1"), &json!("UTR000000001")));
    let advance = json!({"kind": "bbps", "id": txnids[1], "to": "success", "operator_id": "OP-1"});
    let advanced = app.admin("/sandbox/v1/advance", Some(advance)).await;
    assert_eq!((advanced.status, &advanced.json()["status"]), (200, &json!("success")), "{}", advanced.body);
    operator_moves(&app, "bbps", &txnids[2].to_string(), "failed").await;
    let found = app.bill_status(&partner.name(), "NUM-B-2", Some(&partner.token())).await;
    assert_eq!(found.json()["data"]["status"], "0", "{}", found.body);
    // A wallet-paid bill an operator fails is theirs to refund (verify says so until then).
    operator_moves(&app, "bbps", &txnids[2].to_string(), "refunded").await;

    // The CLI names transactions dmt:<ackno> / bbps:<txnid>.
    let resumed = payrail(&app, &["upstream", "resume", &format!("dmt:{}", acknos[1])]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let unknown = payrail(&app, &["upstream", "resume", "bbps:99"]);
    assert!(!unknown.status.success() && text(&unknown.stderr).contains("no bbps transaction 99"));
    assert_verify_clean(&app);
}

/// The fixture's master key is not kept: its one partner's secret is sealed
/// again under this one, so that the store opens under a key the test knows.
const FIXTURE_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn fixture_key() -> AppOptions {
    AppOptions { master_key_hex: Some(FIXTURE_KEY.into()), ..AppOptions::default() }
}

fn resealed_secret() -> Vec<u8> {
    let key = payrail::services::secrets::MasterKey::from_hex(FIXTURE_KEY).unwrap_or_else(|e| panic!("{e}"));
    let partner = payrail::domain::RegistrationId::new(1001);
    key.seal(partner, b"fixture-partner-secret").unwrap_or_else(|e| panic!("{e}")).0
}

async fn a_store_made_before_keeps_its_numbers_and_new_ones_do_not_collide(engine: Engine) {
    // Made by payrail before item 24 (SQLite `.dump`, `pg_dump --inserts`):
    // partner AOP-1001 (no token, loopback), transfers OLD-D-1..3 with ackno
    // 1..3 and bill payments OLD-B-1..3 with txnid 1..3, made by the operator.
    let (app, _database) = match engine {
        Engine::Sqlite => {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let conn = rusqlite::Connection::open(dir.path().join("payrail.db")).unwrap_or_else(|e| panic!("{e}"));
            conn.execute_batch(include_str!("fixtures/store_before_item_24.sqlite.sql"))
                .unwrap_or_else(|e| panic!("load the SQLite fixture: {e}"));
            conn.execute("UPDATE partners SET secret = ?1 WHERE id = 1001", [resealed_secret()])
                .unwrap_or_else(|e| panic!("{e}"));
            drop(conn);
            (spawn_app_in(dir, fixture_key()).await, None)
        }
        Engine::Postgres => {
            let base = postgres_url().unwrap_or_else(|| panic!("no PAYRAIL_TEST_DATABASE_URL"));
            let database = fresh_postgres_database(&base).await;
            let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}"));
            tokio::spawn(connection);
            client
                .batch_execute(include_str!("fixtures/store_before_item_24.postgres.sql"))
                .await
                .unwrap_or_else(|e| panic!("load the PostgreSQL fixture: {e}"));
            client
                .execute("UPDATE public.partners SET secret = $1 WHERE id = 1001", &[&resealed_secret()])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            drop(client);
            (spawn_app_on(&database.url, fixture_key()).await, Some(database))
        }
    };
    let old_ones_answer = || async {
        for n in 1..=3 {
            let shown = app.admin(&format!("/admin/v1/dmt/{n}"), None).await;
            assert_eq!(shown.json()["reference_id"], format!("OLD-D-{n}"), "{}", shown.body);
            let shown = app.admin(&format!("/admin/v1/bbps/{n}"), None).await;
            assert_eq!(shown.json()["reference_id"], format!("OLD-B-{n}"), "{}", shown.body);
        }
        let found = app.dmt_status("AOP-1001", "OLD-D-2", None).await;
        assert_eq!((&found.json()["ackno"], &found.json()["amount"]), (&json!("2"), &json!("200")), "{}", found.body);
        let found = app.bill_status("AOP-1001", "OLD-B-3", None).await;
        assert_eq!(found.json()["data"]["txnid"], "3", "{}", found.body);
    };
    old_ones_answer().await;

    let mut acknos = Vec::new();
    let mut txnids = Vec::new();
    for n in 0..20 {
        acknos.push(operator_transfer(&app, "AOP-1001", &format!("NEW-D-{n}")).await);
        txnids.push(operator_bill(&app, "AOP-1001", &format!("NEW-B-{n}")).await);
    }
    assert_not_a_count("new acknos", &acknos);
    assert_not_a_count("new txnids", &txnids);
    old_ones_answer().await;
    let found = app.dmt_status("AOP-1001", "NEW-D-7", None).await;
    assert_eq!(number(&found.json()["ackno"]), acknos[7], "{}", found.body);
    assert_verify_clean(&app);
}
