//! The details of one job (`Enter`): every field, its `jobs.yaml` entry, the full last error,
//! recent runs with a sparkline of their durations, and the latest run's log lines.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline};

use super::app::{App, History};
use super::format;
use super::render::status_span;
use super::theme::Theme;
use crate::control::{JobView, RunSummary};
use crate::schedule::{Schedule, Zone};
use crate::units::format_size;

/// Rows under the text for the sparkline: its caption and two rows of bars.
const SPARK_HEIGHT: u16 = 3;

/// Width of the field labels.
const LABEL: usize = 13;

/// The width and height of the scrolling text inside the details box in `body`.
pub fn text_size(body: Rect) -> (usize, usize) {
    (
        usize::from(body.width.saturating_sub(2)),
        usize::from(body.height.saturating_sub(2 + SPARK_HEIGHT)),
    )
}

fn field(theme: Theme, label: &str, value: impl Into<Vec<Span<'static>>>) -> Line<'static> {
    let mut spans = vec![Span::styled(format!("{label:<LABEL$}"), theme.dim())];
    spans.extend(value.into());
    Line::from(spans)
}

fn when(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    at.map_or_else(
        || "-".to_string(),
        |at| format!("{} ({})", format::timestamp(at), format::ago(Some(at), now)),
    )
}

/// Indented, wrapped lines of a block of text.
fn block_text(
    out: &mut Vec<Line<'static>>,
    text: &str,
    width: usize,
    style: ratatui::style::Style,
) {
    for line in format::wrap(text, width.saturating_sub(2)) {
        out.push(Line::styled(format!("  {line}"), style));
    }
}

/// The text of the details view of `job`, wrapped to `width`; the view scrolls through it.
pub fn lines(app: &App, job: &JobView, width: usize) -> Vec<Line<'static>> {
    let theme = app.theme;
    let mut out = fields(app, job, width);
    out.push(Line::default());
    out.push(Line::styled("jobs.yaml entry", theme.heading()));
    block_text(&mut out, job.entry_yaml.trim_end(), width, theme.dim());

    out.push(Line::default());
    match (&job.last_error, job.last_error_at) {
        (Some(error), at) => {
            out.push(Line::from(vec![
                Span::styled("last error ", theme.heading()),
                Span::styled(when(at, app.now), theme.dim()),
            ]));
            block_text(&mut out, error.trim_end(), width, theme.error());
        }
        (None, _) => out.push(Line::from(vec![
            Span::styled("last error ", theme.heading()),
            Span::styled("none", theme.dim()),
        ])),
    }

    out.push(Line::default());
    runs_section(&mut out, app, width);
    out
}

/// Retries and catch-up in one line: `3 · attempt 1 of 3, next at … · catch_up latest`.
fn retry_text(job: &JobView) -> String {
    use std::fmt::Write as _;
    let mut text = job.retries.to_string();
    if job.retry_attempt > 0 {
        let _ = write!(text, " · attempt {} of {}", job.retry_attempt, job.retries);
        if let Some(at) = job.retry_at {
            let _ = write!(text, ", next at {}", format::timestamp(at));
        }
    }
    let _ = write!(text, " · catch_up {}", job.catch_up);
    text
}

/// The job's schedule as the scheduler computes it, rebuilt from its row.
fn schedule_of(job: &JobView) -> Option<Schedule> {
    let zone = job.timezone.parse().map_or(Zone::System, Zone::Named);
    match job.interval_secs {
        Some(secs) => Some(Schedule::every(
            &job.name,
            std::time::Duration::try_from_secs_f64(secs).ok()?,
            zone,
        )),
        None => Schedule::cron(&job.schedule, zone).ok(),
    }
}

/// The schedule in words and its next five firings in the job's zone, with their offsets.
fn firings_section(out: &mut Vec<Line<'static>>, app: &App, job: &JobView) {
    let Some(schedule) = schedule_of(job) else {
        return;
    };
    let theme = app.theme;
    out.push(field(theme, "means", vec![Span::raw(schedule.describe())]));
    let zone = schedule.zone();
    for (i, firing) in schedule.upcoming(app.now, 5).into_iter().enumerate() {
        let label = if i == 0 { "next five" } else { "" };
        out.push(field(theme, label, vec![Span::raw(zone.rfc3339(firing))]));
    }
}

