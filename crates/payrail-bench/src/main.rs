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
use payrail::observe::Metrics;
use payrail::services::partners::{add_partner, PartnerRequest};
use payrail::services::secrets::MasterKey;
use payrail::services::transactions::{NewBill, NewDmt};
use payrail::services::upstream::provider::ManualProvider;
use payrail::services::upstream::sync::{SyncSettings, Upstream};
use payrail::store::{self, ChangeNote, Store, StoreLocation};
use secrecy::ExposeSecret as _;

use crate::load::{Report, Target, Workload::Bulk, Workload::Paybill, Workload::Status};

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
    /// Instead: status lookups in bulk, `TransactionStatusBulk` requests of
    /// this many random references each (1 to 100); prints references a second.
    #[arg(long, conflicts_with_all = ["paybills", "poller", "plans"], value_parser = clap::value_parser!(u16).range(1..=100))]
    bulk: Option<u16>,
    /// Serve payrail without metrics (as `payrail serve --no-metrics`).
    #[arg(long)]
    no_metrics: bool,
    /// Instead of the bare server: status lookups of payrail with metrics
    /// against payrail without, over the same store, in alternating runs of
    /// `--seconds` (`--rounds` of each), and the cost of the metrics.
    #[arg(long, conflicts_with_all = ["paybills", "poller", "plans", "no_metrics"])]
    compare_metrics: bool,
    /// Runs of each server, alternated: bare and payrail for status
    /// lookups (the median ratio of the pairs is the result), or metrics on
    /// and off for `--compare-metrics`.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
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
    /// Log as `payrail serve --log-format FORMAT` does at its default level
    /// (info: an access line per request), formatted in full and then
    /// thrown away, so the logging's own cost is measured; without it
    /// nothing is logged.
    #[arg(long, value_parser = ["text", "json"])]
    log: Option<String>,
    /// Status lookups only: while payrail's lookups run, this many more
    /// connections pay ₹100 bills from the partner's funded wallet (each
    /// one after the other), so the lookups read a store that is being
    /// written; prints the payments a second beside them.
    #[arg(long, default_value_t = 0, conflicts_with_all = ["paybills", "poller", "plans", "reconcile", "compare_metrics"])]
    paybills_alongside: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(format) = &args.log {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(std::io::sink)
            .with_ansi(false);
        let _ = match format.as_str() {
            "json" => builder.json().with_current_span(true).with_span_list(true).try_init(),
            _ => builder.try_init(),
        };
    }
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

    if args.compare_metrics {
        let with = server_runtime.block_on(start_payrail(store.clone(), key.clone(), true))?;
        let without = server_runtime.block_on(start_payrail(store, key, false))?;
        let target = |addr, name| Target {
            addr,
            name,
            partner,
            secret: secret.clone(),
            records: args.records,
            workload: Status,
        };
        compare_metrics(args, engine, driver, target(with, "metrics on"), target(without, "metrics off"))?;
        server_runtime.shutdown_timeout(Duration::from_secs(1));
        if let (Some(base), Some(name)) = (postgres, database) {
            driver.block_on(drop_database(&base, &name))?;
        }
        return Ok(());
    }
    if args.paybills_alongside > 0 {
        server_runtime.block_on(paybills::fund(&*store, partner))?;
    }
    let payrail_addr = server_runtime.block_on(start_payrail(store, key, !args.no_metrics))?;
    let bare_addr = server_runtime.block_on(load::start_bare_server(sample_body_len()))?;
    let workload = args.bulk.map_or(Status, |n| Bulk(usize::from(n)));
    let target = |addr, name| Target { addr, name, partner, secret: secret.clone(), records: args.records, workload };
    let duration = Duration::from_secs(args.seconds);
    // Rounds of the two servers back to back, the order alternating: the
    // machine's speed drifts with other work on its host, a pair run
    // together shares the same spell, and the median of the pairs' ratios
    // is the figure to trust.
    let (mut ratios, mut cpu_ratios, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds.max(1) {
        let run =
            |addr, name| measured(|| driver.block_on(load::drive(target(addr, name), args.connections, duration)));
        let payrail_run = || {
            if args.paybills_alongside == 0 {
                return run(payrail_addr, "payrail");
            }
            let payments = Target { workload: Paybill, ..target(payrail_addr, "paybill") };
            let payments = driver.spawn(load::drive(payments, args.paybills_alongside, duration));
            let lookups = run(payrail_addr, "payrail")?;
            let payments = driver.block_on(payments)??;
            println!(
                "{engine:>8} alongside   {:>9.0} paybills/s  p50 {:>6} µs  p99 {:>6} µs  ({} payments, {} errors)",
                payments.per_second, payments.p50_micros, payments.p99_micros, payments.requests, payments.errors
            );
            Ok(lookups)
        };
        let (bare, payrail) = if round % 2 == 0 {
            let bare = run(bare_addr, "bare hyper")?;
            (bare, payrail_run()?)
        } else {
            let payrail = payrail_run()?;
            (run(bare_addr, "bare hyper")?, payrail)
        };
        print_reports(engine, &bare, &payrail);
        ratios.push(payrail.0.per_second / bare.0.per_second.max(1.0));
        cpu_ratios.push(bare.1 / payrail.1.max(f64::MIN_POSITIVE));
        rates.push(payrail.0.per_second);
    }
    let payrail_rate = median(&mut rates);
    println!(
        "{engine:>8} median of {} rounds: payrail {payrail_rate:.0} req/s, ratio payrail / bare = {:.2} (CPU per request: {:.2})",
        ratios.len(),
        median(&mut ratios),
        median(&mut cpu_ratios)
    );
    if let Some(n) = args.bulk {
        println!(
            "{engine:>8} bulk: {payrail_rate:.0} requests/s of {n} references = {:.0} references/s",
            payrail_rate * f64::from(n)
        );
    }
    server_runtime.shutdown_timeout(Duration::from_secs(1));
    if let (Some(base), Some(name)) = (postgres, database) {
        driver.block_on(drop_database(&base, &name))?;
    }
    Ok(())
}

