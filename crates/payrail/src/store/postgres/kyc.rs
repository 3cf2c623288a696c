//! Remitter e-KYC on PostgreSQL: attempts per mobile and KYC records. The
//! SQL both engines run is in [`crate::store::kyc::sql`]; what only
//! PostgreSQL runs (its advisory lock: SQLite's one writer needs none) is here.

use super::columns::bind_all;
use super::*;
use crate::domain::ekyc::KycRecord;
use crate::store::kyc::{kyc_from_row, kyc_values, sql, stale_kycs_before, KycRegistration};
use crate::store::remittance::{remitter_values, sql::INSERT_REMITTER};
use crate::store::KycStore;

#[async_trait]
impl KycStore for PostgresStore {
    async fn insert_kyc(&self, record: KycRecord) -> StoreResult<()> {
        let client = self.client().await?;
        let stale = stale_kycs_before(record.created_at);
        execute(&client, sql::FORGET_KYCS, &[&stale], "Failed to forget old e-KYCs").await?;
        let values = kyc_values(&record);
        execute(&client, sql::INSERT_KYC, &bind_all(&values), "Failed to store the e-KYC").await?;
        Ok(())
    }

    async fn find_kyc(&self, partner: RegistrationId, kyc_id: &str) -> StoreResult<Option<KycRecord>> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 2] = [&kyc_id, &partner.number()];
        let row = query_opt(&client, sql::FIND_KYC, &params, "Failed to find the e-KYC").await?;
        let record = row.map(|row| kyc_from_row(&row, partner, kyc_id)).transpose();
        Ok(record.context("Failed to read the e-KYC")?)
    }

    async fn register_with_kyc(&self, remitter: Remitter, made_after: Timestamp) -> StoreResult<KycRegistration> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the registration")?;
        let r = &remitter;
        // The UPDATE locks the record's row: a concurrent use waits, then finds it used.
        let params: [&(dyn ToSql + Sync); 5] =
            [&r.created_at.unix(), &r.kyc_id, &r.partner.number(), &r.mobile.as_str(), &made_after.unix()];
        if execute(&tx, sql::USE_KYC, &params, "Failed to use the e-KYC").await? != 1 {
            return Ok(KycRegistration::KycUnusable);
        }
        let values = remitter_values(r);
        if execute(&tx, INSERT_REMITTER, &bind_all(&values), "Failed to add the remitter").await? != 1 {
            // Dropped without a commit, the transaction undoes the use of the record.
            return Ok(KycRegistration::AlreadyRegistered);
        }
        tx.commit().await.store_context("Failed to commit the registration")?;
        Ok(KycRegistration::Registered)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::postgres::test_db::postgres_tests;
    use crate::store::PartnerStore as _;

    postgres_tests!(partner: attempts_and_kyc_records_follow_the_rules);

    mod cases {
        use super::super::*;
        use crate::store::postgres::tests::partner;

        pub(super) async fn attempts_and_kyc_records_follow_the_rules(store: &PostgresStore) -> anyhow::Result<()> {
            crate::store::kyc::conformance::attempts_and_single_use(store, partner()).await
        }
    }
}
