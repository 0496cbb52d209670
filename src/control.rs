//! The messages between the scheduler and whoever drives it: the in-process dashboard, the CLI,
//! and (through the control socket) attached dashboards.
//!
//! `Command`s go to the scheduler, each with a reply channel; `JobEvent`s come back on a
//! broadcast channel. Nothing else is shared: the scheduler owns the job table, a dashboard
//! owns its view of it.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};

use crate::job::{RunResult, Status};

/// A reply to a command: the outcome, or a message saying why it was refused.
pub type Reply<T> = oneshot::Sender<Result<T, ActionError>>;

/// Why a command was refused or failed; the text is shown to the operator as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
pub struct ActionError(pub String);

/// Who asked for an action (a Unix user name), for the audit trail.
pub type Actor = Option<String>;

/// What the scheduler can be asked to do.
#[derive(Debug)]
pub enum Command {
    /// Read `jobs.yaml` again and apply the difference (SPEC section 8).
    Reload {
        /// Who asked (`SIGHUP` when the signal did).
        by: Actor,
        /// Receives what changed, or the validation error (the old configuration stays).
        reply: Reply<ReloadSummary>,
    },
    /// Make a deactivated, stopped, sleeping or done job `waiting` again; persisted.
    Activate {
        /// The job's name.
        job: String,
        /// Who asked.
        by: Actor,
        /// Receives a one-line confirmation.
        reply: Reply<String>,
    },
    /// Deactivate a job (persisted) and abort its run in progress.
    Cancel {
        /// The job's name.
        job: String,
        /// Who asked.
        by: Actor,
        /// Receives a one-line confirmation once the deactivation is committed.
        reply: Reply<String>,
    },
    /// Run a job now, once, whatever its status.
    Trigger {
        /// The job's name.
        job: String,
        /// Who asked.
        by: Actor,
        /// Receives a one-line confirmation that the run started.
        reply: Reply<String>,
    },
    /// The current table and a receiver for every event after it.
    Subscribe {
        /// Receives the snapshot and the event stream.
        reply: oneshot::Sender<Subscription>,
    },
    /// Recent runs of one job, newest first.
    History {
        /// The job's name.
        job: String,
        /// At most this many runs.
        limit: usize,
        /// Receives the runs.
        reply: Reply<Vec<RunSummary>>,
    },
    /// Stop starting runs, let running ones finish within the grace period, record, and stop.
    Shutdown {
        /// Told when everything is recorded.
        reply: oneshot::Sender<()>,
    },
}

/// A snapshot and the events that follow it.
#[derive(Debug)]
pub struct Subscription {
    /// The table as it is now.
    pub snapshot: Snapshot,
    /// Every event after the snapshot. A receiver that lags should subscribe again.
    pub events: broadcast::Receiver<JobEvent>,
}

/// The whole table at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The configuration file the service runs.
    pub config_file: PathBuf,
    /// The process id of the service.
    pub pid: u32,
    /// When the service started.
    pub started: DateTime<Utc>,
    /// Every configured job, in `jobs.yaml` order.
    pub jobs: Vec<JobView>,
    /// The last reload error, while the running configuration is an older one.
    pub config_error: Option<String>,
}

/// Something that changed in the scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEvent {
    /// A job's row changed (status, counts, last run, next run, error …): here is all of it.
    Job {
        /// The row as it is now.
        job: Box<JobView>,
    },
    /// A job left the configuration.
    Removed {
        /// The job's name.
        name: String,
    },
    /// A running job wrote a log line.
    Log {
        /// The job's name.
        name: String,
        /// The line.
        line: String,
    },
    /// A run ended; `job` events carry the new row, this one carries the run.
    Finished {
        /// The job's name.
        name: String,
        /// The run.
        run: RunSummary,
    },
    /// A reload was applied.
    Reloaded {
        /// What changed.
        summary: ReloadSummary,
    },
    /// A reload was refused; the running configuration stays.
    ReloadFailed {
        /// Why, with file, line and column.
        error: String,
    },
    /// Something the operator should know that is not about one job (the store failed, …).
    Notice {
        /// The message.
        message: String,
    },
}

/// One row of the job table: everything the dashboard and `list --json` show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// Unique name from `jobs.yaml`.
    pub name: String,
    /// The job file, relative to `jobs_dir`.
    pub path: String,
    /// Seconds between runs (fractions for sub-second intervals).
    pub interval_secs: f64,
    /// Where the job stands.
    pub status: Status,
    /// Start of the last run.
    pub last_run: Option<DateTime<Utc>>,
    /// Result of the last run.
    pub last_result: Option<RunResult>,
    /// Duration of the last run.
    pub last_duration_ms: Option<f64>,
    /// The last error, kept until a newer one replaces it.
    pub last_error: Option<String>,
    /// When the last error happened.
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
    pub next_run: Option<DateTime<Utc>>,
    /// Start of the run in progress.
    pub running_since: Option<DateTime<Utc>>,
    /// Why the job is deactivated.
    pub deactivated_reason: Option<String>,
    /// Who deactivated it (a Unix user), when an operator did.
    pub deactivated_by: Option<String>,
    /// When it was deactivated.
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Wall-clock limit of one run, in seconds.
    pub timeout_secs: f64,
    /// Lua heap limit of one run, in bytes.
    pub memory_bytes: u64,
    /// Runs once per service start.
    pub run_once: bool,
    /// The job's own entry in `jobs.yaml`, as written (shared, not copied, between rows).
    pub entry_yaml: std::sync::Arc<str>,
}

/// One run, as history and the details view show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// When it was due.
    pub scheduled: DateTime<Utc>,
    /// When it started.
    pub started: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// How it ended.
    pub result: RunResult,
    /// Its error, if any.
    pub error: Option<String>,
    /// `schedule` or `operator`.
    pub trigger: String,
    /// Its log lines.
    pub logs: Vec<String>,
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
