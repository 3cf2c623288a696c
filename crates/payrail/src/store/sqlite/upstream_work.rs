//! Upstream work on SQLite: poll jobs (following transactions at the
//! upstream) and partner events with their delivery attempts. The SQL both
//! engines run is in [`crate::store::upstream_work::sql`]; what only SQLite
//! runs is here. Every write goes through the one writer connection, so a
//! claim needs no row locks: two claims never run at the same time.

use super::*;
use crate::store::upstream_work::{
    attempt_from_row, attempt_list, event_list, events_query, poll_list, sql, ClaimStore, Lease, Leased,
};

/// Leases due, free poll jobs: `?1` owner, `?2` lease end, `?3` now, `?4` limit.
/// The inner select walks the partial index `upstream_polls_due` in its own
/// order from the oldest due job and stops after `?4` free ones: held jobs
/// are not in the index, and no sort is needed. `EXPLAIN QUERY PLAN`
/// (kept by the test `the_claim_is_an_index_range_scan`):
/// `SEARCH upstream_polls USING INDEX upstream_polls_due (next_poll_at>? AND next_poll_at<?)`.
/// (PostgreSQL's claim also skips the rows another claim has locked.)
const CLAIM_POLLS: &str = concat!(
    "UPDATE upstream_polls SET lease_owner = ?1, lease_until = ?2 \
     WHERE (kind, txn_id) IN (SELECT kind, txn_id FROM upstream_polls \
     WHERE next_poll_at IS NOT NULL AND next_poll_at <= ?3 AND (lease_until IS NULL OR lease_until <= ?3) \
     ORDER BY next_poll_at, txn_id, kind LIMIT ?4) RETURNING ",
    poll_list!()
);

/// Leases due, free pending events that no older pending event of their
/// transaction precedes: `?1` owner, `?2` lease end, `?3` now, `?4` limit.
/// (PostgreSQL's claim also skips the rows another claim has locked.)
const CLAIM_EVENTS: &str = concat!(
    "UPDATE partner_events SET lease_owner = ?1, lease_until = ?2 WHERE id IN (SELECT e.id FROM partner_events e \
     WHERE e.state = 'pending' AND e.next_attempt_at <= ?3 AND (e.lease_until IS NULL OR e.lease_until <= ?3) \
     AND NOT EXISTS (SELECT 1 FROM partner_events o WHERE o.kind = e.kind AND o.txn_id = e.txn_id \
     AND o.id < e.id AND o.state = 'pending') ORDER BY e.id LIMIT ?4) RETURNING ",
    event_list!()
);

// Recording an attempt is three statements here, run back to back on the
// writer; PostgreSQL makes them one (data-modifying CTEs, which SQLite lacks)
// to spare two round trips.

/// Settles an attempt of event `?1` if `?2` holds its lease: attempts `?3`,
/// state `?4`, next attempt `?5`, delivered at `?6`. An event cancelled while
/// the attempt was in flight stays cancelled unless the attempt delivered it.
const SETTLE_ATTEMPT: &str = "UPDATE partner_events SET attempts = ?3, \
     state = CASE WHEN state = 'cancelled' AND ?4 <> 'delivered' THEN 'cancelled' ELSE ?4 END, \
     next_attempt_at = CASE WHEN state = 'cancelled' AND ?4 <> 'delivered' THEN NULL ELSE ?5 END, \
     delivered_at = ?6, lease_owner = NULL, lease_until = NULL \
     WHERE id = ?1 AND lease_owner = ?2 AND state IN ('pending', 'cancelled')";

/// Later pending events of event `?1`'s transaction wait for its retry at
/// `?2`: they are not claimed before it is settled, so they are not due before.
const HOLD_BACK_LATER_EVENTS: &str = "UPDATE partner_events SET next_attempt_at = MAX(next_attempt_at, ?2) \
     WHERE (kind, txn_id) = (SELECT kind, txn_id FROM partner_events WHERE id = ?1) \
     AND id > ?1 AND state = 'pending'";

/// Stores a delivery attempt, its columns in [`crate::store::upstream_work::attempt_columns`] order.
const INSERT_ATTEMPT: &str =
    concat!("INSERT INTO delivery_attempts (", attempt_list!(), ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");

impl<T: Leased> ClaimStore<T> for SqliteStore {
    /// The claim runs in its own write transaction.
    async fn claim(&self, lease: Lease<'_>) -> StoreResult<Vec<T>> {
        let Lease { owner, now, until, limit } = lease;
        let owner = owner.to_owned();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let params = params![owner, until.unix(), now.unix(), limit];
            let claim = T::claim_of(CLAIM_POLLS, CLAIM_EVENTS);
            let mut claimed = all_rows(&tx, claim, params, |row| T::decode(row)).map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            T::sort(&mut claimed);
            Ok(claimed)
        })
        .await
    }
}

