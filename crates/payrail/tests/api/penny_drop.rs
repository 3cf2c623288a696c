//! Penny drop through HTTP (`POST /api/AOP/DMTV1/PennyDrop`) on the sandbox:
//! the account verified and the beneficiary marked verified, the fee debited
//! exactly once per `referenceid` (concurrent repeats included), refunded
//! when the upstream fails, kept when the bank knows no such account, and a
//! penny drop a crash left pending refunded by the poller; `payrail verify`
//! clean after each.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use payrail::domain::penny_drop::{PennyDrop, PennyDropStatus};
use payrail::domain::remitter::MobileNumber;
use payrail::domain::{Paise, ReferenceId, Timestamp};

use crate::beneficiaries::aopay_sample;
use crate::both_engines;
use crate::helpers::{spawn_app_with, AppOptions, Engine, TestApp, TestPartner, TestUpstream};
use crate::journey::*;
use crate::mock_upstream::{Reply, Script, MOCK_HOLDER};
use crate::upstream_paysprint::app_with_mock;

both_engines!(
    a_penny_drop_verifies_a_registered_beneficiary_and_a_repeat_debits_nothing,
    paysprints_benenameverify_fields_verify_an_account_by_number_and_bank,
    a_failed_upstream_refunds_the_fee_and_an_unknown_account_keeps_it,
    concurrent_penny_drops_with_one_reference_debit_the_fee_once,
    the_fee_comes_from_the_partners_plan_and_bad_fields_are_refused_by_name,
    a_penny_drop_left_pending_by_a_crash_is_refunded_by_the_poller,
    the_paysprint_connector_sends_benenameverify_and_a_failure_there_refunds_the_fee,
);

const PENNY_DROP: &str = "/api/AOP/DMTV1/PennyDrop";
const DATA_FIELDS: [&str; 10] =
    ["referenceid", "bene_id", "bankid", "accno", "benename", "verified", "charge", "refunded", "opening", "closing"];

async fn sandbox_app(engine: Engine) -> TestApp {
    let options = AppOptions { upstream: TestUpstream::Sandbox { step_secs: 60 }, ..AppOptions::default() };
    spawn_app_with(engine, options.on_manual_clock()).await
}

/// A partner with ₹100 and a remitter with AOPay's sample beneficiary at
/// this account; the `beneid`.
async fn ready(app: &TestApp, account: &str) -> (TestPartner, String) {
    let partner = app.add_partner(true, &[]).await;
    top_up(app, &partner, "100").await;
    register_remitter(app, &partner, MOBILE).await;
    let mut sample = aopay_sample(MOBILE);
    sample["accno"] = json!(account);
    let added = app.call("/api/AOP/RegisterBaneficiary", &partner, sample).await;
    assert_eq!(added.status, 200, "{}", added.body);
    (partner, added.json()["beneid"].as_str().expect("beneid").to_owned())
}

fn by_bene(bene: &str, reference: &str) -> Value {
    json!({"mobile": MOBILE, "bene_id": bene, "referenceid": reference, "RegistrationID": "AOP-554"})
}

async fn verified_flag(app: &TestApp, partner: &TestPartner) -> Value {
    let list = app.call("/api/AOP/DMTV1/FetchBeneficiary", partner, json!({"MobileNumber": MOBILE})).await;
    list.json()["data"][0]["verified"].clone()
}

