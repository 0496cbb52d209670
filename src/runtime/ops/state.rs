//! `core.state.get/set/delete`: JSON-able values kept per job in the state database, so a job
//! can count runs or remember what it saw last time, across runs and restarts.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use mlua::{Lua, MultiValue, Table, Value};

use super::json::{decode, encode};
use super::{StateStore, context, fail, returns};
use crate::store::Store;

/// Longest JSON text one `core.state.set` may store.
const MAX_VALUE_BYTES: usize = 1 << 20;

/// `core.state` in the service's state database. Each worker thread keeps its own connection.
pub struct SqliteState {
    path: PathBuf,
}

impl SqliteState {
    /// Values in the database at `path` (created by the service).
    pub fn new(path: PathBuf) -> SqliteState {
        SqliteState { path }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Store) -> Result<T, String>) -> Result<T, String> {
        thread_local! {
            static OPEN: RefCell<HashMap<PathBuf, Store>> = RefCell::new(HashMap::new());
        }
        OPEN.with(|open| {
            let mut open = open.borrow_mut();
            if !open.contains_key(&self.path) {
                let store = Store::open(&self.path).map_err(|e| e.to_string())?;
                open.insert(self.path.clone(), store);
            }
            let store = open
                .get_mut(&self.path)
                .ok_or_else(|| "the state database is not open".to_string())?;
            f(store)
        })
    }
}

impl StateStore for SqliteState {
    fn get(&self, job: &str, key: &str) -> Result<Option<String>, String> {
        self.with(|store| store.state_get(job, key).map_err(|e| e.to_string()))
    }

    fn set(&self, job: &str, key: &str, json: &str) -> Result<(), String> {
        self.with(|store| store.state_set(job, key, json).map_err(|e| e.to_string()))
    }

    fn delete(&self, job: &str, key: &str) -> Result<(), String> {
        self.with(|store| store.state_delete(job, key).map_err(|e| e.to_string()))
    }
}

/// The run's store and job name, or why `core.state` is not available.
type StoreOf = Result<(std::sync::Arc<dyn StateStore>, String), String>;

fn store_of(lua: &Lua) -> mlua::Result<StoreOf> {
    let ops = context(lua)?;
    Ok(match &ops.grants.state {
        Some(store) => Ok((store.clone(), ops.grants.job.clone())),
        None => Err("core.state is not available in this run".to_string()),
    })
}

/// Registers `core.state`.
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    let state = lua.create_table()?;
    state.raw_set(
        "get",
        lua.create_function(|lua, key: String| -> mlua::Result<MultiValue> {
            let (store, job) = match store_of(lua)? {
                Ok(found) => found,
                Err(e) => return fail(lua, e),
            };
            let value = store.get(&job, &key).and_then(|text| match text {
                Some(text) => decode(lua, &text),
                None => Ok(Value::Nil),
            });
            returns(lua, value)
        })?,
    )?;
    state.raw_set(
        "set",
        lua.create_function(|lua, (key, value): (String, Value)| -> mlua::Result<MultiValue> {
            let (store, job) = match store_of(lua)? {
                Ok(found) => found,
                Err(e) => return fail(lua, e),
            };
            let stored = encode(lua, &value).and_then(|text| {
                if text.len() > MAX_VALUE_BYTES {
                    return Err(format!(
                        "core.state.set({key:?}): the value is {} bytes as JSON: expected at most {MAX_VALUE_BYTES}",
                        text.len()
                    ));
                }
                store.set(&job, &key, &text).map(|()| Value::Boolean(true))
            });
            returns(lua, stored)
        })?,
    )?;
    state.raw_set(
        "delete",
        lua.create_function(|lua, key: String| -> mlua::Result<MultiValue> {
            let (store, job) = match store_of(lua)? {
                Ok(found) => found,
                Err(e) => return fail(lua, e),
            };
            returns(lua, store.delete(&job, &key).map(|()| Value::Boolean(true)))
        })?,
    )?;
    state.set_readonly(true);
    core.raw_set("state", state)
}
