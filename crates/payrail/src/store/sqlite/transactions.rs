//! DMT transfers and bill payments on SQLite: the shared sequences of
//! `store::transactions` over this engine's steps, one insert per record
//! kind, and the transaction-number counters.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use super::*;
use std::sync::LazyLock;

use crate::domain::upstream::UpstreamRef;
use crate::store::lookup;
use crate::store::transactions::{
    self as shared, bill_columns, dmt_columns, sql, ChangeSteps, KindStore, Progress, TxnTable,
};

impl<T: SqliteTable> KindStore<T> for SqliteStore {
    async fn lookup(
        &self,
        partner: RegistrationId,
        reference: &str,
        _precheck: lookup::Precheck<'_>,
    ) -> StoreResult<Option<lookup::StatusLookup<T>>> {
        // A token's `reqid` is recorded after the lookup, by the caller.
        Ok(self.find_for_status(T::STATUS_LOOKUP, partner, reference)?.map(lookup::StatusLookup::unrecorded))
    }

    async fn by_references(&self, partner: RegistrationId, references: &[String]) -> StoreResult<Vec<T>> {
        if references.is_empty() {
            return Ok(Vec::new());
        }
        let sql = shared::by_references_sql::<T>(references.len());
        let partner = rusqlite::types::Value::Integer(partner.number());
        let values = std::iter::once(partner)
            .chain(references.iter().map(|r| rusqlite::types::Value::Text(r.clone())))
            .collect::<Vec<_>>();
        self.read(|conn| {
            let mut statement = conn.prepare_cached(&sql)?;
            let rows = statement.query_map(rusqlite::params_from_iter(values), |row| T::decode(row, 0))?;
            rows.collect()
        })
    }

    async fn with_history(&self, id: i64) -> StoreResult<Option<(T, Vec<HistoryEntry>)>> {
        self.read(|conn| {
            let record = conn.prepare_cached(T::BY_ID)?.query_row([id], |row| T::decode(row, 0)).optional()?;
            record.map(|record| Ok((record, history(conn, T::KIND, id)?))).transpose()
        })
    }

    /// Inserts `rows` all together or not at all, telling `progress` every
    /// thousand rows.
    async fn insert_batch(&self, rows: Vec<T>, note: ChangeNote, progress: Progress) -> Result<Vec<i64>, InsertError> {
        let numbers = Arc::clone(&self.numbers);
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let mut ids = Vec::with_capacity(rows.len());
            for (index, row) in rows.iter().enumerate() {
                ids.push(insert_row(&tx, &numbers, row, &note, index)?);
                if index % 1000 == 999 {
                    progress(index as u64 + 1);
                }
            }
            tx.commit().map_err(store_error)?;
            progress(rows.len() as u64);
            Ok(ids)
        })
        .await
    }

    /// A state change in one write transaction (see [`shared::change_locked`]).
    async fn change(&self, id: i64, change: T::Change, note: ChangeNote) -> Result<T, ChangeError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let record = at_once(shared::change::<T>(&Steps(&tx), id, change, &note))?;
            tx.commit().map_err(store_error)?;
            Ok(record)
        })
        .await
    }
}

