//! The change feed on PostgreSQL: only rows of transactions that have ended,
//! in `(xid, id)` order (see `store::feed`).

use super::*;
use crate::store::feed::{change_from_row, sql, FeedChange, FeedCursor, FeedStore};

#[async_trait]
impl FeedStore for PostgresStore {
    async fn changes(&self, partner: RegistrationId, after: FeedCursor, limit: u32) -> StoreResult<Vec<FeedChange>> {
        let client = self.client().await?;
        let limit = i64::from(limit);
        let params: [&(dyn ToSql + Sync); 4] = [&partner.number(), &after.id, &limit, &after.xid];
        let rows = query(&client, sql::CHANGES_POSTGRES, &params, "Failed to read the change feed").await?;
        decode_all(&rows, change_from_row, "Failed to read a change")
    }
}
