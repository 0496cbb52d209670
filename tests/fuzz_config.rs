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
            !job.interval.is_zero() && job.interval <= century,
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
// A YAML model that renders to text, so mutations can work on structure.

#[derive(Clone, Debug)]
enum Y {
    /// A scalar, written as it is (quotes, tags and all).
    S(String),
    /// A block mapping.
    M(Vec<(String, Y)>),
    /// A block list.
    L(Vec<Y>),
    /// A flow mapping `{a: 1}`.
    FM(Vec<(String, Y)>),
    /// A flow list `[1, 2]`.
    FL(Vec<Y>),
    /// `&name` before a node.
    Anchor(String, Box<Y>),
    /// `*name`.
    Alias(String),
}

fn s(text: &str) -> Y {
    Y::S(text.to_string())
}

fn m(entries: Vec<(&str, Y)>) -> Y {
    Y::M(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

impl Y {
    /// Whether the node is written on lines of its own below its key.
    fn is_block(&self) -> bool {
        match self {
            Y::M(e) => !e.is_empty(),
            Y::L(i) => !i.is_empty(),
            Y::Anchor(_, inner) => inner.is_block(),
            _ => false,
        }
    }

    /// The node on one line, in flow style.
    fn inline(&self) -> String {
        match self {
            Y::S(text) => text.clone(),
            Y::Alias(name) => format!("*{name}"),
            Y::Anchor(name, inner) => format!("&{name} {}", inner.inline()),
            Y::M(entries) | Y::FM(entries) => {
                let parts: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.inline()))
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
            Y::L(items) | Y::FL(items) => {
                let parts: Vec<String> = items.iter().map(Y::inline).collect();
                format!("[{}]", parts.join(", "))
            }
        }
    }

    /// The node as the lines of a block at `indent` (it must be a block node).
    fn block(&self, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match self {
            Y::M(entries) => {
                for (k, v) in entries {
                    match v {
                        Y::Anchor(name, inner) if inner.is_block() => {
                            let _ = writeln!(out, "{pad}{k}: &{name}");
                            inner.block(indent + 2, out);
                        }
                        v if v.is_block() => {
                            let _ = writeln!(out, "{pad}{k}:");
                            // Lists under a key are often written at the key's own indent.
                            let child = if matches!(v, Y::L(_)) && indent == 0 {
                                2
                            } else {
                                indent + 2
                            };
                            v.block(child, out);
                        }
                        v => {
                            let _ = writeln!(out, "{pad}{k}: {}", v.inline());
                        }
                    }
                }
            }
            Y::L(items) => {
                for item in items {
                    if item.is_block() && !matches!(item, Y::Anchor(..)) {
                        // Compact form: the item's first line follows the dash.
                        let mut inner = String::new();
                        item.block(indent + 2, &mut inner);
                        let mut text = inner;
                        text.replace_range(indent..indent + 2, "- ");
                        out.push_str(&text);
                    } else if let Y::Anchor(name, inner) = item
                        && inner.is_block()
                    {
                        let _ = writeln!(out, "{pad}- &{name}");
                        inner.block(indent + 2, out);
                    } else {
                        let _ = writeln!(out, "{pad}- {}", item.inline());
                    }
                }
            }
            Y::Anchor(_, inner) => inner.block(indent, out),
            other => {
                let _ = writeln!(out, "{pad}{}", other.inline());
            }
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if self.is_block() {
            self.block(0, &mut out);
        } else {
            out.push_str(&self.inline());
            out.push('\n');
        }
        out
    }

    /// Nodes in preorder (this one first).
    fn count(&self) -> usize {
        1 + match self {
            Y::M(e) | Y::FM(e) => e.iter().map(|(_, v)| v.count()).sum(),
            Y::L(i) | Y::FL(i) => i.iter().map(Y::count).sum(),
            Y::Anchor(_, inner) => inner.count(),
            _ => 0,
        }
    }

    /// Calls `f` on the node numbered `*target` in preorder.
    fn visit(&mut self, target: &mut usize, f: &mut dyn FnMut(&mut Y)) -> bool {
        if *target == 0 {
            f(self);
            return true;
        }
        *target -= 1;
        match self {
            Y::M(e) | Y::FM(e) => e.iter_mut().any(|(_, v)| v.visit(target, f)),
            Y::L(i) | Y::FL(i) => i.iter_mut().any(|v| v.visit(target, f)),
            Y::Anchor(_, inner) => inner.visit(target, f),
            _ => false,
        }
    }

    fn at(&mut self, index: usize, f: &mut dyn FnMut(&mut Y)) {
        let mut target = index % self.count();
        self.visit(&mut target, f);
    }
}

// ---------------------------------------------------------------------------------------------
// Valid configurations.

const DURATIONS: &[&str] = &[
    "1s", "500ms", "30s", "5m", "1h", "1d", "30", "90", "'10s'", "\"2m\"", "!!str 45",
];
const SIZES: &[&str] = &["16MiB", "512KiB", "1GiB", "64 MiB", "2KB", "1000", "3MB"];
const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Adelaide",
    "Asia/Kolkata",
];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = Y> {
    prop::sample::select(list).prop_map(s)
}

fn service() -> impl Strategy<Value = Option<Y>> {
    let defaults = (pick(DURATIONS), pick(SIZES))
        .prop_map(|(t, mem)| m(vec![("timeout", t), ("memory", mem)]));
    let history = (1u32..500, 1u32..400).prop_map(|(r, d)| {
        m(vec![
            ("keep_runs", Y::S(r.to_string())),
            ("keep_days", Y::S(d.to_string())),
        ])
    });
    let keys = (
        prop::option::of(pick(&[
            "jobs",
            "'jobs'",
            "scripts/jobs",
            "/srv/jobtop/jobs",
        ])),
        prop::option::of(pick(&[".jobtop", "state"])),
        prop::option::of(pick(ZONES)),
        prop::option::of((1u32..16).prop_map(|n| Y::S(n.to_string()))),
        prop::option::of(defaults),
        prop::option::of(history),
        prop::option::of(pick(&["root"])),
    );
    prop::option::of(keys.prop_flat_map(|(jd, sd, tz, w, d, h, op)| {
        let mut entries = Vec::new();
        for (key, value) in [
            ("jobs_dir", jd),
            ("state_dir", sd),
            ("timezone", tz),
            ("workers", w),
            ("defaults", d),
            ("history", h),
            ("operators", op),
        ] {
            if let Some(v) = value {
                entries.push((key.to_string(), v));
            }
        }
        Just(entries).prop_shuffle().prop_map(Y::M)
    }))
}

fn job(index: usize) -> impl Strategy<Value = Y> {
    let caps = prop::sample::subsequence(&["network", "exec", "files"][..], 0..=3)
        .prop_map(|c| Y::FL(c.into_iter().map(s).collect()));
    (
        pick(&["a.lua", "sub/b.lua", "'c d.lua'", "./e.lua", "f/../g.lua"]),
        pick(DURATIONS),
        (
            prop::option::of(pick(&["true", "false"])),
            prop::option::of(pick(&["true", "false"])),
            prop::option::of(pick(DURATIONS)),
            prop::option::of(pick(SIZES)),
            prop::option::of(caps),
            prop::option::of(Just(Y::L(vec![s("/var/log"), s("/tmp")]))),
            prop::option::of(Just(Y::FL(vec![s("API_TOKEN"), s("_X")]))),
        ),
    )
        .prop_flat_map(
            move |(path, interval, (active, once, t, mem, allow, files, env))| {
                let mut entries = vec![
                    ("name".to_string(), Y::S(format!("job-{index}"))),
                    ("path".to_string(), path),
                    ("interval".to_string(), interval),
                ];
                for (key, value) in [
                    ("active", active),
                    ("run_once", once),
                    ("timeout", t),
                    ("memory", mem),
                    ("allow", allow),
                    ("files", files),
                    ("env", env),
                ] {
                    if let Some(v) = value {
                        entries.push((key.to_string(), v));
                    }
                }
                Just(entries).prop_shuffle().prop_map(Y::M)
            },
        )
}

/// A valid configuration: maybe a service section, zero to four jobs.
fn valid_config() -> impl Strategy<Value = (Y, usize)> {
    (service(), 0usize..5)
        .prop_flat_map(|(service, n)| {
            let jobs: Vec<_> = (0..n).map(job).collect();
            (Just(service), jobs)
        })
        .prop_map(|(service, jobs)| {
            let n = jobs.len();
            let mut top = Vec::new();
            if let Some(service) = service {
                top.push(("service".to_string(), service));
            }
            top.push((
                "jobs".to_string(),
                if n == 0 { s("[]") } else { Y::L(jobs) },
            ));
            (Y::M(top), n)
        })
}

// ---------------------------------------------------------------------------------------------
// Mutations.

/// Scalars that are wrong somewhere: wrong types, zero, negative, huge, odd unicode, tags.
const ODD_SCALARS: &[&str] = &[
    "",
    "~",
    "null",
    "true",
    "yes",
    "0",
    "-0",
    "-1",
    "0s",
    "-1s",
    "1.5s",
    "1.5",
    "1e3",
    "1e309",
    ".inf",
    "-.inf",
    ".nan",
    "0x",
    "0x1F",
    "0o777",
    "0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "99999999999999999999d",
    "36501d",
    "1 h",
    "1h30m",
    "１２s",
    "٣s",
    "1\u{a0}s",
    "5\u{200b}s",
    "𝟗s",
    "\"\"",
    "''",
    "\"5s\"",
    "!!str",
    "!!int five",
    "!!float 1",
    "!!binary aGVsbG8=",
    "!custom x",
    "\"\\u0000\"",
    "\"\\uD800\"",
    "'it''s'",
    "\"a\\tb\"",
    "/",
    "/etc/passwd",
    "../x.lua",
    ".",
    "..",
    "a/..",
    "nämé",
    "ஓ",
    "👍",
    "\u{feff}",
    "<<",
    "*undefined",
    "&lonely",
    "? x",
    "|",
    ">-",
    "- x",
    "{",
    "[",
    "]",
    "}",
    "'",
    "\"",
    "#",
    "%",
    "@",
    "`",
    "a: b",
    "a:b",
    "- - -",
    "x\ty",
    "\t",
];

fn odd_scalar() -> impl Strategy<Value = Y> {
    prop_oneof![
        6 => pick(ODD_SCALARS),
        2 => (1usize..60).prop_map(|n| Y::S("9".repeat(n))),
        2 => "[^\n\r]{0,16}".prop_map(Y::S),
        1 => "[0-9]{1,25}(ms|s|m|h|d|KiB|MiB|GiB|B|)".prop_map(Y::S),
        1 => "-?[0-9]{0,3}\\.?[0-9]{0,3}[a-zA-Z]{0,3}".prop_map(Y::S),
    ]
}

/// Nested lists or mappings, `depth` deep.
fn nested(depth: usize, flow: bool) -> Y {
    let mut y = s("x");
    for level in 0..depth {
        y = match (flow, level % 2) {
            (true, 0) => Y::FL(vec![y]),
            (true, _) => Y::FM(vec![("k".to_string(), y)]),
            (false, 0) => Y::L(vec![y]),
            (false, _) => Y::M(vec![("k".to_string(), y)]),
        };
    }
    y
}

fn odd_value() -> impl Strategy<Value = Y> {
    let leaf = odd_scalar();
    let tree = leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Y::L),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Y::FL),
            prop::collection::vec((key(), inner.clone()), 0..4).prop_map(Y::M),
            prop::collection::vec((key(), inner), 0..4).prop_map(Y::FM),
        ]
    });
    prop_oneof![
        8 => tree,
        1 => (1usize..140, any::<bool>()).prop_map(|(d, flow)| nested(d, flow)),
    ]
}

