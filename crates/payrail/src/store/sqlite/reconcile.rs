//! Reconciliation's reads on SQLite: the shared SQL of `store::reconcile`.

use super::*;
use crate::store::reconcile::{candidate_from_row, sql, Candidate, ReconcileStore};

#[async_trait]
impl ReconcileStore for SqliteStore {
    async fn reconcile_candidates(&self, from: Timestamp, to: Timestamp) -> StoreResult<Vec<Candidate>> {
        self.read(|conn| {
            all_rows(conn, sql::CANDIDATES, params![from.unix(), to.unix()], |row| candidate_from_row(row))
        })
    }
}
