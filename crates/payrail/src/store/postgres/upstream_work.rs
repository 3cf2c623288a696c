//! Upstream work on PostgreSQL: poll jobs (following transactions at the
//! upstream) and partner events with their delivery attempts. The SQL both
//! engines run is in [`crate::store::upstream_work::sql`]; what only
//! PostgreSQL runs is here: the claims, which skip rows another instance's
//! claim has locked (`FOR UPDATE SKIP LOCKED`) where SQLite's one writer
//! runs one claim at a time, and an attempt recorded in one statement.

use super::columns::bind_all;
use super::*;
use crate::store::upstream_work::{
    attempt_from_row, event_list, events_query, poll_list_p, sql, ClaimStore, Lease, Leased,
};

/// Leases up to `$4` due jobs to `$1` until `$3`. `SKIP LOCKED` passes over
/// jobs another claim is leasing right now, and a job that claim committed
/// is re-checked (its lease is then live) before it is locked here, so two
/// claims never return the same job.
const CLAIM_POLLS: &str = concat!(
    "WITH due AS (SELECT kind, txn_id FROM upstream_polls \
     WHERE next_poll_at IS NOT NULL AND next_poll_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
     ORDER BY next_poll_at, txn_id LIMIT $4 FOR UPDATE SKIP LOCKED) \
     UPDATE upstream_polls p SET lease_owner = $1, lease_until = $3 FROM due \
     WHERE p.kind = due.kind AND p.txn_id = due.txn_id RETURNING ",
    poll_list_p!()
);

/// Leases up to `$4` due events to `$1` until `$3`, by id. An event waits
/// while an older event of its transaction is pending, leased or not: the
/// check reads the state, never the locks, so an older event that another
/// claim holds still blocks it.
const CLAIM_EVENTS: &str = concat!(
    "WITH due AS (SELECT e.id AS due_id FROM partner_events e \
     WHERE e.state = 'pending' AND e.next_attempt_at <= $2 AND (e.lease_until IS NULL OR e.lease_until <= $2) \
     AND NOT EXISTS (SELECT 1 FROM partner_events o WHERE o.kind = e.kind AND o.txn_id = e.txn_id \
     AND o.id < e.id AND o.state = 'pending') \
     ORDER BY e.id LIMIT $4 FOR UPDATE SKIP LOCKED) \
     UPDATE partner_events e SET lease_owner = $1, lease_until = $3 FROM due WHERE e.id = due.due_id RETURNING ",
    event_list!()
);

/// Settles an attempt of event `$1` if `$2` holds its lease, and records
/// the attempt; the rows inserted say whether it did. An event cancelled
/// while the attempt was in flight stays cancelled unless the attempt
/// delivered it. On a retry (`$5`), later pending events of the transaction
/// are not due before it: they cannot be claimed before it is settled.
/// One statement (data-modifying CTEs) for SQLite's three: one round trip.
const RECORD_ATTEMPT: &str = "WITH settled AS (UPDATE partner_events SET attempts = $3, \
     state = CASE WHEN state = 'cancelled' AND $4::text <> 'delivered' THEN 'cancelled' ELSE $4::text END, \
     next_attempt_at = CASE WHEN state = 'cancelled' AND $4::text <> 'delivered' THEN NULL ELSE $5::bigint END, \
     delivered_at = $6, lease_owner = NULL, lease_until = NULL \
     WHERE id = $1 AND state IN ('pending', 'cancelled') AND lease_owner = $2 RETURNING id, kind, txn_id), \
     held_back AS (UPDATE partner_events l SET next_attempt_at = GREATEST(l.next_attempt_at, $5::bigint) \
     FROM settled s WHERE $5::bigint IS NOT NULL AND l.kind = s.kind AND l.txn_id = s.txn_id \
     AND l.id > s.id AND l.state = 'pending') \
     INSERT INTO delivery_attempts (event_id, attempt, instance, url, at, duration_ms, http_status, error) \
     SELECT id, $3, $7, $8, $9, $10, $11, $12 FROM settled";

impl<T: Leased> ClaimStore<T> for PostgresStore {
    async fn claim(&self, lease: Lease<'_>) -> StoreResult<Vec<T>> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 4] =
            [&lease.owner, &lease.now.unix(), &lease.until.unix(), &i64::from(lease.limit)];
        let rows = query(&client, T::claim_of(CLAIM_POLLS, CLAIM_EVENTS), &params, T::CLAIM_FAILED).await?;
        let mut claimed = decode_all(&rows, |row| T::decode(row), T::READ_FAILED)?;
        T::sort(&mut claimed);
        Ok(claimed)
    }
}

/// [`sql::ASSIGN_UPSTREAM_REF`] and the reference the transaction holds
/// after it, in one round trip: the one stored now, or the one it had
/// (unless committed after the statement began: then no row).
const ASSIGN_AND_READ_UPSTREAM_REF: &str = "WITH stored AS (INSERT INTO upstream_refs (kind, txn_id, ref_tail) \
     VALUES ($1, $2, $3) ON CONFLICT (kind, txn_id) DO NOTHING RETURNING ref_tail) \
     SELECT ref_tail FROM stored UNION ALL SELECT ref_tail FROM upstream_refs WHERE kind = $1 AND txn_id = $2";

