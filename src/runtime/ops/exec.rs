//! `core.exec(cmd, args, {cwd, env, timeout, stdin})`: runs a program without a shell and
//! returns `{status, stdout, stderr}`, or `nil, err` when it could not run or was killed.
//!
//! The program starts in its own process group, so that on timeout or abort the whole group
//! (the program and every child it started that stayed in the group) is killed with SIGKILL:
//! a program that ignores SIGTERM still dies. It gets a clean environment holding only `PATH`
//! and the variables the job passes: jobtop's own environment, which may hold secrets, is not
//! inherited. Standard input is empty unless `stdin` is given, never jobtop's terminal.
//!
//! `core.exec` returns once the program has exited and its stdout and stderr are closed, as a
//! shell's `$(…)` does: a background child that still holds them counts toward the timeout
//! (and is killed with the group then). Background processes that closed them are left
//! running when the program exits normally. A process that left the group (`setsid`) is out
//! of reach of the kill; its output is then abandoned, so it cannot hold the run either.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mlua::{Lua, MultiValue, Table, Value};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::{context, fail};
use crate::config::Capability;
use crate::runtime::limits::{RunControl, StopReason};

/// How much of each of stdout and stderr is kept; the rest is read and counted.
const MAX_OUTPUT: usize = 1 << 20;
/// How often the wait checks the run's stop flag and the timeout.
const POLL: Duration = Duration::from_millis(20);
/// How long a killed program may take to be reaped before a thread is left to reap it, so a
/// program stuck in the kernel cannot hold the run.
const CLOSE_GRACE: Duration = Duration::from_millis(50);
/// `PATH` for the program when jobtop itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The options `core.exec` knows, for messages.
const OPTIONS: &str = "cwd, env, timeout or stdin";

/// What the job asked to run.
struct Request {
    cmd: String,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    timeout: Option<Duration>,
    stdin: Option<Vec<u8>>,
}

/// How a program ended that ran to its end.
struct Finished {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    core.raw_set(
        "exec",
        lua.create_function(
            |lua, (cmd, args, opts): (Value, Value, Value)| -> mlua::Result<MultiValue> {
                let (control, remaining) = {
                    let ops = context(lua)?;
                    if let Err(denied) = ops.require(Capability::Exec, "core.exec") {
                        return fail(lua, denied);
                    }
                    (ops.control.clone(), ops.remaining())
                };
                let request = match parse(lua, &cmd, &args, &opts) {
                    Ok(request) => request,
                    Err(message) => return fail(lua, message),
                };
                match run(&request, &control, remaining) {
                    Ok(finished) => Ok(MultiValue::from_iter([Value::Table(result_table(
                        lua, &finished,
                    )?)])),
                    Err(message) => fail(lua, message),
                }
            },
        )?,
    )
}

fn result_table(lua: &Lua, finished: &Finished) -> mlua::Result<Table> {
    let result = lua.create_table()?;
    match (finished.status.code(), finished.status.signal()) {
        (Some(code), _) => result.raw_set("status", code)?,
        (None, Some(signal)) => {
            result.raw_set("status", 128 + signal)?;
            result.raw_set("signal", signal)?;
        }
        // Neither an exit code nor a signal cannot happen for a reaped process.
        (None, None) => result.raw_set("status", -1)?,
    }
    result.raw_set("stdout", lua.create_string(&finished.stdout)?)?;
    result.raw_set("stderr", lua.create_string(&finished.stderr)?)?;
    Ok(result)
}

