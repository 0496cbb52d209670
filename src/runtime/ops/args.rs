//! How the ops API reads its arguments, so every `core.*` function says the same things the
//! same way: how a Lua value is named in an error ([`describe`]), the one reader of seconds
//! ([`seconds`], [`timeout`]) with one range, and option tables checked against the names a
//! function knows ([`Options`]).
//!
//! Option tables are read by hand rather than with mlua's serde (`lua.from_value`): serde's
//! errors do not say which field was wrong ("invalid type: string, expected f64"), and a job's
//! author needs the option's name and what it should have been.

use std::time::Duration;

use mlua::Value;

use crate::units::MAX_DURATION;

/// The longest time a number of seconds from Lua stands for; a longer one is read as this.
/// It is the longest timeout `jobs.yaml` accepts, so no run outlasts it and capping changes
/// nothing, while keeping `Instant` arithmetic from overflowing.
pub const MAX_SECONDS: Duration = MAX_DURATION;

/// How many characters of a string [`describe`] quotes.
const QUOTED: usize = 40;

/// Names `value` for an error message, by its type and, for a scalar, what it is: `nil`,
/// `the boolean true`, `the number -1`, `the string "soon"`, `a table`, `a function`.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Nil => "nil".to_string(),
        Value::Boolean(b) => format!("the boolean {b}"),
        #[allow(clippy::cast_precision_loss)] // a display value
        Value::Integer(n) => format!("the number {}", number_text(*n as f64)),
        Value::Number(n) => format!("the number {}", number_text(*n)),
        Value::String(s) => {
            let text = s.to_string_lossy();
            let mut cut: String = text.chars().take(QUOTED).collect();
            let shortened = cut.len() < text.len();
            cut = format!("{cut:?}");
            if shortened {
                cut.push('…');
            }
            format!("the string {cut}")
        }
        other => {
            let name = other.type_name();
            if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
                format!("an {name}")
            } else {
                format!("a {name}")
            }
        }
    }
}

/// [`describe`] for an argument that may not have been passed at all: `missing` then.
pub fn describe_arg(value: Option<&Value>) -> String {
    value.map_or_else(|| "missing".to_string(), describe)
}

/// A number, short: `-1`, `0.3`, `1e300`, `nan`, `inf`.
fn number_text(n: f64) -> String {
    if n.is_nan() {
        return "nan".to_string();
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let plain = n.to_string();
    if plain.len() <= 20 {
        plain
    } else {
        format!("{n:e}")
    }
}

/// A number passed from Lua, whether Luau made it an integer or not.
pub fn number(value: &Value) -> Option<f64> {
    match value {
        #[allow(clippy::cast_precision_loss)] // seconds far past any run's length
        Value::Integer(n) => Some(*n as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// A number of seconds as a duration: any finite number from 0 up, fractions included, capped
/// at [`MAX_SECONDS`]; `None` for a negative number, NaN or an infinity.
pub fn seconds(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).map_or(MAX_SECONDS, |d| d.min(MAX_SECONDS)))
}

/// A `timeout` option: a number of seconds greater than 0 (see [`seconds`]). A value so
/// small that it rounds to no time at all is refused too: it could only ever time out.
pub fn timeout(name: &str, value: &Value) -> Result<Duration, String> {
    number(value)
        .and_then(seconds)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            format!(
                "{name} is {}: expected a number of seconds greater than 0",
                describe(value)
            )
        })
}

/// Seconds for messages, as a job writes them in Lua (to the millisecond): `0.3s`, `2s`,
/// `1.25s`.
pub fn seconds_text(duration: Duration) -> String {
    let text = format!("{:.3}", duration.as_secs_f64());
    format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
}

/// `a, b, c or d`: a list of names for messages.
pub fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => (*only).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The key-value pairs of a table a job passed, read one by one; `nil` has none. `subject`
/// names the argument with its verb for the error when it is not a table (`headers are`,
/// `core.exec: env is`); `expected` says what it should be.
pub fn pairs<'a>(
    value: &'a Value,
    subject: &'a str,
    expected: &'a str,
) -> Result<impl Iterator<Item = Result<(Value, Value), String>> + 'a, String> {
    let table = match value {
        Value::Nil => None,
        Value::Table(table) => Some(table),
        other => {
            return Err(format!(
                "{subject} {}: expected {expected}",
                describe(other)
            ));
        }
    };
    Ok(table
        .into_iter()
        .flat_map(mlua::Table::pairs::<Value, Value>)
        .map(move |pair| {
            pair.map_err(|e| {
                format!("{subject} a table that cannot be read ({e}): expected {expected}")
            })
        }))
}

