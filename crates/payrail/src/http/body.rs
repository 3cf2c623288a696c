//! Reading partner request bodies: JSON whatever the Content-Type says, at
//! most 64 KiB, with the API's own 400 for anything malformed.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::connection::BodyError;
use super::error::ApiError;
use crate::domain::ReferenceId;

/// The largest body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// A request body of at most [`MAX_BODY`] bytes.
pub struct LimitedBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for LimitedBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let body: Body = request.into_body();
        axum::body::to_bytes(body, MAX_BODY).await.map(LimitedBody).map_err(|e| unreadable(&e))
    }
}

/// Says why a body could not be read: too long, too slow, or not valid
/// chunked encoding (or the client went away), each for what it is.
fn unreadable(error: &axum::Error) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return ApiError::Validation("request body is larger than 64 KiB".into());
        }
        if let Some(BodyError::TimedOut(limit)) = e.downcast_ref::<BodyError>() {
            let message = format!("request body not received within {} s", limit.as_secs_f64());
            return ApiError::Refused { status: StatusCode::REQUEST_TIMEOUT, code: 8, message };
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            // hyper's chunk decoder says InvalidInput or InvalidData; a
            // client gone mid-body is UnexpectedEof.
            if matches!(io.kind(), std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData) {
                return ApiError::Validation(format!("request body is not valid chunked encoding: {io}"));
            }
        }
        cause = e.source();
    }
    ApiError::Validation(format!("request body could not be read: {error}"))
}

/// Parses `bytes` as a JSON object into `T`. Anything but an object is
/// refused: serde would otherwise read a JSON array into a struct by position.
pub fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::Validation(match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => "request body must be a JSON object".into(),
            Err(e) => describe_json_error(&e),
        }));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::Validation(describe_json_error(&e)))
}

fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof => format!("request body is not valid JSON: {error}"),
        Category::Data => format!("request body is not the expected JSON object: {error}"),
        Category::Io => "request body could not be read".into(),
    }
}

/// A present, non-null field, or `None`.
fn present(value: Option<&RawValue>) -> Option<&RawValue> {
    value.filter(|v| v.get() != "null")
}

/// Reads a reference id: a JSON string, or a JSON number read as its digits.
pub fn reference_field(value: Option<&RawValue>, name: &str) -> Result<ReferenceId, ApiError> {
    let raw = present(value).ok_or_else(|| ApiError::Validation(format!("{name} is missing")))?;
    let text = raw.get();
    let owned;
    let digits = if text.starts_with('"') {
        owned =
            serde_json::from_str::<String>(text).map_err(|_| ApiError::Validation(format!("{name} is not valid")))?;
        owned.as_str()
    } else if text.bytes().all(|b| b.is_ascii_digit()) {
        text
    } else {
        return Err(ApiError::Validation(format!("{name} must be a string")));
    };
    ReferenceId::parse(digits).map_err(|e| ApiError::Validation(format!("{name} {e}")))
}

/// Reads the `RegistrationID`: a non-empty JSON string.
pub fn registration_field(value: Option<&RawValue>) -> Result<String, ApiError> {
    let raw = present(value).ok_or_else(|| ApiError::Validation("RegistrationID is missing".into()))?;
    let text: String =
        serde_json::from_str(raw.get()).map_err(|_| ApiError::Validation("RegistrationID must be a string".into()))?;
    if text.is_empty() {
        return Err(ApiError::Validation("RegistrationID is missing".into()));
    }
    if text.len() > 64 {
        return Err(ApiError::Validation("RegistrationID must be at most 64 characters".into()));
    }
    Ok(text)
}
