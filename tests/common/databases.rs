//! What the database tests share: databases defined as `jobs.yaml` would define them, a job
//! file run through the runtime with `allow: [db]` and those databases, and a Lua prelude of
//! checks so that a job asserts what it got and the test reads one result.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jobtop::config::{
    Capability, Database, DatabaseTarget, Secret, Server, SqliteFile, SqliteMode,
};
use jobtop::job::RunResult;
use jobtop::runtime::{JobGrants, RunOutcome, RunRequest};

use super::runner::{request, runner, write_job};
use super::servers::mariadb::MariaDb;
use super::servers::postgres::Postgres;

/// Checks for job files: `eq(got, want, what)` raises with both values when they differ.
pub const PRELUDE: &str = r#"
local function eq(got, want, what)
  if got ~= want then
    error((what or "value") .. ": got " .. tostring(got) .. ", expected " .. tostring(want), 2)
  end
end
local function ok(value, err, what)
  if value == nil then error((what or "call") .. " failed: " .. tostring(err), 2) end
  return value
end
"#;

/// A server database as `service.databases` would have it.
fn server(name: &str, port: u16, user: &str, password: &str, database: &str) -> Server {
    let _ = name;
    Server {
        host: "127.0.0.1".into(),
        port,
        user: user.into(),
        password: Some(Secret::new(password)),
        database: Some(database.into()),
        tls: false,
    }
}

/// A fresh PostgreSQL database `database` on the shared server, as the job's `name`.
pub fn postgres(pg: &Postgres, name: &str, database: &str) -> Arc<Database> {
    pg.create_database(database);
    Arc::new(Database {
        name: name.into(),
        target: DatabaseTarget::Postgres(server(
            name,
            pg.port(),
            "postgres",
            pg.password(),
            database,
        )),
        shown: format!("postgres://postgres@127.0.0.1:{}/{database}", pg.port()),
        max_rows: jobtop::config::DEFAULT_MAX_ROWS,
        max_bytes: jobtop::config::DEFAULT_MAX_BYTES,
    })
}

/// A fresh MariaDB database `database` on the shared server, as the job's `name`.
pub fn mariadb(db: &MariaDb, name: &str, database: &str) -> Arc<Database> {
    db.create_database(database);
    Arc::new(Database {
        name: name.into(),
        target: DatabaseTarget::MySql(server(name, db.port(), "root", db.password(), database)),
        shown: format!("mysql://root@127.0.0.1:{}/{database}", db.port()),
        max_rows: jobtop::config::DEFAULT_MAX_ROWS,
        max_bytes: jobtop::config::DEFAULT_MAX_BYTES,
    })
}

/// An `SQLite` file in `dir`, created on first use.
pub fn sqlite(dir: &Path, name: &str) -> Arc<Database> {
    let path = dir.join(format!("{name}.db"));
    Arc::new(Database {
        name: name.into(),
        shown: format!("sqlite://{}", path.display()),
        target: DatabaseTarget::Sqlite(SqliteFile {
            path,
            mode: SqliteMode::Create,
        }),
        max_rows: jobtop::config::DEFAULT_MAX_ROWS,
        max_bytes: jobtop::config::DEFAULT_MAX_BYTES,
    })
}

/// `db` with other caps.
pub fn capped(db: &Arc<Database>, rows: u64, bytes: u64) -> Arc<Database> {
    Arc::new(Database {
        max_rows: rows,
        max_bytes: bytes,
        ..(**db).clone()
    })
}

/// The grants of job `job` with `allow: [db]` and `databases`.
pub fn grants(job: &str, databases: &[Arc<Database>]) -> JobGrants {
    JobGrants {
        job: job.into(),
        allow: vec![Capability::Db],
        databases: databases.to_vec(),
        ..JobGrants::default()
    }
}

/// A run of a job whose `job.run()` is [`PRELUDE`] then `body`, returning `job.OK`.
pub fn job_request(dir: &Path, file: &str, body: &str, databases: &[Arc<Database>]) -> RunRequest {
    let source = format!(
        "local job = core.job()\n{PRELUDE}\nfunction job.run()\n{body}\n  return job.OK\nend\nreturn job\n"
    );
    let path = write_job(dir, file, &source);
    request(path, file, grants("dbtest", databases))
}

/// Runs `body` once (see [`job_request`]) within `timeout`.
pub fn run_job(
    dir: &Path,
    body: &str,
    databases: &[Arc<Database>],
    timeout: Duration,
) -> RunOutcome {
    let mut req = job_request(dir, "job.lua", body, databases);
    req.timeout = timeout;
    runner().run(&req)
}

/// Asserts the run ended `ok`, showing its error and log otherwise.
pub fn assert_ok(outcome: &RunOutcome) {
    assert_eq!(
        outcome.result,
        RunResult::Ok,
        "error: {}\nlog: {:#?}",
        outcome.error.as_deref().unwrap_or(""),
        outcome.logs
    );
}
