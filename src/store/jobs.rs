//! The `jobs` table: per-job state, operator actions and the scheduler's batched writes.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::codec::{self, JOB_COLUMNS};
use super::{JobState, LiveUpdate, RunRecord, Store, StoreError};
use crate::job::{RunResult, Status};
use rustc_hash::FxHashMap;

/// Upsert of a job row with everything a batch did to it: the newest run's `last_*` fields
/// (NULL when the batch had only skipped runs, which leaves them), the newest error with its
/// time (NULL leaves the stored one), the counts to add, and, when `?14` is 1, the live status
/// and next run (with the last firing and the retry state).
const UPSERT_JOB: &str = "
    INSERT INTO jobs (name, last_run, last_scheduled, last_result, last_duration_ms,
                      last_error, last_error_at, runs, oks, errors, skips, status, next_run,
                      updated_at, last_fired, retry_attempt, retry_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?15, ?16, ?17, ?18)
    ON CONFLICT (name) DO UPDATE SET
        last_run = coalesce(excluded.last_run, last_run),
        last_scheduled = coalesce(excluded.last_scheduled, last_scheduled),
        last_result = coalesce(excluded.last_result, last_result),
        last_duration_ms = coalesce(excluded.last_duration_ms, last_duration_ms),
        last_error = coalesce(excluded.last_error, last_error),
        last_error_at = CASE WHEN excluded.last_error IS NULL
                             THEN last_error_at ELSE excluded.last_error_at END,
        runs = runs + excluded.runs,
        oks = oks + excluded.oks,
        errors = errors + excluded.errors,
        skips = skips + excluded.skips,
        status = CASE WHEN ?14 THEN excluded.status ELSE status END,
        next_run = CASE WHEN ?14 THEN excluded.next_run ELSE next_run END,
        last_fired = CASE WHEN ?14 THEN excluded.last_fired ELSE last_fired END,
        retry_attempt = CASE WHEN ?14 THEN excluded.retry_attempt ELSE retry_attempt END,
        retry_at = CASE WHEN ?14 THEN excluded.retry_at ELSE retry_at END,
        updated_at = excluded.updated_at";

const INSERT_RUN: &str = "
    INSERT INTO runs (job, scheduled, started, duration_ms, result, error, logs, \"trigger\",
                      reason, covers)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

impl Store {
    /// Every job row, ordered by name.
    ///
    /// # Errors
    /// When the database cannot be read or holds a value this build does not write.
    pub fn job_states(&self) -> Result<Vec<JobState>, StoreError> {
        let fail = self.fail("reading job states");
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY name"))
            .map_err(&fail)?;
        stmt.query_map([], codec::job_state)
            .and_then(Iterator::collect)
            .map_err(fail)
    }

    /// The row of one job, if the database has one.
    ///
    /// # Errors
    /// When the database cannot be read or holds a value this build does not write.
    pub fn job_state(&self, name: &str) -> Result<Option<JobState>, StoreError> {
        let fail = self.fail("reading a job state");
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE name = ?1"))
            .map_err(&fail)?;
        stmt.query_row([name], codec::job_state)
            .optional()
            .map_err(fail)
    }

