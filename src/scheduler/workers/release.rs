//! The release timer: runs handed to the pool before their due time wait here, not on a worker.
//! One thread sleeps to the earliest due time (with a timer slack of one nanosecond, so the
//! kernel wakes it on time), then releases every run due by then into the workers' queues at
//! once. It never spins, and it wakes once per distinct due time: a run that joins the queue
//! wakes it only when it is due before everything already waiting.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::Work;

/// Runs due this close together are released together: one wake-up, not two.
const TOGETHER: Duration = Duration::from_micros(20);

/// A run waiting for its time.
struct Waiting {
    at: Instant,
    /// Keeps runs due at the same instant in the order they were handed over.
    seq: u64,
    work: Work,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Waiting) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Waiting {}

impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Waiting) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiting {
    fn cmp(&self, other: &Waiting) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Waiting>>,
    next_seq: u64,
    stopping: bool,
}

/// The runs waiting for their time, and the thread's alarm.
#[derive(Default)]
pub(super) struct Release {
    queue: Mutex<Queue>,
    alarm: Condvar,
}

impl Release {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds `work` until its `start_at`; wakes the thread only when it is due first.
    pub(super) fn hold(&self, work: Work) {
        let mut queue = self.queue();
        let earliest = queue.heap.peek().map(|Reverse(w)| w.at);
        let at = work.start_at;
        let seq = queue.next_seq;
        queue.next_seq += 1;
        queue.heap.push(Reverse(Waiting { at, seq, work }));
        drop(queue);
        if earliest.is_none_or(|earliest| at < earliest) {
            self.alarm.notify_one();
        }
    }

    /// Releases everything at once from now on (the pool is stopping).
    pub(super) fn stop(&self) {
        self.queue().stopping = true;
        self.alarm.notify_one();
    }

    /// The thread's loop: sleeps to the earliest due time and hands what is due to `deliver`,
    /// outside the lock. Ends when the pool stops, after releasing what still waits.
    pub(super) fn run(&self, deliver: impl Fn(Work)) {
        // Only this thread's own timer slack: its sleeps end when they should, not up to the
        // default 50 µs later.
        let _ = nix::sys::prctl::set_timerslack(1);
        let mut due = Vec::new();
        loop {
            let mut queue = self.queue();
            let stopping = queue.stopping;
            match queue.heap.peek().map(|Reverse(w)| w.at) {
                None if stopping => return,
                None => {
                    drop(
                        self.alarm
                            .wait(queue)
                            .unwrap_or_else(PoisonError::into_inner),
                    );
                    continue;
                }
                Some(at) if !stopping && at > Instant::now() => {
                    let wait = at.saturating_duration_since(Instant::now());
                    drop(
                        self.alarm
                            .wait_timeout(queue, wait)
                            .unwrap_or_else(PoisonError::into_inner),
                    );
                    continue;
                }
                Some(_) => {}
            }
            let until = Instant::now() + TOGETHER;
            while queue
                .heap
                .peek()
                .is_some_and(|Reverse(w)| stopping || w.at <= until)
            {
                if let Some(Reverse(waiting)) = queue.heap.pop() {
                    due.push(waiting.work);
                }
            }
            drop(queue);
            for work in due.drain(..) {
                deliver(work);
            }
        }
    }
}
