//! Runs one job file once: load, sandbox, limits, and the mapping of what `job.run()` returns
//! to a [`RunResult`] (docs/job-files.md, docs/helpers.md, docs/core-api.md).
//!
//! A [`JobRunner`] keeps one prepared Luau state and reuses it run after run (each run still
//! gets a fresh environment); it throws the state away after any run that was stopped, so a
//! script that ran out of time or memory never leaves anything behind.

mod clock;
mod job_api;
mod limits;
pub mod ops;
mod sandbox;
mod script_cache;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mlua::{Function, Table, Value};

use crate::job::RunResult;
use crate::units::{format_duration, format_size};

pub use clock::{CalendarParts, LocalZone};
pub use job_api::{LogSink, MAX_LOG_LINE_BYTES, MAX_LOG_LINES};
pub use limits::{RunControl, StopReason};
pub use ops::{JobGrants, MemoryState, SqliteState, StateStore};
pub use sandbox::Registrar;
pub use script_cache::{LoadError, ScriptCache};

use job_api::{ReturnCode, RunContext, describe_value, return_code};
use sandbox::LuaVm;

thread_local! {
    /// Set while this thread runs a job, so the panic hook knows a panic will be caught.
    static IN_RUN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs a panic hook that keeps panics inside job runs (which become `error` results) out
/// of the terminal: they go to the log. Every other panic goes to the hook installed before
/// (for the dashboard, the one that restores the terminal first).
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if IN_RUN.with(std::cell::Cell::get) {
            tracing::error!("panic inside a job run (the run ends `error`): {info}");
        } else {
            previous(info);
        }
    }));
}

/// Garbage a state may hold between runs before a full collection is forced.
const GARBAGE_ALLOWANCE: usize = 1 << 20;

/// Everything one run needs to know.
#[derive(Clone)]
pub struct RunRequest {
    /// The job file on disk.
    pub file: PathBuf,
    /// How messages name the file: `jobs/nightly.lua`.
    pub display_name: String,
    /// The time the helpers report, fixed for the whole run.
    pub scheduled: DateTime<Utc>,
    /// What `true` means in the helpers.
    pub zone: LocalZone,
    /// Wall-clock limit of the run.
    pub timeout: Duration,
    /// Lua heap limit of the run, in bytes.
    pub memory: u64,
    /// The run's stop flag; keep a clone to abort it from another thread.
    pub control: RunControl,
    /// Receives log lines as they are written.
    pub log_sink: Option<LogSink>,
    /// What the job may do through `core.*`.
    pub grants: Arc<JobGrants>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The result word.
    pub result: RunResult,
    /// For failures and `aborted`: the message, with file, line and traceback where there are.
    pub error: Option<String>,
    /// The lines written with `core.log` and `print` (bounded).
    pub logs: Vec<String>,
    /// When the run started (wall clock).
    pub started: DateTime<Utc>,
    /// How long it took.
    pub duration: Duration,
}

impl RunOutcome {
    /// The history record of this run of `job`, due at `scheduled`, asked for by `trigger`.
    pub fn record(
        &self,
        job: &str,
        scheduled: DateTime<Utc>,
        trigger: crate::job::Trigger,
    ) -> crate::store::RunRecord {
        crate::store::RunRecord {
            job: job.to_string(),
            scheduled,
            started: self.started,
            duration: self.duration,
            result: self.result,
            error: self.error.clone(),
            logs: self.logs.clone(),
            trigger,
            skip: None,
        }
    }

    /// Why this run deactivates its job, if it does: `job.CANCEL`, or a failure (with the
    /// first line of its error). Scheduled and operator runs share this rule (docs/job-files.md#errors).
    pub fn deactivation_reason(&self) -> Option<String> {
        match self.result {
            RunResult::Cancel => Some("cancelled itself: job.run() returned job.CANCEL".into()),
            result if result.is_failure() => {
                let first_line = self
                    .error
                    .as_deref()
                    .and_then(|e| e.lines().next())
                    .unwrap_or("");
                Some(format!("{result}: {first_line}"))
            }
            _ => None,
        }
    }
}

/// Runs job files one at a time on a reused Luau state. Not `Send`: each worker thread owns one.
pub struct JobRunner {
    vm: Option<LuaVm>,
    cache: Arc<ScriptCache>,
    registrars: Vec<Registrar>,
    reuse_state: bool,
}

