//! `App::update`: state and message in, new state and command out. No terminal.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::fixtures::{self, app, flash, job, now, select, selected, visible};
use crate::control::Verb;
use crate::job::Status;
use crate::tui::action::{Action, Effect};
use crate::tui::app::{App, FlashKind, Message, Overlay};
use crate::tui::keymap::{self, KeyContext};
use crate::tui::list::{SortKey, StatusFilter};

#[test]
fn moves_within_bounds() {
    let mut app = app(120, 40);
    assert_eq!(
        selected(&app),
        "cleanup-tmp",
        "sorted by name, first selected"
    );
    app.update(Action::MoveUp);
    assert_eq!(selected(&app), "cleanup-tmp", "stays at the top");
    app.update(Action::MoveDown);
    assert_eq!(selected(&app), "fetch-prices");
    app.update(Action::Bottom);
    assert_eq!(selected(&app), "weekly-digest");
    app.update(Action::MoveDown);
    assert_eq!(selected(&app), "weekly-digest", "stays at the bottom");
    app.update(Action::Top);
    assert_eq!(selected(&app), "cleanup-tmp");
}

#[test]
fn pages_and_scrolls_the_window() {
    // 10 rows: header 2, flash 1, footer 1, column titles 1, so 5 job rows.
    let mut app = app(80, 10);
    assert_eq!(app.table_rows(), 5);
    app.update(Action::PageDown);
    assert_eq!(app.jobs().selected_index(), 5);
    assert_eq!(
        app.jobs().offset(),
        1,
        "the selection is the last row of the window"
    );
    app.update(Action::PageDown);
    assert_eq!(app.jobs().selected_index(), 8, "clamped to the last job");
    assert_eq!(app.jobs().offset(), 4);
    app.update(Action::PageUp);
    assert_eq!(app.jobs().selected_index(), 3);
    assert_eq!(app.jobs().offset(), 3, "scrolled up to show the selection");
    app.update(Action::Top);
    assert_eq!(app.jobs().offset(), 0);
    app.update(Message::Resize(80, 30));
    app.update(Action::Bottom);
    assert_eq!(app.jobs().offset(), 0, "everything fits: no scrolling");
}

#[test]
fn name_filter_is_typed_kept_and_cleared() {
    let mut app = app(120, 40);
    assert_eq!(app.update(Action::StartFilter), None);
    assert_eq!(app.key_context(), KeyContext::Filter);
    for c in "REP".chars() {
        app.update(Action::FilterInput(c));
    }
    assert_eq!(
        visible(&app),
        ["nightly-report"],
        "case-insensitive substring"
    );
    app.update(Action::FilterBackspace);
    assert_eq!(
        visible(&app),
        ["nightly-report", "ping-upstream"],
        "\"re\" matches both"
    );
    app.update(Action::FilterAccept);
    assert_eq!(app.key_context(), KeyContext::Normal);
    assert_eq!(
        visible(&app),
        ["nightly-report", "ping-upstream"],
        "Enter keeps the filter"
    );
    app.update(Action::Back);
    assert_eq!(
        visible(&app).len(),
        9,
        "Esc in the table clears a kept filter"
    );

    app.update(Action::StartFilter);
    app.update(Action::FilterInput('x'));
    assert!(visible(&app).is_empty());
    app.update(Action::Back);
    assert_eq!(app.key_context(), KeyContext::Normal);
    assert_eq!(visible(&app).len(), 9, "Esc while typing clears the filter");
}

#[test]
fn typing_a_filter_does_not_trigger_job_keys() {
    let mut app = app(120, 40);
    app.update(Action::StartFilter);
    let key = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
    let action = keymap::action_for(app.key_context(), key).unwrap();
    assert_eq!(action, Action::FilterInput('q'));
    assert_eq!(app.update(action), None, "q is text here, not quit");
    assert_eq!(app.update(Action::Reload), None);
}

#[test]
fn status_filter_cycles() {
    let mut app = app(120, 40);
    let mut seen = Vec::new();
    for _ in 0..6 {
        app.update(Action::CycleStatusFilter);
        seen.push((app.jobs().status_filter, visible(&app)));
    }
    assert_eq!(seen[0].0, StatusFilter::Failing);
    assert_eq!(seen[0].1, ["nightly-report", "send-invoices"]);
    assert_eq!(seen[1].0, StatusFilter::Running);
    assert_eq!(seen[1].1, ["fetch-prices"]);
    assert_eq!(seen[2].0, StatusFilter::Waiting);
    assert_eq!(seen[2].1, ["heartbeat", "ping-upstream"]);
    assert_eq!(seen[3].0, StatusFilter::Idle);
    assert_eq!(seen[3].1, ["cleanup-tmp", "warm-cache", "weekly-digest"]);
    assert_eq!(seen[4].0, StatusFilter::Disabled);
    assert_eq!(seen[4].1, ["legacy-sync"]);
    assert_eq!(seen[5].0, StatusFilter::All);
    assert_eq!(seen[5].1.len(), 9);
}

#[test]
fn sort_cycles_and_keeps_the_selection() {
    let mut app = app(120, 40);
    select(&mut app, "heartbeat");
    app.update(Action::CycleSort);
    assert_eq!(app.jobs().sort, SortKey::Status);
    assert_eq!(
        visible(&app)[..3],
        ["nightly-report", "send-invoices", "fetch-prices"],
        "problems first"
    );
    assert_eq!(selected(&app), "heartbeat", "the selection follows the job");
    app.update(Action::CycleSort);
    assert_eq!(app.jobs().sort, SortKey::NextRun);
    assert_eq!(
        visible(&app)[..3],
        ["heartbeat", "ping-upstream", "fetch-prices"]
    );
    app.update(Action::CycleSort);
    assert_eq!(app.jobs().sort, SortKey::LastRun);
    assert_eq!(
        visible(&app)[..3],
        ["heartbeat", "ping-upstream", "warm-cache"]
    );
    assert_eq!(
        visible(&app).last().unwrap(),
        "legacy-sync",
        "never run: last"
    );
    app.update(Action::CycleSort);
    assert_eq!(app.jobs().sort, SortKey::Name);
}

