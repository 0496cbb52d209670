//! `core.mysql`: Coronium Core's MySQL module, for the MySQL and MariaDB databases of
//! `service.databases`, on top of `core.sql`'s connections and limits.
//!
//! * `query(db, sql)` (also `q`): a SELECT's records; for INSERT the new id, for UPDATE and
//!   DELETE the number of rows; for anything else `{affected, last_id}`.
//! * The "EZ query" calls `select`, `selectOne`, `selectCount`, `insert`, `update`, `delete`
//!   take Coronium's tables (`tbl`, `columns`, `where`, `values`, `orderby`, `limit`,
//!   `distinct`, `force`) and build SQL with placeholders (`build`): every value is bound,
//!   every table and column name is checked and quoted.
//! * `escape(s)` and `escapeAll(t)` quote strings for SQL a job writes itself; `timestamp`,
//!   `date`, `localTimestamp`, `localDate` give MySQL's text forms of a time.
//!
//! Every call that reaches the database returns `result` or `nil, err, code` (the MySQL
//! error number), as Coronium's did. `db` is a database name; Coronium's connection tables
//! are refused, since databases and their time limits are set in `jobs.yaml`.

mod build;

use chrono::{DateTime, Local, Utc};
use mlua::{Lua, MultiValue, Table, Value};

use self::build::{Built, columns, limit, order_by, table, values, where_clause};
use super::args::{Options, describe, number};
use super::sql::{self, CallError};
use crate::config::DatabaseKind;

/// Registers `core.mysql`.
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    let mysql = lua.create_table()?;
    let query = lua.create_function(|lua, (db, text, params): (Value, Value, MultiValue)| {
        call(
            lua,
            "core.mysql.query",
            &db,
            |db| {
                let statement = sql::statement(db, "core.mysql.query", &text, params.iter())?;
                Ok(Built {
                    sql: statement.sql,
                    params: statement.params,
                })
            },
            query_result,
        )
    })?;
    mysql.raw_set("query", query.clone())?;
    mysql.raw_set("q", query)?;
    ez(
        lua,
        &mysql,
        "select",
        &["tbl", "columns", "where", "orderby", "limit", "distinct"],
        |o| select(o, false),
        rows,
    )?;
    ez(
        lua,
        &mysql,
        "selectOne",
        &["tbl", "columns", "where"],
        |o| select(o, true),
        first_row,
    )?;
    ez(
        lua,
        &mysql,
        "selectCount",
        &["tbl", "where", "column"],
        count,
        count_result,
    )?;
    ez(
        lua,
        &mysql,
        "insert",
        &["tbl", "values"],
        insert,
        |_, a, _| Ok(id(a.last_id.unwrap_or(0))),
    )?;
    ez(
        lua,
        &mysql,
        "update",
        &["tbl", "values", "where"],
        update,
        |_, a, _| Ok(id(a.affected)),
    )?;
    ez(
        lua,
        &mysql,
        "delete",
        &["tbl", "where", "force"],
        delete,
        |_, a, _| Ok(id(a.affected)),
    )?;
    register_text(lua, &mysql)?;
    mysql.set_readonly(true);
    core.raw_set("mysql", mysql)
}

/// `escape`, `escapeAll` and the time functions: text for SQL a job writes itself.
fn register_text(lua: &Lua, mysql: &Table) -> mlua::Result<()> {
    mysql.raw_set(
        "escape",
        lua.create_function(|lua, value: Value| match &value {
            Value::String(s) => lua.create_string(escape(&s.as_bytes())).map(Value::String),
            other => Err(mlua::Error::runtime(format!(
                "core.mysql.escape: the value is {}: expected a string",
                describe(other)
            ))),
        })?,
    )?;
    mysql.raw_set(
        "escapeAll",
        lua.create_function(|lua, values: Table| {
            let escaped = lua.create_table()?;
            for pair in values.pairs::<Value, Value>() {
                let (key, value) = pair?;
                let value = match value {
                    Value::String(s) => Value::String(lua.create_string(escape(&s.as_bytes()))?),
                    other => other,
                };
                escaped.raw_set(key, value)?;
            }
            Ok(escaped)
        })?,
    )?;
    for (name, local, format) in [
        ("timestamp", false, "%Y-%m-%d %H:%M:%S"),
        ("date", false, "%Y-%m-%d"),
        ("localTimestamp", true, "%Y-%m-%d %H:%M:%S"),
        ("localDate", true, "%Y-%m-%d"),
    ] {
        mysql.raw_set(
            name,
            lua.create_function(move |_, seconds: Option<f64>| {
                time_text(name, seconds, local, format)
            })?,
        )?;
    }
    Ok(())
}

