//! `App::update` on what the scheduler says: job events and replies. No terminal.

use super::fixtures::{self, app, flash, history, job, now, select, selected};
use crate::control::Verb;
use crate::control::{ActionError, JobEvent, ReloadSummary, RunSummary};
use crate::job::{RunResult, Status};
use crate::tui::action::{Action, Effect};
use crate::tui::app::{FlashKind, History, Message, Outcome, View};

#[test]
fn replies_become_flash_messages() {
    let mut app = app(120, 40);
    app.update(Outcome::Job {
        verb: Verb::Cancel,
        job: "heartbeat".into(),
        result: Ok("cancelled heartbeat".into()),
    });
    assert_eq!(flash(&app), ("cancelled heartbeat".into(), FlashKind::Info));
    app.update(Outcome::Job {
        verb: Verb::Activate,
        job: "ghost".into(),
        result: Err(ActionError("no job named ghost".into())),
    });
    assert_eq!(
        flash(&app),
        (
            "activate ghost failed: no job named ghost".into(),
            FlashKind::Error
        )
    );
    app.update(Action::Reload);
    app.update(Outcome::Reload(Ok(ReloadSummary {
        added: vec!["new-job".into()],
        unchanged: 8,
        ..ReloadSummary::default()
    })));
    assert!(!app.reloading);
    assert_eq!(
        flash(&app),
        (
            "reloaded: added new-job; 8 unchanged".into(),
            FlashKind::Info
        )
    );
    app.update(Outcome::Reload(Err(ActionError(
        "jobs.yaml:3:5: unknown key `intervall`\njobs.yaml:9:3: duplicate name".into(),
    ))));
    let (text, kind) = flash(&app);
    assert_eq!(kind, FlashKind::Error);
    assert!(text.starts_with("reload failed, 2 problems"), "{text}");
    assert!(
        text.ends_with(": jobs.yaml:3:5: unknown key `intervall`"),
        "{text}"
    );
    assert!(
        app.config_error.is_some(),
        "the header shows the config error"
    );
}

#[test]
fn info_flashes_fade_and_errors_stay() {
    let mut app = app(120, 40);
    app.update(Outcome::Job {
        verb: Verb::Trigger,
        job: "heartbeat".into(),
        result: Ok(String::new()),
    });
    assert_eq!(flash(&app).0, "trigger: heartbeat");
    app.update(Message::Tick(now() + chrono::Duration::seconds(11)));
    assert_eq!(app.flash(), None);
    app.update(JobEvent::ReloadFailed {
        error: "jobs.yaml:1:1: bad".into(),
    });
    app.update(Message::Tick(now() + chrono::Duration::seconds(60)));
    assert_eq!(flash(&app).1, FlashKind::Error);
    app.update(Action::Back);
    assert_eq!(app.flash(), None, "Esc clears it");
    assert!(app.config_error.is_some());
    app.update(JobEvent::Reloaded {
        summary: ReloadSummary::default(),
    });
    assert_eq!(app.config_error, None);
}

#[test]
fn job_events_update_rows_and_keep_the_selection() {
    let mut app = app(120, 40);
    app.update(Action::CycleSort); // by status: a status change moves rows
    select(&mut app, "ping-upstream");
    let before = app.jobs().selected_index();
    // cleanup-tmp (stopped, below) starts running: it moves above the selection.
    let mut cleanup = job("cleanup-tmp", Status::Running, 3_600.0);
    cleanup.runs = 4;
    app.update(JobEvent::Job {
        job: Box::new(cleanup),
    });
    app.refresh();
    assert_eq!(
        app.jobs().get("cleanup-tmp").unwrap().runs,
        4,
        "the row is replaced"
    );
    assert_eq!(selected(&app), "ping-upstream", "same job, by name");
    assert_eq!(app.jobs().selected_index(), before + 1, "one row lower");

    let newcomer = job("aaa-new", Status::Waiting, 5.0);
    app.update(JobEvent::Job {
        job: Box::new(newcomer),
    });
    app.refresh();
    assert_eq!(app.jobs().all().len(), 10);
    assert_eq!(selected(&app), "ping-upstream");

    app.update(JobEvent::Removed {
        name: "ping-upstream".into(),
    });
    app.refresh();
    assert_eq!(app.jobs().all().len(), 9);
    assert!(app.jobs().get("ping-upstream").is_none());
    assert!(app.jobs().selected().is_some(), "a neighbour is selected");
}

