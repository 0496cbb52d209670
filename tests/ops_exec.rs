//! `core.exec` on real processes, through real job files run by the runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::runner::{
    SHOW, allowing, error_of, job_source, request as run_request, runner, shown, write_job,
};
use jobtop::config::Capability;
use jobtop::job::RunResult;
use jobtop::runtime::{RunOutcome, RunRequest};

/// A run of a job file whose `run` is `body` (which ends in `show(label, core.exec(...))`
/// calls), for job `x` allowed `allow`.
fn request(dir: &Path, body: &str, allow: Vec<Capability>, timeout: Duration) -> RunRequest {
    let source = job_source(&format!("\nlocal job = core.job()\n{SHOW}"), body);
    let file = write_job(dir, "job.lua", &source);
    RunRequest {
        timeout,
        memory: 32 << 20,
        ..run_request(file, "jobs/job.lua", allowing("x", allow))
    }
}

fn run(body: &str) -> RunOutcome {
    let dir = tempfile::tempdir().unwrap();
    let req = request(
        dir.path(),
        body,
        vec![Capability::Exec],
        Duration::from_secs(10),
    );
    runner().run(&req)
}

/// Whether a process whose command line holds `marker` is still alive (zombies aside), after
/// giving the kernel a moment to finish killing it.
fn alive(marker: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let found = Command::new("pgrep").args(["-f", marker]).output().unwrap();
        if !found.status.success() || Instant::now() > until {
            return found.status.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn output_and_status() {
    let outcome = run(r#"
  show("echo", core.exec("echo", { "hello", "world" }))
  show("false", core.exec("false"))
  show("sh", core.exec("sh", { "-c", "echo out; echo err >&2; exit 3" }))
  show("killed", core.exec("sh", { "-c", "kill -9 $$" }))
  show("number_arg", core.exec("echo", { 42 }))
"#);
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    let echo = shown(&outcome, "echo");
    assert_eq!(echo["r"]["status"], 0);
    assert_eq!(echo["r"]["stdout"], "hello world\n");
    assert_eq!(echo["r"]["stderr"], "");
    assert!(echo["r"].get("signal").is_none());

    let failed = shown(&outcome, "false");
    assert_eq!(failed["r"]["status"], 1);

    let sh = shown(&outcome, "sh");
    assert_eq!(sh["r"]["status"], 3);
    assert_eq!(sh["r"]["stdout"], "out\n");
    assert_eq!(sh["r"]["stderr"], "err\n");

    let killed = shown(&outcome, "killed");
    assert_eq!(killed["r"]["status"], 128 + 9);
    assert_eq!(killed["r"]["signal"], 9);

    assert_eq!(shown(&outcome, "number_arg")["r"]["stdout"], "42\n");
}

#[test]
fn stdin_cwd_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    let outcome = run(&format!(
        r#"
  show("cat", core.exec("cat", nil, {{ stdin = "line 1\nline 2\n" }}))
  show("pwd", core.exec("pwd", {{}}, {{ cwd = [[{cwd}]] }}))
  show("env", core.exec("env", {{}}, {{ env = {{ GREETING = "hi there", N = 7 }} }}))
  show("env_none", core.exec("env"))
"#,
        cwd = cwd.display()
    ));
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    assert_eq!(shown(&outcome, "cat")["r"]["stdout"], "line 1\nline 2\n");
    assert_eq!(
        shown(&outcome, "pwd")["r"]["stdout"],
        format!("{}\n", cwd.display())
    );

    let env = shown(&outcome, "env");
    let mut lines: Vec<&str> = env["r"]["stdout"].as_str().unwrap().lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines.len(),
        3,
        "only PATH and the given variables: {lines:?}"
    );
    assert_eq!(lines[0], "GREETING=hi there");
    assert_eq!(lines[1], "N=7");
    assert!(lines[2].starts_with("PATH="), "{lines:?}");

    let none = shown(&outcome, "env_none");
    let lines: Vec<&str> = none["r"]["stdout"].as_str().unwrap().lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("PATH="), "{lines:?}");
}

#[test]
fn cannot_run_is_nil_err() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\necho hi\n").unwrap();
    let outcome = run(&format!(
        r#"
  show("missing", core.exec("no-such-program-jobtop"))
  show("missing_path", core.exec("/no/such/program"))
  show("not_executable", core.exec([[{plain}]]))
  show("bad_cwd", core.exec("pwd", {{}}, {{ cwd = "/no/such/dir" }}))
  show("cwd_file", core.exec("pwd", {{}}, {{ cwd = [[{plain}]] }}))
  show("bad_cmd", core.exec(42))
  show("bad_args", core.exec("echo", "hello"))
  show("bad_arg", core.exec("echo", {{ {{}} }}))
  show("bad_opts", core.exec("echo", {{}}, "fast"))
  show("unknown_opt", core.exec("echo", {{}}, {{ tiemout = 3 }}))
  show("bad_timeout", core.exec("echo", {{}}, {{ timeout = -1 }}))
  show("bad_env", core.exec("echo", {{}}, {{ env = {{ A = {{}} }} }}))
  show("bad_stdin", core.exec("cat", {{}}, {{ stdin = 5 }}))
"#,
        plain = plain.display()
    ));
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    let table = [
        (
            "missing",
            "core.exec: no-such-program-jobtop was not found in PATH (",
        ),
        (
            "missing_path",
            "core.exec: /no/such/program does not exist: expected the path of a program",
        ),
        (
            "not_executable",
            "permission denied: expected an executable file",
        ),
        ("bad_cwd", "core.exec: cwd /no/such/dir cannot be used ("),
        (
            "cwd_file",
            "is not a directory: expected an existing directory",
        ),
        (
            "bad_cmd",
            "core.exec: cmd is the number 42: expected the name or path of a program (a string)",
        ),
        (
            "bad_args",
            "core.exec(echo): args are the string \"hello\": expected an array of strings",
        ),
        (
            "bad_arg",
            "core.exec(echo): args[1] is a table: expected a string",
        ),
        (
            "bad_opts",
            "core.exec: options are the string \"fast\": expected a table with cwd, env, timeout or stdin",
        ),
        (
            "unknown_opt",
            "core.exec: unknown option \"tiemout\": expected cwd, env, timeout or stdin",
        ),
        (
            "bad_timeout",
            "core.exec: timeout is the number -1: expected a number of seconds greater than 0",
        ),
        ("bad_env", "core.exec: env.A is a table: expected a string"),
        (
            "bad_stdin",
            "core.exec: stdin is the number 5: expected a string",
        ),
    ];
    for (label, expected) in table {
        let error = error_of(&outcome, label);
        assert!(error.contains(expected), "{label}: {error}");
    }
}

