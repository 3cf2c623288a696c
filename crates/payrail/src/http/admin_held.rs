//! Held work over HTTP (`services::held`): the transactions waiting for an
//! operator, and resuming or resolving one. Every action needs a non-blank
//! `reason`, lands in the transaction's history with the operator as its
//! source, and in the audit log; one on a transaction that is not held is
//! refused (409) with nothing written.
//!
//! | method | path | body |
//! |---|---|---|
//! | GET | `/admin/v1/held` | |
//! | POST | `/admin/v1/held/{kind}/{id}/resume` | `reason` |
//! | POST | `/admin/v1/held/{kind}/{id}/resolve-success` | `reason`, `utr` (transfers) [, `operator_id` (bill payments)] |
//! | POST | `/admin/v1/held/{kind}/{id}/resolve-failed` | `reason` |

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::admin::{history_view, HistoryView, Operator};
use super::admin_audit::{change_source, entry, record};
use super::body::{parse_json, LimitedBody};
use super::error::{json_response, ApiError};
use super::extract::Path;
use super::AppState;
use crate::domain::operator::Actor;
use crate::domain::text::check_text;
use crate::domain::{HistoryEntry, TxnKind};
use crate::services::held::{self, Held, HeldAction, HeldError};

/// The held-work routes (table above).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/held", get(list))
        .route("/admin/v1/held/{kind}/{id}/resume", post(|o, s, p, b| act(o, s, p, b, Verb::Resume)))
        .route("/admin/v1/held/{kind}/{id}/resolve-success", post(|o, s, p, b| act(o, s, p, b, Verb::Success)))
        .route("/admin/v1/held/{kind}/{id}/resolve-failed", post(|o, s, p, b| act(o, s, p, b, Verb::Failed)))
}

fn bad(message: impl std::fmt::Display) -> ApiError {
    ApiError::Validation(message.to_string())
}

/// A held transaction as operators see it.
#[derive(Serialize, utoipa::ToSchema)]
struct HeldView {
    kind: &'static str,
    id: i64,
    reference_id: String,
    registration_id: String,
    amount: String,
    status: &'static str,
    since: String,
    reason: String,
    source: String,
    polls: Option<u32>,
}

impl From<&Held> for HeldView {
    fn from(h: &Held) -> Self {
        HeldView {
            kind: h.kind.as_str(),
            id: h.id,
            reference_id: h.reference.clone(),
            registration_id: h.partner.to_string(),
            amount: h.amount.to_decimal_string(),
            status: h.status,
            since: h.since.to_ist_string(),
            reason: h.reason.clone(),
            source: h.source.clone(),
            polls: h.polls,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct HeldList {
    held: Vec<HeldView>,
}

#[tracing::instrument(name = "list_held", skip_all)]
async fn list(_: Operator, State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let held = held::list(&*state.store).await?;
    Ok(json_response(StatusCode::OK, &HeldList { held: held.iter().map(HeldView::from).collect() }))
}

#[derive(Clone, Copy)]
enum Verb {
    Resume,
    Success,
    Failed,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// Why, in words (required; at most 500 characters).
    #[schema(min_length = 1, max_length = 500)]
    reason: Option<String>,
    /// A transfer resolved as paid needs it.
    #[schema(min_length = 1, max_length = 64)]
    utr: Option<String>,
    #[schema(min_length = 1, max_length = 64)]
    operator_id: Option<String>,
}

/// 1 to `max` characters, not blank, without control or bidirectional-override characters.
fn text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(bad(format!("{field}: must be 1 to {max} characters, not blank")));
    }
    check_text(&value).map_err(|e| bad(format!("{field}: {e}")))?;
    Ok(Some(value))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Acted<'a> {
    kind: &'static str,
    id: i64,
    action: &'a str,
    status: String,
    history: Vec<HistoryView<'a>>,
}

#[tracing::instrument(name = "act_on_held", skip_all)]
async fn act(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    Path((kind, id)): Path<(String, String)>,
    LimitedBody(body): LimitedBody,
    verb: Verb,
) -> Result<Response, ApiError> {
    let kind = TxnKind::parse(&kind).ok_or_else(|| bad("kind: must be dmt or bbps"))?;
    let id: i64 = id.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad("id: must be an ackno or txnid"))?;
    let request: ActionBody = parse_json(&body)?;
    let reason = text("reason", request.reason, 500)?.ok_or_else(|| bad("reason: is required (why, in words)"))?;
    let utr = text("utr", request.utr, 64)?;
    let operator_ref = text("operator_id", request.operator_id, 64)?;
    let action = match verb {
        Verb::Resume => HeldAction::Resume,
        Verb::Success => {
            if kind == TxnKind::Dmt && utr.is_none() {
                return Err(bad("utr: is required to resolve a transfer as paid"));
            }
            HeldAction::ResolveSuccess { utr, operator_ref }
        }
        Verb::Failed => HeldAction::ResolveFailed,
    };
    let (status, history) = perform(&state, &actor, kind, id, &action, &reason).await.map_err(|e| match e {
        HeldError::NotFound(..) => ApiError::NotFound(e.to_string()),
        HeldError::NotHeld(..) | HeldError::Refused(_) => ApiError::Conflict(e.to_string()),
        HeldError::Store(e) => e.into(),
    })?;
    let acted = Acted { kind: kind.as_str(), id, action: action.audit_name(), status, history: history_view(&history) };
    Ok(json_response(StatusCode::OK, &acted))
}

/// Takes `action` on held transaction `kind`/`id` for `actor` and records it
/// in the audit log (the operator API and the console both come here):
/// the transaction's state and history after it.
pub(crate) async fn perform(
    state: &AppState,
    actor: &Actor,
    kind: TxnKind,
    id: i64,
    action: &HeldAction,
    reason: &str,
) -> Result<(String, Vec<HistoryEntry>), HeldError> {
    let source = change_source(actor);
    let before = held::act(&*state.store, &*state.clock, state.metrics(), (kind, id), action, source, reason).await?;
    let gone = || HeldError::NotFound(kind.as_str(), id);
    let (status, history) = match kind {
        TxnKind::Dmt => {
            let (t, h) = state.store.dmt_with_history(id).await?.ok_or_else(gone)?;
            (t.status.name().to_owned(), h)
        }
        TxnKind::Bbps => {
            let (p, h) = state.store.bill_with_history(id).await?.ok_or_else(gone)?;
            (p.status.name().to_owned(), h)
        }
    };
    let change = (
        serde_json::json!({ "status": before.status, "held_since": before.since.to_ist_string(), "hold_reason": before.reason }),
        serde_json::json!({ "status": status, "reason": reason }),
    );
    let target = format!("{}:{id}", kind.as_str());
    record(state, entry(state, actor, action.audit_name(), target, Some(change))).await;
    Ok((status, history))
}

/// This module's bodies, for the OpenAPI document ([`super::openapi`]).
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; HeldList, ActionBody, Acted);
}
