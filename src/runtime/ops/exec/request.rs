//! What a job asked `core.exec` to run, read from its `cmd`, `args` and options table and
//! checked, with an error that names the bad argument and says what was expected.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use mlua::{Lua, Value};

use crate::runtime::ops::args::{Options, describe, pairs, timeout};

/// The options `core.exec` knows.
const OPTIONS: [&str; 4] = ["cwd", "env", "timeout", "stdin"];

/// What the job asked to run.
pub(super) struct Request {
    /// The program, by name (looked up in `PATH`) or path.
    pub cmd: String,
    pub args: Vec<OsString>,
    pub cwd: Option<PathBuf>,
    /// Variables on top of `PATH`.
    pub env: Vec<(OsString, OsString)>,
    pub timeout: Option<Duration>,
    /// Standard input; `None` is an empty one.
    pub stdin: Option<Vec<u8>>,
}

/// Checks the arguments and says what was expected when they are wrong.
pub(super) fn parse(lua: &Lua, cmd: &Value, args: &Value, opts: &Value) -> Result<Request, String> {
    let cmd = match cmd {
        Value::String(s) if !s.as_bytes().is_empty() && !s.as_bytes().contains(&0) => {
            s.to_string_lossy()
        }
        Value::String(_) => {
            return Err(
                "core.exec: cmd is empty or holds a NUL byte: expected the name or path of a program"
                    .into(),
            );
        }
        other => {
            return Err(format!(
                "core.exec: cmd is {}: expected the name or path of a program (a string)",
                describe(other)
            ));
        }
    };
    let args = parse_args(lua, &cmd, args)?;
    let mut opts = Options::read(opts, &OPTIONS).map_err(|e| format!("core.exec: {e}"))?;
    let cwd = opts.take("cwd").map(|cwd| parse_cwd(&cwd)).transpose()?;
    let env = match opts.take("env") {
        Some(env) => parse_env(lua, &env)?,
        None => Vec::new(),
    };
    let timeout = opts
        .take("timeout")
        .map(|t| timeout("core.exec: timeout", &t))
        .transpose()?;
    let stdin = match opts.take("stdin") {
        None => None,
        Some(Value::String(s)) => Some(s.as_bytes().to_vec()),
        Some(other) => {
            return Err(format!(
                "core.exec: stdin is {}: expected a string",
                describe(&other)
            ));
        }
    };
    Ok(Request {
        cmd,
        args,
        cwd,
        env,
        timeout,
        stdin,
    })
}

/// A string, or a number written as Lua writes it.
fn text(lua: &Lua, value: &Value) -> Option<OsString> {
    match value {
        Value::String(_) | Value::Integer(_) | Value::Number(_) => lua
            .coerce_string(value.clone())
            .ok()
            .flatten()
            .map(|s| OsString::from_vec(s.as_bytes().to_vec())),
        _ => None,
    }
}

fn parse_args(lua: &Lua, cmd: &str, args: &Value) -> Result<Vec<OsString>, String> {
    let args = match args {
        Value::Nil => return Ok(Vec::new()),
        Value::Table(args) => args,
        other => {
            return Err(format!(
                "core.exec({cmd}): args are {}: expected an array of strings",
                describe(other)
            ));
        }
    };
    let len = args.raw_len();
    let mut parsed = Vec::with_capacity(len);
    for i in 1..=len {
        let value: Value = args.raw_get(i).map_err(|e| e.to_string())?;
        parsed.push(text(lua, &value).ok_or_else(|| {
            format!(
                "core.exec({cmd}): args[{i}] is {}: expected a string",
                describe(&value)
            )
        })?);
    }
    if args.pairs::<Value, Value>().count() != len {
        return Err(format!(
            "core.exec({cmd}): args has keys that are not 1..{len}: expected an array of strings"
        ));
    }
    Ok(parsed)
}

fn parse_cwd(value: &Value) -> Result<PathBuf, String> {
    let Value::String(cwd) = value else {
        return Err(format!(
            "core.exec: cwd is {}: expected the path of a directory (a string)",
            describe(value)
        ));
    };
    let cwd = PathBuf::from(OsString::from_vec(cwd.as_bytes().to_vec()));
    // Checked here because a bad cwd fails the spawn with the same error as a missing program.
    match std::fs::metadata(&cwd) {
        Ok(meta) if meta.is_dir() => Ok(cwd),
        Ok(_) => Err(format!(
            "core.exec: cwd {} is not a directory: expected an existing directory",
            cwd.display()
        )),
        Err(e) => Err(format!(
            "core.exec: cwd {} cannot be used ({e}): expected an existing directory",
            cwd.display()
        )),
    }
}

fn parse_env(lua: &Lua, value: &Value) -> Result<Vec<(OsString, OsString)>, String> {
    let mut env = Vec::new();
    let expected = "a table of variable names to values";
    for pair in pairs(value, "core.exec: env is", expected)? {
        let (name, value) = pair?;
        let name = match &name {
            Value::String(name)
                if !name.as_bytes().is_empty()
                    && !name.as_bytes().iter().any(|b| *b == b'=' || *b == 0) =>
            {
                OsString::from_vec(name.as_bytes().to_vec())
            }
            other => {
                return Err(format!(
                    "core.exec: env has a key that is {}: expected variable names (strings without `=`)",
                    describe(other)
                ));
            }
        };
        let value = text(lua, &value)
            .filter(|v| !v.as_encoded_bytes().contains(&0))
            .ok_or_else(|| {
                format!(
                    "core.exec: env.{} is {}: expected a string (or a number) without NUL bytes",
                    name.to_string_lossy(),
                    describe(&value)
                )
            })?;
        env.push((name, value));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::args::one_of;

    #[test]
    fn options_are_listed_in_messages() {
        assert_eq!(one_of(&OPTIONS), "cwd, env, timeout or stdin");
    }
}
