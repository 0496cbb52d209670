//! MySQL and MariaDB through the synchronous `mysql` crate (rustls for TLS, no OpenSSL).
//!
//! A statement with parameters is prepared and run with the binary protocol; one without is
//! sent as text (so any statement works, `SHOW`, `SET`, `KILL`, …). Either way a value is
//! decoded by its column's type, so numbers come back as Lua numbers from both. A statement is
//! cancelled with `KILL QUERY <connection id>` sent over a second connection.

use std::time::Duration;

use mysql::consts::{ColumnFlags, ColumnType};
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Params, SslOpts, Value};

use super::backend::{
    Answer, Canceller, Caps, Connection, DbError, Statement, Tally, in_background,
};
use super::value::{Cell, Param};
use crate::config::Server;

/// MySQL's character set number for binary strings (BLOB, BINARY, VARBINARY).
const BINARY_CHARSET: u16 = 63;

struct My {
    conn: Conn,
    /// Its own `KILL QUERY`, for a result over the caps: the driver reads the rest of a result
    /// set before it lets go of it, and killed, the rest is short.
    cancel: Canceller,
}

/// Connects within `timeout`.
pub(super) fn connect(
    server: &Server,
    timeout: Duration,
) -> Result<(Box<dyn Connection>, Canceller), DbError> {
    let mut builder = OptsBuilder::new()
        .ip_or_hostname(Some(server.host.clone()))
        .tcp_port(server.port)
        .user(Some(server.user.clone()))
        .pass(server.password.as_ref().map(|p| p.expose().to_string()))
        .db_name(server.database.clone())
        .prefer_socket(false)
        .tcp_connect_timeout(Some(timeout.max(Duration::from_millis(1))))
        .tcp_keepalive_time_ms(Some(60_000))
        .connect_attrs(Some(std::collections::HashMap::from([(
            "program_name",
            "jobtop",
        )])));
    if server.tls {
        let ssl = SslOpts::default().with_root_cert_path(super::tls::system_bundle());
        builder = builder.ssl_opts(Some(ssl));
    }
    let opts = Opts::from(builder);
    let conn = Conn::new(opts.clone()).map_err(|e| from_error(&e))?;
    let id = conn.connection_id();
    let canceller: Canceller = std::sync::Arc::new(move || {
        let opts = opts.clone();
        in_background(move || {
            let opts =
                OptsBuilder::from_opts(opts).tcp_connect_timeout(Some(Duration::from_secs(5)));
            let killed = Conn::new(opts).and_then(|mut c| c.query_drop(format!("KILL QUERY {id}")));
            if let Err(e) = killed {
                tracing::warn!("cancelling a MySQL query (KILL QUERY {id}) failed: {e}");
            }
        });
    });
    let cancel = canceller.clone();
    Ok((Box::new(My { conn, cancel }), canceller))
}

impl Connection for My {
    fn run(&mut self, statement: &Statement, caps: Caps, _: Duration) -> Result<Answer, DbError> {
        let mut tally = Tally::new(caps);
        let mut answer = Answer::default();
        if statement.params.is_empty() {
            let mut result = self
                .conn
                .query_iter(statement.sql.as_str())
                .map_err(|e| from_error(&e))?;
            while let Some(set) = result.iter() {
                read_set(set, &mut answer, &mut tally, &self.cancel)?;
            }
        } else {
            let params = Params::Positional(statement.params.iter().map(value).collect());
            let mut result = self
                .conn
                .exec_iter(statement.sql.as_str(), params)
                .map_err(|e| from_error(&e))?;
            while let Some(set) = result.iter() {
                read_set(set, &mut answer, &mut tally, &self.cancel)?;
            }
        }
        Ok(answer)
    }

    fn ping(&mut self) -> bool {
        self.conn.ping().is_ok()
    }
}

/// Reads one result set: the rows of the first set that has columns, and the affected count
/// and id of the last set that has none. Over the caps, the statement is killed.
fn read_set<T: mysql::prelude::Protocol>(
    mut set: mysql::ResultSet<'_, '_, '_, '_, T>,
    answer: &mut Answer,
    tally: &mut Tally,
    cancel: &Canceller,
) -> Result<(), DbError> {
    let columns = set.columns();
    let columns: &[mysql::Column] = columns.as_ref();
    let take_rows = answer.columns.is_empty() && !columns.is_empty();
    if take_rows {
        answer.columns = columns.iter().map(|c| c.name_str().into_owned()).collect();
    }
    let columns = columns.to_vec();
    if columns.is_empty() {
        // Read before the set is consumed: consuming it moves on past its OK packet.
        answer.affected = set.affected_rows();
        answer.last_id = set.last_insert_id().filter(|id| *id != 0);
    }
    for row in set.by_ref() {
        let row = row.map_err(|e| from_error(&e))?;
        if !take_rows {
            continue;
        }
        let cells: Vec<Cell> = row
            .unwrap()
            .into_iter()
            .zip(&columns)
            .map(|(v, c)| cell(v, c))
            .collect();
        if let Err(over) = tally.add(&cells) {
            // Killed first: dropping the set reads what is left of it.
            cancel();
            return Err(over);
        }
        answer.rows.push(cells);
    }
    Ok(())
}

