//! The double-entry wallet ledger (journals, postings, wallet balances and statements, the audit behind `payrail verify`) and the partners' fee plans.

use std::ops::Range;

use super::columns::{columns, BadState, StoredRow};
use super::*;
use crate::domain::ledger::{Account, Posting, Purpose, StatementLine};

columns! {
    /// The `journals` columns a statement line is read from (`j.`-qualified
    /// in [`sql::STATEMENT_LINES`]; the line's amount follows them, at
    /// `WIDTH`).
    pub(crate) mod statement_columns, list statement_list, qualified statement_list_j as "j" {
        id, at, purpose, kind, txn_id, memo
    }
}

columns! {
    /// The `fee_plans` columns a plan version is read from, in order.
    pub(crate) mod fee_plan_columns, list fee_plan_list {
        version, effective_from, plan, created_at
    }
}

/// Reads a row of [`sql::STATEMENT_LINES`], on either engine.
pub(crate) fn statement_line<R: StoredRow>(row: &R) -> Result<StatementLine, R::Error> {
    use statement_columns as c;
    let txn = match (row.opt_text(c::kind)?, row.opt_int(c::txn_id)?) {
        (Some(_), Some(id)) => {
            Some((row.parsed(c::kind, |s| TxnKind::parse(s).ok_or_else(|| BadState(s.into())))?, id))
        }
        _ => None,
    };
    Ok(StatementLine {
        journal_id: row.int(c::id)?,
        at: Timestamp::from_unix(row.int(c::at)?),
        purpose: row.parsed(c::purpose, |s| Purpose::parse(s).ok_or_else(|| BadState(s.into())))?,
        txn,
        memo: row.text(c::memo)?,
        amount: Paise::new(row.int(statement_columns::WIDTH)?),
    })
}

/// Reads a row of [`sql::FEE_PLANS`] (a plan of `partner`), on either engine.
pub(crate) fn fee_plan_from_row<R: StoredRow>(partner: RegistrationId, row: &R) -> Result<FeePlanVersion, R::Error> {
    use fee_plan_columns as c;
    Ok(FeePlanVersion {
        partner,
        version: row.int(c::version)?,
        effective_from: Timestamp::from_unix(row.int(c::effective_from)?),
        plan: row.parsed(c::plan, FeePlan::from_json)?,
        created_at: Timestamp::from_unix(row.int(c::created_at)?),
    })
}

