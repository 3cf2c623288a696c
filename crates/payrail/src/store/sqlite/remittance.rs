//! Remittance: remitters, their monthly usage, beneficiaries, OTPs and the per-mobile text limits.

use super::*;

#[async_trait]
impl RemittanceStore for SqliteStore {
    async fn find_remitter(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
    ) -> Result<Option<Remitter>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT first_name, last_name, kyc_id, created_at FROM remitters WHERE partner_id = ?1 AND mobile = ?2",
            )?
            .query_row(params![partner.number(), mobile.as_str()], |r| {
                Ok(Remitter {
                    partner,
                    mobile: mobile.clone(),
                    first_name: r.get(0)?,
                    last_name: r.get(1)?,
                    kyc_id: r.get(2)?,
                    created_at: Timestamp::from_unix(r.get(3)?),
                })
            })
            .optional()
        })
    }

    async fn insert_remitter(&self, remitter: Remitter) -> Result<bool, StoreError> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO remitters (partner_id, mobile, first_name, last_name, kyc_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    remitter.partner.number(),
                    remitter.mobile.as_str(),
                    remitter.first_name,
                    remitter.last_name,
                    remitter.kyc_id,
                    remitter.created_at.unix()
                ])
            })
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
    ) -> Result<[Paise; 3], StoreError> {
        self.read(|conn| {
            let mut usage = [Paise::ZERO; 3];
            for (slot, bank) in usage.iter_mut().zip(Bank::ALL) {
                *slot = Paise::new(routed_since(conn, partner, mobile, bank, since)?);
            }
            Ok(usage)
        })
    }

    async fn insert_beneficiary(&self, beneficiary: Beneficiary) -> Result<Result<Beneficiary, i64>, StoreError> {
        self.write(move |conn| {
            let b = &beneficiary;
            let tx = immediate(conn)?;
            let bank = b.ifsc.as_str().get(..4).unwrap_or_default();
            let existing = tx
                .prepare_cached(SAME_ACCOUNT)
                .and_then(|mut s| {
                    s.query_row(params![b.partner.number(), b.remitter.as_str(), b.account.as_str(), bank], |r| {
                        r.get::<_, i64>(0)
                    })
                    .optional()
                })
                .map_err(store_error)?;
            if let Some(id) = existing {
                return Ok(Err(id));
            }
            tx.prepare_cached(
                "INSERT INTO beneficiaries (partner_id, remitter_mobile, name, account, ifsc, bank_name, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    b.partner.number(),
                    b.remitter.as_str(),
                    b.name,
                    b.account.as_str(),
                    b.ifsc.as_str(),
                    b.bank_name,
                    b.created_at.unix()
                ])
            })
            .map_err(store_error)?;
            let id = tx.last_insert_rowid();
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
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {BENEFICIARY_COLUMNS} FROM beneficiaries \
                 WHERE partner_id = ?1 AND remitter_mobile = ?2 AND deleted_at IS NULL ORDER BY id"
            ))?;
            let rows = stmt.query_map(params![partner.number(), mobile.as_str()], beneficiary_from_row)?;
            rows.collect()
        })
    }

    async fn find_beneficiary(&self, partner: RegistrationId, id: i64) -> Result<Option<Beneficiary>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {BENEFICIARY_COLUMNS} FROM beneficiaries \
                 WHERE id = ?1 AND partner_id = ?2 AND deleted_at IS NULL"
            ))?
            .query_row(params![id, partner.number()], beneficiary_from_row)
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
            conn.prepare_cached(
                "UPDATE beneficiaries SET deleted_at = ?1 \
                 WHERE id = ?2 AND partner_id = ?3 AND remitter_mobile = ?4 AND deleted_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![Timestamp::now().unix(), id, partner.number(), mobile]))
            .map(|n| n == 1)
            .map_err(store_error)
        })
        .await
    }

    async fn insert_otp(&self, otp: OtpRecord) -> Result<(), StoreError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            // Housekeeping: OTPs that expired a day before this one was issued.
            let stale_before = otp.expires_at.unix() - OTP_LIFETIME_SECS - 86_400;
            tx.prepare_cached("DELETE FROM otps WHERE expires_at < ?1")
                .and_then(|mut s| s.execute([stale_before]))
                .map_err(store_error)?;
            tx.prepare_cached(
                "INSERT INTO otps (token, partner_id, purpose, subject, code_hash, expires_at, attempts, used) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
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
            let sent = tx
                .prepare_cached("SELECT sent_at FROM otp_texts WHERE mobile = ?1 AND sent_at > ?2")
                .and_then(|mut s| s.query_map(params![mobile, since], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>())
                .map_err(store_error)?;
            if let Some(at) = limits.next_allowed(&sent, now.unix()) {
                return Ok(Err(at));
            }
            tx.prepare_cached("DELETE FROM otp_texts WHERE sent_at <= ?1")
                .and_then(|mut s| s.execute([since]))
                .map_err(store_error)?;
            tx.prepare_cached("INSERT INTO otp_texts (mobile, sent_at) VALUES (?1, ?2)")
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
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let Some(mut record) = load_otp(&tx, partner, &token, purpose).map_err(store_error)? else {
                return Ok(OtpCheck::Unknown);
            };
            let outcome = record.check(&code, now);
            tx.prepare_cached("UPDATE otps SET attempts = ?1, used = ?2 WHERE token = ?3")
                .and_then(|mut s| s.execute(params![record.attempts, record.used, token]))
                .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(outcome)
        })
        .await
    }
}
