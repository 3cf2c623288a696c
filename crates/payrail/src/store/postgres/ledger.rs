//! The double-entry wallet ledger (journals, postings, wallet balances and statements, the audit behind `payrail verify`) and the partners' fee plans.
//!
//! The SQL both engines share is in [`crate::store::ledger::sql`]. The
//! wallet helpers ([`charge_wallet`], [`move_wallet`], [`insert_journal`],
//! [`debit_journal`], [`pay_back`]) are `pub(super)`: a transfer or a bill
//! payment paid from the wallet moves money through them, in its own
//! transaction.

use super::*;
use crate::store::ledger::sql::*;
use crate::store::ledger::{
    accrued_from_row, debit_journal_from_row, fee_plan_from_row, posting_from_row, settled_from_row, statement_line,
    Accrued, Settled,
};

/// Writes journal `$1`'s postings: accounts `$2`, amounts `$3`, in one
/// statement. (The arrays go through `UNNEST`; SQLite writes a row a statement.)
const INSERT_POSTINGS: &str = "INSERT INTO postings (journal_id, account, amount) \
     SELECT $1, account, amount FROM UNNEST($2::text[], $3::bigint[]) AS u(account, amount)";
/// Locks the partner's row against a concurrent new plan version, without
/// blocking the foreign-key checks of rows that reference the partner.
/// (PostgreSQL's row lock; on SQLite the writer's transaction serialises.)
const LOCK_PARTNER: &str = "SELECT id FROM partners WHERE id = $1 FOR NO KEY UPDATE";

/// Wallets (a row, postings, or both) whose balance is not the sum of their
/// postings, or is negative: partner, balance, sum. (Not shared: the regular
/// expression keeps any other account from PostgreSQL's strict cast; SQLite
/// has neither.)
const AUDIT_WALLETS: &str = "WITH sums AS (SELECT account, SUM(amount)::bigint AS total FROM postings \
                             WHERE account ~ '^wallet:[0-9]+$' GROUP BY account) \
                             SELECT COALESCE(w.partner_id, substr(s.account, 8)::bigint), COALESCE(w.balance, 0), \
                             COALESCE(s.total, 0) FROM wallets w \
                             FULL JOIN sums s ON s.account = 'wallet:' || w.partner_id \
                             WHERE COALESCE(w.balance, 0) <> COALESCE(s.total, 0) OR w.balance < 0 ORDER BY 1";

/// Moves the partner's wallet by `change`, creating it at 0 on first use;
/// `None` (nothing moved) if it would go below zero. The wallet row stays
/// locked until the transaction ends.
pub(super) async fn move_wallet(
    tx: &Transaction<'_>,
    partner: RegistrationId,
    change: Paise,
) -> StoreResult<Option<WalletMove>> {
    execute(tx, ENSURE_WALLET, &[&partner.number()], "Failed to open the wallet").await?;
    let params: [&(dyn ToSql + Sync); 2] = [&change.get(), &partner.number()];
    let Some(row) = query_opt(tx, MOVE_WALLET, &params, "Failed to move the wallet").await? else {
        return Ok(None);
    };
    let closing = Paise::new(row.try_get(0).store_context("Failed to read the wallet balance")?);
    Ok(Some(WalletMove { opening: closing - change, closing }))
}

/// As [`move_wallet`], refusing an overdraft.
pub(super) async fn charge_wallet(
    tx: &Transaction<'_>,
    partner: RegistrationId,
    change: Paise,
) -> Result<WalletMove, Stop> {
    move_wallet(tx, partner, change).await?.ok_or(Stop::Overdrawn)
}

/// Writes a journal and its postings; returns the journal's id.
pub(super) async fn insert_journal(tx: &Transaction<'_>, journal: &Journal) -> StoreResult<i64> {
    let kind = journal.txn.map(|(kind, _)| kind.as_str());
    let txn_id = journal.txn.map(|(_, id)| id);
    let params: [&(dyn ToSql + Sync); 6] =
        [&journal.partner.number(), &journal.purpose.as_str(), &kind, &txn_id, &journal.memo, &journal.at.unix()];
    let row = query_one(tx, INSERT_JOURNAL, &params, "Failed to write the journal").await?;
    let id: i64 = row.try_get(0).store_context("Failed to read the new journal id")?;
    let accounts: Vec<String> = journal.postings.iter().map(|p| p.account.name()).collect();
    let amounts: Vec<i64> = journal.postings.iter().map(|p| p.amount.get()).collect();
    execute(tx, INSERT_POSTINGS, &[&id, &accounts, &amounts], "Failed to write the postings").await?;
    Ok(id)
}

