//! The metrics jobtop exports (docs/alerts.md#metrics) under their exact names, and how each
//! scheduler event moves them.
//!
//! The service-wide ones (lateness, notification failures, reload, start, build) are
//! prometheus-client metrics in its registry. The per-job ones are rows of one table here,
//! written by [`Families::encode_jobs`] straight into the text format: prometheus-client's
//! `Family` costs a hash map entry, a lock and an `Arc` per series, and encoding its 140,000
//! series for 10,000 jobs took 55 ms, beyond the 50 ms a scrape may take; one table of plain
//! rows encodes in a fraction of that. Only reads events: the scheduler never waits on it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::control::{JobEvent, JobView, Snapshot};
use crate::job::{RunResult, SkipReason, Status};
use crate::notify::Failures;

/// `{version}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    /// jobtop's version.
    pub version: &'static str,
}

type Seconds = Gauge<f64, AtomicU64>;

/// A per-job gauge: its name, help, and value (absent for `None`).
type GaugeOfRow = (&'static str, &'static str, fn(&JobRow) -> Option<f64>);

/// Upper bounds of the lateness histogram's buckets, in seconds.
const LATENESS_BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// What the metrics say of one job.
#[derive(Debug, Clone, Default)]
struct JobRow {
    /// Runs by result, in [`RunResult::ALL`] order.
    runs: [u64; RunResult::ALL.len()],
    /// Skips by reason, in [`SkipReason::ALL`] order.
    skips: [u64; SkipReason::ALL.len()],
    last_run: Option<f64>,
    /// 0 until a success.
    last_success: f64,
    last_failure: Option<f64>,
    last_duration: Option<f64>,
    next_run: Option<f64>,
    status: Option<Status>,
    running: bool,
}

/// Every metric.
pub struct Families {
    /// The service-wide metrics.
    pub registry: Registry,
    /// Per job, by name (the text lists jobs in name order).
    jobs: Mutex<BTreeMap<String, JobRow>>,
    lateness: Histogram,
    reload_success: Gauge,
    reload_time: Seconds,
}

fn seconds(t: DateTime<Utc>) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let ms = t.timestamp_millis() as f64;
    ms / 1e3
}

fn index_of<T: PartialEq>(all: &[T], value: &T) -> usize {
    all.iter().position(|v| v == value).unwrap_or(0)
}

impl Families {
    /// Registers every service-wide metric; `started` is the service's start.
    pub fn new(failures: &Failures, started: DateTime<Utc>) -> Families {
        let mut registry = Registry::default();
        let lateness = Histogram::new(LATENESS_BUCKETS);
        let reload_success = Gauge::default();
        let reload_time = Seconds::default();
        let start_time = Seconds::default();
        start_time.set(seconds(started));
        reload_success.set(1);
        reload_time.set(seconds(started));
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "jobtop_run_lateness_seconds",
            "How late runs started after their due time",
            lateness.clone(),
        );
        // prometheus-client adds `_total` to counters' names.
        registry.register(
            "jobtop_notify_failures",
            "Notifications that could not be delivered, by channel",
            failures.clone(),
        );
        registry.register(
            "jobtop_config_last_reload_success",
            "1 if the last reload of jobs.yaml was applied, 0 if it was refused",
            reload_success.clone(),
        );
        registry.register(
            "jobtop_config_last_reload_timestamp_seconds",
            "When jobs.yaml was last loaded or a reload refused",
            reload_time.clone(),
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
        Families {
            registry,
            jobs: Mutex::new(BTreeMap::new()),
            lateness,
            reload_success,
            reload_time,
        }
    }

