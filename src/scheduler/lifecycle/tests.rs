//! The lifecycle as a table, in the style of the Kubernetes `CronJob` controller's tests: a job
//! (its policy), its state, an event, and the state and effects that follow. No threads, no
//! sleeps, no clock: each case says what time it is.

#![allow(clippy::cast_precision_loss, clippy::needless_pass_by_value)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

use super::super::table::JobEntry;
use super::{Dispatch, Effect, Ended, Event, Now};
use crate::job::{RunResult, Status};
use crate::runtime::JobGrants;
use crate::store::JobState;

/// The job's timer came, with no hand-over window beyond [`super::EARLY`].
const TIMER: Event = Event::Timer {
    ahead: super::EARLY,
};

/// The job's timer came in a wake-up that hands out runs due within 30 ms.
const WINDOW: Event = Event::Timer {
    ahead: Duration::from_millis(30),
};

/// A job and both clocks at its start (2024-01-01T00:00:00Z unless a case says otherwise).
struct Case {
    entry: JobEntry,
    wall0: DateTime<Utc>,
    mono0: Instant,
    /// The wall clock's offset against the monotonic one (a step moves it).
    offset: TimeDelta,
    /// When the last event was applied, in seconds after the start.
    last: f64,
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The job `j` with these keys (`interval: 10s`, …), and its stored state.
fn case_with(keys: &str, state: Option<JobState>) -> Case {
    let yaml = format!("jobs:\n  - name: j\n    path: j.lua\n{keys}");
    let config = crate::config::parse(Path::new("/srv/jobs.yaml"), &yaml).unwrap();
    let spec = config.jobs[0].clone();
    let grants = Arc::new(JobGrants::for_job(&spec, None));
    Case {
        entry: JobEntry::new(spec, "jobs/j.lua".into(), grants, state.as_ref()),
        wall0: utc("2024-01-01T00:00:00Z"),
        mono0: Instant::now(),
        offset: TimeDelta::zero(),
        last: 0.0,
    }
}

fn case(keys: &str) -> Case {
    case_with(keys, None)
}

impl Case {
    /// The clocks `secs` seconds (monotonic) after the start.
    fn at(&self, secs: f64) -> Now {
        let d = Duration::from_secs_f64(secs);
        Now {
            wall: self.wall0 + TimeDelta::from_std(d).unwrap() + self.offset,
            mono: self.mono0 + d,
        }
    }

    /// Applies `event` at `secs` and describes the effects.
    fn apply(&mut self, event: Event, secs: f64) -> Vec<String> {
        self.last = secs;
        let now = self.at(secs);
        let effects = self.entry.apply(event, now);
        effects.iter().map(|e| self.show(e)).collect()
    }

    /// A wall time as seconds since the start (`+12.5`).
    fn wall(&self, t: DateTime<Utc>) -> String {
        let ms = (t - self.wall0).num_milliseconds();
        format!("{:+}", ms as f64 / 1e3)
    }

    /// A monotonic instant as seconds since the start.
    fn mono(&self, at: Instant) -> String {
        let ms = at.duration_since(self.mono0).as_millis();
        format!("{}", ms as f64 / 1e3)
    }

    fn show(&self, effect: &Effect) -> String {
        match effect {
            Effect::Arm(at) => format!("arm {}", self.mono(*at)),
            Effect::Recheck(at) => format!("recheck {}", self.mono(*at)),
            Effect::Disarm => "disarm".into(),
            Effect::Dispatch(Dispatch {
                scheduled,
                trigger,
                start_at,
                ..
            }) => {
                let run = format!("run {} {}", self.wall(*scheduled), trigger.as_str());
                if *start_at > self.mono0 + Duration::from_secs_f64(self.last) {
                    format!("{run} at {}", self.mono(*start_at))
                } else {
                    run
                }
            }
            Effect::Abort => "abort".into(),
            Effect::Skipped(record) => {
                let skip = record.skip.unwrap();
                format!(
                    "skip {} {} x{}",
                    self.wall(record.scheduled),
                    skip.reason,
                    skip.covers
                )
            }
            Effect::Persist(super::Durable::Deactivate { reason, .. }) => {
                format!("deactivate: {reason}")
            }
            Effect::Persist(super::Durable::Activate { .. }) => "activate".into(),
            Effect::Publish => "publish".into(),
            Effect::Audit { action, .. } => format!("audit {action}"),
            Effect::Answer(Ok(text)) => format!("ok: {text}"),
            Effect::Answer(Err(e)) => format!("refused: {e}"),
            Effect::AnswerOnCommit(text) => format!("ok once saved: {text}"),
            Effect::Plan => "plan".into(),
        }
    }