#[test]
fn a_new_deactivation_shows_in_the_flash_line() {
    let mut app = app(120, 40);
    let mut heartbeat = job("heartbeat", Status::Deactivated, 5.0);
    heartbeat.last_error = Some("heartbeat.lua:3: boom\nstack traceback:".into());
    app.update(JobEvent::Job {
        job: Box::new(heartbeat.clone()),
    });
    assert_eq!(
        flash(&app),
        (
            "heartbeat deactivated: heartbeat.lua:3: boom …".into(),
            FlashKind::Error
        )
    );
    app.update(Action::Back);
    app.update(JobEvent::Job {
        job: Box::new(heartbeat),
    });
    assert_eq!(app.flash(), None, "already deactivated: no news");
}

#[test]
fn details_ask_for_history_and_follow_finished_runs() {
    let mut app = app(120, 40);
    select(&mut app, "nightly-report");
    assert_eq!(
        app.update(Action::Open),
        Some(Effect::History("nightly-report".into()))
    );
    assert!(matches!(app.view(), View::Details { name, scroll: 0 } if name == "nightly-report"));
    assert_eq!(app.history, History::Loading);
    app.update(Outcome::History {
        job: "other".into(),
        result: Ok(vec![]),
    });
    assert_eq!(
        app.history,
        History::Loading,
        "a late answer for another job is ignored"
    );
    app.update(Outcome::History {
        job: "nightly-report".into(),
        result: Ok(history()),
    });
    let run = RunSummary {
        result: RunResult::Ok,
        ..history()[1].clone()
    };
    app.update(JobEvent::Finished {
        name: "nightly-report".into(),
        run: run.clone(),
    });
    match &app.history {
        History::Loaded(runs) => {
            assert_eq!(runs.len(), 9);
            assert_eq!(runs[0], run, "newest first");
        }
        other => panic!("{other:?}"),
    }
    // j scrolls the text; the text is longer than the 40-row screen allows.
    app.update(Action::MoveDown);
    assert!(matches!(app.view(), View::Details { scroll: 1, .. }));
    app.update(Action::Bottom);
    let View::Details { scroll: bottom, .. } = app.view().clone() else {
        panic!()
    };
    app.update(Action::MoveDown);
    assert!(
        matches!(app.view(), View::Details { scroll, .. } if *scroll == bottom),
        "clamped"
    );
    assert_eq!(
        app.update(Action::Trigger),
        Some(Effect::Act(Verb::Trigger, "nightly-report".into())),
        "job keys act on the job shown"
    );
    app.update(Action::Back);
    assert_eq!(app.view(), &View::Table);
}

#[test]
fn log_view_follows_until_scrolled_back() {
    let mut app = app(80, 12);
    select(&mut app, "heartbeat");
    app.update(Action::Logs);
    assert_eq!(
        app.view(),
        &View::Log {
            name: "heartbeat".into(),
            scroll: None
        }
    );
    for i in 0..600 {
        app.update(JobEvent::Log {
            name: "heartbeat".into(),
            line: format!("line {i}"),
        });
    }
    app.update(JobEvent::Finished {
        name: "heartbeat".into(),
        run: RunSummary {
            logs: vec!["not repeated".into()],
            ..history()[1].clone()
        },
    });
    let lines: Vec<_> = app.logs.lines("heartbeat").collect();
    assert_eq!(lines.len(), crate::tui::log_view::LOG_LINES, "bounded");
    assert!(
        !format!("{lines:?}").contains("not repeated"),
        "live lines are not doubled"
    );
    app.update(Action::MoveUp);
    assert!(
        matches!(
            app.view(),
            View::Log {
                scroll: Some(_),
                ..
            }
        ),
        "paused"
    );
    app.update(Action::Bottom);
    assert!(
        matches!(app.view(), View::Log { scroll: None, .. }),
        "following again"
    );
    app.update(Action::Back);
    assert_eq!(app.view(), &View::Table);
}

#[test]
fn finished_runs_fill_the_log_when_no_line_came_live() {
    let mut app = app(80, 24);
    app.update(JobEvent::Finished {
        name: "warm-cache".into(),
        run: history()[0].clone(),
    });
    let lines: Vec<_> = app.logs.lines("warm-cache").collect();
    assert_eq!(lines.len(), 3, "two lines and the end marker: {lines:?}");
}

#[test]
fn a_fresh_snapshot_replaces_the_table() {
    let mut app = app(120, 40);
    select(&mut app, "warm-cache");
    let mut jobs = fixtures::jobs();
    jobs.retain(|job| job.name != "legacy-sync");
    app.update(Message::Snapshot(fixtures::snapshot(jobs)));
    app.refresh();
    assert_eq!(app.jobs().all().len(), 8);
    assert_eq!(selected(&app), "warm-cache");
    assert_eq!(flash(&app).1, FlashKind::Warning);
}
