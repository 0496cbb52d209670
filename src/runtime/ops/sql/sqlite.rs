//! `SQLite` files through rusqlite (the bundled `SQLite` that `state.db` uses too).
//!
//! A statement is interrupted with `sqlite3_interrupt`; a file locked by another writer is
//! waited for up to the time left of the run (`SQLite`'s busy timeout, set before each
//! statement).

use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection as Sqlite, OpenFlags};

use super::backend::{Answer, Canceller, Caps, Connection, DbError, Statement, Tally};
use super::value::{Cell, Param};
use crate::config::{SqliteFile, SqliteMode};

struct Lite {
    conn: Sqlite,
}

/// Opens the file; `timeout` is how long a statement may wait for a lock at first.
pub(super) fn connect(
    file: &SqliteFile,
    timeout: Duration,
) -> Result<(Box<dyn Connection>, Canceller), DbError> {
    let mode = match file.mode {
        SqliteMode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        SqliteMode::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        SqliteMode::Create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    };
    let flags = mode | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Sqlite::open_with_flags(&file.path, flags).map_err(|e| {
        let hint = if file.mode == SqliteMode::ReadOnly || file.path.exists() {
            String::new()
        } else {
            " (the file does not exist; add ?mode=rwc to the URL to create it)".to_string()
        };
        DbError::connection(format!("cannot open {}: {e}{hint}", file.path.display()))
    })?;
    conn.busy_timeout(timeout)
        .map_err(|e| DbError::connection(e.to_string()))?;
    let handle = conn.get_interrupt_handle();
    let canceller: Canceller = std::sync::Arc::new(move || handle.interrupt());
    Ok((Box::new(Lite { conn }), canceller))
}

impl Connection for Lite {
    fn run(
        &mut self,
        statement: &Statement,
        caps: Caps,
        time: Duration,
    ) -> Result<Answer, DbError> {
        self.conn.busy_timeout(time).map_err(|e| from_error(&e))?;
        let mut stmt = self
            .conn
            .prepare(&statement.sql)
            .map_err(|e| from_error(&e))?;
        let readonly = stmt.readonly();
        let wanted = stmt.parameter_count();
        if wanted != statement.params.len() {
            return Err(DbError::statement(
                format!(
                    "the statement has {wanted} placeholder{} and {} parameter{} were given: \
                     expected one parameter for each placeholder",
                    if wanted == 1 { "" } else { "s" },
                    statement.params.len(),
                    if statement.params.len() == 1 { "" } else { "s" }
                ),
                None,
            ));
        }
        for (i, param) in statement.params.iter().enumerate() {
            let bound = match param {
                Param::Null => stmt.raw_bind_parameter(i + 1, rusqlite::types::Null),
                Param::Bool(b) => stmt.raw_bind_parameter(i + 1, b),
                Param::Int(n) => stmt.raw_bind_parameter(i + 1, n),
                Param::Float(x) => stmt.raw_bind_parameter(i + 1, x),
                Param::Text(text) => stmt.raw_bind_parameter(i + 1, text),
                Param::Bytes(bytes) => stmt.raw_bind_parameter(i + 1, bytes),
            };
            bound.map_err(|e| from_error(&e))?;
        }
        let mut answer = Answer {
            columns: stmt
                .column_names()
                .iter()
                .map(ToString::to_string)
                .collect(),
            ..Answer::default()
        };
        let mut tally = Tally::new(caps);
        {
            let mut rows = stmt.raw_query();
            while let Some(row) = rows.next().map_err(|e| from_error(&e))? {
                let mut cells = Vec::with_capacity(answer.columns.len());
                for i in 0..answer.columns.len() {
                    let value = row.get_ref(i).map_err(|e| from_error(&e))?;
                    cells.push(match value {
                        ValueRef::Null => Cell::Null,
                        ValueRef::Integer(n) => Cell::Int(n),
                        ValueRef::Real(x) => Cell::Float(x),
                        ValueRef::Text(t) => match std::str::from_utf8(t) {
                            Ok(text) => Cell::Text(text.to_string()),
                            Err(_) => Cell::Bytes(t.to_vec()),
                        },
                        ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
                    });
                }
                tally
                    .add(&cells)
                    .map_err(|e| DbError { broken: false, ..e })?;
                answer.rows.push(cells);
            }
        }
        drop(stmt);
        answer.affected = if readonly { 0 } else { self.conn.changes() };
        if answer.columns.is_empty() && answer.affected > 0 {
            answer.last_id = u64::try_from(self.conn.last_insert_rowid())
                .ok()
                .filter(|id| *id != 0);
        }
        Ok(answer)
    }

    fn ping(&mut self) -> bool {
        true
    }
}

/// An `SQLite` error keeps the connection: the file is still open.
fn from_error(e: &rusqlite::Error) -> DbError {
    let code = match e {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.extended_code.to_string()),
        _ => None,
    };
    DbError::statement(e.to_string(), code)
}
