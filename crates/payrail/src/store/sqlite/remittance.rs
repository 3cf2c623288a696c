//! Remittance on SQLite: remitters, their monthly usage, beneficiaries, OTPs
//! and the per-mobile text limits. The SQL both engines run is in
//! [`crate::store::remittance::sql`]; what only SQLite runs is here.

use super::*;
use crate::domain::remitter::PerBank;
use rusqlite::params_from_iter;

use crate::store::remittance::{
    beneficiary_from_row, beneficiary_values, otp_from_row, remitter_from_row, remitter_values, sql, stale_otps_before,
};

/// Deletes every text older than `?1`. One writer runs it, so a plain delete
/// (PostgreSQL sweeps in bounded batches that skip rows another sweep holds).
const FORGET_TEXTS: &str = "DELETE FROM otp_texts WHERE sent_at <= ?1";

#[async_trait]
impl RemittanceStore for SqliteStore {
    async fn find_remitter(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
    ) -> Result<Option<Remitter>, StoreError> {
        self.read(|conn| {
            optional_row(conn, sql::FIND_REMITTER, params![partner.number(), mobile.as_str()], |row| {
                remitter_from_row(partner, row)
            })
        })
    }

    async fn insert_remitter(&self, remitter: Remitter) -> Result<bool, StoreError> {
        self.write(move |conn| {
            conn.prepare_cached(sql::INSERT_REMITTER)
                .and_then(|mut s| s.execute(params_from_iter(remitter_values(&remitter))))
                .map(|n| n == 1)
                .map_err(store_error)
        })
        .await
    }

    async fn remitter_usage(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
        since: Timestamp,
    ) -> Result<PerBank, StoreError> {
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

    async fn insert_beneficiary(&self, beneficiary: Beneficiary) -> Result<Result<Beneficiary, i64>, StoreError> {
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

    async fn beneficiaries(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
    ) -> Result<Vec<Beneficiary>, StoreError> {
        self.read(|conn| {
            all_rows(conn, sql::BENEFICIARIES, params![partner.number(), mobile.as_str()], |row| {
                beneficiary_from_row(row)
            })
        })
    }

    async fn find_beneficiary(&self, partner: RegistrationId, id: i64) -> Result<Option<Beneficiary>, StoreError> {
        self.read(|conn| {
            optional_row(conn, sql::FIND_BENEFICIARY, params![partner.number(), id], |row| beneficiary_from_row(row))
        })
    }

    async fn set_beneficiary_upstream_id(
        &self,
        partner: RegistrationId,
        id: i64,
        upstream_id: &str,
    ) -> Result<bool, StoreError> {
        let upstream_id = upstream_id.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(sql::SET_BENEFICIARY_UPSTREAM_ID)
                .and_then(|mut s| s.execute(params![upstream_id, partner.number(), id]))
                .map(|n| n == 1)
                .map_err(store_error)
        })
        .await
    }

    async fn delete_beneficiary(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
        id: i64,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mobile = mobile.as_str().to_owned();
        self.write(move |conn| {
            conn.prepare_cached(sql::DELETE_BENEFICIARY)
                .and_then(|mut s| s.execute(params![at.unix(), partner.number(), mobile, id]))
                .map(|n| n == 1)
                .map_err(store_error)
        })
        .await
    }

    async fn latest_otp_token(
        &self,
        partner: RegistrationId,
        purpose: OtpPurpose,
        subject: &str,
    ) -> Result<Option<String>, StoreError> {
        let subject = subject.to_owned();
        self.read(move |conn| {
            optional_row(conn, sql::LATEST_OTP, params![partner.number(), purpose.as_str(), subject], |row| row.get(0))
        })
    }

