//! Firings: the first one when a job is scheduled (with the catch-up of one missed while the
//! service was down), each one as its timer comes (run, or skipped with its reason), the next
//! one after it, and what a wall-clock step does to them (docs/scheduling.md).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::super::table::{Firing, JobEntry};
use super::{CORRECTION, COUNT_CAP, EARLY, Effect, MISSED_GRACE, Now};
use crate::config::CatchUp;
use crate::job::{SkipReason, Status, Trigger};

impl JobEntry {
    /// The first firing strictly after `after` (and after the fence), due by today's offset
    /// between the clocks.
    pub(super) fn firing_after(&self, after: DateTime<Utc>, now: Now) -> Option<Firing> {
        let after = self.fence.map_or(after, |fence| fence.max(after));
        let slot = self.spec.schedule.next_after(after)?;
        Some(Firing {
            slot,
            due: now.mono_of(slot),
        })
    }

    /// Whether the firing after `fence` came while nobody ran it, by `now`.
    fn missed_since(&self, fence: DateTime<Utc>, now: Now) -> bool {
        let schedule = &self.spec.schedule;
        match schedule.interval() {
            // By the interval, not by the slots: a fence from before slots were anchored on
            // the name (an older state database) is then not taken for a missed firing.
            Some(interval) => chrono::Duration::from_std(interval)
                .ok()
                .and_then(|i| fence.checked_add_signed(i))
                .is_some_and(|next| next <= now.wall),
            None => schedule
                .next_after(fence)
                .is_some_and(|next| next <= now.wall),
        }
    }

    pub(super) fn on_schedule(&mut self, at_start: bool, now: Now, effects: &mut Vec<Effect>) {
        if self.status == Status::Retrying {
            // Restored from the state database: the retry comes at its time, or now if that
            // passed while the service was down.
            if let Some(at) = self.stored.retry_at {
                self.retry = Some(super::super::table::Retry {
                    attempt: self.stored.retry_attempt,
                    due: now.mono_of(at).max(now.mono),
                    at: at.max(now.wall),
                });
            } else {
                self.status = Status::Waiting;
            }
        }
        if !self.is_scheduled() {
            effects.push(Effect::Disarm);
            return;
        }
        if self.spec.run_once && at_start {
            // Once per service start, at its first firing after the start.
            self.fence = None;
        }
        let fence = self.fence;
        match fence {
            Some(fence) if at_start && !self.spec.run_once && self.missed_since(fence, now) => {
                self.catch_up(fence, now, effects);
            }
            _ => self.next = self.firing_after(now.wall, now),
        }
        effects.push(Effect::Publish);
        effects.push(self.arm(now));
    }

    /// The service was down across firings: the latest one runs now if `catch_up` allows,
    /// and the ones before it are one `skipped` record.
    fn catch_up(&mut self, fence: DateTime<Utc>, now: Now, effects: &mut Vec<Effect>) {
        let schedule = &self.spec.schedule;
        let Some(latest) = schedule.latest_at_or_before(now.wall) else {
            self.next = self.firing_after(now.wall, now);
            return;
        };
        let before = schedule.count_between(fence, latest, COUNT_CAP);
        if before > 0 {
            let first = schedule.next_after(fence).unwrap_or(latest);
            let why = format!(
                "{before} firing{} missed while the service was down; the latest ({}) was \
                 caught up instead",
                if before == 1 { "" } else { "s" },
                latest.to_rfc3339()
            );
            effects.push(self.skipped(first, SkipReason::Missed, before, why, now));
        }
        let late = (now.wall - latest).to_std().unwrap_or_default();
        if self.spec.catch_up.allows(late) {
            // Due now: the timer hands it out like any firing.
            self.next = Some(Firing {
                slot: latest,
                due: now.mono,
            });
        } else {
            let why = self.catch_up_refusal(late);
            effects.push(self.skipped(latest, SkipReason::CatchUp, 1, why, now));
            self.mark_fired(latest);
            self.next = self.firing_after(now.wall, now);
        }
    }

    fn catch_up_refusal(&self, late: std::time::Duration) -> String {
        format!(
            "missed by {} and catch_up is {}: waiting for the next firing",
            crate::units::format_duration(std::time::Duration::from_millis(
                u64::try_from(late.as_millis()).unwrap_or(u64::MAX)
            )),
            self.spec.catch_up
        )
    }

    fn mark_fired(&mut self, slot: DateTime<Utc>) {
        self.fence = Some(slot);
        self.stored.last_fired = Some(slot);
    }

    pub(super) fn on_timer(&mut self, ahead: Duration, now: Now, effects: &mut Vec<Effect>) {
        let until = now.mono + ahead.max(EARLY);
        if let Some(due) = self.held_for_running(until, now) {
            effects.push(Effect::Recheck(due.checked_sub(EARLY).unwrap_or(due)));
            return;
        }
        if let Some(retry) = self.retry
            && retry.due <= until
        {
            self.retry = None;
            if self.running.is_none() && self.status == Status::Retrying {
                effects.push(self.dispatch(retry.at, Trigger::Retry, retry.due, now));
            }
        }
        match self.next {
            Some(next) if self.is_scheduled() && next.due <= until => {
                self.fire(next, now, effects);
            }
            Some(next) if self.spec.schedule.is_calendar() => {
                // Woken to read the wall clock again before a distant firing.
                self.next = Some(Firing {
                    due: now.mono_of(next.slot),
                    ..next
                });
            }
            _ => {}
        }
        effects.push(Effect::Publish);
        effects.push(self.arm(now));
    }

