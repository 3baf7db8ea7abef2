//! `trunkwarden ci diagnose`: what broke in a CI log, for local use and for CI systems the bot
//! cannot read through an API.

use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{Format, emit, json};
use crate::Outcome;
use trunkwarden::diagnose::diagnose;
use trunkwarden::secrets::Scanner;

/// Arguments of `ci`.
#[derive(Debug, Args)]
pub struct CiArgs {
    #[command(subcommand)]
    command: CiCommand,
}

#[derive(Debug, Subcommand)]
enum CiCommand {
    /// Read a failed job's log (FILE, or `-` for standard input) and say what broke: class,
    /// failing tests, first errors; secrets masked.
    Diagnose {
        /// The log; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// Runs a `ci` subcommand.
pub fn run(args: CiArgs) -> anyhow::Result<Outcome> {
    let CiCommand::Diagnose { file, format } = args.command;
    let scanner = Scanner::builtin().context("cannot build the secret rules")?;
    let d = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            let f = std::fs::File::open(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            diagnose(BufReader::with_capacity(64 << 10, f), Some(&scanner))
        }
        None => diagnose(std::io::stdin().lock(), Some(&scanner)),
    };
    emit(&match format {
        Format::Json => json(&d)?,
        Format::Text => {
            let mut out = format!("{}\n", d.summary());
            for e in &d.errors {
                out.push_str(&format!("  {e}\n"));
            }
            if !d.tail.is_empty() {
                out.push_str("  last lines:\n");
                for l in &d.tail {
                    out.push_str(&format!("    {l}\n"));
                }
            }
            out
        }
    })?;
    Ok(Outcome::Clean)
}
