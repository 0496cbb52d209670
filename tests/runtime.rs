//! The job runtime on real job files from `tests/fixtures/` (docs/job-files.md, docs/helpers.md, docs/core-api.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::runner::{at, runner};
use jobtop::job::RunResult;
use jobtop::runtime::{JobGrants, JobRunner, LocalZone, RunOutcome, RunRequest, ScriptCache};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A run of `tests/fixtures/NAME`, called `jobs/NAME`.
fn request(name: &str) -> RunRequest {
    common::runner::request(fixture(name), format!("jobs/{name}"), JobGrants::default())
}

fn run(name: &str) -> RunOutcome {
    runner().run(&request(name))
}

#[test]
fn returns_map_to_results() {
    let table = [
        ("ok.lua", RunResult::Ok),
        ("done.lua", RunResult::Ok),
        ("true.lua", RunResult::Ok),
        ("exit.lua", RunResult::Exit),
        ("false.lua", RunResult::Exit),
        ("stop.lua", RunResult::Exit),
        ("cancel.lua", RunResult::Cancel),
        ("sleep.lua", RunResult::Sleep),
    ];
    let mut runner = runner();
    for (file, expected) in table {
        let outcome = runner.run(&request(file));
        assert_eq!(outcome.result, expected, "{file}: {outcome:?}");
        assert_eq!(outcome.error, None, "{file}");
    }
}

#[test]
fn anything_else_is_invalid() {
    let table = [
        ("return_nil.lua", "invalid return value nil"),
        ("return_string.lua", "invalid return value string \"ok\""),
        ("return_number.lua", "invalid return value number 42"),
        ("return_table.lua", "invalid return value table"),
    ];
    for (file, expected) in table {
        let outcome = run(file);
        assert_eq!(outcome.result, RunResult::Invalid, "{file}");
        let error = outcome.error.unwrap();
        assert_eq!(
            error,
            format!("{expected}: expected job.OK, job.EXIT, job.CANCEL, true or false")
        );
    }
}

#[test]
fn errors_name_file_line_and_traceback() {
    let outcome = run("error.lua");
    assert_eq!(outcome.result, RunResult::Error);
    let error = outcome.error.unwrap();
    assert!(
        error.starts_with("jobs/error.lua:4: disk is full"),
        "{error}"
    );
    assert!(error.contains("stack traceback:"), "{error}");
    assert!(!error.contains("[C]: in ?"), "{error}");
    assert!(error.contains("jobs/error.lua:8"), "caller line: {error}");

    let outcome = run("runtime_error.lua");
    assert_eq!(outcome.result, RunResult::Error);
    let error = outcome.error.unwrap();
    assert!(error.starts_with("jobs/runtime_error.lua:4:"), "{error}");
}

#[test]
fn missing_and_syntax() {
    let outcome = run("does_not_exist.lua");
    assert_eq!(outcome.result, RunResult::Missing);
    assert_eq!(
        outcome.error.as_deref(),
        Some("job file not found: jobs/does_not_exist.lua")
    );

    let outcome = run("syntax.lua");
    assert_eq!(outcome.result, RunResult::Syntax);
    let error = outcome.error.unwrap();
    assert!(
        error.starts_with("syntax error in jobs/syntax.lua:7: Expected"),
        "{error}"
    );
    assert!(error.contains("Expected 'end'"), "{error}");
}

#[test]
fn not_a_job() {
    let outcome = run("no_return.lua");
    assert_eq!(outcome.result, RunResult::Error);
    assert_eq!(
        outcome.error.as_deref(),
        Some(
            "jobs/no_return.lua returned nil instead of a job table: expected the file to create one with `local job = core.job()` and end with `return job`"
        )
    );
    for file in ["no_run.lua", "run_not_function.lua"] {
        let outcome = run(file);
        assert_eq!(outcome.result, RunResult::Error);
        let error = outcome.error.unwrap();
        assert!(error.contains("job.run is"), "{error}");
        assert!(error.contains("expected a function"), "{error}");
    }
}

#[test]
fn logs_are_captured() {
    let outcome = run("logs.lua");
    assert_eq!(outcome.result, RunResult::Ok);
    assert_eq!(
        outcome.logs,
        ["hello\t1\ttrue\tnil", "from print\t2.5", "job.OK"]
    );
}

#[test]
fn log_lines_stream_to_the_sink() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink_seen = seen.clone();
    let mut req = request("logs.lua");
    req.log_sink = Some(Arc::new(move |line: &str| {
        sink_seen.lock().unwrap().push(line.to_string());
    }));
    let outcome = runner().run(&req);
    assert_eq!(*seen.lock().unwrap(), outcome.logs);
}

fn helper_lines(scheduled: &str, zone: LocalZone) -> Vec<String> {
    let mut req = request("helpers.lua");
    req.scheduled = at(scheduled);
    req.zone = zone;
    let outcome = runner().run(&req);
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    outcome.logs
}

