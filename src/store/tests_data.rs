//! What the store keeps: job state, run batches, history, retention, audit and `core.state`.

use std::time::Duration;

use chrono::TimeDelta;

use super::tests::{at, run};
use super::{AuditEntry, LiveUpdate, MAX_STORED_LOG_BYTES, RunRecord, Store, StoreError, codec};
use crate::job::{RunResult, Status, Trigger};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    (dir, store)
}

fn run_count(store: &Store) -> i64 {
    store
        .conn
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn deactivation_and_activation_survive_reopening() {
    let (dir, mut store) = store();
    let path = store.path().to_path_buf();
    let t = at("2025-03-04T05:06:07.890Z");
    store
        .deactivate("sync", "cancelled by operator", Some("alice"), t)
        .unwrap();
    drop(store);

    let mut store = Store::open(&path).unwrap();
    let s = store.job_state("sync").unwrap().unwrap();
    assert!(s.deactivated);
    assert_eq!(
        s.deactivated_reason.as_deref(),
        Some("cancelled by operator")
    );
    assert_eq!(s.deactivated_at, Some(t));
    assert_eq!(s.deactivated_by.as_deref(), Some("alice"));
    assert_eq!(s.status, Some(Status::Deactivated));
    assert_eq!(s.runs, 0);

    store.activate("sync", at("2025-03-04T06:00:00Z")).unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    let s = store.job_state("sync").unwrap().unwrap();
    assert!(!s.deactivated);
    assert_eq!(s.deactivated_reason, None);
    assert_eq!(s.deactivated_at, None);
    assert_eq!(s.deactivated_by, None);
    assert_eq!(s.status, None);
    assert_eq!(store.job_state("other").unwrap(), None);
    drop(dir);
}

#[test]
fn a_batch_updates_counts_and_last_fields() {
    let (_dir, mut store) = store();
    let mut failed = run(
        "j",
        "2025-01-01T00:01:00Z",
        RunResult::Error,
        Some("boom at j.lua:3"),
    );
    failed.duration = Duration::from_millis(1500);
    let mut batch = vec![
        run("j", "2025-01-01T00:00:00Z", RunResult::Ok, None),
        failed,
        run("j", "2025-01-01T00:01:30Z", RunResult::Skipped, None),
        run("j", "2025-01-01T00:02:00Z", RunResult::Ok, None),
        run("k", "2025-01-01T00:00:00Z", RunResult::Skipped, None),
    ];
    batch[3].scheduled = at("2025-01-01T00:01:59.500Z");
    let live = [
        LiveUpdate {
            job: "j".into(),
            status: Status::Waiting,
            next_run: Some(at("2025-01-01T00:03:00Z")),
            last_fired: Some(at("2025-01-01T00:02:00Z")),
            retry_attempt: 0,
            retry_at: None,
        },
        LiveUpdate {
            job: "idle".into(),
            status: Status::Disabled,
            next_run: None,
            last_fired: None,
            retry_attempt: 0,
            retry_at: None,
        },
    ];
    store.record(&batch, &live).unwrap();

    let j = store.job_state("j").unwrap().unwrap();
    assert_eq!((j.runs, j.oks, j.errors, j.skips), (3, 2, 1, 1));
    assert_eq!(j.last_result, Some(RunResult::Ok));
    assert_eq!(j.last_run, Some(at("2025-01-01T00:02:00Z")));
    assert_eq!(j.last_scheduled, Some(at("2025-01-01T00:01:59.500Z")));
    assert_eq!(j.last_duration_ms, Some(12.0));
    // The ok run after the error keeps it, with the time the failing run ended.
    assert_eq!(j.last_error.as_deref(), Some("boom at j.lua:3"));
    assert_eq!(j.last_error_at, Some(at("2025-01-01T00:01:01.500Z")));
    assert_eq!(j.status, Some(Status::Waiting));
    assert_eq!(j.next_run, Some(at("2025-01-01T00:03:00Z")));
    // Recording never deactivates by itself: that is the scheduler's call.
    assert!(!j.deactivated);

    // A skipped run is history, but not the last run.
    let k = store.job_state("k").unwrap().unwrap();
    assert_eq!((k.runs, k.skips), (0, 1));
    assert_eq!((k.last_result, k.last_run), (None, None));
    assert_eq!(store.history("k", 10).unwrap().len(), 1);

    let idle = store.job_state("idle").unwrap().unwrap();
    assert_eq!((idle.status, idle.runs), (Some(Status::Disabled), 0));

    // `aborted` has an error that replaces the last one; `exit` and `timeout` count apart.
    let batch = [
        run(
            "j",
            "2025-01-01T00:04:00Z",
            RunResult::Aborted,
            Some("aborted by alice"),
        ),
        run("j", "2025-01-01T00:05:00Z", RunResult::Exit, None),
        run("j", "2025-01-01T00:06:00Z", RunResult::Timeout, None),
    ];
    store.record(&batch[..2], &[]).unwrap();
    let j = store.job_state("j").unwrap().unwrap();
    assert_eq!((j.runs, j.oks, j.errors, j.skips), (5, 2, 1, 1));
    assert_eq!(j.last_result, Some(RunResult::Exit));
    assert_eq!(j.last_error.as_deref(), Some("aborted by alice"));
    store.record(&batch[2..], &[]).unwrap();
    let j = store.job_state("j").unwrap().unwrap();
    assert_eq!((j.runs, j.errors), (6, 2));
    assert_eq!(j.last_error.as_deref(), Some("timeout"));

    let names: Vec<_> = store
        .job_states()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["idle", "j", "k"]);
}

