//! Helpers for the fault tests (crash safety, full and read-only disks, load, secrets): a raw
//! control-socket client, a small seeded random source, a guard for a size-limited tmpfs, and
//! direct reads of the state database with rusqlite.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

use super::process::{Sandbox, Serve, poll_every, text};

// ---------------------------------------------------------------------------------------------
// Randomness without a crate: xorshift64*, seeded from the clock unless a seed is given.

/// A small pseudo-random source; the seed is printed so a failing run can be repeated with
/// `JOBTOP_FAULT_SEED`.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `JOBTOP_FAULT_SEED` when set, else from the clock.
    pub fn from_env(what: &str) -> Rng {
        let seed = std::env::var("JOBTOP_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos();
                u64::try_from(nanos & u128::from(u64::MAX)).unwrap() | 1
            });
        eprintln!("{what}: JOBTOP_FAULT_SEED={seed}");
        Rng::new(seed)
    }

    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A duration in `lo..hi`.
    pub fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = u64::try_from(hi.saturating_sub(lo).as_millis())
            .unwrap()
            .max(1);
        lo + Duration::from_millis(self.below(span))
    }
}

// ---------------------------------------------------------------------------------------------
// A raw control-socket connection.

/// A greeted newline-delimited JSON connection to a service.
pub struct Conn {
    stream: UnixStream,
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no newline (a multi-megabyte snapshot line is
    /// then scanned once, not once per read).
    scanned: usize,
    next_id: u64,
}

impl Conn {
    /// Connects and says hello; `Err` when nobody listens or the hello is refused.
    pub fn open(socket: &Path) -> Result<Conn, String> {
        let stream = UnixStream::connect(socket).map_err(|e| e.to_string())?;
        let mut conn = Conn {
            stream,
            pending: Vec::new(),
            scanned: 0,
            next_id: 1,
        };
        conn.send(&json!({"op": "hello", "protocol": 1}))?;
        let hello = conn
            .next_value(Duration::from_secs(10))?
            .ok_or("no answer to hello")?;
        if hello["ok"] != true {
            return Err(format!("hello refused: {hello}"));
        }
        Ok(conn)
    }

    pub fn send(&mut self, body: &Value) -> Result<(), String> {
        self.stream
            .write_all(format!("{body}\n").as_bytes())
            .map_err(|e| e.to_string())
    }

    /// The next line, parsed; `Ok(None)` on timeout, `Err` on end of stream or a read error.
    pub fn next_value(&mut self, within: Duration) -> Result<Option<Value>, String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(found) = self.pending[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
            {
                let at = self.scanned + found;
                self.scanned = 0;
                let line: Vec<u8> = self.pending.drain(..=at).collect();
                let line = text(&line[..line.len() - 1]);
                return serde_json::from_str(&line)
                    .map(Some)
                    .map_err(|e| format!("a line that is not JSON ({e}): {line}"));
            }
            self.scanned = self.pending.len();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 16 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err("the service closed the connection".into()),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None);
                }
                Err(e) => return Err(format!("reading failed: {e}")),
            }
        }
    }

    /// Sends `body` with a fresh id and returns the response, passing over event lines (which
    /// `on_event` sees).
    pub fn request_seeing(
        &mut self,
        body: &Value,
        within: Duration,
        mut on_event: impl FnMut(&Value),
    ) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut body = body.clone();
        body["id"] = json!(id);
        self.send(&body)?;
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(v) = self.next_value(left)? else {
                return Err(format!("no response to {body} within {within:?}"));
            };
            if v.get("event").is_some() {
                on_event(&v);
                continue;
            }
            return Ok(v);
        }
    }

    /// [`Conn::request_seeing`] that ignores events and waits up to 30 s.
    pub fn request(&mut self, body: &Value) -> Result<Value, String> {
        self.request_seeing(body, Duration::from_secs(30), |_| {})
    }

    /// The request's `result` when it succeeded, else its error text.
    pub fn call(&mut self, body: &Value) -> Result<Value, String> {
        let response = self.request(body)?;
        if response["ok"] == true {
            Ok(response["result"].clone())
        } else {
            Err(response["error"].as_str().unwrap_or("?").to_string())
        }
    }
}

/// Starts `jobtop serve` on the sandbox and returns once its socket answers a hello.
pub fn serve_ready(sandbox: &Sandbox, within: Duration) -> Serve {
    let serve = Serve::spawn(sandbox);
    wait_ready(serve, within)
}

