//! What every DMT V1 and BBPS endpoint beyond the two status pages starts
//! with: the body read as a JSON object, the partner it names authenticated
//! and admitted, and its fields read by name.
//!
//! Field names match case-insensitively, as ASP.NET's model binding does on
//! the host the AOPay documents come from (`MobileNo`, `mobileno`), and each
//! field has the aliases real clients send. A value the documents show as a
//! string may also come as a JSON number of digits only; it is read as its
//! digits. A field sent twice, in two cases or under two of its aliases, is
//! refused: which value counts would be a guess.

use std::collections::{hash_map, HashMap};
use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::auth::{authenticate_looked_up, claimed_partner, precheck, Caller};
use super::body::{clash_message, parse_json, LimitedBody};
use super::error::ApiError;
use super::AppState;
use crate::domain::remitter::MobileNumber;
use crate::domain::text::{check_text, is_code};
use crate::domain::{Paise, Partner, ReferenceId, RegistrationId};
use crate::store::lookup::ReqidOutcome;

/// An authenticated partner request.
pub struct PartnerCall {
    /// Who is calling.
    pub partner: RegistrationId,
    /// The body's fields.
    pub fields: Fields,
}

impl FromRequest<Arc<AppState>> for PartnerCall {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let caller = match Caller::from_request_parts(&mut parts, state).await {
            Ok(caller) => caller,
            Err(never) => match never {},
        };
        let LimitedBody(bytes) = LimitedBody::from_request(Request::from_parts(parts, body), state).await?;
        let fields = Fields::parse(&bytes)?;
        let registration = fields.required_text(&["RegistrationID"])?;
        let claimed = claimed_partner(&registration)?;
        // The partner comes with its token `reqid` recorded when the request
        // passes every other check against the partner as last read (see
        // `store::lookup`), as a status lookup's does.
        let now = state.clock.now();
        let check = |partner: &Partner| precheck(state, &caller, partner, now);
        let (partner, reqid) = state.store.find_partner_checked(claimed, &check).await?.unzip();
        authenticate_looked_up(state, &caller, partner.as_ref(), reqid.unwrap_or(ReqidOutcome::NotRecorded)).await?;
        state.admit(partner.as_ref().map(|p| p.registration_id))?;
        Ok(PartnerCall { partner: claimed, fields })
    }
}

/// A request body's fields, keyed by their lower-cased names.
pub struct Fields(HashMap<String, SentField>);

/// One field: its name as sent, and its value.
struct SentField {
    key: String,
    value: Value,
}

/// The body's top-level entries in order, duplicates included (a
/// `serde_json::Map` would keep only the last of two equal keys).
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// Which amounts an endpoint takes beyond the rules every amount meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountRule {
    /// Whole rupees only (a DMT transfer).
    WholeRupees,
    /// Rupees and paise (a bill payment).
    WithPaise,
}

/// The longest text field accepted (beyond it a value is surely wrong).
const MAX_TEXT: usize = 100;

/// The longest `canumber`, `KycId` or `Stateresp`.
const MAX_CODE: usize = 64;

impl Fields {
    /// Parses a body. A key sent twice, also in another case (`amount` and
    /// `AMOUNT`), is refused naming both: which one counts would be a guess.
    pub fn parse(bytes: &[u8]) -> Result<Fields, ApiError> {
        let Entries(entries) = parse_json(bytes)?;
        let mut fields = HashMap::with_capacity(entries.len());
        for (key, value) in entries {
            match fields.entry(key.to_ascii_lowercase()) {
                hash_map::Entry::Occupied(earlier) => {
                    let earlier: &SentField = earlier.get();
                    return Err(ApiError::Validation(clash_message(&earlier.key, &key)));
                }
                hash_map::Entry::Vacant(slot) => {
                    slot.insert(SentField { key, value });
                }
            }
        }
        Ok(Fields(fields))
    }

    /// The value under one of `names` (any case), if not null. Two of the
    /// names both sent (`ReferanceID` and `referenceid`) are refused.
    fn get(&self, names: &[&str]) -> Result<Option<&Value>, ApiError> {
        let mut found: Option<&SentField> = None;
        for name in names {
            let Some(entry) = self.0.get(&name.to_ascii_lowercase()) else { continue };
            match found {
                Some(earlier) if !std::ptr::eq(earlier, entry) => {
                    return Err(ApiError::Validation(clash_message(&earlier.key, &entry.key)));
                }
                _ => found = Some(entry),
            }
        }
        Ok(found.map(|entry| &entry.value).filter(|v| !v.is_null()))
    }

