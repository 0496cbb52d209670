//! A job's lifecycle as one transition: [`JobEntry::apply`] takes an [`Event`] and the time it
//! happens at, changes the entry, and returns the [`Effect`]s the scheduler actor carries out
//! (arm the timer, hand a run to the pool, record, persist, publish, answer). It reads no clock
//! and does no I/O, so every rule of docs/scheduling.md and docs/statuses.md is a table test
//! (`lifecycle/tests.rs`) without threads or sleeps.

mod firing;
mod operator;
mod outcome;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::table::{JobEntry, Running};
use crate::config::JobSpec;
use crate::control::{ActionError, Actor};
use crate::job::{RunResult, SkipReason, Status, Trigger};
use crate::runtime::RunControl;
use crate::store::{RunRecord, Skip};

/// A firing whose due time is this close counts as come: the async timer wakes a millisecond
/// or so after its deadline, so a decision that waits for the due time (an exact timer) is
/// made this much before it, and the pool's release timer starts the run on time.
pub const EARLY: Duration = Duration::from_millis(2);

/// How late a firing may be handled and still count as on time; later, it was missed (the
/// service was down or stalled) and `catch_up` decides.
pub const MISSED_GRACE: Duration = Duration::from_secs(1);

/// A wall-clock step at least this large is a correction: schedules start afresh from the new
/// time, with no catch-up and no memory of firings handled before (as cronie does).
pub const CORRECTION: chrono::TimeDelta = chrono::TimeDelta::hours(3);

/// How far ahead a calendar job's timer is armed at most: it wakes, reads the wall clock again
/// and re-arms, so a slow drift between the clocks never makes a firing late.
pub const RECHECK: Duration = Duration::from_secs(60);

/// How long a job that returned `job.SLEEP` rests.
pub const SLEEP_FOR: Duration = Duration::from_secs(24 * 3600);

/// Most firings counted one by one when a stall or a down service coalesced them.
const COUNT_CAP: u64 = 1_000_000;

/// The two clocks, read at the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The wall clock.
    pub wall: DateTime<Utc>,
    /// The monotonic clock.
    pub mono: Instant,
}

impl Now {
    /// The monotonic instant of wall time `t`, by the offset between the clocks now.
    pub fn mono_of(&self, t: DateTime<Utc>) -> Instant {
        match (t - self.wall).to_std() {
            Ok(ahead) => self.mono + ahead,
            Err(_) => {
                let behind = (self.wall - t).to_std().unwrap_or_default();
                self.mono.checked_sub(behind).unwrap_or(self.mono)
            }
        }
    }

    /// The wall time of monotonic instant `at`, by the offset between the clocks now.
    pub fn wall_of(&self, at: Instant) -> DateTime<Utc> {
        let offset = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        if at >= self.mono {
            self.wall + offset(at - self.mono)
        } else {
            self.wall - offset(self.mono - at)
        }
    }
}

/// How a run ended, as the transition needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Its result.
    pub result: RunResult,
    /// Its error, if any.
    pub error: Option<String>,
    /// When it was due.
    pub scheduled: DateTime<Utc>,
    /// When it started.
    pub started: DateTime<Utc>,
    /// How long it took.
    pub duration: Duration,
    /// Why it deactivates its job, if it does (a failure's first line, or `job.CANCEL`).
    pub deactivation: Option<String>,
}

/// What happens to a job.
#[derive(Debug, Clone)]
pub enum Event {
    /// The job is scheduled: at the service's start (`at_start`: a firing missed while the
    /// service was down is caught up), or when a reload adds it.
    Schedule {
        /// Whether the service is starting.
        at_start: bool,
    },
    /// The job's timer came: hand out what is due within `ahead` (the pool's release timer
    /// starts each run at its due time).
    Timer {
        /// How far ahead of now the scheduler hands runs over in this wake-up.
        ahead: Duration,
    },
    /// A batch of due runs was handed out: work out the next calendar firing (kept off the
    /// hand-off path, where every job due at once waits for the others).
    Plan,
    /// A run ended.
    Finished {
        /// Which run.
        run_id: u64,
        /// How.
        ended: Ended,
    },
    /// An operator activates the job.
    Activate,
    /// An operator cancels the job.
    Cancel {
        /// Who.
        by: Actor,
    },
    /// An operator runs the job now.
    Trigger,
    /// A reload kept the job, with this definition.
    Reload {
        /// The definition now (the same as before when only other jobs changed).
        spec: Arc<JobSpec>,
    },
    /// The wall clock stepped by this much against the monotonic clock.
    ClockStep {
        /// Forward when positive.
        by: chrono::TimeDelta,
    },
}

/// A decision that is on disk before it is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durable {
    /// The job is deactivated.
    Deactivate {
        /// Why.
        reason: String,
        /// The operator, if one asked.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
    /// The job's deactivation is lifted.
    Activate {
        /// When.
        at: DateTime<Utc>,
    },
}

