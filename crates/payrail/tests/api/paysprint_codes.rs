//! Paysprint's code table through the real server and the fake Paysprint:
//! every documented code of transact, querytransact, paybill and bill
//! status (as HTTP 200, or 4xx with a body where Paysprint sends it so),
//! undocumented answers that decide nothing, a duplicate reference and a
//! mismatched answer held for review, a success that needs its UTR, and a
//! bank return that only a second query confirms. Each checks the state,
//! the wallet and `payrail verify`.

use std::time::Duration;

use payrail::domain::upstream::DmtUpstream;
use payrail::services::upstream::paysprint::{
    CodeMeaning, PaysprintCall, PaysprintConfig, PaysprintProvider, BILL_STATUS_TABLE, CODE_TABLE, TRANSACT_PATHS,
    TXN_STATUS_TABLE,
};
use payrail::services::upstream::provider::Provider;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{AppOptions, Engine, TestApp, TestPartner};
use crate::journey::{assert_refused, assert_verify_clean, balance};
use crate::mock_upstream::{MockUpstream, Outcome, Reply, Script, MOCK_REFUND_OTP};
use crate::upstream_paysprint::{app_with_mock_and, PARTNER_ID};
use crate::upstream_sandbox::{bses, funded_partner, pay, send};

both_engines!(
    every_transact_and_querytransact_row_reads_as_the_table_says,
    every_paybill_and_bill_status_row_reads_as_the_table_says,
    undocumented_answers_stay_pending_and_a_later_success_is_honoured,
    a_duplicate_reference_holds_the_transfer_and_leaves_the_other_untouched,
    a_mismatched_amount_holds_the_transfer_and_moves_no_money,
    a_success_needs_its_utr_and_a_return_needs_two_queries_in_a_row,
    a_fetched_bill_in_paysprints_shape_is_a_bill,
);

const ACCOUNT: &str = "123456789012";
const STEP: Duration = Duration::from_secs(1);

/// An app on the manual clock whose connector talks to a fresh fake; the
/// poller asks every second, many times.
async fn codes_app(engine: Engine) -> (TestApp, MockUpstream) {
    let options = AppOptions { poll_schedule: Some("1s,1s,1s,1s,1s,1s,1s,1s,1s,1s"), ..AppOptions::default() };
    app_with_mock_and(engine, options.on_manual_clock()).await
}

/// The transfer as the store holds it (the operator's view: asks no one).
async fn stored_dmt(app: &TestApp, ackno: &str) -> Value {
    let shown = app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    shown.json()
}

/// The bill payment as the store holds it.
async fn stored_bill(app: &TestApp, txnid: &str) -> Value {
    let shown = app.admin(&format!("/admin/v1/bbps/{txnid}"), None).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    shown.json()
}

fn id(sent: &Value) -> String {
    sent["ackno"].as_str().map(str::to_owned).unwrap_or_else(|| sent["ackno"].to_string())
}

fn last_reason(shown: &Value) -> String {
    let history = shown["history"].as_array().cloned().unwrap_or_default();
    history.last().and_then(|h| h["reason"].as_str()).unwrap_or_default().to_owned()
}

