//! `jobtop next NAME`: a job's next firings, from the schedule exactly as the scheduler computes
//! them (the same `schedule` code), in the job's zone with their UTC offsets.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};

use super::exit;
use crate::config;

/// Prints the next `count` firings of `name` after `from` (default now); the exit code.
pub fn run(file: &Path, name: &str, count: usize, from: Option<DateTime<Utc>>, json: bool) -> u8 {
    let config = match config::load_with(file, config::Secrets::Optional) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("jobtop next: {e}");
            return exit::USAGE;
        }
    };
    let job = match config.job(name) {
        Ok(job) => job,
        Err(unknown) => {
            eprintln!("jobtop next: {unknown}");
            return exit::FAILED;
        }
    };
    let schedule = &job.schedule;
    let zone = schedule.zone();
    let firings = schedule.upcoming(from.unwrap_or_else(Utc::now), count);
    if json {
        let times: Vec<String> = firings.iter().map(|t| zone.rfc3339(*t)).collect();
        say!("{}", serde_json::to_string(&times).unwrap_or_default());
        return exit::OK;
    }
    say!(
        "{name}: {} ({zone}) — {}",
        schedule.text(),
        schedule.describe()
    );
    for t in &firings {
        say!(
            "  {}   {}",
            zone.rfc3339(*t),
            t.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
    }
    if firings.len() < count {
        say!("  (no firing after these before the year 5000)");
    }
    exit::OK
}
