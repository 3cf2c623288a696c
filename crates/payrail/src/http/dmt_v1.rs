//! The DMT V1 partner surface beyond the status page (SPEC §7): remitters,
//! beneficiaries, OTP-confirmed transfers and refunds. Each handler reads as
//! parse → (authenticated by [`PartnerCall`]) → service → render; the
//! request and response shapes below are the wire contract (README, "DMT V1").

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::error::{json_response, ApiError};
use super::partner_call::{AmountRule, Fields, PartnerCall};
use super::{beneficiaries, AppState};
use crate::domain::ekyc::AadhaarNumber;
use crate::domain::remitter::{PerBank, Remitter, TransferMode};
use crate::domain::{DmtTransfer, Paise, ReferenceId, Timestamp};
use crate::services::ekyc;
use crate::services::remittance::{self, Confirmation, PresentedOtp, Registration, RemitterQuery, TransferIntent};
use crate::services::upstream::provider::EkycRequest;

/// `status`, `response_code`, `message`: a plain success.
#[derive(Serialize, utoipa::ToSchema)]
struct Done<'a> {
    status: bool,
    response_code: i64,
    message: &'a str,
}

fn done(message: &str) -> Response {
    json_response(StatusCode::OK, &Done { status: true, response_code: 1, message })
}

/// An OTP was sent: the token to send back with it.
#[derive(Serialize, utoipa::ToSchema)]
struct OtpSent<'a> {
    status: bool,
    response_code: i64,
    stateresp: &'a str,
    message: &'a str,
}

#[derive(Serialize, utoipa::ToSchema)]
struct RemitterFound {
    status: bool,
    response_code: i64,
    message: &'static str,
    data: RemitterData,
}

/// As the DMT status page's 200 schema shows it.
#[derive(Serialize, utoipa::ToSchema)]
struct RemitterData {
    fname: Option<String>,
    lname: Option<String>,
    mobile: String,
    status: &'static str,
    bank3_limit: i64,
    bank3_status: &'static str,
    bank2_limit: i64,
    bank1_limit: i64,
}

fn rupees(paise: Paise) -> i64 {
    paise.get() / 100
}

/// The 202 of the remitter flows (SPEC §7.1): the mobile is not
/// registered and an OTP for its registration went out under `stateresp`.
fn registration_otp_sent(stateresp: &str) -> Response {
    let message = "Remitter not registered OTP sent for new registration.";
    json_response(StatusCode::ACCEPTED, &OtpSent { status: false, response_code: 0, stateresp, message })
}

/// The remitter and its limits, as `QueryRemitter` and `RegisterRemitter` answer them.
fn remitter_found(remitter: Remitter, remaining: PerBank, message: &'static str) -> Response {
    let data = RemitterData {
        fname: remitter.first_name,
        lname: remitter.last_name,
        mobile: remitter.mobile.as_str().to_owned(),
        status: "Active",
        bank3_limit: rupees(remaining.bank3),
        bank3_status: "Active",
        bank2_limit: rupees(remaining.bank2),
        bank1_limit: rupees(remaining.bank1),
    };
    json_response(StatusCode::OK, &RemitterFound { status: true, response_code: 1, message, data })
}

/// `POST /api/AOP/DMTV1/QueryRemitter` `{MobileNumber}`: 200 with the remitter,
/// or 202 (SPEC §7.1) after sending a registration OTP.
#[tracing::instrument(skip_all, fields(partner = %call.partner))]
pub async fn query_remitter(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let mobile = call.fields.mobile(&["MobileNo", "MobileNumber", "mobile"])?;
    let found = remittance::query_remitter(&*state.store, &*state.clock, state.texts(), call.partner, &mobile).await?;
    Ok(match found {
        RemitterQuery::Registered { remitter, remaining } => remitter_found(remitter, remaining, "Remitter found"),
        RemitterQuery::OtpSent { stateresp } => registration_otp_sent(&stateresp),
    })
}

/// The longest `FingerPrintData` taken (a PID block is a few KiB; the body's own limit is 64 KiB).
const MAX_FINGERPRINT: usize = 60_000;

/// A coordinate as sent (`"89.77"`): a decimal within ±`bound`.
fn coordinate(fields: &Fields, names: &[&str], bound: f64) -> Result<String, ApiError> {
    let text = fields.required_text(names)?;
    let well_formed = {
        let digits = text.strip_prefix('-').unwrap_or(&text);
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        all_digits(whole) && all_digits(fraction) && whole.len() <= 3 && fraction.len() <= 10
    };
    match text.parse::<f64>() {
        Ok(value) if well_formed && value.abs() <= bound => Ok(text),
        _ => Err(ApiError::Validation(format!("{} must be a decimal from -{bound} to {bound}", names[0]))),
    }
}