/// Drives the two servers in turn, `--rounds` times each, and prints each
/// run, the median ratio of the rounds (each round's two runs are back to
/// back, so they share the machine's load; the order alternates), and what one request's
/// metrics cost in-process.
fn compare_metrics(
    args: &Args,
    engine: &str,
    driver: &tokio::runtime::Runtime,
    with: Target,
    without: Target,
) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.seconds);
    let (mut on, mut off, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut cpus: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..args.rounds.max(1) {
        let mut pair = [0.0; 2];
        // Each server goes first every other round, so that neither gains from its place.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let target = [&with, &without][i];
            let run = measured(|| driver.block_on(load::drive(target.clone(), args.connections, duration)))?;
            print_run(engine, &run);
            pair[i] = run.0.per_second;
            cpus[i].push(run.1);
        }
        on.push(pair[0]);
        off.push(pair[1]);
        ratios.push(pair[0] / pair[1].max(1.0));
    }
    let (cpu_on, cpu_off) = (median(&mut cpus[0]), median(&mut cpus[1]));
    println!(
        "{engine:>8} median CPU per request (server and load generator): metrics on {cpu_on:.2} µs, off {cpu_off:.2} µs: {:+.1}%",
        (cpu_on - cpu_off) / cpu_off.max(f64::MIN_POSITIVE) * 100.0
    );
    let ratio = median(&mut ratios);
    println!(
        "{engine:>8} median: metrics on {:.0} req/s, off {:.0} req/s; median ratio on/off {ratio:.3}: the metrics cost {:.1}%",
        median(&mut on),
        median(&mut off),
        (1.0 - ratio) * 100.0
    );
    println!("{engine:>8} in-process: {:.0} ns of metrics per request", metrics_nanos_per_request());
    Ok(())
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// CPU time this process has used (user and system), from `/proc/self/stat`
/// (0 where there is none): under a machine loaded by others, CPU per
/// request moves far less than requests a second.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after ')' start at field 3 (index 0); utime is field 14, stime 15. Ticks are 1/100 s on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// What the edge's metrics cost one request, measured in-process without
/// the noise of the network: the request counter and latency histogram of
/// a route, a million times.
fn metrics_nanos_per_request() -> f64 {
    let metrics = Metrics::new(true);
    let calls = 1_000_000u32;
    let started = Instant::now();
    for i in 0..calls {
        let status = if i % 16 == 0 { 401 } else { 200 };
        metrics.http(Some("/api/aop/dmtv1/transactionstatus"), status, Duration::from_micros(u64::from(i % 2000)));
    }
    started.elapsed().as_nanos() as f64 / f64::from(calls)
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

/// A run's report and the CPU time the whole process (server and load
/// generator) spent on each of its requests, in µs.
fn measured(run: impl FnOnce() -> anyhow::Result<Report>) -> anyhow::Result<(Report, f64)> {
    let before = process_cpu_seconds();
    let report = run()?;
    let cpu = (process_cpu_seconds() - before) * 1e6 / (report.requests.max(1) as f64);
    Ok((report, cpu))
}

/// One run's line: its rate, latency and CPU per request ([`measured`]).
fn print_run(engine: &str, (report, cpu): &(Report, f64)) {
    println!(
        "{engine:>8} {:<11} {:>9.0} req/s  p50 {:>6} µs  p99 {:>6} µs  {cpu:>5.1} µs CPU/request  ({} requests, {} errors)",
        report.name, report.per_second, report.p50_micros, report.p99_micros, report.requests, report.errors
    );
}

/// Prints both runs, the ratio of their rates (the figure targets are set
/// in) and the ratio of their CPU time per request, a check on it: on
/// SQLite, where the whole server is in this process, the two agreed within
/// 0.02 in every run measured (BENCHMARKS.md). On PostgreSQL the
/// database's own processes are not counted, so the second is not comparable.
fn print_reports(engine: &str, bare: &(Report, f64), payrail: &(Report, f64)) {
    print_run(engine, bare);
    print_run(engine, payrail);
    println!(
        "{engine:>8} ratio payrail / bare = {:.2} (CPU per request: {:.2})",
        payrail.0.per_second / bare.0.per_second.max(1.0),
        bare.1 / payrail.1.max(f64::MIN_POSITIVE)
    );
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

/// The real server over `store`, its metrics kept or not (`--no-metrics`).
pub(crate) async fn start_payrail(
    store: Arc<dyn Store>,
    key: Arc<MasterKey>,
    metrics: bool,
) -> anyhow::Result<SocketAddr> {
    let settings = EdgeSettings { rate_limit_per_sec: 0, ..EdgeSettings::default() };
    let clock = SystemClock::shared();
    let provider = Arc::new(ManualProvider::new(clock.clone()));
    let metrics = Arc::new(Metrics::new(metrics));
    let upstream = Arc::new(Upstream::metered(provider, SyncSettings::default(), clock.clone(), metrics));
    let state = AppState::new(store, key, settings, clock).with_upstream(upstream);
    let app = Application::bind("127.0.0.1:0".parse()?, state).await?;
    let addr = app.local_addr()?;
    tokio::spawn(app.run_until(std::future::pending()));
    Ok(addr)
}
