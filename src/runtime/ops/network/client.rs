//! The HTTP client of `core.network` and its limits: one shared `ureq` agent, the time a
//! request may take (its [`Budget`]), the wait that gives way to the run's timeout and abort,
//! the bounded response body, and what each failure is called in a message.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use ureq::Agent;
use ureq::http::{self, Uri};

use super::request::Request;
use crate::runtime::limits::{RunControl, StopReason};
use crate::runtime::ops::args::seconds_text;

/// Redirects followed before a request fails.
pub(super) const MAX_REDIRECTS: u32 = 5;
/// Largest response body kept; a larger one fails the request.
pub(super) const MAX_BODY: u64 = 8 << 20;
/// How often the run's thread checks its stop flag while a request is under way.
pub(super) const POLL: Duration = Duration::from_millis(20);

/// What came back.
pub(super) struct Response {
    pub status: u16,
    /// Names in lower case; a repeated header's values joined with ", ".
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// The time a request may take and where that limit comes from, for messages.
#[derive(Clone, Copy)]
pub(super) struct Budget {
    limit: Duration,
    from_option: bool,
}

impl Budget {
    /// The time a request may take: its `timeout` option, unless what is left of the run is
    /// less.
    pub fn new(timeout: Option<Duration>, remaining: Duration) -> Budget {
        match timeout {
            Some(timeout) if timeout < remaining => Budget {
                limit: timeout,
                from_option: true,
            },
            _ => Budget {
                limit: remaining,
                from_option: false,
            },
        }
    }
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

/// Runs the request on a helper thread and waits for it, giving way to the run's timeout and
/// abort (see the module's comment).
pub(super) fn perform(
    request: Request,
    budget: Budget,
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
    let seconds = seconds_text(budget.limit);
    if budget.from_option {
        format!("timed out after {seconds} (its timeout option): expected a response within it")
    } else {
        format!(
            "timed out after {seconds}, the time left of the run's timeout: expected a response within it"
        )
    }
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
    let mut response = result.map_err(|e| explain(&e, &request.uri, budget))?;
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
                explain(&other, &request.uri, budget)
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
fn explain(error: &ureq::Error, uri: &Uri, budget: Budget) -> String {
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
