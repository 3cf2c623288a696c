//! Transactions paid from the wallet: the debit, the new record with its
//! number and first history row, its journal and its poll job, in one
//! database transaction.

use super::*;

impl PostgresStore {
    /// [`TransactionStore::create_dmt_debited`].
    pub(super) async fn dmt_debited(
        &self,
        transfer: DmtTransfer,
        route: DmtRoute,
        limit: MonthlyLimit,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<DmtTransfer>, DebitError> {
        let partner = transfer.partner;
        let result = self.debit_dmt(transfer, &route, &limit, &note, poll_at).await;
        self.settle(partner, result).await
    }

    /// [`TransactionStore::create_bill_debited`].
    pub(super) async fn bill_debited(
        &self,
        payment: BillPayment,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<BillPayment>, DebitError> {
        let partner = payment.partner;
        let result = self.debit_bill(payment, &note, poll_at).await;
        self.settle(partner, result).await
    }

    /// [`Store::create_dmt_debited`], before the outcome is reported.
    async fn debit_dmt(
        &self,
        mut transfer: DmtTransfer,
        route: &DmtRoute,
        limit: &MonthlyLimit,
        note: &ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<DmtTransfer>, Stop> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the transfer")?;
        transfer.ackno = 0;
        let journal = Journal::dmt_debit(&transfer, note.at);
        let wallet = charge_wallet(&tx, transfer.partner, journal.wallet_change()).await?;
        check_limit(&tx, &transfer, route, limit).await?;
        transfer.ackno = insert_new(&tx, &self.numbers, &transfer, note).await?;
        insert_route(&tx, &transfer, route).await?;
        insert_journal(&tx, &journal.with_txn_id(transfer.ackno)).await?;
        if let Some(at) = poll_at {
            schedule_poll(&tx, TxnKind::Dmt, transfer.ackno, at).await?;
        }
        tx.commit().await.store_context("Failed to commit the transfer")?;
        Ok(Debited { record: transfer, wallet })
    }

    /// [`Store::create_bill_debited`], before the outcome is reported.
    async fn debit_bill(
        &self,
        mut payment: BillPayment,
        note: &ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<BillPayment>, Stop> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the bill payment")?;
        payment.txnid = 0;
        let journal = Journal::bill_debit(&payment, note.at);
        let wallet = charge_wallet(&tx, payment.partner, journal.wallet_change()).await?;
        payment.txnid = insert_new(&tx, &self.numbers, &payment, note).await?;
        insert_journal(&tx, &journal.with_txn_id(payment.txnid)).await?;
        if let Some(at) = poll_at {
            schedule_poll(&tx, TxnKind::Bbps, payment.txnid, at).await?;
        }
        tx.commit().await.store_context("Failed to commit the bill payment")?;
        Ok(Debited { record: payment, wallet })
    }
}
