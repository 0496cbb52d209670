//! The scheduler: one tokio task that owns the job table, sleeps on a timer queue until the
//! next due time, and turns everything that happens (a timer, a finished run, an operator's
//! command, a reload, a wall-clock step) into a [`lifecycle::Event`] for the job it concerns.
//! The job's transition decides; the actor only carries out the effects (`effects.rs`): hand a
//! run to the worker pool, arm a timer, send durable facts to the recorder thread, publish.
//!
//! Timers live on the monotonic clock. Firings are wall-clock slots (docs/scheduling.md): the
//! actor reads both clocks at every wake-up and tells the jobs when the wall clock stepped.

mod commands;
mod effects;
mod lifecycle;
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
use crate::runtime::{JobGrants, ScriptCache, SqliteState, StateStore};
use crate::store::{JobState, RunRecord, Store};
use rustc_hash::FxHashMap;

pub use lifecycle::SLEEP_FOR;
use lifecycle::{Event, Now};
use recorder::{Offer, Record, Recorder};
use table::JobEntry;
use timers::{JobId, TimerQueue};
use workers::{Finished, WorkerPool};

/// A wall-clock change at least this large between two wake-ups is a step (an NTP step, a
/// manual change), which calendar jobs follow; smaller ones are the clocks' ordinary drift.
const CLOCK_STEP: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// The scheduler wakes this long before the first batched timer ([`timers`])...
const HAND_OVER_MIN: Duration = Duration::from_millis(10);

/// ...and hands out every run due within this much of its wake-up, so runs due close together
/// cost it one wake-up per window between the two. The pool's release timer starts each at its
/// due time.
const HAND_OVER_MAX: Duration = Duration::from_millis(30);

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
    /// Where `notify test` requests go.
    pub notify_tests: Option<crate::control::NotifyTests>,
    /// How many subscribers to make before the jobs are added, so that what happens at the
    /// start itself (firings missed while the service was down) reaches them
    /// ([`SchedulerHandle::early_events`]).
    pub early_events: usize,
}

