//! The timer queue: due times of every job in one binary heap, so the scheduler sleeps until
//! exactly the next one instead of polling. Rescheduling a job bumps its generation; stale
//! entries are skipped when they surface (lazy deletion keeps every operation `O(log n)`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

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

/// Due times, earliest first.
#[derive(Debug, Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<Timer>>,
}

impl TimerQueue {
    /// Arms a timer; older timers of the same job must be invalidated by the caller's
    /// generation counter.
    pub fn push(&mut self, timer: Timer) {
        self.heap.push(Reverse(timer));
    }

    /// The earliest due time, stale or not (a stale one only causes an early wake-up).
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(t)| t.due)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse(t)) if t.due <= now => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }

    /// Drops every timer (shutdown).
    pub fn clear(&mut self) {
        self.heap.clear();
    }

    /// Compacts the heap when stale entries outnumber live ones, so reloads and reschedules
    /// cannot grow it without bound.
    pub fn retain(&mut self, live: impl Fn(&Timer) -> bool) {
        let heap = std::mem::take(&mut self.heap);
        self.heap = heap.into_iter().filter(|Reverse(t)| live(t)).collect();
    }

    /// How many entries (live and stale) the heap holds.
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_due_order_only_when_due() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        for (i, ms) in [30u64, 10, 20].into_iter().enumerate() {
            q.push(Timer {
                due: t0 + Duration::from_millis(ms),
                job: i as u64,
                generation: 0,
            });
        }
        assert_eq!(q.next_due(), Some(t0 + Duration::from_millis(10)));
        assert!(q.pop_due(t0).is_none());
        let now = t0 + Duration::from_millis(25);
        let order: Vec<_> = std::iter::from_fn(|| q.pop_due(now))
            .map(|t| t.job)
            .collect();
        assert_eq!(order, [1, 2]);
        q.retain(|t| t.job != 0);
        assert_eq!(q.len(), 0);
    }
}
