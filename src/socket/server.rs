//! The control socket server: accepts local clients, checks who they are, and turns their
//! requests into scheduler [`Command`]s. One task per client; a client that sends garbage,
//! oversized lines or stops reading only ever hurts itself.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::peers::{self, Role};
use super::protocol::{
    MAX_LINE, PROTOCOL, Request, SNAPSHOT_EVERY, error_line, ok_line, parse_request, snapshot_line,
};
use crate::commands::list::list_json;
use crate::control::{ActionError, Command};

/// Lines queued for a client before it counts as too slow and is dropped.
const CLIENT_QUEUE: usize = 4096;

/// Who may connect, beyond the service's own user and root.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Members may act.
    pub operators: Option<String>,
    /// Members may only look.
    pub viewers: Option<String>,
}

/// Binds the socket at `path`, replacing a stale file left by a crashed service (the caller
/// holds the state directory lock, so no live service can own that file).
///
/// Without `service.operators` / `service.viewers` the socket is 0600 in a 0700 directory:
/// only the service's user (and root) reach it. With them, other users must be able to
/// connect, so the directory becomes 0711 (enter, not list) and the socket 0666, and the
/// peer credential check decides who may do what; the database and log stay 0600.
pub fn bind(path: &Path, access: &Access) -> std::io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!("removed a stale control socket at {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    let shared = access.operators.is_some() || access.viewers.is_some();
    let (dir_mode, socket_mode) = if shared {
        (0o711, 0o666)
    } else {
        (0o700, 0o600)
    };
    std::fs::set_permissions(path, PermissionsExt::from_mode(socket_mode))?;
    if let Some(dir) = path.parent() {
        std::fs::set_permissions(dir, PermissionsExt::from_mode(dir_mode))?;
        for private in [
            "state.db",
            "state.db-wal",
            "state.db-shm",
            "jobtop.log",
            "lock",
        ] {
            let file = dir.join(private);
            if file.exists() {
                std::fs::set_permissions(&file, PermissionsExt::from_mode(0o600))?;
            }
        }
    }
    Ok(listener)
}

/// Accepts clients until the scheduler goes away.
pub async fn serve(listener: UnixListener, commands: mpsc::Sender<Command>, access: Access) {
    let access = Arc::new(access);
    let service_uid = peers::own_uid().unwrap_or(u32::MAX);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("control socket accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if commands.is_closed() {
            return;
        }
        let commands = commands.clone();
        let access = access.clone();
        tokio::spawn(async move {
            client(stream, commands, &access, service_uid).await;
        });
    }
}

/// Removes the socket file (at shutdown).
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

async fn client(
    stream: UnixStream,
    commands: mpsc::Sender<Command>,
    access: &Access,
    service_uid: u32,
) {
    let (uid, gid) = match stream.peer_cred() {
        Ok(cred) => (cred.uid(), cred.gid()),
        Err(e) => {
            tracing::warn!("control socket: cannot read the peer's credentials: {e}");
            return;
        }
    };
    let user = peers::user_name(uid);
    let role = peers::role_of(
        uid,
        gid,
        service_uid,
        access.operators.as_deref(),
        access.viewers.as_deref(),
    );
    let (read, mut write) = stream.into_split();
    let Some(role) = role else {
        tracing::warn!(
            user,
            "control socket: refused a user who is neither operator nor viewer"
        );
        let line = error_line(
            None,
            &format!(
                "user {user} may not use this jobtop service: expected the service's own user, root, or a member of service.operators / service.viewers"
            ),
        );
        let _ = write.write_all(format!("{line}\n").as_bytes()).await;
        return;
    };
    // Everything to this client goes through one bounded queue: a client that stops reading
    // fills it and is dropped, and nobody else waits for it.
    let (out, mut queue) = mpsc::channel::<String>(CLIENT_QUEUE);
    let progress = Progress::new();
    let written = progress.clone();
    let writer = tokio::spawn(async move {
        while let Some(mut line) = queue.recv().await {
            line.push('\n');
            // In pieces, so that a multi-megabyte snapshot shows progress as it goes.
            for piece in line.as_bytes().chunks(64 * 1024) {
                if write.write_all(piece).await.is_err() {
                    return;
                }
                written.made();
            }
        }
    });
    let too_slow = Arc::new(tokio::sync::Notify::new());
    let mut session = Session {
        commands,
        out,
        user,
        role,
        greeted: false,
        subscription: None,
        too_slow: too_slow.clone(),
        progress,
    };
    let dropped = tokio::select! {
        () = session.run(BufReader::new(read)) => false,
        () = too_slow.notified() => true,
    };
    if let Some(subscription) = session.subscription.take() {
        subscription.abort();
    }
    drop(session);
    if dropped {
        // It stopped reading: nothing queued would reach it anyway.
        tracing::info!("control socket: dropped a client that stopped reading");
        writer.abort();
    } else {
        // Let what was answered reach the client (a refusal, the responses to a client that
        // half-closed after sending its requests), but never wait long for it.
        let mut writer = writer;
        if tokio::time::timeout(FLUSH_WAIT, &mut writer).await.is_err() {
            writer.abort();
        }
    }
}