#[async_trait]
impl TransactionStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(id, from))]
    async fn resolve_held(
        &self,
        id: i64,
        from: &str,
        resolution: shared::HeldResolution,
        note: ChangeNote,
    ) -> Result<(), ChangeError> {
        let from = from.to_owned();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            at_once(shared::resolve_held(&Steps(&tx), id, &from, resolution, &note))?;
            tx.commit().map_err(store_error)?;
            Ok(())
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(txnid))]
    async fn fail_bill(&self, txnid: i64, note: ChangeNote, refund: ChangeNote) -> Result<BillPayment, ChangeError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let bill = at_once(shared::fail_and_refund(&Steps(&tx), txnid, &note, &refund))?;
            tx.commit().map_err(store_error)?;
            Ok(bill)
        })
        .await
    }

    async fn note_history(&self, entry: HistoryNote<'_>) -> StoreResult<()> {
        let HistoryNote { kind, id, status, note, recheck_at } = entry;
        let status = status.to_owned();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            insert_history(&tx, kind, id, Some(&status), &status, &note).map_err(store_error)?;
            if let Some(at) = recheck_at {
                upsert_poll(&tx, kind, id, at).map_err(store_error)?;
            }
            tx.commit().map_err(store_error)?;
            Ok(())
        })
        .await
    }

    async fn counts(&self) -> StoreResult<(i64, i64)> {
        self.read(|conn| conn.prepare_cached(sql::COUNTS)?.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(partner = %debit.transfer.partner, reference = %debit.transfer.reference))]
    async fn create_dmt_debited(&self, debit: DmtDebit) -> Result<Debited<DmtTransfer>, DebitError> {
        let DmtDebit { transfer, route, limit, note, poll_at } = debit;
        let journal = Journal::dmt_debit(&transfer, note.at);
        let (partner, amount, used_route) = (transfer.partner, transfer.amount, route.clone());
        let within_limit = move |conn: &Connection| {
            let (remitter, bank) = (&used_route.remitter, used_route.bank);
            let used = routed_since(conn, partner, remitter, bank, limit.since).map_err(store_error)?;
            if used + amount.get() > limit.limit.get() {
                return Err(DebitError::MonthlyLimit { remaining: Paise::new((limit.limit.get() - used).max(0)) });
            }
            Ok(())
        };
        let with_route = move |conn: &Connection, record: &DmtTransfer| insert_route(conn, record, &route);
        self.create_debited(transfer, journal, note, poll_at, within_limit, with_route).await
    }

    async fn dmt_route(&self, ackno: i64) -> StoreResult<Option<DmtRoute>> {
        self.read(|conn| {
            conn.prepare_cached(sql::ROUTE_BY_ACKNO)?.query_row([ackno], |row| shared::decode_route(row)).optional()
        })
    }

    async fn set_upstream_ackno(&self, ackno: i64, upstream_ackno: &str) -> StoreResult<bool> {
        let upstream_ackno = upstream_ackno.to_owned();
        self.write(move |conn| {
            execute(conn, sql::SET_UPSTREAM_ACKNO, rusqlite::params![upstream_ackno, ackno]).map(|n| n == 1)
        })
        .await
    }

    async fn record_refund_otp(&self, ackno: i64, stateresp: &str, at: Timestamp) -> StoreResult<()> {
        let stateresp = stateresp.to_owned();
        self.write(move |conn| {
            execute(conn, sql::RECORD_REFUND_OTP, rusqlite::params![ackno, stateresp, at.unix()]).map(|_| ())
        })
        .await
    }

    async fn refund_otp_stateresp(&self, ackno: i64) -> StoreResult<Option<String>> {
        self.read(|conn| {
            conn.prepare_cached(sql::REFUND_OTP_STATERESP)?.query_row([ackno], |row| row.get(0)).optional()
        })
    }

    async fn reserve_refund_claim(&self, ackno: i64, stateresp: &str, max: i64) -> StoreResult<bool> {
        let stateresp = stateresp.to_owned();
        self.write(move |conn| {
            execute(conn, sql::RESERVE_REFUND_CLAIM, rusqlite::params![ackno, stateresp, max]).map(|n| n == 1)
        })
        .await
    }

    async fn release_refund_claim(&self, ackno: i64, stateresp: &str) -> StoreResult<()> {
        let stateresp = stateresp.to_owned();
        self.write(move |conn| {
            execute(conn, sql::RELEASE_REFUND_CLAIM, rusqlite::params![ackno, stateresp]).map(|_| ())
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(partner = %payment.partner, reference = %payment.reference))]
    async fn create_bill_debited(
        &self,
        payment: BillPayment,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<BillPayment>, DebitError> {
        let journal = Journal::bill_debit(&payment, note.at);
        self.create_debited(payment, journal, note, poll_at, |_| Ok(()), |_, _| Ok(())).await
    }
}

impl SqliteStore {
    /// Creates a record paid from the wallet in one write transaction:
    /// refuses a duplicate reference, takes `journal` from the wallet, runs
    /// `check` (after the debit, so that a short wallet is what is reported
    /// first), inserts the record under a new id, then `extra` rows for it,
    /// the journal with the id, the record's poll job and its upstream
    /// reference (so that it needs no write of its own before it is sent).
    async fn create_debited<T: SqliteTable>(
        &self,
        record: T,
        journal: Journal,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
        check: impl FnOnce(&Connection) -> Result<(), DebitError> + Send + 'static,
        extra: impl FnOnce(&Connection, &T) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<Debited<T>, DebitError> {
        let (numbers, installation) = (Arc::clone(&self.numbers), Arc::clone(&self.installation));
        self.write(move |conn| {
            let tx = immediate(conn)?;
            refuse_duplicate::<T>(&tx, record.partner(), record.reference())?;
            let wallet = debit_wallet(&tx, record.partner(), journal.wallet_change())?;
            check(&tx)?;
            let record = record.with_id(0);
            let id = insert_row(&tx, &numbers, &record, &note, 0).map_err(debit_error)?;
            let record = record.with_id(id);
            extra(&tx, &record).map_err(store_error)?;
            insert_journal(&tx, &journal.with_txn_id(id)).map_err(store_error)?;
            if let Some(at) = poll_at {
                upsert_poll(&tx, T::KIND, id, at).map_err(store_error)?;
            }
            let tail = UpstreamRef { kind: T::KIND, id }.new_tail(&installation);
            tx.prepare_cached(crate::store::upstream_work::sql::ASSIGN_UPSTREAM_REF)
                .and_then(|mut assign| assign.execute(rusqlite::params![T::KIND.as_str(), id, tail]))
                .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(Debited { record, wallet, upstream_ref: Some(tail) })
        })
        .await
    }
}

/// Runs a sequence over [`Steps`] to its end. Every SQLite step does its
/// work when first polled and never waits, so one poll finishes it.
fn at_once<T>(sequence: impl Future<Output = Result<T, ChangeError>>) -> Result<T, ChangeError> {
    match std::pin::pin!(sequence).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(StoreError::Other(anyhow::anyhow!("a SQLite change step waited")).into()),
    }
}

/// The steps of a change on the writer's connection, inside the write's
/// savepoint. Nothing to lock: the group's `BEGIN IMMEDIATE` transaction
/// already keeps every other writer out.
struct Steps<'a>(&'a Connection);

