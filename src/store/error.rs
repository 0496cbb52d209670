//! What can go wrong with the state database, in words an operator can act on.

use std::io;
use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

/// An error of the state database. Every message names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory that holds the database could not be created.
    #[error(
        "cannot create the state directory {}: {source}: check that its parent directory exists and is writable by this user",
        dir.display()
    )]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why it could not be created.
        source: io::Error,
    },

    /// A reader was asked to open a database that does not exist.
    #[error(
        "no state database at {}: start jobtop serve or the dashboard once to create it",
        path.display()
    )]
    Missing {
        /// The path that does not exist.
        path: PathBuf,
    },

    /// The file exists but is not an `SQLite` database.
    #[error(
        "state database {} is not a SQLite database ({detail}): move it aside to start with an empty state, or restore it from a backup",
        path.display()
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
        /// What `SQLite` said.
        detail: String,
    },

    /// The file is an `SQLite` database, but damaged.
    #[error(
        "state database {} is corrupt ({detail}): move it aside to start with an empty state, or restore it from a backup",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What `SQLite` or the integrity check said.
        detail: String,
    },

    /// The file is an `SQLite` database that jobtop did not create: it has tables but no
    /// schema version.
    #[error(
        "state database {} is a SQLite database that jobtop did not create (it has tables but no jobtop schema version): move it aside to start with an empty state, or point jobtop at the right file",
        path.display()
    )]
    Foreign {
        /// The file.
        path: PathBuf,
    },

    /// The database was written by a newer jobtop, with a schema this build does not know.
    #[error(
        "state database {} has schema version {found}, newer than version {known} that this jobtop knows: run the newer jobtop that wrote it, or move the file aside to start with an empty state",
        path.display()
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its schema version (`PRAGMA user_version`).
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },

    /// A reader found a database that still needs migrating, which only a writer does.
    #[error(
        "state database {} has schema version {found}, older than version {known} that this jobtop reads: start jobtop serve or the dashboard once to migrate it",
        path.display()
    )]
    TooOld {
        /// The file.
        path: PathBuf,
        /// Its schema version (`PRAGMA user_version`).
        found: i64,
        /// The version this build reads.
        known: i64,
    },

    /// The database, or the directory it is in, cannot be written.
    #[error(
        "state database {} is read-only ({detail}): make the file and its directory writable by the user running jobtop, or run jobtop as the user that owns them",
        path.display()
    )]
    ReadOnly {
        /// The file.
        path: PathBuf,
        /// What `SQLite` said.
        detail: String,
    },

    /// `SQLite` could not open the file (or the files beside it: `-wal`, `-shm`).
    #[error(
        "cannot open state database {} ({detail}): check that it is a file and that it and its directory are readable and writable by this user",
        path.display()
    )]
    CannotOpen {
        /// The file.
        path: PathBuf,
        /// What `SQLite` said.
        detail: String,
    },

    /// The file system holding the database has no room left (`SQLITE_FULL`, or `SQLite` could
    /// not grow its `-shm` file). Nothing of the failed write was kept; the database stays as
    /// it was before it.
    #[error(
        "state database {}: {context} failed ({detail}): database or disk is full: free space on the file system holding {}; the failed operation changed nothing in the database",
        path.display(),
        dir(path).display()
    )]
    Full {
        /// The file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// What `SQLite` said.
        detail: String,
    },

    /// `SQLite` got an I/O error from the operating system.
    #[error(
        "state database {}: {context} failed: {detail}: check that the file system holding {} has free space, is writable and is not failing",
        path.display(),
        dir(path).display()
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// What `SQLite` said, with its extended error code.
        detail: String,
    },

    /// Another process held a lock for longer than the busy timeout.
    #[error(
        "state database {} is locked by another process ({detail}): wait for it to finish, or stop the other program using this database",
        path.display()
    )]
    Busy {
        /// The file.
        path: PathBuf,
        /// What `SQLite` said.
        detail: String,
    },

    /// A stored value is not what this jobtop writes (an unknown word, a malformed time).
    #[error(
        "state database {} holds a value this jobtop cannot read ({detail}): check the file for manual edits, or move it aside to start with an empty state",
        path.display()
    )]
    BadValue {
        /// The file.
        path: PathBuf,
        /// Which value, and what was wrong with it.
        detail: String,
    },

    /// A `core.state` value given to [`Store::state_set`](super::Store::state_set) is not JSON.
    #[error(
        "state value for job {job:?}, key {key:?} is not valid JSON ({source}): expected JSON text"
    )]
    InvalidJson {
        /// The job.
        job: String,
        /// The key.
        key: String,
        /// Why it does not parse.
        source: serde_json::Error,
    },

    /// Any other `SQLite` failure.
    #[error("state database {}: {context} failed: {source}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// What `SQLite` said.
        source: rusqlite::Error,
    },
}

/// The directory of a database file, for messages.
fn dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

impl StoreError {
    /// Sorts an `SQLite` error by what the operator should do about it.
    pub(super) fn from_sqlite(path: &Path, context: &'static str, err: rusqlite::Error) -> Self {
        let path = path.to_path_buf();
        let detail = err.to_string();
        match err.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => return StoreError::NotADatabase { path, detail },
            Some(ErrorCode::DatabaseCorrupt) => return StoreError::Corrupt { path, detail },
            Some(ErrorCode::ReadOnly) => return StoreError::ReadOnly { path, detail },
            Some(ErrorCode::CannotOpen) => return StoreError::CannotOpen { path, detail },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                return StoreError::Busy { path, detail };
            }
            Some(ErrorCode::DiskFull) => {
                return StoreError::Full {
                    path,
                    context,
                    detail: "SQLITE_FULL".into(),
                };
            }
            Some(ErrorCode::SystemIoFailure) => {
                let extended = err.sqlite_error().map_or(0, |e| e.extended_code);
                // SQLite writes to every new page of its `-shm` file so that a full file
                // system shows as this error, not as a SIGBUS later.
                if extended == rusqlite::ffi::SQLITE_IOERR_SHMSIZE {
                    return StoreError::Full {
                        path,
                        context,
                        detail: format!(
                            "{detail}: could not grow the -shm file, SQLITE_IOERR_SHMSIZE"
                        ),
                    };
                }
                return StoreError::Io {
                    path,
                    context,
                    detail: format!("{detail} (SQLite extended code {extended})"),
                };
            }
            _ => {}
        }
        match err {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..) => StoreError::BadValue {
                path,
                detail: format!("{context}: {detail}"),
            },
            source => StoreError::Sqlite {
                path,
                context,
                source,
            },
        }
    }
}