    /// A field's text as sent: a string free of control and
    /// bidirectional-override characters, or a JSON number written as
    /// digits only (`100`; `100.0`, `1e2` and `-1` are refused).
    fn raw(&self, names: &[&str]) -> Result<Option<String>, ApiError> {
        let text = match self.get(names)? {
            None => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if n.is_u64() => n.to_string(),
            Some(Value::Number(_)) => {
                return Err(ApiError::Validation(format!(
                    "{} must be a string, or a JSON number of digits only (100, not 100.0 or 1e2)",
                    names[0]
                )))
            }
            Some(_) => return Err(ApiError::Validation(format!("{} must be a string", names[0]))),
        };
        check_text(&text).map_err(|e| ApiError::Validation(format!("{} {e}", names[0])))?;
        if text.chars().count() > MAX_TEXT {
            return Err(ApiError::Validation(format!("{} must be at most {MAX_TEXT} characters", names[0])));
        }
        Ok(Some(text))
    }

    /// A JSON array field (`references`); `None` if absent or null.
    pub fn array(&self, names: &[&str]) -> Result<Option<&Vec<Value>>, ApiError> {
        match self.get(names)? {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(ApiError::Validation(format!("{} must be a JSON array", names[0]))),
        }
    }

    /// A JSON object field (`bill_fetch`); `None` if absent or null.
    pub fn object(&self, names: &[&str]) -> Result<Option<&serde_json::Map<String, Value>>, ApiError> {
        match self.get(names)? {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(ApiError::Validation(format!("{} must be a JSON object", names[0]))),
        }
    }

    /// A text field, trimmed; `None` if absent or empty.
    pub fn text(&self, names: &[&str]) -> Result<Option<String>, ApiError> {
        let text = self.raw(names)?.map(|t| t.trim().to_owned());
        Ok(text.filter(|t| !t.is_empty()))
    }

    /// A text field that must be there.
    pub fn required_text(&self, names: &[&str]) -> Result<String, ApiError> {
        self.text(names)?.ok_or_else(|| ApiError::Validation(format!("{} is missing", names[0])))
    }

    /// A field read exactly as sent, not trimmed (numbers, mobiles, codes):
    /// `" 100"` is not `"100"`.
    fn exact(&self, names: &[&str]) -> Result<String, ApiError> {
        match self.raw(names)? {
            Some(text) if !text.is_empty() => Ok(text),
            _ => Err(ApiError::Validation(format!("{} is missing", names[0]))),
        }
    }

    /// An opaque text passed through as sent (a device's PID XML: line
    /// breaks allowed, not trimmed), non-blank, at most `max` characters.
    /// Its value never appears in a message.
    pub fn opaque(&self, names: &[&str], max: usize) -> Result<String, ApiError> {
        match self.get(names)? {
            Some(Value::String(text)) if text.chars().count() > max => {
                Err(ApiError::Validation(format!("{} must be at most {max} characters", names[0])))
            }
            Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
            Some(Value::String(_)) | None => Err(ApiError::Validation(format!("{} is missing", names[0]))),
            Some(_) => Err(ApiError::Validation(format!("{} must be a string", names[0]))),
        }
    }

    /// A code: 1 to 64 letters, digits, `-`, `_`, `.`, `/` (`canumber`,
    /// `KycId`, `Stateresp`), exactly as sent.
    pub fn code(&self, names: &[&str]) -> Result<String, ApiError> {
        let text = self.exact(names)?;
        if !is_code(&text, MAX_CODE) {
            return Err(ApiError::Validation(format!(
                "{} must be 1 to {MAX_CODE} letters, digits, '-', '_', '.' or '/'",
                names[0]
            )));
        }
        Ok(text)
    }

    /// A mobile number: ten digits, exactly as sent.
    pub fn mobile(&self, names: &[&str]) -> Result<MobileNumber, ApiError> {
        let text = self.exact(names)?;
        MobileNumber::parse(&text).map_err(|e| ApiError::Validation(format!("{} {e}", names[0])))
    }

    /// A positive whole number (an id): digits only, no sign, no spaces,
    /// no leading zero (`"01"` is refused rather than guessed at).
    pub fn id(&self, names: &[&str]) -> Result<i64, ApiError> {
        let text = self.exact(names)?;
        let digits = text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
        digits
            .then(|| text.parse::<i64>().ok())
            .flatten()
            .ok_or_else(|| ApiError::Validation(format!("{} must be a positive whole number", names[0])))
    }

