//! The control socket's wire format: newline-delimited JSON, one object per line.
//!
//! A client first sends `{"op":"hello","protocol":1}`; then requests `{"id":N,"op":…}` each get
//! one response `{"id":N,"ok":true,"result":…}` or `{"id":N,"ok":false,"error":"…"}`. After a
//! `subscribe`, the server also sends event lines `{"event":…}` (the [`JobEvent`](crate::control::JobEvent)s, plus a
//! `snapshot` event every [`SNAPSHOT_EVERY`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::control::Snapshot;

/// The protocol version this build speaks.
pub const PROTOCOL: u64 = 1;

/// The longest line either side accepts; longer ones are answered with an error and skipped.
pub const MAX_LINE: usize = 1 << 20;

/// How often a subscriber gets a whole snapshot, to heal anything it may have missed.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(30);

/// Every operation, as its `op` word.
pub const OPS: [&str; 10] = [
    "hello",
    "list",
    "snapshot",
    "history",
    "reload",
    "activate",
    "cancel",
    "trigger",
    "subscribe",
    "ping",
];

/// A request, as read from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The first message: the client's protocol version.
    Hello {
        /// The version it speaks.
        protocol: u64,
    },
    /// Every job (the `list --json` rows).
    List,
    /// The whole table with service facts.
    Snapshot,
    /// Recent runs of one job.
    History {
        /// The job.
        job: String,
        /// At most this many (default 20).
        limit: usize,
    },
    /// Reload `jobs.yaml`.
    Reload,
    /// Activate a job.
    Activate {
        /// The job.
        job: String,
    },
    /// Cancel a job.
    Cancel {
        /// The job.
        job: String,
    },
    /// Run a job now.
    Trigger {
        /// The job.
        job: String,
    },
    /// Stream events on this connection.
    Subscribe,
    /// Answered with `"pong"`.
    Ping,
}

impl Request {
    /// Whether the request changes anything (viewers may not send these).
    pub fn is_action(&self) -> bool {
        matches!(
            self,
            Request::Reload
                | Request::Activate { .. }
                | Request::Cancel { .. }
                | Request::Trigger { .. }
        )
    }

    /// The request as a JSON line (without the newline).
    pub fn to_line(&self, id: u64) -> String {
        let body = match self {
            Request::Hello { protocol } => json!({"op": "hello", "protocol": protocol}),
            Request::List => json!({"op": "list"}),
            Request::Snapshot => json!({"op": "snapshot"}),
            Request::History { job, limit } => {
                json!({"op": "history", "job": job, "limit": limit})
            }
            Request::Reload => json!({"op": "reload"}),
            Request::Activate { job } => json!({"op": "activate", "job": job}),
            Request::Cancel { job } => json!({"op": "cancel", "job": job}),
            Request::Trigger { job } => json!({"op": "trigger", "job": job}),
            Request::Subscribe => json!({"op": "subscribe"}),
            Request::Ping => json!({"op": "ping"}),
        };
        let mut body = body;
        body["id"] = json!(id);
        body.to_string()
    }
}

/// Reads one request line: its id (if it has one) and the request, or a message saying what
/// was wrong and what was expected.
pub fn parse_request(line: &str) -> (Option<u64>, Result<Request, String>) {
    let value: Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(e) => {
            return (
                None,
                Err(format!(
                    "malformed JSON ({e}): expected one JSON object per line, such as {{\"id\":1,\"op\":\"list\"}}"
                )),
            );
        }
    };
    let Some(object) = value.as_object() else {
        return (
            None,
            Err("the request is not a JSON object: expected {\"id\":1,\"op\":\"list\"}".into()),
        );
    };
    let id = object.get("id").and_then(Value::as_u64);
    let Some(op) = object.get("op").and_then(Value::as_str) else {
        return (
            id,
            Err(format!("no \"op\": expected one of {}", OPS.join(", "))),
        );
    };
    let job = || {
        object
            .get("job")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{op} needs \"job\": expected the name of a job as a string"))
    };
    let request = match op {
        "hello" => match object.get("protocol").and_then(Value::as_u64) {
            Some(protocol) => Ok(Request::Hello { protocol }),
            None => Err(format!(
                "hello needs \"protocol\": expected {{\"op\":\"hello\",\"protocol\":{PROTOCOL}}}"
            )),
        },
        "list" => Ok(Request::List),
        "snapshot" => Ok(Request::Snapshot),
        "history" => job().and_then(|job| {
            let limit = match object.get("limit") {
                None | Some(Value::Null) => Ok(20),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        "\"limit\" must be a whole number: expected a count of runs such as 20"
                            .to_string()
                    }),
            }?;
            Ok(Request::History { job, limit })
        }),
        "reload" => Ok(Request::Reload),
        "activate" => job().map(|job| Request::Activate { job }),
        "cancel" => job().map(|job| Request::Cancel { job }),
        "trigger" => job().map(|job| Request::Trigger { job }),
        "subscribe" => Ok(Request::Subscribe),
        "ping" => Ok(Request::Ping),
        other => Err(format!(
            "unknown op {other:?}: expected one of {}",
            OPS.join(", ")
        )),
    };
    (id, request)
}

/// A successful response line.
pub fn ok_line(id: Option<u64>, result: &Value) -> String {
    json!({"id": id, "ok": true, "result": result}).to_string()
}

/// An error response line.
pub fn error_line(id: Option<u64>, error: &str) -> String {
    json!({"id": id, "ok": false, "error": error}).to_string()
}

/// The periodic snapshot event line.
pub fn snapshot_line(snapshot: &Snapshot) -> String {
    json!({"event": "snapshot", "snapshot": snapshot}).to_string()
}

/// A response as a client reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// The id of the request it answers (null for errors about unreadable lines).
    pub id: Option<u64>,
    /// Whether the request succeeded.
    pub ok: bool,
    /// The result, when it did.
    #[serde(default)]
    pub result: Value,
    /// Why not, when it did not.
    #[serde(default)]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for request in [
            Request::Hello { protocol: 1 },
            Request::List,
            Request::History {
                job: "a".into(),
                limit: 5,
            },
            Request::Activate { job: "a".into() },
            Request::Subscribe,
        ] {
            let (id, parsed) = parse_request(&request.to_line(7));
            assert_eq!((id, parsed), (Some(7), Ok(request)));
        }
    }

    #[test]
    fn bad_requests_say_what_is_expected() {
        let (_, r) = parse_request("{nope");
        assert!(r.unwrap_err().starts_with("malformed JSON"));
        let (id, r) = parse_request(r#"{"id":3,"op":"explode"}"#);
        assert_eq!(id, Some(3));
        assert!(r.unwrap_err().contains("expected one of hello, list"));
        let (_, r) = parse_request(r#"{"id":3,"op":"cancel"}"#);
        assert!(r.unwrap_err().contains("cancel needs \"job\""));
        let (_, r) = parse_request("[1,2]");
        assert!(r.unwrap_err().contains("not a JSON object"));
    }
}
