//! `--poller`: the upstream poller's jobs handled a second.
//!
//! Loads `--poll-jobs` transfers in process, each with a poll job due now,
//! then starts the real workers (the server's settings: one claim of 32 jobs
//! a tick) against a provider that answers every status query at once with
//! a success and its UTR. Each job handled is a real one: the transfer read,
//! the provider asked, the success written with its history row (which ends
//! the job). Timed until the queue is empty.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use payrail::domain::remitter::MobileNumber;
use payrail::domain::upstream::{BillUpstream, DmtUpstream};
use payrail::domain::{BillPayment, ChangeSource, Clock as _, DmtTransfer, Paise, ReferenceId, SystemClock, Timestamp};
use payrail::services::callbacks::{Deliverer, DeliverySettings};
use payrail::services::secrets::MasterKey;
use payrail::services::transactions::NewDmt;
use payrail::services::upstream::provider::{
    AccountCheck, AccountHolder, BeneficiarySignup, BillOrder, BillQuery, CallbackError, Enrolment, FetchedBill,
    Provider, ProviderError, RemitterSignup, RemitterStatus, TransferOrder, UpstreamBeneficiary, UpstreamCallback,
};
use payrail::services::upstream::sync::{SyncSettings, Upstream};
use payrail::services::workers::{WorkerSettings, Workers};
use payrail::store::{ChangeNote, Store, StoreLocation};

use crate::Args;

/// An upstream that answers every status query at once: paid, with a UTR.
#[derive(Default)]
struct InstantProvider {
    asked: AtomicU64,
}

#[async_trait]
impl Provider for InstantProvider {
    fn name(&self) -> &'static str {
        "instant"
    }

    fn settles(&self) -> bool {
        true
    }

    async fn submit_transfer(&self, _: &TransferOrder) -> Result<DmtUpstream, ProviderError> {
        Err(ProviderError::Timeout)
    }

    async fn submit_bill(&self, _: &BillOrder) -> Result<BillUpstream, ProviderError> {
        Err(ProviderError::Timeout)
    }

    async fn fetch_bill(&self, _: &BillQuery<'_>) -> Result<FetchedBill, ProviderError> {
        Err(ProviderError::Timeout)
    }

    async fn dmt_status(&self, _: &str, transfer: &DmtTransfer) -> Result<DmtUpstream, ProviderError> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        Ok(DmtUpstream::Success { utr: Some(format!("{:012}", transfer.ackno)) })
    }

    async fn bill_status(&self, _: &str, _: &BillPayment) -> Result<BillUpstream, ProviderError> {
        Ok(BillUpstream::Success { operator_ref: None })
    }

    fn read_callback(&self, _: Option<&str>, _: &[u8], _: Timestamp) -> Result<UpstreamCallback, CallbackError> {
        Err(CallbackError::NotAccepted)
    }

    async fn verify_account(&self, check: &AccountCheck) -> Result<AccountHolder, ProviderError> {
        Ok(AccountHolder::Named(check.name.clone()))
    }

    // The poller bench registers nobody: its transfers are loaded straight into the store.
    async fn query_remitter(&self, _: &MobileNumber) -> Result<RemitterStatus, ProviderError> {
        Ok(RemitterStatus::NotRegistered)
    }

    async fn register_remitter(&self, _: &RemitterSignup) -> Result<Enrolment, ProviderError> {
        Ok(Enrolment::Done(None))
    }

    async fn fetch_beneficiaries(&self, _: &str) -> Result<Vec<UpstreamBeneficiary>, ProviderError> {
        Ok(Vec::new())
    }

    async fn register_beneficiary(&self, _: &BeneficiarySignup) -> Result<Enrolment, ProviderError> {
        Ok(Enrolment::Done(None))
    }

    async fn delete_beneficiary(&self, _: &str, _: &str) -> Result<Enrolment, ProviderError> {
        Ok(Enrolment::Done(None))
    }
}

