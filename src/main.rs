//! The `trunkwarden` command line: parses arguments and maps outcomes to exit codes.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Git hooks and forge bot for trunk-based development.
#[derive(Debug, Parser)]
#[command(name = "trunkwarden", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read, check and update the task table (docs/TASKS.md).
    Tasks(cli::tasks::TasksArgs),
}

/// What a command concluded; errors are separate and exit 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: nothing wrong.
    Clean,
    /// Exit 1: a policy violation, an invalid table, or a deadlock.
    Violation,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tasks(args) => cli::tasks::run(args),
    };
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Violation) => ExitCode::from(1),
        Err(e) => {
            eprintln!("trunkwarden: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
