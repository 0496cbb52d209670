//! Security of what jobtop keeps and shows: a secret in the service's environment never
//! reaches its log, its state database, `list`/`history` output or socket events, even with
//! `JOBTOP_LOG=debug` and jobs that try to read it (`core.env`, `os.getenv`, `core.exec("env")`).
//! And job paths that leave `jobs_dir` (`..`, absolute, a symlink out) are refused by `check`,
//! `serve` and a reload. (Other local users, viewers and operators: `tests/socket.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::faults::{Conn, stop, wait_ready};
use common::process::{BIN, Cli, Sandbox, Serve, has_line_column, runs, spawn, text};
use serde_json::{Value, json};

const CLI: Cli = Cli::new(Duration::from_secs(20));

const ALLOWED_VALUE: &str = "fine-to-see-42";

/// Reads the variable it may read, tries the one it may not, and looks for other ways in.
const READER_JOB: &str = r#"local job = core.job()
function job.run()
  core.log("allowed=" .. tostring(core.env("ALLOWED")))
  local v, err = core.env("JOBTOP_SECRET_TEST")
  core.log("secret=" .. tostring(v) .. " err=" .. tostring(err))
  core.log("os.getenv is " .. type(os.getenv))
  return job.OK
end
return job
"#;

/// Raises with whatever `core.env` gave it, so the error is stored as the last error.
const LEAKER_JOB: &str = r#"local job = core.job()
function job.run()
  local v, err = core.env("JOBTOP_SECRET_TEST")
  error("got " .. tostring(v) .. ": " .. tostring(err))
end
return job
"#;

/// Runs `env` (no shell): the child gets only PATH and what `opts.env` lists.
const EXEC_JOB: &str = r#"local job = core.job()
function job.run()
  local r, err = core.exec("env", {}, { env = { CHILD_VISIBLE = "yes" } })
  if not r then error("exec failed: " .. tostring(err)) end
  core.log("child env:\n" .. r.stdout)
  return job.OK
end
return job
"#;

const YAML: &str = "jobs:
  - name: reader
    path: reader.lua
    interval: 200ms
    env: [ALLOWED]
  - name: leaker
    path: leaker.lua
    interval: 200ms
    env: [ALLOWED]
  - name: exec-env
    path: exec_env.lua
    interval: 200ms
    allow: [exec]
    env: [ALLOWED]
";

/// A secret unique to this run.
fn secret() -> String {
    format!("s3cr3t-{}", uuid::Uuid::new_v4().simple())
}

/// `jobtop ARGS --config …` with the secret in its environment, as the operator's shell would
/// have it.
fn cli(sandbox: &Sandbox, secret: &str, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .arg("--config")
        .arg(sandbox.config())
        .current_dir(sandbox.path())
        .env("JOBTOP_SECRET_TEST", secret)
        .env("ALLOWED", ALLOWED_VALUE);
    common::process::run(command, &format!("jobtop {args:?}"), CLI.deadline)
}

