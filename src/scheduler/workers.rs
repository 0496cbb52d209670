//! The worker pool. `service.workers` *core* threads, each owning one [`JobRunner`] (a reused
//! Luau state), take short runs from a shared queue. Lua never runs on the async runtime.
//!
//! A run that holds a core thread while other runs wait — computing for [`LONG_RUN`], or asleep
//! (as in a host call) for [`LONG_SLEEP`] — is moved aside: its thread leaves the core and a new
//! core thread takes its place, so a job that loops until its timeout, sleeps, or waits on a
//! slow server never holds back the jobs behind it. Aside threads run at the lowest priority
//! (`SCHED_IDLE`). A monitor thread looks at the core threads while runs wait and sleeps
//! otherwise, so a run that finds a free worker costs no extra wake-up. Runs of jobs already
//! known to be long go straight to aside threads. A run handed over before its due time waits
//! in the release timer (`release.rs`), never on a worker. Threads are capped ([`MAX_THREADS`] in all);
//! an aside thread ends after it has been idle for [`ASIDE_IDLE`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use chrono::{DateTime, Utc};

use crate::job::Trigger;
use crate::runtime::{JobRunner, RunOutcome, RunRequest, ScriptCache};

use super::timers::JobId;

mod finished;
mod monitor;
mod release;

pub use finished::Finished;

use monitor::{lower_own_priority, thread_id};
use release::Release;

/// How long a run may hold a core thread while others wait before it is moved aside.
pub const LONG_RUN: Duration = Duration::from_millis(2);

/// How long a run that sleeps (rather than computes) may hold a core thread while others wait.
pub const LONG_SLEEP: Duration = Duration::from_millis(20);

/// A job whose last run took this long goes straight to an aside thread.
pub const KNOWN_LONG: Duration = Duration::from_millis(20);

/// Most worker threads, core and aside together: that many runs can be going at once.
pub const MAX_THREADS: usize = 256;

/// How long an aside thread waits for another long run before it ends.
const ASIDE_IDLE: Duration = Duration::from_secs(10);

/// A run for a worker to do.
pub struct Work {
    /// The job it belongs to.
    pub job: JobId,
    /// The run number within the job, to match the answer to the run.
    pub run_id: u64,
    /// The job's name, for the record even if the job is removed meanwhile.
    pub name: String,
    /// Who asked for the run.
    pub trigger: Trigger,
    /// Whether the job's last run was long: then it goes straight to an aside thread.
    pub long: bool,
    /// When to start it: a run handed over just before its due time waits until then.
    pub start_at: Instant,
    /// Everything the runtime needs.
    pub request: RunRequest,
}

/// A finished run, sent back to the scheduler.
pub struct Done {
    /// The job it belongs to.
    pub job: JobId,
    /// The run number within the job.
    pub run_id: u64,
    /// The job's name.
    pub name: String,
    /// Who asked for the run.
    pub trigger: Trigger,
    /// When it was due.
    pub scheduled: DateTime<Utc>,
    /// How it ended.
    pub outcome: RunOutcome,
}

/// Which queue a thread serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Core,
    Aside,
}

/// How many threads there are of each kind, and the long runs waiting for one.
#[derive(Default)]
struct Counts {
    core: usize,
    aside: usize,
    idle_aside: usize,
    long_queued: usize,
    stopping: bool,
}

impl Counts {
    fn threads(&self) -> usize {
        self.core + self.aside
    }
}

/// A core thread as the monitor sees it.
#[derive(Default)]
struct CoreSlot {
    /// Nanoseconds since the pool's epoch at which the current run started, plus one; zero
    /// while idle.
    busy_since: AtomicU64,
    /// Set by the monitor: this thread serves the long queue after its run.
    moved: AtomicBool,
    /// The thread's kernel id, for its `schedstat`.
    tid: AtomicU64,
    /// The thread's `pthread_t`, so the monitor can lower its priority when it moves it aside.
    pthread: AtomicU64,
}

