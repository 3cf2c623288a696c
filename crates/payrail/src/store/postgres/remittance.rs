//! Remittance: remitters, their monthly usage, beneficiaries, OTPs and the per-mobile text limits.

use super::*;

#[async_trait]
impl RemittanceStore for PostgresStore {
    async fn find_remitter(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
    ) -> Result<Option<Remitter>, StoreError> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 2] = [&partner.number(), &mobile.as_str()];
        let row = query_opt(&client, FIND_REMITTER, &params, "Failed to find the remitter").await?;
        let remitter = row.map(|row| remitter_from_row(partner, &row)).transpose();
        Ok(remitter.context("Failed to read the remitter")?)
    }

    async fn insert_remitter(&self, remitter: Remitter) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 6] = [
            &remitter.partner.number(),
            &remitter.mobile.as_str(),
            &remitter.first_name,
            &remitter.last_name,
            &remitter.kyc_id,
            &remitter.created_at.unix(),
        ];
        Ok(execute(&client, INSERT_REMITTER, &params, "Failed to add the remitter").await? == 1)
    }

    async fn remitter_usage(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
        since: Timestamp,
    ) -> Result<[Paise; 3], StoreError> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 3] = [&partner.number(), &mobile.as_str(), &since.unix()];
        let rows = query(&client, REMITTER_USAGE, &params, "Failed to sum the remitter's transfers").await?;
        let mut usage = [Paise::ZERO; 3];
        for row in rows {
            let (bank, sum): (i64, i64) = pair(&row).store_context("Failed to read the remitter's usage")?;
            let slot = Bank::from_number(bank).and_then(|bank| usage.get_mut(bank as usize - 1));
            let slot = slot.ok_or_else(|| anyhow::Error::new(BadState(bank.to_string())).context("Unknown bank"))?;
            *slot = Paise::new(sum);
        }
        Ok(usage)
    }

    async fn insert_beneficiary(&self, beneficiary: Beneficiary) -> Result<Result<Beneficiary, i64>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin adding the beneficiary")?;
        let b = &beneficiary;
        let (partner, mobile) = (b.partner.number(), b.remitter.as_str());
        // The remitter's row serialises concurrent adds, so two cannot both pass the check.
        query_opt(&tx, LOCK_REMITTER, &[&partner, &mobile], "Failed to lock the remitter").await?;
        let bank = b.ifsc.as_str().get(..4).unwrap_or_default();
        let same = [&partner as &(dyn ToSql + Sync), &mobile, &b.account.as_str(), &bank];
        if let Some(row) = query_opt(&tx, SAME_ACCOUNT, &same, "Failed to look for the account").await? {
            return Ok(Err(row.try_get(0).store_context("Failed to read the beneficiary id")?));
        }
        let params: [&(dyn ToSql + Sync); 7] =
            [&partner, &mobile, &b.name, &b.account.as_str(), &b.ifsc.as_str(), &b.bank_name, &b.created_at.unix()];
        let row = query_one(&tx, INSERT_BENEFICIARY, &params, "Failed to add the beneficiary").await?;
        let id = row.try_get(0).store_context("Failed to read the new beneficiary id")?;
        tx.commit().await.store_context("Failed to commit the beneficiary")?;
        Ok(Ok(Beneficiary { id, ..beneficiary }))
    }

    async fn beneficiaries(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
    ) -> Result<Vec<Beneficiary>, StoreError> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 2] = [&partner.number(), &mobile.as_str()];
        let rows = query(&client, BENEFICIARIES, &params, "Failed to list the beneficiaries").await?;
        let beneficiaries = rows.iter().map(beneficiary_from_row).collect::<anyhow::Result<_>>();
        Ok(beneficiaries.context("Failed to read a beneficiary")?)
    }

    async fn find_beneficiary(&self, partner: RegistrationId, id: i64) -> Result<Option<Beneficiary>, StoreError> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 2] = [&partner.number(), &id];
        let row = query_opt(&client, FIND_BENEFICIARY, &params, "Failed to find the beneficiary").await?;
        decode(row, beneficiary_from_row)
    }

    async fn delete_beneficiary(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
        id: i64,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 4] = [&partner.number(), &mobile.as_str(), &id, &Timestamp::now().unix()];
        Ok(execute(&client, DELETE_BENEFICIARY, &params, "Failed to delete the beneficiary").await? == 1)
    }

    async fn insert_otp(&self, otp: OtpRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stale = otp.expires_at.unix() - OTP_KEEP_SECS;
        execute(&client, FORGET_OTPS, &[&stale], "Failed to forget old OTPs").await?;
        let params: [&(dyn ToSql + Sync); 8] = [
            &otp.token,
            &otp.partner.number(),
            &otp.purpose.as_str(),
            &otp.subject,
            &otp.code_hash,
            &otp.expires_at.unix(),
            &otp.attempts,
            &otp.used,
        ];
        execute(&client, INSERT_OTP, &params, "Failed to store the OTP").await?;
        Ok(())
    }

    async fn count_text(
        &self,
        mobile: &MobileNumber,
        now: Timestamp,
        limits: TextLimits,
    ) -> Result<Result<(), Timestamp>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin counting the text")?;
        let (mobile, since) = (mobile.as_str(), now.unix() - TEXT_DAY_SECS);
        // Held to commit: the next request for this mobile sees this one's count.
        execute(&tx, LOCK_TEXTS, &[&TEXT_LOCK_CLASS, &mobile], "Failed to lock the mobile's texts").await?;
        let rows = tx.query(RECENT_TEXTS, &[&mobile, &since]).await.store_context("Failed to read the texts")?;
        let sent = rows.iter().map(|r| r.try_get(0)).collect::<Result<Vec<i64>, _>>();
        let sent = sent.store_context("Failed to read a text's time")?;
        if let Some(at) = limits.next_allowed(&sent, now.unix()) {
            return Ok(Err(at));
        }
        execute(&tx, FORGET_TEXTS, &[&since], "Failed to forget old texts").await?;
        execute(&tx, COUNT_TEXT, &[&mobile, &now.unix()], "Failed to count the text").await?;
        tx.commit().await.store_context("Failed to commit the text count")?;
        Ok(Ok(()))
    }

    async fn check_otp(
        &self,
        partner: RegistrationId,
        token: &str,
        purpose: OtpPurpose,
        code: &str,
        now: Timestamp,
    ) -> Result<OtpCheck, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the OTP check")?;
        let params: [&(dyn ToSql + Sync); 3] = [&token, &partner.number(), &purpose.as_str()];
        let Some(row) = query_opt(&tx, LOCK_OTP, &params, "Failed to find the OTP").await? else {
            return Ok(OtpCheck::Unknown);
        };
        let mut otp = otp_from_row(&row, partner, token, purpose).context("Failed to read the OTP")?;
        let outcome = otp.check(code, now);
        let params: [&(dyn ToSql + Sync); 3] = [&token, &otp.attempts, &otp.used];
        execute(&tx, SAVE_OTP, &params, "Failed to save the OTP").await?;
        tx.commit().await.store_context("Failed to commit the OTP check")?;
        Ok(outcome)
    }
}
