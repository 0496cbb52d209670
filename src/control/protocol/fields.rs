//! The request fields' readers: each says, when the value has the wrong type, which field it
//! was and what it should hold (serde's own messages name neither).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde_json::Value;

use super::HISTORY_DEFAULT;

pub(super) fn history_default() -> usize {
    HISTORY_DEFAULT
}

/// What a field holds.
#[derive(Clone, Copy)]
enum Holds {
    Text,
    Count,
    Version,
}

/// A visitor whose "expected" text names the field it reads, so serde's "invalid type: …,
/// expected …" says which field was wrong.
struct Expecting(Holds, &'static str);

impl Visitor<'_> for Expecting {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        match self.0 {
            Holds::Text => Ok(Value::String(v.to_string())),
            _ => Err(E::invalid_type(de::Unexpected::Str(v), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        match self.0 {
            Holds::Count | Holds::Version => Ok(Value::from(v)),
            Holds::Text => Err(E::invalid_type(de::Unexpected::Unsigned(v), &self)),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        match self.0 {
            Holds::Count => Ok(Value::Null),
            _ => Err(E::invalid_type(de::Unexpected::Unit, &self)),
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
}

pub(super) fn job_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let expecting = Expecting(Holds::Text, "\"job\" to be the name of a job as a string");
    match deserializer.deserialize_any(expecting)? {
        Value::String(job) => Ok(job),
        _ => Err(de::Error::custom("\"job\" must be a string")),
    }
}

pub(super) fn history_limit<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let expecting = Expecting(
        Holds::Count,
        "\"limit\" to be a whole number of runs such as 20",
    );
    match deserializer.deserialize_any(expecting)? {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| de::Error::custom("\"limit\" is too large: expected at most 2^64 - 1")),
        _ => Ok(HISTORY_DEFAULT),
    }
}

pub(super) fn protocol_version<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<u64, D::Error> {
    let expecting = Expecting(
        Holds::Version,
        "\"protocol\" to be a version number such as 1",
    );
    match deserializer.deserialize_any(expecting)? {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| de::Error::custom("\"protocol\" must be a whole number: expected 1")),
        _ => Err(de::Error::custom(
            "\"protocol\" must be a number: expected 1",
        )),
    }
}
