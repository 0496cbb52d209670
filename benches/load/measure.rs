//! What every scenario measures the same way: process CPU time and memory from `/proc`,
//! percentiles, and the generated job files and `jobs.yaml`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The trivial job every scenario runs.
pub const OK_JOB: &str =
    "local job = core.job()\nfunction job.run()\n  return job.OK\nend\nreturn job\n";

/// A job that never returns: it runs until its timeout stops it.
pub const LOOP_JOB: &str =
    "local job = core.job()\nfunction job.run()\n  while true do end\nend\nreturn job\n";

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU time (user + system) used so far by the process `pid` (`self` for this one), all
/// threads, and by its waited-for children when `children` is set.
pub fn cpu_time_of(pid: &str, children: bool) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime are fields 14-17 of the line; `rest` starts at field 3.
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0);
    let mut ticks = field(14) + field(15);
    if children {
        ticks += field(16) + field(17);
    }
    Duration::from_secs_f64(ticks / TICKS_PER_SEC)
}

/// CPU time used so far by this process.
pub fn cpu_time() -> Duration {
    cpu_time_of("self", false)
}

/// What this process has used so far, all its threads (ended ones too).
#[derive(Clone, Copy)]
pub struct Usage {
    /// User and system CPU time.
    pub cpu: Duration,
    /// Times a thread gave up its core to wait (a sleep, a lock, a read): each is a wake-up.
    pub waits: u64,
}

impl std::ops::Sub for Usage {
    type Output = Usage;
    fn sub(self, earlier: Usage) -> Usage {
        Usage {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            waits: self.waits.saturating_sub(earlier.waits),
        }
    }
}

/// `getrusage(RUSAGE_SELF)`.
pub fn usage() -> Usage {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let time = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().try_into().unwrap_or(0))
            + Duration::from_micros(t.tv_usec().try_into().unwrap_or(0))
    };
    Usage {
        cpu: time(usage.user_time()) + time(usage.system_time()),
        waits: usage.voluntary_context_switches().try_into().unwrap_or(0),
    }
}

/// A `VmRSS`/`VmHWM`-style line of `/proc/PID/status`, in MiB.
pub fn status_mib_of(pid: &str, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Resident memory of this process now, in MiB.
pub fn rss_mib() -> f64 {
    status_mib_of("self", "VmRSS")
}

/// Peak resident memory of this process, in MiB.
pub fn peak_rss_mib() -> f64 {
    status_mib_of("self", "VmHWM")
}

/// Percentiles of a sample, nearest rank; `samples` is sorted in place.
pub struct Percentiles {
    /// How many samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `samples` (any unit); zeros when empty.
    pub fn of(samples: &mut [f64]) -> Percentiles {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if samples.is_empty() {
                return 0.0;
            }
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1]
        };
        Percentiles {
            count: samples.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: samples.last().copied().unwrap_or(0.0),
        }
    }

    /// Prints the line and the results (in ms) under `key`.
    pub fn report(&self, label: &str, key: &str) {
        println!(
            "  {label}: p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  ({} runs)",
            self.p50, self.p90, self.p99, self.max, self.count
        );
        result(&format!("{key}_p50_ms"), self.p50);
        result(&format!("{key}_p90_ms"), self.p90);
        result(&format!("{key}_p99_ms"), self.p99);
        result(&format!("{key}_max_ms"), self.max);
        #[allow(clippy::cast_precision_loss)]
        result(&format!("{key}_samples"), self.count as f64);
    }
}

/// Hands one figure to the parent process (which takes medians over repeats).
pub fn result(key: &str, value: f64) {
    println!("@ {key} {value}");
}

/// One group of generated jobs in a `jobs.yaml`.
pub struct JobGroup<'a> {
    /// Name prefix; jobs are `PREFIX-00000` …
    pub prefix: &'a str,
    /// How many.
    pub count: usize,
    /// The job file, in `jobs/`.
    pub file: &'a str,
    /// `interval:` as written; a value with a space or `*` is written as `schedule:` instead.
    pub interval: &'a str,
    /// `timeout:` as written, if the group sets one.
    pub timeout: Option<&'a str>,
}

/// Writes `jobs/ok.lua`, `jobs/loop.lua` and a `jobs.yaml` of these groups into `dir`;
/// returns the path of `jobs.yaml`.
pub fn write_config(dir: &Path, groups: &[JobGroup<'_>]) -> PathBuf {
    let jobs = dir.join("jobs");
    std::fs::create_dir_all(&jobs).expect("create jobs/");
    std::fs::write(jobs.join("ok.lua"), OK_JOB).expect("write ok.lua");
    std::fs::write(jobs.join("loop.lua"), LOOP_JOB).expect("write loop.lua");
    let file = dir.join("jobs.yaml");
    std::fs::write(&file, jobs_yaml(groups)).expect("write jobs.yaml");
    file
}

/// The text of a `jobs.yaml` of these groups.
pub fn jobs_yaml(groups: &[JobGroup<'_>]) -> String {
    let mut yaml = String::from("service:\n  jobs_dir: jobs\n  state_dir: .jobtop\n\njobs:\n");
    for group in groups {
        for i in 0..group.count {
            let when = if group.interval.contains([' ', '*', '@']) {
                format!("schedule: \"{}\"", group.interval)
            } else {
                format!("interval: {}", group.interval)
            };
            let _ = write!(
                yaml,
                "  - name: {}-{i:05}\n    path: {}\n    {when}\n",
                group.prefix, group.file
            );
            if let Some(timeout) = group.timeout {
                let _ = writeln!(yaml, "    timeout: {timeout}");
            }
        }
    }
    yaml
}

/// A group of trivial jobs.
pub fn ok_jobs<'a>(prefix: &'a str, count: usize, interval: &'a str) -> JobGroup<'a> {
    JobGroup {
        prefix,
        count,
        file: "ok.lua",
        interval,
        timeout: None,
    }
}
