//! A store made by the payrail of before issue 10 (commit `e6013ff`, the
//! last main with migrations in Rust string literals) opens with today's
//! code, migrations now read from `.sql` files, and reads as it was written:
//! partners and their sealed secrets, transactions, their history, and the
//! ledger.
//!
//! The fixtures were made with that commit's `payrail` binary:
//! `payrail serve --demo`, then as partner AOP-554 a bill payment through the
//! API (`OLD-MAIN-BILL-1`) and a callback URL, then with the CLI an import of
//! one transfer (`OLD-MAIN-DMT-1`) and one bill payment (`OLD-MAIN-BBPS-1`)
//! and a top-up of Rs 2,500, with the sandbox settling the demo's `LIVE-*`
//! transactions meanwhile. To keep the fixtures small, the bulk demo rows past
//! the first 100 of each kind were then deleted with their history (SQL by
//! hand; nothing else was touched). SQLite: the `payrail.db` file itself.
//! PostgreSQL: `pg_dump --inserts --no-owner --no-privileges` of its database.

use serde_json::json;

use payrail::domain::RegistrationId;

use crate::both_engines;
use crate::helpers::{
    fresh_postgres_database, postgres_url, spawn_app_in, spawn_app_on, AppOptions, Engine, TestApp, TestPartner,
};
use crate::journey::assert_verify_clean;

both_engines!(a_store_made_by_the_main_before_issue_10_opens_and_reads_as_it_was_written);

/// The master key the fixtures' secrets were sealed under (test data).
const OLD_MAIN_KEY: &str = "6f6c642d6d61696e2d666978747572652d6b65792d31302d706c2d3030303031";

/// AOP-1001's token secret, as the old demo printed it when it made each fixture.
fn token_partner(engine: Engine) -> TestPartner {
    let secret = match engine {
        Engine::Sqlite => "hj8dUkGVucS3kGzLS867KEKrXKhaoinY4rZpIdY6nZQ",
        Engine::Postgres => "al7fK0mn-W_d4Gy-w0VypG2yjkwQEgKi65Ia4GQbykk",
    };
    TestPartner { id: RegistrationId::new(1001), secret: secret.into() }
}

/// An app over the restored fixture, under the old master key. Opening the
/// store runs every migration the fixture lacks.
pub async fn open_fixture(engine: Engine) -> (TestApp, Option<crate::helpers::TempDatabase>) {
    let options = AppOptions { master_key_hex: Some(OLD_MAIN_KEY.into()), ..AppOptions::default() };
    match engine {
        Engine::Sqlite => {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(dir.path().join("payrail.db"), include_bytes!("fixtures/store_from_old_main.sqlite.db"))
                .unwrap_or_else(|e| panic!("write the SQLite fixture: {e}"));
            (spawn_app_in(dir, options).await, None)
        }
        Engine::Postgres => {
            let base = postgres_url().unwrap_or_else(|| panic!("no PAYRAIL_TEST_DATABASE_URL"));
            let database = fresh_postgres_database(&base).await;
            let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}"));
            tokio::spawn(connection);
            // pg_dump writes psql's `\restrict`/`\unrestrict` around the dump:
            // meta-commands for psql, not SQL.
            let dump: String = include_str!("fixtures/store_from_old_main.postgres.sql")
                .lines()
                .filter(|line| !line.starts_with('\\'))
                .collect::<Vec<_>>()
                .join("\n");
            client.batch_execute(&dump).await.unwrap_or_else(|e| panic!("load the PostgreSQL fixture: {e}"));
            drop(client);
            (spawn_app_on(&database.url, options).await, Some(database))
        }
    }
}

