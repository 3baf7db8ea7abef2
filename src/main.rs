//! The `trunkwarden` command line: parses arguments and maps outcomes to exit codes.
#![forbid(unsafe_code)]

mod cli;

/// glibc's malloc took about 15% of the request threads' time under load (perf); mimalloc's
/// per-thread heaps take most of that away.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Git hooks and forge bot for trunk-based development.
#[derive(Debug, Parser)]
#[command(name = "trunkwarden", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive forge webhooks: verify, store durably, answer fast, process from the queue.
    Serve(cli::serve::ServeArgs),
    /// Sign recorded deliveries and send them to a running server.
    Replay(cli::replay::ReplayArgs),
    /// List, show and retry deliveries in the ledger.
    Deliveries(cli::deliveries::DeliveriesArgs),
    /// Find secrets in files, directories or standard input.
    Scan(cli::scan::ScanArgs),
    /// Read, check and update the task table (docs/TASKS.md).
    Tasks(cli::tasks::TasksArgs),
    /// Run one git hook (called by the installed shims).
    Hook(cli::hook::HookArgs),
    /// Install, remove or inspect the git hooks of a repository or a git server.
    Hooks(cli::hook::HooksArgs),
    /// Register the bot's webhook on a forge repository.
    Webhook(cli::forge::WebhookArgs),
    /// Make a repository squash-only with a protected trunk only the bot pushes to.
    Protect(cli::forge::ProtectArgs),
    /// Say what broke in a CI job's log: class, failing tests, first errors (secrets masked).
    Ci(cli::ci::CiArgs),
    /// Check configuration, tokens, the data directory and local hooks, with a fix for each problem.
    Doctor(cli::forge::DoctorArgs),
    /// Create the bot's GitHub App from a manifest (least permissions), then trade its code.
    GithubApp(cli::github_app::GithubAppArgs),
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), e.g. `trunkwarden man > trunkwarden.1`.
    Man,
}

/// What a command concluded; errors are separate and exit 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: nothing wrong.
    Clean,
    /// Exit 1: a policy violation, an invalid table, or a deadlock.
    Violation,
    /// Exit 2: an error the command has already reported in its own format.
    Failed,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Replay(args) => cli::replay::run(args),
        Command::GithubApp(args) => cli::github_app::run(args),
        Command::Deliveries(args) => cli::deliveries::run(args),
        Command::Ci(args) => cli::ci::run(args),
        Command::Scan(args) => cli::scan::run(args),
        Command::Tasks(args) => cli::tasks::run(args),
        Command::Hook(args) => cli::hook::run(args),
        Command::Hooks(args) => cli::hook::run_hooks(args),
        Command::Webhook(args) => cli::forge::run_webhook(args),
        Command::Protect(args) => cli::forge::run_protect(args),
        Command::Doctor(args) => cli::forge::run_doctor(args),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "trunkwarden",
                &mut std::io::stdout(),
            );
            Ok(Outcome::Clean)
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map(|()| Outcome::Clean)
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Violation) => ExitCode::from(1),
        Ok(Outcome::Failed) => ExitCode::from(2),
        Err(e) => {
            eprintln!("trunkwarden: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
