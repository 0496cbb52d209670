//! Scenarios on the real scheduler, in this process: generated jobs, a real state database in a
//! temporary directory, the real worker pool. Each prints its figures and hands them to the
//! parent with `measure::result`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jobtop::control::{JobEvent, Snapshot, Subscription};
use jobtop::scheduler::{self, SchedulerHandle, SchedulerOptions, database_path};
use jobtop::store::Store;
use jobtop::tui::app::{App, Message};
use jobtop::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::{broadcast, oneshot};

use crate::measure::{self, JobGroup, Percentiles, ok_jobs, result};

/// How long each step of a start took.
pub struct Startup {
    /// `config::load`.
    pub load: Duration,
    /// `Store::open`.
    pub open: Duration,
    /// `scheduler::start`.
    pub start: Duration,
    /// The first snapshot (`Command::Subscribe` answered).
    pub snapshot: Duration,
}

/// What a scenario started: the scheduler alone, or the whole service (scheduler, socket,
/// notifier, metrics) as `jobtop serve` starts it.
pub enum Started {
    /// `scheduler::start`.
    Scheduler(SchedulerHandle),
    /// `commands::serve::start_with_socket`, with its control socket's path.
    Service(jobtop::commands::serve::Running, PathBuf),
}

impl Started {
    fn client(&self) -> &jobtop::control::Client {
        match self {
            Started::Scheduler(handle) => &handle.client,
            Started::Service(running, _) => &running.client,
        }
    }
}

/// Loads `file`, opens its state database, starts the scheduler and subscribes.
pub async fn start(file: &Path) -> (SchedulerHandle, Subscription, Startup) {
    let (started, subscription, startup) = start_as(file, false).await;
    let Started::Scheduler(handle) = started else {
        unreachable!("asked for the scheduler alone")
    };
    (handle, subscription, startup)
}

/// [`start`], or with `service` the whole service.
async fn start_as(file: &Path, service: bool) -> (Started, Subscription, Startup) {
    let clock = Instant::now();
    let config = jobtop::config::load(file).expect("a valid generated jobs.yaml");
    let load = clock.elapsed();
    let store = Store::open(&database_path(&config.service.state_dir)).expect("open state.db");
    let open = clock.elapsed();
    let handle = if service {
        let socket = jobtop::socket::path(&config.service.state_dir);
        let running = jobtop::commands::serve::start_with_socket(config, store)
            .await
            .expect("start the service");
        Started::Service(running, socket)
    } else {
        Started::Scheduler(
            scheduler::start(config, store, SchedulerOptions::default()).expect("start"),
        )
    };
    let start = clock.elapsed();
    let subscription = handle.client().subscribe().await.expect("subscription");
    let snapshot = clock.elapsed();
    (
        handle,
        subscription,
        Startup {
            load,
            open,
            start,
            snapshot,
        },
    )
}

async fn subscribe(handle: &SchedulerHandle) -> Subscription {
    handle.client.subscribe().await.expect("subscription")
}

async fn shutdown(handle: SchedulerHandle) {
    handle.client.shutdown().await;
    let _ = handle.task.await;
}

async fn stop_started(started: Started) {
    match started {
        Started::Scheduler(handle) => shutdown(handle).await,
        Started::Service(running, socket) => {
            jobtop::commands::serve::shutdown(running, &socket).await;
        }
    }
}

/// One scheduled run seen in a `Finished` event.
struct Run {
    name: String,
    scheduled: DateTime<Utc>,
    lateness_ms: f64,
}

/// What the event collector saw.
#[derive(Default)]
struct Collected {
    runs: Vec<Run>,
    lagged: u64,
}

