//! Remittance on SQLite: remitters, their monthly usage, beneficiaries, OTPs
//! and the per-mobile text limits. The SQL both engines run is in
//! [`crate::store::remittance::sql`]; what only SQLite runs is here.

use super::*;
use crate::domain::remitter::PerBank;
use crate::store::remittance::{Count, CountResult, MobileCounts, PerMobile};
use rusqlite::params_from_iter;

use crate::store::remittance::{
    beneficiary_from_row, beneficiary_values, otp_from_row, remitter_from_row, remitter_values, sql, stale_otps_before,
};

#[async_trait]
impl RemittanceStore for SqliteStore {
    async fn find_remitter(&self, partner: RegistrationId, mobile: &MobileNumber) -> StoreResult<Option<Remitter>> {
        self.read(|conn| {
            optional_row(conn, sql::FIND_REMITTER, params![partner.number(), mobile.as_str()], |row| {
                remitter_from_row(partner, row)
            })
        })
    }

    async fn insert_remitter(&self, remitter: Remitter) -> StoreResult<bool> {
        self.write(move |conn| {
            Ok(execute(conn, sql::INSERT_REMITTER, params_from_iter(remitter_values(&remitter)))? == 1)
        })
        .await
    }

    async fn remitter_usage(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
        since: Timestamp,
    ) -> StoreResult<PerBank> {
        self.read(|conn| {
            let mut usage = PerBank::default();
            let mut stmt = conn.prepare_cached(sql::REMITTER_USAGE)?;
            let mut rows = stmt.query(params![partner.number(), mobile.as_str(), since.unix()])?;
            while let Some(row) = rows.next()? {
                let bank: i64 = row.get(0)?;
                let bank = Bank::from_number(bank).ok_or_else(|| conversion_error(0, BadState(bank.to_string())))?;
                *usage.get_mut(bank) = Paise::new(row.get(1)?);
            }
            Ok(usage)
        })
    }

    async fn insert_beneficiary(&self, beneficiary: Beneficiary) -> StoreResult<Result<Beneficiary, i64>> {
        self.write(move |conn| {
            let b = &beneficiary;
            // One writer connection: the check and the insert cannot interleave with another add.
            let tx = immediate(conn)?;
            let bank = b.ifsc.as_str().get(..4).unwrap_or_default();
            let existing = tx
                .prepare_cached(sql::SAME_ACCOUNT)
                .and_then(|mut s| {
                    let same = params![b.partner.number(), b.remitter.as_str(), b.account.as_str(), bank];
                    s.query_row(same, |r| r.get::<_, i64>(0)).optional()
                })
                .map_err(store_error)?;
            if let Some(id) = existing {
                return Ok(Err(id));
            }
            let id = tx
                .prepare_cached(sql::INSERT_BENEFICIARY)
                .and_then(|mut s| s.query_row(params_from_iter(beneficiary_values(b)), |r| r.get(0)))
                .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(Ok(Beneficiary { id, ..beneficiary }))
        })
        .await
    }

    async fn beneficiaries(&self, partner: RegistrationId, mobile: &MobileNumber) -> StoreResult<Vec<Beneficiary>> {
        self.read(|conn| {
            all_rows(conn, sql::BENEFICIARIES, params![partner.number(), mobile.as_str()], |row| {
                beneficiary_from_row(row)
            })
        })
    }

    async fn find_beneficiary(&self, partner: RegistrationId, id: i64) -> StoreResult<Option<Beneficiary>> {
        self.read(|conn| {
            optional_row(conn, sql::FIND_BENEFICIARY, params![partner.number(), id], |row| beneficiary_from_row(row))
        })
    }

    async fn set_beneficiary_upstream_id(&self, beneficiary: &Beneficiary, upstream_id: &str) -> StoreResult<bool> {
        let (partner, id) = (beneficiary.partner, beneficiary.id);
        let upstream_id = upstream_id.to_owned();
        self.write(move |conn| {
            Ok(execute(conn, sql::SET_BENEFICIARY_UPSTREAM_ID, params![upstream_id, partner.number(), id])? == 1)
        })
        .await
    }

