//! Disk faults under a real `jobtop serve`: the state directory `.jobtop/` is a size-limited
//! tmpfs mounted by the test (root only; without root the tests say why and pass, except under
//! `CI`, where they fail). Jobs write big log lines until the disk is full; the service must
//! keep running, say clearly that the database or disk is full, keep the database sound and
//! every acknowledged action, and record again once space is freed. Also: the disk full before
//! the service starts, and the state directory mounted read-only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use common::faults::{
    Conn, Tmpfs, db_path, deactivated_flags, fill, integrity, open_db, open_db_read_only,
    serve_ready, skip, sqlite3_integrity, stop,
};
use common::process::{Cli, OK_JOB, Sandbox, Serve, poll_every, runs, text};
use serde_json::{Value, json};

const CLI: Cli = Cli::new(Duration::from_secs(30));

/// 64 lines of 4 KiB per run (256 KiB of history, the most one run keeps), unless the file
/// `quiet` exists in the job's `files:` root.
fn loud_job(ctl: &Path) -> String {
    format!(
        "local job = core.job()
local line = string.rep(\"x\", 4000)
function job.run()
  if core.files.exists(\"{}/quiet\") then return job.OK end
  for i = 1, 64 do core.log(i, line) end
  return job.OK
end
return job
",
        ctl.display()
    )
}

fn ok_jobs_yaml(names: &[&str], interval: &str) -> String {
    let mut yaml = String::from("jobs:\n");
    for name in names {
        writeln!(
            yaml,
            "  - name: {name}\n    path: ok.lua\n    interval: {interval}"
        )
        .unwrap();
    }
    yaml
}

fn mount_state_dir(sandbox: &Sandbox, size: &str, test: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(&sandbox.state_dir(), size) {
        Ok(t) => Some(t),
        Err(reason) => {
            skip(test, &reason);
            None
        }
    }
}

fn assert_ok(out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The newest `started` of a job's stored runs, read straight from the database.
fn newest_stored_run(sandbox: &Sandbox, job: &str) -> Option<String> {
    let conn = open_db_read_only(&db_path(sandbox));
    conn.query_row("SELECT max(started) FROM runs WHERE job = ?1", [job], |r| {
        r.get(0)
    })
    .ok()
    .flatten()
}

/// The database's words for "full", as `SQLite` and the OS put them.
fn says_full(text: &str) -> bool {
    let t = text.to_lowercase();
    t.contains("database or disk is full") || t.contains("no space left on device")
}

// ---------------------------------------------------------------------------------------------
// 1. The disk fills up while the service runs.

#[test]
#[allow(clippy::too_many_lines)]
fn a_full_disk_is_reported_loses_no_acknowledged_action_and_recording_resumes() {
    let ctl = tempfile::tempdir().unwrap();
    fs::write(ctl.path().join("quiet"), "").unwrap();
    let mut yaml = ok_jobs_yaml(
        &["steady", "keep_off", "keep_on", "during", "after"],
        "200ms",
    );
    for i in 0..3 {
        writeln!(
            yaml,
            "  - name: loud{i}\n    path: loud.lua\n    interval: 100ms\n    allow: [files]\n    files: [{}]",
            ctl.path().display()
        )
        .unwrap();
    }
    let sandbox = Sandbox::with_cli(
        CLI,
        &yaml,
        &[("ok.lua", OK_JOB), ("loud.lua", &loud_job(ctl.path()))],
    );
    let test = "a_full_disk_is_reported_loses_no_acknowledged_action_and_recording_resumes";
    let Some(disk) = mount_state_dir(&sandbox, "2m", test) else {
        return;
    };
    let mut serve = serve_ready(&sandbox, Duration::from_secs(20));
    let mut events = Conn::open(&sandbox.socket()).unwrap();
    events.call(&json!({"op": "subscribe"})).unwrap();

    // Acknowledged while there is room.
    assert_ok(&sandbox.jobtop(&["cancel", "keep_off"]), "cancel keep_off");
    assert_ok(&sandbox.jobtop(&["cancel", "keep_on"]), "cancel keep_on");
    assert_ok(
        &sandbox.jobtop(&["activate", "keep_on"]),
        "activate keep_on",
    );

    // Loud jobs fill the 2 MiB: the service says so, on stderr (the log) and to subscribers.
    fs::remove_file(ctl.path().join("quiet")).unwrap();
    let full_at = Instant::now();
    let notice = poll_every(Duration::from_millis(50), Duration::from_secs(30), || {
        while let Ok(Some(event)) = events.next_value(Duration::from_millis(10)) {
            if event["event"] == "notice" && says_full(&event.to_string()) {
                return Some(event);
            }
        }
        None
    })
    .unwrap_or_else(|| {
        panic!(
            "no notice of a full disk within 30 s ({} bytes free): {}",
            disk.free_bytes(),
            serve.stderr()
        )
    });
    let message = notice["message"].as_str().unwrap_or_default().to_string();
    let db = db_path(&sandbox);
    assert!(
        message.contains(&db.display().to_string()),
        "the notice names the database: {message}"
    );
    eprintln!("full after {:?}: notice {message:?}", full_at.elapsed());
    let logged = poll_every(Duration::from_millis(50), Duration::from_secs(5), || {
        says_full(&serve.stderr()).then_some(())
    });
    assert!(logged.is_some(), "the log says nothing: {}", serve.stderr());
    drop(events);

    // Still serving, and still running jobs.
    assert!(
        serve.running(),
        "the service died of a full disk: {}",
        serve.stderr()
    );
    let steady = runs(&sandbox.job("steady"));
    let later = sandbox.wait_job("steady", Duration::from_secs(10), |j| runs(j) > steady + 2);
    // Waiting for its next run, or in one (a run is handed over a few ms before it is due).
    assert!(
        matches!(later["status"].as_str(), Some("waiting" | "running")),
        "{later:#}"
    );
    assert_eq!(sandbox.list().len(), 8);

    // An action while the disk is full: either saved and acknowledged, or refused saying why.
    let during = sandbox.jobtop(&["cancel", "during"]);
    let during_acked = during.status.code() == Some(0);
    if !during_acked {
        let why = text(&during.stderr);
        assert!(
            says_full(&why) && why.contains("not saved"),
            "a refused cancel says it was not saved because the disk is full: {why}"
        );
    }
    eprintln!(
        "cancel while full: {}",
        if during_acked {
            "saved and acknowledged".to_string()
        } else {
            format!("refused: {}", text(&during.stderr).trim())
        }
    );

    // Space comes back (the loud jobs go quiet and the file system grows): runs are recorded
    // again, and actions are acknowledged again.
    fs::write(ctl.path().join("quiet"), "").unwrap();
    disk.remount("size=64m");
    let freed = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let resumed = poll_every(Duration::from_millis(100), Duration::from_secs(20), || {
        newest_stored_run(&sandbox, "steady").filter(|t| *t > freed)
    });
    assert!(
        resumed.is_some(),
        "no run of steady recorded within 20 s of freeing space (newest {:?}, freed {freed}): {}",
        newest_stored_run(&sandbox, "steady"),
        serve.stderr()
    );
    assert_ok(
        &sandbox.jobtop(&["cancel", "after"]),
        "cancel after freeing",
    );
    assert!(serve.running(), "{}", serve.stderr());
    stop(&mut serve, Duration::from_secs(15));

    let conn = open_db(&db);
    assert_eq!(integrity(&conn), "ok");
    let flags = deactivated_flags(&conn);
    assert_eq!(flags.get("keep_off"), Some(&true), "{flags:?}");
    assert_eq!(flags.get("keep_on"), Some(&false), "{flags:?}");
    assert_eq!(flags.get("after"), Some(&true), "{flags:?}");
    if during_acked {
        assert_eq!(
            flags.get("during"),
            Some(&true),
            "acknowledged while full: {flags:?}"
        );
    }
    let loud_runs: i64 = conn
        .query_row(
            "SELECT count(*) FROM runs WHERE job LIKE 'loud%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    if let Some(report) = sqlite3_integrity(&db) {
        assert_eq!(report, "ok");
    }
    eprintln!("loud runs stored: {loud_runs}");
    drop(disk);
}

// ---------------------------------------------------------------------------------------------
// 2. The disk is full before the service starts.

/// Starts `serve` and waits until it either exits (returned with its stderr) or answers on
/// its socket (`None`, and it keeps running in `serve`).
fn start_or_exit(sandbox: &Sandbox) -> (Serve, Option<(Option<i32>, String)>) {
    let mut serve = Serve::spawn(sandbox);
    let socket = sandbox.socket();
    let outcome = poll_every(Duration::from_millis(20), Duration::from_secs(20), || {
        if let Some(status) = serve.child.try_wait().unwrap() {
            return Some(Some((status.code(), serve.stderr())));
        }
        Conn::open(&socket).ok().map(|_| None)
    })
    .unwrap_or_else(|| panic!("serve neither started nor exited: {}", serve.stderr()));
    (serve, outcome)
}

#[test]
fn a_state_directory_full_at_start_is_refused_clearly_and_nothing_is_lost() {
    let sandbox = Sandbox::with_cli(
        CLI,
        &ok_jobs_yaml(&["a", "off"], "200ms"),
        &[("ok.lua", OK_JOB)],
    );
    let test = "a_state_directory_full_at_start_is_refused_clearly_and_nothing_is_lost";
    let Some(disk) = mount_state_dir(&sandbox, "1m", test) else {
        return;
    };
    // A new state directory on a full disk: nothing to lose yet, but a clear refusal.
    let filler = fill(&disk.dir, "filler");
    let (mut serve, outcome) = start_or_exit(&sandbox);
    match &outcome {
        Some((code, stderr)) => {
            assert_ne!(*code, Some(0), "{stderr}");
            assert!(
                says_full(stderr) && stderr.contains(&disk.dir.display().to_string()),
                "the refusal names the state directory and says it is full: {stderr}"
            );
            eprintln!("new state directory, disk full: {}", stderr.trim());
        }
        None => panic!(
            "serve started with no room for its database: {}",
            serve.stderr()
        ),
    }
    fs::remove_file(&filler).unwrap();

    // A database with an acknowledged cancellation, then a full disk.
    let mut serve_ok = serve_ready(&sandbox, Duration::from_secs(20));
    sandbox.wait_job("a", Duration::from_secs(10), |j| runs(j) >= 2);
    assert_ok(&sandbox.jobtop(&["cancel", "off"]), "cancel off");
    stop(&mut serve_ok, Duration::from_secs(15));
    let filler = fill(&disk.dir, "filler");

    let (serve_full, outcome) = start_or_exit(&sandbox);
    serve = serve_full;
    match &outcome {
        Some((code, stderr)) => {
            assert_ne!(*code, Some(0));
            assert!(
                says_full(stderr) && stderr.contains(&disk.dir.display().to_string()),
                "the refusal names the state directory and says it is full: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
            eprintln!("existing database, disk full at start: {}", stderr.trim());
        }
        None => {
            // Started anyway: it must say that it cannot record, and keep serving.
            let said = poll_every(Duration::from_millis(100), Duration::from_secs(10), || {
                says_full(&serve.stderr()).then_some(())
            });
            assert!(
                said.is_some(),
                "started on a full disk without a word: {}",
                serve.stderr()
            );
            assert_eq!(sandbox.job("off")["status"], "deactivated");
            eprintln!(
                "existing database, disk full at start: started, {}",
                serve.stderr()
            );
            stop(&mut serve, Duration::from_secs(15));
        }
    }
    // Offline actions on a full disk: saved, or refused saying why.
    let out = sandbox.jobtop(&["activate", "off"]);
    let activated = out.status.code() == Some(0);
    if !activated {
        let why = text(&out.stderr);
        assert!(
            says_full(&why),
            "offline activate refused without saying why: {why}"
        );
        eprintln!("offline activate, disk full: {}", why.trim());
    }

    fs::remove_file(&filler).unwrap();
    let conn = open_db(&db_path(&sandbox));
    assert_eq!(integrity(&conn), "ok");
    assert_eq!(
        deactivated_flags(&conn).get("off"),
        Some(&!activated),
        "the acknowledged state of off"
    );
    drop(conn);
    let mut serve = serve_ready(&sandbox, Duration::from_secs(20));
    let a = runs(&sandbox.job("a"));
    sandbox.wait_job("a", Duration::from_secs(10), |j| runs(j) > a);
    stop(&mut serve, Duration::from_secs(15));
    drop(disk);
}

// ---------------------------------------------------------------------------------------------
// 3. A read-only state directory.

/// Asserts a refusal: a non-zero exit, the path named, and what is expected said.
fn assert_clear_refusal(out: &Output, what: &str, path: &Path) -> String {
    let stderr = text(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(0),
        "{what} succeeded on a read-only state directory"
    );
    assert!(
        stderr.contains(&path.display().to_string()),
        "{what}: the error names {}: {stderr}",
        path.display()
    );
    let lower = stderr.to_lowercase();
    assert!(
        lower.contains("read-only") && (lower.contains("expected") || lower.contains("make")),
        "{what}: the error says it is read-only and what is expected: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    stderr
}

#[test]
fn a_read_only_state_directory_is_refused_clearly_without_damage() {
    let sandbox = Sandbox::with_cli(
        CLI,
        &ok_jobs_yaml(&["on", "off"], "200ms"),
        &[("ok.lua", OK_JOB)],
    );
    let test = "a_read_only_state_directory_is_refused_clearly_without_damage";
    let Some(disk) = mount_state_dir(&sandbox, "4m", test) else {
        return;
    };
    let mut serve = serve_ready(&sandbox, Duration::from_secs(20));
    sandbox.wait_job("on", Duration::from_secs(10), |j| runs(j) >= 2);
    assert_ok(&sandbox.jobtop(&["cancel", "off"]), "cancel off");
    stop(&mut serve, Duration::from_secs(15));
    let before = fs::read(db_path(&sandbox)).unwrap();
    let listed_before: Vec<Value> = sandbox.list();

    disk.remount("ro");
    let dir = sandbox.state_dir();
    // serve: refused at once, naming the directory.
    let out = sandbox.jobtop(&["serve"]);
    let said = assert_clear_refusal(&out, "serve", &dir);
    eprintln!("serve on a read-only state directory: {}", said.trim());
    // Offline actions: refused the same way.
    for args in [["cancel", "on"], ["activate", "off"], ["trigger", "on"]] {
        let out = sandbox.jobtop(&args);
        let said = assert_clear_refusal(&out, &args.join(" "), &dir);
        eprintln!(
            "{} on a read-only state directory: {}",
            args.join(" "),
            said.trim()
        );
    }
    // Reading still works.
    let out = sandbox.jobtop(&["list", "--json"]);
    eprintln!(
        "list on a read-only state directory: exit {:?} {}",
        out.status.code(),
        text(&out.stderr).trim()
    );
    if out.status.code() == Some(0) {
        let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed.len(), listed_before.len());
    } else {
        assert!(text(&out.stderr).contains(&dir.display().to_string()));
    }

    disk.remount("rw");
    assert_eq!(
        fs::read(db_path(&sandbox)).unwrap(),
        before,
        "the database file changed"
    );
    let conn = open_db(&db_path(&sandbox));
    assert_eq!(integrity(&conn), "ok");
    let flags = deactivated_flags(&conn);
    assert_eq!(flags.get("off"), Some(&true));
    assert_eq!(flags.get("on"), Some(&false));
    drop(conn);
    let mut serve = serve_ready(&sandbox, Duration::from_secs(20));
    assert_eq!(sandbox.job("off")["status"], "deactivated");
    stop(&mut serve, Duration::from_secs(15));
    drop(disk);
}

// ---------------------------------------------------------------------------------------------
// 4. A state directory without write permission (chmod 0500), for a user that is not root
// (permission bits do not bind root, so the test runs jobtop as a throwaway user).

/// A throwaway Unix user made with `useradd`; removed (with its group) when dropped.
struct ThrowawayUser {
    name: String,
    uid: String,
    gid: String,
}

impl ThrowawayUser {
    fn create() -> Result<ThrowawayUser, String> {
        if !common::faults::is_root() {
            return Err("not root: useradd needs root".into());
        }
        let name = format!("jtro{}", std::process::id());
        let out = std::process::Command::new("useradd")
            .args(["-M", "-U", "-s", "/bin/sh", &name])
            .output()
            .map_err(|e| format!("cannot run useradd: {e}"))?;
        if !out.status.success() {
            return Err(format!("useradd {name}: {}", text(&out.stderr).trim()));
        }
        let id = |flag: &str| {
            let out = std::process::Command::new("id")
                .arg(flag)
                .arg(&name)
                .output()
                .unwrap();
            text(&out.stdout).trim().to_string()
        };
        Ok(ThrowawayUser {
            uid: id("-u"),
            gid: id("-g"),
            name,
        })
    }

    /// `program ARGS` as this user, in `dir`.
    fn command(&self, program: &Path) -> std::process::Command {
        let mut command = std::process::Command::new("setpriv");
        command
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg(program);
        command
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .arg(&self.name)
            .output();
        let _ = std::process::Command::new("groupdel")
            .arg(&self.name)
            .output();
    }
}

#[test]
fn a_state_directory_without_write_permission_is_refused_clearly() {
    use std::os::unix::fs::PermissionsExt;
    let test = "a_state_directory_without_write_permission_is_refused_clearly";
    let user = match ThrowawayUser::create() {
        Ok(u) => u,
        Err(why) => return skip(test, &why),
    };
    // The binary, somewhere the user can run it; the sandbox, owned by the user.
    let bins = tempfile::tempdir().unwrap();
    fs::set_permissions(bins.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let jobtop = bins.path().join("jobtop");
    fs::copy(common::process::BIN, &jobtop).unwrap();
    fs::set_permissions(&jobtop, fs::Permissions::from_mode(0o755)).unwrap();
    let sandbox = Sandbox::with_cli(
        CLI,
        &ok_jobs_yaml(&["on", "off"], "200ms"),
        &[("ok.lua", OK_JOB)],
    );
    let chown = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(sandbox.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let as_user = |args: &[&str]| {
        let mut command = user.command(&jobtop);
        command
            .args(args)
            .arg("--config")
            .arg(sandbox.config())
            .current_dir(sandbox.path())
            .env_remove("JOBTOP_LOG");
        common::process::run(
            command,
            &format!("jobtop {args:?} as {}", user.name),
            CLI.deadline,
        )
    };
    // A state directory with history and an acknowledged cancellation, made by the user.
    let stderr_path = sandbox.path().join("serve-user.err");
    let mut command = user.command(&jobtop);
    command
        .arg("serve")
        .arg("--config")
        .arg(sandbox.config())
        .current_dir(sandbox.path())
        .env_remove("JOBTOP_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&stderr_path).unwrap());
    let serve = Serve {
        child: common::process::spawn(&mut command),
        stderr_path,
        socket: sandbox.socket(),
        started: Instant::now(),
        term_on_drop: false,
    };
    let mut serve = common::faults::wait_ready(serve, Duration::from_secs(20));
    sandbox.wait_job("on", Duration::from_secs(10), |j| runs(j) >= 2);
    assert_ok(&as_user(&["cancel", "off"]), "cancel off");
    stop(&mut serve, Duration::from_secs(15));
    let before = fs::read(db_path(&sandbox)).unwrap();

    let dir = sandbox.state_dir();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o500)).unwrap();
    let out = as_user(&["serve"]);
    let said = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "serve started: {said}");
    assert!(
        said.contains(&dir.display().to_string()) && !said.contains("panicked"),
        "serve names the state directory: {said}"
    );
    let lower = said.to_lowercase();
    assert!(
        (lower.contains("read-only") || lower.contains("permission denied"))
            && (lower.contains("expected") || lower.contains("make") || lower.contains("check")),
        "serve says what is wrong and what is expected: {said}"
    );
    eprintln!("serve, state directory 0500: {}", said.trim());
    for args in [["cancel", "on"], ["activate", "off"]] {
        let out = as_user(&args);
        let said = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?} succeeded: {said}");
        assert!(
            said.contains(&dir.display().to_string()),
            "{args:?}: {said}"
        );
        eprintln!("{}, state directory 0500: {}", args.join(" "), said.trim());
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        fs::read(db_path(&sandbox)).unwrap(),
        before,
        "the database file changed"
    );
    let conn = open_db(&db_path(&sandbox));
    assert_eq!(integrity(&conn), "ok");
    let flags = deactivated_flags(&conn);
    assert_eq!(flags.get("off"), Some(&true));
    assert_eq!(flags.get("on"), Some(&false));
}
