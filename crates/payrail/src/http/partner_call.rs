//! What every DMT V1 and BBPS endpoint beyond the two status pages starts
//! with: the body read as a JSON object, the partner it names authenticated
//! and admitted, and its fields read by name.
//!
//! Field names match case-insensitively, as ASP.NET's model binding does on
//! the host the AOPay documents come from (`MobileNo`, `mobileno`), and each
//! field has the aliases real clients send. A value the documents show as a
//! string may also come as a JSON number; it is read as its digits.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use serde_json::{Map, Value};

use super::auth::{authenticate, claimed_partner, Caller};
use super::body::{parse_json, LimitedBody};
use super::error::ApiError;
use super::AppState;
use crate::domain::remitter::MobileNumber;
use crate::domain::{Paise, ReferenceId, RegistrationId};

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
        let fields = Fields(parse_json::<Map<String, Value>>(&bytes)?);
        let registration = fields.required_text(&["RegistrationID"])?;
        let claimed = claimed_partner(&registration)?;
        let partner = state.store.find_partner(claimed).await?;
        authenticate(state, &caller, partner.as_ref()).await?;
        state.admit(partner.as_ref().map(|p| p.registration_id))?;
        Ok(PartnerCall { partner: claimed, fields })
    }
}

/// A request body's fields.
pub struct Fields(Map<String, Value>);

/// The longest text field accepted (beyond it a value is surely wrong).
const MAX_TEXT: usize = 100;

impl Fields {
    /// The value under the first of `names` present (any case), if not null.
    fn get(&self, names: &[&str]) -> Option<&Value> {
        names.iter().find_map(|name| {
            self.0.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v).filter(|v| !v.is_null())
        })
    }

    /// A text field (a number is read as its digits), trimmed; `None` if absent or empty.
    pub fn text(&self, names: &[&str]) -> Result<Option<String>, ApiError> {
        let text = match self.get(names) {
            None => return Ok(None),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(Value::Number(n)) if n.is_u64() => n.to_string(),
            Some(_) => return Err(ApiError::Validation(format!("{} must be a string", names[0]))),
        };
        if text.chars().count() > MAX_TEXT {
            return Err(ApiError::Validation(format!("{} must be at most {MAX_TEXT} characters", names[0])));
        }
        Ok(Some(text).filter(|t| !t.is_empty()))
    }

    /// A text field that must be there.
    pub fn required_text(&self, names: &[&str]) -> Result<String, ApiError> {
        self.text(names)?.ok_or_else(|| ApiError::Validation(format!("{} is missing", names[0])))
    }

    /// A mobile number.
    pub fn mobile(&self, names: &[&str]) -> Result<MobileNumber, ApiError> {
        let text = self.required_text(names)?;
        MobileNumber::parse(&text).map_err(|e| ApiError::Validation(format!("{} {e}", names[0])))
    }

    /// A positive whole number (an id).
    pub fn id(&self, names: &[&str]) -> Result<i64, ApiError> {
        let text = self.required_text(names)?;
        text.parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::Validation(format!("{} must be a positive whole number", names[0])))
    }

    /// An amount in rupees, at most two decimals; `whole` refuses paise.
    pub fn amount(&self, names: &[&str], whole: bool) -> Result<Paise, ApiError> {
        let text = self.required_text(names)?;
        let amount = Paise::parse(&text).map_err(|e| ApiError::Validation(format!("{} {e}", names[0])))?;
        if whole && amount.get() % 100 != 0 {
            return Err(ApiError::Validation(format!("{} must be whole rupees", names[0])));
        }
        if amount <= Paise::ZERO {
            return Err(ApiError::Validation(format!("{} must be more than 0", names[0])));
        }
        Ok(amount)
    }

    /// The partner's reference under any of its spellings.
    pub fn reference(&self) -> Result<ReferenceId, ApiError> {
        let text = self.required_text(&["referenceid", "ReferanceID", "refid"])?;
        ReferenceId::parse(&text).map_err(|e| ApiError::Validation(format!("referenceid {e}")))
    }

    /// A six-digit OTP.
    pub fn otp(&self) -> Result<String, ApiError> {
        let otp = self.required_text(&["OTP"])?;
        let ok = otp.len() == 6 && otp.bytes().all(|b| b.is_ascii_digit());
        ok.then_some(otp).ok_or_else(|| ApiError::Validation("OTP must be 6 digits".into()))
    }

    /// The `Stateresp` token an OTP was sent with.
    pub fn stateresp(&self) -> Result<String, ApiError> {
        self.required_text(&["Stateresp", "stateresp"])
    }
}
