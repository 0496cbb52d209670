//! The load harness: the real scheduler with generated jobs, and the baselines, in one
//! invocation, so every ratio is measured rather than remembered.
//!
//! ```text
//! cargo bench --bench load                        # the quick set, about 2 minutes
//! cargo bench --bench load -- --full --repeat 3   # every scenario at full length, 3 times
//! cargo bench --bench load -- lateness-1k tcs-1k  # only these
//! cargo bench --bench load -- --list
//! ```
//!
//! Each scenario runs in a child process of its own (this executable with `--child NAME`), so
//! its CPU time and peak memory are its own. Children print their figures as `@ key value`
//! lines; the parent shows the rest of their output, takes the median of each figure over
//! the repeats, and prints the targets (issue 16's table) with the ratios against the baselines.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Instants and CPU times here are read in order, so later minus earlier cannot underflow.
#![allow(clippy::unchecked_time_subtraction)]

mod baselines;
mod measure;
mod sched;
mod scrape;
mod tui;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, ExitCode, Stdio};

/// One scenario: its name, what it measures, whether the quick set has it, and how to run it.
struct Scenario {
    name: &'static str,
    about: &'static str,
    quick: bool,
    run: fn(full: bool),
}

fn block_on(future: impl Future<Output = ()>) {
    tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(future);
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "spawn",
        about: "baseline: a Lua interpreter process per run (lua5.4, else luau_cli)",
        quick: true,
        run: |full| {
            baselines::spawn(
                "spawn",
                if full { 1000 } else { 300 },
                if full { 5 } else { 3 },
                false,
            );
        },
    },
    Scenario {
        name: "spawn-luau",
        about: "baseline: the luau_cli example spawned per run (Luau, as jobtop embeds it)",
        quick: false,
        run: |full| baselines::spawn("spawn_luau", if full { 1000 } else { 300 }, 5, true),
    },
    Scenario {
        name: "throughput",
        about: "2,000 jobs every 10 ms, history recorded: runs/s and CPU per run",
        quick: true,
        run: |full| {
            block_on(sched::throughput(
                "throughput",
                2000,
                "10ms",
                if full { 10 } else { 3 },
            ));
        },
    },
    Scenario {
        name: "lateness-1k",
        about: "1,000 jobs every 1 s: start lateness, CPU, memory",
        quick: true,
        run: |full| {
            block_on(sched::lateness(
                "lateness_1k",
                1000,
                "1s",
                if full { 60 } else { 12 },
                0,
            ));
        },
    },
    Scenario {
        name: "tcs-1k",
        about: "baseline: tokio-cron-scheduler, 1,000 jobs every 1 s",
        quick: true,
        run: |full| {
            block_on(baselines::tokio_cron_scheduler(
                "tcs_1k",
                1000,
                1,
                if full { 60 } else { 12 },
            ));
        },
    },
    Scenario {
        name: "loopers",
        about: "1,000 jobs every 1 s beside 100 jobs looping until their 1 s timeout",
        quick: true,
        run: |full| {
            block_on(sched::lateness(
                "loopers",
                1000,
                "1s",
                if full { 60 } else { 12 },
                100,
            ));
        },
    },
    Scenario {
        name: "lateness-10k",
        about: "10,000 jobs every 10 s: start lateness, CPU, resident memory",
        quick: true,
        run: |full| {
            block_on(sched::lateness(
                "lateness_10k",
                10_000,
                "10s",
                if full { 60 } else { 25 },
                0,
            ));
        },
    },
    Scenario {
        name: "alerts-10k",
        about: "lateness-10k with /metrics scraped every second, the textfile and a webhook channel",
        quick: true,
        run: |full| {
            block_on(sched::alerts(
                "alerts_10k",
                10_000,
                "10s",
                if full { 60 } else { 25 },
            ));
        },
    },
    Scenario {
        name: "burst-1k",
        about: "1,000 jobs on one cron second (* * * * * *): all due at once, every second",
        quick: true,
        run: |full| {
            block_on(sched::lateness(
                "burst_1k",
                1000,
                "* * * * * *",
                if full { 60 } else { 12 },
                0,
            ));
        },
    },
    Scenario {
        name: "calendar-mix",
        about: "10,000 calendar jobs (*/10 * * * * *) beside 10,000 interval jobs (10 s)",
        quick: false,
        run: |full| {
            block_on(sched::calendar_mix(
                "calendar_mix",
                10_000,
                if full { 60 } else { 30 },
            ));
        },
    },
    Scenario {
        name: "interval-20k",
        about: "baseline of calendar-mix: 20,000 interval jobs every 10 s (the same run rate)",
        quick: false,
        run: |full| {
            block_on(sched::lateness(
                "interval_20k",
                20_000,
                "10s",
                if full { 60 } else { 30 },
                0,
            ));
        },
    },
    Scenario {
        name: "tcs-10k",
        about: "baseline: tokio-cron-scheduler, 10,000 jobs every 10 s",
        quick: false,
        run: |full| {
            block_on(baselines::tokio_cron_scheduler(
                "tcs_10k",
                10_000,
                10,
                if full { 60 } else { 30 },
            ));
        },
    },
    Scenario {
        name: "reload",
        about: "reload of a 10,000-job jobs.yaml while they run every 2 s",
        quick: true,
        run: |_| block_on(sched::reload("reload", 10_000, "2s", 5)),
    },
    Scenario {
        name: "startup",
        about: "10,000 jobs: start to first snapshot and first frame, in-process",
        quick: true,
        run: |_| block_on(sched::startup("startup", 10_000)),
    },
    Scenario {
        name: "idle",
        about: "1,000 jobs every 60 s for 60 s, dashboard in-process: CPU",
        quick: false,
        run: |_| block_on(sched::idle("idle", 1000, 60)),
    },
    Scenario {
        name: "tui",
        about: "the jobtop binary in tmux, 10,000 jobs: first frame, key presses, memory",
        quick: true,
        run: |full| tui::dashboard("tui", 10_000, if full { 40 } else { 20 }),
    },
    Scenario {
        name: "tui-idle",
        about: "the jobtop binary in tmux, 1,000 jobs every 60 s: CPU over 60 s",
        quick: false,
        run: |_| tui::idle("tui_idle", 1000, 60),
    },
];

