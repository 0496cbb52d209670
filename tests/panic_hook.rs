//! The panic hook keeps panics caught inside job runs away from the terminal (the dashboard's
//! hook would restore the terminal and print), and passes every other panic on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::runner::{register_exploding, request};
use jobtop::job::RunResult;
use jobtop::runtime::{JobGrants, JobRunner, ScriptCache};

static OUTER_HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn panics_in_runs_stay_quiet_others_reach_the_previous_hook() {
    std::panic::set_hook(Box::new(|_| {
        OUTER_HOOK_CALLS.fetch_add(1, Ordering::SeqCst);
    }));
    jobtop::runtime::install_panic_hook();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("explode.lua");
    std::fs::write(
        &file,
        "local job = core.job() function job.run() core.explode() return job.OK end return job",
    )
    .unwrap();
    let run = request(file, "jobs/explode.lua", JobGrants::default());
    let outcome = JobRunner::new(Arc::new(ScriptCache::new()), vec![register_exploding]).run(&run);
    assert_eq!(outcome.result, RunResult::Error);
    assert_eq!(
        OUTER_HOOK_CALLS.load(Ordering::SeqCst),
        0,
        "a caught run panic reached the outer hook"
    );

    let outside = std::panic::catch_unwind(|| panic!("not in a run"));
    assert!(outside.is_err());
    assert_eq!(
        OUTER_HOOK_CALLS.load(Ordering::SeqCst),
        1,
        "an ordinary panic must reach the outer hook"
    );
}
