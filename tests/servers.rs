//! The server harnesses of `tests/common/servers` on their own: each real server is started
//! and used through its own client (psql, the mariadb client, ssh, Python's `smtplib`, raw
//! HTTP, the Prometheus parsers), so a broken harness shows here rather than as a puzzling
//! failure in the tests of a feature. Also: a test process that dies leaves no server and no
//! directory behind.
//!
//! A missing server is a skip with a note, or a failure under `JOBTOP_REQUIRE_SERVERS`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::accounts::Accounts;
use common::process::{current_user, poll_every, run, text};
use common::servers::http::{Answer, HttpReceiver, Reply};
use common::servers::mariadb::MariaDb;
use common::servers::postgres::Postgres;
use common::servers::prom::{self, Parser, Promtool};
use common::servers::smtp::Smtp;
use common::servers::sshd::Sshd;
use common::servers::{self, python_with};

// ---------------------------------------------------------------------------------------------
// PostgreSQL.

#[test]
fn postgres_runs_sql_with_passwords_and_survives_stop_start_and_kill() {
    let Some(pg) = Postgres::new() else { return };
    let url = pg.create_database("harness");
    assert_eq!(
        url,
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/harness",
            pg.password(),
            pg.port()
        )
    );
    pg.sql(
        "harness",
        "CREATE TABLE t (id int PRIMARY KEY, name text);\n\
         INSERT INTO t VALUES (1, 'one'), (2, 'two');",
    );
    assert_eq!(
        pg.sql("harness", "SELECT id, name FROM t ORDER BY id"),
        "1\tone\n2\ttwo"
    );
    assert!(pg.sql("postgres", "SHOW fsync") == "off");
    assert!(
        pg.socket_dir()
            .join(format!(".s.PGSQL.{}", pg.port()))
            .exists()
    );

    // The password is checked over TCP.
    let wrong = pg.url_as("postgres", "not-the-password", "harness");
    let refused = pg.try_sql_url(&wrong, "SELECT 1").unwrap_err();
    assert!(
        refused.contains("password authentication failed"),
        "{refused}"
    );

    // Another user, with its own password, owns its database.
    pg.create_database("harness_app");
    let app = pg.create_user("app user", "p@ss:w/rd", "harness_app");
    assert!(
        app.starts_with("postgres://app%20user:p%40ss%3Aw%2Frd@127.0.0.1:"),
        "{app}"
    );
    assert_eq!(
        pg.try_sql_url(&app, "CREATE TABLE mine (x int); SELECT current_user")
            .unwrap(),
        "app user"
    );

    // Stopped, it refuses; started again, the data is still there.
    pg.stop();
    assert!(!pg.running());
    assert!(pg.try_sql("harness", "SELECT 1").is_err());
    pg.start();
    assert_eq!(pg.sql("harness", "SELECT count(*) FROM t"), "2");
    pg.restart();
    assert_eq!(pg.sql("harness", "SELECT name FROM t WHERE id = 2"), "two");

    // A crash, then a recovery.
    pg.kill();
    assert!(pg.try_sql("harness", "SELECT 1").is_err());
    pg.start();
    assert_eq!(pg.sql("harness", "SELECT count(*) FROM t"), "2");

    // Dropped: the server and its directory are gone.
    let dir = pg.dir().to_path_buf();
    let pids = pg.backend_pids();
    assert!(!pids.is_empty());
    drop(pg);
    assert!(!dir.exists(), "{} left behind", dir.display());
    for pid in pids {
        assert!(!alive(pid), "PostgreSQL process {pid} left behind");
    }
}

#[test]
fn postgres_shared_gives_each_test_a_database() {
    let Some(pg) = Postgres::shared() else { return };
    let url = pg.create_database("shared_one");
    pg.sql(
        "shared_one",
        "CREATE TABLE x (v text); INSERT INTO x VALUES ('a')",
    );
    // Created again: empty.
    assert_eq!(pg.create_database("shared_one"), url);
    assert!(pg.try_sql("shared_one", "SELECT * FROM x").is_err());
    assert_eq!(
        pg.sql("shared_one", "SELECT current_database()"),
        "shared_one"
    );
}

