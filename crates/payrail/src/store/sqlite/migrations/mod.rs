//! The SQLite schema: one `.sql` file per version in this folder, applied
//! in order by [`migrate`], each once. `schema_migrations` records each
//! version applied (its number and when): a file once released is never
//! edited, a change is a new file.

use anyhow::Context as _;
use rusqlite::{params, Connection, TransactionBehavior};

use crate::domain::Timestamp;

/// The schema versions: version `n` is the `n`-th entry (its file's number).
const MIGRATIONS: &[&str] = &[
    include_str!("0001_transactions.sql"),
    include_str!("0002_ledger_and_remittance.sql"),
    include_str!("0003_callbacks_polls_and_events.sql"),
    include_str!("0004_otp_texts.sql"),
    include_str!("0005_replays_and_callback_secrets.sql"),
    include_str!("0006_txn_numbers.sql"),
    include_str!("0007_poll_due_index.sql"),
    include_str!("0008_master_key_check.sql"),
    include_str!("0009_remitter_ekyc.sql"),
    include_str!("0010_beneficiary_bank.sql"),
    include_str!("0011_upstream_ids.sql"),
    include_str!("0012_upstream_refunds.sql"),
    include_str!("0013_installation.sql"),
    include_str!("0014_search_indexes.sql"),
    include_str!("0015_operators.sql"),
    include_str!("0016_console_sessions.sql"),
    include_str!("0017_commission_settlements.sql"),
    include_str!("0018_history_chain.sql"),
    include_str!("0019_ekyc_attempts_by_time.sql"),
];

/// The schema version the migrations reach: how many there are.
pub(crate) const VERSIONS: i64 = MIGRATIONS.len() as i64;

/// Applies the versions the store has not applied yet, in one `IMMEDIATE`
/// transaction (no other process writes meanwhile).
pub(super) fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied: i64 = tx.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        tx.execute_batch(sql).with_context(|| format!("Failed to apply migration {}", index + 1))?;
        tx.execute(
            "INSERT INTO schema_migrations VALUES (?1, ?2)",
            params![index as i64 + 1, Timestamp::now().unix()],
        )?;
    }
    // Chains the rows written before the chain existed (version 18), and
    // any a payrail older than it wrote since.
    super::chain::seal_pending(&tx).context("Failed to chain the existing history and journals")?;
    tx.commit().context("Failed to commit migrations")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(conn: &Connection) -> Vec<(i64, bool)> {
        let mut stmt = conn
            .prepare("SELECT version, applied_at > 0 FROM schema_migrations ORDER BY version")
            .unwrap_or_else(|e| panic!("{e}"));
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap_or_else(|e| panic!("{e}"));
        rows.collect::<rusqlite::Result<_>>().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_version_is_applied_once_and_recorded_with_its_number() {
        let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        migrate(&mut conn).unwrap_or_else(|e| panic!("{e:#}"));
        let all: Vec<(i64, bool)> = (1..=MIGRATIONS.len() as i64).map(|v| (v, true)).collect();
        assert_eq!(versions(&conn), all);
        migrate(&mut conn).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(versions(&conn), all, "a second run applies nothing");
        let seeded: i64 = conn
            .query_row("SELECT COUNT(*) FROM txn_number_counters", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seeded, 2, "version 6 seeded its counters once");
    }

    /// The per-mobile counts sweep every mobile's old rows on each count:
    /// through an index on the time, never a scan of the table.
    #[test]
    fn the_per_mobile_sweeps_find_old_rows_by_an_index() {
        let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        migrate(&mut conn).unwrap_or_else(|e| panic!("{e:#}"));
        for events in [&crate::store::remittance::OTP_TEXTS, &crate::store::kyc::EKYC_ATTEMPTS] {
            let mut plan =
                conn.prepare(&format!("EXPLAIN QUERY PLAN {}", events.forget)).unwrap_or_else(|e| panic!("{e}"));
            let details: Vec<String> = plan
                .query_map([0_i64], |row| row.get(3))
                .and_then(|rows| rows.collect())
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                details.iter().any(|d| d.contains("USING") && d.contains("INDEX")),
                "{}: {details:?}",
                events.forget
            );
            assert!(!details.iter().any(|d| d.starts_with("SCAN")), "{}: {details:?}", events.forget);
        }
    }
}
