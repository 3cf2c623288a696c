//! Status lookups in batches: the lookups waiting run as one statement per
//! kind, each with its own partner check and `reqid` (see [`super::lookup`]
//! for what one lookup does).
//!
//! A status lookup is one small statement in a transaction of its own, and
//! on a small machine starting each one is most of what the server does
//! for it (the executor, the transaction, the commit record). Run as one
//! statement over arrays, eight lookups cost the server about what two did
//! one by one (`pgbench`, BENCHMARKS.md). The batcher task owns a connection
//! and keeps [`PIPELINE`] batches in flight on it; it sends whatever lookups
//! queued while those ran, so a lookup alone waits for no one, and under
//! load the batches grow by themselves. The connection plans the statement
//! once (`plan_cache_mode = force_generic_plan`): planned for each batch's
//! arrays, planning took longer than running it.
//!
//! Each row of a batch is what one lookup would have been: its partner read
//! with its row version, its `reqid` inserted only if that version is the
//! one checked, unless seen since its own cutoff (the `ON CONFLICT` guard
//! reads each row's cutoff), and its record. Two lookups offering the same
//! partner's same `reqid` never share a batch (one statement cannot insert
//! a row twice): the second waits for the next one, where it is the replay
//! it is. Each statement inserts its `reqid`s in one order (partner, then
//! `reqid`), so two statements that wait for each other's `reqid`s (from
//! two payrail instances, or a replay in flight beside its original) wait
//! in line instead of deadlocking.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use tokio::sync::{mpsc, oneshot};

use super::lookup::{relaxed_cte, reqid_guard};
use super::*;
use crate::store::partners::partner_list as lookup_partner_columns;

/// How many batcher tasks (each on a connection of its own) share the
/// lookups. One, with two batches in flight, measured best on the 2-core
/// machine (BENCHMARKS.md): more of them make each batch smaller.
const BATCHERS: usize = 1;
/// The most lookups one statement runs.
const BATCH_MAX: usize = 64;
/// Batches in flight at once on one batcher's connection (pipelined: the
/// next is sent while the server runs the one before).
const PIPELINE: usize = 2;
/// Lookups that can wait for one batcher before callers queue.
const QUEUE: usize = 4096;

/// The batched status lookup of the records in `table` (read as `columns`):
/// `$1`–`$6` are arrays, one element per lookup (partner, `reqid`, now,
/// cutoff, version checked, reference; `NULL` `reqid`: none offered). Each
/// answer row is the single lookup's (partner, version, record, `reqid`
/// rows written) followed by its element's position, counted from 1.
fn batch_sql(columns: &str, table: &str) -> String {
    format!(
        "{relaxed}, \
         req AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[]) \
           WITH ORDINALITY AS r(r_partner, r_reqid, r_now, r_cutoff, r_checked, r_reference, r_i)), \
         p AS (SELECT {partner}, partners.xmin::text::bigint AS version, req.* \
           FROM req JOIN partners ON partners.id = req.r_partner), \
         fresh AS (INSERT INTO seen_reqids SELECT r_partner, r_reqid, r_now FROM p, relaxed \
           WHERE p.version = p.r_checked ORDER BY r_partner, r_reqid {guard}\
             (SELECT r_cutoff FROM req WHERE r_partner = seen_reqids.partner_id AND r_reqid = seen_reqids.reqid) \
           RETURNING partner_id, reqid) \
         SELECT {partner_p}, p.version, t.*, \
           (SELECT count(*) FROM fresh WHERE fresh.partner_id = p.r_partner AND fresh.reqid = p.r_reqid), p.r_i \
         FROM p LEFT JOIN LATERAL \
           (SELECT {columns} FROM {table} WHERE partner_id = p.r_partner AND reference_id = p.r_reference) t ON true",
        relaxed = relaxed_cte!(),
        guard = reqid_guard!(),
        partner = lookup_partner_columns!("partners"),
        partner_p = lookup_partner_columns!("p"),
    )
}

