//! DMT transfers and bill payments: status lookups, imports, state changes
//! with their history rows and refunds, and the creation of transactions paid
//! from the wallet.
//!
//! The trait [`TransactionStore`] is what services ask for; its per-kind
//! half, [`RecordStore`] (lookups, imports, changes), is implemented for both
//! engines at once over `KindStore`, which each engine writes once for
//! both kinds, and code generic over the kind reaches it through
//! [`StoredKind`]. Below them, what both engines share: `TxnTable`, the two
//! record kinds as the store sees them (table, id column, column list,
//! decoder, stored values), the SQL both engines accept (`sql`), and the
//! state-change sequence (`change`), written once above the few steps each
//! engine takes (`ChangeSteps`).

use std::future::Future;
use std::pin::Pin;

use super::columns::{columns, BadState, StoredRow, Value};
use super::*;
use crate::domain::event;
use crate::domain::remitter::{Bank, TransferMode};
use crate::domain::{upstream, BillStatus, DmtCharges, DmtStatus, ReferenceId, TxnRecord};

/// Reports how many rows of a batch are written so far.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// A call to the store: the store's own boxed future, handed on as it is.
pub type StoreFuture<'a, T, E = StoreError> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'a>>;

/// Finding, importing and changing DMT transfers and bill payments: the
/// methods that come once per record kind. Both engines have them through
/// one implementation over `KindStore`, which each engine writes once for
/// both kinds; code generic over the kind reaches them through [`StoredKind`].
#[async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// The whole DMT status lookup in one round trip: the partner and, if it
    /// has one, its transfer with this reference. `None`: no such partner.
    async fn lookup_dmt(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> StoreResult<Option<(Partner, Option<DmtTransfer>)>>;
    /// A DMT status lookup that also records the caller's token `reqid` in
    /// the same round trip where the engine can (see [`lookup`]); SQLite
    /// records nothing.
    async fn lookup_dmt_checked(
        &self,
        partner: RegistrationId,
        reference: &str,
        precheck: lookup::Precheck<'_>,
    ) -> StoreResult<Option<lookup::StatusLookup<DmtTransfer>>>;
    /// The partner's transfers with any of `references`, in one round trip
    /// (see [`KindStore::by_references`]).
    async fn dmt_by_references(&self, partner: RegistrationId, references: &[String]) -> StoreResult<Vec<DmtTransfer>>;
    /// The transfer with this ackno and its history, oldest first.
    async fn dmt_with_history(&self, ackno: i64) -> StoreResult<Option<(DmtTransfer, Vec<HistoryEntry>)>>;
    /// Inserts transfers all together or not at all. `ackno` 0 asks for a new
    /// one. `progress` is called with the number of rows written so far.
    async fn insert_dmt_batch(
        &self,
        rows: Vec<DmtTransfer>,
        note: ChangeNote,
        progress: Progress,
    ) -> Result<Vec<i64>, InsertError>;
    /// Applies a state change with its history row, atomically. A `Refund`
    /// without a `refund_txn_id` gets a new refund id from the store.
    /// A `Refund` of a transfer that was paid from the wallet (it has a
    /// debit journal) also writes [`Journal::refund_of`] that debit and
    /// credits the wallet, in the same transaction: at most once, since a
    /// refunded record cannot be refunded again and a transaction has at
    /// most one journal per purpose. A change that decides the transfer
    /// (`domain::upstream::dmt_needs_polling` turns false) also removes its
    /// poll job, held or not, in the same transaction.
    async fn change_dmt(&self, ackno: i64, change: DmtChange, note: ChangeNote) -> Result<DmtTransfer, ChangeError>;
    /// As [`RecordStore::lookup_dmt`], for bill payments.
    async fn lookup_bill(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> StoreResult<Option<(Partner, Option<BillPayment>)>>;
    /// As [`RecordStore::lookup_dmt_checked`], for bill payments.
    async fn lookup_bill_checked(
        &self,
        partner: RegistrationId,
        reference: &str,
        precheck: lookup::Precheck<'_>,
    ) -> StoreResult<Option<lookup::StatusLookup<BillPayment>>>;
    /// As [`RecordStore::dmt_by_references`], for bill payments.
    async fn bill_by_references(&self, partner: RegistrationId, references: &[String])
        -> StoreResult<Vec<BillPayment>>;
    /// The bill payment with this txnid and its history, oldest first.
    async fn bill_with_history(&self, txnid: i64) -> StoreResult<Option<(BillPayment, Vec<HistoryEntry>)>>;
    /// As [`RecordStore::insert_dmt_batch`], for bill payments (`txnid` 0 asks for a new one).
    async fn insert_bill_batch(
        &self,
        rows: Vec<BillPayment>,
        note: ChangeNote,
        progress: Progress,
    ) -> Result<Vec<i64>, InsertError>;
    /// As [`RecordStore::change_dmt`], for bill payments (decided:
    /// `domain::upstream::bill_needs_polling` turns false).
    async fn change_bill(&self, txnid: i64, change: BillChange, note: ChangeNote) -> Result<BillPayment, ChangeError>;
}

/// One record kind as an engine keeps it: what [`RecordStore`]'s methods do
/// for that kind, written once by each engine over [`TxnTable`].
pub(crate) trait KindStore<T: TxnTable>: Send + Sync + 'static {
    /// The partner and its record with this reference in one round trip,
    /// recording the token `reqid` that `precheck` returns where the engine
    /// can (see [`lookup`]).
    fn lookup(
        &self,
        partner: RegistrationId,
        reference: &str,
        precheck: lookup::Precheck<'_>,
    ) -> impl Future<Output = StoreResult<Option<lookup::StatusLookup<T>>>> + Send;
    /// The record with this id and its history, oldest first.
    fn with_history(&self, id: i64) -> impl Future<Output = StoreResult<Option<(T, Vec<HistoryEntry>)>>> + Send;
    /// The partner's records with any of these references, in one round
    /// trip (in no particular order; a reference it does not have is left out).
    fn by_references(
        &self,
        partner: RegistrationId,
        references: &[String],
    ) -> impl Future<Output = StoreResult<Vec<T>>> + Send;
    /// Inserts `rows` all together or not at all (id 0 asks for a new one).
    fn insert_batch(
        &self,
        rows: Vec<T>,
        note: ChangeNote,
        progress: Progress,
    ) -> impl Future<Output = Result<Vec<i64>, InsertError>> + Send;
    /// A state change in one database transaction (see [`change::change_locked`]).
    fn change(
        &self,
        id: i64,
        change: T::Change,
        note: ChangeNote,
    ) -> impl Future<Output = Result<T, ChangeError>> + Send;
}