/// One labelled line per field of the job.
fn fields(app: &App, job: &JobView, width: usize) -> Vec<Line<'static>> {
    let theme = app.theme;
    let now = app.now;
    let mut out = vec![
        field(theme, "path", vec![Span::raw(job.path.clone())]),
        field(theme, "status", vec![status_span(theme, job.status)]),
        field(
            theme,
            "schedule",
            vec![Span::raw(format!(
                "{} ({}) · run once: {}",
                job.schedule,
                job.timezone,
                if job.run_once { "yes" } else { "no" },
            ))],
        ),
        field(theme, "retries", vec![Span::raw(retry_text(job))]),
        field(
            theme,
            "limits",
            vec![Span::raw(format!(
                "timeout {} · memory {}",
                format::interval(job.timeout_secs),
                format_size(job.memory_bytes),
            ))],
        ),
        field(
            theme,
            "next run",
            vec![Span::raw(job.next_run.map_or_else(
                || "-".to_string(),
                |next| {
                    format!(
                        "{} ({})",
                        format::timestamp(next),
                        format::countdown(Some(next), now)
                    )
                },
            ))],
        ),
    ];
    firings_section(&mut out, app, job);
    if let Some(since) = job.running_since {
        out.push(field(
            theme,
            "running",
            vec![Span::raw(format!(
                "since {} ({})",
                format::timestamp(since),
                format::elapsed(since, now)
            ))],
        ));
    }
    out.push(field(
        theme,
        "last run",
        vec![Span::raw(when(job.last_run, now))],
    ));
    let result = job.last_result.map_or_else(
        || "-".to_string(),
        |result| match job.last_duration_ms {
            Some(ms) => format!("{result} in {}", format::millis(ms)),
            None => result.to_string(),
        },
    );
    let result_style = if job
        .last_result
        .is_some_and(crate::job::RunResult::is_failure)
    {
        theme.error()
    } else {
        ratatui::style::Style::new()
    };
    out.push(field(
        theme,
        "last result",
        vec![Span::styled(result, result_style)],
    ));
    out.push(field(
        theme,
        "runs",
        vec![Span::raw(format!(
            "{} ({} ok, {} failed, {} skipped)",
            job.runs, job.oks, job.errors, job.skips
        ))],
    ));
    deactivation(&mut out, app, job, width);
    out
}

/// When, by whom and why the job was deactivated, if it was.
fn deactivation(out: &mut Vec<Line<'static>>, app: &App, job: &JobView, width: usize) {
    let theme = app.theme;
    if job.deactivated_at.is_none() && job.deactivated_reason.is_none() {
        return;
    }
    let by = job.deactivated_by.as_deref().unwrap_or("the scheduler");
    out.push(field(
        theme,
        "deactivated",
        vec![Span::styled(
            format!("{} by {by}", when(job.deactivated_at, app.now)),
            theme.error(),
        )],
    ));
    if let Some(reason) = &job.deactivated_reason {
        // Wrapped under its label: the reason is often a whole error message.
        let wrapped = format::wrap(reason.trim(), width.saturating_sub(LABEL));
        for (i, line) in wrapped.into_iter().enumerate() {
            let label = if i == 0 { "reason" } else { "" };
            out.push(field(theme, label, vec![Span::raw(line)]));
        }
    }
}

fn runs_section(out: &mut Vec<Line<'static>>, app: &App, width: usize) {
    let theme = app.theme;
    out.push(Line::styled("recent runs (newest first)", theme.heading()));
    let runs = match &app.history {
        History::Loading => {
            out.push(Line::styled("  loading…", theme.dim()));
            return;
        }
        History::Failed(error) => {
            out.push(Line::styled(
                format!("  history unavailable: {error}"),
                theme.error(),
            ));
            return;
        }
        History::Loaded(runs) if runs.is_empty() => {
            out.push(Line::styled("  no runs recorded yet", theme.dim()));
            return;
        }
        History::Loaded(runs) => runs,
    };
    out.push(Line::styled(
        format!(
            "  {:<23} {:<8} {:>9}  {:<9} ERROR",
            "STARTED", "RESULT", "DURATION", "TRIGGER"
        ),
        theme.dim(),
    ));
    for run in runs {
        let style = if run.result.is_failure() {
            theme.error()
        } else {
            ratatui::style::Style::new()
        };
        let error = run
            .error
            .as_deref()
            .map(format::first_line)
            .unwrap_or_default();
        let text = format!(
            "  {:<23} {:<8} {:>9}  {:<9} {error}",
            format::timestamp(run.started),
            run.result.as_str(),
            format::millis(run.duration_ms),
            run.trigger,
        );
        out.push(Line::styled(format::truncate(&text, width), style));
    }
    if let Some(latest) = runs.first() {
        latest_log(out, theme, latest, width);
    }
}

