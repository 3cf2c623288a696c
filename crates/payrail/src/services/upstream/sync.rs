//! Keeping transactions in step with the upstream.
//!
//! Every route by which the upstream's word reaches payrail ends here: the
//! answer to a submission, a status lookup that asks first ([`Upstream::refresh`],
//! at most [`SyncSettings::status_budget`]), the background poller
//! ([`Upstream::poll`]) and the upstream's callbacks ([`Upstream::accept_callback`]).
//! Each maps the answer onto a change with `domain::upstream` and applies it
//! through the store, where the state machine has the last word: a stale or
//! repeated answer changes nothing, and an unknown one never decides a state.
//! An answer that does not come (timeout, garbage) also changes nothing; the
//! poller asks again on its schedule and, when the schedule runs out, puts an
//! undecided transfer on hold for an operator.
//!
//! Transfers and bill payments go through the same code, generic over
//! [`Followed`] (how the store and the provider are asked about a kind) and
//! [`TxnRecord`](crate::domain::TxnRecord) (what an answer means for it). The one difference in
//! behaviour is the bill's: a failed bill payment goes back to the wallet at
//! once ([`Followed::refund`]).

mod followed;

use std::sync::Arc;
use std::time::Duration;

use super::health::UpstreamHealth;
use super::provider::{BillOrder, CallbackError, DmtQueried, Provider, ProviderError, TransferOrder, UpstreamReport};
use crate::domain::event::{PollJob, PollNext};

use crate::domain::upstream::{
    self, random_letters, Backoff, UpstreamRef, REF_NONCE_LEN, RETURN_CONFIRMED, RETURN_NOT_CONFIRMED, RETURN_REPORTED,
};
use crate::domain::{BillPayment, ChangeSource, Clock, DmtTransfer, Timestamp, TxnKind};
use crate::observe::provider::Metered;
use crate::observe::Metrics;
use crate::services::flights::{Flights, Seat};
use crate::store::{ChangeError, ChangeNote, HistoryNote, Store, StoreError};

pub use followed::Followed;

/// How long an upstream callback's token `reqid` is remembered: a token is
/// accepted up to 300 s either side of payrail's clock, so 600 s covers
/// every moment at which the same token could be presented again.
pub const CALLBACK_REPLAY_WINDOW_SECS: i64 = 600;

/// The longest wait before a bank return reported after success is asked
/// about again (the second query that may confirm it).
pub const RETURN_RECHECK_MAX: Duration = Duration::from_secs(10);

/// How payrail talks to its upstream.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Prefix of the references payrail gives the upstream (`PR` → `PRD128`).
    pub ref_prefix: String,
    /// When the poller asks again about a pending transaction; exhausted → hold.
    pub poll_schedule: Backoff,
    /// How long a status lookup waits for the upstream before answering from the store.
    pub status_budget: Duration,
    /// How long the poller waits for one status answer.
    pub poll_timeout: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            ref_prefix: "PR".into(),
            poll_schedule: Backoff::default_poll(),
            status_budget: Duration::from_millis(1500),
            poll_timeout: Duration::from_secs(10),
        }
    }
}

/// payrail's side of the upstream: the provider it hands transactions to,
/// and how it follows them up there.
pub struct Upstream {
    /// Speaks to the upstream.
    pub provider: Arc<dyn Provider>,
    /// References, schedules and time budgets.
    pub settings: SyncSettings,
    /// When it is: poll schedules, callback token windows, history stamps.
    pub clock: Arc<dyn Clock>,
    /// Status lookups asking the upstream right now, by transaction: a
    /// lookup of one already being asked about waits for that answer
    /// instead of asking again, so a flood of lookups costs one query.
    status_flights: Flights<(TxnKind, i64), Synced>,
    /// The provider's call counters and authentication circuit (a fresh,
    /// never-opened one for a provider that keeps none).
    health: Arc<UpstreamHealth>,
    /// The store's installation id, once read.
    installation: std::sync::OnceLock<String>,
    /// Where the server's metrics are counted.
    metrics: Arc<Metrics>,
}

