//! The client side of the control socket: the live CLI and the attached dashboard.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::protocol::{PROTOCOL, Request, Response};
use crate::control::{ActionError, Command, JobEvent, Snapshot, Subscription};

/// Why no conversation with a service could start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Nothing listens on the socket (no socket file, or a stale one).
    #[error("no jobtop service is running on {0}")]
    NotRunning(String),
    /// The service refused us (not allowed, another protocol version).
    #[error("the jobtop service refused the connection: {0}")]
    Refused(String),
    /// Something else went wrong.
    #[error("cannot talk to the jobtop service on {path}: {source}")]
    Io {
        /// The socket.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
}

/// A greeted connection to a service.
pub struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
    next_id: u64,
    /// What the service said about itself and us (`pid`, `user`, `role`).
    pub hello: Value,
}

/// Connects to the service on `socket` and says hello.
pub async fn connect(socket: &Path) -> Result<Client, ConnectError> {
    let shown = socket.display().to_string();
    let stream = match UnixStream::connect(socket).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ConnectError::NotRunning(shown));
        }
        Err(source) => {
            return Err(ConnectError::Io {
                path: shown,
                source,
            });
        }
    };
    let (read, writer) = stream.into_split();
    let mut client = Client {
        lines: BufReader::new(read).lines(),
        writer,
        next_id: 1,
        hello: Value::Null,
    };
    match client.request(&Request::Hello { protocol: PROTOCOL }).await {
        Ok(hello) => client.hello = hello,
        Err(e) => return Err(ConnectError::Refused(e)),
    }
    Ok(client)
}

impl Client {
    /// Sends a request and waits for its response, passing over event lines.
    pub async fn request(&mut self, request: &Request) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let line = format!("{}\n", request.to_line(id));
        if let Err(e) = self.writer.write_all(line.as_bytes()).await {
            // A service that refuses us writes why and closes at once: read that first.
            if let Ok(Ok(Some(line))) =
                tokio::time::timeout(std::time::Duration::from_secs(1), self.lines.next_line())
                    .await
                && let Ok(response) = serde_json::from_str::<Response>(&line)
                && let Some(error) = response.error
            {
                return Err(error);
            }
            return Err(format!("the service closed the connection: {e}"));
        }
        loop {
            let line = match self.lines.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => return Err("the service closed the connection".into()),
                Err(e) => return Err(format!("reading from the service failed: {e}")),
            };
            let Ok(response) = serde_json::from_str::<Response>(&line) else {
                continue;
            };
            if response.id == Some(id) || response.id.is_none() {
                return if response.ok {
                    Ok(response.result)
                } else {
                    Err(response.error.unwrap_or_else(|| "unknown error".into()))
                };
            }
        }
    }
}

/// Runs one request against the service on `socket`, if one is running there: `None` when
/// no service listens (the caller then works offline).
pub fn call(socket: &Path, request: &Request) -> Option<Result<Value, String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        match connect(socket).await {
            Ok(mut client) => Some(client.request(request).await),
            Err(ConnectError::NotRunning(_)) => None,
            Err(e) => Some(Err(e.to_string())),
        }
    })
}

/// Facts about the service an attached dashboard shows.
#[derive(Debug, Clone)]
pub struct Attached {
    /// The service's process id.
    pub pid: u32,
    /// Whether we may only look.
    pub read_only: bool,
}

/// Attaches to the service on `socket`: returns a command sender that behaves like the
/// in-process scheduler's, so the dashboard does not know the difference. `Shutdown` only
/// closes the connection: quitting a dashboard never stops the service.
pub async fn attach(socket: &Path) -> Result<(mpsc::Sender<Command>, Attached), ConnectError> {
    let mut client = connect(socket).await?;
    let pid = client
        .hello
        .get("pid")
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0);
    let read_only = client.hello.get("role").and_then(Value::as_str) == Some("viewer");
    let first = client
        .request(&Request::Subscribe)
        .await
        .map_err(ConnectError::Refused)?;
    let snapshot: Snapshot =
        serde_json::from_value(first).map_err(|e| ConnectError::Refused(e.to_string()))?;
    let (commands, inbox) = mpsc::channel(64);
    tokio::spawn(bridge(client, snapshot, inbox));
    Ok((commands, Attached { pid, read_only }))
}

