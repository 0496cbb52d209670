//! Turning the scheduler's events into notifications: a run's end (`finished`) is held until
//! the job's new row arrives, which says what the failure led to (`retrying`, `deactivated`).
//! Pure: no I/O, so the rules are tested on plain events.

use std::collections::HashMap;

use crate::config::NotifyEvent;
use crate::control::{JobEvent, JobView, RunSummary, Snapshot};
use crate::job::{RunResult, Status};

use super::payload::{LOG_LINES, Payload};

/// What the watcher knows of one job.
#[derive(Debug, Default)]
struct Known {
    status: Option<Status>,
    /// Failed or deactivated since its last ok run: its next ok run is `recovered`.
    failing: bool,
    /// A run that ended, waiting for the row that follows it.
    pending: Option<RunSummary>,
}

/// Follows the jobs and says when something is worth a notification.
#[derive(Debug)]
pub struct Watcher {
    jobs: HashMap<String, Known>,
    host: String,
    config: String,
}

impl Watcher {
    /// A watcher that starts from `snapshot`.
    pub fn new(snapshot: &Snapshot, host: String) -> Watcher {
        let mut watcher = Watcher {
            jobs: HashMap::new(),
            host,
            config: snapshot.config_file.display().to_string(),
        };
        watcher.reset(snapshot);
        watcher
    }

    /// Starts again from `snapshot` (after falling behind the events).
    pub fn reset(&mut self, snapshot: &Snapshot) {
        self.config = snapshot.config_file.display().to_string();
        self.jobs = snapshot
            .jobs
            .iter()
            .map(|job| {
                let known = Known {
                    status: Some(job.status),
                    failing: job.status == Status::Deactivated
                        || job.last_result.is_some_and(RunResult::is_failure),
                    pending: None,
                };
                (job.name.clone(), known)
            })
            .collect();
    }

    /// The notifications `event` calls for.
    pub fn on_event(&mut self, event: &JobEvent) -> Vec<Payload> {
        match event {
            JobEvent::Finished { name, run } if run.result == RunResult::Skipped => {
                let status = self.jobs.get(name).and_then(|k| k.status);
                let mut payload = self.payload(NotifyEvent::Skipped, name, status);
                describe_run(&mut payload, run);
                payload.reason = run.reason.map(|r| r.as_str().to_string());
                vec![payload]
            }
            JobEvent::Finished { name, run } => {
                self.jobs.entry(name.clone()).or_default().pending = Some(run.clone());
                Vec::new()
            }
            JobEvent::Job { job } => self.on_row(job),
            JobEvent::Removed { name } => {
                self.jobs.remove(name);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn on_row(&mut self, row: &JobView) -> Vec<Payload> {
        let known = self.jobs.entry(row.name.clone()).or_default();
        let before = known.status.replace(row.status);
        let pending = known.pending.take();
        let mut out = Vec::new();
        if let Some(run) = pending {
            if run.result.is_failure() {
                known.failing = true;
                let mut payload = self.payload(NotifyEvent::Failed, &row.name, Some(row.status));
                describe_run(&mut payload, &run);
                let attempts = row.retries + 1;
                payload.attempts = Some(attempts);
                payload.attempt = Some(if row.status == Status::Retrying {
                    row.retry_attempt.max(1)
                } else if run.trigger == "retry" {
                    attempts
                } else {
                    1
                });
                out.push(payload);
            } else if run.result == RunResult::Ok && known.failing {
                known.failing = false;
                let mut payload = self.payload(NotifyEvent::Recovered, &row.name, Some(row.status));
                describe_run(&mut payload, &run);
                out.push(payload);
            }
        }
        let known = self.jobs.entry(row.name.clone()).or_default();
        if row.status == Status::Deactivated && before != Some(Status::Deactivated) {
            known.failing = true;
            let mut payload = self.payload(NotifyEvent::Deactivated, &row.name, Some(row.status));
            payload.error.clone_from(&row.deactivated_reason);
            payload.by.clone_from(&row.deactivated_by);
            payload.result = row.last_result;
            out.push(payload);
        }
        out
    }

    /// A payload with nothing about a run yet.
    pub fn payload(&self, event: NotifyEvent, job: &str, status: Option<Status>) -> Payload {
        Payload {
            event,
            job: job.to_string(),
            host: self.host.clone(),
            status,
            result: None,
            error: None,
            reason: None,
            scheduled: None,
            started: None,
            duration_ms: None,
            attempt: None,
            attempts: None,
            by: None,
            config: self.config.clone(),
            jobtop_version: env!("CARGO_PKG_VERSION"),
            suppressed: 0,
            logs: Vec::new(),
        }
    }
}

/// Copies what a notification says of `run`.
fn describe_run(payload: &mut Payload, run: &RunSummary) {
    payload.result = Some(run.result);
    payload.error.clone_from(&run.error);
    payload.scheduled = Some(run.scheduled);
    payload.started = Some(run.started);
    payload.duration_ms = Some(run.duration_ms);
    let from = run.logs.len().saturating_sub(LOG_LINES);
    payload.logs = run.logs[from..].to_vec();
}
