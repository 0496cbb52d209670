//! jobtop's durable state in `SQLite` (docs/state.md): per-job state, run history, the audit
//! trail of operator actions and the `core.state` key/value store.
//!
//! The API is synchronous over one [`rusqlite::Connection`]: the scheduler owns a read-write
//! [`Store`] on a dedicated thread and batches its writes ([`Store::record`]); CLI readers
//! (`jobtop list`, `jobtop history`) open their own with [`Store::open_read_only`].
//!
//! Rules chosen here:
//!
//! * Times are stored as RFC 3339 text in UTC with milliseconds (`2025-01-02T03:04:05.678Z`):
//!   readable in the `sqlite3` shell, and fixed-width so text order is time order. Anything
//!   finer than a millisecond is dropped.
//! * An existing database is never recreated, emptied or migrated "best effort": a file that is
//!   not a database, is corrupt, is read-only or has a newer schema is a [`StoreError`] that
//!   names the file and says what to do.
//! * Operator actions ([`Store::deactivate`], [`Store::activate`]) are committed with
//!   `synchronous=FULL`, so they survive a power loss as well as a `kill -9`; run batches use
//!   `synchronous=NORMAL`, which in WAL mode survives a `kill -9` and may lose only the last
//!   batches on a power loss (docs/state.md#durability-and-crash-safety).

mod codec;
mod error;
mod history;
mod jobs;
mod open;
mod schema;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_data;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::job::{RunResult, Status, Trigger};

pub use error::StoreError;

/// The size above which the stored log lines of one run are cut in the middle.
pub const MAX_STORED_LOG_BYTES: usize = 256 * 1024;

/// The durable state of one job: its `jobs` row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobState {
    /// The job's name from `jobs.yaml`.
    pub name: String,
    /// Whether the job is deactivated (by a failure, `job.CANCEL` or an operator).
    pub deactivated: bool,
    /// Why it was deactivated, while it is.
    pub deactivated_reason: Option<String>,
    /// When it was deactivated, while it is.
    pub deactivated_at: Option<DateTime<Utc>>,
    /// The unix user who deactivated it, when an operator did.
    pub deactivated_by: Option<String>,
    /// When the last (not skipped) run started.
    pub last_run: Option<DateTime<Utc>>,
    /// The time the last (not skipped) run was due.
    pub last_scheduled: Option<DateTime<Utc>>,
    /// How the last (not skipped) run ended.
    pub last_result: Option<RunResult>,
    /// How long the last (not skipped) run took, in milliseconds.
    pub last_duration_ms: Option<f64>,
    /// The newest error; a later successful run does not clear it (docs/job-files.md#deactivation-and-the-last-error).
    pub last_error: Option<String>,
    /// When the newest error happened (the end of its run).
    pub last_error_at: Option<DateTime<Utc>>,
    /// Runs that happened, skipped ones not included.
    pub runs: u64,
    /// Runs that ended `ok`.
    pub oks: u64,
    /// Runs that ended in a failure ([`RunResult::is_failure`]).
    pub errors: u64,
    /// Due times skipped because the previous run was still going.
    pub skips: u64,
    /// The live status last reported by the service; `None` when the job is not configured now
    /// or no service has reported it yet.
    pub status: Option<Status>,
    /// The next due time last reported by the service.
    pub next_run: Option<DateTime<Utc>>,
    /// The latest firing the service handled (run or skipped): a restart never runs it again.
    pub last_fired: Option<DateTime<Utc>>,
    /// The retry attempt under way when the service last reported (0: not retrying).
    pub retry_attempt: u32,
    /// When that retry was due.
    pub retry_at: Option<DateTime<Utc>>,
}

/// One finished run, as stored in the history (`runs` table).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The job's name.
    pub job: String,
    /// The due time the run was for.
    pub scheduled: DateTime<Utc>,
    /// When it actually started.
    pub started: DateTime<Utc>,
    /// How long it took (stored as milliseconds, to the nanosecond).
    pub duration: Duration,
    /// How it ended.
    pub result: RunResult,
    /// The error message or reason, for failures and `aborted` runs.
    pub error: Option<String>,
    /// The run's log lines; cut in the middle above [`MAX_STORED_LOG_BYTES`] when stored.
    pub logs: Vec<String>,
    /// Who asked for the run.
    pub trigger: Trigger,
    /// For a `skipped` run: why, and how many firings it stands for.
    pub skip: Option<Skip>,
}

/// Why a firing was skipped, and how many firings one `skipped` record stands for (the firings
/// a stall or a down service coalesced are one record, not thousands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    /// Why.
    pub reason: crate::job::SkipReason,
    /// How many firings: at least 1.
    pub covers: u64,
}

/// The live status of a job as the service sees it, written with a batch of runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveUpdate {
    /// The job's name.
    pub job: String,
    /// Its status now.
    pub status: Status,
    /// Its next due time, if it has one.
    pub next_run: Option<DateTime<Utc>>,
    /// The latest firing handled (run or skipped): none before it is ever run again.
    pub last_fired: Option<DateTime<Utc>>,
    /// The retry attempt under way (0 when the job is not retrying).
    pub retry_attempt: u32,
    /// When the pending retry is due.
    pub retry_at: Option<DateTime<Utc>>,
}

/// One operator action, as kept in the `audit` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The unix user who asked, when known.
    pub user: Option<String>,
    /// What was asked (`activate`, `cancel`, `trigger`, `reload`, ...).
    pub action: String,
    /// The job it was about, if any.
    pub job: Option<String>,
    /// Anything else worth keeping (a reason, a result).
    pub detail: Option<String>,
}

/// An open state database: one `SQLite` connection and the path it came from.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// The database file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `PRAGMA integrity_check` and returns its report: `"ok"` for a sound database.
    ///
    /// # Errors
    /// When `SQLite` cannot run the check at all (the file is unreadable, or not a database).
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(self.fail("integrity check"))?;
        let lines = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(self.fail("integrity check"))?;
        Ok(lines.join("\n"))
    }

    /// A mapper from a `SQLite` error during `context` to a [`StoreError`] naming this file.
    fn fail(&self, context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |err| StoreError::from_sqlite(&self.path, context, err)
    }
}
