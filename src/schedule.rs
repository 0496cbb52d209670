//! When a job fires (docs/scheduling.md#schedules): interval slots on the wall clock, or the
//! occurrences of a cron expression in the job's time zone. Pure arithmetic on UTC instants,
//! shared by the scheduler, `jobtop next`, `check` and the dashboard, so they can never
//! disagree.
//!
//! * An interval job's slots are `anchor + k × interval` after the Unix epoch, where the anchor
//!   is a stable hash of the job's name below the interval: every start and every host computes
//!   the same slots, and jobs with one interval are spread across it.
//! * A cron expression is read by `croner` with an optional leading seconds field and no year
//!   field; day-of-month and day-of-week together match when either does (Vixie cron). Its
//!   daylight-saving rules are cronie's: a fixed-time firing in a spring-forward gap runs once
//!   right after the gap, one in a fall-back overlap once at its first occurrence, and a firing
//!   whose hour is a wildcard or a step at every real instant that matches.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A zone that "local time" means: an IANA zone, or the machine's own (as cron uses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// An IANA zone, from `timezone:`, `service.timezone` or `--tz`.
    Named(Tz),
    /// The zone of the machine jobtop runs on.
    System,
}

impl Zone {
    /// The zone's name for messages and JSON: `Europe/Berlin`, or the system's own IANA name
    /// (`local` when the system does not say).
    pub fn name(self) -> String {
        match self {
            Zone::Named(tz) => tz.name().to_string(),
            Zone::System => system_zone_name().to_string(),
        }
    }

    /// The UTC offset at `t`, as `+02:00`.
    pub fn offset_at(self, t: DateTime<Utc>) -> String {
        match self {
            Zone::Named(tz) => t.with_timezone(&tz).format("%:z").to_string(),
            Zone::System => t.with_timezone(&chrono::Local).format("%:z").to_string(),
        }
    }

    /// `t` in this zone, as RFC 3339 with milliseconds and its offset
    /// (`2024-03-10T03:00:00.000-04:00`; `Z` in UTC).
    pub fn rfc3339(self, t: DateTime<Utc>) -> String {
        let format = chrono::SecondsFormat::Millis;
        match self {
            Zone::Named(tz) => t.with_timezone(&tz).to_rfc3339_opts(format, true),
            Zone::System => t
                .with_timezone(&chrono::Local)
                .to_rfc3339_opts(format, true),
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The system zone's IANA name, read once: asking the system reads `/etc/localtime`, and rows
/// are built with it at every change of a job.
fn system_zone_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| iana_time_zone::get_timezone().unwrap_or_else(|_| "local".into()))
}

/// What is wrong with a cron expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronProblem {
    /// It does not parse.
    #[error("{0}")]
    Malformed(String),
    /// It parses, but no date ever matches (`0 0 30 2 *`).
    #[error("it never fires (no date matches it)")]
    Never,
}

/// What a schedule is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Slots `anchor + k × interval` (nanoseconds since the epoch).
    Every { interval_ns: i128, anchor_ns: i128 },
    /// The occurrences of a cron expression.
    Cron(Box<Cron>),
}

/// A job's firings: when it is due, in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    kind: Kind,
    /// As written: `5s`, `0 2 * * *`, `@daily`.
    text: String,
    zone: Zone,
}

/// The parser jobtop reads cron expressions with.
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Nanoseconds since the Unix epoch.
fn nanos(t: DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
}

/// The instant `ns` nanoseconds after the Unix epoch (clamped to what chrono can hold).
fn instant(ns: i128) -> DateTime<Utc> {
    let secs = i64::try_from(ns.div_euclid(1_000_000_000)).unwrap_or(i64::MAX);
    let sub = u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0);
    DateTime::from_timestamp(secs, sub).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The stable anchor of a job's slots: SipHash-2-4 of its name with fixed keys, in whole
/// milliseconds below the interval, so every start and every host (and every Rust release)
/// agrees, and a slot is exactly what history stores (milliseconds).
pub fn anchor(name: &str, interval: Duration) -> Duration {
    use std::hash::Hasher as _;
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    if interval_ms == 0 {
        return Duration::ZERO;
    }
    let mut hasher = siphasher::sip::SipHasher::new();
    hasher.write(name.as_bytes());
    Duration::from_millis(hasher.finish() % interval_ms)
}

