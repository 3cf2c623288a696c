//! BBPS through HTTP: operators, bill fetch, payment from the wallet, status,
//! failure and refund; and every new endpoint's refusal of malformed input.

use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{spawn_app, Engine, TestApp, TestPartner};
use crate::journey::*;

both_engines!(
    a_whole_bbps_journey_ends_with_the_payment_refunded,
    a_bill_reference_used_twice_is_paid_once,
    malformed_input_to_every_new_endpoint_is_a_400_that_writes_nothing,
);

async fn a_whole_bbps_journey_ends_with_the_payment_refunded(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    top_up(&app, &partner, "20000").await;

    let operators = app.call("/api/AOP/BillPaymentOperators", &partner, json!({"category": "electricity"})).await;
    assert_eq!(operators.status, 200, "{}", operators.body);
    let list = operators.json()["data"].as_array().cloned().expect("data is an array");
    assert!(list.len() >= 5 && list.iter().all(|o| o["category"] == "Electricity"), "{list:?}");
    let bses = list.iter().find(|o| o["name"] == "BSES Rajdhani Power Limited").cloned().expect("BSES is listed");
    assert_eq!((&bses["displayname"], &bses["fetch_bill"]), (&json!("CA Number"), &json!(true)));
    let operator = bses["id"].clone();

    let fetched = app
        .call("/api/AOP/FetchBilPaymentDetails", &partner, json!({"operator": operator, "canumber": "150012345678"}))
        .await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    let bill = fetched.json();
    let amount = bill["amount"].as_str().expect("amount is a string").to_owned();
    assert!(bill["name"].is_string() && bill["duedate"].is_string() && !amount.is_empty(), "{bill}");

    let pay = json!({"operator": operator, "canumber": "150012345678", "amount": amount, "referenceid": "BILL-1"});
    let paid = app.call("/api/AOP/BillPaymentPaybill", &partner, pay).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    let paid_body = paid.json();
    assert_field_order(
        &paid.body,
        &["status", "response_code", "operatorid", "ackno", "opening", "closing", "message"],
    );
    assert_eq!((&paid_body["opening"], &paid_body["message"]), (&json!("20000.00"), &json!("Transaction Pending")));
    let txnid = paid_body["ackno"].as_i64().expect("ackno is a JSON integer").to_string();
    let after_payment = balance(&app, &partner).await;
    assert_eq!(paid_body["closing"], json!(after_payment));

    let status = app.bill_status(&partner.name(), "BILL-1", Some(&partner.token())).await.json();
    assert_eq!((&status["data"]["status"], &status["message"]), (&json!("2"), &json!("Transaction Pending")));
    assert_eq!(
        (&status["data"]["txnid"], &status["data"]["operatorname"]),
        (&json!(txnid), &json!("BSES Rajdhani Power Limited"))
    );
    assert_eq!(status["data"]["amount"], json!(amount));

    operator_moves(&app, "bbps", &txnid, "failed").await;
    operator_moves(&app, "bbps", &txnid, "refunded").await;
    let status = app.bill_status(&partner.name(), "BILL-1", Some(&partner.token())).await.json();
    assert_eq!(
        (&status["message"], &status["data"]["status"], &status["data"]["refunded"]),
        (&json!("Transaction Refunded"), &json!("0"), &json!("1"))
    );
    assert!(status["data"]["refundtxnid"].is_string() && status["data"]["daterefunded"].is_string(), "{status}");
    assert_eq!(balance(&app, &partner).await, "20000.00");
    // A second refund is refused and moves no money.
    let again = app.admin(&format!("/admin/v1/bbps/{txnid}/transition"), Some(json!({"to": "refunded"}))).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(balance(&app, &partner).await, "20000.00");
    assert_verify_clean(&app);
}

async fn a_bill_reference_used_twice_is_paid_once(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    top_up(&app, &partner, "1000").await;
    let pay = json!({"operator": 30, "canumber": "KNO-77", "amount": "250.50", "referenceid": "BILL-2"});
    assert_eq!(app.call("/api/AOP/BillPaymentPaybill", &partner, pay.clone()).await.status, 200);
    let second = app.call("/api/AOP/BillPaymentPaybill", &partner, pay).await;
    assert_refused(&second, 409, 12, "duplicate referenceid");
    assert_eq!(balance(&app, &partner).await, "749.50");
    let poor = json!({"operator": 30, "canumber": "KNO-77", "amount": "800", "referenceid": "BILL-3"});
    assert_refused(&app.call("/api/AOP/BillPaymentPaybill", &partner, poor).await, 402, 13, "insufficient");
    let huge = json!({"operator": 30, "canumber": "KNO-77", "amount": "200000.01", "referenceid": "BILL-4"});
    assert_refused(&app.call("/api/AOP/BillPaymentPaybill", &partner, huge).await, 422, 14, "at most 200000");
    let unknown = json!({"operator": 9999, "canumber": "KNO-77", "amount": "10", "referenceid": "BILL-5"});
    assert_refused(&app.call("/api/AOP/BillPaymentPaybill", &partner, unknown).await, 200, 2, "unknown operator");
    assert_verify_clean(&app);
}

