//! `core.sql`: the same three functions for PostgreSQL, MySQL/MariaDB and `SQLite`, on the
//! databases a job is given in `jobs.yaml` (`allow: [db]` and `databases: [names]`).
//!
//! * `query(db, sql, ...)`: the rows, an array of tables keyed by column name (SQL NULL is
//!   `core.NULL`), or `nil, err, code`.
//! * `exec(db, sql, ...)`: `{affected = n, last_id = n}`, or `nil, err, code`.
//! * `transaction(db, function(tx) ... end)`: `tx.query`/`tx.exec` (also `tx:query`) run in
//!   one transaction, committed when the function returns, rolled back when it raises an error
//!   or returns `nil, err` (or `false`).
//!
//! Parameters are bound by the server, never put into the SQL text: `$1, $2` for PostgreSQL,
//! `?` for MySQL and `SQLite`. `code` is the server's: an SQLSTATE string for PostgreSQL, the
//! error number for MySQL, the extended result code for `SQLite`.
//!
//! Connections, time limits and caps: see `session` (a pool per worker thread, statements
//! cancelled on the server when the run is stopped) and `backend` (rows and bytes capped).

mod backend;
mod mysql;
mod postgres;
mod session;
mod sqlite;
mod tls;
pub(super) mod value;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use mlua::{Lua, MultiValue, Table, Value};

pub(super) use self::backend::{Answer, Statement};
use self::session::{Failure, Limits, Session, checkin, checkout};
use self::value::{param, rows_table};
use super::args::describe;
use super::context;
use crate::config::{Capability, Database, DatabaseKind};
use crate::runtime::limits::StopReason;

/// `core.sql.query` and `core.sql.exec`: one statement with its parameters, on a granted
/// database, within the run's limits.
fn one_statement(
    lua: &Lua,
    what: &'static str,
    db: &Value,
    text: &Value,
    params: &MultiValue,
) -> Result<Answer, CallError> {
    granted(lua, what, db).and_then(|(db, limits)| {
        let statement = statement(&db, what, text, params.iter())?;
        run(&db, &limits, statement).map_err(|e| e.within(what, &db))
    })
}

/// Registers `core.sql` and the values `core.NULL`, `core.ASC` and `core.DESC`.
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    core.raw_set("NULL", value::null())?;
    core.raw_set("ASC", "ASC")?;
    core.raw_set("DESC", "DESC")?;
    let sql = lua.create_table()?;
    sql.raw_set(
        "query",
        lua.create_function(|lua, (db, text, params): (Value, Value, MultiValue)| {
            let result = one_statement(lua, "core.sql.query", &db, &text, &params);
            answer(lua, result, |lua, answer| {
                Ok(Value::Table(rows_table(lua, &answer.columns, answer.rows)?))
            })
        })?,
    )?;
    sql.raw_set(
        "exec",
        lua.create_function(|lua, (db, text, params): (Value, Value, MultiValue)| {
            let result = one_statement(lua, "core.sql.exec", &db, &text, &params);
            answer(lua, result, changes_table)
        })?,
    )?;
    sql.raw_set(
        "transaction",
        lua.create_function(|lua, (db, function): (Value, Value)| {
            transaction(lua, &db, &function)
        })?,
    )?;
    sql.set_readonly(true);
    core.raw_set("sql", sql)
}

/// Why a call failed, as the job sees it: `nil, message, code`.
pub(super) struct CallError {
    pub message: String,
    pub code: Option<String>,
}

impl CallError {
    pub(super) fn plain(message: impl Into<String>) -> CallError {
        CallError {
            message: message.into(),
            code: None,
        }
    }
}

/// A failure of the session, before it is named for the job.
pub(super) struct Failed {
    failure: Failure,
    connecting: bool,
}

