//! The command line (docs/cli.md), as clap definitions.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Args, Parser};

use crate::config::Capability;
use crate::units::{parse_duration, parse_size};

/// Runs Lua job files on intervals and shows them live in a terminal dashboard.
#[derive(Debug, Parser)]
#[command(name = "jobtop", version, about, long_about = None)]
pub struct Cli {
    /// The configuration file; its directory anchors `jobs/` and `.jobtop/`.
    #[arg(long, global = true, value_name = "FILE", default_value = "jobs.yaml")]
    pub config: PathBuf,

    /// Draw the dashboard without colours (as does a non-empty `NO_COLOR`).
    #[arg(long, global = true)]
    pub no_color: bool,

    /// Dashboard only: hide the actions (reload, activate, cancel, trigger).
    #[arg(long, global = true)]
    pub read_only: bool,

    /// What to do; with none, jobtop opens the dashboard.
    #[command(subcommand)]
    pub command: Option<Subcommand>,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    /// Run one job file once, now or at a chosen time, and print its log lines and result.
    Try(TryArgs),
    /// Validate jobs.yaml and compile every job file; exit 0 when sound, 1 with every problem.
    Check,
    /// The scheduler without a terminal (for systemd): SIGHUP reloads, SIGTERM stops.
    Serve,
    /// Every job with its status, last and next run, and last error.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Recent runs of one job, newest first, with their log lines.
    History {
        /// The job's name.
        name: String,
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
        /// At most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Read jobs.yaml again and apply the difference (a running service).
    Reload,
    /// Make a deactivated, stopped, sleeping or done job run again.
    Activate {
        /// The job's name.
        name: String,
    },
    /// Deactivate a job (persisted) and abort its run in progress.
    Cancel {
        /// The job's name.
        name: String,
    },
    /// Open a dashboard attached to the service running on this configuration (fails when
    /// none runs; plain `jobtop` attaches too, or runs the scheduler itself).
    Attach,
    /// Run a job now, once, whatever its status.
    Trigger {
        /// The job's name.
        name: String,
    },
    /// The next firings of a job, in its zone, computed as the scheduler does.
    Next {
        /// The job's name.
        name: String,
        /// How many firings.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=10_000))]
        count: u16,
        /// Count from this time instead of now (RFC 3339).
        #[arg(long, value_name = "RFC3339", value_parser = parse_at)]
        from: Option<DateTime<Utc>>,
        /// Print a JSON array of RFC 3339 times.
        #[arg(long)]
        json: bool,
    },
    /// Notification channels (docs/alerts.md).
    #[command(subcommand)]
    Notify(NotifyCommand),
}

/// `jobtop notify ...`
#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// Send a test notification to every channel (or one) and print each outcome; exit 1 if
    /// any failed.
    Test {
        /// Only channel N (from 1), in the order `notify test` lists them.
        #[arg(long, value_name = "N")]
        channel: Option<usize>,
    },
}

/// `jobtop try FILE ...`
#[derive(Debug, Args)]
pub struct TryArgs {
    /// The job file to run.
    pub file: PathBuf,

    /// The scheduled time the helpers report, in RFC 3339 (default: now).
    #[arg(long, value_name = "RFC3339", value_parser = parse_at)]
    pub at: Option<DateTime<Utc>>,

    /// The IANA zone `true` selects in the helpers (default: the system's).
    #[arg(long, value_name = "ZONE", value_parser = parse_zone)]
    pub tz: Option<Tz>,

    /// Wall-clock limit of the run: 500ms, 30s, 5m ...
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout, default_value = "30s")]
    pub timeout: Duration,

    /// Lua heap limit of the run: 16MiB, 512KiB ...
    #[arg(long, value_name = "SIZE", value_parser = parse_memory, default_value = "64MiB")]
    pub memory: u64,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,

    /// Grant capabilities, as `allow:` does in jobs.yaml: network, exec, files (comma-separated
    /// or repeated).
    #[arg(long, value_name = "CAPS", value_delimiter = ',', value_parser = parse_capability)]
    pub allow: Vec<Capability>,

    /// A root `core.files` may touch (absolute; repeat for more).
    #[arg(long = "files", value_name = "DIR", value_parser = parse_root)]
    pub files: Vec<PathBuf>,

    /// An environment variable `core.env` may read (repeat for more).
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,
}

fn parse_capability(text: &str) -> Result<Capability, String> {
    Capability::from_word(text).ok_or_else(|| {
        format!(
            "unknown capability {text:?}: expected one of {}",
            Capability::ALL.map(Capability::as_str).join(", ")
        )
    })
}

fn parse_root(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(format!(
            "{text:?} is relative: expected an absolute directory"
        ))
    }
}

fn parse_at(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: expected an RFC 3339 time such as 2023-10-12T01:02:03Z or 2023-10-12T03:02:03+02:00"))
}

/// Reads an IANA zone name; the error says what is expected.
pub fn parse_zone(text: &str) -> Result<Tz, String> {
    text.parse::<Tz>().map_err(|_| {
        format!("unknown time zone {text:?}: expected an IANA name such as UTC, Europe/Berlin or America/New_York")
    })
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(d) if d.is_zero() => Err("a timeout of zero: expected a positive duration".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_memory(text: &str) -> Result<u64, String> {
    match parse_size(text) {
        Ok(0) => Err("a memory limit of zero: expected a positive size".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}
