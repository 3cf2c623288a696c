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
use crate::http::{AppState, Application, EdgeSettings};
use crate::services::demo::{self, SEED_PARTNER, TOKEN_PARTNER};
use crate::services::notifier::{LogNotifier, Notifier, SmsGateway};
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
    /// Where OTP text messages are posted (JSON `{"to","message"}`); without it OTPs go to the log.
    #[arg(long, env = "PAYRAIL_SMS_GATEWAY_URL")]
    pub sms_gateway_url: Option<String>,
    /// How many synthetic transactions of each kind the demo loads.
    #[arg(long, default_value_t = 10_000, hide = true)]
    pub demo_transactions: usize,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<()> {
    let location = cli.store_location()?;
    let _lock = match &location {
        StoreLocation::Sqlite(dir) => Some(lock_data_dir(dir)?),
        StoreLocation::Postgres(_) => None,
    };
    let store = cli.open_store().await?;
    let key = Arc::new(cli.master_key(args.demo)?);
    let mut admin_token = std::env::var("PAYRAIL_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()).map(SecretString::from);
    if args.demo && admin_token.is_none() {
        admin_token = Some(random_token());
    }
    let demo_secret = if args.demo { load_demo(&*store, &key, args.demo_transactions).await? } else { None };
    let settings = EdgeSettings {
        trusted_proxies: args.trusted_proxies.clone(),
        rate_limit_per_sec: args.rate_limit,
        admin_token,
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
    let state = AppState::new(store.clone(), key, settings).with_notifier(notifier);
    let app = Application::bind(args.listen, state).await?;
    let addr = app.local_addr()?;
    tracing::info!(%addr, engine = store.engine(), "payrail is listening");
    if args.demo {
        print_demo_guide(cli, addr, demo_secret.as_ref(), admin_token.as_ref());
    }
    app.run_until(shutdown_signal()).await
}

/// On SQLite one server process owns the data directory.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(dir).with_context(|| format!("Failed to create {}", dir.display()))?;
    let path = dir.join("payrail.lock");
    let file = File::create(&path).with_context(|| format!("Failed to open {}", path.display()))?;
    file.try_lock().map_err(|_| {
        anyhow::anyhow!("another payrail server is using {}; on SQLite one server owns a data directory", dir.display())
    })?;
    Ok(file)
}

async fn load_demo(
    store: &dyn crate::store::Store,
    key: &crate::services::secrets::MasterKey,
    count: usize,
) -> anyhow::Result<Option<SecretString>> {
    eprintln!("Loading the demo data set ({count} transfers and {count} bill payments)…");
    match demo::load_demo(store, key, count).await.context("Failed to load the demo data")? {
        Some(data) => Ok(Some(data.token_secret)),
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
