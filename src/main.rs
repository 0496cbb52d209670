//! The `jobtop` command: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use jobtop::cli::{Cli, NotifyCommand, Subcommand};
use jobtop::commands;
use jobtop::control::Verb;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match &cli.command {
        Some(Subcommand::Try(args)) => commands::try_job::run(args),
        Some(Subcommand::Check) => commands::check::run(&cli.config),
        Some(Subcommand::Serve) => commands::serve::run(&cli.config),
        Some(Subcommand::List { json }) => commands::list::run_list(&cli.config, *json),
        Some(Subcommand::History { name, json, limit }) => {
            commands::list::run_history(&cli.config, name, *limit, *json)
        }
        Some(Subcommand::Reload) => commands::act::reload(&cli.config),
        Some(Subcommand::Activate { name }) => {
            commands::act::run(&cli.config, Verb::Activate, name)
        }
        Some(Subcommand::Cancel { name }) => commands::act::run(&cli.config, Verb::Cancel, name),
        Some(Subcommand::Trigger { name }) => commands::act::run(&cli.config, Verb::Trigger, name),
        Some(Subcommand::Next {
            name,
            count,
            from,
            json,
        }) => commands::next::run(&cli.config, name, usize::from(*count), *from, *json),
        Some(Subcommand::Notify(NotifyCommand::Test { channel })) => {
            commands::notify::run_test(&cli.config, *channel)
        }
        Some(Subcommand::Attach) => commands::dashboard::run(
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
