//! `core.json.encode/decode` (raise on bad input) and `core.json_safe.encode/decode` (return
//! `nil, err`).

use mlua::{Lua, LuaSerdeExt, MultiValue, Table, Value};

use super::args::describe;
use super::returns;

fn options() -> mlua::serde::SerializeOptions {
    mlua::serde::SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false)
        .set_array_metatable(false)
}

/// Encodes a Lua value as JSON text.
pub fn encode(lua: &Lua, value: &Value) -> Result<String, String> {
    let json: serde_json::Value = lua
        .from_value(value.clone())
        .map_err(|e| format!("cannot encode {} as JSON: {e}", describe(value)))?;
    serde_json::to_string(&json).map_err(|e| e.to_string())
}

/// Decodes JSON text into a Lua value (`null` becomes `nil`).
pub fn decode(lua: &Lua, text: &str) -> Result<Value, String> {
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("invalid JSON ({e}): expected a JSON document"))?;
    lua.to_value_with(&json, options())
        .map_err(|e| e.to_string())
}

/// Registers `core.json` and `core.json_safe`.
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    let safe = lua.create_table()?;
    safe.raw_set(
        "encode",
        lua.create_function(|lua, value: Value| -> mlua::Result<MultiValue> {
            let encoded = encode(lua, &value).and_then(|s| {
                lua.create_string(&s)
                    .map(Value::String)
                    .map_err(|e| e.to_string())
            });
            returns(lua, encoded)
        })?,
    )?;
    safe.raw_set(
        "decode",
        lua.create_function(|lua, text: Value| -> mlua::Result<MultiValue> {
            let decoded = match &text {
                Value::String(s) => decode(lua, &s.to_string_lossy()),
                other => Err(format!(
                    "cannot decode {}: expected a JSON string",
                    describe(other)
                )),
            };
            returns(lua, decoded)
        })?,
    )?;
    // The raising versions raise a plain message at the caller's line, as `error` would.
    let strict: Table = lua
        .load(
            r"
            local safe = ...
            local function raising(f)
              return function(value)
                local result, err = f(value)
                if err ~= nil then error(err, 2) end
                return result
              end
            end
            return { encode = raising(safe.encode), decode = raising(safe.decode) }
            ",
        )
        .set_name("=core.json")
        .call(safe.clone())?;
    strict.set_readonly(true);
    safe.set_readonly(true);
    core.raw_set("json", strict)?;
    core.raw_set("json_safe", safe)?;
    Ok(())
}
