//! `payrail serve [--demo]`.

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use ipnet::IpNet;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};

use super::Cli;
use std::time::Duration;

use crate::domain::otp::TextLimits;
use crate::domain::upstream::{self, Backoff};
use crate::domain::{Clock, SystemClock};
use crate::http::connection::ConnectionLimits;
use crate::http::console::ConsoleSettings;
use crate::http::{AppState, Application, EdgeSettings};
use crate::observe::Metrics;
use crate::services::callbacks::{Deliverer, DeliverySettings};
use crate::services::demo::{self, SEED_PARTNER, TOKEN_PARTNER};
use crate::services::demo_live;
use crate::services::notifier::{LogNotifier, Notifier, SmsGateway};
use crate::services::operators;
use crate::services::secrets::{MasterKey, MissingKey};
use crate::services::upstream::paysprint::{PaysprintConfig, PaysprintProvider};
use crate::services::upstream::provider::{ManualProvider, Provider};
use crate::services::upstream::sandbox::SandboxProvider;
use crate::services::upstream::sync::{SyncSettings, Upstream};
use crate::services::workers::{WorkerSettings, Workers};
use crate::store::files;
use crate::store::StoreLocation;

/// `payrail serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Load the demo data set into an empty store and print ready-to-paste curl commands.
    #[arg(long)]
    pub demo: bool,
    /// Address to listen on.
    #[arg(long, env = "PAYRAIL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// A proxy whose X-Forwarded-For is trusted (CIDR; repeat or comma-separate).
    #[arg(long = "trusted-proxy", env = "PAYRAIL_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,
    /// Requests a second allowed per partner (0: no limit).
    #[arg(long, env = "PAYRAIL_RATE_LIMIT", default_value_t = 200)]
    pub rate_limit: u32,
    /// Failed authentications a second from one client address before it is refused with 429 (0: no limit).
    #[arg(long, env = "PAYRAIL_AUTH_FAILURE_LIMIT", default_value_t = 10)]
    pub auth_failure_limit: u32,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub console: ConsoleArgs,
    /// Where OTP text messages are posted (JSON `{"to","message"}`); without it OTPs go to the log.
    #[arg(long, env = "PAYRAIL_SMS_GATEWAY_URL")]
    pub sms_gateway_url: Option<String>,
    /// OTP texts one mobile may receive in any 10 minutes, all partners together (0: no limit).
    #[arg(long, env = "PAYRAIL_OTP_TEXTS_PER_10_MIN", default_value_t = 5)]
    pub otp_texts_per_10_min: u32,
    /// OTP texts one mobile may receive in any 24 hours, all partners together (0: no limit).
    #[arg(long, env = "PAYRAIL_OTP_TEXTS_PER_DAY", default_value_t = 20)]
    pub otp_texts_per_day: u32,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// How many synthetic transactions of each kind the demo loads.
    #[arg(long, default_value_t = 10_000, hide = true)]
    pub demo_transactions: usize,
}

/// Prometheus metrics at `/metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Serve /metrics on this address only (not on --listen), e.g. 127.0.0.1:9464.
    #[arg(long, env = "PAYRAIL_METRICS_LISTEN", conflicts_with = "no_metrics")]
    pub metrics_listen: Option<SocketAddr>,
    /// Keep no metrics and serve no /metrics.
    #[arg(long, env = "PAYRAIL_NO_METRICS")]
    pub no_metrics: bool,
}

/// The web console at `/console/`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Do not serve the web console at /console/.
    #[arg(long, env = "PAYRAIL_NO_CONSOLE")]
    pub no_console: bool,
    /// Minutes without a request after which a console session ends.
    #[arg(long, env = "PAYRAIL_CONSOLE_IDLE_MINUTES", default_value_t = 30)]
    pub console_idle_minutes: u32,
    /// Mark console cookies Secure (set this when a TLS proxy that does not send X-Forwarded-Proto is in front).
    #[arg(long, env = "PAYRAIL_CONSOLE_SECURE_COOKIES")]
    pub console_secure_cookies: bool,
    /// Failed console logins per account, and per address, in 15 minutes before further logins are refused.
    #[arg(long, env = "PAYRAIL_CONSOLE_LOGIN_ATTEMPTS", default_value_t = 5)]
    pub console_login_attempts: u32,
}

