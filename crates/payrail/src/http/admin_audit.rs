//! The audit log over HTTP, and how operator routes append to it.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/admin/v1/audit` | newest first; query `operator`, `target`, `from`, `to` (India time), `cursor`, `limit` |

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::admin_auth::Operator;
use super::error::{json_response, ApiError};
use super::extract::Query;
use super::AppState;
use crate::domain::operator::{Actor, AuditEntry, AuditFilter, NewAuditEntry};
use crate::domain::{ChangeSource, Timestamp};

/// The audit route.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/admin/v1/audit", get(list_audit))
}

/// How many entries a page has unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

/// What a transaction's history row names as its source for `actor`: the
/// bootstrap token (and the shell) keep the old spelling `admin`, an
/// operator is `operator:<email>`.
pub fn change_source(actor: &Actor) -> ChangeSource {
    match actor {
        Actor::Bootstrap | Actor::Cli => ChangeSource::Admin,
        Actor::Operator { email, .. } => ChangeSource::operator(email.as_str()),
    }
}

/// Appends what `actor` did to the audit log, after the action itself
/// committed (a transition's entry is written by the store in the change's
/// own transaction instead). Should the append fail, the action stands and
/// the failure is logged loudly.
pub async fn record(state: &AppState, entry: NewAuditEntry) {
    let (action, target) = (entry.action.clone(), entry.target.clone());
    if let Err(e) = state.store.append_audit(entry).await {
        tracing::error!(error = %e, action, target, "failed to append to the audit log");
    }
}

/// An entry by `actor` now, with the target before and after where given.
pub fn entry(
    state: &AppState,
    actor: &Actor,
    action: &str,
    target: String,
    change: Option<(serde_json::Value, serde_json::Value)>,
) -> NewAuditEntry {
    let entry = NewAuditEntry::new(state.clock.now(), actor, action, target);
    match change {
        Some((before, after)) => entry.changed(&before, &after),
        None => entry,
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    #[param(min_length = 1)]
    operator: Option<String>,
    #[param(min_length = 1)]
    target: Option<String>,
    #[param(min_length = 1)]
    from: Option<String>,
    #[param(min_length = 1)]
    to: Option<String>,
    #[param(min_length = 1)]
    cursor: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (its midnight), India time.
pub fn ist_time(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_ist(text)
        .or_else(|_| Timestamp::parse_ist_date(text))
        .map_err(|_| ApiError::Validation(format!("{field} must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS (India time)")))
}

fn audit_filter(query: AuditQuery) -> Result<AuditFilter, ApiError> {
    let bad = |m: &str| ApiError::Validation(m.into());
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => {
            text.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| bad("limit must be 1 to 500"))?
        }
    };
    let before = match query.cursor.as_deref() {
        None => None,
        Some(text) => {
            Some(text.parse().ok().filter(|n: &i64| *n > 0).ok_or_else(|| bad("cursor is not one this API gave"))?)
        }
    };
    let non_empty = |field: &str, value: Option<String>| match value {
        Some(v) if v.is_empty() || v.len() > 300 => {
            Err(ApiError::Validation(format!("{field} must be 1 to 300 characters")))
        }
        other => Ok(other),
    };
    Ok(AuditFilter {
        actor: non_empty("operator", query.operator)?.map(|o| o.to_ascii_lowercase()),
        target: non_empty("target", query.target)?,
        from: query.from.map(|t| ist_time("from", &t)).transpose()?,
        to: query.to.map(|t| ist_time("to", &t)).transpose()?,
        before,
        limit,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
struct AuditView {
    id: i64,
    at: String,
    operator: String,
    action: String,
    target: String,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        let json =
            |text: Option<String>| text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)));
        AuditView {
            id: e.id,
            at: e.entry.at.to_ist_string(),
            operator: e.entry.actor,
            action: e.entry.action,
            target: e.entry.target,
            before: json(e.entry.before),
            after: json(e.entry.after),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct AuditPage {
    entries: Vec<AuditView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last.
    next_cursor: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn list_audit(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let filter = audit_filter(query)?;
    let entries = state.store.list_audit(&filter).await?;
    let full = entries.len() as i64 == filter.limit;
    let next_cursor = entries.last().filter(|_| full).map(|e| e.id.to_string());
    let entries = entries.into_iter().map(AuditView::from).collect();
    Ok(json_response(StatusCode::OK, &AuditPage { entries, next_cursor }))
}

/// This module's bodies, for the OpenAPI document ([`super::openapi`]).
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; AuditPage);
}

/// The audit log's query parameters, for the OpenAPI document.
pub(crate) fn audit_params() -> Vec<utoipa::openapi::path::Parameter> {
    <AuditQuery as utoipa::IntoParams>::into_params(|| None)
}
