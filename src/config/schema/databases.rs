//! `service.databases`: named databases, each a URL (`url`, or `url_env` naming the variable
//! that holds it), an optional `password_env`, and result caps (docs/jobs-yaml.md#databases).
//!
//! The variables are read here, so `check` reports one that is unset (by its name; a value is
//! never quoted). A `url` written in `jobs.yaml` may not carry a password: the file is read by
//! whoever reads the configuration, its entries are shown in the dashboard's details view, and
//! it tends to end up in version control. The password goes in `password_env` instead (or the
//! whole URL in `url_env`).

use std::path::Path;
use std::sync::Arc;

use super::super::database::{self, DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, Database, Secret, Target};
use super::super::values::{Checker, Fields};
use super::super::yaml::{Node, Value};

const DATABASE_KEYS: &[&str] = &["url", "url_env", "password_env", "max_rows", "max_result"];

const EXPECT_NAME: &str = "a database name made of letters, digits, '_', '.' and '-'";
const EXPECT_ENTRY: &str = "a mapping with url (or url_env), and optionally password_env, \
     max_rows and max_result";
const EXPECT_VAR: &str =
    "the name of an environment variable: letters, digits and '_', not starting with a digit";

/// The databases of `service.databases`, in file order; each problem reported.
pub(super) fn databases(check: &mut Checker, node: &Node, base_dir: &Path) -> Vec<Arc<Database>> {
    let mut found = Vec::new();
    let Value::Map(entries) = &*node.value else {
        check.report(
            node.pos,
            format!(
                "databases in service is {}: expected a mapping of names to databases, such as \
                 `reports: {{url: \"postgres://jobs@db1/reports\", password_env: REPORTS_PW}}`",
                node.describe()
            ),
        );
        return found;
    };
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (key, value) in entries {
        let Some(name) = key
            .scalar()
            .filter(|_| !key.is_null())
            .map(|s| s.text.clone())
        else {
            check.report(
                key.pos,
                format!(
                    "a database name in service.databases is {}: expected {EXPECT_NAME}",
                    key.describe()
                ),
            );
            continue;
        };
        if !super::job::is_name(&name) {
            check.report(
                key.pos,
                format!("invalid database name {name:?}: expected {EXPECT_NAME}"),
            );
            continue;
        }
        if let Some((_, line)) = seen.iter().find(|(n, _)| *n == name) {
            check.report(
                key.pos,
                format!(
                    "duplicate database name {name:?} (first on line {line}): expected each name once"
                ),
            );
            continue;
        }
        seen.push((name.clone(), key.pos.line));
        match database(check, &name, value, base_dir) {
            Some(database) => found.push(Arc::new(database)),
            // Reported already (or left out for want of its URL): jobs may name it without a
            // second problem.
            None => check.unresolved.push(name),
        }
    }
    found
}