/// A lookup that offers no `reqid`.
fn no_precheck(_: &Partner) -> Option<lookup::ReqidClaim> {
    None
}

/// A record kind as [`RecordStore`] serves it behind `dyn`: its per-kind
/// methods, for code generic over the kind (the status endpoints, the
/// upstream sync, imports). Each call is the store's own future.
pub trait StoredKind: TxnRecord {
    /// [`RecordStore::lookup_dmt_checked`] or [`RecordStore::lookup_bill_checked`].
    fn lookup_in<'a>(
        store: &'a dyn RecordStore,
        partner: RegistrationId,
        reference: &'a str,
        precheck: lookup::Precheck<'a>,
    ) -> StoreFuture<'a, Option<lookup::StatusLookup<Self>>>;
    /// [`RecordStore::dmt_by_references`] or [`RecordStore::bill_by_references`].
    fn by_references_in<'a>(
        store: &'a dyn RecordStore,
        partner: RegistrationId,
        references: &'a [String],
    ) -> StoreFuture<'a, Vec<Self>>;
    /// [`RecordStore::dmt_with_history`] or [`RecordStore::bill_with_history`].
    fn with_history_in(store: &dyn RecordStore, id: i64) -> StoreFuture<'_, Option<(Self, Vec<HistoryEntry>)>>;
    /// [`RecordStore::insert_dmt_batch`] or [`RecordStore::insert_bill_batch`].
    fn insert_in(
        store: &dyn RecordStore,
        rows: Vec<Self>,
        note: ChangeNote,
        progress: Progress,
    ) -> StoreFuture<'_, Vec<i64>, InsertError>;
    /// [`RecordStore::change_dmt`] or [`RecordStore::change_bill`].
    fn change_in(
        store: &dyn RecordStore,
        id: i64,
        change: Self::Change,
        note: ChangeNote,
    ) -> StoreFuture<'_, Self, ChangeError>;
}