/// What the Lua side of a run produced, before limits are taken into account.
enum Ending {
    Returned(Value),
    NotAJob(String),
    Failed(mlua::Error),
}

impl JobRunner {
    /// A runner sharing `cache` with other runners, registering `registrars` into `core`.
    pub fn new(cache: Arc<ScriptCache>, registrars: Vec<Registrar>) -> JobRunner {
        JobRunner {
            vm: None,
            cache,
            registrars,
            reuse_state: true,
        }
    }

    /// Builds a new Luau state for every run instead of reusing one (for measurements).
    #[must_use]
    pub fn fresh_state_per_run(mut self) -> JobRunner {
        self.reuse_state = false;
        self
    }

    /// Runs the job file of `request` once and says how it ended. Never panics.
    pub fn run(&mut self, request: &RunRequest) -> RunOutcome {
        let started = Utc::now();
        let clock = Instant::now();
        let finish = |result: RunResult, error: Option<String>, logs: Vec<String>| RunOutcome {
            result,
            error,
            logs,
            started,
            duration: clock.elapsed(),
        };
        let bytecode = match self.cache.bytecode(&request.file, &request.display_name) {
            Ok(bytecode) => bytecode,
            Err(LoadError::Missing(msg)) => return finish(RunResult::Missing, Some(msg), vec![]),
            Err(LoadError::Syntax(msg)) => return finish(RunResult::Syntax, Some(msg), vec![]),
            Err(LoadError::Unreadable(msg)) => return finish(RunResult::Error, Some(msg), vec![]),
        };
        let _deadline = match limits::arm_deadline(clock + request.timeout, &request.control) {
            Ok(guard) => guard,
            Err(e) => return finish(RunResult::Error, Some(e.to_string()), vec![]),
        };
        if self.vm.is_none() || !self.reuse_state {
            match LuaVm::new(&self.registrars) {
                Ok(vm) => self.vm = Some(vm),
                Err(e) => {
                    let msg = format!("cannot prepare a Lua state: {e}");
                    return finish(RunResult::Error, Some(msg), vec![]);
                }
            }
        }
        let Some(vm) = self.vm.as_ref() else {
            return finish(RunResult::Error, Some("no Lua state".into()), vec![]);
        };

        let memory_limit = usize::try_from(request.memory).unwrap_or(usize::MAX);
        let context = RunContext::new(request.scheduled, request.zone, request.log_sink.clone());
        vm.lua.set_app_data(context);
        vm.lua.set_app_data(ops::OpsContext {
            grants: request.grants.clone(),
            deadline: clock + request.timeout,
            control: request.control.clone(),
        });
        vm.begin_run(request.control.clone());
        let limit_set = vm
            .lua
            .set_memory_limit(vm.lua.used_memory().saturating_add(memory_limit));
        let ending = match limit_set {
            Ok(_) => catch_unwind(AssertUnwindSafe(|| {
                IN_RUN.with(|flag| flag.set(true));
                let ending = execute(vm, &bytecode, &request.display_name);
                IN_RUN.with(|flag| flag.set(false));
                ending
            }))
            .unwrap_or_else(|panic| Ending::Failed(mlua::Error::runtime(panic_message(&panic)))),
            Err(e) => Ending::Failed(e),
        };
        IN_RUN.with(|flag| flag.set(false));
        vm.end_run();
        let _ = vm.lua.set_memory_limit(0);
        vm.lua.remove_app_data::<ops::OpsContext>();
        let logs = vm
            .lua
            .remove_app_data::<RunContext>()
            .map(RunContext::into_logs)
            .unwrap_or_default();

        let (result, error) = judge(ending, request);
        let healthy = matches!(
            result,
            RunResult::Ok
                | RunResult::Exit
                | RunResult::Cancel
                | RunResult::Sleep
                | RunResult::Invalid
                | RunResult::Error
        ) && request.control.stopped().is_none();
        if healthy && self.reuse_state {
            if vm.lua.used_memory() > vm.base_memory + GARBAGE_ALLOWANCE {
                let _ = vm.lua.gc_collect();
            }
        } else {
            // A stopped, out-of-memory or panicked state is not worth trusting again.
            self.vm = None;
        }
        finish(result, error, logs)
    }
}

