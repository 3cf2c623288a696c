//! Transaction search and a transaction's journals on PostgreSQL: the
//! shared SQL of `store::search`.

use super::columns::bind_all;
use super::*;
use crate::store::search::{self as shared, sql, Found, SearchPage, SearchStore, StateTotal, TxnJournal};

#[async_trait]
impl SearchStore for PostgresStore {
    async fn search_kind(&self, page: SearchPage<'_>) -> StoreResult<Vec<Found>> {
        let Some((sql, values)) = shared::search_sql(&page) else { return Ok(Vec::new()) };
        let client = self.client().await?;
        // Not prepared once per connection: the statement's shape changes with the filters.
        let rows = client.query(&sql, &bind_all(&values)).await.store_context("Failed to search the transactions")?;
        decode_all(&rows, |row| shared::decode_found(row, page.kind), "Failed to read a transaction found")
    }

    async fn search_plan(&self, page: SearchPage<'_>, no_seq_scan: bool) -> StoreResult<Vec<String>> {
        let Some((sql, values)) = shared::search_sql(&page) else { return Ok(Vec::new()) };
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the plan")?;
        if no_seq_scan {
            tx.batch_execute("SET LOCAL enable_seqscan = off").await.store_context("Failed to switch seq scans off")?;
        }
        let rows =
            tx.query(&format!("EXPLAIN {sql}"), &bind_all(&values)).await.store_context("Failed to plan the search")?;
        let lines = decode_all(&rows, |row| Ok(row.try_get::<_, String>(0)?), "Failed to read the plan")?;
        tx.rollback().await.store_context("Failed to end the plan")?;
        Ok(lines)
    }

    async fn txn_journals(&self, kind: TxnKind, id: i64) -> StoreResult<Vec<TxnJournal>> {
        let client = self.client().await?;
        let rows = query(&client, sql::TXN_JOURNALS, &[&kind.as_str(), &id], "Failed to read the journals").await?;
        Ok(shared::group_journals(decode_all(&rows, shared::journal_posting_from_row, "Failed to read a journal")?))
    }

    async fn state_totals(&self, since: Timestamp) -> StoreResult<Vec<StateTotal>> {
        let client = self.client().await?;
        let mut totals = Vec::new();
        for (kind, sql) in [(TxnKind::Dmt, sql::DMT_TOTALS), (TxnKind::Bbps, sql::BILL_TOTALS)] {
            let rows = query(&client, sql, &[&since.unix()], "Failed to count the transactions").await?;
            totals.extend(decode_all(&rows, |row| shared::state_total_from_row(row, kind), "Failed to read a total")?);
        }
        Ok(totals)
    }
}
