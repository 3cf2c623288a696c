//! Every request's log context: its id, its `request` span, its access line.
//!
//! Each request gets an id: the caller's `X-Request-Id` when it is sane (1
//! to 128 of `A-Z a-z 0-9 . _ : -`), else 32 random hex digits; a value
//! that is not sane is never echoed or logged. The id is returned in the
//! answer's `X-Request-Id` (every answer, framing refusals included) and is
//! a field of the `request{id, method, path, partner, operator}` span that
//! wraps the request, so every log line of the request carries it. When the
//! request is answered, one line with target `payrail::access` (level info)
//! says what it was, in its own fields: the id, method, path (never the
//! query string: it may carry data), status, the partner or operator
//! authenticated and the time taken. Bodies, headers, tokens and secrets are
//! never part of it. `PAYRAIL_LOG=info,payrail::access=off` turns the
//! access lines off and keeps the rest.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use tracing::field::Empty;
use tracing::Span;

use crate::domain::RegistrationId;

/// The header the id comes in and goes out in.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id taken from a caller.
pub const MAX_REQUEST_ID: usize = 128;

/// The longest path an access line shows (longer ones are cut, marked `…`).
const MAX_LOGGED_PATH: usize = 256;

tokio::task_local! {
    /// The request being answered on this task, if any.
    static CURRENT: Arc<RequestLog>;
}

/// One request's log context, from arrival to its access line. Nothing
/// here allocates for the log unless the log is on: the id is kept as the
/// header value it is answered in, the path as the request's own `Uri`.
pub struct RequestLog {
    id: HeaderValue,
    method: Method,
    uri: Uri,
    started: Instant,
    span: Span,
    partner: OnceLock<RegistrationId>,
    operator: OnceLock<String>,
}

impl RequestLog {
    /// The context of a request with these headers, method and URI.
    pub fn start(headers: &HeaderMap, method: &Method, uri: &Uri) -> Arc<RequestLog> {
        let id = request_id(headers);
        let span = tracing::info_span!(
            "request",
            id = %id.to_str().unwrap_or_default(),
            method = %method,
            path = %LoggedPath(uri.path()),
            partner = Empty,
            operator = Empty,
        );
        Arc::new(RequestLog {
            id,
            method: method.clone(),
            uri: uri.clone(),
            started: Instant::now(),
            span,
            partner: OnceLock::new(),
            operator: OnceLock::new(),
        })
    }

    /// The request's id.
    pub fn id(&self) -> &str {
        self.id.to_str().unwrap_or_default()
    }

    /// The `request` span.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Runs `work` as this request's: inside its span, with
    /// [`record_partner`] and [`record_operator`] reaching it.
    pub async fn scope<F: std::future::Future>(self: &Arc<Self>, work: F) -> F::Output {
        use tracing::Instrument as _;
        CURRENT.scope(self.clone(), work.instrument(self.span.clone())).await
    }

    /// Writes the access line for an answer with `status`.
    pub fn answered(&self, status: StatusCode) {
        // Outside the request's span: the line names everything itself, and
        // a JSON line then needs no list of spans (a third of its cost).
        tracing::info!(
            target: "payrail::access",
            parent: None,
            request_id = %self.id(),
            method = %self.method,
            path = %LoggedPath(self.uri.path()),
            status = status.as_u16(),
            partner = %OrDash(self.partner.get()),
            operator = %self.operator.get().map_or("-", String::as_str),
            duration_ms = (self.started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
            "answered"
        );
    }

    /// The id as the `X-Request-Id` answer header.
    pub fn header_value(&self) -> HeaderValue {
        self.id.clone()
    }
}

/// A value, or `-` for none.
struct OrDash<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OrDash<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// A path as logged: at most [`MAX_LOGGED_PATH`] characters, then `…`.
struct LoggedPath<'a>(&'a str);

impl std::fmt::Display for LoggedPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(MAX_LOGGED_PATH) {
            Some((cut, _)) => write!(f, "{}…", &self.0[..cut]),
            None => f.write_str(self.0),
        }
    }
}

/// Notes the partner a request authenticated as, in its span and its
/// access line. Outside a request (a worker), nothing happens.
pub fn record_partner(partner: RegistrationId) {
    let _ = CURRENT.try_with(|request| {
        if request.partner.set(partner).is_ok() {
            request.span.record("partner", tracing::field::display(partner));
        }
    });
}

/// Notes the operator (by the audit log's name for them) a request
/// authenticated as.
pub fn record_operator(name: &str) {
    let _ = CURRENT.try_with(|request| {
        if request.operator.set(name.to_owned()).is_ok() {
            request.span.record("operator", name);
        }
    });
}

/// The caller's `X-Request-Id` when there is exactly one and it is sane,
/// else a fresh one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut sent = headers.get_all(REQUEST_ID_HEADER).iter();
    match (sent.next(), sent.next()) {
        (Some(value), None) if is_sane(value.as_bytes()) => value.clone(),
        _ => generated_id(),
    }
}

/// 1 to [`MAX_REQUEST_ID`] of `A-Z a-z 0-9 . _ : -`.
pub fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// 32 random hex digits.
fn generated_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let random = rand::random::<u128>();
    let mut digits = [0u8; 32];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = HEX[((random >> (4 * (31 - i))) & 0xf) as usize];
    }
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&digits).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_for(values: &[&[u8]]) -> String {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(REQUEST_ID_HEADER, HeaderValue::from_bytes(value).unwrap_or_else(|e| panic!("{e}")));
        }
        request_id(&headers).to_str().unwrap_or_else(|e| panic!("{e}")).to_owned()
    }

    fn is_generated(id: &str) -> bool {
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
    }

    #[test]
    fn a_sane_id_is_kept_as_sent() {
        assert_eq!(id_for(&[b"abc-123_X.y:z"]), "abc-123_X.y:z");
        let longest = "a".repeat(MAX_REQUEST_ID);
        assert_eq!(id_for(&[longest.as_bytes()]), longest);
    }

    #[test]
    fn anything_else_is_replaced_by_a_fresh_id() {
        let too_long = "a".repeat(MAX_REQUEST_ID + 1);
        for bad in
            [&b""[..], b"has space", b"semi;colon", b"quote\"", b"slash/", too_long.as_bytes(), b"\xc3\xa9t\xc3\xa9"]
        {
            let id = id_for(&[bad]);
            assert!(is_generated(&id), "{bad:?} gave {id}");
        }
        assert!(is_generated(&id_for(&[])), "none sent");
        assert!(is_generated(&id_for(&[b"one", b"two"])), "two sent: which is meant is a guess");
        assert_ne!(id_for(&[]), id_for(&[]), "fresh each time");
    }

    #[test]
    fn long_paths_are_cut() {
        assert_eq!(LoggedPath("/api/x").to_string(), "/api/x");
        let long = format!("/{}", "p".repeat(400));
        assert_eq!(LoggedPath(&long).to_string().chars().count(), MAX_LOGGED_PATH + 1);
    }
}
