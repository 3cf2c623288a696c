//! What `/readyz` and `/metrics` ask of the store: whether it answers and
//! its schema is the one this binary migrates to, and the few figures the
//! metrics show as gauges. Each is one cheap statement: counts through the
//! partial indexes of due poll jobs and pending events, and the wallets
//! (one row per partner). Each engine's implementation is in its `health.rs`.

use async_trait::async_trait;

use super::columns::StoredRow;
use super::StoreResult;
use crate::domain::{Paise, RegistrationId, Timestamp};
use crate::observe::StoreGauges;

/// The store's side of the health checks and gauges.
#[async_trait]
pub trait HealthStore {
    /// The highest schema version the store has applied (one query: it is
    /// also the readiness ping).
    async fn schema_version(&self) -> StoreResult<i64>;
    /// The schema version this binary's migrations reach.
    fn expected_schema_version(&self) -> i64;
    /// Poll jobs due at `now` and held, events pending, and every wallet's balance.
    async fn gauges(&self, now: Timestamp) -> StoreResult<StoreGauges>;
}

/// The statements both engines run, with `$n` parameters.
pub(crate) mod sql {
    /// The highest schema version applied.
    pub(crate) const SCHEMA_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
    /// Poll jobs due at `$1` (not held), held poll jobs, pending events.
    pub(crate) const WORK_COUNTS: &str = "SELECT \
         (SELECT count(*) FROM upstream_polls WHERE next_poll_at <= $1), \
         (SELECT count(*) FROM upstream_polls WHERE next_poll_at IS NULL), \
         (SELECT count(*) FROM partner_events WHERE state = 'pending')";
    /// Every wallet: partner number, balance in paise.
    pub(crate) const WALLETS: &str = "SELECT partner_id, balance FROM wallets ORDER BY partner_id";
}

/// Reads the row of [`sql::WORK_COUNTS`]: poll jobs due, poll jobs held,
/// events pending.
pub(crate) fn work_counts_from_row<R: StoredRow>(row: &R) -> Result<(i64, i64, i64), R::Error> {
    Ok((row.int(0)?, row.int(1)?, row.int(2)?))
}

/// Reads a row of [`sql::WALLETS`] as the gauge shows it: the partner's
/// name (`AOP-554`) and its balance.
pub(crate) fn wallet_gauge_from_row<R: StoredRow>(row: &R) -> Result<(String, Paise), R::Error> {
    Ok((RegistrationId::new(row.int(0)?).to_string(), Paise::new(row.int(1)?)))
}
