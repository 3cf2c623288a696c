//! A state change of a stored transaction, written once for both kinds and
//! both engines: lock, refund id, apply, pay back, save, history, event, end
//! of polling, over the engine's [`ChangeSteps`].

use super::*;

/// The steps of a state change that each engine takes inside its own
/// database transaction; [`change`] puts them in order. SQLite's steps do
/// their work when first polled and never wait.
pub(crate) trait ChangeSteps {
    /// The record, locked against concurrent changes until the transaction ends.
    async fn lock<T: TxnTable>(&self, id: i64) -> StoreResult<Option<T>>;
    /// A new refund id for the record.
    async fn new_refund_id(&self, kind: TxnKind, id: i64, at: Timestamp) -> StoreResult<String>;
    /// Pays a refunded record's debit back, if the wallet paid for it: the
    /// refund journal and the wallet credit.
    async fn pay_back(&self, kind: TxnKind, id: i64, at: Timestamp) -> StoreResult<()>;
    /// Writes back what the change altered ([`TxnTable::UPDATE`]).
    async fn save<T: TxnTable>(&self, record: &T, at: Timestamp) -> StoreResult<()>;
    /// Records the change of `record` from the state named `from` in the
    /// status history.
    async fn add_history<T: TxnTable>(&self, record: &T, from: &str, note: &ChangeNote) -> StoreResult<()>;
    /// Appends an operator's change to the audit log.
    async fn add_audit(&self, entry: &crate::domain::operator::NewAuditEntry) -> StoreResult<()>;
    /// Writes the partner's event of the change of `record` made at `at`, if
    /// the partner has a callback URL (SQLite builds the payload only then).
    async fn add_event<T: TxnTable>(&self, record: &T, at: Timestamp) -> StoreResult<()>;
    /// Removes the record's poll job, held or not.
    async fn end_poll(&self, kind: TxnKind, id: i64) -> StoreResult<()>;
    /// The reason of the record's newest history row, if it has one.
    async fn last_reason(&self, kind: TxnKind, id: i64) -> StoreResult<Option<String>>;
}

/// [`TransactionStore::change_dmt`] and [`TransactionStore::change_bill`]
/// inside the engine's transaction: locks the record, then [`change_locked`].
pub(crate) async fn change<T: TxnTable>(
    steps: &impl ChangeSteps,
    id: i64,
    change: T::Change,
    note: &ChangeNote,
) -> Result<T, ChangeError> {
    let record = steps.lock::<T>(id).await?.ok_or(ChangeError::NotFound)?;
    change_locked(steps, record, change, note).await
}

/// A change of a locked record: a new refund id if the change asks for one,
/// the state machine, the pay-back of a wallet-paid refund, the row, its
/// history row, an operator's change's audit entry (the record before and
/// after), the partner's event, and the end of the poll job once the record
/// is decided. The caller commits.
pub(crate) async fn change_locked<T: TxnTable>(
    steps: &impl ChangeSteps,
    mut record: T,
    mut change: T::Change,
    note: &ChangeNote,
) -> Result<T, ChangeError> {
    let (kind, id) = (T::KIND, record.id());
    if let Some(missing) = T::missing_refund_id(&mut change) {
        *missing = Some(steps.new_refund_id(kind, id, note.at).await?);
    }
    let audited = note.source.audit_actor().map(|actor| (actor, record.audit_view()));
    let from = record.status_name();
    // A transfer held for review is an operator's to decide: an upstream
    // answer that raced the hold (read before it, applied after) is refused.
    if from == crate::domain::DmtStatus::OnHold.name() && note.source.is_upstream() {
        let reason = steps.last_reason(kind, id).await?;
        if reason.is_some_and(|r| r.starts_with(crate::domain::upstream::REVIEW_PREFIX)) {
            return Err(ChangeError::Forbidden(crate::domain::ForbiddenTransition {
                from: from.into(),
                to: "anything the upstream says (held for review)".into(),
            }));
        }
    }
    record.apply(&change, note.at)?;
    if record.is_refunded() {
        steps.pay_back(kind, id, note.at).await?;
    }
    steps.save(&record, note.at).await?;
    steps.add_history(&record, from, note).await?;
    if let Some((actor, before)) = audited {
        let action = format!("{}.transition", kind.as_str());
        let target = format!("{}:{id}", kind.as_str());
        let entry = crate::domain::operator::NewAuditEntry {
            at: note.at,
            actor: actor.to_owned(),
            action,
            target,
            before: Some(before.to_string()),
            after: Some(record.audit_view().to_string()),
        };
        steps.add_audit(&entry).await?;
    }
    steps.add_event(&record, note.at).await?;
    if !record.needs_polling() {
        steps.end_poll(kind, id).await?;
    }
    Ok(record)
}

/// [`TransactionStore::fail_bill`] inside the engine's transaction: fails
/// the payment unless it is failed already, then refunds it.
pub(crate) async fn fail_and_refund(
    steps: &impl ChangeSteps,
    txnid: i64,
    note: &ChangeNote,
    refund: &ChangeNote,
) -> Result<BillPayment, ChangeError> {
    let mut bill: BillPayment = steps.lock(txnid).await?.ok_or(ChangeError::NotFound)?;
    if bill.status != BillStatus::Failed {
        bill = change_locked(steps, bill, BillChange::Fail, note).await?;
    }
    change_locked(steps, bill, BillChange::Refund { refund_txn_id: None }, refund).await
}

/// What resolving a held transaction does ([`TransactionStore::resolve_held`]).
#[derive(Debug, Clone)]
pub enum HeldResolution {
    /// A transfer's change.
    Dmt(DmtChange),
    /// A bill payment's change.
    Bill(BillChange),
    /// A bill payment failed and paid back (history row `refund` for the refund).
    FailAndRefundBill {
        /// The refund's history row.
        refund: ChangeNote,
    },
}

/// The record's state is still `from`, or `Forbidden`.
fn still_in(record: &impl TxnTable, from: &str) -> Result<(), ChangeError> {
    if record.status_name() == from {
        return Ok(());
    }
    Err(ChangeError::Forbidden(crate::domain::ForbiddenTransition {
        from: record.status_name().into(),
        to: format!("a resolution of a transaction held as {from} (it moved meanwhile)"),
    }))
}

/// [`TransactionStore::resolve_held`] inside the engine's transaction.
pub(crate) async fn resolve_held(
    steps: &impl ChangeSteps,
    id: i64,
    from: &str,
    resolution: HeldResolution,
    note: &ChangeNote,
) -> Result<(), ChangeError> {
    match resolution {
        HeldResolution::Dmt(change) => {
            let transfer: DmtTransfer = steps.lock(id).await?.ok_or(ChangeError::NotFound)?;
            still_in(&transfer, from)?;
            change_locked(steps, transfer, change, note).await?;
        }
        HeldResolution::Bill(change) => {
            let bill: BillPayment = steps.lock(id).await?.ok_or(ChangeError::NotFound)?;
            still_in(&bill, from)?;
            change_locked(steps, bill, change, note).await?;
        }
        HeldResolution::FailAndRefundBill { refund } => {
            let bill: BillPayment = steps.lock(id).await?.ok_or(ChangeError::NotFound)?;
            still_in(&bill, from)?;
            let bill = change_locked(steps, bill, BillChange::Fail, note).await?;
            change_locked(steps, bill, BillChange::Refund { refund_txn_id: None }, &refund).await?;
        }
    }
    Ok(())
}