/// [`RecordStore`] for every engine that keeps both kinds, and each kind's
/// [`StoredKind`]: each per-kind method hands on to the kind's
/// [`KindStore`] method. A kind is named with its id (as traced) and the
/// names of its lookup, checked lookup, by-references, with-history,
/// insert and change methods.
macro_rules! record_kinds {
    ($($kind:ty, $id:ident: $lookup:ident, $checked:ident, $by_references:ident, $with_history:ident, $insert:ident, $change:ident;)+) => {
        #[async_trait]
        impl<E: KindStore<DmtTransfer> + KindStore<BillPayment>> RecordStore for E {$(
            #[tracing::instrument(level = "debug", skip_all, fields(partner = %partner, reference))]
            async fn $lookup(
                &self,
                partner: RegistrationId,
                reference: &str,
            ) -> StoreResult<Option<(Partner, Option<$kind>)>> {
                let found = KindStore::<$kind>::lookup(self, partner, reference, &no_precheck).await?;
                Ok(found.map(|found| (found.partner, found.record)))
            }
            #[tracing::instrument(level = "debug", skip_all, fields(partner = %partner, reference))]
            async fn $checked(
                &self,
                partner: RegistrationId,
                reference: &str,
                precheck: lookup::Precheck<'_>,
            ) -> StoreResult<Option<lookup::StatusLookup<$kind>>> {
                KindStore::<$kind>::lookup(self, partner, reference, precheck).await
            }
            #[tracing::instrument(level = "debug", skip_all, fields($id))]
            async fn $with_history(&self, $id: i64) -> StoreResult<Option<($kind, Vec<HistoryEntry>)>> {
                KindStore::<$kind>::with_history(self, $id).await
            }
            async fn $by_references(
                &self,
                partner: RegistrationId,
                references: &[String],
            ) -> StoreResult<Vec<$kind>> {
                KindStore::<$kind>::by_references(self, partner, references).await
            }
            #[tracing::instrument(level = "debug", skip_all, fields(rows = rows.len()))]
            async fn $insert(
                &self,
                rows: Vec<$kind>,
                note: ChangeNote,
                progress: Progress,
            ) -> Result<Vec<i64>, InsertError> {
                KindStore::<$kind>::insert_batch(self, rows, note, progress).await
            }
            #[tracing::instrument(level = "debug", skip_all, fields($id, source = %note.source))]
            async fn $change(
                &self,
                $id: i64,
                change: <$kind as TxnRecord>::Change,
                note: ChangeNote,
            ) -> Result<$kind, ChangeError> {
                KindStore::<$kind>::change(self, $id, change, note).await
            }
        )+}

        $(impl StoredKind for $kind {
            fn lookup_in<'a>(
                store: &'a dyn RecordStore,
                partner: RegistrationId,
                reference: &'a str,
                precheck: lookup::Precheck<'a>,
            ) -> StoreFuture<'a, Option<lookup::StatusLookup<Self>>> {
                store.$checked(partner, reference, precheck)
            }
            fn by_references_in<'a>(
                store: &'a dyn RecordStore,
                partner: RegistrationId,
                references: &'a [String],
            ) -> StoreFuture<'a, Vec<Self>> {
                store.$by_references(partner, references)
            }
            fn with_history_in(store: &dyn RecordStore, id: i64) -> StoreFuture<'_, Option<(Self, Vec<HistoryEntry>)>> {
                store.$with_history(id)
            }
            fn insert_in(
                store: &dyn RecordStore,
                rows: Vec<Self>,
                note: ChangeNote,
                progress: Progress,
            ) -> StoreFuture<'_, Vec<i64>, InsertError> {
                store.$insert(rows, note, progress)
            }
            fn change_in(
                store: &dyn RecordStore,
                id: i64,
                change: Self::Change,
                note: ChangeNote,
            ) -> StoreFuture<'_, Self, ChangeError> {
                store.$change(id, change, note)
            }
        })+
    };
}

record_kinds! {
    DmtTransfer, ackno: lookup_dmt, lookup_dmt_checked, dmt_by_references, dmt_with_history, insert_dmt_batch, change_dmt;
    BillPayment, txnid: lookup_bill, lookup_bill_checked, bill_by_references, bill_with_history, insert_bill_batch, change_bill;
}

