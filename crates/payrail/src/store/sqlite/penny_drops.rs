//! Penny drops on SQLite. The SQL both engines run is in
//! [`crate::store::penny_drops::sql`]; the one writer connection serialises
//! every write, so no locks are taken here.

use rusqlite::params_from_iter;

use super::*;
use crate::domain::penny_drop::{PennyDrop, PennyDropStatus};
use crate::store::penny_drops::{penny_drop_from_row, penny_drop_values, penny_drop_violations, sql};
use crate::store::PennyDropStore;

fn find(conn: &Connection, id: i64) -> rusqlite::Result<Option<PennyDrop>> {
    optional_row(conn, sql::FIND_PENNY_DROP, [id], |row| penny_drop_from_row(row))
}

#[async_trait]
impl PennyDropStore for SqliteStore {
    async fn open_penny_drop(&self, drop: PennyDrop) -> Result<(PennyDrop, WalletMove), DebitError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let journal = drop.fee_journal();
            let wallet = debit_wallet(&tx, drop.partner, journal.wallet_change())?;
            let journal_id = insert_journal(&tx, &journal).map_err(store_error)?;
            let id = tx
                .prepare_cached(sql::INSERT_PENNY_DROP)
                .and_then(|mut s| s.query_row(params_from_iter(penny_drop_values(&drop, journal_id)), |r| r.get(0)))
                .map_err(|e| match is_unique_violation(&e) {
                    true => DebitError::Duplicate(drop.reference.as_str().to_owned()),
                    false => DebitError::Store(store_error(e)),
                })?;
            tx.commit().map_err(store_error)?;
            Ok((PennyDrop { id, ..drop }, wallet))
        })
        .await
    }

    async fn settle_penny_drop(&self, id: i64, outcome: PennyDropOutcome) -> StoreResult<Option<PennyDrop>> {
        let PennyDropOutcome { status, at } = outcome;
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let Some(drop) = find(&tx, id).map_err(store_error)? else { return Ok(None) };
            if drop.status != PennyDropStatus::Pending {
                return Ok(Some(drop));
            }
            let refund_journal_id = match status {
                PennyDropStatus::Failed => {
                    let refund = drop.refund_journal(at);
                    add_to_wallet(&tx, drop.partner, refund.wallet_change()).map_err(store_error)?;
                    Some(insert_journal(&tx, &refund).map_err(store_error)?)
                }
                _ => None,
            };
            let name = status.name_at_bank();
            let decided = params![status.as_str(), name, at.unix(), refund_journal_id, id];
            execute(&tx, sql::DECIDE_PENNY_DROP, decided)?;
            if let (Some(name), Some(beneficiary)) = (name, drop.beneficiary_id) {
                execute(&tx, sql::VERIFY_BENEFICIARY, params![name, beneficiary, drop.partner.number()])?;
            }
            let settled = find(&tx, id).map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(settled)
        })
        .await
    }

    async fn find_penny_drop(&self, partner: RegistrationId, reference: &str) -> StoreResult<Option<PennyDrop>> {
        self.read(|conn| {
            optional_row(conn, sql::PENNY_DROP_BY_REFERENCE, params![partner.number(), reference], |row| {
                penny_drop_from_row(row)
            })
        })
    }

    async fn pending_penny_drops(&self, before: Timestamp) -> StoreResult<Vec<PennyDrop>> {
        self.read(|conn| all_rows(conn, sql::PENDING_PENNY_DROPS, [before.unix()], |row| penny_drop_from_row(row)))
    }

    async fn audit_penny_drops(&self) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let fee_not_debited = all_rows(conn, sql::AUDIT_FEE_NOT_DEBITED, [], |r| r.get(0))?;
            let refund_mismatch = all_rows(conn, sql::AUDIT_REFUND_MISMATCH, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(penny_drop_violations(&fee_not_debited, &refund_mismatch))
        })
    }
}