impl ConsoleArgs {
    fn settings(&self) -> anyhow::Result<ConsoleSettings> {
        if !(1..=24 * 60).contains(&self.console_idle_minutes) {
            anyhow::bail!("--console-idle-minutes must be from 1 to 1440");
        }
        if self.console_login_attempts == 0 {
            anyhow::bail!("--console-login-attempts must be at least 1");
        }
        Ok(ConsoleSettings {
            enabled: !self.no_console,
            idle_timeout_secs: i64::from(self.console_idle_minutes) * 60,
            secure_cookies: self.console_secure_cookies,
            login_attempts: self.console_login_attempts,
            ..ConsoleSettings::default()
        })
    }
}

/// How long clients may take, and how many may be connected.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Seconds a client has to send a request's headers.
    #[arg(long, env = "PAYRAIL_HEADER_TIMEOUT", default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Seconds a client has to send a request's body.
    #[arg(long, env = "PAYRAIL_BODY_TIMEOUT", default_value_t = 10.0)]
    pub body_timeout: f64,
    /// Seconds a keep-alive connection may wait for its next request.
    #[arg(long, env = "PAYRAIL_IDLE_TIMEOUT", default_value_t = 60.0)]
    pub idle_timeout: f64,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, env = "PAYRAIL_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
}

impl ConnectionArgs {
    fn limits(&self) -> anyhow::Result<ConnectionLimits> {
        let secs = |flag: &str, value: f64| {
            (value.is_finite() && value > 0.0 && value <= 3600.0)
                .then(|| Duration::from_secs_f64(value))
                .ok_or_else(|| anyhow::anyhow!("--{flag} must be more than 0 and at most 3600 seconds"))
        };
        if self.max_connections == 0 {
            anyhow::bail!("--max-connections must be at least 1");
        }
        Ok(ConnectionLimits {
            header_timeout: secs("header-timeout", self.header_timeout)?,
            body_timeout: secs("body-timeout", self.body_timeout)?,
            idle_timeout: secs("idle-timeout", self.idle_timeout)?,
            max_connections: self.max_connections,
        })
    }
}

/// Raises this process's soft limit of open files to its hard limit, so
/// that the connection cap, not the default 1024, bounds connections; says
/// when the cap cannot be reached with the files allowed.
fn raise_open_files_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::info!(open_files = limit, "open files limit");
            if (max_connections as u64).saturating_add(64) > limit {
                tracing::warn!(
                    open_files = limit,
                    max_connections,
                    "the open files limit is below --max-connections; accepts will fail before the cap"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
}

/// Which upstream moves the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// Operators settle every transaction by hand; nothing is polled.
    Manual,
    /// Deterministic scenarios that settle on their own (see docs/UPSTREAM.md).
    Sandbox,
    /// A Paysprint-compatible HTTP upstream (`--paysprint-url` and its keys).
    Paysprint,
}

