//! The double-entry wallet ledger (journals, postings, wallet balances and statements, the audit behind `payrail verify`) and the partners' fee plans.

use super::*;

#[async_trait]
impl LedgerStore for SqliteStore {
    async fn post_journal(&self, journal: Journal) -> Result<WalletMove, DebitError> {
        if !journal.is_balanced() {
            return Err(StoreError::Other(anyhow::anyhow!("journal postings do not sum to zero")).into());
        }
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let wallet = debit_wallet(&tx, journal.partner, journal.wallet_change())?;
            insert_journal(&tx, &journal).map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(wallet)
        })
        .await
    }

    async fn wallet_balance(&self, partner: RegistrationId) -> Result<Paise, StoreError> {
        self.read(|conn| balance(conn, partner)).map(Paise::new)
    }

    async fn wallet_statement(
        &self,
        partner: RegistrationId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Statement, StoreError> {
        let account = Account::Wallet(partner).name();
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let opening = tx
                .prepare_cached(
                    "SELECT COALESCE(SUM(p.amount), 0) FROM postings p JOIN journals j ON j.id = p.journal_id \
                     WHERE p.account = ?1 AND j.at < ?2",
                )?
                .query_row(params![account, from.unix()], |r| r.get(0))?;
            let mut stmt = tx.prepare_cached(
                "SELECT j.id, j.at, j.purpose, j.kind, j.txn_id, j.memo, SUM(p.amount) FROM postings p \
                 JOIN journals j ON j.id = p.journal_id WHERE p.account = ?1 AND j.at >= ?2 AND j.at < ?3 \
                 GROUP BY j.id ORDER BY j.id",
            )?;
            let lines = stmt.query_map(params![account, from.unix(), to.unix()], statement_line)?;
            let lines = lines.collect::<rusqlite::Result<_>>()?;
            Ok(Statement { opening: Paise::new(opening), lines })
        })
    }

    async fn audit(&self) -> Result<LedgerAudit, StoreError> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            Ok(LedgerAudit {
                total: tx.query_row("SELECT COALESCE(SUM(amount), 0) FROM postings", [], |r| r.get(0))?,
                journals: tx.query_row("SELECT COUNT(*) FROM journals", [], |r| r.get(0))?,
                unbalanced_journals: collect(&tx, AUDIT_UNBALANCED, |r| Ok((r.get(0)?, r.get(1)?)))?,
                wallet_mismatches: collect(&tx, AUDIT_WALLETS, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?,
                repeated_journals: collect(&tx, AUDIT_REPEATED, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?,
                refunds_without_debit: collect(&tx, AUDIT_REFUNDS_WITHOUT_DEBIT, kind_and_id)?,
                refunds_not_recorded: collect(&tx, AUDIT_REFUNDS_NOT_RECORDED, kind_and_id)?,
                refunds_not_paid: collect(&tx, AUDIT_REFUNDS_NOT_PAID, kind_and_id)?,
                failed_not_refunded: collect(&tx, AUDIT_FAILED_NOT_REFUNDED, kind_and_id)?,
            })
        })
    }

    async fn insert_fee_plan(
        &self,
        partner: RegistrationId,
        effective_from: Timestamp,
        plan: FeePlan,
        created_at: Timestamp,
    ) -> Result<FeePlanVersion, DebitError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            require_partner(&tx, partner)?;
            let version: i64 = tx
                .prepare_cached("SELECT COALESCE(MAX(version), 0) + 1 FROM fee_plans WHERE partner_id = ?1")
                .and_then(|mut s| s.query_row([partner.number()], |r| r.get(0)))
                .map_err(store_error)?;
            tx.prepare_cached(
                "INSERT INTO fee_plans (partner_id, version, effective_from, plan, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![partner.number(), version, effective_from.unix(), plan.to_json(), created_at.unix()])
            })
            .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(FeePlanVersion { partner, version, effective_from, plan, created_at })
        })
        .await
    }

    async fn fee_plans(&self, partner: RegistrationId) -> Result<Vec<FeePlanVersion>, StoreError> {
        let rows: Vec<(i64, i64, String, i64)> = self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT version, effective_from, plan, created_at FROM fee_plans \
                 WHERE partner_id = ?1 ORDER BY version",
            )?;
            let rows = stmt.query_map([partner.number()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(version, effective_from, plan, created_at)| {
                let plan = FeePlan::from_json(&plan)
                    .with_context(|| format!("Stored fee plan {version} of partner {partner} is not valid"))?;
                Ok(FeePlanVersion {
                    partner,
                    version,
                    effective_from: Timestamp::from_unix(effective_from),
                    plan,
                    created_at: Timestamp::from_unix(created_at),
                })
            })
            .collect::<anyhow::Result<_>>()
            .map_err(StoreError::Other)
    }
}
