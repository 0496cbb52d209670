//! `core.network` against a real HTTP server started by each test on 127.0.0.1, with real job
//! files run through the runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use common::runner::{allowing, job_source, request, runner, write_job};
use common::servers::free_port;
use common::servers::http::{Answer, HttpReceiver, Reply};
use jobtop::config::Capability;
use jobtop::job::RunResult;
use jobtop::runtime::{LocalZone, RunControl, RunOutcome, RunRequest};

/// The HTTP receiver of `tests/common/servers/http.rs` answering canned paths.
fn server() -> HttpReceiver {
    let http = HttpReceiver::start();
    http.answer(Reply::status(404).body(b"no such path"));
    http.route(
        "/ok",
        Reply::status(200)
            .header("Content-Type", "text/plain")
            .header("X-Custom", "yes")
            .body(b"hello"),
    );
    http.route(
        "/json",
        Reply::status(200)
            .header("Content-Type", "application/json")
            .body(br#"{"name":"jobtop","n":3,"list":[1,2,3],"nested":{"ok":true}}"#),
    );
    http.route("/missing", Reply::status(404).body(b"not here"));
    http.route("/empty", Reply::status(204));
    http.route("/boom", Reply::status(500).body(b"boom"));
    http.route(
        "/slow",
        Reply::status(200)
            .body(b"late")
            .after(Duration::from_secs(3)),
    );
    http.route("/huge", Reply::status(200).body(&vec![b'x'; 9 << 20]));
    http.route("/redirect", Reply::status(302).header("Location", "/ok"));
    http.route("/loop", Reply::status(302).header("Location", "/loop"));
    http.route(
        "/echo",
        Answer::with(|request| {
            Reply::json(
                200,
                &serde_json::json!({
                    "method": request.method,
                    "headers": request.headers,
                    "body": request.text(),
                }),
            )
        }),
    );
    http
}

/// A job file whose `run` is `body` (with `BASE` replaced by the server's URL) and then returns
/// `job.OK`. `show(label, result, err)` logs a response or a failure.
fn net_job(base: &str, body: &str) -> String {
    let head = format!(
        r#"local job = core.job()
local BASE = "{base}"
local function show(label, r, err)
  if r == nil then
    core.log(label, "nil", err)
  else
    core.log(label, r.status, r.body)
  end
end
"#
    );
    job_source(&head, body)
}

struct Run {
    control: RunControl,
    timeout: Duration,
    allow: Vec<Capability>,
}

impl Default for Run {
    fn default() -> Run {
        Run {
            control: RunControl::new(),
            timeout: Duration::from_secs(5),
            allow: vec![Capability::Network],
        }
    }
}

fn run_with(server: &HttpReceiver, body: &str, run: Run) -> RunOutcome {
    let dir = tempfile::tempdir().unwrap();
    let file = write_job(dir.path(), "net.lua", &net_job(&server.url(), body));
    let request = RunRequest {
        zone: LocalZone::Named(chrono_tz::UTC),
        timeout: run.timeout,
        memory: 64 << 20,
        control: run.control,
        ..request(file, "jobs/net.lua", allowing("net", run.allow))
    };
    runner().run(&request)
}

/// Runs `body` with network allowed and a 5 s timeout; the run must end `ok`.
fn run_ok(server: &HttpReceiver, body: &str) -> Vec<String> {
    let outcome = run_with(server, body, Run::default());
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    outcome.logs
}

/// The one log line starting with `label` and a tab, without the label.
fn line<'a>(logs: &'a [String], label: &str) -> &'a str {
    let prefix = format!("{label}\t");
    let found: Vec<_> = logs.iter().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(found.len(), 1, "{label}: {logs:?}");
    &found[0][prefix.len()..]
}

/// The error of a line logged as `label nil err`.
fn error<'a>(logs: &'a [String], label: &str) -> &'a str {
    let rest = line(logs, label);
    rest.strip_prefix("nil\t")
        .unwrap_or_else(|| panic!("{label}: expected nil, err: {rest}"))
}

