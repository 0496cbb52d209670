//! `jobtop try FILE`: run one job file once and show what it did, the way operators test a
//! job before scheduling it.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::exit;
use crate::cli::TryArgs;
use crate::runtime::{
    JobGrants, JobRunner, LocalZone, MemoryState, RunControl, RunOutcome, RunRequest, ScriptCache,
};

/// Runs the file and prints the outcome; returns the exit code.
pub fn run(args: &TryArgs) -> u8 {
    let scheduled = args.at.unwrap_or_else(Utc::now);
    let zone = args.tz.map_or(LocalZone::System, LocalZone::Named);
    let request = RunRequest {
        file: args.file.clone(),
        display_name: args.file.display().to_string(),
        scheduled,
        zone,
        timeout: args.timeout,
        memory: args.memory,
        control: RunControl::new(),
        log_sink: None,
        grants: Arc::new(JobGrants {
            job: args
                .file
                .file_stem()
                .map_or_else(|| "try".to_string(), |s| s.to_string_lossy().into_owned()),
            allow: args.allow.clone(),
            files: args.files.clone(),
            env: args.env.clone(),
            // `try` keeps core.state for this one run only.
            state: Some(Arc::new(MemoryState::default())),
            databases: Vec::new(),
        }),
    };
    let outcome = JobRunner::new(Arc::new(ScriptCache::new()), vec![]).run(&request);
    let text = if args.json {
        json_report(&outcome, scheduled)
    } else {
        text_report(&request, &outcome)
    };
    say!("{text}");
    if outcome.result.is_failure() {
        exit::FAILED
    } else {
        exit::OK
    }
}

fn duration_ms(outcome: &RunOutcome) -> f64 {
    (outcome.duration.as_secs_f64() * 1e6).round() / 1e3
}

fn json_report(outcome: &RunOutcome, scheduled: DateTime<Utc>) -> String {
    json!({
        "result": outcome.result.as_str(),
        "logs": outcome.logs,
        "error": outcome.error,
        "duration_ms": duration_ms(outcome),
        "scheduled": scheduled.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
    .to_string()
}

fn text_report(request: &RunRequest, outcome: &RunOutcome) -> String {
    let mut out = String::new();
    let scheduled = request
        .scheduled
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let local = match request.zone {
        LocalZone::Named(tz) => request
            .scheduled
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        LocalZone::System => request
            .scheduled
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
    };
    let _ = writeln!(
        out,
        "{}  at {scheduled} (local: {local}, {})",
        request.display_name,
        request.zone.describe()
    );
    for line in &outcome.logs {
        let _ = writeln!(out, "  │ {line}");
    }
    let mark = if outcome.result.is_failure() {
        "✘"
    } else {
        "✔"
    };
    let _ = write!(
        out,
        "{mark} {} in {:.1} ms",
        outcome.result,
        duration_ms(outcome)
    );
    if let Some(error) = &outcome.error {
        for line in error.lines() {
            let _ = write!(out, "\n  {line}");
        }
    }
    out
}