/// One database entry; `None` when it has problems (all of them reported).
fn database(check: &mut Checker, name: &str, node: &Node, base_dir: &Path) -> Option<Database> {
    let ctx = format!("in database {name:?}");
    let what = format!("database {name:?} in service.databases");
    let f = check.mapping(node, &what, EXPECT_ENTRY, DATABASE_KEYS, &ctx)?;
    let before = check.problems.len();
    let url_env = env_var(check, &f, "url_env", &ctx);
    let password_env = env_var(check, &f, "password_env", &ctx);
    let url = match (f.set("url"), &url_env) {
        (Some(node), Some((env_node, _, _))) => {
            let _ = node;
            check.report(
                env_node.pos,
                format!("database {name:?} has both url and url_env: expected one of them"),
            );
            None
        }
        (Some(node), None) => check
            .text(node, &format!("url {ctx}"), database::EXPECT_URL)
            .map(|text| (node, text, None)),
        (None, Some((_, _, None))) if check.secrets_optional => None,
        (None, Some((node, var, value))) => {
            value.clone().map(|text| (*node, text, Some(var.clone())))
        }
        (None, None) => {
            if check.problems.len() == before {
                check.report(
                    node.pos,
                    format!("database {name:?} has no url: expected url, or url_env naming the variable that holds it"),
                );
            }
            None
        }
    };
    let parsed = url.and_then(|(node, text, from_var)| {
        let source = from_var.as_ref().map_or_else(
            || format!("url {ctx}"),
            |var| format!("the URL in {var} (url_env {ctx})"),
        );
        match database::parse_url(&text, base_dir) {
            Ok(parsed) => Some((node, parsed, from_var)),
            Err(why) => {
                check.report(node.pos, format!("{source} {why}"));
                None
            }
        }
    });
    let max_rows = f
        .set("max_rows")
        .and_then(|n| {
            check.whole(
                n,
                &format!("max_rows {ctx}"),
                "a whole number of rows, at least 1",
                u64::MAX,
            )
        })
        .unwrap_or(DEFAULT_MAX_ROWS);
    let max_bytes = f
        .set("max_result")
        .and_then(|n| check.size(n, "max_result", &ctx))
        .unwrap_or(DEFAULT_MAX_BYTES);
    let (url_node, mut parsed, from_var) = parsed?;
    if parsed.had_password && from_var.is_none() {
        check.report(
            url_node.pos,
            format!(
                "url {ctx} has a password in it, and jobs.yaml is no place for one: expected \
                 {} with the password in the variable that password_env names",
                parsed.shown
            ),
        );
    }
    add_password(check, &ctx, &mut parsed, password_env);
    if check.problems.len() > before {
        return None;
    }
    Some(Database {
        name: name.to_string(),
        target: parsed.target,
        shown: parsed.shown,
        max_rows,
        max_bytes,
    })
}

/// The password from `password_env` into the parsed URL (which must have none of its own).
fn add_password(
    check: &mut Checker,
    ctx: &str,
    parsed: &mut database::ParsedUrl,
    password_env: Option<(&Node, String, Option<String>)>,
) {
    if let Some((pw_node, var, value)) = password_env {
        match &mut parsed.target {
            Target::Sqlite(_) => check.report(
                pw_node.pos,
                format!("password_env {ctx} is set, but an SQLite file has no password: expected no password_env"),
            ),
            Target::Postgres(server) | Target::MySql(server) => {
                if parsed.had_password {
                    check.report(
                        pw_node.pos,
                        format!(
                            "password_env {ctx} names {var}, but the URL has a password too: expected the password in one place"
                        ),
                    );
                }
                if let Some(value) = value {
                    server.password = Some(Secret::new(value));
                }
            }
        }
    }
}

/// `url_env` or `password_env`: the key's node, the variable's name, and its value (`None`
/// when it is unset or empty, which is reported by the variable's name only).
fn env_var<'n>(
    check: &mut Checker,
    f: &Fields<'n>,
    key: &str,
    ctx: &str,
) -> Option<(&'n Node, String, Option<String>)> {
    let node = f.set(key)?;
    let var = check.text(node, &format!("{key} {ctx}"), EXPECT_VAR)?;
    if !super::job::is_env_name(&var) {
        check.report(
            node.pos,
            format!(
                "invalid environment variable name {var:?} as {key} {ctx}: expected {EXPECT_VAR}"
            ),
        );
        return None;
    }
    let problem = match std::env::var(&var) {
        Ok(value) if !value.is_empty() => return Some((node, var, Some(value))),
        _ if check.secrets_optional => return Some((node, var, None)),
        Ok(_) => "is empty",
        Err(std::env::VarError::NotPresent) => "is not set",
        Err(std::env::VarError::NotUnicode(_)) => "is not UTF-8 text",
    };
    check.report(
        node.pos,
        format!(
            "{key} {ctx} names {var}, which {problem} in jobtop's environment: expected {var} \
             set to the {} before jobtop starts",
            if key == "url_env" {
                "database URL"
            } else {
                "password"
            }
        ),
    );
    Some((node, var, None))
}
