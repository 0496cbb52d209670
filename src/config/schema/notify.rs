//! `service.notify` and a job's `notify:` (channels), `service.smtp`, `service.metrics` and
//! `service.metrics_textfile` (docs/alerts.md).
//!
//! `${NAME}` in a webhook's URL and header values and in a command's arguments is replaced by
//! the variable from jobtop's environment when the file is read: only the names written are
//! read, and an unset one is a problem here, not an empty string at 03:00.

use std::net::SocketAddr;
use std::path::Path;

use super::super::Secret;
use super::super::notify::{Alerts, Channel, NotifyEvent, Smtp, Target};
use super::super::values::{Checker, Fields};
use super::super::yaml::{Node, Value};

const CHANNEL_KEYS: &[&str] = &["webhook", "headers", "command", "email", "on", "timeout"];

/// How long one delivery attempt may take unless a channel says otherwise.
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const EMAIL_KEYS: &[&str] = &["to", "from"];
const SMTP_KEYS: &[&str] = &["url", "user_env", "password_env"];

const EXPECT_CHANNEL: &str = "a mapping with one of webhook: URL, command: [program, args…] or \
                              email: {to: [...], from: ...}, and optionally on: [events]";
const EXPECT_EVENT: &str = "failed, recovered, deactivated or skipped";
const EXPECT_ADDRESS: &str = "a mail address such as ops@example.com";
const EXPECT_SMTP_URL: &str =
    "smtp://host[:port], smtp+starttls://host[:port] or smtps://host[:port]";
const EXPECT_LISTEN: &str = "an address and port to listen on, such as 127.0.0.1:9464";

/// The alerting keys of `service:`.
pub(super) fn alerts(check: &mut Checker, f: &Fields<'_>, base_dir: &Path) -> Alerts {
    let mut alerts = Alerts::default();
    if let Some(node) = f.set("smtp") {
        alerts.smtp = smtp(check, node);
    }
    if let Some(node) = f.get("notify") {
        alerts.notify = channels(check, node, "in service", alerts.smtp.is_some());
    }
    if let Some(node) = f.set("metrics") {
        alerts.metrics = listen_address(check, node);
    }
    if let Some(node) = f.set("metrics_textfile") {
        let expected = "a file path, absolute or relative to the directory of jobs.yaml";
        if let Some(text) = check.text(node, "metrics_textfile in service", expected) {
            if text.trim().is_empty() {
                check.report(
                    node.pos,
                    format!("metrics_textfile in service is empty: expected {expected}"),
                );
            } else {
                alerts.metrics_textfile = Some(base_dir.join(text));
            }
        }
    }
    alerts
}

/// `service.metrics`: a socket address; anything but loopback gets a warning.
fn listen_address(check: &mut Checker, node: &Node) -> Option<SocketAddr> {
    let text = check.text(node, "metrics in service", EXPECT_LISTEN)?;
    let Ok(address) = text.trim().parse::<SocketAddr>() else {
        check.report(
            node.pos,
            format!("invalid metrics address {text:?} in service: expected {EXPECT_LISTEN}"),
        );
        return None;
    };
    if !address.ip().is_loopback() {
        check.warn(
            node.pos,
            format!(
                "metrics in service listens on {address}, beyond this host, and /metrics has no \
                 authentication: expected a loopback address such as 127.0.0.1:{} unless a \
                 firewall guards the port",
                address.port()
            ),
        );
    }
    Some(address)
}

/// `service.smtp`.
fn smtp(check: &mut Checker, node: &Node) -> Option<Smtp> {
    let ctx = "in service.smtp";
    let f = check.mapping(
        node,
        "smtp in service",
        "a mapping with url, and optionally user_env and password_env",
        SMTP_KEYS,
        ctx,
    )?;
    let url_node = check.required(&f, node, "url", ctx, EXPECT_SMTP_URL)?;
    let url = check.text(url_node, &format!("url {ctx}"), EXPECT_SMTP_URL)?;
    if !smtp_url_ok(&url) {
        check.report(
            url_node.pos,
            format!("invalid SMTP URL {url:?} {ctx}: expected {EXPECT_SMTP_URL}"),
        );
        return None;
    }
    let user = f
        .set("user_env")
        .and_then(|n| secret_env(check, n, "user_env", ctx));
    let password = f
        .set("password_env")
        .and_then(|n| secret_env(check, n, "password_env", ctx));
    Some(Smtp {
        url,
        user,
        password,
    })
}

/// Whether `url` is an SMTP URL jobtop can use: a known scheme and a host.
fn smtp_url_ok(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    matches!(parsed.scheme(), "smtp" | "smtps" | "smtp+starttls")
        && parsed.host_str().is_some_and(|h| !h.is_empty())
        && parsed.username().is_empty()
        && parsed.password().is_none()
}

