//! Prometheus metrics (docs/alerts.md#metrics): a subscriber of the scheduler's events that
//! keeps the families of [`families`], served on `service.metrics` ([`http`]) and written to
//! `service.metrics_textfile` ([`textfile`]). Both are off unless configured.

mod exposition;
mod families;
mod http;
mod textfile;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::control::Client;
use crate::notify::Failures;

pub use exposition::{CONTENT_TYPE, encode};
pub use families::Families;

/// The running exporter: [`finish`](Exporter::finish) it at shutdown.
pub struct Exporter {
    /// The subscriber: it ends by itself when the scheduler's events end.
    follow: Option<tokio::task::JoinHandle<()>>,
    /// The listener and the textfile writer.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    families: Arc<Families>,
    textfile: Option<PathBuf>,
}

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen for metrics on {address}: {source}: expected an address of this host with a free port"
)]
pub struct BindError {
    address: SocketAddr,
    source: std::io::Error,
}

impl Exporter {
    /// Starts following `client`'s events, serving `listen` and writing `textfile` if set.
    pub async fn start(
        client: Client,
        early: Option<broadcast::Receiver<crate::control::JobEvent>>,
        failures: &Failures,
        listen: Option<SocketAddr>,
        textfile: Option<PathBuf>,
    ) -> Result<Exporter, BindError> {
        let listener = match listen {
            Some(address) => Some(
                tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|source| BindError { address, source })?,
            ),
            None => None,
        };
        let subscription = client.subscribe().await.ok();
        let started = subscription
            .as_ref()
            .map_or_else(chrono::Utc::now, |s| s.snapshot.started);
        let families = Arc::new(Families::new(failures, started));
        let mut tasks = Vec::new();
        let follow = subscription.map(|subscription| {
            families.load(&subscription.snapshot);
            // Events from before the first job (the start's skips) and on, when kept; the
            // snapshot's rows came later, but rows only ever replace what they say.
            let events = early.unwrap_or(subscription.events);
            tokio::spawn(follow(client, events, families.clone()))
        });
        if let Some(listener) = listener {
            tasks.push(tokio::spawn(http::serve(listener, families.clone())));
        }
        if let Some(path) = textfile.clone() {
            tasks.push(tokio::spawn(write_every(path, families.clone())));
        }
        Ok(Exporter {
            follow,
            tasks,
            families,
            textfile,
        })
    }

    /// Stops serving once the scheduler has stopped; the textfile gets the final figures.
    pub async fn finish(self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(follow) = self.follow {
            // The last events are still in the channel: let it take them.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), follow).await;
        }
        if let Some(path) = self.textfile {
            let families = self.families.clone();
            let _ = tokio::task::spawn_blocking(move || write_logged(&path, &families)).await;
        }
    }
}

async fn follow(
    client: Client,
    mut events: broadcast::Receiver<crate::control::JobEvent>,
    families: Arc<Families>,
) {
    loop {
        match events.recv().await {
            Ok(event) => families.on_event(&event),
            Err(broadcast::error::RecvError::Lagged(_)) => match client.subscribe().await {
                // Gauges heal from the new snapshot; counters miss what was skipped.
                Ok(again) => {
                    families.load(&again.snapshot);
                    events = again.events;
                }
                Err(_) => return,
            },
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn write_every(path: PathBuf, families: Arc<Families>) {
    let mut every = tokio::time::interval(textfile::EVERY);
    loop {
        every.tick().await;
        let path = path.clone();
        let families = families.clone();
        let _ = tokio::task::spawn_blocking(move || write_logged(&path, &families)).await;
    }
}

fn write_logged(path: &std::path::Path, families: &Families) {
    if let Err(e) = textfile::write(path, families) {
        tracing::warn!("cannot write the metrics textfile {}: {e}", path.display());
    }
}
