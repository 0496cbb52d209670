//! The dashboard's copy of the job table, and which part of it the operator looks at: filters,
//! sort order, selection and scroll position. The selection is kept by job name, so rows that
//! move (a new status, a new sort position) keep the operator's place.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::control::JobView;
use crate::job::Status;

/// Which statuses the table shows (`f` cycles through them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    /// Every job.
    #[default]
    All,
    /// Deactivated jobs, jobs retrying a failed run, and jobs whose last run failed.
    Failing,
    /// Jobs with a run in progress.
    Running,
    /// Jobs waiting for their next run.
    Waiting,
    /// Stopped, sleeping and done jobs.
    Idle,
    /// Jobs disabled in `jobs.yaml`.
    Disabled,
}

impl StatusFilter {
    /// The next filter in the cycle.
    #[must_use]
    pub fn next(self) -> Self {
        match self {
            StatusFilter::All => StatusFilter::Failing,
            StatusFilter::Failing => StatusFilter::Running,
            StatusFilter::Running => StatusFilter::Waiting,
            StatusFilter::Waiting => StatusFilter::Idle,
            StatusFilter::Idle => StatusFilter::Disabled,
            StatusFilter::Disabled => StatusFilter::All,
        }
    }

    /// The word shown in the header.
    pub fn label(self) -> &'static str {
        match self {
            StatusFilter::All => "all",
            StatusFilter::Failing => "failing",
            StatusFilter::Running => "running",
            StatusFilter::Waiting => "waiting",
            StatusFilter::Idle => "stopped/sleeping/done",
            StatusFilter::Disabled => "disabled",
        }
    }

    /// Whether a job passes this filter.
    pub fn matches(self, job: &JobView) -> bool {
        match self {
            StatusFilter::All => true,
            StatusFilter::Failing => {
                matches!(job.status, Status::Deactivated | Status::Retrying)
                    || job
                        .last_result
                        .is_some_and(crate::job::RunResult::is_failure)
            }
            StatusFilter::Running => job.status == Status::Running,
            StatusFilter::Waiting => job.status == Status::Waiting,
            StatusFilter::Idle => matches!(
                job.status,
                Status::Stopped | Status::Sleeping | Status::Done
            ),
            StatusFilter::Disabled => job.status == Status::Disabled,
        }
    }
}

/// The order of the table (`s` cycles through them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// By name.
    #[default]
    Name,
    /// Problems first: deactivated, running, waiting, then the idle ones.
    Status,
    /// Soonest next run first.
    NextRun,
    /// Most recent last run first.
    LastRun,
}

impl SortKey {
    /// The next order in the cycle.
    #[must_use]
    pub fn next(self) -> Self {
        match self {
            SortKey::Name => SortKey::Status,
            SortKey::Status => SortKey::NextRun,
            SortKey::NextRun => SortKey::LastRun,
            SortKey::LastRun => SortKey::Name,
        }
    }

    /// The words shown in the header.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::Status => "status",
            SortKey::NextRun => "next run",
            SortKey::LastRun => "last run",
        }
    }

    fn compare(self, a: &JobView, b: &JobView) -> Ordering {
        let primary = match self {
            SortKey::Name => Ordering::Equal,
            SortKey::Status => status_rank(a.status).cmp(&status_rank(b.status)),
            // `None` sorts last in both: a job with nothing scheduled is the least urgent.
            SortKey::NextRun => match (a.next_run, b.next_run) {
                (Some(x), Some(y)) => x.cmp(&y),
                (x, y) => x.is_none().cmp(&y.is_none()),
            },
            SortKey::LastRun => match (a.last_run, b.last_run) {
                (Some(x), Some(y)) => y.cmp(&x),
                (x, y) => x.is_none().cmp(&y.is_none()),
            },
        };
        primary.then_with(|| a.name.cmp(&b.name))
    }
}

fn status_rank(status: Status) -> u8 {
    match status {
        Status::Deactivated => 0,
        Status::Retrying => 1,
        Status::Running => 2,
        Status::Waiting => 3,
        Status::Stopped => 4,
        Status::Sleeping => 5,
        Status::Done => 6,
        Status::Disabled => 7,
    }
}

/// Whether `name` contains `filter`, ignoring ASCII case (job names are ASCII), without
/// allocating: this runs for every job on every refresh.
fn name_matches(name: &str, filter: &str) -> bool {
    let (name, filter) = (name.as_bytes(), filter.as_bytes());
    filter.is_empty()
        || name
            .windows(filter.len())
            .any(|w| w.eq_ignore_ascii_case(filter))
}

