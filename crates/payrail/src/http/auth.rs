//! Partner authentication (SPEC §3): who is calling, from where, with what.
//! Every failure but the token's own defects is the same 401 code 11, so a
//! caller learns nothing about which check failed.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::error::ApiError;
use super::request_log::record_partner;
use super::AppState;
use crate::domain::partner::canonical;
use crate::domain::token::{verify_token, TokenError, TokenKey};
use crate::domain::{Partner, PartnerStatus, RegistrationId, Timestamp};
use crate::store::lookup::{ReqidClaim, ReqidOutcome};
use crate::store::SeenReqid;

/// How far a token's `timestamp` may be from the server clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// How long a `reqid` is remembered.
pub const REPLAY_WINDOW_SECS: i64 = 600;

/// What the edge knows of a caller before looking at the body.
#[derive(Debug, Clone)]
pub struct Caller {
    peer: Option<IpAddr>,
    forwarded_for: Option<String>,
    token: Option<String>,
    /// More than one `Token` header: which one counts is ambiguous, so none does.
    several_tokens: bool,
    authorised_key: Option<String>,
}

// Named once: a name given as text is parsed again on every lookup.
pub(super) const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const TOKEN: HeaderName = HeaderName::from_static("token");
const AUTHORISED_KEY: HeaderName = HeaderName::from_static("authorisedkey");

fn text(value: Option<&HeaderValue>) -> Option<String> {
    value.and_then(|v| v.to_str().ok()).map(str::to_owned)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut tokens = parts.headers.get_all(&TOKEN).into_iter();
        Ok(Caller {
            peer: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| canonical(c.0.ip())),
            forwarded_for: text(parts.headers.get(&FORWARDED_FOR)),
            token: text(tokens.next()),
            several_tokens: tokens.next().is_some(),
            authorised_key: text(parts.headers.get(&AUTHORISED_KEY)),
        })
    }
}

impl Caller {
    /// The caller's address: the socket peer, or, when the peer is a trusted
    /// proxy, the right-most untrusted address of `X-Forwarded-For`.
    /// `None` when it cannot be known (no peer, or a garbled header).
    pub fn address(&self, trusted: &[IpNet]) -> Option<IpAddr> {
        client_address(self.peer?, self.forwarded_for.as_deref(), trusted)
    }
}

/// The client's address: `peer`, or, when `peer` is a trusted proxy, the
/// right-most untrusted address of `X-Forwarded-For`. `None` when the
/// header is garbled.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(chain) = forwarded_for else { return Some(peer) };
    let mut last = peer;
    for hop in chain.rsplit(',').map(str::trim) {
        let ip = canonical(hop.parse::<IpAddr>().ok()?);
        if !is_trusted(&ip) {
            return Some(ip);
        }
        last = ip;
    }
    Some(last)
}

/// The partner a body's `RegistrationID` names; one that cannot exist fails
/// authentication like an unknown one.
pub fn claimed_partner(registration: &str) -> Result<RegistrationId, ApiError> {
    RegistrationId::parse(registration).map_err(|_| ApiError::AuthenticationFailed)
}

/// Authenticates `caller` as `partner` (found by the body's `RegistrationID`),
/// or refuses. `None`: no such partner.
pub async fn authenticate(state: &AppState, caller: &Caller, partner: Option<&Partner>) -> Result<(), ApiError> {
    let partner = partner.ok_or(ApiError::AuthenticationFailed)?;
    let now = state.clock.now();
    if let Some(claim) = check_all_but_reqid(state, caller, partner, now)? {
        let fresh = state
            .store
            .remember_reqid(SeenReqid {
                partner: partner.registration_id,
                reqid: &claim.reqid,
                now,
                cutoff: claim.cutoff,
            })
            .await?;
        fresh.then_some(()).ok_or(ApiError::InvalidToken)?;
    }
    record_partner(partner.registration_id);
    Ok(())
}

/// Authenticates `caller` after a status lookup that was offered the
/// [`precheck`]: the lookup's own verdict on the token `reqid` when it
/// recorded it, else [`authenticate`] against the partner found.
pub async fn authenticate_looked_up(
    state: &AppState,
    caller: &Caller,
    partner: Option<&Partner>,
    reqid: ReqidOutcome,
) -> Result<(), ApiError> {
    match reqid {
        ReqidOutcome::Fresh => {
            if let Some(partner) = partner {
                record_partner(partner.registration_id);
            }
            Ok(())
        }
        ReqidOutcome::Replay => Err(ApiError::InvalidToken),
        ReqidOutcome::NotRecorded => authenticate(state, caller, partner).await,
    }
}

