//! PostgreSQL through the synchronous `postgres` crate (rustls for TLS).
//!
//! Parameters go in text format, as `psql` and libpq send them, so that the server parses
//! each into whatever type the statement needs (`42` into an `int4`, `2024-05-01` into a
//! `date`): a Lua value never has to guess a PostgreSQL type. Rows come back in binary and are
//! decoded here by column type; a type with no natural Lua value (arrays, ranges, intervals,
//! composites) is an error that says to cast it (`col::text`).

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::BytesMut;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{Format, FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};
use postgres::{CancelToken, Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::backend::{
    Answer, Canceller, Caps, Connection, DbError, Statement, Tally, in_background,
};
use super::value::{Cell, Param};
use crate::config::Server;

/// A connection and what its cancel requests go through.
struct Pg {
    client: Client,
}

/// Connects within `timeout`.
pub(super) fn connect(
    server: &Server,
    timeout: Duration,
) -> Result<(Box<dyn Connection>, Canceller), DbError> {
    let mut config = postgres::Config::new();
    config
        .host(&server.host)
        .port(server.port)
        .user(&server.user)
        .application_name("jobtop")
        .connect_timeout(timeout.max(Duration::from_millis(1)))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(60));
    if let Some(password) = &server.password {
        config.password(password.expose());
    }
    if let Some(db) = &server.database {
        config.dbname(db);
    }
    let failed = |e: postgres::Error| DbError::connection(error_text(&e));
    let (client, canceller): (Client, Canceller) = if server.tls {
        config.ssl_mode(postgres::config::SslMode::Require);
        let tls = MakeRustlsConnect::new(super::tls::client_config().map_err(DbError::connection)?);
        let client = config.connect(tls.clone()).map_err(failed)?;
        let token = client.cancel_token();
        (client, cancel_with(token, move || tls.clone()))
    } else {
        config.ssl_mode(postgres::config::SslMode::Disable);
        let client = config.connect(NoTls).map_err(failed)?;
        let token = client.cancel_token();
        (client, cancel_with(token, || NoTls))
    };
    Ok((Box::new(Pg { client }), canceller))
}

/// A canceller that sends PostgreSQL's cancel request for the connection of `token`.
fn cancel_with<T, F>(token: CancelToken, tls: F) -> Canceller
where
    F: Fn() -> T + Send + Sync + 'static,
    T: postgres::tls::MakeTlsConnect<postgres::Socket> + Send + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as postgres::tls::TlsConnect<postgres::Socket>>::Future: Send,
{
    let tls = std::sync::Arc::new(tls);
    std::sync::Arc::new(move || {
        let token = token.clone();
        let tls = tls.clone();
        in_background(move || {
            if let Err(e) = token.cancel_query(tls()) {
                tracing::warn!("cancelling a PostgreSQL query failed: {e}");
            }
        });
    })
}

impl Connection for Pg {
    fn run(&mut self, statement: &Statement, caps: Caps, _: Duration) -> Result<Answer, DbError> {
        let params: Vec<&(dyn ToSql + Sync)> = statement
            .params
            .iter()
            .map(|p| p as &(dyn ToSql + Sync))
            .collect();
        let mut rows = self
            .client
            .query_raw(statement.sql.as_str(), params)
            .map_err(|e| from_error(&e))?;
        let mut answer = Answer::default();
        let mut tally = Tally::new(caps);
        while let Some(row) = rows.next().map_err(|e| from_error(&e))? {
            if answer.columns.is_empty() {
                answer.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
            }
            let mut cells = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                let cell: Cell = row.try_get(i).map_err(|e| {
                    DbError::statement(
                        format!("column {:?}: {}", row.columns()[i].name(), source_text(&e)),
                        None,
                    )
                })?;
                cells.push(cell);
            }
            tally.add(&cells)?;
            answer.rows.push(cells);
        }
        answer.affected = rows.rows_affected().unwrap_or(0);
        Ok(answer)
    }

    fn ping(&mut self) -> bool {
        self.client.is_valid(Duration::from_secs(5)).is_ok()
    }
}

/// A driver error as a [`DbError`]: a server error keeps the connection unless it says the
/// session is over (class 08, connection exceptions; 57P, the server shutting down).
fn from_error(e: &postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(db) if !e.is_closed() => {
            let code = db.code().code().to_string();
            let mut message = db.message().to_string();
            if let Some(detail) = db.detail() {
                message.push_str(" (");
                message.push_str(detail);
                message.push(')');
            }
            let broken = code.starts_with("08") || code.starts_with("57P");
            DbError {
                message: format!("{message} (SQLSTATE {code})"),
                code: Some(code),
                broken,
            }
        }
        _ => DbError::connection(error_text(e)),
    }
}

/// The driver's message with its cause (`error connecting to server: Connection refused`).
fn error_text(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    if let Some(source) = e.source() {
        let source = source.to_string();
        if !text.contains(&source) {
            text.push_str(": ");
            text.push_str(&source);
        }
    }
    text
}

fn source_text(e: &postgres::Error) -> String {
    e.source()
        .map_or_else(|| e.to_string(), ToString::to_string)
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Param::Null => return Ok(IsNull::Yes),
            Param::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Param::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Param::Float(x) => out.extend_from_slice(float_text(*x).as_bytes()),
            Param::Text(text) => out.extend_from_slice(text.as_bytes()),
            Param::Bytes(bytes) if *ty == Type::BYTEA => out.extend_from_slice(bytes),
            Param::Bytes(bytes) => out.extend_from_slice(bytes),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, ty: &Type) -> Format {
        // Raw bytes for a bytea; everything else as text, parsed by the server.
        if matches!(self, Param::Bytes(_)) && *ty == Type::BYTEA {
            Format::Binary
        } else {
            Format::Text
        }
    }

    to_sql_checked!();
}

