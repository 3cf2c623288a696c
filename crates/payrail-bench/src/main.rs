//! `payrail-bench`: how close a payrail status lookup comes to the cost of a
//! bare HTTP response.
//!
//! For each engine it loads N DMT transfers and N bill payments, starts the
//! real payrail server (token authentication on, rate limit off) and a bare
//! hyper server that answers a fixed body of the same size, then drives both
//! over loopback with keep-alive connections for the same time, and prints
//! requests a second, their ratio, and p50/p99 latency.
//!
//! `--paybills` measures bill payments committed a second instead, and
//! `--poller` the upstream poller's jobs handled a second, and `--plans` the
//! operator search's query plan for each filter (failing on a full scan),
//! and `--reconcile` the time `payrail reconcile` takes over a bank file of
//! a million lines.
//!
//! Server and load generator share the machine, each on its own runtime of
//! two worker threads; the bare server runs under exactly the same
//! conditions, so the ratio is fair even where the absolute numbers are not.

mod load;
mod paybills;
mod plans;
mod poller;
mod reconcile;

/// The same allocator as the `payrail` binary, so the bench measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use payrail::domain::{
    BillStatus, ChangeSource, Clock as _, DmtStatus, IpAllowlist, Paise, ReferenceId, RegistrationId, SystemClock,
};
use payrail::http::{AppState, Application, EdgeSettings};
use payrail::services::partners::{add_partner, PartnerRequest};
use payrail::services::secrets::MasterKey;
use payrail::services::transactions::{NewBill, NewDmt};
use payrail::store::{self, ChangeNote, Store, StoreLocation};
use secrecy::ExposeSecret as _;

use crate::load::{Report, Target, Workload::Status};

/// Load benchmark of payrail's status lookups against a bare hyper server.
#[derive(Debug, Parser)]
struct Args {
    /// Transfers and bill payments to load (each).
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Seconds of load per server.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Engines to measure: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    engines: Vec<String>,
    /// PostgreSQL server for the postgres run (a fresh database is made on it).
    #[arg(long, env = "PAYRAIL_TEST_DATABASE_URL")]
    database_url: Option<String>,
    /// Instead: bill payments committed a second (`BillPaymentPaybill` from a
    /// funded wallet, manual provider) for `--seconds` over `--connections`.
    #[arg(long, conflicts_with = "poller")]
    paybills: bool,
    /// Instead: the poller's jobs handled a second with `--poll-jobs` due,
    /// against a provider that answers at once.
    #[arg(long)]
    poller: bool,
    /// Instead: the operator search's query plan for each filter on
    /// `--records` of each kind (see `plans.rs`); fails on a full scan.
    #[arg(long, conflicts_with_all = ["paybills", "poller"])]
    plans: bool,
    /// Instead: `payrail reconcile` over a bank file of `--records` lines
    /// against as many transfers (see `reconcile.rs`).
    #[arg(long, conflicts_with_all = ["paybills", "poller", "plans"])]
    reconcile: bool,
    /// Due poll jobs for `--poller`.
    #[arg(long, default_value_t = 100_000)]
    poll_jobs: usize,
    /// `--poller` stops after this many seconds even if jobs are left.
    #[arg(long, default_value_t = 600)]
    poll_limit_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let driver =
        tokio::runtime::Builder::new_multi_thread().thread_name("loadgen").worker_threads(2).enable_all().build()?;
    for engine in &args.engines {
        let location = match engine.as_str() {
            "sqlite" => None,
            "postgres" => match &args.database_url {
                Some(url) => Some(url.clone()),
                None => {
                    println!("\n== postgres: SKIPPED (set PAYRAIL_TEST_DATABASE_URL or --database-url)");
                    continue;
                }
            },
            other => anyhow::bail!("unknown engine {other:?}"),
        };
        if args.reconcile {
            reconcile::run(&args, engine, location)?;
        } else if args.plans {
            plans::run(&args, engine, location)?;
        } else if args.paybills {
            paybills::run(&args, engine, location, &driver)?;
        } else if args.poller {
            poller::run(&args, engine, location)?;
        } else {
            run_engine(&args, engine, location, &driver)?;
        }
    }
    Ok(())
}

