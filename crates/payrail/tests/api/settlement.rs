//! Settling with the upstream leaves nothing half done: a failed bill is
//! refunded in the transaction that fails it (or not failed at all), `payrail
//! verify` finds a wallet-paid bill left failed without its refund, and a
//! decided transaction leaves the poller's queue as it is decided.

use payrail::domain::TxnKind;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{eventually, payrail, spawn_app, spawn_app_with, text, AppOptions, Engine, TestApp, TestUpstream};
use crate::journey::{assert_verify_clean, balance};
use crate::upstream_sandbox::{bill, dmt, funded_partner, history, pay, send, until_dmt};

both_engines!(
    verify_reports_a_wallet_paid_bill_failed_without_its_refund,
    an_upstream_failure_whose_refund_cannot_be_written_leaves_the_bill_wholly_unfailed,
    settled_transactions_leave_the_poll_queue_and_undecided_ones_stay,
    a_return_after_payment_arrives_as_a_callback_once_nothing_polls,
);

/// Runs SQL straight on the app's database (corruption, fault injection).
pub async fn raw_sql(app: &TestApp, sqlite: &str, postgres: &str) {
    match &app.database_url {
        Some(url) => {
            let (client, connection) =
                tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("{e}"));
            tokio::spawn(connection);
            client.batch_execute(postgres).await.unwrap_or_else(|e| panic!("{e}"));
        }
        None => {
            let conn =
                rusqlite::Connection::open(app.data_dir.path().join("payrail.db")).unwrap_or_else(|e| panic!("{e}"));
            conn.execute_batch(sqlite).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// An id from a JSON string or number.
fn id_of(value: &Value) -> i64 {
    value.as_i64().or_else(|| value.as_str().and_then(|s| s.parse().ok())).unwrap_or_else(|| panic!("an id: {value}"))
}

async fn verify_reports_a_wallet_paid_bill_failed_without_its_refund(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    crate::journey::top_up(&app, &partner, "1000").await;
    let txnid = id_of(&pay(&app, &partner, "150012345678", "BILL-CORRUPT").await["ackno"]);
    assert_verify_clean(&app);

    // What a crash between the old two steps left: failed, wallet still debited.
    let sql = format!("UPDATE bill_payments SET status = 'failed' WHERE txnid = {txnid}");
    raw_sql(&app, &sql, &sql).await;
    let out = payrail(&app, &["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.contains(&format!("VIOLATION: bbps {txnid} was paid from the wallet and failed, but never refunded")),
        "{report}"
    );
    let api = app.admin("/admin/v1/verify", None).await.json();
    assert_eq!(api["ok"], false, "{api}");
}

fn sandbox_that_waits() -> AppOptions {
    // Nothing settles on its own: an hour per step, an hour between polls.
    AppOptions {
        upstream: TestUpstream::Sandbox { step_secs: 3600 },
        poll_schedule: Some("1h"),
        ..AppOptions::default()
    }
}

const BREAK_REFUNDS_SQLITE: &str = "CREATE TRIGGER break_refunds BEFORE INSERT ON journals \
     WHEN NEW.purpose = 'refund' BEGIN SELECT RAISE(ABORT, 'refunds are broken'); END;";
const BREAK_REFUNDS_POSTGRES: &str = "CREATE FUNCTION break_refunds() RETURNS trigger LANGUAGE plpgsql AS \
     $$ BEGIN RAISE EXCEPTION 'refunds are broken'; END $$; \
     CREATE TRIGGER break_refunds BEFORE INSERT ON journals FOR EACH ROW WHEN (NEW.purpose = 'refund') \
     EXECUTE FUNCTION break_refunds();";

async fn an_upstream_failure_whose_refund_cannot_be_written_leaves_the_bill_wholly_unfailed(engine: Engine) {
    let app = spawn_app_with(engine, sandbox_that_waits()).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let paid = pay(&app, &partner, "150012345678", "BILL-ATOMIC").await;
    assert_eq!(paid["message"], "Transaction Pending", "{paid}");
    let txnid = id_of(&paid["ackno"]);
    let old_way = id_of(&pay(&app, &partner, "150012345679", "BILL-TWO-STEPS").await["ackno"]);
    let debited = balance(&app, &partner).await;

    // The refund step fails inside the database, after the failure was written.
    raw_sql(&app, BREAK_REFUNDS_SQLITE, BREAK_REFUNDS_POSTGRES).await;

    // The old way, two store calls: the failure commits, the refund does not.
    let note = || payrail::store::ChangeNote {
        source: payrail::domain::ChangeSource::Admin,
        reason: None,
        at: payrail::domain::Timestamp::now(),
    };
    let fail = payrail::domain::bbps::BillChange::Fail;
    assert!(app.store.change_bill(old_way, fail, note()).await.is_ok());
    let refund = payrail::domain::bbps::BillChange::Refund { refund_txn_id: None };
    assert!(app.store.change_bill(old_way, refund, note()).await.is_err(), "the refund step fails");
    let out = payrail(&app, &["verify"]);
    let report = text(&out.stdout);
    assert!(
        report.contains(&format!("bbps {old_way} was paid from the wallet and failed, but never refunded")),
        "{report}"
    );
    assert_eq!(out.status.code(), Some(1), "{report}");

    let failed = json!({"kind": "bbps", "id": txnid, "to": "failed"});
    let refused = app.admin("/sandbox/v1/advance", Some(failed.clone())).await;
    assert_eq!(refused.status, 500, "the upstream's word could not be applied: {}", refused.body);
    // Wholly before: still pending, still followed up, nothing half written.
    let status = bill(&app, &partner, "BILL-ATOMIC").await;
    assert_eq!((&status["data"]["status"], &status["data"]["refunded"]), (&json!("2"), &json!("0")), "{status}");
    assert_eq!(balance(&app, &partner).await, debited);
    assert!(app.store.poll_job(TxnKind::Bbps, txnid).await.ok().flatten().is_some(), "still polled");

    // Once refunds can be written again, the same callback does both steps at
    // once; the payment the old way left failed is refunded by the poller's
    // recovery path (`fail_bill` on a failed payment only refunds it).
    raw_sql(&app, "DROP TRIGGER break_refunds;", "DROP TRIGGER break_refunds ON journals;").await;
    let finished = app.store.fail_bill(old_way, note(), note()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(finished.status, payrail::domain::BillStatus::Refunded);
    let applied = app.admin("/sandbox/v1/advance", Some(failed)).await;
    assert_eq!((applied.status, &applied.json()["status"]), (200, &json!("refunded")), "{}", applied.body);
    let status = bill(&app, &partner, "BILL-ATOMIC").await;
    assert_eq!((&status["data"]["refunded"], &status["message"]), (&json!("1"), &json!("Transaction Refunded")));
    assert_eq!(balance(&app, &partner).await, "50000.00", "the wallet has both bills back");
    let shown = app.admin(&format!("/admin/v1/bbps/{txnid}"), None).await.json();
    let steps: Vec<String> = shown["history"]
        .as_array()
        .cloned()
        .expect("history is an array")
        .iter()
        .map(|h| format!("{}:{}", h["to"].as_str().unwrap_or(""), h["source"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(steps, ["pending:partner", "failed:sandbox", "refunded:sandbox"], "{shown}");
    assert!(app.store.poll_job(TxnKind::Bbps, txnid).await.ok().flatten().is_none(), "decided: no longer polled");
    assert_verify_clean(&app);
}

/// The transaction's poll job, if it has one.
async fn job(app: &TestApp, kind: TxnKind, id: i64) -> Option<payrail::domain::event::PollJob> {
    app.store.poll_job(kind, id).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn settled_transactions_leave_the_poll_queue_and_undecided_ones_stay(engine: Engine) {
    let options = AppOptions { upstream: TestUpstream::Sandbox { step_secs: 1 }, ..AppOptions::default() };
    let app = spawn_app_with(engine, options).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let paid = id_of(&send(&app, &partner, "123456789012", "1000", "Q-PAID").await["ackno"]);
    let failed = id_of(&send(&app, &partner, "100000000111", "1000", "Q-FAILED").await["ackno"]);
    let late = id_of(&send(&app, &partner, "100000000444", "1000", "Q-LATE").await["ackno"]);
    let never = id_of(&send(&app, &partner, "100000000777", "1000", "Q-NEVER").await["ackno"]);
    let bill_paid = id_of(&pay(&app, &partner, "150012345678", "Q-BILL").await["ackno"]);
    let bill_failed = id_of(&pay(&app, &partner, "150012345111", "Q-BILL-FAIL").await["ackno"]);

    // Failed on submission: decided there and then, no job at all.
    assert_eq!(dmt(&app, &partner, "Q-FAILED").await["txn_status"], "5");
    assert!(job(&app, TxnKind::Dmt, failed).await.is_none(), "a failed transfer is not polled");
    assert_eq!(bill(&app, &partner, "Q-BILL-FAIL").await["data"]["refunded"], "1");
    assert!(job(&app, TxnKind::Bbps, bill_failed).await.is_none(), "a refunded bill is not polled");

    // Paid with its UTR: the job goes with the change that records it.
    until_dmt(&app, &partner, "Q-PAID", "1", 15).await;
    assert!(job(&app, TxnKind::Dmt, paid).await.is_none(), "a paid transfer with its UTR is not polled");
    eventually(15, "Q-BILL paid", || async {
        (bill(&app, &partner, "Q-BILL").await["data"]["status"] == "1").then_some(())
    })
    .await;
    assert!(job(&app, TxnKind::Bbps, bill_paid).await.is_none(), "a paid bill is not polled");

    // Paid without a UTR: followed until the UTR comes, then gone.
    let without_utr = until_dmt(&app, &partner, "Q-LATE", "1", 15).await;
    if without_utr["utr"].is_null() {
        assert!(job(&app, TxnKind::Dmt, late).await.is_some(), "a paid transfer still waiting for its UTR is polled");
    }
    let ackno = late.to_string();
    eventually(15, "Q-LATE's UTR", || async {
        history(&app, &ackno)
            .await
            .iter()
            .any(|h| h["reason"].as_str().is_some_and(|r| r.contains("UTR 6")))
            .then_some(())
    })
    .await;
    assert!(job(&app, TxnKind::Dmt, late).await.is_none(), "with its UTR, decided");

    // Undecided: on hold after the schedule, its job kept (held) for an operator.
    until_dmt(&app, &partner, "Q-NEVER", "4", 20).await;
    let held = eventually(20, "Q-NEVER's held job", || async {
        job(&app, TxnKind::Dmt, never).await.filter(|j| j.due_at.unix() == 0)
    })
    .await;
    assert_eq!(held.txn_id, never);
    // An operator decides it: the held job goes too.
    let moved = app.admin(&format!("/admin/v1/dmt/{never}/transition"), Some(json!({"to": "failed"}))).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert!(job(&app, TxnKind::Dmt, never).await.is_none(), "decided by an operator: no longer held");
    let held_list = app.admin("/admin/v1/upstream/held", None).await.json();
    assert_eq!(held_list["held"], json!([]), "{held_list}");
    assert_verify_clean(&app);
}

async fn a_return_after_payment_arrives_as_a_callback_once_nothing_polls(engine: Engine) {
    // Status lookups settle the payments (the poller waits an hour), so the
    // return at 3T = 6 s can only come as the sandbox's callback.
    let options = AppOptions {
        upstream: TestUpstream::Sandbox { step_secs: 2 },
        poll_schedule: Some("1h"),
        ..AppOptions::default()
    };
    let app = spawn_app_with(engine, options).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    let ackno = id_of(&send(&app, &partner, "100000000333", "1000", "R-DMT").await["ackno"]);
    let txnid = id_of(&pay(&app, &partner, "150012345333", "R-BILL").await["ackno"]);

    // Paid at T (asked by the lookups): decided, so no longer polled.
    until_dmt(&app, &partner, "R-DMT", "1", 10).await;
    assert!(job(&app, TxnKind::Dmt, ackno).await.is_none());
    eventually(10, "R-BILL paid", || async {
        (bill(&app, &partner, "R-BILL").await["data"]["status"] == "1").then_some(())
    })
    .await;
    assert!(job(&app, TxnKind::Bbps, txnid).await.is_none());

    // Returned at 3T, as the upstream's callback: reported, then confirmed by
    // the re-query it schedules (within 10 s), the transfer fails; the bill is refunded.
    until_dmt(&app, &partner, "R-DMT", "5", 30).await;
    let rows = history(&app, &ackno.to_string()).await;
    let [.., reported, confirmed] = rows.as_slice() else { panic!("a history: {rows:?}") };
    assert_eq!((&reported["to"], &reported["source"]), (&json!("success"), &json!("upstream-callback")), "{reported}");
    assert_eq!((&confirmed["to"], &confirmed["source"]), (&json!("failed"), &json!("poller")), "{confirmed}");
    let refunded = eventually(15, "R-BILL reversed and refunded", || async {
        let status = bill(&app, &partner, "R-BILL").await;
        (status["data"]["refunded"] == "1").then_some(status)
    })
    .await;
    assert_eq!(refunded["message"], "Transaction Refunded");
    let shown = app.admin(&format!("/admin/v1/bbps/{txnid}"), None).await.json();
    let sources: Vec<&str> = shown["history"]
        .as_array()
        .map(|h| h.iter().filter_map(|e| e["source"].as_str()).collect())
        .expect("history is an array");
    assert_eq!(sources.last(), Some(&"upstream-callback"), "{shown}");
    // The transfer waits for the remitter's refund claim; the bill is back in the wallet.
    let now: f64 = balance(&app, &partner).await.parse().expect("a number");
    let expected = start.parse::<f64>().expect("an amount") - 1010.0;
    assert!((now - expected).abs() < 0.001, "{now} vs {expected}");
    assert_verify_clean(&app);
}
