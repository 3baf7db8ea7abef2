//! The task engine: reads the truth from git and the forge, decides every linked task's row
//! with a pure function, performs the effects it owes the forge exactly once, and commits the
//! task table back — one commit per reconcile, none when nothing changed.
//!
//! An event only hints at what to look at; the same reconcile runs on a timer, so a missed
//! or reordered delivery converges to the same state.

pub mod checks;
mod commands;
pub mod decide;
pub mod ledger;
pub mod link;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::ConnectOptions as _;
use sqlx::sqlite::SqliteConnectOptions;

use crate::config::{POLICY_FILE, RepoPolicy};
use crate::forge::{Forge, ForgeError, PrState, PullRequest, RepoRef, Thread};
use crate::git::{CommitError, Identity, Mirror, RowChange};
use crate::queue::Delivery;
use crate::queue::worker::{Handler, HandlerError};
use crate::tasks::{Status, Task, TaskTable};
use crate::webhook::Event;
use decide::{Effect, IssueFact, Landed, Verdict};
use ledger::{Claim, Ledger};
pub use ledger::{Clock, SystemClock};

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

/// The trunk as one reconcile or command reads it.
struct Trunk {
    mirror: Mirror,
    tip: git2::Oid,
    policy: RepoPolicy,
    tasks_path: String,
    tasks: Vec<Task>,
    table: TaskTable,
}

impl Trunk {
    /// The trunk's branch name.
    fn name(&self) -> &str {
        self.policy.trunk.name()
    }

    /// A task's row cells as read: what a change decided on them expects to find.
    fn row_cells(&self, task: &Task) -> Vec<(String, String)> {
        self.table
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), self.table.get(task.row, i).into_owned()))
            .collect()
    }

    fn has_column(&self, c: &str) -> bool {
        self.table.column(c).is_some()
    }
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
}

/// What a reconcile looked at and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub pulls: Vec<u64>,
    pub commit: Option<String>,
    pub effects: Vec<String>,
}

/// A cached answer and when it was read.
type Cached<T> = std::sync::Mutex<HashMap<String, (Instant, T)>>;

/// The contexts green waits for, and where they were learned.
#[derive(Debug, Clone, Default)]
struct Required {
    contexts: Vec<String>,
    source: String,
}

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
    /// Required contexts the forge names for the trunk, per repository.
    required: Cached<Required>,
    /// Default branches, per repository.
    defaults: Cached<String>,
    /// Permissions by (repository, user id), with when they were read.
    permissions:
        std::sync::Mutex<HashMap<(String, u64), (std::time::Instant, crate::forge::Permission)>>,
    /// One reconcile per repository at a time within this process.
    locks: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The engine's tables, which `ledger_sql` prefixes.
const TABLES: [&str; 11] = [
    "effects",
    "effect_claims",
    "checked",
    "claims",
    "merges",
    "blocked",
    "comments",
    "command_lines",
    "red_heads",
    "pending_since",
    "repos",
];

/// Prefixes the engine's table names and numbers the `?` placeholders.
fn ledger_sql(sql: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    for token in sql.split_inclusive(|c: char| !(c.is_alphanumeric() || c == '_')) {
        let (word, sep) = match token.char_indices().last() {
            Some((at, c)) if !(c.is_alphanumeric() || c == '_') => (&token[..at], &token[at..]),
            _ => (token, ""),
        };
        if !prefix.is_empty() && TABLES.contains(&word) {
            out.push_str(prefix);
        }
        out.push_str(word);
        out.push_str(sep);
    }
    crate::queue::numbered(&out)
}

