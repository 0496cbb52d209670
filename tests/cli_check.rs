//! `jobtop check` end to end: the shipped configuration, broken ones, broken job files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn jobtop(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jobtop"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn shipped_configuration_is_sound() {
    let out = jobtop(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), &["check"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        text.trim(),
        "jobs.yaml: OK, 9 jobs, every job file compiles"
    );
}

#[test]
fn lists_every_problem_including_job_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("jobs")).unwrap();
    std::fs::write(
        dir.path().join("jobs/broken.lua"),
        "local job = core.job()\nfunction job.run()\n  return job.OK\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("jobs/fine.lua"),
        "local job = core.job() function job.run() return job.OK end return job",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("jobs.yaml"),
        "jobs:\n  - name: fine\n    path: fine.lua\n    interval: 1s\n  - name: broken\n    path: broken.lua\n    interval: 1s\n  - name: gone\n    path: gone.lua\n    interval: 1s\n",
    )
    .unwrap();
    let out = jobtop(dir.path(), &["check"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("jobs.yaml:5: job \"broken\": syntax error in jobs/broken.lua:4:"),
        "{text}"
    );
    assert_eq!(
        lines[1],
        "jobs.yaml:8: job \"gone\": job file not found: jobs/gone.lua"
    );

    std::fs::write(
        dir.path().join("jobs.yaml"),
        "jobs:\n  - name: a\n    path: fine.lua\n    interval: 0\n  - name: a\n    path: /etc/passwd\n    interval: 1s\n",
    )
    .unwrap();
    let out = jobtop(dir.path(), &["check"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("jobs.yaml:4:15:"), "{text}");
    assert!(text.contains("jobs.yaml:5:11: duplicate"), "{text}");
}

#[test]
fn unreadable_configuration_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = jobtop(dir.path(), &["check", "--config", "missing.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("missing.yaml: cannot read the file"),
        "{text}"
    );
}

#[test]
fn deprecated_spread_is_a_warning_not_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("jobs")).unwrap();
    std::fs::write(
        dir.path().join("jobs.yaml"),
        "service:\n  spread: 1s\njobs: []\n",
    )
    .unwrap();
    let out = jobtop(dir.path(), &["check"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("jobs.yaml:2:11: warning: spread in service is deprecated and ignored"),
        "{text}"
    );
}

#[test]
fn database_problems_are_reported_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("jobs")).unwrap();
    std::fs::write(
        dir.path().join("jobs/a.lua"),
        "local job = core.job() function job.run() return job.OK end return job",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("jobs.yaml"),
        "service:\n  databases:\n    leaky: {url: \"mysql://jobs:s3cr3t-pw@db1/app\"}\n    app: {url: \"postgres://jobs@db1/app\", password_env: JOBTOP_CHECK_UNSET_PW}\njobs:\n  - name: a\n    path: a.lua\n    interval: 5s\n    allow: [db]\n    databases: [app, leaky, gone]\n",
    )
    .unwrap();
    let out = jobtop(dir.path(), &["check"]);
    let text = String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap();
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("jobs.yaml:3:18: url in database \"leaky\" has a password in it"),
        "{text}"
    );
    assert!(
        text.contains("expected mysql://jobs@db1:3306/app with the password"),
        "{text}"
    );
    assert!(text.contains("jobs.yaml:4:57: password_env in database \"app\" names JOBTOP_CHECK_UNSET_PW, which is not set"), "{text}");
    assert!(
        text.contains(
            "jobs.yaml:10:29: unknown database \"gone\" in job \"a\": expected one of leaky, app"
        ),
        "{text}"
    );
    assert!(!text.contains("s3cr3t"), "{text}");
    // With the variable set (and the password out of the URL), the file is fine.
    let fixed = std::fs::read_to_string(dir.path().join("jobs.yaml"))
        .unwrap()
        .replace("jobs:s3cr3t-pw@", "jobs@")
        .replace(", gone]", "]");
    std::fs::write(dir.path().join("jobs.yaml"), fixed).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jobtop"))
        .arg("check")
        .current_dir(dir.path())
        .env("JOBTOP_CHECK_UNSET_PW", "x")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
}
