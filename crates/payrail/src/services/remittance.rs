//! DMT V1: remitters, beneficiaries, OTP-confirmed transfers paid from the
//! partner's wallet, and refunds of failed transfers.
//!
//! A transfer goes: OTP for exactly (remitter, beneficiary, amount, mode) →
//! checks (per-transfer limit, reference unused, OTP) → one store transaction
//! that debits the wallet, checks the monthly limit and records the transfer
//! with its journal and history → the provider. A refund credits the wallet
//! in the same store transaction that marks the transfer refunded.

mod refunds;

use rand::Rng as _;

use super::fees;
use super::notifier::Texts;
use super::upstream::provider::{
    BeneficiarySignup, Enrolment, Provider, ProviderError, RemitterSignup, RemitterStatus, TransferOrder,
};
use super::upstream::sync::Upstream;
use crate::domain::banks::find_bank;
use crate::domain::ekyc::{KycRefusal, KYC_LIFETIME_SECS};
use crate::domain::otp::{stateresp_from, OtpCheck, OtpPurpose, OtpRecord};
use crate::domain::remitter::{
    AccountNumber, Bank, Beneficiary, DmtRoute, Ifsc, MobileNumber, MonthlyLimit, PerBank, Remitter, TransferMode,
    MIN_TRANSFER, PER_TRANSFER_LIMIT,
};
use crate::domain::remitter_details::RemitterDetails;
use crate::domain::{
    ChangeSource, Clock, DmtCharges, DmtStatus, DmtTransfer, Paise, ReferenceId, RegistrationId, Timestamp, TxnKind,
};
use crate::store::kyc::KycRegistration;
use crate::store::{BeneficiaryDeletion, ChangeNote, DebitError, Debited, DmtDebit, OtpAttempt};
use crate::store::{RemittanceStore, Store, StoreError, TransactionStore};

