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
        Some(Command::Serve) => commands::serve::run(&cli.config),
        Some(Command::List { json }) => commands::list::run_list(&cli.config, *json),
        Some(Command::History { name, json, limit }) => {
            commands::list::run_history(&cli.config, name, *limit, *json)
        }
        Some(Command::Reload) => commands::act::reload(&cli.config),
        Some(Command::Activate { name }) => {
            commands::act::run(&cli.config, commands::act::Action::Activate, name)
        }
        Some(Command::Cancel { name }) => {
            commands::act::run(&cli.config, commands::act::Action::Cancel, name)
        }
        Some(Command::Trigger { name }) => {
            commands::act::run(&cli.config, commands::act::Action::Trigger, name)
        }
        Some(Command::Attach) => commands::dashboard::run(
            &cli.config,
            commands::dashboard::Options {
                no_color: cli.no_color,
                attach_only: true,
                read_only: cli.read_only,
            },
        ),
        None => commands::dashboard::run(
            &cli.config,
            commands::dashboard::Options {
                no_color: cli.no_color,
                attach_only: false,
                read_only: cli.read_only,
            },
        ),
    };
    ExitCode::from(code)
}
