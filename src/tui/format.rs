//! How times, durations and long text are written in the dashboard: short, and always relative
//! to the "now" that is passed in, so that renders are reproducible.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ratatui::text::Span;

use crate::units::format_duration;

/// An interval in seconds as `jobs.yaml` would write it: `5s`, `1m`, `500ms`.
pub fn interval(secs: f64) -> String {
    Duration::try_from_secs_f64(secs).map_or_else(|_| "-".to_string(), format_duration)
}

/// A whole number of seconds as `12s`, `3m`, `2h`, `4d`: the largest unit only.
fn coarse(secs: i64) -> String {
    match secs {
        ..60 => format!("{secs}s"),
        60..3_600 => format!("{}m", secs / 60),
        3_600..86_400 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A whole number of seconds as `4s`, `2m10s`, `1h5m`, `3d2h`: the two largest units.
fn fine(secs: i64) -> String {
    match secs {
        ..60 => format!("{secs}s"),
        60..3_600 => two(secs / 60, "m", secs % 60, "s"),
        3_600..86_400 => two(secs / 3_600, "h", secs % 3_600 / 60, "m"),
        _ => two(secs / 86_400, "d", secs % 86_400 / 3_600, "h"),
    }
}

fn two(big: i64, big_unit: &str, small: i64, small_unit: &str) -> String {
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{small}{small_unit}")
    }
}

/// How long ago a moment was: `12s ago`, `3m ago`, `-` for never.
pub fn ago(then: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match then {
        None => "-".to_string(),
        Some(then) => {
            let secs = (now - then).num_seconds();
            // A moment slightly in the future is clock skew between processes, not news.
            if secs <= 0 {
                "now".to_string()
            } else {
                format!("{} ago", coarse(secs))
            }
        }
    }
}

/// A countdown to a moment: `in 4s`, `in 2m10s`, `due` once it has passed, `-` for none.
pub fn countdown(when: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match when {
        None => "-".to_string(),
        Some(when) => {
            let millis = (when - now).num_milliseconds();
            if millis <= 0 {
                "due".to_string()
            } else {
                // To the nearest second, and at least one, so that "in 0s" never shows while
                // the run is still ahead. Not rounded up: the scheduler sets a job's next due
                // time as it hands a run over, up to 2 ms before that run is due, and a 1 s job
                // would then show "in 2s" for a next run 1.002 s away.
                format!("in {}", fine(((millis + 500) / 1000).max(1)))
            }
        }
    }
}

/// How long something has been going: `4s`, `2m10s`.
pub fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    fine((now - since).num_seconds().max(0))
}

/// A run's duration: `12ms`, `1.2s`, `2m3s`.
pub fn millis(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        "-".to_string()
    } else if ms < 1.0 {
        "<1ms".to_string()
    } else if ms < 1_000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.1}s", ms / 1_000.0)
    } else {
        #[allow(clippy::cast_possible_truncation)] // finite, positive, and far below i64::MAX
        let secs = (ms / 1_000.0) as i64;
        fine(secs)
    }
}

/// A moment as an absolute UTC time: `2024-05-01 12:00:03 UTC`.
pub fn timestamp(when: DateTime<Utc>) -> String {
    when.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The first line of a text, with `…` when more lines follow.
pub fn first_line(text: &str) -> String {
    let mut lines = text.trim().lines();
    let first = lines.next().unwrap_or_default().trim_end();
    if lines.next().is_some() {
        format!("{first} …")
    } else {
        first.to_string()
    }
}

/// The display width of a text, in terminal columns.
pub fn width(text: &str) -> usize {
    Span::raw(text).width()
}

/// A text cut to `max` columns, ending in `…` when it was cut.
pub fn truncate(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let w = width(c.encode_utf8(&mut buf));
        if used + w > max - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// A text broken into lines of at most `max` columns, between words where it can be (tabs
/// become spaces); a word longer than a line is cut.
pub fn wrap(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.replace('\t', "    ");
        if width(&line) <= max {
            out.push(line);
            continue;
        }
        let mut current = String::new();
        let mut used = 0;
        for piece in line.split_inclusive(' ') {
            let word = piece.trim_end();
            if used > 0 && used + width(word) > max {
                out.push(current.trim_end().to_string());
                current.clear();
                used = 0;
            }
            if used + width(word) <= max {
                current.push_str(piece);
                used += width(piece);
                continue;
            }
            let mut buf = [0u8; 4];
            for c in word.chars() {
                let w = width(c.encode_utf8(&mut buf));
                if used + w > max {
                    out.push(std::mem::take(&mut current));
                    used = 0;
                }
                current.push(c);
                used += w;
            }
            current.push_str(&piece[word.len()..]);
            used += piece.len() - word.len();
        }
        out.push(current.trim_end().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_714_564_800 + secs, 0).unwrap()
    }

    #[test]
    fn relative_times() {
        let now = at(0);
        assert_eq!(ago(None, now), "-");
        assert_eq!(ago(Some(at(-12)), now), "12s ago");
        assert_eq!(ago(Some(at(-190)), now), "3m ago");
        assert_eq!(ago(Some(at(-7_300)), now), "2h ago");
        assert_eq!(ago(Some(at(-200_000)), now), "2d ago");
        assert_eq!(ago(Some(at(3)), now), "now");
        assert_eq!(countdown(Some(at(4)), now), "in 4s");
        assert_eq!(countdown(Some(at(130)), now), "in 2m10s");
        assert_eq!(countdown(Some(at(3_900)), now), "in 1h5m");
        assert_eq!(countdown(Some(at(0)), now), "due");
        let ms = |n| Some(now + chrono::Duration::milliseconds(n));
        assert_eq!(countdown(ms(1_002), now), "in 1s");
        assert_eq!(countdown(ms(300), now), "in 1s");
        assert_eq!(countdown(ms(1_600), now), "in 2s");
        assert_eq!(countdown(None, now), "-");
    }

    #[test]
    fn durations_and_text() {
        assert_eq!(interval(5.0), "5s");
        assert_eq!(interval(60.0), "1m");
        assert_eq!(interval(0.5), "500ms");
        assert_eq!(interval(-1.0), "-");
        assert_eq!(millis(12.4), "12ms");
        assert_eq!(millis(1_234.0), "1.2s");
        assert_eq!(millis(123_400.0), "2m3s");
        assert_eq!(millis(0.2), "<1ms");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(first_line("boom\nstack traceback:"), "boom …");
        assert_eq!(wrap("abcdef\nxy", 4), ["abcd", "ef", "xy"]);
        assert_eq!(wrap("one two three", 8), ["one two", "three"]);
        assert_eq!(wrap("a verylongword b", 6), ["a", "verylo", "ngword", "b"]);
    }
}
