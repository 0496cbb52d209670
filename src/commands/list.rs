//! `jobtop list` and `jobtop history`: from the state database, which a running service keeps
//! current (statuses, next runs), or as last recorded when none runs.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::exit;
use crate::config::{self, Config};
use crate::control::{JobView, RunSummary};
use crate::scheduler::{database_path, run_summary, stored_view};
use crate::socket::{self, client};
use crate::state_dir;
use crate::store::{JobState, Store, StoreError};

/// The configuration, the jobs' stored state, and who holds the state directory.
type Stored = (Config, Vec<JobState>, Option<String>);

/// Reads the configuration and the jobs' stored state; the error carries the exit code.
fn read(file: &Path) -> Result<Stored, (String, u8)> {
    let config = config::load_with(file, config::Secrets::Optional)
        .map_err(|e| (e.to_string(), exit::USAGE))?;
    let holder = state_dir::holder(&config.service.state_dir);
    let states = match Store::open_read_only(&database_path(&config.service.state_dir)) {
        Ok(store) => store
            .job_states()
            .map_err(|e| (e.to_string(), exit::FAILED))?,
        Err(StoreError::Missing { .. }) => Vec::new(),
        Err(e) => return Err((e.to_string(), exit::FAILED)),
    };
    Ok((config, states, holder))
}

/// Runs `jobtop list`: live from a running service, else from the state database.
pub fn run_list(file: &Path, as_json: bool) -> u8 {
    let socket = socket::path_for_config(file);
    if let Some(snapshot) =
        client::with_service(&socket, |client| async move { client.snapshot().await })
    {
        return match snapshot {
            Ok(snapshot) => {
                let holder = format!("live from jobtop pid {}", snapshot.pid);
                print_list(&snapshot.jobs, Some(&holder), as_json);
                exit::OK
            }
            Err(e) => {
                eprintln!("jobtop list: {e}");
                exit::FAILED
            }
        };
    }
    let (config, states, holder) = match read(file) {
        Ok(read) => read,
        Err((message, code)) => {
            eprintln!("jobtop list: {message}");
            return code;
        }
    };
    let views: Vec<JobView> = config
        .jobs
        .iter()
        .map(|spec| {
            let state = states.iter().find(|s| s.name == spec.name);
            stored_view(spec, state, holder.is_some())
        })
        .collect();
    print_list(&views, holder.as_deref(), as_json);
    exit::OK
}

fn print_list(views: &[JobView], holder: Option<&str>, as_json: bool) {
    if as_json {
        say!("{}", serde_json::to_string(views).unwrap_or_default());
    } else {
        match holder {
            Some(holder) => say!("service: running ({holder})"),
            None => say!("service: not running (statuses as last recorded)"),
        }
        say_raw!("{}", list_table(views));
    }
}

fn list_table(views: &[JobView]) -> String {
    let short = |t: Option<DateTime<Utc>>| {
        t.map_or("-".to_string(), |t| {
            t.format("%Y-%m-%d %H:%M:%S").to_string()
        })
    };
    let mut rows = vec![[
        "NAME".to_string(),
        "STATUS".into(),
        "SCHEDULE".into(),
        "LAST RUN (UTC)".into(),
        "RESULT".into(),
        "RUNS".into(),
        "NEXT RUN (UTC)".into(),
        "LAST ERROR".into(),
    ]];
    for v in views {
        let error = v
            .last_error
            .as_deref()
            .and_then(|e| e.lines().next())
            .unwrap_or("-");
        rows.push([
            v.name.clone(),
            v.status.to_string(),
            v.schedule.clone(),
            short(v.last_run),
            v.last_result.map_or("-".into(), |r| r.to_string()),
            v.runs.to_string(),
            short(v.next_run),
            error.chars().take(60).collect(),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c == 7 {
                let _ = write!(out, "{cell}");
            } else {
                let _ = write!(out, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push('\n');
    }
    out
}

/// Runs `jobtop history NAME`: live from a running service, else from the state database.
pub fn run_history(file: &Path, name: &str, limit: usize, as_json: bool) -> u8 {
    let socket = socket::path_for_config(file);
    if let Some(runs) = client::with_service(&socket, |client| async move {
        client.history(name, limit).await
    }) {
        return match runs {
            Ok(runs) => {
                print_history(name, &runs, as_json);
                exit::OK
            }
            Err(e) => {
                eprintln!("jobtop history: {e}");
                exit::FAILED
            }
        };
    }
    let config = match config::load_with(file, config::Secrets::Optional) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("jobtop history: {e}");
            return exit::USAGE;
        }
    };
    let runs = match Store::open_read_only(&database_path(&config.service.state_dir)) {
        Ok(store) => match store.history(name, limit) {
            Ok(runs) => runs,
            Err(e) => {
                eprintln!("jobtop history: {e}");
                return exit::FAILED;
            }
        },
        Err(StoreError::Missing { .. }) => Vec::new(),
        Err(e) => {
            eprintln!("jobtop history: {e}");
            return exit::FAILED;
        }
    };
    if runs.is_empty()
        && let Err(unknown) = config.job(name)
    {
        eprintln!("jobtop history: {unknown}");
        return exit::FAILED;
    }
    let runs: Vec<RunSummary> = runs.iter().map(run_summary).collect();
    print_history(name, &runs, as_json);
    exit::OK
}

fn print_history(name: &str, runs: &[RunSummary], as_json: bool) {
    if as_json {
        say!("{}", serde_json::to_string(runs).unwrap_or_default());
        return;
    }
    if runs.is_empty() {
        say!("{name}: no runs recorded");
    }
    for r in runs {
        say!(
            "{}  {:<8} {:>9.1} ms  {}",
            r.started.format("%Y-%m-%d %H:%M:%S%.3f"),
            r.result.as_str(),
            r.duration_ms,
            r.trigger
        );
        for line in &r.logs {
            say!("    │ {line}");
        }
        if let Some(error) = &r.error {
            for line in error.lines() {
                say!("    {line}");
            }
        }
    }
}
