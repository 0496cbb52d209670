//! Reading typed values out of positioned YAML nodes, reporting each problem at its node and
//! carrying on, so that one pass finds every problem.

use std::time::Duration;

use super::Problem;
use super::yaml::{Node, Pos, Scalar, ScalarKind, Value};
use crate::units::{self, MAX_DURATION, UnitError};

const EXPECT_DURATION: &str = "whole seconds or a duration such as 500ms, 30s, 5m, 1h or 1d";
const EXPECT_SIZE: &str = "bytes or a size such as 512KiB, 16MiB or 1GiB";

/// The known keys of one mapping, each with its key and value node.
pub(super) struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// The value written for `key`, null included.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entry(key).map(|(_, value)| value)
    }

    /// The value written for `key`, unless it is absent or null (`key:` alone means "not set").
    pub fn set(&self, key: &str) -> Option<&'n Node> {
        self.get(key).filter(|node| !node.is_null())
    }

    fn entry(&self, key: &str) -> Option<(&'n Node, &'n Node)> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|&(_, k, v)| (k, v))
    }
}

/// Collects problems (and warnings) while values are read.
#[derive(Default)]
pub(super) struct Checker {
    /// Every problem so far, in the order found.
    pub problems: Vec<Problem>,
    /// Things that work but deserve a word: deprecated keys, risky settings.
    pub warnings: Vec<Problem>,
    /// Whether an unset `url_env` or `password_env` variable is let pass (for the commands
    /// that only show jobs and never connect: see [`super::Secrets`]).
    pub secrets_optional: bool,
    /// Databases left out, because they have problems (reported) or their `url_env` variable
    /// is unset (with `secrets_optional`); jobs may still name them.
    pub unresolved: Vec<String>,
}

impl Checker {
    /// Records a problem at `pos`.
    pub fn report(&mut self, pos: Pos, message: String) {
        self.problems.push(Problem {
            line: pos.line,
            column: pos.column,
            message,
        });
    }

    /// Records a warning at `pos`: the file is valid, but this deserves the operator's eye.
    pub fn warn(&mut self, pos: Pos, message: String) {
        self.warnings.push(Problem {
            line: pos.line,
            column: pos.column,
            message,
        });
    }

