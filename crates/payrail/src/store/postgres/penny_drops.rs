//! Penny drops on PostgreSQL. The SQL both engines run is in
//! [`crate::store::penny_drops::sql`]; what only PostgreSQL runs (the row
//! lock that serialises two outcomes of one penny drop) is here.

use super::columns::bind_all;
use super::ledger::{charge_wallet, insert_journal, move_wallet};
use super::*;
use crate::domain::penny_drop::{PennyDrop, PennyDropStatus};
use crate::store::penny_drops::{penny_drop_from_row, penny_drop_list, penny_drop_values, penny_drop_violations, sql};
use crate::store::PennyDropStore;

/// [`sql::FIND_PENNY_DROP`], locking the row until the outcome is saved.
const LOCK_PENNY_DROP: &str = concat!("SELECT ", penny_drop_list!(), " FROM penny_drops WHERE id = $1 FOR UPDATE");

impl PostgresStore {
    /// [`PennyDropStore::open_penny_drop`] in one transaction.
    async fn open(&self, drop: &PennyDrop) -> Result<(i64, WalletMove), Stop> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the penny drop")?;
        let journal = drop.fee_journal();
        let wallet = charge_wallet(&tx, drop.partner, journal.wallet_change()).await?;
        let journal_id = insert_journal(&tx, &journal).await?;
        let values = penny_drop_values(drop, journal_id);
        // A concurrent penny drop with the same reference waits here for the
        // first to commit, then fails on the unique index and rolls back.
        let row =
            match query_one(&tx, sql::INSERT_PENNY_DROP, &bind_all(&values), "Failed to record the penny drop").await {
                Ok(row) => row,
                Err(e) if sql_state(&e) == Some(&SqlState::UNIQUE_VIOLATION) => {
                    return Err(Stop::Refused(DebitError::Duplicate(drop.reference.as_str().to_owned())));
                }
                Err(e) => return Err(e.into()),
            };
        let id = row.try_get(0).store_context("Failed to read the penny drop id")?;
        super::chain::commit_sealed(tx, "Failed to commit the penny drop").await?;
        Ok((id, wallet))
    }
}

#[async_trait]
impl PennyDropStore for PostgresStore {
    async fn open_penny_drop(&self, drop: PennyDrop) -> Result<(PennyDrop, WalletMove), DebitError> {
        let result = self.open(&drop).await;
        let (id, wallet) = self.settle(drop.partner, result).await?;
        Ok((PennyDrop { id, ..drop }, wallet))
    }

    async fn settle_penny_drop(&self, id: i64, outcome: PennyDropOutcome) -> StoreResult<Option<PennyDrop>> {
        let PennyDropOutcome { status, at } = outcome;
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the penny drop's outcome")?;
        let row = query_opt(&tx, LOCK_PENNY_DROP, &[&id], "Failed to lock the penny drop").await?;
        let Some(drop) = decode(row, penny_drop_from_row)? else { return Ok(None) };
        if drop.status != PennyDropStatus::Pending {
            return Ok(Some(drop));
        }
        let mut refund_journal_id: Option<i64> = None;
        if status == PennyDropStatus::Failed {
            let refund = drop.refund_journal(at);
            move_wallet(&tx, drop.partner, refund.wallet_change()).await?;
            refund_journal_id = Some(insert_journal(&tx, &refund).await?);
        }
        let name = status.name_at_bank();
        let decided: [&(dyn ToSql + Sync); 5] = [&status.as_str(), &name, &at.unix(), &refund_journal_id, &id];
        execute(&tx, sql::DECIDE_PENNY_DROP, &decided, "Failed to record the penny drop's outcome").await?;
        if let (Some(name), Some(beneficiary)) = (name, drop.beneficiary_id) {
            let verified: [&(dyn ToSql + Sync); 3] = [&name, &beneficiary, &drop.partner.number()];
            execute(&tx, sql::VERIFY_BENEFICIARY, &verified, "Failed to verify the beneficiary").await?;
        }
        let row = query_opt(&tx, sql::FIND_PENNY_DROP, &[&id], "Failed to read the penny drop").await?;
        let settled = decode(row, penny_drop_from_row)?;
        super::chain::commit_sealed(tx, "Failed to commit the penny drop's outcome").await?;
        Ok(settled)
    }

    async fn find_penny_drop(&self, partner: RegistrationId, reference: &str) -> StoreResult<Option<PennyDrop>> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 2] = [&partner.number(), &reference];
        let row = query_opt(&client, sql::PENNY_DROP_BY_REFERENCE, &params, "Failed to find the penny drop").await?;
        decode(row, penny_drop_from_row)
    }

    async fn pending_penny_drops(&self, before: Timestamp) -> StoreResult<Vec<PennyDrop>> {
        let client = self.client().await?;
        let rows = query(&client, sql::PENDING_PENNY_DROPS, &[&before.unix()], "Failed to list penny drops").await?;
        decode_all(&rows, penny_drop_from_row, "Failed to read a penny drop")
    }

    async fn audit_penny_drops(&self) -> StoreResult<Vec<String>> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let rows = query(&tx, sql::AUDIT_FEE_NOT_DEBITED, &[], "Failed to audit penny drop fees").await?;
        let fee_not_debited: Vec<i64> =
            decode_all(&rows, |r| Ok(r.try_get(0)?), "Failed to read the penny drop audit")?;
        let rows = query(&tx, sql::AUDIT_REFUND_MISMATCH, &[], "Failed to audit penny drop refunds").await?;
        let mismatch: Vec<(i64, String)> = decode_all(&rows, |r| Ok(pair(r)?), "Failed to read the penny drop audit")?;
        tx.commit().await.store_context("Failed to end the penny drop audit")?;
        Ok(penny_drop_violations(&fee_not_debited, &mismatch))
    }
}