fn run_engine(
    args: &Args,
    engine: &str,
    postgres: Option<String>,
    driver: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    println!("\n== {engine}: loading {} transfers and {} bill payments", args.records, args.records);
    let server_runtime =
        tokio::runtime::Builder::new_multi_thread().thread_name("server").worker_threads(2).enable_all().build()?;
    let data_dir = tempfile::tempdir()?;
    let (location, database) = location(&server_runtime, data_dir.path(), postgres.as_deref())?;
    let (store, key) = server_runtime.block_on(open(&location))?;
    let (partner, secret) = server_runtime.block_on(load(&*store, &key, args.records))?;

    let payrail_addr = server_runtime.block_on(start_payrail(store, key))?;
    let bare_addr = server_runtime.block_on(load::start_bare_server(sample_body_len()))?;
    let target =
        |addr, name| Target { addr, name, partner, secret: secret.clone(), records: args.records, workload: Status };
    let duration = Duration::from_secs(args.seconds);
    let bare = driver.block_on(load::drive(target(bare_addr, "bare hyper"), args.connections, duration))?;
    let payrail = driver.block_on(load::drive(target(payrail_addr, "payrail"), args.connections, duration))?;
    print_reports(engine, &bare, &payrail);
    server_runtime.shutdown_timeout(Duration::from_secs(1));
    if let (Some(base), Some(name)) = (postgres, database) {
        driver.block_on(drop_database(&base, &name))?;
    }
    Ok(())
}

/// Where a run's store lives: SQLite in `dir`, or a fresh database (its
/// name returned too) on the PostgreSQL server at `postgres`.
pub(crate) fn location(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    postgres: Option<&str>,
) -> anyhow::Result<(StoreLocation, Option<String>)> {
    Ok(match postgres {
        None => (StoreLocation::Sqlite(dir.to_owned()), None),
        Some(base) => {
            let (url, name) = runtime.block_on(fresh_database(base))?;
            (StoreLocation::Postgres(url), Some(name))
        }
    })
}

pub(crate) async fn drop_database(base: &str, name: &str) -> anyhow::Result<()> {
    let (client, connection) =
        tokio_postgres::connect(base, tokio_postgres::NoTls).await.context("Failed to connect")?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .context("Failed to drop the bench database")
}

fn print_reports(engine: &str, bare: &Report, payrail: &Report) {
    for report in [bare, payrail] {
        println!(
            "{engine:>8} {:<11} {:>9.0} req/s  p50 {:>6} µs  p99 {:>6} µs  ({} requests, {} errors)",
            report.name, report.per_second, report.p50_micros, report.p99_micros, report.requests, report.errors
        );
    }
    println!("{engine:>8} ratio payrail / bare = {:.2}", payrail.per_second / bare.per_second.max(1.0));
}

/// The size of a typical found DMT body, which the bare server answers with.
fn sample_body_len() -> usize {
    r#"{"status":true,"response_code":1,"utr":"101306003674","amount":"12345","ackno":"123456789","referenceid":"B0123456","account":"20018575947","txn_status":"1","message":"Transaction Successful","customercharge":"123.45","gst":"18.83","discount":"18.83","tds":"1.37","netcommission":"66.78","daterefunded":null,"refundtxnid":null}"#.len()
}

