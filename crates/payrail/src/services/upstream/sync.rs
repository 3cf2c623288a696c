//! Keeping transactions in step with the upstream.
//!
//! Every route by which the upstream's word reaches payrail ends here: the
//! answer to a submission, a status lookup that asks first ([`Upstream::refresh_dmt`],
//! at most [`SyncSettings::status_budget`]), the background poller
//! ([`Upstream::poll`]) and the upstream's callbacks ([`Upstream::accept_callback`]).
//! Each maps the answer onto a change with `domain::upstream` and applies it
//! through the store, where the state machine has the last word: a stale or
//! repeated answer changes nothing, and an unknown one never decides a state.
//! An answer that does not come (timeout, garbage) also changes nothing; the
//! poller asks again on its schedule and, when the schedule runs out, puts an
//! undecided transfer on hold for an operator.

use std::sync::Arc;
use std::time::Duration;

use super::provider::{BillOrder, CallbackError, Provider, ProviderError, TransferOrder, UpstreamReport};
use crate::domain::bbps::BillChange;
use crate::domain::dmt::DmtChange;
use crate::domain::event::{PollJob, PollNext};
use crate::domain::upstream::{self, Backoff, BillUpstream, DmtUpstream, UpstreamRef};
use crate::domain::{BillPayment, BillStatus, Clock, DmtTransfer, Timestamp, TxnKind};
use crate::services::flights::{Flights, Seat};
use crate::store::{ChangeError, ChangeNote, Store, StoreError};

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

