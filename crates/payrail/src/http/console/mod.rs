//! The web console at `/console/`: server-rendered HTML (maud templates,
//! compiled into the binary with the CSS), for operators signed in with
//! their email and password.
//!
//! - A session is a random 32-byte id in the cookie `payrail_console`
//!   (`HttpOnly; SameSite=Strict; Path=/console`, `Secure` behind TLS);
//!   the store keeps only its SHA-256 (`console_sessions`). Every request
//!   reads the session and its operator afresh: a session ends after
//!   [`ConsoleSettings::idle_timeout_secs`] without requests, at logout,
//!   and at once when its operator is disabled
//!   ([`operator_may_act`]).
//! - Every form carries a CSRF token, checked in constant time on every
//!   POST: a session's is derived from its id (SHA-256 of a label and the
//!   id, so it is never stored and cannot be guessed without the cookie);
//!   the login form's is a double-submit value in a short cookie.
//! - Failed logins are counted per account and per client address
//!   ([`LoginLimiter`]): after [`ConsoleSettings::login_attempts`] in
//!   [`ConsoleSettings::login_window_secs`] further logins are refused
//!   without checking the password.
//! - Every action goes through the same services and role table
//!   ([`ROUTE_ROLES`](super::admin_auth::ROUTE_ROLES)) as the operator API
//!   and is audited under the operator's email.
//! - Every answer carries a strict `Content-Security-Policy` (no inline
//!   script or style), `X-Frame-Options: DENY` and `Referrer-Policy`.

mod format;
mod pages;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::Router;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::admin_audit::change_source;
use super::admin_auth::role_for;
use super::body::LimitedBody;
use super::error::ApiError;
use super::extract::Path;
use super::AppState;
use crate::domain::bbps::BillChange;
use crate::domain::dmt::DmtChange;
use crate::domain::operator::{Actor, ConsoleSession, Email, NewAuditEntry, Role};
use crate::domain::text::check_text;
use crate::domain::{BillPayment, BillStatus, DmtStatus, DmtTransfer, Timestamp, TxnKind};
use crate::services::operators::{operator_may_act, verify_password};
use crate::services::search::{self, SearchParams};
use crate::services::transactions;
use crate::services::upstream::health::RECENT_WINDOW;
use crate::store::ChangeError;

pub use pages::Page;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "payrail_console";
/// The login form's double-submit cookie.
const LOGIN_COOKIE: &str = "payrail_console_login";
/// The field every form's CSRF token is posted in.
pub const CSRF_FIELD: &str = "csrf";

/// How the console is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// Whether `/console/` is served at all (`--no-console` turns it off).
    pub enabled: bool,
    /// Seconds without a request after which a session ends.
    pub idle_timeout_secs: i64,
    /// Mark cookies `Secure` whatever the request came over (behind a TLS proxy).
    pub secure_cookies: bool,
    /// Failed logins per account, and per address, before further logins are refused.
    pub login_attempts: u32,
    /// The window failed logins are counted in, in seconds.
    pub login_window_secs: i64,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            enabled: true,
            idle_timeout_secs: 30 * 60,
            secure_cookies: false,
            login_attempts: 5,
            login_window_secs: 15 * 60,
        }
    }
}

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

/// The console's routes (all under `/console`).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/console", get(|| async { see_other("/console/") }))
        .route("/console/", get(dashboard))
        .route("/console/console.css", get(stylesheet))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console/transactions", get(transactions_page))
        .route("/console/held", get(held_page))
        .route("/console/audit", get(audit_page))
        .route("/console/partners", get(partners_page))
        .route("/console/partners/{id}", get(partner_page))
        .route("/console/partners/{id}/statement", get(statement))
        .route("/console/events/{id}/redeliver", post(redeliver))
        .route("/console/operators", get(operators_page))
        .route("/console/{kind}/{id}", get(transaction_page))
        .route("/console/{kind}/{id}/transition", post(transition))
        .layer(axum::middleware::map_response(secure_headers))
}

/// The dashboard's counts of work waiting for an operator.
#[derive(Debug, Clone)]
pub struct Counts {
    /// Transactions the poller gave up on.
    pub held_polls: usize,
    /// Transfers on hold.
    pub on_hold: usize,
    /// Partner events waiting for delivery (at most 1000 counted).
    pub outbox: usize,
    /// Upstream calls without an answer (timeouts, transport errors, refusals of the call) in the last hour.
    pub upstream_unanswered: usize,
    /// Why the upstream circuit is open, when it is.
    pub circuit_open: Option<String>,
}

