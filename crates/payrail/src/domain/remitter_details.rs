//! What a remitter tells about themself for a transfer, beyond the mobile:
//! date of birth, address, PIN code, GST state and, with a transfer, where
//! they are. Paysprint's transact call carries the first four; payrail keeps
//! them with the beneficiary they were given with, and a transfer's OTP
//! request may give them anew.

use super::Timestamp;

/// Why a detail was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetailError {
    /// Not six digits, the first not 0.
    #[error("must be a 6-digit PIN code not starting with 0")]
    Pincode,
    /// Not a GST state code.
    #[error("must be a two-digit GST state code (01 to 38, or 97)")]
    GstState,
    /// Not a real date in the given format, or not in the past.
    #[error("must be a past date written {0}")]
    Date(&'static str),
    /// Not a coordinate.
    #[error("must be a decimal number from {0} to {1}")]
    Coordinate(i32, i32),
}

/// An Indian postal PIN code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pincode(String);

impl Pincode {
    /// Reads six digits, the first not 0.
    pub fn parse(text: &str) -> Result<Self, DetailError> {
        let ok = text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
        ok.then(|| Pincode(text.to_owned())).ok_or(DetailError::Pincode)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A GST state code: `01` (Jammu and Kashmir) to `38` (Ladakh), or `97`
/// (other territory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GstState(String);

impl GstState {
    /// Reads two digits naming a state.
    pub fn parse(text: &str) -> Result<Self, DetailError> {
        let ok = text.len() == 2
            && text.bytes().all(|b| b.is_ascii_digit())
            && text.parse::<u8>().is_ok_and(|n| (1..=38).contains(&n) || n == 97);
        ok.then(|| GstState(text.to_owned())).ok_or(DetailError::GstState)
    }

    /// The two digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A date of birth, held as `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirthDate(String);

impl BirthDate {
    /// Reads `DD<sep>MM<sep>YYYY` (`-` for `RegisterBaneficiary`, `/` for
    /// `TransactionSendOtp`): a real date after 1900 and before `now`.
    pub fn parse(text: &str, separator: char, now: Timestamp) -> Result<Self, DetailError> {
        let format = if separator == '/' { "DD/MM/YYYY" } else { "DD-MM-YYYY" };
        let refused = DetailError::Date(format);
        let parts: Vec<&str> = text.split(separator).collect();
        let [day, month, year] = parts.as_slice() else { return Err(refused) };
        if day.len() != 2 || month.len() != 2 || year.len() != 4 || !year.starts_with(['1', '2']) {
            return Err(refused);
        }
        let iso = format!("{year}-{month}-{day}");
        match Timestamp::parse_ist_date(&iso) {
            Ok(at) if at < now && year >= &"1900" => Ok(BirthDate(iso)),
            _ => Err(refused),
        }
    }

    /// Reads the stored `YYYY-MM-DD`.
    pub fn from_stored(iso: &str) -> Result<Self, DetailError> {
        Timestamp::parse_ist_date(iso).map(|_| BirthDate(iso.to_owned())).map_err(|_| DetailError::Date("YYYY-MM-DD"))
    }

    /// `YYYY-MM-DD`, as stored.
    pub fn as_iso(&self) -> &str {
        &self.0
    }

    /// `DD-MM-YYYY`, as Paysprint's transact call takes it.
    pub fn to_dd_mm_yyyy(&self) -> String {
        let (year, rest) = self.0.split_at(4);
        let (month, day) = (&rest[1..3], &rest[4..6]);
        format!("{day}-{month}-{year}")
    }
}

/// The remitter's details a transfer carries upstream; each may be unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemitterDetails {
    /// Date of birth.
    pub dob: Option<BirthDate>,
    /// Postal address.
    pub address: Option<String>,
    /// PIN code.
    pub pincode: Option<Pincode>,
    /// GST state code.
    pub gst_state: Option<GstState>,
}

impl RemitterDetails {
    /// These details, each filled from `fallback` where unknown here.
    pub fn or(self, fallback: &RemitterDetails) -> RemitterDetails {
        RemitterDetails {
            dob: self.dob.or_else(|| fallback.dob.clone()),
            address: self.address.or_else(|| fallback.address.clone()),
            pincode: self.pincode.or_else(|| fallback.pincode.clone()),
            gst_state: self.gst_state.or_else(|| fallback.gst_state.clone()),
        }
    }
}

/// A latitude or longitude, as sent (a decimal within `bound` degrees).
pub fn parse_coordinate(text: &str, bound: i32) -> Result<String, DetailError> {
    let plain = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    match text.parse::<f64>() {
        Ok(value) if plain && value.abs() <= f64::from(bound) => Ok(text.to_owned()),
        _ => Err(DetailError::Coordinate(-bound, bound)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse_ist_date("2026-12-01").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn pincodes_are_six_digits_not_starting_with_zero() {
        assert!(Pincode::parse("560001").is_ok());
        for bad in ["060001", "56000", "5600011", "56000a", ""] {
            assert_eq!(Pincode::parse(bad), Err(DetailError::Pincode), "{bad}");
        }
    }

    #[test]
    fn gst_states_are_the_known_codes() {
        for good in ["01", "07", "38", "97"] {
            assert!(GstState::parse(good).is_ok(), "{good}");
        }
        for bad in ["00", "39", "7", "007", "ab", "99"] {
            assert!(GstState::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn birth_dates_are_real_past_dates_in_the_page_format() {
        let dob = BirthDate::parse("20-05-2020", '-', now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((dob.as_iso(), dob.to_dd_mm_yyyy().as_str()), ("2020-05-20", "20-05-2020"));
        assert!(BirthDate::parse("20/08/2000", '/', now()).is_ok());
        for bad in ["20/08/2000", "31-02-2000", "2000-05-20", "20-05-2030", "1-5-2000", "20-05-1899"] {
            assert!(BirthDate::parse(bad, '-', now()).is_err(), "{bad}");
        }
    }

    #[test]
    fn coordinates_are_plain_decimals_within_bounds() {
        assert_eq!(parse_coordinate("28.6090", 90), Ok("28.6090".into()));
        assert!(parse_coordinate("-77.2362", 180).is_ok());
        for bad in ["91", "NaN", "1e2", "", "28,6"] {
            assert!(parse_coordinate(bad, 90).is_err(), "{bad}");
        }
    }
}
