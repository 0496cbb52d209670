//! The messages the scheduler actor takes, each with the channel its answer comes back on.
//! Only [`Client`](super::Client) builds them; the scheduler and the control socket's client
//! bridge are the two that answer them.

use tokio::sync::{broadcast, oneshot};

use super::events::JobEvent;
use super::verb::Verb;
use super::views::{ReloadSummary, RunSummary, Snapshot};

/// A reply to a command: the outcome, or a message saying why it was refused.
pub type Reply<T> = oneshot::Sender<Result<T, ActionError>>;

/// Why a command was refused or failed; the text is shown to the operator as it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("{0}")]
pub struct ActionError(pub String);

/// Who asked for an action (a Unix user name), for the audit trail.
pub type Actor = Option<String>;

/// What the scheduler can be asked to do.
#[derive(Debug)]
pub enum SchedulerCommand {
    /// Read `jobs.yaml` again and apply the difference (docs/scheduling.md).
    Reload {
        /// Who asked (`SIGHUP` when the signal did).
        by: Actor,
        /// Receives what changed, or the validation error (the old configuration stays).
        reply: Reply<ReloadSummary>,
    },
    /// Activate, cancel or trigger one job.
    Act {
        /// What to do.
        verb: Verb,
        /// The job's name.
        job: String,
        /// Who asked.
        by: Actor,
        /// Receives a one-line confirmation (for activate and cancel, once it is committed).
        reply: Reply<String>,
    },
    /// The current table and a receiver for every event after it.
    Subscribe {
        /// Receives the snapshot and the event stream.
        reply: Reply<Subscription>,
    },
    /// The current table.
    Snapshot {
        /// Receives it.
        reply: Reply<Snapshot>,
    },
    /// Recent runs of one job, newest first.
    History {
        /// The job's name.
        job: String,
        /// At most this many runs.
        limit: usize,
        /// Receives the runs.
        reply: Reply<Vec<RunSummary>>,
    },
    /// Send a test notification to every channel, or to channel `channel` (from 1); the
    /// scheduler hands it to the notifier.
    NotifyTest {
        /// Only this channel.
        channel: Option<usize>,
        /// Receives each channel's outcome.
        reply: Reply<Vec<super::ChannelOutcome>>,
    },
    /// Stop starting runs, let running ones finish within the grace period, record, and stop.
    /// Through the control socket this only ends the client's connection.
    Shutdown {
        /// Told when everything is recorded.
        reply: oneshot::Sender<()>,
    },
}

/// Where the scheduler hands `notify test` requests: the notifier's inbox (the scheduler
/// answers every `Client` request, but notifications are not its business).
pub type NotifyTests =
    tokio::sync::mpsc::UnboundedSender<(Option<usize>, Reply<Vec<super::ChannelOutcome>>)>;

/// A snapshot and the events that follow it.
#[derive(Debug)]
pub struct Subscription {
    /// The table as it is now.
    pub snapshot: Snapshot,
    /// Every event after the snapshot. A receiver that lags should subscribe again.
    pub events: broadcast::Receiver<JobEvent>,
}
