//! The background workers: the upstream poller and the callback deliverer.
//!
//! Each payrail process runs both loops. Work is shared through the store
//! with leases: a worker claims due jobs or events for [`WorkerSettings::lease`],
//! does them, and records the result only while it still holds the lease.
//! On PostgreSQL several processes can run side by side, and the claim's
//! `FOR UPDATE SKIP LOCKED` gives each due item to exactly one of them; on
//! SQLite one process owns the data directory (and so the workers).

use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use tokio::task::JoinSet;

use super::callbacks::Deliverer;
use super::upstream::sync::Upstream;
use crate::domain::event::{PartnerEvent, PollJob, PollNext};
use crate::domain::Timestamp;
use crate::store::Store;

/// How the workers run.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// This process's name in leases and attempt records.
    pub instance: String,
    /// How often each loop looks for due work.
    pub tick: Duration,
    /// How long a claim holds its items (longer than an item can take).
    pub lease: Duration,
    /// At most this many items per claim.
    pub batch: u32,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            instance: instance_name(),
            tick: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            batch: 32,
        }
    }
}

/// `<host>-<pid>-<random>`: unique among the processes sharing a database.
pub fn instance_name() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "payrail".into());
    format!("{host}-{}-{:04x}", std::process::id(), rand::thread_rng().gen::<u16>())
}

/// The running workers; dropping this stops them (leases then expire).
pub struct Workers {
    tasks: JoinSet<()>,
}

impl Workers {
    /// Starts the poller and the deliverer.
    pub fn start(
        store: Arc<dyn Store>,
        upstream: Arc<Upstream>,
        deliverer: Arc<Deliverer>,
        settings: WorkerSettings,
    ) -> Workers {
        let mut tasks = JoinSet::new();
        let settings = Arc::new(settings);
        if upstream.provider.settles() {
            tasks.spawn(poll_loop(store.clone(), upstream, settings.clone()));
        }
        tasks.spawn(delivery_loop(store, deliverer, settings));
        Workers { tasks }
    }

    /// Stops the workers.
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

/// Every tick: claims due items with `claim(now, lease_until)` and works
/// them all concurrently with `work`; while a claim comes back full, claims
/// again at once instead of waiting for the next tick, so a backlog drains
/// as fast as the work allows (not one batch a tick).
async fn claim_loop<T, Claim, Claimed, Work, Worked>(
    what: &'static str,
    settings: Arc<WorkerSettings>,
    claim: Claim,
    work: Work,
) where
    T: Send + 'static,
    Claim: Fn(Timestamp, Timestamp) -> Claimed,
    Claimed: std::future::Future<Output = Result<Vec<T>, crate::store::StoreError>>,
    Work: Fn(T) -> Worked,
    Worked: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tick = tokio::time::interval(settings.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            let now = Timestamp::now();
            let items = match claim(now, now.plus_secs(settings.lease.as_secs() as i64)).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(worker = what, error = %e, "could not claim work");
                    break;
                }
            };
            let full = items.len() >= settings.batch as usize;
            let mut running = JoinSet::new();
            for item in items {
                running.spawn(work(item));
            }
            while running.join_next().await.is_some() {}
            if !full {
                break;
            }
        }
    }
}

async fn poll_loop(store: Arc<dyn Store>, upstream: Arc<Upstream>, settings: Arc<WorkerSettings>) {
    let (claimer, owner, calling) = (store.clone(), settings.clone(), upstream.clone());
    let claim = move |now, until| {
        let (store, owner, upstream) = (claimer.clone(), owner.clone(), calling.clone());
        async move {
            // An in-process provider's own callbacks ride on the poller's tick.
            upstream.take_provider_callbacks(&*store, now).await;
            store.claim_polls(&owner.instance, now, until, owner.batch).await
        }
    };
    let worker = settings.clone();
    let work = move |job| poll_one(store.clone(), upstream.clone(), worker.clone(), job);
    claim_loop("poller", settings, claim, work).await
}

async fn poll_one(store: Arc<dyn Store>, upstream: Arc<Upstream>, settings: Arc<WorkerSettings>, job: PollJob) {
    let next = match upstream.poll(&*store, &job).await {
        Ok(next) => next,
        Err(e) => {
            // Leave the job leased: it comes back when the lease expires.
            tracing::warn!(kind = job.kind.as_str(), id = job.txn_id, error = %e, "poll failed");
            return;
        }
    };
    match store.finish_poll(&job, &settings.instance, next).await {
        Ok(true) => tracing::debug!(kind = job.kind.as_str(), id = job.txn_id, ?next, "polled"),
        // The change that decided the transaction already ended its job.
        Ok(false) if next == PollNext::Done => tracing::debug!(kind = job.kind.as_str(), id = job.txn_id, "polled"),
        Ok(false) => tracing::warn!(kind = job.kind.as_str(), id = job.txn_id, "poll lease lost before it finished"),
        Err(e) => tracing::warn!(kind = job.kind.as_str(), id = job.txn_id, error = %e, "poll result not saved"),
    }
}

async fn delivery_loop(store: Arc<dyn Store>, deliverer: Arc<Deliverer>, settings: Arc<WorkerSettings>) {
    let owner = settings.clone();
    let claim = move |now, until| {
        let (store, owner) = (store.clone(), owner.clone());
        async move { store.claim_events(&owner.instance, now, until, owner.batch).await }
    };
    let worker = settings.clone();
    let work = move |event: PartnerEvent| {
        let (deliverer, owner) = (deliverer.clone(), worker.instance.clone());
        async move {
            match deliverer.attempt(&event, &owner).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(event = event.id, "callback lease lost; attempt not recorded"),
                Err(e) => tracing::warn!(event = event.id, error = %e, "callback attempt not recorded"),
            }
        }
    };
    claim_loop("deliverer", settings, claim, work).await
}
