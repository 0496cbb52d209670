//! Coronium's small utilities: `core.sf`, `core.trim`, `core.split`, `core.uuid`, `core.md5`,
//! and `core.sleep`.

use std::fmt::Write as _;

use md5::{Digest, Md5};
use mlua::{Lua, Table, Value};

use super::args::seconds;
use super::bounded_sleep;

/// Registers the utilities into `core`.
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    let string: Table = lua.globals().get("string")?;
    core.raw_set("sf", string.get::<Value>("format")?)?;
    core.raw_set(
        "trim",
        lua.create_function(|lua, text: mlua::LuaString| {
            let text = text.to_string_lossy();
            lua.create_string(text.trim())
        })?,
    )?;
    core.raw_set(
        "split",
        lua.create_function(
            |lua, (text, delimiter): (mlua::LuaString, Option<mlua::LuaString>)| {
                let text = text.to_string_lossy();
                let delimiter = delimiter.map_or_else(|| ",".to_string(), |d| d.to_string_lossy());
                let parts = lua.create_table()?;
                if delimiter.is_empty() {
                    for (i, c) in text.chars().enumerate() {
                        parts.raw_set(i + 1, c.to_string())?;
                    }
                } else {
                    for (i, part) in text.split(delimiter.as_str()).enumerate() {
                        parts.raw_set(i + 1, part)?;
                    }
                }
                Ok(parts)
            },
        )?,
    )?;
    core.raw_set(
        "uuid",
        lua.create_function(|_, ()| Ok(uuid::Uuid::new_v4().to_string()))?,
    )?;
    core.raw_set(
        "md5",
        lua.create_function(|_, text: mlua::LuaString| {
            let digest = Md5::digest(text.as_bytes());
            let mut hex = String::with_capacity(32);
            for byte in digest {
                let _ = write!(hex, "{byte:02x}");
            }
            Ok(hex)
        })?,
    )?;
    core.raw_set(
        "sleep",
        lua.create_function(|lua, secs: f64| {
            // Unlike a timeout, 0 is a valid sleep: it only gives way to an abort.
            let wanted = seconds(secs).ok_or_else(|| {
                mlua::Error::runtime(format!(
                    "core.sleep({secs}): expected a number of seconds, 0 or more"
                ))
            })?;
            bounded_sleep(lua, wanted)
        })?,
    )?;
    Ok(())
}
