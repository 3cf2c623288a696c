//! The BBPS partner surface beyond the status page (SPEC §7): the operator
//! list, bill fetch and bill payment. The shapes below are the wire contract
//! (README, "BBPS").

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::error::{json_response, ApiError};
use super::partner_call::{AmountRule, Fields, PartnerCall};
use super::AppState;
use crate::services::billers::{self, Biller};
use crate::services::bills::{self, PayBill};

#[derive(Serialize)]
struct OperatorList {
    status: bool,
    response_code: i64,
    message: &'static str,
    data: Vec<Operator>,
}

#[derive(Serialize)]
struct Operator {
    id: String,
    name: &'static str,
    category: &'static str,
    /// The name of `canumber` for this biller.
    displayname: &'static str,
    /// The names of `ad1`.. for this biller.
    ad_params: Vec<&'static str>,
    fetch_bill: bool,
}

impl From<&Biller> for Operator {
    fn from(b: &Biller) -> Self {
        Operator {
            id: b.id.to_string(),
            name: b.name,
            category: b.category,
            displayname: b.params.first().copied().unwrap_or("Account Number"),
            ad_params: b.params.iter().skip(1).copied().collect(),
            fetch_bill: b.fetch,
        }
    }
}

/// `POST /api/AOP/BillPaymentOperators` `{category?}`.
pub async fn operators(call: PartnerCall) -> Result<Response, ApiError> {
    let category = call.fields.text(&["category"])?;
    let data: Vec<Operator> = billers::in_category(category.as_deref()).map(Operator::from).collect();
    let body = OperatorList { status: true, response_code: 1, message: "Operators fetched", data };
    Ok(json_response(StatusCode::OK, &body))
}

#[derive(Serialize)]
struct FetchedBillBody {
    status: bool,
    response_code: i64,
    amount: String,
    name: String,
    duedate: String,
    billnumber: String,
    billdate: String,
    message: &'static str,
}

fn operator_and_account(fields: &Fields) -> Result<(i64, String), ApiError> {
    Ok((fields.id(&["operator", "operatorid"])?, fields.code(&["canumber"])?))
}

/// The biller's further customer parameters, `ad1`..`ad3`.
fn customer_params(fields: &Fields) -> Result<[Option<String>; 3], ApiError> {
    Ok([fields.text(&["ad1"])?, fields.text(&["ad2"])?, fields.text(&["ad3"])?])
}

/// `POST /api/AOP/FetchBilPaymentDetails` `{operator, canumber, ad1?, ad2?, ad3?}`.
pub async fn fetch_bill(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let (operator, ca_number) = operator_and_account(&call.fields)?;
    let extra = customer_params(&call.fields)?;
    let bill = bills::fetch_bill(&*state.upstream.provider, operator, &ca_number, &extra).await?;
    let body = FetchedBillBody {
        status: true,
        response_code: 1,
        amount: bill.amount.to_amount_string(),
        name: bill.customer_name,
        duedate: bill.due_date,
        billnumber: bill.bill_number,
        billdate: bill.bill_date,
        message: "Bill fetched",
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// As SPEC §7 lists it.
#[derive(Serialize)]
struct PaybillBody {
    status: bool,
    response_code: i64,
    operatorid: Option<String>,
    ackno: String,
    opening: String,
    closing: String,
    message: &'static str,
}

/// `POST /api/AOP/BillPaymentPaybill` `{operator, canumber, amount, referenceid, ad1?, ad2?, ad3?}`.
pub async fn paybill(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let f = &call.fields;
    let (operator, ca_number) = operator_and_account(f)?;
    let request = PayBill {
        operator,
        ca_number,
        amount: f.amount(&["amount"], AmountRule::WithPaise)?,
        reference: f.reference()?,
        extra: customer_params(f)?,
    };
    let debited = bills::pay_bill(&*state.store, &*state.clock, &state.upstream, call.partner, request).await?;
    let body = PaybillBody {
        status: true,
        response_code: 1,
        operatorid: debited.record.operator_ref.clone(),
        ackno: debited.record.txnid.to_string(),
        opening: debited.wallet.opening.to_decimal_string(),
        closing: debited.wallet.closing.to_decimal_string(),
        message: debited.record.status.message(),
    };
    Ok(json_response(StatusCode::OK, &body))
}
