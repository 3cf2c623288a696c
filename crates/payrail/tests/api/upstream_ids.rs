//! The DMT flow passes through to the upstream (issue 12, item 1): the
//! remitter and its beneficiaries are registered there with the documented
//! fields, the upstream's ids are kept beside payrail's, and a transfer is
//! sent with the upstream's `bene_id`, never payrail's. A refusal or no
//! answer stores nothing; a deletion goes upstream first; the sandbox
//! refuses a transfer to a `bene_id` it did not issue.

use serde_json::{json, Value};

use payrail::domain::remitter::{Beneficiary, MobileNumber};
use payrail::services::upstream::sandbox::sandbox_bene_id;

use crate::beneficiaries::aopay_sample;
use crate::both_engines;
use crate::helpers::{spawn_app_with, AppOptions, Engine, TestApp, TestPartner, TestUpstream};
use crate::journey::*;
use crate::mock_upstream::{Reply, Script};
use crate::settlement::raw_sql;
use crate::upstream_paysprint::app_with_mock;

both_engines!(
    the_remitter_and_beneficiary_are_registered_upstream_and_the_transfer_carries_the_upstream_bene_id,
    a_beneficiary_the_upstream_refuses_or_does_not_answer_is_not_stored_and_a_retry_adopts_the_upstreams,
    a_deletion_goes_upstream_first_and_a_refusal_there_keeps_the_beneficiary,
    a_beneficiary_without_an_upstream_id_is_registered_upstream_on_first_use,
    a_remitter_the_upstream_refuses_is_not_registered_and_one_it_already_has_is_adopted,
    the_sandbox_refuses_a_transfer_to_a_bene_id_it_did_not_issue_and_the_wallet_ends_where_it_started,
    a_transactions_upstream_reference_is_stored_once_whoever_assigns_first,
);

const REGISTER: &str = "/api/AOP/RegisterBaneficiary";
const DELETE: &str = "/api/AOP/DMTV1/DeleteBeneficiary";

/// A partner with ₹10,000 and a registered remitter.
async fn ready(app: &TestApp) -> TestPartner {
    let partner = app.add_partner(true, &[]).await;
    top_up(app, &partner, "10000").await;
    register_remitter(app, &partner, MOBILE).await;
    partner
}

/// AOPay's sample beneficiary at this account.
fn sample(account: &str) -> Value {
    let mut sample = aopay_sample(MOBILE);
    sample["accno"] = json!(account);
    sample
}

/// The beneficiary as stored.
async fn stored(app: &TestApp, partner: &TestPartner, bene: &str) -> Option<Beneficiary> {
    let id: i64 = bene.parse().expect("a beneid");
    app.store.find_beneficiary(partner.id, id).await.expect("the store answers")
}

async fn the_remitter_and_beneficiary_are_registered_upstream_and_the_transfer_carries_the_upstream_bene_id(
    engine: Engine,
) {
    let (app, mock) = app_with_mock(engine, "1s").await;
    let partner = ready(&app).await;

    // The remitter: registered upstream with the documented fields, after
    // payrail's checks, with the upstream's e-KYC id; its upstream id kept.
    let registrations = mock.calls_to("dmt/remitter/registerremitter");
    assert_eq!(registrations.len(), 1, "{registrations:?}");
    let ekyc_id = mock.calls_to("queryremitter/kyc").len();
    assert_eq!(ekyc_id, 1);
    let sent = &registrations[0].body;
    let fields: Vec<&str> = sent.as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(fields, ["bank3_flag", "ekyc_id", "mobile", "otp", "stateresp"]);
    assert_eq!((&sent["mobile"], &sent["bank3_flag"]), (&json!(MOBILE), &json!("No")));
    assert!(sent["ekyc_id"].as_str().is_some_and(|id| id.starts_with("EK")), "the upstream's e-KYC id: {sent}");
    assert!(mock.remitters().contains(MOBILE));
    let mobile = MobileNumber::parse(MOBILE).expect("a mobile");
    let remitter = app.store.find_remitter(partner.id, &mobile).await.expect("read").expect("registered");
    assert_eq!(remitter.upstream_id.as_deref(), Some(MOBILE), "Paysprint keys a remitter by its mobile");

    // The beneficiary: the upstream's list asked, then registered there
    // with the documented fields; its bene_id kept in the same row.
    let added = app.call(REGISTER, &partner, sample("50100123456782")).await;
    assert_eq!(added.status, 200, "{}", added.body);
    let bene = added.json()["beneid"].as_str().expect("beneid").to_owned();
    assert_eq!(mock.calls_to("registerbeneficiary/fetchbeneficiary").len(), 1);
    let registered = mock.calls_to("dmt/beneficiary/registerbeneficiary");
    assert_eq!(registered.len(), 1, "{registered:?}");
    assert_eq!(
        registered[0].body,
        json!({"mobile": MOBILE, "benename": "Rohit", "bankid": "309", "accno": "50100123456782",
               "ifsccode": "HDFC0000125", "verified": "0", "gst_state": "07", "dob": "2020-05-20",
               "address": "New delhi", "pincode": "560001"})
    );
    let held = mock.beneficiaries();
    assert_eq!(held.len(), 1);
    let upstream_id = stored(&app, &partner, &bene).await.and_then(|b| b.upstream_id).expect("an upstream id");
    assert_eq!(upstream_id, held[0].bene_id);
    assert_ne!(upstream_id, bene, "the fake's ids are not payrail's");

    // The transfer carries the upstream's bene_id, not payrail's.
    let sent = transfer(&app, &partner, MOBILE, &bene, "1000", "UPID-1").await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let transacts = mock.calls_to("dmt/transact/transact");
    assert_eq!(transacts.len(), 1, "{transacts:?}");
    assert_eq!(transacts[0].body["bene_id"], json!(upstream_id));
    assert_eq!(transacts[0].body["accno"], json!("50100123456782"));
    assert_verify_clean(&app);
}

