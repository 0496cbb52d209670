//! Time faults: the wall clock jumping an hour forward and back under a job that runs every
//! second, restarts after the clock went back, and daylight-saving transitions.
//!
//! * The scheduler on tokio's paused clock (real job files, a real state database, real
//!   worker threads) with a manual wall clock that the tests step: every run is counted and
//!   its scheduled time checked, so a double run, a stuck job or a burst fails the test.
//! * The time helpers through the real runtime (`JobRunner`, `LocalZone::Named`) at every
//!   second across both transitions of `Europe/Berlin`, `America/New_York`,
//!   `Australia/Sydney`, `Australia/Adelaide` (half-hour offset), `Australia/Lord_Howe` (a
//!   half-hour DST step) and `Asia/Kolkata` (no DST): each value compared with chrono-tz's own `strftime` and with
//!   offsets written down here from the zones' published rules.
//! * The scheduler with `service.timezone` across each of those transitions: a 1 s job runs
//!   exactly once a second, and its local-time helpers step as the zone does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Datelike, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use common::paused::{self, Harness};
use jobtop::control::{JobEvent, RunSummary};
use jobtop::job::RunResult;
use jobtop::runtime::{JobGrants, LocalZone};
use jobtop::store::Store;
use tokio::sync::broadcast;

/// Logs the eight helpers in UTC, then in local time, one line each.
const CLOCK_JOB: &str = "local job = core.job()
function job.run()
  core.log(job.minute(), job.hour(), job.day(), job.dayNum(), job.dayMonth(), job.weekNum(), job.month(), job.monthNum())
  core.log(job:minute(true), job:hour(true), job:day(true), job:dayNum(true), job:dayMonth(true), job:weekNum(true), job:month(true), job:monthNum(true))
  return job.OK
end
return job
";

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The helpers' line for `t`, from chrono's `strftime` (`%a`, `%u`, `%W`, `%b`), not from
/// jobtop's calendar code.
fn expected_line<Z: TimeZone>(t: &DateTime<Z>) -> String
where
    Z::Offset: std::fmt::Display,
{
    let day = match t.format("%a").to_string().as_str() {
        "Thu" => "Thur".to_string(),
        other => other.to_string(),
    };
    format!(
        "{}\t{}\t{day}\t{}\t{}\t{}\t{}\t{}",
        t.minute(),
        t.hour(),
        t.format("%u"),
        t.day(),
        t.format("%W").to_string().parse::<u32>().unwrap(),
        t.format("%b"),
        t.month()
    )
}

// ---------------------------------------------------------------------------------------------
// A scheduler on the paused clock with a wall clock the test moves.

async fn start(yaml: &str, wall_start: DateTime<Utc>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    paused::write_config(dir.path(), yaml, &[("clock.lua", CLOCK_JOB)]);
    paused::start_at(dir, wall_start).await
}

impl Harness {
    /// Every run that finishes within `settle` of real time (the workers are real threads),
    /// after the virtual clock moved.
    async fn finished_runs(&mut self) -> Vec<RunSummary> {
        let mut runs = Vec::new();
        // Let the scheduler fire, the worker run, and the result come back. A run is handed
        // to the pool up to 30 ms of virtual time before it is due and waits there that long
        // in real time (the release timer knows no virtual clock): look for longer than that.
        let handed_over = std::time::Instant::now() + Duration::from_millis(40);
        let mut quiet = 0;
        while quiet < 20 || std::time::Instant::now() < handed_over {
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_micros(200));
            match self.events.try_recv() {
                // Skips are told as `finished` too (for the notifier); they are no run.
                Ok(JobEvent::Finished { run, .. }) if run.result != RunResult::Skipped => {
                    runs.push(run);
                    quiet = 0;
                }
                Ok(_) => quiet = 0,
                Err(broadcast::error::TryRecvError::Empty) => quiet += 1,
                Err(e) => panic!("{e}"),
            }
        }
        runs
    }

    /// Waits (real time, at most 10 s) for exactly one run to finish; fails on a second one.
    async fn one_run(&mut self) -> RunSummary {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut runs = Vec::new();
        while runs.is_empty() {
            assert!(std::time::Instant::now() < deadline, "no run within 10 s");
            runs = self.finished_runs().await;
        }
        assert_eq!(runs.len(), 1, "more than one run at once: {runs:#?}");
        runs.pop().unwrap()
    }
}

