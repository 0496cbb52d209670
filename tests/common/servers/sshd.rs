//! A real OpenSSH server for the tests: `sshd -D -e -f CONFIG` on 127.0.0.1 and a free port,
//! with its own config, a temporary host key and one client key, which the test authorises
//! for the users it logs in as.
//!
//! **The remote `PATH`.** The config sets `SetEnv PATH=<bin>:/usr/local/bin:/usr/bin:/bin`,
//! where `<bin>` ([`Sshd::bin_dir`]) is a directory in the server's temporary directory that
//! already holds `jobtop` (the test's binary, linked or copied so that every user can run it);
//! [`Sshd::install`] puts more programs there. So `ssh … host jobtop dial-stdio` runs the
//! binary under test. A login shell can still change `PATH` after sshd has set it: root's
//! `bash` reads `~/.bashrc`, which may prepend directories (this machine's adds
//! `~/.cargo/bin`). The users made by [`crate::common::accounts::Accounts`] have `/bin/sh`,
//! which reads no file, so their `PATH` is exactly the one above. [`Sshd::remote_which`] says
//! what a user's `jobtop` resolves to.
//!
//! `JOBTOP_*` variables sent by the client (`ssh -o SendEnv=JOBTOP_LOG`) are accepted.
//! Authorised keys live in `<dir>/authorized/<user>` (`AuthorizedKeysFile`), `StrictModes no`,
//! no PAM, no DNS. A user without a home directory logs in with `/` as the working directory
//! (sshd prints `Could not chdir to home directory` on the session's stderr).

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{Daemon, find_program, require, skip, stdout_or_err};
use crate::common::accounts::{account, reachable_by_everyone};
use crate::common::process::{BIN, current_user, run, text};

/// How to install what this harness needs.
pub const INSTALL: &str = "apt-get install -y openssh-server openssh-client";

/// The programs of OpenSSH.
#[derive(Clone)]
struct Binaries {
    sshd: PathBuf,
    ssh: PathBuf,
    keygen: PathBuf,
}

fn binaries() -> Result<Binaries, String> {
    // sshd re-executes itself for each connection, which needs an absolute path.
    let sshd = find_program(&["sshd"], &["/usr/sbin", "/usr/local/sbin"])?;
    Ok(Binaries {
        sshd: fs::canonicalize(&sshd).unwrap_or(sshd),
        ssh: find_program(&["ssh"], &["/usr/bin"])?,
        keygen: find_program(&["ssh-keygen"], &["/usr/bin"])?,
    })
}

/// How an [`Sshd`] is set up beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct SshdOptions {
    /// Directories put on the remote `PATH` after [`Sshd::bin_dir`].
    pub path: Vec<PathBuf>,
    /// Lines added at the end of `sshd_config`.
    pub extra_config: String,
}

/// An sshd on 127.0.0.1, stopped (and its directory removed) when dropped.
pub struct Sshd {
    // Declared before `dir`: the server stops before its directory goes.
    daemon: Daemon,
    bin: Binaries,
    port: u16,
    dir: TempDir,
}

impl Sshd {
    /// An sshd of the calling test's own with the current user authorised; `None` (after a
    /// skip note) when OpenSSH is not installed.
    pub fn new() -> Option<Sshd> {
        Sshd::with_options(&SshdOptions::default())
    }

    /// [`new`](Sshd::new), set up as `options` say.
    pub fn with_options(options: &SshdOptions) -> Option<Sshd> {
        let bin = require("sshd", binaries(), INSTALL)?;
        Some(Sshd::boot(bin, options))
    }