    fn with_jobs<T>(&self, f: impl FnOnce(&mut BTreeMap<String, JobRow>) -> T) -> T {
        // A panic while holding it would be a bug here; the table is still usable after one.
        let mut jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut jobs)
    }

    /// Sets every job's gauges from `snapshot` (at the start, and after falling behind).
    pub fn load(&self, snapshot: &Snapshot) {
        self.with_jobs(|jobs| {
            for job in &snapshot.jobs {
                let row = jobs.entry(job.name.clone()).or_default();
                set_from_view(row, job);
                let end = job
                    .last_run
                    .map(|t| seconds(t) + job.last_duration_ms.unwrap_or(0.0) / 1e3);
                match (job.last_result, end) {
                    (Some(RunResult::Ok), Some(end)) if row.last_success < end => {
                        row.last_success = end;
                    }
                    (Some(result), Some(end)) if result.is_failure() => {
                        row.last_failure = Some(end);
                    }
                    _ => {}
                }
            }
        });
    }

    /// Moves the metrics `event` concerns.
    pub fn on_event(&self, event: &JobEvent) {
        match event {
            JobEvent::Job { job } => {
                self.with_jobs(|jobs| {
                    set_from_view(jobs.entry(job.name.clone()).or_default(), job);
                });
            }
            JobEvent::Finished { name, run } => {
                if run.result != RunResult::Skipped {
                    let late = (run.started - run.scheduled)
                        .num_microseconds()
                        .unwrap_or(0);
                    #[allow(clippy::cast_precision_loss)]
                    self.lateness.observe(late.max(0) as f64 / 1e6);
                }
                self.with_jobs(|jobs| {
                    let row = jobs.entry(name.clone()).or_default();
                    if run.result == RunResult::Skipped {
                        if let Some(reason) = run.reason {
                            row.skips[index_of(&SkipReason::ALL, &reason)] += 1;
                        }
                        return;
                    }
                    row.runs[index_of(&RunResult::ALL, &run.result)] += 1;
                    let end = seconds(run.started) + run.duration_ms / 1e3;
                    if run.result == RunResult::Ok {
                        row.last_success = end;
                    } else if run.result.is_failure() {
                        row.last_failure = Some(end);
                    }
                });
            }
            JobEvent::Removed { name } => {
                self.with_jobs(|jobs| jobs.remove(name));
            }
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

    /// The per-job metrics in Prometheus' text format. The table is copied under its lock
    /// (about a millisecond for 10,000 jobs) and written without it, so events never wait for
    /// a scrape. Job names need no escaping in label values: they are `[A-Za-z0-9_.-]+`.
    pub fn encode_jobs(&self, out: &mut String) {
        let jobs = self.with_jobs(|jobs| jobs.clone());
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        };
        family(
            out,
            "jobtop_job_runs_total",
            "counter",
            "Runs by job and result",
        );
        for (job, row) in &jobs {
            for (result, n) in RunResult::ALL.iter().zip(row.runs) {
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "jobtop_job_runs_total{{job=\"{job}\",result=\"{}\"}} {n}",
                        result.as_str()
                    );
                }
            }
        }
        family(
            out,
            "jobtop_job_skips_total",
            "counter",
            "Firings not run, by job and reason",
        );
        for (job, row) in &jobs {
            for (reason, n) in SkipReason::ALL.iter().zip(row.skips) {
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "jobtop_job_skips_total{{job=\"{job}\",reason=\"{}\"}} {n}",
                        reason.as_str()
                    );
                }
            }
        }
        let gauges: [GaugeOfRow; 6] = [
            (
                "jobtop_job_last_run_timestamp_seconds",
                "Start of the job's last run",
                |r| r.last_run,
            ),
            (
                "jobtop_job_last_success_timestamp_seconds",
                "End of the job's last ok run (0 until one)",
                |r| Some(r.last_success),
            ),
            (
                "jobtop_job_last_failure_timestamp_seconds",
                "End of the job's last failed run",
                |r| r.last_failure,
            ),
            (
                "jobtop_job_last_duration_seconds",
                "Duration of the job's last run",
                |r| r.last_duration,
            ),
            (
                "jobtop_job_next_run_timestamp_seconds",
                "When the job's next run is due (absent while not scheduled)",
                |r| r.next_run,
            ),
            (
                "jobtop_job_running",
                "1 while a run of the job is going",
                |r| Some(if r.running { 1.0 } else { 0.0 }),
            ),
        ];
        for (name, help, value) in gauges {
            family(out, name, "gauge", help);
            for (job, row) in &jobs {
                if let Some(v) = value(row) {
                    let _ = writeln!(out, "{name}{{job=\"{job}\"}} {v}");
                }
            }
        }
        family(
            out,
            "jobtop_job_status",
            "gauge",
            "1 for the job's current status, 0 for the others",
        );
        for (job, row) in &jobs {
            let Some(current) = row.status else { continue };
            for status in Status::ALL {
                let _ = writeln!(
                    out,
                    "jobtop_job_status{{job=\"{job}\",status=\"{}\"}} {}",
                    status.as_str(),
                    u8::from(status == current)
                );
            }
        }
    }
}

/// The gauges a job's row sets.
fn set_from_view(row: &mut JobRow, job: &JobView) {
    row.status = Some(job.status);
    row.running = job.running_since.is_some();
    if let Some(last) = job.last_run {
        row.last_run = Some(seconds(last));
    }
    if let Some(ms) = job.last_duration_ms {
        row.last_duration = Some(ms / 1e3);
    }
    row.next_run = job.next_run.map(seconds);
}
