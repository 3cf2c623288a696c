//! `payrail txn search …` and `payrail txn show dmt:<ackno>|bbps:<txnid>`:
//! the operator search and timeline (`services::search`), on the store.

use std::io::Write as _;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::Cli;
use crate::services::search::{self, Format, PageView, RowView, SearchParams, TimelineItem};

/// Transaction search and detail.
#[derive(Debug, Subcommand)]
pub enum TxnCommand {
    /// Find transfers and bill payments, newest first, a page at a time
    /// (the same filters as GET /admin/v1/transactions).
    Search(Box<SearchArgs>),
    /// One transaction and its timeline: dmt:<ackno> or bbps:<txnid>.
    Show {
        /// dmt:<ackno> or bbps:<txnid>.
        txn: String,
        /// Print one JSON document: {"transaction", "timeline"}.
        #[arg(long)]
        json: bool,
    },
}

/// The filters of `payrail txn search`; each is the query parameter of the same name.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// dmt or bbps (default both).
    #[arg(long)]
    kind: Option<String>,
    /// The partner, e.g. AOP-1001.
    #[arg(long)]
    partner: Option<String>,
    /// The partner's reference.
    #[arg(long)]
    reference: Option<String>,
    /// A transfer's ackno.
    #[arg(long)]
    ackno: Option<String>,
    /// A bill payment's txnid.
    #[arg(long)]
    txnid: Option<String>,
    /// A transfer's UTR.
    #[arg(long)]
    utr: Option<String>,
    /// The remitter's mobile number (DMT V1 transfers).
    #[arg(long)]
    mobile: Option<String>,
    /// The beneficiary's account number.
    #[arg(long)]
    account: Option<String>,
    /// A bill payment's customer account number.
    #[arg(long)]
    canumber: Option<String>,
    /// States, comma-separated: words (success, failed, refunded, in_process,
    /// sent_to_bank, on_hold, pending) or DMT txn_status codes 0-5.
    #[arg(long)]
    status: Option<String>,
    /// From (inclusive), India time: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS].
    #[arg(long)]
    from: Option<String>,
    /// To (exclusive; a date alone includes its whole day), India time.
    #[arg(long)]
    to: Option<String>,
    /// Least amount, rupees.
    #[arg(long)]
    min_amount: Option<String>,
    /// Greatest amount, rupees.
    #[arg(long)]
    max_amount: Option<String>,
    /// Rows per page, 1 to 500 (default 50; not with --csv).
    #[arg(long)]
    limit: Option<String>,
    /// Start after this row: the previous page's next_cursor.
    #[arg(long)]
    cursor: Option<String>,
    /// Print one JSON document: {"transactions", "next_cursor"}.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print every matching row as CSV (all pages), header first.
    #[arg(long)]
    csv: bool,
}

impl SearchArgs {
    /// The flags as query parameters, for the one parser the HTTP API uses.
    fn pairs(&self) -> Vec<(String, String)> {
        let flags = [
            ("kind", &self.kind),
            ("partner", &self.partner),
            ("reference", &self.reference),
            ("ackno", &self.ackno),
            ("txnid", &self.txnid),
            ("utr", &self.utr),
            ("mobile", &self.mobile),
            ("account", &self.account),
            ("canumber", &self.canumber),
            ("status", &self.status),
            ("from", &self.from),
            ("to", &self.to),
            ("min_amount", &self.min_amount),
            ("max_amount", &self.max_amount),
            ("limit", &self.limit),
            ("cursor", &self.cursor),
        ];
        let mut pairs: Vec<(String, String)> =
            flags.iter().filter_map(|(name, value)| value.as_ref().map(|v| ((*name).to_owned(), v.clone()))).collect();
        if self.csv {
            pairs.push(("format".into(), "csv".into()));
        }
        pairs
    }
}

/// Runs a `txn` command.
pub async fn txn(cli: &Cli, command: &TxnCommand) -> anyhow::Result<()> {
    let store = cli.open_store().await?;
    match command {
        TxnCommand::Search(args) => {
            // A bad flag is named as the API names its parameter (`--status: …`).
            let params = SearchParams::parse(&args.pairs())
                .map_err(|e| anyhow::anyhow!("--{}: {}", e.name.replace('_', "-"), e.problem))?;
            if params.format == Format::Csv {
                let mut out = std::io::stdout().lock();
                let mut failed = None;
                search::export_csv(store.as_ref(), &params.filter, params.cursor, |chunk| {
                    let written = out.write_all(&chunk);
                    let ok = written.is_ok();
                    if let Err(e) = written {
                        failed = Some(e);
                    }
                    std::future::ready(ok)
                })
                .await?;
                if let Some(e) = failed {
                    return Err(e).context("Failed to write the CSV");
                }
                return out.flush().context("Failed to write the CSV");
            }
            let page = search::search_page(store.as_ref(), &params.filter, params.cursor, params.limit).await?;
            let view = PageView::new(&page);
            if args.json {
                println!("{}", serde_json::to_string(&view)?);
                return Ok(());
            }
            if view.transactions.is_empty() {
                println!("no transactions");
            }
            for row in &view.transactions {
                println!("{}", line(row));
            }
            if let Some(next) = &view.next_cursor {
                println!("more: --cursor {next}");
            }
        }
        TxnCommand::Show { txn, json } => {
            let (kind, id) = search::parse_txn_name(txn)
                .with_context(|| format!("{txn:?}: name a transaction as dmt:<ackno> or bbps:<txnid>"))?;
            let detail =
                search::txn_detail(store.as_ref(), kind, id).await?.with_context(|| format!("no transaction {txn}"))?;
            if *json {
                println!("{}", serde_json::to_string(&detail)?);
                return Ok(());
            }
            println!("{}", line(&detail.transaction));
            for item in &detail.timeline {
                println!("  {}", timeline_line(item));
            }
        }
    }
    Ok(())
}

/// One row in a line.
fn line(row: &RowView) -> String {
    let id = match (row.ackno, row.txnid) {
        (Some(ackno), _) => format!("dmt:{ackno}"),
        (_, Some(txnid)) => format!("bbps:{txnid}"),
        _ => String::new(),
    };
    let who = [&row.utr, &row.operator_ref, &row.mobile, &row.account, &row.canumber]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{} {id} {} {} ₹{} {} ({}) {who}",
        row.created_at, row.registration_id, row.reference_id, row.amount, row.status, row.code
    )
}

/// One timeline item in a line: its time, kind and fields.
fn timeline_line(item: &TimelineItem) -> String {
    let fields: Vec<String> =
        item.details.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| format!("{k}={v}")).collect();
    format!("{} {} {}", item.at.to_ist_string(), item.kind, fields.join(" "))
}
