//! A new remitter's e-KYC: the Aadhaar number (with its Verhoeff check
//! digit), the rule of two attempts a day per mobile, and the KYC record that
//! `RegisterRemitter` needs within 30 minutes, once.
//!
//! The fingerprint (PID) data is not modelled here on purpose: it passes
//! from the request to the provider and is never kept.

use std::fmt;

use super::remitter::MobileNumber;
use super::{RegistrationId, Timestamp};

/// e-KYC attempts a mobile may make in a day.
pub const EKYC_ATTEMPTS_PER_DAY: usize = 2;
/// How long a mobile is blocked after its last allowed attempt.
pub const EKYC_BLOCK_SECS: i64 = 24 * 60 * 60;
/// How long an e-KYC may wait for the registration it is for.
pub const KYC_LIFETIME_SECS: i64 = 30 * 60;

/// An Aadhaar number: 12 digits, the first 2 to 9, the last a Verhoeff
/// check digit. Its `Debug` shows only the last four digits.
#[derive(Clone, PartialEq, Eq)]
pub struct AadhaarNumber(String);

/// Why a text is not an Aadhaar number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AadhaarError {
    /// Not twelve digits.
    #[error("must be 12 digits")]
    Length,
    /// Starts with 0 or 1, which UIDAI never issues.
    #[error("must not start with 0 or 1")]
    LeadingDigit,
    /// The last digit is not the Verhoeff check digit of the first eleven.
    #[error("has a wrong check digit (Verhoeff): mistyped?")]
    CheckDigit,
}

impl AadhaarNumber {
    /// Reads an Aadhaar number, refusing anything else.
    pub fn parse(text: &str) -> Result<Self, AadhaarError> {
        if text.len() != 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AadhaarError::Length);
        }
        if matches!(text.as_bytes()[0], b'0' | b'1') {
            return Err(AadhaarError::LeadingDigit);
        }
        if !verhoeff_valid(text) {
            return Err(AadhaarError::CheckDigit);
        }
        Ok(AadhaarNumber(text.to_owned()))
    }

    /// The twelve digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AadhaarNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AadhaarNumber(XXXXXXXX{})", self.0.get(8..).unwrap_or_default())
    }
}

/// Verhoeff's multiplication table (the dihedral group D5).
const MULTIPLY: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];

/// Verhoeff's permutation table: row `i` is applied to the digit `i`
/// places from the right.
const PERMUTE: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 8, 7, 6, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// Verhoeff's inverse table.
const INVERSE: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// Verhoeff's checksum of `digits` (ASCII digits), the rightmost digit at
/// position `first`: 0 when checking a number with its check digit, 1 when
/// computing the check digit to append.
fn verhoeff_sum(digits: &str, first: usize) -> u8 {
    digits.bytes().rev().enumerate().fold(0, |c, (i, b)| {
        let d = usize::from(b.wrapping_sub(b'0') % 10);
        MULTIPLY[usize::from(c)][usize::from(PERMUTE[(i + first) % 8][d])]
    })
}

/// Whether the last of `digits` (ASCII digits) is the Verhoeff check digit of the rest.
pub fn verhoeff_valid(digits: &str) -> bool {
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && verhoeff_sum(digits, 0) == 0
}

/// The Verhoeff check digit to append to `digits` (ASCII digits).
pub fn verhoeff_check_digit(digits: &str) -> u8 {
    INVERSE[usize::from(verhoeff_sum(digits, 1))]
}

/// Until when a mobile whose e-KYC attempts were made at `attempts` (unix
/// seconds, any order, at least those of the last two days) may not try
/// again at `now`: once two attempts fall within a day of each other, the
/// mobile is blocked for a day from the later one. `None`: it may try.
pub fn ekyc_blocked_until(attempts: &[i64], now: i64) -> Option<Timestamp> {
    let mut sorted = attempts.to_vec();
    sorted.sort_unstable();
    let window = sorted.windows(EKYC_ATTEMPTS_PER_DAY).last()?;
    let (first, last) = (window[0], window[EKYC_ATTEMPTS_PER_DAY - 1]);
    let until = last + EKYC_BLOCK_SECS;
    (last - first < EKYC_BLOCK_SECS && now < until).then(|| Timestamp::from_unix(until))
}

/// A successful e-KYC, waiting for the registration it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KycRecord {
    /// The `KycId` the partner registers with (the e-KYC's `stateresp`).
    pub kyc_id: String,
    /// The partner that asked for it.
    pub partner: RegistrationId,
    /// The remitter's mobile.
    pub mobile: MobileNumber,
    /// The upstream's id for the e-KYC.
    pub upstream_id: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// Whether a registration used it.
    pub used: bool,
}

/// Why a `KycId` does not allow a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KycRefusal {
    /// No e-KYC of this partner for this mobile has this id.
    #[error("matches no e-KYC of this remitter: do the RemitterEKyc first")]
    Unknown,
    /// The e-KYC was more than 30 minutes ago.
    #[error("is from an e-KYC more than 30 minutes old: do the RemitterEKyc again")]
    Expired,
    /// A registration used it already.
    #[error("was already used for a registration")]
    Used,
}