    async fn insert_otp(&self, otp: OtpRecord) -> Result<(), StoreError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            tx.prepare_cached(sql::FORGET_OTPS)
                .and_then(|mut s| s.execute([stale_otps_before(otp.expires_at)]))
                .map_err(store_error)?;
            tx.prepare_cached(sql::INSERT_OTP)
                .and_then(|mut s| {
                    s.execute(params![
                        otp.token,
                        otp.partner.number(),
                        otp.purpose.as_str(),
                        otp.subject,
                        otp.code_hash,
                        otp.expires_at.unix(),
                        otp.attempts,
                        otp.used
                    ])
                })
                .map_err(store_error)?;
            tx.commit().map_err(store_error)
        })
        .await
    }

    async fn count_text(
        &self,
        mobile: &MobileNumber,
        now: Timestamp,
        limits: TextLimits,
    ) -> Result<Result<(), Timestamp>, StoreError> {
        let mobile = mobile.as_str().to_owned();
        // One writer connection: check and count cannot interleave.
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let since = now.unix() - TEXT_DAY_SECS;
            let sent = all_rows(&tx, sql::RECENT_TEXTS, params![mobile, since], |r| r.get(0)).map_err(store_error)?;
            if let Some(at) = limits.next_allowed(&sent, now.unix()) {
                return Ok(Err(at));
            }
            tx.prepare_cached(FORGET_TEXTS).and_then(|mut s| s.execute([since])).map_err(store_error)?;
            tx.prepare_cached(sql::COUNT_TEXT)
                .and_then(|mut s| s.execute(params![mobile, now.unix()]))
                .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn check_otp(
        &self,
        partner: RegistrationId,
        token: &str,
        purpose: OtpPurpose,
        code: &str,
        now: Timestamp,
    ) -> Result<OtpCheck, StoreError> {
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
            tx.prepare_cached(sql::SAVE_OTP)
                .and_then(|mut s| s.execute(params![record.attempts, record.used, token]))
                .map_err(store_error)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::remitter::{AccountNumber, Ifsc};
    use crate::store::sqlite::tests::lifecycle::sqlite_tests;
    use crate::store::sqlite::tests::lifecycle::{at, mobile, ok};

    sqlite_tests!(partner: an_otp_is_accepted_once_for_its_partner_and_purpose, fee_plans_remitters_and_beneficiaries);

    /// The bodies of the tests above, each run on a store of its own.
    mod cases {
        use super::*;

        pub(super) async fn an_otp_is_accepted_once_for_its_partner_and_purpose(
            store: &Arc<SqliteStore>,
            p: RegistrationId,
        ) {
            let issued =
                OtpRecord::issue(p, OtpPurpose::Transfer, "subj".into(), "tok1".into(), "123456".into(), at(0));
            ok(store.insert_otp(issued.record).await);
            let check = |partner, purpose, code: &'static str| store.check_otp(partner, "tok1", purpose, code, at(10));
            assert_eq!(ok(check(p, OtpPurpose::Registration, "123456").await), OtpCheck::Unknown);
            assert_eq!(ok(check(RegistrationId::new(1), OtpPurpose::Transfer, "123456").await), OtpCheck::Unknown);
            assert_eq!(ok(check(p, OtpPurpose::Transfer, "000000").await), OtpCheck::Wrong(2));
            assert_eq!(ok(check(p, OtpPurpose::Transfer, "123456").await), OtpCheck::Accepted("subj".into()));
            assert_eq!(ok(check(p, OtpPurpose::Transfer, "123456").await), OtpCheck::Spent);
            let unknown = store.check_otp(p, "nope", OtpPurpose::Transfer, "123456", at(10)).await;
            assert_eq!(ok(unknown), OtpCheck::Unknown);
        }

        pub(super) async fn fee_plans_remitters_and_beneficiaries(store: &Arc<SqliteStore>, p: RegistrationId) {
            let plan = FeePlan::default_plan();
            assert_eq!(ok(store.insert_fee_plan(p, at(0), plan.clone(), at(0)).await).version, 1);
            assert_eq!(ok(store.insert_fee_plan(p, at(9), plan.clone(), at(1)).await).version, 2);
            let versions = ok(store.fee_plans(p).await);
            assert_eq!(
                versions.iter().map(|v| (v.version, v.effective_from)).collect::<Vec<_>>(),
                [(1, at(0)), (2, at(9))]
            );
            assert_eq!(versions[1].plan, plan);
            let ghost = store.insert_fee_plan(RegistrationId::new(5), at(0), plan, at(0)).await;
            assert!(matches!(ghost, Err(DebitError::UnknownPartner)));

            let remitter = Remitter {
                partner: p,
                mobile: mobile(),
                first_name: Some("A".into()),
                last_name: None,
                kyc_id: "K1".into(),
                created_at: at(1),
                upstream_id: Some("9876543210".into()),
            };
            assert!(ok(store.insert_remitter(remitter.clone()).await));
            assert!(!ok(store.insert_remitter(remitter.clone()).await));
            assert_eq!(ok(store.find_remitter(p, &mobile()).await), Some(remitter));
            let b = Beneficiary {
                id: 0,
                partner: p,
                remitter: mobile(),
                name: "B".into(),
                account: ok(AccountNumber::parse("123456789")),
                ifsc: ok(Ifsc::parse("SBIN0001234")),
                bank_name: None,
                created_at: at(2),
                bank_id: Some(101),
                details: crate::domain::remitter_details::RemitterDetails {
                    dob: crate::domain::remitter_details::BirthDate::from_stored("1990-03-02").ok(),
                    address: Some("New delhi".into()),
                    pincode: crate::domain::remitter_details::Pincode::parse("560001").ok(),
                    gst_state: crate::domain::remitter_details::GstState::parse("07").ok(),
                },
                claimed_verified: true,
                verified_name: None,
                upstream_id: Some("4471".into()),
            };
            let first = ok(ok(store.insert_beneficiary(b.clone()).await));
            let same_bank = Beneficiary { ifsc: ok(Ifsc::parse("SBIN0009999")), ..b.clone() };
            assert_eq!(ok(store.insert_beneficiary(same_bank).await), Err(first.id));
            let other = Beneficiary { account: ok(AccountNumber::parse("987654321")), ..b };
            let second = ok(ok(store.insert_beneficiary(Beneficiary { upstream_id: None, ..other }).await));
            assert!(first.id > 0 && second.id > first.id);
            assert!(ok(store.set_beneficiary_upstream_id(p, second.id, "4472").await));
            assert!(!ok(store.set_beneficiary_upstream_id(p, second.id, "9999").await), "an id is kept once");
            let second = Beneficiary { upstream_id: Some("4472".into()), ..second };
            assert_eq!(ok(store.find_beneficiary(p, second.id).await), Some(second.clone()));
            assert_eq!(ok(store.find_beneficiary(p, first.id).await), Some(first.clone()));
            assert!(ok(store.delete_beneficiary(p, &mobile(), first.id, at(50)).await));
            assert!(!ok(store.delete_beneficiary(p, &mobile(), first.id, at(50)).await));
            assert_eq!(ok(store.find_beneficiary(p, first.id).await), None);
            assert_eq!(ok(store.beneficiaries(p, &mobile()).await), [second]);
        }
    }
}