impl Default for SchedulerOptions {
    fn default() -> SchedulerOptions {
        SchedulerOptions {
            grace: Duration::from_secs(10),
            wall: WallClock::System,
            notify_tests: None,
            early_events: 0,
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
    /// The configuration it runs, replaced at each applied reload.
    pub config: tokio::sync::watch::Receiver<Arc<Config>>,
    /// Its events, for parts of the service that add notices of their own (it does not keep
    /// the channel open: subscribers still see it close when the scheduler ends).
    pub events: broadcast::WeakSender<JobEvent>,
    /// Receivers of every event from before the first job was added, as many as
    /// [`SchedulerOptions::early_events`] asked for.
    pub early_events: Vec<broadcast::Receiver<JobEvent>>,
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
    let early_events = (0..options.early_events)
        .map(|_| events.subscribe())
        .collect();
    let (recorder, recorder_thread) = Recorder::start(
        store,
        config.service.history.keep_runs,
        config.service.history.keep_days,
        events.clone(),
    )?;
    let cache = Arc::new(ScriptCache::new());
    let finished = Arc::new(Finished::default());
    let pool = WorkerPool::start(config.service.workers, &cache, &finished)?;
    let (commands_tx, commands_rx) = mpsc::channel(256);
    let state_store: Arc<dyn StateStore> =
        Arc::new(SqliteState::new(database_path(&config.service.state_dir)));
    let (internal_tx, internal_rx) = mpsc::unbounded_channel();
    let config = Arc::new(config);
    let (config_watch, config_rx) = tokio::sync::watch::channel(config.clone());
    let weak_events = events.downgrade();
    let mut scheduler = Scheduler {
        config,
        config_watch,
        notify_tests: options.notify_tests,
        jobs: FxHashMap::default(),
        order: Vec::new(),
        by_name: HashMap::new(),
        next_id: 0,
        timers: TimerQueue::default(),
        to_plan: Vec::new(),
        pool,
        finished,
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
        clocks: None,
    };
    scheduler.started = scheduler.wall.now();
    scheduler.clocks = Some(scheduler.now());
    let states: HashMap<String, JobState> =
        states.into_iter().map(|s| (s.name.clone(), s)).collect();
    let specs = scheduler.config.jobs.clone();
    for spec in specs {
        let state = states.get(&spec.name);
        scheduler.add_job(spec, state, true);
    }
    let names = scheduler.job_names();
    scheduler.record(Record::Configured(names));
    let task = tokio::spawn(scheduler.serve(commands_rx, internal_rx));
    Ok(SchedulerHandle {
        client: Client::new(commands_tx),
        config: config_rx,
        events: weak_events,
        early_events,
        task,
    })
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
    /// Tells the notifier and others which configuration runs now.
    config_watch: tokio::sync::watch::Sender<Arc<Config>>,
    /// The notifier's inbox for `notify test`.
    notify_tests: Option<crate::control::NotifyTests>,
    jobs: FxHashMap<JobId, JobEntry>,
    order: Vec<JobId>,
    by_name: HashMap<String, JobId>,
    next_id: JobId,
    timers: TimerQueue,
    /// Calendar jobs that fired in this batch: their next firing is worked out after it.
    to_plan: Vec<JobId>,
    pool: WorkerPool,
    /// Runs the workers finished, taken at every wake-up.
    finished: Arc<Finished>,
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
    /// Both clocks as read at the last wake-up, to notice a wall-clock step.
    clocks: Option<Now>,
}

impl Scheduler {
    async fn serve(
        mut self,
        mut commands: mpsc::Receiver<SchedulerCommand>,
        mut internal: mpsc::UnboundedReceiver<SelfMessage>,
    ) {
        let mut commands_open = true;
        let recorder = self.recorder.clone();
        let finished = self.finished.clone();
        let mut done = Vec::new();
        loop {
            finished.take(&mut done);
            for run in done.drain(..) {
                self.finish(run);
            }
            if self.shutdown.is_some() && self.running == 0 {
                break;
            }
            // While the recorder is far behind, no new run starts (its records would only
            // pile up); due runs wait and then run once, as after any stall.
            let next_due = self
                .timers
                .next_wake(HAND_OVER_MIN)
                .filter(|_| self.outbox.len() < OUTBOX_LIMIT);
            let abort_at = self
                .shutdown
                .as_ref()
                .filter(|s| !s.aborted)
                .map(|s| s.abort_at);
            self.notice_clock_step();
            let wakes_at = match (next_due, abort_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if !finished.sleep(wakes_at.map(Instant::into_std)) {
                continue;
            }
            tokio::select! {
                biased;
                () = finished.woken() => {}
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

    /// Both clocks, read now.
    fn now(&self) -> Now {
        Now {
            wall: self.wall.now(),
            mono: Instant::now(),
        }
    }

    /// Tells every job when the wall clock moved against the monotonic clock since the last
    /// wake-up by [`CLOCK_STEP`] or more.
    fn notice_clock_step(&mut self) {
        let now = self.now();
        let Some(before) = self.clocks.replace(now) else {
            return;
        };
        let by = now.wall - before.wall_of(now.mono);
        if by.abs() < CLOCK_STEP {
            return;
        }
        tracing::warn!(
            milliseconds = by.num_milliseconds(),
            "the wall clock stepped"
        );
        for id in self.order.clone() {
            self.apply(id, Event::ClockStep { by }, now);
        }
    }

    fn job_names(&self) -> Vec<String> {
        self.order
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .map(|e| e.spec.name.clone())
            .collect()
    }

    /// Adds a job to the table and schedules it (docs/scheduling.md#first-run): its first
    /// firing after now, or at the start a firing it missed while the service was down.
    fn add_job(&mut self, spec: Arc<JobSpec>, state: Option<&JobState>, at_start: bool) -> JobId {
        let id = self.next_id;
        self.next_id += 1;
        let display = self.config.display_name(&spec.path);
        let grants = Arc::new(JobGrants::for_job(&spec, Some(self.state_store.clone())));
        let entry = JobEntry::new(spec, display, grants, state);
        self.by_name.insert(entry.spec.name.clone(), id);
        self.order.push(id);
        self.jobs.insert(id, entry);
        let now = self.now();
        self.apply(id, Event::Schedule { at_start }, now);
        id
    }

    /// Hands out every run due within [`HAND_OVER_MAX`], then plans the calendar jobs that
    /// fired.
    fn fire_due(&mut self) {
        // A step since the loop last looked must reach the jobs before their timers do.
        self.notice_clock_step();
        let now = self.now();
        while let Some(timer) = self.timers.pop_due(now.mono, HAND_OVER_MAX) {
            let live = self
                .jobs
                .get(&timer.job)
                .is_some_and(|e| e.timer_generation == timer.generation);
            if live {
                let ahead = HAND_OVER_MAX;
                self.apply(timer.job, Event::Timer { ahead }, now);
            }
        }
        let now = self.now();
        for id in std::mem::take(&mut self.to_plan) {
            self.apply(id, Event::Plan, now);
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
                .map(JobEntry::view)
                .collect(),
            config_error: self.config_error.clone(),
        }
    }

    fn find(&self, name: &str) -> Result<JobId, ActionError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| ActionError(self.config.unknown_job(name)))
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
        reason: record.skip.map(|s| s.reason),
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
    let mut view = entry.view();
    view.next_run = None;
    if live && let Some(state) = state {
        if let Some(status) = state.status {
            view.status = status;
        }
        view.next_run = state.next_run;
    }
    view
}
