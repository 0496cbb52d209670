//! The vocabulary of the dashboard: what a key can ask for, and what the dashboard asks of the
//! scheduler in return.

use crate::control::Verb;

/// Everything an operator can do with a key. The keymap maps keys to these; the help overlay
/// and the footer are generated from the keymap, and `describe` is the text they show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Select the job above, or scroll up one line in a details, log or help view.
    MoveUp,
    /// Select the job below, or scroll down one line.
    MoveDown,
    /// Move one screenful up.
    PageUp,
    /// Move one screenful down.
    PageDown,
    /// Go to the first job, or the top of the text.
    Top,
    /// Go to the last job, or the end of the text (the log view follows new lines again).
    Bottom,
    /// Open the details of the selected job.
    Open,
    /// Close what is open: help, a dialog, a view, the filter, or the flash message.
    Back,
    /// Read `jobs.yaml` again and apply the difference.
    Reload,
    /// Make the selected job `waiting` again.
    Activate,
    /// Deactivate the selected job (asks first when a run is in progress).
    Cancel,
    /// Run the selected job now, once.
    Trigger,
    /// Show the live log of the selected job.
    Logs,
    /// Start typing a name filter.
    StartFilter,
    /// Add a character to the name filter being typed.
    FilterInput(char),
    /// Remove the last character of the name filter being typed.
    FilterBackspace,
    /// Keep the name filter and go back to the table.
    FilterAccept,
    /// Show only some statuses: all, failing, running, waiting, idle, disabled.
    CycleStatusFilter,
    /// Change the sort order: name, status, next run, last run.
    CycleSort,
    /// Show or hide the help.
    Help,
    /// Answer yes to the question asked.
    Confirm,
    /// Answer no to the question asked.
    Dismiss,
    /// Leave the dashboard.
    Quit,
}

impl Action {
    /// The short text the help overlay shows for this action.
    pub fn describe(self) -> &'static str {
        match self {
            Action::MoveUp => "up one job / line",
            Action::MoveDown => "down one job / line",
            Action::PageUp => "up one page",
            Action::PageDown => "down one page",
            Action::Top => "first job / top",
            Action::Bottom => "last job / end (log: follow again)",
            Action::Open => "details of the selected job",
            Action::Back => "back: close help, dialog, view, filter, message",
            Action::Reload => "reload jobs.yaml",
            Action::Activate => "activate the job (waiting again)",
            Action::Cancel => "cancel: deactivate the job (asks if running)",
            Action::Trigger => "trigger: run the job now, once",
            Action::Logs => "live log of the job (follows new lines)",
            Action::StartFilter => "filter jobs by name",
            Action::FilterInput(_) => "type into the filter",
            Action::FilterBackspace => "delete the last character",
            Action::FilterAccept => "keep the filter",
            Action::CycleStatusFilter => "status filter: all/failing/running/waiting/idle/disabled",
            Action::CycleSort => "sort by name / status / next run / last run",
            Action::Help => "this help",
            Action::Confirm => "yes",
            Action::Dismiss => "no",
            Action::Quit => "quit",
        }
    }
}

/// What [`App::update`](super::app::App::update) asks the loop to do: a call to the
/// scheduler, whose answer comes back as an `Outcome`, or to quit. `App` stays free of
/// channels, so it can be tested without a scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Reload `jobs.yaml`.
    Reload,
    /// Activate, cancel or trigger the named job.
    Act(Verb, String),
    /// Fetch the recent runs of the named job for the details view.
    History(String),
    /// Leave the dashboard; the caller then shuts the scheduler down.
    Quit,
}