/// The batched DMT status lookup.
pub(super) static BATCH_DMT: LazyLock<String> = LazyLock::new(|| batch_sql(dmt_columns!(), "dmt_transfers"));
/// As [`BATCH_DMT`], for bill payments.
pub(super) static BATCH_BILL: LazyLock<String> = LazyLock::new(|| batch_sql(bill_columns!(), "bill_payments"));

/// One status lookup waiting for its batch.
pub(super) struct Waiting {
    /// Its kind's statement ([`BATCH_DMT`] or [`BATCH_BILL`]).
    pub(super) sql: &'static LazyLock<String>,
    pub(super) partner: i64,
    pub(super) reqid: Option<String>,
    pub(super) now: Option<i64>,
    pub(super) cutoff: Option<i64>,
    pub(super) checked: Option<i64>,
    pub(super) reference: String,
    /// Its row (as [`batch_sql`] describes it), or `None`: no such partner.
    pub(super) answer: oneshot::Sender<StoreResult<Option<Row>>>,
}

/// The queues of the batcher tasks.
pub(super) struct LookupBatches {
    queues: Vec<mpsc::Sender<Waiting>>,
    next: AtomicUsize,
    /// The most lookups one statement has run (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    largest: Arc<AtomicUsize>,
}

impl LookupBatches {
    /// Starts the batcher tasks on the current runtime; they end when the
    /// store is dropped.
    pub(super) fn start(pool: &Pool) -> Self {
        let largest = Arc::new(AtomicUsize::new(0));
        let queues = (0..BATCHERS)
            .map(|_| {
                let (queue, waiting) = mpsc::channel(QUEUE);
                tokio::spawn(run_batches(pool.clone(), waiting, Arc::clone(&largest)));
                queue
            })
            .collect();
        LookupBatches { queues, next: AtomicUsize::new(0), largest }
    }

    /// The most lookups one statement has run so far.
    #[cfg(test)]
    pub(super) fn largest(&self) -> usize {
        self.largest.load(Ordering::Relaxed)
    }

    /// Queues the lookup `waiting` describes (its `answer` aside) and waits
    /// for its row.
    pub(super) async fn lookup(
        &self,
        make: impl FnOnce(oneshot::Sender<StoreResult<Option<Row>>>) -> Waiting,
    ) -> StoreResult<Option<Row>> {
        let queue = &self.queues[self.next.fetch_add(1, Ordering::Relaxed) % self.queues.len()];
        let (answer, answered) = oneshot::channel();
        queue.send(make(answer)).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// The refusal when a batcher task is gone (its runtime shut down).
fn stopped() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("the status lookup batcher stopped"))
}

