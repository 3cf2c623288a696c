//! DMT transfers and bill payments: status lookups, imports, state changes with their history rows and refunds, and the creation of transactions paid from the wallet.

use super::*;

#[async_trait]
impl TransactionStore for SqliteStore {
    async fn lookup_dmt(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> Result<Option<(Partner, Option<DmtTransfer>)>, StoreError> {
        self.find_dmt_for_status(partner, reference)
    }

    async fn dmt_with_history(&self, ackno: i64) -> Result<Option<(DmtTransfer, Vec<HistoryEntry>)>, StoreError> {
        self.read(|conn| {
            let transfer = conn
                .prepare_cached(&format!("SELECT {DMT_COLUMNS} FROM dmt_transfers WHERE ackno = ?1"))?
                .query_row([ackno], dmt_from_row)
                .optional()?;
            transfer.map(|t| Ok((t, history(conn, TxnKind::Dmt, ackno)?))).transpose()
        })
    }

    async fn insert_dmt_batch(
        &self,
        rows: Vec<DmtTransfer>,
        note: ChangeNote,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Vec<i64>, InsertError> {
        let numbers = Arc::clone(&self.numbers);
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let mut ids = Vec::with_capacity(rows.len());
            for (index, row) in rows.iter().enumerate() {
                ids.push(insert_dmt(&tx, &numbers, row, &note, index)?);
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

    async fn change_dmt(&self, ackno: i64, change: DmtChange, note: ChangeNote) -> Result<DmtTransfer, ChangeError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let mut transfer = tx
                .prepare_cached(&format!("SELECT {DMT_COLUMNS} FROM dmt_transfers WHERE ackno = ?1"))
                .and_then(|mut s| s.query_row([ackno], dmt_from_row).optional())
                .map_err(store_error)?
                .ok_or(ChangeError::NotFound)?;
            let from = transfer.status;
            let change = match change {
                DmtChange::Refund { refund_txn_id } if refund_txn_id.is_empty() => DmtChange::Refund {
                    refund_txn_id: allocate_refund_id(&tx, TxnKind::Dmt, ackno, note.at).map_err(store_error)?,
                },
                other => other,
            };
            transfer.apply(&change, note.at)?;
            tx.prepare_cached(
                "UPDATE dmt_transfers SET status = ?1, utr = ?2, refund_txn_id = ?3, refunded_at = ?4, updated_at = ?5 WHERE ackno = ?6",
            )
            .and_then(|mut s| {
                s.execute(params![
                    transfer.status.code(),
                    transfer.utr,
                    transfer.refund_txn_id,
                    transfer.refunded_at.map(Timestamp::unix),
                    note.at.unix(),
                    ackno
                ])
            })
            .map_err(store_error)?;
            insert_history(&tx, TxnKind::Dmt, ackno, Some(from.name()), transfer.status.name(), &note)
                .map_err(store_error)?;
            if transfer.status == DmtStatus::Refunded {
                pay_refund(&tx, TxnKind::Dmt, ackno, note.at)?;
            }
            write_event(&tx, transfer.partner, (TxnKind::Dmt, ackno), transfer.status.name(), note.at, || {
                dmt_payload(&transfer, note.at)
            })
            .map_err(store_error)?;
            if !upstream::dmt_needs_polling(&transfer) {
                end_poll(&tx, TxnKind::Dmt, ackno).map_err(store_error)?;
            }
            tx.commit().map_err(store_error)?;
            Ok(transfer)
        })
        .await
    }

    async fn lookup_bill(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> Result<Option<(Partner, Option<BillPayment>)>, StoreError> {
        self.find_bill_for_status(partner, reference)
    }

    async fn bill_with_history(&self, txnid: i64) -> Result<Option<(BillPayment, Vec<HistoryEntry>)>, StoreError> {
        self.read(|conn| {
            let bill = conn
                .prepare_cached(&format!("SELECT {BILL_COLUMNS} FROM bill_payments WHERE txnid = ?1"))?
                .query_row([txnid], bill_from_row)
                .optional()?;
            bill.map(|b| Ok((b, history(conn, TxnKind::Bbps, txnid)?))).transpose()
        })
    }

    async fn insert_bill_batch(
        &self,
        rows: Vec<BillPayment>,
        note: ChangeNote,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Vec<i64>, InsertError> {
        let numbers = Arc::clone(&self.numbers);
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let mut ids = Vec::with_capacity(rows.len());
            for (index, row) in rows.iter().enumerate() {
                ids.push(insert_bill(&tx, &numbers, row, &note, index)?);
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

    async fn change_bill(&self, txnid: i64, change: BillChange, note: ChangeNote) -> Result<BillPayment, ChangeError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let bill = change_bill_in(&tx, txnid, change, &note)?;
            tx.commit().map_err(store_error)?;
            Ok(bill)
        })
        .await
    }

    async fn fail_bill(&self, txnid: i64, note: ChangeNote, refund: ChangeNote) -> Result<BillPayment, ChangeError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let current = tx
                .prepare_cached("SELECT status FROM bill_payments WHERE txnid = ?1")
                .and_then(|mut s| s.query_row([txnid], |r| r.get::<_, String>(0)).optional())
                .map_err(store_error)?
                .ok_or(ChangeError::NotFound)?;
            if BillStatus::parse(&current) != Some(BillStatus::Failed) {
                change_bill_in(&tx, txnid, BillChange::Fail, &note)?;
            }
            let bill = change_bill_in(&tx, txnid, BillChange::Refund { refund_txn_id: String::new() }, &refund)?;
            tx.commit().map_err(store_error)?;
            Ok(bill)
        })
        .await
    }

    async fn counts(&self) -> Result<(i64, i64), StoreError> {
        self.read(|conn| {
            let dmt = conn.query_row("SELECT COUNT(*) FROM dmt_transfers", [], |r| r.get(0))?;
            let bills = conn.query_row("SELECT COUNT(*) FROM bill_payments", [], |r| r.get(0))?;
            Ok((dmt, bills))
        })
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
        self.read(|conn| {
            conn.prepare_cached("SELECT remitter_mobile, beneficiary_id, bank, mode FROM dmt_routes WHERE ackno = ?1")?
                .query_row([ackno], route_from_row)
                .optional()
        })
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
