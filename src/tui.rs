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
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use self::action::Effect;
use self::app::{App, Message, Outcome};
use crate::control::{Client, JobEvent, Subscription};

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
/// Actions are done as this process's Unix user, as the control socket would name them.
pub async fn run(client: Client, options: DashboardOptions) -> anyhow::Result<()> {
    let client = client.acting_as(Some(crate::users::current_user()));
    // Subscribe before touching the terminal, so a dead scheduler is an ordinary error message.
    let subscription = subscribe(&client).await.with_context(|| {
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
    event_loop(&mut terminal, &mut app, &client, subscription.events).await
}

struct RestoreOnDrop;

impl Drop for RestoreOnDrop {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// What the helper tasks tell the loop.
enum LoopMessage {
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
    client: &Client,
    mut events: broadcast::Receiver<JobEvent>,
) -> anyhow::Result<()> {
    let (internal_tx, mut internal_rx) = mpsc::unbounded_channel::<LoopMessage>();
    let mut keys = EventStream::new();
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
                        let (client, internal) = (client.clone(), internal_tx.clone());
                        tokio::spawn(async move {
                            let message = match subscribe(&client).await {
                                Ok(subscription) => LoopMessage::Resubscribed(subscription),
                                Err(error) => LoopMessage::ResubscribeFailed(format!("{error:#}")),
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
                    LoopMessage::Message(message) => {
                        app.update(message);
                    }
                    LoopMessage::Resubscribed(subscription) => {
                        resubscribing = false;
                        events = subscription.events;
                        app.update(Message::Snapshot(subscription.snapshot));
                    }
                    LoopMessage::ResubscribeFailed(error) => {
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
            && dispatch(request, client, &internal_tx)
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

async fn subscribe(client: &Client) -> anyhow::Result<Subscription> {
    client
        .subscribe()
        .await
        .map_err(|e| anyhow!("cannot subscribe to the scheduler: {e}"))
}

/// Starts a task that makes the call and brings the answer back to the loop as a message,
/// so the loop never waits on the scheduler. Returns whether the request was to quit.
fn dispatch(
    effect: Effect,
    client: &Client,
    internal: &mpsc::UnboundedSender<LoopMessage>,
) -> bool {
    if effect == Effect::Quit {
        return true;
    }
    let (client, internal) = (client.clone(), internal.clone());
    let outcome = async move {
        match effect {
            Effect::Quit => None,
            Effect::Reload => Some(Outcome::Reload(client.reload().await)),
            Effect::History(job) => {
                let result = client.history(&job, app::HISTORY_LIMIT).await;
                Some(Outcome::History { job, result })
            }
            Effect::Act(verb, job) => {
                let result = client.act(verb, &job).await;
                Some(Outcome::Job { verb, job, result })
            }
        }
    };
    tokio::spawn(async move {
        if let Some(outcome) = outcome.await {
            let _ = internal.send(LoopMessage::Message(Message::Outcome(outcome)));
        }
    });
    false
}
