//! The HTTP edge: wire format, authentication, and the routes.
//!
//! A partner request goes: path normalised ([`normalize_path`]) → route →
//! body read ([`body`]) → fields parsed → partner authenticated ([`auth`]) →
//! rate limit → store → rendered in the endpoint's module. Failures become
//! wire codes in one place, [`error`].
//!
//! Before routing, each connection is held to its time limits
//! ([`connection`]), each request's framing is judged from the raw bytes
//! ([`framing`]), and an address that keeps failing authentication is
//! refused without a store lookup ([`ratelimit::FailureLimiter`]).
//!
//! An operator request (`/admin/v1/…`) is authenticated and held to its
//! route's role by [`admin_auth::authorize`] before its handler runs; the
//! roles are one table, [`admin_auth::ROUTE_ROLES`].

pub mod admin;
pub mod admin_audit;
pub mod admin_auth;
pub mod admin_events;
pub mod admin_held;
pub mod admin_money;
pub mod admin_partners;
pub mod admin_reconcile;
pub mod admin_search;
pub mod admin_settlement;
pub mod auth;
pub mod bbps;
pub mod beneficiaries;
pub mod bill_status;
pub mod body;
pub mod bulk_status;
pub mod changes;
pub mod connection;
pub mod console;
pub mod dmt_status;
pub mod dmt_v1;
pub mod error;
pub mod extract;
pub mod framing;
pub mod health;
pub mod openapi;
pub mod partner_call;
pub mod penny_drop;
pub mod ratelimit;
pub mod request_log;
pub mod reverse_lookup;
pub mod status_lookup;

pub mod upstream;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use ipnet::IpNet;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tower::Layer as _;
use tower::ServiceExt as _;

use self::connection::{Connection, ConnectionLimits, TimedBody, Watched};
use self::error::ApiError;
use self::framing::Verdict;
use self::ratelimit::{FailureLimiter, RateLimiter};
use crate::domain::otp::TextLimits;
use crate::domain::partner::SealedSecret;
use crate::domain::token::TokenKey;
use crate::domain::{BillPayment, Clock, DmtTransfer, RegistrationId};
use crate::services::notifier::{LogNotifier, Notifier, Texts};
use crate::services::secrets::MasterKey;
use crate::services::upstream::provider::ManualProvider;
use crate::services::upstream::sandbox::SandboxProvider;
use crate::services::upstream::sync::{SyncSettings, Upstream};
use crate::store::Store;

/// What the edge needs to know beyond the store and the key.
#[derive(Debug, Clone, Default)]
pub struct EdgeSettings {
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Requests a second per partner; 0 for no limit.
    pub rate_limit_per_sec: u32,
    /// The operator API's bearer token; `None` disables the operator API.
    pub admin_token: Option<SecretString>,
    /// Failed authentications a second per client address before it is
    /// refused (429) without a store lookup; 0 for no limit.
    pub auth_failures_per_sec: u32,
    /// Time limits and the connection cap.
    pub connections: ConnectionLimits,
    /// The web console at `/console/`.
    pub console: console::ConsoleSettings,
}

/// Shared by every request.
pub struct AppState {
    /// Where transactions live.
    pub store: Arc<dyn Store>,
    /// Opens partner secrets.
    pub key: Arc<MasterKey>,
    /// Edge configuration.
    pub settings: EdgeSettings,
    /// Sends OTPs.
    pub notifier: Arc<dyn Notifier>,
    /// How many OTP texts one mobile may receive.
    pub text_limits: TextLimits,
    /// The upstream that moves the money, and how payrail follows it.
    pub upstream: Arc<Upstream>,
    /// The sandbox, when it is the provider (for `/sandbox/v1/advance`).
    pub sandbox: Option<Arc<SandboxProvider>>,
    /// When it is: token windows, OTP expiry, history stamps, monthly limits.
    pub clock: Arc<dyn Clock>,
    limiter: RateLimiter,
    failures: FailureLimiter,
    /// Failed console logins per account and address.
    pub(crate) login_failures: console::LoginLimiter,
    /// Whether each worker loop runs, for `/readyz` (`None`: this server runs none).
    pub workers: Option<crate::services::workers::WorkerHealth>,
    /// Whether `/metrics` is on this router (not on a listener of its own).
    metrics_route: bool,
    /// Opened secrets by their sealed form: opening costs more than the rest
    /// of the token check, and a sealed secret never changes (rotation seals
    /// a new one under a new random nonce), so the cache can never be stale.
    opened: std::sync::RwLock<OpenedSecrets>,
}

