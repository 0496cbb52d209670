//! Opening the state database: creation, migration, and every way an existing file is refused
//! without being touched.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};

use super::schema::LATEST;
use super::{RunRecord, Store, StoreError};
use crate::job::{RunResult, Trigger};

pub(super) fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub(super) fn run(job: &str, started: &str, result: RunResult, error: Option<&str>) -> RunRecord {
    RunRecord {
        job: job.to_string(),
        scheduled: at(started),
        started: at(started),
        duration: Duration::from_millis(12),
        result,
        error: error.map(str::to_string),
        logs: vec![format!("{job} at {started}")],
        trigger: Trigger::Schedule,
        skip: None,
    }
}

fn db_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(".jobtop").join("state.db")
}

/// A database with one run in it, closed again (so its WAL is checkpointed into the file).
fn populated(dir: &tempfile::TempDir) -> PathBuf {
    let path = db_in(dir);
    let mut store = Store::open(&path).unwrap();
    let runs = [run("a", "2025-01-01T00:00:00Z", RunResult::Ok, None)];
    store.record(&runs, &[]).unwrap();
    drop(store);
    path
}

#[test]
fn migrates_a_new_database_from_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.path(), path);
    let mode = fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    let version: i64 = store
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, LATEST);
    let journal: String = store
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let fks: bool = store
        .conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    assert!(fks);
    let tables: Vec<String> = store
        .conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["audit", "jobs", "kv", "runs"]);
    assert_eq!(store.integrity_check().unwrap(), "ok");
    assert!(store.job_states().unwrap().is_empty());
}

#[test]
fn reopening_keeps_data_and_does_not_migrate_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    let store = Store::open(&path).unwrap();
    let a = store.job_state("a").unwrap().unwrap();
    assert_eq!((a.runs, a.oks), (1, 1));
    assert_eq!(store.history("a", 10).unwrap().len(), 1);
    drop(store);

    let reader = Store::open_read_only(&path).unwrap();
    assert_eq!(reader.job_state("a").unwrap().unwrap().runs, 1);
    assert_eq!(reader.integrity_check().unwrap(), "ok");
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", LATEST + 1)
        .unwrap();
    drop(conn);
    let before = fs::read(&path).unwrap();

    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found, .. } if found == LATEST + 1));
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("schema version {}", LATEST + 1)),
        "{msg}"
    );
    assert!(msg.contains("newer"), "{msg}");
    assert_eq!(fs::read(&path).unwrap(), before);

    let err = Store::open_read_only(&path).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    // 4 KiB from a linear congruential generator: deterministic, and not an SQLite header.
    let mut x: u32 = 0x1234_5678;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            x.to_be_bytes()[0]
        })
        .collect();
    fs::write(&path, &garbage).unwrap();

    let err = Store::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{msg}");
    assert_eq!(
        msg,
        format!(
            "state database {} is not a SQLite database (file is not a database): move it \
             aside to start with an empty state, or restore it from a backup",
            path.display()
        )
    );
    assert_eq!(fs::read(&path).unwrap(), garbage);

    let err = Store::open_read_only(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
    assert_eq!(fs::read(&path).unwrap(), garbage);
}

#[test]
fn a_damaged_database_is_refused_by_the_quick_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let mut store = Store::open(&path).unwrap();
    let runs: Vec<_> = (0..500)
        .map(|i| {
            let mut r = run("a", "2025-01-01T00:00:00Z", RunResult::Ok, None);
            r.logs = vec![format!("line {i} {}", "x".repeat(200))];
            r
        })
        .collect();
    store.record(&runs, &[]).unwrap();
    drop(store);
    // Scribble over the second half of the file; the header (page 1) stays valid.
    let mut bytes = fs::read(&path).unwrap();
    let half = bytes.len() / 2;
    for (i, b) in bytes[half..].iter_mut().enumerate() {
        *b = u8::try_from(i % 251).unwrap();
    }
    fs::write(&path, &bytes).unwrap();

    let err = Store::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("move it aside"), "{msg}");
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_database_jobtop_did_not_create_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
        .unwrap();
    drop(conn);
    let before = fs::read(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("did not create"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), before);
}

/// Whether this process can create files in `dir` whatever its permission bits (root can).
fn bypasses_permissions(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let created = fs::write(&probe, b"").is_ok();
    let _ = fs::remove_file(&probe);
    created
}

#[test]
fn a_read_only_database_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    let jobtop = path.parent().unwrap().to_path_buf();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    fs::set_permissions(&jobtop, fs::Permissions::from_mode(0o555)).unwrap();
    let before = fs::read(&path).unwrap();

    let err = if bypasses_permissions(&jobtop) {
        // Running as root: the bits do not stop us, so ask SQLite for what it does when they
        // would, a read-only connection.
        eprintln!("note: permission bits do not apply here (root?); simulating a read-only open");
        Store::open_with_flags(
            &path,
            OpenFlags::default()
                & !(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)
                | OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap_err()
    } else {
        Store::open(&path).unwrap_err()
    };
    fs::set_permissions(&jobtop, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

    let msg = err.to_string();
    assert!(
        matches!(
            err,
            StoreError::ReadOnly { .. } | StoreError::CannotOpen { .. }
        ),
        "{msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("writable"), "{msg}");
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn a_reader_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    let mut reader = Store::open_read_only(&path).unwrap();
    let err = reader
        .deactivate("a", "no", None, at("2025-01-01T00:00:00Z"))
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
    assert!(!reader.job_state("a").unwrap().unwrap().deactivated);
}

#[test]
fn a_reader_needs_an_existing_migrated_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let err = Store::open_read_only(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no state database at {}: start jobtop serve or the dashboard once to create it",
            path.display()
        )
    );
    assert!(!path.exists());
    assert!(!path.parent().unwrap().exists());

    // An empty file is what a writer has just created and not yet migrated (serve starting
    // while `jobtop list` polls): no state yet, like no file.
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, b"").unwrap();
    let err = Store::open_read_only(&path).unwrap_err();
    assert!(matches!(err, StoreError::Missing { .. }), "{err}");
    Store::open(&path).unwrap();
    Store::open_read_only(&path).unwrap();

    // An older version with our tables is one only a writer may migrate.
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 1)
        .unwrap();
    let err = Store::open_read_only(&path).unwrap_err();
    assert!(matches!(err, StoreError::TooOld { found: 1, .. }), "{err}");
    assert!(err.to_string().contains("to migrate it"), "{err}");
}

#[test]
fn a_directory_in_the_way_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    fs::create_dir_all(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    let blocked = dir.path().join("file").join("state.db");
    fs::write(dir.path().join("file"), b"").unwrap();
    let err = Store::open(&blocked).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err}");
}

#[test]
fn stored_times_are_what_chrono_writes() {
    use chrono::{NaiveDate, SecondsFormat, TimeDelta, TimeZone as _};
    let times = [
        Utc.with_ymd_and_hms(2024, 5, 17, 12, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2023, 10, 12, 1, 2, 3).unwrap() + TimeDelta::microseconds(987_654),
        Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap() + TimeDelta::milliseconds(999),
        Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
        // A leap second.
        NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_milli_opt(23, 59, 59, 1_500)
            .unwrap()
            .and_utc(),
    ];
    for t in times {
        assert_eq!(
            super::codec::time(t),
            t.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
    }
}
