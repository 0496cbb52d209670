//! A real MariaDB for the tests: `mariadb-install-db` and `mariadbd` from the system's
//! packages in a temporary directory (`--no-defaults`: no option file of the machine is read),
//! on 127.0.0.1 and a free port (and a Unix socket in that directory), with no binary log and
//! small buffers so that a cold start is quick.
//!
//! `root` has a random password on every host it may come from, so the URL's password is
//! exercised: [`MariaDb::url`] is `mysql://root:PASSWORD@127.0.0.1:PORT/mysql`. SQL runs
//! through the `mariadb` client binary (no Rust client in the tests). Under root the server
//! runs as root (`--user=root`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{Daemon, find_program, require, run_input, secret, skip, stdout_or_err, url_encode};
use crate::common::process::run;

/// How to install what this harness needs.
pub const INSTALL: &str = "apt-get install -y mariadb-server mariadb-client";

/// How long one client call may take before it counts as hung.
const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

const SBIN: &[&str] = &["/usr/sbin", "/usr/libexec", "/usr/bin"];

/// The programs of MariaDB.
#[derive(Clone)]
struct Binaries {
    install_db: PathBuf,
    server: PathBuf,
    client: PathBuf,
}

fn binaries() -> Result<Binaries, String> {
    Ok(Binaries {
        install_db: find_program(&["mariadb-install-db", "mysql_install_db"], SBIN)?,
        server: find_program(&["mariadbd", "mysqld"], SBIN)?,
        client: find_program(&["mariadb", "mysql"], SBIN)?,
    })
}

/// A MariaDB server in a temporary directory, stopped (and the directory removed) when dropped.
pub struct MariaDb {
    // Declared before `dir`: the server stops before its directory goes.
    daemon: Daemon,
    bin: Binaries,
    port: u16,
    password: String,
    dir: TempDir,
    /// How long `new` took (install-db and the first start).
    pub cold_start: Duration,
}

impl MariaDb {
    /// A server of the calling test's own, started; `None` (after a skip note) when MariaDB is
    /// not installed.
    pub fn new() -> Option<MariaDb> {
        let bin = require("MariaDB", binaries(), INSTALL)?;
        Some(MariaDb::boot(bin))
    }

