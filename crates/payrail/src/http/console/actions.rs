//! What an operator does from the console: move a transaction, resume or
//! resolve held work, redeliver an event. Each goes through the service
//! and the role table the operator API uses, and is audited the same way.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;

use super::session::{csrf_ok, csrf_refused, signed_in, to_login};
use super::{form, format, partner_detail, Page, SignedIn};
use crate::domain::bbps::BillChange;
use crate::domain::dmt::DmtChange;
use crate::domain::event::{EventFilter, EventState};
use crate::domain::operator::Role;
use crate::domain::text::check_text;
use crate::domain::{BillPayment, BillStatus, DmtStatus, DmtTransfer, RegistrationId, TxnKind};
use crate::http::admin_audit::{change_source, entry, record};
use crate::http::admin_auth::role_for;
use crate::http::admin_held::perform;
use crate::http::body::LimitedBody;
use crate::http::error::ApiError;
use crate::http::extract::Path;
use crate::http::AppState;
use crate::services::held::{self, HeldAction, HeldError};
use crate::services::search;
use crate::services::transactions;
use crate::store::ChangeError;

fn txn_kind(kind: &str) -> Option<TxnKind> {
    match kind {
        "dmt" => Some(TxnKind::Dmt),
        "bbps" => Some(TxnKind::Bbps),
        _ => None,
    }
}

pub(super) async fn transaction_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    detail(&state, &user, &kind, &id, StatusCode::OK, None).await
}

/// A transaction's page, with `notice` (an error or a confirmation) above its actions.
async fn detail(
    state: &AppState,
    user: &SignedIn,
    kind: &str,
    id: &str,
    status: StatusCode,
    notice: Option<(bool, String)>,
) -> Result<Response, ApiError> {
    let found = match (txn_kind(kind), id.parse::<i64>()) {
        (Some(kind), Ok(id)) => search::txn_detail(state.store.as_ref(), kind, id).await?.map(|d| (kind, d)),
        _ => None,
    };
    let Some((kind, detail)) = found else {
        return Ok(Page::message(
            StatusCode::NOT_FOUND,
            Some(user),
            "No such transaction",
            "There is no transaction with this number. Search for it by its reference or UTR instead.",
        ));
    };
    let may_act = user.role >= transition_role(kind);
    Ok(Page::transaction(status, user, kind, &detail, may_act, notice))
}

/// The role the operator API's transition route for `kind` needs: the console asks the same table.
fn transition_role(kind: TxnKind) -> Role {
    let path = match kind {
        TxnKind::Dmt => "/admin/v1/dmt/{ackno}/transition",
        TxnKind::Bbps => "/admin/v1/bbps/{txnid}/transition",
    };
    role_for(&Method::POST, path).unwrap_or(Role::Admin)
}

pub(super) async fn transition(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((kind_text, id_text)): Path<(String, String)>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let (user, fields) = match posted(&state, &headers, &body).await? {
        Ok(posted) => posted,
        Err(answer) => return Ok(answer),
    };
    let (Some(kind), Ok(id)) = (txn_kind(&kind_text), id_text.parse::<i64>()) else {
        return detail(&state, &user, &kind_text, &id_text, StatusCode::NOT_FOUND, None).await;
    };
    let needs = transition_role(kind);
    if user.role < needs {
        let message = role_refusal(&user, "change transactions", needs);
        return detail(&state, &user, &kind_text, &id_text, StatusCode::FORBIDDEN, Some((false, message))).await;
    }
    let fail = |message: String| (false, message);
    let outcome = match apply(&state, &user, kind, id, &fields).await {
        Ok(words) => (StatusCode::OK, (true, words)),
        Err(Refusal::Bad(message)) => (StatusCode::BAD_REQUEST, fail(message)),
        Err(Refusal::Conflict(message)) => (StatusCode::CONFLICT, fail(message)),
        Err(Refusal::Store(e)) => return Err(e),
    };
    detail(&state, &user, &kind_text, &id_text, outcome.0, Some(outcome.1)).await
}

enum Refusal {
    Bad(String),
    Conflict(String),
    Store(ApiError),
}

