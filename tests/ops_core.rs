//! `core.json`, the utilities, `core.env` and `core.state` through real job files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::runner::{job_source, request, runner, write_job};
use jobtop::job::RunResult;
use jobtop::runtime::{JobGrants, LocalZone, RunOutcome, RunRequest, SqliteState, StateStore};

fn run(dir: &Path, source: &str, grants: JobGrants) -> RunOutcome {
    let file = write_job(dir, "job.lua", source);
    runner().run(&RunRequest {
        scheduled: Utc::now(),
        zone: LocalZone::Named(chrono_tz::UTC),
        timeout: Duration::from_secs(2),
        ..request(file, "jobs/job.lua", grants)
    })
}

fn job(body: &str) -> String {
    job_source("local job = core.job()\n", body)
}

#[test]
fn json_round_trips_and_reports_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(
        dir.path(),
        &job(r#"
  local t = core.json.decode('{"a":[1,2,{"b":true}],"c":"x","n":null}')
  core.log(t.a[2], t.a[3].b, t.c, tostring(t.n))
  core.log(core.json.encode({1, 2, 3}), core.json.encode({k = "v"}), core.json.encode("s"))
  core.log(core.json_safe.decode("{bad"))
  core.log(core.json_safe.encode(function() end))
  local ok, err = pcall(core.json.decode, "[1,")
  core.log(ok, err)
"#),
        JobGrants::default(),
    );
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    assert_eq!(outcome.logs[0], "2\ttrue\tx\tnil");
    assert_eq!(outcome.logs[1], "[1,2,3]\t{\"k\":\"v\"}\t\"s\"");
    assert!(
        outcome.logs[2].starts_with("nil\tinvalid JSON ("),
        "{}",
        outcome.logs[2]
    );
    assert!(
        outcome.logs[2].ends_with("expected a JSON document"),
        "{}",
        outcome.logs[2]
    );
    assert!(
        outcome.logs[3].starts_with("nil\tcannot encode a function as JSON"),
        "{}",
        outcome.logs[3]
    );
    assert!(
        outcome.logs[4].starts_with("false\tinvalid JSON"),
        "{}",
        outcome.logs[4]
    );

    // the raising decode names the caller's line
    let outcome = run(
        dir.path(),
        &job("  core.json.decode('nope')"),
        JobGrants::default(),
    );
    assert_eq!(outcome.result, RunResult::Error);
    assert!(
        outcome
            .error
            .unwrap()
            .starts_with("jobs/job.lua:3: invalid JSON")
    );
}

#[test]
fn utilities() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(
        dir.path(),
        &job(r#"
  core.log(core.sf("%03d-%s", 7, "x"), "[" .. core.trim("  a b \n") .. "]")
  core.log(table.concat(core.split("a,b,,c"), "|"), table.concat(core.split("a b", " "), "|"), #core.split("xyz", ""))
  local id = core.uuid()
  core.log(#id, id:sub(15, 15), id ~= core.uuid())
  core.log(core.md5(""), core.md5("hello"))
"#),
        JobGrants::default(),
    );
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    assert_eq!(
        outcome.logs,
        [
            "007-x\t[a b]",
            "a|b||c\ta|b\t3",
            "36\t4\ttrue",
            "d41d8cd98f00b204e9800998ecf8427e\t5d41402abc4b2a76b9719d911017c592",
        ]
    );
}

#[test]
fn sleep_is_bounded_by_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Instant::now();
    let outcome = run(
        dir.path(),
        &job("  core.log(core.sleep(0.1))\n  core.sleep(60)"),
        JobGrants::default(),
    );
    assert_eq!(outcome.result, RunResult::Timeout);
    assert_eq!(outcome.logs, ["true"]);
    assert!(
        clock.elapsed() < Duration::from_millis(2200),
        "{:?}",
        clock.elapsed()
    );
    let outcome = run(dir.path(), &job("  core.sleep(-1)"), JobGrants::default());
    assert_eq!(outcome.result, RunResult::Error);
    assert!(
        outcome
            .error
            .unwrap()
            .contains("expected a number of seconds, 0 or more")
    );
}

#[test]
fn env_reads_only_listed_variables() {
    let dir = tempfile::tempdir().unwrap();
    let grants = JobGrants {
        job: "reader".into(),
        env: vec!["HOME".into(), "JOBTOP_SURELY_UNSET_VAR".into()],
        ..JobGrants::default()
    };
    let outcome = run(
        dir.path(),
        &job(
            "  core.log(core.env('HOME') ~= nil)\n  core.log(core.env('PATH'))\n  core.log(core.env('JOBTOP_SURELY_UNSET_VAR'))",
        ),
        grants,
    );
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    assert_eq!(outcome.logs[0], "true");
    assert_eq!(
        outcome.logs[1],
        "nil\tcore.env cannot read PATH for job reader: add it to `env: [PATH]` in its entry in jobs.yaml"
    );
    assert_eq!(
        outcome.logs[2],
        "nil\tJOBTOP_SURELY_UNSET_VAR is not set in jobtop's environment"
    );
}

#[test]
fn state_persists_across_runs_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    // The store is created by the service; here by opening it once.
    jobtop::store::Store::open(&db).unwrap();
    let counter = job(r#"
  local n = (core.state.get("n") or 0) + 1
  core.state.set("n", n)
  core.state.set("seen", {last = n, tags = {"a", "b"}})
  core.log(n, core.state.get("seen").tags[2])
"#);
    let grants = |store: Arc<dyn StateStore>| JobGrants {
        job: "counter".into(),
        state: Some(store),
        ..JobGrants::default()
    };
    let first: Arc<dyn StateStore> = Arc::new(SqliteState::new(db.clone()));
    for expected in 1..=3 {
        let outcome = run(dir.path(), &counter, grants(first.clone()));
        assert_eq!(outcome.logs, [format!("{expected}\tb")], "{outcome:?}");
    }
    // a new store on the same file is a restart: the count goes on
    let restarted: Arc<dyn StateStore> = Arc::new(SqliteState::new(db.clone()));
    let outcome = run(dir.path(), &counter, grants(restarted.clone()));
    assert_eq!(outcome.logs, ["4\tb"]);
    // another job has its own values
    let other = JobGrants {
        job: "other".into(),
        state: Some(restarted.clone()),
        ..JobGrants::default()
    };
    let outcome = run(dir.path(), &job("  core.log(core.state.get('n'))"), other);
    assert_eq!(outcome.logs, ["nil"]);
    // delete, and the nil, err paths
    let outcome = run(
        dir.path(),
        &job(
            "  core.log(core.state.delete('n'), core.state.get('n'))\n  core.log(core.state.set('f', print))\n  core.log(core.state.set('big', string.rep('x', 2 * 1024 * 1024)))",
        ),
        grants(restarted),
    );
    assert_eq!(outcome.logs[0], "true\tnil");
    assert!(
        outcome.logs[1].starts_with("nil\tcannot encode a function"),
        "{}",
        outcome.logs[1]
    );
    assert!(
        outcome.logs[2].contains("expected at most 1048576"),
        "{}",
        outcome.logs[2]
    );
    let outcome = run(
        dir.path(),
        &job("  core.log(core.state.get('n'))"),
        JobGrants::default(),
    );
    assert_eq!(
        outcome.logs,
        ["nil\tcore.state is not available in this run"]
    );
}
