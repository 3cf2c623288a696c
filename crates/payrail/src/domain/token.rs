//! Verifying the partner `Token` header (SPEC §3): a compact JWT, HS256 only,
//! with `timestamp`, `partnerId` and `reqid` claims.
//!
//! Strict as RFC 8725 asks: at most [`MAX_TOKEN_LEN`] bytes, no `crit`
//! header (payrail understands no extension, so a token that needs one is
//! refused), and every claim of its JSON type (`timestamp` an integer,
//! `partnerId` and `reqid` strings); a validly signed token that breaks
//! any of these is still refused.
//!
//! Written against `hmac`/`sha2`/`subtle` directly rather than a JWT crate,
//! because the API must tell a signature segment that is not base64url
//! (code 7) from every other defect (code 10), which general JWT libraries
//! fold together, and because the only algorithm allowed is HS256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde::Deserialize;
use sha2::Sha256;

use super::Timestamp;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The signature segment is not base64url (code 7).
    #[error("signature segment is not base64url")]
    SignatureEncoding,
    /// Not three segments, a header or claims that do not decode, missing
    /// claims or claims of the wrong JSON type (code 10).
    #[error("malformed token")]
    Malformed,
    /// Longer than [`MAX_TOKEN_LEN`] (code 10).
    #[error("token longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    /// The header names critical extensions (`crit`), which payrail does not implement (code 10).
    #[error("critical header extensions are not supported")]
    Critical,
    /// `alg` other than HS256, `none` included (code 10).
    #[error("algorithm not allowed")]
    Algorithm,
    /// No secret of the partner produced this signature (code 10).
    #[error("bad signature")]
    Signature,
    /// `timestamp` further than the allowed skew from now (code 10).
    #[error("stale or future timestamp")]
    Stale,
}

/// The claims payrail reads from a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Unix seconds.
    pub timestamp: i64,
    /// The partner the token is for.
    pub partner_id: String,
    /// The request's unique id.
    pub reqid: String,
}

/// The longest token accepted, in bytes: a real one is about 200.
pub const MAX_TOKEN_LEN: usize = 4096;

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Option<std::borrow::Cow<'a, str>>,
    /// Whether a `crit` member is there at all (even `null` or `[]`).
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// True for any value: used on a field whose mere presence matters.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// The claims with their JSON types: serde refuses a string `timestamp`, a
/// float, or a number where a string belongs.
#[derive(Deserialize)]
struct RawClaims {
    timestamp: Option<i64>,
    #[serde(rename = "partnerId")]
    partner_id: Option<String>,
    reqid: Option<String>,
}

/// A token secret keyed for HMAC-SHA256 once: the key's two padded blocks
/// are hashed when it is made, so checking a signature hashes the signed
/// input alone (about a third less SHA-256 work per token).
#[derive(Clone)]
pub struct TokenKey(Hmac<Sha256>);

impl TokenKey {
    /// Keys `secret` (any length).
    pub fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        match Hmac::<Sha256>::new_from_slice(secret) {
            Ok(mac) => TokenKey(mac),
            Err(_) => unreachable!("HMAC takes keys of any length"),
        }
    }

    /// Whether `signature` is this key's HMAC of `input` (compared in constant time).
    fn signed(&self, input: &[u8], signature: &[u8]) -> bool {
        let mut mac = self.0.clone();
        mac.update(input);
        mac.verify_slice(signature).is_ok()
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

/// Checks `token` against each of `secrets` and the clock.
pub fn verify_token(
    token: &str,
    secrets: &[TokenKey],
    now: Timestamp,
    max_skew_secs: i64,
) -> Result<Claims, TokenError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header_json = URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Malformed)?;
    let header: Header<'_> = serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
    if header.alg.as_deref() != Some("HS256") {
        return Err(TokenError::Algorithm);
    }
    if header.crit {
        return Err(TokenError::Critical);
    }
    let signature =
        URL_SAFE_NO_PAD.decode(signature.trim_end_matches('=')).map_err(|_| TokenError::SignatureEncoding)?;
    // The signing input is the first two segments with their dot.
    let signing_input = &token[..signing_input_len(token)];
    let signed_by_partner = secrets.iter().any(|secret| secret.signed(signing_input.as_bytes(), &signature));
    if !signed_by_partner {
        return Err(TokenError::Signature);
    }
    let claims = read_claims(claims)?;
    if (claims.timestamp - now.unix()).abs() > max_skew_secs {
        return Err(TokenError::Stale);
    }
    Ok(claims)
}

/// Where the signature segment starts, less its dot.
fn signing_input_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

fn read_claims(segment: &str) -> Result<Claims, TokenError> {
    let json = URL_SAFE_NO_PAD.decode(segment).map_err(|_| TokenError::Malformed)?;
    let raw: RawClaims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    let timestamp = raw.timestamp.ok_or(TokenError::Malformed)?;
    let text = |value: Option<String>| value.filter(|s| !s.is_empty() && s.len() <= 128);
    let partner_id = text(raw.partner_id).ok_or(TokenError::Malformed)?;
    let reqid = text(raw.reqid).ok_or(TokenError::Malformed)?;
    Ok(Claims { timestamp, partner_id, reqid })
}

#[cfg(test)]
mod tests {
    use payrail_client::token::{sign_raw, sign_token, TokenClaims};

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn claims(timestamp: i64) -> TokenClaims {
        TokenClaims { timestamp, partner_id: "AOP-9".into(), reqid: "abc".into() }
    }