fn field<'a>(fields: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn bounded(name: &str, value: &str, max: usize) -> Result<String, Refusal> {
    if value.chars().count() > max {
        return Err(Refusal::Bad(format!("{name}: must be at most {max} characters")));
    }
    check_text(value).map_err(|e| Refusal::Bad(format!("{name}: {e}")))?;
    Ok(value.to_owned())
}

/// Moves the transaction as the form says, through the same service as
/// the operator API (the history names the operator; the store writes the
/// audit entry in the change's own database transaction).
async fn apply(
    state: &AppState,
    user: &SignedIn,
    kind: TxnKind,
    id: i64,
    fields: &HashMap<String, String>,
) -> Result<String, Refusal> {
    let to = field(fields, "to").ok_or_else(|| Refusal::Bad("to: choose the state to move it to".into()))?;
    let reason = field(fields, "reason")
        .ok_or_else(|| Refusal::Bad("reason: say why (it is kept in the history and the audit log)".into()))?;
    let reason = bounded("reason", reason, 500)?;
    let source = change_source(&user.actor);
    let (store, clock) = (state.store.as_ref(), &*state.clock);
    let changed = match kind {
        TxnKind::Dmt => {
            let change = match DmtStatus::parse(to) {
                Some(DmtStatus::SentToBank) => DmtChange::SentToBank,
                Some(DmtStatus::Success) => {
                    let utr = field(fields, "utr").ok_or_else(|| {
                        Refusal::Bad("utr: the bank's UTR is needed to mark a transfer successful".into())
                    })?;
                    DmtChange::Success { utr: Some(bounded("utr", utr, 64)?) }
                }
                Some(DmtStatus::OnHold) => DmtChange::Hold,
                Some(DmtStatus::Failed) => DmtChange::Fail,
                Some(DmtStatus::Refunded) => DmtChange::Refund { refund_txn_id: None },
                _ => return Err(Refusal::Bad("to: must be sent_to_bank, success, on_hold, failed or refunded".into())),
            };
            transactions::change::<DmtTransfer>(store, clock, state.metrics(), id, change, source, Some(reason))
                .await
                .map(|t| t.status.name())
        }
        TxnKind::Bbps => {
            let change = match BillStatus::parse(to) {
                Some(BillStatus::Success) => BillChange::Success {
                    operator_ref: field(fields, "operator_id").map(|o| bounded("operator_id", o, 64)).transpose()?,
                },
                Some(BillStatus::Failed) => BillChange::Fail,
                Some(BillStatus::Refunded) => BillChange::Refund { refund_txn_id: None },
                _ => return Err(Refusal::Bad("to: must be success, failed or refunded".into())),
            };
            transactions::change::<BillPayment>(store, clock, state.metrics(), id, change, source, Some(reason))
                .await
                .map(|p| p.status.name())
        }
    };
    match changed {
        Ok(name) => Ok(format!("Moved to {} by {}.", format::state_words(name), user.email)),
        Err(ChangeError::NotFound) => Err(Refusal::Bad("No such transaction.".into())),
        Err(ChangeError::Forbidden(e)) => Err(Refusal::Conflict(format!("Not allowed from its present state: {e}"))),
        Err(ChangeError::Store(e)) => Err(Refusal::Store(e.into())),
    }
}

/// Redelivers a partner event: the operator API's redelivery, its role and
/// its audit entry. The answer is the page the form was on: the events
/// list (`from=events`, with its filters) or the partner's page.
pub(super) async fn redeliver(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let (user, fields) = match posted(&state, &headers, &body).await? {
        Ok(posted) => posted,
        Err(answer) => return Ok(answer),
    };
    let on_events_page = fields.get("from").is_some_and(|f| f == "events");
    let back = |partner: String, status: StatusCode, notice: (bool, String)| {
        let (state, user, fields) = (&state, &user, &fields);
        async move {
            if on_events_page {
                let filters: HashMap<String, String> = fields
                    .iter()
                    .filter(|(k, _)| *k == "partner" || *k == "state")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                events_view(state, user, &filters, status, Some(notice)).await
            } else {
                partner_detail(state, user, &partner, status, Some(notice)).await
            }
        }
    };
    let partner = fields.get("partner").cloned().unwrap_or_default();
    let needs = redeliver_role();
    if user.role < needs {
        let message = role_refusal(&user, "redeliver events", needs);
        return back(partner, StatusCode::FORBIDDEN, (false, message)).await;
    }
    let Ok(id) = id.parse::<i64>() else {
        return back(partner, StatusCode::NOT_FOUND, (false, "No such event.".into())).await;
    };
    let before = state.store.event_with_attempts(id).await?.map(|(e, _)| e.state.name());
    let Some(event) = state.store.redeliver_event(id, state.clock.now()).await? else {
        return back(partner, StatusCode::NOT_FOUND, (false, "No such event.".into())).await;
    };
    let change = (serde_json::json!({ "state": before }), serde_json::json!({ "state": event.state.name() }));
    let audit = entry(&state, &user.actor, "event.redeliver", format!("event:{id}"), Some(change));
    record(&state, audit).await;
    let message = format!("Event {id} will be delivered again; its attempts start afresh.");
    back(event.partner.to_string(), StatusCode::OK, (true, message)).await
}

