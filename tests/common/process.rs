//! The built `jobtop` as a child process: a sandbox directory, one-shot CLI commands with a
//! deadline, and `jobtop serve` with a guard that stops it.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The `jobtop` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_jobtop");

/// A job that logs `tick` and returns `job.OK`.
pub const OK_JOB: &str = "local job = core.job()
function job.run()
  core.log(\"tick\")
  return job.OK
end
return job
";

/// A job that logs `stopping` and returns `job.EXIT`.
pub const EXIT_JOB: &str = "local job = core.job()
function job.run()
  core.log(\"stopping\")
  return job.EXIT
end
return job
";

// ---------------------------------------------------------------------------------------------
// The sandbox: one temporary directory per test.

/// How a test file runs the one-shot CLI (`list`, `history`, `cancel` …) in its sandboxes.
#[derive(Clone, Copy, Debug)]
pub struct Cli {
    /// Whether to pass `--config <dir>/jobs.yaml`; without it the CLI finds `./jobs.yaml`.
    pub config_flag: bool,
    /// `USER` for the command, when set (the service must not believe it).
    pub user: Option<&'static str>,
    /// How long one command may take before it counts as hung, which fails the test.
    pub deadline: Duration,
    /// How often [`Sandbox::wait_job`] asks `list --json` again.
    pub poll_every: Duration,
    /// How many runs [`Sandbox::history`] asks for (`--limit`).
    pub history_limit: u32,
}

impl Cli {
    /// `jobtop ARGS --config <dir>/jobs.yaml` with the caller's `USER`, failing the test when
    /// it takes over `deadline`; `wait_job` polls every 100 ms, `history` asks for 1000 runs.
    pub const fn new(deadline: Duration) -> Cli {
        Cli {
            config_flag: true,
            user: None,
            deadline,
            poll_every: Duration::from_millis(100),
            history_limit: 1000,
        }
    }
}

/// A temporary directory with a `jobs.yaml` and job files under `jobs/`; removed when dropped.
pub struct Sandbox {
    dir: TempDir,
    cli: Cli,
}

impl Sandbox {
    /// A directory with `jobs.yaml` = `yaml` and the given job files under `jobs/`, whose CLI
    /// commands run as `cli` says.
    pub fn with_cli(cli: Cli, yaml: &str, jobs: &[(&str, &str)]) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("jobs")).unwrap();
        let sandbox = Sandbox { dir, cli };
        sandbox.write_config(yaml);
        for (name, body) in jobs {
            fs::write(sandbox.path().join("jobs").join(name), body).unwrap();
        }
        sandbox
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("jobs.yaml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path().join(".jobtop")
    }

    /// The control socket, `.jobtop/jobtop.sock`.
    pub fn socket(&self) -> PathBuf {
        self.state_dir().join("jobtop.sock")
    }

    /// Replaces `jobs.yaml` at once (write and rename), so a reload never reads half a file.
    pub fn write_config(&self, yaml: &str) {
        let tmp = self.path().join("jobs.yaml.tmp");
        fs::write(&tmp, yaml).unwrap();
        fs::rename(&tmp, self.config()).unwrap();
    }

    /// The service log, `.jobtop/jobtop.log`.
    pub fn service_log(&self) -> String {
        fs::read_to_string(self.state_dir().join("jobtop.log")).unwrap_or_default()
    }

    /// `jobtop ARGS` run in the sandbox (with `--config <dir>/jobs.yaml` where the file's
    /// [`Cli`] says so), to completion: a command that is not done by the deadline fails the
    /// test.
    pub fn jobtop(&self, args: &[&str]) -> Output {
        let mut command = Command::new(BIN);
        command.args(args);
        if self.cli.config_flag {
            command.arg("--config").arg(self.config());
        }
        command.current_dir(self.path()).env_remove("JOBTOP_LOG");
        if let Some(user) = self.cli.user {
            command.env("USER", user);
        }
        run(command, &format!("jobtop {args:?}"), self.cli.deadline)
    }

    /// `jobtop ARGS`, asserting exit code 0; returns stdout.
    pub fn jobtop_ok(&self, args: &[&str]) -> String {
        let out = self.jobtop(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "jobtop {args:?} failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `list --json`, as an array of job objects.
    pub fn list(&self) -> Vec<Value> {
        json_array(&self.jobtop_ok(&["list", "--json"]), "list --json")
    }

    /// One job's `list --json` object.
    pub fn job(&self, name: &str) -> Value {
        find_job(&self.list(), name)
    }

    /// `history NAME --json` (as many runs as the file's [`Cli`] asks for), newest first.
    pub fn history(&self, name: &str) -> Vec<Value> {
        let limit = self.cli.history_limit.to_string();
        json_array(
            &self.jobtop_ok(&["history", name, "--json", "--limit", &limit]),
            "history --json",
        )
    }

    /// Polls `list --json` until `name` is listed and satisfies `cond`; returns that object.
    /// (A live service lists a job added by a reload only once the reload is applied.)
    pub fn wait_job(&self, name: &str, within: Duration, cond: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let found = poll_every(self.cli.poll_every, within, || {
            last = self
                .list()
                .into_iter()
                .find(|j| j["name"] == name)
                .unwrap_or(Value::Null);
            (!last.is_null() && cond(&last)).then(|| last.clone())
        });
        found.unwrap_or_else(|| {
            panic!("{name} did not reach the condition within {within:?}; last seen: {last:#}")
        })
    }
}

/// `stdout` of `what`, which must be a JSON array.
fn json_array(stdout: &str, what: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("{what} is not JSON ({e}): {stdout}"));
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is not an array: {stdout}"))
        .clone()
}

// ---------------------------------------------------------------------------------------------
// `jobtop serve` as a child process.

/// A running `jobtop serve`, started on a sandbox with its stderr going to a file there.
/// Dropped while it still runs (a failed test), it gets SIGKILL; with `term_on_drop`, SIGTERM
/// first (with the `kill` command), and SIGKILL only if it has not stopped within 5 s.
pub struct Serve {
    pub child: Child,
    pub stderr_path: PathBuf,
    /// The control socket of its sandbox.
    pub socket: PathBuf,
    /// When it was started.
    pub started: Instant,
    pub term_on_drop: bool,
}

impl Serve {
    /// Starts `jobtop serve --config <dir>/jobs.yaml` in the sandbox, its stderr going to
    /// `serve-N.err` there (N counts the services started in that sandbox before). Returns at
    /// once: what "ready" means is the caller's to wait for.
    pub fn spawn(sandbox: &Sandbox) -> Serve {
        Serve::spawn_with_env(sandbox, &[])
    }

    /// [`Serve::spawn`] with these variables added to its environment.
    pub fn spawn_with_env(sandbox: &Sandbox, env: &[(&str, &str)]) -> Serve {
        let serial = fs::read_dir(sandbox.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("serve-")
            })
            .count();
        let stderr_path = sandbox.path().join(format!("serve-{serial}.err"));
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .arg("--config")
            .arg(sandbox.config())
            .current_dir(sandbox.path())
            .env_remove("JOBTOP_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).unwrap());
        command.envs(env.iter().copied());
        let child = spawn(&mut command);
        Serve {
            child,
            stderr_path,
            socket: sandbox.socket(),
            started: Instant::now(),
            term_on_drop: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it has written to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends a signal (`TERM`, `HUP`, `KILL`, ...) with the `kill` command.
    pub fn signal(&self, name: &str) {
        signal(name, self.pid());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        if self.term_on_drop {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if self.child.try_wait().ok().flatten().is_some() {
                    return;
                }
                sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// Spawns, retrying while the executable is busy (a parallel test may have just copied one).
pub fn spawn(command: &mut Command) -> Child {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Ok(child) => return child,
            // ETXTBSY
            Err(e) if e.raw_os_error() == Some(26) && tries < 50 => {
                tries += 1;
                sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot start {command:?}: {e}"),
        }
    }
}

/// Runs a command to completion, capturing its output. A command that has not finished
/// `within` is killed (SIGKILL) and fails the test.
pub fn run(command: Command, what: &str, within: Duration) -> Output {
    run_with(command, None, what, within)
}

/// [`run`], with `input` written to the command's stdin (then closed).
pub fn run_input(command: Command, input: &str, what: &str, within: Duration) -> Output {
    run_with(command, Some(input), what, within)
}

fn run_with(mut command: Command, input: Option<&str>, what: &str, within: Duration) -> Output {
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut command);
    let pid = child.id();
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = input.to_string();
        // A writer of its own: a command that does not read must not block us past the
        // deadline.
        thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    if let Ok(out) = rx.recv_timeout(within) {
        return out.unwrap();
    }
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status();
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(out)) => panic!(
            "{what} did not finish within {within:?}\nstdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        ),
        _ => panic!("{what} did not finish within {within:?}"),
    }
}

/// Sends a signal with the `kill` command.
pub fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Calls `f` every `every` until it returns `Some`, or `within` has passed.
pub fn poll_every<T>(
    every: Duration,
    within: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(every);
    }
}

/// The name of the Unix user the tests run as (`id -un`).
pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    assert!(out.status.success(), "id -un: {out:?}");
    text(&out.stdout).trim().to_string()
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The object of job `name` in a list of jobs.
pub fn find_job(jobs: &[Value], name: &str) -> Value {
    jobs.iter()
        .find(|j| j["name"] == name)
        .unwrap_or_else(|| panic!("no job {name} in {jobs:?}"))
        .clone()
}

/// The `runs` counter of a job object.
pub fn runs(job: &Value) -> u64 {
    job["runs"]
        .as_u64()
        .unwrap_or_else(|| panic!("runs is not a number: {job}"))
}

/// Whether `text` holds `file:LINE:COLUMN` with numbers.
pub fn has_line_column(text: &str, file: &str) -> bool {
    text.match_indices(&format!("{file}:")).any(|(at, m)| {
        let rest = &text[at + m.len()..];
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().unwrap_or("");
        let column = parts.next().unwrap_or("");
        parts.next().is_some()
            && !line.is_empty()
            && line.chars().all(|c| c.is_ascii_digit())
            && !column.is_empty()
            && column.chars().all(|c| c.is_ascii_digit())
    })
}
