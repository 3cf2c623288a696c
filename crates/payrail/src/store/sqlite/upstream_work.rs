//! Work the workers share: poll jobs (following transactions at the upstream) and partner events with their delivery attempts.

use super::*;

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
        let (kind, txn_id, owner) = (job.kind, job.txn_id, owner.to_owned());
        self.write(move |conn| {
            let key = (kind.as_str(), txn_id, owner.as_str());
            let changed = match next {
                PollNext::Again(at) => finish_poll_row(conn, key, Some(at.unix())),
                PollNext::Held => finish_poll_row(conn, key, None),
                PollNext::Done => conn
                    .prepare_cached("DELETE FROM upstream_polls WHERE kind = ?1 AND txn_id = ?2 AND lease_owner = ?3")
                    .and_then(|mut s| s.execute(params![key.0, key.1, key.2])),
            };
            changed.map(|n| n == 1).map_err(store_error)
        })
        .await
    }

    async fn schedule_poll(&self, kind: TxnKind, txn_id: i64, at: Timestamp) -> Result<(), StoreError> {
        self.write(move |conn| upsert_poll(conn, kind, txn_id, at).map_err(store_error)).await
    }

    async fn held_polls(&self) -> Result<Vec<PollJob>, StoreError> {
        self.read(|conn| {
            all_rows(
                conn,
                "SELECT kind, txn_id, attempts, next_poll_at FROM upstream_polls \
                 WHERE next_poll_at IS NULL ORDER BY kind, txn_id",
                [],
                poll_from_row,
            )
        })
    }

    async fn poll_job(&self, kind: TxnKind, txn_id: i64) -> Result<Option<PollJob>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT kind, txn_id, attempts, next_poll_at FROM upstream_polls WHERE kind = ?1 AND txn_id = ?2",
            )?
            .query_row(params![kind.as_str(), txn_id], poll_from_row)
            .optional()
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
            let mut events = all_rows(&tx, &CLAIM_EVENTS, params, event_from_row).map_err(store_error)?;
            tx.commit().map_err(store_error)?;
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
        self.read(|conn| all_rows(conn, &sql, rusqlite::params_from_iter(values), event_from_row))
    }

    async fn event_with_attempts(&self, id: i64) -> Result<Option<(PartnerEvent, Vec<DeliveryAttempt>)>, StoreError> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let event = tx
                .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM partner_events WHERE id = ?1"))?
                .query_row([id], event_from_row)
                .optional()?;
            let Some(event) = event else { return Ok(None) };
            let attempts = all_rows(
                &tx,
                "SELECT event_id, attempt, instance, url, at, duration_ms, http_status, error \
                 FROM delivery_attempts WHERE event_id = ?1 ORDER BY attempt",
                [id],
                attempt_from_row,
            )?;
            Ok(Some((event, attempts)))
        })
    }

    async fn redeliver_event(&self, id: i64, now: Timestamp) -> Result<Option<PartnerEvent>, StoreError> {
        self.write(move |conn| {
            conn.prepare_cached(&REDELIVER_EVENT)
                .and_then(|mut s| {
                    let until = now.plus_secs(DELIVERY_WINDOW_SECS);
                    s.query_row(params![id, now.unix(), until.unix()], event_from_row).optional()
                })
                .map_err(store_error)
        })
        .await
    }
}
