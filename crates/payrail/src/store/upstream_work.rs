//! Work the workers share: poll jobs (following transactions at the
//! upstream) and partner events with their delivery attempts. The traits,
//! and the SQL both engines run for them (`sql`); each engine's
//! implementation is in its `upstream_work.rs`.
//!
//! The two claims ([`Claims`]) are written once for both engines over
//! `ClaimStore`: each engine runs one claim for either kind of work
//! (`Leased`: how a claimed row reads and in what order claims return).

use std::future::Future;

use super::columns::{columns, BadState, StoredRow, Value};
use super::*;
use crate::domain::event::EventState;

columns! {
    /// The `upstream_polls` columns a poll job is read from; `next_poll_at`
    /// is NULL for a held job, which reads as due at the epoch.
    pub(crate) mod poll_columns, list poll_list, qualified poll_list_p as "p" {
        kind, txn_id, attempts, next_poll_at
    }
}

columns! {
    /// The `partner_events` columns an event is read from.
    pub(crate) mod event_columns, list event_list {
        id, partner_id, kind, txn_id, status, payload, created_at, state, attempts, next_attempt_at, deliver_until,
        delivered_at, redelivered_at
    }
}

columns! {
    /// The `delivery_attempts` columns an attempt is read from, and written in.
    pub(crate) mod attempt_columns, list attempt_list {
        event_id, attempt, instance, url, at, duration_ms, http_status, error
    }
}

pub(crate) use attempt_list;
pub(crate) use event_list;
pub(crate) use poll_list;
pub(crate) use poll_list_p;

/// The statements both engines run for upstream work, with `$n` parameters.
/// SQLite numbers a `$n` parameter by where it first appears, not by `n`,
/// so each statement's parameters first appear in order `$1`, `$2`, … (the
/// SQLite tests check it). The claims are each engine's own: PostgreSQL
/// skips rows another claim has locked, SQLite's one writer runs one claim
/// at a time.
pub(crate) mod sql {
    /// (Re)starts polling of transaction (`$1` kind, `$2` id) at `$3`, with no
    /// attempts. An expired lease is released; a live one (`lease_until`
    /// after `$4`, now) is kept, so that the poll in flight is still
    /// recorded by the worker that holds it.
    pub(crate) const SCHEDULE_POLL: &str = "INSERT INTO upstream_polls (kind, txn_id, attempts, next_poll_at) \
         VALUES ($1, $2, 0, $3) ON CONFLICT (kind, txn_id) DO UPDATE SET attempts = 0, \
         next_poll_at = EXCLUDED.next_poll_at, \
         lease_owner = CASE WHEN upstream_polls.lease_until > $4 THEN upstream_polls.lease_owner END, \
         lease_until = CASE WHEN upstream_polls.lease_until > $4 THEN upstream_polls.lease_until END";
    /// Counts a poll and sets the next due time `$1` (NULL holds the job),
    /// releasing the lease, if `$4` holds the lease of job (`$2` kind, `$3` id).
    pub(crate) const RESCHEDULE_POLL: &str = "UPDATE upstream_polls SET attempts = attempts + 1, \
         next_poll_at = $1, lease_owner = NULL, lease_until = NULL \
         WHERE kind = $2 AND txn_id = $3 AND lease_owner = $4";
    /// Removes job (`$1` kind, `$2` id) if `$3` holds its lease.
    pub(crate) const DELETE_POLL: &str =
        "DELETE FROM upstream_polls WHERE kind = $1 AND txn_id = $2 AND lease_owner = $3";
    /// Removes job (`$1` kind, `$2` id), held or not, leased or not.
    pub(crate) const END_POLL: &str = "DELETE FROM upstream_polls WHERE kind = $1 AND txn_id = $2";
    /// The held jobs, by kind then transaction.
    pub(crate) const HELD_POLLS: &str =
        concat!("SELECT ", poll_list!(), " FROM upstream_polls WHERE next_poll_at IS NULL ORDER BY kind, txn_id");
    /// The job of transaction (`$1` kind, `$2` id).
    pub(crate) const POLL_JOB: &str =
        concat!("SELECT ", poll_list!(), " FROM upstream_polls WHERE kind = $1 AND txn_id = $2");

