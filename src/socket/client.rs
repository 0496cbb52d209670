//! The client side of the control socket: a connection to a running service, bridged into a
//! [`Client`], so the CLI and an attached dashboard use the same typed calls as the in-process
//! dashboard. One task per connection owns it: commands out (each request with its own id, so
//! several can be in flight), responses and events in.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc};

use crate::control::protocol::PROTOCOL;
use crate::control::{
    ActionError, Client, Hello, JobEvent, Reply, Request, Response, SchedulerCommand, Snapshot,
    Subscription,
};

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

/// A greeted connection: who the service is, and a client bridged over the connection. The
/// connection closes when every clone of the client is gone (or on `shutdown`).
pub struct Connection {
    /// What the service said about itself and us.
    pub hello: Hello,
    /// Typed calls over the connection.
    pub client: Client,
}

/// How many events an attached client may fall behind before it must take a new snapshot.
const EVENT_BUFFER: usize = 16_384;

/// Connects to the service on `socket` and says hello.
pub async fn connect(socket: &Path) -> Result<Connection, ConnectError> {
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
    let (read, write) = stream.into_split();
    over(read, write).await
}

/// Says hello over any byte stream that reaches a service (a Unix socket, or a pipe to
/// `jobtop dial-stdio` on another host) and bridges it into a client.
pub async fn over<R, W>(read: R, write: W) -> Result<Connection, ConnectError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut wire = Wire {
        lines: BufReader::new(read).lines(),
        writer: write,
        next_id: 1,
    };
    let hello = wire
        .hello()
        .await
        .map_err(ConnectError::Refused)
        .and_then(|v| {
            serde_json::from_value::<Hello>(v).map_err(|e| {
                ConnectError::Refused(format!("unreadable hello from the service: {e}"))
            })
        })?;
    let (commands, inbox) = mpsc::channel(64);
    tokio::spawn(bridge(wire, inbox));
    Ok(Connection {
        hello,
        client: Client::new(commands),
    })
}

/// Runs `call` against the service on `socket`, if one is running there: `None` when no
/// service listens (the caller then works offline). For the one-shot CLI.
pub fn with_service<T, F>(
    socket: &Path,
    call: impl FnOnce(Client) -> F,
) -> Option<Result<T, String>>
where
    F: Future<Output = Result<T, ActionError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        match connect(socket).await {
            Ok(connection) => Some(call(connection.client).await.map_err(|e| e.0)),
            Err(ConnectError::NotRunning(_)) => None,
            Err(e) => Some(Err(e.to_string())),
        }
    })
}

/// The two halves of a connection and its request ids.
struct Wire<R, W> {
    lines: Lines<BufReader<R>>,
    writer: W,
    next_id: u64,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Wire<R, W> {
    /// Sends a request; its id.
    async fn send(&mut self, request: &Request) -> std::io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let line = format!("{}\n", request.to_line(id));
        self.writer.write_all(line.as_bytes()).await?;
        Ok(id)
    }

    /// The hello exchange: the service's answer, or why it refused.
    async fn hello(&mut self) -> Result<Value, String> {
        let sent = self.send(&Request::Hello { protocol: PROTOCOL }).await;
        if let Err(e) = sent {
            // A service that refuses us writes why and closes at once: read that first.
            if let Ok(Ok(Some(line))) =
                tokio::time::timeout(Duration::from_secs(1), self.lines.next_line()).await
                && let Ok(response) = serde_json::from_str::<Response>(&line)
                && let Err(error) = response.into_result()
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
            if let Ok(response) = serde_json::from_str::<Response>(&line) {
                return response.into_result();
            }
        }
    }
}

/// A reply waiting for its response line.
enum Pending {
    Text(Reply<String>),
    Reload(Reply<crate::control::ReloadSummary>),
    History(Reply<Vec<crate::control::RunSummary>>),
    Snapshot(Reply<Snapshot>),
    NotifyTest(Reply<Vec<crate::control::ChannelOutcome>>),
    /// The first subscription on this connection; later ones are answered from the bridge's
    /// own copy of the table (a connection subscribes once).
    Subscribe(Vec<Reply<Subscription>>),
}

/// The bridge's view of the subscription on its connection.
enum Subscribed {
    No,
    Asked(u64),
    Yes(Snapshot),
}

