//! The dashboard's state and the one place it changes: `App::update` takes an action, an event
//! from the scheduler, a reply or a tick, and returns what to ask of the scheduler. No terminal
//! and no channels here, so every behaviour is a plain unit test.

use chrono::{DateTime, Utc};

use super::action::{Action, Effect};
use super::keymap::KeyContext;
use super::list::JobList;
use super::log_view::Logs;
use super::theme::Theme;
use super::{help, render};
use crate::control::Verb;

mod events;
mod keys;
use crate::control::{ActionError, JobEvent, ReloadSummary, RunSummary, Snapshot};

/// How many recent runs the details view asks for.
pub const HISTORY_LIMIT: usize = 30;

/// How long a good-news flash message stays; errors stay until dismissed or replaced.
const FLASH_SECS: i64 = 10;

/// Everything the dashboard can be told.
#[derive(Debug)]
pub enum Message {
    /// The operator pressed a key that means something.
    Action(Action),
    /// The scheduler reported a change.
    Event(JobEvent),
    /// A fresh table, after the dashboard fell behind the event stream.
    Snapshot(Snapshot),
    /// A command came back.
    Outcome(Outcome),
    /// Another second passed; this is the dashboard's "now".
    Tick(DateTime<Utc>),
    /// The terminal has a new size (columns, rows).
    Resize(u16, u16),
}

/// The answer to an [`Effect`] that called the scheduler.
#[derive(Debug)]
pub enum Outcome {
    /// A reload: what changed, or why the new `jobs.yaml` was refused.
    Reload(Result<ReloadSummary, ActionError>),
    /// An activate, cancel or trigger.
    Job {
        /// Which command.
        verb: Verb,
        /// The job it was about.
        job: String,
        /// The scheduler's confirmation, or why it refused.
        result: Result<String, ActionError>,
    },
    /// The recent runs of a job, for the details view.
    History {
        /// The job.
        job: String,
        /// Its runs, newest first.
        result: Result<Vec<RunSummary>, ActionError>,
    },
}

impl From<Action> for Message {
    fn from(action: Action) -> Self {
        Message::Action(action)
    }
}

impl From<JobEvent> for Message {
    fn from(event: JobEvent) -> Self {
        Message::Event(event)
    }
}

impl From<Outcome> for Message {
    fn from(outcome: Outcome) -> Self {
        Message::Outcome(outcome)
    }
}

/// The main area of the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// The job table.
    Table,
    /// One job's details, scrolled down by `scroll` lines.
    Details {
        /// The job.
        name: String,
        /// Lines scrolled.
        scroll: usize,
    },
    /// One job's live log; `scroll: None` follows the end.
    Log {
        /// The job.
        name: String,
        /// First line shown, or `None` to follow.
        scroll: Option<usize>,
    },
}

/// Something drawn over the view that takes the keys while it is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// The generated key help, scrolled down by `scroll` lines.
    Help {
        /// Lines scrolled.
        scroll: usize,
    },
    /// "Cancel x? Its run in progress will be aborted."
    ConfirmCancel {
        /// The job.
        name: String,
    },
}

/// How a flash message reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    /// A result: shown for a few seconds.
    Info,
    /// Something to look at, not a failure.
    Warning,
    /// A failure: stays until Esc or a newer message.
    Error,
}

/// The one-line message under the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// The text.
    pub text: String,
    /// How it reads.
    pub kind: FlashKind,
    /// When it appeared.
    pub at: DateTime<Utc>,
}

/// The recent runs of the job in the details view.
#[derive(Debug, Clone, PartialEq)]
pub enum History {
    /// Asked for, no answer yet.
    Loading,
    /// Newest first.
    Loaded(Vec<RunSummary>),
    /// The scheduler could not say.
    Failed(String),
}

/// The dashboard's state: its copy of the job table and the operator's view of it.
#[derive(Debug)]
pub struct App {
    pub(super) config_file: std::path::PathBuf,
    pub(super) attached_pid: Option<u32>,
    /// Actions are refused (a viewer, or `--read-only`).
    pub read_only: bool,
    pub(super) theme: Theme,
    pub(super) jobs: JobList,
    pub(super) view: View,
    pub(super) overlay: Option<Overlay>,
    pub(super) filter_editing: bool,
    pub(super) flash: Option<Flash>,
    pub(super) config_error: Option<String>,
    pub(super) reloading: bool,
    pub(super) logs: Logs,
    pub(super) history: History,
    pub(super) size: (u16, u16),
    pub(super) now: DateTime<Utc>,
}