/// The ledger's SQL that both engines run as it is. Parameters are `$n` and
/// first appear in order (`$1` before `$2`): SQLite numbers `$n` parameters
/// by first appearance, not by their digits. Sums are cast to `BIGINT`:
/// PostgreSQL's `SUM` of a `BIGINT` is a `NUMERIC`.
pub(crate) mod sql {
    /// Creates partner `$1`'s wallet row on first use; fails (foreign key) for an unknown partner.
    pub(crate) const ENSURE_WALLET: &str =
        "INSERT INTO wallets (partner_id, balance) VALUES ($1, 0) ON CONFLICT DO NOTHING";
    /// Moves wallet `$2` by `$1` unless it would go below zero; the closing
    /// balance. On PostgreSQL the row lock it takes serialises a partner's
    /// debits until the transaction ends.
    pub(crate) const MOVE_WALLET: &str =
        "UPDATE wallets SET balance = balance + $1 WHERE partner_id = $2 AND balance + $1 >= 0 RETURNING balance";
    /// Per partner, the commission (net of TDS) and the TDS its debits and
    /// refunds accrued with `$1 <= at < $2`: partner, commission, TDS.
    pub(crate) const ACCRUED: &str = "SELECT j.partner_id, \
         CAST(COALESCE(SUM(CASE WHEN p.account = 'commission_payable' THEN p.amount ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN p.account = 'tds_payable' THEN p.amount ELSE 0 END), 0) AS BIGINT) \
         FROM journals j JOIN postings p ON p.journal_id = j.id \
         WHERE j.purpose IN ('debit', 'refund') AND j.at >= $1 AND j.at < $2 \
         AND p.account IN ('commission_payable', 'tds_payable') GROUP BY j.partner_id ORDER BY j.partner_id";
    /// The settlement journals with memo `$1`: partner, journal id, time, amount paid.
    pub(crate) const SETTLEMENTS: &str = "SELECT j.partner_id, j.id, j.at, -p.amount FROM journals j \
         JOIN postings p ON p.journal_id = j.id AND p.account = 'commission_payable' \
         WHERE j.purpose = 'settlement' AND j.memo = $1 ORDER BY j.partner_id";
    /// Partner `$1`'s stored wallet balance.
    pub(crate) const WALLET_BALANCE: &str = "SELECT balance FROM wallets WHERE partner_id = $1";
    /// Writes a journal; its id.
    pub(crate) const INSERT_JOURNAL: &str = "INSERT INTO journals (partner_id, purpose, kind, txn_id, memo, at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
    /// The debit journal of transaction (`$1` kind, `$2` id): id, partner, memo, time.
    pub(crate) const DEBIT_JOURNAL: &str =
        "SELECT id, partner_id, memo, at FROM journals WHERE kind = $1 AND txn_id = $2 AND purpose = 'debit'";
    /// The postings of journal `$1`: account, amount.
    pub(crate) const POSTINGS_OF: &str = "SELECT account, amount FROM postings WHERE journal_id = $1 ORDER BY id";
    /// Account `$1`'s balance from its postings before time `$2`.
    pub(crate) const STATEMENT_OPENING: &str = "SELECT CAST(COALESCE(SUM(p.amount), 0) AS BIGINT) FROM postings p \
         JOIN journals j ON j.id = p.journal_id WHERE p.account = $1 AND j.at < $2";
    /// Account `$1`'s movements with `$2 <= at < $3`, one line per journal:
    /// the [`statement_columns`](super::statement_columns), then the amount.
    pub(crate) const STATEMENT_LINES: &str = concat!(
        "SELECT ",
        statement_list_j!(),
        ", CAST(SUM(p.amount) AS BIGINT) FROM journals j JOIN postings p ON p.journal_id = j.id \
         WHERE p.account = $1 AND j.at >= $2 AND j.at < $3 GROUP BY j.id ORDER BY j.id"
    );
    /// Records the next version of partner `$1`'s plan: effective from `$2`,
    /// plan `$3`, created at `$4`; the version.
    pub(crate) const INSERT_FEE_PLAN: &str = "INSERT INTO fee_plans (partner_id, version, effective_from, plan, \
         created_at) SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4 FROM fee_plans WHERE partner_id = $1 \
         RETURNING version";
    /// Every version of partner `$1`'s plan: the [`fee_plan_columns`](super::fee_plan_columns).
    pub(crate) const FEE_PLANS: &str =
        concat!("SELECT ", fee_plan_list!(), " FROM fee_plans WHERE partner_id = $1 ORDER BY version");

    /// The ledger's totals: the sum of every posting and the number of journals.
    pub(crate) const AUDIT_TOTALS: &str = "SELECT (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM postings), \
         (SELECT COUNT(*) FROM journals)";
    /// Journals whose postings do not sum to zero (every posting has its
    /// journal: a foreign key): journal id, sum.
    pub(crate) const AUDIT_UNBALANCED: &str = "SELECT journal_id, CAST(SUM(amount) AS BIGINT) FROM postings \
         GROUP BY journal_id HAVING SUM(amount) <> 0 ORDER BY journal_id";
    /// Transactions with more than one journal of a purpose: kind, txn id, purpose, count.
    pub(crate) const AUDIT_REPEATED: &str = "SELECT COALESCE(kind, ''), txn_id, purpose, COUNT(*) FROM journals \
         WHERE txn_id IS NOT NULL GROUP BY kind, txn_id, purpose HAVING COUNT(*) > 1 ORDER BY 1, 2, 3";
    /// Refund journals without a debit journal: kind, txn id.
    pub(crate) const AUDIT_REFUNDS_WITHOUT_DEBIT: &str = "SELECT DISTINCT COALESCE(r.kind, ''), r.txn_id \
         FROM journals r WHERE r.purpose = 'refund' AND r.txn_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM journals d \
         WHERE d.purpose = 'debit' AND d.kind = r.kind AND d.txn_id = r.txn_id) ORDER BY 1, 2";

