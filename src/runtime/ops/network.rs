//! `core.network`: HTTP and HTTPS requests from job files.
//!
//! `request(url, {method, headers, body, timeout})` returns `{status, headers, body}` for any
//! HTTP status (a 404 or a 500 is a response too), or `nil, err` when no response came: the host
//! is unknown, the connection was refused, TLS failed, the time ran out, there were more than
//! [`MAX_REDIRECTS`] redirects, the body was over [`MAX_BODY`], or the URL or an option was
//! bad. `get`, `post`, `getJson` and `postJson` are shorthands; the `Json` ones return the
//! decoded body and also fail on a status that is not 2xx and on a body that is not JSON.
//!
//! Requests go through one shared `ureq` agent (rustls with the bundled web PKI roots, a pool
//! of keep-alive connections, `HTTP(S)_PROXY`/`NO_PROXY` honoured except for loopback hosts).
//!
//! Time: a request gets at most the smaller of its `timeout` option and what is left of the
//! run's own timeout, enforced twice: by `ureq`'s end-to-end timeout (DNS, connect, TLS,
//! redirects and the body), and by the run's thread, which waits for the request on a helper
//! thread in slices of [`POLL`] and gives up on its own once that time is over. So a request
//! never keeps a run past its deadline by more than about one slice, and an operator's abort (or
//! the service's shutdown) ends the wait within one slice too: the call returns `nil, err` at
//! once and the run then stops. The helper thread cannot be interrupted inside a blocking read;
//! it is left to finish on its own and ends, at the latest, when its own timeout expires (the
//! run's remaining time when the request started), dropping whatever it got.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use mlua::{Lua, MultiValue, Table, Value};
use ureq::Agent;
use ureq::http::{self, HeaderName, HeaderValue, Uri};

use super::json::{decode, encode};
use super::{context, fail};
use crate::config::Capability;
use crate::runtime::limits::{RunControl, StopReason};

/// Redirects followed before a request fails.
const MAX_REDIRECTS: u32 = 5;
/// Largest response body kept; a larger one fails the request.
const MAX_BODY: u64 = 8 << 20;
/// How often the run's thread checks its stop flag while a request is under way.
const POLL: Duration = Duration::from_millis(20);
/// Longest `timeout` option accepted; the run's own timeout bounds it anyway.
const MAX_TIMEOUT_SECS: f64 = 86_400.0;
/// The methods a request may use.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// The options `request` knows, for messages.
const OPTIONS: &str = "method, headers, body or timeout";
/// How much of an unexpected body a `getJson`/`postJson` failure quotes.
const QUOTE: usize = 200;

/// What a job asked for.
struct Request {
    method: String,
    url: String,
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

/// What came back.
struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// The time a request may take and where that limit comes from, for messages.
#[derive(Clone, Copy)]
struct Budget {
    limit: Duration,
    from_option: bool,
}

/// The agent every request goes through: statuses are responses, redirects bounded.
fn agent() -> &'static Agent {
    static AGENT: OnceLock<Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(MAX_REDIRECTS)
            .max_redirects_will_error(true)
            .user_agent(concat!("jobtop/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent()
    })
}

pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    let network = lua.create_table()?;
    network.raw_set(
        "request",
        lua.create_function(|lua, (url, opts): (Value, Value)| {
            call(lua, "core.network.request", false, || {
                parse_request(lua, &url, &opts)
            })
        })?,
    )?;
    network.raw_set(
        "get",
        lua.create_function(|lua, (url, headers): (Value, Value)| {
            call(lua, "core.network.get", false, || {
                simple("GET", &url, &headers, None, false)
            })
        })?,
    )?;
    network.raw_set(
        "post",
        lua.create_function(|lua, (url, body, headers): (Value, Value, Value)| {
            call(lua, "core.network.post", false, || {
                let body = post_body(lua, &body)?;
                simple("POST", &url, &headers, Some(body), false)
            })
        })?,
    )?;
    network.raw_set(
        "getJson",
        lua.create_function(|lua, (url, headers): (Value, Value)| {
            call(lua, "core.network.getJson", true, || {
                simple("GET", &url, &headers, None, true)
            })
        })?,
    )?;
    network.raw_set(
        "postJson",
        lua.create_function(|lua, (url, body, headers): (Value, Value, Value)| {
            call(lua, "core.network.postJson", true, || {
                let body = post_body(lua, &body)?;
                // A string body of postJson is taken to be JSON text already; no body is
                // sent as none.
                let body = match body {
                    PostBody::Text(bytes) if bytes.is_empty() => PostBody::Text(bytes),
                    PostBody::Text(bytes) | PostBody::Json(bytes) => PostBody::Json(bytes),
                };
                simple("POST", &url, &headers, Some(body), true)
            })
        })?,
    )?;
    network.set_readonly(true);
    core.raw_set("network", network)
}

