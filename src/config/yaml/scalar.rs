//! How a plain scalar of `jobs.yaml` resolves to a type, by the YAML 1.2 core schema (the one
//! `serde_yaml` 0.9 used too): `true`/`false`, integers, floats and `null`/`~` are only those
//! when written plain; quoted and block scalars are strings.

use saphyr_parser::{ScalarStyle, Tag};

use super::ScalarKind;

/// Resolves a scalar by the YAML 1.2 core schema; quoted and block scalars are strings, and
/// so is anything tagged `!!str`.
pub(super) fn resolve(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> ScalarKind {
    if let Some(tag) = tag
        && tag.is_yaml_core_schema()
        && tag.suffix == "str"
    {
        return ScalarKind::Str;
    }
    if style != ScalarStyle::Plain {
        return ScalarKind::Str;
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarKind::Null,
        "true" | "True" | "TRUE" => return ScalarKind::Bool(true),
        "false" | "False" | "FALSE" => return ScalarKind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return ScalarKind::Float,
        _ => {}
    }
    if let Some(int) = parse_int(text) {
        return ScalarKind::Int(int);
    }
    if is_float(text) {
        return ScalarKind::Float;
    }
    ScalarKind::Str
}

/// `[-+]?[0-9]+`, `0o[0-7]+` or `0x[0-9a-fA-F]+`.
fn parse_int(text: &str) -> Option<i128> {
    if let Some(octal) = text.strip_prefix("0o") {
        return i128::from_str_radix(octal, 8)
            .ok()
            .filter(|_| !octal.is_empty());
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i128::from_str_radix(hex, 16)
            .ok()
            .filter(|_| !hex.is_empty());
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Too many digits for i128 is still a number, just one no field accepts.
    Some(text.parse().unwrap_or(if text.starts_with('-') {
        i128::MIN
    } else {
        i128::MAX
    }))
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        Some(f) => digits(whole) && digits(f) && !(whole.is_empty() && f.is_empty()),
        None => !whole.is_empty() && digits(whole),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> ScalarKind {
        resolve(text, ScalarStyle::Plain, None)
    }

    #[test]
    fn core_schema() {
        assert_eq!(kind("~"), ScalarKind::Null);
        assert_eq!(kind("true"), ScalarKind::Bool(true));
        assert_eq!(kind("yes"), ScalarKind::Str);
        assert_eq!(kind("-12"), ScalarKind::Int(-12));
        assert_eq!(kind("0x1f"), ScalarKind::Int(31));
        assert_eq!(kind("0o17"), ScalarKind::Int(15));
        assert_eq!(kind("1.5"), ScalarKind::Float);
        assert_eq!(kind("1e3"), ScalarKind::Float);
        assert_eq!(kind(".5"), ScalarKind::Float);
        assert_eq!(kind("."), ScalarKind::Str);
        assert_eq!(kind("30s"), ScalarKind::Str);
        assert_eq!(kind("1.2.3"), ScalarKind::Str);
        assert_eq!(
            resolve("5", ScalarStyle::DoubleQuoted, None),
            ScalarKind::Str
        );
    }
}
