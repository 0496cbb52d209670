//! One entry of `jobs:`: its name, file, schedule and zone, limits, capabilities, roots and
//! environment (docs/jobs-yaml.md#jobs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::paths;
use super::super::values::{Checker, Fields};
use super::super::yaml::{Node, Source, Value, entry_text};
use super::super::{Capability, Database, EntrySource, JobSpec, ServiceConfig};
use super::timing;

const JOB_KEYS: &[&str] = &[
    "name",
    "path",
    "interval",
    "schedule",
    "timezone",
    "catch_up",
    "retries",
    "retry_delay",
    "active",
    "run_once",
    "timeout",
    "memory",
    "allow",
    "files",
    "env",
    "databases",
    "notify",
];

const EXPECT_NAME: &str = "a unique job name made of letters, digits, '_', '.' and '-'";
const EXPECT_PATH: &str = "the job file's path, relative to jobs_dir";
const EXPECT_CAPABILITY: &str = "network, exec, files or db";
const EXPECT_ENV: &str =
    "an environment variable name: letters, digits and '_', not starting with a digit";
const EXPECT_ROOT: &str = "an absolute path such as /var/log/myapp";

/// What every job entry is checked against, worked out once for the whole file.
pub(super) struct JobsContext<'a> {
    /// The service settings (defaults, `jobs_dir`).
    pub(super) service: &'a ServiceConfig,
    /// `jobs_dir` canonicalized, when it exists.
    pub(super) real_root: Option<PathBuf>,
}

/// Reports a job path that is empty, absolute, or leads out of `jobs_dir`.
fn check_path(check: &mut Checker, jobs: &JobsContext<'_>, node: &Node, path: &str, ctx: &str) {
    let jobs_dir = &jobs.service.jobs_dir;
    if let Err(problem) = paths::check_in(jobs_dir, jobs.real_root.as_deref(), path) {
        let (what, expected) = problem.explain(jobs_dir);
        check.report(
            node.pos,
            format!("path {path:?} {ctx} {what}: expected {expected}"),
        );
    }
}

/// One entry of `jobs:`; `None` when it has problems (all of them reported).
pub(super) fn job(
    check: &mut Checker,
    index: usize,
    node: &Node,
    source: &Source<'_>,
    jobs: &JobsContext<'_>,
    names: &mut HashMap<String, usize>,
) -> Option<JobSpec> {
    let service = jobs.service;
    let before = check.problems.len();
    let Value::Map(entries) = &*node.value else {
        check.report(
            node.pos,
            format!(
                "job #{} is {}: expected a mapping with at least name, path and interval or schedule",
                index + 1,
                node.describe()
            ),
        );
        return None;
    };
    let label = entries
        .iter()
        .find(|(k, _)| k.scalar().is_some_and(|s| s.text == "name"))
        .and_then(|(_, v)| v.scalar().filter(|_| !v.is_null()))
        .map_or_else(
            || format!("job #{}", index + 1),
            |s| format!("job {:?}", s.text),
        );
    let ctx = format!("in {label}");
    let f = check.fields(entries, JOB_KEYS, &ctx);

    let name = check
        .required(&f, node, "name", &ctx, EXPECT_NAME)
        .and_then(|n| Some((n, check.text(n, &format!("name {ctx}"), EXPECT_NAME)?)));
    if let Some((name_node, name)) = &name {
        if !is_name(name) {
            check.report(
                name_node.pos,
                format!("invalid job name {name:?}: expected {EXPECT_NAME}"),
            );
        } else if let Some(first) = names.get(name) {
            check.report(
                name_node.pos,
                format!(
                    "duplicate job name {name:?} (first used on line {first}): expected {EXPECT_NAME}"
                ),
            );
        } else {
            names.insert(name.clone(), name_node.pos.line);
        }
    }

    let path = check
        .required(&f, node, "path", &ctx, EXPECT_PATH)
        .and_then(|n| Some((n, check.text(n, &format!("path {ctx}"), EXPECT_PATH)?)));
    if let Some((path_node, path)) = &path {
        check_path(check, jobs, path_node, path, &ctx);
    }

    let zone = timing::job_zone(check, &f, &ctx, service);
    let schedule_name = name.as_ref().map_or("", |(_, name)| name.as_str());
    let schedule = timing::schedule(check, &f, node, &ctx, schedule_name, zone);
    let (catch_up, retries, retry_delay) = timing::defaults(check, &f, &ctx, &service.defaults);
    let flag = |check: &mut Checker, key: &str, default: bool| {
        f.set(key)
            .and_then(|n| check.flag(n, &format!("{key} {ctx}")))
            .unwrap_or(default)
    };
    let active = flag(check, "active", true);
    let run_once = flag(check, "run_once", false);
    let timeout = f
        .set("timeout")
        .and_then(|n| check.duration(n, "timeout", &ctx))
        .unwrap_or(service.defaults.timeout);
    let memory = f
        .set("memory")
        .and_then(|n| check.size(n, "memory", &ctx))
        .unwrap_or(service.defaults.memory);

    let allow = capabilities(check, &f, &ctx);
    let files = file_roots(check, &f, &ctx);
    let env = env_names(check, &f, &ctx);
    let databases = database_names(check, &f, &ctx, service, &allow);
    let notify = own_channels(check, &f, &ctx, service);

    if check.problems.len() > before {
        return None;
    }
    let ((_, name), (_, path), schedule) = (name?, path?, schedule?);
    Some(JobSpec {
        file: service.jobs_dir.join(&path),
        name,
        path,
        schedule,
        catch_up,
        retries,
        retry_delay,
        active,
        run_once,
        timeout,
        memory,
        allow,
        files,
        env,
        databases,
        notify,
        source: EntrySource {
            line: node.pos.line,
            text: entry_text(source, node).into(),
        },
    })
}

