//! Reload (SPEC section 8): read `jobs.yaml` again; on error keep the running configuration;
//! else apply the difference job by job.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tokio::time::Instant;

use crate::config::{self, Config};
use crate::control::{ActionError, JobEvent, ReloadSummary, Reply};
use crate::job::Status;
use crate::store::{JobState, Store};

use super::recorder::Record;
use super::{Scheduler, database_path, resume_due, zone_of};

/// Reads the configuration and the jobs' durable state (off the scheduler task).
pub fn read(file: &Path) -> Result<(Config, Vec<JobState>), String> {
    let config = config::load(file).map_err(|e| e.to_string())?;
    let db = database_path(&config.service.state_dir);
    let states = Store::open_read_only(&db)
        .and_then(|store| store.job_states())
        .map_err(|e| e.to_string())?;
    Ok((config, states))
}

impl Scheduler {
    fn warn_about_restart_only_changes(&self, config: &Config) {
        let now = &config.service;
        let was = &self.config.service;
        if now.state_dir != was.state_dir
            || now.workers != was.workers
            || now.operators != was.operators
            || now.viewers != was.viewers
        {
            self.notice(
                "service.state_dir, workers, operators and viewers changes take effect at the next start"
                    .into(),
            );
        }
    }

    pub(super) fn apply_reload(
        &mut self,
        result: Result<(Config, Vec<JobState>), String>,
        reply: Reply<ReloadSummary>,
    ) {
        let (config, states) = match result {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!("reload refused: {error}");
                self.config_error = Some(error.clone());
                let _ = self.events.send(JobEvent::ReloadFailed {
                    error: error.clone(),
                });
                let _ = reply.send(Err(ActionError(error)));
                return;
            }
        };
        self.warn_about_restart_only_changes(&config);
        let states: HashMap<String, JobState> =
            states.into_iter().map(|s| (s.name.clone(), s)).collect();
        let mut summary = ReloadSummary::default();
        let wanted: HashMap<&str, usize> = config
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.name.as_str(), i))
            .collect();

        for id in self.order.clone() {
            let Some(entry) = self.jobs.get(&id) else {
                continue;
            };
            if !wanted.contains_key(entry.spec.name.as_str()) {
                let name = entry.spec.name.clone();
                // A run in progress finishes; its result is recorded, nothing else.
                self.jobs.remove(&id);
                self.by_name.remove(&name);
                let _ = self.events.send(JobEvent::Removed { name: name.clone() });
                summary.removed.push(name);
            }
        }

        self.config = Arc::new(config);
        self.zone = zone_of(&self.config);
        let now = Instant::now();
        let wall_now = self.wall_now();
        let mut order = Vec::with_capacity(self.config.jobs.len());
        for spec in self.config.jobs.clone() {
            let name = spec.name.clone();
            let Some(&id) = self.by_name.get(&name) else {
                let id = self.add_job(Arc::new(spec), states.get(&name), false);
                self.order.pop();
                order.push(id);
                self.publish(id);
                summary.added.push(name);
                continue;
            };
            order.push(id);
            let Some(entry) = self.jobs.get_mut(&id) else {
                continue;
            };
            let changed = !entry.spec.same_definition(&spec);
            let was_stopped = entry.status == Status::Stopped;
            if changed {
                let interval_changed = entry.spec.interval != spec.interval;
                entry.grants = Arc::new(crate::runtime::JobGrants::for_job(
                    &spec,
                    Some(self.state_store.clone()),
                ));
                entry.spec = Arc::new(spec);
                if entry.status != Status::Deactivated {
                    if !entry.spec.active {
                        entry.status = Status::Disabled;
                    } else if entry.status == Status::Disabled {
                        entry.status = Status::Waiting;
                        entry.due = Some(resume_due(entry, now, wall_now));
                    }
                }
                if interval_changed && entry.is_scheduled() {
                    entry.due = Some(resume_due(entry, now, wall_now));
                }
                summary.changed.push(name.clone());
            }
            if was_stopped && entry.spec.active {
                entry.status = Status::Waiting;
                entry.due = Some(resume_due(entry, now, wall_now));
                summary.resumed.push(name);
            } else if !changed {
                summary.unchanged += 1;
                continue;
            }
            self.arm(id);
            self.publish(id);
        }
        self.order = order;
        self.config_error = None;
        self.recorder.send(Record::Configured(self.job_names()));
        tracing::info!("{summary}");
        let _ = self.events.send(JobEvent::Reloaded {
            summary: summary.clone(),
        });
        let _ = reply.send(Ok(summary));
    }
}