impl Failed {
    /// The message for the job: `what(db): …`, the password never in it.
    pub(super) fn within(self, what: &str, db: &Database) -> CallError {
        let (message, code) = match self.failure {
            Failure::Stopped(reason) => (stopped(reason), None),
            Failure::Db(e) if self.connecting => (
                format!("cannot connect to {}: {}", db.shown, e.message),
                e.code,
            ),
            Failure::Db(e) => (e.message, e.code),
        };
        CallError {
            message: scrub(db, &format!("{what}({}): {message}", db.name)),
            code,
        }
    }
}

fn stopped(reason: StopReason) -> String {
    let why = match reason {
        StopReason::Timeout => "the run's timeout has passed",
        StopReason::Memory => "the run passed its memory limit",
        StopReason::Aborted => "the run was aborted",
        StopReason::Shutdown => "the service is shutting down",
    };
    format!("cut short: {why}; the statement was cancelled on the server")
}

/// `message` with the database's password, should a driver ever quote it, masked.
fn scrub(db: &Database, message: &str) -> String {
    let password = match &db.target {
        crate::config::DatabaseTarget::Postgres(s) | crate::config::DatabaseTarget::MySql(s) => {
            s.password.as_ref()
        }
        crate::config::DatabaseTarget::Sqlite(_) => None,
    };
    match password {
        Some(p) if !p.expose().is_empty() => message.replace(p.expose(), "***"),
        _ => message.to_string(),
    }
}

/// The database a job named, after the grant checks, with the run's limits.
pub(super) fn granted(
    lua: &Lua,
    what: &str,
    db: &Value,
) -> Result<(Arc<Database>, Limits), CallError> {
    let ops = context(lua).map_err(|e| CallError::plain(e.to_string()))?;
    ops.require(Capability::Db, what)
        .map_err(CallError::plain)?;
    let Value::String(name) = db else {
        return Err(CallError::plain(format!(
            "{what}: the database is {}: expected the name of one of the job's databases",
            describe(db)
        )));
    };
    let name = name.to_string_lossy();
    let Some(found) = ops.grants.databases.iter().find(|d| d.name == name) else {
        return Err(CallError::plain(format!(
            "{what}: database {name:?} is not one of job {}'s databases: expected it in \
             `databases: [{name}]` in the job's entry in jobs.yaml (and defined in service.databases)",
            ops.grants.job
        )));
    };
    Ok((
        found.clone(),
        Limits {
            control: ops.control.clone(),
            deadline: ops.deadline,
        },
    ))
}

