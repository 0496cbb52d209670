//! Walks the positioned YAML tree of `jobs.yaml` key by key, applying defaults and collecting
//! every problem instead of stopping at the first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::paths;
use super::values::{Checker, Fields};
use super::yaml::{Node, Pos, Source, Value, entry_text};
use super::{Capability, EntrySource, JobSpec, Problem, ServiceConfig};

const TOP_KEYS: &[&str] = &["service", "jobs"];
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
];
const DEFAULTS_KEYS: &[&str] = &["timeout", "memory"];
const HISTORY_KEYS: &[&str] = &["keep_runs", "keep_days"];
const JOB_KEYS: &[&str] = &[
    "name", "path", "interval", "active", "run_once", "timeout", "memory", "allow", "files", "env",
];

const EXPECT_TOP: &str = "a mapping with a `jobs` list";
const EXPECT_NAME: &str = "a unique job name made of letters, digits, '_', '.' and '-'";
const EXPECT_PATH: &str = "the job file's path, relative to jobs_dir";
const EXPECT_DIR: &str = "a directory path, absolute or relative to the directory of jobs.yaml";
const EXPECT_CAPABILITY: &str = "network, exec or files";
const EXPECT_ENV: &str =
    "an environment variable name: letters, digits and '_', not starting with a digit";
const EXPECT_ROOT: &str = "an absolute path such as /var/log/myapp";

/// Validates the document; the service settings and jobs when there is no problem at all.
pub(super) fn validate(
    root: Option<&Node>,
    text: &str,
    base_dir: &Path,
) -> Result<(ServiceConfig, Vec<JobSpec>), Vec<Problem>> {
    let mut check = Checker::default();
    let source = Source::new(text);
    let Some(root) = root else {
        check.report(
            Pos::START,
            format!("the file is empty: expected {EXPECT_TOP}"),
        );
        return Err(check.problems);
    };
    let Value::Map(entries) = &*root.value else {
        check.report(
            root.pos,
            format!(
                "the top level is {}: expected {EXPECT_TOP}",
                root.describe()
            ),
        );
        return Err(check.problems);
    };
    let top = check.fields(entries, TOP_KEYS, "at the top level");
    let service = service(&mut check, top.set("service"), base_dir);
    let mut jobs = Vec::new();
    match top.get("jobs") {
        None => check.report(
            root.pos,
            "missing key \"jobs\" at the top level: expected a list of jobs (`jobs: []` when there are none)"
                .to_string(),
        ),
        Some(node) => {
            let items = check.list(node, "jobs at the top level", "a list of jobs");
            let mut names = HashMap::new();
            let context = JobsContext {
                service: &service,
                real_root: service.jobs_dir.canonicalize().ok(),
            };
            for (index, item) in items.iter().enumerate() {
                if let Some(job) = job(&mut check, index, item, &source, &context, &mut names) {
                    jobs.push(job);
                }
            }
        }
    }
    if check.problems.is_empty() {
        Ok((service, jobs))
    } else {
        Err(check.problems)
    }
}

/// The `service:` section, with defaults for whatever it does not set (or cannot be read).
fn service(check: &mut Checker, node: Option<&Node>, base_dir: &Path) -> ServiceConfig {
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
    if let Some(node) = f.set("timezone") {
        let expected = "an IANA time zone name such as Europe/Berlin or UTC";
        if let Some(name) = check.text(node, "timezone in service", expected) {
            match name.parse::<chrono_tz::Tz>() {
                Ok(zone) => service.timezone = Some(zone),
                Err(_) => check.report(
                    node.pos,
                    format!("unknown time zone {name:?} in service: expected {expected}"),
                ),
            }
        }
    }
    groups(check, &f, &mut service);
    if let Some(node) = f.set("workers") {
        let expected = "a whole number of parallel runs, at least 1";
        let max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
        if let Some(n) = check.whole(node, "workers in service", expected, max) {
            service.workers = usize::try_from(n).unwrap_or(usize::MAX);
        }
    }
    if let Some(spread) = f
        .set("spread")
        .and_then(|n| check.duration(n, "spread", "in service"))
    {
        service.spread = spread;
    }
    if let Some(node) = f.set("defaults") {
        let ctx = "in service.defaults";
        let expected = "a mapping with timeout and memory";
        if let Some(d) = check.mapping(node, "defaults in service", expected, DEFAULTS_KEYS, ctx) {
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

/// What every job entry is checked against, worked out once for the whole file.
struct JobsContext<'a> {
    /// The service settings (defaults, `jobs_dir`).
    service: &'a ServiceConfig,
    /// `jobs_dir` canonicalized, when it exists.
    real_root: Option<PathBuf>,
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
fn job(
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
                "job #{} is {}: expected a mapping with at least name, path and interval",
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
        if !is_job_name(name) {
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

    let interval = check
        .required(
            &f,
            node,
            "interval",
            &ctx,
            "a duration such as 30s, 5m or 1h",
        )
        .and_then(|n| check.duration(n, "interval", &ctx));
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

    if check.problems.len() > before {
        return None;
    }
    let ((_, name), (_, path), interval) = (name?, path?, interval?);
    Some(JobSpec {
        file: service.jobs_dir.join(&path),
        name,
        path,
        interval,
        active,
        run_once,
        timeout,
        memory,
        allow,
        files,
        env,
        source: EntrySource {
            line: node.pos.line,
            text: entry_text(source, node).into(),
        },
    })
}

/// `allow:`: capabilities without repeats, in the order written.
fn capabilities(check: &mut Checker, f: &Fields<'_>, ctx: &str) -> Vec<Capability> {
    let mut allow = Vec::new();
    let expected = "a list of capabilities: [network, exec, files]";
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

/// `[A-Za-z0-9_.-]+`
fn is_job_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `[A-Za-z_][A-Za-z0-9_]*`
fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_patterns() {
        assert!(is_job_name("nightly-report_2.v1"));
        assert!(!is_job_name(""));
        assert!(!is_job_name("a b"));
        assert!(!is_job_name("ä"));
        assert!(is_env_name("_X1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name(""));
    }
}
