//! `jobs.yaml`: the service settings and job definitions (docs/jobs-yaml.md), their defaults, and
//! validation that reports every problem at once with its line and column.
//!
//! The file is read with `saphyr-parser`, which keeps the position of every node, into a small
//! tree (`yaml`); `schema` then walks that tree key by key. Walking it by hand instead of
//! deriving `serde` types is what lets one bad key or job not hide the problems in the others,
//! and lets semantic problems (duplicate names, paths that leave `jobs_dir`, unknown zones) be
//! reported at the exact node that causes them.
//!
//! Rules chosen where wave 1's contract was silent (now in docs/jobs-yaml.md):
//! * A job has exactly one of `interval` and `schedule`; YAML integers for `interval`,
//!   `timeout` and `retry_delay` are seconds, for `memory` bytes.
//! * A key written with no value (`allow:`) means "not set"; `jobs:` with no value is an empty
//!   list.
//! * `history.keep_runs` and `history.keep_days` must be at least 1: "keep nothing" would make
//!   history useless and "0 = unlimited" would be a surprise either way.
//! * A job file that does not exist is not a configuration problem (it is a run-time `missing`
//!   result), but a path that leaves `jobs_dir`, lexically or through a symlink that exists,
//!   is.

mod database;
mod notify;
mod paths;
mod schema;
mod values;
mod yaml;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use database::{
    DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, Database, Kind as DatabaseKind, Secret, Server,
    SqliteFile, SqliteMode, Target as DatabaseTarget,
};

pub use notify::{Alerts, Channel, NotifyEvent, Smtp, Target as NotifyTarget};

/// The whole of `jobs.yaml`, validated, with every default applied and every path absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The `jobs.yaml` path as given (used in messages).
    pub file: PathBuf,
    /// The directory of `jobs.yaml`, absolute; relative paths in the file are resolved here.
    pub base_dir: PathBuf,
    /// The `service:` section.
    pub service: ServiceConfig,
    /// The jobs, in file order; shared with the scheduler's table, not copied into it.
    pub jobs: Vec<std::sync::Arc<JobSpec>>,
    /// What `check` points out without refusing the file (deprecated keys, risky settings).
    pub warnings: Vec<Problem>,
}

impl Config {
    /// The job called `name`, or a message naming the file and the jobs it has.
    ///
    /// # Errors
    /// When the file has no such job.
    pub fn job(&self, name: &str) -> Result<&JobSpec, String> {
        self.jobs
            .iter()
            .find(|j| j.name == name)
            .map(|j| &**j)
            .ok_or_else(|| self.unknown_job(name))
    }

    /// `no job named "x" in jobs.yaml: expected one of a, b, c`.
    pub fn unknown_job(&self, name: &str) -> String {
        let names: Vec<&str> = self.jobs.iter().map(|j| j.name.as_str()).collect();
        format!(
            "no job named {name:?} in {}: expected one of {}",
            self.file.display(),
            names.join(", ")
        )
    }

    /// How a job file is named in messages: its path relative to the directory of `jobs.yaml`
    /// (`jobs/nightly.lua`), or the full path when it lies elsewhere.
    pub fn display_name(&self, path: &str) -> String {
        let full = self.service.jobs_dir.join(path);
        full.strip_prefix(&self.base_dir)
            .unwrap_or(&full)
            .display()
            .to_string()
    }
}

/// The `service:` section of `jobs.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Where job files live, absolute; default `jobs` beside `jobs.yaml`.
    pub jobs_dir: PathBuf,
    /// Where the state database, log and socket live, absolute; default `.jobtop`.
    pub state_dir: PathBuf,
    /// The zone of "local time"; `None` means the system's local zone.
    pub timezone: Option<chrono_tz::Tz>,
    /// How many runs may go at once; default the number of CPUs, never 0.
    pub workers: usize,
    /// Limits for jobs that do not set their own.
    pub defaults: JobDefaults,
    /// How much run history to keep.
    pub history: HistoryConfig,
    /// A Unix group whose members may act through the control socket.
    pub operators: Option<String>,
    /// A Unix group whose members may list and subscribe, but not act.
    pub viewers: Option<String>,
    /// `service.databases`, in file order.
    pub databases: Vec<std::sync::Arc<Database>>,
    /// `service.notify`, `smtp`, `metrics` and `metrics_textfile` (docs/alerts.md).
    pub alerts: Alerts,
}

