//! The worker pool: `service.workers` threads, each owning one [`JobRunner`] (a reused Luau
//! state), taking runs from a shared queue. Lua never runs on the async runtime.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use chrono::{DateTime, Utc};

use crate::job::Trigger;
use crate::runtime::{JobRunner, RunOutcome, RunRequest, ScriptCache};

use super::timers::JobId;

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

/// The threads and the queue that feeds them.
pub struct WorkerPool {
    queue: Option<std_mpsc::Sender<Work>>,
    threads: Vec<tokio::task::JoinHandle<()>>,
}

impl WorkerPool {
    /// Starts `count` workers that send finished runs to `done`. Must be called on a tokio
    /// runtime: the workers are its blocking threads, so a paused test clock does not jump
    /// ahead while a run is going.
    pub fn start(
        count: usize,
        cache: &Arc<ScriptCache>,
        done: &mpsc::UnboundedSender<Done>,
    ) -> WorkerPool {
        let (queue, inbox) = std_mpsc::channel::<Work>();
        let inbox = Arc::new(Mutex::new(inbox));
        let mut threads = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let inbox = inbox.clone();
            let cache = cache.clone();
            let done = done.clone();
            threads.push(tokio::task::spawn_blocking(move || {
                work(&inbox, cache, &done);
            }));
        }
        WorkerPool {
            queue: Some(queue),
            threads,
        }
    }

    /// Queues a run; it starts as soon as a worker is free.
    pub fn submit(&self, work: Work) -> bool {
        self.queue.as_ref().is_some_and(|q| q.send(work).is_ok())
    }

    /// Lets the workers finish what they hold, then waits for them.
    pub async fn stop(&mut self) {
        self.queue = None;
        for thread in self.threads.drain(..) {
            let _ = thread.await;
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        // Closing the queue ends every worker loop; they are not joined here so that a drop
        // on the async runtime never blocks it.
        self.queue = None;
    }
}

fn work(
    inbox: &Mutex<std_mpsc::Receiver<Work>>,
    cache: Arc<ScriptCache>,
    done: &mpsc::UnboundedSender<Done>,
) {
    let mut runner = JobRunner::new(cache, Vec::new());
    loop {
        let next = inbox.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(Work {
            job,
            run_id,
            name,
            trigger,
            request,
        }) = next
        else {
            return;
        };
        let outcome = runner.run(&request);
        if done
            .send(Done {
                job,
                run_id,
                name,
                trigger,
                scheduled: request.scheduled,
                outcome,
            })
            .is_err()
        {
            return;
        }
    }
}
