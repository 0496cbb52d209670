//! Drawing the whole screen from `&App`: header, the current view, the flash line, the footer,
//! and any overlay. Reads only; "now" is the app's, never the clock's.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::action::Action;
use super::app::{App, FlashKind, Overlay, View};
use super::keymap::{self, KeyContext};
use super::list::{SortKey, StatusFilter};
use super::theme::{self, Theme};
use super::{details, format, help, log_view, table};
use crate::job::Status;

/// The parts of the screen.
#[derive(Debug, Clone, Copy)]
pub struct Regions {
    /// Two lines: config, service state, clock; counts, filters, position.
    pub header: Rect,
    /// The table, details or log view.
    pub body: Rect,
    /// One line of action results and errors.
    pub flash: Rect,
    /// One line of key hints.
    pub footer: Rect,
}

/// Splits the screen; `App` uses the same split to know how many rows a page has.
pub fn regions(area: Rect) -> Regions {
    let [header, body, flash, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    Regions {
        header,
        body,
        flash,
        footer,
    }
}

/// Draws the dashboard.
pub fn draw(frame: &mut Frame, app: &App) {
    let regions = regions(frame.area());
    header(frame, regions.header, app);
    match &app.view {
        View::Table => table::render(frame, regions.body, app),
        View::Details { name, scroll } => details::render(frame, regions.body, app, name, *scroll),
        View::Log { name, scroll } => log_view::render(frame, regions.body, app, name, *scroll),
    }
    flash(frame, regions.flash, app);
    footer(frame, regions.footer, app);
    match &app.overlay {
        Some(Overlay::Help { scroll }) => help::render(frame, frame.area(), app.theme, *scroll),
        Some(Overlay::ConfirmCancel { name }) => confirm(frame, frame.area(), app.theme, name),
        None => {}
    }
}

fn header(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme;
    let clock = format!(" {} UTC", app.now.format("%H:%M:%S"));
    let clock_width = u16::try_from(format::width(&clock)).unwrap_or(u16::MAX);
    let [line1, line2] = Layout::vertical([Constraint::Length(1); 2]).areas(area);
    let [left, right] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(clock_width)]).areas(line1);

    let (state, state_style) = if app.reloading {
        ("reloading…", theme.fg(ratatui::style::Color::Yellow))
    } else if app.config_error.is_some() {
        ("config error", theme.error())
    } else {
        ("running", theme.ok())
    };
    let mut spans = vec![
        Span::styled("jobtop ", theme.heading()),
        Span::raw(shorten_path(
            &app.config_file.display().to_string(),
            usize::from(left.width / 2),
        )),
        Span::styled(" · ", theme.dim()),
        Span::styled(state, state_style),
    ];
    if let Some(pid) = app.attached_pid {
        spans.push(Span::styled(" · ", theme.dim()));
        spans.push(Span::raw(format!("attached to pid {pid}")));
    }
    if app.read_only {
        spans.push(Span::styled(" · ", theme.dim()));
        spans.push(Span::raw("read-only"));
    }
    frame.render_widget(Line::from(spans), left);
    frame.render_widget(Line::styled(clock, theme.heading()).right_aligned(), right);

    let view = view_line(app, theme);
    let view_width = u16::try_from(view.width())
        .unwrap_or(u16::MAX)
        .min(line2.width / 3 * 2);
    let [counts_area, view_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(view_width)]).areas(line2);
    frame.render_widget(
        counts_line(app, theme, usize::from(counts_area.width)),
        counts_area,
    );
    frame.render_widget(view, view_area);
}

/// `12 jobs: 5 waiting · 1 running …`, or `12 jobs: ●5 ▶1 …` when that does not fit.
fn counts_line(app: &App, theme: Theme, width: usize) -> Line<'static> {
    let mut counts = [0usize; Status::ALL.len()];
    for job in app.jobs.all() {
        if let Some(i) = Status::ALL.iter().position(|s| *s == job.status) {
            counts[i] += 1;
        }
    }
    let present: Vec<(Status, usize)> = Status::ALL
        .iter()
        .zip(counts)
        .filter(|(_, count)| *count > 0)
        .map(|(status, count)| (*status, count))
        .collect();
    let total = format!("{} jobs", app.jobs.all().len());
    let long_width = format::width(&total)
        + present
            .iter()
            .map(|(status, count)| format!("{count} {status}").len() + 3)
            .sum::<usize>();
    let compact = long_width > width;
    let mut spans = vec![Span::raw(total)];
    for (i, (status, count)) in present.into_iter().enumerate() {
        let separator = match (i, compact) {
            (0, _) => ": ",
            (_, true) => " ",
            (_, false) => " · ",
        };
        spans.push(Span::styled(separator, theme.dim()));
        let text = if compact {
            format!("{}{count}", theme::glyph(status))
        } else {
            format!("{count} {status}")
        };
        spans.push(Span::styled(text, theme.status(status)));
    }
    Line::from(spans)
}

