//! The recorder: one thread that owns the state database and writes what the scheduler tells
//! it. Runs and live statuses are written in batches, one transaction per batch: what queued up
//! while the previous batch was written, and, when that is little, what comes in the next
//! [`BATCH_WINDOW`]. The queue is bounded, so a flood waits for the writer. Deactivations and
//! activations are committed before they are acknowledged.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, oneshot};

use crate::control::{ActionError, JobEvent, Reply, RunSummary};
use crate::fast_hash::FastMap;
use crate::store::{LiveUpdate, RunRecord, Store};

/// Most messages folded into one transaction.
const MAX_BATCH: usize = 10_000;

/// Most messages waiting for the recorder. When it falls this far behind (a flood of runs, a
/// slow disk), the scheduler waits for it rather than letting the queue grow without bound:
/// runs then start no faster than they are recorded.
const QUEUE_CAPACITY: usize = 2 * MAX_BATCH;

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

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    queue: std_mpsc::SyncSender<Record>,
}

impl Recorder {
    /// Starts the recorder thread on `store`; store errors are reported as notices on `events`.
    pub fn start(
        store: Store,
        keep_runs: u32,
        keep_days: u32,
        events: broadcast::Sender<JobEvent>,
    ) -> std::io::Result<(Recorder, std::thread::JoinHandle<()>)> {
        let (queue, inbox) = std_mpsc::sync_channel(QUEUE_CAPACITY);
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
                .serve(&inbox);
            })?;
        Ok((Recorder { queue }, thread))
    }

    /// Queues a message, waiting while the queue is full; false when the recorder is gone.
    pub fn send(&self, record: Record) -> bool {
        self.queue.send(record).is_ok()
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
    live: FastMap<String, LiveUpdate>,
}

impl Batch {
    /// Whether anything waits to be written.
    fn is_pending(&self) -> bool {
        !self.runs.is_empty() || !self.live.is_empty()
    }
}

impl RecorderThread {
    fn serve(mut self, inbox: &std_mpsc::Receiver<Record>) {
        let mut batch = Batch::default();
        while let Ok(first) = inbox.recv() {
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
        inbox: &std_mpsc::Receiver<Record>,
        batch: &mut Batch,
        most: usize,
    ) -> usize {
        let mut taken = 0;
        while taken < most {
            let Ok(record) = inbox.try_recv() else {
                break;
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
            assert!(recorder.send(Record::Run(RunRecord {
                job: format!("job-{}", i % 3),
                scheduled: now,
                started: now,
                duration: Duration::from_micros(5),
                result: RunResult::Ok,
                error: None,
                logs: Vec::new(),
                trigger: Trigger::Schedule,
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
