//! Values fuzzed: durations, sizes and time zones, as `jobs.yaml` and the command line read
//! them, and `jobtop try --at` through the real binary.
//!
//! * `units::parse_duration` / `parse_size` on random and near-valid strings, against an
//!   oracle written here from the README's grammar: the same answer, never a panic, and every
//!   error names the text and says what is expected.
//! * The same strings as `interval`, `timeout` and `memory` in a `jobs.yaml` (double-quoted,
//!   so they reach the unit parsers as written), and random zone names as
//!   `service.timezone`: accepted exactly when the oracle (and the IANA list) says so,
//!   rejected at the value's line and column.
//! * `jobtop try`'s `--at`, `--tz`, `--timeout` and `--memory` through clap in-process, and
//!   `--at` (and a few of the others) through the built binary: exit 2 with a message saying
//!   what is expected, or a run whose helpers report exactly the time given; never a panic.
//!
//! Counts come from `JOBTOP_FUZZ_CASES` when set (the long run:
//! `JOBTOP_FUZZ_CASES=1000000 cargo test --release --test fuzz_input -- --ignored --nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Timelike, Utc};
use clap::Parser as _;
use jobtop::config::{self, ConfigError};
use jobtop::units::{UnitError, parse_duration, parse_size};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};

const FILE: &str = "/nonexistent/jobtop-fuzz/jobs.yaml";

