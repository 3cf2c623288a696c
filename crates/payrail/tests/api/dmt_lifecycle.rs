//! DMT V1 through HTTP: the whole journey, concurrency against the wallet,
//! idempotent references, limits and OTP refusals.

use serde_json::json;

use crate::both_engines;
use crate::helpers::{spawn_app, Engine, AADHAAR};
use crate::journey::*;

both_engines!(
    a_whole_dmt_journey_ends_with_the_wallet_where_it_started,
    two_hundred_concurrent_transfers_against_a_wallet_for_one_hundred,
    a_reference_used_twice_is_debited_once_and_the_second_answer_says_why,
    limits_are_refused_in_the_api_shape,
    otps_are_single_use_bound_to_their_request_and_limited_in_attempts,
    partners_cannot_reach_each_others_remitters_beneficiaries_or_refunds,
    refunds_take_aopays_bodies_ackno_and_otp_without_a_stateresp,
);

async fn a_whole_dmt_journey_ends_with_the_wallet_where_it_started(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    assert_eq!(top_up(&app, &partner, "10000").await, "10000.00");
    // A plan of the partner's own: ₹12 flat, ₹4 to the provider.
    let plan = json!({"effective_from": "2020-01-01", "plan": {
        "dmt": {"slabs": [{"charge": "12", "provider_share": "4"}]},
        "bbps": {"default": {"percent": "0.1"}}}});
    let set = app.admin(&format!("/admin/v1/partners/{}/fee-plans", partner.name()), Some(plan)).await;
    assert_eq!(set.status, 201, "{}", set.body);

    // Unknown remitter: 202 (SPEC §7.1) and an OTP; e-KYC; registration; then the remitter with its limits.
    let unknown = app.call("/api/AOP/DMTV1/QueryRemitter", &partner, json!({"MobileNo": MOBILE})).await;
    let body = unknown.json();
    assert_eq!((unknown.status, &body["status"], &body["response_code"]), (202, &json!(false), &json!(0)));
    assert_field_order(&unknown.body, &["status", "response_code", "stateresp", "message"]);
    let (stateresp, otp) = app.ekyc(&partner, MOBILE).await;
    let registration = json!({"MobileNo": MOBILE, "OTP": otp, "Stateresp": stateresp, "KycId": stateresp,
                              "FirstName": "Asha", "LastName": "Verma"});
    let registered = app.call("/api/AOP/DMTV1/RegisterRemitter", &partner, registration.clone()).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    // Sent again, its KycId is spent; a fresh e-KYC of a registered remitter is refused.
    let again = app.call("/api/AOP/DMTV1/RegisterRemitter", &partner, registration).await;
    assert_refused(&again, 400, 8, "kycid was already used");
    assert_refused(&app.ekyc_with(&partner, MOBILE, AADHAAR).await, 409, 16, "already registered");
    let found = app.call("/api/AOP/DMTV1/QueryRemitter", &partner, json!({"MobileNo": MOBILE})).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(
        found.json()["data"],
        json!({"fname": "Asha", "lname": "Verma", "mobile": MOBILE, "status": "Active", "bank3_limit": 25000,
               "bank3_status": "Active", "bank2_limit": 25000, "bank1_limit": 25000})
    );

    // A beneficiary, listed.
    let bene = add_beneficiary(&app, &partner, MOBILE).await;
    let listed = app.call("/api/AOP/DMTV1/FetchBeneficiary", &partner, json!({"MobileNo": MOBILE})).await;
    assert_eq!(
        listed.json()["data"],
        json!([{"bene_id": bene, "bankid": "101", "bankname": "State Bank of India", "name": "Ravi Verma",
                "accno": "123456789012", "ifsc": "SBIN0001234", "verified": "0", "banktype": "PSU", "paytm": false}])
    );

    // The transfer: debited amount + the plan's charge, sent to bank.
    let sent = transfer(&app, &partner, MOBILE, &bene, "1000", "JOURNEY-1").await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let sent = sent.json();
    assert_eq!((&sent["txn_status"], &sent["message"]), (&json!("3"), &json!("Transaction Sent To Bank")));
    assert_eq!((&sent["opening"], &sent["closing"]), (&json!("10000.00"), &json!("8988.00")));
    let ackno = sent["ackno"].as_str().expect("ackno is a string").to_owned();
    assert_eq!(balance(&app, &partner).await, "8988.00");
    let found = app.dmt_status(&partner.name(), "JOURNEY-1", Some(&partner.token())).await.json();
    // 12.00 → GST 1.83; commission 12.00 − 1.83 − 4.00 = 6.17; TDS 2% = 0.12; net 6.05.
    assert_eq!(
        (
            &found["txn_status"],
            &found["customercharge"],
            &found["gst"],
            &found["discount"],
            &found["tds"],
            &found["netcommission"]
        ),
        (&json!("3"), &json!("12.00"), &json!("1.83"), &json!("1.83"), &json!("0.12"), &json!("6.05"))
    );
    assert_eq!(
        (&found["account"], &found["amount"], &found["ackno"]),
        (&json!("123456789012"), &json!("1000"), &json!(ackno))
    );

    // A refund cannot be claimed before the transfer fails.
    let early = app.call("/api/AOP/DMTV1/RefundOtp", &partner, json!({"referenceid": "JOURNEY-1"})).await;
    assert_refused(&early, 409, 16, "only a failed transaction");

    // The bank fails it; the remitter claims the refund with an OTP.
    operator_moves(&app, "dmt", &ackno, "failed").await;
    assert_eq!(app.dmt_status(&partner.name(), "JOURNEY-1", Some(&partner.token())).await.json()["txn_status"], "5");
    let refund_otp = app.call("/api/AOP/DMTV1/RefundOtp", &partner, json!({"referenceid": "JOURNEY-1"})).await;
    assert_eq!(refund_otp.status, 200, "{}", refund_otp.body);
    let claim = json!({"referenceid": "JOURNEY-1", "Stateresp": refund_otp.json()["stateresp"], "OTP": app.sms.last_otp(MOBILE)});
    let claimed = app.call("/api/AOP/DMTV1/ClaimRefund", &partner, claim.clone()).await;
    assert_eq!(claimed.status, 200, "{}", claimed.body);
    assert_eq!(claimed.json()["txn_status"], "0");
    let twice = app.call("/api/AOP/DMTV1/ClaimRefund", &partner, claim).await;
    assert_refused(&twice, 409, 16, "already refunded");

    let status = app.dmt_status(&partner.name(), "JOURNEY-1", Some(&partner.token())).await.json();
    assert_eq!((&status["txn_status"], &status["message"]), (&json!("0"), &json!("Transaction Refunded")));
    assert!(status["refundtxnid"].is_string() && status["daterefunded"].is_string(), "{status}");
    assert_eq!(balance(&app, &partner).await, "10000.00", "the wallet is back where it started");

    // The statement shows the three movements between opening and closing.
    let today = payrail::domain::Timestamp::now().to_ist_string()[..10].to_owned();
    let path = format!("/admin/v1/partners/{}/wallet/statement?from={today}&to={today}", partner.name());
    let csv = app.admin(&path, None).await;
    assert!(csv.content_type.starts_with("text/csv"), "{}", csv.content_type);
    let rows: Vec<&str> = csv.body.lines().collect();
    assert_eq!(rows.len(), 6, "{}", csv.body);
    assert!(
        rows[1].ends_with("opening balance,,,,0.00") && rows[5].ends_with("closing balance,,,,10000.00"),
        "{}",
        csv.body
    );
    assert!(rows[3].contains(",debit,dmt:") && rows[3].contains(",-1012.00,8988.00"), "{}", csv.body);
    assert!(rows[4].contains(",refund,dmt:") && rows[4].ends_with(",1012.00,10000.00"), "{}", csv.body);
    assert_verify_clean(&app);
}

