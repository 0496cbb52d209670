//! A YAML tree that remembers where every node was written, built from `saphyr-parser`'s
//! events, so that every problem in `jobs.yaml` can be reported at its line and column.
//!
//! Scalars are resolved with the YAML 1.2 core schema (the one `serde_yaml` 0.9 uses too):
//! `true`/`false`, integers, floats and `null`/`~` are only those when written plain.

use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use super::Problem;

/// A 1-based line and column (in characters), as printed in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The position where the file starts, for problems of the file as a whole.
    pub const START: Pos = Pos { line: 1, column: 1 };

    fn of(marker: saphyr_parser::Marker) -> Pos {
        Pos {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }
}

/// How deeply lists and mappings may nest, aliases included. A `jobs.yaml` needs four
/// levels; the limit keeps a hostile file (a million nested block lists, or aliases that each
/// wrap the one before) from exhausting the stack when the tree is walked or dropped.
pub(super) const MAX_DEPTH: usize = 100;

/// One node of the document with the position where it starts and the character range it
/// covers (`start..end`, character indices into the text).
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub pos: Pos,
    pub start: usize,
    pub end: usize,
    /// Levels of lists and mappings in it: 0 for a scalar.
    pub depth: usize,
    pub value: Rc<Value>,
}

/// What a node holds.
#[derive(Debug)]
pub(super) enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A scalar's text and what the core schema makes of it.
#[derive(Debug)]
pub(super) struct Scalar {
    pub text: String,
    pub kind: ScalarKind,
}

/// The type a scalar resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScalarKind {
    Null,
    Bool(bool),
    Int(i128),
    Float,
    Str,
}

impl Node {
    /// The scalar in this node, if it is one.
    pub fn scalar(&self) -> Option<&Scalar> {
        match &*self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this node is `null`, `~` or empty.
    pub fn is_null(&self) -> bool {
        self.scalar().is_some_and(|s| s.kind == ScalarKind::Null)
    }

    /// Describes the node for messages: `a list`, `the string "yes"`, `the number 1.5`, …
    pub fn describe(&self) -> String {
        match &*self.value {
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
            Value::Scalar(s) => match s.kind {
                ScalarKind::Null => "empty (null)".to_string(),
                ScalarKind::Bool(b) => format!("the boolean {b}"),
                ScalarKind::Int(_) | ScalarKind::Float => format!("the number {}", s.text),
                ScalarKind::Str => format!("the string {:?}", s.text),
            },
        }
    }
}

/// Parses `text` into its single document's root node; `Ok(None)` for a file with no document
/// (empty, or only comments). A syntax error is returned as the one problem it is.
pub(super) fn parse(text: &str) -> Result<Option<Node>, Problem> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| Problem {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: format!(
                "invalid YAML: {}: expected well-formed YAML (check indentation, quotes and brackets)",
                e.info()
            ),
        })?;
        builder.event(event, span)?;
    }
    Ok(builder.root)
}

/// Moves problems placed past the end of the text to its end, so that every position names a
/// place in the file: the parser puts the end of a file that lacks a final line break on the
/// line after it, and so errors and empty nodes there.
pub(super) fn keep_within(text: &str, problems: &mut [Problem]) {
    // Lengths in characters of the lines as YAML counts them: `\n`, `\r\n` and `\r` end one.
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
            _ => {
                if let Some(last) = lines.last_mut() {
                    *last += 1;
                }
            }
        }
    }
    for problem in problems {
        if problem.line > lines.len() {
            problem.line = lines.len();
            problem.column = usize::MAX;
        }
        problem.line = problem.line.max(1);
        problem.column = problem.column.clamp(1, lines[problem.line - 1] + 1);
    }
}

/// An open sequence or mapping while its children are being read.
struct Frame {
    pos: Pos,
    start: usize,
    end: usize,
    /// The deepest child so far.
    depth: usize,
    anchor: usize,
    kind: FrameKind,
}