/// `user_env`/`password_env`: the value of the variable named.
fn secret_env(check: &mut Checker, node: &Node, key: &str, ctx: &str) -> Option<Secret> {
    let expected = "the name of an environment variable, such as SMTP_PASSWORD";
    let var = check.text(node, &format!("{key} {ctx}"), expected)?;
    if !super::job::is_env_name(&var) {
        check.report(
            node.pos,
            format!(
                "invalid environment variable name {var:?} as {key} {ctx}: expected {expected}"
            ),
        );
        return None;
    }
    match std::env::var(&var) {
        Ok(value) if !value.is_empty() => Some(Secret::new(value)),
        _ if check.secrets_optional => None,
        _ => {
            check.report(
                node.pos,
                format!(
                    "{key} {ctx} names {var}, which is not set in jobtop's environment: expected \
                     {var} set before jobtop starts"
                ),
            );
            None
        }
    }
}

/// A list of channels (`notify:`); `notify: []` or `notify:` alone is none.
pub(super) fn channels(check: &mut Checker, node: &Node, ctx: &str, smtp: bool) -> Vec<Channel> {
    let what = format!("notify {ctx}");
    let items = check.list(
        node,
        &what,
        &format!("a list of channels, each {EXPECT_CHANNEL}"),
    );
    let mut channels = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let ctx = format!("in channel #{} of notify {ctx}", index + 1);
        if let Some(channel) = channel(check, item, &ctx, smtp) {
            channels.push(channel);
        }
    }
    channels
}

fn channel(check: &mut Checker, node: &Node, ctx: &str, smtp: bool) -> Option<Channel> {
    let f = check.mapping(
        node,
        &format!("channel {ctx}"),
        EXPECT_CHANNEL,
        CHANNEL_KEYS,
        ctx,
    )?;
    let kinds: Vec<&str> = ["webhook", "command", "email"]
        .into_iter()
        .filter(|k| f.get(k).is_some())
        .collect();
    if kinds.len() != 1 {
        let found = if kinds.is_empty() {
            "none of webhook, command and email".to_string()
        } else {
            kinds.join(" and ")
        };
        check.report(
            node.pos,
            format!("a channel {ctx} has {found}: expected exactly one"),
        );
        return None;
    }
    let on = events(check, &f, ctx);
    let timeout = match f.set("timeout") {
        Some(node) => match check.duration(node, "timeout", ctx)? {
            d if d.is_zero() => {
                check.report(
                    node.pos,
                    format!("timeout {ctx} is zero: expected a positive duration such as 10s"),
                );
                return None;
            }
            d => d,
        },
        None => DEFAULT_TIMEOUT,
    };
    if f.get("headers").is_some() && kinds[0] != "webhook" {
        check.report(
            node.pos,
            format!(
                "headers {ctx} belong to a webhook: expected no headers on a {}",
                kinds[0]
            ),
        );
    }
    let (label, target) = match kinds[0] {
        "webhook" => webhook(check, &f, ctx)?,
        "command" => command(check, &f, ctx)?,
        _ => email(check, &f, ctx, smtp)?,
    };
    Some(Channel {
        label,
        target,
        on,
        timeout,
    })
}

/// `on:`: default `failed` and `recovered`.
fn events(check: &mut Checker, f: &Fields<'_>, ctx: &str) -> Vec<NotifyEvent> {
    let Some(node) = f.set("on") else {
        return vec![NotifyEvent::Failed, NotifyEvent::Recovered];
    };
    let mut on = Vec::new();
    let expected = format!("a list of events: {EXPECT_EVENT}");
    for item in check.list(node, &format!("on {ctx}"), &expected) {
        let Some(word) = check.text(item, &format!("an event in on {ctx}"), EXPECT_EVENT) else {
            continue;
        };
        match NotifyEvent::from_word(&word) {
            Some(event) if !on.contains(&event) => on.push(event),
            Some(_) => {}
            None => check.report(
                item.pos,
                format!("unknown event {word:?} in on {ctx}: expected {EXPECT_EVENT}"),
            ),
        }
    }
    on
}

