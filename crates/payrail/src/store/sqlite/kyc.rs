//! Remitter e-KYC on SQLite: attempts per mobile and KYC records. The SQL
//! both engines run is in [`crate::store::kyc::sql`]. One writer connection
//! serialises every check with its write, so no lock is needed.

use rusqlite::params_from_iter;

use super::*;
use crate::domain::ekyc::KycRecord;
use crate::store::kyc::{kyc_from_row, kyc_values, sql, stale_kycs_before, KycRegistration};
use crate::store::remittance::{remitter_values, sql::INSERT_REMITTER};
use crate::store::KycStore;

#[async_trait]
impl KycStore for SqliteStore {
    async fn insert_kyc(&self, record: KycRecord) -> StoreResult<()> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            execute(&tx, sql::FORGET_KYCS, [stale_kycs_before(record.created_at)])?;
            execute(&tx, sql::INSERT_KYC, params_from_iter(kyc_values(&record)))?;
            tx.commit().map_err(store_error)
        })
        .await
    }

    async fn find_kyc(&self, partner: RegistrationId, kyc_id: &str) -> StoreResult<Option<KycRecord>> {
        self.read(|conn| {
            optional_row(conn, sql::FIND_KYC, params![kyc_id, partner.number()], |row| {
                kyc_from_row(row, partner, kyc_id)
            })
        })
    }

    async fn register_with_kyc(&self, remitter: Remitter, made_after: Timestamp) -> StoreResult<KycRegistration> {
        self.write(move |conn| {
            let r = &remitter;
            // Dropped without a commit, the savepoint undoes the use of the record.
            let tx = immediate(conn)?;
            let used = params![r.created_at.unix(), r.kyc_id, r.partner.number(), r.mobile.as_str(), made_after.unix()];
            if execute(&tx, sql::USE_KYC, used)? != 1 {
                return Ok(KycRegistration::KycUnusable);
            }
            if execute(&tx, INSERT_REMITTER, params_from_iter(remitter_values(r)))? != 1 {
                return Ok(KycRegistration::AlreadyRegistered);
            }
            tx.commit().map_err(store_error)?;
            Ok(KycRegistration::Registered)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite::tests::lifecycle::sqlite_tests;

    sqlite_tests!(partner: attempts_and_kyc_records_follow_the_rules);

    mod cases {
        use super::super::*;

        pub(super) async fn attempts_and_kyc_records_follow_the_rules(store: &Arc<SqliteStore>, p: RegistrationId) {
            let outcome = crate::store::kyc::conformance::attempts_and_single_use(&**store, p).await;
            outcome.unwrap_or_else(|e| panic!("{e:#}"));
        }
    }
}
