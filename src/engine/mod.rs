//! The task engine: reads the truth from git and the forge, decides every linked task's row
//! with a pure function, performs the effects it owes the forge exactly once, and commits the
//! task table back — one commit per reconcile, none when nothing changed.
//!
//! An event only hints at what to look at; the same reconcile runs on a timer, so a missed
//! or reordered delivery converges to the same state. A tour, in the order a delivery meets it:
//!
//! - `route.rs` — which forge's engine a delivery goes to, built from the environment;
//! - this file — the engine, its locks and caches, the entry points;
//! - `trunk.rs` — the trunk as one pass reads it: policy, task table, a fetched mirror;
//! - `reconcile.rs` — the pipeline: which pull requests → their facts (`facts.rs`) → the pure
//!   [`decide`] → the effects (`effects.rs`) → one commit → the sticky comments (`sticky.rs`);
//! - `commands.rs` — comment commands: each planned by its own file under `crate::commands`,
//!   recorded, applied, answered;
//! - `diagnosis.rs` — what broke, read once from each failed CI job's log;
//! - `checks.rs` — the bot's own statuses on a pull request's head;
//! - `ledger.rs` — everything the engine remembers, behind named operations.

pub mod checks;
mod commands;
pub mod decide;
mod diagnosis;
mod effects;
mod facts;
mod install;
pub mod ledger;
pub mod link;
mod reconcile;
mod route;
mod sticky;
mod trunk;
mod view;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::forge::{Forge, ForgeError, RepoRef};
use crate::git::{CommitError, Mirror};
use crate::queue::Delivery;
use crate::queue::worker::{Handler, HandlerError};
use crate::webhook::Event;
use ledger::Ledger;
pub use ledger::{Clock, SystemClock};
pub use route::Engines;
use route::{outcome, outcome_of};
pub use view::TrunkView;

/// Why a reconcile did not finish; all of it is worth retrying later.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("effects ledger: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Other(String),
}

/// Where the engine keeps its mirrors and its record of effects done.
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// A PostgreSQL URL the replicas share; `None` keeps the ledger in `data_dir` (SQLite).
    pub db: Option<String>,
    /// The clone URL of a repository (a path, `https://…` or ssh).
    pub clone_url: Box<dyn Fn(&RepoRef) -> String + Send + Sync>,
    /// The token git uses over http(s), if any.
    pub git_token: Option<crate::forge::Token>,
    /// Push attempts before giving up on a moving trunk.
    pub push_attempts: u32,
    /// The time timestamps, timeouts, claims and backoffs are read from.
    pub clock: Arc<dyn Clock>,
    /// The Woodpecker server whose statuses link to failed steps' logs, if one is set.
    pub woodpecker: Option<Arc<crate::forge::woodpecker::Woodpecker>>,
}

/// What a reconcile looked at and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub pulls: Vec<u64>,
    pub commit: Option<String>,
    pub effects: Vec<String>,
}

/// A bot commit's message with the marker every CI the trunk may run honours (GitHub Actions,
/// Gitea and Forgejo Actions, GitLab CI, Woodpecker): the task table changes nothing CI tests.
fn skip_ci(message: &str) -> String {
    format!("{}\n\n[skip ci]\n", message.trim_end())
}

/// Pending squash commits by (repository, sha): the contexts missing and since when.
type Waits = std::sync::Mutex<HashMap<(String, String), (Vec<String>, i64)>>;

/// A cached answer and when it was read.
type Cached<T> = std::sync::Mutex<HashMap<String, (Instant, T)>>;

/// The engine for the repositories of one forge.
pub struct Engine {
    forge: Arc<dyn Forge>,
    config: EngineConfig,
    ledger: Ledger,
    /// Repositories seen, for the periodic resync.
    known: std::sync::Mutex<BTreeSet<String>>,
    /// Head and merge commits seen, to the pull request they belong to: a CI event names only
    /// a sha.
    shas: std::sync::Mutex<HashMap<(String, String), u64>>,
    /// Squash commits this process saw on the trunk: a push that ends at one brings nothing
    /// new.
    on_trunk: std::sync::Mutex<BTreeSet<(String, String)>>,
    /// Merged pull requests as read once (merged is final), by (repository, number).
    merged: std::sync::Mutex<HashMap<(String, u64), crate::forge::PullRequest>>,
    /// Required contexts the forge names for the trunk, per repository.
    required: Cached<facts::Required>,
    /// Default branches, per repository.
    defaults: Cached<String>,
    /// Permissions by (repository, user id), with when they were read.
    permissions:
        std::sync::Mutex<HashMap<(String, u64), (std::time::Instant, crate::forge::Permission)>>,
    /// One reconcile per repository at a time within this process.
    locks: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Each trunk as the last pass read it, for the status page.
    views: std::sync::Mutex<HashMap<String, Arc<TrunkView>>>,
    /// Squash commits whose CI a pass found still pending: the contexts it waits on and
    /// since when (Unix ms) this process saw it waiting.
    waiting: Waits,
    /// Passes that read a trunk, so pages know when to refresh.
    generation: std::sync::atomic::AtomicU64,
    /// The secret rules failed jobs' logs are masked with, compiled when first needed.
    scanner: std::sync::OnceLock<Option<crate::secrets::Scanner>>,
}