/// What every worker thread shares.
struct Shared {
    short: Mutex<std_mpsc::Receiver<Work>>,
    long: Mutex<std_mpsc::Receiver<Work>>,
    /// Short runs queued and not yet taken.
    short_queued: AtomicUsize,
    /// Core threads in a run.
    busy: AtomicUsize,
    counts: Mutex<Counts>,
    slots: Mutex<Vec<Arc<CoreSlot>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    monitor: std::sync::OnceLock<std::thread::Thread>,
    epoch: Instant,
    cache: Arc<ScriptCache>,
    finished: Arc<Finished>,
    runtime: Handle,
}

impl Shared {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slots(&self) -> MutexGuard<'_, Vec<Arc<CoreSlot>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_monitor(&self) {
        if let Some(monitor) = self.monitor.get() {
            monitor.unpark();
        }
    }

    /// Starts a thread in `role`; the caller has counted it already.
    fn spawn(self: &Arc<Shared>, role: Role) {
        let shared = self.clone();
        let slot = (role == Role::Core).then(|| {
            let slot = Arc::new(CoreSlot::default());
            self.slots().push(slot.clone());
            slot
        });
        // Blocking threads of the runtime, so a paused test clock does not jump ahead while
        // a run is going.
        let thread = self
            .runtime
            .spawn_blocking(move || shared.work(slot.as_ref()));
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        threads.retain(|t| !t.is_finished());
        threads.push(thread);
    }

    fn nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    fn leave(&self, role: Role) {
        let mut counts = self.counts();
        match role {
            Role::Core => counts.core -= 1,
            Role::Aside => counts.aside -= 1,
        }
    }

    fn work(self: &Arc<Shared>, slot: Option<&Arc<CoreSlot>>) {
        let mut runner = JobRunner::new(self.cache.clone(), Vec::new());
        let tid = thread_id();
        let pthread = thread_priority::thread_native_id();
        let mut role = match slot {
            Some(slot) => {
                slot.pthread.store(pthread, Ordering::Release);
                slot.tid.store(tid, Ordering::Release);
                Role::Core
            }
            None => {
                lower_own_priority();
                Role::Aside
            }
        };
        loop {
            let next = match role {
                Role::Core => self.next_short(),
                Role::Aside => self.next_long(),
            };
            let Some(work) = next else {
                if let Some(slot) = slot {
                    self.slots().retain(|s| !Arc::ptr_eq(s, slot));
                }
                self.leave(role);
                return;
            };
            // Released together with a run due a few microseconds before it: wait that out.
            let wait = work.start_at.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            let core_slot = slot.filter(|_| role == Role::Core);
            if let Some(slot) = core_slot {
                slot.busy_since.store(self.nanos() + 1, Ordering::Release);
                self.busy.fetch_add(1, Ordering::AcqRel);
                if self.short_queued.load(Ordering::Acquire) > 0 {
                    self.wake_monitor();
                }
            }
            let outcome = runner.run(&work.request);
            if let Some(slot) = core_slot {
                slot.busy_since.store(0, Ordering::Release);
                self.busy.fetch_sub(1, Ordering::AcqRel);
                if slot.moved.load(Ordering::Acquire) {
                    // A new core thread took this one's place; it serves the long queue now.
                    role = Role::Aside;
                    lower_own_priority();
                }
            }
            let done = Done {
                job: work.job,
                run_id: work.run_id,
                name: work.name,
                trigger: work.trigger,
                scheduled: work.request.scheduled,
                outcome,
            };
            self.finished.put(done);
        }
    }

    fn next_short(&self) -> Option<Work> {
        let work = self
            .short
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv()
            .ok()?;
        self.short_queued.fetch_sub(1, Ordering::AcqRel);
        Some(work)
    }

    /// The next long run, or `None` when the pool stops or the thread idled long enough.
    fn next_long(&self) -> Option<Work> {
        self.counts().idle_aside += 1;
        let deadline = Instant::now() + ASIDE_IDLE;
        let inbox = self.long.lock().unwrap_or_else(PoisonError::into_inner);
        let next = inbox.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        drop(inbox);
        let mut counts = self.counts();
        counts.idle_aside -= 1;
        match next {
            Ok(work) => {
                counts.long_queued = counts.long_queued.saturating_sub(1);
                Some(work)
            }
            Err(_) => None,
        }
    }
}

