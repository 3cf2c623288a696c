//! Status lookups: the partner and its record with the reference asked
//! for, in one statement, run inline on the calling task.

use super::*;
use crate::store::transactions::{bill_columns, dmt_columns, TxnTable};

/// The whole DMT status lookup, built once rather than on every request.
static LOOKUP_DMT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {PARTNER_COLUMNS_P}, {} FROM partners p \
         LEFT JOIN dmt_transfers t ON t.partner_id = p.id AND t.reference_id = ?2 WHERE p.id = ?1",
        dmt_columns!("t")
    )
});

/// The whole BBPS status lookup, built once.
static LOOKUP_BILL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {PARTNER_COLUMNS_P}, {} FROM partners p \
         LEFT JOIN bill_payments t ON t.partner_id = p.id AND t.reference_id = ?2 WHERE p.id = ?1",
        bill_columns!("t")
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
                    let transfer = row
                        .get::<_, Option<i64>>(PARTNER_WIDTH)?
                        .map(|_| DmtTransfer::decode(row, PARTNER_WIDTH))
                        .transpose()?;
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
                    let payment = row
                        .get::<_, Option<i64>>(PARTNER_WIDTH)?
                        .map(|_| BillPayment::decode(row, PARTNER_WIDTH))
                        .transpose()?;
                    Ok((partner_at(row, 0)?, payment))
                })
                .optional()
        })
    }
}
