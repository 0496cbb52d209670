//! The pool's monitor: it finds core threads held by a long run while others wait, and moves
//! them aside (a new core thread takes each one's place), judging by the kernel's accounting
//! whether the run held its thread by its own doing or only waited for a CPU.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{LONG_RUN, LONG_SLEEP, MAX_THREADS, Role, Shared};

impl Shared {
    /// The monitor's loop: while runs wait, look at a core thread when its run has held it for
    /// [`LONG_RUN`] (and, while it is being judged, every `LONG_RUN` after that), and move it
    /// aside if it held it by its own doing. Short runs end before anyone looks: the monitor
    /// reads the kernel's accounting only of a thread that held its core past the threshold.
    pub(super) fn monitor(self: &Arc<Shared>) {
        let mut seen = HashMap::new();
        loop {
            if self.counts().stopping {
                return;
            }
            if self.short_queued.load(Ordering::Acquire) == 0 {
                // Nothing waits, so nothing can be held back: sleep until a run is queued
                // while a core thread is busy, or a core thread starts a run while others wait.
                std::thread::park();
                continue;
            }
            match self.next_look(&seen) {
                Some(at) => {
                    std::thread::sleep(Duration::from_nanos(at.saturating_sub(self.nanos())));
                }
                // Runs wait but no core thread is busy: one is about to take them, and a core
                // thread that starts a run while others wait wakes the monitor.
                None => {
                    std::thread::park();
                    continue;
                }
            }
            if self.short_queued.load(Ordering::Acquire) > 0 {
                self.move_long_runs_aside(&mut seen);
            } else {
                seen.clear();
            }
        }
    }

    /// When the next core thread is worth a look (nanoseconds since the pool's epoch): the
    /// first moment a busy one has held its core for [`LONG_RUN`], or `LONG_RUN` from now for one
    /// being judged; `None` when no core thread is busy.
    fn next_look(&self, seen: &HashMap<u64, Observation>) -> Option<u64> {
        let now = self.nanos();
        let long = u64::try_from(LONG_RUN.as_nanos()).unwrap_or(u64::MAX);
        self.slots()
            .iter()
            .filter_map(|slot| {
                let since = slot.busy_since.load(Ordering::Acquire);
                if since == 0 {
                    return None;
                }
                let tid = slot.tid.load(Ordering::Acquire);
                let judged = seen.get(&tid).is_some_and(|o| o.busy_since == since);
                Some(if judged {
                    now + long
                } else {
                    (since - 1).saturating_add(long)
                })
            })
            .min()
    }

    /// Moves aside the core threads whose run has held them for [`LONG_RUN`] by its own doing:
    /// running, or sleeping in a host call. A run that only waited for a CPU (the machine is
    /// overloaded) stays, or an overload would turn every short run into a long one.
    fn move_long_runs_aside(self: &Arc<Shared>, seen: &mut HashMap<u64, Observation>) {
        let now = self.nanos();
        let long = u64::try_from(LONG_RUN.as_nanos()).unwrap_or(u64::MAX);
        let mut slots = self.slots();
        let mut moved = 0;
        let mut still_seen = HashMap::new();
        slots.retain(|slot| {
            let since = slot.busy_since.load(Ordering::Acquire);
            if since == 0 || now.saturating_sub(since - 1) < long {
                return true;
            }
            let tid = slot.tid.load(Ordering::Acquire);
            let Some(sched) = sched_times(tid) else {
                return true;
            };
            let earlier = seen.get(&tid).filter(|o| o.busy_since == since);
            let Some(earlier) = earlier else {
                still_seen.insert(
                    tid,
                    Observation {
                        busy_since: since,
                        sched,
                    },
                );
                return true;
            };
            let ran = sched.on_cpu.saturating_sub(earlier.sched.on_cpu);
            let queued = sched.waiting.saturating_sub(earlier.sched.waiting);
            // A short run never adds up a quarter of `LONG_RUN` on a CPU. One that did not run
            // and did not wait for a CPU was asleep: in a host call (`core.sleep`, `core.exec`,
            // `core.network`), or briefly on a lock under heavy load, which must not count; so
            // a sleeper is moved only once it has held its thread for `LONG_SLEEP`.
            let held = now.saturating_sub(since - 1);
            let long_sleep = u64::try_from(LONG_SLEEP.as_nanos()).unwrap_or(u64::MAX);
            let its_own_doing = ran >= long / 4 || (queued <= ran && held >= long_sleep);
            if !its_own_doing {
                still_seen.insert(tid, *earlier);
                return true;
            }
            let mut counts = self.counts();
            if counts.stopping || counts.threads() >= MAX_THREADS {
                still_seen.insert(tid, *earlier);
                return true;
            }
            // One thread leaves the core and one joins it: the core count stays.
            counts.aside += 1;
            slot.moved.store(true, Ordering::Release);
            make_idle(slot.pthread.load(Ordering::Acquire));
            moved += 1;
            false
        });
        drop(slots);
        *seen = still_seen;
        for _ in 0..moved {
            self.spawn(Role::Core);
        }
    }
}

/// A core thread's run as the monitor last saw it.
#[derive(Clone, Copy)]
struct Observation {
    busy_since: u64,
    sched: SchedTimes,
}

/// How long a thread has been on a CPU and waiting for one, in nanoseconds.
#[derive(Clone, Copy)]
struct SchedTimes {
    on_cpu: u64,
    waiting: u64,
}

/// The kernel's accounting of thread `tid` of this process.
fn sched_times(tid: u64) -> Option<SchedTimes> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    Some(SchedTimes {
        on_cpu: fields.next()?.ok()?,
        waiting: fields.next()?.ok()?,
    })
}

/// This thread's id (the kernel's, which `/proc/self/task/TID` is named by).
pub(super) fn thread_id() -> u64 {
    u64::try_from(nix::unistd::gettid().as_raw()).unwrap_or(0)
}

/// Puts a thread on Linux's `SCHED_IDLE` policy: it runs only on CPU time no ordinary thread
/// wants, so a hundred looping jobs cost the scheduler, the writer and the short runs almost
/// nothing (at nice 19 their weight adds up: a hundred of them outweigh one ordinary thread).
/// Lowering a thread's priority is always allowed, so a failure means the policy is refused
/// here (a seccomp filter, an old kernel) or the thread is gone; false then.
fn make_idle(pthread: u64) -> bool {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    // The crate also sets the *calling* thread's nice value to the policy's (0 for `SCHED_IDLE`),
    // which for the monitor, an ordinary thread, changes nothing.
    thread_priority::set_thread_priority_and_policy(
        pthread,
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    )
    .is_ok()
}

/// Lowers the calling thread's priority: `SCHED_IDLE`, or where that is refused, the lowest
/// nice value. (Only the calling thread's nice value can be set without `unsafe`, so a core
/// thread moved aside where `SCHED_IDLE` is refused is lowered by itself, once its run ends.)
pub(super) fn lower_own_priority() {
    if !make_idle(thread_priority::thread_native_id()) {
        let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
    }
}