impl ChangeSteps for Steps<'_> {
    async fn lock<T: TxnTable>(&self, id: i64) -> StoreResult<Option<T>> {
        let mut statement = self.0.prepare_cached(T::BY_ID).map_err(store_error)?;
        statement.query_row([id], |row| T::decode(row, 0)).optional().map_err(store_error)
    }

    async fn new_refund_id(&self, kind: TxnKind, id: i64, at: Timestamp) -> StoreResult<String> {
        let mut statement = self.0.prepare_cached(sql::INSERT_REFUND).map_err(store_error)?;
        let refund: i64 =
            statement.query_row(params![kind.as_str(), id, at.unix()], |r| r.get(0)).map_err(store_error)?;
        Ok(refund.to_string())
    }

    async fn pay_back(&self, kind: TxnKind, id: i64, at: Timestamp) -> StoreResult<()> {
        pay_refund(self.0, kind, id, at)
    }

    async fn save<T: TxnTable>(&self, record: &T, at: Timestamp) -> StoreResult<()> {
        let [state, reference, refund_id, refunded_at] = record.changed_values();
        let mut statement = self.0.prepare_cached(T::UPDATE).map_err(store_error)?;
        statement
            .execute(params![state, reference, refund_id, refunded_at, at.unix(), record.id()])
            .map_err(store_error)?;
        Ok(())
    }

    async fn add_history<T: TxnTable>(&self, record: &T, from: &str, note: &ChangeNote) -> StoreResult<()> {
        insert_history(self.0, T::KIND, record.id(), Some(from), record.status_name(), note).map_err(store_error)
    }

    async fn add_audit(&self, entry: &crate::domain::operator::NewAuditEntry) -> StoreResult<()> {
        super::operators::append(self.0, entry).map(drop).map_err(store_error)
    }

    async fn add_event<T: TxnTable>(&self, record: &T, at: Timestamp) -> StoreResult<()> {
        let txn = (T::KIND, record.id());
        write_event(self.0, record.partner(), txn, record.status_name(), at, || record.event_payload(at))
            .map_err(store_error)
    }

    async fn end_poll(&self, kind: TxnKind, id: i64) -> StoreResult<()> {
        end_poll(self.0, kind, id).map_err(store_error)
    }

    async fn last_reason(&self, kind: TxnKind, id: i64) -> StoreResult<Option<String>> {
        let mut statement = self.0.prepare_cached(sql::LAST_REASON).map_err(store_error)?;
        let reason = statement.query_row(params![kind.as_str(), id], |row| row.get(0)).optional();
        Ok(reason.map_err(store_error)?.flatten())
    }
}

