//! What a job asked `core.network` to send: the URL, method, headers, body and timeout, read
//! from the arguments of `request`, `get`, `post`, `getJson` and `postJson` and checked, with
//! an error that names the bad argument and says what was expected.

use std::time::Duration;

use mlua::{Lua, Value};
use ureq::http::{HeaderName, HeaderValue, Uri};

use crate::runtime::ops::args::{Options, describe, pairs, timeout};
use crate::runtime::ops::json::encode;

/// The methods a request may use.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// The options `request` knows.
const OPTIONS: [&str; 4] = ["method", "headers", "body", "timeout"];

/// What a job asked for.
pub(super) struct Request {
    /// The method, in capitals.
    pub method: String,
    /// The URL as written, for messages.
    pub url: String,
    pub uri: Uri,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<Vec<u8>>,
    /// The `timeout` option, if given.
    pub timeout: Option<Duration>,
}

/// A body given to `post`/`postJson`.
pub(super) enum PostBody {
    /// Bytes sent as they are.
    Text(Vec<u8>),
    /// JSON text, sent with `content-type: application/json`.
    Json(Vec<u8>),
}

/// The body argument of `post` and `postJson`: none, a string, or a table sent as JSON.
pub(super) fn post_body(lua: &Lua, body: &Value) -> Result<PostBody, String> {
    match body {
        Value::Nil => Ok(PostBody::Text(Vec::new())),
        Value::String(text) => Ok(PostBody::Text(text.as_bytes().to_vec())),
        Value::Table(_) => encode(lua, body)
            .map(|text| PostBody::Json(text.into_bytes()))
            .map_err(|e| format!("body: {e}")),
        other => Err(format!(
            "body is {}: expected a string, or a table to send as JSON",
            describe(other)
        )),
    }
}

/// The request of `get`, `post`, `getJson` and `postJson`.
pub(super) fn simple(
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
pub(super) fn parse_request(lua: &Lua, url: &Value, opts: &Value) -> Result<Request, String> {
    let (url, uri) = parse_url(url)?;
    let mut opts = Options::read(opts, &OPTIONS)?;
    let method = match opts.take("method") {
        Some(method) => parse_method(&method)?,
        None => "GET".to_string(),
    };
    let mut headers = match opts.take("headers") {
        Some(headers) => parse_headers(&headers)?,
        None => Vec::new(),
    };
    let body = match opts.take("body") {
        None => None,
        Some(Value::String(text)) => Some(text.as_bytes().to_vec()),
        Some(table @ Value::Table(_)) => {
            let text = encode(lua, &table).map_err(|e| format!("option body: {e}"))?;
            default_header(&mut headers, "content-type", "application/json");
            Some(text.into_bytes())
        }
        Some(other) => {
            return Err(format!(
                "option body is {}: expected a string, or a table to send as JSON",
                describe(&other)
            ));
        }
    };
    let timeout = opts
        .take("timeout")
        .map(|t| timeout("option timeout", &t))
        .transpose()?;
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
            describe(url)
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
            describe(value)
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

fn parse_headers(value: &Value) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut headers = Vec::new();
    let expected = "a table of name = value strings";
    for pair in pairs(value, "headers are", expected)? {
        let (name, value) = pair?;
        let Value::String(name) = &name else {
            return Err(format!(
                "headers has a name that is {}: expected {expected}",
                describe(&name)
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
                    describe(other)
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
