//! Prometheus text checked by real parsers: Python's `prometheus_client` parser
//! (`text_string_to_metric_families`), and `promtool check metrics` from the Prometheus
//! packages.
//!
//! Note how `prometheus_client` names things: a counter's *family* is named without `_total`
//! (`jobtop_job_runs`), its *samples* with it (`jobtop_job_runs_total`); a histogram's samples
//! are `_bucket` (with `le`), `_sum` and `_count` (and `_created` where the text has them).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{find_program, python_with, require, run_input};
use crate::common::process::text;

/// How to install the Python parser.
pub const INSTALL: &str = "pip install prometheus_client";

/// How to install `promtool`.
pub const INSTALL_PROMTOOL: &str = "apt-get install -y prometheus";

/// Reads the text on stdin, prints the families as JSON (values as `repr`, which keeps NaN and
/// infinities that JSON has no numbers for).
const PARSE: &str = r"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        'name': f.name, 'type': f.type, 'help': f.documentation,
        'samples': [{'name': s.name, 'labels': s.labels, 'value': repr(float(s.value))}
                    for s in f.samples],
    })
print(json.dumps(families))
";

/// One sample: a metric name, its labels and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One metric family: its name, type (`counter`, `gauge`, `histogram` …), help and samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

/// The Python parser.
pub struct Parser {
    python: PathBuf,
}

impl Parser {
    /// The parser; `None` (after a skip note) when `python3` or `prometheus_client` is missing.
    pub fn new() -> Option<Parser> {
        let python = require(
            "Prometheus parser",
            python_with("prometheus_client.parser"),
            INSTALL,
        )?;
        Some(Parser { python })
    }

    /// The families of `text`, or the parser's error.
    pub fn families(&self, text_in: &str) -> Result<Vec<Family>, String> {
        let mut command = Command::new(&self.python);
        command.args(["-c", PARSE]);
        let out = run_input(
            command,
            text_in,
            "the Prometheus parser",
            Duration::from_secs(60),
        );
        if !out.status.success() {
            let stderr = text(&out.stderr);
            return Err(stderr.trim().lines().last().unwrap_or("").to_string());
        }
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        Ok(json
            .as_array()
            .unwrap()
            .iter()
            .map(|f| Family {
                name: f["name"].as_str().unwrap().to_string(),
                kind: f["type"].as_str().unwrap().to_string(),
                help: f["help"].as_str().unwrap_or("").to_string(),
                samples: f["samples"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(sample)
                    .collect(),
            })
            .collect())
    }

    /// Every sample of `text`, in order; panics when the parser refuses the text.
    pub fn samples(&self, text_in: &str) -> Vec<Sample> {
        self.families(text_in)
            .unwrap_or_else(|e| panic!("the Prometheus parser refused the text: {e}\n{text_in}"))
            .into_iter()
            .flat_map(|f| f.samples)
            .collect()
    }
}

fn sample(s: &Value) -> Sample {
    let value = s["value"].as_str().unwrap();
    Sample {
        name: s["name"].as_str().unwrap().to_string(),
        labels: s["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect(),
        value: value
            .parse()
            .unwrap_or_else(|e| panic!("sample value {value}: {e}")),
    }
}

/// The value of the one sample called `name` whose labels include `labels`; panics when there
/// is none or more than one.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|l| l == v))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one sample {name} {labels:?} expected: {found:?}"
    );
    found[0].value
}

/// `promtool`.
pub struct Promtool {
    program: PathBuf,
}

impl Promtool {
    /// `promtool`; `None` (after a skip note) when it is not installed.
    pub fn new() -> Option<Promtool> {
        let program = require(
            "promtool",
            find_program(&["promtool"], &[]),
            INSTALL_PROMTOOL,
        )?;
        Some(Promtool { program })
    }

    /// `promtool check metrics` on `text`: `Ok` with its output when it finds no problem
    /// (format and lint), else `Err` with what it says.
    pub fn check_metrics(&self, text_in: &str) -> Result<String, String> {
        let mut command = Command::new(&self.program);
        command.args(["check", "metrics"]);
        let out = run_input(
            command,
            text_in,
            "promtool check metrics",
            Duration::from_secs(60),
        );
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        if out.status.success() {
            Ok(said)
        } else {
            Err(said)
        }
    }
}