    /// Deactivates a job (creating its row if needed), with its reason, the unix user who
    /// asked (for operator actions) and the time. Committed durably before it returns.
    ///
    /// It also sets the stored status to `deactivated` and clears the next run time, so that
    /// readers see the change even when no service is running to report it.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn deactivate(
        &mut self,
        name: &str,
        reason: &str,
        by: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = codec::time(at);
        self.durably("deactivating a job", |tx| {
            tx.execute(
                "INSERT INTO jobs (name, deactivated, deactivated_reason, deactivated_at,
                                   deactivated_by, status, next_run, updated_at)
                 VALUES (?1, 1, ?2, ?3, ?4, ?5, NULL, ?3)
                 ON CONFLICT (name) DO UPDATE SET
                     deactivated = 1,
                     deactivated_reason = excluded.deactivated_reason,
                     deactivated_at = excluded.deactivated_at,
                     deactivated_by = excluded.deactivated_by,
                     status = excluded.status,
                     next_run = NULL,
                     updated_at = excluded.updated_at",
                params![name, reason, at, by, Status::Deactivated.as_str()],
            )
            .map(drop)
        })
    }

    /// Clears a job's deactivation (reason, time and user too). The last error stays, as
    /// docs/job-files.md#deactivation-and-the-last-error wants it visible until a newer one
    /// replaces it. A stored `deactivated` status
    /// becomes unknown (`None`) until the service reports the new one. Committed durably.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn activate(&mut self, name: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let at = codec::time(at);
        self.durably("activating a job", |tx| {
            tx.execute(
                "UPDATE jobs SET
                     deactivated = 0,
                     deactivated_reason = NULL,
                     deactivated_at = NULL,
                     deactivated_by = NULL,
                     status = CASE WHEN status = ?3 THEN NULL ELSE status END,
                     updated_at = ?2
                 WHERE name = ?1",
                params![name, at, Status::Deactivated.as_str()],
            )
            .map(drop)
        })
    }

    /// Stores a batch of finished runs and live statuses in one transaction, in the order
    /// given: each run goes into the history and updates its job's `last_*` fields and counts;
    /// then each live update sets its job's status and next run time.
    ///
    /// A `skipped` run only adds to `skips` (it is in the history, but is not the last run).
    /// The last error is replaced only by a run that has one (failures and `aborted`); a later
    /// successful run leaves it.
    ///
    /// # Errors
    /// When the database cannot be written; then nothing of the batch is stored.
    pub fn record(&mut self, runs: &[RunRecord], live: &[LiveUpdate]) -> Result<(), StoreError> {
        if runs.is_empty() && live.is_empty() {
            return Ok(());
        }
        let fail = |err| StoreError::from_sqlite(&self.path, "recording runs", err);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        record_in(&tx, runs, live).map_err(fail)?;
        tx.commit().map_err(fail)
    }

    /// Marks every job not in `names` as not configured now: its status and next run become
    /// NULL. Rows are kept, so a job removed from `jobs.yaml` and added back later is still
    /// deactivated and keeps its counts and history.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn forget_jobs_except(&mut self, names: &[&str]) -> Result<(), StoreError> {
        let keep: HashSet<&str> = names.iter().copied().collect();
        let fail = |err| StoreError::from_sqlite(&self.path, "forgetting removed jobs", err);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let known: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT name FROM jobs WHERE status IS NOT NULL OR next_run IS NOT NULL")
                .map_err(fail)?;
            stmt.query_map([], |row| row.get(0))
                .and_then(Iterator::collect)
                .map_err(fail)?
        };
        {
            let mut clear = tx
                .prepare("UPDATE jobs SET status = NULL, next_run = NULL WHERE name = ?1")
                .map_err(fail)?;
            for name in known.iter().filter(|n| !keep.contains(n.as_str())) {
                clear.execute([name]).map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)
    }

    /// Runs `write` in a transaction committed with `synchronous=FULL`, so that what it writes
    /// survives a power loss, not only a crash: for operator actions, which are acknowledged.
    fn durably(
        &mut self,
        context: &'static str,
        write: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let fail = |err| StoreError::from_sqlite(&path, context, err);
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(fail)?;
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            write(&tx)?;
            tx.commit()
        })();
        let reset = self.conn.pragma_update(None, "synchronous", "NORMAL");
        result.and(reset).map_err(fail)
    }
}

/// What one batch does to one job's row.
#[derive(Default)]
struct RowChange<'a> {
    /// The newest run that was not skipped: its index in the batch.
    last: Option<usize>,
    /// The newest error and when it happened.
    error: Option<(&'a str, String)>,
    runs: i64,
    oks: i64,
    errors: i64,
    skips: i64,
    live: Option<&'a LiveUpdate>,
}