enum FrameKind {
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Problem> {
        let pos = Pos::of(span.start);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Problem {
                        line: pos.line,
                        column: pos.column,
                        message: "a second YAML document: expected a single document".to_string(),
                    });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let kind = resolve(&text, style, tag.as_deref());
                let value = Value::Scalar(Scalar {
                    text: text.into_owned(),
                    kind,
                });
                self.finish(
                    Node {
                        pos,
                        start: span.start.index(),
                        end: span.end.index(),
                        depth: 0,
                        value: Rc::new(value),
                    },
                    anchor,
                )?;
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    // The parser rejects unknown anchors itself; this is only a safety net.
                    return Err(Problem {
                        line: pos.line,
                        column: pos.column,
                        message: "alias to an unknown anchor: expected an anchor defined earlier"
                            .to_string(),
                    });
                };
                let node = Node {
                    pos,
                    start: span.start.index(),
                    end: span.end.index(),
                    depth: target.depth,
                    value: Rc::clone(&target.value),
                };
                self.finish(node, 0)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(pos, span, anchor, FrameKind::Seq(vec![]))?;
            }
            Event::MappingStart(anchor, _) => {
                self.open(pos, span, anchor, FrameKind::Map(vec![], None))?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    // A flow collection ends at its bracket; a block one at its last child.
                    let end = if span.is_empty() {
                        frame.end
                    } else {
                        span.end.index()
                    };
                    let value = match frame.kind {
                        FrameKind::Seq(items) => Value::Seq(items),
                        FrameKind::Map(entries, _) => Value::Map(entries),
                    };
                    let node = Node {
                        pos: frame.pos,
                        start: frame.start,
                        end,
                        depth: frame.depth + 1,
                        value: Rc::new(value),
                    };
                    self.finish(node, frame.anchor)?;
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn open(
        &mut self,
        pos: Pos,
        span: Span,
        anchor: usize,
        kind: FrameKind,
    ) -> Result<(), Problem> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(too_deep(pos));
        }
        self.stack.push(Frame {
            pos,
            start: span.start.index(),
            end: span.end.index(),
            depth: 0,
            anchor,
            kind,
        });
        Ok(())
    }

    /// Hands a complete node to its parent (or makes it the root).
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), Problem> {
        // An alias can bring in a whole nested tree at once: count it in the parents' depth.
        if node.depth + self.stack.len() > MAX_DEPTH {
            return Err(too_deep(node.pos));
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        parent.end = parent.end.max(node.end);
        parent.depth = parent.depth.max(node.depth);
        match &mut parent.kind {
            FrameKind::Seq(items) => items.push(node),
            FrameKind::Map(entries, pending) => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => *pending = Some(node),
            },
        }
        Ok(())
    }
}

/// The problem of a node nested deeper than [`MAX_DEPTH`].
fn too_deep(pos: Pos) -> Problem {
    Problem {
        line: pos.line,
        column: pos.column,
        message: format!(
            "lists and mappings nested deeper than {MAX_DEPTH} levels (aliases included): expected the few levels of a jobs.yaml"
        ),
    }
}

