//! Quantities with units, as scenario authors write them: durations (`30s`, `250ms`), sizes (`2GiB`),
//! rates (`500/s`) and percentages (`95%`). Parameters and thresholds share this one parser so a unit
//! means the same thing everywhere.
//!
//! Canonical units, used in every report field: durations in **milliseconds**, sizes in **bytes**,
//! rates in **per second**, percentages as a **fraction** (`95%` is `0.95`).

use std::fmt;
use std::time::Duration;

/// What kind of quantity a value is; decides which values may be compared or added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// A plain number (counts, ratios written without `%`); compatible with every dimension.
    Number,
    /// A duration, canonically in milliseconds.
    Duration,
    /// A size, canonically in bytes.
    Size,
    /// A rate, canonically per second.
    Rate,
    /// A percentage, canonically a fraction of 1.
    Ratio,
}

impl Dimension {
    /// Whether values of the two dimensions can be compared or added.
    pub fn compatible(self, other: Dimension) -> bool {
        self == other || self == Dimension::Number || other == Dimension::Number
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dimension::Number => "number",
            Dimension::Duration => "duration",
            Dimension::Size => "size",
            Dimension::Rate => "rate",
            Dimension::Ratio => "percentage",
        })
    }
}

/// A number in canonical units with its dimension.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity {
    /// The value in the dimension's canonical unit (ms, bytes, per second, fraction).
    pub value: f64,
    /// The dimension the unit belonged to.
    pub dimension: Dimension,
}

/// A unit suffix that is not one scen knows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnitError {
    /// The text has no leading number.
    #[error("`{0}` does not start with a number")]
    NotANumber(String),
    /// The suffix after the number is not a known unit.
    #[error("unknown unit `{unit}` in `{text}`: use ns, us, ms, s, m, h, B, KB, MB, GB, KiB, MiB, GiB, TiB, /s or %")]
    UnknownUnit {
        /// The whole text given.
        text: String,
        /// The suffix that was not recognised.
        unit: String,
    },
    /// A value of one dimension was given where another is needed.
    #[error("`{text}` is a {found}, expected a {expected}")]
    WrongDimension {
        /// The whole text given.
        text: String,
        /// The dimension that was needed.
        expected: Dimension,
        /// The dimension the text has.
        found: Dimension,
    },
    /// A duration or size below zero.
    #[error("`{0}` is negative: durations and sizes are 0 or more")]
    Negative(String),
    /// A duration or size beyond what any scenario needs (a typo, most likely).
    #[error("`{text}` is more than {bound}, the most scen accepts")]
    TooLarge {
        /// The whole text given.
        text: String,
        /// The bound, for people.
        bound: &'static str,
    },
}

/// The longest duration scen accepts anywhere: 7 days.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The largest size scen accepts anywhere: 1 TiB.
pub const MAX_SIZE: u64 = 1 << 40;

/// Looks up a unit suffix: the dimension and the factor to the canonical unit.
pub fn unit_factor(unit: &str) -> Option<(Dimension, f64)> {
    use Dimension::*;
    Some(match unit {
        "" => (Number, 1.0),
        "ns" => (Duration, 1e-6),
        "us" | "µs" => (Duration, 1e-3),
        "ms" => (Duration, 1.0),
        "s" => (Duration, 1e3),
        "m" | "min" => (Duration, 60e3),
        "h" => (Duration, 3600e3),
        "B" => (Size, 1.0),
        "KB" | "kB" => (Size, 1e3),
        "MB" => (Size, 1e6),
        "GB" => (Size, 1e9),
        "TB" => (Size, 1e12),
        "KiB" => (Size, 1024.0),
        "MiB" => (Size, 1024.0 * 1024.0),
        "GiB" => (Size, 1024.0 * 1024.0 * 1024.0),
        "TiB" => (Size, 1024.0 * 1024.0 * 1024.0 * 1024.0),
        "/s" => (Rate, 1.0),
        "/m" | "/min" => (Rate, 1.0 / 60.0),
        "%" => (Ratio, 0.01),
        _ => return None,
    })
}

/// Parses `"<number><unit>"` (whitespace between allowed) into a canonical quantity.
///
/// ```
/// use scen_engine::units::{parse_quantity, Dimension};
/// let q = parse_quantity("1.5s").unwrap();
/// assert_eq!((q.value, q.dimension), (1500.0, Dimension::Duration));
/// ```
pub fn parse_quantity(text: &str) -> Result<Quantity, UnitError> {
    let t = text.trim();
    let end = number_prefix_len(t);
    if end == 0 {
        return Err(UnitError::NotANumber(text.to_string()));
    }
    let number: f64 = t[..end]
        .replace('_', "")
        .parse()
        .map_err(|_| UnitError::NotANumber(text.to_string()))?;
    let unit = t[end..].trim();
    let (dimension, factor) = unit_factor(unit).ok_or_else(|| UnitError::UnknownUnit {
        text: text.to_string(),
        unit: unit.to_string(),
    })?;
    // Divide for percentages so `95%` is exactly 0.95.
    let value = if dimension == Dimension::Ratio {
        number / 100.0
    } else {
        number * factor
    };
    Ok(Quantity { value, dimension })
}

/// The length of the leading decimal number (sign, digits, `_`, one `.`, exponent) of `t`.
pub(crate) fn number_prefix_len(t: &str) -> usize {
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits_start = i;
    let mut seen_dot = false;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_' || (b[i] == b'.' && !seen_dot)) {
        seen_dot |= b[i] == b'.';
        i += 1;
    }
    if i == digits_start || !b[digits_start..i].iter().any(u8::is_ascii_digit) {
        return 0;
    }
    // Exponent, only when followed by digits (so `5e` stays a number with unit `e`).
    if i + 1 < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'-' || b[j] == b'+') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    i
}