    /// Writes the event of a change of transaction (`$1` kind, `$2` id) to
    /// status `$3`, payload `$4`, made at `$5`, deliverable until `$6`, for
    /// partner `$7` if it has a callback URL (nothing otherwise). It is due
    /// at once or, while an older event of the transaction waits for a
    /// retry, when that retry is due (it cannot go before it).
    pub(crate) const INSERT_EVENT: &str = "INSERT INTO partner_events (partner_id, kind, txn_id, status, payload, \
         created_at, state, attempts, next_attempt_at, deliver_until) \
         SELECT partner_id, $1, $2, $3, $4, $5, 'pending', 0, \
         COALESCE((SELECT MAX(next_attempt_at) FROM partner_events \
         WHERE kind = $1 AND txn_id = $2 AND state = 'pending' AND next_attempt_at > $5), $5), $6 \
         FROM partner_callbacks WHERE partner_id = $7";
    /// Event `$1`.
    pub(crate) const EVENT_BY_ID: &str = concat!("SELECT ", event_list!(), " FROM partner_events WHERE id = $1");
    /// Makes event `$3` pending again, due at `$1` (now), deliverable until
    /// `$2`, marked redelivered. A live lease is kept: the attempt in flight
    /// is recorded by its worker (and is the redelivery), never lost.
    pub(crate) const REDELIVER_EVENT: &str = concat!(
        "UPDATE partner_events SET state = 'pending', next_attempt_at = $1, deliver_until = $2, \
         delivered_at = NULL, redelivered_at = $1, lease_owner = CASE WHEN lease_until > $1 THEN lease_owner END, \
         lease_until = CASE WHEN lease_until > $1 THEN lease_until END WHERE id = $3 RETURNING ",
        event_list!()
    );
    /// This installation's id (made once, when the store was created or
    /// first migrated to this version).
    pub(crate) const INSTALLATION_ID: &str = "SELECT installation_id FROM installation WHERE singleton = 1";
    /// The stored upstream reference (without the prefix) of transaction (`$1` kind, `$2` id).
    pub(crate) const UPSTREAM_REF_OF: &str = "SELECT ref_tail FROM upstream_refs WHERE kind = $1 AND txn_id = $2";
    /// Gives transaction (`$1` kind, `$2` id) the reference `$3` unless it has one.
    pub(crate) const ASSIGN_UPSTREAM_REF: &str = "INSERT INTO upstream_refs (kind, txn_id, ref_tail) \
         VALUES ($1, $2, $3) ON CONFLICT (kind, txn_id) DO NOTHING";
    /// The transaction whose reference (without the prefix) is `$1`.
    pub(crate) const TXN_BY_UPSTREAM_REF: &str = "SELECT kind, txn_id FROM upstream_refs WHERE ref_tail = $1";
    /// The attempts of event `$1`, oldest first.
    pub(crate) const ATTEMPTS_OF: &str =
        concat!("SELECT ", attempt_list!(), " FROM delivery_attempts WHERE event_id = $1 ORDER BY attempt");

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::store::columns::assert_parameters_in_order;

        #[test]
        fn parameters_first_appear_in_order() {
            for sql in [
                SCHEDULE_POLL,
                RESCHEDULE_POLL,
                DELETE_POLL,
                END_POLL,
                HELD_POLLS,
                POLL_JOB,
                INSERT_EVENT,
                EVENT_BY_ID,
                INSTALLATION_ID,
                UPSTREAM_REF_OF,
                ASSIGN_UPSTREAM_REF,
                TXN_BY_UPSTREAM_REF,
                REDELIVER_EVENT,
                ATTEMPTS_OF,
            ] {
                assert_parameters_in_order(sql);
            }
        }
    }
}

