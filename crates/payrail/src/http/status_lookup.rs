//! What the two status lookups (SPEC §4 for transfers, §5 for bill
//! payments) share: parse → authenticate → look up (→ ask the upstream if
//! undecided) → render. Each endpoint's module says how its record is found
//! and rendered ([`StatusLookup`]).
//!
//! `"history": true` in the request (issue 15, opt in) appends the
//! record's status history after the documented fields:
//! `"history":[{"status":"3","at":"…","source":"partner"},…]`, oldest
//! first, each state in the endpoint's own AOPay codes. Without it the
//! answer is byte for byte what it always was.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::auth::{authenticate_looked_up, claimed_partner, precheck, Caller};
use super::body::{history_flag, parse_json, reference_field, registration_field, LimitedBody, StatusRequest};
use super::error::{ApiError, JSON_UTF8};
use super::AppState;
use crate::domain::{HistoryEntry, Partner};
use crate::services::upstream::sync::Followed;
use crate::store::lookup::ReqidOutcome;

/// One status endpoint's record kind: how it is answered. It is found
/// through [`crate::store::transactions::StoredKind::lookup_in`], partner and record in one round trip.
pub trait StatusLookup: Followed {
    /// The request field that carries the partner's reference, as the
    /// endpoint's error messages name it.
    const REFERENCE_FIELD: &'static str;

    /// The found body.
    fn found(&self) -> Response;

    /// The body for a reference the partner does not have.
    fn not_found() -> Response;

    /// The partner's reference.
    fn reference_text(&self) -> &str;

    /// A stored state's AOPay code, as this endpoint's `txn_status` /
    /// `status` shows it.
    fn wire_code(state: &str) -> Option<String>;
}

/// The status lookup for records of kind `R`.
pub async fn status<R: StatusLookup>(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request: StatusRequest<'_> = parse_json(&body)?;
    request.unambiguous()?;
    let registration = registration_field(request.registration)?;
    let reference = reference_field(request.reference, R::REFERENCE_FIELD)?;
    let with_history = history_flag(request.history)?;
    // Partner and record come in one round trip, with the token's `reqid`
    // when the request passes every other check against the partner as last
    // read (see `store::lookup`); nothing of the record is used unless
    // authentication passes.
    let now = state.clock.now();
    let check = |partner: &Partner| precheck(&state, &caller, partner, now);
    let found = R::lookup_in(&*state.store, claimed_partner(&registration)?, reference.as_str(), &check).await?;
    let (partner, record, reqid) = match found {
        Some(found) => (Some(found.partner), found.record, found.reqid),
        None => (None, None, ReqidOutcome::NotRecorded),
    };
    authenticate_looked_up(&state, &caller, partner.as_ref(), reqid).await?;
    state.admit(partner.as_ref().map(|p| p.registration_id))?;
    let Some(record) = record else { return Ok(R::not_found()) };
    // Undecided records ask the upstream first, within the status budget.
    let record = state.upstream.refresh(&*state.store, record).await;
    if !with_history {
        return Ok(record.found());
    }
    let history = R::with_history_in(&*state.store, record.id()).await?.map(|(_, h)| h).unwrap_or_default();
    with_history_appended::<R>(record.found(), &history).await
}

/// One history row as a partner sees it.
#[derive(Serialize)]
struct PartnerHistory<'a> {
    status: String,
    at: String,
    source: &'a str,
}

/// Who made a change, as a partner may see it: an operator is `operator`,
/// never their address.
fn partner_source(source: &str) -> &str {
    if source.starts_with("operator:") {
        "operator"
    } else {
        source
    }
}

/// `answer` with `"history":[…]` after its last field.
async fn with_history_appended<R: StatusLookup>(
    answer: Response,
    history: &[HistoryEntry],
) -> Result<Response, ApiError> {
    let rows: Vec<PartnerHistory<'_>> = history
        .iter()
        .map(|h| PartnerHistory {
            status: R::wire_code(&h.to_status).unwrap_or_else(|| h.to_status.clone()),
            at: h.at.to_ist_string(),
            source: partner_source(&h.source),
        })
        .collect();
    let status = answer.status();
    let mut body = body_bytes(answer).await?;
    if body.last() != Some(&b'}') {
        return Err(ApiError::Internal(anyhow::anyhow!("a status answer is not a JSON object")));
    }
    body.pop();
    body.extend_from_slice(b",\"history\":");
    serde_json::to_writer(&mut body, &rows).map_err(|e| ApiError::Internal(e.into()))?;
    body.push(b'}');
    Ok(json_bytes(status, body))
}

/// The bytes of an answer's body.
pub(super) async fn body_bytes(answer: Response) -> Result<Vec<u8>, ApiError> {
    let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX).await.map_err(|e| ApiError::Internal(e.into()))?;
    Ok(bytes.to_vec())
}

/// A JSON answer from bytes already written.
pub(super) fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    use axum::response::IntoResponse as _;
    (status, [(axum::http::header::CONTENT_TYPE, JSON_UTF8)], body).into_response()
}
