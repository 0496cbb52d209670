//! The control socket's wire format (docs/protocol.md): newline-delimited JSON, one object per
//! line. Requests are `{"id":N,"op":…}`; each gets one [`Response`]. Serde does the reading and
//! writing; this module only turns serde's complaints into messages that say what was expected.

use std::sync::LazyLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::verb::Verb;

mod fields;

use fields::{history_default, history_limit, job_name, protocol_version};

/// The protocol version this build speaks.
pub const PROTOCOL: u64 = 1;

/// The longest line either side accepts; longer ones are answered with an error and skipped.
pub const MAX_LINE: usize = 1 << 20;

/// How often a subscriber gets a whole snapshot, to heal anything it may have missed.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(30);

/// How many runs `history` returns when the request does not say.
pub const HISTORY_DEFAULT: usize = 20;

/// A request, as it travels on the wire (without its `id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The first message: the client's protocol version.
    Hello {
        /// The version it speaks.
        #[serde(deserialize_with = "protocol_version")]
        protocol: u64,
    },
    /// Every job, as `list --json` rows.
    List,
    /// The whole table with service facts.
    Snapshot,
    /// Recent runs of one job.
    History {
        /// The job.
        #[serde(deserialize_with = "job_name")]
        job: String,
        /// At most this many.
        #[serde(default = "history_default", deserialize_with = "history_limit")]
        limit: usize,
    },
    /// Reload `jobs.yaml`.
    Reload,
    /// Activate a job.
    Activate {
        /// The job.
        #[serde(deserialize_with = "job_name")]
        job: String,
    },
    /// Cancel a job.
    Cancel {
        /// The job.
        #[serde(deserialize_with = "job_name")]
        job: String,
    },
    /// Run a job now.
    Trigger {
        /// The job.
        #[serde(deserialize_with = "job_name")]
        job: String,
    },
    /// Stream events on this connection; the result is the snapshot they follow.
    Subscribe,
    /// Answered with `"pong"`.
    Ping,
    /// Send a test notification to every channel (or one); the result is each outcome.
    NotifyTest {
        /// Only this channel (from 1).
        #[serde(default)]
        channel: Option<usize>,
    },
}

impl Request {
    /// The request that does `verb` to `job`.
    pub fn act(verb: Verb, job: String) -> Request {
        match verb {
            Verb::Activate => Request::Activate { job },
            Verb::Cancel => Request::Cancel { job },
            Verb::Trigger => Request::Trigger { job },
        }
    }

    /// The verb and job of an activate, cancel or trigger.
    pub fn as_act(&self) -> Option<(Verb, &str)> {
        match self {
            Request::Activate { job } => Some((Verb::Activate, job)),
            Request::Cancel { job } => Some((Verb::Cancel, job)),
            Request::Trigger { job } => Some((Verb::Trigger, job)),
            _ => None,
        }
    }

    /// Whether the request changes anything (viewers may not send these).
    pub fn is_action(&self) -> bool {
        self.as_act().is_some() || matches!(self, Request::Reload | Request::NotifyTest { .. })
    }

    /// The request as a JSON line with its id (without the newline).
    pub fn to_line(&self, id: u64) -> String {
        #[derive(Serialize)]
        struct Envelope<'a> {
            id: u64,
            #[serde(flatten)]
            request: &'a Request,
        }
        serde_json::to_string(&Envelope { id, request: self }).unwrap_or_default()
    }

    /// Reads one request line: its id (if it has one) and the request, or a message saying
    /// what was wrong and what was expected.
    pub fn parse(line: &str) -> (Option<u64>, Result<Request, String>) {
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
        if !value.is_object() {
            return (
                None,
                Err("the request is not a JSON object: expected {\"id\":1,\"op\":\"list\"}".into()),
            );
        }
        let id = value.get("id").and_then(Value::as_u64);
        let op = value.get("op").and_then(Value::as_str).map(str::to_string);
        let request =
            Request::deserialize(value).map_err(|e| explain(op.as_deref(), &e.to_string()));
        (id, request)
    }
}

/// Every `op` word, as serde knows them (so the list cannot drift from the enum).
pub fn ops() -> &'static [String] {
    static OPS: LazyLock<Vec<String>> = LazyLock::new(|| {
        let error = Request::deserialize(serde_json::json!({"op": ""}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        listed_after(&error, "expected one of ")
    });
    &OPS
}

/// The names serde lists in "expected one of `a`, `b`, `c`".
fn listed_after(message: &str, marker: &str) -> Vec<String> {
    message
        .split_once(marker)
        .map(|(_, list)| {
            list.split(", ")
                .map(|w| w.trim_matches('`').to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// What a field holds, for "needs" messages.
fn field_expectation(field: &str) -> String {
    match field {
        "job" => "the name of a job as a string".into(),
        "protocol" => format!("{{\"op\":\"hello\",\"protocol\":{PROTOCOL}}}"),
        other => format!("a value for {other:?}"),
    }
}

/// Turns serde's message about a request into one that says what was expected.
fn explain(op: Option<&str>, serde_message: &str) -> String {
    let ops = ops().join(", ");
    let Some(op) = op else {
        return if serde_message.starts_with("missing field `op`") {
            format!("no \"op\": expected one of {ops}")
        } else {
            format!("\"op\" must be a string: expected one of {ops}")
        };
    };
    if serde_message.starts_with("unknown variant") {
        return format!("unknown op {op:?}: expected one of {ops}");
    }
    if let Some(rest) = serde_message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        return format!(
            "{op} needs {field:?}: expected {}",
            field_expectation(field)
        );
    }
    // The field deserializers below name their field in what they expect.
    format!("{op}: {serde_message}")
}

/// A response line: `{"id":N,"ok":true,"result":…}` or `{"id":N,"ok":false,"error":"…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The id of the request it answers (null for errors about unreadable lines).
    pub id: Option<u64>,
    /// Whether the request succeeded.
    pub ok: bool,
    /// The result, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success.
    pub fn ok(id: Option<u64>, result: Value) -> Response {
        Response {
            id,
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    /// A refusal or failure.
    pub fn error(id: Option<u64>, error: impl Into<String>) -> Response {
        Response {
            id,
            ok: false,
            result: None,
            error: Some(error.into()),
        }
    }

    /// The response as a JSON line (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The result, or the error as the operator reads it.
    pub fn into_result(self) -> Result<Value, String> {
        if self.ok {
            Ok(self.result.unwrap_or(Value::Null))
        } else {
            Err(self
                .error
                .unwrap_or_else(|| "the service gave no reason".into()))
        }
    }
}

#[cfg(test)]
mod tests;