/// Opened partner secrets by partner, each beside its sealed form: a
/// lookup compares the few sealed forms of one partner, and copies and
/// hashes none of them.
type OpenedSecrets = HashMap<RegistrationId, Vec<(Vec<u8>, TokenKey)>>;

/// The most sealed secrets kept for one partner: its current and previous
/// secrets, and room for a rotation or two.
const OPENED_PER_PARTNER: usize = 4;

impl AppState {
    /// State for a router that reads the time from `clock`, with OTPs
    /// written to the log and the manual provider; see
    /// [`AppState::with_notifier`] and [`AppState::with_upstream`].
    pub fn new(store: Arc<dyn Store>, key: Arc<MasterKey>, settings: EdgeSettings, clock: Arc<dyn Clock>) -> Self {
        let limiter = RateLimiter::new(settings.rate_limit_per_sec);
        let failures = FailureLimiter::new(settings.auth_failures_per_sec);
        let notifier = Arc::new(LogNotifier);
        let manual = Arc::new(ManualProvider::new(clock.clone()));
        let upstream = Arc::new(Upstream::new(manual, SyncSettings::default(), clock.clone()));
        let text_limits = TextLimits::default();
        let opened = Default::default();
        let sandbox = None;
        let login_failures = console::LoginLimiter::default();
        AppState {
            store,
            key,
            settings,
            notifier,
            text_limits,
            upstream,
            sandbox,
            clock,
            limiter,
            failures,
            login_failures,
            workers: None,
            metrics_route: true,
            opened,
        }
    }

    /// Reports `workers` in `/readyz`.
    pub fn with_workers(mut self, workers: crate::services::workers::WorkerHealth) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Leaves `/metrics` off this router: it is served on a listener of
    /// its own ([`health::metrics_router`]).
    pub fn without_metrics_route(mut self) -> Self {
        self.metrics_route = false;
        self
    }

    /// The server's metrics (kept by its upstream, which counts its calls).
    pub fn metrics(&self) -> &Arc<crate::observe::Metrics> {
        self.upstream.metrics()
    }

    /// Sends OTPs through `notifier`.
    pub fn with_notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// Limits OTP texts per mobile to `limits` (default 5 in 10 minutes, 20 a day).
    pub fn with_text_limits(mut self, limits: TextLimits) -> Self {
        self.text_limits = limits;
        self
    }

    /// Where OTP texts go, and their limits.
    pub fn texts(&self) -> Texts<'_> {
        Texts { notifier: &*self.notifier, limits: self.text_limits, metrics: Some(self.upstream.metrics()) }
    }

    /// Hands transactions to `upstream` (made with this state's clock).
    pub fn with_upstream(mut self, upstream: Arc<Upstream>) -> Self {
        self.upstream = upstream;
        self
    }

    /// Lets operators drive `sandbox` by hand (`/sandbox/v1/advance`).
    pub fn with_sandbox(mut self, sandbox: Arc<SandboxProvider>) -> Self {
        self.sandbox = Some(sandbox);
        self
    }

    /// Opens a partner's sealed secret, keyed for token checks, from the
    /// cache when it was opened before.
    pub fn opened_secret(&self, partner: RegistrationId, sealed: &SealedSecret) -> Result<TokenKey, ApiError> {
        let cached = |cache: &OpenedSecrets| {
            let kept = cache.get(&partner)?;
            kept.iter().find(|(kept, _)| *kept == sealed.0).map(|(_, secret)| secret.clone())
        };
        if let Some(secret) = self.opened.read().ok().and_then(|cache| cached(&cache)) {
            return Ok(secret);
        }
        let secret = self.key.open(partner, sealed).map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?;
        let secret = TokenKey::new(&secret);
        if let Ok(mut cache) = self.opened.write() {
            // Bounded: start afresh if something floods it.
            if cache.len() > 10_000 {
                cache.clear();
            }
            let kept = cache.entry(partner).or_default();
            if kept.len() >= OPENED_PER_PARTNER {
                kept.remove(0);
            }
            kept.push((sealed.0.clone(), secret.clone()));
        }
        Ok(secret)
    }

    /// Admits a request of an authenticated partner, or answers 429.
    pub fn admit(&self, partner: Option<RegistrationId>) -> Result<(), ApiError> {
        let Some(partner) = partner else { return Err(ApiError::AuthenticationFailed) };
        self.limiter.admit(partner).map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })
    }
}

