//! Fixture jobs, one or more in every status, on a fixed clock.

use std::path::PathBuf;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::control::{JobView, RunSummary, Snapshot};
use crate::job::{RunResult, Status};
use crate::tui::action::Action;
use crate::tui::app::{App, FlashKind};
use crate::tui::theme::Theme;

/// 2024-05-01 12:00:00 UTC: "now" in every test.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

fn ago(secs: i64) -> DateTime<Utc> {
    now() - Duration::seconds(secs)
}

fn later(secs: i64) -> DateTime<Utc> {
    now() + Duration::seconds(secs)
}

/// A job with the defaults of `jobs.yaml`; tests change what matters to them.
pub fn job(name: &str, status: Status, interval_secs: f64) -> JobView {
    JobView {
        name: name.to_string(),
        path: format!("{name}.lua"),
        schedule: crate::units::format_duration(std::time::Duration::from_secs_f64(interval_secs)),
        timezone: "UTC".to_string(),
        interval_secs: Some(interval_secs),
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
        catch_up: "latest".to_string(),
        timeout_secs: 30.0,
        memory_bytes: 64 << 20,
        run_once: false,
        entry_yaml: format!("- name: {name}\n  path: {name}.lua\n  interval: {interval_secs}s\n")
            .into(),
    }
}

/// The multi-line error of the deactivated fixture job.
pub const TRACEBACK: &str = "reports/nightly.lua:12: attempt to index a nil value (field 'rows')\n\
stack traceback:\n\
\t[string \"reports/nightly.lua\"]:12: in function 'run'\n\
\t[C]: in ?";

/// A job that has run: `(seconds ago, result, milliseconds, runs)` of its last run.
fn ran(
    name: &str,
    status: Status,
    interval_secs: f64,
    (secs_ago, result, ms, runs): (i64, RunResult, f64, u64),
) -> JobView {
    let mut job = job(name, status, interval_secs);
    job.last_run = Some(ago(secs_ago));
    job.last_result = Some(result);
    job.last_duration_ms = Some(ms);
    job.runs = runs;
    job.oks = if result == RunResult::Ok {
        runs
    } else {
        runs - 1
    };
    job
}

/// Nine jobs covering every status, in `jobs.yaml` order.
pub fn jobs() -> Vec<JobView> {
    let mut heartbeat = ran(
        "heartbeat",
        Status::Waiting,
        5.0,
        (3, RunResult::Ok, 12.0, 720),
    );
    heartbeat.next_run = Some(later(2));

    let mut prices = ran(
        "fetch-prices",
        Status::Running,
        60.0,
        (64, RunResult::Ok, 1_234.0, 58),
    );
    prices.running_since = Some(ago(4));
    prices.next_run = Some(later(56));

    let mut cleanup = ran(
        "cleanup-tmp",
        Status::Stopped,
        3_600.0,
        (7_300, RunResult::Exit, 40.0, 3),
    );
    cleanup.oks = 2;

    let mut digest = ran(
        "weekly-digest",
        Status::Sleeping,
        3_600.0,
        (600, RunResult::Sleep, 230.0, 12),
    );
    digest.next_run = Some(later(86_400 - 600));
    digest.schedule = "0 1 * * FRI".to_string();
    digest.timezone = "Europe/Berlin".to_string();
    digest.interval_secs = None;

    let mut warm = ran(
        "warm-cache",
        Status::Done,
        30.0,
        (45, RunResult::Ok, 310.0, 1),
    );
    warm.run_once = true;

    let mut nightly = ran(
        "nightly-report",
        Status::Deactivated,
        3_600.0,
        (190, RunResult::Error, 1_520.0, 42),
    );
    nightly.path = "reports/nightly.lua".to_string();
    nightly.timeout_secs = 10.0;
    nightly.memory_bytes = 16 << 20;
    nightly.errors = 2;
    nightly.skips = 1;
    nightly.oks = 40;
    nightly.last_error = Some(TRACEBACK.to_string());
    nightly.last_error_at = Some(ago(188));
    nightly.deactivated_at = Some(ago(188));
    nightly.deactivated_reason = Some(
        "error: reports/nightly.lua:12: attempt to index a nil value (field 'rows')".to_string(),
    );
    nightly.entry_yaml = "- name: nightly-report\n  path: reports/nightly.lua\n  interval: 1h\n  timeout: 10s\n  memory: 16MiB\n".into();

    let legacy = job("legacy-sync", Status::Disabled, 300.0);

    let mut ping = ran(
        "ping-upstream",
        Status::Waiting,
        30.0,
        (20, RunResult::Ok, 88.0, 300),
    );
    ping.next_run = Some(later(10));
    ping.last_error = Some("timed out after 10s".to_string());
    ping.last_error_at = Some(ago(3 * 86_400));
    ping.errors = 1;

    let mut invoices = ran(
        "send-invoices",
        Status::Deactivated,
        900.0,
        (1_000, RunResult::Aborted, 5_000.0, 9),
    );
    invoices.deactivated_at = Some(ago(990));
    invoices.deactivated_by = Some("alice".to_string());
    invoices.deactivated_reason = Some("cancelled by alice".to_string());

    vec![
        heartbeat, prices, cleanup, digest, warm, nightly, legacy, ping, invoices,
    ]
}

/// The recent runs of `nightly-report`, newest first: the failure, then successes.
pub fn history() -> Vec<RunSummary> {
    (0..8)
        .map(|i| {
            let started = ago(190 + 3_600 * i);
            let failed = i == 0;
            RunSummary {
                scheduled: started,
                started,
                duration_ms: if failed {
                    1_520.0
                } else {
                    400.0 + 90.0 * f64::from(u32::try_from(i).unwrap())
                },
                result: if failed {
                    RunResult::Error
                } else {
                    RunResult::Ok
                },
                error: failed.then(|| TRACEBACK.to_string()),
                trigger: if i == 3 { "operator" } else { "schedule" }.to_string(),
                reason: None,
                logs: if failed {
                    vec![
                        "fetching rows since 2024-04-30".to_string(),
                        "query returned no table".to_string(),
                    ]
                } else {
                    vec![format!("wrote report with {} rows", 100 + i)]
                },
            }
        })
        .collect()
}

/// The snapshot the fixtures make.
pub fn snapshot(jobs: Vec<JobView>) -> Snapshot {
    Snapshot {
        config_file: PathBuf::from("/srv/jobtop/jobs.yaml"),
        pid: 4242,
        started: ago(3_600),
        jobs,
        config_error: None,
    }
}

/// A dashboard on the fixtures, with colours, on a terminal of `columns` × `rows`.
pub fn app(columns: u16, rows: u16) -> App {
    App::new(
        snapshot(jobs()),
        None,
        Theme::new(true),
        (columns, rows),
        now(),
    )
}

/// The name of the selected job.
pub fn selected(app: &App) -> String {
    app.jobs()
        .selected()
        .map(|job| job.name.clone())
        .unwrap_or_default()
}

/// The names of the visible jobs, in display order.
pub fn visible(app: &App) -> Vec<String> {
    app.jobs().visible().map(|job| job.name.clone()).collect()
}

/// Moves the selection to the named job.
pub fn select(app: &mut App, name: &str) {
    app.update(Action::Top);
    while selected(app) != name {
        let before = app.jobs().selected_index();
        app.update(Action::MoveDown);
        assert_ne!(
            before,
            app.jobs().selected_index(),
            "{name} is not in the table"
        );
    }
}

/// The flash message's text and kind.
pub fn flash(app: &App) -> (String, FlashKind) {
    let flash = app.flash().expect("a flash message");
    (flash.text.clone(), flash.kind)
}