#[async_trait]
impl UpstreamWorkStore for SqliteStore {
    async fn finish_poll(&self, job: &PollJob, owner: &str, next: PollNext) -> StoreResult<bool> {
        let (kind, txn_id, owner) = (job.kind.as_str(), job.txn_id, owner.to_owned());
        self.write(move |conn| {
            let changed = match next {
                PollNext::Again(at) => reschedule_poll(conn, Some(at.unix()), (kind, txn_id, &owner)),
                PollNext::Held => reschedule_poll(conn, None, (kind, txn_id, &owner)),
                PollNext::Done => {
                    conn.prepare_cached(sql::DELETE_POLL).and_then(|mut s| s.execute(params![kind, txn_id, owner]))
                }
            };
            changed.map(|n| n == 1).map_err(store_error)
        })
        .await
    }

    async fn schedule_poll(&self, kind: TxnKind, txn_id: i64, at: Timestamp) -> StoreResult<()> {
        self.write(move |conn| upsert_poll(conn, kind, txn_id, at).map_err(store_error)).await
    }

    async fn held_polls(&self) -> StoreResult<Vec<PollJob>> {
        self.read(|conn| all_rows(conn, sql::HELD_POLLS, [], |row| PollJob::decode(row)))
    }

    async fn poll_job(&self, kind: TxnKind, txn_id: i64) -> StoreResult<Option<PollJob>> {
        self.read(|conn| optional_row(conn, sql::POLL_JOB, params![kind.as_str(), txn_id], |row| PollJob::decode(row)))
    }

    async fn record_attempt(&self, attempt: DeliveryAttempt, owner: &str, outcome: EventOutcome) -> StoreResult<bool> {
        let owner = owner.to_owned();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let (state, next, delivered) = match outcome {
                EventOutcome::Delivered => (EventState::Delivered, None, Some(attempt.at.unix())),
                EventOutcome::RetryAt(at) => (EventState::Pending, Some(at.unix()), None),
                EventOutcome::GiveUp => (EventState::Failed, None, None),
            };
            let changed = tx
                .prepare_cached(SETTLE_ATTEMPT)
                .and_then(|mut s| {
                    s.execute(params![attempt.event_id, owner, attempt.attempt, state.name(), next, delivered])
                })
                .map_err(store_error)?;
            if changed == 0 {
                return Ok(false);
            }
            insert_attempt(&tx, &attempt).map_err(store_error)?;
            if let Some(next) = next {
                tx.prepare_cached(HOLD_BACK_LATER_EVENTS)
                    .and_then(|mut s| s.execute(params![attempt.event_id, next]))
                    .map_err(store_error)?;
            }
            tx.commit().map_err(store_error)?;
            Ok(true)
        })
        .await
    }

    async fn events(&self, filter: &EventFilter) -> StoreResult<Vec<PartnerEvent>> {
        let (sql, values) = events_query(filter);
        self.read(|conn| all_rows(conn, &sql, rusqlite::params_from_iter(values), |row| PartnerEvent::decode(row)))
    }

    async fn event_with_attempts(&self, id: i64) -> StoreResult<Option<(PartnerEvent, Vec<DeliveryAttempt>)>> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let event =
                tx.prepare_cached(sql::EVENT_BY_ID)?.query_row([id], |row| PartnerEvent::decode(row)).optional()?;
            let Some(event) = event else { return Ok(None) };
            let attempts = all_rows(&tx, sql::ATTEMPTS_OF, [id], |row| attempt_from_row(row))?;
            Ok(Some((event, attempts)))
        })
    }

    async fn redeliver_event(&self, id: i64, now: Timestamp) -> StoreResult<Option<PartnerEvent>> {
        self.write(move |conn| {
            conn.prepare_cached(sql::REDELIVER_EVENT)
                .and_then(|mut s| {
                    let until = now.plus_secs(DELIVERY_WINDOW_SECS);
                    s.query_row(params![now.unix(), until.unix(), id], |row| PartnerEvent::decode(row)).optional()
                })
                .map_err(store_error)
        })
        .await
    }

    async fn installation_id(&self) -> StoreResult<String> {
        self.read(|conn| conn.prepare_cached(sql::INSTALLATION_ID)?.query_row([], |row| row.get(0)))
    }

    async fn upstream_ref_of(&self, kind: TxnKind, txn_id: i64) -> StoreResult<Option<String>> {
        self.read(move |conn| optional_row(conn, sql::UPSTREAM_REF_OF, params![kind.as_str(), txn_id], |r| r.get(0)))
    }

    async fn assign_upstream_ref(&self, kind: TxnKind, txn_id: i64, tail: &str) -> StoreResult<String> {
        let tail = tail.to_owned();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            tx.prepare_cached(sql::ASSIGN_UPSTREAM_REF)
                .and_then(|mut s| s.execute(params![kind.as_str(), txn_id, tail]))
                .map_err(store_error)?;
            let stored: String = tx
                .prepare_cached(sql::UPSTREAM_REF_OF)
                .and_then(|mut s| s.query_row(params![kind.as_str(), txn_id], |r| r.get(0)))
                .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(stored)
        })
        .await
    }

    async fn txn_by_upstream_ref(&self, tail: &str) -> StoreResult<Option<(TxnKind, i64)>> {
        let tail = tail.to_owned();
        let found: Option<(String, i64)> = self.read(move |conn| {
            optional_row(conn, sql::TXN_BY_UPSTREAM_REF, params![tail], |r| Ok((r.get(0)?, r.get(1)?)))
        })?;
        Ok(found.and_then(|(kind, id)| TxnKind::parse(&kind).map(|kind| (kind, id))))
    }
}

