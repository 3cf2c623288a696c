//! Creating transactions and moving them through their states, for the
//! operator API, imports and the demo. Every change is recorded in the
//! status history by the store, in the same database transaction.

use std::sync::Arc;

use super::fees;
use super::upstream::sync::Followed;
use crate::domain::fee_plan::FeePlanVersion;
use crate::domain::{
    BillPayment, BillStatus, ChangeSource, Clock, DmtStatus, DmtTransfer, Paise, ReferenceId, RegistrationId, Timestamp,
};
use crate::observe::Metrics;
use crate::store::{ChangeError, ChangeNote, InsertError, Store, TransactionStore};

/// A DMT transfer to be created; what is left out comes from the fee plan or now.
#[derive(Debug, Clone)]
pub struct NewDmt {
    /// A fixed ackno (fixtures), or `None` for the next one.
    pub ackno: Option<i64>,
    /// The owning partner.
    pub partner: RegistrationId,
    /// The partner's reference.
    pub reference: ReferenceId,
    /// The amount.
    pub amount: Paise,
    /// The beneficiary account.
    pub account: String,
    /// Starting state.
    pub status: DmtStatus,
    /// The bank's reference.
    pub utr: Option<String>,
    /// The customer charge, else the plan's.
    pub customer_charge: Option<Paise>,
    /// The provider share, else the plan's.
    pub provider_share: Option<Paise>,
    /// When it was made, else now.
    pub created_at: Option<Timestamp>,
    /// The refund id.
    pub refund_txn_id: Option<String>,
    /// When it was refunded.
    pub refunded_at: Option<Timestamp>,
}

impl NewDmt {
    /// A transfer in process with everything else defaulted.
    pub fn in_process(partner: RegistrationId, reference: ReferenceId, amount: Paise, account: String) -> Self {
        NewDmt {
            ackno: None,
            partner,
            reference,
            amount,
            account,
            status: DmtStatus::InProcess,
            utr: None,
            customer_charge: None,
            provider_share: None,
            created_at: None,
            refund_txn_id: None,
            refunded_at: None,
        }
    }

    /// The record to store, with its charges worked out by the default plan
    /// (fixtures and the demo, whose charges are the seed's).
    pub fn into_transfer(self, now: Timestamp) -> DmtTransfer {
        self.priced_by(&[], now)
    }

    /// The record to store, priced by the partner's plan (one of its
    /// `versions`) in force at its date: what it was made at, else `now`.
    pub fn priced_by(self, versions: &[FeePlanVersion], now: Timestamp) -> DmtTransfer {
        let created_at = self.created_at.unwrap_or(now);
        DmtTransfer {
            ackno: self.ackno.unwrap_or(0),
            partner: self.partner,
            reference: self.reference,
            amount: self.amount,
            account: self.account,
            utr: self.utr,
            status: self.status,
            charges: fees::dmt_charges(versions, self.amount, self.customer_charge, self.provider_share, created_at),
            created_at,
            refund_txn_id: self.refund_txn_id,
            refunded_at: self.refunded_at,
            upstream_ackno: None,
        }
    }
}

/// A bill payment to be created.
#[derive(Debug, Clone)]
pub struct NewBill {
    /// A fixed txnid (fixtures), or `None` for the next one.
    pub txnid: Option<i64>,
    /// The owning partner.
    pub partner: RegistrationId,
    /// The partner's reference.
    pub reference: ReferenceId,
    /// The biller.
    pub operator_name: String,
    /// The customer's account with the biller.
    pub ca_number: String,
    /// The amount.
    pub amount: Paise,
    /// Extra biller fields.
    pub extra: [Option<String>; 3],
    /// The commission, else the plan's.
    pub commission: Option<Paise>,
    /// Starting state.
    pub status: BillStatus,
    /// The biller's reference.
    pub operator_ref: Option<String>,
    /// When it was made, else now.
    pub created_at: Option<Timestamp>,
    /// The refund id.
    pub refund_txn_id: Option<String>,
    /// When it was refunded.
    pub refunded_at: Option<Timestamp>,
}

impl NewBill {
    /// The record to store, with its commission worked out.
    pub fn into_payment(self, now: Timestamp) -> BillPayment {
        let created_at = self.created_at.unwrap_or(now);
        let (commission, tds) = fees::bill_commission(self.amount, self.commission, created_at);
        let [ad1, ad2, ad3] = self.extra;
        BillPayment {
            txnid: self.txnid.unwrap_or(0),
            partner: self.partner,
            reference: self.reference,
            operator_name: self.operator_name,
            ca_number: self.ca_number,
            amount: self.amount,
            ad1,
            ad2,
            ad3,
            commission,
            tds,
            status: self.status,
            operator_ref: self.operator_ref,
            created_at,
            refund_txn_id: self.refund_txn_id,
            refunded_at: self.refunded_at,
        }
    }
}

fn no_progress() -> Arc<dyn Fn(u64) + Send + Sync> {
    Arc::new(|_| {})
}

fn note(clock: &dyn Clock, source: ChangeSource, reason: Option<String>) -> ChangeNote {
    ChangeNote { source, reason, at: clock.now() }
}

/// Creates one transfer, priced by its partner's plan; `source` goes into
/// its first history row.
pub async fn create_dmt(
    store: &dyn Store,
    clock: &dyn Clock,
    new: NewDmt,
    source: ChangeSource,
) -> Result<DmtTransfer, InsertError> {
    let versions = store.fee_plans(new.partner).await?;
    let mut transfer = new.priced_by(&versions, clock.now());
    let ids = store.insert_dmt_batch(vec![transfer.clone()], note(clock, source, None), no_progress()).await?;
    transfer.ackno = ids.first().copied().unwrap_or_default();
    Ok(transfer)
}

/// Creates one bill payment.
pub async fn create_bill(
    store: &dyn TransactionStore,
    clock: &dyn Clock,
    new: NewBill,
    source: ChangeSource,
) -> Result<BillPayment, InsertError> {
    let mut payment = new.into_payment(clock.now());
    let ids = store.insert_bill_batch(vec![payment.clone()], note(clock, source, None), no_progress()).await?;
    payment.txnid = ids.first().copied().unwrap_or_default();
    Ok(payment)
}

/// Moves a transfer or a bill payment as an operator asked: the store
/// refuses what the state machine forbids. Failing a bill payment here does
/// not pay it back; the poller finishes that.
pub async fn change<R: Followed>(
    store: &dyn Store,
    clock: &dyn Clock,
    metrics: &Metrics,
    id: i64,
    change: R::Change,
    source: ChangeSource,
    reason: Option<String>,
) -> Result<R, ChangeError> {
    let moved = R::change_as_told(store, id, change, note(clock, source.clone(), reason)).await?;
    tracing::info!(kind = R::KIND.as_str(), id, to = moved.state_name(), %source, "transaction changed by an operator");
    // The state machine allows no change to the same state: this one moved it.
    metrics.changed(R::KIND.as_str(), None, moved.state_name(), || moved.wallet_debit());
    Ok(moved)
}
