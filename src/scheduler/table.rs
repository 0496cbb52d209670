//! The scheduler's own record of each job: its definition, where it stands, its counters,
//! and the run in progress. Only the scheduler task touches it; others get [`JobView`]s.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::config::JobSpec;
use crate::control::JobView;
use crate::job::Status;
use crate::runtime::{JobGrants, RunControl};
use crate::store::JobState;

/// The run a job has in progress.
pub struct Running {
    /// Matches the worker's answer to this run.
    pub run_id: u64,
    /// Its stop flag.
    pub control: RunControl,
    /// When it was handed to a worker.
    pub since: DateTime<Utc>,
    /// Set when an operator cancelled the job: the row shows `deactivated`, not `running`.
    pub aborting: bool,
}

/// One configured job.
pub struct JobEntry {
    /// Its definition from `jobs.yaml`.
    pub spec: Arc<JobSpec>,
    /// How messages name its file (`jobs/x.lua`).
    pub display_name: String,
    /// What it may do through `core.*`.
    pub grants: Arc<JobGrants>,
    /// Where it stands when no run is in progress.
    pub status: Status,
    /// Its next due time, while it has one.
    pub due: Option<Instant>,
    /// Bumped whenever `due` changes, so older timers are ignored.
    pub timer_generation: u64,
    /// The run in progress.
    pub running: Option<Running>,
    /// What the state database knows of the job (last run, error, counters, deactivation),
    /// kept current as runs finish; its `status` and `next_run` are not used here.
    pub stored: JobState,
}

impl JobEntry {
    /// A job as the state database last knew it (or new, without `state`).
    pub fn new(
        spec: Arc<JobSpec>,
        display_name: String,
        grants: Arc<JobGrants>,
        state: Option<&JobState>,
    ) -> JobEntry {
        let deactivated = state.is_some_and(|s| s.deactivated);
        let spec_name = spec.name.clone();
        let status = if deactivated {
            Status::Deactivated
        } else if spec.active {
            Status::Waiting
        } else {
            Status::Disabled
        };
        JobEntry {
            spec,
            display_name,
            grants,
            status,
            due: None,
            timer_generation: 0,
            running: None,
            stored: state.cloned().unwrap_or_else(|| JobState {
                name: spec_name,
                ..JobState::default()
            }),
        }
    }

    /// The status shown to operators: `running` while a run is in progress (unless the job
    /// was cancelled and its run is being aborted).
    pub fn shown_status(&self) -> Status {
        match &self.running {
            Some(run) if !run.aborting => Status::Running,
            _ => self.status,
        }
    }

    /// Whether the scheduler should keep a timer for this job.
    pub fn is_scheduled(&self) -> bool {
        matches!(self.status, Status::Waiting | Status::Sleeping)
    }

    /// The row for dashboards and `list`; `wall_of` turns a due instant into wall time.
    pub fn view(&self, wall_of: impl Fn(Instant) -> DateTime<Utc>) -> JobView {
        let spec = &self.spec;
        JobView {
            name: spec.name.clone(),
            path: spec.path.clone(),
            interval_secs: spec.interval.as_secs_f64(),
            status: self.shown_status(),
            last_run: self.stored.last_run,
            last_result: self.stored.last_result,
            last_duration_ms: self.stored.last_duration_ms,
            last_error: self.stored.last_error.clone(),
            last_error_at: self.stored.last_error_at,
            runs: self.stored.runs,
            oks: self.stored.oks,
            errors: self.stored.errors,
            skips: self.stored.skips,
            next_run: if self.is_scheduled() {
                self.due.map(wall_of)
            } else {
                None
            },
            running_since: self.running.as_ref().map(|r| r.since),
            deactivated_reason: self.stored.deactivated_reason.clone(),
            deactivated_by: self.stored.deactivated_by.clone(),
            deactivated_at: self.stored.deactivated_at,
            timeout_secs: spec.timeout.as_secs_f64(),
            memory_bytes: spec.memory,
            run_once: spec.run_once,
            entry_yaml: spec.source.text.clone(),
        }
    }
}
