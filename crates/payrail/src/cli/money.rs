//! `payrail wallet …`, `payrail plan …`, `payrail settle` and `payrail tds-report`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::Cli;
use crate::domain::fee_plan::FeePlan;
use crate::domain::operator::{Actor, NewAuditEntry};
use crate::domain::Clock as _;
use crate::domain::{Paise, RegistrationId, SystemClock};
use crate::http::admin_money::{instant, period, Plans};
use crate::http::admin_settlement::RunView;
use crate::services::fees;
use crate::services::ledger::{self, OperatorMove};
use crate::services::settlement::{self, Month, Quarter};

/// Wallet commands.
#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Credit money received from a partner to its wallet.
    Topup(Movement),
    /// Take money out of a partner's wallet (paid back to it).
    Withdraw(Movement),
    /// Print a partner's wallet balance.
    Balance {
        /// The partner, e.g. AOP-1001.
        registration_id: String,
    },
    /// Write a partner's statement for a period as CSV, with opening and closing balances.
    Statement {
        /// The partner, e.g. AOP-1001.
        registration_id: String,
        /// First day, YYYY-MM-DD (India time).
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD (included).
        #[arg(long)]
        to: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A top-up or withdrawal.
#[derive(Debug, Args)]
pub struct Movement {
    /// The partner, e.g. AOP-1001.
    registration_id: String,
    /// Rupees, e.g. 5000 or 1234.50.
    amount: String,
    /// A note for the statement.
    #[arg(long)]
    memo: Option<String>,
}

/// Fee plan commands.
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Add a new version of a partner's fee plan from a JSON file.
    Set {
        /// The partner, e.g. AOP-1001.
        registration_id: String,
        /// The plan (see the README, "Fee plans").
        #[arg(long)]
        file: PathBuf,
        /// From when it applies: YYYY-MM-DD or "YYYY-MM-DD HH:MM:SS", India time.
        #[arg(long)]
        from: String,
    },
    /// Print a partner's plan versions and the default plan as one JSON
    /// document: {"partner", "default_plan", "versions"}, as GET /admin/v1/partners/{id}/fee-plans.
    Show {
        /// The partner, e.g. AOP-1001.
        registration_id: String,
        /// Print JSON (the only form; accepted for symmetry with the other commands).
        #[arg(long)]
        json: bool,
    },
}

/// Reads a registration id given on the command line.
pub(super) fn partner(text: &str) -> anyhow::Result<RegistrationId> {
    RegistrationId::parse(text).map_err(|e| anyhow::anyhow!("{text:?}: {e}"))
}

/// Runs a wallet command.
pub async fn wallet(cli: &Cli, command: &WalletCommand) -> anyhow::Result<()> {
    let store = cli.open_store().await?;
    match command {
        WalletCommand::Topup(m) | WalletCommand::Withdraw(m) => {
            let id = partner(&m.registration_id)?;
            let amount = Paise::parse(&m.amount).map_err(|e| anyhow::anyhow!("amount {:?}: {e}", m.amount))?;
            let way = match command {
                WalletCommand::Topup(_) => OperatorMove::TopUp,
                _ => OperatorMove::Withdrawal,
            };
            let memo = m.memo.as_deref().unwrap_or(way.default_memo());
            let moved = ledger::move_money(&*store, &SystemClock, id, way, amount, memo).await;
            let moved = moved.with_context(|| format!("wallet of {id} not moved"))?;
            println!("{id}: {} -> {}", moved.opening.to_decimal_string(), moved.closing.to_decimal_string());
        }
        WalletCommand::Balance { registration_id } => {
            let id = partner(registration_id)?;
            anyhow::ensure!(store.find_partner(id).await?.is_some(), "no partner {id}");
            println!("{}", store.wallet_balance(id).await?.to_decimal_string());
        }
        WalletCommand::Statement { registration_id, from, to, out } => {
            let id = partner(registration_id)?;
            anyhow::ensure!(store.find_partner(id).await?.is_some(), "no partner {id}");
            let (start, end) = period(from, to).map_err(anyhow::Error::msg)?;
            let csv = ledger::statement_csv(&*store, id, start, end).await?;
            match out {
                Some(path) => {
                    std::fs::write(path, csv).with_context(|| format!("Failed to write {}", path.display()))?
                }
                None => print!("{csv}"),
            }
        }
    }
    Ok(())
}