async fn a_store_made_by_the_main_before_issue_10_opens_and_reads_as_it_was_written(engine: Engine) {
    let (app, _database) = open_fixture(engine).await;

    // Partners, with their secrets sealed under the old key.
    let partners = app.store.list_partners().await.unwrap_or_else(|e| panic!("{e}"));
    let listed: Vec<(i64, bool)> = partners.iter().map(|p| (p.registration_id.number(), p.require_token)).collect();
    assert_eq!(listed, vec![(554, false), (1001, true)]);
    let callback = app.store.callback_url(RegistrationId::new(554)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(callback.as_deref(), Some("http://127.0.0.1:9/"));
    let secrets = app.store.callback_secrets(RegistrationId::new(554)).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(secrets.is_some_and(|s| s.previous.is_none()), "AOP-554 keeps its one callback secret");
    let signed = token_partner(engine);
    let found = app.dmt_status(&signed.name(), "DEMO-DMT-000001", Some(&signed.token())).await;
    assert_eq!((found.status, &found.json()["referenceid"]), (200, &json!("DEMO-DMT-000001")), "{}", found.body);

    // The seed documents' own records, byte for byte as the old main answered.
    let seed = app.dmt_status("AOP-554", "12345678927", None).await;
    assert_eq!(
        seed.body,
        r#"{"status":true,"response_code":1,"utr":"101306003674","amount":"100","ackno":"128","referenceid":"12345678927","account":"20018575947","txn_status":"1","message":"Transaction Successful","customercharge":"10.00","gst":"1.53","discount":"1.53","tds":"0.19","netcommission":"4.78","daterefunded":"2021-01-15 18:38:38","refundtxnid":"130"}"#
    );
    let seed = app.bill_status("AOP-554", "123456", None).await;
    assert_eq!(
        seed.body,
        r#"{"response_code":1,"status":true,"data":{"txnid":"55","operatorname":"BSES Rajdhani Power Limited","canumber":"102277100","amount":"100","ad1":null,"ad2":null,"ad3":null,"comm":"0.21","tds":"0.01","status":"0","refid":"123456","operatorid":null,"dateadded":"2021-01-11 15:43:20","refunded":"1","refundtxnid":"57","daterefunded":"2021-01-11 15:53:08"},"message":"Transaction Refunded"}"#
    );

    // What the old main made through its API, its CLI and its sandbox.
    let imported = app.dmt_status("AOP-554", "OLD-MAIN-DMT-1", None).await.json();
    assert_eq!((&imported["txn_status"], &imported["utr"]), (&json!("1"), &json!("UTR0OLDMAIN1")));
    assert_eq!((&imported["amount"], &imported["customercharge"]), (&json!("1500"), &json!("15.00")));
    let imported = app.bill_status("AOP-554", "OLD-MAIN-BBPS-1", None).await.json();
    assert_eq!((&imported["data"]["status"], &imported["data"]["amount"]), (&json!("1"), &json!("750")));
    let paid = app.bill_status("AOP-554", "OLD-MAIN-BILL-1", None).await.json();
    assert_eq!((&paid["data"]["status"], &paid["data"]["amount"]), (&json!("1"), &json!("500")), "{paid}");

    // History: a transfer the bank returned, a bill payment refunded to the wallet.
    let returned = app.dmt_status("AOP-554", "LIVE-DMT-2", None).await.json();
    assert_eq!(returned["txn_status"], "5", "{returned}");
    let ackno = returned["ackno"].as_str().unwrap_or_else(|| panic!("no ackno: {returned}"));
    let shown = app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await.json();
    assert_eq!(steps(&shown), ["->in_process", "in_process->sent_to_bank", "sent_to_bank->success", "success->failed"]);
    assert_eq!(shown["history"][3]["source"], "upstream-callback", "{shown}");
    let refunded = app.bill_status("AOP-554", "LIVE-BILL-2", None).await.json();
    assert_eq!((&refunded["data"]["status"], &refunded["data"]["refunded"]), (&json!("0"), &json!("1")));
    let txnid = refunded["data"]["txnid"].as_str().unwrap_or_else(|| panic!("no txnid: {refunded}"));
    let shown = app.admin(&format!("/admin/v1/bbps/{txnid}"), None).await.json();
    assert_eq!(steps(&shown), ["->pending", "pending->failed", "failed->refunded"]);

    // The ledger: the balance, a statement that ends on it, and a clean audit.
    let wallet = app.admin("/admin/v1/partners/AOP-554/wallet", None).await.json();
    assert_eq!(wallet["balance"], "98220.00");
    let statement = app.admin("/admin/v1/partners/AOP-554/wallet/statement?from=2026-12-01&to=2026-12-31", None).await;
    assert!(statement.body.contains("refund,bbps:"), "{}", statement.body);
    assert!(statement.body.contains(",ref LIVE-BILL-2,750.00,"), "{}", statement.body);
    assert!(statement.body.trim_end().ends_with("closing balance,,,,98220.00"), "{}", statement.body);
    let audit = app.store.audit().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((audit.total, audit.journals), (0, 10));
    assert_verify_clean(&app);

    // And it keeps working: money moves on the old wallet.
    let moved = app.admin("/admin/v1/partners/AOP-554/wallet/topup", Some(json!({"amount": "100", "memo": "t"}))).await;
    assert_eq!((moved.status, &moved.json()["closing"]), (200, &json!("98320.00")), "{}", moved.body);

    // The migration chained every row the old main wrote (issue 15, item 6),
    // and the top-up made since joined AOP-554's chain as its head.
    let unsealed = app.store.unsealed_links(10).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(unsealed.is_empty(), "{unsealed:?}");
    let heads = app.store.chain_heads().await.unwrap_or_else(|e| panic!("{e}"));
    let head = heads.iter().find(|h| h.partner == 554).unwrap_or_else(|| panic!("no chain for AOP-554: {heads:?}"));
    assert!(head.last.starts_with("journal:") && head.seq > 10, "{head:?}");
    assert_verify_clean(&app);
}

/// A transaction view's history as `from->to` steps.
fn steps(shown: &serde_json::Value) -> Vec<String> {
    let history = shown["history"].as_array().unwrap_or_else(|| panic!("no history: {shown}"));
    history
        .iter()
        .map(|h| format!("{}->{}", h["from"].as_str().unwrap_or(""), h["to"].as_str().unwrap_or("")))
        .collect()
}
