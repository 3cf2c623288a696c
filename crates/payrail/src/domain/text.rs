//! Free text that partners and operators send (names, biller parameters,
//! imported references): what it may not contain.
//!
//! Control characters (NUL, line breaks, escapes, C1 controls) break logs,
//! CSV exports and PostgreSQL (which refuses NUL in text); the
//! bidirectional-override and isolate characters (U+202A–U+202E,
//! U+2066–U+2069) make a stored value read differently from what it is.

/// Why a text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// A control character, e.g. NUL or a line break.
    #[error("must not contain control characters")]
    Control,
    /// A bidirectional override or isolate.
    #[error("must not contain bidirectional-override characters")]
    Bidi,
}

/// Whether `c` reorders the text around it (U+202A–U+202E, U+2066–U+2069).
fn is_bidi_override(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Refuses `text` if it holds a control or bidirectional-override character.
pub fn check_text(text: &str) -> Result<(), TextError> {
    for c in text.chars() {
        if c.is_control() {
            return Err(TextError::Control);
        }
        if is_bidi_override(c) {
            return Err(TextError::Bidi);
        }
    }
    Ok(())
}

/// Whether `text` is 1 to `max` characters of letters, digits, `-`, `_`,
/// `.` and `/`: the set of reference ids (SPEC §1), also used for customer
/// account numbers and tokens.
pub fn is_code(text: &str, max: usize) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/');
    !text.is_empty() && text.len() <= max && text.bytes().all(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_override_characters_are_refused_and_the_rest_kept() {
        assert_eq!(check_text("Ravi Verma"), Ok(()));
        assert_eq!(check_text("रवि वर्मा"), Ok(()));
        assert_eq!(check_text("a\0b"), Err(TextError::Control));
        assert_eq!(check_text("a\nb"), Err(TextError::Control));
        assert_eq!(check_text("a\u{85}b"), Err(TextError::Control));
        assert_eq!(check_text("a\u{202E}b"), Err(TextError::Bidi));
        assert_eq!(check_text("a\u{2066}b"), Err(TextError::Bidi));
        assert_eq!(check_text("a\u{2069}b"), Err(TextError::Bidi));
    }

    #[test]
    fn codes_are_letters_digits_and_four_marks() {
        assert!(is_code("150012345678", 40));
        assert!(is_code("A-1_b.c/d", 40));
        assert!(!is_code("", 40));
        assert!(!is_code("a b", 40));
        assert!(!is_code(&"1".repeat(41), 40));
    }
}
