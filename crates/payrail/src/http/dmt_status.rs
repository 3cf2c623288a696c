//! `POST /api/AOP/DMTV1/TransactionStatus` (SPEC §4).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use payrail_client::wire::DmtStatusBody;

use super::auth::Caller;
use super::body::LimitedBody;
use super::error::{json_response, status_first, ApiError};
use super::status_lookup::{self, StatusLookup};
use super::AppState;
use crate::domain::DmtTransfer;

/// Parse → authenticate → look up (→ ask the upstream if undecided) → render.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn dmt_status(state: State<Arc<AppState>>, caller: Caller, body: LimitedBody) -> Result<Response, ApiError> {
    // Boxed: axum moves the handler's future by value several times, and
    // this one is large (3% of a lookup's instructions were those copies).
    Box::pin(status_lookup::status::<DmtTransfer>(state, caller, body)).await
}

impl StatusLookup for DmtTransfer {
    const REFERENCE_FIELD: &'static str = "ReferanceID";

    fn found(&self) -> Response {
        json_response(StatusCode::OK, &render(self))
    }

    fn not_found() -> Response {
        status_first(StatusCode::OK, 2, "Transaction not found")
    }

    fn reference_text(&self) -> &str {
        self.reference.as_str()
    }

    fn wire_code(state: &str) -> Option<String> {
        crate::domain::DmtStatus::parse(state).map(|s| s.code().to_string())
    }
}

/// The found body, field for field as the seed shows it.
fn render(transfer: &DmtTransfer) -> DmtStatusBody {
    let charges = &transfer.charges;
    DmtStatusBody {
        status: true,
        response_code: 1,
        utr: transfer.utr.clone(),
        amount: transfer.amount.to_amount_string(),
        ackno: itoa::Buffer::new().format(transfer.ackno).to_owned(),
        referenceid: transfer.reference.as_str().to_owned(),
        account: transfer.account.clone(),
        txn_status: itoa::Buffer::new().format(transfer.status.code()).to_owned(),
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