fn latest_log(out: &mut Vec<Line<'static>>, theme: Theme, run: &RunSummary, width: usize) {
    out.push(Line::default());
    out.push(Line::from(vec![
        Span::styled("log of the latest run ", theme.heading()),
        Span::styled(
            format!("({}, {})", format::timestamp(run.started), run.result),
            theme.dim(),
        ),
    ]));
    if run.logs.is_empty() {
        out.push(Line::styled("  no log lines", theme.dim()));
    }
    for line in &run.logs {
        block_text(out, line, width, ratatui::style::Style::new());
    }
}

/// Draws the details of the job `name`, scrolled down by `scroll` lines.
pub fn render(frame: &mut Frame, area: Rect, app: &App, name: &str, scroll: usize) {
    let theme = app.theme;
    let block = Block::bordered()
        .border_style(theme.border())
        .title(Line::from(vec![
            Span::styled(format!(" {name} "), theme.heading()),
            Span::styled("· details · Esc back ", theme.dim()),
        ]));
    let inner = block.inner(area);
    let Some(job) = app.jobs.get(name) else {
        frame.render_widget(block, area);
        frame.render_widget(
            Line::styled("this job is no longer in the configuration", theme.dim()),
            inner,
        );
        return;
    };
    let [text_area, spark_area] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(SPARK_HEIGHT)]).areas(inner);
    let content = lines(app, job, usize::from(text_area.width));
    let height = usize::from(text_area.height);
    let below = content.len().saturating_sub(scroll + height);
    // Say what is below the fold: the runs and their log are easy to miss otherwise.
    let block = if below > 0 {
        block.title_bottom(
            Line::styled(format!(" ↓ {below} more lines: j/↓ "), theme.key()).right_aligned(),
        )
    } else {
        block
    };
    frame.render_widget(block, area);
    let shown: Vec<Line> = content.into_iter().skip(scroll).take(height).collect();
    frame.render_widget(Paragraph::new(shown), text_area);
    sparkline(frame, spark_area, app);
}

/// Durations of the recent runs, oldest on the left.
fn sparkline(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme;
    let runs: &[RunSummary] = match &app.history {
        History::Loaded(runs) => runs,
        _ => &[],
    };
    let [caption, bars] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    if runs.is_empty() {
        frame.render_widget(Line::styled("durations: no runs yet", theme.dim()), caption);
        return;
    }
    let durations: Vec<f64> = runs.iter().rev().map(|run| run.duration_ms).collect();
    let (min, max) = durations
        .iter()
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), d| {
            (lo.min(*d), hi.max(*d))
        });
    frame.render_widget(
        Line::from(vec![
            Span::styled(
                match runs.len() {
                    1 => "duration of the last run ".to_string(),
                    n => format!("durations of the last {n} runs "),
                },
                theme.heading(),
            ),
            Span::styled(
                format!(
                    "(oldest → newest; min {}, max {})",
                    format::millis(min),
                    format::millis(max)
                ),
                theme.dim(),
            ),
        ]),
        caption,
    );
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // bar heights only
    let data: Vec<u64> = durations
        .iter()
        // Microseconds: sub-millisecond runs are common and would all round to zero.
        .map(|d| (d.max(0.0) * 1_000.0).round() as u64)
        .collect();
    // Wider bars when there is room: eight one-column bars are hard to read.
    let repeat = (usize::from(bars.width) / data.len().max(1)).clamp(1, 3);
    let data: Vec<u64> = data
        .into_iter()
        .flat_map(|d| std::iter::repeat_n(d, repeat))
        .collect();
    frame.render_widget(
        Sparkline::default()
            // An explicit floor, so a row of zero-length runs draws as empty, not as full bars.
            .max(data.iter().copied().max().unwrap_or(0).max(1))
            .data(data)
            .style(theme.fg(ratatui::style::Color::Cyan)),
        bars,
    );
}