/// One period's transactions by kind and state, as the dashboard shows them.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// (kind, state name, state code, count, paise), by kind then state.
    pub rows: Vec<(TxnKind, &'static str, i64, i64, i64)>,
}

impl Totals {
    fn new(stored: &[crate::store::search::StateTotal]) -> Totals {
        let mut rows: Vec<_> = stored
            .iter()
            .filter_map(|t| {
                let (name, code) = match t.kind {
                    TxnKind::Dmt => {
                        let status = t.status.parse().ok().and_then(DmtStatus::from_code)?;
                        (status.name(), status.code())
                    }
                    TxnKind::Bbps => {
                        let status = BillStatus::parse(&t.status)?;
                        (status.name(), status.wire_code().parse().unwrap_or(0))
                    }
                };
                Some((t.kind, name, code, t.count, t.paise))
            })
            .collect();
        rows.sort_by_key(|r| (r.0.as_str(), r.1));
        Totals { rows }
    }

    /// How many of `kind` (all states), and how many succeeded.
    pub fn success_rate(&self, kind: TxnKind) -> Option<(i64, i64)> {
        let of_kind = self.rows.iter().filter(|r| r.0 == kind);
        let all: i64 = of_kind.clone().map(|r| r.3).sum();
        let ok: i64 = of_kind.filter(|r| r.1 == "success").map(|r| r.3).sum();
        (all > 0).then_some((ok, all))
    }

    /// Transactions still waiting for an outcome (in process, sent to bank, pending).
    pub fn pending(&self) -> i64 {
        self.rows.iter().filter(|r| matches!(r.1, "in_process" | "sent_to_bank" | "pending")).map(|r| r.3).sum()
    }
}

/// The headers every console answer carries.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
               form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")],
        include_str!("console.css"),
    )
        .into_response()
}

/// 303 to `location`.
fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location.to_owned())]).into_response()
}

/// A signed-in operator: who, and the CSRF token of the session.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who, as actions are attributed.
    pub actor: Actor,
    /// The email shown in the header.
    pub email: String,
    /// The role.
    pub role: Role,
    /// The session's CSRF token, put in every form.
    pub csrf: String,
    id_hash: Vec<u8>,
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
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<SignedIn>, ApiError> {
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

/// Reads a form body: `name=value` pairs.
fn form(body: &[u8]) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| ApiError::Validation("the form could not be read".into()))?;
    Ok(pairs.into_iter().collect())
}

/// A hash no password matches (of a random one), checked for unknown accounts.
fn unknown_account_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| crate::services::operators::hash_password(&random_hex()).unwrap_or_default())
}

/// What a page handler answers when nobody is signed in.
fn to_login() -> Response {
    see_other("/console/login")
}

/// 403 for a form without its CSRF token (or with another session's).
fn csrf_refused() -> Response {
    Page::message(
        StatusCode::FORBIDDEN,
        None,
        "This form has expired",
        "The form was not sent from this session of the console (its security token is missing or wrong), \
         so nothing was changed. Reload the page and try again.",
    )
}

fn csrf_ok(user: &SignedIn, fields: &HashMap<String, String>) -> bool {
    fields.get(CSRF_FIELD).is_some_and(|sent| constant_time_eq(sent, &user.csrf))
}

fn peer_address(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    peer.and_then(|p| super::auth::client_address(p.ip(), forwarded, &state.settings.trusted_proxies))
}