fn one_second_job(extra_service: &str) -> String {
    every_second(extra_service, "interval: 1s")
}

/// The job `clock` every second: `interval: 1s` (slots anchored on its name) or a schedule.
fn every_second(extra_service: &str, when: &str) -> String {
    format!(
        "service:\n  history:\n    keep_days: 36500\n{extra_service}jobs:\n  - name: clock\n    path: clock.lua\n    {when}\n"
    )
}

/// The first slot of `clock` every second after `t`.
fn first_slot(t: DateTime<Utc>) -> DateTime<Utc> {
    paused::slot("clock", Duration::from_secs(1), t, 0)
}

// ---------------------------------------------------------------------------------------------
// 1. Wall-clock jumps under a 1 s job.

/// The wall clock jumps an hour forward at 10.5 s, back at 20.5 s, forward a quarter second
/// before a run is due and back right after one. The virtual clock moves in quarter seconds and
/// every quarter is checked: one run per monotonic second, never two, never none (interval jobs
/// keep their rhythm on the monotonic clock); the slots never repeat, and a forward jump moves
/// them to the wall clock's slots.
#[tokio::test(start_paused = true)]
async fn wall_clock_jumps_of_an_hour_neither_double_stall_nor_burst_a_1s_job() {
    let base = utc("2024-01-01T00:00:00Z");
    let mut h = start(&one_second_job(""), base).await;
    let hour = 3_600_000;
    let anchor_ms = (first_slot(base) - base).num_milliseconds();
    // The quarter in which the slots fall, so jumps come just before and just after them.
    let quarter = anchor_ms - anchor_ms % 250;
    let jumps = [
        (10_500, hour),
        (20_500, 0),
        (29_000 + quarter, hour),
        (40_000 + quarter + 250, 0),
    ];
    let mut runs: Vec<(i64, RunSummary)> = Vec::new();
    let mut now_ms: i64 = 0;
    while now_ms < 50_000 {
        for (at, offset) in jumps {
            if at == now_ms {
                h.wall_offset_ms.store(offset, Ordering::SeqCst);
            }
        }
        tokio::time::advance(Duration::from_millis(250)).await;
        now_ms += 250;
        let got = h.finished_runs().await;
        assert!(got.len() <= 1, "two runs at once at {now_ms} ms: {got:#?}");
        runs.extend(got.into_iter().map(|r| (now_ms, r)));
    }
    assert!(
        (49..=50).contains(&runs.len()),
        "one run per second: {}",
        runs.len()
    );
    for pair in runs.windows(2) {
        let ((a_ms, a), (b_ms, b)) = (&pair[0], &pair[1]);
        assert_eq!(
            b_ms - a_ms,
            1000,
            "a run every monotonic second: {:?}",
            runs.iter()
                .map(|(ms, r)| (*ms, r.scheduled))
                .collect::<Vec<_>>()
        );
        assert!(
            b.scheduled > a.scheduled,
            "a slot repeated or went back: {a:?} {b:?}"
        );
        let gap = b.scheduled - a.scheduled;
        assert!(
            gap == chrono::Duration::seconds(1) || gap > chrono::Duration::minutes(59),
            "slots one second apart, or moved by a forward jump: {gap}"
        );
        assert_eq!(b.result, RunResult::Ok);
        assert_eq!(b.logs[0], expected_line(&b.scheduled));
    }
    // The slots a forward jump stepped over are skips (one record each jump), nothing else.
    let stepped: i64 = runs
        .windows(2)
        .map(|p| (p[1].1.scheduled - p[0].1.scheduled).num_seconds() - 1)
        .sum();
    let job = h.job("clock").await;
    assert_eq!(i64::try_from(job.skips).unwrap(), stepped);
    h.shutdown().await;
}

