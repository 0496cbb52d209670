//! Load: many jobs, attached dashboards (real `jobtop attach` in tmux, plus socket subscribers
//! that read every event), reloads in a row and operator actions, all at once on one real
//! `jobtop serve`. Afterwards: no due run was missed (every job's stored runs are for
//! consecutive slots of its interval, and as many as the time it ran allows), every run is both
//! counted and stored, every acknowledged action is in the database, no subscriber was
//! dropped, memory did not grow without bound, and the service stops cleanly.
//!
//! The normal suite runs a short version; the full one (10,000 jobs, 10 dashboards, 100
//! reloads over 60 s) is ignored:
//! `cargo test --release --test load_faults -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// The clients run on threads of their own, which take what they use; counts are far below
// i64::MAX.
#![allow(
    clippy::needless_pass_by_value,
    clippy::cast_possible_wrap,
    clippy::similar_names
)]

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::faults::{
    Conn, Rng, db_path, deactivated_flags, integrity, open_db, rss_kib, serve_ready, stop,
};
use common::process::{BIN, Cli, OK_JOB, Sandbox, text};
use serde_json::json;

/// Jobs the operator client cancels and activates (they only return `job.OK`).
const ACTED: usize = 20;

struct Load {
    jobs: usize,
    /// Intervals are `interval_ms + 500 ms * (i % interval_steps)`.
    interval_ms: u64,
    interval_steps: u64,
    subscribers: usize,
    terminals: usize,
    reloads: usize,
    run_for: Duration,
}

/// What the subscribers saw.
#[derive(Default, Debug)]
struct SubscriberFigures {
    events: usize,
    finished: usize,
    dropped: bool,
    error: Option<String>,
}

fn interval_of(load: &Load, i: usize) -> Duration {
    Duration::from_millis(load.interval_ms + 500 * (i as u64 % load.interval_steps))
}

fn yaml(load: &Load, extra: Option<usize>) -> String {
    let mut yaml = String::with_capacity(load.jobs * 64);
    yaml.push_str("service:\n  workers: 2\njobs:\n");
    for i in 0..load.jobs {
        writeln!(
            yaml,
            "  - name: j{i}\n    path: ok.lua\n    interval: {}ms",
            interval_of(load, i).as_millis()
        )
        .unwrap();
    }
    for i in 0..ACTED {
        writeln!(yaml, "  - name: act{i}\n    path: ok.lua\n    interval: 1s").unwrap();
    }
    if let Some(k) = extra {
        writeln!(
            yaml,
            "  - name: extra{k}\n    path: ok.lua\n    interval: 1s"
        )
        .unwrap();
    }
    yaml
}

/// A tmux server running `jobtop attach` in a 120×40 terminal; killed when dropped.
struct Dashboard {
    socket: String,
}

