//! `jobtop next` through the built binary: a job's next firings, computed by the scheduler's own
//! schedule code, across both daylight-saving transitions of three zones (Berlin, New York, and
//! Lord Howe's half-hour shift), as text and as JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::process::{Cli, Sandbox};

const OK_JOB: &str = "local job = core.job() function job.run() return job.OK end return job";

fn sandbox(jobs: &str) -> Sandbox {
    Sandbox::with_cli(
        Cli::new(Duration::from_secs(30)),
        &format!("jobs:\n{jobs}"),
        &[("ok.lua", OK_JOB)],
    )
}

fn next(sandbox: &Sandbox, args: &[&str]) -> Vec<String> {
    let mut all = vec!["next"];
    all.extend_from_slice(args);
    all.push("--json");
    serde_json::from_str(&sandbox.jobtop_ok(&all)).unwrap()
}

fn job(name: &str, schedule: &str, zone: &str) -> String {
    format!(
        "  - name: {name}\n    path: ok.lua\n    schedule: \"{schedule}\"\n    timezone: {zone}\n"
    )
}

#[test]
fn fixed_times_across_dst_run_once_and_gap_times_right_after_the_gap() {
    let jobs = [
        job("ny", "30 2 * * *", "America/New_York"),
        job("ny-fall", "30 1 * * *", "America/New_York"),
        job("berlin", "30 2 * * *", "Europe/Berlin"),
        job("howe", "15 2 * * *", "Australia/Lord_Howe"),
        job("howe-fall", "15 1 * * *", "Australia/Lord_Howe"),
    ]
    .concat();
    let s = sandbox(&jobs);
    let cases: [(&str, &str, [&str; 2]); 6] = [
        (
            "ny",
            "2024-03-09T12:00:00-05:00",
            [
                "2024-03-10T03:00:00.000-04:00",
                "2024-03-11T02:30:00.000-04:00",
            ],
        ),
        (
            "ny-fall",
            "2024-11-02T12:00:00-04:00",
            [
                "2024-11-03T01:30:00.000-04:00",
                "2024-11-04T01:30:00.000-05:00",
            ],
        ),
        (
            "berlin",
            "2024-03-30T12:00:00+01:00",
            [
                "2024-03-31T03:00:00.000+02:00",
                "2024-04-01T02:30:00.000+02:00",
            ],
        ),
        (
            "berlin",
            "2024-10-26T12:00:00+02:00",
            [
                "2024-10-27T02:30:00.000+02:00",
                "2024-10-28T02:30:00.000+01:00",
            ],
        ),
        (
            "howe",
            "2024-10-05T12:00:00+10:30",
            [
                "2024-10-06T02:30:00.000+11:00",
                "2024-10-07T02:15:00.000+11:00",
            ],
        ),
        (
            "howe-fall",
            "2024-04-06T12:00:00+11:00",
            [
                "2024-04-07T01:15:00.000+11:00",
                "2024-04-08T01:15:00.000+10:30",
            ],
        ),
    ];
    for (name, from, expected) in cases {
        assert_eq!(
            next(&s, &[name, "--from", from, "--count", "2"]),
            expected,
            "{name} from {from}"
        );
    }
}

#[test]
fn wildcard_hours_run_at_every_real_instant_of_a_repeated_hour() {
    let s = sandbox(
        &[
            job("ny", "*/30 * * * *", "America/New_York"),
            job("berlin", "0 * * * *", "Europe/Berlin"),
            job("howe", "*/20 1 * * *", "Australia/Lord_Howe"),
        ]
        .concat(),
    );
    assert_eq!(
        next(
            &s,
            &["ny", "--from", "2024-11-03T00:50:00-04:00", "--count", "4"]
        ),
        [
            "2024-11-03T01:00:00.000-04:00",
            "2024-11-03T01:30:00.000-04:00",
            "2024-11-03T01:00:00.000-05:00",
            "2024-11-03T01:30:00.000-05:00"
        ]
    );
    assert_eq!(
        next(
            &s,
            &["ny", "--from", "2024-03-10T01:10:00-05:00", "--count", "2"]
        ),
        [
            "2024-03-10T01:30:00.000-05:00",
            "2024-03-10T03:00:00.000-04:00"
        ]
    );
    assert_eq!(
        next(
            &s,
            &[
                "berlin",
                "--from",
                "2024-10-27T01:30:00+02:00",
                "--count",
                "3"
            ]
        ),
        [
            "2024-10-27T02:00:00.000+02:00",
            "2024-10-27T02:00:00.000+01:00",
            "2024-10-27T03:00:00.000+01:00"
        ]
    );
    assert_eq!(
        next(
            &s,
            &[
                "howe",
                "--from",
                "2024-04-07T01:10:00+11:00",
                "--count",
                "3"
            ]
        ),
        [
            "2024-04-07T01:20:00.000+11:00",
            "2024-04-07T01:40:00.000+11:00",
            "2024-04-07T01:40:00.000+10:30"
        ]
    );
}

#[test]
fn text_output_names_the_zone_and_defaults_to_five_firings_from_now() {
    let s = sandbox(
        &[
            job("daily", "0 2 * * *", "Europe/Berlin"),
            "  - name: tick\n    path: ok.lua\n    interval: 10s\n".to_string(),
        ]
        .concat(),
    );
    let text = s.jobtop_ok(&["next", "daily"]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("daily: 0 2 * * * (Europe/Berlin)"),
        "{text}"
    );
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[1].trim_start().contains("T02:00:00.000+0"), "{text}");
    // An interval job's slots: 10 s apart, the same on every call.
    let first = next(&s, &["tick", "--from", "2024-01-01T00:00:00Z"]);
    assert_eq!(first, next(&s, &["tick", "--from", "2024-01-01T00:00:00Z"]));
    assert_eq!(first.len(), 5);
}

#[test]
fn unknown_jobs_and_bad_times_are_errors() {
    let s = sandbox(&job("daily", "0 2 * * *", "UTC"));
    let out = s.jobtop(&["next", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no job named \"nope\"") && err.contains("expected one of daily"),
        "{err}"
    );
    let out = s.jobtop(&["next", "daily", "--from", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected an RFC 3339 time"));
}
