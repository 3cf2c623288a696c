//! DMT transfers and bill payments on PostgreSQL: the shared sequences of
//! `store::transactions` over this engine's steps, and (in [`batch`]) batch
//! inserts and transaction numbering.

mod batch;

pub(super) use batch::{columns, insert_new, txn_numbers};

use super::columns::bind_all;
use super::*;
use crate::store::lookup;

use std::sync::LazyLock;

use crate::store::transactions::{
    self as shared, bill_columns, dmt_columns, sql, ChangeSteps, KindStore, Progress, TxnTable,
};

impl<T: PgTable> KindStore<T> for PostgresStore {
    async fn lookup(
        &self,
        partner: RegistrationId,
        reference: &str,
        precheck: lookup::Precheck<'_>,
    ) -> StoreResult<Option<lookup::StatusLookup<T>>> {
        self.status_lookup(T::STATUS_LOOKUP, partner, reference, precheck).await
    }

    async fn by_references(&self, partner: RegistrationId, references: &[String]) -> StoreResult<Vec<T>> {
        if references.is_empty() {
            return Ok(Vec::new());
        }
        let sql = shared::by_references_sql::<T>(references.len());
        let number = partner.number();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&number];
        params.extend(references.iter().map(|r| r as &(dyn ToSql + Sync)));
        let client = self.client().await?;
        let rows = query(&client, &sql, &params, "Failed to find the transactions").await?;
        decode_all(&rows, |row| T::decode(row, 0), "Failed to read a transaction")
    }

    async fn with_history(&self, id: i64) -> StoreResult<Option<(T, Vec<HistoryEntry>)>> {
        let client = self.client().await?;
        let row = query_opt(&client, T::BY_ID, &[&id], "Failed to find the transaction").await?;
        let Some(record) = decode(row, |row| T::decode(row, 0))? else { return Ok(None) };
        Ok(Some((record, history(&client, T::KIND, id).await?)))
    }

    async fn insert_batch(&self, rows: Vec<T>, note: ChangeNote, progress: Progress) -> Result<Vec<i64>, InsertError> {
        self.insert_new_batch(rows, note, progress).await
    }

    async fn change(&self, id: i64, change: T::Change, note: ChangeNote) -> Result<T, ChangeError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the change")?;
        let record = shared::change::<T>(&Steps(&tx), id, change, &note).await?;
        super::chain::commit_sealed(tx, "Failed to commit the change").await?;
        Ok(record)
    }
}