async fn login_form(
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

async fn login(
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
    state.store.insert_console_session(session, stale_before, audit).await?;
    let secure = over_tls(&state, &headers, socket.map(|s| s.ip()));
    let mut response = see_other("/console/");
    for cookie in [set_cookie(SESSION_COOKIE, &id, None, secure), set_cookie(LOGIN_COOKIE, "", Some(0), secure)] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

async fn logout(
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

async fn dashboard(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    let held = state.store.held_polls().await?;
    let on_hold = SearchParams::parse(&[("status".into(), "on_hold".into()), ("limit".into(), "500".into())])
        .map_err(|e| ApiError::Validation(e.to_string()))?;
    let on_hold = search::search_page(state.store.as_ref(), &on_hold.filter, None, on_hold.limit).await?;
    let recent = search::search_page(state.store.as_ref(), &Default::default(), None, 10).await?;
    let now = state.clock.now();
    const IST: i64 = 19_800;
    let today = Timestamp::from_unix((now.unix() + IST).div_euclid(86_400) * 86_400 - IST);
    let periods = [
        ("Today", Totals::new(&state.store.state_totals(today).await?)),
        ("This month", Totals::new(&state.store.state_totals(now.ist_month_start()).await?)),
    ];
    use crate::domain::event::{EventFilter, EventState};
    let pending = EventFilter { state: Some(EventState::Pending), limit: 1000, ..Default::default() };
    let health = state.upstream.health();
    let counts = Counts {
        held_polls: held.len(),
        on_hold: on_hold.rows.len(),
        outbox: state.store.events(&pending).await?.len(),
        upstream_unanswered: health.failures_within(RECENT_WINDOW, std::time::Instant::now()),
        circuit_open: health.circuit().map(|open| open.reason),
    };
    let mut lowest = partner_rows(&state).await?;
    lowest.truncate(5);
    Ok(Page::dashboard(&user, counts, &periods, &lowest, &search::PageView::new(&recent)))
}

async fn transactions_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    // An empty field is a filter not used; `format` is the CSV link's alone.
    let given: Vec<(String, String)> =
        pairs.into_iter().filter(|(name, value)| !value.trim().is_empty() && name != "format").collect();
    let searched = !given.is_empty();
    let answer = match SearchParams::parse(&given) {
        Ok(params) => {
            let page = search::search_page(state.store.as_ref(), &params.filter, params.cursor, params.limit).await?;
            Ok(search::PageView::new(&page))
        }
        Err(bad) => Err(bad.to_string()),
    };
    let status = if answer.is_err() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok(Page::search(status, &user, &given, searched, answer))
}

async fn held_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    let held = state.store.held_polls().await?;
    let on_hold = SearchParams::parse(&[("status".into(), "on_hold".into()), ("limit".into(), "500".into())])
        .map_err(|e| ApiError::Validation(e.to_string()))?;
    let on_hold = search::search_page(state.store.as_ref(), &on_hold.filter, None, on_hold.limit).await?;
    Ok(Page::held(&user, &held, &search::PageView::new(&on_hold)))
}

async fn audit_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    let pairs: HashMap<String, String> = serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let filter = crate::domain::operator::AuditFilter {
        actor: pairs.get("operator").filter(|v| !v.is_empty()).cloned(),
        target: pairs.get("target").filter(|v| !v.is_empty()).cloned(),
        limit: 200,
        ..Default::default()
    };
    let entries = state.store.list_audit(&filter).await?;
    Ok(Page::audit(&user, &filter, &entries))
}

fn txn_kind(kind: &str) -> Option<TxnKind> {
    match kind {
        "dmt" => Some(TxnKind::Dmt),
        "bbps" => Some(TxnKind::Bbps),
        _ => None,
    }
}

