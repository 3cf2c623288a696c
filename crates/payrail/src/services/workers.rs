//! The background workers: the upstream poller and the callback deliverer.
//!
//! Each payrail process runs both loops. Work is shared through the store
//! with leases: a worker claims due jobs or events for [`WorkerSettings::lease`],
//! does them, and records the result only while it still holds the lease.
//! On PostgreSQL several processes can run side by side, and the claim's
//! `FOR UPDATE SKIP LOCKED` gives each due item to exactly one of them; on
//! SQLite one process owns the data directory (and so the workers).
//!
//! Each loop wakes on a real tick ([`WorkerSettings::tick`]) and decides
//! what is due by the [`Clock`] it is handed, and it counts the rounds it
//! has finished ([`WorkerRounds`]), so that a test that moves a manual clock
//! can wait for the workers to have seen the new time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::callbacks::Deliverer;
use super::upstream::sync::Upstream;
use crate::domain::clock::SharedMoment;
use crate::domain::event::{PartnerEvent, PollJob, PollNext};
use crate::domain::{Clock, Timestamp};
use crate::observe::metrics::store_error_kind;
use crate::observe::Metrics;
use crate::store::{Lease, Store};

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
    rounds: WorkerRounds,
    health: WorkerHealth,
}

/// Whether each worker loop is running, for `/readyz`: a loop's flag is
/// set when its task starts and cleared when the task ends for any reason
/// (it returned, panicked or was aborted), by a guard the task owns. And
/// how long the batch a loop is working on has taken: one that runs past
/// its lease is stuck (a call that never returns), and its items are
/// already free for another worker to take.
#[derive(Clone)]
pub struct WorkerHealth {
    loops: Vec<LoopHealth>,
    /// How long a batch may take before its loop counts as stuck: the lease.
    stuck_after: Duration,
}

#[derive(Clone)]
struct LoopHealth {
    name: &'static str,
    alive: Arc<AtomicBool>,
    /// When it claimed the batch it is working on (unset between
    /// batches), in real time whatever the clock it decides by says.
    batch: Arc<SharedMoment>,
}

/// One loop, as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopState {
    pub name: &'static str,
    /// Whether its task runs.
    pub running: bool,
    /// How long its current batch has taken, when that is longer than the
    /// lease (`None` while it is between batches or within the lease).
    pub stuck_for: Option<Duration>,
}

impl WorkerHealth {
    fn new(stuck_after: Duration) -> Self {
        WorkerHealth { loops: Vec::new(), stuck_after }
    }

    /// A flag for the loop `name`, set while the returned guard lives, and
    /// the timer of its batches.
    fn add(&mut self, name: &'static str) -> (Alive, Arc<SharedMoment>) {
        let flag = Arc::new(AtomicBool::new(true));
        let batch = Arc::new(SharedMoment::unset());
        self.loops.push(LoopHealth { name, alive: flag.clone(), batch: batch.clone() });
        (Alive(flag), batch)
    }

    /// Each loop's state, in start order.
    pub fn loops(&self) -> Vec<LoopState> {
        self.loops
            .iter()
            .map(|l| LoopState {
                name: l.name,
                running: l.alive.load(Ordering::Acquire),
                stuck_for: l.batch.elapsed().filter(|taken| *taken > self.stuck_after),
            })
            .collect()
    }

    /// How long a batch may take before its loop counts as stuck.
    pub fn stuck_after(&self) -> Duration {
        self.stuck_after
    }
}

