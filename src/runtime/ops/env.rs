//! `core.env(name)`: only the variables listed in the job's `env:`.

use mlua::{Lua, MultiValue, Table, Value};

use super::{context, fail};

/// Registers `core.env`.
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    core.raw_set(
        "env",
        lua.create_function(|lua, name: String| -> mlua::Result<MultiValue> {
            let (listed, job) = {
                let ops = context(lua)?;
                (ops.grants.env.contains(&name), ops.grants.job.clone())
            };
            if !listed {
                return fail(
                    lua,
                    format!(
                        "core.env cannot read {name} for job {job}: add it to `env: [{name}]` in its entry in jobs.yaml"
                    ),
                );
            }
            match std::env::var(&name) {
                Ok(value) => Ok(MultiValue::from_iter([Value::String(lua.create_string(&value)?)])),
                Err(_) => fail(lua, format!("{name} is not set in jobtop's environment")),
            }
        })?,
    )
}