/// Collects scheduled runs of jobs whose name starts with `prefix` until `stop` fires.
fn collect(
    mut events: broadcast::Receiver<JobEvent>,
    prefix: &'static str,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<Collected>) {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut collected = Collected::default();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                event = events.recv() => match event {
                    Ok(JobEvent::Finished { name, run }) => {
                        // Skips come as `finished` too; only runs have a start.
                        if run.trigger == "schedule"
                            && run.result != jobtop::job::RunResult::Skipped
                            && name.starts_with(prefix)
                        {
                            let late = run.started - run.scheduled;
                            #[allow(clippy::cast_precision_loss)]
                            let lateness_ms = late.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e3;
                            collected.runs.push(Run { name, scheduled: run.scheduled, lateness_ms });
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => collected.lagged += n,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        collected
    });
    (stop, task)
}

fn lateness_of(runs: &[&Run], from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<f64> {
    runs.iter()
        .filter(|r| r.scheduled >= from && r.scheduled < to)
        .map(|r| r.lateness_ms)
        .collect()
}

/// The three seconds of the window whose latest start was the latest: where a tail comes from.
fn report_worst_seconds(runs: &[&Run], from: DateTime<Utc>, to: DateTime<Utc>) {
    let mut worst: std::collections::BTreeMap<i64, (f64, usize)> =
        std::collections::BTreeMap::new();
    for run in runs
        .iter()
        .filter(|r| r.scheduled >= from && r.scheduled < to)
    {
        let second = (run.scheduled - from).num_seconds();
        let entry = worst.entry(second).or_insert((0.0, 0));
        entry.0 = entry.0.max(run.lateness_ms);
        entry.1 += 1;
    }
    let mut seconds: Vec<(i64, (f64, usize))> = worst.into_iter().collect();
    seconds.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    let shown: Vec<String> = seconds
        .iter()
        .take(3)
        .map(|(s, (max, n))| format!("second {s}: max {max:.1} ms over {n} runs"))
        .collect();
    println!("  latest seconds of the window: {}", shown.join("; "));
}

/// Skips so far of the jobs whose name starts with `prefix`.
fn skips_of(snapshot: &Snapshot, prefix: &str) -> u64 {
    snapshot
        .jobs
        .iter()
        .filter(|j| j.name.starts_with(prefix))
        .map(|j| j.skips)
        .sum()
}

fn total_runs(snapshot: &Snapshot) -> (u64, u64) {
    snapshot
        .jobs
        .iter()
        .fold((0, 0), |(runs, skips), j| (runs + j.runs, skips + j.skips))
}

fn report_startup(startup: &Startup, key: &str) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  start to first snapshot: {:.1} ms (config::load {:.1} ms, Store::open {:.1} ms, scheduler::start {:.1} ms)",
        ms(startup.snapshot),
        ms(startup.load),
        ms(startup.open - startup.load),
        ms(startup.start - startup.open),
    );
    result(&format!("{key}_snapshot_ms"), ms(startup.snapshot));
    result(&format!("{key}_load_ms"), ms(startup.load));
}

fn report_cpu(used: measure::Usage, wall: Duration, runs: u64, key: &str) {
    let cpu = used.cpu;
    #[allow(clippy::cast_precision_loss)]
    let waits_per_run = if runs == 0 {
        0.0
    } else {
        used.waits as f64 / runs as f64
    };
    let percent = cpu.as_secs_f64() / wall.as_secs_f64() * 100.0;
    #[allow(clippy::cast_precision_loss)]
    let per_run_us = if runs == 0 {
        0.0
    } else {
        cpu.as_secs_f64() * 1e6 / runs as f64
    };
    #[allow(clippy::cast_precision_loss)]
    let runs_per_sec = runs as f64 / wall.as_secs_f64();
    println!(
        "{runs} runs in {:.1} s = {runs_per_sec:.0} runs/s; CPU {:.2} s = {percent:.2} % of one core, {per_run_us:.2} us per run",
        wall.as_secs_f64(),
        cpu.as_secs_f64()
    );
    result(&format!("{key}_runs_per_s"), runs_per_sec);
    result(&format!("{key}_cpu_percent"), percent);
    result(&format!("{key}_cpu_per_run_us"), per_run_us);
    println!("  thread wake-ups (voluntary context switches): {waits_per_run:.2} per run");
    result(&format!("{key}_wakeups_per_run"), waits_per_run);
}

