//! Notifications (docs/alerts.md): a task that follows the scheduler's events like any
//! subscriber, turns failures, recoveries, deactivations and skips into one JSON payload
//! ([`payload`]), and hands it to each channel's own delivery task ([`deliver`]).
//!
//! The scheduler never waits on any of it: events reach this task through the broadcast
//! channel the dashboard also reads, and each channel's queue is bounded, so a receiver that
//! is down or slow delays only its own notifications.

mod deliver;
mod payload;
mod send;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::{Channel, Config, NotifyEvent};
use crate::control::{ActionError, ChannelOutcome, Client, JobEvent, Reply};

pub use payload::{Payload, host_name};
pub use watch::Watcher;

/// The `channel` label of `jobtop_notify_failures_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    /// The channel's label (`webhook:host`, `command:name`, `email:to`).
    pub channel: String,
}

/// Failures to deliver, by channel (shared with the metrics).
pub type Failures = Family<ChannelLabel, Counter>;

/// The running notifier: [`finish`](Notifier::finish) it after the scheduler stopped.
pub struct Notifier {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// What the notifier needs from the service.
pub struct Wiring {
    /// The scheduler.
    pub client: Client,
    /// The scheduler's events from before its first job, when it kept them
    /// (`SchedulerOptions::early_events`): then the start itself is told too.
    pub early_events: Option<broadcast::Receiver<JobEvent>>,
    /// The configuration as the scheduler runs it, updated at each reload.
    pub config: tokio::sync::watch::Receiver<Arc<Config>>,
    /// The scheduler's events, for notices of failed deliveries.
    pub notices: broadcast::WeakSender<JobEvent>,
    /// Where failures to deliver are counted.
    pub failures: Failures,
    /// `notify test` requests, handed over by the scheduler.
    pub tests: mpsc::UnboundedReceiver<(Option<usize>, Reply<Vec<ChannelOutcome>>)>,
}

impl Notifier {
    /// Starts following the scheduler.
    pub fn start(wiring: Wiring) -> Notifier {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(follow(wiring, stopped));
        Notifier { stop, task }
    }

    /// Stops taking events (after handling those already sent) and gives the queued
    /// notifications up to `grace` to go out.
    pub async fn finish(self, grace: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(grace, self.task).await.is_err() {
            tracing::warn!(
                "notifications still queued after the {} s grace period were dropped",
                grace.as_secs()
            );
        }
    }
}

/// The channels and their queues, started as they are first needed.
struct Channels {
    open: Vec<(
        Channel,
        mpsc::Sender<deliver::Item>,
        tokio::task::JoinHandle<()>,
    )>,
    config: tokio::sync::watch::Receiver<Arc<Config>>,
    failures: Failures,
    notices: Option<broadcast::WeakSender<JobEvent>>,
}

impl Channels {
    fn context(&self) -> deliver::Context {
        deliver::Context {
            config: self.config.clone(),
            failures: self.failures.clone(),
            notices: self.notices.clone(),
        }
    }

    /// Queues `item` for `channel`; a full queue drops it, counted as a failure.
    fn queue(&mut self, channel: &Channel, item: deliver::Item) {
        let index = match self.open.iter().position(|(c, _, _)| c == channel) {
            Some(index) => index,
            None => {
                let (tx, task) = deliver::start(channel.clone(), self.context());
                self.open.push((channel.clone(), tx, task));
                self.open.len() - 1
            }
        };
        if let Err(mpsc::error::TrySendError::Full(item)) = self.open[index].1.try_send(item) {
            let error = format!("its queue of {} is full", deliver::QUEUE);
            deliver::failed(channel, &item.payload, &error, &self.context());
            if let Some(outcome) = item.outcome {
                let _ = outcome.send(Err(error));
            }
        }
    }

    /// Sends `payload` to every channel of `job` that wants it.
    fn dispatch(&mut self, payload: Payload) {
        let config = self.config.borrow().clone();
        let channels = channels_of(&config, &payload.job);
        let payload = Arc::new(payload);
        for channel in channels.iter().filter(|c| c.wants(payload.event)) {
            self.queue(
                channel,
                deliver::Item {
                    payload: payload.clone(),
                    outcome: None,
                },
            );
        }
    }

    /// Queues a `test` notification for each of `chosen`; the receivers get the outcomes.
    fn test(
        &mut self,
        watcher: &Watcher,
        chosen: &[(usize, Channel)],
    ) -> Vec<oneshot::Receiver<Result<(), String>>> {
        let mut waiting = Vec::new();
        for (_, channel) in chosen {
            let mut payload = watcher.payload(NotifyEvent::Test, "jobtop-test", None);
            payload.error = Some("a test notification from jobtop notify test".into());
            let (outcome, result) = oneshot::channel();
            self.queue(
                channel,
                deliver::Item {
                    payload: Arc::new(payload),
                    outcome: Some(outcome),
                },
            );
            waiting.push(result);
        }
        waiting
    }

