//! Work the workers share: poll jobs (following transactions at the upstream) and partner events with their delivery attempts.

use super::*;

/// Work the workers share: poll jobs (following transactions at the upstream) and partner events with their delivery attempts.
#[async_trait]
pub trait UpstreamWorkStore: Send + Sync + 'static {
    /// Up to `limit` jobs due at `now` (`next_poll_at <= now`, not held) whose
    /// lease is free or expired, oldest due first, leased to `owner` until
    /// `lease_until`.
    async fn claim_polls(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PollJob>, StoreError>;
    /// Ends a poll of a leased job: [`PollNext::Again`] counts the attempt and
    /// sets the next due time, [`PollNext::Done`] removes the job,
    /// [`PollNext::Held`] counts the attempt and keeps the job, never due
    /// again. The lease is released. `false` (nothing written) if `owner`
    /// no longer holds the lease or the job is gone.
    async fn finish_poll(&self, job: &PollJob, owner: &str, next: PollNext) -> Result<bool, StoreError>;
    /// (Re)starts polling of a transaction at `at`, with no attempts counted
    /// (an operator resuming a held transfer). Replaces any existing job.
    async fn schedule_poll(&self, kind: TxnKind, txn_id: i64, at: Timestamp) -> Result<(), StoreError>;
    /// The held jobs, oldest transaction first.
    async fn held_polls(&self) -> Result<Vec<PollJob>, StoreError>;
    /// The transaction's poll job, due or held (`due_at` 0 when held). A
    /// transaction without one was never handed to the upstream (imported,
    /// made by an operator) or is no longer followed up.
    async fn poll_job(&self, kind: TxnKind, txn_id: i64) -> Result<Option<PollJob>, StoreError>;
    /// Up to `limit` pending events due at `now` whose lease is free or
    /// expired, leased to `owner` until `lease_until`, by id. An event is not
    /// claimed while an older event of the same transaction is pending, so a
    /// partner receives one transaction's events in order.
    async fn claim_events(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PartnerEvent>, StoreError>;
    /// Records an attempt (its `attempt` is the event's attempts + 1) and
    /// what it leads to, and releases the lease, atomically; `false`
    /// (nothing written) if `owner` no longer holds the lease.
    async fn record_attempt(
        &self,
        attempt: DeliveryAttempt,
        owner: &str,
        outcome: EventOutcome,
    ) -> Result<bool, StoreError>;
    /// Events matching `filter`, newest first.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<PartnerEvent>, StoreError>;
    /// One event and its attempts, oldest first.
    async fn event_with_attempts(&self, id: i64) -> Result<Option<(PartnerEvent, Vec<DeliveryAttempt>)>, StoreError>;
    /// Makes an event (in any state) pending again, due at `now`, with a
    /// fresh window (`now` + `event::DELIVERY_WINDOW_SECS`), lease released;
    /// its attempts are kept. `None` if there is no such event.
    async fn redeliver_event(&self, id: i64, now: Timestamp) -> Result<Option<PartnerEvent>, StoreError>;
}
