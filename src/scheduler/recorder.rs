//! The recorder: one thread that owns the state database and writes what the scheduler tells
//! it. Runs and live statuses are written in batches, one transaction per batch: what queued up
//! while the previous batch was written, and, when that is little, what comes in the next
//! [`BATCH_WINDOW`]. The queue is bounded, and the scheduler never blocks on it: what does not
//! fit waits in the scheduler's outbox, and while the outbox is long the scheduler starts no
//! new runs (so a flood slows the runs down instead of growing memory, and no record is lost).
//! Deactivations and activations are committed before they are acknowledged.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};
use tokio::sync::{broadcast, oneshot};

use crate::control::{ActionError, JobEvent, Reply, RunSummary};
use crate::store::{LiveUpdate, RunRecord, Store};
use rustc_hash::FxHashMap;

/// Most messages folded into one transaction.
const MAX_BATCH: usize = 10_000;

/// Most messages waiting in the recorder's queue. When it falls this far behind (a flood of
/// runs, a slow disk), more wait in the scheduler's outbox, which holds back new runs: runs then
/// start no faster than they are recorded.
pub const QUEUE_CAPACITY: usize = 2 * MAX_BATCH;

/// How long the recorder gathers runs and statuses before it writes them in one transaction.
/// A crash loses at most the runs of this window (they are "in flight"); decisions are
/// committed at once.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// How often history retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// An acknowledgement that a decision is on disk, or why it is not.
pub type Ack = oneshot::Sender<Result<(), String>>;

/// What the recorder can be told.
pub enum Record {
    /// A finished (or skipped) run.
    Run(RunRecord),
    /// A job's live status and next run, for `list` while the service runs.
    Live(LiveUpdate),
    /// Deactivate a job, persisted.
    Deactivate {
        /// The job.
        job: String,
        /// Why.
        reason: String,
        /// The operator, if one asked.
        by: Option<String>,
        /// When.
        at: DateTime<Utc>,
        /// Told once it is committed.
        ack: Option<Ack>,
    },
    /// Clear a job's deactivation, persisted.
    Activate {
        /// The job.
        job: String,
        /// When.
        at: DateTime<Utc>,
        /// Told once it is committed.
        ack: Option<Ack>,
    },
    /// Keep the live status only of these jobs (the others left the configuration).
    Configured(Vec<String>),
    /// An operator action for the audit table.
    Audit {
        /// Who.
        user: Option<String>,
        /// What.
        action: String,
        /// On which job.
        job: Option<String>,
        /// Anything else.
        detail: Option<String>,
    },
    /// Recent runs of a job, newest first, after writing everything queued.
    History {
        /// The job.
        job: String,
        /// At most this many.
        limit: usize,
        /// Receives the runs.
        reply: Reply<Vec<RunSummary>>,
    },
    /// Write everything queued, then answer.
    Flush(oneshot::Sender<()>),
}

/// What became of a message offered to the recorder.
pub enum Offer {
    /// It is in the queue.
    Taken,
    /// The queue is full: here it is back.
    Full(Record),
    /// The recorder is gone.
    Gone,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Record>,
}

impl Recorder {
    /// Starts the recorder thread on `store`; store errors are reported as notices on `events`.
    pub fn start(
        store: Store,
        keep_runs: u32,
        keep_days: u32,
        events: broadcast::Sender<JobEvent>,
    ) -> std::io::Result<(Recorder, std::thread::JoinHandle<()>)> {
        let (queue, mut inbox) = mpsc::channel(QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("jobtop-recorder".into())
            .spawn(move || {
                RecorderThread {
                    store,
                    keep_runs,
                    keep_days,
                    events,
                    last_retention: None,
                }
                .serve(&mut inbox);
            })?;
        Ok((Recorder { queue }, thread))
    }

    /// Queues a message if there is room, without waiting.
    pub fn offer(&self, record: Record) -> Offer {
        match self.queue.try_send(record) {
            Ok(()) => Offer::Taken,
            Err(TrySendError::Full(record)) => Offer::Full(record),
            Err(TrySendError::Closed(_)) => Offer::Gone,
        }
    }

    /// Queues a message, waiting for room; false when the recorder is gone.
    pub async fn send(&self, record: Record) -> bool {
        self.queue.send(record).await.is_ok()
    }

    /// Queues a message from a thread that is not async, waiting for room.
    #[cfg(test)]
    pub fn blocking_send(&self, record: Record) -> bool {
        self.queue.blocking_send(record).is_ok()
    }

    /// Waits until the queue has room for one message; `None` when the recorder is gone.
    pub async fn reserve(&self) -> Option<mpsc::Permit<'_, Record>> {
        self.queue.reserve().await.ok()
    }
}

