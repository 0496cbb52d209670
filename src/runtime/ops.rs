//! The ops API of job files (`core.json`, `core.network`, `core.exec`, `core.files`,
//! `core.state`, `core.env`, `core.sql`, utilities): what a job may do with the outside world, each area
//! registered by its own module, each gated by the job's grants from `jobs.yaml`.
//!
//! In Coronium's style a function that can fail returns `nil, err` instead of raising. Every
//! blocking call is bounded by the run's remaining time and gives way to an operator's abort.

mod args;
mod env;
mod exec;
mod files;
mod json;
mod mysql_api;
mod network;
mod sql;
mod state;
mod util;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mlua::{Lua, MultiValue, Table, Value};

use crate::config::Capability;

use super::limits::RunControl;

pub use state::SqliteState;

/// Where `core.state` keeps a job's values.
pub trait StateStore: Send + Sync {
    /// The JSON text stored under `key` for `job`.
    fn get(&self, job: &str, key: &str) -> Result<Option<String>, String>;
    /// Stores JSON text under `key` for `job`.
    fn set(&self, job: &str, key: &str, json: &str) -> Result<(), String>;
    /// Forgets `key` for `job`.
    fn delete(&self, job: &str, key: &str) -> Result<(), String>;
}

/// A `core.state` that lives as long as the process (for `jobtop try`).
#[derive(Default)]
pub struct MemoryState {
    values: Mutex<HashMap<(String, String), String>>,
}

impl StateStore for MemoryState {
    fn get(&self, job: &str, key: &str) -> Result<Option<String>, String> {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(values.get(&(job.to_string(), key.to_string())).cloned())
    }

    fn set(&self, job: &str, key: &str, json: &str) -> Result<(), String> {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values.insert((job.to_string(), key.to_string()), json.to_string());
        Ok(())
    }

    fn delete(&self, job: &str, key: &str) -> Result<(), String> {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values.remove(&(job.to_string(), key.to_string()));
        Ok(())
    }
}

/// What one job may do, from its entry in `jobs.yaml` (or `jobtop try`'s flags).
#[derive(Clone, Default)]
pub struct JobGrants {
    /// The job's name, for messages and `core.state`.
    pub job: String,
    /// Capabilities granted with `allow:`.
    pub allow: Vec<Capability>,
    /// Roots `core.files` may touch (absolute).
    pub files: Vec<PathBuf>,
    /// Environment variables `core.env` may read.
    pub env: Vec<String>,
    /// Where `core.state` keeps values; `None` makes it fail with a message.
    pub state: Option<Arc<dyn StateStore>>,
    /// The databases `core.sql` and `core.mysql` may use.
    pub databases: Vec<Arc<crate::config::Database>>,
}

impl JobGrants {
    /// The grants of a job from its `jobs.yaml` entry.
    pub fn for_job(spec: &crate::config::JobSpec, state: Option<Arc<dyn StateStore>>) -> JobGrants {
        JobGrants {
            job: spec.name.clone(),
            allow: spec.allow.clone(),
            files: spec.files.clone(),
            env: spec.env.clone(),
            state,
            databases: spec.databases.clone(),
        }
    }
}

impl std::fmt::Debug for JobGrants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobGrants")
            .field("job", &self.job)
            .field("allow", &self.allow)
            .field("files", &self.files)
            .field("env", &self.env)
            .field("state", &self.state.is_some())
            .field(
                "databases",
                &self
                    .databases
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The per-run facts the ops API reads, set as app data for the length of a run.
pub struct OpsContext {
    /// What the job may do.
    pub grants: Arc<JobGrants>,
    /// When the run's timeout expires.
    pub deadline: Instant,
    /// The run's stop flag.
    pub control: RunControl,
}

impl OpsContext {
    /// Time left before the run's timeout; zero once it passed or the run is being stopped.
    pub fn remaining(&self) -> Duration {
        if self.control.stopped().is_some() {
            return Duration::ZERO;
        }
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// `Err(message)` unless the job has `capability`; `what` names the function.
    pub fn require(&self, capability: Capability, what: &str) -> Result<(), String> {
        if self.grants.allow.contains(&capability) {
            return Ok(());
        }
        Err(format!(
            "{what} is not allowed for job {}: add `allow: [{}]` to its entry in jobs.yaml",
            self.grants.job,
            capability.as_str()
        ))
    }
}

/// Reads the run's context; outside a run (which cannot happen from a job) it is an error.
pub fn context(lua: &Lua) -> mlua::Result<mlua::AppDataRef<'_, OpsContext>> {
    lua.app_data_ref::<OpsContext>()
        .ok_or_else(|| mlua::Error::runtime("core functions can only be called during a run"))
}

/// The Coronium failure convention: `nil, message`.
pub fn fail(lua: &Lua, message: impl AsRef<str>) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([
        Value::Nil,
        Value::String(lua.create_string(message.as_ref())?),
    ]))
}

/// Turns `Ok(value)` into `value` and `Err(message)` into `nil, message`.
pub fn returns(lua: &Lua, result: Result<Value, String>) -> mlua::Result<MultiValue> {
    match result {
        Ok(value) => Ok(MultiValue::from_iter([value])),
        Err(message) => fail(lua, message),
    }
}

/// Sleeps up to `wanted`, in slices, giving way at once to the run's timeout or abort.
/// Returns false when it was cut short.
pub fn bounded_sleep(lua: &Lua, wanted: Duration) -> mlua::Result<bool> {
    let (deadline, control) = {
        let ops = context(lua)?;
        (ops.deadline, ops.control.clone())
    };
    let until = Instant::now() + wanted;
    loop {
        if control.stopped().is_some() {
            return Ok(false);
        }
        let now = Instant::now();
        if now >= until {
            return Ok(true);
        }
        if now >= deadline {
            // The watchdog may be a moment behind: the run is over now, not at its next tick.
            control.stop(super::limits::StopReason::Timeout);
            return Ok(false);
        }
        let slice = until
            .min(deadline)
            .saturating_duration_since(now)
            .min(Duration::from_millis(20));
        std::thread::sleep(slice);
    }
}

/// Registers every area of the ops API into `core`.
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    json::register(lua, core)?;
    util::register(lua, core)?;
    env::register(lua, core)?;
    state::register(lua, core)?;
    network::register(lua, core)?;
    exec::register(lua, core)?;
    files::register(lua, core)?;
    sql::register(lua, core)?;
    mysql_api::register(lua, core)?;
    Ok(())
}