/// The debit journal of a transaction, with its postings, if the wallet paid for it.
pub(super) async fn debit_journal(tx: &Transaction<'_>, kind: TxnKind, id: i64) -> StoreResult<Option<Journal>> {
    let params: [&(dyn ToSql + Sync); 2] = [&kind.as_str(), &id];
    let Some(row) = query_opt(tx, DEBIT_JOURNAL, &params, "Failed to find the debit journal").await? else {
        return Ok(None);
    };
    let (journal_id, mut journal) =
        debit_journal_from_row(&row, kind, id).context("Failed to read the debit journal")?;
    let postings = query(tx, POSTINGS_OF, &[&journal_id], "Failed to read the debit postings").await?;
    journal.postings = decode_all(&postings, posting_from_row, "Failed to read the debit journal")?;
    Ok(Some(journal))
}

/// Pays a refunded transaction's debit back, if the wallet paid for it:
/// writes [`Journal::refund_of`] the debit and credits the wallet.
pub(super) async fn pay_back(tx: &Transaction<'_>, kind: TxnKind, id: i64, at: Timestamp) -> StoreResult<()> {
    let Some(debit) = debit_journal(tx, kind, id).await? else { return Ok(()) };
    let refund = Journal::refund_of(&debit, at);
    insert_journal(tx, &refund).await?;
    match move_wallet(tx, refund.partner, refund.wallet_change()).await? {
        Some(_) => Ok(()),
        None => {
            Err(StoreError::Other(anyhow::anyhow!("the refund of {} {id} would overdraw the wallet", kind.as_str())))
        }
    }
}

/// Runs an audit query and reads each of its rows with `read`.
async fn audit_rows<T>(
    tx: &Transaction<'_>,
    sql: &str,
    read: fn(&Row) -> Result<T, tokio_postgres::Error>,
    what: &'static str,
) -> StoreResult<Vec<T>> {
    let rows = query(tx, sql, &[], what).await?;
    rows.iter().map(read).collect::<Result<_, _>>().store_context(what)
}

/// Gathers [`LedgerAudit`] inside one snapshot.
async fn audit_in(tx: &Transaction<'_>) -> StoreResult<LedgerAudit> {
    let totals = query_one(tx, AUDIT_TOTALS, &[], "Failed to total the ledger").await?;
    let total = totals.try_get(0).store_context("Failed to read the ledger total")?;
    let journals = totals.try_get(1).store_context("Failed to read the journal count")?;
    Ok(LedgerAudit {
        total,
        journals,
        unbalanced_journals: audit_rows(tx, AUDIT_UNBALANCED, pair, "Failed to look for unbalanced journals").await?,
        wallet_mismatches: audit_rows(
            tx,
            AUDIT_WALLETS,
            |row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)),
            "Failed to check the wallets",
        )
        .await?,
        repeated_journals: audit_rows(
            tx,
            AUDIT_REPEATED,
            |row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)),
            "Failed to look for repeated journals",
        )
        .await?,
        refunds_without_debit: audit_rows(tx, AUDIT_REFUNDS_WITHOUT_DEBIT, pair, "Failed to check the refunds").await?,
        refunds_not_recorded: audit_rows(tx, AUDIT_REFUNDS_NOT_RECORDED, pair, "Failed to check the refunds").await?,
        refunds_not_paid: audit_rows(tx, AUDIT_REFUNDS_NOT_PAID, pair, "Failed to check the refunds").await?,
        failed_not_refunded: audit_rows(tx, AUDIT_FAILED_NOT_REFUNDED, pair, "Failed to check the failed payments")
            .await?,
    })
}

impl PostgresStore {
    /// [`Store::post_journal`], before the outcome is reported.
    async fn post(&self, journal: Journal) -> Result<WalletMove, Stop> {
        if !journal.is_balanced() {
            return Err(StoreError::Other(anyhow::anyhow!("the journal's postings do not sum to zero")).into());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the journal")?;
        let wallet = charge_wallet(&tx, journal.partner, journal.wallet_change()).await?;
        insert_journal(&tx, &journal).await?;
        super::chain::commit_sealed(tx, "Failed to commit the journal").await?;
        Ok(wallet)
    }

    /// [`Store::insert_fee_plan`] of the plan as stored; returns its version.
    async fn add_fee_plan(
        &self,
        partner: RegistrationId,
        effective_from: Timestamp,
        plan: &str,
        created_at: Timestamp,
    ) -> Result<i64, Stop> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the fee plan")?;
        let found = query_opt(&tx, LOCK_PARTNER, &[&partner.number()], "Failed to lock the partner").await?;
        if found.is_none() {
            return Err(DebitError::UnknownPartner.into());
        }
        let params: [&(dyn ToSql + Sync); 4] = [&partner.number(), &effective_from.unix(), &plan, &created_at.unix()];
        let row = query_one(&tx, INSERT_FEE_PLAN, &params, "Failed to add the fee plan").await?;
        let version = row.try_get(0).store_context("Failed to read the new plan version")?;
        tx.commit().await.store_context("Failed to commit the fee plan")?;
        Ok(version)
    }
}

