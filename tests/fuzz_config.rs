//! `jobs.yaml` fuzzed through the real parser (`jobtop::config::parse`, what `jobtop check`,
//! `serve` and reload use): random characters, random bytes, a soup of YAML tokens, and
//! structure-aware mutations of valid configurations (keys dropped, renamed and duplicated,
//! values replaced with wrong types, huge and negative numbers, odd unicode, anchors and
//! aliases, flow style, deep nesting, tabs, second documents, truncation at any point).
//!
//! The property: the parser never panics; what it accepts is sound (names unique and valid,
//! intervals, timeouts and sizes above zero, paths inside `jobs_dir`); what it rejects it
//! rejects with at least one problem, every problem at a line and column inside the text,
//! sorted, with a message that says what was expected, and printed by `jobtop check` as
//! `FILE:LINE:COLUMN: message`.
//!
//! The normal suite runs a few thousand inputs. The long run (`#[ignore]`d) takes its count
//! from `JOBTOP_FUZZ_CASES` (default 1,000,000):
//!
//! ```text
//! JOBTOP_FUZZ_CASES=1000000 cargo test --release --test fuzz_config -- --ignored --nocapture
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use jobtop::config::{self, Config, ConfigError};
#[path = "common/fuzz_yaml.rs"]
mod fuzz_yaml;
use fuzz_yaml::{
    Mutation, TextChange, Y, any_input, apply, change_text, mutated_config, s, token_soup,
    valid_config,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};

/// A `jobs.yaml` in a directory that does not exist, so the symlink checks touch nothing.
const FILE: &str = "/nonexistent/jobtop-fuzz/jobs.yaml";

// ---------------------------------------------------------------------------------------------
// The property.

/// Whether the input was accepted or rejected (for the figures of a run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accepted,
    Rejected,
}

/// How many lines `text` has for YAML (`\n`, `\r\n` and a lone `\r` each end one).
fn line_lengths(text: &str) -> Vec<usize> {
    let mut lines = vec![0usize];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => lines.push(0),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(0);
            }
            _ => *lines.last_mut().unwrap() += 1,
        }
    }
    lines
}

/// Parses `text` and checks everything the property promises; returns what happened.
fn check(text: &str) -> Result<Verdict, TestCaseError> {
    let result = config::parse(Path::new(FILE), text);
    match result {
        Ok(config) => {
            check_accepted(&config)?;
            Ok(Verdict::Accepted)
        }
        Err(ConfigError::Unreadable { .. }) => Err(TestCaseError::fail(
            "parse said Unreadable for text it was given",
        )),
        Err(error @ ConfigError::Invalid { .. }) => {
            let shown = error.to_string();
            let ConfigError::Invalid { problems, .. } = error else {
                unreachable!()
            };
            prop_assert!(!problems.is_empty(), "rejected without a problem");
            let lines = line_lengths(text);
            let mut previous = (0, 0);
            for p in &problems {
                prop_assert!(p.line >= 1 && p.column >= 1, "no line:column in {p}");
                // A problem at the end of the text may sit just past its last character.
                prop_assert!(
                    p.line <= lines.len(),
                    "line {} past the end ({} lines): {p}",
                    p.line,
                    lines.len()
                );
                prop_assert!(
                    p.column <= lines[p.line - 1] + 1,
                    "column {} past the end of line {} ({} characters): {p}",
                    p.column,
                    p.line,
                    lines[p.line - 1]
                );
                prop_assert!(
                    p.message.contains("expected"),
                    "a message that does not say what was expected: {p}"
                );
                prop_assert!(
                    (p.line, p.column) >= previous,
                    "problems out of order: {problems:?}"
                );
                previous = (p.line, p.column);
                let printed = format!("{FILE}:{}:{}: {}", p.line, p.column, p.message);
                prop_assert!(
                    shown.contains(&printed),
                    "the error does not print {printed:?}: {shown}"
                );
            }
            Ok(Verdict::Rejected)
        }
    }
}