/// Why a DMT V1 request was refused. Nothing was written unless said.
#[derive(Debug, thiserror::Error)]
pub enum DmtError {
    /// The partner has no remitter with this mobile.
    #[error("Remitter not found")]
    RemitterNotFound,
    /// The remitter is registered already.
    #[error("Remitter already registered")]
    AlreadyRegistered,
    /// No such beneficiary for this remitter.
    #[error("Beneficiary not found")]
    BeneficiaryNotFound,
    /// The remitter has this account (same number, same bank) already.
    #[error("This account is already registered for this remitter as beneficiary {beneid}")]
    BeneficiaryExists {
        /// The beneficiary that has it.
        beneid: i64,
    },
    /// No such transfer for this partner.
    #[error("Transaction not found")]
    TransferNotFound,
    /// The OTP is wrong, expired, used up, or for something else.
    #[error("{0}")]
    Otp(String),
    /// The reference was used before.
    #[error("Duplicate referenceid: the partner already has transaction {ackno} with this reference")]
    Duplicate {
        /// The transfer that has it.
        ackno: i64,
    },
    /// The wallet cannot pay for it.
    #[error("Insufficient wallet balance: {balance} available, {needed} needed")]
    InsufficientFunds {
        /// What the wallet holds (rupees, two decimals).
        balance: String,
        /// What the transfer costs (rupees, two decimals).
        needed: String,
    },
    /// A limit refuses it; the message names the limit.
    #[error("{0}")]
    Limit(String),
    /// The transfer is not in a state that allows this.
    #[error("{0}")]
    State(String),
    /// The mobile had its share of OTP texts; nothing was sent.
    #[error("Too many OTPs sent to this mobile: try again after {retry_at} India time (in {wait_secs} seconds)")]
    TooManyTexts {
        /// When one may go again, India time.
        retry_at: String,
        /// Seconds until then.
        wait_secs: i64,
    },
    /// The OTP could not be sent.
    #[error("Unable to send the OTP, try again")]
    NotDelivered(#[source] super::notifier::NotifyError),
    /// The store could not be read or written; the answer is a 500, logged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The `KycId` does not allow this registration; nothing was written.
    #[error("KycId {0}")]
    Kyc(KycRefusal),
    /// The mobile had its e-KYC attempts; nothing was sent upstream.
    #[error("Too many e-KYC attempts for this mobile: try again after {retry_at} India time (in {wait_secs} seconds)")]
    TooManyEkyc {
        /// When it may try again, India time.
        retry_at: String,
        /// Seconds until then.
        wait_secs: i64,
    },
    /// UIDAI (through the upstream) refused the e-KYC; the attempt counts.
    #[error("e-KYC refused: {0}")]
    EkycRefused(String),
    /// The upstream refused payrail's credentials: nothing new is submitted
    /// (nor debited) until an operator closes the circuit.
    #[error(
        "Transfers are paused: the upstream is refusing payrail's credentials; nothing was debited, try again later"
    )]
    SubmissionsStopped,
    /// The upstream gave no answer about the e-KYC; the attempt counts.
    #[error("e-KYC could not be done: the upstream did not answer, try again later")]
    EkycUnavailable(#[source] super::upstream::provider::ProviderError),
    /// The upstream refused a registration or deletion, saying why; payrail
    /// wrote nothing.
    #[error("Refused by the upstream: {0}")]
    UpstreamRefused(String),
    /// The upstream did not answer a registration or deletion; payrail
    /// wrote nothing, and the call may be made again.
    #[error("The upstream did not answer, try again later")]
    UpstreamUnavailable(#[source] ProviderError),
    /// The upstream refused the refund (OTP request or claim); nothing was credited.
    #[error("The upstream refused the refund: {0}")]
    RefundRefused(String),
    /// The upstream did not answer about a refund; nothing was credited,
    /// and the request may be made again.
    #[error("The upstream did not answer; nothing was refunded, try again")]
    UpstreamUnanswered(#[source] super::upstream::provider::ProviderError),
}

/// What [`query_remitter`] found.
#[derive(Debug, Clone)]
pub enum RemitterQuery {
    /// Registered: the remitter and what is left of each pipe's monthly limit.
    Registered {
        /// The remitter.
        remitter: Remitter,
        /// What is left of each pipe's limit this month.
        remaining: PerBank,
    },
    /// Not registered: an OTP was sent; register with it and this token.
    OtpSent {
        /// The `stateresp` token.
        stateresp: String,
    },
}

/// A transfer as the partner describes it, for its OTP and for making it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferIntent {
    /// The remitter.
    pub mobile: MobileNumber,
    /// The beneficiary's id.
    pub beneficiary_id: i64,
    /// IMPS or NEFT.
    pub mode: TransferMode,
    /// Whole rupees.
    pub amount: Paise,
    /// The remitter's details sent with it (`Pincode`, `Address`, `DOB`);
    /// what is not sent is taken from the beneficiary's record.
    pub details: RemitterDetails,
    /// Where the remitter is, as sent (`Latitude`, `Longitute`).
    pub location: Option<(String, String)>,
}

impl TransferIntent {
    /// What an OTP for this transfer is bound to: the transfer, and the
    /// details and location sent with it, so that `Transaction` carries the
    /// ones the OTP was sent for.
    fn subject(&self) -> String {
        let base =
            format!("{}|{}|{}|{}", self.mobile.as_str(), self.beneficiary_id, self.amount.get(), self.mode.as_str());
        let d = &self.details;
        if d == &RemitterDetails::default() && self.location.is_none() {
            return base;
        }
        let (lat, long) = self.location.clone().unwrap_or_default();
        format!(
            "{base}|{}|{}|{}|{}|{lat}|{long}",
            d.pincode.as_ref().map_or("", |p| p.as_str()),
            d.dob.as_ref().map_or("", |p| p.as_iso()),
            d.gst_state.as_ref().map_or("", |p| p.as_str()),
            d.address.as_deref().unwrap_or(""),
        )
    }
}

/// A beneficiary as a partner submits it.
#[derive(Debug, Clone)]
pub struct NewBeneficiary {
    /// The remitter adding it.
    pub mobile: MobileNumber,
    /// The account holder.
    pub name: String,
    /// The account.
    pub account: AccountNumber,
    /// The branch.
    pub ifsc: Ifsc,
    /// The bank's name.
    pub bank_name: Option<String>,
    /// The bank in the bank list, settled with the IFSC.
    pub bank_id: Option<i64>,
    /// The remitter's details given with it.
    pub details: RemitterDetails,
    /// What the partner said of its verification (kept, not trusted).
    pub claimed_verified: bool,
}

/// A remitter as a partner registers it.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The mobile queried before.
    pub mobile: MobileNumber,
    /// The OTP sent to it.
    pub otp: String,
    /// The token from the query.
    pub stateresp: String,
    /// The KYC reference.
    pub kyc_id: String,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
}