#[async_trait]
impl TransactionStore for PostgresStore {
    #[tracing::instrument(level = "debug", skip_all, fields(id, from))]
    async fn resolve_held(
        &self,
        id: i64,
        from: &str,
        resolution: shared::HeldResolution,
        note: ChangeNote,
    ) -> Result<(), ChangeError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the resolution")?;
        shared::resolve_held(&Steps(&tx), id, from, resolution, &note).await?;
        super::chain::commit_sealed(tx, "Failed to commit the resolution").await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(txnid))]
    async fn fail_bill(&self, txnid: i64, note: ChangeNote, refund: ChangeNote) -> Result<BillPayment, ChangeError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the failure")?;
        let bill = shared::fail_and_refund(&Steps(&tx), txnid, &note, &refund).await?;
        super::chain::commit_sealed(tx, "Failed to commit the failure").await?;
        Ok(bill)
    }

    async fn note_history(&self, entry: HistoryNote<'_>) -> StoreResult<()> {
        let HistoryNote { kind, id, status, note, recheck_at } = entry;
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the history note")?;
        let values = shared::history_values(kind, id, Some(status), status, &note);
        execute(&tx, sql::INSERT_HISTORY, &bind_all(&values), "Failed to record the status history").await?;
        if let Some(at) = recheck_at {
            super::upstream_work::schedule_poll(&tx, kind, id, at).await?;
        }
        super::chain::commit_sealed(tx, "Failed to commit the history note").await?;
        Ok(())
    }

    async fn counts(&self) -> StoreResult<(i64, i64)> {
        let client = self.client().await?;
        let row = query_one(&client, sql::COUNTS, &[], "Failed to count the transactions").await?;
        let dmt = row.try_get(0).store_context("Failed to read the transfer count")?;
        let bills = row.try_get(1).store_context("Failed to read the bill payment count")?;
        Ok((dmt, bills))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(partner = %debit.transfer.partner, reference = %debit.transfer.reference))]
    async fn create_dmt_debited(&self, debit: DmtDebit) -> Result<Debited<DmtTransfer>, DebitError> {
        let DmtDebit { transfer, route, limit, note, poll_at } = debit;
        let partner = transfer.partner;
        let result = self.debit_dmt(transfer, &route, &limit, &note, poll_at).await;
        self.settle(partner, result).await
    }

    async fn dmt_route(&self, ackno: i64) -> StoreResult<Option<DmtRoute>> {
        let client = self.client().await?;
        let row = query_opt(&client, sql::ROUTE_BY_ACKNO, &[&ackno], "Failed to find the transfer's route").await?;
        decode(row, shared::decode_route)
    }

    async fn set_upstream_ackno(&self, ackno: i64, upstream_ackno: &str) -> StoreResult<bool> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 2] = [&upstream_ackno, &ackno];
        Ok(execute(&client, sql::SET_UPSTREAM_ACKNO, &params, "Failed to keep the upstream ackno").await? == 1)
    }

    async fn record_refund_otp(&self, ackno: i64, stateresp: &str, at: Timestamp) -> StoreResult<()> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 3] = [&ackno, &stateresp, &at.unix()];
        execute(&client, sql::RECORD_REFUND_OTP, &params, "Failed to record the refund OTP").await?;
        Ok(())
    }

    async fn refund_otp_stateresp(&self, ackno: i64) -> StoreResult<Option<String>> {
        let client = self.client().await?;
        let row = query_opt(&client, sql::REFUND_OTP_STATERESP, &[&ackno], "Failed to read the refund OTP").await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn reserve_refund_claim(&self, ackno: i64, stateresp: &str, max: i64) -> StoreResult<bool> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 3] = [&ackno, &stateresp, &max];
        Ok(execute(&client, sql::RESERVE_REFUND_CLAIM, &params, "Failed to count the refund claim").await? == 1)
    }

    async fn release_refund_claim(&self, ackno: i64, stateresp: &str) -> StoreResult<()> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 2] = [&ackno, &stateresp];
        execute(&client, sql::RELEASE_REFUND_CLAIM, &params, "Failed to give the refund claim back").await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(partner = %payment.partner, reference = %payment.reference))]
    async fn create_bill_debited(
        &self,
        payment: BillPayment,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<BillPayment>, DebitError> {
        let partner = payment.partner;
        // Paid in a group commit by the partner's writer task (`debited.rs`).
        let result = self.bill_writers.commit(payment, note, poll_at).await;
        self.settle(partner, result).await
    }
}

/// What PostgreSQL needs of a record kind beyond the shared [`TxnTable`].
pub(super) trait PgTable: TxnTable {
    /// The `INSERT … FROM UNNEST(…)` taking one array per column of
    /// [`TxnTable::values`] (SQLite has no arrays and inserts a row at a time).
    const INSERT: &'static str;
    /// The advisory lock guarding the identity sequence.
    const ID_LOCK: i64;
    /// The sequence counting new records, whose values the keyed
    /// permutation turns into their numbers (`domain::txn_id`).
    const COUNTER: &'static str;
    /// Its status lookup ([`super::lookup_batches::BATCH_DMT`], [`super::lookup_batches::BATCH_BILL`]).
    const STATUS_LOOKUP: &'static LazyLock<String>;
}

