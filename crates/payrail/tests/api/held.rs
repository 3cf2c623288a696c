//! Held work (`/admin/v1/held…`): transfers the poller put on hold and bill
//! payments it gave up on, listed with their reason; resumed or resolved by
//! an operator with a reason, named in the history and the audit log.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{eventually, spawn_app_with, AppOptions, Engine, TestApp, TestUpstream, ADMIN_TOKEN};
use crate::journey::{assert_verify_clean, balance};
use crate::operators::{call, operator_with_token};
use crate::upstream_sandbox::{funded_partner, pay, send};

both_engines!(
    held_transactions_are_listed_with_their_reason_and_resolved_by_an_operator_with_a_reason,
    an_operators_hold_is_listed_and_a_transaction_not_held_is_refused,
);

/// The held list, as the bootstrap token reads it.
async fn held(app: &TestApp) -> Vec<Value> {
    let answer = app.admin("/admin/v1/held", None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["held"].as_array().cloned().expect("held is an array")
}

/// The transaction, its history and the audit log: everything an action may change.
async fn state_of(app: &TestApp, kind: &str, id: &str) -> (String, String) {
    let shown = app.admin(&format!("/admin/v1/{kind}/{id}"), None).await.body;
    let audit = app.admin("/admin/v1/audit?limit=500", None).await.body;
    (shown, audit)
}

async fn held_transactions_are_listed_with_their_reason_and_resolved_by_an_operator_with_a_reason(engine: Engine) {
    let options = AppOptions { upstream: TestUpstream::Sandbox { step_secs: 1 }, ..AppOptions::default() };
    let app = spawn_app_with(engine, options.on_manual_clock()).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let mut acknos = Vec::new();
    for reference in ["H-RESUME", "H-PAID", "H-FAILED"] {
        let sent = send(&app, &partner, "100000000777", "1000", reference).await;
        acknos.push(sent["ackno"].as_str().expect("an ackno").to_owned());
    }
    let bill = pay(&app, &partner, "CA0777", "H-BILL").await;
    // A bill payment's id is its `ackno` in the partner's answer.
    let txnid = bill["ackno"].to_string();
    let after_debits = balance(&app, &partner).await;
    // The schedule: six polls a second apart; then all four are held.
    for _ in 0..6 {
        app.advance(Duration::from_secs(1)).await;
    }
    let list = eventually(20, "three transfers and a bill payment held", || async {
        let list = held(&app).await;
        (list.len() == 4).then_some(list)
    })
    .await;
    for item in &list {
        assert_eq!(item["registration_id"], partner.name().as_str(), "{item}");
        assert!(item["reason"].as_str().is_some_and(|r| r.contains("after 6 polls")), "{item}");
        assert!(item["since"].as_str().is_some_and(|s| s.len() == 19), "{item}");
        assert_eq!(item["source"], "poller", "{item}");
    }
    let bill_item = list.iter().find(|i| i["kind"] == "bbps").expect("the bill payment is held");
    assert_eq!((&bill_item["reference_id"], &bill_item["status"]), (&json!("H-BILL"), &json!("pending")));
    let transfer = list.iter().find(|i| i["reference_id"] == "H-PAID").expect("H-PAID is held");
    assert_eq!(
        (&transfer["kind"], &transfer["status"], &transfer["amount"]),
        (&json!("dmt"), &json!("on_hold"), &json!("1000.00"))
    );
    let raw = app.admin("/admin/v1/held", None).await.body;
    let order =
        ["kind", "id", "reference_id", "registration_id", "amount", "status", "since", "reason", "source", "polls"];
    let at = |key: &str| raw.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key}: {raw}"));
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "fields in order {order:?}: {raw}");

    let viewer = operator_with_token(&app, "viewer@example.in", "viewer", &[]);
    let ops = operator_with_token(&app, "ops@example.in", "operator", &[]);
    assert_eq!(call(&app, Method::GET, "/admin/v1/held", Some(&viewer), None).await.status, 200);

    let (resume, paid, failed) = (&acknos[0], &acknos[1], &acknos[2]);
    let cases = [
        ("dmt", resume.as_str(), "resume", json!({"utr": "X"})),
        ("dmt", paid.as_str(), "resolve-success", json!({"utr": "UTR123456"})),
        ("dmt", paid.as_str(), "resolve-success", json!({"reason": "bank statement shows it paid"})),
        ("dmt", failed.as_str(), "resolve-failed", json!({"reason": "   "})),
        ("bbps", txnid.as_str(), "resolve-failed", json!({})),
    ];
    for (kind, id, action, body) in cases {
        let path = format!("/admin/v1/held/{kind}/{id}/{action}");
        let before = state_of(&app, kind, id).await;
        let refused = call(&app, Method::POST, &path, Some(&viewer), Some(&json!({"reason": "r", "utr": "U1"}))).await;
        assert_eq!(refused.status, 403, "a viewer: {}", refused.body);
        let answer = call(&app, Method::POST, &path, Some(&ops), Some(&body)).await;
        assert_eq!(
            (answer.status, &answer.json()["response_code"]),
            (400, &json!(8)),
            "{path} {body}: {}",
            answer.body
        );
        let field = if body.get("reason").is_some_and(|r| r.as_str().is_some_and(|r| !r.trim().is_empty())) {
            "utr"
        } else {
            "reason"
        };
        assert!(answer.json()["message"].as_str().is_some_and(|m| m.starts_with(field)), "{}", answer.body);
        assert!(before == state_of(&app, kind, id).await, "a refused {action} changed something");
    }

    // Resume: back to polling, still on hold, the operator in the history.
    let path = format!("/admin/v1/held/dmt/{resume}/resume");
    let resumed = call(&app, Method::POST, &path, Some(&ops), Some(&json!({"reason": "upstream says retry"}))).await;
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    let last = resumed.json()["history"].as_array().and_then(|h| h.last().cloned()).expect("a history");
    assert_eq!(
        (&last["from"], &last["to"], &last["source"], &last["reason"]),
        (
            &json!("on_hold"),
            &json!("on_hold"),
            &json!("operator:ops@example.in"),
            &json!("resumed: upstream says retry")
        ),
        "{last}"
    );
    // Resolved as paid, with the UTR.
    let path = format!("/admin/v1/held/dmt/{paid}/resolve-success");
    let body = json!({"reason": "bank statement shows it paid", "utr": "UTR123456"});
    let resolved = call(&app, Method::POST, &path, Some(&ops), Some(&body)).await;
    assert_eq!((resolved.status, &resolved.json()["status"]), (200, &json!("success")), "{}", resolved.body);
    let shown = app.admin(&format!("/admin/v1/dmt/{paid}"), None).await.json();
    assert_eq!(shown["utr"], "UTR123456", "{shown}");
    let last = shown["history"].as_array().and_then(|h| h.last().cloned()).expect("a history");
    assert_eq!(
        (&last["source"], &last["reason"]),
        (&json!("operator:ops@example.in"), &json!("bank statement shows it paid"))
    );
    // Resolved as failed: the partner sees it failed, to be refunded by RefundOtp/ClaimRefund.
    let path = format!("/admin/v1/held/dmt/{failed}/resolve-failed");
    let resolved = call(&app, Method::POST, &path, Some(&ops), Some(&json!({"reason": "bank rejected it"}))).await;
    assert_eq!((resolved.status, &resolved.json()["status"]), (200, &json!("failed")), "{}", resolved.body);
    let status = app.dmt_status(&partner.name(), "H-FAILED", Some(&partner.token())).await.json();
    assert_eq!(status["txn_status"], "5", "{status}");
    // A bill payment resolved as failed is paid back at once.
    let path = format!("/admin/v1/held/bbps/{txnid}/resolve-failed");
    let resolved =
        call(&app, Method::POST, &path, Some(&ops), Some(&json!({"reason": "biller says not received"}))).await;
    assert_eq!((resolved.status, &resolved.json()["status"]), (200, &json!("refunded")), "{}", resolved.body);
    let refunded = app.admin(&format!("/admin/v1/bbps/{txnid}"), None).await.json();
    let sources: Vec<&str> =
        refunded["history"].as_array().expect("a history").iter().filter_map(|h| h["source"].as_str()).collect();
    assert_eq!(sources.last(), Some(&"operator:ops@example.in"), "{refunded}");
    assert_eq!(balance(&app, &partner).await, add_rupees(&after_debits, "500"), "the bill's amount back in the wallet");

    // Only the resumed transfer is still held; the resolved ones are refused (409), nothing changed.
    let list = held(&app).await;
    let ids: Vec<String> = list.iter().map(|i| i["id"].to_string()).collect();
    assert_eq!(ids, [resume.to_string()], "{list:?}");
    let before = state_of(&app, "dmt", paid).await;
    let again = call(
        &app,
        Method::POST,
        &format!("/admin/v1/held/dmt/{paid}/resolve-failed"),
        Some(&ops),
        Some(&json!({"reason": "oops"})),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(before == state_of(&app, "dmt", paid).await, "a refused action changed something");

    // The audit log names the operator for each action.
    let audit =
        call(&app, Method::GET, "/admin/v1/audit?operator=ops@example.in", Some(ADMIN_TOKEN), None).await.json();
    let actions: Vec<(String, String)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["action"].as_str().unwrap_or("").to_owned(), e["target"].as_str().unwrap_or("").to_owned()))
        .collect();
    for (action, target) in [
        ("held.resume", format!("dmt:{resume}")),
        ("held.resolve_success", format!("dmt:{paid}")),
        ("held.resolve_failed", format!("dmt:{failed}")),
        ("held.resolve_failed", format!("bbps:{txnid}")),
    ] {
        assert!(actions.contains(&(action.to_owned(), target.clone())), "{action} {target} in {actions:?}");
    }
    assert_verify_clean(&app);
}

