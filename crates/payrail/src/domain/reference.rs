//! Identifiers that partners send: reference ids and registration ids.

use std::fmt;

/// A partner-chosen transaction reference: 1 to 64 characters of letters,
/// digits, `-`, `_`, `.` and `/` (SPEC §1). Unique per partner and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReferenceId(String);

/// Why a text is not a reference id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The empty string.
    #[error("must not be empty")]
    Empty,
    /// More than 64 characters.
    #[error("must be at most 64 characters")]
    TooLong,
    /// A character outside the allowed set.
    #[error("may contain only letters, digits, '-', '_', '.' and '/'")]
    BadCharacter,
}

impl ReferenceId {
    /// The longest reference payrail accepts.
    pub const MAX_LEN: usize = 64;

    /// Checks `text` against the rules of SPEC §1.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(ReferenceError::TooLong);
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/');
        if !text.bytes().all(allowed) {
            return Err(ReferenceError::BadCharacter);
        }
        Ok(ReferenceId(text.to_owned()))
    }

    /// The reference as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A partner's public identifier, `AOP-<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistrationId(i64);

/// Why a text is not a registration id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be of the form AOP-<number>")]
pub struct RegistrationIdError;

impl RegistrationId {
    /// The registration id with number `n`.
    pub const fn new(number: i64) -> Self {
        RegistrationId(number)
    }

    /// The number after `AOP-`; also the partner's key in the store.
    pub const fn number(self) -> i64 {
        self.0
    }

    /// Parses `AOP-<n>`; the prefix is matched case-insensitively, as the
    /// ASP.NET host the documents come from did.
    pub fn parse(text: &str) -> Result<Self, RegistrationIdError> {
        let digits = match text.get(..4) {
            Some(prefix) if prefix.eq_ignore_ascii_case("AOP-") => &text[4..],
            _ => return Err(RegistrationIdError),
        };
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegistrationIdError);
        }
        digits.parse().map(RegistrationId).map_err(|_| RegistrationIdError)
    }
}

impl fmt::Display for RegistrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AOP-{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for good in ["12345678927", "a", "A-b_c.d/e", &"9".repeat(64)] {
            assert!(ReferenceId::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        assert_eq!(ReferenceId::parse(""), Err(ReferenceError::Empty));
        assert_eq!(ReferenceId::parse(&"9".repeat(65)), Err(ReferenceError::TooLong));
        for bad in ["a b", "a'b", "é", "a\"", "a;DROP", "a\\b", "a\n"] {
            assert_eq!(ReferenceId::parse(bad), Err(ReferenceError::BadCharacter), "{bad:?}");
        }
    }

    #[test]
    fn registration_ids_round_trip() {
        let id = RegistrationId::parse("AOP-554").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.number(), 554);
        assert_eq!(id.to_string(), "AOP-554");
        assert_eq!(RegistrationId::parse("aop-554"), Ok(id));
        for bad in ["AOP-", "AOP554", "AOP-5a", "XYZ-1", "", "AOP--1", "AOP-1234567890123456"] {
            assert_eq!(RegistrationId::parse(bad), Err(RegistrationIdError), "{bad:?}");
        }
    }
}
