//! The scheduler: one tokio task that owns the job table, sleeps on a timer queue until the
//! next due time, hands runs to the worker pool, applies their results (SPEC sections 4, 5
//! and 8), and answers [`Command`]s. Durable facts go to the recorder thread.
//!
//! Due times live on the monotonic clock, so a wall-clock step (NTP, a manual change) moves
//! no timer, and after a stall (suspend, an overloaded machine) each overdue job runs once
//! and then realigns to its phase. Wall-clock times are derived for display and history.

mod commands;
mod recorder;
mod reload;
mod table;
mod timers;
mod workers;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use crate::commands::check::display_name;
use crate::config::{Config, JobSpec};
use crate::control::{ActionError, Actor, Command, JobEvent, JobView, Reply, RunSummary, Snapshot};
use crate::job::{RunResult, Status, Trigger};
use crate::runtime::{
    JobGrants, LocalZone, RunControl, RunRequest, ScriptCache, SqliteState, StateStore,
};
use crate::store::{JobState, LiveUpdate, RunRecord, Store};

use recorder::{Record, Recorder};
use table::{JobEntry, Running};
use timers::{JobId, Timer, TimerQueue};
use workers::{Done, Work, WorkerPool};

/// How long a job that returned `job.SLEEP` rests.
pub const SLEEP_FOR: Duration = Duration::from_secs(24 * 3600);

/// Most skip records written for one overdue timer (the count in the job row is exact).
const MAX_SKIP_RECORDS: usize = 100;

/// How many events a subscriber may fall behind before it must take a new snapshot.
const EVENT_BUFFER: usize = 16_384;

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

