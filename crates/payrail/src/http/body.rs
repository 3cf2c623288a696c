//! Reading partner request bodies: JSON whatever the Content-Type says, at
//! most 64 KiB, with the API's own 400 for anything malformed.

use std::borrow::Cow;
use std::collections::{hash_map, HashMap};
use std::fmt;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
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

/// Reads the opt-in `history` flag of a status request: `true` or `false`
/// (absent or `null`: `false`).
pub fn history_flag(value: Option<&RawValue>) -> Result<bool, ApiError> {
    match present(value).map(RawValue::get) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::Validation("history must be true or false".into())),
    }
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

/// A status request as sent: the reference under any of its spellings
/// (`ReferanceID`, `ReferenceID`, `referenceid`, any case), the
/// `RegistrationID` (any case), and the first key that made it ambiguous.
///
/// Read by hand rather than derived so that a key sent twice, in two cases
/// (`RegistrationID`, `REGISTRATIONID`) or under two aliases of one field,
/// is refused instead of one of the values silently winning. Nothing is
/// allocated per field: keys and values are borrowed from the body (a key
/// with escapes is the only exception), and the keys seen so far live in a
/// fixed array on the stack unless a body has more than `SEEN_ON_STACK`.
#[derive(Default)]
pub struct StatusRequest<'a> {
    /// The reference's raw JSON value, if sent.
    pub reference: Option<&'a RawValue>,
    /// The `RegistrationID`'s raw JSON value, if sent.
    pub registration: Option<&'a RawValue>,
    /// The `history` flag's raw JSON value, if sent (see [`history_flag`]).
    pub history: Option<&'a RawValue>,
    /// Two keys that name the same field, as sent.
    clash: Option<(Cow<'a, str>, Cow<'a, str>)>,
}

impl StatusRequest<'_> {
    /// Refuses a request that named one field twice (400, code 8, naming both keys).
    pub fn unambiguous(&self) -> Result<(), ApiError> {
        match &self.clash {
            Some((first, second)) => Err(ApiError::Validation(clash_message(first, second))),
            None => Ok(()),
        }
    }
}

/// The message for a field sent twice: `amount` and `AMOUNT`, or
/// `ReferanceID` and `referenceid`.
pub fn clash_message(first: &str, second: &str) -> String {
    if first == second {
        format!("{first} is given more than once: send each field once")
    } else {
        format!("{first} and {second} name the same field: send it once")
    }
}

/// How many keys a status request may have before the ones seen spill to the heap.
const SEEN_ON_STACK: usize = 16;

/// The keys of one object seen so far, compared ignoring ASCII case: on
/// the stack for the usual handful, in a map by lower-cased key beyond
/// [`SEEN_ON_STACK`] so that a body of thousands of keys stays linear.
struct SeenKeys<'a> {
    stack: [Option<Cow<'a, str>>; SEEN_ON_STACK],
    len: usize,
    spilled: HashMap<String, Cow<'a, str>>,
}

impl<'a> SeenKeys<'a> {
    fn new() -> Self {
        SeenKeys { stack: Default::default(), len: 0, spilled: HashMap::new() }
    }

    /// Records `key`; returns the earlier key it repeats, if any.
    fn insert(&mut self, key: &Cow<'a, str>) -> Option<Cow<'a, str>> {
        if let Some(earlier) = self.stack[..self.len].iter().flatten().find(|k| k.eq_ignore_ascii_case(key)) {
            return Some(earlier.clone());
        }
        if let Some(slot) = self.stack.get_mut(self.len) {
            *slot = Some(key.clone());
            self.len += 1;
            return None;
        }
        match self.spilled.entry(key.to_ascii_lowercase()) {
            hash_map::Entry::Occupied(earlier) => Some(earlier.get().clone()),
            hash_map::Entry::Vacant(slot) => {
                slot.insert(key.clone());
                None
            }
        }
    }
}

/// An object key, borrowed from the body unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The reference's spellings (SPEC §1), compared ignoring ASCII case.
const REFERENCE_KEYS: [&str; 2] = ["ReferanceID", "ReferenceID"];

impl<'de> Deserialize<'de> for StatusRequest<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StatusVisitor)
    }
}

struct StatusVisitor;

impl<'de> Visitor<'de> for StatusVisitor {
    type Value = StatusRequest<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut request = StatusRequest::default();
        let mut seen = SeenKeys::new();
        let mut reference_key: Option<Cow<'de, str>> = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if request.clash.is_none() {
                if let Some(earlier) = seen.insert(&key) {
                    request.clash = Some((earlier, key.clone()));
                }
            }
            if REFERENCE_KEYS.iter().any(|name| key.eq_ignore_ascii_case(name)) {
                let value = map.next_value::<&'de RawValue>()?;
                match &reference_key {
                    Some(earlier) if request.clash.is_none() => request.clash = Some((earlier.clone(), key)),
                    Some(_) => {}
                    None => {
                        request.reference = Some(value);
                        reference_key = Some(key);
                    }
                }
            } else if key.eq_ignore_ascii_case("RegistrationID") {
                // A repeat is a clash recorded above; the first value is kept.
                let value = map.next_value::<&'de RawValue>()?;
                request.registration.get_or_insert(value);
            } else if key.eq_ignore_ascii_case("history") {
                let value = map.next_value::<&'de RawValue>()?;
                request.history.get_or_insert(value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> Option<String> {
        let request: StatusRequest<'_> = parse_json(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        request.unambiguous().err().map(|e| e.to_string())
    }

    #[test]
    fn a_status_request_reads_its_two_fields_in_any_case() {
        let body = r#"{"referanceid":"R-1","REGISTRATIONID":"AOP-1","other":[1,{"a":2}]}"#;
        let request: StatusRequest<'_> = parse_json(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.reference.map(RawValue::get), Some(r#""R-1""#));
        assert_eq!(request.registration.map(RawValue::get), Some(r#""AOP-1""#));
        assert!(request.unambiguous().is_ok());
    }

    #[test]
    fn keys_repeated_in_any_case_or_under_two_aliases_are_named() {
        assert_eq!(
            message(r#"{"ReferanceID":"1","ReferanceID":"2"}"#).as_deref(),
            Some("ReferanceID is given more than once: send each field once")
        );
        assert_eq!(
            message(r#"{"ReferanceID":"1","ReferenceID":"2"}"#).as_deref(),
            Some("ReferanceID and ReferenceID name the same field: send it once")
        );
        assert!(message(r#"{"x":1,"RegistrationID":"a","X":2}"#).is_some_and(|m| m.starts_with("x and X")));
        assert!(message(r#"{"a\u0062":1,"AB":2}"#).is_some_and(|m| m.starts_with("ab and AB")));
    }

    #[test]
    fn a_repeat_beyond_the_keys_kept_on_the_stack_is_found_too() {
        let many: Vec<String> = (0..40).map(|n| format!(r#""k{n}":{n}"#)).collect();
        let body = format!(r#"{{{},"K39":0}}"#, many.join(","));
        assert_eq!(message(&body).as_deref(), Some("k39 and K39 name the same field: send it once"));
        let body = format!(r#"{{{},"K3":0}}"#, many.join(","));
        assert_eq!(message(&body).as_deref(), Some("k3 and K3 name the same field: send it once"));
        assert_eq!(message(&format!("{{{}}}", many.join(","))), None);
    }
}
