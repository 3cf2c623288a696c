//! The upstream that really moves money, behind one trait.
//!
//! Three implementations:
//! - [`ManualProvider`] (`--provider manual`): accepts every transaction and
//!   leaves it "sent to bank" (transfers) or pending (bills) for an operator
//!   to settle; nothing is polled.
//! - [`super::sandbox::SandboxProvider`] (`--provider sandbox`, the demo's):
//!   deterministic scenarios chosen by magic values, settling on their own.
//! - [`super::paysprint::PaysprintProvider`] (`--provider paysprint`): a
//!   Paysprint-compatible HTTP connector.
//!
//! A provider only reports what the upstream says ([`DmtUpstream`],
//! [`BillUpstream`]); `services::upstream::sync` decides what that changes. An error
//! changes nothing: the transaction stays as it is and the poller asks again.

use std::sync::Arc;

use async_trait::async_trait;

use secrecy::SecretString;

use crate::domain::ekyc::AadhaarNumber;
use crate::domain::remitter::MobileNumber;
use crate::domain::remitter_details::RemitterDetails;
use crate::domain::upstream::{BillUpstream, DmtUpstream};
use crate::domain::{BillMode, BillPayment, Clock, DmtTransfer, GeoPoint, Paise, Timestamp};
use crate::services::billers::Biller;
use crate::services::notifier::Notifier;

/// A bill as the biller reports it (Paysprint's fetchbill answer, which
/// AOPay's `FetchBilPaymentDetails` passes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBill {
    /// The customer's name on the bill.
    pub customer_name: String,
    /// What is due.
    pub amount: Paise,
    /// What is due after the biller's rebates or late fees.
    pub net_amount: Paise,
    /// The bill's date, as the biller writes it, when it gives one.
    pub bill_date: Option<String>,
    /// When it is due, as the biller writes it.
    pub due_date: String,
    /// Whether the biller takes a payment for this bill now.
    pub accept_payment: bool,
    /// Whether the biller takes an amount other than [`FetchedBill::amount`].
    pub accept_part_pay: bool,
    /// The customer's mobile or account as the biller reports it, if it does.
    pub cell_number: Option<String>,
    /// The customer's name as the biller's system holds it.
    pub user_name: String,
}

/// What a bill fetch asks the upstream.
#[derive(Debug, Clone, Copy)]
pub struct BillQuery<'a> {
    /// The biller.
    pub biller: &'a Biller,
    /// The customer's account with the biller (`canumber`).
    pub account: &'a str,
    /// The biller's further customer parameters, `ad1`..`ad3`.
    pub extra: &'a [Option<String>; 3],
    /// `online` or `offline`.
    pub mode: BillMode,
}

/// Why the upstream could not answer. Never a statement about the
/// transaction: the caller keeps its state and asks again later.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The biller knows no such customer.
    #[error("no bill found for this customer")]
    NoBill,
    /// No answer in time.
    #[error("the provider did not answer in time")]
    Timeout,
    /// An answer that could not be read.
    #[error("the provider's answer could not be read: {0}")]
    Garbage(String),
    /// The upstream failed or could not be reached.
    #[error("the provider did not answer: {0}")]
    Unavailable(String),
}

/// A transfer to hand over, with what the upstream needs beyond the record.
#[derive(Debug, Clone)]
pub struct TransferOrder {
    /// payrail's reference for it upstream (`UpstreamRef::render`).
    pub upstream_ref: String,
    /// The transfer as stored (debited, in process).
    pub transfer: DmtTransfer,
    /// The remitter's mobile.
    pub mobile: String,
    /// payrail's beneficiary id (never sent upstream).
    pub beneficiary_id: i64,
    /// The upstream's id for the beneficiary (`bene_id`), which the transfer
    /// is sent with; `None` only under a provider that keeps no ids (manual).
    pub upstream_bene_id: Option<String>,
    /// The account holder's name.
    pub beneficiary_name: String,
    /// The beneficiary's branch.
    pub ifsc: String,
    /// The bank pipe, 1 to 3.
    pub pipe: u8,
    /// `IMPS` or `NEFT`.
    pub mode: String,
    /// The remitter's date of birth, address, PIN code and GST state, where known.
    pub details: RemitterDetails,
    /// Where the remitter is (latitude, longitude), if the partner said.
    pub location: Option<(String, String)>,
}

