//! Human durations in pipeline files: `500ms`, `30s`, `5m`, `1h`, `2d`, and sums such as
//! `1h30m`.
//!
//! A unit is always required: a bare `30` could mean seconds or milliseconds, and guessing
//! wrong by 1000x is the kind of mistake that only shows in production. Durations are
//! carried as whole milliseconds (`_ms` fields), which is the finest unit offered.

use std::fmt;

/// A duration that does not parse; displays the whole explanation with an example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    pub text: String,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad duration `{}`: expected a number with a unit (ms, s, m, h, d), e.g. 30s",
            self.text
        )
    }
}

/// Parses `text` into milliseconds. Parts add up (`1h30m` = 5,400,000); a sum that does not
/// fit in `u64` milliseconds is rejected rather than wrapped.
pub fn parse_duration_ms(text: &str) -> Result<u64, DurationError> {
    let bad = || DurationError {
        text: text.to_string(),
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms: u64 = match &rest[..letters] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[letters..];
        total = number
            .checked_mul(unit_ms)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("2d"), Ok(172_800_000));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
    }

    #[test]
    fn parses_combinations() {
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("1m30s500ms"), Ok(90_500));
        assert_eq!(parse_duration_ms(" 2d12h "), Ok(216_000_000));
    }

    #[test]
    fn rejects_bad_durations() {
        for text in [
            "30x", "30", "", "s", "1.5h", "-1s", "1h 30m", "h1", "30sec", "1h30",
        ] {
            let err = parse_duration_ms(text).expect_err(text);
            assert_eq!(err.text, text);
        }
        assert_eq!(
            parse_duration_ms("30x").expect_err("30x").to_string(),
            "bad duration `30x`: expected a number with a unit (ms, s, m, h, d), e.g. 30s"
        );
    }

    #[test]
    fn rejects_overflow_instead_of_wrapping() {
        assert!(parse_duration_ms("99999999999999999999ms").is_err());
        assert!(parse_duration_ms("999999999999999d").is_err());
    }
}
