//! Micro benchmarks (divan): one job run on a reused vs a fresh Luau state, the eight time
//! helpers, parsing a 10,000-job `jobs.yaml`, recording a batch of runs, and a dashboard frame
//! at 1k / 10k / 100k jobs.
//!
//! `cargo bench --bench micro` runs them all; `cargo bench --bench micro -- frame` only the
//! ones whose name contains `frame`. Figures and their meaning are in BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use divan::Bencher;
use jobtop::control::{JobEvent, JobView, Snapshot};
use jobtop::job::{RunResult, Status};
use jobtop::runtime::{JobGrants, JobRunner, LocalZone, RunControl, RunRequest, ScriptCache};
use jobtop::tui::action::Action;
use jobtop::tui::app::App;
use jobtop::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Constraint;
use ratatui::widgets::{Row, Table};

fn main() {
    divan::main();
}

/// The dashboard size every frame benchmark draws at.
const SIZE: (u16, u16) = (200, 50);

/// Job counts of the frame benchmarks.
const JOBS: [usize; 3] = [1_000, 10_000, 100_000];

const TRIVIAL_JOB: &str =
    "local job = core.job()\nfunction job.run()\n  return job.OK\nend\nreturn job\n";

const HELPERS_JOB: &str = "local job = core.job()
function job.run()
  local _ = job.minute(), job.hour(), job.day(), job.dayNum(), job.dayMonth(), job.weekNum(),
    job.month(), job.monthNum()
  return job.OK
end
return job
";

const HELPERS_LOCAL_JOB: &str = "local job = core.job()
function job.run()
  local _ = job.minute(true), job.hour(true), job.day(true), job.dayNum(true),
    job.dayMonth(true), job.weekNum(true), job.month(true), job.monthNum(true)
  return job.OK
end
return job
";

/// A directory with the job files and a generated 10,000-job `jobs.yaml`, kept for the process.
static FIXTURES: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::write(jobs.join("ok.lua"), TRIVIAL_JOB).unwrap();
    std::fs::write(jobs.join("helpers.lua"), HELPERS_JOB).unwrap();
    std::fs::write(jobs.join("helpers_local.lua"), HELPERS_LOCAL_JOB).unwrap();
    std::fs::write(dir.path().join("jobs.yaml"), jobs_yaml(10_000)).unwrap();
    dir
});

/// A `jobs.yaml` of `count` jobs, every one on `ok.lua` with its own interval, some with
/// their own limits, as an operator's large file would look.
fn jobs_yaml(count: usize) -> String {
    let mut yaml = String::from(
        "service:\n  jobs_dir: jobs\n  state_dir: .jobtop\n  defaults:\n    timeout: 10s\n    memory: 32MiB\n\njobs:\n",
    );
    for i in 0..count {
        let _ = write!(
            yaml,
            "  - name: job-{i:05}\n    path: ok.lua\n    interval: {}s\n",
            1 + i % 120
        );
        if i % 10 == 0 {
            yaml.push_str("    timeout: 5s\n    memory: 16MiB\n");
        }
    }
    yaml
}

fn request(file: &str, zone: LocalZone) -> RunRequest {
    RunRequest {
        file: FIXTURES.path().join("jobs").join(file),
        display_name: format!("jobs/{file}"),
        scheduled: Utc::now(),
        zone,
        timeout: Duration::from_secs(30),
        memory: 64 << 20,
        control: RunControl::new(),
        log_sink: None,
        grants: Arc::new(JobGrants::default()),
    }
}

fn run_with(bencher: Bencher, runner: JobRunner, request: &RunRequest) {
    let mut runner = runner;
    assert_eq!(runner.run(request).result, RunResult::Ok);
    bencher.bench_local(|| runner.run(request));
}

/// One run of a trivial job on the worker's reused Luau state (what the scheduler does).
#[divan::bench(min_time = 1)]
fn run_reused_state(bencher: Bencher) {
    let runner = JobRunner::new(Arc::new(ScriptCache::new()), vec![]);
    run_with(
        bencher,
        runner,
        &request("ok.lua", LocalZone::Named(chrono_tz::UTC)),
    );
}

/// One run of a trivial job on a Luau state built for that run alone.
#[divan::bench(min_time = 1)]
fn run_fresh_state(bencher: Bencher) {
    let runner = JobRunner::new(Arc::new(ScriptCache::new()), vec![]).fresh_state_per_run();
    run_with(
        bencher,
        runner,
        &request("ok.lua", LocalZone::Named(chrono_tz::UTC)),
    );
}

