//! `jobtop notify test [--channel N]`: a `test` notification to every channel of the
//! configuration (the service's and the jobs' own, each once), or to channel N of that list,
//! with each channel's outcome; exit 1 if any failed.

use std::path::Path;
use std::sync::Arc;

use super::exit;
use crate::config::{self, Channel, Config};

/// Every distinct channel of `config`, in file order: the service's, then the jobs' own.
pub fn all_channels(config: &Config) -> Vec<Channel> {
    let mut all: Vec<Channel> = Vec::new();
    let own = config
        .jobs
        .iter()
        .filter_map(|j| j.notify.as_ref())
        .flatten();
    for channel in config.service.alerts.notify.iter().chain(own) {
        if !all.contains(channel) {
            all.push(channel.clone());
        }
    }
    all
}

/// Runs `notify test`; returns the exit code.
pub fn run_test(file: &Path, channel: Option<usize>) -> u8 {
    let config = match config::load(file) {
        Ok(config) => Arc::new(config),
        Err(e) => {
            eprintln!("jobtop notify test: {e}");
            return exit::USAGE;
        }
    };
    let all = all_channels(&config);
    if all.is_empty() {
        eprintln!(
            "jobtop notify test: {} has no notification channels: expected service.notify or a \
             job's notify list (docs/alerts.md)",
            file.display()
        );
        return exit::FAILED;
    }
    let chosen: Vec<(usize, Channel)> = match channel {
        None => all
            .into_iter()
            .enumerate()
            .map(|(i, c)| (i + 1, c))
            .collect(),
        Some(n) if (1..=all.len()).contains(&n) => vec![(n, all[n - 1].clone())],
        Some(n) => {
            eprintln!(
                "jobtop notify test: no channel {n}: expected a number from 1 to {}",
                all.len()
            );
            return exit::USAGE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("jobtop notify test: cannot start the async runtime: {e}");
            return exit::FAILED;
        }
    };
    let channels: Vec<Channel> = chosen.iter().map(|(_, c)| c.clone()).collect();
    let outcomes = runtime.block_on(crate::notify::test_directly(config, &channels));
    let mut code = exit::OK;
    for ((n, channel), outcome) in chosen.iter().zip(outcomes) {
        match outcome {
            Ok(()) => say!("{n}. {}: ok", channel.label),
            Err(e) => {
                say!("{n}. {}: failed: {e}", channel.label);
                code = exit::FAILED;
            }
        }
    }
    code
}