    /// Closes every queue and waits until each is delivered.
    async fn close(self) {
        for (_, tx, task) in self.open {
            drop(tx);
            let _ = task.await;
        }
    }
}

/// Every distinct channel of `config`, in file order: the service's, then the jobs' own. Their
/// numbers in `notify test` are their places here, from 1.
pub fn all_channels(config: &Config) -> Vec<Channel> {
    let mut all: Vec<Channel> = Vec::new();
    let own = config
        .jobs
        .iter()
        .filter_map(|j| j.notify.as_ref())
        .flatten();
    for channel in config.service.alerts.notify.iter().chain(own) {
        if !all.contains(channel) {
            all.push(channel.clone());
        }
    }
    all
}

/// The channels `notify test --channel N` means (all for `None`), numbered from 1; the error
/// says what is expected.
pub fn chosen_channels(
    config: &Config,
    channel: Option<usize>,
) -> Result<Vec<(usize, Channel)>, String> {
    let all = all_channels(config);
    if all.is_empty() {
        return Err(format!(
            "{} has no notification channels: expected service.notify or a job's notify list",
            config.file.display()
        ));
    }
    match channel {
        None => Ok(all
            .into_iter()
            .enumerate()
            .map(|(i, c)| (i + 1, c))
            .collect()),
        Some(n) if (1..=all.len()).contains(&n) => Ok(vec![(n, all[n - 1].clone())]),
        Some(n) => Err(format!(
            "no channel {n}: expected a number from 1 to {}",
            all.len()
        )),
    }
}

/// The channels of `job`: its own `notify:`, else the service's.
pub fn channels_of<'c>(config: &'c Config, job: &str) -> &'c [Channel] {
    config
        .jobs
        .iter()
        .find(|j| j.name == job)
        .and_then(|j| j.notify.as_deref())
        .unwrap_or(&config.service.alerts.notify)
}

async fn follow(wiring: Wiring, mut stopped: oneshot::Receiver<()>) {
    let mut channels = Channels {
        open: Vec::new(),
        config: wiring.config,
        failures: wiring.failures,
        notices: Some(wiring.notices),
    };
    let host = host_name();
    let (mut events, mut watcher) = match wiring.early_events {
        // Every event since before the first job was added: the rows tell the watcher what
        // it needs to know, and the skips of the start are told like any other.
        Some(events) => {
            let file = channels.config.borrow().file.clone();
            (events, Watcher::empty(host, &file))
        }
        None => {
            let Ok(subscription) = wiring.client.subscribe().await else {
                return;
            };
            let watcher = Watcher::new(&subscription.snapshot, host);
            (subscription.events, watcher)
        }
    };
    let mut tests = wiring.tests;
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            Some((channel, reply)) = tests.recv() => {
                let config = channels.config.borrow().clone();
                match chosen_channels(&config, channel) {
                    Ok(chosen) => {
                        let waiting = channels.test(&watcher, &chosen);
                        tokio::spawn(async move {
                            let _ = reply.send(Ok(outcomes(&chosen, waiting).await));
                        });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(ActionError(e)));
                    }
                }
                continue;
            }
            _ = &mut stopped => {
                // Whatever the scheduler sent before it stopped still counts.
                while let Ok(event) = events.try_recv() {
                    for payload in watcher.on_event(&event) {
                        channels.dispatch(payload);
                    }
                }
                break;
            }
        };
        match event {
            Ok(event) => {
                for payload in watcher.on_event(&event) {
                    channels.dispatch(payload);
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    "notifications fell {missed} events behind the scheduler; some may be missing"
                );
                match wiring.client.subscribe().await {
                    Ok(again) => {
                        watcher.reset(&again.snapshot);
                        events = again.events;
                    }
                    Err(_) => break,
                }
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    channels.close().await;
}

/// Sends a `test` notification to each of `chosen` directly and returns each outcome, in
/// order (`jobtop notify test` without a running service).
pub async fn test_directly(
    config: Arc<Config>,
    chosen: &[(usize, Channel)],
) -> Vec<ChannelOutcome> {
    let (_keep, receiver) = tokio::sync::watch::channel(config.clone());
    let watcher = Watcher::new(
        &crate::control::Snapshot {
            config_file: config.file.clone(),
            pid: std::process::id(),
            started: chrono::Utc::now(),
            jobs: Vec::new(),
            config_error: None,
        },
        host_name(),
    );
    let mut open = Channels {
        open: Vec::new(),
        config: receiver,
        failures: Failures::default(),
        notices: None,
    };
    let waiting = open.test(&watcher, chosen);
    let results = outcomes(chosen, waiting).await;
    open.close().await;
    results
}

/// Each channel's outcome, as it comes.
async fn outcomes(
    chosen: &[(usize, Channel)],
    waiting: Vec<oneshot::Receiver<Result<(), String>>>,
) -> Vec<ChannelOutcome> {
    let mut results = Vec::new();
    for ((number, channel), result) in chosen.iter().zip(waiting) {
        let result = result
            .await
            .unwrap_or_else(|_| Err("the delivery task stopped".into()));
        results.push(ChannelOutcome {
            number: *number,
            channel: channel.label.clone(),
            error: result.err(),
        });
    }
    results
}
