//! The sandbox upstream: deterministic scenarios for trying payrail without
//! a real provider, settling on their own (`--provider sandbox`, the demo's).
//!
//! The scenario is chosen by the last three digits of the beneficiary account
//! (transfers) or the customer number (bill payments), and unfolds in time
//! from the transaction's creation, in steps of `settle_after` (8 s by
//! default, `T` below):
//!
//! | ends in | scenario |
//! |---|---|
//! | `111` | fails at once |
//! | `222` | sent to bank / pending until 2T, then fails |
//! | `333` | succeeds at T, then the bank returns it at 3T |
//! | `444` | succeeds at T without a UTR; the UTR arrives at 3T |
//! | `555` | the upstream times out until 3T, then succeeds |
//! | `666` | the upstream answers garbage, for ever (payrail puts it on hold) |
//! | `777` | sent to bank / pending for ever (payrail puts it on hold) |
//! | `888` | succeeds at once, with its UTR / operator reference |
//! | anything else | sent to bank / pending, succeeds at T with a UTR |
//!
//! A new remitter's e-KYC is decided by the Aadhaar number's three digits
//! before its check digit (digits 9 to 11): `111` is refused by "UIDAI"
//! (the fingerprint did not match), `555` fails as an upstream that cannot
//! be reached, anything else is verified (e.g. `999999990019` verified,
//! `234567891110` refused, `234567895559` unreachable).
//!
//! A penny drop ([`Provider::verify_account`]) is decided by the account's
//! last three digits too: `404` is an account the bank does not know,
//! `503` an upstream that fails (the fee is refunded); any other account is
//! held by the name sent, in capitals.
//!
//! The remitter's details reach the sandbox with each transfer: a transfer
//! whose remitter PIN code is [`UNSERVED_PINCODE`] fails at once (the
//! upstream serves no such address), whatever its account.
//!
//! A paid transfer with its UTR, or a paid bill, is decided: payrail stops
//! polling it. The return of `333` therefore reaches payrail as a real
//! upstream sends one, as a callback: when the sandbox first reports the
//! payment, it schedules the return's callback for 3T, and the poller's loop
//! takes it ([`Provider::due_callbacks`]).
//!
//! Remitters and beneficiaries are registered with the sandbox as with
//! Paysprint. It keeps no list: a beneficiary's `bene_id` is derived from
//! the remitter's mobile, the account and the IFSC by a keyed hash
//! ([`sandbox_bene_id`]), so the ids it issued survive a restart of payrail.
//! A transfer whose `bene_id` is not the one the sandbox issues for its
//! mobile, account and IFSC fails at once (Paysprint's code 16, "Invalid
//! Beneficiary Details"), and is refunded as every immediate failure is.
//! A remitter's upstream id is its mobile, as Paysprint keys remitters.
//!
//! A failed transfer's refund is claimed from the sandbox as from Paysprint
//! ([`Provider::refund_otp`], [`Provider::claim_refund`]): its `ackno` of
//! transfer `n` is `SBXn`; a refund OTP goes to the remitter through
//! payrail's own text path (the sandbox has no SMS of its own), and a claim
//! with that OTP refunds the transfer once. Its status answers then say
//! "refunded".
//!
//! `POST /sandbox/v1/advance` overrides what the sandbox says about one
//! transaction from then on and applies it at once, as an upstream callback
//! would. Overrides, scheduled callbacks, refund OTPs and refunds live in
//! memory: a restart forgets them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng as _;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::provider::{
    made_up_bill, AccountCheck, AccountHolder, BeneficiarySignup, BillOrder, BillQuery, CallbackError, DmtQueried,
    DmtSubmitted, EkycOutcome, EkycRequest, Enrolment, FetchedBill, Provider, ProviderError, RefundClaimOrder,
    RefundClaimOutcome, RefundOtpOrder, RefundOtpOutcome, RemitterSignup, RemitterStatus, TransferOrder,
    UpstreamBeneficiary, UpstreamCallback, UpstreamReport,
};
use crate::domain::remitter::MobileNumber;
use crate::domain::upstream::{BillUpstream, DmtUpstream};
use crate::domain::{BillPayment, Clock, DmtTransfer, Timestamp};

