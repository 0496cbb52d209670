//! The `service:` section: where things live, the zone, the pool, defaults for jobs, history
//! retention, and who may use the control socket (docs/jobs-yaml.md#service).

use std::path::Path;

use super::super::ServiceConfig;
use super::super::values::{Checker, Fields};
use super::super::yaml::Node;
use super::timing;

const SERVICE_KEYS: &[&str] = &[
    "jobs_dir",
    "state_dir",
    "timezone",
    "workers",
    "spread",
    "defaults",
    "history",
    "operators",
    "viewers",
    "databases",
    "notify",
    "smtp",
    "metrics",
    "metrics_textfile",
];
const DEFAULTS_KEYS: &[&str] = &["timeout", "memory", "catch_up", "retries", "retry_delay"];
const HISTORY_KEYS: &[&str] = &["keep_runs", "keep_days"];

const EXPECT_DIR: &str = "a directory path, absolute or relative to the directory of jobs.yaml";

/// The `service:` section, with defaults for whatever it does not set (or cannot be read).
pub(super) fn service(check: &mut Checker, node: Option<&Node>, base_dir: &Path) -> ServiceConfig {
    let mut service = ServiceConfig::with_defaults(base_dir);
    let Some(node) = node else {
        return service;
    };
    let Some(f) = check.mapping(
        node,
        "service at the top level",
        "a mapping of service settings",
        SERVICE_KEYS,
        "in service",
    ) else {
        return service;
    };
    let dir = |check: &mut Checker, key: &str| {
        let node = f.set(key)?;
        let what = format!("{key} in service");
        let text = check.text(node, &what, EXPECT_DIR)?;
        if text.trim().is_empty() {
            check.report(node.pos, format!("{what} is empty: expected {EXPECT_DIR}"));
            return None;
        }
        Some(base_dir.join(text))
    };
    if let Some(dir) = dir(check, "jobs_dir") {
        service.jobs_dir = dir;
    }
    if let Some(dir) = dir(check, "state_dir") {
        service.state_dir = dir;
    }
    if let Some(node) = f.set("timezone")
        && let Some(crate::schedule::Zone::Named(zone)) = timing::zone(check, node, "in service")
    {
        service.timezone = Some(zone);
    }
    groups(check, &f, &mut service);
    service.alerts = super::notify::alerts(check, &f, base_dir);
    if let Some(node) = f.set("databases") {
        service.databases = super::databases::databases(check, node, base_dir);
    }
    if let Some(node) = f.set("workers") {
        let expected = "a whole number of parallel runs, at least 1";
        let max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
        if let Some(n) = check.whole(node, "workers in service", expected, max) {
            service.workers = usize::try_from(n).unwrap_or(usize::MAX);
        }
    }
    if let Some(node) = f.get("spread") {
        // Accepted so that files written for wave 1 still load; slots spread every job now.
        check.warn(
            node.pos,
            "spread in service is deprecated and ignored: interval jobs are spread across their \
             interval by default (each job's slots are anchored on a hash of its name): expected \
             no spread key"
                .to_string(),
        );
    }
    if let Some(node) = f.set("defaults") {
        let ctx = "in service.defaults";
        let expected = "a mapping with timeout, memory, catch_up, retries and retry_delay";
        if let Some(d) = check.mapping(node, "defaults in service", expected, DEFAULTS_KEYS, ctx) {
            let (catch_up, retries, retry_delay) =
                timing::defaults(check, &d, ctx, &service.defaults);
            service.defaults.catch_up = catch_up;
            service.defaults.retries = retries;
            service.defaults.retry_delay = retry_delay;
            if let Some(timeout) = d
                .set("timeout")
                .and_then(|n| check.duration(n, "timeout", ctx))
            {
                service.defaults.timeout = timeout;
            }
            if let Some(memory) = d.set("memory").and_then(|n| check.size(n, "memory", ctx)) {
                service.defaults.memory = memory;
            }
        }
    }
    if let Some(node) = f.set("history") {
        let ctx = "in service.history";
        let expected = "a mapping with keep_runs and keep_days";
        if let Some(h) = check.mapping(node, "history in service", expected, HISTORY_KEYS, ctx) {
            let max = u64::from(u32::MAX);
            let mut count = |key: &str, expected: &str| {
                let node = h.set(key)?;
                let n = check.whole(node, &format!("{key} {ctx}"), expected, max)?;
                u32::try_from(n).ok()
            };
            if let Some(n) = count(
                "keep_runs",
                "a whole number of runs to keep per job, at least 1",
            ) {
                service.history.keep_runs = n;
            }
            if let Some(n) = count(
                "keep_days",
                "a whole number of days to keep runs, at least 1",
            ) {
                service.history.keep_days = n;
            }
        }
    }
    service
}

/// `service.operators` and `service.viewers`: Unix groups that must exist.
fn groups(check: &mut Checker, f: &Fields<'_>, service: &mut ServiceConfig) {
    for key in ["operators", "viewers"] {
        let Some(node) = f.set(key) else { continue };
        let expected = "the name of a Unix group the system knows (getent group NAME)";
        let what = format!("{key} in service");
        let Some(group) = check.text(node, &what, expected) else {
            continue;
        };
        if !crate::users::group_exists(&group) {
            check.report(
                node.pos,
                format!("unknown group {group:?} as {what}: expected {expected}"),
            );
        } else if key == "operators" {
            service.operators = Some(group);
        } else {
            service.viewers = Some(group);
        }
    }
}
