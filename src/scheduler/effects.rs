//! Carrying out what a job's transition decided (`lifecycle::Effect`): timers, runs handed to
//! the pool, records and decisions for the recorder, rows published to subscribers, answers to
//! the operator. The only place the actor acts on a job.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::Scheduler;
use super::lifecycle::{Dispatch, Durable, Effect, Event, Now};
use super::recorder::Record;
use super::timers::{JobId, Timer};
use super::workers::{KNOWN_LONG, Work};
use crate::control::{ActionError, Actor, JobEvent, Reply};
use crate::job::{RunResult, Status};
use crate::runtime::{LocalZone, RunRequest};
use crate::schedule::Zone;
use crate::store::LiveUpdate;

/// Who an event comes from, when an operator asked: named in the audit trail, and answered.
pub(super) struct Caller {
    pub(super) by: Actor,
    pub(super) reply: Option<Reply<String>>,
}

impl Scheduler {
    /// Applies an event nobody waits on.
    pub(super) fn apply(&mut self, id: JobId, event: Event, now: Now) {
        self.apply_for(id, event, now, None);
    }

    /// Applies an event to a job and carries out its effects, answering `caller` if one asked.
    pub(super) fn apply_for(&mut self, id: JobId, event: Event, now: Now, caller: Option<Caller>) {
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        let effects = entry.apply(event, now);
        self.carry_out(id, effects, caller);
    }

    fn carry_out(&mut self, id: JobId, effects: Vec<Effect>, mut caller: Option<Caller>) {
        let mut committed = None;
        for effect in effects {
            match effect {
                Effect::Arm(at) => self.arm(id, Some((at, false))),
                Effect::Recheck(at) => self.arm(id, Some((at, true))),
                Effect::Disarm => self.arm(id, None),
                Effect::Dispatch(run) => self.dispatch(id, run),
                Effect::Abort => {
                    if let Some(run) = self.jobs.get(&id).and_then(|e| e.running.as_ref()) {
                        run.control.abort();
                    }
                }
                Effect::Skipped(record) => {
                    // Subscribers (the notifier, the metrics, a details view) see skips too.
                    if self.events.receiver_count() > 0
                        && let Some(entry) = self.jobs.get(&id)
                    {
                        let _ = self.events.send(JobEvent::Finished {
                            name: entry.spec.name.clone(),
                            run: super::run_summary(&record),
                        });
                    }
                    self.record(Record::Run(record));
                }
                Effect::Persist(durable) => {
                    let (ack, done) = oneshot::channel();
                    committed = Some(done);
                    self.persist(id, durable, ack);
                }
                Effect::Publish => self.publish(id),
                Effect::Audit { action, detail } => {
                    let by = caller.as_ref().and_then(|c| c.by.clone());
                    let job = self.jobs.get(&id).map(|e| e.spec.name.clone());
                    self.audit(&by, action, job.as_deref().unwrap_or_default(), detail);
                }
                Effect::Answer(answer) => {
                    if let Some(reply) = caller.as_mut().and_then(|c| c.reply.take()) {
                        let _ = reply.send(answer);
                    }
                }
                Effect::AnswerOnCommit(message) => {
                    if let (Some(reply), Some(done)) = (
                        caller.as_mut().and_then(|c| c.reply.take()),
                        committed.take(),
                    ) {
                        tokio::spawn(answer_after_commit(done, reply, message));
                    }
                }
                Effect::Plan => self.to_plan.push(id),
            }
        }
    }

    /// Arms the job's timer for `at` (exact or batched), or none; older timers of the job are
    /// stale from now on.
    fn arm(&mut self, id: JobId, at: Option<(tokio::time::Instant, bool)>) {
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        entry.timer_generation += 1;
        let Some((due, exact)) = at else {
            return;
        };
        if self.shutdown.is_some() {
            return;
        }
        let timer = Timer {
            due,
            job: id,
            generation: entry.timer_generation,
        };
        if exact {
            self.timers.push_exact(timer);
        } else {
            self.timers.push(timer);
        }
        if self.timers.len() > 4 * self.jobs.len() + 1024 {
            let jobs = &self.jobs;
            self.timers.retain(|t| {
                jobs.get(&t.job)
                    .is_some_and(|e| e.timer_generation == t.generation)
            });
        }
    }

    /// Hands one run of a job to the worker pool.
    fn dispatch(&mut self, id: JobId, run: Dispatch) {
        let log_sink = self.log_sink(id);
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        let zone = match entry.spec.schedule.zone() {
            Zone::Named(tz) => LocalZone::Named(tz),
            Zone::System => LocalZone::System,
        };
        let request = RunRequest {
            file: entry.spec.file.clone(),
            display_name: entry.display_name.clone(),
            scheduled: run.scheduled,
            zone,
            timeout: entry.spec.timeout,
            memory: entry.spec.memory,
            control: run.control,
            log_sink,
            grants: entry.grants.clone(),
        };
        // Handed over before its due time: the release timer waits out the rest (on the real
        // clock).
        let start_at = std::time::Instant::now()
            + run
                .start_at
                .saturating_duration_since(tokio::time::Instant::now());
        // Known to be long: its last run timed out or took long enough that a wait for a CPU
        // cannot explain it.
        let long = entry.stored.last_result == Some(RunResult::Timeout)
            || entry
                .stored
                .last_duration_ms
                .is_some_and(|ms| ms >= KNOWN_LONG.as_secs_f64() * 1e3);
        let work = Work {
            job: id,
            run_id: run.run_id,
            name: entry.spec.name.clone(),
            trigger: run.trigger,
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

    fn persist(&mut self, id: JobId, durable: Durable, ack: oneshot::Sender<Result<(), String>>) {
        let Some(job) = self.jobs.get(&id).map(|e| e.spec.name.clone()) else {
            return;
        };
        let record = match durable {
            Durable::Deactivate { reason, by, at } => {
                tracing::info!(job, %reason, "deactivated");
                Record::Deactivate {
                    job,
                    reason,
                    by,
                    at,
                    ack: Some(ack),
                }
            }
            Durable::Activate { at } => Record::Activate {
                job,
                at,
                ack: Some(ack),
            },
        };
        self.record(record);
    }

    /// Tells subscribers and the state database how a job stands now.
    pub(super) fn publish(&mut self, id: JobId) {
        let Some(entry) = self.jobs.get(&id) else {
            return;
        };
        let status = entry.shown_status();
        // `running` lasts microseconds for most runs: the database learns the status the run
        // ends in, which halves the writer's work per run. Live readers use the socket.
        if status != Status::Running {
            let live = Record::Live(LiveUpdate {
                job: entry.spec.name.clone(),
                status,
                next_run: entry.next_run(),
                last_fired: entry.stored.last_fired,
                retry_attempt: entry.stored.retry_attempt,
                retry_at: entry.retry.map(|r| r.at),
            });
            self.record(live);
        }
        let Some(entry) = self.jobs.get(&id) else {
            return;
        };
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(JobEvent::Job {
                job: Box::new(entry.view()),
            });
        }
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