/// The role the operator API's held-work route for `verb` needs.
fn held_role(verb: &str) -> Role {
    role_for(&Method::POST, &format!("/admin/v1/held/{{kind}}/{{id}}/{verb}")).unwrap_or(Role::Admin)
}

/// The held queue: every held transaction with since when and why, and
/// the actions the role allows.
pub(super) async fn held_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    held_view(&state, &user, StatusCode::OK, None).await
}

async fn held_view(
    state: &AppState,
    user: &SignedIn,
    status: StatusCode,
    notice: Option<(bool, String)>,
) -> Result<Response, ApiError> {
    let held = held::list(&*state.store).await?;
    let may_act = HELD_VERBS.iter().all(|verb| user.role >= held_role(verb));
    Ok(Page::held(status, user, &held, may_act, notice))
}

/// The held-work actions, as the operator API names them.
const HELD_VERBS: [&str; 3] = ["resume", "resolve-success", "resolve-failed"];

/// Resumes or resolves a held transaction: the operator API's action, its
/// role, its history row under the operator's name and its audit entry.
pub(super) async fn held_act(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((kind_text, id_text)): Path<(String, String)>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let (user, fields) = match posted(&state, &headers, &body).await? {
        Ok(posted) => posted,
        Err(answer) => return Ok(answer),
    };
    let refuse = |status: StatusCode, message: String| held_view(&state, &user, status, Some((false, message)));
    let Some(verb) = field(&fields, "action").filter(|v| HELD_VERBS.contains(v)) else {
        return refuse(StatusCode::BAD_REQUEST, "action: choose resume, resolve as paid or resolve as failed".into())
            .await;
    };
    let needs = held_role(verb);
    if user.role < needs {
        let message = role_refusal(&user, "act on held transactions", needs);
        return refuse(StatusCode::FORBIDDEN, message).await;
    }
    let (Some(kind), Ok(id)) = (TxnKind::parse(&kind_text), id_text.parse::<i64>()) else {
        return refuse(StatusCode::NOT_FOUND, "No such transaction.".into()).await;
    };
    let read = |name: &str, max: usize| field(&fields, name).map(|v| bounded(name, v, max)).transpose();
    let parsed = (|| {
        let reason = read("reason", 500)?
            .ok_or_else(|| Refusal::Bad("reason: say why (it is kept in the history and the audit log)".into()))?;
        let action = match verb {
            "resume" => HeldAction::Resume,
            "resolve-success" => {
                let utr = read("utr", 64)?;
                if kind == TxnKind::Dmt && utr.is_none() {
                    return Err(Refusal::Bad("utr: the bank's UTR is needed to resolve a transfer as paid".into()));
                }
                HeldAction::ResolveSuccess { utr, operator_ref: read("operator_id", 64)? }
            }
            _ => HeldAction::ResolveFailed,
        };
        Ok((reason, action))
    })();
    let (reason, action) = match parsed {
        Ok(parsed) => parsed,
        Err(Refusal::Bad(message)) => return refuse(StatusCode::BAD_REQUEST, message).await,
        Err(Refusal::Conflict(message)) => return refuse(StatusCode::CONFLICT, message).await,
        Err(Refusal::Store(e)) => return Err(e),
    };
    let name = format!("{} {id}", kind.as_str().to_uppercase());
    match perform(&state, &user.actor, kind, id, &action, &reason).await {
        Ok((status, _)) => {
            let message = match action {
                HeldAction::Resume => format!("{name} resumed by {}: payrail asks the upstream again.", user.email),
                _ => format!("{name} moved to {} by {}.", format::state_words(&status), user.email),
            };
            held_view(&state, &user, StatusCode::OK, Some((true, message))).await
        }
        Err(e @ HeldError::NotFound(..)) => refuse(StatusCode::NOT_FOUND, format!("{name}: {e}.")).await,
        Err(e @ (HeldError::NotHeld(..) | HeldError::Refused(_))) => {
            refuse(StatusCode::CONFLICT, format!("Nothing was changed: {e}.")).await
        }
        Err(HeldError::Store(e)) => Err(e.into()),
    }
}

