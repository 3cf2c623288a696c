//! The operator API for partner callbacks and upstream follow-up.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/admin/v1/partners/{id}/callback` | the partner's callback URL |
//! | PUT | `/admin/v1/partners/{id}/callback` | `{"url": "https://…"}` sets it; the first time, the answer shows the partner's callback secret, once |
//! | POST | `/admin/v1/partners/{id}/callback/secret` | a new callback secret, shown once; `{"overlap_hours": n}` (default 24) keeps the old one signing too meanwhile |
//! | DELETE | `/admin/v1/partners/{id}/callback` | clears it (no more events are written; pending ones are cancelled) |
//! | GET | `/admin/v1/events` | newest first; query `partner`, `state` (pending, delivered, failed, cancelled), `kind` + `txn`, `before`, `limit` |
//! | GET | `/admin/v1/events/{id}` | one event, its exact body and every attempt |
//! | POST | `/admin/v1/events/{id}/redeliver` | pending again, due now, with a fresh 24 h window, sent flagged as a redelivery |
//! | GET | `/admin/v1/upstream/held` | transactions the poller gave up on, for review |
//! | GET | `/admin/v1/upstream` | the upstream's health: calls by operation and outcome with latencies, and the circuit |
//! | GET | `/admin/v1/upstream/refs/{kind}/{id}` | the reference the upstream knows transaction `dmt`/`bbps` `id` by |
//! | POST | `/admin/v1/upstream/circuit/close` | closes the authentication circuit: submissions go to the upstream again |

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::admin::Operator;
use super::admin_audit::{entry, record};
use super::admin_money::existing_partner;
use super::body::{parse_json, LimitedBody};
use super::error::{json_response, ApiError};
use super::extract::{Path, Query};
use super::AppState;
use crate::domain::event::{DeliveryAttempt, EventFilter, EventState, PartnerEvent, PollJob};
use crate::domain::operator::Actor;
use crate::domain::{RegistrationId, Timestamp, TxnKind};
use crate::services::callback_secrets::{self, CallbackSecretError};
use secrecy::ExposeSecret as _;

/// The operator API's partner-event and callback routes (table above).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/partners/{id}/callback", get(show_callback).put(set_callback).delete(clear_callback))
        .route("/admin/v1/partners/{id}/callback/secret", post(rotate_callback_secret))
        .route("/admin/v1/events", get(list_events))
        .route("/admin/v1/events/{id}", get(show_event))
        .route("/admin/v1/events/{id}/redeliver", post(redeliver))
        .route("/admin/v1/upstream/held", get(held))
        .route("/admin/v1/upstream", get(upstream_health))
        .route("/admin/v1/upstream/circuit/close", post(close_circuit))
        .route("/admin/v1/upstream/refs/{kind}/{id}", get(upstream_ref))
}

fn bad(message: impl std::fmt::Display) -> ApiError {
    ApiError::Validation(message.to_string())
}

/// Checks a callback URL: absolute `http` or `https` with a host, at most 2048 characters.
pub fn callback_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("url is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || text.len() > 2048 {
        return Err("url must be an http or https URL with a host, at most 2048 characters".into());
    }
    Ok(url.to_string())
}

#[derive(Serialize, utoipa::ToSchema)]
struct CallbackView {
    partner: String,
    url: Option<String>,
    /// The partner's callback secret, only in the answer that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_secret: Option<String>,
}

/// How a callback secret failure is answered.
fn secret_error(error: CallbackSecretError) -> ApiError {
    match error {
        CallbackSecretError::UnknownPartner(id) => ApiError::NotFound(format!("no partner {id}")),
        CallbackSecretError::Seal(e) => ApiError::Internal(e),
        CallbackSecretError::Store(e) => e.into(),
    }
}

/// The partner a callback route without a body names (`{id}`): the
/// operator is authenticated first, then the partner must exist (404).
struct CallbackPartner(RegistrationId, Actor);