/// Checks the grant and the time left, builds the request, runs it and shapes the result:
/// the response table, or (with `json`) the decoded body of a 2xx response.
fn call(
    lua: &Lua,
    what: &str,
    json: bool,
    build: impl FnOnce() -> Result<Request, String>,
) -> mlua::Result<MultiValue> {
    let (control, remaining) = {
        let ops = context(lua)?;
        if let Err(denied) = ops.require(Capability::Network, what) {
            return fail(lua, denied);
        }
        (ops.control.clone(), ops.remaining())
    };
    let request = match build() {
        Ok(request) => request,
        Err(message) => return fail(lua, format!("{what}: {message}")),
    };
    let label = format!("{what}: {} {}", request.method, request.url);
    let response = match perform(request_with_budget(request, remaining), &control, &label) {
        Ok(response) => response,
        Err(message) => return fail(lua, message),
    };
    if json {
        return json_body(lua, &response, &label);
    }
    Ok(MultiValue::from_iter([Value::Table(response_table(
        lua, response,
    )?)]))
}

/// Pairs the request with the time it may take.
fn request_with_budget(request: Request, remaining: Duration) -> (Request, Budget) {
    let budget = match request.timeout {
        Some(timeout) if timeout < remaining => Budget {
            limit: timeout,
            from_option: true,
        },
        _ => Budget {
            limit: remaining,
            from_option: false,
        },
    };
    (request, budget)
}

/// A body given to `post`/`postJson`.
enum PostBody {
    /// Bytes sent as they are.
    Text(Vec<u8>),
    /// JSON text, sent with `content-type: application/json`.
    Json(Vec<u8>),
}

fn post_body(lua: &Lua, body: &Value) -> Result<PostBody, String> {
    match body {
        Value::Nil => Ok(PostBody::Text(Vec::new())),
        Value::String(text) => Ok(PostBody::Text(text.as_bytes().to_vec())),
        Value::Table(_) => encode(lua, body)
            .map(|text| PostBody::Json(text.into_bytes()))
            .map_err(|e| format!("body: {e}")),
        other => Err(format!(
            "body is {}: expected a string, or a table to send as JSON",
            a(other.type_name())
        )),
    }
}

/// The request of `get`, `post`, `getJson` and `postJson`.
fn simple(
    method: &str,
    url: &Value,
    headers: &Value,
    body: Option<PostBody>,
    json: bool,
) -> Result<Request, String> {
    let (url, uri) = parse_url(url)?;
    let mut headers = parse_headers(headers)?;
    let body = body.map(|body| match body {
        PostBody::Text(bytes) => bytes,
        PostBody::Json(bytes) => {
            default_header(&mut headers, "content-type", "application/json");
            bytes
        }
    });
    if json {
        default_header(&mut headers, "accept", "application/json");
    }
    Ok(Request {
        method: method.to_string(),
        url,
        uri,
        headers,
        body,
        timeout: None,
    })
}

/// Adds `name: value` unless the job set that header itself.
fn default_header(
    headers: &mut Vec<(HeaderName, HeaderValue)>,
    name: &'static str,
    value: &'static str,
) {
    let name = HeaderName::from_static(name);
    if !headers.iter().any(|(n, _)| *n == name) {
        headers.push((name, HeaderValue::from_static(value)));
    }
}

