//! Slots, cron occurrences and cronie's daylight-saving rules in three zones.

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn zone(name: &str) -> Zone {
    Zone::Named(name.parse().unwrap())
}

/// The next `n` firings after `from`, written in the schedule's zone.
fn next(expression: &str, zone_name: &str, from: &str, n: usize) -> Vec<String> {
    let zone = zone(zone_name);
    let schedule = Schedule::cron(expression, zone).unwrap();
    schedule
        .upcoming(utc(from), n)
        .into_iter()
        .map(|t| zone.rfc3339(t))
        .collect()
}

#[test]
fn slots_are_fixed_on_the_wall_clock_and_spread_by_name() {
    let minute = Duration::from_secs(60);
    let a = Schedule::every("a", minute, Zone::System);
    let first = a.next_after(utc("2024-01-01T00:00:00Z")).unwrap();
    // The same slot from anywhere within the minute before it, and exactly a minute apart.
    assert_eq!(
        a.next_after(first - chrono::Duration::milliseconds(1)),
        Some(first)
    );
    assert_eq!(
        a.next_after(first),
        Some(first + chrono::Duration::seconds(60))
    );
    assert_eq!(a.latest_at_or_before(first), Some(first));
    assert_eq!(
        a.latest_at_or_before(first - chrono::Duration::nanoseconds(1)),
        Some(first - chrono::Duration::seconds(60))
    );
    // The anchor is a stable function of the name (this value is part of the contract: every
    // host and every release computes it alike), below the interval.
    assert_eq!(anchor("a", minute), Duration::from_millis(4_905));
    assert!(anchor("nightly-backup", minute) < minute);
    let names: std::collections::HashSet<Duration> = (0..100)
        .map(|i| anchor(&format!("job-{i}"), minute))
        .collect();
    assert!(names.len() > 95, "names share anchors: {}", names.len());
}

#[test]
fn counting_slots_and_occurrences() {
    let second = Schedule::every("a", Duration::from_secs(1), Zone::System);
    let t = second.next_after(utc("2024-01-01T00:00:00Z")).unwrap();
    let later = t + chrono::Duration::seconds(10);
    assert_eq!(second.count_between(t, later, 1000), 9, "strictly between");
    assert_eq!(second.count_between(t, later, 5), 5, "capped");
    assert_eq!(second.count_between(later, t, 1000), 0);
    let hourly = Schedule::cron("@hourly", zone("UTC")).unwrap();
    assert_eq!(
        hourly.count_between(
            utc("2024-01-01T00:00:00Z"),
            utc("2024-01-01T05:00:00Z"),
            100
        ),
        4
    );
}

#[test]
fn cron_fields_names_and_shortcuts() {
    let cases = [
        ("0 1 * * FRI", "2024-01-05T01:00:00.000+01:00"),
        ("0 0 L * *", "2024-01-31T00:00:00.000+01:00"),
        ("0 0 * * 5#2", "2024-01-12T00:00:00.000+01:00"),
        ("0 0 15W JUN *", "2024-06-14T00:00:00.000+02:00"),
        ("@weekly", "2024-01-07T00:00:00.000+01:00"),
        ("@monthly", "2024-02-01T00:00:00.000+01:00"),
        ("@yearly", "2025-01-01T00:00:00.000+01:00"),
        ("@daily", "2024-01-02T00:00:00.000+01:00"),
        ("*/2 * * * * *", "2024-01-01T00:00:02.000+01:00"),
        ("0-10/5,30 12 * * MON-FRI", "2024-01-01T12:00:00.000+01:00"),
        // Day of month and day of week: either matches (Vixie cron).
        ("0 0 13 * FRI", "2024-01-05T00:00:00.000+01:00"),
    ];
    for (expression, first) in cases {
        assert_eq!(
            next(
                expression,
                "Europe/Berlin",
                "2024-01-01T00:00:00.000+01:00",
                1
            ),
            [first],
            "{expression}"
        );
    }
}