/// A run after a backward jump takes the slot after the last one: no slot runs twice, and the
/// job runs on once a second.
#[tokio::test(start_paused = true)]
async fn a_backward_jump_repeats_no_slot() {
    let base = utc("2024-01-01T00:00:00Z");
    let mut h = start(&one_second_job(""), base).await;
    h.advance_to(first_slot(base), Duration::ZERO).await;
    h.one_run().await;
    for _ in 0..4 {
        tokio::time::advance(Duration::from_secs(1)).await;
        h.one_run().await;
    }
    // Back by 3 s: the wall clock reads times whose slots already ran.
    h.wall_offset_ms.store(-3_000, Ordering::SeqCst);
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(1)).await;
        h.one_run().await;
    }
    let dir = h.shutdown().await;
    let store = Store::open_read_only(&dir.path().join(".jobtop/state.db")).unwrap();
    let history = store.history("clock", 100).unwrap();
    let first = first_slot(base);
    let mut seconds: Vec<i64> = history
        .iter()
        .map(|r| (r.scheduled - first).num_seconds())
        .collect();
    seconds.reverse();
    assert_eq!(seconds, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert!(history.iter().all(|r| r.result == RunResult::Ok));
}

/// Restarted after the wall clock went back an hour (the state database's last firing is then
/// an hour in the future): no slot runs twice, so the next is the one after the last. Restarted
/// after it went forward an hour: one run right away, not 3,600.
#[tokio::test(start_paused = true)]
async fn a_restart_across_a_jump_repeats_no_slot_and_bursts_none() {
    let base = utc("2024-01-01T00:00:00Z");
    let mut h = start(&one_second_job(""), base).await;
    let first = first_slot(base);
    h.advance_to(first, Duration::ZERO).await;
    h.one_run().await;
    for _ in 0..2 {
        tokio::time::advance(Duration::from_secs(1)).await;
        h.one_run().await;
    }
    let last = first + chrono::Duration::seconds(2);
    let dir = h.shutdown().await;

    let back = last - chrono::Duration::hours(1);
    let mut h = paused::start_at(dir, back).await;
    assert_eq!(
        h.job("clock").await.next_run,
        Some(last + chrono::Duration::seconds(1))
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(h.finished_runs().await.is_empty(), "a slot ran twice");
    let dir = h.shutdown().await;

    let forward = last + chrono::Duration::hours(1);
    let mut h = paused::start_at(dir, forward).await;
    let run = h.one_run().await;
    assert_eq!(
        run.scheduled,
        first_slot(forward) - chrono::Duration::seconds(1)
    );
    tokio::time::advance(Duration::from_millis(300)).await;
    assert!(h.finished_runs().await.is_empty(), "a catch-up burst");
    h.advance_to(first_slot(forward), Duration::ZERO).await;
    assert_eq!(h.one_run().await.scheduled, first_slot(forward));
    let job = h.job("clock").await;
    assert_eq!(job.skips, 3599, "the slots missed before the latest");
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Daylight-saving transitions.

/// A zone, one of its transitions (the UTC instant), and the local wall time just before and
/// at it, written down from the zone's rules (not computed with chrono-tz).
struct Transition {
    zone: Tz,
    at: &'static str,
    /// Local `(hour, minute)` one second before the transition (seconds :59).
    before: (u32, u32),
    /// Local `(hour, minute)` at the transition.
    after: (u32, u32),
    /// The UTC offset after, in minutes.
    offset_after: i32,
}

const TRANSITIONS: &[Transition] = &[
    // Europe/Berlin: 2024-03-31 02:00 CET → 03:00 CEST; 2024-10-27 03:00 CEST → 02:00 CET.
    Transition {
        zone: chrono_tz::Europe::Berlin,
        at: "2024-03-31T01:00:00Z",
        before: (1, 59),
        after: (3, 0),
        offset_after: 120,
    },
    Transition {
        zone: chrono_tz::Europe::Berlin,
        at: "2024-10-27T01:00:00Z",
        before: (2, 59),
        after: (2, 0),
        offset_after: 60,
    },
    // America/New_York: 2024-03-10 02:00 EST → 03:00 EDT; 2024-11-03 02:00 EDT → 01:00 EST.
    Transition {
        zone: chrono_tz::America::New_York,
        at: "2024-03-10T07:00:00Z",
        before: (1, 59),
        after: (3, 0),
        offset_after: -240,
    },
    Transition {
        zone: chrono_tz::America::New_York,
        at: "2024-11-03T06:00:00Z",
        before: (1, 59),
        after: (1, 0),
        offset_after: -300,
    },
    // Australia/Sydney (southern hemisphere): 2024-04-07 03:00 AEDT → 02:00 AEST;
    // 2024-10-06 02:00 AEST → 03:00 AEDT.
    Transition {
        zone: chrono_tz::Australia::Sydney,
        at: "2024-04-06T16:00:00Z",
        before: (2, 59),
        after: (2, 0),
        offset_after: 600,
    },
    Transition {
        zone: chrono_tz::Australia::Sydney,
        at: "2024-10-05T16:00:00Z",
        before: (1, 59),
        after: (3, 0),
        offset_after: 660,
    },
    // Australia/Adelaide (half-hour offset): 2024-04-07 03:00 ACDT → 02:00 ACST;
    // 2024-10-06 02:00 ACST → 03:00 ACDT.
    Transition {
        zone: chrono_tz::Australia::Adelaide,
        at: "2024-04-06T16:30:00Z",
        before: (2, 59),
        after: (2, 0),
        offset_after: 570,
    },
    Transition {
        zone: chrono_tz::Australia::Adelaide,
        at: "2024-10-05T16:30:00Z",
        before: (1, 59),
        after: (3, 0),
        offset_after: 630,
    },
    // Australia/Lord_Howe (DST is half an hour): 2024-04-07 02:00 +11 → 01:30 +10:30;
    // 2024-10-06 02:00 +10:30 → 02:30 +11.
    Transition {
        zone: chrono_tz::Australia::Lord_Howe,
        at: "2024-04-06T15:00:00Z",
        before: (1, 59),
        after: (1, 30),
        offset_after: 630,
    },
    Transition {
        zone: chrono_tz::Australia::Lord_Howe,
        at: "2024-10-05T15:30:00Z",
        before: (1, 59),
        after: (2, 30),
        offset_after: 660,
    },
    // Asia/Kolkata: no DST, +05:30 all year; "transition" here is local midnight of a new
    // year (2024-12-31T18:30:00Z), where day, week and month all change.
    Transition {
        zone: chrono_tz::Asia::Kolkata,
        at: "2024-12-31T18:30:00Z",
        before: (23, 59),
        after: (0, 0),
        offset_after: 330,
    },
];

/// The two helper lines of one run of the clock job, through the real runtime.
fn helpers_at(
    runner: &mut jobtop::runtime::JobRunner,
    file: &std::path::Path,
    at: DateTime<Utc>,
    zone: Tz,
) -> Vec<String> {
    let mut request =
        common::runner::request(file.to_path_buf(), "clock.lua", JobGrants::default());
    request.scheduled = at;
    request.zone = LocalZone::Named(zone);
    let outcome = runner.run(&request);
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    outcome.logs
}

/// Every second from 90 s before each transition to 90 s after: the UTC
/// helpers and the local ones as chrono-tz's `strftime` has them, and at the transition the
/// local hour and minute written down above.
#[test]
fn helpers_step_correctly_at_every_second_across_dst_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::runner::write_job(dir.path(), "clock.lua", CLOCK_JOB);
    let mut runner = common::runner::runner();
    let mut checked = 0;
    for t in TRANSITIONS {
        let at = utc(t.at);
        for second in -90i64..=90 {
            let instant = at + chrono::Duration::seconds(second);
            let logs = helpers_at(&mut runner, &file, instant, t.zone);
            let local = instant.with_timezone(&t.zone);
            assert_eq!(logs[0], expected_line(&instant), "UTC at {instant}");
            assert_eq!(logs[1], expected_line(&local), "{} at {instant}", t.zone);
            let fields: Vec<&str> = logs[1].split('\t').collect();
            let hour_minute = (
                fields[1].parse::<u32>().unwrap(),
                fields[0].parse::<u32>().unwrap(),
            );
            if second == -1 {
                assert_eq!(
                    hour_minute, t.before,
                    "{} one second before {}",
                    t.zone, t.at
                );
            }
            if second == 0 {
                assert_eq!(hour_minute, t.after, "{} at {}", t.zone, t.at);
                let offset = local.offset().fix().local_minus_utc() / 60;
                assert_eq!(offset, t.offset_after, "{} after {}", t.zone, t.at);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, TRANSITIONS.len() * 181);
}

/// With `service.timezone` set, a job every second (`* * * * * *`) across each transition runs
/// exactly once a second of real (monotonic) time, 21 runs for the 21 s around it; its scheduled UTC times are one
/// second apart, and its local helpers step as the zone does (an hour lost or repeated
/// changes nothing in the schedule).
#[tokio::test(start_paused = true)]
async fn a_1s_job_runs_once_a_second_across_dst_in_the_scheduler() {
    for t in TRANSITIONS {
        let zone = format!("  timezone: {}\n", t.zone.name());
        // Started 11 s before the transition: the first run 10 s before it.
        let start_at = utc(t.at) - chrono::Duration::seconds(11);
        let mut h = start(&every_second(&zone, "schedule: \"* * * * * *\""), start_at).await;
        let mut runs = Vec::new();
        for _ in 0..21 {
            tokio::time::advance(Duration::from_secs(1)).await;
            runs.push(h.one_run().await);
        }
        // Short of the 30 ms before a due time from which the scheduler may hand a run over.
        tokio::time::advance(Duration::from_millis(960)).await;
        assert!(
            h.finished_runs().await.is_empty(),
            "{}: a run off the second",
            t.zone
        );
        for (k, run) in runs.iter().enumerate() {
            let expected = start_at + chrono::Duration::seconds(i64::try_from(k).unwrap() + 1);
            assert_eq!(run.scheduled, expected, "{} run {k}", t.zone);
            assert_eq!(run.logs[0], expected_line(&expected), "{} run {k}", t.zone);
            assert_eq!(
                run.logs[1],
                expected_line(&expected.with_timezone(&t.zone)),
                "{} run {k} at {expected}",
                t.zone
            );
        }
        // Runs 9 and 10 (0-based) straddle the transition: the local times written above.
        let local = |run: &RunSummary| {
            let f: Vec<u32> = run.logs[1]
                .split('\t')
                .take(2)
                .map(|x| x.parse().unwrap())
                .collect();
            (f[1], f[0])
        };
        assert_eq!(local(&runs[9]), t.before, "{}", t.zone);
        assert_eq!(local(&runs[10]), t.after, "{}", t.zone);
        let job = h.job("clock").await;
        assert_eq!((job.runs, job.skips), (21, 0), "{}", t.zone);
        h.shutdown().await;
    }
}

/// Kolkata has no DST: across a whole year, at every hour, the local helpers are UTC plus
/// 5 h 30 min.
#[test]
fn a_zone_without_dst_is_a_fixed_offset_all_year() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::runner::write_job(dir.path(), "clock.lua", CLOCK_JOB);
    let mut runner = common::runner::runner();
    let start = utc("2024-01-01T00:00:00Z");
    for hour in (0..366 * 24).step_by(7) {
        let instant = start + chrono::Duration::hours(hour) + chrono::Duration::minutes(17);
        let logs = helpers_at(&mut runner, &file, instant, chrono_tz::Asia::Kolkata);
        let shifted = instant + chrono::Duration::minutes(330);
        assert_eq!(logs[1], expected_line(&shifted), "{instant}");
    }
}

/// `jobtop try --at T --tz ZONE` (the built binary) one second before and at each transition:
/// its header shows the local wall time and zone abbreviation chrono-tz gives, and the
/// helpers' local line the hour and minute written down above.
#[test]
fn try_at_each_transition_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::runner::write_job(dir.path(), "clock.lua", CLOCK_JOB);
    for t in TRANSITIONS {
        for (second, (hour, minute)) in [(-1i64, t.before), (0, t.after)] {
            let at = utc(t.at) + chrono::Duration::seconds(second);
            let at_text = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let out = std::process::Command::new(common::process::BIN)
                .arg("try")
                .arg(&file)
                .args(["--at", &at_text, "--tz", t.zone.name()])
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let local = at.with_timezone(&t.zone).format("%Y-%m-%d %H:%M:%S %Z");
            assert!(
                stdout.contains(&format!("(local: {local}, {})", t.zone.name())),
                "{at_text} in {}: {stdout}",
                t.zone
            );
            let helpers = format!("  │ {minute}\t{hour}\t");
            assert_eq!(
                stdout.lines().filter(|l| l.starts_with(&helpers)).count(),
                if (hour, minute) == (at.hour(), at.minute()) {
                    2
                } else {
                    1
                },
                "{at_text} in {}: no local line starting {helpers:?}: {stdout}",
                t.zone
            );
        }
    }
}