/// Clears its loop's flag when the loop's task ends.
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Workers {
    /// Starts the poller and the deliverer, which read the time from `clock`.
    pub fn start(
        store: Arc<dyn Store>,
        upstream: Arc<Upstream>,
        deliverer: Arc<Deliverer>,
        settings: WorkerSettings,
        clock: Arc<dyn Clock>,
    ) -> Workers {
        let mut tasks = JoinSet::new();
        let mut health = WorkerHealth::new(settings.lease);
        let settings = Arc::new(settings);
        let loops = Loops { settings, clock, metrics: upstream.metrics().clone() };
        let (poller_counts, poller_rounds) = watch::channel(0);
        let (deliverer_counts, deliverer_rounds) = watch::channel(0);
        let poller = if upstream.provider.settles() {
            let (alive, batch) = health.add("poller");
            let rounds = Rounds { finished: poller_counts, batch };
            let polling = poll_loop(store.clone(), upstream, loops.clone(), rounds);
            tasks.spawn(async move {
                let _alive = alive;
                polling.await
            });
            Some(poller_rounds)
        } else {
            None
        };
        let (alive, batch) = health.add("deliverer");
        let delivering = delivery_loop(store, deliverer, loops, Rounds { finished: deliverer_counts, batch });
        tasks.spawn(async move {
            let _alive = alive;
            delivering.await
        });
        Workers { tasks, rounds: WorkerRounds { poller, deliverer: deliverer_rounds }, health }
    }

    /// Whether each loop is running (shared: it follows the loops).
    pub fn health(&self) -> WorkerHealth {
        self.health.clone()
    }

    /// Stops the workers and waits until their tasks have ended.
    pub async fn shut_down(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// The finished rounds of the running loops.
    pub fn rounds(&self) -> WorkerRounds {
        self.rounds.clone()
    }

    /// Stops the workers.
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

/// How many rounds (one tick's claims and their work) each running loop
/// has finished.
#[derive(Clone)]
pub struct WorkerRounds {
    /// The poller's; `None` when the provider is not followed up (no poller runs).
    poller: Option<watch::Receiver<u64>>,
    deliverer: watch::Receiver<u64>,
}

impl WorkerRounds {
    /// Waits until each running loop has finished a round that began after
    /// this call, and so has acted on the clock as it stood at the call.
    /// That takes two more finished rounds: the one in flight may have read
    /// the clock before. What a round hands the other loop (the event a
    /// poll writes, for the deliverer) is only certain to be done after a
    /// second call.
    pub async fn next_full_round(&self) {
        let mut loops: Vec<watch::Receiver<u64>> = self.poller.iter().cloned().collect();
        loops.push(self.deliverer.clone());
        for mut rounds in loops {
            let seen = *rounds.borrow_and_update();
            // An error means the loop stopped: it has nothing more to do.
            let _ = rounds.wait_for(|finished| *finished >= seen + 2).await;
        }
    }
}

/// Where a loop reports its progress: the rounds it has finished, and when
/// it claimed the batch it is working on.
struct Rounds {
    finished: watch::Sender<u64>,
    batch: Arc<SharedMoment>,
}

/// What every loop gets: the settings, the clock and the metrics.
#[derive(Clone)]
struct Loops {
    settings: Arc<WorkerSettings>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

/// Every tick: claims due items with `claim(now, lease_until)` and works
/// them all concurrently with `work`; while a claim comes back full, claims
/// again at once instead of waiting for the next tick, so a backlog drains
/// as fast as the work allows (not one batch a tick). Each finished round
/// adds one to `rounds`.
async fn claim_loop<T, Claim, Claimed, Work, Worked>(
    what: &'static str,
    loops: Loops,
    rounds: Rounds,
    claim: Claim,
    work: Work,
) where
    T: Send + 'static,
    Claim: Fn(Timestamp, Timestamp) -> Claimed,
    Claimed: std::future::Future<Output = Result<Vec<T>, crate::store::StoreError>>,
    Work: Fn(T) -> Worked,
    Worked: std::future::Future<Output = ()> + Send + 'static,
{
    let Loops { settings, clock, metrics } = loops;
    let mut tick = tokio::time::interval(settings.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            rounds.batch.mark();
            let now = clock.now();
            let items = match claim(now, now.plus_secs(settings.lease.as_secs() as i64)).await {
                Ok(items) => items,
                Err(e) => {
                    metrics.store_error(store_error_kind(&e));
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
        rounds.batch.clear();
        rounds.finished.send_modify(|finished| *finished += 1);
    }
}

async fn poll_loop(store: Arc<dyn Store>, upstream: Arc<Upstream>, loops: Loops, rounds: Rounds) {
    let settings = loops.settings.clone();
    let (claimer, owner, calling) = (store.clone(), settings.clone(), upstream.clone());
    let claim = move |now, until| {
        let (store, owner, upstream) = (claimer.clone(), owner.clone(), calling.clone());
        async move {
            // An in-process provider's own callbacks ride on the poller's tick.
            upstream.take_provider_callbacks(&*store, now).await;
            // So do the refunds of penny drops a crash left pending.
            if let Err(e) = super::penny_drops::refund_abandoned(&*store, now).await {
                tracing::warn!(error = %e, "could not refund abandoned penny drops");
            }
            store.claim_polls(Lease { owner: &owner.instance, now, until, limit: owner.batch }).await
        }
    };
    let worker = settings.clone();
    let work = move |job| poll_one(store.clone(), upstream.clone(), worker.clone(), job);
    claim_loop("poller", loops, rounds, claim, work).await
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

async fn delivery_loop(store: Arc<dyn Store>, deliverer: Arc<Deliverer>, loops: Loops, rounds: Rounds) {
    let settings = loops.settings.clone();
    let owner = settings.clone();
    let claim = move |now, until| {
        let (store, owner) = (store.clone(), owner.clone());
        async move { store.claim_events(Lease { owner: &owner.instance, now, until, limit: owner.batch }).await }
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
    claim_loop("deliverer", loops, rounds, claim, work).await
}
