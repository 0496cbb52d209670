//! A real PostgreSQL for the tests: `initdb` and `postgres` from the system's packages in a
//! temporary directory, on 127.0.0.1 and a free port (and a Unix socket in that directory),
//! with the settings that make a cold start fast (`fsync=off`, no sync at `initdb`).
//!
//! The superuser is `postgres` with a random password, and connections over TCP need it
//! (`scram-sha-256`), so the URL's password is exercised: [`Postgres::url`] is
//! `postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres`. SQL runs through the server's own
//! `psql` (no Rust client in the tests). PostgreSQL refuses to run as root: under root the
//! server runs as the system user `jobtop-pg` (created when missing), owner of the directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{Daemon, require, run_input, secret, skip, stdout_or_err, url_encode, wait_until};
use crate::common::accounts::{account, id_of};
use crate::common::process::run;

/// How to install what this harness needs.
pub const INSTALL: &str = "apt-get install -y postgresql";

/// The superuser's name.
pub const SUPERUSER: &str = "postgres";

/// The Unix user the server runs as when the tests run as root.
pub const SYSTEM_USER: &str = "jobtop-pg";

/// How long one `psql` may take before it counts as hung.
const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

/// A PostgreSQL server in a temporary directory, stopped (and the directory removed) when
/// dropped.
pub struct Postgres {
    // Declared before `dir`: the server stops before its directory goes.
    daemon: Daemon,
    bin: PathBuf,
    port: u16,
    password: String,
    /// The uid and gid the server runs as, when not as the tests' own user.
    owner: Option<(u32, u32)>,
    dir: TempDir,
    /// How long `new` took (initdb and the first start).
    pub cold_start: Duration,
}

impl Postgres {
    /// A server of the calling test's own, started; `None` (after a skip note) when
    /// PostgreSQL is not installed.
    pub fn new() -> Option<Postgres> {
        let bin = require("PostgreSQL", binaries(), INSTALL)?;
        Some(Postgres::boot(bin))
    }

