//! `spawn_app`: a real server on a free loopback port, over a fresh store of
//! the engine asked for, and helpers to talk to it.

use std::net::SocketAddr;
use std::sync::Arc;

use payrail::domain::otp::TextLimits;
use payrail::domain::upstream::Backoff;
use payrail::domain::{Clock, IpAllowlist, ManualClock, RegistrationId, SystemClock};
use payrail::http::connection::ConnectionLimits;
use payrail::http::{AppState, Application, EdgeSettings};
use payrail::services::callbacks::{Deliverer, DeliverySettings};
use payrail::services::notifier::SmsGateway;
use payrail::services::partners::{add_partner, PartnerRequest};
use payrail::services::secrets::{check_master_key, MasterKey};
use payrail::services::upstream::provider::{ManualProvider, Provider};
use payrail::services::upstream::sandbox::SandboxProvider;
use payrail::services::upstream::sync::{SyncSettings, Upstream};
use payrail::services::workers::{WorkerSettings, Workers};
use payrail::store::{self, Store, StoreLocation};
use payrail_client::{sign_token, TokenClaims};
use secrecy::{ExposeSecret as _, SecretString};

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The operator token every test app accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A running server and what it was built from.
pub struct TestApp {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub key: Arc<MasterKey>,
    pub http: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    pub database_url: Option<String>,
    pub master_key_hex: String,
    /// Where the app's OTP messages arrive.
    pub sms: SmsInbox,
    /// The clock the app reads: [`AppOptions::clock`], or the system's.
    pub time: Arc<dyn Clock>,
    manual_clock: Option<Arc<ManualClock>>,
    workers: Option<Workers>,
    _database: Option<TempDatabase>,
}

/// A fake SMS gateway: a real HTTP server that keeps what it is sent.
#[derive(Clone, Default)]
pub struct SmsInbox {
    pub url: String,
    messages: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl SmsInbox {
    pub async fn start() -> SmsInbox {
        let mut inbox = SmsInbox::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        inbox.url = format!("http://{}/sms", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
        let kept = inbox.clone();
        let route = axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                if kept.down.load(std::sync::atomic::Ordering::SeqCst) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let field = |name: &str| json[name].as_str().unwrap_or_default().to_owned();
                kept.messages.lock().unwrap_or_else(|e| e.into_inner()).push((field("to"), field("message")));
                axum::http::StatusCode::OK
            }
        });
        let app = axum::Router::new().route("/sms", route);
        tokio::spawn(async move { axum::serve(listener, app).await });
        inbox
    }

    /// Makes the gateway answer 503 (or work again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every message sent so far, (to, text).
    pub fn messages(&self) -> Vec<(String, String)> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The OTP in the latest message to `mobile`.
    pub fn last_otp(&self, mobile: &str) -> String {
        let messages = self.messages();
        let (_, text) =
            messages.iter().rev().find(|(to, _)| to == mobile).unwrap_or_else(|| panic!("no SMS to {mobile}"));
        let otp: String = text.chars().take(6).collect();
        assert!(otp.chars().all(|c| c.is_ascii_digit()), "no OTP in {text:?}");
        otp
    }
}

/// A partner made for a test, with its secret.
#[derive(Clone)]
pub struct TestPartner {
    pub id: RegistrationId,
    pub secret: String,
}

/// Which upstream a test app talks to.
#[derive(Clone, Default)]
pub enum TestUpstream {
    /// Settled by hand; no workers.
    #[default]
    Manual,
    /// The sandbox, with this many seconds per scenario step.
    Sandbox { step_secs: u64 },
    /// Any provider (the Paysprint connector against a mock upstream).
    Provider(Arc<dyn Provider>),
}