#[async_trait]
impl LedgerStore for PostgresStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn post_journal(&self, journal: Journal) -> Result<WalletMove, DebitError> {
        let partner = journal.partner;
        let result = self.post(journal).await;
        self.settle(partner, result).await
    }

    async fn wallet_balance(&self, partner: RegistrationId) -> StoreResult<Paise> {
        let client = self.client().await?;
        let row = query_opt(&client, WALLET_BALANCE, &[&partner.number()], "Failed to read the wallet").await?;
        let balance: Option<i64> =
            row.map(|row| row.try_get(0)).transpose().store_context("Failed to read the balance")?;
        Ok(Paise::new(balance.unwrap_or(0)))
    }

    async fn wallet_statement(&self, partner: RegistrationId, period: Range<Timestamp>) -> StoreResult<Statement> {
        let Range { start: from, end: to } = period;
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let account = Account::Wallet(partner).name();
        let params: [&(dyn ToSql + Sync); 2] = [&account, &from.unix()];
        let row = query_one(&tx, STATEMENT_OPENING, &params, "Failed to read the opening balance").await?;
        let opening = Paise::new(row.try_get(0).store_context("Failed to read the opening balance")?);
        let params: [&(dyn ToSql + Sync); 3] = [&account, &from.unix(), &to.unix()];
        let rows = query(&tx, STATEMENT_LINES, &params, "Failed to read the statement").await?;
        let lines = decode_all(&rows, statement_line, "Failed to read a statement line")?;
        tx.commit().await.store_context("Failed to end the statement read")?;
        Ok(Statement { opening, lines })
    }

    async fn audit(&self) -> StoreResult<LedgerAudit> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let audit = audit_in(&tx).await?;
        tx.commit().await.store_context("Failed to end the audit read")?;
        Ok(audit)
    }

    async fn insert_fee_plan(&self, new: NewFeePlan) -> Result<FeePlanVersion, DebitError> {
        let NewFeePlan { partner, effective_from, plan, created_at } = new;
        let result = self.add_fee_plan(partner, effective_from, &plan.to_json(), created_at).await;
        let version = self.settle(partner, result).await?;
        Ok(FeePlanVersion { partner, version, effective_from, plan, created_at })
    }

    async fn fee_plans(&self, partner: RegistrationId) -> StoreResult<Vec<FeePlanVersion>> {
        let client = self.client().await?;
        let rows = query(&client, FEE_PLANS, &[&partner.number()], "Failed to read the fee plans").await?;
        decode_all(&rows, |row| fee_plan_from_row(partner, row), "Failed to read a stored fee plan")
    }

    async fn accrued(&self, from: Timestamp, to: Timestamp) -> StoreResult<Vec<Accrued>> {
        let client = self.client().await?;
        let rows =
            query(&client, ACCRUED, &[&from.unix(), &to.unix()], "Failed to read the accrued commission").await?;
        decode_all(&rows, accrued_from_row, "Failed to read an accrual")
    }

    async fn settlements(&self, memo: &str) -> StoreResult<Vec<Settled>> {
        let client = self.client().await?;
        let rows = query(&client, SETTLEMENTS, &[&memo], "Failed to read the settlements").await?;
        decode_all(&rows, settled_from_row, "Failed to read a settlement")
    }
}

#[cfg(test)]
mod tests {
    //! These run against a real server: set `PAYRAIL_TEST_DATABASE_URL` to a
    //! role that may create databases. Each test gets a database of its own.

    use super::super::tests::{at, balance, debit, note, partner, raw_sql, top_up, P, TRANSFER_COST};
    use super::*;
    use crate::store::postgres::test_db::postgres_tests;

    postgres_tests!(partner: a_wallet_refuses_an_overdraft_and_keeps_its_balance, a_statement_opens_with_the_balance_at_its_start, the_audit_finds_what_raw_sql_broke);

    /// The bodies of the tests above, each run on a store of its own.
    mod cases {
        use super::*;

