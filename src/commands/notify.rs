//! `jobtop notify test [--channel N]`: a `test` notification to every channel of the
//! configuration (the service's and the jobs' own, each once), or to channel N of that list,
//! with each channel's outcome; exit 1 if any failed. Through the running service when there
//! is one (its environment, its channels), else directly from this command.

use std::path::Path;
use std::sync::Arc;

use super::exit;
use crate::config;
use crate::control::ChannelOutcome;
use crate::socket::{self, client};

/// Runs `notify test`; returns the exit code.
pub fn run_test(file: &Path, channel: Option<usize>) -> u8 {
    // A number out of range is bad usage, whoever would send: say so before asking anyone.
    if channel.is_some()
        && let Ok(config) = config::load_with(file, config::Secrets::Optional)
        && let Err(e) = crate::notify::chosen_channels(&config, channel)
    {
        eprintln!("jobtop notify test: {e}");
        return exit::USAGE;
    }
    let socket = socket::path_for_config(file);
    if let Some(answer) = client::with_service(&socket, |client| async move {
        client.notify_test(channel).await
    }) {
        return match answer {
            Ok(outcomes) => report(&outcomes, "through the running service"),
            Err(e) => {
                eprintln!("jobtop notify test: {e}");
                exit::FAILED
            }
        };
    }
    let config = match config::load(file) {
        Ok(config) => Arc::new(config),
        Err(e) => {
            eprintln!("jobtop notify test: {e}");
            return exit::USAGE;
        }
    };
    let chosen = match crate::notify::chosen_channels(&config, channel) {
        Ok(chosen) => chosen,
        Err(e) => {
            eprintln!("jobtop notify test: {e}");
            return if channel.is_some() {
                exit::USAGE
            } else {
                exit::FAILED
            };
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("jobtop notify test: cannot start the async runtime: {e}");
            return exit::FAILED;
        }
    };
    let outcomes = runtime.block_on(crate::notify::test_directly(config, &chosen));
    report(&outcomes, "directly (no service runs)")
}

/// Prints one line per channel; the exit code.
fn report(outcomes: &[ChannelOutcome], how: &str) -> u8 {
    eprintln!("jobtop notify test: sent {how}");
    let mut code = exit::OK;
    for outcome in outcomes {
        match &outcome.error {
            None => say!("{}. {}: ok", outcome.number, outcome.channel),
            Some(e) => {
                say!("{}. {}: failed: {e}", outcome.number, outcome.channel);
                code = exit::FAILED;
            }
        }
    }
    code
}
