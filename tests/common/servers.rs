//! Real servers on 127.0.0.1, started by the tests themselves: PostgreSQL, MariaDB, OpenSSH's
//! `sshd`, an SMTP server (`aiosmtpd`), an HTTP receiver in the test process, and a real
//! Prometheus text parser.
//!
//! - [`postgres::Postgres`], [`mariadb::MariaDb`]: `initdb` / `mariadb-install-db` in a
//!   temporary directory, a superuser URL with a password, a fresh database per test, stop and
//!   start, SQL through the server's own client binary.
//! - [`sshd::Sshd`]: `sshd` with its own config, host key and authorised client key; a remote
//!   `PATH` that finds the test's `jobtop`; the `ssh` command line for `JOBTOP_SSH`.
//! - [`smtp::Smtp`]: `aiosmtpd` storing each message where the test reads it, AUTH optional.
//! - [`http::HttpReceiver`]: an HTTP/1.1 server in the test that records requests and answers
//!   as the test says (a status, a delay, a closed connection), changeable while it runs.
//! - [`prom`]: Prometheus text through `prometheus_client`'s parser and `promtool`.
//!
//! **Skip or fail.** A harness whose programs are missing prints `SKIPPED (<what>): <why>;
//! install with: <command>` and returns `None`, so the test returns early:
//!
//! ```ignore
//! let Some(pg) = Postgres::shared() else { return };
//! ```
//!
//! With `JOBTOP_REQUIRE_SERVERS` set (CI, `.ci/run`) the skip is a panic instead. A harness
//! whose programs are there but which fails to start panics: that is a broken harness, not a
//! missing server.
//!
//! **Shared or own.** `shared()` starts one server per test binary (on first use) that every
//! test of the binary shares, each with its own database; `new()` starts one for the calling
//! test alone, stopped when dropped. A test that stops, kills or reconfigures a server takes
//! its own.
//!
//! **No leaks.** A test binary exits without running static destructors, so a shared server is
//! never dropped. Each server therefore has a [`Watchdog`]: a small `sh` whose stdin is a pipe
//! held by the test process. When the test process ends, however it ends (exit, panic,
//! `kill -9`), the kernel closes the pipe; the watchdog reads end-of-file, kills the server
//! (and its direct children) and removes its temporary directory. (`PR_SET_PDEATHSIG` would
//! not do: it fires when the spawning *thread* ends, and libtest ends a test's thread after
//! each test.)

pub mod http;
pub mod mariadb;
pub mod postgres;
pub mod prom;
pub mod smtp;
pub mod sshd;

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub use super::process::run_input;
use super::process::{spawn, text};

/// The variable that turns a missing server into a failure (CI sets it).
pub const REQUIRE: &str = "JOBTOP_REQUIRE_SERVERS";

// ---------------------------------------------------------------------------------------------
// Skip or fail.

/// Says that the test cannot run here: prints `SKIPPED (what): why; install with: install`,
/// or panics with the same words when `JOBTOP_REQUIRE_SERVERS` is set.
pub fn skip(what: &str, why: &str, install: &str) {
    let message = format!("{what}: {why}; install with: {install}");
    assert!(
        std::env::var_os(REQUIRE).is_none(),
        "{REQUIRE} is set and a server is missing: {message}"
    );
    eprintln!("SKIPPED ({message})");
}

/// `Some(found)` when a server's programs are here; otherwise skips (see [`skip`]) and
/// returns `None`, so the test can return early.
pub fn require<T>(what: &str, found: Result<T, String>, install: &str) -> Option<T> {
    match found {
        Ok(found) => Some(found),
        Err(why) => {
            skip(what, &why, install);
            None
        }
    }
}

