//! Upstream work on PostgreSQL: poll jobs (following transactions at the
//! upstream) and partner events with their delivery attempts. The SQL both
//! engines run is in [`crate::store::upstream_work::sql`]; what only
//! PostgreSQL runs is here: the claims, which skip rows another instance's
//! claim has locked (`FOR UPDATE SKIP LOCKED`) where SQLite's one writer
//! runs one claim at a time, and an attempt recorded in one statement.

use super::*;
use crate::store::upstream_work::{
    attempt_columns, event_columns, event_list, events_query, poll_columns, poll_list_p, sql, SqlValue,
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

#[async_trait]
impl UpstreamWorkStore for PostgresStore {
    async fn claim_polls(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PollJob>, StoreError> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 4] = [&owner, &now.unix(), &lease_until.unix(), &i64::from(limit)];
        let rows = query(&client, CLAIM_POLLS, &params, "Failed to claim poll jobs").await?;
        let mut jobs = rows.iter().map(poll_from_row).collect::<anyhow::Result<Vec<_>>>();
        if let Ok(jobs) = &mut jobs {
            // RETURNING keeps no order.
            jobs.sort_by_key(|job| (job.due_at, job.txn_id));
        }
        Ok(jobs.context("Failed to read a claimed poll job")?)
    }

    async fn finish_poll(&self, job: &PollJob, owner: &str, next: PollNext) -> Result<bool, StoreError> {
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

    async fn schedule_poll(&self, kind: TxnKind, txn_id: i64, at: Timestamp) -> Result<(), StoreError> {
        let client = self.client().await?;
        schedule_poll(&client, kind, txn_id, at).await
    }

    async fn held_polls(&self) -> Result<Vec<PollJob>, StoreError> {
        let client = self.client().await?;
        let rows = query(&client, sql::HELD_POLLS, &[], "Failed to list the held poll jobs").await?;
        let jobs = rows.iter().map(poll_from_row).collect::<anyhow::Result<_>>();
        Ok(jobs.context("Failed to read a held poll job")?)
    }

    async fn poll_job(&self, kind: TxnKind, txn_id: i64) -> Result<Option<PollJob>, StoreError> {
        let client = self.client().await?;
        let what = "Failed to read a poll job";
        let row = query_opt(&client, sql::POLL_JOB, &[&kind.as_str(), &txn_id], what).await?;
        Ok(row.map(|row| poll_from_row(&row)).transpose().context(what)?)
    }

    async fn claim_events(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PartnerEvent>, StoreError> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 4] = [&owner, &now.unix(), &lease_until.unix(), &i64::from(limit)];
        let rows = query(&client, CLAIM_EVENTS, &params, "Failed to claim partner events").await?;
        let mut events = rows.iter().map(event_from_row).collect::<anyhow::Result<Vec<_>>>();
        if let Ok(events) = &mut events {
            // RETURNING keeps no order.
            events.sort_by_key(|event| event.id);
        }
        Ok(events.context("Failed to read a claimed partner event")?)
    }

    async fn record_attempt(
        &self,
        attempt: DeliveryAttempt,
        owner: &str,
        outcome: EventOutcome,
    ) -> Result<bool, StoreError> {
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

    async fn events(&self, filter: &EventFilter) -> Result<Vec<PartnerEvent>, StoreError> {
        let client = self.client().await?;
        let (sql, values) = events_query(filter);
        let params: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|value| match value {
                SqlValue::Int(n) => n as &(dyn ToSql + Sync),
                SqlValue::Text(text) => text as &(dyn ToSql + Sync),
            })
            .collect();
        let rows = query(&client, &sql, &params, "Failed to list the partner events").await?;
        let events = rows.iter().map(event_from_row).collect::<anyhow::Result<_>>();
        Ok(events.context("Failed to read a partner event")?)
    }

    async fn event_with_attempts(&self, id: i64) -> Result<Option<(PartnerEvent, Vec<DeliveryAttempt>)>, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let row = query_opt(&tx, sql::EVENT_BY_ID, &[&id], "Failed to find the partner event").await?;
        let Some(event) = decode(row, event_from_row)? else { return Ok(None) };
        let rows = query(&tx, sql::ATTEMPTS_OF, &[&id], "Failed to read the delivery attempts").await?;
        let attempts = rows.iter().map(attempt_from_row).collect::<anyhow::Result<_>>();
        let attempts = attempts.context("Failed to read a delivery attempt")?;
        tx.commit().await.store_context("Failed to end the event read")?;
        Ok(Some((event, attempts)))
    }

    async fn redeliver_event(&self, id: i64, now: Timestamp) -> Result<Option<PartnerEvent>, StoreError> {
        let client = self.client().await?;
        let until = now.plus_secs(event::DELIVERY_WINDOW_SECS);
        let params: [&(dyn ToSql + Sync); 3] = [&now.unix(), &until.unix(), &id];
        let row = query_opt(&client, sql::REDELIVER_EVENT, &params, "Failed to redeliver the partner event").await?;
        decode(row, event_from_row)
    }
}