    /// The next firing's slot, as seconds after the start.
    fn next_slot(&self) -> Option<String> {
        self.entry.next.map(|n| self.wall(n.slot))
    }

    fn run_id(&self) -> u64 {
        self.entry.running.as_ref().unwrap().run_id
    }

    /// The running run ends with `result` at `secs`.
    fn finish(&mut self, result: RunResult, secs: f64) -> Vec<String> {
        let run_id = self.run_id();
        let ended = Ended {
            result,
            error: result.is_failure().then(|| "jobs/j.lua:1: broken".into()),
            scheduled: self.at(secs).wall,
            started: self.at(secs).wall,
            duration: Duration::from_millis(1),
            deactivation: match result {
                RunResult::Cancel => Some("cancelled itself".into()),
                r if r.is_failure() => Some(format!("{r}: jobs/j.lua:1: broken")),
                _ => None,
            },
        };
        self.apply(Event::Finished { run_id, ended }, secs)
    }
}

/// The first slot of `j`, in seconds after the start, to the millisecond (its slots are
/// anchored on a hash of its name).
fn anchor(case: &Case) -> f64 {
    let first = case.entry.spec.schedule.next_after(case.wall0).unwrap();
    (first - case.wall0).num_milliseconds() as f64 / 1e3
}

#[test]
fn an_interval_job_fires_on_its_slots_and_keeps_the_rhythm() {
    let mut c = case("    interval: 10s\n");
    let a = anchor(&c);
    assert!(
        a > 0.0 && a < 10.0,
        "the first slot within one interval: {a}"
    );
    assert_eq!(
        c.apply(Event::Schedule { at_start: true }, 0.0),
        ["publish".to_string(), format!("arm {a}")]
    );
    assert_eq!(c.entry.status, Status::Waiting);
    // Handed out up to 2 ms early; the run stands for the slot itself.
    let fx = c.apply(TIMER, a - 0.001);
    assert_eq!(fx[0], format!("run {a:+} schedule at {a}"));
    assert_eq!(fx[2], format!("arm {}", a + 10.0));
    assert_eq!(c.next_slot(), Some(format!("{:+}", a + 10.0)));
    assert_eq!(c.entry.shown_status(), Status::Running);
    // The next slot comes while the run is still going: skipped, counted.
    let fx = c.apply(TIMER, a + 10.0);
    assert_eq!(fx[0], format!("skip {:+} overlap x1", a + 10.0));
    assert_eq!(c.entry.stored.skips, 1);
    c.finish(RunResult::Ok, a + 12.0);
    assert_eq!(c.entry.status, Status::Waiting);
}

#[test]
fn a_run_handed_out_early_starts_at_its_due_time() {
    let mut c = case("    interval: 10s\n");
    let a = anchor(&c);
    c.apply(Event::Schedule { at_start: true }, 0.0);
    let fx = c.apply(WINDOW, a - 0.025);
    assert_eq!(fx[0], format!("run {a:+} schedule at {a}"));
    assert_eq!(
        fx[2],
        format!("arm {}", a + 10.0),
        "the rhythm is the slots'"
    );
    assert_eq!(c.entry.shown_status(), Status::Running);
}

#[test]
fn whether_a_firing_overlaps_is_decided_at_its_time_not_at_the_hand_over() {
    let mut c = case("    interval: 10s\n");
    let a = anchor(&c);
    c.apply(Event::Schedule { at_start: true }, 0.0);
    c.apply(TIMER, a);
    // The next firing's hand-over comes while the run is still going: no decision yet.
    let fx = c.apply(WINDOW, a + 9.98);
    assert_eq!(fx, [format!("recheck {}", a + 9.998)]);
    assert_eq!(c.entry.stored.skips, 0);
    // The run ends before the firing's time: the firing runs.
    c.finish(RunResult::Ok, a + 9.99);
    let fx = c.apply(WINDOW, a + 9.998);
    assert_eq!(
        fx[0],
        format!("run {:+} schedule at {}", a + 10.0, a + 10.0)
    );
    // Still going at the next firing's time: skipped as an overlap then.
    c.apply(WINDOW, a + 19.98);
    let fx = c.apply(WINDOW, a + 19.998);
    assert_eq!(fx[0], format!("skip {:+} overlap x1", a + 20.0));
}

#[test]
fn a_stall_coalesces_missed_slots_and_runs_the_latest_once() {
    let mut c = case("    interval: 10s\n");
    let a = anchor(&c);
    c.apply(Event::Schedule { at_start: true }, 0.0);
    // 35 s late: slots a, a+10, a+20 stepped over, a+30 is the latest.
    let fx = c.apply(TIMER, a + 35.0);
    assert_eq!(
        fx[..2],
        [
            format!("skip {a:+} missed x3"),
            format!("run {:+} schedule", a + 30.0)
        ]
    );
    assert_eq!(c.entry.stored.skips, 3);
    assert_eq!(c.next_slot(), Some(format!("{:+}", a + 40.0)), "realigned");
}

#[test]
fn catch_up_none_skips_a_missed_slot_and_waits() {
    let mut c = case("    interval: 10s\n    catch_up: none\n");
    let a = anchor(&c);
    c.apply(Event::Schedule { at_start: true }, 0.0);
    let fx = c.apply(TIMER, a + 5.0);
    assert_eq!(fx[0], format!("skip {a:+} catch_up x1"));
    assert!(c.entry.running.is_none());
    assert_eq!(c.next_slot(), Some(format!("{:+}", a + 10.0)));
}

/// The service was down from the last firing to now.
fn restarted(keys: &str, last_fired: &str) -> Case {
    let state = JobState {
        name: "j".into(),
        last_fired: Some(utc(last_fired)),
        ..JobState::default()
    };
    case_with(keys, Some(state))
}

#[test]
fn after_a_downtime_the_latest_missed_firing_runs_once_as_catch_up_says() {
    // Daily at 02:00 UTC; down since the firing of Dec 29; now Jan 1 00:00.
    let keys = "    schedule: \"0 2 * * *\"\n    timezone: UTC\n";
    let mut c = restarted(keys, "2023-12-29T02:00:00Z");
    let fx = c.apply(Event::Schedule { at_start: true }, 0.0);
    assert_eq!(
        fx,
        [
            format!("skip {:+} missed x1", -(22.0 + 24.0) * 3600.0),
            "publish".into(),
            "arm 0".into()
        ]
    );
    let fx = c.apply(TIMER, 0.0);
    assert_eq!(fx[0], format!("run {:+} schedule", -22.0 * 3600.0));
    assert!(fx.contains(&"plan".to_string()), "{fx:?}");
    let fx = c.apply(Event::Plan, 0.0);
    assert_eq!(
        fx.last().unwrap(),
        "arm 60",
        "a calendar timer rechecks every minute"
    );
    assert_eq!(c.next_slot(), Some(format!("{:+}", 2.0 * 3600.0)));

    // `catch_up: 2h`: 22 h late is too late.
    let mut c = restarted(&format!("{keys}    catch_up: 2h\n"), "2023-12-30T02:00:00Z");
    let fx = c.apply(Event::Schedule { at_start: true }, 0.0);
    assert_eq!(fx[0], format!("skip {:+} catch_up x1", -22.0 * 3600.0));
    assert_eq!(c.next_slot(), Some(format!("{:+}", 2.0 * 3600.0)));
    // … but 30 minutes is in time.
    let mut c = restarted(
        "    schedule: \"30 23 * * *\"\n    timezone: UTC\n    catch_up: 2h\n",
        "2023-12-30T23:30:00Z",
    );
    let fx = c.apply(Event::Schedule { at_start: true }, 0.0);
    assert_eq!(fx, ["publish", "arm 0"]);
    assert_eq!(c.next_slot(), Some("-1800".into()));

    // A restart right after the catch-up was handed out does not run it again.
    let mut c = restarted(keys, "2023-12-31T02:00:00Z");
    let fx = c.apply(Event::Schedule { at_start: true }, 0.0);
    assert_eq!(fx, ["publish".to_string(), "arm 60".to_string()]);
    assert_eq!(c.next_slot(), Some(format!("{:+}", 2.0 * 3600.0)));
}

#[test]
fn an_interval_job_restarted_keeps_its_slot() {
    let c = case("    interval: 1h\n");
    let slot = c.entry.spec.schedule.next_after(c.wall0).unwrap();
    // Last fired one slot before the start's next: nothing missed, the slot is kept.
    let previous = slot - TimeDelta::hours(1);
    let mut c = restarted("    interval: 1h\n", &previous.to_rfc3339());
    let fx = c.apply(Event::Schedule { at_start: true }, 0.0);
    assert_eq!(fx[0], "publish");
    assert_eq!(
        c.entry.next.unwrap().slot,
        slot,
        "a restart never moves the slot"
    );
}

#[test]
fn retries_back_off_and_end_in_deactivation() {
    let mut c = case("    interval: 1h\n    retries: 2\n    retry_delay: 30s\n");
    c.apply(Event::Schedule { at_start: true }, 0.0);
    c.apply(Event::Trigger, 1.0);
    let fx = c.finish(RunResult::Error, 2.0);
    assert_eq!(c.entry.status, Status::Retrying);
    assert_eq!(c.entry.stored.retry_attempt, 1);
    assert_eq!(fx.last().unwrap(), "arm 32", "30 s after the failure");
    let fx = c.apply(TIMER, 32.0);
    assert_eq!(fx[0], "run +32 retry");
    let fx = c.finish(RunResult::Timeout, 40.0);
    assert_eq!(c.entry.stored.retry_attempt, 2);
    assert_eq!(fx.last().unwrap(), "arm 100", "the delay doubles: 60 s");
    c.apply(TIMER, 100.0);
    let fx = c.finish(RunResult::Error, 101.0);
    assert_eq!(c.entry.status, Status::Deactivated);
    assert!(
        fx.iter().any(|e| e.starts_with("deactivate: error")),
        "{fx:?}"
    );
    assert_eq!(c.entry.stored.retry_attempt, 0);
}

#[test]
fn a_success_resets_the_retries_and_a_retry_wins_over_a_firing() {
    let mut c = case("    interval: 10s\n    retries: 3\n    retry_delay: 30s\n");
    let a = anchor(&c);
    c.apply(Event::Schedule { at_start: true }, 0.0);
    c.apply(TIMER, a);
    c.finish(RunResult::Error, a + 1.0);
    assert_eq!(c.entry.status, Status::Retrying);
    // Firings before the retry's time are skipped: the retry wins.
    let fx = c.apply(TIMER, a + 10.0);
    assert_eq!(fx[0], format!("skip {:+} retrying x1", a + 10.0));
    let fx = c.apply(TIMER, a + 31.0);
    assert_eq!(fx[0], format!("run {:+} retry", a + 31.0));
    c.finish(RunResult::Ok, a + 32.0);
    assert_eq!(c.entry.status, Status::Waiting);
    assert_eq!(c.entry.stored.retry_attempt, 0);
    assert!(c.entry.retry.is_none());
}

#[test]
fn results_stop_sleep_and_cancel() {
    let mut c = case("    interval: 10s\n");
    let a = anchor(&c);
    c.apply(Event::Schedule { at_start: true }, 0.0);
    c.apply(TIMER, a);
    assert_eq!(c.finish(RunResult::Exit, a), ["publish", "disarm"]);
    assert_eq!(c.entry.status, Status::Stopped);
    // A reload resumes it at its next slot.
    let spec = c.entry.spec.clone();
    c.apply(Event::Reload { spec }, a + 1.0);
    assert_eq!(c.entry.status, Status::Waiting);
    assert_eq!(c.next_slot(), Some(format!("{:+}", a + 10.0)));

    c.apply(TIMER, a + 10.0);
    c.finish(RunResult::Sleep, a + 10.0);
    assert_eq!(c.entry.status, Status::Sleeping);
    let wake = c.entry.next.unwrap().slot - c.at(a + 10.0).wall;
    assert!(
        wake >= TimeDelta::hours(24) && wake < TimeDelta::hours(24) + TimeDelta::seconds(10),
        "{wake}"
    );

    let mut c = case("    interval: 10s\n");
    c.apply(Event::Schedule { at_start: true }, 0.0);
    c.apply(Event::Trigger, 1.0);
    let fx = c.finish(RunResult::Cancel, 1.0);
    assert_eq!(fx[1], "deactivate: cancelled itself");
    assert_eq!(c.entry.status, Status::Deactivated);
}

#[test]
fn operator_actions() {
    let mut c = case("    interval: 10s\n");
    c.apply(Event::Schedule { at_start: true }, 0.0);
    assert_eq!(c.apply(Event::Activate, 1.0), ["ok: j is already active"]);
    let fx = c.apply(Event::Trigger, 1.0);
    assert_eq!(fx[0], "run +1 operator");
    assert_eq!(fx.last().unwrap(), "ok: triggered j");
    let fx = c.apply(Event::Trigger, 1.5);
    assert!(fx[0].starts_with("refused: j is already running"), "{fx:?}");
    // Cancel while it runs: aborted, deactivated, answered once saved.
    let fx = c.apply(
        Event::Cancel {
            by: Some("alice".into()),
        },
        2.0,
    );
    assert_eq!(
        fx,
        [
            "abort",
            "deactivate: cancelled by alice",
            "disarm",
            "publish",
            "audit cancel",
            "ok once saved: cancelled j; its run in progress is being aborted"
        ]
    );
    assert_eq!(c.entry.shown_status(), Status::Deactivated);
    c.finish(RunResult::Aborted, 2.1);
    assert_eq!(c.entry.status, Status::Deactivated);
    // A triggered run of a deactivated job that stops does not reactivate it.
    c.apply(Event::Trigger, 3.0);
    c.finish(RunResult::Exit, 3.1);
    assert_eq!(c.entry.status, Status::Deactivated);
    let fx = c.apply(Event::Activate, 4.0);
    assert_eq!(c.entry.status, Status::Waiting);
    assert_eq!(fx[fx.len() - 2], "activate");
    assert_eq!(
        fx.last().unwrap(),
        "ok once saved: activated j (was deactivated)"
    );
}

#[test]
fn activating_a_job_disabled_in_jobs_yaml_lifts_the_deactivation_only() {
    let state = JobState {
        name: "j".into(),
        deactivated: true,
        ..JobState::default()
    };
    let mut c = case_with("    interval: 10s\n    active: false\n", Some(state));
    assert_eq!(c.apply(Event::Schedule { at_start: true }, 0.0), ["disarm"]);
    let fx = c.apply(Event::Activate, 1.0);
    assert_eq!(c.entry.status, Status::Disabled);
    assert!(fx.last().unwrap().contains("stays disabled"), "{fx:?}");
    assert_eq!(
        c.apply(Event::Activate, 2.0),
        ["refused: j is disabled in jobs.yaml: set `active: true` in its entry and reload"]
    );
}

#[test]
fn run_once_runs_at_its_first_slot_then_is_done() {
    let mut c = restarted(
        "    interval: 10s\n    run_once: true\n",
        "2023-01-01T00:00:00Z",
    );
    let a = anchor(&c);
    let fx = c.apply(Event::Schedule { at_start: true }, 0.0);
    assert_eq!(fx[0], "publish", "no catch-up for run_once: {fx:?}");
    c.apply(TIMER, a);
    assert!(c.entry.next.is_none());
    c.finish(RunResult::Ok, a);
    assert_eq!(c.entry.status, Status::Done);
}

#[test]
fn calendar_jobs_follow_small_wall_clock_steps() {
    // Every 10 minutes.
    let mut c = case("    schedule: \"*/10 * * * *\"\n    timezone: UTC\n");
    c.apply(Event::Schedule { at_start: true }, 0.0);
    assert_eq!(c.next_slot(), Some("+600".into()));
    // Forward 20 minutes at 5 min: the 10 and 20 min firings were stepped over; the latest
    // runs now, once.
    c.offset = TimeDelta::minutes(20);
    let fx = c.apply(Event::ClockStep { by: c.offset }, 300.0);
    assert_eq!(fx, ["publish", "arm 300"]);
    let fx = c.apply(TIMER, 300.0);
    assert_eq!(fx[..2], ["skip +600 missed x1", "run +1200 schedule"]);
    c.finish(RunResult::Ok, 300.1);
    c.apply(Event::Plan, 300.1);
    assert_eq!(c.next_slot(), Some("+1800".into()));
    // Back 20 minutes: the 30 min firing is still the next (nothing already run repeats),
    // due 20 minutes later by the monotonic clock.
    c.offset = TimeDelta::zero();
    let fx = c.apply(
        Event::ClockStep {
            by: -TimeDelta::minutes(20),
        },
        301.0,
    );
    assert_eq!(
        fx,
        ["publish", "arm 361"],
        "re-armed, capped at the recheck"
    );
    assert_eq!(c.next_slot(), Some("+1800".into()));
    assert_eq!(c.mono(c.entry.next.unwrap().due), "1800");
}

#[test]
fn a_step_of_three_hours_or_more_is_a_correction_without_catch_up() {
    let mut c = case("    schedule: \"0 * * * *\"\n    timezone: UTC\n");
    c.apply(Event::Schedule { at_start: true }, 0.0);
    c.offset = TimeDelta::hours(5);
    let fx = c.apply(Event::ClockStep { by: c.offset }, 10.0);
    assert_eq!(fx, ["publish", "arm 70"]);
    assert_eq!(
        c.next_slot(),
        Some(format!("{:+}", 6.0 * 3600.0)),
        "the next hour after the new time, nothing caught up"
    );
    c.offset = TimeDelta::hours(-4);
    c.apply(
        Event::ClockStep {
            by: TimeDelta::hours(-9),
        },
        20.0,
    );
    assert_eq!(
        c.next_slot(),
        Some(format!("{:+}", -3.0 * 3600.0)),
        "repeats allowed"
    );
}

#[test]
fn interval_jobs_keep_their_rhythm_across_a_backward_step_and_never_repeat_a_slot() {
    let mut c = case("    interval: 10s\n");
    let a = anchor(&c);
    c.apply(Event::Schedule { at_start: true }, 0.0);
    c.apply(TIMER, a);
    c.finish(RunResult::Ok, a);
    // The wall clock goes back an hour: interval jobs ignore it.
    c.offset = -TimeDelta::hours(1);
    assert!(
        c.apply(Event::ClockStep { by: c.offset }, a + 1.0)
            .is_empty()
    );
    let fx = c.apply(TIMER, a + 10.0);
    assert_eq!(
        fx[0],
        format!("run {:+} schedule", a + 10.0),
        "the next slot after the last one, on time by the monotonic clock"
    );
}

#[test]
fn a_calendar_timer_armed_far_ahead_only_rechecks() {
    let mut c = case("    schedule: \"0 3 * * *\"\n    timezone: UTC\n");
    c.apply(Event::Schedule { at_start: true }, 0.0);
    let fx = c.apply(TIMER, 60.0);
    assert_eq!(fx, ["publish", "arm 120"]);
    assert!(c.entry.running.is_none());
}

#[test]
fn new_york_gap_firing_runs_at_three() {
    let mut c = case("    schedule: \"30 2 * * *\"\n    timezone: America/New_York\n");
    c.wall0 = utc("2024-03-10T06:00:00Z"); // 01:00 EST
    c.apply(Event::Schedule { at_start: true }, 0.0);
    assert_eq!(c.next_slot(), Some("+3600".into()), "03:00 EDT is 07:00Z");
}