    /// The server shared by every test of this test binary, started on first use. Give each
    /// test its own database ([`Postgres::create_database`]); never stop this one.
    pub fn shared() -> Option<&'static Postgres> {
        static SHARED: OnceLock<Result<Postgres, String>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| binaries().map(Postgres::boot));
        match shared {
            Ok(pg) => Some(pg),
            Err(why) => {
                skip("PostgreSQL", why, INSTALL);
                None
            }
        }
    }

    fn boot(bin: PathBuf) -> Postgres {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("jobtop-pg-")
            .tempdir()
            .unwrap();
        let owner = super::is_root().then(system_user);
        if let Some((uid, gid)) = owner {
            chown(dir.path(), uid, gid);
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let password = secret("pg");
        let pwfile = dir.path().join("pwfile");
        fs::write(&pwfile, format!("{password}\n")).unwrap();
        if let Some((uid, gid)) = owner {
            chown(&pwfile, uid, gid);
        }
        let mut initdb = as_owner(owner, &bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ])
            .env("TZ", "UTC");
        let out = run(initdb, "initdb", Duration::from_secs(120));
        stdout_or_err(&out, "initdb").unwrap();
        fs::remove_file(&pwfile).unwrap();

        let daemon = Daemon::new(
            "PostgreSQL",
            dir.path(),
            dir.path().join("postgres.log"),
            // Fast shutdown: roll back and disconnect the clients, then a checkpoint.
            "INT",
            // Immediate shutdown, for the watchdog: the backends go too.
            "QUIT",
        );
        let mut pg = Postgres {
            daemon,
            bin,
            port: 0,
            password,
            owner,
            dir,
            cold_start: Duration::ZERO,
        };
        // The port is free when chosen, not when bound: another one if it was taken.
        pg.port = super::start_on_free_port("PostgreSQL", "could not bind", |port| {
            pg.port = port;
            pg.try_start()
        });
        pg.cold_start = started.elapsed();
        eprintln!(
            "note: PostgreSQL ready on 127.0.0.1:{} in {:?}",
            pg.port, pg.cold_start
        );
        pg
    }

    /// Starts the server again after [`stop`](Postgres::stop) (same port, same data), and
    /// waits until it answers.
    pub fn start(&self) {
        if let Err(why) = self.try_start() {
            panic!("PostgreSQL did not start: {why}");
        }
    }

    fn try_start(&self) -> Result<(), String> {
        let mut command = as_owner(self.owner, &self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path())
            .env("TZ", "UTC");
        for setting in [
            "listen_addresses=127.0.0.1",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "shared_buffers=32MB",
            "max_connections=200",
            "jit=off",
            "log_timezone=UTC",
            "timezone=UTC",
        ] {
            command.arg("-c").arg(setting);
        }
        self.daemon.spawn(command);
        self.daemon.wait_ready(Duration::from_secs(30), || {
            self.try_sql("postgres", "SELECT 1").is_ok()
        })
    }

    /// Stops the server (fast shutdown: open sessions are rolled back and disconnected).
    pub fn stop(&self) {
        self.daemon.stop();
    }

    /// Stops and starts the server.
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// Kills the postmaster with SIGKILL (a crash); [`start`](Postgres::start) recovers it.
    pub fn kill(&self) {
        self.daemon.kill();
        // Its backends notice the postmaster's death and exit; a new postmaster cannot start
        // while they hold the shared memory.
        wait_until(
            "the backends of a killed PostgreSQL to exit",
            Duration::from_secs(10),
            || Ok(self.backend_pids().is_empty().then_some(())),
        );
    }

    /// Pids of the processes working in this server's data directory (the postmaster, its
    /// backends and helpers), found through `/proc`.
    pub fn backend_pids(&self) -> Vec<u32> {
        let data = self.dir.path().join("data");
        fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
                let cwd = fs::read_link(entry.path().join("cwd")).ok()?;
                (cwd == data).then_some(pid)
            })
            .collect()
    }

    /// Whether the server runs.
    pub fn running(&self) -> bool {
        self.daemon.running()
    }

    /// The postmaster's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The directory of the Unix socket (`.s.PGSQL.PORT`), where local connections need no
    /// password.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's temporary directory (data under `data/`, the log in `postgres.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// The superuser's URL for the `postgres` database.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The superuser's URL for `database`.
    pub fn url_for(&self, database: &str) -> String {
        self.url_as(SUPERUSER, &self.password, database)
    }

    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/DATABASE`, user and password percent-encoded.
    pub fn url_as(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            url_encode(user),
            url_encode(password),
            self.port,
            url_encode(database)
        )
    }

    /// A new, empty database `name` (dropped first if it exists); returns the superuser's URL
    /// for it.
    pub fn create_database(&self, name: &str) -> String {
        let ident = quote_ident(name);
        // psql runs a script's statements one by one, each in its own transaction, as DROP
        // DATABASE and CREATE DATABASE require.
        self.sql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE);\nCREATE DATABASE {ident};"),
        );
        self.url_for(name)
    }

    /// A login role `user` with `password`, owning `database` (which must exist) and its
    /// `public` schema; returns its URL for that database.
    pub fn create_user(&self, user: &str, password: &str, database: &str) -> String {
        let (role, db) = (quote_ident(user), quote_ident(database));
        self.sql(
            "postgres",
            &format!(
                "CREATE ROLE {role} LOGIN PASSWORD {};\nALTER DATABASE {db} OWNER TO {role};",
                quote_literal(password)
            ),
        );
        self.sql(database, &format!("ALTER SCHEMA public OWNER TO {role};"));
        self.url_as(user, password, database)
    }

    /// Runs `sql` (a script: statements separated by `;`, each in its own transaction unless
    /// it says `BEGIN`) as the superuser on `database`, over TCP with the password; returns
    /// the rows, one per line, columns separated by tabs. Panics on an error.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        self.try_sql(database, sql)
            .unwrap_or_else(|e| panic!("{e}\nSQL: {sql}"))
    }

    /// [`sql`](Postgres::sql), with the error (psql's message) returned instead.
    pub fn try_sql(&self, database: &str, sql: &str) -> Result<String, String> {
        self.try_sql_url(&self.url_for(database), sql)
    }

    /// Runs `sql` as [`sql`](Postgres::sql) does, connecting with `url` (another user, a wrong
    /// password …).
    pub fn try_sql_url(&self, url: &str, sql: &str) -> Result<String, String> {
        let mut command = Command::new(self.bin.join("psql"));
        command
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-F",
                "\t",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                "-",
            ])
            .arg(url)
            .env("PGCONNECT_TIMEOUT", "5")
            .env("TZ", "UTC");
        for var in [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGPASSWORD",
            "PGDATABASE",
            "PGSERVICE",
            "PGOPTIONS",
        ] {
            command.env_remove(var);
        }
        let out = run_input(command, sql, "psql", CLIENT_DEADLINE);
        stdout_or_err(&out, "psql").map(|s| s.trim_end_matches('\n').to_string())
    }
}

/// The directory with `initdb`, `postgres` and `psql`: that of `initdb` on `PATH` (links
/// followed), else the newest `/usr/lib/postgresql/*/bin`.
fn binaries() -> Result<PathBuf, String> {
    let mut dirs = Vec::new();
    if let Some(dir) = super::on_path("initdb")
        .and_then(|initdb| fs::canonicalize(initdb).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        dirs.push(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    dirs.extend(versions.into_iter().rev().map(|(_, dir)| dir));
    dirs.into_iter()
        .find(|dir| {
            ["initdb", "postgres", "psql"]
                .iter()
                .all(|b| dir.join(b).is_file())
        })
        .ok_or_else(|| {
            "no directory with initdb, postgres and psql (looked at initdb on PATH and \
             /usr/lib/postgresql/*/bin)"
                .to_string()
        })
}

/// The uid and gid of [`SYSTEM_USER`], created when missing.
fn system_user() -> (u32, u32) {
    let exists = || {
        Command::new("id")
            .arg(SYSTEM_USER)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !exists() {
        let (ok, why) = account(&[
            "useradd",
            "-r",
            "-M",
            "-d",
            "/nonexistent",
            "-s",
            "/usr/sbin/nologin",
            "-U",
            SYSTEM_USER,
        ]);
        // Another test binary may have created it meanwhile.
        assert!(ok || exists(), "useradd {SYSTEM_USER}: {why}");
    }
    (id_of(SYSTEM_USER, "-u"), id_of(SYSTEM_USER, "-g"))
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

/// `program` run as `owner` (ids set and groups cleared with `setpriv`, which then execs it,
/// so the pid is the program's), or as ourselves.
fn as_owner(owner: Option<(u32, u32)>, program: &Path) -> Command {
    match owner {
        Some((uid, gid)) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg(program)
                .current_dir("/");
            command
        }
        None => Command::new(program),
    }
}

/// `name` as a PostgreSQL identifier, in double quotes.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as a PostgreSQL string literal, in single quotes.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