fn rupees(text: &str) -> f64 {
    text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// What the wallet paid for transactions since `start`.
async fn spent(app: &TestApp, partner: &TestPartner, start: &str) -> f64 {
    rupees(start) - rupees(&balance(app, partner).await)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.001
}

/// A transfer of ₹100 whose submission the fake answers as `script` says.
async fn transfer_with(
    app: &TestApp,
    mock: &MockUpstream,
    partner: &TestPartner,
    script: Script,
    reference: &str,
) -> Value {
    mock.script_next(script);
    send(app, partner, ACCOUNT, "100", reference).await
}

async fn every_transact_and_querytransact_row_reads_as_the_table_says(engine: Engine) {
    let (app, mock) = codes_app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    let mut made = 0;

    for (n, row) in CODE_TABLE.iter().filter(|r| r.call == PaysprintCall::Transact).enumerate() {
        let reply = Reply::http(row.http, row.code, row.code == 1, row.text);
        let sent = transfer_with(&app, &mock, &partner, Script::new().submit(reply), &format!("T-{n}")).await;
        made += 1;
        let expected = match row.meaning {
            // Code 1 without a txn_status: accepted, in process.
            CodeMeaning::ReadStatus | CodeMeaning::Pending => "2",
            CodeMeaning::NotProcessed | CodeMeaning::AuthRefused => "5",
            CodeMeaning::Duplicate | CodeMeaning::Review => "4",
            other => panic!("{other:?} is not a transact meaning"),
        };
        assert_eq!(sent["txn_status"], expected, "{row:?}: {sent}");
        if row.meaning == CodeMeaning::AuthRefused {
            // The refusal of payrail's credentials also stops submissions
            // until an operator closes the circuit (upstream_transport).
            let closed = app.admin("/admin/v1/upstream/circuit/close", Some(json!({}))).await;
            assert_eq!(closed.status, 200, "{}", closed.body);
        }
        if expected == "4" {
            let reason = last_reason(&stored_dmt(&app, &id(&sent)).await);
            assert!(reason.starts_with("held for review: "), "{row:?}: {reason}");
        }
        // The same code with another HTTP status is not on the page: pending.
        let other = if row.http == 200 { 401 } else { 200 };
        let reply = Reply::http(other, row.code, row.code == 1, row.text);
        let sent = transfer_with(&app, &mock, &partner, Script::new().submit(reply), &format!("TX-{n}")).await;
        made += 1;
        assert_eq!(sent["txn_status"], "2", "{row:?} as HTTP {other}: {sent}");
        if (23..=25).contains(&row.code) {
            // payrail's credentials refused, whatever the HTTP status: the circuit opened again.
            let closed = app.admin("/admin/v1/upstream/circuit/close", Some(json!({}))).await;
            assert_eq!(closed.status, 200, "{}", closed.body);
        }
    }
    let per_transfer = spent(&app, &partner, &start).await / f64::from(made);

    // querytransact's code 1 with each documented txn_status, read by the poller.
    let mut asked = Vec::new();
    for (value, _, meaning) in TXN_STATUS_TABLE {
        let utr = (*value == 1).then_some("UTR77");
        let script = Script::new().status(Reply::dmt(*value, utr));
        let sent = transfer_with(&app, &mock, &partner, script, &format!("Q-{value}")).await;
        made += 1;
        assert_eq!(sent["txn_status"], "3", "unscripted submissions go to the bank: {sent}");
        asked.push((*value, *meaning, id(&sent)));
    }
    app.advance(STEP).await;
    for (value, meaning, ackno) in &asked {
        let shown = stored_dmt(&app, ackno).await;
        let expected = match (value, meaning) {
            (0, CodeMeaning::NotProcessed) => "5",
            (1, CodeMeaning::FinalSuccess) => "1",
            (4, CodeMeaning::Pending) => "4",
            (_, CodeMeaning::Pending) => "3",
            other => panic!("{other:?} is not in the txn_status table"),
        };
        assert_eq!(shown["txn_status"], json!(expected.parse::<i64>().expect("a code")), "txn_status {value}: {shown}");
        if *value == 1 {
            assert_eq!(shown["utr"], "UTR77");
        }
    }
    // The wallet paid every transfer once; failed ones wait for the refund claim.
    assert!(close(spent(&app, &partner, &start).await, per_transfer * f64::from(made)), "one debit each");
    assert_eq!(mock.rejected(), 0);
    assert_verify_clean(&app);
}

async fn every_paybill_and_bill_status_row_reads_as_the_table_says(engine: Engine) {
    let (app, mock) = codes_app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    let (mut kept, mut refunded) = (0, 0);

    for (n, row) in CODE_TABLE.iter().filter(|r| r.call == PaysprintCall::PayBill).enumerate() {
        mock.script_next(Script::new().submit(Reply::http(row.http, row.code, row.code != 0, row.text)));
        let paid = pay(&app, &partner, "150012345678", &format!("B-{n}")).await;
        let shown = stored_bill(&app, &id(&paid)).await;
        let expected = match row.meaning {
            CodeMeaning::FinalSuccess => "success",
            CodeMeaning::Pending => "pending",
            CodeMeaning::NotProcessed => "refunded",
            other => panic!("{other:?} is not a paybill meaning"),
        };
        assert_eq!(shown["status"], expected, "{row:?}: {shown}");
        if expected == "refunded" {
            refunded += 1
        } else {
            kept += 1
        }
        // Another HTTP status: not the documented row, so pending.
        mock.script_next(Script::new().submit(Reply::http(406, row.code, row.code != 0, "Not the page's")));
        let paid = pay(&app, &partner, "150012345678", &format!("BX-{n}")).await;
        assert_eq!(stored_bill(&app, &id(&paid)).await["status"], "pending", "{row:?} as 406");
        kept += 1;
    }
    let mut asked = Vec::new();
    for (value, _, meaning) in BILL_STATUS_TABLE {
        mock.script_next(Script::new().status(Reply::bill(*value, Some("OP9"))));
        let paid = pay(&app, &partner, "150012345678", &format!("BS-{value}")).await;
        asked.push((*meaning, id(&paid)));
    }
    app.advance(STEP).await;
    for (meaning, txnid) in &asked {
        let shown = stored_bill(&app, txnid).await;
        let expected = match meaning {
            CodeMeaning::FinalSuccess => "success",
            CodeMeaning::Pending => "pending",
            CodeMeaning::NotProcessed => "refunded",
            other => panic!("{other:?}"),
        };
        assert_eq!(shown["status"], expected, "{meaning:?}: {shown}");
        if expected == "refunded" {
            refunded += 1
        } else {
            kept += 1
        }
    }
    assert!(refunded >= 2 && kept >= 4);
    // Refunded payments are back in the wallet, once; the others are paid for once.
    let each = spent(&app, &partner, &start).await / f64::from(kept);
    assert!(each > 0.0 && close(each * f64::from(kept), spent(&app, &partner, &start).await));
    assert!(close(each, 500.0) || each > 500.0, "a payment costs at least its amount: {each}");
    assert_verify_clean(&app);
}

async fn undocumented_answers_stay_pending_and_a_later_success_is_honoured(engine: Engine) {
    let (app, mock) = codes_app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    let success = |utr: &str| Reply::dmt(1, Some(utr));
    let scripts = [
        // Code 0 with status false on transact (not on Paysprint's page), then txn_status 5 (payrail's own code).
        Script::new().submit(Reply::answer(0, false, "Failed")).status(Reply::dmt(5, None)).status(success("UTRU1")),
        // An unknown code, then a query the upstream answers "not found".
        Script::new()
            .submit(Reply::http(401, 77, false, "Unknown"))
            .status(Reply::answer(0, false, "Transaction not found"))
            .status(success("UTRU2")),
        // A 5xx and an unreadable body are no answer at all.
        Script::new().submit(Reply::Http(503)).status(Reply::Garbage).status(success("UTRU3")),
    ];
    let mut sent = Vec::new();
    for (n, script) in scripts.into_iter().enumerate() {
        let answer = transfer_with(&app, &mock, &partner, script, &format!("U-{n}")).await;
        assert_eq!(answer["txn_status"], "2", "pending: {answer}");
        sent.push(id(&answer));
    }
    app.advance(STEP).await;
    for ackno in &sent {
        assert_eq!(stored_dmt(&app, ackno).await["txn_status"], 2, "still pending after an undocumented answer");
    }
    app.advance(STEP).await;
    for (n, ackno) in sent.iter().enumerate() {
        let shown = stored_dmt(&app, ackno).await;
        assert_eq!((&shown["txn_status"], &shown["utr"]), (&json!(1), &json!(format!("UTRU{}", n + 1))), "{shown}");
        assert!(shown["refund_txn_id"].is_null());
    }
    let per_transfer = spent(&app, &partner, &start).await / 3.0;
    assert!(per_transfer >= 100.0, "each paid once, none refunded: {per_transfer}");
    assert_verify_clean(&app);
}

async fn a_duplicate_reference_holds_the_transfer_and_leaves_the_other_untouched(engine: Engine) {
    let (app, mock) = codes_app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    // Paysprint refuses the reference as a duplicate, and its status query
    // then answers about the other transaction that holds it: paid.
    let duplicate = Script::new()
        .submit(Reply::http(406, 19, false, "Duplicate transaction reference number."))
        .status(Reply::dmt(1, Some("UTR-OF-ANOTHER")));
    let held = transfer_with(&app, &mock, &partner, duplicate, "DUP-1").await;
    let other = transfer_with(&app, &mock, &partner, Script::new().status(Reply::dmt(3, None)), "DUP-2").await;
    assert_eq!((&held["txn_status"], &other["txn_status"]), (&json!("4"), &json!("3")));
    let before = balance(&app, &partner).await;
    for _ in 0..3 {
        app.advance(STEP).await;
    }
    // A callback saying paid changes nothing either, nor does a status lookup.
    let held_ref = crate::upstream_paysprint::dmt_ref(&app, &held).await;
    let (status, body) = mock.send_callback(&app.url(""), &MockUpstream::dmt_callback(&held_ref, 1, Some("U"))).await;
    assert_eq!(status, 200, "{body}");
    let looked_up = app.dmt_status(&partner.name(), "DUP-1", Some(&partner.token())).await.json();
    assert_eq!(looked_up["txn_status"], "4", "{looked_up}");

    let shown = stored_dmt(&app, &id(&held)).await;
    assert_eq!((&shown["txn_status"], &shown["utr"]), (&json!(4), &Value::Null), "never another's status: {shown}");
    assert!(last_reason(&shown).contains("duplicate reference"), "{shown}");
    assert_eq!(mock.status_queries(&held_ref), 0, "a transfer held for review is not asked about");
    let listed = app.admin("/admin/v1/upstream/held", None).await;
    assert!(listed.body.contains(&id(&held)), "listed for review: {}", listed.body);
    // The other transfer went on as the upstream said, on its own.
    let other_shown = stored_dmt(&app, &id(&other)).await;
    assert_eq!(other_shown["txn_status"], 3, "{other_shown}");
    assert!(mock.status_queries(&crate::upstream_paysprint::dmt_ref(&app, &other).await) >= 1);
    assert_eq!(balance(&app, &partner).await, before, "no money moved");
    assert_verify_clean(&app);
}

async fn a_mismatched_amount_holds_the_transfer_and_moves_no_money(engine: Engine) {
    let (app, mock) = codes_app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let paid_for_less = Outcome::dmt(1, Some("UTRM1")).with(json!({"amount": "50.00"}));
    let sent = transfer_with(&app, &mock, &partner, Script::new().status(Reply::Answer(paid_for_less)), "MIS-1").await;
    assert_eq!(sent["txn_status"], "3");
    let before = balance(&app, &partner).await;
    app.advance(STEP).await;
    let shown = stored_dmt(&app, &id(&sent)).await;
    assert_eq!((&shown["txn_status"], &shown["utr"]), (&json!(4), &Value::Null), "{shown}");
    assert_eq!(last_reason(&shown), "held for review: upstream answer's amount 50.00 differs from 100.00");
    // A submission answered about another reference is held too.
    let elsewhere = Outcome::dmt(1, Some("UTRM2")).with(json!({"referenceid": "PRD1"}));
    let sent = transfer_with(&app, &mock, &partner, Script::new().submit(Reply::Answer(elsewhere)), "MIS-2").await;
    assert_eq!(sent["txn_status"], "4", "{sent}");
    app.advance(STEP).await;
    assert_eq!(stored_dmt(&app, &id(&sent)).await["txn_status"], 4);
    assert!(rupees(&before) - rupees(&balance(&app, &partner).await) > 100.0, "only MIS-2's debit since");
    assert_verify_clean(&app);
}

async fn a_success_needs_its_utr_and_a_return_needs_two_queries_in_a_row(engine: Engine) {
    let (app, mock) = codes_app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    // Callbacks only trigger a status query (upstream_transport): the
    // queries they trigger take their turn in this script.
    let script = Script::new()
        .status(Reply::dmt(1, None))
        .status(Reply::dmt(1, Some("UTRR1")))
        .status(Reply::dmt(0, None))
        .status(Reply::dmt(1, Some("UTRR1")))
        .status(Reply::dmt(0, None))
        .status(Reply::dmt(0, None));
    let sent = transfer_with(&app, &mock, &partner, script, "RET-1").await;
    let (ackno, base) = (id(&sent), app.url(""));
    let reference = crate::upstream_paysprint::dmt_ref(&app, &sent).await;

    // Success without a UTR: still with the bank, asked again.
    app.advance(STEP).await;
    let shown = stored_dmt(&app, &ackno).await;
    assert_eq!((&shown["txn_status"], &shown["utr"]), (&json!(3), &Value::Null), "{shown}");
    app.advance(STEP).await;
    let shown = stored_dmt(&app, &ackno).await;
    assert_eq!((&shown["txn_status"], &shown["utr"]), (&json!(1), &json!("UTRR1")), "{shown}");

    // One contradicting "failed" (a callback, and the query it triggers)
    // flips nothing; the re-query it schedules says success again, so the
    // return is not confirmed.
    let returned = MockUpstream::dmt_callback(&reference, 0, None);
    assert_eq!(mock.send_callback(&base, &returned).await.0, 200);
    let shown = stored_dmt(&app, &ackno).await;
    assert_eq!(shown["txn_status"], 1, "{shown}");
    assert!(last_reason(&shown).starts_with("upstream: bank return reported"), "{shown}");
    app.advance(STEP).await;
    let shown = stored_dmt(&app, &ackno).await;
    assert_eq!(shown["txn_status"], 1, "{shown}");
    assert!(last_reason(&shown).contains("not confirmed"), "{shown}");

    // Reported again (a new callback: the same one again is a duplicate,
    // upstream_transport), and the re-query confirms it: failed, refund path.
    let mut returned_again = returned.clone();
    returned_again["param"]["message"] = json!("returned by the beneficiary bank");
    assert_eq!(mock.send_callback(&base, &returned_again).await.0, 200);
    assert_eq!(stored_dmt(&app, &ackno).await["txn_status"], 1);
    app.advance(STEP).await;
    let shown = stored_dmt(&app, &ackno).await;
    assert_eq!(shown["txn_status"], 5, "{shown}");
    assert_eq!(last_reason(&shown), "upstream: bank return confirmed by a second query");

    // The remitter claims the refund once.
    let otp = app.call("/api/AOP/DMTV1/RefundOtp", &partner, json!({"referenceid": "RET-1"})).await;
    assert_eq!(otp.status, 200, "{}", otp.body);
    // Paysprint claims refunds itself (upstream_refunds): its OTP, not payrail's.
    let claim = json!({"referenceid": "RET-1", "Stateresp": otp.json()["stateresp"], "OTP": MOCK_REFUND_OTP});
    let claimed = app.call("/api/AOP/DMTV1/ClaimRefund", &partner, claim.clone()).await;
    assert_eq!(claimed.json()["txn_status"], "0", "{}", claimed.body);
    assert_refused(&app.call("/api/AOP/DMTV1/ClaimRefund", &partner, claim).await, 409, 16, "already refunded");
    // A later "failed" changes nothing.
    assert_eq!(mock.send_callback(&base, &returned).await.0, 200);
    app.advance(STEP).await;
    assert_eq!(stored_dmt(&app, &ackno).await["txn_status"], 0);
    assert_eq!(balance(&app, &partner).await, start, "refunded exactly once");
    assert_verify_clean(&app);
}

#[test]
fn the_transact_path_is_one_of_two_and_anything_else_is_refused_at_start() {
    for path in TRANSACT_PATHS {
        let mut config = PaysprintConfig::new("http://127.0.0.1:9/api/v1/service", PARTNER_ID, SecretString::from("k"));
        config.transact_path = path.into();
        assert!(PaysprintProvider::new(config).is_ok(), "{path}");
    }
    for bad in ["dmt/transact", "/dmt/transact/transact", "dmt/kyc/transact/transact/", ""] {
        let mut config = PaysprintConfig::new("http://127.0.0.1:9/api/v1/service", PARTNER_ID, SecretString::from("k"));
        config.transact_path = bad.into();
        assert!(PaysprintProvider::new(config).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn the_e_kyc_transact_path_is_where_transfers_go_when_configured() {
    let mock = crate::paysprint::mock().await;
    let mut config =
        PaysprintConfig::new(&mock.url, PARTNER_ID, SecretString::from(crate::upstream_paysprint::JWT_KEY));
    config.authorised_key = Some(SecretString::from(crate::paysprint::AUTHORISED_KEY));
    config.transact_path = "dmt/kyc/transact/transact".into();
    let provider = PaysprintProvider::new(config).unwrap_or_else(|e| panic!("{e:#}"));
    mock.script("PRD31", Script::new().submit(Reply::dmt(1, Some("UTR31"))));
    let report = provider.submit_transfer(&crate::paysprint::transfer_order("PRD31")).await;
    assert_eq!(report.ok(), Some(DmtUpstream::Success { utr: Some("UTR31".into()) }));
    let calls = mock.calls();
    assert_eq!((calls.len(), calls[0].path.as_str(), calls[0].accepted), (1, "dmt/kyc/transact/transact", true));
}

async fn a_fetched_bill_in_paysprints_shape_is_a_bill(engine: Engine) {
    let (app, mock) = codes_app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    // As AOPay's copy of the answer has it: no response_code, a numeric
    // amount, no bill_fetch.
    let answer = json!({"status": true, "amount": 820.0, "name": "SALMAN", "duedate": "2021-01-06",
                        "message": "Bill Fetched Success."});
    mock.script("150012345699", Script::new().fetch(Reply::Raw(answer)));
    let operator = bses(&app, &partner).await;
    let fetched = app
        .call("/api/AOP/FetchBilPaymentDetails", &partner, json!({"operator": operator, "canumber": "150012345699"}))
        .await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    let bill = fetched.json();
    assert_eq!(
        (&bill["amount"], &bill["name"], &bill["duedate"]),
        (&json!("820"), &json!("SALMAN"), &json!("2021-01-06")),
        "{bill}"
    );
    assert_eq!(bill["bill_fetch"]["acceptPartPay"], false, "without bill_fetch only the exact amount is taken: {bill}");
}
