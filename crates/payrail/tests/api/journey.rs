//! Shared steps of the DMT V1 and BBPS journeys, driven through HTTP as a
//! partner (and the operator API where an operator acts).

use serde_json::{json, Value};

use crate::helpers::{payrail, text, Answer, TestApp, TestPartner};

pub const MOBILE: &str = "9876543210";

/// Tops the partner's wallet up through the operator API; returns the closing balance.
pub async fn top_up(app: &TestApp, partner: &TestPartner, amount: &str) -> String {
    let path = format!("/admin/v1/partners/{}/wallet/topup", partner.name());
    let answer = app.admin(&path, Some(json!({"amount": amount, "memo": "test funding"}))).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["closing"].as_str().expect("closing is a string").to_owned()
}

/// The partner's wallet balance, from the operator API.
pub async fn balance(app: &TestApp, partner: &TestPartner) -> String {
    let answer = app.admin(&format!("/admin/v1/partners/{}/wallet", partner.name()), None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["balance"].as_str().expect("balance is a string").to_owned()
}

/// A real e-KYC (202 + OTP, its `stateresp` the `KycId`) then register.
pub async fn register_remitter(app: &TestApp, partner: &TestPartner, mobile: &str) {
    let registered = app.ekyc_and_register(partner, mobile).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
}

/// Adds a beneficiary; returns its `beneid`.
pub async fn add_beneficiary(app: &TestApp, partner: &TestPartner, mobile: &str) -> String {
    add_beneficiary_account(app, partner, mobile, "123456789012").await
}

/// Adds a beneficiary with this account number; returns its `beneid`.
pub async fn add_beneficiary_account(app: &TestApp, partner: &TestPartner, mobile: &str, account: &str) -> String {
    let fields = json!({"MobileNo": mobile, "BeneName": "Ravi Verma", "AccountNo": account,
                        "IFSC": "sbin0001234", "BankName": "State Bank of India"});
    let added = app.call("/api/AOP/DMTV1/RegisterBeneficiary", partner, fields).await;
    assert_eq!(added.status, 200, "{}", added.body);
    added.json()["beneid"].as_str().expect("beneid is a string").to_owned()
}

/// The `beneid` of the remitter's beneficiary with this account, if any.
pub async fn beneficiary_with_account(
    app: &TestApp,
    partner: &TestPartner,
    mobile: &str,
    account: &str,
) -> Option<String> {
    let list = app.call("/api/AOP/DMTV1/FetchBeneficiary", partner, json!({"MobileNo": mobile})).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let data = list.json()["data"].as_array().cloned().expect("data is an array");
    let found = data.into_iter().find(|b| b["accno"] == account);
    found.and_then(|b| b["bene_id"].as_str().map(str::to_owned))
}

/// A registered remitter with one beneficiary; returns the `beneid`.
pub async fn remitter_with_beneficiary(app: &TestApp, partner: &TestPartner, mobile: &str) -> String {
    register_remitter(app, partner, mobile).await;
    add_beneficiary(app, partner, mobile).await
}

pub fn transfer_fields(mobile: &str, bene: &str, amount: &str) -> Value {
    json!({"MobileNumber": mobile, "BeneID": bene, "Txntype": "IMPS", "Amount": amount})
}

/// Asks for a transfer OTP; returns (stateresp, otp).
pub async fn transfer_otp(
    app: &TestApp,
    partner: &TestPartner,
    mobile: &str,
    bene: &str,
    amount: &str,
) -> (String, String) {
    let sent = app.call("/api/AOP/DMTV1/TransactionSendOtp", partner, transfer_fields(mobile, bene, amount)).await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    (sent.json()["stateresp"].as_str().expect("stateresp is a string").to_owned(), app.sms.last_otp(mobile))
}

/// The `Transaction` body for an OTP already obtained.
pub fn transaction_fields(mobile: &str, bene: &str, amount: &str, reference: &str, otp: &(String, String)) -> Value {
    let mut fields = transfer_fields(mobile, bene, amount);
    fields["referenceid"] = json!(reference);
    fields["Stateresp"] = json!(otp.0);
    fields["OTP"] = json!(otp.1);
    fields
}

/// OTP then `Transaction`.
pub async fn transfer(
    app: &TestApp,
    partner: &TestPartner,
    mobile: &str,
    bene: &str,
    amount: &str,
    reference: &str,
) -> Answer {
    let otp = transfer_otp(app, partner, mobile, bene, amount).await;
    let fields = transaction_fields(mobile, bene, amount, reference, &otp);
    app.call("/api/AOP/DMTV1/Transaction", partner, fields).await
}

/// Moves a transaction through the operator API.
pub async fn operator_moves(app: &TestApp, kind: &str, id: &str, to: &str) {
    let answer = app.admin(&format!("/admin/v1/{kind}/{id}/transition"), Some(json!({"to": to}))).await;
    assert_eq!(answer.status, 200, "{kind} {id} → {to}: {}", answer.body);
}

/// `payrail verify` on the app's store must pass.
pub fn assert_verify_clean(app: &TestApp) {
    let out = payrail(app, &["verify"]);
    assert!(out.status.success(), "verify failed: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ok:"), "{}", text(&out.stdout));
}

/// Asserts a refusal's status, code and (part of its) message.
pub fn assert_refused(answer: &Answer, status: u16, code: i64, needle: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let json = answer.json();
    assert_eq!(json["status"], false, "{}", answer.body);
    assert_eq!(json["response_code"], code, "{}", answer.body);
    let message = json["message"].as_str().expect("message is a string");
    assert!(message.to_lowercase().contains(&needle.to_lowercase()), "{message:?} lacks {needle:?}");
}

/// Asserts that the body's top-level fields are exactly `fields`, in this order.
pub fn assert_field_order(body: &str, fields: &[&str]) {
    let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(json.as_object().map(|o| o.len()), Some(fields.len()), "{body}");
    let positions: Vec<usize> = fields
        .iter()
        .map(|f| body.find(&format!("\"{f}\":")).unwrap_or_else(|| panic!("{f} missing: {body}")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "fields out of order: {body}");
}