/// Registers one EZ query function: `build` makes the SQL from the options table, `shape`
/// makes the result.
fn ez(
    lua: &Lua,
    mysql: &Table,
    name: &'static str,
    known: &'static [&'static str],
    build: fn(&mut Options) -> Result<Built, String>,
    shape: fn(&Lua, sql::Answer, &str) -> mlua::Result<Value>,
) -> mlua::Result<()> {
    let function = lua.create_function(move |lua, (db, opts): (Value, Value)| {
        let what = format!("core.mysql.{name}");
        call(
            lua,
            &what,
            &db,
            |db| {
                let mut options = if opts.is_table() {
                    Options::read(&opts, known)
                } else {
                    Err(format!(
                        "the query table is {}: expected a table with {}",
                        describe(&opts),
                        super::args::one_of(known)
                    ))
                }
                .map_err(|e| CallError::plain(format!("{what}({}): {e}", db.name)))?;
                build(&mut options)
                    .map_err(|e| CallError::plain(format!("{what}({}): {e}", db.name)))
            },
            shape,
        )
        .and_then(|result| no_record(lua, name, &db, result))
    })?;
    mysql.raw_set(name, function)
}

/// `selectOne` that matched nothing: `nil, "… no record matches"` rather than a bare `nil`,
/// so that the `if not res then core.log(err)` of Coronium's examples says why.
fn no_record(lua: &Lua, name: &str, db: &Value, result: MultiValue) -> mlua::Result<MultiValue> {
    if name != "selectOne" || result.len() != 1 || !result.front().is_some_and(Value::is_nil) {
        return Ok(result);
    }
    let db = match db {
        Value::String(s) => s.to_string_lossy(),
        _ => String::new(),
    };
    sql::failure(
        lua,
        CallError::plain(format!("core.mysql.selectOne({db}): no record matches")),
    )
}

/// Checks the grant and the kind, builds the SQL, runs it and shapes the answer.
fn call(
    lua: &Lua,
    what: &str,
    db: &Value,
    make: impl FnOnce(&crate::config::Database) -> Result<Built, CallError>,
    shape: fn(&Lua, sql::Answer, &str) -> mlua::Result<Value>,
) -> mlua::Result<MultiValue> {
    if let Value::Table(_) = db {
        return sql::failure(
            lua,
            CallError::plain(format!(
                "{what}: the database is a connection table, which jobtop does not take: \
                 expected the name of one of the job's databases (servers, users and passwords \
                 are set in service.databases of jobs.yaml, the time limit is the run's timeout)"
            )),
        );
    }
    let result = sql::granted(lua, what, db).and_then(|(db, limits)| {
        if db.kind() != DatabaseKind::MySql {
            return Err(CallError::plain(format!(
                "{what}({}): the database is {}: expected a MySQL or MariaDB database \
                 (core.sql works with every kind)",
                db.name,
                db.kind().as_str()
            )));
        }
        let built = make(&db)?;
        let statement = sql::Statement {
            sql: built.sql.clone(),
            params: built.params,
        };
        let answer = sql::run(&db, &limits, statement).map_err(|e| e.within(what, &db))?;
        Ok((answer, built.sql))
    });
    sql::answer(lua, result, |lua, (answer, text)| shape(lua, answer, &text))
}

/// A count or id as a Lua number.
#[allow(clippy::cast_precision_loss)] // far below 2^53
fn id(n: u64) -> Value {
    Value::Number(n as f64)
}

