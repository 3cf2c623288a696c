//! Beneficiaries as AOPay's pages have them and the bank list (SPEC §7.2),
//! through HTTP: the pages' sample bodies accepted as sent, the answers'
//! fields in order with their JSON types, each bad field refused by name
//! with nothing stored.

use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{spawn_app, Engine, TestApp, TestPartner};
use crate::journey::*;

both_engines!(
    aopays_register_baneficiary_sample_is_accepted_and_both_fetches_answer_the_documented_fields,
    an_ifsc_of_another_bank_and_bad_details_are_refused_naming_the_field_and_nothing_is_stored,
    a_partner_saying_verified_does_not_make_a_beneficiary_verified,
    another_remitters_or_partners_beneficiary_is_answered_exactly_as_an_unknown_one,
    the_bank_list_answers_every_bank_with_its_prefixes_and_modes,
);

const REGISTER: &str = "/api/AOP/RegisterBaneficiary";

/// AOPay's `RegisterBaneficiary` sample body, its masked values made valid.
pub fn aopay_sample(mobile: &str) -> Value {
    json!({
        "mobile": mobile,
        "benename": "Rohit",
        "bankid": "309",
        "accno": "50100123456782",
        "ifsccode": "HDFC0000125",
        "verified": "0",
        "gst_state": "07",
        "dob": "20-05-2020",
        "address": "New delhi",
        "pincode": "560001",
        "RegistrationID": "AOP-554"
    })
}

async fn listed(app: &TestApp, partner: &TestPartner) -> Value {
    let list = app.call("/api/AOP/DMTV1/FetchBeneficiary", partner, json!({"MobileNumber": MOBILE})).await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.json()["data"].clone()
}

const BENE_FIELDS: [&str; 9] =
    ["bene_id", "bankid", "bankname", "name", "accno", "ifsc", "verified", "banktype", "paytm"];

async fn aopays_register_baneficiary_sample_is_accepted_and_both_fetches_answer_the_documented_fields(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    register_remitter(&app, &partner, MOBILE).await;
    let added = app.call(REGISTER, &partner, aopay_sample(MOBILE)).await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_field_order(&added.body, &["status", "response_code", "message", "beneid"]);
    let bene = added.json()["beneid"].as_str().expect("beneid is a string").to_owned();

    let list = app.call("/api/AOP/DMTV1/FetchBeneficiary", &partner, json!({"MobileNumber": MOBILE})).await;
    assert_field_order(&list.body, &["status", "response_code", "message", "data"]);
    let expected = json!({"bene_id": bene, "bankid": "309", "bankname": "HDFC Bank", "name": "Rohit",
                          "accno": "50100123456782", "ifsc": "HDFC0000125", "verified": "0",
                          "banktype": "PRIVATE", "paytm": false});
    assert_eq!(list.json()["data"], json!([expected]));
    let entry = &list.body[list.body.find("[{").expect("an entry") + 1..];
    assert_field_order(&entry[..entry.find('}').expect("entry ends") + 1], &BENE_FIELDS);
    // Today's `mobile` and `MobileNo` are aliases.
    for alias in ["mobile", "MobileNo"] {
        let again = app.call("/api/AOP/DMTV1/FetchBeneficiary", &partner, json!({alias: MOBILE})).await;
        assert_eq!(again.json()["data"], json!([expected]), "{alias}");
    }

    // FetchBeneficiaryBeneID, its sample body.
    let sample = json!({"MobileNumber": MOBILE, "BeneID": bene, "RegistrationID": "AOP-554"});
    let one = app.call("/api/AOP/DMTV1/FetchBeneficiaryBeneID", &partner, sample).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_field_order(&one.body, &["status", "response_code", "message", "data"]);
    assert_eq!(one.json()["data"], expected);
    assert_eq!(one.json()["status"], true);

    // The older path and names still register, the bank settled from the IFSC.
    let older = add_beneficiary(&app, &partner, MOBILE).await;
    let data = listed(&app, &partner).await;
    let second = data.as_array().and_then(|a| a.iter().find(|b| b["bene_id"] == older)).cloned();
    assert_eq!(second.map(|b| (b["bankid"].clone(), b["banktype"].clone())), Some((json!("101"), json!("PSU"))));
}