fn report_memory(rss_before: f64, key: &str) {
    let (rss, peak) = (measure::rss_mib(), measure::peak_rss_mib());
    println!(
        "  resident memory {rss:.1} MiB now, {peak:.1} MiB peak ({rss_before:.1} MiB before the scheduler started)"
    );
    result(&format!("{key}_rss_mib"), rss);
    result(&format!("{key}_peak_rss_mib"), peak);
    result(&format!("{key}_rss_before_mib"), rss_before);
}

fn temp_config(groups: &[JobGroup<'_>]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = measure::write_config(dir.path(), groups);
    (dir, file)
}

/// `jobs` trivial jobs every `interval` (or on a cron expression) for `secs`: start lateness
/// of every run, runs/s, CPU and memory. `loopers` jobs that loop until their 1 s timeout are
/// added when asked.
pub async fn lateness(key: &str, jobs: usize, interval: &str, secs: u64, loopers: usize) {
    let mut groups = vec![ok_jobs("job", jobs, interval)];
    // Added after the trivial jobs, so each of their due times comes just after theirs.
    if loopers > 0 {
        groups.push(JobGroup {
            prefix: "loop",
            count: loopers,
            file: "loop.lua",
            interval: "1s",
            timeout: Some("1s"),
        });
    }
    println!(
        "{key}: {jobs} trivial jobs every {interval}{} for {secs} s, history recorded",
        if loopers > 0 {
            format!(", with {loopers} jobs looping until their 1 s timeout")
        } else {
            String::new()
        }
    );
    measure_groups(key, &groups, &[("job-", key)], secs, None).await;
}

/// [`lateness`] with alerts and metrics on, as `jobtop serve` runs them: `/metrics` on a
/// loopback port, scraped every second (each scrape timed), the textfile every 15 s, and a
/// webhook channel for every event to a local sink.
pub async fn alerts(key: &str, jobs: usize, interval: &str, secs: u64) {
    let groups = [ok_jobs("job", jobs, interval)];
    println!(
        "{key}: {jobs} trivial jobs every {interval} for {secs} s, history recorded, with          /metrics scraped every second, the textfile and a webhook channel"
    );
    measure_groups(
        key,
        &groups,
        &[("job-", key)],
        secs,
        Some(crate::scrape::Alerts::start()),
    )
    .await;
}

/// Issue 12's mix: `each` calendar jobs on `*/10 * * * * *` beside `each` interval jobs every
/// 10 s, with the lateness of each kind apart (compare with `interval-20k`, the same run rate
/// of interval jobs alone).
pub async fn calendar_mix(key: &str, each: usize, secs: u64) {
    let groups = [
        ok_jobs("job", each, "10s"),
        ok_jobs("cal", each, "*/10 * * * * *"),
    ];
    println!(
        "{key}: {each} calendar jobs (*/10 * * * * *) and {each} interval jobs (10 s) for {secs} s"
    );
    let interval_key = format!("{key}_interval");
    let calendar_key = format!("{key}_calendar");
    measure_groups(
        key,
        &groups,
        &[
            ("job-", interval_key.as_str()),
            ("cal-", calendar_key.as_str()),
        ],
        secs,
        None,
    )
    .await;
}

/// Runs `groups` for `secs` and reports the lateness of the jobs of each `(prefix, key)`, and
/// the CPU, memory and start-up of the whole under `key`.
async fn measure_groups(
    key: &str,
    groups: &[JobGroup<'_>],
    kinds: &[(&'static str, &str)],
    secs: u64,
    alerts: Option<crate::scrape::Alerts>,
) {
    let (_dir, file) = temp_config(groups);
    if let Some(alerts) = &alerts {
        alerts.add_to(&file);
    }
    let rss_before = measure::rss_mib();
    let (handle, subscription, startup) = start_as(&file, alerts.is_some()).await;
    let scraper = alerts
        .as_ref()
        .map(crate::scrape::Alerts::scrape_every_second);
    let (stop, collector) = collect(subscription.events, "");
    let subscription_snapshot = subscription.snapshot;
    let (runs_before, _) = total_runs(&subscription_snapshot);
    let (from, cpu0, clock) = (Utc::now(), measure::usage(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (to, cpu, wall) = (Utc::now(), measure::usage() - cpu0, clock.elapsed());
    if let Some(scraper) = scraper {
        scraper.report(key);
    }
    // Runs due in the last second may not have started yet: leave them out.
    let to = to - chrono::Duration::seconds(1);
    let final_snapshot = handle
        .client()
        .subscribe()
        .await
        .expect("subscription")
        .snapshot;
    let _ = stop.send(());
    let collected = collector.await.expect("collector");
    let (runs_after, skips) = total_runs(&final_snapshot);
    for (prefix, kind_key) in kinds {
        let runs: Vec<&Run> = collected
            .runs
            .iter()
            .filter(|r| r.name.starts_with(prefix))
            .collect();
        let mut late = lateness_of(&runs, from, to);
        // A due time skipped because the job's previous run had not even started is a run that
        // never started: it counts as infinitely late.
        let never = skips_of(&final_snapshot, prefix) - skips_of(&subscription_snapshot, prefix);
        if never > 0 {
            println!(
                "  {never} due runs of {prefix}* never started (their previous run was still queued): counted as infinitely late"
            );
            late.extend(std::iter::repeat_n(
                f64::INFINITY,
                usize::try_from(never).unwrap_or(0),
            ));
        }
        #[allow(clippy::cast_precision_loss)]
        result(&format!("{kind_key}_never_started"), never as f64);
        Percentiles::of(&mut late).report(&format!("start lateness of {prefix}*"), kind_key);
        report_worst_seconds(&runs, from, to);
    }
    if collected.lagged > 0 {
        println!(
            "  (the collector lagged and missed {} events)",
            collected.lagged
        );
    }
    print!("  ");
    report_cpu(cpu, wall, runs_after - runs_before, key);
    println!("  skipped due times (previous run still going): {skips}");
    #[allow(clippy::cast_precision_loss)]
    result(&format!("{key}_skips"), skips as f64);
    report_memory(rss_before, key);
    report_startup(&startup, key);
    stop_started(handle).await;
}

/// Sustained throughput: `jobs` trivial jobs every `interval`, more than the workers can do,
/// for `secs`; no subscriber. Two rates: runs started per second during the window (what the
/// scheduler and workers sustain), and runs *recorded* per second, from the start to the end
/// of the shutdown that writes the last queued run to the history; CPU per run is over the
/// same span, so it includes writing the history.
pub async fn throughput(key: &str, jobs: usize, interval: &str, secs: u64) {
    let (_dir, file) = temp_config(&[ok_jobs("job", jobs, interval)]);
    println!(
        "{key}: {jobs} trivial jobs every {interval} (more than the workers can run), {secs} s, history recorded"
    );
    let (cpu_start, start_clock) = (measure::usage(), Instant::now());
    let (handle, subscription, _) = start(&file).await;
    drop(subscription.events);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (runs0, _) = total_runs(&subscribe(&handle).await.snapshot);
    let clock = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (runs1, _) = total_runs(&subscribe(&handle).await.snapshot);
    let window = clock.elapsed();
    let (rss, peak_before_flush) = (measure::rss_mib(), measure::peak_rss_mib());
    let flush_clock = Instant::now();
    shutdown(handle).await;
    let flush = flush_clock.elapsed();
    let (cpu, wall) = (measure::usage() - cpu_start, start_clock.elapsed());
    #[allow(clippy::cast_precision_loss)]
    let started_per_sec = (runs1 - runs0) as f64 / window.as_secs_f64();
    println!(
        "  runs started: {} in {:.1} s = {started_per_sec:.0} runs/s",
        runs1 - runs0,
        window.as_secs_f64()
    );
    println!(
        "  the shutdown then wrote the queued history in {:.0} ms (resident memory before it: {rss:.1} MiB, peak {peak_before_flush:.1} MiB)",
        flush.as_secs_f64() * 1e3
    );
    result(&format!("{key}_started_per_s"), started_per_sec);
    result(&format!("{key}_flush_ms"), flush.as_secs_f64() * 1e3);
    result(&format!("{key}_rss_mib"), rss);
    print!("  recorded, start to last run written: ");
    report_cpu(cpu, wall, runs1, key);
}

/// CPU while idle with the dashboard open: `jobs` jobs every 60 s for `secs`, and a
/// dashboard in this process (the real `App` and `render::draw` on a test terminal, redrawn
/// on events at most 4 times a second and on every clock second, as `tui::run` does).
pub async fn idle(key: &str, jobs: usize, secs: u64) {
    let (_dir, file) = temp_config(&[ok_jobs("job", jobs, "60s")]);
    println!(
        "{key}: {jobs} jobs every 60 s for {secs} s, dashboard (App + draw, 200x50) in-process"
    );
    let (handle, subscription, _) = start(&file).await;
    let (stop, mut stopped) = oneshot::channel::<()>();
    let dashboard = tokio::spawn(async move {
        let mut events = subscription.events;
        let mut app = App::new(
            subscription.snapshot,
            None,
            Theme::new(true),
            (200, 50),
            Utc::now(),
        );
        let mut terminal = Terminal::new(TestBackend::new(200, 50)).expect("terminal");
        let mut frames = 0u64;
        let mut dirty = true;
        let mut last_draw = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            if dirty && last_draw.elapsed() >= Duration::from_millis(250) {
                app.refresh();
                terminal
                    .draw(|frame| jobtop::tui::render::draw(frame, &app))
                    .expect("draw");
                frames += 1;
                (dirty, last_draw) = (false, tokio::time::Instant::now());
            }
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {
                    app.update(Message::Tick(Utc::now()));
                    dirty = true;
                    last_draw = tokio::time::Instant::now() - Duration::from_secs(1);
                }
                event = events.recv() => {
                    if let Ok(event) = event {
                        app.update(event);
                        dirty = true;
                    }
                }
                () = tokio::time::sleep_until(last_draw + Duration::from_millis(250)), if dirty => {}
            }
        }
        frames
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (runs0, _) = total_runs(&subscribe(&handle).await.snapshot);
    let (cpu0, clock) = (measure::usage(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (cpu, wall) = (measure::usage() - cpu0, clock.elapsed());
    let (runs1, _) = total_runs(&subscribe(&handle).await.snapshot);
    let _ = stop.send(());
    let frames = dashboard.await.expect("dashboard");
    print!("  {frames} frames drawn; ");
    report_cpu(cpu, wall, runs1 - runs0, key);
    shutdown(handle).await;
}

/// Reload of a `jobs`-job `jobs.yaml` while they run every `interval`: the time from
/// `Command::Reload` to its reply, and whether any due run was missed around it.
pub async fn reload(key: &str, jobs: usize, interval: &str, secs_each_side: u64) {
    let (dir, file) = temp_config(&[ok_jobs("job", jobs, interval)]);
    let period = jobtop::units::parse_duration(interval).expect("interval");
    println!(
        "{key}: {jobs} jobs every {interval}; reload (one job added) after {secs_each_side} s, then {secs_each_side} s more"
    );
    let (handle, subscription, _) = start(&file).await;
    let (stop, collector) = collect(subscription.events, "job-");
    let from = Utc::now();
    tokio::time::sleep(Duration::from_secs(secs_each_side)).await;
    std::fs::write(
        &file,
        measure::jobs_yaml(&[
            ok_jobs("job", jobs, interval),
            ok_jobs("added", 1, interval),
        ]),
    )
    .expect("rewrite jobs.yaml");
    let (asked, clock) = (Utc::now(), Instant::now());
    let summary = handle.client.reload().await.expect("reload accepted");
    let took = clock.elapsed();
    let answered = Utc::now();
    tokio::time::sleep(Duration::from_secs(secs_each_side)).await;
    let to = Utc::now();
    let (_, skips) = total_runs(&subscribe(&handle).await.snapshot);
    let _ = stop.send(());
    let collected = collector.await.expect("collector");
    println!(
        "  reload answered in {:.1} ms: {} added, {} unchanged",
        took.as_secs_f64() * 1e3,
        summary.added.len(),
        summary.unchanged
    );
    result(&format!("{key}_ms"), took.as_secs_f64() * 1e3);
    let around = chrono::Duration::from_std(period).expect("interval");
    let mut near = lateness_of(
        &collected.runs.iter().collect::<Vec<_>>(),
        asked - around,
        answered + around,
    );
    let near = Percentiles::of(&mut near);
    shutdown(handle).await;
    // A missed run shows as a gap of more than one interval between the due times a job's
    // history holds (read after the shutdown wrote everything, so it does not depend on the
    // event stream keeping up).
    let store =
        Store::open_read_only(&dir.path().join(".jobtop").join("state.db")).expect("open state.db");
    let slack = chrono::Duration::from_std(period.mul_f64(1.5)).expect("interval");
    let (mut missed, mut recorded) = (0usize, 0usize);
    for i in 0..jobs {
        let mut times: Vec<DateTime<Utc>> = store
            .history(&format!("job-{i:05}"), 1000)
            .expect("history")
            .into_iter()
            .map(|run| run.scheduled)
            .filter(|at| *at >= from && *at < to)
            .collect();
        times.sort();
        recorded += times.len();
        missed += times.windows(2).filter(|w| w[1] - w[0] > slack).count();
    }
    println!(
        "  {recorded} runs recorded between start and end; missed due runs (a gap over 1.5 intervals in a job's history): {missed}; skips: {skips}"
    );
    if collected.lagged > 0 {
        println!(
            "  (the lateness collector lagged by {} events)",
            collected.lagged
        );
    }
    near.report("start lateness within one interval of the reload", key);
    #[allow(clippy::cast_precision_loss)]
    result(&format!("{key}_missed"), missed as f64);
}

/// Start to first snapshot and first frame with `jobs` jobs: on a new state directory, then
/// again on the one the first start left (10,000 job rows).
pub async fn startup(key: &str, jobs: usize) {
    let (dir, file) = temp_config(&[ok_jobs("job", jobs, "10s")]);
    println!("{key}: {jobs} jobs; start to first snapshot and to the first frame (200x50)");
    for (label, suffix) in [("new state directory", "cold"), ("existing state", "warm")] {
        let clock = Instant::now();
        let (handle, subscription, startup) = start(&file).await;
        let mut app = App::new(
            subscription.snapshot,
            None,
            Theme::new(true),
            (200, 50),
            Utc::now(),
        );
        let mut terminal = Terminal::new(TestBackend::new(200, 50)).expect("terminal");
        app.refresh();
        terminal
            .draw(|frame| jobtop::tui::render::draw(frame, &app))
            .expect("draw");
        let first_frame = clock.elapsed();
        println!(" {label}:");
        report_startup(&startup, &format!("{key}_{suffix}"));
        println!(
            "  start to first frame: {:.1} ms",
            first_frame.as_secs_f64() * 1e3
        );
        result(
            &format!("{key}_{suffix}_frame_ms"),
            first_frame.as_secs_f64() * 1e3,
        );
        shutdown(handle).await;
    }
    drop(dir);
}