#[async_trait]
impl UpstreamWorkStore for PostgresStore {
    async fn finish_poll(&self, job: &PollJob, owner: &str, next: PollNext) -> StoreResult<bool> {
        let client = self.client().await?;
        let (kind, what) = (job.kind.as_str(), "Failed to finish the poll job");
        let next_at = match next {
            PollNext::Done => {
                return Ok(execute(&client, sql::DELETE_POLL, &[&kind, &job.txn_id, &owner], what).await? == 1)
            }
            PollNext::Again(at) => Some(at.unix()),
            PollNext::Held => None,
        };
        let params: [&(dyn ToSql + Sync); 4] = [&next_at, &kind, &job.txn_id, &owner];
        Ok(execute(&client, sql::RESCHEDULE_POLL, &params, what).await? == 1)
    }

    async fn schedule_poll(&self, kind: TxnKind, txn_id: i64, at: Timestamp) -> StoreResult<()> {
        let client = self.client().await?;
        schedule_poll(&client, kind, txn_id, at).await
    }

    async fn held_polls(&self) -> StoreResult<Vec<PollJob>> {
        let client = self.client().await?;
        let rows = query(&client, sql::HELD_POLLS, &[], "Failed to list the held poll jobs").await?;
        decode_all(&rows, PollJob::decode, "Failed to read a held poll job")
    }

    async fn poll_job(&self, kind: TxnKind, txn_id: i64) -> StoreResult<Option<PollJob>> {
        let client = self.client().await?;
        let what = "Failed to read a poll job";
        let row = query_opt(&client, sql::POLL_JOB, &[&kind.as_str(), &txn_id], what).await?;
        Ok(row.map(|row| PollJob::decode(&row)).transpose().context(what)?)
    }

    async fn record_attempt(&self, attempt: DeliveryAttempt, owner: &str, outcome: EventOutcome) -> StoreResult<bool> {
        let client = self.client().await?;
        let (state, next, delivered_at) = match outcome {
            EventOutcome::Delivered => (EventState::Delivered, None, Some(attempt.at.unix())),
            EventOutcome::RetryAt(at) => (EventState::Pending, Some(at.unix()), None),
            EventOutcome::GiveUp => (EventState::Failed, None, None),
        };
        let a = &attempt;
        let params: [&(dyn ToSql + Sync); 12] = [
            &a.event_id,
            &owner,
            &i64::from(a.attempt),
            &state.name(),
            &next,
            &delivered_at,
            &a.instance,
            &a.url,
            &a.at.unix(),
            &a.duration_ms,
            &a.http_status.map(i64::from),
            &a.error,
        ];
        Ok(execute(&client, RECORD_ATTEMPT, &params, "Failed to record the delivery attempt").await? == 1)
    }

    async fn events(&self, filter: &EventFilter) -> StoreResult<Vec<PartnerEvent>> {
        let client = self.client().await?;
        let (sql, values) = events_query(filter);
        let rows = query(&client, &sql, &bind_all(&values), "Failed to list the partner events").await?;
        decode_all(&rows, PartnerEvent::decode, "Failed to read a partner event")
    }

    async fn event_with_attempts(&self, id: i64) -> StoreResult<Option<(PartnerEvent, Vec<DeliveryAttempt>)>> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let row = query_opt(&tx, sql::EVENT_BY_ID, &[&id], "Failed to find the partner event").await?;
        let Some(event) = decode(row, PartnerEvent::decode)? else { return Ok(None) };
        let rows = query(&tx, sql::ATTEMPTS_OF, &[&id], "Failed to read the delivery attempts").await?;
        let attempts = decode_all(&rows, attempt_from_row, "Failed to read a delivery attempt")?;
        tx.commit().await.store_context("Failed to end the event read")?;
        Ok(Some((event, attempts)))
    }

    async fn redeliver_event(&self, id: i64, now: Timestamp) -> StoreResult<Option<PartnerEvent>> {
        let client = self.client().await?;
        let until = now.plus_secs(event::DELIVERY_WINDOW_SECS);
        let params: [&(dyn ToSql + Sync); 3] = [&now.unix(), &until.unix(), &id];
        let row = query_opt(&client, sql::REDELIVER_EVENT, &params, "Failed to redeliver the partner event").await?;
        decode(row, PartnerEvent::decode)
    }

    async fn installation_id(&self) -> StoreResult<String> {
        let client = self.client().await?;
        let what = "Failed to read the installation id";
        let row = query_opt(&client, sql::INSTALLATION_ID, &[], what).await?;
        let row = row.ok_or_else(|| StoreError::Other(anyhow::anyhow!("{what}: the installation row is missing")))?;
        Ok(row.try_get(0).context(what)?)
    }

    async fn upstream_ref_of(&self, kind: TxnKind, txn_id: i64) -> StoreResult<Option<String>> {
        let client = self.client().await?;
        let what = "Failed to read an upstream reference";
        let row = query_opt(&client, sql::UPSTREAM_REF_OF, &[&kind.as_str(), &txn_id], what).await?;
        Ok(row.map(|row| row.try_get(0)).transpose().context(what)?)
    }

    async fn assign_upstream_ref(&self, kind: TxnKind, txn_id: i64, tail: &str) -> StoreResult<String> {
        let client = self.client().await?;
        let what = "Failed to store an upstream reference";
        let params: [&(dyn ToSql + Sync); 3] = [&kind.as_str(), &txn_id, &tail];
        if let Some(row) = query_opt(&client, ASSIGN_AND_READ_UPSTREAM_REF, &params, what).await? {
            return Ok(row.try_get(0).context(what)?);
        }
        // The reference a concurrent transaction stored after this
        // statement's snapshot was taken: read it in a fresh one.
        let row = query_opt(&client, sql::UPSTREAM_REF_OF, &params[..2], what).await?;
        let row = row.ok_or_else(|| StoreError::Other(anyhow::anyhow!("{what}: not stored")))?;
        Ok(row.try_get(0).context(what)?)
    }

    async fn txn_by_upstream_ref(&self, tail: &str) -> StoreResult<Option<(TxnKind, i64)>> {
        let client = self.client().await?;
        let what = "Failed to find a transaction by its upstream reference";
        let Some(row) = query_opt(&client, sql::TXN_BY_UPSTREAM_REF, &[&tail], what).await? else { return Ok(None) };
        let kind: String = row.try_get(0).context(what)?;
        let id: i64 = row.try_get(1).context(what)?;
        Ok(TxnKind::parse(&kind).map(|kind| (kind, id)))
    }
}