impl App {
    /// A dashboard on this snapshot, for a terminal of `size` (columns, rows) at `now`.
    pub fn new(
        snapshot: Snapshot,
        attached_pid: Option<u32>,
        theme: Theme,
        size: (u16, u16),
        now: DateTime<Utc>,
    ) -> Self {
        let mut app = App {
            config_file: snapshot.config_file,
            attached_pid,
            read_only: false,
            theme,
            jobs: JobList::new(snapshot.jobs),
            view: View::Table,
            overlay: None,
            filter_editing: false,
            flash: None,
            config_error: snapshot.config_error,
            reloading: false,
            logs: Logs::default(),
            history: History::Loading,
            size,
            now,
        };
        app.refresh();
        app
    }

    /// Brings the display order up to date; call before drawing (events only mark it stale,
    /// so a burst of them costs one sort per frame, not one per event).
    pub fn refresh(&mut self) {
        let rows = self.table_rows();
        self.jobs.refresh(rows);
    }

    /// The current view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The overlay, if one is open.
    pub fn overlay(&self) -> Option<&Overlay> {
        self.overlay.as_ref()
    }

    /// The flash message, if any.
    pub fn flash(&self) -> Option<&Flash> {
        self.flash.as_ref()
    }

    /// The jobs and the window onto them.
    pub fn jobs(&self) -> &JobList {
        &self.jobs
    }

    /// Which keymap table applies now.
    pub fn key_context(&self) -> KeyContext {
        match self.overlay {
            Some(Overlay::ConfirmCancel { .. }) => KeyContext::Confirm,
            None if self.filter_editing => KeyContext::Filter,
            Some(Overlay::Help { .. }) | None => KeyContext::Normal,
        }
    }

    /// Applies one message; returns what to ask of the scheduler, if anything.
    pub fn update(&mut self, message: impl Into<Message>) -> Option<Effect> {
        match message.into() {
            Message::Action(action) => {
                self.refresh();
                let request = self.act(action);
                self.refresh();
                request
            }
            Message::Event(event) => {
                self.apply_event(event);
                None
            }
            Message::Snapshot(snapshot) => {
                self.jobs.replace_all(snapshot.jobs);
                self.config_error = snapshot.config_error;
                self.flash_warning("the dashboard fell behind the scheduler: table reloaded");
                None
            }
            Message::Outcome(outcome) => {
                self.apply_outcome(outcome);
                None
            }
            Message::Tick(now) => {
                self.now = now;
                if self.flash.as_ref().is_some_and(|flash| {
                    flash.kind == FlashKind::Info && (now - flash.at).num_seconds() >= FLASH_SECS
                }) {
                    self.flash = None;
                }
                None
            }
            Message::Resize(columns, rows) => {
                self.size = (columns, rows);
                self.refresh();
                None
            }
        }
    }

    fn flash_info(&mut self, text: impl Into<String>) {
        self.set_flash(text.into(), FlashKind::Info);
    }

    pub(super) fn flash_warning(&mut self, text: impl Into<String>) {
        self.set_flash(text.into(), FlashKind::Warning);
    }

    fn flash_error(&mut self, text: impl Into<String>) {
        self.set_flash(text.into(), FlashKind::Error);
    }

    fn set_flash(&mut self, text: String, kind: FlashKind) {
        self.flash = Some(Flash {
            text,
            kind,
            at: self.now,
        });
    }

    fn body(&self) -> ratatui::layout::Rect {
        render::regions(ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1)).body
    }

    /// How many job rows the table shows at the current size.
    pub fn table_rows(&self) -> usize {
        usize::from(self.body().height.saturating_sub(1))
    }

    fn help_height(&self) -> usize {
        let area = ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1);
        usize::from(help::area(area).height.saturating_sub(2))
    }
}
