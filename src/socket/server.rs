//! The control socket server: accepts local clients, checks who they are, and turns their
//! requests into scheduler [`Command`]s. One task per client; a client that sends garbage,
//! oversized lines or stops reading only ever hurts itself.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::control::{Client, Response};
use crate::users;

mod lines;
mod session;

use lines::Progress;
use session::Session;

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
pub async fn serve(listener: UnixListener, client: Client, access: Access) {
    let access = Arc::new(access);
    let service_uid = users::own_uid();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("control socket accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if client.is_closed() {
            return;
        }
        let client = client.clone();
        let access = access.clone();
        tokio::spawn(async move {
            converse(stream, client, &access, service_uid).await;
        });
    }
}

/// Removes the socket file (at shutdown).
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Serves one connection: who it is, then its requests, until it closes or is dropped.
async fn converse(stream: UnixStream, client: Client, access: &Access, service_uid: u32) {
    let (uid, gid) = match stream.peer_cred() {
        Ok(cred) => (cred.uid(), cred.gid()),
        Err(e) => {
            tracing::warn!("control socket: cannot read the peer's credentials: {e}");
            return;
        }
    };
    let user = users::user_name(uid);
    let role = super::peers::role_of(
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
        let line = Response::error(
            None,
            format!(
                "user {user} may not use this jobtop service: expected the service's own user, root, or a member of service.operators / service.viewers"
            ),
        )
        .to_line();
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
        client: client.acting_as(Some(user.clone())),
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

/// How long a finished session may take to deliver what it queued.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