/// What a claim leases, [`PollJob`]s or [`PartnerEvent`]s: how a claimed
/// row is read, and the order a claim returns them in (`RETURNING` promises
/// none, on either engine). Each engine's claim statements differ (locks);
/// their params are the same: owner, now, lease end, limit.
pub(crate) trait Leased: Sized + Send + 'static {
    /// The error of a failed claim.
    const CLAIM_FAILED: &'static str;
    /// The error of a claimed row that does not decode.
    const READ_FAILED: &'static str;
    /// Reads a claimed row, or any row of its columns, on either engine.
    fn decode<R: StoredRow>(row: &R) -> Result<Self, R::Error>;
    /// Puts what a claim leased in the order it promises.
    fn sort(claimed: &mut [Self]);
    /// Its claim among an engine's two claim statements.
    fn claim_of(polls: &'static str, events: &'static str) -> &'static str;
}

impl Leased for PollJob {
    const CLAIM_FAILED: &'static str = "Failed to claim poll jobs";
    const READ_FAILED: &'static str = "Failed to read a claimed poll job";
    /// Reads a job from [`poll_columns`]; a held job reads as due at the epoch.
    fn decode<R: StoredRow>(row: &R) -> Result<Self, R::Error> {
        use poll_columns as c;
        Ok(PollJob {
            kind: row.parsed(c::kind, txn_kind)?,
            txn_id: row.int(c::txn_id)?,
            attempts: row.coded(c::attempts, |n| u32::try_from(n).ok())?,
            due_at: Timestamp::from_unix(row.opt_int(c::next_poll_at)?.unwrap_or(0)),
        })
    }
    /// Oldest due first; the kind only orders a transfer and a bill payment
    /// that share a number and a due time.
    fn sort(jobs: &mut [Self]) {
        jobs.sort_by_key(|job| (job.due_at, job.txn_id, job.kind.as_str()));
    }
    fn claim_of(polls: &'static str, _events: &'static str) -> &'static str {
        polls
    }
}

impl Leased for PartnerEvent {
    const CLAIM_FAILED: &'static str = "Failed to claim partner events";
    const READ_FAILED: &'static str = "Failed to read a claimed partner event";
    /// Reads an event from [`event_columns`].
    fn decode<R: StoredRow>(row: &R) -> Result<Self, R::Error> {
        use event_columns as c;
        let state = |text: &str| EventState::parse(text).ok_or_else(|| BadState(text.to_owned()));
        Ok(PartnerEvent {
            id: row.int(c::id)?,
            partner: RegistrationId::new(row.int(c::partner_id)?),
            kind: row.parsed(c::kind, txn_kind)?,
            txn_id: row.int(c::txn_id)?,
            status: row.text(c::status)?,
            payload: row.text(c::payload)?,
            created_at: Timestamp::from_unix(row.int(c::created_at)?),
            state: row.parsed(c::state, state)?,
            attempts: row.coded(c::attempts, |n| u32::try_from(n).ok())?,
            next_attempt_at: row.opt_int(c::next_attempt_at)?.map(Timestamp::from_unix),
            deliver_until: Timestamp::from_unix(row.int(c::deliver_until)?),
            delivered_at: row.opt_int(c::delivered_at)?.map(Timestamp::from_unix),
            redelivered_at: row.opt_int(c::redelivered_at)?.map(Timestamp::from_unix),
        })
    }
    /// By id, the order they were written in.
    fn sort(events: &mut [Self]) {
        events.sort_by_key(|event| event.id);
    }
    fn claim_of(_polls: &'static str, events: &'static str) -> &'static str {
        events
    }
}

/// A delivery attempt from [`attempt_columns`], on either engine.
pub(crate) fn attempt_from_row<R: StoredRow>(row: &R) -> Result<DeliveryAttempt, R::Error> {
    use attempt_columns as c;
    let http_status = match row.opt_int(c::http_status)? {
        Some(_) => Some(row.coded(c::http_status, |n| u16::try_from(n).ok())?),
        None => None,
    };
    Ok(DeliveryAttempt {
        event_id: row.int(c::event_id)?,
        attempt: row.coded(c::attempt, |n| u32::try_from(n).ok())?,
        instance: row.text(c::instance)?,
        url: row.text(c::url)?,
        at: Timestamp::from_unix(row.int(c::at)?),
        duration_ms: row.int(c::duration_ms)?,
        http_status,
        error: row.opt_text(c::error)?,
    })
}

