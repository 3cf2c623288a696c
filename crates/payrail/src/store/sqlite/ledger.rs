//! The double-entry wallet ledger (journals, postings, wallet balances and statements, the audit behind `payrail verify`) and the partners' fee plans.
//!
//! The SQL both engines share is in [`crate::store::ledger::sql`]. The
//! wallet helpers ([`debit_wallet`], [`add_to_wallet`], [`insert_journal`],
//! [`debit_journal`], [`pay_refund`]) are `pub(super)`: a transfer or a bill
//! payment paid from the wallet moves money through them, in its own
//! transaction.

use super::*;
use crate::store::ledger::sql::*;
use crate::store::ledger::{
    accrued_from_row, debit_journal_from_row, fee_plan_from_row, posting_from_row, settled_from_row, statement_line,
    Accrued, Settled,
};

/// Writes one posting of journal `$1`: account `$2`, amount `$3`. (One row
/// a statement here; PostgreSQL sends them all as arrays through `UNNEST`.)
const INSERT_POSTING: &str = "INSERT INTO postings (journal_id, account, amount) VALUES ($1, $2, $3)";

/// Fails with `UnknownPartner` unless the partner exists.
pub(super) fn require_partner(conn: &Connection, partner: RegistrationId) -> Result<(), DebitError> {
    partner_exists(conn, partner).map_err(store_error)?.then_some(()).ok_or(DebitError::UnknownPartner)
}

/// The partner's stored wallet balance (0 without a wallet row).
fn balance(conn: &Connection, partner: RegistrationId) -> rusqlite::Result<i64> {
    optional_row(conn, WALLET_BALANCE, [partner.number()], |r| r.get(0)).map(Option::unwrap_or_default)
}

/// Adds `change` to the partner's wallet (creating it at 0 first) unless the
/// balance would go below zero: the closing balance, or `None` if refused.
pub(super) fn add_to_wallet(
    conn: &Connection,
    partner: RegistrationId,
    change: Paise,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(ENSURE_WALLET)?.execute([partner.number()])?;
    conn.prepare_cached(MOVE_WALLET)?.query_row(params![change.get(), partner.number()], |r| r.get(0)).optional()
}

/// Moves an existing partner's wallet by `change`, refusing `InsufficientFunds`.
pub(super) fn debit_wallet(
    conn: &Connection,
    partner: RegistrationId,
    change: Paise,
) -> Result<WalletMove, DebitError> {
    require_partner(conn, partner)?;
    match add_to_wallet(conn, partner, change).map_err(store_error)? {
        Some(closing) => Ok(WalletMove { opening: Paise::new(closing) - change, closing: Paise::new(closing) }),
        None => {
            Err(DebitError::InsufficientFunds { balance: Paise::new(balance(conn, partner).map_err(store_error)?) })
        }
    }
}