/// A running scheduler: send it commands; await `task` after a `Shutdown`.
pub struct SchedulerHandle {
    /// Where commands go.
    pub commands: mpsc::Sender<Command>,
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
    let pool = WorkerPool::start(config.service.workers, &cache, &done_tx);
    let (commands_tx, commands_rx) = mpsc::channel(256);
    let state_store: Arc<dyn StateStore> =
        Arc::new(SqliteState::new(database_path(&config.service.state_dir)));
    let (internal_tx, internal_rx) = mpsc::unbounded_channel();
    let mut scheduler = Scheduler {
        zone: zone_of(&config),
        config: Arc::new(config),
        jobs: HashMap::new(),
        order: Vec::new(),
        by_name: HashMap::new(),
        next_id: 0,
        next_run_id: 0,
        timers: TimerQueue::default(),
        pool,
        recorder,
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
    scheduler
        .recorder
        .send(Record::Configured(scheduler.job_names()));
    // `list` reads statuses and next runs from the database while a service runs.
    for id in scheduler.order.clone() {
        scheduler.publish(id);
    }
    let task = tokio::spawn(scheduler.serve(commands_rx, done_rx, internal_rx));
    Ok(SchedulerHandle {
        commands: commands_tx,
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
enum Internal {
    /// A reload's configuration and state were read.
    ReloadRead {
        result: Result<(Config, Vec<JobState>), String>,
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
    jobs: HashMap<JobId, JobEntry>,
    order: Vec<JobId>,
    by_name: HashMap<String, JobId>,
    next_id: JobId,
    next_run_id: u64,
    timers: TimerQueue,
    pool: WorkerPool,
    recorder: Recorder,
    recorder_thread: Option<std::thread::JoinHandle<()>>,
    /// Where `core.state` keeps values: the state database.
    state_store: Arc<dyn StateStore>,
    events: broadcast::Sender<JobEvent>,
    internal: mpsc::UnboundedSender<Internal>,
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
        mut commands: mpsc::Receiver<Command>,
        mut done: mpsc::UnboundedReceiver<Done>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
    ) {
        let mut commands_open = true;
        loop {
            if self.shutdown.is_some() && self.running == 0 {
                break;
            }
            let next_due = self.timers.next_due();
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
                () = sleep_until_opt(next_due), if next_due.is_some() => self.fire_due(),
                () = sleep_until_opt(abort_at), if abort_at.is_some() => self.abort_all(),
            }
        }
        self.finish_shutdown().await;
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

    /// Adds a job to the table and schedules it per SPEC section 8: one interval from now,
    /// or from its last due time when the state database has one (`at_start` for `run_once`).
    fn add_job(&mut self, spec: Arc<JobSpec>, state: Option<&JobState>, at_start: bool) -> JobId {
        let id = self.next_id;
        self.next_id += 1;
        let display = display_name(&self.config, &spec.path);
        let grants = Arc::new(JobGrants::for_job(&spec, Some(self.state_store.clone())));
        let mut entry = JobEntry::new(spec, display, grants, state);
        let now = Instant::now();
        let due = first_due(&entry, now, self.wall_now(), at_start);
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
        while let Some(timer) = self.timers.pop_due(now) {
            let live = self
                .jobs
                .get(&timer.job)
                .is_some_and(|e| e.timer_generation == timer.generation && e.is_scheduled());
            if live {
                self.on_due(timer.job, timer.due, now);
            }
        }
    }

    /// A job's due time came: run it (or count a skip), then set its next due time on its
    /// phase, skipping slots already past so an overdue job runs once, not in a burst.
    fn on_due(&mut self, id: JobId, due: Instant, now: Instant) {
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        let interval = entry.spec.interval;
        let run_once = entry.spec.run_once;
        // Late by a whole interval or more (a stall): this run stands for the latest slot,
        // so the helpers see the time it really runs at; the slots in between are dropped.
        let latest = latest_slot(due, interval, now);
        let next = latest + interval;
        if entry.running.is_some() {
            // Every slot that came while the run was going is a skip, stall or not.
            let mut slot = due;
            let mut skipped = 0u64;
            let mut records = Vec::new();
            while slot <= latest {
                skipped += 1;
                if records.len() < MAX_SKIP_RECORDS {
                    records.push(RunRecord {
                        job: entry.spec.name.clone(),
                        scheduled: wall_of(self.wall.now(), now, slot),
                        started: self.wall.now(),
                        duration: Duration::ZERO,
                        result: RunResult::Skipped,
                        error: Some("the previous run was still going".into()),
                        logs: Vec::new(),
                        trigger: Trigger::Schedule,
                    });
                }
                slot += interval;
            }
            entry.stored.skips += skipped;
            for record in records {
                self.recorder.send(Record::Run(record));
            }
        } else {
            if entry.status == Status::Sleeping {
                entry.status = Status::Waiting;
            }
            self.dispatch(id, latest, Trigger::Schedule);
        }
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        if run_once {
            entry.due = None;
            entry.timer_generation += 1;
        } else {
            entry.due = Some(next);
            self.arm(id);
        }
        self.publish(id);
    }

    /// Hands one run of a job to the worker pool.
    fn dispatch(&mut self, id: JobId, due: Instant, trigger: Trigger) {
        let scheduled = self.wall_of(due);
        let since = self.wall_now();
        let run_id = self.next_run_id;
        self.next_run_id += 1;
        let zone = self.zone;
        let log_sink = self.log_sink(id);
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        let control = RunControl::new();
        let request = RunRequest {
            file: entry.spec.file.clone(),
            display_name: entry.display_name.clone(),
            scheduled,
            zone,
            timeout: entry.spec.timeout,
            memory: entry.spec.memory,
            control: control.clone(),
            log_sink,
            grants: entry.grants.clone(),
        };
        entry.running = Some(Running {
            run_id,
            control,
            since,
            aborting: false,
        });
        let work = Work {
            job: id,
            run_id,
            name: entry.spec.name.clone(),
            trigger,
            request,
        };
        if self.pool.submit(work) {
            self.running += 1;
        } else {
            entry.running = None;
            self.notice("the worker pool is gone: no run can start".into());
        }
    }

    /// A sink that streams a run's log lines to subscribers, when there are any.
    fn log_sink(&self, id: JobId) -> Option<crate::runtime::LogSink> {
        if self.events.receiver_count() == 0 {
            return None;
        }
        let name = self.jobs.get(&id)?.spec.name.clone();
        let events = self.events.clone();
        Some(Arc::new(move |line: &str| {
            let _ = events.send(JobEvent::Log {
                name: name.clone(),
                line: line.to_string(),
            });
        }))
    }

    /// A worker finished a run: record it and apply its result.
    fn finish(&mut self, done: Done) {
        self.running = self.running.saturating_sub(1);
        let outcome = done.outcome;
        let scheduled = done.scheduled;
        let record = RunRecord {
            job: done.name.clone(),
            scheduled,
            started: outcome.started,
            duration: outcome.duration,
            result: outcome.result,
            error: outcome.error.clone(),
            logs: outcome.logs.clone(),
            trigger: done.trigger,
        };
        let summary = run_summary(&record);
        self.recorder.send(Record::Run(record));
        let _ = self.events.send(JobEvent::Finished {
            name: done.name,
            run: summary,
        });
        let now_wall = self.wall_now();
        let Some(entry) = self.jobs.get_mut(&done.job) else {
            // The job left the configuration while this run was going.
            return;
        };
        if entry
            .running
            .as_ref()
            .is_none_or(|r| r.run_id != done.run_id)
        {
            return;
        }
        entry.running = None;
        entry.stored.last_run = Some(outcome.started);
        entry.stored.last_scheduled = Some(scheduled);
        entry.stored.last_result = Some(outcome.result);
        entry.stored.last_duration_ms = Some(outcome.duration.as_secs_f64() * 1e3);
        entry.stored.runs += 1;
        if outcome.result == RunResult::Ok {
            entry.stored.oks += 1;
        }
        if outcome.result.is_failure() {
            entry.stored.errors += 1;
        }
        if let Some(error) = &outcome.error {
            entry.stored.last_error = Some(error.clone());
            entry.stored.last_error_at = Some(now_wall);
        }
        let id = done.job;
        match outcome.result {
            RunResult::Ok if done.trigger == Trigger::Schedule && entry.spec.run_once => {
                entry.status = Status::Done;
            }
            RunResult::Exit => entry.status = Status::Stopped,
            RunResult::Sleep => {
                entry.status = Status::Sleeping;
                entry.due = Some(Instant::now() + SLEEP_FOR);
                self.arm(id);
            }
            _ => {
                if let Some(reason) = outcome.deactivation_reason() {
                    self.deactivate(id, &reason, None, None);
                }
            }
        }
        self.publish(id);
    }

    /// Deactivates a job: no more scheduled runs, persisted (acknowledged through `ack`).
    fn deactivate(&mut self, id: JobId, reason: &str, by: Actor, ack: Option<recorder::Ack>) {
        let at = self.wall_now();
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        entry.status = Status::Deactivated;
        entry.due = None;
        entry.timer_generation += 1;
        entry.stored.deactivated = true;
        entry.stored.deactivated_reason = Some(reason.to_string());
        entry.stored.deactivated_by.clone_from(&by);
        entry.stored.deactivated_at = Some(at);
        tracing::info!(job = %entry.spec.name, %reason, "deactivated");
        self.recorder.send(Record::Deactivate {
            job: entry.spec.name.clone(),
            reason: reason.to_string(),
            by,
            at,
            ack,
        });
    }

    /// Tells subscribers and the state database how a job stands now.
    fn publish(&self, id: JobId) {
        let Some(entry) = self.jobs.get(&id) else {
            return;
        };
        let next_run = if entry.is_scheduled() {
            entry.due.map(|d| self.wall_of(d))
        } else {
            None
        };
        self.recorder.send(Record::Live(LiveUpdate {
            job: entry.spec.name.clone(),
            status: entry.shown_status(),
            next_run,
        }));
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

    fn internal(&mut self, message: Internal) {
        match message {
            Internal::ReloadRead { result, reply } => self.apply_reload(result, reply),
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
        let (flushed, done) = oneshot::channel();
        if self.recorder.send(Record::Flush(flushed)) {
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

/// The first due time of a job: one interval from now, or its last due time plus one
/// interval when the state database has one (a time already past means right away).
fn first_due(entry: &JobEntry, now: Instant, wall_now: DateTime<Utc>, at_start: bool) -> Instant {
    let interval = entry.spec.interval;
    if entry.spec.run_once && at_start {
        return now + interval;
    }
    let Some(last) = entry.stored.last_scheduled else {
        return now + interval;
    };
    let next_wall = last + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    match (next_wall - wall_now).to_std() {
        Ok(ahead) => now + ahead.min(interval),
        Err(_) => now,
    }
}

/// The latest slot on a job's phase (`due` plus whole intervals) that is not after `now`.
fn latest_slot(due: Instant, interval: Duration, now: Instant) -> Instant {
    if now <= due {
        return due;
    }
    let behind = now.duration_since(due).as_nanos();
    let steps = behind / interval.as_nanos().max(1);
    let steps = u32::try_from(steps).unwrap_or(u32::MAX);
    due + interval.saturating_mul(steps)
}

/// The first slot on a job's phase, given its last due time, that is still ahead: used when
/// a stopped job resumes on reload, so it keeps its rhythm instead of running at once.
fn resume_due(entry: &JobEntry, now: Instant, wall_now: DateTime<Utc>) -> Instant {
    let interval = entry.spec.interval;
    let Some(last) = entry.stored.last_scheduled else {
        return now + interval;
    };
    let interval_ns = i128::try_from(interval.as_nanos())
        .unwrap_or(i128::MAX)
        .max(1);
    let since_last = i128::from((wall_now - last).num_nanoseconds().unwrap_or(i64::MAX));
    // Slots are last + k * interval; the first one after now, at least one interval on.
    let k = (since_last.div_euclid(interval_ns) + 1).max(1);
    let ahead = (k * interval_ns - since_last).clamp(0, interval_ns);
    now + Duration::from_nanos(u64::try_from(ahead).unwrap_or(u64::MAX))
}

/// Wall-clock time of `at`, given the two clocks read at the same moment.
fn wall_of(wall_now: DateTime<Utc>, mono_now: Instant, at: Instant) -> DateTime<Utc> {
    let offset = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    if at >= mono_now {
        wall_now + offset(at - mono_now)
    } else {
        wall_now - offset(mono_now - at)
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
