//! The vocabulary between the scheduler and whoever drives it: the in-process dashboard, the
//! control socket, the CLI. [`Client`] sends [`SchedulerCommand`]s, each with a reply channel;
//! [`JobEvent`]s come back on a broadcast channel. Nothing else is shared: the scheduler owns
//! the job table, a dashboard owns its view of it.
//!
//! Every JSON shape (rows, runs, snapshots, events, requests, responses) is a serde type here,
//! so the CLI, the socket and the dashboard read and write one definition.

mod client;
mod command;
mod events;
pub mod protocol;
pub mod time_format;
mod verb;
mod views;

pub use client::Client;
pub use command::{ActionError, Actor, NotifyTests, Reply, SchedulerCommand, Subscription};
pub use events::JobEvent;
pub use protocol::{Request, Response};
pub use verb::Verb;
pub use views::{ChannelOutcome, Hello, JobView, ReloadSummary, Role, RunSummary, Snapshot};