/// (Re)starts polling of a transaction at `at`, with no attempts counted
/// ([`sql::SCHEDULE_POLL`]).
pub(super) async fn schedule_poll(
    client: &impl GenericClient,
    kind: TxnKind,
    id: i64,
    at: Timestamp,
) -> Result<(), StoreError> {
    let params: [&(dyn ToSql + Sync); 4] = [&kind.as_str(), &id, &at.unix(), &Timestamp::now().unix()];
    execute(client, sql::SCHEDULE_POLL, &params, "Failed to schedule the poll job").await?;
    Ok(())
}

/// Removes a decided transaction's poll job (if it has one, held or not):
/// the poller works only on undecided transactions.
pub(super) async fn end_poll(tx: &Transaction<'_>, kind: TxnKind, txn_id: i64) -> Result<(), StoreError> {
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
) -> Result<(), StoreError> {
    let until = at.plus_secs(event::DELIVERY_WINDOW_SECS);
    let params: [&(dyn ToSql + Sync); 7] =
        [&kind.as_str(), &id, &status, &payload, &at.unix(), &until.unix(), &partner.number()];
    execute(tx, sql::INSERT_EVENT, &params, "Failed to write the partner event").await?;
    Ok(())
}

/// A poll job from [`poll_columns`]; a held job reads as due at the epoch.
fn poll_from_row(row: &Row) -> anyhow::Result<PollJob> {
    use poll_columns as c;
    let kind: &str = row.try_get(c::KIND)?;
    Ok(PollJob {
        kind: TxnKind::parse(kind).ok_or_else(|| BadState(kind.to_owned()))?,
        txn_id: row.try_get(c::TXN_ID)?,
        attempts: u32::try_from(row.try_get::<_, i64>(c::ATTEMPTS)?)?,
        due_at: Timestamp::from_unix(row.try_get::<_, Option<i64>>(c::NEXT_POLL_AT)?.unwrap_or(0)),
    })
}

/// An event from [`event_columns`].
fn event_from_row(row: &Row) -> anyhow::Result<PartnerEvent> {
    use event_columns as c;
    let kind: &str = row.try_get(c::KIND)?;
    let state: &str = row.try_get(c::STATE)?;
    let at = |column| row.try_get::<_, Option<i64>>(column).map(|at| at.map(Timestamp::from_unix));
    Ok(PartnerEvent {
        id: row.try_get(c::ID)?,
        partner: RegistrationId::new(row.try_get(c::PARTNER_ID)?),
        kind: TxnKind::parse(kind).ok_or_else(|| BadState(kind.to_owned()))?,
        txn_id: row.try_get(c::TXN_ID)?,
        status: row.try_get(c::STATUS)?,
        payload: row.try_get(c::PAYLOAD)?,
        created_at: Timestamp::from_unix(row.try_get(c::CREATED_AT)?),
        state: EventState::parse(state).ok_or_else(|| BadState(state.to_owned()))?,
        attempts: u32::try_from(row.try_get::<_, i64>(c::ATTEMPTS)?)?,
        next_attempt_at: at(c::NEXT_ATTEMPT_AT)?,
        deliver_until: Timestamp::from_unix(row.try_get(c::DELIVER_UNTIL)?),
        delivered_at: at(c::DELIVERED_AT)?,
        redelivered_at: at(c::REDELIVERED_AT)?,
    })
}

/// An attempt from [`attempt_columns`].
fn attempt_from_row(row: &Row) -> anyhow::Result<DeliveryAttempt> {
    use attempt_columns as c;
    Ok(DeliveryAttempt {
        event_id: row.try_get(c::EVENT_ID)?,
        attempt: u32::try_from(row.try_get::<_, i64>(c::ATTEMPT)?)?,
        instance: row.try_get(c::INSTANCE)?,
        url: row.try_get(c::URL)?,
        at: Timestamp::from_unix(row.try_get(c::AT)?),
        duration_ms: row.try_get(c::DURATION_MS)?,
        http_status: row.try_get::<_, Option<i64>>(c::HTTP_STATUS)?.map(u16::try_from).transpose()?,
        error: row.try_get(c::ERROR)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::TestDb;
    use super::*;

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
}
