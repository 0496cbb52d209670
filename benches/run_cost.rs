//! Cost of one trivial job run through the runtime: a reused Luau state vs a fresh one per run.
//!
//! `cargo bench --bench run_cost` prints the median over batches for each mode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use jobtop::runtime::{JobGrants, JobRunner, LocalZone, RunControl, RunRequest, ScriptCache};

const BATCHES: usize = 15;

fn main() {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ok.lua");
    let request = RunRequest {
        file,
        display_name: "jobs/ok.lua".into(),
        scheduled: Utc::now(),
        zone: LocalZone::Named(chrono_tz::UTC),
        timeout: Duration::from_secs(30),
        memory: 64 << 20,
        control: RunControl::new(),
        log_sink: None,
        grants: Arc::new(JobGrants::default()),
    };
    let cache = Arc::new(ScriptCache::new());
    for (label, runs_per_batch, fresh) in [
        ("reused state", 20_000, false),
        ("fresh state", 1_000, true),
    ] {
        let mut runner = JobRunner::new(cache.clone(), vec![]);
        if fresh {
            runner = runner.fresh_state_per_run();
        }
        let mut per_run = Vec::with_capacity(BATCHES);
        for _ in 0..BATCHES {
            let clock = Instant::now();
            for _ in 0..runs_per_batch {
                let outcome = runner.run(&request);
                assert_eq!(outcome.result, jobtop::job::RunResult::Ok);
            }
            per_run.push(clock.elapsed() / runs_per_batch);
        }
        per_run.sort();
        println!(
            "trivial run, {label:<13} median {:>9.2?}  (min {:.2?}, max {:.2?}, {BATCHES} batches of {runs_per_batch})",
            per_run[BATCHES / 2],
            per_run[0],
            per_run[BATCHES - 1]
        );
    }
}
