//! The scheduler on tokio's paused clock, for tests that drive time: real job files, a real
//! state database, real worker threads (blocking tasks, which keep tokio from jumping the
//! clock while a run is going), virtual time moved by `tokio::time::advance`, and a manual wall
//! clock that a test can step as NTP would.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use jobtop::config;
use jobtop::control::{Client, JobEvent, JobView, ReloadSummary, RunSummary, Verb};
use jobtop::job::RunResult;
use jobtop::scheduler::{self, SchedulerOptions, WallClock, database_path};
use jobtop::store::Store;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// A job file that logs `hi` and returns `job.OK`.
pub const OK_JOB: &str =
    "local job = core.job() function job.run() core.log('hi') return job.OK end return job";

/// The wall clock's start in most tests: 2024-01-01T00:00:00Z.
pub fn wall_base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A scheduler under test.
pub struct Harness {
    /// Its directory: `jobs.yaml`, `jobs/`, `.jobtop/`.
    pub dir: tempfile::TempDir,
    /// Its client.
    pub client: Client,
    /// Every event since the start.
    pub events: broadcast::Receiver<JobEvent>,
    task: tokio::task::JoinHandle<()>,
    /// Added to the wall clock, in milliseconds: a test moves it to simulate an NTP step.
    pub wall_offset_ms: Arc<AtomicI64>,
    /// The wall clock's reading at the start, and the virtual clock's.
    wall_start: DateTime<Utc>,
    base_instant: Instant,
}

pub async fn start(yaml: &str, jobs: &[(&str, &str)]) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), yaml, jobs);
    start_in(dir).await
}

pub fn write_config(dir: &std::path::Path, yaml: &str, jobs: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("jobs")).unwrap();
    for (name, source) in jobs {
        std::fs::write(dir.join("jobs").join(name), source).unwrap();
    }
    std::fs::write(dir.join("jobs.yaml"), yaml).unwrap();
}

pub async fn start_in(dir: tempfile::TempDir) -> Harness {
    start_at(dir, wall_base()).await
}

pub async fn start_at(dir: tempfile::TempDir, wall_start: DateTime<Utc>) -> Harness {
    let config = config::load(&dir.path().join("jobs.yaml")).unwrap();
    let store = Store::open(&database_path(&config.service.state_dir)).unwrap();
    let offset = Arc::new(AtomicI64::new(0));
    let base_instant = Instant::now();
    let wall_offset = offset.clone();
    let wall = WallClock::Manual(Arc::new(move || {
        wall_start
            + chrono::Duration::from_std(base_instant.elapsed()).unwrap()
            + chrono::Duration::milliseconds(wall_offset.load(Ordering::SeqCst))
    }));
    let handle = scheduler::start(
        config,
        store,
        SchedulerOptions {
            grace: Duration::from_secs(2),
            wall,
            notify_tests: None,
            early_events: 0,
        },
    )
    .unwrap();
    let subscription = handle.client.subscribe().await.unwrap();
    Harness {
        dir,
        client: handle.client,
        events: subscription.events,
        task: handle.task,
        wall_offset_ms: offset,
        wall_start,
        base_instant,
    }
}

/// The `k`-th slot (from 0) of job `name` every `interval` after `after`: slots are
/// `anchor + n × interval` after the epoch, the anchor a hash of the name.
pub fn slot(name: &str, interval: Duration, after: DateTime<Utc>, k: u32) -> DateTime<Utc> {
    let schedule =
        jobtop::schedule::Schedule::every(name, interval, jobtop::schedule::Zone::System);
    let first = schedule.next_after(after).unwrap();
    first + chrono::Duration::from_std(interval * k).unwrap()
}

impl Harness {
    /// The scheduler's wall clock now.
    pub fn wall_now(&self) -> DateTime<Utc> {
        self.wall_start
            + chrono::Duration::from_std(self.base_instant.elapsed()).unwrap()
            + chrono::Duration::milliseconds(self.wall_offset_ms.load(Ordering::SeqCst))
    }

    /// Moves the virtual clock until the wall clock reads `t` (`less` short of it), and lets
    /// the scheduler handle what came due.
    pub async fn advance_to(&self, t: DateTime<Utc>, less: Duration) {
        let ahead = (t - self.wall_now()).to_std().unwrap_or_default();
        step(ahead.saturating_sub(less)).await;
    }

    /// Waits (in real time, at most 10 s) for the next finished run.
    pub async fn finished(&mut self) -> (String, RunSummary) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.events.try_recv() {
                // Skips are told as `finished` too (for the notifier); they are no run.
                Ok(JobEvent::Finished { name, run }) if run.result != RunResult::Skipped => {
                    return (name, run);
                }
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Empty) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "no run finished within 10 s"
                    );
                    std::thread::sleep(Duration::from_micros(200));
                    tokio::task::yield_now().await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Lets the scheduler handle everything pending, and checks no run finished meanwhile.
    pub async fn assert_no_run(&mut self) {
        for _ in 0..20 {
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(1));
        }
        loop {
            match self.events.try_recv() {
                Ok(JobEvent::Finished { name, run }) if run.result != RunResult::Skipped => {
                    panic!("unexpected run of {name}: {run:?}")
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }

    pub async fn jobs(&self) -> Vec<JobView> {
        self.client.snapshot().await.unwrap().jobs
    }

    pub async fn job(&self, name: &str) -> JobView {
        self.jobs()
            .await
            .into_iter()
            .find(|j| j.name == name)
            .unwrap()
    }

    pub async fn reload(&self) -> Result<ReloadSummary, String> {
        let client = self.client.clone();
        // The configuration is read on a blocking thread: wait in real time.
        in_real_time(
            async move { client.reload().await },
            "reload did not answer",
        )
        .await
        .map_err(|e| e.0)
    }

    pub async fn act(&self, verb: Verb, job: &str, by: Option<&str>) -> Result<String, String> {
        let client = self.client.clone().acting_as(by.map(str::to_string));
        let job = job.to_string();
        in_real_time(async move { client.act(verb, &job).await }, "no answer")
            .await
            .map_err(|e| e.0)
    }

    pub async fn shutdown(self) -> tempfile::TempDir {
        let client = self.client.clone();
        in_real_time(
            async move { client.shutdown().await },
            "shutdown did not finish",
        )
        .await;
        self.task.await.unwrap();
        self.dir
    }
}

/// Awaits `call` while waiting in real time (at most 10 s), so that tokio's paused clock does
/// not jump ahead while a blocking thread works on the answer.
pub async fn in_real_time<T: Send + 'static>(
    call: impl Future<Output = T> + Send + 'static,
    what: &str,
) -> T {
    let task = tokio::spawn(call);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !task.is_finished() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(1));
        tokio::task::yield_now().await;
    }
    task.await.unwrap()
}

/// Moves the virtual clock and lets the scheduler handle what came due.
pub async fn step(by: Duration) {
    tokio::time::advance(by).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}