/// An OTP as the remitter presented it, with the `Stateresp` it was sent under.
#[derive(Debug, Clone, Copy)]
pub struct PresentedOtp<'a> {
    /// The token the OTP was sent under.
    pub stateresp: &'a str,
    /// The digits the remitter received.
    pub code: &'a str,
}

/// What `Transaction` adds to the intent its OTP was sent for.
#[derive(Debug, Clone)]
pub struct Confirmation<'a> {
    /// The partner's reference, unique per partner.
    pub reference: ReferenceId,
    /// The OTP the remitter received.
    pub otp: PresentedOtp<'a>,
    /// The pipe the partner chose, if any.
    pub pipe: Option<Bank>,
}

/// What an OTP is sent for, and to whom.
pub(super) struct OtpRequest<'a> {
    pub(super) purpose: OtpPurpose,
    /// What the OTP may confirm, checked when it is presented.
    pub(super) subject: String,
    pub(super) to: &'a MobileNumber,
    /// What the text says the OTP is for.
    pub(super) what: &'a str,
}

/// What a registration OTP's text says it is for.
pub(super) const REGISTRATION_OTP: &str = "register for money transfer";

/// A history note for the partner's own call.
fn partner_note(clock: &dyn Clock) -> ChangeNote {
    ChangeNote { source: ChangeSource::Partner, reason: None, at: clock.now() }
}

/// Counts a text to the remitter against its limits, then makes, stores and
/// sends an OTP; returns its `stateresp`. Over the limit nothing is written or sent.
async fn send_otp(
    store: &dyn RemittanceStore,
    clock: &dyn Clock,
    texts: Texts<'_>,
    partner: RegistrationId,
    request: OtpRequest<'_>,
) -> Result<String, DmtError> {
    let token = new_stateresp();
    send_otp_as(store, clock, texts, partner, request, token.clone()).await?;
    Ok(token)
}

/// A fresh `stateresp` (a random UUID) from the thread's CSPRNG.
pub(super) fn new_stateresp() -> String {
    stateresp_from(rand::thread_rng().gen())
}

/// [`send_otp`] under a `stateresp` chosen by the caller.
pub(super) async fn send_otp_as(
    store: &dyn RemittanceStore,
    clock: &dyn Clock,
    texts: Texts<'_>,
    partner: RegistrationId,
    request: OtpRequest<'_>,
    token: String,
) -> Result<(), DmtError> {
    let OtpRequest { purpose, subject, to, what } = request;
    let now = clock.now();
    if let Err(at) = store.count_text(to, now, texts.limits).await? {
        texts.count("refused");
        return Err(DmtError::TooManyTexts { retry_at: at.to_ist_string(), wait_secs: at.unix() - now.unix() });
    }
    let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000u32));
    let issued = OtpRecord::issue(partner, purpose, subject, token, code, now);
    store.insert_otp(issued.record).await?;
    let message = format!("{} is your OTP to {what}. It is valid for 90 seconds. Do not share it.", issued.code);
    let sent = texts.notifier.send(to, &message).await;
    texts.count(if sent.is_ok() { "sent" } else { "not_delivered" });
    sent.map_err(DmtError::NotDelivered)
}

/// Presents an OTP; the subject it was issued for must be `expected`.
async fn use_otp(
    store: &dyn RemittanceStore,
    clock: &dyn Clock,
    partner: RegistrationId,
    purpose: OtpPurpose,
    otp: PresentedOtp<'_>,
    expected: &str,
) -> Result<(), DmtError> {
    let attempt = OtpAttempt { partner, token: otp.stateresp, purpose, code: otp.code, now: clock.now() };
    match store.check_otp(attempt).await? {
        OtpCheck::Accepted(subject) if subject == expected => Ok(()),
        OtpCheck::Accepted(_) => Err(DmtError::Otp("OTP was issued for a different request".into())),
        OtpCheck::Wrong(left) => Err(DmtError::Otp(format!("Invalid OTP, {left} attempts left"))),
        OtpCheck::Expired => Err(DmtError::Otp("OTP expired, request a new one".into())),
        OtpCheck::Spent => Err(DmtError::Otp("OTP already used or attempts exhausted, request a new one".into())),
        OtpCheck::Unknown => Err(DmtError::Otp("Invalid Stateresp".into())),
    }
}