async fn a_beneficiary_the_upstream_refuses_or_does_not_answer_is_not_stored_and_a_retry_adopts_the_upstreams(
    engine: Engine,
) {
    let (app, mock) = app_with_mock(engine, "1s").await;
    let partner = ready(&app).await;

    // Refused upstream (Paysprint's code 2): the partner hears why; nothing stored.
    let refused_account = "50100123450001";
    let refusal = Reply::answer(2, false, "Unable to create beneficiary details.");
    mock.script(refused_account, Script::new().submit(refusal));
    let answer = app.call(REGISTER, &partner, sample(refused_account)).await;
    assert_refused(&answer, 422, 18, "Refused by the upstream: Unable to create beneficiary details.");
    assert_eq!(beneficiary_with_account(&app, &partner, MOBILE, refused_account).await, None);

    // The upstream fails (HTTP 503): a 502, nothing stored.
    let down_account = "50100123450002";
    mock.script(down_account, Script::new().submit(Reply::Http(503)));
    let answer = app.call(REGISTER, &partner, sample(down_account)).await;
    assert_refused(&answer, 502, 17, "did not answer");
    assert_eq!(beneficiary_with_account(&app, &partner, MOBILE, down_account).await, None);
    assert!(mock.beneficiaries().is_empty(), "{:?}", mock.beneficiaries());

    // The upstream registers it but its answer comes too late (as a crash
    // between the upstream's yes and payrail's row): nothing stored, and
    // the partner's retry adopts the upstream's bene_id, not a second one.
    let late_account = "50100123450003";
    mock.script(late_account, Script::new().submit(Reply::Hang(std::time::Duration::from_millis(1500))));
    let answer = app.call(REGISTER, &partner, sample(late_account)).await;
    assert_refused(&answer, 502, 17, "did not answer");
    assert_eq!(beneficiary_with_account(&app, &partner, MOBILE, late_account).await, None);
    let held = crate::helpers::eventually(5, "the late registration", || async {
        let held = mock.beneficiaries();
        (!held.is_empty()).then_some(held)
    })
    .await;
    mock.script(late_account, Script::new());
    let added = app.call(REGISTER, &partner, sample(late_account)).await;
    assert_eq!(added.status, 200, "{}", added.body);
    let bene = added.json()["beneid"].as_str().expect("beneid").to_owned();
    assert_eq!(mock.beneficiaries(), held, "registered upstream once");
    let kept = stored(&app, &partner, &bene).await.and_then(|b| b.upstream_id);
    assert_eq!(kept.as_deref(), Some(held[0].bene_id.as_str()));
    let registrations = mock.calls_to("dmt/beneficiary/registerbeneficiary");
    assert_eq!(registrations.len(), 3, "refused, failed, late; the retry only read the list: {registrations:?}");
    assert_verify_clean(&app);
}

