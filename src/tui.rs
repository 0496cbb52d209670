//! The dashboard: a live job table an operator drives from the keyboard.
//!
//! The loop below owns the terminal and the channels; `App` owns the state. Keys, job events,
//! replies and the clock all become `Message`s for `App::update`, which returns the commands to
//! send; the screen is drawn from `&App` only when something changed.

pub mod action;
pub mod app;
mod details;
mod format;
mod help;
pub mod keymap;
pub mod list;
mod log_view;
pub mod render;
mod table;
#[cfg(test)]
mod tests;
pub mod theme;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use chrono::Utc;
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt as _;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use self::action::{CommandRequest, JobVerb};
use self::app::{App, Message, Outcome};
use crate::control::{ActionError, Actor, Command, JobEvent, Reply, Subscription};

/// The least time between two redraws caused by job events: a burst of them costs at most
/// four frames a second. Keys, replies and the clock tick draw at once.
const EVENT_FRAME: Duration = Duration::from_millis(250);

/// How the dashboard is started.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    /// Draw without colours (`--no-color`); `NO_COLOR` in the environment does the same.
    pub no_color: bool,
    /// The configuration the scheduler runs, for messages.
    pub config_file: PathBuf,
    /// The pid of the service this dashboard is attached to; `None` when it runs in-process.
    pub attached_pid: Option<u32>,
    /// Only look: the action keys are refused and left out of the footer (`--read-only`, or
    /// attached as a viewer).
    pub read_only: bool,
}

/// Runs the dashboard until the operator quits; the caller then shuts the scheduler down.
pub async fn run(commands: mpsc::Sender<Command>, options: DashboardOptions) -> anyhow::Result<()> {
    // Subscribe before touching the terminal, so a dead scheduler is an ordinary error message.
    let subscription = subscribe(&commands).await.with_context(|| {
        format!(
            "cannot show the dashboard for {}",
            options.config_file.display()
        )
    })?;
    let color = !(options.no_color || theme::no_color_env());
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    // A panic inside a job run is caught and becomes an `error` result: it must not restore
    // (and so break) the terminal, nor print over the dashboard.
    crate::runtime::install_panic_hook();
    // Restores the terminal when this future ends in any way: return, error, or being dropped.
    // Panics are covered by the hook `try_init` installed.
    let _restore = RestoreOnDrop;
    let size = terminal.size().context("cannot read the terminal size")?;
    let mut app = App::new(
        subscription.snapshot,
        options.attached_pid,
        theme::Theme::new(color),
        (size.width, size.height),
        Utc::now(),
    );
    app.read_only = options.read_only;
    event_loop(&mut terminal, &mut app, &commands, subscription.events).await
}

struct RestoreOnDrop;

