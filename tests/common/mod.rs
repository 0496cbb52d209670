//! Helpers shared by the integration tests. Each test file that needs them says `mod common;`.
//!
//! - [`process`]: the built `jobtop` on a temporary directory (a [`process::Sandbox`] with its
//!   own `jobs.yaml` and job files), one-shot CLI commands run with a deadline, and
//!   `jobtop serve` as a child process ([`process::Serve`]) that is stopped when dropped.
//! - [`runner`]: one job file run through `JobRunner`, with a `RunRequest` the tests adjust.
//! - [`paused`]: the scheduler on tokio's paused clock with a wall clock the test steps.
//! - [`servers`]: real servers on 127.0.0.1 started by the tests (PostgreSQL, MariaDB, sshd,
//!   SMTP, an HTTP receiver) and a real Prometheus text parser; a test whose server is
//!   missing skips, unless `JOBTOP_REQUIRE_SERVERS` is set.
//! - [`accounts`]: throwaway Unix users and groups, and programs run as them.
//! - [`databases`]: databases as `service.databases` defines them, and job files run against
//!   them with `allow: [db]`.
//!
//! A test file adds what only it needs to these types in its own `impl Sandbox { … }` or
//! `impl Serve { … }` (how it decides that a service is ready, how it stops one, …).

// Not every test binary uses every helper.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod accounts;
pub mod databases;
pub mod faults;
pub mod paused;
pub mod process;
pub mod runner;
pub mod servers;
