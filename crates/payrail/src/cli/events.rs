//! `payrail callback …`, `payrail events …` and `payrail upstream held`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use super::money::partner;
use super::Cli;
use crate::domain::event::{self, EventFilter, EventState, PartnerEvent};
use crate::domain::{Clock as _, RegistrationId, SystemClock, TxnKind};
use crate::http::admin_events::callback_url;
use crate::services::callback_secrets;
use crate::services::secrets::MissingKey;
use secrecy::{ExposeSecret as _, SecretString};

/// Partner callback URL commands.
#[derive(Debug, Subcommand)]
pub enum CallbackCommand {
    /// Set where a partner's status callbacks go. The first time, the
    /// partner's callback secret (which signs them) is made and shown, once.
    Set {
        /// The partner, e.g. AOP-1001.
        registration_id: String,
        /// An http or https URL.
        url: String,
        /// Print JSON: {"partner", "url", "callback_secret"} (the secret only when made).
        #[arg(long)]
        json: bool,
    },
    /// Give a partner a new callback secret, shown once; the old one also
    /// signs callbacks during the overlap (both signatures are sent).
    RotateSecret {
        /// The partner.
        registration_id: String,
        /// How long the old secret keeps signing, in hours (0: stop at once).
        #[arg(long, default_value_t = 24)]
        overlap_hours: u64,
    },
    /// Stop writing callback events for a partner; its pending events are cancelled.
    Clear {
        /// The partner.
        registration_id: String,
    },
    /// Print a partner's callback URL.
    Show {
        /// The partner.
        registration_id: String,
    },
    /// Receive callbacks and print them (a stand-in partner, for trying payrail out).
    Listen {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: std::net::SocketAddr,
        /// The partner's callback secret (shown when its URL was first set), to check each
        /// signature (better: PAYRAIL_CALLBACK_SECRET or --secret-file, which `ps` does not show).
        #[arg(long, env = "PAYRAIL_CALLBACK_SECRET", hide_env_values = true)]
        secret: Option<secrecy::SecretString>,
        /// Read that secret from this file, or from standard input if `-`.
        #[arg(long, value_name = "PATH", conflicts_with = "secret")]
        secret_file: Option<std::path::PathBuf>,
    },
}

/// Callback event commands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List events, newest first.
    List {
        /// Only this partner's.
        #[arg(long)]
        partner: Option<String>,
        /// Only events in this state: pending, delivered, failed, cancelled.
        #[arg(long)]
        state: Option<String>,
        /// Only events about this transaction: dmt:<ackno> or bbps:<txnid>.
        #[arg(long)]
        txn: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show an event, its exact body and every delivery attempt.
    Show {
        /// The event id.
        id: i64,
    },
    /// Deliver an event again (pending, due now, with a fresh 24 h window), flagged as a redelivery.
    Redeliver {
        /// The event id.
        id: i64,
    },
}

/// Upstream follow-up commands.
#[derive(Debug, Subcommand)]
pub enum UpstreamCommand {
    /// List the transactions the poller gave up on (transfers are on hold), for review.
    Held,
    /// Start polling a transaction again from the top of the schedule (a held one, say).
    Resume {
        /// dmt:<ackno> or bbps:<txnid>.
        txn: String,
    },
}

async fn existing_partner(
    cli: &Cli,
    text: &str,
) -> anyhow::Result<(std::sync::Arc<dyn crate::store::Store>, RegistrationId)> {
    let id = partner(text)?;
    let store = cli.open_store().await?;
    if store.find_partner(id).await?.is_none() {
        anyhow::bail!("no partner {id}");
    }
    Ok((store, id))
}

