//! Opening the state database: the writer's [`Store::open`] and the readers'
//! [`Store::open_read_only`], with every check done before anything is written.

use std::fs::DirBuilder;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{Store, StoreError, schema};

/// How long a statement waits for another connection's lock before giving up with
/// [`StoreError::Busy`]; writers hold locks for milliseconds, so this is generous.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens the state database read-write, creating it (and its directory, mode 0700) when
    /// missing and migrating its schema to this build's version.
    ///
    /// An existing file is never recreated or emptied: before anything is written it must be
    /// an `SQLite` database, pass `PRAGMA quick_check`, have a schema version this build knows
    /// and be writable; otherwise the error names the file and says what to do.
    ///
    /// # Errors
    /// [`StoreError::CreateDir`], [`StoreError::NotADatabase`], [`StoreError::Corrupt`],
    /// [`StoreError::Foreign`], [`StoreError::TooNew`], [`StoreError::ReadOnly`], [`StoreError::CannotOpen`],
    /// [`StoreError::Busy`], or any other `SQLite` failure.
    pub fn open(db_path: &Path) -> Result<Store, StoreError> {
        create_parent(db_path)?;
        Store::open_with_flags(db_path, OpenFlags::default())
    }

    /// [`Store::open`] with chosen `SQLite` flags; tests use it to simulate a read-only file
    /// when they run as root, for whom permission bits do not apply.
    pub(super) fn open_with_flags(db_path: &Path, flags: OpenFlags) -> Result<Store, StoreError> {
        let mut store = connect(db_path, flags)?;
        let fail = |context| move |err| StoreError::from_sqlite(db_path, context, err);
        // Reading the version is the first read of the file, so this is where a file that is
        // not a database shows (SQLITE_NOTADB), before any write could touch it.
        let found = checked_version(&store)?;
        if found > schema::LATEST {
            return Err(StoreError::TooNew {
                path: db_path.to_path_buf(),
                found,
                known: schema::LATEST,
            });
        }
        // SQLite quietly opens a file it may not write read-only; say so now rather than at
        // the first write, which for the scheduler may be a deactivation.
        if store
            .conn
            .is_readonly("main")
            .map_err(fail("checking for write access"))?
        {
            return Err(StoreError::ReadOnly {
                path: db_path.to_path_buf(),
                detail: "SQLite could only open it for reading".to_string(),
            });
        }
        if found > 0 {
            quick_check(&store)?;
        } else if has_tables(&store)? {
            // Version 0 with tables: someone else's database; adding ours to it would be a
            // silent mess, and the version check would not protect it later.
            return Err(StoreError::Foreign {
                path: db_path.to_path_buf(),
            });
        }
        // WAL: readers (`jobtop list`) never block the scheduler's writes and vice versa. With
        // synchronous=NORMAL a committed transaction is in the WAL file before COMMIT returns,
        // so a crash or `kill -9` of the process never loses it; only a power loss or OS crash
        // may lose the last few commits (never corrupting the file). Operator actions are
        // written with synchronous=FULL to survive that too (see `Store::durably`).
        let mode: String = store
            .conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(fail("switching to WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                path = %db_path.display(),
                mode,
                "state database could not use WAL mode (is it on a network file system?): \
                 readers may block the scheduler",
            );
        }
        store
            .conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(fail("setting synchronous mode"))?;
        store
            .conn
            .pragma_update(None, "foreign_keys", true)
            .map_err(fail("enabling foreign keys"))?;
        // Checkpoint every 10,000 pages (a WAL of about 40 MB) rather than SQLite's 1,000: the
        // history writer rewrites the same job rows and index pages batch after batch, and a
        // checkpoint copies each page once however often it changed, so ten times fewer of them
        // cost far less (BENCHMARKS.md, throughput).
        store
            .conn
            .pragma_update(None, "wal_autocheckpoint", 10_000)
            .map_err(fail("setting the checkpoint interval"))?;
        schema::migrate(&mut store.conn).map_err(fail("migrating the schema"))?;
        Ok(store)
    }

    /// Opens an existing state database for reading only (`jobtop list`, `jobtop history`).
    ///
    /// # Errors
    /// [`StoreError::Missing`] when there is no file (or an empty one a writer is creating),
    /// [`StoreError::TooOld`] when it still
    /// needs migrating (only a writer migrates), and the errors of [`Store::open`].
    pub fn open_read_only(db_path: &Path) -> Result<Store, StoreError> {
        if !db_path.exists() {
            return Err(StoreError::Missing {
                path: db_path.to_path_buf(),
            });
        }
        let flags = OpenFlags::default()
            & !(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)
            | OpenFlags::SQLITE_OPEN_READ_ONLY;
        let store = connect(db_path, flags)?;
        let found = checked_version(&store)?;
        // Version 0 and no tables: a writer has just created the file and not yet committed
        // the schema (its first transaction); to a reader that is no state yet, as no file is.
        if found == 0 && !has_tables(&store)? {
            return Err(StoreError::Missing {
                path: db_path.to_path_buf(),
            });
        }
        if found != schema::LATEST {
            let (path, known) = (db_path.to_path_buf(), schema::LATEST);
            return Err(if found > known {
                StoreError::TooNew { path, found, known }
            } else {
                StoreError::TooOld { path, found, known }
            });
        }
        Ok(store)
    }
}

/// Creates the directory of the database with mode 0700 when it is missing: it will also hold
/// the control socket, which must not be reachable by other users (docs/files.md#modes).
fn create_parent(db_path: &Path) -> Result<(), StoreError> {
    let Some(dir) = db_path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| StoreError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })
}

fn connect(db_path: &Path, flags: OpenFlags) -> Result<Store, StoreError> {
    let fail = |context| move |err| StoreError::from_sqlite(db_path, context, err);
    let conn = Connection::open_with_flags(db_path, flags).map_err(fail("opening"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(fail("setting the busy timeout"))?;
    Ok(Store {
        conn,
        path: db_path.to_path_buf(),
    })
}

/// The schema version, refusing negative ones (jobtop never writes them).
fn checked_version(store: &Store) -> Result<i64, StoreError> {
    let found = schema::version(&store.conn).map_err(store.fail("reading the schema version"))?;
    if found < 0 {
        return Err(StoreError::BadValue {
            path: store.path.clone(),
            detail: format!("schema version {found}"),
        });
    }
    Ok(found)
}

fn has_tables(store: &Store) -> Result<bool, StoreError> {
    store
        .conn
        .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master)", [], |row| {
            row.get(0)
        })
        .map_err(store.fail("reading the schema"))
}

/// `PRAGMA quick_check`: a pass over every page that finds damage without the cost of a full
/// `integrity_check` (it skips index-content cross checks).
fn quick_check(store: &Store) -> Result<(), StoreError> {
    let mut stmt = store
        .conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(store.fail("checking the database"))?;
    let report = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(store.fail("checking the database"))?;
    if report.len() == 1 && report[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        path: store.path.clone(),
        detail: format!("quick_check: {}", report.join("; ")),
    })
}
