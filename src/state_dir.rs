//! The state directory (`.jobtop/`): created private (0700), and locked by the one process
//! that runs the scheduler on it, so two services never write the same state.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the state directory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another jobtop holds it.
    #[error(
        "{dir} is in use by another jobtop ({holder}): stop that one first, or use its dashboard"
    )]
    Held {
        /// The state directory.
        dir: PathBuf,
        /// What the holder wrote about itself: `jobtop serve, pid 1234, since …`.
        holder: String,
    },
    /// The directory or lock file could not be created.
    #[error("cannot use the state directory {dir}: {source}: expected a writable directory")]
    Io {
        /// The state directory.
        dir: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Holds the state directory until dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// Creates `dir` if needed (mode 0700).
pub fn create(dir: &Path) -> Result<(), LockError> {
    let io = |source| LockError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join("lock")
}

/// Takes the state directory for this process; `role` says what we are (`serve`, `dashboard`).
pub fn lock(dir: &Path, role: &str) -> Result<StateLock, LockError> {
    create(dir)?;
    let io = |source| LockError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path(dir))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(LockError::Held {
                dir: dir.to_path_buf(),
                holder: read_holder(&mut file),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    let me = format!(
        "jobtop {role}, pid {}, since {}",
        std::process::id(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    );
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(me.as_bytes()).map_err(io)?;
    Ok(StateLock { _file: file })
}

/// Who holds the state directory, if anyone: `Some("jobtop serve, pid 1234, since …")`.
pub fn holder(dir: &Path) -> Option<String> {
    let mut file = OpenOptions::new().read(true).open(lock_path(dir)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => Some(read_holder(&mut file)),
    }
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    if text.trim().is_empty() {
        "pid unknown".into()
    } else {
        text.trim().to_string()
    }
}

/// The pid in a holder description, when there is one.
pub fn holder_pid(holder: &str) -> Option<u32> {
    let rest = holder.split("pid ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".jobtop");
        let first = lock(&state, "serve").unwrap();
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let err = lock(&state, "dashboard").unwrap_err().to_string();
        let pid = std::process::id();
        assert!(err.contains(&format!("jobtop serve, pid {pid}")), "{err}");
        let held = holder(&state).unwrap();
        assert_eq!(holder_pid(&held), Some(pid));
        drop(first);
        assert_eq!(holder(&state), None);
        lock(&state, "dashboard").unwrap();
    }
}