/// Runs a `callback` command.
pub async fn callback(cli: &Cli, command: &CallbackCommand) -> anyhow::Result<()> {
    match command {
        CallbackCommand::Set { registration_id, url, json } => {
            let url = callback_url(url).map_err(anyhow::Error::msg)?;
            let (store, id) = existing_partner(cli, registration_id).await?;
            let key = cli.master_key(&*store, MissingKey::Refuse).await?;
            let made = callback_secrets::set_callback(&*store, &SystemClock, &key, id, url.clone()).await?;
            show_callback_set(id, &url, made.as_ref(), *json)?;
        }
        CallbackCommand::RotateSecret { registration_id, overlap_hours } => {
            let (store, id) = existing_partner(cli, registration_id).await?;
            let key = cli.master_key(&*store, MissingKey::Refuse).await?;
            let overlap = std::time::Duration::from_secs(overlap_hours.saturating_mul(3600));
            let (secret, until) = callback_secrets::rotate_secret(&*store, &SystemClock, &key, id, overlap).await?;
            println!("{id} callback secret: {}", secret.expose_secret());
            println!("It is shown only this once: give it to the partner now.");
            if !overlap.is_zero() {
                println!(
                    "Until {} (India time) callbacks carry the old secret's signature too.",
                    until.to_ist_string()
                );
            }
        }
        CallbackCommand::Clear { registration_id } => {
            let (store, id) = existing_partner(cli, registration_id).await?;
            store.set_callback_url(id, None, SystemClock.now()).await?;
            println!("{id}: no callback URL; no more events are written, and pending ones are cancelled");
        }
        CallbackCommand::Listen { listen, secret, secret_file } => {
            let secret = super::secret_input::read(secret.as_ref(), secret_file.as_deref())?;
            listen_for_callbacks(*listen, secret).await?
        }
        CallbackCommand::Show { registration_id } => {
            let (store, id) = existing_partner(cli, registration_id).await?;
            match store.callback_url(id).await? {
                Some(url) => println!("{url}"),
                None => println!("{id} has no callback URL"),
            }
        }
    }
    Ok(())
}

/// What `callback set` prints: where callbacks go and, when it was just
/// made, the callback secret.
fn show_callback_set(id: RegistrationId, url: &str, secret: Option<&SecretString>, json: bool) -> anyhow::Result<()> {
    if json {
        let shown = serde_json::json!({
            "partner": id.to_string(),
            "url": url,
            "callback_secret": secret.map(|s| s.expose_secret()),
        });
        println!("{shown}");
        return Ok(());
    }
    println!("{id}: callbacks go to {url}");
    match secret {
        Some(secret) => {
            println!("callback secret: {}", secret.expose_secret());
            println!("It signs X-Payrail-Signature and is shown only this once: give it to the partner now.");
        }
        None => {
            println!("The partner's callback secret is unchanged (`payrail callback rotate-secret` makes a new one).")
        }
    }
    Ok(())
}

/// Prints every callback POSTed to `listen`, answering 204.
async fn listen_for_callbacks(
    listen: std::net::SocketAddr,
    secret: Option<secrecy::SecretString>,
) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("Failed to listen on {listen}"))?;
    println!("listening for payrail callbacks on http://{listen}/ (Ctrl-C to stop)");
    let route = axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
        let secret = secret.clone();
        async move {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let (timestamp, signature) = (header("x-payrail-timestamp"), header("x-payrail-signature"));
            let verdict = match (&secret, timestamp.parse::<i64>()) {
                (Some(secret), Ok(ts))
                    if event::signature_verifies(&signature, secret.expose_secret().as_bytes(), ts, &body) =>
                {
                    "signature ok"
                }
                (Some(_), _) => "SIGNATURE DOES NOT VERIFY",
                (None, _) => "signature not checked (no --secret)",
            };
            println!("event {} ({verdict}): {body}", header("x-payrail-event-id"));
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let app = axum::Router::new().fallback(route);
    axum::serve(listener, app).await.context("callback listener failed")
}