// ---------------------------------------------------------------------------------------------
// MariaDB.

#[test]
fn mariadb_runs_sql_with_passwords_and_survives_stop_start_and_kill() {
    let Some(db) = MariaDb::new() else { return };
    let url = db.create_database("harness");
    assert_eq!(
        url,
        format!(
            "mysql://root:{}@127.0.0.1:{}/harness",
            db.password(),
            db.port()
        )
    );
    db.sql(
        "harness",
        "CREATE TABLE t (id INT PRIMARY KEY, name TEXT);\n\
         INSERT INTO t VALUES (1, 'one'), (2, NULL);",
    );
    assert_eq!(
        db.sql("harness", "SELECT id, name FROM t ORDER BY id"),
        "1\tone\n2\tNULL"
    );
    assert_eq!(
        db.sql("mysql", "SELECT @@log_bin, @@bind_address"),
        "0\t127.0.0.1"
    );

    // The password is checked, over TCP and on the socket.
    let refused = db
        .try_sql_as("root", "not-the-password", "harness", "SELECT 1")
        .unwrap_err();
    assert!(refused.contains("Access denied"), "{refused}");
    let mut socket = Command::new("mariadb");
    socket
        .args(["--no-defaults", "--user=root", "-e", "SELECT 1"])
        .arg(format!("--socket={}", db.socket().display()))
        .env_remove("MYSQL_PWD");
    let out = run(socket, "mariadb on the socket", Duration::from_secs(30));
    assert!(!out.status.success(), "root got in without a password");

    // Another user, limited to its database.
    db.create_database("harness_app");
    let app = db.create_user("app", "p@ss:w/rd", "harness_app");
    assert!(
        app.starts_with("mysql://app:p%40ss%3Aw%2Frd@127.0.0.1:"),
        "{app}"
    );
    assert_eq!(
        db.try_sql_as(
            "app",
            "p@ss:w/rd",
            "harness_app",
            "CREATE TABLE mine (x INT); SELECT CURRENT_USER()"
        )
        .unwrap(),
        "app@%"
    );
    assert!(
        db.try_sql_as("app", "p@ss:w/rd", "harness", "SELECT * FROM t")
            .is_err()
    );

    db.stop();
    assert!(!db.running());
    assert!(db.try_sql("harness", "SELECT 1").is_err());
    db.start();
    assert_eq!(db.sql("harness", "SELECT COUNT(*) FROM t"), "2");
    db.kill();
    db.start();
    assert_eq!(db.sql("harness", "SELECT name FROM t WHERE id = 1"), "one");

    let dir = db.dir().to_path_buf();
    let pid = db.pid().unwrap();
    drop(db);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(!alive(pid), "mariadbd {pid} left behind");
}

#[test]
fn mariadb_shared_gives_each_test_a_database() {
    let Some(db) = MariaDb::shared() else { return };
    db.create_database("shared_one");
    db.sql(
        "shared_one",
        "CREATE TABLE x (v TEXT); INSERT INTO x VALUES ('a')",
    );
    db.create_database("shared_one");
    assert!(db.try_sql("shared_one", "SELECT * FROM x").is_err());
    assert_eq!(db.sql("shared_one", "SELECT DATABASE()"), "shared_one");
}

// ---------------------------------------------------------------------------------------------
// sshd.