#[test]
fn helpers_spec_table() {
    let utc = LocalZone::Named(chrono_tz::UTC);
    let lines = helper_lines("2023-10-12T01:02:03Z", utc);
    assert_eq!(lines[0], "2\t1\tThur\t4\t12\t41\tOct\t10");
    assert_eq!(lines[1], lines[0]);
    // colon calls ignore the job table; a non-false argument selects local time
    assert_eq!(lines[2], "1\t1\t1\t1");
}

#[test]
fn helpers_extra_dates() {
    let utc = LocalZone::Named(chrono_tz::UTC);
    let day_and_week = |t: &str| {
        let line = helper_lines(t, utc)[0].clone();
        let f: Vec<_> = line.split('\t').map(str::to_string).collect();
        (f[2].clone(), f[3].clone(), f[5].clone())
    };
    assert_eq!(
        day_and_week("2024-12-30T10:00:00Z"),
        ("Mon".into(), "1".into(), "53".into())
    );
    assert_eq!(
        day_and_week("2021-01-01T10:00:00Z"),
        ("Fri".into(), "5".into(), "0".into())
    );
    assert_eq!(
        day_and_week("2021-01-04T10:00:00Z"),
        ("Mon".into(), "1".into(), "1".into())
    );
    assert_eq!(
        day_and_week("2017-01-01T10:00:00Z"),
        ("Sun".into(), "7".into(), "0".into())
    );
}

#[test]
fn helpers_local_time_with_dst() {
    let berlin = LocalZone::Named(chrono_tz::Europe::Berlin);
    // Summer: UTC+2. 2023-10-12 01:02 UTC is 03:02 in Berlin.
    let lines = helper_lines("2023-10-12T01:02:03Z", berlin);
    assert_eq!(lines[1], "2\t3\tThur\t4\t12\t41\tOct\t10");
    // Either side of the end of DST (2023-10-29 01:00 UTC): 02:30 CEST then 02:30 CET.
    let before = helper_lines("2023-10-29T00:30:00Z", berlin);
    assert_eq!(before[1], "30\t2\tSun\t7\t29\t43\tOct\t10");
    let after = helper_lines("2023-10-29T01:30:00Z", berlin);
    assert_eq!(after[1], "30\t2\tSun\t7\t29\t43\tOct\t10");
    // Either side of the start of DST (2024-03-31 01:00 UTC): 01:59 CET, then 03:00 CEST.
    let before = helper_lines("2024-03-31T00:59:00Z", berlin);
    assert_eq!(before[1], "59\t1\tSun\t7\t31\t13\tMar\t3");
    let after = helper_lines("2024-03-31T01:00:00Z", berlin);
    assert_eq!(after[1], "0\t3\tSun\t7\t31\t13\tMar\t3");

    // A zone far enough west to change the day, month and year: New York on New Year's Eve.
    let new_york = LocalZone::Named(chrono_tz::America::New_York);
    let lines = helper_lines("2021-01-01T03:00:00Z", new_york);
    assert_eq!(lines[0], "0\t3\tFri\t5\t1\t0\tJan\t1");
    assert_eq!(lines[1], "0\t22\tThur\t4\t31\t52\tDec\t12");
}

#[test]
fn globals_do_not_leak_between_runs() {
    let mut runner = runner();
    for _ in 0..3 {
        let outcome = runner.run(&request("globals.lua"));
        assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
        assert_eq!(
            outcome.logs,
            [
                "seen before: nil",
                "string writable: false",
                "_G writable: false"
            ]
        );
    }
}

#[test]
fn sandbox_hides_the_outside_world() {
    let outcome = run("sandbox.lua");
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    assert_eq!(
        outcome.logs,
        [
            "io\tnil",
            "debug\tnil",
            "require\tnil",
            "dofile\tnil",
            "os.execute\tnil",
            "os.exit\tnil",
            "os.getenv\tnil",
            "string.dump\tnil",
            "load\tnil",
            "bytecode\tnil",
        ]
    );
}

#[test]
fn edits_take_effect_at_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edit.lua");
    let mut runner = runner();
    let mut req = request("ok.lua");
    req.file = file.clone();
    std::fs::write(
        &file,
        "local job = core.job() function job.run() return job.OK end return job",
    )
    .unwrap();
    assert_eq!(runner.run(&req).result, RunResult::Ok);
    std::fs::write(
        &file,
        "local job = core.job() function job.run() return job.EXIT end return job",
    )
    .unwrap();
    assert_eq!(runner.run(&req).result, RunResult::Exit);
}

#[test]
fn page_example_logs_only_on_friday_at_one() {
    let mut req = request("page_example.lua");
    req.scheduled = at("2023-10-13T01:30:00Z");
    let outcome = runner().run(&req);
    assert_eq!(
        (outcome.result, outcome.logs),
        (RunResult::Ok, vec!["Do some work".to_string()])
    );
    req.scheduled = at("2023-10-13T02:30:00Z");
    assert!(runner().run(&req).logs.is_empty());
}

/// Every runaway script must end within its timeout plus this much.
const SLACK: Duration = Duration::from_millis(100);

