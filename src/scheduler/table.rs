//! The scheduler's own record of each job: its definition, where it stands, its next firing and
//! pending retry, its counters, and the run in progress. Only the scheduler task touches it
//! (through [`JobEntry::apply`](super::lifecycle)); others get [`JobView`]s.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::config::JobSpec;
use crate::control::JobView;
use crate::job::{Status, Trigger};
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
    /// Who asked for it.
    pub trigger: Trigger,
    /// Set when an operator cancelled the job: the row shows `deactivated`, not `running`.
    pub aborting: bool,
}

/// A job's next firing: the slot it stands for, and when its timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firing {
    /// The firing's time on the wall clock (an interval slot or a cron occurrence).
    pub slot: DateTime<Utc>,
    /// When it is due on the monotonic clock.
    pub due: Instant,
}

/// A retry of a failed run, waiting for its delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Which attempt it is, from 1.
    pub attempt: u32,
    /// When it is due on the monotonic clock.
    pub due: Instant,
    /// The same on the wall clock (what history and the dashboard show).
    pub at: DateTime<Utc>,
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
    /// Its next firing, while it is scheduled.
    pub next: Option<Firing>,
    /// The retry waiting for its delay, while `status` is `retrying`.
    pub retry: Option<Retry>,
    /// No firing at or before this one ever runs again (the latest firing handled; cleared by a
    /// wall-clock correction).
    pub fence: Option<DateTime<Utc>>,
    /// Bumped whenever the job's timer changes, so older timers are ignored.
    pub timer_generation: u64,
    /// The id the next run gets.
    pub next_run_id: u64,
    /// The run in progress.
    pub running: Option<Running>,
    /// What the state database knows of the job (last run, error, counters, deactivation, last
    /// firing, retry attempt), kept current as things happen.
    pub stored: JobState,
}

impl JobEntry {
    /// A job as the state database last knew it (or new, without `state`). It has no firing
    /// yet: `Event::Schedule` gives it one.
    pub fn new(
        spec: Arc<JobSpec>,
        display_name: String,
        grants: Arc<JobGrants>,
        state: Option<&JobState>,
    ) -> JobEntry {
        let stored = state.cloned().unwrap_or_else(|| JobState {
            name: spec.name.clone(),
            ..JobState::default()
        });
        let status = if stored.deactivated {
            Status::Deactivated
        } else if !spec.active {
            Status::Disabled
        } else if stored.retry_attempt > 0 && stored.retry_at.is_some() {
            Status::Retrying
        } else {
            Status::Waiting
        };
        JobEntry {
            spec,
            display_name,
            grants,
            status,
            next: None,
            retry: None,
            fence: stored.last_fired,
            timer_generation: 0,
            next_run_id: 0,
            running: None,
            stored,
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

    /// Whether the job's firings are scheduled.
    pub fn is_scheduled(&self) -> bool {
        matches!(
            self.status,
            Status::Waiting | Status::Sleeping | Status::Retrying
        )
    }

    /// When the job runs next: its pending retry or its next firing, whichever comes first.
    pub fn next_run(&self) -> Option<DateTime<Utc>> {
        let firing = self
            .next
            .filter(|_| self.is_scheduled())
            .map(|firing| firing.slot);
        let retry = self.retry.map(|retry| retry.at);
        match (firing, retry) {
            (Some(f), Some(r)) => Some(f.min(r)),
            (f, r) => f.or(r),
        }
    }

    /// The row for dashboards and `list`.
    pub fn view(&self) -> JobView {
        let spec = &self.spec;
        let schedule = &spec.schedule;
        JobView {
            name: spec.name.clone(),
            path: spec.path.clone(),
            schedule: schedule.text().to_string(),
            timezone: schedule.zone().name(),
            interval_secs: schedule.interval().map(|i| i.as_secs_f64()),
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
            next_run: self.next_run(),
            running_since: self.running.as_ref().map(|r| r.since),
            deactivated_reason: self.stored.deactivated_reason.clone(),
            deactivated_by: self.stored.deactivated_by.clone(),
            deactivated_at: self.stored.deactivated_at,
            retries: spec.retries,
            retry_attempt: self.stored.retry_attempt,
            retry_at: self.retry.map(|r| r.at),
            catch_up: spec.catch_up.to_string(),
            timeout_secs: spec.timeout.as_secs_f64(),
            memory_bytes: spec.memory,
            run_once: spec.run_once,
            entry_yaml: spec.source.text.clone(),
        }
    }
}