fn webhook(check: &mut Checker, f: &Fields<'_>, ctx: &str) -> Option<(String, Target)> {
    let expected = "an http:// or https:// URL";
    let node = f.set("webhook")?;
    let text = check.text(node, &format!("webhook {ctx}"), expected)?;
    let url = expand(check, node, &text, &format!("webhook {ctx}"))?;
    let parsed = url::Url::parse(&url).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    let Some(parsed) = parsed else {
        check.report(
            node.pos,
            format!("invalid webhook URL {text:?} {ctx}: expected {expected}"),
        );
        return None;
    };
    // Host and port only: a path or query may carry a token (Slack's hooks do).
    let label = match parsed.port() {
        Some(port) => format!("webhook:{}:{port}", parsed.host_str().unwrap_or_default()),
        None => format!("webhook:{}", parsed.host_str().unwrap_or_default()),
    };
    let mut headers = Vec::new();
    if let Some(node) = f.set("headers") {
        let what = format!("headers {ctx}");
        let expected = "a mapping of header names to values";
        if let Value::Map(entries) = &*node.value {
            for (key, value) in entries {
                let name = check.text(key, &format!("a header name in {what}"), expected);
                let Some(name) = name.filter(|n| http_token(n)) else {
                    check.report(
                        key.pos,
                        format!("invalid header name in {what}: expected {expected}"),
                    );
                    continue;
                };
                let Some(raw) = check.text(value, &format!("header {name} {ctx}"), "text") else {
                    continue;
                };
                if let Some(value) = expand(check, value, &raw, &format!("header {name} {ctx}")) {
                    headers.push((name, Secret::new(value)));
                }
            }
        } else {
            check.report(
                node.pos,
                format!("{what} is {}: expected {expected}", node.describe()),
            );
        }
    }
    Some((
        label,
        Target::Webhook {
            url: Secret::new(url),
            headers,
        },
    ))
}

/// Whether `name` is an HTTP header name.
fn http_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn command(check: &mut Checker, f: &Fields<'_>, ctx: &str) -> Option<(String, Target)> {
    let expected = "a list: the program (an absolute path or a name on PATH) and its arguments";
    let node = f.set("command")?;
    let items = check.list(node, &format!("command {ctx}"), expected);
    let mut argv = Vec::new();
    for item in items {
        let raw = check.text(item, &format!("an argument of command {ctx}"), "text")?;
        argv.push(Secret::new(expand(
            check,
            item,
            &raw,
            &format!("command {ctx}"),
        )?));
    }
    let Some(program) = argv.first() else {
        check.report(
            node.pos,
            format!("command {ctx} is empty: expected {expected}"),
        );
        return None;
    };
    let name = Path::new(program.expose())
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Some((format!("command:{name}"), Target::Command { argv }))
}

fn email(check: &mut Checker, f: &Fields<'_>, ctx: &str, smtp: bool) -> Option<(String, Target)> {
    let node = f.set("email")?;
    let expected = "a mapping with to: [addresses] and from: address";
    let ctx = format!("email {ctx}");
    let m = check.mapping(node, &ctx, expected, EMAIL_KEYS, &format!("in {ctx}"))?;
    let address = |check: &mut Checker, node: &Node, what: &str| {
        let text = check.text(node, what, EXPECT_ADDRESS)?;
        if text.parse::<lettre::Address>().is_err() {
            check.report(
                node.pos,
                format!("invalid mail address {text:?} as {what}: expected {EXPECT_ADDRESS}"),
            );
            return None;
        }
        Some(text)
    };
    let to_node = check.required(&m, node, "to", &format!("in {ctx}"), "a list of addresses")?;
    let mut to = Vec::new();
    let items = match &*to_node.value {
        Value::Seq(items) => items.as_slice(),
        _ => std::slice::from_ref(to_node),
    };
    for item in items {
        to.extend(address(check, item, &format!("to in {ctx}")));
    }
    let from_node = check.required(&m, node, "from", &format!("in {ctx}"), EXPECT_ADDRESS)?;
    let from = address(check, from_node, &format!("from in {ctx}"))?;
    if to.is_empty() {
        check.report(
            to_node.pos,
            format!("to in {ctx} is empty: expected at least one address"),
        );
        return None;
    }
    if !smtp {
        check.report(
            node.pos,
            format!(
                "{ctx} needs a mail server: expected service.smtp, such as \
                 smtp: {{url: \"smtp://127.0.0.1:25\"}}"
            ),
        );
        return None;
    }
    let label = format!("email:{}", to.join(","));
    Some((label, Target::Email { to, from }))
}

/// `text` with each `${NAME}` replaced by the variable's value; an unset variable or a
/// malformed reference is reported at `node`.
fn expand(check: &mut Checker, node: &Node, text: &str, what: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            check.report(
                node.pos,
                format!(
                    "unclosed ${{ in {what}: expected ${{NAME}} naming an environment variable"
                ),
            );
            return None;
        };
        let name = &after[..end];
        if !super::job::is_env_name(name) {
            check.report(
                node.pos,
                format!(
                    "invalid variable reference ${{{name}}} in {what}: expected ${{NAME}} with \
                     letters, digits and '_'"
                ),
            );
            return None;
        }
        match std::env::var(name) {
            Ok(value) => out.push_str(&value),
            Err(_) if check.secrets_optional => {}
            Err(_) => {
                check.report(
                    node.pos,
                    format!(
                        "{what} uses ${{{name}}}, which is not set in jobtop's environment: \
                         expected {name} set before jobtop starts"
                    ),
                );
                return None;
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}
