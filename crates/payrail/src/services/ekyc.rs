//! A new remitter's e-KYC (`RemitterEKyc`): two attempts a day per mobile,
//! the upstream asked through the provider, then a KYC record and the
//! registration OTP, both under one fresh `stateresp`, which is also the
//! `KycId` that [`super::remittance::register_remitter`] takes.
//!
//! The fingerprint data goes to the provider and nowhere else: it is not
//! stored, and its type never prints it.

use super::notifier::Texts;
use super::remittance::{new_stateresp, send_otp_as, DmtError, OtpRequest, REGISTRATION_OTP};
use super::upstream::provider::{EkycOutcome, EkycRequest, Provider};
use crate::domain::ekyc::KycRecord;
use crate::domain::otp::OtpPurpose;
use crate::domain::{Clock, RegistrationId};
use crate::store::Store;

/// `RemitterEKyc`: refuses a registered mobile and one out of attempts
/// (nothing sent upstream), counts the attempt, asks the provider, and on
/// success stores the KYC record and sends the registration OTP. Returns
/// the `stateresp`, which is also the `KycId`.
pub async fn remitter_ekyc(
    store: &dyn Store,
    clock: &dyn Clock,
    texts: Texts<'_>,
    provider: &dyn Provider,
    partner: RegistrationId,
    request: EkycRequest,
) -> Result<String, DmtError> {
    let mobile = &request.mobile;
    if store.find_remitter(partner, mobile).await?.is_some() {
        return Err(DmtError::AlreadyRegistered);
    }
    let now = clock.now();
    if let Err(until) = store.count_ekyc_attempt(mobile, now).await? {
        return Err(DmtError::TooManyEkyc { retry_at: until.to_ist_string(), wait_secs: until.unix() - now.unix() });
    }
    let upstream_id = match provider.remitter_ekyc(&request).await {
        Ok(EkycOutcome::Verified { upstream_id }) => upstream_id,
        Ok(EkycOutcome::Refused { reason }) => return Err(DmtError::EkycRefused(reason)),
        Err(e) => return Err(DmtError::EkycUnavailable(e)),
    };
    let stateresp = new_stateresp();
    let record = KycRecord {
        kyc_id: stateresp.clone(),
        partner,
        mobile: mobile.clone(),
        upstream_id,
        created_at: clock.now(),
        used: false,
    };
    store.insert_kyc(record).await?;
    let subject = mobile.as_str().to_owned();
    let otp = OtpRequest { purpose: OtpPurpose::Registration, subject, to: mobile, what: REGISTRATION_OTP };
    send_otp_as(store, clock, texts, partner, otp, stateresp.clone()).await?;
    Ok(stateresp)
}
