//! `core.job()`, its constants and time helpers, and `core.log`/`print` (docs/job-files.md, docs/helpers.md).
//!
//! Everything here is created once per Lua state; what changes between runs (the scheduled
//! time, the log buffer) lives in the state's [`RunContext`] app data.

use chrono::{DateTime, Utc};
use mlua::{Lua, MetaMethod, MultiValue, Table, UserData, UserDataMethods, Value};

use super::clock::{CalendarParts, LocalZone};

/// Most log lines one run keeps; the rest are counted and reported as dropped.
pub const MAX_LOG_LINES: usize = 1000;
/// Longest log line kept, in bytes; longer lines are cut.
pub const MAX_LOG_LINE_BYTES: usize = 4096;

/// What a job's `run()` may return besides `true` and `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnCode {
    /// `job.OK` and `job.DONE`.
    Ok,
    /// `job.EXIT` and `job.STOP`.
    Exit,
    /// `job.CANCEL`.
    Cancel,
    /// `job.SLEEP`.
    Sleep,
}

impl UserData for ReturnCode {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::ToString, |_, code, ()| {
            Ok(match code {
                ReturnCode::Ok => "job.OK",
                ReturnCode::Exit => "job.EXIT",
                ReturnCode::Cancel => "job.CANCEL",
                ReturnCode::Sleep => "job.SLEEP",
            })
        });
    }
}

/// Receives each kept log line as it is written (the dashboard's live log).
pub type LogSink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// The per-run facts the helpers and `core.log` read.
pub struct RunContext {
    utc: CalendarParts,
    local: CalendarParts,
    logs: Vec<String>,
    dropped_lines: usize,
    sink: Option<LogSink>,
}

impl RunContext {
    /// The context of a run scheduled at `scheduled`, with `zone` as local time.
    pub fn new(scheduled: DateTime<Utc>, zone: LocalZone, sink: Option<LogSink>) -> RunContext {
        RunContext {
            utc: CalendarParts::of(&scheduled),
            local: CalendarParts::local(scheduled, zone),
            logs: Vec::new(),
            dropped_lines: 0,
            sink,
        }
    }

    fn push_log(&mut self, mut line: String) {
        if self.logs.len() >= MAX_LOG_LINES {
            self.dropped_lines += 1;
            return;
        }
        if line.len() > MAX_LOG_LINE_BYTES {
            let mut cut = MAX_LOG_LINE_BYTES;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" … [line cut]");
            // Else the kept line holds on to the whole allocation of the long one: a thousand
            // lines printed from one 64 MiB string would keep 64 GiB outside the Lua heap.
            line.shrink_to_fit();
        }
        if let Some(sink) = &self.sink {
            sink(&line);
        }
        self.logs.push(line);
    }

    /// The log lines kept, with a last line counting those dropped.
    pub fn into_logs(mut self) -> Vec<String> {
        if self.dropped_lines > 0 {
            let dropped = self.dropped_lines;
            self.logs.push(format!(
                "[{dropped} more log lines dropped: a run keeps at most {MAX_LOG_LINES}]"
            ));
        }
        self.logs
    }
}

/// The values shared by every job table of one state.
pub struct JobApi {
    /// The prototype every `core.job()` table reads its constants and helpers from.
    job_meta: Table,
}