/// An account to verify at its bank (a penny drop), with what the
/// upstream's call takes.
#[derive(Debug, Clone)]
pub struct AccountCheck {
    /// payrail's reference for it upstream (one per penny drop).
    pub upstream_ref: String,
    /// The remitter's mobile.
    pub mobile: String,
    /// The account.
    pub account: String,
    /// The bank, from the bank list.
    pub bank_id: i64,
    /// The name the partner gave.
    pub name: String,
    /// payrail's beneficiary id, when it verifies a registered beneficiary.
    pub beneficiary_id: Option<i64>,
    /// The upstream's id for that beneficiary (its `bene_id`), when it has one.
    pub upstream_bene_id: Option<String>,
    /// The remitter's details, where known.
    pub details: RemitterDetails,
}

/// What the bank said of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountHolder {
    /// The account exists; the holder's name as the bank holds it.
    Named(String),
    /// The bank knows no such account.
    NoSuchAccount,
}

/// A bill payment to hand over.
#[derive(Debug, Clone)]
pub struct BillOrder {
    /// payrail's reference for it upstream.
    pub upstream_ref: String,
    /// The payment as stored (debited, pending).
    pub payment: BillPayment,
    /// The biller's id (`operator`).
    pub biller_id: i64,
    /// `online` or `offline`.
    pub mode: BillMode,
    /// Where the partner says the payment was made.
    pub location: Option<GeoPoint>,
    /// The bill as the provider reported it just before payment (billers
    /// without bill fetch have none).
    pub bill: Option<FetchedBill>,
}

/// What an upstream status callback said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamReport {
    /// About a transfer.
    Dmt(DmtUpstream),
    /// About a bill payment.
    Bill(BillUpstream),
}

/// A verified status callback from the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCallback {
    /// payrail's reference, as given when the transaction was submitted.
    pub upstream_ref: String,
    /// What the upstream says.
    pub report: UpstreamReport,
    /// The `reqid` of the callback's `Token` header, when it came with one
    /// (Paysprint sends none): a callback whose `reqid` was seen before is
    /// a replay, refused.
    pub reqid: Option<String>,
    /// What makes a callback the same as another (a digest of its signed
    /// `param`): a callback seen before is a duplicate, answered and
    /// otherwise ignored.
    pub dedupe: String,
}

/// Why a callback was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// This provider sends no callbacks.
    #[error("this provider sends no callbacks")]
    NotAccepted,
    /// The callback's credentials did not verify.
    #[error("callback not authenticated: {0}")]
    Unauthenticated(String),
    /// The callback could not be read.
    #[error("callback not understood: {0}")]
    Malformed(String),
}

/// A new remitter's e-KYC to ask of the upstream (UIDAI behind it).
#[derive(Debug)]
pub struct EkycRequest {
    /// The remitter's mobile.
    pub mobile: MobileNumber,
    /// The Aadhaar number, checked (its `Debug` masks it).
    pub aadhaar: AadhaarNumber,
    /// Where the agent is, as sent (`Lattitude`).
    pub latitude: String,
    /// Where the agent is, as sent.
    pub longitude: String,
    /// The fingerprint device's PID data, passed through to the upstream
    /// and never stored or logged (its `Debug` prints `[REDACTED]`).
    pub fingerprint: SecretString,
}

/// What the upstream said about an e-KYC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EkycOutcome {
    /// UIDAI matched the fingerprint: the upstream's id for the e-KYC.
    Verified {
        /// The upstream's e-KYC id.
        upstream_id: String,
    },
    /// UIDAI (or the upstream) refused it, saying why.
    Refused {
        /// The upstream's reason.
        reason: String,
    },
}

