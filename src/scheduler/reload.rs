//! Reload (docs/scheduling.md#reload): read `jobs.yaml` again; on error keep the running configuration;
//! else apply the difference job by job.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::config::{self, Config};
use crate::control::{ActionError, JobEvent, ReloadSummary, Reply};
use crate::job::Status;
use crate::store::{JobState, Store};

use super::lifecycle::Event;
use super::recorder::Record;
use super::{Scheduler, database_path};

/// What a reload read off the scheduler task.
pub struct Reread {
    /// The new configuration.
    pub config: Config,
    /// The stored state of its jobs that were not scheduled when the reload began.
    pub states: Vec<JobState>,
    /// The jobs that were scheduled then: they keep the state they have.
    pub known: HashSet<String>,
}

/// Reads the configuration and the durable state of the jobs it adds, those not in `known`
/// (off the scheduler task): reading every job's row would cost more than the rest of a
/// reload of 10,000 jobs.
///
/// The state comes from `state_dir`, the running one: a new `service.state_dir` applies only at
/// the next start, so a reload that changes it is applied, not refused.
pub fn read(file: &Path, known: HashSet<String>, state_dir: &Path) -> Result<Reread, String> {
    let config = config::load(file).map_err(|e| e.to_string())?;
    let db = database_path(state_dir);
    let store = Store::open_read_only(&db).map_err(|e| e.to_string())?;
    let mut states = Vec::new();
    for job in config.jobs.iter().filter(|j| !known.contains(&j.name)) {
        if let Some(state) = store.job_state(&job.name).map_err(|e| e.to_string())? {
            states.push(state);
        }
    }
    Ok(Reread {
        config,
        states,
        known,
    })
}

impl Scheduler {
    /// The stored state of one job, read on the spot (a rare path of reload).
    fn stored_state(&self, name: &str) -> Option<JobState> {
        let db = database_path(&self.config.service.state_dir);
        Store::open_read_only(&db)
            .and_then(|store| store.job_state(name))
            .unwrap_or_else(|e| {
                self.notice(format!("cannot read the state of {name}: {e}"));
                None
            })
    }

    /// Drops the jobs the new configuration no longer has; returns their names.
    fn remove_jobs_not_in(&mut self, wanted: &HashMap<&str, usize>) -> Vec<String> {
        let mut removed = Vec::new();
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
                removed.push(name);
            }
        }
        removed
    }

    /// Warns about settings that apply only at the next start, and keeps the running values of
    /// them until then.
    fn keep_restart_only_settings(&self, mut config: Config) -> Config {
        self.warn_about_restart_only_changes(&config);
        let running = &self.config.service;
        config.service.state_dir.clone_from(&running.state_dir);
        config.service.workers = running.workers;
        config.service.operators.clone_from(&running.operators);
        config.service.viewers.clone_from(&running.viewers);
        config.service.history = running.history;
        config.service.alerts.metrics = running.alerts.metrics;
        config
            .service
            .alerts
            .metrics_textfile
            .clone_from(&running.alerts.metrics_textfile);
        config
    }

    fn warn_about_restart_only_changes(&self, config: &Config) {
        let now = &config.service;
        let was = &self.config.service;
        if now.state_dir != was.state_dir
            || now.workers != was.workers
            || now.operators != was.operators
            || now.viewers != was.viewers
            || now.history != was.history
            || now.alerts.metrics != was.alerts.metrics
            || now.alerts.metrics_textfile != was.alerts.metrics_textfile
        {
            self.notice(
                "service.state_dir, workers, operators, viewers, history, metrics and metrics_textfile changes take effect at the next start"
                    .into(),
            );
        }
    }

    pub(super) fn apply_reload(
        &mut self,
        result: Result<Reread, String>,
        reply: Reply<ReloadSummary>,
    ) {
        let Reread {
            config,
            states,
            known,
        } = match result {
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
        let config = self.keep_restart_only_settings(config);
        let states: HashMap<String, JobState> =
            states.into_iter().map(|s| (s.name.clone(), s)).collect();
        let mut summary = ReloadSummary::default();
        let wanted: HashMap<&str, usize> = config
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.name.as_str(), i))
            .collect();

        summary.removed = self.remove_jobs_not_in(&wanted);

        self.config = Arc::new(config);
        let config = self.config.clone();
        let now = self.now();
        let mut order = Vec::with_capacity(config.jobs.len());
        for spec in &config.jobs {
            let name = spec.name.clone();
            let Some(&id) = self.by_name.get(&name) else {
                let state = match states.get(&name) {
                    Some(state) => Some(state.clone()),
                    // Scheduled when the reload began, removed since by another reload.
                    None if known.contains(&name) => self.stored_state(&name),
                    None => None,
                };
                let id = self.add_job(spec.clone(), state.as_ref(), false);
                self.order.pop();
                order.push(id);
                summary.added.push(name);
                continue;
            };
            order.push(id);
            let display = config.display_name(&spec.path);
            let Some(entry) = self.jobs.get_mut(&id) else {
                continue;
            };
            // A new jobs_dir renames every file in messages, changed entry or not.
            entry.display_name = display;
            let changed = *entry.spec != **spec;
            let was_stopped = entry.status == Status::Stopped;
            let spec = if changed {
                entry.grants = Arc::new(crate::runtime::JobGrants::for_job(
                    spec,
                    Some(self.state_store.clone()),
                ));
                summary.changed.push(name.clone());
                spec.clone()
            } else {
                entry.spec.clone()
            };
            self.apply(id, Event::Reload { spec }, now);
            let resumed = was_stopped
                && self
                    .jobs
                    .get(&id)
                    .is_some_and(|e| e.status != Status::Stopped);
            if resumed {
                summary.resumed.push(name);
            } else if !changed {
                summary.unchanged += 1;
            }
        }
        self.order = order;
        self.config_error = None;
        self.config_watch.send_replace(self.config.clone());
        if !summary.removed.is_empty() {
            // Only removed jobs have a live status to forget.
            self.record(Record::Configured(self.job_names()));
        }
        tracing::info!("{summary}");
        let _ = self.events.send(JobEvent::Reloaded {
            summary: summary.clone(),
        });
        let _ = reply.send(Ok(summary));
    }
}
