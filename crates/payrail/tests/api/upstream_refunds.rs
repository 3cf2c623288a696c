//! Refunds of failed transfers claimed from the upstream (issue 12, item 5):
//! `RefundOtp` has the upstream text its refund OTP (Paysprint's
//! `resendotp`, with its own `ackno` of the transfer), `ClaimRefund` passes
//! the OTP to its refund call, and the partner's wallet is credited only on
//! the upstream's confirmation, once. Against the fake Paysprint and the
//! sandbox; the manual provider's local OTP and credit are `dmt_lifecycle`'s.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{spawn_app_with, AppOptions, Engine, TestApp, TestPartner, TestUpstream};
use crate::journey::{assert_refused, assert_verify_clean, balance, MOBILE};
use crate::mock_upstream::{MockUpstream, Reply, Script, MOCK_REFUND_OTP};
use crate::upstream_paysprint::app_with_mock_and;
use crate::upstream_sandbox::{funded_partner, send, until_dmt};

both_engines!(
    a_failed_transfer_is_refunded_through_paysprints_refund_otp_and_refund_calls_once,
    concurrent_claims_credit_the_wallet_once,
    a_refund_the_upstream_refuses_or_leaves_unanswered_credits_nothing_until_it_is_confirmed,
    no_refund_otp_while_the_upstream_does_not_report_the_failure,
    a_transfer_paysprint_refunded_on_its_own_is_claimed_with_payrails_own_otp,
    the_sandbox_refunds_a_failed_transfer_through_its_own_refund_otp,
    the_upstream_ackno_is_kept_from_a_status_answer_when_the_transact_answer_lacks_it,
    an_upstream_refund_otp_takes_three_wrong_guesses_then_a_new_one_is_needed,
);

const RESEND_OTP: &str = "dmt/refund/refund/resendotp";
const REFUND: &str = "dmt/refund/refund/";

/// An app on the fake Paysprint whose poller asks 1 s after a submission, on a manual clock.
async fn app(engine: Engine) -> (TestApp, MockUpstream) {
    app_with_mock_and(engine, AppOptions { poll_schedule: Some("1s,1h"), ..AppOptions::default() }.on_manual_clock())
        .await
}

/// A transfer `reference` that Paysprint takes (sent to bank), then reports
/// failed (`txn_status` 0) to the poller and to every later query, after
/// `statuses`; returns its upstream reference.
async fn failed_transfer(
    app: &TestApp,
    mock: &MockUpstream,
    partner: &TestPartner,
    reference: &str,
    refunds: Vec<Reply>,
) -> String {
    let script = refunds.into_iter().fold(Script::new().status(Reply::dmt(0, None)), Script::refund);
    mock.script_next(script);
    let sent = send(app, partner, "123456789012", "1000", reference).await;
    assert_eq!(sent["txn_status"], "3", "{sent}");
    app.advance(Duration::from_secs(2)).await;
    until_dmt(app, partner, reference, "5", 10).await;
    crate::upstream_paysprint::dmt_ref(app, &sent).await
}

async fn refund_otp(app: &TestApp, partner: &TestPartner, reference: &str) -> crate::helpers::Answer {
    app.call("/api/AOP/DMTV1/RefundOtp", partner, json!({"referenceid": reference})).await
}

async fn claim(
    app: &TestApp,
    partner: &TestPartner,
    reference: &str,
    stateresp: &Value,
    otp: &str,
) -> crate::helpers::Answer {
    let body = json!({"referenceid": reference, "Stateresp": stateresp, "OTP": otp});
    app.call("/api/AOP/DMTV1/ClaimRefund", partner, body).await
}

fn texts_to(app: &TestApp, mobile: &str) -> usize {
    app.sms.messages().iter().filter(|(to, _)| to == mobile).count()
}

