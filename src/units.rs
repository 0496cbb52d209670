//! Durations (`500ms`, `30s`, `5m`, `1h`, `1d`, or whole seconds) and sizes (`64MiB`),
//! as written in `jobs.yaml` and on the command line.

use std::fmt::Write as _;
use std::time::Duration;

/// Why a duration or size could not be read; the message says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not a duration at all.
    #[error(
        "invalid duration {0:?}: expected whole seconds or a number with a unit: 500ms, 30s, 5m, 1h, 1d"
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

/// Reads a duration: a whole number of seconds, or a whole number with one of `ms`, `s`, `m`,
/// `h`, `d`.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let bad = || UnitError::BadDuration(text.to_string());
    let trimmed = text.trim();
    let (number, unit) = split_number(trimmed).ok_or_else(bad)?;
    let value: u64 = number.parse().map_err(|_| bad())?;
    let millis_per_unit: u64 = match unit {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(bad)
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

/// Writes a duration the way it would be written in `jobs.yaml`: `500ms`, `30s`, `5m`,
/// `1h30m`, `2d`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    if !millis.is_multiple_of(1000) {
        if millis < 1000 {
            return format!("{millis}ms");
        }
        return format!("{:.1}s", duration.as_secs_f64());
    }
    let mut secs = duration.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            let _ = write!(out, "{}{unit}", secs / size);
            secs %= size;
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
        for bad in ["", "s", "1x", "-1s", "1.5s", "99999999999999999999d", "1 h"] {
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
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_size(16 << 20), "16 MiB");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(10), "10 B");
    }
}