impl KycRecord {
    /// Whether it allows `partner` to register `mobile` at `now`.
    pub fn allows(&self, partner: RegistrationId, mobile: &MobileNumber, now: Timestamp) -> Result<(), KycRefusal> {
        if self.partner != partner || &self.mobile != mobile {
            Err(KycRefusal::Unknown)
        } else if self.used {
            Err(KycRefusal::Used)
        } else if now.unix() >= self.created_at.unix() + KYC_LIFETIME_SECS {
            Err(KycRefusal::Expired)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Valid numbers from published Verhoeff examples and UIDAI's sample.
    const VALID: [&str; 4] = ["675828001083", "236", "2363", "999999990019"];

    #[test]
    fn known_valid_numbers_pass_and_the_check_digit_is_computed() {
        assert!(verhoeff_valid("2363"), "Wikipedia's example: 236 with check digit 3");
        assert_eq!(verhoeff_check_digit("236"), 3);
        assert_eq!(verhoeff_check_digit("12345"), 1);
        assert!(verhoeff_valid("123451"));
        assert!(verhoeff_valid("999999990019"), "UIDAI's sandbox test number");
        assert!(AadhaarNumber::parse("999999990019").is_ok());
        for v in VALID.iter().filter(|v| v.len() == 12) {
            let with = format!("{}{}", &v[..11], verhoeff_check_digit(&v[..11]));
            assert_eq!(&with, v);
        }
    }

    #[test]
    fn every_single_digit_error_is_detected() {
        let good = "999999990019";
        for position in 0..good.len() {
            for digit in b'0'..=b'9' {
                let mut bytes = good.as_bytes().to_vec();
                if bytes[position] == digit {
                    continue;
                }
                bytes[position] = digit;
                let bad = String::from_utf8(bytes).unwrap_or_default();
                assert!(!verhoeff_valid(&bad), "{bad}");
            }
        }
    }

    #[test]
    fn every_adjacent_transposition_is_detected() {
        for number in ["999999990019", "234567890124", "675828001083"] {
            let number = if verhoeff_valid(number) {
                number.to_owned()
            } else {
                format!("{}{}", &number[..11], verhoeff_check_digit(&number[..11]))
            };
            for i in 0..number.len() - 1 {
                let mut bytes = number.as_bytes().to_vec();
                if bytes[i] == bytes[i + 1] {
                    continue;
                }
                bytes.swap(i, i + 1);
                let swapped = String::from_utf8(bytes).unwrap_or_default();
                assert!(!verhoeff_valid(&swapped), "{number} → {swapped}");
            }
        }
    }

    #[test]
    fn an_aadhaar_number_is_twelve_digits_not_starting_with_0_or_1() {
        assert_eq!(AadhaarNumber::parse("99999999001"), Err(AadhaarError::Length));
        assert_eq!(AadhaarNumber::parse("9999 9999 0019"), Err(AadhaarError::Length));
        assert_eq!(AadhaarNumber::parse("99999999001x"), Err(AadhaarError::Length));
        let leading = |d: char| format!("{d}{}", "23456789012");
        for d in ['0', '1'] {
            let text = leading(d);
            let fixed = format!("{}{}", &text[..11], verhoeff_check_digit(&text[..11]));
            assert_eq!(AadhaarNumber::parse(&fixed), Err(AadhaarError::LeadingDigit));
        }
        assert_eq!(AadhaarNumber::parse("999999990018"), Err(AadhaarError::CheckDigit));
        let parsed = AadhaarNumber::parse("999999990019").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format!("{parsed:?}"), "AadhaarNumber(XXXXXXXX0019)");
    }

    #[test]
    fn two_attempts_within_a_day_block_the_mobile_for_a_day_from_the_second() {
        let day = EKYC_BLOCK_SECS;
        assert_eq!(ekyc_blocked_until(&[], 0), None);
        assert_eq!(ekyc_blocked_until(&[100], 200), None);
        assert_eq!(ekyc_blocked_until(&[100, 3_700], 3_800), Some(Timestamp::from_unix(3_700 + day)));
        assert_eq!(ekyc_blocked_until(&[3_700, 100], 3_700 + day - 1), Some(Timestamp::from_unix(3_700 + day)));
        assert_eq!(ekyc_blocked_until(&[100, 3_700], 3_700 + day), None);
        // A day or more apart: two attempts in two days, no block.
        assert_eq!(ekyc_blocked_until(&[100, 100 + day], 200 + day), None);
        // Only the latest two count.
        assert_eq!(ekyc_blocked_until(&[0, 10, day + 20], day + 30), None);
    }

    #[test]
    fn a_kyc_record_allows_its_partner_and_mobile_once_within_thirty_minutes() {
        let mobile = MobileNumber::parse("9876543210").unwrap_or_else(|e| panic!("{e}"));
        let record = KycRecord {
            kyc_id: "k".into(),
            partner: RegistrationId::new(5),
            mobile: mobile.clone(),
            upstream_id: "u".into(),
            created_at: Timestamp::from_unix(1_000),
            used: false,
        };
        let at = Timestamp::from_unix;
        assert_eq!(record.allows(RegistrationId::new(5), &mobile, at(1_000 + 29 * 60)), Ok(()));
        assert_eq!(record.allows(RegistrationId::new(5), &mobile, at(1_000 + 30 * 60)), Err(KycRefusal::Expired));
        assert_eq!(record.allows(RegistrationId::new(6), &mobile, at(1_000)), Err(KycRefusal::Unknown));
        let other = MobileNumber::parse("9876543211").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(record.allows(RegistrationId::new(5), &other, at(1_000)), Err(KycRefusal::Unknown));
        let used = KycRecord { used: true, ..record };
        assert_eq!(used.allows(RegistrationId::new(5), &mobile, at(1_000)), Err(KycRefusal::Used));
    }
}