/// A batcher task: runs every lookup waiting (at most [`BATCH_MAX`]) as one
/// statement per kind, on a connection of its own.
async fn run_batches(pool: Pool, mut waiting: mpsc::Receiver<Waiting>, largest: Arc<AtomicUsize>) {
    let mut client: Option<Arc<deadpool_postgres::ClientWrapper>> = None;
    let mut batch: Vec<Waiting> = Vec::with_capacity(BATCH_MAX);
    let mut later: Vec<Waiting> = Vec::new();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(PIPELINE));
    loop {
        // Wait for room in the pipeline first: lookups queue meanwhile.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else { return };
        batch.append(&mut later);
        if batch.is_empty() {
            if waiting.recv_many(&mut batch, BATCH_MAX).await == 0 {
                return;
            }
        } else {
            while batch.len() < BATCH_MAX {
                match waiting.try_recv() {
                    Ok(one) => batch.push(one),
                    Err(_) => break,
                }
            }
        }
        // A `reqid` offered twice for one partner waits for the next batch
        // (decided on borrowed `reqid`s, then the batch split by it).
        let mut offered = HashSet::new();
        let first: Vec<bool> = batch
            .iter()
            .map(|one| one.reqid.as_deref().is_none_or(|reqid| offered.insert((one.partner, reqid))))
            .collect();
        drop(offered);
        let mut first = first.into_iter();
        let (now, next): (Vec<_>, Vec<_>) = batch.drain(..).partition(|_| first.next().unwrap_or(true));
        later = next;
        if client.as_ref().is_none_or(|held| held.is_closed()) {
            client = match lookup_connection(&pool).await {
                Ok(got) => Some(Arc::new(got)),
                Err(error) => {
                    tracing::warn!(?error, "no connection for status lookups");
                    None
                }
            };
        }
        let Some(conn) = client.clone() else {
            for one in now {
                let _ = one.answer.send(Err(StoreError::Unavailable(anyhow::anyhow!(
                    "Failed to get a PostgreSQL connection for a status lookup"
                ))));
            }
            continue;
        };
        let (dmt, bills): (Vec<_>, Vec<_>) = now.into_iter().partition(|one| std::ptr::eq(one.sql, &BATCH_DMT));
        largest.fetch_max(dmt.len().max(bills.len()), Ordering::Relaxed);
        // Both kinds' statements are sent at once on the one connection,
        // pipelined behind the batches still in flight on it.
        tokio::spawn(async move {
            tokio::join!(run_batch(&conn, BATCH_DMT.as_str(), dmt), run_batch(&conn, BATCH_BILL.as_str(), bills));
            drop(permit);
        });
    }
}

/// A connection of the batcher's own, taken out of the pool for good (its
/// session setting must not reach other work): its statements are planned
/// once, not for every batch (a custom plan for the batch statement took
/// 1.4 ms, longer than running it). A generic plan is made again when the
/// tables' statistics change (an `ANALYZE`, which autovacuum runs as they
/// grow), so one made on an empty store does not stay.
async fn lookup_connection(pool: &Pool) -> StoreResult<deadpool_postgres::ClientWrapper> {
    let client = deadpool_postgres::Object::take(pool.get().await.map_err(pool_error)?);
    let what = "Failed to set up a connection for status lookups";
    client.batch_execute("SET plan_cache_mode = force_generic_plan").await.store_context(what)?;
    Ok(client)
}