/// Why a callback was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallbackRefusal {
    /// It did not verify or could not be read.
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// It names a transaction payrail does not have.
    #[error("unknown reference {0:?}")]
    UnknownReference(String),
    /// The callback could not be checked for a replay, or not applied.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The same callback (the same signed `param`) came before: nothing done again.
    #[error("the same callback came before")]
    Duplicate,
    /// The upstream's status query, which a callback triggers, did not
    /// answer: nothing changed, and the callback is not remembered, so
    /// that its retry is acted on.
    #[error("the upstream did not confirm the callback: {0}")]
    NotConfirmed(ProviderError),
}

/// The transaction a callback was about, after it was applied.
#[derive(Debug, Clone)]
pub enum Synced {
    /// A transfer.
    Dmt(DmtTransfer),
    /// A bill payment.
    Bill(BillPayment),
}

impl Upstream {
    /// Follows `provider` as `settings` say, reading the time from `clock`.
    pub fn new(provider: Arc<dyn Provider>, settings: SyncSettings, clock: Arc<dyn Clock>) -> Self {
        Self::metered(provider, settings, clock, Arc::new(Metrics::default()))
    }

    /// [`Upstream::new`], counting into `metrics` (shared with the rest of
    /// the server): its provider's calls, and the state changes it makes.
    pub fn metered(
        provider: Arc<dyn Provider>,
        settings: SyncSettings,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let health = provider.health().unwrap_or_default();
        let provider: Arc<dyn Provider> = Arc::new(Metered::new(provider, metrics.clone()));
        Upstream {
            metrics,
            provider,
            settings,
            clock,
            status_flights: Flights::default(),
            health,
            installation: std::sync::OnceLock::new(),
        }
    }

    /// The server's metrics (its provider's calls are counted there).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The upstream's call counters and circuit.
    pub fn health(&self) -> &UpstreamHealth {
        &self.health
    }

    /// Why nothing new may be submitted now: the upstream refused payrail's
    /// credentials and no operator has closed the circuit since. Checked
    /// before any debit.
    pub fn submissions_stopped(&self) -> Option<String> {
        self.health.circuit().map(|open| open.reason)
    }

    /// When the poller should first ask about a transaction made at `now`;
    /// `None` when the provider is not followed up.
    pub fn first_poll(&self, now: Timestamp) -> Option<Timestamp> {
        let delay = self.settings.poll_schedule.after(0)?;
        self.provider.settles().then(|| now.plus_secs(delay.as_secs() as i64))
    }

    /// The reference the upstream knows a transaction by: the one stored
    /// with it, or, for a transaction that has none yet (one about to be
    /// submitted), a fresh one, stored before it is used
    /// ([`UpstreamRef::new_tail`]). Whoever stores first wins: a
    /// submission and a poll racing on a new transaction use the same one.
    pub async fn upstream_ref(&self, store: &dyn Store, kind: TxnKind, id: i64) -> Result<String, StoreError> {
        let stored = store.upstream_ref_of(kind, id).await?;
        self.stored_or_new_ref(store, kind, id, stored).await
    }

    /// [`Self::upstream_ref`] given what is `stored` (as a debit returns it):
    /// with `None`, a fresh one is stored at once (one statement on
    /// PostgreSQL), answering the one stored first.
    pub async fn stored_or_new_ref(
        &self,
        store: &dyn Store,
        kind: TxnKind,
        id: i64,
        stored: Option<String>,
    ) -> Result<String, StoreError> {
        let tail = match stored {
            Some(tail) => tail,
            None => {
                let fresh = UpstreamRef { kind, id }.new_tail(&self.installation_id(store).await?);
                store.assign_upstream_ref(kind, id, &fresh).await?
            }
        };
        Ok(format!("{}{tail}", self.settings.ref_prefix))
    }

    /// A reference for a call that is sent once and never looked up again
    /// (a penny drop, `letter` `V`): `letter`, `id`, the installation id and
    /// a random part, as [`UpstreamRef::fresh_tail`]; not stored. If the
    /// installation id cannot be read, a longer random part stands in for it.
    pub async fn one_off_ref(&self, store: &dyn Store, letter: char, id: i64) -> String {
        let installation = match self.installation_id(store).await {
            Ok(installation) => installation,
            Err(e) => {
                tracing::warn!(error = %e, "installation id unreadable; a longer random reference instead");
                random_letters(6)
            }
        };
        format!("{}{letter}{id}{installation}{}", self.settings.ref_prefix, random_letters(REF_NONCE_LEN))
    }