/// Folds a batch into one row change per job, in the order the jobs first appear, so a batch
/// costs one upsert per job however many runs it holds. The result is the same as applying
/// the runs one by one, then the live updates.
fn row_changes<'a>(runs: &'a [RunRecord], live: &'a [LiveUpdate]) -> Vec<(&'a str, RowChange<'a>)> {
    let mut changes: Vec<(&str, RowChange<'_>)> = Vec::new();
    let mut index: FxHashMap<&str, usize> = FxHashMap::default();
    let mut slot = |job: &'a str, changes: &mut Vec<(&'a str, RowChange<'a>)>| {
        *index.entry(job).or_insert_with(|| {
            changes.push((job, RowChange::default()));
            changes.len() - 1
        })
    };
    for (index, run) in runs.iter().enumerate() {
        let i = slot(&run.job, &mut changes);
        let change = &mut changes[i].1;
        if run.result == RunResult::Skipped {
            let covers = run.skip.map_or(1, |s| s.covers);
            change.skips += i64::try_from(covers).unwrap_or(i64::MAX);
            continue;
        }
        change.last = Some(index);
        change.runs += 1;
        change.oks += i64::from(run.result == RunResult::Ok);
        change.errors += i64::from(run.result.is_failure());
        if let Some(error) = last_error(run) {
            let end = TimeDelta::from_std(run.duration)
                .ok()
                .and_then(|d| run.started.checked_add_signed(d))
                .unwrap_or(run.started);
            change.error = Some((error, codec::time(end)));
        }
    }
    for update in live {
        let i = slot(&update.job, &mut changes);
        changes[i].1.live = Some(update);
    }
    changes
}

fn record_in(
    tx: &Transaction<'_>,
    runs: &[RunRecord],
    live: &[LiveUpdate],
) -> rusqlite::Result<()> {
    let now = codec::time(Utc::now());
    // Each run's times, formatted once for its history row and its job's row.
    let times: Vec<(String, String)> = runs
        .iter()
        .map(|r| (codec::time(r.started), codec::time(r.scheduled)))
        .collect();
    // The job rows first: `runs.job` references them.
    let mut upsert_job = tx.prepare_cached(UPSERT_JOB)?;
    for (job, change) in row_changes(runs, live) {
        let last = change.last.map(|i| (&runs[i], &times[i]));
        let last_times = last.map(|(_, t)| t);
        let last = last.map(|(r, _)| r);
        upsert_job.execute(params![
            job,
            last_times.map(|t| t.0.as_str()),
            last_times.map(|t| t.1.as_str()),
            last.map(|r| r.result.as_str()),
            last.map(|r| codec::millis(r.duration)),
            change.error.as_ref().map(|(e, _)| *e),
            change.error.as_ref().map(|(_, at)| at.as_str()),
            change.runs,
            change.oks,
            change.errors,
            change.skips,
            change.live.map(|l| l.status.as_str()),
            change.live.and_then(|l| codec::opt_time(l.next_run)),
            i64::from(change.live.is_some()),
            now,
            change.live.and_then(|l| codec::opt_time(l.last_fired)),
            change.live.map_or(0, |l| l.retry_attempt),
            change.live.and_then(|l| codec::opt_time(l.retry_at)),
        ])?;
    }
    let mut insert_run = tx.prepare_cached(INSERT_RUN)?;
    for (run, (started, scheduled)) in runs.iter().zip(&times) {
        insert_run.execute(params![
            run.job,
            scheduled,
            started,
            codec::millis(run.duration),
            run.result.as_str(),
            run.error,
            codec::logs_json(&run.logs),
            run.trigger.as_str(),
            run.skip.map(|s| s.reason.as_str()),
            run.skip
                .map_or(1, |s| i64::try_from(s.covers).unwrap_or(i64::MAX)),
        ])?;
    }
    Ok(())
}

/// The error a run leaves as its job's last error: failures and `aborted` runs have one (their
/// result word stands in when the run carries no message); other runs have none.
fn last_error(run: &RunRecord) -> Option<&str> {
    if run.result.is_failure() || run.result == RunResult::Aborted {
        Some(run.error.as_deref().unwrap_or(run.result.as_str()))
    } else {
        None
    }
}