/// A transfer to store and debit from its partner's wallet at once: within
/// the remitter's monthly `limit` on its `route`, its first poll at `poll_at`.
#[derive(Debug, Clone)]
pub struct DmtDebit {
    pub transfer: DmtTransfer,
    pub route: DmtRoute,
    pub limit: MonthlyLimit,
    pub note: ChangeNote,
    pub poll_at: Option<Timestamp>,
}

/// A history row that changes nothing: transaction `id` of `kind` stays at
/// `status` (its current state's name), for `note`'s reason; with
/// `recheck_at`, its polling (re)starts then.
#[derive(Debug, Clone)]
pub struct HistoryNote<'a> {
    pub kind: TxnKind,
    pub id: i64,
    pub status: &'a str,
    pub note: ChangeNote,
    pub recheck_at: Option<Timestamp>,
}

/// DMT transfers and bill payments: status lookups, imports, state changes
/// with their history rows and refunds ([`RecordStore`]), failing and
/// refunding a bill payment at once, and the creation of transactions paid
/// from the wallet.
#[async_trait]
pub trait TransactionStore: RecordStore {
    /// Fails a pending or paid bill payment (history row `note`) and refunds
    /// it (history row `refund`, a new refund id, and the refund journal if
    /// it was paid from the wallet) in ONE database transaction, so that no
    /// crash can leave a wallet-paid payment failed and not refunded. A
    /// payment already failed (by an operator, or by an older payrail) is
    /// only refunded. `Forbidden` (nothing written) for a refunded one.
    async fn fail_bill(&self, txnid: i64, note: ChangeNote, refund: ChangeNote) -> Result<BillPayment, ChangeError>;
    /// Adds a row to a transaction's status history that changes nothing
    /// (from and to `status`, its current state's name) and, with
    /// `recheck_at`, (re)starts its polling at that time, in one database
    /// transaction: how an upstream answer that must be confirmed before it
    /// is applied (a bank return after success) is recorded.
    async fn note_history(&self, entry: HistoryNote<'_>) -> StoreResult<()>;
    /// Resolves a held transaction as an operator decided: `resolution` is
    /// made only if the record is still in state `from` (checked under the
    /// record's lock, in the change's database transaction), else
    /// `Forbidden` with nothing written: two operators resolving one held
    /// transaction at once cannot both succeed.
    async fn resolve_held(
        &self,
        id: i64,
        from: &str,
        resolution: HeldResolution,
        note: ChangeNote,
    ) -> Result<(), ChangeError>;
    /// How many transfers and bill payments the store holds.
    async fn counts(&self) -> StoreResult<(i64, i64)>;
    /// In one database transaction: takes [`Journal::dmt_debit`] of the
    /// transfer from the wallet (refusing `InsufficientFunds`), checks that
    /// the remitter's non-refunded transfers on the route's pipe since
    /// `limit.since` plus this one stay within `limit.limit` (else
    /// `MonthlyLimit`), inserts the transfer (new ackno; `Duplicate` if the
    /// reference exists), its route, its first history row and the journal.
    /// Concurrent calls for one partner are serialised on its wallet.
    async fn create_dmt_debited(&self, debit: DmtDebit) -> Result<Debited<DmtTransfer>, DebitError>;
    /// The route of a transfer made through the DMT V1 API.
    async fn dmt_route(&self, ackno: i64) -> StoreResult<Option<DmtRoute>>;
    /// As [`TransactionStore::create_dmt_debited`] for a bill payment
    /// ([`Journal::bill_debit`]; no limit).
    async fn create_bill_debited(
        &self,
        payment: BillPayment,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<BillPayment>, DebitError>;
    /// Keeps the upstream's acknowledgement number of transfer `ackno`
    /// unless it has one: the first number an answer carried stays. Returns
    /// whether it was written.
    async fn set_upstream_ackno(&self, ackno: i64, upstream_ackno: &str) -> StoreResult<bool>;
    /// Records that the upstream sent the remitter of transfer `ackno` a
    /// refund OTP, handed to the partner under `stateresp` (the latest one
    /// replaces an earlier one).
    async fn record_refund_otp(&self, ackno: i64, stateresp: &str, at: Timestamp) -> StoreResult<()>;
    /// The `stateresp` of the latest upstream refund OTP of transfer `ackno`.
    async fn refund_otp_stateresp(&self, ackno: i64) -> StoreResult<Option<String>>;
    /// Takes one of the `max` claims the refund OTP `stateresp` of transfer
    /// `ackno` allows, atomically; `false` when none is left (or it is not
    /// the latest).
    async fn reserve_refund_claim(&self, ackno: i64, stateresp: &str, max: i64) -> StoreResult<bool>;
    /// Gives back a claim taken with [`TransactionStore::reserve_refund_claim`]
    /// that the upstream did not refuse (it counts wrong guesses, not answers lost).
    async fn release_refund_claim(&self, ackno: i64, stateresp: &str) -> StoreResult<()>;
}

columns! {
    /// The columns of `dmt_transfers` that [`DmtTransfer`] is read from and written to.
    pub(crate) mod dmt_column, list dmt_columns {
        ackno, partner_id, reference_id, amount, account, utr, status, customer_charge, provider_share, gst,
        discount, commission, tds, net_commission, created_at, refund_txn_id, refunded_at, upstream_ackno
    }
}
pub(crate) use dmt_columns;

columns! {
    /// The columns of `bill_payments` that [`BillPayment`] is read from and written to.
    pub(crate) mod bill_column, list bill_columns {
        txnid, partner_id, reference_id, operator_name, ca_number, amount, ad1, ad2, ad3, commission, tds,
        status, operator_ref, created_at, refund_txn_id, refunded_at
    }
}
pub(crate) use bill_columns;

columns! {
    /// The columns of `status_history` that a [`HistoryEntry`] is read from.
    pub(crate) mod history_column, list history_columns { from_status, to_status, at, source, reason }
}

columns! {
    /// The columns of `dmt_routes` that a [`DmtRoute`] is read from.
    pub(crate) mod route_column, list route_columns { remitter_mobile, beneficiary_id, bank, mode }
}

/// SQL that both engines accept, written once. SQLite numbers `$n`
/// parameters in the order they first appear, so each statement here names
/// `$1`, `$2`, … in that order (the test `shared_sql_names_its_parameters_in_order`
/// keeps it so).
pub(crate) mod sql {
    /// A transaction's status history, oldest first: `$1` kind, `$2` id.
    pub(crate) const HISTORY: &str =
        concat!("SELECT ", history_columns!(), " FROM status_history WHERE kind = $1 AND txn_id = $2 ORDER BY id");
    /// The reason of the newest history row of transaction (`$1` kind, `$2` id).
    pub(crate) const LAST_REASON: &str =
        "SELECT reason FROM status_history WHERE kind = $1 AND txn_id = $2 ORDER BY id DESC LIMIT 1";
    /// Records one state change (`from_status` NULL for a new record).
    pub(crate) const INSERT_HISTORY: &str = "INSERT INTO status_history \
         (kind, txn_id, from_status, to_status, at, source, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    /// A new refund id: the `refunds` row's own id.
    pub(crate) const INSERT_REFUND: &str =
        "INSERT INTO refunds (kind, txn_id, created_at) VALUES ($1, $2, $3) RETURNING id";
    /// How many transfers and bill payments there are, in one row.
    pub(crate) const COUNTS: &str = "SELECT (SELECT COUNT(*) FROM dmt_transfers), (SELECT COUNT(*) FROM bill_payments)";
    /// The route of a transfer made through the DMT V1 API.
    pub(crate) const ROUTE_BY_ACKNO: &str = concat!("SELECT ", route_columns!(), " FROM dmt_routes WHERE ackno = $1");
    /// Keeps a transfer's first upstream acknowledgement number.
    pub(crate) const SET_UPSTREAM_ACKNO: &str =
        "UPDATE dmt_transfers SET upstream_ackno = $1 WHERE ackno = $2 AND upstream_ackno IS NULL";
    /// Records the latest upstream refund OTP of a transfer.
    pub(crate) const RECORD_REFUND_OTP: &str = "INSERT INTO dmt_refund_otps (ackno, stateresp, sent_at) \
         VALUES ($1, $2, $3) ON CONFLICT (ackno) DO UPDATE SET stateresp = excluded.stateresp, sent_at = excluded.sent_at, \
         attempts = 0";
    /// Takes a claim of a refund OTP, if one is left.
    pub(crate) const RESERVE_REFUND_CLAIM: &str = "UPDATE dmt_refund_otps SET attempts = attempts + 1 \
         WHERE ackno = $1 AND stateresp = $2 AND attempts < $3";
    /// Gives a claim of a refund OTP back.
    pub(crate) const RELEASE_REFUND_CLAIM: &str = "UPDATE dmt_refund_otps SET attempts = attempts - 1 \
         WHERE ackno = $1 AND stateresp = $2 AND attempts > 0";
    /// The latest upstream refund OTP's `stateresp` of a transfer.
    pub(crate) const REFUND_OTP_STATERESP: &str = "SELECT stateresp FROM dmt_refund_otps WHERE ackno = $1";
    /// Records how a new transfer travels.
    pub(crate) const INSERT_ROUTE: &str = "INSERT INTO dmt_routes \
         (ackno, partner_id, remitter_mobile, beneficiary_id, bank, mode, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    /// Stores the installation's transaction-number secret unless it has one.
    pub(crate) const STORE_NUMBER_SECRET: &str =
        "INSERT INTO txn_number_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING";
    /// The installation's transaction-number secret.
    pub(crate) const NUMBER_SECRET: &str = "SELECT secret FROM txn_number_secret WHERE id = 1";
}

/// One of the two record kinds, DMT transfers and bill payments, as the
/// store keeps it: everything in which the two differ only by table, column
/// and state type, so that finding, inserting and changing them is written
/// once for both.
pub(crate) trait TxnTable: Sized + Send + Sync + 'static {
    /// The change its state machine takes.
    type Change: Send;
    /// The kind, as history rows, refunds, journals and events name it.
    const KIND: TxnKind;
    /// Its table.
    const TABLE: &'static str;
    /// The table's id column (`ackno`, `txnid`).
    const ID: &'static str;
    /// How many columns [`TxnTable::decode`] reads and [`TxnTable::values`] gives.
    const WIDTH: usize;
    /// Its column list, as [`TxnTable::decode`] reads it.
    const COLUMNS: &'static str;
    /// The record by its id (`$1`).
    const BY_ID: &'static str;
    /// As [`TxnTable::BY_ID`], the row locked until the transaction ends,
    /// for PostgreSQL, where instances sharing the database must not lose
    /// an update (SQLite's write transaction already keeps other writers out).
    const FOR_UPDATE: &'static str;
    /// Whether the partner (`$1`) has a record with this reference (`$2`).
    const REFERENCE_TAKEN: &'static str;
    /// Whether a record has this id (`$1`), as one boolean.
    const ID_TAKEN: &'static str;
    /// Writes back what a change may alter: `$1`–`$4` are
    /// [`TxnTable::changed_values`], `$5` the time, `$6` the id.
    const UPDATE: &'static str;

    /// Its id; 0 asks for a new one.
    fn id(&self) -> i64;
    /// The same record under id `id`.
    fn with_id(self, id: i64) -> Self;
    /// The owning partner.
    fn partner(&self) -> RegistrationId;
    /// The partner's reference.
    fn reference(&self) -> &ReferenceId;
    /// Its state's name, for history rows and events.
    fn status_name(&self) -> &'static str;
    /// Whether it is refunded (a refund pays a wallet-paid record back).
    fn is_refunded(&self) -> bool;
    /// Whether the poller still has to ask the upstream about it.
    fn needs_polling(&self) -> bool;
    /// Applies `change` at `at`, or says why the state machine forbids it.
    fn apply(&mut self, change: &Self::Change, at: Timestamp) -> Result<(), ForbiddenTransition>;
    /// The refund id a `Refund` change leaves to the store to allocate
    /// (`None` in it), for the store to fill in.
    fn missing_refund_id(change: &mut Self::Change) -> Option<&mut Option<String>>;
    /// The partner event's payload after a change at `at`.
    fn event_payload(&self, at: Timestamp) -> String;
    /// What the audit log records of it before and after an operator's change.
    fn audit_view(&self) -> serde_json::Value;
    /// Its stored values, in the column list's order (id first).
    fn values(&self) -> Vec<Value<'_>>;
    /// What a change may alter: the state as stored, the state's reference
    /// (UTR or operator reference), the refund id, when it was refunded.
    fn changed_values(&self) -> [Value<'_>; 4];
    /// Reads a record from the column list starting at column `base`.
    fn decode<R: StoredRow>(row: &R, base: usize) -> Result<Self, R::Error>;
}

/// What the two [`TxnTable`] impls share but for names, written once: the
/// kind, change type and width; the SQL constants from the table's name,
/// its id column, its column list and the column holding its state's
/// reference (`utr`, `operator_ref`, a field of the same name); the
/// accessors; and [`TxnTable::changed_values`], the state stored through
/// `stored` (`code` or `name`).
macro_rules! txn_table_common {
    (
        kind: $kind:ident, change: $change:ident, status: $status:ident, stored: $stored:ident,
        table: $table:literal, id: $id:ident, columns: $columns:expr, width: $width:expr, reference: $reference:ident,
        needs_polling: $needs_polling:path, payload: $payload:path, audit: $audit:path $(,)?
    ) => {
        type Change = $change;
        const KIND: TxnKind = TxnKind::$kind;
        const WIDTH: usize = $width;
        const TABLE: &'static str = $table;
        const COLUMNS: &'static str = $columns;
        const ID: &'static str = stringify!($id);
        const BY_ID: &'static str = concat!("SELECT ", $columns, " FROM ", $table, " WHERE ", stringify!($id), " = $1");
        const FOR_UPDATE: &'static str =
            concat!("SELECT ", $columns, " FROM ", $table, " WHERE ", stringify!($id), " = $1 FOR UPDATE");
        const REFERENCE_TAKEN: &'static str =
            concat!("SELECT 1 FROM ", $table, " WHERE partner_id = $1 AND reference_id = $2");
        const ID_TAKEN: &'static str =
            concat!("SELECT EXISTS (SELECT 1 FROM ", $table, " WHERE ", stringify!($id), " = $1)");
        const UPDATE: &'static str = concat!(
            "UPDATE ",
            $table,
            " SET status = $1, ",
            stringify!($reference),
            " = $2, refund_txn_id = $3, refunded_at = $4, updated_at = $5 WHERE ",
            stringify!($id),
            " = $6"
        );

        fn id(&self) -> i64 {
            self.$id
        }
        fn with_id(self, id: i64) -> Self {
            Self { $id: id, ..self }
        }
        fn partner(&self) -> RegistrationId {
            self.partner
        }
        fn reference(&self) -> &ReferenceId {
            &self.reference
        }
        fn status_name(&self) -> &'static str {
            self.status.name()
        }
        fn is_refunded(&self) -> bool {
            self.status == $status::Refunded
        }
        fn needs_polling(&self) -> bool {
            $needs_polling(self)
        }
        fn apply(&mut self, change: &$change, at: Timestamp) -> Result<(), ForbiddenTransition> {
            Self::apply(self, change, at)
        }
        fn missing_refund_id(change: &mut $change) -> Option<&mut Option<String>> {
            match change {
                $change::Refund { refund_txn_id: missing @ None } => Some(missing),
                _ => None,
            }
        }
        fn event_payload(&self, at: Timestamp) -> String {
            $payload(self, at)
        }
        fn audit_view(&self) -> serde_json::Value {
            $audit(self)
        }
        fn changed_values(&self) -> [Value<'_>; 4] {
            [
                self.status.$stored().into(),
                (&self.$reference).into(),
                (&self.refund_txn_id).into(),
                self.refunded_at.map(Timestamp::unix).into(),
            ]
        }
    };
}

