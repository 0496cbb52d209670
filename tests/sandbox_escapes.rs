//! Attempts to get out of the sandbox, or to leave something behind for the next run, made by
//! real job files on the real runtime: one test per attempt. Each asserts what the attempt got
//! (an error naming what was refused, or nothing useful), then runs
//! `tests/fixtures/escapes/witness.lua` on the same Luau state — as the next run of this job or
//! of any other job on that worker would be — which must find every library, `core` and the
//! host's functions as they were, and nothing planted anywhere.
//!
//! `tests/runtime.rs` (`sandbox_hides_the_outside_world`, `globals_do_not_leak_between_runs`)
//! and `tests/ops_files.rs` (`escapes_are_refused`) cover the rest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use common::runner::{allowing, job_source, request, runner, write_job};
use jobtop::config::Capability;
use jobtop::job::RunResult;
use jobtop::runtime::{JobGrants, JobRunner, RunOutcome, RunRequest};

/// `attempt(label, f)` calls `f` under `pcall` and logs `label`, then `returned` and what `f`
/// returned (through `tostring`), or `raised` and the error.
const ATTEMPT: &str = r#"local function attempt(label, f)
  local ok, value = pcall(f)
  core.log(label, ok and "returned" or "raised", tostring(value))
end
"#;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/escapes")
        .join(name)
}

/// Runs `body` as the `run` of a job called `hostile` (returning `job.OK`), then the witness
/// as a job called `witness` on the same runner; asserts the witness finds everything intact.
/// Returns the hostile run's outcome.
fn attempt_then_witness(body: &str) -> RunOutcome {
    attempt_with(body, JobGrants::default())
}

fn attempt_with(body: &str, grants: JobGrants) -> RunOutcome {
    let dir = tempfile::tempdir().unwrap();
    let source = job_source(&format!("local job = core.job()\n{ATTEMPT}"), body);
    let file = write_job(dir.path(), "hostile.lua", &source);
    let mut runner = runner();
    let hostile = runner.run(&RunRequest {
        timeout: Duration::from_secs(5),
        ..request(file, "jobs/hostile.lua", grants)
    });
    assert_eq!(hostile.result, RunResult::Ok, "{hostile:?}");
    assert_witness_clean(&mut runner);
    // And once more: a second run of the same job sees nothing either.
    assert_witness_clean(&mut runner);
    hostile
}

fn assert_witness_clean(runner: &mut JobRunner) {
    let witness = runner.run(&request(
        fixture("witness.lua"),
        "jobs/witness.lua",
        allowing("witness", vec![]),
    ));
    assert_eq!(
        (witness.result, witness.logs.clone()),
        (RunResult::Ok, vec!["clean".to_string()]),
        "the next run saw what an earlier one left: {witness:?}"
    );
}

/// What `attempt(label, …)` logged: (`returned` or `raised`, the value or the error).
fn attempted(outcome: &RunOutcome, label: &str) -> (String, String) {
    let prefix = format!("{label}\t");
    let line = outcome
        .logs
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no attempt {label}: {outcome:?}"));
    let (how, what) = line.split_once('\t').unwrap();
    (how.to_string(), what.to_string())
}

/// Asserts that attempt `label` raised an error containing `message`.
fn assert_raised(outcome: &RunOutcome, label: &str, message: &str) {
    let (how, what) = attempted(outcome, label);
    assert_eq!(how, "raised", "{label} was not refused: {what}");
    assert!(what.contains(message), "{label}: {what}");
}

/// Asserts that attempt `label` returned normally with `tostring(value) == expected`.
fn assert_returned(outcome: &RunOutcome, label: &str, expected: &str) {
    assert_eq!(
        attempted(outcome, label),
        ("returned".to_string(), expected.to_string()),
        "{label}"
    );
}

const READONLY: &str = "attempt to modify a readonly table";

// ---------------------------------------------------------------------------------------------
// getfenv / setfenv

#[test]
fn getfenv_of_a_host_function_is_the_runs_own_environment() {
    let outcome = attempt_then_witness(
        r#"
  attempt("env", function()
    local env = getfenv(core.log)
    env.planted = "from core.log's environment"
    return env == getfenv(1)
  end)"#,
    );
    // A function of jobtop's reports the thread's globals, which are the run's environment.
    assert_returned(&outcome, "env", "true");
}

#[test]
fn getfenv_0_is_the_runs_own_environment() {
    let outcome = attempt_then_witness(
        r#"
  attempt("env", function()
    getfenv(0).planted = "from getfenv(0)"
    return getfenv(0) == getfenv(1)
  end)"#,
    );
    assert_returned(&outcome, "env", "true");
}

