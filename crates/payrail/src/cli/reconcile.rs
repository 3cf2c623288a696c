//! `payrail reconcile`: DMT transfers against a bank or upstream statement
//! (`services::reconcile`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::Cli;
use crate::domain::operator::Actor;
use crate::domain::SystemClock;
use crate::http::admin_audit::change_source;
use crate::http::admin_reconcile::ReconciliationView;
use crate::services::reconcile::{self, file::day_of, FileFormat, Holder, ReconcileError, Request};

/// `payrail reconcile --bank FILE`: matches the file's lines against the
/// transfers, prints the counts (or the whole run as JSON), writes the
/// report; exits 1, changing nothing, if any line is malformed.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The bank's (or upstream's) statement.
    #[arg(long, value_name = "FILE")]
    bank: PathBuf,
    /// `csv` (header `utr,amount,date,status[,reference]`) or `paysprint`
    /// (header `Txn ID,Ref ID,UTR,Amount,Status,Date`).
    #[arg(long, default_value = "csv")]
    format: String,
    /// For `csv`: the file's header for each column, e.g.
    /// `utr=UTR No,amount=Amt,date=Value Date,status=Status,reference=Our Ref`.
    #[arg(long)]
    columns: Option<String>,
    /// Only this India-time day, YYYY-MM-DD (a line of another day is refused);
    /// else every day the file has.
    #[arg(long)]
    date: Option<String>,
    /// Write the report (one line per finding) as CSV here.
    #[arg(long, value_name = "OUT.csv")]
    report: Option<PathBuf>,
    /// Put mismatched transfers on hold for review (or, where the state
    /// machine does not allow a hold, write the finding to the audit log).
    #[arg(long)]
    hold: bool,
    /// Print the whole run as one JSON document, as POST /admin/v1/reconciliations answers.
    #[arg(long)]
    json: bool,
    /// The prefix of payrail's upstream references, as `serve` has it.
    #[arg(long, env = "PAYRAIL_UPSTREAM_REF_PREFIX", default_value = "PR")]
    ref_prefix: String,
}

/// Runs `reconcile`.
pub async fn run(cli: &Cli, args: &ReconcileArgs) -> anyhow::Result<ExitCode> {
    let format = FileFormat::parse(&args.format, args.columns.as_deref()).map_err(anyhow::Error::msg)?;
    let day = match &args.date {
        Some(date) => Some(day_of(date).context("--date must be YYYY-MM-DD")?),
        None => None,
    };
    let input = std::fs::File::open(&args.bank).with_context(|| format!("Failed to open {}", args.bank.display()))?;
    let file =
        args.bank.file_name().map_or_else(|| args.bank.display().to_string(), |n| n.to_string_lossy().into_owned());
    let hold = args.hold.then(|| Holder {
        actor: Actor::Cli,
        source: change_source(&Actor::Cli),
        metrics: Default::default(),
    });
    let request = Request { file, format, day, ref_prefix: args.ref_prefix.clone(), hold };
    let store = cli.open_store().await?;
    let input = std::io::BufReader::with_capacity(1 << 20, input);
    let run = match reconcile::reconcile(&*store, &SystemClock, input, &request).await {
        Ok(run) => run,
        Err(ReconcileError::Malformed(errors)) => {
            for e in &errors {
                eprintln!("{}: {e}", args.bank.display());
            }
            eprintln!("error: {} malformed lines; the file is refused and nothing was changed", errors.len());
            return Ok(ExitCode::FAILURE);
        }
        Err(ReconcileError::Store(e)) => return Err(e.into()),
    };
    if let Some(entry) = reconcile::run_audit(&run, &Actor::Cli, &SystemClock) {
        store.append_audit(entry).await?;
    }
    if let Some(path) = &args.report {
        std::fs::write(path, reconcile::report_csv(&run))
            .with_context(|| format!("Failed to write {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&ReconciliationView::from(&run))?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = &run.summary;
    println!("lines {}", s.lines);
    println!("matched {}", s.matched);
    println!("amount_mismatch {}", s.amount_mismatch);
    println!("state_mismatch {}", s.state_mismatch);
    println!("payrail_only {}", s.payrail_only);
    println!("file_only {}", s.file_only);
    if args.hold {
        println!("held {}", s.held);
        println!("noted {}", s.noted);
        println!("already {}", s.already);
    }
    Ok(ExitCode::SUCCESS)
}
