//! The BBPS partner surface beyond the status page (SPEC §7.3): the operator
//! list, bill fetch and bill payment, at AOPay's paths with AOPay's field
//! names. The shapes below are the wire contract (docs/API.md, "BBPS").

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::{json_response, ApiError};
use super::partner_call::{AmountRule, Fields, PartnerCall};
use super::AppState;
use crate::domain::bbps::is_degrees;
use crate::domain::text::check_text;
use crate::domain::{BillMode, BillStatus, GeoPoint, Paise};
use crate::services::billers::{self, Biller};
use crate::services::bills::{self, PayBill};
use crate::services::upstream::provider::FetchedBill;

#[derive(Serialize, utoipa::ToSchema)]
struct OperatorList {
    status: bool,
    response_code: i64,
    message: &'static str,
    data: Vec<Operator>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Biller)]
struct Operator {
    id: String,
    name: &'static str,
    category: &'static str,
    /// The name of `canumber` for this biller.
    displayname: &'static str,
    /// The names of `ad1`.. for this biller.
    #[schema(value_type = Vec<String>)]
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

/// `mode`: `online` or `offline` in any case; `online` when not sent.
fn mode(fields: &Fields) -> Result<BillMode, ApiError> {
    match fields.text(&["mode"])? {
        None => Ok(BillMode::Online),
        Some(text) => BillMode::parse(&text)
            .ok_or_else(|| ApiError::Validation(format!("mode must be online or offline, not {text:?}"))),
    }
}

/// `category`, spelt as the catalogue has it; an unknown one is refused
/// naming every known one.
fn category(fields: &Fields) -> Result<Option<&'static str>, ApiError> {
    let Some(name) = fields.text(&["category"])? else { return Ok(None) };
    billers::category(&name).map(Some).ok_or_else(|| {
        let known = billers::categories().join(", ");
        ApiError::Validation(format!("category {name:?} is unknown: the categories are {known}"))
    })
}

/// `POST /api/AOP/BillPaymentOperatorsList` (also `BillPaymentOperators`)
/// `{mode?, category?}`.
#[tracing::instrument(skip_all, fields(partner = %call.partner))]
pub async fn operators(call: PartnerCall) -> Result<Response, ApiError> {
    mode(&call.fields)?;
    let category = category(&call.fields)?;
    let data: Vec<Operator> = billers::in_category(category).map(Operator::from).collect();
    let body = OperatorList { status: true, response_code: 1, message: "Operators fetched", data };
    Ok(json_response(StatusCode::OK, &body))
}

/// `bill_fetch`, in both directions: as fetch answers it and as paybill
/// takes it back.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct BillFetchBody {
    bill_amount: String,
    #[serde(rename = "billnetamount")]
    bill_net_amount: String,
    #[serde(rename = "billdate")]
    bill_date: Option<String>,
    due_date: String,
    accept_payment: bool,
    accept_part_pay: bool,
    cell_number: Option<String>,
    user_name: String,
}

impl From<&FetchedBill> for BillFetchBody {
    fn from(bill: &FetchedBill) -> Self {
        BillFetchBody {
            bill_amount: bill.amount.to_amount_string(),
            bill_net_amount: bill.net_amount.to_amount_string(),
            bill_date: bill.bill_date.clone(),
            due_date: bill.due_date.clone(),
            accept_payment: bill.accept_payment,
            accept_part_pay: bill.accept_part_pay,
            cell_number: bill.cell_number.clone(),
            user_name: bill.user_name.clone(),
        }
    }
}

/// As AOPay's page shows it: no `response_code`.
#[derive(Serialize, utoipa::ToSchema)]
struct FetchedBillBody {
    status: bool,
    amount: String,
    name: String,
    duedate: String,
    bill_fetch: BillFetchBody,
    message: &'static str,
}

fn operator_and_account(fields: &Fields) -> Result<(i64, String), ApiError> {
    Ok((fields.id(&["operator", "operatorid"])?, fields.code(&["canumber"])?))
}

/// The biller's further customer parameters, `ad1`..`ad3`.
fn customer_params(fields: &Fields) -> Result<[Option<String>; 3], ApiError> {
    Ok([fields.text(&["ad1"])?, fields.text(&["ad2"])?, fields.text(&["ad3"])?])
}