impl Schedule {
    /// Slots every `interval` for the job called `name`; `zone` is the job's local time.
    pub fn every(name: &str, interval: Duration, zone: Zone) -> Schedule {
        let interval_ns = i128::try_from(interval.as_nanos())
            .unwrap_or(i128::MAX)
            .max(1);
        Schedule {
            kind: Kind::Every {
                interval_ns,
                anchor_ns: i128::try_from(anchor(name, interval).as_nanos()).unwrap_or(0),
            },
            text: crate::units::format_duration(interval),
            zone,
        }
    }

    /// The occurrences of `expression` in `zone`.
    ///
    /// # Errors
    /// When it does not parse, or never fires.
    pub fn cron(expression: &str, zone: Zone) -> Result<Schedule, CronProblem> {
        let cron = parser()
            .parse(expression)
            .map_err(|e| CronProblem::Malformed(e.to_string()))?;
        let schedule = Schedule {
            kind: Kind::Cron(Box::new(cron)),
            text: expression.trim().to_string(),
            zone,
        };
        // Any date at all, from a fixed start (so `check` answers the same every day): leap
        // days come within four years of 2000.
        let start = DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default();
        if schedule.next_after(start).is_none() {
            return Err(CronProblem::Never);
        }
        Ok(schedule)
    }

    /// The schedule as written: `5s` or `0 2 * * *`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The job's zone.
    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// The interval of an interval job; `None` for a calendar job.
    pub fn interval(&self) -> Option<Duration> {
        match &self.kind {
            Kind::Every { interval_ns, .. } => Some(Duration::from_nanos(
                u64::try_from(*interval_ns).unwrap_or(u64::MAX),
            )),
            Kind::Cron(_) => None,
        }
    }

    /// Whether this is a calendar (cron) schedule.
    pub fn is_calendar(&self) -> bool {
        matches!(self.kind, Kind::Cron(_))
    }

    /// The first firing strictly after `t`; `None` when there is none (a cron expression past
    /// year 5000).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every {
                interval_ns,
                anchor_ns,
            } => {
                let k = (nanos(t) - anchor_ns).div_euclid(*interval_ns) + 1;
                Some(instant(anchor_ns + k * interval_ns))
            }
            Kind::Cron(cron) => match self.zone {
                Zone::Named(tz) => cron_next(cron, &t.with_timezone(&tz)),
                Zone::System => cron_next(cron, &t.with_timezone(&chrono::Local)),
            },
        }
    }

    /// The latest firing at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every {
                interval_ns,
                anchor_ns,
            } => {
                let k = (nanos(t) - anchor_ns).div_euclid(*interval_ns);
                Some(instant(anchor_ns + k * interval_ns))
            }
            Kind::Cron(cron) => match self.zone {
                Zone::Named(tz) => cron_latest(cron, &t.with_timezone(&tz)),
                Zone::System => cron_latest(cron, &t.with_timezone(&chrono::Local)),
            },
        }
    }

    /// How many firings lie strictly between `after` and `before`, counted up to `cap`.
    pub fn count_between(&self, after: DateTime<Utc>, before: DateTime<Utc>, cap: u64) -> u64 {
        if before <= after {
            return 0;
        }
        match &self.kind {
            Kind::Every {
                interval_ns,
                anchor_ns,
            } => {
                let first = (nanos(after) - anchor_ns).div_euclid(*interval_ns) + 1;
                let last = (nanos(before) - 1 - anchor_ns).div_euclid(*interval_ns);
                u64::try_from((last - first + 1).max(0))
                    .unwrap_or(u64::MAX)
                    .min(cap)
            }
            Kind::Cron(_) => {
                let mut count = 0;
                let mut t = after;
                while count < cap {
                    match self.next_after(t) {
                        Some(next) if next < before => {
                            count += 1;
                            t = next;
                        }
                        _ => break,
                    }
                }
                count
            }
        }
    }

    /// The next `n` firings strictly after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut firings = Vec::with_capacity(n);
        let mut at = t;
        while firings.len() < n {
            let Some(next) = self.next_after(at) else {
                break;
            };
            firings.push(next);
            at = next;
        }
        firings
    }

    /// The schedule in plain words: `every 5s`, `At 02:00, on Friday.`
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Every { .. } => format!("every {}, on fixed slots", self.text),
            Kind::Cron(cron) => cron.describe(),
        }
    }
}

fn cron_next<Z: TimeZone>(cron: &Cron, t: &DateTime<Z>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(t, false)
        .ok()
        .map(|next| next.with_timezone(&Utc))
}

fn cron_latest<Z: TimeZone>(cron: &Cron, t: &DateTime<Z>) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(t, true)
        .ok()
        .map(|latest| latest.with_timezone(&Utc))
}

#[cfg(test)]
mod tests;