/// The SQL text and its parameters.
pub(super) fn statement<'a>(
    db: &Database,
    what: &str,
    text: &Value,
    params: impl Iterator<Item = &'a Value>,
) -> Result<Statement, CallError> {
    let Value::String(sql) = text else {
        return Err(CallError::plain(format!(
            "{what}({}): the SQL is {}: expected a string",
            db.name,
            describe(text)
        )));
    };
    let params = params
        .enumerate()
        .map(|(i, v)| param(v, &format!("parameter {}", i + 1)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CallError::plain(format!("{what}({}): {e}", db.name)))?;
    Ok(Statement {
        sql: sql.to_string_lossy(),
        params,
    })
}

thread_local! {
    /// Databases this thread is inside a transaction on.
    static IN_TRANSACTION: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn in_transaction(name: &str) -> bool {
    IN_TRANSACTION.with(|t| t.borrow().iter().any(|n| n == name))
}

/// Runs one statement on this thread's session for `db`.
pub(super) fn run(
    db: &Arc<Database>,
    limits: &Limits,
    statement: Statement,
) -> Result<Answer, Failed> {
    if in_transaction(&db.name) {
        return Err(Failed {
            failure: Failure::Db(backend::DbError::statement(
                "a transaction is open on this database: expected the statement through the \
                 transaction's tx.query or tx.exec",
                None,
            )),
            connecting: false,
        });
    }
    let mut session = checkout(db, limits).map_err(|failure| Failed {
        failure,
        connecting: true,
    })?;
    let result = session.run(statement, limits);
    checkin(session);
    result.map_err(|failure| Failed {
        failure,
        connecting: false,
    })
}

/// `result` for the job: `f(answer)`, or `nil, message, code`.
pub(super) fn answer<T>(
    lua: &Lua,
    result: Result<T, CallError>,
    f: impl FnOnce(&Lua, T) -> mlua::Result<Value>,
) -> mlua::Result<MultiValue> {
    match result {
        Ok(answer) => Ok(MultiValue::from_iter([f(lua, answer)?])),
        Err(e) => failure(lua, e),
    }
}

/// `nil, message, code`: a numeric code as a number.
pub(super) fn failure(lua: &Lua, e: CallError) -> mlua::Result<MultiValue> {
    let code = match e.code {
        None => Value::Nil,
        Some(code) => match code.parse::<i32>() {
            Ok(n) => Value::Number(f64::from(n)),
            Err(_) => Value::String(lua.create_string(code)?),
        },
    };
    Ok(MultiValue::from_iter([
        Value::Nil,
        Value::String(lua.create_string(e.message)?),
        code,
    ]))
}

/// `{affected = n, last_id = n}`.
#[allow(clippy::needless_pass_by_value)] // the shape of every result maker
fn changes_table(lua: &Lua, answer: Answer) -> mlua::Result<Value> {
    let table = lua.create_table()?;
    #[allow(clippy::cast_precision_loss)] // counts and ids far below 2^53
    {
        table.raw_set("affected", answer.affected as f64)?;
        table.raw_set("last_id", answer.last_id.map(|id| id as f64))?;
    }
    Ok(Value::Table(table))
}

/// The statement that opens a transaction on `kind`.
fn begin(kind: DatabaseKind) -> &'static str {
    match kind {
        DatabaseKind::MySql => "START TRANSACTION",
        DatabaseKind::Postgres | DatabaseKind::Sqlite => "BEGIN",
    }
}

/// The session of an open transaction, shared by its `tx` functions; `None` once it is over.
type TxSlot = Rc<RefCell<Option<Session>>>;

/// `core.sql.transaction(db, function(tx) ... end)`.
fn transaction(lua: &Lua, db: &Value, function: &Value) -> mlua::Result<MultiValue> {
    let what = "core.sql.transaction";
    let (db, limits) = match granted(lua, what, db) {
        Ok(found) => found,
        Err(e) => return failure(lua, e),
    };
    let Value::Function(function) = function else {
        let message = format!(
            "{what}({}): the second argument is {}: expected a function(tx) that runs the \
             transaction's statements",
            db.name,
            describe(function)
        );
        return failure(lua, CallError::plain(message));
    };
    if in_transaction(&db.name) {
        let message = format!(
            "{what}({}): a transaction is open on this database already: expected one at a time",
            db.name
        );
        return failure(lua, CallError::plain(message));
    }
    let mut session = match checkout(&db, &limits) {
        Ok(session) => session,
        Err(failure_) => {
            let e = Failed {
                failure: failure_,
                connecting: true,
            }
            .within(what, &db);
            return failure(lua, e);
        }
    };
    let opened = session.run(simple(begin(db.kind())), &limits);
    if let Err(failure_) = opened {
        checkin(session);
        return statement_failed(lua, failure_, what, &db);
    }
    let slot: TxSlot = Rc::new(RefCell::new(Some(session)));
    let tx = tx_table(lua, &db, &limits, &slot)?;
    IN_TRANSACTION.with(|t| t.borrow_mut().push(db.name.clone()));
    let returned = function.call::<MultiValue>(tx);
    IN_TRANSACTION.with(|t| t.borrow_mut().retain(|n| *n != db.name));
    let Some(mut session) = slot.borrow_mut().take() else {
        return failure(
            lua,
            CallError::plain(format!("{what}({}): the connection was lost", db.name)),
        );
    };
    if limits.control.stopped().is_some() {
        // Dropped, not rolled back: there is no time left to wait for the server, and closing
        // the connection rolls the transaction back.
        drop(session);
        let message = format!(
            "{what}({}): {}",
            db.name,
            stopped(limits.control.stopped().unwrap_or(StopReason::Aborted))
        );
        return failure(lua, CallError::plain(message));
    }
    let values = match returned {
        Ok(values) => values,
        Err(e) => {
            rollback(session, &limits);
            let message = format!("{what}({}): rolled back: {}", db.name, first_line(&e));
            return failure(lua, CallError::plain(message));
        }
    };
    let first = values.front().cloned().unwrap_or(Value::Nil);
    let refused = matches!(first, Value::Boolean(false)) || (first.is_nil() && values.len() >= 2);
    if refused {
        rollback(session, &limits);
        let why = match values.get(1) {
            Some(Value::String(s)) => s.to_string_lossy(),
            Some(other) if !other.is_nil() => describe(other),
            _ => "the function returned false".to_string(),
        };
        let message = format!("{what}({}): rolled back: {why}", db.name);
        return failure(lua, CallError::plain(message));
    }
    let committed = session.run(simple("COMMIT"), &limits);
    checkin(session);
    if let Err(failure_) = committed {
        return statement_failed(lua, failure_, what, &db);
    }
    if first.is_nil() {
        return Ok(MultiValue::from_iter([Value::Boolean(true)]));
    }
    Ok(values)
}

/// A statement without parameters.
fn simple(sql: &str) -> Statement {
    Statement {
        sql: sql.to_string(),
        params: Vec::new(),
    }
}

/// Rolls back; a session that cannot is dropped (closing it rolls back too).
fn rollback(mut session: Session, limits: &Limits) {
    if session.run(simple("ROLLBACK"), limits).is_ok() {
        checkin(session);
    }
}

/// An error raised in the transaction's function, on one line.
fn first_line(error: &mlua::Error) -> String {
    let text = match error {
        mlua::Error::CallbackError { cause, .. } => cause.to_string(),
        other => other.to_string(),
    };
    text.lines().next().unwrap_or("").to_string()
}

/// The `tx` table: `query` and `exec` on the transaction's session, also as methods.
fn tx_table(lua: &Lua, db: &Arc<Database>, limits: &Limits, slot: &TxSlot) -> mlua::Result<Table> {
    let tx = lua.create_table()?;
    for (name, rows) in [("query", true), ("exec", false)] {
        let (db, limits, slot) = (db.clone(), limits.clone(), slot.clone());
        let what = if rows { "tx.query" } else { "tx.exec" };
        let function = lua.create_function(move |lua, args: MultiValue| {
            // `tx:query(sql, …)` passes the table first; SQL is never a table.
            let skip = usize::from(matches!(args.front(), Some(Value::Table(_))));
            let text = args.get(skip).cloned().unwrap_or(Value::Nil);
            let result = statement(&db, what, &text, args.iter().skip(skip + 1)).and_then(|s| {
                let mut guard = slot.borrow_mut();
                let Some(session) = guard.as_mut() else {
                    return Err(CallError::plain(format!(
                        "{what}({}): the transaction is over: expected tx to be used inside \
                         its function only",
                        db.name
                    )));
                };
                session.run(s, &limits).map_err(|failure| {
                    Failed {
                        failure,
                        connecting: false,
                    }
                    .within(what, &db)
                })
            });
            if rows {
                answer(lua, result, |lua, answer| {
                    Ok(Value::Table(rows_table(lua, &answer.columns, answer.rows)?))
                })
            } else {
                answer(lua, result, changes_table)
            }
        })?;
        tx.raw_set(name, function)?;
    }
    tx.set_readonly(true);
    Ok(tx)
}

/// `nil, message, code` for a statement of `what` that failed on an open connection.
fn statement_failed(
    lua: &Lua,
    failure_: Failure,
    what: &str,
    db: &Database,
) -> mlua::Result<MultiValue> {
    let failed = Failed {
        failure: failure_,
        connecting: false,
    };
    failure(lua, failed.within(what, db))
}
