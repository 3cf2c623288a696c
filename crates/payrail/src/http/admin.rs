//! The operator API under `/admin/v1/`, behind a bearer token
//! (`PAYRAIL_ADMIN_TOKEN`): create transactions and move them through their
//! states. Every change lands in the status history with the operator as
//! its source (`operator:<email>`, or `admin` for the bootstrap token) and
//! in the audit log with the transaction before and after.
//!
//! | method | path | body |
//! |---|---|---|
//! | POST | `/admin/v1/dmt` | `registration_id, reference_id, amount, account` [, `customer_charge`, `provider_share`] |
//! | GET | `/admin/v1/dmt/{ackno}` | |
//! | POST | `/admin/v1/dmt/{ackno}/transition` | `to`: `sent_to_bank`, `success` (+`utr`), `on_hold`, `failed`, `refunded` (+optional `refund_txn_id`); optional `reason` |
//! | POST | `/admin/v1/bbps` | `registration_id, reference_id, operator_name, ca_number, amount` [, `ad1`..`ad3`, `commission`] |
//! | GET | `/admin/v1/bbps/{txnid}` | |
//! | POST | `/admin/v1/bbps/{txnid}/transition` | `to`: `success` (+optional `operator_id`), `failed`, `refunded` (+optional `refund_txn_id`); optional `reason` |

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::admin_audit::{change_source, entry, record};
pub use super::admin_auth::Operator;
use super::body::{parse_json, LimitedBody};
use super::error::{json_response, ApiError};
use super::extract::Path;
use super::AppState;
use crate::domain::bbps::BillChange;
use crate::domain::dmt::DmtChange;
use crate::domain::operator::{bill_audit_view, dmt_audit_view};
use crate::domain::text::check_text;
use crate::domain::{
    BillPayment, BillStatus, DmtStatus, DmtTransfer, HistoryEntry, Paise, ReferenceId, RegistrationId,
};
use crate::services::transactions::{self, NewBill, NewDmt};
use crate::store::{ChangeError, InsertError};

/// The operator routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/dmt", post(create_dmt))
        .route("/admin/v1/dmt/{ackno}", get(show_dmt))
        .route("/admin/v1/dmt/{ackno}/transition", post(transition_dmt))
        .route("/admin/v1/bbps", post(create_bill))
        .route("/admin/v1/bbps/{txnid}", get(show_bill))
        .route("/admin/v1/bbps/{txnid}/transition", post(transition_bill))
}

fn bad(message: impl std::fmt::Display) -> ApiError {
    ApiError::Validation(message.to_string())
}

fn money(field: &str, text: &str) -> Result<Paise, ApiError> {
    Paise::parse(text).map_err(|e| bad(format!("{field} {e}")))
}

fn optional_money(field: &str, text: Option<&str>) -> Result<Option<Paise>, ApiError> {
    text.map(|t| money(field, t)).transpose()
}

fn partner(text: &str) -> Result<RegistrationId, ApiError> {
    RegistrationId::parse(text).map_err(|e| bad(format!("registration_id {e}")))
}

fn reference(text: &str) -> Result<ReferenceId, ApiError> {
    ReferenceId::parse(text).map_err(|e| bad(format!("reference_id {e}")))
}

/// 1 to `max` characters of text without control or bidirectional-override characters.
fn bounded(field: &str, text: &str, max: usize) -> Result<String, ApiError> {
    if text.is_empty() || text.chars().count() > max {
        return Err(bad(format!("{field} must be 1 to {max} characters")));
    }
    check_text(text).map_err(|e| bad(format!("{field} {e}")))?;
    Ok(text.to_owned())
}

fn insert_error(error: InsertError) -> ApiError {
    match error {
        InsertError::Duplicate { reference, .. } => {
            ApiError::Conflict(format!("reference {reference:?} already exists for this partner"))
        }
        InsertError::UnknownPartner { partner, .. } => ApiError::NotFound(format!("no partner {partner}")),
        InsertError::Store(e) => e.into(),
    }
}