/// What the actor must do, in order.
/// A run to hand to the worker pool.
#[derive(Debug)]
pub struct Dispatch {
    /// Its id (the job's `running` holds it).
    pub run_id: u64,
    /// Its stop flag.
    pub control: RunControl,
    /// The time the helpers report, and history's `scheduled`.
    pub scheduled: DateTime<Utc>,
    /// Who asked.
    pub trigger: Trigger,
    /// When to start it (a run handed over before its due time waits for it).
    pub start_at: Instant,
}

#[derive(Debug)]
pub enum Effect {
    /// Arm the job's timer for this instant (replacing any armed one): a batched timer, which
    /// may come up to the scheduler's hand-over window early.
    Arm(Instant),
    /// Arm the job's timer for exactly this instant (replacing any armed one): a decision that
    /// depends on whether a run is still going is made no earlier than [`EARLY`] before its
    /// due time.
    Recheck(Instant),
    /// The job has no timer now.
    Disarm,
    /// Hand a run to the worker pool.
    Dispatch(Dispatch),
    /// Abort the run in progress (an operator cancelled the job).
    Abort,
    /// Record a firing that was not run.
    Skipped(RunRecord),
    /// Persist a decision.
    Persist(Durable),
    /// Tell subscribers and the state database how the job stands.
    Publish,
    /// Write the operator action to the audit trail.
    Audit {
        /// The verb.
        action: &'static str,
        /// Anything else worth keeping.
        detail: Option<String>,
    },
    /// Answer the operator now.
    Answer(Result<String, ActionError>),
    /// Answer the operator once the preceding [`Effect::Persist`] is committed.
    AnswerOnCommit(String),
    /// Send [`Event::Plan`] once the batch of due runs is handed out.
    Plan,
}

impl JobEntry {
    /// Applies one event at `now`; the effects to carry out, in order.
    pub fn apply(&mut self, event: Event, now: Now) -> Vec<Effect> {
        let mut effects = Vec::new();
        match event {
            Event::Schedule { at_start } => self.on_schedule(at_start, now, &mut effects),
            Event::Timer { ahead } => self.on_timer(ahead, now, &mut effects),
            Event::Plan => self.on_plan(now, &mut effects),
            Event::Finished { run_id, ended } => self.on_finished(run_id, ended, now, &mut effects),
            Event::Activate => self.on_activate(now, &mut effects),
            Event::Cancel { by } => self.on_cancel(by, now, &mut effects),
            Event::Trigger => self.on_trigger(now, &mut effects),
            Event::Reload { spec } => self.on_reload(spec, now, &mut effects),
            Event::ClockStep { by } => self.on_clock_step(by, now, &mut effects),
        }
        effects
    }

    /// The effect that arms the job's timer for whatever comes first: its next firing (a
    /// calendar job's no further than [`RECHECK`] ahead) or its pending retry.
    fn arm(&self, now: Now) -> Effect {
        let firing = self.next.filter(|_| self.is_scheduled()).map(|next| {
            if self.spec.schedule.is_calendar() {
                next.due.min(now.mono + RECHECK)
            } else {
                next.due
            }
        });
        let retry = self.retry.map(|retry| retry.due);
        match (firing, retry) {
            (Some(f), Some(r)) => Effect::Arm(f.min(r)),
            (Some(at), None) | (None, Some(at)) => Effect::Arm(at),
            (None, None) => Effect::Disarm,
        }
    }

    /// Hands a run to the pool: the job is running from now on.
    fn dispatch(
        &mut self,
        scheduled: DateTime<Utc>,
        trigger: Trigger,
        due: Instant,
        now: Now,
    ) -> Effect {
        let run_id = self.next_run_id;
        self.next_run_id += 1;
        let control = RunControl::new();
        let start_at = due.max(now.mono);
        self.running = Some(Running {
            run_id,
            control: control.clone(),
            since: now.wall_of(start_at),
            trigger,
            aborting: false,
        });
        Effect::Dispatch(Dispatch {
            run_id,
            control,
            scheduled,
            trigger,
            start_at,
        })
    }

    /// A skipped firing's record: `covers` firings from `slot` on, not run for `reason`.
    fn skipped(
        &mut self,
        slot: DateTime<Utc>,
        reason: SkipReason,
        covers: u64,
        why: String,
        now: Now,
    ) -> Effect {
        self.stored.skips += covers;
        Effect::Skipped(RunRecord {
            job: self.spec.name.clone(),
            scheduled: slot,
            started: now.wall,
            duration: Duration::ZERO,
            result: RunResult::Skipped,
            error: Some(why),
            logs: Vec::new(),
            trigger: Trigger::Schedule,
            skip: Some(Skip { reason, covers }),
        })
    }

    /// Deactivates the job: no more runs or retries until an operator activates it; persisted.
    fn deactivate(&mut self, reason: String, by: Actor, now: Now, effects: &mut Vec<Effect>) {
        self.status = Status::Deactivated;
        self.next = None;
        self.retry = None;
        self.stored.retry_attempt = 0;
        self.stored.deactivated = true;
        self.stored.deactivated_reason = Some(reason.clone());
        self.stored.deactivated_by.clone_from(&by);
        self.stored.deactivated_at = Some(now.wall);
        effects.push(Effect::Persist(Durable::Deactivate {
            reason,
            by,
            at: now.wall,
        }));
        effects.push(Effect::Disarm);
    }
}
