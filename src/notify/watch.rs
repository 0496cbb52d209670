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

impl Known {
    /// What a row says: its status, and whether its next ok run is a recovery.
    fn from_row(job: &JobView) -> Known {
        Known {
            status: Some(job.status),
            failing: job.status == Status::Deactivated
                || job.last_result.is_some_and(RunResult::is_failure),
            pending: None,
        }
    }
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

    /// A watcher that knows no job yet: it learns each from its first row.
    pub fn empty(host: String, config: &std::path::Path) -> Watcher {
        Watcher {
            jobs: HashMap::new(),
            host,
            config: config.display().to_string(),
        }
    }

    /// Starts again from `snapshot` (after falling behind the events).
    pub fn reset(&mut self, snapshot: &Snapshot) {
        self.config = snapshot.config_file.display().to_string();
        self.jobs = snapshot
            .jobs
            .iter()
            .map(|job| (job.name.clone(), Known::from_row(job)))
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
        // A job first seen (at the start, or added by a reload) is learnt, not news.
        let known = self
            .jobs
            .entry(row.name.clone())
            .or_insert_with(|| Known::from_row(row));
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

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::Watcher;
    use crate::config::NotifyEvent;
    use crate::control::{JobEvent, JobView, RunSummary, Snapshot};
    use crate::job::{RunResult, SkipReason, Status};

    fn row(name: &str, status: Status) -> JobView {
        JobView {
            name: name.into(),
            path: format!("{name}.lua"),
            schedule: "1m".into(),
            timezone: "UTC".into(),
            interval_secs: Some(60.0),
            status,
            last_run: None,
            last_result: None,
            last_duration_ms: None,
            last_error: None,
            last_error_at: None,
            runs: 0,
            oks: 0,
            errors: 0,
            skips: 0,
            next_run: None,
            running_since: None,
            deactivated_reason: None,
            deactivated_by: None,
            deactivated_at: None,
            retries: 0,
            retry_attempt: 0,
            retry_at: None,
            catch_up: "latest".into(),
            timeout_secs: 30.0,
            memory_bytes: 1 << 20,
            run_once: false,
            entry_yaml: "".into(),
        }
    }

    fn run(result: RunResult, trigger: &str) -> RunSummary {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 3, 0, 0).unwrap();
        RunSummary {
            scheduled: at,
            started: at,
            duration_ms: 5.0,
            result,
            error: result.is_failure().then(|| "boom".to_string()),
            trigger: trigger.into(),
            reason: None,
            logs: (0..30).map(|i| format!("line {i}")).collect(),
        }
    }

    fn watcher(jobs: Vec<JobView>) -> Watcher {
        let snapshot = Snapshot {
            config_file: "/srv/jobs.yaml".into(),
            pid: 1,
            started: Utc::now(),
            jobs,
            config_error: None,
        };
        Watcher::new(&snapshot, "db1".into())
    }

    fn finished(w: &mut Watcher, name: &str, run: RunSummary, after: JobView) -> Vec<NotifyEvent> {
        let mut events: Vec<NotifyEvent> = w
            .on_event(&JobEvent::Finished {
                name: name.into(),
                run,
            })
            .iter()
            .map(|p| p.event)
            .collect();
        events.extend(
            w.on_event(&JobEvent::Job {
                job: Box::new(after),
            })
            .iter()
            .map(|p| p.event),
        );
        events
    }

    #[test]
    fn a_failure_waits_for_the_row_that_says_what_it_led_to() {
        let mut w = watcher(vec![row("a", Status::Waiting)]);
        let sent = w.on_event(&JobEvent::Finished {
            name: "a".into(),
            run: run(RunResult::Error, "schedule"),
        });
        assert!(sent.is_empty());
        let mut after = row("a", Status::Retrying);
        after.retries = 2;
        after.retry_attempt = 1;
        let sent = w.on_event(&JobEvent::Job {
            job: Box::new(after),
        });
        assert_eq!(sent.len(), 1);
        let p = &sent[0];
        assert_eq!(p.event, NotifyEvent::Failed);
        assert_eq!(p.status, Some(Status::Retrying));
        assert_eq!((p.attempt, p.attempts), (Some(1), Some(3)));
        assert_eq!(p.host, "db1");
        assert_eq!(p.config, "/srv/jobs.yaml");
        assert_eq!(p.logs.len(), 20);
        assert_eq!(p.logs[19], "line 29");
        assert_eq!(p.subject(), "[jobtop db1] a failed (retrying)");
    }