/// Every route, lower-case (see [`normalize_path`]).
pub fn router(state: Arc<AppState>) -> Router {
    let console = if state.settings.console.enabled { console::routes() } else { Router::new() };
    let metered = state.metrics().enabled();
    let router = Router::new()
        .route("/api/aop/dmtv1/transactionstatus", post(dmt_status::dmt_status))
        .route("/api/aop/billpaymentstatus", post(bill_status::bill_status))
        .route("/api/aop/dmtv1/transactionstatusbulk", post(bulk_status::bulk::<DmtTransfer>))
        .route("/api/aop/billpaymentstatusbulk", post(bulk_status::bulk::<BillPayment>))
        .route("/api/aop/changes", post(changes::changes))
        .route("/api/aop/dmtv1/transactionbyutr", post(reverse_lookup::by_utr))
        .route("/api/aop/dmtv1/transactionsbymobile", post(reverse_lookup::by_mobile))
        .route("/api/aop/dmtv1/queryremitter", post(dmt_v1::query_remitter))
        .route("/api/aop/dmtv1/registerremitter", post(dmt_v1::register_remitter))
        .route("/api/aop/dmtv1/remitterekyc", post(dmt_v1::remitter_ekyc))
        .route("/api/aop/registerbaneficiary", post(beneficiaries::register_baneficiary))
        .route("/api/aop/dmtv1/registerbeneficiary", post(beneficiaries::register_beneficiary))
        .route("/api/aop/dmtv1/fetchbeneficiary", post(beneficiaries::fetch_beneficiary))
        .route("/api/aop/dmtv1/fetchbeneficiarybeneid", post(beneficiaries::fetch_beneficiary_bene_id))
        .route("/api/aop/dmtv1/banklist", post(beneficiaries::bank_list))
        .route("/api/aop/dmtv1/pennydrop", post(penny_drop::penny_drop))
        .route("/api/aop/dmtv1/deletebeneficiary", post(dmt_v1::delete_beneficiary))
        .route("/api/aop/dmtv1/transactionsendotp", post(dmt_v1::transaction_send_otp))
        .route("/api/aop/dmtv1/transaction", post(dmt_v1::transaction))
        .route("/api/aop/dmtv1/refundotp", post(dmt_v1::refund_otp))
        .route("/api/aop/dmtv1/claimrefund", post(dmt_v1::claim_refund))
        .route("/api/aop/billpaymentoperatorslist", post(bbps::operators))
        .route("/api/aop/billpaymentoperators", post(bbps::operators))
        .route("/api/aop/fetchbilpaymentdetails", post(bbps::fetch_bill))
        .route("/api/aop/billpaymentpaybill", post(bbps::paybill))
        .route("/upstream/v1/callback", post(upstream::callback))
        .route("/sandbox/v1/advance", post(upstream::advance))
        .route("/openapi.json", axum::routing::get(openapi::serve))
        .merge(admin_routes())
        .merge(console)
        .merge(health::routes(state.metrics_route))
        // After every route: they apply to the routes already there.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), admin_auth::authorize));
    // The matched route's pattern goes out with the answer, for the edge's
    // request metrics (none under `--no-metrics`).
    let router = if metered { router.route_layer(axum::middleware::from_fn(matched_route)) } else { router };
    router.method_not_allowed_fallback(method_not_allowed).fallback(no_such_endpoint).with_state(state)
}

/// Every operator route under `/admin/v1/`, each module's merged: each
/// needs a role in [`admin_auth::ROUTE_ROLES`].
pub fn admin_routes() -> Router<Arc<AppState>> {
    Router::new()
        .merge(admin::routes())
        .merge(admin_events::routes())
        .merge(admin_money::routes())
        .merge(admin_partners::routes())
        .merge(admin_held::routes())
        .merge(admin_audit::routes())
        .merge(admin_search::routes())
        .merge(admin_settlement::routes())
        .merge(admin_reconcile::routes())
}