/// What an accepted configuration must be.
fn check_accepted(config: &Config) -> Result<(), TestCaseError> {
    let service = &config.service;
    prop_assert!(service.workers >= 1);
    prop_assert!(service.history.keep_runs >= 1 && service.history.keep_days >= 1);
    prop_assert!(!service.defaults.timeout.is_zero() && service.defaults.memory > 0);
    let century = Duration::from_secs(36_500 * 86_400);
    let mut names = std::collections::HashSet::new();
    for job in &config.jobs {
        prop_assert!(
            !job.name.is_empty()
                && job
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
            "accepted the job name {:?}",
            job.name
        );
        prop_assert!(names.insert(job.name.clone()), "two jobs {:?}", job.name);
        prop_assert!(
            job.schedule
                .interval()
                .is_none_or(|i| !i.is_zero() && i <= century),
            "{job:?}"
        );
        prop_assert!(!job.timeout.is_zero() && job.timeout <= century, "{job:?}");
        prop_assert!(job.memory > 0, "{job:?}");
        prop_assert!(
            !Path::new(&job.path).is_absolute(),
            "accepted the absolute path {:?}",
            job.path
        );
        prop_assert!(
            job.file.starts_with(&service.jobs_dir),
            "{} is outside {}",
            job.file.display(),
            service.jobs_dir.display()
        );
        let mut depth = 0i64;
        for part in Path::new(&job.path).components() {
            match part {
                std::path::Component::ParentDir => depth -= 1,
                std::path::Component::Normal(_) => depth += 1,
                _ => {}
            }
            prop_assert!(depth >= 0, "accepted the escaping path {:?}", job.path);
        }
        prop_assert!(depth > 0, "accepted the path {:?}", job.path);
        for root in &job.files {
            prop_assert!(root.is_absolute(), "accepted the files root {root:?}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Running.

/// Cases from `JOBTOP_FUZZ_CASES`, else `default`.
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
        max_shrink_iters: 10_000,
        ..RunnerConfig::default()
    })
}

/// Figures of a run.
#[derive(Default, Debug)]
struct Tally {
    inputs: u64,
    accepted: u64,
    rejected: u64,
}

/// Runs `check` on `cases` inputs from `strategy`; fails the test with the (shrunk) input
/// that broke the property.
fn fuzz(name: &str, cases: u32, strategy: impl Strategy<Value = String>) -> Tally {
    let tally = std::cell::RefCell::new(Tally::default());
    let started = Instant::now();
    let result = runner(cases).run(&strategy, |text| {
        let verdict = check(&text)?;
        let mut t = tally.borrow_mut();
        t.inputs += 1;
        match verdict {
            Verdict::Accepted => t.accepted += 1,
            Verdict::Rejected => t.rejected += 1,
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let tally = tally.into_inner();
    eprintln!(
        "{name}: {} inputs ({} accepted, {} rejected) in {:.1?}",
        tally.inputs,
        tally.accepted,
        tally.rejected,
        started.elapsed()
    );
    tally
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn random_and_mutated_yaml_never_panics_and_every_rejection_has_a_line_and_column() {
    let tally = fuzz("jobs.yaml", cases(2000), any_input());
    // The generators reach both sides, or the property says little.
    assert!(tally.accepted > 0 && tally.rejected > 0, "{tally:?}");
}

/// The generator of valid configurations makes valid ones, and the parser takes every form
/// of them (flow or block, quoted, tagged, key order, comments, CRLF line ends, a BOM).
#[test]
fn valid_configurations_in_any_form_are_accepted() {
    let forms = (
        valid_config(),
        prop::collection::vec(any::<usize>(), 0..3),
        prop::collection::vec(any::<usize>(), 0..2),
        prop::sample::select(&["", "crlf", "bom", "directive", "comment"][..]),
    );
    let result = runner(cases(500).min(5000)).run(&forms, |((mut y, jobs), flow, block, text)| {
        for at in flow {
            apply(&mut y, &Mutation::ToFlow(at));
        }
        for at in block {
            apply(&mut y, &Mutation::ToBlock(at));
        }
        let mut rendered = y.render();
        match text {
            "crlf" => change_text(&mut rendered, &TextChange::Crlf),
            "bom" => change_text(&mut rendered, &TextChange::Bom),
            "directive" => change_text(
                &mut rendered,
                &TextChange::Directive("%YAML 1.2\n---\n".into()),
            ),
            "comment" => rendered.push_str("# the end\n"),
            _ => {}
        }
        match config::parse(Path::new(FILE), &rendered) {
            Ok(config) => {
                check_accepted(&config)?;
                prop_assert_eq!(config.jobs.len(), jobs, "{}", rendered);
                for (i, job) in config.jobs.iter().enumerate() {
                    prop_assert_eq!(&job.name, &format!("job-{i}"));
                }
                Ok(())
            }
            Err(e) => Err(TestCaseError::fail(format!("rejected:\n{rendered}\n{e}"))),
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A bad `interval` in one job of a valid configuration is rejected at that value: its line
/// and column, with a message that says what is wrong.
#[test]
fn a_bad_interval_is_reported_at_its_own_line_and_column() {
    let bad = prop::sample::select(
        &[
            ("0", "is zero"),
            ("0s", "is zero"),
            ("0ms", "is zero"),
            ("-1", "is negative"),
            ("-1s", "is negative"),
            ("' -5m'", "is negative"),
            ("1.5s", "invalid duration"),
            ("1.5", "invalid duration"),
            ("1 h", "invalid duration"),
            ("99999999999999999999d", "invalid duration"),
            ("36501d", "too long"),
            ("18446744073709551616", "too long"),
            ("１２s", "invalid duration"),
            ("٣s", "invalid duration"),
            ("true", "is the boolean true"),
            ("[1s]", "is a list"),
            ("{s: 1}", "is a mapping"),
            ("5x", "invalid duration"),
            ("\"\"", "invalid duration"),
        ][..],
    );
    let strategy = (valid_config(), any::<prop::sample::Index>(), bad)
        .prop_filter("needs a job", |((_, jobs), _, _)| *jobs > 0);
    let result =
        runner(cases(300).min(3000)).run(&strategy, |((mut y, jobs), which, (value, words))| {
            let target = which.index(jobs);
            let Y::M(top) = &mut y else { unreachable!() };
            let Y::L(list) = &mut top.last_mut().unwrap().1 else {
                unreachable!()
            };
            let Y::M(entries) = &mut list[target] else {
                unreachable!()
            };
            let slot = entries.iter_mut().find(|(k, _)| k == "interval").unwrap();
            slot.1 = s(value);
            let text = y.render();
            let needle = format!("interval: {value}");
            let (line, at) = text
                .lines()
                .enumerate()
                .find_map(|(n, l)| l.find(&needle).map(|at| (n + 1, at)))
                .unwrap();
            let column =
                text.lines().nth(line - 1).unwrap()[..at].chars().count() + "interval: ".len() + 1;
            match config::parse(Path::new(FILE), &text) {
                Ok(_) => Err(TestCaseError::fail(format!("accepted:\n{text}"))),
                Err(ConfigError::Invalid { problems, .. }) => {
                    prop_assert_eq!(problems.len(), 1, "{:?}", problems);
                    let p = &problems[0];
                    prop_assert_eq!((p.line, p.column), (line, column), "{}\n{}", p, text);
                    prop_assert!(p.message.contains(words), "{} lacks {:?}", p, words);
                    prop_assert!(
                        p.message.contains(&format!("in job \"job-{target}\"")),
                        "{}",
                        p
                    );
                    prop_assert!(p.message.contains(": expected "), "{}", p);
                    Ok(())
                }
                Err(e) => Err(TestCaseError::fail(e.to_string())),
            }
        });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Mutated configurations through the real `jobtop check`: exit 0 or 1, never a panic, and
/// every rejection printed as `FILE:LINE:COLUMN: …`.
#[test]
fn jobtop_check_reports_mutated_configurations_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("jobs")).unwrap();
    let file = dir.path().join("jobs.yaml");
    let mut runner = runner(1);
    let strategy = mutated_config();
    let mut codes = [0u32; 3];
    for _ in 0..40 {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        std::fs::write(&file, &text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_jobtop"))
            .arg("check")
            .arg("--config")
            .arg(&file)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{text:?}\n{stderr}");
        let code = out.status.code().unwrap_or(-1);
        let expected = match config::parse(&file, &text) {
            // The configuration is sound; its job files do not exist, which check reports.
            Ok(config) if config.jobs.is_empty() => 0,
            Ok(_) | Err(_) => 1,
        };
        assert_eq!(
            code, expected,
            "{text:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
        if code == 1 {
            let shown = format!("{stdout}{stderr}");
            let prefix = format!("{}:", file.display());
            // Problem lines (`FILE:LINE:COLUMN: …`, or `FILE:LINE: job …` for a job file),
            // not the summary (`FILE: 2 problems found`).
            for line in shown
                .lines()
                .filter(|l| l.starts_with(&prefix) && !l[prefix.len()..].starts_with(' '))
            {
                let rest = &line[prefix.len()..];
                let mut parts = rest.splitn(3, ':');
                let (l, c) = (parts.next().unwrap(), parts.next().unwrap_or(""));
                assert!(
                    l.parse::<usize>().is_ok()
                        && (c.parse::<usize>().is_ok() || c.starts_with(' ')),
                    "no line:column in {line:?}"
                );
            }
            assert!(shown.contains(&prefix), "{text:?}\n{shown}");
        }
        codes[usize::try_from(code).unwrap()] += 1;
    }
    assert!(codes[1] > 0, "{codes:?}");
}

// ---------------------------------------------------------------------------------------------
// Regressions: inputs the fuzzing found.

fn rejected_at(text: &str) -> Vec<(usize, usize, String)> {
    match config::parse(Path::new(FILE), text) {
        Err(ConfigError::Invalid { problems, .. }) => problems
            .into_iter()
            .map(|p| (p.line, p.column, p.message))
            .collect(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Found by a deep-nesting probe written for these tests (the generators nest at most 140
/// levels): 10,000 nested block lists overflowed the stack and aborted the
/// process (no panic, no message: `jobtop check` and a reload in `serve` died). Nesting is
/// now capped at 100 levels, aliases included, with an error at the node that goes past it.
#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // Block lists, each one more indented: `-\n -\n  -\n …`.
    let mut block = String::from("jobs:\n");
    for i in 0..100_000 {
        block.push_str(&" ".repeat(i % 2000));
        block.push_str("-\n");
    }
    let mut block_deep = String::from("jobs:\n");
    for i in 0..10_000 {
        block_deep.push_str(&" ".repeat(i + 1));
        block_deep.push_str("-\n");
    }
    let problems = rejected_at(&block_deep);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].0, problems[0].1), (101, 101), "{problems:?}");
    assert!(
        problems[0].2.contains("deeper than 100 levels"),
        "{problems:?}"
    );
    assert!(problems[0].2.contains(": expected"), "{problems:?}");
    let _ = check(&block).unwrap();

    // Flow lists a million deep.
    let flow = format!("jobs: {}{}\n", "[".repeat(1_000_000), "]".repeat(1_000_000));
    let problems = rejected_at(&flow);
    assert_eq!(problems[0].0, 1, "{problems:?}");
    assert!(problems[0].2.contains("expected"), "{problems:?}");

    // Aliases that each wrap the one before: deep without being written deep.
    let mut aliases = String::from("x0: &x0 []\n");
    for i in 1..100_000 {
        let _ = writeln!(aliases, "x{i}: &x{i} [*x{}]", i - 1);
    }
    let problems = rejected_at(&aliases);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].0, problems[0].1), (100, 12), "{problems:?}");
    assert!(problems[0].2.contains("aliases included"), "{problems:?}");

    // 100 levels are still fine as YAML (and rejected for what they hold, not their depth).
    let ok_depth = format!("jobs: {}x{}\n", "[".repeat(99), "]".repeat(99));
    let problems = rejected_at(&ok_depth);
    assert!(problems[0].2.contains("job #1 is a list"), "{problems:?}");
}

/// Found by the fuzzing (the first normal-suite run, then the first 100,000-input run for the
/// empty-document case): at the end of a file without a final line break the parser reports
/// positions on the line after the last one (`4:1` in a three-line file), for syntax errors
/// and for the empty node of a document that ends there. Positions now stay inside the text.
#[test]
fn positions_at_the_end_of_a_file_stay_inside_it() {
    for (text, line, column, needle) in [
        ("service:\n  defaults: {}\njo", 3, 3, "invalid YAML"),
        ("%FOO bar\n---", 2, 4, "the top level is empty"),
        ("jobs:\n  - name: a\n    path: [", 3, 12, "invalid YAML"),
        ("jobs: [\r  {name: a", 2, 11, "invalid YAML"),
    ] {
        let problems = rejected_at(text);
        assert_eq!(
            (problems[0].0, problems[0].1),
            (line, column),
            "{text:?}: {problems:?}"
        );
        assert!(problems[0].2.contains(needle), "{text:?}: {problems:?}");
        check(text).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The long run.

#[test]
#[ignore = "long: JOBTOP_FUZZ_CASES inputs (default 1,000,000); run with --release"]
fn long_fuzz_config() {
    let total = cases(1_000_000);
    let started = Instant::now();
    let mutated = total / 2;
    let soup = total / 4;
    let chars = total / 8;
    let bytes = total - mutated - soup - chars;
    let a = fuzz("mutated configs", mutated, mutated_config());
    let b = fuzz("token soup", soup, token_soup());
    let c = fuzz(
        "random characters",
        chars,
        prop::collection::vec(any::<char>(), 0..400).prop_map(|c| c.into_iter().collect()),
    );
    let d = fuzz(
        "random bytes",
        bytes,
        prop::collection::vec(any::<u8>(), 0..400)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    );
    let inputs = a.inputs + b.inputs + c.inputs + d.inputs;
    let accepted = a.accepted + b.accepted + c.accepted + d.accepted;
    eprintln!(
        "long_fuzz_config: {inputs} inputs, {accepted} accepted, {} rejected, in {:.1?}; no panic, every rejection with line:column",
        inputs - accepted,
        started.elapsed()
    );
    assert_eq!(inputs, u64::from(total));
}

/// Found while fuzzing large inputs: in a file that is not all ASCII, every job's entry text
/// was cut out by counting characters from the start of the file, so 10,000 jobs and one `é`
/// took seconds (quadratic). The offsets are now worked out once; the entry texts must still
/// be cut at the right characters.
#[test]
fn entry_texts_of_a_large_non_ascii_file_are_cut_at_the_right_characters() {
    let mut text = String::from("# é — jobs\njobs:\n");
    for i in 0..5000 {
        let _ = writeln!(
            text,
            "  - name: job{i}   # näme {i}\n    path: ü{i}.lua\n    interval: {}s",
            i + 1
        );
    }
    let config = config::parse(Path::new(FILE), &text).unwrap();
    assert_eq!(config.jobs.len(), 5000);
    for (i, job) in config.jobs.iter().enumerate() {
        assert_eq!(
            *job.source.text,
            format!(
                "name: job{i}   # näme {i}\npath: ü{i}.lua\ninterval: {}s",
                i + 1
            )
        );
        assert_eq!(job.path, format!("ü{i}.lua"));
    }
}
