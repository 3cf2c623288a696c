//! Transaction search and a transaction's journals on SQLite: the shared
//! SQL of `store::search`, run on a pooled read connection.

use rusqlite::params_from_iter;

use super::*;
use crate::store::search::{self as shared, sql, Found, SearchCursor, SearchFilter, SearchStore, TxnJournal};

#[async_trait]
impl SearchStore for SqliteStore {
    async fn search_kind(
        &self,
        filter: &SearchFilter,
        kind: TxnKind,
        after: Option<SearchCursor>,
        limit: u32,
    ) -> Result<Vec<Found>, StoreError> {
        let Some((sql, values)) = shared::search_sql(filter, kind, after, limit) else { return Ok(Vec::new()) };
        self.read(|conn| {
            // Not cached: the statement's shape changes with the filters.
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(values.iter()), |row| shared::decode_found(row, kind))?;
            rows.collect()
        })
    }

    async fn txn_journals(&self, kind: TxnKind, id: i64) -> Result<Vec<TxnJournal>, StoreError> {
        let rows = self.read(|conn| {
            all_rows(conn, sql::TXN_JOURNALS, rusqlite::params![kind.as_str(), id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
            })
        })?;
        Ok(shared::group_journals(rows))
    }
}