/// A parameter as a MySQL value (a boolean is 1 or 0, as MySQL keeps them).
fn value(param: &Param) -> Value {
    match param {
        Param::Null => Value::NULL,
        Param::Bool(b) => Value::Int(i64::from(*b)),
        Param::Int(n) => Value::Int(*n),
        Param::Float(x) => Value::Double(*x),
        Param::Text(text) => Value::Bytes(text.as_bytes().to_vec()),
        Param::Bytes(bytes) => Value::Bytes(bytes.clone()),
    }
}

/// A returned value by its column's type: numbers as numbers (from the text protocol too),
/// decimals, dates and times as text, binary strings as bytes.
fn cell(value: Value, column: &mysql::Column) -> Cell {
    use ColumnType::{
        MYSQL_TYPE_DATE, MYSQL_TYPE_DOUBLE, MYSQL_TYPE_FLOAT, MYSQL_TYPE_INT24, MYSQL_TYPE_LONG,
        MYSQL_TYPE_LONGLONG, MYSQL_TYPE_NEWDATE, MYSQL_TYPE_SHORT, MYSQL_TYPE_TINY,
        MYSQL_TYPE_YEAR,
    };
    let ty = column.column_type();
    let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    match value {
        Value::NULL => Cell::Null,
        Value::Int(n) => Cell::Int(n),
        Value::UInt(n) => Cell::UInt(n),
        Value::Float(x) => Cell::Float(f64::from(x)),
        Value::Double(x) => Cell::Float(x),
        Value::Bytes(bytes) => {
            let text = std::str::from_utf8(&bytes).ok();
            let parsed = match (ty, text) {
                (
                    MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG
                    | MYSQL_TYPE_LONGLONG | MYSQL_TYPE_YEAR,
                    Some(text),
                ) => {
                    if unsigned {
                        text.parse().ok().map(Cell::UInt)
                    } else {
                        text.parse().ok().map(Cell::Int)
                    }
                }
                (MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE, Some(text)) => {
                    text.parse().ok().map(Cell::Float)
                }
                _ => None,
            };
            parsed.unwrap_or_else(|| match String::from_utf8(bytes) {
                Ok(text) if column.character_set() != BINARY_CHARSET => Cell::Text(text),
                Ok(text) => Cell::Bytes(text.into_bytes()),
                Err(e) => Cell::Bytes(e.into_bytes()),
            })
        }
        Value::Date(year, month, day, hour, minute, second, micros) => {
            let date = format!("{year:04}-{month:02}-{day:02}");
            if matches!(ty, MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE) {
                Cell::Text(date)
            } else {
                let time = clock(u64::from(hour), minute, second, micros);
                Cell::Text(format!("{date} {time}"))
            }
        }
        Value::Time(negative, days, hour, minute, second, micros) => {
            let hours = u64::from(days) * 24 + u64::from(hour);
            let sign = if negative { "-" } else { "" };
            Cell::Text(format!("{sign}{}", clock(hours, minute, second, micros)))
        }
    }
}

/// `HH:MM:SS`, with `.ffffff` when there are microseconds.
fn clock(hours: u64, minute: u8, second: u8, micros: u32) -> String {
    if micros == 0 {
        format!("{hours:02}:{minute:02}:{second:02}")
    } else {
        format!("{hours:02}:{minute:02}:{second:02}.{micros:06}")
    }
}

/// A driver error as a [`DbError`]: a server error keeps the connection (unless the server
/// says it is going away), anything on the wire drops it.
fn from_error(e: &mysql::Error) -> DbError {
    match e {
        mysql::Error::MySqlError(server) => {
            // 1053 server shutdown, 1927 connection killed, 4031 disconnected for inactivity.
            let broken = matches!(server.code, 1053 | 1927 | 4031);
            DbError {
                message: format!(
                    "{} (error {}, SQLSTATE {})",
                    server.message, server.code, server.state
                ),
                code: Some(server.code.to_string()),
                broken,
            }
        }
        mysql::Error::DriverError(mysql::DriverError::MismatchedStmtParams(..)) => {
            DbError::statement(e.to_string(), None)
        }
        other => DbError::connection(other.to_string()),
    }
}
