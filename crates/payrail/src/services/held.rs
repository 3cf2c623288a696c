//! Held work: transactions waiting for an operator, and what an operator
//! does with one. A transfer is held when it is `on_hold` (the poller's
//! schedule ran out, the upstream asked for a review, or an operator held
//! it); a bill payment when its poll job was given up while it was still
//! pending (bill payments have no hold state).
//!
//! Every action goes through the existing machinery: the state machine of
//! the store's transitions (`change_locked`, under the record's lock, only
//! if the record is still in the state it was held in) and
//! `note_history` for a resume, which changes no state but starts the
//! polling again. Each is refused ([`HeldError::NotHeld`]) on a
//! transaction that is not held.

use crate::domain::bbps::BillChange;
use crate::domain::dmt::DmtChange;
use crate::domain::{
    BillStatus, ChangeSource, Clock, DmtStatus, HistoryEntry, Paise, RegistrationId, Timestamp, TxnKind,
};
use crate::observe::Metrics;
use crate::services::search::search_page;
use crate::store::search::{SearchFilter, StatusFilter};
use crate::store::transactions::HeldResolution;
use crate::store::{ChangeError, ChangeNote, HistoryNote, Store, StoreError};

/// One held transaction.
#[derive(Debug, Clone)]
pub struct Held {
    /// Which kind.
    pub kind: TxnKind,
    /// Its ackno or txnid.
    pub id: i64,
    /// The partner's reference.
    pub reference: String,
    /// The owning partner.
    pub partner: RegistrationId,
    /// The amount.
    pub amount: Paise,
    /// Its state's name (`on_hold`, `pending`).
    pub status: &'static str,
    /// Since when it is held: the hold's history row (a transfer), or the
    /// payment's latest history row (a bill payment).
    pub since: Timestamp,
    /// Why: the hold's reason in the history, or the poller's giving up.
    pub reason: String,
    /// Who held it (the history row's source), or `poller`.
    pub source: String,
    /// How many times the poller asked the upstream, if it followed it.
    pub polls: Option<u32>,
}

/// What an operator may do with a held transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldAction {
    /// Ask the upstream again, from the top of the poll schedule.
    Resume,
    /// Paid: a transfer with the bank's UTR, a bill payment with the biller's reference if known.
    ResolveSuccess {
        /// The transfer's UTR (required for a transfer).
        utr: Option<String>,
        /// The biller's reference (bill payments).
        operator_ref: Option<String>,
    },
    /// Failed: a transfer goes to the refund path of failed transfers
    /// (`RefundOtp`, `ClaimRefund`); a wallet-paid bill payment is paid back at once.
    ResolveFailed,
}

impl HeldAction {
    /// The action's name in the audit log.
    pub fn audit_name(&self) -> &'static str {
        match self {
            HeldAction::Resume => "held.resume",
            HeldAction::ResolveSuccess { .. } => "held.resolve_success",
            HeldAction::ResolveFailed => "held.resolve_failed",
        }
    }
}

/// Why an action was not taken. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum HeldError {
    /// No such transaction.
    #[error("no {0} transaction {1}")]
    NotFound(&'static str, i64),
    /// The transaction is not held.
    #[error("{0} {1} is not held (it is {2}): only a held transaction can be resumed or resolved")]
    NotHeld(&'static str, i64, String),
    /// The state machine refused the change (the transaction moved meanwhile).
    #[error("{0}")]
    Refused(String),
    /// A store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ChangeError> for HeldError {
    fn from(error: ChangeError) -> Self {
        match error {
            ChangeError::NotFound => HeldError::Refused("no such transaction".into()),
            ChangeError::Forbidden(e) => HeldError::Refused(e.to_string()),
            ChangeError::Store(e) => HeldError::Store(e),
        }
    }
}

/// The newest history row that put the record in `state`, if any.
fn hold_row<'a>(history: &'a [HistoryEntry], state: &str) -> Option<&'a HistoryEntry> {
    history.iter().rev().find(|h| h.to_status == state)
}

