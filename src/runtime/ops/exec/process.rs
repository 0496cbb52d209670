//! Starting the program of a `core.exec` call in a process group of its own, reading its
//! output without ever blocking it, and killing the whole group.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::request::Request;

/// How much of each of stdout and stderr is kept; the rest is read and counted.
const MAX_OUTPUT: usize = 1 << 20;
/// How long a killed program may take to be reaped before a thread is left to reap it, so a
/// program stuck in the kernel cannot hold the run.
const CLOSE_GRACE: Duration = Duration::from_millis(50);
/// `PATH` for the program when jobtop itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A running program's process group; dropping it kills and reaps whatever is left.
pub(super) struct Group {
    /// The program, until it is reaped.
    pub child: Option<Child>,
}

impl Group {
    /// Kills the whole group with SIGKILL and reaps the program. A program that does not die
    /// at once (stuck in the kernel) is reaped by a thread of its own, so the run goes on.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The program is not reaped yet, so its pid still names the group.
        if let Ok(pgid) = i32::try_from(child.id()) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        let _ = child.kill();
        let until = Instant::now() + CLOSE_GRACE;
        while Instant::now() < until {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = std::thread::Builder::new()
            .name("jobtop-exec-reaper".into())
            .spawn(move || {
                let _ = child.wait();
            });
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Which of the program's output streams.
#[derive(Clone, Copy)]
pub(super) enum Stream {
    Out,
    Err,
}

/// Where each stream's output arrives once it closed.
pub(super) type Outputs = mpsc::Receiver<(Stream, Vec<u8>)>;

/// Reads `source` to its end, keeping the first `MAX_OUTPUT` bytes and counting the rest, so
/// that a chatty program never blocks on a full pipe.
fn capture(
    mut source: impl Read + Send + 'static,
    which: Stream,
    done: mpsc::Sender<(Stream, Vec<u8>)>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("jobtop-exec-output".into())
        .spawn(move || {
            let mut kept = Vec::new();
            let mut dropped: u64 = 0;
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match source.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => {
                        let room = MAX_OUTPUT.saturating_sub(kept.len()).min(n);
                        kept.extend_from_slice(&buffer[..room]);
                        dropped += (n - room) as u64;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            if dropped > 0 {
                kept.extend_from_slice(format!("\n[… {dropped} bytes dropped]").as_bytes());
            }
            let _ = done.send((which, kept));
        })
        .map(|_| ())
}

/// Starts the program in a process group of its own, with threads reading its output (sent
/// on the returned channel when each stream closes) and writing its input.
pub(super) fn start(request: &Request) -> Result<(Group, Outputs), String> {
    let cmd = &request.cmd;
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    let mut command = Command::new(cmd);
    command
        .args(&request.args)
        .env_clear()
        .env("PATH", &path)
        .envs(request.env.iter().map(|(k, v)| (k, v)))
        .stdin(if request.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(cwd) = &request.cwd {
        command.current_dir(cwd);
    }
    let mut child = command.spawn().map_err(|e| spawn_error(cmd, &path, &e))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let group = Group { child: Some(child) };

    let (done, outputs) = mpsc::channel();
    let readers = [
        stdout.map(|pipe| capture(pipe, Stream::Out, done.clone())),
        stderr.map(|pipe| capture(pipe, Stream::Err, done.clone())),
    ];
    if let Some(Err(e)) = readers.into_iter().flatten().find(Result::is_err) {
        return Err(format!("core.exec: cannot read the output of {cmd}: {e}"));
    }
    drop(done);
    if let (Some(mut pipe), Some(data)) = (stdin, request.stdin.clone()) {
        // A program that does not read its input must not block the run: the writer is left
        // to finish (or fail with a broken pipe once the program is gone) on its own.
        let spawned = std::thread::Builder::new()
            .name("jobtop-exec-input".into())
            .spawn(move || {
                let _ = pipe.write_all(&data);
            });
        if let Err(e) = spawned {
            return Err(format!("core.exec: cannot write the input of {cmd}: {e}"));
        }
    }

    Ok((group, outputs))
}

fn spawn_error(cmd: &str, path: &OsString, error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let by_path = cmd.contains('/');
    match error.kind() {
        ErrorKind::NotFound if by_path => {
            format!("core.exec: {cmd} does not exist: expected the path of a program")
        }
        ErrorKind::NotFound => format!(
            "core.exec: {cmd} was not found in PATH ({}): expected an installed program or the path of one",
            path.to_string_lossy()
        ),
        ErrorKind::PermissionDenied => format!(
            "core.exec: {cmd} cannot be run: permission denied: expected an executable file"
        ),
        _ => format!("core.exec: {cmd} cannot be run: {error}"),
    }
}