    /// The transaction a reference the upstream sent names, if payrail made it.
    pub async fn find_by_ref(&self, store: &dyn Store, reference: &str) -> Result<Option<UpstreamRef>, StoreError> {
        let Some(tail) = reference.strip_prefix(&self.settings.ref_prefix) else { return Ok(None) };
        if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        Ok(store.txn_by_upstream_ref(tail).await?.map(|(kind, id)| UpstreamRef { kind, id }))
    }

    /// The store's installation id, read once.
    async fn installation_id(&self, store: &dyn Store) -> Result<String, StoreError> {
        if let Some(id) = self.installation.get() {
            return Ok(id.clone());
        }
        let id = store.installation_id().await?;
        Ok(self.installation.get_or_init(|| id).clone())
    }

    /// Hands a debited transfer over and applies the answer; an error leaves
    /// it as stored, for the poller.
    ///
    /// The upstream's `ackno` in the answer is written before the answer is
    /// applied: a crash between the two keeps the `ackno` and loses the
    /// answer (which the poller asks for again), as a crash before both
    /// loses both; a status query made for a refund carries it too
    /// ([`Upstream::query_transfer`]).
    #[tracing::instrument(skip_all, fields(
        ackno = order.transfer.ackno,
        reference = %order.transfer.reference,
        upstream_ref = %order.upstream_ref,
    ))]
    pub async fn submit_transfer(&self, store: &dyn Store, order: TransferOrder) -> DmtTransfer {
        let answer = self.provider.submit_transfer_acked(&order).await;
        let mut transfer = order.transfer;
        let answer = answer.map(|submitted| {
            if let Some(upstream_ackno) = submitted.upstream_ackno {
                transfer.upstream_ackno = Some(upstream_ackno);
            }
            submitted.report
        });
        if let Some(upstream_ackno) = transfer.upstream_ackno.clone() {
            keep_upstream_ackno(store, transfer.ackno, &upstream_ackno).await;
        }
        self.take_submission(store, transfer, answer).await
    }

    /// Asks the upstream about a transfer for its refund (within the poll
    /// timeout), keeping the `ackno` the answer carries if payrail had none.
    /// The answer is not applied: a refund only reads it.
    pub async fn query_transfer(&self, store: &dyn Store, transfer: &DmtTransfer) -> Result<DmtQueried, ProviderError> {
        let reference = self
            .upstream_ref(store, TxnKind::Dmt, transfer.ackno)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("the upstream reference could not be read: {e}")))?;
        let asked = self.provider.query_transfer(&reference, transfer);
        let queried =
            tokio::time::timeout(self.settings.poll_timeout, asked).await.unwrap_or(Err(ProviderError::Timeout))?;
        if let (None, Some(upstream_ackno)) = (&transfer.upstream_ackno, &queried.upstream_ackno) {
            keep_upstream_ackno(store, transfer.ackno, upstream_ackno).await;
        }
        Ok(queried)
    }

    /// As [`Upstream::submit_transfer`], for a bill payment.
    #[tracing::instrument(skip_all, fields(
        txnid = order.payment.txnid,
        reference = %order.payment.reference,
        upstream_ref = %order.upstream_ref,
    ))]
    pub async fn submit_bill(&self, store: &dyn Store, order: BillOrder) -> BillPayment {
        let answer = self.provider.submit_bill(&order).await;
        self.take_submission(store, order.payment, answer).await
    }

    /// The freshest state of a transaction for a status lookup: the upstream
    /// is asked first while the transaction is undecided, within the status
    /// budget; without an answer, the stored state. Concurrent lookups of
    /// one transaction share one query (and its budget).
    pub async fn refresh<R: Followed>(&self, store: &dyn Store, record: R) -> R {
        if !self.provider.settles() || !record.needs_sync() {
            return record;
        }
        match self.status_flights.board((R::KIND, record.id())) {
            Seat::Follower(flight) => {
                flight.result(self.settings.status_budget).await.and_then(R::from_synced).unwrap_or(record)
            }
            Seat::Leader(lead) => {
                let fresh = self.look_up(store, record).await;
                lead.land(fresh.clone().into_synced());
                fresh
            }
        }
    }

    /// Asks the upstream about a transaction payrail follows, within the
    /// status budget, and applies the answer.
    #[tracing::instrument(skip_all, fields(kind = R::KIND.as_str(), id = record.id()))]
    async fn look_up<R: Followed>(&self, store: &dyn Store, record: R) -> R {
        if !self.followed(store, R::KIND, record.id()).await {
            return record;
        }
        match held_for_review(store, &record).await {
            Ok(false) => {}
            Ok(true) => return record,
            Err(e) => {
                tracing::warn!(kind = R::KIND.as_str(), id = record.id(), error = %e, "history unreadable");
                return record;
            }
        }
        match self.ask(store, &record, self.settings.status_budget).await {
            Ok(report) => self.apply_logged(store, record, &report, ChangeSource::StatusSync).await,
            Err(e) => {
                let (kind, id) = (R::KIND.as_str(), record.id());
                tracing::debug!(kind, id, error = %e, "status lookup answered from the store");
                record
            }
        }
    }

    /// The upstream's status of `record`, or why there is none within `budget`.
    async fn ask<R: Followed>(
        &self,
        store: &dyn Store,
        record: &R,
        budget: Duration,
    ) -> Result<R::Upstream, ProviderError> {
        let reference = self
            .upstream_ref(store, R::KIND, record.id())
            .await
            .map_err(|e| ProviderError::Unavailable(format!("the upstream reference could not be read: {e}")))?;
        let asked = R::ask_keeping(&*self.provider, store, &reference, record);
        tokio::time::timeout(budget, asked).await.unwrap_or(Err(ProviderError::Timeout))
    }

    /// Whether payrail follows the transaction up (it has a poll job): only
    /// those were handed to the upstream; imported and operator-made
    /// records are answered from the store alone.
    async fn followed(&self, store: &dyn Store, kind: TxnKind, id: i64) -> bool {
        match store.poll_job(kind, id).await {
            Ok(job) => job.is_some(),
            Err(e) => {
                tracing::warn!(kind = kind.as_str(), id, error = %e, "poll job unreadable; answering from the store");
                false
            }
        }
    }

    /// One poll of a leased job: asks the upstream, applies the answer, and
    /// says what becomes of the job.
    #[tracing::instrument(skip_all, fields(kind = job.kind.as_str(), attempt = job.attempts + 1, ackno = tracing::field::Empty, txnid = tracing::field::Empty))]
    pub async fn poll(&self, store: &dyn Store, job: &PollJob) -> Result<PollNext, StoreError> {
        record_txn(job.kind, job.txn_id);
        match job.kind {
            TxnKind::Dmt => self.poll_one::<DmtTransfer>(store, job).await,
            TxnKind::Bbps => self.poll_one::<BillPayment>(store, job).await,
        }
    }

    /// [`Upstream::poll`] for one kind. A record failed but not paid back
    /// (an operator failed a bill payment) is refunded instead of asked
    /// about; one still undecided when the schedule runs out is put on hold
    /// where its kind has that state.
    async fn poll_one<R: Followed>(&self, store: &dyn Store, job: &PollJob) -> Result<PollNext, StoreError> {
        let Some(record) = R::load(store, job.txn_id).await? else { return Ok(PollNext::Done) };
        if record.may_be_returned() {
            return self.recheck_return(store, job, record).await;
        }
        if !record.needs_polling() {
            return Ok(PollNext::Done);
        }
        if held_for_review(store, &record).await? {
            return Ok(PollNext::Held);
        }
        let record = if record.needs_refund() {
            R::refund(store, &*self.clock, record, ChangeSource::Poller).await?
        } else {
            match self.ask(store, &record, self.settings.poll_timeout).await {
                Ok(report) => self.apply(store, record, &report, ChangeSource::Poller).await?,
                Err(e) => {
                    let (kind, id, attempt) = (R::KIND.as_str(), record.id(), job.attempts + 1);
                    tracing::info!(kind, id, attempt, error = %e, "poll unanswered");
                    record
                }
            }
        };
        if record.may_be_returned() && return_pending::<R>(store, record.id()).await? {
            return Ok(self.recheck_soon());
        }
        if !record.needs_polling() {
            return Ok(PollNext::Done);
        }
        if held_for_review(store, &record).await? {
            return Ok(PollNext::Held);
        }
        if let Some(next) = self.next_poll(job) {
            return Ok(next);
        }
        if let Some(hold) = record.hold_when_exhausted() {
            let reason = format!("no final answer from the upstream after {} polls", job.attempts + 1);
            let note = ChangeNote { source: ChangeSource::Poller, reason: Some(reason), at: self.clock.now() };
            match R::change(store, record.id(), hold, note).await {
                Ok(held) => {
                    let (kind, id, to) = (R::KIND.as_str(), held.id(), held.state_name());
                    tracing::warn!(kind, id, to, polls = job.attempts + 1, "held: no final answer from the upstream");
                }
                Err(ChangeError::Forbidden(_)) | Err(ChangeError::NotFound) => {}
                Err(ChangeError::Store(e)) => return Err(e),
            }
            return Ok(PollNext::Held);
        }
        Ok(if record.awaits_review() { PollNext::Held } else { PollNext::Done })
    }

    /// A poll of a paid transaction: one whose success a bank return
    /// contradicted. The answer confirms the return (and the transaction
    /// fails) or not; while the return stays unconfirmed (no answer, or the
    /// last word is still a return), it is asked again soon.
    async fn recheck_return<R: Followed>(
        &self,
        store: &dyn Store,
        job: &PollJob,
        record: R,
    ) -> Result<PollNext, StoreError> {
        let (kind, id) = (R::KIND.as_str(), record.id());
        if !return_pending::<R>(store, id).await? && !record.needs_polling() {
            return Ok(PollNext::Done);
        }
        let record = match self.ask(store, &record, self.settings.poll_timeout).await {
            Ok(report) => self.apply(store, record, &report, ChangeSource::Poller).await?,
            Err(e) => {
                tracing::info!(kind, id, attempt = job.attempts + 1, error = %e, "return re-query unanswered");
                return Ok(self.next_poll(job).unwrap_or(PollNext::Done));
            }
        };
        if record.may_be_returned() && return_pending::<R>(store, id).await? {
            return Ok(self.recheck_soon());
        }
        if record.needs_polling() {
            return Ok(self.next_poll(job).unwrap_or(PollNext::Done));
        }
        Ok(PollNext::Done)
    }

    /// When a reported bank return is asked about again: as soon as a new
    /// transaction's first poll, and within [`RETURN_RECHECK_MAX`].
    fn recheck_at(&self) -> Timestamp {
        let delay = self.settings.poll_schedule.after(0).unwrap_or(RETURN_RECHECK_MAX).min(RETURN_RECHECK_MAX);
        self.clock.now().plus_secs(delay.as_secs() as i64)
    }

    fn recheck_soon(&self) -> PollNext {
        PollNext::Again(self.recheck_at())
    }

    /// [`apply`], with the rules of a success that an answer contradicts (a
    /// bank return): the first contradicting answer is recorded in the
    /// history and a prompt re-query scheduled; only a query that says so
    /// again, next in a row, reverses the success (the transfer fails and
    /// takes the refund path). Callbacks and submissions never confirm a
    /// return: they only report one. A success said again leaves a reported
    /// return unconfirmed.
    async fn apply<R: Followed>(
        &self,
        store: &dyn Store,
        record: R,
        report: &R::Upstream,
        source: ChangeSource,
    ) -> Result<R, StoreError> {
        let before = record.clone();
        let after = self.apply_report_to(store, record, report, source).await?;
        // Counted once the change is committed (the store returned it).
        self.metrics.changed(R::KIND.as_str(), Some(before.state_name()), after.state_name(), || after.wallet_debit());
        Ok(after)
    }

    /// [`Upstream::apply`] before it is counted.
    async fn apply_report_to<R: Followed>(
        &self,
        store: &dyn Store,
        record: R,
        report: &R::Upstream,
        source: ChangeSource,
    ) -> Result<R, StoreError> {
        let (kind, id, now) = (R::KIND, record.id(), self.clock.now());
        if let Some(reversal) = record.reversal(report) {
            let pending = return_pending::<R>(store, id).await?;
            let by_query = matches!(source, ChangeSource::Poller | ChangeSource::StatusSync);
            if pending && by_query {
                let note = ChangeNote { source: source.clone(), reason: Some(RETURN_CONFIRMED.into()), at: now };
                return match R::change(store, id, reversal, note).await {
                    Ok(moved) => Ok(moved),
                    Err(ChangeError::Forbidden(_)) | Err(ChangeError::NotFound) => {
                        Ok(R::load(store, id).await?.unwrap_or(record))
                    }
                    Err(ChangeError::Store(e)) => Err(e),
                };
            }
            if pending {
                store.schedule_poll(kind, id, self.recheck_at()).await?;
            } else {
                let note = ChangeNote { source: source.clone(), reason: Some(RETURN_REPORTED.into()), at: now };
                let recheck_at = Some(self.recheck_at());
                store.note_history(HistoryNote { kind, id, status: record.state_name(), note, recheck_at }).await?;
            }
            tracing::warn!(kind = kind.as_str(), id, "bank return reported after success; re-querying to confirm");
            return Ok(record);
        }
        if record.reaffirmed_by(report) && return_pending::<R>(store, id).await? {
            let note = ChangeNote { source: source.clone(), reason: Some(RETURN_NOT_CONFIRMED.into()), at: now };
            store.note_history(HistoryNote { kind, id, status: record.state_name(), note, recheck_at: None }).await?;
        }
        if held_for_review(store, &record).await? {
            tracing::info!(kind = kind.as_str(), id, answer = %R::describe(report), "held for review; answer not applied");
            return Ok(record);
        }
        apply(store, &*self.clock, record, report, source).await
    }

    fn next_poll(&self, job: &PollJob) -> Option<PollNext> {
        let delay = self.settings.poll_schedule.after(job.attempts + 1)?;
        Some(PollNext::Again(self.clock.now().plus_secs(delay.as_secs() as i64)))
    }

    /// Verifies a status callback from the upstream and, as its trigger,
    /// asks the upstream for the transaction's status and applies that
    /// answer: what the callback itself says is never applied (it is logged
    /// beside what the query says). A callback that comes with a `Token`
    /// header whose `reqid` was seen in the last [`CALLBACK_REPLAY_WINDOW_SECS`]
    /// is a replay, refused before anything is done; the same signed `param`
    /// seen in that window is a duplicate, answered and otherwise ignored.
    #[tracing::instrument(skip_all, fields(upstream_ref = tracing::field::Empty, ackno = tracing::field::Empty, txnid = tracing::field::Empty))]
    pub async fn accept_callback(
        &self,
        store: &dyn Store,
        token: Option<&str>,
        body: &[u8],
    ) -> Result<Synced, CallbackRefusal> {
        let now = self.clock.now();
        let callback = self.provider.read_callback(token, body, now)?;
        let cutoff = Timestamp::from_unix(now.unix() - CALLBACK_REPLAY_WINDOW_SECS);
        if let Some(reqid) = &callback.reqid {
            if !store.remember_upstream_reqid(reqid, now, cutoff).await? {
                let why = format!("token reqid {reqid:?} already used");
                return Err(CallbackRefusal::Callback(CallbackError::Unauthenticated(why)));
            }
        }
        let unknown = || CallbackRefusal::UnknownReference(callback.upstream_ref.clone());
        tracing::Span::current().record("upstream_ref", callback.upstream_ref.as_str());
        let reference = self.find_by_ref(store, &callback.upstream_ref).await?.ok_or_else(unknown)?;
        record_txn(reference.kind, reference.id);
        if !store.remember_upstream_reqid(&callback.dedupe, now, cutoff).await? {
            return Err(CallbackRefusal::Duplicate);
        }
        let confirmed = match reference.kind {
            TxnKind::Dmt => self.confirm::<DmtTransfer>(store, reference.id, &callback.report).await,
            TxnKind::Bbps => self.confirm::<BillPayment>(store, reference.id, &callback.report).await,
        };
        match confirmed {
            Ok(Some(synced)) => Ok(synced),
            Ok(None) => Err(unknown()),
            Err(refusal) => {
                if let Err(e) = store.forget_upstream_reqid(&callback.dedupe).await {
                    tracing::warn!(error = %e, "an unconfirmed callback stays remembered; its retry is a duplicate");
                }
                Err(refusal)
            }
        }
    }

    /// A callback's trigger: the upstream's status of record `id`, asked
    /// now and applied. `None` if the callback is about the other kind or
    /// payrail has no such record.
    async fn confirm<R: Followed>(
        &self,
        store: &dyn Store,
        id: i64,
        report: &UpstreamReport,
    ) -> Result<Option<Synced>, CallbackRefusal> {
        let Some(said) = R::report_of(report) else { return Ok(None) };
        let Some(record) = R::load(store, id).await? else { return Ok(None) };
        if held_for_review(store, &record).await? {
            // Nothing the upstream says moves it until an operator decides: not asked.
            tracing::info!(kind = R::KIND.as_str(), id, "callback about a transaction held for review; not applied");
            return Ok(Some(record.into_synced()));
        }
        let answer =
            self.ask(store, &record, self.settings.poll_timeout).await.map_err(CallbackRefusal::NotConfirmed)?;
        let (kind, said, asked) = (R::KIND.as_str(), R::describe(said), R::describe(&answer));
        if said == asked {
            tracing::info!(kind, id, %asked, "upstream callback confirmed by a status query");
        } else {
            tracing::warn!(kind, id, callback = %said, query = %asked, "upstream callback and status query differ; the query is applied");
        }
        let applied = self.apply(store, record, &answer, ChangeSource::UpstreamCallback).await?;
        Ok(Some(applied.into_synced()))
    }

    /// Applies the callbacks an in-process provider made on its own (the
    /// sandbox's bank returns) as if they had come over HTTP. A callback
    /// that fails to apply is logged and dropped, as an unanswered HTTP
    /// callback would be retried by a real upstream (not by the sandbox).
    pub async fn take_provider_callbacks(&self, store: &dyn Store, now: Timestamp) {
        for callback in self.provider.due_callbacks(now) {
            let reference = match self.find_by_ref(store, &callback.upstream_ref).await {
                Ok(Some(reference)) => reference,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(upstream_ref = %callback.upstream_ref, error = %e, "provider callback not applied");
                    continue;
                }
            };
            let source = ChangeSource::UpstreamCallback;
            if let Err(e) = self.apply_report(store, reference, &callback.report, source).await {
                tracing::warn!(upstream_ref = %callback.upstream_ref, error = %e, "provider callback not applied");
            }
        }
    }

    /// Applies what the upstream says about the transaction `reference`
    /// names; `None` if payrail has no such transaction, or the report is
    /// about the other kind.
    #[tracing::instrument(skip_all, fields(kind = reference.kind.as_str(), source = %source, ackno = tracing::field::Empty, txnid = tracing::field::Empty))]
    pub async fn apply_report(
        &self,
        store: &dyn Store,
        reference: UpstreamRef,
        report: &UpstreamReport,
        source: ChangeSource,
    ) -> Result<Option<Synced>, StoreError> {
        record_txn(reference.kind, reference.id);
        match reference.kind {
            TxnKind::Dmt => self.apply_reported::<DmtTransfer>(store, reference.id, report, source).await,
            TxnKind::Bbps => self.apply_reported::<BillPayment>(store, reference.id, report, source).await,
        }
    }

    /// [`Upstream::apply`] for a report about the record `id` of kind `R`;
    /// `None` if the report is about the other kind or the store has no such record.
    async fn apply_reported<R: Followed>(
        &self,
        store: &dyn Store,
        id: i64,
        report: &UpstreamReport,
        source: ChangeSource,
    ) -> Result<Option<Synced>, StoreError> {
        let Some(report) = R::report_of(report) else { return Ok(None) };
        let Some(record) = R::load(store, id).await? else { return Ok(None) };
        Ok(Some(self.apply(store, record, report, source).await?.into_synced()))
    }

    /// [`Upstream::apply`] where a store failure is only logged: the answer
    /// is lost, and the poller will ask again.
    async fn apply_logged<R: Followed>(
        &self,
        store: &dyn Store,
        record: R,
        report: &R::Upstream,
        source: ChangeSource,
    ) -> R {
        let fallback = record.clone();
        self.apply(store, record, report, source).await.unwrap_or_else(|e| {
            let (kind, id) = (R::KIND.as_str(), fallback.id());
            tracing::warn!(kind, id, error = %e, "upstream answer not applied; the poller will ask again");
            fallback
        })
    }

    /// Applies the provider's answer to a submission; without a readable
    /// answer the record stays as stored, for the poller.
    async fn take_submission<R: Followed>(
        &self,
        store: &dyn Store,
        record: R,
        answer: Result<R::Upstream, ProviderError>,
    ) -> R {
        match answer {
            Ok(report) => self.apply_logged(store, record, &report, ChangeSource::Provider).await,
            Err(e) => {
                let (kind, id) = (R::KIND.as_str(), record.id());
                tracing::warn!(kind, id, error = %e, "submitted without a readable answer; the poller will ask");
                record
            }
        }
    }
}