/// The request of `request(url, opts)`.
fn parse_request(lua: &Lua, url: &Value, opts: &Value) -> Result<Request, String> {
    let (url, uri) = parse_url(url)?;
    let mut method = "GET".to_string();
    let mut headers = Vec::new();
    let mut body = None;
    let mut json_body = false;
    let mut timeout = None;
    match opts {
        Value::Nil => {}
        Value::Table(opts) => {
            for pair in opts.pairs::<Value, Value>() {
                let (key, value) = pair.map_err(|e| format!("options: {e}"))?;
                let Value::String(key) = &key else {
                    return Err(format!(
                        "options: {} key: expected {OPTIONS}",
                        a(key.type_name())
                    ));
                };
                match key.to_string_lossy().as_str() {
                    "method" => method = parse_method(&value)?,
                    "headers" => headers = parse_headers(&value)?,
                    "body" => match &value {
                        Value::Nil => {}
                        Value::String(text) => body = Some(text.as_bytes().to_vec()),
                        Value::Table(_) => {
                            let text =
                                encode(lua, &value).map_err(|e| format!("option body: {e}"))?;
                            body = Some(text.into_bytes());
                            json_body = true;
                        }
                        other => {
                            return Err(format!(
                                "option body is {}: expected a string, or a table to send as JSON",
                                a(other.type_name())
                            ));
                        }
                    },
                    "timeout" => timeout = parse_timeout(&value)?,
                    other => return Err(format!("unknown option {other:?}: expected {OPTIONS}")),
                }
            }
            if json_body {
                default_header(&mut headers, "content-type", "application/json");
            }
        }
        other => {
            return Err(format!(
                "options are {}: expected a table with {OPTIONS}",
                a(other.type_name())
            ));
        }
    }
    if body.is_some() && (method == "GET" || method == "HEAD") {
        return Err(format!(
            "a {method} request cannot have a body: expected method POST, PUT, PATCH, DELETE or OPTIONS"
        ));
    }
    Ok(Request {
        method,
        url,
        uri,
        headers,
        body,
        timeout,
    })
}

fn parse_url(url: &Value) -> Result<(String, Uri), String> {
    let Value::String(text) = url else {
        return Err(format!(
            "the URL is {}: expected an http:// or https:// URL as a string",
            a(url.type_name())
        ));
    };
    let text = text.to_string_lossy();
    let bad = || format!("bad URL {text:?}: expected an absolute http:// or https:// URL");
    let uri: Uri = text.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|host| !host.is_empty());
    if !scheme_ok || !host_ok {
        return Err(bad());
    }
    Ok((text, uri))
}

fn parse_method(value: &Value) -> Result<String, String> {
    let expected = METHODS.join(", ");
    let Value::String(text) = value else {
        return Err(format!(
            "option method is {}: expected one of {expected}",
            a(value.type_name())
        ));
    };
    let method = text.to_string_lossy().to_ascii_uppercase();
    if METHODS.contains(&method.as_str()) {
        Ok(method)
    } else {
        Err(format!(
            "unknown method {:?}: expected one of {expected}",
            text.to_string_lossy()
        ))
    }
}

fn parse_timeout(value: &Value) -> Result<Option<Duration>, String> {
    #[allow(clippy::cast_precision_loss)]
    let seconds = match value {
        Value::Nil => return Ok(None),
        Value::Integer(n) => *n as f64,
        Value::Number(n) => *n,
        other => {
            return Err(format!(
                "option timeout is {}: expected a number of seconds above 0",
                a(other.type_name())
            ));
        }
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!(
            "option timeout is {seconds}: expected a number of seconds above 0"
        ));
    }
    Duration::try_from_secs_f64(seconds.min(MAX_TIMEOUT_SECS))
        .map(Some)
        .map_err(|e| format!("option timeout is {seconds}: {e}"))
}