/// A record kind's insert on SQLite. PostgreSQL inserts whole batches from
/// one array per column instead (`UNNEST`), which SQLite does not have.
pub(super) trait SqliteTable: TxnTable {
    /// Inserts one record: [`TxnTable::values`] as `?1`…, `updated_at` set to `created_at`.
    const INSERT: &'static str;
    /// Its status lookup ([`super::lookup::LOOKUP_DMT`], [`super::lookup::LOOKUP_BILL`]).
    const STATUS_LOOKUP: &'static LazyLock<String>;
}

impl SqliteTable for DmtTransfer {
    const INSERT: &'static str = concat!(
        "INSERT INTO dmt_transfers (",
        dmt_columns!(),
        ", updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?15)"
    );
    const STATUS_LOOKUP: &'static LazyLock<String> = &super::lookup::LOOKUP_DMT;
}

impl SqliteTable for BillPayment {
    const INSERT: &'static str = concat!(
        "INSERT INTO bill_payments (",
        bill_columns!(),
        ", updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?14)"
    );
    const STATUS_LOOKUP: &'static LazyLock<String> = &super::lookup::LOOKUP_BILL;
}

/// Inserts row `index` of a batch (its own id, or a new number for id 0)
/// and its first history row; returns its id.
pub(super) fn insert_row<T: SqliteTable>(
    conn: &Connection,
    numbers: &TxnNumbers,
    row: &T,
    note: &ChangeNote,
    index: usize,
) -> Result<i64, InsertError> {
    let id = if row.id() != 0 { row.id() } else { new_number::<T>(conn, numbers)? };
    let mut values = row.values();
    if let Some(first) = values.first_mut() {
        *first = id.into();
    }
    conn.prepare_cached(T::INSERT)
        .and_then(|mut s| s.execute(rusqlite::params_from_iter(values)))
        .map_err(|e| insert_error(e, index, row.partner(), row.reference()))?;
    insert_history(conn, T::KIND, id, None, row.status_name(), note).map_err(store_error)?;
    Ok(id)
}

/// Maps an insert failure of row `index`: a UNIQUE violation is a duplicate
/// reference, a foreign-key violation an unknown partner.
fn insert_error(error: rusqlite::Error, index: usize, partner: RegistrationId, reference: &ReferenceId) -> InsertError {
    if is_unique_violation(&error) {
        InsertError::Duplicate { index, reference: reference.as_str().to_owned() }
    } else if error.to_string().contains("FOREIGN KEY") {
        InsertError::UnknownPartner { index, partner }
    } else {
        InsertError::Store(store_error(error))
    }
}

/// The status history of one transaction, oldest first.
fn history(conn: &Connection, kind: TxnKind, id: i64) -> rusqlite::Result<Vec<HistoryEntry>> {
    all_rows(conn, sql::HISTORY, params![kind.as_str(), id], |row| shared::decode_history(row))
}

/// Records one state change (`from` `None`: the record was just made).
fn insert_history(
    conn: &Connection,
    kind: TxnKind,
    id: i64,
    from: Option<&str>,
    to: &str,
    note: &ChangeNote,
) -> rusqlite::Result<()> {
    let values = shared::history_values(kind, id, from, to, note);
    conn.prepare_cached(sql::INSERT_HISTORY)?.execute(rusqlite::params_from_iter(values))?;
    Ok(())
}