#[test]
fn sshd_runs_commands_as_the_current_user_and_a_created_one_with_jobtop_on_path() {
    let Some(sshd) = Sshd::shared() else { return };
    let me = current_user();
    let bin_dir = sshd.bin_dir().display().to_string();

    let out = sshd.ssh(&me, "echo ok; echo $PATH");
    assert!(out.status.success(), "{out:?}\n{}", sshd.log());
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("ok"));
    assert!(
        lines.next().unwrap().split(':').any(|d| d == bin_dir),
        "{stdout}"
    );
    assert_eq!(
        sshd.target(&me),
        format!("ssh://{me}@127.0.0.1:{}", sshd.port())
    );

    // The command line for JOBTOP_SSH, split on blanks as a shell would.
    let line = format!(
        "{} -T {me}@127.0.0.1 echo through-the-command-line",
        sshd.ssh_command()
    );
    let mut command = Command::new("sh");
    command.arg("-c").arg(&line);
    let out = run(command, "the ssh command line", Duration::from_secs(30));
    assert_eq!(
        text(&out.stdout).trim(),
        "through-the-command-line",
        "{out:?}"
    );

    // JOBTOP_* variables sent by the client arrive.
    let args = sshd.ssh_args();
    let mut command = Command::new(&args[0]);
    command
        .args(&args[1..])
        .args(["-o", "SendEnv=JOBTOP_HARNESS", "-T"])
        .arg(format!("{me}@127.0.0.1"))
        .arg("echo $JOBTOP_HARNESS")
        .env("JOBTOP_HARNESS", "sent");
    let out = run(command, "ssh with SendEnv", Duration::from_secs(30));
    assert_eq!(text(&out.stdout).trim(), "sent", "{out:?}");

    // A created user (/bin/sh, no home): exactly our PATH, and the test's jobtop runs.
    let Some((_accounts, users)) = Accounts::create("ssh", &[], &[("v", &[])]) else {
        return;
    };
    let viewer = &users[0].name;
    sshd.authorize(viewer);
    let out = sshd.ssh(viewer, "echo ok; id -un; echo $PATH; jobtop --version");
    assert!(out.status.success(), "{out:?}\n{}", sshd.log());
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "ok", "{stdout}");
    assert_eq!(lines[1], viewer.as_str());
    assert!(lines[2].starts_with(&format!("{bin_dir}:")), "{stdout}");
    assert!(lines[3].starts_with("jobtop "), "{stdout}");
    assert_eq!(
        sshd.remote_which(viewer, "jobtop"),
        Some(format!("{bin_dir}/jobtop"))
    );

    // A user without an authorised key is refused.
    let Some((_others, strangers)) = Accounts::create("ssx", &[], &[("n", &[])]) else {
        return;
    };
    let out = sshd.ssh(&strangers[0].name, "echo ok");
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn sshd_stops_and_starts_on_the_same_port() {
    let Some(sshd) = Sshd::new() else { return };
    let me = current_user();
    assert!(sshd.ssh(&me, "true").status.success(), "{}", sshd.log());
    sshd.stop();
    assert!(!sshd.ssh(&me, "true").status.success());
    sshd.start();
    assert!(sshd.ssh(&me, "true").status.success(), "{}", sshd.log());
}

// ---------------------------------------------------------------------------------------------
// SMTP.

/// Sends one message with Python's smtplib; `login` is `(user, password)` for AUTH.
fn send_mail(
    port: u16,
    login: Option<(&str, &str)>,
    subject: &str,
    body: &str,
) -> Result<(), String> {
    let python = python_with("smtplib").unwrap();
    let script = r#"
import smtplib, sys
from email.message import EmailMessage
port, user, password, subject, body = sys.argv[1:6]
msg = EmailMessage()
msg["From"] = "jobtop@db1.example.com"
msg["To"] = "ops@example.com"
msg["Subject"] = subject
msg.set_content(body)
with smtplib.SMTP("127.0.0.1", int(port), timeout=10) as s:
    if user:
        s.login(user, password)
    s.send_message(msg, from_addr="bounce@example.com", to_addrs=["ops@example.com", "dba@example.com"])
"#;
    let (user, password) = login.unwrap_or(("", ""));
    let mut command = Command::new(python);
    command.args([
        "-c",
        script,
        &port.to_string(),
        user,
        password,
        subject,
        body,
    ]);
    let out = run(command, "smtplib", Duration::from_secs(30));
    servers::stdout_or_err(&out, "smtplib").map(drop)
}