    /// The sshd shared by every test of this test binary, started on first use (with the
    /// current user authorised; a test authorises its own users with [`Sshd::authorize`]).
    pub fn shared() -> Option<&'static Sshd> {
        static SHARED: OnceLock<Result<Sshd, String>> = OnceLock::new();
        match SHARED.get_or_init(|| binaries().map(|b| Sshd::boot(b, &SshdOptions::default()))) {
            Ok(sshd) => Some(sshd),
            Err(why) => {
                skip("sshd", why, INSTALL);
                None
            }
        }
    }

    fn boot(bin: Binaries, options: &SshdOptions) -> Sshd {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("jobtop-sshd-")
            .tempdir()
            .unwrap();
        // Other users read their authorised keys (sshd opens them as the user) and run the
        // programs in bin/.
        for sub in ["", "authorized", "bin"] {
            let path = dir.path().join(sub);
            fs::create_dir_all(&path).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        for (key, comment) in [
            ("host_key", "jobtop-test-host"),
            ("client_key", "jobtop-test-client"),
        ] {
            let mut keygen = Command::new(&bin.keygen);
            keygen
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(dir.path().join(key));
            stdout_or_err(
                &run(keygen, "ssh-keygen", Duration::from_secs(30)),
                "ssh-keygen",
            )
            .unwrap();
        }
        if super::is_root() {
            // Debian's sshd wants its privilege separation directory (systemd makes it).
            fs::create_dir_all("/run/sshd").unwrap();
        }
        let daemon = Daemon::new(
            "sshd",
            dir.path(),
            dir.path().join("sshd.log"),
            "TERM",
            "TERM",
        );
        let mut sshd = Sshd {
            daemon,
            bin,
            port: 0,
            dir,
        };
        sshd.install(Path::new(BIN));
        sshd.authorize(&current_user());
        // The port is free when chosen, not when bound: another one if it was taken.
        sshd.port = super::start_on_free_port("sshd", "Address already in use", |port| {
            sshd.port = port;
            sshd.write_config(options);
            sshd.try_start()
        });
        eprintln!(
            "note: sshd ready on 127.0.0.1:{} in {:?}",
            sshd.port,
            started.elapsed()
        );
        sshd
    }

    fn write_config(&self, options: &SshdOptions) {
        let dir = self.dir.path();
        let mut path = vec![self.bin_dir()];
        path.extend(options.path.iter().cloned());
        path.extend(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .map(PathBuf::from),
        );
        let path = std::env::join_paths(path).unwrap();
        let config = format!(
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {host_key}\n\
             PidFile none\n\
             AuthorizedKeysFile {authorized}/%u\n\
             StrictModes no\n\
             UsePAM no\n\
             UseDNS no\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             X11Forwarding no\n\
             MaxStartups 200\n\
             MaxSessions 200\n\
             LoginGraceTime 30\n\
             LogLevel VERBOSE\n\
             AcceptEnv JOBTOP_*\n\
             SetEnv PATH={path}\n\
             {extra}\n",
            port = self.port,
            host_key = dir.join("host_key").display(),
            authorized = dir.join("authorized").display(),
            path = path.to_string_lossy(),
            extra = options.extra_config,
        );
        fs::write(self.config(), config).unwrap();
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("sshd_config")
    }

    /// Starts sshd again after [`stop`](Sshd::stop) (same port, same keys), and waits until
    /// it answers.
    pub fn start(&self) {
        if let Err(why) = self.try_start() {
            panic!("sshd did not start: {why}");
        }
    }

    fn try_start(&self) -> Result<(), String> {
        let mut check = Command::new(&self.bin.sshd);
        check.arg("-t").arg("-f").arg(self.config());
        stdout_or_err(&run(check, "sshd -t", Duration::from_secs(30)), "sshd -t")?;
        let mut command = Command::new(&self.bin.sshd);
        command.args(["-D", "-e", "-f"]).arg(self.config());
        self.daemon.spawn(command);
        self.daemon
            .wait_ready(Duration::from_secs(30), || self.banner().is_some())
    }

    /// The server's `SSH-2.0-…` greeting, if it answers.
    fn banner(&self) -> Option<String> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        line.starts_with("SSH-").then_some(line)
    }

    /// Stops sshd (the listener and the sessions it has open).
    pub fn stop(&self) {
        // The connections' processes are the listener's children; ending the listener alone
        // would leave them running.
        if let Some(pid) = self.daemon.pid() {
            let _ = Command::new("pkill")
                .args(["-TERM", "-P", &pid.to_string()])
                .status();
        }
        self.daemon.stop();
    }

    /// Stops and starts sshd.
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// Whether sshd runs.
    pub fn running(&self) -> bool {
        self.daemon.running()
    }

    /// The listener's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory first on the remote `PATH`, which holds `jobtop`.
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// The client's private key (owned by the tests' user, mode 0600, as ssh demands).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// The server's temporary directory (its config in `sshd_config`, log in `sshd.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// sshd's log so far (`LogLevel VERBOSE`: connections, logins, refusals).
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Puts `program` in [`bin_dir`](Sshd::bin_dir) under its own name: a link when every
    /// user can reach it where it is, else a copy. Returns its path there.
    pub fn install(&self, program: &Path) -> PathBuf {
        let target = self.bin_dir().join(program.file_name().unwrap());
        let _ = fs::remove_file(&target);
        if reachable_by_everyone(program) {
            std::os::unix::fs::symlink(fs::canonicalize(program).unwrap(), &target).unwrap();
        } else {
            fs::copy(program, &target).unwrap();
            fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        }
        target
    }

    /// Lets `user` log in with the client key. A locked account (`!` in `/etc/shadow`, as
    /// `useradd` leaves it) is refused by sshd even for a key, so under root its password
    /// field becomes `*` (no password, not locked).
    pub fn authorize(&self, user: &str) {
        let public = fs::read_to_string(self.dir.path().join("client_key.pub")).unwrap();
        let file = self.dir.path().join("authorized").join(user);
        fs::write(&file, public).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        if super::is_root() && locked(user) {
            let (ok, why) = account(&["usermod", "-p", "*", user]);
            assert!(ok, "usermod -p '*' {user}: {why}");
        }
    }

    /// The `ssh` command line for `JOBTOP_SSH`: port, key, no host key checks, no agent, no
    /// user config, no prompts. jobtop adds the host and the remote command.
    pub fn ssh_command(&self) -> String {
        self.ssh_args().join(" ")
    }

    /// [`ssh_command`](Sshd::ssh_command) as separate arguments, the program first.
    pub fn ssh_args(&self) -> Vec<String> {
        [
            self.bin.ssh.display().to_string(),
            "-F".into(),
            "/dev/null".into(),
            "-p".into(),
            self.port.to_string(),
            "-i".into(),
            self.key().display().to_string(),
        ]
        .into_iter()
        .chain(
            [
                "IdentitiesOnly=yes",
                "IdentityAgent=none",
                "StrictHostKeyChecking=no",
                "UserKnownHostsFile=/dev/null",
                "BatchMode=yes",
                "LogLevel=ERROR",
                "ConnectTimeout=10",
            ]
            .into_iter()
            .flat_map(|o| ["-o".to_string(), o.to_string()]),
        )
        .collect()
    }

    /// `ssh://USER@127.0.0.1:PORT`, a jobtop target for this server.
    pub fn target(&self, user: &str) -> String {
        format!("ssh://{user}@127.0.0.1:{}", self.port)
    }

    /// Runs `remote` (a shell command line) as `user` through this server, to completion
    /// (30 s at most).
    pub fn ssh(&self, user: &str, remote: &str) -> Output {
        let args = self.ssh_args();
        let mut command = Command::new(&args[0]);
        command
            .args(&args[1..])
            .arg("-T")
            .arg(format!("{user}@127.0.0.1"))
            .arg(remote);
        run(
            command,
            &format!("ssh {user}@127.0.0.1 {remote:?}"),
            Duration::from_secs(30),
        )
    }

    /// What `name` resolves to on the remote `PATH` of `user` (`command -v`), or `None`.
    pub fn remote_which(&self, user: &str, name: &str) -> Option<String> {
        let out = self.ssh(user, &format!("command -v {name}"));
        out.status
            .success()
            .then(|| text(&out.stdout).trim().to_string())
    }
}

/// Whether `user`'s password field in `/etc/shadow` marks the account locked.
fn locked(user: &str) -> bool {
    let out = Command::new("getent")
        .args(["shadow", user])
        .output()
        .unwrap();
    text(&out.stdout)
        .split(':')
        .nth(1)
        .is_some_and(|password| password.starts_with('!'))
}