/// A new database on the server at `base`: its URL and name.
pub(crate) async fn fresh_database(base: &str) -> anyhow::Result<(String, String)> {
    let (client, connection) =
        tokio_postgres::connect(base, tokio_postgres::NoTls).await.context("Failed to connect")?;
    tokio::spawn(connection);
    let name = format!("payrail_bench_{:08x}", rand::random::<u32>());
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.context("Failed to create the bench database")?;
    // Swap the database name in the URL's path, keeping any query string (`?sslmode=…`).
    let (path, query) = base.split_once('?').map_or((base, String::new()), |(p, q)| (p, format!("?{q}")));
    let (head, _) = path.rsplit_once('/').context("the URL has no database path")?;
    Ok((format!("{head}/{name}{query}"), name))
}

pub(crate) async fn open(location: &StoreLocation) -> anyhow::Result<(Arc<dyn Store>, Arc<MasterKey>)> {
    let store = store::open(location).await?;
    let hex: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
    Ok((store, Arc::new(MasterKey::from_hex(&hex)?)))
}

/// Adds a token partner and loads the records; returns the partner and its secret.
pub(crate) async fn load(
    store: &dyn Store,
    key: &MasterKey,
    records: usize,
) -> anyhow::Result<(RegistrationId, Vec<u8>)> {
    let request = PartnerRequest {
        number: None,
        name: "bench".into(),
        allowlist: IpAllowlist::default(),
        require_token: true,
        authorised_key: None,
    };
    let added = add_partner(store, &SystemClock, key, request).await?;
    let id = added.partner.registration_id;
    let started = Instant::now();
    let chunk = 100_000;
    let note = || ChangeNote { source: ChangeSource::Import, reason: None, at: SystemClock.now() };
    let quiet: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(|_| {});
    for start in (0..records).step_by(chunk) {
        let end = (start + chunk).min(records);
        let transfers = (start..end).map(|i| transfer(id, i)).collect::<anyhow::Result<Vec<_>>>()?;
        store.insert_dmt_batch(transfers, note(), quiet.clone()).await.context("Failed to load transfers")?;
        let bills = (start..end).map(|i| bill(id, i)).collect::<anyhow::Result<Vec<_>>>()?;
        store.insert_bill_batch(bills, note(), quiet.clone()).await.context("Failed to load bill payments")?;
        println!("   {end:>8} of each loaded ({:.0} s)", started.elapsed().as_secs_f64());
    }
    Ok((id, added.secret.expose_secret().as_bytes().to_vec()))
}

fn transfer(partner: RegistrationId, i: usize) -> anyhow::Result<payrail::domain::DmtTransfer> {
    let mut new = NewDmt::in_process(
        partner,
        ReferenceId::parse(&format!("B{i:07}"))?,
        Paise::new(10_000 + i as i64 % 500_000),
        "20018575947".into(),
    );
    new.status = DmtStatus::ALL[i % 6];
    new.utr = Some(format!("{:012}", i));
    Ok(new.into_transfer(SystemClock.now()))
}

fn bill(partner: RegistrationId, i: usize) -> anyhow::Result<payrail::domain::BillPayment> {
    let new = NewBill {
        txnid: None,
        partner,
        reference: ReferenceId::parse(&format!("B{i:07}"))?,
        operator_name: "BSES Rajdhani Power Limited".into(),
        ca_number: format!("{:09}", i),
        amount: Paise::new(10_000 + i as i64 % 100_000),
        extra: [None, None, None],
        commission: None,
        status: [BillStatus::Pending, BillStatus::Success, BillStatus::Failed][i % 3],
        operator_ref: None,
        created_at: None,
        refund_txn_id: None,
        refunded_at: None,
    };
    Ok(new.into_payment(SystemClock.now()))
}

pub(crate) async fn start_payrail(store: Arc<dyn Store>, key: Arc<MasterKey>) -> anyhow::Result<SocketAddr> {
    let settings = EdgeSettings { rate_limit_per_sec: 0, ..EdgeSettings::default() };
    let app =
        Application::bind("127.0.0.1:0".parse()?, AppState::new(store, key, settings, SystemClock::shared())).await?;
    let addr = app.local_addr()?;
    tokio::spawn(app.run_until(std::future::pending()));
    Ok(addr)
}