/// The path of every route [`admin_routes`] has, read from the router
/// itself (its `Debug` form is the only listing axum gives), so that a
/// test can hold each one to [`admin_auth::ROUTE_ROLES`].
pub fn admin_paths() -> Vec<String> {
    let listing = format!("{:?}", admin_routes());
    let mut paths: Vec<String> =
        listing.split('"').filter(|part| part.starts_with("/admin/")).map(str::to_owned).collect();
    paths.sort();
    paths.dedup();
    paths
}

/// The path of every route [`router`] has, read from the router's `Debug`
/// form as [`admin_paths`] does: for the test that holds the OpenAPI
/// document to the router.
pub fn routed_paths(state: Arc<AppState>) -> Vec<String> {
    let listing = format!("{:?}", router(state));
    let mut paths: Vec<String> = listing
        .split('"')
        .filter(|part| part.starts_with('/') && !part.contains(' ') && !part.contains("{*"))
        .map(str::to_owned)
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// Hands the route pattern the router matched to the answer's extensions.
async fn matched_route(request: Request, next: axum::middleware::Next) -> Response {
    let route = request.extensions().get::<axum::extract::MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

pub(crate) async fn no_such_endpoint() -> Response {
    error::status_first(StatusCode::NOT_FOUND, 8, "No such endpoint").into_response()
}

async fn method_not_allowed() -> Response {
    error::status_first(StatusCode::METHOD_NOT_ALLOWED, 8, "Method not allowed on this endpoint").into_response()
}

/// Partner paths match case-insensitively and with a trailing slash, as on
/// the ASP.NET host the documents come from: `/api/...` is lower-cased and a
/// trailing `/` dropped before routing. Operator paths are left alone.
pub fn normalize_path(mut request: Request) -> Request {
    let path = request.uri().path();
    let is_partner_path = path.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("/api/"));
    if !is_partner_path {
        return request;
    }
    let mut normalized = path.to_ascii_lowercase();
    while normalized.len() > 1 && normalized.ends_with('/') {
        normalized.pop();
    }
    if normalized != path {
        let rebuilt = match request.uri().query() {
            Some(query) => format!("{normalized}?{query}"),
            None => normalized,
        };
        if let Ok(uri) = rebuilt.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// A bound server, ready to run.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl Application {
    /// Binds `listen` (port 0 for any free port).
    pub async fn bind(listen: SocketAddr, state: AppState) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen).await.with_context(|| format!("Failed to listen on {listen}"))?;
        Ok(Application { listener, state: Arc::new(state) })
    }

    /// The state its requests share (for a second listener's router).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// The bound address.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener.local_addr().context("Failed to read the bound address")
    }

    /// Serves until `shutdown` completes, then lets open connections finish
    /// (at most 10 s).
    ///
    /// Connections are served by hyper's HTTP/1.1 server directly, the same
    /// stack the bench's bare server uses, each under its watchdog
    /// ([`connection::watch`]). At most `max_connections` are served at
    /// once: when the cap is reached, a line says so and new connections
    /// wait in the listen backlog until one closes.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let limits = self.state.settings.connections;
        let app = tower::util::MapRequestLayer::new(normalize_path as fn(Request) -> Request)
            .layer(router(self.state.clone()));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
        let mut cap_logged: Option<std::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            let slot = tokio::select! {
                slot = free_slot(&slots, limits.max_connections, &mut cap_logged) => slot,
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "failed to accept a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let connection = Connection::accepted();
            let edge = Edge { app: app.clone(), state: self.state.clone(), connection: connection.clone(), peer };
            let service = hyper::service::service_fn(move |request| edge.clone().serve(request));
            let io = hyper_util::rt::TokioIo::new(Watched::new(stream, connection.clone()));
            let served = graceful.watch(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
            tokio::spawn(async move {
                let _slot = slot;
                tokio::select! {
                    ended = served => if let Err(e) = ended {
                        tracing::debug!(error = %e, "connection ended with an error");
                    },
                    cut = connection::watch(connection, limits) => tracing::debug!(%peer, ?cut, "connection closed by its watchdog"),
                }
            });
        }
        drop(self.listener);
        if tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown()).await.is_err() {
            tracing::warn!("connections still open after 10 s; closing them");
        }
        Ok(())
    }
}

