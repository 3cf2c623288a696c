//! Issue 15, items 1, 3 and 4, through HTTP on both engines: bulk status
//! (each item the single endpoint's answer byte for byte), status with its
//! history on request, and the reverse lookups by UTR and by remitter mobile.

use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{spawn_app, spawn_app_with, Answer, AppOptions, Engine, TestApp, TestPartner};
use crate::journey::{add_beneficiary_account, assert_refused, register_remitter, top_up, transfer, MOBILE};

both_engines!(
    bulk_answers_are_the_single_answers_byte_for_byte_in_request_order,
    a_bulk_request_out_of_bounds_is_refused_naming_what_is_wrong,
    history_is_appended_only_on_request_and_matches_the_timeline,
    a_transfer_is_found_by_its_utr_only_by_its_own_partner,
    a_remitters_transfers_are_listed_by_date_and_paged,
);

/// A transfer made through the operator API, moved to `to` (with `utr` on success); its ackno.
async fn admin_transfer(app: &TestApp, partner: &TestPartner, reference: &str, to: Option<(&str, &str)>) -> i64 {
    let dmt = json!({"registration_id": partner.name(), "reference_id": reference, "amount": "2500",
                     "account": "60100200300"});
    let made = app.admin("/admin/v1/dmt", Some(dmt)).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let ackno = made.json()["ackno"].as_i64().expect("an ackno");
    if let Some((to, utr)) = to {
        let body = json!({"to": to, "utr": utr, "reason": "the bank said so"});
        let moved = app.admin(&format!("/admin/v1/dmt/{ackno}/transition"), Some(body)).await;
        assert_eq!(moved.status, 200, "{}", moved.body);
    }
    ackno
}

async fn admin_bill(app: &TestApp, partner: &TestPartner, reference: &str) {
    let bill = json!({"registration_id": partner.name(), "reference_id": reference, "operator_name": "Bajaj Finance",
                      "ca_number": "12345", "amount": "1499.50"});
    let made = app.admin("/admin/v1/bbps", Some(bill)).await;
    assert_eq!(made.status, 201, "{}", made.body);
}

async fn bulk(app: &TestApp, path: &str, partner: &TestPartner, references: Value) -> Answer {
    app.call(path, partner, json!({ "references": references })).await
}

/// The `data` items of a bulk answer, each as its raw JSON text.
fn items(answer: &Answer) -> Vec<String> {
    let start = r#"{"status":true,"response_code":1,"data":["#;
    assert!(answer.body.starts_with(start) && answer.body.ends_with("]}"), "{}", answer.body);
    items_with_cursor(&answer.body)
}

