//! Throwaway Unix users and groups for the tests that need other identities (socket peers,
//! ssh logins), and programs run as them.
//!
//! [`Accounts::create`] makes the users and groups (names start with `jt<pid><tag>`, so
//! parallel test binaries never collide) and removes them when dropped, also on a panic. Where
//! accounts cannot be made (not root, no `useradd`) it prints why and returns `None`, so the
//! test can return early; under `JOBTOP_REQUIRE_SERVERS` or `JOBTOP_REQUIRE_TMUX` (CI) that is
//! a failure instead.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::thread::sleep;
use std::time::Duration;

use super::process::text;

/// A throwaway Unix user.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    /// `program` as this user (`setpriv` with the user's ids and groups), to which the caller
    /// adds arguments.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg(program);
        command
    }
}

/// Groups and users made for one test, removed when dropped (also on a panic).
pub struct Accounts {
    pub groups: Vec<String>,
    pub users: Vec<String>,
}

impl Accounts {
    /// `groups` are created; each user is created (no home directory, `/bin/sh`) with its own
    /// group plus the named ones. `None` (after printing why) when accounts cannot be made
    /// here, unless `JOBTOP_REQUIRE_SERVERS` or `JOBTOP_REQUIRE_TMUX` is set: then the test
    /// fails.
    pub fn create(
        tag: &str,
        groups: &[&str],
        users: &[(&str, &[&str])],
    ) -> Option<(Accounts, Vec<TestUser>)> {
        let pid = std::process::id();
        let mut accounts = Accounts {
            groups: Vec::new(),
            users: Vec::new(),
        };
        let skip = |why: String| {
            for var in ["JOBTOP_REQUIRE_SERVERS", "JOBTOP_REQUIRE_TMUX"] {
                assert!(
                    std::env::var_os(var).is_none(),
                    "cannot create test accounts and {var} is set: {why}"
                );
            }
            eprintln!(
                "SKIPPED (other users): cannot create test accounts: {why}; run the tests as \
                 root with useradd (apt-get install -y passwd)"
            );
        };
        for group in groups {
            let name = format!("jt{pid}{tag}{group}");
            let (ok, why) = account(&["groupadd", &name]);
            if !ok {
                skip(format!("groupadd {name}: {why}"));
                return None;
            }
            accounts.groups.push(name);
        }
        let mut made = Vec::new();
        for (user, member_of) in users {
            let name = format!("jt{pid}{tag}{user}");
            let member_of: Vec<String> = member_of
                .iter()
                .map(|g| format!("jt{pid}{tag}{g}"))
                .collect();
            let mut args = vec!["useradd", "-M", "-U", "-s", "/bin/sh"];
            let joined = member_of.join(",");
            if !member_of.is_empty() {
                args.extend(["-G", joined.as_str()]);
            }
            args.push(&name);
            let (ok, why) = account(&args);
            if !ok {
                skip(format!("useradd {name}: {why}"));
                return None;
            }
            accounts.users.push(name.clone());
            made.push(TestUser {
                uid: id_of(&name, "-u"),
                gid: id_of(&name, "-g"),
                name,
            });
        }
        Some((accounts, made))
    }

    /// The full name of the group created as `short`.
    pub fn group(&self, short: &str) -> String {
        self.groups
            .iter()
            .find(|g| g.ends_with(short))
            .unwrap()
            .clone()
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for user in &self.users {
            let _ = account(&["userdel", user]);
            // The user's own group, where userdel leaves it.
            let _ = Command::new("getent")
                .args(["group", user])
                .output()
                .map(|out| {
                    if out.status.success() {
                        let _ = account(&["groupdel", user]);
                    }
                });
        }
        for group in &self.groups {
            let _ = account(&["groupdel", group]);
        }
    }
}

/// `useradd` and friends lock `/etc/passwd`: one at a time in this process.
static ACCOUNTS: Mutex<()> = Mutex::new(());

/// Runs an account command (`useradd`, `groupadd`, `usermod` …), retrying while
/// `/etc/passwd` is locked (by another test binary); returns whether it succeeded, and its
/// stderr.
pub fn account(args: &[&str]) -> (bool, String) {
    let _one = ACCOUNTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut last = String::new();
    for _ in 0..20 {
        match Command::new(args[0]).args(&args[1..]).output() {
            Ok(out) if out.status.success() => return (true, String::new()),
            Ok(out) => {
                last = text(&out.stderr);
                // Another program holds the lock on /etc/passwd or /etc/group: try again.
                if !last.contains("lock") {
                    return (false, last);
                }
            }
            Err(e) => return (false, format!("cannot run {}: {e}", args[0])),
        }
        sleep(Duration::from_millis(100));
    }
    (false, last)
}

/// `id FLAG USER` as a number (`-u` for the uid, `-g` for the primary gid).
pub fn id_of(user: &str, flag: &str) -> u32 {
    let out = Command::new("id").arg(flag).arg(user).output().unwrap();
    assert!(out.status.success(), "id {flag} {user}: {out:?}");
    text(&out.stdout).trim().parse().unwrap()
}

/// The uid this test process runs as.
pub fn current_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    assert!(out.status.success(), "id -u: {out:?}");
    text(&out.stdout).trim().parse().unwrap()
}

/// Whether every directory above `path` can be entered, and `path` read and run, by anyone.
pub fn reachable_by_everyone(path: &Path) -> bool {
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    if meta.permissions().mode() & 0o005 != 0o005 {
        return false;
    }
    path.ancestors()
        .skip(1)
        .all(|dir| fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// `binary` itself when everyone can run it, else a link (or copy) in `dir` (made 0755).
pub fn runnable_by_everyone(binary: &Path, dir: &Path) -> PathBuf {
    if reachable_by_everyone(binary) {
        return binary.to_path_buf();
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let target = dir.join(binary.file_name().unwrap());
    if fs::hard_link(binary, &target).is_err() {
        fs::copy(binary, &target).unwrap();
    }
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        reachable_by_everyone(&target),
        "{} is not reachable by other users",
        target.display()
    );
    target
}
