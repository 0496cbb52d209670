//! How values are written to and read from SQL columns: times, durations, words, log lines.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Row;
use rusqlite::types::Type;

use super::{AuditEntry, JobState, MAX_STORED_LOG_BYTES, RunRecord, Skip};
use crate::job::{SkipReason, Trigger};

/// The columns of `jobs` that [`job_state`] reads, in its order.
pub(super) const JOB_COLUMNS: &str = "name, deactivated, deactivated_reason, deactivated_at, \
     deactivated_by, last_run, last_scheduled, last_result, last_duration_ms, last_error, \
     last_error_at, runs, oks, errors, skips, status, next_run, last_fired, retry_attempt, \
     retry_at";

/// The columns of `runs` that [`run_record`] reads, in its order.
pub(super) const RUN_COLUMNS: &str =
    "job, scheduled, started, duration_ms, result, error, logs, \"trigger\", reason, covers";

/// The columns of `audit` that [`audit_entry`] reads, in its order.
pub(super) const AUDIT_COLUMNS: &str = "at, user, action, job, detail";

/// A time as stored: RFC 3339, UTC, milliseconds, so that text order is time order.
///
/// Written digit by digit: the history writer formats several times per run, and chrono's
/// general formatter costs several times more. Years outside 0–9999 take chrono's way.
pub(super) fn time(t: DateTime<Utc>) -> String {
    use chrono::{Datelike as _, Timelike as _};
    let Ok(year) = u32::try_from(t.year()) else {
        return t.to_rfc3339_opts(SecondsFormat::Millis, true);
    };
    if year > 9999 {
        return t.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    // A leap second shows as nanoseconds past 1e9; chrono writes it as second 60.
    let (second, millis) = match t.nanosecond() {
        n if n >= 1_000_000_000 => (60, (n - 1_000_000_000) / 1_000_000),
        n => (t.second(), n / 1_000_000),
    };
    let mut out = String::with_capacity(24);
    let mut digits = |value: u32, width: u32, after: char| {
        for place in (0..width).rev() {
            let digit = (value / 10u32.pow(place)) % 10;
            out.push(char::from_digit(digit, 10).unwrap_or('0'));
        }
        out.push(after);
    };
    digits(year, 4, '-');
    digits(t.month(), 2, '-');
    digits(t.day(), 2, 'T');
    digits(t.hour(), 2, ':');
    digits(t.minute(), 2, ':');
    digits(second, 2, '.');
    digits(millis, 3, 'Z');
    out
}

/// An optional time as stored.
pub(super) fn opt_time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(time)
}

/// A duration as stored: milliseconds, with the nanoseconds as the fraction.
pub(super) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A stored millisecond count back to a duration, to the nanosecond.
fn duration_from_millis(ms: f64) -> Result<Duration, String> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!("{ms} is not a duration in milliseconds"));
    }
    let nanos = (ms * 1e6).round();
    if nanos >= 18_446_744_073_709_551_615.0 {
        return Err(format!("{ms} ms is too long a duration"));
    }
    // In range and non-negative: checked just above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Duration::from_nanos(nanos as u64))
}

/// The word stored for a trigger back to the trigger (`Trigger` has no `FromStr`).
fn trigger(word: &str) -> Result<Trigger, String> {
    Trigger::ALL
        .into_iter()
        .find(|t| t.as_str() == word)
        .ok_or_else(|| format!("unknown trigger {word:?}: expected schedule, operator or retry"))
}

/// The word stored for a skip reason back to the reason.
fn skip_reason(word: &str) -> Result<SkipReason, String> {
    SkipReason::from_word(word).ok_or_else(|| {
        format!("unknown skip reason {word:?}: expected overlap, missed, catch_up or retrying")
    })
}