/// Checks the arguments and says what was expected when they are wrong.
fn parse(lua: &Lua, cmd: &Value, args: &Value, opts: &Value) -> Result<Request, String> {
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
                "core.exec: cmd is a {}: expected the name or path of a program (a string)",
                type_name(other)
            ));
        }
    };
    let mut request = Request {
        args: parse_args(lua, &cmd, args)?,
        cmd,
        cwd: None,
        env: Vec::new(),
        timeout: None,
        stdin: None,
    };
    let opts = match opts {
        Value::Nil => return Ok(request),
        Value::Table(opts) => opts,
        other => {
            return Err(format!(
                "core.exec: options are a {}: expected a table with {OPTIONS}",
                type_name(other)
            ));
        }
    };
    for pair in opts.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| format!("core.exec: cannot read the options: {e}"))?;
        let key = match &key {
            Value::String(key) => key.to_string_lossy(),
            other => {
                return Err(format!(
                    "core.exec: an option is named by a {}: expected {OPTIONS}",
                    type_name(other)
                ));
            }
        };
        match key.as_str() {
            "cwd" => request.cwd = Some(parse_cwd(&value)?),
            "env" => request.env = parse_env(lua, &value)?,
            "timeout" => request.timeout = Some(parse_timeout(&value)?),
            "stdin" => match value {
                Value::String(s) => request.stdin = Some(s.as_bytes().to_vec()),
                other => {
                    return Err(format!(
                        "core.exec: stdin is a {}: expected a string",
                        type_name(&other)
                    ));
                }
            },
            other => {
                return Err(format!(
                    "core.exec: unknown option {other}: expected {OPTIONS}"
                ));
            }
        }
    }
    Ok(request)
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
                "core.exec({cmd}): args are a {}: expected an array of strings",
                type_name(other)
            ));
        }
    };
    let len = args.raw_len();
    let mut parsed = Vec::with_capacity(len);
    for i in 1..=len {
        let value: Value = args.raw_get(i).map_err(|e| e.to_string())?;
        parsed.push(text(lua, &value).ok_or_else(|| {
            format!(
                "core.exec({cmd}): args[{i}] is a {}: expected a string",
                type_name(&value)
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
            "core.exec: cwd is a {}: expected the path of a directory (a string)",
            type_name(value)
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
    let Value::Table(table) = value else {
        return Err(format!(
            "core.exec: env is a {}: expected a table of variable names to values",
            type_name(value)
        ));
    };
    let mut env = Vec::new();
    for pair in table.pairs::<Value, Value>() {
        let (name, value) = pair.map_err(|e| format!("core.exec: cannot read env: {e}"))?;
        let name = match &name {
            Value::String(name)
                if !name.as_bytes().is_empty()
                    && !name.as_bytes().iter().any(|b| *b == b'=' || *b == 0) =>
            {
                OsString::from_vec(name.as_bytes().to_vec())
            }
            other => {
                return Err(format!(
                    "core.exec: env has a key {}: expected variable names (strings without `=`)",
                    describe(other)
                ));
            }
        };
        let value = text(lua, &value)
            .filter(|v| !v.as_encoded_bytes().contains(&0))
            .ok_or_else(|| {
                format!(
                    "core.exec: env.{} is {}: expected a string",
                    name.to_string_lossy(),
                    describe(&value)
                )
            })?;
        env.push((name, value));
    }
    Ok(env)
}

fn parse_timeout(value: &Value) -> Result<Duration, String> {
    let seconds = match value {
        Value::Integer(n) => Some(match i32::try_from(*n) {
            Ok(n) => f64::from(n),
            Err(_) if *n > 0 => f64::MAX,
            Err(_) => -1.0,
        }),
        Value::Number(n) => Some(*n),
        _ => None,
    };
    match seconds {
        Some(s) if s.is_finite() && s > 0.0 => {
            Ok(Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX))
        }
        _ => Err(format!(
            "core.exec: timeout is {}: expected a number of seconds greater than 0",
            describe(value)
        )),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{:?}", s.to_string_lossy()),
        Value::Integer(n) => n.to_string(),
        Value::Number(n) => n.to_string(),
        other => format!("a {}", type_name(other)),
    }
}

/// Seconds as people write them: `5`, `0.3`, `1.25`.
fn seconds(duration: Duration) -> String {
    let text = format!("{:.3}", duration.as_secs_f64());
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A running program's process group; dropping it kills and reaps whatever is left.
struct Group {
    child: Option<Child>,
}

impl Group {
    /// Kills the whole group with SIGKILL and reaps the program. A program that does not die
    /// at once (stuck in the kernel) is reaped by a thread of its own, so the run goes on.
    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The program is not reaped yet, so its pid still names the group.
        if let Ok(pgid) = i32::try_from(child.id()) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        let _ = child.kill();
        let until = Instant::now() + CLOSE_GRACE;
        while Instant::now() < until {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = std::thread::Builder::new()
            .name("jobtop-exec-reaper".into())
            .spawn(move || {
                let _ = child.wait();
            });
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Out,
    Err,
}

/// Where each stream's output arrives once it closed.
type Outputs = mpsc::Receiver<(Stream, Vec<u8>)>;

/// Reads `source` to its end, keeping the first `MAX_OUTPUT` bytes and counting the rest, so
/// that a chatty program never blocks on a full pipe.
fn capture(
    mut source: impl Read + Send + 'static,
    which: Stream,
    done: mpsc::Sender<(Stream, Vec<u8>)>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("jobtop-exec-output".into())
        .spawn(move || {
            let mut kept = Vec::new();
            let mut dropped: u64 = 0;
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match source.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => {
                        let room = MAX_OUTPUT.saturating_sub(kept.len()).min(n);
                        kept.extend_from_slice(&buffer[..room]);
                        dropped += (n - room) as u64;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            if dropped > 0 {
                kept.extend_from_slice(format!("\n[… {dropped} bytes dropped]").as_bytes());
            }
            let _ = done.send((which, kept));
        })
        .map(|_| ())
}

/// Starts the program in a process group of its own, with threads reading its output (sent
/// on the returned channel when each stream closes) and writing its input.
fn start(request: &Request) -> Result<(Group, Outputs), String> {
    let cmd = &request.cmd;
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    let mut command = Command::new(cmd);
    command
        .args(&request.args)
        .env_clear()
        .env("PATH", &path)
        .envs(request.env.iter().map(|(k, v)| (k, v)))
        .stdin(if request.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(cwd) = &request.cwd {
        command.current_dir(cwd);
    }
    let mut child = command.spawn().map_err(|e| spawn_error(cmd, &path, &e))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let group = Group { child: Some(child) };

    let (done, outputs) = mpsc::channel();
    let readers = [
        stdout.map(|pipe| capture(pipe, Stream::Out, done.clone())),
        stderr.map(|pipe| capture(pipe, Stream::Err, done.clone())),
    ];
    if let Some(Err(e)) = readers.into_iter().flatten().find(Result::is_err) {
        return Err(format!("core.exec: cannot read the output of {cmd}: {e}"));
    }
    drop(done);
    if let (Some(mut pipe), Some(data)) = (stdin, request.stdin.clone()) {
        // A program that does not read its input must not block the run: the writer is left
        // to finish (or fail with a broken pipe once the program is gone) on its own.
        let spawned = std::thread::Builder::new()
            .name("jobtop-exec-input".into())
            .spawn(move || {
                let _ = pipe.write_all(&data);
            });
        if let Err(e) = spawned {
            return Err(format!("core.exec: cannot write the input of {cmd}: {e}"));
        }
    }

    Ok((group, outputs))
}

/// Runs the program until it ends, its timeout passes or the run is stopped.
fn run(request: &Request, control: &RunControl, remaining: Duration) -> Result<Finished, String> {
    let cmd = &request.cmd;
    let capped = request.timeout.is_none_or(|t| remaining < t);
    let timeout = request.timeout.map_or(remaining, |t| t.min(remaining));
    let timed_out = || {
        let why = if capped {
            " (what was left of the run's timeout)"
        } else {
            ""
        };
        format!(
            "core.exec: {cmd} timed out after {}s{why} and was killed",
            seconds(timeout)
        )
    };
    let stopped = |reason: StopReason| match reason {
        StopReason::Timeout => timed_out(),
        StopReason::Memory => format!("core.exec: {cmd} was killed: the run is being stopped"),
        StopReason::Aborted | StopReason::Shutdown => {
            format!("core.exec: {cmd} was killed: the run was aborted")
        }
    };
    if let Some(reason) = control.stopped() {
        return Err(stopped(reason));
    }
    if timeout.is_zero() {
        if capped {
            control.stop(StopReason::Timeout);
        }
        return Err(timed_out());
    }

    let limit = Instant::now() + timeout;
    let (mut group, outputs) = start(request)?;
    let mut out = None;
    let mut err = None;
    let status = loop {
        let closed = out.is_some() && err.is_some();
        // The program is only reaped once its output is closed: until then its pid keeps
        // naming the group, so a kill cannot reach a recycled one.
        if closed && let Some(child) = group.child.as_mut() {
            match child.try_wait() {
                Ok(Some(status)) => {
                    group.child = None;
                    break status;
                }
                Ok(None) => {}
                Err(e) => return Err(format!("core.exec: cannot wait for {cmd}: {e}")),
            }
        }
        if let Some(reason) = control.stopped() {
            group.kill();
            return Err(stopped(reason));
        }
        let now = Instant::now();
        if now >= limit {
            group.kill();
            if capped {
                // The run's own time is up: end it now rather than at the watchdog's tick.
                control.stop(StopReason::Timeout);
            }
            return Err(timed_out());
        }
        let slice = POLL.min(limit - now);
        if closed {
            std::thread::sleep(slice.min(Duration::from_millis(2)));
            continue;
        }
        match outputs.recv_timeout(slice) {
            Ok((Stream::Out, data)) => out = Some(data),
            Ok((Stream::Err, data)) => err = Some(data),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                out.get_or_insert_with(Vec::new);
                err.get_or_insert_with(Vec::new);
            }
        }
    };
    Ok(Finished {
        status,
        stdout: out.unwrap_or_default(),
        stderr: err.unwrap_or_default(),
    })
}

fn spawn_error(cmd: &str, path: &OsString, error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let by_path = cmd.contains('/');
    match error.kind() {
        ErrorKind::NotFound if by_path => {
            format!("core.exec: {cmd} does not exist: expected the path of a program")
        }
        ErrorKind::NotFound => format!(
            "core.exec: {cmd} was not found in PATH ({}): expected an installed program or the path of one",
            path.to_string_lossy()
        ),
        ErrorKind::PermissionDenied => format!(
            "core.exec: {cmd} cannot be run: permission denied: expected an executable file"
        ),
        _ => format!("core.exec: {cmd} cannot be run: {error}"),
    }
}

/// Lua's name for the type of `value` (Luau has only numbers, never integers).
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) => "number",
        other => other.type_name(),
    }
}
