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

/// How many OTP texts one mobile may receive, counted over every partner
/// (SMS pumping: each text costs money, and a flood harms the remitter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLimits {
    /// At most this many in any [`TEN_MINUTES_SECS`]; 0 for no limit.
    pub per_ten_minutes: u32,
    /// At most this many in any [`TEXT_DAY_SECS`]; 0 for no limit.
    pub per_day: u32,
}

/// The short window.
pub const TEN_MINUTES_SECS: i64 = 10 * 60;
/// The long window, and how long a text is remembered.
pub const TEXT_DAY_SECS: i64 = 24 * 60 * 60;

impl Default for TextLimits {
    fn default() -> Self {
        TextLimits { per_ten_minutes: 5, per_day: 20 }
    }
}

impl TextLimits {
    /// `None` if a text may go at `now`, given when (unix seconds, any
    /// order) the texts of the last [`TEXT_DAY_SECS`] went; otherwise the
    /// first moment one may go again.
    pub fn next_allowed(&self, sent: &[i64], now: i64) -> Option<Timestamp> {
        let mut sent = sent.to_vec();
        sent.sort_unstable();
        let windows = [(TEN_MINUTES_SECS, self.per_ten_minutes), (TEXT_DAY_SECS, self.per_day)];
        windows
            .into_iter()
            .filter(|(_, max)| *max > 0)
            .filter_map(|(window, max)| {
                let inside: Vec<i64> = sent.iter().copied().filter(|at| at + window > now).collect();
                // Once the oldest texts that put it over leave the window, one fits.
                let over = inside.len().checked_sub(max as usize)?;
                inside.get(over).map(|at| at + window)
            })
            .max()
            .map(Timestamp::from_unix)
    }
}

/// A `stateresp` made of 16 random bytes: a version 4 UUID in lower case,
/// `8-4-4-4-12` hex digits (RFC 9562), as AOPay's 202 shows one.
pub fn stateresp_from(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stateresp_is_a_lower_case_version_4_uuid() {
        assert_eq!(stateresp_from([0; 16]), "00000000-0000-4000-8000-000000000000");
        assert_eq!(stateresp_from([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let bytes = [0xb3, 0xc1, 0xe5, 0x19, 0xcf, 0x15, 0x41, 0x45, 0x8c, 0x26, 0xc3, 0xd0, 0x3e, 0x9d, 0x2f, 0x00];
        assert_eq!(stateresp_from(bytes), "b3c1e519-cf15-4145-8c26-c3d03e9d2f00", "the seed's own");
    }

    #[test]
    fn the_sixth_text_in_ten_minutes_waits_for_the_first_to_leave_the_window() {
        let limits = TextLimits::default();
        let sent = [100, 160, 220, 280];
        assert_eq!(limits.next_allowed(&sent, 300), None);
        let sent = [100, 160, 220, 280, 300];
        assert_eq!(limits.next_allowed(&sent, 310), Some(Timestamp::from_unix(700)));
        assert_eq!(limits.next_allowed(&sent, 700), None);
    }

    #[test]
    fn the_day_limit_counts_the_last_twenty_four_hours() {
        let limits = TextLimits { per_ten_minutes: 0, per_day: 3 };
        let sent = [1_000, 50_000, 80_000];
        assert_eq!(limits.next_allowed(&sent, 81_000), Some(Timestamp::from_unix(1_000 + TEXT_DAY_SECS)));
        assert_eq!(limits.next_allowed(&sent, 1_000 + TEXT_DAY_SECS), None);
        let none = TextLimits { per_ten_minutes: 0, per_day: 0 };
        assert_eq!(none.next_allowed(&[1, 2, 3, 4, 5, 6], 7), None);
    }

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