impl PgTable for DmtTransfer {
    const INSERT: &'static str = concat!(
        "INSERT INTO dmt_transfers (",
        dmt_columns!(),
        ", updated_at) SELECT *, created_at FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], \
         $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], \
         $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::text[], $17::bigint[], $18::text[]) AS u(",
        dmt_columns!(),
        ")"
    );
    /// "payrail" in ASCII and a number, as `MIGRATION_LOCK`.
    const ID_LOCK: i64 = 0x7061_7972_6169_6c02;
    const COUNTER: &'static str = "dmt_number_counter";
    const STATUS_LOOKUP: &'static LazyLock<String> = &super::lookup_batches::BATCH_DMT;
}

impl PgTable for BillPayment {
    const INSERT: &'static str = concat!(
        "INSERT INTO bill_payments (",
        bill_columns!(),
        ", updated_at) SELECT *, created_at FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], \
         $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::text[], \
         $13::text[], $14::bigint[], $15::text[], $16::bigint[]) AS u(",
        bill_columns!(),
        ")"
    );
    const ID_LOCK: i64 = 0x7061_7972_6169_6c03;
    const COUNTER: &'static str = "bbps_number_counter";
    const STATUS_LOOKUP: &'static LazyLock<String> = &super::lookup_batches::BATCH_BILL;
}

/// The steps of a change inside the caller's database transaction.
struct Steps<'a, 'b>(&'a Transaction<'b>);

impl ChangeSteps for Steps<'_, '_> {
    async fn lock<T: TxnTable>(&self, id: i64) -> StoreResult<Option<T>> {
        let row = query_opt(self.0, T::FOR_UPDATE, &[&id], "Failed to lock the transaction").await?;
        decode(row, |row| T::decode(row, 0))
    }

    async fn new_refund_id(&self, kind: TxnKind, id: i64, at: Timestamp) -> StoreResult<String> {
        let params: [&(dyn ToSql + Sync); 3] = [&kind.as_str(), &id, &at.unix()];
        let row = query_one(self.0, sql::INSERT_REFUND, &params, "Failed to allocate a refund id").await?;
        let refund: i64 = row.try_get(0).store_context("Failed to read the new refund id")?;
        Ok(refund.to_string())
    }

    async fn pay_back(&self, kind: TxnKind, id: i64, at: Timestamp) -> StoreResult<()> {
        pay_back(self.0, kind, id, at).await
    }

    async fn save<T: TxnTable>(&self, record: &T, at: Timestamp) -> StoreResult<()> {
        let (at, id) = (at.unix(), record.id());
        let changed = record.changed_values();
        let mut params = bind_all(&changed);
        params.extend([&at as &(dyn ToSql + Sync), &id]);
        execute(self.0, T::UPDATE, &params, "Failed to update the transaction").await?;
        Ok(())
    }

    async fn add_history<T: TxnTable>(&self, record: &T, from: &str, note: &ChangeNote) -> StoreResult<()> {
        let values = shared::history_values(T::KIND, record.id(), Some(from), record.status_name(), note);
        execute(self.0, sql::INSERT_HISTORY, &bind_all(&values), "Failed to record the status history").await?;
        Ok(())
    }

    async fn add_audit(&self, entry: &crate::domain::operator::NewAuditEntry) -> StoreResult<()> {
        super::operators::append(self.0, entry).await.map(drop)
    }

    async fn add_event<T: TxnTable>(&self, record: &T, at: Timestamp) -> StoreResult<()> {
        let (txn, status) = ((T::KIND, record.id()), record.status_name());
        insert_event(self.0, record.partner(), txn, status, &record.event_payload(at), at).await
    }

    async fn end_poll(&self, kind: TxnKind, id: i64) -> StoreResult<()> {
        end_poll(self.0, kind, id).await
    }

    async fn last_reason(&self, kind: TxnKind, id: i64) -> StoreResult<Option<String>> {
        let row =
            query_opt(self.0, sql::LAST_REASON, &[&kind.as_str(), &id], "Failed to read the status history").await?;
        match row {
            Some(row) => row.try_get(0).store_context("Failed to read a history reason"),
            None => Ok(None),
        }
    }
}