    /// The due time of a firing or retry handed out early (within the window, not yet within
    /// [`EARLY`]) while a run is still going: whether it runs or is skipped as an overlap is
    /// decided at its time, when that run may well have ended.
    fn held_for_running(&self, until: Instant, now: Now) -> Option<Instant> {
        self.running.as_ref()?;
        let firing = self.next.filter(|_| self.is_scheduled()).map(|n| n.due);
        let retry = self.retry.map(|r| r.due);
        [firing, retry]
            .into_iter()
            .flatten()
            .filter(|due| *due <= until && *due > now.mono + EARLY)
            .min()
    }

    /// A firing's timer came: it runs for the latest firing that has come (a stall or a
    /// forward clock step coalesces the ones before it into one `skipped` record), or is
    /// skipped because the previous run is still going, a retry is pending, or it was missed
    /// and `catch_up` says not to run it.
    fn fire(&mut self, next: Firing, now: Now, effects: &mut Vec<Effect>) {
        let schedule = self.spec.schedule.clone();
        let expected = next.slot;
        // Handed out early, the firing itself is the latest that came; late, a stall may
        // have stepped over later ones.
        let came = schedule.latest_at_or_before(
            now.wall.max(expected) + chrono::Duration::from_std(EARLY).unwrap_or_default(),
        );
        let slot = came.filter(|c| *c > expected).unwrap_or(expected);
        let late = now.mono.saturating_duration_since(next.due);
        // How late the slot itself is: the stall, less the slots it stepped over.
        let stepped = (slot - expected).to_std().unwrap_or_default();
        let slot_late = late.saturating_sub(stepped);
        if slot > expected {
            let covers = 1 + schedule.count_between(expected, slot, super::COUNT_CAP);
            let why = format!(
                "{covers} firing{} missed while the service was stalled or the clock stepped \
                 over {}; the latest ran instead",
                if covers == 1 { "" } else { "s" },
                if covers == 1 { "it" } else { "them" }
            );
            effects.push(self.skipped(expected, SkipReason::Missed, covers, why, now));
        }
        self.mark_fired(slot);
        if self.retry.is_some() {
            let why = "a retry of the failed run is due first: the retry wins".to_string();
            effects.push(self.skipped(slot, SkipReason::Retrying, 1, why, now));
        } else if let Some(run) = &self.running {
            let why = match run.trigger {
                Trigger::Retry => "the retry of a failed run was still going".to_string(),
                _ => "the previous run was still going".to_string(),
            };
            effects.push(self.skipped(slot, SkipReason::Overlap, 1, why, now));
        } else if slot_late > MISSED_GRACE && !self.spec.catch_up.allows(slot_late) {
            let why = self.catch_up_refusal(slot_late);
            effects.push(self.skipped(slot, SkipReason::CatchUp, 1, why, now));
        } else {
            if self.status == Status::Sleeping {
                self.status = Status::Waiting;
            }
            effects.push(self.dispatch(slot, Trigger::Schedule, next.due, now));
        }
        self.next = None;
        if self.spec.run_once {
            return;
        }
        // On time when it came due when its slot did by the wall clock (or later, after the
        // wall clock stepped back); not after a catch-up or a stall.
        let on_time = slot == expected && next.due <= now.mono_of(expected) + MISSED_GRACE;
        match schedule.interval() {
            // Interval jobs keep their rhythm on the monotonic clock; after a stall, a catch-up
            // or a forward step they realign to their slots.
            Some(interval) if on_time => {
                self.next = Some(Firing {
                    slot: expected + chrono::Duration::from_std(interval).unwrap_or_default(),
                    due: next.due + interval,
                });
            }
            Some(_) => self.next = self.firing_after(slot.max(now.wall), now),
            None => effects.push(Effect::Plan),
        }
    }

    pub(super) fn on_plan(&mut self, now: Now, effects: &mut Vec<Effect>) {
        if self.next.is_none() && self.is_scheduled() && !self.spec.run_once {
            self.next = self.firing_after(now.wall, now);
            effects.push(Effect::Publish);
            effects.push(self.arm(now));
        }
    }

    /// The wall clock stepped. A step of [`CORRECTION`] or more starts the schedule afresh
    /// from the new time. A smaller one moves calendar jobs with the wall clock: forward over a
    /// firing, it runs once now; backward, no firing already handled repeats. Interval jobs
    /// keep their rhythm on the monotonic clock.
    pub(super) fn on_clock_step(
        &mut self,
        by: chrono::TimeDelta,
        now: Now,
        effects: &mut Vec<Effect>,
    ) {
        if !self.is_scheduled() {
            return;
        }
        if by.abs() >= CORRECTION {
            self.fence = None;
            if self.next.is_some() {
                self.next = self.firing_after(now.wall, now);
            }
        } else if self.spec.schedule.is_calendar()
            && let Some(next) = self.next
        {
            let due = if next.slot <= now.wall {
                now.mono
            } else {
                now.mono_of(next.slot)
            };
            self.next = Some(Firing { due, ..next });
        } else {
            return;
        }
        effects.push(Effect::Publish);
        effects.push(self.arm(now));
    }
}

impl CatchUp {
    /// Whether a missed firing `late` this long still runs.
    pub fn allows(self, late: std::time::Duration) -> bool {
        match self {
            CatchUp::Latest => true,
            CatchUp::None => late <= MISSED_GRACE,
            CatchUp::Within(limit) => late <= limit,
        }
    }
}
