//! The double-entry wallet ledger (journals, postings, wallet balances and statements, the audit behind `payrail verify`) and the partners' fee plans.

use super::*;

/// The double-entry wallet ledger (journals, postings, wallet balances and statements, the audit behind `payrail verify`) and the partners' fee plans.
#[async_trait]
pub trait LedgerStore: Send + Sync + 'static {
    /// Writes a journal (a top-up or a withdrawal) and moves the partner's
    /// wallet balance by [`Journal::wallet_change`], atomically. Refuses with
    /// `InsufficientFunds` if the wallet would go below zero, `UnknownPartner`
    /// if there is no such partner. Wallet rows are created on first use.
    async fn post_journal(&self, journal: Journal) -> Result<WalletMove, DebitError>;
    /// The partner's wallet balance (0 if it never moved).
    async fn wallet_balance(&self, partner: RegistrationId) -> Result<Paise, StoreError>;
    /// The wallet's movements with `from <= at < to`, oldest first (by
    /// journal id), and the balance at `from` (the sum of earlier postings).
    async fn wallet_statement(
        &self,
        partner: RegistrationId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Statement, StoreError>;
    /// Checks the ledger's invariants in one consistent read.
    async fn audit(&self) -> Result<LedgerAudit, StoreError>;
    /// Records a new version of the partner's plan (the next version number)
    /// and returns it. `UnknownPartner` if there is no such partner.
    async fn insert_fee_plan(
        &self,
        partner: RegistrationId,
        effective_from: Timestamp,
        plan: FeePlan,
        created_at: Timestamp,
    ) -> Result<FeePlanVersion, DebitError>;
    /// Every version of the partner's plan, by version.
    async fn fee_plans(&self, partner: RegistrationId) -> Result<Vec<FeePlanVersion>, StoreError>;
}
