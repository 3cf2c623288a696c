//! The sandbox upstream end to end: transactions settle on their own through
//! the poller and status lookups, undecided ones go on hold, failures refund
//! exactly once, and partners are called back, signed, for every step.
//! (Scenarios by account suffix: see `services::upstream::sandbox`; one step = 1 s here.)
//! Where a scenario unfolds in time, the test moves the app's manual clock
//! step by step: a transaction is never a second older than the test says.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{
    eventually, payrail, spawn_app_with, text, AppOptions, CallbackReceiver, Engine, TestApp, TestPartner, TestUpstream,
};
use crate::journey::{
    add_beneficiary_account, assert_refused, assert_verify_clean, balance, beneficiary_with_account, register_remitter,
    top_up, transfer, MOBILE,
};

both_engines!(
    a_sandbox_transfer_settles_on_its_own_and_the_partner_hears_of_each_step,
    undecided_transfers_go_on_hold_when_the_schedule_runs_out,
    a_failure_shows_at_once_and_a_bank_return_fails_a_paid_transfer_refunded_once,
    a_late_utr_completes_a_successful_transfer,
    a_status_lookup_asks_the_upstream_and_falls_back_to_the_store_on_timeout,
    bill_payments_settle_and_failed_ones_go_back_to_the_wallet_once,
    an_operator_drives_the_sandbox_by_hand_and_stale_answers_change_nothing,
    callbacks_survive_a_receiver_that_is_down_for_a_while,
    callback_urls_are_checked_and_without_one_no_event_is_written,
);

fn sandbox() -> AppOptions {
    AppOptions { upstream: TestUpstream::Sandbox { step_secs: 1 }, ..AppOptions::default() }
}

/// One sandbox step.
const STEP: Duration = Duration::from_secs(1);

/// A funded partner with a registered remitter, whose callbacks go to a fresh receiver.
pub async fn funded_partner(app: &TestApp) -> (TestPartner, CallbackReceiver) {
    let partner = app.add_partner(true, &[]).await;
    let receiver = CallbackReceiver::start().await;
    let set = payrail(app, &["callback", "set", &partner.name(), &receiver.url, "--json"]);
    assert!(set.status.success(), "{}", text(&set.stderr));
    let shown: Value = serde_json::from_slice(&set.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&set.stdout)));
    receiver.set_secret(shown["callback_secret"].as_str().unwrap_or_else(|| panic!("no callback secret: {shown}")));
    top_up(app, &partner, "50000").await;
    register_remitter(app, &partner, MOBILE).await;
    (partner, receiver)
}

/// A transfer of `amount` to the beneficiary with this account (added if
/// new); returns the `Transaction` answer.
pub async fn send(app: &TestApp, partner: &TestPartner, account: &str, amount: &str, reference: &str) -> Value {
    let bene = match beneficiary_with_account(app, partner, MOBILE, account).await {
        Some(bene) => bene,
        None => add_beneficiary_account(app, partner, MOBILE, account).await,
    };
    let sent = transfer(app, partner, MOBILE, &bene, amount, reference).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    sent.json()
}

