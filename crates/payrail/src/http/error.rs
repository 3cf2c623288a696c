//! The one place where failures become wire codes (SPEC §2).
//!
//! Policy: a client sees what it can act on (which field is wrong; that
//! authentication failed) and nothing else. Internal and store failures are
//! answered with a fixed body and logged here, once, with their cause.
//! Authentication failures never say which check failed.
//!
//! Business refusals of the DMT V1 and BBPS endpoints (SPEC §7) use the same
//! shape, `{"status":false,"response_code":N,"message":...}`, with these codes:
//!
//! | HTTP | code | meaning |
//! |---|---|---|
//! | 200 | 2 | remitter, beneficiary, transaction or biller not found |
//! | 409 | 12 | `referenceid` already used by this partner (message names the ackno/txnid) |
//! | 402 | 13 | wallet balance too low (message gives balance and cost) |
//! | 422 | 14 | a limit: per transaction, monthly per remitter, bill amount |
//! | 422 | 15 | OTP wrong, expired, used, or issued for another request; too many OTP texts to the mobile |
//! | 409 | 16 | not allowed in the current state (already registered, account already a beneficiary, refund of a transfer that has not failed) |
//! | 502 | 17 | the OTP could not be sent, or the biller did not answer |

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::services::bills::BillError;
use crate::services::penny_drops::PennyDropError;
use crate::services::remittance::DmtError;
use crate::store::StoreError;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad JSON, a missing or malformed field, a body over 64 KiB: 400, code 8.
    #[error("{0}")]
    Validation(String),
    /// Unknown or suspended partner, address not allowed, token missing or
    /// for another partner, wrong `Authorisedkey`: 401, code 11.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The token's signature segment is not base64url: 401, code 7.
    #[error("invalid signature encoding")]
    SignatureEncoding,
    /// Any other token defect: 401, code 10.
    #[error("invalid token")]
    InvalidToken,
    /// The partner's rate limit is spent: 429, code 9, with `Retry-After`.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a request will be admitted again.
        retry_after_secs: u64,
    },
    /// Operator API: no such record (404).
    #[error("{0}")]
    NotFound(String),
    /// Operator API: the state machine or a uniqueness rule refuses it (409).
    #[error("{0}")]
    Conflict(String),
    /// A partner request refused for a business reason (see the table above).
    #[error("{message}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The `response_code`.
        code: i64,
        /// What went wrong, for the partner.
        message: String,
    },
    /// The store is unreachable or busy: 503, code 9, with `Retry-After`.
    #[error("store unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: 500, code 9.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(e) => ApiError::Unavailable(e),
            StoreError::Other(e) => ApiError::Internal(e.context(StoreFault)),
        }
    }
}

/// Marks an internal failure that came from the store, so that its answer
/// is counted as one (`payrail_store_errors_total{kind="other"}`).
#[derive(Debug)]
struct StoreFault;

impl std::fmt::Display for StoreFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("store failure")
    }
}

/// In an answer's extensions: the store failed (`unavailable` or `other`),
/// for the edge to count.
#[derive(Debug, Clone, Copy)]
pub struct StoreFailed(pub &'static str);

impl ApiError {
    fn refused(status: StatusCode, code: i64, message: impl ToString) -> Self {
        ApiError::Refused { status, code, message: message.to_string() }
    }
}

impl From<DmtError> for ApiError {
    fn from(error: DmtError) -> Self {
        let message = error.to_string();
        match error {
            DmtError::RemitterNotFound | DmtError::BeneficiaryNotFound | DmtError::TransferNotFound => {
                ApiError::refused(StatusCode::OK, 2, message)
            }
            DmtError::Duplicate { .. } => ApiError::refused(StatusCode::CONFLICT, 12, message),
            DmtError::InsufficientFunds { .. } => ApiError::refused(StatusCode::PAYMENT_REQUIRED, 13, message),
            DmtError::Limit(_) => ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, 14, message),
            DmtError::Kyc(_) => ApiError::Validation(message),
            DmtError::EkycRefused(_) | DmtError::UpstreamRefused(_) => {
                ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, 18, message)
            }
            DmtError::UpstreamUnavailable(cause) => {
                tracing::warn!(error = %cause, "registration or deletion not answered by the upstream");
                ApiError::refused(StatusCode::BAD_GATEWAY, 17, message)
            }
            DmtError::EkycUnavailable(cause) => {
                tracing::warn!(error = %cause, "e-KYC not answered by the upstream");
                ApiError::refused(StatusCode::BAD_GATEWAY, 17, message)
            }
            DmtError::Otp(_) | DmtError::TooManyTexts { .. } | DmtError::TooManyEkyc { .. } => {
                ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, 15, message)
            }
            DmtError::AlreadyRegistered | DmtError::BeneficiaryExists { .. } | DmtError::State(_) => {
                ApiError::refused(StatusCode::CONFLICT, 16, message)
            }
            DmtError::SubmissionsStopped => ApiError::refused(StatusCode::BAD_GATEWAY, 17, message),
            DmtError::RefundRefused(_) => ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, 15, message),
            DmtError::UpstreamUnanswered(cause) => {
                tracing::warn!(error = %cause, "refund not answered by the upstream");
                ApiError::refused(StatusCode::BAD_GATEWAY, 17, message)
            }
            DmtError::NotDelivered(cause) => {
                tracing::warn!(error = %cause, "OTP not delivered");
                ApiError::refused(StatusCode::BAD_GATEWAY, 17, message)
            }
            DmtError::Store(e) => e.into(),
        }
    }
}

