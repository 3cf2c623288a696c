//! Work the workers share: poll jobs (following transactions at the upstream) and partner events with their delivery attempts.

use super::*;

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
        let affected = match next {
            PollNext::Done => execute(&client, DELETE_POLL, &[&kind, &job.txn_id, &owner], what).await?,
            PollNext::Again(at) => {
                let params: [&(dyn ToSql + Sync); 4] = [&kind, &job.txn_id, &owner, &Some(at.unix())];
                execute(&client, RESCHEDULE_POLL, &params, what).await?
            }
            PollNext::Held => {
                let params: [&(dyn ToSql + Sync); 4] = [&kind, &job.txn_id, &owner, &None::<i64>];
                execute(&client, RESCHEDULE_POLL, &params, what).await?
            }
        };
        Ok(affected == 1)
    }

    async fn schedule_poll(&self, kind: TxnKind, txn_id: i64, at: Timestamp) -> Result<(), StoreError> {
        let client = self.client().await?;
        schedule_poll(&client, kind, txn_id, at).await
    }

    /// The held jobs by kind, then transaction; a held job is due never, and
    /// its `due_at` is reported as the epoch (0).
    async fn held_polls(&self) -> Result<Vec<PollJob>, StoreError> {
        let client = self.client().await?;
        let rows = query(&client, HELD_POLLS, &[], "Failed to list the held poll jobs").await?;
        let jobs = rows.iter().map(poll_from_row).collect::<anyhow::Result<_>>();
        Ok(jobs.context("Failed to read a held poll job")?)
    }

    async fn poll_job(&self, kind: TxnKind, txn_id: i64) -> Result<Option<PollJob>, StoreError> {
        let client = self.client().await?;
        let what = "Failed to read a poll job";
        let row = query_opt(&client, POLL_JOB, &[&kind.as_str(), &txn_id], what).await?;
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
        let (sql, params) = events_query(filter);
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        let rows = query(&client, &sql, &params, "Failed to list the partner events").await?;
        let events = rows.iter().map(event_from_row).collect::<anyhow::Result<_>>();
        Ok(events.context("Failed to read a partner event")?)
    }

    async fn event_with_attempts(&self, id: i64) -> Result<Option<(PartnerEvent, Vec<DeliveryAttempt>)>, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let row = query_opt(&tx, EVENT_BY_ID, &[&id], "Failed to find the partner event").await?;
        let Some(event) = decode(row, event_from_row)? else { return Ok(None) };
        let rows = query(&tx, ATTEMPTS_OF, &[&id], "Failed to read the delivery attempts").await?;
        let attempts = rows.iter().map(attempt_from_row).collect::<anyhow::Result<_>>();
        let attempts = attempts.context("Failed to read a delivery attempt")?;
        tx.commit().await.store_context("Failed to end the event read")?;
        Ok(Some((event, attempts)))
    }

    async fn redeliver_event(&self, id: i64, now: Timestamp) -> Result<Option<PartnerEvent>, StoreError> {
        let client = self.client().await?;
        let until = now.plus_secs(event::DELIVERY_WINDOW_SECS);
        let params: [&(dyn ToSql + Sync); 3] = [&id, &now.unix(), &until.unix()];
        let row = query_opt(&client, REDELIVER_EVENT, &params, "Failed to redeliver the partner event").await?;
        decode(row, event_from_row)
    }
}