/// Options for [`spawn_app_with`].
#[derive(Default, Clone)]
pub struct AppOptions {
    pub upstream: TestUpstream,
    /// Poll schedule (default: 1s ×6).
    pub poll_schedule: Option<&'static str>,
    /// Callback retry schedule (default: 1s).
    pub callback_retry: Option<&'static str>,
    /// Status lookup budget in ms (default 1500).
    pub status_budget_ms: Option<u64>,
    /// Run no workers (another process does the work).
    pub no_workers: bool,
    pub rate_limit_per_sec: u32,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// OTP texts per mobile. Default: no limit, since journeys send many
    /// OTPs to one mobile; tests of the limit set it (`TextLimits::default()`
    /// is the server's 5 in 10 minutes and 20 a day).
    pub text_limits: Option<TextLimits>,
    /// Failed authentications a second per address before 429 (default 0: off).
    pub auth_failures_per_sec: u32,
    /// Connection time limits and cap (default: the server's defaults).
    pub connections: Option<ConnectionLimits>,
    /// The master key (64 hex digits) instead of a random one: for a store
    /// made elsewhere, whose partners were sealed under a key the test knows.
    pub master_key_hex: Option<String>,
    /// A clock the test moves (default: the system clock). Start it with
    /// [`ManualClock::starting_now`]: partner tokens and upstream callbacks
    /// are signed with the real time, and must stay within the allowed skew.
    pub clock: Option<Arc<ManualClock>>,
    /// The web console's settings (default: on, 30 minutes, 5 attempts).
    pub console: Option<payrail::http::console::ConsoleSettings>,
    /// The workers' lease, whole seconds (default: the server's 60 s).
    pub worker_lease: Option<std::time::Duration>,
    /// How long a callback may take (default 2 s).
    pub callback_timeout: Option<std::time::Duration>,
}

impl AppOptions {
    /// These options, on a manual clock standing at the real time.
    pub fn on_manual_clock(self) -> AppOptions {
        AppOptions { clock: Some(Arc::new(ManualClock::starting_now())), ..self }
    }
}

/// The PostgreSQL server tests use, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("PAYRAIL_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A `payrail` child process, killed when dropped, so that a failing test
/// leaves no server behind.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Says loudly that a PostgreSQL test did not run.
pub fn skip_postgres(test: &str) {
    eprintln!("SKIPPED (PostgreSQL): {test}: set PAYRAIL_TEST_DATABASE_URL=postgres://… to run it");
}

#[path = "../common/temp_database.rs"]
mod temp_database;
pub use temp_database::TempDatabase;

/// A fresh, empty database on the test server.
pub async fn fresh_postgres_database(base_url: &str) -> TempDatabase {
    TempDatabase::create(base_url, "payrail_test").await
}

pub async fn spawn_app(engine: Engine) -> TestApp {
    spawn_app_with(engine, AppOptions::default()).await
}

pub async fn spawn_app_with(engine: Engine, options: AppOptions) -> TestApp {
    let database = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => {
            let base = postgres_url().unwrap_or_else(|| panic!("PostgreSQL test without PAYRAIL_TEST_DATABASE_URL"));
            Some(fresh_postgres_database(&base).await)
        }
    };
    let database_url = database.as_ref().map(|d| d.url.clone());
    spawn(database, database_url, options, None).await
}

/// An app on an existing PostgreSQL database that the caller owns (and drops).
pub async fn spawn_app_on(database_url: &str, options: AppOptions) -> TestApp {
    spawn(None, Some(database_url.to_owned()), options, None).await
}

/// A second server over `first`'s store (its SQLite file or its PostgreSQL
/// database) and master key, with a store opened afresh: what a restarted
/// server, or another instance, knows only from the store.
pub async fn spawn_app_beside(first: &TestApp, options: AppOptions) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let beside = Some((first.data_dir.path(), first.master_key_hex.as_str()));
    spawn_with_dir(data_dir, None, first.database_url.clone(), options, beside).await
}

/// An app on an existing SQLite data directory (a store made before, say).
pub async fn spawn_app_in(data_dir: tempfile::TempDir, options: AppOptions) -> TestApp {
    spawn_with_dir(data_dir, None, None, options, None).await
}

async fn spawn(
    database: Option<TempDatabase>,
    database_url: Option<String>,
    options: AppOptions,
    beside: Option<(&std::path::Path, &str)>,
) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    spawn_with_dir(data_dir, database, database_url, options, beside).await
}

