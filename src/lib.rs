//! jobtop: runs Lua job files on intervals and shows them live in a terminal dashboard.
//!
//! The binary (`src/main.rs`) is a thin shell over these modules; tests and benchmarks use
//! them directly.

pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod job;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod runtime;
pub mod schedule;
pub mod scheduler;
pub mod socket;
pub mod state_dir;
pub mod store;
pub mod tui;
pub mod units;
pub mod users;
