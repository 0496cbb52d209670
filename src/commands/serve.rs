//! `jobtop serve`: the scheduler without a terminal, for systemd. SIGHUP reloads; SIGINT and
//! SIGTERM shut down gracefully (docs/scheduling.md#shutdown).

use std::path::Path;

use tokio::signal::unix::{SignalKind, signal};

use super::exit;
use crate::config::{self, Config, ConfigError};
use crate::metrics::Exporter;
use crate::notify::{Failures, Notifier, Wiring};
use crate::scheduler::{self, SchedulerHandle, SchedulerOptions, database_path};
use crate::state_dir::{self, StateLock};
use crate::store::Store;

/// Everything a running service holds: keep it alive as long as the scheduler runs.
pub struct Service {
    /// The configuration it started with.
    pub config: Config,
    /// The state directory lock.
    pub lock: StateLock,
    /// The log writer's guard.
    pub log_guard: tracing_appender::non_blocking::WorkerGuard,
}

/// Loads the configuration, takes the state directory and opens the state database; the
/// message of the error says what was wrong and the exit code to use.
pub fn prepare(
    file: &Path,
    role: &str,
    stderr_log: bool,
) -> Result<(Service, Store), (String, u8)> {
    let config = config::load(file).map_err(|e| {
        let code = match e {
            ConfigError::Unreadable { .. } | ConfigError::Invalid { .. } => exit::USAGE,
        };
        (e.to_string(), code)
    })?;
    prepare_loaded(config, role, stderr_log)
}

/// [`prepare`] for a configuration already loaded.
pub fn prepare_loaded(
    config: Config,
    role: &str,
    stderr_log: bool,
) -> Result<(Service, Store), (String, u8)> {
    let lock = state_dir::lock(&config.service.state_dir, role)
        .map_err(|e| (e.to_string(), exit::FAILED))?;
    let log_guard = crate::logging::init(&config.service.state_dir, stderr_log);
    let store = Store::open(&database_path(&config.service.state_dir))
        .map_err(|e| (e.to_string(), exit::FAILED))?;
    Ok((
        Service {
            config,
            lock,
            log_guard,
        },
        store,
    ))
}

/// Runs the service until a signal stops it; returns the exit code.
pub fn run(file: &Path) -> u8 {
    let (service, store) = match prepare(file, "serve", true) {
        Ok(prepared) => prepared,
        Err((message, code)) => {
            eprintln!("jobtop serve: {message}");
            return code;
        }
    };
    crate::runtime::install_panic_hook();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("jobtop serve: cannot start the async runtime: {e}");
            return exit::FAILED;
        }
    };
    let jobs = service.config.jobs.len();
    let warnings = service.config.warnings.clone();
    let config = service.config.clone();
    let socket = crate::socket::path(&config.service.state_dir);
    let code = runtime.block_on(async move {
        let handle = match start_with_socket(config, store).await {
            Ok(handle) => handle,
            Err(e) => {
                eprintln!("jobtop serve: {e}");
                return exit::FAILED;
            }
        };
        tracing::info!(pid = std::process::id(), jobs, "jobtop serve started");
        for warning in &warnings {
            tracing::warn!("{}: {warning}", file.display());
        }
        match serve_signals(handle, &socket).await {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("jobtop serve: {e}");
                exit::FAILED
            }
        }
    });
    drop(service);
    code
}

/// A running service: the scheduler, its control socket, notifications and metrics.
pub struct Running {
    /// The scheduler's client.
    pub client: crate::control::Client,
    scheduler: SchedulerHandle,
    notifier: Notifier,
    metrics: Option<Exporter>,
    grace: std::time::Duration,
}

/// Starts the scheduler, its control socket, the notifier and the metrics exporter (must run
/// on a tokio runtime).
pub async fn start_with_socket(config: Config, store: Store) -> Result<Running, String> {
    let socket = crate::socket::path(&config.service.state_dir);
    let access = crate::socket::server::Access {
        operators: config.service.operators.clone(),
        viewers: config.service.viewers.clone(),
    };
    let alerts = config.service.alerts.clone();
    let (notify_tests, tests) = tokio::sync::mpsc::unbounded_channel();
    // With channels and metrics, the notifier and the exporter hear the start itself too
    // (firings missed while the service was down).
    let any_channel = !crate::notify::all_channels(&config).is_empty();
    let exports = alerts.metrics.is_some() || alerts.metrics_textfile.is_some();
    let early_events = usize::from(any_channel) + usize::from(exports);
    let options = SchedulerOptions {
        notify_tests: Some(notify_tests),
        early_events,
        ..SchedulerOptions::default()
    };
    let grace = options.grace;
    let mut handle = scheduler::start(config, store, options).map_err(|e| e.to_string())?;
    let failures = Failures::default();
    let mut early = std::mem::take(&mut handle.early_events).into_iter();
    let metrics = if exports {
        match Exporter::start(
            handle.client.clone(),
            early.next(),
            &failures,
            alerts.metrics,
            alerts.metrics_textfile,
        )
        .await
        {
            Ok(exporter) => Some(exporter),
            Err(e) => {
                handle.client.shutdown().await;
                return Err(e.to_string());
            }
        }
    } else {
        None
    };
    let notifier = Notifier::start(Wiring {
        early_events: if any_channel { early.next() } else { None },
        client: handle.client.clone(),
        config: handle.config.clone(),
        notices: handle.events.clone(),
        failures,
        tests,
    });
    let listener = match crate::socket::server::bind(&socket, &access) {
        Ok(listener) => listener,
        Err(e) => {
            handle.client.shutdown().await;
            return Err(format!(
                "cannot create the control socket {}: {e}: expected a writable state directory",
                socket.display()
            ));
        }
    };
    tokio::spawn(crate::socket::server::serve(
        listener,
        handle.client.clone(),
        access,
    ));
    Ok(Running {
        client: handle.client.clone(),
        scheduler: handle,
        notifier,
        metrics,
        grace,
    })
}

async fn serve_signals(handle: Running, socket: &Path) -> std::io::Result<()> {
    let mut hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let signal_client = handle.client.clone().acting_as(Some("SIGHUP".into()));
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                if handle.client.is_closed() {
                    break;
                }
                match signal_client.reload().await {
                    Ok(summary) => tracing::info!("SIGHUP: {summary}"),
                    Err(e) => tracing::warn!("SIGHUP: {e}"),
                }
            }
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    shutdown(handle, socket).await;
    Ok(())
}

/// Asks the scheduler to stop and waits until everything is recorded; the control socket
/// file goes first, so no client mistakes a stopping service for a live one. Queued
/// notifications then get the grace period to go out.
pub async fn shutdown(running: Running, socket: &Path) {
    crate::socket::server::remove(socket);
    running.client.shutdown().await;
    let _ = running.scheduler.task.await;
    running.notifier.finish(running.grace).await;
    if let Some(metrics) = running.metrics {
        metrics.finish().await;
    }
}
