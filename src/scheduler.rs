//! The scheduler: one tokio task that owns the job table, sleeps on a timer queue until the
//! next due time, hands runs to the worker pool, applies their results (docs/job-files.md,
//! docs/scheduling.md), and answers [`SchedulerCommand`]s. Durable facts go to the recorder thread.
//!
//! Due times live on the monotonic clock, so a wall-clock step (NTP, a manual change) moves
//! no timer, and after a stall (suspend, an overloaded machine) each overdue job runs once
//! and then realigns to its phase. Wall-clock times are derived for display and history.

mod commands;
mod phase;
mod recorder;
mod reload;
mod runs;
mod table;
mod timers;
mod workers;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{Config, JobSpec};
use crate::control::{
    ActionError, Client, JobEvent, JobView, Reply, RunSummary, SchedulerCommand, Snapshot,
};
use crate::job::Status;
use crate::runtime::{JobGrants, LocalZone, ScriptCache, SqliteState, StateStore};
use crate::store::{JobState, LiveUpdate, RunRecord, Store};
use rustc_hash::FxHashMap;

use phase::{first_due, resume_due, wall_of};
use recorder::{Offer, Record, Recorder};
use table::JobEntry;
use timers::{JobId, Timer, TimerQueue};
use workers::{Done, WorkerPool};

/// How long a job that returned `job.SLEEP` rests.
pub const SLEEP_FOR: Duration = Duration::from_secs(24 * 3600);

/// Most skip records written for one overdue timer (the count in the job row is exact).
const MAX_SKIP_RECORDS: usize = 100;

/// How long before a due time the scheduler wakes and hands the run to a worker, which then
/// waits out the rest on a precise sleep. The async timer has millisecond granularity and wakes
/// after its deadline; this way a run starts within a fraction of a millisecond of its due time.
const EARLY: Duration = Duration::from_millis(2);

/// How many events a subscriber may fall behind before it must take a new snapshot.
const EVENT_BUFFER: usize = 16_384;

/// How many records may wait in the scheduler's outbox (the recorder's queue is full) before it
/// starts no new runs: the outbox stays bounded, and runs go no faster than they are recorded.
const OUTBOX_LIMIT: usize = recorder::QUEUE_CAPACITY / 4;

/// Where wall-clock time comes from.
#[derive(Clone)]
pub enum WallClock {
    /// The system clock.
    System,
    /// A clock of the caller's (tests drive it with tokio's paused time).
    Manual(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>),
}

impl WallClock {
    fn now(&self) -> DateTime<Utc> {
        match self {
            WallClock::System => Utc::now(),
            WallClock::Manual(f) => f(),
        }
    }
}

/// How a scheduler is started.
#[derive(Clone)]
pub struct SchedulerOptions {
    /// How long running runs may take to finish at shutdown before they are aborted.
    pub grace: Duration,
    /// The wall clock.
    pub wall: WallClock,
}

impl Default for SchedulerOptions {
    fn default() -> SchedulerOptions {
        SchedulerOptions {
            grace: Duration::from_secs(10),
            wall: WallClock::System,
        }
    }
}

/// Why the scheduler could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state database could not be read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A thread could not be started.
    #[error("cannot start a jobtop thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running scheduler: talk to it through `client`; await `task` after a shutdown.