/// How long a subscriber with a full queue may read nothing before it counts as not reading
/// and is dropped. A client that reads, even one busy parsing a big snapshot, makes progress
/// well within this; a burst of events alone never gets it dropped.
const STALLED: std::time::Duration = std::time::Duration::from_secs(2);

/// When the writer of a client last got bytes out to it.
#[derive(Clone)]
struct Progress {
    base: std::time::Instant,
    last_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            base: std::time::Instant::now(),
            last_ms: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    fn made(&self) {
        let now = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long since the last progress.
    fn idle(&self) -> std::time::Duration {
        let last = self.last_ms.load(std::sync::atomic::Ordering::Relaxed);
        self.base
            .elapsed()
            .saturating_sub(std::time::Duration::from_millis(last))
    }
}

/// Queues `line` for a subscriber whose queue is full, waiting while the client still reads;
/// false when it has read nothing for [`STALLED`] (or is gone).
async fn queue_when_room(out: &mpsc::Sender<String>, line: String, progress: &Progress) -> bool {
    loop {
        match tokio::time::timeout(std::time::Duration::from_millis(100), out.reserve()).await {
            Ok(Ok(place)) => {
                place.send(line);
                return true;
            }
            Ok(Err(_)) => return false,
            Err(_) if progress.idle() >= STALLED => return false,
            Err(_) => {}
        }
    }
}

/// How long a finished session may take to deliver what it queued.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

struct Session {
    commands: mpsc::Sender<Command>,
    out: mpsc::Sender<String>,
    user: String,
    role: Role,
    greeted: bool,
    /// The task streaming events, once subscribed.
    subscription: Option<tokio::task::JoinHandle<()>>,
    /// Told when the client's queue overflowed: the session ends and the client is dropped.
    too_slow: Arc<tokio::sync::Notify>,
    /// When the client last took bytes from us.
    progress: Progress,
}

/// What reading one line gave.
enum Line {
    Text(String),
    TooLong,
    End,
}

/// Reads a line of at most [`MAX_LINE`] bytes; a longer one is consumed to its end and
/// reported, so one huge line costs memory only up to the cap.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() && !too_long {
                Line::End
            } else if too_long {
                Line::TooLong
            } else {
                Line::Text(String::from_utf8_lossy(&line).into_owned())
            });
        }
        let (chunk, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > MAX_LINE {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = found.unwrap_or(buf.len());
        reader.consume(used);
        if found.is_some() {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Text(String::from_utf8_lossy(&line).into_owned())
            });
        }
    }
}

impl Session {
    async fn run<R: AsyncBufRead + Unpin>(&mut self, mut reader: R) {
        loop {
            let line = match read_line(&mut reader).await {
                Ok(Line::Text(line)) => line,
                Ok(Line::TooLong) => {
                    let message = format!(
                        "line longer than {MAX_LINE} bytes: expected one short JSON request per line"
                    );
                    if !self.send(error_line(None, &message)) {
                        return;
                    }
                    continue;
                }
                Ok(Line::End) | Err(_) => return,
            };
            if line.trim().is_empty() {
                continue;
            }
            let (id, request) = parse_request(&line);
            let keep_going = match request {
                Err(message) => self.send(error_line(id, &message)),
                Ok(request) => self.handle(id, request).await,
            };
            if !keep_going {
                return;
            }
        }
    }

