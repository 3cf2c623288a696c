//! `payrail operator add|list|disable|enable|reset-password|set-role|token …`
//! and `payrail audit list`. Every command takes `--json` and then prints
//! exactly one JSON document. What is done here is audited as `cli`.

use std::io::Read as _;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::Cli;
use crate::domain::operator::{Actor, ApiToken, AuditFilter, Email, OperatorAccount, OperatorChange, Role};
use crate::domain::{SystemClock, Timestamp};
use crate::services::operators::{self, hash_password};
use crate::store::Store;

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add an operator; prints a generated password once unless --password-stdin.
    Add {
        /// The operator's email address (one account whatever its case).
        #[arg(long)]
        email: String,
        /// admin, operator or viewer.
        #[arg(long)]
        role: String,
        /// Read the password from standard input (12 to 256 characters).
        #[arg(long)]
        password_stdin: bool,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List operators.
    List {
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Disable an operator: its tokens stop working at once.
    Disable(EmailArgs),
    /// Enable a disabled operator again.
    Enable(EmailArgs),
    /// Give an operator a new password (generated and printed once unless --password-stdin).
    ResetPassword {
        /// The operator's email address.
        #[arg(long)]
        email: String,
        /// Read the password from standard input (12 to 256 characters).
        #[arg(long)]
        password_stdin: bool,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Change an operator's role.
    SetRole {
        /// The operator's email address.
        #[arg(long)]
        email: String,
        /// admin, operator or viewer.
        #[arg(long)]
        role: String,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Personal API tokens for /admin/v1/.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// An operator named by email.
#[derive(Debug, Args)]
pub struct EmailArgs {
    /// The operator's email address.
    #[arg(long)]
    email: String,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

/// Token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token for an operator; it is printed once and stored only as a hash.
    Create {
        /// Whose token.
        #[arg(long)]
        email: String,
        /// A name to tell it by.
        #[arg(long, default_value = "")]
        name: String,
        /// Expires after this many days.
        #[arg(long, conflicts_with = "expires_at")]
        expires: Option<u32>,
        /// Expires at this time: YYYY-MM-DD (midnight) or "YYYY-MM-DD HH:MM:SS", India time.
        #[arg(long)]
        expires_at: Option<String>,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List an operator's tokens (never the tokens themselves).
    List {
        /// Whose tokens.
        #[arg(long)]
        email: String,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id: it stops working at once.
    Revoke {
        /// The token's id (the 16 hex digits after `prt_`).
        id: String,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// `audit` commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The audit log, newest first.
    List(AuditListArgs),
}

/// `audit list` filters.
#[derive(Debug, Args)]
pub struct AuditListArgs {
    /// Only this operator's entries (an email, `bootstrap` or `cli`).
    #[arg(long)]
    operator: Option<String>,
    /// Only entries about this target (`dmt:123`, `partner:AOP-1001`, `operator:a@b.in`).
    #[arg(long)]
    target: Option<String>,
    /// From this time: YYYY-MM-DD or "YYYY-MM-DD HH:MM:SS", India time.
    #[arg(long)]
    from: Option<String>,
    /// Before this time: YYYY-MM-DD or "YYYY-MM-DD HH:MM:SS", India time.
    #[arg(long)]
    to: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct OperatorView {
    email: String,
    role: &'static str,
    disabled: bool,
    created_at: String,
    updated_at: String,
    /// A generated password, in the one answer that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

impl OperatorView {
    fn new(o: &OperatorAccount, password: Option<String>) -> Self {
        OperatorView {
            email: o.email.to_string(),
            role: o.role.as_str(),
            disabled: o.disabled,
            created_at: o.created_at.to_ist_string(),
            updated_at: o.updated_at.to_ist_string(),
            password,
        }
    }
}

#[derive(Serialize)]
struct TokenView {
    id: String,
    name: String,
    created_at: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    live: bool,
}

impl TokenView {
    fn new(t: &ApiToken) -> Self {
        TokenView {
            id: t.id.clone(),
            name: t.name.clone(),
            created_at: t.created_at.to_ist_string(),
            expires_at: t.expires_at.map(Timestamp::to_ist_string),
            revoked_at: t.revoked_at.map(Timestamp::to_ist_string),
            live: t.is_live(Timestamp::now()),
        }
    }
}

fn email(text: &str) -> anyhow::Result<Email> {
    Email::parse(text).map_err(|e| anyhow::anyhow!("--email {e}"))
}

fn role(text: &str) -> anyhow::Result<Role> {
    Role::parse(text).ok_or_else(|| anyhow::anyhow!("--role must be admin, operator or viewer"))
}

/// A password from standard input (one trailing newline dropped), or a generated one.
fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((operators::generate_password(), true));
    }
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_owned();
    operators::check_password(&text)?;
    Ok((text, false))
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints an account, JSON or as lines, with a generated password once.
fn show(account: &OperatorAccount, password: Option<String>, json: bool, what: &str) -> anyhow::Result<()> {
    if json {
        return print_json(&OperatorView::new(account, password));
    }
    let state = if account.disabled { "disabled" } else { "enabled" };
    println!("{}: {} ({}, {state})", what, account.email, account.role);
    if let Some(password) = password {
        println!("Password: {password}");
        println!("The password is shown only this once: hand it over now.");
    }
    Ok(())
}

/// Runs an `operator` command.
pub async fn operator(cli: &Cli, command: &OperatorCommand) -> anyhow::Result<()> {
    let store = cli.open_store().await?;
    let store = &*store;
    let (clock, actor) = (&SystemClock, &Actor::Cli);
    match command {
        OperatorCommand::Add { email: address, role: wanted, password_stdin, json } => {
            let (address, wanted) = (email(address)?, role(wanted)?);
            let (password, generated) = password(*password_stdin)?;
            let added = operators::add(store, clock, address, wanted, &password, actor).await?;
            show(&added, generated.then_some(password), *json, "Added")
        }
        OperatorCommand::List { json } => list(store, *json).await,
        OperatorCommand::Disable(args) | OperatorCommand::Enable(args) => {
            let disable = matches!(command, OperatorCommand::Disable(_));
            let change = OperatorChange::SetDisabled(disable);
            let (_, after) = operators::change(store, clock, &email(&args.email)?, change, actor).await?;
            show(&after, None, args.json, if disable { "Disabled" } else { "Enabled" })
        }
        OperatorCommand::ResetPassword { email: address, password_stdin, json } => {
            let address = email(address)?;
            operators::find(store, &address).await?;
            let (password, generated) = password(*password_stdin)?;
            let change = OperatorChange::SetPassword(hash_password(&password)?);
            let (_, after) = operators::change(store, clock, &address, change, actor).await?;
            show(&after, generated.then_some(password), *json, "New password for")
        }
        OperatorCommand::SetRole { email: address, role: wanted, json } => {
            let change = OperatorChange::SetRole(role(wanted)?);
            let (_, after) = operators::change(store, clock, &email(address)?, change, actor).await?;
            show(&after, None, *json, "Role set")
        }
        OperatorCommand::Token(command) => token(store, command).await,
    }
}

async fn list(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let all = store.list_operators().await?;
    if json {
        #[derive(Serialize)]
        struct Listed {
            operators: Vec<OperatorView>,
        }
        return print_json(&Listed { operators: all.iter().map(|o| OperatorView::new(o, None)).collect() });
    }
    println!("{:<40} {:<9} {:<9} CREATED (IST)", "EMAIL", "ROLE", "STATE");
    for o in &all {
        let state = if o.disabled { "disabled" } else { "enabled" };
        println!("{:<40} {:<9} {:<9} {}", o.email, o.role, state, o.created_at.to_ist_string());
    }
    Ok(())
}

/// When a token made now should expire, from `--expires` or `--expires-at`.
fn expiry(days: Option<u32>, at: Option<&str>, now: Timestamp) -> anyhow::Result<Option<Timestamp>> {
    let until = match (days, at) {
        (Some(0), _) => anyhow::bail!("--expires must be at least 1 day"),
        (Some(days), _) => Some(now.plus_secs(i64::from(days) * 86_400)),
        (None, Some(text)) => {
            Some(Timestamp::parse_ist(text).or_else(|_| Timestamp::parse_ist_date(text)).map_err(|_| {
                anyhow::anyhow!("--expires-at must be YYYY-MM-DD or \"YYYY-MM-DD HH:MM:SS\" (India time)")
            })?)
        }
        (None, None) => None,
    };
    if until.is_some_and(|until| until <= now) {
        anyhow::bail!("--expires-at must be in the future");
    }
    Ok(until)
}

async fn token(store: &dyn Store, command: &TokenCommand) -> anyhow::Result<()> {
    let (clock, actor) = (&SystemClock, &Actor::Cli);
    match command {
        TokenCommand::Create { email: address, name, expires, expires_at, json } => {
            if name.chars().count() > 100 || name.chars().any(char::is_control) {
                anyhow::bail!("--name must be at most 100 characters, without control characters");
            }
            let until = expiry(*expires, expires_at.as_deref(), Timestamp::now())?;
            let (owner, issued) =
                operators::create_token(store, clock, &email(address)?, name.clone(), until, actor).await?;
            if *json {
                #[derive(Serialize)]
                struct Created<'a> {
                    token: &'a str,
                    id: &'a str,
                    email: String,
                    role: &'static str,
                    name: &'a str,
                    expires_at: Option<String>,
                }
                let stored = &issued.stored;
                return print_json(&Created {
                    token: &issued.token,
                    id: &stored.id,
                    email: owner.email.to_string(),
                    role: owner.role.as_str(),
                    name: &stored.name,
                    expires_at: stored.expires_at.map(Timestamp::to_ist_string),
                });
            }
            println!("Token:   {}", issued.token);
            println!("Id:      {} ({}, {})", issued.stored.id, owner.email, owner.role);
            match issued.stored.expires_at {
                Some(until) => println!("Expires: {} (India time)", until.to_ist_string()),
                None => {
                    println!("Expires: never (revoke it with `payrail operator token revoke {}`)", issued.stored.id)
                }
            }
            println!("The token is shown only this once: store it now.");
            Ok(())
        }
        TokenCommand::List { email: address, json } => {
            let owner = operators::find(store, &email(address)?).await?;
            let tokens: Vec<TokenView> = store.list_tokens(owner.id).await?.iter().map(TokenView::new).collect();
            if *json {
                #[derive(Serialize)]
                struct Listed {
                    email: String,
                    tokens: Vec<TokenView>,
                }
                return print_json(&Listed { email: owner.email.to_string(), tokens });
            }
            println!("{:<17} {:<20} {:<20} {:<8} NAME", "ID", "CREATED (IST)", "EXPIRES (IST)", "STATE");
            for t in tokens {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.live {
                    "live"
                } else {
                    "expired"
                };
                let expires = t.expires_at.unwrap_or_else(|| "never".into());
                println!("{:<17} {:<20} {:<20} {:<8} {}", t.id, t.created_at, expires, state, t.name);
            }
            Ok(())
        }
        TokenCommand::Revoke { id, json } => {
            let revoked = operators::revoke_token(store, clock, id, actor).await?;
            if *json {
                return print_json(&TokenView::new(&revoked));
            }
            println!("Token {} revoked", revoked.id);
            Ok(())
        }
    }
}

/// Runs an `audit` command.
pub async fn audit(cli: &Cli, command: &AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List(args) = command;
    let store = cli.open_store().await?;
    let time = |flag: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| {
                Timestamp::parse_ist(t)
                    .or_else(|_| Timestamp::parse_ist_date(t))
                    .map_err(|_| anyhow::anyhow!("--{flag} must be YYYY-MM-DD or \"YYYY-MM-DD HH:MM:SS\" (India time)"))
            })
            .transpose()
    };
    if !(1..=10_000).contains(&args.limit) {
        anyhow::bail!("--limit must be 1 to 10000");
    }
    let filter = AuditFilter {
        actor: args.operator.as_deref().map(str::to_ascii_lowercase),
        target: args.target.clone(),
        from: time("from", &args.from)?,
        to: time("to", &args.to)?,
        before: None,
        limit: args.limit,
    };
    let entries = store.list_audit(&filter).await?;
    if args.json {
        #[derive(Serialize)]
        struct Entry {
            id: i64,
            at: String,
            operator: String,
            action: String,
            target: String,
            before: Option<serde_json::Value>,
            after: Option<serde_json::Value>,
        }
        #[derive(Serialize)]
        struct Listed {
            entries: Vec<Entry>,
        }
        let json = |t: &Option<String>| t.as_deref().and_then(|t| serde_json::from_str(t).ok());
        let entries = entries
            .iter()
            .map(|e| Entry {
                id: e.id,
                at: e.entry.at.to_ist_string(),
                operator: e.entry.actor.clone(),
                action: e.entry.action.clone(),
                target: e.entry.target.clone(),
                before: json(&e.entry.before),
                after: json(&e.entry.after),
            })
            .collect();
        return print_json(&Listed { entries });
    }
    println!("{:<6} {:<20} {:<30} {:<24} TARGET", "ID", "AT (IST)", "OPERATOR", "ACTION");
    for e in &entries {
        let e2 = &e.entry;
        println!("{:<6} {:<20} {:<30} {:<24} {}", e.id, e2.at.to_ist_string(), e2.actor, e2.action, e2.target);
    }
    Ok(())
}