impl ServiceConfig {
    /// The settings of a file with no `service:` section, in `base_dir`.
    pub fn with_defaults(base_dir: &Path) -> ServiceConfig {
        ServiceConfig {
            jobs_dir: base_dir.join("jobs"),
            state_dir: base_dir.join(".jobtop"),
            timezone: None,
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            defaults: JobDefaults::default(),
            history: HistoryConfig::default(),
            operators: None,
            viewers: None,
            databases: Vec::new(),
            alerts: Alerts::default(),
        }
    }
}

/// `service.defaults`: settings applied to every job that does not set its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobDefaults {
    /// Wall-clock limit of one run; default 30 s.
    pub timeout: Duration,
    /// Lua heap limit of one run, in bytes; default 64 MiB.
    pub memory: u64,
    /// What to do about a firing missed while the service was down or stalled; default `latest`.
    pub catch_up: CatchUp,
    /// Retries after a failed run before the job is deactivated; default 0.
    pub retries: u32,
    /// The delay before the first retry, doubling each attempt up to an hour; default 30 s.
    pub retry_delay: Duration,
}

impl Default for JobDefaults {
    fn default() -> Self {
        JobDefaults {
            timeout: Duration::from_secs(30),
            memory: 64 << 20,
            catch_up: CatchUp::Latest,
            retries: 0,
            retry_delay: Duration::from_secs(30),
        }
    }
}

/// `catch_up:`: what a missed firing becomes (docs/scheduling.md#missed-firings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Run once for the latest missed firing.
    Latest,
    /// Skip it and wait for the next firing.
    None,
    /// Run the latest missed firing only if it is at most this late.
    Within(Duration),
}

impl fmt::Display for CatchUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatchUp::Latest => f.write_str("latest"),
            CatchUp::None => f.write_str("none"),
            CatchUp::Within(d) => f.write_str(&crate::units::format_duration(*d)),
        }
    }
}

/// The longest a retry waits, however many attempts came before.
pub const RETRY_DELAY_CAP: Duration = Duration::from_secs(3600);

/// Most retries a job may have.
pub const MAX_RETRIES: u32 = 100;

/// `service.history`: run-history retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Runs kept per job; default 200, at least 1.
    pub keep_runs: u32,
    /// Days a run is kept; default 30, at least 1.
    pub keep_days: u32,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            keep_runs: 200,
            keep_days: 30,
        }
    }
}

/// What a job may do with the outside world through `core.*` (its `allow:` list).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `core.network`.
    Network,
    /// `core.exec`.
    Exec,
    /// `core.files`, limited to the job's `files:` roots.
    Files,
    /// `core.sql` and `core.mysql`, limited to the job's `databases:`.
    Db,
}

impl Capability {
    /// Every capability, in the order docs/jobs-yaml.md lists them.
    pub const ALL: [Capability; 4] = [
        Capability::Network,
        Capability::Exec,
        Capability::Files,
        Capability::Db,
    ];

    /// The word written in `jobs.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Network => "network",
            Capability::Exec => "exec",
            Capability::Files => "files",
            Capability::Db => "db",
        }
    }

    /// The capability written as `word`, if there is one.
    pub fn from_word(word: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == word)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `jobs:`, validated, with the service defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSpec {
    /// Unique name, `[A-Za-z0-9_.-]+`.
    pub name: String,
    /// The job file's path as written, relative to `jobs_dir`.
    pub path: String,
    /// The job file: `jobs_dir` joined with `path`.
    pub file: PathBuf,
    /// When it fires: interval slots or a cron expression, in the job's zone (which is also what
    /// the helpers' local time means).
    pub schedule: crate::schedule::Schedule,
    /// What a missed firing becomes.
    pub catch_up: CatchUp,
    /// Retries after a failed run.
    pub retries: u32,
    /// The first retry's delay (doubling, up to [`RETRY_DELAY_CAP`]).
    pub retry_delay: Duration,
    /// `false` when disabled in `jobs.yaml`; default `true`.
    pub active: bool,
    /// Run once per service start, then show `done`; default `false`.
    pub run_once: bool,
    /// Wall-clock limit of one run: the job's own or the service default; greater than zero.
    pub timeout: Duration,
    /// Lua heap limit of one run in bytes: the job's own or the service default; greater than zero.
    pub memory: u64,
    /// Capabilities for `core.*`, without repeats, in the order written; default none.
    pub allow: Vec<Capability>,
    /// Absolute roots that `core.files` may touch.
    pub files: Vec<PathBuf>,
    /// Environment variables `core.env` may read.
    pub env: Vec<String>,
    /// The databases `core.sql` and `core.mysql` may use, from `service.databases`.
    pub databases: Vec<std::sync::Arc<Database>>,
    /// Its own notification channels (`notify:`), replacing the service's; `Some(vec![])`
    /// silences it.
    pub notify: Option<Vec<Channel>>,
    /// Where the entry stands in `jobs.yaml` and how it is written.
    pub source: EntrySource,
}