/// `QueryRemitter`: the remitter and its remaining limits, or an OTP to register.
pub async fn query_remitter(
    store: &dyn Store,
    clock: &dyn Clock,
    texts: Texts<'_>,
    partner: RegistrationId,
    mobile: &MobileNumber,
) -> Result<RemitterQuery, DmtError> {
    let Some(remitter) = store.find_remitter(partner, mobile).await? else {
        let subject = mobile.as_str().to_owned();
        let request = OtpRequest { purpose: OtpPurpose::Registration, subject, to: mobile, what: REGISTRATION_OTP };
        let stateresp = send_otp(store, clock, texts, partner, request).await?;
        return Ok(RemitterQuery::OtpSent { stateresp });
    };
    let remaining = remaining_limits(store, clock, partner, mobile).await?;
    Ok(RemitterQuery::Registered { remitter, remaining })
}

async fn remaining_limits(
    store: &dyn RemittanceStore,
    clock: &dyn Clock,
    partner: RegistrationId,
    mobile: &MobileNumber,
) -> Result<PerBank, StoreError> {
    let limit = MonthlyLimit::for_month_of(clock.now());
    let used = store.remitter_usage(partner, mobile, limit.since).await?;
    Ok(used.left_of(limit.limit))
}

/// `RegisterRemitter`: registers the mobile with a registration OTP (from
/// [`super::ekyc::remitter_ekyc`] or [`query_remitter`]) and the `KycId` of
/// the partner's e-KYC of this mobile, made less than 30 minutes before and
/// used once. The KYC is checked first, so a reused one is named as such.
/// Returns the remitter and its (untouched) monthly limits.
pub async fn register_remitter(
    store: &dyn Store,
    clock: &dyn Clock,
    provider: &dyn Provider,
    partner: RegistrationId,
    registration: Registration,
) -> Result<(Remitter, PerBank), DmtError> {
    let mobile = &registration.mobile;
    let found = store.find_kyc(partner, &registration.kyc_id).await?;
    let now = clock.now();
    let kyc = found.ok_or(KycRefusal::Unknown).map_err(DmtError::Kyc)?;
    kyc.allows(partner, mobile, now).map_err(DmtError::Kyc)?;
    if store.find_remitter(partner, mobile).await?.is_some() {
        return Err(DmtError::AlreadyRegistered);
    }
    let (stateresp, otp) = (&registration.stateresp, &registration.otp);
    let otp = PresentedOtp { stateresp, code: otp };
    use_otp(store, clock, partner, OtpPurpose::Registration, otp, mobile.as_str()).await?;
    let signup = RemitterSignup {
        mobile: mobile.clone(),
        otp: registration.otp.clone(),
        stateresp: registration.stateresp.clone(),
        ekyc_id: kyc.upstream_id.clone(),
        first_name: registration.first_name.clone(),
        last_name: registration.last_name.clone(),
    };
    let upstream_id = register_upstream(provider, &signup).await?;
    let now = clock.now();
    let remitter = Remitter {
        partner,
        mobile: registration.mobile,
        first_name: registration.first_name,
        last_name: registration.last_name,
        kyc_id: registration.kyc_id,
        created_at: now,
        upstream_id,
    };
    let made_after = Timestamp::from_unix(now.unix() - KYC_LIFETIME_SECS);
    match store.register_with_kyc(remitter.clone(), made_after).await? {
        KycRegistration::Registered => {}
        // Used (or expired) between the check and now: a concurrent registration won.
        KycRegistration::KycUnusable => return Err(DmtError::Kyc(KycRefusal::Used)),
        KycRegistration::AlreadyRegistered => return Err(DmtError::AlreadyRegistered),
    }
    let remaining = remaining_limits(store, clock, partner, &remitter.mobile).await?;
    Ok((remitter, remaining))
}

