//! `trunkwarden serve`: resolve settings, start the receiver, stop cleanly on SIGINT/SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::Outcome;
use trunkwarden::queue::Sync;
use trunkwarden::queue::retention::Retention;
use trunkwarden::queue::worker::{RetryPolicy, WorkerConfig};
use trunkwarden::server::ServerFile;
use trunkwarden::server::{self, Settings};
use trunkwarden::webhook::{ForgeKind, Verifier};

/// Flags of `serve`; each also reads a `TRUNKWARDEN_*` variable and falls back to the file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TRUNKWARDEN_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the SQLite ledger [default: ./trunkwarden-data].
    #[arg(long, env = "TRUNKWARDEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL ledger shared by several replicas (postgres://user@host/db); the password comes
    /// from TRUNKWARDEN_DB, PGPASSWORD or ~/.pgpass, never from here [default: SQLite in --data-dir].
    #[arg(long)]
    db: Option<String>,
    /// Settings file (TOML) for everything else; README.md lists the keys.
    #[arg(long, env = "TRUNKWARDEN_CONFIG")]
    config: Option<PathBuf>,
    /// Deliveries processed at once; 0 stores deliveries without processing them [default: 4].
    #[arg(long, env = "TRUNKWARDEN_WORKERS")]
    workers: Option<usize>,
    /// How commits reach the disk: full (fsync each, default) or normal.
    #[arg(long, env = "TRUNKWARDEN_SYNC", value_enum)]
    sync: Option<Sync>,
    /// Forges whose deliveries may arrive unsigned (comma-separated). Never for production.
    #[arg(long, env = "TRUNKWARDEN_ALLOW_UNSIGNED", value_delimiter = ',')]
    allow_unsigned: Vec<ForgeKind>,
}

fn settings(args: ServeArgs) -> anyhow::Result<Settings> {
    let file = match &args.config {
        Some(p) => ServerFile::load(p)?,
        None => ServerFile::default(),
    };
    let listen = match (args.listen, &file.server.listen) {
        (Some(a), _) => a,
        (None, Some(s)) => s.parse().with_context(|| {
            format!("server.listen `{s}` is not an address like 127.0.0.1:8080")
        })?,
        (None, None) => SocketAddr::from(([127, 0, 0, 1], 8080)),
    };
    let q = &file.queue;
    let workers = args.workers.or(q.workers).unwrap_or(4);
    let retry = RetryPolicy {
        max_attempts: q.max_attempts.unwrap_or(8).max(1),
        base: Duration::from_millis(q.retry_base_ms.unwrap_or(1_000)),
        max: Duration::from_millis(q.retry_max_ms.unwrap_or(300_000)),
    };
    let mut verifier = Verifier::from_env(|k| std::env::var(k).ok())?;
    verifier.allow_unsigned = args
        .allow_unsigned
        .into_iter()
        .chain(file.webhook.allow_unsigned.iter().copied())
        .collect();
    verifier.gitlab_tolerance_secs = file.webhook.gitlab_timestamp_tolerance_secs.unwrap_or(300);
    let db = trunkwarden::queue::database_url(args.db, std::env::var("TRUNKWARDEN_DB").ok())?;
    let resync = std::env::var("TRUNKWARDEN_RESYNC_SECS")
        .ok()
        .map(|v| {
            v.parse::<u64>()
                .context("TRUNKWARDEN_RESYNC_SECS must be a number of seconds")
        })
        .transpose()?
        .unwrap_or(300);
    let max_body_bytes = file.server.max_body_bytes.unwrap_or(25 << 20);
    Ok(Settings {
        listen,
        db,
        data_dir: args
            .data_dir
            .or(file.server.data_dir)
            .unwrap_or_else(|| PathBuf::from("trunkwarden-data")),
        max_body_bytes,
        max_body_bytes_in_flight: file
            .server
            .max_body_bytes_in_flight
            .unwrap_or(max_body_bytes.saturating_mul(2)),
        request_timeout: Duration::from_secs(file.server.request_timeout_secs.unwrap_or(30)),
        connections: trunkwarden::server::Connections {
            max: file.server.max_connections.unwrap_or(512),
            header_timeout: Duration::from_secs(file.server.header_timeout_secs.unwrap_or(10)),
        },
        workers: (workers > 0).then_some(WorkerConfig {
            concurrency: workers,
            retry,
            // The resync runs in the dispatcher, so only the replica that dispatches acts.
            tick: (resync > 0).then(|| Duration::from_secs(resync)),
        }),
        sync: args.sync.or(q.sync).unwrap_or(Sync::Full),
        retention: retention(q),
        verifier,
        ui: ui(&file.ui)?,
    })
}

