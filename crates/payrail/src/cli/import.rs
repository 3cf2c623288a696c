//! `payrail import dmt|bbps --partner REGID FILE`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::Cli;
use crate::domain::{RegistrationId, SystemClock, TxnKind};
use crate::services::import;

/// Which kind of transaction a file holds.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// DMT transfers.
    Dmt,
    /// BBPS bill payments.
    Bbps,
}

/// `import` options.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// What the file holds.
    kind: Kind,
    /// The partner that owns every row, e.g. AOP-554.
    #[arg(long)]
    partner: String,
    /// A CSV file with a header row, or JSON Lines (one object a line).
    file: PathBuf,
}

/// Runs an import, all or nothing.
pub async fn run(cli: &Cli, args: &ImportArgs) -> anyhow::Result<()> {
    let partner = RegistrationId::parse(&args.partner).map_err(|e| anyhow::anyhow!("--partner {e}"))?;
    let text =
        std::fs::read_to_string(&args.file).with_context(|| format!("Failed to read {}", args.file.display()))?;
    let store = cli.open_store().await?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let progress_bar = bar.clone();
    let progress: import::Progress = Arc::new(move |done, total| {
        progress_bar.set_length(total);
        progress_bar.set_position(done);
    });
    let kind = match args.kind {
        Kind::Dmt => TxnKind::Dmt,
        Kind::Bbps => TxnKind::Bbps,
    };
    let result = import::import(&*store, &SystemClock, kind, partner, &text, progress).await;
    bar.finish_and_clear();
    let count = result.with_context(|| format!("{}", args.file.display()))?;
    println!("Imported {count} rows for {partner} from {}", args.file.display());
    Ok(())
}
