//! One client's conversation: the hello, the role check on every request, the answers, and
//! the event stream once it subscribes.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncBufRead;
use tokio::sync::{Notify, mpsc};

use super::lines::{Line, Progress, queue_when_room, read_line};
use crate::control::protocol::{MAX_LINE, PROTOCOL, SNAPSHOT_EVERY};
use crate::control::{ActionError, Client, Hello, JobEvent, Request, Response, Role};

pub(super) struct Session {
    /// The scheduler, acting as this client's user.
    pub(super) client: Client,
    /// Everything to this client goes through this bounded queue.
    pub(super) out: mpsc::Sender<String>,
    pub(super) user: String,
    pub(super) role: Role,
    pub(super) greeted: bool,
    /// The task streaming events, once subscribed.
    pub(super) subscription: Option<tokio::task::JoinHandle<()>>,
    /// Told when the client's queue overflowed: the session ends and the client is dropped.
    pub(super) too_slow: Arc<Notify>,
    /// When the client last took bytes from us.
    pub(super) progress: Progress,
}

fn to_value(value: impl Serialize) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

impl Session {
    pub(super) async fn run<R: AsyncBufRead + Unpin>(&mut self, mut reader: R) {
        loop {
            let line = match read_line(&mut reader).await {
                Ok(Line::Text(line)) => line,
                Ok(Line::TooLong) => {
                    let message = format!(
                        "line longer than {MAX_LINE} bytes: expected one short JSON request per line"
                    );
                    if !self.send(&Response::error(None, message)) {
                        return;
                    }
                    continue;
                }
                Ok(Line::End) | Err(_) => return,
            };
            if line.trim().is_empty() {
                continue;
            }
            let (id, request) = Request::parse(&line);
            let keep_going = match request {
                Err(message) => self.send(&Response::error(id, message)),
                Ok(request) => self.handle(id, request).await,
            };
            if !keep_going {
                return;
            }
        }
    }

    /// Queues a response; false when the client is too slow or gone (it is then dropped).
    fn send(&self, response: &Response) -> bool {
        if self.out.try_send(response.to_line()).is_ok() {
            return true;
        }
        self.too_slow.notify_one();
        false
    }

    async fn handle(&mut self, id: Option<u64>, request: Request) -> bool {
        if let Request::Hello { protocol } = request {
            if protocol != PROTOCOL {
                let message =
                    format!("protocol version {protocol} is not spoken here: expected {PROTOCOL}");
                self.send(&Response::error(id, message));
                return false;
            }
            self.greeted = true;
            let hello = Hello {
                protocol: PROTOCOL,
                pid: std::process::id(),
                user: self.user.clone(),
                role: self.role,
            };
            return match to_value(hello) {
                Ok(hello) => self.send(&Response::ok(id, hello)),
                Err(e) => self.send(&Response::error(id, e)),
            };
        }
        if !self.greeted {
            let message = format!(
                "no hello yet: expected {{\"op\":\"hello\",\"protocol\":{PROTOCOL}}} as the first line"
            );
            self.send(&Response::error(id, message));
            return false;
        }
        if request.is_action() && self.role == Role::Viewer {
            let message = format!(
                "user {} is a viewer (service.viewers): viewers may list and subscribe, not act",
                self.user
            );
            return self.send(&Response::error(id, message));
        }
        let response = match self.answer(request).await {
            Ok(value) => Response::ok(id, value),
            Err(message) => Response::error(id, message),
        };
        self.send(&response)
    }

    async fn answer(&mut self, request: Request) -> Result<Value, String> {
        let failed = |e: ActionError| e.0;
        if let Some((verb, job)) = request.as_act() {
            return self
                .client
                .act(verb, job)
                .await
                .map(Value::String)
                .map_err(failed);
        }
        match request {
            Request::Hello { .. } => Ok(Value::Null),
            Request::Ping => Ok(Value::from("pong")),
            Request::List => to_value(self.client.list().await.map_err(failed)?),
            Request::Snapshot => to_value(self.client.snapshot().await.map_err(failed)?),
            Request::History { job, limit } => {
                to_value(self.client.history(&job, limit).await.map_err(failed)?)
            }
            Request::Reload => to_value(self.client.reload().await.map_err(failed)?),
            Request::Subscribe => self.subscribe().await,
            Request::NotifyTest { channel } => {
                to_value(self.client.notify_test(channel).await.map_err(failed)?)
            }
            Request::Activate { .. } | Request::Cancel { .. } | Request::Trigger { .. } => {
                Ok(Value::Null)
            }
        }
    }

    /// Starts streaming events to this client; the response carries the snapshot.
    async fn subscribe(&mut self) -> Result<Value, String> {
        if self.subscription.is_some() {
            return Err(
                "already subscribed on this connection: expected one subscribe per \
                        connection (open another for a second stream)"
                    .into(),
            );
        }
        let subscription = self.client.subscribe().await.map_err(|e| e.0)?;
        let snapshot = to_value(&subscription.snapshot)?;
        let out = self.out.clone();
        let too_slow = self.too_slow.clone();
        let client = self.client.clone();
        let progress = self.progress.clone();
        let mut events = subscription.events;
        self.subscription = Some(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(SNAPSHOT_EVERY);
            ticker.tick().await;
            loop {
                let line = tokio::select! {
                    event = events.recv() => match event {
                        Ok(event) => serde_json::to_string(&event).unwrap_or_default(),
                        // Fell behind: a fresh snapshot puts the client right again.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            match fresh_snapshot(&client).await {
                                Some(line) => line,
                                None => return,
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = ticker.tick() => match fresh_snapshot(&client).await {
                        Some(line) => line,
                        None => return,
                    },
                };
                // A burst (thousands of jobs due at the same moment) can fill the queue of a
                // client that does read: wait while it keeps reading. One that has read
                // nothing for a while is not reading (or gone): drop it rather than hold
                // events for it. Meanwhile the broadcast buffer keeps the events; if it
                // overflows, the client gets a fresh snapshot (Lagged above).
                let queued = match out.try_send(line) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(line)) => {
                        queue_when_room(&out, line, &progress).await
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                };
                if !queued {
                    too_slow.notify_one();
                    return;
                }
            }
        }));
        Ok(snapshot)
    }
}

/// The snapshot event line.
async fn fresh_snapshot(client: &Client) -> Option<String> {
    let snapshot = client.snapshot().await.ok()?;
    serde_json::to_string(&JobEvent::Snapshot {
        snapshot: Box::new(snapshot),
    })
    .ok()
}