    /// Queues a line; false when the client is too slow or gone (it is then dropped).
    fn send(&self, line: String) -> bool {
        if self.out.try_send(line).is_ok() {
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
                self.send(error_line(id, &message));
                return false;
            }
            self.greeted = true;
            let hello = json!({
                "protocol": PROTOCOL,
                "pid": std::process::id(),
                "user": self.user,
                "role": self.role,
            });
            return self.send(ok_line(id, &hello));
        }
        if !self.greeted {
            let message = format!(
                "no hello yet: expected {{\"op\":\"hello\",\"protocol\":{PROTOCOL}}} as the first line"
            );
            self.send(error_line(id, &message));
            return false;
        }
        if request.is_action() && self.role == Role::Viewer {
            let message = format!(
                "user {} is a viewer (service.viewers): viewers may list and subscribe, not act",
                self.user
            );
            return self.send(error_line(id, &message));
        }
        let result = self.answer(request).await;
        let line = match result {
            Ok(value) => ok_line(id, &value),
            Err(message) => error_line(id, &message),
        };
        self.send(line)
    }

    async fn answer(&mut self, request: Request) -> Result<Value, String> {
        let by = Some(self.user.clone());
        match request {
            Request::Hello { .. } => Ok(Value::Null),
            Request::Ping => Ok(json!("pong")),
            Request::List => {
                let snapshot = self.snapshot().await?;
                Ok(Value::Array(snapshot.jobs.iter().map(list_json).collect()))
            }
            Request::Snapshot => {
                let snapshot = self.snapshot().await?;
                serde_json::to_value(snapshot).map_err(|e| e.to_string())
            }
            Request::History { job, limit } => {
                let runs = self
                    .ask(|reply| Command::History { job, limit, reply })
                    .await?;
                serde_json::to_value(runs).map_err(|e| e.to_string())
            }
            Request::Reload => {
                let summary = self.ask(|reply| Command::Reload { by, reply }).await?;
                serde_json::to_value(summary).map_err(|e| e.to_string())
            }
            Request::Activate { job } => self
                .ask(|reply| Command::Activate { job, by, reply })
                .await
                .map(Value::String),
            Request::Cancel { job } => self
                .ask(|reply| Command::Cancel { job, by, reply })
                .await
                .map(Value::String),
            Request::Trigger { job } => self
                .ask(|reply| Command::Trigger { job, by, reply })
                .await
                .map(Value::String),
            Request::Subscribe => self.subscribe().await,
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ActionError>>) -> Command,
    ) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| "the scheduler is shutting down".to_string())?;
        match answer.await {
            Ok(result) => result.map_err(|e| e.0),
            Err(_) => Err("the scheduler is shutting down".to_string()),
        }
    }

    async fn snapshot(&self) -> Result<crate::control::Snapshot, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Subscribe { reply })
            .await
            .map_err(|_| "the scheduler is shutting down".to_string())?;
        answer
            .await
            .map(|s| s.snapshot)
            .map_err(|_| "the scheduler is shutting down".to_string())
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
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Subscribe { reply })
            .await
            .map_err(|_| "the scheduler is shutting down".to_string())?;
        let subscription = answer
            .await
            .map_err(|_| "the scheduler is shutting down".to_string())?;
        let snapshot = serde_json::to_value(&subscription.snapshot).map_err(|e| e.to_string())?;
        let out = self.out.clone();
        let too_slow = self.too_slow.clone();
        let commands = self.commands.clone();
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
                            match fresh_snapshot(&commands).await {
                                Some(line) => line,
                                None => return,
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = ticker.tick() => match fresh_snapshot(&commands).await {
                        Some(line) => line,
                        None => return,
                    },
                };
                // A burst (thousands of jobs due at the same moment) can fill the queue of a
                // client that does read: wait while it keeps reading. One that has read
                // nothing for STALLED is not reading (or gone): drop it rather than hold
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

async fn fresh_snapshot(commands: &mpsc::Sender<Command>) -> Option<String> {
    let (reply, answer) = oneshot::channel();
    commands.send(Command::Subscribe { reply }).await.ok()?;
    answer.await.ok().map(|s| snapshot_line(&s.snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_capped() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\n{\"op\":\"ping\"}\n");
        let mut reader = BufReader::new(&input[..]);
        assert!(matches!(
            read_line(&mut reader).await.unwrap(),
            Line::TooLong
        ));
        match read_line(&mut reader).await.unwrap() {
            Line::Text(t) => assert_eq!(t, "{\"op\":\"ping\"}"),
            _ => panic!("expected the next line"),
        }
        assert!(matches!(read_line(&mut reader).await.unwrap(), Line::End));
    }
}
