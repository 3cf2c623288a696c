//! Money as integer paise. Never a float: amounts are parsed from decimal
//! strings and rendered back the way the AOPay documents show them.

/// An amount of Indian rupees in paise (1 rupee = 100 paise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Paise(i64);

/// Why a decimal string is not an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not of the form `123`, `123.4` or `123.45`.
    #[error("must be a decimal amount with at most two decimals")]
    Malformed,
    /// Beyond what payrail will hold (₹10 crore).
    #[error("is larger than 100000000.00")]
    TooLarge,
}

/// The largest amount payrail accepts anywhere: ₹10,00,00,000.00.
const MAX_PAISE: i64 = 100_000_000 * 100;

impl Paise {
    /// Zero rupees.
    pub const ZERO: Paise = Paise(0);

    /// Wraps a number of paise.
    pub const fn new(paise: i64) -> Self {
        Paise(paise)
    }

    /// Whole rupees.
    pub const fn rupees(rupees: i64) -> Self {
        Paise(rupees * 100)
    }

    /// The number of paise.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// Parses `"100"`, `"100.5"` or `"100.50"` (non-negative, at most two decimals).
    pub fn parse(text: &str) -> Result<Self, MoneyError> {
        let (whole, fraction) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || fraction.len() > 2 {
            return Err(MoneyError::Malformed);
        }
        if text.ends_with('.') {
            return Err(MoneyError::Malformed);
        }
        if whole.len() > 9 {
            return Err(MoneyError::TooLarge);
        }
        let rupees: i64 = whole.parse().map_err(|_| MoneyError::Malformed)?;
        let mut paise: i64 =
            if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| MoneyError::Malformed)? };
        if fraction.len() == 1 {
            paise *= 10;
        }
        let total = rupees * 100 + paise;
        if total > MAX_PAISE {
            return Err(MoneyError::TooLarge);
        }
        Ok(Paise(total))
    }

    /// Renders as the seeds render `amount`: whole rupees without decimals
    /// (`"100"`), anything else with two (`"1234.50"`).
    pub fn to_amount_string(self) -> String {
        if self.0 % 100 == 0 {
            itoa::Buffer::new().format(self.0 / 100).to_owned()
        } else {
            self.to_decimal_string()
        }
    }

    /// Renders with exactly two decimals, as every charge is (`"10.00"`).
    /// Without `fmt`: every status answer renders five to seven amounts.
    pub fn to_decimal_string(self) -> String {
        let abs = self.0.unsigned_abs();
        let mut digits = itoa::Buffer::new();
        let rupees = digits.format(abs / 100);
        let mut out = String::with_capacity(rupees.len() + 4);
        if self.0 < 0 {
            out.push('-');
        }
        out.push_str(rupees);
        out.push('.');
        let paise = abs % 100;
        for digit in [paise / 10, paise % 10] {
            out.push(char::from(b'0' + digit as u8));
        }
        out
    }

    /// `self × numerator ÷ denominator`, rounded half-up to the paisa
    /// (half away from zero for negative amounts).
    pub fn mul_div_round(self, numerator: i64, denominator: i64) -> Paise {
        let product = i128::from(self.0) * i128::from(numerator);
        let denominator = i128::from(denominator);
        let half = denominator / 2;
        let rounded = if product >= 0 { (product + half) / denominator } else { (product - half) / denominator };
        Paise(rounded as i64)
    }
}

impl std::ops::Add for Paise {
    type Output = Paise;
    fn add(self, rhs: Paise) -> Paise {
        Paise(self.0 + rhs.0)
    }
}

impl std::ops::Sub for Paise {
    type Output = Paise;
    fn sub(self, rhs: Paise) -> Paise {
        Paise(self.0 - rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_and_fractional_rupees() {
        assert_eq!(Paise::parse("100"), Ok(Paise(10_000)));
        assert_eq!(Paise::parse("100.5"), Ok(Paise(10_050)));
        assert_eq!(Paise::parse("0.05"), Ok(Paise(5)));
        assert_eq!(Paise::parse("100000000.00"), Ok(Paise(MAX_PAISE)));
    }

    #[test]
    fn rejects_what_is_not_an_amount() {
        for bad in ["", ".5", "1.", "1.234", "-1", "1e3", "1,000", " 1", "abc", "1.-1"] {
            assert_eq!(Paise::parse(bad), Err(MoneyError::Malformed), "{bad:?}");
        }
        assert_eq!(Paise::parse("100000000.01"), Err(MoneyError::TooLarge));
        assert_eq!(Paise::parse("9999999999"), Err(MoneyError::TooLarge));
    }

    #[test]
    fn amount_renders_whole_rupees_without_decimals() {
        assert_eq!(Paise(10_000).to_amount_string(), "100");
        assert_eq!(Paise(123_450).to_amount_string(), "1234.50");
        assert_eq!(Paise(5).to_amount_string(), "0.05");
        assert_eq!(Paise(0).to_amount_string(), "0");
    }

    #[test]
    fn renders_what_format_renders_for_any_amount() {
        let formatted = |p: i64| {
            let abs = p.unsigned_abs();
            format!("{}{}.{:02}", if p < 0 { "-" } else { "" }, abs / 100, abs % 100)
        };
        let edges = [0, 1, 9, 10, 99, 100, 101, 999, 1000, 123_456_789, i64::MAX, i64::MIN, i64::MIN + 1];
        for p in edges.into_iter().chain(edges.map(|p| p.wrapping_neg())).chain((-2_000..2_000).map(|p| p * 7)) {
            assert_eq!(Paise(p).to_decimal_string(), formatted(p), "{p}");
            let whole = if p % 100 == 0 { (p / 100).to_string() } else { formatted(p) };
            assert_eq!(Paise(p).to_amount_string(), whole, "{p}");
        }
    }

    #[test]
    fn charges_render_with_two_decimals() {
        assert_eq!(Paise(1000).to_decimal_string(), "10.00");
        assert_eq!(Paise(19).to_decimal_string(), "0.19");
        assert_eq!(Paise(-153).to_decimal_string(), "-1.53");
    }

    #[test]
    fn mul_div_rounds_half_up() {
        assert_eq!(Paise(1000).mul_div_round(18, 118), Paise(153)); // 152.54
        assert_eq!(Paise(1).mul_div_round(1, 2), Paise(1)); // 0.5 → 1
        assert_eq!(Paise(497).mul_div_round(375, 10_000), Paise(19)); // 18.6375
        assert_eq!(Paise(-1).mul_div_round(1, 2), Paise(-1));
    }

    #[test]
    fn parse_then_render_round_trips_every_small_amount() {
        for paise in 0..20_000 {
            let amount = Paise(paise);
            assert_eq!(Paise::parse(&amount.to_decimal_string()), Ok(amount));
            assert_eq!(Paise::parse(&amount.to_amount_string()), Ok(amount));
        }
    }
}
