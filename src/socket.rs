//! The control socket (`.jobtop/jobtop.sock`): how `jobtop serve` is driven by attached
//! dashboards, the live CLI, and scripts (`socat`). The wire format is
//! [`control::protocol`](crate::control::protocol); docs/protocol.md is its contract.

pub mod client;
pub mod peers;
pub mod server;

use std::path::{Path, PathBuf};

/// The socket's file name inside the state directory.
pub const SOCKET_FILE: &str = "jobtop.sock";

/// The socket path of a state directory.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_FILE)
}

/// Where the socket of the configuration at `config_file` is: from its `service.state_dir`
/// when the file is valid, else the default `.jobtop` beside it (so a service can still be
/// reached while someone is editing a broken `jobs.yaml`).
pub fn path_for_config(config_file: &Path) -> PathBuf {
    match crate::config::load(config_file) {
        Ok(config) => path(&config.service.state_dir),
        Err(_) => {
            let dir = config_file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            path(&dir.join(".jobtop"))
        }
    }
}