impl FromRequestParts<Arc<AppState>> for CallbackPartner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let Operator(actor) = Operator::from_request_parts(parts, state).await?;
        let Path(id) = Path::<String>::from_request_parts(parts, state).await?;
        Ok(CallbackPartner(existing_partner(state, &id).await?, actor))
    }
}

/// A callback route's answer.
fn callback_view(partner: RegistrationId, url: Option<String>, callback_secret: Option<String>) -> Response {
    json_response(StatusCode::OK, &CallbackView { partner: partner.to_string(), url, callback_secret })
}

#[tracing::instrument(skip_all)]
async fn show_callback(
    State(state): State<Arc<AppState>>,
    CallbackPartner(partner, _): CallbackPartner,
) -> Result<Response, ApiError> {
    let url = state.store.callback_url(partner).await?;
    Ok(callback_view(partner, url, None))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct SetCallback {
    url: String,
}

#[tracing::instrument(skip_all)]
async fn set_callback(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let partner = existing_partner(&state, &id).await?;
    let request: SetCallback = parse_json(&body)?;
    let url = callback_url(&request.url).map_err(bad)?;
    let before = state.store.callback_url(partner).await?;
    let made = callback_secrets::set_callback(&*state.store, &*state.clock, &state.key, partner, url.clone()).await;
    let callback_secret = made.map_err(secret_error)?.map(|s| s.expose_secret().to_owned());
    let change = (
        serde_json::json!({ "url": before }),
        serde_json::json!({ "url": url, "secret_issued": callback_secret.is_some() }),
    );
    record(&state, entry(&state, &actor, "callback.set", format!("partner:{partner}"), Some(change))).await;
    Ok(callback_view(partner, Some(url), callback_secret))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct RotateCallbackSecret {
    #[schema(maximum = 720)]
    overlap_hours: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct RotatedCallbackSecret {
    partner: String,
    callback_secret: String,
    /// Until when the previous secret also signs callbacks (India time).
    previous_valid_until: String,
}

/// `POST /admin/v1/partners/{id}/callback/secret`: a new callback secret,
/// shown once; the old one keeps signing for the overlap.
#[tracing::instrument(skip_all)]
async fn rotate_callback_secret(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let partner = existing_partner(&state, &id).await?;
    let request: RotateCallbackSecret =
        if body.iter().all(u8::is_ascii_whitespace) { Default::default() } else { parse_json(&body)? };
    let hours = request.overlap_hours.unwrap_or(24);
    if hours > 24 * 30 {
        return Err(bad("overlap_hours must be at most 720"));
    }
    let overlap = std::time::Duration::from_secs(hours * 3600);
    let (secret, until) = callback_secrets::rotate_secret(&*state.store, &*state.clock, &state.key, partner, overlap)
        .await
        .map_err(secret_error)?;
    let change = (serde_json::json!({}), serde_json::json!({ "previous_valid_until": until.to_ist_string() }));
    let target = format!("partner:{partner}");
    record(&state, entry(&state, &actor, "callback.rotate_secret", target, Some(change))).await;
    let rotated = RotatedCallbackSecret {
        partner: partner.to_string(),
        callback_secret: secret.expose_secret().to_owned(),
        previous_valid_until: until.to_ist_string(),
    };
    Ok(json_response(StatusCode::OK, &rotated))
}

#[tracing::instrument(skip_all)]
async fn clear_callback(
    State(state): State<Arc<AppState>>,
    CallbackPartner(partner, actor): CallbackPartner,
) -> Result<Response, ApiError> {
    let before = state.store.callback_url(partner).await?;
    state.store.set_callback_url(partner, None, state.clock.now()).await?;
    let change = (serde_json::json!({ "url": before }), serde_json::json!({ "url": null }));
    record(&state, entry(&state, &actor, "callback.clear", format!("partner:{partner}"), Some(change))).await;
    Ok(callback_view(partner, None, None))
}

/// The query of `GET /admin/v1/events`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventQuery {
    #[param(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    partner: Option<String>,
    #[param(min_length = 1)]
    state: Option<String>,
    #[param(min_length = 1)]
    kind: Option<String>,
    txn: Option<i64>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// Reads the list filters (shared with the CLI's wording).
fn filter(query: EventQuery) -> Result<EventFilter, ApiError> {
    let partner =
        query.partner.map(|p| RegistrationId::parse(&p).map_err(|e| bad(format!("partner {e}")))).transpose()?;
    let state = query
        .state
        .map(|s| EventState::parse(&s).ok_or_else(|| bad("state must be pending, delivered, failed or cancelled")))
        .transpose()?;
    let txn = match (query.kind, query.txn) {
        (Some(kind), Some(id)) => Some((TxnKind::parse(&kind).ok_or_else(|| bad("kind must be dmt or bbps"))?, id)),
        (None, None) => None,
        _ => return Err(bad("kind and txn go together")),
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad("limit must be between 1 and 1000"));
    }
    Ok(EventFilter { partner, state, txn, before_id: query.before, limit })
}

/// An event as operators see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventView {
    id: i64,
    partner: String,
    kind: &'static str,
    txn_id: i64,
    status: String,
    state: &'static str,
    attempts: u32,
    created_at: String,
    /// When the next attempt is due: pending events only, never in the past.
    next_attempt_at: Option<String>,
    deliver_until: String,
    delivered_at: Option<String>,
    redelivered_at: Option<String>,
}

impl EventView {
    /// The event as it stands at `now` (its next attempt is shown from then).
    fn at(e: &PartnerEvent, now: Timestamp) -> Self {
        EventView {
            id: e.id,
            partner: e.partner.to_string(),
            kind: e.kind.as_str(),
            txn_id: e.txn_id,
            status: e.status.clone(),
            state: e.state.name(),
            attempts: e.attempts,
            created_at: e.created_at.to_ist_string(),
            next_attempt_at: e.next_attempt_shown(now).map(Timestamp::to_ist_string),
            deliver_until: e.deliver_until.to_ist_string(),
            delivered_at: e.delivered_at.map(Timestamp::to_ist_string),
            redelivered_at: e.redelivered_at.map(Timestamp::to_ist_string),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct EventList {
    events: Vec<EventView>,
}

#[tracing::instrument(skip_all)]
async fn list_events(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Query(query): Query<EventQuery>,
) -> Result<Response, ApiError> {
    let events = state.store.events(&filter(query)?).await?;
    let now = state.clock.now();
    Ok(json_response(StatusCode::OK, &EventList { events: events.iter().map(|e| EventView::at(e, now)).collect() }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct AttemptView<'a> {
    attempt: u32,
    instance: &'a str,
    url: &'a str,
    at: String,
    duration_ms: i64,
    http_status: Option<u16>,
    error: Option<&'a str>,
}

impl<'a> From<&'a DeliveryAttempt> for AttemptView<'a> {
    fn from(a: &'a DeliveryAttempt) -> Self {
        AttemptView {
            attempt: a.attempt,
            instance: &a.instance,
            url: &a.url,
            at: a.at.to_ist_string(),
            duration_ms: a.duration_ms,
            http_status: a.http_status,
            error: a.error.as_deref(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct EventDetail<'a> {
    #[serde(flatten)]
    event: EventView,
    body: String,
    delivery_attempts: Vec<AttemptView<'a>>,
}

#[tracing::instrument(skip_all)]
async fn show_event(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let (event, attempts) =
        state.store.event_with_attempts(id).await?.ok_or_else(|| ApiError::NotFound(format!("no event {id}")))?;
    let detail = EventDetail {
        event: EventView::at(&event, state.clock.now()),
        body: event.body(),
        delivery_attempts: attempts.iter().map(AttemptView::from).collect(),
    };
    Ok(json_response(StatusCode::OK, &detail))
}

#[tracing::instrument(skip_all)]
async fn redeliver(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let before = state.store.event_with_attempts(id).await?.map(|(e, _)| e.state.name());
    let event = state
        .store
        .redeliver_event(id, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event {id}")))?;
    let change = (serde_json::json!({ "state": before }), serde_json::json!({ "state": event.state.name() }));
    record(&state, entry(&state, &actor, "event.redeliver", format!("event:{id}"), Some(change))).await;
    Ok(json_response(StatusCode::OK, &EventView::at(&event, state.clock.now())))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = UpstreamHeldView)]
struct HeldView {
    kind: &'static str,
    txn_id: i64,
    polls: u32,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = UpstreamHeldList)]
struct HeldList {
    held: Vec<HeldView>,
}

#[tracing::instrument(skip_all)]
async fn held(_: Operator, State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let jobs: Vec<PollJob> = state.store.held_polls().await?;
    let held = jobs.iter().map(|j| HeldView { kind: j.kind.as_str(), txn_id: j.txn_id, polls: j.attempts }).collect();
    Ok(json_response(StatusCode::OK, &HeldList { held }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct CallView {
    operation: String,
    outcome: String,
    count: u64,
    latency_ms_sum: u64,
    latency_ms_max: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct CircuitView {
    state: &'static str,
    since: Option<String>,
    operation: Option<String>,
    reason: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct UpstreamView {
    provider: &'static str,
    circuit: CircuitView,
    calls: Vec<CallView>,
}

fn circuit_view(state: &AppState) -> CircuitView {
    match state.upstream.health().circuit() {
        Some(open) => CircuitView {
            state: "open",
            since: Some(open.since.to_ist_string()),
            operation: Some(open.operation),
            reason: Some(open.reason),
        },
        None => CircuitView { state: "closed", since: None, operation: None, reason: None },
    }
}

/// `GET /admin/v1/upstream`.
#[tracing::instrument(skip_all)]
async fn upstream_health(_: Operator, State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let calls = state
        .upstream
        .health()
        .tallies()
        .into_iter()
        .map(|(operation, outcome, t)| CallView {
            operation,
            outcome,
            count: t.count,
            latency_ms_sum: t.latency_ms_sum,
            latency_ms_max: t.latency_ms_max,
        })
        .collect();
    let view = UpstreamView { provider: state.upstream.provider.name(), circuit: circuit_view(&state), calls };
    Ok(json_response(StatusCode::OK, &view))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Closed {
    was_open: bool,
    circuit: CircuitView,
}

/// `POST /admin/v1/upstream/circuit/close`.
#[tracing::instrument(skip_all)]
async fn close_circuit(Operator(actor): Operator, State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let before = serde_json::to_value(circuit_view(&state)).unwrap_or_default();
    let was_open = state.upstream.health().close_circuit();
    let after = serde_json::to_value(circuit_view(&state)).unwrap_or_default();
    if was_open {
        record(&state, entry(&state, &actor, "upstream.circuit_close", "upstream".into(), Some((before, after)))).await;
    }
    Ok(json_response(StatusCode::OK, &Closed { was_open, circuit: circuit_view(&state) }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct RefView {
    kind: &'static str,
    id: i64,
    upstream_ref: String,
}

/// `GET /admin/v1/upstream/refs/{kind}/{id}`.
#[tracing::instrument(skip_all)]
async fn upstream_ref(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Path((kind, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let kind = TxnKind::parse(&kind).ok_or_else(|| bad("kind must be dmt or bbps"))?;
    let tail = state.store.upstream_ref_of(kind, id).await?;
    let tail = tail.ok_or_else(|| ApiError::NotFound(format!("{} {id} was never sent upstream", kind.as_str())))?;
    let upstream_ref = format!("{}{tail}", state.upstream.settings.ref_prefix);
    Ok(json_response(StatusCode::OK, &RefView { kind: kind.as_str(), id, upstream_ref }))
}

/// This module's bodies, for the OpenAPI document ([`super::openapi`]).
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; CallbackView, SetCallback, RotateCallbackSecret, RotatedCallbackSecret, EventList, EventDetail, EventView, HeldList, UpstreamView, Closed, RefView);
}

/// The event list's query parameters, for the OpenAPI document.
pub(crate) fn event_params() -> Vec<utoipa::openapi::path::Parameter> {
    <EventQuery as utoipa::IntoParams>::into_params(|| None)
}