/// (Re)starts polling of a transaction at `at`, with no attempts counted
/// ([`sql::SCHEDULE_POLL`]).
pub(super) async fn schedule_poll(
    client: &impl GenericClient,
    kind: TxnKind,
    id: i64,
    at: Timestamp,
) -> StoreResult<()> {
    let params: [&(dyn ToSql + Sync); 4] = [&kind.as_str(), &id, &at.unix(), &Timestamp::now().unix()];
    execute(client, sql::SCHEDULE_POLL, &params, "Failed to schedule the poll job").await?;
    Ok(())
}

/// Removes a decided transaction's poll job (if it has one, held or not):
/// the poller works only on undecided transactions.
pub(super) async fn end_poll(tx: &Transaction<'_>, kind: TxnKind, txn_id: i64) -> StoreResult<()> {
    execute(tx, sql::END_POLL, &[&kind.as_str(), &txn_id], "Failed to end a poll job").await?;
    Ok(())
}

/// Writes the event reporting a change of `txn` to `status`, made at `at`,
/// if the partner has a callback URL ([`sql::INSERT_EVENT`]).
pub(super) async fn insert_event(
    tx: &Transaction<'_>,
    partner: RegistrationId,
    (kind, id): (TxnKind, i64),
    status: &str,
    payload: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let until = at.plus_secs(event::DELIVERY_WINDOW_SECS);
    let params: [&(dyn ToSql + Sync); 7] =
        [&kind.as_str(), &id, &status, &payload, &at.unix(), &until.unix(), &partner.number()];
    execute(tx, sql::INSERT_EVENT, &params, "Failed to write the partner event").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::tests::{
        at, bill, debit, new_partner, no_limit, no_progress, note, partner, route, top_up, transfer, transfers, TestDb,
        P, TRANSFER_COST,
    };
    use super::*;
    use crate::store::postgres::test_db::postgres_tests;

    /// The claim walks the partial index `upstream_polls_due` (due jobs only,
    /// in due order) and stops at the limit; held jobs are not in it. Plan
    /// with 20,000 due and 5,000 held jobs, analysed:
    /// `Limit -> LockRows -> Index Scan using upstream_polls_due on upstream_polls,
    /// Index Cond: ((next_poll_at IS NOT NULL) AND (next_poll_at <= ...))`, then
    /// the update by primary key.
    #[tokio::test]
    async fn the_claim_is_an_index_range_scan() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let client = db.store.client().await?;
        client
            .batch_execute(
                "INSERT INTO upstream_polls (kind, txn_id, attempts, next_poll_at) \
                 SELECT 'dmt', n, 0, CASE WHEN n % 5 = 0 THEN NULL ELSE n END FROM generate_series(1, 25000) n; \
                 ANALYZE upstream_polls;",
            )
            .await?;
        let params: [&(dyn ToSql + Sync); 4] = [&"o", &30_000_i64, &30_060_i64, &32_i64];
        let rows = client.query(&format!("EXPLAIN {CLAIM_POLLS}"), &params).await?;
        let plan: Vec<String> = rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
        let plan = plan.join("\n");
        assert!(plan.contains("Index Scan using upstream_polls_due on upstream_polls"), "{plan}");
        assert!(plan.contains("Index Cond: ((next_poll_at IS NOT NULL) AND (next_poll_at <= "), "{plan}");
        assert!(!plan.contains("Seq Scan") && !plan.contains("Sort"), "{plan}");
        drop(client);
        db.finish().await
    }

    // --- Upstream polling and partner callbacks (issue 4) -------------------

    /// No event ids.
    const NONE: Vec<i64> = Vec::new();

    /// When the changes of these tests are made (see [`note`]).
    const CHANGED: i64 = 1_700_000_000;

    fn poll(kind: TxnKind, txn_id: i64, attempts: u32, due: i64) -> PollJob {
        PollJob { kind, txn_id, attempts, due_at: at(due) }
    }

    async fn claim(store: &PostgresStore, owner: &str, now: i64) -> anyhow::Result<Vec<(TxnKind, i64)>> {
        let jobs = store.claim_polls(Lease { owner, now: at(now), until: at(now + 60), limit: 10 }).await?;
        Ok(jobs.iter().map(|job| (job.kind, job.txn_id)).collect())
    }

    async fn claim_event_ids(store: &PostgresStore, owner: &str, now: i64) -> anyhow::Result<Vec<i64>> {
        let events = store.claim_events(Lease { owner, now: at(now), until: at(now + 60), limit: 10 }).await?;
        Ok(events.iter().map(|event| event.id).collect())
    }

    fn attempt(event_id: i64, attempt: u32, when: i64, http_status: Option<u16>) -> DeliveryAttempt {
        DeliveryAttempt {
            event_id,
            attempt,
            instance: "test-1".into(),
            url: "https://partner.example/hook".into(),
            at: at(when),
            duration_ms: 12,
            http_status,
            error: http_status.filter(|s| *s >= 300).map(|s| format!("HTTP {s}")),
        }
    }

    /// A partner with a callback URL and `count` imported transfers; their acknos.
    async fn transfers_with_callback(store: &PostgresStore, count: usize) -> anyhow::Result<Vec<i64>> {
        store.insert_partner(new_partner(Some(P))).await?;
        assert!(store.set_callback_url(partner(), Some("https://partner.example/hook".into()), at(1)).await?);
        Ok(store.insert_dmt_batch(transfers(P, "E", count)?, note("import"), no_progress()).await?)
    }

    /// How many workers the concurrency tests run, each on a connection of its own.
    const WORKERS: usize = 8;

    /// A second store on the test database with a connection open for every
    /// worker, so that their first claims start together.
    async fn shared_store(db: &TestDb) -> anyhow::Result<Arc<PostgresStore>> {
        let shared = PostgresStore::connect_with(db.config.clone()).await?;
        let mut clients = Vec::with_capacity(WORKERS);
        for _ in 0..WORKERS {
            clients.push(shared.pool.get().await?);
        }
        drop(clients);
        Ok(Arc::new(shared))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claimers_take_every_poll_job_exactly_once() -> anyhow::Result<()> {
        const JOBS: i64 = 300;
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        for id in 1..=JOBS {
            let kind = if id % 2 == 0 { TxnKind::Dmt } else { TxnKind::Bbps };
            db.store.schedule_poll(kind, id, at(id % 7)).await?;
        }
        let shared = shared_store(&db).await?;
        let start = Arc::new(tokio::sync::Barrier::new(WORKERS));
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..WORKERS {
            let (store, start) = (Arc::clone(&shared), Arc::clone(&start));
            tasks.spawn(async move {
                let owner = format!("w{worker}");
                let mut mine = Vec::new();
                start.wait().await;
                loop {
                    let jobs =
                        store.claim_polls(Lease { owner: &owner, now: at(100), until: at(1_000), limit: 7 }).await?;
                    if jobs.is_empty() {
                        return anyhow::Ok(mine);
                    }
                    mine.extend(jobs.into_iter().map(|job| (job.kind, job.txn_id)));
                }
            });
        }
        let mut claimed = Vec::new();
        let mut claimers = 0;
        while let Some(result) = tasks.join_next().await {
            let mine = result??;
            claimers += usize::from(!mine.is_empty());
            claimed.extend(mine);
        }
        shared.pool.close();
        assert_eq!(claimed.len(), JOBS as usize);
        assert_eq!(claimed.iter().collect::<HashSet<_>>().len(), JOBS as usize);
        assert!(claimers > 1, "only {claimers} claimer got work");
        assert_eq!(claim(&db.store, "late", 999).await?, vec![]);
        db.finish().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claimers_deliver_every_event_once_and_in_order() -> anyhow::Result<()> {
        const TRANSFERS: usize = 40;
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let acknos = transfers_with_callback(&db.store, TRANSFERS).await?;
        for ackno in &acknos {
            db.store.change_dmt(*ackno, DmtChange::SentToBank, note("api")).await?;
            db.store.change_dmt(*ackno, DmtChange::Success { utr: None }, note("api")).await?;
        }
        let shared = shared_store(&db).await?;
        // A clock of happenings across workers: when each event was claimed
        // (after its claim returned) and settled (before the recording began).
        let clock = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..WORKERS {
            let (store, clock) = (Arc::clone(&shared), Arc::clone(&clock));
            tasks.spawn(async move {
                let owner = format!("w{worker}");
                let tick = || clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut mine = Vec::new();
                loop {
                    let events = store
                        .claim_events(Lease { owner: &owner, now: at(CHANGED), until: at(CHANGED + 600), limit: 5 })
                        .await?;
                    let claimed_at = tick();
                    if events.is_empty() {
                        let pending = EventFilter { state: Some(EventState::Pending), ..EventFilter::default() };
                        if store.events(&pending).await?.is_empty() {
                            return anyhow::Ok(mine);
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    for event in events {
                        let settled_at = tick();
                        let recorded = attempt(event.id, 1, CHANGED, Some(200));
                        anyhow::ensure!(store.record_attempt(recorded, &owner, EventOutcome::Delivered).await?);
                        mine.push((event.txn_id, event.id, claimed_at, settled_at));
                    }
                }
            });
        }
        let mut claimed = Vec::new();
        while let Some(result) = tasks.join_next().await {
            claimed.extend(result??);
        }
        shared.pool.close();
        assert_eq!(claimed.len(), 2 * TRANSFERS);
        assert_eq!(claimed.iter().map(|c| c.1).collect::<HashSet<_>>().len(), 2 * TRANSFERS);
        claimed.sort_by_key(|c| (c.0, c.1));
        for pair in claimed.chunks(2) {
            let [(_, _, _, older_settled), (_, _, newer_claimed, _)] = pair else { anyhow::bail!("odd events") };
            assert!(older_settled < newer_claimed, "an event was claimed before its predecessor was settled");
        }
        let delivered = EventFilter { state: Some(EventState::Delivered), limit: 1_000, ..EventFilter::default() };
        assert_eq!(db.store.events(&delivered).await?.len(), 2 * TRANSFERS);
        db.finish().await
    }

    postgres_tests!(
        a_poll_job_is_leased_to_one_claimer_until_the_lease_expires,
        finishing_a_poll_reschedules_removes_or_holds_the_job,
        a_transactions_events_are_claimed_in_order,
        only_the_lease_holder_records_an_attempt,
        events_are_listed_newest_first_filtered_and_paged,
        a_redelivered_event_is_pending_again_with_a_fresh_window
    );
    postgres_tests!(partner: a_debit_with_a_poll_time_writes_its_job_in_the_same_transaction, a_change_writes_an_event_only_for_a_partner_with_a_callback_url);

    /// The bodies of the tests above, each run on a store of its own.
    mod cases {
        use super::*;

        pub(super) async fn a_debit_with_a_poll_time_writes_its_job_in_the_same_transaction(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            top_up(store, 4 * TRANSFER_COST, 100).await?;
            let polled_p1 = |poll_at| -> anyhow::Result<DmtDebit> {
                let (transfer, route) = (transfer(P, 0, "P1")?, route(Bank::Bank1)?);
                Ok(DmtDebit { transfer, route, limit: no_limit(), note: note("api"), poll_at: Some(at(poll_at)) })
            };
            let polled = store.create_dmt_debited(polled_p1(500)?).await?.record.ackno;
            let unpolled = debit(store, "P2").await?.record.ackno;
            let bill = store.create_bill_debited(bill(P, 0, "B1")?, note("api"), Some(at(400))).await?.record.txnid;
            // A refused debit leaves no job behind.
            let dup = store.create_dmt_debited(polled_p1(1)?).await;
            assert!(matches!(dup, Err(DebitError::Duplicate(_))));

            assert_eq!(claim(store, "w1", 399).await?, vec![]);
            let jobs = store.claim_polls(Lease { owner: "w1", now: at(600), until: at(700), limit: 10 }).await?;
            assert_eq!(jobs, vec![poll(TxnKind::Bbps, bill, 0, 400), poll(TxnKind::Dmt, polled, 0, 500)]);
            assert!(!jobs.iter().any(|job| job.txn_id == unpolled && job.kind == TxnKind::Dmt));
            Ok(())
        }

        pub(super) async fn a_poll_job_is_leased_to_one_claimer_until_the_lease_expires(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            for id in 1..=3 {
                store.schedule_poll(TxnKind::Dmt, id, at(100 + id)).await?;
            }
            store.schedule_poll(TxnKind::Bbps, 9, at(5_000)).await?;
            let first = store.claim_polls(Lease { owner: "a", now: at(1_000), until: at(1_060), limit: 2 }).await?;
            assert_eq!(first, vec![poll(TxnKind::Dmt, 1, 0, 101), poll(TxnKind::Dmt, 2, 0, 102)]);
            assert_eq!(claim(store, "b", 1_001).await?, vec![(TxnKind::Dmt, 3)]);
            assert_eq!(claim(store, "c", 1_059).await?, vec![]);
            // The lease of "a" has run out: its jobs go to whoever claims next,
            // and "a" can no longer finish them.
            assert_eq!(claim(store, "c", 1_060).await?, vec![(TxnKind::Dmt, 1), (TxnKind::Dmt, 2)]);
            assert!(!store.finish_poll(&first[0], "a", PollNext::Done).await?);
            assert!(!store.finish_poll(&first[1], "a", PollNext::Again(at(2_000))).await?);
            assert!(!store.finish_poll(&poll(TxnKind::Dmt, 42, 0, 0), "c", PollNext::Held).await?);
            assert!(store.finish_poll(&first[0], "c", PollNext::Done).await?);
            assert!(!store.finish_poll(&first[0], "c", PollNext::Done).await?);
            Ok(())
        }

        pub(super) async fn finishing_a_poll_reschedules_removes_or_holds_the_job(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            for id in 1..=3 {
                store.schedule_poll(TxnKind::Dmt, id, at(100)).await?;
            }
            store.schedule_poll(TxnKind::Bbps, 3, at(100)).await?;
            let jobs = store.claim_polls(Lease { owner: "w", now: at(100), until: at(160), limit: 10 }).await?;
            assert_eq!(jobs.len(), 4);
            let job = |kind: TxnKind, id: i64| jobs.iter().find(|j| j.kind == kind && j.txn_id == id).cloned();
            let job = |kind, id| job(kind, id).ok_or_else(|| anyhow::anyhow!("job {id} not claimed"));
            assert!(store.finish_poll(&job(TxnKind::Dmt, 1)?, "w", PollNext::Again(at(300))).await?);
            assert!(store.finish_poll(&job(TxnKind::Dmt, 2)?, "w", PollNext::Done).await?);
            assert!(store.finish_poll(&job(TxnKind::Dmt, 3)?, "w", PollNext::Held).await?);
            assert!(store.finish_poll(&job(TxnKind::Bbps, 3)?, "w", PollNext::Held).await?);

            // Again: due at its new time (not before), with the attempt counted, lease released.
            assert_eq!(claim(store, "x", 299).await?, vec![]);
            let again = store.claim_polls(Lease { owner: "x", now: at(300), until: at(360), limit: 10 }).await?;
            assert_eq!(again, vec![poll(TxnKind::Dmt, 1, 1, 300)]);
            assert!(store.finish_poll(&again[0], "x", PollNext::Done).await?);
            // Held: never due again, listed by kind then transaction.
            assert_eq!(claim(store, "x", i64::MAX / 2).await?, vec![]);
            let held = store.held_polls().await?;
            assert_eq!(held, vec![poll(TxnKind::Bbps, 3, 1, 0), poll(TxnKind::Dmt, 3, 1, 0)]);
            // An operator resumes a held job: due again, attempts reset.
            store.schedule_poll(TxnKind::Dmt, 3, at(400)).await?;
            assert_eq!(store.held_polls().await?, vec![poll(TxnKind::Bbps, 3, 1, 0)]);
            assert_eq!(
                store.claim_polls(Lease { owner: "y", now: at(400), until: at(460), limit: 10 }).await?,
                vec![poll(TxnKind::Dmt, 3, 0, 400)]
            );
            // Rescheduling a leased job releases its lease: the old holder is refused.
            store.schedule_poll(TxnKind::Dmt, 3, at(500)).await?;
            assert!(!store.finish_poll(&poll(TxnKind::Dmt, 3, 0, 400), "y", PollNext::Done).await?);
            Ok(())
        }

        pub(super) async fn a_change_writes_an_event_only_for_a_partner_with_a_callback_url(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            let stranger = RegistrationId::new(999);
            assert!(!store.set_callback_url(stranger, Some("https://x.example".into()), at(1)).await?);
            assert!(!store.set_callback_url(stranger, None, at(1)).await?);
            assert_eq!(store.callback_url(partner()).await?, None);
            let ackno = store.insert_dmt_batch(transfers(P, "T", 1)?, note("import"), no_progress()).await?[0];
            store.change_dmt(ackno, DmtChange::SentToBank, note("admin")).await?;
            assert_eq!(store.events(&EventFilter::default()).await?, vec![]);

            assert!(store.set_callback_url(partner(), Some("https://old.example".into()), at(1)).await?);
            assert!(store.set_callback_url(partner(), Some("https://partner.example/hook".into()), at(2)).await?);
            assert_eq!(store.callback_url(partner()).await?.as_deref(), Some("https://partner.example/hook"));
            let paid = store.change_dmt(ackno, DmtChange::Success { utr: None }, note("admin")).await?;
            let late = ChangeNote { at: at(CHANGED + 30), ..note("upstream") };
            let with_utr = store.change_dmt(ackno, DmtChange::Utr { utr: "UTR1".into() }, late).await?;
            let events = store.events(&EventFilter::default()).await?;
            assert_eq!(events.len(), 2);
            let (utr_event, success_event) = (&events[0], &events[1]);
            assert!(utr_event.id > success_event.id);
            assert_eq!(success_event.payload, event::dmt_payload(&paid, at(CHANGED)));
            assert_eq!(utr_event.payload, event::dmt_payload(&with_utr, at(CHANGED + 30)));
            assert!(utr_event.payload.contains("\"utr\":\"UTR1\""));
            let expected = PartnerEvent {
                id: success_event.id,
                partner: partner(),
                kind: TxnKind::Dmt,
                txn_id: ackno,
                status: "success".into(),
                payload: success_event.payload.clone(),
                created_at: at(CHANGED),
                state: EventState::Pending,
                attempts: 0,
                next_attempt_at: Some(at(CHANGED)),
                deliver_until: at(CHANGED + event::DELIVERY_WINDOW_SECS),
                delivered_at: None,
                redelivered_at: None,
            };
            assert_eq!(success_event, &expected);
            assert_eq!(utr_event.status, "success");
            let history = store.dmt_with_history(ackno).await?.map(|(_, h)| h).unwrap_or_default();
            let last = history.last().map(|h| (h.from_status.as_deref(), h.to_status.as_str()));
            assert_eq!(last, Some((Some("success"), "success")));

            // A refused change writes no event; bill payments write theirs.
            let refused = store.change_dmt(ackno, DmtChange::Utr { utr: "UTR2".into() }, note("admin")).await;
            assert!(matches!(refused, Err(ChangeError::Forbidden(_))));
            let txnid = store.insert_bill_batch(vec![bill(P, 0, "B1")?], note("import"), no_progress()).await?[0];
            let success = BillChange::Success { operator_ref: Some("OP1".into()) };
            let paid_bill = store.change_bill(txnid, success, note("admin")).await?;
            let of_bill = EventFilter { txn: Some((TxnKind::Bbps, txnid)), ..EventFilter::default() };
            let bill_events = store.events(&of_bill).await?;
            assert_eq!(bill_events.len(), 1);
            assert_eq!(bill_events[0].payload, event::bill_payload(&paid_bill, at(CHANGED)));
            assert_eq!(bill_events[0].status, "success");

            // Without a callback URL again, changes write nothing.
            assert!(store.set_callback_url(partner(), None, at(3)).await?);
            assert_eq!(store.callback_url(partner()).await?, None);
            store.change_bill(txnid, BillChange::Fail, note("admin")).await?;
            assert_eq!(store.events(&EventFilter::default()).await?.len(), 3);
            Ok(())
        }

        pub(super) async fn a_transactions_events_are_claimed_in_order(store: &PostgresStore) -> anyhow::Result<()> {
            let acknos = transfers_with_callback(store, 2).await?;
            let (first, second) = (acknos[0], acknos[1]);
            store.change_dmt(first, DmtChange::SentToBank, note("api")).await?;
            store.change_dmt(second, DmtChange::SentToBank, note("api")).await?;
            store.change_dmt(first, DmtChange::Success { utr: Some("U1".into()) }, note("api")).await?;
            let ids: Vec<i64> = store.events(&EventFilter::default()).await?.iter().rev().map(|e| e.id).collect();
            let (a1, b1, a2) = (ids[0], ids[1], ids[2]);

            assert_eq!(claim_event_ids(store, "w", CHANGED - 1).await?, NONE);
            assert_eq!(claim_event_ids(store, "w", CHANGED).await?, vec![a1, b1]);
            // a1 is leased (still pending): a2 waits for it, whoever claims.
            assert_eq!(claim_event_ids(store, "v", CHANGED + 1).await?, NONE);
            // a1 retried: still pending, so a2 still waits, also once a1's lease is gone.
            assert!(
                store
                    .record_attempt(attempt(a1, 1, CHANGED, Some(500)), "w", EventOutcome::RetryAt(at(CHANGED + 10)))
                    .await?
            );
            assert_eq!(claim_event_ids(store, "v", CHANGED + 5).await?, NONE);
            assert_eq!(claim_event_ids(store, "v", CHANGED + 10).await?, vec![a1]);
            assert!(store.record_attempt(attempt(a1, 2, CHANGED + 10, Some(200)), "v", EventOutcome::Delivered).await?);
            assert_eq!(claim_event_ids(store, "v", CHANGED + 11).await?, vec![a2]);
            Ok(())
        }

        pub(super) async fn only_the_lease_holder_records_an_attempt(store: &PostgresStore) -> anyhow::Result<()> {
            let acknos = transfers_with_callback(store, 3).await?;
            for ackno in &acknos {
                store.change_dmt(*ackno, DmtChange::Fail, note("api")).await?;
            }
            let ids = claim_event_ids(store, "w", CHANGED).await?;
            let (delivered, retried, failed) = (ids[0], ids[1], ids[2]);

            let refused = store.record_attempt(attempt(delivered, 1, CHANGED, Some(200)), "x", EventOutcome::Delivered);
            assert!(!refused.await?);
            assert!(
                store
                    .record_attempt(attempt(delivered, 1, CHANGED + 1, Some(204)), "w", EventOutcome::Delivered)
                    .await?
            );
            // Settled: the lease is gone, so a second recording is refused too.
            let again =
                store.record_attempt(attempt(delivered, 2, CHANGED + 2, Some(200)), "w", EventOutcome::Delivered);
            assert!(!again.await?);
            let (event, attempts) =
                store.event_with_attempts(delivered).await?.ok_or_else(|| anyhow::anyhow!("missing event"))?;
            assert_eq!(event.state, EventState::Delivered);
            assert_eq!((event.attempts, event.next_attempt_at, event.delivered_at), (1, None, Some(at(CHANGED + 1))));
            assert_eq!(attempts, vec![attempt(delivered, 1, CHANGED + 1, Some(204))]);

            let retry = EventOutcome::RetryAt(at(CHANGED + 30));
            assert!(store.record_attempt(attempt(retried, 1, CHANGED, None), "w", retry).await?);
            let (event, _) =
                store.event_with_attempts(retried).await?.ok_or_else(|| anyhow::anyhow!("missing event"))?;
            assert_eq!((event.state, event.attempts), (EventState::Pending, 1));
            assert_eq!((event.next_attempt_at, event.delivered_at), (Some(at(CHANGED + 30)), None));
            assert_eq!(claim_event_ids(store, "w", CHANGED + 29).await?, NONE);
            assert_eq!(claim_event_ids(store, "w", CHANGED + 30).await?, vec![retried]);
            assert!(
                store.record_attempt(attempt(retried, 2, CHANGED + 30, Some(503)), "w", EventOutcome::GiveUp).await?
            );
            assert!(store.record_attempt(attempt(failed, 1, CHANGED, Some(404)), "w", EventOutcome::GiveUp).await?);
            let (event, attempts) =
                store.event_with_attempts(retried).await?.ok_or_else(|| anyhow::anyhow!("missing event"))?;
            assert_eq!((event.state, event.attempts, event.next_attempt_at), (EventState::Failed, 2, None));
            assert_eq!(
                attempts.iter().map(|a| (a.attempt, a.http_status)).collect::<Vec<_>>(),
                [(1, None), (2, Some(503))]
            );
            assert_eq!(attempts[1].error.as_deref(), Some("HTTP 503"));
            assert_eq!(claim_event_ids(store, "w", CHANGED + 100_000).await?, NONE);
            assert_eq!(store.event_with_attempts(999_999).await?, None);
            Ok(())
        }

        pub(super) async fn events_are_listed_newest_first_filtered_and_paged(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            let acknos = transfers_with_callback(store, 3).await?;
            store.insert_partner(new_partner(Some(777))).await?;
            store.set_callback_url(RegistrationId::new(777), Some("https://other.example".into()), at(1)).await?;
            let theirs = store.insert_dmt_batch(vec![transfer(777, 0, "O1")?], note("import"), no_progress()).await?[0];
            for ackno in acknos.iter().chain([&theirs]) {
                store.change_dmt(*ackno, DmtChange::SentToBank, note("api")).await?;
                store.change_dmt(*ackno, DmtChange::Fail, note("api")).await?;
            }
            let all = store.events(&EventFilter::default()).await?;
            assert_eq!(all.len(), 8);
            assert!(all.windows(2).all(|w| w[0].id > w[1].id));
            let ids = |events: Vec<PartnerEvent>| events.iter().map(|e| e.id).collect::<Vec<_>>();

            let mine = EventFilter { partner: Some(partner()), ..EventFilter::default() };
            assert_eq!(ids(store.events(&mine).await?), ids(all[2..].to_vec()));
            let of_txn = EventFilter { txn: Some((TxnKind::Dmt, acknos[1])), ..EventFilter::default() };
            let listed = store.events(&of_txn).await?;
            assert_eq!(listed.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(), ["failed", "sent_to_bank"]);
            assert_eq!(store.events(&EventFilter { txn: Some((TxnKind::Bbps, acknos[1])), ..of_txn }).await?, vec![]);

            let claimed = claim_event_ids(store, "w", CHANGED).await?;
            assert_eq!(claimed.len(), 4);
            assert!(
                store.record_attempt(attempt(claimed[0], 1, CHANGED, Some(200)), "w", EventOutcome::Delivered).await?
            );
            let delivered = EventFilter { state: Some(EventState::Delivered), ..EventFilter::default() };
            assert_eq!(ids(store.events(&delivered).await?), vec![claimed[0]]);
            let pending =
                EventFilter { state: Some(EventState::Pending), partner: Some(partner()), ..EventFilter::default() };
            assert_eq!(store.events(&pending).await?.len(), 5);

            // Paging: pages of 3 below the last id seen cover everything once.
            let mut seen = Vec::new();
            let mut page = EventFilter { limit: 3, ..EventFilter::default() };
            loop {
                let events = store.events(&page).await?;
                assert!(events.len() <= 3);
                let Some(last) = events.last() else { break };
                page.before_id = Some(last.id);
                seen.extend(ids(events));
            }
            assert_eq!(seen, ids(all));
            Ok(())
        }

        pub(super) async fn a_redelivered_event_is_pending_again_with_a_fresh_window(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            let acknos = transfers_with_callback(store, 2).await?;
            store.change_dmt(acknos[0], DmtChange::Fail, note("api")).await?;
            store.change_dmt(acknos[1], DmtChange::Fail, note("api")).await?;
            let ids = claim_event_ids(store, "w", CHANGED).await?;
            assert!(store.record_attempt(attempt(ids[0], 1, CHANGED, Some(200)), "w", EventOutcome::Delivered).await?);
            assert!(store.record_attempt(attempt(ids[1], 1, CHANGED, Some(500)), "w", EventOutcome::GiveUp).await?);

            let now = CHANGED + 90_000;
            for id in &ids {
                let event =
                    store.redeliver_event(*id, at(now)).await?.ok_or_else(|| anyhow::anyhow!("missing event"))?;
                assert_eq!((event.state, event.attempts), (EventState::Pending, 1));
                assert_eq!((event.next_attempt_at, event.delivered_at), (Some(at(now)), None));
                assert_eq!(event.deliver_until, at(now + event::DELIVERY_WINDOW_SECS));
                assert_eq!(event.created_at, at(CHANGED));
            }
            assert_eq!(store.redeliver_event(999_999, at(now)).await?, None);
            // A redelivery keeps a live lease: nobody else claims the event, and
            // the holder's attempt in flight is recorded.
            assert_eq!(claim_event_ids(store, "v", now).await?, ids);
            store.redeliver_event(ids[0], at(now + 1)).await?;
            assert_eq!(claim_event_ids(store, "x", now + 1).await?, Vec::<i64>::new());
            assert!(store.record_attempt(attempt(ids[0], 2, now, Some(200)), "v", EventOutcome::Delivered).await?);
            let attempts = store.event_with_attempts(ids[0]).await?.map(|(_, a)| a.len());
            assert_eq!(attempts, Some(2));
            Ok(())
        }
    }
}
