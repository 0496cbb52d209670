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
//!
//! This file is the call and its wait for the program; `request` reads what the job asked
//! for, `process` starts the program and reads its output.

mod process;
mod request;

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mlua::{Lua, MultiValue, Table, Value};

use self::process::{Stream, start};
use self::request::{Request, parse};
use super::args::seconds_text;
use super::{context, fail};
use crate::config::Capability;
use crate::runtime::limits::{RunControl, StopReason};

/// How often the wait checks the run's stop flag and the timeout.
const POLL: Duration = Duration::from_millis(20);

/// How a program ended that ran to its end.
struct Finished {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Registers `core.exec`.
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
            "core.exec: {cmd} timed out after {}{why} and was killed",
            seconds_text(timeout)
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
