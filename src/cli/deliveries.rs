//! `trunkwarden deliveries`: read the ledger and put deliveries back in the queue.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{Format, emit, json};
use crate::Outcome;
use trunkwarden::queue::retention::Retention;
use trunkwarden::queue::{State, Store, Sync};

/// Arguments of `deliveries`.
#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    /// Data directory of the server [default: ./trunkwarden-data].
    #[arg(long, env = "TRUNKWARDEN_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// The PostgreSQL ledger `serve --db` uses (password from TRUNKWARDEN_DB or PGPASSWORD).
    #[arg(long, global = true)]
    db: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(subcommand)]
    command: DeliveriesCommand,
}

#[derive(Debug, Subcommand)]
enum DeliveriesCommand {
    /// The newest deliveries.
    List {
        /// Only deliveries in this state.
        #[arg(long, value_enum)]
        state: Option<State>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One delivery: headers, state, attempts, result.
    Show {
        id: i64,
        /// Also print the body.
        #[arg(long)]
        body: bool,
    },
    /// Queue deliveries again (a running server picks them up within seconds).
    Retry {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// Remove what the retention no longer keeps, as `serve` does every hour.
    Prune {
        /// Days a done or ignored delivery is kept.
        #[arg(long, default_value_t = 30)]
        done_days: u64,
        /// Days its body is kept.
        #[arg(long, default_value_t = 7)]
        body_days: u64,
        /// Days a dead letter is kept.
        #[arg(long, default_value_t = 90)]
        dead_days: u64,
    },
}

/// Runs a `deliveries` subcommand.
pub fn run(args: DeliveriesArgs) -> anyhow::Result<Outcome> {
    let dir = args
        .data_dir
        .unwrap_or_else(|| PathBuf::from("trunkwarden-data"));
    let db = trunkwarden::queue::database_url(args.db, std::env::var("TRUNKWARDEN_DB").ok())?;
    if db.is_none() && !dir.join(trunkwarden::queue::DB_FILE).exists() {
        anyhow::bail!(
            "no ledger in {}; pass --data-dir (the directory `serve` uses)",
            dir.display()
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let store = Store::connect(db.as_deref(), &dir, Sync::Full).await?;
        match args.command {
            DeliveriesCommand::List { state, limit } => {
                let rows = store.list(state, limit.clamp(1, 10_000)).await?;
                emit(&match args.format {
                    Format::Json => json(&rows)?,
                    Format::Text => {
                        let mut out = String::from("id       state    attempts  forge    event                  delivery\n");
                        for d in &rows {
                            let _ = writeln!(
                                out,
                                "{:<8} {:<8} {:>8}  {:<8} {:<22} {}{}",
                                d.id,
                                d.state,
                                d.attempts,
                                d.forge,
                                d.event,
                                d.delivery_id,
                                d.last_error.as_deref().map_or(String::new(), |e| format!("  ({e})"))
                            );
                        }
                        out
                    }
                })?;
                Ok(Outcome::Clean)
            }
            DeliveriesCommand::Show { id, body } => {
                let d = store.get(id).await?.with_context(|| format!("no delivery with id {id}"))?;
                let mut v = serde_json::to_value(&d)?;
                if body {
                    v["body"] = String::from_utf8_lossy(&d.body).into_owned().into();
                }
                emit(&json(&v)?)?;
                Ok(Outcome::Clean)
            }
            DeliveriesCommand::Retry { ids } => {
                let mut out = String::new();
                let mut missing = false;
                for id in ids {
                    if store.requeue(id).await.map_err(|e| anyhow::anyhow!("{e}"))? {
                        let _ = writeln!(out, "{id}: queued again");
                    } else {
                        missing = true;
                        let _ = writeln!(out, "{id}: no such delivery, already queued, or its body pruned");
                    }
                }
                emit(&out)?;
                Ok(if missing { Outcome::Violation } else { Outcome::Clean })
            }
            DeliveriesCommand::Prune {
                done_days,
                body_days,
                dead_days,
            } => {
                let days = |n: u64| std::time::Duration::from_secs(n.saturating_mul(24 * 3600));
                let r = Retention {
                    done: days(done_days),
                    bodies: days(body_days),
                    dead: days(dead_days),
                };
                let pruned = store.prune(&r).await?;
                emit(&match args.format {
                    Format::Json => json(&pruned)?,
                    Format::Text => format!(
                        "pruned {} deliveries and {} bodies\n",
                        pruned.deliveries, pruned.bodies
                    ),
                })?;
                Ok(Outcome::Clean)
            }
        }
    })
}