/// Fails with `Duplicate` if the partner has a `T` with this reference. The
/// unique constraint stays the final arbiter; this answers before any debit.
pub(super) fn refuse_duplicate<T: TxnTable>(
    conn: &Connection,
    partner: RegistrationId,
    reference: &ReferenceId,
) -> Result<(), DebitError> {
    let exists = conn
        .prepare_cached(T::REFERENCE_TAKEN)
        .and_then(|mut s| s.exists(params![partner.number(), reference.as_str()]))
        .map_err(store_error)?;
    if exists {
        return Err(DebitError::Duplicate(reference.as_str().to_owned()));
    }
    Ok(())
}

/// Maps a failed insert of a record paid from the wallet.
pub(super) fn debit_error(error: InsertError) -> DebitError {
    match error {
        InsertError::Duplicate { reference, .. } => DebitError::Duplicate(reference),
        InsertError::UnknownPartner { .. } => DebitError::UnknownPartner,
        InsertError::Store(e) => DebitError::Store(e),
    }
}

/// Records how a new transfer travels.
pub(super) fn insert_route(conn: &Connection, transfer: &DmtTransfer, route: &DmtRoute) -> rusqlite::Result<()> {
    let values = shared::route_values(transfer, route);
    conn.prepare_cached(sql::INSERT_ROUTE)?.execute(rusqlite::params_from_iter(values))?;
    Ok(())
}

/// The installation's transaction numbering: its secret is made (random,
/// 32 bytes) the first time a store is opened after the migration that
/// created its table.
pub(super) fn txn_numbers(conn: &Connection) -> anyhow::Result<TxnNumbers> {
    conn.execute(sql::STORE_NUMBER_SECRET, [crate::store::new_txn_number_secret()])
        .context("Failed to store the transaction-number secret")?;
    let secret: String =
        conn.query_row(sql::NUMBER_SECRET, [], |r| r.get(0)).context("Failed to read the transaction-number secret")?;
    Ok(TxnNumbers::new(secret.as_bytes()))
}

/// Takes the next value of a kind's counter (`$1` the kind). SQLite keeps
/// the counters in a table; PostgreSQL uses a sequence per kind.
const NEXT_COUNTER: &str = "UPDATE txn_number_counters SET next = next + 1 WHERE kind = $1 RETURNING next - 1";

/// The next number of `T`'s kind: the counter's next value through the keyed
/// permutation, passing over any number a record made before already has.
fn new_number<T: TxnTable>(conn: &Connection, numbers: &TxnNumbers) -> Result<i64, InsertError> {
    loop {
        let counter: i64 = conn
            .prepare_cached(NEXT_COUNTER)
            .and_then(|mut s| s.query_row([T::KIND.as_str()], |r| r.get(0)))
            .map_err(store_error)?;
        let number = numbers
            .number(T::KIND, counter as u64)
            .map_err(|e| InsertError::Store(StoreError::Other(anyhow::Error::new(e))))?;
        let taken: bool = conn
            .prepare_cached(T::ID_TAKEN)
            .and_then(|mut s| s.query_row([number], |r| r.get(0)))
            .map_err(store_error)?;
        if !taken {
            return Ok(number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::transactions::conformance;

    /// A store in a temporary directory.
    fn open() -> anyhow::Result<(tempfile::TempDir, SqliteStore)> {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(&dir.path().join("payrail.db"))?;
        Ok((dir, store))
    }

    #[tokio::test]
    async fn a_refund_gets_a_new_refund_id_and_every_change_a_history_row() -> anyhow::Result<()> {
        let (_dir, store) = open()?;
        conformance::a_refund_gets_a_new_refund_id_and_every_change_a_history_row(&store, "1").await
    }

    /// A test per `conformance` body that takes only the store.
    macro_rules! conformance_tests {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() -> anyhow::Result<()> {
                let (_dir, store) = open()?;
                conformance::$name(&store).await
            }
        )*};
    }

    conformance_tests!(
        a_failed_bill_is_refunded_in_the_same_transaction,
        a_transfer_held_for_review_moves_only_by_an_operator,
        bill_payments_go_through_the_same_life,
        a_payment_from_the_wallet_is_stored_with_its_upstream_reference,
    );
}
