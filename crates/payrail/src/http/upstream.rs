//! The upstream's side of payrail: its status callbacks, and the sandbox's
//! hand control.
//!
//! | method | path | who |
//! |---|---|---|
//! | POST | `/upstream/v1/callback` | the upstream (Paysprint's body, authenticated by its signed `param_inc`; see `services::upstream::paysprint`) |
//! | POST | `/sandbox/v1/advance` | an operator (bearer token), only with `--provider sandbox` |
//!
//! A callback is a trigger: payrail asks the upstream for the transaction's status and applies that answer.
//! It is answered `{"status":200,"message":"Transaction completed successfully"}` once the query's answer is
//! applied (changed or not), and 200 `Duplicate callback: already received` for the same signed `param`
//! again; 401 when it does not verify (the signed copy of its `param`, its `Token` header if it has one) or
//! its token's `reqid` was seen before, 400 when it cannot be read, 404 for a reference payrail does not
//! have, 503 when the status query did not answer (send it again).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::admin::Operator;
use super::body::{parse_json, LimitedBody};
use super::error::{json_response, ApiError};
use super::AppState;
use crate::domain::upstream::{BillUpstream, DmtUpstream, UpstreamRef};
use crate::domain::{ChangeSource, TxnKind};
use crate::services::upstream::provider::{CallbackError, UpstreamReport};
use crate::services::upstream::sync::{CallbackRefusal, Synced};

#[derive(Serialize, utoipa::ToSchema)]
struct CallbackAnswer<'a> {
    status: u16,
    message: &'a str,
}

fn answer(status: StatusCode, message: &str) -> Response {
    json_response(status, &CallbackAnswer { status: status.as_u16(), message })
}

/// `POST /upstream/v1/callback`.
#[tracing::instrument(skip_all)]
pub async fn callback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let token = headers.get("token").and_then(|v| v.to_str().ok());
    Ok(match state.upstream.accept_callback(&*state.store, token, &body).await {
        Ok(synced) => {
            log_synced(&synced);
            answer(StatusCode::OK, "Transaction completed successfully")
        }
        Err(CallbackRefusal::Callback(CallbackError::NotAccepted)) => {
            answer(StatusCode::NOT_FOUND, "This payrail does not take upstream callbacks")
        }
        Err(CallbackRefusal::Callback(CallbackError::Unauthenticated(why))) => {
            tracing::warn!(%why, "upstream callback refused");
            answer(StatusCode::UNAUTHORIZED, "Authentication failed")
        }
        Err(CallbackRefusal::Callback(CallbackError::Malformed(why))) => answer(StatusCode::BAD_REQUEST, &why),
        Err(CallbackRefusal::UnknownReference(reference)) => {
            answer(StatusCode::NOT_FOUND, &format!("Unknown referenceid {reference}"))
        }
        Err(CallbackRefusal::Duplicate) => answer(StatusCode::OK, "Duplicate callback: already received"),
        Err(CallbackRefusal::NotConfirmed(why)) => {
            tracing::warn!(%why, "upstream callback not confirmed by a status query");
            answer(StatusCode::SERVICE_UNAVAILABLE, "Could not confirm with a status query; send it again")
        }
        Err(CallbackRefusal::Store(e)) => return Err(e.into()),
    })
}

fn log_synced(synced: &Synced) {
    match synced {
        Synced::Dmt(t) => tracing::info!(ackno = t.ackno, status = t.status.name(), "upstream callback applied"),
        Synced::Bill(p) => tracing::info!(txnid = p.txnid, status = p.status.name(), "upstream callback applied"),
    }
}

/// What `/sandbox/v1/advance` takes.
#[derive(Deserialize, utoipa::ToSchema)]
struct Advance {
    kind: String,
    id: i64,
    to: String,
    utr: Option<String>,
    operator_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Advanced {
    kind: &'static str,
    id: i64,
    status: &'static str,
    message: &'static str,
}

/// `POST /sandbox/v1/advance`: from now on the sandbox says `to` about the
/// transaction, and payrail applies it at once, as from an upstream callback.
#[tracing::instrument(skip_all)]
pub async fn advance(
    _: Operator,
    State(state): State<Arc<AppState>>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let Some(sandbox) = state.sandbox.clone() else {
        return Err(ApiError::NotFound("the sandbox is not enabled (serve --provider sandbox)".into()));
    };
    let request: Advance = parse_json(&body)?;
    let kind = TxnKind::parse(&request.kind).ok_or_else(|| ApiError::Validation("kind must be dmt or bbps".into()))?;
    let report = report(kind, &request)?;
    let reference = UpstreamRef { kind, id: request.id };
    // Only a transaction handed to the sandbox has a reference there.
    if let Some(tail) = state.store.upstream_ref_of(kind, request.id).await? {
        sandbox.set_override(&format!("{}{tail}", state.upstream.settings.ref_prefix), report.clone());
    }
    let synced = state.upstream.apply_report(&*state.store, reference, &report, ChangeSource::Sandbox).await?;
    let (status, message) = match synced {
        Some(Synced::Dmt(t)) => (t.status.name(), t.status.message()),
        Some(Synced::Bill(p)) => (p.status.name(), p.status.message()),
        None => return Err(ApiError::NotFound(format!("no {} transaction {}", kind.as_str(), request.id))),
    };
    Ok(json_response(StatusCode::OK, &Advanced { kind: kind.as_str(), id: request.id, status, message }))
}

fn report(kind: TxnKind, request: &Advance) -> Result<UpstreamReport, ApiError> {
    let bad = |allowed: &str| ApiError::Validation(format!("to must be one of {allowed}"));
    Ok(match kind {
        TxnKind::Dmt => UpstreamReport::Dmt(match request.to.as_str() {
            "in_process" => DmtUpstream::InProcess,
            "sent_to_bank" => DmtUpstream::SentToBank,
            "success" => DmtUpstream::Success { utr: request.utr.clone() },
            "on_hold" => DmtUpstream::OnHold,
            "failed" => DmtUpstream::Failed,
            _ => return Err(bad("in_process, sent_to_bank, success, on_hold, failed")),
        }),
        TxnKind::Bbps => UpstreamReport::Bill(match request.to.as_str() {
            "pending" => BillUpstream::Pending,
            "success" => BillUpstream::Success { operator_ref: request.operator_id.clone() },
            "failed" => BillUpstream::Failed,
            _ => return Err(bad("pending, success, failed")),
        }),
    })
}

/// This module's bodies, for the OpenAPI document ([`super::openapi`]).
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; CallbackAnswer, Advance, Advanced);
}