impl Dashboard {
    fn start(sandbox: &Sandbox, n: usize) -> Option<Dashboard> {
        let found = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            eprintln!("note: tmux is not installed: the load test uses socket subscribers only");
            return None;
        }
        let socket = format!("jobtop-load-{}-{n}", std::process::id());
        let line = format!(
            "cd '{}' && env -u JOBTOP_LOG '{BIN}' attach --config '{}'; echo EXITED:$?; sleep 600",
            sandbox.path().display(),
            sandbox.config().display()
        );
        let dashboard = Dashboard { socket };
        let out = dashboard.tmux(&[
            "new-session",
            "-d",
            "-s",
            "load",
            "-x",
            "120",
            "-y",
            "40",
            &line,
        ]);
        assert!(out.status.success(), "tmux: {}", text(&out.stderr));
        Some(dashboard)
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-f", "/dev/null", "-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        text(&self.tmux(&["capture-pane", "-p", "-t", "load"]).stdout)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn subscriber(socket: std::path::PathBuf, stop: Arc<AtomicBool>) -> SubscriberFigures {
    let mut figures = SubscriberFigures::default();
    let mut conn = match Conn::open(&socket) {
        Ok(c) => c,
        Err(e) => {
            figures.error = Some(e);
            return figures;
        }
    };
    if let Err(e) = conn.call(&json!({"op": "subscribe"})) {
        figures.error = Some(e);
        return figures;
    }
    while !stop.load(Ordering::SeqCst) {
        match conn.next_value(Duration::from_millis(200)) {
            Ok(Some(event)) => {
                figures.events += 1;
                if event["event"] == "finished" {
                    figures.finished += 1;
                }
            }
            Ok(None) => {}
            Err(e) => {
                figures.dropped = true;
                figures.error = Some(e);
                break;
            }
        }
    }
    figures
}

/// Cancels and activates the `act` jobs over the socket until told to stop; returns the last
/// acknowledged action of each job (true: cancel) and how many were acknowledged.
fn operator(
    socket: std::path::PathBuf,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> (HashMap<String, bool>, usize, Vec<String>) {
    let mut rng = Rng::new(seed);
    let mut last = HashMap::new();
    let mut acked = 0;
    let mut failures = Vec::new();
    let mut conn = Conn::open(&socket).unwrap();
    while !stop.load(Ordering::SeqCst) {
        let job = format!("act{}", rng.below(ACTED as u64));
        let cancel = rng.below(2) == 0;
        let op = if cancel { "cancel" } else { "activate" };
        match conn.call(&json!({"op": op, "job": job})) {
            Ok(_) => {
                acked += 1;
                last.insert(job, cancel);
            }
            Err(e) => failures.push(format!("{op} {job}: {e}")),
        }
        sleep(Duration::from_millis(20));
    }
    (last, acked, failures)
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .with_timezone(&Utc)
}

#[allow(clippy::too_many_lines)]
fn run_load(load: &Load) {
    let began = Instant::now();
    let sandbox = Sandbox::with_cli(
        Cli::new(Duration::from_secs(120)),
        &yaml(load, None),
        &[("ok.lua", OK_JOB)],
    );
    let spawned_at = Utc::now();
    let mut serve = serve_ready(&sandbox, Duration::from_secs(120));
    let ready_at = Utc::now();
    let pid = serve.pid();
    let startup = began.elapsed();

    let stop_flag = Arc::new(AtomicBool::new(false));
    let subscribers: Vec<_> = (0..load.subscribers)
        .map(|_| {
            let (socket, stop) = (sandbox.socket(), stop_flag.clone());
            thread::spawn(move || subscriber(socket, stop))
        })
        .collect();
    let dashboards: Vec<Dashboard> = (0..load.terminals)
        .filter_map(|n| Dashboard::start(&sandbox, n))
        .collect();
    let operator = {
        let (socket, stop) = (sandbox.socket(), stop_flag.clone());
        let seed = Rng::from_env("load_faults").next_u64();
        thread::spawn(move || operator(socket, stop, seed))
    };
    sleep(Duration::from_secs(1));
    let rss_start = rss_kib(pid);
    let mut rss_max = rss_start;

    // Reloads, evenly spread over the run: each adds one extra job and drops the previous one.
    let reloaded = Arc::new(AtomicUsize::new(0));
    let mut reload_failures = Vec::new();
    let mut control = Conn::open(&sandbox.socket()).unwrap();
    let measured = Instant::now();
    let every = load.run_for / u32::try_from(load.reloads).unwrap();
    for k in 0..load.reloads {
        let due = measured + every * u32::try_from(k + 1).unwrap();
        sleep(due.saturating_duration_since(Instant::now()));
        sandbox.write_config(&yaml(load, Some(k)));
        match control.call(&json!({"op": "reload"})) {
            Ok(summary) => {
                let added = summary["added"].to_string();
                if !added.contains(&format!("extra{k}")) {
                    reload_failures.push(format!("reload {k}: extra{k} not added: {summary}"));
                }
                reloaded.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => reload_failures.push(format!("reload {k}: {e}")),
        }
        rss_max = rss_max.max(rss_kib(pid));
    }
    let ran_for = measured.elapsed();
    let rss_end = rss_kib(pid);
    let ping = control.call(&json!({"op": "ping"}));
    assert_eq!(ping, Ok(json!("pong")), "the service stopped answering");
    let listed = control.call(&json!({"op": "list"})).unwrap();
    assert_eq!(
        listed.as_array().unwrap().len(),
        load.jobs + ACTED + 1,
        "every job is listed"
    );
    drop(control);
    let screens: Vec<String> = dashboards.iter().map(Dashboard::screen).collect();

    stop_flag.store(true, Ordering::SeqCst);
    let (acted, acked, operator_failures) = operator.join().unwrap();
    let subscribers: Vec<SubscriberFigures> =
        subscribers.into_iter().map(|s| s.join().unwrap()).collect();
    let stop_at = Utc::now();
    stop(&mut serve, Duration::from_secs(60));
    drop(dashboards);

    // The database: sound, every run counted and stored, no slot missed.
    let conn = open_db(&db_path(&sandbox));
    assert_eq!(integrity(&conn), "ok");
    let counters: HashMap<String, i64> = conn
        .prepare("SELECT name, runs FROM jobs")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut slots: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut stmt = conn
        .prepare(
            "SELECT job, scheduled, result FROM runs WHERE job LIKE 'j%' ORDER BY job, scheduled",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    let mut stored = 0usize;
    for row in rows {
        let (job, scheduled, result) = row.unwrap();
        slots.entry(job).or_default().push((scheduled, result));
        stored += 1;
    }
    drop(stmt);
    let mut problems = Vec::new();
    for i in 0..load.jobs {
        let name = format!("j{i}");
        let interval = chrono::Duration::from_std(interval_of(load, i)).unwrap();
        let runs = slots.remove(&name).unwrap_or_default();
        if counters.get(&name).copied().unwrap_or(0) != runs.len() as i64 {
            problems.push(format!(
                "{name}: counter {:?} but {} runs stored",
                counters.get(&name),
                runs.len()
            ));
        }
        // As many runs as the time allows: one per interval from the start, to the stop.
        let least = (stop_at - ready_at).num_milliseconds() / interval.num_milliseconds() - 1;
        if (runs.len() as i64) < least {
            problems.push(format!(
                "{name}: {} runs, expected at least {least}",
                runs.len()
            ));
        }
        if let Some((first, _)) = runs.first() {
            let first = parse_time(first);
            // Its first slot after the start: within one interval of it.
            let earliest = spawned_at - chrono::Duration::milliseconds(100);
            let latest = ready_at + interval + chrono::Duration::milliseconds(500);
            if first < earliest || first > latest {
                problems.push(format!(
                    "{name}: first run for {first}, expected its first slot, within one interval after the start (between {earliest} and {latest})"
                ));
            }
        }
        for pair in runs.windows(2) {
            let gap = parse_time(&pair[1].0) - parse_time(&pair[0].0);
            if (gap - interval).num_milliseconds().abs() > 100 {
                problems.push(format!(
                    "{name}: runs for {} then {}: a gap of {gap}, not one interval ({interval})",
                    pair[0].0, pair[1].0
                ));
            }
        }
        for (scheduled, result) in &runs {
            if result != "ok" {
                problems.push(format!("{name}: run for {scheduled} ended {result}"));
            }
        }
    }
    let flags = deactivated_flags(&conn);
    for (job, cancelled) in &acted {
        if flags.get(job) != Some(cancelled) {
            problems.push(format!(
                "{job}: the last acknowledged action was {}, the database says deactivated = {:?}",
                if *cancelled { "cancel" } else { "activate" },
                flags.get(job)
            ));
        }
    }
    drop(conn);
    let dropped = subscribers
        .iter()
        .filter(|s| s.dropped || s.error.is_some())
        .count();
    let events: usize = subscribers.iter().map(|s| s.events).sum();
    let finished: Vec<usize> = subscribers.iter().map(|s| s.finished).collect();
    eprintln!(
        "load_faults: {} jobs (+{ACTED} acted on), startup {:.1} s, ran {:.1} s, {} reloads ok, \
         {} runs stored, {} acknowledged actions ({} failed), {} subscribers ({} dropped), {} events, \
         finished events per subscriber {:?}, {} dashboards in tmux, RSS start {} KiB, max {} KiB, end {} KiB, \
         {} problems, total {:.1} s",
        load.jobs,
        startup.as_secs_f64(),
        ran_for.as_secs_f64(),
        reloaded.load(Ordering::SeqCst),
        stored,
        acked,
        operator_failures.len(),
        subscribers.len(),
        dropped,
        events,
        finished,
        screens.len(),
        rss_start,
        rss_max,
        rss_end,
        problems.len(),
        began.elapsed().as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "{} problems: {:#?}",
        problems.len(),
        &problems[..problems.len().min(30)]
    );
    assert!(reload_failures.is_empty(), "{reload_failures:#?}");
    assert!(operator_failures.is_empty(), "{operator_failures:#?}");
    assert!(acked > 0);
    for (n, s) in subscribers.iter().enumerate() {
        assert!(!s.dropped && s.error.is_none(), "subscriber {n}: {s:?}");
        assert!(s.finished > 0, "subscriber {n} saw no run finish: {s:?}");
    }
    for screen in &screens {
        assert!(
            screen.contains(&format!("attached to pid {pid}")),
            "a dashboard is not attached at the end: {screen}"
        );
    }
    assert!(
        rss_end < 2 * rss_start + 16 * 1024,
        "memory grew from {rss_start} KiB to {rss_end} KiB"
    );
}

#[test]
fn a_thousand_jobs_with_subscribers_and_reloads_lose_nothing() {
    run_load(&Load {
        jobs: 1000,
        interval_ms: 1000,
        interval_steps: 3,
        subscribers: 3,
        terminals: 1,
        reloads: 10,
        run_for: Duration::from_secs(5),
    });
}

#[test]
#[ignore = "long: 10,000 jobs, 10 dashboards, 100 reloads over 60 s; run in release"]
fn ten_thousand_jobs_ten_dashboards_a_hundred_reloads_lose_nothing() {
    run_load(&Load {
        jobs: 10_000,
        interval_ms: 5000,
        interval_steps: 11,
        subscribers: 8,
        terminals: 2,
        reloads: 100,
        run_for: Duration::from_secs(60),
    });
}