/// How many times a change is retried when another writer moved the record
/// between the read and the write.
const RACE_RETRIES: usize = 3;

/// Applies the change `report` implies to `record`, re-reading it when a
/// concurrent writer got there first, then pays it back if it failed and
/// its kind is refunded at once ([`Followed::refund`]). Returns the record
/// as it now stands.
///
/// The loop ends, rather than returns, when no change is implied: a bill
/// payment an operator failed needs no change from an upstream "failed",
/// but still its refund (this is how bill payments always worked; transfers,
/// which returned from inside the loop, have no refund step, so for them the
/// two are the same).
pub async fn apply<R: Followed>(
    store: &dyn Store,
    clock: &dyn Clock,
    mut record: R,
    report: &R::Upstream,
    source: ChangeSource,
) -> Result<R, StoreError> {
    for _ in 0..RACE_RETRIES {
        let Some(change) = record.change_for(report) else { break };
        let note = ChangeNote { source: source.clone(), reason: Some(R::describe(report)), at: clock.now() };
        match R::change(store, record.id(), change, note).await {
            Ok(moved) => {
                let (kind, id, from, to) = (R::KIND.as_str(), moved.id(), record.state_name(), moved.state_name());
                tracing::info!(kind, id, from, to, %source, answer = %R::describe(report), "transaction changed");
                return Ok(moved);
            }
            Err(ChangeError::Forbidden(_)) => match R::load(store, record.id()).await? {
                Some(current) => record = current,
                None => return Ok(record),
            },
            Err(ChangeError::NotFound) => return Ok(record),
            Err(ChangeError::Store(e)) => return Err(e),
        }
    }
    if record.needs_refund() {
        record = R::refund(store, clock, record, source).await?;
        tracing::info!(kind = R::KIND.as_str(), id = record.id(), to = record.state_name(), "paid back to the wallet");
    }
    Ok(record)
}

