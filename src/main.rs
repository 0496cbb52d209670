//! The `jobtop` command: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use jobtop::cli::{Cli, Command};
use jobtop::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match &cli.command {
        Some(Command::Try(args)) => commands::try_job::run(args),
        Some(Command::Check) => commands::check::run(&cli.config),
        None => {
            println!("jobtop: no dashboard yet; try `jobtop try jobs/heartbeat.lua`");
            commands::exit::OK
        }
    };
    ExitCode::from(code)
}