/// Writes a journal and its postings; its id.
pub(super) fn insert_journal(conn: &Connection, journal: &Journal) -> rusqlite::Result<i64> {
    let id = conn.prepare_cached(INSERT_JOURNAL)?.query_row(
        params![
            journal.partner.number(),
            journal.purpose.as_str(),
            journal.txn.map(|(kind, _)| kind.as_str()),
            journal.txn.map(|(_, id)| id),
            journal.memo,
            journal.at.unix()
        ],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare_cached(INSERT_POSTING)?;
    for posting in &journal.postings {
        stmt.execute(params![id, posting.account.name(), posting.amount.get()])?;
    }
    Ok(id)
}

/// The debit journal of a transaction, with its postings, if it was paid from the wallet.
pub(super) fn debit_journal(conn: &Connection, kind: TxnKind, id: i64) -> rusqlite::Result<Option<(i64, Journal)>> {
    let head = optional_row(conn, DEBIT_JOURNAL, params![kind.as_str(), id], |r| debit_journal_from_row(r, kind, id))?;
    let Some((journal_id, mut journal)) = head else { return Ok(None) };
    journal.postings = all_rows(conn, POSTINGS_OF, [journal_id], |r| posting_from_row(r))?;
    Ok(Some((journal_id, journal)))
}

/// Pays back a refunded transaction that was paid from the wallet: writes
/// the refund journal of its debit and credits the wallet. Nothing for a
/// transaction without a debit journal (imported or made by an operator).
pub(super) fn pay_refund(conn: &Connection, kind: TxnKind, id: i64, at: Timestamp) -> StoreResult<()> {
    let Some((_, debit)) = debit_journal(conn, kind, id).map_err(store_error)? else { return Ok(()) };
    let refund = Journal::refund_of(&debit, at);
    add_to_wallet(conn, refund.partner, refund.wallet_change())
        .map_err(store_error)?
        .context("A refund would take the wallet below zero")?;
    insert_journal(conn, &refund).map_err(store_error)?;
    Ok(())
}

/// `(kind, txn_id)` of an audit row.
fn kind_and_id(row: &Row<'_>) -> rusqlite::Result<(String, i64)> {
    Ok((row.get(0)?, row.get(1)?))
}

/// Wallets whose balance is negative or differs from their postings. (Not
/// shared: PostgreSQL matches wallet accounts with a regular expression, so
/// that its strict cast never sees another account; SQLite's cast is lenient.)
const AUDIT_WALLETS: &str = "WITH sums AS (SELECT CAST(substr(account, 8) AS INTEGER) AS partner_id, \
                             SUM(amount) AS total FROM postings WHERE account LIKE 'wallet:%' GROUP BY account), \
                             ids AS (SELECT partner_id FROM wallets UNION SELECT partner_id FROM sums) \
                             SELECT ids.partner_id, COALESCE(w.balance, 0), COALESCE(s.total, 0) FROM ids \
                             LEFT JOIN wallets w ON w.partner_id = ids.partner_id \
                             LEFT JOIN sums s ON s.partner_id = ids.partner_id \
                             WHERE COALESCE(w.balance, 0) <> COALESCE(s.total, 0) OR COALESCE(w.balance, 0) < 0 \
                             ORDER BY ids.partner_id";

#[async_trait]
impl LedgerStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn post_journal(&self, journal: Journal) -> Result<WalletMove, DebitError> {
        if !journal.is_balanced() {
            return Err(StoreError::Other(anyhow::anyhow!("journal postings do not sum to zero")).into());
        }
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let wallet = debit_wallet(&tx, journal.partner, journal.wallet_change())?;
            insert_journal(&tx, &journal).map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(wallet)
        })
        .await
    }

    async fn wallet_balance(&self, partner: RegistrationId) -> StoreResult<Paise> {
        self.read(|conn| balance(conn, partner)).map(Paise::new)
    }

    async fn wallet_statement(&self, partner: RegistrationId, period: Range<Timestamp>) -> StoreResult<Statement> {
        let Range { start: from, end: to } = period;
        let account = Account::Wallet(partner).name();
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let opening =
                tx.prepare_cached(STATEMENT_OPENING)?.query_row(params![account, from.unix()], |r| r.get(0))?;
            let mut stmt = tx.prepare_cached(STATEMENT_LINES)?;
            let lines = stmt.query_map(params![account, from.unix(), to.unix()], |row| statement_line(row))?;
            let lines = lines.collect::<rusqlite::Result<_>>()?;
            Ok(Statement { opening: Paise::new(opening), lines })
        })
    }

    async fn audit(&self) -> StoreResult<LedgerAudit> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let (total, journals) = tx.query_row(AUDIT_TOTALS, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(LedgerAudit {
                total,
                journals,
                unbalanced_journals: all_rows(&tx, AUDIT_UNBALANCED, [], |r| Ok((r.get(0)?, r.get(1)?)))?,
                wallet_mismatches: all_rows(&tx, AUDIT_WALLETS, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?,
                repeated_journals: all_rows(&tx, AUDIT_REPEATED, [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?,
                refunds_without_debit: all_rows(&tx, AUDIT_REFUNDS_WITHOUT_DEBIT, [], kind_and_id)?,
                refunds_not_recorded: all_rows(&tx, AUDIT_REFUNDS_NOT_RECORDED, [], kind_and_id)?,
                refunds_not_paid: all_rows(&tx, AUDIT_REFUNDS_NOT_PAID, [], kind_and_id)?,
                failed_not_refunded: all_rows(&tx, AUDIT_FAILED_NOT_REFUNDED, [], kind_and_id)?,
            })
        })
    }

    async fn insert_fee_plan(&self, new: NewFeePlan) -> Result<FeePlanVersion, DebitError> {
        let NewFeePlan { partner, effective_from, plan, created_at } = new;
        self.write(move |conn| {
            let tx = immediate(conn)?;
            require_partner(&tx, partner)?;
            let version: i64 = tx
                .prepare_cached(INSERT_FEE_PLAN)
                .and_then(|mut s| {
                    let params = params![partner.number(), effective_from.unix(), plan.to_json(), created_at.unix()];
                    s.query_row(params, |r| r.get(0))
                })
                .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(FeePlanVersion { partner, version, effective_from, plan, created_at })
        })
        .await
    }

    async fn fee_plans(&self, partner: RegistrationId) -> StoreResult<Vec<FeePlanVersion>> {
        self.read(|conn| all_rows(conn, FEE_PLANS, [partner.number()], |row| fee_plan_from_row(partner, row)))
    }

    async fn accrued(&self, from: Timestamp, to: Timestamp) -> StoreResult<Vec<Accrued>> {
        self.read(|conn| all_rows(conn, ACCRUED, params![from.unix(), to.unix()], |row| accrued_from_row(row)))
    }

    async fn settlements(&self, memo: &str) -> StoreResult<Vec<Settled>> {
        self.read(|conn| all_rows(conn, SETTLEMENTS, [memo], |row| settled_from_row(row)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::lifecycle::{at, audit_is_clean, ok, raw, send, top_up};
    use super::*;
    use crate::domain::ledger::Purpose;
    use crate::store::sqlite::tests::lifecycle::sqlite_tests;

    sqlite_tests!(partner: a_withdrawal_beyond_the_balance_is_refused_and_changes_nothing, a_statement_opens_with_earlier_postings_and_closes_on_the_balance, the_audit_finds_corruption);

    /// The bodies of the tests above, each run on a store of its own.
    mod cases {
        use super::*;

        pub(super) async fn a_withdrawal_beyond_the_balance_is_refused_and_changes_nothing(
            store: &Arc<SqliteStore>,
            p: RegistrationId,
        ) {
            assert_eq!(ok(store.wallet_balance(p).await), Paise::ZERO);
            assert_eq!(
                top_up(store, p, 100, 1).await,
                WalletMove { opening: Paise::ZERO, closing: Paise::rupees(100) }
            );
            let over = store.post_journal(Journal::withdrawal(p, Paise::rupees(150), "x".into(), at(2))).await;
            assert!(matches!(over, Err(DebitError::InsufficientFunds { balance }) if balance == Paise::rupees(100)));
            assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(100));
            let out = ok(store.post_journal(Journal::withdrawal(p, Paise::rupees(40), "x".into(), at(3))).await);
            assert_eq!(out, WalletMove { opening: Paise::rupees(100), closing: Paise::rupees(60) });
            let ghost = Journal::top_up(RegistrationId::new(99_999), Paise::rupees(1), "x".into(), at(4));
            assert!(matches!(store.post_journal(ghost).await, Err(DebitError::UnknownPartner)));
            assert_eq!(audit_is_clean(store).await.journals, 2);
        }

        pub(super) async fn a_statement_opens_with_earlier_postings_and_closes_on_the_balance(
            store: &Arc<SqliteStore>,
            p: RegistrationId,
        ) {
            top_up(store, p, 100, 1).await;
            top_up(store, p, 500, 5).await;
            ok(send(store, p, "R1", 100).await);
            top_up(store, p, 7, 50).await;
            let statement = ok(store.wallet_statement(p, at(2)..at(50)).await);
            assert_eq!(statement.opening, Paise::rupees(100));
            let amounts: Vec<_> = statement.lines.iter().map(|l| (l.purpose, l.amount)).collect();
            assert_eq!(amounts, [(Purpose::TopUp, Paise::rupees(500)), (Purpose::Debit, Paise::rupees(-110))]);
            assert!(matches!(statement.lines[1].txn, Some((TxnKind::Dmt, _))));
            assert_eq!(statement.closing(), Paise::rupees(490));
            let whole = ok(store.wallet_statement(p, at(0)..at(100)).await);
            assert_eq!((whole.opening, whole.closing()), (Paise::ZERO, ok(store.wallet_balance(p).await)));
        }

        pub(super) async fn the_audit_finds_corruption(store: &Arc<SqliteStore>, p: RegistrationId) {
            top_up(store, p, 1_000, 1).await;
            let ackno = ok(send(store, p, "R1", 100).await).record.ackno;
            audit_is_clean(store).await;
            raw(store, "UPDATE wallets SET balance = balance + 1");
            raw(store, &format!("UPDATE dmt_transfers SET status = 0 WHERE ackno = {ackno}"));
            // One call: `last_insert_rowid()` is per connection.
            raw(
                store,
                &format!(
                    "INSERT INTO journals (partner_id, purpose, kind, txn_id, memo, at) \
                     VALUES ({}, 'refund', 'dmt', 999, 'x', 0); \
                     INSERT INTO postings (journal_id, account, amount) VALUES (last_insert_rowid(), 'funding', 5);",
                    p.number()
                ),
            );
            let audit = ok(store.audit().await);
            let n = p.number();
            assert_eq!(audit.total, 5);
            assert_eq!(audit.journals, 3);
            assert_eq!(audit.unbalanced_journals, [(3, 5)]);
            assert_eq!(audit.wallet_mismatches, [(n, 89_001, 89_000)]);
            assert_eq!(audit.refunds_without_debit, [("dmt".to_owned(), 999)]);
            assert_eq!(audit.refunds_not_recorded, [("dmt".to_owned(), 999)]);
            assert_eq!(audit.refunds_not_paid, [("dmt".to_owned(), ackno)]);
            assert!(audit.repeated_journals.is_empty());
        }
    }
}
