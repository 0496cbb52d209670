//! `service.databases`: the databases jobs may reach through `core.sql` and `core.mysql`, and
//! the URLs that name them (docs/jobs-yaml.md#databases).
//!
//! A URL is parsed here once, when `jobs.yaml` is read, so that `check` reports a bad one at
//! its line and column and the runtime only ever sees a valid [`Target`]. A password is held in
//! a [`Secret`], which never prints: not in `Debug`, not in messages, not in the URL shown to
//! operators ([`Database::shown`]).

use std::fmt;
use std::path::{Path, PathBuf};

/// The most rows one query may return, unless the database sets `max_rows`.
pub const DEFAULT_MAX_ROWS: u64 = 100_000;
/// The most bytes of data one query may return, unless the database sets `max_result`.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

/// One entry of `service.databases`, resolved: its URL parsed, its password read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Database {
    /// The name jobs use (`core.sql.query("reports", …)`).
    pub name: String,
    /// Where it is and how to reach it.
    pub target: Target,
    /// The URL without its password, for messages: `postgres://jobs@db1:5432/reports`.
    pub shown: String,
    /// The most rows one query may return.
    pub max_rows: u64,
    /// The most bytes of data one query may return.
    pub max_bytes: u64,
}

impl Database {
    /// What kind of server this is.
    pub fn kind(&self) -> Kind {
        match &self.target {
            Target::Postgres(_) => Kind::Postgres,
            Target::MySql(_) => Kind::MySql,
            Target::Sqlite(_) => Kind::Sqlite,
        }
    }
}

/// The kinds of database jobtop speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// PostgreSQL (`postgres://`), placeholders `$1`, `$2`, …
    Postgres,
    /// MySQL or MariaDB (`mysql://`, `mariadb://`), placeholders `?`.
    MySql,
    /// An `SQLite` file (`sqlite://`), placeholders `?` (or `?1`, `:name` by position).
    Sqlite,
}

impl Kind {
    /// The word for messages: `PostgreSQL`, `MySQL`, `SQLite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Postgres => "PostgreSQL",
            Kind::MySql => "MySQL",
            Kind::Sqlite => "SQLite",
        }
    }
}

/// Where a database is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A PostgreSQL server.
    Postgres(Server),
    /// A MySQL or MariaDB server.
    MySql(Server),
    /// An `SQLite` file.
    Sqlite(SqliteFile),
}

/// A database server reached over TCP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The user to log in as.
    pub user: String,
    /// Its password, from `password_env` or the URL of `url_env`.
    pub password: Option<Secret>,
    /// The database (PostgreSQL: defaults to the user's name; MySQL: none selected).
    pub database: Option<String>,
    /// Whether to speak TLS, verified against the system's roots and the host name.
    pub tls: bool,
}

/// An `SQLite` database file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteFile {
    /// The file, absolute.
    pub path: PathBuf,
    /// How it is opened.
    pub mode: SqliteMode,
}

/// How an `SQLite` file is opened (`?mode=` of its URL, as `SQLite`'s own URIs say it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqliteMode {
    /// `ro`: read-only.
    ReadOnly,
    /// `rw` (the default): read-write; the file must exist.
    ReadWrite,
    /// `rwc`: read-write, created when missing.
    Create,
}

/// A password: compared and cloned, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The password itself, for the one place that needs it: the login.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// What the URL of a database says, before the password from `password_env` is added.
#[derive(Debug)]
pub(super) struct ParsedUrl {
    pub target: Target,
    /// The URL as shown in messages: without its password.
    pub shown: String,
    /// Whether the URL itself carried a password.
    pub had_password: bool,
}

/// The schemes jobtop knows, for messages.
pub(super) const EXPECT_URL: &str = "a URL such as postgres://user@host:5432/db, \
     mysql://user@host:3306/db or sqlite:///var/lib/app/app.db";

