//! Durations (`500ms`, `30s`, `5m`, `1h`, `1d`, `1h30m`, or whole seconds) and sizes
//! (`64MiB`), as written in `jobs.yaml` and on the command line.
//!
//! [`format_duration`] writes only what [`parse_duration`] reads, so a duration shown by the
//! dashboard or `jobtop list` can be pasted back into `jobs.yaml`.

use std::fmt::Write as _;
use std::time::Duration;

/// Why a duration or size could not be read; the message says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not a duration at all.
    #[error(
        "invalid duration {0:?}: expected whole seconds or a number with a unit: 500ms, 30s, 5m, 1h, 1d, or several, largest first: 1h30m"
    )]
    BadDuration(String),
    /// Not a size at all.
    #[error(
        "invalid size {0:?}: expected bytes or a number with a unit: 512KiB, 64MiB, 1GiB (also KB, MB, GB)"
    )]
    BadSize(String),
    /// A size too large to represent.
    #[error(
        "size {0:?} is too large: expected a size below 16 EiB (2^64 bytes), such as 512KiB, 64MiB or 1GiB"
    )]
    SizeTooLarge(String),
}

/// The longest duration `jobs.yaml` accepts (100 years), so that no time arithmetic on it can
/// overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

/// The units of a duration, largest first, with their length in milliseconds.
const DURATION_UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Reads a duration: a whole number of seconds, or whole numbers each with one of `d`, `h`,
/// `m`, `s`, `ms`, written together largest first, each unit at most once (`1h30m`,
/// `2m30s`, `1s500ms`), as Prometheus and Go write them.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let bad = || UnitError::BadDuration(text.to_string());
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut millis: u64 = 0;
    // Units before this index in `DURATION_UNITS` were written already or are larger than
    // one that was: refused, so `30m1h` and `1m1m` are errors, not sums.
    let mut next = 0;
    while !rest.is_empty() {
        let (number, after) = split_number(rest).ok_or_else(bad)?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let index = if unit.is_empty() && next == 0 {
            // A bare number is seconds, but only alone: `1h30` is not 1h30s.
            3
        } else {
            DURATION_UNITS[next..]
                .iter()
                .position(|(name, _)| *name == unit)
                .ok_or_else(bad)?
                + next
        };
        let value: u64 = number.parse().map_err(|_| bad())?;
        millis = value
            .checked_mul(DURATION_UNITS[index].1)
            .and_then(|part| millis.checked_add(part))
            .ok_or_else(bad)?;
        next = index + 1;
        rest = after;
    }
    Ok(Duration::from_millis(millis))
}

/// Reads a size: a whole number of bytes, or a whole number with one of `B`, `KiB`, `MiB`,
/// `GiB`, `KB`, `MB`, `GB` (the decimal ones mean powers of 1000, as their names say).
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::BadSize(text.to_string());
    let trimmed = text.trim();
    let (number, unit) = split_number(trimmed).ok_or_else(bad)?;
    let value: u64 = number.parse().map_err(|_| bad())?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| UnitError::SizeTooLarge(text.to_string()))
}

/// Splits `"30s"` into `("30", "s")`; `None` when there are no leading digits.
fn split_number(text: &str) -> Option<(&str, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    Some(text.split_at(digits))
}

/// Writes a duration as `jobs.yaml` reads it, rounded to the millisecond: `0s`, `500ms`,
/// `30s`, `1m30s`, `1h30m`, `2d`, `1s500ms` (largest units first, none that would be 0).
pub fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_nanos().saturating_add(500_000) / 1_000_000;
    if millis == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in DURATION_UNITS {
        let size = u128::from(size);
        if millis >= size {
            let _ = write!(out, "{}{unit}", millis / size);
            millis %= size;
        }
    }
    out
}

/// Writes a size with a binary unit: `16 MiB`, `512 KiB`, `100 B`.
pub fn format_size(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size {
            #[allow(clippy::cast_precision_loss)] // a display value
            return format!("{:.1} {unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(
            parse_duration("1d2h3m4s5ms"),
            Ok(Duration::from_millis(93_784_005))
        );
        assert_eq!(parse_duration(" 1h0m "), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "s",
            "1x",
            "-1s",
            "1.5s",
            "99999999999999999999d",
            "1 h",
            "1h 30m",
            "30m1h",
            "1m1m",
            "1h30",
            "30 1s",
            "h30m",
            "1h30mx",
            "213503982334601d1h",
        ] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(err.contains("expected whole seconds"), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("2KB"), Ok(2000));
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(matches!(
            parse_size("99999999999999GiB"),
            Err(UnitError::SizeTooLarge(_))
        ));
    }

    #[test]
    fn formatting() {
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(86400)), "1d");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_micros(1499)), "1ms");
        assert_eq!(format_duration(Duration::from_micros(400)), "0s");
        assert_eq!(format_size(16 << 20), "16 MiB");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(10), "10 B");
    }

    proptest::proptest! {
        /// Whatever `format_duration` writes for a whole number of milliseconds reads back
        /// as the same duration.
        #[test]
        fn formatted_durations_read_back(millis in proptest::prelude::any::<u64>()) {
            let duration = Duration::from_millis(millis);
            let text = format_duration(duration);
            proptest::prop_assert_eq!(parse_duration(&text), Ok(duration), "{}", text);
        }

        /// Finer durations read back rounded to the nearest millisecond.
        #[test]
        fn finer_durations_read_back_rounded(
            secs in 0..u64::MAX / 1000,
            nanos in 0..1_000_000_000u32,
        ) {
            let duration = Duration::new(secs, nanos);
            let text = format_duration(duration);
            let rounded = (duration.as_nanos() + 500_000) / 1_000_000;
            let rounded = Duration::from_millis(u64::try_from(rounded).unwrap());
            proptest::prop_assert_eq!(parse_duration(&text), Ok(rounded), "{}", text);
        }
    }
}
