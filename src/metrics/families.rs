//! The metrics jobtop exports (docs/alerts.md#metrics), registered once under their exact
//! names, and how each scheduler event moves them. Only reads events: the scheduler never
//! waits on it.

use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::control::{JobEvent, JobView, Snapshot};
use crate::job::{RunResult, SkipReason, Status};
use crate::notify::Failures;

/// `{job}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    /// The job's name.
    pub job: String,
}

/// `{job, result}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// The job's name.
    pub job: String,
    /// How the run ended.
    pub result: &'static str,
}

/// `{job, reason}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The job's name.
    pub job: String,
    /// Why the firing was skipped.
    pub reason: &'static str,
}

/// `{job, status}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The job's name.
    pub job: String,
    /// One status.
    pub status: &'static str,
}

/// `{version}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    /// jobtop's version.
    pub version: &'static str,
}

type Seconds = Gauge<f64, AtomicU64>;

/// Upper bounds of the lateness histogram's buckets, in seconds.
const LATENESS_BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Every metric, and the registry that encodes them.
pub struct Families {
    /// What `/metrics` encodes.
    pub registry: Registry,
    runs: Family<ResultLabels, Counter>,
    skips: Family<ReasonLabels, Counter>,
    last_run: Family<JobLabel, Seconds>,
    last_success: Family<JobLabel, Seconds>,
    last_failure: Family<JobLabel, Seconds>,
    last_duration: Family<JobLabel, Seconds>,
    next_run: Family<JobLabel, Seconds>,
    status: Family<StatusLabels, Gauge>,
    running: Family<JobLabel, Gauge>,
    lateness: Histogram,
    reload_success: Gauge,
    reload_time: Seconds,
}

fn seconds(t: DateTime<Utc>) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let ms = t.timestamp_millis() as f64;
    ms / 1e3
}

impl Families {
    /// Registers every metric; `started` is the service's start.
    pub fn new(failures: &Failures, started: DateTime<Utc>) -> Families {
        let mut registry = Registry::default();
        let f = Families {
            registry: Registry::default(),
            runs: Family::default(),
            skips: Family::default(),
            last_run: Family::default(),
            last_success: Family::default(),
            last_failure: Family::default(),
            last_duration: Family::default(),
            next_run: Family::default(),
            status: Family::default(),
            running: Family::default(),
            lateness: Histogram::new(LATENESS_BUCKETS),
            reload_success: Gauge::default(),
            reload_time: Seconds::default(),
        };
        let start_time = Seconds::default();
        start_time.set(seconds(started));
        f.reload_success.set(1);
        f.reload_time.set(seconds(started));
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        // prometheus-client adds `_total` to counters' names.
        registry.register("jobtop_job_runs", "Runs by job and result", f.runs.clone());
        registry.register(
            "jobtop_job_skips",
            "Firings not run, by job and reason",
            f.skips.clone(),
        );
        registry.register(
            "jobtop_job_last_run_timestamp_seconds",
            "Start of the job's last run",
            f.last_run.clone(),
        );
        registry.register(
            "jobtop_job_last_success_timestamp_seconds",
            "End of the job's last ok run (0 until one)",
            f.last_success.clone(),
        );
        registry.register(
            "jobtop_job_last_failure_timestamp_seconds",
            "End of the job's last failed run",
            f.last_failure.clone(),
        );
        registry.register(
            "jobtop_job_last_duration_seconds",
            "Duration of the job's last run",
            f.last_duration.clone(),
        );
        registry.register(
            "jobtop_job_next_run_timestamp_seconds",
            "When the job's next run is due (absent while not scheduled)",
            f.next_run.clone(),
        );
        registry.register(
            "jobtop_job_status",
            "1 for the job's current status, 0 for the others",
            f.status.clone(),
        );
        registry.register(
            "jobtop_job_running",
            "1 while a run of the job is going",
            f.running.clone(),
        );
        registry.register(
            "jobtop_run_lateness_seconds",
            "How late runs started after their due time",
            f.lateness.clone(),
        );
        registry.register(
            "jobtop_notify_failures",
            "Notifications that could not be delivered, by channel",
            failures.clone(),
        );
        registry.register(
            "jobtop_config_last_reload_success",
            "1 if the last reload of jobs.yaml was applied, 0 if it was refused",
            f.reload_success.clone(),
        );
        registry.register(
            "jobtop_config_last_reload_timestamp_seconds",
            "When jobs.yaml was last loaded or a reload refused",
            f.reload_time.clone(),
        );
        registry.register(
            "jobtop_start_time_seconds",
            "When the service started",
            start_time,
        );
        registry.register(
            "jobtop_build_info",
            "jobtop's version, as a label",
            build_info,
        );
        Families { registry, ..f }
    }