pub async fn dmt(app: &TestApp, partner: &TestPartner, reference: &str) -> Value {
    let answer = app.dmt_status(&partner.name(), reference, Some(&partner.token())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

/// Waits until the transfer's `txn_status` is `code` (status lookups also ask the sandbox).
pub async fn until_dmt(app: &TestApp, partner: &TestPartner, reference: &str, code: &str, secs: u64) -> Value {
    eventually(secs, &format!("{reference} txn_status {code}"), || async {
        let status = dmt(app, partner, reference).await;
        (status["txn_status"] == code).then_some(status)
    })
    .await
}

/// The transfer's history, from the operator API.
pub async fn history(app: &TestApp, ackno: &str) -> Vec<Value> {
    let shown = app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    shown.json()["history"].as_array().cloned().expect("history is an array")
}

async fn a_sandbox_transfer_settles_on_its_own_and_the_partner_hears_of_each_step(engine: Engine) {
    let app = spawn_app_with(engine, sandbox().on_manual_clock()).await;
    let (partner, receiver) = funded_partner(&app).await;
    let sent = send(&app, &partner, "123456789012", "1000", "UP-1").await;
    assert_eq!((&sent["txn_status"], &sent["utr"]), (&json!("3"), &Value::Null), "handed to the bank: {sent}");
    let ackno = sent["ackno"].as_str().expect("ackno is a string").to_owned();
    app.advance(STEP).await;

    // Nobody asks: the poller finds the success on its own.
    eventually(15, "the poller settles UP-1", || async {
        let history = history(&app, &ackno).await;
        history.iter().any(|h| h["to"] == "success" && h["source"] == "poller").then_some(())
    })
    .await;
    let status = dmt(&app, &partner, "UP-1").await;
    assert_eq!((&status["txn_status"], &status["message"]), (&json!("1"), &json!("Transaction Successful")));
    assert!(status["utr"].as_str().is_some_and(|u| u.len() == 12), "a UTR: {status}");

    // The partner heard of both steps, in order, signed with its secret.
    let deliveries = eventually(10, "two callbacks", || async {
        let got = receiver.deliveries();
        (got.len() >= 2).then_some(got)
    })
    .await;
    let states: Vec<String> =
        deliveries.iter().map(|d| d.json()["state"].as_str().expect("state is a string").to_owned()).collect();
    assert_eq!(states, ["sent_to_bank", "success"], "{deliveries:?}");
    for delivery in &deliveries {
        assert!(delivery.signed_by(&receiver.secret()), "signature verifies: {delivery:?}");
        assert!(!delivery.signed_by(&partner.secret), "never signed with the API token secret: {delivery:?}");
        let body = delivery.json();
        assert_eq!(body["event_id"], json!(delivery.event_id), "the header and the body name the same event");
        assert_eq!((&body["referenceid"], &body["ackno"]), (&json!("UP-1"), &json!(ackno)));
    }
    assert_eq!(deliveries[1].json()["utr"], status["utr"]);
    assert!(!deliveries[0].signed_by("not-the-secret"));

    // The operator API shows each event delivered on its first attempt. The
    // receiver has the body before the deliverer records the attempt: wait
    // for the record, not for the receiver.
    let path = format!("/admin/v1/events?partner={}", partner.name());
    let events = eventually(10, "both deliveries recorded", || async {
        let events = app.admin(&path, None).await.json()["events"].as_array().cloned().expect("events is an array");
        events.iter().all(|e| e["state"] != "pending").then_some(events)
    })
    .await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e["state"] == "delivered" && e["attempts"] == 1), "{events:?}");
    assert_verify_clean(&app);
}

