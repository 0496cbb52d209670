//! A YAML tree that remembers where every node was written, built from `saphyr-parser`'s
//! events, so that every problem in `jobs.yaml` can be reported at its line and column.
//!
//! Scalars are resolved with the YAML 1.2 core schema (`scalar`); `source` slices the text
//! of an entry and keeps problem positions inside the file.

mod scalar;
mod source;

use std::rc::Rc;

use saphyr_parser::{Event, Parser, Span};

use self::scalar::resolve;
pub(super) use self::source::{Source, entry_text, keep_within};
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

#[cfg(test)]
mod tests {
    use super::*;

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