/// A remitter to register upstream, after payrail's own checks (KYC, OTP).
#[derive(Debug, Clone)]
pub struct RemitterSignup {
    /// The remitter's mobile.
    pub mobile: MobileNumber,
    /// The OTP the remitter presented.
    pub otp: String,
    /// The `stateresp` it was presented under (payrail's `KycId`).
    pub stateresp: String,
    /// The upstream's id for the remitter's e-KYC (`ekyc_id`).
    pub ekyc_id: String,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
}

/// What the upstream knows of a remitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemitterStatus {
    /// Registered there, under this id (`None`: the provider keeps no ids).
    Registered {
        /// The upstream's id for the remitter.
        upstream_id: Option<String>,
    },
    /// Not registered there.
    NotRegistered,
}

/// A beneficiary to register upstream.
#[derive(Debug, Clone)]
pub struct BeneficiarySignup {
    /// The remitter's mobile.
    pub mobile: String,
    /// The account holder.
    pub name: String,
    /// The account.
    pub account: String,
    /// The branch.
    pub ifsc: String,
    /// The bank, from the bank list.
    pub bank_id: Option<i64>,
    /// Whether a penny drop verified the account (`verified`).
    pub verified: bool,
    /// The remitter's details, where known.
    pub details: RemitterDetails,
}

/// A beneficiary as the upstream lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamBeneficiary {
    /// The upstream's id (`bene_id`).
    pub bene_id: String,
    /// The account.
    pub account: String,
    /// The branch.
    pub ifsc: String,
}

impl UpstreamBeneficiary {
    /// Whether it is this account at this branch (the IFSC in any case).
    pub fn is(&self, account: &str, ifsc: &str) -> bool {
        self.account == account && self.ifsc.eq_ignore_ascii_case(ifsc)
    }
}

/// What the upstream said to a registration or deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrolment {
    /// Done; the upstream's id for what was registered (`None` for a
    /// deletion, and under a provider that keeps no ids).
    Done(Option<String>),
    /// Refused, with the upstream's reason: nothing was done there.
    Refused(String),
}

/// A transfer's submission answer, with the upstream's own acknowledgement
/// number when the answer carries one (Paysprint's `ackno`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmtSubmitted {
    /// What the answer says of the transfer.
    pub report: DmtUpstream,
    /// The upstream's `ackno`, if given.
    pub upstream_ackno: Option<String>,
}

/// A transfer's status answer with what a refund needs: the upstream's
/// `ackno` and whether the upstream refunded the transfer on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmtQueried {
    /// What the answer says of the transfer.
    pub report: DmtUpstream,
    /// The upstream's `ackno`, if given.
    pub upstream_ackno: Option<String>,
    /// The upstream says it refunded the transfer already (Paysprint's
    /// `refunded` flag, `"1"`); only read from a documented answer.
    pub refunded: bool,
}

/// Asks the upstream to send the remitter of a failed transfer its refund OTP.
#[derive(Clone, Copy)]
pub struct RefundOtpOrder<'a> {
    /// payrail's reference for the transfer upstream.
    pub upstream_ref: &'a str,
    /// The upstream's `ackno` of the transfer.
    pub upstream_ackno: &'a str,
    /// The transfer as stored.
    pub transfer: &'a DmtTransfer,
    /// The remitter's mobile.
    pub mobile: &'a MobileNumber,
    /// payrail's text path: an in-process upstream (the sandbox), which has
    /// no SMS of its own, sends its OTP through it; a remote one texts the
    /// remitter itself and ignores it.
    pub notifier: &'a dyn Notifier,
}

/// Claims a failed transfer's refund from the upstream with the remitter's OTP.
#[derive(Debug, Clone, Copy)]
pub struct RefundClaimOrder<'a> {
    /// payrail's reference for the transfer upstream.
    pub upstream_ref: &'a str,
    /// The upstream's `ackno` of the transfer.
    pub upstream_ackno: &'a str,
    /// The transfer as stored.
    pub transfer: &'a DmtTransfer,
    /// The OTP the remitter received from the upstream.
    pub otp: &'a str,
}