async fn a_penny_drop_verifies_a_registered_beneficiary_and_a_repeat_debits_nothing(engine: Engine) {
    let app = sandbox_app(engine).await;
    let (partner, bene) = ready(&app, "50100123456782").await;
    assert_eq!(verified_flag(&app, &partner).await, "0");
    let answer = app.call(PENNY_DROP, &partner, by_bene(&bene, "PD-1")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_field_order(&answer.body, &["status", "response_code", "message", "data"]);
    let data_at = answer.body.find("\"data\":").expect("data") + 7;
    assert_field_order(&answer.body[data_at..answer.body.len() - 1], &DATA_FIELDS);
    assert_eq!(
        answer.json(),
        json!({"status": true, "response_code": 1, "message": "Account verified at the bank", "data": {
            "referenceid": "PD-1", "bene_id": bene, "bankid": "309", "accno": "50100123456782", "benename": "ROHIT",
            "verified": "1", "charge": "3.54", "refunded": "0", "opening": "100.00", "closing": "96.46"}})
    );
    assert_eq!(balance(&app, &partner).await, "96.46");
    assert_eq!(verified_flag(&app, &partner).await, "1");

    let again = app.call(PENNY_DROP, &partner, by_bene(&bene, "PD-1")).await;
    assert_refused(&again, 409, 12, "Duplicate referenceid");
    assert_eq!(balance(&app, &partner).await, "96.46", "a repeat debits nothing");
    assert_verify_clean(&app);
}

async fn paysprints_benenameverify_fields_verify_an_account_by_number_and_bank(engine: Engine) {
    let app = sandbox_app(engine).await;
    let (partner, bene) = ready(&app, "50100123456782").await;
    let body = json!({"mobile": MOBILE, "accno": "50100123456782", "bankid": "309", "benename": "Rohit",
                      "referenceid": "PD-2", "pincode": "560001", "address": "New delhi", "dob": "20-05-2020",
                      "gst_state": "07", "RegistrationID": "AOP-554"});
    let answer = app.call(PENNY_DROP, &partner, body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let data = &answer.json()["data"];
    assert_eq!((&data["bene_id"], &data["verified"]), (&json!(bene), &json!("1")), "found the beneficiary");
    assert_eq!(verified_flag(&app, &partner).await, "1");
    // An account no beneficiary has is verified all the same.
    let other = json!({"mobile": MOBILE, "accno": "123456789012", "bankid": "101", "benename": "Ravi Verma",
                       "referenceid": "PD-3", "ifsccode": "SBIN0001234"});
    let answer = app.call(PENNY_DROP, &partner, other).await.json();
    assert_eq!((&answer["data"]["bene_id"], &answer["data"]["benename"]), (&json!(null), &json!("RAVI VERMA")));
    assert_eq!(balance(&app, &partner).await, "92.92");
    assert_verify_clean(&app);
}

async fn a_failed_upstream_refunds_the_fee_and_an_unknown_account_keeps_it(engine: Engine) {
    let app = sandbox_app(engine).await;
    let (partner, bene) = ready(&app, "50100123456503").await;
    let failed = app.call(PENNY_DROP, &partner, by_bene(&bene, "PD-DOWN")).await;
    assert_eq!(failed.status, 200, "{}", failed.body);
    let json = failed.json();
    assert_eq!((&json["status"], &json["response_code"]), (&json!(false), &json!(0)), "{json}");
    let data = &json["data"];
    assert_eq!(
        (&data["verified"], &data["refunded"], &data["opening"], &data["closing"]),
        (&json!("0"), &json!("1"), &json!("100.00"), &json!("100.00"))
    );
    assert_eq!(balance(&app, &partner).await, "100.00", "refunded");
    assert_eq!(verified_flag(&app, &partner).await, "0");
    let statement = app
        .admin(&format!("/admin/v1/partners/{}/wallet/statement?from=2020-01-01&to=2099-12-31", partner.name()), None)
        .await;
    assert!(statement.body.contains("penny drop ref PD-DOWN"), "{}", statement.body);
    let again = app.call(PENNY_DROP, &partner, by_bene(&bene, "PD-DOWN")).await;
    assert_refused(&again, 409, 12, "Duplicate referenceid");

    let unknown = json!({"mobile": MOBILE, "accno": "777700000404", "bankid": "101", "benename": "Nobody",
                         "referenceid": "PD-404"});
    let answer = app.call(PENNY_DROP, &partner, unknown).await.json();
    assert_eq!((&answer["status"], &answer["response_code"]), (&json!(false), &json!(2)), "{answer}");
    assert_eq!((&answer["data"]["refunded"], &answer["data"]["closing"]), (&json!("0"), &json!("96.46")));
    assert_eq!(balance(&app, &partner).await, "96.46", "the check was made: the fee is kept");
    assert_verify_clean(&app);
}

async fn concurrent_penny_drops_with_one_reference_debit_the_fee_once(engine: Engine) {
    let app = Arc::new(sandbox_app(engine).await);
    let (partner, bene) = ready(&app, "50100123456782").await;
    let partner = Arc::new(partner);
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (app, partner, body) = (app.clone(), partner.clone(), by_bene(&bene, "PD-RACE"));
        racing.spawn(async move { app.call(PENNY_DROP, &partner, body).await });
    }
    let mut statuses = Vec::new();
    while let Some(answer) = racing.join_next().await {
        let answer = answer.expect("the request ran");
        if answer.status != 200 {
            assert_refused(&answer, 409, 12, "Duplicate referenceid");
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(balance(&app, &partner).await, "96.46");
    assert_verify_clean(&app);
}

async fn the_fee_comes_from_the_partners_plan_and_bad_fields_are_refused_by_name(engine: Engine) {
    let app = sandbox_app(engine).await;
    let (partner, bene) = ready(&app, "50100123456782").await;
    let plan = json!({"effective_from": "2020-01-01", "plan": {
        "dmt": {"slabs": [{"charge": "12", "provider_share": "4"}]},
        "bbps": {"default": {"percent": "0.1"}}, "penny_drop_fee": "5.90"}});
    let set = app.admin(&format!("/admin/v1/partners/{}/fee-plans", partner.name()), Some(plan)).await;
    assert_eq!(set.status, 201, "{}", set.body);
    let answer = app.call(PENNY_DROP, &partner, by_bene(&bene, "PD-PLAN")).await.json();
    assert_eq!((&answer["data"]["charge"], &answer["data"]["closing"]), (&json!("5.90"), &json!("94.10")));

    let bad = |fields: Value| {
        let mut body = json!({"mobile": MOBILE, "accno": "50100123456782", "bankid": "309", "benename": "Rohit",
                              "referenceid": "PD-BAD"});
        for (key, value) in fields.as_object().cloned().unwrap_or_default() {
            if value.is_null() {
                body.as_object_mut().map(|o| o.remove(&key));
            } else {
                body[key] = value;
            }
        }
        body
    };
    let cases = [
        (bad(json!({"accno": null})), 400, 8, "accno is missing"),
        (bad(json!({"bankid": "999"})), 400, 8, "bankid is not in the bank list"),
        (bad(json!({"ifsccode": "SBIN0001234"})), 400, 8, "ifsccode SBIN0001234 is not a branch of HDFC Bank"),
        (bad(json!({"dob": "2020/05/20"})), 400, 8, "dob"),
        (bad(json!({"pincode": "012345"})), 400, 8, "pincode"),
        (bad(json!({"gst_state": "40"})), 400, 8, "gst_state"),
        (bad(json!({"referenceid": null})), 400, 8, "referenceid"),
        (bad(json!({"bene_id": bene, "accno": "123456789012"})), 400, 8, "accno differs from beneficiary"),
        (bad(json!({"bene_id": "999999"})), 200, 2, "Beneficiary not found"),
        (bad(json!({"mobile": "9123456780"})), 200, 2, "Remitter not found"),
    ];
    for (body, status, code, needle) in cases {
        assert_refused(&app.call(PENNY_DROP, &partner, body).await, status, code, needle);
    }
    assert_eq!(balance(&app, &partner).await, "94.10", "no refusal debited anything");
    let poor = app.add_partner(true, &[]).await;
    register_remitter(&app, &poor, MOBILE).await;
    let broke = app.call(PENNY_DROP, &poor, bad(json!({"referenceid": "PD-POOR"}))).await;
    assert_refused(&broke, 402, 13, "Insufficient wallet balance: 0.00 available, 3.54 needed");
    assert_verify_clean(&app);
}

async fn a_penny_drop_left_pending_by_a_crash_is_refunded_by_the_poller(engine: Engine) {
    let app = sandbox_app(engine).await;
    let (partner, _) = ready(&app, "50100123456782").await;
    // What a crash between the debit and the upstream's answer leaves.
    let drop = PennyDrop {
        id: 0,
        partner: partner.id,
        reference: ReferenceId::parse("PD-CRASH").expect("a reference"),
        remitter: MobileNumber::parse(MOBILE).expect("a mobile"),
        beneficiary_id: None,
        account: "50100123456782".into(),
        ifsc: None,
        bank_id: 309,
        name: "Rohit".into(),
        fee: Paise::new(354),
        status: PennyDropStatus::Pending,
        created_at: Timestamp::from_unix(app.time.now().unix()),
        decided_at: None,
    };
    let (opened, _) = app.store.open_penny_drop(drop).await.expect("opened");
    assert_eq!(balance(&app, &partner).await, "96.46");
    app.advance(Duration::from_secs(60)).await;
    assert_eq!(balance(&app, &partner).await, "96.46", "not abandoned yet");
    app.advance(Duration::from_secs(300)).await;
    assert_eq!(balance(&app, &partner).await, "100.00", "refunded");
    let stored = app.store.find_penny_drop(partner.id, "PD-CRASH").await.expect("read").expect("there");
    assert_eq!((stored.id, stored.status), (opened.id, PennyDropStatus::Failed));
    // (No partner call from here: the clock is past the tokens' 300 s window.)
    assert_verify_clean(&app);
}

async fn the_paysprint_connector_sends_benenameverify_and_a_failure_there_refunds_the_fee(engine: Engine) {
    let (app, mock) = app_with_mock(engine, "1s").await;
    let (partner, bene) = ready(&app, "50100123456782").await;
    let answer = app.call(PENNY_DROP, &partner, by_bene(&bene, "PD-PS1")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        (&answer.json()["data"]["benename"], &answer.json()["data"]["verified"]),
        (&json!(MOCK_HOLDER), &json!("1"))
    );
    let calls: Vec<_> = mock.calls().into_iter().filter(|c| c.path.ends_with("benenameverify")).collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].accepted, "the connector's credentials hold");
    let sent = &calls[0].body;
    let reference = sent["referenceid"].as_str().expect("referenceid").to_owned();
    assert!(reference.starts_with("PRV"), "{reference}");
    // The upstream's id for the beneficiary, never payrail's own.
    let local: i64 = bene.parse().expect("a local id");
    let stored = app.store.find_beneficiary(partner.id, local).await.expect("read").expect("stored");
    let upstream_id = stored.upstream_id.expect("registered upstream");
    assert_ne!(upstream_id, bene);
    assert_eq!(
        *sent,
        json!({"mobile": MOBILE, "accno": "50100123456782", "bankid": "309", "benename": "Rohit",
               "referenceid": reference, "pincode": "560001", "address": "New delhi", "dob": "20-05-2020",
               "gst_state": "07", "bene_id": upstream_id})
    );
    assert_eq!(mock.submits(&reference), 1);

    mock.script_next(Script::new().submit(Reply::Http(503)));
    let failed = app.call(PENNY_DROP, &partner, by_bene(&bene, "PD-PS2")).await.json();
    assert_eq!((&failed["response_code"], &failed["data"]["refunded"]), (&json!(0), &json!("1")), "{failed}");
    mock.script_next(Script::new().submit(Reply::answer(0, false, "Invalid account number")));
    let unknown = app.call(PENNY_DROP, &partner, by_bene(&bene, "PD-PS3")).await.json();
    assert_eq!(unknown["response_code"], 2, "{unknown}");
    assert_eq!(balance(&app, &partner).await, "92.92", "two fees kept, one refunded");
    assert_verify_clean(&app);
}
