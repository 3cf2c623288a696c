//! The `Token` header: a JWT signed HS256 with the partner's secret, carrying
//! `timestamp` (unix seconds), `partnerId` and a unique `reqid`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The claims a partner token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Unix seconds when the token was made; the server allows ±300 s.
    pub timestamp: i64,
    /// The partner's `RegistrationID`.
    #[serde(rename = "partnerId")]
    pub partner_id: String,
    /// Unique per request; a repeat within 10 minutes is refused as a replay.
    pub reqid: String,
}

impl TokenClaims {
    /// Claims for `partner_id`, stamped now, with a random `reqid`.
    pub fn now(partner_id: &str) -> Self {
        let timestamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let reqid: u128 = rand::thread_rng().gen();
        TokenClaims { timestamp, partner_id: partner_id.to_owned(), reqid: format!("{reqid:032x}") }
    }
}

/// The fixed JOSE header: `{"alg":"HS256","typ":"JWT"}`.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Signs `claims` with `secret` into a compact JWT (`header.claims.signature`).
pub fn sign_token(secret: &[u8], claims: &TokenClaims) -> String {
    let claims_json = serde_json::to_vec(claims).unwrap_or_default();
    sign_raw(secret, HEADER.as_bytes(), &claims_json)
}

/// Signs arbitrary header and claims JSON; for tests that need odd tokens.
pub fn sign_raw(secret: &[u8], header_json: &[u8], claims_json: &[u8]) -> String {
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header_json), URL_SAFE_NO_PAD.encode(claims_json));
    let signature = hmac_sha256(secret, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_7515_style_layout_and_a_known_hmac() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn a_token_has_three_segments_and_decodes_to_its_claims() {
        let claims = TokenClaims { timestamp: 1_700_000_000, partner_id: "AOP-7".into(), reqid: "r1".into() };
        let token = sign_token(b"s", &claims);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decoded: TokenClaims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url claims"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded, claims);
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[0]).expect("a base64url header"), HEADER.as_bytes());
    }

    #[test]
    fn fresh_claims_never_repeat_a_reqid() {
        let a = TokenClaims::now("AOP-1");
        let b = TokenClaims::now("AOP-1");
        assert_ne!(a.reqid, b.reqid);
    }
}