async fn undecided_transfers_go_on_hold_when_the_schedule_runs_out(engine: Engine) {
    let app = spawn_app_with(engine, sandbox().on_manual_clock()).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let garbage = send(&app, &partner, "100000000666", "1000", "UP-GARBAGE").await;
    let never = send(&app, &partner, "100000000777", "1000", "UP-NEVER").await;
    assert_eq!(garbage["txn_status"], "2", "a garbage answer decides nothing: {garbage}");
    assert_eq!(never["txn_status"], "3");
    let after_debits = balance(&app, &partner).await;

    // The schedule: six polls, a step apart.
    for _ in 0..6 {
        app.advance(STEP).await;
    }
    for reference in ["UP-GARBAGE", "UP-NEVER"] {
        let status = until_dmt(&app, &partner, reference, "4", 20).await;
        assert_eq!(status["message"], "Transaction On Hold");
    }
    let ackno = never["ackno"].as_str().expect("ackno is a string");
    let last = history(&app, ackno).await.last().cloned().expect("a history");
    assert_eq!((&last["to"], &last["source"]), (&json!("on_hold"), &json!("poller")), "{last}");
    assert!(last["reason"].as_str().is_some_and(|r| r.contains("after 6 polls")), "{last}");

    // The poller writes the transfer's on-hold state, then parks its job: wait for both jobs.
    eventually(20, "both transfers in the held list", || async {
        let held = app.admin("/admin/v1/upstream/held", None).await.json();
        (held["held"].as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await;
    let cli = payrail(&app, &["upstream", "held"]);
    assert!(text(&cli.stdout).contains(&format!("dmt:{ackno}  after 6 polls")), "{}", text(&cli.stdout));
    // An operator resumes one: it leaves the held list and is polled again.
    let resumed = payrail(&app, &["upstream", "resume", &format!("dmt:{ackno}")]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let held = text(&payrail(&app, &["upstream", "held"]).stdout);
    assert!(!held.contains(&format!("dmt:{ackno} ")), "{held}");
    let unknown = payrail(&app, &["upstream", "resume", "dmt:999999"]);
    assert!(!unknown.status.success() && text(&unknown.stderr).contains("no dmt transaction 999999"));
    // Nothing was invented: no refund, the money is still out.
    assert_eq!(balance(&app, &partner).await, after_debits);
    assert_verify_clean(&app);
}

async fn a_failure_shows_at_once_and_a_bank_return_fails_a_paid_transfer_refunded_once(engine: Engine) {
    let app = spawn_app_with(engine, sandbox().on_manual_clock()).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    let failed = send(&app, &partner, "100000000111", "1000", "UP-FAIL").await;
    assert_eq!((&failed["txn_status"], &failed["message"]), (&json!("5"), &json!("Transaction Failed")));

    let returned = send(&app, &partner, "100000000333", "2000", "UP-RETURN").await;
    assert_eq!(returned["txn_status"], "3");
    // Paid at T (1 s), returned by the bank at 3T: the return's callback is
    // recorded, and the re-query it schedules (one step later) confirms it.
    app.advance(STEP).await;
    until_dmt(&app, &partner, "UP-RETURN", "1", 10).await;
    app.advance(2 * STEP).await;
    let ackno = returned["ackno"].as_str().expect("ackno is a string").to_owned();
    eventually(15, "the return reported, not yet applied", || async {
        let last = history(&app, &ackno).await.last().cloned()?;
        last["reason"].as_str().is_some_and(|r| r.contains("bank return reported")).then_some(())
    })
    .await;
    assert_eq!(dmt(&app, &partner, "UP-RETURN").await["txn_status"], "1", "one contradicting answer flips nothing");
    app.advance(STEP).await;
    until_dmt(&app, &partner, "UP-RETURN", "5", 15).await;
    assert_ne!(balance(&app, &partner).await, start, "failed is not refunded yet");

    // The remitter claims each refund once; the upstream saying "failed" again moves no money.
    for reference in ["UP-FAIL", "UP-RETURN"] {
        let otp = app.call("/api/AOP/DMTV1/RefundOtp", &partner, json!({"referenceid": reference})).await;
        assert_eq!(otp.status, 200, "{}", otp.body);
        let claim =
            json!({"referenceid": reference, "Stateresp": otp.json()["stateresp"], "OTP": app.sms.last_otp(MOBILE)});
        let claimed = app.call("/api/AOP/DMTV1/ClaimRefund", &partner, claim.clone()).await;
        assert_eq!(claimed.json()["txn_status"], "0", "{}", claimed.body);
        assert_refused(&app.call("/api/AOP/DMTV1/ClaimRefund", &partner, claim).await, 409, 16, "already refunded");
    }
    // The poller keeps looking meanwhile: past every poll the schedule (six
    // of 1 s) could still make, and past the return, it changes nothing.
    app.advance(Duration::from_secs(10)).await;
    assert_eq!(dmt(&app, &partner, "UP-RETURN").await["txn_status"], "0", "refunded is final");
    assert_eq!(balance(&app, &partner).await, start, "each refunded exactly once");
    assert_verify_clean(&app);
}

async fn a_late_utr_completes_a_successful_transfer(engine: Engine) {
    let app = spawn_app_with(engine, sandbox().on_manual_clock()).await;
    let (partner, receiver) = funded_partner(&app).await;
    send(&app, &partner, "100000000444", "1000", "UP-LATE").await;
    app.advance(STEP).await;
    // Paid upstream without a UTR: still with the bank until the UTR arrives.
    eventually(10, "the upstream's success without a UTR asked about", || async {
        let ackno = dmt(&app, &partner, "UP-LATE").await["ackno"].as_str()?.to_owned();
        (history(&app, &ackno).await.len() >= 2).then_some(())
    })
    .await;
    let paid = dmt(&app, &partner, "UP-LATE").await;
    assert_eq!((&paid["txn_status"], &paid["utr"]), (&json!("3"), &Value::Null), "a success needs its UTR: {paid}");
    app.advance(2 * STEP).await;
    let completed = eventually(15, "the late UTR", || async {
        let status = dmt(&app, &partner, "UP-LATE").await;
        status["utr"].is_string().then_some(status)
    })
    .await;
    assert_eq!(completed["txn_status"], "1");
    let last = eventually(10, "a callback with the UTR", || async {
        receiver.deliveries().last().filter(|d| d.json()["utr"].is_string()).cloned()
    })
    .await;
    assert_eq!(last.json()["utr"], completed["utr"]);
}

async fn a_status_lookup_asks_the_upstream_and_falls_back_to_the_store_on_timeout(engine: Engine) {
    // The poller waits an hour: only status lookups can move these transfers.
    // Steps of 2 s: the success comes at 2 s, the timeouts last until 6 s.
    let options = AppOptions {
        poll_schedule: Some("1h"),
        upstream: TestUpstream::Sandbox { step_secs: 2 },
        ..AppOptions::default()
    }
    .on_manual_clock();
    let app = spawn_app_with(engine, options).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let sent = send(&app, &partner, "123456789012", "1000", "UP-SYNC").await;
    // An operator-made transfer was never handed to the upstream: lookups do not ask about it.
    let made = json!({"registration_id": partner.name(), "reference_id": "UP-OPERATOR", "amount": "1000",
                      "account": "123456789012"});
    let made = app.admin("/admin/v1/dmt", Some(made)).await;
    assert_eq!(made.status, 201, "{}", made.body);
    // Past the success (2 s), before the timeouts end (6 s).
    app.clock().advance(Duration::from_secs(3));
    let untouched = dmt(&app, &partner, "UP-OPERATOR").await;
    assert_eq!(untouched["txn_status"], "2", "not the sandbox's to settle: {untouched}");
    let status = dmt(&app, &partner, "UP-SYNC").await;
    assert_eq!(status["txn_status"], "1", "the lookup asked the sandbox: {status}");
    let ackno = sent["ackno"].as_str().expect("ackno is a string");
    let last = history(&app, ackno).await.last().cloned().expect("a history");
    assert_eq!(last["source"], "status-sync", "{last}");

    // The upstream hangs (3 s) on this one: the lookup answers from the store within its budget.
    let slow = send(&app, &partner, "100000000555", "1000", "UP-SLOW").await;
    assert_eq!(slow["txn_status"], "2", "the submission timed out: {slow}");
    let started = std::time::Instant::now();
    let status = dmt(&app, &partner, "UP-SLOW").await;
    let waited = started.elapsed();
    assert_eq!(status["txn_status"], "2", "the stored state: {status}");
    assert!(waited < std::time::Duration::from_millis(2900), "answered before the upstream did ({waited:?})");
}

/// BSES Rajdhani, from the operators list.
pub async fn bses(app: &TestApp, partner: &TestPartner) -> Value {
    let list = app.call("/api/AOP/BillPaymentOperators", partner, json!({})).await.json();
    let list = list["data"].as_array().cloned().expect("data is an array");
    list.iter().find(|o| o["name"] == "BSES Rajdhani Power Limited").map(|o| o["id"].clone()).expect("BSES is listed")
}

pub async fn pay(app: &TestApp, partner: &TestPartner, ca_number: &str, reference: &str) -> Value {
    let operator = bses(app, partner).await;
    let fields = json!({"operator": operator, "canumber": ca_number, "amount": "500", "referenceid": reference});
    let paid = app.call("/api/AOP/BillPaymentPaybill", partner, fields).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    paid.json()
}

pub async fn bill(app: &TestApp, partner: &TestPartner, reference: &str) -> Value {
    app.bill_status(&partner.name(), reference, Some(&partner.token())).await.json()
}

async fn bill_payments_settle_and_failed_ones_go_back_to_the_wallet_once(engine: Engine) {
    let app = spawn_app_with(engine, sandbox().on_manual_clock()).await;
    let (partner, receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;

    let ok = pay(&app, &partner, "150012345678", "BILL-OK").await;
    assert_eq!(ok["message"], "Transaction Pending");
    let failed = pay(&app, &partner, "150012345111", "BILL-FAIL").await;
    assert_eq!(failed["message"], "Transaction Refunded", "failed upstream, reversed at once: {failed}");
    pay(&app, &partner, "150012345222", "BILL-LATER").await;

    app.advance(STEP).await;
    let paid = eventually(10, "BILL-OK paid", || async {
        let status = bill(&app, &partner, "BILL-OK").await;
        (status["data"]["status"] == "1").then_some(status)
    })
    .await;
    assert!(paid["data"]["operatorid"].as_str().is_some_and(|r| r.starts_with("BBPS")), "{paid}");
    app.advance(STEP).await;
    let refunded = eventually(15, "BILL-LATER refunded", || async {
        let status = bill(&app, &partner, "BILL-LATER").await;
        (status["data"]["refunded"] == "1").then_some(status)
    })
    .await;
    assert_eq!((&refunded["data"]["status"], &refunded["message"]), (&json!("0"), &json!("Transaction Refunded")));
    let failed_status = bill(&app, &partner, "BILL-FAIL").await;
    assert_eq!(failed_status["data"]["refunded"], "1");

    // Only the paid bill is out of the wallet.
    let expected = start.parse::<f64>().expect("an amount") - 500.0;
    let now: f64 = balance(&app, &partner).await.parse().expect("a number");
    assert!((now - expected).abs() < 0.001, "{now} vs {expected}");
    let wanted = ["BILL-OK:success", "BILL-FAIL:failed", "BILL-FAIL:refunded", "BILL-LATER:refunded"];
    eventually(10, "the bill callbacks", || async {
        let states: Vec<String> = receiver
            .deliveries()
            .iter()
            .map(|d| {
                format!(
                    "{}:{}",
                    d.json()["referenceid"].as_str().unwrap_or(""),
                    d.json()["state"].as_str().unwrap_or("")
                )
            })
            .collect();
        wanted.iter().all(|w| states.iter().any(|s| s == w)).then_some(())
    })
    .await;
    assert_verify_clean(&app);
}

async fn an_operator_drives_the_sandbox_by_hand_and_stale_answers_change_nothing(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions { poll_schedule: Some("1h"), ..sandbox() }).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let sent = send(&app, &partner, "100000000777", "1000", "UP-HAND").await;
    let ackno: i64 = sent["ackno"].as_str().expect("ackno is a string").parse().expect("a number");
    let advance = |to: &str| json!({"kind": "dmt", "id": ackno, "to": to, "utr": "HANDUTR001"});

    let moved = app.admin("/sandbox/v1/advance", Some(advance("success"))).await;
    assert_eq!((moved.status, &moved.json()["status"]), (200, &json!("success")), "{}", moved.body);
    let status = dmt(&app, &partner, "UP-HAND").await;
    assert_eq!((&status["txn_status"], &status["utr"]), (&json!("1"), &json!("HANDUTR001")));
    // A stale "in process" after success changes nothing, and says so.
    let stale = app.admin("/sandbox/v1/advance", Some(advance("in_process"))).await;
    assert_eq!((stale.status, &stale.json()["status"]), (200, &json!("success")), "{}", stale.body);
    // The bank returns it: reported, it flips nothing until the re-query
    // it schedules (within 10 s) confirms it.
    let returned = app.admin("/sandbox/v1/advance", Some(advance("failed"))).await;
    assert_eq!(returned.json()["status"], "success");
    until_dmt(&app, &partner, "UP-HAND", "5", 20).await;

    let unknown = app.admin("/sandbox/v1/advance", Some(json!({"kind": "dmt", "id": 999_999, "to": "failed"}))).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let bad = app.admin("/sandbox/v1/advance", Some(json!({"kind": "dmt", "id": ackno, "to": "refunded"}))).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let anonymous = app.post_raw("/sandbox/v1/advance", advance("success").to_string(), &[]).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let manual = spawn_app_with(engine, AppOptions::default()).await;
    assert_eq!(manual.admin("/sandbox/v1/advance", Some(advance("success"))).await.status, 404);
}

async fn callbacks_survive_a_receiver_that_is_down_for_a_while(engine: Engine) {
    let app = spawn_app_with(engine, sandbox()).await;
    let (partner, receiver) = funded_partner(&app).await;
    receiver.set_down(true);
    for n in 1..=3 {
        pay(&app, &partner, "150012345111", &format!("DOWN-{n}")).await; // failed + refunded: two events each
    }
    // Attempts pile up while the receiver answers 503.
    let events = eventually(15, "failed attempts recorded", || async {
        let listed = app.admin(&format!("/admin/v1/events?partner={}", partner.name()), None).await.json();
        let events = listed["events"].as_array().cloned().expect("events is an array");
        (events.len() == 6 && events.iter().any(|e| e["attempts"].as_u64() >= Some(2))).then_some(events)
    })
    .await;
    assert!(events.iter().all(|e| e["state"] == "pending"), "{events:?}");
    let first = events.last().and_then(|e| e["id"].as_i64()).expect("an event id");
    let shown = app.admin(&format!("/admin/v1/events/{first}"), None).await.json();
    let attempt = &shown["delivery_attempts"][0];
    assert_eq!((&attempt["http_status"], &attempt["error"]), (&json!(503), &json!("the partner answered HTTP 503")));
    assert!(receiver.deliveries().is_empty());

    receiver.set_down(false);
    let delivered = eventually(20, "all six events delivered", || async {
        let got = receiver.deliveries();
        (got.len() >= 6).then_some(got)
    })
    .await;
    let mut ids: Vec<String> = delivered.iter().map(|d| d.event_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "every event arrived: {ids:?}");
    assert!(delivered.iter().all(|d| d.signed_by(&receiver.secret())), "every signature verifies");
    for n in 1..=3 {
        let reference = format!("DOWN-{n}");
        let states: Vec<String> = delivered
            .iter()
            .filter(|d| d.json()["referenceid"] == reference.as_str())
            .map(|d| d.json()["state"].as_str().expect("state is a string").to_owned())
            .collect();
        assert_eq!(states, ["failed", "refunded"], "one transaction's events arrive in order");
    }

    // An operator redelivers one: the partner sees the same event id and body
    // again, flagged as a redelivery.
    let again = payrail(&app, &["events", "redeliver", &first.to_string()]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let repeat = eventually(10, "the redelivery", || async {
        let got = receiver.deliveries();
        (got.len() == 7).then(|| got[6].clone())
    })
    .await;
    let original = delivered.iter().find(|d| d.event_id == first.to_string()).cloned();
    let flagged = original.map(|d| d.body.replacen(',', r#","redelivery":true,"#, 1));
    assert_eq!(Some(repeat.body.clone()), flagged, "a repeat is recognisable by its event id");
    assert_eq!(repeat.redelivery, "true");
    let show = payrail(&app, &["events", "show", &first.to_string()]);
    let shown = text(&show.stdout);
    assert!(shown.contains("HTTP 503") && shown.contains("HTTP 204"), "{shown}");
    // The redelivered event is pending until its attempt is recorded, which
    // comes after the receiver has it: wait for the record.
    let list = ["events", "list", "--partner", &partner.name(), "--state", "delivered"];
    let listed = eventually(10, "the redelivery recorded", || async {
        let listed = text(&payrail(&app, &list).stdout);
        (listed.lines().count() == 6).then_some(listed)
    })
    .await;
    assert_eq!(listed.lines().count(), 6, "{listed}");
    let bad = payrail(&app, &["events", "list", "--state", "lost"]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("pending, delivered, failed or cancelled"));
}

async fn callback_urls_are_checked_and_without_one_no_event_is_written(engine: Engine) {
    let app = spawn_app_with(engine, sandbox()).await;
    let partner = app.add_partner(true, &[]).await;
    top_up(&app, &partner, "5000").await;
    let path = format!("/admin/v1/partners/{}/callback", partner.name());
    for bad in ["ftp://example.com/x", "not a url", "http://"] {
        let refused = app.admin_with(reqwest::Method::PUT, &path, Some(json!({"url": bad}))).await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.body);
    }
    let stranger = app
        .admin_with(
            reqwest::Method::PUT,
            "/admin/v1/partners/AOP-999999/callback",
            Some(json!({"url": "https://example.com/"})),
        )
        .await;
    assert_eq!(stranger.status, 404, "{}", stranger.body);
    let cli = payrail(&app, &["callback", "set", &partner.name(), "gopher://x"]);
    assert!(!cli.status.success() && text(&cli.stderr).contains("http or https"), "{}", text(&cli.stderr));

    // No URL: a settled payment writes no event.
    pay(&app, &partner, "150012345111", "NO-URL").await;
    let events = app.admin(&format!("/admin/v1/events?partner={}", partner.name()), None).await.json();
    assert_eq!(events["events"], json!([]), "{events}");
    // With one (PUT), then cleared (DELETE): shown as set, then as none.
    let set = app.admin_with(reqwest::Method::PUT, &path, Some(json!({"url": "https://partner.example/cb"}))).await;
    assert_eq!((set.status, &set.json()["url"]), (200, &json!("https://partner.example/cb")), "{}", set.body);
    let cleared = app.admin_with(reqwest::Method::DELETE, &path, None).await;
    assert_eq!((cleared.status, &cleared.json()["url"]), (200, &Value::Null), "{}", cleared.body);
    let shown = text(&payrail(&app, &["callback", "show", &partner.name()]).stdout);
    assert!(shown.contains("has no callback URL"), "{shown}");
    let missing = app.admin("/admin/v1/events/987654", None).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let redeliver_missing = app.admin("/admin/v1/events/987654/redeliver", Some(json!({}))).await;
    assert_eq!(redeliver_missing.status, 404);
    let bad_filter = app.admin("/admin/v1/events?state=lost", None).await;
    assert_eq!(bad_filter.status, 400, "{}", bad_filter.body);
}