/// `rupees` plus `more` rupees, as the wallet balance is written.
fn add_rupees(rupees: &str, more: &str) -> String {
    let paise = |t: &str| {
        let (whole, frac) = t.split_once('.').unwrap_or((t, "0"));
        whole.parse::<i64>().expect("rupees") * 100 + format!("{frac:0<2}")[..2].parse::<i64>().expect("paise")
    };
    let sum = paise(rupees) + paise(more);
    format!("{}.{:02}", sum / 100, sum % 100)
}

async fn an_operators_hold_is_listed_and_a_transaction_not_held_is_refused(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let partner = app.add_partner(false, &[]).await.name();
    let dmt = json!({"registration_id": partner, "reference_id": "OP-1", "amount": "2500", "account": "50100200300"});
    let ackno = app.admin("/admin/v1/dmt", Some(dmt)).await.json()["ackno"].as_i64().expect("an ackno");
    let not_held = app.admin(&format!("/admin/v1/held/dmt/{ackno}/resume"), Some(json!({"reason": "try"}))).await;
    assert_eq!(not_held.status, 409, "{}", not_held.body);
    assert!(held(&app).await.is_empty());

    let path = format!("/admin/v1/dmt/{ackno}/transition");
    let hold = app.admin(&path, Some(json!({"to": "on_hold", "reason": "suspected duplicate"}))).await;
    assert_eq!(hold.status, 200, "{}", hold.body);
    let list = held(&app).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (&list[0]["id"], &list[0]["reason"], &list[0]["source"], &list[0]["amount"], &list[0]["polls"]),
        (&json!(ackno), &json!("suspected duplicate"), &json!("admin"), &json!("2500.00"), &Value::Null)
    );
    for (path, status) in [
        ("/admin/v1/held/dmt/999999/resume".to_owned(), 404),
        (format!("/admin/v1/held/upi/{ackno}/resume"), 400),
        ("/admin/v1/held/dmt/x/resume".to_owned(), 400),
    ] {
        assert_eq!(app.admin(&path, Some(json!({"reason": "r"}))).await.status, status, "{path}");
    }
    let resolved = app
        .admin(&format!("/admin/v1/held/dmt/{ackno}/resolve-success"), Some(json!({"reason": "paid", "utr": "U-77"})))
        .await;
    assert_eq!(resolved.status, 200, "{}", resolved.body);
    assert!(held(&app).await.is_empty());
}