/// Registers the remitter upstream; its id there. A refusal from an
/// upstream that already has the remitter (registered before a crash kept
/// payrail from storing it) is no refusal: the upstream is asked, and its
/// id kept.
async fn register_upstream(provider: &dyn Provider, signup: &RemitterSignup) -> Result<Option<String>, DmtError> {
    match provider.register_remitter(signup).await {
        Ok(Enrolment::Done(id)) => Ok(id),
        Ok(Enrolment::Refused(reason)) => match provider.query_remitter(&signup.mobile).await {
            Ok(RemitterStatus::Registered { upstream_id }) => Ok(upstream_id),
            Ok(RemitterStatus::NotRegistered) => Err(DmtError::UpstreamRefused(reason)),
            Err(e) => Err(DmtError::UpstreamUnavailable(e)),
        },
        Err(e) => Err(DmtError::UpstreamUnavailable(e)),
    }
}

/// What the upstream takes to register `beneficiary`.
fn signup_of(beneficiary: &Beneficiary) -> BeneficiarySignup {
    BeneficiarySignup {
        mobile: beneficiary.remitter.as_str().to_owned(),
        name: beneficiary.name.clone(),
        account: beneficiary.account.as_str().to_owned(),
        ifsc: beneficiary.ifsc.as_str().to_owned(),
        bank_id: beneficiary.bank_id,
        verified: beneficiary.verified_name.is_some(),
        details: beneficiary.details.clone(),
    }
}

/// The upstream's `bene_id` for this account of the remitter: the one its
/// list already has for the account and IFSC (registered before, e.g. by a
/// registration whose local half a crash cut off), else a new registration's.
/// `None` under a provider that keeps no ids.
async fn upstream_bene_id(provider: &dyn Provider, signup: &BeneficiarySignup) -> Result<Option<String>, DmtError> {
    let listed = provider.fetch_beneficiaries(&signup.mobile).await.map_err(DmtError::UpstreamUnavailable)?;
    if let Some(known) = listed.into_iter().find(|b| b.is(&signup.account, &signup.ifsc)) {
        return Ok(Some(known.bene_id));
    }
    match provider.register_beneficiary(signup).await {
        Ok(Enrolment::Done(id)) => Ok(id),
        Ok(Enrolment::Refused(reason)) => Err(DmtError::UpstreamRefused(reason)),
        Err(e) => Err(DmtError::UpstreamUnavailable(e)),
    }
}

/// The beneficiary's upstream id, registering it upstream first if it has
/// none (added before payrail registered beneficiaries upstream, or under
/// the manual provider), and keeping the id on its row.
async fn ensure_upstream_bene_id(
    store: &dyn Store,
    provider: &dyn Provider,
    beneficiary: &Beneficiary,
) -> Result<Option<String>, DmtError> {
    if let Some(id) = &beneficiary.upstream_id {
        return Ok(Some(id.clone()));
    }
    let Some(id) = upstream_bene_id(provider, &signup_of(beneficiary)).await? else { return Ok(None) };
    if store.set_beneficiary_upstream_id(beneficiary, &id).await? {
        return Ok(Some(id));
    }
    // A concurrent transfer kept one first (the same, from the upstream's
    // list), or the beneficiary was deleted meanwhile.
    let now = store.find_beneficiary(beneficiary.partner, beneficiary.id).await?;
    let now = now.ok_or(DmtError::BeneficiaryNotFound)?;
    Ok(now.upstream_id.or(Some(id)))
}

async fn registered(
    store: &dyn RemittanceStore,
    partner: RegistrationId,
    mobile: &MobileNumber,
) -> Result<Remitter, DmtError> {
    store.find_remitter(partner, mobile).await?.ok_or(DmtError::RemitterNotFound)
}

/// Beneficiary register: adds an account to a registered remitter.
/// The upstream is asked first (`upstream_bene_id`): a refusal or no
/// answer stores nothing; its `bene_id` is stored in the same row.
pub async fn add_beneficiary(
    store: &dyn Store,
    clock: &dyn Clock,
    provider: &dyn Provider,
    partner: RegistrationId,
    new: NewBeneficiary,
) -> Result<Beneficiary, DmtError> {
    registered(store, partner, &new.mobile).await?;
    // The same account at the same bank is refused before the upstream is
    // asked (the store checks again, atomically, when it adds).
    let bank = new.ifsc.as_str().get(..4).unwrap_or_default();
    let listed = store.beneficiaries(partner, &new.mobile).await?;
    if let Some(same) = listed.iter().find(|b| b.account == new.account && b.ifsc.as_str().get(..4) == Some(bank)) {
        return Err(DmtError::BeneficiaryExists { beneid: same.id });
    }
    let mut beneficiary = Beneficiary {
        id: 0,
        partner,
        remitter: new.mobile,
        name: new.name,
        account: new.account,
        ifsc: new.ifsc,
        bank_name: new.bank_name,
        created_at: clock.now(),
        bank_id: new.bank_id,
        details: new.details,
        claimed_verified: new.claimed_verified,
        verified_name: None,
        upstream_id: None,
    };
    beneficiary.upstream_id = upstream_bene_id(provider, &signup_of(&beneficiary)).await?;
    store.insert_beneficiary(beneficiary).await?.map_err(|beneid| DmtError::BeneficiaryExists { beneid })
}

