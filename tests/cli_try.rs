//! `jobtop try` end to end: the built binary, real job files, output, JSON and exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn jobtop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jobtop"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

#[test]
fn shipped_example_prints_the_spec_json_shape() {
    let out = jobtop(&[
        "try",
        "jobs/friday_report.lua",
        "--at",
        "2023-10-12T01:02:03Z",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["result"], "ok");
    assert_eq!(v["logs"], serde_json::json!([]), "Thursday: no work");
    assert_eq!(v["error"], serde_json::Value::Null);
    assert!(v["duration_ms"].as_f64().unwrap() >= 0.0);

    let out = jobtop(&[
        "try",
        "jobs/friday_report.lua",
        "--at",
        "2023-10-13T01:30:00Z",
        "--json",
    ]);
    assert_eq!(json(&out)["logs"], serde_json::json!(["Do some work"]));
}

#[test]
fn every_shipped_job_runs() {
    let expected = [
        ("heartbeat.lua", "ok"),
        ("friday_report.lua", "ok"),
        ("maintenance_window.lua", "exit"),
        ("migrate_once.lua", "cancel"),
    ];
    for (file, result) in expected {
        let path = format!("jobs/{file}");
        let out = jobtop(&["try", &path, "--json", "--at", "2023-10-12T01:02:03Z"]);
        assert_eq!(json(&out)["result"], result, "{file}");
        assert_eq!(out.status.code(), Some(0), "{file}");
    }
    // flaky-api fails in odd minutes, works in even ones
    let out = jobtop(&[
        "try",
        "jobs/flaky_api.lua",
        "--json",
        "--at",
        "2023-10-12T01:03:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["result"], "error");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.starts_with("jobs/flaky_api.lua:9: upstream API answered 503"),
        "{error}"
    );
    let out = jobtop(&[
        "try",
        "jobs/flaky_api.lua",
        "--json",
        "--at",
        "2023-10-12T01:04:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn human_output_shows_logs_and_result() {
    let out = jobtop(&[
        "try",
        "jobs/heartbeat.lua",
        "--at",
        "2023-10-12T01:02:03Z",
        "--tz",
        "Asia/Tokyo",
    ]);
    let text = stdout(&out);
    assert!(text.starts_with("jobs/heartbeat.lua  at 2023-10-12T01:02:03Z (local: 2023-10-12 10:02:03 JST, Asia/Tokyo)"), "{text}");
    assert!(
        text.contains("  │ alive at 01:02 UTC (Thur, week 41)\n"),
        "{text}"
    );
    assert!(text.contains("✔ ok in "), "{text}");

    let out = jobtop(&["try", "tests/fixtures/error.lua"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("✘ error in "), "{text}");
    assert!(
        text.contains("  tests/fixtures/error.lua:4: disk is full"),
        "{text}"
    );
}

#[test]
fn failing_results_exit_1() {
    let cases = [
        ("tests/fixtures/return_nil.lua", "invalid", vec![]),
        ("tests/fixtures/error.lua", "error", vec![]),
        ("tests/fixtures/syntax.lua", "syntax", vec![]),
        ("tests/fixtures/nope.lua", "missing", vec![]),
        (
            "tests/fixtures/runaway/infinite_loop.lua",
            "timeout",
            vec!["--timeout", "200ms"],
        ),
        (
            "tests/fixtures/runaway/table_bomb.lua",
            "memory",
            vec!["--memory", "8MiB"],
        ),
    ];
    for (file, result, extra) in cases {
        let mut args = vec!["try", file, "--json"];
        args.extend(extra);
        let out = jobtop(&args);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let v = json(&out);
        assert_eq!(v["result"], result, "{file}");
        assert!(v["error"].is_string(), "{file}");
    }
    let out = jobtop(&[
        "try",
        "tests/fixtures/runaway/table_bomb.lua",
        "--memory",
        "8MiB",
        "--json",
    ]);
    assert_eq!(json(&out)["error"], "memory limit 8 MiB exceeded");
    let out = jobtop(&["try", "tests/fixtures/nope.lua", "--json"]);
    assert_eq!(
        json(&out)["error"],
        "job file not found: tests/fixtures/nope.lua"
    );
}

#[test]
fn non_failing_results_exit_0() {
    for (file, result) in [
        ("exit.lua", "exit"),
        ("cancel.lua", "cancel"),
        ("sleep.lua", "sleep"),
    ] {
        let path = format!("tests/fixtures/{file}");
        let out = jobtop(&["try", &path, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{file}");
        assert_eq!(json(&out)["result"], result);
    }
}

#[test]
fn bad_usage_exits_2_and_says_what_is_expected() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["try", "jobs/heartbeat.lua", "--at", "yesterday"],
            "expected an RFC 3339 time",
        ),
        (
            &["try", "jobs/heartbeat.lua", "--tz", "Mars/Olympus"],
            "unknown time zone \"Mars/Olympus\": expected an IANA name",
        ),
        (
            &["try", "jobs/heartbeat.lua", "--timeout", "soon"],
            "expected whole seconds or a number with a unit",
        ),
        (
            &["try", "jobs/heartbeat.lua", "--timeout", "0s"],
            "expected a positive duration",
        ),
        (
            &["try", "jobs/heartbeat.lua", "--memory", "lots"],
            "expected bytes or a number with a unit",
        ),
        (
            &["try", "jobs/heartbeat.lua", "--frobnicate"],
            "unexpected argument '--frobnicate'",
        ),
    ];
    for (args, message) in cases {
        let out = jobtop(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(Path::new(env!("CARGO_BIN_EXE_jobtop")).exists());
}
