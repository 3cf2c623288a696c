//! The command line: `payrail serve`, `partner`, `import`, `token`, `status`,
//! `wallet`, `plan`, `verify`, `settle`, `tds-report`, `reconcile`, `callback`, `events`, `upstream`, `operator`, `audit`,
//! `config`, `backup`, `restore`.
//! Every command takes `--data-dir` and `--database-url`, so the CLI and a
//! running server can share one store, and `--config FILE` (see `config`).

mod backup;
mod client;
mod config;
mod events;
mod import;
mod money;
mod operators;
mod partner;
mod reconcile;
mod secret_input;
mod serve;
mod txn;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::domain::SystemClock;
use crate::services::secrets::{check_master_key, KeySource, MasterKey, MissingKey};
use crate::store::{self, Store, StoreLocation};

/// payrail: AOPay-compatible DMT and BBPS transaction server and operator tools.
#[derive(Debug, Parser)]
#[command(name = "payrail", version, about)]
pub struct Cli {
    /// Where payrail keeps its SQLite database, master key (demo) and lock file.
    #[arg(long, global = true, env = "PAYRAIL_DATA_DIR", default_value = "./payrail-data")]
    pub data_dir: PathBuf,
    /// A `postgres://` URL to use PostgreSQL instead of the embedded SQLite store.
    #[arg(long, global = true, env = "PAYRAIL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A file (mode 0600 or 0400) holding the key that seals partner secrets,
    /// 64 hex digits. Or give the key in PAYRAIL_MASTER_KEY; never on the
    /// command line, where `ps` shows it. Defaults to DATA_DIR/master.key.
    #[arg(long, global = true, env = "PAYRAIL_MASTER_KEY_FILE", value_name = "PATH")]
    pub master_key_file: Option<PathBuf>,
    /// A TOML file of settings: global keys at the top, `payrail serve`'s in
    /// a [serve] table (see docs/payrail.example.toml). Flags and environment
    /// variables override it.
    #[arg(long, global = true, env = "PAYRAIL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How log lines are written to stderr: `text` for people, `json` (one
    /// object a line, with the request id and the spans' fields) for a log
    /// collector. The level filter is PAYRAIL_LOG (e.g. `info`, `payrail=debug`).
    #[arg(long, global = true, env = "PAYRAIL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text an event, for people; coloured only on a terminal.
    Text,
    /// One JSON object a line, with the current span's fields and the list
    /// of spans it is in (the request's id among them).
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<serve::ServeArgs>),
    /// Manage partners.
    #[command(subcommand)]
    Partner(partner::PartnerCommand),
    /// Import transactions from a CSV or JSON Lines file, all or nothing.
    Import(import::ImportArgs),
    /// Print a `Token` header value for a partner.
    Token(client::TokenArgs),
    /// Ask a server for a transaction's status, as a partner would.
    Status(client::StatusArgs),
    /// Partner wallets: top up, withdraw, balance, statement.
    #[command(subcommand)]
    Wallet(money::WalletCommand),
    /// Partner fee plans: set a new version, show.
    #[command(subcommand)]
    Plan(money::PlanCommand),
    /// Check the ledger's invariants and the tamper-evident history chains; exits 1 if any is broken.
    Verify(verify::VerifyArgs),
    /// Print the head of every history chain, as JSON, for an auditor to keep (`verify --anchor FILE`).
    Anchor,
    /// Pay each partner its net commission for a month that is over, once.
    Settle(money::SettleArgs),
    /// The Section 194H TDS report of a financial-year quarter, as CSV.
    TdsReport(money::TdsArgs),
    /// Reconcile DMT transfers against a bank or upstream statement.
    Reconcile(reconcile::ReconcileArgs),
    /// Partner callback URLs: set, clear, show.
    #[command(subcommand)]
    Callback(events::CallbackCommand),
    /// Partner callback events: list, show (with attempts), redeliver.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Upstream follow-up: transactions held for review.
    #[command(subcommand)]
    Upstream(events::UpstreamCommand),
    /// Transactions: search (filters, paging, JSON or CSV) and show one with its timeline.
    #[command(subcommand)]
    Txn(txn::TxnCommand),
    /// Operator accounts, roles and personal API tokens.
    #[command(subcommand)]
    Operator(operators::OperatorCommand),
    /// The audit log of operator actions.
    #[command(subcommand)]
    Audit(operators::AuditCommand),
    /// The config file: check it and show the effective settings.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Write a consistent snapshot of a (running) SQLite store to a new file.
    Backup(backup::BackupArgs),
    /// Restore a snapshot into an empty data directory, checking it as `verify` does.
    Restore(backup::RestoreArgs),
    /// Print the OpenAPI 3.1 document of the partner and operator APIs (the bytes `GET /openapi.json` serves).
    Openapi,
}

