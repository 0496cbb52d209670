//! The scheduler's answers to operator commands (docs/statuses.md).

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::control::{ActionError, Actor, Reply, SchedulerCommand, Subscription, Verb};
use crate::job::{Status, Trigger};

use super::recorder::Record;
use super::timers::JobId;
use super::{Scheduler, SelfMessage};

impl Scheduler {
    pub(super) fn command(&mut self, command: SchedulerCommand) {
        if self.shutdown.is_some() {
            let stopping = || ActionError("the service is shutting down".into());
            match command {
                SchedulerCommand::Act { reply, .. } => {
                    let _ = reply.send(Err(stopping()));
                    return;
                }
                SchedulerCommand::Reload { reply, .. } => {
                    let _ = reply.send(Err(stopping()));
                    return;
                }
                other => return self.answer(other),
            }
        }
        self.answer(command);
    }

    fn answer(&mut self, command: SchedulerCommand) {
        match command {
            SchedulerCommand::Subscribe { reply } => {
                let _ = reply.send(Ok(Subscription {
                    snapshot: self.snapshot(),
                    events: self.events.subscribe(),
                }));
            }
            SchedulerCommand::Snapshot { reply } => {
                let _ = reply.send(Ok(self.snapshot()));
            }
            SchedulerCommand::Reload { by, reply } => {
                self.audit(&by, "reload", "", None);
                self.start_reload(reply);
            }
            SchedulerCommand::Act {
                verb,
                job,
                by,
                reply,
            } => match verb {
                Verb::Activate => self.activate(&job, &by, reply),
                Verb::Cancel => self.cancel(&job, &by, reply),
                Verb::Trigger => {
                    let _ = reply.send(self.trigger(&job, &by));
                }
            },
            SchedulerCommand::History { job, limit, reply } => {
                if let Err(e) = self.find(&job) {
                    let _ = reply.send(Err(e));
                } else if !self.record(Record::History { job, limit, reply }) {
                    tracing::error!("the recorder is gone: history cannot be read");
                }
            }
            SchedulerCommand::Shutdown { reply } => self.begin_shutdown(Some(reply)),
        }
    }

    fn audit(&mut self, by: &Actor, action: &str, job: &str, detail: Option<String>) {
        tracing::info!(
            user = by.as_deref().unwrap_or("-"),
            action,
            job,
            "operator action"
        );
        self.record(Record::Audit {
            user: by.clone(),
            action: action.to_string(),
            job: (!job.is_empty()).then(|| job.to_string()),
            detail,
        });
    }

    /// A deactivated, stopped, sleeping or done job becomes `waiting`, next run one interval
    /// from now; a deactivation is lifted on disk before the operator is told.
    fn activate(&mut self, name: &str, by: &Actor, reply: Reply<String>) {
        let id = match self.find(name) {
            Ok(id) => id,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let at = self.wall_now();
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        let was = entry.status;
        match was {
            Status::Disabled => {
                let _ = reply.send(Err(ActionError(format!(
                    "{name} is disabled in {}: set `active: true` in its entry and reload",
                    self.config.file.display()
                ))));
                return;
            }
            Status::Waiting | Status::Running => {
                let _ = reply.send(Ok(format!("{name} is already active")));
                return;
            }
            Status::Deactivated | Status::Stopped | Status::Sleeping | Status::Done => {}
        }
        entry.status = Status::Waiting;
        entry.stored.deactivated = false;
        entry.stored.deactivated_reason = None;
        entry.stored.deactivated_by = None;
        entry.stored.deactivated_at = None;
        entry.due = Some(Instant::now() + entry.spec.interval);
        self.arm(id);
        self.publish(id);
        self.audit(by, "activate", name, Some(format!("was {was}")));
        let message = format!("activated {name} (was {was})");
        if was == Status::Deactivated {
            let (ack, committed) = oneshot::channel();
            self.record(Record::Activate {
                job: name.to_string(),
                at,
                ack: Some(ack),
            });
            tokio::spawn(answer_after_commit(committed, reply, message));
        } else {
            let _ = reply.send(Ok(message));
        }
    }

    /// Deactivates a job, persisted before the operator is told, and aborts its run.
    fn cancel(&mut self, name: &str, by: &Actor, reply: Reply<String>) {
        let id = match self.find(name) {
            Ok(id) => id,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        let aborted = match &mut entry.running {
            Some(run) => {
                run.aborting = true;
                run.control.abort();
                true
            }
            None => false,
        };
        if entry.status == Status::Deactivated && !aborted {
            let _ = reply.send(Ok(format!("{name} is already deactivated")));
            return;
        }
        let who = by.as_deref().unwrap_or("an operator");
        let reason = format!("cancelled by {who}");
        let (ack, committed) = oneshot::channel();
        self.deactivate(id, &reason, by.clone(), Some(ack));
        self.publish(id);
        self.audit(
            by,
            "cancel",
            name,
            aborted.then(|| "aborted its run".into()),
        );
        let message = if aborted {
            format!("cancelled {name}; its run in progress is being aborted")
        } else {
            format!("cancelled {name}")
        };
        tokio::spawn(answer_after_commit(committed, reply, message));
    }

    /// Runs a job now, once, whatever its status (never twice at once).
    fn trigger(&mut self, name: &str, by: &Actor) -> Result<String, ActionError> {
        let id: JobId = self.find(name)?;
        if let Some(entry) = self.jobs.get(&id)
            && let Some(run) = &entry.running
        {
            return Err(ActionError(format!(
                "{name} is already running (since {}): a job never runs twice at once",
                run.since.format("%H:%M:%S")
            )));
        }
        self.dispatch(id, Instant::now(), Trigger::Operator);
        self.publish(id);
        self.audit(by, "trigger", name, None);
        Ok(format!("triggered {name}"))
    }

    fn start_reload(&mut self, reply: Reply<crate::control::ReloadSummary>) {
        let file = self.config.file.clone();
        let internal = self.internal.clone();
        let known: std::collections::HashSet<String> = self.by_name.keys().cloned().collect();
        let state_dir = self.config.service.state_dir.clone();
        tokio::task::spawn_blocking(move || {
            let result = super::reload::read(&file, known, &state_dir);
            let _ = internal.send(SelfMessage::ReloadRead { result, reply });
        });
    }
}

async fn answer_after_commit(
    committed: oneshot::Receiver<Result<(), String>>,
    reply: Reply<String>,
    message: String,
) {
    let answer = match committed.await {
        Ok(Ok(())) => Ok(message),
        Ok(Err(e)) => Err(ActionError(format!("not saved in the state database: {e}"))),
        Err(_) => Err(ActionError(
            "not saved: the state database writer stopped".into(),
        )),
    };
    let _ = reply.send(answer);
}
