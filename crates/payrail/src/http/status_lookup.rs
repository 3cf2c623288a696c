//! What the two status lookups (SPEC §4 for transfers, §5 for bill
//! payments) share: parse → authenticate → look up (→ ask the upstream if
//! undecided) → render. Each endpoint's module says how its record is found
//! and rendered ([`StatusLookup`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::auth::{authenticate_looked_up, claimed_partner, precheck, Caller};
use super::body::{parse_json, reference_field, registration_field, LimitedBody, StatusRequest};
use super::error::ApiError;
use super::AppState;
use crate::domain::{Partner, RegistrationId};
use crate::services::upstream::sync::Followed;
use crate::store::lookup::{self, Precheck, ReqidOutcome};
use crate::store::{Store, StoreError};

/// The store's answer to a lookup: the partner (`None`: no such partner),
/// its record with the reference if it has one, and what became of the
/// token `reqid` offered with the lookup (see [`crate::store::lookup`]).
pub type Found<R> = Option<lookup::StatusLookup<R>>;

/// A lookup's round trip to the store, as the store's own future (no box of
/// its own on the hot path).
pub type Lookup<'a, R> = Pin<Box<dyn Future<Output = Result<Found<R>, StoreError>> + Send + 'a>>;

/// One status endpoint's record kind: how it is found and how it is answered.
pub trait StatusLookup: Followed {
    /// The request field that carries the partner's reference, as the
    /// endpoint's error messages name it.
    const REFERENCE_FIELD: &'static str;

    /// The partner and its record with `reference`, in one round trip,
    /// recording the token `reqid` that `precheck` returns where the engine can.
    fn lookup<'a>(
        store: &'a dyn Store,
        partner: RegistrationId,
        reference: &'a str,
        precheck: Precheck<'a>,
    ) -> Lookup<'a, Self>;

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
    let found = R::lookup(&*state.store, claimed_partner(&registration)?, reference.as_str(), &check).await?;
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
