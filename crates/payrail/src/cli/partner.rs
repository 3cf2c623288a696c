//! `payrail partner add|list|show|suspend|activate|rotate-secret|set-allowlist|set-authorised-key`:
//! the same service functions as `/admin/v1/partners…`, audited as the shell
//! (`cli`). With `--json` each prints one JSON document.

use clap::{Args, Subcommand};
use ipnet::IpNet;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;

use super::Cli;
use crate::domain::operator::{Actor, NewAuditEntry};
use crate::domain::{Clock as _, IpAllowlist, Partner, PartnerStatus, RegistrationId, SystemClock};
use crate::services::partners::{self, PartnerRequest, PartnerView};
use crate::services::secrets::MissingKey;
use crate::store::Store;

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
    /// Show a partner (never its secret or Authorisedkey).
    Show(IdArgs),
    /// Refuse every request of a partner from now on.
    Suspend(IdArgs),
    /// Serve a suspended partner again.
    Activate(IdArgs),
    /// Replace where a partner may call from (and whether it needs tokens).
    SetAllowlist {
        /// The partner, e.g. AOP-1001.
        registration_id: String,
        /// An address or CIDR block the partner may call from (repeat; none means anywhere).
        #[arg(long = "allow-ip")]
        allow_ips: Vec<IpNet>,
        /// Stop requiring a signed Token header (then --allow-ip is required).
        #[arg(long, conflicts_with = "require_token")]
        no_token: bool,
        /// Require a signed Token header again.
        #[arg(long)]
        require_token: bool,
        /// Print the partner as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set the Authorisedkey a partner must send (from PAYRAIL_AUTHORISED_KEY), or clear it.
    SetAuthorisedKey {
        /// The partner, e.g. AOP-1001.
        registration_id: String,
        /// The key (better in PAYRAIL_AUTHORISED_KEY, which `ps` does not show).
        #[arg(long, env = "PAYRAIL_AUTHORISED_KEY", hide_env_values = true, required_unless_present = "clear")]
        authorised_key: Option<SecretString>,
        /// Stop requiring an Authorisedkey.
        #[arg(long)]
        clear: bool,
        /// Print the partner as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give a partner a new secret; the old one keeps working for the overlap.
    RotateSecret {
        /// The partner, e.g. AOP-1001.
        registration_id: String,
        /// How long the old secret stays valid, in hours.
        #[arg(long, default_value_t = 24)]
        overlap_hours: u64,
        /// Print JSON: {"registration_id", "secret", "previous_secret_valid_until"}.
        #[arg(long)]
        json: bool,
    },
}

/// A command naming one partner.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The partner, e.g. AOP-1001.
    registration_id: String,
    /// Print the partner as JSON.
    #[arg(long)]
    json: bool,
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
    /// Until when the previous secret keeps working (rotation only), India time.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_valid_until: Option<String>,
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
            let after = PartnerView::new(&added.partner).to_json();
            let target = format!("partner:{}", added.partner.registration_id);
            let entry = NewAuditEntry::new(SystemClock.now(), &Actor::Cli, "partner.add", target);
            store.append_audit(entry.changed(&serde_json::Value::Null, &after)).await?;
            show_secret_once(added.partner.registration_id, &added.secret, args.json, None)
        }
        PartnerCommand::List { json } => list(&*store, *json).await,
        PartnerCommand::Show(args) => {
            let id = registration(&args.registration_id)?;
            show(&*store, id, args.json, "").await
        }
        PartnerCommand::Suspend(args) | PartnerCommand::Activate(args) => {
            let id = registration(&args.registration_id)?;
            let (status, action) = match command {
                PartnerCommand::Suspend(_) => (PartnerStatus::Suspended, "partner.suspend"),
                _ => (PartnerStatus::Active, "partner.activate"),
            };
            let before = current(&*store, id).await?;
            partners::set_status(&*store, id, status).await?;
            audited(&*store, action, &before).await?;
            show(&*store, id, args.json, status.as_str()).await
        }
        PartnerCommand::SetAllowlist { registration_id, allow_ips, no_token, require_token, json } => {
            let id = registration(registration_id)?;
            let before = current(&*store, id).await?;
            let tokens = if *no_token { false } else { *require_token || before.require_token };
            partners::set_access(&*store, id, tokens, IpAllowlist::from_nets(allow_ips.clone())).await?;
            audited(&*store, "partner.set_allowlist", &before).await?;
            show(&*store, id, *json, "allowlist set").await
        }
        PartnerCommand::SetAuthorisedKey { registration_id, authorised_key, clear, json } => {
            let id = registration(registration_id)?;
            let before = current(&*store, id).await?;
            let key = if *clear { None } else { authorised_key.as_ref() };
            partners::set_authorised_key(&*store, id, key).await?;
            audited(&*store, "partner.set_authorised_key", &before).await?;
            show(&*store, id, *json, if key.is_some() { "Authorisedkey set" } else { "Authorisedkey cleared" }).await
        }
        PartnerCommand::RotateSecret { registration_id, overlap_hours, json } => {
            let key = cli.master_key(&*store, MissingKey::Refuse).await?;
            let id = registration(registration_id)?;
            let overlap = std::time::Duration::from_secs(overlap_hours * 3600);
            let before = current(&*store, id).await?;
            let (secret, until) = partners::rotate_secret(&*store, &SystemClock, &key, id, overlap).await?;
            audited(&*store, "partner.rotate_secret", &before).await?;
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
        let created = Created {
            registration_id: id.to_string(),
            secret: secret.expose_secret(),
            previous_secret_valid_until: old_until.clone(),
        };
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

/// The partner `id` as it is now; an error if there is none.
async fn current(store: &dyn Store, id: RegistrationId) -> anyhow::Result<Partner> {
    store.find_partner(id).await?.ok_or_else(|| anyhow::anyhow!("no partner {id}"))
}

/// Audits `action` on the partner `before` was (as it is now after it), as the shell.
async fn audited(store: &dyn Store, action: &str, before: &Partner) -> anyhow::Result<()> {
    let after = PartnerView::new(&current(store, before.registration_id).await?).to_json();
    let target = format!("partner:{}", before.registration_id);
    let entry = NewAuditEntry::new(SystemClock.now(), &Actor::Cli, action, target);
    store.append_audit(entry.changed(&PartnerView::new(before).to_json(), &after)).await?;
    Ok(())
}

/// Prints the partner `id`: as JSON, or a line with `what` happened.
async fn show(store: &dyn Store, id: RegistrationId, json: bool, what: &str) -> anyhow::Result<()> {
    let view = PartnerView::new(&current(store, id).await?);
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    if !what.is_empty() {
        println!("{id} {what}");
        return Ok(());
    }
    let allow = if view.allow_ips.is_empty() { "any".to_owned() } else { view.allow_ips.join(",") };
    println!("RegistrationID:     {}", view.registration_id);
    println!("Name:               {}", view.name);
    println!("Status:             {}", view.status);
    println!("Token required:     {}", if view.require_token { "yes" } else { "no" });
    println!("Allowed addresses:  {allow}");
    println!("Authorisedkey:      {}", if view.authorised_key_set { "set" } else { "none" });
    if let Some(until) = &view.previous_secret_valid_until {
        println!("Previous secret:    works until {until} (India time)");
    }
    println!("Created (IST):      {}", view.created_at);
    Ok(())
}

async fn list(store: &dyn Store, json: bool) -> anyhow::Result<()> {
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
