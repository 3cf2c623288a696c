//! `payrail partner add|list|suspend|activate|rotate-secret`.

use clap::{Args, Subcommand};
use ipnet::IpNet;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;

use super::Cli;
use crate::domain::{IpAllowlist, PartnerStatus, RegistrationId, SystemClock};
use crate::services::partners::{self, PartnerRequest};
use crate::services::secrets::MissingKey;

/// Partner commands.
#[derive(Debug, Subcommand)]
pub enum PartnerCommand {
    /// Add a partner; prints its RegistrationID and secret (shown once).
    Add(AddArgs),
    /// List partners.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Refuse every request of a partner from now on.
    Suspend {
        /// The partner, e.g. AOP-1001.
        registration_id: String,
    },
    /// Serve a suspended partner again.
    Activate {
        /// The partner, e.g. AOP-1001.
        registration_id: String,
    },
    /// Give a partner a new secret; the old one keeps working for the overlap.
    RotateSecret {
        /// The partner, e.g. AOP-1001.
        registration_id: String,
        /// How long the old secret stays valid, in hours.
        #[arg(long, default_value_t = 24)]
        overlap_hours: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `partner add` options.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// A name for operators.
    #[arg(long)]
    name: String,
    /// An address or CIDR block the partner may call from (repeat; none means anywhere).
    #[arg(long = "allow-ip")]
    allow_ips: Vec<IpNet>,
    /// Do not require a signed Token header (then --allow-ip is required, and not 0.0.0.0/0 or ::/0).
    #[arg(long)]
    no_token: bool,
    /// An Authorisedkey the partner must send with every request.
    #[arg(long, env = "PAYRAIL_AUTHORISED_KEY", hide_env_values = true)]
    authorised_key: Option<SecretString>,
    /// Print `{"registration_id":…,"secret":…}`.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Created<'a> {
    registration_id: String,
    secret: &'a str,
}

#[derive(Serialize)]
struct Listed {
    registration_id: String,
    name: String,
    status: &'static str,
    require_token: bool,
    allow_ips: String,
    created_at: String,
}

fn registration(text: &str) -> anyhow::Result<RegistrationId> {
    RegistrationId::parse(text).map_err(|e| anyhow::anyhow!("{text:?}: {e}"))
}

/// Runs a partner command.
pub async fn run(cli: &Cli, command: &PartnerCommand) -> anyhow::Result<()> {
    let store = cli.open_store().await?;
    match command {
        PartnerCommand::Add(args) => {
            let key = cli.master_key(&*store, MissingKey::Refuse).await?;
            let allowlist = IpAllowlist::from_nets(args.allow_ips.clone());
            let request = PartnerRequest {
                number: None,
                name: args.name.clone(),
                allowlist,
                require_token: !args.no_token,
                authorised_key: args.authorised_key.clone(),
            };
            let added = partners::add_partner(&*store, &SystemClock, &key, request).await?;
            show_secret_once(added.partner.registration_id, &added.secret, args.json, None)
        }
        PartnerCommand::List { json } => list(&*store, *json).await,
        PartnerCommand::Suspend { registration_id } => {
            partners::set_status(&*store, registration(registration_id)?, PartnerStatus::Suspended).await?;
            println!("{registration_id} suspended");
            Ok(())
        }
        PartnerCommand::Activate { registration_id } => {
            partners::set_status(&*store, registration(registration_id)?, PartnerStatus::Active).await?;
            println!("{registration_id} active");
            Ok(())
        }
        PartnerCommand::RotateSecret { registration_id, overlap_hours, json } => {
            let key = cli.master_key(&*store, MissingKey::Refuse).await?;
            let id = registration(registration_id)?;
            let overlap = std::time::Duration::from_secs(overlap_hours * 3600);
            let (secret, until) = partners::rotate_secret(&*store, &SystemClock, &key, id, overlap).await?;
            show_secret_once(id, &secret, *json, Some(until.to_ist_string()))
        }
    }
}

/// The one place a partner secret is shown: at creation or rotation.
fn show_secret_once(
    id: RegistrationId,
    secret: &SecretString,
    json: bool,
    old_until: Option<String>,
) -> anyhow::Result<()> {
    if json {
        let created = Created { registration_id: id.to_string(), secret: secret.expose_secret() };
        println!("{}", serde_json::to_string(&created)?);
    } else {
        println!("RegistrationID: {id}");
        println!("Secret:         {}", secret.expose_secret());
        println!("The secret is shown only this once: store it now.");
        if let Some(until) = old_until {
            println!("The previous secret keeps working until {until} (India time).");
        }
    }
    Ok(())
}

async fn list(store: &dyn crate::store::Store, json: bool) -> anyhow::Result<()> {
    let listed: Vec<Listed> = store
        .list_partners()
        .await?
        .into_iter()
        .map(|p| Listed {
            registration_id: p.registration_id.to_string(),
            name: p.name,
            status: p.status.as_str(),
            require_token: p.require_token,
            allow_ips: if p.allowlist.is_empty() { "any".into() } else { p.allowlist.to_stored() },
            created_at: p.created_at.to_ist_string(),
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(());
    }
    println!("{:<12} {:<10} {:<6} {:<24} {:<20} NAME", "ID", "STATUS", "TOKEN", "ALLOW", "CREATED (IST)");
    for p in listed {
        let token = if p.require_token { "yes" } else { "no" };
        println!(
            "{:<12} {:<10} {:<6} {:<24} {:<20} {}",
            p.registration_id, p.status, token, p.allow_ips, p.created_at, p.name
        );
    }
    Ok(())
}
