//! The text of `jobs.yaml` around the tree: the text of each job's entry as written (kept as
//! `entry_yaml`, which the dashboard shows), and problem positions kept inside the file.

use super::{Node, Problem};

/// Moves problems placed past the end of the text to its end, so that every position names a
/// place in the file: the parser puts the end of a file that lacks a final line break on the
/// line after it, and so errors and empty nodes there.
pub(in crate::config) fn keep_within(text: &str, problems: &mut [Problem]) {
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

/// The source text with what is known about it once, so per-job slicing stays cheap.
pub(in crate::config) struct Source<'a> {
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
pub(in crate::config) fn entry_text(source: &Source<'_>, node: &Node) -> String {
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
    use crate::config::yaml::{Pos, Value, parse};

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
}
