//! Remittance on PostgreSQL: remitters, their monthly usage, beneficiaries,
//! OTPs and the per-mobile text limits. The SQL both engines run is in
//! [`crate::store::remittance::sql`]; what only PostgreSQL runs (its row and
//! advisory locks: SQLite's one writer needs none) is here.

use super::columns::bind_all;
use super::*;
use crate::domain::remitter::PerBank;
use crate::store::remittance::{
    beneficiary_from_row, beneficiary_values, otp_from_row, otp_list, remitter_from_row, remitter_values, sql,
    stale_otps_before,
};
use crate::store::remittance::{Count, CountResult, MobileCounts, PerMobile};

/// Locks the remitter's row, which serialises concurrent beneficiary adds.
const LOCK_REMITTER: &str = "SELECT 1 FROM remitters WHERE partner_id = $1 AND mobile = $2 FOR UPDATE";
/// [`sql::FIND_OTP`], locking the row until the check is saved.
const LOCK_OTP: &str =
    concat!("SELECT ", otp_list!(), " FROM otps WHERE token = $1 AND partner_id = $2 AND purpose = $3 FOR UPDATE");

/// Serialises the events of `$1`'s class for mobile `$2` until the transaction ends.
const LOCK_MOBILE: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2))";

#[async_trait]
impl RemittanceStore for PostgresStore {
    async fn find_remitter(&self, partner: RegistrationId, mobile: &MobileNumber) -> StoreResult<Option<Remitter>> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 2] = [&partner.number(), &mobile.as_str()];
        let row = query_opt(&client, sql::FIND_REMITTER, &params, "Failed to find the remitter").await?;
        let remitter = row.map(|row| remitter_from_row(partner, &row)).transpose();
        Ok(remitter.context("Failed to read the remitter")?)
    }

    async fn insert_remitter(&self, remitter: Remitter) -> StoreResult<bool> {
        let client = self.client().await?;
        let values = remitter_values(&remitter);
        Ok(execute(&client, sql::INSERT_REMITTER, &bind_all(&values), "Failed to add the remitter").await? == 1)
    }

    async fn remitter_usage(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
        since: Timestamp,
    ) -> StoreResult<PerBank> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 3] = [&partner.number(), &mobile.as_str(), &since.unix()];
        let rows = query(&client, sql::REMITTER_USAGE, &params, "Failed to sum the remitter's transfers").await?;
        let mut usage = PerBank::default();
        for row in rows {
            let (bank, sum): (i64, i64) = pair(&row).store_context("Failed to read the remitter's usage")?;
            let bank = Bank::from_number(bank)
                .ok_or_else(|| anyhow::Error::new(BadState(bank.to_string())).context("Unknown bank"))?;
            *usage.get_mut(bank) = Paise::new(sum);
        }
        Ok(usage)
    }

    async fn insert_beneficiary(&self, beneficiary: Beneficiary) -> StoreResult<Result<Beneficiary, i64>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin adding the beneficiary")?;
        let b = &beneficiary;
        let (partner, mobile) = (b.partner.number(), b.remitter.as_str());
        // The remitter's row serialises concurrent adds, so two cannot both pass the check.
        query_opt(&tx, LOCK_REMITTER, &[&partner, &mobile], "Failed to lock the remitter").await?;
        let bank = b.ifsc.as_str().get(..4).unwrap_or_default();
        let same = [&partner as &(dyn ToSql + Sync), &mobile, &b.account.as_str(), &bank];
        if let Some(row) = query_opt(&tx, sql::SAME_ACCOUNT, &same, "Failed to look for the account").await? {
            return Ok(Err(row.try_get(0).store_context("Failed to read the beneficiary id")?));
        }
        let values = beneficiary_values(b);
        let row = query_one(&tx, sql::INSERT_BENEFICIARY, &bind_all(&values), "Failed to add the beneficiary").await?;
        let id = row.try_get(0).store_context("Failed to read the new beneficiary id")?;
        tx.commit().await.store_context("Failed to commit the beneficiary")?;
        Ok(Ok(Beneficiary { id, ..beneficiary }))
    }

    async fn beneficiaries(&self, partner: RegistrationId, mobile: &MobileNumber) -> StoreResult<Vec<Beneficiary>> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 2] = [&partner.number(), &mobile.as_str()];
        let rows = query(&client, sql::BENEFICIARIES, &params, "Failed to list the beneficiaries").await?;
        decode_all(&rows, beneficiary_from_row, "Failed to read a beneficiary")
    }

    async fn find_beneficiary(&self, partner: RegistrationId, id: i64) -> StoreResult<Option<Beneficiary>> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 2] = [&partner.number(), &id];
        let row = query_opt(&client, sql::FIND_BENEFICIARY, &params, "Failed to find the beneficiary").await?;
        decode(row, beneficiary_from_row)
    }

    async fn set_beneficiary_upstream_id(&self, beneficiary: &Beneficiary, upstream_id: &str) -> StoreResult<bool> {
        let (partner, id) = (beneficiary.partner, beneficiary.id);
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 3] = [&upstream_id, &partner.number(), &id];
        let done =
            execute(&client, sql::SET_BENEFICIARY_UPSTREAM_ID, &params, "Failed to keep the upstream id").await?;
        Ok(done == 1)
    }

    async fn delete_beneficiary(&self, deletion: BeneficiaryDeletion<'_>) -> StoreResult<bool> {
        let BeneficiaryDeletion { partner, mobile, id, at } = deletion;
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 4] = [&at.unix(), &partner.number(), &mobile.as_str(), &id];
        Ok(execute(&client, sql::DELETE_BENEFICIARY, &params, "Failed to delete the beneficiary").await? == 1)
    }

    async fn latest_otp_token(
        &self,
        partner: RegistrationId,
        purpose: OtpPurpose,
        subject: &str,
    ) -> StoreResult<Option<String>> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 3] = [&partner.number(), &purpose.as_str(), &subject];
        let row = query_opt(&client, sql::LATEST_OTP, &params, "Failed to find the OTP").await?;
        decode(row, |row| Ok(row.try_get(0)?))
    }

    async fn insert_otp(&self, otp: OtpRecord) -> StoreResult<()> {
        let client = self.client().await?;
        let stale = stale_otps_before(otp.expires_at);
        execute(&client, sql::FORGET_OTPS, &[&stale], "Failed to forget old OTPs").await?;
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
        execute(&client, sql::INSERT_OTP, &params, "Failed to store the OTP").await?;
        Ok(())
    }

    async fn check_otp(&self, presented: OtpAttempt<'_>) -> StoreResult<OtpCheck> {
        let OtpAttempt { partner, token, purpose, code, now } = presented;
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the OTP check")?;
        let params: [&(dyn ToSql + Sync); 3] = [&token, &partner.number(), &purpose.as_str()];
        let Some(row) = query_opt(&tx, LOCK_OTP, &params, "Failed to find the OTP").await? else {
            return Ok(OtpCheck::Unknown);
        };
        let mut otp = otp_from_row(&row, partner, token, purpose).context("Failed to read the OTP")?;
        let outcome = otp.check(code, now);
        let params: [&(dyn ToSql + Sync); 3] = [&otp.attempts, &otp.used, &token];
        execute(&tx, sql::SAVE_OTP, &params, "Failed to save the OTP").await?;
        tx.commit().await.store_context("Failed to commit the OTP check")?;
        Ok(outcome)
    }
}