#[test]
fn request_returns_status_headers_and_body() {
    let server = server();
    let logs = run_ok(
        &server,
        r#"
  local r = core.network.request(BASE .. "/ok")
  core.log("ok", r.status, r.body, r.headers["x-custom"], r.headers["content-type"], r.headers["X-Custom"])
  local h = core.network.request(BASE .. "/ok", {method = "head"})
  core.log("head", h.status, #h.body)
  local e = core.network.request(BASE .. "/echo", {
    method = "PUT",
    headers = {["X-Token"] = "abc", ["X-Number"] = 7},
    body = "raw text",
    timeout = 2,
  })
  local echo = core.json.decode(e.body)
  core.log("put", e.status, echo.method, echo.headers["x-token"], echo.headers["x-number"], echo.body)
  local t = core.network.request(BASE .. "/echo", {method = "DELETE", body = {id = 5}})
  local echo2 = core.json.decode(t.body)
  core.log("delete", echo2.method, echo2.headers["content-type"], echo2.body)
"#,
    );
    assert_eq!(line(&logs, "ok"), "200\thello\tyes\ttext/plain\tnil");
    assert_eq!(line(&logs, "head"), "200\t0");
    assert_eq!(line(&logs, "put"), "200\tPUT\tabc\t7\traw text");
    assert_eq!(
        line(&logs, "delete"),
        "DELETE\tapplication/json\t{\"id\":5}"
    );
}

#[test]
fn statuses_404_and_500_are_responses() {
    let server = server();
    let logs = run_ok(
        &server,
        r#"
  show("missing", core.network.get(BASE .. "/missing"))
  show("boom", core.network.get(BASE .. "/boom"))
  show("req404", core.network.request(BASE .. "/missing", {method = "GET"}))
  show("post500", core.network.post(BASE .. "/boom", "x"))
"#,
    );
    assert_eq!(line(&logs, "missing"), "404\tnot here");
    assert_eq!(line(&logs, "boom"), "500\tboom");
    assert_eq!(line(&logs, "req404"), "404\tnot here");
    assert_eq!(line(&logs, "post500"), "500\tboom");
}

#[test]
fn get_sends_headers_and_receives_them() {
    let server = server();
    let logs = run_ok(
        &server,
        r#"
  local r = core.network.get(BASE .. "/ok")
  core.log("get", r.status, r.body, r.headers["x-custom"])
  local e = core.network.get(BASE .. "/echo", {["X-Token"] = "secret", Accept = "text/plain"})
  local echo = core.json.decode(e.body)
  core.log("sent", echo.method, echo.headers["x-token"], echo.headers["accept"], echo.body)
  core.log("agent", string.sub(echo.headers["user-agent"], 1, 7))
"#,
    );
    assert_eq!(line(&logs, "get"), "200\thello\tyes");
    assert_eq!(line(&logs, "sent"), "GET\tsecret\ttext/plain\t");
    assert_eq!(line(&logs, "agent"), "jobtop/");
}

#[test]
fn post_sends_tables_as_json_and_strings_as_is() {
    let server = server();
    let logs = run_ok(
        &server,
        r#"
  local r = core.network.post(BASE .. "/echo", {name = "x", list = {1, 2}})
  local echo = core.json.decode(r.body)
  local sent = core.json.decode(echo.body)
  core.log("table", r.status, echo.method, echo.headers["content-type"], sent.name, #sent.list)
  local s = core.network.post(BASE .. "/echo", "a=1&b=2", {["Content-Type"] = "application/x-www-form-urlencoded"})
  local echo2 = core.json.decode(s.body)
  core.log("string", echo2.body, echo2.headers["content-type"])
  local p = core.network.post(BASE .. "/echo", "plain")
  local echo3 = core.json.decode(p.body)
  core.log("plain", echo3.body, tostring(echo3.headers["content-type"]))
"#,
    );
    assert_eq!(line(&logs, "table"), "200\tPOST\tapplication/json\tx\t2");
    assert_eq!(
        line(&logs, "string"),
        "a=1&b=2\tapplication/x-www-form-urlencoded"
    );
    assert_eq!(line(&logs, "plain"), "plain\tnil");
}

#[test]
fn get_json_and_post_json_decode_the_body() {
    let server = server();
    let logs = run_ok(
        &server,
        r#"
  local v = core.network.getJson(BASE .. "/json")
  core.log("getJson", v.name, v.n, #v.list, v.nested.ok)
  local e = core.network.getJson(BASE .. "/echo", {["X-Token"] = "t"})
  core.log("getJson headers", e.method, e.headers["x-token"], e.headers["accept"])
  local p = core.network.postJson(BASE .. "/echo", {a = 1})
  core.log("postJson", p.method, p.headers["content-type"], p.body)
  local q = core.network.postJson(BASE .. "/echo", '{"b":2}')
  core.log("postJson string", q.headers["content-type"], q.body)
"#,
    );
    assert_eq!(line(&logs, "getJson"), "jobtop\t3\t3\ttrue");
    assert_eq!(line(&logs, "getJson headers"), "GET\tt\tapplication/json");
    assert_eq!(line(&logs, "postJson"), "POST\tapplication/json\t{\"a\":1}");
    assert_eq!(
        line(&logs, "postJson string"),
        "application/json\t{\"b\":2}"
    );
}

#[test]
fn get_json_fails_on_status_and_on_bodies_that_are_not_json() {
    let server = server();
    let logs = run_ok(
        &server,
        r#"
  show("404", core.network.getJson(BASE .. "/missing"))
  show("500", core.network.postJson(BASE .. "/boom", {a = 1}))
  show("text", core.network.getJson(BASE .. "/ok"))
  show("redirectJson", core.network.getJson(BASE .. "/redirect"))
  show("empty", core.network.getJson(BASE .. "/empty"))
"#,
    );
    let e404 = error(&logs, "404");
    assert!(
        e404.starts_with("core.network.getJson: GET http://127.0.0.1:"),
        "{e404}"
    );
    assert!(
        e404.ends_with("/missing: HTTP 404 (body \"not here\"): expected a 2xx status"),
        "{e404}"
    );
    let e500 = error(&logs, "500");
    assert!(e500.starts_with("core.network.postJson: POST "), "{e500}");
    assert!(e500.contains("HTTP 500"), "{e500}");
    let text = error(&logs, "text");
    assert!(
        text.contains("/ok: the response body \"hello\" is not JSON: invalid JSON"),
        "{text}"
    );
    assert!(text.ends_with("expected a JSON document"), "{text}");
    // /redirect ends at /ok, which is not JSON either: the redirect was followed.
    assert!(error(&logs, "redirectJson").contains("\"hello\" is not JSON"));
    let empty = error(&logs, "empty");
    assert!(
        empty.ends_with("/empty: HTTP 204 with an empty body: expected a JSON document"),
        "{empty}"
    );
}

#[test]
fn redirects_are_followed_and_bounded() {
    let server = server();
    let logs = run_ok(
        &server,
        r#"
  show("redirect", core.network.get(BASE .. "/redirect"))
  show("loop", core.network.get(BASE .. "/loop"))
  show("loopJson", core.network.getJson(BASE .. "/loop"))
"#,
    );
    assert_eq!(line(&logs, "redirect"), "200\thello");
    let e = error(&logs, "loop");
    assert!(e.starts_with("core.network.get: GET "), "{e}");
    assert!(
        e.ends_with("/loop: too many redirects (more than 5): expected a final response within 5"),
        "{e}"
    );
    assert!(error(&logs, "loopJson").contains("too many redirects"));
}

#[test]
fn timeout_option_bounds_a_request() {
    let server = server();
    let started = Instant::now();
    let logs = run_ok(
        &server,
        r#"
  show("slow", core.network.request(BASE .. "/slow", {timeout = 0.3}))
"#,
    );
    let took = started.elapsed();
    let e = error(&logs, "slow");
    assert!(
        e.ends_with(
            "/slow: timed out after 0.3s (its timeout option): expected a response within it"
        ),
        "{e}"
    );
    assert!(took < Duration::from_millis(700), "took {took:?}");
}

#[test]
fn a_request_never_outlives_the_run_timeout() {
    let server = server();
    let started = Instant::now();
    let outcome = run_with(
        &server,
        r#"
  show("slow", core.network.get(BASE .. "/slow"))
"#,
        Run {
            timeout: Duration::from_secs(1),
            ..Run::default()
        },
    );
    let took = started.elapsed();
    assert_eq!(outcome.result, RunResult::Timeout, "{outcome:?}");
    assert!(took < Duration::from_millis(1100), "took {took:?}");
    // The call returned `nil, err` (or the run stopped before it could log that).
    for log in &outcome.logs {
        assert!(
            log.starts_with("slow\tnil\tcore.network.get: GET "),
            "{log}"
        );
    }
}

#[test]
fn a_timeout_option_longer_than_the_run_is_cut_to_the_run() {
    let server = server();
    let started = Instant::now();
    let outcome = run_with(
        &server,
        r#"
  show("slow", core.network.request(BASE .. "/slow", {timeout = 60}))
"#,
        Run {
            timeout: Duration::from_millis(500),
            ..Run::default()
        },
    );
    assert_eq!(outcome.result, RunResult::Timeout, "{outcome:?}");
    assert!(started.elapsed() < Duration::from_millis(700));
}

#[test]
fn an_abort_ends_a_request_at_once() {
    let server = server();
    let control = RunControl::new();
    let aborter = control.clone();
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        aborter.abort();
    });
    let started = Instant::now();
    let outcome = run_with(
        &server,
        r#"
  show("slow", core.network.get(BASE .. "/slow"))
"#,
        Run {
            control,
            timeout: Duration::from_secs(10),
            ..Run::default()
        },
    );
    assert_eq!(outcome.result, RunResult::Aborted, "{outcome:?}");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(600), "took {took:?}");
}

