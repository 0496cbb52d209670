use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// A `jobs.yaml` in a directory that does not exist, so no symlink check can touch the disk.
const FILE: &str = "/nonexistent/jobtop-config-test/jobs.yaml";

fn ok(text: &str) -> Config {
    match parse(Path::new(FILE), text) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(Path::new(FILE), text) {
        Ok(config) => panic!("expected problems, got {config:#?}"),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// Asserts that `text` has exactly one problem, at `line:column`, whose message contains `needle`.
fn rejects(text: &str, line: usize, column: usize, needle: &str) {
    let found = problems(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    let p = &found[0];
    assert_eq!((p.line, p.column), (line, column), "{p}");
    assert!(p.message.contains(needle), "{p}\n  lacks: {needle}");
    assert!(p.message.contains(": expected "), "{p}");
}

const JOB: &str = "jobs:\n  - name: a\n    path: a.lua\n    interval: 5s\n";

#[test]
fn defaults() {
    let config = ok("jobs: []\n");
    let base = Path::new("/nonexistent/jobtop-config-test");
    assert_eq!(config.file, Path::new(FILE));
    assert_eq!(config.base_dir, base);
    let service = &config.service;
    assert_eq!(service.jobs_dir, base.join("jobs"));
    assert_eq!(service.state_dir, base.join(".jobtop"));
    assert_eq!(service.timezone, None);
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    assert_eq!(service.workers, cpus);
    assert_eq!(service.defaults.timeout, Duration::from_secs(30));
    assert_eq!(service.defaults.memory, 64 << 20);
    assert_eq!(service.history.keep_runs, 200);
    assert_eq!(service.history.keep_days, 30);
    assert!(config.jobs.is_empty());

    let job = &ok(JOB).jobs[0];
    assert_eq!(job.name, "a");
    assert_eq!(job.path, "a.lua");
    assert_eq!(job.file, base.join("jobs/a.lua"));
    assert_eq!(job.schedule.interval().unwrap(), Duration::from_secs(5));
    assert!(job.active);
    assert!(!job.run_once);
    assert_eq!(job.timeout, Duration::from_secs(30));
    assert_eq!(job.memory, 64 << 20);
    assert!(job.allow.is_empty() && job.files.is_empty() && job.env.is_empty());
    assert_eq!(job.source.line, 2);
    assert_eq!(&*job.source.text, "name: a\npath: a.lua\ninterval: 5s");
}

#[test]
fn service_defaults_apply_to_jobs() {
    let text = format!("service:\n  defaults: {{timeout: 2m, memory: 1000}}\n{JOB}");
    let job = &ok(&text).jobs[0];
    assert_eq!(job.timeout, Duration::from_secs(120));
    assert_eq!(job.memory, 1000);
}

#[test]
fn accepted_forms() {
    let config = ok(r#"
service:
  jobs_dir: /srv/jobtop/jobs   # absolute stays as it is
  state_dir: "state"
  timezone: UTC
  workers: 1
  defaults:
  history: {keep_runs: 1, keep_days: 4294967295}
jobs:
  - name: 2024                 # a number is a name as written
    path: 'dir/x.lua'
    interval: 90               # integer seconds
    memory: 64 MiB
    timeout: 1d
    allow:                     # empty means none
    files: []
    env: [_X, API_TOKEN2]
  - {name: b, path: b.lua, interval: 500ms, memory: 2048, active: false, run_once: true,
     allow: &caps [exec, network, exec]}
  - name: c
    path: c.lua
    interval: !!str 30
    allow: *caps
    files:
      - /var/log
"#);
    let base = Path::new("/nonexistent/jobtop-config-test");
    assert_eq!(config.service.jobs_dir, Path::new("/srv/jobtop/jobs"));
    assert_eq!(config.service.state_dir, base.join("state"));
    assert_eq!(config.service.timezone, Some(chrono_tz::UTC));
    assert_eq!(config.service.workers, 1);
    assert_eq!(config.service.defaults, JobDefaults::default());
    assert_eq!(config.service.history.keep_days, u32::MAX);
    let [a, b, c] = &config.jobs[..] else {
        panic!("{:#?}", config.jobs)
    };
    assert_eq!(a.name, "2024");
    assert_eq!(a.file, Path::new("/srv/jobtop/jobs/dir/x.lua"));
    assert_eq!(a.schedule.interval().unwrap(), Duration::from_secs(90));
    assert_eq!(a.memory, 64 << 20);
    assert_eq!(a.timeout, Duration::from_secs(86_400));
    assert_eq!(a.env, ["_X", "API_TOKEN2"]);
    assert_eq!(b.schedule.interval().unwrap(), Duration::from_millis(500));
    assert_eq!(b.memory, 2048);
    assert!(!b.active && b.run_once);
    assert_eq!(b.allow, [Capability::Exec, Capability::Network]);
    assert_eq!(b.source.line, 18);
    assert!(b.source.text.starts_with("{name: b,") && b.source.text.ends_with("exec]}"));
    assert_eq!(c.schedule.interval().unwrap(), Duration::from_secs(30));
    assert_eq!(c.allow, b.allow);
    assert_eq!(c.files, [PathBuf::from("/var/log")]);
    assert_eq!(c.source.text.lines().last(), Some("  - /var/log"));

    // Keys with no value are unset; so is an empty `service:`; `jobs:` alone is an empty list.
    assert!(ok("service:\njobs:\n").jobs.is_empty());
    assert_eq!(ok("---\njobs: []\n...\n").jobs.len(), 0);
}

#[test]
fn good_config() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/good.yaml");
    let config = load(&file).unwrap();
    let dir = file.parent().unwrap();
    assert_eq!(config.base_dir, dir);
    assert_eq!(config.service.jobs_dir, dir.join("jobs"));
    assert_eq!(config.service.state_dir, dir.join("state"));
    assert_eq!(config.service.timezone, Some(chrono_tz::Europe::Berlin));
    assert_eq!(config.service.workers, 3);
    assert_eq!(config.service.defaults.timeout, Duration::from_secs(45));
    assert_eq!(config.service.defaults.memory, 32 << 20);
    assert_eq!(config.service.history.keep_runs, 50);
    assert_eq!(config.service.history.keep_days, 7);
    let names: Vec<_> = config.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["nightly-report", "hello.v2", "once"]);
    let report = &config.jobs[0];
    assert_eq!(report.file, dir.join("jobs/reports/nightly.lua"));
    assert!(report.file.exists());
    assert_eq!(
        report.schedule.interval().unwrap(),
        Duration::from_secs(3600)
    );
    assert_eq!(report.timeout, Duration::from_secs(10));
    assert_eq!(report.memory, 16 << 20);
    assert_eq!(report.allow, Capability::ALL[..3]);
    assert_eq!(report.files, [PathBuf::from("/var/log/myapp")]);
    assert_eq!(report.env, ["API_TOKEN"]);
    assert_eq!(report.source.line, 14);
    let hello = &config.jobs[1];
    assert_eq!(
        (hello.schedule.interval().unwrap(), hello.memory),
        (Duration::from_secs(90), 1 << 20)
    );
    assert_eq!(hello.timeout, Duration::from_secs(45));
    assert!(!hello.active);
    assert!(hello.source.text.contains("interval: 90        # seconds"));
    let once = &config.jobs[2];
    assert!(once.run_once && !once.file.exists());
}

#[test]
fn shipped_jobs_yaml_is_valid() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs.yaml");
    let config = load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert!(!config.jobs.is_empty());
    assert!(
        config.jobs.iter().all(|job| job.file.exists()),
        "{config:#?}"
    );
}

#[test]
fn same_definition_ignores_position_and_text() {
    let first = ok(JOB).jobs.remove(0);
    let moved = ok(&format!("\n\n{}", JOB.replace("5s", "5")))
        .jobs
        .remove(0);
    assert_ne!(first.source.line, moved.source.line);
    assert!(first.same_definition(&moved));
    let changed = ok(&JOB.replace("5s", "6s")).jobs.remove(0);
    assert!(!first.same_definition(&changed));
}

#[test]
fn messages_name_the_file_line_and_column() {
    let text = "jobs:\n  - name: x\n    path: a.lua\n    interval: 5s\n    intervall: 5s\n";
    let err = parse(Path::new("jobs.yaml"), text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "jobs.yaml:5:5: unknown key \"intervall\" in job \"x\" (did you mean \"interval\"?): \
         expected one of name, path, interval, schedule, timezone, catch_up, retries, retry_delay, active, run_once, timeout, memory, allow, files, env, databases, notify"
    );
    let err = load(Path::new("/nonexistent/jobtop/jobs.yaml")).unwrap_err();
    assert!(matches!(err, ConfigError::Unreadable { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/jobtop/jobs.yaml: cannot read")
    );
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let text = "\
jobs:
  - name: a
    path: /a.lua
    interval: 0
    bogus: 1
  - 7
  - name: a
    path: a.lua
    interval: 1s
service: {workers: 0, nope: 1}
";
    let found: Vec<_> = problems(text)
        .iter()
        .map(|p| {
            (
                p.line,
                p.column,
                p.message.split(' ').next().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected = [
        (3, 11, "path"),
        (4, 15, "interval"),
        (5, 5, "unknown"),
        (6, 5, "job"),
        (7, 11, "duplicate"),
        (10, 20, "workers"),
        (10, 23, "unknown"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|&(l, c, w)| (l, c, w.to_string()))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn document_rejections_with_positions() {
    let cases = [
        ("", 1, 1, "the file is empty"),
        ("# nothing\n", 1, 1, "expected a mapping with a `jobs` list"),
        ("~\n", 1, 1, "the top level is empty (null)"),
        ("jobs\n", 1, 1, "the top level is the string \"jobs\""),
        ("jobs: [\n", 2, 1, "invalid YAML"),
        ("jobs:\n\t- a\n", 2, 2, "invalid YAML"),
        ("jobs: 3\n", 1, 7, "jobs at the top level is the number 3"),
        (
            "jobs: []\n? [a]\n: b\n",
            2,
            3,
            "a key at the top level is a list",
        ),
        (
            "service: []\njobs: []\n",
            1,
            10,
            "service at the top level is a list",
        ),
        (
            "service: {defaults: 5}\njobs: []\n",
            1,
            21,
            "defaults in service is the number 5",
        ),
        (
            "service:\n  jobs_dir: ''\njobs: []\n",
            2,
            13,
            "jobs_dir in service is empty",
        ),
        (
            "service:\n  workers: -2\njobs: []\n",
            2,
            12,
            "workers in service is -2",
        ),
        (
            "service:\n  timezone: 5\njobs: []\n",
            2,
            13,
            "unknown time zone \"5\"",
        ),
        (
            "jobs: []\nservice:\n  <<: {workers: 2}\n",
            3,
            3,
            "merge key \"<<\" in service",
        ),
        (
            "service:\n  history: {keep_runs: 4294967296}\njobs: []\n",
            2,
            24,
            "too large: expected a whole number of runs",
        ),
    ];
    for (text, line, column, needle) in cases {
        rejects(text, line, column, needle);
    }
}

#[test]
fn job_field_rejections_with_positions() {
    let added = |line: &str| format!("{JOB}    {line}\n");
    let cases = [
        (
            "jobs:\n  - name:\n    path: a\n    interval: 1\n".to_string(),
            2,
            5,
            "name in job #1 has no value",
        ),
        (
            JOB.replace("5s", "1.0.0"),
            4,
            15,
            "invalid duration \"1.0.0\"",
        ),
        (JOB.replace("5s", "99999999999"), 4, 15, "is too long"),
        (JOB.replace("5s", "true"), 4, 15, "is the boolean true"),
        (added("memory: 1.5GiB"), 5, 13, "invalid size \"1.5GiB\""),
        (added("memory: -1"), 5, 13, "negative"),
        (added("memory: 99999999999GiB"), 5, 13, "too large"),
        (
            added("allow: [[x]]"),
            5,
            13,
            "a capability in allow in job \"a\" is a list",
        ),
        (
            added("files: ~/logs"),
            5,
            12,
            "files in job \"a\" is the string",
        ),
        (added("files: [logs/]"), 5, 13, "is not absolute"),
        (
            added("env: [\"\"]"),
            5,
            11,
            "invalid environment variable name \"\"",
        ),
        (
            added("active: yes"),
            5,
            13,
            "active in job \"a\" is the string \"yes\"",
        ),
    ];
    for (text, line, column, needle) in cases {
        rejects(&text, line, column, needle);
    }
}

#[cfg(unix)]
#[test]
fn symlink_out_of_jobs_dir_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let jobs = tmp.path().join("jobs");
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(&jobs).unwrap();
    std::fs::write(outside.path().join("evil.lua"), "return nil").unwrap();
    std::os::unix::fs::symlink(outside.path().join("evil.lua"), jobs.join("evil.lua")).unwrap();
    std::os::unix::fs::symlink(outside.path(), jobs.join("elsewhere")).unwrap();
    std::fs::write(jobs.join("fine.lua"), "").unwrap();
    std::os::unix::fs::symlink(jobs.join("fine.lua"), jobs.join("alias.lua")).unwrap();
    let text = "jobs:
  - {name: evil, path: evil.lua, interval: 1}
  - {name: dir, path: elsewhere/new.lua, interval: 1}
  - {name: fine, path: alias.lua, interval: 1}
  - {name: missing, path: not/there.lua, interval: 1}
";
    let file = tmp.path().join("jobs.yaml");
    std::fs::write(&file, text).unwrap();
    let Err(ConfigError::Invalid { problems, .. }) = load(&file) else {
        panic!("symlinks out of jobs_dir were accepted");
    };
    let at: Vec<_> = problems.iter().map(|p| (p.line, p.column)).collect();
    assert_eq!(at, [(2, 24), (3, 23)], "{problems:#?}");
    assert!(
        problems[0]
            .message
            .contains("resolves through a symlink to")
    );
    assert!(problems[0].message.contains("outside jobs_dir"));

    std::fs::remove_file(jobs.join("evil.lua")).unwrap();
    std::fs::remove_file(jobs.join("elsewhere")).unwrap();
    let config = load(&file).unwrap();
    assert_eq!(config.jobs.len(), 4);
}

/// One parsed `# expect: <line>:<col>: <substring>` line.
fn expectations(text: &str) -> Vec<(usize, usize, String)> {
    text.lines()
        .map_while(|line| line.strip_prefix("# expect: "))
        .map(|rest| {
            let mut parts = rest.splitn(3, ':');
            let line = parts.next().unwrap().trim().parse().unwrap();
            let column = parts.next().unwrap().trim().parse().unwrap();
            (line, column, parts.next().unwrap().trim().to_string())
        })
        .collect()
}

#[test]
fn broken_configs_report_exactly_what_they_expect() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("good.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "only {} broken configs", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expected = expectations(&text);
        let name = file.file_name().unwrap().to_string_lossy();
        if expected.is_empty() {
            failures.push(format!("{name}: no `# expect:` line"));
            continue;
        }
        let found = match parse(file, &text) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => {
                failures.push(format!("{name}: expected problems, got {other:?}"));
                continue;
            }
        };
        for (line, column, needle) in &expected {
            let hit = found
                .iter()
                .any(|p| (p.line, p.column) == (*line, *column) && p.message.contains(needle));
            if !hit {
                failures.push(format!("{name}: no problem {line}:{column}: {needle}"));
            }
        }
        for p in &found {
            let wanted = expected
                .iter()
                .any(|(l, c, n)| (p.line, p.column) == (*l, *c) && p.message.contains(n));
            if !wanted {
                failures.push(format!("{name}: unexpected problem {p}"));
            }
            if !p.message.contains(": expected ") {
                failures.push(format!("{name}: message says nothing expected: {p}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn spread_is_accepted_with_a_deprecation_warning() {
    assert!(ok("jobs: []\n").warnings.is_empty());
    let config = ok("service:\n  spread: 500ms\njobs: []\n");
    let [warning] = &config.warnings[..] else {
        panic!("{:?}", config.warnings)
    };
    assert_eq!((warning.line, warning.column), (2, 11));
    assert!(
        warning
            .message
            .contains("spread in service is deprecated and ignored"),
        "{warning}"
    );
}

#[test]
fn databases_are_resolved_for_the_jobs_that_name_them() {
    let text = "service:\n  databases:\n    reports: {url: \"postgres://jobs@db1/reports?sslmode=require\", password_env: HOME}\n    local: {url: \"sqlite:data/app.db?mode=ro\", max_rows: 10, max_result: 1MiB}\njobs:\n  - name: a\n    path: a.lua\n    interval: 5s\n    allow: [db]\n    databases: [local, reports, local]\n  - name: b\n    path: b.lua\n    interval: 5s\n    databases: [reports]\n";
    let config = ok(text);
    let names: Vec<&str> = config
        .service
        .databases
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["reports", "local"]);
    let a = &config.jobs[0];
    let used: Vec<&str> = a.databases.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(used, ["local", "reports"]);
    let reports = &a.databases[1];
    let DatabaseTarget::Postgres(server) = &reports.target else {
        panic!("{reports:?}")
    };
    let home = std::env::var("HOME").unwrap();
    assert_eq!(
        server.password.as_ref().map(Secret::expose),
        Some(home.as_str())
    );
    assert!(server.tls);
    assert!(
        !format!("{config:?}").contains(&format!("\"{home}\"")),
        "the password shows in Debug"
    );
    assert_eq!(
        reports.shown,
        "postgres://jobs@db1:5432/reports?sslmode=require"
    );
    let local = &a.databases[0];
    assert_eq!((local.max_rows, local.max_bytes), (10, 1 << 20));
    assert_eq!(
        local.target,
        DatabaseTarget::Sqlite(SqliteFile {
            path: Path::new(FILE).parent().unwrap().join("data/app.db"),
            mode: SqliteMode::ReadOnly
        })
    );
    // Listed without allow: [db]: a warning, not a problem.
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.line == 14 && w.message.contains("allow has no db")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn unset_database_variables_are_problems_unless_secrets_are_optional() {
    let text = "service:\n  databases:\n    reports: {url_env: JOBTOP_SURELY_UNSET_URL}\n    app: {url: \"mysql://app@db1/app\", password_env: JOBTOP_SURELY_UNSET_PW}\njobs:\n  - name: a\n    path: a.lua\n    interval: 5s\n    allow: [db]\n    databases: [reports, app]\n";
    let found = problems(text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0]
            .message
            .contains("names JOBTOP_SURELY_UNSET_URL, which is not set"),
        "{}",
        found[0]
    );
    assert!(
        found[1]
            .message
            .contains("names JOBTOP_SURELY_UNSET_PW, which is not set"),
        "{}",
        found[1]
    );
    let config = parse_with(Path::new(FILE), text, Secrets::Optional).unwrap();
    let used: Vec<&str> = config.jobs[0]
        .databases
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(used, ["app"], "the database without its URL is left out");
}