pub struct SchedulerHandle {
    /// Its client.
    pub client: Client,
    /// The scheduler task; it ends after a shutdown has recorded everything.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the scheduler on `config` with the state in `store`. Must be called on a tokio
/// runtime.
pub fn start(
    config: Config,
    store: Store,
    options: SchedulerOptions,
) -> Result<SchedulerHandle, StartError> {
    let states = store.job_states()?;
    let (events, _) = broadcast::channel(EVENT_BUFFER);
    let (recorder, recorder_thread) = Recorder::start(
        store,
        config.service.history.keep_runs,
        config.service.history.keep_days,
        events.clone(),
    )?;
    let cache = Arc::new(ScriptCache::new());
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let pool = WorkerPool::start(config.service.workers, &cache, &done_tx)?;
    let (commands_tx, commands_rx) = mpsc::channel(256);
    let state_store: Arc<dyn StateStore> =
        Arc::new(SqliteState::new(database_path(&config.service.state_dir)));
    let (internal_tx, internal_rx) = mpsc::unbounded_channel();
    let mut scheduler = Scheduler {
        zone: zone_of(&config),
        config: Arc::new(config),
        jobs: FxHashMap::default(),
        order: Vec::new(),
        by_name: HashMap::new(),
        next_id: 0,
        next_run_id: 0,
        timers: TimerQueue::default(),
        pool,
        recorder,
        outbox: VecDeque::new(),
        recorder_thread: Some(recorder_thread),
        state_store,
        events,
        internal: internal_tx,
        wall: options.wall,
        grace: options.grace,
        started: Utc::now(),
        config_error: None,
        shutdown: None,
        running: 0,
    };
    scheduler.started = scheduler.wall.now();
    let states: HashMap<String, JobState> =
        states.into_iter().map(|s| (s.name.clone(), s)).collect();
    let specs = scheduler.config.jobs.clone();
    for spec in specs {
        let state = states.get(&spec.name);
        scheduler.add_job(Arc::new(spec), state, true);
    }
    let names = scheduler.job_names();
    scheduler.record(Record::Configured(names));
    // `list` reads statuses and next runs from the database while a service runs.
    for id in scheduler.order.clone() {
        scheduler.publish(id);
    }
    let task = tokio::spawn(scheduler.serve(commands_rx, done_rx, internal_rx));
    Ok(SchedulerHandle {
        client: Client::new(commands_tx),
        task,
    })
}

fn zone_of(config: &Config) -> LocalZone {
    config
        .service
        .timezone
        .map_or(LocalZone::System, LocalZone::Named)
}

/// Messages the scheduler sends itself from tasks it spawned.
enum SelfMessage {
    /// A reload's configuration and state were read.
    ReloadRead {
        result: Result<reload::Reread, String>,
        reply: Reply<crate::control::ReloadSummary>,
    },
}

struct ShutdownState {
    replies: Vec<oneshot::Sender<()>>,
    abort_at: Instant,
    aborted: bool,
}

struct Scheduler {
    config: Arc<Config>,
    zone: LocalZone,
    jobs: FxHashMap<JobId, JobEntry>,
    order: Vec<JobId>,
    by_name: HashMap<String, JobId>,
    next_id: JobId,
    next_run_id: u64,
    timers: TimerQueue,
    pool: WorkerPool,
    recorder: Recorder,
    /// Records that did not fit in the recorder's queue, oldest first.
    outbox: VecDeque<Record>,
    recorder_thread: Option<std::thread::JoinHandle<()>>,
    /// Where `core.state` keeps values: the state database.
    state_store: Arc<dyn StateStore>,
    events: broadcast::Sender<JobEvent>,
    internal: mpsc::UnboundedSender<SelfMessage>,
    wall: WallClock,
    grace: Duration,
    started: DateTime<Utc>,
    config_error: Option<String>,
    shutdown: Option<ShutdownState>,
    running: usize,
}

impl Scheduler {
    async fn serve(
        mut self,
        mut commands: mpsc::Receiver<SchedulerCommand>,
        mut done: mpsc::UnboundedReceiver<Done>,
        mut internal: mpsc::UnboundedReceiver<SelfMessage>,
    ) {
        let mut commands_open = true;
        let recorder = self.recorder.clone();
        loop {
            if self.shutdown.is_some() && self.running == 0 {
                break;
            }
            // While the recorder is far behind, no new run starts (its records would only
            // pile up); due runs wait and then run once, as after any stall.
            let next_due = self
                .timers
                .next_due()
                .filter(|_| self.outbox.len() < OUTBOX_LIMIT)
                .map(|due| due.checked_sub(EARLY).unwrap_or(due));
            let abort_at = self
                .shutdown
                .as_ref()
                .filter(|s| !s.aborted)
                .map(|s| s.abort_at);
            tokio::select! {
                biased;
                Some(finished) = done.recv() => self.finish(finished),
                command = commands.recv(), if commands_open => match command {
                    Some(command) => self.command(command),
                    None => {
                        // Every handle is gone: nobody can ask for anything any more.
                        commands_open = false;
                        self.begin_shutdown(None);
                    }
                },
                Some(message) = internal.recv() => self.internal(message),
                Some(permit) = recorder.reserve(), if !self.outbox.is_empty() => {
                    if let Some(record) = self.outbox.pop_front() {
                        permit.send(record);
                    }
                    self.flush_outbox();
                }
                () = sleep_until_opt(next_due), if next_due.is_some() => self.fire_due(),
                () = sleep_until_opt(abort_at), if abort_at.is_some() => self.abort_all(),
            }
        }
        // The loop's handle on the recorder must go, or its queue never closes.
        drop(recorder);
        self.finish_shutdown().await;
    }