/// Beneficiary fetch: the remitter's beneficiaries.
pub async fn beneficiaries(
    store: &dyn Store,
    partner: RegistrationId,
    mobile: &MobileNumber,
) -> Result<Vec<Beneficiary>, DmtError> {
    registered(store, partner, mobile).await?;
    Ok(store.beneficiaries(partner, mobile).await?)
}

/// Beneficiary fetch by id: the remitter's beneficiary `id`; another
/// remitter's or partner's is not found, alike.
pub async fn beneficiary(
    store: &dyn Store,
    partner: RegistrationId,
    mobile: &MobileNumber,
    id: i64,
) -> Result<Beneficiary, DmtError> {
    registered(store, partner, mobile).await?;
    let found = store.find_beneficiary(partner, id).await?;
    found.filter(|b| &b.remitter == mobile).ok_or(DmtError::BeneficiaryNotFound)
}

/// Beneficiary delete: upstream first, then payrail's row. A beneficiary
/// the upstream refuses to delete but no longer lists (deleted there before
/// a crash kept payrail from deleting its row) is deleted here.
pub async fn delete_beneficiary(
    store: &dyn Store,
    clock: &dyn Clock,
    provider: &dyn Provider,
    partner: RegistrationId,
    mobile: &MobileNumber,
    id: i64,
) -> Result<(), DmtError> {
    registered(store, partner, mobile).await?;
    let found = store.find_beneficiary(partner, id).await?.filter(|b| &b.remitter == mobile);
    let beneficiary = found.ok_or(DmtError::BeneficiaryNotFound)?;
    if let Some(bene_id) = &beneficiary.upstream_id {
        match provider.delete_beneficiary(mobile.as_str(), bene_id).await {
            Ok(Enrolment::Done(_)) => {}
            Ok(Enrolment::Refused(reason)) => {
                let listed = provider.fetch_beneficiaries(mobile.as_str()).await;
                if listed.map_err(DmtError::UpstreamUnavailable)?.iter().any(|b| &b.bene_id == bene_id) {
                    return Err(DmtError::UpstreamRefused(reason));
                }
            }
            Err(e) => return Err(DmtError::UpstreamUnavailable(e)),
        }
    }
    match store.delete_beneficiary(BeneficiaryDeletion { partner, mobile, id, at: clock.now() }).await? {
        true => Ok(()),
        false => Err(DmtError::BeneficiaryNotFound),
    }
}

/// The beneficiary the intent names, after the checks that need no OTP.
async fn checked_intent(
    store: &dyn Store,
    partner: RegistrationId,
    intent: &TransferIntent,
) -> Result<Beneficiary, DmtError> {
    if intent.amount < MIN_TRANSFER || intent.amount > PER_TRANSFER_LIMIT {
        return Err(DmtError::Limit(format!(
            "Amount must be from {} to {} per transaction",
            MIN_TRANSFER.to_amount_string(),
            PER_TRANSFER_LIMIT.to_amount_string()
        )));
    }
    registered(store, partner, &intent.mobile).await?;
    let beneficiary = store.find_beneficiary(partner, intent.beneficiary_id).await?;
    let beneficiary = beneficiary.filter(|b| b.remitter == intent.mobile).ok_or(DmtError::BeneficiaryNotFound)?;
    let bank = beneficiary.bank_id.and_then(find_bank);
    if let Some(bank) = bank.filter(|b| intent.mode == TransferMode::Imps && !b.imps) {
        return Err(DmtError::Limit(format!("{} does not take IMPS transfers: send by NEFT", bank.name)));
    }
    Ok(beneficiary)
}

