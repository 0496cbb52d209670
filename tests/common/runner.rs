//! One job file run through `JobRunner`, as the scheduler would run it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jobtop::runtime::{
    JobGrants, JobRunner, LocalZone, RunControl, RunOutcome, RunRequest, ScriptCache,
};
use serde_json::Value as Json;

/// When the runs of [`request`] are scheduled, unless a test says otherwise.
pub const SCHEDULED: &str = "2023-10-12T01:02:03Z";

/// Lua `show(label, result, err)`: logs `label`, a tab and `{r = result, e = err}` as JSON
/// (read back with [`shown`]).
pub const SHOW: &str = r#"local function show(label, result, err)
  core.log(label .. "\t" .. core.json.encode({ r = result, e = err }))
end
"#;

/// An RFC 3339 time.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A runner with a fresh script cache and no extra Lua functions.
pub fn runner() -> JobRunner {
    JobRunner::new(Arc::new(ScriptCache::new()), vec![])
}

/// A run of `file`, called `display_name` in messages, with `grants`: scheduled at
/// [`SCHEDULED`] in Europe/Berlin, 5 s, 16 MiB of Lua heap, its own control, no log sink.
/// Tests change the rest with `RunRequest { timeout, ..request(…) }` or by assignment.
pub fn request(file: PathBuf, display_name: impl Into<String>, grants: JobGrants) -> RunRequest {
    RunRequest {
        file,
        display_name: display_name.into(),
        scheduled: at(SCHEDULED),
        zone: LocalZone::Named(chrono_tz::Europe::Berlin),
        timeout: Duration::from_secs(5),
        memory: 16 << 20,
        control: RunControl::new(),
        log_sink: None,
        grants: Arc::new(grants),
    }
}

/// Grants of job `job`: the capabilities `allow`, nothing else.
pub fn allowing(job: &str, allow: Vec<jobtop::config::Capability>) -> JobGrants {
    JobGrants {
        job: job.into(),
        allow,
        ..JobGrants::default()
    }
}

/// Writes `source` to `dir/name`; returns its path.
pub fn write_job(dir: &Path, name: &str, source: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, source).unwrap();
    file
}

/// A job file: `head` (which makes `job` and whatever `body` uses), then `job.run()` doing
/// `body` and returning `job.OK`.
pub fn job_source(head: &str, body: &str) -> String {
    format!("{head}function job.run()\n{body}\n  return job.OK\nend\nreturn job\n")
}

/// The `{r, e}` logged with [`SHOW`] under `label`.
pub fn shown(outcome: &RunOutcome, label: &str) -> Json {
    let prefix = format!("{label}\t");
    let line = outcome
        .logs
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no log line {label}: {outcome:?}"));
    serde_json::from_str(line).unwrap()
}

/// The error `label` showed; it must have shown no result.
pub fn error_of(outcome: &RunOutcome, label: &str) -> String {
    let shown = shown(outcome, label);
    assert!(shown.get("r").is_none(), "{label}: {shown}");
    shown["e"].as_str().unwrap().to_string()
}

/// A `core.explode()` that panics inside its Rust callback, for the panic tests.
pub fn register_exploding(lua: &mlua::Lua, core: &mlua::Table) -> mlua::Result<()> {
    let explode = lua.create_function(|_, ()| -> mlua::Result<()> { panic!("kaboom") })?;
    core.raw_set("explode", explode)
}
