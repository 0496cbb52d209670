//! The real `jobtop` binary in a real terminal (tmux, on a private server socket): start to
//! first frame, key press to updated screen, and CPU while idle with the dashboard open.
//!
//! The screen is read with `tmux capture-pane`, which is itself a process spawn (about 1-2 ms),
//! so these times are upper bounds with that resolution. The time tmux takes to start a
//! trivial command and show its output is measured the same way and reported beside them.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::measure::{self, ok_jobs, result};

const SERVER: &str = "jobtop-bench";
const SESSION: &str = "bench";

fn tmux(args: &[&str]) -> Output {
    Command::new("tmux")
        .args(["-L", SERVER, "-f", "/dev/null"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tmux")
}

fn screen() -> String {
    String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", SESSION]).stdout).into_owned()
}

/// Polls the screen until `done` holds; the time it took, or `None` after `limit`.
fn wait_for(limit: Duration, done: impl Fn(&str) -> bool) -> Option<Duration> {
    let clock = Instant::now();
    while clock.elapsed() < limit {
        if done(&screen()) {
            return Some(clock.elapsed());
        }
    }
    None
}

fn start_session(command: &str) {
    let _ = tmux(&["kill-server"]);
    let out = tmux(&[
        "new-session",
        "-d",
        "-s",
        SESSION,
        "-x",
        "200",
        "-y",
        "50",
        command,
    ]);
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pane_pid() -> String {
    String::from_utf8_lossy(&tmux(&["list-panes", "-t", SESSION, "-F", "#{pane_pid}"]).stdout)
        .trim()
        .to_string()
}

/// The screen row of the selection marker.
fn selected_row(screen: &str) -> Option<usize> {
    screen.lines().position(|line| line.starts_with('›'))
}

fn stop_session() {
    let _ = tmux(&["send-keys", "-t", SESSION, "q"]);
    std::thread::sleep(Duration::from_millis(500));
    let _ = tmux(&["kill-server"]);
}

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn dashboard_command(file: &Path) -> String {
    format!(
        "exec {} --config {}",
        env!("CARGO_BIN_EXE_jobtop"),
        file.display()
    )
}

/// Start to first frame, key presses and memory with `jobs` jobs; `presses` key presses.
pub fn dashboard(key: &str, jobs: usize, presses: usize) {
    if !have_tmux() {
        println!("{key}: skipped: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = measure::write_config(dir.path(), &[ok_jobs("job", jobs, "10s")]);
    println!(
        "{key}: the jobtop binary in tmux (200x50), {jobs} jobs every 10 s, in-process scheduler"
    );
    // What tmux itself takes to start a command and show its first output.
    start_session("printf 'ready\\n'; exec sleep 30");
    let tmux_alone = wait_for(Duration::from_secs(5), |s| s.contains("ready"));
    let _ = tmux(&["kill-server"]);
    let tmux_ms = tmux_alone.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);

    let header = format!("{jobs} jobs");
    let started = Instant::now();
    start_session(&dashboard_command(&file));
    let Some(first) = wait_for(Duration::from_secs(20), |s| {
        s.contains(&header) && selected_row(s).is_some()
    }) else {
        println!(
            "  the dashboard did not show {header} within 20 s:\n{}",
            screen()
        );
        stop_session();
        return;
    };
    let first_ms = first.as_secs_f64() * 1e3;
    println!(
        "  start to first frame: {first_ms:.1} ms (tmux alone, start to first output: {tmux_ms:.1} ms)"
    );
    result(&format!("{key}_first_frame_ms"), first_ms);
    result(&format!("{key}_tmux_alone_ms"), tmux_ms);
    std::thread::sleep(Duration::from_secs(1));

    let mut latencies = Vec::with_capacity(presses);
    for i in 0..presses {
        let before = selected_row(&screen());
        let keystroke = if i % 2 == 0 { "j" } else { "k" };
        let clock = Instant::now();
        let _ = tmux(&["send-keys", "-t", SESSION, keystroke]);
        let moved = wait_for(Duration::from_secs(2), |s| selected_row(s) != before);
        if moved.is_some() {
            latencies.push(clock.elapsed().as_secs_f64() * 1e3);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let p = measure::Percentiles::of(&mut latencies);
    println!(
        "  key press to updated screen: median {:.1} ms, max {:.1} ms ({} of {presses} presses seen)",
        p.p50, p.max, p.count
    );
    result(&format!("{key}_key_ms"), p.p50);
    result(&format!("{key}_key_max_ms"), p.max);
    // Memory once every job has run at least once (they are due 10 s after the start), so
    // the rows, the history writer and the event buffer hold what they hold in steady state.
    let settle = Duration::from_secs(14).saturating_sub(started.elapsed());
    std::thread::sleep(settle);
    let pid = pane_pid();
    let (rss, peak) = (
        measure::status_mib_of(&pid, "VmRSS"),
        measure::status_mib_of(&pid, "VmHWM"),
    );
    println!(
        "  resident memory of the jobtop process {:.0} s after the start: {rss:.1} MiB, peak {peak:.1} MiB",
        started.elapsed().as_secs_f64()
    );
    result(&format!("{key}_rss_mib"), rss);
    result(&format!("{key}_peak_rss_mib"), peak);
    stop_session();
}

/// CPU of the real dashboard process (scheduler in-process) with `jobs` jobs every 60 s,
/// measured over `secs` seconds after it settled.
pub fn idle(key: &str, jobs: usize, secs: u64) {
    if !have_tmux() {
        println!("{key}: skipped: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = measure::write_config(dir.path(), &[ok_jobs("job", jobs, "60s")]);
    println!("{key}: the jobtop binary in tmux (200x50), {jobs} jobs every 60 s, for {secs} s");
    start_session(&dashboard_command(&file));
    let header = format!("{jobs} jobs");
    if wait_for(Duration::from_secs(20), |s| s.contains(&header)).is_none() {
        println!("  the dashboard did not start:\n{}", screen());
        stop_session();
        return;
    }
    std::thread::sleep(Duration::from_secs(1));
    let pid = pane_pid();
    let (cpu0, clock) = (measure::cpu_time_of(&pid, false), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let cpu = measure::cpu_time_of(&pid, false) - cpu0;
    let percent = cpu.as_secs_f64() / clock.elapsed().as_secs_f64() * 100.0;
    println!(
        "  CPU {:.3} s in {secs} s = {percent:.3} % of one core (resolution 10 ms of CPU)",
        cpu.as_secs_f64()
    );
    result(&format!("{key}_cpu_percent"), percent);
    stop_session();
}