fn parse_headers(value: &Value) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let table = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Table(table) => table,
        other => {
            return Err(format!(
                "headers are {}: expected a table of name = value strings",
                a(other.type_name())
            ));
        }
    };
    let mut headers = Vec::new();
    for pair in table.pairs::<Value, Value>() {
        let (name, value) = pair.map_err(|e| format!("headers: {e}"))?;
        let Value::String(name) = &name else {
            return Err(format!(
                "headers: {} name: expected a table of name = value strings",
                a(name.type_name())
            ));
        };
        let shown = name.to_string_lossy();
        let name = HeaderName::from_bytes(&name.as_bytes())
            .map_err(|_| format!("header name {shown:?} is not a valid HTTP header name"))?;
        let value = match &value {
            Value::String(text) => HeaderValue::from_bytes(&text.as_bytes()),
            Value::Integer(n) => HeaderValue::from_str(&n.to_string()),
            Value::Number(n) => HeaderValue::from_str(&n.to_string()),
            Value::Boolean(b) => HeaderValue::from_str(if *b { "true" } else { "false" }),
            other => {
                return Err(format!(
                    "header {shown} is {}: expected a string",
                    a(other.type_name())
                ));
            }
        }
        .map_err(|_| {
            format!("header {shown} has a value that is not valid in HTTP (a line break?)")
        })?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// Runs the request on a helper thread and waits for it, giving way to the run's timeout and
/// abort (see the module's comment).
fn perform(
    (request, budget): (Request, Budget),
    control: &RunControl,
    label: &str,
) -> Result<Response, String> {
    if let Some(reason) = control.stopped() {
        return Err(stopped_message(label, reason));
    }
    if budget.limit.is_zero() {
        control.stop(StopReason::Timeout);
        return Err(format!(
            "{label}: no time left: the run's timeout has passed"
        ));
    }
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("jobtop-http".into())
        .spawn(move || {
            let _ = tx.send(exchange(&request, budget));
        })
        .map_err(|e| format!("{label}: cannot start the request: {e}"))?;
    loop {
        match rx.recv_timeout(POLL) {
            Ok(result) => return result.map_err(|e| format!("{label}: {e}")),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(format!("{label}: the request ended without an answer"));
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some(reason) = control.stopped() {
                    return Err(stopped_message(label, reason));
                }
                if started.elapsed() >= budget.limit {
                    if !budget.from_option {
                        // The run's own time is over: stop it now rather than when the
                        // watchdog wakes, so that it cannot go on past its deadline.
                        control.stop(StopReason::Timeout);
                    }
                    return Err(format!("{label}: {}", timed_out(budget)));
                }
            }
        }
    }
}

fn stopped_message(label: &str, reason: StopReason) -> String {
    let why = match reason {
        StopReason::Timeout => "the run's timeout has passed",
        StopReason::Memory => "the run passed its memory limit",
        StopReason::Aborted => "the run was aborted",
        StopReason::Shutdown => "the service is shutting down",
    };
    format!("{label}: cut short: {why}")
}

fn timed_out(budget: Budget) -> String {
    let seconds = seconds(budget.limit);
    if budget.from_option {
        format!("timed out after {seconds} (its timeout option): expected a response within it")
    } else {
        format!(
            "timed out after {seconds}, the time left of the run's timeout: expected a response within it"
        )
    }
}

/// `0.3s`, `2s`, `1.25s`.
fn seconds(duration: Duration) -> String {
    let text = format!("{:.3}", duration.as_secs_f64());
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}s")
}

/// Whether `uri` names this machine, which is never reached through a proxy.
fn is_loopback(uri: &Uri) -> bool {
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// One request and its response body, on the helper thread.
fn exchange(request: &Request, budget: Budget) -> Result<Response, String> {
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.uri.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let agent = agent();
    let result = match &request.body {
        Some(body) => {
            let built = builder
                .body(body.clone())
                .map_err(|e| format!("invalid request: {e}"))?;
            send(agent, built, &request.uri, budget)
        }
        None => {
            let built = builder
                .body(())
                .map_err(|e| format!("invalid request: {e}"))?;
            send(agent, built, &request.uri, budget)
        }
    };
    let mut response = result.map_err(|e| describe(&e, &request.uri, budget))?;
    let status = response.status().as_u16();
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, value) in response.headers() {
        // `http` keeps header names in lower case; repeated headers are joined with ", ".
        let name = name.as_str().to_ascii_lowercase();
        if let Some((_, joined)) = headers.iter_mut().find(|(n, _)| *n == name) {
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(value.as_bytes());
        } else {
            headers.push((name, value.as_bytes().to_vec()));
        }
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => format!(
                "response body larger than {} MiB: expected at most {} MiB",
                MAX_BODY >> 20,
                MAX_BODY >> 20
            ),
            other => format!(
                "reading the response body (HTTP {status}) failed: {}",
                describe(&other, &request.uri, budget)
            ),
        })?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn send<S: ureq::AsSendBody>(
    agent: &Agent,
    request: http::Request<S>,
    uri: &Uri,
    budget: Budget,
) -> Result<http::Response<ureq::Body>, ureq::Error> {
    let mut config = agent
        .configure_request(request)
        .timeout_global(Some(budget.limit));
    if is_loopback(uri) {
        config = config.proxy(None);
    }
    agent.run(config.build())
}

