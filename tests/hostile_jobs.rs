//! Hostile and broken job files on the real runtime: every script of the runaway catalogue
//! (`tests/fixtures/runaway/`) must be stopped within its timeout plus 100 ms with the right
//! result, with the process's memory bounded and its stored log lines bounded. Those that call
//! `core.exec` run real processes (which must be gone afterwards); those that call
//! `core.network` talk to a real TCP server on 127.0.0.1 that never answers, or answers one
//! byte at a time.
//!
//! Memory is the process's peak resident set (`VmHWM` of `/proc/self/status`, reset before
//! each run through `/proc/self/clear_refs`) over what it was before the run. The scripts run
//! one after another in one test, and the tests of this file that run job files take turns, so
//! nothing else of this binary runs beside them.
//!
//! `catalogue_is_stopped_and_bounded` tries each script once; the long version
//! (`cargo test --test hostile_jobs -- --ignored --nocapture`) tries each five times and prints
//! the median and worst figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::runner::{allowing, request, runner, write_job};
use jobtop::config::Capability;
use jobtop::job::RunResult;
use jobtop::runtime::{JobRunner, MAX_LOG_LINE_BYTES, MAX_LOG_LINES, RunRequest};

/// The timeout of every run.
const TIMEOUT: Duration = Duration::from_millis(300);
/// The memory limit of every run, but for [`small_objects`].
const MEMORY: u64 = 64 << 20;
/// The memory limit of the [`small_objects`] bombs.
const SMALL_MEMORY: u64 = 8 << 20;
/// Every script must end within its timeout plus this much (as in `tests/runtime.rs`).
const SLACK: Duration = Duration::from_millis(100);
/// The most the process's peak resident memory may grow during one run.
const RSS_BOUND: u64 = 256 << 20;
/// What a cut log line ends with.
const CUT_MARK: &str = " … [line cut]";

/// Held by every test of this file that runs job files, so that the memory and time of one
/// are not another's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a script needs besides the runtime.
#[derive(Clone, Copy, PartialEq)]
enum Needs {
    Nothing,
    /// `allow: [exec]`; the processes whose command line holds the marker must be gone after.
    Exec(&'static str),
    /// `allow: [network]` and the local server's URL in place of `{{URL}}`.
    Network,
}

struct Pattern {
    file: &'static str,
    expect: RunResult,
    needs: Needs,
    /// The run's memory limit.
    memory: u64,
}

const fn pattern(file: &'static str, expect: RunResult) -> Pattern {
    Pattern {
        file,
        expect,
        needs: Needs::Nothing,
        memory: MEMORY,
    }
}

/// A memory bomb that fills its heap with many small objects: in an unoptimised build it
/// takes about as long as the timeout to fill 64 MiB, so its result would be a race between
/// the two limits (more so on a loaded machine); it gets 8 MiB.
const fn small_objects(file: &'static str) -> Pattern {
    Pattern {
        memory: SMALL_MEMORY,
        ..pattern(file, RunResult::Memory)
    }
}

const fn exec(file: &'static str, marker: &'static str) -> Pattern {
    Pattern {
        file,
        expect: RunResult::Timeout,
        needs: Needs::Exec(marker),
        memory: MEMORY,
    }
}

const fn network(file: &'static str) -> Pattern {
    Pattern {
        file,
        expect: RunResult::Timeout,
        needs: Needs::Network,
        memory: MEMORY,
    }
}

use RunResult::{Error, Memory, Timeout};

/// The whole catalogue: the 22 scripts `tests/runtime.rs` knows, then the ones added here.
const CATALOGUE: &[Pattern] = &[
    // loops, swallowed errors, coroutines
    pattern("infinite_loop.lua", Timeout),
    pattern("top_level_loop.lua", Timeout),
    pattern("pcall_swallow.lua", Timeout),
    pattern("nested_pcall.lua", Timeout),
    pattern("xpcall_handler.lua", Timeout),
    pattern("coroutine_swallow.lua", Timeout),
    pattern("yield_forever.lua", Timeout),
    pattern("nested_coroutines.lua", Timeout),
    pattern("deep_recursion.lua", Error),
    pattern("recursion_swallowed.lua", Timeout),
    pattern("error_loop.lua", Timeout),
    // memory
    pattern("string_growth.lua", Memory),
    pattern("string_rep_huge.lua", Memory),
    small_objects("table_bomb.lua"),
    small_objects("memory_swallowed.lua"),
    small_objects("concat_bomb.lua"),
    // library calls, callbacks, metamethods
    pattern("pattern.lua", Timeout),
    pattern("gsub_callback.lua", Timeout),
    pattern("sort_comparator.lua", Timeout),
    pattern("index_loop.lua", Timeout),
    pattern("log_flood.lua", Timeout),
    pattern("sleep_forever.lua", Timeout),
    // --- added for issue 8 ---
    pattern("pattern_captures.lua", Timeout),
    pattern("gmatch_backtrack.lua", Timeout),
    pattern("format_growth.lua", Memory),
    pattern("concat_separator.lua", Memory),
    pattern("table_create.lua", Memory),
    pattern("buffer_bomb.lua", Memory),
    pattern("rep_near_limit.lua", Memory),
    small_objects("coroutine_hoard.lua"),
    pattern("yield_across_pcall.lua", Timeout),
    pattern("newindex_loop.lua", Timeout),
    pattern("newindex_spin.lua", Timeout),
    pattern("tostring_loop.lua", Timeout),
    pattern("concat_metamethod.lua", Timeout),
    pattern("compare_metamethods.lua", Timeout),
    pattern("len_call_loop.lua", Timeout),
    pattern("index_chain_cycle.lua", Error),
    pattern("gc_loop.lua", Timeout),
    pattern("log_gigabyte.lua", Timeout),
    pattern("sleep_swallowed.lua", Timeout),
    exec("exec_sleep.lua", "sleep 30.713"),
    exec("exec_shell_loop.lua", "sleep 30.714"),
    exec("exec_output_flood.lua", "flood-30.715"),
    exec("exec_again.lua", "sleep 30.716"),
    network("network_silent.lua"),
    network("network_trickle.lua"),
    network("network_trickle_headers.lua"),
    network("network_again.lua"),
];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/runaway")
        .join(name)
}