impl From<PennyDropError> for ApiError {
    fn from(error: PennyDropError) -> Self {
        let message = error.to_string();
        match error {
            PennyDropError::Remittance(e) => e.into(),
            PennyDropError::Invalid(_) => ApiError::Validation(message),
            PennyDropError::Duplicate { .. } => ApiError::refused(StatusCode::CONFLICT, 12, message),
            PennyDropError::InsufficientFunds { .. } => ApiError::refused(StatusCode::PAYMENT_REQUIRED, 13, message),
            PennyDropError::Store(e) => e.into(),
        }
    }
}

impl From<BillError> for ApiError {
    fn from(error: BillError) -> Self {
        let message = error.to_string();
        match error {
            BillError::UnknownBiller | BillError::NoBill => ApiError::refused(StatusCode::OK, 2, message),
            BillError::NoFetch => ApiError::refused(StatusCode::CONFLICT, 16, message),
            BillError::Upstream(cause) => {
                tracing::warn!(error = %cause, "biller did not answer");
                ApiError::refused(StatusCode::BAD_GATEWAY, 17, message)
            }
            BillError::SubmissionsStopped => ApiError::refused(StatusCode::BAD_GATEWAY, 17, message),
            BillError::Duplicate { .. } => ApiError::refused(StatusCode::CONFLICT, 12, message),
            BillError::InsufficientFunds { .. } => ApiError::refused(StatusCode::PAYMENT_REQUIRED, 13, message),
            BillError::Limit(_) => ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, 14, message),
            BillError::MissingParam { .. }
            | BillError::PartPayment { .. }
            | BillError::NotPayable
            | BillError::StaleBill { .. } => ApiError::Validation(message),
            BillError::Store(e) => e.into(),
        }
    }
}

/// The usual shape: `status` first.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Refusal)]
struct StatusFirst<'a> {
    status: bool,
    response_code: i64,
    message: &'a str,
}

/// The shape the documents use for code 11 and for BBPS "not found".
#[derive(Serialize)]
struct CodeFirst<'a> {
    response_code: i64,
    status: bool,
    message: &'a str,
}

/// `application/json; charset=utf-8`, as the ASP.NET host answers.
pub const JSON_UTF8: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");

/// A JSON response with the API's content type.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    // Sized for a found status body (about 330 bytes), so that it is written without growing.
    let mut bytes = Vec::with_capacity(512);
    match serde_json::to_writer(&mut bytes, body) {
        Ok(()) => (status, [(header::CONTENT_TYPE, JSON_UTF8)], bytes).into_response(),
        Err(e) => ApiError::Internal(e.into()).into_response(),
    }
}

/// `{"status":false,"response_code":code,"message":message}`.
pub fn status_first(status: StatusCode, code: i64, message: &str) -> Response {
    json_response(status, &StatusFirst { status: false, response_code: code, message })
}

/// `{"response_code":code,"status":false,"message":message}`.
pub fn code_first(status: StatusCode, code: i64, message: &str) -> Response {
    json_response(status, &CodeFirst { response_code: code, status: false, message })
}

fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Validation(message) => status_first(StatusCode::BAD_REQUEST, 8, &message),
            ApiError::AuthenticationFailed => code_first(StatusCode::UNAUTHORIZED, 11, "Authentication failed"),
            ApiError::SignatureEncoding => status_first(StatusCode::UNAUTHORIZED, 7, "Invalid signature encoding"),
            ApiError::InvalidToken => status_first(StatusCode::UNAUTHORIZED, 10, "Invalid JWT Token sent in Header."),
            ApiError::RateLimited { retry_after_secs } => {
                with_retry_after(status_first(StatusCode::TOO_MANY_REQUESTS, 9, "Too many requests"), retry_after_secs)
            }
            ApiError::NotFound(message) => status_first(StatusCode::NOT_FOUND, 2, &message),
            ApiError::Conflict(message) => status_first(StatusCode::CONFLICT, 8, &message),
            ApiError::Refused { status, code, message } => status_first(status, code, &message),
            ApiError::Unavailable(cause) => {
                tracing::error!(error = ?cause, "store unavailable");
                let mut response =
                    with_retry_after(status_first(StatusCode::SERVICE_UNAVAILABLE, 9, "Unable to process request"), 5);
                response.extensions_mut().insert(StoreFailed("unavailable"));
                response
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal failure");
                let mut response = status_first(StatusCode::INTERNAL_SERVER_ERROR, 9, "Unable to process request");
                if cause.downcast_ref::<StoreFault>().is_some() {
                    response.extensions_mut().insert(StoreFailed("other"));
                }
                response
            }
        }
    }
}

/// This module's bodies, for the OpenAPI document ([`super::openapi`]).
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; StatusFirst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_store_is_503_with_retry_after_and_no_cause() {
        let response = ApiError::Unavailable(anyhow::anyhow!("secret detail")).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("5"));
        assert_eq!(response.headers().get(header::CONTENT_TYPE), Some(&JSON_UTF8));
    }
}