/// Every check of [`authenticate`] but the `reqid`'s, against `partner` as
/// the store last read it; the token's `reqid` to record if the request
/// carries a token and passes them all (see [`crate::store::lookup`]).
pub fn precheck(state: &AppState, caller: &Caller, partner: &Partner, now: Timestamp) -> Option<ReqidClaim> {
    check_all_but_reqid(state, caller, partner, now).ok().flatten()
}

/// Every check but the `reqid`'s: `Some` (the `reqid` still to record) when
/// a token was checked, `None` when the partner may call without one.
fn check_all_but_reqid(
    state: &AppState,
    caller: &Caller,
    partner: &Partner,
    now: Timestamp,
) -> Result<Option<ReqidClaim>, ApiError> {
    if partner.status != PartnerStatus::Active {
        return Err(ApiError::AuthenticationFailed);
    }
    let allowed = caller.address(&state.settings.trusted_proxies).is_some_and(|ip| partner.allowlist.allows(ip));
    if !allowed {
        return Err(ApiError::AuthenticationFailed);
    }
    check_authorised_key(partner, caller.authorised_key.as_deref())?;
    if caller.several_tokens {
        return Err(ApiError::InvalidToken);
    }
    match &caller.token {
        Some(token) => check_token(state, partner, token, now).map(Some),
        None if partner.require_token => Err(ApiError::AuthenticationFailed),
        None => Ok(None),
    }
}

fn check_authorised_key(partner: &Partner, sent: Option<&str>) -> Result<(), ApiError> {
    let Some(expected) = &partner.authorised_key_hash else { return Ok(()) };
    let sent = sent.ok_or(ApiError::AuthenticationFailed)?;
    let matches: bool = Sha256::digest(sent.as_bytes()).as_slice().ct_eq(expected).into();
    matches.then_some(()).ok_or(ApiError::AuthenticationFailed)
}

/// Verifies the token against the partner's secrets; its `reqid` to record.
fn check_token(state: &AppState, partner: &Partner, token: &str, now: Timestamp) -> Result<ReqidClaim, ApiError> {
    let secrets = partner_secrets(state, partner, now)?;
    let claims = verify_token(token, &secrets, now, MAX_CLOCK_SKEW_SECS).map_err(|e| match e {
        TokenError::SignatureEncoding => ApiError::SignatureEncoding,
        _ => ApiError::InvalidToken,
    })?;
    if RegistrationId::parse(&claims.partner_id).ok() != Some(partner.registration_id) {
        return Err(ApiError::AuthenticationFailed);
    }
    let cutoff = Timestamp::from_unix(now.unix() - REPLAY_WINDOW_SECS);
    Ok(ReqidClaim { reqid: claims.reqid, now, cutoff })
}

/// The partner's current secret, and the previous one while its overlap lasts.
fn partner_secrets(state: &AppState, partner: &Partner, now: Timestamp) -> Result<Vec<TokenKey>, ApiError> {
    let open = |sealed| state.opened_secret(partner.registration_id, sealed);
    let mut secrets = vec![open(&partner.secret)?];
    if let Some((previous, until)) = &partner.previous_secret {
        if now <= *until {
            secrets.push(open(previous)?);
        }
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(peer: &str, xff: Option<&str>) -> Caller {
        Caller {
            peer: peer.parse().ok(),
            forwarded_for: xff.map(str::to_owned),
            token: None,
            several_tokens: false,
            authorised_key: None,
        }
    }

    fn nets(items: &[&str]) -> Vec<IpNet> {
        items.iter().filter_map(|s| s.parse().ok()).collect()
    }

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
        assert_eq!(caller("203.0.113.5", Some("127.0.0.1")).address(&nets(&["10.0.0.0/8"])), ip("203.0.113.5"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_caller() {
        let trusted = nets(&["10.0.0.0/8"]);
        let c = caller("10.0.0.2", Some("198.51.100.7, 203.0.113.9, 10.0.0.3"));
        assert_eq!(c.address(&trusted), ip("203.0.113.9"));
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_itself_the_caller() {
        assert_eq!(caller("10.0.0.2", None).address(&nets(&["10.0.0.0/8"])), ip("10.0.0.2"));
    }

    #[test]
    fn a_garbled_header_from_a_trusted_proxy_means_no_address() {
        assert_eq!(caller("10.0.0.2", Some("not-an-ip")).address(&nets(&["10.0.0.0/8"])), None);
    }
}