/// `beside`: the data directory and master key of an app whose store this one opens again.
async fn spawn_with_dir(
    data_dir: tempfile::TempDir,
    database: Option<TempDatabase>,
    database_url: Option<String>,
    options: AppOptions,
    beside: Option<(&std::path::Path, &str)>,
) -> TestApp {
    let location = match (&database_url, beside) {
        (Some(url), _) => StoreLocation::Postgres(url.clone()),
        (None, Some((dir, _))) => StoreLocation::Sqlite(dir.to_owned()),
        (None, None) => StoreLocation::Sqlite(data_dir.path().to_owned()),
    };
    let store = store::open(&location).await.unwrap_or_else(|e| panic!("open store: {e:#}"));
    let master_key_hex: String = match (beside, &options.master_key_hex) {
        (Some((_, key)), _) => key.to_owned(),
        (None, Some(key)) => key.clone(),
        (None, None) => (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect(),
    };
    let key = Arc::new(MasterKey::from_hex(&master_key_hex).unwrap_or_else(|e| panic!("{e}")));
    let time: Arc<dyn Clock> = match &options.clock {
        Some(manual) => manual.clone(),
        None => SystemClock::shared(),
    };
    // As `payrail serve` does: the store takes this key's check value.
    check_master_key(&*store, &*time, &key).await.unwrap_or_else(|e| panic!("{e}"));
    let settings = EdgeSettings {
        trusted_proxies: options.trusted_proxies.clone(),
        rate_limit_per_sec: options.rate_limit_per_sec,
        admin_token: Some(SecretString::from(ADMIN_TOKEN)),
        auth_failures_per_sec: options.auth_failures_per_sec,
        connections: options.connections.unwrap_or_default(),
        console: options.console.unwrap_or_default(),
    };
    let sms = SmsInbox::start().await;
    let gateway = SmsGateway::new(&sms.url).unwrap_or_else(|e| panic!("{e}"));
    let mut state = AppState::new(store.clone(), key.clone(), settings, time.clone())
        .with_notifier(Arc::new(gateway))
        .with_text_limits(options.text_limits.unwrap_or(TextLimits { per_ten_minutes: 0, per_day: 0 }));
    let (upstream, sandbox) = test_upstream(&options, time.clone());
    state = state.with_upstream(upstream.clone());
    if let Some(sandbox) = sandbox {
        state = state.with_sandbox(sandbox);
    }
    // On a manual clock a test waits for worker rounds ([`TestApp::advance`]): a short tick keeps the wait short.
    let tick = std::time::Duration::from_millis(if options.clock.is_some() { 25 } else { 100 });
    let defaults = WorkerSettings::default();
    let worker_settings = WorkerSettings { tick, lease: options.worker_lease.unwrap_or(defaults.lease), ..defaults };
    let retry = Backoff::parse(options.callback_retry.unwrap_or("1s")).unwrap_or_else(|e| panic!("{e}"));
    let timeout = options.callback_timeout.unwrap_or(std::time::Duration::from_secs(2));
    let delivery = DeliverySettings { retry, timeout };
    let deliverer = Deliverer::new(store.clone(), key.clone(), delivery, time.clone())
        .unwrap_or_else(|e| panic!("{e}"))
        .with_metrics(upstream.metrics().clone());
    let workers = (!options.no_workers)
        .then(|| Workers::start(store.clone(), upstream, Arc::new(deliverer), worker_settings, time.clone()));
    if let Some(workers) = &workers {
        state = state.with_workers(workers.health());
    }
    let app = Application::bind("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")), state)
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = app.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        addr,
        store,
        key,
        http: reqwest::Client::new(),
        data_dir,
        database_url,
        master_key_hex,
        sms,
        time,
        manual_clock: options.clock,
        workers,
        _database: database,
    }
}

