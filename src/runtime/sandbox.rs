//! One Luau state prepared for job files: frozen libraries, no way out but `core.*`, and an
//! interrupt that stops the running script when its [`RunControl`] says so.

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{Function, Lua, Table, Value, VmState};

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
    /// `setfenv(0, env)`: makes `env` the globals of the thread that runs the job.
    set_thread_globals: Function,
    /// The thread's globals between runs (the table Luau's sandbox gave it).
    idle_globals: Table,
    /// jobtop's own Lua functions reachable by jobs (the `pcall` wrappers, `core.json`), with
    /// the environment each had when the state was built.
    host_functions: Vec<(Function, Table)>,
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
        let host_functions = lua_functions_under(&globals)?;
        let set_thread_globals = lua
            .load("local setfenv = ... return function(env) setfenv(0, env) end")
            .set_name("=jobtop")
            .call::<Function>(globals.get::<Function>("setfenv")?)?;
        // Freezes every library and the globals table: a run cannot change what the next sees.
        lua.sandbox(true)?;
        let idle_globals = lua.globals();

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
            set_thread_globals,
            idle_globals,
            host_functions,
        })
    }

    /// A fresh environment for one run: globals it sets vanish with it.
    ///
    /// It is also made the globals of the thread that runs the job (what `getfenv(0)`, a
    /// function of jobtop's and code from `loadstring` see), and jobtop's own Lua functions get
    /// back the environment they were built with: whatever an earlier run did with
    /// `setfenv(0, …)` or `setfenv(pcall, …)` is undone, so no run can leave anything behind
    /// there for the next one, of this job or another.
    ///
    /// # Errors
    /// When Luau cannot allocate the table.
    pub fn new_env(&self) -> mlua::Result<Table> {
        let env = self.lua.create_table()?;
        env.set_metatable(Some(self.env_meta.clone()))?;
        for (function, original) in &self.host_functions {
            function.set_environment(original.clone())?;
        }
        self.set_thread_globals.call::<()>(&env)?;
        Ok(env)
    }

    /// Makes `control` the one the interrupt obeys, until [`LuaVm::end_run`].
    pub fn begin_run(&self, control: RunControl) {
        *self.current.borrow_mut() = Some(control);
    }

    /// Forgets the run's control, and its environment as the thread's globals.
    pub fn end_run(&self) {
        *self.current.borrow_mut() = None;
        // A state this fails on is one that ran out of memory: it is thrown away anyway.
        let _ = self.set_thread_globals.call::<()>(&self.idle_globals);
    }
}

/// Every Lua (not Rust) function in `globals`, its libraries and `core`, with its environment.
fn lua_functions_under(globals: &Table) -> mlua::Result<Vec<(Function, Table)>> {
    let mut found = Vec::new();
    let mut tables = vec![globals.clone()];
    let mut seen = std::collections::HashSet::new();
    while let Some(table) = tables.pop() {
        if !seen.insert(table.to_pointer()) {
            continue;
        }
        for pair in table.pairs::<Value, Value>() {
            match pair?.1 {
                Value::Table(t) => tables.push(t),
                Value::Function(f) if f.info().what != "C" => {
                    if let Some(env) = f.environment() {
                        found.push((f, env));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(found)
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
