//! Remittance on SQLite: remitters, their monthly usage, beneficiaries, OTPs
//! and the per-mobile text limits. The SQL both engines run is in
//! [`crate::store::remittance::sql`]; what only SQLite runs is here.

use super::*;
use crate::domain::remitter::PerBank;
use crate::store::remittance::{beneficiary_columns, otp_columns, remitter_columns, sql, stale_otps_before};

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
            conn.prepare_cached(sql::FIND_REMITTER)?
                .query_row(params![partner.number(), mobile.as_str()], |row| remitter_from_row(partner, row))
                .optional()
        })
    }

    async fn insert_remitter(&self, remitter: Remitter) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let r = &remitter;
            let params = params![
                r.partner.number(),
                r.mobile.as_str(),
                r.first_name,
                r.last_name,
                r.kyc_id,
                r.created_at.unix()
            ];
            conn.prepare_cached(sql::INSERT_REMITTER)
                .and_then(|mut s| s.execute(params))
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
                .and_then(|mut s| {
                    let params = params![
                        b.partner.number(),
                        b.remitter.as_str(),
                        b.name,
                        b.account.as_str(),
                        b.ifsc.as_str(),
                        b.bank_name,
                        b.created_at.unix()
                    ];
                    s.query_row(params, |r| r.get(0))
                })
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
            all_rows(conn, sql::BENEFICIARIES, params![partner.number(), mobile.as_str()], beneficiary_from_row)
        })
    }

    async fn find_beneficiary(&self, partner: RegistrationId, id: i64) -> Result<Option<Beneficiary>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(sql::FIND_BENEFICIARY)?
                .query_row(params![partner.number(), id], beneficiary_from_row)
                .optional()
        })
    }

    async fn delete_beneficiary(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
        id: i64,
    ) -> Result<bool, StoreError> {
        let mobile = mobile.as_str().to_owned();
        self.write(move |conn| {
            conn.prepare_cached(sql::DELETE_BENEFICIARY)
                .and_then(|mut s| s.execute(params![Timestamp::now().unix(), partner.number(), mobile, id]))
                .map(|n| n == 1)
                .map_err(store_error)
        })
        .await
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

/// A remitter of `partner` from [`remitter_columns`].
fn remitter_from_row(partner: RegistrationId, row: &Row<'_>) -> rusqlite::Result<Remitter> {
    use remitter_columns as c;
    let mobile: String = row.get(c::MOBILE)?;
    Ok(Remitter {
        partner,
        mobile: MobileNumber::parse(&mobile).map_err(|e| conversion_error(c::MOBILE, e))?,
        first_name: row.get(c::FIRST_NAME)?,
        last_name: row.get(c::LAST_NAME)?,
        kyc_id: row.get(c::KYC_ID)?,
        created_at: Timestamp::from_unix(row.get(c::CREATED_AT)?),
    })
}

/// A beneficiary from [`beneficiary_columns`].
fn beneficiary_from_row(row: &Row<'_>) -> rusqlite::Result<Beneficiary> {
    use beneficiary_columns as c;
    let mobile: String = row.get(c::REMITTER_MOBILE)?;
    let account: String = row.get(c::ACCOUNT)?;
    let ifsc: String = row.get(c::IFSC)?;
    Ok(Beneficiary {
        id: row.get(c::ID)?,
        partner: RegistrationId::new(row.get(c::PARTNER_ID)?),
        remitter: MobileNumber::parse(&mobile).map_err(|e| conversion_error(c::REMITTER_MOBILE, e))?,
        name: row.get(c::NAME)?,
        account: AccountNumber::parse(&account).map_err(|e| conversion_error(c::ACCOUNT, e))?,
        ifsc: Ifsc::parse(&ifsc).map_err(|e| conversion_error(c::IFSC, e))?,
        bank_name: row.get(c::BANK_NAME)?,
        created_at: Timestamp::from_unix(row.get(c::CREATED_AT)?),
    })
}

/// The partner's OTP `token` for `purpose`, from [`otp_columns`].
fn otp_from_row(
    row: &Row<'_>,
    partner: RegistrationId,
    token: &str,
    purpose: OtpPurpose,
) -> rusqlite::Result<OtpRecord> {
    use otp_columns as c;
    Ok(OtpRecord {
        token: token.to_owned(),
        partner,
        purpose,
        subject: row.get(c::SUBJECT)?,
        code_hash: row.get(c::CODE_HASH)?,
        expires_at: Timestamp::from_unix(row.get(c::EXPIRES_AT)?),
        attempts: row.get(c::ATTEMPTS)?,
        used: row.get(c::USED)?,
    })
}
