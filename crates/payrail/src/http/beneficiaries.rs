//! DMT V1 beneficiaries and the bank list (SPEC §7.2): `RegisterBaneficiary`
//! at AOPay's path with its lower-case fields (and the older
//! `DMTV1/RegisterBeneficiary` with its names), `FetchBeneficiary`,
//! `FetchBeneficiaryBeneID` and `BankList`. Each handler reads as parse →
//! (authenticated by [`PartnerCall`]) → service → render; the shapes below
//! are the wire contract (docs/API.md, "Beneficiaries").

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::error::{json_response, ApiError};
use super::partner_call::{Fields, PartnerCall};
use super::AppState;
use crate::domain::banks::{find_bank, settle_bank, BankInfo, BANKS};
use crate::domain::remitter::{AccountNumber, Bank, Beneficiary, Ifsc};
use crate::domain::remitter_details::{parse_coordinate, BirthDate, GstState, Pincode, RemitterDetails};
use crate::domain::Timestamp;
use crate::services::remittance::{self, NewBeneficiary};

/// The field names one path reads, each with its aliases; the first names
/// the field in a refusal.
struct BeneficiaryNames {
    mobile: &'static [&'static str],
    name: &'static [&'static str],
    account: &'static [&'static str],
    ifsc: &'static [&'static str],
}

/// AOPay's `RegisterBaneficiary`: lower-case names first.
const AOPAY_NAMES: BeneficiaryNames = BeneficiaryNames {
    mobile: &["mobile", "MobileNo", "MobileNumber"],
    name: &["benename", "BeneName", "name"],
    account: &["accno", "AccountNo", "AccountNumber"],
    ifsc: &["ifsccode", "IFSC"],
};

/// The older `DMTV1/RegisterBeneficiary`: its own names first.
const OLDER_NAMES: BeneficiaryNames = BeneficiaryNames {
    mobile: &["MobileNo", "MobileNumber", "mobile"],
    name: &["BeneName", "benename", "name"],
    account: &["AccountNo", "AccountNumber", "accno"],
    ifsc: &["IFSC", "ifsccode"],
};

#[derive(Serialize, utoipa::ToSchema)]
struct BeneficiaryAdded<'a> {
    status: bool,
    response_code: i64,
    message: &'a str,
    beneid: String,
}

/// `POST /api/AOP/RegisterBaneficiary` `{mobile, benename, bankid, accno,
/// ifsccode, verified, gst_state, dob, address, pincode}`.
#[tracing::instrument(skip_all, fields(partner = %call.partner))]
pub async fn register_baneficiary(state: State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    register(state, call, &AOPAY_NAMES).await
}

/// `POST /api/AOP/DMTV1/RegisterBeneficiary` `{MobileNo, BeneName, AccountNo, IFSC, BankName?}`
/// (and every field of [`register_baneficiary`]).
#[tracing::instrument(skip_all, fields(partner = %call.partner))]
pub async fn register_beneficiary(state: State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    register(state, call, &OLDER_NAMES).await
}

async fn register(
    State(state): State<Arc<AppState>>,
    call: PartnerCall,
    names: &BeneficiaryNames,
) -> Result<Response, ApiError> {
    let new = new_beneficiary(&call.fields, names, state.clock.now())?;
    let provider = &*state.upstream.provider;
    let added = remittance::add_beneficiary(&*state.store, &*state.clock, provider, call.partner, new).await?;
    let body = BeneficiaryAdded {
        status: true,
        response_code: 1,
        message: "Beneficiary registered successfully",
        beneid: added.id.to_string(),
    };
    Ok(json_response(StatusCode::OK, &body))
}

fn invalid(field: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::Validation(format!("{field} {error}"))
}