#[test]
fn getfenv_2_from_inside_run() {
    let outcome = attempt_then_witness(
        r#"
  local function caller_env() return getfenv(2) end
  local above = caller_env()
  attempt("run", function()
    above.planted = "from getfenv(2)"
    return above == getfenv(1)
  end)
  attempt("under pcall", function()
    local env = getfenv(2)
    env.planted = "from getfenv(2) under pcall"
    return env == getfenv(1)
  end)
  attempt("past the top", function() return getfenv(50) end)"#,
    );
    assert_returned(&outcome, "run", "true");
    assert_returned(&outcome, "under pcall", "true");
    assert_raised(&outcome, "past the top", "invalid level");
}

#[test]
fn loadstring_code_runs_in_the_runs_own_environment() {
    let outcome = attempt_then_witness(
        r#"
  attempt("global", function()
    loadstring("planted = 'from loadstring'")()
    return planted
  end)"#,
    );
    assert_returned(&outcome, "global", "from loadstring");
}

#[test]
fn setfenv_1_only_changes_the_calling_function() {
    let outcome = attempt_then_witness(
        r#"
  attempt("own", function()
    setfenv(1, { planted = "x" })
    return planted
  end)
  core.log("after", tostring(planted))"#,
    );
    assert_returned(&outcome, "own", "x");
    assert!(
        outcome.logs.contains(&"after\tnil".to_string()),
        "{outcome:?}"
    );
}

#[test]
fn setfenv_0_does_not_outlive_the_run() {
    attempt_then_witness(
        r#"
  attempt("thread", function()
    setfenv(0, { planted = "thread globals", core = core })
  end)"#,
    );
}

#[test]
fn setfenv_of_a_host_function_is_refused() {
    let outcome = attempt_then_witness(
        r#"
  attempt("job", function() setfenv(core.job, { planted = "x" }) end)
  attempt("log", function() setfenv(core.log, { planted = "x" }) end)
  attempt("print", function() setfenv(print, { planted = "x" }) end)
  attempt("rep", function() setfenv(string.rep, { planted = "x" }) end)"#,
    );
    for label in ["job", "log", "print", "rep"] {
        assert_raised(
            &outcome,
            label,
            "'setfenv' cannot change environment of given object",
        );
    }
}

/// `pcall`, `xpcall` and `coroutine.resume` are jobtop's Lua wrappers (they watch for
/// swallowed out-of-memory errors), shared by every run on a worker.
#[test]
fn setfenv_of_the_pcall_wrappers_does_not_outlive_the_run() {
    attempt_then_witness(
        r#"
  attempt("pcall", function() setfenv(pcall, { planted = "pcall" }) end)
  attempt("xpcall", function() setfenv(xpcall, { planted = "xpcall" }) end)
  attempt("resume", function() setfenv(coroutine.resume, { planted = "resume" }) end)"#,
    );
}

#[test]
fn setfenv_by_level_of_the_pcall_wrapper_does_not_outlive_the_run() {
    // Level 1 is the function, 2 the raw pcall (C), 3 jobtop's wrapper calling it.
    attempt_then_witness(
        r#"
  attempt("level", function()
    return pcall(function() setfenv(3, { planted = "by level" }) end)
  end)"#,
    );
}

/// `core.json.encode`/`decode` are Lua closures that call the global `error`: a job that
/// swapped their environment could make them stop raising for every later job.
#[test]
fn setfenv_of_core_json_does_not_outlive_the_run() {
    attempt_then_witness(
        r#"
  attempt("decode", function()
    setfenv(core.json.decode, { planted = "decode", error = function() end })
    setfenv(core.json.encode, { planted = "encode", error = function() end })
    return pcall(core.json.decode, "{bad")
  end)"#,
    );
}

// ---------------------------------------------------------------------------------------------
// The frozen libraries, `_G` and `core`

#[test]
fn string_metatable_index_cannot_be_changed() {
    let outcome = attempt_then_witness(
        r#"
  attempt("assign", function() getmetatable("").__index = { upper = function() return "pwned" end } end)
  attempt("rawset", function() rawset(getmetatable(""), "__index", {}) end)
  attempt("meta", function() setmetatable(getmetatable(""), { __index = {} }) end)
  attempt("add", function() getmetatable("").__add = function() return 0 end end)"#,
    );
    for label in ["assign", "rawset", "meta", "add"] {
        assert_raised(&outcome, label, READONLY);
    }
}