/// `POST /api/AOP/DMTV1/RemitterEKyc` `{MobileNumber, Lattitude, Longitude,
/// AadhaarNumber, FingerPrintData}`: the e-KYC of a new remitter, then 202
/// (SPEC §7.1) with the `stateresp` that is also the `KycId`.
#[tracing::instrument(skip_all, fields(partner = %call.partner))]
pub async fn remitter_ekyc(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let f = &call.fields;
    let request = EkycRequest {
        mobile: f.mobile(&["MobileNumber", "MobileNo", "mobile"])?,
        aadhaar: AadhaarNumber::parse(&f.required_text(&["AadhaarNumber", "aadhaar"])?)
            .map_err(|e| ApiError::Validation(format!("AadhaarNumber {e}")))?,
        latitude: coordinate(f, &["Lattitude", "Latitude", "lat"], 90.0)?,
        longitude: coordinate(f, &["Longitude", "long"], 180.0)?,
        fingerprint: f.opaque(&["FingerPrintData", "piddata"], MAX_FINGERPRINT)?.into(),
    };
    let provider = &*state.upstream.provider;
    let stateresp =
        ekyc::remitter_ekyc(&*state.store, &*state.clock, state.texts(), provider, call.partner, request).await?;
    Ok(registration_otp_sent(&stateresp))
}

/// `POST /api/AOP/DMTV1/RegisterRemitter` `{MobileNo, OTP, Stateresp, KycId, FirstName?, LastName?}`:
/// 200 with the new remitter, as `QueryRemitter` shows it.
#[tracing::instrument(skip_all, fields(partner = %call.partner))]
pub async fn register_remitter(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let f = &call.fields;
    let registration = Registration {
        mobile: f.mobile(&["MobileNo", "MobileNumber", "mobile"])?,
        otp: f.otp()?,
        stateresp: f.stateresp()?,
        kyc_id: f.code(&["KycId", "kyc_id"])?,
        first_name: f.text(&["FirstName", "fname"])?,
        last_name: f.text(&["LastName", "lname"])?,
    };
    let provider = &*state.upstream.provider;
    let (remitter, remaining) =
        remittance::register_remitter(&*state.store, &*state.clock, provider, call.partner, registration).await?;
    Ok(remitter_found(remitter, remaining, "Remitter registered successfully"))
}

/// `POST /api/AOP/DMTV1/DeleteBeneficiary` `{MobileNo, BeneID}`.
#[tracing::instrument(skip_all, fields(partner = %call.partner))]
pub async fn delete_beneficiary(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let mobile = call.fields.mobile(&["MobileNo", "MobileNumber", "mobile"])?;
    let id = call.fields.id(&["BeneID", "beneid"])?;
    let provider = &*state.upstream.provider;
    remittance::delete_beneficiary(&*state.store, &*state.clock, provider, call.partner, &mobile, id).await?;
    Ok(done("Beneficiary deleted successfully"))
}

fn intent(fields: &Fields, now: Timestamp) -> Result<TransferIntent, ApiError> {
    let mode = fields.required_text(&["Txntype", "txntype"])?;
    Ok(TransferIntent {
        mobile: fields.mobile(&["MobileNumber", "MobileNo", "mobile"])?,
        beneficiary_id: fields.id(&["BeneID", "beneid"])?,
        mode: TransferMode::parse(&mode).ok_or_else(|| ApiError::Validation("Txntype must be IMPS or NEFT".into()))?,
        amount: fields.amount(&["Amount"], AmountRule::WholeRupees)?,
        details: beneficiaries::details(fields, &beneficiaries::TRANSFER_DETAILS, now)?,
        location: beneficiaries::location(fields)?,
    })
}

/// `POST /api/AOP/DMTV1/TransactionSendOtp` `{MobileNumber, BeneID, Txntype,
/// Amount, Pincode?, Address?, DOB?, Latitude?, Longitute?}`: 202 with the
/// `stateresp` that `Transaction` sends back with the OTP.
#[tracing::instrument(skip_all, fields(partner = %call.partner))]
pub async fn transaction_send_otp(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let intent = intent(&call.fields, state.clock.now())?;
    let stateresp =
        remittance::send_transfer_otp(&*state.store, &*state.clock, state.texts(), call.partner, &intent).await?;
    let message = "OTP sent to the remitter for the transaction, valid for 90 seconds.";
    let body = OtpSent { status: true, response_code: 1, stateresp: &stateresp, message };
    Ok(json_response(StatusCode::ACCEPTED, &body))
}

/// A transfer as `Transaction` and `ClaimRefund` answer it.
#[derive(Serialize, utoipa::ToSchema)]
struct TransferBody {
    status: bool,
    response_code: i64,
    ackno: String,
    referenceid: String,
    utr: Option<String>,
    amount: String,
    account: String,
    txn_status: String,
    message: &'static str,
    customercharge: String,
    gst: String,
    tds: String,
    netcommission: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    opening: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    closing: Option<String>,
    refundtxnid: Option<String>,
    daterefunded: Option<String>,
}