    /// Hands a record to the recorder without waiting: into its queue when there is room,
    /// else to the outbox, which the loop empties as the recorder catches up. False when the
    /// recorder is gone.
    fn record(&mut self, record: Record) -> bool {
        if !self.outbox.is_empty() {
            self.outbox.push_back(record);
            return true;
        }
        match self.recorder.offer(record) {
            Offer::Taken => true,
            Offer::Full(record) => {
                self.outbox.push_back(record);
                true
            }
            Offer::Gone => false,
        }
    }

    /// Moves what fits from the outbox into the recorder's queue.
    fn flush_outbox(&mut self) {
        while let Some(record) = self.outbox.pop_front() {
            if let Offer::Full(record) = self.recorder.offer(record) {
                self.outbox.push_front(record);
                return;
            }
        }
    }

    fn wall_now(&self) -> DateTime<Utc> {
        self.wall.now()
    }

    /// The wall-clock time of a monotonic instant, by today's offset between the clocks.
    fn wall_of(&self, at: Instant) -> DateTime<Utc> {
        wall_of(self.wall_now(), Instant::now(), at)
    }

    fn job_names(&self) -> Vec<String> {
        self.order
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .map(|e| e.spec.name.clone())
            .collect()
    }

    /// Adds a job to the table and schedules it per docs/scheduling.md#first-run: one interval from now,
    /// or from its last due time when the state database has one (`at_start` for `run_once`).
    fn add_job(&mut self, spec: Arc<JobSpec>, state: Option<&JobState>, at_start: bool) -> JobId {
        let id = self.next_id;
        self.next_id += 1;
        let display = self.config.display_name(&spec.path);
        let grants = Arc::new(JobGrants::for_job(&spec, Some(self.state_store.clone())));
        let mut entry = JobEntry::new(spec, display, grants, state);
        let now = Instant::now();
        let due = first_due(
            &entry,
            now,
            self.wall_now(),
            at_start,
            self.config.service.spread,
        );
        entry.due = Some(due);
        self.by_name.insert(entry.spec.name.clone(), id);
        self.order.push(id);
        self.jobs.insert(id, entry);
        self.arm(id);
        id
    }

    /// Arms the job's timer for its `due` time, if it is scheduled.
    fn arm(&mut self, id: JobId) {
        if self.shutdown.is_some() {
            return;
        }
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        entry.timer_generation += 1;
        if !entry.is_scheduled() {
            return;
        }
        if let Some(due) = entry.due {
            self.timers.push(Timer {
                due,
                job: id,
                generation: entry.timer_generation,
            });
        }
        if self.timers.len() > 4 * self.jobs.len() + 1024 {
            let jobs = &self.jobs;
            self.timers.retain(|t| {
                jobs.get(&t.job)
                    .is_some_and(|e| e.timer_generation == t.generation)
            });
        }
    }

    fn fire_due(&mut self) {
        let now = Instant::now();
        while let Some(timer) = self.timers.pop_due(now + EARLY) {
            let live = self
                .jobs
                .get(&timer.job)
                .is_some_and(|e| e.timer_generation == timer.generation && e.is_scheduled());
            if live {
                self.on_due(timer.job, timer.due, now);
            }
        }
    }

