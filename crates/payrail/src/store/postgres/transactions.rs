//! DMT transfers and bill payments: status lookups, imports, state changes with their history rows and refunds, and the creation of transactions paid from the wallet.

use super::*;
use crate::store::lookup;

#[async_trait]
impl TransactionStore for PostgresStore {
    async fn lookup_dmt(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> Result<Option<(Partner, Option<DmtTransfer>)>, StoreError> {
        Ok(self.status_dmt(partner, reference, &|_| None).await?.map(|found| (found.partner, found.record)))
    }

    async fn lookup_dmt_checked(
        &self,
        partner: RegistrationId,
        reference: &str,
        precheck: lookup::Precheck<'_>,
    ) -> Result<Option<lookup::StatusLookup<DmtTransfer>>, StoreError> {
        self.status_dmt(partner, reference, precheck).await
    }

    async fn dmt_with_history(&self, ackno: i64) -> Result<Option<(DmtTransfer, Vec<HistoryEntry>)>, StoreError> {
        let client = self.client().await?;
        let row = query_opt(&client, DMT_BY_ACKNO, &[&ackno], "Failed to find the transfer").await?;
        let Some(transfer) = decode(row, dmt_from_row)? else { return Ok(None) };
        Ok(Some((transfer, history(&client, TxnKind::Dmt, ackno).await?)))
    }

    async fn insert_dmt_batch(
        &self,
        rows: Vec<DmtTransfer>,
        note: ChangeNote,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Vec<i64>, InsertError> {
        self.insert_batch(rows, note, progress).await
    }

    async fn change_dmt(&self, ackno: i64, change: DmtChange, note: ChangeNote) -> Result<DmtTransfer, ChangeError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the change")?;
        let mut transfer = lock_dmt(&tx, ackno).await?.ok_or(ChangeError::NotFound)?;
        let from = transfer.status;
        let change = match change {
            DmtChange::Refund { refund_txn_id } if refund_txn_id.is_empty() => {
                DmtChange::Refund { refund_txn_id: allocate_refund_id(&tx, TxnKind::Dmt, ackno, note.at).await? }
            }
            other => other,
        };
        transfer.apply(&change, note.at)?;
        if transfer.status == DmtStatus::Refunded {
            pay_back(&tx, TxnKind::Dmt, ackno, note.at).await?;
        }
        save_dmt(&tx, &transfer, note.at).await?;
        insert_history(&tx, TxnKind::Dmt, ackno, Some(from.name()), transfer.status.name(), &note).await?;
        let payload = event::dmt_payload(&transfer, note.at);
        insert_event(&tx, transfer.partner, (TxnKind::Dmt, ackno), transfer.status.name(), &payload, note.at).await?;
        if !upstream::dmt_needs_polling(&transfer) {
            end_poll(&tx, TxnKind::Dmt, ackno).await?;
        }
        tx.commit().await.store_context("Failed to commit the change")?;
        Ok(transfer)
    }

    async fn lookup_bill(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> Result<Option<(Partner, Option<BillPayment>)>, StoreError> {
        Ok(self.status_bill(partner, reference, &|_| None).await?.map(|found| (found.partner, found.record)))
    }

    async fn lookup_bill_checked(
        &self,
        partner: RegistrationId,
        reference: &str,
        precheck: lookup::Precheck<'_>,
    ) -> Result<Option<lookup::StatusLookup<BillPayment>>, StoreError> {
        self.status_bill(partner, reference, precheck).await
    }

    async fn bill_with_history(&self, txnid: i64) -> Result<Option<(BillPayment, Vec<HistoryEntry>)>, StoreError> {
        let client = self.client().await?;
        let row = query_opt(&client, BILL_BY_TXNID, &[&txnid], "Failed to find the bill payment").await?;
        let Some(bill) = decode(row, bill_from_row)? else { return Ok(None) };
        Ok(Some((bill, history(&client, TxnKind::Bbps, txnid).await?)))
    }

    async fn insert_bill_batch(
        &self,
        rows: Vec<BillPayment>,
        note: ChangeNote,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Vec<i64>, InsertError> {
        self.insert_batch(rows, note, progress).await
    }

    async fn change_bill(&self, txnid: i64, change: BillChange, note: ChangeNote) -> Result<BillPayment, ChangeError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the change")?;
        let bill = lock_bill(&tx, txnid).await?.ok_or(ChangeError::NotFound)?;
        let bill = change_bill_in(&tx, bill, change, &note).await?;
        tx.commit().await.store_context("Failed to commit the change")?;
        Ok(bill)
    }

    async fn fail_bill(&self, txnid: i64, note: ChangeNote, refund: ChangeNote) -> Result<BillPayment, ChangeError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the failure")?;
        let mut bill = lock_bill(&tx, txnid).await?.ok_or(ChangeError::NotFound)?;
        if bill.status != BillStatus::Failed {
            bill = change_bill_in(&tx, bill, BillChange::Fail, &note).await?;
        }
        let bill = change_bill_in(&tx, bill, BillChange::Refund { refund_txn_id: String::new() }, &refund).await?;
        tx.commit().await.store_context("Failed to commit the failure")?;
        Ok(bill)
    }

    async fn counts(&self) -> Result<(i64, i64), StoreError> {
        let client = self.client().await?;
        let sql = "SELECT (SELECT COUNT(*) FROM dmt_transfers), (SELECT COUNT(*) FROM bill_payments)";
        let row = query_one(&client, sql, &[], "Failed to count the transactions").await?;
        let dmt = row.try_get(0).store_context("Failed to read the transfer count")?;
        let bills = row.try_get(1).store_context("Failed to read the bill payment count")?;
        Ok((dmt, bills))
    }

    async fn create_dmt_debited(
        &self,
        transfer: DmtTransfer,
        route: DmtRoute,
        limit: MonthlyLimit,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<DmtTransfer>, DebitError> {
        self.dmt_debited(transfer, route, limit, note, poll_at).await
    }

    async fn dmt_route(&self, ackno: i64) -> Result<Option<DmtRoute>, StoreError> {
        let client = self.client().await?;
        let row = query_opt(&client, ROUTE_BY_ACKNO, &[&ackno], "Failed to find the transfer's route").await?;
        decode(row, route_from_row)
    }

    async fn create_bill_debited(
        &self,
        payment: BillPayment,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<BillPayment>, DebitError> {
        self.bill_debited(payment, note, poll_at).await
    }
}