#[test]
fn libraries_are_frozen() {
    let outcome = attempt_then_witness(
        r#"
  local libs = { "string", "table", "math", "os", "coroutine", "utf8", "bit32", "buffer", "vector" }
  for _, name in ipairs(libs) do
    local lib = _G[name]
    attempt(name, function() lib.planted = "x" end)
    attempt(name .. ".rawset", function() rawset(lib, "planted", "x") end)
  end
  attempt("string.upper", function() string.upper = function() return "pwned" end end)
  attempt("table.insert", function() table.insert = nil end)
  attempt("math.pi", function() math.pi = 3 end)
  attempt("setmetatable", function() setmetatable(string, { __index = { planted = "x" } }) end)"#,
    );
    for name in [
        "string",
        "table",
        "math",
        "os",
        "coroutine",
        "utf8",
        "bit32",
        "buffer",
        "vector",
    ] {
        assert_raised(&outcome, name, READONLY);
        assert_raised(&outcome, &format!("{name}.rawset"), READONLY);
    }
    for label in ["string.upper", "table.insert", "math.pi", "setmetatable"] {
        assert_raised(&outcome, label, READONLY);
    }
}

#[test]
fn the_global_table_is_frozen() {
    let outcome = attempt_then_witness(
        r#"
  attempt("assign", function() _G.planted = "x" end)
  attempt("rawset", function() rawset(_G, "planted", "x") end)
  attempt("pcall", function() rawset(_G, "pcall", function() return true end) end)
  attempt("meta", function() setmetatable(_G, { __index = { planted = "x" } }) end)
  attempt("env meta", function() getmetatable(getfenv(1)).__index = { planted = "x" } end)"#,
    );
    for label in ["assign", "rawset", "pcall", "meta", "env meta"] {
        assert_raised(&outcome, label, READONLY);
    }
}

#[test]
fn core_and_its_tables_are_frozen() {
    let outcome = attempt_then_witness(
        r#"
  attempt("core", function() core.planted = "x" end)
  attempt("core.log", function() core.log = function() end end)
  attempt("core.rawset", function() rawset(core, "job", nil) end)
  attempt("core.meta", function() setmetatable(core, { __index = { planted = "x" } }) end)
  for _, name in ipairs({ "json", "json_safe", "network", "files", "state" }) do
    local t = core[name]
    attempt(name, function() rawset(t, "planted", "x") end)
  end
  attempt("job proto", function() getmetatable(core.job()).__index.OK = true end)
  attempt("job meta", function() getmetatable(core.job()).__index = {} end)"#,
    );
    for label in [
        "core",
        "core.log",
        "core.rawset",
        "core.meta",
        "json",
        "json_safe",
        "network",
        "files",
        "state",
        "job proto",
        "job meta",
    ] {
        assert_raised(&outcome, label, READONLY);
    }
}

#[test]
fn job_constants_have_no_reachable_metatable() {
    let outcome = attempt_then_witness(
        r#"
  attempt("meta", function() return getmetatable(job.OK) end)
  attempt("set", function() setmetatable(job.OK, {}) end)"#,
    );
    assert_returned(&outcome, "meta", "false");
    assert_raised(&outcome, "set", "setmetatable");
}

// ---------------------------------------------------------------------------------------------
// Loading code, and the outside world

/// mlua's `loadstring` compiles source text only, and raises (rather than returning
/// `nil, err`) on anything else.
#[test]
fn lua_5_1_bytecode_is_refused() {
    let outcome = attempt_then_witness(
        r#"
  attempt("bytecode", function() return loadstring("\27Lua\81\0\1\4\8\4\8\0") end)"#,
    );
    assert_raised(&outcome, "bytecode", "syntax error");
}

#[test]
fn luau_bytecode_is_refused() {
    // Genuine Luau bytecode of a chunk that returns 42, compiled by the same Luau.
    let bytecode = mlua::chunk::Compiler::new().compile("return 42").unwrap();
    let escaped = bytecode.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "\\{b}");
        out
    });
    let outcome = attempt_then_witness(&format!(
        r#"
  attempt("bytecode", function() return loadstring("{escaped}") end)"#
    ));
    assert_raised(
        &outcome,
        "bytecode",
        "syntax error: attempt to load a binary chunk (mode is 't')",
    );
}

