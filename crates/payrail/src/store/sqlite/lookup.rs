//! Status lookups: the partner and its record with the reference asked
//! for, in one statement, run inline on the calling task.

use super::*;
use crate::store::transactions::{bill_columns, dmt_columns, TxnTable};

/// The whole DMT status lookup, built once rather than on every request.
pub(super) static LOOKUP_DMT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {PARTNER_COLUMNS_P}, {} FROM partners p \
         LEFT JOIN dmt_transfers t ON t.partner_id = p.id AND t.reference_id = ?2 WHERE p.id = ?1",
        dmt_columns!("t")
    )
});

/// The whole BBPS status lookup, built once.
pub(super) static LOOKUP_BILL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {PARTNER_COLUMNS_P}, {} FROM partners p \
         LEFT JOIN bill_payments t ON t.partner_id = p.id AND t.reference_id = ?2 WHERE p.id = ?1",
        bill_columns!("t")
    )
});

impl SqliteStore {
    /// A status lookup without a `reqid` ([`crate::store::transactions::KindStore::lookup`]):
    /// `sql` is the kind's statement ([`LOOKUP_DMT`], [`LOOKUP_BILL`]), run
    /// in a kept read snapshot (see [`super::readers::Readers::recent`]).
    pub(super) fn find_for_status<T: TxnTable>(
        &self,
        sql: &str,
        partner: RegistrationId,
        reference: &str,
    ) -> StoreResult<Option<(Partner, Option<T>)>> {
        self.readers.recent(|conn| {
            conn.prepare_cached(sql)?
                .query_row(params![partner.number(), reference], |row| {
                    let record =
                        row.get::<_, Option<i64>>(PARTNER_WIDTH)?.map(|_| T::decode(row, PARTNER_WIDTH)).transpose()?;
                    Ok((partner_at(row, 0)?, record))
                })
                .optional()
        })
    }
}