    /// Tells subscribers and the state database how a job stands now.
    fn publish(&mut self, id: JobId) {
        let Some(entry) = self.jobs.get(&id) else {
            return;
        };
        let status = entry.shown_status();
        // `running` lasts microseconds for most runs: the database learns the status the run
        // ends in, which halves the writer's work per run. Live readers use the socket.
        if status != Status::Running {
            let next_run = if entry.is_scheduled() {
                entry.due.map(|d| self.wall_of(d))
            } else {
                None
            };
            let live = Record::Live(LiveUpdate {
                job: entry.spec.name.clone(),
                status,
                next_run,
            });
            self.record(live);
        }
        let Some(entry) = self.jobs.get(&id) else {
            return;
        };
        if self.events.receiver_count() > 0 {
            let view = entry.view(|d| self.wall_of(d));
            let _ = self.events.send(JobEvent::Job {
                job: Box::new(view),
            });
        }
    }

    fn notice(&self, message: String) {
        tracing::warn!("{message}");
        let _ = self.events.send(JobEvent::Notice { message });
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            config_file: self.config.file.clone(),
            pid: std::process::id(),
            started: self.started,
            jobs: self
                .order
                .iter()
                .filter_map(|id| self.jobs.get(id))
                .map(|e| e.view(|d| self.wall_of(d)))
                .collect(),
            config_error: self.config_error.clone(),
        }
    }

    fn find(&self, name: &str) -> Result<JobId, ActionError> {
        self.by_name.get(name).copied().ok_or_else(|| {
            ActionError(format!(
                "no job named {name:?} in {}: expected one of {}",
                self.config.file.display(),
                self.job_names().join(", ")
            ))
        })
    }

    fn internal(&mut self, message: SelfMessage) {
        match message {
            SelfMessage::ReloadRead { result, reply } => self.apply_reload(result, reply),
        }
    }

    fn abort_all(&mut self) {
        if let Some(shutdown) = &mut self.shutdown {
            shutdown.aborted = true;
        }
        for entry in self.jobs.values() {
            if let Some(run) = &entry.running {
                run.control.stop(crate::runtime::StopReason::Shutdown);
            }
        }
    }

    fn begin_shutdown(&mut self, reply: Option<oneshot::Sender<()>>) {
        let shutdown = self.shutdown.get_or_insert_with(|| ShutdownState {
            replies: Vec::new(),
            abort_at: Instant::now() + self.grace,
            aborted: false,
        });
        if let Some(reply) = reply {
            shutdown.replies.push(reply);
        }
        self.timers.clear();
        tracing::info!(running = self.running, "shutting down");
    }

    async fn finish_shutdown(mut self) {
        // Everything waiting in the outbox goes first, in order, then the flush.
        let mut delivered = true;
        while let Some(record) = self.outbox.pop_front() {
            delivered &= self.recorder.send(record).await;
        }
        let (flushed, done) = oneshot::channel();
        if delivered && self.recorder.send(Record::Flush(flushed)).await {
            let _ = done.await;
        }
        self.pool.stop().await;
        // Closing the recorder's queue ends its thread, which closes the database cleanly.
        let replies = self.shutdown.take().map(|s| s.replies).unwrap_or_default();
        let recorder_thread = self.recorder_thread.take();
        drop(self);
        if let Some(thread) = recorder_thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        for reply in replies {
            let _ = reply.send(());
        }
        tracing::info!("scheduler stopped");
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A stored run as history and the details view show it.
pub fn run_summary(record: &RunRecord) -> RunSummary {
    RunSummary {
        scheduled: record.scheduled,
        started: record.started,
        duration_ms: record.duration.as_secs_f64() * 1e3,
        result: record.result,
        error: record.error.clone(),
        trigger: record.trigger.as_str().to_string(),
        logs: record.logs.clone(),
    }
}

/// The path of the state database inside a state directory.
pub fn database_path(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("state.db")
}

/// A job's row as the state database has it, for `list` without a live service: `live` when a
/// service holds the state directory (its stored status and next run are current).
pub fn stored_view(spec: &JobSpec, state: Option<&JobState>, live: bool) -> JobView {
    let grants = Arc::new(JobGrants::for_job(spec, None));
    let entry = JobEntry::new(Arc::new(spec.clone()), spec.path.clone(), grants, state);
    let mut view = entry.view(|_| Utc::now());
    view.next_run = None;
    if live && let Some(state) = state {
        if let Some(status) = state.status {
            view.status = status;
        }
        view.next_run = state.next_run;
    }
    view
}