#[test]
fn smtp_stores_each_message_with_envelope_headers_and_body() {
    let Some(smtp) = Smtp::start() else { return };
    assert_eq!(smtp.url(), format!("smtp://127.0.0.1:{}", smtp.port()));
    assert!(smtp.messages().is_empty());
    send_mail(
        smtp.port(),
        None,
        "[jobtop db1] nightly-backup failed ✗",
        "line one\nline two — é\n",
    )
    .unwrap();
    let mails = smtp.wait_for(1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "bounce@example.com");
    assert_eq!(mail.to, ["ops@example.com", "dba@example.com"]);
    assert_eq!(mail.subject(), "[jobtop db1] nightly-backup failed ✗");
    assert_eq!(mail.header("from"), Some("jobtop@db1.example.com"));
    assert_eq!(mail.body, "line one\nline two — é\n");
    assert!(mail.raw.contains("Subject: "), "{}", mail.raw);
    assert_eq!(mail.auth_user, None);

    send_mail(smtp.port(), None, "second", "2").unwrap();
    let mails = smtp.wait_for(2, Duration::from_secs(10));
    assert_eq!(mails[1].subject(), "second");
}

#[test]
fn smtp_with_auth_takes_the_right_password_only() {
    let Some(smtp) = Smtp::with_auth("mailer", "s3cret pw") else {
        return;
    };
    let refused = send_mail(smtp.port(), None, "no login", "x").unwrap_err();
    assert!(refused.contains("530"), "{refused}");
    let refused = send_mail(smtp.port(), Some(("mailer", "wrong")), "bad login", "x").unwrap_err();
    assert!(refused.contains("535"), "{refused}");
    send_mail(smtp.port(), Some(("mailer", "s3cret pw")), "logged in", "x").unwrap();
    let mails = smtp.wait_for(1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].subject(), "logged in");
    assert_eq!(mails[0].auth_user.as_deref(), Some("mailer"));
    // smtplib tries PLAIN, then LOGIN, with the wrong password; then PLAIN with the right one.
    let logins = smtp.logins();
    let (last, failed) = logins.split_last().unwrap();
    assert!(
        !failed.is_empty() && failed.iter().all(|l| !l.ok),
        "{logins:?}"
    );
    assert!(last.ok, "{logins:?}");
    assert_eq!(last.user.as_deref(), Some("mailer"));

    // AUTH LOGIN too, through curl when it is here.
    if servers::on_path("curl").is_some() {
        let mail = "Subject: by curl\r\n\r\nhello\r\n";
        let mut command = Command::new("curl");
        command
            .args([
                "-sS",
                "--login-options",
                "AUTH=LOGIN",
                "--user",
                "mailer:s3cret pw",
            ])
            .args([
                "--mail-from",
                "a@example.com",
                "--mail-rcpt",
                "b@example.com",
            ])
            .arg(format!("smtp://127.0.0.1:{}", smtp.port()))
            .args(["-T", "-"]);
        let out = servers::run_input(command, mail, "curl smtp", Duration::from_secs(30));
        assert!(out.status.success(), "{out:?}");
        let mails = smtp.wait_for(2, Duration::from_secs(10));
        assert_eq!(mails[1].subject(), "by curl");
        assert_eq!(smtp.logins().last().unwrap().mechanism, "LOGIN");
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP.

/// Sends raw bytes and returns everything the server answered before it closed.
fn http_raw(port: u16, request: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(request.as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn http_receiver_records_requests_and_answers_as_told() {
    let http = HttpReceiver::start();
    let port = http.port();
    assert_eq!(http.url(), format!("http://127.0.0.1:{port}"));

    let answer = http_raw(
        port,
        "POST /hook?x=1 HTTP/1.1\r\nHost: a\r\nX-Token: t\r\nContent-Length: 11\r\n\r\n{\"a\":\"b c\"}",
    )
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let requests = http.wait_for(1, Duration::from_secs(5));
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.target.as_str(), r.path()),
        ("POST", "/hook?x=1", "/hook")
    );
    assert_eq!(r.header("X-TOKEN"), Some("t"));
    assert_eq!(r.json()["a"], "b c");

    // A chunked body.
    http_raw(
        port,
        "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        http.wait_for(2, Duration::from_secs(5))[1].text(),
        "hello world"
    );

    // Per path, and changed while running.
    http.route("/boom", Reply::text(500, "boom").header("X-Why", "test"));
    let answer = http_raw(port, "GET /boom HTTP/1.1\r\n\r\n").unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("X-Why: test\r\n") && answer.ends_with("\r\n\r\nboom"),
        "{answer}"
    );
    http.answer(Answer::with(|r| {
        Reply::text(201, &format!("you sent {}", r.text()))
    }));
    let answer = http_raw(port, "POST /any HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi").unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 201 Created") && answer.ends_with("you sent hi"),
        "{answer}"
    );
    let answer = http_raw(port, "HEAD /any HTTP/1.1\r\n\r\n").unwrap();
    assert!(answer.ends_with("\r\n\r\n"), "a body for HEAD: {answer}");

    // Late, and not at all.
    http.route(
        "/slow",
        Reply::status(204).after(Duration::from_millis(500)),
    );
    let asked = Instant::now();
    let answer = http_raw(port, "GET /slow HTTP/1.1\r\n\r\n").unwrap();
    assert!(asked.elapsed() >= Duration::from_millis(500));
    assert!(answer.starts_with("HTTP/1.1 204 No Content"), "{answer}");
    http.route("/closed", Answer::Close);
    assert_eq!(http_raw(port, "GET /closed HTTP/1.1\r\n\r\n").unwrap(), "");
    assert_eq!(http.requests().last().unwrap().path(), "/closed");

    // Down, then back on the same port.
    http.stop_listening();
    let refused = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    http.listen_again();
    http.clear();
    http_raw(port, "GET /again HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(http.wait_for(1, Duration::from_secs(5))[0].path(), "/again");
}