async fn two_hundred_concurrent_transfers_against_a_wallet_for_one_hundred(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let bene = remitter_with_beneficiary(&app, &partner, MOBILE).await;
    // ₹100 + ₹10 charge each: the wallet pays for exactly 100.
    top_up(&app, &partner, "11000").await;
    let mut bodies = Vec::new();
    for i in 0..200 {
        let otp = transfer_otp(&app, &partner, MOBILE, &bene, "100").await;
        bodies.push(transaction_fields(MOBILE, &bene, "100", &format!("RACE-{i}"), &otp));
    }
    let app = std::sync::Arc::new(app);
    let partner = std::sync::Arc::new(partner);
    let mut racing = tokio::task::JoinSet::new();
    for body in bodies {
        let (app, partner) = (app.clone(), partner.clone());
        racing.spawn(async move { app.call("/api/AOP/DMTV1/Transaction", &partner, body).await });
    }
    let (mut paid, mut refused) = (0, 0);
    while let Some(answer) = racing.join_next().await {
        let answer = answer.unwrap_or_else(|e| panic!("{e}"));
        match answer.status {
            200 => paid += 1,
            _ => {
                assert_refused(&answer, 402, 13, "insufficient wallet balance");
                refused += 1;
            }
        }
    }
    assert_eq!((paid, refused), (100, 100));
    assert_eq!(balance(&app, &partner).await, "0.00");
    // The balance after every movement, as the statement runs it, never dips below zero.
    let today = payrail::domain::Timestamp::now().to_ist_string()[..10].to_owned();
    let path = format!("/admin/v1/partners/{}/wallet/statement?from={today}&to={today}", partner.name());
    let csv = app.admin(&path, None).await.body;
    let balances: Vec<f64> = csv.lines().skip(1).filter_map(|l| l.rsplit(',').next()?.parse().ok()).collect();
    assert_eq!(balances.len(), 1 + 1 + 100 + 1, "{csv}");
    assert!(balances.iter().all(|b| *b >= 0.0), "{csv}");
    assert_verify_clean(&app);
}

