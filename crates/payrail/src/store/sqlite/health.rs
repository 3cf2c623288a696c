//! The health checks and gauges on SQLite (SQL in [`crate::store::health::sql`]).

use super::*;
use crate::observe::StoreGauges;
use crate::store::health::{sql, wallet_gauge_from_row, work_counts_from_row, HealthStore};

#[async_trait]
impl HealthStore for SqliteStore {
    async fn schema_version(&self) -> StoreResult<i64> {
        self.read(|conn| conn.prepare_cached(sql::SCHEMA_VERSION)?.query_row([], |row| row.get(0)))
    }

    fn expected_schema_version(&self) -> i64 {
        migrations::VERSIONS
    }

    async fn gauges(&self, now: Timestamp) -> StoreResult<StoreGauges> {
        self.read(|conn| {
            let (polls_due, polls_held, events_pending) = conn
                .prepare_cached(sql::WORK_COUNTS)?
                .query_row(params![now.unix()], |row| work_counts_from_row(row))?;
            let wallets = all_rows(conn, sql::WALLETS, [], |row| wallet_gauge_from_row(row))?;
            Ok(StoreGauges { polls_due, polls_held, events_pending, wallets })
        })
    }
}