// ---------------------------------------------------------------------------------------------
// Prometheus text.

const METRICS: &str = r#"# HELP jobtop_job_runs_total Runs by result.
# TYPE jobtop_job_runs_total counter
jobtop_job_runs_total{job="nightly \"backup\"",result="ok"} 3
jobtop_job_runs_total{job="a\\b",result="failed"} 1
# HELP jobtop_job_running Whether the job runs now.
# TYPE jobtop_job_running gauge
jobtop_job_running{job="x"} 0
# HELP jobtop_run_lateness_seconds Lateness of runs.
# TYPE jobtop_run_lateness_seconds histogram
jobtop_run_lateness_seconds_bucket{le="0.01"} 2
jobtop_run_lateness_seconds_bucket{le="+Inf"} 3
jobtop_run_lateness_seconds_sum 0.5
jobtop_run_lateness_seconds_count 3
"#;

#[test]
fn prometheus_text_is_parsed_and_checked() {
    let Some(parser) = Parser::new() else { return };
    let families = parser.families(METRICS).unwrap();
    let kinds: Vec<(&str, &str)> = families
        .iter()
        .map(|f| (f.name.as_str(), f.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("jobtop_job_runs", "counter"),
            ("jobtop_job_running", "gauge"),
            ("jobtop_run_lateness_seconds", "histogram")
        ]
    );
    assert_eq!(families[0].help, "Runs by result.");
    let samples = parser.samples(METRICS);
    assert_eq!(samples.len(), 7, "{samples:?}");
    assert!(
        (prom::value(
            &samples,
            "jobtop_job_runs_total",
            &[("job", "nightly \"backup\"")]
        ) - 3.0)
            .abs()
            < f64::EPSILON
    );
    assert!(
        (prom::value(&samples, "jobtop_job_runs_total", &[("job", "a\\b")]) - 1.0).abs()
            < f64::EPSILON
    );
    assert!(
        prom::value(
            &samples,
            "jobtop_run_lateness_seconds_bucket",
            &[("le", "+Inf")]
        ) > 2.0
    );
    assert!(parser.families("jobtop_bad{job=\"x\" 1\n").is_err());

    let Some(promtool) = Promtool::new() else {
        return;
    };
    promtool.check_metrics(METRICS).unwrap();
    // A counter without `_total` is a lint problem to promtool.
    let lint = promtool
        .check_metrics("# HELP jobs Jobs.\n# TYPE jobs counter\njobs 1\n")
        .unwrap_err();
    assert!(lint.contains("counter"), "{lint}");
}

