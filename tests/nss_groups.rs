//! Users and groups come from NSS, not from `/etc/passwd` and `/etc/group` read by hand: a
//! group that only a directory service knows (LDAP, SSSD …) works for `service.operators` and
//! `service.viewers`. The directory is played by `nss_wrapper` (Debian's `libnss-wrapper`, made
//! for testing exactly this): preloaded into `jobtop`, it answers the C library's user and group
//! lookups from files of the test's own, which `/etc` knows nothing of.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::{Cli, Sandbox, Serve, poll_every, run};

const WRAPPER: &str = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so";

/// Ids that `/etc/passwd` does not have: the "directory" users.
const OPERATOR_UID: u32 = 47_011;
const VIEWER_UID: u32 = 47_012;
const STRANGER_UID: u32 = 47_013;

/// The preloaded wrapper, or `None` (a skip, or a failure under `JOBTOP_REQUIRE_SERVERS`).
fn wrapper() -> Option<&'static str> {
    if Path::new(WRAPPER).exists() && nix::unistd::Uid::current().is_root() {
        return Some(WRAPPER);
    }
    let why = "needs libnss_wrapper and root (to connect as other uids); install with: \
               apt-get install -y libnss-wrapper";
    assert!(
        std::env::var_os("JOBTOP_REQUIRE_SERVERS").is_none(),
        "{why}, and JOBTOP_REQUIRE_SERVERS is set"
    );
    eprintln!("SKIPPED (NSS groups): {why}");
    None
}

/// The directory's users and groups, as `nss_wrapper` files; the variables that point at them.
fn directory(dir: &Path) -> Vec<(String, String)> {
    let passwd = dir.join("nss-passwd");
    let group = dir.join("nss-group");
    std::fs::write(
        &passwd,
        format!(
            "root:x:0:0:root:/root:/bin/sh\n\
             ldapops:x:{OPERATOR_UID}:{OPERATOR_UID}::/nonexistent:/bin/sh\n\
             ldapview:x:{VIEWER_UID}:{VIEWER_UID}::/nonexistent:/bin/sh\n\
             ldapnobody:x:{STRANGER_UID}:{STRANGER_UID}::/nonexistent:/bin/sh\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &group,
        format!(
            "root:x:0:\n\
             ldapops:x:{OPERATOR_UID}:\n\
             ldapview:x:{VIEWER_UID}:\n\
             ldapnobody:x:{STRANGER_UID}:\n\
             dir-operators:x:47100:ldapops\n\
             dir-viewers:x:47101:ldapview\n"
        ),
    )
    .unwrap();
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    vec![
        ("LD_PRELOAD".into(), WRAPPER.into()),
        ("NSS_WRAPPER_PASSWD".into(), path(passwd)),
        ("NSS_WRAPPER_GROUP".into(), path(group)),
    ]
}

const YAML: &str = "service:
  operators: dir-operators
  viewers: dir-viewers
jobs:
  - name: x
    path: ok.lua
    interval: 1h
";

const OK_JOB: &str = "local job = core.job() function job.run() return job.OK end return job";

/// `jobtop check` with and without the directory: the groups exist only in it.
#[test]
fn a_group_known_only_to_nss_is_accepted_by_check() {
    let Some(_) = wrapper() else { return };
    let sandbox = Sandbox::with_cli(
        Cli::new(Duration::from_secs(30)),
        YAML,
        &[("ok.lua", OK_JOB)],
    );
    let check = |env: &[(String, String)]| {
        let mut command = Command::new(common::process::BIN);
        command
            .args(["check", "--config"])
            .arg(sandbox.config())
            .envs(env.iter().map(|(k, v)| (k, v)));
        run(command, "jobtop check", Duration::from_secs(30))
    };
    let without = check(&[]);
    let stdout = String::from_utf8_lossy(&without.stdout);
    assert_eq!(without.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("unknown group \"dir-operators\""),
        "the groups should be unknown outside the directory: {stdout}"
    );
    let with = check(&directory(sandbox.path()));
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stdout)
    );
}

/// `jobtop activate x` run as uid `uid` (a client of the running service): its output.
fn activate_as(uid: u32, sandbox: &Sandbox) -> String {
    let mut command = Command::new("setpriv");
    command
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            common::process::BIN,
            "activate",
            "x",
            "--config",
        ])
        .arg(sandbox.config());
    let out = run(command, "a client as another uid", Duration::from_secs(30));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The service looks its peers up through NSS: members of the directory's groups get their
/// roles, someone in neither is refused.
#[test]
fn peers_are_members_of_groups_known_only_to_nss() {
    let Some(_) = wrapper() else { return };
    let sandbox = Sandbox::with_cli(
        Cli::new(Duration::from_secs(30)),
        YAML,
        &[("ok.lua", OK_JOB)],
    );
    std::fs::set_permissions(sandbox.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let env = directory(sandbox.path());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut serve = Serve::spawn_with_env(&sandbox, &env);
    serve.term_on_drop = true;
    let socket = sandbox.socket();
    let ready = poll_every(Duration::from_millis(50), Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&socket).ok()
    });
    assert!(ready.is_some(), "no socket: {}", serve.stderr());

    let operator = activate_as(OPERATOR_UID, &sandbox);
    assert!(operator.contains("x is already active"), "{operator}");
    let viewer = activate_as(VIEWER_UID, &sandbox);
    assert!(
        viewer.contains("user ldapview is a viewer (service.viewers)"),
        "{viewer}"
    );
    let stranger = activate_as(STRANGER_UID, &sandbox);
    assert!(
        stranger.contains("user ldapnobody may not use this jobtop service"),
        "{stranger}"
    );
}