fn test_upstream(options: &AppOptions, clock: Arc<dyn Clock>) -> (Arc<Upstream>, Option<Arc<SandboxProvider>>) {
    let schedule =
        Backoff::parse(options.poll_schedule.unwrap_or("1s,1s,1s,1s,1s,1s")).unwrap_or_else(|e| panic!("{e}"));
    let settings = SyncSettings {
        poll_schedule: schedule,
        status_budget: std::time::Duration::from_millis(options.status_budget_ms.unwrap_or(1500)),
        poll_timeout: std::time::Duration::from_secs(2),
        ..SyncSettings::default()
    };
    let (provider, sandbox): (Arc<dyn Provider>, _) = match &options.upstream {
        TestUpstream::Manual => (Arc::new(ManualProvider::new(clock.clone())), None),
        TestUpstream::Sandbox { step_secs } => {
            let sandbox = Arc::new(SandboxProvider::new(
                std::time::Duration::from_secs(*step_secs),
                std::time::Duration::from_secs(3),
                clock.clone(),
            ));
            (sandbox.clone(), Some(sandbox))
        }
        TestUpstream::Provider(provider) => (provider.clone(), None),
    };
    (Arc::new(Upstream::new(provider, settings, clock)), sandbox)
}

/// A partner's callback receiver: a real HTTP server that keeps every
/// delivery, and can be made to fail.
#[derive(Clone, Default)]
pub struct CallbackReceiver {
    pub url: String,
    deliveries: Arc<std::sync::Mutex<Vec<Delivery>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
    /// Milliseconds each request waits before it is answered.
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
    /// Event ids of every request that arrived, answered yet or not.
    arrivals: Arc<std::sync::Mutex<Vec<String>>>,
    /// The partner's callback secret, as the operator handed it over.
    secret: Arc<std::sync::Mutex<String>>,
    /// Taken for reading by each request before it is answered: a test
    /// holding it for writing ([`CallbackReceiver::hold`]) holds them all.
    gate: Arc<tokio::sync::RwLock<()>>,
}

/// One callback as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event_id: String,
    pub timestamp: String,
    pub signature: String,
    /// The `X-Payrail-Redelivery` header.
    pub redelivery: String,
    pub body: String,
}

impl Delivery {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("callback body not JSON ({e}): {}", self.body))
    }

    /// Whether one of the signatures (comma-separated during a secret's
    /// rotation) is HMAC-SHA256(secret, "<timestamp>.<body>"), computed here independently.
    pub fn signed_by(&self, secret: &str) -> bool {
        let mac = payrail_client::token::hmac_sha256(
            secret.as_bytes(),
            format!("{}.{}", self.timestamp, self.body).as_bytes(),
        );
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        self.signature.split(',').any(|one| one == format!("sha256={hex}"))
    }
}

impl CallbackReceiver {
    pub async fn start() -> CallbackReceiver {
        let mut receiver = CallbackReceiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        receiver.url = format!("http://{}/payrail/callback", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
        let kept = receiver.clone();
        let route = axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                let header =
                    |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                kept.arrivals.lock().unwrap_or_else(|e| e.into_inner()).push(header("x-payrail-event-id"));
                let delay = kept.delay_ms.load(std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                drop(kept.gate.read().await);
                if kept.down.load(std::sync::atomic::Ordering::SeqCst) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let delivery = Delivery {
                    event_id: header("x-payrail-event-id"),
                    timestamp: header("x-payrail-timestamp"),
                    signature: header("x-payrail-signature"),
                    redelivery: header("x-payrail-redelivery"),
                    body,
                };
                kept.deliveries.lock().unwrap_or_else(|e| e.into_inner()).push(delivery);
                axum::http::StatusCode::NO_CONTENT
            }
        });
        let app = axum::Router::new().route("/payrail/callback", route);
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    /// Makes the receiver answer 503 (or accept again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Keeps the partner's callback secret (from `callback set`).
    pub fn set_secret(&self, secret: &str) {
        *self.secret.lock().unwrap_or_else(|e| e.into_inner()) = secret.to_owned();
    }