// ---------------------------------------------------------------------------------------------
// No leaks.

const LEAK_HELPER: &str = "JOBTOP_TEST_LEAK_HELPER";

/// Not a test of its own: run by `a_dead_test_process_leaves_no_server_behind` as a child
/// process (this test binary), it starts the shared servers, prints their pids and
/// directories, and exits at once, without running any destructor, as a test binary does.
#[test]
fn leak_helper() {
    if std::env::var_os(LEAK_HELPER).is_none() {
        return;
    }
    println!();
    if let Some(pg) = Postgres::shared() {
        for pid in pg.backend_pids() {
            println!("LEAK pid {pid}");
        }
        println!("LEAK dir {}", pg.dir().display());
    }
    if let Some(db) = MariaDb::shared() {
        println!("LEAK pid {}", db.pid().unwrap());
        println!("LEAK dir {}", db.dir().display());
    }
    if let Some(sshd) = Sshd::shared() {
        // With a session open, whose process is the listener's child. Never waited for: this
        // process exits below, and the session must end with the server.
        let args = sshd.ssh_args();
        #[allow(clippy::zombie_processes)]
        let session = Command::new(&args[0])
            .args(&args[1..])
            .arg("-T")
            .arg(format!("{}@127.0.0.1", current_user()))
            .arg("sleep 60")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        println!("LEAK pid {}", sshd.pid().unwrap());
        println!("LEAK dir {}", sshd.dir().display());
        println!("LEAK session {}", session.id());
        let listener = sshd.pid().unwrap().to_string();
        let child = poll_every(Duration::from_millis(50), Duration::from_secs(10), || {
            let out = Command::new("pgrep")
                .args(["-P", &listener])
                .output()
                .ok()?;
            text(&out.stdout).lines().next().map(str::to_string)
        });
        if let Some(child) = child {
            println!("LEAK pid {child}");
        }
    }
    if let Some(smtp) = Smtp::start() {
        println!("LEAK pid {}", smtp.pid().unwrap());
        println!("LEAK dir {}", smtp.dir().display());
        // Not dropped: exit below skips it, as a static would be.
        std::mem::forget(smtp);
    }
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next();
        state != Some("Z") && state != Some("X")
    })
}

#[test]
fn a_dead_test_process_leaves_no_server_behind() {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["leak_helper", "--exact", "--nocapture", "--test-threads=1"])
        .env(LEAK_HELPER, "1");
    let out = run(command, "the leak helper", Duration::from_secs(180));
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "the leak helper failed: {stdout}\n{}",
        text(&out.stderr)
    );
    let pids: Vec<u32> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("LEAK pid "))
        .map(|p| p.parse().unwrap())
        .collect();
    let dirs: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("LEAK dir "))
        .collect();
    if pids.is_empty() {
        // Every server was skipped (and said so).
        return;
    }
    let gone = poll_every(Duration::from_millis(100), Duration::from_secs(20), || {
        (pids.iter().all(|&p| !alive(p)) && dirs.iter().all(|d| !Path::new(d).exists()))
            .then_some(())
    });
    let left: Vec<&u32> = pids.iter().filter(|&&p| alive(p)).collect();
    let kept: Vec<&&str> = dirs.iter().filter(|d| Path::new(d).exists()).collect();
    assert!(
        gone.is_some(),
        "left behind: processes {left:?}, directories {kept:?}\n{stdout}"
    );
    // The ssh client of the session ends with its connection.
    for session in stdout
        .lines()
        .filter_map(|l| l.strip_prefix("LEAK session "))
    {
        let pid: u32 = session.parse().unwrap();
        let ended = poll_every(Duration::from_millis(100), Duration::from_secs(10), || {
            (!alive(pid)).then_some(())
        });
        assert!(ended.is_some(), "the ssh client {pid} still runs");
    }
}
