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

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::provider::{BillOrder, CallbackError, Provider, ProviderError, TransferOrder, UpstreamReport};
use crate::domain::bbps::BillChange;
use crate::domain::event::{PollJob, PollNext};
use crate::domain::upstream::{Backoff, BillUpstream, DmtUpstream, UpstreamRef};
use crate::domain::{BillPayment, ChangeSource, Clock, DmtTransfer, Timestamp, TxnKind};
use crate::services::flights::{Flights, Seat};
use crate::store::transactions::StoredKind;
use crate::store::{ChangeError, ChangeNote, Store, StoreError, TransactionStore};

/// How long an upstream callback's token `reqid` is remembered: a token is
/// accepted up to 300 s either side of payrail's clock, so 600 s covers
/// every moment at which the same token could be presented again.
pub const CALLBACK_REPLAY_WINDOW_SECS: i64 = 600;

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
        Upstream { provider, settings, clock, status_flights: Flights::default() }
    }

    /// When the poller should first ask about a transaction made at `now`;
    /// `None` when the provider is not followed up.
    pub fn first_poll(&self, now: Timestamp) -> Option<Timestamp> {
        let delay = self.settings.poll_schedule.after(0)?;
        self.provider.settles().then(|| now.plus_secs(delay.as_secs() as i64))
    }

    /// The reference the upstream knows a transaction by.
    pub fn upstream_ref(&self, kind: TxnKind, id: i64) -> String {
        UpstreamRef { kind, id }.render(&self.settings.ref_prefix)
    }

    /// Hands a debited transfer over and applies the answer; an error leaves
    /// it as stored, for the poller.
    pub async fn submit_transfer(&self, store: &dyn Store, order: TransferOrder) -> DmtTransfer {
        let answer = self.provider.submit_transfer(&order).await;
        take_submission(store, &*self.clock, order.transfer, answer).await
    }

    /// As [`Upstream::submit_transfer`], for a bill payment.
    pub async fn submit_bill(&self, store: &dyn Store, order: BillOrder) -> BillPayment {
        let answer = self.provider.submit_bill(&order).await;
        take_submission(store, &*self.clock, order.payment, answer).await
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
    async fn look_up<R: Followed>(&self, store: &dyn Store, record: R) -> R {
        if !self.followed(store, R::KIND, record.id()).await {
            return record;
        }
        match self.ask(&record, self.settings.status_budget).await {
            Ok(report) => apply_logged(store, &*self.clock, record, &report, ChangeSource::StatusSync).await,
            Err(e) => {
                let (kind, id) = (R::KIND.as_str(), record.id());
                tracing::debug!(kind, id, error = %e, "status lookup answered from the store");
                record
            }
        }
    }

    /// The upstream's status of `record`, or why there is none within `budget`.
    async fn ask<R: Followed>(&self, record: &R, budget: Duration) -> Result<R::Upstream, ProviderError> {
        let reference = self.upstream_ref(R::KIND, record.id());
        let asked = R::ask(&*self.provider, &reference, record);
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
    pub async fn poll(&self, store: &dyn Store, job: &PollJob) -> Result<PollNext, StoreError> {
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
        if !record.needs_polling() {
            return Ok(PollNext::Done);
        }
        let record = if record.needs_refund() {
            R::refund(store, &*self.clock, record, ChangeSource::Poller).await?
        } else {
            match self.ask(&record, self.settings.poll_timeout).await {
                Ok(report) => apply(store, &*self.clock, record, &report, ChangeSource::Poller).await?,
                Err(e) => {
                    let (kind, id, attempt) = (R::KIND.as_str(), record.id(), job.attempts + 1);
                    tracing::info!(kind, id, attempt, error = %e, "poll unanswered");
                    record
                }
            }
        };
        if !record.needs_polling() {
            return Ok(PollNext::Done);
        }
        if let Some(next) = self.next_poll(job) {
            return Ok(next);
        }
        if let Some(hold) = record.hold_when_exhausted() {
            let reason = format!("no final answer from the upstream after {} polls", job.attempts + 1);
            let note = ChangeNote { source: ChangeSource::Poller, reason: Some(reason), at: self.clock.now() };
            match R::change(store, record.id(), hold, note).await {
                Ok(_) | Err(ChangeError::Forbidden(_)) | Err(ChangeError::NotFound) => {}
                Err(ChangeError::Store(e)) => return Err(e),
            }
            return Ok(PollNext::Held);
        }
        Ok(if record.awaits_review() { PollNext::Held } else { PollNext::Done })
    }

    fn next_poll(&self, job: &PollJob) -> Option<PollNext> {
        let delay = self.settings.poll_schedule.after(job.attempts + 1)?;
        Some(PollNext::Again(self.clock.now().plus_secs(delay.as_secs() as i64)))
    }

    /// Verifies a status callback from the upstream and applies it. A
    /// callback whose token `reqid` was seen in the last
    /// [`CALLBACK_REPLAY_WINDOW_SECS`] is a replay, refused before anything
    /// is applied; a new callback repeating a state, or a stale one, is
    /// accepted and changes nothing.
    pub async fn accept_callback(
        &self,
        store: &dyn Store,
        token: Option<&str>,
        body: &[u8],
    ) -> Result<Synced, CallbackRefusal> {
        let now = self.clock.now();
        let callback = self.provider.read_callback(token, body, now)?;
        let cutoff = Timestamp::from_unix(now.unix() - CALLBACK_REPLAY_WINDOW_SECS);
        if !store.remember_upstream_reqid(&callback.reqid, now, cutoff).await? {
            let why = format!("token reqid {:?} already used", callback.reqid);
            return Err(CallbackRefusal::Callback(CallbackError::Unauthenticated(why)));
        }
        let unknown = || CallbackRefusal::UnknownReference(callback.upstream_ref.clone());
        let reference = UpstreamRef::parse(&callback.upstream_ref, &self.settings.ref_prefix).ok_or_else(unknown)?;
        let source = ChangeSource::UpstreamCallback;
        self.apply_report(store, reference, &callback.report, source).await?.ok_or_else(unknown)
    }

    /// Applies the callbacks an in-process provider made on its own (the
    /// sandbox's bank returns) as if they had come over HTTP. A callback
    /// that fails to apply is logged and dropped, as an unanswered HTTP
    /// callback would be retried by a real upstream (not by the sandbox).
    pub async fn take_provider_callbacks(&self, store: &dyn Store, now: Timestamp) {
        for callback in self.provider.due_callbacks(now) {
            let Some(reference) = UpstreamRef::parse(&callback.upstream_ref, &self.settings.ref_prefix) else {
                continue;
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
    pub async fn apply_report(
        &self,
        store: &dyn Store,
        reference: UpstreamRef,
        report: &UpstreamReport,
        source: ChangeSource,
    ) -> Result<Option<Synced>, StoreError> {
        match reference.kind {
            TxnKind::Dmt => apply_reported::<DmtTransfer>(store, &*self.clock, reference.id, report, source).await,
            TxnKind::Bbps => apply_reported::<BillPayment>(store, &*self.clock, reference.id, report, source).await,
        }
    }
}

/// What the sync needs of a record kind beyond [`TxnRecord`](crate::domain::TxnRecord): how the store
/// and the provider are asked about one. Implemented by [`DmtTransfer`] and
/// [`BillPayment`].
#[async_trait]
pub trait Followed: StoredKind {
    /// The record with this id, if the store has it.
    async fn load(store: &dyn TransactionStore, id: i64) -> Result<Option<Self>, StoreError> {
        Ok(Self::with_history_in(store, id).await?.map(|(record, _)| record))
    }

    /// The provider's current answer about `record`, known upstream as `reference`.
    async fn ask(provider: &dyn Provider, reference: &str, record: &Self) -> Result<Self::Upstream, ProviderError>;

    /// Makes `change` as told, with its history row (an operator's change:
    /// failing a bill payment does not pay it back).
    async fn change_as_told(
        store: &dyn TransactionStore,
        id: i64,
        change: Self::Change,
        note: ChangeNote,
    ) -> Result<Self, ChangeError> {
        Self::change_in(store, id, change, note).await
    }

    /// Makes `change`, the upstream's word, with its history row; a change
    /// that fails a bill payment also pays it back, in the same database
    /// transaction ([`TransactionStore::fail_bill`]).
    async fn change(store: &dyn Store, id: i64, change: Self::Change, note: ChangeNote) -> Result<Self, ChangeError> {
        Self::change_as_told(store, id, change, note).await
    }

    /// Pays a record that [`TxnRecord::needs_refund`](crate::domain::TxnRecord::needs_refund) back to the wallet,
    /// and returns it as it then stands. Only a bill payment can need it;
    /// for other kinds the record is returned as it is.
    async fn refund(
        _store: &dyn Store,
        _clock: &dyn Clock,
        record: Self,
        _source: ChangeSource,
    ) -> Result<Self, StoreError> {
        Ok(record)
    }

    /// The upstream's answer in a callback, if it is about this kind.
    fn report_of(report: &UpstreamReport) -> Option<&Self::Upstream>;

    /// Wrapped for a shared status lookup or a callback's answer.
    fn into_synced(self) -> Synced;

    /// Unwrapped again; `None` if it holds the other kind.
    fn from_synced(synced: Synced) -> Option<Self>;
}

#[async_trait]
impl Followed for DmtTransfer {
    async fn ask(provider: &dyn Provider, reference: &str, record: &Self) -> Result<DmtUpstream, ProviderError> {
        provider.dmt_status(reference, record).await
    }

    fn report_of(report: &UpstreamReport) -> Option<&DmtUpstream> {
        match report {
            UpstreamReport::Dmt(report) => Some(report),
            UpstreamReport::Bill(_) => None,
        }
    }

    fn into_synced(self) -> Synced {
        Synced::Dmt(self)
    }

    fn from_synced(synced: Synced) -> Option<Self> {
        match synced {
            Synced::Dmt(transfer) => Some(transfer),
            Synced::Bill(_) => None,
        }
    }
}

#[async_trait]
impl Followed for BillPayment {
    async fn ask(provider: &dyn Provider, reference: &str, record: &Self) -> Result<BillUpstream, ProviderError> {
        provider.bill_status(reference, record).await
    }

    async fn change(store: &dyn Store, id: i64, change: BillChange, note: ChangeNote) -> Result<Self, ChangeError> {
        match change {
            BillChange::Fail => {
                let refund = refund_note(note.source.clone(), note.at);
                store.fail_bill(id, note, refund).await
            }
            change => Self::change_as_told(store, id, change, note).await,
        }
    }

    /// Refunds a bill payment left failed (by an operator, or by a payrail
    /// older than [`TransactionStore::fail_bill`]): once, since the state machine and
    /// the ledger's one-refund-per-transaction rule see to that.
    async fn refund(
        store: &dyn Store,
        clock: &dyn Clock,
        payment: Self,
        source: ChangeSource,
    ) -> Result<Self, StoreError> {
        let note = refund_note(source, clock.now());
        match store.fail_bill(payment.txnid, note.clone(), note).await {
            Ok(refunded) => Ok(refunded),
            Err(ChangeError::Forbidden(_)) | Err(ChangeError::NotFound) => {
                Ok(Self::load(store, payment.txnid).await?.unwrap_or(payment))
            }
            Err(ChangeError::Store(e)) => Err(e),
        }
    }

    fn report_of(report: &UpstreamReport) -> Option<&BillUpstream> {
        match report {
            UpstreamReport::Bill(report) => Some(report),
            UpstreamReport::Dmt(_) => None,
        }
    }

    fn into_synced(self) -> Synced {
        Synced::Bill(self)
    }

    fn from_synced(synced: Synced) -> Option<Self> {
        match synced {
            Synced::Bill(payment) => Some(payment),
            Synced::Dmt(_) => None,
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
            Ok(moved) => return Ok(moved),
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
    }
    Ok(record)
}

/// [`apply`] for a report about the record `id` of kind `R`; `None` if the
/// report is about the other kind or the store has no such record.
async fn apply_reported<R: Followed>(
    store: &dyn Store,
    clock: &dyn Clock,
    id: i64,
    report: &UpstreamReport,
    source: ChangeSource,
) -> Result<Option<Synced>, StoreError> {
    let Some(report) = R::report_of(report) else { return Ok(None) };
    let Some(record) = R::load(store, id).await? else { return Ok(None) };
    Ok(Some(apply(store, clock, record, report, source).await?.into_synced()))
}

/// Applies the provider's answer to a submission; without a readable
/// answer the record stays as stored, for the poller.
async fn take_submission<R: Followed>(
    store: &dyn Store,
    clock: &dyn Clock,
    record: R,
    answer: Result<R::Upstream, ProviderError>,
) -> R {
    match answer {
        Ok(report) => apply_logged(store, clock, record, &report, ChangeSource::Provider).await,
        Err(e) => {
            let (kind, id) = (R::KIND.as_str(), record.id());
            tracing::warn!(kind, id, error = %e, "submitted without a readable answer; the poller will ask");
            record
        }
    }
}

/// [`apply`] where a store failure is only logged: the answer is lost, and
/// the poller will ask again.
async fn apply_logged<R: Followed>(
    store: &dyn Store,
    clock: &dyn Clock,
    record: R,
    report: &R::Upstream,
    source: ChangeSource,
) -> R {
    let fallback = record.clone();
    apply(store, clock, record, report, source).await.unwrap_or_else(|e| {
        let (kind, id) = (R::KIND.as_str(), fallback.id());
        tracing::warn!(kind, id, error = %e, "upstream answer not applied; the poller will ask again");
        fallback
    })
}

/// The history note of the refund that follows an upstream failure.
fn refund_note(source: ChangeSource, at: Timestamp) -> ChangeNote {
    ChangeNote { source, reason: Some("failed upstream: reversed to the wallet".into()), at }
}