/// Removes a decided transaction's poll job (if it has one, held or not):
/// the poller works only on undecided transactions.
pub(super) fn end_poll(conn: &Connection, kind: TxnKind, txn_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(sql::END_POLL)?.execute(params![kind.as_str(), txn_id])?;
    Ok(())
}

/// (Re)starts polling of a transaction at `at`, with no attempts counted
/// ([`sql::SCHEDULE_POLL`]).
pub(super) fn upsert_poll(conn: &Connection, kind: TxnKind, txn_id: i64, at: Timestamp) -> rusqlite::Result<()> {
    conn.prepare_cached(sql::SCHEDULE_POLL)?.execute(params![
        kind.as_str(),
        txn_id,
        at.unix(),
        Timestamp::now().unix()
    ])?;
    Ok(())
}

/// Counts a poll of the job `(kind, txn_id)` that `owner` holds and sets
/// its next due time (`None`: held), releasing the lease. Rows changed (0 or 1).
fn reschedule_poll(
    conn: &Connection,
    next: Option<i64>,
    (kind, txn_id, owner): (&str, i64, &str),
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql::RESCHEDULE_POLL)?.execute(params![next, kind, txn_id, owner])
}

/// Writes the event of a change, if the partner has a callback URL
/// ([`sql::INSERT_EVENT`]); `payload` is only built then.
pub(super) fn write_event(
    conn: &Connection,
    partner: RegistrationId,
    (kind, txn_id): (TxnKind, i64),
    status: &str,
    at: Timestamp,
    payload: impl FnOnce() -> String,
) -> rusqlite::Result<()> {
    let has_url =
        conn.prepare_cached("SELECT 1 FROM partner_callbacks WHERE partner_id = ?1")?.exists([partner.number()])?;
    if !has_url {
        return Ok(());
    }
    let until = at.plus_secs(DELIVERY_WINDOW_SECS);
    let params = params![kind.as_str(), txn_id, status, payload(), at.unix(), until.unix(), partner.number()];
    conn.prepare_cached(sql::INSERT_EVENT)?.execute(params)?;
    Ok(())
}

