//! One-time passwords for remitter registration, transfers and refunds.
//!
//! An OTP is six digits sent to the remitter's mobile. payrail keeps only
//! SHA-256(`token` `:` `code`), where `token` is the random `stateresp` the
//! partner gets back and must present with the code. A code is good for
//! [`OTP_LIFETIME_SECS`], for [`OTP_MAX_ATTEMPTS`] wrong guesses, and once.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{RegistrationId, Timestamp};

/// How long a code stays valid.
pub const OTP_LIFETIME_SECS: i64 = 90;
/// How many wrong codes end an OTP.
pub const OTP_MAX_ATTEMPTS: i64 = 3;

/// What an OTP authorises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpPurpose {
    /// Registering a remitter.
    Registration,
    /// Making one transfer.
    Transfer,
    /// Claiming the refund of a failed transfer.
    Refund,
}

impl OtpPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OtpPurpose::Registration => "registration",
            OtpPurpose::Transfer => "transfer",
            OtpPurpose::Refund => "refund",
        }
    }
}

/// An OTP as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpRecord {
    /// The random token given to the partner (`stateresp`); the key.
    pub token: String,
    /// The partner that asked for it.
    pub partner: RegistrationId,
    /// What it is for.
    pub purpose: OtpPurpose,
    /// What exactly it authorises, e.g. `9876543210` or
    /// `9876543210|12|100000|IMPS`; checked against the request that uses it.
    pub subject: String,
    /// SHA-256 of `token:code`.
    pub code_hash: Vec<u8>,
    /// When it stops being valid.
    pub expires_at: Timestamp,
    /// Wrong codes tried so far.
    pub attempts: i64,
    /// Whether it has been used.
    pub used: bool,
}

/// The result of presenting a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtpCheck {
    /// Right code: the OTP is now used. Carries its subject.
    Accepted(String),
    /// Wrong code; this many tries are left.
    Wrong(i64),
    /// Past its lifetime.
    Expired,
    /// Used already, or out of tries.
    Spent,
    /// No such token for this partner and purpose.
    Unknown,
}

/// A freshly made OTP: the code to send, and the record to store.
#[derive(Debug, Clone)]
pub struct IssuedOtp {
    /// The six digits, sent to the remitter and never stored.
    pub code: String,
    /// What the store keeps.
    pub record: OtpRecord,
}

fn hash(token: &str, code: &str) -> Vec<u8> {
    Sha256::new().chain_update(token).chain_update(":").chain_update(code).finalize().to_vec()
}

impl OtpRecord {
    /// Makes a new OTP for `subject` from random `token` and `code`.
    pub fn issue(
        partner: RegistrationId,
        purpose: OtpPurpose,
        subject: String,
        token: String,
        code: String,
        now: Timestamp,
    ) -> IssuedOtp {
        let record = OtpRecord {
            code_hash: hash(&token, &code),
            token,
            partner,
            purpose,
            subject,
            expires_at: Timestamp::from_unix(now.unix() + OTP_LIFETIME_SECS),
            attempts: 0,
            used: false,
        };
        IssuedOtp { code, record }
    }

    /// Presents `code` at `now`, updating the record (attempts, used).
    pub fn check(&mut self, code: &str, now: Timestamp) -> OtpCheck {
        if self.used || self.attempts >= OTP_MAX_ATTEMPTS {
            return OtpCheck::Spent;
        }
        if now >= self.expires_at {
            return OtpCheck::Expired;
        }
        if bool::from(hash(&self.token, code).ct_eq(&self.code_hash)) {
            self.used = true;
            return OtpCheck::Accepted(self.subject.clone());
        }
        self.attempts += 1;
        OtpCheck::Wrong(OTP_MAX_ATTEMPTS - self.attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(now: Timestamp) -> OtpRecord {
        OtpRecord::issue(RegistrationId::new(1), OtpPurpose::Transfer, "s".into(), "tok".into(), "123456".into(), now)
            .record
    }

    #[test]
    fn the_right_code_works_once() {
        let now = Timestamp::from_unix(1000);
        let mut otp = issued(now);
        assert_ne!(otp.code_hash, b"123456".to_vec());
        assert_eq!(otp.check("123456", now), OtpCheck::Accepted("s".into()));
        assert_eq!(otp.check("123456", now), OtpCheck::Spent);
    }

    #[test]
    fn wrong_codes_run_out_and_then_even_the_right_one_fails() {
        let now = Timestamp::from_unix(1000);
        let mut otp = issued(now);
        assert_eq!(otp.check("000000", now), OtpCheck::Wrong(2));
        assert_eq!(otp.check("000001", now), OtpCheck::Wrong(1));
        assert_eq!(otp.check("000002", now), OtpCheck::Wrong(0));
        assert_eq!(otp.check("123456", now), OtpCheck::Spent);
    }

    #[test]
    fn a_code_expires_after_ninety_seconds() {
        let now = Timestamp::from_unix(1000);
        let mut otp = issued(now);
        assert_eq!(otp.clone().check("123456", Timestamp::from_unix(1089)), OtpCheck::Accepted("s".into()));
        assert_eq!(otp.check("123456", Timestamp::from_unix(1090)), OtpCheck::Expired);
    }
}
