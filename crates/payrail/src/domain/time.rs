//! Instants stored as UTC unix seconds and rendered in India time
//! (UTC+05:30, no daylight saving) as `YYYY-MM-DD HH:MM:SS`.
//!
//! The civil-date conversions are Howard Hinnant's `days_from_civil` and
//! `civil_from_days`; they are a dozen lines, exact for the proleptic
//! Gregorian calendar, and keep a date crate off the status hot path.

use std::time::{SystemTime, UNIX_EPOCH};

/// India Standard Time's offset from UTC, in seconds.
const IST_OFFSET: i64 = 5 * 3600 + 30 * 60;

/// An instant, in whole seconds since the unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a text is not an India-time `YYYY-MM-DD HH:MM:SS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an India-time date as YYYY-MM-DD HH:MM:SS")]
pub struct TimeFormatError;

impl Timestamp {
    /// The instant `seconds` after the unix epoch.
    pub const fn from_unix(seconds: i64) -> Self {
        Timestamp(seconds)
    }

    /// Seconds since the unix epoch.
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// The instant `seconds` later (earlier when negative).
    pub const fn plus_secs(self, seconds: i64) -> Self {
        Timestamp(self.0.saturating_add(seconds))
    }

    /// The current instant from the system clock. Outside the store, code
    /// reads the [`Clock`](super::Clock) it is handed instead, so that tests
    /// can move time.
    pub fn now() -> Self {
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        Timestamp(seconds)
    }

    /// The calendar date in India on this instant.
    pub fn ist_date(self) -> (i64, u32, u32) {
        civil_from_days((self.0 + IST_OFFSET).div_euclid(86_400))
    }

    /// Midnight India time on the first day of this instant's month there.
    pub fn ist_month_start(self) -> Timestamp {
        let (year, month, _) = self.ist_date();
        Timestamp(days_from_civil(year, month, 1) * 86_400 - IST_OFFSET)
    }

    /// Midnight India time on `YYYY-MM-DD`.
    pub fn parse_ist_date(text: &str) -> Result<Self, TimeFormatError> {
        Self::parse_ist(&format!("{text} 00:00:00"))
    }

    /// Renders as `YYYY-MM-DD HH:MM:SS` in India time.
    pub fn to_ist_string(self) -> String {
        let local = self.0 + IST_OFFSET;
        let (year, month, day) = civil_from_days(local.div_euclid(86_400));
        let second_of_day = local.rem_euclid(86_400);
        if !(0..=9999).contains(&year) {
            // Outside four digits (never a real record's time).
            return self.to_ist_string_formatted();
        }
        // Digit by digit: every bill payment's status answer renders its `dateadded`.
        let mut text = *b"0000-00-00 00:00:00";
        let mut put = |at: usize, value: i64, width: usize| {
            let mut value = value;
            for i in (at..at + width).rev() {
                text[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, year, 4);
        put(5, i64::from(month), 2);
        put(8, i64::from(day), 2);
        put(11, second_of_day / 3600, 2);
        put(14, second_of_day % 3600 / 60, 2);
        put(17, second_of_day % 60, 2);
        text.iter().map(|&b| char::from(b)).collect()
    }

    /// [`Self::to_ist_string`] through `format!`, for any year.
    fn to_ist_string_formatted(self) -> String {
        let local = self.0 + IST_OFFSET;
        let (year, month, day) = civil_from_days(local.div_euclid(86_400));
        let s = local.rem_euclid(86_400);
        format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    }

    /// Parses `YYYY-MM-DD HH:MM:SS` read as India time.
    pub fn parse_ist(text: &str) -> Result<Self, TimeFormatError> {
        let bytes = text.as_bytes();
        let shape_ok = bytes.len() == 19
            && bytes.iter().enumerate().all(|(i, b)| match i {
                4 | 7 => *b == b'-',
                10 => *b == b' ',
                13 | 16 => *b == b':',
                _ => b.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(TimeFormatError);
        }
        let number = |range: std::ops::Range<usize>| text[range].parse::<u32>().map_err(|_| TimeFormatError);
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year.into(), month) {
            return Err(TimeFormatError);
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(TimeFormatError);
        }
        let days = days_from_civil(year.into(), month, day);
        let local = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
        Ok(Timestamp(local - IST_OFFSET))
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_index + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_epoch_in_india_time() {
        assert_eq!(Timestamp::from_unix(0).to_ist_string(), "1970-01-01 05:30:00");
    }

    #[test]
    fn renders_digit_by_digit_what_format_renders() {
        // Every field's carry, the four-digit years' ends, and a stride across them.
        let mut instants =
            vec![-62_167_219_200 - IST_OFFSET, 253_402_300_799 - IST_OFFSET, 253_402_300_800, -1, 0, 86_399];
        instants.extend((-62_167_219_200..253_402_300_800).step_by(77_777_777).map(|t: i64| t + 3_599));
        for t in instants.into_iter().map(Timestamp::from_unix) {
            assert_eq!(t.to_ist_string(), t.to_ist_string_formatted(), "at {}", t.unix());
        }
    }

    #[test]
    fn renders_a_known_instant() {
        // 2021-01-11T10:13:20Z is 15:43:20 in India.
        assert_eq!(Timestamp::from_unix(1_610_360_000).to_ist_string(), "2021-01-11 15:43:20");
    }

    #[test]
    fn parse_is_the_inverse_of_render_across_centuries() {
        let mut t = -2_208_988_800; // 1900-01-01
        while t < 4_102_444_800 {
            let ts = Timestamp::from_unix(t);
            assert_eq!(Timestamp::parse_ist(&ts.to_ist_string()), Ok(ts));
            t += 86_400 * 13 + 3_607;
        }
    }

    #[test]
    fn rejects_impossible_dates_and_other_shapes() {
        for bad in [
            "2021-02-29 00:00:00",
            "2021-13-01 00:00:00",
            "2021-01-32 00:00:00",
            "2021-01-01 24:00:00",
            "2021-01-01T00:00:00",
            "2021-1-1 00:00:00",
            "",
        ] {
            assert_eq!(Timestamp::parse_ist(bad), Err(TimeFormatError), "{bad:?}");
        }
        assert!(Timestamp::parse_ist("2024-02-29 23:59:59").is_ok());
    }
}