async fn transaction_page(
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

async fn transition(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((kind_text, id_text)): Path<(String, String)>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    let fields = form(&body)?;
    if !csrf_ok(&user, &fields) {
        return Ok(csrf_refused());
    }
    let (Some(kind), Ok(id)) = (txn_kind(&kind_text), id_text.parse::<i64>()) else {
        return detail(&state, &user, &kind_text, &id_text, StatusCode::NOT_FOUND, None).await;
    };
    let needs = transition_role(kind);
    if user.role < needs {
        let message = format!(
            "Your role ({}) may not change transactions: this needs the {needs} role. Nothing was changed; \
             ask an operator or an admin.",
            user.role
        );
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
            transactions::change::<DmtTransfer>(store, clock, id, change, source, Some(reason))
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
            transactions::change::<BillPayment>(store, clock, id, change, source, Some(reason))
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

/// One partner as the partners list shows it.
#[derive(Debug, Clone)]
pub struct PartnerRow {
    /// `AOP-…`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `active` or `suspended`.
    pub status: &'static str,
    /// The wallet's balance, in paise.
    pub balance: i64,
    /// Where its callbacks go.
    pub callback_url: Option<String>,
}

/// Every partner with its wallet, lowest wallet first.
async fn partner_rows(state: &AppState) -> Result<Vec<PartnerRow>, ApiError> {
    let mut rows = Vec::new();
    for partner in state.store.list_partners().await? {
        let id = partner.registration_id;
        rows.push(PartnerRow {
            id: id.to_string(),
            name: partner.name.clone(),
            status: partner.status.as_str(),
            balance: state.store.wallet_balance(id).await?.get(),
            callback_url: state.store.callback_url(id).await?,
        });
    }
    rows.sort_by(|a, b| a.balance.cmp(&b.balance).then_with(|| a.id.cmp(&b.id)));
    Ok(rows)
}

async fn partners_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    Ok(Page::partners(&user, &partner_rows(&state).await?))
}

async fn partner_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    partner_detail(&state, &user, &id, StatusCode::OK, None).await
}

async fn partner_detail(
    state: &AppState,
    user: &SignedIn,
    id: &str,
    status: StatusCode,
    notice: Option<(bool, String)>,
) -> Result<Response, ApiError> {
    let partner = match crate::domain::RegistrationId::parse(id) {
        Ok(id) => state.store.find_partner(id).await?,
        Err(_) => None,
    };
    let Some(partner) = partner else {
        return Ok(Page::message(
            StatusCode::NOT_FOUND,
            Some(user),
            "No such partner",
            "There is no partner with this registration id. Pick one from the partners list.",
        ));
    };
    let id = partner.registration_id;
    let row = PartnerRow {
        id: id.to_string(),
        name: partner.name.clone(),
        status: partner.status.as_str(),
        balance: state.store.wallet_balance(id).await?.get(),
        callback_url: state.store.callback_url(id).await?,
    };
    let plans = state.store.fee_plans(id).await?;
    let filter = crate::domain::event::EventFilter { partner: Some(id), limit: 20, ..Default::default() };
    let events = state.store.events(&filter).await?;
    let may_redeliver = user.role >= role_for(&Method::POST, "/admin/v1/events/{id}/redeliver").unwrap_or(Role::Admin);
    let now = state.clock.now();
    Ok(Page::partner(status, user, &row, &plans, &events, may_redeliver, now, notice))
}

/// Redelivers a partner event: the operator API's redelivery, its role and its audit entry.
async fn redeliver(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    let fields = form(&body)?;
    if !csrf_ok(&user, &fields) {
        return Ok(csrf_refused());
    }
    let partner = fields.get("partner").cloned().unwrap_or_default();
    let needs = role_for(&Method::POST, "/admin/v1/events/{id}/redeliver").unwrap_or(Role::Admin);
    if user.role < needs {
        let message = format!(
            "Your role ({}) may not redeliver events: this needs the {needs} role. Nothing was changed.",
            user.role
        );
        return partner_detail(&state, &user, &partner, StatusCode::FORBIDDEN, Some((false, message))).await;
    }
    let Ok(id) = id.parse::<i64>() else {
        return partner_detail(&state, &user, &partner, StatusCode::NOT_FOUND, Some((false, "No such event.".into())))
            .await;
    };
    let before = state.store.event_with_attempts(id).await?.map(|(e, _)| e.state.name());
    let Some(event) = state.store.redeliver_event(id, state.clock.now()).await? else {
        return partner_detail(&state, &user, &partner, StatusCode::NOT_FOUND, Some((false, "No such event.".into())))
            .await;
    };
    let change = (serde_json::json!({ "state": before }), serde_json::json!({ "state": event.state.name() }));
    let audit = super::admin_audit::entry(&state, &user.actor, "event.redeliver", format!("event:{id}"), Some(change));
    super::admin_audit::record(&state, audit).await;
    let message = format!("Event {id} will be delivered again; its attempts start afresh.");
    partner_detail(&state, &user, &event.partner.to_string(), StatusCode::OK, Some((true, message))).await
}

/// A partner's wallet statement as CSV: the operator API's statement
/// (`from`, `to` as `YYYY-MM-DD`, India time, both days included).
async fn statement(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    let pairs: HashMap<String, String> = serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let Some(partner) = crate::domain::RegistrationId::parse(&id).ok() else {
        return partner_detail(&state, &user, &id, StatusCode::NOT_FOUND, None).await;
    };
    let (from, to) = (pairs.get("from").cloned().unwrap_or_default(), pairs.get("to").cloned().unwrap_or_default());
    let (start, end) = match super::admin_money::period(&from, &to) {
        Ok(period) => period,
        Err(problem) => {
            let message = format!("Statement: {problem}. Pick both dates and download again.");
            return partner_detail(&state, &user, &id, StatusCode::BAD_REQUEST, Some((false, message))).await;
        }
    };
    if state.store.find_partner(partner).await?.is_none() {
        return partner_detail(&state, &user, &id, StatusCode::NOT_FOUND, None).await;
    }
    let csv = crate::services::ledger::statement_csv(&*state.store, partner, start, end).await?;
    let disposition = format!("attachment; filename=\"statement-{partner}-{from}-{to}.csv\"");
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        csv,
    )
        .into_response())
}

/// The operators, for admins (who manage them with `payrail operator …`).
async fn operators_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    if user.role < Role::Admin {
        return Ok(Page::message(
            StatusCode::FORBIDDEN,
            Some(&user),
            "Admins only",
            "Only an admin may see the operators. Ask an admin if you need an account changed.",
        ));
    }
    Ok(Page::operators(&user, &state.store.list_operators().await?))
}