/// `notify:`: the job's own channels, replacing the service's (`notify: []` silences it).
fn own_channels(
    check: &mut Checker,
    f: &Fields<'_>,
    ctx: &str,
    service: &ServiceConfig,
) -> Option<Vec<crate::config::Channel>> {
    let node = f.get("notify")?;
    Some(super::notify::channels(
        check,
        node,
        ctx,
        service.alerts.smtp.is_some(),
    ))
}

/// `allow:`: capabilities without repeats, in the order written.
fn capabilities(check: &mut Checker, f: &Fields<'_>, ctx: &str) -> Vec<Capability> {
    let mut allow = Vec::new();
    let expected = "a list of capabilities: [network, exec, files, db]";
    for item in f.set("allow").map_or(&[][..], |n| {
        check.list(n, &format!("allow {ctx}"), expected)
    }) {
        let what = format!("a capability in allow {ctx}");
        let Some(word) = check.text(item, &what, EXPECT_CAPABILITY) else {
            continue;
        };
        match Capability::from_word(&word) {
            Some(c) if !allow.contains(&c) => allow.push(c),
            Some(_) => {}
            None => check.report(
                item.pos,
                format!("unknown capability {word:?} {ctx}: expected {EXPECT_CAPABILITY}"),
            ),
        }
    }
    allow
}

/// `files:`: absolute roots for `core.files`.
fn file_roots(check: &mut Checker, f: &Fields<'_>, ctx: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let expected = "a list of absolute paths such as [/var/log/myapp]";
    for item in f.set("files").map_or(&[][..], |n| {
        check.list(n, &format!("files {ctx}"), expected)
    }) {
        let Some(root) = check.text(item, &format!("a files root {ctx}"), EXPECT_ROOT) else {
            continue;
        };
        if Path::new(&root).is_absolute() {
            files.push(PathBuf::from(root));
        } else {
            check.report(
                item.pos,
                format!("files root {root:?} {ctx} is not absolute: expected {EXPECT_ROOT}"),
            );
        }
    }
    files
}

/// `env:`: variable names for `core.env`.
fn env_names(check: &mut Checker, f: &Fields<'_>, ctx: &str) -> Vec<String> {
    let mut env = Vec::new();
    let expected = "a list of environment variable names such as [API_TOKEN]";
    for item in f
        .set("env")
        .map_or(&[][..], |n| check.list(n, &format!("env {ctx}"), expected))
    {
        let Some(var) = check.text(item, &format!("a name in env {ctx}"), EXPECT_ENV) else {
            continue;
        };
        if is_env_name(&var) {
            env.push(var);
        } else {
            check.report(
                item.pos,
                format!("invalid environment variable name {var:?} {ctx}: expected {EXPECT_ENV}"),
            );
        }
    }
    env
}

/// `databases:`: names from `service.databases`, each once, in the order written (a warning
/// when the job lacks `allow: [db]`).
fn database_names(
    check: &mut Checker,
    f: &Fields<'_>,
    ctx: &str,
    service: &ServiceConfig,
    allow: &[Capability],
) -> Vec<Arc<Database>> {
    let mut found: Vec<Arc<Database>> = Vec::new();
    let expected = "a list of names from service.databases, such as [reports]";
    for item in f.set("databases").map_or(&[][..], |n| {
        check.list(n, &format!("databases {ctx}"), expected)
    }) {
        let Some(name) = check.text(item, &format!("a name in databases {ctx}"), expected) else {
            continue;
        };
        match service.databases.iter().find(|d| d.name == name) {
            Some(db) if !found.iter().any(|d| d.name == name) => found.push(db.clone()),
            Some(_) => {}
            None if check.unresolved.contains(&name) => {}
            None => {
                let mut known: Vec<&str> =
                    service.databases.iter().map(|d| d.name.as_str()).collect();
                known.extend(check.unresolved.iter().map(String::as_str));
                let expected = if known.is_empty() {
                    "a database defined in service.databases (there are none)".to_string()
                } else {
                    format!("one of {} (from service.databases)", known.join(", "))
                };
                check.report(
                    item.pos,
                    format!("unknown database {name:?} {ctx}: expected {expected}"),
                );
            }
        }
    }
    if let Some(node) = f.set("databases")
        && !found.is_empty()
        && !allow.contains(&Capability::Db)
    {
        check.warn(
            node.pos,
            format!(
                "databases {ctx} are listed, but allow has no db, so core.sql and core.mysql \
                 refuse them: expected `allow: [db]` beside databases"
            ),
        );
    }
    found
}

/// `[A-Za-z0-9_.-]+`
pub(super) fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `[A-Za-z_][A-Za-z0-9_]*`
pub(super) fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_patterns() {
        assert!(is_name("nightly-report_2.v1"));
        assert!(!is_name(""));
        assert!(!is_name("a b"));
        assert!(!is_name("ä"));
        assert!(is_env_name("_X1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name(""));
    }
}