    /// An amount in rupees, at most two decimals, exactly as sent: no
    /// spaces, no sign, no leading zero (`"0.50"` is fine, `"0100"` is
    /// not), held to `rule`.
    pub fn amount(&self, names: &[&str], rule: AmountRule) -> Result<Paise, ApiError> {
        let text = self.exact(names)?;
        let rupees = text.split('.').next().unwrap_or_default();
        if rupees.len() > 1 && rupees.starts_with('0') {
            return Err(ApiError::Validation(format!("{} must not have a leading zero", names[0])));
        }
        let amount = Paise::parse(&text).map_err(|e| ApiError::Validation(format!("{} {e}", names[0])))?;
        if rule == AmountRule::WholeRupees && amount.get() % 100 != 0 {
            return Err(ApiError::Validation(format!("{} must be whole rupees", names[0])));
        }
        if amount <= Paise::ZERO {
            return Err(ApiError::Validation(format!("{} must be more than 0", names[0])));
        }
        Ok(amount)
    }

    /// The partner's reference under any of its spellings, exactly as sent.
    pub fn reference(&self) -> Result<ReferenceId, ApiError> {
        let text = self.exact(&["referenceid", "ReferanceID", "refid"])?;
        let reference = ReferenceId::parse(&text).map_err(|e| ApiError::Validation(format!("referenceid {e}")))?;
        // Into the handler's span, when it has the field, so its lines can be followed.
        tracing::Span::current().record("reference", reference.as_str());
        Ok(reference)
    }

    /// A six-digit OTP.
    /// Sent as a JSON number (AOPay's refund page does), it is read back to
    /// its six digits: a number cannot keep a leading zero (`12345` is `012345`).
    pub fn otp(&self) -> Result<String, ApiError> {
        let otp = match self.get(&["OTP"])? {
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n) if n < 1_000_000 => format!("{n:06}"),
                _ => self.exact(&["OTP"])?,
            },
            _ => self.exact(&["OTP"])?,
        };
        let ok = otp.len() == 6 && otp.bytes().all(|b| b.is_ascii_digit());
        ok.then_some(otp).ok_or_else(|| ApiError::Validation("OTP must be 6 digits".into()))
    }

    /// The `Stateresp` token an OTP was sent with.
    pub fn stateresp(&self) -> Result<String, ApiError> {
        self.code(&["Stateresp"])
    }

    /// The `Stateresp`, where a page leaves it out (`ClaimRefund`).
    pub fn optional_stateresp(&self) -> Result<Option<String>, ApiError> {
        match self.get(&["Stateresp"])? {
            None => Ok(None),
            Some(_) => self.stateresp().map(Some),
        }
    }

    /// Whether any of `names` was sent (and is not null).
    pub fn has(&self, names: &[&str]) -> Result<bool, ApiError> {
        Ok(self.get(names)?.is_some())
    }

    /// payrail's `ackno` of a transfer, where one is given: digits only.
    pub fn optional_ackno(&self) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.raw(&["ackno"])? else { return Ok(None) };
        let refused = || ApiError::Validation("ackno must be the transaction's ackno: digits only".into());
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refused());
        }
        let ackno: i64 = text.parse().map_err(|_| refused())?;
        tracing::Span::current().record("ackno", ackno);
        Ok(Some(ackno))
    }
}

#[cfg(test)]
mod tests {
    use super::Fields;

    fn otp(body: &str) -> Result<String, String> {
        let fields = Fields::parse(body.as_bytes()).map_err(|e| e.to_string())?;
        fields.otp().map_err(|e| e.to_string())
    }

    #[test]
    fn an_otp_sent_as_a_number_keeps_its_six_digits() {
        assert_eq!(otp(r#"{"otp": 246810}"#), Ok("246810".to_owned()));
        assert_eq!(otp(r#"{"otp": 12345}"#), Ok("012345".to_owned()), "a number has no leading zero");
        assert_eq!(otp(r#"{"OTP": "012345"}"#), Ok("012345".to_owned()));
        assert!(otp(r#"{"otp": 1234567}"#).is_err());
        assert!(otp(r#"{"otp": "12345"}"#).is_err(), "a string is read exactly as sent");
        assert!(otp(r#"{"otp": -12345}"#).is_err());
    }
}