/// `name` on `PATH`, when it is there (and can be run).
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// The first of `names` found on `PATH` or in `dirs`, or why none was.
pub fn find_program(names: &[&str], dirs: &[&str]) -> Result<PathBuf, String> {
    for name in names {
        if let Some(found) = on_path(name) {
            return Ok(found);
        }
        for dir in dirs {
            let candidate = Path::new(dir).join(name);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    let mut places = vec!["PATH".to_string()];
    places.extend(dirs.iter().map(|d| (*d).to_string()));
    Err(format!(
        "{} not found (looked on {})",
        names.join(" or "),
        places.join(", ")
    ))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `python3` when it can import `module`, or why not.
pub fn python_with(module: &str) -> Result<PathBuf, String> {
    let python = on_path("python3").ok_or_else(|| "python3 is not on PATH".to_string())?;
    let out = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if out.status.success() {
        Ok(python)
    } else {
        Err(format!(
            "{} cannot import {module}: {}",
            python.display(),
            text(&out.stderr).trim().lines().last().unwrap_or("")
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers for the harnesses.

/// Whether the tests run as root (then PostgreSQL runs as another user, and sshd may log in
/// other users).
pub fn is_root() -> bool {
    nix::unistd::Uid::current().is_root()
}

/// A port on 127.0.0.1 that nothing listens on (right now: a server given it may still lose it
/// to another process, which the harnesses retry).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A random password made of letters, digits and `-`, so that it needs no escaping anywhere.
pub fn secret(tag: &str) -> String {
    format!("{tag}-{}", uuid::Uuid::new_v4().simple())
}

/// `s` with everything but unreserved characters percent-encoded, for the user and password
/// parts of a URL.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Calls `f` every 50 ms until it returns `Some`; panics with `what` and the last error after
/// `within`.
pub fn wait_until<T>(
    what: &str,
    within: Duration,
    mut f: impl FnMut() -> Result<Option<T>, String>,
) -> T {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    loop {
        match f() {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(e) => last = e,
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {within:?}; last: {last}"
        );
        sleep(Duration::from_millis(50));
    }
}

/// Starts a server on a free port: `start(port)`, again on another port (three tries in all)
/// when it fails saying `taken` (the port was free when chosen, not when bound). Returns the
/// port; panics with what `start` said otherwise.
pub fn start_on_free_port(
    what: &str,
    taken: &str,
    mut start: impl FnMut(u16) -> Result<(), String>,
) -> u16 {
    for attempt in 1..=3 {
        let port = free_port();
        match start(port) {
            Ok(()) => return port,
            Err(why) => assert!(
                attempt < 3 && why.contains(taken),
                "{what} did not start: {why}"
            ),
        }
    }
    unreachable!("the third attempt either returns or panics")
}

/// `Ok(stdout)` of a finished command, or `Err` with its status and stderr.
pub fn stdout_or_err(out: &Output, what: &str) -> Result<String, String> {
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            text(&out.stderr).trim(),
            text(&out.stdout).trim()
        ))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// The watchdog.

/// What the watchdog does: track the server's pid (`pid N`, or `pid -` while stopped) until
/// its stdin says `done` (the harness cleans up itself) or ends (the test process is gone:
/// kill the server and its children, wait up to 5 s, SIGKILL, remove the directory).
const WATCHDOG: &str = r#"sig=$1; dir=$2; pid=-
# Alive, and not a zombie (which `kill -0` counts as alive until init reaps it).
alive() {
  state=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}
while IFS=' ' read -r cmd arg; do
  case $cmd in
    pid) pid=$arg ;;
    done) exit 0 ;;
  esac
done
if [ "$pid" != - ]; then
  kids=$(pgrep -P "$pid" 2>/dev/null)
  kill -s "$sig" "$pid" 2>/dev/null
  [ -n "$kids" ] && kill -s "$sig" $kids 2>/dev/null
  i=0
  while alive "$pid" && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  kill -s KILL "$pid" $kids 2>/dev/null
fi
[ -n "$dir" ] && rm -rf -- "$dir"
"#;

/// A process that kills a server and removes its directory when the test process ends.
pub struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts a watchdog that will send `signal` (`TERM`, `QUIT` …) to the server and remove
    /// `dir` when the test process ends. In its own process group, so a Ctrl-C of `cargo test`
    /// does not kill it before it has cleaned up.
    pub fn start(signal: &str, dir: &Path) -> Watchdog {
        let mut command = Command::new("sh");
        command
            .args(["-c", WATCHDOG, "jobtop-test-watchdog", signal])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = spawn(&mut command);
        let stdin = child.stdin.take();
        Watchdog { child, stdin }
    }

    /// Tells the watchdog which process to kill (`None`: none, the server is stopped).
    pub fn watch(&mut self, pid: Option<u32>) {
        let line = pid.map_or_else(|| "pid -\n".to_string(), |pid| format!("pid {pid}\n"));
        if let Some(stdin) = &mut self.stdin {
            let _ = stdin.write_all(line.as_bytes());
            let _ = stdin.flush();
        }
    }
}

impl Drop for Watchdog {
    /// The harness has stopped its server and removes its directory itself: dismiss the dog.
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"done\n");
        }
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// A server process.

/// One server process of a harness: started, stopped and started again, its stdout and stderr
/// appended to a log file, guarded by a [`Watchdog`]. Stopped when dropped.
pub struct Daemon {
    what: String,
    log: PathBuf,
    stop_signal: &'static str,
    child: Mutex<Option<Child>>,
    watchdog: Mutex<Watchdog>,
}

impl Daemon {
    /// A daemon named `what` (in messages) whose log is `log`, stopped with `stop_signal`
    /// (`INT`, `TERM` …), its directory `dir` removed by the watchdog if the test process ends
    /// first. `kill_signal` is what the watchdog sends then (it does not wait for a clean
    /// shutdown).
    pub fn new(
        what: &str,
        dir: &Path,
        log: PathBuf,
        stop_signal: &'static str,
        kill_signal: &str,
    ) -> Daemon {
        Daemon {
            what: what.to_string(),
            log,
            stop_signal,
            child: Mutex::new(None),
            watchdog: Mutex::new(Watchdog::start(kill_signal, dir)),
        }
    }

    /// Starts the server (in its own process group), appending its output to the log; panics
    /// when one is already running.
    pub fn spawn(&self, mut command: Command) {
        let mut child = lock(&self.child);
        assert!(child.is_none(), "{} is already running", self.what);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        let started = spawn(&mut command);
        lock(&self.watchdog).watch(Some(started.id()));
        *child = Some(started);
    }

    /// The running server's pid.
    pub fn pid(&self) -> Option<u32> {
        lock(&self.child).as_ref().map(Child::id)
    }

    /// How the server ended, if it has (it is then reaped and counts as stopped).
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut child = lock(&self.child);
        let status = child.as_mut()?.try_wait().unwrap()?;
        *child = None;
        lock(&self.watchdog).watch(None);
        Some(status)
    }

    /// Whether the server runs.
    pub fn running(&self) -> bool {
        self.exited().is_none() && self.pid().is_some()
    }

    /// Stops the server with its stop signal, waiting up to 30 s before SIGKILL. Nothing
    /// happens when it is not running.
    pub fn stop(&self) {
        self.end(self.stop_signal, Duration::from_secs(30));
    }

    /// Kills the server with SIGKILL at once (a crash), and reaps it.
    pub fn kill(&self) {
        self.end("KILL", Duration::from_secs(5));
    }

    fn end(&self, signal: &str, grace: Duration) {
        let mut slot = lock(&self.child);
        let Some(mut child) = slot.take() else {
            return;
        };
        if child.try_wait().unwrap().is_none() {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + grace;
            while child.try_wait().unwrap().is_none() {
                if Instant::now() >= deadline {
                    eprintln!(
                        "{} did not stop within {grace:?} of SIG{signal}: killed",
                        self.what
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                sleep(Duration::from_millis(20));
            }
        }
        lock(&self.watchdog).watch(None);
    }

    /// What the server has written so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits until `ready` says so (asked every 50 ms); `Err` with the tail of the log when the
    /// server exits first or `within` passes.
    pub fn wait_ready(
        &self,
        within: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return Err(format!(
                    "{} exited ({status}): {}",
                    self.what,
                    self.log_tail(20)
                ));
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} gave no answer within {within:?}: {}",
                    self.what,
                    self.log_tail(20)
                ));
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Panics when the server has exited, showing its status and log.
    pub fn assert_running(&self, while_doing: &str) {
        if let Some(status) = self.exited() {
            panic!(
                "{} exited ({status}) while {while_doing}; its log:\n{}",
                self.what,
                self.log_tail(40)
            );
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