    /// The server shared by every test of this test binary, started on first use. Give each
    /// test its own database ([`MariaDb::create_database`]); never stop this one.
    pub fn shared() -> Option<&'static MariaDb> {
        static SHARED: OnceLock<Result<MariaDb, String>> = OnceLock::new();
        match SHARED.get_or_init(|| binaries().map(MariaDb::boot)) {
            Ok(db) => Some(db),
            Err(why) => {
                skip("MariaDB", why, INSTALL);
                None
            }
        }
    }

    fn boot(bin: Binaries) -> MariaDb {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("jobtop-mariadb-")
            .tempdir()
            .unwrap();
        let mut install = Command::new(&bin.install_db);
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .args([
                // root@localhost without a password, for the first connection (below).
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ])
            .args(user_arg());
        let out = run(install, "mariadb-install-db", Duration::from_secs(120));
        stdout_or_err(&out, "mariadb-install-db").unwrap();

        let daemon = Daemon::new(
            "MariaDB",
            dir.path(),
            dir.path().join("mariadbd.log"),
            "TERM",
            "KILL",
        );
        let mut db = MariaDb {
            daemon,
            bin,
            port: 0,
            password: secret("my"),
            dir,
            cold_start: Duration::ZERO,
        };
        // The port is free when chosen, not when bound: another one if it was taken.
        db.port = super::start_on_free_port("MariaDB", "Address already in use", |port| {
            db.port = port;
            db.try_start(|db| db.socket_sql("SELECT 1"))
        });
        // Now the password, for every host root may come from; the host-name entry made by
        // install-db goes (it is ignored under --skip-name-resolve anyway).
        let pw = quote_literal(&db.password);
        db.socket_sql(&format!(
            "DELETE FROM mysql.global_priv WHERE User = 'root' \
               AND Host NOT IN ('localhost', '127.0.0.1', '::1');\n\
             FLUSH PRIVILEGES;\n\
             ALTER USER 'root'@'localhost' IDENTIFIED BY {pw};\n\
             ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY {pw};\n\
             ALTER USER IF EXISTS 'root'@'::1' IDENTIFIED BY {pw};"
        ))
        .unwrap();
        db.cold_start = started.elapsed();
        eprintln!(
            "note: MariaDB ready on 127.0.0.1:{} in {:?}",
            db.port, db.cold_start
        );
        db
    }

    /// Starts the server again after [`stop`](MariaDb::stop) (same port, same data), and
    /// waits until it answers.
    pub fn start(&self) {
        if let Err(why) = self.try_start(|db| db.try_sql("mysql", "SELECT 1").map(drop)) {
            panic!("MariaDB did not start: {why}");
        }
    }

    fn try_start(&self, ready: impl Fn(&MariaDb) -> Result<(), String>) -> Result<(), String> {
        let dir = self.dir.path();
        let mut command = Command::new(&self.bin.server);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
            .arg(format!("--tmpdir={}", dir.display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
                "--skip-name-resolve",
                "--performance-schema=OFF",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                // io_uring and libaio are not allowed in every container.
                "--innodb-use-native-aio=0",
                "--max-connections=300",
                "--default-time-zone=+00:00",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .args(user_arg());
        self.daemon.spawn(command);
        self.daemon
            .wait_ready(Duration::from_secs(60), || ready(self).is_ok())
    }

    /// Stops the server (a normal shutdown).
    pub fn stop(&self) {
        self.daemon.stop();
    }

    /// Stops and starts the server.
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// Kills the server with SIGKILL (a crash); [`start`](MariaDb::start) recovers it.
    pub fn kill(&self) {
        self.daemon.kill();
    }

    /// Whether the server runs.
    pub fn running(&self) -> bool {
        self.daemon.running()
    }

    /// The server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// root's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadbd.sock")
    }

    /// The server's temporary directory (data under `data/`, the log in `mariadbd.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// root's URL for the `mysql` database.
    pub fn url(&self) -> String {
        self.url_for("mysql")
    }

    /// root's URL for `database`.
    pub fn url_for(&self, database: &str) -> String {
        self.url_as("root", &self.password, database)
    }

    /// `mysql://USER:PASSWORD@127.0.0.1:PORT/DATABASE`, user and password percent-encoded.
    pub fn url_as(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "mysql://{}:{}@127.0.0.1:{}/{}",
            url_encode(user),
            url_encode(password),
            self.port,
            url_encode(database)
        )
    }

    /// A new, empty database `name` (dropped first if it exists); returns root's URL for it.
    pub fn create_database(&self, name: &str) -> String {
        let ident = quote_ident(name);
        self.sql(
            "mysql",
            &format!("DROP DATABASE IF EXISTS {ident};\nCREATE DATABASE {ident};"),
        );
        self.url_for(name)
    }

    /// A user `user` with `password` (from any host), with every privilege on `database`;
    /// returns its URL for that database.
    pub fn create_user(&self, user: &str, password: &str, database: &str) -> String {
        let account = format!("{}@'%'", quote_literal(user));
        self.sql(
            "mysql",
            &format!(
                "CREATE USER {account} IDENTIFIED BY {};\nGRANT ALL PRIVILEGES ON {}.* TO {account};",
                quote_literal(password),
                quote_ident(database)
            ),
        );
        self.url_as(user, password, database)
    }

    /// Runs `sql` (a script: statements separated by `;`) as root on `database`, over TCP with
    /// the password; returns the rows, one per line, columns separated by tabs (no header; NULL
    /// as `NULL`). Panics on an error.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        self.try_sql(database, sql)
            .unwrap_or_else(|e| panic!("{e}\nSQL: {sql}"))
    }

    /// [`sql`](MariaDb::sql), with the error (the client's message) returned instead.
    pub fn try_sql(&self, database: &str, sql: &str) -> Result<String, String> {
        self.try_sql_as("root", &self.password, database, sql)
    }

    /// Runs `sql` as [`sql`](MariaDb::sql) does, as `user` with `password` (another user, a
    /// wrong password …).
    pub fn try_sql_as(
        &self,
        user: &str,
        password: &str,
        database: &str,
        sql: &str,
    ) -> Result<String, String> {
        let mut command = self.client();
        command
            .args(["--protocol=TCP", "--host=127.0.0.1"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--user={user}"))
            .arg(format!("--database={database}"))
            // The environment, not the command line: `ps` shows arguments.
            .env("MYSQL_PWD", password);
        let out = run_input(command, sql, "mariadb", CLIENT_DEADLINE);
        stdout_or_err(&out, "mariadb").map(|s| s.trim_end_matches('\n').to_string())
    }

    /// `sql` through the Unix socket as root without a password (only right after
    /// install-db).
    fn socket_sql(&self, sql: &str) -> Result<(), String> {
        let mut command = self.client();
        command
            .arg(format!("--socket={}", self.socket().display()))
            .arg("--user=root")
            .env_remove("MYSQL_PWD");
        let out = run_input(command, sql, "mariadb", CLIENT_DEADLINE);
        stdout_or_err(&out, "mariadb").map(drop)
    }

    fn client(&self) -> Command {
        let mut command = Command::new(&self.bin.client);
        command.args([
            "--no-defaults",
            "--batch",
            "--skip-column-names",
            "--connect-timeout=5",
        ]);
        command
    }
}

/// `--user=root` when we are root (mariadbd refuses to run as root without it).
fn user_arg() -> Vec<&'static str> {
    if super::is_root() {
        vec!["--user=root"]
    } else {
        vec![]
    }
}

/// `name` as a MariaDB identifier, in backquotes.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `value` as a MariaDB string literal, in single quotes.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}