fn cases(default: u32) -> u32 {
    std::env::var("JOBTOP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

fn run<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let started = Instant::now();
    if let Err(e) = runner(cases).run(&strategy, test) {
        panic!("{name}: {e}");
    }
    eprintln!("{name}: {cases} inputs in {:.1?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Oracles, from the README: "Durations are whole numbers with ms, s, m, h or d, or bare
// integers (seconds) [...] Units can be combined, largest first, each once"; "Sizes are bytes
// or whole numbers with KiB, MiB, GiB (or KB, MB, GB, powers of 1000)". Surrounding white
// space is allowed; sizes may have spaces before the unit.

/// Leading ASCII digits (as a number, `None` when more than fits in u128) and the rest.
fn number_and_rest(text: &str) -> Option<(Option<u128>, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let significant = text[..digits].trim_start_matches('0');
    let value = if significant.len() > 38 {
        None
    } else {
        Some(significant.parse::<u128>().unwrap_or(0))
    };
    Some((value, &text[digits..]))
}

fn expected_duration(text: &str) -> Option<Duration> {
    // Largest first; each may be written once, after the larger ones written.
    const UNITS: [(&str, u128); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let text = text.trim();
    if let Some((value, "")) = number_and_rest(text) {
        return u64::try_from(value?.checked_mul(1000)?)
            .ok()
            .map(Duration::from_millis);
    }
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut allowed = &UNITS[..];
    let mut millis: u128 = 0;
    while !rest.is_empty() {
        let (value, after) = number_and_rest(rest)?;
        let at = allowed.iter().position(|(name, _)| {
            after
                .strip_prefix(name)
                .is_some_and(|tail| tail.chars().next().is_none_or(|c| c.is_ascii_digit()))
        })?;
        let (name, per_unit) = allowed[at];
        millis = millis.checked_add(value?.checked_mul(per_unit)?)?;
        rest = &after[name.len()..];
        allowed = &allowed[at + 1..];
    }
    u64::try_from(millis).ok().map(Duration::from_millis)
}

/// `Ok(bytes)`, `Err(true)` for a size too large, `Err(false)` for one that is not a size.
fn expected_size(text: &str) -> Result<u64, bool> {
    let (value, unit) = number_and_rest(text.trim()).ok_or(false)?;
    let per_unit: u128 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(false),
    };
    // A number with more digits than u64 holds is not read as a number at all.
    let value = value.filter(|v| u64::try_from(*v).is_ok()).ok_or(false)?;
    u64::try_from(value * per_unit).map_err(|_| true)
}

// ---------------------------------------------------------------------------------------------
// Generators.

/// Strings near durations and sizes: digits (ASCII, unicode, huge, signed, fractional),
/// units (right, wrong case, unknown, unicode), white space in odd places.
fn near_unit_text() -> impl Strategy<Value = String> {
    let digits = prop_oneof![
        4 => "[0-9]{1,4}",
        2 => "[0-9]{15,45}",
        1 => "0{1,40}[1-9]",
        1 => Just(String::new()),
        1 => prop::sample::select(&["１２", "٣", "𝟗", "½", "Ⅻ", "0x10", "1e3", "1_000", "1,5"][..])
            .prop_map(str::to_string),
    ];
    let sign = prop::sample::select(&["", "", "", "-", "+", " ", "\t", "\u{a0}", "\u{3000}"][..]);
    let fraction = prop::sample::select(&["", "", "", ".5", ".", ",5", "e3"][..]);
    let gap = prop::sample::select(&["", "", "", " ", "  ", "\t", "\u{a0}", "\u{200b}", "\n"][..]);
    let unit = prop::sample::select(
        &[
            "", "ms", "s", "m", "h", "d", "S", "MS", "H", "D", "sec", "min", "hr", "us", "ns", "w",
            "y", "µs", "ｓ", "B", "K", "M", "G", "KiB", "MiB", "GiB", "TiB", "KB", "kB", "MB",
            "GB", "kiB", "mib", "b", "Ki", "KiBB", "s s", "1s", "h30m",
        ][..],
    );
    let tail = prop::sample::select(&["", "", "", "", " ", "\t", "x", "é", "\n", "\0"][..]);
    prop_oneof![
        8 => (sign, digits, fraction, gap, unit, tail).prop_map(|(a, b, c, d, e, f)| {
            format!("{a}{b}{c}{d}{e}{f}")
        }),
        1 => "\\PC{0,12}",
        1 => prop::collection::vec(any::<char>(), 0..12).prop_map(|c| c.into_iter().collect()),
    ]
}

/// Zone names: real ones, misspelt, wrong case, odd.
fn zone_text() -> impl Strategy<Value = String> {
    let real =
        prop::sample::select(chrono_tz::TZ_VARIANTS.as_slice()).prop_map(|z| z.name().to_string());
    prop_oneof![
        3 => real.clone(),
        1 => real.clone().prop_map(|z| z.to_lowercase()),
        1 => real.clone().prop_map(|z| z.to_uppercase()),
        1 => (real.clone(), any::<prop::sample::Index>()).prop_map(|(z, i)| {
            let mut c: Vec<char> = z.chars().collect();
            let at = i.index(c.len());
            c.remove(at);
            c.into_iter().collect()
        }),
        1 => real.prop_map(|z| format!(" {z}")),
        1 => prop::sample::select(&[
            "", "Local", "local", "Mars/Olympus", "UTC+1", "GMT+5", "+01:00", "Z", "CEST",
            "Europe/", "/Europe/Berlin", "Europe//Berlin", "../../etc/passwd", "Europe/Berlin\0",
            "Europe/Berlin ", "Etc/GMT+14", "Etc/GMT+15", "EST5EDT", "posixrules",
        ][..]).prop_map(str::to_string),
        1 => "\\PC{0,20}",
    ]
}

/// Near misses of RFC 3339 and valid extremes (years 0 and 9999 with the largest offsets, leap
/// seconds, long fractions).
const NEAR_MISSES: &[&str] = &[
    "2023-13-01T00:00:00Z",
    "2023-00-10T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2024-02-29T00:00:00Z",
    "2023-04-31T00:00:00Z",
    "2023-10-32T00:00:00Z",
    "2023-10-12T24:00:00Z",
    "2023-10-12T23:60:00Z",
    "2023-10-12T23:59:60Z",
    "2016-12-31T23:59:60Z",
    "2023-10-12T23:59:61Z",
    "2023-10-12T01:02:03+24:00",
    "2023-10-12T01:02:03+05",
    "2023-10-12T01:02:03+0530",
    "2023-10-12T01:02:03",
    "2023-10-12 01:02:03Z",
    "2023-10-12t01:02:03z",
    "2023-10-12T1:2:3Z",
    "23-10-12T01:02:03Z",
    "+2023-10-12T01:02:03Z",
    "-0001-10-12T01:02:03Z",
    "10000-01-01T00:00:00Z",
    "2023-10-12T01:02:03.Z",
    "2023-10-12T01:02:03,5Z",
    "2023-10-12",
    "01:02:03",
    "now",
    "",
    " ",
    "２０２３-10-12T01:02:03Z",
    "2023-10-12T01:02:03Z ",
    " 2023-10-12T01:02:03Z",
    "2023-10-12T01:02:03ZZ",
    "2023-10-12T01:02:03.123456789012345678901234567890Z",
    "0000-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59.999999999-23:59",
    "1970-01-01T00:00:00Z",
    "2038-01-19T03:14:08Z",
];

/// RFC 3339-ish times: valid ones from components, and near misses (fields out of range,
/// separators missing or odd, offsets odd, fractions long, unicode digits, garbage around).
fn at_text() -> impl Strategy<Value = String> {
    let valid = (
        0u32..10_000,
        1u32..13,
        1u32..29,
        0u32..24,
        0u32..60,
        0u32..60,
        prop::sample::select(&["", ".5", ".123", ".123456789", ".0000000001"][..]),
        prop::sample::select(
            &[
                "Z", "z", "+00:00", "-00:00", "+02:00", "-05:30", "+23:59", "-23:59",
            ][..],
        ),
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, off)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{off}")
        });
    let field = prop::sample::select(NEAR_MISSES).prop_map(str::to_string);
    prop_oneof![
        3 => valid.clone(),
        3 => field,
        2 => (valid.clone(), any::<prop::sample::Index>()).prop_map(|(t, i)| {
            let mut c: Vec<char> = t.chars().collect();
            let at = i.index(c.len());
            c.remove(at);
            c.into_iter().collect()
        }),
        2 => (valid.clone(), any::<prop::sample::Index>(), "[-:.TZ+0-9 a-z]").prop_map(|(t, i, x)| {
            let mut c: Vec<char> = t.chars().collect();
            let at = i.index(c.len());
            c[at] = x.chars().next().unwrap();
            c.into_iter().collect()
        }),
        1 => (valid, any::<prop::sample::Index>()).prop_map(|(t, i)| {
            let at = i.index(t.len() + 1);
            t[..at].to_string()
        }),
        1 => "\\PC{0,30}",
    ]
}

// ---------------------------------------------------------------------------------------------
// The unit parsers.

fn check_duration(text: &str) -> Result<(), TestCaseError> {
    match (parse_duration(text), expected_duration(text)) {
        (Ok(got), Some(want)) => prop_assert_eq!(got, want, "{:?}", text),
        (Err(e), None) => {
            prop_assert!(
                matches!(e, UnitError::BadDuration(_)),
                "{:?}: {:?}",
                text,
                e
            );
            let message = e.to_string();
            prop_assert!(message.contains(&format!("{text:?}")), "{message}");
            prop_assert!(
                message.contains("expected whole seconds or a number with a unit: 500ms, 30s"),
                "{message}"
            );
        }
        (got, want) => {
            return Err(TestCaseError::fail(format!(
                "{text:?}: parse_duration says {got:?}, the README's grammar {want:?}"
            )));
        }
    }
    Ok(())
}

fn check_size(text: &str) -> Result<(), TestCaseError> {
    match (parse_size(text), expected_size(text)) {
        (Ok(got), Ok(want)) => prop_assert_eq!(got, want, "{:?}", text),
        (Err(e), Err(too_large)) => {
            prop_assert_eq!(
                matches!(e, UnitError::SizeTooLarge(_)),
                too_large,
                "{:?}: {:?}",
                text,
                e
            );
            let message = e.to_string();
            prop_assert!(message.contains(&format!("{text:?}")), "{message}");
            prop_assert!(message.contains("expected"), "{message}");
            prop_assert!(message.contains("512KiB, 64MiB"), "{message}");
        }
        (got, want) => {
            return Err(TestCaseError::fail(format!(
                "{text:?}: parse_size says {got:?}, the README's grammar {want:?}"
            )));
        }
    }
    Ok(())
}

#[test]
fn durations_and_sizes_match_the_documented_grammar_and_errors_say_what_is_expected() {
    run("durations", cases(4000), near_unit_text(), |t| {
        check_duration(&t)
    });
    run("sizes", cases(4000), near_unit_text(), |t| check_size(&t));
}

/// The near misses the brief names, one by one.
#[test]
fn named_near_misses() {
    for bad in [
        "1.5s",
        "-1s",
        "99999999999999999999d",
        "1 h",
        "",
        "１２s",
        "٣s",
        "s",
        "1x",
    ] {
        let e = parse_duration(bad).unwrap_err().to_string();
        assert!(e.contains("expected whole seconds"), "{bad:?}: {e}");
        assert!(expected_duration(bad).is_none(), "{bad:?}");
    }
    assert_eq!(
        parse_duration("18446744073709551615ms"),
        Ok(Duration::from_millis(u64::MAX))
    );
    assert!(parse_duration("18446744073709551616ms").is_err());
    assert_eq!(
        parse_duration("000000000000000000000000000000000000000000042s"),
        Ok(Duration::from_secs(42))
    );
    // Found by this test: "too large" did not say what was expected (`jobtop try --memory
    // 99999999999GiB` printed only `size "99999999999GiB" is too large`).
    let e = parse_size("99999999999GiB").unwrap_err().to_string();
    assert!(e.contains("is too large: expected"), "{e}");
    let e = parse_size("1.5MiB").unwrap_err().to_string();
    assert!(e.contains("expected bytes or a number with a unit"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// The same values in jobs.yaml.

/// `text` as a YAML double-quoted scalar: printable ASCII as it is, everything else escaped,
/// so the parser sees exactly `text`.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {
                let _ = write!(out, "\\U{:08X}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// A one-job `jobs.yaml` with `key: "value"`; the line and column of the value.
fn yaml_with(key: &str, value: &str) -> (String, usize, usize) {
    let quoted = quoted(value);
    let interval = if key == "interval" {
        ""
    } else {
        "    interval: 1s\n"
    };
    let text = format!("jobs:\n  - name: a\n    path: a.lua\n{interval}    {key}: {quoted}\n");
    let line = if key == "interval" { 4 } else { 5 };
    (text, line, key.len() + 7)
}

fn check_yaml_value(key: &str, value: &str) -> Result<(), TestCaseError> {
    let (text, line, column) = yaml_with(key, value);
    let century = Duration::from_secs(36_500 * 86_400);
    // Negative values are refused before the unit parsers, with their own message.
    let negative = value.trim_start().starts_with('-');
    let accept = !negative
        && match key {
            "memory" => expected_size(value).is_ok_and(|n| n > 0),
            _ => expected_duration(value).is_some_and(|d| !d.is_zero() && d <= century),
        };
    match config::parse(Path::new(FILE), &text) {
        Ok(config) => {
            prop_assert!(accept, "accepted {key}: {value:?}");
            let job = &config.jobs[0];
            match key {
                "memory" => prop_assert_eq!(Ok(job.memory), expected_size(value)),
                "timeout" => prop_assert_eq!(Some(job.timeout), expected_duration(value)),
                _ => {}
            }
        }
        Err(ConfigError::Invalid { problems, .. }) => {
            prop_assert!(!accept, "rejected {key}: {value:?}: {problems:?}");
            prop_assert_eq!(problems.len(), 1, "{:?}", problems);
            let p = &problems[0];
            prop_assert_eq!((p.line, p.column), (line, column), "{}", p);
            prop_assert!(p.message.starts_with(&format!("{key} in job \"a\"")), "{p}");
            prop_assert!(p.message.contains("expected"), "{p}");
        }
        Err(e) => return Err(TestCaseError::fail(e.to_string())),
    }
    Ok(())
}

fn check_zone(name: &str) -> Result<(), TestCaseError> {
    let real = chrono_tz::TZ_VARIANTS.iter().any(|z| z.name() == name);
    let text = format!("service:\n  timezone: {}\njobs: []\n", quoted(name));
    match config::parse(Path::new(FILE), &text) {
        Ok(config) => {
            prop_assert!(real, "accepted the zone {name:?}");
            prop_assert_eq!(config.service.timezone.map(chrono_tz::Tz::name), Some(name));
        }
        Err(ConfigError::Invalid { problems, .. }) => {
            prop_assert!(!real, "rejected the zone {name:?}: {problems:?}");
            prop_assert_eq!(problems.len(), 1);
            let p = &problems[0];
            prop_assert_eq!((p.line, p.column), (2, 13), "{}", p);
            prop_assert!(
                p.message
                    .contains("expected an IANA time zone name such as Europe/Berlin"),
                "{p}"
            );
        }
        Err(e) => return Err(TestCaseError::fail(e.to_string())),
    }
    // The command line takes exactly the same names.
    match jobtop::cli::parse_zone(name) {
        Ok(zone) => prop_assert!(real && zone.name() == name, "--tz took {name:?}"),
        Err(message) => {
            prop_assert!(!real, "--tz refused {name:?}");
            prop_assert!(message.contains("expected an IANA name"), "{message}");
        }
    }
    Ok(())
}

#[test]
fn durations_sizes_and_zones_in_jobs_yaml_are_accepted_exactly_when_valid() {
    let key = prop::sample::select(&["interval", "timeout", "memory"][..]);
    run(
        "jobs.yaml values",
        cases(2000),
        (key, near_unit_text()),
        |(k, v)| check_yaml_value(k, &v),
    );
    run("zones", cases(1500), zone_text(), |z| check_zone(&z));
}

// ---------------------------------------------------------------------------------------------
// The command line in-process: clap with the real value parsers.

fn check_try_args(flag: &str, value: &str) -> Result<(), TestCaseError> {
    let arg = format!("--{flag}={value}");
    let parsed = jobtop::cli::Cli::try_parse_from(["jobtop", "try", "x.lua", arg.as_str()]);
    match parsed {
        Ok(cli) => {
            let Some(jobtop::cli::Subcommand::Try(args)) = cli.command else {
                return Err(TestCaseError::fail("not a try command"));
            };
            match flag {
                "at" => {
                    let at = args.at.unwrap();
                    let want = DateTime::parse_from_rfc3339(value).unwrap();
                    prop_assert_eq!(at, want.with_timezone(&Utc));
                }
                "timeout" => prop_assert_eq!(Some(args.timeout), expected_duration(value)),
                "memory" => prop_assert_eq!(Ok(args.memory), expected_size(value)),
                _ => prop_assert_eq!(args.tz.map(chrono_tz::Tz::name), Some(value)),
            }
        }
        Err(e) => {
            let message = e.to_string();
            prop_assert_eq!(e.exit_code(), 2, "{}", message);
            prop_assert!(
                message.contains("expected"),
                "--{flag}={value:?}: {message}"
            );
            match flag {
                "timeout" => prop_assert!(
                    expected_duration(value).is_none_or(|d| d.is_zero()),
                    "refused --timeout={value:?}: {message}"
                ),
                "memory" => prop_assert!(
                    expected_size(value).is_err() || expected_size(value) == Ok(0),
                    "refused --memory={value:?}: {message}"
                ),
                "at" => prop_assert!(
                    message.contains("expected an RFC 3339 time such as 2023-10-12T01:02:03Z"),
                    "{message}"
                ),
                _ => {}
            }
        }
    }
    Ok(())
}

#[test]
fn try_options_through_clap_never_panic_and_refusals_say_what_is_expected() {
    run("--at (clap)", cases(3000), at_text(), |v| {
        check_try_args("at", &v)
    });
    run("--timeout (clap)", cases(1000), near_unit_text(), |v| {
        check_try_args("timeout", &v)
    });
    run("--memory (clap)", cases(1000), near_unit_text(), |v| {
        check_try_args("memory", &v)
    });
    run("--tz (clap)", cases(1000), zone_text(), |v| {
        check_try_args("tz", &v)
    });
}

// ---------------------------------------------------------------------------------------------
// `jobtop try --at` through the built binary.

/// Logs the scheduled time as the helpers see it, in UTC and in local time.
const CLOCK_JOB: &str = "local job = core.job()
function job.run()
  core.log(job.minute(), job.hour(), job.day(), job.dayNum(), job.dayMonth(), job.weekNum(), job.month(), job.monthNum())
  core.log(job.minute(true), job.hour(true), job.day(true), job.dayNum(true), job.dayMonth(true), job.weekNum(true), job.month(true), job.monthNum(true))
  return job.OK
end
return job
";

/// The helpers' line for `t`, computed here with chrono's `strftime` (not jobtop's code).
fn helper_line<Z: chrono::TimeZone>(t: &DateTime<Z>) -> String
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

fn try_binary(dir: &Path, args: &[std::ffi::OsString]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jobtop"))
        .arg("try")
        .arg(dir.join("clock.lua"))
        .args(args)
        .arg("--json")
        .current_dir(dir)
        .output()
        .unwrap()
}

fn check_binary_at(dir: &Path, value: &str, zone: chrono_tz::Tz) -> Result<(), TestCaseError> {
    let out = try_binary(
        dir,
        &[
            format!("--at={value}").into(),
            "--tz".into(),
            zone.name().into(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    prop_assert!(!stderr.contains("panicked"), "--at={value:?}: {stderr}");
    let code = out.status.code();
    prop_assert_ne!(code, Some(101), "--at={:?}: {}", value, stderr);
    match DateTime::parse_from_rfc3339(value) {
        Ok(at) => {
            prop_assert_eq!(code, Some(0), "--at={:?}: {}{}", value, stdout, stderr);
            let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            prop_assert_eq!(&v["result"], "ok", "{}", stdout);
            let utc = at.with_timezone(&Utc);
            let scheduled = utc.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            prop_assert_eq!(v["scheduled"].as_str(), Some(scheduled.as_str()));
            let logs = v["logs"].as_array().unwrap();
            let want = helper_line(&utc);
            prop_assert_eq!(logs[0].as_str(), Some(want.as_str()), "{}", value);
            let local = utc.with_timezone(&zone);
            let want = helper_line(&local);
            prop_assert_eq!(
                logs[1].as_str(),
                Some(want.as_str()),
                "{} in {}",
                value,
                zone
            );
        }
        Err(_) => {
            prop_assert_eq!(code, Some(2), "--at={:?}: {}{}", value, stdout, stderr);
            prop_assert!(stdout.is_empty(), "{stdout}");
            prop_assert!(
                stderr.contains("expected an RFC 3339 time such as 2023-10-12T01:02:03Z"),
                "--at={value:?}: {stderr}"
            );
        }
    }
    Ok(())
}

#[test]
fn try_at_through_the_binary_exits_2_with_what_is_expected_or_runs_at_that_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clock.lua"), CLOCK_JOB).unwrap();
    let zones = prop::sample::select(
        &[
            chrono_tz::UTC,
            chrono_tz::Europe::Berlin,
            chrono_tz::Australia::Adelaide,
            chrono_tz::Asia::Kathmandu,
            chrono_tz::Pacific::Kiritimati,
        ][..],
    );
    let mut accepted = 0u32;
    let mut runner = runner(1);
    let strategy = (at_text(), zones);
    let random = cases(200).min(2000);
    let started = Instant::now();
    // Every named near miss and extreme once (in Kathmandu, +05:45), then random ones.
    let named = NEAR_MISSES
        .iter()
        .map(|v| ((*v).to_string(), chrono_tz::Asia::Kathmandu));
    let generated = (0..random).map(|_| strategy.new_tree(&mut runner).unwrap().current());
    let mut total = 0u32;
    for (value, zone) in named.chain(generated) {
        if let Err(e) = check_binary_at(dir.path(), &value, zone) {
            panic!("{e}");
        }
        accepted += u32::from(DateTime::parse_from_rfc3339(&value).is_ok());
        total += 1;
    }
    eprintln!(
        "--at (binary): {total} runs, {accepted} valid, in {:.1?}",
        started.elapsed()
    );
    assert!(accepted > 0 && accepted < total, "{accepted} of {total}");
}

/// The other options through the binary, a few of each, and arguments that are not UTF-8.
#[test]
fn other_try_options_through_the_binary_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clock.lua"), CLOCK_JOB).unwrap();
    let mut runner = runner(1);
    let mut args: Vec<Vec<std::ffi::OsString>> = Vec::new();
    for _ in 0..15 {
        let t = near_unit_text().new_tree(&mut runner).unwrap().current();
        args.push(vec![format!("--timeout={t}").into()]);
        let m = near_unit_text().new_tree(&mut runner).unwrap().current();
        args.push(vec![format!("--memory={m}").into()]);
        let z = zone_text().new_tree(&mut runner).unwrap().current();
        args.push(vec![format!("--tz={z}").into()]);
    }
    {
        use std::os::unix::ffi::OsStringExt;
        for flag in ["--at=", "--tz=", "--timeout=", "--memory="] {
            let mut bytes = flag.as_bytes().to_vec();
            bytes.extend_from_slice(b"2023\xff\xfe");
            args.push(vec![std::ffi::OsString::from_vec(bytes)]);
        }
    }
    for a in args
        .iter()
        .filter(|a| !a[0].as_encoded_bytes().contains(&0))
    {
        let out = try_binary(dir.path(), a);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{a:?}: {stderr}");
        match out.status.code() {
            Some(0) => {}
            // The option was taken and the run outgrew it (`--memory 3KiB`, `--timeout 1ms`):
            // the result `memory` or `timeout`, exit 1 as docs/cli.md#exit-codes says.
            Some(1) => {
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(
                    stdout.contains("memory limit") || stdout.contains("timed out"),
                    "{a:?}: exit 1 without a limit result: {stdout} {stderr}"
                );
            }
            Some(2) => assert!(
                stderr.contains("expected") || stderr.contains("invalid UTF-8"),
                "{a:?}: {stderr}"
            ),
            other => panic!("{a:?}: exit {other:?}: {stderr}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The long run.

#[test]
#[ignore = "long: JOBTOP_FUZZ_CASES inputs per parser (default 1,000,000); run with --release"]
fn long_fuzz_input() {
    let total = cases(1_000_000);
    let started = Instant::now();
    run("durations", total, near_unit_text(), |t| check_duration(&t));
    run("sizes", total, near_unit_text(), |t| check_size(&t));
    let key = prop::sample::select(&["interval", "timeout", "memory"][..]);
    run(
        "jobs.yaml values",
        total / 4,
        (key, near_unit_text()),
        |(k, v)| check_yaml_value(k, &v),
    );
    run("zones", total / 4, zone_text(), |z| check_zone(&z));
    run("--at (clap)", total / 4, at_text(), |v| {
        check_try_args("at", &v)
    });
    eprintln!("long_fuzz_input: done in {:.1?}", started.elapsed());
}
