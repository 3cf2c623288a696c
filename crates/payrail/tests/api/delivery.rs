//! Partner callbacks are delivered in order: clearing a URL cancels what
//! waits, a redelivered event says it is one, a waiting event never shows a
//! next attempt in the past, and an attempt in flight is always recorded,
//! as is a poll of the upstream in flight when an operator resumes its job.

use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{eventually, payrail, spawn_app_with, text, AppOptions, CallbackReceiver, Engine, TestApp};
use crate::journey::operator_moves;
use crate::mock_upstream::{Reply, Script};
use crate::upstream_paysprint::app_with_mock;
use crate::upstream_sandbox::{funded_partner, send};

/// The operator marks the transfer successful.
async fn succeed(app: &TestApp, ackno: &str) {
    let answer = app
        .admin(&format!("/admin/v1/dmt/{ackno}/transition"), Some(json!({"to": "success", "utr": "412345678901"})))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

both_engines!(
    clearing_the_callback_url_cancels_pending_events_and_they_are_never_sent,
    a_redelivered_event_is_flagged_as_a_redelivery,
    a_waiting_event_never_shows_a_next_attempt_in_the_past,
    an_attempt_in_flight_is_recorded_when_its_event_is_redelivered,
    a_poll_in_flight_is_recorded_when_an_operator_resumes_its_job,
);

/// An app whose failed callbacks are retried after `retry`, a partner whose
/// callbacks go to a fresh receiver, and the partner's name.
async fn app_with_receiver(engine: Engine, retry: &'static str) -> (TestApp, CallbackReceiver, String) {
    let app = spawn_app_with(engine, AppOptions { callback_retry: Some(retry), ..AppOptions::default() }).await;
    let partner = app.add_partner(true, &[]).await.name();
    let receiver = CallbackReceiver::start().await;
    set_url(&app, &partner, &receiver.url).await;
    (app, receiver, partner)
}

async fn set_url(app: &TestApp, partner: &str, url: &str) {
    let path = format!("/admin/v1/partners/{partner}/callback");
    let set = app.admin_with(reqwest::Method::PUT, &path, Some(json!({"url": url}))).await;
    assert_eq!(set.status, 200, "{}", set.body);
}

/// An operator-made transfer (no event: it is inserted, not changed); its ackno.
async fn transfer(app: &TestApp, partner: &str, reference: &str) -> String {
    let create = json!({"registration_id": partner, "reference_id": reference, "amount": "5000",
                        "account": "50100200300"});
    let created = app.admin("/admin/v1/dmt", Some(create)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.json()["ackno"].to_string()
}

/// The partner's events, newest first, as the operator API lists them.
async fn events(app: &TestApp, partner: &str, state: Option<&str>) -> Vec<Value> {
    let filter = state.map(|s| format!("&state={s}")).unwrap_or_default();
    let listed = app.admin(&format!("/admin/v1/events?partner={partner}{filter}"), None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.json()["events"].as_array().cloned().expect("events is an array")
}

/// One event with its body and attempts.
async fn event(app: &TestApp, id: i64) -> Value {
    let shown = app.admin(&format!("/admin/v1/events/{id}"), None).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    shown.json()
}

/// Waits until the partner's only event has had `attempts` attempts; its id.
async fn first_event_after(app: &TestApp, partner: &str, attempts: u64) -> i64 {
    eventually(15, &format!("the event's attempt {attempts}"), || async {
        let listed = events(app, partner, None).await;
        let first = listed.last()?;
        (first["attempts"].as_u64() == Some(attempts)).then(|| first["id"].as_i64().expect("id is a number"))
    })
    .await
}

async fn clearing_the_callback_url_cancels_pending_events_and_they_are_never_sent(engine: Engine) {
    let (app, receiver, partner) = app_with_receiver(engine, "1h").await;
    receiver.set_down(true);
    let ackno = transfer(&app, &partner, "CAN-1").await;
    operator_moves(&app, "dmt", &ackno, "sent_to_bank").await;
    let waiting = first_event_after(&app, &partner, 1).await;

    let path = format!("/admin/v1/partners/{partner}/callback");
    assert_eq!(app.admin_with(reqwest::Method::DELETE, &path, None).await.status, 200);
    assert_eq!(events(&app, &partner, Some("pending")).await, Vec::<Value>::new());
    let cancelled = events(&app, &partner, Some("cancelled")).await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!((&cancelled[0]["id"], &cancelled[0]["next_attempt_at"]), (&json!(waiting), &Value::Null));

    // A URL again, and a newer change of the same transfer: it is delivered;
    // the cancelled event neither goes out nor holds the newer one back.
    receiver.set_down(false);
    set_url(&app, &partner, &receiver.url).await;
    succeed(&app, &ackno).await;
    let delivered = eventually(15, "the newer event delivered", || async {
        let got = receiver.deliveries();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(delivered[0].json()["state"], "success");
    assert!(receiver.deliveries().iter().all(|d| d.event_id != waiting.to_string()), "the cancelled event went out");
    let shown = event(&app, waiting).await;
    assert_eq!((&shown["state"], &shown["attempts"]), (&json!("cancelled"), &json!(1)), "{shown}");

    // The CLI says what clearing does.
    let cleared = payrail(&app, &["callback", "clear", &partner]);
    assert!(text(&cleared.stdout).contains("pending ones are cancelled"), "{}", text(&cleared.stdout));
}

async fn a_redelivered_event_is_flagged_as_a_redelivery(engine: Engine) {
    let (app, receiver, partner) = app_with_receiver(engine, "1s").await;
    let ackno = transfer(&app, &partner, "RED-1").await;
    operator_moves(&app, "dmt", &ackno, "sent_to_bank").await;
    succeed(&app, &ackno).await;
    let first = eventually(15, "both events delivered", || async {
        let got = receiver.deliveries();
        (got.len() == 2).then_some(got)
    })
    .await;
    for delivery in &first {
        assert_eq!(delivery.redelivery, "false");
        assert_eq!(delivery.json().get("redelivery"), None, "{}", delivery.body);
    }

    // The older event again, after the newer one: flagged, header and body.
    let old = &first[0];
    assert_eq!(old.json()["state"], "sent_to_bank");
    let redelivered = payrail(&app, &["events", "redeliver", &old.event_id]);
    assert!(redelivered.status.success(), "{}", text(&redelivered.stderr));
    let again = eventually(15, "the redelivery", || async { receiver.deliveries().get(2).cloned() }).await;
    assert_eq!((again.event_id.as_str(), again.redelivery.as_str()), (old.event_id.as_str(), "true"));
    let body = again.json();
    assert_eq!((&body["redelivery"], &body["state"]), (&json!(true), &json!("sent_to_bank")), "{}", again.body);
    assert!(again.body.starts_with(&format!(r#"{{"event_id":"{}","redelivery":true,"#, old.event_id)));
    let shown = event(&app, old.event_id.parse().expect("a number")).await;
    assert!(shown["redelivered_at"].is_string(), "{shown}");
    assert_eq!(shown["body"], again.body.as_str(), "what was sent is what is shown");
}

async fn a_waiting_event_never_shows_a_next_attempt_in_the_past(engine: Engine) {
    let (app, receiver, partner) = app_with_receiver(engine, "1h").await;
    receiver.set_down(true);
    let ackno = transfer(&app, &partner, "WAIT-1").await;
    operator_moves(&app, "dmt", &ackno, "sent_to_bank").await;
    first_event_after(&app, &partner, 1).await;
    // A newer event waits behind the one that retries in an hour.
    succeed(&app, &ackno).await;
    let now = payrail::domain::Timestamp::now().to_ist_string();
    let listed = events(&app, &partner, Some("pending")).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (newer, older) = (&listed[0], &listed[1]);
    assert_eq!(newer["attempts"], 0);
    for e in &listed {
        let next = e["next_attempt_at"].as_str().expect("next_attempt_at is a string");
        assert!(next > now.as_str(), "event {} shows its next attempt at {next}, before now ({now})", e["id"]);
    }
    assert_eq!(newer["next_attempt_at"], older["next_attempt_at"], "the waiting one goes when the older one retries");
    let cli = text(&payrail(&app, &["events", "list", "--partner", &partner]).stdout);
    assert!(!cli.contains(&format!("next {}", &now[..16])), "{cli}");
}

async fn an_attempt_in_flight_is_recorded_when_its_event_is_redelivered(engine: Engine) {
    let (app, receiver, partner) = app_with_receiver(engine, "1s").await;
    receiver.set_delay(std::time::Duration::from_millis(1500));
    let ackno = transfer(&app, &partner, "FLY-1").await;
    operator_moves(&app, "dmt", &ackno, "sent_to_bank").await;
    let id = eventually(15, "an attempt in flight", || async { receiver.arrivals().first().cloned() }).await;
    let redelivered = app.admin(&format!("/admin/v1/events/{id}/redeliver"), Some(json!({}))).await;
    assert_eq!(redelivered.status, 200, "{}", redelivered.body);
    let id: i64 = id.parse().expect("a number");
    let shown = eventually(15, "the event delivered", || async {
        let shown = event(&app, id).await;
        (shown["state"] == "delivered").then_some(shown)
    })
    .await;
    let sent = receiver.arrivals().len();
    let recorded = shown["delivery_attempts"].as_array().map(Vec::len).expect("delivery_attempts is an array");
    assert_eq!(recorded, sent, "every attempt that reached the partner is recorded: {shown}");
}

async fn a_poll_in_flight_is_recorded_when_an_operator_resumes_its_job(engine: Engine) {
    // One poll, then the schedule runs out; every status query takes 1.5 s.
    let (app, mock) = app_with_mock(engine, "1s").await;
    let (partner, _receiver) = funded_partner(&app).await;
    mock.script_next(Script::new().status(Reply::Hang(std::time::Duration::from_millis(1500))));
    let sent = send(&app, &partner, "123456789012", "1000", "POLL-1").await;
    let ackno = sent["ackno"].as_str().unwrap_or_else(|| panic!("no ackno: {sent}")).to_owned();
    let upstream_ref = crate::upstream_paysprint::upstream_ref(&app, "dmt", &ackno).await;
    eventually(15, "a poll in flight", || async { (mock.status_queries(&upstream_ref) == 1).then_some(()) }).await;
    let resumed = payrail(&app, &["upstream", "resume", &format!("dmt:{ackno}")]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let held = eventually(15, "the transfer held", || async {
        let held = app.admin("/admin/v1/upstream/held", None).await.json();
        held["held"].as_array().and_then(|h| h.first().cloned())
    })
    .await;
    assert_eq!(
        held["polls"].as_u64(),
        Some(mock.status_queries(&upstream_ref) as u64),
        "every poll that asked the upstream is counted: {held}"
    );
}
