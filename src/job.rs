//! The shared vocabulary of jobtop: what a run can end with and what state a job is in.
//!
//! The words here are the ones operators read in the dashboard and scripts read in JSON
//! (docs/statuses.md), so their spelling is part of the contract.

use std::fmt;
use std::str::FromStr;

/// How one run of a job file ended (docs/job-files.md#return-values, docs/statuses.md#result-words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    /// `job.OK`, `job.DONE` or `true`: run again at the next interval.
    Ok,
    /// `job.EXIT`, `job.STOP` or `false`: no more runs until reload or restart.
    Exit,
    /// `job.CANCEL`: deactivated, persisted.
    Cancel,
    /// `job.SLEEP`: no run for 24 hours.
    Sleep,
    /// `job.run()` returned something that is not one of the constants.
    Invalid,
    /// The job raised an error (or is not a proper job table).
    Error,
    /// The job file does not compile.
    Syntax,
    /// The job file does not exist.
    Missing,
    /// The run passed its wall-clock limit.
    Timeout,
    /// The run passed its Lua heap limit.
    Memory,
    /// The run was stopped by an operator or by shutdown.
    Aborted,
    /// A due time came while the previous run was still going.
    Skipped,
}

impl RunResult {
    /// Every result, in the order docs/jobs-yaml.md lists them.
    pub const ALL: [RunResult; 12] = [
        RunResult::Ok,
        RunResult::Exit,
        RunResult::Cancel,
        RunResult::Sleep,
        RunResult::Invalid,
        RunResult::Error,
        RunResult::Syntax,
        RunResult::Missing,
        RunResult::Timeout,
        RunResult::Memory,
        RunResult::Aborted,
        RunResult::Skipped,
    ];

    /// The word used in the dashboard, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Ok => "ok",
            RunResult::Exit => "exit",
            RunResult::Cancel => "cancel",
            RunResult::Sleep => "sleep",
            RunResult::Invalid => "invalid",
            RunResult::Error => "error",
            RunResult::Syntax => "syntax",
            RunResult::Missing => "missing",
            RunResult::Timeout => "timeout",
            RunResult::Memory => "memory",
            RunResult::Aborted => "aborted",
            RunResult::Skipped => "skipped",
        }
    }

    /// Results that deactivate the job and store a last error (docs/job-files.md#errors, and `invalid`).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            RunResult::Invalid
                | RunResult::Error
                | RunResult::Syntax
                | RunResult::Missing
                | RunResult::Timeout
                | RunResult::Memory
        )
    }
}

impl fmt::Display for RunResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not one of the known result or status words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {word:?}: expected one of {expected}")]
pub struct UnknownWord {
    kind: &'static str,
    word: String,
    expected: String,
}

impl FromStr for RunResult {
    type Err = UnknownWord;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunResult::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownWord {
                kind: "result",
                word: s.to_string(),
                expected: RunResult::ALL.map(RunResult::as_str).join(", "),
            })
    }
}

/// Where a job stands right now (docs/statuses.md).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Active, next run scheduled.
    Waiting,
    /// A run is in progress.
    Running,
    /// A run failed and a retry is due (attempts left of `retries`).
    Retrying,
    /// Returned `job.EXIT`: idle until reload or restart.
    Stopped,
    /// Returned `job.SLEEP`: idle for 24 hours.
    Sleeping,
    /// A `run_once` job that has had its run for this service start.
    Done,
    /// Deactivated by a failure, by `job.CANCEL` or by an operator; persisted.
    Deactivated,
    /// `active: false` in `jobs.yaml`.
    Disabled,
}

impl Status {
    /// Every status, in the order docs/jobs-yaml.md lists them.
    pub const ALL: [Status; 8] = [
        Status::Waiting,
        Status::Running,
        Status::Retrying,
        Status::Stopped,
        Status::Sleeping,
        Status::Done,
        Status::Deactivated,
        Status::Disabled,
    ];

    /// The word used in the dashboard, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Running => "running",
            Status::Retrying => "retrying",
            Status::Stopped => "stopped",
            Status::Sleeping => "sleeping",
            Status::Done => "done",
            Status::Deactivated => "deactivated",
            Status::Disabled => "disabled",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = UnknownWord;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownWord {
                kind: "status",
                word: s.to_string(),
                expected: Status::ALL.map(Status::as_str).join(", "),
            })
    }
}

/// Who asked for a run (docs/state.md#per-run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The scheduler, at a firing.
    Schedule,
    /// An operator, with `t` or `jobtop trigger`.
    Operator,
    /// The scheduler, retrying a failed run (`retries:`).
    Retry,
}

impl Trigger {
    /// Every trigger.
    pub const ALL: [Trigger; 3] = [Trigger::Schedule, Trigger::Operator, Trigger::Retry];

    /// The word stored in history and shown in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Operator => "operator",
            Trigger::Retry => "retry",
        }
    }
}

/// Why a firing was not run (a `skipped` run in history; docs/scheduling.md#skips).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The previous run was still going.
    Overlap,
    /// The service was down or stalled; the latest firing ran instead.
    Missed,
    /// Missed, and the job's `catch_up` rule says not to run it.
    CatchUp,
    /// A retry of a failed run was due; the retry wins.
    Retrying,
}

impl SkipReason {
    /// Every reason.
    pub const ALL: [SkipReason; 4] = [
        SkipReason::Overlap,
        SkipReason::Missed,
        SkipReason::CatchUp,
        SkipReason::Retrying,
    ];

    /// The word stored in history, in JSON and as the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Overlap => "overlap",
            SkipReason::Missed => "missed",
            SkipReason::CatchUp => "catch_up",
            SkipReason::Retrying => "retrying",
        }
    }

    /// The word back, for the state database.
    pub fn from_word(word: &str) -> Option<SkipReason> {
        SkipReason::ALL.into_iter().find(|r| r.as_str() == word)
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_uses_the_same_words() {
        for r in RunResult::ALL {
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        for s in Status::ALL {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
    }

    #[test]
    fn words_round_trip() {
        for r in RunResult::ALL {
            assert_eq!(r.as_str().parse::<RunResult>(), Ok(r));
        }
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        let err = "bogus".parse::<Status>().unwrap_err().to_string();
        assert!(err.contains("expected one of waiting, running"), "{err}");
    }

    #[test]
    fn failures_are_the_deactivating_results() {
        let failing: Vec<_> = RunResult::ALL
            .into_iter()
            .filter(|r| r.is_failure())
            .map(RunResult::as_str)
            .collect();
        assert_eq!(
            failing,
            ["invalid", "error", "syntax", "missing", "timeout", "memory"]
        );
    }
}
