//! The confinement of `core.files` to the job's `files:` roots: how a path a job gives is
//! checked, resolved as the kernel would resolve it, and refused outside every root, and how an
//! I/O error on it is put in a message (see the parent module for the rules).

use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use mlua::Value;
use nix::libc;

use crate::runtime::ops::JobGrants;
use crate::runtime::ops::args::describe_arg;

/// One call's confinement: the job's roots, and how to name things in its messages.
pub(super) struct Scope {
    /// The function called, as in `core.files.<fun>`.
    pub fun: &'static str,
    job: String,
    /// The roots as configured, for messages.
    roots: Vec<PathBuf>,
    /// The roots canonicalized (as configured when they do not exist).
    canonical: Vec<PathBuf>,
}

impl Scope {
    pub fn new(fun: &'static str, grants: &JobGrants) -> Scope {
        Scope {
            fun,
            job: grants.job.clone(),
            roots: grants.files.clone(),
            canonical: grants
                .files
                .iter()
                .map(|root| fs::canonicalize(root).unwrap_or_else(|_| root.clone()))
                .collect(),
        }
    }

    fn roots_text(&self) -> String {
        if self.roots.is_empty() {
            return "none: list directories in `files:` in its entry in jobs.yaml".into();
        }
        let roots: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
        roots.join(", ")
    }

    /// Argument `index` (0-based) as an absolute path.
    pub fn path_arg(&self, args: &[Value], index: usize, name: &str) -> Result<PathBuf, String> {
        let fun = self.fun;
        let bytes = match args.get(index) {
            Some(Value::String(s)) => s.as_bytes().to_vec(),
            other => {
                return Err(format!(
                    "core.files.{fun}: {name} is {}: expected an absolute path (a string)",
                    describe_arg(other)
                ));
            }
        };
        if bytes.contains(&0) {
            return Err(format!(
                "core.files.{fun}: {name} holds a NUL byte: expected an absolute path"
            ));
        }
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
        if !path.is_absolute() {
            return Err(format!(
                "core.files.{fun}: {} is a relative path: expected an absolute path under the roots of job {} ({})",
                path.display(),
                self.job,
                self.roots_text()
            ));
        }
        Ok(path)
    }

    /// `given` resolved through every symlink, the last included; refused outside the roots.
    pub fn resolve(&self, given: &Path) -> Result<PathBuf, String> {
        let resolved = self.real_path(given)?;
        self.confine(given, &resolved)?;
        Ok(resolved)
    }

    /// `given` with its directory resolved and its last component kept as written, so that a
    /// symlink there is the entry itself; refused outside the roots. With `below`, a root
    /// itself is refused too (it may not be removed, renamed or replaced).
    pub fn entry(&self, given: &Path, below: bool) -> Result<PathBuf, String> {
        let resolved = match (given.parent(), given.components().next_back()) {
            (Some(parent), Some(Component::Normal(name))) => self.real_path(parent)?.join(name),
            _ => self.real_path(given)?,
        };
        self.confine(given, &resolved)?;
        if below && self.canonical.contains(&resolved) {
            return Err(format!(
                "core.files.{}: {} is a root of job {}: expected a path under it",
                self.fun,
                given.display(),
                self.job
            ));
        }
        Ok(resolved)
    }

    fn confine(&self, given: &Path, resolved: &Path) -> Result<(), String> {
        if self.canonical.iter().any(|root| resolved.starts_with(root)) {
            return Ok(());
        }
        let leads = if resolved == given {
            String::new()
        } else {
            format!(" (it leads to {})", resolved.display())
        };
        Err(format!(
            "core.files: {}{leads} is outside the roots of job {} ({}): expected a path under them",
            given.display(),
            self.job,
            self.roots_text()
        ))
    }

    /// The path the kernel would reach: the longest existing prefix canonicalized, the rest
    /// appended. The rest may not hold `..`, nor start with a dangling symlink that more
    /// components would go through.
    fn real_path(&self, given: &Path) -> Result<PathBuf, String> {
        let parts: Vec<Component> = given.components().collect();
        for known in (1..=parts.len()).rev() {
            let prefix: PathBuf = parts[..known].iter().collect();
            let Ok(base) = fs::canonicalize(&prefix) else {
                continue;
            };
            let rest = &parts[known..];
            let Some(first) = rest.first() else {
                return Ok(base);
            };
            if rest.iter().any(|c| !matches!(c, Component::Normal(_))) {
                return Err(format!(
                    "core.files.{}: {} has `..` after a directory that does not exist: expected an existing directory before `..`",
                    self.fun,
                    given.display()
                ));
            }
            let next = base.join(first);
            if rest.len() > 1
                && fs::symlink_metadata(&next).is_ok_and(|m| m.file_type().is_symlink())
            {
                return Err(format!(
                    "core.files.{}: {} goes through {}, a symlink whose target does not exist: expected existing directories",
                    self.fun,
                    given.display(),
                    next.display()
                ));
            }
            return Ok(rest.iter().fold(base, |path, c| path.join(c)));
        }
        Err(format!(
            "core.files.{}: {} cannot be resolved: expected an absolute path",
            self.fun,
            given.display()
        ))
    }

    /// An I/O error on `subject` as a message saying what was expected.
    pub fn io(&self, subject: &Path, error: &io::Error, expected: &str) -> String {
        let what = match error.kind() {
            ErrorKind::NotFound => "does not exist".to_string(),
            ErrorKind::PermissionDenied => "cannot be accessed: permission denied".to_string(),
            ErrorKind::IsADirectory => "is a directory".to_string(),
            ErrorKind::NotADirectory => "is not a directory (or a part of it is not)".to_string(),
            ErrorKind::DirectoryNotEmpty => "is a directory that is not empty".to_string(),
            ErrorKind::AlreadyExists => "already exists".to_string(),
            _ if error.raw_os_error() == Some(libc::ELOOP) => {
                "is a symbolic link, which is not followed here".to_string()
            }
            _ => format!("failed: {error}"),
        };
        format!(
            "core.files.{}: {} {what}: expected {expected}",
            self.fun,
            subject.display()
        )
    }
}
