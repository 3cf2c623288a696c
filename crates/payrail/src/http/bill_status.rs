//! `POST /api/AOP/BillPaymentStatus` (SPEC §5).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use payrail_client::wire::{BillStatusBody, BillStatusData};

use super::auth::{authenticate_looked_up, claimed_partner, precheck, Caller};
use super::body::{parse_json, reference_field, registration_field, LimitedBody, StatusRequest};
use super::error::{code_first, json_response, ApiError};
use super::AppState;
use crate::domain::{BillPayment, BillStatus, Partner, Timestamp};
use crate::store::lookup::ReqidOutcome;

/// Parse → authenticate → look up (→ ask the upstream if undecided) → render.
pub async fn bill_status(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request: StatusRequest<'_> = parse_json(&body)?;
    request.unambiguous()?;
    let registration = registration_field(request.registration)?;
    let reference = reference_field(request.reference, "referenceid")?;
    // Partner and payment come in one round trip, with the token's `reqid`
    // when the request passes every other check against the partner as last
    // read (see `store::lookup`); nothing of the payment is used unless
    // authentication passes.
    let now = Timestamp::now();
    let check = |partner: &Partner| precheck(&state, &caller, partner, now);
    let found = state.store.lookup_bill_checked(claimed_partner(&registration)?, reference.as_str(), &check).await?;
    let (partner, payment, reqid) = match found {
        Some(found) => (Some(found.partner), found.record, found.reqid),
        None => (None, None, ReqidOutcome::NotRecorded),
    };
    authenticate_looked_up(&state, &caller, partner.as_ref(), reqid).await?;
    state.admit(partner.as_ref().map(|p| p.registration_id))?;
    Ok(match payment {
        Some(payment) => {
            // Undecided payments ask the upstream first, within the status budget.
            let payment = state.upstream.refresh_bill(&*state.store, payment).await;
            json_response(StatusCode::OK, &render(&payment))
        }
        None => code_first(StatusCode::OK, 0, "No Transaction found"),
    })
}

/// The found body, field for field as the seed shows it.
fn render(payment: &BillPayment) -> BillStatusBody {
    let refunded = payment.status == BillStatus::Refunded;
    BillStatusBody {
        response_code: 1,
        status: true,
        data: BillStatusData {
            txnid: payment.txnid.to_string(),
            operatorname: payment.operator_name.clone(),
            canumber: payment.ca_number.clone(),
            amount: payment.amount.to_amount_string(),
            ad1: payment.ad1.clone(),
            ad2: payment.ad2.clone(),
            ad3: payment.ad3.clone(),
            comm: payment.commission.to_decimal_string(),
            tds: payment.tds.to_decimal_string(),
            status: payment.status.wire_code().to_owned(),
            refid: payment.reference.as_str().to_owned(),
            operatorid: payment.operator_ref.clone(),
            dateadded: payment.created_at.to_ist_string(),
            refunded: if refunded { "1" } else { "0" }.to_owned(),
            refundtxnid: if refunded { payment.refund_txn_id.clone() } else { None },
            daterefunded: if refunded { payment.refunded_at.map(|t| t.to_ist_string()) } else { None },
        },
        message: payment.status.message().to_owned(),
    }
}