/// The jobs, and the operator's window onto them.
#[derive(Debug, Default)]
pub struct JobList {
    jobs: Vec<JobView>,
    index: HashMap<String, usize>,
    /// Positions in `jobs` that pass the filters, in display order.
    visible: Vec<usize>,
    /// `visible` is stale; events only set this, and `refresh` rebuilds once per frame.
    dirty: bool,
    selected: usize,
    selected_name: Option<String>,
    offset: usize,
    /// The name filter (case-insensitive substring).
    pub name_filter: String,
    /// The status filter.
    pub status_filter: StatusFilter,
    /// The sort order.
    pub sort: SortKey,
}

impl JobList {
    /// A list of these jobs, sorted by name, the first one selected.
    pub fn new(jobs: Vec<JobView>) -> Self {
        let mut list = JobList::default();
        list.replace_all(jobs);
        list
    }

    /// Every job, in the order they arrived (not the display order).
    pub fn all(&self) -> &[JobView] {
        &self.jobs
    }

    /// One job by name.
    pub fn get(&self, name: &str) -> Option<&JobView> {
        self.index.get(name).and_then(|&i| self.jobs.get(i))
    }

    /// Replaces the whole table (a new snapshot), keeping the selection by name.
    pub fn replace_all(&mut self, jobs: Vec<JobView>) {
        self.index = jobs
            .iter()
            .enumerate()
            .map(|(i, job)| (job.name.clone(), i))
            .collect();
        self.jobs = jobs;
        self.dirty = true;
    }

    /// Adds or replaces one job; returns the job as it was before.
    pub fn upsert(&mut self, job: JobView) -> Option<JobView> {
        self.dirty = true;
        if let Some(&i) = self.index.get(&job.name) {
            self.jobs
                .get_mut(i)
                .map(|slot| std::mem::replace(slot, job))
        } else {
            self.index.insert(job.name.clone(), self.jobs.len());
            self.jobs.push(job);
            None
        }
    }

    /// Drops one job.
    pub fn remove(&mut self, name: &str) {
        if let Some(i) = self.index.remove(name) {
            self.jobs.remove(i);
            for slot in self.index.values_mut() {
                if *slot > i {
                    *slot -= 1;
                }
            }
            self.dirty = true;
        }
    }

    /// Marks the display order stale (after a filter or sort change).
    pub fn invalidate(&mut self) {
        self.dirty = true;
    }

    /// Rebuilds the display order if it is stale, finds the selected job again by name, and
    /// scrolls it into a window of `rows` rows.
    pub fn refresh(&mut self, rows: usize) {
        if self.dirty {
            self.dirty = false;
            let jobs = &self.jobs;
            let (filter, status, sort) = (&self.name_filter, self.status_filter, self.sort);
            self.visible = (0..jobs.len())
                .filter(|&i| name_matches(&jobs[i].name, filter) && status.matches(&jobs[i]))
                .collect();
            self.visible
                .sort_by(|&a, &b| sort.compare(&jobs[a], &jobs[b]));
            if let Some(name) = &self.selected_name
                && let Some(pos) = self.visible.iter().position(|&i| &jobs[i].name == name)
            {
                self.selected = pos;
            }
        }
        self.select(self.selected, rows);
    }

    /// How many jobs pass the filters.
    pub fn visible_len(&self) -> usize {
        self.visible.len()
    }

    /// The position of the selection among the visible jobs.
    pub fn selected_index(&self) -> usize {
        self.selected
    }

    /// The first visible row of the window.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The selected job, if any job is visible.
    pub fn selected(&self) -> Option<&JobView> {
        self.visible
            .get(self.selected)
            .and_then(|&i| self.jobs.get(i))
    }

    /// Selects the visible job at `pos` (clamped) and scrolls it into a window of `rows`.
    pub fn select(&mut self, pos: usize, rows: usize) {
        let len = self.visible.len();
        self.selected = pos.min(len.saturating_sub(1));
        self.selected_name = self.selected().map(|job| job.name.clone());
        let rows = rows.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + rows {
            self.offset = self.selected + 1 - rows;
        }
        // No blank rows below the last job while there are jobs above the window.
        self.offset = self.offset.min(len.saturating_sub(rows));
    }

    /// Moves the selection by `delta` rows.
    pub fn move_by(&mut self, delta: isize, rows: usize) {
        let pos = self.selected.saturating_add_signed(delta);
        self.select(pos, rows);
    }

    /// Every visible job, in display order.
    pub fn visible(&self) -> impl Iterator<Item = &JobView> {
        self.visible.iter().filter_map(|&i| self.jobs.get(i))
    }

    /// The visible jobs from `offset`, at most `rows` of them: the only rows ever built.
    pub fn window(&self, rows: usize) -> impl Iterator<Item = (usize, &JobView)> {
        self.visible
            .iter()
            .enumerate()
            .skip(self.offset)
            .take(rows)
            .filter_map(|(pos, &i)| self.jobs.get(i).map(|job| (pos, job)))
    }
}