async fn an_ifsc_of_another_bank_and_bad_details_are_refused_naming_the_field_and_nothing_is_stored(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    register_remitter(&app, &partner, MOBILE).await;
    let with = |field: &str, value: &str| {
        let mut body = aopay_sample(MOBILE);
        body[field] = json!(value);
        body
    };
    let cases = [
        (with("ifsccode", "SBIN0001234"), "ifsccode SBIN0001234 is not a branch of HDFC Bank (bankid 309)"),
        (with("bankid", "999"), "bankid is not in the bank list"),
        (with("bankid", "HDFC"), "bankid must be a positive whole number"),
        (with("pincode", "060001"), "pincode must be a 6-digit PIN code"),
        (with("pincode", "56001"), "pincode"),
        (with("dob", "2020-05-20"), "dob must be a past date written DD-MM-YYYY"),
        (with("dob", "31-02-1990"), "dob"),
        (with("gst_state", "99"), "gst_state must be a two-digit GST state code"),
        (with("gst_state", "7"), "gst_state"),
        (with("verified", "yes"), "verified must be \"0\" or \"1\""),
        (with("accno", "12ab"), "accno"),
        (with("ifsccode", "HDFC1000125"), "ifsccode must be an IFSC"),
    ];
    for (body, needle) in cases {
        let answer = app.call(REGISTER, &partner, body).await;
        assert_refused(&answer, 400, 8, needle);
    }
    let mut missing = aopay_sample(MOBILE);
    missing.as_object_mut().map(|o| o.remove("benename"));
    assert_refused(&app.call(REGISTER, &partner, missing).await, 400, 8, "benename is missing");
    assert_eq!(listed(&app, &partner).await, json!([]), "nothing was stored");
}

async fn a_partner_saying_verified_does_not_make_a_beneficiary_verified(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    register_remitter(&app, &partner, MOBILE).await;
    let mut body = aopay_sample(MOBILE);
    body["verified"] = json!("1");
    let added = app.call(REGISTER, &partner, body).await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(listed(&app, &partner).await[0]["verified"], "0", "only a penny drop verifies");
}

async fn another_remitters_or_partners_beneficiary_is_answered_exactly_as_an_unknown_one(engine: Engine) {
    let app = spawn_app(engine).await;
    let (owner, other) = (app.add_partner(true, &[]).await, app.add_partner(true, &[]).await);
    register_remitter(&app, &owner, MOBILE).await;
    register_remitter(&app, &owner, "9123456780").await;
    register_remitter(&app, &other, MOBILE).await;
    let added = app.call(REGISTER, &owner, aopay_sample(MOBILE)).await;
    let bene = added.json()["beneid"].as_str().expect("beneid").to_owned();
    let fetch = |mobile: &str| json!({"MobileNumber": mobile, "BeneID": bene});
    let path = "/api/AOP/DMTV1/FetchBeneficiaryBeneID";
    let unknown = app.call(path, &owner, json!({"MobileNumber": MOBILE, "BeneID": "999999"})).await;
    assert_refused(&unknown, 200, 2, "Beneficiary not found");
    let foreign = app.call(path, &other, fetch(MOBILE)).await;
    let other_remitter = app.call(path, &owner, fetch("9123456780")).await;
    for answer in [&foreign, &other_remitter] {
        assert_eq!((answer.status, &answer.body), (unknown.status, &unknown.body));
    }
    assert_eq!(app.call(path, &owner, fetch(MOBILE)).await.status, 200);
}

async fn the_bank_list_answers_every_bank_with_its_prefixes_and_modes(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let answer = app.call("/api/AOP/DMTV1/BankList", &partner, json!({"RegistrationID": "AOP-554"})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_field_order(&answer.body, &["status", "response_code", "message", "data"]);
    let banks = answer.json()["data"].as_array().cloned().expect("data is an array");
    assert!(banks.len() >= 30, "{}", banks.len());
    let entry = &answer.body[answer.body.find("[{").expect("an entry") + 1..];
    assert_field_order(
        &entry[..entry.find('}').expect("entry ends") + 1],
        &["bankid", "bankname", "ifsc_prefix", "imps", "neft"],
    );
    for bank in &banks {
        assert!(bank["bankid"].is_string() && bank["bankname"].is_string(), "{bank}");
        assert!(bank["ifsc_prefix"].as_array().is_some_and(|p| p.iter().all(Value::is_string)), "{bank}");
        assert!(bank["imps"].is_boolean() && bank["neft"].is_boolean(), "{bank}");
    }
    let hdfc = banks.iter().find(|b| b["bankid"] == "309").cloned();
    assert_eq!(
        hdfc,
        Some(json!({"bankid": "309", "bankname": "HDFC Bank", "ifsc_prefix": ["HDFC"], "imps": true, "neft": true}))
    );
    for name in ["State Bank of India", "ICICI Bank", "Axis Bank", "Kotak Mahindra Bank", "Punjab National Bank"] {
        assert!(banks.iter().any(|b| b["bankname"] == name), "{name}");
    }
}