/// The remitter PIN code the sandbox refuses transfers from.
pub const UNSERVED_PINCODE: &str = "999999";

/// The key of the sandbox's `bene_id`s: fixed, so that they survive restarts
/// (they are test data, not secrets).
const BENE_ID_KEY: &[u8] = b"payrail-sandbox-bene-id-v1";

/// The `bene_id` the sandbox issues for this mobile, account and IFSC:
/// ten digits of an HMAC-SHA256 of the three (the IFSC in capitals).
pub fn sandbox_bene_id(mobile: &str, account: &str, ifsc: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(BENE_ID_KEY) else { return String::new() };
    mac.update(format!("{mobile}|{account}|{}", ifsc.to_ascii_uppercase()).as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    format!("{:010}", u64::from_be_bytes(first) % 10_000_000_000)
}

/// What a magic suffix asks for (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Succeeds at T.
    Succeed,
    /// Fails at once.
    FailAtOnce,
    /// Pending until 2T, then fails.
    PendingThenFail,
    /// Succeeds at T, returned at 3T.
    SucceedThenReturn,
    /// Succeeds at T without a UTR, which arrives at 3T.
    LateUtr,
    /// Times out until 3T, then succeeds.
    Timeout,
    /// Answers garbage.
    Garbage,
    /// Never decides.
    NeverDecides,
    /// Succeeds at once.
    SucceedAtOnce,
}

impl Scenario {
    /// The scenario an account or customer number asks for.
    pub fn for_number(number: &str) -> Scenario {
        match number.get(number.len().saturating_sub(3)..).unwrap_or("") {
            "111" => Scenario::FailAtOnce,
            "222" => Scenario::PendingThenFail,
            "333" => Scenario::SucceedThenReturn,
            "444" => Scenario::LateUtr,
            "555" => Scenario::Timeout,
            "666" => Scenario::Garbage,
            "777" => Scenario::NeverDecides,
            "888" => Scenario::SucceedAtOnce,
            _ => Scenario::Succeed,
        }
    }
}

/// Where a scenario stands, the same for transfers and bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Paid { with_reference: bool },
    Failed,
    TimedOut,
    Garbage,
}

fn phase(scenario: Scenario, elapsed: i64, t: i64) -> Phase {
    match scenario {
        Scenario::Succeed if elapsed < t => Phase::Pending,
        Scenario::Succeed => Phase::Paid { with_reference: true },
        Scenario::FailAtOnce => Phase::Failed,
        Scenario::PendingThenFail if elapsed < 2 * t => Phase::Pending,
        Scenario::PendingThenFail => Phase::Failed,
        Scenario::SucceedThenReturn if elapsed < t => Phase::Pending,
        Scenario::SucceedThenReturn if elapsed < 3 * t => Phase::Paid { with_reference: true },
        Scenario::SucceedThenReturn => Phase::Failed,
        Scenario::LateUtr if elapsed < t => Phase::Pending,
        Scenario::LateUtr => Phase::Paid { with_reference: elapsed >= 3 * t },
        Scenario::Timeout if elapsed < 3 * t => Phase::TimedOut,
        Scenario::Timeout => Phase::Paid { with_reference: true },
        Scenario::Garbage => Phase::Garbage,
        Scenario::NeverDecides => Phase::Pending,
        Scenario::SucceedAtOnce => Phase::Paid { with_reference: true },
    }
}

/// The sandbox provider.
pub struct SandboxProvider {
    settle_after: Duration,
    hang: Duration,
    /// How far each scenario has unfolded is read from this clock.
    clock: Arc<dyn Clock>,
    overrides: Mutex<HashMap<String, UpstreamReport>>,
    /// Bank returns to call back with, by upstream reference: (due unix time, report).
    returns: Mutex<HashMap<String, (i64, UpstreamReport)>>,
    /// Refund OTPs sent and not used yet, by upstream reference.
    refund_otps: Mutex<HashMap<String, String>>,
    /// Transfers the sandbox refunded, by upstream reference.
    refunded: Mutex<HashSet<String>>,
}