/// Stores a delivery attempt.
fn insert_attempt(conn: &Connection, a: &DeliveryAttempt) -> rusqlite::Result<()> {
    conn.prepare_cached(INSERT_ATTEMPT)?.execute(params![
        a.event_id,
        a.attempt,
        a.instance,
        a.url,
        a.at.unix(),
        a.duration_ms,
        a.http_status,
        a.error
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{bill_payload, dmt_payload};
    use crate::domain::DmtStatus;
    use crate::store::sqlite::tests::lifecycle::sqlite_tests;
    use crate::store::sqlite::tests::lifecycle::{
        at, bill, no_limit, note, ok, open, partner, route, send, top_up, transfer,
    };

    /// The claim walks the partial index `upstream_polls_due` (see [`CLAIM_POLLS`]).
    #[test]
    fn the_claim_is_an_index_range_scan() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = SqliteStore::open(&dir.path().join("payrail.db")).unwrap_or_else(|e| panic!("{e:#}"));
        let plan: Vec<String> = store
            .read(|conn| {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {CLAIM_POLLS}"))?;
                let rows = stmt.query_map(params!["o", 70, 10, 32], |r| r.get::<_, String>(3))?;
                rows.collect()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let plan = plan.join("\n");
        assert!(
            plan.contains("SEARCH upstream_polls USING INDEX upstream_polls_due (next_poll_at>? AND next_poll_at<?)"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN upstream_polls") && !plan.contains("TEMP B-TREE"), "{plan}");
    }

    /// Every statement this engine shares with PostgreSQL names its
    /// parameters `$1`, `$2`, … in the order SQLite numbers them, so that
    /// positional binding means the same on both engines.
    #[test]
    fn sqlite_numbers_the_shared_parameters_as_postgresql_does() {
        use crate::store::{remittance::sql as remittance, upstream_work::sql as upstream_work};
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = SqliteStore::open(&dir.path().join("payrail.db")).unwrap_or_else(|e| panic!("{e:#}"));
        let shared = [
            remittance::FIND_REMITTER,
            remittance::INSERT_REMITTER,
            remittance::ROUTE_USAGE,
            remittance::REMITTER_USAGE,
            remittance::INSERT_BENEFICIARY,
            remittance::SAME_ACCOUNT,
            remittance::BENEFICIARIES,
            remittance::FIND_BENEFICIARY,
            remittance::DELETE_BENEFICIARY,
            remittance::INSERT_OTP,
            remittance::FORGET_OTPS,
            remittance::FIND_OTP,
            remittance::SAVE_OTP,
            crate::store::remittance::OTP_TEXTS.recent,
            crate::store::remittance::OTP_TEXTS.count,
            crate::store::remittance::OTP_TEXTS.forget,
            crate::store::kyc::EKYC_ATTEMPTS.recent,
            crate::store::kyc::EKYC_ATTEMPTS.count,
            crate::store::kyc::EKYC_ATTEMPTS.forget,
            upstream_work::SCHEDULE_POLL,
            upstream_work::RESCHEDULE_POLL,
            upstream_work::DELETE_POLL,
            upstream_work::END_POLL,
            upstream_work::HELD_POLLS,
            upstream_work::POLL_JOB,
            upstream_work::INSERT_EVENT,
            upstream_work::EVENT_BY_ID,
            upstream_work::REDELIVER_EVENT,
            upstream_work::ATTEMPTS_OF,
        ];
        for sql in shared {
            let names = store
                .read(|conn| {
                    let stmt = conn.prepare(sql)?;
                    Ok((1..=stmt.parameter_count())
                        .map(|i| stmt.parameter_name(i).map(str::to_owned))
                        .collect::<Vec<_>>())
                })
                .unwrap_or_else(|e| panic!("{e}: {sql}"));
            let expected: Vec<_> = (1..=names.len()).map(|i| Some(format!("${i}"))).collect();
            assert_eq!(names, expected, "{sql}");
        }
    }

    // --- Upstream polling and partner callbacks ---------------------

    const HOOK: &str = "https://partner.example/hook";

    /// A partner with a callback URL.
    async fn hooked_partner(store: &SqliteStore) -> RegistrationId {
        let p = partner(store).await;
        assert!(ok(store.set_callback_url(p, Some(HOOK.into()), at(0)).await));
        p
    }

    /// `n` imported in-process transfers (no money moves); their acknos.
    async fn imported(store: &SqliteStore, partner: RegistrationId, prefix: &str, n: usize) -> Vec<i64> {
        let rows = (0..n).map(|i| transfer(partner, &format!("{prefix}{i}"), 10, DmtStatus::InProcess)).collect();
        ok(store.insert_dmt_batch(rows, note(5), Arc::new(|_| ())).await)
    }

    async fn event_ids(store: &SqliteStore, filter: EventFilter) -> Vec<i64> {
        ok(store.events(&filter).await).into_iter().map(|e| e.id).collect()
    }

    async fn claim_event_ids(store: &SqliteStore, owner: &str, now: i64) -> Vec<i64> {
        ok(store.claim_events(Lease { owner, now: at(now), until: at(now + 60), limit: 10 }).await)
            .into_iter()
            .map(|e| e.id)
            .collect()
    }

    fn attempt(event_id: i64, attempt: u32, unix: i64) -> DeliveryAttempt {
        DeliveryAttempt {
            event_id,
            attempt,
            instance: "i1".into(),
            url: HOOK.into(),
            at: at(unix),
            duration_ms: 12,
            http_status: Some(500),
            error: Some("HTTP 500".into()),
        }
    }

    fn job(kind: TxnKind, txn_id: i64, attempts: u32, due: i64) -> PollJob {
        PollJob { kind, txn_id, attempts, due_at: at(due) }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claimers_take_every_job_and_event_exactly_once() {
        const JOBS: usize = 60;
        let (dir, store) = open();
        // A second store on the same file stands for a second process.
        let other = Arc::new(ok(SqliteStore::open(&dir.path().join("payrail.db"))));
        let p = hooked_partner(&store).await;
        let acknos = imported(&store, p, "C", JOBS).await;
        for ackno in &acknos {
            ok(store.change_dmt(*ackno, DmtChange::SentToBank, note(10)).await);
            ok(store.schedule_poll(TxnKind::Dmt, *ackno, at(10)).await);
        }
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(if i % 2 == 0 { &store } else { &other });
                tokio::spawn(async move {
                    let owner = format!("w{i}");
                    let (mut polls, mut events) = (Vec::new(), Vec::new());
                    loop {
                        let jobs = ok(store
                            .claim_polls(Lease { owner: &owner, now: at(20), until: at(10_000), limit: 3 })
                            .await);
                        let claimed = ok(store
                            .claim_events(Lease { owner: &owner, now: at(20), until: at(10_000), limit: 3 })
                            .await);
                        if jobs.is_empty() && claimed.is_empty() {
                            return (polls, events);
                        }
                        polls.extend(jobs.into_iter().map(|j| j.txn_id));
                        events.extend(claimed.into_iter().map(|e| e.txn_id));
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let (mut polls, mut events) = (Vec::new(), Vec::new());
        for task in tasks {
            let (p, e) = ok(task.await);
            polls.extend(p);
            events.extend(e);
        }
        polls.sort_unstable();
        events.sort_unstable();
        let mut acknos = acknos;
        acknos.sort_unstable();
        assert_eq!(polls, acknos, "every job claimed exactly once");
        assert_eq!(events, acknos, "every event claimed exactly once");
    }

    sqlite_tests!(
        a_poll_job_is_leased_to_one_claimer_until_the_lease_expires,
        finishing_a_poll_reschedules_holds_or_removes_the_job,
        claimed_events_keep_each_transactions_order,
        an_attempt_is_recorded_only_by_the_lease_holder_and_decides_the_state,
        a_redelivered_event_is_pending_again_with_a_fresh_window,
        events_are_listed_newest_first_filtered_and_paged
    );
    sqlite_tests!(partner: a_debit_with_poll_at_writes_a_due_job_and_one_without_does_not, a_change_writes_an_event_only_when_the_partner_has_a_callback_url);

    /// The bodies of the tests above, each run on a store of its own.
    mod cases {
        use super::*;

        pub(super) async fn a_debit_with_poll_at_writes_a_due_job_and_one_without_does_not(
            store: &Arc<SqliteStore>,
            p: RegistrationId,
        ) {
            top_up(store, p, 1_000, 1).await;
            ok(send(store, p, "R0", 10).await);
            let t = transfer(p, "R1", 10, DmtStatus::InProcess);
            let make = |t| {
                store.create_dmt_debited(DmtDebit {
                    transfer: t,
                    route: route(Bank::Bank1),
                    limit: no_limit(),
                    note: note(10),
                    poll_at: Some(at(40)),
                })
            };
            let ackno = ok(make(t.clone()).await).record.ackno;
            assert!(matches!(make(t).await, Err(DebitError::Duplicate(_))), "a refused debit writes no job");
            let txnid = ok(store.create_bill_debited(bill(p, "B1", 10), note(11), Some(at(30))).await).record.txnid;
            ok(store.create_bill_debited(bill(p, "B2", 10), note(12), None).await);
            assert!(
                ok(store.claim_polls(Lease { owner: "a", now: at(29), until: at(90), limit: 10 }).await).is_empty(),
                "nothing due yet"
            );
            let jobs = ok(store.claim_polls(Lease { owner: "a", now: at(40), until: at(100), limit: 10 }).await);
            assert_eq!(jobs, [job(TxnKind::Bbps, txnid, 0, 30), job(TxnKind::Dmt, ackno, 0, 40)]);
        }

        pub(super) async fn a_poll_job_is_leased_to_one_claimer_until_the_lease_expires(store: &Arc<SqliteStore>) {
            ok(store.schedule_poll(TxnKind::Dmt, 7, at(10)).await);
            let first = ok(store.claim_polls(Lease { owner: "a", now: at(10), until: at(70), limit: 5 }).await);
            assert_eq!(first, [job(TxnKind::Dmt, 7, 0, 10)]);
            assert!(ok(store.claim_polls(Lease { owner: "b", now: at(10), until: at(70), limit: 5 }).await).is_empty());
            assert!(ok(store.claim_polls(Lease { owner: "b", now: at(69), until: at(130), limit: 5 }).await).is_empty());
            let second = ok(store.claim_polls(Lease { owner: "b", now: at(70), until: at(130), limit: 5 }).await);
            assert_eq!(second, first, "claimable again once the lease has expired");
            assert!(!ok(store.finish_poll(&first[0], "a", PollNext::Done).await), "a no longer holds the lease");
            assert!(ok(store.finish_poll(&second[0], "b", PollNext::Again(at(200))).await));
            assert_eq!(
                ok(store.claim_polls(Lease { owner: "a", now: at(200), until: at(260), limit: 5 }).await),
                [job(TxnKind::Dmt, 7, 1, 200)]
            );
        }

        pub(super) async fn finishing_a_poll_reschedules_holds_or_removes_the_job(store: &Arc<SqliteStore>) {
            for (kind, id) in [(TxnKind::Dmt, 1), (TxnKind::Bbps, 2), (TxnKind::Dmt, 3)] {
                ok(store.schedule_poll(kind, id, at(10)).await);
            }
            let jobs = ok(store.claim_polls(Lease { owner: "a", now: at(10), until: at(70), limit: 10 }).await);
            assert_eq!(jobs.iter().map(|j| j.txn_id).collect::<Vec<_>>(), [1, 2, 3]);
            assert!(ok(store.finish_poll(&jobs[0], "a", PollNext::Again(at(50))).await));
            assert!(ok(store.finish_poll(&jobs[1], "a", PollNext::Held).await));
            assert!(ok(store.finish_poll(&jobs[2], "a", PollNext::Done).await));
            assert!(!ok(store.finish_poll(&jobs[2], "a", PollNext::Done).await), "the job is gone");
            assert!(!ok(store.finish_poll(&jobs[0], "a", PollNext::Done).await), "the lease was released");
            assert!(
                ok(store.claim_polls(Lease { owner: "a", now: at(49), until: at(109), limit: 10 }).await).is_empty()
            );
            assert_eq!(
                ok(store.held_polls().await),
                [PollJob { due_at: Timestamp::from_unix(0), ..job(TxnKind::Bbps, 2, 1, 0) }]
            );
            let again = ok(store.claim_polls(Lease { owner: "a", now: at(1_000), until: at(1_060), limit: 10 }).await);
            assert_eq!(again, [job(TxnKind::Dmt, 1, 1, 50)], "a held job is never due");

            // An operator resumes the held job, and restarts the leased one.
            ok(store.schedule_poll(TxnKind::Bbps, 2, at(60)).await);
            ok(store.schedule_poll(TxnKind::Dmt, 1, at(60)).await);
            assert!(ok(store.held_polls().await).is_empty());
            assert!(!ok(store.finish_poll(&again[0], "a", PollNext::Done).await), "rescheduling released the lease");
            let resumed = ok(store.claim_polls(Lease { owner: "b", now: at(60), until: at(120), limit: 10 }).await);
            assert_eq!(resumed, [job(TxnKind::Dmt, 1, 0, 60), job(TxnKind::Bbps, 2, 0, 60)]);
        }

        pub(super) async fn a_change_writes_an_event_only_when_the_partner_has_a_callback_url(
            store: &Arc<SqliteStore>,
            p: RegistrationId,
        ) {
            top_up(store, p, 1_000, 1).await;
            let ackno = ok(send(store, p, "R1", 100).await).record.ackno;
            ok(store.change_dmt(ackno, DmtChange::SentToBank, note(20)).await);
            assert!(ok(store.events(&EventFilter::default()).await).is_empty());
            assert_eq!(ok(store.callback_url(p).await), None);
            assert!(!ok(store.set_callback_url(RegistrationId::new(99_999), Some(HOOK.into()), at(21)).await));
            assert!(ok(store.set_callback_url(p, Some("https://old.example/".into()), at(21)).await));
            assert!(ok(store.set_callback_url(p, Some(HOOK.into()), at(22)).await));
            assert_eq!(ok(store.callback_url(p).await).as_deref(), Some(HOOK));

            let paid = ok(store.change_dmt(ackno, DmtChange::Success { utr: None }, note(30)).await);
            let late = ok(store.change_dmt(ackno, DmtChange::Utr { utr: "U1".into() }, note(31)).await);
            let events = ok(store.events(&EventFilter::default()).await);
            assert_eq!(events.len(), 2);
            let expected = PartnerEvent {
                id: events[1].id,
                partner: p,
                kind: TxnKind::Dmt,
                txn_id: ackno,
                status: "success".into(),
                payload: dmt_payload(&paid, at(30)),
                created_at: at(30),
                state: EventState::Pending,
                attempts: 0,
                next_attempt_at: Some(at(30)),
                deliver_until: at(30).plus_secs(DELIVERY_WINDOW_SECS),
                delivered_at: None,
                redelivered_at: None,
            };
            assert_eq!(events[1], expected);
            assert_eq!(events[0].payload, dmt_payload(&late, at(31)));
            assert!(events[0].payload.contains(r#""utr":"U1""#), "{}", events[0].payload);
            let (_, history) = ok(store.dmt_with_history(ackno).await).unwrap_or_else(|| panic!("no transfer"));
            let last = history.last().unwrap_or_else(|| panic!("no history"));
            assert_eq!((last.from_status.as_deref(), last.to_status.as_str()), (Some("success"), "success"));

            let txnid = ok(store.create_bill_debited(bill(p, "B1", 10), note(40), None).await).record.txnid;
            let operator_ref = Some("OP1".to_owned());
            let paid = ok(store.change_bill(txnid, BillChange::Success { operator_ref }, note(41)).await);
            let bills =
                ok(store.events(&EventFilter { txn: Some((TxnKind::Bbps, txnid)), ..EventFilter::default() }).await);
            assert_eq!(bills.len(), 1);
            assert_eq!((bills[0].status.as_str(), bills[0].partner), ("success", p));
            assert_eq!(bills[0].payload, bill_payload(&paid, at(41)));

            assert!(ok(store.set_callback_url(p, None, at(50)).await));
            assert_eq!(ok(store.callback_url(p).await), None);
            ok(store.change_bill(txnid, BillChange::Fail, note(51)).await);
            assert_eq!(ok(store.events(&EventFilter::default()).await).len(), 3, "no URL, no event");
        }

        pub(super) async fn claimed_events_keep_each_transactions_order(store: &Arc<SqliteStore>) {
            let p = hooked_partner(store).await;
            let ids = imported(store, p, "I", 2).await;
            let (a, b) = (ids[0], ids[1]);
            ok(store.change_dmt(a, DmtChange::SentToBank, note(10)).await);
            ok(store.change_dmt(b, DmtChange::SentToBank, note(11)).await);
            ok(store.change_dmt(a, DmtChange::Success { utr: Some("U".into()) }, note(12)).await);
            let all = event_ids(store, EventFilter::default()).await;
            let (a1, b1, a2) = (all[2], all[1], all[0]);
            assert!(claim_event_ids(store, "w", 9).await.is_empty(), "nothing due yet");
            assert_eq!(claim_event_ids(store, "w", 12).await, [a1, b1], "a2 waits behind a1");
            assert!(ok(store.record_attempt(attempt(a1, 1, 12), "w", EventOutcome::RetryAt(at(20))).await));
            assert!(claim_event_ids(store, "w", 15).await.is_empty(), "a1 is not due and a2 still waits");
            assert_eq!(claim_event_ids(store, "w", 20).await, [a1]);
            assert!(ok(store.record_attempt(attempt(a1, 2, 20), "w", EventOutcome::Delivered).await));
            assert_eq!(claim_event_ids(store, "w", 20).await, [a2]);
        }

        pub(super) async fn an_attempt_is_recorded_only_by_the_lease_holder_and_decides_the_state(
            store: &Arc<SqliteStore>,
        ) {
            let p = hooked_partner(store).await;
            let ids = imported(store, p, "I", 3).await;
            for (i, ackno) in ids.iter().enumerate() {
                ok(store.change_dmt(*ackno, DmtChange::SentToBank, note(10 + i as i64)).await);
            }
            let events = claim_event_ids(store, "w", 20).await;
            let (delivered, retried, failed) = (events[0], events[1], events[2]);

            assert!(!ok(store.record_attempt(attempt(delivered, 1, 21), "x", EventOutcome::Delivered).await));
            let (event, attempts) = ok(store.event_with_attempts(delivered).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!((event.state, event.attempts, attempts.len()), (EventState::Pending, 0, 0), "nothing written");

            let ok_attempt = DeliveryAttempt { http_status: Some(200), error: None, ..attempt(delivered, 1, 21) };
            assert!(ok(store.record_attempt(ok_attempt.clone(), "w", EventOutcome::Delivered).await));
            let (event, attempts) = ok(store.event_with_attempts(delivered).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!(
                (event.state, event.attempts, event.next_attempt_at, event.delivered_at),
                (EventState::Delivered, 1, None, Some(at(21)))
            );
            assert_eq!(attempts, std::slice::from_ref(&ok_attempt));
            assert!(!ok(store.record_attempt(ok_attempt, "w", EventOutcome::Delivered).await), "not pending");

            assert!(ok(store.record_attempt(attempt(retried, 1, 22), "w", EventOutcome::RetryAt(at(80))).await));
            assert!(!ok(store.record_attempt(attempt(retried, 2, 23), "w", EventOutcome::GiveUp).await), "released");
            let (event, _) = ok(store.event_with_attempts(retried).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!(
                (event.state, event.attempts, event.next_attempt_at, event.delivered_at),
                (EventState::Pending, 1, Some(at(80)), None)
            );

            assert!(ok(store.record_attempt(attempt(failed, 1, 23), "w", EventOutcome::GiveUp).await));
            let (event, attempts) = ok(store.event_with_attempts(failed).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!((event.state, event.attempts, event.next_attempt_at), (EventState::Failed, 1, None));
            assert_eq!(attempts, [attempt(failed, 1, 23)]);
            assert_eq!(claim_event_ids(store, "w", 1_000).await, [retried], "only the retry is left");
            assert_eq!(ok(store.event_with_attempts(99_999).await), None);
        }

        pub(super) async fn a_redelivered_event_is_pending_again_with_a_fresh_window(store: &Arc<SqliteStore>) {
            let p = hooked_partner(store).await;
            let ackno = imported(store, p, "I", 1).await[0];
            ok(store.change_dmt(ackno, DmtChange::SentToBank, note(10)).await);
            let id = claim_event_ids(store, "w", 10).await[0];
            assert!(ok(store.record_attempt(attempt(id, 1, 11), "w", EventOutcome::Delivered).await));

            let again = ok(store.redeliver_event(id, at(500)).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!(
                (again.state, again.attempts, again.next_attempt_at, again.delivered_at),
                (EventState::Pending, 1, Some(at(500)), None)
            );
            assert_eq!((again.deliver_until, again.created_at), (at(500).plus_secs(DELIVERY_WINDOW_SECS), at(10)));
            assert_eq!(claim_event_ids(store, "w", 500).await, [id]);
            // Redelivered while an attempt is in flight: the lease is kept,
            // nobody else claims it, and the holder's attempt is recorded.
            let in_flight = ok(store.redeliver_event(id, at(501)).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!((in_flight.next_attempt_at, in_flight.redelivered_at), (Some(at(501)), Some(at(501))));
            assert_eq!(claim_event_ids(store, "v", 501).await, Vec::<i64>::new(), "the live lease is kept");
            assert!(ok(store.record_attempt(attempt(id, 2, 502), "w", EventOutcome::GiveUp).await));
            let (event, attempts) = ok(store.event_with_attempts(id).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!(
                (event.state, attempts.iter().map(|a| a.attempt).collect::<Vec<_>>()),
                (EventState::Failed, vec![1, 2])
            );
            assert_eq!(ok(store.redeliver_event(id, at(600)).await).map(|e| e.state), Some(EventState::Pending));
            assert_eq!(ok(store.redeliver_event(99_999, at(600)).await), None);
        }

        pub(super) async fn events_are_listed_newest_first_filtered_and_paged(store: &Arc<SqliteStore>) {
            let p = hooked_partner(store).await;
            let q = hooked_partner(store).await;
            let mine = imported(store, p, "P", 2).await;
            let theirs = imported(store, q, "Q", 1).await[0];
            ok(store.change_dmt(mine[0], DmtChange::SentToBank, note(10)).await);
            ok(store.change_dmt(mine[1], DmtChange::SentToBank, note(11)).await);
            ok(store.change_dmt(theirs, DmtChange::SentToBank, note(12)).await);
            ok(store.change_dmt(mine[0], DmtChange::Fail, note(13)).await);
            let all = event_ids(store, EventFilter::default()).await;
            assert_eq!(all.len(), 4);
            assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first: {all:?}");
            let (e4, e3, e2, e1) = (all[0], all[1], all[2], all[3]);
            let claimed = claim_event_ids(store, "w", 20).await;
            assert_eq!(claimed, [e1, e2, e3], "e4 waits behind e1");
            assert!(ok(store.record_attempt(attempt(e2, 1, 20), "w", EventOutcome::Delivered).await));

            let filter = EventFilter::default;
            assert_eq!(event_ids(store, EventFilter { partner: Some(p), ..filter() }).await, [e4, e2, e1]);
            assert_eq!(event_ids(store, EventFilter { state: Some(EventState::Delivered), ..filter() }).await, [e2]);
            let txn = Some((TxnKind::Dmt, mine[0]));
            assert_eq!(event_ids(store, EventFilter { txn, ..filter() }).await, [e4, e1]);
            assert!(event_ids(store, EventFilter { txn: Some((TxnKind::Bbps, mine[0])), ..filter() }).await.is_empty());
            assert_eq!(event_ids(store, EventFilter { before_id: Some(e4), limit: 2, ..filter() }).await, [e3, e2]);
            assert_eq!(event_ids(store, EventFilter { limit: 1, ..filter() }).await, [e4]);
            let pending_mine =
                EventFilter { partner: Some(p), state: Some(EventState::Pending), before_id: Some(e4), ..filter() };
            assert_eq!(event_ids(store, pending_mine).await, [e1]);
        }
    }
}
