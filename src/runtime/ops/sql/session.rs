//! Connections as the worker threads keep them: each connection lives on a thread of its own
//! (a [`Session`]), and each worker thread keeps its sessions in a pool of its own, one per
//! database, reused run after run.
//!
//! Why a thread per connection: the drivers block, and a query must never outlive the run.
//! The run's thread hands the statement over and waits for the answer in slices of [`POLL`],
//! watching the run's stop flag and deadline. When the run is stopped (timeout, abort,
//! shutdown) it cancels the statement on the server ([`Canceller`]: PostgreSQL's cancel
//! request, MySQL's `KILL QUERY`, `SQLite`'s interrupt) and gives the connection up (it ends on
//! its own thread once the server lets go, and the server rolls back whatever it had open).
//! So the call returns within about one [`POLL`] of the deadline or the abort, and the run
//! ends then.
//!
//! A session whose connection failed, or that was given up, is not put back; one that sat
//! idle for more than [`PING_AFTER`] is pinged before it is used, and replaced when the ping
//! fails (a server restarted between two runs). So a broken connection costs one failed call
//! at most, never every run after it.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::backend::{Answer, Canceller, Caps, DbError, Statement, connect};
use crate::config::Database;
use crate::runtime::limits::{RunControl, StopReason};

/// How often the run's thread looks at its stop flag while a statement runs.
pub(super) const POLL: Duration = Duration::from_millis(10);
/// Idle time after which a pooled connection is checked before use.
const PING_AFTER: Duration = Duration::from_secs(1);

/// The run's limits, as every call needs them.
#[derive(Clone)]
pub(crate) struct Limits {
    pub control: RunControl,
    pub deadline: Instant,
}

impl Limits {
    /// Time left, or the reason there is none (setting `Timeout` when the deadline has just
    /// passed and the watchdog has not said so yet).
    fn remaining(&self) -> Result<Duration, StopReason> {
        if let Some(reason) = self.control.stopped() {
            return Err(reason);
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            self.control.stop(StopReason::Timeout);
            return Err(self.control.stopped().unwrap_or(StopReason::Timeout));
        }
        Ok(left)
    }
}

/// Why a call gave no answer.
pub(crate) enum Failure {
    /// The database said no, or the connection failed.
    Db(DbError),
    /// The run was stopped while it waited (the statement was cancelled on the server).
    Stopped(StopReason),
}

enum Request {
    Run(Statement, Caps, Duration),
    Ping,
}

enum Reply {
    Connected(Result<Canceller, DbError>),
    Ran(Result<Answer, DbError>),
    Pinged(bool),
}

/// One connection on its own thread.
pub(crate) struct Session {
    /// The database it is connected to, as it was defined when it connected.
    pub db: Arc<Database>,
    requests: Sender<Request>,
    replies: Receiver<Reply>,
    cancel: Option<Canceller>,
    last_used: Instant,
    /// Whether it must not be used again.
    broken: bool,
}

impl Session {
    /// Connects to `db` within the run's time left.
    fn open(db: &Arc<Database>, limits: &Limits) -> Result<Session, Failure> {
        let time = limits.remaining().map_err(Failure::Stopped)?;
        let (requests, inbox) = mpsc::channel::<Request>();
        let (outbox, replies) = mpsc::channel::<Reply>();
        let target = db.clone();
        std::thread::Builder::new()
            .name(format!("jobtop-db-{}", db.name))
            .spawn(move || serve(&target, time, &inbox, &outbox))
            .map_err(|e| {
                Failure::Db(DbError::connection(format!(
                    "cannot start a connection thread: {e}"
                )))
            })?;
        let mut session = Session {
            db: db.clone(),
            requests,
            replies,
            cancel: None,
            last_used: Instant::now(),
            broken: false,
        };
        match session.wait(limits)? {
            Reply::Connected(Ok(cancel)) => {
                session.cancel = Some(cancel);
                Ok(session)
            }
            Reply::Connected(Err(e)) => Err(Failure::Db(e)),
            _ => Err(Failure::Db(DbError::connection(
                "the connection answered out of turn",
            ))),
        }
    }

