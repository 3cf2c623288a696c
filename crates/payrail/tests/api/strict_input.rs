//! Ambiguous and malformed input is refused, not guessed at (issue 9 items
//! 15 and 16): duplicate keys in any case or under two aliases, control and
//! bidirectional-override characters, codes outside their character set,
//! numbers with spaces, leading zeros, fractions or exponents, missing
//! biller parameters, an account registered twice, and imports whose dates
//! cannot be true.

use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{payrail, spawn_app, text, Answer, Engine, TestApp, TestPartner};
use crate::journey::{add_beneficiary_account, assert_refused, balance, register_remitter, top_up, MOBILE};

both_engines!(
    a_key_sent_twice_in_any_case_is_refused_and_nothing_is_debited,
    two_aliases_of_one_field_are_refused_naming_both,
    control_and_bidirectional_override_characters_are_refused_and_not_stored,
    account_numbers_and_tokens_have_a_character_set_and_a_length,
    numbers_are_read_exactly_as_documented,
    a_billers_declared_parameters_are_required,
    the_same_account_cannot_be_registered_twice_for_one_remitter,
    import_refuses_a_future_creation_and_a_refund_before_it,
);

const PAYBILL: &str = "/api/AOP/BillPaymentPaybill";
const DMT_STATUS: &str = "/api/AOP/DMTV1/TransactionStatus";
const BILL_STATUS: &str = "/api/AOP/BillPaymentStatus";

/// A raw body (duplicate keys cannot be built with `json!`), signed as `partner`.
async fn post(app: &TestApp, path: &str, partner: &TestPartner, body: &str) -> Answer {
    app.post_raw(path, body.to_owned(), &[("Token", partner.token().as_str())]).await
}

async fn funded(app: &TestApp) -> TestPartner {
    let partner = app.add_partner(true, &[]).await;
    top_up(app, &partner, "10000").await;
    partner
}

fn paybill_fields(reference: &str) -> Value {
    json!({"operator": 1, "canumber": "150012345678", "amount": "500", "referenceid": reference})
}

