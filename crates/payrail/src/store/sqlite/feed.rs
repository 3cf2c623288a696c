//! The change feed on SQLite: history ids are in commit order (one writer).

use super::*;
use crate::store::feed::{change_from_row, sql, FeedChange, FeedCursor, FeedStore};

#[async_trait]
impl FeedStore for SqliteStore {
    async fn changes(&self, partner: RegistrationId, after: FeedCursor, limit: u32) -> StoreResult<Vec<FeedChange>> {
        self.read(|conn| {
            all_rows(conn, sql::CHANGES_SQLITE, params![partner.number(), after.id, limit], |row| change_from_row(row))
        })
    }
}
