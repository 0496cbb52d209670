//! One module per subcommand; each returns the process exit code.

pub mod check;
pub mod try_job;

/// Exit codes (SPEC section 11).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The thing asked about failed.
    pub const FAILED: u8 = 1;
    /// Bad usage or an unreadable `jobs.yaml`.
    pub const USAGE: u8 = 2;
}