impl Drop for RestoreOnDrop {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// What the helper tasks tell the loop.
enum Internal {
    /// A message for `App`.
    Message(Message),
    /// A fresh subscription after the event receiver fell behind.
    Resubscribed(Subscription),
    /// The fresh subscription could not be had.
    ResubscribeFailed(String),
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    commands: &mpsc::Sender<Command>,
    mut events: broadcast::Receiver<JobEvent>,
) -> anyhow::Result<()> {
    let (internal_tx, mut internal_rx) = mpsc::unbounded_channel::<Internal>();
    let mut keys = EventStream::new();
    let actor: Actor = Some(operator());
    let mut resubscribing = false;
    let mut dirty = true;
    let mut urgent = true;
    let mut last_draw = Instant::now();
    loop {
        if dirty && (urgent || last_draw.elapsed() >= EVENT_FRAME) {
            // Every frame shows the time it is drawn at, so countdowns never run a second
            // behind after an event-driven redraw.
            app.update(Message::Tick(Utc::now()));
            app.refresh();
            terminal
                .draw(|frame| render::draw(frame, app))
                .context("cannot draw the dashboard")?;
            (dirty, urgent, last_draw) = (false, false, Instant::now());
        }
        let next_tick = next_second();
        let draw_at = last_draw + EVENT_FRAME;
        let mut request = None;
        tokio::select! {
            key = keys.next() => match key {
                Some(Ok(Event::Key(key))) if key.kind == KeyEventKind::Press => {
                    if let Some(action) = keymap::action_for(app.key_context(), key) {
                        request = app.update(action);
                        (dirty, urgent) = (true, true);
                    }
                }
                Some(Ok(Event::Resize(columns, rows))) => {
                    app.update(Message::Resize(columns, rows));
                    (dirty, urgent) = (true, true);
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error).context("cannot read the terminal"),
                None => return Ok(()),
            },
            event = events.recv() => match event {
                Ok(event) => {
                    app.update(event);
                    dirty = true;
                }
                Err(RecvError::Lagged(_)) => {
                    if !resubscribing {
                        resubscribing = true;
                        let (commands, internal) = (commands.clone(), internal_tx.clone());
                        tokio::spawn(async move {
                            let message = match subscribe(&commands).await {
                                Ok(subscription) => Internal::Resubscribed(subscription),
                                Err(error) => Internal::ResubscribeFailed(format!("{error:#}")),
                            };
                            let _ = internal.send(message);
                        });
                    }
                }
                Err(RecvError::Closed) => {
                    return Err(anyhow!(
                        "the scheduler stopped sending events, so the dashboard closed"
                    ));
                }
            },
            Some(internal) = internal_rx.recv() => {
                match internal {
                    Internal::Message(message) => {
                        app.update(message);
                    }
                    Internal::Resubscribed(subscription) => {
                        resubscribing = false;
                        events = subscription.events;
                        app.update(Message::Snapshot(subscription.snapshot));
                    }
                    Internal::ResubscribeFailed(error) => {
                        return Err(anyhow!("the dashboard fell behind and cannot catch up: {error}"));
                    }
                }
                (dirty, urgent) = (true, true);
            },
            () = tokio::time::sleep_until(next_tick) => {
                app.update(Message::Tick(Utc::now()));
                (dirty, urgent) = (true, true);
            },
            () = tokio::time::sleep_until(draw_at), if dirty => {}
        }
        if let Some(request) = request
            && dispatch(request, commands, &internal_tx, &actor)
        {
            return Ok(());
        }
    }
}

/// Just after the next whole second of the wall clock, so the header clock and the countdowns
/// change together with the operator's other clocks.
fn next_second() -> Instant {
    let into_second = Utc::now().timestamp_subsec_millis().min(999);
    Instant::now() + Duration::from_millis(u64::from(1_000 - into_second) + 5)
}

/// The Unix user, for the audit trail of activate, cancel and trigger.
/// The operator at this terminal: the Unix user of this process (not `$USER`, which anyone
/// can set), as the control socket would name them.
fn operator() -> String {
    crate::socket::peers::current_user()
}

async fn subscribe(commands: &mpsc::Sender<Command>) -> anyhow::Result<Subscription> {
    let (reply, answer) = oneshot::channel();
    commands
        .send(Command::Subscribe { reply })
        .await
        .map_err(|_| anyhow!("the scheduler is not running"))?;
    answer
        .await
        .map_err(|_| anyhow!("the scheduler did not answer the subscription"))
}

/// Sends one command and waits for its reply.
async fn ask<T>(
    commands: &mpsc::Sender<Command>,
    command: impl FnOnce(Reply<T>) -> Command,
) -> Result<T, ActionError> {
    let (reply, answer) = oneshot::channel();
    commands
        .send(command(reply))
        .await
        .map_err(|_| ActionError("the scheduler is not running".to_string()))?;
    answer
        .await
        .unwrap_or_else(|_| Err(ActionError("the scheduler dropped the request".to_string())))
}

/// Starts a task that sends the command and brings the reply back to the loop as a message,
/// so the loop never waits on the scheduler. Returns whether the request was to quit.
fn dispatch(
    request: CommandRequest,
    commands: &mpsc::Sender<Command>,
    internal: &mpsc::UnboundedSender<Internal>,
    actor: &Actor,
) -> bool {
    if request == CommandRequest::Quit {
        return true;
    }
    let (commands, internal, by) = (commands.clone(), internal.clone(), actor.clone());
    let outcome = async move {
        match request {
            CommandRequest::Quit => None,
            CommandRequest::Reload => Some(Outcome::Reload(
                ask(&commands, |reply| Command::Reload { by, reply }).await,
            )),
            CommandRequest::History(job) => {
                let result = ask(&commands, |reply| Command::History {
                    job: job.clone(),
                    limit: app::HISTORY_LIMIT,
                    reply,
                })
                .await;
                Some(Outcome::History { job, result })
            }
            CommandRequest::Activate(job) => {
                let result = ask(&commands, |reply| Command::Activate {
                    job: job.clone(),
                    by,
                    reply,
                })
                .await;
                Some(Outcome::Job {
                    verb: JobVerb::Activate,
                    job,
                    result,
                })
            }
            CommandRequest::Cancel(job) => {
                let result = ask(&commands, |reply| Command::Cancel {
                    job: job.clone(),
                    by,
                    reply,
                })
                .await;
                Some(Outcome::Job {
                    verb: JobVerb::Cancel,
                    job,
                    result,
                })
            }
            CommandRequest::Trigger(job) => {
                let result = ask(&commands, |reply| Command::Trigger {
                    job: job.clone(),
                    by,
                    reply,
                })
                .await;
                Some(Outcome::Job {
                    verb: JobVerb::Trigger,
                    job,
                    result,
                })
            }
        }
    };
    tokio::spawn(async move {
        if let Some(outcome) = outcome.await {
            let _ = internal.send(Internal::Message(Message::Outcome(outcome)));
        }
    });
    false
}