/// Whether the record is held for review (its history ends with a hold for
/// review): answers about it change nothing until an operator decides.
/// Only a held record can be: the others are answered without reading the history.
async fn held_for_review<R: Followed>(store: &dyn Store, record: &R) -> Result<bool, StoreError> {
    if !record.may_be_held_for_review() {
        return Ok(false);
    }
    let found = R::with_history_in(store, record.id()).await?;
    Ok(found.is_some_and(|(_, history)| upstream::held_for_review(&history)))
}

/// Whether the record's history ends with a bank return still to be confirmed.
async fn return_pending<R: Followed>(store: &dyn Store, id: i64) -> Result<bool, StoreError> {
    Ok(R::with_history_in(store, id).await?.is_some_and(|(_, history)| upstream::return_pending(&history)))
}

/// Keeps the upstream's `ackno` of a transfer (the first one stays); a
/// store failure is only logged: a later status query carries it again.
async fn keep_upstream_ackno(store: &dyn Store, ackno: i64, upstream_ackno: &str) {
    match store.set_upstream_ackno(ackno, upstream_ackno).await {
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(ackno, upstream_ackno, error = %e, "upstream ackno not kept; a query will bring it again")
        }
    }
}

/// The history note of the refund that follows an upstream failure.
fn refund_note(source: ChangeSource, at: Timestamp) -> ChangeNote {
    ChangeNote { source, reason: Some("failed upstream: reversed to the wallet".into()), at }
}

/// Records a transaction's id in the current span as `ackno` (a transfer)
/// or `txnid` (a bill payment), so its lines are found by either.
fn record_txn(kind: TxnKind, id: i64) {
    let field = match kind {
        TxnKind::Dmt => "ackno",
        TxnKind::Bbps => "txnid",
    };
    tracing::Span::current().record(field, id);
}
