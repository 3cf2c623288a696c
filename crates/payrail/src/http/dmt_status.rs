//! `POST /api/AOP/DMTV1/TransactionStatus` (SPEC §4).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use payrail_client::wire::DmtStatusBody;

use super::auth::{authenticate_looked_up, claimed_partner, precheck, Caller};
use super::body::{parse_json, reference_field, registration_field, LimitedBody, StatusRequest};
use super::error::{json_response, status_first, ApiError};
use super::AppState;
use crate::domain::{DmtTransfer, Partner, Timestamp};
use crate::store::lookup::ReqidOutcome;

/// Parse → authenticate → look up (→ ask the upstream if undecided) → render.
pub async fn dmt_status(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request: StatusRequest<'_> = parse_json(&body)?;
    request.unambiguous()?;
    let registration = registration_field(request.registration)?;
    let reference = reference_field(request.reference, "ReferanceID")?;
    // Partner and transfer come in one round trip, with the token's `reqid`
    // when the request passes every other check against the partner as last
    // read (see `store::lookup`); nothing of the transfer is used unless
    // authentication passes.
    let now = Timestamp::now();
    let check = |partner: &Partner| precheck(&state, &caller, partner, now);
    let found = state.store.lookup_dmt_checked(claimed_partner(&registration)?, reference.as_str(), &check).await?;
    let (partner, transfer, reqid) = match found {
        Some(found) => (Some(found.partner), found.record, found.reqid),
        None => (None, None, ReqidOutcome::NotRecorded),
    };
    authenticate_looked_up(&state, &caller, partner.as_ref(), reqid).await?;
    state.admit(partner.as_ref().map(|p| p.registration_id))?;
    Ok(match transfer {
        Some(transfer) => {
            // Undecided transfers ask the upstream first, within the status budget.
            let transfer = state.upstream.refresh_dmt(&*state.store, transfer).await;
            json_response(StatusCode::OK, &render(&transfer))
        }
        None => status_first(StatusCode::OK, 2, "Transaction not found"),
    })
}

/// The found body, field for field as the seed shows it.
fn render(transfer: &DmtTransfer) -> DmtStatusBody {
    let charges = &transfer.charges;
    DmtStatusBody {
        status: true,
        response_code: 1,
        utr: transfer.utr.clone(),
        amount: transfer.amount.to_amount_string(),
        ackno: transfer.ackno.to_string(),
        referenceid: transfer.reference.as_str().to_owned(),
        account: transfer.account.clone(),
        txn_status: transfer.status.code().to_string(),
        message: transfer.status.message().to_owned(),
        customercharge: charges.customer_charge.to_decimal_string(),
        gst: charges.gst.to_decimal_string(),
        discount: charges.discount.to_decimal_string(),
        tds: charges.tds.to_decimal_string(),
        netcommission: charges.net_commission.to_decimal_string(),
        daterefunded: transfer.refunded_at.map(|t| t.to_ist_string()),
        refundtxnid: transfer.refund_txn_id.clone(),
    }
}
