//! One module per subcommand; each returns the process exit code.

/// `println!` that ignores a closed stdout (`jobtop list | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that ignores a closed stdout.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

pub mod act;
pub mod check;
pub mod dashboard;
pub mod list;
pub mod next;
pub mod notify;
pub mod serve;
pub mod try_job;

/// Exit codes (docs/cli.md).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The thing asked about failed.
    pub const FAILED: u8 = 1;
    /// Bad usage or an unreadable `jobs.yaml`.
    pub const USAGE: u8 = 2;
}
