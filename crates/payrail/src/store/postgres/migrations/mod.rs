//! The PostgreSQL schema: one `.sql` file per version in this folder,
//! applied in order by [`migrate`], each once. `schema_migrations` records
//! each version applied (its number and when): a file once released is
//! never edited, a change is a new file.

use anyhow::Context as _;

use crate::domain::Timestamp;

/// The schema versions: version `n` is the `n`-th entry (its file's number).
const MIGRATIONS: &[&str] = &[
    include_str!("0001_transactions.sql"),
    include_str!("0002_ledger_and_remittance.sql"),
    include_str!("0003_callbacks_polls_and_events.sql"),
    include_str!("0004_otp_texts.sql"),
    include_str!("0005_replays_and_callback_secrets.sql"),
    include_str!("0006_txn_numbers.sql"),
    include_str!("0007_master_key_check.sql"),
    include_str!("0008_remitter_ekyc.sql"),
    include_str!("0009_beneficiary_bank.sql"),
    include_str!("0010_upstream_ids.sql"),
    include_str!("0011_upstream_refunds.sql"),
    include_str!("0012_installation.sql"),
    include_str!("0013_search_indexes.sql"),
    include_str!("0014_operators.sql"),
    include_str!("0015_console_sessions.sql"),
    include_str!("0016_commission_settlements.sql"),
    include_str!("0017_change_feed.sql"),
    include_str!("0018_history_chain.sql"),
    include_str!("0019_ekyc_attempts_by_time.sql"),
];

/// The schema version the migrations reach: how many there are.
pub(crate) const VERSIONS: i64 = MIGRATIONS.len() as i64;

/// The advisory-lock key the migrations hold: "payrail" in ASCII and 01
/// (the other keys are in the engine's `mod.rs`).
const MIGRATION_LOCK: i64 = 0x7061_7972_6169_6c01;

/// Applies the migrations not applied yet, under an advisory lock so that
/// two instances starting together do not both create the tables.
pub(super) async fn migrate(client: &mut deadpool_postgres::Client) -> anyhow::Result<()> {
    let tx = client.transaction().await.context("Failed to begin the migrations")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("Failed to take the migration lock")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await
    .context("Failed to create schema_migrations")?;
    let applied: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
        .await
        .and_then(|row| row.try_get(0))
        .context("Failed to read the schema version")?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(applied).unwrap_or(0)) {
        let version = index as i64 + 1;
        tx.batch_execute(sql).await.with_context(|| format!("Failed to apply migration {version}"))?;
        tx.execute("INSERT INTO schema_migrations VALUES ($1, $2)", &[&version, &Timestamp::now().unix()])
            .await
            .with_context(|| format!("Failed to record migration {version}"))?;
    }
    // Chains the rows written before the chain existed (version 18), and
    // any a payrail older than it wrote since.
    super::chain::seal_unsealed(&tx).await.context("Failed to chain the existing history and journals")?;
    tx.commit().await.context("Failed to commit the migrations")
}

#[cfg(test)]
mod tests {
    //! These run against a real server: set `PAYRAIL_TEST_DATABASE_URL` to a
    //! role that may create databases.

    use super::super::tests::TestDb;
    use super::super::PostgresStore;

    #[tokio::test]
    async fn two_instances_starting_together_both_migrate() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        // A second database, so that both instances find it empty.
        let name = format!("{}_b", db.name);
        db.admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        let mut config = db.config.clone();
        config.dbname(&name);
        let (a, b) = tokio::join!(PostgresStore::connect_with(config.clone()), PostgresStore::connect_with(config));
        a?.pool.close();
        b?.pool.close();
        db.admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await?;
        db.finish().await
    }
}
