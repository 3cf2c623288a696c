//! The change feed (issue 15): `POST /api/AOP/Changes` with
//! `RegistrationID`, optional `cursor` (from the previous page; none: from
//! the first change) and `limit` (1–500, default 100): the partner's state
//! changes after the cursor in commit order (`store::feed`),
//!
//! ```json
//! {"status":true,"response_code":1,"changes":[{"kind":"dmt","referenceid":"R-1","status":"1","at":"2026-12-04 10:00:00","event_id":"17"}],"next_cursor":"0.42"}
//! ```
//!
//! `status` in the kind's AOPay codes (`txn_status` of `TransactionStatus`,
//! `status` of `BillPaymentStatus`), `event_id` the id the change's callback
//! carries (`null` when no callback event was made for it). `next_cursor`
//! is where the next page starts: the last change's place, or the cursor
//! sent when there is nothing new, so a partner polls with it until
//! changes come. A partner whose callback endpoint was down catches up
//! from here.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::error::{json_response, ApiError};
use super::partner_call::PartnerCall;
use super::AppState;
use crate::domain::{BillStatus, DmtStatus, TxnKind};
use crate::store::feed::FeedCursor;

/// The most changes one page holds.
pub const MAX_LIMIT: u32 = 500;
/// A page's size unless `limit` says.
const DEFAULT_LIMIT: u32 = 100;

#[derive(Serialize)]
struct Change {
    kind: &'static str,
    referenceid: String,
    status: String,
    at: String,
    event_id: Option<String>,
}

#[derive(Serialize)]
struct Page {
    status: bool,
    response_code: i64,
    changes: Vec<Change>,
    next_cursor: String,
}

/// A stored state in its kind's AOPay code.
fn code(kind: TxnKind, state: &str) -> String {
    match kind {
        TxnKind::Dmt => DmtStatus::parse(state).map(|s| s.code().to_string()),
        TxnKind::Bbps => BillStatus::parse(state).map(|s| s.wire_code().to_owned()),
    }
    .unwrap_or_else(|| state.to_owned())
}

/// `Changes`.
pub async fn changes(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let cursor = match call.fields.text(&["cursor"])? {
        Some(text) => FeedCursor::decode(&text).ok_or_else(|| {
            ApiError::Validation("cursor is not one this feed gave (send next_cursor as it came)".into())
        })?,
        None => FeedCursor::default(),
    };
    let limit = match call.fields.text(&["limit"])? {
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::Validation(format!("limit must be a number from 1 to {MAX_LIMIT}")))?,
        None => DEFAULT_LIMIT,
    };
    let found = state.store.changes(call.partner, cursor, limit).await?;
    let next = found.last().map(|c| c.cursor).unwrap_or(cursor);
    let changes = found
        .into_iter()
        .map(|c| Change {
            kind: c.kind.as_str(),
            referenceid: c.reference,
            status: code(c.kind, &c.to_status),
            at: c.at.to_ist_string(),
            event_id: c.event_id.map(|id| id.to_string()),
        })
        .collect();
    let page = Page { status: true, response_code: 1, changes, next_cursor: next.encode() };
    Ok(json_response(StatusCode::OK, &page))
}
