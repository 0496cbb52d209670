//! The SQL of Coronium's "EZ query" tables, built with placeholders: identifiers checked and
//! quoted in backquotes, every value bound as a parameter (the string `'NULL'` and
//! `core.NULL` as SQL NULL, as Coronium documented).
//!
//! `where` as a table (Coronium's rules, docs/core-api.md#coremysql):
//! * `{color = "Red", kind = "Truck"}`: each pair `=`, joined with AND (a NULL value is
//!   `IS NULL`);
//! * `{kind = {"Truck", "Car"}}`: a list is its alternatives joined with OR;
//! * a group whose values are all lists is one OR of every alternative
//!   (`{color = {"Red"}, kind = {"Truck"}}` is `color = 'Red' OR kind = 'Truck'`); a group
//!   mixing both is its pairs and its lists (each in parentheses) joined with AND;
//! * an array of groups (`{ {…}, {…} }`): the groups, each in parentheses, joined with AND.
//!
//! Keys are taken in sorted order, so the same table always builds the same SQL. A string
//! `where` is SQL written by the job and used as it is.

use mlua::Value;

use crate::runtime::ops::args::{describe, number};
use crate::runtime::ops::sql::value::{Param, is_null, param};

/// SQL with its parameters.
pub(super) struct Built {
    pub sql: String,
    pub params: Vec<Param>,
}

/// What identifiers may be: letters, digits, `_` and `$`, at most 64 characters.
const EXPECT_IDENT: &str = "a plain name: letters, digits, '_' and '$', at most 64 characters";

/// `name` in backquotes, once it is checked to be a plain identifier; `what` names it.
pub(super) fn ident(name: &Value, what: &str) -> Result<String, String> {
    let Value::String(text) = name else {
        return Err(format!(
            "{what} is {}: expected {EXPECT_IDENT}",
            describe(name)
        ));
    };
    ident_text(&text.to_string_lossy(), what)
}

/// [`ident`] for a name already read.
fn ident_text(text: &str, what: &str) -> Result<String, String> {
    let plain = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$');
    if plain {
        Ok(format!("`{text}`"))
    } else {
        Err(format!("{what} {text:?} is not {EXPECT_IDENT}"))
    }
}

/// `tbl`: a table name, or `database.table`.
pub(super) fn table(name: &Value) -> Result<String, String> {
    if let Value::String(text) = name
        && let Some((db, tbl)) = text.to_string_lossy().split_once('.')
    {
        return Ok(format!(
            "{}.{}",
            ident_text(db, "tbl")?,
            ident_text(tbl, "tbl")?
        ));
    }
    ident(name, "tbl")
}

/// A value of `values` or `where`: Coronium's string `'NULL'` is SQL NULL too.
fn value(v: &Value, what: &str) -> Result<Param, String> {
    if let Value::String(s) = v
        && s.as_bytes() == b"NULL"
    {
        return Ok(Param::Null);
    }
    param(v, what)
}

/// The pairs of a Lua table sorted by key; every key must be a string.
fn sorted_pairs(table: &mlua::Table, what: &str) -> Result<Vec<(String, Value)>, String> {
    let mut pairs = Vec::new();
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| format!("{what} cannot be read: {e}"))?;
        let Value::String(name) = &key else {
            return Err(format!(
                "{what} has a key that is {}: expected column = value pairs",
                describe(&key)
            ));
        };
        pairs.push((name.to_string_lossy(), value));
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(pairs)
}

/// Whether `table` is an array (its first element is set).
fn is_array(table: &mlua::Table) -> bool {
    table.raw_len() > 0
}

/// The WHERE clause for `where` (without the word), adding its values to `params`.
pub(super) fn where_clause(
    value: &Value,
    params: &mut Vec<Param>,
) -> Result<Option<String>, String> {
    match value {
        Value::Nil => Ok(None),
        Value::String(text) => Ok(Some(format!("({})", text.to_string_lossy()))),
        Value::Table(table) if is_array(table) => {
            let mut groups = Vec::new();
            for (i, group) in table.sequence_values::<Value>().enumerate() {
                let group = group.map_err(|e| format!("where cannot be read: {e}"))?;
                let Value::Table(group) = group else {
                    return Err(format!(
                        "where[{}] is {}: expected a table of column = value pairs",
                        i + 1,
                        describe(&group)
                    ));
                };
                groups.push(format!(
                    "({})",
                    group_clause(&group, &format!("where[{}]", i + 1), params)?
                ));
            }
            Ok(Some(groups.join(" AND ")))
        }
        Value::Table(table) => Ok(Some(group_clause(table, "where", params)?)),
        other => Err(format!(
            "where is {}: expected a table of column = value pairs, or an SQL string",
            describe(other)
        )),
    }
}