impl SandboxProvider {
    /// A sandbox whose scenarios move every `settle_after` of `clock`'s
    /// time, and whose timeouts hang for `hang` (real time) before failing.
    pub fn new(settle_after: Duration, hang: Duration, clock: Arc<dyn Clock>) -> Self {
        SandboxProvider {
            settle_after,
            hang,
            clock,
            overrides: Mutex::default(),
            returns: Mutex::default(),
            refund_otps: Mutex::default(),
            refunded: Mutex::default(),
        }
    }

    /// From now on, the sandbox reports `report` for `upstream_ref`.
    pub fn set_override(&self, upstream_ref: &str, report: UpstreamReport) {
        if let Ok(mut overrides) = self.overrides.lock() {
            overrides.insert(upstream_ref.to_owned(), report);
        }
    }

    fn override_for(&self, upstream_ref: &str) -> Option<UpstreamReport> {
        self.overrides.lock().ok().and_then(|o| o.get(upstream_ref).cloned())
    }

    /// Schedules the return (`report`) of a paid `333` transaction made at
    /// `created_at` under this account or customer `number`, once, for 3T.
    fn schedule_return(&self, upstream_ref: &str, number: &str, created_at: Timestamp, report: UpstreamReport) {
        if Scenario::for_number(number) != Scenario::SucceedThenReturn {
            return;
        }
        let due = created_at.unix() + 3 * self.step_secs();
        if let Ok(mut returns) = self.returns.lock() {
            returns.entry(upstream_ref.to_owned()).or_insert((due, report));
        }
    }

    /// The sandbox's own acknowledgement number of transfer `ackno`.
    fn upstream_ackno(transfer: &DmtTransfer) -> String {
        format!("SBX{}", transfer.ackno)
    }

    fn was_refunded(&self, upstream_ref: &str) -> bool {
        self.refunded.lock().map(|r| r.contains(upstream_ref)).unwrap_or(false)
    }

    /// Why the sandbox has no refund to make for this transfer, if it has none:
    /// an acknowledgement number that is not its own, a refund made, a
    /// transfer that has not failed.
    async fn refund_refusal(&self, upstream_ref: &str, upstream_ackno: &str, transfer: &DmtTransfer) -> Option<String> {
        if upstream_ackno != Self::upstream_ackno(transfer) || self.was_refunded(upstream_ref) {
            return Some("Transaction not found or already refunded.".into());
        }
        match self.dmt_report(upstream_ref, transfer).await {
            Ok(DmtUpstream::Failed) => None,
            _ => Some("Transaction not found or already refunded.".into()),
        }
    }

    fn step_secs(&self) -> i64 {
        self.settle_after.as_secs().max(1) as i64
    }

    fn phase_of(&self, number: &str, created_at: Timestamp) -> Phase {
        let elapsed = self.clock.now().unix() - created_at.unix();
        phase(Scenario::for_number(number), elapsed, self.step_secs())
    }

    async fn unanswered(&self, phase: Phase) -> ProviderError {
        match phase {
            Phase::TimedOut => {
                tokio::time::sleep(self.hang).await;
                ProviderError::Timeout
            }
            _ => ProviderError::Garbage("sandbox: <html>502 Bad Gateway</html>".into()),
        }
    }

    async fn dmt_report(&self, upstream_ref: &str, transfer: &DmtTransfer) -> Result<DmtUpstream, ProviderError> {
        if let Some(UpstreamReport::Dmt(report)) = self.override_for(upstream_ref) {
            return Ok(report);
        }
        let utr = || format!("6{:011}", transfer.ackno);
        match self.phase_of(&transfer.account, transfer.created_at) {
            Phase::Pending => Ok(DmtUpstream::SentToBank),
            Phase::Paid { with_reference } => {
                let returned = UpstreamReport::Dmt(DmtUpstream::Failed);
                self.schedule_return(upstream_ref, &transfer.account, transfer.created_at, returned);
                Ok(DmtUpstream::Success { utr: with_reference.then(utr) })
            }
            Phase::Failed => Ok(DmtUpstream::Failed),
            other => Err(self.unanswered(other).await),
        }
    }