struct Options {
    full: bool,
    repeat: usize,
    names: Vec<String>,
    child: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        full: false,
        repeat: 1,
        names: Vec::new(),
        child: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // cargo bench passes --bench to every bench target.
            "--bench" => {}
            "--full" => options.full = true,
            "--repeat" => {
                options.repeat = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--repeat takes a count greater than zero")?;
            }
            "--child" => options.child = Some(args.next().ok_or("--child takes a scenario")?),
            "--list" => {
                for s in SCENARIOS {
                    let set = if s.quick { "quick, full" } else { "full" };
                    println!("{:<13} {} [{set}]", s.name, s.about);
                }
                std::process::exit(0);
            }
            name if !name.starts_with('-') => {
                if !SCENARIOS.iter().any(|s| s.name == name) {
                    return Err(format!("unknown scenario {name:?}: see --list"));
                }
                options.names.push(name.to_string());
            }
            other => {
                return Err(format!(
                    "unknown option {other:?}: expected --full, --repeat N, --list or scenario names"
                ));
            }
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("load: {message}");
            return ExitCode::from(2);
        }
    };
    if let Some(name) = &options.child {
        let scenario = SCENARIOS.iter().find(|s| s.name == name).expect("known");
        (scenario.run)(options.full);
        return ExitCode::SUCCESS;
    }
    let selected: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| {
            if options.names.is_empty() {
                s.quick || options.full
            } else {
                options.names.iter().any(|n| n == s.name)
            }
        })
        .collect();
    print_machine();
    let mut figures: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for round in 1..=options.repeat {
        if options.repeat > 1 {
            println!("\n=== round {round} of {} ===", options.repeat);
        }
        for scenario in &selected {
            println!();
            if !run_child(scenario.name, options.full, &mut figures) {
                return ExitCode::FAILURE;
            }
        }
    }
    let medians: Medians = figures
        .into_iter()
        .map(|(key, mut values)| {
            values.sort_by(f64::total_cmp);
            (key, values[values.len() / 2])
        })
        .collect();
    print_summary(&medians, options.repeat);
    ExitCode::SUCCESS
}

