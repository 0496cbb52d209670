//! The timer queue: due times of every job, so the scheduler sleeps until the next one instead
//! of polling. Rescheduling a job bumps its generation; stale entries are skipped when they
//! surface (lazy deletion keeps every operation `O(log n)`).
//!
//! Two kinds of timer. Most are *batched*: the scheduler wakes a little before the first of
//! them and hands out every one due within a window ahead, so a thousand jobs due a millisecond
//! apart cost it one wake-up per window, not one per job (their runs wait for their exact time
//! in the pool's release timer). An *exact* timer comes at its time and not before: for a
//! decision that must be made as late as possible (whether the previous run is still going).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::time::Instant;

/// Identifies a job in the scheduler's table for as long as it is configured.
pub type JobId = u64;

/// One armed timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timer {
    /// When it is due.
    pub due: Instant,
    /// Which job.
    pub job: JobId,
    /// The job's timer generation when it was armed.
    pub generation: u64,
}

/// Due times, earliest first, of both kinds.
#[derive(Debug, Default)]
pub struct TimerQueue {
    batched: BinaryHeap<Reverse<Timer>>,
    exact: BinaryHeap<Reverse<Timer>>,
}

impl TimerQueue {
    /// Arms a batched timer; older timers of the same job must be invalidated by the caller's
    /// generation counter.
    pub fn push(&mut self, timer: Timer) {
        self.batched.push(Reverse(timer));
    }

    /// Arms an exact timer.
    pub fn push_exact(&mut self, timer: Timer) {
        self.exact.push(Reverse(timer));
    }

    /// When the scheduler must wake: `lead` before the earliest batched timer, or at the
    /// earliest exact one. Stale entries count (they only cause an early wake-up).
    pub fn next_wake(&self, lead: Duration) -> Option<Instant> {
        let batched = self
            .batched
            .peek()
            .map(|Reverse(t)| t.due.checked_sub(lead).unwrap_or(t.due));
        let exact = self.exact.peek().map(|Reverse(t)| t.due);
        match (batched, exact) {
            (Some(b), Some(e)) => Some(b.min(e)),
            (b, e) => b.or(e),
        }
    }

    /// Removes and returns the earliest timer that is due: a batched one due within `ahead` of
    /// `now`, an exact one due by `now`.
    pub fn pop_due(&mut self, now: Instant, ahead: Duration) -> Option<Timer> {
        let batched = self
            .batched
            .peek()
            .map(|Reverse(t)| t.due)
            .filter(|due| *due <= now + ahead);
        let exact = self
            .exact
            .peek()
            .map(|Reverse(t)| t.due)
            .filter(|due| *due <= now);
        let heap = match (batched, exact) {
            (Some(b), Some(e)) if e < b => &mut self.exact,
            (Some(_), _) => &mut self.batched,
            (None, Some(_)) => &mut self.exact,
            (None, None) => return None,
        };
        heap.pop().map(|Reverse(t)| t)
    }

    /// Drops every timer (shutdown).
    pub fn clear(&mut self) {
        self.batched.clear();
        self.exact.clear();
    }

    /// Keeps only the timers `live` accepts, so reloads and reschedules cannot grow the heaps
    /// without bound.
    pub fn retain(&mut self, live: impl Fn(&Timer) -> bool) {
        for heap in [&mut self.batched, &mut self.exact] {
            let entries = std::mem::take(heap);
            *heap = entries.into_iter().filter(|Reverse(t)| live(t)).collect();
        }
    }

    /// How many entries (live and stale) the heaps hold.
    pub fn len(&self) -> usize {
        self.batched.len() + self.exact.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(t0: Instant, ms: u64, job: JobId) -> Timer {
        Timer {
            due: t0 + Duration::from_millis(ms),
            job,
            generation: 0,
        }
    }

    #[test]
    fn batched_timers_come_within_the_window_ahead_in_due_order() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        for (i, ms) in [30u64, 10, 20].into_iter().enumerate() {
            q.push(timer(t0, ms, i as u64));
        }
        let lead = Duration::from_millis(5);
        assert_eq!(q.next_wake(lead), Some(t0 + Duration::from_millis(5)));
        assert!(q.pop_due(t0, Duration::from_millis(9)).is_none());
        let order: Vec<_> = std::iter::from_fn(|| q.pop_due(t0, Duration::from_millis(25)))
            .map(|t| t.job)
            .collect();
        assert_eq!(order, [1, 2]);
        q.retain(|t| t.job != 0);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn an_exact_timer_comes_at_its_time_not_within_the_window() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        q.push_exact(timer(t0, 10, 7));
        q.push(timer(t0, 12, 8));
        let lead = Duration::from_millis(5);
        assert_eq!(q.next_wake(lead), Some(t0 + Duration::from_millis(7)));
        let ahead = Duration::from_millis(20);
        // The batched one is within the window; the exact one is not due yet.
        assert_eq!(q.pop_due(t0, ahead).map(|t| t.job), Some(8));
        assert!(q.pop_due(t0, ahead).is_none());
        assert_eq!(q.next_wake(lead), Some(t0 + Duration::from_millis(10)));
        assert_eq!(
            q.pop_due(t0 + Duration::from_millis(10), ahead)
                .map(|t| t.job),
            Some(7)
        );
    }
}