/// Runs the poller measurement on one engine (`postgres`: the server's base URL).
pub fn run(args: &Args, engine: &str, postgres: Option<String>) -> anyhow::Result<()> {
    println!("\n== {engine}: poller, {} due jobs", args.poll_jobs);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().thread_name("server").worker_threads(2).enable_all().build()?;
    let data_dir = tempfile::tempdir()?;
    let (location, database) = crate::location(&runtime, data_dir.path(), postgres.as_deref())?;
    let (store, key) = runtime.block_on(crate::open(&location))?;
    runtime.block_on(load_in_process(&*store, &key, args.poll_jobs))?;
    runtime.block_on(schedule_all(&location))?;
    println!("   {} jobs due", runtime.block_on(due(&location))?);

    let provider = Arc::new(InstantProvider::default());
    let clock = SystemClock::shared();
    let upstream = Arc::new(Upstream::new(provider.clone(), SyncSettings::default(), clock.clone()));
    let deliverer = Arc::new(Deliverer::new(store.clone(), key, DeliverySettings::default(), clock.clone())?);
    let started = Instant::now();
    let workers = {
        let _entered = runtime.enter();
        Workers::start(store, upstream, deliverer, WorkerSettings::default(), clock)
    };
    let left = runtime.block_on(until_empty(&location, started, Duration::from_secs(args.poll_limit_secs)))?;
    let elapsed = started.elapsed().as_secs_f64();
    workers.stop();
    let handled = args.poll_jobs as u64 - left;
    println!(
        "{engine:>8} poller {:>8.0} jobs/s  ({handled} jobs in {elapsed:.1} s, {left} left, {} status queries)",
        handled as f64 / elapsed,
        provider.asked.load(Ordering::Relaxed)
    );
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let (Some(base), Some(name)) = (postgres, database) {
        let cleanup = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        cleanup.block_on(crate::drop_database(&base, &name))?;
    }
    Ok(())
}

/// Adds a partner and `n` transfers in process (no jobs yet).
async fn load_in_process(store: &dyn Store, key: &MasterKey, n: usize) -> anyhow::Result<()> {
    let (partner, _) = crate::load(store, key, 0).await?;
    let quiet: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(|_| {});
    for start in (0..n).step_by(50_000) {
        let transfers = (start..(start + 50_000).min(n))
            .map(|i| {
                let reference = ReferenceId::parse(&format!("Q{i:07}"))?;
                let new = NewDmt::in_process(partner, reference, Paise::rupees(100), "20018575947".into());
                Ok(new.into_transfer(SystemClock.now()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let note = ChangeNote { source: ChangeSource::Import, reason: None, at: SystemClock.now() };
        store.insert_dmt_batch(transfers, note, quiet.clone()).await.context("Failed to load transfers")?;
    }
    Ok(())
}

/// Waits until no job is left, or `limit` has passed; returns the jobs left.
async fn until_empty(location: &StoreLocation, started: Instant, limit: Duration) -> anyhow::Result<u64> {
    loop {
        let left = due(location).await?;
        if left == 0 || started.elapsed() > limit {
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Gives every transfer a poll job due now, in one statement.
async fn schedule_all(location: &StoreLocation) -> anyhow::Result<()> {
    let now = SystemClock.now().unix();
    let sql = "INSERT INTO upstream_polls (kind, txn_id, attempts, next_poll_at) \
               SELECT 'dmt', ackno, 0, {now} FROM dmt_transfers";
    let sql = sql.replace("{now}", &now.to_string());
    match location {
        StoreLocation::Sqlite(dir) => {
            rusqlite::Connection::open(dir.join("payrail.db"))?.execute_batch(&sql)?;
        }
        StoreLocation::Postgres(url) => postgres(url).await?.batch_execute(&sql).await?,
    }
    Ok(())
}

/// How many poll jobs are left.
async fn due(location: &StoreLocation) -> anyhow::Result<u64> {
    let sql = "SELECT COUNT(*) FROM upstream_polls";
    let count: i64 = match location {
        StoreLocation::Sqlite(dir) => {
            rusqlite::Connection::open(dir.join("payrail.db"))?.query_row(sql, [], |r| r.get(0))?
        }
        StoreLocation::Postgres(url) => postgres(url).await?.query_one(sql, &[]).await?.try_get(0)?,
    };
    Ok(count.max(0) as u64)
}

async fn postgres(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.context("Failed to connect")?;
    tokio::spawn(connection);
    Ok(client)
}