impl Cli {
    /// Where the store is.
    pub fn store_location(&self) -> anyhow::Result<StoreLocation> {
        match &self.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(StoreLocation::Postgres(url.clone()))
            }
            Some(_) => anyhow::bail!("--database-url must be a postgres:// URL (SQLite lives in --data-dir)"),
            None => Ok(StoreLocation::Sqlite(self.data_dir.clone())),
        }
    }

    /// Where the master key was given, if it was: PAYRAIL_MASTER_KEY (read
    /// here, not by clap, so that no `--master-key` flag exists) or the file.
    fn key_source(&self) -> KeySource {
        let env = std::env::var("PAYRAIL_MASTER_KEY").ok().filter(|k| !k.is_empty()).map(SecretString::from);
        KeySource { env, file: self.master_key_file.clone() }
    }

    /// Opens the store, running migrations. A master key given to a command
    /// that does not need it is still checked against the store, so a wrong
    /// key is caught by whatever command meets it first.
    pub async fn open_store(&self) -> anyhow::Result<Arc<dyn Store>> {
        let store = store::open(&self.store_location()?).await?;
        let source = self.key_source();
        if source.is_given() {
            let key = MasterKey::load(&source, &self.data_dir, MissingKey::Refuse)?;
            check_master_key(&*store, &SystemClock, &key).await?;
        }
        Ok(store)
    }

    /// Loads the master key (from the data directory if none is given,
    /// where `missing` may generate one) and checks it against `store`'s key
    /// check value.
    pub async fn master_key(&self, store: &dyn Store, missing: MissingKey) -> anyhow::Result<MasterKey> {
        let key = MasterKey::load(&self.key_source(), &self.data_dir, missing)?;
        check_master_key(store, &SystemClock, &key).await?;
        Ok(key)
    }
}

/// Parses the command line and runs it; errors are printed with their causes.
pub fn main() -> ExitCode {
    let cli = match config::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_tracing(matches!(cli.command, Command::Serve(_)), cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Serve(args) => serve::run(&cli, args).await.map(|()| ExitCode::SUCCESS),
        Command::Partner(command) => partner::run(&cli, command).await.map(|()| ExitCode::SUCCESS),
        Command::Import(args) => import::run(&cli, args).await.map(|()| ExitCode::SUCCESS),
        Command::Token(args) => client::token(args).map(|()| ExitCode::SUCCESS),
        Command::Status(args) => client::status(args).await,
        Command::Wallet(command) => money::wallet(&cli, command).await.map(|()| ExitCode::SUCCESS),
        Command::Plan(command) => money::plan(&cli, command).await.map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => verify::verify(&cli, args).await,
        Command::Anchor => verify::anchor(&cli).await.map(|()| ExitCode::SUCCESS),
        Command::Settle(args) => money::settle(&cli, args).await.map(|()| ExitCode::SUCCESS),
        Command::TdsReport(args) => money::tds(&cli, args).await.map(|()| ExitCode::SUCCESS),
        Command::Reconcile(args) => reconcile::run(&cli, args).await,
        Command::Callback(command) => events::callback(&cli, command).await.map(|()| ExitCode::SUCCESS),
        Command::Events(command) => events::events(&cli, command).await,
        Command::Upstream(command) => events::upstream(&cli, command).await.map(|()| ExitCode::SUCCESS),
        Command::Txn(command) => txn::txn(&cli, command).await.map(|()| ExitCode::SUCCESS),
        Command::Operator(command) => operators::operator(&cli, command).await.map(|()| ExitCode::SUCCESS),
        Command::Audit(command) => operators::audit(&cli, command).await.map(|()| ExitCode::SUCCESS),
        Command::Config(command) => config::run(&cli, command).map(|()| ExitCode::SUCCESS),
        Command::Backup(args) => backup::backup(&cli, args).await.map(|()| ExitCode::SUCCESS),
        Command::Restore(args) => backup::restore(&cli, args).await.map(|()| ExitCode::SUCCESS),
        Command::Openapi => {
            print!("{}", crate::http::openapi::document());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Logs to stderr in `format`, filtered by PAYRAIL_LOG (default `info`
/// for the server, `warn` for the other commands). Colours only when
/// stderr is a terminal: a file or a pipe gets plain text.
fn init_tracing(server: bool, format: LogFormat) {
    use std::io::IsTerminal as _;
    let default = if server { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PAYRAIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.with_ansi(false).json().with_current_span(true).with_span_list(true).try_init(),
    };
}