/// A slot for one more connection; when none is free, says so (at most
/// once a minute) and waits for one.
async fn free_slot(
    slots: &Arc<tokio::sync::Semaphore>,
    max: usize,
    logged: &mut Option<std::time::Instant>,
) -> tokio::sync::OwnedSemaphorePermit {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return slot;
    }
    if logged.is_none_or(|at| at.elapsed() > std::time::Duration::from_secs(60)) {
        tracing::warn!(
            max_connections = max,
            "connection limit reached: new connections wait in the listen backlog until one closes"
        );
        *logged = Some(std::time::Instant::now());
    }
    match slots.clone().acquire_owned().await {
        Ok(slot) => slot,
        // The semaphore is never closed; should it be, serve without a slot.
        Err(_) => std::future::pending().await,
    }
}

type App = tower::util::MapRequest<Router, fn(Request) -> Request>;

/// What one connection's requests go through before and after the router.
#[derive(Clone)]
struct Edge {
    app: App,
    state: Arc<AppState>,
    connection: Arc<Connection>,
    peer: SocketAddr,
}

impl Edge {
    /// Answers one request; after ambiguous framing or a chunked body the
    /// connection is closed (see [`framing`]).
    ///
    /// Every request runs in its `request` span, its id answered in
    /// `X-Request-Id` and its access line written ([`request_log`]).
    async fn serve(self, request: hyper::Request<hyper::body::Incoming>) -> Result<Response, std::convert::Infallible> {
        let (verdict, _in_flight) = self.connection.request_started();
        let log = request_log::RequestLog::start(request.headers(), request.method(), request.uri());
        let started = std::time::Instant::now();
        let response = log.scope(self.answer(request, verdict)).await;
        let metrics = self.state.metrics();
        if metrics.enabled() {
            let route = response.extensions().get::<axum::extract::MatchedPath>().map(|route| route.as_str());
            metrics.http(route, response.status().as_u16(), started.elapsed());
            if let Some(error::StoreFailed(kind)) = response.extensions().get::<error::StoreFailed>() {
                metrics.store_error(kind);
            }
        }
        let mut response = if verdict.ends_connection() { closing(response) } else { response };
        response.headers_mut().insert(request_log::REQUEST_ID_HEADER, log.header_value());
        log.answered(response.status());
        Ok(response)
    }

    /// Refuses what must not reach a handler (ambiguous framing, a body
    /// declared too long, an address that keeps failing authentication),
    /// routes the rest, and counts authentication failures per address.
    async fn answer(&self, mut request: hyper::Request<hyper::body::Incoming>, verdict: Verdict) -> Response {
        if let Verdict::Refused(reason) = verdict {
            return ApiError::Validation(reason.into()).into_response();
        }
        if declared_length(&request).is_some_and(|n| n > body::MAX_BODY as u64) {
            // Answered before the body is read: nothing more is read from this connection.
            return closing(ApiError::Validation("request body is larger than 64 KiB".into()).into_response());
        }
        let forwarded = request.headers().get(&auth::FORWARDED_FOR).and_then(|v| v.to_str().ok());
        let address = auth::client_address(self.peer.ip(), forwarded, &self.state.settings.trusted_proxies);
        if let Some(address) = address {
            if let Err(retry_after_secs) = self.state.failures.check(address) {
                return ApiError::RateLimited { retry_after_secs }.into_response();
            }
        }
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let body_timeout = self.state.settings.connections.body_timeout;
        let request = request.map(|body| axum::body::Body::new(TimedBody::new(body, body_timeout)));
        let response = match self.app.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        if response.status() == StatusCode::UNAUTHORIZED {
            if let Some(address) = address {
                self.state.failures.failed(address);
            }
        }
        response
    }
}

/// The `Content-Length` a request declares, if any.
fn declared_length<B>(request: &hyper::Request<B>) -> Option<u64> {
    request.headers().get(axum::http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// `response` with `Connection: close`: nothing more is read on this connection.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_after(uri: &str) -> String {
        let request = Request::builder().uri(uri).body(axum::body::Body::empty()).expect("a valid request");
        normalize_path(request).uri().to_string()
    }

    #[test]
    fn partner_paths_are_lowercased_and_lose_a_trailing_slash() {
        assert_eq!(path_after("/api/AOP/DMTV1/TransactionStatus/"), "/api/aop/dmtv1/transactionstatus");
        assert_eq!(path_after("/API/aop/BillPaymentStatus?x=1"), "/api/aop/billpaymentstatus?x=1");
    }

    #[test]
    fn operator_paths_are_untouched() {
        assert_eq!(path_after("/admin/v1/DMT/5"), "/admin/v1/DMT/5");
    }
}