/// How payrail follows its upstream and calls partners back.
#[derive(Debug, Args)]
pub struct UpstreamArgs {
    /// The upstream: manual, sandbox (the demo's default) or paysprint.
    #[arg(long, env = "PAYRAIL_PROVIDER")]
    pub provider: Option<ProviderKind>,
    /// Sandbox: seconds between a scenario's steps.
    #[arg(long, env = "PAYRAIL_SANDBOX_STEP_SECS", default_value_t = 8)]
    pub sandbox_step_secs: u64,
    /// Paysprint: the service base URL, e.g. https://api.paysprint.in/api/v1/service.
    #[arg(long, env = "PAYRAIL_PAYSPRINT_URL")]
    pub paysprint_url: Option<String>,
    /// Paysprint: payrail's partner id there (the token's partnerId).
    #[arg(long, env = "PAYRAIL_PAYSPRINT_PARTNER_ID")]
    pub paysprint_partner_id: Option<String>,
    /// Paysprint: the JWT key (environment only, never on the command line).
    #[arg(skip = std::env::var("PAYRAIL_PAYSPRINT_JWT_KEY").ok().filter(|k| !k.is_empty()).map(SecretString::from))]
    pub paysprint_jwt_key: Option<SecretString>,
    /// Paysprint: the Authorisedkey, if issued (environment only).
    #[arg(skip = std::env::var("PAYRAIL_PAYSPRINT_AUTHORISED_KEY").ok().filter(|k| !k.is_empty()).map(SecretString::from))]
    pub paysprint_authorised_key: Option<SecretString>,
    /// Paysprint: where transfers are sent, dmt/transact/transact or dmt/kyc/transact/transact.
    #[arg(long, env = "PAYRAIL_PAYSPRINT_TRANSACT_PATH", default_value = crate::services::upstream::paysprint::TRANSACT)]
    pub paysprint_transact_path: String,
    /// When the poller asks again about a pending transaction (exhausted: on hold).
    #[arg(long, env = "PAYRAIL_POLL_SCHEDULE", default_value = upstream::DEFAULT_POLL_SCHEDULE)]
    pub poll_schedule: String,
    /// When a failed partner callback is tried again (the last delay repeats for 24 h).
    #[arg(long, env = "PAYRAIL_CALLBACK_RETRY", default_value = upstream::DEFAULT_CALLBACK_RETRY)]
    pub callback_retry: String,
    /// How long a status lookup waits for the upstream, in milliseconds (at most 1500).
    #[arg(long, env = "PAYRAIL_STATUS_BUDGET_MS", default_value_t = 1500)]
    pub status_budget_ms: u64,
    /// Prefix of the references payrail gives the upstream (one per installation sharing an upstream account).
    #[arg(long, env = "PAYRAIL_UPSTREAM_REF_PREFIX", default_value = "PR")]
    pub upstream_ref_prefix: String,
    /// How often the workers look for due polls and callbacks, in milliseconds.
    #[arg(long, env = "PAYRAIL_WORKER_TICK_MS", default_value_t = 1000, hide = true)]
    pub worker_tick_ms: u64,
    /// This process's name in leases and delivery records (default: host-pid-random).
    #[arg(long, env = "PAYRAIL_INSTANCE")]
    pub instance: Option<String>,
}

/// The upstream as configured: the sync service, and the sandbox if it is the provider.
struct Configured {
    upstream: Arc<Upstream>,
    sandbox: Option<Arc<SandboxProvider>>,
}

impl ServeArgs {
    /// Checks what can be checked without opening the store or a socket
    /// (`payrail config check`): the same checks `run` makes first.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        self.connections.limits()?;
        self.console.settings()?;
        sync_settings(&self.upstream)?;
        Backoff::parse(&self.upstream.callback_retry).context("--callback-retry")?;
        if self.upstream.provider == Some(ProviderKind::Paysprint) {
            paysprint_config(&self.upstream)?;
        }
        Ok(())
    }
}

fn sync_settings(args: &UpstreamArgs) -> anyhow::Result<SyncSettings> {
    let poll_schedule = Backoff::parse(&args.poll_schedule).context("--poll-schedule")?;
    if args.status_budget_ms == 0 || args.status_budget_ms > 1500 {
        anyhow::bail!("--status-budget-ms must be between 1 and 1500");
    }
    if args.upstream_ref_prefix.is_empty() || !args.upstream_ref_prefix.chars().all(|c| c.is_ascii_uppercase()) {
        anyhow::bail!("--upstream-ref-prefix must be one or more capital letters A-Z");
    }
    Ok(SyncSettings {
        ref_prefix: args.upstream_ref_prefix.clone(),
        poll_schedule,
        status_budget: Duration::from_millis(args.status_budget_ms),
        ..SyncSettings::default()
    })
}

