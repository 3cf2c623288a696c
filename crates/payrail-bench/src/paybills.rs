//! `--paybills`: bill payments committed a second through the real server.
//!
//! A funded partner (token authentication on, rate limit off, manual
//! provider: nothing settles) pays ₹100 bills under new references from
//! `--connections` keep-alive connections for `--seconds`. Every answered
//! payment is committed: the wallet debit, the record, its history and its
//! journal, in one database transaction.

use std::time::Duration;

use payrail::domain::{Paise, RegistrationId, SystemClock};
use payrail::services::ledger::{self, OperatorMove};
use payrail::store::Store;

use crate::load::{self, Target, Workload};
use crate::Args;

/// Tops the partner's wallet up with more than any run pays.
pub async fn fund(store: &dyn Store, partner: RegistrationId) -> anyhow::Result<()> {
    ledger::move_money(store, &SystemClock, partner, OperatorMove::TopUp, Paise::rupees(1_000_000_000), "bench")
        .await?;
    Ok(())
}

/// Runs the paybill load on one engine (`postgres`: the server's base URL).
pub fn run(
    args: &Args,
    engine: &str,
    postgres: Option<String>,
    driver: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    println!("\n== {engine}: paybills, {} connections, {} s", args.connections, args.seconds);
    let server =
        tokio::runtime::Builder::new_multi_thread().thread_name("server").worker_threads(2).enable_all().build()?;
    let data_dir = tempfile::tempdir()?;
    let (location, database) = crate::location(&server, data_dir.path(), postgres.as_deref())?;
    let (store, key) = server.block_on(crate::open(&location))?;
    let (partner, secret) = server.block_on(crate::load(&*store, &key, 0))?;
    server.block_on(fund(&*store, partner))?;
    let addr = server.block_on(crate::start_payrail(store, key, !args.no_metrics))?;
    let target = Target { addr, name: "paybill", partner, secret, records: 1, workload: Workload::Paybill };
    let report = driver.block_on(load::drive(target, args.connections, Duration::from_secs(args.seconds)))?;
    println!(
        "{engine:>8} paybills {:>8.0} /s  p50 {:>6} µs  p99 {:>6} µs  ({} payments, {} errors)",
        report.per_second, report.p50_micros, report.p99_micros, report.requests, report.errors
    );
    server.shutdown_timeout(Duration::from_secs(1));
    if let (Some(base), Some(name)) = (postgres, database) {
        driver.block_on(crate::drop_database(&base, &name))?;
    }
    Ok(())
}
