//! The scheduler's answers to operator commands (docs/statuses.md).

use crate::control::{ActionError, Actor, Reply, SchedulerCommand, Subscription, Verb};

use super::effects::Caller;
use super::lifecycle::Event;
use super::recorder::Record;
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
            } => self.act(verb, &job, by, reply),
            SchedulerCommand::History { job, limit, reply } => {
                if let Err(e) = self.find(&job) {
                    let _ = reply.send(Err(e));
                } else if !self.record(Record::History { job, limit, reply }) {
                    tracing::error!("the recorder is gone: history cannot be read");
                }
            }
            SchedulerCommand::NotifyTest { channel, reply } => match &self.notify_tests {
                Some(notifier) => {
                    if let Err(e) = notifier.send((channel, reply)) {
                        let _ =
                            e.0.1
                                .send(Err(ActionError("the notifier has stopped".into())));
                    }
                }
                None => {
                    let _ = reply.send(Err(ActionError(
                        "this service sends no notifications".into(),
                    )));
                }
            },
            SchedulerCommand::Shutdown { reply } => self.begin_shutdown(Some(reply)),
        }
    }

    pub(super) fn audit(&mut self, by: &Actor, action: &str, job: &str, detail: Option<String>) {
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

    /// Activate, cancel or trigger: the job's transition decides and answers.
    fn act(&mut self, verb: Verb, name: &str, by: Actor, reply: Reply<String>) {
        let id = match self.find(name) {
            Ok(id) => id,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let event = match verb {
            Verb::Activate => Event::Activate,
            Verb::Cancel => Event::Cancel { by: by.clone() },
            Verb::Trigger => Event::Trigger,
        };
        let now = self.now();
        let caller = Caller {
            by,
            reply: Some(reply),
        };
        self.apply_for(id, event, now, Some(caller));
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
