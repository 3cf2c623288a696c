//! What `payrail verify`, `GET /admin/v1/verify` and a restore's check look
//! at: the ledger's invariants, the penny drops' money, and the
//! tamper-evident history chains ([`super::chain`]).

use super::chain::{self, Anchor};
use super::ledger;
use crate::store::{Store, StoreError};

/// What was checked, and every violation found.
#[derive(Debug)]
pub struct Checked {
    /// Journals in the ledger.
    pub journals: i64,
    /// Links of the history chains recomputed.
    pub links: u64,
    /// Chains recomputed.
    pub chains: usize,
    /// Every violation, the chains' prefixed `history chain: `.
    pub violations: Vec<String>,
}

/// Runs every check; with `anchor`, the chains must also hold its heads.
pub async fn check(store: &dyn Store, anchor: Option<&Anchor>) -> Result<Checked, StoreError> {
    let audit = store.audit().await?;
    let mut violations = ledger::violations(&audit);
    violations.extend(store.audit_penny_drops().await?);
    let chains = chain::verify(store, anchor).await?;
    violations.extend(chains.breaks.into_iter().map(|b| format!("history chain: {b}")));
    Ok(Checked { journals: audit.journals, links: chains.links, chains: chains.chains, violations })
}