/// A stored transaction kind.
fn txn_kind(text: &str) -> Result<TxnKind, BadState> {
    TxnKind::parse(text).ok_or_else(|| BadState(text.to_owned()))
}

/// How many events [`UpstreamWorkStore::events`] returns when the filter asks for no limit.
const EVENTS_DEFAULT_LIMIT: u32 = 100;
/// The most events [`UpstreamWorkStore::events`] returns.
const EVENTS_MAX_LIMIT: u32 = 1_000;

/// The statement listing the events `filter` asks for, newest first, and
/// its parameters. Only the conditions in use are written, so that each
/// combination gets a plan that uses its index.
pub(crate) fn events_query(filter: &EventFilter) -> (String, Vec<Value<'static>>) {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    let mut bind = |condition: &str, value: Value<'static>| {
        values.push(value);
        conditions.push(format!("{condition} ${}", values.len()));
    };
    if let Some(partner) = filter.partner {
        bind("partner_id =", Value::from(partner.number()));
    }
    if let Some(state) = filter.state {
        bind("state =", Value::from(state.name()));
    }
    if let Some((kind, txn_id)) = filter.txn {
        bind("kind =", Value::from(kind.as_str()));
        bind("txn_id =", Value::from(txn_id));
    }
    if let Some(before) = filter.before_id {
        bind("id <", Value::from(before));
    }
    let limit = match filter.limit {
        0 => EVENTS_DEFAULT_LIMIT,
        limit => limit.min(EVENTS_MAX_LIMIT),
    };
    let filters = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    values.push(Value::from(i64::from(limit)));
    let sql = format!("SELECT {} FROM partner_events{filters} ORDER BY id DESC LIMIT ${}", event_list!(), values.len());
    (sql, values)
}

/// Leasing due work to a worker: poll jobs and partner events. Both
/// engines have it through one implementation over `ClaimStore`, which
/// each engine writes once for both.
#[async_trait]
pub trait Claims: Send + Sync + 'static {
    /// Up to `lease.limit` jobs due at `lease.now` (`next_poll_at <= now`, not
    /// held) whose lease is free or expired, oldest due first, leased to
    /// `lease.owner` until `lease.until`.
    async fn claim_polls(&self, lease: Lease<'_>) -> StoreResult<Vec<PollJob>>;
    /// Up to `lease.limit` pending events due at `lease.now` whose lease is
    /// free or expired, leased to `lease.owner` until `lease.until`, by id. An
    /// event is not claimed while an older event of the same transaction is
    /// pending, so a partner receives one transaction's events in order.
    async fn claim_events(&self, lease: Lease<'_>) -> StoreResult<Vec<PartnerEvent>>;
}

/// The terms of one claim: leased to `owner` until `until`, due at `now`,
/// at most `limit` of them.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    /// Who holds the lease (an instance name).
    pub owner: &'a str,
    /// What is due is due at this time.
    pub now: Timestamp,
    /// When the lease ends.
    pub until: Timestamp,
    /// At most this many.
    pub limit: u32,
}

/// What one claim leases, as an engine runs it: [`Claims`]' methods, written
/// once by each engine over [`Leased`].
pub(crate) trait ClaimStore<T: Leased>: Send + Sync + 'static {
    /// Leases up to `lease.limit` due, free `T`s and returns them in `T`'s order.
    fn claim(&self, lease: Lease<'_>) -> impl Future<Output = StoreResult<Vec<T>>> + Send;
}

#[async_trait]
impl<E: ClaimStore<PollJob> + ClaimStore<PartnerEvent>> Claims for E {
    async fn claim_polls(&self, lease: Lease<'_>) -> StoreResult<Vec<PollJob>> {
        ClaimStore::<PollJob>::claim(self, lease).await
    }
    async fn claim_events(&self, lease: Lease<'_>) -> StoreResult<Vec<PartnerEvent>> {
        ClaimStore::<PartnerEvent>::claim(self, lease).await
    }
}

