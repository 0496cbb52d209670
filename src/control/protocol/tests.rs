//! The wire format: round trips, the op list, and errors that say what was expected.

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
        Request::act(Verb::Trigger, "b".into()),
        Request::Subscribe,
        Request::NotifyTest { channel: Some(2) },
        Request::NotifyTest { channel: None },
    ] {
        let (id, parsed) = Request::parse(&request.to_line(7));
        assert_eq!((id, parsed), (Some(7), Ok(request)));
    }
}

#[test]
fn the_op_list_comes_from_the_enum() {
    assert_eq!(
        ops(),
        [
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
            "notify_test"
        ]
    );
}

#[test]
fn bad_requests_say_what_is_expected() {
    let error = |line: &str| Request::parse(line).1.unwrap_err();
    assert!(error("{nope").starts_with("malformed JSON"));
    let (id, r) = Request::parse(r#"{"id":3,"op":"explode"}"#);
    assert_eq!(id, Some(3));
    assert_eq!(
        r.unwrap_err(),
        "unknown op \"explode\": expected one of hello, list, snapshot, history, reload, \
         activate, cancel, trigger, subscribe, ping, notify_test"
    );
    assert_eq!(
        error(r#"{"id":3,"op":"cancel"}"#),
        "cancel needs \"job\": expected the name of a job as a string"
    );
    assert!(error("[1,2]").contains("not a JSON object"));
    assert!(error(r#"{"job":"x"}"#).starts_with("no \"op\": expected one of hello"));
    assert!(error(r#"{"op":7}"#).starts_with("\"op\" must be a string: expected one of"));
    assert_eq!(
        error(r#"{"op":"cancel","job":5}"#),
        "cancel: invalid type: integer `5`, expected \"job\" to be the name of a job as a string"
    );
    assert_eq!(
        error(r#"{"op":"history","job":"x","limit":-1}"#),
        "history: invalid type: integer `-1`, expected \"limit\" to be a whole number of runs such as 20"
    );
    assert_eq!(
        error(r#"{"op":"hello"}"#),
        "hello needs \"protocol\": expected {\"op\":\"hello\",\"protocol\":1}"
    );
    assert!(error(r#"{"op":"hello","protocol":"1"}"#).contains("\"protocol\" to be"));
}

/// The ops a markdown table lists: the backticked words of its first column, between the
/// header `| op |` and the end of the table.
fn ops_in_table(text: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("| op |"));
    let mut ops = Vec::new();
    for line in lines.by_ref().skip(2) {
        let Some(row) = line.strip_prefix('|') else {
            break;
        };
        let cell = row.split('|').next().unwrap_or_default();
        ops.extend(cell.split('`').skip(1).step_by(2).map(str::to_string));
    }
    ops.sort();
    ops
}

#[test]
fn the_readme_and_docs_tables_list_every_op() {
    let mut expected = ops().to_vec();
    expected.sort();
    for (file, text) in [
        ("README.md", include_str!("../../../README.md")),
        (
            "docs/protocol.md",
            include_str!("../../../docs/protocol.md"),
        ),
    ] {
        assert_eq!(ops_in_table(text), expected, "the op table of {file}");
    }
}

#[test]
fn a_missing_or_null_limit_is_the_default() {
    for line in [
        r#"{"op":"history","job":"x"}"#,
        r#"{"op":"history","job":"x","limit":null}"#,
    ] {
        assert_eq!(
            Request::parse(line).1,
            Ok(Request::History {
                job: "x".into(),
                limit: HISTORY_DEFAULT
            })
        );
    }
}

#[test]
fn responses_keep_their_shape() {
    assert_eq!(
        Response::ok(Some(1), Value::from("pong")).to_line(),
        r#"{"id":1,"ok":true,"result":"pong"}"#
    );
    assert_eq!(
        Response::error(None, "no").to_line(),
        r#"{"id":null,"ok":false,"error":"no"}"#
    );
    let parsed: Response = serde_json::from_str(r#"{"id":2,"ok":true,"result":null}"#).unwrap();
    assert_eq!(parsed.into_result(), Ok(Value::Null));
}