/// Owns one connection: turns each command into a request and each response back into its
/// reply; keeps a copy of the table once subscribed, so that a dashboard that fell behind
/// gets a fresh snapshot without another subscription.
async fn bridge<R, W>(mut wire: Wire<R, W>, mut inbox: mpsc::Receiver<SchedulerCommand>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (events, _) = broadcast::channel::<JobEvent>(EVENT_BUFFER);
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut subscribed = Subscribed::No;
    let lost = loop {
        tokio::select! {
            command = inbox.recv() => {
                let Some(command) = command else { return };
                let (request, waiting) = match command {
                    SchedulerCommand::Shutdown { reply } => {
                        let _ = reply.send(());
                        return;
                    }
                    SchedulerCommand::Subscribe { reply } => match &subscribed {
                        Subscribed::Yes(snapshot) => {
                            let _ = reply.send(Ok(Subscription {
                                snapshot: snapshot.clone(),
                                events: events.subscribe(),
                            }));
                            continue;
                        }
                        Subscribed::Asked(id) => {
                            if let Some(Pending::Subscribe(waiting)) = pending.get_mut(id) {
                                waiting.push(reply);
                            }
                            continue;
                        }
                        Subscribed::No => (Request::Subscribe, Pending::Subscribe(vec![reply])),
                    },
                    SchedulerCommand::Snapshot { reply } => (Request::Snapshot, Pending::Snapshot(reply)),
                    SchedulerCommand::Reload { reply, .. } => (Request::Reload, Pending::Reload(reply)),
                    SchedulerCommand::Act { verb, job, reply, .. } => (Request::act(verb, job), Pending::Text(reply)),
                    SchedulerCommand::History { job, limit, reply } => (Request::History { job, limit }, Pending::History(reply)),
                    SchedulerCommand::NotifyTest { channel, reply } => (Request::NotifyTest { channel }, Pending::NotifyTest(reply)),
                };
                let is_subscribe = request == Request::Subscribe;
                match wire.send(&request).await {
                    Ok(id) => {
                        if is_subscribe {
                            subscribed = Subscribed::Asked(id);
                        }
                        pending.insert(id, waiting);
                    }
                    Err(e) => break format!("lost the connection to the service: {e}"),
                }
            }
            line = wire.lines.next_line() => {
                let line = match line {
                    Ok(Some(line)) => line,
                    Ok(None) => break "the service closed the connection".to_string(),
                    Err(e) => break format!("lost the connection to the service: {e}"),
                };
                let Ok(value) = serde_json::from_str::<Value>(&line) else { continue };
                if value.get("event").is_some() {
                    if let (Subscribed::Yes(snapshot), Ok(event)) =
                        (&mut subscribed, serde_json::from_value::<JobEvent>(value))
                    {
                        apply(snapshot, &event);
                        let _ = events.send(event);
                    }
                    continue;
                }
                let Ok(response) = serde_json::from_value::<Response>(value) else { continue };
                let Some(waiting) = response.id.and_then(|id| pending.remove(&id)) else { continue };
                if let Pending::Subscribe(replies) = waiting {
                    subscribed = match decoded::<Snapshot>(response) {
                        Ok(snapshot) => {
                            for reply in replies {
                                let _ = reply.send(Ok(Subscription {
                                    snapshot: snapshot.clone(),
                                    events: events.subscribe(),
                                }));
                            }
                            Subscribed::Yes(snapshot)
                        }
                        Err(error) => {
                            for reply in replies {
                                let _ = reply.send(Err(error.clone()));
                            }
                            Subscribed::No
                        }
                    };
                    continue;
                }
                answer(waiting, response);
            }
        }
    };
    let _ = events.send(JobEvent::Notice {
        message: lost.clone(),
    });
    for (_, waiting) in pending {
        refuse(waiting, &lost);
    }
}

/// Keeps the bridge's copy of the table current.
fn apply(snapshot: &mut Snapshot, event: &JobEvent) {
    match event {
        JobEvent::Job { job } => match snapshot.jobs.iter_mut().find(|j| j.name == job.name) {
            Some(row) => *row = (**job).clone(),
            None => snapshot.jobs.push((**job).clone()),
        },
        JobEvent::Removed { name } => snapshot.jobs.retain(|j| &j.name != name),
        JobEvent::ReloadFailed { error } => snapshot.config_error = Some(error.clone()),
        JobEvent::Reloaded { .. } => snapshot.config_error = None,
        JobEvent::Snapshot { snapshot: fresh } => *snapshot = (**fresh).clone(),
        JobEvent::Log { .. } | JobEvent::Finished { .. } | JobEvent::Notice { .. } => {}
    }
}

fn decoded<T: DeserializeOwned>(response: Response) -> Result<T, ActionError> {
    let value = response.into_result().map_err(ActionError)?;
    serde_json::from_value(value)
        .map_err(|e| ActionError(format!("unreadable answer from the service: {e}")))
}

fn answer(waiting: Pending, response: Response) {
    match waiting {
        Pending::Text(reply) => {
            let _ = reply.send(decoded(response));
        }
        Pending::Reload(reply) => {
            let _ = reply.send(decoded(response));
        }
        Pending::History(reply) => {
            let _ = reply.send(decoded(response));
        }
        Pending::Snapshot(reply) => {
            let _ = reply.send(decoded(response));
        }
        Pending::NotifyTest(reply) => {
            let _ = reply.send(decoded(response));
        }
        Pending::Subscribe(_) => {}
    }
}

/// Tells a waiting caller that its answer will not come.
fn refuse(waiting: Pending, why: &str) {
    let error = ActionError(why.to_string());
    match waiting {
        Pending::Text(reply) => {
            let _ = reply.send(Err(error));
        }
        Pending::Reload(reply) => {
            let _ = reply.send(Err(error));
        }
        Pending::History(reply) => {
            let _ = reply.send(Err(error));
        }
        Pending::Snapshot(reply) => {
            let _ = reply.send(Err(error));
        }
        Pending::NotifyTest(reply) => {
            let _ = reply.send(Err(error));
        }
        Pending::Subscribe(replies) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}
