//! What every kind of database does for `core.sql`, whatever its driver: run one statement
//! with bound parameters and hand back its rows (within the caps) or what it changed, answer a
//! ping, and be cancelled from another thread.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Database, DatabaseTarget};

use super::value::{Cell, Param};

/// One statement and its parameters, bound by position.
pub(crate) struct Statement {
    pub sql: String,
    pub params: Vec<Param>,
}

/// The most a statement may return.
#[derive(Clone, Copy)]
pub(crate) struct Caps {
    pub rows: u64,
    pub bytes: u64,
}

impl Caps {
    /// The caps of `db`.
    pub fn of(db: &Database) -> Caps {
        Caps {
            rows: db.max_rows,
            bytes: db.max_bytes,
        }
    }
}

/// What a statement gave back.
#[derive(Default)]
pub(crate) struct Answer {
    /// Column names, in order; empty for a statement that returns no rows.
    pub columns: Vec<String>,
    /// The rows, each with one cell per column.
    pub rows: Vec<Vec<Cell>>,
    /// Rows inserted, changed or deleted.
    pub affected: u64,
    /// The id the statement generated (MySQL's `LAST_INSERT_ID()`, `SQLite`'s rowid); PostgreSQL
    /// has none (`INSERT … RETURNING id` says it).
    pub last_id: Option<u64>,
}

/// Counts what a statement has returned so far against the caps.
pub(crate) struct Tally {
    caps: Caps,
    rows: u64,
    bytes: u64,
}

impl Tally {
    pub fn new(caps: Caps) -> Tally {
        Tally {
            caps,
            rows: 0,
            bytes: 0,
        }
    }

    /// Counts one more row; an error once either cap is passed.
    pub fn add(&mut self, row: &[Cell]) -> Result<(), DbError> {
        self.rows += 1;
        self.bytes += row.iter().map(Cell::size).sum::<u64>();
        if self.rows > self.caps.rows {
            return Err(DbError::cap(format!(
                "the result has more than {} rows: expected at most max_rows ({}) of the \
                 database; add a LIMIT, or raise max_rows in service.databases",
                self.caps.rows, self.caps.rows
            )));
        }
        if self.bytes > self.caps.bytes {
            return Err(DbError::cap(format!(
                "the result is larger than {}: expected at most max_result ({}) of the \
                 database; select fewer rows or columns, or raise max_result in service.databases",
                crate::units::format_size(self.caps.bytes),
                crate::units::format_size(self.caps.bytes)
            )));
        }
        Ok(())
    }
}

/// Why a statement (or a connection) failed.
#[derive(Debug, Clone)]
pub(crate) struct DbError {
    /// What the server or driver said.
    pub message: String,
    /// The server's code: an SQLSTATE (PostgreSQL), an error number (MySQL), an extended
    /// result code (`SQLite`).
    pub code: Option<String>,
    /// Whether the connection is no good any more (it is then dropped, and the next call
    /// connects again).
    pub broken: bool,
}

impl DbError {
    /// An error from the server about the statement: the connection is fine.
    pub fn statement(message: impl Into<String>, code: Option<String>) -> DbError {
        DbError {
            message: message.into(),
            code,
            broken: false,
        }
    }

    /// The connection failed or was lost.
    pub fn connection(message: impl Into<String>) -> DbError {
        DbError {
            message: message.into(),
            code: None,
            broken: true,
        }
    }

    /// A result over the caps: the rest of it is not read, so the connection is dropped (and
    /// the statement cancelled) rather than drained.
    pub fn cap(message: String) -> DbError {
        DbError {
            message,
            code: None,
            broken: true,
        }
    }
}

/// Stops the statement in progress on a connection, from another thread: PostgreSQL's cancel
/// request, MySQL's `KILL QUERY`, `SQLite`'s interrupt. Returns at once; what needs the network
/// runs on a thread of its own.
pub(super) type Canceller = Arc<dyn Fn() + Send + Sync>;

/// An open connection, owned by its session's thread.
pub(super) trait Connection: Send {
    /// Runs one statement, reading rows within `caps`; `time` is what is left of the run
    /// (what `SQLite` may wait for a lock; the servers are cancelled instead).
    fn run(&mut self, statement: &Statement, caps: Caps, time: Duration)
    -> Result<Answer, DbError>;
    /// Whether the connection still works (a round trip to the server).
    fn ping(&mut self) -> bool;
}

/// Connects to `db` within `timeout`.
pub(super) fn connect(
    db: &Database,
    timeout: Duration,
) -> Result<(Box<dyn Connection>, Canceller), DbError> {
    match &db.target {
        DatabaseTarget::Postgres(server) => super::postgres::connect(server, timeout),
        DatabaseTarget::MySql(server) => super::mysql::connect(server, timeout),
        DatabaseTarget::Sqlite(file) => super::sqlite::connect(file, timeout),
    }
}

/// Spawns `cancel` on a thread of its own, so that the caller never waits for the network.
pub(super) fn in_background(cancel: impl FnOnce() + Send + 'static) {
    let _ = std::thread::Builder::new()
        .name("jobtop-db-cancel".into())
        .spawn(cancel);
}