/// `POST /api/AOP/FetchBilPaymentDetails` `{operator, canumber, mode?, ad1?, ad2?, ad3?}`.
#[tracing::instrument(skip_all, fields(partner = %call.partner))]
pub async fn fetch_bill(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let (operator, ca_number) = operator_and_account(&call.fields)?;
    let extra = customer_params(&call.fields)?;
    let mode = mode(&call.fields)?;
    let bill = bills::fetch_bill(&*state.upstream.provider, operator, &ca_number, &extra, mode).await?;
    let body = FetchedBillBody {
        status: true,
        amount: bill.amount.to_amount_string(),
        name: bill.customer_name.clone(),
        duedate: bill.due_date.clone(),
        bill_fetch: BillFetchBody::from(&bill),
        message: "Bill fetched",
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// As SPEC §7.3 lists it: `ackno` a JSON integer.
#[derive(Serialize, utoipa::ToSchema)]
struct PaybillBody {
    status: bool,
    response_code: i64,
    operatorid: Option<String>,
    ackno: i64,
    opening: String,
    closing: String,
    message: &'static str,
}

/// `status` and `response_code` for a payment's outcome (AOPay's BBPS
/// overview): 1 success, 2 pending, 0 failed and refunded. A failure whose
/// refund is still to come is not final yet: 2.
fn outcome(status: BillStatus) -> (bool, i64) {
    match status {
        BillStatus::Success => (true, 1),
        BillStatus::Pending | BillStatus::Failed => (true, 2),
        BillStatus::Refunded => (false, 0),
    }
}

/// `latitude` and `longitude`, both or neither.
fn location(fields: &Fields) -> Result<Option<GeoPoint>, ApiError> {
    let degrees = |name: &str, limit: u32| -> Result<Option<String>, ApiError> {
        match fields.text(&[name])? {
            Some(text) if !is_degrees(&text, limit) => {
                Err(ApiError::Validation(format!("{name} must be decimal degrees within ±{limit}")))
            }
            other => Ok(other),
        }
    };
    match (degrees("latitude", 90)?, degrees("longitude", 180)?) {
        (Some(latitude), Some(longitude)) => Ok(Some(GeoPoint { latitude, longitude })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ApiError::Validation("longitude is missing: latitude was sent".into())),
        (None, Some(_)) => Err(ApiError::Validation("latitude is missing: longitude was sent".into())),
    }
}

/// The `bill_fetch` a partner sends back: every field fetch answers, with
/// its JSON type (names in any case); `billdate` and `cellNumber`, which a
/// biller may not give, may be `null` as fetch answered them.
fn echoed_bill(fields: &Fields) -> Result<Option<FetchedBill>, ApiError> {
    let Some(object) = fields.object(&["bill_fetch"])? else { return Ok(None) };
    let echo = Echo(object);
    let user_name = echo.text("userName")?;
    Ok(Some(FetchedBill {
        amount: echo.amount("billAmount")?,
        net_amount: echo.amount("billnetamount")?,
        bill_date: echo.optional_text("billdate")?,
        due_date: echo.text("dueDate")?,
        accept_payment: echo.flag("acceptPayment")?,
        accept_part_pay: echo.flag("acceptPartPay")?,
        cell_number: echo.optional_text("cellNumber")?,
        customer_name: user_name.clone(),
        user_name,
    }))
}

/// A `bill_fetch` object's fields.
struct Echo<'a>(&'a Map<String, Value>);

impl Echo<'_> {
    /// The field's value, `null` included; refused when absent or sent twice.
    fn get(&self, name: &str) -> Result<&Value, ApiError> {
        let mut found = self.0.iter().filter(|(key, _)| key.eq_ignore_ascii_case(name));
        match (found.next(), found.next()) {
            (Some((_, value)), None) => Ok(value),
            (Some(_), Some(_)) => Err(ApiError::Validation(format!("bill_fetch.{name} is given more than once"))),
            (None, _) => Err(ApiError::Validation(format!("bill_fetch.{name} is missing"))),
        }
    }

    fn optional_text(&self, name: &str) -> Result<Option<String>, ApiError> {
        let wrong = |what: &str| ApiError::Validation(format!("bill_fetch.{name} {what}"));
        let text = match self.get(name)? {
            Value::Null => return Ok(None),
            Value::String(text) => text,
            _ => return Err(wrong("must be a string")),
        };
        check_text(text).map_err(|e| wrong(&e.to_string()))?;
        if text.chars().count() > 100 {
            return Err(wrong("must be at most 100 characters"));
        }
        Ok(Some(text.clone()))
    }

    fn text(&self, name: &str) -> Result<String, ApiError> {
        self.optional_text(name)?.ok_or_else(|| ApiError::Validation(format!("bill_fetch.{name} is missing")))
    }

    fn amount(&self, name: &str) -> Result<Paise, ApiError> {
        let text = self.text(name)?;
        Paise::parse(&text).map_err(|e| ApiError::Validation(format!("bill_fetch.{name} {e}")))
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        self.get(name)?
            .as_bool()
            .ok_or_else(|| ApiError::Validation(format!("bill_fetch.{name} must be true or false")))
    }
}

/// `POST /api/AOP/BillPaymentPaybill` `{operator, canumber, amount,
/// referenceid, latitude?, longitude?, mode?, bill_fetch?, ad1?, ad2?, ad3?}`.
#[tracing::instrument(skip_all, fields(partner = %call.partner, reference = tracing::field::Empty, txnid = tracing::field::Empty))]
pub async fn paybill(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let f = &call.fields;
    let (operator, ca_number) = operator_and_account(f)?;
    let request = PayBill {
        operator,
        ca_number,
        amount: f.amount(&["amount"], AmountRule::WithPaise)?,
        reference: f.reference()?,
        extra: customer_params(f)?,
        mode: mode(f)?,
        location: location(f)?,
        echoed: echoed_bill(f)?,
    };
    let debited = bills::pay_bill(&*state.store, &*state.clock, &state.upstream, call.partner, request).await?;
    tracing::Span::current().record("txnid", debited.record.txnid);
    let record = &debited.record;
    let (status, response_code) = outcome(record.status);
    // A payment refunded before this answer: the wallet is back where it was.
    let closing = match record.status {
        BillStatus::Refunded => debited.wallet.closing + record.amount,
        _ => debited.wallet.closing,
    };
    let body = PaybillBody {
        status,
        response_code,
        operatorid: record.operator_ref.clone(),
        ackno: record.txnid,
        opening: debited.wallet.opening.to_decimal_string(),
        closing: closing.to_decimal_string(),
        message: record.status.message(),
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// This module's bodies, for the OpenAPI document ([`super::openapi`]).
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; OperatorList, FetchedBillBody, PaybillBody);
}