struct RecorderThread {
    store: Store,
    keep_runs: u32,
    keep_days: u32,
    events: broadcast::Sender<JobEvent>,
    last_retention: Option<Instant>,
}

#[derive(Default)]
struct Batch {
    runs: Vec<RunRecord>,
    live: FxHashMap<String, LiveUpdate>,
}

impl Batch {
    /// Whether anything waits to be written.
    fn is_pending(&self) -> bool {
        !self.runs.is_empty() || !self.live.is_empty()
    }
}

impl RecorderThread {
    fn serve(mut self, inbox: &mut mpsc::Receiver<Record>) {
        let mut batch = Batch::default();
        while let Some(first) = inbox.blocking_recv() {
            self.take(first, &mut batch);
            let taken = 1 + self.drain(inbox, &mut batch, MAX_BATCH - 1);
            if batch.is_pending() && taken < MAX_BATCH {
                // The queue ran dry before a full batch: gather for a moment, since a commit
                // costs far more than a row and runs come in bursts. Sleeping out the window,
                // rather than waking for each record, keeps a steady trickle of runs cheap; a
                // flood never waits here. A decision that comes meanwhile waits at most the
                // window (`take` writes at once for it).
                std::thread::sleep(BATCH_WINDOW);
                self.drain(inbox, &mut batch, MAX_BATCH - taken);
            }
            self.write(&mut batch);
            self.retain_history();
        }
        self.write(&mut batch);
    }

    /// Takes up to `most` queued records without waiting; returns how many.
    fn drain(
        &mut self,
        inbox: &mut mpsc::Receiver<Record>,
        batch: &mut Batch,
        most: usize,
    ) -> usize {
        let mut taken = 0;
        while taken < most {
            let record = match inbox.try_recv() {
                Ok(record) => record,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            };
            self.take(record, batch);
            taken += 1;
        }
        taken
    }

    fn take(&mut self, record: Record, batch: &mut Batch) {
        match record {
            Record::Run(run) => batch.runs.push(run),
            Record::Live(live) => {
                batch.live.insert(live.job.clone(), live);
            }
            Record::Deactivate {
                job,
                reason,
                by,
                at,
                ack,
            } => {
                // Earlier runs first: the order on disk is the order things happened.
                self.write(batch);
                let result = self
                    .store
                    .deactivate(&job, &reason, by.as_deref(), at)
                    .map_err(|e| e.to_string());
                self.answer(ack, result, &format!("deactivating {job}"));
            }
            Record::Activate { job, at, ack } => {
                self.write(batch);
                let result = self.store.activate(&job, at).map_err(|e| e.to_string());
                self.answer(ack, result, &format!("activating {job}"));
            }
            Record::Configured(names) => {
                self.write(batch);
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                if let Err(e) = self.store.forget_jobs_except(&names) {
                    self.notice(&format!("cannot update the state database: {e}"));
                }
            }
            Record::Audit {
                user,
                action,
                job,
                detail,
            } => {
                let entry = crate::store::AuditEntry {
                    at: Utc::now(),
                    user,
                    action,
                    job,
                    detail,
                };
                if let Err(e) = self.store.record_audit(&entry) {
                    self.notice(&format!("cannot write the audit trail: {e}"));
                }
            }
            Record::History { job, limit, reply } => {
                self.write(batch);
                let runs = self
                    .store
                    .history(&job, limit)
                    .map(|runs| runs.iter().map(super::run_summary).collect())
                    .map_err(|e| ActionError(format!("cannot read the history of {job}: {e}")));
                let _ = reply.send(runs);
            }
            Record::Flush(done) => {
                self.write(batch);
                let _ = done.send(());
            }
        }
    }