const KNOWN_KEYS: &[&str] = &[
    "service",
    "jobs",
    "jobs_dir",
    "state_dir",
    "timezone",
    "workers",
    "defaults",
    "history",
    "operators",
    "viewers",
    "timeout",
    "memory",
    "keep_runs",
    "keep_days",
    "name",
    "path",
    "interval",
    "active",
    "run_once",
    "allow",
    "files",
    "env",
];

/// Keys: known ones (right, misspelt, quoted, tagged) and odd ones.
fn key() -> impl Strategy<Value = String> {
    let known = || prop::sample::select(KNOWN_KEYS);
    prop_oneof![
        3 => known().prop_map(str::to_string),
        2 => (known(), any::<prop::sample::Index>(), "[a-z_ ]?").prop_map(|(k, at, c)| {
            // One character dropped or replaced: a typo.
            let mut chars: Vec<char> = k.chars().collect();
            let i = at.index(chars.len());
            chars.remove(i);
            chars.splice(i..i, c.chars());
            chars.into_iter().collect()
        }),
        1 => known().prop_map(|k| format!("\"{k}\"")),
        1 => known().prop_map(|k| format!("'{k}'")),
        1 => known().prop_map(|k| format!("!!str {k}")),
        1 => known().prop_map(str::to_uppercase),
        2 => pick(ODD_SCALARS).prop_map(|y| y.inline()),
        1 => "[^\n\r:#]{0,10}",
        1 => Just("? [a, b]".to_string()),
        1 => Just("[a]".to_string()),
        1 => Just("{a: 1}".to_string()),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    DropKey(usize, prop::sample::Index),
    RenameKey(usize, prop::sample::Index, String),
    DuplicateKey(usize, prop::sample::Index),
    Replace(usize, Y),
    /// Anchors the first node and makes the second an alias of it (which may come first).
    AnchorAlias(usize, usize, String),
    ToFlow(usize),
    ToBlock(usize),
    Insert(usize, String, Y),
}

/// Picks a node (by its number in preorder, modulo the count).
fn at() -> impl Strategy<Value = usize> {
    any::<usize>()
}

fn ix() -> impl Strategy<Value = prop::sample::Index> {
    any::<prop::sample::Index>()
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (at(), ix()).prop_map(|(a, i)| Mutation::DropKey(a, i)),
        3 => (at(), ix(), key()).prop_map(|(a, i, k)| Mutation::RenameKey(a, i, k)),
        2 => (at(), ix()).prop_map(|(a, i)| Mutation::DuplicateKey(a, i)),
        5 => (at(), odd_value()).prop_map(|(a, v)| Mutation::Replace(a, v)),
        2 => (at(), at(), "[a-z]{1,3}|a|é|[0-9]").prop_map(|(a, b, n)| Mutation::AnchorAlias(a, b, n)),
        1 => at().prop_map(Mutation::ToFlow),
        1 => at().prop_map(Mutation::ToBlock),
        2 => (at(), key(), odd_value()).prop_map(|(a, k, v)| Mutation::Insert(a, k, v)),
    ]
}