async fn a_deletion_goes_upstream_first_and_a_refusal_there_keeps_the_beneficiary(engine: Engine) {
    let (app, mock) = app_with_mock(engine, "1s").await;
    let partner = ready(&app).await;
    let added = app.call(REGISTER, &partner, sample("50100123456782")).await;
    let bene = added.json()["beneid"].as_str().expect("beneid").to_owned();
    let upstream_id = stored(&app, &partner, &bene).await.and_then(|b| b.upstream_id).expect("an upstream id");
    let delete = json!({"MobileNo": MOBILE, "BeneID": bene});

    // The upstream cannot be reached, then refuses (and still lists it): payrail keeps it.
    mock.script(&upstream_id, Script::new().submit(Reply::Http(503)));
    assert_refused(&app.call(DELETE, &partner, delete.clone()).await, 502, 17, "did not answer");
    mock.script(&upstream_id, Script::new().submit(Reply::answer(2, false, "Unable to delete beneficiary.")));
    let refused = app.call(DELETE, &partner, delete.clone()).await;
    assert_refused(&refused, 422, 18, "Unable to delete beneficiary.");
    assert!(stored(&app, &partner, &bene).await.is_some(), "kept while the upstream has it");

    // Deleted upstream, then here.
    mock.script(&upstream_id, Script::new());
    let deleted = app.call(DELETE, &partner, delete.clone()).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let calls = mock.calls_to("deletebeneficiary");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[2].body, json!({"mobile": MOBILE, "bene_id": upstream_id}));
    assert!(mock.beneficiaries().is_empty());
    assert!(stored(&app, &partner, &bene).await.is_none());
    assert_refused(&app.call(DELETE, &partner, delete).await, 200, 2, "Beneficiary not found");
}

async fn a_beneficiary_without_an_upstream_id_is_registered_upstream_on_first_use(engine: Engine) {
    let (app, mock) = app_with_mock(engine, "1s").await;
    let partner = ready(&app).await;
    let added = app.call(REGISTER, &partner, sample("50100123456782")).await;
    let bene = added.json()["beneid"].as_str().expect("beneid").to_owned();
    // As one registered before payrail registered beneficiaries upstream.
    let forget = format!("UPDATE beneficiaries SET upstream_id = NULL WHERE id = {bene};");
    raw_sql(&app, &forget, &forget).await;
    mock.script("50100123456782", Script::new());
    let before = mock.calls_to("dmt/beneficiary/registerbeneficiary").len();

    let sent = transfer(&app, &partner, MOBILE, &bene, "1000", "UPID-FIRST").await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    // The upstream's list already had the account: adopted, not registered twice.
    assert_eq!(mock.calls_to("dmt/beneficiary/registerbeneficiary").len(), before);
    let upstream_id = stored(&app, &partner, &bene).await.and_then(|b| b.upstream_id).expect("kept on first use");
    assert_eq!(upstream_id, mock.beneficiaries()[0].bene_id);
    assert_eq!(mock.calls_to("dmt/transact/transact")[0].body["bene_id"], json!(upstream_id));
    assert_verify_clean(&app);
}

async fn a_remitter_the_upstream_refuses_is_not_registered_and_one_it_already_has_is_adopted(engine: Engine) {
    let (app, mock) = app_with_mock(engine, "1s").await;
    let partner = app.add_partner(true, &[]).await;
    let (kyc_id, otp) = app.ekyc(&partner, MOBILE).await;
    let register = |stateresp: &str, otp: &str| {
        json!({"MobileNo": MOBILE, "OTP": otp, "Stateresp": stateresp, "KycId": kyc_id,
               "FirstName": "Asha", "LastName": "Verma"})
    };
    let mobile = MobileNumber::parse(MOBILE).expect("a mobile");

    // Refused upstream, and the upstream does not have it: nothing registered here.
    let refusal = Reply::answer(2, false, "Error while registering remitter data.");
    mock.script(MOBILE, Script::new().submit(refusal.clone()));
    let refused = app.call("/api/AOP/DMTV1/RegisterRemitter", &partner, register(&kyc_id, &otp)).await;
    assert_refused(&refused, 422, 18, "Error while registering remitter data.");
    assert!(app.store.find_remitter(partner.id, &mobile).await.expect("read").is_none());

    // Registered upstream but the answer lost: nothing here yet.
    let queried = app.call("/api/AOP/DMTV1/QueryRemitter", &partner, json!({"MobileNumber": MOBILE})).await;
    assert_eq!(queried.status, 202, "{}", queried.body);
    let stateresp = queried.json()["stateresp"].as_str().expect("stateresp").to_owned();
    mock.script(MOBILE, Script::new().submit(Reply::Hang(std::time::Duration::from_millis(1500))));
    let lost =
        app.call("/api/AOP/DMTV1/RegisterRemitter", &partner, register(&stateresp, &app.sms.last_otp(MOBILE))).await;
    assert_refused(&lost, 502, 17, "did not answer");
    assert!(app.store.find_remitter(partner.id, &mobile).await.expect("read").is_none());
    crate::helpers::eventually(5, "the late registration", || async {
        mock.remitters().contains(MOBILE).then_some(())
    })
    .await;

    // The retry: the upstream refuses (it has the remitter), payrail asks it, and adopts it.
    let queried = app.call("/api/AOP/DMTV1/QueryRemitter", &partner, json!({"MobileNumber": MOBILE})).await;
    let stateresp = queried.json()["stateresp"].as_str().expect("stateresp").to_owned();
    mock.script(MOBILE, Script::new().submit(Reply::answer(2, false, "Remitter already registered.")));
    let adopted =
        app.call("/api/AOP/DMTV1/RegisterRemitter", &partner, register(&stateresp, &app.sms.last_otp(MOBILE))).await;
    assert_eq!(adopted.status, 200, "{}", adopted.body);
    let remitter = app.store.find_remitter(partner.id, &mobile).await.expect("read").expect("registered");
    assert_eq!(remitter.upstream_id.as_deref(), Some(MOBILE));
    let queries = mock.calls_to("dmt/remitter/queryremitter");
    assert_eq!(queries.len(), 2, "asked after each refusal: {queries:?}");
    assert_eq!(queries[1].body, json!({"mobile": MOBILE, "bank3_flag": "No"}));
}