/// Resolves a scalar by the YAML 1.2 core schema; quoted and block scalars are strings, and
/// so is anything tagged `!!str`.
fn resolve(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> ScalarKind {
    if let Some(tag) = tag
        && tag.is_yaml_core_schema()
        && tag.suffix == "str"
    {
        return ScalarKind::Str;
    }
    if style != ScalarStyle::Plain {
        return ScalarKind::Str;
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarKind::Null,
        "true" | "True" | "TRUE" => return ScalarKind::Bool(true),
        "false" | "False" | "FALSE" => return ScalarKind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return ScalarKind::Float,
        _ => {}
    }
    if let Some(int) = parse_int(text) {
        return ScalarKind::Int(int);
    }
    if is_float(text) {
        return ScalarKind::Float;
    }
    ScalarKind::Str
}

/// `[-+]?[0-9]+`, `0o[0-7]+` or `0x[0-9a-fA-F]+`.
fn parse_int(text: &str) -> Option<i128> {
    if let Some(octal) = text.strip_prefix("0o") {
        return i128::from_str_radix(octal, 8)
            .ok()
            .filter(|_| !octal.is_empty());
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i128::from_str_radix(hex, 16)
            .ok()
            .filter(|_| !hex.is_empty());
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Too many digits for i128 is still a number, just one no field accepts.
    Some(text.parse().unwrap_or(if text.starts_with('-') {
        i128::MIN
    } else {
        i128::MAX
    }))
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        Some(f) => digits(whole) && digits(f) && !(whole.is_empty() && f.is_empty()),
        None => !whole.is_empty() && digits(whole),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// The source text with what is known about it once, so per-job slicing stays cheap.
pub(super) struct Source<'a> {
    /// The whole file.
    pub text: &'a str,
    /// The byte offset of every character when the text is not all ASCII (empty when it is:
    /// then character indices are byte offsets). Worked out once: looking each one up from
    /// the start made a 10,000-job file with one `é` in a comment take seconds to read.
    offsets: Vec<usize>,
}

impl<'a> Source<'a> {
    /// Looks at `text` once.
    pub fn new(text: &'a str) -> Source<'a> {
        let offsets = if text.is_ascii() {
            Vec::new()
        } else {
            text.char_indices().map(|(offset, _)| offset).collect()
        };
        Source { text, offsets }
    }
}

/// The text of `start..end` (character indices) of the source.
fn slice<'a>(source: &Source<'a>, start: usize, end: usize) -> &'a str {
    let text = source.text;
    let (start, end) = if source.offsets.is_empty() {
        (start, end.min(text.len()))
    } else {
        let byte = |index: usize| source.offsets.get(index).copied().unwrap_or(text.len());
        (byte(start), byte(end))
    };
    &text[start.min(end)..end]
}

/// The entry's own text, with the indentation of its block removed from every line after
/// the first (the first starts at the entry, after its `- `).
pub(super) fn entry_text(source: &Source<'_>, node: &Node) -> String {
    let raw = slice(source, node.start, node.end);
    let indent = node.pos.column - 1;
    let mut lines = raw.lines();
    let mut out = lines.next().unwrap_or_default().to_string();
    for line in lines {
        out.push('\n');
        let spaces = line.bytes().take(indent).take_while(|&b| b == b' ').count();
        out.push_str(&line[spaces..]);
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> ScalarKind {
        resolve(text, ScalarStyle::Plain, None)
    }

    #[test]
    fn core_schema() {
        assert_eq!(kind("~"), ScalarKind::Null);
        assert_eq!(kind("true"), ScalarKind::Bool(true));
        assert_eq!(kind("yes"), ScalarKind::Str);
        assert_eq!(kind("-12"), ScalarKind::Int(-12));
        assert_eq!(kind("0x1f"), ScalarKind::Int(31));
        assert_eq!(kind("0o17"), ScalarKind::Int(15));
        assert_eq!(kind("1.5"), ScalarKind::Float);
        assert_eq!(kind("1e3"), ScalarKind::Float);
        assert_eq!(kind(".5"), ScalarKind::Float);
        assert_eq!(kind("."), ScalarKind::Str);
        assert_eq!(kind("30s"), ScalarKind::Str);
        assert_eq!(kind("1.2.3"), ScalarKind::Str);
        assert_eq!(
            resolve("5", ScalarStyle::DoubleQuoted, None),
            ScalarKind::Str
        );
    }

    #[test]
    fn positions_and_ranges() {
        let text = "a:\n  - {x: 1}\n  - é: [1, 2]\n";
        let root = parse(text).unwrap().unwrap();
        let Value::Map(entries) = &*root.value else {
            panic!()
        };
        let Value::Seq(items) = &*entries[0].1.value else {
            panic!()
        };
        assert_eq!(items[0].pos, Pos { line: 2, column: 5 });
        let source = Source::new(text);
        assert_eq!(slice(&source, items[0].start, items[0].end), "{x: 1}");
        assert_eq!(slice(&source, items[1].start, items[1].end), "é: [1, 2]");
    }

    #[test]
    fn aliases_share_the_anchored_value() {
        let root = parse("a: &x [1]\nb: *x\n").unwrap().unwrap();
        let Value::Map(entries) = &*root.value else {
            panic!()
        };
        assert!(matches!(&*entries[1].1.value, Value::Seq(v) if v.len() == 1));
        assert_eq!(entries[1].1.pos, Pos { line: 2, column: 4 });
    }

    #[test]
    fn syntax_errors_and_documents() {
        assert!(parse("").unwrap().is_none());
        assert!(parse("# nothing\n").unwrap().is_none());
        let err = parse("a: b\n  c: d\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 4));
        let err = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 1));
        assert!(err.message.contains("single document"));
    }
}