/// A reply waiting for its response line.
enum Pending {
    Text(oneshot::Sender<Result<String, ActionError>>),
    Reload(oneshot::Sender<Result<crate::control::ReloadSummary, ActionError>>),
    History(oneshot::Sender<Result<Vec<crate::control::RunSummary>, ActionError>>),
}

/// Owns the connection of an attached dashboard: commands out, responses and events in.
async fn bridge(client: Client, mut snapshot: Snapshot, mut inbox: mpsc::Receiver<Command>) {
    let Client {
        mut lines,
        mut writer,
        mut next_id,
        ..
    } = client;
    let (events, _) = broadcast::channel::<JobEvent>(16_384);
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    loop {
        tokio::select! {
            command = inbox.recv() => {
                let Some(command) = command else { return };
                let (request, waiting) = match command {
                    Command::Subscribe { reply } => {
                        let _ = reply.send(Subscription {
                            snapshot: snapshot.clone(),
                            events: events.subscribe(),
                        });
                        continue;
                    }
                    Command::Shutdown { reply } => {
                        let _ = reply.send(());
                        return;
                    }
                    Command::Reload { reply, .. } => (Request::Reload, Pending::Reload(reply)),
                    Command::Activate { job, reply, .. } => (Request::Activate { job }, Pending::Text(reply)),
                    Command::Cancel { job, reply, .. } => (Request::Cancel { job }, Pending::Text(reply)),
                    Command::Trigger { job, reply, .. } => (Request::Trigger { job }, Pending::Text(reply)),
                    Command::History { job, limit, reply } => (Request::History { job, limit }, Pending::History(reply)),
                };
                let id = next_id;
                next_id += 1;
                let line = format!("{}\n", request.to_line(id));
                if writer.write_all(line.as_bytes()).await.is_err() {
                    let _ = events.send(JobEvent::Notice { message: "lost the connection to the service".into() });
                    return;
                }
                pending.insert(id, waiting);
            }
            line = lines.next_line() => {
                let Ok(Some(line)) = line else {
                    let _ = events.send(JobEvent::Notice { message: "the service closed the connection".into() });
                    return;
                };
                let Ok(value) = serde_json::from_str::<Value>(&line) else { continue };
                if value.get("event").and_then(Value::as_str) == Some("snapshot") {
                    if let Some(fresh) = value.get("snapshot").and_then(|s| serde_json::from_value(s.clone()).ok()) {
                        snapshot = fresh;
                        for job in &snapshot.jobs {
                            let _ = events.send(JobEvent::Job { job: Box::new(job.clone()) });
                        }
                    }
                    continue;
                }
                if value.get("event").is_some() {
                    if let Ok(event) = serde_json::from_value::<JobEvent>(value) {
                        apply(&mut snapshot, &event);
                        let _ = events.send(event);
                    }
                    continue;
                }
                let Ok(response) = serde_json::from_value::<Response>(value) else { continue };
                let Some(waiting) = response.id.and_then(|id| pending.remove(&id)) else { continue };
                answer(waiting, &response);
            }
        }
    }
}

/// Keeps the bridge's snapshot current, so a dashboard that re-subscribes starts right.
fn apply(snapshot: &mut Snapshot, event: &JobEvent) {
    match event {
        JobEvent::Job { job } => match snapshot.jobs.iter_mut().find(|j| j.name == job.name) {
            Some(row) => *row = (**job).clone(),
            None => snapshot.jobs.push((**job).clone()),
        },
        JobEvent::Removed { name } => snapshot.jobs.retain(|j| &j.name != name),
        JobEvent::ReloadFailed { error } => snapshot.config_error = Some(error.clone()),
        JobEvent::Reloaded { .. } => snapshot.config_error = None,
        _ => {}
    }
}

fn answer(waiting: Pending, response: &Response) {
    fn decoded<T: serde::de::DeserializeOwned>(response: &Response) -> Result<T, ActionError> {
        if response.ok {
            serde_json::from_value(response.result.clone()).map_err(|e| ActionError(e.to_string()))
        } else {
            Err(ActionError(
                response
                    .error
                    .clone()
                    .unwrap_or_else(|| "unknown error".into()),
            ))
        }
    }
    match waiting {
        Pending::Text(reply) => {
            let _ = reply.send(decoded::<String>(response));
        }
        Pending::Reload(reply) => {
            let _ = reply.send(decoded(response));
        }
        Pending::History(reply) => {
            let _ = reply.send(decoded(response));
        }
    }
}