async fn a_reference_used_twice_is_debited_once_and_the_second_answer_says_why(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let bene = remitter_with_beneficiary(&app, &partner, MOBILE).await;
    top_up(&app, &partner, "5000").await;

    // One after the other.
    let first = transfer(&app, &partner, MOBILE, &bene, "1000", "ONCE-1").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let ackno = first.json()["ackno"].as_str().expect("ackno is a string").to_owned();
    let second = transfer(&app, &partner, MOBILE, &bene, "1000", "ONCE-1").await;
    assert_refused(&second, 409, 12, &format!("duplicate referenceid: the partner already has transaction {ackno}"));
    assert_eq!(balance(&app, &partner).await, "3990.00");

    // At the same time, each with its own OTP.
    let a = transfer_otp(&app, &partner, MOBILE, &bene, "1000").await;
    let b = transfer_otp(&app, &partner, MOBILE, &bene, "1000").await;
    let (one, two) = tokio::join!(
        app.call("/api/AOP/DMTV1/Transaction", &partner, transaction_fields(MOBILE, &bene, "1000", "TWICE-1", &a)),
        app.call("/api/AOP/DMTV1/Transaction", &partner, transaction_fields(MOBILE, &bene, "1000", "TWICE-1", &b)),
    );
    let mut statuses = [one.status, two.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} / {}", one.body, two.body);
    let loser = if one.status == 409 { &one } else { &two };
    assert_refused(loser, 409, 12, "duplicate referenceid");
    assert_eq!(balance(&app, &partner).await, "2980.00", "one debit of 1010.00");
    assert_verify_clean(&app);
}

async fn limits_are_refused_in_the_api_shape(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let bene = remitter_with_beneficiary(&app, &partner, MOBILE).await;
    let send =
        |amount: &str| app.call("/api/AOP/DMTV1/TransactionSendOtp", &partner, transfer_fields(MOBILE, &bene, amount));

    assert_refused(&send("5001").await, 422, 14, "per transaction");
    assert_refused(&send("99").await, 422, 14, "per transaction");

    // Not enough in the wallet: refused at the debit, nothing recorded.
    let poor = transfer(&app, &partner, MOBILE, &bene, "1000", "POOR-1").await;
    assert_refused(&poor, 402, 13, "insufficient wallet balance: 0.00 available, 1010.00 needed");
    assert_eq!(app.dmt_status(&partner.name(), "POOR-1", Some(&partner.token())).await.json()["response_code"], 2);

    // The monthly limit: ₹25,000 on each of three pipes, so 15 transfers of ₹5,000.
    top_up(&app, &partner, "100000").await;
    for i in 0..15 {
        let answer = transfer(&app, &partner, MOBILE, &bene, "5000", &format!("BIG-{i}")).await;
        assert_eq!(answer.status, 200, "transfer {i}: {}", answer.body);
    }
    let query = app.call("/api/AOP/DMTV1/QueryRemitter", &partner, json!({"MobileNo": MOBILE})).await.json();
    assert_eq!((&query["data"]["bank1_limit"], &query["data"]["bank3_limit"]), (&json!(0), &json!(0)));
    assert_refused(&send("100").await, 422, 14, "monthly limit exceeded: 0 left");
    assert_eq!(balance(&app, &partner).await, "24250.00", "100000 − 15 × (5000 + 50)");
    assert_verify_clean(&app);
}