/// Parses a quantity that must have the given dimension (a bare number is taken as that dimension's
/// canonical unit only for sizes and plain numbers; durations need a unit to avoid ms/s confusion).
pub fn parse_expecting(text: &str, expected: Dimension) -> Result<Quantity, UnitError> {
    let q = parse_quantity(text)?;
    let ok = q.dimension == expected
        || (q.dimension == Dimension::Number
            && matches!(expected, Dimension::Size | Dimension::Number));
    if ok {
        Ok(Quantity {
            value: q.value,
            dimension: expected,
        })
    } else {
        Err(UnitError::WrongDimension {
            text: text.to_string(),
            expected,
            found: q.dimension,
        })
    }
}

/// Parses a duration such as `30s` or `250ms` (one number, one unit; `1m30s` is not supported).
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let q = parse_expecting(text, Dimension::Duration)?;
    if q.value < 0.0 {
        return Err(UnitError::Negative(text.to_string()));
    }
    match Duration::try_from_secs_f64(q.value / 1e3) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(UnitError::TooLarge {
            text: text.to_string(),
            bound: "7 days",
        }),
    }
}

/// Parses a size such as `1024`, `4KiB` or `2GB` into bytes.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let q = parse_expecting(text, Dimension::Size)?;
    if q.value < 0.0 {
        return Err(UnitError::Negative(text.to_string()));
    }
    if q.value.is_nan() || q.value > MAX_SIZE as f64 {
        return Err(UnitError::TooLarge {
            text: text.to_string(),
            bound: "1TiB",
        });
    }
    Ok(q.value.round() as u64)
}

/// Formats a canonical value of a dimension for people: `12.3ms`, `1.5GiB`, `950/s`, `95%`.
pub fn format_quantity(value: f64, dimension: Dimension) -> String {
    match dimension {
        Dimension::Number => format_number(value),
        Dimension::Duration => {
            if value.abs() >= 1e3 {
                format!("{}s", format_number(value / 1e3))
            } else if value.abs() >= 1.0 || value == 0.0 {
                format!("{}ms", format_number(value))
            } else {
                format!("{}us", format_number(value * 1e3))
            }
        }
        Dimension::Size => {
            let units = ["B", "KiB", "MiB", "GiB", "TiB"];
            let mut v = value;
            let mut i = 0;
            while v.abs() >= 1024.0 && i + 1 < units.len() {
                v /= 1024.0;
                i += 1;
            }
            format!("{}{}", format_number(v), units[i])
        }
        Dimension::Rate => format!("{}/s", format_number(value)),
        Dimension::Ratio => format!("{}%", format_number(value * 100.0)),
    }
}

/// Formats a number with at most three significant decimals and no trailing zeros.
pub fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let s = if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    };
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_dimension_to_canonical_units() {
        assert_eq!(
            parse_quantity("25ms").unwrap(),
            Quantity {
                value: 25.0,
                dimension: Dimension::Duration
            }
        );
        assert_eq!(parse_quantity("2s").unwrap().value, 2000.0);
        assert_eq!(parse_quantity("500us").unwrap().value, 0.5);
        assert_eq!(
            parse_quantity("2GiB").unwrap().value,
            2.0 * 1024.0 * 1024.0 * 1024.0
        );
        assert_eq!(parse_quantity("1.5 KB").unwrap().value, 1500.0);
        assert_eq!(
            parse_quantity("7200/s").unwrap(),
            Quantity {
                value: 7200.0,
                dimension: Dimension::Rate
            }
        );
        assert_eq!(
            parse_quantity("95%").unwrap(),
            Quantity {
                value: 0.95,
                dimension: Dimension::Ratio
            }
        );
        assert_eq!(parse_quantity("1_000").unwrap().value, 1000.0);
        assert_eq!(parse_quantity("1e3").unwrap().value, 1000.0);
    }

    #[test]
    fn rejects_unknown_units_and_non_numbers() {
        assert!(matches!(
            parse_quantity("25 parsecs"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_quantity("fast"),
            Err(UnitError::NotANumber(_))
        ));
        assert!(matches!(
            parse_duration("1GiB"),
            Err(UnitError::WrongDimension { .. })
        ));
        assert!(
            parse_duration("30").is_err(),
            "a bare number is ambiguous for a duration"
        );
    }

    #[test]
    fn sizes_and_durations_convert() {
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format_quantity(12.5, Dimension::Duration), "12.5ms");
        assert_eq!(format_quantity(2500.0, Dimension::Duration), "2.5s");
        assert_eq!(
            format_quantity(3.0 * 1024.0 * 1024.0, Dimension::Size),
            "3MiB"
        );
        assert_eq!(format_quantity(0.95, Dimension::Ratio), "95%");
    }

    proptest::proptest! {
        /// Any text: a quantity or an error, never a panic; durations and sizes stay in bounds.
        #[test]
        fn any_text_parses_or_fails_cleanly(text in "\\PC{0,24}", num in proptest::prelude::any::<f64>(), unit in "(ns|us|ms|s|m|h|B|KiB|MiB|GiB|TiB|KB|/s|%|)") {
            let _ = parse_quantity(&text);
            let t = format!("{num}{unit}");
            if let Ok(d) = parse_duration(&t) {
                proptest::prop_assert!(d <= MAX_DURATION);
            }
            if let Ok(b) = parse_size(&t) {
                proptest::prop_assert!(b <= MAX_SIZE);
            }
        }
    }
}