impl TxnTable for DmtTransfer {
    txn_table_common! {
        kind: Dmt, change: DmtChange, status: DmtStatus, stored: code,
        table: "dmt_transfers", id: ackno, columns: dmt_columns!(), width: dmt_column::WIDTH, reference: utr,
        needs_polling: upstream::dmt_needs_polling, payload: event::dmt_payload,
        audit: crate::domain::operator::dmt_audit_view,
    }

    fn values(&self) -> Vec<Value<'_>> {
        let c = &self.charges;
        vec![
            self.ackno.into(),
            self.partner.number().into(),
            self.reference.as_str().into(),
            self.amount.get().into(),
            self.account.as_str().into(),
            (&self.utr).into(),
            self.status.code().into(),
            c.customer_charge.get().into(),
            c.provider_share.get().into(),
            c.gst.get().into(),
            c.discount.get().into(),
            c.commission.get().into(),
            c.tds.get().into(),
            c.net_commission.get().into(),
            self.created_at.unix().into(),
            (&self.refund_txn_id).into(),
            self.refunded_at.map(Timestamp::unix).into(),
            (&self.upstream_ackno).into(),
        ]
    }
    fn decode<R: StoredRow>(row: &R, base: usize) -> Result<Self, R::Error> {
        use dmt_column as at;
        let paise = |column: usize| row.int(base + column).map(Paise::new);
        Ok(DmtTransfer {
            ackno: row.int(base + at::ackno)?,
            partner: RegistrationId::new(row.int(base + at::partner_id)?),
            reference: row.parsed(base + at::reference_id, ReferenceId::parse)?,
            amount: paise(at::amount)?,
            account: row.text(base + at::account)?,
            utr: row.opt_text(base + at::utr)?,
            status: row.coded(base + at::status, DmtStatus::from_code)?,
            charges: DmtCharges {
                customer_charge: paise(at::customer_charge)?,
                provider_share: paise(at::provider_share)?,
                gst: paise(at::gst)?,
                discount: paise(at::discount)?,
                commission: paise(at::commission)?,
                tds: paise(at::tds)?,
                net_commission: paise(at::net_commission)?,
            },
            created_at: Timestamp::from_unix(row.int(base + at::created_at)?),
            refund_txn_id: row.opt_text(base + at::refund_txn_id)?,
            refunded_at: row.opt_int(base + at::refunded_at)?.map(Timestamp::from_unix),
            upstream_ackno: row.opt_text(base + at::upstream_ackno)?,
        })
    }
}