/// What a malformed request must leave untouched.
async fn snapshot(app: &TestApp, partner: &TestPartner) -> (String, (i64, i64), usize, Value) {
    let counts = app.store.counts().await.unwrap_or_else(|e| panic!("{e}"));
    let listed = app.call("/api/AOP/DMTV1/FetchBeneficiary", partner, json!({"MobileNo": MOBILE})).await.json();
    (balance(app, partner).await, counts, app.sms.messages().len(), listed["data"].clone())
}

async fn malformed_input_to_every_new_endpoint_is_a_400_that_writes_nothing(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let bene = remitter_with_beneficiary(&app, &partner, MOBILE).await;
    top_up(&app, &partner, "5000").await;
    let before = snapshot(&app, &partner).await;
    let transfer = json!({"MobileNumber": MOBILE, "BeneID": bene, "Txntype": "IMPS", "Amount": "100",
                          "referenceid": "R-1", "OTP": "123456", "Stateresp": "abc"});
    let with = |base: &Value, field: &str, value: Value| {
        let mut body = base.clone();
        if value.is_null() {
            body.as_object_mut().map(|o| o.remove(field));
        } else {
            body[field] = value;
        }
        body
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("QueryRemitter", json!({"MobileNo": "12345"}), "MobileNo"),
        ("QueryRemitter", json!({}), "MobileNo is missing"),
        ("RegisterRemitter", json!({"MobileNo": "9123456780", "OTP": "12", "Stateresp": "x", "KycId": "k"}), "OTP"),
        ("RegisterRemitter", json!({"MobileNo": "9123456780", "OTP": "123456", "Stateresp": "x"}), "KycId"),
        (
            "RegisterBeneficiary",
            json!({"MobileNo": MOBILE, "BeneName": "A", "AccountNo": "12ab", "IFSC": "SBIN0001234"}),
            "AccountNo",
        ),
        (
            "RegisterBeneficiary",
            json!({"MobileNo": MOBILE, "BeneName": "A", "AccountNo": "123456789", "IFSC": "SBIN1001234"}),
            "IFSC",
        ),
        (
            "RegisterBeneficiary",
            json!({"MobileNo": MOBILE, "AccountNo": "123456789", "IFSC": "SBIN0001234"}),
            "BeneName",
        ),
        ("FetchBeneficiary", json!({"MobileNo": ["x"]}), "MobileNo must be a string"),
        ("DeleteBeneficiary", json!({"MobileNo": MOBILE, "BeneID": "abc"}), "BeneID"),
        ("TransactionSendOtp", with(&transfer, "Txntype", json!("UPI")), "Txntype"),
        ("TransactionSendOtp", with(&transfer, "Amount", json!("100.50")), "whole rupees"),
        ("TransactionSendOtp", with(&transfer, "Amount", json!("-5")), "Amount"),
        ("Transaction", with(&transfer, "referenceid", Value::Null), "referenceid is missing"),
        ("Transaction", with(&transfer, "referenceid", json!("bad ref!")), "referenceid"),
        ("Transaction", with(&transfer, "OTP", json!("12345a")), "OTP"),
        ("Transaction", with(&transfer, "Stateresp", Value::Null), "Stateresp"),
        ("RefundOtp", json!({"referenceid": ""}), "referenceid"),
        ("ClaimRefund", json!({"referenceid": "R-1", "OTP": "1"}), "OTP"),
    ];
    for (endpoint, body, needle) in cases {
        let answer = app.call(&format!("/api/AOP/DMTV1/{endpoint}"), &partner, body.clone()).await;
        assert_refused(&answer, 400, 8, needle);
        let _ = endpoint;
    }
    let bbps: Vec<(&str, Value, &str)> = vec![
        ("BillPaymentOperators", json!({"category": true}), "category must be a string"),
        ("FetchBilPaymentDetails", json!({"operator": "x", "canumber": "1"}), "operator"),
        ("FetchBilPaymentDetails", json!({"operator": 1}), "canumber"),
        (
            "BillPaymentPaybill",
            json!({"operator": 1, "canumber": "1", "amount": "1.001", "referenceid": "B"}),
            "amount",
        ),
        ("BillPaymentPaybill", json!({"operator": 1, "canumber": "1", "amount": "0", "referenceid": "B"}), "amount"),
        ("BillPaymentPaybill", json!({"operator": 1, "canumber": "1", "amount": "10"}), "referenceid"),
    ];
    for (endpoint, body, needle) in bbps {
        assert_refused(&app.call(&format!("/api/AOP/{endpoint}"), &partner, body).await, 400, 8, needle);
    }
    // Bodies that are not JSON objects, on every new endpoint.
    let token = partner.token();
    for endpoint in [
        "DMTV1/QueryRemitter",
        "DMTV1/Transaction",
        "DMTV1/ClaimRefund",
        "BillPaymentPaybill",
        "FetchBilPaymentDetails",
    ] {
        for body in ["not json", "[1,2]", "{\"RegistrationID\":", ""] {
            let answer = app.post_raw(&format!("/api/AOP/{endpoint}"), body, &[("Token", token.as_str())]).await;
            assert_refused(&answer, 400, 8, "");
        }
    }
    assert_eq!(snapshot(&app, &partner).await, before, "malformed requests wrote nothing");
}
