//! The double-entry wallet ledger (journals, postings, wallet balances and statements, the audit behind `payrail verify`) and the partners' fee plans.

use super::*;

#[async_trait]
impl LedgerStore for PostgresStore {
    async fn post_journal(&self, journal: Journal) -> Result<WalletMove, DebitError> {
        let partner = journal.partner;
        let result = self.post(journal).await;
        self.settle(partner, result).await
    }

    async fn wallet_balance(&self, partner: RegistrationId) -> Result<Paise, StoreError> {
        let client = self.client().await?;
        let row = query_opt(&client, WALLET_BALANCE, &[&partner.number()], "Failed to read the wallet").await?;
        let balance: Option<i64> =
            row.map(|row| row.try_get(0)).transpose().store_context("Failed to read the balance")?;
        Ok(Paise::new(balance.unwrap_or(0)))
    }

    async fn wallet_statement(
        &self,
        partner: RegistrationId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Statement, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let account = Account::Wallet(partner).name();
        let params: [&(dyn ToSql + Sync); 2] = [&account, &from.unix()];
        let row = query_one(&tx, STATEMENT_OPENING, &params, "Failed to read the opening balance").await?;
        let opening = Paise::new(row.try_get(0).store_context("Failed to read the opening balance")?);
        let params: [&(dyn ToSql + Sync); 3] = [&account, &from.unix(), &to.unix()];
        let rows = query(&tx, STATEMENT_LINES, &params, "Failed to read the statement").await?;
        let lines = rows.iter().map(statement_line).collect::<anyhow::Result<_>>();
        let lines = lines.context("Failed to read a statement line")?;
        tx.commit().await.store_context("Failed to end the statement read")?;
        Ok(Statement { opening, lines })
    }

    async fn audit(&self) -> Result<LedgerAudit, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let audit = audit_in(&tx).await?;
        tx.commit().await.store_context("Failed to end the audit read")?;
        Ok(audit)
    }

    async fn insert_fee_plan(
        &self,
        partner: RegistrationId,
        effective_from: Timestamp,
        plan: FeePlan,
        created_at: Timestamp,
    ) -> Result<FeePlanVersion, DebitError> {
        let result = self.add_fee_plan(partner, effective_from, &plan.to_json(), created_at).await;
        let version = self.settle(partner, result).await?;
        Ok(FeePlanVersion { partner, version, effective_from, plan, created_at })
    }

    async fn fee_plans(&self, partner: RegistrationId) -> Result<Vec<FeePlanVersion>, StoreError> {
        let client = self.client().await?;
        let rows = query(&client, FEE_PLANS, &[&partner.number()], "Failed to read the fee plans").await?;
        let plans = rows.iter().map(|row| fee_plan_from_row(partner, row)).collect::<anyhow::Result<_>>();
        Ok(plans.context("Failed to read a stored fee plan")?)
    }
}
