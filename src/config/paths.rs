//! Checks that a job's `path` stays inside `jobs_dir`, lexically and through symlinks.

use std::path::{Component, Path, PathBuf};

/// Why a job path is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PathProblem {
    /// `path: ""`.
    Empty,
    /// `/etc/x.lua`.
    Absolute,
    /// `../x.lua`, `a/../../x.lua`.
    Escapes,
    /// `.`, `a/..`: the folder itself, not a file in it.
    JobsDirItself,
    /// An existing symlink on the way leads here, outside `jobs_dir`.
    Outside(PathBuf),
}

impl PathProblem {
    /// What is wrong (to follow `path "…" in job "…"`) and what was expected.
    pub fn explain(&self, jobs_dir: &Path) -> (String, String) {
        let inside = format!("a file path inside jobs_dir ({})", jobs_dir.display());
        match self {
            PathProblem::Empty => ("is empty".to_string(), inside),
            PathProblem::Absolute => (
                "is absolute".to_string(),
                format!("a path relative to jobs_dir ({})", jobs_dir.display()),
            ),
            PathProblem::Escapes => ("leaves jobs_dir through `..`".to_string(), inside),
            PathProblem::JobsDirItself => ("names jobs_dir itself".to_string(), inside),
            PathProblem::Outside(real) => (
                format!(
                    "resolves through a symlink to {}, outside jobs_dir",
                    real.display()
                ),
                inside,
            ),
        }
    }
}

/// Checks `path` (as written in `jobs.yaml`) against `jobs_dir` (absolute).
///
/// A file that does not exist is fine here (it is a run-time `missing`); but the part of the
/// path that does exist is canonicalized, so a symlink out of `jobs_dir` is caught.
#[cfg(test)]
pub(super) fn check(jobs_dir: &Path, path: &str) -> Result<(), PathProblem> {
    check_in(jobs_dir, jobs_dir.canonicalize().ok().as_deref(), path)
}

/// [`check`] with `jobs_dir` already canonicalized (`real_root`, `None` when it does not
/// exist): a file with 10,000 jobs resolves it once, not once per job.
pub(super) fn check_in(
    jobs_dir: &Path,
    real_root: Option<&Path>,
    path: &str,
) -> Result<(), PathProblem> {
    if path.trim().is_empty() {
        return Err(PathProblem::Empty);
    }
    let relative = Path::new(path);
    let mut depth = 0usize;
    for component in relative.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => return Err(PathProblem::Absolute),
            Component::CurDir => {}
            Component::ParentDir => {
                depth = depth.checked_sub(1).ok_or(PathProblem::Escapes)?;
            }
            Component::Normal(_) => depth += 1,
        }
    }
    if depth == 0 {
        return Err(PathProblem::JobsDirItself);
    }
    let Some(root) = real_root else {
        // No jobs_dir yet: nothing exists that could lead elsewhere.
        return Ok(());
    };
    let full = jobs_dir.join(relative);
    // The common case, a plain file right in jobs_dir, costs one `lstat` rather than a
    // `realpath` walk of every directory above it: a file that is not a symlink is where its
    // directory is.
    let mut parts = relative.components();
    if let (Some(Component::Normal(_)), None) = (parts.next(), parts.next())
        && std::fs::symlink_metadata(&full).is_ok_and(|m| !m.file_type().is_symlink())
    {
        return Ok(());
    }
    let mut probe = full.as_path();
    loop {
        if let Ok(real) = probe.canonicalize() {
            return if real.starts_with(root) {
                Ok(())
            } else {
                Err(PathProblem::Outside(real))
            };
        }
        match probe.parent() {
            Some(parent) if parent.starts_with(jobs_dir) => probe = parent,
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_rules() {
        let dir = Path::new("/nonexistent/jobtop-test/jobs");
        assert_eq!(check(dir, "a.lua"), Ok(()));
        assert_eq!(check(dir, "./sub/../a.lua"), Ok(()));
        assert_eq!(check(dir, ""), Err(PathProblem::Empty));
        assert_eq!(check(dir, "/etc/a.lua"), Err(PathProblem::Absolute));
        assert_eq!(check(dir, "../a.lua"), Err(PathProblem::Escapes));
        assert_eq!(check(dir, "a/../../b.lua"), Err(PathProblem::Escapes));
        assert_eq!(check(dir, "a/.."), Err(PathProblem::JobsDirItself));
        assert_eq!(check(dir, "."), Err(PathProblem::JobsDirItself));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_are_caught_even_for_missing_files() {
        let tmp = tempfile::tempdir().unwrap();
        let jobs = tmp.path().join("jobs");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(jobs.join("inner")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("x.lua"), "").unwrap();
        std::os::unix::fs::symlink(&outside, jobs.join("out")).unwrap();
        std::os::unix::fs::symlink(jobs.join("inner"), jobs.join("in")).unwrap();
        assert!(matches!(
            check(&jobs, "out/x.lua"),
            Err(PathProblem::Outside(_))
        ));
        assert!(matches!(
            check(&jobs, "out/missing.lua"),
            Err(PathProblem::Outside(_))
        ));
        assert!(matches!(
            check(&jobs, "out/../x.lua"),
            Err(PathProblem::Outside(_))
        ));
        assert_eq!(check(&jobs, "in/missing.lua"), Ok(()));
        assert_eq!(check(&jobs, "missing/deeper.lua"), Ok(()));
    }
}
