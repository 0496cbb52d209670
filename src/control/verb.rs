//! The operator's verbs on one job: the same three words in the dashboard, the CLI, the control
//! socket and the audit trail.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What an operator can do to one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    /// Make a deactivated, stopped, sleeping or done job `waiting` again; persisted.
    Activate,
    /// Deactivate the job, persisted, and abort its run in progress.
    Cancel,
    /// Run the job now, once, whatever its status (never twice at once).
    Trigger,
}

impl Verb {
    /// Every verb.
    pub const ALL: [Verb; 3] = [Verb::Activate, Verb::Cancel, Verb::Trigger];

    /// The word: the protocol's `op`, the CLI's subcommand, the audit trail's action.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Activate => "activate",
            Verb::Cancel => "cancel",
            Verb::Trigger => "trigger",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
