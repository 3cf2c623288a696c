//! Upstream work on SQLite: poll jobs (following transactions at the
//! upstream) and partner events with their delivery attempts. The SQL both
//! engines run is in [`crate::store::upstream_work::sql`]; what only SQLite
//! runs is here. Every write goes through the one writer connection, so a
//! claim needs no row locks: two claims never run at the same time.

use super::*;
use crate::store::upstream_work::{
    attempt_columns, attempt_list, event_columns, event_list, events_query, poll_columns, poll_list, sql, SqlValue,
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

/// Stores a delivery attempt, its columns in [`attempt_columns`] order.
const INSERT_ATTEMPT: &str =
    concat!("INSERT INTO delivery_attempts (", attempt_list!(), ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");

#[async_trait]
impl UpstreamWorkStore for SqliteStore {
    async fn claim_polls(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PollJob>, StoreError> {
        let owner = owner.to_owned();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let params = params![owner, lease_until.unix(), now.unix(), limit];
            let mut jobs = all_rows(&tx, CLAIM_POLLS, params, poll_from_row).map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            // RETURNING promises no order.
            jobs.sort_by_key(|j| (j.due_at, j.txn_id, j.kind.as_str()));
            Ok(jobs)
        })
        .await
    }

    async fn finish_poll(&self, job: &PollJob, owner: &str, next: PollNext) -> Result<bool, StoreError> {
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

    async fn schedule_poll(&self, kind: TxnKind, txn_id: i64, at: Timestamp) -> Result<(), StoreError> {
        self.write(move |conn| upsert_poll(conn, kind, txn_id, at).map_err(store_error)).await
    }

    async fn held_polls(&self) -> Result<Vec<PollJob>, StoreError> {
        self.read(|conn| all_rows(conn, sql::HELD_POLLS, [], poll_from_row))
    }

    async fn poll_job(&self, kind: TxnKind, txn_id: i64) -> Result<Option<PollJob>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(sql::POLL_JOB)?.query_row(params![kind.as_str(), txn_id], poll_from_row).optional()
        })
    }

    async fn claim_events(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PartnerEvent>, StoreError> {
        let owner = owner.to_owned();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let params = params![owner, lease_until.unix(), now.unix(), limit];
            let mut events = all_rows(&tx, CLAIM_EVENTS, params, event_from_row).map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            // RETURNING promises no order.
            events.sort_by_key(|e| e.id);
            Ok(events)
        })
        .await
    }

    async fn record_attempt(
        &self,
        attempt: DeliveryAttempt,
        owner: &str,
        outcome: EventOutcome,
    ) -> Result<bool, StoreError> {
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

    async fn events(&self, filter: &EventFilter) -> Result<Vec<PartnerEvent>, StoreError> {
        let (sql, values) = events_query(filter);
        let values = values.into_iter().map(|value| match value {
            SqlValue::Int(n) => rusqlite::types::Value::Integer(n),
            SqlValue::Text(text) => rusqlite::types::Value::Text(text.to_owned()),
        });
        self.read(|conn| all_rows(conn, &sql, rusqlite::params_from_iter(values), event_from_row))
    }

    async fn event_with_attempts(&self, id: i64) -> Result<Option<(PartnerEvent, Vec<DeliveryAttempt>)>, StoreError> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let event = tx.prepare_cached(sql::EVENT_BY_ID)?.query_row([id], event_from_row).optional()?;
            let Some(event) = event else { return Ok(None) };
            let attempts = all_rows(&tx, sql::ATTEMPTS_OF, [id], attempt_from_row)?;
            Ok(Some((event, attempts)))
        })
    }

    async fn redeliver_event(&self, id: i64, now: Timestamp) -> Result<Option<PartnerEvent>, StoreError> {
        self.write(move |conn| {
            conn.prepare_cached(sql::REDELIVER_EVENT)
                .and_then(|mut s| {
                    let until = now.plus_secs(DELIVERY_WINDOW_SECS);
                    s.query_row(params![now.unix(), until.unix(), id], event_from_row).optional()
                })
                .map_err(store_error)
        })
        .await
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

/// A poll job from [`poll_columns`]; a held job reads as due at the epoch.
fn poll_from_row(row: &Row<'_>) -> rusqlite::Result<PollJob> {
    use poll_columns as c;
    Ok(PollJob {
        kind: txn_kind(c::KIND, &row.get::<_, String>(c::KIND)?)?,
        txn_id: row.get(c::TXN_ID)?,
        attempts: row.get(c::ATTEMPTS)?,
        due_at: Timestamp::from_unix(row.get::<_, Option<i64>>(c::NEXT_POLL_AT)?.unwrap_or(0)),
    })
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

/// An event from [`event_columns`].
fn event_from_row(row: &Row<'_>) -> rusqlite::Result<PartnerEvent> {
    use event_columns as c;
    let state: String = row.get(c::STATE)?;
    let at = |column| row.get::<_, Option<i64>>(column).map(|at| at.map(Timestamp::from_unix));
    Ok(PartnerEvent {
        id: row.get(c::ID)?,
        partner: RegistrationId::new(row.get(c::PARTNER_ID)?),
        kind: txn_kind(c::KIND, &row.get::<_, String>(c::KIND)?)?,
        txn_id: row.get(c::TXN_ID)?,
        status: row.get(c::STATUS)?,
        payload: row.get(c::PAYLOAD)?,
        created_at: Timestamp::from_unix(row.get(c::CREATED_AT)?),
        state: EventState::parse(&state).ok_or_else(|| conversion_error(c::STATE, BadState(state.clone())))?,
        attempts: row.get(c::ATTEMPTS)?,
        next_attempt_at: at(c::NEXT_ATTEMPT_AT)?,
        deliver_until: Timestamp::from_unix(row.get(c::DELIVER_UNTIL)?),
        delivered_at: at(c::DELIVERED_AT)?,
        redelivered_at: at(c::REDELIVERED_AT)?,
    })
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

/// An attempt from [`attempt_columns`].
fn attempt_from_row(row: &Row<'_>) -> rusqlite::Result<DeliveryAttempt> {
    use attempt_columns as c;
    Ok(DeliveryAttempt {
        event_id: row.get(c::EVENT_ID)?,
        attempt: row.get(c::ATTEMPT)?,
        instance: row.get(c::INSTANCE)?,
        url: row.get(c::URL)?,
        at: Timestamp::from_unix(row.get(c::AT)?),
        duration_ms: row.get(c::DURATION_MS)?,
        http_status: row.get(c::HTTP_STATUS)?,
        error: row.get(c::ERROR)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            remittance::RECENT_TEXTS,
            remittance::COUNT_TEXT,
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
}
