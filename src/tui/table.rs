//! The job table. Only the rows in the window are built, so a table of ten thousand jobs costs
//! what a screenful costs. Columns give way, least useful first, as the terminal narrows.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, HighlightSpacing, Paragraph, Row, Table, TableState};

use super::app::App;
use super::format;
use super::render::status_span;
use crate::control::JobView;
use crate::job::Status;

/// A column of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// The job's name.
    Name,
    /// Glyph, word, colour.
    Status,
    /// When it fires: the interval or the cron expression.
    Schedule,
    /// How long ago the last run started.
    LastRun,
    /// Countdown to the next run.
    Next,
    /// How long the last run took (or the current one has been going).
    Duration,
    /// Runs so far.
    Runs,
    /// The first line of the last error.
    LastError,
}

impl Column {
    fn title(self) -> &'static str {
        match self {
            Column::Name => "NAME",
            Column::Status => "STATUS",
            Column::Schedule => "SCHEDULE",
            Column::LastRun => "LAST RUN",
            Column::Next => "NEXT",
            Column::Duration => "DURATION",
            Column::Runs => "RUNS",
            Column::LastError => "LAST ERROR",
        }
    }

    /// Width in columns; LAST ERROR takes what is left, at least this much.
    fn width(self, name_width: u16) -> u16 {
        match self {
            Column::Name => name_width,
            Column::Status => 13,
            Column::Schedule => 11,
            Column::Duration | Column::LastRun => 8,
            Column::Next => 9,
            Column::Runs => 6,
            Column::LastError => 16,
        }
    }
}

/// Display order of the columns.
const ORDER: [Column; 8] = [
    Column::Name,
    Column::Status,
    Column::Schedule,
    Column::LastRun,
    Column::Next,
    Column::Duration,
    Column::Runs,
    Column::LastError,
];

/// The order in which columns give way to a narrow terminal; NAME and STATUS never do.
const DROP_ORDER: [Column; 6] = [
    Column::Duration,
    Column::Runs,
    Column::LastRun,
    Column::Schedule,
    Column::LastError,
    Column::Next,
];

const SPACING: u16 = 1;

/// Marks the selected row, so the selection shows without colour or reverse video too.
const MARKER: &str = "›";

/// The columns that fit in `width`, in display order.
pub fn columns_for(width: u16, name_width: u16) -> Vec<Column> {
    let mut columns = ORDER.to_vec();
    let total = |columns: &[Column]| -> u16 {
        let sum: u16 = columns.iter().map(|c| c.width(name_width)).sum();
        sum + SPACING * u16::try_from(columns.len().saturating_sub(1)).unwrap_or(0)
    };
    for drop in DROP_ORDER {
        if total(&columns) <= width {
            break;
        }
        columns.retain(|c| *c != drop);
    }
    columns
}

/// Draws the window of the table that holds the selection.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme;
    let list = &app.jobs;
    let rows = usize::from(area.height.saturating_sub(1));
    if list.visible_len() == 0 {
        let text = if list.all().is_empty() {
            "no jobs configured: add some to jobs.yaml and press r to reload"
        } else {
            "no job matches the filters (Esc clears them)"
        };
        frame.render_widget(
            Paragraph::new(vec![Line::default(), Line::styled(text, theme.dim())]).centered(),
            area,
        );
        return;
    }
    let window: Vec<(usize, &JobView)> = list.window(rows).collect();
    // NAME is as wide as the longest name on screen, within reason.
    let longest = window
        .iter()
        .map(|(_, job)| format::width(&job.name))
        .max()
        .unwrap_or(0);
    let name_width = u16::try_from(longest.clamp(4, 28)).unwrap_or(28);
    // The marker's gutter comes off the width first.
    let width = area.width.saturating_sub(1);
    let name_width = name_width.min(width.saturating_sub(13 + SPACING));
    let columns = columns_for(width, name_width);
    let error_width = {
        let fixed: u16 = columns
            .iter()
            .filter(|c| **c != Column::LastError)
            .map(|c| c.width(name_width) + SPACING)
            .sum();
        usize::from(width.saturating_sub(fixed))
    };
    // An old error of a job that has recovered since is history, not an alarm.
    let error_style = |job: &JobView| {
        if job.status == Status::Deactivated
            || job
                .last_result
                .is_some_and(crate::job::RunResult::is_failure)
        {
            theme.error()
        } else {
            theme.dim()
        }
    };

    let header = Row::new(columns.iter().map(|c| Cell::from(c.title()))).style(theme.heading());
    let body = window.iter().map(|(_, job)| {
        let cells = columns.iter().map(|column| {
            let cell: Cell = match column {
                Column::Name => Cell::from(format::truncate(&job.name, usize::from(name_width))),
                Column::Status => Cell::from(status_span(theme, job.status)),
                Column::Schedule => Cell::from(format::truncate(
                    &job.schedule,
                    usize::from(Column::Schedule.width(name_width)),
                )),
                Column::LastRun => Cell::from(format::ago(job.last_run, app.now)),
                Column::Next => Cell::from(next_text(job, app)),
                Column::Duration => Cell::from(duration_text(job, app)),
                Column::Runs => Cell::from(job.runs.to_string()),
                Column::LastError => Cell::from(Span::styled(
                    job.last_error.as_deref().map_or_else(String::new, |error| {
                        format::truncate(&format::first_line(error), error_width)
                    }),
                    error_style(job),
                )),
            };
            cell
        });
        Row::new(cells)
    });
    // The rows are only the window, so the selection is counted from the window's top.
    let mut state = TableState::new().with_selected(
        window
            .iter()
            .position(|(pos, _)| *pos == list.selected_index()),
    );
    let widths = columns.iter().map(|c| match c {
        Column::LastError => Constraint::Min(c.width(name_width)),
        _ => Constraint::Length(c.width(name_width)),
    });
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(SPACING)
        .row_highlight_style(theme.selected())
        .highlight_symbol(MARKER)
        .highlight_spacing(HighlightSpacing::Always);
    frame.render_stateful_widget(table, area, &mut state);
}

/// NEXT: the countdown; running jobs show nothing due while they run.
fn next_text(job: &JobView, app: &App) -> String {
    match job.status {
        Status::Running if job.next_run.is_none() => "-".to_string(),
        Status::Deactivated | Status::Disabled | Status::Done | Status::Stopped => "-".to_string(),
        _ => format::countdown(job.next_run, app.now),
    }
}

/// DURATION: the last run's, or `4s…` for the run still going.
fn duration_text(job: &JobView, app: &App) -> String {
    match (job.status, job.running_since) {
        (Status::Running, Some(since)) => format!("{}…", format::elapsed(since, app.now)),
        _ => job
            .last_duration_ms
            .map_or_else(|| "-".to_string(), format::millis),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_give_way_in_order() {
        let all = columns_for(200, 20);
        assert_eq!(all, ORDER.to_vec());
        let at_80 = columns_for(80, 16);
        assert!(!at_80.contains(&Column::Duration), "{at_80:?}");
        assert!(at_80.contains(&Column::LastError), "{at_80:?}");
        let at_60 = columns_for(60, 16);
        assert!(
            at_60.starts_with(&[Column::Name, Column::Status]),
            "{at_60:?}"
        );
        let tiny = columns_for(20, 16);
        assert_eq!(tiny, [Column::Name, Column::Status]);
    }
}
