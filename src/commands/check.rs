//! `jobtop check`: validate `jobs.yaml` and compile every job file without running it.

use crate::config::{self, Config, ConfigError};
use crate::runtime::{LoadError, ScriptCache};

use super::exit;

/// What `check` found.
pub struct CheckReport {
    /// One line per problem: `file:line:col: message` or a job file's compile error.
    pub problems: Vec<String>,
    /// One line per warning (`file:line:col: warning: message`): the file is valid.
    pub warnings: Vec<String>,
    /// How many jobs the configuration has (0 when it could not be read).
    pub jobs: usize,
    /// Whether the configuration file itself was unreadable (exit code 2).
    pub unreadable: bool,
}

/// Checks the configuration at `file` and every job file it names.
pub fn check(file: &std::path::Path) -> CheckReport {
    match config::load(file) {
        Ok(config) => CheckReport {
            problems: compile_all(&config),
            warnings: config
                .warnings
                .iter()
                .map(|w| {
                    format!(
                        "{}:{}:{}: warning: {}",
                        file.display(),
                        w.line,
                        w.column,
                        w.message
                    )
                })
                .collect(),
            jobs: config.jobs.len(),
            unreadable: false,
        },
        Err(ConfigError::Invalid { problems, .. }) => CheckReport {
            problems: problems
                .iter()
                .map(|p| format!("{}:{p}", file.display()))
                .collect(),
            warnings: Vec::new(),
            jobs: 0,
            unreadable: false,
        },
        Err(error @ ConfigError::Unreadable { .. }) => CheckReport {
            problems: vec![error.to_string()],
            warnings: Vec::new(),
            jobs: 0,
            unreadable: true,
        },
    }
}

/// Compiles every job file; a missing or broken file is a problem naming its job.
fn compile_all(config: &Config) -> Vec<String> {
    let cache = ScriptCache::new();
    let mut problems = Vec::new();
    for job in &config.jobs {
        let display = config.display_name(&job.path);
        if let Err(e) = cache.bytecode(&job.file, &display) {
            let message = match e {
                LoadError::Missing(m) | LoadError::Syntax(m) | LoadError::Unreadable(m) => m,
            };
            problems.push(format!(
                "{}:{}: job {:?}: {message}",
                config.file.display(),
                job.source.line,
                job.name
            ));
        }
    }
    problems
}

/// Runs `jobtop check` and returns the exit code.
pub fn run(file: &std::path::Path) -> u8 {
    let report = check(file);
    for warning in &report.warnings {
        say!("{warning}");
    }
    if report.problems.is_empty() {
        say!(
            "{}: OK, {} job{}, every job file compiles",
            file.display(),
            report.jobs,
            if report.jobs == 1 { "" } else { "s" }
        );
        return exit::OK;
    }
    for problem in &report.problems {
        say!("{problem}");
    }
    let count = report.problems.len();
    eprintln!(
        "{}: {count} problem{} found",
        file.display(),
        if count == 1 { "" } else { "s" }
    );
    if report.unreadable {
        exit::USAGE
    } else {
        exit::FAILED
    }
}