fn configure_upstream(
    args: &UpstreamArgs,
    demo: bool,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Configured> {
    let settings = sync_settings(args)?;
    let kind = args.provider.unwrap_or(if demo { ProviderKind::Sandbox } else { ProviderKind::Manual });
    let (provider, sandbox): (Arc<dyn Provider>, _) = match kind {
        ProviderKind::Manual => (Arc::new(ManualProvider::new(clock.clone())), None),
        ProviderKind::Sandbox => {
            let step = Duration::from_secs(args.sandbox_step_secs.max(1));
            let sandbox = Arc::new(SandboxProvider::new(step, Duration::from_secs(3), clock.clone()));
            (sandbox.clone(), Some(sandbox))
        }
        ProviderKind::Paysprint => (Arc::new(PaysprintProvider::new(paysprint_config(args)?)?), None),
    };
    Ok(Configured { upstream: Arc::new(Upstream::metered(provider, settings, clock, metrics)), sandbox })
}

fn paysprint_config(args: &UpstreamArgs) -> anyhow::Result<PaysprintConfig> {
    let missing = |what: &str| anyhow::anyhow!("--provider paysprint needs {what}");
    let url = args.paysprint_url.clone().ok_or_else(|| missing("--paysprint-url (PAYRAIL_PAYSPRINT_URL)"))?;
    let partner_id = args
        .paysprint_partner_id
        .clone()
        .ok_or_else(|| missing("--paysprint-partner-id (PAYRAIL_PAYSPRINT_PARTNER_ID)"))?;
    let jwt_key =
        args.paysprint_jwt_key.clone().ok_or_else(|| missing("PAYRAIL_PAYSPRINT_JWT_KEY in the environment"))?;
    let mut config = PaysprintConfig::new(url, partner_id, jwt_key);
    config.authorised_key = args.paysprint_authorised_key.clone();
    config.transact_path = args.paysprint_transact_path.clone();
    Ok(config)
}

fn start_workers(
    args: &UpstreamArgs,
    store: Arc<dyn crate::store::Store>,
    key: Arc<MasterKey>,
    upstream: Arc<Upstream>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Workers> {
    let retry = Backoff::parse(&args.callback_retry).context("--callback-retry")?;
    let delivery = DeliverySettings { retry, ..DeliverySettings::default() };
    let deliverer =
        Deliverer::new(store.clone(), key, delivery, clock.clone())?.with_metrics(upstream.metrics().clone());
    let mut settings =
        WorkerSettings { tick: Duration::from_millis(args.worker_tick_ms.max(10)), ..WorkerSettings::default() };
    if let Some(instance) = &args.instance {
        settings.instance = instance.clone();
    }
    tracing::info!(instance = %settings.instance, provider = upstream.provider.name(), "workers started");
    Ok(Workers::start(store, upstream, Arc::new(deliverer), settings, clock))
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<()> {
    let connections = args.connections.limits()?;
    raise_open_files_limit(connections.max_connections);
    let location = cli.store_location()?;
    let _lock = match &location {
        StoreLocation::Sqlite(dir) => Some(lock_data_dir(dir)?),
        StoreLocation::Postgres(_) => None,
    };
    let store = cli.open_store().await?;
    let clock = SystemClock::shared();
    let key =
        Arc::new(cli.master_key(&*store, if args.demo { MissingKey::Generate } else { MissingKey::Refuse }).await?);
    let mut admin_token = std::env::var("PAYRAIL_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()).map(SecretString::from);
    if args.demo && admin_token.is_none() {
        admin_token = Some(random_token());
    }
    let demo_data = if args.demo { load_demo(&*store, &*clock, &key, args.demo_transactions).await? } else { None };
    let demo_login = match args.demo {
        true => Some(operators::add_demo_admin(&*store, &*clock).await.context("Failed to add the demo operator")?),
        false => None,
    };
    let settings = EdgeSettings {
        trusted_proxies: args.trusted_proxies.clone(),
        rate_limit_per_sec: args.rate_limit,
        admin_token,
        auth_failures_per_sec: args.auth_failure_limit,
        connections,
        console: args.console.settings()?,
    };
    let admin_token = settings.admin_token.clone();
    let notifier: Arc<dyn Notifier> = match &args.sms_gateway_url {
        Some(url) => Arc::new(SmsGateway::new(url)?),
        None => Arc::new(LogNotifier),
    };
    if args.sms_gateway_url.is_none() && !args.demo {
        tracing::warn!("{}", notifier.describe());
    } else {
        tracing::info!("{}", notifier.describe());
    }
    let metrics = Arc::new(Metrics::new(!args.metrics.no_metrics));
    let configured = configure_upstream(&args.upstream, args.demo, clock.clone(), metrics)?;
    let workers =
        start_workers(&args.upstream, store.clone(), key.clone(), configured.upstream.clone(), clock.clone())?;
    let live = args.demo && demo_data.is_some() && configured.sandbox.is_some();
    if live {
        demo_live::make_live_transactions(&*store, &*clock, &configured.upstream, SEED_PARTNER)
            .await
            .context("Failed to make the demo's live sandbox transactions")?;
    }
    let text_limits = TextLimits { per_ten_minutes: args.otp_texts_per_10_min, per_day: args.otp_texts_per_day };
    let mut state = AppState::new(store.clone(), key, settings, clock)
        .with_notifier(notifier)
        .with_text_limits(text_limits)
        .with_upstream(configured.upstream);
    if let Some(sandbox) = configured.sandbox {
        state = state.with_sandbox(sandbox);
    }
    state = state.with_workers(workers.health());
    if args.metrics.metrics_listen.is_some() {
        state = state.without_metrics_route();
    }
    let app = Application::bind(args.listen, state).await?;
    if let Some(listen) = args.metrics.metrics_listen {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("Failed to listen on {listen} (--metrics-listen)"))?;
        let metrics_addr = listener.local_addr().context("Failed to read the metrics listener's address")?;
        tracing::info!(addr = %metrics_addr, "metrics are served at /metrics on their own listener");
        let router = crate::http::health::metrics_router(app.state());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    let addr = app.local_addr()?;
    tracing::info!(%addr, engine = store.engine(), "payrail is listening");
    if args.demo {
        print_demo_guide(cli, addr, demo_data.as_ref().map(|d| &d.token_secret), admin_token.as_ref());
        if let Some(password) = demo_login {
            print_demo_login(cli, addr, password.as_deref(), !args.console.no_console);
        }
        if live {
            let callback_secret = demo_data.as_ref().and_then(|d| d.callback_secret.as_ref());
            print_live_guide(addr, admin_token.as_ref(), callback_secret);
        }
    }
    let served = app.run_until(shutdown_signal()).await;
    workers.stop();
    // What the store keeps in memory for a while (SQLite's recent token
    // reqids) is written before the process ends.
    if let Err(error) = store.flush().await {
        tracing::warn!(%error, "Failed to write the recent token reqids at shutdown");
    }
    served
}

/// On SQLite one server process owns the data directory.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<File> {
    files::private_dir(dir)?;
    let path = dir.join("payrail.lock");
    let file = files::private_file(&path)?;
    file.try_lock().map_err(|_| {
        anyhow::anyhow!("another payrail server is using {}; on SQLite one server owns a data directory", dir.display())
    })?;
    Ok(file)
}

async fn load_demo(
    store: &dyn crate::store::Store,
    clock: &dyn Clock,
    key: &crate::services::secrets::MasterKey,
    count: usize,
) -> anyhow::Result<Option<demo::DemoData>> {
    eprintln!("Loading the demo data set ({count} transfers and {count} bill payments)…");
    match demo::load_demo(store, clock, key, count).await.context("Failed to load the demo data")? {
        Some(data) => Ok(Some(data)),
        None => {
            eprintln!("The store already has partners: the demo data set was loaded before and is left as it is.");
            Ok(None)
        }
    }
}

fn random_token() -> SecretString {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn print_demo_guide(cli: &Cli, addr: SocketAddr, token_secret: Option<&SecretString>, admin: Option<&SecretString>) {
    let base = format!("http://{addr}");
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "payrail".into());
    let data_dir = cli.data_dir.display();
    let mut guide = format!(
        "\npayrail demo is ready at {base}\n\n\
         # The seed documents' own requests (partner {SEED_PARTNER}, loopback, no token):\n\
         curl --location '{base}/api/AOP/DMTV1/TransactionStatus' \\\n  --header 'Content-Type: application/json' \\\n  \
         --data '{{\"ReferanceID\": \"12345678927\", \"RegistrationID\": \"AOP-554\"}}'\n\n\
         curl --location '{base}/api/AOP/BillPaymentStatus' \\\n  --header 'Content-Type: application/json' \\\n  \
         --data '{{\"referenceid\": \"123456\", \"RegistrationID\": \"AOP-554\"}}'\n\n"
    );
    match token_secret {
        Some(secret) => guide.push_str(&format!(
            "# Partner {TOKEN_PARTNER} requires a signed Token (its secret is shown this once):\n\
             curl --location '{base}/api/AOP/DMTV1/TransactionStatus' \\\n  \
             --header \"Token: $({exe} token --registration-id {TOKEN_PARTNER} --secret '{}')\" \\\n  \
             --data '{{\"ReferanceID\": \"DEMO-DMT-000001\", \"RegistrationID\": \"{TOKEN_PARTNER}\"}}'\n\n",
            secret.expose_secret()
        )),
        None => guide.push_str(&format!(
            "# Partner {TOKEN_PARTNER} requires a signed Token. Its secret was shown when the demo was first loaded;\n\
             # for a new one: {exe} --data-dir {data_dir} partner rotate-secret {TOKEN_PARTNER}\n\n"
        )),
    }
    guide.push_str(&format!(
        "# Money transfer as {SEED_PARTNER} (wallet funded with Rs 1,00,000; OTPs are printed in the server log):\n\
         curl -s {base}/api/AOP/DMTV1/QueryRemitter --data '{{\"RegistrationID\": \"AOP-554\", \"MobileNo\": \"9876543210\"}}'\n\
         # then RegisterRemitter, RegisterBeneficiary, TransactionSendOtp, Transaction: see docs/API.md.\n\n"
    ));
    if let Some(admin) = admin {
        guide.push_str(&format!(
            "# Operator API (bearer token for this run; set PAYRAIL_ADMIN_TOKEN to choose your own):\n\
             curl -s -H 'Authorization: Bearer {}' {base}/admin/v1/dmt/128\n",
            admin.expose_secret()
        ));
    }
    // A closed stdout (a supervisor that stopped reading) must not stop the server.
    let _ = writeln!(std::io::stdout().lock(), "{guide}");
}

/// The demo admin operator's login: its password when it was just made.
fn print_demo_login(cli: &Cli, addr: SocketAddr, password: Option<&str>, console: bool) {
    let email = operators::DEMO_ADMIN;
    let data_dir = cli.data_dir.display();
    let login = match password {
        Some(password) => format!("{email} / {password}  (shown only this once)"),
        None => format!(
            "{email} (its password was shown when it was made; for a new one: \
             payrail --data-dir {data_dir} operator reset-password --email {email})"
        ),
    };
    let console = match console {
        true => "",
        false => " (served without --no-console)",
    };
    let line = format!(
        "# Operator login for the web console at http://{addr}/console/{console}:\n\
         #   {login}\n\
         # A personal API token for /admin/v1/: payrail --data-dir {data_dir} operator token create --email {email}\n"
    );
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn print_live_guide(addr: SocketAddr, admin: Option<&SecretString>, callback_secret: Option<&SecretString>) {
    let base = format!("http://{addr}");
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "payrail".into());
    let mut guide = format!("# The sandbox upstream settles transactions on its own. Just now {SEED_PARTNER} made:\n");
    for (_, reference, what) in demo_live::LIVE {
        guide.push_str(&format!("#   {reference:<12} {what}\n"));
    }
    guide.push_str(&format!(
        "# Ask now (\"3\" sent to bank / \"2\" pending) and again in a few seconds (\"1\" success):\n\
         curl -s {base}/api/AOP/DMTV1/TransactionStatus --data '{{\"ReferanceID\": \"LIVE-DMT-1\", \"RegistrationID\": \"AOP-554\"}}'\n\
         curl -s {base}/api/AOP/BillPaymentStatus --data '{{\"referenceid\": \"LIVE-BILL-2\", \"RegistrationID\": \"AOP-554\"}}'\n\n\
         # Partner callbacks: run a receiver in another terminal, point {SEED_PARTNER} at it, then pay a bill.\n\
         # {SEED_PARTNER}'s callback secret (it signs X-Payrail-Signature; shown this once) is given to the receiver:\n\
         {exe} callback listen --listen 127.0.0.1:9000 --secret '{}'\n",
        callback_secret.map(|s| s.expose_secret().to_owned()).unwrap_or_else(|| "<callback secret>".into())
    ));
    if let Some(admin) = admin {
        let token = admin.expose_secret();
        guide.push_str(&format!(
            "curl -s -X PUT -H 'Authorization: Bearer {token}' {base}/admin/v1/partners/AOP-554/callback \\\n  \
             --data '{{\"url\": \"http://127.0.0.1:9000/\"}}'\n\
             curl -s {base}/api/AOP/BillPaymentPaybill --data '{{\"RegistrationID\": \"AOP-554\", \"operator\": 1, \
             \"canumber\": \"150012345678\", \"amount\": \"500\", \"referenceid\": \"WATCH-1\"}}'\n\
             # Drive a transaction by hand (kind dmt|bbps, id = ackno|txnid):\n\
             curl -s -H 'Authorization: Bearer {token}' {base}/sandbox/v1/advance \\\n  \
             --data '{{\"kind\": \"dmt\", \"id\": <ackno>, \"to\": \"success\", \"utr\": \"UTR000000001\"}}'\n"
        ));
    }
    let _ = writeln!(std::io::stdout().lock(), "{guide}");
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