        pub(super) async fn a_wallet_refuses_an_overdraft_and_keeps_its_balance(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            assert_eq!(balance(store).await?, 0);
            let moved = top_up(store, 10_000, 100).await?;
            assert_eq!(moved, WalletMove { opening: Paise::ZERO, closing: Paise::new(10_000) });
            let withdrawal = Journal::withdrawal(partner(), Paise::new(15_000), "too much".into(), at(200));
            let refused = store.post_journal(withdrawal).await;
            assert!(matches!(refused, Err(DebitError::InsufficientFunds { balance }) if balance.get() == 10_000));
            let withdrawal = Journal::withdrawal(partner(), Paise::new(4_000), "some".into(), at(300));
            assert_eq!(store.post_journal(withdrawal).await?.closing, Paise::new(6_000));
            assert_eq!(balance(store).await?, 6_000);
            let stranger = Journal::top_up(RegistrationId::new(999), Paise::new(1), "x".into(), at(1));
            assert!(matches!(store.post_journal(stranger).await, Err(DebitError::UnknownPartner)));
            assert_eq!(store.audit().await?, LedgerAudit { journals: 2, ..LedgerAudit::default() });
            Ok(())
        }

        pub(super) async fn a_statement_opens_with_the_balance_at_its_start(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            top_up(store, 1_000, 100).await?;
            top_up(store, 2_000, 200).await?;
            store.post_journal(Journal::withdrawal(partner(), Paise::new(500), "out".into(), at(300))).await?;
            top_up(store, 4_000, 400).await?;
            let statement = store.wallet_statement(partner(), at(200)..at(400)).await?;
            assert_eq!(statement.opening, Paise::new(1_000));
            let amounts: Vec<i64> = statement.lines.iter().map(|l| l.amount.get()).collect();
            assert_eq!(amounts, vec![2_000, -500]);
            assert_eq!(statement.closing(), Paise::new(2_500));
            assert_eq!(statement.lines[1].memo, "out");
            let empty = store.wallet_statement(RegistrationId::new(9), at(0)..at(1_000)).await?;
            assert_eq!((empty.opening, empty.lines.len()), (Paise::ZERO, 0));
            Ok(())
        }

        pub(super) async fn the_audit_finds_what_raw_sql_broke(store: &PostgresStore) -> anyhow::Result<()> {
            top_up(store, 3 * TRANSFER_COST, 100).await?;
            let paid = debit(store, "A1").await?.record.ackno;
            let refunded = debit(store, "A2").await?.record.ackno;
            store.change_dmt(refunded, DmtChange::Fail, note("admin")).await?;
            store.change_dmt(refunded, DmtChange::Refund { refund_txn_id: Some("X".into()) }, note("admin")).await?;
            assert_eq!(store.audit().await?, LedgerAudit { journals: 4, ..LedgerAudit::default() });

            raw_sql(store, "UPDATE wallets SET balance = balance + 1").await?;
            raw_sql(store, &format!("UPDATE dmt_transfers SET status = 0 WHERE ackno = {paid}")).await?;
            raw_sql(store, &format!("UPDATE dmt_transfers SET status = 5 WHERE ackno = {refunded}")).await?;
            raw_sql(store, "UPDATE postings SET amount = amount + 7 WHERE id = (SELECT MIN(id) FROM postings)").await?;
            let audit = store.audit().await?;
            assert_eq!(audit.total, 7);
            assert_eq!(audit.unbalanced_journals.len(), 1);
            assert_eq!(audit.unbalanced_journals[0].1, 7);
            let sum = 3 * TRANSFER_COST - TRANSFER_COST + 7;
            assert_eq!(audit.wallet_mismatches, vec![(P, 2 * TRANSFER_COST + 1, sum)]);
            assert_eq!(audit.refunds_not_paid, vec![("dmt".to_owned(), paid)]);
            assert_eq!(audit.refunds_not_recorded, vec![("dmt".to_owned(), refunded)]);
            assert!(audit.refunds_without_debit.is_empty() && audit.repeated_journals.is_empty());

            raw_sql(store, "DROP INDEX journals_once_per_txn").await?;
            raw_sql(
                store,
                &format!(
                    "INSERT INTO journals (partner_id, purpose, kind, txn_id, memo, at) VALUES \
                     ({P}, 'refund', 'dmt', {refunded}, 'again', 1), ({P}, 'refund', 'bbps', 77, 'none', 1)"
                ),
            )
            .await?;
            let audit = store.audit().await?;
            assert_eq!(audit.repeated_journals, vec![("dmt".to_owned(), refunded, "refund".to_owned(), 2)]);
            assert_eq!(audit.refunds_without_debit, vec![("bbps".to_owned(), 77)]);
            Ok(())
        }
    }
}