/// The log lines of one run as stored: a JSON array of at most [`MAX_STORED_LOG_BYTES`], cut
/// in the middle (first and last lines kept, a marker line between) when it would be longer.
pub(super) fn logs_json(lines: &[String]) -> String {
    let encoded: Vec<String> = lines.iter().map(|l| json_string(l)).collect();
    // `[` `]` and a comma between lines.
    let full = 2 + encoded.iter().map(String::len).sum::<usize>() + lines.len().saturating_sub(1);
    if full <= MAX_STORED_LOG_BYTES {
        return join(encoded.iter().map(String::as_str));
    }
    // The longest marker there can be, so that the budget holds whatever count it shows.
    let marker_room = json_string(&marker(lines.len())).len() + 1;
    let mut budget = MAX_STORED_LOG_BYTES - 2 - marker_room;
    let (mut head, mut tail) = (0, encoded.len());
    // Take lines alternately from the front and the back while they fit, so the start and the
    // end of the run, usually the most telling parts, are both kept.
    let mut from_front = true;
    while head < tail {
        let front = encoded[head].len() < budget;
        let back = encoded[tail - 1].len() < budget;
        let take_front = match (front, back) {
            (false, false) => break,
            (true, false) => true,
            (false, true) => false,
            (true, true) => from_front,
        };
        if take_front {
            budget -= encoded[head].len() + 1;
            head += 1;
        } else {
            budget -= encoded[tail - 1].len() + 1;
            tail -= 1;
        }
        from_front = !from_front;
    }
    let mark = json_string(&marker(tail - head));
    join(
        encoded[..head]
            .iter()
            .map(String::as_str)
            .chain([mark.as_str()])
            .chain(encoded[tail..].iter().map(String::as_str)),
    )
}

/// The line that stands for the lines dropped from the middle of a long log.
fn marker(dropped: usize) -> String {
    format!(
        "… {dropped} log lines dropped here: the stored log of a run is capped at {} KiB …",
        MAX_STORED_LOG_BYTES / 1024
    )
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    out
}

/// A column read through `parse`, reporting the column and value when it does not parse.
fn parsed<T>(
    row: &Row<'_>,
    idx: usize,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    parse(&text).map_err(|why| bad(row, idx, &why))
}

fn opt_parsed<T>(
    row: &Row<'_>,
    idx: usize,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|t| parse(&t).map_err(|why| bad(row, idx, &why)))
        .transpose()
}

fn bad(row: &Row<'_>, idx: usize, why: &str) -> rusqlite::Error {
    let column = row
        .as_ref()
        .column_name(idx)
        .map_or_else(|_| idx.to_string(), str::to_string);
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, format!("{column}: {why}").into())
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time ({e})"))
}

fn parse_word<T: FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| e.to_string())
}

fn count(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let n: i64 = row.get(idx)?;
    u64::try_from(n).map_err(|_| bad(row, idx, &format!("{n} is not a count")))
}

/// One `jobs` row, selected with [`JOB_COLUMNS`].
pub(super) fn job_state(row: &Row<'_>) -> rusqlite::Result<JobState> {
    Ok(JobState {
        name: row.get(0)?,
        deactivated: row.get(1)?,
        deactivated_reason: row.get(2)?,
        deactivated_at: opt_parsed(row, 3, parse_time)?,
        deactivated_by: row.get(4)?,
        last_run: opt_parsed(row, 5, parse_time)?,
        last_scheduled: opt_parsed(row, 6, parse_time)?,
        last_result: opt_parsed(row, 7, parse_word)?,
        last_duration_ms: row.get(8)?,
        last_error: row.get(9)?,
        last_error_at: opt_parsed(row, 10, parse_time)?,
        runs: count(row, 11)?,
        oks: count(row, 12)?,
        errors: count(row, 13)?,
        skips: count(row, 14)?,
        status: opt_parsed(row, 15, parse_word)?,
        next_run: opt_parsed(row, 16, parse_time)?,
        last_fired: opt_parsed(row, 17, parse_time)?,
        retry_attempt: u32::try_from(count(row, 18)?).unwrap_or(u32::MAX),
        retry_at: opt_parsed(row, 19, parse_time)?,
    })
}

/// One `runs` row, selected with [`RUN_COLUMNS`].
pub(super) fn run_record(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    let ms: f64 = row.get(3)?;
    Ok(RunRecord {
        job: row.get(0)?,
        scheduled: parsed(row, 1, parse_time)?,
        started: parsed(row, 2, parse_time)?,
        duration: duration_from_millis(ms).map_err(|why| bad(row, 3, &why))?,
        result: parsed(row, 4, parse_word)?,
        error: row.get(5)?,
        logs: parsed(row, 6, |s| {
            serde_json::from_str(s).map_err(|e| format!("not a JSON array of strings ({e})"))
        })?,
        trigger: parsed(row, 7, trigger)?,
        skip: opt_parsed(row, 8, skip_reason)?
            .map(|reason| {
                Ok::<_, rusqlite::Error>(Skip {
                    reason,
                    covers: count(row, 9)?,
                })
            })
            .transpose()?,
    })
}

/// One `audit` row, selected with [`AUDIT_COLUMNS`].
pub(super) fn audit_entry(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        at: parsed(row, 0, parse_time)?,
        user: row.get(1)?,
        action: row.get(2)?,
        job: row.get(3)?,
        detail: row.get(4)?,
    })
}