#[test]
fn job_keys_ask_for_the_selected_job() {
    let mut app = app(120, 40);
    select(&mut app, "nightly-report");
    assert_eq!(app.update(Action::Reload), Some(Effect::Reload));
    assert!(app.reloading);
    assert_eq!(
        app.update(Action::Activate),
        Some(Effect::Act(Verb::Activate, "nightly-report".into()))
    );
    assert_eq!(
        app.update(Action::Trigger),
        Some(Effect::Act(Verb::Trigger, "nightly-report".into()))
    );
    select(&mut app, "heartbeat");
    assert_eq!(
        app.update(Action::Cancel),
        Some(Effect::Act(Verb::Cancel, "heartbeat".into())),
        "not running: no question"
    );
    assert_eq!(app.overlay(), None);
}

#[test]
fn job_keys_with_nothing_selected_say_so() {
    let mut app = app(120, 40);
    app.update(Action::StartFilter);
    app.update(Action::FilterInput('#'));
    app.update(Action::FilterAccept);
    assert_eq!(app.update(Action::Trigger), None);
    assert_eq!(flash(&app), ("no job selected".into(), FlashKind::Warning));
    assert_eq!(app.update(Action::Open), None);
}

#[test]
fn cancelling_a_running_job_asks_first() {
    let mut app = app(120, 40);
    select(&mut app, "fetch-prices");
    assert_eq!(app.update(Action::Cancel), None);
    assert_eq!(
        app.overlay(),
        Some(&Overlay::ConfirmCancel {
            name: "fetch-prices".into()
        })
    );
    assert_eq!(app.key_context(), KeyContext::Confirm);
    assert_eq!(
        app.update(Action::Trigger),
        None,
        "other keys wait for the answer"
    );
    assert_eq!(app.update(Action::Dismiss), None);
    assert_eq!(app.overlay(), None, "n dismisses");

    app.update(Action::Cancel);
    assert_eq!(app.update(Action::Back), None);
    assert_eq!(app.overlay(), None, "Esc dismisses");

    app.update(Action::Cancel);
    assert_eq!(
        app.update(Action::Confirm),
        Some(Effect::Act(Verb::Cancel, "fetch-prices".into())),
        "y confirms"
    );
    assert_eq!(app.overlay(), None);
}

#[test]
fn help_toggles_and_scrolls() {
    let mut app = app(60, 20);
    app.update(Action::Help);
    assert_eq!(app.overlay(), Some(&Overlay::Help { scroll: 0 }));
    assert_eq!(
        app.update(Action::Reload),
        None,
        "keys go to the help while it is open"
    );
    app.update(Action::MoveDown);
    assert_eq!(app.overlay(), Some(&Overlay::Help { scroll: 1 }));
    app.update(Action::Help);
    assert_eq!(app.overlay(), None);
    app.update(Action::Help);
    app.update(Action::Back);
    assert_eq!(app.overlay(), None);
}

#[test]
fn quit_from_anywhere() {
    let mut app = app(120, 40);
    assert_eq!(app.update(Action::Quit), Some(Effect::Quit));
    app.update(Action::Help);
    assert_eq!(app.update(Action::Quit), Some(Effect::Quit));
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    for context in [KeyContext::Normal, KeyContext::Filter, KeyContext::Confirm] {
        assert_eq!(
            keymap::action_for(context, ctrl_c),
            Some(Action::Quit),
            "{context:?}"
        );
    }
}

#[test]
fn keymap_reads_keys_as_the_help_says() {
    let key = |code, modifiers| KeyEvent::new(code, modifiers);
    let normal = |k| keymap::action_for(KeyContext::Normal, k);
    assert_eq!(
        normal(key(KeyCode::Char('G'), KeyModifiers::SHIFT)),
        Some(Action::Bottom)
    );
    assert_eq!(
        normal(key(KeyCode::Down, KeyModifiers::NONE)),
        Some(Action::MoveDown)
    );
    assert_eq!(
        normal(key(KeyCode::Char('c'), KeyModifiers::NONE)),
        Some(Action::Cancel)
    );
    assert_eq!(normal(key(KeyCode::Char('x'), KeyModifiers::NONE)), None);
    assert_eq!(normal(key(KeyCode::Char('q'), KeyModifiers::ALT)), None);
    let confirm = |k| keymap::action_for(KeyContext::Confirm, k);
    assert_eq!(
        confirm(key(KeyCode::Char('y'), KeyModifiers::NONE)),
        Some(Action::Confirm)
    );
    assert_eq!(
        confirm(key(KeyCode::Esc, KeyModifiers::NONE)),
        Some(Action::Dismiss)
    );
    assert_eq!(confirm(key(KeyCode::Char('q'), KeyModifiers::NONE)), None);
}

#[test]
fn ten_thousand_jobs_page_without_trouble() {
    let jobs = (0..10_000)
        .map(|i| job(&format!("job-{i:05}"), Status::Waiting, 5.0))
        .collect();
    let mut app = App::new(
        fixtures::snapshot(jobs),
        None,
        crate::tui::theme::Theme::new(true),
        (120, 40),
        now(),
    );
    app.update(Action::Bottom);
    assert_eq!(selected(&app), "job-09999");
    assert_eq!(app.jobs().window(app.table_rows()).count(), 35);
    app.update(Action::PageUp);
    assert_eq!(app.jobs().selected_index(), 9_999 - 35);
}