async fn a_failed_transfer_is_refunded_through_paysprints_refund_otp_and_refund_calls_once(engine: Engine) {
    let (app, mock) = app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    let upstream_ref = failed_transfer(&app, &mock, &partner, "RF-1", vec![]).await;
    let ackno = mock.ackno_of(&upstream_ref).expect("the fake answered with its ackno");
    assert_verify_clean(&app);

    let texts = texts_to(&app, MOBILE);
    let otp = refund_otp(&app, &partner, "RF-1").await;
    assert_eq!(otp.status, 200, "{}", otp.body);
    assert_eq!((&otp.json()["status"], &otp.json()["response_code"]), (&json!(true), &json!(1)));
    let stateresp = otp.json()["stateresp"].clone();
    let asked = mock.calls_for(RESEND_OTP, &upstream_ref);
    assert_eq!(asked.len(), 1, "Paysprint was asked to send its refund OTP");
    assert_eq!(asked[0].body, json!({"referenceid": upstream_ref, "ackno": ackno.to_string()}), "with its own ackno");
    assert_eq!(texts_to(&app, MOBILE), texts, "payrail sent no OTP of its own");

    // A wrong OTP: the upstream refuses it (code 3) and nothing is credited.
    assert_refused(&claim(&app, &partner, "RF-1", &stateresp, "000000").await, 422, 15, "Invalid OTP");
    assert_eq!(balance(&app, &partner).await, format!("{:.2}", start.parse::<f64>().expect("amount") - 1010.0));
    assert_verify_clean(&app);

    let claimed = claim(&app, &partner, "RF-1", &stateresp, MOCK_REFUND_OTP).await;
    assert_eq!(claimed.status, 200, "{}", claimed.body);
    assert_eq!(
        (&claimed.json()["txn_status"], &claimed.json()["message"]),
        (&json!("0"), &json!("Transaction Refunded"))
    );
    assert!(claimed.json()["refundtxnid"].is_string(), "{}", claimed.body);
    let refunds = mock.calls_for(REFUND, &upstream_ref);
    assert_eq!(refunds.len(), 2);
    assert_eq!(
        refunds[1].body,
        json!({"referenceid": upstream_ref, "ackno": ackno.to_string(), "otp": MOCK_REFUND_OTP})
    );
    assert_eq!(balance(&app, &partner).await, start, "amount and charge back, once");

    // Again: refused, and the upstream is not asked again.
    assert_refused(&claim(&app, &partner, "RF-1", &stateresp, MOCK_REFUND_OTP).await, 409, 16, "already refunded");
    assert_refused(&refund_otp(&app, &partner, "RF-1").await, 409, 16, "already refunded");
    assert_eq!(mock.calls_for(REFUND, &upstream_ref).len(), 2);
    assert_eq!(balance(&app, &partner).await, start);
    assert_verify_clean(&app);
}