#[test]
fn history_is_newest_first_and_round_trips_every_field() {
    let (_dir, mut store) = store();
    let mut runs: Vec<RunRecord> = (0..5)
        .map(|i| {
            run(
                "h",
                &format!("2025-01-01T00:0{i}:00.123Z"),
                RunResult::Ok,
                None,
            )
        })
        .collect();
    runs[4].trigger = Trigger::Operator;
    runs[4].duration = Duration::new(2, 345_678_901);
    runs[4].logs = vec!["first".into(), "émoji ✓ \"quoted\"\n".into()];
    runs[4].result = RunResult::Syntax;
    runs[4].error = Some("jobs/h.lua:1: syntax error".into());
    runs.push(run("other", "2025-01-01T00:09:00Z", RunResult::Ok, None));
    // Out of order on purpose: history sorts by start time, not by insertion.
    runs.swap(0, 4);
    store.record(&runs, &[]).unwrap();

    let got = store.history("h", 3).unwrap();
    let starts: Vec<_> = got.iter().map(|r| r.started).collect();
    assert_eq!(
        starts,
        [
            at("2025-01-01T00:04:00.123Z"),
            at("2025-01-01T00:03:00.123Z"),
            at("2025-01-01T00:02:00.123Z"),
        ]
    );
    assert_eq!(got[0], runs[0]);
    assert_eq!(store.history("h", 100).unwrap().len(), 5);
    assert_eq!(store.history("h", usize::MAX).unwrap().len(), 5);
    assert!(store.history("h", 0).unwrap().is_empty());
    assert!(store.history("nobody", 10).unwrap().is_empty());
}

