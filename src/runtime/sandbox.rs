//! One Luau state prepared for job files: frozen libraries, no way out but `core.*`, and an
//! interrupt that stops the running script when its [`RunControl`] says so.

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{Lua, Table, Value, VmState};

use super::job_api::JobApi;
use super::limits::{RunControl, StopReason};

/// Registers one area of `core.*` into the `core` table before it is frozen.
pub type Registrar = fn(&Lua, &Table) -> mlua::Result<()>;

/// Globals removed before any job runs: they reach outside the sandbox or load modules.
const REMOVED_GLOBALS: [&str; 3] = ["debug", "require", "dofile"];

/// The message Luau gives an allocation that fails under the memory limit.
const OUT_OF_MEMORY: &str = "not enough memory";

/// A prepared Luau state that runs job files one after another.
pub struct LuaVm {
    /// The state itself.
    pub lua: Lua,
    /// Metatable of every run's environment: reads fall through to the frozen globals.
    env_meta: Table,
    /// What `core.job()` hands out.
    pub job_api: JobApi,
    /// The control of the run in progress, read by the interrupt.
    current: Rc<RefCell<Option<RunControl>>>,
    /// Memory in use once the state was ready, before any job ran.
    pub base_memory: usize,
}

impl LuaVm {
    /// Builds a state with the job API and any further `core.*` areas.
    ///
    /// # Errors
    /// When Luau cannot allocate the state or the registrars fail.
    pub fn new(registrars: &[Registrar]) -> mlua::Result<LuaVm> {
        let lua = Lua::new();
        let globals = lua.globals();
        for name in REMOVED_GLOBALS {
            globals.raw_set(name, Value::Nil)?;
        }
        let core = lua.create_table()?;
        let job_api = JobApi::register(&lua, &core)?;
        super::ops::register(&lua, &core)?;
        for register in registrars {
            register(&lua, &core)?;
        }
        let current: Rc<RefCell<Option<RunControl>>> = Rc::default();
        install_error_watch(&lua, &current)?;
        core.set_readonly(true);
        globals.raw_set("core", core)?;
        // Freezes every library and the globals table: a run cannot change what the next sees.
        lua.sandbox(true)?;

        let env_meta = lua.create_table()?;
        env_meta.raw_set("__index", globals)?;
        env_meta.set_readonly(true);

        let watched = current.clone();
        lua.set_interrupt(move |_| {
            let reason = watched.borrow().as_ref().and_then(RunControl::stopped);
            match reason {
                // Raised at every safe point until the script has unwound: a `pcall` that
                // catches it only reaches the next loop edge or call, which raises again.
                Some(reason) => Err(mlua::Error::runtime(stop_message(reason))),
                None => Ok(VmState::Continue),
            }
        });
        lua.gc_collect()?;
        let base_memory = lua.used_memory();
        Ok(LuaVm {
            lua,
            env_meta,
            job_api,
            current,
            base_memory,
        })
    }

    /// A fresh environment for one run: globals it sets vanish with it.
    ///
    /// # Errors
    /// When Luau cannot allocate the table.
    pub fn new_env(&self) -> mlua::Result<Table> {
        let env = self.lua.create_table()?;
        env.set_metatable(Some(self.env_meta.clone()))?;
        Ok(env)
    }

    /// Makes `control` the one the interrupt obeys, until [`LuaVm::end_run`].
    pub fn begin_run(&self, control: RunControl) {
        *self.current.borrow_mut() = Some(control);
    }

    /// Forgets the run's control.
    pub fn end_run(&self) {
        *self.current.borrow_mut() = None;
    }
}

fn stop_message(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Timeout => "run stopped: timed out",
        StopReason::Memory => "run stopped: memory limit exceeded",
        StopReason::Aborted | StopReason::Shutdown => "run stopped: aborted",
    }
}

/// Wraps `pcall`, `xpcall` and `coroutine.resume` so that an out-of-memory error they catch
/// still stops the run: the catch is allowed, but the run's control is marked `Memory`.
fn install_error_watch(lua: &Lua, current: &Rc<RefCell<Option<RunControl>>>) -> mlua::Result<()> {
    let watched = current.clone();
    let note = lua.create_function(move |_, error: Value| {
        let is_oom = match &error {
            Value::String(s) => s.as_bytes().as_ref() == OUT_OF_MEMORY.as_bytes(),
            Value::Error(e) => matches!(**e, mlua::Error::MemoryError(_)),
            _ => false,
        };
        if is_oom && let Some(control) = watched.borrow().as_ref() {
            control.stop(StopReason::Memory);
        }
        Ok(())
    })?;
    let wrap: mlua::Function = lua
        .load(
            r"
            local note, rawpcall, rawxpcall, rawresume = ...
            local function seen(ok, ...)
              if not ok then note((...)) end
              return ok, ...
            end
            local function pcall(f, ...)
              return seen(rawpcall(f, ...))
            end
            local function xpcall(f, handler, ...)
              return rawxpcall(f, function(e) note(e) return handler(e) end, ...)
            end
            local function resume(co, ...)
              return seen(rawresume(co, ...))
            end
            return pcall, xpcall, resume
            ",
        )
        .set_name("=jobtop")
        .into_function()?;
    let globals = lua.globals();
    let coroutine: Table = globals.get("coroutine")?;
    let (pcall, xpcall, resume): (Value, Value, Value) = wrap.call((
        note,
        globals.get::<Value>("pcall")?,
        globals.get::<Value>("xpcall")?,
        coroutine.get::<Value>("resume")?,
    ))?;
    globals.raw_set("pcall", pcall)?;
    globals.raw_set("xpcall", xpcall)?;
    coroutine.raw_set("resume", resume)?;
    Ok(())
}