#[async_trait]
impl MobileCounts for PostgresStore {
    // The mobile's advisory lock is held to the commit: the next count of the mobile sees this one.
    async fn count_per_mobile(&self, events: &'static PerMobile, count: Count) -> CountResult {
        let Count { mobile, at, since, allowed } = count;
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin a per-mobile count")?;
        execute(&tx, LOCK_MOBILE, &[&events.lock_class, &mobile], "Failed to lock the mobile's count").await?;
        let rows = query(&tx, events.recent, &[&mobile, &since], "Failed to read the mobile's count").await?;
        let made: Vec<i64> = decode_all(&rows, |r| Ok(r.try_get(0)?), "Failed to read a counted event's time")?;
        if let Some(until) = allowed(&made) {
            return Ok(Err(until));
        }
        execute(&tx, events.sweep, &[&since], "Failed to forget the events out of the window").await?;
        execute(&tx, events.count, &[&mobile, &at.unix()], "Failed to count the event").await?;
        tx.commit().await.store_context("Failed to commit the per-mobile count")?;
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::postgres::test_db::postgres_tests;
    use crate::store::PartnerStore as _;

    postgres_tests!(partner: an_otp_is_accepted_once, fee_plans_remitters_and_beneficiaries_round_trip);

    /// The tests above run the bodies both engines share.
    mod cases {
        use super::super::*;
        use crate::store::postgres::tests::partner;
        use crate::store::remittance::conformance;

        pub(super) async fn an_otp_is_accepted_once(store: &PostgresStore) -> anyhow::Result<()> {
            conformance::an_otp_is_accepted_once(store, partner()).await
        }

        pub(super) async fn fee_plans_remitters_and_beneficiaries_round_trip(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            conformance::fee_plans_remitters_and_beneficiaries(store, partner()).await
        }
    }
}