/// What the upstream said to a refund OTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOtpOutcome {
    /// The OTP went to the remitter.
    Sent,
    /// The upstream has no refund to make for it: not found, or refunded already.
    NotRefundable {
        /// The upstream's words.
        message: String,
    },
    /// The upstream refused the request (validation, could not send).
    Refused {
        /// The upstream's words.
        message: String,
    },
}

/// What the upstream said to a refund claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundClaimOutcome {
    /// The documented confirmation: the upstream refunded the transfer to
    /// payrail's account with it. The only outcome that credits the partner.
    Refunded,
    /// "Transaction not found or already refunded": an earlier claim whose
    /// answer was lost may have succeeded; only a status query can tell.
    NotFoundOrRefunded {
        /// The upstream's words.
        message: String,
    },
    /// Refused (wrong OTP, no refund found, validation, the service off):
    /// nothing was refunded.
    Refused {
        /// The upstream's words.
        message: String,
    },
}

/// How payrail speaks to the upstream: one implementation per upstream.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Its name, for logs and `payrail serve`'s banner.
    fn name(&self) -> &'static str;
    /// Whether payrail follows up what it hands over (writes poll jobs and
    /// asks for the status). `false` for the manual provider.
    fn settles(&self) -> bool;
    /// Hands a debited transfer over. Sends it at most once: an error means
    /// the answer is unknown, never that it may be sent again.
    async fn submit_transfer(&self, order: &TransferOrder) -> Result<DmtUpstream, ProviderError>;
    /// Hands a debited bill payment over, at most once.
    async fn submit_bill(&self, order: &BillOrder) -> Result<BillUpstream, ProviderError>;
    /// Fetches the customer's current bill.
    async fn fetch_bill(&self, query: &BillQuery<'_>) -> Result<FetchedBill, ProviderError>;
    /// What the upstream says about a transfer now.
    async fn dmt_status(&self, upstream_ref: &str, transfer: &DmtTransfer) -> Result<DmtUpstream, ProviderError>;
    /// What the upstream says about a bill payment now.
    async fn bill_status(&self, upstream_ref: &str, payment: &BillPayment) -> Result<BillUpstream, ProviderError>;
    /// Verifies and reads a status callback (its `Token` header and body).
    fn read_callback(
        &self,
        token: Option<&str>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<UpstreamCallback, CallbackError>;
    /// Callbacks an in-process provider makes on its own, due by `now`
    /// (the sandbox's bank returns), each handed out once. A remote
    /// provider calls back over HTTP instead and has none.
    fn due_callbacks(&self, _now: Timestamp) -> Vec<UpstreamCallback> {
        Vec::new()
    }
    /// The provider's call counters and authentication circuit, if it
    /// keeps them (the HTTP connector does; in-process providers do not).
    fn health(&self) -> Option<Arc<super::health::UpstreamHealth>> {
        None
    }
    /// Asks for a new remitter's e-KYC, once (an error means no answer).
    /// By default the provider does none and says so.
    async fn remitter_ekyc(&self, _request: &EkycRequest) -> Result<EkycOutcome, ProviderError> {
        Err(ProviderError::Unavailable(format!("the {} provider does no e-KYC", self.name())))
    }
    /// Asks the bank, through the upstream, who holds an account (a penny
    /// drop). Sent once: an error means no answer, and payrail refunds the fee.
    async fn verify_account(&self, check: &AccountCheck) -> Result<AccountHolder, ProviderError>;
    /// Whether the upstream knows the remitter (no side effect payrail relies on).
    async fn query_remitter(&self, mobile: &MobileNumber) -> Result<RemitterStatus, ProviderError>;
    /// Registers the remitter upstream; its id there when done.
    async fn register_remitter(&self, signup: &RemitterSignup) -> Result<Enrolment, ProviderError>;
    /// The remitter's beneficiaries as the upstream lists them.
    async fn fetch_beneficiaries(&self, mobile: &str) -> Result<Vec<UpstreamBeneficiary>, ProviderError>;
    /// Registers a beneficiary upstream; its `bene_id` there when done.
    async fn register_beneficiary(&self, signup: &BeneficiarySignup) -> Result<Enrolment, ProviderError>;
    /// Deletes the remitter's beneficiary `bene_id` upstream.
    async fn delete_beneficiary(&self, mobile: &str, bene_id: &str) -> Result<Enrolment, ProviderError>;
    /// Whether a failed transfer's refund is claimed from this upstream
    /// ([`Provider::refund_otp`], [`Provider::claim_refund`]); if not,
    /// payrail confirms the claim with its own OTP and credits it itself.
    fn claims_refunds(&self) -> bool {
        false
    }
    /// [`Provider::submit_transfer`], with the upstream's `ackno` when the
    /// answer carries one. Sent once, as that.
    async fn submit_transfer_acked(&self, order: &TransferOrder) -> Result<DmtSubmitted, ProviderError> {
        let report = self.submit_transfer(order).await?;
        Ok(DmtSubmitted { report, upstream_ackno: None })
    }
    /// [`Provider::dmt_status`], with the upstream's `ackno` and refund flag
    /// when the answer carries them.
    async fn query_transfer(&self, upstream_ref: &str, transfer: &DmtTransfer) -> Result<DmtQueried, ProviderError> {
        let report = self.dmt_status(upstream_ref, transfer).await?;
        Ok(DmtQueried { report, upstream_ackno: None, refunded: false })
    }
    /// Has the upstream send the remitter its refund OTP (again).
    async fn refund_otp(&self, _order: &RefundOtpOrder<'_>) -> Result<RefundOtpOutcome, ProviderError> {
        Err(ProviderError::Unavailable(format!("the {} provider claims no refunds", self.name())))
    }
    /// Claims the refund with the remitter's OTP, once: an error means the
    /// answer is unknown (the claim may have been made).
    async fn claim_refund(&self, _order: &RefundClaimOrder<'_>) -> Result<RefundClaimOutcome, ProviderError> {
        Err(ProviderError::Unavailable(format!("the {} provider claims no refunds", self.name())))
    }
}

/// Settlement by hand (see the module documentation).
pub struct ManualProvider {
    /// Dates the bills it makes up.
    clock: Arc<dyn Clock>,
}

impl ManualProvider {
    /// A manual provider whose made-up bills are of `clock`'s month.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        ManualProvider { clock }
    }
}