async fn otps_are_single_use_bound_to_their_request_and_limited_in_attempts(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let bene = remitter_with_beneficiary(&app, &partner, MOBILE).await;
    top_up(&app, &partner, "5000").await;

    // An OTP for ₹100 does not pay ₹200.
    let otp = transfer_otp(&app, &partner, MOBILE, &bene, "100").await;
    let other =
        app.call("/api/AOP/DMTV1/Transaction", &partner, transaction_fields(MOBILE, &bene, "200", "OTP-1", &otp)).await;
    assert_refused(&other, 422, 15, "different request");
    // Used once (above), it is spent.
    let reuse =
        app.call("/api/AOP/DMTV1/Transaction", &partner, transaction_fields(MOBILE, &bene, "100", "OTP-1", &otp)).await;
    assert_refused(&reuse, 422, 15, "already used");

    // Three wrong codes end it.
    let otp = transfer_otp(&app, &partner, MOBILE, &bene, "100").await;
    let wrong_code = if otp.1 == "000000" { "111111" } else { "000000" };
    for left in [2, 1, 0] {
        let wrong = (otp.0.clone(), wrong_code.to_owned());
        let answer = app
            .call("/api/AOP/DMTV1/Transaction", &partner, transaction_fields(MOBILE, &bene, "100", "OTP-2", &wrong))
            .await;
        assert_refused(&answer, 422, 15, &format!("{left} attempts left"));
    }
    let right =
        app.call("/api/AOP/DMTV1/Transaction", &partner, transaction_fields(MOBILE, &bene, "100", "OTP-2", &otp)).await;
    assert_refused(&right, 422, 15, "attempts exhausted");
    let unknown = (String::from("no-such-stateresp"), otp.1.clone());
    let answer = app
        .call("/api/AOP/DMTV1/Transaction", &partner, transaction_fields(MOBILE, &bene, "100", "OTP-3", &unknown))
        .await;
    assert_refused(&answer, 422, 15, "invalid stateresp");
    assert_eq!(balance(&app, &partner).await, "5000.00", "nothing was debited");

    // With the SMS gateway down, the partner hears so.
    app.sms.set_down(true);
    let down = app.call("/api/AOP/DMTV1/TransactionSendOtp", &partner, transfer_fields(MOBILE, &bene, "100")).await;
    assert_refused(&down, 502, 17, "unable to send the otp");
}

async fn partners_cannot_reach_each_others_remitters_beneficiaries_or_refunds(engine: Engine) {
    let app = spawn_app(engine).await;
    let (owner, other) = (app.add_partner(true, &[]).await, app.add_partner(true, &[]).await);
    let bene = remitter_with_beneficiary(&app, &owner, MOBILE).await;
    top_up(&app, &owner, "5000").await;
    top_up(&app, &other, "5000").await;
    let sent = transfer(&app, &owner, MOBILE, &bene, "100", "MINE-1").await.json();
    operator_moves(&app, "dmt", sent["ackno"].as_str().expect("ackno is a string"), "failed").await;

    // The other partner sees no remitter (it gets a registration OTP instead)…
    let query = app.call("/api/AOP/DMTV1/QueryRemitter", &other, json!({"MobileNo": MOBILE})).await;
    assert_eq!(query.status, 202, "{}", query.body);
    // …cannot use, list or delete the owner's beneficiary, nor touch its refund.
    register_remitter(&app, &other, MOBILE).await;
    let send = app.call("/api/AOP/DMTV1/TransactionSendOtp", &other, transfer_fields(MOBILE, &bene, "100")).await;
    assert_refused(&send, 200, 2, "beneficiary not found");
    let listed = app.call("/api/AOP/DMTV1/FetchBeneficiary", &other, json!({"MobileNo": MOBILE})).await;
    assert_eq!(listed.json()["data"], json!([]));
    let delete =
        app.call("/api/AOP/DMTV1/DeleteBeneficiary", &other, json!({"MobileNo": MOBILE, "BeneID": bene})).await;
    assert_refused(&delete, 200, 2, "beneficiary not found");
    let refund = app.call("/api/AOP/DMTV1/RefundOtp", &other, json!({"referenceid": "MINE-1"})).await;
    assert_refused(&refund, 200, 2, "transaction not found");
    // The owner can delete it; then it is gone for the owner too.
    let delete =
        app.call("/api/AOP/DMTV1/DeleteBeneficiary", &owner, json!({"MobileNo": MOBILE, "BeneID": bene})).await;
    assert_eq!(delete.status, 200, "{}", delete.body);
    let send = app.call("/api/AOP/DMTV1/TransactionSendOtp", &owner, transfer_fields(MOBILE, &bene, "100")).await;
    assert_refused(&send, 200, 2, "beneficiary not found");
    // And nothing works without the partner's token.
    let unsigned = app
        .post_raw(
            "/api/AOP/DMTV1/QueryRemitter",
            json!({"MobileNo": MOBILE, "RegistrationID": owner.name()}).to_string(),
            &[],
        )
        .await;
    assert_eq!((unsigned.status, unsigned.json()["response_code"].clone()), (401, json!(11)));
}