fn apply(y: &mut Y, mutation: &Mutation) {
    match mutation {
        Mutation::DropKey(at, i) => y.at(*at, &mut |n| match n {
            Y::M(e) | Y::FM(e) if !e.is_empty() => {
                e.remove(i.index(e.len()));
            }
            Y::L(e) | Y::FL(e) if !e.is_empty() => {
                e.remove(i.index(e.len()));
            }
            _ => {}
        }),
        Mutation::RenameKey(at, i, key) => y.at(*at, &mut |n| {
            if let Y::M(e) | Y::FM(e) = n
                && !e.is_empty()
            {
                let i = i.index(e.len());
                e[i].0.clone_from(key);
            }
        }),
        Mutation::DuplicateKey(at, i) => y.at(*at, &mut |n| match n {
            Y::M(e) | Y::FM(e) if !e.is_empty() => {
                let entry = e[i.index(e.len())].clone();
                e.push(entry);
            }
            Y::L(e) | Y::FL(e) if !e.is_empty() => {
                let item = e[i.index(e.len())].clone();
                e.push(item);
            }
            _ => {}
        }),
        Mutation::Replace(at, value) => y.at(*at, &mut |n| *n = value.clone()),
        Mutation::AnchorAlias(a, b, name) => {
            y.at(*a, &mut |n| {
                *n = Y::Anchor(name.clone(), Box::new(n.clone()));
            });
            y.at(*b, &mut |n| *n = Y::Alias(name.clone()));
        }
        Mutation::ToFlow(at) => y.at(*at, &mut |n| match n {
            Y::M(e) => *n = Y::FM(std::mem::take(e)),
            Y::L(e) => *n = Y::FL(std::mem::take(e)),
            _ => {}
        }),
        Mutation::ToBlock(at) => y.at(*at, &mut |n| match n {
            Y::FM(e) => *n = Y::M(std::mem::take(e)),
            Y::FL(e) => *n = Y::L(std::mem::take(e)),
            _ => {}
        }),
        Mutation::Insert(at, key, value) => y.at(*at, &mut |n| match n {
            Y::M(e) | Y::FM(e) => e.push((key.clone(), value.clone())),
            Y::L(e) | Y::FL(e) => e.push(value.clone()),
            _ => {}
        }),
    }
}

