//! The health checks and gauges on PostgreSQL (SQL in [`crate::store::health::sql`]).

use super::*;
use crate::observe::StoreGauges;
use crate::store::health::{sql, HealthStore};

#[async_trait]
impl HealthStore for PostgresStore {
    async fn schema_version(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let what = "Failed to read the schema version";
        let row = query_one(&client, sql::SCHEMA_VERSION, &[], what).await?;
        row.try_get(0).store_context(what)
    }

    fn expected_schema_version(&self) -> i64 {
        migrations::VERSIONS
    }

    async fn gauges(&self, now: Timestamp) -> Result<StoreGauges, StoreError> {
        let client = self.client().await?;
        let what = "Failed to count the upstream work";
        let counts = query_one(&client, sql::WORK_COUNTS, &[&now.unix()], what).await?;
        let (polls_due, polls_held, events_pending) = (
            counts.try_get(0).store_context(what)?,
            counts.try_get(1).store_context(what)?,
            counts.try_get(2).store_context(what)?,
        );
        let what = "Failed to read the wallets";
        let rows = query(&client, sql::WALLETS, &[], what).await?;
        let wallets = decode_all(
            &rows,
            |row| Ok((RegistrationId::new(row.try_get(0)?).to_string(), Paise::new(row.try_get(1)?))),
            what,
        )?;
        Ok(StoreGauges { polls_due, polls_held, events_pending, wallets })
    }
}
