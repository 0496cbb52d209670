//! The schema, as a list of migrations: version N is reached by applying steps 1..=N in order.
//!
//! `PRAGMA user_version` holds the version of a database. A step is never edited once
//! released: a change to the schema is a new step at the end of [`MIGRATIONS`].

use rusqlite::{Connection, TransactionBehavior};

/// The migration steps; step `i` (from 0) takes a database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "
    CREATE TABLE jobs (
        name               TEXT PRIMARY KEY NOT NULL,
        deactivated        INTEGER NOT NULL DEFAULT 0 CHECK (deactivated IN (0, 1)),
        deactivated_reason TEXT,
        deactivated_at     TEXT,
        deactivated_by     TEXT,
        last_run           TEXT,
        last_scheduled     TEXT,
        last_result        TEXT,
        last_duration_ms   REAL,
        last_error         TEXT,
        last_error_at      TEXT,
        runs               INTEGER NOT NULL DEFAULT 0,
        oks                INTEGER NOT NULL DEFAULT 0,
        errors             INTEGER NOT NULL DEFAULT 0,
        skips              INTEGER NOT NULL DEFAULT 0,
        status             TEXT,
        next_run           TEXT,
        updated_at         TEXT NOT NULL
    );

    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        job         TEXT NOT NULL REFERENCES jobs (name),
        scheduled   TEXT NOT NULL,
        started     TEXT NOT NULL,
        duration_ms REAL NOT NULL,
        result      TEXT NOT NULL,
        error       TEXT,
        logs        TEXT NOT NULL DEFAULT '[]',
        \"trigger\" TEXT NOT NULL
    );
    -- History of one job, newest first; retention by count and by age, per job.
    CREATE INDEX runs_job_started ON runs (job, started);

    CREATE TABLE audit (
        id     INTEGER PRIMARY KEY,
        at     TEXT NOT NULL,
        user   TEXT,
        action TEXT NOT NULL,
        job    TEXT,
        detail TEXT
    );
    CREATE INDEX audit_job ON audit (job, id);

    CREATE TABLE kv (
        job   TEXT NOT NULL,
        key   TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (job, key)
    );
    ",
    // 2: calendar schedules, retries and skip reasons. `last_fired` starts as the last run's
    // due time, which is what the scheduler used as its phase before.
    "
    ALTER TABLE jobs ADD COLUMN last_fired TEXT;
    ALTER TABLE jobs ADD COLUMN retry_attempt INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN retry_at TEXT;
    UPDATE jobs SET last_fired = last_scheduled;
    ALTER TABLE runs ADD COLUMN reason TEXT;
    ALTER TABLE runs ADD COLUMN covers INTEGER NOT NULL DEFAULT 1;
    ",
];

/// The schema version this build writes and reads.
// A handful of steps: the length always fits.
#[allow(clippy::cast_possible_wrap)]
pub(super) const LATEST: i64 = MIGRATIONS.len() as i64;

/// The schema version of the open database.
pub(super) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Brings the database up to [`LATEST`], all pending steps in one transaction: a failure (or a
/// crash) leaves it at the version it had. The caller has already refused newer versions.
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock first, so two processes opening a new database at once
    // cannot both apply step 1: the second sees the first one's version once it gets the lock.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let from = version(&tx)?;
    if from >= LATEST {
        return Ok(());
    }
    for step in MIGRATIONS.iter().skip(usize::try_from(from).unwrap_or(0)) {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", LATEST)?;
    tx.commit()
}