impl JobApi {
    /// Creates the constants and helpers and registers `core.job`, `core.log` and `print`.
    pub fn register(lua: &Lua, core: &Table) -> mlua::Result<JobApi> {
        let proto = lua.create_table()?;
        let ok = lua.create_userdata(ReturnCode::Ok)?;
        let exit = lua.create_userdata(ReturnCode::Exit)?;
        proto.raw_set("OK", ok.clone())?;
        proto.raw_set("DONE", ok)?;
        proto.raw_set("EXIT", exit.clone())?;
        proto.raw_set("STOP", exit)?;
        proto.raw_set("CANCEL", lua.create_userdata(ReturnCode::Cancel)?)?;
        proto.raw_set("SLEEP", lua.create_userdata(ReturnCode::Sleep)?)?;
        register_helper(lua, &proto, "minute", |_, p| Ok(number_value(p.minute)))?;
        register_helper(lua, &proto, "hour", |_, p| Ok(number_value(p.hour)))?;
        register_helper(lua, &proto, "day", |lua, p| name_value(lua, p.day))?;
        register_helper(lua, &proto, "dayNum", |_, p| Ok(number_value(p.day_num)))?;
        register_helper(lua, &proto, "dayMonth", |_, p| {
            Ok(number_value(p.day_month))
        })?;
        register_helper(lua, &proto, "weekNum", |_, p| Ok(number_value(p.week_num)))?;
        register_helper(lua, &proto, "month", |lua, p| name_value(lua, p.month))?;
        register_helper(lua, &proto, "monthNum", |_, p| {
            Ok(number_value(p.month_num))
        })?;
        proto.set_readonly(true);

        let job_meta = lua.create_table()?;
        job_meta.raw_set("__index", proto)?;
        job_meta.set_readonly(true);

        let meta = job_meta.clone();
        core.raw_set(
            "job",
            lua.create_function(move |lua, ()| {
                let job = lua.create_table()?;
                job.set_metatable(Some(meta.clone()))?;
                Ok(job)
            })?,
        )?;
        let log = lua.create_function(log_line)?;
        core.raw_set("log", log.clone())?;
        lua.globals().raw_set("print", log)?;
        Ok(JobApi { job_meta })
    }

    /// Whether `value` is a job table made by `core.job()`.
    pub fn is_job_table(&self, table: &Table) -> bool {
        table
            .metatable()
            .is_some_and(|m| m.to_pointer() == self.job_meta.to_pointer())
    }
}

fn name_value(lua: &Lua, name: &str) -> mlua::Result<Value> {
    lua.create_string(name).map(Value::String)
}

fn number_value(number: u32) -> Value {
    Value::Integer(number.into())
}

/// Registers one helper: `job.NAME([local])`, tolerant of `job:NAME([local])`.
fn register_helper(
    lua: &Lua,
    proto: &Table,
    name: &str,
    value: fn(&Lua, &CalendarParts) -> mlua::Result<Value>,
) -> mlua::Result<()> {
    let helper = lua.create_function(move |lua, args: MultiValue| {
        let mut args = args.into_iter();
        let mut first = args.next();
        // A colon call passes the job table first; docs/helpers.md says to ignore it.
        if let Some(Value::Table(_)) = first {
            first = args.next();
        }
        let local = first.is_some_and(|v| !matches!(v, Value::Nil | Value::Boolean(false)));
        let parts = {
            let context = lua.app_data_ref::<RunContext>().ok_or_else(|| {
                mlua::Error::runtime("job helpers can only be called during a run")
            })?;
            if local { context.local } else { context.utc }
        };
        value(lua, &parts)
    })?;
    proto.raw_set(name, helper)
}

/// `core.log(...)` and `print(...)`: arguments joined by tabs, as `print` does.
#[allow(clippy::needless_pass_by_value)] // mlua hands callbacks their arguments by value
fn log_line(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    let mut line = String::new();
    for (i, value) in args.iter().enumerate() {
        if line.len() > MAX_LOG_LINE_BYTES {
            // The line is cut there anyway: do not copy what follows.
            break;
        }
        if i > 0 {
            line.push('\t');
        }
        line.push_str(&value.to_string()?);
    }
    match lua.app_data_mut::<RunContext>() {
        Some(mut context) => context.push_log(line),
        None => {
            return Err(mlua::Error::runtime(
                "core.log can only be called during a run",
            ));
        }
    }
    Ok(())
}

/// Reads the code out of a returned `job.*` constant.
pub fn return_code(value: &Value) -> Option<ReturnCode> {
    match value {
        Value::UserData(ud) => ud.borrow::<ReturnCode>().ok().map(|c| *c),
        _ => None,
    }
}

/// Describes a returned value for the `invalid` message: `nil`, `string "done"`, `number 3`.
pub fn describe_value(value: &Value) -> String {
    match value {
        Value::Nil => "nil".to_string(),
        Value::String(s) => {
            let text = s.to_string_lossy();
            let shown: String = text.chars().take(60).collect();
            if shown.len() < text.len() {
                format!("string {shown:?}…")
            } else {
                format!("string {shown:?}")
            }
        }
        Value::Integer(i) => format!("number {i}"),
        Value::Number(n) => format!("number {n}"),
        other => other.type_name().to_string(),
    }
}