#[test]
fn retention_by_count_and_by_age_across_jobs() {
    let (_dir, mut store) = store();
    let now = at("2025-06-30T12:00:00Z");
    let mut runs = Vec::new();
    for job in ["a", "b", "c"] {
        for day in 0..20 {
            let started = now - TimeDelta::days(day) - TimeDelta::hours(1);
            let mut r = run(job, "2025-01-01T00:00:00Z", RunResult::Ok, None);
            r.started = started;
            r.scheduled = started;
            runs.push(r);
        }
    }
    // Same start time twice: the count limit still keeps exactly `keep_runs`.
    runs.push(runs[0].clone());
    // A job with few, recent runs loses nothing.
    runs.push(run("d", "2025-06-30T11:00:00Z", RunResult::Ok, None));
    store.record(&runs, &[]).unwrap();
    assert_eq!(run_count(&store), 62);

    // By age: runs from 0..=9 days ago (minus an hour) stay.
    let deleted = store.enforce_retention(1000, 10, now).unwrap();
    assert_eq!(deleted, 3 * 10);
    assert_eq!(store.history("a", 100).unwrap().len(), 11);
    assert_eq!(store.history("b", 100).unwrap().len(), 10);

    // By count: the newest 4 of each.
    let deleted = store.enforce_retention(4, 10, now).unwrap();
    assert_eq!(deleted, 7 + 6 + 6);
    for job in ["a", "b", "c"] {
        let kept = store.history(job, 100).unwrap();
        assert_eq!(kept.len(), 4, "{job}");
        assert_eq!(kept[0].started, now - TimeDelta::hours(1));
        // Job a has two runs at the newest time, so its fourth newest is a day older.
        let fourth = if job == "a" { 2 } else { 3 };
        assert_eq!(
            kept[3].started,
            now - TimeDelta::days(fourth) - TimeDelta::hours(1)
        );
    }
    assert_eq!(store.history("d", 100).unwrap().len(), 1);
    assert_eq!(store.enforce_retention(4, 10, now).unwrap(), 0);
    // Ties at the cut: the later inserted of equal start times count as newer.
    let mut tied = run("t", "2025-06-30T11:00:00Z", RunResult::Ok, None);
    let batch: Vec<_> = ["first", "second", "third"]
        .map(|l| {
            tied.logs = vec![l.to_string()];
            tied.clone()
        })
        .into();
    store.record(&batch, &[]).unwrap();
    // Two of each of a, b and c go too.
    assert_eq!(store.enforce_retention(2, 10, now).unwrap(), 1 + 3 * 2);
    let kept: Vec<_> = store
        .history("t", 10)
        .unwrap()
        .into_iter()
        .map(|r| r.logs[0].clone())
        .collect();
    assert_eq!(kept, ["third", "second"]);
    assert_eq!(store.history("d", 100).unwrap().len(), 1);
    // Counts are totals of all runs ever, not of the runs kept.
    assert_eq!(store.job_state("a").unwrap().unwrap().runs, 21);
}

#[test]
fn removed_jobs_lose_their_live_status_but_keep_their_deactivation() {
    let (_dir, mut store) = store();
    let t = at("2025-01-01T00:00:00Z");
    let live: Vec<_> = ["keep", "gone"]
        .map(|job| LiveUpdate {
            job: job.into(),
            status: Status::Waiting,
            next_run: Some(t),
            last_fired: None,
            retry_attempt: 0,
            retry_at: None,
        })
        .into();
    store.record(&[], &live).unwrap();
    store.deactivate("gone", "failed", None, t).unwrap();
    store.forget_jobs_except(&["keep"]).unwrap();

    let keep = store.job_state("keep").unwrap().unwrap();
    assert_eq!(
        (keep.status, keep.next_run),
        (Some(Status::Waiting), Some(t))
    );
    let gone = store.job_state("gone").unwrap().unwrap();
    assert_eq!((gone.status, gone.next_run), (None, None));
    assert!(gone.deactivated);
    assert_eq!(gone.deactivated_reason.as_deref(), Some("failed"));
}

#[test]
fn ten_thousand_runs_are_one_transaction() {
    let (_dir, mut store) = store();
    let base = at("2025-01-01T00:00:00Z");
    let mut runs: Vec<RunRecord> = (0..10_000)
        .map(|i| {
            let mut r = run(
                &format!("job{}", i % 10),
                "2025-01-01T00:00:00Z",
                RunResult::Ok,
                None,
            );
            r.started = base + TimeDelta::seconds(i);
            if (i / 10) % 100 == 0 {
                r.result = RunResult::Skipped;
            }
            r
        })
        .collect();

    // A batch whose last run fails to insert leaves no trace of the others: one transaction.
    store
        .conn
        .execute_batch(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON runs WHEN NEW.job = 'refused'
             BEGIN SELECT RAISE(ABORT, 'refused by test'); END;",
        )
        .unwrap();
    runs.push(run("refused", "2025-01-01T00:00:00Z", RunResult::Ok, None));
    assert!(store.record(&runs, &[]).is_err());
    assert_eq!(run_count(&store), 0);
    assert!(store.job_states().unwrap().is_empty());
    runs.pop();

    store.record(&runs, &[]).unwrap();
    assert_eq!(run_count(&store), 10_000);
    let states = store.job_states().unwrap();
    assert_eq!(states.len(), 10);
    for s in &states {
        assert_eq!((s.runs, s.oks, s.skips), (990, 990, 10), "{}", s.name);
    }
}

