//! The scheduler on tokio's paused clock: real job files, a real state database, real worker
//! threads, and virtual time moved by `tokio::time::advance` (the workers are blocking tasks,
//! which keeps tokio from jumping the clock while a run is going). Each rule of
//! docs/scheduling.md: slots, calendar schedules, zones, clock steps, restarts, missed firings,
//! catch-up, retries, skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::paused::{Harness, OK_JOB, slot, start, start_at, start_in, step, wall_base};
use jobtop::control::{JobEvent, Verb};
use jobtop::job::{RunResult, Status};
use jobtop::store::Store;

/// The scheduler hands a run to the pool up to 30 ms before it is due, and the pool's release
/// timer waits out the rest on the real clock, which this paused clock cannot show: checks stop
/// short of that.
const SHORT: Duration = Duration::from_millis(40);

fn one_job(name: &str, file: &str, extra: &str) -> String {
    format!("jobs:\n  - name: {name}\n    path: {file}\n{extra}")
}

/// The test's wall clock starts in 2024: keep the history from being trimmed as too old.
fn keep_history(jobs: &str) -> String {
    format!("service:\n  history:\n    keep_days: 36500\n{jobs}")
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Waits for the next run and says when it was scheduled.
async fn next_run(h: &mut Harness) -> DateTime<Utc> {
    h.finished().await.1.scheduled
}

#[tokio::test(start_paused = true)]
async fn interval_jobs_run_on_their_slots_without_drift() {
    let mut h = start(
        &one_job("tick", "tick.lua", "    interval: 1s\n"),
        &[("tick.lua", OK_JOB)],
    )
    .await;
    let first = slot("tick", secs(1), wall_base(), 0);
    assert!(first > wall_base() && first <= wall_base() + TimeDelta::seconds(1));
    assert_eq!(
        h.job("tick").await.next_run,
        Some(first),
        "within one interval"
    );
    h.advance_to(first, SHORT).await;
    h.assert_no_run().await;
    step(SHORT).await;
    let (_, run) = h.finished().await;
    assert_eq!(run.scheduled, first, "the slot exactly");
    assert_eq!(
        (run.result, run.logs.as_slice()),
        (RunResult::Ok, &["hi".to_string()][..])
    );
    for k in 1..10_000 {
        step(secs(1)).await;
        assert_eq!(
            next_run(&mut h).await - first,
            TimeDelta::seconds(k),
            "run {k}"
        );
    }
    let job = h.job("tick").await;
    assert_eq!((job.runs, job.oks, job.skips), (10_000, 10_000, 0));
    assert_eq!(job.next_run, Some(first + TimeDelta::seconds(10_000)));
    assert_eq!(job.schedule, "1s");
    assert_eq!(job.interval_secs, Some(1.0));
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn jobs_with_one_interval_are_spread_across_it() {
    use std::fmt::Write as _;
    let mut yaml = String::from("jobs:\n");
    for i in 0..20 {
        let _ = write!(
            yaml,
            "  - name: job-{i:02}\n    path: tick.lua\n    interval: 1m\n"
        );
    }
    let h = start(&yaml, &[("tick.lua", OK_JOB)]).await;
    let next: std::collections::HashSet<_> = h
        .jobs()
        .await
        .into_iter()
        .map(|j| j.next_run.unwrap())
        .collect();
    assert_eq!(next.len(), 20, "every job its own slot");
    assert!(
        next.iter()
            .all(|t| *t > wall_base() && *t <= wall_base() + TimeDelta::minutes(1))
    );
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_run_still_going_at_its_next_slot_is_skipped_and_counted() {
    let slow = "local job = core.job() function job.run() local t = os.clock() while os.clock() - t < 0.4 do end return job.OK end return job";
    let mut h = start(
        &keep_history(&one_job("slow", "slow.lua", "    interval: 1s\n")),
        &[("slow.lua", slow)],
    )
    .await;
    h.advance_to(slot("slow", secs(1), wall_base(), 0), Duration::ZERO)
        .await;
    // The run takes 0.4 s of real time; meanwhile two slots pass on the virtual clock.
    step(secs(1)).await;
    step(secs(1)).await;
    let (_, run) = h.finished().await;
    assert_eq!(run.result, RunResult::Ok);
    let job = h.job("slow").await;
    assert_eq!((job.runs, job.skips), (1, 2));
    h.assert_no_run().await;
    let dir = h.shutdown().await;
    let store = Store::open_read_only(&dir.path().join(".jobtop/state.db")).unwrap();
    let skipped: Vec<_> = store
        .history("slow", 10)
        .unwrap()
        .into_iter()
        .filter(|r| r.result == RunResult::Skipped)
        .collect();
    assert_eq!(skipped.len(), 2);
    assert!(
        skipped
            .iter()
            .all(|r| r.skip.unwrap().reason == jobtop::job::SkipReason::Overlap)
    );
}

#[tokio::test(start_paused = true)]
async fn run_once_runs_at_its_first_slot_then_is_done() {
    let mut h = start(
        &one_job("once", "once.lua", "    interval: 2s\n    run_once: true\n"),
        &[("once.lua", OK_JOB)],
    )
    .await;
    step(secs(2)).await;
    h.finished().await;
    assert_eq!(h.job("once").await.status, Status::Done);
    step(secs(10)).await;
    h.assert_no_run().await;
    assert_eq!(h.job("once").await.next_run, None);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn sleep_rests_24_hours_then_runs_at_its_next_slot() {
    let sleepy = "local job = core.job() function job.run() return job.SLEEP end return job";
    let mut h = start(
        &one_job("sleepy", "sleepy.lua", "    interval: 1m\n"),
        &[("sleepy.lua", sleepy)],
    )
    .await;
    step(secs(60)).await;
    let (_, run) = h.finished().await;
    assert_eq!(run.result, RunResult::Sleep);
    assert_eq!(h.job("sleepy").await.status, Status::Sleeping);
    step(secs(23 * 3600)).await;
    h.assert_no_run().await;
    step(secs(3600)).await;
    let again = next_run(&mut h).await;
    assert_eq!(
        again - run.scheduled,
        TimeDelta::hours(24),
        "the slot a day later"
    );
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
    step(secs(1)).await;
    assert_eq!(h.finished().await.1.result, RunResult::Exit);
    assert_eq!(h.job("pause").await.status, Status::Stopped);
    step(secs(5)).await;
    h.assert_no_run().await;
    let summary = h.reload().await.unwrap();
    assert_eq!(summary.resumed, ["pause"]);
    assert_eq!(h.job("pause").await.status, Status::Waiting);
    step(secs(1)).await;
    assert_eq!(h.finished().await.1.result, RunResult::Exit);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn cancel_and_errors_deactivate_persistently() {
    let cancel = "local job = core.job() function job.run() return job.CANCEL end return job";
    let fail = "local job = core.job()\nfunction job.run()\n  error('broken')\nend\nreturn job";
    let yaml = "jobs:\n  - name: quitter\n    path: quitter.lua\n    interval: 1s\n  - name: crasher\n    path: crasher.lua\n    interval: 1s\n";
    let mut h = start(yaml, &[("quitter.lua", cancel), ("crasher.lua", fail)]).await;
    step(secs(1)).await;
    h.finished().await;
    h.finished().await;
    let crasher = h.job("crasher").await;
    assert_eq!(crasher.status, Status::Deactivated);
    assert_eq!(crasher.last_result, Some(RunResult::Error));
    assert!(
        crasher
            .last_error
            .unwrap()
            .starts_with("jobs/crasher.lua:3: broken")
    );
    assert_eq!(h.job("quitter").await.status, Status::Deactivated);
    step(secs(5)).await;
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
    step(secs(5)).await;
    h.assert_no_run().await;
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn operator_actions() {
    let fail = "local job = core.job() function job.run() error('nope') end return job";
    let yaml = "jobs:\n  - name: good\n    path: good.lua\n    interval: 10s\n  - name: bad\n    path: bad.lua\n    interval: 10s\n";
    let mut h = start(yaml, &[("good.lua", OK_JOB), ("bad.lua", fail)]).await;
    let by = Some("alice");
    let good_slot = slot("good", secs(10), wall_base(), 0);

    // trigger runs now, off schedule, and keeps the slot
    assert_eq!(
        h.act(Verb::Trigger, "good", by).await.unwrap(),
        "triggered good"
    );
    let (_, run) = h.finished().await;
    assert_eq!(run.trigger, "operator");
    assert_eq!(h.job("good").await.next_run, Some(good_slot));

    // cancel deactivates, persisted, with the operator's name
    assert_eq!(
        h.act(Verb::Cancel, "good", by).await.unwrap(),
        "cancelled good"
    );
    let good = h.job("good").await;
    assert_eq!(good.status, Status::Deactivated);
    assert_eq!(good.deactivated_by.as_deref(), Some("alice"));
    step(secs(10)).await;
    let (name, _) = h.finished().await;
    assert_eq!(name, "bad");
    h.assert_no_run().await;

    // a triggered ok run does not reactivate a deactivated job
    h.act(Verb::Trigger, "good", by).await.unwrap();
    assert_eq!(h.finished().await.1.result, RunResult::Ok);
    assert_eq!(h.job("good").await.status, Status::Deactivated);

    // activate: waiting again, at its next slot
    let message = h.act(Verb::Activate, "bad", by).await.unwrap();
    assert_eq!(message, "activated bad (was deactivated)");
    let bad = h.job("bad").await;
    assert_eq!(bad.status, Status::Waiting);
    assert_eq!(bad.deactivated_reason, None);
    assert_eq!(bad.next_run, Some(slot("bad", secs(10), h.wall_now(), 0)));
    assert!(bad.last_error.is_some(), "the last error stays visible");

    // unknown jobs are refused with the names there are
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
    step(secs(1)).await;
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
    let h = start(yaml, &[("ok.lua", OK_JOB)]).await;
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

    let edited = "jobs:\n  - name: keep\n    path: ok.lua\n    interval: 3s\n  - name: change\n    path: ok.lua\n    schedule: \"*/5 * * * * *\"\n  - name: new\n    path: ok.lua\n    interval: 1s\n";
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
        "unchanged jobs keep their slot"
    );
    let change = h.job("change").await;
    assert_eq!(
        (change.schedule.as_str(), change.interval_secs),
        ("*/5 * * * * *", None)
    );
    assert_eq!(change.next_run, Some(wall_base() + TimeDelta::seconds(5)));
    assert_eq!(
        h.job("new").await.next_run,
        Some(slot("new", secs(1), wall_base(), 0)),
        "a new job at its first slot"
    );
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_six_field_schedule_runs_on_even_seconds() {
    let mut h = start(
        &one_job("even", "even.lua", "    schedule: \"*/2 * * * * *\"\n"),
        &[("even.lua", OK_JOB)],
    )
    .await;
    for k in 1..=5 {
        step(secs(2)).await;
        let scheduled = next_run(&mut h).await;
        assert_eq!(scheduled, wall_base() + TimeDelta::seconds(2 * k));
    }
    h.assert_no_run().await;
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn local_time_in_the_helpers_is_the_job_zone() {
    let hour = "local job = core.job() function job.run() core.log(job.hour(true), job.hour()) return job.OK end return job";
    let yaml = "service:\n  timezone: Europe/Berlin\njobs:\n  - name: tokyo\n    path: hour.lua\n    schedule: \"0 9 * * *\"\n    timezone: Asia/Tokyo\n  - name: berlin\n    path: hour.lua\n    schedule: \"0 1 * * *\"\n";
    let mut h = start(yaml, &[("hour.lua", hour)]).await;
    assert_eq!(h.job("tokyo").await.timezone, "Asia/Tokyo");
    assert_eq!(h.job("berlin").await.timezone, "Europe/Berlin");
    // 09:00 in Tokyo is 00:00 UTC the next day; 01:00 in Berlin is 00:00 UTC too.
    step(secs(24 * 3600)).await;
    let mut logs = [h.finished().await, h.finished().await];
    logs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(logs[0].1.logs, ["1\t0"], "berlin");
    assert_eq!(logs[1].1.logs, ["9\t0"], "tokyo");
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn interval_jobs_keep_their_rhythm_across_clock_steps_and_never_repeat_a_slot() {
    let mut h = start(
        &keep_history(&one_job("tick", "tick.lua", "    interval: 1s\n")),
        &[("tick.lua", OK_JOB)],
    )
    .await;
    let first = slot("tick", secs(1), wall_base(), 0);
    h.advance_to(first, Duration::ZERO).await;
    next_run(&mut h).await;
    // NTP steps the wall clock an hour back: the job runs on, once a second, and no slot
    // that already ran runs again.
    h.wall_offset_ms.store(-3_600_000, Ordering::SeqCst);
    let mut seen = vec![first];
    for _ in 0..3 {
        step(secs(1)).await;
        seen.push(next_run(&mut h).await);
    }
    // Forward two hours: no burst, the next run realigns to the wall clock's slots.
    h.wall_offset_ms.store(3_600_000, Ordering::SeqCst);
    step(secs(1)).await;
    let after = next_run(&mut h).await;
    h.assert_no_run().await;
    step(secs(1)).await;
    seen.push(after);
    seen.push(next_run(&mut h).await);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "a slot ran twice: {seen:?}");
    assert_eq!(seen[1] - seen[0], TimeDelta::seconds(1));
    assert_eq!(
        seen[3] - seen[0],
        TimeDelta::seconds(3),
        "on, once a second"
    );
    assert!(after > first + TimeDelta::minutes(59), "{after}");
    assert_eq!(seen[5] - seen[4], TimeDelta::seconds(1));
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn calendar_jobs_follow_the_wall_clock() {
    // Every ten minutes.
    let mut h = start(
        &keep_history(&one_job(
            "ten",
            "ten.lua",
            "    schedule: \"*/10 * * * *\"\n",
        )),
        &[("ten.lua", OK_JOB)],
    )
    .await;
    step(secs(600)).await;
    assert_eq!(next_run(&mut h).await, wall_base() + TimeDelta::minutes(10));
    let minutes = |m: i64| wall_base() + TimeDelta::minutes(m);
    // At 12 min the clock steps 25 minutes forward, over the 20 and 30 min firings. The
    // scheduler reads the wall clock at least once a minute: the 30 runs then, the 20 is a skip.
    step(secs(120)).await;
    h.wall_offset_ms.store(25 * 60_000, Ordering::SeqCst);
    step(secs(60)).await;
    assert_eq!(next_run(&mut h).await, minutes(30));
    h.assert_no_run().await;
    assert_eq!(h.job("ten").await.skips, 1);
    // Back 25 minutes (the wall clock reads 14 min): what ran does not run again; the next
    // firing is the 40.
    h.wall_offset_ms.store(0, Ordering::SeqCst);
    step(secs(60)).await;
    assert_eq!(h.wall_now(), minutes(14));
    assert_eq!(h.job("ten").await.next_run, Some(minutes(40)));
    step(secs(26 * 60).checked_sub(SHORT).unwrap()).await;
    h.assert_no_run().await;
    step(SHORT).await;
    assert_eq!(next_run(&mut h).await, minutes(40));
    // Five hours forward is a correction: no catch-up, the next firing after the new time.
    h.wall_offset_ms.store(5 * 3_600_000, Ordering::SeqCst);
    step(secs(60)).await;
    h.assert_no_run().await;
    let now = h.wall_now();
    let next = h.job("ten").await.next_run.unwrap();
    assert!(
        next > now && next <= now + TimeDelta::minutes(10),
        "{next} after {now}"
    );
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_keeps_an_hourly_jobs_slot_to_the_second() {
    let h = start(
        &one_job("hourly", "h.lua", "    interval: 1h\n"),
        &[("h.lua", OK_JOB)],
    )
    .await;
    let first = slot("hourly", secs(3600), wall_base(), 0);
    assert_eq!(h.job("hourly").await.next_run, Some(first));
    let dir = h.shutdown().await;
    // Restarted 25 minutes later, before the slot: the same slot, not an hour after the start.
    let h = start_at(dir, wall_base() + TimeDelta::minutes(25)).await;
    let expected = if first > wall_base() + TimeDelta::minutes(25) {
        first
    } else {
        first + TimeDelta::hours(1)
    };
    assert_eq!(h.job("hourly").await.next_run, Some(expected));
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn after_a_downtime_the_latest_missed_firing_runs_once() {
    let yaml = keep_history(&one_job(
        "daily",
        "d.lua",
        "    schedule: \"0 2 * * *\"\n    timezone: UTC\n",
    ));
    let mut h = start(&yaml, &[("d.lua", OK_JOB)]).await;
    step(secs(2 * 3600)).await;
    assert_eq!(next_run(&mut h).await, wall_base() + TimeDelta::hours(2));
    let dir = h.shutdown().await;
    // Down for three days: the latest missed 02:00 runs once at the start; two are one skip.
    let back = wall_base() + TimeDelta::days(3) + TimeDelta::hours(5);
    let mut h = start_at(dir, back).await;
    assert_eq!(
        next_run(&mut h).await,
        wall_base() + TimeDelta::days(3) + TimeDelta::hours(2)
    );
    h.assert_no_run().await;
    assert_eq!(h.job("daily").await.skips, 2);
    let dir = h.shutdown().await;
    // Restarted again between that catch-up and the next firing: it does not run again.
    let mut h = start_at(dir, back + TimeDelta::minutes(5)).await;
    step(Duration::from_millis(10)).await;
    h.assert_no_run().await;
    assert_eq!(
        h.job("daily").await.next_run,
        Some(wall_base() + TimeDelta::days(4) + TimeDelta::hours(2))
    );
    let dir = h.shutdown().await;
    let store = Store::open_read_only(&dir.path().join(".jobtop/state.db")).unwrap();
    let history = store.history("daily", 10).unwrap();
    let ran: Vec<_> = history
        .iter()
        .filter(|r| r.result == RunResult::Ok)
        .collect();
    assert_eq!(ran.len(), 2, "{history:#?}");
    let skip = history
        .iter()
        .find(|r| r.result == RunResult::Skipped)
        .unwrap();
    assert_eq!(skip.skip.unwrap().reason, jobtop::job::SkipReason::Missed);
    assert_eq!(skip.skip.unwrap().covers, 2);
}

#[tokio::test(start_paused = true)]
async fn catch_up_decides_what_a_missed_firing_becomes() {
    for (rule, runs) in [
        ("none", false),
        ("2h", false),
        ("6h", true),
        ("latest", true),
    ] {
        let yaml = keep_history(&one_job(
            "daily",
            "d.lua",
            &format!("    schedule: \"0 2 * * *\"\n    timezone: UTC\n    catch_up: {rule}\n"),
        ));
        let mut h = start(&yaml, &[("d.lua", OK_JOB)]).await;
        step(secs(2 * 3600)).await;
        next_run(&mut h).await;
        let dir = h.shutdown().await;
        // Back the next day at 07:00: the 02:00 firing is five hours late.
        let mut h = start_at(dir, wall_base() + TimeDelta::hours(24 + 7)).await;
        step(Duration::from_millis(10)).await;
        if runs {
            assert_eq!(
                next_run(&mut h).await,
                wall_base() + TimeDelta::hours(26),
                "{rule}"
            );
        } else {
            h.assert_no_run().await;
            assert_eq!(h.job("daily").await.skips, 1, "{rule}");
        }
        h.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn retries_recover_or_end_in_deactivation() {
    let flaky = "local job = core.job() function job.run() local n = (core.state.get('n') or 0) + 1 core.state.set('n', n) if n < 3 then error('try ' .. n) end return job.OK end return job";
    let yaml = keep_history(&one_job(
        "flaky",
        "flaky.lua",
        "    interval: 1h\n    retries: 3\n    retry_delay: 10s\n",
    ));
    let mut h = start(&yaml, &[("flaky.lua", flaky)]).await;
    h.act(Verb::Trigger, "flaky", None).await.unwrap();
    assert_eq!(h.finished().await.1.result, RunResult::Error);
    let job = h.job("flaky").await;
    assert_eq!(
        (job.status, job.retry_attempt, job.retries),
        (Status::Retrying, 1, 3)
    );
    step(secs(10)).await;
    let (_, retry) = h.finished().await;
    assert_eq!(
        (retry.result, retry.trigger.as_str()),
        (RunResult::Error, "retry")
    );
    assert_eq!(h.job("flaky").await.retry_attempt, 2);
    step(secs(19)).await;
    h.assert_no_run().await;
    step(secs(1)).await;
    let (_, retry) = h.finished().await;
    assert_eq!(
        (retry.result, retry.trigger.as_str()),
        (RunResult::Ok, "retry"),
        "20 s later"
    );
    let job = h.job("flaky").await;
    assert_eq!((job.status, job.retry_attempt), (Status::Waiting, 0));
    h.shutdown().await;

    let broken = "local job = core.job() function job.run() error('down') end return job";
    let yaml = keep_history(&one_job(
        "broken",
        "b.lua",
        "    interval: 1h\n    retries: 1\n    retry_delay: 5s\n",
    ));
    let mut h = start(&yaml, &[("b.lua", broken)]).await;
    h.act(Verb::Trigger, "broken", None).await.unwrap();
    h.finished().await;
    assert_eq!(h.job("broken").await.status, Status::Retrying);
    // A retry survives a restart.
    let dir = h.shutdown().await;
    let mut h = start_at(dir, wall_base() + TimeDelta::seconds(2)).await;
    let job = h.job("broken").await;
    assert_eq!((job.status, job.retry_attempt), (Status::Retrying, 1));
    step(secs(3)).await;
    let (_, retry) = h.finished().await;
    assert_eq!(retry.trigger, "retry");
    let job = h.job("broken").await;
    assert_eq!(job.status, Status::Deactivated);
    assert!(job.last_error.unwrap().contains("down"));
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_old_state_database_keeps_its_deactivations_and_history() {
    let dir = tempfile::tempdir().unwrap();
    common::paused::write_config(
        dir.path(),
        &keep_history("jobs:\n  - name: old\n    path: ok.lua\n    interval: 1h\n"),
        &[("ok.lua", OK_JOB)],
    );
    std::fs::create_dir_all(dir.path().join(".jobtop")).unwrap();
    {
        // A database as wave 1 wrote it (schema version 1).
        let conn = rusqlite::Connection::open(dir.path().join(".jobtop/state.db")).unwrap();
        conn.execute_batch(include_str!("fixtures/state_v1.sql"))
            .unwrap();
    }
    let mut h = start_in(dir).await;
    let old = h.job("old").await;
    assert_eq!(old.status, Status::Deactivated);
    assert_eq!(old.runs, 3);
    step(secs(3600)).await;
    h.assert_no_run().await;
    let dir = h.shutdown().await;
    let store = Store::open_read_only(&dir.path().join(".jobtop/state.db")).unwrap();
    assert_eq!(store.history("old", 10).unwrap().len(), 3);
    let state = store.job_state("old").unwrap().unwrap();
    assert_eq!(
        state.last_fired, state.last_scheduled,
        "the old phase becomes the last firing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stall_runs_each_job_once_then_on_its_slots() {
    let mut h = start(
        &one_job("tick", "tick.lua", "    interval: 1s\n"),
        &[("tick.lua", OK_JOB)],
    )
    .await;
    step(secs(1)).await;
    let first = next_run(&mut h).await;
    // The process stalls for an hour (suspend, overload): one run, not 3,600, then on slot.
    step(secs(3600)).await;
    let late = next_run(&mut h).await;
    h.assert_no_run().await;
    step(secs(1)).await;
    assert_eq!(next_run(&mut h).await - late, TimeDelta::seconds(1));
    assert_eq!(late - first, TimeDelta::seconds(3600));
    let job = h.job("tick").await;
    assert_eq!((job.runs, job.skips), (3, 3599));
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_event_per_run_reaches_subscribers() {
    let mut h = start(
        &one_job("tick", "tick.lua", "    interval: 1s\n"),
        &[("tick.lua", OK_JOB)],
    )
    .await;
    step(secs(1)).await;
    h.finished().await;
    let mut rows = 0;
    while let Ok(event) = h.events.try_recv() {
        if matches!(event, JobEvent::Job { .. }) {
            rows += 1;
        }
    }
    assert!(rows >= 1, "no row events after a run");
    h.shutdown().await;
}
