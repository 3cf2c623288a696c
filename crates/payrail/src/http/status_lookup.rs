//! What the two status lookups (SPEC §4 for transfers, §5 for bill
//! payments) share: parse → authenticate → look up (→ ask the upstream if
//! undecided) → render. Each endpoint's module says how its record is found
//! and rendered ([`StatusLookup`]).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::auth::{authenticate_looked_up, claimed_partner, precheck, Caller};
use super::body::{parse_json, reference_field, registration_field, LimitedBody, StatusRequest};
use super::error::ApiError;
use super::AppState;
use crate::domain::Partner;
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
    Ok(match record {
        Some(record) => {
            // Undecided records ask the upstream first, within the status budget.
            state.upstream.refresh(&*state.store, record).await.found()
        }
        None => R::not_found(),
    })
}
