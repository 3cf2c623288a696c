//! Transactions paid from the wallet: the duplicate check, the debit, the
//! new record with its number and first history row, its journal and its
//! poll job, in one write of the writer thread (committed with its group).

use super::transactions::{debit_error, insert_row, refuse_duplicate};
use super::*;

impl SqliteStore {
    /// [`TransactionStore::create_dmt_debited`].
    pub(super) async fn dmt_debited(
        &self,
        transfer: DmtTransfer,
        route: DmtRoute,
        limit: MonthlyLimit,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<DmtTransfer>, DebitError> {
        let numbers = Arc::clone(&self.numbers);
        self.write(move |conn| {
            let tx = immediate(conn)?;
            refuse_duplicate::<DmtTransfer>(&tx, transfer.partner, &transfer.reference)?;
            let journal = Journal::dmt_debit(&transfer, note.at);
            let wallet = debit_wallet(&tx, transfer.partner, journal.wallet_change())?;
            let used =
                routed_since(&tx, transfer.partner, &route.remitter, route.bank, limit.since).map_err(store_error)?;
            if used + transfer.amount.get() > limit.limit.get() {
                return Err(DebitError::MonthlyLimit { remaining: Paise::new((limit.limit.get() - used).max(0)) });
            }
            let record = DmtTransfer { ackno: 0, ..transfer };
            let ackno = insert_row(&tx, &numbers, &record, &note, 0).map_err(debit_error)?;
            let record = DmtTransfer { ackno, ..record };
            super::transactions::insert_route(&tx, &record, &route).map_err(store_error)?;
            insert_journal(&tx, &journal.with_txn_id(ackno)).map_err(store_error)?;
            if let Some(at) = poll_at {
                upsert_poll(&tx, TxnKind::Dmt, ackno, at).map_err(store_error)?;
            }
            tx.commit().map_err(store_error)?;
            Ok(Debited { record, wallet })
        })
        .await
    }

    /// [`TransactionStore::create_bill_debited`].
    pub(super) async fn bill_debited(
        &self,
        payment: BillPayment,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<BillPayment>, DebitError> {
        let numbers = Arc::clone(&self.numbers);
        self.write(move |conn| {
            let tx = immediate(conn)?;
            refuse_duplicate::<BillPayment>(&tx, payment.partner, &payment.reference)?;
            let journal = Journal::bill_debit(&payment, note.at);
            let wallet = debit_wallet(&tx, payment.partner, journal.wallet_change())?;
            let record = BillPayment { txnid: 0, ..payment };
            let txnid = insert_row(&tx, &numbers, &record, &note, 0).map_err(debit_error)?;
            let record = BillPayment { txnid, ..record };
            insert_journal(&tx, &journal.with_txn_id(txnid)).map_err(store_error)?;
            if let Some(at) = poll_at {
                upsert_poll(&tx, TxnKind::Bbps, txnid, at).map_err(store_error)?;
            }
            tx.commit().map_err(store_error)?;
            Ok(Debited { record, wallet })
        })
        .await
    }
}
