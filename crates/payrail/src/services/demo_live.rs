//! Live sandbox transactions for the demo: a few transfers and bill payments
//! made at start-up through the same services a partner's requests use, so
//! that a new user can watch them settle on the sandbox upstream.

use std::sync::Mutex;

use anyhow::Context as _;
use async_trait::async_trait;

use super::bills::{self, PayBill};
use super::ekyc;
use super::notifier::{Notifier, NotifyError, Texts};
use super::remittance::{self, Confirmation, NewBeneficiary, PresentedOtp, Registration, TransferIntent};
use super::upstream::provider::EkycRequest;
use super::upstream::sync::Upstream;
use crate::domain::ekyc::AadhaarNumber;
use crate::domain::otp::TextLimits;
use crate::domain::remitter::{AccountNumber, Ifsc, MobileNumber, TransferMode};
use crate::domain::remitter_details::RemitterDetails;
use crate::domain::{BillMode, Clock, Paise, ReferenceId, RegistrationId};
use crate::store::Store;

/// The live demo transactions: (kind, reference, what the sandbox does with it).
pub const LIVE: [(&str, &str, &str); 5] = [
    ("dmt", "LIVE-DMT-1", "sent to bank, then success with a UTR after about 8 s"),
    ("dmt", "LIVE-DMT-2", "success, then returned by the bank (failed) after about 24 s"),
    ("dmt", "LIVE-DMT-3", "never decided upstream: on hold once the poll schedule runs out"),
    ("bbps", "LIVE-BILL-1", "pending, then paid after about 8 s"),
    ("bbps", "LIVE-BILL-2", "pending, then failed and refunded to the wallet after about 16 s"),
];

const MOBILE: &str = "9000000001";
/// UIDAI's test Aadhaar number, which the sandbox verifies.
const DEMO_AADHAAR: &str = "999999990019";

/// Keeps the last OTP instead of sending it: the demo confirms its own transfers.
#[derive(Default)]
struct KeptOtp(Mutex<Option<String>>);

#[async_trait]
impl Notifier for KeptOtp {
    async fn send(&self, _to: &MobileNumber, message: &str) -> Result<(), NotifyError> {
        if let Ok(mut kept) = self.0.lock() {
            *kept = Some(message.chars().take(6).collect());
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "OTPs kept in memory for the demo's own transfers".into()
    }
}

/// The demo's texts: kept in memory, counted against the usual limits.
fn texts(otp: &KeptOtp) -> Texts<'_> {
    Texts { notifier: otp, limits: TextLimits::default(), metrics: None }
}

impl KeptOtp {
    fn take(&self) -> String {
        self.0.lock().ok().and_then(|mut kept| kept.take()).unwrap_or_default()
    }
}

/// Makes the [`LIVE`] transactions for `partner` (funded beforehand).
pub async fn make_live_transactions(
    store: &dyn Store,
    clock: &dyn Clock,
    upstream: &Upstream,
    partner: RegistrationId,
) -> anyhow::Result<()> {
    let otp = KeptOtp::default();
    let mobile = MobileNumber::parse(MOBILE).context("demo mobile")?;
    if store.find_remitter(partner, &mobile).await?.is_none() {
        // As a partner does: the remitter's e-KYC, then registration with its OTP and KycId.
        let request = EkycRequest {
            mobile: mobile.clone(),
            aadhaar: AadhaarNumber::parse(DEMO_AADHAAR)?,
            latitude: "28.61".into(),
            longitude: "77.20".into(),
            fingerprint: "<PidData>demo</PidData>".into(),
        };
        let stateresp = ekyc::remitter_ekyc(store, clock, texts(&otp), &*upstream.provider, partner, request).await?;
        let registration = Registration {
            mobile: mobile.clone(),
            otp: otp.take(),
            stateresp: stateresp.clone(),
            kyc_id: stateresp,
            first_name: Some("Demo".into()),
            last_name: Some("Remitter".into()),
        };
        remittance::register_remitter(store, clock, &*upstream.provider, partner, registration).await?;
    }
    for (reference, account) in
        [("LIVE-DMT-1", "500100200301"), ("LIVE-DMT-2", "500100200333"), ("LIVE-DMT-3", "500100200777")]
    {
        live_transfer(store, clock, upstream, &otp, partner, reference, account).await?;
    }
    for (reference, ca_number) in [("LIVE-BILL-1", "150099990001"), ("LIVE-BILL-2", "150099990222")] {
        let request = PayBill {
            operator: 1,
            ca_number: ca_number.into(),
            amount: Paise::rupees(750),
            reference: ReferenceId::parse(reference)?,
            extra: [None, None, None],
            mode: BillMode::Online,
            location: None,
            echoed: None,
        };
        bills::pay_bill(store, clock, upstream, partner, request).await?;
    }
    Ok(())
}

async fn live_transfer(
    store: &dyn Store,
    clock: &dyn Clock,
    upstream: &Upstream,
    otp: &KeptOtp,
    partner: RegistrationId,
    reference: &str,
    account: &str,
) -> anyhow::Result<()> {
    let mobile = &MobileNumber::parse(MOBILE).context("demo mobile")?;
    let beneficiary = NewBeneficiary {
        mobile: mobile.clone(),
        name: "Demo Beneficiary".into(),
        account: AccountNumber::parse(account)?,
        ifsc: Ifsc::parse("SBIN0001234")?,
        bank_name: Some("State Bank of India".into()),
        bank_id: Some(101),
        details: RemitterDetails::default(),
        claimed_verified: false,
    };
    let beneficiary = remittance::add_beneficiary(store, clock, &*upstream.provider, partner, beneficiary).await?;
    let intent = TransferIntent {
        mobile: mobile.clone(),
        beneficiary_id: beneficiary.id,
        mode: TransferMode::Imps,
        amount: Paise::rupees(1000),
        details: RemitterDetails::default(),
        location: None,
    };
    let stateresp = remittance::send_transfer_otp(store, clock, texts(otp), partner, &intent).await?;
    let code = otp.take();
    let presented = PresentedOtp { stateresp: &stateresp, code: &code };
    let confirmation = Confirmation { reference: ReferenceId::parse(reference)?, otp: presented, pipe: None };
    remittance::transfer(store, clock, upstream, partner, intent, confirmation).await?;
    Ok(())
}