/// One group of `where` (see the module's comment).
fn group_clause(
    table: &mlua::Table,
    what: &str,
    params: &mut Vec<Param>,
) -> Result<String, String> {
    let pairs = sorted_pairs(table, what)?;
    if pairs.is_empty() {
        return Err(format!(
            "{what} is an empty table: expected column = value pairs (leave where out to \
             match every row)"
        ));
    }
    let mut scalars = Vec::new();
    let mut lists = Vec::new();
    for (name, v) in &pairs {
        let column = ident_text(name, &format!("a column in {what}"))?;
        match v {
            Value::Table(list) if !is_null(v) => {
                let mut alternatives = Vec::new();
                for item in list.sequence_values::<Value>() {
                    let item = item.map_err(|e| format!("{what}.{name} cannot be read: {e}"))?;
                    alternatives.push(compare(&column, &item, &format!("{what}.{name}"), params)?);
                }
                if alternatives.is_empty() {
                    return Err(format!(
                        "{what}.{name} is an empty list: expected at least one value"
                    ));
                }
                lists.push(alternatives);
            }
            _ => scalars.push(compare(&column, v, &format!("{what}.{name}"), params)?),
        }
    }
    if scalars.is_empty() {
        return Ok(lists.concat().join(" OR "));
    }
    let mut parts = scalars;
    for alternatives in lists {
        parts.push(format!("({})", alternatives.join(" OR ")));
    }
    Ok(parts.join(" AND "))
}

/// `` `col` = ? `` or `` `col` IS NULL ``.
fn compare(column: &str, v: &Value, what: &str, params: &mut Vec<Param>) -> Result<String, String> {
    match value(v, what)? {
        Param::Null => Ok(format!("{column} IS NULL")),
        bound => {
            params.push(bound);
            Ok(format!("{column} = ?"))
        }
    }
}

/// `columns`: `*` when absent or empty, else each checked.
pub(super) fn columns(value: Option<&Value>) -> Result<String, String> {
    let Some(value) = value else {
        return Ok("*".into());
    };
    let Value::Table(list) = value else {
        return Err(format!(
            "columns is {}: expected a list of column names",
            describe(value)
        ));
    };
    let mut names = Vec::new();
    for item in list.sequence_values::<Value>() {
        let item = item.map_err(|e| format!("columns cannot be read: {e}"))?;
        if matches!(&item, Value::String(s) if s.as_bytes() == b"*") {
            names.push("*".to_string());
        } else {
            names.push(ident(&item, "a name in columns")?);
        }
    }
    Ok(if names.is_empty() {
        "*".into()
    } else {
        names.join(", ")
    })
}

/// `orderby`: `{col = "ASC"|"DESC"}` (sorted by name), or a list of such one-pair tables.
pub(super) fn order_by(value: &Value) -> Result<String, String> {
    let Value::Table(table) = value else {
        return Err(format!(
            "orderby is {}: expected a table of column = \"ASC\" or \"DESC\"",
            describe(value)
        ));
    };
    let mut pairs = Vec::new();
    if is_array(table) {
        for item in table.sequence_values::<Value>() {
            let item = item.map_err(|e| format!("orderby cannot be read: {e}"))?;
            let Value::Table(one) = item else {
                return Err(format!(
                    "an entry of orderby is {}: expected a table such as {{score = \"DESC\"}}",
                    describe(&item)
                ));
            };
            pairs.extend(sorted_pairs(&one, "orderby")?);
        }
    } else {
        pairs = sorted_pairs(table, "orderby")?;
    }
    let mut parts = Vec::new();
    for (name, direction) in pairs {
        let column = ident_text(&name, "a column in orderby")?;
        let dir = match &direction {
            Value::String(s) if s.to_string_lossy().eq_ignore_ascii_case("asc") => "ASC",
            Value::String(s) if s.to_string_lossy().eq_ignore_ascii_case("desc") => "DESC",
            other => {
                return Err(format!(
                    "orderby.{name} is {}: expected \"ASC\" or \"DESC\" (core.ASC, core.DESC)",
                    describe(other)
                ));
            }
        };
        parts.push(format!("{column} {dir}"));
    }
    Ok(parts.join(", "))
}

/// `limit`: a count, or `{offset, count}`.
pub(super) fn limit(value: &Value) -> Result<String, String> {
    let whole = |v: &Value, what: &str| -> Result<u64, String> {
        number(v)
            .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n < 1.8e19)
            .map(|n| {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked
                let n = n as u64;
                n
            })
            .ok_or_else(|| {
                format!(
                    "{what} is {}: expected a whole number, 0 or more",
                    describe(v)
                )
            })
    };
    match value {
        Value::Table(pair) => {
            let offset: Value = pair.raw_get(1).unwrap_or(Value::Nil);
            let count: Value = pair.raw_get(2).unwrap_or(Value::Nil);
            Ok(format!(
                "{}, {}",
                whole(&offset, "limit[1]")?,
                whole(&count, "limit[2]")?
            ))
        }
        other => Ok(whole(other, "limit")?.to_string()),
    }
}

/// `values`: the columns and their parameters, in sorted order.
pub(super) fn values(given: Option<&Value>) -> Result<Vec<(String, Param)>, String> {
    let Some(Value::Table(table)) = given else {
        return Err(format!(
            "values is {}: expected a table of column = value pairs",
            given.map_or_else(|| "missing".to_string(), describe)
        ));
    };
    let pairs = sorted_pairs(table, "values")?;
    if pairs.is_empty() {
        return Err("values is an empty table: expected at least one column = value pair".into());
    }
    pairs
        .into_iter()
        .map(|(name, v)| {
            let column = ident_text(&name, "a column in values")?;
            Ok((column, value(&v, &format!("values.{name}"))?))
        })
        .collect()
}
