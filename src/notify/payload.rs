//! The one JSON shape every channel gets (docs/alerts.md#the-payload), and the mail made of it.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::NotifyEvent;
use crate::control::time_format;
use crate::job::{RunResult, Status};

/// How many of a run's last log lines a notification carries.
pub const LOG_LINES: usize = 20;

/// One notification. Field names and meanings are a contract: add fields, never rename.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payload {
    /// `failed`, `recovered`, `deactivated`, `skipped` or `test`.
    pub event: NotifyEvent,
    /// The job's name.
    pub job: String,
    /// The host the service runs on.
    pub host: String,
    /// The job's status after the event: for `failed`, `deactivated` or `retrying`.
    pub status: Option<Status>,
    /// How the run ended (`skipped` for a skip); null when no run is concerned.
    pub result: Option<RunResult>,
    /// The run's error, or why the job was deactivated.
    pub error: Option<String>,
    /// For `skipped`: `overlap`, `missed`, `catch_up` or `retrying`.
    pub reason: Option<String>,
    /// When the run was due.
    #[serde(with = "time_format::option")]
    pub scheduled: Option<DateTime<Utc>>,
    /// When it started.
    #[serde(with = "time_format::option")]
    pub started: Option<DateTime<Utc>>,
    /// How long it took.
    pub duration_ms: Option<f64>,
    /// Which attempt this run was: 1 for the scheduled run, 2 for its first retry …
    pub attempt: Option<u32>,
    /// How many attempts the job gets: `retries` + 1.
    pub attempts: Option<u32>,
    /// Who deactivated the job, when an operator did.
    pub by: Option<String>,
    /// The service's `jobs.yaml`.
    pub config: String,
    /// jobtop's version.
    pub jobtop_version: &'static str,
    /// `failed` notifications of this job that this channel held back since its last one
    /// (at most one per 10 minutes).
    pub suppressed: u64,
    /// The run's last log lines.
    pub logs: Vec<String>,
}

impl Payload {
    /// The mail subject: `[jobtop db1] nightly-backup failed`.
    pub fn subject(&self) -> String {
        let mut subject = format!("[jobtop {}] {} {}", self.host, self.job, self.event);
        if self.event == NotifyEvent::Failed && self.status == Some(Status::Retrying) {
            subject.push_str(" (retrying)");
        }
        subject
    }

    /// The mail body: plain text with what happened, the error (traceback included) and the
    /// last log lines.
    pub fn body(&self) -> String {
        let mut body = format!("Job {} on {}: {}\n\n", self.job, self.host, self.event);
        let mut line = |label: &str, value: Option<String>| {
            if let Some(value) = value {
                let _ = writeln!(body, "{label:<10} {value}");
            }
        };
        line("status:", self.status.map(|s| s.as_str().to_string()));
        line("result:", self.result.map(|r| r.as_str().to_string()));
        line("reason:", self.reason.clone());
        line("scheduled:", self.scheduled.map(|t| t.to_rfc3339()));
        line("started:", self.started.map(|t| t.to_rfc3339()));
        line(
            "duration:",
            self.duration_ms.map(|ms| format!("{ms:.1} ms")),
        );
        line(
            "attempt:",
            self.attempt
                .zip(self.attempts)
                .map(|(a, n)| format!("{a} of {n}")),
        );
        line("by:", self.by.clone());
        line("config:", Some(self.config.clone()));
        if self.suppressed > 0 {
            line(
                "held back:",
                Some(format!(
                    "{} more failures since the last mail",
                    self.suppressed
                )),
            );
        }
        if let Some(error) = &self.error {
            body.push_str("\nError:\n");
            body.push_str(error);
            body.push('\n');
        }
        if !self.logs.is_empty() {
            let _ = write!(body, "\nLast {} log lines:\n", self.logs.len());
            for log in &self.logs {
                body.push_str(log);
                body.push('\n');
            }
        }
        let _ = write!(body, "\n-- jobtop {}\n", self.jobtop_version);
        body
    }
}

/// The name of this host, for payloads and subjects.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