/// Changes to the rendered text.
#[derive(Clone, Debug)]
enum TextChange {
    /// Cut at a character.
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, String),
    Delete(prop::sample::Index, usize),
    /// The indentation of one line as a tab.
    TabIndent(prop::sample::Index),
    /// Another document after this one.
    SecondDocument(String),
    Crlf,
    LoneCr,
    Bom,
    Directive(String),
    Comment(prop::sample::Index, String),
}

fn text_change() -> impl Strategy<Value = TextChange> {
    prop_oneof![
        4 => ix().prop_map(TextChange::Truncate),
        3 => (ix(), prop_oneof![
            "[ \t\n:\\-\\[\\]{}&*!|>'\"#%@`,?]{1,3}",
            pick(ODD_SCALARS).prop_map(|y| y.inline()),
            "\\PC{1,4}",
        ]).prop_map(|(i, t)| TextChange::Insert(i, t)),
        2 => (ix(), 1usize..20).prop_map(|(i, n)| TextChange::Delete(i, n)),
        2 => ix().prop_map(TextChange::TabIndent),
        1 => prop::sample::select(&["---\njobs: []\n", "---\n", "...\n", "--- !!map\n", "...\n---\nx: 1\n"][..])
            .prop_map(|t| TextChange::SecondDocument(t.to_string())),
        1 => Just(TextChange::Crlf),
        1 => Just(TextChange::LoneCr),
        1 => Just(TextChange::Bom),
        1 => prop::sample::select(&["%YAML 1.2\n---\n", "%YAML 1.1\n---\n", "%TAG ! tag:x,2024:\n---\n", "%YAML 9.9\n---\n", "%FOO bar\n---\n", "---\n", "--- "][..])
            .prop_map(|t| TextChange::Directive(t.to_string())),
        1 => (ix(), "[^\n\r]{0,10}").prop_map(|(i, t)| TextChange::Comment(i, t)),
    ]
}

