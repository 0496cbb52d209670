//! `jobtop` with no subcommand: the dashboard. It attaches to the service already running on
//! the configuration when there is one, and otherwise runs the scheduler in-process (serving
//! the control socket too, so the CLI and other dashboards can reach it).

use std::path::Path;

use super::exit;
use super::serve::{prepare_loaded, shutdown, start_with_socket};
use crate::control::Role;
use crate::socket::{self, client};
use crate::tui::{self, DashboardOptions};

/// How the dashboard was asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Draw without colours.
    pub no_color: bool,
    /// Only attach; fail when no service runs.
    pub attach_only: bool,
    /// Hide the actions (attached dashboards only).
    pub read_only: bool,
}

/// Runs the dashboard until the operator quits; returns the exit code.
pub fn run(file: &Path, options: Options) -> u8 {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("jobtop: cannot start the async runtime: {e}");
            return exit::FAILED;
        }
    };
    // Loaded once: it names the socket to try, and is what an in-process scheduler runs.
    let loaded = crate::config::load(file);
    let socket_path = match &loaded {
        Ok(config) => socket::path(&config.service.state_dir),
        Err(_) => socket::path_for_config(file),
    };
    let attached = runtime.block_on(client::connect(&socket_path));
    match attached {
        Ok(connection) => {
            let dashboard = DashboardOptions {
                no_color: options.no_color,
                config_file: file.to_path_buf(),
                attached_pid: Some(connection.hello.pid),
                read_only: options.read_only || connection.hello.role == Role::Viewer,
            };
            // Quitting an attached dashboard only closes its connection.
            match runtime.block_on(tui::run(connection.client, dashboard)) {
                Ok(()) => exit::OK,
                Err(e) => {
                    eprintln!("jobtop: {e:#}");
                    exit::FAILED
                }
            }
        }
        Err(client::ConnectError::NotRunning(_)) if !options.attach_only => match loaded {
            Ok(config) => run_in_process(&runtime, config, file, options),
            Err(e) => {
                eprintln!("jobtop: {e}");
                exit::USAGE
            }
        },
        Err(e) => {
            eprintln!("jobtop: {e}");
            exit::FAILED
        }
    }
}

fn run_in_process(
    runtime: &tokio::runtime::Runtime,
    config: crate::config::Config,
    file: &Path,
    options: Options,
) -> u8 {
    let (service, store) = match prepare_loaded(config, "dashboard", false) {
        Ok(prepared) => prepared,
        Err((message, code)) => {
            eprintln!("jobtop: {message}");
            return code;
        }
    };
    let config = service.config.clone();
    let socket_path = socket::path(&config.service.state_dir);
    let code = runtime.block_on(async {
        let handle = match start_with_socket(config, store).await {
            Ok(handle) => handle,
            Err(e) => {
                eprintln!("jobtop: {e}");
                return exit::FAILED;
            }
        };
        let dashboard = DashboardOptions {
            no_color: options.no_color,
            config_file: file.to_path_buf(),
            attached_pid: None,
            read_only: options.read_only,
        };
        let result = tui::run(handle.client.clone(), dashboard).await;
        // The terminal is restored by now; say why quitting takes a while, if it does.
        let stopping = shutdown(handle, &socket_path);
        tokio::pin!(stopping);
        if tokio::time::timeout(std::time::Duration::from_millis(300), &mut stopping)
            .await
            .is_err()
        {
            eprintln!("jobtop: waiting for running jobs to finish (at most 10 s) …");
            stopping.await;
        }
        match result {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("jobtop: {e:#}");
                exit::FAILED
            }
        }
    });
    drop(service);
    code
}