    /// The record each journal of a transaction pays for, and whether it is
    /// refunded (a transfer's status 0, a bill payment's status 'refunded').
    /// Kinds are [`TxnKind::as_str`](crate::domain::TxnKind::as_str).
    macro_rules! journal_records {
        ($alias:literal) => {
            concat!(
                " LEFT JOIN dmt_transfers t ON ",
                $alias,
                ".kind = 'dmt' AND t.ackno = ",
                $alias,
                ".txn_id LEFT JOIN bill_payments b ON ",
                $alias,
                ".kind = 'bbps' AND b.txnid = ",
                $alias,
                ".txn_id "
            )
        };
    }
    /// Refund journals whose record is not refunded: kind, txn id.
    pub(crate) const AUDIT_REFUNDS_NOT_RECORDED: &str = concat!(
        "SELECT DISTINCT COALESCE(r.kind, ''), r.txn_id FROM journals r",
        journal_records!("r"),
        "WHERE r.purpose = 'refund' AND r.txn_id IS NOT NULL \
         AND NOT (COALESCE(t.status = 0, false) OR COALESCE(b.status = 'refunded', false)) ORDER BY 1, 2"
    );
    /// Debited records in the refunded state without a refund journal: kind, txn id.
    pub(crate) const AUDIT_REFUNDS_NOT_PAID: &str = concat!(
        "SELECT DISTINCT COALESCE(d.kind, ''), d.txn_id FROM journals d",
        journal_records!("d"),
        "WHERE d.purpose = 'debit' AND d.txn_id IS NOT NULL \
         AND (COALESCE(t.status = 0, false) OR COALESCE(b.status = 'refunded', false)) \
         AND NOT EXISTS (SELECT 1 FROM journals r WHERE r.purpose = 'refund' AND r.kind = d.kind \
         AND r.txn_id = d.txn_id) ORDER BY 1, 2"
    );
    /// Bill payments paid from the wallet, failed, and not refunded: kind, txn id.
    pub(crate) const AUDIT_FAILED_NOT_REFUNDED: &str = "SELECT d.kind, d.txn_id FROM journals d \
         JOIN bill_payments b ON d.kind = 'bbps' AND b.txnid = d.txn_id \
         WHERE d.purpose = 'debit' AND b.status = 'failed' AND NOT EXISTS (SELECT 1 FROM journals r \
         WHERE r.purpose = 'refund' AND r.kind = d.kind AND r.txn_id = d.txn_id) ORDER BY 1, 2";

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::store::columns::assert_parameters_in_order;

        #[test]
        fn parameters_first_appear_in_order() {
            for sql in [
                ENSURE_WALLET,
                MOVE_WALLET,
                WALLET_BALANCE,
                INSERT_JOURNAL,
                DEBIT_JOURNAL,
                POSTINGS_OF,
                STATEMENT_OPENING,
                STATEMENT_LINES,
                INSERT_FEE_PLAN,
                FEE_PLANS,
            ] {
                assert_parameters_in_order(sql);
            }
        }
    }
}

/// A new version of the partner's fee plan, in force from `effective_from`.
#[derive(Debug, Clone)]
pub struct NewFeePlan {
    pub partner: RegistrationId,
    pub effective_from: Timestamp,
    pub plan: FeePlan,
    pub created_at: Timestamp,
}