    #[test]
    fn the_last_retry_failing_is_the_last_attempt_and_deactivates() {
        let mut w = watcher(vec![row("a", Status::Retrying)]);
        let mut after = row("a", Status::Deactivated);
        after.retries = 2;
        let sent: Vec<_> = {
            w.on_event(&JobEvent::Finished {
                name: "a".into(),
                run: run(RunResult::Timeout, "retry"),
            });
            w.on_event(&JobEvent::Job {
                job: Box::new(after),
            })
        };
        assert_eq!(sent[0].event, NotifyEvent::Failed);
        assert_eq!((sent[0].attempt, sent[0].attempts), (Some(3), Some(3)));
        assert_eq!(sent[1].event, NotifyEvent::Deactivated);
    }

    #[test]
    fn recovered_once_after_a_failure_or_a_deactivation() {
        let mut w = watcher(vec![row("a", Status::Waiting)]);
        let ok = || run(RunResult::Ok, "schedule");
        assert!(finished(&mut w, "a", ok(), row("a", Status::Waiting)).is_empty());
        let failed = finished(
            &mut w,
            "a",
            run(RunResult::Error, "schedule"),
            row("a", Status::Deactivated),
        );
        assert_eq!(failed, [NotifyEvent::Failed, NotifyEvent::Deactivated]);
        assert_eq!(
            finished(&mut w, "a", ok(), row("a", Status::Waiting)),
            [NotifyEvent::Recovered]
        );
        assert!(finished(&mut w, "a", ok(), row("a", Status::Waiting)).is_empty());

        // An operator's cancel, then activate: the first good run is a recovery too.
        let mut cancelled = row("a", Status::Deactivated);
        cancelled.deactivated_by = Some("alice".into());
        cancelled.deactivated_reason = Some("cancelled by alice".into());
        let sent = w.on_event(&JobEvent::Job {
            job: Box::new(cancelled),
        });
        assert_eq!(sent[0].event, NotifyEvent::Deactivated);
        assert_eq!(sent[0].by.as_deref(), Some("alice"));
        assert!(
            w.on_event(&JobEvent::Job {
                job: Box::new(row("a", Status::Waiting))
            })
            .is_empty()
        );
        assert_eq!(
            finished(&mut w, "a", ok(), row("a", Status::Waiting)),
            [NotifyEvent::Recovered]
        );
    }

    #[test]
    fn a_job_deactivated_at_start_recovers_on_its_first_good_run() {
        let mut w = watcher(vec![row("a", Status::Deactivated)]);
        assert!(
            w.on_event(&JobEvent::Job {
                job: Box::new(row("a", Status::Waiting))
            })
            .is_empty()
        );
        let sent = finished(
            &mut w,
            "a",
            run(RunResult::Ok, "operator"),
            row("a", Status::Waiting),
        );
        assert_eq!(sent, [NotifyEvent::Recovered]);
    }

    #[test]
    fn a_skip_is_told_at_once_with_its_reason() {
        let mut w = watcher(vec![row("a", Status::Running)]);
        let mut skip = run(RunResult::Skipped, "schedule");
        skip.reason = Some(SkipReason::Overlap);
        let sent = w.on_event(&JobEvent::Finished {
            name: "a".into(),
            run: skip,
        });
        assert_eq!(sent[0].event, NotifyEvent::Skipped);
        assert_eq!(sent[0].reason.as_deref(), Some("overlap"));
        assert_eq!(sent[0].status, Some(Status::Running));
    }
}