    async fn bill_report(&self, upstream_ref: &str, payment: &BillPayment) -> Result<BillUpstream, ProviderError> {
        if let Some(UpstreamReport::Bill(report)) = self.override_for(upstream_ref) {
            return Ok(report);
        }
        let reference = || format!("BBPS{:010}", payment.txnid);
        match self.phase_of(&payment.ca_number, payment.created_at) {
            Phase::Pending => Ok(BillUpstream::Pending),
            Phase::Paid { with_reference } => {
                let reversed = UpstreamReport::Bill(BillUpstream::Failed);
                self.schedule_return(upstream_ref, &payment.ca_number, payment.created_at, reversed);
                Ok(BillUpstream::Success { operator_ref: with_reference.then(reference) })
            }
            Phase::Failed => Ok(BillUpstream::Failed),
            other => Err(self.unanswered(other).await),
        }
    }
}

#[async_trait]
impl Provider for SandboxProvider {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn settles(&self) -> bool {
        true
    }

    async fn submit_transfer(&self, order: &TransferOrder) -> Result<DmtUpstream, ProviderError> {
        let issued = sandbox_bene_id(&order.mobile, &order.transfer.account, &order.ifsc);
        if order.upstream_bene_id.as_deref() != Some(issued.as_str()) {
            // Paysprint's code 16, "Invalid Beneficiary Details": refused, nothing sent to a bank.
            tracing::info!(upstream_ref = %order.upstream_ref, "sandbox: transfer to a bene_id it did not issue");
            self.set_override(&order.upstream_ref, UpstreamReport::Dmt(DmtUpstream::Failed));
        }
        if order.details.pincode.as_ref().is_some_and(|p| p.as_str() == UNSERVED_PINCODE) {
            self.set_override(&order.upstream_ref, UpstreamReport::Dmt(DmtUpstream::Failed));
        }
        self.dmt_report(&order.upstream_ref, &order.transfer).await
    }

    async fn submit_bill(&self, order: &BillOrder) -> Result<BillUpstream, ProviderError> {
        self.bill_report(&order.upstream_ref, &order.payment).await
    }

    async fn fetch_bill(&self, query: &BillQuery<'_>) -> Result<FetchedBill, ProviderError> {
        Ok(made_up_bill(query.biller, query.account, self.clock.now()))
    }

    async fn dmt_status(&self, upstream_ref: &str, transfer: &DmtTransfer) -> Result<DmtUpstream, ProviderError> {
        self.dmt_report(upstream_ref, transfer).await
    }

    async fn bill_status(&self, upstream_ref: &str, payment: &BillPayment) -> Result<BillUpstream, ProviderError> {
        self.bill_report(upstream_ref, payment).await
    }

    fn read_callback(&self, _: Option<&str>, _: &[u8], _: Timestamp) -> Result<UpstreamCallback, CallbackError> {
        // The sandbox calls back in process: `due_callbacks`, `/sandbox/v1/advance`.
        Err(CallbackError::NotAccepted)
    }

    async fn remitter_ekyc(&self, request: &EkycRequest) -> Result<EkycOutcome, ProviderError> {
        ekyc_scenario(request.aadhaar.as_str(), self.clock.now())
    }

    async fn verify_account(&self, check: &AccountCheck) -> Result<AccountHolder, ProviderError> {
        match check.account.get(check.account.len().saturating_sub(3)..).unwrap_or("") {
            "404" => Ok(AccountHolder::NoSuchAccount),
            "503" => Err(ProviderError::Unavailable("sandbox: the bank's verification service is down".into())),
            _ => Ok(AccountHolder::Named(check.name.to_uppercase())),
        }
    }

    /// Every remitter is known, by its mobile.
    async fn query_remitter(&self, mobile: &MobileNumber) -> Result<RemitterStatus, ProviderError> {
        Ok(RemitterStatus::Registered { upstream_id: Some(mobile.as_str().to_owned()) })
    }

