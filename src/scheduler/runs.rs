//! A finished run: recorded, shown to subscribers, and handed to its job's transition.

use super::lifecycle::{Ended, Event};
use super::recorder::Record;
use super::workers::Done;
use super::{Scheduler, run_summary};
use crate::control::JobEvent;

impl Scheduler {
    /// A worker finished a run: record it and apply its result.
    pub(super) fn finish(&mut self, done: Done) {
        self.running = self.running.saturating_sub(1);
        let outcome = done.outcome;
        let record = outcome.record(&done.name, done.scheduled, done.trigger);
        // Built only for subscribers: it copies the run's log lines.
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(JobEvent::Finished {
                name: done.name,
                run: run_summary(&record),
            });
        }
        self.record(Record::Run(record));
        let ended = Ended {
            result: outcome.result,
            deactivation: outcome.deactivation_reason(),
            error: outcome.error,
            scheduled: done.scheduled,
            started: outcome.started,
            duration: outcome.duration,
        };
        // The job may have left the configuration while this run was going: then only the
        // record is left of it.
        let now = self.now();
        self.apply(
            done.job,
            Event::Finished {
                run_id: done.run_id,
                ended,
            },
            now,
        );
    }
}
