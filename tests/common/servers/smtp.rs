//! A real SMTP server for the tests: `aiosmtpd` (from `PyPI`) on 127.0.0.1, run by a small handler
//! script that the harness writes into its temporary directory. Each message received is
//! parsed by Python's `email` package (MIME, encodings and encoded words undone) and stored as
//! one JSON file, which [`Smtp::messages`] reads back as [`Mail`]s.
//!
//! [`Smtp::with_auth`] requires `AUTH PLAIN` or `AUTH LOGIN` with the given user and password
//! before `MAIL`, over plain TCP (`auth_require_tls=False`: there is no TLS here, so `smtps://`
//! and STARTTLS are not tested by this harness). Every AUTH attempt is recorded
//! ([`Smtp::logins`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::{Daemon, python_with, require, wait_until};

/// How to install what this harness needs.
pub const INSTALL: &str = "pip install aiosmtpd";

/// The handler: writes `port` once listening, then `NNNNNN.json` per message and one line of
/// `logins.jsonl` per AUTH attempt, each written whole (temporary file and rename, or one
/// `write` of a line).
const SERVER: &str = r#"
import asyncio, email, email.policy, json, os, sys
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

spool = sys.argv[1]
user = os.environ.get("JOBTOP_SMTP_USER")
password = os.environ.get("JOBTOP_SMTP_PASSWORD")
count = 0

def publish(name, data):
    tmp = os.path.join(spool, "." + name + ".tmp")
    with open(tmp, "w") as f:
        f.write(data)
    os.rename(tmp, os.path.join(spool, name))

class Handler:
    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain",))
        body = part.get_content().replace("\r\n", "\n") if part is not None else ""
        auth = session.auth_data
        record = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "headers": [[k, str(v)] for k, v in msg.items()],
            "body": body,
            "raw": raw.decode("utf-8", "replace"),
            "auth_user": auth.login.decode() if isinstance(auth, LoginPassword) else None,
        }
        publish("%06d.json" % count, json.dumps(record))
        return "250 OK: message %d queued" % count

def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login.decode() == user
          and auth_data.password.decode() == password)
    login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else None
    with open(os.path.join(spool, "logins.jsonl"), "a") as f:
        f.write(json.dumps({"mechanism": mechanism, "user": login, "ok": ok}) + "\n")
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

async def main():
    loop = asyncio.get_running_loop()
    options = {"hostname": "jobtop-test-smtp", "loop": loop}
    if user is not None:
        options.update(authenticator=authenticate, auth_required=True, auth_require_tls=False)
    server = await loop.create_server(lambda: SMTP(Handler(), **options), "127.0.0.1", 0)
    publish("port", str(server.sockets[0].getsockname()[1]))
    await server.serve_forever()

asyncio.run(main())
"#;

/// One message as the server received it.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The headers in order, values decoded (`=?utf-8?…?=` undone).
    pub headers: Vec<(String, String)>,
    /// The plain-text body (the `text/plain` part of a multipart message), decoded, its lines
    /// ending in `\n` (not the `\r\n` of the wire).
    pub body: String,
    /// The message as sent, headers and encoded body.
    pub raw: String,
    /// The user that logged in with AUTH before sending it, if any.
    pub auth_user: Option<String>,
}

impl Mail {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Subject` header, or `""`.
    pub fn subject(&self) -> &str {
        self.header("Subject").unwrap_or("")
    }
}

/// One AUTH attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    /// `PLAIN` or `LOGIN`.
    pub mechanism: String,
    /// The user given.
    pub user: Option<String>,
    /// Whether user and password were right.
    pub ok: bool,
}

/// An SMTP server on 127.0.0.1, stopped (and its directory removed) when dropped.
pub struct Smtp {
    // Declared before `dir`: the server stops before its directory goes.
    daemon: Daemon,
    port: u16,
    dir: TempDir,
}

impl Smtp {
    /// A server that accepts every message without AUTH; `None` (after a skip note) when
    /// `python3` or `aiosmtpd` is missing.
    pub fn start() -> Option<Smtp> {
        Smtp::boot(None)
    }

    /// A server that requires AUTH PLAIN or LOGIN as `user` with `password` before `MAIL`.
    pub fn with_auth(user: &str, password: &str) -> Option<Smtp> {
        Smtp::boot(Some((user, password)))
    }

    fn boot(auth: Option<(&str, &str)>) -> Option<Smtp> {
        let python = require("SMTP", python_with("aiosmtpd"), INSTALL)?;
        let dir = tempfile::Builder::new()
            .prefix("jobtop-smtp-")
            .tempdir()
            .unwrap();
        let script = dir.path().join("smtp_server.py");
        fs::write(&script, SERVER).unwrap();
        fs::create_dir(dir.path().join("spool")).unwrap();
        let daemon = Daemon::new(
            "the SMTP server",
            dir.path(),
            dir.path().join("smtp.log"),
            "TERM",
            "TERM",
        );
        let mut command = Command::new(python);
        command
            .arg(&script)
            .arg(dir.path().join("spool"))
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        if let Some((user, password)) = auth {
            command
                .env("JOBTOP_SMTP_USER", user)
                .env("JOBTOP_SMTP_PASSWORD", password);
        }
        daemon.spawn(command);
        let port_file = dir.path().join("spool").join("port");
        let port = wait_until("the SMTP server to listen", Duration::from_secs(30), || {
            daemon.assert_running("starting");
            Ok(fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse::<u16>().ok()))
        });
        Some(Smtp { daemon, port, dir })
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's pid.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// The server's temporary directory (the script, its log, `spool/` with the messages).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The server's log (aiosmtpd's warnings and errors).
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Mail> {
        let mut names: Vec<PathBuf> = fs::read_dir(self.spool())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names.iter().map(|p| read_mail(p)).collect()
    }

    /// The messages once there are at least `n`; panics (listing what came) after `within`.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + within;
        loop {
            let mails = self.messages();
            if mails.len() >= n {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{n} mails expected within {within:?}, {} came: {mails:#?}\nserver log: {}",
                mails.len(),
                self.log()
            );
            self.daemon.assert_running("waiting for mail");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every AUTH attempt so far, in order.
    pub fn logins(&self) -> Vec<Login> {
        fs::read_to_string(self.spool().join("logins.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                Login {
                    mechanism: v["mechanism"].as_str().unwrap_or("").to_string(),
                    user: v["user"].as_str().map(str::to_string),
                    ok: v["ok"].as_bool().unwrap_or(false),
                }
            })
            .collect()
    }
}

fn read_mail(path: &Path) -> Mail {
    let v: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    Mail {
        from: v["from"].as_str().unwrap_or("").to_string(),
        to: strings(&v["to"]),
        headers: v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let pair = strings(h);
                (pair[0].clone(), pair[1].clone())
            })
            .collect(),
        body: v["body"].as_str().unwrap_or("").to_string(),
        raw: v["raw"].as_str().unwrap_or("").to_string(),
        auth_user: v["auth_user"].as_str().map(str::to_string),
    }
}
