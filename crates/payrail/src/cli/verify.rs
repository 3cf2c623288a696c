//! `payrail verify` (the ledger's invariants and the history chains) and
//! `payrail anchor` (the chains' heads, for an auditor to keep).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::Cli;
use crate::domain::{Clock as _, SystemClock};
use crate::services::chain::{self, Anchor};
use crate::services::verify;

/// `payrail verify`: checks the ledger's invariants and recomputes every
/// history chain; exit code 1 on any violation.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// An anchor `payrail anchor` printed: also check that every chain
    /// still holds the head the anchor recorded.
    #[arg(long, value_name = "FILE")]
    anchor: Option<PathBuf>,
}

/// Runs `verify`.
pub async fn verify(cli: &Cli, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let anchor = match &args.anchor {
        None => None,
        Some(path) => Some(read_anchor(path)?),
    };
    let store = cli.open_store().await?;
    let checked = verify::check(&*store, anchor.as_ref()).await?;
    if checked.violations.is_empty() {
        println!("ok: {} journals checked, ledger sums to zero, wallets match their postings", checked.journals);
        let anchored = anchor.map(|a| format!(", and each holds its head of the anchor of {}", a.anchored_at));
        println!(
            "ok: {} links of {} history chains recomputed, none broken{}",
            checked.links,
            checked.chains,
            anchored.unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for violation in &checked.violations {
        println!("VIOLATION: {violation}");
    }
    println!("{} violation(s) found", checked.violations.len());
    Ok(ExitCode::from(1))
}

fn read_anchor(path: &std::path::Path) -> anyhow::Result<Anchor> {
    let text = std::fs::read_to_string(path).with_context(|| format!("Failed to read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not an anchor `payrail anchor` printed", path.display()))
}

/// Runs `anchor`: prints the heads of every chain now, as JSON.
pub async fn anchor(cli: &Cli) -> anyhow::Result<()> {
    let store = cli.open_store().await?;
    let anchor = chain::anchor(&*store, SystemClock.now()).await?;
    println!("{}", serde_json::to_string_pretty(&anchor)?);
    Ok(())
}