/// `jobtop serve` with the secret in its environment and the debug log on.
fn serve_with_secret(sandbox: &Sandbox, secret: &str) -> Serve {
    let stderr_path = sandbox.path().join("serve-secret.err");
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .arg("--config")
        .arg(sandbox.config())
        .current_dir(sandbox.path())
        .env("JOBTOP_SECRET_TEST", secret)
        .env("ALLOWED", ALLOWED_VALUE)
        .env("JOBTOP_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr_path).unwrap());
    let serve = Serve {
        child: spawn(&mut command),
        stderr_path,
        socket: sandbox.socket(),
        started: Instant::now(),
        term_on_drop: true,
    };
    wait_ready(serve, Duration::from_secs(20))
}

fn assert_secret_absent(secret: &str, what: &str, haystack: &[u8]) {
    let found = haystack
        .windows(secret.len())
        .any(|w| w == secret.as_bytes());
    assert!(!found, "the secret appears in {what}");
}

#[test]
#[allow(clippy::too_many_lines)]
fn a_secret_in_the_environment_is_never_logged_stored_or_shown() {
    let secret = secret();
    let sandbox = Sandbox::with_cli(
        CLI,
        YAML,
        &[
            ("reader.lua", READER_JOB),
            ("leaker.lua", LEAKER_JOB),
            ("exec_env.lua", EXEC_JOB),
        ],
    );
    let mut serve = serve_with_secret(&sandbox, &secret);
    // A subscriber sees every event while the jobs run.
    let mut events = Conn::open(&sandbox.socket()).unwrap();
    let snapshot = events.call(&json!({"op": "subscribe"})).unwrap();
    let mut seen = snapshot.to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reader_runs = 0;
    while Instant::now() < deadline && reader_runs < 5 {
        if let Ok(Some(event)) = events.next_value(Duration::from_millis(100)) {
            if event["event"] == "finished" && event["name"] == "reader" {
                reader_runs += 1;
            }
            seen.push_str(&event.to_string());
        }
    }
    assert!(reader_runs >= 5, "reader did not run 5 times: {seen}");
    // The operator also triggers the failing job and asks for everything.
    cli(&sandbox, &secret, &["activate", "leaker"]);
    let out = cli(&sandbox, &secret, &["trigger", "leaker"]);
    let mut shown = Vec::new();
    shown.extend_from_slice(&out.stdout);
    shown.extend_from_slice(&out.stderr);
    // The events of the next second too (the trigger's run among them).
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if let Ok(Some(event)) = events.next_value(Duration::from_millis(100)) {
            seen.push_str(&event.to_string());
        }
    }
    drop(events);
    assert_secret_absent(&secret, "socket events", seen.as_bytes());

    let list_out = cli(&sandbox, &secret, &["list", "--json"]);
    assert_eq!(
        list_out.status.code(),
        Some(0),
        "{}",
        text(&list_out.stderr)
    );
    assert_secret_absent(&secret, "list --json", &list_out.stdout);
    let listed: Vec<Value> = serde_json::from_slice(&list_out.stdout).unwrap();
    let leaker = listed.iter().find(|j| j["name"] == "leaker").unwrap();
    let error = leaker["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("got nil: core.env cannot read JOBTOP_SECRET_TEST for job leaker"),
        "the denial is the stored error: {leaker:#}"
    );
    assert_eq!(leaker["status"], "deactivated", "{leaker:#}");

    // What the jobs saw: the allowed value, a denial, no os.getenv, a bare child environment.
    let history = |name: &str| {
        let out = cli(
            &sandbox,
            &secret,
            &["history", name, "--json", "--limit", "1000"],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_secret_absent(&secret, &format!("history {name} --json"), &out.stdout);
        let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        runs
    };
    let reader = history("reader");
    let logs: Vec<&str> = reader[0]["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(logs[0], format!("allowed={ALLOWED_VALUE}"), "{logs:?}");
    assert!(
        logs[1].starts_with("secret=nil err=core.env cannot read JOBTOP_SECRET_TEST"),
        "{logs:?}"
    );
    assert_eq!(logs[2], "os.getenv is nil", "{logs:?}");
    history("leaker");
    let exec = history("exec-env");
    let child = exec[0]["logs"][0].as_str().unwrap_or_default();
    assert!(
        child.contains("CHILD_VISIBLE=yes") && child.contains("PATH="),
        "the child ran and printed its environment: {exec:#?}"
    );
    assert!(
        !child.contains("ALLOWED=") && !child.contains("JOBTOP_SECRET_TEST"),
        "the child got jobtop's environment: {child}"
    );
    shown.extend_from_slice(&cli(&sandbox, &secret, &["list"]).stdout);
    shown.extend_from_slice(&cli(&sandbox, &secret, &["history", "leaker"]).stdout);
    assert_secret_absent(&secret, "the CLI's output", &shown);

    stop(&mut serve, Duration::from_secs(15));
    // Everything jobtop wrote: the log (debug level), the database and its WAL, the lock.
    let mut files = 0;
    for entry in fs::read_dir(sandbox.state_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_secret_absent(
                &secret,
                &path.display().to_string(),
                &fs::read(&path).unwrap(),
            );
            files += 1;
        }
    }
    assert!(
        files >= 3,
        "the state directory holds the log, the database and the lock"
    );
    let log = sandbox.service_log();
    assert!(
        log.contains("jobtop serve started") && log.contains("leaker"),
        "the log holds the service's story: {log}"
    );
    assert_secret_absent(&secret, "serve's stderr", serve.stderr().as_bytes());
}

// ---------------------------------------------------------------------------------------------
// Job paths that leave jobs_dir.

/// A sandbox with `outside/` beside `jobs/` (a job file there, and a directory), and symlinks
/// in `jobs/` leading to them.
fn escape_sandbox(yaml: &str) -> (Sandbox, tempfile::TempDir) {
    let outside = tempfile::tempdir().unwrap();
    let evil = "local job = core.job()\nfunction job.run() core.log(\"escaped\") return job.OK end\nreturn job\n";
    fs::write(outside.path().join("evil.lua"), evil).unwrap();
    fs::create_dir(outside.path().join("dir")).unwrap();
    fs::write(outside.path().join("dir").join("x.lua"), evil).unwrap();
    let sandbox = Sandbox::with_cli(CLI, yaml, &[("ok.lua", common::process::EXIT_JOB)]);
    let jobs = sandbox.path().join("jobs");
    symlink(outside.path().join("evil.lua"), jobs.join("link.lua")).unwrap();
    symlink(outside.path().join("dir"), jobs.join("out")).unwrap();
    fs::write(sandbox.path().join("up.lua"), evil).unwrap();
    (sandbox, outside)
}

const ESCAPES: [(&str, &str); 4] = [
    ("dotdot", "../up.lua"),
    ("absolute", "/etc/passwd"),
    ("link", "link.lua"),
    ("linkdir", "out/x.lua"),
];

fn escapes_yaml(with_good: bool) -> String {
    let mut yaml = String::from("jobs:\n");
    if with_good {
        yaml.push_str("  - name: good\n    path: ok.lua\n    interval: 1s\n");
    }
    for (name, path) in ESCAPES {
        writeln!(
            yaml,
            "  - name: {name}\n    path: {path}\n    interval: 200ms"
        )
        .unwrap();
    }
    yaml
}

/// Each escaping job is named with its line and column and the reason.
fn assert_every_escape_named(message: &str, what: &str) {
    assert!(has_line_column(message, "jobs.yaml"), "{what}: {message}");
    for (name, path) in ESCAPES {
        let line = message
            .lines()
            .find(|l| l.contains(&format!("job \"{name}\"")))
            .unwrap_or_else(|| panic!("{what}: job {name} ({path}) is not refused: {message}"));
        assert!(
            line.contains("outside jobs_dir")
                || line.contains("leaves jobs_dir")
                || line.contains("is absolute"),
            "{what}: {line}"
        );
    }
}

#[test]
fn job_paths_out_of_jobs_dir_are_refused_by_check_serve_and_reload() {
    let (sandbox, _outside) = escape_sandbox(&escapes_yaml(true));
    let out = sandbox.jobtop(&["check"]);
    assert_eq!(out.status.code(), Some(1), "check: {}", text(&out.stdout));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_every_escape_named(&said, "check");

    let out = sandbox.jobtop(&["serve"]);
    assert_ne!(out.status.code(), Some(0), "serve started");
    assert_every_escape_named(&text(&out.stderr), "serve");
    assert!(
        !sandbox.state_dir().join("state.db").exists(),
        "serve refused the file, yet created a database"
    );

    // A good configuration runs; a reload to the escaping one is refused and changes nothing.
    sandbox.write_config("jobs:\n  - name: good\n    path: ok.lua\n    interval: 1s\n");
    let mut serve = common::faults::serve_ready(&sandbox, Duration::from_secs(20));
    sandbox.wait_job("good", Duration::from_secs(10), |j| runs(j) >= 1);
    sandbox.write_config(&escapes_yaml(true));
    let out = sandbox.jobtop(&["reload"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "reload accepted: {}",
        text(&out.stdout)
    );
    assert_every_escape_named(&text(&out.stderr), "reload");
    let names: Vec<String> = sandbox
        .list()
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["good"], "only the old configuration runs");
    stop(&mut serve, Duration::from_secs(15));
    let log = sandbox.service_log();
    assert!(!log.contains("escaped"), "an escaping job ran: {log}");
    check_no_escaped_run(&sandbox.state_dir().join("state.db"));
}

fn check_no_escaped_run(db: &Path) {
    let conn = common::faults::open_db(db);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM runs WHERE job <> 'good'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 0, "runs of escaping jobs were recorded");
}