/// Partner events across every partner, newest first, filtered by partner
/// and delivery state, with redelivery for the roles that may.
pub(super) async fn events_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    let pairs: HashMap<String, String> = serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    events_view(&state, &user, &pairs, StatusCode::OK, None).await
}

/// The events page for the filters in `pairs` (`partner`, `state`, `before`).
async fn events_view(
    state: &AppState,
    user: &SignedIn,
    pairs: &HashMap<String, String>,
    status: StatusCode,
    notice: Option<(bool, String)>,
) -> Result<Response, ApiError> {
    let given = |name: &str| pairs.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut problems = Vec::new();
    let partner = given("partner").and_then(|p| {
        RegistrationId::parse(p).map_err(|_| problems.push(format!("partner: {p} is not a registration id"))).ok()
    });
    let event_state = given("state").and_then(|s| {
        EventState::parse(s)
            .ok_or_else(|| problems.push("state: must be pending, delivered, failed or cancelled".to_owned()))
            .ok()
    });
    let before_id = given("before")
        .and_then(|b| b.parse::<i64>().map_err(|_| problems.push("before: must be an event number".to_owned())).ok());
    let filter = EventFilter { partner, state: event_state, txn: None, before_id, limit: EVENTS_PER_PAGE };
    let (status, notice, events) = if problems.is_empty() {
        (status, notice, state.store.events(&filter).await?)
    } else {
        (StatusCode::BAD_REQUEST, Some((false, format!("{}. Correct the filter.", problems.join("; ")))), Vec::new())
    };
    let may_redeliver = user.role >= redeliver_role();
    let shown = EventsShown {
        partner: given("partner").unwrap_or(""),
        state: given("state").unwrap_or(""),
        older: (events.len() == EVENTS_PER_PAGE as usize).then(|| events.last().map(|e| e.id)).flatten(),
    };
    Ok(Page::events(status, user, &events, &shown, may_redeliver, state.clock.now(), notice))
}

/// Events a page of the events list shows.
const EVENTS_PER_PAGE: u32 = 50;

/// The filters the events page was asked for, and where its next page starts.
pub struct EventsShown<'a> {
    /// The partner filter as typed.
    pub partner: &'a str,
    /// The state filter as typed.
    pub state: &'a str,
    /// The last event shown, when there may be older ones.
    pub older: Option<i64>,
}

fn redeliver_role() -> Role {
    role_for(&Method::POST, "/admin/v1/events/{id}/redeliver").unwrap_or(Role::Admin)
}

/// A POSTed console form: its signed-in operator and fields, or the answer
/// that ends the request (to the login page; 403 without the session's
/// CSRF token).
async fn posted(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Result<(SignedIn, HashMap<String, String>), Response>, ApiError> {
    let Some(user) = signed_in(state, headers).await? else { return Ok(Err(to_login())) };
    let fields = form(body)?;
    if !csrf_ok(&user, &fields) {
        return Ok(Err(csrf_refused()));
    }
    Ok(Ok((user, fields)))
}

/// Why `user` may not `doing`: the role it needs; nothing was changed.
fn role_refusal(user: &SignedIn, doing: &str, needs: Role) -> String {
    format!(
        "Your role ({}) may not {doing}: this needs the {needs} role. Nothing was changed; ask an operator or an admin.",
        user.role
    )
}