    async fn delete_beneficiary(&self, deletion: BeneficiaryDeletion<'_>) -> StoreResult<bool> {
        let BeneficiaryDeletion { partner, mobile, id, at } = deletion;
        let mobile = mobile.as_str().to_owned();
        self.write(move |conn| {
            Ok(execute(conn, sql::DELETE_BENEFICIARY, params![at.unix(), partner.number(), mobile, id])? == 1)
        })
        .await
    }

    async fn latest_otp_token(
        &self,
        partner: RegistrationId,
        purpose: OtpPurpose,
        subject: &str,
    ) -> StoreResult<Option<String>> {
        let subject = subject.to_owned();
        self.read(move |conn| {
            optional_row(conn, sql::LATEST_OTP, params![partner.number(), purpose.as_str(), subject], |row| row.get(0))
        })
    }

    async fn insert_otp(&self, otp: OtpRecord) -> StoreResult<()> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            execute(&tx, sql::FORGET_OTPS, [stale_otps_before(otp.expires_at)])?;
            let stored = params![
                otp.token,
                otp.partner.number(),
                otp.purpose.as_str(),
                otp.subject,
                otp.code_hash,
                otp.expires_at.unix(),
                otp.attempts,
                otp.used
            ];
            execute(&tx, sql::INSERT_OTP, stored)?;
            tx.commit().map_err(store_error)
        })
        .await
    }

    async fn check_otp(&self, presented: OtpAttempt<'_>) -> StoreResult<OtpCheck> {
        let OtpAttempt { partner, token, purpose, code, now } = presented;
        let (token, code) = (token.to_owned(), code.to_owned());
        // One writer connection: no other check of this OTP runs between the read and the save.
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let found = tx
                .prepare_cached(sql::FIND_OTP)
                .and_then(|mut s| {
                    let params = params![token, partner.number(), purpose.as_str()];
                    s.query_row(params, |row| otp_from_row(row, partner, &token, purpose)).optional()
                })
                .map_err(store_error)?;
            let Some(mut record) = found else {
                return Ok(OtpCheck::Unknown);
            };
            let outcome = record.check(&code, now);
            execute(&tx, sql::SAVE_OTP, params![record.attempts, record.used, token])?;
            tx.commit().map_err(store_error)?;
            Ok(outcome)
        })
        .await
    }
}

/// What the remitter sent through `bank` in non-refunded transfers made at
/// or after `since`: the monthly limit's check when a transfer is made.
pub(super) fn routed_since(
    conn: &Connection,
    partner: RegistrationId,
    mobile: &MobileNumber,
    bank: Bank,
    since: Timestamp,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(sql::ROUTE_USAGE)?
        .query_row(params![partner.number(), mobile.as_str(), bank.number(), since.unix()], |r| r.get(0))
}

#[async_trait]
impl MobileCounts for SqliteStore {
    // One writer connection: no other count of the mobile runs between check and count.
    async fn count_per_mobile(&self, events: &'static PerMobile, count: Count) -> CountResult {
        self.write(move |conn| {
            let Count { mobile, at, since, allowed } = count;
            let tx = immediate(conn)?;
            let made = all_rows(&tx, events.recent, params![mobile, since], |r| r.get(0)).map_err(store_error)?;
            if let Some(until) = allowed(&made) {
                return Ok(Err(until));
            }
            execute(&tx, events.forget, [since])?;
            execute(&tx, events.count, params![mobile, at.unix()])?;
            tx.commit().map_err(store_error)?;
            Ok(Ok(()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite::tests::lifecycle::sqlite_tests;

    sqlite_tests!(partner: an_otp_is_accepted_once_for_its_partner_and_purpose, fee_plans_remitters_and_beneficiaries);

    /// The tests above run the bodies both engines share.
    mod cases {
        use super::super::*;
        use crate::store::remittance::conformance;
        use crate::store::sqlite::tests::lifecycle::ok;

        pub(super) async fn an_otp_is_accepted_once_for_its_partner_and_purpose(
            store: &Arc<SqliteStore>,
            p: RegistrationId,
        ) {
            ok(conformance::an_otp_is_accepted_once(&**store, p).await);
        }

        pub(super) async fn fee_plans_remitters_and_beneficiaries(store: &Arc<SqliteStore>, p: RegistrationId) {
            ok(conformance::fee_plans_remitters_and_beneficiaries(&**store, p).await);
        }
    }
}
