//! What `service.notify`, a job's `notify:`, `service.smtp` and the metrics settings say
//! (docs/alerts.md): channels, the events each wants, and where mail goes. Delivery is
//! `crate::notify`'s.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;

/// Something about a job worth telling people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A run failed: the job is deactivated or retrying.
    Failed,
    /// The first ok run after a failure or a deactivation.
    Recovered,
    /// The job was deactivated (a failure, `job.CANCEL`, an operator).
    Deactivated,
    /// A firing was not run (overlap, catch-up rule, service down, retrying).
    Skipped,
    /// `jobtop notify test`.
    Test,
}

impl NotifyEvent {
    /// The events a channel's `on:` may name.
    pub const CHOSEN: [NotifyEvent; 4] = [
        NotifyEvent::Failed,
        NotifyEvent::Recovered,
        NotifyEvent::Deactivated,
        NotifyEvent::Skipped,
    ];

    /// The word in `on:` and in the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Failed => "failed",
            NotifyEvent::Recovered => "recovered",
            NotifyEvent::Deactivated => "deactivated",
            NotifyEvent::Skipped => "skipped",
            NotifyEvent::Test => "test",
        }
    }

    /// The event `word` names in `on:`.
    pub fn from_word(word: &str) -> Option<NotifyEvent> {
        NotifyEvent::CHOSEN.into_iter().find(|e| e.as_str() == word)
    }
}

impl fmt::Display for NotifyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// How it is named in messages and in the `channel` label: `webhook:hooks.example.com`,
    /// `command:page-oncall`, `email:ops@example.com` (never a secret).
    pub label: String,
    /// Where notifications go.
    pub target: Target,
    /// The events it wants; default `failed` and `recovered`.
    pub on: Vec<NotifyEvent>,
    /// How long one delivery attempt may take; default 10 s.
    pub timeout: std::time::Duration,
}

impl Channel {
    /// Whether this channel wants `event` (a test goes to every channel).
    pub fn wants(&self, event: NotifyEvent) -> bool {
        event == NotifyEvent::Test || self.on.contains(&event)
    }
}

/// Where a channel delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// POST the JSON payload.
    Webhook {
        /// The URL, `${NAME}` expanded (hidden: it may carry a token).
        url: Secret,
        /// Extra headers, `${NAME}` expanded in the values.
        headers: Vec<(String, Secret)>,
    },
    /// Run a program (no shell) with the JSON payload on stdin.
    Command {
        /// The program and its arguments, `${NAME}` expanded.
        argv: Vec<Secret>,
    },
    /// Mail through `service.smtp`.
    Email {
        /// Recipients.
        to: Vec<String>,
        /// Sender.
        from: String,
    },
}

/// `service.smtp`: the mail server for email channels (and `core.email` later).
#[derive(Debug, Clone, PartialEq)]
pub struct Smtp {
    /// `smtp://host[:port]` (plain, port 25), `smtp+starttls://host[:port]` (587) or
    /// `smtps://host[:port]` (465).
    pub url: String,
    /// The login, from the variable `user_env` names.
    pub user: Option<Secret>,
    /// The password, from the variable `password_env` names.
    pub password: Option<Secret>,
}

/// The notification and metrics settings of `service:`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Alerts {
    /// `service.notify`: the channels of every job that has no `notify:` of its own.
    pub notify: Vec<Channel>,
    /// `service.smtp`.
    pub smtp: Option<Smtp>,
    /// `service.metrics`: where `GET /metrics` is served.
    pub metrics: Option<SocketAddr>,
    /// `service.metrics_textfile`: the file the metrics are written to every 15 s.
    pub metrics_textfile: Option<PathBuf>,
}
