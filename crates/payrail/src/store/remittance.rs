//! Remittance: remitters, their monthly usage, beneficiaries, OTPs and the per-mobile text limits.

use super::*;

/// Remittance: remitters, their monthly usage, beneficiaries, OTPs and the per-mobile text limits.
#[async_trait]
pub trait RemittanceStore: Send + Sync + 'static {
    /// The partner's remitter with this mobile.
    async fn find_remitter(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
    ) -> Result<Option<Remitter>, StoreError>;
    /// Registers a remitter; `false` (and nothing written) if the partner has one with this mobile.
    async fn insert_remitter(&self, remitter: Remitter) -> Result<bool, StoreError>;
    /// What the remitter sent through each pipe (index 0 = bank 1) in
    /// transfers made at or after `since` that are not refunded.
    async fn remitter_usage(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
        since: Timestamp,
    ) -> Result<[Paise; 3], StoreError>;
    /// Adds a beneficiary (its `id` is ignored) and returns it with its new
    /// id; `Err(id)` of the remitter's beneficiary (not deleted) with the
    /// same account number at the same bank (the IFSC's first four letters),
    /// and nothing written. Concurrent calls for one remitter are serialised.
    async fn insert_beneficiary(&self, beneficiary: Beneficiary) -> Result<Result<Beneficiary, i64>, StoreError>;
    /// The remitter's beneficiaries that are not deleted, by id.
    async fn beneficiaries(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
    ) -> Result<Vec<Beneficiary>, StoreError>;
    /// The partner's beneficiary with this id, if not deleted.
    async fn find_beneficiary(&self, partner: RegistrationId, id: i64) -> Result<Option<Beneficiary>, StoreError>;
    /// Deletes (marks deleted) the remitter's beneficiary; `false` if there was none.
    async fn delete_beneficiary(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
        id: i64,
    ) -> Result<bool, StoreError>;
    /// Stores a new OTP.
    async fn insert_otp(&self, otp: OtpRecord) -> Result<(), StoreError>;
    /// Counts an OTP text to `mobile` at `now` if `limits` allow it, given
    /// the texts counted for it in the last day by any partner; otherwise
    /// `Err` of when one may go, and nothing written. Check and count are one
    /// step per mobile, across connections and instances, so concurrent
    /// requests cannot all pass the check.
    async fn count_text(
        &self,
        mobile: &MobileNumber,
        now: Timestamp,
        limits: TextLimits,
    ) -> Result<Result<(), Timestamp>, StoreError>;
    /// Presents `code` for the partner's OTP `token` of this purpose, with
    /// [`OtpRecord::check`], and saves what it changed (attempts, used) in
    /// the same transaction, so that a code can be accepted only once.
    async fn check_otp(
        &self,
        partner: RegistrationId,
        token: &str,
        purpose: OtpPurpose,
        code: &str,
        now: Timestamp,
    ) -> Result<OtpCheck, StoreError>;
}
