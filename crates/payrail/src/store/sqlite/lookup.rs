//! Status lookups: the partner and its record with the reference asked
//! for, in one statement, run inline on the calling task.

use super::*;

/// The partner columns qualified for a join.
const PARTNER_COLUMNS_P: &str = "p.id, p.name, p.status, p.require_token, p.allow_ips, p.secret, p.previous_secret, \
                                 p.previous_secret_until, p.authorised_key_hash, p.created_at";
/// The transfer columns qualified for a join.
const DMT_COLUMNS_T: &str = "t.ackno, t.partner_id, t.reference_id, t.amount, t.account, t.utr, t.status, \
                             t.customer_charge, t.provider_share, t.gst, t.discount, t.commission, t.tds, \
                             t.net_commission, t.created_at, t.refund_txn_id, t.refunded_at";
/// The bill payment columns qualified for a join.
const BILL_COLUMNS_T: &str = "t.txnid, t.partner_id, t.reference_id, t.operator_name, t.ca_number, t.amount, t.ad1, \
                              t.ad2, t.ad3, t.commission, t.tds, t.status, t.operator_ref, t.created_at, \
                              t.refund_txn_id, t.refunded_at";

/// The whole DMT status lookup, built once rather than on every request.
static LOOKUP_DMT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {PARTNER_COLUMNS_P}, {DMT_COLUMNS_T} FROM partners p \
         LEFT JOIN dmt_transfers t ON t.partner_id = p.id AND t.reference_id = ?2 WHERE p.id = ?1"
    )
});

/// The whole BBPS status lookup, built once.
static LOOKUP_BILL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {PARTNER_COLUMNS_P}, {BILL_COLUMNS_T} FROM partners p \
         LEFT JOIN bill_payments t ON t.partner_id = p.id AND t.reference_id = ?2 WHERE p.id = ?1"
    )
});

impl SqliteStore {
    /// [`TransactionStore::lookup_dmt`].
    pub(super) fn find_dmt_for_status(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> Result<Option<(Partner, Option<DmtTransfer>)>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&LOOKUP_DMT)?
                .query_row(params![partner.number(), reference], |row| {
                    let transfer =
                        row.get::<_, Option<i64>>(PARTNER_WIDTH)?.map(|_| dmt_at(row, PARTNER_WIDTH)).transpose()?;
                    Ok((partner_at(row, 0)?, transfer))
                })
                .optional()
        })
    }

    /// [`TransactionStore::lookup_bill`].
    pub(super) fn find_bill_for_status(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> Result<Option<(Partner, Option<BillPayment>)>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&LOOKUP_BILL)?
                .query_row(params![partner.number(), reference], |row| {
                    let payment =
                        row.get::<_, Option<i64>>(PARTNER_WIDTH)?.map(|_| bill_at(row, PARTNER_WIDTH)).transpose()?;
                    Ok((partner_at(row, 0)?, payment))
                })
                .optional()
        })
    }
}
