//! Bulk status (issue 15): `POST /api/AOP/DMTV1/TransactionStatusBulk` and
//! `POST /api/AOP/BillPaymentStatusBulk`, `{"RegistrationID", "references":
//! [1 to 100 references]}` → `{"status":true,"response_code":1,"data":[…]}`
//! where each item is, byte for byte, the single endpoint's answer for that
//! reference, in request order (a reference the partner does not have, or
//! another partner's, is answered as the single endpoint answers it).
//!
//! The partner is authenticated as for every other call (one token, one
//! `reqid`); the records come from the store in one round trip for all the
//! references; undecided ones ask the upstream first, together, within the
//! status budget, as the single lookup does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::error::ApiError;
use super::partner_call::PartnerCall;
use super::status_lookup::{body_bytes, json_bytes, StatusLookup};
use super::AppState;
use crate::domain::ReferenceId;

/// The most references one bulk request may ask about.
pub const MAX_REFERENCES: usize = 100;

/// The bulk status lookup for records of kind `R`.
pub async fn bulk<R: StatusLookup>(
    State(state): State<Arc<AppState>>,
    call: PartnerCall,
) -> Result<Response, ApiError> {
    let references = references(&call)?;
    let mut unique: Vec<String> = references.iter().map(|r| r.as_str().to_owned()).collect();
    unique.sort_unstable();
    unique.dedup();
    let found = R::by_references_in(&*state.store, call.partner, &unique).await?;
    // Together, so that undecided records take one status budget, not one each.
    let mut refreshing = tokio::task::JoinSet::new();
    for record in found {
        let state = Arc::clone(&state);
        refreshing.spawn(async move { state.upstream.refresh(&*state.store, record).await });
    }
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::with_capacity(refreshing.len());
    while let Some(record) = refreshing.join_next().await {
        let record = record.map_err(|e| ApiError::Internal(e.into()))?;
        bodies.insert(record.reference_text().to_owned(), body_bytes(record.found()).await?);
    }
    // Rendered only when a reference was not found.
    let not_found = match references.iter().all(|r| bodies.contains_key(r.as_str())) {
        true => Vec::new(),
        false => body_bytes(R::not_found()).await?,
    };
    let mut body = Vec::with_capacity(64 + references.len() * 400);
    body.extend_from_slice(br#"{"status":true,"response_code":1,"data":["#);
    for (i, reference) in references.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(bodies.get(reference.as_str()).unwrap_or(&not_found));
    }
    body.extend_from_slice(b"]}");
    Ok(json_bytes(StatusCode::OK, body))
}

/// The request's `references`: 1 to [`MAX_REFERENCES`], each a string or a
/// JSON number of digits, as the single endpoints read a reference.
fn references(call: &PartnerCall) -> Result<Vec<ReferenceId>, ApiError> {
    let items =
        call.fields.array(&["references"])?.ok_or_else(|| ApiError::Validation("references is missing".into()))?;
    if items.is_empty() || items.len() > MAX_REFERENCES {
        return Err(ApiError::Validation(format!(
            "references must hold 1 to {MAX_REFERENCES} references (it holds {})",
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let text = match item {
                Value::String(text) => text.clone(),
                Value::Number(n) if n.is_u64() => n.to_string(),
                _ => return Err(ApiError::Validation(format!("references[{i}] must be a string"))),
            };
            ReferenceId::parse(&text).map_err(|e| ApiError::Validation(format!("references[{i}] {e}")))
        })
        .collect()
}