#[test]
fn timeout_kills_the_program() {
    let started = Instant::now();
    let outcome = run(r#"
  local t = os.clock()
  show("sleep", core.exec("sleep", { "5.123" }, { timeout = 0.3 }))
"#);
    let elapsed = started.elapsed();
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    assert_eq!(
        error_of(&outcome, "sleep"),
        "core.exec: sleep timed out after 0.3s and was killed"
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(!alive("sleep 5.123"));
}

#[test]
fn timeout_kills_the_whole_group_even_when_sigterm_is_ignored() {
    let started = Instant::now();
    let outcome = run(r#"
  show("group", core.exec("sh", { "-c", 'trap "" TERM; sleep 30.456 & wait' }, { timeout = 0.5 }))
"#);
    let elapsed = started.elapsed();
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    assert_eq!(
        error_of(&outcome, "group"),
        "core.exec: sh timed out after 0.5s and was killed"
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(
        !alive("sleep 30.456"),
        "the grandchild outlived the timeout"
    );
}

#[test]
fn a_background_child_holding_the_output_counts_toward_the_timeout() {
    let outcome = run(r#"
  show("background", core.exec("sh", { "-c", "sleep 20.321 & echo started" }, { timeout = 0.4 }))
"#);
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    assert!(
        error_of(&outcome, "background").contains("timed out after 0.4s"),
        "{outcome:?}"
    );
    assert!(!alive("sleep 20.321"));
}

#[test]
fn abort_ends_the_exec_and_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let req = request(
        dir.path(),
        r#"  show("sleep", core.exec("sleep", { "5.789" }))"#,
        vec![Capability::Exec],
        Duration::from_secs(10),
    );
    let control = req.control.clone();
    let aborter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        control.abort();
    });
    let started = Instant::now();
    let outcome = runner().run(&req);
    let elapsed = started.elapsed();
    aborter.join().unwrap();
    assert_eq!(outcome.result, RunResult::Aborted, "{outcome:?}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(!alive("sleep 5.789"));
}

#[test]
fn the_run_timeout_bounds_a_longer_exec_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let req = request(
        dir.path(),
        r#"  show("sleep", core.exec("sleep", { "10.246" }, { timeout = 30 }))"#,
        vec![Capability::Exec],
        Duration::from_secs(1),
    );
    let started = Instant::now();
    let outcome = runner().run(&req);
    let elapsed = started.elapsed();
    assert_eq!(outcome.result, RunResult::Timeout, "{outcome:?}");
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert!(!alive("sleep 10.246"));
}

#[test]
fn output_is_bounded() {
    let outcome = run(r#"
  local r, err = core.exec("head", { "-c", "5000000", "/dev/zero" })
  local kept = 1024 * 1024
  show("huge", {
    status = r.status,
    len = #r.stdout,
    zeros = r.stdout:sub(1, kept) == string.rep("\0", kept),
    marker = r.stdout:sub(kept + 1),
  }, err)
  local both = core.exec("sh", { "-c", "head -c 2000000 /dev/zero >&2; echo done" })
  show("stderr", { len = #both.stderr, stdout = both.stdout, tail = both.stderr:sub(kept + 1) })
"#);
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    let huge = shown(&outcome, "huge");
    let marker = "\n[… 3951424 bytes dropped]";
    assert_eq!(huge["r"]["status"], 0);
    assert_eq!(huge["r"]["zeros"], true);
    assert_eq!(huge["r"]["marker"], marker);
    assert_eq!(huge["r"]["len"], (1 << 20) + marker.len());

    let stderr = shown(&outcome, "stderr");
    assert_eq!(stderr["r"]["stdout"], "done\n");
    assert_eq!(stderr["r"]["tail"], "\n[… 951424 bytes dropped]");
}

#[test]
fn denied_without_the_capability() {
    let dir = tempfile::tempdir().unwrap();
    let req = request(
        dir.path(),
        r#"  show("denied", core.exec("echo", { "hi" }))"#,
        vec![Capability::Network, Capability::Files],
        Duration::from_secs(5),
    );
    let outcome = runner().run(&req);
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    assert_eq!(
        error_of(&outcome, "denied"),
        "core.exec is not allowed for job x: add `allow: [exec]` to its entry in jobs.yaml"
    );
}
