//! `jobtop serve` end to end: the built binary on a temporary directory with its own
//! `jobs.yaml` and job files, real signals (`kill`), the real state database, and the
//! `list`/`history`/`activate`/`cancel`/`trigger`/`reload` commands reading it afterwards.
//! Conditions are polled with deadlines; the only fixed sleeps are where time itself is the
//! thing tested (a job must *not* run during a stretch, a restart must land off-phase).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Write as _;
use std::process::{Command, ExitStatus};
use std::thread::sleep;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::process::{
    Cli, EXIT_JOB, Sandbox, Serve, current_user, has_line_column, poll_every, runs, text,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Job files. Line numbers matter: `fail.lua` raises on line 3.

const OK_JOB: &str = "local job = core.job()
function job.run()
  core.log(\"tick\", job.minute())
  return job.OK
end
return job
";

const FAIL_JOB: &str = "local job = core.job()
function job.run()
  error(\"disk is full\")
end
return job
";

const CANCEL_JOB: &str = "local job = core.job()
function job.run()
  return job.CANCEL
end
return job
";

const INVALID_JOB: &str = "local job = core.job()
function job.run()
  return \"nope\"
end
return job
";

/// Busy for `seconds` (CPU time), then ok.
fn busy_job(seconds: u32) -> String {
    format!(
        "local job = core.job()
function job.run()
  core.log(\"starting\")
  local t = os.clock()
  while os.clock() - t < {seconds} do end
  core.log(\"finished\")
  return job.OK
end
return job
"
    )
}

// ---------------------------------------------------------------------------------------------
// The sandbox: one temporary directory per test.

/// The CLI runs with `--config <dir>/jobs.yaml` and a `USER` of its own; a command that takes
/// over 20 s fails the test.
const CLI: Cli = Cli {
    user: Some("e2e-tester"),
    ..Cli::new(Duration::from_secs(20))
};

impl Sandbox {
    /// A directory with `jobs.yaml` = `yaml` and the given job files under `jobs/`.
    fn new(yaml: &str, jobs: &[(&str, &str)]) -> Sandbox {
        Sandbox::with_cli(CLI, yaml, jobs)
    }

    /// Starts `jobtop serve`, its stderr going to a file in the sandbox; returns once it has
    /// logged that it started (so its signal handlers are in place).
    fn serve(&self) -> Serve {
        let mut serve = Serve::spawn(self);
        let ready = poll(Duration::from_secs(10), || {
            if let Some(status) = serve.child.try_wait().unwrap() {
                panic!(
                    "jobtop serve exited at start with {status}: {}",
                    serve.stderr()
                );
            }
            serve
                .stderr()
                .contains("jobtop serve started")
                .then_some(())
        });
        assert!(
            ready.is_some(),
            "serve did not start within 10 s: {}",
            serve.stderr()
        );
        // The signal handlers are installed right after that line is logged.
        sleep(Duration::from_millis(100));
        serve
    }

    /// A read-write connection to the state database (no service must be running).
    fn database(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.state_dir().join("state.db")).unwrap()
    }

    /// The `runs` counter of a job, straight from the state database (works while `jobs.yaml`
    /// is broken, when `list` refuses to read it).
    fn stored_runs(&self, name: &str) -> i64 {
        let conn = rusqlite::Connection::open_with_flags(
            self.state_dir().join("state.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn.query_row("SELECT runs FROM jobs WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .unwrap_or(0)
    }
}

// A running `jobtop serve` (see `common::process::Serve`): killed (SIGKILL) if a test ends
// while it still runs.
impl Serve {
    /// Waits for the process to exit; returns its status and how long the wait took.
    fn wait_exit(&mut self, within: Duration) -> (ExitStatus, Duration) {
        let asked = Instant::now();
        let status = poll(within, || self.child.try_wait().unwrap());
        match status {
            Some(status) => (status, asked.elapsed()),
            None => panic!(
                "serve (pid {}) did not exit within {within:?}: {}",
                self.pid(),
                self.stderr()
            ),
        }
    }

    /// SIGTERM, then asserts a prompt exit with code 0.
    fn stop(&mut self) {
        self.signal("TERM");
        let (status, took) = self.wait_exit(Duration::from_secs(5));
        assert_eq!(
            status.code(),
            Some(0),
            "serve exited with {status} after SIGTERM: {}",
            self.stderr()
        );
        assert!(
            took < Duration::from_secs(3),
            "no run was going, yet serve took {took:?} to stop"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

/// Calls `f` every 100 ms until it returns `Some`, or `within` has passed.
fn poll<T>(within: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    poll_every(Duration::from_millis(100), within, f)
}

/// Parses an RFC 3339 time, failing the test when it is not one.
fn rfc3339(v: &Value, what: &str) -> DateTime<Utc> {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{what} = {s:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// Asserts `v` is an RFC 3339 time with at least millisecond precision; returns it.
fn rfc3339_millis(v: &Value, what: &str) -> DateTime<Utc> {
    let t = rfc3339(v, what);
    let s = v.as_str().unwrap();
    let fraction = s.split_once('.').map_or(0, |(_, rest)| {
        rest.chars().take_while(char::is_ascii_digit).count()
    });
    assert!(fraction >= 3, "{what} = {s:?} has no millisecond precision");
    t
}

// ---------------------------------------------------------------------------------------------
// 1. Results and their effects, graceful SIGTERM, list and history JSON.

const RESULTS_YAML: &str = "service:
  workers: 2
jobs:
  - name: good
    path: good.lua
    interval: 1s
  - name: fail
    path: fail.lua
    interval: 1s
  - name: quit
    path: quit.lua
    interval: 1s
  - name: cancel
    path: cancel.lua
    interval: 1s
  - name: invalid
    path: invalid.lua
    interval: 1s
";

fn results_sandbox() -> Sandbox {
    Sandbox::new(
        RESULTS_YAML,
        &[
            ("good.lua", OK_JOB),
            ("fail.lua", FAIL_JOB),
            ("quit.lua", EXIT_JOB),
            ("cancel.lua", CANCEL_JOB),
            ("invalid.lua", INVALID_JOB),
        ],
    )
}

#[test]
fn serve_applies_every_result_and_stops_gracefully_on_sigterm() {
    let sandbox = results_sandbox();
    let mut serve = sandbox.serve();

    // About three intervals: the ok job has run three times, so the others would have too.
    sandbox.wait_job("good", Duration::from_secs(10), |j| runs(j) >= 3);

    // While serve runs: EXIT shows `stopped`, after exactly one run.
    let quit = sandbox.job("quit");
    assert_eq!(quit["status"], "stopped", "{quit:#}");
    assert_eq!(quit["last_result"], "exit", "{quit:#}");
    assert_eq!(runs(&quit), 1, "a stopped job runs no more: {quit:#}");
    assert_eq!(quit["next_run"], Value::Null, "{quit:#}");

    serve.stop();

    let jobs = sandbox.list();
    let find = |name: &str| jobs.iter().find(|j| j["name"] == name).unwrap().clone();

    let good = find("good");
    assert_eq!(good["status"], "waiting", "{good:#}");
    assert_eq!(good["last_result"], "ok", "{good:#}");
    assert!(runs(&good) >= 2, "{good:#}");
    assert_eq!(good["last_error"], Value::Null, "{good:#}");
    let last_run = rfc3339(&good["last_run"], "good.last_run");
    assert!(last_run <= Utc::now() && Utc::now() - last_run < chrono::Duration::seconds(5));

    let fail = find("fail");
    assert_eq!(fail["status"], "deactivated", "{fail:#}");
    assert_eq!(fail["last_result"], "error", "{fail:#}");
    assert_eq!(
        runs(&fail),
        1,
        "a deactivated job must not run again: {fail:#}"
    );
    let error = fail["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("jobs/fail.lua:3:") && error.contains("disk is full"),
        "last_error names the file and line: {error:?}"
    );
    assert!(
        error.contains("stack traceback"),
        "with a traceback: {error:?}"
    );

    let quit = find("quit");
    assert_eq!(runs(&quit), 1, "{quit:#}");
    assert_eq!(quit["last_result"], "exit", "{quit:#}");
    assert_ne!(
        quit["status"], "deactivated",
        "EXIT is not a deactivation: {quit:#}"
    );

    let cancel = find("cancel");
    assert_eq!(cancel["status"], "deactivated", "{cancel:#}");
    assert_eq!(cancel["last_result"], "cancel", "{cancel:#}");
    assert_eq!(runs(&cancel), 1, "{cancel:#}");

    let invalid = find("invalid");
    assert_eq!(invalid["status"], "deactivated", "{invalid:#}");
    assert_eq!(invalid["last_result"], "invalid", "{invalid:#}");
    assert_eq!(runs(&invalid), 1, "{invalid:#}");
    let error = invalid["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("invalid return value")
            && error.contains("nope")
            && error.ends_with("expected job.OK, job.EXIT, job.CANCEL, true or false"),
        "the documented message: {error:?}"
    );

    check_history_of_good(&sandbox, runs(&good));
    let history = sandbox.history("fail");
    assert_eq!(history.len(), 1, "{history:#?}");
    assert_eq!(history[0]["result"], "error");
    assert!(
        history[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("jobs/fail.lua:3:"),
        "{history:#?}"
    );
}

/// History of the 1 s ok job: newest first, millisecond times, numbers, triggers and the
/// log lines, one row per run.
fn check_history_of_good(sandbox: &Sandbox, runs: u64) {
    let history = sandbox.history("good");
    assert_eq!(
        history.len() as u64,
        runs,
        "one history row per run: {history:#?}"
    );
    let mut previous: Option<DateTime<Utc>> = None;
    for run in &history {
        let scheduled = rfc3339_millis(&run["scheduled"], "scheduled");
        let started = rfc3339_millis(&run["started"], "started");
        assert!(
            started >= scheduled - chrono::Duration::milliseconds(1),
            "a run starts at or after its due time: {run}"
        );
        assert!(
            started - scheduled < chrono::Duration::milliseconds(500),
            "runs start soon after their due time: {run}"
        );
        assert!(
            run["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
            "{run}"
        );
        assert_eq!(run["result"], "ok", "{run}");
        assert_eq!(run["error"], Value::Null, "{run}");
        assert_eq!(run["trigger"], "schedule", "{run}");
        let logs = run["logs"].as_array().expect("logs is an array");
        assert_eq!(logs.len(), 1, "{run}");
        assert!(
            logs[0].as_str().unwrap().starts_with("tick\t"),
            "core.log line kept: {run}"
        );
        if let Some(newer) = previous {
            assert!(scheduled < newer, "newest first: {history:#?}");
            let gap = (newer - scheduled).num_milliseconds();
            assert!(
                (900..=1100).contains(&gap),
                "1 s interval, no drift: {gap} ms apart"
            );
        }
        previous = Some(scheduled);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Restart keeps deactivations and phase.

#[test]
fn restart_keeps_deactivations_and_phase() {
    let sandbox = Sandbox::new(
        "jobs:
  - name: paced
    path: good.lua
    interval: 2s
  - name: fail
    path: fail.lua
    interval: 1s
",
        &[("good.lua", OK_JOB), ("fail.lua", FAIL_JOB)],
    );
    let mut serve = sandbox.serve();
    sandbox.wait_job("paced", Duration::from_secs(10), |j| runs(j) >= 1);
    sandbox.wait_job("fail", Duration::from_secs(10), |j| {
        j["status"] == "deactivated"
    });
    serve.stop();

    let before = sandbox.history("paced");
    let last_scheduled = rfc3339_millis(&before[0]["scheduled"], "scheduled");
    let interval = chrono::Duration::seconds(2);

    // Restart 1 s off the phase: a scheduler that counted from the start would run the job at
    // last + 3 s (+ 2k), one on the phase at last + 2 s (+ 2k).
    let mut restart_at = last_scheduled + chrono::Duration::seconds(1);
    while restart_at < Utc::now() + chrono::Duration::milliseconds(50) {
        restart_at += interval;
    }
    sleep((restart_at - Utc::now()).to_std().unwrap_or_default());
    let mut serve = sandbox.serve();
    let restarted = serve.started;

    let new_run = poll(Duration::from_secs(8), || {
        sandbox
            .history("paced")
            .into_iter()
            .find(|r| rfc3339(&r["scheduled"], "scheduled") > last_scheduled)
    })
    .expect("paced ran after the restart");
    let scheduled = rfc3339_millis(&new_run["scheduled"], "scheduled");
    let since_last = (scheduled - last_scheduled).num_milliseconds();
    let k = (since_last + 1000) / 2000;
    let off_phase = since_last - k * 2000;
    assert!(
        k >= 1 && off_phase.abs() <= 300,
        "the first run after the restart is due {since_last} ms after the last recorded one: \
         expected a multiple of the 2 s interval (±300 ms); last {last_scheduled}, new {new_run}"
    );

    // The failed job stays deactivated across the restart, and does not run.
    let wait = Duration::from_millis(1500).saturating_sub(restarted.elapsed());
    sleep(wait);
    let fail = sandbox.job("fail");
    assert_eq!(fail["status"], "deactivated", "{fail:#}");
    assert_eq!(runs(&fail), 1, "{fail:#}");
    assert!(
        fail["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("jobs/fail.lua:3:"),
        "{fail:#}"
    );
    assert_eq!(sandbox.history("fail").len(), 1);
    serve.stop();
    assert_eq!(sandbox.job("fail")["status"], "deactivated");
}

// ---------------------------------------------------------------------------------------------
// 3. SIGHUP reload: a broken jobs.yaml keeps the old jobs; a valid edit is applied.

const RELOAD_YAML: &str = "jobs:
  - name: good
    path: good.lua
    interval: 1s
  - name: quit
    path: quit.lua
    interval: 1s
";

#[test]
fn sighup_reload_keeps_old_jobs_on_error_and_applies_a_valid_edit() {
    let sandbox = Sandbox::new(RELOAD_YAML, &[("good.lua", OK_JOB), ("quit.lua", EXIT_JOB)]);
    let mut serve = sandbox.serve();
    sandbox.wait_job("good", Duration::from_secs(10), |j| runs(j) >= 1);
    sandbox.wait_job("quit", Duration::from_secs(10), |j| {
        j["status"] == "stopped"
    });

    // A broken file: the flow sequence on line 3 is never closed.
    sandbox.write_config("jobs:\n  - name: good\n    path: [good.lua\n    interval: 1s\n");
    serve.signal("HUP");
    let log = poll(Duration::from_secs(5), || {
        let log = sandbox.service_log();
        log.contains("reload refused").then_some(log)
    })
    .unwrap_or_else(|| {
        panic!(
            "the log never mentions the refused reload: {}",
            sandbox.service_log()
        )
    });
    assert!(
        has_line_column(&log, "jobs.yaml"),
        "the log names the problem with line:column: {log}"
    );
    let runs_at_hup = sandbox.stored_runs("good");
    sleep(Duration::from_millis(2300));
    assert!(
        serve.child.try_wait().unwrap().is_none(),
        "a broken reload must not stop serve: {}",
        serve.stderr()
    );
    let runs_later = sandbox.stored_runs("good");
    assert!(
        runs_later >= runs_at_hup + 2,
        "the old jobs keep running after a refused reload: {runs_at_hup} -> {runs_later}"
    );
    assert_eq!(
        sandbox.stored_runs("quit"),
        1,
        "a refused reload does not resume a stopped job"
    );

    // A valid edit adding a job.
    sandbox.write_config(&format!(
        "{RELOAD_YAML}  - name: added
    path: good.lua
    interval: 500ms
"
    ));
    serve.signal("HUP");
    let added = sandbox.wait_job("added", Duration::from_secs(5), |j| runs(j) >= 1);
    assert_eq!(added["last_result"], "ok", "{added:#}");
    assert_eq!(added["interval_secs"].as_f64(), Some(0.5), "{added:#}");
    let quit = sandbox.wait_job("quit", Duration::from_secs(5), |j| runs(j) >= 2);
    assert_eq!(quit["last_result"], "exit", "{quit:#}");
    let good = sandbox.job("good");
    assert_eq!(good["status"], "waiting", "{good:#}");
    assert!(
        i64::try_from(runs(&good)).unwrap() >= runs_later,
        "{good:#}"
    );
    serve.stop();
}

// ---------------------------------------------------------------------------------------------
// 4. kill -9 in the middle of runs.

#[test]
fn kill_9_leaves_a_sound_database_and_a_free_state_directory() {
    let mut yaml = String::from("jobs:\n");
    for i in 0..4 {
        writeln!(
            yaml,
            "  - name: fast{i}\n    path: good.lua\n    interval: 200ms"
        )
        .unwrap();
    }
    yaml.push_str("  - name: fail\n    path: fail.lua\n    interval: 200ms\n");
    let sandbox = Sandbox::new(&yaml, &[("good.lua", OK_JOB), ("fail.lua", FAIL_JOB)]);
    let mut serve = sandbox.serve();
    sleep(Duration::from_millis(1500));
    serve.signal("KILL");
    let (status, _) = serve.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), None, "killed by a signal: {status}");

    let stored: i64 = {
        let conn = sandbox.database();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let stored: i64 = conn
            .query_row(
                "SELECT count(*) FROM runs WHERE job LIKE 'fast%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(stored >= 4, "runs before the kill were recorded: {stored}");
        let deactivated: i64 = conn
            .query_row(
                "SELECT deactivated FROM jobs WHERE name = 'fail'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(deactivated, 1, "the acknowledged deactivation survived");
        stored
    };
    // The sqlite3 shell agrees.
    let out = Command::new("sqlite3")
        .arg(sandbox.state_dir().join("state.db"))
        .arg("PRAGMA integrity_check;")
        .output();
    if let Ok(out) = out {
        assert_eq!(text(&out.stdout).trim(), "ok", "{}", text(&out.stderr));
    }

    // The kernel released the lock: a new serve starts cleanly and keeps running jobs.
    let mut serve = sandbox.serve();
    let total_before: u64 = (0..4)
        .map(|i| runs(&sandbox.job(&format!("fast{i}"))))
        .sum();
    assert!(
        total_before >= u64::try_from(stored).unwrap(),
        "{total_before} < {stored}"
    );
    let fast0 = runs(&sandbox.job("fast0"));
    sandbox.wait_job("fast0", Duration::from_secs(5), |j| runs(j) >= fast0 + 3);
    assert!(
        !serve.stderr().contains("ERROR"),
        "the restart logged errors: {}",
        serve.stderr()
    );
    assert_eq!(sandbox.job("fail")["status"], "deactivated");
    serve.stop();
    let conn = sandbox.database();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

// ---------------------------------------------------------------------------------------------
// 5. A second serve on the same configuration is refused.

#[test]
fn a_second_serve_is_refused_naming_the_first() {
    let sandbox = Sandbox::new(
        "jobs:\n  - name: good\n    path: good.lua\n    interval: 1s\n",
        &[("good.lua", OK_JOB)],
    );
    let mut first = sandbox.serve();
    let out = sandbox.jobtop(&["serve"]);
    assert_ne!(out.status.code(), Some(0), "the second serve must fail");
    let message = text(&out.stderr);
    assert!(
        message.contains(&format!("jobtop serve, pid {}", first.pid())),
        "the message names the running service: {message:?}"
    );
    assert!(
        first.child.try_wait().unwrap().is_none(),
        "the first serve is unharmed"
    );
    sandbox.wait_job("good", Duration::from_secs(5), |j| runs(j) >= 1);
    first.stop();
}

// ---------------------------------------------------------------------------------------------
// 6. Operator actions with no service running act on the database.

#[test]
fn offline_actions_act_on_the_database() {
    let sandbox = Sandbox::new(
        "jobs:
  - name: good
    path: good.lua
    interval: 500ms
  - name: fail
    path: fail.lua
    interval: 1h
",
        &[("good.lua", OK_JOB), ("fail.lua", FAIL_JOB)],
    );

    // cancel: deactivated, by whom, persisted.
    let out = sandbox.jobtop(&["cancel", "good"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let good = sandbox.job("good");
    assert_eq!(good["status"], "deactivated", "{good:#}");
    // The Unix user of the process, not `$USER`, which anyone can set.
    assert_eq!(good["deactivated_by"], current_user(), "{good:#}");

    // activate: waiting again.
    let out = sandbox.jobtop(&["activate", "good"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let good = sandbox.job("good");
    assert_eq!(good["status"], "waiting", "{good:#}");
    assert_eq!(good["deactivated_by"], Value::Null, "{good:#}");

    // trigger: runs once here and now, recorded as an operator run.
    let out = sandbox.jobtop(&["trigger", "good"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("tick"), "{}", text(&out.stdout));
    let history = sandbox.history("good");
    assert_eq!(history.len(), 1, "{history:#?}");
    assert_eq!(history[0]["trigger"], "operator");
    assert_eq!(history[0]["result"], "ok");
    assert_eq!(history[0]["logs"].as_array().map(Vec::len), Some(1));
    assert_eq!(runs(&sandbox.job("good")), 1);

    // trigger of a failing job: recorded, and the failure deactivates it.
    let out = sandbox.jobtop(&["trigger", "fail"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("jobs/fail.lua:3:"));
    let fail = sandbox.job("fail");
    assert_eq!(fail["status"], "deactivated", "{fail:#}");
    assert_eq!(fail["last_result"], "error", "{fail:#}");
    let history = sandbox.history("fail");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["trigger"], "operator");
    // ... and activate clears a failure's deactivation too.
    let out = sandbox.jobtop(&["activate", "fail"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(sandbox.job("fail")["status"], "waiting");

    // reload: nothing to do, and it says so.
    let out = sandbox.jobtop(&["reload"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("nothing to reload"),
        "{}",
        text(&out.stdout)
    );

    // An unknown job: a failure listing the jobs there are.
    for action in ["activate", "cancel", "trigger"] {
        let out = sandbox.jobtop(&[action, "nosuch"]);
        assert_ne!(out.status.code(), Some(0), "{action} nosuch");
        let message = text(&out.stderr);
        assert!(
            message.contains("nosuch") && message.contains("good") && message.contains("fail"),
            "{action}: {message:?}"
        );
    }

    // What was decided offline holds when the service starts: good (activated) runs.
    let mut serve = sandbox.serve();
    let good = sandbox.wait_job("good", Duration::from_secs(5), |j| runs(j) >= 2);
    assert_eq!(good["last_result"], "ok");
    assert_eq!(sandbox.history("good")[0]["trigger"], "schedule");
    serve.stop();
}

// ---------------------------------------------------------------------------------------------
// 7. SIGTERM during runs: a short run finishes, a long one is aborted after the grace period.

#[test]
fn sigterm_aborts_a_long_run_after_the_grace_period() {
    let sandbox = Sandbox::new(
        "jobs:
  - name: long
    path: long.lua
    interval: 500ms
    timeout: 60s
",
        &[("long.lua", &busy_job(30))],
    );
    let mut serve = sandbox.serve();
    sandbox.wait_job("long", Duration::from_secs(10), |j| {
        j["status"] == "running"
    });
    serve.signal("TERM");
    let (status, took) = serve.wait_exit(Duration::from_secs(16));
    assert_eq!(status.code(), Some(0), "{}", serve.stderr());
    assert!(
        took >= Duration::from_secs(9),
        "the run got its 10 s grace period, not {took:?}"
    );
    assert!(
        took <= Duration::from_secs(13),
        "serve stopped within the grace period and a margin, not {took:?}"
    );
    let history = sandbox.history("long");
    let run = history
        .iter()
        .find(|r| r["result"] != "skipped")
        .unwrap_or_else(|| panic!("the long run is recorded: {history:#?}"));
    assert_eq!(run["result"], "aborted", "{run:#}");
    assert!(
        run["duration_ms"].as_f64().unwrap() >= 9000.0,
        "it ran through the grace period: {run:#}"
    );
    assert_eq!(run["logs"][0], "starting", "log lines kept: {run:#}");
    let long = sandbox.job("long");
    assert_eq!(long["last_result"], "aborted", "{long:#}");
    assert_ne!(
        long["status"], "deactivated",
        "shutdown is no failure: {long:#}"
    );
}

#[test]
fn sigterm_lets_a_short_run_finish() {
    let sandbox = Sandbox::new(
        "jobs:
  - name: short
    path: short.lua
    interval: 500ms
    timeout: 60s
",
        &[("short.lua", &busy_job(2))],
    );
    let mut serve = sandbox.serve();
    sandbox.wait_job("short", Duration::from_secs(10), |j| {
        j["status"] == "running"
    });
    serve.signal("TERM");
    let (status, took) = serve.wait_exit(Duration::from_secs(12));
    assert_eq!(status.code(), Some(0), "{}", serve.stderr());
    assert!(
        took < Duration::from_secs(5),
        "serve waited for the run, not the whole grace period: {took:?}"
    );
    let history = sandbox.history("short");
    let run = history.iter().find(|r| r["result"] != "skipped").unwrap();
    assert_eq!(run["result"], "ok", "{history:#?}");
    assert_eq!(
        run["logs"],
        serde_json::json!(["starting", "finished"]),
        "{run:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. `list` in both forms.

const LIST_YAML: &str = "jobs:
  - name: often
    path: good.lua
    interval: 1s
  - name: rarely
    path: good.lua
    interval: 1h
  - name: off
    path: good.lua
    interval: 1s
    active: false
";

fn assert_list_shape(job: &Value) {
    let obj = job
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {job}"));
    for key in [
        "name",
        "path",
        "interval_secs",
        "status",
        "last_run",
        "last_result",
        "last_error",
        "runs",
        "next_run",
    ] {
        assert!(obj.contains_key(key), "{key} missing: {job:#}");
    }
    assert!(job["name"].is_string(), "{job:#}");
    assert!(job["path"].is_string(), "{job:#}");
    assert!(job["interval_secs"].is_number(), "{job:#}");
    assert!(job["status"].is_string(), "{job:#}");
    assert!(job["runs"].is_u64(), "{job:#}");
    for key in ["last_result", "last_error"] {
        assert!(job[key].is_string() || job[key].is_null(), "{key}: {job:#}");
    }
    for key in ["last_run", "next_run"] {
        if !job[key].is_null() {
            rfc3339(&job[key], key);
        }
    }
}

#[test]
fn list_prints_a_table_and_the_spec_json() {
    let sandbox = Sandbox::new(LIST_YAML, &[("good.lua", OK_JOB)]);

    // Before any service ever ran: no database, still every job.
    let jobs = sandbox.list();
    assert_eq!(jobs.len(), 3, "{jobs:#?}");
    for job in &jobs {
        assert_list_shape(job);
        assert_eq!(runs(job), 0);
        assert_eq!(job["last_run"], Value::Null);
        assert_eq!(job["next_run"], Value::Null, "no service, no next run");
    }
    assert_eq!(jobs[2]["status"], "disabled");

    let mut serve = sandbox.serve();
    let often = sandbox.wait_job("often", Duration::from_secs(10), |j| runs(j) >= 1);
    let jobs = sandbox.list();
    let names: Vec<&str> = jobs.iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["often", "rarely", "off"], "in jobs.yaml order");
    for job in &jobs {
        assert_list_shape(job);
    }
    assert_eq!(often["path"], "good.lua");
    assert_eq!(often["interval_secs"].as_f64(), Some(1.0));
    assert_eq!(often["last_result"], "ok");
    assert_eq!(often["last_error"], Value::Null);
    rfc3339(&often["last_run"], "last_run");

    let rarely = &jobs[1];
    assert_eq!(rarely["status"], "waiting", "{rarely:#}");
    assert_eq!(rarely["interval_secs"].as_f64(), Some(3600.0));
    assert_eq!(rarely["last_run"], Value::Null);
    assert_eq!(rarely["last_result"], Value::Null);
    // (Its next_run: see `list_shows_the_next_run_of_a_job_that_has_not_run_yet`.)
    let often = sandbox.wait_job("often", Duration::from_secs(3), |j| {
        j["status"] == "waiting" && !j["next_run"].is_null()
    });
    let next = rfc3339(&often["next_run"], "next_run");
    let now = Utc::now();
    assert!(
        next > now - chrono::Duration::milliseconds(200)
            && next <= now + chrono::Duration::seconds(1),
        "a waiting job's next run is in the coming interval: {next} (now {now})"
    );
    let off = &jobs[2];
    assert_eq!(off["status"], "disabled", "{off:#}");
    assert_eq!(runs(off), 0, "{off:#}");
    assert_eq!(off["next_run"], Value::Null, "{off:#}");

    // The table: a header and one row per job.
    let out = sandbox.jobtop(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("NAME"))
        .unwrap_or_else(|| panic!("no header: {table}"));
    for column in ["NAME", "STATUS", "SCHEDULE", "RUNS"] {
        assert!(lines[header].contains(column), "{table}");
    }
    let rows = &lines[header + 1..];
    assert_eq!(rows.len(), 3, "one row per job: {table}");
    for (row, name) in rows.iter().zip(["often", "rarely", "off"]) {
        assert!(row.starts_with(name), "{table}");
    }
    assert!(
        rows[0].contains("waiting") || rows[0].contains("running"),
        "{table}"
    );
    assert!(rows[2].contains("disabled"), "{table}");
    serve.stop();
}

/// docs/cli.md#list / issue 3: while `serve` runs, `list` shows each waiting job's next run,
/// its first slot after the start, before it has ever run; after a restart a job that was
/// `stopped` is waiting again.
#[test]
fn list_shows_the_next_run_of_a_job_that_has_not_run_yet() {
    let sandbox = Sandbox::new(
        "jobs:
  - name: rarely
    path: good.lua
    interval: 1h
  - name: quit
    path: quit.lua
    interval: 500ms
",
        &[("good.lua", OK_JOB), ("quit.lua", EXIT_JOB)],
    );
    let mut serve = sandbox.serve();
    sandbox.wait_job("quit", Duration::from_secs(5), |j| j["status"] == "stopped");
    let rarely = sandbox.job("rarely");
    let now = Utc::now();
    assert_eq!(rarely["status"], "waiting", "{rarely:#}");
    let next = rfc3339(&rarely["next_run"], "rarely.next_run");
    assert!(
        next > now - chrono::Duration::seconds(5) && next < now + chrono::Duration::minutes(61),
        "the next run at its first slot, within one interval of the start: {next}"
    );
    serve.stop();

    // After a restart with a longer interval, the stopped job is waiting again (a restart
    // resumes stopped jobs), with its next run one interval after its last due time.
    sandbox.write_config(
        "jobs:
  - name: rarely
    path: good.lua
    interval: 1h
  - name: quit
    path: quit.lua
    interval: 1h
",
    );
    let mut serve = sandbox.serve();
    let quit = sandbox.job("quit");
    assert_eq!(quit["status"], "waiting", "{quit:#}");
    rfc3339(&quit["next_run"], "quit.next_run");
    serve.stop();
}

// ---------------------------------------------------------------------------------------------
// Schedules through the built binary (docs/scheduling.md).

/// A six-field cron job every two seconds: each run is for an even second, and starts within
/// that second.
#[test]
fn a_six_field_schedule_runs_on_even_seconds() {
    use chrono::Timelike as _;
    let sandbox = Sandbox::new(
        "jobs:\n  - name: even\n    path: ok.lua\n    schedule: \"*/2 * * * * *\"\n",
        &[("ok.lua", OK_JOB)],
    );
    let mut serve = sandbox.serve();
    let job = sandbox.wait_job("even", Duration::from_secs(15), |j| runs(j) >= 3);
    assert_eq!(job["schedule"], "*/2 * * * * *");
    assert!(job["interval_secs"].is_null(), "{job:#}");
    serve.stop();
    let history = sandbox.history("even");
    assert!(history.len() >= 3, "{history:#?}");
    for run in &history {
        let scheduled = rfc3339(&run["scheduled"], "scheduled");
        let started = rfc3339(&run["started"], "started");
        assert_eq!(scheduled.second() % 2, 0, "{run:#}");
        assert_eq!(scheduled.nanosecond(), 0, "{run:#}");
        assert_eq!(
            started.second(),
            scheduled.second(),
            "started in its second: {run:#}"
        );
    }
}

/// A restart keeps an hourly job's next run to the second: its slots are fixed on the wall
/// clock, so the start time moves nothing.
#[test]
fn a_restart_keeps_an_hourly_jobs_next_run_to_the_second() {
    let sandbox = Sandbox::new(
        "jobs:\n  - name: hourly\n    path: ok.lua\n    interval: 1h\n",
        &[("ok.lua", OK_JOB)],
    );
    let mut serve = sandbox.serve();
    let before = rfc3339(&sandbox.job("hourly")["next_run"], "next_run");
    serve.stop();
    sleep(Duration::from_millis(1100));
    let mut serve = sandbox.serve();
    let after = rfc3339(&sandbox.job("hourly")["next_run"], "next_run");
    serve.stop();
    assert_eq!(before, after, "the slot moved with the restart");
    assert!(before <= Utc::now() + chrono::Duration::hours(1));
}

/// A job that fails twice and then succeeds recovers through its retries; one that keeps
/// failing is deactivated after its last one. History tells the retries apart.
#[test]
fn retries_recover_and_retries_end_in_deactivation() {
    let flaky = "local job = core.job() function job.run() local n = (core.state.get('n') or 0) + 1 core.state.set('n', n) if n < 3 then error('attempt ' .. n) end return job.OK end return job";
    let sandbox = Sandbox::new(
        "jobs:
  - name: flaky
    path: flaky.lua
    interval: 1h
    retries: 3
    retry_delay: 1s
  - name: broken
    path: fail.lua
    interval: 1h
    retries: 1
    retry_delay: 1s
",
        &[("flaky.lua", flaky), ("fail.lua", FAIL_JOB)],
    );
    let mut serve = sandbox.serve();
    sandbox.jobtop_ok(&["trigger", "flaky"]);
    sandbox.jobtop_ok(&["trigger", "broken"]);
    let retrying = sandbox.wait_job("flaky", Duration::from_secs(5), |j| {
        j["status"] == "retrying"
    });
    assert_eq!(retrying["retries"], 3, "{retrying:#}");
    let flaky_job = sandbox.wait_job("flaky", Duration::from_secs(15), |j| {
        j["last_result"] == "ok"
    });
    assert_eq!(flaky_job["status"], "waiting", "{flaky_job:#}");
    assert_eq!(flaky_job["retry_attempt"], 0, "{flaky_job:#}");
    let broken = sandbox.wait_job("broken", Duration::from_secs(15), |j| {
        j["status"] == "deactivated"
    });
    assert!(
        broken["last_error"]
            .as_str()
            .unwrap()
            .contains("disk is full"),
        "{broken:#}"
    );
    serve.stop();
    let triggers = |name: &str| -> Vec<(String, String)> {
        let mut runs: Vec<_> = sandbox
            .history(name)
            .iter()
            .map(|r| {
                (
                    r["trigger"].as_str().unwrap().to_string(),
                    r["result"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        runs.reverse();
        runs
    };
    let pair = |t: &str, r: &str| (t.to_string(), r.to_string());
    assert_eq!(
        triggers("flaky"),
        [
            pair("operator", "error"),
            pair("retry", "error"),
            pair("retry", "ok")
        ]
    );
    assert_eq!(
        triggers("broken"),
        [pair("operator", "error"), pair("retry", "error")]
    );
}
