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

mod actions;
mod format;
mod pages;
mod queue_pages;
mod reconcile_page;
mod session;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::Router;

use self::session::{signed_in, to_login};
use super::admin_auth::role_for;
use super::error::ApiError;
use super::extract::Path;
use super::AppState;
use crate::domain::operator::{Actor, Role};
use crate::domain::{BillStatus, DmtStatus, Timestamp, TxnKind};
use crate::services::search::{self, SearchParams};
use crate::services::upstream::health::RECENT_WINDOW;

pub use pages::Page;
pub use session::LoginLimiter;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "payrail_console";
/// The login form's double-submit cookie.
pub(super) const LOGIN_COOKIE: &str = "payrail_console_login";
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

/// The console's routes (all under `/console`).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/console", get(|| async { see_other("/console/") }))
        .route("/console/", get(dashboard))
        .route("/console/console.css", get(stylesheet))
        .route("/console/login", get(session::login_form).post(session::login))
        .route("/console/logout", post(session::logout))
        .route("/console/transactions", get(transactions_page))
        .route("/console/held", get(actions::held_page))
        .route("/console/held/{kind}/{id}", post(actions::held_act))
        .route("/console/events", get(actions::events_page))
        .route("/console/audit", get(audit_page))
        .route("/console/partners", get(partners_page))
        .route("/console/partners/{id}", get(partner_page))
        .route("/console/partners/{id}/statement", get(statement))
        .route("/console/events/{id}/redeliver", post(actions::redeliver))
        .route("/console/operators", get(operators_page))
        .route("/console/reconcile", get(reconcile_page::page).post(reconcile_page::run))
        .route("/console/{kind}/{id}", get(actions::transaction_page))
        .route("/console/{kind}/{id}/transition", post(actions::transition))
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
pub(super) fn see_other(location: &str) -> Response {
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
    pub(super) id_hash: Vec<u8>,
}

/// Reads a form body: `name=value` pairs.
pub(super) fn form(body: &[u8]) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| ApiError::Validation("the form could not be read".into()))?;
    Ok(pairs.into_iter().collect())
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

pub(super) async fn partner_detail(
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
