//! `jobtop activate|cancel|trigger NAME` and `jobtop reload` with no service running: they act
//! on the state database directly, holding the state directory so no service starts meanwhile.
//! (With a service running, they go through its control socket.)

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;

use super::exit;
use crate::config::{self, Config, JobSpec};
use crate::control::Verb;
use crate::job::Trigger;
use crate::runtime::{
    JobGrants, JobRunner, LocalZone, RunControl, RunRequest, ScriptCache, SqliteState,
};
use crate::scheduler::database_path;
use crate::socket::{self, client};
use crate::state_dir;
use crate::store::Store;

/// Runs an operator action: through the running service, else on the database; returns the
/// exit code.
pub fn run(file: &Path, verb: Verb, name: &str) -> u8 {
    let socket = socket::path_for_config(file);
    if let Some(answer) =
        client::with_service(
            &socket,
            |client| async move { client.act(verb, name).await },
        )
    {
        return match answer {
            Ok(message) => {
                say!("{message}");
                exit::OK
            }
            Err(e) => {
                eprintln!("jobtop {verb}: {e}");
                exit::FAILED
            }
        };
    }
    match act(file, verb, name) {
        Ok((message, code)) => {
            say!("{message}");
            code
        }
        Err((message, code)) => {
            eprintln!("jobtop {verb}: {message}");
            code
        }
    }
}

fn act(file: &Path, verb: Verb, name: &str) -> Result<(String, u8), (String, u8)> {
    let config = config::load(file).map_err(|e| (e.to_string(), exit::USAGE))?;
    let spec = config.job(name).map_err(|e| (e, exit::FAILED))?;
    let dir = &config.service.state_dir;
    let _lock = state_dir::lock(dir, "cli").map_err(|e| (e.to_string(), exit::FAILED))?;
    let mut store = Store::open(&database_path(dir)).map_err(|e| (e.to_string(), exit::FAILED))?;
    let failed = |e: crate::store::StoreError| (e.to_string(), exit::FAILED);
    let user = Some(crate::users::current_user());
    let now = Utc::now();
    match verb {
        Verb::Activate => {
            let deactivated = store
                .job_state(name)
                .map_err(failed)?
                .is_some_and(|s| s.deactivated);
            if !deactivated {
                return Ok((
                    format!("{name} is not deactivated: it runs when the service starts"),
                    exit::OK,
                ));
            }
            store.activate(name, now).map_err(failed)?;
            Ok((
                format!("activated {name}: it runs when the service starts"),
                exit::OK,
            ))
        }
        Verb::Cancel => {
            let who = user.as_deref().unwrap_or("an operator");
            store
                .deactivate(name, &format!("cancelled by {who}"), user.as_deref(), now)
                .map_err(failed)?;
            Ok((format!("cancelled {name}"), exit::OK))
        }
        Verb::Trigger => trigger(&config, spec, &mut store),
    }
}

/// Runs the job once here and now, records the run, and applies its result.
fn trigger(
    config: &Config,
    spec: &JobSpec,
    store: &mut Store,
) -> Result<(String, u8), (String, u8)> {
    let zone = config
        .service
        .timezone
        .map_or(LocalZone::System, LocalZone::Named);
    let scheduled = Utc::now();
    let request = RunRequest {
        file: spec.file.clone(),
        display_name: config.display_name(&spec.path),
        scheduled,
        zone,
        timeout: spec.timeout,
        memory: spec.memory,
        control: RunControl::new(),
        log_sink: None,
        grants: Arc::new(JobGrants::for_job(
            spec,
            Some(Arc::new(SqliteState::new(database_path(
                &config.service.state_dir,
            )))),
        )),
    };
    let outcome = JobRunner::new(Arc::new(ScriptCache::new()), Vec::new()).run(&request);
    let failed = |e: crate::store::StoreError| (e.to_string(), exit::FAILED);
    store
        .record(
            &[outcome.record(&spec.name, scheduled, Trigger::Operator)],
            &[],
        )
        .map_err(failed)?;
    let reason = outcome.deactivation_reason();
    if let Some(reason) = &reason {
        store
            .deactivate(&spec.name, reason, None, Utc::now())
            .map_err(failed)?;
    }
    let mut message = String::new();
    for line in &outcome.logs {
        let _ = writeln!(message, "  │ {line}");
    }
    let _ = write!(
        message,
        "ran {} once: {} in {:.1} ms",
        spec.name,
        outcome.result,
        outcome.duration.as_secs_f64() * 1e3
    );
    if let Some(error) = &outcome.error {
        let _ = write!(message, "\n  {}", error.replace('\n', "\n  "));
    }
    if reason.is_some() {
        let _ = write!(message, "\n{} is now deactivated", spec.name);
    }
    let code = if outcome.result.is_failure() {
        exit::FAILED
    } else {
        exit::OK
    };
    Ok((message, code))
}

/// `jobtop reload`: through the running service's control socket; with no service there is
/// nothing to do, and it says so.
pub fn reload(file: &Path) -> u8 {
    let socket = socket::path_for_config(file);
    if let Some(summary) =
        client::with_service(&socket, |client| async move { client.reload().await })
    {
        return match summary {
            Ok(summary) => {
                say!("{summary}");
                exit::OK
            }
            Err(e) => {
                eprintln!("jobtop reload: refused, the running configuration stays:\n{e}");
                exit::FAILED
            }
        };
    }
    let config = match config::load(file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("jobtop reload: {e}");
            return exit::USAGE;
        }
    };
    match state_dir::holder(&config.service.state_dir) {
        Some(holder) => {
            eprintln!(
                "jobtop reload: a service is running ({holder}); send it SIGHUP (`kill -HUP {}`) or press r in its dashboard",
                state_dir::holder_pid(&holder).map_or("<pid>".to_string(), |p| p.to_string())
            );
            exit::FAILED
        }
        None => {
            say!(
                "no jobtop service is running on {}: nothing to reload (the next start reads {})",
                config.service.state_dir.display(),
                file.display()
            );
            exit::OK
        }
    }
}
