//! The arithmetic of a job's phase: first due times, slots on the phase after a stall or a
//! resume, and the mapping between the monotonic clock the timers use and wall-clock time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::table::JobEntry;

/// The first due time of a job: one interval from now (plus its offset under
/// `service.spread`), or its last due time plus one interval when the state database has one
/// (a time already past means right away).
pub(super) fn first_due(
    entry: &JobEntry,
    now: Instant,
    wall_now: DateTime<Utc>,
    at_start: bool,
    spread: Duration,
) -> Instant {
    let interval = entry.spec.interval;
    let fresh = now + interval + spread_offset(&entry.spec.name, spread.min(interval));
    if entry.spec.run_once && at_start {
        return fresh;
    }
    let Some(last) = entry.stored.last_scheduled else {
        return fresh;
    };
    let next_wall = last + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    match (next_wall - wall_now).to_std() {
        Ok(ahead) => now + ahead.min(interval),
        Err(_) => now,
    }
}

/// A job's stable offset below `window`, from its name: jobs with the same interval, scheduled
/// together, come due one after another across the window instead of all at once.
fn spread_offset(name: &str, window: Duration) -> Duration {
    use std::hash::{Hash as _, Hasher as _};
    let window_ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    if window_ns == 0 {
        return Duration::ZERO;
    }
    // SipHash-2-4 with fixed keys: the same name gets the same offset on every start, on every
    // host, and with every Rust release (std's own hasher promises none of that).
    let mut hasher = siphasher::sip::SipHasher::new();
    name.hash(&mut hasher);
    Duration::from_nanos(hasher.finish() % window_ns)
}

/// The latest slot on a job's phase (`due` plus whole intervals) that is not after `now`.
pub(super) fn latest_slot(due: Instant, interval: Duration, now: Instant) -> Instant {
    if now <= due {
        return due;
    }
    let behind = now.duration_since(due).as_nanos();
    let steps = behind / interval.as_nanos().max(1);
    let steps = u32::try_from(steps).unwrap_or(u32::MAX);
    due + interval.saturating_mul(steps)
}

/// The first slot on a job's phase, given its last due time, that is still ahead: used when
/// a stopped job resumes on reload, so it keeps its rhythm instead of running at once.
pub(super) fn resume_due(entry: &JobEntry, now: Instant, wall_now: DateTime<Utc>) -> Instant {
    let interval = entry.spec.interval;
    let Some(last) = entry.stored.last_scheduled else {
        return now + interval;
    };
    let interval_ns = i128::try_from(interval.as_nanos())
        .unwrap_or(i128::MAX)
        .max(1);
    let since_last = i128::from((wall_now - last).num_nanoseconds().unwrap_or(i64::MAX));
    // Slots are last + k * interval; the first one after now, at least one interval on.
    let k = (since_last.div_euclid(interval_ns) + 1).max(1);
    let ahead = (k * interval_ns - since_last).clamp(0, interval_ns);
    now + Duration::from_nanos(u64::try_from(ahead).unwrap_or(u64::MAX))
}

/// Wall-clock time of `at`, given the two clocks read at the same moment.
pub(super) fn wall_of(wall_now: DateTime<Utc>, mono_now: Instant, at: Instant) -> DateTime<Utc> {
    let offset = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    if at >= mono_now {
        wall_now + offset(at - mono_now)
    } else {
        wall_now - offset(mono_now - at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_slot_stays_on_the_phase() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(latest_slot(t0, second, t0), t0);
        assert_eq!(latest_slot(t0, second, t0 + Duration::from_millis(999)), t0);
        assert_eq!(
            latest_slot(t0, second, t0 + Duration::from_millis(3500)),
            t0 + 3 * second
        );
        assert_eq!(
            latest_slot(t0 + second, second, t0),
            t0 + second,
            "not yet due"
        );
    }

    #[test]
    fn wall_of_maps_both_ways() {
        let now = Instant::now();
        let wall = DateTime::parse_from_rfc3339("2024-01-01T00:00:10Z")
            .unwrap()
            .with_timezone(&Utc);
        let later = wall_of(wall, now, now + Duration::from_secs(5));
        assert_eq!(later.to_rfc3339(), "2024-01-01T00:00:15+00:00");
        let earlier = wall_of(wall, now + Duration::from_secs(5), now);
        assert_eq!(earlier.to_rfc3339(), "2024-01-01T00:00:05+00:00");
    }
}