/// `TransactionSendOtp`: checks what can be checked now and sends the OTP
/// that [`transfer`] needs.
pub async fn send_transfer_otp(
    store: &dyn Store,
    clock: &dyn Clock,
    texts: Texts<'_>,
    partner: RegistrationId,
    intent: &TransferIntent,
) -> Result<String, DmtError> {
    checked_intent(store, partner, intent).await?;
    let remaining = remaining_limits(store, clock, partner, &intent.mobile).await?;
    let most = remaining.largest();
    if most < intent.amount {
        return Err(monthly_limit_error(most));
    }
    let what = format!("send Rs {} by {}", intent.amount.to_amount_string(), intent.mode.as_str());
    let request =
        OtpRequest { purpose: OtpPurpose::Transfer, subject: intent.subject(), to: &intent.mobile, what: &what };
    send_otp(store, clock, texts, partner, request).await
}

fn monthly_limit_error(remaining: Paise) -> DmtError {
    DmtError::Limit(format!(
        "Monthly limit exceeded: {} left for this remitter this month",
        remaining.to_amount_string()
    ))
}

/// `Transaction`: makes the transfer the OTP was sent for, paid from the
/// partner's wallet, and hands it to the provider.
#[tracing::instrument(skip_all, fields(partner = %partner, reference = %confirmation.reference, ackno = tracing::field::Empty))]
pub async fn transfer(
    store: &dyn Store,
    clock: &dyn Clock,
    upstream: &Upstream,
    partner: RegistrationId,
    intent: TransferIntent,
    confirmation: Confirmation<'_>,
) -> Result<Debited<DmtTransfer>, DmtError> {
    let Confirmation { reference, otp, pipe } = confirmation;
    let beneficiary = checked_intent(store, partner, &intent).await?;
    // Neither read waits for the other.
    let (duplicate, plans) = tokio::join!(refuse_duplicate(store, partner, &reference), fees::plans_of(store, partner));
    duplicate?;
    if let Some(reason) = upstream.submissions_stopped() {
        tracing::warn!(%reason, "transfer refused before its debit: the upstream circuit is open");
        return Err(DmtError::SubmissionsStopped);
    }
    // Before the OTP is spent: an upstream that does not answer leaves it usable.
    let upstream_bene_id = ensure_upstream_bene_id(store, &*upstream.provider, &beneficiary).await?;
    if upstream_bene_id.is_none() && upstream.provider.settles() {
        return Err(DmtError::UpstreamRefused("the beneficiary is not registered with the upstream".into()));
    }
    use_otp(store, clock, partner, OtpPurpose::Transfer, otp, &intent.subject()).await?;
    let now = clock.now();
    let plan = plans?.in_force(now);
    let record = new_transfer(partner, reference, &intent, &beneficiary, plan.dmt_charges(intent.amount, now), now);
    let poll_at = upstream.first_poll(now);
    tracing::info!(amount_paise = intent.amount.get(), mode = intent.mode.as_str(), "transfer accepted: OTP confirmed");
    let (mut debited, bank) = match debit_on_some_pipe(store, clock, record, &intent, pipe, poll_at, now).await {
        Ok(debited) => debited,
        Err(refused) => {
            tracing::info!(reason = %refused, "transfer refused at its debit");
            return Err(refused);
        }
    };
    tracing::Span::current().record("ackno", debited.record.ackno);
    tracing::info!(
        ackno = debited.record.ackno,
        amount_paise = debited.record.amount.get(),
        charge_paise = debited.record.charges.customer_charge.get(),
        pipe = bank.number(),
        closing_paise = debited.wallet.closing.get(),
        "transfer debited"
    );
    let taken = debited.wallet.opening - debited.wallet.closing;
    upstream.metrics().created(TxnKind::Dmt.as_str(), debited.record.status.name(), taken);
    // The reference is stored before the transfer is sent; without it the
    // transfer is not sent (the poller then finds the upstream never heard of it).
    let stored = debited.upstream_ref.take();
    let upstream_ref = match upstream.stored_or_new_ref(store, TxnKind::Dmt, debited.record.ackno, stored).await {
        Ok(reference) => reference,
        Err(e) => {
            tracing::error!(ackno = debited.record.ackno, error = %e, "upstream reference not stored; transfer not sent");
            return Ok(debited);
        }
    };
    let order = TransferOrder {
        upstream_ref,
        transfer: debited.record.clone(),
        mobile: intent.mobile.as_str().to_owned(),
        beneficiary_id: beneficiary.id,
        upstream_bene_id,
        beneficiary_name: beneficiary.name.clone(),
        ifsc: beneficiary.ifsc.as_str().to_owned(),
        pipe: bank.number() as u8,
        mode: intent.mode.as_str().to_owned(),
        details: intent.details.clone().or(&beneficiary.details),
        location: intent.location.clone(),
    };
    debited.record = upstream.submit_transfer(store, order).await;
    tracing::info!(ackno = debited.record.ackno, state = debited.record.status.name(), "transfer submitted upstream");
    Ok(debited)
}

