//! The console's work queues over plain HTTP: the held queue (why each
//! transaction waits, and resuming or resolving it) and the events page
//! across partners (with redelivery), each held to the operator API's roles.

use payrail::domain::operator::Role;
use serde_json::{json, Value};

use crate::both_engines;
use crate::console::{add_operator, held_transfer, Console, PASSWORD};
use crate::helpers::{spawn_app_with, AppOptions, Engine, TestApp};

both_engines!(
    the_held_queue_shows_why_each_waits_and_an_operator_resolves_from_it,
    the_events_page_lists_every_partners_events_and_redelivers_from_it,
);

async fn shown(app: &TestApp, ackno: i64) -> Value {
    app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await.json()
}

async fn audit_of(app: &TestApp, target: &str) -> Vec<(String, String)> {
    let audit = app.admin(&format!("/admin/v1/audit?target={target}"), None).await.json();
    audit["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (e["operator"].as_str().unwrap_or("").to_owned(), e["action"].as_str().unwrap_or("").to_owned()))
        .collect()
}

async fn the_held_queue_shows_why_each_waits_and_an_operator_resolves_from_it(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let partner = app.add_partner(false, &[]).await.name();
    let paid = held_transfer(&app, &partner, "HQ-PAID").await;
    let resumed = held_transfer(&app, &partner, "HQ-RESUME").await;
    let failed = held_transfer(&app, &partner, "HQ-FAILED").await;
    add_operator(&app, "viewer@example.in", Role::Viewer).await;
    add_operator(&app, "op@example.in", Role::Operator).await;

    // A viewer reads the queue, with each hold's reason, and may not act.
    let mut viewer = Console::new(&app);
    viewer.login("viewer@example.in", PASSWORD).await;
    let queue = viewer.get("/console/held").await;
    assert_eq!(queue.status, 200);
    for reference in ["HQ-PAID", "HQ-RESUME", "HQ-FAILED"] {
        assert!(queue.body.contains(reference), "{reference}: {}", queue.body);
    }
    assert!(queue.body.contains("the bank has not answered"), "why it is held: {}", queue.body);
    assert!(queue.body.contains("₹1,25,000.00"), "{}", queue.body);
    assert!(queue.body.contains("may read the queue but not act on it"), "{}", queue.body);
    assert!(!queue.body.contains("/console/held/dmt/"), "a viewer is offered no action: {}", queue.body);
    let csrf = queue.csrf();
    let fields = [("csrf", csrf.as_str()), ("action", "resolve-success"), ("utr", "UTR9"), ("reason", "paid")];
    let refused = viewer.post(&format!("/console/held/dmt/{paid}"), &fields).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("this needs the operator role"), "{}", refused.body);
    assert_eq!(shown(&app, paid).await["status"], "on_hold");

    // An operator: every refusal says what is wrong and changes nothing.
    let mut operator = Console::new(&app);
    operator.login("op@example.in", PASSWORD).await;
    let queue = operator.get("/console/held").await;
    assert!(queue.body.contains(&format!("action=\"/console/held/dmt/{paid}\"")), "{}", queue.body);
    let csrf = queue.csrf();
    let path = format!("/console/held/dmt/{paid}");
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let cases: [Case; 5] = [
        (&[("action", "resolve-success"), ("reason", "the bank paid")], 400, "utr: the bank's UTR is needed"),
        (&[("action", "resolve-success"), ("utr", "UTR77")], 400, "reason: say why"),
        (&[("action", "resolve-success"), ("utr", "UTR77"), ("reason", "   ")], 400, "reason: say why"),
        (&[("action", "pay-twice"), ("reason", "why not")], 400, "action: choose"),
        (&[("action", "resolve-success"), ("utr", "U\u{202e}R"), ("reason", "paid")], 400, "utr:"),
    ];
    for (given, status, says) in cases {
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(given);
        let answer = operator.post(&path, &fields).await;
        assert_eq!(answer.status, status, "{given:?}: {}", answer.body);
        assert!(answer.body.contains(says), "{given:?} should say {says}: {}", answer.body);
        assert_eq!(shown(&app, paid).await["status"], "on_hold", "{given:?} changed it");
    }
    let no_csrf = operator.post(&path, &[("action", "resolve-failed"), ("reason", "no token")]).await;
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.body);
    let unknown = operator
        .post("/console/held/dmt/999999", &[("csrf", &csrf), ("action", "resolve-failed"), ("reason", "x")])
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(audit_of(&app, &format!("dmt:{paid}")).await.iter().all(|(_, action)| !action.starts_with("held.")));

    // Resolved as paid, with the bank's UTR: the history and the audit name the operator.
    let fields =
        [("csrf", csrf.as_str()), ("action", "resolve-success"), ("utr", "UTR77"), ("reason", "the bank paid")];
    let done = operator.post(&path, &fields).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains(&format!("DMT {paid} moved to Success by op@example.in")), "{}", done.body);
    assert!(!done.body.contains("HQ-PAID"), "a resolved transaction leaves the queue: {}", done.body);
    let record = shown(&app, paid).await;
    assert_eq!((&record["status"], &record["utr"]), (&json!("success"), &json!("UTR77")), "{record}");
    let last = record["history"].as_array().and_then(|h| h.last().cloned()).expect("a history");
    assert_eq!((&last["source"], &last["reason"]), (&json!("operator:op@example.in"), &json!("the bank paid")));
    let actions = audit_of(&app, &format!("dmt:{paid}")).await;
    assert!(actions.contains(&("op@example.in".into(), "held.resolve_success".into())), "{actions:?}");
    // Again: it is no longer held, so nothing more happens.
    let again = operator.post(&path, &fields).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.body.contains("is not held"), "{}", again.body);

    // Resumed: still on hold, followed again, the operator in the history.
    let fields = [("csrf", csrf.as_str()), ("action", "resume"), ("reason", "upstream is back")];
    let done = operator.post(&format!("/console/held/dmt/{resumed}"), &fields).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains(&format!("DMT {resumed} resumed")), "{}", done.body);
    let last = shown(&app, resumed).await["history"].as_array().and_then(|h| h.last().cloned()).expect("a history");
    assert_eq!(
        (&last["source"], &last["reason"]),
        (&json!("operator:op@example.in"), &json!("resumed: upstream is back"))
    );

    // Resolved as failed.
    let fields = [("csrf", csrf.as_str()), ("action", "resolve-failed"), ("reason", "the bank returned it")];
    let done = operator.post(&format!("/console/held/dmt/{failed}"), &fields).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(shown(&app, failed).await["status"], "failed");
    let actions = audit_of(&app, &format!("dmt:{failed}")).await;
    assert!(actions.contains(&("op@example.in".into(), "held.resolve_failed".into())), "{actions:?}");
}