fn transfer_body(t: &DmtTransfer, wallet: Option<(Paise, Paise)>) -> TransferBody {
    TransferBody {
        status: true,
        response_code: 1,
        ackno: t.ackno.to_string(),
        referenceid: t.reference.as_str().to_owned(),
        utr: t.utr.clone(),
        amount: t.amount.to_amount_string(),
        account: t.account.clone(),
        txn_status: t.status.code().to_string(),
        message: t.status.message(),
        customercharge: t.charges.customer_charge.to_decimal_string(),
        gst: t.charges.gst.to_decimal_string(),
        tds: t.charges.tds.to_decimal_string(),
        netcommission: t.charges.net_commission.to_decimal_string(),
        opening: wallet.map(|w| w.0.to_decimal_string()),
        closing: wallet.map(|w| w.1.to_decimal_string()),
        refundtxnid: t.refund_txn_id.clone(),
        daterefunded: t.refunded_at.map(|at| at.to_ist_string()),
    }
}

/// `POST /api/AOP/DMTV1/Transaction` `{MobileNumber, BeneID, Txntype, Amount,
/// referenceid, OTP, Stateresp, pipe?}` and `TransactionSendOtp`'s details.
#[tracing::instrument(skip_all, fields(partner = %call.partner, reference = tracing::field::Empty, ackno = tracing::field::Empty))]
pub async fn transaction(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let f = &call.fields;
    let intent = intent(f, state.clock.now())?;
    let (reference, otp, stateresp, pipe) = (f.reference()?, f.otp()?, f.stateresp()?, beneficiaries::pipe(f)?);
    let confirmation = Confirmation { reference, otp: PresentedOtp { stateresp: &stateresp, code: &otp }, pipe };
    let (store, clock, upstream) = (&*state.store, &*state.clock, &state.upstream);
    let debited = remittance::transfer(store, clock, upstream, call.partner, intent, confirmation).await?;
    tracing::Span::current().record("ackno", debited.record.ackno);
    let wallet = (debited.wallet.opening, debited.wallet.closing);
    Ok(json_response(StatusCode::OK, &transfer_body(&debited.record, Some(wallet))))
}

/// The transfer a refund call names: by `referenceid`, by payrail's
/// `ackno`, or both (AOPay's pages send both, its curl only `ackno`), which
/// must then name the same transfer. Another partner's `ackno` is answered
/// as an unknown one.
async fn refund_reference(state: &AppState, call: &PartnerCall) -> Result<ReferenceId, ApiError> {
    let f = &call.fields;
    // Read before the lookup: a malformed referenceid is a 400, never "not found".
    let sent = if f.has(&["referenceid", "ReferanceID", "refid"])? { Some(f.reference()?) } else { None };
    let by_ackno = match f.optional_ackno()? {
        None => None,
        Some(ackno) => {
            let found = state.store.dmt_with_history(ackno).await?.map(|(t, _)| t);
            let owned = found.filter(|t| t.partner == call.partner);
            Some(owned.ok_or(remittance::DmtError::TransferNotFound)?.reference)
        }
    };
    match (by_ackno, sent) {
        (Some(reference), None) => Ok(reference),
        (None, Some(reference)) => Ok(reference),
        (None, None) => f.reference(),
        (Some(reference), Some(sent)) if sent == reference => Ok(reference),
        (Some(_), Some(_)) => Err(ApiError::Validation("ackno and referenceid name different transactions".into())),
    }
}

/// `POST /api/AOP/DMTV1/RefundOtp` `{referenceid, ackno}` (either or both): OTP to the remitter of a failed transfer.
#[tracing::instrument(skip_all, fields(partner = %call.partner, reference = tracing::field::Empty, ackno = tracing::field::Empty))]
pub async fn refund_otp(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let reference = refund_reference(&state, &call).await?;
    let stateresp = remittance::send_refund_otp(
        &*state.store,
        &*state.clock,
        &state.upstream,
        state.texts(),
        call.partner,
        &reference,
    )
    .await?;
    let body = OtpSent { status: true, response_code: 1, stateresp: &stateresp, message: "OTP sent to the remitter" };
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /api/AOP/DMTV1/ClaimRefund` `{referenceid, ackno, otp, Stateresp}`
/// (`referenceid` or `ackno`; `Stateresp` optional: the newest refund OTP
/// of the transfer): refunds to the wallet.
#[tracing::instrument(skip_all, fields(partner = %call.partner, reference = tracing::field::Empty, ackno = tracing::field::Empty))]
pub async fn claim_refund(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let f = &call.fields;
    // The fields are checked before the transfer is looked up: a bad one is a 400, never "not found".
    let (otp, stateresp) = (f.otp()?, f.optional_stateresp()?);
    let reference = refund_reference(&state, &call).await?;
    let (store, clock, upstream) = (&*state.store, &*state.clock, &state.upstream);
    let refunded =
        remittance::claim_refund(store, clock, upstream, call.partner, &reference, &otp, stateresp.as_deref()).await?;
    tracing::Span::current().record("ackno", refunded.ackno);
    Ok(json_response(StatusCode::OK, &transfer_body(&refunded, None)))
}

/// This module's bodies, for the OpenAPI document ([`super::openapi`]).
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; Done, OtpSent, RemitterFound, TransferBody);
}