/// An options table whose keys were checked against the names a function knows; each value is
/// taken out by name and read by the function's own typed reader.
pub struct Options {
    entries: Vec<(String, Value)>,
}

impl Options {
    /// Reads `value`: `nil` (no options) or a table whose keys are all among `known`.
    /// Errors name the unknown key and list the known ones, without the function's name
    /// (the caller adds it).
    pub fn read(value: &Value, known: &[&str]) -> Result<Options, String> {
        let expected = format!("a table with {}", one_of(known));
        let mut entries = Vec::new();
        for pair in pairs(value, "options are", &expected)? {
            let (key, value) = pair?;
            let name = match &key {
                Value::String(name) => name.to_string_lossy(),
                other => {
                    return Err(format!(
                        "an option is named by {}: expected {}",
                        describe(other),
                        one_of(known)
                    ));
                }
            };
            if !known.contains(&name.as_str()) {
                return Err(format!(
                    "unknown option {name:?}: expected {}",
                    one_of(known)
                ));
            }
            entries.push((name, value));
        }
        Ok(Options { entries })
    }

    /// The value given for `name`, if any (`nil` counts as not given).
    pub fn take(&mut self, name: &str) -> Option<Value> {
        let at = self.entries.iter().position(|(key, _)| key == name)?;
        Some(self.entries.swap_remove(at).1).filter(|value| !value.is_nil())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_described_by_type_and_content() {
        let lua = mlua::Lua::new();
        assert_eq!(describe(&Value::Nil), "nil");
        assert_eq!(describe(&Value::Boolean(true)), "the boolean true");
        assert_eq!(describe(&Value::Integer(-1)), "the number -1");
        assert_eq!(describe(&Value::Number(0.3)), "the number 0.3");
        assert_eq!(describe(&Value::Number(1e300)), "the number 1e300");
        assert_eq!(describe(&Value::Number(f64::NAN)), "the number nan");
        let soon = Value::String(lua.create_string("soon").unwrap());
        assert_eq!(describe(&soon), "the string \"soon\"");
        let long = Value::String(lua.create_string("x".repeat(100)).unwrap());
        assert_eq!(
            describe(&long),
            format!("the string \"{}\"…", "x".repeat(QUOTED))
        );
        let table = Value::Table(lua.create_table().unwrap());
        assert_eq!(describe(&table), "a table");
        assert_eq!(describe_arg(None), "missing");
    }

    #[test]
    fn seconds_have_one_range() {
        assert_eq!(seconds(0.0), Some(Duration::ZERO));
        assert_eq!(seconds(0.25), Some(Duration::from_millis(250)));
        assert_eq!(seconds(1e300), Some(MAX_SECONDS));
        for bad in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(seconds(bad), None, "{bad}");
        }
        assert_eq!(
            timeout("t", &Value::Number(2.5)),
            Ok(Duration::from_millis(2500))
        );
        for bad in [
            Value::Integer(0),
            Value::Number(-1.0),
            Value::Number(1e-12),
            Value::Boolean(true),
        ] {
            let error = timeout("t", &bad).unwrap_err();
            assert!(
                error.ends_with("expected a number of seconds greater than 0"),
                "{error}"
            );
        }
        assert_eq!(seconds_text(Duration::from_millis(300)), "0.3s");
        assert_eq!(seconds_text(Duration::from_secs(2)), "2s");
    }

    #[test]
    fn options_refuse_unknown_names() {
        let lua = mlua::Lua::new();
        let known = ["cwd", "env", "timeout"];
        let table: Value = lua.load("{ timeout = 1, env = {} }").eval().unwrap();
        let mut opts = Options::read(&table, &known).unwrap();
        assert!(matches!(
            opts.take("timeout"),
            Some(Value::Integer(1) | Value::Number(_))
        ));
        assert!(opts.take("timeout").is_none());
        assert!(opts.take("cwd").is_none());
        let table: Value = lua.load("{ tiemout = 1 }").eval().unwrap();
        assert_eq!(
            Options::read(&table, &known).err().unwrap(),
            "unknown option \"tiemout\": expected cwd, env or timeout"
        );
        let table: Value = lua.load("{ 5 }").eval().unwrap();
        assert_eq!(
            Options::read(&table, &known).err().unwrap(),
            "an option is named by the number 1: expected cwd, env or timeout"
        );
        assert!(Options::read(&Value::Nil, &known).is_ok());
        assert_eq!(
            Options::read(&Value::Boolean(false), &known).err().unwrap(),
            "options are the boolean false: expected a table with cwd, env or timeout"
        );
    }
}