/// Every held transaction, oldest hold first.
pub async fn list(store: &dyn Store) -> Result<Vec<Held>, StoreError> {
    let mut held = Vec::new();
    let filter = SearchFilter {
        kind: Some(TxnKind::Dmt),
        status: Some(StatusFilter { dmt: vec![DmtStatus::OnHold], bills: Vec::new() }),
        ..SearchFilter::default()
    };
    let mut cursor = None;
    loop {
        let page = search_page(store, &filter, cursor, 500).await?;
        for row in &page.rows {
            let id = row.cursor().id;
            if let Some(found) = held_transfer(store, id).await? {
                held.push(found);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    for job in store.held_polls().await?.into_iter().filter(|j| j.kind == TxnKind::Bbps) {
        if let Some(found) = held_bill(store, job.txn_id).await? {
            held.push(found);
        }
    }
    held.sort_by_key(|h| (h.since, h.id));
    Ok(held)
}

/// The transfer `ackno` if it is held.
async fn held_transfer(store: &dyn Store, ackno: i64) -> Result<Option<Held>, StoreError> {
    let Some((t, history)) = store.dmt_with_history(ackno).await? else { return Ok(None) };
    if t.status != DmtStatus::OnHold {
        return Ok(None);
    }
    let row = hold_row(&history, DmtStatus::OnHold.name());
    let polls = store.poll_job(TxnKind::Dmt, ackno).await?.map(|j| j.attempts);
    Ok(Some(Held {
        kind: TxnKind::Dmt,
        id: ackno,
        reference: t.reference.as_str().to_owned(),
        partner: t.partner,
        amount: t.amount,
        status: t.status.name(),
        since: row.map(|r| r.at).unwrap_or(t.created_at),
        reason: row.and_then(|r| r.reason.clone()).unwrap_or_else(|| "on hold (no reason recorded)".into()),
        source: row.map(|r| r.source.clone()).unwrap_or_default(),
        polls,
    }))
}

/// The bill payment `txnid` if it is held: pending, its poll job given up.
async fn held_bill(store: &dyn Store, txnid: i64) -> Result<Option<Held>, StoreError> {
    let Some((p, history)) = store.bill_with_history(txnid).await? else { return Ok(None) };
    let Some(job) = store.poll_job(TxnKind::Bbps, txnid).await? else { return Ok(None) };
    if p.status != BillStatus::Pending || job.due_at.unix() != 0 {
        return Ok(None);
    }
    let last = history.last();
    Ok(Some(Held {
        kind: TxnKind::Bbps,
        id: txnid,
        reference: p.reference.as_str().to_owned(),
        partner: p.partner,
        amount: p.amount,
        status: p.status.name(),
        since: last.map(|r| r.at).unwrap_or(p.created_at),
        reason: format!("no final answer from the upstream after {} polls", job.attempts),
        source: ChangeSource::Poller.as_str().to_owned(),
        polls: Some(job.attempts),
    }))
}

/// The held transaction `kind` `id`, or why not.
pub async fn find(store: &dyn Store, kind: TxnKind, id: i64) -> Result<Held, HeldError> {
    let found = match kind {
        TxnKind::Dmt => held_transfer(store, id).await?,
        TxnKind::Bbps => held_bill(store, id).await?,
    };
    if let Some(held) = found {
        return Ok(held);
    }
    let state = match kind {
        TxnKind::Dmt => store.dmt_with_history(id).await?.map(|(t, _)| t.status.name().to_owned()),
        TxnKind::Bbps => store.bill_with_history(id).await?.map(|(p, _)| p.status.name().to_owned()),
    };
    match state {
        None => Err(HeldError::NotFound(kind.as_str(), id)),
        Some(state) => Err(HeldError::NotHeld(kind.as_str(), id, state)),
    }
}

/// Takes `action` on the held transaction `kind` `id` as `source`, for
/// `reason` (recorded in its history); refused if it is not held. A
/// resolution is counted in `metrics` once it commits.
#[tracing::instrument(name = "act_on_held", skip_all, fields(kind = kind.as_str(), id, %source))]
pub async fn act(
    store: &dyn Store,
    clock: &dyn Clock,
    metrics: &Metrics,
    (kind, id): (TxnKind, i64),
    action: &HeldAction,
    source: ChangeSource,
    reason: &str,
) -> Result<Held, HeldError> {
    let held = find(store, kind, id).await?;
    let now = clock.now();
    match (action, kind) {
        (HeldAction::Resume, _) => {
            let note = ChangeNote { source, reason: Some(format!("resumed: {reason}")), at: now };
            store.note_history(HistoryNote { kind, id, status: held.status, note, recheck_at: Some(now) }).await?;
        }
        (action, kind) => {
            let note = ChangeNote { source: source.clone(), reason: Some(reason.to_owned()), at: now };
            let (to, resolution) = match (action, kind) {
                (HeldAction::ResolveSuccess { utr, .. }, TxnKind::Dmt) => {
                    (DmtStatus::Success.name(), HeldResolution::Dmt(DmtChange::Success { utr: utr.clone() }))
                }
                (HeldAction::ResolveSuccess { operator_ref, .. }, TxnKind::Bbps) => (
                    BillStatus::Success.name(),
                    HeldResolution::Bill(BillChange::Success { operator_ref: operator_ref.clone() }),
                ),
                (_, TxnKind::Dmt) => (DmtStatus::Failed.name(), HeldResolution::Dmt(DmtChange::Fail)),
                // Failed and paid back in one database transaction, as the poller does.
                (_, TxnKind::Bbps) => (
                    BillStatus::Refunded.name(),
                    HeldResolution::FailAndRefundBill {
                        refund: ChangeNote { source, reason: Some("refunded: failed by an operator".into()), at: now },
                    },
                ),
            };
            store.resolve_held(id, held.status, resolution, note).await?;
            // A bill payment's debit is its amount.
            metrics.changed(kind.as_str(), Some(held.status), to, || held.amount);
        }
    }
    tracing::info!(from = held.status, action = action.audit_name(), "held transaction acted on");
    Ok(held)
}