/// Runs one kind's lookups as one statement and answers each.
async fn run_batch(client: &deadpool_postgres::ClientWrapper, sql: &str, batch: Vec<Waiting>) {
    if batch.is_empty() {
        return;
    }
    let column = |f: fn(&Waiting) -> i64| batch.iter().map(f).collect::<Vec<_>>();
    let partners = column(|one| one.partner);
    let reqids: Vec<Option<&str>> = batch.iter().map(|one| one.reqid.as_deref()).collect();
    let option = |f: fn(&Waiting) -> Option<i64>| batch.iter().map(f).collect::<Vec<_>>();
    let (nows, cutoffs, checked) = (option(|one| one.now), option(|one| one.cutoff), option(|one| one.checked));
    let references: Vec<&str> = batch.iter().map(|one| one.reference.as_str()).collect();
    let params: [&(dyn ToSql + Sync); 6] = [&partners, &reqids, &nows, &cutoffs, &checked, &references];
    let what = "Failed to look up the transactions";
    let rows = match client.prepare_cached(sql).await.store_context(what) {
        Ok(statement) => client.query(&statement, &params).await.store_context(what),
        Err(error) => Err(error),
    };
    match rows {
        Ok(rows) => {
            let mut rows: Vec<Option<Row>> = {
                let mut by_position: Vec<Option<Row>> = (0..batch.len()).map(|_| None).collect();
                for row in rows {
                    let position = row.try_get::<_, i64>(row.len() - 1).ok().and_then(|i| usize::try_from(i - 1).ok());
                    if let Some(slot) = position.and_then(|i| by_position.get_mut(i)) {
                        *slot = Some(row);
                    }
                }
                by_position
            };
            for (one, row) in batch.into_iter().zip(rows.drain(..)) {
                let _ = one.answer.send(Ok(row));
            }
        }
        Err(error) => {
            let message = format!("{error:#}");
            let unavailable = matches!(error, StoreError::Unavailable(_));
            for one in batch {
                let error = anyhow::anyhow!("{message}");
                let _ = one.answer.send(Err(if unavailable {
                    StoreError::Unavailable(error)
                } else {
                    StoreError::Other(error)
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a real server (`PAYRAIL_TEST_DATABASE_URL`; skipped without it).

    use std::collections::HashMap;
    use std::sync::Arc;

    use super::super::tests::{new_partner, TestDb, P};
    use super::super::PostgresStore;
    use crate::domain::{Partner, RegistrationId, Timestamp};
    use crate::store::lookup::{ReqidClaim, ReqidOutcome};
    use crate::store::transactions::conformance::{no_progress, note, transfer};
    use crate::store::{PartnerStore, RecordStore};

    /// What one lookup of the test answered.
    type Answer = Option<(ReqidOutcome, bool)>;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_lookups_on_two_instances_each_get_their_own_answer_and_each_reqid_is_fresh_once(
    ) -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        db.store.insert_partner(new_partner(Some(P))).await?;
        db.store.insert_dmt_batch(vec![transfer(P, 0, "R1")?], note("import"), no_progress()).await?;
        // Two instances, as behind a load balancer.
        let stores = [
            Arc::new(PostgresStore::connect_with(db.config.clone()).await?),
            Arc::new(PostgresStore::connect_with(db.config.clone()).await?),
        ];
        let partner = RegistrationId::new(P);
        for store in &stores {
            // Read once, so that the lookups below offer their `reqid`s.
            store.lookup_dmt(partner, "R0").await?;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..400_usize {
            let store = Arc::clone(&stores[i % 3 % 2]);
            tasks.spawn(async move {
                // Each `reqid` is offered four times, by lookups of both kinds.
                let reqid = format!("c{}", i % 100);
                let claim = move |_: &Partner| {
                    Some(ReqidClaim {
                        reqid: reqid.clone(),
                        now: Timestamp::from_unix(1_000),
                        cutoff: Timestamp::from_unix(400),
                    })
                };
                let who = if i % 7 == 6 { RegistrationId::new(999) } else { partner };
                let answer: Answer = if i % 2 == 0 {
                    let found = store.lookup_dmt_checked(who, "R1", &claim).await?;
                    found.map(|found| (found.reqid, found.record.is_some()))
                } else {
                    let found = store.lookup_bill_checked(who, "R1", &claim).await?;
                    found.map(|found| (found.reqid, found.record.is_some()))
                };
                anyhow::Ok((i, answer))
            });
        }
        let mut fresh: HashMap<usize, usize> = HashMap::new();
        while let Some(done) = tasks.join_next().await {
            let (i, answer) = done??;
            if i % 7 == 6 {
                assert_eq!(answer, None, "lookup {i}: no such partner");
                continue;
            }
            let (outcome, found) = answer.unwrap_or_else(|| panic!("lookup {i}: the partner exists"));
            assert_eq!(found, i % 2 == 0, "lookup {i}: R1 is a transfer, not a bill payment");
            match outcome {
                ReqidOutcome::Fresh => *fresh.entry(i % 100).or_default() += 1,
                ReqidOutcome::Replay => {}
                ReqidOutcome::NotRecorded => panic!("lookup {i}: the partner read is the one checked"),
            }
        }
        assert_eq!(fresh.len(), 100, "every reqid was recorded once: {fresh:?}");
        assert!(fresh.values().all(|&n| n == 1), "and only once: {fresh:?}");
        assert!(stores.iter().all(|store| store.lookup_batches.largest() > 1), "the lookups ran in batches");
        drop(stores);
        db.finish().await
    }
}
