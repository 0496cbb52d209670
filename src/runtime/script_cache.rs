//! Job files compiled to Luau bytecode, cached by path and checked against the file on every
//! run, so an edit takes effect at the next run without a reload (docs/job-files.md#loading-and-the-compile-cache).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Why a job file could not be turned into bytecode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The file does not exist (result `missing`).
    Missing(String),
    /// The file does not compile, or cannot be read (result `syntax` / `error`).
    Syntax(String),
    /// The file exists but cannot be read.
    Unreadable(String),
}

/// A file younger than this may be edited again within the same mtime tick, so its content is
/// hashed rather than trusted by size and mtime alone (the "racy git" rule).
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// How many files the cache remembers before starting over; a service has one per job.
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    len: u64,
    modified: Option<SystemTime>,
    content_hash: u64,
    bytecode: Arc<[u8]>,
}

/// Compiled job files, shared by every worker.
#[derive(Default)]
pub struct ScriptCache {
    entries: Mutex<HashMap<PathBuf, Arc<Entry>>>,
}

impl ScriptCache {
    /// An empty cache.
    pub fn new() -> ScriptCache {
        ScriptCache::default()
    }

    /// The bytecode of the job file at `path`; `display` names it in messages.
    ///
    /// # Errors
    /// `Missing` when there is no file, `Syntax` when it does not compile.
    pub fn bytecode(&self, path: &Path, display: &str) -> Result<Arc<[u8]>, LoadError> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => {
                return Err(LoadError::Unreadable(format!(
                    "job file {display} is not a regular file: expected a Lua source file"
                )));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(LoadError::Missing(format!("job file not found: {display}")));
            }
            Err(e) => {
                return Err(LoadError::Unreadable(format!(
                    "cannot read job file {display}: {e}"
                )));
            }
        };
        let modified = meta.modified().ok();
        let cached = self.lookup(path);
        if let Some(entry) = &cached {
            let settled = modified
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age > RACY_WINDOW);
            if settled && entry.len == meta.len() && entry.modified == modified {
                return Ok(entry.bytecode.clone());
            }
        }
        let source = match std::fs::read(path) {
            Ok(source) => source,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(LoadError::Missing(format!("job file not found: {display}")));
            }
            Err(e) => {
                return Err(LoadError::Unreadable(format!(
                    "cannot read job file {display}: {e}"
                )));
            }
        };
        let content_hash = hash(&source);
        let bytecode = match cached {
            Some(entry) if entry.content_hash == content_hash => entry.bytecode.clone(),
            _ => Arc::from(compile(&source, display)?),
        };
        self.store(
            path,
            Entry {
                len: source.len() as u64,
                modified,
                content_hash,
                bytecode: bytecode.clone(),
            },
        );
        Ok(bytecode)
    }

    fn lookup(&self, path: &Path) -> Option<Arc<Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned()
    }

    fn store(&self, path: &Path, entry: Entry) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(path) {
            entries.clear();
        }
        entries.insert(path.to_path_buf(), Arc::new(entry));
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Compiles Lua source to Luau bytecode, with line information for tracebacks.
///
/// # Errors
/// `Syntax` with the file name, line and the compiler's message.
pub fn compile(source: &[u8], display: &str) -> Result<Vec<u8>, LoadError> {
    mlua::chunk::Compiler::new()
        .set_debug_level(1)
        .compile(source)
        .map_err(|e| LoadError::Syntax(syntax_message(&e, display)))
}

/// The compiler says `:3: Expected 'end'`; operators read `jobs/x.lua:3: Expected 'end'`.
fn syntax_message(error: &mlua::Error, display: &str) -> String {
    let text = match error {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let text = text.trim().trim_start_matches(':');
    // `[string "..."]:3: ...` when the compiler names the chunk itself
    let text = text.find("]:").map_or(text, |pos| &text[pos + 2..]);
    let located = if text.starts_with(|c: char| c.is_ascii_digit()) {
        format!("{display}:{text}")
    } else {
        format!("{display}: {text}")
    };
    format!("syntax error in {located}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_file_and_line() {
        let err = compile(b"local x = \n\nfunction(", "jobs/bad.lua").unwrap_err();
        let LoadError::Syntax(msg) = err else {
            panic!("{err:?}")
        };
        assert!(msg.starts_with("syntax error in jobs/bad.lua:3:"), "{msg}");
    }

    #[test]
    fn edits_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lua");
        let cache = ScriptCache::new();
        std::fs::write(&path, "return 1").unwrap();
        let first = cache.bytecode(&path, "a.lua").unwrap();
        assert!(Arc::ptr_eq(
            &first,
            &cache.bytecode(&path, "a.lua").unwrap()
        ));
        std::fs::write(&path, "return 2").unwrap();
        let second = cache.bytecode(&path, "a.lua").unwrap();
        assert_ne!(first, second);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            cache.bytecode(&path, "a.lua"),
            Err(LoadError::Missing(m)) if m == "job file not found: a.lua"
        ));
    }
}