/// The upstream provider and how payrail follows it.
pub struct Upstream {
    /// Who moves the money.
    pub provider: Arc<dyn Provider>,
    /// How.
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
    /// The store failed.
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
        let ackno = order.transfer.ackno;
        match self.provider.submit_transfer(&order).await {
            Ok(report) => apply_dmt_logged(store, &*self.clock, order.transfer, &report, "provider").await,
            Err(e) => {
                tracing::warn!(ackno, error = %e, "transfer submitted without a readable answer; the poller will ask");
                order.transfer
            }
        }
    }

    /// Hands a debited bill payment over and applies the answer.
    pub async fn submit_bill(&self, store: &dyn Store, order: BillOrder) -> BillPayment {
        let txnid = order.payment.txnid;
        match self.provider.submit_bill(&order).await {
            Ok(report) => apply_bill_logged(store, &*self.clock, order.payment, &report, "provider").await,
            Err(e) => {
                tracing::warn!(txnid, error = %e, "bill submitted without a readable answer; the poller will ask");
                order.payment
            }
        }
    }

    /// The freshest state of a transfer for a status lookup: the upstream is
    /// asked first while the transfer is undecided, within the status
    /// budget; without an answer, the stored state. Concurrent lookups of
    /// one transfer share one query (and its budget).
    pub async fn refresh_dmt(&self, store: &dyn Store, transfer: DmtTransfer) -> DmtTransfer {
        if !self.provider.settles() || !upstream::dmt_needs_sync(&transfer) {
            return transfer;
        }
        match self.status_flights.board((TxnKind::Dmt, transfer.ackno)) {
            Seat::Follower(flight) => match flight.result(self.settings.status_budget).await {
                Some(Synced::Dmt(fresh)) => fresh,
                _ => transfer,
            },
            Seat::Leader(lead) => {
                let fresh = self.ask_dmt(store, transfer).await;
                lead.land(Synced::Dmt(fresh.clone()));
                fresh
            }
        }
    }

    /// Asks the upstream about a transfer payrail follows and applies the answer.
    async fn ask_dmt(&self, store: &dyn Store, transfer: DmtTransfer) -> DmtTransfer {
        if !self.followed(store, TxnKind::Dmt, transfer.ackno).await {
            return transfer;
        }
        let reference = self.upstream_ref(TxnKind::Dmt, transfer.ackno);
        let asked = self.provider.dmt_status(&reference, &transfer);
        match answer(tokio::time::timeout(self.settings.status_budget, asked).await) {
            Ok(report) => apply_dmt_logged(store, &*self.clock, transfer, &report, "status-sync").await,
            Err(e) => {
                tracing::debug!(ackno = transfer.ackno, error = %e, "status lookup answered from the store");
                transfer
            }
        }
    }

    /// As [`Upstream::refresh_dmt`], for bill payments.
    pub async fn refresh_bill(&self, store: &dyn Store, payment: BillPayment) -> BillPayment {
        if !self.provider.settles() || !upstream::bill_needs_sync(&payment) {
            return payment;
        }
        match self.status_flights.board((TxnKind::Bbps, payment.txnid)) {
            Seat::Follower(flight) => match flight.result(self.settings.status_budget).await {
                Some(Synced::Bill(fresh)) => fresh,
                _ => payment,
            },
            Seat::Leader(lead) => {
                let fresh = self.ask_bill(store, payment).await;
                lead.land(Synced::Bill(fresh.clone()));
                fresh
            }
        }
    }

    /// As [`Upstream::ask_dmt`], for bill payments.
    async fn ask_bill(&self, store: &dyn Store, payment: BillPayment) -> BillPayment {
        if !self.followed(store, TxnKind::Bbps, payment.txnid).await {
            return payment;
        }
        let reference = self.upstream_ref(TxnKind::Bbps, payment.txnid);
        let asked = self.provider.bill_status(&reference, &payment);
        match answer(tokio::time::timeout(self.settings.status_budget, asked).await) {
            Ok(report) => apply_bill_logged(store, &*self.clock, payment, &report, "status-sync").await,
            Err(e) => {
                tracing::debug!(txnid = payment.txnid, error = %e, "status lookup answered from the store");
                payment
            }
        }
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
            TxnKind::Dmt => self.poll_dmt(store, job).await,
            TxnKind::Bbps => self.poll_bill(store, job).await,
        }
    }

    async fn poll_dmt(&self, store: &dyn Store, job: &PollJob) -> Result<PollNext, StoreError> {
        let Some((transfer, _)) = store.dmt_with_history(job.txn_id).await? else { return Ok(PollNext::Done) };
        if !upstream::dmt_needs_polling(&transfer) {
            return Ok(PollNext::Done);
        }
        let reference = self.upstream_ref(TxnKind::Dmt, transfer.ackno);
        let asked = self.provider.dmt_status(&reference, &transfer);
        let transfer = match answer(tokio::time::timeout(self.settings.poll_timeout, asked).await) {
            Ok(report) => apply_dmt(store, &*self.clock, transfer, &report, "poller").await?,
            Err(e) => {
                tracing::info!(ackno = transfer.ackno, attempt = job.attempts + 1, error = %e, "poll unanswered");
                transfer
            }
        };
        if !upstream::dmt_needs_polling(&transfer) {
            return Ok(PollNext::Done);
        }
        if let Some(next) = self.next_poll(job) {
            return Ok(next);
        }
        if upstream::dmt_holds_when_exhausted(&transfer) {
            let reason = format!("no final answer from the upstream after {} polls", job.attempts + 1);
            let note = ChangeNote { source: "poller".into(), reason: Some(reason), at: self.clock.now() };
            match store.change_dmt(transfer.ackno, DmtChange::Hold, note).await {
                Ok(_) | Err(ChangeError::Forbidden(_)) | Err(ChangeError::NotFound) => {}
                Err(ChangeError::Store(e)) => return Err(e),
            }
            return Ok(PollNext::Held);
        }
        Ok(if transfer.status == crate::domain::DmtStatus::OnHold { PollNext::Held } else { PollNext::Done })
    }

    async fn poll_bill(&self, store: &dyn Store, job: &PollJob) -> Result<PollNext, StoreError> {
        let Some((payment, _)) = store.bill_with_history(job.txn_id).await? else { return Ok(PollNext::Done) };
        if !upstream::bill_needs_polling(&payment) {
            return Ok(PollNext::Done);
        }
        let payment = if payment.status == BillStatus::Failed {
            // Failed but not refunded (an operator failed it): finish the refund.
            refund_bill(store, &*self.clock, payment, "poller").await?
        } else {
            let reference = self.upstream_ref(TxnKind::Bbps, payment.txnid);
            let asked = self.provider.bill_status(&reference, &payment);
            match answer(tokio::time::timeout(self.settings.poll_timeout, asked).await) {
                Ok(report) => apply_bill(store, &*self.clock, payment, &report, "poller").await?,
                Err(e) => {
                    tracing::info!(txnid = payment.txnid, attempt = job.attempts + 1, error = %e, "poll unanswered");
                    payment
                }
            }
        };
        if !upstream::bill_needs_polling(&payment) {
            return Ok(PollNext::Done);
        }
        if let Some(next) = self.next_poll(job) {
            return Ok(next);
        }
        // BBPS has no on-hold state: a payment still pending stays pending,
        // and its held job lists it for review.
        Ok(if payment.status == BillStatus::Pending { PollNext::Held } else { PollNext::Done })
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
        self.apply_report(store, reference, &callback.report, "upstream-callback").await?.ok_or_else(unknown)
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
            if let Err(e) = self.apply_report(store, reference, &callback.report, "upstream-callback").await {
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
        source: &str,
    ) -> Result<Option<Synced>, StoreError> {
        Ok(match (reference.kind, report) {
            (TxnKind::Dmt, UpstreamReport::Dmt(report)) => match store.dmt_with_history(reference.id).await? {
                Some((transfer, _)) => {
                    Some(Synced::Dmt(apply_dmt(store, &*self.clock, transfer, report, source).await?))
                }
                None => None,
            },
            (TxnKind::Bbps, UpstreamReport::Bill(report)) => match store.bill_with_history(reference.id).await? {
                Some((payment, _)) => {
                    Some(Synced::Bill(apply_bill(store, &*self.clock, payment, report, source).await?))
                }
                None => None,
            },
            _ => None,
        })
    }
}