#[test]
fn malformed_and_impossible_expressions_are_refused() {
    for bad in [
        "* * *",
        "61 * * * *",
        "* * * * * * *",
        "*/0 * * * *",
        "",
        "nope",
    ] {
        assert!(
            matches!(
                Schedule::cron(bad, Zone::System),
                Err(CronProblem::Malformed(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        Schedule::cron("0 0 30 2 *", Zone::System),
        Err(CronProblem::Never)
    );
    assert!(
        Schedule::cron("0 0 29 2 *", Zone::System).is_ok(),
        "leap days"
    );
}

#[test]
fn new_york_spring_forward_runs_a_gap_firing_once_right_after_the_gap() {
    assert_eq!(
        next(
            "30 2 * * *",
            "America/New_York",
            "2024-03-09T12:00:00.000-05:00",
            2
        ),
        [
            "2024-03-10T03:00:00.000-04:00",
            "2024-03-11T02:30:00.000-04:00"
        ]
    );
    assert_eq!(
        next(
            "*/30 * * * *",
            "America/New_York",
            "2024-03-10T01:10:00.000-05:00",
            3
        ),
        [
            "2024-03-10T01:30:00.000-05:00",
            "2024-03-10T03:00:00.000-04:00",
            "2024-03-10T03:30:00.000-04:00"
        ]
    );
}

#[test]
fn new_york_fall_back_runs_a_fixed_firing_once_and_wildcards_at_every_instant() {
    assert_eq!(
        next(
            "30 1 * * *",
            "America/New_York",
            "2024-11-02T12:00:00.000-04:00",
            2
        ),
        [
            "2024-11-03T01:30:00.000-04:00",
            "2024-11-04T01:30:00.000-05:00"
        ]
    );
    assert_eq!(
        next(
            "*/30 * * * *",
            "America/New_York",
            "2024-11-03T00:50:00.000-04:00",
            4
        ),
        [
            "2024-11-03T01:00:00.000-04:00",
            "2024-11-03T01:30:00.000-04:00",
            "2024-11-03T01:00:00.000-05:00",
            "2024-11-03T01:30:00.000-05:00"
        ]
    );
}

#[test]
fn berlin_both_transitions() {
    assert_eq!(
        next(
            "30 2 * * *",
            "Europe/Berlin",
            "2024-03-30T12:00:00.000+01:00",
            2
        ),
        [
            "2024-03-31T03:00:00.000+02:00",
            "2024-04-01T02:30:00.000+02:00"
        ]
    );
    assert_eq!(
        next(
            "30 2 * * *",
            "Europe/Berlin",
            "2024-10-26T12:00:00.000+02:00",
            2
        ),
        [
            "2024-10-27T02:30:00.000+02:00",
            "2024-10-28T02:30:00.000+01:00"
        ]
    );
    assert_eq!(
        next(
            "0 * * * *",
            "Europe/Berlin",
            "2024-10-27T01:30:00.000+02:00",
            3
        ),
        [
            "2024-10-27T02:00:00.000+02:00",
            "2024-10-27T02:00:00.000+01:00",
            "2024-10-27T03:00:00.000+01:00"
        ]
    );
}

#[test]
fn lord_howe_half_hour_shift_both_transitions() {
    // Spring forward 02:00 → 02:30 (+10:30 → +11:00).
    assert_eq!(
        next(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2024-10-05T12:00:00.000+10:30",
            2
        ),
        [
            "2024-10-06T02:30:00.000+11:00",
            "2024-10-07T02:15:00.000+11:00"
        ]
    );
    // Fall back 02:00 → 01:30 (+11:00 → +10:30).
    assert_eq!(
        next(
            "15 1 * * *",
            "Australia/Lord_Howe",
            "2024-04-06T12:00:00.000+11:00",
            2
        ),
        [
            "2024-04-07T01:15:00.000+11:00",
            "2024-04-08T01:15:00.000+10:30"
        ]
    );
    assert_eq!(
        next(
            "*/20 1 * * *",
            "Australia/Lord_Howe",
            "2024-04-07T01:10:00.000+11:00",
            3
        ),
        [
            "2024-04-07T01:20:00.000+11:00",
            "2024-04-07T01:40:00.000+11:00",
            "2024-04-07T01:40:00.000+10:30"
        ]
    );
}

#[test]
fn the_latest_firing_at_or_before() {
    let schedule = Schedule::cron("30 2 * * *", zone("America/New_York")).unwrap();
    assert_eq!(
        schedule.latest_at_or_before(utc("2024-03-10T08:00:00Z")),
        Some(utc("2024-03-10T07:00:00Z")),
        "the gap firing ran at 03:00 EDT"
    );
    assert_eq!(
        schedule.latest_at_or_before(utc("2024-03-10T07:00:00Z")),
        Some(utc("2024-03-10T07:00:00Z")),
        "inclusive"
    );
}
