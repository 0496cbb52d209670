//! What stops a run from outside: the wall-clock deadline (a watchdog thread), the operator's
//! abort, and the memory limit noticed by the sandbox.
//!
//! All three set one flag that Luau's interrupt reads at every loop edge and call, so a
//! script cannot outrun them; the first reason set wins and decides the result.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Instant;

/// Why a run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The run passed its timeout.
    Timeout,
    /// The run passed its memory limit.
    Memory,
    /// An operator aborted it.
    Aborted,
    /// The service is shutting down and the run outlasted the grace period.
    Shutdown,
}

impl StopReason {
    fn code(self) -> u8 {
        match self {
            StopReason::Timeout => 1,
            StopReason::Memory => 2,
            StopReason::Aborted => 3,
            StopReason::Shutdown => 4,
        }
    }

    fn from_code(code: u8) -> Option<StopReason> {
        match code {
            1 => Some(StopReason::Timeout),
            2 => Some(StopReason::Memory),
            3 => Some(StopReason::Aborted),
            4 => Some(StopReason::Shutdown),
            _ => None,
        }
    }
}

/// The stop flag of one run. Cheap to clone; every clone sees the same flag.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    flag: Arc<AtomicU8>,
}

impl RunControl {
    /// A flag for a new run, not set.
    pub fn new() -> RunControl {
        RunControl::default()
    }

    /// Asks the run to stop with result `aborted` (the operator's cancel, or shutdown).
    pub fn abort(&self) {
        self.stop(StopReason::Aborted);
    }

    /// Sets the reason unless one is set already: the first cause is the one reported.
    pub fn stop(&self, reason: StopReason) {
        let _ = self
            .flag
            .compare_exchange(0, reason.code(), Ordering::AcqRel, Ordering::Acquire);
    }

    /// The reason the run is being stopped, if any.
    pub fn stopped(&self) -> Option<StopReason> {
        StopReason::from_code(self.flag.load(Ordering::Acquire))
    }
}

/// One thread for all runs that sets `Timeout` on runs whose deadline has passed.
struct Watchdog {
    deadlines: Mutex<Deadlines>,
    wake: Condvar,
    next_id: AtomicU64,
}

/// The armed deadlines, and when the watchdog thread wakes next.
#[derive(Default)]
struct Deadlines {
    armed: BTreeMap<(Instant, u64), RunControl>,
    /// When the thread's sleep ends; `None` while it sleeps with nothing armed. A deadline
    /// armed later than this needs no wake-up: the thread looks then anyway. (A disarmed
    /// deadline leaves the sleep as it is: one wake-up per timeout span at most, not two per
    /// run.)
    wakes_at: Option<Instant>,
}

/// Keeps a deadline armed; dropping it (when the run ends) disarms it.
pub struct DeadlineGuard {
    key: Option<(Instant, u64)>,
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        if let (Some(key), Some(dog)) = (self.key, WATCHDOG.get()) {
            dog.deadlines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .armed
                .remove(&key);
        }
    }
}

static WATCHDOG: OnceLock<Watchdog> = OnceLock::new();

/// Arms `control` to be stopped with `Timeout` at `deadline`.
///
/// # Errors
/// When the watchdog thread cannot be started (the system is out of threads).
pub fn arm_deadline(deadline: Instant, control: &RunControl) -> std::io::Result<DeadlineGuard> {
    let dog = watchdog()?;
    let key = (deadline, dog.next_id.fetch_add(1, Ordering::Relaxed));
    let mut deadlines = dog.deadlines.lock().unwrap_or_else(PoisonError::into_inner);
    let sooner = deadlines.wakes_at.is_none_or(|at| deadline < at);
    deadlines.armed.insert(key, control.clone());
    drop(deadlines);
    if sooner {
        dog.wake.notify_one();
    }
    Ok(DeadlineGuard { key: Some(key) })
}

fn watchdog() -> std::io::Result<&'static Watchdog> {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    let dog = WATCHDOG.get_or_init(|| Watchdog {
        deadlines: Mutex::new(Deadlines::default()),
        wake: Condvar::new(),
        next_id: AtomicU64::new(0),
    });
    let started = STARTED.get_or_init(|| {
        std::thread::Builder::new()
            .name("jobtop-watchdog".into())
            .spawn(move || watch(dog))
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    match started {
        Ok(()) => Ok(dog),
        Err(e) => Err(std::io::Error::other(format!(
            "cannot start the watchdog thread: {e}"
        ))),
    }
}

fn watch(dog: &Watchdog) {
    let mut deadlines = dog.deadlines.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let now = Instant::now();
        while let Some(entry) = deadlines.armed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            entry.remove().stop(StopReason::Timeout);
        }
        let next = deadlines.armed.keys().next().map(|&(at, _)| at);
        deadlines.wakes_at = next;
        deadlines = match next {
            Some(at) => {
                dog.wake
                    .wait_timeout(deadlines, at.saturating_duration_since(now))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => dog
                .wake
                .wait(deadlines)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn first_reason_wins() {
        let c = RunControl::new();
        assert_eq!(c.stopped(), None);
        c.stop(StopReason::Memory);
        c.abort();
        assert_eq!(c.stopped(), Some(StopReason::Memory));
    }

    #[test]
    fn watchdog_fires_and_disarms() {
        let fired = RunControl::new();
        let _g = arm_deadline(Instant::now() + Duration::from_millis(20), &fired).unwrap();
        let disarmed = RunControl::new();
        let g = arm_deadline(Instant::now() + Duration::from_millis(30), &disarmed).unwrap();
        drop(g);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(fired.stopped(), Some(StopReason::Timeout));
        assert_eq!(disarmed.stopped(), None);
    }
}