impl TxnTable for BillPayment {
    txn_table_common! {
        kind: Bbps, change: BillChange, status: BillStatus, stored: name,
        table: "bill_payments", id: txnid, columns: bill_columns!(), width: bill_column::WIDTH, reference: operator_ref,
        needs_polling: upstream::bill_needs_polling, payload: event::bill_payload,
        audit: crate::domain::operator::bill_audit_view,
    }

    fn values(&self) -> Vec<Value<'_>> {
        vec![
            self.txnid.into(),
            self.partner.number().into(),
            self.reference.as_str().into(),
            self.operator_name.as_str().into(),
            self.ca_number.as_str().into(),
            self.amount.get().into(),
            (&self.ad1).into(),
            (&self.ad2).into(),
            (&self.ad3).into(),
            self.commission.get().into(),
            self.tds.get().into(),
            self.status.name().into(),
            (&self.operator_ref).into(),
            self.created_at.unix().into(),
            (&self.refund_txn_id).into(),
            self.refunded_at.map(Timestamp::unix).into(),
        ]
    }
    fn decode<R: StoredRow>(row: &R, base: usize) -> Result<Self, R::Error> {
        use bill_column as at;
        let paise = |column: usize| row.int(base + column).map(Paise::new);
        Ok(BillPayment {
            txnid: row.int(base + at::txnid)?,
            partner: RegistrationId::new(row.int(base + at::partner_id)?),
            reference: row.parsed(base + at::reference_id, ReferenceId::parse)?,
            operator_name: row.text(base + at::operator_name)?,
            ca_number: row.text(base + at::ca_number)?,
            amount: paise(at::amount)?,
            ad1: row.opt_text(base + at::ad1)?,
            ad2: row.opt_text(base + at::ad2)?,
            ad3: row.opt_text(base + at::ad3)?,
            commission: paise(at::commission)?,
            tds: paise(at::tds)?,
            status: row.parsed(base + at::status, |s| BillStatus::parse(s).ok_or_else(|| BadState(s.to_owned())))?,
            operator_ref: row.opt_text(base + at::operator_ref)?,
            created_at: Timestamp::from_unix(row.int(base + at::created_at)?),
            refund_txn_id: row.opt_text(base + at::refund_txn_id)?,
            refunded_at: row.opt_int(base + at::refunded_at)?.map(Timestamp::from_unix),
        })
    }
}

mod rows;
pub(crate) use rows::{by_references_sql, decode_history, decode_route, history_values, route_values};

mod change;
pub use change::HeldResolution;
pub(crate) use change::{change, fail_and_refund, resolve_held, ChangeSteps};

/// Fixtures and test bodies that both engines' tests run, so that each
/// engine is held to the same behaviour.
#[cfg(test)]
pub(crate) mod conformance;

#[cfg(test)]
mod tests;