#[test]
fn a_body_over_8_mib_is_refused() {
    let server = server();
    let logs = run_ok(
        &server,
        r#"
  show("huge", core.network.get(BASE .. "/huge"))
  show("after", core.network.get(BASE .. "/ok"))
"#,
    );
    let e = error(&logs, "huge");
    assert!(
        e.starts_with("core.network.get: GET http://127.0.0.1:"),
        "{e}"
    );
    assert!(
        e.ends_with("/huge: response body larger than 8 MiB: expected at most 8 MiB"),
        "{e}"
    );
    assert_eq!(line(&logs, "after"), "200\thello");
}

#[test]
fn a_refused_connection_is_an_error() {
    let server = server();
    let port = free_port();
    let logs = run_ok(
        &server,
        &format!(
            r#"
  show("refused", core.network.get("http://127.0.0.1:{port}/ok"))
  show("refusedJson", core.network.getJson("http://127.0.0.1:{port}/ok"))
"#
        ),
    );
    assert_eq!(
        error(&logs, "refused"),
        format!(
            "core.network.get: GET http://127.0.0.1:{port}/ok: connection refused by 127.0.0.1:{port}: expected a server listening there"
        )
    );
    assert!(error(&logs, "refusedJson").contains("connection refused"));
}

/// A port on 127.0.0.1 that answers every connection in plain HTTP at once, without reading.
fn plain_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    port
}