async fn sandbox_app(engine: Engine) -> TestApp {
    let options = AppOptions { upstream: TestUpstream::Sandbox { step_secs: 60 }, ..AppOptions::default() };
    spawn_app_with(engine, options.on_manual_clock()).await
}

async fn the_sandbox_refuses_a_transfer_to_a_bene_id_it_did_not_issue_and_the_wallet_ends_where_it_started(
    engine: Engine,
) {
    let app = sandbox_app(engine).await;
    let partner = ready(&app).await;
    let start = balance(&app, &partner).await;
    let account = "500100200301";
    let bene = add_beneficiary_account(&app, &partner, MOBILE, account).await;
    let issued = stored(&app, &partner, &bene).await.and_then(|b| b.upstream_id);
    assert_eq!(issued, Some(sandbox_bene_id(MOBILE, account, "SBIN0001234")), "the sandbox's derived id");

    // A bene_id the sandbox did not issue: the transfer fails at once
    // (Paysprint's "Invalid Beneficiary Details"), and is refunded as
    // every immediate failure is.
    let wrong = format!("UPDATE beneficiaries SET upstream_id = '1234567890' WHERE id = {bene};");
    raw_sql(&app, &wrong, &wrong).await;
    let sent = transfer(&app, &partner, MOBILE, &bene, "1000", "SBX-WRONG").await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!((&sent.json()["txn_status"], &sent.json()["message"]), (&json!("5"), &json!("Transaction Failed")));
    let otp = app.call("/api/AOP/DMTV1/RefundOtp", &partner, json!({"referenceid": "SBX-WRONG"})).await;
    assert_eq!(otp.status, 200, "{}", otp.body);
    let claim = json!({"referenceid": "SBX-WRONG", "Stateresp": otp.json()["stateresp"],
                       "OTP": app.sms.last_otp(MOBILE)});
    let claimed = app.call("/api/AOP/DMTV1/ClaimRefund", &partner, claim).await;
    assert_eq!(claimed.json()["txn_status"], "0", "{}", claimed.body);
    assert_eq!(balance(&app, &partner).await, start, "the wallet ends where it started");
    assert_verify_clean(&app);

    // The id the sandbox issued goes through (its ids survive restarts: they are derived).
    let right = format!(
        "UPDATE beneficiaries SET upstream_id = '{}' WHERE id = {bene};",
        sandbox_bene_id(MOBILE, account, "SBIN0001234")
    );
    raw_sql(&app, &right, &right).await;
    let sent = transfer(&app, &partner, MOBILE, &bene, "1000", "SBX-RIGHT").await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.json()["txn_status"], "3", "handed to the bank: {}", sent.body);
    assert_verify_clean(&app);
}

/// The reference a transaction is sent upstream with is stored once: of
/// eight concurrent assignments (a submission and polls racing on a new
/// transaction), the first stored wins and every one answers it; a later
/// one changes nothing.
async fn a_transactions_upstream_reference_is_stored_once_whoever_assigns_first(engine: Engine) {
    use payrail::domain::TxnKind;
    let app = crate::helpers::spawn_app(engine).await;
    let racers = (0..8).map(|n| {
        let store = app.store.clone();
        tokio::spawn(async move { store.assign_upstream_ref(TxnKind::Dmt, 424_242, &format!("D424242RACE{n}")).await })
    });
    let mut answers = Vec::new();
    for racer in racers {
        answers.push(racer.await.expect("joined").expect("a reference"));
    }
    let stored = app.store.upstream_ref_of(TxnKind::Dmt, 424_242).await.expect("read").expect("stored");
    assert!(stored.starts_with("D424242RACE"), "{stored}");
    assert!(answers.iter().all(|answer| *answer == stored), "{answers:?} against {stored}");
    let later = app.store.assign_upstream_ref(TxnKind::Dmt, 424_242, "D424242LATE").await.expect("a reference");
    assert_eq!(later, stored);
}
