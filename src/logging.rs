//! The service log: tracing to `.jobtop/jobtop.log` through a non-blocking writer, and to
//! stderr as well when stderr is not a terminal (under systemd). Never to the terminal while
//! the dashboard runs.

use std::io::IsTerminal;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The log file's name inside the state directory.
pub const LOG_FILE: &str = "jobtop.log";

/// Starts logging; keep the guard alive until exit so the last lines are written.
/// `JOBTOP_LOG` sets the filter (default `info`).
pub fn init(state_dir: &Path, stderr_too: bool) -> WorkerGuard {
    let appender = tracing_appender::rolling::never(state_dir, LOG_FILE);
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_env("JOBTOP_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let file_layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false);
    let stderr_layer = (stderr_too && !std::io::stderr().is_terminal()).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    guard
}
