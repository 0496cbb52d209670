//! What a finished run does to its job (docs/job-files.md#return-values): the counters and last
//! run, then the result's effect on the status: stop, sleep, deactivate, or a retry while
//! attempts are left.

use super::super::table::{Firing, JobEntry, Retry};
use super::{Effect, Ended, Now, SLEEP_FOR};
use crate::job::{RunResult, Status, Trigger};

impl JobEntry {
    pub(super) fn on_finished(
        &mut self,
        run_id: u64,
        ended: Ended,
        now: Now,
        effects: &mut Vec<Effect>,
    ) {
        let Some(run) = self.running.take_if(|run| run.run_id == run_id) else {
            return;
        };
        self.count(&ended, now);
        effects.push(Effect::Publish);
        if run.aborting {
            // Cancelled by an operator: deactivated already.
            return;
        }
        // An operator's run of a job that is deactivated or disabled changes its status only
        // by deactivating it (again): it does not reactivate it by stopping or sleeping.
        let inactive = matches!(self.status, Status::Deactivated | Status::Disabled);
        match ended.result {
            RunResult::Ok => {
                self.stored.retry_attempt = 0;
                if self.status == Status::Retrying {
                    self.status = Status::Waiting;
                }
                if run.trigger == Trigger::Schedule && self.spec.run_once && !inactive {
                    self.status = Status::Done;
                    self.next = None;
                }
            }
            RunResult::Exit if !inactive => {
                self.status = Status::Stopped;
                self.next = None;
                self.stored.retry_attempt = 0;
            }
            RunResult::Sleep if !inactive => {
                self.status = Status::Sleeping;
                self.stored.retry_attempt = 0;
                // The first firing at or after the wake-up, a day after this run's firing.
                let wake =
                    ended.scheduled + chrono::Duration::from_std(SLEEP_FOR).unwrap_or_default();
                let just_before = wake - chrono::Duration::nanoseconds(1);
                self.next = self
                    .spec
                    .schedule
                    .next_after(just_before)
                    .map(|slot| Firing {
                        slot,
                        due: now.mono_of(slot),
                    });
            }
            result if result.is_failure() && !inactive && self.attempts_left() => {
                let attempt = self.stored.retry_attempt + 1;
                let wait = self.spec.retry_wait(attempt);
                self.status = Status::Retrying;
                self.stored.retry_attempt = attempt;
                let at = now.wall + chrono::Duration::from_std(wait).unwrap_or_default();
                self.stored.retry_at = Some(at);
                self.retry = Some(Retry {
                    attempt,
                    due: now.mono + wait,
                    at,
                });
            }
            _ => {
                if let Some(reason) = ended.deactivation {
                    self.deactivate(reason, None, now, effects);
                    return;
                }
            }
        }
        if self.retry.is_none() {
            self.stored.retry_at = None;
        }
        effects.push(self.arm(now));
    }

    /// Whether a failure now would get another attempt.
    fn attempts_left(&self) -> bool {
        self.stored.retry_attempt < self.spec.retries
    }

    /// The run's facts in the job's counters and last-run fields.
    fn count(&mut self, ended: &Ended, now: Now) {
        let stored = &mut self.stored;
        stored.last_run = Some(ended.started);
        stored.last_scheduled = Some(ended.scheduled);
        stored.last_result = Some(ended.result);
        stored.last_duration_ms = Some(ended.duration.as_secs_f64() * 1e3);
        stored.runs += 1;
        if ended.result == RunResult::Ok {
            stored.oks += 1;
        }
        if ended.result.is_failure() {
            stored.errors += 1;
        }
        if let Some(error) = &ended.error {
            stored.last_error = Some(error.clone());
            stored.last_error_at = Some(now.wall);
        }
    }
}