/// AOPay's RefundOtp page sends `{referenceid, ackno}` and its ClaimRefund
/// page `{referenceid, ackno, otp}` (numbers, no `Stateresp`; its curl sends
/// only `ackno` and `otp`): each is taken, the OTP being the newest one sent
/// for the transfer's refund.
async fn refunds_take_aopays_bodies_ackno_and_otp_without_a_stateresp(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let other = app.add_partner(true, &[]).await;
    top_up(&app, &partner, "10000").await;
    let bene = remitter_with_beneficiary(&app, &partner, MOBILE).await;
    let mut acknos = Vec::new();
    for reference in ["AOP-RF-1", "AOP-RF-2"] {
        let sent = transfer(&app, &partner, MOBILE, &bene, "1000", reference).await.json();
        let ackno: i64 = sent["ackno"].as_str().expect("ackno is a string").parse().expect("digits");
        operator_moves(&app, "dmt", &ackno.to_string(), "failed").await;
        acknos.push(ackno);
    }
    let (first, second) = (acknos[0], acknos[1]);

    // Refused, nothing sent: an ackno that is not digits, names another
    // transfer than the referenceid, or is another partner's (as unknown).
    let texts = app.sms.messages().len();
    let refund_otp = |who, body| app.call("/api/AOP/DMTV1/RefundOtp", who, body);
    assert_refused(&refund_otp(&partner, json!({"ackno": "12a"})).await, 400, 8, "ackno");
    let crossed = refund_otp(&partner, json!({"referenceid": "AOP-RF-1", "ackno": second})).await;
    assert_refused(&crossed, 400, 8, "different transactions");
    let foreign = refund_otp(&other, json!({"referenceid": "AOP-RF-1", "ackno": first})).await;
    let unknown = refund_otp(&other, json!({"referenceid": "NO-SUCH", "ackno": 1})).await;
    assert_eq!((foreign.status, &foreign.body), (unknown.status, &unknown.body), "another's ackno is unknown");
    assert_eq!(app.sms.messages().len(), texts, "no OTP went");

    // The page's bodies: numbers, lower-case otp, no Stateresp.
    let sent = refund_otp(&partner, json!({"referenceid": "AOP-RF-1", "ackno": first})).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let otp: i64 = app.sms.last_otp(MOBILE).parse().expect("six digits");
    let wrong = (otp + 1) % 1_000_000;
    let claim = |body| app.call("/api/AOP/DMTV1/ClaimRefund", &partner, body);
    assert_refused(
        &claim(json!({"referenceid": "AOP-RF-1", "ackno": first, "otp": format!("{wrong:06}")})).await,
        422,
        15,
        "Invalid OTP",
    );
    let claimed = claim(json!({"referenceid": "AOP-RF-1", "ackno": first, "otp": format!("{otp:06}")})).await;
    assert_eq!(claimed.status, 200, "{}", claimed.body);
    assert_eq!(claimed.json()["txn_status"], "0", "{}", claimed.body);

    // The curl's body: ackno and otp only; a claim before any OTP is refused.
    let early = claim(json!({"ackno": second, "otp": "123456"})).await;
    assert_refused(&early, 422, 15, "call RefundOtp first");
    assert_eq!(refund_otp(&partner, json!({"ackno": second})).await.status, 200);
    let otp = app.sms.last_otp(MOBILE);
    let claimed = claim(json!({"ackno": second, "otp": otp})).await;
    assert_eq!(claimed.status, 200, "{}", claimed.body);
    assert_eq!(balance(&app, &partner).await, "10000.00", "both refunded, once each");
    assert_verify_clean(&app);
}