/// Flattens a timed-out call into one error.
fn answer<T>(result: Result<Result<T, ProviderError>, tokio::time::error::Elapsed>) -> Result<T, ProviderError> {
    result.unwrap_or(Err(ProviderError::Timeout))
}

/// How many times a change is retried when another writer moved the record
/// between the read and the write.
const RACE_RETRIES: usize = 3;

/// Applies the change `report` implies to `transfer`, re-reading it when a
/// concurrent writer got there first. Returns the record as it now stands.
pub async fn apply_dmt(
    store: &dyn Store,
    clock: &dyn Clock,
    mut transfer: DmtTransfer,
    report: &DmtUpstream,
    source: &str,
) -> Result<DmtTransfer, StoreError> {
    for _ in 0..RACE_RETRIES {
        let Some(change) = upstream::dmt_change_for(&transfer, report) else { return Ok(transfer) };
        let note = ChangeNote { source: source.into(), reason: Some(describe_dmt(report)), at: clock.now() };
        match store.change_dmt(transfer.ackno, change, note).await {
            Ok(moved) => return Ok(moved),
            Err(ChangeError::Forbidden(_)) => match store.dmt_with_history(transfer.ackno).await? {
                Some((current, _)) => transfer = current,
                None => return Ok(transfer),
            },
            Err(ChangeError::NotFound) => return Ok(transfer),
            Err(ChangeError::Store(e)) => return Err(e),
        }
    }
    Ok(transfer)
}