/// Parses a database URL; `base_dir` anchors a relative `SQLite` path. The error never quotes
/// the URL (it may carry a password): it says what is wrong and what was expected.
pub(super) fn parse_url(text: &str, base_dir: &Path) -> Result<ParsedUrl, String> {
    let scheme = text.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    let postgres = match scheme.as_deref() {
        Some("sqlite") => return sqlite_url(text, base_dir),
        Some("postgres" | "postgresql") => true,
        Some("mysql" | "mariadb") => false,
        _ => {
            return Err(format!(
                "is not a database URL (unknown scheme): expected {EXPECT_URL}"
            ));
        }
    };
    let url = url::Url::parse(text)
        .map_err(|e| format!("is not a valid URL ({e}): expected {EXPECT_URL}"))?;
    let (scheme, default_port) = if postgres {
        ("postgres", 5432)
    } else {
        ("mysql", 3306)
    };
    let Some(shown_host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(format!("has no host: expected {EXPECT_URL}"));
    };
    let host = shown_host.trim_start_matches('[').trim_end_matches(']');
    let user = decode(url.username(), "user name")?;
    if user.is_empty() {
        return Err(format!(
            "has no user name: expected {scheme}://USER@{shown_host}/…, with the password in password_env"
        ));
    }
    let password = url
        .password()
        .map(|p| decode(p, "password"))
        .transpose()?
        .map(Secret::new);
    let database = decode(url.path().trim_start_matches('/'), "database name")?;
    if database.contains('/') {
        return Err(format!(
            "has a path of more than one part: expected {scheme}://USER@HOST/DATABASE"
        ));
    }
    let database = (!database.is_empty()).then_some(database);
    let tls = tls_mode(&url, postgres)?;
    let port = url.port().unwrap_or(default_port);
    let mut shown = format!("{scheme}://{user}@{shown_host}:{port}");
    if let Some(db) = &database {
        shown.push('/');
        shown.push_str(db);
    }
    if let Some(query) = url.query() {
        shown.push('?');
        shown.push_str(query);
    }
    let had_password = password.is_some();
    let server = Server {
        host: host.to_string(),
        port,
        user,
        password,
        database,
        tls,
    };
    let target = if postgres {
        Target::Postgres(server)
    } else {
        Target::MySql(server)
    };
    Ok(ParsedUrl {
        target,
        shown,
        had_password,
    })
}

/// A percent-decoded part of the URL.
fn decode(part: &str, what: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| format!("has a {what} that is not UTF-8 once decoded: expected UTF-8 text"))
}

/// TLS from `sslmode` (PostgreSQL) or `ssl-mode` (MySQL). Every mode that asks for TLS
/// verifies the certificate against the system's roots and the host name; the modes that fall
/// back to plain text when TLS fails (`prefer`, `PREFERRED`) are refused, so a connection is
/// never quietly unencrypted.
fn tls_mode(url: &url::Url, postgres: bool) -> Result<bool, String> {
    let (key, off, on, fallback): (&str, &[&str], &[&str], &[&str]) = if postgres {
        (
            "sslmode",
            &["disable"],
            &["require", "verify-ca", "verify-full"],
            &["prefer", "allow"],
        )
    } else {
        (
            "ssl-mode",
            &["DISABLED"],
            &["REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"],
            &["PREFERRED"],
        )
    };
    let expected = format!("{key}={} or {key}={}", off[0], on[0]);
    let mut tls = false;
    for (name, value) in url.query_pairs() {
        let known = if postgres {
            name == "sslmode"
        } else {
            name.eq_ignore_ascii_case("ssl-mode") || name.eq_ignore_ascii_case("ssl_mode")
        };
        if !known {
            return Err(format!(
                "has an unknown parameter {name:?}: expected only {key} (such as {expected})"
            ));
        }
        let same = |word: &&str| {
            if postgres {
                **word == *value
            } else {
                word.eq_ignore_ascii_case(&value)
            }
        };
        if off.iter().any(same) {
            tls = false;
        } else if on.iter().any(same) {
            tls = true;
        } else if fallback.iter().any(same) {
            return Err(format!(
                "asks for {key}={value}, which would fall back to an unencrypted connection \
                 without a word: expected {expected}"
            ));
        } else {
            return Err(format!(
                "has an unknown {key} {value:?}: expected {}, {}",
                off.join(", "),
                on.join(", ")
            ));
        }
    }
    Ok(tls)
}

