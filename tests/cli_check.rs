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
        "jobs.yaml: OK, 8 jobs, every job file compiles"
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
