//! What the scheduler tells the dashboard: job events and the replies to its commands.

use super::{App, HISTORY_LIMIT, History, Outcome, Overlay, View};
use crate::control::{ActionError, JobEvent, ReloadSummary};
use crate::job::Status;
use crate::tui::format;

impl App {
    pub(super) fn apply_event(&mut self, event: JobEvent) {
        match event {
            JobEvent::Job { job } => {
                let job = *job;
                let newly_deactivated = job.status == Status::Deactivated;
                let reason = job
                    .deactivated_reason
                    .clone()
                    .or_else(|| job.last_error.clone());
                let name = job.name.clone();
                let before = self.jobs.upsert(job);
                if newly_deactivated && before.is_some_and(|b| b.status != Status::Deactivated) {
                    let reason = reason
                        .as_deref()
                        .map_or_else(String::new, format::first_line);
                    self.flash_error(format!("{name} deactivated: {reason}"));
                }
            }
            JobEvent::Removed { name } => {
                self.jobs.remove(&name);
                self.logs.forget(&name);
                if self.current_job().as_deref() == Some(name.as_str()) && self.view != View::Table
                {
                    self.view = View::Table;
                }
                if let Some(Overlay::ConfirmCancel { name: asked }) = &self.overlay
                    && *asked == name
                {
                    self.overlay = None;
                }
            }
            JobEvent::Log { name, line } => self.logs.push(&name, line),
            JobEvent::Finished { name, run } => {
                // A skip is no run: a run of the job may still be going and writing its log.
                if run.result != crate::job::RunResult::Skipped {
                    self.logs.finish(&name, &run);
                }
                if let (View::Details { name: shown, .. }, History::Loaded(runs)) =
                    (&self.view, &mut self.history)
                    && *shown == name
                {
                    runs.insert(0, run);
                    runs.truncate(HISTORY_LIMIT);
                }
            }
            JobEvent::Reloaded { summary } => self.reload_done(Ok(summary)),
            JobEvent::ReloadFailed { error } => self.reload_done(Err(ActionError(error))),
            JobEvent::Notice { message } => self.flash_warning(message),
            JobEvent::Snapshot { snapshot } => {
                self.jobs.replace_all(snapshot.jobs);
                self.config_error = snapshot.config_error;
            }
        }
    }

    pub(super) fn apply_outcome(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Reload(result) => self.reload_done(result),
            Outcome::Job { verb, job, result } => match result {
                Ok(message) if message.trim().is_empty() => {
                    self.flash_info(format!("{}: {job}", verb.as_str()));
                }
                Ok(message) => self.flash_info(message),
                Err(error) => self.flash_error(format!("{} {job} failed: {error}", verb.as_str())),
            },
            Outcome::History { job, result } => {
                if matches!(&self.view, View::Details { name, .. } if *name == job) {
                    self.history = match result {
                        Ok(runs) => History::Loaded(runs),
                        Err(error) => History::Failed(error.0),
                    };
                }
            }
        }
    }

    fn reload_done(&mut self, result: Result<ReloadSummary, ActionError>) {
        self.reloading = false;
        match result {
            Ok(summary) => {
                self.config_error = None;
                self.flash_info(summary.to_string());
            }
            Err(ActionError(error)) => {
                let mut lines = error.trim().lines();
                let first = lines.next().unwrap_or_default().to_string();
                let text = match lines.count() {
                    0 => format!("reload failed: {first}"),
                    more => format!(
                        "reload failed, {} problems (jobtop check lists them): {first}",
                        more + 1
                    ),
                };
                self.config_error = Some(error);
                self.flash_error(text);
            }
        }
    }
}
