//! Generators of `jobs.yaml` text for the fuzz tests (`tests/fuzz_config.rs`,
//! `tests/fuzz_socket.rs`): a YAML model that renders to text, valid configurations, and the
//! structural and textual mutations applied to them. Included with
//! `#[path = "common/fuzz_yaml.rs"] mod fuzz_yaml;` (it is not part of `common`).

use std::fmt::Write as _;

use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// A YAML model that renders to text, so mutations can work on structure.

#[derive(Clone, Debug)]
pub enum Y {
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

pub fn s(text: &str) -> Y {
    Y::S(text.to_string())
}

pub fn m(entries: Vec<(&str, Y)>) -> Y {
    Y::M(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

impl Y {
    /// Whether the node is written on lines of its own below its key.
    pub fn is_block(&self) -> bool {
        match self {
            Y::M(e) => !e.is_empty(),
            Y::L(i) => !i.is_empty(),
            Y::Anchor(_, inner) => inner.is_block(),
            _ => false,
        }
    }

    /// The node on one line, in flow style.
    pub fn inline(&self) -> String {
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
    pub fn block(&self, indent: usize, out: &mut String) {
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

    pub fn render(&self) -> String {
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
    pub fn count(&self) -> usize {
        1 + match self {
            Y::M(e) | Y::FM(e) => e.iter().map(|(_, v)| v.count()).sum(),
            Y::L(i) | Y::FL(i) => i.iter().map(Y::count).sum(),
            Y::Anchor(_, inner) => inner.count(),
            _ => 0,
        }
    }

    /// Calls `f` on the node numbered `*target` in preorder.
    pub fn visit(&mut self, target: &mut usize, f: &mut dyn FnMut(&mut Y)) -> bool {
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

    pub fn at(&mut self, index: usize, f: &mut dyn FnMut(&mut Y)) {
        let mut target = index % self.count();
        self.visit(&mut target, f);
    }
}

// ---------------------------------------------------------------------------------------------
// Valid configurations.

pub const DURATIONS: &[&str] = &[
    "1s", "500ms", "30s", "5m", "1h", "1d", "30", "90", "'10s'", "\"2m\"", "!!str 45",
];
pub const SIZES: &[&str] = &["16MiB", "512KiB", "1GiB", "64 MiB", "2KB", "1000", "3MB"];
pub const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Adelaide",
    "Asia/Kolkata",
];

pub fn pick(list: &'static [&'static str]) -> impl Strategy<Value = Y> {
    prop::sample::select(list).prop_map(s)
}

pub fn service() -> impl Strategy<Value = Option<Y>> {
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

pub fn job(index: usize) -> impl Strategy<Value = Y> {
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
pub fn valid_config() -> impl Strategy<Value = (Y, usize)> {
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
pub const ODD_SCALARS: &[&str] = &[
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

pub fn odd_scalar() -> impl Strategy<Value = Y> {
    prop_oneof![
        6 => pick(ODD_SCALARS),
        2 => (1usize..60).prop_map(|n| Y::S("9".repeat(n))),
        2 => "[^\n\r]{0,16}".prop_map(Y::S),
        1 => "[0-9]{1,25}(ms|s|m|h|d|KiB|MiB|GiB|B|)".prop_map(Y::S),
        1 => "-?[0-9]{0,3}\\.?[0-9]{0,3}[a-zA-Z]{0,3}".prop_map(Y::S),
    ]
}

/// Nested lists or mappings, `depth` deep.
pub fn nested(depth: usize, flow: bool) -> Y {
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

pub fn odd_value() -> impl Strategy<Value = Y> {
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

pub const KNOWN_KEYS: &[&str] = &[
    "service",
    "jobs",
    "jobs_dir",
    "state_dir",
    "timezone",
    "workers",
    "spread",
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
pub fn key() -> impl Strategy<Value = String> {
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
pub enum Mutation {
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
pub fn at() -> impl Strategy<Value = usize> {
    any::<usize>()
}

pub fn ix() -> impl Strategy<Value = prop::sample::Index> {
    any::<prop::sample::Index>()
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
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

pub fn apply(y: &mut Y, mutation: &Mutation) {
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
pub enum TextChange {
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

pub fn text_change() -> impl Strategy<Value = TextChange> {
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

pub fn change_text(text: &mut String, change: &TextChange) {
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
pub fn mutated_config() -> impl Strategy<Value = String> {
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
pub fn token_soup() -> impl Strategy<Value = String> {
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
pub fn any_input() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => prop::collection::vec(any::<char>(), 0..200).prop_map(|c| c.into_iter().collect()),
        1 => prop::collection::vec(any::<u8>(), 0..300)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        3 => token_soup(),
        8 => mutated_config(),
    ]
}
