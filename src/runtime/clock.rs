//! The time helpers' values (docs/helpers.md), computed from a run's scheduled time.
//!
//! Kept apart from Lua so the calendar rules can be tested on their own.

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

/// The zone that `true` ("local time") selects in the helpers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalZone {
    /// An IANA zone, from `service.timezone` or `--tz`.
    Named(Tz),
    /// The zone of the machine jobtop runs on.
    System,
}

impl LocalZone {
    /// The zone's name for messages: `Europe/Berlin`, or `system local time`.
    pub fn describe(self) -> String {
        match self {
            LocalZone::Named(tz) => tz.name().to_string(),
            LocalZone::System => "system local time".to_string(),
        }
    }
}

/// The calendar fields the helpers report, for one instant in one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalendarParts {
    /// 0–59.
    pub minute: u32,
    /// 0–23.
    pub hour: u32,
    /// `Mon` … `Sun`, with Thursday spelled `Thur` as the Coronium page does.
    pub day: &'static str,
    /// 1–7, Monday = 1.
    pub day_num: u32,
    /// 1–31.
    pub day_month: u32,
    /// 0–53, weeks starting on Monday, days before the first Monday in week 0 (`%W`).
    pub week_num: u32,
    /// `Jan` … `Dec`.
    pub month: &'static str,
    /// 1–12.
    pub month_num: u32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl CalendarParts {
    /// The fields of `instant` as seen in zone `tz`.
    pub fn of<Z: TimeZone>(instant: &DateTime<Z>) -> CalendarParts {
        let day_num = instant.weekday().number_from_monday();
        // %W: the week number counts Mondays seen so far this year (0-based day of year).
        let week_num = (instant.ordinal0() + 7 - instant.weekday().num_days_from_monday()) / 7;
        let month_num = instant.month();
        CalendarParts {
            minute: instant.minute(),
            hour: instant.hour(),
            day: day_name(instant.weekday()),
            day_num,
            day_month: instant.day(),
            week_num,
            month: MONTHS[(month_num - 1) as usize],
            month_num,
        }
    }

    /// The fields of `instant` in `zone` (the helpers' "local time").
    pub fn local(instant: DateTime<Utc>, zone: LocalZone) -> CalendarParts {
        match zone {
            LocalZone::Named(tz) => CalendarParts::of(&instant.with_timezone(&tz)),
            LocalZone::System => CalendarParts::of(&instant.with_timezone(&chrono::Local)),
        }
    }
}

fn day_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Mon",
        Weekday::Tue => "Tue",
        Weekday::Wed => "Wed",
        Weekday::Thu => "Thur",
        Weekday::Fri => "Fri",
        Weekday::Sat => "Sat",
        Weekday::Sun => "Sun",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn spec_example() {
        let p = CalendarParts::of(&utc("2023-10-12T01:02:03Z"));
        assert_eq!(
            p,
            CalendarParts {
                minute: 2,
                hour: 1,
                day: "Thur",
                day_num: 4,
                day_month: 12,
                week_num: 41,
                month: "Oct",
                month_num: 10,
            }
        );
    }

    #[test]
    fn spec_extra_dates() {
        let p = CalendarParts::of(&utc("2024-12-30T12:00:00Z"));
        assert_eq!((p.day, p.week_num), ("Mon", 53));
        let p = CalendarParts::of(&utc("2021-01-01T12:00:00Z"));
        assert_eq!((p.day, p.week_num), ("Fri", 0));
        let p = CalendarParts::of(&utc("2021-01-04T12:00:00Z"));
        assert_eq!((p.day, p.week_num), ("Mon", 1));
        let p = CalendarParts::of(&utc("2017-01-01T12:00:00Z"));
        assert_eq!((p.day, p.day_num, p.week_num), ("Sun", 7, 0));
    }

    #[test]
    fn week_numbers_match_strftime() {
        let mut t = utc("2015-01-01T00:00:00Z");
        for _ in 0..(366 * 12) {
            let expected: u32 = t.format("%W").to_string().parse().unwrap();
            assert_eq!(CalendarParts::of(&t).week_num, expected, "{t}");
            t += chrono::Duration::days(1);
        }
    }

    #[test]
    fn local_zone_shifts_the_day() {
        let tokyo = LocalZone::Named("Asia/Tokyo".parse().unwrap());
        let p = CalendarParts::local(utc("2023-10-12T20:30:00Z"), tokyo);
        assert_eq!((p.day, p.hour, p.day_month), ("Fri", 5, 13));
    }
}