/// What `query` returns: records for a statement with columns, else by its first word: the
/// new id for INSERT (and REPLACE), the rows changed for UPDATE and DELETE, and for anything
/// else `{affected, last_id}`.
fn query_result(lua: &Lua, answer: sql::Answer, text: &str) -> mlua::Result<Value> {
    if !answer.columns.is_empty() {
        return rows(lua, answer, text);
    }
    let verb: String = text
        .trim_start()
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_uppercase();
    match verb.as_str() {
        "INSERT" | "REPLACE" => return Ok(id(answer.last_id.unwrap_or(0))),
        "UPDATE" | "DELETE" => return Ok(id(answer.affected)),
        _ => {}
    }
    let table = lua.create_table()?;
    table.raw_set("affected", id(answer.affected))?;
    table.raw_set("last_id", answer.last_id.map(id))?;
    Ok(Value::Table(table))
}

fn rows(lua: &Lua, answer: sql::Answer, _: &str) -> mlua::Result<Value> {
    Ok(Value::Table(sql::value::rows_table(
        lua,
        &answer.columns,
        answer.rows,
    )?))
}

fn first_row(lua: &Lua, answer: sql::Answer, _: &str) -> mlua::Result<Value> {
    match answer.rows.into_iter().next() {
        Some(row) => Ok(Value::Table(sql::value::row_table(
            lua,
            &answer.columns,
            row,
        )?)),
        None => Ok(Value::Nil),
    }
}

fn count_result(lua: &Lua, answer: sql::Answer, _: &str) -> mlua::Result<Value> {
    let cell = answer
        .rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next());
    cell.map_or(Ok(Value::Number(0.0)), |c| c.into_lua(lua))
}

/// `SELECT`: `one` for selectOne (`LIMIT 1`).
fn select(opts: &mut Options, one: bool) -> Result<Built, String> {
    let tbl = table(&opts.take("tbl").unwrap_or(Value::Nil))?;
    let cols = columns(opts.take("columns").as_ref())?;
    let mut params = Vec::new();
    let distinct = match opts.take("distinct") {
        None | Some(Value::Boolean(false)) => "",
        Some(Value::Boolean(true)) => "DISTINCT ",
        Some(other) => {
            return Err(format!(
                "distinct is {}: expected true or false",
                describe(&other)
            ));
        }
    };
    let mut sql = format!("SELECT {distinct}{cols} FROM {tbl}");
    if let Some(clause) = where_clause(&opts.take("where").unwrap_or(Value::Nil), &mut params)? {
        sql.push_str(" WHERE ");
        sql.push_str(&clause);
    }
    if let Some(order) = opts.take("orderby") {
        sql.push_str(" ORDER BY ");
        sql.push_str(&order_by(&order)?);
    }
    if one {
        sql.push_str(" LIMIT 1");
    } else if let Some(n) = opts.take("limit") {
        sql.push_str(" LIMIT ");
        sql.push_str(&limit(&n)?);
    }
    Ok(Built { sql, params })
}

/// `SELECT COUNT(column)`, `id` by default.
fn count(opts: &mut Options) -> Result<Built, String> {
    let tbl = table(&opts.take("tbl").unwrap_or(Value::Nil))?;
    let column = match opts.take("column") {
        Some(c) => build::ident(&c, "column")?,
        None => "`id`".to_string(),
    };
    let mut params = Vec::new();
    let mut sql = format!("SELECT COUNT({column}) FROM {tbl}");
    if let Some(clause) = where_clause(&opts.take("where").unwrap_or(Value::Nil), &mut params)? {
        sql.push_str(" WHERE ");
        sql.push_str(&clause);
    }
    Ok(Built { sql, params })
}

fn insert(opts: &mut Options) -> Result<Built, String> {
    let tbl = table(&opts.take("tbl").unwrap_or(Value::Nil))?;
    let pairs = values(opts.take("values").as_ref())?;
    let names: Vec<&str> = pairs.iter().map(|(c, _)| c.as_str()).collect();
    let marks = vec!["?"; pairs.len()].join(", ");
    let sql = format!("INSERT INTO {tbl} ({}) VALUES ({marks})", names.join(", "));
    Ok(Built {
        sql,
        params: pairs.into_iter().map(|(_, p)| p).collect(),
    })
}