    /// Indexes a mapping's keys, reporting unknown, duplicate and non-scalar keys.
    pub fn fields<'n>(
        &mut self,
        entries: &'n [(Node, Node)],
        known: &[&str],
        ctx: &str,
    ) -> Fields<'n> {
        // Written only with a problem: a valid file has none, and 10,000 jobs' worth of joins
        // would cost a reload several milliseconds.
        let expected = || format!("one of {}", known.join(", "));
        let mut fields = Fields {
            entries: Vec::new(),
        };
        for (key, value) in entries {
            let Some(scalar) = key.scalar() else {
                self.report(
                    key.pos,
                    format!("a key {ctx} is {}: expected {}", key.describe(), expected()),
                );
                continue;
            };
            let text = scalar.text.as_str();
            if text == "<<" {
                self.report(
                    key.pos,
                    format!(
                        "merge key \"<<\" {ctx} is not supported: expected {}, written out",
                        expected()
                    ),
                );
            } else if !known.contains(&text) {
                let hint = known
                    .iter()
                    .map(|k| (strsim::levenshtein(k, text), k))
                    .filter(|&(d, k)| d <= (k.len() / 3).max(1))
                    .min_by_key(|&(d, _)| d)
                    .map(|(_, k)| format!(" (did you mean {k:?}?)"))
                    .unwrap_or_default();
                self.report(
                    key.pos,
                    format!("unknown key {text:?} {ctx}{hint}: expected {}", expected()),
                );
            } else if let Some((first, _)) = fields.entry(text) {
                self.report(
                    key.pos,
                    format!(
                        "duplicate key {text:?} {ctx} (first on line {}): expected each key once",
                        first.pos.line
                    ),
                );
            } else {
                fields.entries.push((text, key, value));
            }
        }
        fields
    }

    /// The fields of `node` if it is a mapping; else reports `what is …: expected …`.
    pub fn mapping<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        expected: &str,
        known: &[&str],
        ctx: &str,
    ) -> Option<Fields<'n>> {
        if let Value::Map(entries) = &*node.value {
            Some(self.fields(entries, known, ctx))
        } else {
            self.wrong(node, what, expected);
            None
        }
    }

    /// The value of a key that must be there and not be null.
    pub fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        entry: &Node,
        key: &str,
        ctx: &str,
        expected: &str,
    ) -> Option<&'n Node> {
        match fields.entry(key) {
            None => {
                self.report(
                    entry.pos,
                    format!("missing key {key:?} {ctx}: expected {expected}"),
                );
                None
            }
            Some((key_node, value)) if value.is_null() => {
                self.report(
                    key_node.pos,
                    format!("{key} {ctx} has no value: expected {expected}"),
                );
                None
            }
            Some((_, value)) => Some(value),
        }
    }

    /// Any non-null scalar, as written (so `name: 2024` is the name "2024").
    pub fn text(&mut self, node: &Node, what: &str, expected: &str) -> Option<String> {
        match node.scalar() {
            Some(s) if s.kind != ScalarKind::Null => Some(s.text.clone()),
            _ => {
                self.wrong(node, what, expected);
                None
            }
        }
    }

    /// `true` or `false`, unquoted.
    pub fn flag(&mut self, node: &Node, what: &str) -> Option<bool> {
        if let Some(s) = node.scalar()
            && let ScalarKind::Bool(b) = s.kind
        {
            return Some(b);
        }
        self.wrong(node, what, "true or false");
        None
    }

    /// A number or text that is not negative (durations and sizes); reports what is wrong.
    fn unsigned_scalar<'n>(
        &mut self,
        node: &'n Node,
        key: &str,
        ctx: &str,
        expected: &str,
        positive: &str,
    ) -> Option<&'n Scalar> {
        let scalar = node.scalar().filter(|s| {
            matches!(
                s.kind,
                ScalarKind::Int(_) | ScalarKind::Float | ScalarKind::Str
            )
        });
        let Some(scalar) = scalar else {
            self.wrong(node, &format!("{key} {ctx}"), expected);
            return None;
        };
        if scalar.text.trim_start().starts_with('-') {
            let message = format!(
                "{key} {ctx} is negative ({}): expected {positive}",
                scalar.text
            );
            self.report(node.pos, message);
            return None;
        }
        Some(scalar)
    }

    /// A duration greater than zero: integer seconds or a string such as `30s`.
    pub fn duration(&mut self, node: &Node, key: &str, ctx: &str) -> Option<Duration> {
        let positive = "a duration greater than zero, such as 500ms, 30s, 5m, 1h or 1d";
        let scalar = self.unsigned_scalar(node, key, ctx, EXPECT_DURATION, positive)?;
        let parsed = match scalar.kind {
            ScalarKind::Int(secs) => {
                u64::try_from(secs).map_or(Ok(Duration::MAX), |secs| Ok(Duration::from_secs(secs)))
            }
            _ => units::parse_duration(&scalar.text),
        };
        match parsed {
            Err(e) => self.report(node.pos, format!("{key} {ctx}: {e}")),
            Ok(d) if d.is_zero() => {
                self.report(
                    node.pos,
                    format!("{key} {ctx} is zero: expected {positive}"),
                );
            }
            Ok(d) if d > MAX_DURATION => self.report(
                node.pos,
                format!(
                    "{key} {ctx} is too long ({}): expected at most 36500d (100 years)",
                    scalar.text
                ),
            ),
            Ok(d) => return Some(d),
        }
        None
    }

    /// A size greater than zero: integer bytes or a string such as `16MiB`.
    pub fn size(&mut self, node: &Node, key: &str, ctx: &str) -> Option<u64> {
        let positive = "a size greater than zero, such as 512KiB, 16MiB or 1GiB";
        let scalar = self.unsigned_scalar(node, key, ctx, EXPECT_SIZE, positive)?;
        let parsed = match scalar.kind {
            ScalarKind::Int(bytes) => {
                u64::try_from(bytes).map_err(|_| UnitError::SizeTooLarge(scalar.text.clone()))
            }
            _ => units::parse_size(&scalar.text),
        };
        match parsed {
            Err(e) => self.report(node.pos, format!("{key} {ctx}: {e}")),
            Ok(0) => self.report(
                node.pos,
                format!("{key} {ctx} is zero: expected {positive}"),
            ),
            Ok(bytes) => return Some(bytes),
        }
        None
    }

    /// A whole number from 1 to `max`.
    pub fn whole(&mut self, node: &Node, what: &str, expected: &str, max: u64) -> Option<u64> {
        self.whole_from(node, what, expected, 1, max)
    }

    /// A whole number from `min` to `max`.
    pub fn whole_from(
        &mut self,
        node: &Node,
        what: &str,
        expected: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let Some(ScalarKind::Int(n)) = node.scalar().map(|s| s.kind) else {
            self.wrong(node, what, expected);
            return None;
        };
        match u64::try_from(n) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) if n > max => {
                let message =
                    format!("{what} is {n}, too large: expected {expected}, at most {max}");
                self.report(node.pos, message);
                None
            }
            _ => {
                self.report(node.pos, format!("{what} is {n}: expected {expected}"));
                None
            }
        }
    }

    /// The items of a list; null is an empty list.
    pub fn list<'n>(&mut self, node: &'n Node, what: &str, expected: &str) -> &'n [Node] {
        match &*node.value {
            Value::Seq(items) => items,
            _ if node.is_null() => &[],
            _ => {
                self.wrong(node, what, expected);
                &[]
            }
        }
    }

    /// Reports `what is <what node is>: expected …`.
    fn wrong(&mut self, node: &Node, what: &str, expected: &str) {
        self.report(
            node.pos,
            format!("{what} is {}: expected {expected}", node.describe()),
        );
    }
}