/// What the table shows when it is not everything by name: filters, sort, how many.
fn view_line(app: &App, theme: Theme) -> Line<'static> {
    let list = &app.jobs;
    let mut parts = Vec::new();
    if !list.name_filter.is_empty() {
        parts.push(format!("/{}", list.name_filter));
    }
    if list.status_filter != StatusFilter::All {
        parts.push(format!("showing {}", list.status_filter.label()));
    }
    if list.sort != SortKey::Name {
        parts.push(format!("sort: {}", list.sort.label()));
    }
    if !parts.is_empty() || list.visible_len() != list.all().len() {
        parts.push(format!(
            "{} of {} shown",
            list.visible_len(),
            list.all().len()
        ));
    }
    if parts.is_empty() {
        return Line::default();
    }
    Line::styled(format!(" {}", parts.join(" · ")), theme.key()).right_aligned()
}

/// A path cut from the left so that its file name stays visible: `…/deploy/jobs.yaml`.
fn shorten_path(path: &str, max: usize) -> String {
    let max = max.max(12);
    let chars: Vec<char> = path.chars().collect();
    if chars.len() <= max {
        return path.to_string();
    }
    let tail: String = chars[chars.len() - (max - 1)..].iter().collect();
    format!("…{tail}")
}

fn flash(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme;
    let width = usize::from(area.width);
    let line = if app.filter_editing {
        Line::from(vec![
            Span::styled("filter: ", theme.key()),
            Span::raw(app.jobs.name_filter.clone()),
            Span::styled("█", theme.dim()),
        ])
    } else if let Some(flash) = &app.flash {
        let style = match flash.kind {
            FlashKind::Info => theme.ok(),
            FlashKind::Warning => theme.fg(ratatui::style::Color::Yellow),
            FlashKind::Error => theme.error(),
        };
        let text = flash.text.lines().next().unwrap_or_default();
        Line::styled(format::truncate(text, width), style)
    } else {
        Line::default()
    };
    frame.render_widget(line, area);
}

/// The hints for what the keys do right now; `?` and `q` are kept at the end whatever the width.
fn footer(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme;
    let context = app.key_context();
    let useful = |action: Action| match (&app.overlay, &app.view) {
        _ if context != KeyContext::Normal => true,
        _ if app.read_only
            && matches!(
                action,
                Action::Reload | Action::Activate | Action::Cancel | Action::Trigger
            ) =>
        {
            false
        }
        (Some(Overlay::Help { .. }), _) => {
            matches!(action, Action::MoveDown | Action::Back | Action::Quit)
        }
        (_, View::Table) => action != Action::Back,
        (_, _) => !matches!(
            action,
            Action::Open | Action::StartFilter | Action::CycleStatusFilter | Action::CycleSort
        ),
    };
    let bindings = keymap::table(context);
    let pinned = |action: Action| {
        context == KeyContext::Normal && matches!(action, Action::Help | Action::Quit)
    };
    let hint_spans = |(key, word): (&'static str, &'static str)| {
        [
            Span::styled(key, theme.key()),
            Span::raw(format!(" {word}  ")),
        ]
    };
    let width_of = |(key, word): (&str, &str)| format::width(key) + format::width(word) + 3;
    let tail: Vec<_> = bindings
        .iter()
        .filter(|b| pinned(b.action))
        .filter_map(|b| b.hint)
        .collect();
    let mut room = usize::from(area.width).saturating_sub(tail.iter().map(|h| width_of(*h)).sum());
    let mut spans = Vec::new();
    for binding in bindings
        .iter()
        .filter(|b| !pinned(b.action) && useful(b.action))
    {
        if let Some(hint) = binding.hint {
            if width_of(hint) > room {
                break;
            }
            room -= width_of(hint);
            spans.extend(hint_spans(hint));
        }
    }
    for hint in tail {
        spans.extend(hint_spans(hint));
    }
    frame.render_widget(Line::from(spans), area);
}

fn confirm(frame: &mut Frame, area: Rect, theme: Theme, name: &str) {
    let width = area.width.saturating_sub(4).min(56);
    let box_area = area.centered(Constraint::Length(width), Constraint::Length(6));
    let block = Block::bordered()
        .border_style(theme.error())
        .title(Span::styled(" Cancel a running job ", theme.heading()));
    let text = vec![
        Line::from(vec![
            Span::raw("Cancel "),
            Span::styled(name.to_string(), theme.heading()),
            Span::raw("? Its run in progress will be aborted."),
        ]),
        Line::default(),
        Line::from(vec![
            Span::styled("y", theme.key()),
            Span::raw(" yes, deactivate it   "),
            Span::styled("n", theme.key()),
            Span::raw(" no"),
        ]),
    ];
    frame.render_widget(Clear, box_area);
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).block(block),
        box_area,
    );
}

/// The status cell: glyph, word and colour.
pub fn status_span(theme: Theme, status: Status) -> Span<'static> {
    Span::styled(theme::status_label(status), theme.status(status))
}