impl JobSpec {
    /// How long retry `attempt` (from 1) waits after the failure before it: `retry_delay`,
    /// doubling each attempt, at most an hour (or `retry_delay` itself when that is longer).
    pub fn retry_wait(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.retry_delay
            .saturating_mul(1 << doublings)
            .min(RETRY_DELAY_CAP.max(self.retry_delay))
    }

    /// Whether `other` defines the same job (everything but where and how the entry is written),
    /// so that a reload can tell a changed job from one that only moved or was reformatted.
    pub fn same_definition(&self, other: &JobSpec) -> bool {
        self == other
    }
}

/// Where a job's entry stands in `jobs.yaml` and its text: for messages and the details view,
/// not part of what the entry defines. So two `EntrySource`s are always equal, and a
/// [`JobSpec`] compares equal to another that defines the same job wherever it is written.
#[derive(Clone, Debug)]
pub struct EntrySource {
    /// The 1-based line where the entry starts, for messages.
    pub line: usize,
    /// The entry's own text, dedented, for the details view; shared with every row published
    /// for the job.
    pub text: std::sync::Arc<str>,
}

impl PartialEq for EntrySource {
    fn eq(&self, _: &EntrySource) -> bool {
        true
    }
}

/// One problem in `jobs.yaml`: where it is and what was wrong and expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What was wrong and, after the last `: `, what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Why `jobs.yaml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{}: cannot read the file: {source}: expected a readable UTF-8 YAML file", file.display())]
    Unreadable {
        /// The path as given.
        file: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file was read but has problems; all of them are listed, in file order.
    #[error("{}", display_problems(file, problems))]
    Invalid {
        /// The path as given.
        file: PathBuf,
        /// Every problem found, sorted by position.
        problems: Vec<Problem>,
    },
}

fn display_problems(file: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}:{p}", file.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and validates `file`.
///
/// # Errors
/// [`ConfigError::Unreadable`] when the file cannot be read, [`ConfigError::Invalid`] with
/// every problem when it is not a valid `jobs.yaml`.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    load_with(file, Secrets::Required)
}

/// Whether the variables of `url_env` and `password_env` must be set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secrets {
    /// They must (`check`, `serve`, a reload, running a job): an unset one is a problem.
    Required,
    /// They need not, for the commands that only show jobs (`list`, `history`, `next`), so
    /// that an operator's shell needs no database passwords. A database whose `url_env` is
    /// unset is left out (jobs may still name it); one whose `password_env` is unset has no
    /// password.
    Optional,
}

/// [`load`], with the database variables as `secrets` says.
///
/// # Errors
/// As [`load`].
pub fn load_with(file: &Path, secrets: Secrets) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Unreadable {
        file: file.to_path_buf(),
        source,
    })?;
    parse_with(file, &text, secrets)
}

/// Validates `text` as the contents of `file`; `file` only names it in messages and anchors
/// its relative paths (nothing is read, but existing job paths are checked for symlinks).
///
/// # Errors
/// [`ConfigError::Invalid`] with every problem, sorted by position.
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
    parse_with(file, text, Secrets::Required)
}

/// [`parse`], with the database variables as `secrets` says.
///
/// # Errors
/// As [`parse`].
pub fn parse_with(file: &Path, text: &str, secrets: Secrets) -> Result<Config, ConfigError> {
    let parent = file.parent().unwrap_or(Path::new(""));
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let base_dir = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
    let invalid = |mut problems: Vec<Problem>| {
        yaml::keep_within(text, &mut problems);
        problems.sort_by_key(|p| (p.line, p.column));
        ConfigError::Invalid {
            file: file.to_path_buf(),
            problems,
        }
    };
    let root = yaml::parse(text).map_err(|p| invalid(vec![p]))?;
    let (service, jobs, mut warnings) =
        schema::validate(root.as_ref(), text, &base_dir, secrets).map_err(invalid)?;
    warnings.sort_by_key(|p| (p.line, p.column));
    Ok(Config {
        file: file.to_path_buf(),
        base_dir,
        service,
        jobs,
        warnings,
    })
}

#[cfg(test)]
mod tests;
