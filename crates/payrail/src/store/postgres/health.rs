//! The health checks and gauges on PostgreSQL (SQL in [`crate::store::health::sql`]).

use super::*;
use crate::observe::StoreGauges;
use crate::store::health::{sql, wallet_gauge_from_row, work_counts_from_row, HealthStore};

#[async_trait]
impl HealthStore for PostgresStore {
    async fn schema_version(&self) -> StoreResult<i64> {
        let client = self.client().await?;
        let what = "Failed to read the schema version";
        let row = query_one(&client, sql::SCHEMA_VERSION, &[], what).await?;
        row.try_get(0).store_context(what)
    }

    fn expected_schema_version(&self) -> i64 {
        migrations::VERSIONS
    }

    async fn gauges(&self, now: Timestamp) -> StoreResult<StoreGauges> {
        let client = self.client().await?;
        let what = "Failed to count the upstream work";
        let counts = query_one(&client, sql::WORK_COUNTS, &[&now.unix()], what).await?;
        let (polls_due, polls_held, events_pending) = work_counts_from_row(&counts).context(what)?;
        let rows = query(&client, sql::WALLETS, &[], "Failed to read the wallets").await?;
        let wallets = decode_all(&rows, wallet_gauge_from_row, "Failed to read the wallets")?;
        Ok(StoreGauges { polls_due, polls_held, events_pending, wallets })
    }
}