fn change_text(text: &mut String, change: &TextChange) {
    let chars = text.chars().count();
    let byte_at = |text: &str, i: usize| text.char_indices().nth(i).map_or(text.len(), |(b, _)| b);
    match change {
        TextChange::Truncate(i) => {
            let at = byte_at(text, i.index(chars + 1));
            text.truncate(at);
        }
        TextChange::Insert(i, what) => {
            let at = byte_at(text, i.index(chars + 1));
            text.insert_str(at, what);
        }
        TextChange::Delete(i, n) => {
            let from = i.index(chars + 1);
            let (a, b) = (byte_at(text, from), byte_at(text, from + n));
            text.replace_range(a..b, "");
        }
        TextChange::TabIndent(i) => {
            let lines: Vec<&str> = text.split('\n').collect();
            let n = i.index(lines.len());
            let mut out: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
            let spaces = out[n].len() - out[n].trim_start_matches(' ').len();
            if spaces > 0 {
                out[n].replace_range(..spaces, "\t");
            } else {
                out[n].insert(0, '\t');
            }
            *text = out.join("\n");
        }
        TextChange::SecondDocument(doc) => text.push_str(doc),
        TextChange::Crlf => *text = text.replace('\n', "\r\n"),
        TextChange::LoneCr => *text = text.replace('\n', "\r"),
        TextChange::Bom => text.insert(0, '\u{feff}'),
        TextChange::Directive(d) => text.insert_str(0, d),
        TextChange::Comment(i, what) => {
            let lines: Vec<&str> = text.split('\n').collect();
            let n = i.index(lines.len());
            let mut out: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
            let _ = write!(out[n], " # {what}");
            *text = out.join("\n");
        }
    }
}