    /// Runs `statement` within the run's limits.
    pub fn run(&mut self, statement: Statement, limits: &Limits) -> Result<Answer, Failure> {
        let time = limits.remaining().map_err(Failure::Stopped)?;
        let caps = Caps::of(&self.db);
        self.send(Request::Run(statement, caps, time))?;
        match self.wait(limits)? {
            Reply::Ran(Ok(answer)) => Ok(answer),
            Reply::Ran(Err(e)) => {
                // A broken connection's thread has ended (a result over the caps was stopped
                // on the server by the driver's side, or its socket closed).
                self.broken |= e.broken;
                Err(Failure::Db(e))
            }
            _ => {
                self.broken = true;
                Err(Failure::Db(DbError::connection(
                    "the connection answered out of turn",
                )))
            }
        }
    }

    /// Whether the connection still answers.
    fn ping(&mut self, limits: &Limits) -> Result<bool, Failure> {
        self.send(Request::Ping)?;
        match self.wait(limits)? {
            Reply::Pinged(alive) => Ok(alive),
            _ => Ok(false),
        }
    }

    fn send(&mut self, request: Request) -> Result<(), Failure> {
        self.last_used = Instant::now();
        self.requests.send(request).map_err(|_| {
            self.broken = true;
            Failure::Db(DbError::connection("the connection's thread has ended"))
        })
    }

    /// Waits for the connection's reply, giving way to the run's deadline and abort.
    fn wait(&mut self, limits: &Limits) -> Result<Reply, Failure> {
        loop {
            match self.replies.recv_timeout(POLL) {
                Ok(reply) => {
                    self.last_used = Instant::now();
                    return Ok(reply);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.broken = true;
                    return Err(Failure::Db(DbError::connection(
                        "the connection's thread ended without an answer",
                    )));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(reason) = limits.remaining() {
                        self.give_up();
                        return Err(Failure::Stopped(reason));
                    }
                }
            }
        }
    }

    /// Cancels the statement in progress and gives the connection up. It is never reused:
    /// a cancel sent as the statement finished on its own could still land on the next
    /// statement of that connection (both PostgreSQL's cancel request and `KILL QUERY` act on
    /// whatever the session runs when they arrive). Its thread ends once the server lets go
    /// of the statement, and the server rolls back whatever it had open.
    fn give_up(&mut self) {
        self.broken = true;
        if let Some(cancel) = &self.cancel {
            cancel();
        }
    }
}

/// The connection's thread: connect, then answer requests until the session is dropped.
fn serve(db: &Database, time: Duration, inbox: &Receiver<Request>, outbox: &Sender<Reply>) {
    let mut conn = match connect(db, time) {
        Ok((conn, cancel)) => {
            if outbox.send(Reply::Connected(Ok(cancel))).is_err() {
                return;
            }
            conn
        }
        Err(e) => {
            let _ = outbox.send(Reply::Connected(Err(e)));
            return;
        }
    };
    while let Ok(request) = inbox.recv() {
        let reply = match request {
            Request::Run(statement, caps, time) => {
                let result = conn.run(&statement, caps, time);
                let broken = result.as_ref().is_err_and(|e| e.broken);
                if outbox.send(Reply::Ran(result)).is_err() || broken {
                    return;
                }
                continue;
            }
            Request::Ping => Reply::Pinged(conn.ping()),
        };
        if outbox.send(reply).is_err() {
            return;
        }
    }
}

thread_local! {
    /// This worker thread's idle sessions, at most one per database.
    static POOL: RefCell<Vec<Session>> = const { RefCell::new(Vec::new()) };
}

/// A session for `db`: this thread's pooled one when it is still good, else a new one.
pub(super) fn checkout(db: &Arc<Database>, limits: &Limits) -> Result<Session, Failure> {
    let pooled = POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let at = pool.iter().position(|s| s.db.name == db.name)?;
        Some(pool.swap_remove(at))
    });
    if let Some(mut session) = pooled {
        // A database redefined by a reload gets a new connection.
        if *session.db == **db {
            let fresh = session.last_used.elapsed() < PING_AFTER;
            if fresh || session.ping(limits)? {
                return Ok(session);
            }
        }
    }
    Session::open(db, limits)
}

/// Puts `session` back for the next call on this thread, unless it is broken.
pub(super) fn checkin(session: Session) {
    if session.broken {
        return;
    }
    POOL.with(|pool| pool.borrow_mut().push(session));
}