/// One run of a job that calls all eight time helpers in UTC (reused state).
#[divan::bench(min_time = 1)]
fn run_helpers_utc(bencher: Bencher) {
    let runner = JobRunner::new(Arc::new(ScriptCache::new()), vec![]);
    run_with(
        bencher,
        runner,
        &request("helpers.lua", LocalZone::Named(chrono_tz::UTC)),
    );
}

/// One run of a job that calls all eight time helpers in a named local zone (reused state).
#[divan::bench(min_time = 1)]
fn run_helpers_local(bencher: Bencher) {
    let runner = JobRunner::new(Arc::new(ScriptCache::new()), vec![]);
    run_with(
        bencher,
        runner,
        &request(
            "helpers_local.lua",
            LocalZone::Named(chrono_tz::Europe::Berlin),
        ),
    );
}

/// `config::parse` of a 10,000-job `jobs.yaml` (validation and path checks included).
#[divan::bench(sample_count = 20)]
fn config_parse_10k(bencher: Bencher) {
    let file = FIXTURES.path().join("jobs.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    bencher.bench(|| {
        let config = jobtop::config::parse(&file, &text).unwrap();
        assert_eq!(config.jobs.len(), 10_000);
        config
    });
}

/// `Store::record` of a batch of 1,000 trivial runs of 100 jobs (with their live updates), as
/// the history writer does it: one transaction, into a database that keeps growing.
#[divan::bench(sample_count = 50)]
fn record_batch_1k(bencher: Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = jobtop::store::Store::open(&dir.path().join("state.db")).unwrap();
    let at = now();
    let runs: Vec<jobtop::store::RunRecord> = (0..1_000)
        .map(|i| jobtop::store::RunRecord {
            job: format!("job-{:05}", i % 100),
            scheduled: at,
            started: at + chrono::Duration::microseconds(i),
            duration: Duration::from_micros(3),
            result: RunResult::Ok,
            error: None,
            logs: Vec::new(),
            trigger: jobtop::job::Trigger::Schedule,
            skip: None,
        })
        .collect();
    let live: Vec<jobtop::store::LiveUpdate> = (0..100)
        .map(|i| jobtop::store::LiveUpdate {
            job: format!("job-{i:05}"),
            status: Status::Waiting,
            next_run: Some(at),
            last_fired: Some(at),
            retry_attempt: 0,
            retry_at: None,
        })
        .collect();
    bencher.bench_local(|| store.record(&runs, &live).unwrap());
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 17, 12, 0, 0).unwrap()
}

/// A job row as a busy dashboard shows it: some have run, some failed, one runs.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_wrap)]
fn job_view(i: usize) -> JobView {
    let now = now();
    let failed = i.is_multiple_of(97);
    let interval = 1 + (i % 120) as u64;
    JobView {
        name: format!("job-{i:06}"),
        path: "ok.lua".into(),
        schedule: format!("{interval}s"),
        timezone: "UTC".into(),
        interval_secs: Some(interval as f64),
        status: if failed {
            Status::Deactivated
        } else if i % 50 == 1 {
            Status::Running
        } else {
            Status::Waiting
        },
        last_run: Some(now - chrono::Duration::seconds((i % 60) as i64)),
        last_result: Some(if failed {
            RunResult::Error
        } else {
            RunResult::Ok
        }),
        last_duration_ms: Some(0.05),
        last_error: failed.then(|| "jobs/ok.lua:7: upstream API answered 503".to_string()),
        last_error_at: failed.then_some(now),
        runs: i as u64 % 1000,
        oks: i as u64 % 1000,
        errors: u64::from(failed),
        skips: 0,
        next_run: Some(now + chrono::Duration::seconds((i % 30) as i64)),
        running_since: None,
        deactivated_reason: failed.then(|| "error: jobs/ok.lua:7: upstream".to_string()),
        deactivated_by: None,
        deactivated_at: failed.then_some(now),
        retries: 0,
        retry_attempt: 0,
        retry_at: None,
        catch_up: "latest".into(),
        timeout_secs: 10.0,
        memory_bytes: 32 << 20,
        run_once: false,
        entry_yaml: format!("name: job-{i:06}\npath: ok.lua\ninterval: {interval}s\n").into(),
    }
}

fn snapshot(jobs: usize) -> Snapshot {
    Snapshot {
        config_file: PathBuf::from("/srv/jobtop/jobs.yaml"),
        pid: 4242,
        started: now(),
        jobs: (0..jobs).map(job_view).collect(),
        config_error: None,
    }
}

