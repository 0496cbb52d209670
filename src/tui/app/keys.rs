//! What the keys do: `Action`s applied to the view state, and the commands they ask for.

use super::{App, History, Overlay, View};
use crate::control::Verb;
use crate::job::Status;
use crate::tui::action::{Action, Effect};
use crate::tui::list::StatusFilter;
use crate::tui::{details, help, log_view};

impl App {
    pub(super) fn act(&mut self, action: Action) -> Option<Effect> {
        if action == Action::Quit {
            return Some(Effect::Quit);
        }
        if let Some(overlay) = self.overlay.clone() {
            return self.act_on_overlay(overlay, action);
        }
        if self.filter_editing {
            return self.act_on_filter(action);
        }
        match action {
            Action::MoveUp
            | Action::MoveDown
            | Action::PageUp
            | Action::PageDown
            | Action::Top
            | Action::Bottom => self.navigate(action),
            Action::Open => {
                let name = self.jobs.selected()?.name.clone();
                self.view = View::Details {
                    name: name.clone(),
                    scroll: 0,
                };
                self.history = History::Loading;
                Some(Effect::History(name))
            }
            Action::Back => {
                self.back();
                None
            }
            Action::Reload | Action::Activate | Action::Cancel | Action::Trigger
                if self.read_only =>
            {
                self.flash_warning(
                    "read-only dashboard: reload, activate, cancel and trigger are not available",
                );
                None
            }
            Action::Reload => {
                self.reloading = true;
                Some(Effect::Reload)
            }
            Action::Activate => self.job_command(Verb::Activate),
            Action::Cancel => self.job_command(Verb::Cancel),
            Action::Trigger => self.job_command(Verb::Trigger),
            Action::Logs => {
                let name = self.current_job()?;
                self.view = View::Log { name, scroll: None };
                None
            }
            Action::StartFilter => {
                self.view = View::Table;
                self.filter_editing = true;
                None
            }
            Action::CycleStatusFilter => {
                self.view = View::Table;
                self.jobs.status_filter = self.jobs.status_filter.next();
                self.jobs.invalidate();
                None
            }
            Action::CycleSort => {
                self.view = View::Table;
                self.jobs.sort = self.jobs.sort.next();
                self.jobs.invalidate();
                None
            }
            Action::Help => {
                self.overlay = Some(Overlay::Help { scroll: 0 });
                None
            }
            Action::FilterInput(_)
            | Action::FilterBackspace
            | Action::FilterAccept
            | Action::Confirm
            | Action::Dismiss
            | Action::Quit => None,
        }
    }

    /// Keys while an overlay is open go to it alone.
    fn act_on_overlay(&mut self, overlay: Overlay, action: Action) -> Option<Effect> {
        match (overlay, action) {
            (Overlay::ConfirmCancel { name }, Action::Confirm) => {
                self.overlay = None;
                self.flash_info(format!("cancelling {name}…"));
                Some(Effect::Act(Verb::Cancel, name))
            }
            (Overlay::ConfirmCancel { .. }, Action::Dismiss | Action::Back)
            | (Overlay::Help { .. }, Action::Help | Action::Back) => {
                self.overlay = None;
                None
            }
            (Overlay::Help { scroll }, _) => {
                let height = self.help_height();
                let screen = ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1);
                let max = help::line_count(screen).saturating_sub(height);
                let scroll = scrolled(scroll, action, height, max);
                self.overlay = Some(Overlay::Help { scroll });
                None
            }
            (Overlay::ConfirmCancel { .. }, _) => None,
        }
    }

    /// Keys while a name filter is typed edit it; the table follows every keystroke.
    fn act_on_filter(&mut self, action: Action) -> Option<Effect> {
        match action {
            Action::FilterInput(c) => self.jobs.name_filter.push(c),
            Action::FilterBackspace => {
                self.jobs.name_filter.pop();
            }
            Action::FilterAccept => self.filter_editing = false,
            Action::Back => {
                self.jobs.name_filter.clear();
                self.filter_editing = false;
            }
            Action::MoveUp | Action::MoveDown => return self.navigate(action),
            _ => return None,
        }
        self.jobs.invalidate();
        None
    }

    /// Esc: leave the view, else clear the message, else the name filter, else the status filter.
    fn back(&mut self) {
        if self.view != View::Table {
            self.view = View::Table;
        } else if self.flash.is_some() {
            self.flash = None;
        } else if !self.jobs.name_filter.is_empty() {
            self.jobs.name_filter.clear();
            self.jobs.invalidate();
        } else if self.jobs.status_filter != StatusFilter::All {
            self.jobs.status_filter = StatusFilter::All;
            self.jobs.invalidate();
        }
    }

    fn navigate(&mut self, action: Action) -> Option<Effect> {
        match self.view.clone() {
            View::Table => {
                let rows = self.table_rows();
                let page = isize::try_from(rows.max(1)).unwrap_or(isize::MAX);
                match action {
                    Action::MoveUp => self.jobs.move_by(-1, rows),
                    Action::MoveDown => self.jobs.move_by(1, rows),
                    Action::PageUp => self.jobs.move_by(-page, rows),
                    Action::PageDown => self.jobs.move_by(page, rows),
                    Action::Top => self.jobs.select(0, rows),
                    Action::Bottom => self.jobs.select(usize::MAX, rows),
                    _ => {}
                }
            }
            View::Details { name, scroll } => {
                let (width, height) = details::text_size(self.body());
                let total = self
                    .jobs
                    .get(&name)
                    .map_or(0, |job| details::lines(self, job, width).len());
                let scroll = scrolled(scroll, action, height, total.saturating_sub(height));
                self.view = View::Details { name, scroll };
            }
            View::Log { name, scroll } => {
                let (width, height) = log_view_size(self.body());
                let total = log_view::lines(self, &name, width).len();
                let max = total.saturating_sub(height);
                let current = log_view::top_line(total, height, scroll);
                let next = scrolled(current, action, height, max);
                // Reaching the end (or `G`) follows new lines again; anything else pauses.
                let scroll = (action != Action::Bottom && next < max).then_some(next);
                self.view = View::Log { name, scroll };
            }
        }
        None
    }

    /// The job the job keys act on: the one on screen, else the selected row.
    pub(super) fn current_job(&self) -> Option<String> {
        match &self.view {
            View::Details { name, .. } | View::Log { name, .. } => Some(name.clone()),
            View::Table => self.jobs.selected().map(|job| job.name.clone()),
        }
    }

    fn job_command(&mut self, verb: Verb) -> Option<Effect> {
        let Some(name) = self.current_job() else {
            self.flash_warning("no job selected");
            return None;
        };
        let running = self
            .jobs
            .get(&name)
            .is_some_and(|job| job.status == Status::Running);
        if verb == Verb::Cancel && running {
            self.overlay = Some(Overlay::ConfirmCancel { name });
            return None;
        }
        Some(Effect::Act(verb, name))
    }
}

/// The inner size of the bordered log view.
fn log_view_size(body: ratatui::layout::Rect) -> (usize, usize) {
    (
        usize::from(body.width.saturating_sub(2)),
        usize::from(body.height.saturating_sub(2)),
    )
}

/// A text position after a movement key, within `0..=max`.
fn scrolled(current: usize, action: Action, page: usize, max: usize) -> usize {
    let page = page.max(1);
    let next = match action {
        Action::MoveUp => current.saturating_sub(1),
        Action::MoveDown => current + 1,
        Action::PageUp => current.saturating_sub(page),
        Action::PageDown => current + page,
        Action::Top => 0,
        Action::Bottom => max,
        _ => current,
    };
    next.min(max)
}
