//! The live log of one job (`l`): a bounded buffer per job fed by `JobEvent::Log`, and the
//! view that follows its end.

use std::collections::{HashMap, VecDeque};

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::app::App;
use super::format;
use crate::control::RunSummary;

/// How many lines each job's buffer keeps.
pub const LOG_LINES: usize = 500;

/// One line of a job's log buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLine {
    /// A line the job wrote.
    Text(String),
    /// The end of a run: when, how, how long.
    RunEnd(String),
}

#[derive(Debug, Default)]
struct Buffer {
    lines: VecDeque<LogLine>,
    /// Lines received live since the last run ended: when none came (the dashboard subscribed
    /// mid-run, or fell behind), the finished run's own lines are used instead.
    live: usize,
}

impl Buffer {
    fn push(&mut self, line: LogLine) {
        if self.lines.len() == LOG_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }
}

/// The log buffers of every job that has written something.
#[derive(Debug, Default)]
pub struct Logs {
    buffers: HashMap<String, Buffer>,
}

impl Logs {
    /// A line a running job wrote.
    pub fn push(&mut self, name: &str, line: String) {
        let buffer = self.buffers.entry(name.to_string()).or_default();
        buffer.live += 1;
        buffer.push(LogLine::Text(line));
    }

    /// A run ended: its lines if none came live, then a line that marks the end.
    pub fn finish(&mut self, name: &str, run: &RunSummary) {
        let buffer = self.buffers.entry(name.to_string()).or_default();
        if buffer.live == 0 {
            for line in &run.logs {
                buffer.push(LogLine::Text(line.clone()));
            }
        }
        buffer.live = 0;
        buffer.push(LogLine::RunEnd(format!(
            "── run of {} ended: {} in {} ({}) ──",
            run.started.format("%H:%M:%S"),
            run.result,
            format::millis(run.duration_ms),
            run.trigger,
        )));
    }

    /// The lines of one job, oldest first.
    pub fn lines(&self, name: &str) -> impl Iterator<Item = &LogLine> {
        self.buffers
            .get(name)
            .into_iter()
            .flat_map(|buffer| buffer.lines.iter())
    }

    /// Drops a job's buffer (the job left the configuration).
    pub fn forget(&mut self, name: &str) {
        self.buffers.remove(name);
    }
}

/// The log lines of a job wrapped to `width`, as the view shows them.
pub fn lines(app: &App, name: &str, width: usize) -> Vec<Line<'static>> {
    let theme = app.theme;
    let mut out = Vec::new();
    for line in app.logs.lines(name) {
        match line {
            LogLine::Text(text) => {
                out.extend(format::wrap(text, width).into_iter().map(Line::raw));
            }
            LogLine::RunEnd(text) => out.push(Line::styled(text.clone(), theme.dim())),
        }
    }
    if out.is_empty() {
        out.push(Line::styled(
            "no log lines yet: they appear here as the job writes them (core.log, print)",
            theme.dim(),
        ));
    }
    out
}

/// The first line to show: the given scroll position, or the end when following.
pub fn top_line(total: usize, height: usize, scroll: Option<usize>) -> usize {
    let max = total.saturating_sub(height);
    scroll.map_or(max, |scroll| scroll.min(max))
}

/// Draws the log view of one job.
pub fn render(frame: &mut Frame, area: Rect, app: &App, name: &str, scroll: Option<usize>) {
    let mode = if scroll.is_none() {
        "following (k/↑ to scroll back)"
    } else {
        "paused (G to follow)"
    };
    let block = Block::bordered()
        .border_style(app.theme.border())
        .title(Line::from(vec![
            Span::styled(format!(" log: {name} "), app.theme.heading()),
            Span::styled(format!("· {mode} "), app.theme.dim()),
        ]));
    let inner = block.inner(area);
    let content = lines(app, name, usize::from(inner.width));
    let top = top_line(content.len(), usize::from(inner.height), scroll);
    let shown: Vec<Line> = content
        .into_iter()
        .skip(top)
        .take(usize::from(inner.height))
        .collect();
    frame.render_widget(Paragraph::new(shown).block(block), area);
}