impl Engine {
    /// Opens the engine's ledger (under `config.data_dir`, or in PostgreSQL).
    pub async fn open(forge: Arc<dyn Forge>, config: EngineConfig) -> Result<Engine, EngineError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| EngineError::Other(format!("{}: {e}", config.data_dir.display())))?;
        let ledger = Ledger::open(
            forge.kind().name(),
            config.db.as_deref(),
            &config.data_dir,
            config.clock.clone(),
        )
        .await?;
        let names = ledger.repos().await?;
        Ok(Engine {
            forge,
            config,
            ledger,
            known: std::sync::Mutex::new(names.into_iter().collect()),
            shas: Default::default(),
            merged: Default::default(),
            on_trunk: Default::default(),
            required: Default::default(),
            defaults: Default::default(),
            permissions: Default::default(),
            locks: Default::default(),
            views: Default::default(),
            waiting: Default::default(),
            generation: Default::default(),
            scanner: std::sync::OnceLock::new(),
        })
    }

    /// How many effects on issues and pull requests have been performed (each exactly once);
    /// the bot's own commit statuses are not counted.
    pub async fn effects_done(&self) -> Result<i64, EngineError> {
        Ok(self.ledger.effects_done().await?)
    }

    /// Now as RFC 3339, by the engine's clock.
    fn now(&self) -> String {
        ledger::rfc3339(self.ledger.now_ms())
    }

    fn mirror(
        &self,
        repo: &RepoRef,
        branch: &str,
        token: Option<crate::forge::Token>,
    ) -> Result<Mirror, EngineError> {
        let dir = self
            .config
            .data_dir
            .join("mirrors")
            .join(self.forge.kind().name())
            .join(repo.owner.replace('/', "%2F"))
            .join(format!("{}.git", repo.name));
        Ok(Mirror::open(
            &dir,
            &(self.config.clone_url)(repo),
            token,
            branch,
        )?)
    }

    /// The per-repository lock every reconcile and command takes.
    async fn lock(&self, repo: &RepoRef) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .await
            .entry(repo.to_string())
            .or_default()
            .clone()
    }

    /// Adds a repository to the periodic resync without waiting for an event from it.
    pub fn track(&self, repo: &RepoRef) {
        if let Ok(mut k) = self.known.lock() {
            k.insert(repo.to_string());
        }
    }

    /// Remembers a repository across restarts (and for every replica), so the resync covers
    /// it before its next event.
    async fn remember(&self, repo: &RepoRef) -> Result<(), EngineError> {
        let key = repo.to_string();
        let new = self
            .known
            .lock()
            .map(|mut k| k.insert(key.clone()))
            .unwrap_or(false);
        if new {
            self.ledger.remember_repo(&key).await?;
        }
        Ok(())
    }

    /// Reconciles every repository seen so far, by this process or any replica (the periodic
    /// resync).
    pub async fn resync(&self) -> Vec<(String, Result<ReconcileReport, EngineError>)> {
        let mut repos: BTreeSet<String> = self
            .known
            .lock()
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default();
        match self.ledger.repos().await {
            Ok(names) => repos.extend(names),
            Err(e) => tracing::warn!(error = %e, "cannot list the known repositories"),
        }
        match self.forge.installed_repositories().await {
            Ok(names) => repos.extend(names),
            Err(e) => tracing::warn!(error = %e, "cannot list the App's repositories"),
        }
        let mut out = Vec::new();
        for r in repos {
            if let Some(repo) = RepoRef::parse(&r) {
                out.push((r, self.reconcile(&repo, &[], &[]).await));
            }
        }
        out
    }

    /// Brings one repository's task table and issues to where git and the forge say they
    /// should be. `pulls` and `shas` are hints from an event: pull requests to look at beyond
    /// those the table already tracks, and commits whose CI changed.
    pub async fn reconcile(
        &self,
        repo: &RepoRef,
        pulls: &[u64],
        shas: &[String],
    ) -> Result<ReconcileReport, EngineError> {
        self.remember(repo).await?;
        let lock = self.lock(repo).await;
        let _held = lock.lock().await;
        use tracing::Instrument;
        let span = tracing::info_span!("reconcile", repo = %repo);
        self.reconcile_locked(repo, pulls, shas)
            .instrument(span)
            .await
    }

    /// A reconcile whose commit found a row moved by another writer decides again on the
    /// table as it is now.
    async fn reconcile_locked(
        &self,
        repo: &RepoRef,
        pulls: &[u64],
        shas: &[String],
    ) -> Result<ReconcileReport, EngineError> {
        let mut attempt = 0;
        loop {
            match self.reconcile_once(repo, pulls, shas).await {
                Err(EngineError::Commit(CommitError::Stale(id))) if attempt < 4 => {
                    tracing::debug!(task = %id, "a row moved under the reconcile; deciding again");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Runs a comment's commands under the repository's lock.
    pub async fn command(
        &self,
        repo: &RepoRef,
        c: &crate::webhook::event::Comment,
    ) -> Result<ReconcileReport, EngineError> {
        self.remember(repo).await?;
        let lock = self.lock(repo).await;
        let _held = lock.lock().await;
        use tracing::Instrument;
        let span = tracing::info_span!("commands", repo = %repo, comment = c.comment_id);
        self.on_comment(repo, c).instrument(span).await?;
        Ok(ReconcileReport::default())
    }
}

/// Runs the engine for deliveries from the queue.
impl Handler for Engine {
    async fn handle(&self, d: &Delivery, event: &Event) -> Result<(), HandlerError> {
        if let Event::Comment(c) = event {
            let Some(repo) = event.repo().and_then(|r| RepoRef::parse(&r.full_name)) else {
                return Ok(());
            };
            return outcome(&repo, self.command(&repo, c).await);
        }
        match event {
            Event::Installation(i) => return outcome_of(self.on_installation(i).await),
            Event::Recheck(r) => return outcome_of(self.on_recheck(r).await),
            _ => {}
        }
        self.handle_together(d, &[event]).await
    }

    /// Everything but comment commands: a burst of CI results and pushes is one reconcile.
    fn coalesces(&self, event: &Event) -> bool {
        !matches!(
            event,
            Event::Comment(_) | Event::Installation(_) | Event::Recheck(_)
        )
    }

    async fn handle_together(&self, _d: &Delivery, events: &[&Event]) -> Result<(), HandlerError> {
        // Hints per repository, in the order the repositories first appear; an event with no
        // hint (a ping) asks for every task.
        let mut hints: Vec<(RepoRef, BTreeSet<u64>, BTreeSet<String>, bool)> = Vec::new();
        for event in events {
            let Some(repo) = event.repo().and_then(|r| RepoRef::parse(&r.full_name)) else {
                continue;
            };
            let (pulls, shas): (Vec<u64>, Vec<String>) = match event {
                Event::PullRequest(p) => (vec![p.number], vec![]),
                Event::CiStatus(c) => (vec![], vec![c.sha.clone()]),
                Event::Push(p) if self.push_is_news(&repo, p).await => {
                    (vec![], vec![p.after.clone()])
                }
                Event::Push(_) => continue,
                _ => (vec![], vec![]),
            };
            let at = match hints.iter().position(|(r, ..)| *r == repo) {
                Some(i) => i,
                None => {
                    hints.push((repo, BTreeSet::new(), BTreeSet::new(), false));
                    hints.len() - 1
                }
            };
            hints[at].3 |= pulls.is_empty() && shas.is_empty();
            hints[at].1.extend(pulls);
            hints[at].2.extend(shas);
        }
        for (repo, pulls, shas, all) in hints {
            let (pulls, shas): (Vec<u64>, Vec<String>) = if all {
                (Vec::new(), Vec::new())
            } else {
                (pulls.into_iter().collect(), shas.into_iter().collect())
            };
            outcome(&repo, self.reconcile(&repo, &pulls, &shas).await)?;
        }
        Ok(())
    }

    async fn tick(&self) {
        for (repo, result) in self.resync().await {
            if let Err(e) = result {
                tracing::warn!(forge = %self.forge.kind(), repo, error = %e, "resync failed");
            }
        }
    }
}