async fn concurrent_claims_credit_the_wallet_once(engine: Engine) {
    let (app, mock) = app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    failed_transfer(&app, &mock, &partner, "RF-C", vec![]).await;
    let otp = refund_otp(&app, &partner, "RF-C").await;
    assert_eq!(otp.status, 200, "{}", otp.body);
    let stateresp = otp.json()["stateresp"].clone();

    let app = std::sync::Arc::new(app);
    let partner = std::sync::Arc::new(partner);
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (app, partner, stateresp) = (app.clone(), partner.clone(), stateresp.clone());
        racing.spawn(async move { claim(&app, &partner, "RF-C", &stateresp, MOCK_REFUND_OTP).await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = racing.join_next().await {
        answers.push(answer.unwrap_or_else(|e| panic!("{e}")));
    }
    let credited = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(credited, 1, "{:?}", answers.iter().map(|a| &a.body).collect::<Vec<_>>());
    // The others: refunded already, or past the OTP's three claims.
    for refused in answers.iter().filter(|a| a.status != 200) {
        match refused.status {
            409 => assert_refused(refused, 409, 16, "refund"),
            _ => assert_refused(refused, 422, 15, "attempts exhausted"),
        }
    }
    assert_eq!(balance(&app, &partner).await, start, "one credit");
    assert_verify_clean(&app);
}

async fn a_refund_the_upstream_refuses_or_leaves_unanswered_credits_nothing_until_it_is_confirmed(engine: Engine) {
    let (app, mock) = app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    let debited = format!("{:.2}", start.parse::<f64>().expect("amount") - 1010.0);
    let refunds = vec![
        Reply::answer(4, false, "No refund found"),
        // Paysprint's 4xx refusals carry a body in the answer's shape.
        Reply::HttpBody(406, json!({"status": false, "response_code": 8, "message": "validation_errors"})),
        // No answer in time (the claim went through upstream: below).
        Reply::Hang(Duration::from_secs(2)),
        Reply::answer(2, false, "Transaction not found or already refunded."),
    ];
    let upstream_ref = failed_transfer(&app, &mock, &partner, "RF-R", refunds).await;
    let stateresp = refund_otp(&app, &partner, "RF-R").await.json()["stateresp"].clone();

    // "No refund found" (code 4, a row of the code table that may hide an
    // earlier claim): the status query says it was not refunded, so nothing is.
    let refused = claim(&app, &partner, "RF-R", &stateresp, MOCK_REFUND_OTP).await;
    assert_refused(&refused, 409, 16, "did not refund this transaction: No refund found");
    let refused = claim(&app, &partner, "RF-R", &stateresp, MOCK_REFUND_OTP).await;
    assert_refused(&refused, 422, 15, "validation_errors");
    let lost = claim(&app, &partner, "RF-R", &stateresp, MOCK_REFUND_OTP).await;
    assert_refused(&lost, 502, 17, "nothing was refunded");
    // The lost answer's claim did refund it upstream: its status query says so from now on.
    mock.mark_refunded(&upstream_ref);
    assert_eq!(balance(&app, &partner).await, debited, "nothing credited without a confirmation");
    assert_eq!(until_dmt(&app, &partner, "RF-R", "5", 1).await["txn_status"], "5");
    assert_verify_clean(&app);

    // Claimed again: "already refunded", and the status query says it was (the lost answer's claim).
    let confirmed = claim(&app, &partner, "RF-R", &stateresp, MOCK_REFUND_OTP).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(confirmed.json()["txn_status"], "0");
    assert_eq!(mock.calls_for(REFUND, &upstream_ref).len(), 4);
    assert_eq!(balance(&app, &partner).await, start, "credited once, on the query's confirmation");
    assert_verify_clean(&app);
}

async fn no_refund_otp_while_the_upstream_does_not_report_the_failure(engine: Engine) {
    let (app, mock) = app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    // Failed by the poller, then the upstream says "in process" again.
    mock.script_next(Script::new().status(Reply::dmt(0, None)).status(Reply::dmt(2, None)));
    let sent = send(&app, &partner, "123456789012", "1000", "RF-W").await;
    app.advance(Duration::from_secs(2)).await;
    until_dmt(&app, &partner, "RF-W", "5", 10).await;
    let upstream_ref = crate::upstream_paysprint::dmt_ref(&app, &sent).await;
    assert_refused(&refund_otp(&app, &partner, "RF-W").await, 409, 16, "does not report this transaction failed");
    assert!(mock.calls_for(RESEND_OTP, &upstream_ref).is_empty(), "no OTP asked for");

    // A refund OTP the upstream cannot send (412, code 5) is refused as such.
    let busy = json!({"status": false, "response_code": 5, "message": "Unable to resend refund OTP request."});
    mock.script_next(Script::new().status(Reply::dmt(0, None)).refund_otp(Reply::HttpBody(412, busy)));
    send(&app, &partner, "123456789012", "1000", "RF-B").await;
    app.advance(Duration::from_secs(2)).await;
    until_dmt(&app, &partner, "RF-B", "5", 10).await;
    assert_refused(&refund_otp(&app, &partner, "RF-B").await, 422, 15, "Unable to resend");
    assert_verify_clean(&app);
}

async fn a_transfer_paysprint_refunded_on_its_own_is_claimed_with_payrails_own_otp(engine: Engine) {
    let (app, mock) = app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    let upstream_ref = failed_transfer(&app, &mock, &partner, "RF-S", vec![]).await;
    mock.mark_refunded(&upstream_ref);

    let otp = refund_otp(&app, &partner, "RF-S").await;
    assert_eq!(otp.status, 200, "{}", otp.body);
    assert!(mock.calls_for(RESEND_OTP, &upstream_ref).is_empty(), "nothing to claim upstream");
    let code = app.sms.last_otp(MOBILE);
    let claimed = claim(&app, &partner, "RF-S", &otp.json()["stateresp"], &code).await;
    assert_eq!(claimed.json()["txn_status"], "0", "{}", claimed.body);
    assert!(mock.calls_for(REFUND, &upstream_ref).is_empty());
    assert_eq!(balance(&app, &partner).await, start);
    assert_verify_clean(&app);
}

async fn the_sandbox_refunds_a_failed_transfer_through_its_own_refund_otp(engine: Engine) {
    let options = AppOptions { upstream: TestUpstream::Sandbox { step_secs: 1 }, ..AppOptions::default() };
    let app = spawn_app_with(engine, options).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    let sent = send(&app, &partner, "123456789111", "1000", "SB-RF").await;
    assert_eq!(sent["txn_status"], "5", "{sent}");

    let otp = refund_otp(&app, &partner, "SB-RF").await;
    assert_eq!(otp.status, 200, "{}", otp.body);
    let (_, text) = app.sms.messages().into_iter().rev().find(|(to, _)| to == MOBILE).expect("a text");
    assert!(text.contains("sandbox upstream"), "the sandbox's own OTP: {text}");
    let stateresp = otp.json()["stateresp"].clone();
    let wrong = if app.sms.last_otp(MOBILE) == "000000" { "111111" } else { "000000" };
    assert_refused(&claim(&app, &partner, "SB-RF", &stateresp, wrong).await, 422, 15, "Invalid OTP");
    assert_eq!(balance(&app, &partner).await, format!("{:.2}", start.parse::<f64>().expect("amount") - 1010.0));

    let claimed = claim(&app, &partner, "SB-RF", &stateresp, &app.sms.last_otp(MOBILE)).await;
    assert_eq!(claimed.json()["txn_status"], "0", "{}", claimed.body);
    assert_refused(
        &claim(&app, &partner, "SB-RF", &stateresp, &app.sms.last_otp(MOBILE)).await,
        409,
        16,
        "already refunded",
    );
    assert_eq!(balance(&app, &partner).await, start);
    assert_verify_clean(&app);
}

async fn the_upstream_ackno_is_kept_from_a_status_answer_when_the_transact_answer_lacks_it(engine: Engine) {
    let (app, mock) = app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    // The transact answer carries no ackno; the poller's query does; the
    // query `RefundOtp` makes does not: the ackno sent is the poller's.
    let accepted = json!({"status": true, "response_code": 1, "txn_status": 3, "message": "Transaction Successful"});
    let bare_failure = json!({"status": true, "response_code": 1, "data": {"txn_status": 0, "refunded": "0"}});
    mock.script_next(
        Script::new().submit(Reply::Raw(accepted)).status(Reply::dmt(0, None)).status(Reply::Raw(bare_failure)),
    );
    let sent = send(&app, &partner, "123456789012", "1000", "RF-Q").await;
    assert_eq!(sent["txn_status"], "3", "{sent}");
    app.advance(Duration::from_secs(2)).await;
    until_dmt(&app, &partner, "RF-Q", "5", 10).await;
    let upstream_ref = crate::upstream_paysprint::dmt_ref(&app, &sent).await;
    let ackno = mock.ackno_of(&upstream_ref).expect("the poller's query carried the fake's ackno");

    let otp = refund_otp(&app, &partner, "RF-Q").await;
    assert_eq!(otp.status, 200, "{}", otp.body);
    let asked = mock.calls_for(RESEND_OTP, &upstream_ref);
    assert_eq!(asked[0].body["ackno"], json!(ackno.to_string()), "kept from the poller's answer");
    let claimed = claim(&app, &partner, "RF-Q", &otp.json()["stateresp"], MOCK_REFUND_OTP).await;
    assert_eq!(claimed.json()["txn_status"], "0", "{}", claimed.body);
    assert_eq!(balance(&app, &partner).await, start);
    assert_verify_clean(&app);
}

async fn an_upstream_refund_otp_takes_three_wrong_guesses_then_a_new_one_is_needed(engine: Engine) {
    let (app, mock) = app(engine).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    let upstream_ref = failed_transfer(&app, &mock, &partner, "RF-G", vec![]).await;
    let stateresp = refund_otp(&app, &partner, "RF-G").await.json()["stateresp"].clone();
    for guess in ["000001", "000002", "000003"] {
        assert_refused(&claim(&app, &partner, "RF-G", &stateresp, guess).await, 422, 15, "Invalid OTP");
    }
    let spent = claim(&app, &partner, "RF-G", &stateresp, MOCK_REFUND_OTP).await;
    assert_refused(&spent, 422, 15, "attempts exhausted");
    assert_eq!(mock.calls_for(REFUND, &upstream_ref).len(), 3, "the fourth guess never left");

    let fresh = refund_otp(&app, &partner, "RF-G").await.json()["stateresp"].clone();
    assert_refused(&claim(&app, &partner, "RF-G", &stateresp, MOCK_REFUND_OTP).await, 422, 15, "Stateresp");
    let claimed = claim(&app, &partner, "RF-G", &fresh, MOCK_REFUND_OTP).await;
    assert_eq!(claimed.json()["txn_status"], "0", "{}", claimed.body);
    assert_eq!(balance(&app, &partner).await, start);
    assert_verify_clean(&app);
}
