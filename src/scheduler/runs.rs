//! A job's runs: due times firing, handing runs to the workers, and applying what they ended
//! with (docs/job-files.md#return-values, docs/scheduling.md).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::phase::{latest_slot, wall_of};
use super::recorder::{self, Record};
use super::table::Running;
use super::timers::JobId;
use super::workers::{Done, Work};
use super::{MAX_SKIP_RECORDS, SLEEP_FOR, Scheduler, run_summary};
use crate::control::{Actor, JobEvent};
use crate::job::{RunResult, Status, Trigger};
use crate::runtime::{RunControl, RunRequest};
use crate::store::RunRecord;

impl Scheduler {
    /// A job's due time came: run it (or count a skip), then set its next due time on its
    /// phase, skipping slots already past so an overdue job runs once, not in a burst.
    pub(super) fn on_due(&mut self, id: JobId, due: Instant, now: Instant) {
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        let interval = entry.spec.interval;
        let run_once = entry.spec.run_once;
        // Late by a whole interval or more (a stall): this run stands for the latest slot,
        // so the helpers see the time it really runs at; the slots in between are dropped.
        let latest = latest_slot(due, interval, now);
        let next = latest + interval;
        if entry.running.is_some() {
            // Every slot that came while the run was going is a skip, stall or not.
            let mut slot = due;
            let mut skipped = 0u64;
            let mut records = Vec::new();
            while slot <= latest {
                skipped += 1;
                if records.len() < MAX_SKIP_RECORDS {
                    records.push(RunRecord {
                        job: entry.spec.name.clone(),
                        scheduled: wall_of(self.wall.now(), now, slot),
                        started: self.wall.now(),
                        duration: Duration::ZERO,
                        result: RunResult::Skipped,
                        error: Some("the previous run was still going".into()),
                        logs: Vec::new(),
                        trigger: Trigger::Schedule,
                    });
                }
                slot += interval;
            }
            entry.stored.skips += skipped;
            for record in records {
                self.record(Record::Run(record));
            }
        } else {
            if entry.status == Status::Sleeping {
                entry.status = Status::Waiting;
            }
            self.dispatch(id, latest, Trigger::Schedule);
        }
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        if run_once {
            entry.due = None;
            entry.timer_generation += 1;
        } else {
            entry.due = Some(next);
            self.arm(id);
        }
        self.publish(id);
    }

    /// Hands one run of a job to the worker pool.
    pub(super) fn dispatch(&mut self, id: JobId, due: Instant, trigger: Trigger) {
        let scheduled = self.wall_of(due);
        let since = self.wall_now();
        let run_id = self.next_run_id;
        self.next_run_id += 1;
        let zone = self.zone;
        let log_sink = self.log_sink(id);
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        let control = RunControl::new();
        let request = RunRequest {
            file: entry.spec.file.clone(),
            display_name: entry.display_name.clone(),
            scheduled,
            zone,
            timeout: entry.spec.timeout,
            memory: entry.spec.memory,
            control: control.clone(),
            log_sink,
            grants: entry.grants.clone(),
        };
        entry.running = Some(Running {
            run_id,
            control,
            since,
            aborting: false,
        });
        // Due within `EARLY`: the worker waits out the rest (on the real clock).
        let start_at = std::time::Instant::now() + due.saturating_duration_since(Instant::now());
        // Known to be long: its last run timed out or took long enough that a wait for a CPU
        // cannot explain it.
        let long = entry.stored.last_result == Some(RunResult::Timeout)
            || entry
                .stored
                .last_duration_ms
                .is_some_and(|ms| ms >= super::workers::KNOWN_LONG.as_secs_f64() * 1e3);
        let work = Work {
            job: id,
            run_id,
            name: entry.spec.name.clone(),
            trigger,
            long,
            start_at,
            request,
        };
        if self.pool.submit(work) {
            self.running += 1;
        } else {
            entry.running = None;
            self.notice("the worker pool is gone: no run can start".into());
        }
    }

    /// A sink that streams a run's log lines to subscribers, when there are any.
    fn log_sink(&self, id: JobId) -> Option<crate::runtime::LogSink> {
        if self.events.receiver_count() == 0 {
            return None;
        }
        let name = self.jobs.get(&id)?.spec.name.clone();
        let events = self.events.clone();
        Some(Arc::new(move |line: &str| {
            let _ = events.send(JobEvent::Log {
                name: name.clone(),
                line: line.to_string(),
            });
        }))
    }

    /// A worker finished a run: record it and apply its result.
    pub(super) fn finish(&mut self, done: Done) {
        self.running = self.running.saturating_sub(1);
        let outcome = done.outcome;
        let scheduled = done.scheduled;
        let record = outcome.record(&done.name, scheduled, done.trigger);
        // Built only for subscribers: it copies the run's log lines.
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(JobEvent::Finished {
                name: done.name,
                run: run_summary(&record),
            });
        }
        self.record(Record::Run(record));
        let now_wall = self.wall_now();
        let Some(entry) = self.jobs.get_mut(&done.job) else {
            // The job left the configuration while this run was going.
            return;
        };
        if entry
            .running
            .as_ref()
            .is_none_or(|r| r.run_id != done.run_id)
        {
            return;
        }
        entry.running = None;
        entry.stored.last_run = Some(outcome.started);
        entry.stored.last_scheduled = Some(scheduled);
        entry.stored.last_result = Some(outcome.result);
        entry.stored.last_duration_ms = Some(outcome.duration.as_secs_f64() * 1e3);
        entry.stored.runs += 1;
        if outcome.result == RunResult::Ok {
            entry.stored.oks += 1;
        }
        if outcome.result.is_failure() {
            entry.stored.errors += 1;
        }
        if let Some(error) = &outcome.error {
            entry.stored.last_error = Some(error.clone());
            entry.stored.last_error_at = Some(now_wall);
        }
        let id = done.job;
        match outcome.result {
            RunResult::Ok if done.trigger == Trigger::Schedule && entry.spec.run_once => {
                entry.status = Status::Done;
            }
            RunResult::Exit => entry.status = Status::Stopped,
            RunResult::Sleep => {
                entry.status = Status::Sleeping;
                entry.due = Some(Instant::now() + SLEEP_FOR);
                self.arm(id);
            }
            _ => {
                if let Some(reason) = outcome.deactivation_reason() {
                    self.deactivate(id, &reason, None, None);
                }
            }
        }
        self.publish(id);
    }

    /// Deactivates a job: no more scheduled runs, persisted (acknowledged through `ack`).
    pub(super) fn deactivate(
        &mut self,
        id: JobId,
        reason: &str,
        by: Actor,
        ack: Option<recorder::Ack>,
    ) {
        let at = self.wall_now();
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        entry.status = Status::Deactivated;
        entry.due = None;
        entry.timer_generation += 1;
        entry.stored.deactivated = true;
        entry.stored.deactivated_reason = Some(reason.to_string());
        entry.stored.deactivated_by.clone_from(&by);
        entry.stored.deactivated_at = Some(at);
        tracing::info!(job = %entry.spec.name, %reason, "deactivated");
        let job = entry.spec.name.clone();
        self.record(Record::Deactivate {
            job,
            reason: reason.to_string(),
            by,
            at,
            ack,
        });
    }
}
