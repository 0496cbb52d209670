//! A job's timing keys: `interval` or `schedule` (exactly one), `timezone`, `catch_up`,
//! `retries` and `retry_delay`, each checked at its node (docs/jobs-yaml.md#jobs).

use std::time::Duration;

use super::super::values::{Checker, Fields};
use super::super::yaml::{Node, ScalarKind};
use super::super::{CatchUp, JobDefaults, MAX_RETRIES, ServiceConfig};
use crate::schedule::{CronProblem, Schedule, Zone};

const EXPECT_ZONE: &str = "an IANA time zone name such as Europe/Berlin or UTC";
const EXPECT_CRON: &str = "a cron expression of five fields (minute hour day-of-month month \
    day-of-week) with an optional leading seconds field, such as \"0 2 * * *\" or \
    \"*/10 * * * * *\", or one of @hourly, @daily, @weekly, @monthly, @yearly";
const EXPECT_CATCH_UP: &str =
    "latest, none, or a duration such as 2h (run a missed firing only if it is at most that late)";
const EXPECT_RETRIES: &str = "a whole number of retries after a failed run, from 0";

/// A zone name at `node` (`timezone` in `ctx`).
pub(super) fn zone(check: &mut Checker, node: &Node, ctx: &str) -> Option<Zone> {
    let name = check.text(node, &format!("timezone {ctx}"), EXPECT_ZONE)?;
    match name.parse::<chrono_tz::Tz>() {
        Ok(tz) => Some(Zone::Named(tz)),
        Err(_) => {
            check.report(
                node.pos,
                format!("unknown time zone {name:?} {ctx}: expected {EXPECT_ZONE}"),
            );
            None
        }
    }
}

/// The job's zone: its own `timezone`, else `service.timezone`, else the system's.
pub(super) fn job_zone(
    check: &mut Checker,
    f: &Fields<'_>,
    ctx: &str,
    service: &ServiceConfig,
) -> Option<Zone> {
    match f.set("timezone") {
        Some(node) => zone(check, node, ctx),
        None => Some(service.timezone.map_or(Zone::System, Zone::Named)),
    }
}

/// `interval` or `schedule`: exactly one of them.
pub(super) fn schedule(
    check: &mut Checker,
    f: &Fields<'_>,
    entry: &Node,
    ctx: &str,
    name: &str,
    zone: Option<Zone>,
) -> Option<Schedule> {
    let exactly_one = "exactly one of interval (a duration such as 30s, 5m or 1h) and schedule \
        (a cron expression such as \"0 2 * * *\")";
    match (f.set("interval"), f.set("schedule")) {
        (Some(_), Some(second)) => {
            check.report(
                second.pos,
                format!("both interval and schedule {ctx}: expected {exactly_one}"),
            );
            None
        }
        (None, None) => {
            check.report(
                entry.pos,
                format!("missing key \"interval\" or \"schedule\" {ctx}: expected {exactly_one}"),
            );
            None
        }
        (Some(node), None) => {
            let interval = check.duration(node, "interval", ctx)?;
            Some(Schedule::every(name, interval, zone?))
        }
        (None, Some(node)) => cron(check, node, ctx, zone),
    }
}

fn cron(check: &mut Checker, node: &Node, ctx: &str, zone: Option<Zone>) -> Option<Schedule> {
    let what = format!("schedule {ctx}");
    let text = check.text(node, &what, EXPECT_CRON)?;
    match Schedule::cron(&text, zone?) {
        Ok(schedule) => Some(schedule),
        Err(CronProblem::Never) => {
            check.report(
                node.pos,
                format!("{what} {text:?} never fires (no date matches it): expected {EXPECT_CRON}"),
            );
            None
        }
        Err(CronProblem::Malformed(why)) => {
            check.report(
                node.pos,
                format!("{what} {text:?} is not a cron expression ({why}): expected {EXPECT_CRON}"),
            );
            None
        }
    }
}

/// `catch_up: latest | none | <duration>`.
pub(super) fn catch_up(check: &mut Checker, node: &Node, ctx: &str) -> Option<CatchUp> {
    let scalar = node.scalar();
    let parsed = match scalar.map(|s| (s.text.as_str(), s.kind)) {
        Some(("latest", _)) => return Some(CatchUp::Latest),
        Some(("none", _)) => return Some(CatchUp::None),
        Some((_, ScalarKind::Int(secs))) => u64::try_from(secs).ok().map(Duration::from_secs),
        Some((text, ScalarKind::Str)) => crate::units::parse_duration(text).ok(),
        _ => None,
    };
    match parsed {
        Some(limit) if !limit.is_zero() && limit <= crate::units::MAX_DURATION => {
            Some(CatchUp::Within(limit))
        }
        _ => {
            let shown = scalar.map_or_else(|| node.describe(), |s| format!("{:?}", s.text));
            check.report(
                node.pos,
                format!("catch_up {ctx} is {shown}: expected {EXPECT_CATCH_UP}"),
            );
            None
        }
    }
}

/// `retries: N`.
pub(super) fn retries(check: &mut Checker, node: &Node, ctx: &str) -> Option<u32> {
    check
        .whole_from(
            node,
            &format!("retries {ctx}"),
            EXPECT_RETRIES,
            0,
            u64::from(MAX_RETRIES),
        )
        .and_then(|n| u32::try_from(n).ok())
}

/// The timing keys shared by jobs and `service.defaults`, over `defaults`.
pub(super) fn defaults(
    check: &mut Checker,
    f: &Fields<'_>,
    ctx: &str,
    defaults: &JobDefaults,
) -> (CatchUp, u32, Duration) {
    let catch_up = f
        .set("catch_up")
        .and_then(|n| catch_up(check, n, ctx))
        .unwrap_or(defaults.catch_up);
    let retries = f
        .set("retries")
        .and_then(|n| retries(check, n, ctx))
        .unwrap_or(defaults.retries);
    let retry_delay = f
        .set("retry_delay")
        .and_then(|n| check.duration(n, "retry_delay", ctx))
        .unwrap_or(defaults.retry_delay);
    (catch_up, retries, retry_delay)
}
