//! `POST /api/AOP/BillPaymentStatus` (SPEC §5).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use payrail_client::wire::{BillStatusBody, BillStatusData};

use super::auth::Caller;
use super::body::LimitedBody;
use super::error::{code_first, json_response, ApiError};
use super::status_lookup::{self, StatusLookup};
use super::AppState;
use crate::domain::{BillPayment, BillStatus};

/// Parse → authenticate → look up (→ ask the upstream if undecided) → render.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn bill_status(state: State<Arc<AppState>>, caller: Caller, body: LimitedBody) -> Result<Response, ApiError> {
    // Boxed: axum moves the handler's future by value several times, and
    // this one is large (3% of a lookup's instructions were those copies).
    Box::pin(status_lookup::status::<BillPayment>(state, caller, body)).await
}

impl StatusLookup for BillPayment {
    const REFERENCE_FIELD: &'static str = "referenceid";

    fn found(&self) -> Response {
        json_response(StatusCode::OK, &render(self))
    }

    fn not_found() -> Response {
        code_first(StatusCode::OK, 0, "No Transaction found")
    }

    fn reference_text(&self) -> &str {
        self.reference.as_str()
    }

    fn wire_code(state: &str) -> Option<String> {
        BillStatus::parse(state).map(|s| s.wire_code().to_owned())
    }
}

/// The found body, field for field as the seed shows it.
fn render(payment: &BillPayment) -> BillStatusBody {
    let refunded = payment.status == BillStatus::Refunded;
    BillStatusBody {
        response_code: 1,
        status: true,
        data: BillStatusData {
            txnid: itoa::Buffer::new().format(payment.txnid).to_owned(),
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
