//! How the console shows money, times and states.

/// Rupees with Indian digit grouping and two decimals, from an amount in
/// rupees as the API writes it (`1500`, `1500.5`, `100000.00`):
/// `₹1,00,000.00`. Text that is not an amount is shown as it is.
pub fn rupees(amount: &str) -> String {
    let (sign, digits) = match amount.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", amount),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let is_amount = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.len() <= 2
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !is_amount {
        return amount.to_owned();
    }
    let paise = format!("{fraction:0<2}");
    format!("{sign}₹{}.{paise}", indian_grouping(whole))
}

/// Rupees from a whole number of paise.
pub fn rupees_from_paise(paise: i64) -> String {
    let sign = if paise < 0 { "-" } else { "" };
    let abs = paise.unsigned_abs();
    rupees(&format!("{sign}{}.{:02}", abs / 100, abs % 100))
}

/// `12345678` → `1,23,45,678`: the last three digits, then pairs.
fn indian_grouping(whole: &str) -> String {
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    if whole.len() <= 3 {
        return whole.to_owned();
    }
    let (head, last3) = whole.split_at(whole.len() - 3);
    let mut groups: Vec<&str> = Vec::new();
    let mut rest = head;
    while rest.len() > 2 {
        let (front, pair) = rest.split_at(rest.len() - 2);
        groups.push(pair);
        rest = front;
    }
    groups.push(rest);
    groups.reverse();
    format!("{},{last3}", groups.join(","))
}

/// A state's name in words: `sent_to_bank` → `Sent to bank`.
pub fn state_words(name: &str) -> String {
    let spaced = name.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A state in words with its AOPay code: `Success (code 1)`.
pub fn state_with_code(name: &str, code: i64) -> String {
    format!("{} (code {code})", state_words(name))
}

/// The CSS class a state is coloured by.
pub fn state_class(name: &str) -> &'static str {
    match name {
        "success" => "state ok",
        "failed" | "refunded" => "state bad",
        "on_hold" => "state held",
        _ => "state wait",
    }
}

/// An India time as the API writes it, marked as such.
pub fn ist(text: &str) -> String {
    format!("{text} IST")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rupees_are_grouped_the_indian_way() {
        assert_eq!(rupees("100000"), "₹1,00,000.00");
        assert_eq!(rupees("1500.5"), "₹1,500.50");
        assert_eq!(rupees("12345678.09"), "₹1,23,45,678.09");
        assert_eq!(rupees("0.01"), "₹0.01");
        assert_eq!(rupees("999"), "₹999.00");
        assert_eq!(rupees("-1000"), "-₹1,000.00");
        assert_eq!(rupees("n/a"), "n/a");
        assert_eq!(rupees_from_paise(10_000_000), "₹1,00,000.00");
        assert_eq!(rupees_from_paise(-5), "-₹0.05");
    }

    #[test]
    fn states_read_as_words_with_their_codes() {
        assert_eq!(state_words("sent_to_bank"), "Sent to bank");
        assert_eq!(state_with_code("on_hold", 4), "On hold (code 4)");
    }
}