fn filter(
    partner_text: Option<&str>,
    state: Option<&str>,
    txn: Option<&str>,
    limit: u32,
) -> anyhow::Result<EventFilter> {
    let state = state
        .map(|s| {
            EventState::parse(s)
                .with_context(|| format!("{s:?}: state must be pending, delivered, failed or cancelled"))
        })
        .transpose()?;
    let txn = txn.map(txn_ref).transpose()?;
    if !(1..=1000).contains(&limit) {
        anyhow::bail!("--limit must be between 1 and 1000");
    }
    Ok(EventFilter { partner: partner_text.map(partner).transpose()?, state, txn, before_id: None, limit })
}

/// Reads `dmt:<ackno>` or `bbps:<txnid>`.
fn txn_ref(text: &str) -> anyhow::Result<(TxnKind, i64)> {
    let wrong = || anyhow::anyhow!("{text:?}: a transaction is dmt:<ackno> or bbps:<txnid>");
    let (kind, id) = text.split_once(':').ok_or_else(wrong)?;
    Ok((TxnKind::parse(kind).ok_or_else(wrong)?, id.parse::<i64>().map_err(|_| wrong())?))
}

fn line(e: &PartnerEvent) -> String {
    let next =
        e.next_attempt_shown(SystemClock.now()).map(|t| format!(" next {}", t.to_ist_string())).unwrap_or_default();
    format!(
        "{:>8}  {}  {}:{}  {:<12} {:<9} attempts {}{}  ({})",
        e.id,
        e.partner,
        e.kind.as_str(),
        e.txn_id,
        e.status,
        e.state.name(),
        e.attempts,
        next,
        e.created_at.to_ist_string()
    )
}

/// Runs an `events` command.
pub async fn events(cli: &Cli, command: &EventsCommand) -> anyhow::Result<ExitCode> {
    let store = cli.open_store().await?;
    match command {
        EventsCommand::List { partner, state, txn, limit } => {
            let filter = filter(partner.as_deref(), state.as_deref(), txn.as_deref(), *limit)?;
            let events = store.events(&filter).await?;
            if events.is_empty() {
                println!("no events");
            }
            for event in &events {
                println!("{}", line(event));
            }
        }
        EventsCommand::Show { id } => {
            let (event, attempts) = store.event_with_attempts(*id).await?.with_context(|| format!("no event {id}"))?;
            println!("{}\n{}", line(&event), event.body());
            for a in &attempts {
                let status = a.http_status.map(|s| format!("HTTP {s}")).unwrap_or_else(|| "no answer".into());
                let error = a.error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default();
                println!(
                    "  attempt {} at {} by {} to {}: {status} in {} ms{error}",
                    a.attempt,
                    a.at.to_ist_string(),
                    a.instance,
                    a.url,
                    a.duration_ms
                );
            }
        }
        EventsCommand::Redeliver { id } => {
            let event =
                store.redeliver_event(*id, SystemClock.now()).await?.with_context(|| format!("no event {id}"))?;
            println!("{}", line(&event));
            println!("queued: a running payrail server delivers it within a second or two");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs an `upstream` command.
pub async fn upstream(cli: &Cli, command: &UpstreamCommand) -> anyhow::Result<()> {
    let store = cli.open_store().await?;
    match command {
        UpstreamCommand::Held => {
            let held = store.held_polls().await?;
            if held.is_empty() {
                println!("nothing held");
            }
            for job in held {
                println!("{}:{}  after {} polls", job.kind.as_str(), job.txn_id, job.attempts);
            }
        }
        UpstreamCommand::Resume { txn } => {
            let (kind, id) = txn_ref(txn)?;
            let exists = match kind {
                TxnKind::Dmt => store.dmt_with_history(id).await?.is_some(),
                TxnKind::Bbps => store.bill_with_history(id).await?.is_some(),
            };
            if !exists {
                anyhow::bail!("no {} transaction {id}", kind.as_str());
            }
            store.schedule_poll(kind, id, SystemClock.now()).await?;
            println!("{txn}: the poller asks the upstream again now, then on its schedule");
        }
    }
    Ok(())
}