/// The two queues the workers take runs from.
#[derive(Clone)]
struct Queues {
    short: std_mpsc::Sender<Work>,
    long: std_mpsc::Sender<Work>,
}

impl Queues {
    /// Queues a run for a worker now. A job known to be long gets an aside thread (a new one
    /// when none is idle, within the cap).
    fn enqueue(&self, shared: &Arc<Shared>, work: Work) -> bool {
        if !work.long {
            shared.short_queued.fetch_add(1, Ordering::AcqRel);
            if self.short.send(work).is_ok() {
                if shared.busy.load(Ordering::Acquire) > 0 {
                    shared.wake_monitor();
                }
                return true;
            }
            shared.short_queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        let mut counts = shared.counts();
        counts.long_queued += 1;
        let start_one = counts.long_queued > counts.idle_aside && counts.threads() < MAX_THREADS;
        if start_one {
            counts.aside += 1;
        }
        drop(counts);
        if start_one {
            shared.spawn(Role::Aside);
        }
        self.long.send(work).is_ok()
    }
}

/// The threads and the queues that feed them.
pub struct WorkerPool {
    queues: Option<Queues>,
    release: Arc<Release>,
    shared: Arc<Shared>,
}

impl WorkerPool {
    /// Starts `count` core workers that hand finished runs to `finished`, their monitor and
    /// the release timer. Must be called on a tokio runtime: the workers are its blocking
    /// threads.
    pub fn start(
        count: usize,
        cache: &Arc<ScriptCache>,
        finished: &Arc<Finished>,
    ) -> std::io::Result<WorkerPool> {
        let (short, short_inbox) = std_mpsc::channel::<Work>();
        let (long, long_inbox) = std_mpsc::channel::<Work>();
        let core = count.clamp(1, MAX_THREADS);
        let shared = Arc::new(Shared {
            short: Mutex::new(short_inbox),
            long: Mutex::new(long_inbox),
            short_queued: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            counts: Mutex::new(Counts {
                core,
                ..Counts::default()
            }),
            slots: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            monitor: std::sync::OnceLock::new(),
            epoch: Instant::now(),
            cache: cache.clone(),
            finished: finished.clone(),
            runtime: Handle::current(),
        });
        // Plain threads, not blocking tasks: they live as long as the pool, and a blocking
        // task that never ends would keep a paused test clock from advancing.
        let monitor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("jobtop-pool".into())
                .spawn(move || shared.monitor())?
        };
        let _ = shared.monitor.set(monitor.thread().clone());
        let queues = Queues { short, long };
        let release = Arc::new(Release::default());
        {
            let (release, queues, shared) = (release.clone(), queues.clone(), shared.clone());
            std::thread::Builder::new()
                .name("jobtop-release".into())
                .spawn(move || {
                    release.run(|work| {
                        queues.enqueue(&shared, work);
                    });
                })?;
        }
        for _ in 0..core {
            shared.spawn(Role::Core);
        }
        Ok(WorkerPool {
            queues: Some(queues),
            release,
            shared,
        })
    }

    /// Hands a run to the pool: a worker takes it when it is due (the release timer holds a
    /// run handed over early), and as soon as one is free.
    pub fn submit(&self, work: Work) -> bool {
        let Some(queues) = &self.queues else {
            return false;
        };
        if work.start_at > Instant::now() {
            self.release.hold(work);
            true
        } else {
            queues.enqueue(&self.shared, work)
        }
    }

    fn close(&mut self) {
        self.shared.counts().stopping = true;
        self.shared.wake_monitor();
        self.release.stop();
        self.queues = None;
    }

    /// Lets the workers finish what they hold (runs still held for their time are released at
    /// once), then waits for them.
    pub async fn stop(&mut self) {
        self.close();
        loop {
            let threads: Vec<JoinHandle<()>> = std::mem::take(
                &mut *self
                    .shared
                    .threads
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            if threads.is_empty() {
                return;
            }
            for thread in threads {
                let _ = thread.await;
            }
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        // Closing the queues ends every worker loop; they are not joined here so that a drop
        // on the async runtime never blocks it.
        self.close();
    }
}