/// The status page's settings: on unless `[ui] enabled = false`; its token from the variable
/// `[ui] token_env` names (an explicit name that is unset is an error, not an open page).
fn ui(section: &trunkwarden::server::UiSection) -> anyhow::Result<trunkwarden::ui::UiSettings> {
    let var = section
        .token_env
        .clone()
        .unwrap_or_else(|| "TRUNKWARDEN_UI_TOKEN".to_owned());
    let token = std::env::var(&var).ok().filter(|t| !t.trim().is_empty());
    if token.is_none() && section.token_env.is_some() {
        anyhow::bail!("[ui] token_env names {var}, which is not set");
    }
    Ok(trunkwarden::ui::UiSettings {
        enabled: section.enabled.unwrap_or(true),
        token,
    })
}

/// The retention `[queue]` asks for: days of done rows (0 keeps everything), of their bodies,
/// of dead letters.
fn retention(q: &trunkwarden::server::QueueSection) -> Option<Retention> {
    let d = Retention::default();
    let days = |n: u64| Duration::from_secs(n.saturating_mul(24 * 3600));
    match q.retention_days {
        Some(0) => None,
        done => Some(Retention {
            done: done.map_or(d.done, days),
            bodies: q.body_retention_days.map_or(d.bodies, days),
            dead: q.dead_retention_days.map_or(d.dead, days),
        }),
    }
}

/// stderr that never fails: a log reader that went away (a closed pipe) must not take the
/// server down with it, as a failed write inside the log subscriber would.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logs to stderr: text for people, or one JSON object per line
/// (`TRUNKWARDEN_LOG_FORMAT=json`) with the delivery's and repository's span fields, for log
/// pipelines.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRUNKWARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json =
        std::env::var("TRUNKWARDEN_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs the receiver until a stop signal, then shuts down gracefully.
pub fn run(args: ServeArgs) -> anyhow::Result<Outcome> {
    init_logging();
    let settings = settings(args)?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    // One runtime thread more than cores: the ledger's flush (`fdatasync`, 0.3-0.6 ms under
    // load) runs inline on the thread that committed, and meanwhile the other cores keep
    // serving. Measured on 2 cores against 2 threads: +10-20% deliveries/s at full load and a
    // lower p99 at 1,000/s; 4 threads was worse on both. TOKIO_WORKER_THREADS still overrides.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        rt.worker_threads(cores + 1);
    }
    let rt = rt
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let env = |k: &str| std::env::var(k).ok();
        let engines = trunkwarden::engine::Engines::from_env(&settings.data_dir, settings.db.as_deref(), &env)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let engines = Arc::new(engines);
        if engines.forges().is_empty() {
            tracing::warn!("no forge token set (TRUNKWARDEN_GITHUB_TOKEN, …): deliveries are recorded, tasks are not advanced");
        } else {
            tracing::info!(forges = ?engines.forges(), "task engine on");
        }
        let source: Option<Arc<dyn trunkwarden::ui::Source>> =
            (!engines.forges().is_empty()).then(|| engines.clone() as _);
        let running = server::start_with(settings, engines, source).await?;
        let _ = writeln!(std::io::stdout(), "listening on http://{}", running.addr);
        stop_signal().await;
        tracing::info!("stopping: finishing in-flight requests and jobs");
        running.shutdown().await;
        Ok(Outcome::Clean)
    })
}
