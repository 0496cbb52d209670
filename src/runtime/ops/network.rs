//! `core.network`: HTTP and HTTPS requests from job files.
//!
//! `request(url, {method, headers, body, timeout})` returns `{status, headers, body}` for any
//! HTTP status (a 404 or a 500 is a response too), or `nil, err` when no response came: the host
//! is unknown, the connection was refused, TLS failed, the time ran out, there were more than
//! [`MAX_REDIRECTS`](client::MAX_REDIRECTS) redirects, the body was over
//! [`MAX_BODY`](client::MAX_BODY), or the URL or an option was bad. `get`, `post`, `getJson`
//! and `postJson` are shorthands; the `Json` ones return the decoded body and also fail on a
//! status that is not 2xx and on a body that is not JSON.
//!
//! Requests go through one shared `ureq` agent (rustls with the bundled web PKI roots, a pool
//! of keep-alive connections, `HTTP(S)_PROXY`/`NO_PROXY` honoured except for loopback hosts).
//!
//! Time: a request gets at most the smaller of its `timeout` option and what is left of the
//! run's own timeout, enforced twice: by `ureq`'s end-to-end timeout (DNS, connect, TLS,
//! redirects and the body), and by the run's thread, which waits for the request on a helper
//! thread in slices of [`POLL`](client::POLL) and gives up on its own once that time is over.
//! So a request never keeps a run past its deadline by more than about one slice, and an
//! operator's abort (or the service's shutdown) ends the wait within one slice too: the call
//! returns `nil, err` at once and the run then stops. The helper thread cannot be interrupted
//! inside a blocking read; it is left to finish on its own and ends, at the latest, when its
//! own timeout expires (the run's remaining time when the request started), dropping
//! whatever it got.
//!
//! This file is the functions and the shapes of their results; `request` reads what the job
//! asked for, `client` sends it within the time and size limits.

mod client;
mod request;

use mlua::{Lua, MultiValue, Table, Value};

use self::client::{Budget, Response, perform};
use self::request::{PostBody, Request, parse_request, post_body, simple};
use super::json::decode;
use super::{context, fail};
use crate::config::Capability;

/// How much of an unexpected body a `getJson`/`postJson` failure quotes.
const QUOTE: usize = 200;

/// Registers `core.network`.
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
    let budget = Budget::new(request.timeout, remaining);
    let response = match perform(request, budget, &control, &label) {
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

/// The start of a body, quoted, for messages.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut cut: String = text.chars().take(QUOTE).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}