/// The double-entry wallet ledger (journals, postings, wallet balances and statements, the audit behind `payrail verify`) and the partners' fee plans.
#[async_trait]
pub trait LedgerStore: Send + Sync + 'static {
    /// Writes a journal (a top-up or a withdrawal) and moves the partner's
    /// wallet balance by [`Journal::wallet_change`], atomically. Refuses with
    /// `InsufficientFunds` if the wallet would go below zero, `UnknownPartner`
    /// if there is no such partner. Wallet rows are created on first use.
    async fn post_journal(&self, journal: Journal) -> Result<WalletMove, DebitError>;
    /// The partner's wallet balance (0 if it never moved).
    async fn wallet_balance(&self, partner: RegistrationId) -> StoreResult<Paise>;
    /// The wallet's movements in `period` (`start <= at < end`), oldest
    /// first (by journal id), and the balance at its start (the sum of
    /// earlier postings).
    async fn wallet_statement(&self, partner: RegistrationId, period: Range<Timestamp>) -> StoreResult<Statement>;
    /// Checks the ledger's invariants in one consistent read.
    async fn audit(&self) -> StoreResult<LedgerAudit>;
    /// Records a new version of the partner's plan (the next version number)
    /// and returns it. `UnknownPartner` if there is no such partner.
    async fn insert_fee_plan(&self, new: NewFeePlan) -> Result<FeePlanVersion, DebitError>;
    /// Every version of the partner's plan, by version.
    async fn fee_plans(&self, partner: RegistrationId) -> StoreResult<Vec<FeePlanVersion>>;
    /// What each partner's debits and refunds accrued with `from <= at < to`.
    async fn accrued(&self, from: Timestamp, to: Timestamp) -> StoreResult<Vec<Accrued>>;
    /// The settlements paid under `memo` (one month's), by partner.
    async fn settlements(&self, memo: &str) -> StoreResult<Vec<Settled>>;
}

/// What one partner's transactions accrued in a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accrued {
    /// The partner.
    pub partner: RegistrationId,
    /// Commission owed to it, net of TDS (refunds taken off).
    pub commission: Paise,
    /// TDS withheld from its commission (Section 194H).
    pub tds: Paise,
}

/// A settlement paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// The partner paid.
    pub partner: RegistrationId,
    /// Its journal.
    pub journal_id: i64,
    /// When it was paid.
    pub at: Timestamp,
    /// How much went into the wallet.
    pub amount: Paise,
}

/// Reads a row of [`sql::DEBIT_JOURNAL`] (the debit of transaction `kind`
/// `id`), on either engine: the journal's id and the journal, its postings
/// still to be read ([`posting_from_row`]).
pub(crate) fn debit_journal_from_row<R: StoredRow>(
    row: &R,
    kind: TxnKind,
    id: i64,
) -> Result<(i64, Journal), R::Error> {
    let journal = Journal {
        partner: RegistrationId::new(row.int(1)?),
        purpose: Purpose::Debit,
        txn: Some((kind, id)),
        memo: row.text(2)?,
        at: Timestamp::from_unix(row.int(3)?),
        postings: Vec::new(),
    };
    Ok((row.int(0)?, journal))
}

/// Reads a row of [`sql::POSTINGS_OF`], on either engine.
pub(crate) fn posting_from_row<R: StoredRow>(row: &R) -> Result<Posting, R::Error> {
    Ok(Posting { account: row.parsed(0, Account::parse)?, amount: Paise::new(row.int(1)?) })
}

/// Reads a row of [`sql::ACCRUED`], on either engine.
pub(crate) fn accrued_from_row<R: StoredRow>(row: &R) -> Result<Accrued, R::Error> {
    Ok(Accrued {
        partner: RegistrationId::new(row.int(0)?),
        commission: Paise::new(row.int(1)?),
        tds: Paise::new(row.int(2)?),
    })
}

/// Reads a row of [`sql::SETTLEMENTS`], on either engine.
pub(crate) fn settled_from_row<R: StoredRow>(row: &R) -> Result<Settled, R::Error> {
    Ok(Settled {
        partner: RegistrationId::new(row.int(0)?),
        journal_id: row.int(1)?,
        at: Timestamp::from_unix(row.int(2)?),
        amount: Paise::new(row.int(3)?),
    })
}
