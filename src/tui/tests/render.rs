//! Snapshots of the screen on `TestBackend`, with a fixed "now" and the fixture jobs.

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::fixtures::{app, history, select};
use crate::control::JobEvent;
use crate::tui::action::Action;
use crate::tui::app::{App, Message, Outcome};
use crate::tui::render;

fn screen(app: &mut App, columns: u16, rows: u16) -> Terminal<TestBackend> {
    app.update(Message::Resize(columns, rows));
    app.refresh();
    let mut terminal = Terminal::new(TestBackend::new(columns, rows)).unwrap();
    terminal.draw(|frame| render::draw(frame, app)).unwrap();
    terminal
}

#[test]
fn table_120x40() {
    let mut app = app(120, 40);
    select(&mut app, "nightly-report");
    insta::assert_snapshot!(screen(&mut app, 120, 40).backend());
}

#[test]
fn table_80x24() {
    let mut app = app(80, 24);
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn table_60x20() {
    let mut app = app(60, 20);
    insta::assert_snapshot!(screen(&mut app, 60, 20).backend());
}

#[test]
fn table_200x30() {
    let mut app = app(200, 30);
    insta::assert_snapshot!(screen(&mut app, 200, 30).backend());
}

/// The details of a calendar job: its expression, zone, words and next firings with offsets.
#[test]
fn calendar_details_120x40() {
    let mut app = app(120, 40);
    select(&mut app, "weekly-digest");
    app.update(Action::Open);
    insta::assert_debug_snapshot!(screen(&mut app, 120, 40).backend());
}

fn details(columns: u16, rows: u16) -> Terminal<TestBackend> {
    let mut app = app(columns, rows);
    select(&mut app, "nightly-report");
    app.update(Action::Open);
    app.update(Outcome::History {
        job: "nightly-report".into(),
        result: Ok(history()),
    });
    screen(&mut app, columns, rows)
}

#[test]
fn details_120x40() {
    insta::assert_snapshot!(details(120, 40).backend());
}

#[test]
fn details_80x24() {
    insta::assert_snapshot!(details(80, 24).backend());
}

#[test]
fn details_scrolled_80x24() {
    let mut app = app(80, 24);
    select(&mut app, "nightly-report");
    app.update(Action::Open);
    app.update(Outcome::History {
        job: "nightly-report".into(),
        result: Ok(history()),
    });
    app.update(Action::Bottom);
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn help_120x40() {
    let mut app = app(120, 40);
    app.update(Action::Help);
    insta::assert_snapshot!(screen(&mut app, 120, 40).backend());
}

#[test]
fn help_80x24() {
    let mut app = app(80, 24);
    app.update(Action::Help);
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn help_60x20() {
    let mut app = app(60, 20);
    app.update(Action::Help);
    insta::assert_snapshot!(screen(&mut app, 60, 20).backend());
}

#[test]
fn name_filter_80x24() {
    let mut app = app(80, 24);
    app.update(Action::StartFilter);
    for c in "re".chars() {
        app.update(Action::FilterInput(c));
    }
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn status_filter_and_sort_120x40() {
    let mut app = app(120, 40);
    app.update(Action::CycleStatusFilter);
    app.update(Action::CycleSort);
    insta::assert_snapshot!(screen(&mut app, 120, 40).backend());
}

#[test]
fn confirm_cancel_80x24() {
    let mut app = app(80, 24);
    select(&mut app, "fetch-prices");
    app.update(Action::Cancel);
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn reload_error_120x40() {
    let mut app = app(120, 40);
    app.update(Action::Reload);
    app.update(JobEvent::ReloadFailed {
        error: "/srv/jobtop/jobs.yaml:7:5: unknown key `intervall`: expected one of name, path, \
                interval, active, run_once, timeout, memory, allow, files, env\n\
                /srv/jobtop/jobs.yaml:12:11: duplicate job name `heartbeat`"
            .into(),
    });
    insta::assert_snapshot!(screen(&mut app, 120, 40).backend());
}

#[test]
fn log_view_80x24() {
    let mut app = app(80, 24);
    select(&mut app, "heartbeat");
    for i in 0..30 {
        app.update(JobEvent::Log {
            name: "heartbeat".into(),
            line: format!("beat {i}: upstream ok in {}ms", 10 + i),
        });
    }
    app.update(Action::Logs);
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn attached_and_empty() {
    let mut app = App::new(
        super::fixtures::snapshot(Vec::new()),
        Some(4242),
        crate::tui::theme::Theme::new(false),
        (80, 24),
        super::fixtures::now(),
    );
    insta::assert_snapshot!(screen(&mut app, 80, 24).backend());
}

#[test]
fn no_color_draws_no_colour() {
    let mut app = App::new(
        super::fixtures::snapshot(super::fixtures::jobs()),
        None,
        crate::tui::theme::Theme::new(false),
        (120, 40),
        super::fixtures::now(),
    );
    let terminal = screen(&mut app, 120, 40);
    for cell in terminal.backend().buffer().content() {
        assert_eq!(cell.fg, ratatui::style::Color::Reset, "{cell:?}");
        assert_eq!(cell.bg, ratatui::style::Color::Reset, "{cell:?}");
    }
}
