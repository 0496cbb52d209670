//! Database servers that go away: PostgreSQL and MariaDB stopped in the middle of a run (the
//! run fails, the next run connects again) and restarted between runs (the pooled connection
//! is found dead and replaced, the run does not notice). Each test has a server of its own,
//! since it stops it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::databases::{assert_ok, job_request, mariadb, postgres};
use common::runner::runner;
use common::servers::mariadb::MariaDb;
use common::servers::postgres::Postgres;
use common::servers::wait_until;
use jobtop::config::Database;
use jobtop::job::RunResult;
use jobtop::runtime::JobRunner;

const LONG: Duration = Duration::from_secs(30);

/// Runs `sql` as a job that fails when the query does, on `runner` (one worker thread's).
fn run(
    runner: &mut JobRunner,
    dir: &std::path::Path,
    db: &Arc<Database>,
    sql: &str,
) -> jobtop::runtime::RunOutcome {
    let body = format!(
        "  local rows, err = core.sql.query('{}', \"{sql}\")\n  if not rows then error(err) end\n  core.log(#rows)",
        db.name
    );
    let mut req = job_request(dir, "job.lua", &body, std::slice::from_ref(db));
    req.timeout = LONG;
    runner.run(&req)
}

/// Stops the server while a statement runs, then checks the next runs: `stop` and `start`
/// act on the server, `running` says whether the statement is under way.
fn stopped_mid_run(
    db: &Arc<Database>,
    slow: &str,
    stop: &(dyn Fn() + Sync),
    start: &dyn Fn(),
    running: &(dyn Fn() -> bool + Sync),
) {
    let dir = tempfile::tempdir().unwrap();
    let mut worker = runner();
    assert_ok(&run(&mut worker, dir.path(), db, "SELECT 1"));
    let outcome = thread::scope(|scope| {
        scope.spawn(|| {
            wait_until("the statement to run", LONG, || Ok(running().then_some(())));
            stop();
        });
        run(&mut worker, dir.path(), db, slow)
    });
    assert_eq!(outcome.result, RunResult::Error, "{outcome:?}");
    eprintln!(
        "note: the run stopped mid-statement ended with: {:?}",
        outcome.error
    );
    // Down: the run fails at once with the connection's error, it does not hang.
    let outcome = run(&mut worker, dir.path(), db, "SELECT 1");
    assert_eq!(outcome.result, RunResult::Error, "{outcome:?}");
    assert!(
        outcome
            .error
            .as_deref()
            .unwrap_or("")
            .contains("cannot connect to"),
        "{outcome:?}"
    );
    // Up again: the next run connects.
    start();
    assert_ok(&run(&mut worker, dir.path(), db, "SELECT 1"));
}

#[test]
fn postgres_stopped_mid_run_fails_the_run_and_the_next_run_reconnects() {
    let Some(pg) = Postgres::new() else { return };
    let db = postgres(&pg, "db", "faults");
    let running = || {
        pg.try_sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'",
        )
        .is_ok_and(|n| n != "0")
    };
    stopped_mid_run(
        &db,
        "SELECT pg_sleep(30)",
        &|| pg.stop(),
        &|| pg.start(),
        &running,
    );
    // Restarted between two runs: the pooled connection is dead, found so, and replaced.
    let dir = tempfile::tempdir().unwrap();
    let mut worker = runner();
    assert_ok(&run(&mut worker, dir.path(), &db, "SELECT 1"));
    pg.restart();
    thread::sleep(Duration::from_millis(1100));
    assert_ok(&run(&mut worker, dir.path(), &db, "SELECT 1"));
}

#[test]
fn mariadb_stopped_mid_run_fails_the_run_and_the_next_run_reconnects() {
    let Some(my) = MariaDb::new() else { return };
    let db = mariadb(&my, "db", "faults");
    let running = || {
        my.try_sql("mysql", "SHOW PROCESSLIST")
            .is_ok_and(|list| list.contains("SELECT SLEEP(30)"))
    };
    stopped_mid_run(
        &db,
        "SELECT SLEEP(30)",
        &|| my.kill(),
        &|| my.start(),
        &running,
    );
}
