//! The `runs` history and its retention, the `audit` trail and the `kv` store of `core.state`.

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::codec::{self, AUDIT_COLUMNS, RUN_COLUMNS};
use super::{AuditEntry, RunRecord, Store, StoreError};

impl Store {
    /// The most recent runs of one job, newest first, at most `limit` of them.
    ///
    /// # Errors
    /// When the database cannot be read or holds a value this build does not write.
    pub fn history(&self, name: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let fail = self.fail("reading run history");
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE job = ?1
                 ORDER BY started DESC, id DESC LIMIT ?2"
            ))
            .map_err(&fail)?;
        stmt.query_map(params![name, sql_limit(limit)], codec::run_record)
            .and_then(Iterator::collect)
            .map_err(fail)
    }

    /// Deletes, for every job, the runs beyond its newest `keep_runs` and the runs that
    /// started more than `keep_days` days before `now`; returns how many were deleted.
    ///
    /// Each job costs two index range deletes and one index walk of `keep_runs` entries, so a
    /// pass stays cheap with many jobs and long histories. Zero keeps nothing (the
    /// configuration requires at least 1 of each).
    ///
    /// # Errors
    /// When the database cannot be written; then nothing is deleted.
    pub fn enforce_retention(
        &mut self,
        keep_runs: u32,
        keep_days: u32,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let cutoff = now
            .checked_sub_signed(TimeDelta::days(i64::from(keep_days)))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let cutoff = codec::time(cutoff);
        let fail = |err| StoreError::from_sqlite(&self.path, "enforcing history retention", err);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let mut deleted = 0;
        {
            // Every run has a job row (`runs.job` references it), and there are far fewer
            // jobs than runs.
            let mut jobs = tx.prepare("SELECT name FROM jobs").map_err(fail)?;
            let names: Vec<String> = jobs
                .query_map([], |row| row.get(0))
                .and_then(Iterator::collect)
                .map_err(fail)?;
            let mut too_old = tx
                .prepare_cached("DELETE FROM runs WHERE job = ?1 AND started < ?2")
                .map_err(fail)?;
            let mut oldest_kept = tx
                .prepare_cached(
                    "SELECT started, id FROM runs WHERE job = ?1
                     ORDER BY started DESC, id DESC LIMIT 1 OFFSET ?2",
                )
                .map_err(fail)?;
            let mut too_many = tx
                .prepare_cached(
                    "DELETE FROM runs WHERE job = ?1
                     AND started <= ?2 AND (started < ?2 OR id <= ?3)",
                )
                .map_err(fail)?;
            for name in &names {
                deleted += too_old.execute(params![name, cutoff]).map_err(fail)?;
                // The newest run beyond the ones kept: it and everything older goes.
                let first_dropped: Option<(String, i64)> = oldest_kept
                    .query_row(params![name, keep_runs], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()
                    .map_err(fail)?;
                if let Some((started, id)) = first_dropped {
                    deleted += too_many.execute(params![name, started, id]).map_err(fail)?;
                }
            }
        }
        tx.commit().map_err(fail)?;
        Ok(deleted)
    }

    /// Appends an operator action to the audit trail.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn record_audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO audit (at, user, action, job, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    codec::time(entry.at),
                    entry.user,
                    entry.action,
                    entry.job,
                    entry.detail,
                ])
            })
            .map(drop)
            .map_err(self.fail("recording an audit entry"))
    }

    /// The most recent audit entries, newest first, at most `limit`: of one job, or of
    /// everything when `job` is `None`.
    ///
    /// # Errors
    /// When the database cannot be read or holds a value this build does not write.
    pub fn audit(&self, job: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let fail = self.fail("reading the audit trail");
        let limit = sql_limit(limit);
        let entries = match job {
            Some(job) => self
                .conn
                .prepare_cached(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit WHERE job = ?1 ORDER BY id DESC LIMIT ?2"
                ))
                .and_then(|mut stmt| {
                    stmt.query_map(params![job, limit], codec::audit_entry)?
                        .collect()
                }),
            None => self
                .conn
                .prepare_cached(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit ORDER BY id DESC LIMIT ?1"
                ))
                .and_then(|mut stmt| stmt.query_map([limit], codec::audit_entry)?.collect()),
        };
        entries.map_err(fail)
    }

    /// The JSON text stored under `key` for `job` by `core.state`, if any.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn state_get(&self, job: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM kv WHERE job = ?1 AND key = ?2")
            .and_then(|mut stmt| stmt.query_row([job, key], |row| row.get(0)).optional())
            .map_err(self.fail("reading job state"))
    }

    /// Stores JSON text under `key` for `job`, replacing what was there.
    ///
    /// # Errors
    /// [`StoreError::InvalidJson`] when `json` is not JSON, or when the database cannot be
    /// written.
    pub fn state_set(&mut self, job: &str, key: &str, json: &str) -> Result<(), StoreError> {
        if let Err(source) = serde_json::from_str::<serde::de::IgnoredAny>(json) {
            return Err(StoreError::InvalidJson {
                job: job.to_string(),
                key: key.to_string(),
                source,
            });
        }
        self.conn
            .prepare_cached(
                "INSERT INTO kv (job, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (job, key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut stmt| stmt.execute([job, key, json]))
            .map(drop)
            .map_err(self.fail("storing job state"))
    }

    /// Removes what is stored under `key` for `job`, if anything.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn state_delete(&mut self, job: &str, key: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM kv WHERE job = ?1 AND key = ?2")
            .and_then(|mut stmt| stmt.execute([job, key]))
            .map(drop)
            .map_err(self.fail("deleting job state"))
    }
}

/// A row limit for SQL; beyond `i64::MAX` means "all", which is what -1 means to `SQLite`.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(-1)
}
