//! Finished runs on their way back to the scheduler. A worker puts its run in the box and wakes
//! the scheduler only when the scheduler would not look soon anyway: while runs come often, it
//! wakes every few milliseconds to hand out the next ones and takes the finished runs then, so
//! a run costs no wake-up of its own. The price is that a finished run may be seen up to
//! [`LAZY`] late (its record, its event, its job's new status); its times are the run's own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Done;

/// How long a finished run may wait for the scheduler's own next wake-up.
pub const LAZY: Duration = Duration::from_millis(25);

/// `wakes_at` while the scheduler is awake: it takes what is in the box before it sleeps.
const AWAKE: u64 = 0;

/// `wakes_at` when the scheduler has nothing planned.
const NEVER: u64 = u64::MAX;

/// The box, and when its reader next looks on its own.
pub struct Finished {
    runs: Mutex<Vec<Done>>,
    notify: Notify,
    /// When the scheduler wakes on its own next, in nanoseconds since `epoch`.
    wakes_at: AtomicU64,
    epoch: Instant,
}

impl Default for Finished {
    fn default() -> Finished {
        Finished {
            runs: Mutex::new(Vec::new()),
            notify: Notify::new(),
            wakes_at: AtomicU64::new(AWAKE),
            epoch: Instant::now(),
        }
    }
}

impl Finished {
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(NEVER - 1)
    }

    /// A worker hands back a run.
    pub fn put(&self, done: Done) {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(done);
        // After the push: the scheduler publishes its plan before it looks in the box, so
        // either it sees this run or this sees its plan (both sequentially consistent).
        let wakes_at = self.wakes_at.load(Ordering::SeqCst);
        if wakes_at != AWAKE && wakes_at > self.nanos(Instant::now() + LAZY) {
            self.notify.notify_one();
        }
    }

    /// The scheduler takes every finished run (it is awake until it calls [`Finished::sleep`]).
    pub fn take(&self, into: &mut Vec<Done>) {
        self.wakes_at.store(AWAKE, Ordering::SeqCst);
        into.append(&mut self.runs.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The scheduler is about to sleep until `until` (none: until something happens). False
    /// when a run came back meanwhile: take it first.
    pub fn sleep(&self, until: Option<Instant>) -> bool {
        let at = until.map_or(NEVER, |at| self.nanos(at).max(AWAKE + 1));
        self.wakes_at.store(at, Ordering::SeqCst);
        let empty = self
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty();
        if !empty {
            self.wakes_at.store(AWAKE, Ordering::SeqCst);
        }
        empty
    }

    /// Completes when a worker asks the scheduler to look.
    pub async fn woken(&self) {
        self.notify.notified().await;
    }
}
