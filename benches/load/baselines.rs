//! The baselines, measured in the same invocation as jobtop: a Lua interpreter process spawned
//! per run (as cron or systemd timers run a script), and `tokio-cron-scheduler` with the same
//! jobs.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::measure::{self, Percentiles, result};

/// The interpreter the spawn baseline starts: `lua5.4` when it is installed, else the
/// `luau_cli` example (Luau, as jobtop embeds it), when it has been built.
pub fn interpreter(prefer_luau: bool) -> Option<(String, PathBuf)> {
    let luau = std::env::current_exe().ok().and_then(|exe| {
        // target/release/deps/load-HASH → target/release/examples/luau_cli
        let path = exe.parent()?.parent()?.join("examples").join("luau_cli");
        path.is_file().then_some(("luau_cli".to_string(), path))
    });
    let lua = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("lua5.4"))
            .find(|path| path.is_file())
            .map(|path| ("lua5.4".to_string(), path))
    });
    if prefer_luau {
        luau.or(lua)
    } else {
        lua.or(luau)
    }
}

fn spawn_once(program: &PathBuf) {
    let status = Command::new(program)
        .args(["-e", "return true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn the interpreter");
    assert!(status.success(), "the interpreter failed: {status}");
}

/// Spawns the interpreter `count` times one after the other (wall time per run, median), then
/// from one thread per core for `secs` (runs/s with every core busy).
pub fn spawn(key: &str, count: usize, secs: u64, prefer_luau: bool) {
    let Some((name, program)) = interpreter(prefer_luau) else {
        println!(
            "{key}: skipped: neither lua5.4 (apt-get install lua5.4) nor the luau_cli example \
             (cargo build --release --example luau_cli) is there"
        );
        return;
    };
    println!(
        "{key}: `{name} -e 'return true'` spawned per run ({})",
        program.display()
    );
    for _ in 0..10 {
        spawn_once(&program);
    }
    let cpu0 = measure::cpu_time_of("self", true);
    let mut per_run: Vec<f64> = (0..count)
        .map(|_| {
            let clock = Instant::now();
            spawn_once(&program);
            clock.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let cpu = measure::cpu_time_of("self", true) - cpu0;
    let p = Percentiles::of(&mut per_run);
    #[allow(clippy::cast_precision_loss)]
    let cpu_per_run_us = cpu.as_secs_f64() * 1e6 / count as f64;
    println!(
        "  one run, sequential: median {:.3} ms (p90 {:.3} ms, max {:.3} ms, {count} runs); CPU {cpu_per_run_us:.0} us per run (parent + child)",
        p.p50, p.p90, p.max
    );
    result(&format!("{key}_run_ms"), p.p50);
    result(&format!("{key}_cpu_per_run_us"), cpu_per_run_us);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let clock = Instant::now();
    let runs: usize = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..cores)
            .map(|_| {
                scope.spawn(|| {
                    let mut runs = 0usize;
                    while Instant::now() < deadline {
                        spawn_once(&program);
                        runs += 1;
                    }
                    runs
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("thread")).sum()
    });
    #[allow(clippy::cast_precision_loss)]
    let per_sec = runs as f64 / clock.elapsed().as_secs_f64();
    println!("  all {cores} cores: {per_sec:.0} runs/s");
    result(&format!("{key}_runs_per_s"), per_sec);
}

/// The first due time of each job, once the scheduler has told it.
type FirstDue = Arc<Mutex<Vec<Option<DateTime<Utc>>>>>;

/// Due time and lateness in ms of every run.
type Samples = Arc<Mutex<Vec<(DateTime<Utc>, f64)>>>;

/// `tokio-cron-scheduler`: `jobs` jobs made with `Job::new_repeated(interval)` for `secs`.
///
/// Its repeated jobs are due on whole seconds: a job's first due time is the second after it
/// was made (`next_tick`, which the scheduler reports after `add`), and then every interval
/// after that. A run's due time is taken as the latest of those at or before the moment the
/// closure starts, and its lateness as the difference. That is exact while runs are less than
/// one interval late (its 500 ms polling loop keeps them well under a second), and never
/// overstates. Due times with no run are counted separately (`runs per due time` below 1).
/// Runs due in the first second after `start()` are left out (the jobs were made before the
/// scheduler ran), and so are those due in the last second (they may not have started yet).
pub async fn tokio_cron_scheduler(key: &str, jobs: usize, interval_secs: u32, secs: u64) {
    println!(
        "{key}: tokio-cron-scheduler, {jobs} jobs every {interval_secs} s (Job::new_repeated) for {secs} s"
    );
    let rss_before = measure::rss_mib();
    let mut scheduler = JobScheduler::new().await.expect("scheduler");
    let samples: Samples = Arc::default();
    let mut ids = Vec::with_capacity(jobs);
    let firsts: FirstDue = Arc::new(Mutex::new(vec![None; jobs]));
    let every = chrono::Duration::seconds(i64::from(interval_secs));
    for i in 0..jobs {
        let (samples, firsts) = (samples.clone(), firsts.clone());
        let job = Job::new_repeated(
            Duration::from_secs(u64::from(interval_secs)),
            move |_id, _scheduler| {
                let now = Utc::now();
                let first = firsts.lock().expect("lock")[i];
                if let Some(first) = first {
                    let slots = (now - first)
                        .num_milliseconds()
                        .div_euclid(every.num_milliseconds());
                    let due = first + every * i32::try_from(slots).unwrap_or(0);
                    #[allow(clippy::cast_precision_loss)]
                    let late_ms = (now - due).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e3;
                    samples.lock().expect("lock").push((due, late_ms));
                }
            },
        )
        .expect("job");
        ids.push(scheduler.add(job).await.expect("add"));
    }
    for (i, id) in ids.iter().enumerate() {
        let first = scheduler.next_tick_for_job(*id).await.expect("next tick");
        firsts.lock().expect("lock")[i] = first;
    }
    scheduler.start().await.expect("start");
    let from = Utc::now() + chrono::Duration::seconds(1);
    let (cpu0, clock) = (measure::cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (cpu, wall) = (measure::cpu_time() - cpu0, clock.elapsed());
    let to = Utc::now() - chrono::Duration::seconds(1);
    scheduler.shutdown().await.expect("shutdown");
    let mut late: Vec<f64> = samples
        .lock()
        .expect("lock")
        .iter()
        .filter(|(due, _)| *due >= from && *due < to)
        .map(|(_, late)| *late)
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let per_due =
        late.len() as f64 / (jobs as f64 * (to - from).as_seconds_f64() / f64::from(interval_secs));
    Percentiles::of(&mut late).report("start lateness", key);
    println!("  runs per due time: {per_due:.3} (1.000 when every due time gets one run)");
    result(&format!("{key}_runs_per_due"), per_due);
    let percent = cpu.as_secs_f64() / wall.as_secs_f64() * 100.0;
    println!("  CPU {percent:.2} % of one core");
    result(&format!("{key}_cpu_percent"), percent);
    let (rss, peak) = (measure::rss_mib(), measure::peak_rss_mib());
    println!("  resident memory {rss:.1} MiB, peak {peak:.1} MiB ({rss_before:.1} MiB before)");
    result(&format!("{key}_peak_rss_mib"), peak);
}
