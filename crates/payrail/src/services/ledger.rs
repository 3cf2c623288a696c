//! Partner wallets: operator top-ups and withdrawals, statements, and the
//! invariant check behind `payrail verify`.

use std::fmt::Write as _;

use crate::domain::ledger::{Journal, Statement, WalletMove};
use crate::domain::{Clock, Paise, RegistrationId, Timestamp};
use crate::store::{DebitError, LedgerAudit, LedgerStore, Store, StoreError};

/// Why an operator's wallet movement was refused.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// Zero or negative amounts move nothing.
    #[error("the amount must be more than zero")]
    NotPositive,
    /// The rest: no partner, not enough money, the store.
    #[error(transparent)]
    Debit(#[from] DebitError),
}

/// Which way an operator moves a partner's money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorMove {
    /// Credits the wallet (money received from the partner).
    TopUp,
    /// Debits the wallet (money paid back to the partner).
    Withdrawal,
}

impl OperatorMove {
    /// The memo of a movement given none.
    pub fn default_memo(self) -> &'static str {
        match self {
            OperatorMove::TopUp => "top-up",
            OperatorMove::Withdrawal => "withdrawal",
        }
    }
}

/// Moves `amount` into or out of the partner's wallet, as `way` says.
#[tracing::instrument(skip_all, fields(partner = %partner, way = way.default_memo(), amount_paise = amount.get()))]
pub async fn move_money(
    store: &dyn Store,
    clock: &dyn Clock,
    partner: RegistrationId,
    way: OperatorMove,
    amount: Paise,
    memo: &str,
) -> Result<WalletMove, WalletError> {
    let (memo, now) = (memo.to_owned(), clock.now());
    let journal = match way {
        OperatorMove::TopUp => Journal::top_up(partner, amount, memo, now),
        OperatorMove::Withdrawal => Journal::withdrawal(partner, amount, memo, now),
    };
    let moved = post(store, amount, journal).await?;
    tracing::info!(closing_paise = moved.closing.get(), "wallet moved by an operator");
    Ok(moved)
}

/// Posts an operator's movement of a positive amount.
async fn post(store: &dyn LedgerStore, amount: Paise, journal: Journal) -> Result<WalletMove, WalletError> {
    if amount <= Paise::ZERO {
        return Err(WalletError::NotPositive);
    }
    Ok(store.post_journal(journal).await?)
}

/// The wallet's statement for `from <= at < to` as CSV: an opening row, one
/// row per movement with the running balance, and a closing row. Times in
/// India time, money with two decimals.
pub async fn statement_csv(
    store: &dyn LedgerStore,
    partner: RegistrationId,
    from: Timestamp,
    to: Timestamp,
) -> Result<String, StoreError> {
    let statement = store.wallet_statement(partner, from..to).await?;
    Ok(render_csv(&statement, from, to))
}

fn render_csv(statement: &Statement, from: Timestamp, to: Timestamp) -> String {
    let mut out = String::from("date,entry,purpose,transaction,memo,amount,balance\n");
    let mut balance = statement.opening;
    let _ = writeln!(out, "{},,opening balance,,,,{}", from.to_ist_string(), balance.to_decimal_string());
    for line in &statement.lines {
        balance = balance + line.amount;
        let txn = line.txn.map(|(kind, id)| format!("{}:{id}", kind.as_str())).unwrap_or_default();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{}",
            line.at.to_ist_string(),
            line.journal_id,
            line.purpose.as_str(),
            txn,
            csv_field(&line.memo),
            line.amount.to_decimal_string(),
            balance.to_decimal_string()
        );
    }
    let _ = writeln!(out, "{},,closing balance,,,,{}", to.to_ist_string(), statement.closing().to_decimal_string());
    out
}

/// Quotes a CSV field when it needs it.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Every broken invariant the audit found, one sentence each; empty when sound.
pub fn violations(audit: &LedgerAudit) -> Vec<String> {
    let mut found = Vec::new();
    if audit.total != 0 {
        found.push(format!("the ledger does not sum to zero: {}", Paise::new(audit.total).to_decimal_string()));
    }
    for (journal, sum) in &audit.unbalanced_journals {
        found.push(format!("journal {journal} is unbalanced by {}", Paise::new(*sum).to_decimal_string()));
    }
    for (partner, balance, postings) in &audit.wallet_mismatches {
        found.push(format!(
            "wallet of {} holds {} but its postings sum to {}",
            RegistrationId::new(*partner),
            Paise::new(*balance).to_decimal_string(),
            Paise::new(*postings).to_decimal_string()
        ));
    }
    for (kind, id, purpose, count) in &audit.repeated_journals {
        found.push(format!("{kind} {id} has {count} {purpose} journals (at most one allowed)"));
    }
    for (kind, id) in &audit.refunds_without_debit {
        found.push(format!("{kind} {id} was refunded in the ledger but never debited"));
    }
    for (kind, id) in &audit.refunds_not_recorded {
        found.push(format!("{kind} {id} was refunded in the ledger but is not in the refunded state"));
    }
    for (kind, id) in &audit.refunds_not_paid {
        found.push(format!("{kind} {id} is refunded but its wallet was never credited"));
    }
    for (kind, id) in &audit.failed_not_refunded {
        found.push(format!("{kind} {id} was paid from the wallet and failed, but never refunded"));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::{Purpose, StatementLine};
    use crate::domain::TxnKind;

    #[test]
    fn a_statement_runs_from_opening_to_closing() {
        let statement = Statement {
            opening: Paise::rupees(100),
            lines: vec![
                StatementLine {
                    journal_id: 4,
                    at: Timestamp::from_unix(0),
                    purpose: Purpose::Debit,
                    txn: Some((TxnKind::Dmt, 9)),
                    memo: "ref \"a\",b".into(),
                    amount: Paise::new(-1_010),
                },
                StatementLine {
                    journal_id: 5,
                    at: Timestamp::from_unix(60),
                    purpose: Purpose::TopUp,
                    txn: None,
                    memo: "cash".into(),
                    amount: Paise::rupees(50),
                },
            ],
        };
        let csv = render_csv(&statement, Timestamp::from_unix(0), Timestamp::from_unix(86_400));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[1], "1970-01-01 05:30:00,,opening balance,,,,100.00");
        assert_eq!(lines[2], "1970-01-01 05:30:00,4,debit,dmt:9,\"ref \"\"a\"\",b\",-10.10,89.90");
        assert_eq!(lines[3], "1970-01-01 05:31:00,5,topup,,cash,50.00,139.90");
        assert_eq!(lines[4], "1970-01-02 05:30:00,,closing balance,,,,139.90");
    }

    #[test]
    fn a_clean_audit_has_no_violations_and_each_fault_is_named() {
        assert!(violations(&LedgerAudit::default()).is_empty());
        let audit = LedgerAudit {
            total: 1,
            wallet_mismatches: vec![(1001, 5, 4)],
            refunds_not_paid: vec![("dmt".into(), 7)],
            ..LedgerAudit::default()
        };
        let found = violations(&audit);
        assert_eq!(found.len(), 3);
        assert!(found[1].contains("AOP-1001"), "{found:?}");
    }
}