fn print_machine() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {cores} cores, {model}; load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// Runs one scenario in a child process, echoing its output and keeping its figures.
fn run_child(name: &str, full: bool, figures: &mut BTreeMap<String, Vec<f64>>) -> bool {
    let exe = std::env::current_exe().expect("own path");
    let mut command = Command::new(exe);
    command.args(["--child", name]);
    if full {
        command.arg("--full");
    }
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a scenario");
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(figure) = line.strip_prefix("@ ") {
            if let Some((key, value)) = figure.split_once(' ')
                && let Ok(value) = value.parse::<f64>()
            {
                figures.entry(key.to_string()).or_default().push(value);
            }
        } else {
            println!("{line}");
        }
    }
    let status = child.wait().expect("wait for a scenario");
    if !status.success() {
        eprintln!("load: scenario {name} failed: {status}");
    }
    status.success()
}

type Medians = BTreeMap<String, f64>;

/// One line of the summary: a figure of issue 7, where jobtop's value and the baseline's come
/// from, and whether the target is met.
struct Target {
    figure: &'static str,
    key: &'static str,
    unit: &'static str,
    baseline: Option<&'static str>,
    /// The ratio is baseline / jobtop (lower is better), else jobtop / baseline.
    lower_is_better: bool,
    goal: &'static str,
    met: fn(f64, &Medians) -> bool,
}

const TARGETS: &[Target] = &[
    Target {
        figure: "start lateness p99, 1,000 jobs at 1 s (spread by their slots)",
        key: "lateness_1k_p99_ms",
        unit: "ms",
        baseline: Some("tcs_1k_p99_ms"),
        lower_is_better: true,
        goal: "p99 <= 1 ms",
        met: |v, _| v <= 1.0,
    },
    Target {
        figure: "start lateness max, 1,000 jobs at 1 s",
        key: "lateness_1k_max_ms",
        unit: "ms",
        baseline: Some("tcs_1k_max_ms"),
        lower_is_better: true,
        goal: "max <= 5 ms",
        met: |v, _| v <= 5.0,
    },
    Target {
        figure: "CPU per run, 1,000 jobs at 1 s (1,000 runs/s)",
        key: "lateness_1k_cpu_per_run_us",
        unit: "us",
        baseline: Some("spawn_run_us"),
        lower_is_better: true,
        goal: "<= 20 us",
        met: |v, _| v <= 20.0,
    },
    Target {
        figure: "CPU, 1,000 jobs at 1 s",
        key: "lateness_1k_cpu_percent",
        unit: "% core",
        baseline: None,
        lower_is_better: true,
        goal: "<= 2 % of a core",
        met: |v, _| v <= 2.0,
    },
    Target {
        figure: "start lateness p99, 10,000 jobs at 10 s",
        key: "lateness_10k_p99_ms",
        unit: "ms",
        baseline: Some("tcs_10k_p99_ms"),
        lower_is_better: true,
        goal: "p99 <= 2 ms",
        met: |v, _| v <= 2.0,
    },
    Target {
        figure: "all due at once: 1,000 jobs on one cron second, max lateness",
        key: "burst_1k_max_ms",
        unit: "ms",
        baseline: None,
        lower_is_better: true,
        goal: "all started within 10 ms",
        met: |v, _| v <= 10.0,
    },
    Target {
        figure: "CPU per run under overload (throughput)",
        key: "throughput_cpu_per_run_us",
        unit: "us",
        baseline: Some("spawn_run_us"),
        lower_is_better: true,
        goal: "<= 10 us",
        met: |v, _| v <= 10.0,
    },
    Target {
        figure: "recorded runs/s",
        key: "throughput_runs_per_s",
        unit: "runs/s",
        baseline: Some("spawn_runs_per_s"),
        lower_is_better: false,
        goal: ">= 100,000 runs/s",
        met: |v, _| v >= 100_000.0,
    },
    Target {
        figure: "lateness p99 of 1,000 jobs beside 100 loopers",
        key: "loopers_p99_ms",
        unit: "ms",
        baseline: Some("lateness_1k_p99_ms"),
        lower_is_better: false,
        goal: "within 2x of without loopers",
        met: |v, m| {
            m.get("lateness_1k_p99_ms")
                .is_some_and(|without| v <= 2.0 * without.max(0.001))
        },
    },
    Target {
        figure: "key press to updated screen, 10,000 jobs (binary, tmux)",
        key: "tui_key_ms",
        unit: "ms",
        baseline: None,
        lower_is_better: true,
        goal: "<= 50 ms",
        met: |v, _| v <= 50.0,
    },
    Target {
        figure: "CPU idle, 1,000 jobs at 60 s, dashboard open (binary, tmux)",
        key: "tui_idle_cpu_percent",
        unit: "% core",
        baseline: None,
        lower_is_better: true,
        goal: "<= 0.5 % of one core",
        met: |v, _| v <= 0.5,
    },
    Target {
        figure: "CPU idle, same, dashboard in-process (harness)",
        key: "idle_cpu_percent",
        unit: "% core",
        baseline: None,
        lower_is_better: true,
        goal: "<= 0.5 % of one core",
        met: |v, _| v <= 0.5,
    },
    Target {
        figure: "resident memory, 10,000 jobs (binary with dashboard)",
        key: "tui_rss_mib",
        unit: "MiB",
        baseline: None,
        lower_is_better: true,
        goal: "<= 48 MiB",
        met: |v, _| v <= 48.0,
    },
    Target {
        figure: "reload of a 10,000-job jobs.yaml",
        key: "reload_ms",
        unit: "ms",
        baseline: None,
        lower_is_better: true,
        goal: "<= 50 ms, no due run missed",
        met: |v, m| v <= 50.0 && m.get("reload_missed").is_some_and(|n| *n == 0.0),
    },
    Target {
        figure: "startup to first frame, 10,000 jobs (binary, tmux)",
        key: "tui_first_frame_ms",
        unit: "ms",
        baseline: None,
        lower_is_better: true,
        goal: "<= 150 ms",
        met: |v, _| v <= 150.0,
    },
    Target {
        figure: "calendar mix: interval jobs' lateness p99 beside 10,000 calendar jobs",
        key: "calendar_mix_interval_p99_ms",
        unit: "ms",
        baseline: Some("interval_20k_p99_ms"),
        lower_is_better: false,
        goal: "no worse than interval jobs alone",
        met: |v, m| {
            m.get("interval_20k_p99_ms")
                .is_some_and(|alone| v <= alone.max(0.5) * 1.5)
        },
    },
    Target {
        figure: "calendar mix: CPU per run",
        key: "calendar_mix_cpu_per_run_us",
        unit: "us",
        baseline: Some("interval_20k_cpu_per_run_us"),
        lower_is_better: false,
        goal: "no worse than interval jobs alone",
        met: |v, m| {
            m.get("interval_20k_cpu_per_run_us")
                .is_some_and(|alone| v <= alone * 1.2)
        },
    },
];

