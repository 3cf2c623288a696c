//! The signed copy of a callback's `param`.
//!
//! Paysprint sends each callback's `param` twice: as plain JSON, and as
//! `param_inc` (some of its pages spell it `param_enc`), a compact JWT signed
//! HS256 with the shared key whose claims are `param` itself. The `Token`
//! header proves who sent the request but says nothing about its body; the
//! signed copy binds the body, so a captured request cannot be replayed with
//! another `param`. Only HS256 is accepted (the header's `alg` is pinned, so
//! `none` or an asymmetric algorithm cannot be slipped in), and the plain
//! `param` must equal the signed claims exactly.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use payrail_client::token::hmac_sha256;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::services::upstream::provider::CallbackError;

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    crit: Option<serde_json::Value>,
}

/// Checks that `signed` is an HS256 JWT under `key` whose claims equal
/// `param`; returns the claims, what the callback is then read from.
pub(super) fn check(
    param: &serde_json::Value,
    signed: Option<&str>,
    key: &[u8],
) -> Result<serde_json::Value, CallbackError> {
    let signed = signed.ok_or_else(|| refused("no param_inc (the signed copy of param)"))?;
    let claims = verify(signed.trim(), key)?;
    if &claims != param {
        return Err(refused("param differs from its signed copy in param_inc"));
    }
    Ok(claims)
}

/// What makes a callback the same as another: the SHA-256 of its signed
/// copy of `param`, hex, prefixed so that it never equals a token `reqid`.
pub(super) fn digest(signed: &str) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(signed.trim().as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("param-sha256:{hex}")
}

/// The claims of an HS256 JWT signed with `key`.
fn verify(token: &str, key: &[u8]) -> Result<serde_json::Value, CallbackError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refused("param_inc is not a compact JWT"));
    };
    let header: Header = decode_json(header).ok_or_else(|| refused("param_inc header unreadable"))?;
    if header.alg.as_deref() != Some("HS256") || header.crit.is_some() {
        return Err(refused("param_inc must be signed HS256"));
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| refused("param_inc signature unreadable"))?;
    let signing_input = &token[..header_and_claims_len(token)];
    if !bool::from(hmac_sha256(key, signing_input.as_bytes()).ct_eq(&signature)) {
        return Err(refused("param_inc signature does not verify"));
    }
    decode_json(claims).ok_or_else(|| refused("param_inc claims unreadable"))
}

/// The length of `header.claims`, the signing input.
fn header_and_claims_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

fn decode_json<T: serde::de::DeserializeOwned>(segment: &str) -> Option<T> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).ok()?).ok()
}

fn refused(why: &str) -> CallbackError {
    CallbackError::Unauthenticated(why.to_owned())
}

#[cfg(test)]
mod tests {
    use payrail_client::token::sign_raw;
    use serde_json::json;

    use super::*;

    const HS256: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;

    fn sign(key: &[u8], header: &[u8], claims: &serde_json::Value) -> String {
        sign_raw(key, header, claims.to_string().as_bytes())
    }

    #[test]
    fn a_signed_copy_equal_to_param_passes_whatever_its_key_order() {
        let param = json!({"referenceid": "PRD1", "txn_status": 1, "utr": "U1"});
        let signed = sign(b"k", HS256, &json!({"utr": "U1", "txn_status": 1, "referenceid": "PRD1"}));
        assert_eq!(check(&param, Some(&signed), b"k").ok(), Some(param));
    }

    #[test]
    fn a_missing_forged_altered_or_unpinned_copy_is_refused() {
        let param = json!({"referenceid": "PRD1", "txn_status": 1});
        let altered = json!({"referenceid": "PRD1", "txn_status": 0});
        let none = sign_raw(b"", br#"{"alg":"none"}"#, param.to_string().as_bytes());
        let cases = [
            None,
            Some(sign(b"other", HS256, &param)),
            Some(sign(b"k", HS256, &altered)),
            Some(sign(b"k", br#"{"alg":"HS512"}"#, &param)),
            Some(sign(b"k", br#"{"alg":"HS256","crit":["x"]}"#, &param)),
            Some(format!("{}.", none.rsplit_once('.').map(|(head, _)| head).expect("a token has dots"))),
            Some("not-a-jwt".to_owned()),
        ];
        for signed in cases {
            let result = check(&param, signed.as_deref(), b"k");
            assert!(matches!(result, Err(CallbackError::Unauthenticated(_))), "{signed:?}");
        }
    }
}
