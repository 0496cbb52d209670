//! Walks the positioned YAML tree of `jobs.yaml` key by key, applying defaults and collecting
//! every problem instead of stopping at the first.

use std::collections::HashMap;
use std::path::Path;

use super::values::Checker;
use super::yaml::{Node, Pos, Source, Value};
use super::{JobSpec, Problem, ServiceConfig};

mod databases;
mod job;
mod notify;
mod service;
mod timing;

use job::{JobsContext, job};
use service::service;

const TOP_KEYS: &[&str] = &["service", "jobs"];

const EXPECT_TOP: &str = "a mapping with a `jobs` list";

/// What a valid file gives: the service settings, the jobs, and the warnings.
type Valid = (ServiceConfig, Vec<std::sync::Arc<JobSpec>>, Vec<Problem>);

/// Validates the document; the service settings, jobs and warnings when there is no problem
/// at all.
pub(super) fn validate(
    root: Option<&Node>,
    text: &str,
    base_dir: &Path,
    secrets: super::Secrets,
) -> Result<Valid, Vec<Problem>> {
    let mut check = Checker {
        secrets_optional: secrets == super::Secrets::Optional,
        ..Checker::default()
    };
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
                    jobs.push(std::sync::Arc::new(job));
                }
            }
        }
    }
    if check.problems.is_empty() {
        Ok((service, jobs, check.warnings))
    } else {
        Err(check.problems)
    }
}