// ---------------------------------------------------------------------------------------------
// A server on 127.0.0.1 that never answers, or answers one byte at a time.

struct Server {
    base: String,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                thread::spawn(move || {
                    let _ = hostile_answer(&stream);
                });
            }
        });
        Server { base }
    }
}

/// Reads the request head, then: `/silent` never answers, `/trickle-body` sends a 1 MB body
/// one byte every 20 ms, `/trickle-headers` sends a status line and headers without end, one
/// byte every 20 ms. Each ends when the client goes away (or after a minute).
fn hostile_answer(stream: &TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut out = stream;
    let until = Instant::now() + Duration::from_secs(60);
    let trickle = |out: &mut &TcpStream, bytes: &mut dyn Iterator<Item = u8>| {
        for byte in bytes {
            if Instant::now() > until {
                break;
            }
            out.write_all(&[byte])?;
            thread::sleep(Duration::from_millis(20));
        }
        Ok::<(), std::io::Error>(())
    };
    match path.as_str() {
        "/trickle-body" => {
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")?;
            trickle(&mut out, &mut std::iter::repeat(b'x'))
        }
        "/trickle-headers" => trickle(
            &mut out,
            &mut b"HTTP/1.1 200 OK\r\n"
                .iter()
                .copied()
                .chain(b"X-Slow: a\r\n".iter().copied().cycle()),
        ),
        _ => {
            // Silent: wait for the client to hang up.
            stream.set_read_timeout(Some(Duration::from_secs(60)))?;
            let mut rest = Vec::new();
            let _ = std::io::Read::read_to_end(&mut reader, &mut rest);
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory of this process.

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap()
}

/// Resets the peak resident set (`VmHWM`) to the current one.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

// ---------------------------------------------------------------------------------------------
// Trials.

/// What one run of one script did.
struct Trial {
    result: RunResult,
    error: Option<String>,
    took: Duration,
    /// Peak resident memory during the run over the resident memory before it.
    rss_growth: u64,
    /// Peak resident memory of the process during the run.
    rss_peak: u64,
    log_lines: usize,
    longest_log: usize,
    /// Processes of the script still alive after it (for `core.exec` scripts).
    leftovers: bool,
}

fn run_once(runner: &mut JobRunner, pattern: &Pattern, server: &Server, dir: &Path) -> Trial {
    let source = std::fs::read_to_string(fixture(pattern.file)).unwrap();
    let file = write_job(dir, pattern.file, &source.replace("{{URL}}", &server.base));
    let allow = match pattern.needs {
        Needs::Nothing => vec![],
        Needs::Exec(_) => vec![Capability::Exec],
        Needs::Network => vec![Capability::Network],
    };
    let req = RunRequest {
        timeout: TIMEOUT,
        memory: pattern.memory,
        ..request(
            file,
            format!("jobs/{}", pattern.file),
            allowing("hostile", allow),
        )
    };
    let before = status_kib("VmRSS:") << 10;
    reset_peak();
    let clock = Instant::now();
    let outcome = runner.run(&req);
    let took = clock.elapsed();
    let peak = status_kib("VmHWM:") << 10;
    let leftovers = match pattern.needs {
        Needs::Exec(marker) => alive(marker),
        _ => false,
    };
    Trial {
        result: outcome.result,
        error: outcome.error,
        took,
        rss_growth: peak.saturating_sub(before),
        rss_peak: peak,
        log_lines: outcome.logs.len(),
        longest_log: outcome.logs.iter().map(String::len).max().unwrap_or(0),
        leftovers,
    }
}

/// Whether a process whose command line holds `marker` is alive, after giving the kernel a
/// moment to finish killing it.
fn alive(marker: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let found = Command::new("pgrep").args(["-f", marker]).output().unwrap();
        if !found.status.success() || Instant::now() > until {
            return found.status.success();
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// What is wrong with a trial, if anything.
fn problems(pattern: &Pattern, trial: &Trial) -> Vec<String> {
    let mut found = Vec::new();
    let file = pattern.file;
    if trial.result != pattern.expect {
        found.push(format!(
            "{file}: {} (expected {}): {:?}",
            trial.result, pattern.expect, trial.error
        ));
    }
    if trial.took > TIMEOUT + SLACK {
        found.push(format!(
            "{file}: took {:?}, over the timeout {TIMEOUT:?} + {SLACK:?}",
            trial.took
        ));
    }
    if trial.rss_growth > RSS_BOUND {
        found.push(format!(
            "{file}: peak resident memory grew by {} MiB (bound {} MiB)",
            trial.rss_growth >> 20,
            RSS_BOUND >> 20
        ));
    }
    if trial.log_lines > MAX_LOG_LINES + 1 {
        found.push(format!("{file}: kept {} log lines", trial.log_lines));
    }
    if trial.longest_log > MAX_LOG_LINE_BYTES + CUT_MARK.len() {
        found.push(format!(
            "{file}: kept a log line of {} bytes",
            trial.longest_log
        ));
    }
    if trial.leftovers {
        found.push(format!("{file}: its processes outlived the run"));
    }
    found
}

/// Runs the catalogue `trials` times over; returns the trials of each pattern and every
/// problem found.
fn run_catalogue(trials: usize) -> (Vec<Vec<Trial>>, Vec<String>) {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut runner = runner();
    let mut all: Vec<Vec<Trial>> = CATALOGUE.iter().map(|_| Vec::new()).collect();
    let mut failures = Vec::new();
    for _ in 0..trials {
        for (pattern, seen) in CATALOGUE.iter().zip(&mut all) {
            let trial = run_once(&mut runner, pattern, &server, dir.path());
            failures.extend(problems(pattern, &trial));
            seen.push(trial);
        }
    }
    // And the worker's runner still runs a well-behaved job.
    let ok = write_job(
        dir.path(),
        "ok.lua",
        "local job = core.job() function job.run() core.log('fine') return job.OK end return job",
    );
    let outcome = runner.run(&request(ok, "jobs/ok.lua", allowing("ok", vec![])));
    if (outcome.result, outcome.logs.clone()) != (RunResult::Ok, vec!["fine".to_string()]) {
        failures.push(format!("the runner is not well afterwards: {outcome:?}"));
    }
    (all, failures)
}

/// Bytes in MiB, to a KiB.
fn mib(bytes: u64) -> f64 {
    f64::from(u32::try_from(bytes >> 10).unwrap()) / 1024.0
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A table of the figures: per pattern, the result, the median and worst time past the
/// timeout (or to the end, for runs that ended before it), and the worst memory growth.
fn figures(all: &[Vec<Trial>]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| script | memory limit | result | trials | stop: median | stop: max | peak RSS growth: max | peak RSS: max | log lines kept |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (pattern, trials) in CATALOGUE.iter().zip(all) {
        let stopped_by_timeout = pattern.expect == RunResult::Timeout;
        let mut stops: Vec<f64> = trials
            .iter()
            .map(|t| {
                if stopped_by_timeout {
                    millis(t.took) - millis(TIMEOUT)
                } else {
                    millis(t.took)
                }
            })
            .collect();
        stops.sort_by(f64::total_cmp);
        let median = stops[stops.len() / 2];
        let max = stops[stops.len() - 1];
        let what = if stopped_by_timeout {
            "past the timeout"
        } else {
            "in all"
        };
        let rss = trials.iter().map(|t| t.rss_growth).max().unwrap_or(0);
        let peak = trials.iter().map(|t| t.rss_peak).max().unwrap_or(0);
        let lines = trials.iter().map(|t| t.log_lines).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "| `{}` | {} MiB | {} | {} | {median:.1} ms {what} | {max:.1} ms | {:.1} MiB | {:.0} MiB | {lines} |",
            pattern.file,
            pattern.memory >> 20,
            pattern.expect,
            trials.len(),
            mib(rss),
            mib(peak),
        );
    }
    out
}

#[test]
fn catalogue_is_stopped_and_bounded() {
    let _serial = one_at_a_time();
    let (all, failures) = run_catalogue(1);
    println!("{}", figures(&all));
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
#[ignore = "the long version: five trials of each script, with figures"]
fn catalogue_figures() {
    let _serial = one_at_a_time();
    let (all, failures) = run_catalogue(5);
    println!("{}", figures(&all));
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_catalogue_file_is_listed() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| Path::new(n).extension().is_some_and(|e| e == "lua"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CATALOGUE.iter().map(|p| p.file.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    assert!(CATALOGUE.len() >= 40, "{}", CATALOGUE.len());
}

/// Luau never calls `__gc` for tables or for `newproxy` userdata (only for userdata made by
/// the host with a destructor): a `__gc` that would loop or resurrect its object never runs.
#[test]
fn gc_metamethods_are_never_called() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let file = write_job(
        dir.path(),
        "gc.lua",
        r#"local job = core.job()
function job.run()
  local called, kept = 0, {}
  local mt = { __gc = function(o) called = called + 1 kept[#kept + 1] = o while true do end end }
  for i = 1, 2000 do
    setmetatable({}, mt)
    local p = newproxy(true)
    getmetatable(p).__gc = mt.__gc
  end
  -- Garbage enough for several collection cycles.
  for i = 1, 20000 do local s = string.rep("g", 1000) .. i end
  core.log("gc called", called, "resurrected", #kept, "heap KiB", math.floor(collectgarbage("count")))
  return job.OK
end
return job
"#,
    );
    let outcome = runner().run(&RunRequest {
        timeout: Duration::from_secs(5),
        ..request(file, "jobs/gc.lua", allowing("gc", vec![]))
    });
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    let line = &outcome.logs[0];
    assert!(
        line.starts_with("gc called\t0\tresurrected\t0\theap KiB\t"),
        "{line}"
    );
    let heap: f64 = line.rsplit('\t').next().unwrap().parse().unwrap();
    assert!(heap < 4096.0, "garbage was collected: {line}");
}

/// Arguments meant to crash jobtop's functions or Luau's libraries (cyclic and very deep
/// tables for JSON, absurd widths and sizes, NaN durations and dates, 100 000 nested `pcall`s,
/// 10 000 nested coroutines) are refused with a message; the process and the runner carry on.
#[test]
#[allow(clippy::too_many_lines)] // the job file and its table of expected answers
fn hostile_arguments_are_refused_without_harm() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let file = write_job(
        dir.path(),
        "args.lua",
        r##"local job = core.job()
local function try(label, f)
  local ok, a, b = pcall(f)
  core.log(label, tostring(ok), (tostring(a):gsub("\n.*", "")), tostring(b))
end
function job.run()
  local cyclic = {} cyclic.me = cyclic
  local deep = {} local c = deep for i = 1, 100000 do c[1] = {} c = c[1] end
  try("encode cyclic", function() return core.json.encode(cyclic) end)
  try("encode deep", function() return core.json.encode(deep) end)
  try("decode deep", function() return core.json.decode(string.rep("[", 1e5) .. string.rep("]", 1e5)) end)
  try("safe cyclic", function() return core.json_safe.encode(cyclic) end)
  try("state cyclic", function() return core.state.set("k", cyclic) end)
  try("format width", function() return string.format("%099999999999d", 1) end)
  try("unpack", function() return select("#", unpack({}, 1, 1e7)) end)
  try("buffer", function() return buffer.readstring(buffer.create(4), 0, 2^31) end)
  try("tostring", function() print(setmetatable({}, { __tostring = function() return {} end })) end)
  try("sleep nan", function() return core.sleep(0/0) end)
  try("exec nan", function() return core.exec("true", {}, { timeout = 0/0 }) end)
  try("pack", function() return string.pack("i17", 1) end)
  try("date nan", function() return os.date("%c", 0/0) end)
  try("date huge", function() return os.date("*t", 2^62) end)
  try("byte range", function() return string.byte(string.rep("x", 1e6), 1, -1) end)
  try("deep pcall", function()
    local f
    f = function(n) if n == 0 then return 0 end return select(2, pcall(f, n - 1)) end
    return f(100000)
  end)
  try("deep coroutines", function()
    local function nest(n) if n == 0 then return 0 end return coroutine.wrap(nest)(n - 1) end
    return nest(10000)
  end)
  return job.OK
end
return job
"##,
    );
    let mut runner = runner();
    let outcome = runner.run(&RunRequest {
        timeout: Duration::from_secs(10),
        memory: MEMORY,
        ..request(
            file,
            "jobs/args.lua",
            allowing("args", vec![Capability::Exec]),
        )
    });
    assert_eq!(outcome.result, RunResult::Ok, "{outcome:?}");
    let expected = [
        (
            "encode cyclic",
            "false\tjobs/args.lua:9: cannot encode a table as JSON",
        ),
        (
            "encode deep",
            "false\tjobs/args.lua:10: cannot encode a table as JSON",
        ),
        ("decode deep", "false\tjobs/args.lua:11: invalid JSON"),
        ("safe cyclic", "true\tnil\tcannot encode a table as JSON"),
        ("state cyclic", "true\tnil\t"),
        ("format width", "false\tjobs/args.lua:14: invalid format"),
        (
            "unpack",
            "false\tjobs/args.lua:15: too many results to unpack",
        ),
        ("buffer", "false\tjobs/args.lua:16: invalid argument #3"),
        ("tostring", "false\t"),
        ("sleep nan", "false\t"),
        ("exec nan", "true\tnil\t"),
        (
            "pack",
            "false\tjobs/args.lua:20: integral size (17) out of limits",
        ),
        ("date nan", "true\tnil\t"),
        ("date huge", "true\tnil\t"),
        (
            "byte range",
            "false\tjobs/args.lua:23: stack overflow (string slice too long)",
        ),
        ("deep pcall", "true\tC stack overflow\t"),
        ("deep coroutines", "false\tjobs/args.lua:30: "),
    ];
    for (label, start) in expected {
        let line = outcome
            .logs
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{label}\t")))
            .unwrap_or_else(|| panic!("no {label}: {outcome:?}"));
        assert!(line.starts_with(start), "{label}: {line}");
    }
    let ok = write_job(
        dir.path(),
        "ok.lua",
        "local job = core.job() function job.run() return job.OK end return job",
    );
    let again = runner.run(&request(ok, "jobs/ok.lua", allowing("ok", vec![])));
    assert_eq!(again.result, RunResult::Ok, "{again:?}");
}

/// `log_gigabyte.lua` given time enough to print more than 1 GiB: the run still ends at its
/// timeout, keeps 1000 lines cut to 4 KiB and a line counting the rest, and the process's
/// memory barely moves.
#[test]
fn a_gigabyte_of_log_is_kept_bounded() {
    let _serial = one_at_a_time();
    let timeout = Duration::from_secs(4);
    let req = RunRequest {
        timeout,
        memory: MEMORY,
        ..request(
            fixture("log_gigabyte.lua"),
            "jobs/log_gigabyte.lua",
            allowing("flood", vec![]),
        )
    };
    let before = status_kib("VmRSS:") << 10;
    reset_peak();
    let clock = Instant::now();
    let outcome = runner().run(&req);
    let took = clock.elapsed();
    let growth = (status_kib("VmHWM:") << 10).saturating_sub(before);
    assert_eq!(outcome.result, RunResult::Timeout, "{:?}", outcome.error);
    assert!(took <= timeout + SLACK, "{took:?}");
    assert_eq!(outcome.logs.len(), MAX_LOG_LINES + 1);
    let last = outcome.logs.last().unwrap();
    let dropped: usize = last
        .strip_prefix('[')
        .and_then(|l| l.split_once(' '))
        .map_or_else(|| panic!("{last}"), |(n, _)| n.parse().unwrap());
    // Lines 1..=1024 are 1 MiB each, the later ones 2 MiB.
    let printed = MAX_LOG_LINES + dropped;
    assert!(
        printed > 1024,
        "only {printed} lines of 1 MiB or more printed"
    );
    for line in &outcome.logs[..MAX_LOG_LINES] {
        assert!(
            line.len() <= MAX_LOG_LINE_BYTES + CUT_MARK.len(),
            "{}",
            line.len()
        );
        assert!(line.ends_with(CUT_MARK));
    }
    assert!(growth < 64 << 20, "peak RSS grew by {} MiB", growth >> 20);
    println!(
        "{printed} lines (over {} GiB) printed in {took:?}; peak RSS growth {:.1} MiB",
        printed.min(1024) / 1024 + printed.saturating_sub(1024) * 2 / 1024,
        mib(growth)
    );
}

/// `threads` runaways at once, each on its own thread with its own runner as a worker has,
/// `rounds` times over; returns the failures and the slowest run.
fn parallel_runaways(threads: usize, rounds: usize) -> (Vec<String>, Duration) {
    let scripts = [
        ("infinite_loop.lua", RunResult::Timeout, MEMORY),
        ("string_growth.lua", RunResult::Memory, SMALL_MEMORY),
        ("log_flood.lua", RunResult::Timeout, MEMORY),
        ("pcall_swallow.lua", RunResult::Timeout, MEMORY),
        ("xpcall_handler.lua", RunResult::Timeout, MEMORY),
        ("pattern_captures.lua", RunResult::Timeout, MEMORY),
        ("tostring_loop.lua", RunResult::Timeout, MEMORY),
        ("yield_across_pcall.lua", RunResult::Timeout, MEMORY),
    ];
    let handles: Vec<_> = scripts
        .into_iter()
        .cycle()
        .take(threads)
        .map(|(file, expect, memory)| {
            thread::spawn(move || {
                let mut runner = runner();
                let mut seen = Vec::new();
                for _ in 0..rounds {
                    let req = RunRequest {
                        timeout: TIMEOUT,
                        memory,
                        ..request(fixture(file), format!("jobs/{file}"), allowing("p", vec![]))
                    };
                    let clock = Instant::now();
                    let outcome = runner.run(&req);
                    seen.push((outcome.result, clock.elapsed()));
                }
                (file, expect, seen)
            })
        })
        .collect();
    let mut failures = Vec::new();
    let mut worst = Duration::ZERO;
    for handle in handles {
        let (file, expect, seen) = handle.join().unwrap();
        for (result, took) in seen {
            worst = worst.max(took);
            if result != expect || took > TIMEOUT + SLACK {
                failures.push(format!(
                    "{file}: {result} after {took:?} (expected {expect})"
                ));
            }
        }
    }
    (failures, worst)
}

/// Four runaways at once (twice the CPUs of the machine this was written on), three times
/// over: every one is stopped within its timeout plus the margin, with the right result.
#[test]
fn parallel_runaways_are_all_stopped() {
    let _serial = one_at_a_time();
    let (failures, worst) = parallel_runaways(4, 3);
    println!("4 parallel runaways × 3: the slowest returned after {worst:?}");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
#[ignore = "the long version: 2, 4 and 8 runaways at once, 10 rounds each, with figures"]
fn parallel_runaway_figures() {
    let _serial = one_at_a_time();
    let mut all = Vec::new();
    for threads in [2, 4, 8] {
        let (failures, worst) = parallel_runaways(threads, 10);
        println!(
            "{threads} parallel runaways × 10: the slowest returned after {worst:?}, {} over timeout + {SLACK:?}",
            failures.len()
        );
        all.extend(failures);
    }
    assert!(all.is_empty(), "{all:#?}");
}
