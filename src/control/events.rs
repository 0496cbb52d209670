//! What the scheduler tells its subscribers: a row changed, a job left, a log line, a run
//! ended, a reload was applied or refused, a notice; and the whole table now and then.

use serde::{Deserialize, Serialize};

use super::views::{JobView, ReloadSummary, RunSummary, Snapshot};

/// Something that changed in the scheduler. On the control socket each is one line
/// `{"event":"<kind>",…}` (docs/protocol.md).
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
    /// The whole table: sent by the control socket to subscribers every 30 s and after one
    /// fell behind, so that anything missed heals. The scheduler itself never sends it.
    Snapshot {
        /// The table.
        snapshot: Box<Snapshot>,
    },
}