    fn answer(&self, ack: Option<Ack>, result: Result<(), String>, what: &str) {
        if let Err(e) = &result {
            self.notice(&format!("{what} was not saved: {e}"));
        }
        if let Some(ack) = ack {
            let _ = ack.send(result);
        }
    }

    fn write(&mut self, batch: &mut Batch) {
        if !batch.is_pending() {
            return;
        }
        let live: Vec<LiveUpdate> = batch.live.drain().map(|(_, v)| v).collect();
        if let Err(e) = self.store.record(&batch.runs, &live) {
            self.notice(&format!(
                "cannot record {} runs in the state database: {e}",
                batch.runs.len()
            ));
        }
        batch.runs.clear();
    }

    fn retain_history(&mut self) {
        if self
            .last_retention
            .is_some_and(|at| at.elapsed() < RETENTION_EVERY)
        {
            return;
        }
        self.last_retention = Some(Instant::now());
        if let Err(e) = self
            .store
            .enforce_retention(self.keep_runs, self.keep_days, Utc::now())
        {
            self.notice(&format!("cannot trim the run history: {e}"));
        }
    }

    fn notice(&self, message: &str) {
        tracing::error!("{message}");
        let _ = self.events.send(JobEvent::Notice {
            message: message.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{RunResult, Trigger};

    fn run(job: &str) -> Record {
        let now = Utc::now();
        Record::Run(RunRecord {
            job: job.into(),
            scheduled: now,
            started: now,
            duration: Duration::ZERO,
            result: RunResult::Ok,
            error: None,
            logs: Vec::new(),
            trigger: Trigger::Schedule,
            skip: None,
        })
    }

    /// An offer never waits: past the queue's capacity the record comes back (for the
    /// scheduler's outbox), and once the recorder is gone it says so.
    #[test]
    fn an_offer_to_a_full_queue_gives_the_record_back() {
        let (queue, inbox) = mpsc::channel(2);
        let recorder = Recorder { queue };
        assert!(matches!(recorder.offer(run("a")), Offer::Taken));
        assert!(matches!(recorder.offer(run("b")), Offer::Taken));
        match recorder.offer(run("c")) {
            Offer::Full(Record::Run(back)) => assert_eq!(back.job, "c"),
            _ => panic!("a full queue took the record"),
        }
        drop(inbox);
        assert!(matches!(recorder.offer(run("d")), Offer::Gone));
    }

    /// More records than the queue holds, sent faster than they are written: the sender waits
    /// instead of dropping any, and every one is stored.
    #[test]
    fn a_flood_past_the_queue_waits_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let (events, _) = broadcast::channel(16);
        let (recorder, thread) =
            Recorder::start(Store::open(&path).unwrap(), 1_000_000, 30, events).unwrap();
        let now = Utc::now();
        let count = 2 * QUEUE_CAPACITY + 5_000;
        for i in 0..count {
            assert!(recorder.blocking_send(Record::Run(RunRecord {
                job: format!("job-{}", i % 3),
                scheduled: now,
                started: now,
                duration: Duration::from_micros(5),
                result: RunResult::Ok,
                error: None,
                logs: Vec::new(),
                trigger: Trigger::Schedule,
                skip: None,
            })));
        }
        drop(recorder);
        thread.join().unwrap();
        let store = Store::open_read_only(&path).unwrap();
        let stored: usize = (0..3)
            .map(|j| {
                store
                    .history(&format!("job-{j}"), usize::MAX)
                    .unwrap()
                    .len()
            })
            .sum();
        assert_eq!(stored, count);
    }
}