fn new_beneficiary(f: &Fields, names: &BeneficiaryNames, now: Timestamp) -> Result<NewBeneficiary, ApiError> {
    let account = AccountNumber::parse(&f.required_text(names.account)?).map_err(|e| invalid(names.account[0], e))?;
    let ifsc = Ifsc::parse(&f.required_text(names.ifsc)?).map_err(|e| invalid(names.ifsc[0], e))?;
    let bank_id = match f.text(&["bankid", "BankID"])? {
        None => None,
        Some(_) => Some(f.id(&["bankid", "BankID"])?),
    };
    let bank = settle_bank(bank_id, ifsc.as_str()).map_err(|e| match e {
        crate::domain::banks::BankError::UnknownBank => invalid("bankid", e),
        other => invalid(names.ifsc[0], other),
    })?;
    let claimed_verified = match f.text(&["verified"])?.as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return Err(invalid("verified", "must be \"0\" or \"1\"")),
    };
    Ok(NewBeneficiary {
        mobile: f.mobile(names.mobile)?,
        name: f.required_text(names.name)?,
        account,
        ifsc,
        bank_name: f.text(&["BankName", "bankname"])?,
        bank_id: bank.map(|b| b.id),
        details: details(f, &REGISTRATION_DETAILS, now)?,
        claimed_verified,
    })
}

/// Where a page sends the remitter's date of birth, address and pincode
/// (`gst_state` is spelt the same everywhere), and the date's separator.
pub(crate) struct DetailFields {
    dob: &'static str,
    separator: char,
    address: &'static str,
    pincode: &'static str,
}

/// The registration pages' `dob` (`DD-MM-YYYY`), `address`, `pincode`.
pub(crate) const REGISTRATION_DETAILS: DetailFields =
    DetailFields { dob: "dob", separator: '-', address: "address", pincode: "pincode" };

/// `TransactionSendOtp`'s and `Transaction`'s `DOB` (`DD/MM/YYYY`), `Address`, `Pincode`.
pub(crate) const TRANSFER_DETAILS: DetailFields =
    DetailFields { dob: "DOB", separator: '/', address: "Address", pincode: "Pincode" };

/// The remitter's date of birth, address, pincode and `gst_state`, named
/// as `names` says, each checked where sent.
pub(crate) fn details(f: &Fields, names: &DetailFields, now: Timestamp) -> Result<RemitterDetails, ApiError> {
    let dob = f.text(&[names.dob])?;
    let dob = dob.map(|t| BirthDate::parse(&t, names.separator, now).map_err(|e| invalid(names.dob, e)));
    let pincode = f.text(&[names.pincode])?.map(|t| Pincode::parse(&t).map_err(|e| invalid(names.pincode, e)));
    let gst_state = f.text(&["gst_state"])?.map(|t| GstState::parse(&t).map_err(|e| invalid("gst_state", e)));
    Ok(RemitterDetails {
        dob: dob.transpose()?,
        address: f.text(&[names.address])?,
        pincode: pincode.transpose()?,
        gst_state: gst_state.transpose()?,
    })
}

/// `Latitude` and `Longitute` (sic; `Longitude` too): both or neither.
pub(crate) fn location(f: &Fields) -> Result<Option<(String, String)>, ApiError> {
    let latitude = f.text(&["Latitude", "Lattitude"])?;
    let longitude = f.text(&["Longitute", "Longitude"])?;
    match (latitude, longitude) {
        (None, None) => Ok(None),
        (Some(lat), Some(long)) => Ok(Some((
            parse_coordinate(&lat, 90).map_err(|e| invalid("Latitude", e))?,
            parse_coordinate(&long, 180).map_err(|e| invalid("Longitute", e))?,
        ))),
        (None, Some(_)) => Err(invalid("Latitude", "is missing (sent with Longitute)")),
        (Some(_), None) => Err(invalid("Longitute", "is missing (sent with Latitude)")),
    }
}

/// `Transaction`'s optional `pipe`: `bank1`, `bank2` or `bank3`.
pub(crate) fn pipe(f: &Fields) -> Result<Option<Bank>, ApiError> {
    let Some(text) = f.text(&["pipe"])? else { return Ok(None) };
    let number = text.to_ascii_lowercase().strip_prefix("bank").and_then(|n| n.parse::<i64>().ok());
    number.and_then(Bank::from_number).map(Some).ok_or_else(|| invalid("pipe", "must be bank1, bank2 or bank3"))
}