#[async_trait]
impl Provider for ManualProvider {
    fn name(&self) -> &'static str {
        "manual"
    }

    fn settles(&self) -> bool {
        false
    }

    async fn submit_transfer(&self, _order: &TransferOrder) -> Result<DmtUpstream, ProviderError> {
        Ok(DmtUpstream::SentToBank)
    }

    async fn submit_bill(&self, _order: &BillOrder) -> Result<BillUpstream, ProviderError> {
        Ok(BillUpstream::Pending)
    }

    async fn fetch_bill(&self, query: &BillQuery<'_>) -> Result<FetchedBill, ProviderError> {
        Ok(made_up_bill(query.biller, query.account, self.clock.now()))
    }

    async fn dmt_status(&self, _upstream_ref: &str, _transfer: &DmtTransfer) -> Result<DmtUpstream, ProviderError> {
        Ok(DmtUpstream::Unknown { detail: "settled by hand".into() })
    }

    async fn bill_status(&self, _upstream_ref: &str, _payment: &BillPayment) -> Result<BillUpstream, ProviderError> {
        Ok(BillUpstream::Unknown { detail: "settled by hand".into() })
    }

    fn read_callback(&self, _: Option<&str>, _: &[u8], _: Timestamp) -> Result<UpstreamCallback, CallbackError> {
        Err(CallbackError::NotAccepted)
    }

    /// No upstream checks anything: every e-KYC is taken as verified, as
    /// every transfer is taken as sent (the operator answers for both).
    async fn remitter_ekyc(&self, request: &EkycRequest) -> Result<EkycOutcome, ProviderError> {
        Ok(EkycOutcome::Verified {
            upstream_id: format!("MANUAL-{}-{}", request.mobile.as_str(), self.clock.now().unix()),
        })
    }

    async fn verify_account(&self, _check: &AccountCheck) -> Result<AccountHolder, ProviderError> {
        // No bank to ask: the penny drop fails and its fee is refunded.
        Err(ProviderError::Unavailable("the manual provider has no bank to verify accounts with".into()))
    }

    /// No upstream: the remitter is payrail's alone, with no upstream id.
    async fn query_remitter(&self, _mobile: &MobileNumber) -> Result<RemitterStatus, ProviderError> {
        Ok(RemitterStatus::NotRegistered)
    }

    async fn register_remitter(&self, _signup: &RemitterSignup) -> Result<Enrolment, ProviderError> {
        Ok(Enrolment::Done(None))
    }

    async fn fetch_beneficiaries(&self, _mobile: &str) -> Result<Vec<UpstreamBeneficiary>, ProviderError> {
        Ok(Vec::new())
    }

    async fn register_beneficiary(&self, _signup: &BeneficiarySignup) -> Result<Enrolment, ProviderError> {
        Ok(Enrolment::Done(None))
    }

    async fn delete_beneficiary(&self, _mobile: &str, _bene_id: &str) -> Result<Enrolment, ProviderError> {
        Ok(Enrolment::Done(None))
    }
}