/// A float as PostgreSQL's input functions read it.
fn float_text(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{x:?}")
    }
}

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, BoxError> {
        if let Kind::Enum(_) = ty.kind() {
            return Ok(Cell::Text(<&str>::from_sql(&Type::TEXT, raw)?.to_string()));
        }
        if let Kind::Domain(inner) = ty.kind() {
            return Cell::from_sql(inner, raw);
        }
        let cell = match *ty {
            Type::BOOL => Cell::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => Cell::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Cell::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::OID => Cell::Int(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => Cell::Float(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Cell::Float(f64::from_sql(ty, raw)?),
            Type::NUMERIC => Cell::Text(numeric_text(raw)?),
            Type::BYTEA => Cell::Bytes(raw.to_vec()),
            Type::DATE => Cell::Text(NaiveDate::from_sql(ty, raw)?.format("%Y-%m-%d").to_string()),
            Type::TIMESTAMP => Cell::Text(
                NaiveDateTime::from_sql(ty, raw)?
                    .format("%Y-%m-%d %H:%M:%S%.f")
                    .to_string(),
            ),
            Type::TIMESTAMPTZ => Cell::Text(
                DateTime::<Utc>::from_sql(ty, raw)?
                    .format("%Y-%m-%d %H:%M:%S%.f+00")
                    .to_string(),
            ),
            Type::TIME => Cell::Text(
                NaiveTime::from_sql(ty, raw)?
                    .format("%H:%M:%S%.f")
                    .to_string(),
            ),
            Type::UUID => Cell::Text(uuid_text(raw)?),
            // jsonb is a version byte (1) and the JSON text.
            Type::JSONB => {
                Cell::Text(String::from_utf8_lossy(raw.get(1..).unwrap_or_default()).into_owned())
            }
            Type::JSON
            | Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
            | Type::CHAR
            | Type::UNKNOWN
            | Type::XML => Cell::Text(String::from_utf8_lossy(raw).into_owned()),
            _ if ty.name() == "citext" => Cell::Text(String::from_utf8_lossy(raw).into_owned()),
            _ => {
                return Err(format!(
                    "type {} has no Lua value: expected the query to cast it, such as {}::text",
                    ty.name(),
                    "column"
                )
                .into());
            }
        };
        Ok(cell)
    }

    fn from_sql_null(_: &Type) -> Result<Cell, BoxError> {
        Ok(Cell::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A UUID in its usual text form.
fn uuid_text(raw: &[u8]) -> Result<String, BoxError> {
    let bytes: [u8; 16] = raw.try_into().map_err(|_| "a uuid is not 16 bytes")?;
    Ok(uuid::Uuid::from_bytes(bytes).to_string())
}

/// A `numeric` in binary form (digit groups of base 10,000) as decimal text, to its scale.
fn numeric_text(raw: &[u8]) -> Result<String, BoxError> {
    let word = |i: usize| -> Result<i16, BoxError> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "a numeric value is cut short".into())
    };
    let groups = usize::try_from(word(0)?).map_err(|_| "a numeric value is malformed")?;
    let weight = i32::from(word(1)?);
    let sign = word(2)?.cast_unsigned();
    let scale = usize::from(word(3)?.cast_unsigned());
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let mut digits = Vec::with_capacity(groups);
    for i in 0..groups {
        digits.push(word(4 + i)?);
    }
    let group = |index: i32| -> i16 {
        usize::try_from(index)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&group(0).to_string());
        for i in 1..=weight {
            let _ = write!(text, "{:04}", group(i));
        }
    }
    if scale > 0 {
        let mut fraction = String::new();
        let mut i = weight + 1;
        while fraction.len() < scale {
            let _ = write!(fraction, "{:04}", group(i));
            i += 1;
        }
        fraction.truncate(scale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(groups: &[i16], weight: i16, sign: u16, scale: u16) -> Vec<u8> {
        let mut raw = Vec::new();
        for w in [
            i16::try_from(groups.len()).unwrap(),
            weight,
            sign.cast_signed(),
            scale.cast_signed(),
        ] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        for g in groups {
            raw.extend_from_slice(&g.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numerics_are_decimal_text() {
        assert_eq!(
            numeric_text(&numeric(&[12, 3400], 0, 0, 2)).unwrap(),
            "12.34"
        );
        assert_eq!(
            numeric_text(&numeric(&[1, 0], 1, 0x4000, 0)).unwrap(),
            "-10000"
        );
        assert_eq!(numeric_text(&numeric(&[5], -1, 0, 3)).unwrap(), "0.000");
        assert_eq!(numeric_text(&numeric(&[500], -1, 0, 3)).unwrap(), "0.050");
        assert_eq!(numeric_text(&numeric(&[], 0, 0, 0)).unwrap(), "0");
        assert_eq!(numeric_text(&numeric(&[], 0, 0xC000, 0)).unwrap(), "NaN");
    }

    #[test]
    fn floats_are_written_as_the_server_reads_them() {
        assert_eq!(float_text(2.5), "2.5");
        assert_eq!(float_text(f64::NEG_INFINITY), "-Infinity");
    }
}