async fn the_events_page_lists_every_partners_events_and_redelivers_from_it(engine: Engine) {
    // No workers: events stay pending, as the store made them.
    let app = spawn_app_with(engine, AppOptions { no_workers: true, ..AppOptions::default() }).await;
    let mut events = Vec::new();
    for reference in ["EV-A", "EV-B"] {
        let partner = app.add_partner(false, &[]).await.name();
        let set = json!({"url": "https://partner.example/cb"});
        let path = format!("/admin/v1/partners/{partner}/callback");
        assert_eq!(app.admin_with(reqwest::Method::PUT, &path, Some(set)).await.status, 200);
        let ackno = held_transfer(&app, &partner, reference).await;
        let failed = json!({"to": "failed", "reason": "the bank returned it"});
        assert_eq!(app.admin(&format!("/admin/v1/dmt/{ackno}/transition"), Some(failed)).await.status, 200);
        let listed = app.admin(&format!("/admin/v1/events?partner={partner}"), None).await.json();
        let id = listed["events"][0]["id"].as_i64().unwrap_or_else(|| panic!("an event: {listed}"));
        events.push((partner, ackno, id));
    }
    add_operator(&app, "viewer@example.in", Role::Viewer).await;
    add_operator(&app, "op@example.in", Role::Operator).await;

    let mut viewer = Console::new(&app);
    viewer.login("viewer@example.in", PASSWORD).await;
    let page = viewer.get("/console/events").await;
    assert_eq!(page.status, 200);
    for (partner, ackno, _) in &events {
        assert!(page.body.contains(partner.as_str()), "{partner}: {}", page.body);
        assert!(page.body.contains(&format!("/console/dmt/{ackno}")), "{}", page.body);
    }
    assert!(!page.body.contains("Redeliver"), "a viewer is offered no redelivery");
    let (first, _, first_event) = &events[0];
    let (second, ..) = &events[1];
    let only = viewer.get(&format!("/console/events?partner={first}&state=pending")).await;
    assert!(only.body.contains(first.as_str()) && !only.body.contains(second.as_str()), "{}", only.body);
    let delivered = viewer.get("/console/events?state=delivered").await;
    assert!(delivered.body.contains("No events match"), "{}", delivered.body);
    for bad in ["/console/events?state=lost", "/console/events?partner=%3Cscript%3E", "/console/events?before=x"] {
        let answer = viewer.get(bad).await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
        assert!(answer.body.contains("Correct the filter"), "{bad}: {}", answer.body);
        assert!(!answer.body.contains("<script>"), "what was typed is escaped");
    }
    let csrf = page.csrf();
    let refused =
        viewer.post(&format!("/console/events/{first_event}/redeliver"), &[("csrf", &csrf), ("from", "events")]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    let mut operator = Console::new(&app);
    operator.login("op@example.in", PASSWORD).await;
    let page = operator.get(&format!("/console/events?partner={first}")).await;
    assert!(page.body.contains("Redeliver"), "{}", page.body);
    let csrf = page.csrf();
    let fields = [("csrf", csrf.as_str()), ("from", "events"), ("partner", first.as_str()), ("state", "")];
    let done = operator.post(&format!("/console/events/{first_event}/redeliver"), &fields).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains(&format!("Event {first_event} will be delivered again")), "{}", done.body);
    assert!(done.body.contains("<h1>Events</h1>"), "back on the events page: {}", done.body);
    assert!(!done.body.contains(second.as_str()), "with its filter kept: {}", done.body);
    let actions = audit_of(&app, &format!("event:{first_event}")).await;
    assert_eq!(actions, vec![("op@example.in".to_owned(), "event.redeliver".to_owned())], "only the operator's");
}