    /// Sets every job's gauges from `snapshot` (at the start, and after falling behind).
    pub fn load(&self, snapshot: &Snapshot) {
        for job in &snapshot.jobs {
            let label = JobLabel {
                job: job.name.clone(),
            };
            self.row(job);
            let success = self.last_success.get_or_create(&label);
            if job.last_result == Some(RunResult::Ok)
                && let Some(end) = end_of_last_run(job)
                && success.get() < end
            {
                success.set(end);
            }
            drop(success);
            if job.last_result.is_some_and(RunResult::is_failure)
                && let Some(end) = end_of_last_run(job)
            {
                self.last_failure.get_or_create(&label).set(end);
            }
        }
    }

    /// Moves the metrics `event` concerns.
    pub fn on_event(&self, event: &JobEvent) {
        match event {
            JobEvent::Job { job } => self.row(job),
            JobEvent::Finished { name, run } => {
                if let Some(reason) = run.reason.filter(|_| run.result == RunResult::Skipped) {
                    self.skips
                        .get_or_create(&ReasonLabels {
                            job: name.clone(),
                            reason: reason.as_str(),
                        })
                        .inc();
                    return;
                }
                self.runs
                    .get_or_create(&ResultLabels {
                        job: name.clone(),
                        result: run.result.as_str(),
                    })
                    .inc();
                let late = (run.started - run.scheduled)
                    .num_microseconds()
                    .unwrap_or(0);
                #[allow(clippy::cast_precision_loss)]
                self.lateness.observe(late.max(0) as f64 / 1e6);
                let end = seconds(run.started) + run.duration_ms / 1e3;
                let label = JobLabel { job: name.clone() };
                if run.result == RunResult::Ok {
                    self.last_success.get_or_create(&label).set(end);
                } else if run.result.is_failure() {
                    self.last_failure.get_or_create(&label).set(end);
                }
            }
            JobEvent::Removed { name } => self.forget(name),
            JobEvent::Reloaded { .. } => {
                self.reload_success.set(1);
                self.reload_time.set(seconds(Utc::now()));
            }
            JobEvent::ReloadFailed { .. } => {
                self.reload_success.set(0);
                self.reload_time.set(seconds(Utc::now()));
            }
            JobEvent::Log { .. } | JobEvent::Notice { .. } | JobEvent::Snapshot { .. } => {}
        }
    }

    /// The gauges a job's row sets.
    fn row(&self, job: &JobView) {
        let label = JobLabel {
            job: job.name.clone(),
        };
        for status in Status::ALL {
            let value = i64::from(status == job.status);
            self.status
                .get_or_create(&StatusLabels {
                    job: job.name.clone(),
                    status: status.as_str(),
                })
                .set(value);
        }
        self.running
            .get_or_create(&label)
            .set(i64::from(job.running_since.is_some()));
        // The series exists from the start: 0 until a success.
        drop(self.last_success.get_or_create(&label));
        if let Some(last) = job.last_run {
            self.last_run.get_or_create(&label).set(seconds(last));
        }
        if let Some(ms) = job.last_duration_ms {
            self.last_duration.get_or_create(&label).set(ms / 1e3);
        }
        match job.next_run {
            Some(next) => {
                self.next_run.get_or_create(&label).set(seconds(next));
            }
            None => {
                self.next_run.remove(&label);
            }
        }
    }

    /// Drops every series of a job that left the configuration.
    fn forget(&self, name: &str) {
        let label = JobLabel {
            job: name.to_string(),
        };
        for family in [
            &self.last_run,
            &self.last_success,
            &self.last_failure,
            &self.last_duration,
            &self.next_run,
        ] {
            family.remove(&label);
        }
        self.running.remove(&label);
        for status in Status::ALL {
            self.status.remove(&StatusLabels {
                job: name.to_string(),
                status: status.as_str(),
            });
        }
        for result in RunResult::ALL {
            self.runs.remove(&ResultLabels {
                job: name.to_string(),
                result: result.as_str(),
            });
        }
        for reason in SkipReason::ALL {
            self.skips.remove(&ReasonLabels {
                job: name.to_string(),
                reason: reason.as_str(),
            });
        }
    }
}

fn end_of_last_run(job: &JobView) -> Option<f64> {
    Some(seconds(job.last_run?) + job.last_duration_ms.unwrap_or(0.0) / 1e3)
}