fn pr_numbers(notes: &str) -> Vec<u64> {
    notes
        .match_indices("PR #")
        .filter_map(|(i, m)| {
            let digits: String = notes[i + m.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

/// How an owed effect went this time.
enum Performed {
    /// Performed now.
    Now,
    /// Performed before.
    Before,
    /// Another replica is performing it; it decides the row.
    Elsewhere,
    /// The forge refused it: why, and when it is tried again.
    NotYet(String),
}

/// One task's decision, waiting for the commit and the sticky comment.
struct Decided {
    pr: PullRequest,
    task: Task,
    cells: Vec<(String, String)>,
    head: Verdict,
    landed: Option<Landed>,
    /// Effects that could not be performed, and why.
    blocked: Vec<String>,
}

impl Engine {
    /// Opens the engine's effects ledger under `config.data_dir`.
    pub async fn open(forge: Arc<dyn Forge>, config: EngineConfig) -> Result<Engine, EngineError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| EngineError::Other(format!("{}: {e}", config.data_dir.display())))?;
        sqlx::any::install_default_drivers();
        let (pool, prefix) = match &config.db {
            Some(url) => {
                let pool = sqlx::any::AnyPoolOptions::new()
                    .max_connections(4)
                    .connect(url)
                    .await?;
                let forge_name = forge.kind().name().replace('-', "_");
                (pool, format!("engine_{forge_name}_"))
            }
            None => {
                let opts = SqliteConnectOptions::new()
                    .filename(config.data_dir.join("engine.db"))
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
                let pool = sqlx::any::AnyPoolOptions::new()
                    .max_connections(2)
                    // The file and WAL mode come first, on a connection of its own: an Any pool
                    // of SQLite connections is configured by URL only.
                    .connect_with(sqlx::any::AnyConnectOptions::from_url(&{
                        use sqlx::Connection as _;
                        let c = sqlx::SqliteConnection::connect_with(&opts).await?;
                        c.close().await?;
                        opts.to_url_lossy()
                    })?)
                    .await?;
                (pool, String::new())
            }
        };
        for ddl in [
            "CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, done_at TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS effect_claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, claimed_at BIGINT NOT NULL, attempts BIGINT NOT NULL, retry_at BIGINT NOT NULL, last_error TEXT)",
            "CREATE TABLE IF NOT EXISTS checked (key TEXT PRIMARY KEY, done_at TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS claims (repo TEXT NOT NULL, pr BIGINT NOT NULL, task TEXT NOT NULL, PRIMARY KEY (repo, pr))",
            "CREATE TABLE IF NOT EXISTS merges (repo TEXT NOT NULL, pr BIGINT NOT NULL, head TEXT NOT NULL, requested_by TEXT NOT NULL, PRIMARY KEY (repo, pr))",
            "CREATE TABLE IF NOT EXISTS blocked (repo TEXT NOT NULL, task TEXT NOT NULL, previous TEXT NOT NULL, PRIMARY KEY (repo, task))",
            "CREATE TABLE IF NOT EXISTS comments (repo TEXT NOT NULL, id BIGINT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (repo, id))",
            "CREATE TABLE IF NOT EXISTS command_lines (repo TEXT NOT NULL, key TEXT NOT NULL, plan TEXT NOT NULL, done BIGINT NOT NULL, PRIMARY KEY (repo, key))",
            "CREATE TABLE IF NOT EXISTS red_heads (repo TEXT NOT NULL, pr BIGINT NOT NULL, sha TEXT NOT NULL, PRIMARY KEY (repo, pr, sha))",
            "CREATE TABLE IF NOT EXISTS pending_since (repo TEXT NOT NULL, sha TEXT NOT NULL, since BIGINT NOT NULL, PRIMARY KEY (repo, sha))",
            "CREATE TABLE IF NOT EXISTS repos (name TEXT PRIMARY KEY)",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(ledger_sql(ddl, &prefix)))
                .execute(&pool)
                .await?;
        }
        let shared = config.db.is_some();
        let ledger = Ledger::new(pool, prefix, shared, config.clock.clone());
        let names = ledger.repos().await?;
        Ok(Engine {
            forge,
            config,
            ledger,
            known: std::sync::Mutex::new(names.into_iter().collect()),
            shas: Default::default(),
            required: Default::default(),
            defaults: Default::default(),
            permissions: Default::default(),
            locks: Default::default(),
        })
    }

    /// How many effects on issues and pull requests have been performed (each exactly once);
    /// the bot's own commit statuses are not counted.
    pub async fn effects_done(&self) -> Result<i64, EngineError> {
        Ok(sqlx::query_scalar(
            self.q("SELECT COUNT(*) FROM effects WHERE key NOT LIKE '%:checks:%'"),
        )
        .fetch_one(&self.ledger.pool)
        .await?)
    }

    /// Now as RFC 3339, by the engine's clock.
    fn now(&self) -> String {
        ledger::rfc3339(self.ledger.now_ms())
    }

    fn mirror(&self, repo: &RepoRef, branch: &str) -> Result<Mirror, EngineError> {
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
            self.config.git_token.clone(),
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

    /// Runs a comment's commands under the repository's lock.
    pub async fn command(
        &self,
        repo: &RepoRef,
        c: &crate::webhook::event::Comment,
    ) -> Result<Report, EngineError> {
        self.remember(repo).await?;
        let lock = self.lock(repo).await;
        let _held = lock.lock().await;
        self.on_comment(repo, c).await?;
        Ok(Report::default())
    }

    /// Counts the heads of a pull request CI failed on; `Some(count)` once it reaches a
    /// configured `fail_after`.
    async fn failures(
        &self,
        repo: &RepoRef,
        pr: &PullRequest,
        head: &Verdict,
        fail_after: u32,
    ) -> Result<Option<usize>, EngineError> {
        if fail_after == 0 || !matches!(head, Verdict::Red(_)) || pr.state != PrState::Open {
            return Ok(None);
        }
        sqlx::query(
            self.q("INSERT INTO red_heads (repo, pr, sha) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
        )
        .bind(repo.to_string())
        .bind(pr.number as i64)
        .bind(&pr.head_sha)
        .execute(&self.ledger.pool)
        .await?;
        let n: i64 =
            sqlx::query_scalar(self.q("SELECT COUNT(*) FROM red_heads WHERE repo = ? AND pr = ?"))
                .bind(repo.to_string())
                .bind(pr.number as i64)
                .fetch_one(&self.ledger.pool)
                .await?;
        Ok((n >= i64::from(fail_after)).then_some(n as usize))
    }

    /// Turns a merge commit's missing contexts into failures once they have been awaited
    /// longer than `[ci] timeout-mins` (counted from the first reconcile that saw it pending).
    async fn time_out(
        &self,
        repo: &RepoRef,
        l: &mut Landed,
        timeout_mins: f64,
    ) -> Result<(), EngineError> {
        let Verdict::Pending(waiting) = &l.ci else {
            return Ok(());
        };
        if timeout_mins <= 0.0 {
            return Ok(());
        }
        let now = self.ledger.now_ms();
        sqlx::query(self.q(
            "INSERT INTO pending_since (repo, sha, since) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        ))
        .bind(repo.to_string())
        .bind(&l.sha)
        .bind(now)
        .execute(&self.ledger.pool)
        .await?;
        let since: i64 = sqlx::query_scalar(
            self.q("SELECT since FROM pending_since WHERE repo = ? AND sha = ?"),
        )
        .bind(repo.to_string())
        .bind(&l.sha)
        .fetch_one(&self.ledger.pool)
        .await?;
        if (now - since) as f64 >= timeout_mins * 60_000.0 {
            l.ci = Verdict::Red(
                waiting
                    .iter()
                    .map(|c| format!("{c} (no result after {timeout_mins} min)"))
                    .collect(),
            );
        }
        Ok(())
    }

    /// The repository's default branch as its remote `HEAD` names it, kept for five minutes.
    async fn default_branch(&self, repo: &RepoRef, mirror: &Mirror) -> Result<String, EngineError> {
        let key = repo.to_string();
        if let Ok(cache) = self.defaults.lock()
            && let Some((at, b)) = cache.get(&key)
            && at.elapsed() < Duration::from_secs(300)
        {
            return Ok(b.clone());
        }
        let found = tokio::task::block_in_place(|| mirror.default_branch())?;
        let branch = match found {
            Some(b) => b,
            // A remote that does not say (an empty repository): ask the forge.
            None => self.forge.default_branch(repo).await?,
        };
        if let Ok(mut cache) = self.defaults.lock() {
            cache.insert(key, (Instant::now(), branch.clone()));
        }
        Ok(branch)
    }

    /// Reads the policy on a fetched branch.
    fn policy_on(mirror: &Mirror) -> Result<RepoPolicy, EngineError> {
        match mirror.read(POLICY_FILE)? {
            Some(bytes) => RepoPolicy::parse(
                &String::from_utf8_lossy(&bytes),
                std::path::Path::new(POLICY_FILE),
            )
            .map_err(|e| EngineError::Other(e.to_string())),
            None => Ok(RepoPolicy::default()),
        }
    }

    /// Fetches the trunk — `[trunk] branch` of the policy on the default branch, else the
    /// default branch — and reads its policy and task table; `None` without a task table.
    async fn load(&self, repo: &RepoRef) -> Result<Option<Trunk>, EngineError> {
        let probe = self.mirror(repo, "HEAD")?;
        let default = self.default_branch(repo, &probe).await?;
        let mut mirror = self.mirror(repo, &default)?;
        let mut tip = tokio::task::block_in_place(|| mirror.fetch())?;
        let mut policy = tokio::task::block_in_place(|| Self::policy_on(&mirror))?;
        if let Some(configured) = policy.trunk.branch.clone()
            && configured != default
        {
            // The policy that governs is the one on the trunk itself.
            mirror = self.mirror(repo, &configured)?;
            tip = tokio::task::block_in_place(|| mirror.fetch())?;
            policy = tokio::task::block_in_place(|| Self::policy_on(&mirror))?;
            policy.trunk.branch = Some(configured);
        }
        policy.trunk.default_branch = Some(default);
        let tasks_path = crate::policy::path_string(&policy.tasks.path);
        let Some(table_bytes) = tokio::task::block_in_place(|| mirror.read(&tasks_path))? else {
            return Ok(None);
        };
        let table = TaskTable::parse_bytes(&table_bytes)
            .map_err(|e| EngineError::Other(format!("{tasks_path}: {e}")))?;
        let (tasks, _) = crate::tasks::read_tasks(&table);
        Ok(Some(Trunk {
            mirror,
            tip,
            policy,
            tasks_path,
            tasks,
            table,
        }))
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
            sqlx::query(self.q("INSERT INTO repos (name) VALUES (?) ON CONFLICT DO NOTHING"))
                .bind(&key)
                .execute(&self.ledger.pool)
                .await?;
        }
        Ok(())
    }

    /// Reconciles every repository seen so far, by this process or any replica (the periodic
    /// resync).
    pub async fn resync(&self) -> Vec<(String, Result<Report, EngineError>)> {
        let mut repos: BTreeSet<String> = self
            .known
            .lock()
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default();
        match self.ledger.repos().await {
            Ok(names) => repos.extend(names),
            Err(e) => tracing::warn!(error = %e, "cannot list the known repositories"),
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
    ) -> Result<Report, EngineError> {
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
    ) -> Result<Report, EngineError> {
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

    /// Which pull requests to look at: the hinted ones, those whose head or merge commit a
    /// hinted sha is; and every one a live task tracks when there is no hint (the resync) or
    /// a sha this process has not seen.
    fn pulls_to_read(
        &self,
        repo: &RepoRef,
        t: &Trunk,
        pulls: &[u64],
        shas: &[String],
    ) -> BTreeSet<u64> {
        let tasks = &t.tasks;
        let mut numbers: BTreeSet<u64> = pulls.iter().copied().collect();
        let mut unknown = Vec::new();
        if let Ok(seen) = self.shas.lock() {
            for sha in shas {
                match seen.get(&(repo.to_string(), sha.clone())) {
                    Some(n) => {
                        numbers.insert(*n);
                    }
                    None => unknown.push(sha),
                }
            }
        }
        // A squash commit names its pull request (`Title (#7)`, GitLab's `See merge request
        // group/project!7`): a CI event or push on it finds the pull request even when every
        // delivery about the pull request itself was lost.
        let unknown_sha = !unknown.is_empty();
        for sha in unknown {
            if let Some(n) = tokio::task::block_in_place(|| t.mirror.message(sha))
                .as_deref()
                .and_then(pull_named_by)
            {
                numbers.insert(n);
            }
        }
        if (pulls.is_empty() && shas.is_empty()) || unknown_sha {
            for t in tasks {
                let live = !t.is_done()
                    || shas
                        .iter()
                        .any(|s| t.notes.contains(s.get(..7).unwrap_or(s)));
                if live {
                    numbers.extend(pr_numbers(&t.notes));
                }
            }
        }
        numbers
    }

    async fn reconcile_once(
        &self,
        repo: &RepoRef,
        pulls: &[u64],
        shas: &[String],
    ) -> Result<Report, EngineError> {
        let Some(mut t) = self.load(repo).await? else {
            return Ok(Report::default());
        };
        let mut numbers = self.pulls_to_read(repo, &t, pulls, shas);
        if pulls.is_empty() {
            // A push (or the resync): a revert on the trunk undoes a task that is done.
            let reverted = tokio::task::block_in_place(|| reverted_on_trunk(&t.mirror, t.tip));
            for task in &t.tasks {
                if reverted
                    .iter()
                    .any(|sha| task.notes.contains(sha.get(..7).unwrap_or(sha)))
                {
                    numbers.extend(pr_numbers(&task.notes));
                }
            }
        }
        if pulls.is_empty() && shas.is_empty() {
            // The resync also finds open pull requests of tasks whose deliveries were all lost.
            for pr in self.forge.open_pulls(repo).await? {
                let linked = match self.claimed(repo, pr.number).await? {
                    Some(id) => !id.is_empty(),
                    None => link::task_for_pull(&t.tasks, &pr).is_some_and(|x| !x.is_done()),
                };
                if linked {
                    numbers.insert(pr.number);
                }
            }
        }
        let bot = self.forge.me().await?;
        let required = self.required_contexts(repo, &t.policy).await;
        t.policy.ci.required = required.contexts.clone();
        // Pull requests first, the trunk's commits after: a merge that happens while this
        // reconcile runs is then either not seen at all, or seen with its commit fetched.
        let mut prs = Vec::new();
        for n in numbers {
            match self.forge.pull_request(repo, n).await {
                Ok(pr) => prs.push(pr),
                Err(e) if e.status() == Some(404) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let unfetched = prs.iter().any(|p| {
            p.state == PrState::Merged
                && p.merge_commit_sha
                    .as_ref()
                    .is_some_and(|sha| !t.mirror.has_commit(sha))
        });
        if unfetched {
            t.tip = tokio::task::block_in_place(|| t.mirror.fetch())?;
        }
        let now = self.now();
        let mut changes: Vec<RowChange> = Vec::new();
        let mut summaries = Vec::new();
        let mut learnings = Vec::new();
        let mut report = Report::default();
        let mut done_now: Vec<String> = Vec::new();
        let mut decided = Vec::new();
        for pr in prs {
            let n = pr.number;
            if let Ok(mut seen) = self.shas.lock() {
                for sha in std::iter::once(&pr.head_sha).chain(pr.merge_commit_sha.as_ref()) {
                    seen.insert((repo.to_string(), sha.clone()), n);
                }
            }
            let task = match self.claimed(repo, n).await? {
                Some(id) => t.tasks.iter().find(|x| x.id == id && !id.is_empty()),
                None => link::task_for_pull(&t.tasks, &pr),
            };
            if pr.state == PrState::Open {
                self.pending_merge(repo, &t, &pr, &bot.login).await?;
                self.post_checks(repo, &t, &pr, task.map(|x| x.id.as_str()))
                    .await?;
            }
            let Some(task) = task else {
                continue;
            };
            report.pulls.push(n);
            let head = decide::verdict(
                &self.forge.ci_results(repo, &pr.head_sha).await?,
                &t.policy.ci,
                &bot.login,
            );
            let (mut landed, message) = match (&pr.state, &pr.merge_commit_sha) {
                (PrState::Merged, Some(sha)) if pr.base_ref == t.name() => {
                    match tokio::task::block_in_place(|| landed_facts(&t.mirror, t.tip, sha)) {
                        Some(f) => {
                            let ci = decide::verdict(
                                &self.forge.ci_results(repo, sha).await?,
                                &t.policy.ci,
                                &bot.login,
                            );
                            (
                                Some(Landed {
                                    sha: sha.clone(),
                                    parents: f.parents,
                                    reverted_by: f.reverted_by,
                                    ci,
                                }),
                                f.message,
                            )
                        }
                        None => (None, String::new()),
                    }
                }
                _ => (None, String::new()),
            };
            let gave_up = self
                .failures(repo, &pr, &head, t.policy.ci.fail_after)
                .await?;
            if let Some(l) = landed.as_mut() {
                self.time_out(repo, l, t.policy.ci.timeout_mins).await?;
            }
            let squash = landed.as_ref().map(|l| l.sha.as_str());
            let issues = self.issue_facts(repo, task, &pr, &message, squash).await?;
            let used = decide::used_trailer(&message).or_else(|| decide::used_trailer(&pr.body));
            let d = decide::decide(&decide::Facts {
                task,
                pr: &pr,
                trunk: t.name(),
                head: &head,
                landed: landed.as_ref(),
                issues: &issues,
                gave_up,
                used,
                now: &now,
            });
            let mut blocked = Vec::new();
            let mut elsewhere = false;
            for (key, effect) in &d.effects {
                match self.perform(repo, n, key, effect).await? {
                    Performed::Now => report.effects.push(format!("{repo}:{key}")),
                    Performed::Before => {}
                    Performed::Elsewhere => elsewhere = true,
                    Performed::NotYet(why) => blocked.push(why),
                }
            }
            let mut cells = d.cells;
            let mut summary = d.summary;
            let mut learning = d.learning;
            if d.gated && elsewhere {
                // The replica performing the effects writes the row.
                cells.clear();
            } else if d.gated && !blocked.is_empty() {
                // Not done while an issue it closes is still open: say why instead.
                let note = format!(
                    "PR #{n}: CI green on the trunk, but not done: {}",
                    blocked.join("; ")
                );
                cells = if task.notes == note {
                    Vec::new()
                } else {
                    vec![("notes".into(), note)]
                };
                summary = None;
                learning = None;
            }
            cells.retain(|(c, _)| t.has_column(c));
            if summary.is_some() && cells.iter().any(|(c, v)| c == "status" && v == "done") {
                done_now.push(task.id.clone());
            }
            if !cells.is_empty() {
                summaries.extend(summary);
                if let Some(entry) = learning {
                    learnings.push(crate::git::Learning {
                        path: crate::policy::path_string(&t.policy.tasks.learnings),
                        entry,
                    });
                }
                changes.push(RowChange {
                    id: task.id.clone(),
                    cells: cells.clone(),
                    expect: t.row_cells(task),
                });
            }
            // The sticky comment is refreshed where something changed or an event pointed.
            if !cells.is_empty()
                || !d.effects.is_empty()
                || !blocked.is_empty()
                || pulls.contains(&n)
            {
                decided.push(Decided {
                    pr,
                    task: task.clone(),
                    cells,
                    head,
                    landed,
                    blocked,
                });
            }
        }
        if !changes.is_empty() {
            let message = if summaries.is_empty() {
                "chore(tasks): update task rows".to_owned()
            } else {
                format!("chore(tasks): {}", summaries.join("; "))
            };
            let who = Identity {
                name: t.policy.bot.name.clone(),
                email: t.policy.bot.email.clone(),
            };
            let attempts = self.config.push_attempts;
            report.commit = tokio::task::block_in_place(|| {
                t.mirror.update(
                    &t.tasks_path,
                    &changes,
                    &learnings,
                    &message,
                    &who,
                    attempts,
                )
            })?;
        }
        for x in decided {
            let body = sticky(&Sticky {
                task: &x.task,
                cells: &x.cells,
                pr: &x.pr,
                head: &x.head,
                landed: x.landed.as_ref(),
                tasks: &t.tasks,
                done_now: &done_now,
                required: &required,
                blocked: &x.blocked,
                trunk: t.name(),
            });
            self.forge
                .upsert_comment(repo, Thread::Pull(x.pr.number), "task", &body)
                .await?;
        }
        Ok(report)
    }

    /// The issues a task's completion closes, with their state read where a decision needs it
    /// (the pull request merged onto the trunk), and which of them the forge's own keywords
    /// name (in the pull request or its squash commit).
    async fn issue_facts(
        &self,
        repo: &RepoRef,
        task: &Task,
        pr: &PullRequest,
        squash_message: &str,
        landed: Option<&str>,
    ) -> Result<Vec<IssueFact>, EngineError> {
        let kind = self.forge.kind();
        let mut forge_closes: Vec<u64> = link::mentions(&pr.title, kind)
            .into_iter()
            .chain(link::mentions(&pr.body, kind))
            .chain(link::mentions(squash_message, kind))
            .filter(|m| m.forge_closes)
            .map(|m| m.issue)
            .collect();
        forge_closes.dedup();
        let mut out = Vec::new();
        for number in link::issues_for(task, pr, kind) {
            let (mut open, mut closes, mut reopens) = (None, 0, 0);
            if let Some(sha) = landed {
                open = match self.forge.issue_open(repo, number).await {
                    Ok(open) => Some(open),
                    // An issue that is gone (or a pull request number) has nothing to close.
                    Err(e) if e.status() == Some(404) => continue,
                    Err(e) => return Err(e.into()),
                };
                let rounds = |what: &str| format!("{repo}:{what}:{number}:{sha}");
                closes = self.ledger.rounds_done(&rounds("close")).await?;
                reopens = self.ledger.rounds_done(&rounds("reopen")).await?
                    + self.ledger.rounds_done(&rounds("reopen-early")).await?;
            }
            out.push(IssueFact {
                number,
                open,
                forge_closes: forge_closes.contains(&number),
                closes,
                reopens,
            });
        }
        Ok(out)
    }

    /// The contexts green waits for: `[ci] required` of the policy, else what the forge
    /// requires on the trunk (branch protection, GitHub rulesets; the bot's own excluded),
    /// kept for five minutes; else every context reported.
    async fn required_contexts(&self, repo: &RepoRef, policy: &RepoPolicy) -> Required {
        if !policy.ci.required.is_empty() {
            return Required {
                contexts: policy.ci.required.clone(),
                source: "`[ci] required` of .trunkwarden.toml".into(),
            };
        }
        let trunk = policy.trunk.name();
        let key = format!("{repo}:{trunk}");
        if let Ok(cache) = self.required.lock()
            && let Some((at, r)) = cache.get(&key)
            && at.elapsed() < Duration::from_secs(300)
        {
            return r.clone();
        }
        let required = match self.forge.required_contexts(repo, trunk).await {
            Ok(list) => {
                let list: Vec<_> = list
                    .into_iter()
                    .filter(|r| !r.context.starts_with("trunkwarden/"))
                    .collect();
                let mut sources: Vec<&str> = list.iter().map(|r| r.source).collect();
                sources.dedup();
                Required {
                    contexts: list.into_iter().map(|r| r.context).collect(),
                    source: if sources.is_empty() {
                        "every context reported: the forge requires none on the trunk".into()
                    } else {
                        format!("the forge's {}", sources.join(" and "))
                    },
                }
            }
            Err(e) => {
                tracing::debug!(repo = %repo, error = %e, "required contexts not readable; every reported context counts");
                Required {
                    contexts: Vec::new(),
                    source: format!("every context reported: the forge did not say ({e})"),
                }
            }
        };
        if let Ok(mut cache) = self.required.lock() {
            cache.insert(key, (Instant::now(), required.clone()));
        }
        required
    }

    /// Posts `trunkwarden/policy` and `trunkwarden/secrets` on a pull request's head, once
    /// per head commit and pull request text (the text may name issues the forge would close
    /// at merge).
    async fn post_checks(
        &self,
        repo: &RepoRef,
        t: &Trunk,
        pr: &PullRequest,
        task: Option<&str>,
    ) -> Result<(), EngineError> {
        let key = checks_key(repo, pr);
        if !matches!(self.ledger.claim(&key).await?, Claim::Mine) {
            return Ok(());
        }
        let kind = self.forge.kind();
        let checks = tokio::task::block_in_place(|| -> Result<Vec<checks::Check>, EngineError> {
            let head = t.mirror.fetch_ref(
                &format!("refs/heads/{}", pr.head_ref),
                &format!("pr/{}", pr.number),
            )?;
            let git = t.mirror.repository()?;
            checks::run(
                &git,
                &t.policy,
                t.tip,
                head,
                &checks::PullFacts {
                    branch: &pr.head_ref,
                    author: &pr.author.login,
                    task,
                    text: &format!("{}\n\n{}", pr.title, pr.body),
                    forge: kind,
                },
            )
            .map_err(EngineError::Other)
        });
        let checks = match checks {
            Ok(c) => c,
            Err(e) => {
                self.ledger.release(&key).await?;
                return Err(e);
            }
        };
        for c in checks {
            let status = crate::forge::StatusSpec {
                context: c.context.to_owned(),
                state: if c.passed {
                    crate::forge::CiState::Success
                } else {
                    crate::forge::CiState::Failure
                },
                description: c.description,
                target_url: None,
            };
            if let Err(e) = self.forge.set_status(repo, &pr.head_sha, &status).await {
                self.ledger.release(&key).await?;
                return Err(e.into());
            }
        }
        self.ledger.done(&key).await?;
        Ok(())
    }

    /// A ledger statement as this engine's database takes it: tables carry the engine's prefix,
    /// `?` placeholders become `$1, $2, …` (which SQLite reads too).
    fn q(&self, sql: &str) -> sqlx::AssertSqlSafe<String> {
        self.ledger.q(sql)
    }

    /// Performs one effect unless it was performed before, claiming its key first so no other
    /// replica performs it too. A refusal by the forge is backed off and reported, not retried
    /// at every delivery.
    async fn perform(
        &self,
        repo: &RepoRef,
        pull: u64,
        key: &str,
        effect: &Effect,
    ) -> Result<Performed, EngineError> {
        let key = format!("{repo}:{key}");
        match self.ledger.claim(&key).await? {
            Claim::Done => return Ok(Performed::Before),
            Claim::Busy => return Ok(Performed::Elsewhere),
            Claim::Deferred { retry_at, error } => {
                return Ok(Performed::NotYet(format!(
                    "{error} (next attempt {})",
                    ledger::rfc3339(retry_at)
                )));
            }
            Claim::Mine => {}
        }
        match self.apply(repo, pull, &key, effect).await {
            Ok(()) => {
                self.ledger.done(&key).await?;
                tracing::info!(effect = key, "effect performed");
                Ok(Performed::Now)
            }
            Err(e) if e.is_permanent() => {
                let what = match effect {
                    Effect::CloseIssue { issue, .. } => format!("cannot close #{issue}: {e}"),
                    Effect::ReopenIssue { issue, .. } => format!("cannot reopen #{issue}: {e}"),
                    Effect::PullComment { .. } => format!("cannot comment: {e}"),
                };
                let retry_at = self.ledger.refused(&key, &what).await?;
                tracing::warn!(effect = key, error = %e, retry_at = %ledger::rfc3339(retry_at), "the forge refused an effect; backing off");
                Ok(Performed::NotYet(what))
            }
            Err(e) => {
                self.ledger.release(&key).await?;
                Err(e.into())
            }
        }
    }

    /// The forge calls of one effect. Each is safe to repeat after a crash: the state is read
    /// before it is changed, and comments are found again by their marker.
    async fn apply(
        &self,
        repo: &RepoRef,
        pull: u64,
        key: &str,
        effect: &Effect,
    ) -> Result<(), ForgeError> {
        match effect {
            Effect::CloseIssue {
                issue,
                open,
                comment,
            } => {
                if *open {
                    self.forge.set_issue_open(repo, *issue, false).await?;
                }
                self.forge
                    .upsert_comment(repo, Thread::Issue(*issue), &format!("done-{key}"), comment)
                    .await?;
            }
            Effect::ReopenIssue { issue, comment } => {
                self.forge.set_issue_open(repo, *issue, true).await?;
                self.forge
                    .upsert_comment(
                        repo,
                        Thread::Issue(*issue),
                        &format!("reopen-{key}"),
                        comment,
                    )
                    .await?;
            }
            Effect::PullComment { marker, body } => {
                self.forge
                    .upsert_comment(repo, Thread::Pull(pull), marker, body)
                    .await?;
            }
        }
        Ok(())
    }
}

/// The once-only key of the bot's checks on a pull request: its head and its text.
fn checks_key(repo: &RepoRef, pr: &PullRequest) -> String {
    use sha2::Digest;
    let text = sha2::Sha256::digest(format!("{}\n{}", pr.title, pr.body).as_bytes());
    format!("{repo}:checks:{}:{}", pr.head_sha, &hex::encode(text)[..16])
}

/// The pull request a squash or merge commit's message names: `… (#7)` at the end of its
/// subject (GitHub, Gitea, Forgejo), or `See merge request group/project!7` (GitLab).
fn pull_named_by(message: &str) -> Option<u64> {
    let subject = message.lines().next().unwrap_or("").trim_end();
    let from_subject = subject
        .strip_suffix(')')
        .and_then(|s| s.rsplit_once("(#"))
        .and_then(|(_, n)| n.parse().ok());
    from_subject.or_else(|| {
        message.lines().find_map(|l| {
            let rest = l.trim().strip_prefix("See merge request ")?;
            rest.rsplit_once('!')?.1.trim_end_matches('.').parse().ok()
        })
    })
}

/// The commits the last few hundred commits of the trunk revert (`This reverts commit X`).
fn reverted_on_trunk(mirror: &Mirror, tip: git2::Oid) -> Vec<String> {
    const DEPTH: usize = 300;
    let Ok(repo) = mirror.repository() else {
        return Vec::new();
    };
    let Ok(mut walk) = repo.revwalk() else {
        return Vec::new();
    };
    if walk.push(tip).is_err() {
        return Vec::new();
    }
    walk.simplify_first_parent().ok();
    let needle = b"This reverts commit ";
    walk.flatten()
        .take(DEPTH)
        .filter_map(|id| repo.find_commit(id).ok())
        .filter_map(|c| {
            let m = c.message_bytes();
            let at = m.windows(needle.len()).position(|w| w == needle)?;
            let hex = m.get(at + needle.len()..at + needle.len() + 40)?;
            std::str::from_utf8(hex)
                .ok()
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_owned)
        })
        .collect()
}

/// What the trunk says of a merge commit.
struct LandedFacts {
    parents: usize,
    /// A later trunk commit that reverts it.
    reverted_by: Option<String>,
    message: String,
}

/// Parents and message of a merge commit on the trunk, and a later trunk commit that reverts
/// it; `None` when the commit is not on the trunk.
fn landed_facts(mirror: &Mirror, tip: git2::Oid, sha: &str) -> Option<LandedFacts> {
    let repo = mirror.repository().ok()?;
    let oid = git2::Oid::from_str(sha).ok()?;
    let commit = repo.find_commit(oid).ok()?;
    if oid != tip && !repo.graph_descendant_of(tip, oid).ok()? {
        return None;
    }
    let mut walk = repo.revwalk().ok()?;
    walk.push(tip).ok()?;
    walk.hide(oid).ok()?;
    let needle = format!("This reverts commit {sha}");
    let reverted_by = walk
        .flatten()
        .find(|id| {
            repo.find_commit(*id).is_ok_and(|c| {
                c.message_bytes()
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes())
            })
        })
        .map(|id| id.to_string());
    Some(LandedFacts {
        parents: commit.parent_count(),
        reverted_by,
        message: String::from_utf8_lossy(commit.message_bytes()).into_owned(),
    })
}

/// What the sticky comment on a task's pull request shows.
struct Sticky<'a> {
    task: &'a Task,
    /// The cells this reconcile set.
    cells: &'a [(String, String)],
    pr: &'a PullRequest,
    head: &'a Verdict,
    landed: Option<&'a Landed>,
    tasks: &'a [Task],
    done_now: &'a [String],
    required: &'a Required,
    /// Effects the forge refused (or another replica holds), with why.
    blocked: &'a [String],
    trunk: &'a str,
}

/// The sticky comment on a task's pull request.
fn sticky(s: &Sticky<'_>) -> String {
    let get = |k: &str, old: String| {
        s.cells
            .iter()
            .find(|(c, _)| c == k)
            .map(|(_, v)| v.clone())
            .unwrap_or(old)
    };
    let task = s.task;
    let status = get(
        "status",
        task.status.map_or("?".into(), |s| s.as_str().to_owned()),
    );
    let notes = get("notes", task.notes.clone());
    let mut out = format!(
        "**trunkwarden** · task `{}` is **{status}**\n\n> {notes}\n\n",
        task.id
    );
    out.push_str(&format!(
        "- CI on the head `{}`: {}\n",
        decide::short(&s.pr.head_sha),
        s.head
    ));
    if let Some(l) = s.landed {
        out.push_str(&format!(
            "- CI on the merge commit `{}`: {}\n",
            decide::short(&l.sha),
            l.ci
        ));
    }
    let waits = if s.required.contexts.is_empty() {
        String::new()
    } else {
        format!("{}, from ", s.required.contexts.join(", "))
    };
    out.push_str(&format!("- Green means: {waits}{}\n", s.required.source));
    let missing = match (s.pr.state, s.landed.map(|l| &l.ci)) {
        _ if status == Status::Done.as_str() => None,
        (PrState::Open, _) => Some(format!(
            "squash-merge into `{}`, then CI green on the merge commit",
            s.trunk
        )),
        (PrState::Merged, Some(Verdict::Pending(_))) => Some("CI green on the merge commit".into()),
        (PrState::Merged, Some(Verdict::Red(_))) => {
            Some("a fix: CI on the merge commit failed".into())
        }
        (PrState::Merged, None) => Some(format!("the merge commit on `{}`", s.trunk)),
        (PrState::Closed, _) => Some("a merged pull request".into()),
        _ => None,
    };
    if let Some(m) = missing {
        out.push_str(&format!("- Missing before done: {m}\n"));
    }
    for b in s.blocked {
        out.push_str(&format!("- Not done yet: {b}\n"));
    }
    if status == Status::Done.as_str() {
        let done: BTreeSet<&str> = s
            .tasks
            .iter()
            .filter(|t| t.is_done())
            .map(|t| t.id.as_str())
            .chain(s.done_now.iter().map(String::as_str))
            .collect();
        let ready: Vec<&str> = s
            .tasks
            .iter()
            .filter(|t| t.status == Some(Status::NotStarted) && t.depends_on.contains(&task.id))
            .filter(|t| t.depends_on.iter().all(|d| done.contains(d.as_str())))
            .map(|t| t.id.as_str())
            .collect();
        if !ready.is_empty() {
            out.push_str(&format!("- Ready to start now: {}\n", ready.join(", ")));
        }
    }
    out.push_str(&format!(
        "\n<sub>Write `Refs #N` for the task's issues: trunkwarden closes them once CI on the squash commit on `{}` is green. A closing keyword (`Closes #N`) would let the forge close them at merge, before CI has run.</sub>\n",
        s.trunk
    ));
    out
}

/// Runs the engine for deliveries from the queue.
impl Handler for Engine {
    async fn handle(&self, _d: &Delivery, event: &Event) -> Result<(), HandlerError> {
        let Some(repo) = event.repo().and_then(|r| RepoRef::parse(&r.full_name)) else {
            return Ok(());
        };
        let (pulls, shas): (Vec<u64>, Vec<String>) = match event {
            Event::PullRequest(p) => (vec![p.number], vec![]),
            Event::Comment(c) if c.on_pull_request => (vec![c.number], vec![]),
            Event::CiStatus(c) => (vec![], vec![c.sha.clone()]),
            Event::Push(p) => (vec![], vec![p.after.clone()]),
            _ => (vec![], vec![]),
        };
        let result = match event {
            Event::Comment(c) => self.command(&repo, c).await,
            _ => self.reconcile(&repo, &pulls, &shas).await,
        };
        match result {
            Ok(r) => {
                tracing::info!(repo = %repo, pulls = ?r.pulls, commit = ?r.commit, effects = r.effects.len(), "reconciled");
                Ok(())
            }
            Err(EngineError::Forge(e)) if e.is_permanent() => {
                Err(HandlerError::Permanent(e.to_string()))
            }
            Err(e) => Err(HandlerError::Transient(e.to_string())),
        }
    }

    async fn tick(&self) {
        for (repo, result) in self.resync().await {
            if let Err(e) = result {
                tracing::warn!(forge = %self.forge.kind(), repo, error = %e, "resync failed");
            }
        }
    }
}

/// Routes each delivery to the engine of its forge; deliveries from a forge the bot has no
/// token for are recorded only.
#[derive(Default)]
pub struct Engines {
    by_forge: HashMap<String, Arc<Engine>>,
}

impl Engines {
    /// An engine per forge whose `TRUNKWARDEN_<FORGE>_TOKEN` is set. Clone URLs come from
    /// `TRUNKWARDEN_<FORGE>_CLONE_URL` (`{repo}` stands for `owner/name`), by default
    /// `https://github.com/{repo}.git` or the forge URL followed by `/{repo}.git`.
    pub async fn from_env(
        data_dir: &std::path::Path,
        db: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Engines, String> {
        use crate::forge::Kind;
        let mut by_forge = HashMap::new();
        for kind in [Kind::Github, Kind::Gitea, Kind::Forgejo, Kind::Gitlab] {
            let upper = kind.name().to_ascii_uppercase();
            let token = crate::forge::Token::lookup(&format!("TRUNKWARDEN_{upper}_TOKEN"), env)?;
            if token.is_none() {
                continue;
            }
            let forge = crate::forge::from_env(kind, env)?;
            let clone_var = format!("TRUNKWARDEN_{upper}_CLONE_URL");
            let template = match env(&clone_var).filter(|t| !t.is_empty()) {
                Some(t) => t,
                None => {
                    let api = env(&format!("TRUNKWARDEN_{upper}_URL")).unwrap_or_default();
                    default_clone_template(kind, &api)
                }
            };
            let config = EngineConfig {
                data_dir: data_dir.join("engine").join(kind.name()),
                db: db.map(str::to_owned),
                clone_url: Box::new(move |r| template.replace("{repo}", &r.to_string())),
                git_token: token,
                push_attempts: 16,
                clock: Arc::new(SystemClock),
            };
            let engine = Engine::open(forge, config)
                .await
                .map_err(|e| e.to_string())?;
            by_forge.insert(kind.name().to_owned(), Arc::new(engine));
        }
        Ok(Engines { by_forge })
    }

    /// The forges the bot acts on.
    pub fn forges(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_forge.keys().map(String::as_str).collect();
        v.sort();
        v
    }
}

impl Handler for Engines {
    async fn handle(&self, d: &Delivery, event: &Event) -> Result<(), HandlerError> {
        match self.by_forge.get(&d.forge) {
            Some(engine) => engine.handle(d, event).await,
            None => {
                tracing::info!(delivery = d.id, forge = %d.forge, "{} (no token for this forge: recorded only)", event.summary());
                Ok(())
            }
        }
    }

    /// The periodic resync of every forge's repositories; the dispatcher runs it only while
    /// it holds the dispatch lock, so standby replicas never act.
    async fn tick(&self) {
        for engine in self.by_forge.values() {
            engine.tick().await;
        }
    }
}

/// The clone URL template of a forge whose API is at `api` (empty: the default):
/// `https://github.com/{repo}.git`, a GitHub Enterprise Server's host for its
/// `https://ghe.example/api/v3`, else the forge URL followed by `/{repo}.git`.
fn default_clone_template(kind: crate::forge::Kind, api: &str) -> String {
    let api = api.trim_end_matches('/');
    if kind == crate::forge::Kind::Github {
        let host = api
            .strip_suffix("/api/v3")
            .filter(|_| !api.is_empty())
            .unwrap_or("https://github.com");
        let host = if host == "https://api.github.com" {
            "https://github.com"
        } else {
            host
        };
        return format!("{host}/{{repo}}.git");
    }
    format!("{api}/{{repo}}.git")
}

#[cfg(test)]
mod tests {
    use super::{default_clone_template, ledger_sql};
    use crate::forge::Kind;

    #[test]
    fn squash_commits_name_their_pull_request() {
        use super::pull_named_by;
        assert_eq!(pull_named_by("feat(T-1): check (#7)\n\nbody"), Some(7));
        assert_eq!(
            pull_named_by("Merge branch 'x' into 'main'\n\nSee merge request acme/app!12"),
            Some(12)
        );
        assert_eq!(pull_named_by("fix: refs #7 here"), None);
        assert_eq!(pull_named_by("fix: (#x)"), None);
    }

    #[test]
    fn clone_urls_follow_the_api_url() {
        assert_eq!(
            default_clone_template(Kind::Github, ""),
            "https://github.com/{repo}.git"
        );
        assert_eq!(
            default_clone_template(Kind::Github, "https://api.github.com"),
            "https://github.com/{repo}.git"
        );
        assert_eq!(
            default_clone_template(Kind::Github, "https://ghe.example/api/v3/"),
            "https://ghe.example/{repo}.git"
        );
        assert_eq!(
            default_clone_template(Kind::Gitea, "https://git.example/"),
            "https://git.example/{repo}.git"
        );
    }

    #[test]
    fn ledger_statements_get_prefixes_and_numbered_placeholders() {
        let sql = "INSERT INTO claims (repo, pr, task) VALUES (?, ?, ?) ON CONFLICT (repo, pr) DO UPDATE SET task = excluded.task";
        assert_eq!(
            ledger_sql(sql, "engine_github_"),
            "INSERT INTO engine_github_claims (repo, pr, task) VALUES ($1, $2, $3) ON CONFLICT (repo, pr) DO UPDATE SET task = excluded.task"
        );
        assert_eq!(
            ledger_sql("SELECT name FROM repos WHERE name = ?", ""),
            "SELECT name FROM repos WHERE name = $1"
        );
        assert_eq!(
            ledger_sql("SELECT repo FROM red_heads", "p_"),
            "SELECT repo FROM p_red_heads"
        );
    }
}
