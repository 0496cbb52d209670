//! The help overlay (`?`), generated from the keymap tables so it always tells the truth.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use super::format;
use super::keymap::{self, SECTIONS};
use super::theme::{self, Theme};
use crate::job::Status;

/// Width of the key column.
const KEYS: usize = 10;

/// Width of one entry of the status legend.
const LEGEND: usize = 14;

/// The overlay's width on a screen of `screen`.
fn width(screen: Rect) -> u16 {
    screen.width.saturating_sub(4).min(76)
}

/// Where the overlay goes on a screen of `screen`.
pub fn area(screen: Rect) -> Rect {
    let width = width(screen);
    let wanted = u16::try_from(line_count(screen) + 2).unwrap_or(u16::MAX);
    let height = wanted.min(screen.height.saturating_sub(2));
    screen.centered(Constraint::Length(width), Constraint::Length(height))
}

/// How many lines the help has on a screen of `screen`.
pub fn line_count(screen: Rect) -> usize {
    lines(
        Theme::new(false),
        usize::from(width(screen).saturating_sub(2)),
    )
    .len()
}

/// The help text for an overlay `width` columns wide inside; long descriptions wrap under
/// themselves, so a narrow terminal loses nothing.
fn lines(theme: Theme, width: usize) -> Vec<Line<'static>> {
    let text_width = width.saturating_sub(KEYS + 2).max(10);
    let mut out = Vec::new();
    for (i, (title, context)) in SECTIONS.iter().enumerate() {
        if i > 0 {
            out.push(Line::default());
        }
        out.push(Line::styled(*title, theme.heading()));
        for binding in keymap::table(*context) {
            let wrapped = format::wrap(binding.description(), text_width);
            for (j, text) in wrapped.into_iter().enumerate() {
                let keys = if j == 0 { binding.label } else { "" };
                out.push(Line::from(vec![
                    Span::styled(format!("  {keys:<KEYS$}"), theme.key()),
                    Span::raw(text),
                ]));
            }
        }
    }
    out.push(Line::default());
    out.push(Line::styled("Statuses", theme.heading()));
    // As many to a line as fit, so the legend suits the narrowest overlay.
    let per_line = (width.saturating_sub(2) / LEGEND).max(1);
    for chunk in Status::ALL.chunks(per_line) {
        let mut legend = vec![Span::raw("  ")];
        for status in chunk {
            legend.push(Span::styled(
                format!("{:<LEGEND$}", theme::status_label(*status)),
                theme.status(*status),
            ));
        }
        out.push(Line::from(legend));
    }
    out
}

/// Draws the help over the screen `area`, scrolled down by `scroll` lines.
pub fn render(frame: &mut Frame, screen: Rect, theme: Theme, scroll: usize) {
    let area = area(screen);
    let block = Block::bordered()
        .border_style(theme.border())
        .title(Span::styled(" Help · ? or Esc closes ", theme.heading()));
    let inner = block.inner(area);
    let all = lines(theme, usize::from(inner.width));
    let below = all.len().saturating_sub(scroll + usize::from(inner.height));
    // Say so when the help is cut, so a small terminal does not hide keys silently.
    let block = if below > 0 {
        block.title_bottom(
            Line::styled(format!(" ↓ {below} more lines: j/↓ "), theme.key()).right_aligned(),
        )
    } else {
        block
    };
    let shown: Vec<Line> = all
        .into_iter()
        .skip(scroll)
        .take(usize::from(inner.height))
        .collect();
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(shown).block(block), area);
}
