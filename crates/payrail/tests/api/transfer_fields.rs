//! `TransactionSendOtp` and `Transaction` with AOPay's fields (SPEC §7.2):
//! the remitter's details and location checked, bound to the OTP and passed
//! upstream; the `pipe` a partner chooses honoured, or refused with nothing
//! debited when it has no room; IMPS refused to a bank that has none.

use serde_json::{json, Value};

use crate::beneficiaries::aopay_sample;
use crate::both_engines;
use crate::helpers::{spawn_app, spawn_app_with, AppOptions, Engine, TestApp, TestPartner, TestUpstream};
use crate::journey::*;
use crate::upstream_paysprint::app_with_mock;

both_engines!(
    aopays_send_otp_sample_answers_202_and_its_details_reach_the_upstream_with_the_chosen_pipe,
    bad_transfer_details_and_pipes_are_refused_naming_the_field,
    a_chosen_pipe_without_room_this_month_is_refused_and_nothing_is_debited,
    imps_to_a_bank_without_imps_is_refused_and_neft_goes,
    the_sandbox_receives_the_remitters_details,
);

const SEND_OTP: &str = "/api/AOP/DMTV1/TransactionSendOtp";
const TRANSACTION: &str = "/api/AOP/DMTV1/Transaction";

/// A funded partner with a remitter and AOPay's sample beneficiary (HDFC Bank); the `beneid`.
async fn ready(app: &TestApp) -> (TestPartner, String) {
    let partner = app.add_partner(true, &[]).await;
    top_up(app, &partner, "100000").await;
    register_remitter(app, &partner, MOBILE).await;
    let added = app.call("/api/AOP/RegisterBaneficiary", &partner, aopay_sample(MOBILE)).await;
    assert_eq!(added.status, 200, "{}", added.body);
    (partner, added.json()["beneid"].as_str().expect("beneid").to_owned())
}

/// AOPay's `TransactionSendOtp` sample body, made valid.
fn send_otp_sample(bene: &str, amount: &str) -> Value {
    json!({
        "MobileNumber": MOBILE,
        "BeneID": bene,
        "Txntype": "IMPS",
        "Amount": amount,
        "Pincode": "110045",
        "Address": "New delhi",
        "DOB": "20/08/2000",
        "Latitude": "28.6090",
        "Longitute": "77.2362",
        "RegistrationID": "AOP-554"
    })
}

/// `Transaction`: the OTP request's body, with the reference, the OTP and `extra` fields.
async fn confirm(app: &TestApp, partner: &TestPartner, otp_body: Value, reference: &str, extra: Value) -> Value {
    let sent = app.call(SEND_OTP, partner, otp_body.clone()).await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let mut body = otp_body;
    body["referenceid"] = json!(reference);
    body["OTP"] = json!(app.sms.last_otp(MOBILE));
    body["Stateresp"] = sent.json()["stateresp"].clone();
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        body[key] = value;
    }
    let answer = app.call(TRANSACTION, partner, body).await;
    let mut json = answer.json();
    json["http"] = json!(answer.status);
    json
}

async fn aopays_send_otp_sample_answers_202_and_its_details_reach_the_upstream_with_the_chosen_pipe(engine: Engine) {
    let (app, mock) = app_with_mock(engine, "1s").await;
    let (partner, bene) = ready(&app).await;
    let sent = app.call(SEND_OTP, &partner, send_otp_sample(&bene, "100")).await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    assert_field_order(&sent.body, &["status", "response_code", "stateresp", "message"]);
    let body = sent.json();
    assert_eq!((&body["status"], &body["response_code"]), (&json!(true), &json!(1)));

    let done = confirm(&app, &partner, send_otp_sample(&bene, "100"), "FIELDS-1", json!({"pipe": "bank2"})).await;
    assert_eq!(done["http"], 200, "{done}");
    let submitted: Vec<Value> =
        mock.calls().into_iter().filter(|c| c.path == "dmt/transact/transact").map(|c| c.body).collect();
    assert_eq!(submitted.len(), 1, "{submitted:?}");
    let call = &submitted[0];
    // Pincode, address and DOB from the OTP request; the GST state from the beneficiary's record.
    assert_eq!(
        (&call["pipe"], &call["pincode"], &call["address"], &call["dob"], &call["gst_state"]),
        (&json!("bank2"), &json!("110045"), &json!("New delhi"), &json!("20-08-2000"), &json!("07"))
    );
    let limits = app.call("/api/AOP/DMTV1/QueryRemitter", &partner, json!({"MobileNo": MOBILE})).await.json();
    assert_eq!((&limits["data"]["bank1_limit"], &limits["data"]["bank2_limit"]), (&json!(25000), &json!(24900)));

    // The OTP is bound to the details it was sent for.
    let sent = app.call(SEND_OTP, &partner, send_otp_sample(&bene, "100")).await;
    let mut other = send_otp_sample(&bene, "100");
    other["Pincode"] = json!("560001");
    other["referenceid"] = json!("FIELDS-2");
    other["OTP"] = json!(app.sms.last_otp(MOBILE));
    other["Stateresp"] = sent.json()["stateresp"].clone();
    assert_refused(&app.call(TRANSACTION, &partner, other).await, 422, 15, "different request");
}