async fn a_key_sent_twice_in_any_case_is_refused_and_nothing_is_debited(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = funded(&app).await;
    let reg = partner.name();
    let before = balance(&app, &partner).await;
    // Today the last one would win: ₹1 debited for a ₹500 bill.
    let cased = format!(
        r#"{{"RegistrationID":"{reg}","operator":1,"canumber":"150012345678","amount":"500","AMOUNT":"1","referenceid":"DUP-1"}}"#
    );
    let answer = post(&app, PAYBILL, &partner, &cased).await;
    assert_refused(&answer, 400, 8, "amount and AMOUNT name the same field");
    let same = format!(
        r#"{{"RegistrationID":"{reg}","operator":1,"canumber":"150012345678","amount":"500","amount":"1","referenceid":"DUP-2"}}"#
    );
    assert_refused(&post(&app, PAYBILL, &partner, &same).await, 400, 8, "amount is given more than once");
    assert_eq!(balance(&app, &partner).await, before, "nothing was debited");
    for reference in ["DUP-1", "DUP-2"] {
        let status = app.bill_status(&reg, reference, Some(&partner.token())).await;
        assert_eq!(status.json()["response_code"], 0, "{reference} was not recorded: {}", status.body);
    }

    // The status lookups too, for the fields they read and for any other key.
    let paid = app.call(PAYBILL, &partner, paybill_fields("ONE-1")).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    let twice = format!(r#"{{"referenceid":"ONE-1","REFERENCEID":"ONE-2","RegistrationID":"{reg}"}}"#);
    assert_refused(&post(&app, BILL_STATUS, &partner, &twice).await, 400, 8, "referenceid and REFERENCEID");
    let partner_twice = format!(r#"{{"referenceid":"ONE-1","RegistrationID":"{reg}","registrationid":"AOP-1"}}"#);
    assert_refused(
        &post(&app, BILL_STATUS, &partner, &partner_twice).await,
        400,
        8,
        "RegistrationID and registrationid",
    );
    let other_twice = format!(r#"{{"ReferanceID":"X","RegistrationID":"{reg}","memo":"a","Memo":"b"}}"#);
    assert_refused(&post(&app, DMT_STATUS, &partner, &other_twice).await, 400, 8, "memo and Memo");
    // One spelling in any case is still read.
    let upper = format!(r#"{{"REFERENCEID":"ONE-1","registrationid":"{reg}"}}"#);
    let found = post(&app, BILL_STATUS, &partner, &upper).await;
    assert_eq!((found.status, &found.json()["data"]["refid"]), (200, &json!("ONE-1")), "{}", found.body);
}

async fn two_aliases_of_one_field_are_refused_naming_both(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = funded(&app).await;
    let reg = partner.name();
    let status = format!(r#"{{"ReferanceID":"A-1","referenceid":"A-2","RegistrationID":"{reg}"}}"#);
    assert_refused(&post(&app, DMT_STATUS, &partner, &status).await, 400, 8, "ReferanceID and referenceid");
    let mut fields = paybill_fields("B-1");
    fields["ReferanceID"] = json!("B-2");
    assert_refused(&app.call(PAYBILL, &partner, fields).await, 400, 8, "referenceid and ReferanceID");
    let mobiles = json!({"MobileNo": MOBILE, "MobileNumber": "9811100000"});
    let query = app.call("/api/AOP/DMTV1/QueryRemitter", &partner, mobiles).await;
    assert_refused(&query, 400, 8, "MobileNo and MobileNumber");
    assert!(app.sms.messages().is_empty(), "no OTP went anywhere");
    assert_eq!(app.bill_status(&reg, "B-1", Some(&partner.token())).await.json()["response_code"], 0);
}

async fn control_and_bidirectional_override_characters_are_refused_and_not_stored(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = funded(&app).await;
    register_remitter(&app, &partner, MOBILE).await;
    let bene =
        |name: &str| json!({"MobileNo": MOBILE, "BeneName": name, "AccountNo": "123456789012", "IFSC": "SBIN0001234"});
    let register = "/api/AOP/DMTV1/RegisterBeneficiary";
    // Today a NUL is a 500 on PostgreSQL and is stored on SQLite.
    let nul = app.call(register, &partner, bene("Ravi\u{0}Verma")).await;
    assert_refused(&nul, 400, 8, "BeneName must not contain control characters");
    let newline = app.call(register, &partner, bene("Ravi\nVerma")).await;
    assert_refused(&newline, 400, 8, "control characters");
    let over = app.call(register, &partner, bene("Ravi \u{202E}amreV")).await;
    assert_refused(&over, 400, 8, "BeneName must not contain bidirectional-override characters");
    let isolate = app.call(register, &partner, bene("Ravi \u{2067}Verma")).await;
    assert_refused(&isolate, 400, 8, "bidirectional-override");
    let list = app.call("/api/AOP/DMTV1/FetchBeneficiary", &partner, json!({"MobileNo": MOBILE})).await;
    assert_eq!(list.json()["data"], json!([]), "nothing was stored: {}", list.body);
    // Names in other scripts are fine.
    assert_eq!(app.call(register, &partner, bene("रवि वर्मा")).await.status, 200);

    let mut bill = paybill_fields("CTRL-1");
    bill["canumber"] = json!("1500\u{0}12345678");
    assert_refused(&app.call(PAYBILL, &partner, bill).await, 400, 8, "canumber must not contain control characters");
    let mut bill = json!({"operator": 4, "canumber": "170012345678", "amount": "500", "referenceid": "CTRL-2"});
    bill["ad1"] = json!("46\u{0}01");
    assert_refused(&app.call(PAYBILL, &partner, bill).await, 400, 8, "ad1 must not contain control characters");
    let status = app.bill_status(&partner.name(), "CTRL-2", Some(&partner.token())).await;
    assert_eq!(status.json()["response_code"], 0, "{}", status.body);

    // The operator API too.
    let bill = json!({"registration_id": partner.name(), "reference_id": "CTRL-3", "operator_name": "Delhi\u{0}Jal",
                      "ca_number": "KNO-77", "amount": "300"});
    let created = app.admin("/admin/v1/bbps", Some(bill)).await;
    assert_eq!(created.status, 400, "{}", created.body);
    assert!(created.body.contains("operator_name must not contain control characters"), "{}", created.body);
    let path = format!("/admin/v1/partners/{}/wallet/topup", partner.name());
    let memo = app.admin(&path, Some(json!({"amount": "1", "memo": "top\u{202E}pu"}))).await;
    assert_eq!(memo.status, 400, "{}", memo.body);
    assert_eq!(balance(&app, &partner).await, "10000.00");
}

async fn account_numbers_and_tokens_have_a_character_set_and_a_length(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = funded(&app).await;
    for bad in ["1500 1234", "1500#1234", &"1".repeat(65)] {
        let mut bill = paybill_fields("CA-1");
        bill["canumber"] = json!(bad);
        let answer = app.call(PAYBILL, &partner, bill).await;
        assert_refused(&answer, 400, 8, "canumber must be 1 to 64 letters, digits, '-', '_', '.' or '/'");
    }
    let mut bill = paybill_fields("CA-2");
    bill["canumber"] = json!("KNO-77/2024.a_b");
    assert_eq!(app.call(PAYBILL, &partner, bill).await.status, 200);
    let register = json!({"MobileNo": MOBILE, "OTP": "123456", "Stateresp": "abc def", "KycId": "KYC-1"});
    let answer = app.call("/api/AOP/DMTV1/RegisterRemitter", &partner, register).await;
    assert_refused(&answer, 400, 8, "Stateresp must be 1 to 64");
    let register = json!({"MobileNo": MOBILE, "OTP": "123456", "Stateresp": "abc", "KycId": "KYC 1"});
    let answer = app.call("/api/AOP/DMTV1/RegisterRemitter", &partner, register).await;
    assert_refused(&answer, 400, 8, "KycId must be 1 to 64");
}

async fn numbers_are_read_exactly_as_documented(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = funded(&app).await;
    let pay = |field: &str, value: Value, reference: &str| {
        let mut bill = paybill_fields(reference);
        bill[field] = value;
        app.call(PAYBILL, &partner, bill)
    };
    let refusals = [
        ("amount", json!(" 100"), "amount"),
        ("amount", json!("100 "), "amount"),
        ("amount", json!("01"), "amount must not have a leading zero"),
        ("amount", json!("0100.50"), "amount must not have a leading zero"),
        ("amount", json!(100.0), "digits only"),
        ("amount", json!(-100), "digits only"),
        ("operator", json!("01"), "operator must be a positive whole number"),
        ("operator", json!(" 1"), "operator must be a positive whole number"),
        ("operator", json!(1.0), "digits only"),
        ("referenceid", json!(" NUM-1"), "referenceid may contain only"),
    ];
    for (n, (field, value, needle)) in refusals.into_iter().enumerate() {
        let answer = pay(field, value.clone(), &format!("NUM-{n}")).await;
        assert_refused(&answer, 400, 8, needle);
    }
    // `1e2` as written (json! would write 100.0).
    let reg = partner.name();
    let exponent = format!(
        r#"{{"RegistrationID":"{reg}","operator":1,"canumber":"150012345678","amount":1e2,"referenceid":"NUM-E"}}"#
    );
    assert_refused(&post(&app, PAYBILL, &partner, &exponent).await, 400, 8, "100, not 100.0 or 1e2");
    assert_eq!(balance(&app, &partner).await, "10000.00", "nothing was debited");
    // The documented forms: digits as a string or as a JSON number, and paise.
    assert_eq!(pay("amount", json!(100), "OK-1").await.status, 200);
    assert_eq!(pay("amount", json!("0.50"), "OK-2").await.status, 200);
    assert_eq!(pay("operator", json!("1"), "OK-3").await.status, 200);
    assert_eq!(balance(&app, &partner).await, "9399.50");
    let spaced = app.call("/api/AOP/DMTV1/QueryRemitter", &partner, json!({"MobileNo": " 9876543210"})).await;
    assert_refused(&spaced, 400, 8, "MobileNo");
    let dmt = format!(r#"{{"ReferanceID":1e2,"RegistrationID":"{reg}"}}"#);
    assert_refused(&post(&app, DMT_STATUS, &partner, &dmt).await, 400, 8, "must be a string");
    let otp = json!({"MobileNumber": MOBILE, "BeneID": "01", "Txntype": "IMPS", "Amount": "100"});
    let answer = app.call("/api/AOP/DMTV1/TransactionSendOtp", &partner, otp).await;
    assert_refused(&answer, 400, 8, "BeneID must be a positive whole number");
}

async fn a_billers_declared_parameters_are_required(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = funded(&app).await;
    // Biller 4 (MSEDCL) asks for "Consumer No" (canumber) and "BU" (ad1).
    let bill = json!({"operator": 4, "canumber": "170012345678", "amount": "500", "referenceid": "AD-1"});
    let answer = app.call(PAYBILL, &partner, bill.clone()).await;
    assert_refused(&answer, 400, 8, "ad1 (BU) is missing");
    let fetch = json!({"operator": 4, "canumber": "170012345678"});
    let answer = app.call("/api/AOP/FetchBilPaymentDetails", &partner, fetch.clone()).await;
    assert_refused(&answer, 400, 8, "ad1 (BU) is missing");
    let mut blank = bill.clone();
    blank["ad1"] = json!("  ");
    assert_refused(&app.call(PAYBILL, &partner, blank).await, 400, 8, "ad1 (BU) is missing");
    assert_eq!(balance(&app, &partner).await, "10000.00", "nothing was debited");

    let mut with_bu = bill;
    with_bu["ad1"] = json!("4601");
    let paid = app.call(PAYBILL, &partner, with_bu).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    let status = app.bill_status(&partner.name(), "AD-1", Some(&partner.token())).await;
    assert_eq!(status.json()["data"]["ad1"], "4601", "{}", status.body);
    let mut fetch_bu = fetch;
    fetch_bu["ad1"] = json!("4601");
    let fetched = app.call("/api/AOP/FetchBilPaymentDetails", &partner, fetch_bu).await;
    assert_ne!(fetched.status, 400, "{}", fetched.body);
}

async fn the_same_account_cannot_be_registered_twice_for_one_remitter(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = funded(&app).await;
    register_remitter(&app, &partner, MOBILE).await;
    let register = "/api/AOP/DMTV1/RegisterBeneficiary";
    let bene = |account: &str, ifsc: &str| json!({"MobileNo": MOBILE, "BeneName": "Ravi Verma", "AccountNo": account, "IFSC": ifsc});
    let first = add_beneficiary_account(&app, &partner, MOBILE, "123456789012").await;
    let again = app.call(register, &partner, bene("123456789012", "SBIN0001234")).await;
    assert_refused(&again, 409, 16, &format!("already registered for this remitter as beneficiary {first}"));
    // Another branch of the same bank is the same account.
    let branch = app.call(register, &partner, bene("123456789012", "sbin0009999")).await;
    assert_refused(&branch, 409, 16, "already registered");
    // The same number at another bank is another account.
    assert_eq!(app.call(register, &partner, bene("123456789012", "HDFC0001234")).await.status, 200);
    let list = app.call("/api/AOP/DMTV1/FetchBeneficiary", &partner, json!({"MobileNo": MOBILE})).await;
    assert_eq!(list.json()["data"].as_array().map(Vec::len), Some(2), "{}", list.body);

    // Concurrent registrations of one new account: exactly one wins.
    let app = std::sync::Arc::new(app);
    let partner = std::sync::Arc::new(partner);
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (app, partner, body) = (app.clone(), partner.clone(), bene("555566667777", "ICIC0001234"));
        racing.spawn(async move { app.call(register, &partner, body).await });
    }
    let mut statuses = Vec::new();
    while let Some(answer) = racing.join_next().await {
        statuses.push(answer.unwrap_or_else(|e| panic!("{e}")).status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409, 409, 409]);

    // Deleted, it can be registered again.
    let delete = json!({"MobileNo": MOBILE, "BeneID": first});
    assert_eq!(app.call("/api/AOP/DMTV1/DeleteBeneficiary", &partner, delete).await.status, 200);
    assert_eq!(app.call(register, &partner, bene("123456789012", "SBIN0001234")).await.status, 200);
}

async fn import_refuses_a_future_creation_and_a_refund_before_it(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let import = |name: &str, lines: &[Value]| {
        let file = app.data_dir.path().join(name);
        std::fs::write(&file, lines.iter().map(|l| l.to_string() + "\n").collect::<String>())
            .unwrap_or_else(|e| panic!("{e}"));
        let kind = if name.starts_with("dmt") { "dmt" } else { "bbps" };
        payrail(&app, &["import", kind, "--partner", &partner.name(), file.to_str().expect("a UTF-8 path")])
    };
    let good = json!({"reference_id": "IMP-1", "amount": "100", "account": "123456789"});
    let future = json!({"reference_id": "IMP-2", "amount": "100", "account": "123456789",
                        "created_at": "2999-01-01 10:00:00"});
    let out = import("dmt-future.jsonl", &[good.clone(), future]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("line 2: created_at is in the future"), "{}", text(&out.stderr));

    let backwards = json!({"reference_id": "IMP-3", "amount": "100", "account": "123456789", "status": "refunded",
                           "refund_txn_id": "R1", "created_at": "2025-01-02 10:00:00",
                           "refunded_at": "2025-01-02 09:59:59"});
    let out = import("dmt-backwards.jsonl", &[good.clone(), backwards]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("line 2: refunded_at is before created_at"), "{}", text(&out.stderr));

    let bill = json!({"reference_id": "IMP-4", "operator_name": "Delhi Jal Board", "ca_number": "KNO-77",
                      "amount": "300", "status": "refunded", "refund_txn_id": "901",
                      "created_at": "2025-01-02 09:00:00", "refunded_at": "2025-01-01 09:00:00"});
    let out = import("bills-backwards.jsonl", &[bill]);
    assert!(text(&out.stderr).contains("line 1: refunded_at is before created_at"), "{}", text(&out.stderr));
    let nul = json!({"reference_id": "IMP-5", "operator_name": "Delhi\u{0}Jal Board", "ca_number": "KNO-77",
                     "amount": "300"});
    let out = import("bills-nul.jsonl", &[nul]);
    assert!(text(&out.stderr).contains("line 1: operator_name must not contain control"), "{}", text(&out.stderr));

    // Nothing was written: every reference is unknown.
    for reference in ["IMP-1", "IMP-2", "IMP-3"] {
        let status = app.dmt_status(&partner.name(), reference, Some(&partner.token())).await;
        assert_eq!(status.json()["response_code"], 2, "{reference}: {}", status.body);
    }
    for reference in ["IMP-4", "IMP-5"] {
        let status = app.bill_status(&partner.name(), reference, Some(&partner.token())).await;
        assert_eq!(status.json()["response_code"], 0, "{reference}: {}", status.body);
    }
    // A consistent file still imports.
    let fine = json!({"reference_id": "IMP-6", "amount": "100", "account": "123456789", "status": "refunded",
                      "refund_txn_id": "R6", "created_at": "2025-01-02 10:00:00",
                      "refunded_at": "2025-01-02 10:00:00"});
    let out = import("dmt-fine.jsonl", &[good, fine]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
