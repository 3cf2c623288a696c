//! Operator-made and imported transfers are priced by the partner's fee plan
//! in force at their date, set through the operator API or `payrail plan
//! set`; charges given explicitly still win.

use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{payrail, spawn_app, text, Engine, TestApp, TestPartner};

both_engines!(
    operator_made_transfers_are_priced_by_the_plan_in_force_now,
    imported_transfers_are_priced_by_the_plan_in_force_at_their_date,
);

/// A flat ₹20 charge, ₹5 of it the provider's, no discount.
const FLAT_20: &str = r#"{"dmt": {"slabs": [{"charge": "20", "provider_share": "5"}], "discount": "zero"},
                          "bbps": {"default": {"percent": "0.21", "cap": "50"}}}"#;

fn plan() -> Value {
    serde_json::from_str(FLAT_20).unwrap_or_else(|e| panic!("{e}"))
}

/// (customercharge, gst, discount, tds, netcommission) of a status answer.
fn charges(status: &Value) -> [String; 5] {
    ["customercharge", "gst", "discount", "tds", "netcommission"].map(|f| status[f].as_str().unwrap_or("").to_owned())
}

async fn status(app: &TestApp, partner: &TestPartner, reference: &str) -> Value {
    let answer = app.dmt_status(&partner.name(), reference, Some(&partner.token())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

async fn create(app: &TestApp, partner: &TestPartner, reference: &str, extra: Value) -> Value {
    let mut body = json!({"registration_id": partner.name(), "reference_id": reference, "amount": "1000",
                          "account": "123456789012"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let made = app.admin("/admin/v1/dmt", Some(body)).await;
    assert_eq!(made.status, 201, "{}", made.body);
    status(app, partner, reference).await
}

async fn operator_made_transfers_are_priced_by_the_plan_in_force_now(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let plans = format!("/admin/v1/partners/{}/fee-plans", partner.name());
    // In force from the year 3000: a transfer made now is before it, priced by the default plan.
    let future = app.admin(&plans, Some(json!({"effective_from": "3000-01-01", "plan": plan()}))).await;
    assert_eq!(future.status, 201, "{}", future.body);
    let before = create(&app, &partner, "OP-BEFORE", json!({})).await;
    // Default plan, ₹1,000 on 2026 dates: 10.00, GST 1.53, discount = GST, TDS 2%.
    assert_eq!(charges(&before), ["10.00", "1.53", "1.53", "0.10", "4.87"], "{before}");

    let past = app.admin(&plans, Some(json!({"effective_from": "2020-01-01", "plan": plan()}))).await;
    assert_eq!(past.status, 201, "{}", past.body);
    let after = create(&app, &partner, "OP-AFTER", json!({})).await;
    // ₹20: GST 3.05, commission 20 − 3.05 − 5 = 11.95, TDS 2% 0.24, net 11.71; discount zero.
    assert_eq!(charges(&after), ["20.00", "3.05", "0.00", "0.24", "11.71"], "{after}");

    // Given charges win over the plan; a missing one still comes from it.
    let given = create(&app, &partner, "OP-GIVEN", json!({"customer_charge": "12", "provider_share": "2"})).await;
    assert_eq!(charges(&given)[..2], ["12.00".to_owned(), "1.83".to_owned()], "{given}");
    assert_eq!(given["netcommission"], "8.01", "12 − 1.83 − 2 = 8.17, less 2% TDS 0.16: {given}");
    let share_only = create(&app, &partner, "OP-SHARE", json!({"provider_share": "1"})).await;
    assert_eq!((&share_only["customercharge"], &share_only["netcommission"]), (&json!("20.00"), &json!("15.63")));

    // A refused creation writes nothing, whatever the plan.
    let bad = json!({"registration_id": partner.name(), "reference_id": "OP-BAD", "amount": "1000",
                     "account": "123456789012", "customer_charge": "-1"});
    assert_eq!(app.admin("/admin/v1/dmt", Some(bad)).await.status, 400);
    assert_eq!(app.dmt_status(&partner.name(), "OP-BAD", Some(&partner.token())).await.json()["response_code"], 2);
}

async fn imported_transfers_are_priced_by_the_plan_in_force_at_their_date(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let plan_file = app.data_dir.path().join("plan.json");
    std::fs::write(&plan_file, FLAT_20).unwrap_or_else(|e| panic!("{e}"));
    let set = payrail(
        &app,
        &["plan", "set", &partner.name(), "--file", plan_file.to_str().expect("a UTF-8 path"), "--from", "2025-06-01"],
    );
    assert!(set.status.success(), "{}", text(&set.stderr));

    let csv = "reference_id,amount,account,created_at,customer_charge\n\
               IMP-OLD,1000,20018575947,2025-05-31 23:59:59,\n\
               IMP-NEW,1000,20018575948,2025-06-01 00:00:00,\n\
               IMP-GIVEN,1000,20018575949,2025-06-02 10:00:00,15\n";
    let file = app.data_dir.path().join("dated.csv");
    std::fs::write(&file, csv).unwrap_or_else(|e| panic!("{e}"));
    let out = payrail(&app, &["import", "dmt", "--partner", &partner.name(), file.to_str().expect("a UTF-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A second before the plan: the default plan (TDS 2% from 2024-10-01).
    assert_eq!(charges(&status(&app, &partner, "IMP-OLD").await), ["10.00", "1.53", "1.53", "0.10", "4.87"]);
    // From its first second: the partner's plan.
    assert_eq!(charges(&status(&app, &partner, "IMP-NEW").await), ["20.00", "3.05", "0.00", "0.24", "11.71"]);
    // A given charge wins; the share still comes from the plan (₹5): 15 − 2.29 − 5 = 7.71, TDS 0.15.
    assert_eq!(charges(&status(&app, &partner, "IMP-GIVEN").await), ["15.00", "2.29", "0.00", "0.15", "7.56"]);

    // The JSON Lines form, and a later plan version that does not reach back.
    let later = app.data_dir.path().join("later.json");
    std::fs::write(&later, FLAT_20.replace("\"20\"", "\"30\"")).unwrap_or_else(|e| panic!("{e}"));
    let set = payrail(
        &app,
        &["plan", "set", &partner.name(), "--file", later.to_str().expect("a UTF-8 path"), "--from", "2025-07-01"],
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    let lines = [
        json!({"reference_id": "IMP-JUNE", "amount": "1000", "account": "20018575950", "created_at": "2025-06-30 12:00:00"}),
        json!({"reference_id": "IMP-JULY", "amount": "1000", "account": "20018575951", "created_at": "2025-07-01 12:00:00"}),
    ];
    let jsonl = app.data_dir.path().join("dated.jsonl");
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&jsonl, body).unwrap_or_else(|e| panic!("{e}"));
    let out = payrail(&app, &["import", "dmt", "--partner", &partner.name(), jsonl.to_str().expect("a UTF-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(status(&app, &partner, "IMP-JUNE").await["customercharge"], "20.00");
    assert_eq!(status(&app, &partner, "IMP-JULY").await["customercharge"], "30.00");
    // The earlier import keeps the charges it was made with.
    assert_eq!(status(&app, &partner, "IMP-NEW").await["customercharge"], "20.00");
}