#[test]
fn the_outside_world_is_absent_everywhere() {
    let outcome = attempt_then_witness(
        r#"
  local names = {
    "io", "debug", "require", "dofile", "loadfile", "load", "module", "package",
  }
  local os_names = {
    "execute", "exit", "getenv", "remove", "rename", "tmpname", "setlocale",
  }
  local found = {}
  local env_of_loaded = loadstring("return getfenv(1)")()
  for _, where in ipairs({ _G, getfenv(0), getfenv(1), env_of_loaded }) do
    for _, name in ipairs(names) do
      if where[name] ~= nil or rawget(where, name) ~= nil then found[#found + 1] = name end
    end
  end
  for _, name in ipairs(os_names) do
    if os[name] ~= nil then found[#found + 1] = "os." .. name end
  end
  if string.dump ~= nil then found[#found + 1] = "string.dump" end
  attempt("found", function() return table.concat(found, ",") end)"#,
    );
    assert_returned(&outcome, "found", "");
}

#[test]
fn collectgarbage_only_counts() {
    let outcome = attempt_then_witness(
        r#"
  attempt("count", function() return type(collectgarbage("count")) end)
  attempt("collect", function() return collectgarbage("collect") end)
  attempt("stop", function() return collectgarbage("stop") end)
  attempt("step", function() return collectgarbage("step", 1e9) end)
  attempt("gcinfo", function() return type(gcinfo()) end)"#,
    );
    assert_returned(&outcome, "count", "number");
    assert_returned(&outcome, "gcinfo", "number");
    for label in ["collect", "stop", "step"] {
        assert_raised(&outcome, label, "collectgarbage called with invalid option");
    }
}

#[test]
fn newproxy_objects_stay_in_their_run() {
    let outcome = attempt_then_witness(
        r#"
  attempt("proxy", function()
    local p = newproxy(true)
    local m = getmetatable(p)
    m.__index = function() return "planted" end
    m.__gc = function() planted = "from __gc" end
    return p.anything
  end)"#,
    );
    assert_returned(&outcome, "proxy", "planted");
}

#[test]
fn a_setfenv_0_with_a_fake_core_does_not_reach_another_jobs_loadstring() {
    // The hostile job swaps the thread's globals for a table whose `core.log` records what it
    // is given; then another job's code compiled with `loadstring` must still log for real.
    let dir = tempfile::tempdir().unwrap();
    let hostile = job_source(
        "local job = core.job()\n",
        r"
  local seen = {}
  setfenv(0, { core = { log = function(...) seen[#seen + 1] = ... end } })",
    );
    let victim = job_source(
        "local job = core.job()\n",
        r#"  loadstring("core.log('victim logged')")()"#,
    );
    let mut runner = runner();
    let hostile = write_job(dir.path(), "hostile.lua", &hostile);
    let victim = write_job(dir.path(), "victim.lua", &victim);
    let outcome = runner.run(&request(hostile, "jobs/hostile.lua", JobGrants::default()));
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    let outcome = runner.run(&request(victim, "jobs/victim.lua", JobGrants::default()));
    assert_eq!(
        (outcome.result, outcome.logs.clone()),
        (RunResult::Ok, vec!["victim logged".to_string()]),
        "{outcome:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// core.files: what tests/ops_files.rs does not try

#[test]
fn files_sibling_prefix_and_proc_links_are_outside() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("root");
    let sibling = base.join("root2");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&sibling).unwrap();
    std::fs::write(sibling.join("secret"), "secret").unwrap();
    let grants = JobGrants {
        files: vec![root.clone()],
        ..allowing("x", vec![Capability::Files])
    };
    let r = root.display();
    let outcome = attempt_with(
        &format!(
            r#"
  local function try(label, v, err)
    attempt(label, function() return v == nil and err or ("GOT " .. tostring(v)) end)
  end
  local R = [[{r}]]
  try("sibling", core.files.read(R .. "2/secret"))
  try("sibling_dotdot", core.files.read(R .. "/../root2/secret"))
  try("proc_root", core.files.read("/proc/self/root" .. R .. "2/secret"))
  try("proc_root_list", core.files.list("/proc/self/root/"))
  try("proc_cwd", core.files.list("/proc/self/cwd"))
  try("proc_environ", core.files.read("/proc/self/environ"))
  try("root_slash_dotdot", core.files.list(R .. "/./../"))
  try("double_slash", core.files.read("/" .. R .. "2//secret"))
  try("write_sibling", core.files.write(R .. "2/planted", "x"))"#
        ),
        grants,
    );
    for label in [
        "sibling",
        "sibling_dotdot",
        "proc_root",
        "proc_root_list",
        "proc_cwd",
        "proc_environ",
        "root_slash_dotdot",
        "double_slash",
        "write_sibling",
    ] {
        let (how, what) = attempted(&outcome, label);
        assert_eq!(how, "returned", "{label}: {what}");
        assert!(
            what.starts_with("core.files: ") && what.contains("is outside the roots of job x"),
            "{label}: {what}"
        );
    }
    assert!(!sibling.join("planted").exists());
}