const NAMES: [&str; 6] =
    ["Ramesh Kumar", "Sunita Devi", "Arjun Mehta", "Priya Sharma", "Mohammed Irfan", "Lakshmi Iyer"];

/// The categories whose made-up bills must be paid whole: a premium or an
/// instalment is due exactly (`acceptPartPay` false). Every other made-up
/// bill takes any amount.
pub(crate) const WHOLE_BILL_CATEGORIES: [&str; 2] = ["Insurance", "Loan Repayment"];

/// A bill that depends only on the biller, the account and the month.
pub(crate) fn made_up_bill(biller: &Biller, account: &str, now: Timestamp) -> FetchedBill {
    let seed = account.bytes().fold(biller.id as u64, |h, b| h.wrapping_mul(131).wrapping_add(u64::from(b)));
    let (year, month, _) = now.ist_date();
    let name = NAMES[(seed % NAMES.len() as u64) as usize];
    let amount = Paise::new(10_000 + (seed % 490_000) as i64);
    FetchedBill {
        customer_name: name.to_owned(),
        amount,
        net_amount: amount,
        bill_date: Some(format!("{year:04}-{month:02}-01")),
        due_date: format!("{year:04}-{month:02}-20"),
        accept_payment: true,
        accept_part_pay: !WHOLE_BILL_CATEGORIES.contains(&biller.category),
        cell_number: Some(account.to_owned()),
        user_name: name.to_ascii_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::billers;

    #[test]
    fn a_made_up_bill_is_the_same_for_the_same_account_and_differs_between_accounts() {
        let biller = billers::find(1).copied().unwrap_or_else(|| panic!("biller 1"));
        let now = Timestamp::from_unix(1_790_000_000);
        assert_eq!(made_up_bill(&biller, "123", now), made_up_bill(&biller, "123", now));
        assert_ne!(made_up_bill(&biller, "123", now).amount, made_up_bill(&biller, "124", now).amount);
        assert!(made_up_bill(&biller, "123", now).amount >= Paise::rupees(100));
    }

    #[test]
    fn made_up_premiums_and_instalments_are_paid_whole_and_other_bills_in_part() {
        let now = Timestamp::from_unix(1_790_000_000);
        let part_pay = |id| billers::find(id).map(|b| made_up_bill(b, "102277100", now).accept_part_pay);
        assert_eq!(
            (part_pay(1), part_pay(30), part_pay(70), part_pay(100)),
            (Some(true), Some(true), Some(false), Some(false))
        );
    }
}