/// Waits until `serve` answers a hello on its socket; fails the test if it exits first.
pub fn wait_ready(mut serve: Serve, within: Duration) -> Serve {
    let socket = serve.socket.clone();
    let ready = poll_every(Duration::from_millis(20), within, || {
        if let Some(status) = serve.child.try_wait().unwrap() {
            panic!(
                "jobtop serve exited at start with {status}: {}",
                serve.stderr()
            );
        }
        Conn::open(&socket).ok()
    });
    assert!(
        ready.is_some(),
        "serve did not answer on {} within {within:?}: {}",
        socket.display(),
        serve.stderr()
    );
    serve
}

/// SIGKILL, and waits (up to 10 s) for the process to be gone.
pub fn kill_9(serve: &mut Serve) {
    serve.signal("KILL");
    let gone = poll_every(Duration::from_millis(10), Duration::from_secs(10), || {
        serve.child.try_wait().unwrap()
    });
    let status = gone.unwrap_or_else(|| panic!("serve {} survived kill -9", serve.pid()));
    assert_eq!(status.code(), None, "killed by a signal: {status}");
}

/// SIGTERM, and asserts an exit with code 0 within `within`.
pub fn stop(serve: &mut Serve, within: Duration) {
    serve.signal("TERM");
    let status = poll_every(Duration::from_millis(20), within, || {
        serve.child.try_wait().unwrap()
    })
    .unwrap_or_else(|| panic!("serve did not stop within {within:?}: {}", serve.stderr()));
    assert_eq!(
        status.code(),
        Some(0),
        "serve exited with {status} after SIGTERM: {}",
        serve.stderr()
    );
}

/// The resident set size of a process, in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

// ---------------------------------------------------------------------------------------------
// The state database, read directly.

/// `.jobtop/state.db` of a sandbox.
pub fn db_path(sandbox: &Sandbox) -> PathBuf {
    sandbox.state_dir().join("state.db")
}

/// A read-write connection (as the next jobtop would open it: a WAL left by a crash is
/// recovered), with a busy timeout.
pub fn open_db(path: &Path) -> Connection {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

/// A read-only connection, which works while a service writes.
pub fn open_db_read_only(path: &Path) -> Connection {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

/// `PRAGMA integrity_check`, all lines joined: `"ok"` for a sound database.
pub fn integrity(conn: &Connection) -> String {
    let mut stmt = conn.prepare("PRAGMA integrity_check").unwrap();
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    lines.join("\n")
}

/// `PRAGMA integrity_check` by the `sqlite3` shell, when it is installed.
pub fn sqlite3_integrity(path: &Path) -> Option<String> {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg("PRAGMA integrity_check;")
        .output()
        .ok()?;
    Some(format!(
        "{}{}",
        text(&out.stdout).trim(),
        text(&out.stderr).trim()
    ))
}

/// The `deactivated` flag of every job row.
pub fn deactivated_flags(conn: &Connection) -> HashMap<String, bool> {
    let mut stmt = conn.prepare("SELECT name, deactivated FROM jobs").unwrap();
    stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? != 0))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// How many stored runs have each result word.
pub fn results_count(conn: &Connection) -> HashMap<String, i64> {
    let mut stmt = conn
        .prepare("SELECT result, count(*) FROM runs GROUP BY result")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Privileges and mounts.

/// Whether this process runs as root (`id -u` is 0).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0")
}

/// A test that cannot run here: under `CI` that is a failure, elsewhere a printed skip.
pub fn skip(test: &str, reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} cannot run under CI: {reason}"
    );
    eprintln!("SKIPPED {test}: {reason}");
}

/// A size-limited tmpfs mounted on a directory; unmounted when dropped (lazily, if busy).
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (a `mount` size such as `2m`) with mode 0700 on `dir`, which is
    /// created when missing.
    pub fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        if !is_root() {
            return Err("not root: mounting a tmpfs needs root".into());
        }
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
            &dir.to_string_lossy(),
        ])?;
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// `mount -o remount,OPTIONS`: a new size (`size=16m`), `ro` or `rw`.
    pub fn remount(&self, options: &str) {
        mount(&[
            "-o",
            &format!("remount,{options}"),
            &self.dir.to_string_lossy(),
        ])
        .unwrap_or_else(|e| panic!("remount {options}: {e}"));
    }

    /// Bytes free on the file system (`df`).
    pub fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.dir)
            .output()
            .unwrap();
        text(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("df: {}", text(&out.stdout)))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let dir = self.dir.to_string_lossy().into_owned();
        let ok = Command::new("umount")
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").args(["-l", &dir]).status();
        }
    }
}

fn mount(args: &[&str]) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {args:?} failed: {}",
            text(&out.stderr).trim()
        ))
    }
}

/// Fills the file system of `dir` with a file `name` until a write fails (ENOSPC); returns
/// the file's path.
pub fn fill(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0x5au8; 4096];
    loop {
        match file.write(&block) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = file.sync_all();
    path
}