fn change_error(error: ChangeError) -> ApiError {
    match error {
        ChangeError::NotFound => ApiError::NotFound("no such transaction".into()),
        ChangeError::Forbidden(e) => ApiError::Conflict(e.to_string()),
        ChangeError::Store(e) => e.into(),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateDmt {
    registration_id: String,
    reference_id: String,
    amount: String,
    account: String,
    customer_charge: Option<String>,
    provider_share: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn create_dmt(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request: CreateDmt = parse_json(&body)?;
    let amount = money("amount", &request.amount)?;
    if amount == Paise::ZERO {
        return Err(bad("amount must be more than zero"));
    }
    let mut new = NewDmt::in_process(
        partner(&request.registration_id)?,
        reference(&request.reference_id)?,
        amount,
        bounded("account", &request.account, 20)?,
    );
    new.customer_charge = optional_money("customer_charge", request.customer_charge.as_deref())?;
    new.provider_share = optional_money("provider_share", request.provider_share.as_deref())?;
    let transfer = transactions::create_dmt(state.store.as_ref(), &*state.clock, new, change_source(&actor))
        .await
        .map_err(insert_error)?;
    let created = dmt_audit_view(&transfer);
    let target = format!("dmt:{}", transfer.ackno);
    record(&state, entry(&state, &actor, "dmt.create", target, Some((serde_json::Value::Null, created)))).await;
    show_dmt_by_id(&state, transfer.ackno, StatusCode::CREATED).await
}

#[tracing::instrument(skip_all)]
async fn show_dmt(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Path(ackno): Path<i64>,
) -> Result<Response, ApiError> {
    show_dmt_by_id(&state, ackno, StatusCode::OK).await
}

async fn show_dmt_by_id(state: &AppState, ackno: i64, status: StatusCode) -> Result<Response, ApiError> {
    let (transfer, history) =
        state.store.dmt_with_history(ackno).await?.ok_or_else(|| ApiError::NotFound("no such transaction".into()))?;
    Ok(json_response(status, &DmtView::new(&transfer, &history)))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Transition {
    to: String,
    utr: Option<String>,
    operator_id: Option<String>,
    refund_txn_id: Option<String>,
    reason: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn transition_dmt(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    Path(ackno): Path<i64>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request: Transition = parse_json(&body)?;
    let change = match DmtStatus::parse(&request.to) {
        Some(DmtStatus::SentToBank) => DmtChange::SentToBank,
        Some(DmtStatus::Success) => {
            let utr = request.utr.as_deref().ok_or_else(|| bad("utr is required to mark a transfer successful"))?;
            DmtChange::Success { utr: Some(bounded("utr", utr, 64)?) }
        }
        Some(DmtStatus::OnHold) => DmtChange::Hold,
        Some(DmtStatus::Failed) => DmtChange::Fail,
        Some(DmtStatus::Refunded) => DmtChange::Refund { refund_txn_id: refund_id(request.refund_txn_id.as_deref())? },
        Some(DmtStatus::InProcess) | None => {
            return Err(bad("to must be one of sent_to_bank, success, on_hold, failed, refunded"))
        }
    };
    let reason = request.reason.map(|r| bounded("reason", &r, 500)).transpose()?;
    let store = state.store.as_ref();
    // The audit entry is written with the change, in its database transaction.
    transactions::change::<DmtTransfer>(
        store,
        &*state.clock,
        state.metrics(),
        ackno,
        change,
        change_source(&actor),
        reason,
    )
    .await
    .map_err(change_error)?;
    show_dmt_by_id(&state, ackno, StatusCode::OK).await
}

/// A given refund id, checked; `None` asks the store for a new one.
fn refund_id(given: Option<&str>) -> Result<Option<String>, ApiError> {
    given.map(|id| bounded("refund_txn_id", id, 64)).transpose()
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateBill {
    registration_id: String,
    reference_id: String,
    operator_name: String,
    ca_number: String,
    amount: String,
    ad1: Option<String>,
    ad2: Option<String>,
    ad3: Option<String>,
    commission: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn create_bill(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request: CreateBill = parse_json(&body)?;
    let amount = money("amount", &request.amount)?;
    if amount == Paise::ZERO {
        return Err(bad("amount must be more than zero"));
    }
    let extra = |field: &str, value: Option<String>| value.map(|v| bounded(field, &v, 128)).transpose();
    let new = NewBill {
        txnid: None,
        partner: partner(&request.registration_id)?,
        reference: reference(&request.reference_id)?,
        operator_name: bounded("operator_name", &request.operator_name, 128)?,
        ca_number: bounded("ca_number", &request.ca_number, 64)?,
        amount,
        extra: [extra("ad1", request.ad1)?, extra("ad2", request.ad2)?, extra("ad3", request.ad3)?],
        commission: optional_money("commission", request.commission.as_deref())?,
        status: BillStatus::Pending,
        operator_ref: None,
        created_at: None,
        refund_txn_id: None,
        refunded_at: None,
    };
    let payment = transactions::create_bill(state.store.as_ref(), &*state.clock, new, change_source(&actor))
        .await
        .map_err(insert_error)?;
    let created = bill_audit_view(&payment);
    let target = format!("bbps:{}", payment.txnid);
    record(&state, entry(&state, &actor, "bbps.create", target, Some((serde_json::Value::Null, created)))).await;
    show_bill_by_id(&state, payment.txnid, StatusCode::CREATED).await
}

#[tracing::instrument(skip_all)]
async fn show_bill(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Path(txnid): Path<i64>,
) -> Result<Response, ApiError> {
    show_bill_by_id(&state, txnid, StatusCode::OK).await
}

async fn show_bill_by_id(state: &AppState, txnid: i64, status: StatusCode) -> Result<Response, ApiError> {
    let (payment, history) =
        state.store.bill_with_history(txnid).await?.ok_or_else(|| ApiError::NotFound("no such transaction".into()))?;
    Ok(json_response(status, &BillView::new(&payment, &history)))
}

#[tracing::instrument(skip_all)]
async fn transition_bill(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    Path(txnid): Path<i64>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request: Transition = parse_json(&body)?;
    let change = match BillStatus::parse(&request.to) {
        Some(BillStatus::Success) => BillChange::Success {
            operator_ref: request.operator_id.map(|o| bounded("operator_id", &o, 64)).transpose()?,
        },
        Some(BillStatus::Failed) => BillChange::Fail,
        Some(BillStatus::Refunded) => {
            BillChange::Refund { refund_txn_id: refund_id(request.refund_txn_id.as_deref())? }
        }
        Some(BillStatus::Pending) | None => return Err(bad("to must be one of success, failed, refunded")),
    };
    let reason = request.reason.map(|r| bounded("reason", &r, 500)).transpose()?;
    let store = state.store.as_ref();
    // The audit entry is written with the change, in its database transaction.
    transactions::change::<BillPayment>(
        store,
        &*state.clock,
        state.metrics(),
        txnid,
        change,
        change_source(&actor),
        reason,
    )
    .await
    .map_err(change_error)?;
    show_bill_by_id(&state, txnid, StatusCode::OK).await
}

/// A history row as the operator API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct HistoryView<'a> {
    from: Option<&'a str>,
    to: &'a str,
    at: String,
    source: &'a str,
    reason: Option<&'a str>,
}

/// A history as the operator API shows it, oldest first.
pub(super) fn history_view(history: &[HistoryEntry]) -> Vec<HistoryView<'_>> {
    history
        .iter()
        .map(|h| HistoryView {
            from: h.from_status.as_deref(),
            to: &h.to_status,
            at: h.at.to_ist_string(),
            source: &h.source,
            reason: h.reason.as_deref(),
        })
        .collect()
}

#[derive(Serialize, utoipa::ToSchema)]
struct DmtView<'a> {
    ackno: i64,
    registration_id: String,
    reference_id: &'a str,
    amount: String,
    account: &'a str,
    utr: Option<&'a str>,
    status: &'static str,
    txn_status: i64,
    customer_charge: String,
    provider_share: String,
    gst: String,
    discount: String,
    commission: String,
    tds: String,
    net_commission: String,
    created_at: String,
    refund_txn_id: Option<&'a str>,
    refunded_at: Option<String>,
    history: Vec<HistoryView<'a>>,
}

impl<'a> DmtView<'a> {
    fn new(t: &'a DmtTransfer, history: &'a [HistoryEntry]) -> Self {
        let c = &t.charges;
        DmtView {
            ackno: t.ackno,
            registration_id: t.partner.to_string(),
            reference_id: t.reference.as_str(),
            amount: t.amount.to_decimal_string(),
            account: &t.account,
            utr: t.utr.as_deref(),
            status: t.status.name(),
            txn_status: t.status.code(),
            customer_charge: c.customer_charge.to_decimal_string(),
            provider_share: c.provider_share.to_decimal_string(),
            gst: c.gst.to_decimal_string(),
            discount: c.discount.to_decimal_string(),
            commission: c.commission.to_decimal_string(),
            tds: c.tds.to_decimal_string(),
            net_commission: c.net_commission.to_decimal_string(),
            created_at: t.created_at.to_ist_string(),
            refund_txn_id: t.refund_txn_id.as_deref(),
            refunded_at: t.refunded_at.map(|t| t.to_ist_string()),
            history: history_view(history),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct BillView<'a> {
    txnid: i64,
    registration_id: String,
    reference_id: &'a str,
    operator_name: &'a str,
    ca_number: &'a str,
    amount: String,
    commission: String,
    tds: String,
    status: &'static str,
    operator_id: Option<&'a str>,
    created_at: String,
    refund_txn_id: Option<&'a str>,
    refunded_at: Option<String>,
    history: Vec<HistoryView<'a>>,
}

impl<'a> BillView<'a> {
    fn new(p: &'a BillPayment, history: &'a [HistoryEntry]) -> Self {
        BillView {
            txnid: p.txnid,
            registration_id: p.partner.to_string(),
            reference_id: p.reference.as_str(),
            operator_name: &p.operator_name,
            ca_number: &p.ca_number,
            amount: p.amount.to_decimal_string(),
            commission: p.commission.to_decimal_string(),
            tds: p.tds.to_decimal_string(),
            status: p.status.name(),
            operator_id: p.operator_ref.as_deref(),
            created_at: p.created_at.to_ist_string(),
            refund_txn_id: p.refund_txn_id.as_deref(),
            refunded_at: p.refunded_at.map(|t| t.to_ist_string()),
            history: history_view(history),
        }
    }
}

/// This module's bodies, for the OpenAPI document ([`super::openapi`]).
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; CreateDmt, Transition, CreateBill, DmtView, BillView);
}