/// A valid configuration with zero to four structural mutations and zero to two changes to
/// its text.
fn mutated_config() -> impl Strategy<Value = String> {
    (
        valid_config(),
        prop::collection::vec(mutation(), 0..4),
        prop::collection::vec(text_change(), 0..3),
    )
        .prop_map(|((mut y, _), mutations, changes)| {
            for mutation in &mutations {
                apply(&mut y, mutation);
            }
            let mut text = y.render();
            for change in &changes {
                change_text(&mut text, change);
            }
            text
        })
}

/// YAML-ish tokens strung together: indicators, keys, values, breaks and indentation.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        4 => prop::sample::select(&[
            "\n", "\n  ", "\n    ", " ", "  ", "\t", "- ", "-", ": ", ":", "? ", "[", "]", "{",
            "}", ", ", "&a ", "*a", "&b ", "*b", "!!str ", "!!map ", "!t ", "|\n", ">\n",
            "'", "\"", "# c", "---\n", "...\n", "%YAML 1.2\n", "<<: ", "~", "\\", "\r\n",
            "\r", "\u{feff}", "\u{85}", "\u{2028}", "\0",
        ][..]).prop_map(str::to_string),
        3 => prop::sample::select(KNOWN_KEYS).prop_map(|k| format!("{k}: ")),
        2 => pick(ODD_SCALARS).prop_map(|y| y.inline()),
        2 => pick(DURATIONS).prop_map(|y| y.inline()),
        1 => "\\PC{1,3}",
    ];
    prop::collection::vec(token, 0..60).prop_map(|t| t.concat())
}

/// Every kind of input, weighted towards the structure-aware ones.
fn any_input() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => prop::collection::vec(any::<char>(), 0..200).prop_map(|c| c.into_iter().collect()),
        1 => prop::collection::vec(any::<u8>(), 0..300)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        3 => token_soup(),
        8 => mutated_config(),
    ]
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

/// Found by the fuzzing: 10,000 nested block lists overflowed the stack and aborted the
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

/// Found by the fuzzing: at the end of a file without a final line break the parser reports
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
            job.entry_yaml,
            format!(
                "name: job{i}   # näme {i}\npath: ü{i}.lua\ninterval: {}s",
                i + 1
            )
        );
        assert_eq!(job.path, format!("ü{i}.lua"));
    }
}