/// Loads the chunk into a fresh environment, checks it returned a job, and calls `run`.
fn execute(vm: &LuaVm, bytecode: &[u8], display: &str) -> Ending {
    let loaded = vm.new_env().and_then(|env| {
        vm.lua
            .load(bytecode)
            .set_name(format!("={display}"))
            .set_mode(mlua::chunk::ChunkMode::Binary)
            .set_environment(env)
            .into_function()
    });
    let chunk = match loaded {
        Ok(chunk) => chunk,
        Err(e) => return Ending::Failed(e),
    };
    let returned = match chunk.call::<Value>(()) {
        Ok(value) => value,
        Err(e) => return Ending::Failed(e),
    };
    let job: Table = match returned {
        Value::Table(table) => table,
        other => {
            return Ending::NotAJob(format!(
                "{display} returned {} instead of a job table: expected the file to create one with `local job = core.job()` and end with `return job`",
                describe_value(&other)
            ));
        }
    };
    let run: Function = match job.get::<Value>("run") {
        Ok(Value::Function(run)) => run,
        Ok(other) => {
            let what = if vm.job_api.is_job_table(&job) {
                "the job table"
            } else {
                "the table it returned"
            };
            return Ending::NotAJob(format!(
                "{display}: job.run is {} in {what}: expected a function, defined with `function job.run() ... end`",
                describe_value(&other)
            ));
        }
        Err(e) => return Ending::Failed(e),
    };
    match run.call::<Value>(()) {
        Ok(value) => Ending::Returned(value),
        Err(e) => Ending::Failed(e),
    }
}

/// Decides the result: a stop flag beats whatever the script did afterwards.
fn judge(ending: Ending, request: &RunRequest) -> (RunResult, Option<String>) {
    if let Some(reason) = request.control.stopped() {
        return match reason {
            StopReason::Timeout => (
                RunResult::Timeout,
                Some(format!(
                    "timed out after {}",
                    format_duration(request.timeout)
                )),
            ),
            StopReason::Memory => (RunResult::Memory, Some(memory_message(request.memory))),
            StopReason::Aborted => (RunResult::Aborted, Some("aborted by operator".into())),
            StopReason::Shutdown => (
                RunResult::Aborted,
                Some("aborted at shutdown: the run outlasted the grace period".into()),
            ),
        };
    }
    match ending {
        Ending::Returned(value) => match (&value, return_code(&value)) {
            (Value::Boolean(true), _) | (_, Some(ReturnCode::Ok)) => (RunResult::Ok, None),
            (Value::Boolean(false), _) | (_, Some(ReturnCode::Exit)) => (RunResult::Exit, None),
            (_, Some(ReturnCode::Cancel)) => (RunResult::Cancel, None),
            (_, Some(ReturnCode::Sleep)) => (RunResult::Sleep, None),
            _ => (
                RunResult::Invalid,
                Some(format!(
                    "invalid return value {}: expected job.OK, job.EXIT, job.CANCEL, true or false",
                    describe_value(&value)
                )),
            ),
        },
        Ending::NotAJob(msg) => (RunResult::Error, Some(msg)),
        Ending::Failed(error) => {
            if is_memory_error(&error) {
                (RunResult::Memory, Some(memory_message(request.memory)))
            } else {
                (RunResult::Error, Some(error_text(&error)))
            }
        }
    }
}

fn memory_message(limit: u64) -> String {
    format!("memory limit {} exceeded", format_size(limit))
}

fn is_memory_error(error: &mlua::Error) -> bool {
    match error {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => {
            is_memory_error(cause)
        }
        mlua::Error::RuntimeError(msg) => msg.starts_with("not enough memory"),
        _ => false,
    }
}

/// An error as operators read it: the message with file and line, then the Lua traceback.
fn error_text(error: &mlua::Error) -> String {
    match error {
        // The first frame is mlua's own error handler: noise for an operator.
        mlua::Error::RuntimeError(msg) => msg.trim_end().replace("\n\t[C]: in ?", ""),
        mlua::Error::CallbackError { traceback, cause } => {
            format!("{}\n{}", error_text(cause), traceback.trim_end())
        }
        mlua::Error::WithContext { context, cause } => {
            format!("{context}: {}", error_text(cause))
        }
        other => other.to_string(),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    format!("internal error in a jobtop function called by the job: {what}")
}