/// Work the workers share: poll jobs (following transactions at the
/// upstream) and partner events with their delivery attempts, leased
/// through [`Claims`].
#[async_trait]
pub trait UpstreamWorkStore: Claims {
    /// Ends a poll of a leased job: [`PollNext::Again`] counts the attempt and
    /// sets the next due time, [`PollNext::Done`] removes the job,
    /// [`PollNext::Held`] counts the attempt and keeps the job, never due
    /// again. The lease is released. `false` (nothing written) if `owner`
    /// no longer holds the lease or the job is gone.
    async fn finish_poll(&self, job: &PollJob, owner: &str, next: PollNext) -> StoreResult<bool>;
    /// (Re)starts polling of a transaction at `at`, with no attempts counted
    /// (an operator resuming a held transfer). Replaces any existing job.
    async fn schedule_poll(&self, kind: TxnKind, txn_id: i64, at: Timestamp) -> StoreResult<()>;
    /// The held jobs, oldest transaction first.
    async fn held_polls(&self) -> StoreResult<Vec<PollJob>>;
    /// The transaction's poll job, due or held (`due_at` 0 when held). A
    /// transaction without one was never handed to the upstream (imported,
    /// made by an operator) or is no longer followed up.
    async fn poll_job(&self, kind: TxnKind, txn_id: i64) -> StoreResult<Option<PollJob>>;
    /// Records an attempt (its `attempt` is the event's attempts + 1) and
    /// what it leads to, and releases the lease, atomically; `false`
    /// (nothing written) if `owner` no longer holds the lease.
    async fn record_attempt(&self, attempt: DeliveryAttempt, owner: &str, outcome: EventOutcome) -> StoreResult<bool>;
    /// Events matching `filter`, newest first.
    async fn events(&self, filter: &EventFilter) -> StoreResult<Vec<PartnerEvent>>;
    /// One event and its attempts, oldest first.
    async fn event_with_attempts(&self, id: i64) -> StoreResult<Option<(PartnerEvent, Vec<DeliveryAttempt>)>>;
    /// Makes an event (in any state) pending again, due at `now`, with a
    /// fresh window (`now` + `event::DELIVERY_WINDOW_SECS`), lease released;
    /// its attempts are kept. `None` if there is no such event.
    async fn redeliver_event(&self, id: i64, now: Timestamp) -> StoreResult<Option<PartnerEvent>>;
    /// This installation's id: random, made once with the store, part of
    /// every upstream reference payrail makes.
    async fn installation_id(&self) -> StoreResult<String>;
    /// The reference the upstream knows transaction (`kind`, `txn_id`) by,
    /// without `--upstream-ref-prefix`; `None` if it was never given one.
    async fn upstream_ref_of(&self, kind: TxnKind, txn_id: i64) -> StoreResult<Option<String>>;
    /// Gives the transaction the reference `tail` (without the prefix)
    /// unless it has one already; returns the one it has now.
    async fn assign_upstream_ref(&self, kind: TxnKind, txn_id: i64, tail: &str) -> StoreResult<String>;
    /// The transaction whose reference (without the prefix) is `tail`.
    async fn txn_by_upstream_ref(&self, tail: &str) -> StoreResult<Option<(TxnKind, i64)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_query_binds_only_the_filters_given_and_caps_the_limit() {
        let (sql, values) = events_query(&EventFilter::default());
        assert!(sql.ends_with("FROM partner_events ORDER BY id DESC LIMIT $1"), "{sql}");
        assert_eq!(values, [Value::from(100)]);
        let filter = EventFilter {
            partner: Some(RegistrationId::new(1001)),
            txn: Some((TxnKind::Bbps, 7)),
            limit: 5_000,
            ..EventFilter::default()
        };
        let (sql, values) = events_query(&filter);
        assert!(
            sql.ends_with("WHERE partner_id = $1 AND kind = $2 AND txn_id = $3 ORDER BY id DESC LIMIT $4"),
            "{sql}"
        );
        let expected = [Value::from(1001), Value::from("bbps"), Value::from(7), Value::from(1_000)];
        assert_eq!(values, expected);
    }
}