/// One beneficiary as `FetchBeneficiary` and `FetchBeneficiaryBeneID` show it.
#[derive(Serialize, utoipa::ToSchema)]
struct BeneficiaryData {
    bene_id: String,
    bankid: Option<String>,
    bankname: Option<String>,
    name: String,
    accno: String,
    ifsc: String,
    verified: &'static str,
    banktype: Option<&'static str>,
    paytm: bool,
}

impl From<Beneficiary> for BeneficiaryData {
    fn from(b: Beneficiary) -> Self {
        let bank: Option<&BankInfo> = b.bank_id.and_then(find_bank);
        BeneficiaryData {
            bene_id: b.id.to_string(),
            bankid: b.bank_id.map(|id| id.to_string()),
            bankname: bank.map(|bank| bank.name.to_owned()).or(b.bank_name),
            name: b.name,
            accno: b.account.as_str().to_owned(),
            ifsc: b.ifsc.as_str().to_owned(),
            verified: if b.verified_name.is_some() { "1" } else { "0" },
            banktype: bank.map(|bank| bank.kind.as_str()),
            paytm: bank.is_some_and(BankInfo::is_paytm),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct BeneficiaryList {
    status: bool,
    response_code: i64,
    message: &'static str,
    data: Vec<BeneficiaryData>,
}

/// `POST /api/AOP/DMTV1/FetchBeneficiary` `{MobileNumber}` (also `mobile`, `MobileNo`).
#[tracing::instrument(skip_all, fields(partner = %call.partner))]
pub async fn fetch_beneficiary(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    // `MobileNo` first: refusals name it, as they did before AOPay's names.
    let mobile = call.fields.mobile(&["MobileNo", "MobileNumber", "mobile"])?;
    let list = remittance::beneficiaries(&*state.store, call.partner, &mobile).await?;
    let data = list.into_iter().map(BeneficiaryData::from).collect();
    let body = BeneficiaryList { status: true, response_code: 1, message: "Beneficiaries fetched", data };
    Ok(json_response(StatusCode::OK, &body))
}

#[derive(Serialize, utoipa::ToSchema)]
struct OneBeneficiary {
    status: bool,
    response_code: i64,
    message: &'static str,
    data: BeneficiaryData,
}

/// `POST /api/AOP/DMTV1/FetchBeneficiaryBeneID` `{MobileNumber, BeneID}`.
#[tracing::instrument(skip_all, fields(partner = %call.partner))]
pub async fn fetch_beneficiary_bene_id(
    State(state): State<Arc<AppState>>,
    call: PartnerCall,
) -> Result<Response, ApiError> {
    let mobile = call.fields.mobile(&["MobileNumber", "mobile", "MobileNo"])?;
    let id = call.fields.id(&["BeneID", "beneid", "bene_id"])?;
    let found = remittance::beneficiary(&*state.store, call.partner, &mobile, id).await?;
    let body = OneBeneficiary { status: true, response_code: 1, message: "Beneficiary fetched", data: found.into() };
    Ok(json_response(StatusCode::OK, &body))
}

/// One bank as `BankList` shows it.
#[derive(Serialize, utoipa::ToSchema)]
struct BankData {
    bankid: String,
    bankname: &'static str,
    #[schema(value_type = Vec<String>)]
    ifsc_prefix: &'static [&'static str],
    imps: bool,
    neft: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
struct BankListBody {
    status: bool,
    response_code: i64,
    message: &'static str,
    data: Vec<BankData>,
}

/// `POST /api/AOP/DMTV1/BankList` `{}`: every bank a beneficiary can be at.
#[tracing::instrument(skip_all, fields(partner = %_call.partner))]
pub async fn bank_list(_call: PartnerCall) -> Result<Response, ApiError> {
    let data = BANKS
        .iter()
        .map(|b| BankData {
            bankid: b.id.to_string(),
            bankname: b.name,
            ifsc_prefix: b.ifsc_prefixes,
            imps: b.imps,
            neft: b.neft,
        })
        .collect();
    let body = BankListBody { status: true, response_code: 1, message: "Bank list fetched", data };
    Ok(json_response(StatusCode::OK, &body))
}

/// This module's bodies, for the OpenAPI document ([`super::openapi`]).
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; BeneficiaryAdded, BeneficiaryList, OneBeneficiary, BankListBody);
}