    fn verify(token: &str) -> Result<Claims, TokenError> {
        verify_token(token, &[TokenKey::new(b"old"), TokenKey::new(b"key")], Timestamp::from_unix(NOW), 300)
    }

    #[test]
    fn a_token_signed_with_any_current_secret_is_accepted() {
        let ok = verify(&sign_token(b"key", &claims(NOW))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.partner_id, "AOP-9");
        assert!(verify(&sign_token(b"old", &claims(NOW))).is_ok());
    }

    #[test]
    fn a_wrong_key_is_a_bad_signature() {
        assert_eq!(verify(&sign_token(b"other", &claims(NOW))), Err(TokenError::Signature));
    }

    #[test]
    fn only_hs256_is_allowed() {
        let body = serde_json::to_vec(&claims(NOW)).expect("claims serialise");
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"HS512","typ":"JWT"}"#, r#"{"typ":"JWT"}"#] {
            let token = sign_raw(b"key", header.as_bytes(), &body);
            assert_eq!(verify(&token), Err(TokenError::Algorithm), "{header}");
        }
        let unsigned = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(&body));
        assert_eq!(verify(&unsigned), Err(TokenError::Algorithm));
    }

    #[test]
    fn a_signature_that_is_not_base64url_is_told_apart() {
        let token = sign_token(b"key", &claims(NOW));
        let (head, _) = token.rsplit_once('.').expect("a token has dots");
        assert_eq!(verify(&format!("{head}.***not base64***")), Err(TokenError::SignatureEncoding));
        assert_eq!(verify(&format!("{head}.ab+/cd")), Err(TokenError::SignatureEncoding));
    }

    #[test]
    fn segment_count_must_be_three() {
        let token = sign_token(b"key", &claims(NOW));
        assert_eq!(verify(&format!("{token}.x")), Err(TokenError::Malformed));
        let two: String = token.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
        assert_eq!(verify(&two), Err(TokenError::Malformed));
        assert_eq!(verify(""), Err(TokenError::Malformed));
    }

    #[test]
    fn the_clock_window_is_300_seconds_each_way() {
        assert!(verify(&sign_token(b"key", &claims(NOW - 300))).is_ok());
        assert!(verify(&sign_token(b"key", &claims(NOW + 300))).is_ok());
        assert_eq!(verify(&sign_token(b"key", &claims(NOW - 301))), Err(TokenError::Stale));
        assert_eq!(verify(&sign_token(b"key", &claims(NOW + 301))), Err(TokenError::Stale));
    }

    #[test]
    fn missing_claims_are_malformed() {
        let token = sign_raw(b"key", br#"{"alg":"HS256"}"#, br#"{"timestamp":1800000000,"reqid":"x"}"#);
        assert_eq!(verify(&token), Err(TokenError::Malformed));
    }

    fn signed(header: &str, claims: &str) -> String {
        sign_raw(b"key", header.as_bytes(), claims.as_bytes())
    }

    #[test]
    fn claims_of_the_wrong_json_type_are_malformed_even_when_signed() {
        let h = r#"{"alg":"HS256"}"#;
        let ok = format!(r#"{{"timestamp":{NOW},"partnerId":"AOP-9","reqid":"x"}}"#);
        assert!(verify(&signed(h, &ok)).is_ok());
        for claims in [
            format!(r#"{{"timestamp":"{NOW}","partnerId":"AOP-9","reqid":"x"}}"#),
            format!(r#"{{"timestamp":{NOW}.0,"partnerId":"AOP-9","reqid":"x"}}"#),
            format!(r#"{{"timestamp":{NOW},"partnerId":"AOP-9","reqid":7}}"#),
            format!(r#"{{"timestamp":{NOW},"partnerId":9,"reqid":"x"}}"#),
            format!(r#"{{"timestamp":{NOW},"partnerId":"AOP-9","reqid":["x"]}}"#),
        ] {
            assert_eq!(verify(&signed(h, &claims)), Err(TokenError::Malformed), "{claims}");
        }
    }

    #[test]
    fn a_crit_header_is_refused_even_when_signed() {
        let claims = format!(r#"{{"timestamp":{NOW},"partnerId":"AOP-9","reqid":"x"}}"#);
        for header in
            [r#"{"alg":"HS256","crit":["exp"]}"#, r#"{"alg":"HS256","crit":[]}"#, r#"{"alg":"HS256","crit":null}"#]
        {
            assert_eq!(verify(&signed(header, &claims)), Err(TokenError::Critical), "{header}");
        }
    }

    #[test]
    fn a_token_over_4_kib_is_refused_even_when_signed() {
        let padding = "x".repeat(MAX_TOKEN_LEN);
        let claims = format!(r#"{{"timestamp":{NOW},"partnerId":"AOP-9","reqid":"x","pad":"{padding}"}}"#);
        assert_eq!(verify(&signed(r#"{"alg":"HS256"}"#, &claims)), Err(TokenError::TooLong));
    }

    #[test]
    fn any_byte_flipped_in_a_token_is_refused() {
        let token = sign_token(b"key", &claims(NOW));
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let mutated = String::from_utf8(bytes).expect("base64url text stays UTF-8");
            if mutated != token {
                assert!(verify(&mutated).is_err(), "accepted a token changed at byte {i}");
            }
        }
    }
}
