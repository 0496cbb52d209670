//! What operators and reloads do to a job (docs/statuses.md#operator-actions,
//! docs/scheduling.md#reload): activate, cancel, trigger, and a new definition.

use std::sync::Arc;

use super::super::table::JobEntry;
use super::{Durable, Effect, Now};
use crate::config::JobSpec;
use crate::control::{ActionError, Actor};
use crate::job::{Status, Trigger};

impl JobEntry {
    /// A deactivated, stopped, sleeping or done job becomes `waiting` (or `disabled` when
    /// `jobs.yaml` says `active: false`), with its next firing after now; a deactivation is
    /// lifted on disk before the operator is told.
    pub(super) fn on_activate(&mut self, now: Now, effects: &mut Vec<Effect>) {
        let name = &self.spec.name;
        let was = self.status;
        match was {
            Status::Disabled => {
                effects.push(Effect::Answer(Err(ActionError(format!(
                    "{name} is disabled in jobs.yaml: set `active: true` in its entry and reload"
                )))));
                return;
            }
            Status::Waiting | Status::Running => {
                effects.push(Effect::Answer(Ok(format!("{name} is already active"))));
                return;
            }
            Status::Retrying => {
                effects.push(Effect::Answer(Ok(format!(
                    "{name} is already active (retrying: attempt {} of {})",
                    self.stored.retry_attempt, self.spec.retries
                ))));
                return;
            }
            Status::Deactivated | Status::Stopped | Status::Sleeping | Status::Done => {}
        }
        self.stored.deactivated = false;
        self.stored.deactivated_reason = None;
        self.stored.deactivated_by = None;
        self.stored.deactivated_at = None;
        self.stored.retry_attempt = 0;
        self.stored.retry_at = None;
        self.retry = None;
        let mut message = format!("activated {name} (was {was})");
        if self.spec.active {
            self.status = Status::Waiting;
            self.next = self.firing_after(now.wall, now);
        } else {
            self.status = Status::Disabled;
            message.push_str("; it stays disabled: its entry in jobs.yaml says `active: false`");
        }
        effects.push(Effect::Publish);
        effects.push(self.arm(now));
        effects.push(Effect::Audit {
            action: "activate",
            detail: Some(format!("was {was}")),
        });
        if was == Status::Deactivated {
            effects.push(Effect::Persist(Durable::Activate { at: now.wall }));
            effects.push(Effect::AnswerOnCommit(message));
        } else {
            effects.push(Effect::Answer(Ok(message)));
        }
    }

    /// Deactivates the job, persisted before the operator is told, and aborts its run.
    pub(super) fn on_cancel(&mut self, by: Actor, now: Now, effects: &mut Vec<Effect>) {
        let name = self.spec.name.clone();
        let aborted = match &mut self.running {
            Some(run) => {
                run.aborting = true;
                effects.push(Effect::Abort);
                true
            }
            None => false,
        };
        if self.status == Status::Deactivated && !aborted {
            effects.push(Effect::Answer(Ok(format!("{name} is already deactivated"))));
            return;
        }
        let who = by.as_deref().unwrap_or("an operator");
        let reason = format!("cancelled by {who}");
        self.deactivate(reason, by, now, effects);
        effects.push(Effect::Publish);
        effects.push(Effect::Audit {
            action: "cancel",
            detail: aborted.then(|| "aborted its run".into()),
        });
        effects.push(Effect::AnswerOnCommit(if aborted {
            format!("cancelled {name}; its run in progress is being aborted")
        } else {
            format!("cancelled {name}")
        }));
    }

    /// Runs the job now, once, whatever its status, but never twice at once. A pending retry
    /// gives way to it: this run is the attempt.
    pub(super) fn on_trigger(&mut self, now: Now, effects: &mut Vec<Effect>) {
        let name = self.spec.name.clone();
        if let Some(run) = &self.running {
            effects.push(Effect::Answer(Err(ActionError(format!(
                "{name} is already running (since {}): a job never runs twice at once",
                run.since.format("%H:%M:%S")
            )))));
            return;
        }
        self.retry = None;
        effects.push(self.dispatch(now.wall, Trigger::Operator, now.mono, now));
        effects.push(Effect::Publish);
        effects.push(self.arm(now));
        effects.push(Effect::Audit {
            action: "trigger",
            detail: None,
        });
        effects.push(Effect::Answer(Ok(format!("triggered {name}"))));
    }

    /// A reload kept the job: a changed definition takes effect (a schedule or zone that
    /// changed starts from now, on the new slots), a disabled one stops being scheduled, and a
    /// `stopped` job runs again. A deactivation stays.
    pub(super) fn on_reload(&mut self, spec: Arc<JobSpec>, now: Now, effects: &mut Vec<Effect>) {
        let changed = *self.spec != *spec;
        let rescheduled = self.spec.schedule != spec.schedule;
        if changed {
            self.spec = spec;
        }
        let before = self.status;
        if self.status != Status::Deactivated {
            if !self.spec.active {
                self.status = Status::Disabled;
                self.next = None;
                self.retry = None;
            } else if matches!(self.status, Status::Disabled | Status::Stopped) {
                self.status = Status::Waiting;
                self.next = self.firing_after(now.wall, now);
            } else if rescheduled && self.is_scheduled() {
                self.next = self.firing_after(now.wall, now);
            }
        }
        if changed || before != self.status {
            effects.push(Effect::Publish);
            effects.push(self.arm(now));
        }
    }
}
