//! Reconciliation's reads on PostgreSQL: the shared SQL of `store::reconcile`.

use super::*;
use crate::store::reconcile::{candidate_from_row, sql, Candidate, ReconcileStore};

#[async_trait]
impl ReconcileStore for PostgresStore {
    async fn reconcile_candidates(&self, from: Timestamp, to: Timestamp) -> StoreResult<Vec<Candidate>> {
        let client = self.client().await?;
        let rows =
            query(&client, sql::CANDIDATES, &[&from.unix(), &to.unix()], "Failed to read the transfers to reconcile")
                .await?;
        decode_all(&rows, candidate_from_row, "Failed to read a transfer to reconcile")
    }
}
