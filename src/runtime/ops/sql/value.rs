//! Values between Lua and SQL: the parameters a job binds ([`Param`]), the cells a query
//! returns ([`Cell`]), and `core.NULL`, the value that stands for SQL NULL in both directions.
//!
//! `core.NULL` is a light userdata holding the null pointer, like `OpenResty`'s `ngx.null` that
//! Coronium's own MySQL results used: a value that is not `nil` (so a row keeps the key of a
//! NULL column), equal to itself, and the same in every Luau state.

use mlua::{LightUserData, Lua, Table, Value};

use crate::runtime::ops::args::describe;

/// A parameter bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// A Lua string that is not UTF-8: bound as bytes (a BLOB or `bytea`).
    Bytes(Vec<u8>),
}

/// A value of a returned row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Text, and what is shown as text: decimals, dates, times, UUIDs, JSON.
    Text(String),
    Bytes(Vec<u8>),
}

/// The largest integer a Lua number holds exactly (2^53); larger ones are returned as strings.
const EXACT: u64 = 1 << 53;

impl Cell {
    /// Bytes the cell counts for against `max_result`.
    pub fn size(&self) -> u64 {
        match self {
            Cell::Text(text) => text.len() as u64,
            Cell::Bytes(bytes) => bytes.len() as u64,
            _ => 8,
        }
    }

    /// The cell as a Lua value: NULL as `core.NULL`, integers past 2^53 as strings.
    pub fn into_lua(self, lua: &Lua) -> mlua::Result<Value> {
        Ok(match self {
            Cell::Null => null(),
            Cell::Bool(b) => Value::Boolean(b),
            #[allow(clippy::cast_precision_loss)] // exact within 2^53
            Cell::Int(n) if n.unsigned_abs() <= EXACT => Value::Number(n as f64),
            Cell::Int(n) => Value::String(lua.create_string(n.to_string())?),
            #[allow(clippy::cast_precision_loss)]
            Cell::UInt(n) if n <= EXACT => Value::Number(n as f64),
            Cell::UInt(n) => Value::String(lua.create_string(n.to_string())?),
            Cell::Float(x) => Value::Number(x),
            Cell::Text(text) => Value::String(lua.create_string(text)?),
            Cell::Bytes(bytes) => Value::String(lua.create_string(bytes)?),
        })
    }
}

/// `core.NULL`.
pub(crate) fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// Whether `value` is `core.NULL`.
pub(crate) fn is_null(value: &Value) -> bool {
    matches!(value, Value::LightUserData(ud) if ud.0.is_null())
}

/// A Lua value as a parameter; `nil` and `core.NULL` are NULL. `what` names it for the error
/// (`parameter 2`).
pub(crate) fn param(value: &Value, what: &str) -> Result<Param, String> {
    match value {
        Value::Nil => Ok(Param::Null),
        v if is_null(v) => Ok(Param::Null),
        Value::Boolean(b) => Ok(Param::Bool(*b)),
        Value::Integer(n) => Ok(Param::Int(*n)),
        #[allow(clippy::cast_possible_truncation)] // checked: integral and in range
        Value::Number(x) if x.fract() == 0.0 && x.abs() < 9.2e18 => Ok(Param::Int(*x as i64)),
        Value::Number(x) => Ok(Param::Float(*x)),
        Value::String(s) => Ok(match s.to_str() {
            Ok(text) => Param::Text(text.to_string()),
            Err(_) => Param::Bytes(s.as_bytes().to_vec()),
        }),
        other => Err(format!(
            "{what} is {}: expected a string, a number, a boolean, nil or core.NULL",
            describe(other)
        )),
    }
}

/// The rows as an array of tables keyed by column name.
pub(crate) fn rows_table(
    lua: &Lua,
    columns: &[String],
    rows: Vec<Vec<Cell>>,
) -> mlua::Result<Table> {
    let array = lua.create_table_with_capacity(rows.len(), 0)?;
    for (i, row) in rows.into_iter().enumerate() {
        array.raw_set(i + 1, row_table(lua, columns, row)?)?;
    }
    Ok(array)
}

/// One row as a table keyed by column name (a later column of the same name wins).
pub(crate) fn row_table(lua: &Lua, columns: &[String], row: Vec<Cell>) -> mlua::Result<Table> {
    let table = lua.create_table_with_capacity(0, columns.len())?;
    for (name, cell) in columns.iter().zip(row) {
        table.raw_set(name.as_str(), cell.into_lua(lua)?)?;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_values_become_parameters() {
        let lua = Lua::new();
        assert_eq!(param(&Value::Nil, "p"), Ok(Param::Null));
        assert_eq!(param(&null(), "p"), Ok(Param::Null));
        assert_eq!(param(&Value::Number(3.0), "p"), Ok(Param::Int(3)));
        assert_eq!(param(&Value::Number(2.5), "p"), Ok(Param::Float(2.5)));
        let s = Value::String(lua.create_string("x' OR 1=1").unwrap());
        assert_eq!(param(&s, "p"), Ok(Param::Text("x' OR 1=1".into())));
        let b = Value::String(lua.create_string([0xff, 0]).unwrap());
        assert_eq!(param(&b, "p"), Ok(Param::Bytes(vec![0xff, 0])));
        let t = Value::Table(lua.create_table().unwrap());
        assert_eq!(
            param(&t, "parameter 2").unwrap_err(),
            "parameter 2 is a table: expected a string, a number, a boolean, nil or core.NULL"
        );
    }

    #[test]
    fn cells_become_lua_values() {
        let lua = Lua::new();
        assert!(is_null(&Cell::Null.into_lua(&lua).unwrap()));
        assert_eq!(Cell::Int(-7).into_lua(&lua).unwrap(), Value::Number(-7.0));
        let big = Cell::UInt(u64::MAX).into_lua(&lua).unwrap();
        assert_eq!(big.to_string().unwrap(), u64::MAX.to_string());
    }
}