/// `sqlite:///absolute/file.db` or `sqlite:relative/file.db` (relative to the directory of
/// `jobs.yaml`), with `?mode=ro`, `rw` (the default) or `rwc`.
fn sqlite_url(text: &str, base_dir: &Path) -> Result<ParsedUrl, String> {
    let expected =
        "sqlite:///absolute/path.db or sqlite:relative/path.db, with ?mode=ro, rw or rwc";
    let rest = &text["sqlite:".len()..];
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = match path.strip_prefix("//") {
        Some(after) if after.starts_with('/') => after,
        Some(_) => {
            return Err(format!(
                "names a host; an SQLite database is a local file: expected {expected}"
            ));
        }
        None => path,
    };
    if path.is_empty() {
        return Err(format!("has no file path: expected {expected}"));
    }
    let mut mode = SqliteMode::ReadWrite;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        mode = match pair {
            "mode=ro" => SqliteMode::ReadOnly,
            "mode=rw" => SqliteMode::ReadWrite,
            "mode=rwc" => SqliteMode::Create,
            other => {
                return Err(format!(
                    "has an unknown parameter {other:?}: expected {expected}"
                ));
            }
        };
    }
    let path = base_dir.join(path);
    Ok(ParsedUrl {
        shown: format!(
            "sqlite://{}{}",
            path.display(),
            if query.is_empty() {
                String::new()
            } else {
                format!("?{query}")
            }
        ),
        target: Target::Sqlite(SqliteFile { path, mode }),
        had_password: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str) -> (Server, String) {
        let parsed = parse_url(url, Path::new("/base")).unwrap();
        match parsed.target {
            Target::Postgres(s) | Target::MySql(s) => (s, parsed.shown),
            Target::Sqlite(_) => panic!("not a server"),
        }
    }

    #[test]
    fn server_urls_are_split_and_shown_without_the_password() {
        let (s, shown) =
            server("postgres://jobs:s%40cret@db1.example:6543/reports?sslmode=require");
        assert_eq!(s.host, "db1.example");
        assert_eq!(s.port, 6543);
        assert_eq!(s.user, "jobs");
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("s@cret"));
        assert_eq!(s.database.as_deref(), Some("reports"));
        assert!(s.tls);
        assert_eq!(
            shown,
            "postgres://jobs@db1.example:6543/reports?sslmode=require"
        );
        assert!(!format!("{s:?}").contains("s@cret"));

        let (s, shown) = server("mariadb://app@127.0.0.1/products?ssl-mode=disabled");
        assert_eq!((s.port, s.tls, s.password), (3306, false, None));
        assert_eq!(
            shown,
            "mysql://app@127.0.0.1:3306/products?ssl-mode=disabled"
        );
        let (s, _) = server("mysql://app@[::1]:3307");
        assert_eq!((s.host.as_str(), s.database), ("::1", None));
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_quoting_the_url() {
        let base = Path::new("/base");
        for (url, wanted) in [
            ("http://x", "unknown scheme"),
            ("postgres://db1/reports", "has no user name"),
            ("postgres://jobs@db1/a/b", "more than one part"),
            (
                "postgres://jobs:pw@db1/r?sslmode=prefer",
                "fall back to an unencrypted",
            ),
            ("postgres://jobs:pw@db1/r?sslmode=bogus", "unknown sslmode"),
            (
                "mysql://jobs:pw@db1/r?timeout=3",
                "unknown parameter \"timeout\"",
            ),
            ("mysql://jobs:pw@db1/r?ssl-mode=PREFERRED", "fall back"),
            ("sqlite://host/x.db", "names a host"),
            ("sqlite:", "has no file path"),
            ("sqlite:///x.db?mode=memory", "unknown parameter"),
        ] {
            let error = parse_url(url, base).unwrap_err();
            assert!(error.contains(wanted), "{url}: {error}");
            assert!(!error.contains("pw"), "{url}: {error}");
            assert!(error.contains("expected"), "{url}: {error}");
        }
    }

    #[test]
    fn sqlite_paths_are_absolute_or_beside_jobs_yaml() {
        let base = Path::new("/srv/jobtop");
        let parsed = parse_url("sqlite:///var/lib/app.db", base).unwrap();
        assert_eq!(
            parsed.target,
            Target::Sqlite(SqliteFile {
                path: "/var/lib/app.db".into(),
                mode: SqliteMode::ReadWrite
            })
        );
        let parsed = parse_url("sqlite:data/app.db?mode=ro", base).unwrap();
        assert_eq!(
            parsed.target,
            Target::Sqlite(SqliteFile {
                path: "/srv/jobtop/data/app.db".into(),
                mode: SqliteMode::ReadOnly
            })
        );
        assert_eq!(parsed.shown, "sqlite:///srv/jobtop/data/app.db?mode=ro");
    }
}