fn app(jobs: usize) -> App {
    let mut app = App::new(snapshot(jobs), None, Theme::new(true), SIZE, now());
    app.refresh();
    app
}

fn terminal() -> Terminal<TestBackend> {
    Terminal::new(TestBackend::new(SIZE.0, SIZE.1)).unwrap()
}

fn draw(terminal: &mut Terminal<TestBackend>, app: &mut App) {
    app.refresh();
    terminal
        .draw(|frame| jobtop::tui::render::draw(frame, app))
        .unwrap();
}

/// A redraw with nothing changed in the table (the once-a-second clock tick).
#[divan::bench(args = JOBS)]
fn frame_tick(bencher: Bencher, jobs: usize) {
    let mut app = app(jobs);
    let mut terminal = terminal();
    let mut second = 0;
    bencher.bench_local(|| {
        second += 1;
        app.update(jobtop::tui::app::Message::Tick(
            now() + chrono::Duration::seconds(second),
        ));
        draw(&mut terminal, &mut app);
    });
}

/// A frame after a job event (a run finished): the event is applied, the display order
/// rebuilt (filter + sort of every job), and the screen drawn. The dashboard's frame under load.
#[divan::bench(args = JOBS)]
fn frame_after_event(bencher: Bencher, jobs: usize) {
    let mut app = app(jobs);
    let mut terminal = terminal();
    let mut row = job_view(jobs / 2);
    bencher.bench_local(|| {
        row.runs += 1;
        app.update(JobEvent::Job {
            job: Box::new(row.clone()),
        });
        draw(&mut terminal, &mut app);
    });
}

/// A key press (j / k alternately) to the updated screen, table otherwise unchanged.
#[divan::bench(args = JOBS)]
fn key_press(bencher: Bencher, jobs: usize) {
    let mut app = app(jobs);
    let mut terminal = terminal();
    let mut down = true;
    bencher.bench_local(|| {
        app.update(if down {
            Action::MoveDown
        } else {
            Action::MoveUp
        });
        down = !down;
        draw(&mut terminal, &mut app);
    });
}

/// The first frame: `App::new` on a snapshot (index, sort) and a draw on a new terminal.
#[divan::bench(args = JOBS, sample_count = 20)]
fn first_frame(bencher: Bencher, jobs: usize) {
    bencher
        .with_inputs(|| (snapshot(jobs), terminal()))
        .bench_local_values(|(snapshot, mut terminal)| {
            let mut app = App::new(snapshot, None, Theme::new(true), SIZE, now());
            draw(&mut terminal, &mut app);
            (app, terminal)
        });
}

/// Baseline: a plain ratatui `Table` of only the rows that fit (46 of them) with the same
/// columns as text, drawn on the same terminal: what ratatui alone costs for this screen.
#[divan::bench(args = JOBS)]
fn baseline_ratatui_visible_rows(bencher: Bencher, jobs: usize) {
    let snapshot = snapshot(jobs);
    let mut terminal = terminal();
    let rows = usize::from(SIZE.1) - 4;
    let mut offset = 0usize;
    bencher.bench_local(|| {
        offset = (offset + 1) % 2;
        let body = snapshot.jobs[offset..offset + rows].iter().map(|job| {
            Row::new([
                job.name.clone(),
                job.status.to_string(),
                job.schedule.clone(),
                job.runs.to_string(),
                job.last_error.clone().unwrap_or_default(),
            ])
        });
        let table = Table::new(
            body,
            [
                Constraint::Length(28),
                Constraint::Length(13),
                Constraint::Length(8),
                Constraint::Length(6),
                Constraint::Min(16),
            ],
        )
        .header(Row::new([
            "NAME",
            "STATUS",
            "INTERVAL",
            "RUNS",
            "LAST ERROR",
        ]));
        terminal
            .draw(|frame| frame.render_widget(table, frame.area()))
            .unwrap();
    });
}

/// One scrape's encoding of `/metrics` (docs/alerts.md#metrics), every job's families set
/// from a snapshot as the exporter keeps them.
#[divan::bench(args = JOBS, sample_count = 20)]
fn metrics_scrape(bencher: Bencher, jobs: usize) {
    let failures = jobtop::notify::Failures::default();
    let families = jobtop::metrics::Families::new(&failures, now());
    families.load(&snapshot(jobs));
    bencher.bench_local(|| divan::black_box(jobtop::metrics::encode(&families).len()));
}
