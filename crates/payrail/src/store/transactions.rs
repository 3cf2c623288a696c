//! DMT transfers and bill payments: status lookups, imports, state changes with their history rows and refunds, and the creation of transactions paid from the wallet.

use super::*;

/// DMT transfers and bill payments: status lookups, imports, state changes with their history rows and refunds, and the creation of transactions paid from the wallet.
#[async_trait]
pub trait TransactionStore: Send + Sync + 'static {
    /// The whole DMT status lookup in one round trip: the partner and, if it
    /// has one, its transfer with this reference. `None`: no such partner.
    async fn lookup_dmt(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> Result<Option<(Partner, Option<DmtTransfer>)>, StoreError>;
    /// The transfer with this ackno and its history, oldest first.
    async fn dmt_with_history(&self, ackno: i64) -> Result<Option<(DmtTransfer, Vec<HistoryEntry>)>, StoreError>;
    /// Inserts transfers all together or not at all. `ackno` 0 asks for a new
    /// one. `progress` is called with the number of rows written so far.
    async fn insert_dmt_batch(
        &self,
        rows: Vec<DmtTransfer>,
        note: ChangeNote,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Vec<i64>, InsertError>;
    /// Applies a state change with its history row, atomically. A `Refund`
    /// with an empty `refund_txn_id` gets a new refund id from the store.
    /// A `Refund` of a transfer that was paid from the wallet (it has a
    /// debit journal) also writes [`Journal::refund_of`] that debit and
    /// credits the wallet, in the same transaction: at most once, since a
    /// refunded record cannot be refunded again and a transaction has at
    /// most one journal per purpose. A change that decides the transfer
    /// (`domain::upstream::dmt_needs_polling` turns false) also removes its
    /// poll job, held or not, in the same transaction.
    async fn change_dmt(&self, ackno: i64, change: DmtChange, note: ChangeNote) -> Result<DmtTransfer, ChangeError>;
    /// As [`Store::lookup_dmt`], for bill payments.
    async fn lookup_bill(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> Result<Option<(Partner, Option<BillPayment>)>, StoreError>;
    /// A DMT status lookup that also records the caller's token `reqid` in
    /// the same round trip where the engine can (see [`lookup`]); by
    /// default [`Store::lookup_dmt`] alone, recording nothing.
    async fn lookup_dmt_checked(
        &self,
        partner: RegistrationId,
        reference: &str,
        _precheck: lookup::Precheck<'_>,
    ) -> Result<Option<lookup::StatusLookup<DmtTransfer>>, StoreError> {
        Ok(self.lookup_dmt(partner, reference).await?.map(lookup::StatusLookup::unrecorded))
    }
    /// As [`Store::lookup_dmt_checked`], for bill payments.
    async fn lookup_bill_checked(
        &self,
        partner: RegistrationId,
        reference: &str,
        _precheck: lookup::Precheck<'_>,
    ) -> Result<Option<lookup::StatusLookup<BillPayment>>, StoreError> {
        Ok(self.lookup_bill(partner, reference).await?.map(lookup::StatusLookup::unrecorded))
    }
    /// The bill payment with this txnid and its history, oldest first.
    async fn bill_with_history(&self, txnid: i64) -> Result<Option<(BillPayment, Vec<HistoryEntry>)>, StoreError>;
    /// As [`Store::insert_dmt_batch`], for bill payments (`txnid` 0 asks for a new one).
    async fn insert_bill_batch(
        &self,
        rows: Vec<BillPayment>,
        note: ChangeNote,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Vec<i64>, InsertError>;
    /// As [`Store::change_dmt`], for bill payments (decided:
    /// `domain::upstream::bill_needs_polling` turns false).
    async fn change_bill(&self, txnid: i64, change: BillChange, note: ChangeNote) -> Result<BillPayment, ChangeError>;
    /// Fails a pending or paid bill payment (history row `note`) and refunds
    /// it (history row `refund`, a new refund id, and the refund journal if
    /// it was paid from the wallet) in ONE database transaction, so that no
    /// crash can leave a wallet-paid payment failed and not refunded. A
    /// payment already failed (by an operator, or by an older payrail) is
    /// only refunded. `Forbidden` (nothing written) for a refunded one.
    async fn fail_bill(&self, txnid: i64, note: ChangeNote, refund: ChangeNote) -> Result<BillPayment, ChangeError>;
    /// How many transfers and bill payments the store holds.
    async fn counts(&self) -> Result<(i64, i64), StoreError>;
    /// In one database transaction: takes [`Journal::dmt_debit`] of the
    /// transfer from the wallet (refusing `InsufficientFunds`), checks that
    /// the remitter's non-refunded transfers on the route's pipe since
    /// `limit.since` plus this one stay within `limit.limit` (else
    /// `MonthlyLimit`), inserts the transfer (new ackno; `Duplicate` if the
    /// reference exists), its route, its first history row and the journal.
    /// Concurrent calls for one partner are serialised on its wallet.
    async fn create_dmt_debited(
        &self,
        transfer: DmtTransfer,
        route: DmtRoute,
        limit: MonthlyLimit,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<DmtTransfer>, DebitError>;
    /// The route of a transfer made through the DMT V1 API.
    async fn dmt_route(&self, ackno: i64) -> Result<Option<DmtRoute>, StoreError>;
    /// As [`Store::create_dmt_debited`] for a bill payment
    /// ([`Journal::bill_debit`]; no limit).
    async fn create_bill_debited(
        &self,
        payment: BillPayment,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<BillPayment>, DebitError>;

    // processes share the table: a claim leases due jobs to one owner until
}