async fn bad_transfer_details_and_pipes_are_refused_naming_the_field(engine: Engine) {
    let app = spawn_app(engine).await;
    let (partner, bene) = ready(&app).await;
    let with = |field: &str, value: &str| {
        let mut body = send_otp_sample(&bene, "100");
        body[field] = json!(value);
        body
    };
    let cases = [
        (with("Pincode", "011004"), "Pincode must be a 6-digit PIN code"),
        (with("DOB", "20-08-2000"), "DOB must be a past date written DD/MM/YYYY"),
        (with("DOB", "30/02/2000"), "DOB"),
        (with("Latitude", "128.6"), "Latitude must be a decimal number from -90 to 90"),
        (with("Longitute", "east"), "Longitute"),
    ];
    let texts = app.sms.messages().len();
    for (body, needle) in cases {
        assert_refused(&app.call(SEND_OTP, &partner, body).await, 400, 8, needle);
    }
    assert_eq!(app.sms.messages().len(), texts, "no OTP was sent");
    let balance_before = balance(&app, &partner).await;
    let bad_pipe = confirm(&app, &partner, send_otp_sample(&bene, "100"), "PIPE-X", json!({"pipe": "bank4"})).await;
    assert_eq!((&bad_pipe["http"], &bad_pipe["response_code"]), (&json!(400), &json!(8)), "{bad_pipe}");
    assert!(bad_pipe["message"].as_str().is_some_and(|m| m.contains("pipe must be bank1, bank2 or bank3")));
    assert_eq!(balance(&app, &partner).await, balance_before);
}

async fn a_chosen_pipe_without_room_this_month_is_refused_and_nothing_is_debited(engine: Engine) {
    let app = spawn_app(engine).await;
    let (partner, bene) = ready(&app).await;
    for n in 0..5 {
        let done =
            confirm(&app, &partner, send_otp_sample(&bene, "5000"), &format!("FULL-{n}"), json!({"pipe": "bank3"}))
                .await;
        assert_eq!(done["http"], 200, "{done}");
    }
    let before = balance(&app, &partner).await;
    let full = confirm(&app, &partner, send_otp_sample(&bene, "100"), "FULL-5", json!({"pipe": "BANK3"})).await;
    assert_eq!((&full["http"], &full["response_code"]), (&json!(422), &json!(14)), "{full}");
    assert_eq!(
        full["message"],
        "Pipe bank3 has no room this month: 0 left for this remitter on it (leave pipe out to use any pipe)"
    );
    assert_eq!(balance(&app, &partner).await, before, "nothing debited");
    assert_eq!(app.dmt_status(&partner.name(), "FULL-5", Some(&partner.token())).await.json()["response_code"], 2);
    // Without a pipe, the first with room takes it.
    let any = confirm(&app, &partner, send_otp_sample(&bene, "100"), "FULL-6", json!({})).await;
    assert_eq!(any["http"], 200, "{any}");
    let limits = app.call("/api/AOP/DMTV1/QueryRemitter", &partner, json!({"MobileNo": MOBILE})).await.json();
    let data = &limits["data"];
    assert_eq!((&data["bank1_limit"], &data["bank3_limit"]), (&json!(24900), &json!(0)));
    assert_verify_clean(&app);
}

async fn imps_to_a_bank_without_imps_is_refused_and_neft_goes(engine: Engine) {
    let app = spawn_app(engine).await;
    let (partner, _) = ready(&app).await;
    let mut body = aopay_sample(MOBILE);
    body["bankid"] = json!("702");
    body["ifsccode"] = json!("ZCBL0000001");
    let added = app.call("/api/AOP/RegisterBaneficiary", &partner, body).await;
    let bene = added.json()["beneid"].as_str().expect("beneid").to_owned();
    let imps = app.call(SEND_OTP, &partner, send_otp_sample(&bene, "100")).await;
    assert_refused(&imps, 422, 14, "The Zoroastrian Co-operative Bank does not take IMPS transfers: send by NEFT");
    let mut neft = send_otp_sample(&bene, "100");
    neft["Txntype"] = json!("NEFT");
    let done = confirm(&app, &partner, neft, "NEFT-1", json!({})).await;
    assert_eq!(done["http"], 200, "{done}");
}

async fn the_sandbox_receives_the_remitters_details(engine: Engine) {
    let options = AppOptions { upstream: TestUpstream::Sandbox { step_secs: 60 }, ..AppOptions::default() };
    let app = spawn_app_with(engine, options).await;
    let (partner, bene) = ready(&app).await;
    let served = confirm(&app, &partner, send_otp_sample(&bene, "100"), "SANDBOX-1", json!({})).await;
    assert_eq!((&served["http"], &served["txn_status"]), (&json!(200), &json!("3")), "{served}");
    let mut unserved = send_otp_sample(&bene, "100");
    unserved["Pincode"] = json!("999999");
    let refused = confirm(&app, &partner, unserved, "SANDBOX-2", json!({})).await;
    assert_eq!(refused["http"], 200, "{refused}");
    assert!(matches!(refused["txn_status"].as_str(), Some("0" | "5")), "the sandbox failed it: {refused}");
    assert_verify_clean(&app);
}