    /// The partner's callback secret, as kept.
    pub fn secret(&self) -> String {
        self.secret.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes every request wait this long before it is answered.
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.delay_ms.store(delay.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }

    /// Holds every request unanswered until the returned guard is dropped.
    pub async fn hold(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.gate.clone().write_owned().await
    }

    /// The event ids of every request that arrived so far (answered or not, accepted or not).
    pub fn arrivals(&self) -> Vec<String> {
        self.arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every delivery accepted so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Polls `check` every 100 ms until it gives a value, or panics after `secs` seconds naming `what`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {secs} s waiting for: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A raw HTTP answer: status, content type, body text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The manual clock the app was given ([`AppOptions::clock`]).
    pub fn clock(&self) -> &ManualClock {
        self.manual_clock.as_deref().unwrap_or_else(|| panic!("this app runs on the system clock"))
    }

    /// Waits (at most 10 s) until each worker loop has finished a whole
    /// round begun after the call: what was due by the clock at the call,
    /// each loop has done.
    pub async fn worker_rounds(&self) {
        let workers = self.workers.as_ref().unwrap_or_else(|| panic!("this app runs no workers"));
        let rounds = workers.rounds();
        tokio::time::timeout(std::time::Duration::from_secs(10), rounds.next_full_round())
            .await
            .unwrap_or_else(|_| panic!("the workers did not finish a round in 10 s"));
    }

    /// Stops the app's worker loops and waits until their tasks have ended
    /// (as a crashed worker task would have), leaving the server running.
    pub async fn stop_workers(&mut self) {
        if let Some(workers) = self.workers.take() {
            workers.shut_down().await;
        }
    }

    /// Moves the manual clock `by` on, then waits for the workers to act at
    /// the new time: twice, since a poll's event is delivered a round later.
    pub async fn advance(&self, by: std::time::Duration) {
        self.clock().advance(by);
        self.worker_rounds().await;
        self.worker_rounds().await;
    }

    /// Adds a partner through the service layer.
    /// A partner without tokens and without a list gets loopback only (the
    /// tests call from there): a token-free partner must have an allowlist.
    pub async fn add_partner(&self, require_token: bool, allow: &[&str]) -> TestPartner {
        let allow = if !require_token && allow.is_empty() { &["127.0.0.0/8", "::1"][..] } else { allow };
        let request = PartnerRequest {
            number: None,
            name: "test partner".into(),
            allowlist: IpAllowlist::parse(allow.iter().copied()).unwrap_or_else(|e| panic!("{e}")),
            require_token,
            authorised_key: None,
        };
        let added =
            add_partner(&*self.store, &*self.time, &self.key, request).await.unwrap_or_else(|e| panic!("{e:#}"));
        TestPartner { id: added.partner.registration_id, secret: added.secret.expose_secret().to_owned() }
    }

    /// POSTs raw bytes with optional extra headers.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.http.post(self.url(path)).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let status = response.status().as_u16();
        let body = response.text().await.expect("a readable body");
        Answer { status, content_type, retry_after, body }
    }

    /// DMT status for `reference` as `partner`, signing with `secret` when given.
    pub async fn dmt_status(&self, partner: &str, reference: &str, token: Option<&str>) -> Answer {
        let body = serde_json::json!({"ReferanceID": reference, "RegistrationID": partner}).to_string();
        self.post_with_token("/api/AOP/DMTV1/TransactionStatus", body, token).await
    }

    /// BBPS status for `reference` as `partner`.
    pub async fn bill_status(&self, partner: &str, reference: &str, token: Option<&str>) -> Answer {
        let body = serde_json::json!({"referenceid": reference, "RegistrationID": partner}).to_string();
        self.post_with_token("/api/AOP/BillPaymentStatus", body, token).await
    }

    async fn post_with_token(&self, path: &str, body: String, token: Option<&str>) -> Answer {
        let headers: Vec<(&str, &str)> = token.map(|t| vec![("Token", t)]).unwrap_or_default();
        self.post_raw(path, body, &headers).await
    }

    /// A partner API call as `partner`, signed with a fresh token; `fields`
    /// get the partner's `RegistrationID` added.
    pub async fn call(&self, path: &str, partner: &TestPartner, fields: serde_json::Value) -> Answer {
        let mut body = fields;
        body["RegistrationID"] = serde_json::Value::String(partner.name());
        let token = partner.token();
        self.post_raw(path, body.to_string(), &[("Token", token.as_str())]).await
    }

    /// An operator API call; `body` None for GET.
    pub async fn admin(&self, path: &str, body: Option<serde_json::Value>) -> Answer {
        let method = if body.is_some() { reqwest::Method::POST } else { reqwest::Method::GET };
        self.admin_with(method, path, body).await
    }

    /// An operator API call with any method.
    pub async fn admin_with(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> Answer {
        let mut request = self.http.request(method, self.url(path));
        if let Some(json) = body {
            request = request.body(json.to_string());
        }
        let response = request.bearer_auth(ADMIN_TOKEN).send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        Answer { status, content_type, retry_after: None, body: response.text().await.expect("a readable body") }
    }
}

/// An Aadhaar number the sandbox (and every provider) verifies: UIDAI's test number.
pub const AADHAAR: &str = "999999990019";

/// The fingerprint data tests send: distinctive, so that its absence from
/// the store and the logs can be checked.
pub const FINGERPRINT: &str = "<PidData><Data type=\"X\">FP-7c1d-NEVER-STORED-e9a4</Data></PidData>";

impl TestApp {
    /// `RemitterEKyc` for `mobile` with this Aadhaar number, as AOPay's page sends it.
    pub async fn ekyc_with(&self, partner: &TestPartner, mobile: &str, aadhaar: &str) -> Answer {
        let fields = serde_json::json!({"MobileNumber": mobile, "Lattitude": "28.61", "Longitude": "77.20",
                                        "AadhaarNumber": aadhaar, "FingerPrintData": FINGERPRINT});
        self.call("/api/AOP/DMTV1/RemitterEKyc", partner, fields).await
    }

    /// A successful e-KYC of `mobile`: its `stateresp` (also the `KycId`) and the OTP texted.
    pub async fn ekyc(&self, partner: &TestPartner, mobile: &str) -> (String, String) {
        let answer = self.ekyc_with(partner, mobile, AADHAAR).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        let stateresp = answer.json()["stateresp"].as_str().expect("stateresp is a string").to_owned();
        (stateresp, self.sms.last_otp(mobile))
    }

    /// e-KYC then `RegisterRemitter` (as Asha Verma) with its OTP and `KycId`.
    pub async fn ekyc_and_register(&self, partner: &TestPartner, mobile: &str) -> Answer {
        let (stateresp, otp) = self.ekyc(partner, mobile).await;
        let fields = serde_json::json!({"MobileNo": mobile, "OTP": otp, "Stateresp": stateresp, "KycId": stateresp,
                                        "FirstName": "Asha", "LastName": "Verma"});
        self.call("/api/AOP/DMTV1/RegisterRemitter", partner, fields).await
    }
}

impl TestPartner {
    pub fn name(&self) -> String {
        self.id.to_string()
    }

    /// A fresh valid token.
    pub fn token(&self) -> String {
        sign_token(self.secret.as_bytes(), &TokenClaims::now(&self.name()))
    }
}

/// Runs `payrail ARGS…` on the app's store and master key.
pub fn payrail(app: &TestApp, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_payrail"));
    command.arg("--data-dir").arg(app.data_dir.path()).args(args);
    command.env("PAYRAIL_MASTER_KEY", &app.master_key_hex).env_remove("PAYRAIL_DATABASE_URL");
    if let Some(url) = &app.database_url {
        command.env("PAYRAIL_DATABASE_URL", url);
    }
    command.output().unwrap_or_else(|e| panic!("run payrail: {e}"))
}

/// Bytes as text, for assertions.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Removes whitespace outside JSON strings, so documented bodies compare byte for byte.
pub fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Turns `async fn name(engine: Engine)` test bodies into two tests each,
/// `name::sqlite` and `name::postgres`; the PostgreSQL one runs when
/// PAYRAIL_TEST_DATABASE_URL is set and says loudly that it was skipped when not.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Engine::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_url().is_none() {
                    $crate::helpers::skip_postgres(module_path!());
                    return;
                }
                super::$name($crate::helpers::Engine::Postgres).await;
            }
        }
    )*};
}
