//! Signing in and out of the console: sessions, their cookies, CSRF
//! tokens and the limit on failed logins (see the module above for the rules).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::{form, see_other, Page, SignedIn, CSRF_FIELD, LOGIN_COOKIE, SESSION_COOKIE};
use crate::domain::operator::{Actor, ConsoleSession, Email, NewAuditEntry};
use crate::domain::Timestamp;
use crate::http::body::LimitedBody;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::services::operators::{operator_may_act, verify_password};
use crate::store::ConsoleLogin;

/// Failed logins per account and per address, kept in memory (a restart
/// forgets them; the window is short).
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, Vec<Timestamp>>>,
}

impl LoginLimiter {
    /// Whether any of `keys` has `max` failures within `window` seconds of `now`.
    fn refused(&self, keys: &[String], now: Timestamp, max: u32, window: i64) -> bool {
        let Ok(mut failures) = self.failures.lock() else { return true };
        keys.iter().any(|key| {
            let list = failures.entry(key.clone()).or_default();
            list.retain(|at| now.unix() - at.unix() < window);
            max > 0 && list.len() >= max as usize
        })
    }

    /// Counts a failure against each of `keys`.
    fn failed(&self, keys: &[String], now: Timestamp) {
        if let Ok(mut failures) = self.failures.lock() {
            if failures.len() > 100_000 {
                failures.clear();
            }
            for key in keys {
                failures.entry(key.clone()).or_default().push(now);
            }
        }
    }
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// A session's CSRF token: derived from its id, never stored.
fn csrf_for(session_id: &str) -> String {
    hex(&sha256(format!("payrail-console-csrf\0{session_id}").as_bytes()))
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Whether the request came over TLS: `--console-secure-cookies`, or
/// `X-Forwarded-Proto: https` from a trusted proxy (`socket`: the address
/// the connection came from).
fn over_tls(state: &AppState, headers: &HeaderMap, socket: Option<IpAddr>) -> bool {
    let peer = socket;
    if state.settings.console.secure_cookies {
        return true;
    }
    let trusted = peer.is_some_and(|ip| state.settings.trusted_proxies.iter().any(|net| net.contains(&ip)));
    trusted
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> String {
    let mut cookie = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The signed-in operator of the request, if its session is live; a
/// session past its idle time is ended here. Marks the session used.
pub(super) async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<SignedIn>, ApiError> {
    let Some(id) = cookie(headers, SESSION_COOKIE).filter(|id| id.len() == 64) else { return Ok(None) };
    let id_hash = sha256(id.as_bytes());
    let Some((session, operator)) = state.store.console_session(&id_hash).await? else { return Ok(None) };
    let now = state.clock.now();
    if now.unix() - session.last_seen_at.unix() >= state.settings.console.idle_timeout_secs {
        state.store.end_console_session(&id_hash, None).await?;
        return Ok(None);
    }
    if !operator_may_act(&operator) {
        // Ended for good: enabling the account again does not bring it back.
        state.store.end_console_session(&id_hash, None).await?;
        return Ok(None);
    }
    state.store.touch_console_session(&id_hash, now).await?;
    let actor = Actor::Operator { id: operator.id, email: operator.email.clone(), role: operator.role };
    crate::http::request_log::record_operator(actor.name());
    Ok(Some(SignedIn {
        actor,
        email: operator.email.as_str().to_owned(),
        role: operator.role,
        csrf: csrf_for(id),
        id_hash,
    }))
}

/// A hash no password matches (of a random one), checked for unknown accounts.
fn unknown_account_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| crate::services::operators::hash_password(&random_hex()).unwrap_or_default())
}

/// What a page handler answers when nobody is signed in.
pub(super) fn to_login() -> Response {
    see_other("/console/login")
}

/// 403 for a form without its CSRF token (or with another session's).
pub(super) fn csrf_refused() -> Response {
    Page::message(
        StatusCode::FORBIDDEN,
        None,
        "This form has expired",
        "The form was not sent from this session of the console (its security token is missing or wrong), \
         so nothing was changed. Reload the page and try again.",
    )
}

pub(super) fn csrf_ok(user: &SignedIn, fields: &HashMap<String, String>) -> bool {
    fields.get(CSRF_FIELD).is_some_and(|sent| constant_time_eq(sent, &user.csrf))
}

pub(super) fn peer_address(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    peer.and_then(|p| crate::http::auth::client_address(p.ip(), forwarded, &state.settings.trusted_proxies))
}

pub(super) async fn login_form(
    State(state): State<Arc<AppState>>,
    connect: Result<ConnectInfo<SocketAddr>, axum::extract::rejection::ExtensionRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if signed_in(&state, &headers).await?.is_some() {
        return Ok(see_other("/console/"));
    }
    Ok(login_page(&state, &headers, connect.ok().map(|c| c.0.ip()), StatusCode::OK, None, ""))
}

/// The login page with a fresh double-submit token.
fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    socket: Option<IpAddr>,
    status: StatusCode,
    error: Option<&str>,
    email: &str,
) -> Response {
    let token = random_hex();
    let secure = over_tls(state, headers, socket);
    let mut response = Page::login(status, &token, error, email);
    if let Ok(value) = HeaderValue::from_str(&set_cookie(LOGIN_COOKIE, &token, Some(3600), secure)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    connect: Result<ConnectInfo<SocketAddr>, axum::extract::rejection::ExtensionRejection>,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let socket = connect.ok().map(|c| c.0);
    let peer = peer_address(&state, &headers, socket);
    let fields = form(&body)?;
    let sent = fields.get(CSRF_FIELD).map(String::as_str).unwrap_or("");
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !constant_time_eq(sent, expected) {
        return Ok(csrf_refused());
    }
    let email_text = fields.get("email").map(|e| e.trim()).unwrap_or("");
    let password = fields.get("password").map(String::as_str).unwrap_or("");
    let settings = state.settings.console;
    let now = state.clock.now();
    let mut keys = vec![format!("account:{}", email_text.to_ascii_lowercase())];
    if let Some(ip) = peer {
        keys.push(format!("address:{ip}"));
    }
    let refused = |message: &str| {
        login_page(&state, &headers, socket.map(|s| s.ip()), StatusCode::BAD_REQUEST, Some(message), email_text)
    };
    if state.login_failures.refused(&keys, now, settings.login_attempts, settings.login_window_secs) {
        let minutes = (settings.login_window_secs + 59) / 60;
        let message = format!(
            "Too many failed sign-ins for this account or from this address. Wait {minutes} minutes and try again, \
             or ask an admin to reset your password."
        );
        let mut page = refused(&message);
        *page.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return Ok(page);
    }
    if email_text.is_empty() || password.is_empty() {
        return Ok(refused("Enter your email and password."));
    }
    let operator = match Email::parse(email_text) {
        Ok(email) => state.store.find_operator(&email).await?,
        Err(_) => None,
    };
    let known = operator.is_some();
    let hash = operator.as_ref().map(|o| o.password_hash.clone());
    let password_owned = password.to_owned();
    // Argon2 takes tens of milliseconds: off the async threads. An unknown
    // account is checked against a hash of a random password, so that it
    // takes as long as a known one and answers the same.
    let verified = tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| unknown_account_hash().to_owned());
        verify_password(&password_owned, &hash)
    })
    .await
    .unwrap_or(false)
        && known;
    let Some(operator) = operator.filter(|o| verified && operator_may_act(o)) else {
        state.login_failures.failed(&keys, now);
        return Ok(refused(
            "That email and password do not match an active operator. Check them and try again; \
             a disabled account cannot sign in.",
        ));
    };
    let id = random_hex();
    let session =
        ConsoleSession { id_hash: sha256(id.as_bytes()), operator_id: operator.id, created_at: now, last_seen_at: now };
    let actor = Actor::Operator { id: operator.id, email: operator.email.clone(), role: operator.role };
    let mut audit = NewAuditEntry::new(now, &actor, "console.login", format!("operator:{}", operator.email));
    if let Some(ip) = peer {
        audit = audit.changed(&serde_json::Value::Null, &serde_json::json!({ "address": ip.to_string() }));
    }
    let stale_before = now.plus_secs(-settings.idle_timeout_secs);
    state.store.insert_console_session(ConsoleLogin { session, stale_before, audit }).await?;
    let secure = over_tls(&state, &headers, socket.map(|s| s.ip()));
    let mut response = see_other("/console/");
    for cookie in [set_cookie(SESSION_COOKIE, &id, None, secure), set_cookie(LOGIN_COOKIE, "", Some(0), secure)] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

pub(super) async fn logout(
    State(state): State<Arc<AppState>>,
    connect: Result<ConnectInfo<SocketAddr>, axum::extract::rejection::ExtensionRejection>,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    if !csrf_ok(&user, &form(&body)?) {
        return Ok(csrf_refused());
    }
    let audit =
        NewAuditEntry::new(state.clock.now(), &user.actor, "console.logout", format!("operator:{}", user.email));
    state.store.end_console_session(&user.id_hash, Some(audit)).await?;
    let mut response = see_other("/console/login");
    let secure = over_tls(&state, &headers, connect.ok().map(|c| c.0.ip()));
    if let Ok(value) = HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", Some(0), secure)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}