    async fn register_remitter(&self, signup: &RemitterSignup) -> Result<Enrolment, ProviderError> {
        Ok(Enrolment::Done(Some(signup.mobile.as_str().to_owned())))
    }

    /// It keeps no list (its ids are derived): nothing to adopt.
    async fn fetch_beneficiaries(&self, _mobile: &str) -> Result<Vec<UpstreamBeneficiary>, ProviderError> {
        Ok(Vec::new())
    }

    async fn register_beneficiary(&self, signup: &BeneficiarySignup) -> Result<Enrolment, ProviderError> {
        Ok(Enrolment::Done(Some(sandbox_bene_id(&signup.mobile, &signup.account, &signup.ifsc))))
    }

    async fn delete_beneficiary(&self, _mobile: &str, _bene_id: &str) -> Result<Enrolment, ProviderError> {
        Ok(Enrolment::Done(None))
    }

    fn claims_refunds(&self) -> bool {
        true
    }

    async fn submit_transfer_acked(&self, order: &TransferOrder) -> Result<DmtSubmitted, ProviderError> {
        let report = self.submit_transfer(order).await?;
        Ok(DmtSubmitted { report, upstream_ackno: Some(Self::upstream_ackno(&order.transfer)) })
    }

    async fn query_transfer(&self, upstream_ref: &str, transfer: &DmtTransfer) -> Result<DmtQueried, ProviderError> {
        let report = self.dmt_report(upstream_ref, transfer).await?;
        let refunded = self.was_refunded(upstream_ref);
        Ok(DmtQueried { report, upstream_ackno: Some(Self::upstream_ackno(transfer)), refunded })
    }

    /// As Paysprint: a failed transfer, named by its reference and the
    /// sandbox's `ackno`, gets a refund OTP, sent through payrail's own text
    /// path (the sandbox has no SMS of its own); a new one replaces the last.
    async fn refund_otp(&self, order: &RefundOtpOrder<'_>) -> Result<RefundOtpOutcome, ProviderError> {
        if let Some(message) = self.refund_refusal(order.upstream_ref, order.upstream_ackno, order.transfer).await {
            return Ok(RefundOtpOutcome::NotRefundable { message });
        }
        let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000u32));
        let text = format!(
            "{code} is your OTP to claim the refund of transaction {} (sandbox upstream). Do not share it.",
            order.upstream_ackno
        );
        order.notifier.send(order.mobile, &text).await.map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        if let Ok(mut otps) = self.refund_otps.lock() {
            otps.insert(order.upstream_ref.to_owned(), code);
        }
        Ok(RefundOtpOutcome::Sent)
    }

    /// As Paysprint: the OTP last sent refunds the transfer, once; a second
    /// claim hears "not found or already refunded".
    async fn claim_refund(&self, order: &RefundClaimOrder<'_>) -> Result<RefundClaimOutcome, ProviderError> {
        if let Some(message) = self.refund_refusal(order.upstream_ref, order.upstream_ackno, order.transfer).await {
            return Ok(RefundClaimOutcome::NotFoundOrRefunded { message });
        }
        let (Ok(mut otps), Ok(mut refunded)) = (self.refund_otps.lock(), self.refunded.lock()) else {
            return Err(ProviderError::Unavailable("sandbox: state unavailable".into()));
        };
        match otps.get(order.upstream_ref) {
            None => Ok(RefundClaimOutcome::Refused { message: "No refund found".into() }),
            Some(code) if code != order.otp => Ok(RefundClaimOutcome::Refused { message: "Invalid OTP".into() }),
            Some(_) => {
                otps.remove(order.upstream_ref);
                refunded.insert(order.upstream_ref.to_owned());
                Ok(RefundClaimOutcome::Refunded)
            }
        }
    }

    fn due_callbacks(&self, now: Timestamp) -> Vec<UpstreamCallback> {
        let Ok(mut returns) = self.returns.lock() else { return Vec::new() };
        let due: Vec<String> =
            returns.iter().filter(|(_, (at, _))| *at <= now.unix()).map(|(r, _)| r.clone()).collect();
        due.into_iter()
            .filter_map(|upstream_ref| {
                let (_, report) = returns.remove(&upstream_ref)?;
                // Made in process, never over HTTP: no token, so nothing to replay.
                let dedupe = format!("sandbox-return-{upstream_ref}");
                Some(UpstreamCallback { upstream_ref, report, reqid: None, dedupe })
            })
            .collect()
    }
}