/// What went wrong, and what was expected.
fn describe(error: &ureq::Error, uri: &Uri, budget: Budget) -> String {
    let host = uri.host().unwrap_or("");
    let authority = uri.authority().map_or(host, http::uri::Authority::as_str);
    match error {
        ureq::Error::Timeout(_) => timed_out(budget),
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => timed_out(budget),
        ureq::Error::HostNotFound => {
            format!("cannot resolve host {host}: expected a host name DNS knows")
        }
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused by {authority}: expected a server listening there")
        }
        // rustls reports a failed handshake (a bad certificate, a server that does not speak
        // TLS) as invalid data on the stream.
        ureq::Error::Io(e)
            if e.kind() == std::io::ErrorKind::InvalidData && uri.scheme_str() == Some("https") =>
        {
            format!(
                "TLS failed with {authority}: {e}: expected an HTTPS server with a certificate valid for {host}"
            )
        }
        ureq::Error::Io(e) => format!("network error talking to {authority}: {e}"),
        ureq::Error::TooManyRedirects => format!(
            "too many redirects (more than {MAX_REDIRECTS}): expected a final response within {MAX_REDIRECTS}"
        ),
        ureq::Error::RedirectFailed => "the server answered a request with a body with a \
             307/308 redirect, which is not followed: expected the final URL"
            .to_string(),
        ureq::Error::BadUri(e) => {
            format!("bad URL ({e}): expected an absolute http:// or https:// URL")
        }
        ureq::Error::Tls(e) => {
            format!(
                "TLS failed with {authority}: {e}: expected an HTTPS server with a certificate valid for {host}"
            )
        }
        ureq::Error::Rustls(e) => {
            format!(
                "TLS failed with {authority}: {e}: expected an HTTPS server with a certificate valid for {host}"
            )
        }
        ureq::Error::Protocol(e) => {
            format!("the answer of {authority} is not valid HTTP/1.1: {e}")
        }
        ureq::Error::LargeResponseHeader(..) => {
            format!("the response headers of {authority} are too large: expected at most 64 KiB")
        }
        ureq::Error::BodyExceedsLimit(_) => {
            "the request body does not match its content-length header: expected no \
             content-length header, or a matching one"
                .to_string()
        }
        ureq::Error::Http(e) => format!("invalid request: {e}"),
        other => format!("request failed: {other}"),
    }
}

/// `{status = n, headers = {name = value}, body = string}`.
fn response_table(lua: &Lua, response: Response) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("status", response.status)?;
    let headers = lua.create_table()?;
    for (name, value) in response.headers {
        headers.raw_set(name, lua.create_string(&value)?)?;
    }
    table.raw_set("headers", headers)?;
    table.raw_set("body", lua.create_string(&response.body)?)?;
    Ok(table)
}

/// The decoded body of a 2xx response, or `nil, err`.
fn json_body(lua: &Lua, response: &Response, label: &str) -> mlua::Result<MultiValue> {
    if !(200..300).contains(&response.status) {
        return fail(
            lua,
            format!(
                "{label}: HTTP {} (body {}): expected a 2xx status",
                response.status,
                quote(&response.body)
            ),
        );
    }
    let text = String::from_utf8_lossy(&response.body);
    if text.trim().is_empty() {
        return fail(
            lua,
            format!(
                "{label}: HTTP {} with an empty body: expected a JSON document",
                response.status
            ),
        );
    }
    match decode(lua, &text) {
        Ok(value) => Ok(MultiValue::from_iter([value])),
        Err(e) => fail(
            lua,
            format!(
                "{label}: the response body {} is not JSON: {e}",
                quote(&response.body)
            ),
        ),
    }
}

/// `a string`, `a number`, `a table`: the type as Lua's `type()` names it.
fn a(name: &str) -> String {
    let name = if name == "integer" { "number" } else { name };
    if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {name}")
    } else {
        format!("a {name}")
    }
}

/// The start of a body, quoted, for messages.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut cut: String = text.chars().take(QUOTE).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}
