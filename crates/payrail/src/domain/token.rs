//! Verifying the partner `Token` header (SPEC §3): a compact JWT, HS256 only,
//! with `timestamp`, `partnerId` and `reqid` claims.
//!
//! Written against `hmac`/`sha2`/`subtle` directly rather than a JWT crate,
//! because the API must tell a signature segment that is not base64url
//! (code 7) from every other defect (code 10), which general JWT libraries
//! fold together, and because the only algorithm allowed is HS256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use payrail_client::token::hmac_sha256;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::Timestamp;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The signature segment is not base64url (code 7).
    #[error("signature segment is not base64url")]
    SignatureEncoding,
    /// Not three segments, a header or claims that do not decode, missing claims (code 10).
    #[error("malformed token")]
    Malformed,
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

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawClaims {
    timestamp: Option<serde_json::Value>,
    #[serde(rename = "partnerId")]
    partner_id: Option<serde_json::Value>,
    reqid: Option<serde_json::Value>,
}

/// Checks `token` against each of `secrets` and the clock.
pub fn verify_token(
    token: &str,
    secrets: &[Vec<u8>],
    now: Timestamp,
    max_skew_secs: i64,
) -> Result<Claims, TokenError> {
    let token = token.trim();
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
    let signature =
        URL_SAFE_NO_PAD.decode(signature.trim_end_matches('=')).map_err(|_| TokenError::SignatureEncoding)?;
    // The signing input is the first two segments with their dot.
    let signing_input = &token[..signing_input_len(token)];
    let signed_by_partner =
        secrets.iter().any(|secret| bool::from(hmac_sha256(secret, signing_input.as_bytes()).ct_eq(&signature)));
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
    let timestamp = match raw.timestamp {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or(TokenError::Malformed)?;
    let text = |value: Option<serde_json::Value>| match value {
        Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= 128 => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
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
        verify_token(token, &[b"old".to_vec(), b"key".to_vec()], Timestamp::from_unix(NOW), 300)
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
        let body = serde_json::to_vec(&claims(NOW)).unwrap_or_default();
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
        let (head, _) = token.rsplit_once('.').unwrap_or_default();
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

    #[test]
    fn any_byte_flipped_in_a_token_is_refused() {
        let token = sign_token(b"key", &claims(NOW));
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let mutated = String::from_utf8(bytes).unwrap_or_default();
            if mutated != token {
                assert!(verify(&mutated).is_err(), "accepted a token changed at byte {i}");
            }
        }
    }
}