/// What the sandbox's "UIDAI" says about an Aadhaar number (see the module documentation).
fn ekyc_scenario(aadhaar: &str, at: Timestamp) -> Result<EkycOutcome, ProviderError> {
    match aadhaar.get(8..11).unwrap_or("") {
        "111" => Ok(EkycOutcome::Refused { reason: "Biometric data did not match (sandbox)".into() }),
        "555" => Err(ProviderError::Unavailable("sandbox: e-KYC service unreachable".into())),
        _ => Ok(EkycOutcome::Verified {
            upstream_id: format!("SBX-EKYC-{}{}", at.unix(), aadhaar.get(8..).unwrap_or("")),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digits_before_the_aadhaar_check_digit_choose_the_ekyc_outcome() {
        use crate::domain::ekyc::AadhaarNumber;
        let at = Timestamp::from_unix(1);
        for number in ["999999990019", "234567891110", "234567895559"] {
            assert!(AadhaarNumber::parse(number).is_ok(), "{number} is a valid example");
        }
        assert!(matches!(ekyc_scenario("999999990019", at), Ok(EkycOutcome::Verified { .. })));
        assert!(matches!(ekyc_scenario("234567891110", at), Ok(EkycOutcome::Refused { .. })));
        assert!(matches!(ekyc_scenario("234567895559", at), Err(ProviderError::Unavailable(_))));
    }

    #[test]
    fn bene_ids_are_ten_digits_the_same_for_the_same_account_and_differ_between_accounts() {
        let id = sandbox_bene_id("9876543210", "50100123456782", "HDFC0001234");
        assert_eq!(id.len(), 10);
        assert!(id.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(id, sandbox_bene_id("9876543210", "50100123456782", "hdfc0001234"));
        assert_ne!(id, sandbox_bene_id("9876543211", "50100123456782", "HDFC0001234"));
        assert_ne!(id, sandbox_bene_id("9876543210", "50100123456783", "HDFC0001234"));
    }

    #[test]
    fn suffixes_choose_scenarios_and_anything_else_succeeds() {
        assert_eq!(Scenario::for_number("123456111"), Scenario::FailAtOnce);
        assert_eq!(Scenario::for_number("123456777"), Scenario::NeverDecides);
        assert_eq!(Scenario::for_number("123456789"), Scenario::Succeed);
        assert_eq!(Scenario::for_number("1"), Scenario::Succeed);
    }

    #[test]
    fn scenarios_unfold_in_steps_of_t() {
        let t = 8;
        assert_eq!(phase(Scenario::Succeed, 7, t), Phase::Pending);
        assert_eq!(phase(Scenario::Succeed, 8, t), Phase::Paid { with_reference: true });
        assert_eq!(phase(Scenario::PendingThenFail, 15, t), Phase::Pending);
        assert_eq!(phase(Scenario::PendingThenFail, 16, t), Phase::Failed);
        assert_eq!(phase(Scenario::SucceedThenReturn, 20, t), Phase::Paid { with_reference: true });
        assert_eq!(phase(Scenario::SucceedThenReturn, 24, t), Phase::Failed);
        assert_eq!(phase(Scenario::LateUtr, 8, t), Phase::Paid { with_reference: false });
        assert_eq!(phase(Scenario::LateUtr, 24, t), Phase::Paid { with_reference: true });
        assert_eq!(phase(Scenario::Timeout, 23, t), Phase::TimedOut);
        assert_eq!(phase(Scenario::Timeout, 24, t), Phase::Paid { with_reference: true });
        assert_eq!(phase(Scenario::Garbage, 1_000, t), Phase::Garbage);
        assert_eq!(phase(Scenario::NeverDecides, 1_000_000, t), Phase::Pending);
        assert_eq!(phase(Scenario::SucceedAtOnce, 0, t), Phase::Paid { with_reference: true });
    }
}