fn update(opts: &mut Options) -> Result<Built, String> {
    let tbl = table(&opts.take("tbl").unwrap_or(Value::Nil))?;
    let pairs = values(opts.take("values").as_ref())?;
    let sets: Vec<String> = pairs.iter().map(|(c, _)| format!("{c} = ?")).collect();
    let mut params: Vec<_> = pairs.into_iter().map(|(_, p)| p).collect();
    let mut sql = format!("UPDATE {tbl} SET {}", sets.join(", "));
    if let Some(clause) = where_clause(&opts.take("where").unwrap_or(Value::Nil), &mut params)? {
        sql.push_str(" WHERE ");
        sql.push_str(&clause);
    }
    Ok(Built { sql, params })
}

fn delete(opts: &mut Options) -> Result<Built, String> {
    let tbl = table(&opts.take("tbl").unwrap_or(Value::Nil))?;
    let force = match opts.take("force") {
        None => false,
        Some(Value::Boolean(b)) => b,
        Some(other) => {
            return Err(format!(
                "force is {}: expected true or false",
                describe(&other)
            ));
        }
    };
    let mut params = Vec::new();
    let mut sql = format!("DELETE FROM {tbl}");
    match where_clause(&opts.take("where").unwrap_or(Value::Nil), &mut params)? {
        Some(clause) => {
            sql.push_str(" WHERE ");
            sql.push_str(&clause);
        }
        None if force => {}
        None => {
            return Err(
                "no where given, which would delete every row: expected where, or \
                 force = true to delete them all"
                    .into(),
            );
        }
    }
    Ok(Built { sql, params })
}

/// A string as a MySQL literal in single quotes. A quote is doubled (safe whether or not the
/// server treats backslashes as escapes), and backslashes, NUL, line breaks and ^Z are escaped
/// as `mysql_real_escape_string` does.
pub(super) fn escape(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    out.push(b'\'');
    for &b in text {
        match b {
            b'\'' => out.extend_from_slice(b"''"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0 => out.extend_from_slice(b"\\0"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x1a => out.extend_from_slice(b"\\Z"),
            other => out.push(other),
        }
    }
    out.push(b'\'');
    out
}

/// `timestamp`, `date` and their local forms, of `seconds` since the epoch or now.
fn time_text(name: &str, seconds: Option<f64>, local: bool, format: &str) -> mlua::Result<String> {
    let at: DateTime<Utc> = match seconds {
        None => Utc::now(),
        Some(secs) => {
            let whole = number(&Value::Number(secs.floor()))
                .filter(|s| s.is_finite() && s.abs() < 1e13)
                .ok_or_else(|| {
                    mlua::Error::runtime(format!(
                        "core.mysql.{name}({secs}): expected a UNIX time in seconds"
                    ))
                })?;
            #[allow(clippy::cast_possible_truncation)] // checked above
            DateTime::from_timestamp(whole as i64, 0).ok_or_else(|| {
                mlua::Error::runtime(format!(
                    "core.mysql.{name}({secs}): expected a UNIX time in seconds"
                ))
            })?
        }
    };
    Ok(if local {
        at.with_timezone(&Local).format(format).to_string()
    } else {
        at.format(format).to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_quotes_and_escapes() {
        assert_eq!(escape(b"Eat at Joe's"), b"'Eat at Joe''s'".to_vec());
        assert_eq!(escape(b"a\\' OR 1=1 --"), b"'a\\\\'' OR 1=1 --'".to_vec());
        assert_eq!(escape(b"x\0\n"), b"'x\\0\\n'".to_vec());
    }

    #[test]
    fn times_are_mysql_text() {
        assert_eq!(
            time_text("t", Some(0.0), false, "%Y-%m-%d %H:%M:%S").unwrap(),
            "1970-01-01 00:00:00"
        );
        assert_eq!(
            time_text("d", Some(86_400.5), false, "%Y-%m-%d").unwrap(),
            "1970-01-02"
        );
        assert!(time_text("t", Some(f64::NAN), false, "%Y").is_err());
    }
}