#[test]
fn https_to_a_server_that_does_not_speak_tls_is_an_error() {
    let server = server();
    let port = plain_port();
    let logs = run_ok(
        &server,
        &format!(
            r#"
  show("tls", core.network.request("https://127.0.0.1:{port}/ok", {{timeout = 2}}))
"#
        ),
    );
    let e = error(&logs, "tls");
    assert!(
        e.starts_with(&format!(
            "core.network.request: GET https://127.0.0.1:{port}/ok: TLS failed with 127.0.0.1:{port}: "
        )),
        "{e}"
    );
}

#[test]
fn bad_urls_and_options_are_errors() {
    let server = server();
    let logs = run_ok(
        &server,
        r#"
  show("words", core.network.get("not a url"))
  show("relative", core.network.get("/ok"))
  show("ftp", core.network.get("ftp://127.0.0.1/file"))
  show("number", core.network.get(42))
  show("method", core.network.request(BASE .. "/ok", {method = "FETCH"}))
  show("timeout", core.network.request(BASE .. "/ok", {timeout = -1}))
  show("timeoutText", core.network.request(BASE .. "/ok", {timeout = "soon"}))
  show("unknown", core.network.request(BASE .. "/ok", {retries = 3}))
  show("opts", core.network.request(BASE .. "/ok", "GET"))
  show("headers", core.network.get(BASE .. "/ok", 5))
  show("headerValue", core.network.get(BASE .. "/ok", {["X-A"] = {}}))
  show("headerBreak", core.network.get(BASE .. "/ok", {["X-A"] = "a\r\nX-B: b"}))
  show("getBody", core.network.request(BASE .. "/ok", {body = "x"}))
  show("postBody", core.network.post(BASE .. "/echo", true))
"#,
    );
    let expect = [
        (
            "words",
            "core.network.get: bad URL \"not a url\": expected an absolute http:// or https:// URL",
        ),
        (
            "relative",
            "core.network.get: bad URL \"/ok\": expected an absolute http:// or https:// URL",
        ),
        (
            "ftp",
            "core.network.get: bad URL \"ftp://127.0.0.1/file\": expected an absolute http:// or https:// URL",
        ),
        (
            "number",
            "core.network.get: the URL is the number 42: expected an http:// or https:// URL as a string",
        ),
        (
            "method",
            "core.network.request: unknown method \"FETCH\": expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        ),
        (
            "timeout",
            "core.network.request: option timeout is the number -1: expected a number of seconds greater than 0",
        ),
        (
            "timeoutText",
            "core.network.request: option timeout is the string \"soon\": expected a number of seconds greater than 0",
        ),
        (
            "unknown",
            "core.network.request: unknown option \"retries\": expected method, headers, body or timeout",
        ),
        (
            "opts",
            "core.network.request: options are the string \"GET\": expected a table with method, headers, body or timeout",
        ),
        (
            "headers",
            "core.network.get: headers are the number 5: expected a table of name = value strings",
        ),
        (
            "headerValue",
            "core.network.get: header X-A is a table: expected a string",
        ),
        (
            "headerBreak",
            "core.network.get: header X-A has a value that is not valid in HTTP (a line break?)",
        ),
        (
            "getBody",
            "core.network.request: a GET request cannot have a body: expected method POST, PUT, PATCH, DELETE or OPTIONS",
        ),
        (
            "postBody",
            "core.network.post: body is the boolean true: expected a string, or a table to send as JSON",
        ),
    ];
    for (label, message) in expect {
        assert_eq!(error(&logs, label), message, "{label}");
    }
}

#[test]
fn network_needs_the_grant() {
    let server = server();
    let outcome = run_with(
        &server,
        r#"
  show("get", core.network.get(BASE .. "/ok"))
  show("request", core.network.request(BASE .. "/ok"))
  show("post", core.network.post(BASE .. "/ok", "x"))
  show("getJson", core.network.getJson(BASE .. "/json"))
  show("postJson", core.network.postJson(BASE .. "/json", {}))
"#,
        Run {
            allow: vec![],
            ..Run::default()
        },
    );
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    for name in ["get", "request", "post", "getJson", "postJson"] {
        assert_eq!(
            error(&outcome.logs, name),
            format!(
                "core.network.{name} is not allowed for job net: add `allow: [network]` to its entry in jobs.yaml"
            )
        );
    }
}

#[test]
fn the_network_table_is_read_only() {
    let server = server();
    let logs = run_ok(
        &server,
        r#"
  local ok = pcall(function() core.network.get = nil end)
  core.log("write", ok, type(core.network.get))
"#,
    );
    assert_eq!(line(&logs, "write"), "false\tfunction");
}