#[test]
fn long_logs_are_cut_in_the_middle() {
    let lines: Vec<String> = (0..1000)
        .map(|i| format!("{i:04} {}", "x".repeat(4090)))
        .collect();
    let json = codec::logs_json(&lines);
    assert!(json.len() <= MAX_STORED_LOG_BYTES, "{}", json.len());
    let stored: Vec<String> = serde_json::from_str(&json).unwrap();
    assert_eq!(stored.first(), lines.first());
    assert_eq!(stored.last(), lines.last());
    let marker = stored.iter().position(|l| l.contains("dropped")).unwrap();
    assert_eq!(stored[..marker], lines[..marker]);
    let tail = stored.len() - marker - 1;
    assert_eq!(stored[marker + 1..], lines[lines.len() - tail..]);
    let dropped = lines.len() - (stored.len() - 1);
    assert!(
        stored[marker].contains(&format!("{dropped} log lines dropped")),
        "{}",
        stored[marker]
    );

    // Short logs are kept whole, through the database too.
    let (_dir, mut store) = store();
    let mut r = run("l", "2025-01-01T00:00:00Z", RunResult::Ok, None);
    r.logs = lines[..10].to_vec();
    store.record(&[r.clone()], &[]).unwrap();
    assert_eq!(store.history("l", 1).unwrap()[0].logs, r.logs);
    assert_eq!(codec::logs_json(&[]), "[]");
}

#[test]
fn audit_entries_are_kept_newest_first() {
    let (_dir, mut store) = store();
    for (i, job) in ["a", "b", "a"].into_iter().enumerate() {
        store
            .record_audit(&AuditEntry {
                at: at("2025-01-01T00:00:00Z") + TimeDelta::minutes(i64::try_from(i).unwrap()),
                user: Some("alice".into()),
                action: "cancel".into(),
                job: Some(job.into()),
                detail: (i == 2).then(|| "second time".into()),
            })
            .unwrap();
    }
    let a = store.audit(Some("a"), 10).unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].detail.as_deref(), Some("second time"));
    assert_eq!(a[0].at, at("2025-01-01T00:02:00Z"));
    assert_eq!(store.audit(None, 2).unwrap().len(), 2);
    assert_eq!(store.audit(None, 10).unwrap()[1].job.as_deref(), Some("b"));
}

#[test]
fn job_state_values_are_json_text() {
    let (_dir, mut store) = store();
    assert_eq!(store.state_get("j", "k").unwrap(), None);
    store.state_set("j", "k", r#"{"n": 1}"#).unwrap();
    store.state_set("j", "k", "[1,2]").unwrap();
    store.state_set("other", "k", "true").unwrap();
    assert_eq!(store.state_get("j", "k").unwrap().as_deref(), Some("[1,2]"));
    let err = store.state_set("j", "k", "{nope").unwrap_err();
    assert!(matches!(err, StoreError::InvalidJson { .. }), "{err}");
    assert_eq!(store.state_get("j", "k").unwrap().as_deref(), Some("[1,2]"));
    store.state_delete("j", "k").unwrap();
    store.state_delete("j", "k").unwrap();
    assert_eq!(store.state_get("j", "k").unwrap(), None);
    assert_eq!(
        store.state_get("other", "k").unwrap().as_deref(),
        Some("true")
    );
}

#[test]
fn a_value_edited_by_hand_is_reported_not_guessed() {
    let (_dir, mut store) = store();
    store
        .record(
            &[run("j", "2025-01-01T00:00:00Z", RunResult::Ok, None)],
            &[],
        )
        .unwrap();
    store
        .conn
        .execute("UPDATE jobs SET last_result = 'great'", [])
        .unwrap();
    let err = store.job_states().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::BadValue { .. }), "{msg}");
    assert!(msg.contains("last_result"), "{msg}");
    assert!(msg.contains("great"), "{msg}");
}