async fn bulk_answers_are_the_single_answers_byte_for_byte_in_request_order(engine: Engine) {
    let app = spawn_app(engine).await;
    let (a, b) = (app.add_partner(true, &[]).await, app.add_partner(true, &[]).await);
    admin_transfer(&app, &a, "BULK-PAID", Some(("success", "UTR5550001"))).await;
    admin_transfer(&app, &a, "BULK-OPEN", None).await;
    admin_transfer(&app, &a, "1234567", Some(("failed", ""))).await;
    admin_transfer(&app, &b, "BULK-THEIRS", Some(("success", "UTR5550002"))).await;
    admin_bill(&app, &a, "BILL-1").await;
    admin_bill(&app, &b, "BILL-THEIRS").await;

    let asked = ["BULK-OPEN", "NOT-THERE", "BULK-THEIRS", "BULK-PAID", "1234567", "BULK-OPEN"];
    let answer = bulk(&app, "/api/AOP/DMTV1/TransactionStatusBulk", &a, json!(asked)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let got = items(&answer);
    assert_eq!(got.len(), asked.len());
    for (reference, item) in asked.iter().zip(&got) {
        let single = app.dmt_status(&a.name(), reference, Some(&a.token())).await;
        assert_eq!(item, &single.body, "{reference}: the bulk item is the single answer");
    }
    assert!(got[1].contains("Transaction not found") && got[1] == got[2], "unknown and foreign alike: {got:?}");
    // A reference sent as a JSON number of digits, as the single endpoint reads it.
    let numeric = bulk(&app, "/api/AOP/DMTV1/TransactionStatusBulk", &a, json!([1234567])).await;
    assert_eq!(items(&numeric)[0], app.dmt_status(&a.name(), "1234567", Some(&a.token())).await.body);

    let asked = ["BILL-THEIRS", "BILL-1", "NOPE"];
    let answer = bulk(&app, "/api/AOP/BillPaymentStatusBulk", &a, json!(asked)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    for (reference, item) in asked.iter().zip(items(&answer)) {
        assert_eq!(item, app.bill_status(&a.name(), reference, Some(&a.token())).await.body, "{reference}");
    }
    // The same authentication as every call: a token of another partner is refused.
    let body = json!({"RegistrationID": a.name(), "references": ["BULK-PAID"]}).to_string();
    let foreign = app.post_raw("/api/AOP/DMTV1/TransactionStatusBulk", body, &[("Token", &b.token())]).await;
    assert_eq!(foreign.status, 401, "{}", foreign.body);
}

async fn a_bulk_request_out_of_bounds_is_refused_naming_what_is_wrong(engine: Engine) {
    let app = spawn_app(engine).await;
    let a = app.add_partner(true, &[]).await;
    let many: Vec<String> = (0..101).map(|n| format!("R-{n}")).collect();
    let cases = [
        (json!({}), "references is missing"),
        (json!({"references": []}), "references must hold 1 to 100 references (it holds 0)"),
        (json!({"references": many}), "references must hold 1 to 100 references (it holds 101)"),
        (json!({"references": "R-1"}), "references must be a JSON array"),
        (json!({"references": ["R-1", {"x": 1}]}), "references[1] must be a string"),
        (json!({"references": ["R-1", ""]}), "references[1]"),
    ];
    for path in ["/api/AOP/DMTV1/TransactionStatusBulk", "/api/AOP/BillPaymentStatusBulk"] {
        for (fields, says) in &cases {
            let answer = app.call(path, &a, fields.clone()).await;
            assert_refused(&answer, 400, 8, says);
        }
    }
}

/// The history a status answer carries as `"history"`, as (code, source).
fn shown_history(body: &str) -> Vec<(String, String)> {
    let parsed: Value = serde_json::from_str(body).expect("JSON");
    parsed["history"]
        .as_array()
        .expect("a history")
        .iter()
        .map(|h| {
            assert!(h["at"].as_str().is_some_and(|at| at.len() == 19), "{h}");
            (h["status"].as_str().unwrap_or("").to_owned(), h["source"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

async fn history_is_appended_only_on_request_and_matches_the_timeline(engine: Engine) {
    let app = spawn_app(engine).await;
    let a = app.add_partner(true, &[]).await;
    let ackno = admin_transfer(&app, &a, "HIST-1", Some(("on_hold", ""))).await;
    let paid = json!({"to": "success", "utr": "UTR777", "reason": "paid"});
    assert_eq!(app.admin(&format!("/admin/v1/dmt/{ackno}/transition"), Some(paid)).await.status, 200);
    let plain = app.dmt_status(&a.name(), "HIST-1", Some(&a.token())).await;
    let ask = |history: Value| json!({"ReferanceID": "HIST-1", "history": history});
    let with_false = app.call("/api/AOP/DMTV1/TransactionStatus", &a, ask(json!(false))).await;
    assert_eq!(with_false.body, plain.body, "history false is today's answer");
    let with = app.call("/api/AOP/DMTV1/TransactionStatus", &a, ask(json!(true))).await;
    assert_eq!(with.status, 200);
    let prefix = &plain.body[..plain.body.len() - 1];
    assert!(with.body.starts_with(prefix) && with.body[prefix.len()..].starts_with(",\"history\":["), "{}", with.body);
    // The timeline's status rows, in AOPay codes; an operator is `operator`, never their address.
    let timeline = app.admin(&format!("/admin/v1/dmt/{ackno}/timeline"), None).await.json();
    let statuses: Vec<&Value> =
        timeline["timeline"].as_array().expect("a timeline").iter().filter(|e| e["to"].is_string()).collect();
    let history = shown_history(&with.body);
    assert_eq!(history.len(), statuses.len(), "{timeline}");
    let codes: Vec<&str> = history.iter().map(|(code, _)| code.as_str()).collect();
    assert_eq!(codes, ["2", "4", "1"], "pending, on hold, success: {}", with.body);
    assert!(history.iter().all(|(_, source)| !source.contains('@')), "{history:?}");
    for bad in [json!("yes"), json!(1)] {
        let refused = app.call("/api/AOP/DMTV1/TransactionStatus", &a, ask(bad)).await;
        assert_refused(&refused, 400, 8, "history must be true or false");
    }
    admin_bill(&app, &a, "HIST-BILL").await;
    let bill = app.call("/api/AOP/BillPaymentStatus", &a, json!({"referenceid": "HIST-BILL", "history": true})).await;
    assert_eq!(shown_history(&bill.body).len(), 1, "{}", bill.body);
}

async fn a_transfer_is_found_by_its_utr_only_by_its_own_partner(engine: Engine) {
    let app = spawn_app(engine).await;
    let (a, b) = (app.add_partner(true, &[]).await, app.add_partner(true, &[]).await);
    admin_transfer(&app, &a, "UTR-REF-1", Some(("success", "UTR8880001"))).await;
    let found = app.call("/api/AOP/DMTV1/TransactionByUtr", &a, json!({"utr": "UTR8880001"})).await;
    assert_eq!(found.body, app.dmt_status(&a.name(), "UTR-REF-1", Some(&a.token())).await.body);
    let theirs = app.call("/api/AOP/DMTV1/TransactionByUtr", &b, json!({"utr": "UTR8880001"})).await;
    let missing = app.dmt_status(&b.name(), "UTR-REF-1", Some(&b.token())).await;
    assert_eq!((theirs.status, &theirs.body), (missing.status, &missing.body), "another's UTR is not found");
    assert_refused(&app.call("/api/AOP/DMTV1/TransactionByUtr", &a, json!({})).await, 400, 8, "utr is missing");
    let bad = app.call("/api/AOP/DMTV1/TransactionByUtr", &a, json!({"utr": "UTR 1"})).await;
    assert_refused(&bad, 400, 8, "utr must be");
}

async fn a_remitters_transfers_are_listed_by_date_and_paged(engine: Engine) {
    // A clock the test moves: one transfer a minute, so "newest first" is an order to check.
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let (a, b) = (app.add_partner(true, &[]).await, app.add_partner(true, &[]).await);
    top_up(&app, &a, "10000").await;
    register_remitter(&app, &a, MOBILE).await;
    let bene = add_beneficiary_account(&app, &a, MOBILE, "500000000001").await;
    for n in 1..=3 {
        let sent = transfer(&app, &a, MOBILE, &bene, "100", &format!("MOB-{n}")).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        app.clock().advance(std::time::Duration::from_secs(60));
    }
    let today = app.time.now().to_ist_string()[..10].to_owned();
    let ask = |partner: TestPartner, extra: Value| {
        let mut fields = json!({"MobileNumber": MOBILE, "from": today, "to": today});
        for (k, v) in extra.as_object().into_iter().flatten() {
            fields[k] = v.clone();
        }
        let app = &app;
        async move { app.call("/api/AOP/DMTV1/TransactionsByMobile", &partner, fields).await }
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        let extra = match &cursor {
            Some(c) => json!({"limit": 2, "cursor": c}),
            None => json!({"limit": 2}),
        };
        let answer = ask(a.clone(), extra).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        for item in items_with_cursor(&answer.body) {
            let reference = serde_json::from_str::<Value>(&item).expect("an item")["referenceid"].clone();
            let single = app.dmt_status(&a.name(), reference.as_str().unwrap_or(""), Some(&a.token())).await;
            assert_eq!(item, single.body, "each item is the status answer");
            seen.push(reference.as_str().unwrap_or("").to_owned());
        }
        cursor = answer.json()["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            assert_eq!(page, 1, "three transfers in pages of two");
            break;
        }
    }
    assert_eq!(seen, ["MOB-3", "MOB-2", "MOB-1"], "newest first, each once");
    let none = ask(b.clone(), json!({})).await;
    assert_eq!(none.body, r#"{"status":true,"response_code":1,"data":[],"next_cursor":null}"#, "not another's");
    let yesterday = ask(a.clone(), json!({"from": "2020-01-01", "to": "2020-01-02"})).await;
    assert!(yesterday.body.contains(r#""data":[]"#), "{}", yesterday.body);
    for (extra, says) in [
        (json!({"from": "2026-13-01"}), "from must be an India-time date"),
        (json!({"to": "tomorrow"}), "to must be an India-time date"),
        (json!({"limit": 101}), "limit must be a number from 1 to 100"),
        (json!({"cursor": "nonsense"}), "cursor"),
        (json!({"MobileNumber": "12345"}), "MobileNumber"),
    ] {
        assert_refused(&ask(a.clone(), extra.clone()).await, 400, 8, says);
    }
}

/// The `data` items of an answer, each as its raw JSON text, byte for byte.
fn items_with_cursor(body: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Data<'a> {
        #[serde(borrow)]
        data: Vec<&'a serde_json::value::RawValue>,
    }
    let parsed: Data<'_> = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    parsed.data.iter().map(|item| item.get().to_owned()).collect()
}