fn print_summary(medians: &Medians, repeat: usize) {
    let mut m = medians.clone();
    if let Some(ms) = m.get("spawn_run_ms").copied() {
        m.insert("spawn_run_us".into(), ms * 1e3);
    }
    println!(
        "\n=== summary (median of {repeat} run{}) ===",
        if repeat == 1 { "" } else { "s" }
    );
    println!(
        "{:<66} {:>15} {:>15} {:>8}  {:<37} met",
        "figure", "jobtop", "baseline", "ratio", "target"
    );
    let show = |v: Option<f64>, unit: &str| {
        v.map_or_else(|| "-".to_string(), |v| format!("{} {unit}", number(v)))
    };
    for t in TARGETS {
        let value = m.get(t.key).copied();
        let baseline = t.baseline.and_then(|key| m.get(key).copied());
        let ratio = match (value, baseline) {
            (Some(v), Some(b)) if v > 0.0 && b > 0.0 => {
                format!("{:.1}x", if t.lower_is_better { b / v } else { v / b })
            }
            _ => "-".to_string(),
        };
        let met = match value.map(|v| (t.met)(v, &m)) {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!(
            "{:<66} {:>15} {:>15} {:>8}  {:<37} {met}",
            t.figure,
            show(value, t.unit),
            show(baseline, t.unit),
            ratio,
            t.goal
        );
    }
    println!(
        "(ratio: how many times better jobtop is than the baseline; for the loopers row, the \
         lateness with loopers over without)"
    );
    println!("\nall figures (median):");
    for (key, value) in medians {
        println!("  {key:<36} {}", number(*value));
    }
}

fn number(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}
