//! How the sync asks the store and the provider about each record kind:
//! [`Followed`], implemented by transfers and bill payments.

use async_trait::async_trait;

use super::{keep_upstream_ackno, refund_note, Synced};
use crate::domain::bbps::BillChange;
use crate::domain::ledger::Journal;
use crate::domain::upstream::{BillUpstream, DmtUpstream};
use crate::domain::{BillPayment, ChangeSource, Clock, DmtTransfer, Paise};
use crate::services::upstream::provider::{Provider, ProviderError, UpstreamReport};
use crate::store::transactions::StoredKind;
use crate::store::{ChangeError, ChangeNote, Store, StoreError, TransactionStore};

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

    /// [`Followed::ask`], keeping what else the answer tells of the record
    /// (a transfer's upstream `ackno`).
    async fn ask_keeping(
        provider: &dyn Provider,
        _store: &dyn Store,
        reference: &str,
        record: &Self,
    ) -> Result<Self::Upstream, ProviderError> {
        Self::ask(provider, reference, record).await
    }

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

    /// Its state's name, as history rows have it.
    fn state_name(&self) -> &'static str;

    /// What its debit took from the wallet (and a refund pays back).
    fn wallet_debit(&self) -> Paise;

    /// Whether it is in the state a hold for review leaves it in (only then
    /// is its history read to know whether it is held for review).
    fn may_be_held_for_review(&self) -> bool {
        false
    }

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

    /// Keeps the upstream's `ackno` a status answer carries, if payrail has none.
    async fn ask_keeping(
        provider: &dyn Provider,
        store: &dyn Store,
        reference: &str,
        record: &Self,
    ) -> Result<DmtUpstream, ProviderError> {
        let queried = provider.query_transfer(reference, record).await?;
        if let (None, Some(upstream_ackno)) = (&record.upstream_ackno, &queried.upstream_ackno) {
            keep_upstream_ackno(store, record.ackno, upstream_ackno).await;
        }
        Ok(queried.report)
    }

    fn state_name(&self) -> &'static str {
        self.status.name()
    }

    fn wallet_debit(&self) -> Paise {
        Paise::ZERO - Journal::dmt_debit(self, self.created_at).wallet_change()
    }

    fn may_be_held_for_review(&self) -> bool {
        self.status == crate::domain::DmtStatus::OnHold
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

    fn state_name(&self) -> &'static str {
        self.status.name()
    }

    fn wallet_debit(&self) -> Paise {
        Paise::ZERO - Journal::bill_debit(self, self.created_at).wallet_change()
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
