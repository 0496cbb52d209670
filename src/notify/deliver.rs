//! One channel's delivery task: its own bounded queue, up to [`ATTEMPTS`] attempts with
//! backoff, at most one `failed` per job per [`FAILED_EVERY`], and every failure to deliver
//! logged, counted and shown. A slow channel delays only itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::payload::Payload;
use super::send::send;
use super::{ChannelLabel, Failures};
use crate::config::{Channel, Config, NotifyEvent};
use crate::control::JobEvent;

/// How many notifications may wait for one channel; more are dropped (and counted as failed).
pub const QUEUE: usize = 1024;

/// Attempts per notification.
pub const ATTEMPTS: u32 = 3;

/// The wait before the second attempt; it doubles for each one after.
const BACKOFF: Duration = Duration::from_secs(1);

/// A flapping job sends at most one `failed` per channel this often.
pub const FAILED_EVERY: Duration = Duration::from_secs(600);

/// A notification and, for `notify test`, who waits for its outcome.
pub struct Item {
    /// What to send.
    pub payload: Arc<Payload>,
    /// The outcome, for whoever waits.
    pub outcome: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

/// What a delivery task needs besides its queue.
pub struct Context {
    /// The current configuration (for `service.smtp`).
    pub config: watch::Receiver<Arc<Config>>,
    /// Failures to deliver, by channel.
    pub failures: Failures,
    /// Where a notice of a failure goes (the dashboard's flash line).
    pub notices: Option<broadcast::WeakSender<JobEvent>>,
}

/// Starts the task of `channel`; it ends when every sender of its queue is gone and the queue
/// is empty.
pub fn start(
    channel: Channel,
    context: Context,
) -> (mpsc::Sender<Item>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(run(channel, context, rx));
    (tx, task)
}

async fn run(channel: Channel, context: Context, mut queue: mpsc::Receiver<Item>) {
    // Per job: when its last `failed` went out, and how many were held back since.
    let mut last_failed: HashMap<String, (Instant, u64)> = HashMap::new();
    while let Some(item) = queue.recv().await {
        let mut payload = item.payload;
        if payload.event == NotifyEvent::Failed {
            let now = Instant::now();
            match last_failed.get_mut(&payload.job) {
                Some((at, held)) if now.duration_since(*at) < FAILED_EVERY => {
                    *held += 1;
                    continue;
                }
                Some((at, held)) => {
                    Arc::make_mut(&mut payload).suppressed = *held;
                    *at = now;
                    *held = 0;
                }
                None => {
                    last_failed.insert(payload.job.clone(), (now, 0));
                }
            }
        }
        let result = deliver(&channel, &payload, &context).await;
        if let Err(error) = &result {
            failed(&channel, &payload, error, &context);
        }
        if let Some(outcome) = item.outcome {
            let _ = outcome.send(result);
        }
    }
}

/// Up to [`ATTEMPTS`] attempts, with backoff between them; the last error.
async fn deliver(channel: &Channel, payload: &Payload, context: &Context) -> Result<(), String> {
    let mut wait = BACKOFF;
    let mut attempt = 1;
    loop {
        let smtp = context.config.borrow().service.alerts.smtp.clone();
        match send(&channel.target, payload, smtp.as_ref(), channel.timeout).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt >= ATTEMPTS => {
                return Err(format!("{error} (after {ATTEMPTS} attempts)"));
            }
            Err(error) => {
                tracing::info!(
                    channel = %channel.label,
                    job = %payload.job,
                    "notification attempt {attempt} failed: {error}; trying again in {} s",
                    wait.as_secs()
                );
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
        }
    }
}

/// Counts, logs and shows a notification that did not go out.
pub fn failed(channel: &Channel, payload: &Payload, error: &str, context: &Context) {
    context
        .failures
        .get_or_create(&ChannelLabel {
            channel: channel.label.clone(),
        })
        .inc();
    let message = format!(
        "notification {} of {} to {} failed: {error}",
        payload.event, payload.job, channel.label
    );
    tracing::warn!("{message}");
    if let Some(events) = context
        .notices
        .as_ref()
        .and_then(broadcast::WeakSender::upgrade)
    {
        let _ = events.send(JobEvent::Notice { message });
    }
}
