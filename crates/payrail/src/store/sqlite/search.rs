//! Transaction search and a transaction's journals on SQLite: the shared
//! SQL of `store::search`, run on a pooled read connection.

use rusqlite::params_from_iter;

use super::*;
use crate::store::search::{self as shared, sql, Found, SearchPage, SearchStore, StateTotal, TxnJournal};

#[async_trait]
impl SearchStore for SqliteStore {
    async fn search_kind(&self, page: SearchPage<'_>) -> StoreResult<Vec<Found>> {
        let Some((sql, values)) = shared::search_sql(&page) else { return Ok(Vec::new()) };
        self.read(|conn| {
            // Not cached: the statement's shape changes with the filters.
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(values.iter()), |row| shared::decode_found(row, page.kind))?;
            rows.collect()
        })
    }

    async fn search_plan(&self, page: SearchPage<'_>, _no_seq_scan: bool) -> StoreResult<Vec<String>> {
        let Some((sql, values)) = shared::search_sql(&page) else { return Ok(Vec::new()) };
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            // Columns: id, parent, unused, detail; a node's depth from its parents.
            let rows = stmt.query_map(params_from_iter(values.iter()), |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(3)?))
            })?;
            let nodes: Vec<(i64, i64, String)> = rows.collect::<rusqlite::Result<_>>()?;
            let depth = |mut parent: i64| {
                let mut depth = 0;
                while let Some(node) = nodes.iter().find(|n| n.0 == parent) {
                    depth += 1;
                    parent = node.1;
                }
                depth
            };
            Ok(nodes.iter().map(|(_, parent, detail)| format!("{}{detail}", "  ".repeat(depth(*parent)))).collect())
        })
    }

    async fn txn_journals(&self, kind: TxnKind, id: i64) -> StoreResult<Vec<TxnJournal>> {
        let params = rusqlite::params![kind.as_str(), id];
        let rows =
            self.read(|conn| all_rows(conn, sql::TXN_JOURNALS, params, |row| shared::journal_posting_from_row(row)))?;
        Ok(shared::group_journals(rows))
    }

    async fn state_totals(&self, since: Timestamp) -> StoreResult<Vec<StateTotal>> {
        let mut totals = Vec::new();
        for (kind, sql) in [(TxnKind::Dmt, sql::DMT_TOTALS), (TxnKind::Bbps, sql::BILL_TOTALS)] {
            let rows =
                self.read(|conn| all_rows(conn, sql, [since.unix()], |row| shared::state_total_from_row(row, kind)))?;
            totals.extend(rows);
        }
        Ok(totals)
    }
}
