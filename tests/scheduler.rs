//! The scheduler on tokio's paused clock: real job files, a real state database, real worker
//! threads, and virtual time moved by `tokio::time::advance` (the workers are blocking tasks,
//! which keeps tokio from jumping the clock while a run is going).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::paused::{OK_JOB, start, start_at, start_in, step, wall_base};
use jobtop::control::{JobEvent, Verb};
use jobtop::job::{RunResult, Status};
use jobtop::store::Store;

fn one_job(name: &str, file: &str, extra: &str) -> String {
    format!("jobs:\n  - name: {name}\n    path: {file}\n{extra}")
}

#[tokio::test(start_paused = true)]
async fn first_run_one_interval_after_start_and_no_drift_over_10000_intervals() {
    let mut h = start(
        &one_job("tick", "tick.lua", "    interval: 1s\n"),
        &[("tick.lua", OK_JOB)],
    )
    .await;
    // The scheduler hands a run to a worker up to 2 ms before it is due, and the worker waits
    // out the rest on the real clock, which this paused clock cannot show: check short of that.
    tokio::time::advance(Duration::from_millis(997)).await;
    h.assert_no_run().await;
    tokio::time::advance(Duration::from_millis(3)).await;
    let (_, first) = h.finished().await;
    assert_eq!(first.scheduled, wall_base() + chrono::Duration::seconds(1));
    assert_eq!(first.result, RunResult::Ok);
    assert_eq!(first.logs, ["hi"]);
    for k in 1..10_000 {
        tokio::time::advance(Duration::from_secs(1)).await;
        let (_, run) = h.finished().await;
        assert_eq!(
            run.scheduled - first.scheduled,
            chrono::Duration::seconds(k),
            "run {k}"
        );
    }
    let job = h.job("tick").await;
    assert_eq!((job.runs, job.oks, job.skips), (10_000, 10_000, 0));
    assert_eq!(
        job.next_run,
        Some(wall_base() + chrono::Duration::seconds(10_001))
    );
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_run_still_going_at_its_next_due_time_is_skipped_and_counted() {
    let slow = "local job = core.job() function job.run() local t = os.clock() while os.clock() - t < 0.4 do end return job.OK end return job";
    // The test's wall clock starts in 2024; keep its history from being trimmed as too old.
    let yaml = format!(
        "service:\n  history:\n    keep_days: 36500\n{}",
        one_job("slow", "slow.lua", "    interval: 1s\n")
    );
    let mut h = start(&yaml, &[("slow.lua", slow)]).await;
    step(Duration::from_secs(1)).await;
    // The run takes 0.4 s of real time; meanwhile two due times pass on the virtual clock.
    step(Duration::from_secs(1)).await;
    step(Duration::from_secs(1)).await;
    let (_, run) = h.finished().await;
    assert_eq!(run.result, RunResult::Ok);
    let job = h.job("slow").await;
    assert_eq!((job.runs, job.skips), (1, 2));
    h.assert_no_run().await;
    let dir = h.shutdown().await;
    let store = Store::open_read_only(&dir.path().join(".jobtop/state.db")).unwrap();
    let history = store.history("slow", 10).unwrap();
    let skipped = history
        .iter()
        .filter(|r| r.result == RunResult::Skipped)
        .count();
    assert_eq!(skipped, 2);
}

#[tokio::test(start_paused = true)]
async fn run_once_runs_once_then_is_done() {
    let mut h = start(
        &one_job("once", "once.lua", "    interval: 2s\n    run_once: true\n"),
        &[("once.lua", OK_JOB)],
    )
    .await;
    tokio::time::advance(Duration::from_secs(2)).await;
    h.finished().await;
    assert_eq!(h.job("once").await.status, Status::Done);
    tokio::time::advance(Duration::from_secs(10)).await;
    h.assert_no_run().await;
    assert_eq!(h.job("once").await.next_run, None);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn sleep_rests_24_hours_then_runs_on() {
    let sleepy = "local job = core.job() function job.run() return job.SLEEP end return job";
    let mut h = start(
        &one_job("sleepy", "sleepy.lua", "    interval: 1m\n"),
        &[("sleepy.lua", sleepy)],
    )
    .await;
    tokio::time::advance(Duration::from_secs(60)).await;
    let (_, run) = h.finished().await;
    assert_eq!(run.result, RunResult::Sleep);
    let job = h.job("sleepy").await;
    assert_eq!(job.status, Status::Sleeping);
    tokio::time::advance(Duration::from_secs(23 * 3600)).await;
    h.assert_no_run().await;
    tokio::time::advance(Duration::from_secs(3600)).await;
    let (_, again) = h.finished().await;
    assert_eq!(again.scheduled - run.scheduled, chrono::Duration::hours(24));
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn exit_stops_until_reload() {
    let exit = "local job = core.job() function job.run() return job.EXIT end return job";
    let mut h = start(
        &one_job("pause", "pause.lua", "    interval: 1s\n"),
        &[("pause.lua", exit)],
    )
    .await;
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(h.finished().await.1.result, RunResult::Exit);
    assert_eq!(h.job("pause").await.status, Status::Stopped);
    tokio::time::advance(Duration::from_secs(5)).await;
    h.assert_no_run().await;
    let summary = h.reload().await.unwrap();
    assert_eq!(summary.resumed, ["pause"]);
    assert_eq!(h.job("pause").await.status, Status::Waiting);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(h.finished().await.1.result, RunResult::Exit);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn cancel_and_errors_deactivate_persistently() {
    let cancel = "local job = core.job() function job.run() return job.CANCEL end return job";
    let fail = "local job = core.job()\nfunction job.run()\n  error('broken')\nend\nreturn job";
    let yaml = "jobs:\n  - name: quitter\n    path: quitter.lua\n    interval: 1s\n  - name: crasher\n    path: crasher.lua\n    interval: 1s\n";
    let mut h = start(yaml, &[("quitter.lua", cancel), ("crasher.lua", fail)]).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    h.finished().await;
    h.finished().await;
    let crasher = h.job("crasher").await;
    assert_eq!(crasher.status, Status::Deactivated);
    assert_eq!(crasher.last_result, Some(RunResult::Error));
    assert!(
        crasher
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("jobs/crasher.lua:3: broken")
    );
    assert_eq!(h.job("quitter").await.status, Status::Deactivated);
    tokio::time::advance(Duration::from_secs(5)).await;
    h.assert_no_run().await;
    // A reload keeps them deactivated.
    let summary = h.reload().await.unwrap();
    assert_eq!(summary.unchanged, 2);
    assert_eq!(h.job("crasher").await.status, Status::Deactivated);
    let dir = h.shutdown().await;

    // So does a restart.
    let store = Store::open_read_only(&dir.path().join(".jobtop/state.db")).unwrap();
    let crasher = store.job_state("crasher").unwrap().unwrap();
    assert!(crasher.deactivated);
    assert!(
        crasher
            .deactivated_reason
            .unwrap()
            .starts_with("error: jobs/crasher.lua:3: broken")
    );
    drop(store);
    let mut h = start_in(dir).await;
    assert_eq!(h.job("quitter").await.status, Status::Deactivated);
    tokio::time::advance(Duration::from_secs(5)).await;
    h.assert_no_run().await;
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn operator_actions() {
    let fail = "local job = core.job() function job.run() error('nope') end return job";
    let yaml = "jobs:\n  - name: good\n    path: good.lua\n    interval: 10s\n  - name: bad\n    path: bad.lua\n    interval: 10s\n";
    let mut h = start(yaml, &[("good.lua", OK_JOB), ("bad.lua", fail)]).await;
    let by = Some("alice");

    // trigger runs now, off schedule, and keeps the phase
    let message = h.act(Verb::Trigger, "good", by).await.unwrap();
    assert_eq!(message, "triggered good");
    let (_, run) = h.finished().await;
    assert_eq!(run.trigger, "operator");
    assert_eq!(
        h.job("good").await.next_run,
        Some(wall_base() + chrono::Duration::seconds(10))
    );

    // cancel deactivates, persisted, with the operator's name
    let message = h.act(Verb::Cancel, "good", by).await.unwrap();
    assert_eq!(message, "cancelled good");
    let good = h.job("good").await;
    assert_eq!(good.status, Status::Deactivated);
    assert_eq!(good.deactivated_by.as_deref(), Some("alice"));
    tokio::time::advance(Duration::from_secs(10)).await;
    let (name, _) = h.finished().await;
    assert_eq!(name, "bad");
    h.assert_no_run().await;

    // a triggered ok run does not reactivate a deactivated job
    h.act(Verb::Trigger, "good", by).await.unwrap();
    assert_eq!(h.finished().await.1.result, RunResult::Ok);
    assert_eq!(h.job("good").await.status, Status::Deactivated);

    // activate: waiting again, next run one interval from now
    let message = h.act(Verb::Activate, "bad", by).await.unwrap();
    assert_eq!(message, "activated bad (was deactivated)");
    let bad = h.job("bad").await;
    assert_eq!(bad.status, Status::Waiting);
    assert_eq!(bad.deactivated_reason, None);
    assert!(bad.last_error.is_some(), "the last error stays visible");

    // unknown jobs and disabled ones are refused with a reason
    let err = h.act(Verb::Activate, "nosuch", None).await.unwrap_err();
    assert!(err.contains("no job named \"nosuch\""), "{err}");
    assert!(err.contains("expected one of good, bad"), "{err}");
    let dir = h.shutdown().await;
    let store = Store::open_read_only(&dir.path().join(".jobtop/state.db")).unwrap();
    assert!(store.job_state("good").unwrap().unwrap().deactivated);
    assert!(!store.job_state("bad").unwrap().unwrap().deactivated);
    let audit = store.audit(None, 10).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "cancel" && a.user.as_deref() == Some("alice"))
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_aborts_a_run_in_progress() {
    let busy = "local job = core.job() function job.run() while true do end end return job";
    let mut h = start(
        &one_job("busy", "busy.lua", "    interval: 1s\n    timeout: 1h\n"),
        &[("busy.lua", busy)],
    )
    .await;
    tokio::time::advance(Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    assert_eq!(h.job("busy").await.status, Status::Running);
    let message = h.act(Verb::Cancel, "busy", None).await.unwrap();
    assert!(message.contains("being aborted"), "{message}");
    let (_, run) = h.finished().await;
    assert_eq!(run.result, RunResult::Aborted);
    assert_eq!(h.job("busy").await.status, Status::Deactivated);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reload_applies_the_difference() {
    let yaml = "jobs:\n  - name: keep\n    path: ok.lua\n    interval: 3s\n  - name: change\n    path: ok.lua\n    interval: 3s\n  - name: drop\n    path: ok.lua\n    interval: 3s\n";
    let mut h = start(yaml, &[("ok.lua", OK_JOB)]).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let keep_next = h.job("keep").await.next_run;

    // a broken file is refused and the running configuration stays
    std::fs::write(
        h.dir.path().join("jobs.yaml"),
        "jobs:\n  - name: x\n    interval: 0\n",
    )
    .unwrap();
    let err = h.reload().await.unwrap_err();
    assert!(err.contains("jobs.yaml:2:"), "{err}");
    assert_eq!(h.jobs().await.len(), 3);

    let edited = "jobs:\n  - name: keep\n    path: ok.lua\n    interval: 3s\n  - name: change\n    path: ok.lua\n    interval: 5s\n  - name: new\n    path: ok.lua\n    interval: 1s\n";
    std::fs::write(h.dir.path().join("jobs.yaml"), edited).unwrap();
    let summary = h.reload().await.unwrap();
    assert_eq!(summary.added, ["new"]);
    assert_eq!(summary.removed, ["drop"]);
    assert_eq!(summary.changed, ["change"]);
    assert_eq!(summary.unchanged, 1);
    let names: Vec<_> = h.jobs().await.into_iter().map(|j| j.name).collect();
    assert_eq!(names, ["keep", "change", "new"]);
    assert_eq!(
        h.job("keep").await.next_run,
        keep_next,
        "unchanged jobs keep their phase"
    );

    // t = 2 s: new runs 1 s after the reload; t = 3 s: keep on its old phase, and new again
    step(Duration::from_secs(1)).await;
    assert_eq!(h.finished().await.0, "new");
    step(Duration::from_secs(1)).await;
    let mut ran = vec![h.finished().await.0, h.finished().await.0];
    ran.sort();
    assert_eq!(ran, ["keep", "new"]);
    h.assert_no_run().await;
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wall_clock_steps_move_no_timer_and_a_stall_runs_each_job_once() {
    let mut h = start(
        &one_job("tick", "tick.lua", "    interval: 1s\n"),
        &[("tick.lua", OK_JOB)],
    )
    .await;
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(1)).await;
        h.finished().await;
    }
    // NTP steps the wall clock an hour forward, then back: runs continue once a second.
    h.wall_offset_ms.store(3_600_000, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(1)).await;
    let (_, forward) = h.finished().await;
    h.assert_no_run().await;
    h.wall_offset_ms.store(-3_600_000, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(1)).await;
    let (_, back) = h.finished().await;
    h.assert_no_run().await;
    assert_eq!(
        back.scheduled - forward.scheduled,
        chrono::Duration::seconds(1) - chrono::Duration::hours(2)
    );
    h.wall_offset_ms.store(0, Ordering::SeqCst);

    // The process stalls for an hour (suspend, overload): one run, not 3,600, then on phase.
    tokio::time::advance(Duration::from_secs(3600)).await;
    let (_, late) = h.finished().await;
    h.assert_no_run().await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let (_, next) = h.finished().await;
    assert_eq!(
        next.scheduled - late.scheduled,
        chrono::Duration::seconds(1)
    );
    let job = h.job("tick").await;
    assert_eq!(job.runs, 7);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn restart_keeps_the_phase() {
    let mut h = start(
        &one_job("tick", "tick.lua", "    interval: 10s\n"),
        &[("tick.lua", OK_JOB)],
    )
    .await;
    tokio::time::advance(Duration::from_secs(10)).await;
    let (_, run) = h.finished().await;
    assert_eq!(run.scheduled, wall_base() + chrono::Duration::seconds(10));
    let dir = h.shutdown().await;
    // Restarted 3 s after that run: the next due time is the last one plus the interval,
    // 7 s after the start, not a whole interval after it.
    let mut h = start_at(dir, wall_base() + chrono::Duration::seconds(13)).await;
    assert_eq!(
        h.job("tick").await.next_run,
        Some(wall_base() + chrono::Duration::seconds(20))
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    h.assert_no_run().await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let (_, run) = h.finished().await;
    assert_eq!(run.scheduled, wall_base() + chrono::Duration::seconds(20));
    let dir = h.shutdown().await;

    // Restarted long after: one run right away, not a burst of catch-up runs.
    let mut h = start_at(dir, wall_base() + chrono::Duration::hours(5)).await;
    tokio::task::yield_now().await;
    let (_, run) = h.finished().await;
    assert_eq!(run.scheduled, wall_base() + chrono::Duration::hours(5));
    h.assert_no_run().await;
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn spread_staggers_first_runs_within_the_interval_and_keeps_each_phase() {
    use std::fmt::Write as _;
    let mut yaml = String::from("service:\n  spread: 1s\njobs:\n");
    for i in 0..20 {
        let _ = write!(
            yaml,
            "  - name: job-{i:02}\n    path: tick.lua\n    interval: 1s\n"
        );
    }
    let mut h = start(&yaml, &[("tick.lua", OK_JOB)]).await;
    let mut first: std::collections::HashMap<String, DateTime<Utc>> =
        std::collections::HashMap::new();
    let mut second: std::collections::HashMap<String, DateTime<Utc>> =
        std::collections::HashMap::new();
    while second.len() < 20 {
        step(Duration::from_millis(10)).await;
        while let Ok(event) = h.events.try_recv() {
            if let JobEvent::Finished { name, run } = event {
                match first.entry(name) {
                    std::collections::hash_map::Entry::Occupied(seen) => {
                        second.entry(seen.key().clone()).or_insert(run.scheduled);
                    }
                    std::collections::hash_map::Entry::Vacant(new) => {
                        new.insert(run.scheduled);
                    }
                }
            }
        }
    }
    let one = chrono::Duration::seconds(1);
    for (name, at) in &first {
        assert!(
            *at >= wall_base() + one && *at < wall_base() + one + one,
            "{name} first ran at {at}, outside the first interval after one interval"
        );
        // A slot the paused clock passed while the run was still going is skipped: the next
        // run is a whole number of intervals later, on the same phase.
        let gap = second[name] - *at;
        assert!(
            gap >= one && gap.subsec_nanos() == 0,
            "{name} keeps its phase: {gap}"
        );
    }
    let distinct: std::collections::HashSet<_> = first.values().collect();
    assert!(distinct.len() >= 18, "first runs not spread: {first:?}");
    h.shutdown().await;
}
