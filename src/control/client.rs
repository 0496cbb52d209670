//! [`Client`]: the one way to talk to a scheduler. The dashboard, the control socket's server
//! and the commands all hold one; whether the scheduler runs in this process or behind the
//! control socket (the socket client bridges the same messages over the wire) makes no
//! difference to them.

use tokio::sync::{mpsc, oneshot};

use super::command::{ActionError, Actor, Reply, SchedulerCommand, Subscription};
use super::verb::Verb;
use super::views::{JobView, ReloadSummary, RunSummary, Snapshot};

/// A handle on a scheduler, with typed methods; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<SchedulerCommand>,
    actor: Actor,
}

/// Why a command did not reach the scheduler.
fn gone() -> ActionError {
    ActionError("the scheduler is not running (the service is shutting down or gone)".into())
}

impl Client {
    /// A client that sends to this scheduler (or bridge), acting for nobody in particular.
    pub fn new(commands: mpsc::Sender<SchedulerCommand>) -> Client {
        Client {
            commands,
            actor: None,
        }
    }

    /// The same client, naming `actor` in the audit trail of what it does.
    #[must_use]
    pub fn acting_as(mut self, actor: Actor) -> Client {
        self.actor = actor;
        self
    }

    /// Who this client acts for.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> SchedulerCommand,
    ) -> Result<T, ActionError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(make(reply)).await.map_err(|_| gone())?;
        answer.await.unwrap_or_else(|_| Err(gone()))
    }

    /// The whole table now.
    pub async fn snapshot(&self) -> Result<Snapshot, ActionError> {
        self.ask(|reply| SchedulerCommand::Snapshot { reply }).await
    }

    /// Every job as a `list --json` row.
    pub async fn list(&self) -> Result<Vec<JobView>, ActionError> {
        Ok(self.snapshot().await?.jobs)
    }

    /// Recent runs of one job, newest first.
    pub async fn history(&self, job: &str, limit: usize) -> Result<Vec<RunSummary>, ActionError> {
        self.ask(|reply| SchedulerCommand::History {
            job: job.to_string(),
            limit,
            reply,
        })
        .await
    }

    /// Reads `jobs.yaml` again and applies the difference.
    pub async fn reload(&self) -> Result<ReloadSummary, ActionError> {
        let by = self.actor.clone();
        self.ask(|reply| SchedulerCommand::Reload { by, reply })
            .await
    }

    /// Activates, cancels or triggers one job; the confirmation to show.
    pub async fn act(&self, verb: Verb, job: &str) -> Result<String, ActionError> {
        let by = self.actor.clone();
        self.ask(|reply| SchedulerCommand::Act {
            verb,
            job: job.to_string(),
            by,
            reply,
        })
        .await
    }

    /// [`act`](Client::act) with [`Verb::Activate`].
    pub async fn activate(&self, job: &str) -> Result<String, ActionError> {
        self.act(Verb::Activate, job).await
    }

    /// [`act`](Client::act) with [`Verb::Cancel`].
    pub async fn cancel(&self, job: &str) -> Result<String, ActionError> {
        self.act(Verb::Cancel, job).await
    }

    /// [`act`](Client::act) with [`Verb::Trigger`].
    pub async fn trigger(&self, job: &str) -> Result<String, ActionError> {
        self.act(Verb::Trigger, job).await
    }

    /// Sends a test notification to every channel (or channel `channel`, from 1) and returns
    /// each outcome.
    pub async fn notify_test(
        &self,
        channel: Option<usize>,
    ) -> Result<Vec<super::ChannelOutcome>, ActionError> {
        self.ask(|reply| SchedulerCommand::NotifyTest { channel, reply })
            .await
    }

    /// The table now and every event after it.
    pub async fn subscribe(&self) -> Result<Subscription, ActionError> {
        self.ask(|reply| SchedulerCommand::Subscribe { reply })
            .await
    }

    /// Asks the scheduler to stop (runs get the grace period) and waits until everything is
    /// recorded. Through the control socket it only ends this client's connection.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .commands
            .send(SchedulerCommand::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    /// Whether the scheduler (or bridge) is gone.
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }
}