/// Runs a plan command.
pub async fn plan(cli: &Cli, command: &PlanCommand) -> anyhow::Result<()> {
    let store = cli.open_store().await?;
    match command {
        PlanCommand::Set { registration_id, file, from } => {
            let id = partner(registration_id)?;
            let text = std::fs::read_to_string(file).with_context(|| format!("Failed to read {}", file.display()))?;
            let plan = FeePlan::from_json(&text).with_context(|| format!("{} is not a valid plan", file.display()))?;
            let from = instant(from).map_err(anyhow::Error::msg)?;
            let version = fees::set_plan(&*store, &SystemClock, id, plan, from).await.context("plan not recorded")?;
            println!("{id}: plan version {} in force from {}", version.version, version.effective_from.to_ist_string());
        }
        PlanCommand::Show { registration_id, json: _ } => {
            let id = partner(registration_id)?;
            anyhow::ensure!(store.find_partner(id).await?.is_some(), "no partner {id}");
            let plans = Plans::new(id, store.fee_plans(id).await?);
            println!("{}", serde_json::to_string_pretty(&plans)?);
        }
    }
    Ok(())
}

/// `payrail settle --month YYYY-MM`: pays each partner its net commission
/// for a month that is over, once (a second run pays nothing more).
#[derive(Debug, Args)]
pub struct SettleArgs {
    /// The month, YYYY-MM (India time); it must be over.
    #[arg(long)]
    month: String,
    /// Print the outcome as one JSON document, as POST /admin/v1/settlements answers.
    #[arg(long)]
    json: bool,
}

/// Runs `settle`.
pub async fn settle(cli: &Cli, args: &SettleArgs) -> anyhow::Result<()> {
    let month = Month::parse(&args.month).map_err(anyhow::Error::msg)?;
    let store = cli.open_store().await?;
    let run = settlement::settle(&*store, &SystemClock, month).await?;
    if !run.paid.is_empty() {
        let paid: Vec<String> =
            run.paid.iter().map(|s| format!("{} {}", s.partner, s.amount.to_decimal_string())).collect();
        let entry = NewAuditEntry::new(SystemClock.now(), &Actor::Cli, "settlement.run", format!("month:{month}"))
            .changed(&serde_json::Value::Null, &serde_json::json!({ "paid": paid }));
        store.append_audit(entry).await?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&RunView::new(month, &run))?);
        return Ok(());
    }
    for s in &run.paid {
        println!("{}: paid {} (journal {})", s.partner, s.amount.to_decimal_string(), s.journal_id);
    }
    for s in &run.already {
        println!(
            "{}: already paid {} on {} (nothing more paid)",
            s.partner,
            s.amount.to_decimal_string(),
            s.at.to_ist_string()
        );
    }
    for (partner, net) in &run.nothing {
        println!("{partner}: nothing to pay (the month nets {})", net.to_decimal_string());
    }
    if run.paid.is_empty() && run.already.is_empty() && run.nothing.is_empty() {
        println!("{month}: no commission accrued");
    }
    Ok(())
}

/// `payrail tds-report --quarter YYYY-YY-QN`: the Section 194H report.
#[derive(Debug, Args)]
pub struct TdsArgs {
    /// A financial-year quarter: 2026-27-Q1 is April–June 2026, 2026-27-Q4 January–March 2027.
    #[arg(long)]
    quarter: String,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `tds-report`.
pub async fn tds(cli: &Cli, args: &TdsArgs) -> anyhow::Result<()> {
    let quarter = Quarter::parse(&args.quarter).map_err(anyhow::Error::msg)?;
    let store = cli.open_store().await?;
    let csv = settlement::tds_csv(quarter, &settlement::tds_report(&*store, quarter).await?);
    match &args.out {
        Some(path) => std::fs::write(path, csv).with_context(|| format!("Failed to write {}", path.display()))?,
        None => print!("{csv}"),
    }
    Ok(())
}