#[test]
fn runaway_catalogue_is_stopped() {
    let timeout = Duration::from_millis(300);
    let table = [
        ("infinite_loop.lua", RunResult::Timeout),
        ("top_level_loop.lua", RunResult::Timeout),
        ("pcall_swallow.lua", RunResult::Timeout),
        ("nested_pcall.lua", RunResult::Timeout),
        ("xpcall_handler.lua", RunResult::Timeout),
        ("coroutine_swallow.lua", RunResult::Timeout),
        ("yield_forever.lua", RunResult::Timeout),
        ("deep_recursion.lua", RunResult::Error),
        ("recursion_swallowed.lua", RunResult::Timeout),
        ("error_loop.lua", RunResult::Timeout),
        ("string_growth.lua", RunResult::Memory),
        ("string_rep_huge.lua", RunResult::Memory),
        ("table_bomb.lua", RunResult::Memory),
        ("memory_swallowed.lua", RunResult::Memory),
        ("pattern.lua", RunResult::Timeout),
        ("gsub_callback.lua", RunResult::Timeout),
        ("sort_comparator.lua", RunResult::Timeout),
        ("index_loop.lua", RunResult::Timeout),
        ("log_flood.lua", RunResult::Timeout),
        ("concat_bomb.lua", RunResult::Memory),
        ("sleep_forever.lua", RunResult::Timeout),
        ("nested_coroutines.lua", RunResult::Timeout),
    ];
    let mut runner = runner();
    let mut failures = Vec::new();
    for (file, expected) in table {
        let mut req = request(&format!("runaway/{file}"));
        req.timeout = timeout;
        let clock = Instant::now();
        let outcome = runner.run(&req);
        let took = clock.elapsed();
        if outcome.result != expected || took > timeout + SLACK {
            failures.push(format!(
                "{file}: {} after {took:?} (expected {expected}): {:?}",
                outcome.result, outcome.error
            ));
        }
        // A job printing without end keeps at most the bounded log plus the "dropped" line.
        if outcome.logs.len() > jobtop::runtime::MAX_LOG_LINES + 1 {
            failures.push(format!("{file}: kept {} log lines", outcome.logs.len()));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn stop_messages() {
    let mut req = request("runaway/infinite_loop.lua");
    req.timeout = Duration::from_millis(100);
    let outcome = runner().run(&req);
    assert_eq!(outcome.error.as_deref(), Some("timed out after 100ms"));

    let mut req = request("runaway/table_bomb.lua");
    req.memory = 16 << 20;
    let outcome = runner().run(&req);
    assert_eq!(
        outcome.error.as_deref(),
        Some("memory limit 16 MiB exceeded")
    );
}

#[test]
fn abort_from_another_thread() {
    let req = request("runaway/pcall_swallow.lua");
    let control = req.control.clone();
    let clock = Instant::now();
    let aborter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        control.abort();
    });
    let outcome = runner().run(&req);
    aborter.join().unwrap();
    assert_eq!(outcome.result, RunResult::Aborted);
    assert_eq!(outcome.error.as_deref(), Some("aborted by operator"));
    assert!(clock.elapsed() < Duration::from_millis(100) + SLACK);
}

#[test]
fn runner_recovers_after_a_stopped_run() {
    let mut runner = runner();
    let mut req = request("runaway/table_bomb.lua");
    req.timeout = Duration::from_millis(300);
    assert_eq!(runner.run(&req).result, RunResult::Memory);
    assert_eq!(runner.run(&request("ok.lua")).result, RunResult::Ok);
    let mut req = request("runaway/infinite_loop.lua");
    req.timeout = Duration::from_millis(50);
    assert_eq!(runner.run(&req).result, RunResult::Timeout);
    assert_eq!(runner.run(&request("logs.lua")).logs.len(), 3);
}

#[test]
fn fresh_state_per_run_behaves_the_same() {
    let mut runner = runner().fresh_state_per_run();
    assert_eq!(runner.run(&request("ok.lua")).result, RunResult::Ok);
    assert_eq!(runner.run(&request("cancel.lua")).result, RunResult::Cancel);
}

#[test]
#[ignore = "prints messages for a human to read"]
fn show_messages() {
    for f in [
        "error.lua",
        "runtime_error.lua",
        "syntax.lua",
        "no_run.lua",
        "runaway/deep_recursion.lua",
    ] {
        println!("--- {f}\n{}", run(f).error.unwrap());
    }
}

#[test]
fn a_panic_in_a_callback_is_an_error_result() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("explode.lua");
    std::fs::write(
        &file,
        "local job = core.job() function job.run() pcall(core.explode) core.explode() return job.OK end return job",
    )
    .unwrap();
    let mut runner = JobRunner::new(
        Arc::new(ScriptCache::new()),
        vec![common::runner::register_exploding],
    );
    let mut req = request("ok.lua");
    req.file = file;
    let outcome = runner.run(&req);
    assert_eq!(outcome.result, RunResult::Error, "{outcome:?}");
    let error = outcome.error.unwrap();
    assert!(error.contains("kaboom"), "{error}");
    // and the runner keeps working
    assert_eq!(runner.run(&request("ok.lua")).result, RunResult::Ok);
}
