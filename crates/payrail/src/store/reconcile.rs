//! What reconciliation against a bank file reads from the store: every DMT
//! transfer made in a time range, with its UTR and the upstream reference
//! payrail sent it with, in one query (`services::reconcile` matches them in
//! memory).

use super::columns::StoredRow;
use super::*;
use crate::domain::DmtStatus;

pub(crate) mod sql {
    /// The transfers made with `$1 <= created_at < $2`: ackno, partner,
    /// amount, state, UTR, upstream reference tail, time made.
    pub(crate) const CANDIDATES: &str = "SELECT d.ackno, d.partner_id, d.amount, d.status, d.utr, r.ref_tail, \
         d.created_at FROM dmt_transfers d \
         LEFT JOIN upstream_refs r ON r.kind = 'dmt' AND r.txn_id = d.ackno \
         WHERE d.created_at >= $1 AND d.created_at < $2";
}

/// A transfer as reconciliation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// payrail's number for it.
    pub ackno: i64,
    /// Its partner.
    pub partner: RegistrationId,
    /// The amount sent.
    pub amount: Paise,
    /// Its state now.
    pub status: DmtStatus,
    /// The bank's reference, once paid.
    pub utr: Option<String>,
    /// The tail of the upstream reference it was sent with (without the
    /// configured prefix), if it was ever sent upstream.
    pub ref_tail: Option<String>,
    /// When it was made.
    pub created_at: Timestamp,
}

/// Reconciliation's reads.
#[async_trait]
pub trait ReconcileStore: Send + Sync + 'static {
    /// Every transfer made with `from <= created_at < to`, in no order.
    async fn reconcile_candidates(&self, from: Timestamp, to: Timestamp) -> StoreResult<Vec<Candidate>>;
}

/// Reads a row of [`sql::CANDIDATES`], on either engine.
pub(crate) fn candidate_from_row<R: StoredRow>(row: &R) -> Result<Candidate, R::Error> {
    Ok(Candidate {
        ackno: row.int(0)?,
        partner: RegistrationId::new(row.int(1)?),
        amount: Paise::new(row.int(2)?),
        status: row.coded(3, DmtStatus::from_code)?,
        utr: row.opt_text(4)?,
        ref_tail: row.opt_text(5)?,
        created_at: Timestamp::from_unix(row.int(6)?),
    })
}