/// As [`apply_dmt`] for a bill payment. A failure is refunded to the wallet
/// at once (BBPS reverses failed payments), in the same database
/// transaction that records it ([`Store::fail_bill`]).
pub async fn apply_bill(
    store: &dyn Store,
    clock: &dyn Clock,
    mut payment: BillPayment,
    report: &BillUpstream,
    source: &str,
) -> Result<BillPayment, StoreError> {
    for _ in 0..RACE_RETRIES {
        let Some(change) = upstream::bill_change_for(&payment, report) else { break };
        let note = ChangeNote { source: source.into(), reason: Some(describe_bill(report)), at: clock.now() };
        let changed = match change {
            BillChange::Fail => store.fail_bill(payment.txnid, note.clone(), refund_note(source, note.at)).await,
            change => store.change_bill(payment.txnid, change, note).await,
        };
        match changed {
            Ok(moved) => return Ok(moved),
            Err(ChangeError::Forbidden(_)) => match store.bill_with_history(payment.txnid).await? {
                Some((current, _)) => payment = current,
                None => return Ok(payment),
            },
            Err(ChangeError::NotFound) => return Ok(payment),
            Err(ChangeError::Store(e)) => return Err(e),
        }
    }
    if upstream::bill_needs_refund(&payment) {
        payment = refund_bill(store, clock, payment, source).await?;
    }
    Ok(payment)
}

/// The history note of the refund that follows an upstream failure.
fn refund_note(source: &str, at: Timestamp) -> ChangeNote {
    ChangeNote { source: source.into(), reason: Some("failed upstream: reversed to the wallet".into()), at }
}

/// Refunds a bill payment left failed (by an operator, or by a payrail
/// older than [`Store::fail_bill`]): once, since the state machine and the
/// ledger's one-refund-per-transaction rule see to that.
async fn refund_bill(
    store: &dyn Store,
    clock: &dyn Clock,
    payment: BillPayment,
    source: &str,
) -> Result<BillPayment, StoreError> {
    let note = refund_note(source, clock.now());
    match store.fail_bill(payment.txnid, note.clone(), note).await {
        Ok(refunded) => Ok(refunded),
        Err(ChangeError::Forbidden(_)) | Err(ChangeError::NotFound) => {
            Ok(store.bill_with_history(payment.txnid).await?.map(|(p, _)| p).unwrap_or(payment))
        }
        Err(ChangeError::Store(e)) => Err(e),
    }
}

/// [`apply_dmt`] where a store failure is only logged: the answer is lost,
/// and the poller will ask again.
async fn apply_dmt_logged(
    store: &dyn Store,
    clock: &dyn Clock,
    transfer: DmtTransfer,
    report: &DmtUpstream,
    source: &str,
) -> DmtTransfer {
    let fallback = transfer.clone();
    apply_dmt(store, clock, transfer, report, source).await.unwrap_or_else(|e| {
        tracing::warn!(ackno = fallback.ackno, error = %e, "upstream answer not applied; the poller will ask again");
        fallback
    })
}

/// As [`apply_dmt_logged`], for bill payments.
async fn apply_bill_logged(
    store: &dyn Store,
    clock: &dyn Clock,
    payment: BillPayment,
    report: &BillUpstream,
    source: &str,
) -> BillPayment {
    let fallback = payment.clone();
    apply_bill(store, clock, payment, report, source).await.unwrap_or_else(|e| {
        tracing::warn!(txnid = fallback.txnid, error = %e, "upstream answer not applied; the poller will ask again");
        fallback
    })
}

fn describe_dmt(report: &DmtUpstream) -> String {
    match report {
        DmtUpstream::InProcess => "upstream: in process".into(),
        DmtUpstream::SentToBank => "upstream: sent to bank".into(),
        DmtUpstream::Success { utr: Some(utr) } => format!("upstream: success, UTR {utr}"),
        DmtUpstream::Success { utr: None } => "upstream: success, UTR to follow".into(),
        DmtUpstream::OnHold => "upstream: on hold".into(),
        DmtUpstream::Failed => "upstream: failed".into(),
        DmtUpstream::Unknown { detail } => format!("upstream: {detail}"),
    }
}

fn describe_bill(report: &BillUpstream) -> String {
    match report {
        BillUpstream::Pending => "upstream: pending".into(),
        BillUpstream::Success { operator_ref: Some(r) } => format!("upstream: success, operator reference {r}"),
        BillUpstream::Success { operator_ref: None } => "upstream: success".into(),
        BillUpstream::Failed => "upstream: failed".into(),
        BillUpstream::Unknown { detail } => format!("upstream: {detail}"),
    }
}