/// The status history of one transaction, oldest first.
async fn history(client: &impl GenericClient, kind: TxnKind, id: i64) -> StoreResult<Vec<HistoryEntry>> {
    let rows = query(client, sql::HISTORY, &[&kind.as_str(), &id], "Failed to read the status history").await?;
    decode_all(&rows, shared::decode_history, "Failed to read a status history row")
}

/// Records the route of a transfer made through the DMT V1 API.
pub(super) async fn insert_route(tx: &Transaction<'_>, transfer: &DmtTransfer, route: &DmtRoute) -> StoreResult<()> {
    let values = shared::route_values(transfer, route);
    execute(tx, sql::INSERT_ROUTE, &bind_all(&values), "Failed to record the transfer's route").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::super::test_db::*;
    use super::*;
    use crate::store::postgres::test_db::postgres_tests;
    use crate::store::transactions::conformance;

    postgres_tests!(
        a_refund_gets_a_new_refund_id_and_every_change_a_history_row,
        a_failed_bill_is_refunded_in_the_same_transaction,
        a_transfer_held_for_review_moves_only_by_an_operator,
        bill_payments_go_through_the_same_life,
        a_payment_from_the_wallet_is_stored_with_its_upstream_reference,
        a_batch_keeps_explicit_ids_and_numbers_the_rest_in_the_nine_digit_range,
        a_large_batch_reports_progress_and_returns_ids_in_row_order,
        a_duplicate_reference_names_its_row_and_nothing_is_inserted,
        a_reference_taken_by_a_concurrent_insert_still_names_its_row
    );

    /// The bodies of the tests above, each run on a store of its own; the
    /// first four are both engines' (`conformance`).
    mod cases {
        use super::*;

        pub(super) use conformance::{
            a_failed_bill_is_refunded_in_the_same_transaction,
            a_payment_from_the_wallet_is_stored_with_its_upstream_reference,
            a_transfer_held_for_review_moves_only_by_an_operator, bill_payments_go_through_the_same_life,
        };

        pub(super) async fn a_refund_gets_a_new_refund_id_and_every_change_a_history_row(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            // The sequence keeps the id a forbidden refund took.
            conformance::a_refund_gets_a_new_refund_id_and_every_change_a_history_row(store, "2").await
        }

        pub(super) async fn a_batch_keeps_explicit_ids_and_numbers_the_rest_in_the_nine_digit_range(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            store.insert_partner(new_partner(Some(554))).await?;
            let rows =
                vec![transfer(554, 0, "A")?, transfer(554, 500, "B")?, transfer(554, 0, "C")?, transfer(554, 7, "D")?];
            let ids = store.insert_dmt_batch(rows, note("import"), no_progress()).await?;
            let nine_digits = |id: i64| (100_000_000..=999_999_999).contains(&id);
            assert!(nine_digits(ids[0]) && nine_digits(ids[2]) && ids[0] != ids[2], "{ids:?}");
            assert_eq!((ids[1], ids[3]), (500, 7));
            let more = store.insert_dmt_batch(vec![transfer(554, 0, "E")?], note("import"), no_progress()).await?;
            assert!(nine_digits(more[0]) && !ids.contains(&more[0]), "{more:?}");
            let found = store.lookup_dmt(RegistrationId::new(554), "B").await?.and_then(|(_, t)| t);
            assert_eq!(found.map(|t| t.ackno), Some(500));
            assert_eq!(store.lookup_dmt(RegistrationId::new(554), "Z").await?.and_then(|(_, t)| t), None);
            assert_eq!(store.counts().await?, (5, 0));
            Ok(())
        }

        pub(super) async fn a_large_batch_reports_progress_and_returns_ids_in_row_order(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            store.insert_partner(new_partner(Some(554))).await?;
            let mut rows = transfers(554, "R", 12_000)?;
            rows[6_000].ackno = 1_000_000;
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let recorder = Arc::clone(&seen);
            let progress: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |n| {
                if let Ok(mut seen) = recorder.lock() {
                    seen.push(n);
                }
            });
            let ids = store.insert_dmt_batch(rows, note("import"), progress).await?;
            assert_eq!(ids[6_000], 1_000_000);
            assert!(ids.iter().enumerate().all(|(i, id)| i == 6_000 || (100_000_000..1_000_000_000).contains(id)));
            assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
            let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
            assert_eq!(seen, vec![5_000, 10_000, 12_000]);
            let found = store.lookup_dmt(RegistrationId::new(554), "R11999").await?.and_then(|(_, t)| t);
            assert_eq!(found.map(|t| t.ackno), Some(ids[11_999]));
            let history = store.dmt_with_history(ids[11_999]).await?.map(|(_, h)| h);
            assert_eq!(history.map(|h| h.len()), Some(1));
            Ok(())
        }

        pub(super) async fn a_duplicate_reference_names_its_row_and_nothing_is_inserted(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            store.insert_partner(new_partner(Some(554))).await?;
            let old = store.insert_dmt_batch(transfers(554, "OLD", 3)?, note("import"), no_progress()).await?;

            let mut rows = transfers(554, "NEW", 12_000)?;
            rows[10_500] = transfer(554, 0, "OLD1")?;
            let error = store.insert_dmt_batch(rows, note("import"), no_progress()).await;
            assert!(
                matches!(error, Err(InsertError::Duplicate { index: 10_500, ref reference }) if reference == "OLD1")
            );

            let mut rows = transfers(554, "NEW", 12_000)?;
            rows[7_000] = transfer(554, 0, "NEW2")?;
            let error = store.insert_dmt_batch(rows, note("import"), no_progress()).await;
            assert!(
                matches!(error, Err(InsertError::Duplicate { index: 7_000, ref reference }) if reference == "NEW2")
            );

            let rows = vec![transfer(554, 0, "X")?, transfer(554, old[0], "Y")?];
            let error = store.insert_dmt_batch(rows, note("import"), no_progress()).await;
            assert!(matches!(error, Err(InsertError::Duplicate { index: 1, ref reference }) if reference == "Y"));

            let rows = vec![transfer(554, 0, "X")?, transfer(999, 0, "Y")?];
            let error = store.insert_dmt_batch(rows, note("import"), no_progress()).await;
            assert!(matches!(error, Err(InsertError::UnknownPartner { index: 1, partner }) if partner.number() == 999));

            assert_eq!(store.counts().await?, (3, 0));
            Ok(())
        }

        pub(super) async fn a_reference_taken_by_a_concurrent_insert_still_names_its_row(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            store.insert_partner(new_partner(Some(554))).await?;
            let mut other = store.pool.get().await?;
            let racer = other.transaction().await?;
            racer
                .batch_execute(
                    "INSERT INTO dmt_transfers (partner_id, reference_id, amount, account, status, customer_charge, \
                     provider_share, gst, discount, commission, tds, net_commission, created_at, updated_at) \
                     VALUES (554, 'RACE', 1, 'x', 2, 0, 0, 0, 0, 0, 0, 0, 0, 0)",
                )
                .await?;
            let mut rows = transfers(554, "N", 3)?;
            rows[2] = transfer(554, 0, "RACE")?;
            // The batch's checks cannot see the uncommitted row; its INSERT waits
            // for the racer, which then commits first.
            let commit_later = async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                racer.commit().await
            };
            let (result, committed) =
                tokio::join!(store.insert_dmt_batch(rows, note("import"), no_progress()), commit_later);
            committed?;
            assert!(matches!(result, Err(InsertError::Duplicate { index: 2, ref reference }) if reference == "RACE"));
            assert_eq!(store.counts().await?, (1, 0));
            drop(other);
            Ok(())
        }
    }
}
