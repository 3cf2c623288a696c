//! Reverse lookups (issue 15), each answering the status shape of
//! `TransactionStatus` (SPEC §4), only ever for the calling partner's own
//! transfers:
//!
//! - `POST /api/AOP/DMTV1/TransactionByUtr` (`RegistrationID`, `utr`): the
//!   partner's transfer the bank paid under this UTR, answered exactly as
//!   `TransactionStatus` answers for its reference (the newest, should two
//!   share one); `{"status":false,"response_code":2,"message":"Transaction
//!   not found"}` when the partner has none.
//! - `POST /api/AOP/DMTV1/TransactionsByMobile` (`RegistrationID`,
//!   `MobileNumber`, `from`, `to` as India-time dates `YYYY-MM-DD`, both days
//!   included, optional `limit` 1–100, default 50, and `cursor`): the
//!   partner's transfers for that remitter, newest first,
//!   `{"status":true,"response_code":1,"data":[…],"next_cursor":…}`, each
//!   item `TransactionStatus`'s answer; `next_cursor` is `null` on the last
//!   page, else the value to send as `cursor` for the next.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::error::ApiError;
use super::partner_call::PartnerCall;
use super::status_lookup::{body_bytes, json_bytes, StatusLookup};
use super::AppState;
use crate::domain::{DmtTransfer, TxnKind};
use crate::services::search::{encode_cursor, search_page, SearchParams};
use crate::store::search::{Found, SearchFilter};

/// The transfers a page of `TransactionsByMobile` holds unless `limit` says.
const DEFAULT_LIMIT: &str = "50";
/// The most a page may hold.
const MAX_LIMIT: u32 = 100;

/// `TransactionByUtr`.
pub async fn by_utr(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let utr = call.fields.code(&["utr", "UTR"])?;
    let filter =
        SearchFilter { kind: Some(TxnKind::Dmt), partner: Some(call.partner), utr: Some(utr), ..Default::default() };
    let page = search_page(&*state.store, &filter, None, 1).await?;
    Ok(match page.rows.into_iter().next() {
        Some(Found::Dmt(transfer, _)) => state.upstream.refresh(&*state.store, transfer).await.found(),
        _ => DmtTransfer::not_found(),
    })
}

/// `TransactionsByMobile`.
pub async fn by_mobile(State(state): State<Arc<AppState>>, call: PartnerCall) -> Result<Response, ApiError> {
    let fields = &call.fields;
    let mobile = fields.mobile(&["MobileNumber", "mobile"])?;
    let from = fields.required_text(&["from"])?;
    let to = fields.required_text(&["to"])?;
    for (name, value) in [("from", &from), ("to", &to)] {
        let date_only = value.len() == 10 && crate::domain::Timestamp::parse_ist_date(value).is_ok();
        if !date_only {
            return Err(ApiError::Validation(format!("{name} must be an India-time date, YYYY-MM-DD")));
        }
    }
    let limit = fields.text(&["limit"])?.unwrap_or_else(|| DEFAULT_LIMIT.to_owned());
    let mut pairs = vec![
        ("kind".to_owned(), "dmt".to_owned()),
        ("mobile".to_owned(), mobile.as_str().to_owned()),
        ("from".to_owned(), from),
        ("to".to_owned(), to),
        ("limit".to_owned(), limit),
    ];
    if let Some(cursor) = fields.text(&["cursor"])? {
        pairs.push(("cursor".to_owned(), cursor));
    }
    let params = SearchParams::parse(&pairs).map_err(|e| ApiError::Validation(e.to_string()))?;
    if params.limit > MAX_LIMIT {
        return Err(ApiError::Validation(format!("limit must be a number from 1 to {MAX_LIMIT}")));
    }
    let filter = SearchFilter { partner: Some(call.partner), ..params.filter };
    let page = search_page(&*state.store, &filter, params.cursor, params.limit).await?;
    let mut body = br#"{"status":true,"response_code":1,"data":["#.to_vec();
    let mut first = true;
    for row in page.rows {
        let Found::Dmt(transfer, _) = row else { continue };
        if !first {
            body.push(b',');
        }
        first = false;
        body.extend_from_slice(&body_bytes(transfer.found()).await?);
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    let next = page.next.map(encode_cursor);
    serde_json::to_writer(&mut body, &next).map_err(|e| ApiError::Internal(e.into()))?;
    body.push(b'}');
    Ok(json_bytes(StatusCode::OK, body))
}