async fn refuse_duplicate(
    store: &dyn TransactionStore,
    partner: RegistrationId,
    reference: &ReferenceId,
) -> Result<(), DmtError> {
    match store.lookup_dmt(partner, reference.as_str()).await?.and_then(|(_, t)| t) {
        Some(existing) => Err(DmtError::Duplicate { ackno: existing.ackno }),
        None => Ok(()),
    }
}

fn new_transfer(
    partner: RegistrationId,
    reference: ReferenceId,
    intent: &TransferIntent,
    beneficiary: &Beneficiary,
    charges: DmtCharges,
    now: Timestamp,
) -> DmtTransfer {
    DmtTransfer {
        ackno: 0,
        partner,
        reference,
        amount: intent.amount,
        account: beneficiary.account.as_str().to_owned(),
        utr: None,
        status: DmtStatus::InProcess,
        charges,
        created_at: now,
        refund_txn_id: None,
        refunded_at: None,
        upstream_ackno: None,
    }
}

/// Debits the transfer through `pipe` if the partner chose one, else
/// through the first pipe whose monthly limit has room.
async fn debit_on_some_pipe(
    store: &dyn Store,
    clock: &dyn Clock,
    record: DmtTransfer,
    intent: &TransferIntent,
    pipe: Option<Bank>,
    poll_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<(Debited<DmtTransfer>, Bank), DmtError> {
    let limit = MonthlyLimit::for_month_of(now);
    let mut best_remaining = Paise::ZERO;
    let chosen = [pipe.unwrap_or(Bank::Bank1)];
    let pipes: &[Bank] = if pipe.is_some() { &chosen } else { &Bank::ALL };
    for &bank in pipes {
        let route = DmtRoute {
            remitter: intent.mobile.clone(),
            beneficiary_id: intent.beneficiary_id,
            bank,
            mode: intent.mode,
        };
        let debit =
            DmtDebit { transfer: record.clone(), route, limit: limit.clone(), note: partner_note(clock), poll_at };
        match store.create_dmt_debited(debit).await {
            Ok(debited) => return Ok((debited, bank)),
            Err(DebitError::MonthlyLimit { remaining }) => best_remaining = best_remaining.max(remaining),
            Err(DebitError::Duplicate(_)) => {
                // A concurrent request with the same reference won: name its transfer.
                refuse_duplicate(store, record.partner, &record.reference).await?;
                return Err(DmtError::Duplicate { ackno: 0 });
            }
            Err(other) => return Err(debit_error(other, &record)),
        }
    }
    match pipe {
        Some(bank) => Err(DmtError::Limit(format!(
            "Pipe bank{} has no room this month: {} left for this remitter on it (leave pipe out to use any pipe)",
            bank.number(),
            best_remaining.to_amount_string()
        ))),
        None => Err(monthly_limit_error(best_remaining)),
    }
}

fn debit_error(error: DebitError, record: &DmtTransfer) -> DmtError {
    let needed = record.amount + record.charges.customer_charge;
    match error {
        DebitError::Duplicate(_) => DmtError::Duplicate { ackno: 0 },
        DebitError::InsufficientFunds { balance } => {
            DmtError::InsufficientFunds { balance: balance.to_decimal_string(), needed: needed.to_decimal_string() }
        }
        DebitError::MonthlyLimit { remaining } => monthly_limit_error(remaining),
        DebitError::UnknownPartner => DmtError::Store(StoreError::Other(anyhow::anyhow!("partner vanished"))),
        DebitError::Store(e) => DmtError::Store(e),
    }
}

pub use refunds::{claim_refund, send_refund_otp};
