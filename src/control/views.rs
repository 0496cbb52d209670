//! The shapes other parts read: the job table's rows, runs, reload summaries, snapshots, and
//! the rows of `list --json`. Each is `Serialize`/`Deserialize`, so the JSON of the CLI, the
//! control socket and the dashboard's copy of the table are one definition (docs/cli.md,
//! docs/protocol.md). A `list --json` object is a [`JobView`].

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::time_format;
use crate::job::{RunResult, Status};

/// The whole table at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The configuration file the service runs.
    pub config_file: PathBuf,
    /// The process id of the service.
    pub pid: u32,
    /// When the service started.
    #[serde(with = "time_format")]
    pub started: DateTime<Utc>,
    /// Every configured job, in `jobs.yaml` order.
    pub jobs: Vec<JobView>,
    /// The last reload error, while the running configuration is an older one.
    pub config_error: Option<String>,
}

/// One row of the job table: everything the dashboard shows of a job, and one object of
/// `list --json` (the contract's fields first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// Unique name from `jobs.yaml`.
    pub name: String,
    /// The job file, relative to `jobs_dir`.
    pub path: String,
    /// When it fires: the cron expression, or the interval as `jobs.yaml` writes it (`5s`).
    pub schedule: String,
    /// The IANA zone of its schedule and of its helpers' local time.
    pub timezone: String,
    /// Seconds between runs (fractions for sub-second intervals); null for calendar jobs.
    pub interval_secs: Option<f64>,
    /// Where the job stands.
    pub status: Status,
    /// Start of the last run.
    #[serde(with = "time_format::option")]
    pub last_run: Option<DateTime<Utc>>,
    /// Result of the last run.
    pub last_result: Option<RunResult>,
    /// Duration of the last run.
    pub last_duration_ms: Option<f64>,
    /// The last error, kept until a newer one replaces it.
    pub last_error: Option<String>,
    /// When the last error happened.
    #[serde(with = "time_format::option")]
    pub last_error_at: Option<DateTime<Utc>>,
    /// Runs so far (all results but `skipped`).
    pub runs: u64,
    /// Runs that ended `ok`.
    pub oks: u64,
    /// Runs that ended in a failure.
    pub errors: u64,
    /// Due times skipped because the previous run was still going.
    pub skips: u64,
    /// When the next scheduled run is due.
    #[serde(with = "time_format::option")]
    pub next_run: Option<DateTime<Utc>>,
    /// Start of the run in progress.
    #[serde(with = "time_format::option")]
    pub running_since: Option<DateTime<Utc>>,
    /// Why the job is deactivated.
    pub deactivated_reason: Option<String>,
    /// Who deactivated it (a Unix user), when an operator did.
    pub deactivated_by: Option<String>,
    /// When it was deactivated.
    #[serde(with = "time_format::option")]
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Retries after a failed run (`retries:`).
    pub retries: u32,
    /// The retry attempt under way or waiting (0 when none).
    pub retry_attempt: u32,
    /// When the waiting retry is due.
    #[serde(with = "time_format::option")]
    pub retry_at: Option<DateTime<Utc>>,
    /// What a missed firing becomes: `latest`, `none` or a duration.
    pub catch_up: String,
    /// Wall-clock limit of one run, in seconds.
    pub timeout_secs: f64,
    /// Lua heap limit of one run, in bytes.
    pub memory_bytes: u64,
    /// Runs once per service start.
    pub run_once: bool,
    /// The job's own entry in `jobs.yaml`, as written (shared, not copied, between rows).
    pub entry_yaml: Arc<str>,
}

/// One run, as history, `history --json` and the details view show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// When it was due.
    #[serde(with = "time_format")]
    pub scheduled: DateTime<Utc>,
    /// When it started.
    #[serde(with = "time_format")]
    pub started: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// How it ended.
    pub result: RunResult,
    /// Its error, if any.
    pub error: Option<String>,
    /// `schedule`, `operator` or `retry`.
    pub trigger: String,
    /// For a `skipped` run, why: `overlap`, `missed`, `catch_up` or `retrying`.
    pub reason: Option<crate::job::SkipReason>,
    /// Its log lines.
    pub logs: Vec<String>,
}

/// The outcome of a test notification to one channel (`notify test`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelOutcome {
    /// The channel's number, from 1, in the order `notify test` lists channels.
    pub number: usize,
    /// The channel's label (`webhook:host`, `command:name`, `email:to`).
    pub channel: String,
    /// Why delivery failed; null when it was delivered.
    pub error: Option<String>,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadSummary {
    /// Jobs new in `jobs.yaml`.
    pub added: Vec<String>,
    /// Jobs no longer in `jobs.yaml`.
    pub removed: Vec<String>,
    /// Jobs whose entry changed.
    pub changed: Vec<String>,
    /// `stopped` jobs that run again.
    pub resumed: Vec<String>,
    /// Jobs left as they were.
    pub unchanged: usize,
}

impl fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (label, names) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
            ("resumed", &self.resumed),
        ] {
            if !names.is_empty() {
                parts.push(format!("{label} {}", names.join(", ")));
            }
        }
        parts.push(format!("{} unchanged", self.unchanged));
        write!(f, "reloaded: {}", parts.join("; "))
    }
}

/// What a peer of the control socket may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// List, history, subscribe, and act.
    Operator,
    /// List, history and subscribe only.
    Viewer,
}

/// The answer to `hello`: who the service is, and who it takes the client for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the service speaks.
    pub protocol: u64,
    /// The service's process id.
    pub pid: u32,
    /// The client's Unix user, as the service names it.
    pub user: String,
    /// What the client may do.
    pub role: Role,
}
