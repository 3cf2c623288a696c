//! `POST /api/AOP/DMTV1/PennyDrop`: a bank account verified at the bank for
//! a fee, with the fields of Paysprint's `benenameverify` call. Parse →
//! (authenticated by [`PartnerCall`]) → service → render; the shapes below
//! are the wire contract (docs/API.md, "Penny drop").

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::beneficiaries::{details, REGISTRATION_DETAILS};
use super::error::{json_response, ApiError};
use super::partner_call::{Fields, PartnerCall};
use super::AppState;
use crate::domain::penny_drop::PennyDropStatus;
use crate::domain::remitter::{AccountNumber, Ifsc};
use crate::domain::Timestamp;
use crate::services::penny_drops::{self, PennyDropDone, PennyDropRequest, Target};

fn invalid(field: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::Validation(format!("{field} {error}"))
}

fn optional_id(f: &Fields, names: &[&str]) -> Result<Option<i64>, ApiError> {
    match f.text(names)? {
        None => Ok(None),
        Some(_) => f.id(names).map(Some),
    }
}

fn request(f: &Fields, now: Timestamp) -> Result<PennyDropRequest, ApiError> {
    let account = f.text(&["accno"])?.map(|a| AccountNumber::parse(&a).map_err(|e| invalid("accno", e))).transpose()?;
    let bank_id = optional_id(f, &["bankid"])?;
    let name = f.text(&["benename"])?;
    // Checked whenever sent, with bene_id too: a malformed field is a 400.
    let ifsc = f.text(&["ifsccode"])?.map(|i| Ifsc::parse(&i).map_err(|e| invalid("ifsccode", e))).transpose()?;
    let target = match optional_id(f, &["bene_id", "BeneID"])? {
        Some(id) => Target::Registered { id, account, bank_id, name },
        None => Target::Account {
            account: account.ok_or_else(|| invalid("accno", "is missing (or send bene_id)"))?,
            bank_id: bank_id.ok_or_else(|| invalid("bankid", "is missing (or send bene_id)"))?,
            ifsc,
            name: name.ok_or_else(|| invalid("benename", "is missing (or send bene_id)"))?,
        },
    };
    Ok(PennyDropRequest {
        mobile: f.mobile(&["mobile", "MobileNumber", "MobileNo"])?,
        reference: f.reference()?,
        target,
        details: details(f, &REGISTRATION_DETAILS, now)?,
    })
}

/// A penny drop as answered.
#[derive(Serialize, utoipa::ToSchema)]
struct PennyDropBody {
    status: bool,
    response_code: i64,
    message: &'static str,
    data: PennyDropData,
}

#[derive(Serialize, utoipa::ToSchema)]
struct PennyDropData {
    referenceid: String,
    bene_id: Option<String>,
    bankid: String,
    accno: String,
    benename: Option<String>,
    verified: &'static str,
    charge: String,
    refunded: &'static str,
    opening: String,
    closing: String,
}

fn render(done: PennyDropDone) -> PennyDropBody {
    let drop = &done.drop;
    let (status, response_code, message) = match &drop.status {
        PennyDropStatus::Verified { .. } => (true, 1, "Account verified at the bank"),
        PennyDropStatus::NotFound => (false, 2, "The bank holds no such account"),
        PennyDropStatus::Failed | PennyDropStatus::Pending => {
            (false, 0, "The bank could not be asked; the charge was refunded to the wallet")
        }
    };
    let data = PennyDropData {
        referenceid: drop.reference.as_str().to_owned(),
        bene_id: drop.beneficiary_id.map(|id| id.to_string()),
        bankid: drop.bank_id.to_string(),
        accno: drop.account.clone(),
        benename: drop.status.name_at_bank().map(str::to_owned),
        verified: if drop.status.name_at_bank().is_some() { "1" } else { "0" },
        charge: drop.fee.to_decimal_string(),
        refunded: if drop.status == PennyDropStatus::Failed { "1" } else { "0" },
        opening: done.opening.to_decimal_string(),
        closing: done.closing.to_decimal_string(),
    };
    PennyDropBody { status, response_code, message, data }
}

/// `POST /api/AOP/DMTV1/PennyDrop` `{mobile, accno, bankid, benename,
/// referenceid, pincode?, address?, dob?, gst_state?, bene_id?, ifsccode?}`.
#[tracing::instrument(skip_all, fields(partner = %call.partner, reference = tracing::field::Empty))]
pub async fn penny_drop(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let request = request(&call.fields, state.clock.now())?;
    let (store, clock, upstream) = (&*state.store, &*state.clock, &state.upstream);
    let done = penny_drops::penny_drop(store, clock, upstream, call.partner, request).await?;
    Ok(json_response(StatusCode::OK, &render(done)))
}

/// This module's bodies, for the OpenAPI document ([`super::openapi`]).
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; PennyDropBody);
}
