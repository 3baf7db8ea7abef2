//! The task engine: reads the truth from git and the forge, decides every linked task's row
//! with a pure function, performs the effects it owes the forge exactly once, and commits the
//! task table back — one commit per reconcile, none when nothing changed.
//!
//! An event only hints at what to look at; the same reconcile runs on a timer, so a missed
//! or reordered delivery converges to the same state.

pub mod checks;
mod commands;
pub mod decide;
pub mod link;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use sqlx::ConnectOptions as _;
use sqlx::sqlite::SqliteConnectOptions;

use crate::config::{POLICY_FILE, RepoPolicy};
use crate::forge::{Forge, ForgeError, PrState, RepoRef, Thread};
use crate::git::{CommitError, Identity, Mirror, RowChange};
use crate::queue::Delivery;
use crate::queue::worker::{Handler, HandlerError};
use crate::tasks::{Status, Task, TaskTable};
use crate::webhook::Event;
use decide::{Effect, Landed, Verdict};

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
    columns: Vec<String>,
}

/// The engine's two once-only records: effects on the forge, and head commits checked.
#[derive(Debug, Clone, Copy)]
enum Ledger {
    Effects,
    Checked,
}

impl Ledger {
    fn name(self) -> &'static str {
        match self {
            Ledger::Effects => "effects",
            Ledger::Checked => "checked",
        }
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
}

/// What a reconcile looked at and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub pulls: Vec<u64>,
    pub commit: Option<String>,
    pub effects: Vec<String>,
}

/// The engine for the repositories of one forge.
pub struct Engine {
    forge: Arc<dyn Forge>,
    config: EngineConfig,
    effects: sqlx::AnyPool,
    /// Table-name prefix: per forge on a shared PostgreSQL, none in a forge's own SQLite file.
    prefix: String,
    /// Repositories seen, for the periodic resync.
    known: std::sync::Mutex<BTreeSet<String>>,
    /// Head and merge commits seen, to the pull request they belong to: a CI event names only
    /// a sha.
    shas: std::sync::Mutex<HashMap<(String, String), u64>>,
    /// Required contexts from branch protection, per repository, with when they were read.
    protection: std::sync::Mutex<HashMap<String, (std::time::Instant, Vec<String>)>>,
    /// Permissions by (repository, user id), with when they were read.
    permissions:
        std::sync::Mutex<HashMap<(String, u64), (std::time::Instant, crate::forge::Permission)>>,
    /// One reconcile per repository at a time within this process.
    locks: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The engine's tables, which `ledger_sql` prefixes.
const TABLES: [&str; 9] = [
    "effects",
    "checked",
    "claims",
    "merges",
    "blocked",
    "comments",
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

fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
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

impl Engine {
    /// Opens the engine's effects ledger under `config.data_dir`.
    pub async fn open(forge: Arc<dyn Forge>, config: EngineConfig) -> Result<Engine, EngineError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| EngineError::Other(format!("{}: {e}", config.data_dir.display())))?;
        sqlx::any::install_default_drivers();
        let (effects, prefix) = match &config.db {
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
            "CREATE TABLE IF NOT EXISTS checked (key TEXT PRIMARY KEY, done_at TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS claims (repo TEXT NOT NULL, pr BIGINT NOT NULL, task TEXT NOT NULL, PRIMARY KEY (repo, pr))",
            "CREATE TABLE IF NOT EXISTS merges (repo TEXT NOT NULL, pr BIGINT NOT NULL, head TEXT NOT NULL, requested_by TEXT NOT NULL, PRIMARY KEY (repo, pr))",
            "CREATE TABLE IF NOT EXISTS blocked (repo TEXT NOT NULL, task TEXT NOT NULL, previous TEXT NOT NULL, PRIMARY KEY (repo, task))",
            "CREATE TABLE IF NOT EXISTS comments (repo TEXT NOT NULL, id BIGINT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (repo, id))",
            "CREATE TABLE IF NOT EXISTS red_heads (repo TEXT NOT NULL, pr BIGINT NOT NULL, sha TEXT NOT NULL, PRIMARY KEY (repo, pr, sha))",
            "CREATE TABLE IF NOT EXISTS pending_since (repo TEXT NOT NULL, sha TEXT NOT NULL, since BIGINT NOT NULL, PRIMARY KEY (repo, sha))",
            "CREATE TABLE IF NOT EXISTS repos (name TEXT PRIMARY KEY)",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(ledger_sql(ddl, &prefix)))
                .execute(&effects)
                .await?;
        }
        let names: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(ledger_sql(
            "SELECT name FROM repos",
            &prefix,
        )))
        .fetch_all(&effects)
        .await?;
        Ok(Engine {
            forge,
            config,
            effects,
            prefix,
            known: std::sync::Mutex::new(names.into_iter().collect()),
            shas: Default::default(),
            protection: Default::default(),
            permissions: Default::default(),
            locks: Default::default(),
        })
    }

    /// How many effects have been performed (each exactly once).
    pub async fn effects_done(&self) -> Result<i64, EngineError> {
        Ok(sqlx::query_scalar(self.q("SELECT COUNT(*) FROM effects"))
            .fetch_one(&self.effects)
            .await?)
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

    /// Runs a comment's commands under the repository's lock.
    pub async fn command(
        &self,
        repo: &RepoRef,
        c: &crate::webhook::event::Comment,
    ) -> Result<Report, EngineError> {
        let lock = self
            .locks
            .lock()
            .await
            .entry(repo.to_string())
            .or_default()
            .clone();
        let _held = lock.lock().await;
        self.on_comment(repo, c).await?;
        Ok(Report::default())
    }

    /// Counts the heads of a pull request CI failed on; `Some(count)` once it reaches a
    /// configured `fail_after`.
    async fn failures(
        &self,
        repo: &RepoRef,
        pr: &crate::forge::PullRequest,
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
        .execute(&self.effects)
        .await?;
        let n: i64 =
            sqlx::query_scalar(self.q("SELECT COUNT(*) FROM red_heads WHERE repo = ? AND pr = ?"))
                .bind(repo.to_string())
                .bind(pr.number as i64)
                .fetch_one(&self.effects)
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
        let now = chrono::Utc::now().timestamp_millis();
        sqlx::query(self.q(
            "INSERT INTO pending_since (repo, sha, since) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        ))
        .bind(repo.to_string())
        .bind(&l.sha)
        .bind(now)
        .execute(&self.effects)
        .await?;
        let since: i64 = sqlx::query_scalar(
            self.q("SELECT since FROM pending_since WHERE repo = ? AND sha = ?"),
        )
        .bind(repo.to_string())
        .bind(&l.sha)
        .fetch_one(&self.effects)
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

    /// Fetches the trunk and reads its policy and task table; `None` without a task table.
    async fn load(&self, repo: &RepoRef, trunk: &str) -> Result<Option<Trunk>, EngineError> {
        let mirror = self.mirror(repo, trunk)?;
        let tip = tokio::task::block_in_place(|| mirror.fetch())?;
        let policy = match tokio::task::block_in_place(|| mirror.read(POLICY_FILE))? {
            Some(bytes) => RepoPolicy::parse(
                &String::from_utf8_lossy(&bytes),
                std::path::Path::new(POLICY_FILE),
            )
            .map_err(|e| EngineError::Other(e.to_string()))?,
            None => RepoPolicy::default(),
        };
        let tasks_path = crate::policy::path_string(&policy.tasks.path);
        let Some(table_bytes) = tokio::task::block_in_place(|| mirror.read(&tasks_path))? else {
            return Ok(None);
        };
        let table = TaskTable::parse_bytes(&table_bytes)
            .map_err(|e| EngineError::Other(format!("{tasks_path}: {e}")))?;
        let (tasks, _) = crate::tasks::read_tasks(&table);
        let columns: Vec<String> = table.columns().to_vec();
        Ok(Some(Trunk {
            mirror,
            tip,
            policy,
            tasks_path,
            tasks,
            columns,
        }))
    }

    /// Adds a repository to the periodic resync without waiting for an event from it.
    pub fn track(&self, repo: &RepoRef) {
        if let Ok(mut k) = self.known.lock() {
            k.insert(repo.to_string());
        }
    }

    /// Reconciles every repository seen so far (the periodic resync).
    pub async fn resync(&self) -> Vec<(String, Result<Report, EngineError>)> {
        let repos: Vec<String> = self
            .known
            .lock()
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default();
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
        let key = repo.to_string();
        let new = self
            .known
            .lock()
            .map(|mut k| k.insert(key.clone()))
            .unwrap_or(false);
        if new {
            // Remembered across restarts, so the resync covers it before its next event.
            sqlx::query(self.q("INSERT INTO repos (name) VALUES (?) ON CONFLICT DO NOTHING"))
                .bind(&key)
                .execute(&self.effects)
                .await?;
        }
        let lock = self.locks.lock().await.entry(key).or_default().clone();
        let _held = lock.lock().await;
        use tracing::Instrument;
        let span = tracing::info_span!("reconcile", repo = %repo);
        self.reconcile_locked(repo, pulls, shas)
            .instrument(span)
            .await
    }

    async fn reconcile_locked(
        &self,
        repo: &RepoRef,
        pulls: &[u64],
        shas: &[String],
    ) -> Result<Report, EngineError> {
        let trunk = "main";
        let Some(Trunk {
            mirror,
            tip,
            policy,
            tasks_path,
            tasks,
            columns,
        }) = self.load(repo, trunk).await?
        else {
            return Ok(Report::default());
        };

        // Which pull requests to look at: the hinted ones, those whose head or merge commit a
        // hinted sha is; and every one a live task tracks when there is no hint (the resync)
        // or a sha this process has not seen.
        let mut numbers: BTreeSet<u64> = pulls.iter().copied().collect();
        let mut unknown_sha = false;
        if let Ok(seen) = self.shas.lock() {
            for sha in shas {
                match seen.get(&(repo.to_string(), sha.clone())) {
                    Some(n) => {
                        numbers.insert(*n);
                    }
                    None => unknown_sha = true,
                }
            }
        }
        if (pulls.is_empty() && shas.is_empty()) || unknown_sha {
            for t in &tasks {
                let live = !t.is_done()
                    || shas
                        .iter()
                        .any(|s| t.notes.contains(s.get(..7).unwrap_or(s)));
                if live {
                    numbers.extend(pr_numbers(&t.notes));
                }
            }
        }
        let bot = self.forge.me().await?;
        let mut policy = policy;
        if policy.ci.required.is_empty() {
            policy.ci.required = self.protected_contexts(repo, trunk).await;
        }
        let now = now_rfc3339();
        let mut changes: Vec<RowChange> = Vec::new();
        let mut summaries = Vec::new();
        let mut learnings = Vec::new();
        let mut report = Report::default();
        let mut done_now: Vec<String> = Vec::new();
        let mut stickies = Vec::new();
        for n in numbers {
            let pr = match self.forge.pull_request(repo, n).await {
                Ok(pr) => pr,
                Err(e) if e.status() == Some(404) => continue,
                Err(e) => return Err(e.into()),
            };
            if let Ok(mut seen) = self.shas.lock() {
                for sha in std::iter::once(&pr.head_sha).chain(pr.merge_commit_sha.as_ref()) {
                    seen.insert((repo.to_string(), sha.clone()), n);
                }
            }
            let task = match self.claimed(repo, n).await? {
                Some(id) => tasks.iter().find(|t| t.id == id && !id.is_empty()),
                None => link::task_for_pull(&tasks, &pr),
            };
            if pr.state == PrState::Open {
                self.pending_merge(repo, &pr, &policy, &bot.login).await?;
                self.post_checks(
                    repo,
                    &mirror,
                    tip,
                    &policy,
                    &pr,
                    task.map(|t| t.id.as_str()),
                )
                .await?;
            }
            let Some(task) = task else {
                continue;
            };
            report.pulls.push(n);
            let head = decide::verdict(
                &self.forge.ci_results(repo, &pr.head_sha).await?,
                &policy.ci,
                &bot.login,
            );
            let landed = match (&pr.state, &pr.merge_commit_sha) {
                (PrState::Merged, Some(sha)) => {
                    let facts = tokio::task::block_in_place(|| landed_facts(&mirror, tip, sha));
                    match facts {
                        Some((parents, reverted_by)) => Some(Landed {
                            sha: sha.clone(),
                            parents,
                            reverted_by,
                            ci: decide::verdict(
                                &self.forge.ci_results(repo, sha).await?,
                                &policy.ci,
                                &bot.login,
                            ),
                        }),
                        None => None,
                    }
                }
                _ => None,
            };
            let gave_up = self
                .failures(repo, &pr, &head, policy.ci.fail_after)
                .await?;
            let mut landed = landed;
            if let Some(l) = landed.as_mut() {
                self.time_out(repo, l, policy.ci.timeout_mins).await?;
            }
            let issues = link::issues_for(task, &pr, self.forge.kind());
            let d = decide::decide_with(task, &pr, &head, landed.as_ref(), &issues, &now, gave_up);
            for (key, effect) in &d.effects {
                let key = format!("{repo}:{key}");
                if self.perform(repo, pr.number, &key, effect).await? {
                    report.effects.push(key);
                }
            }
            let cells: Vec<(String, String)> = d
                .cells
                .into_iter()
                .filter(|(c, _)| columns.contains(c))
                .collect();
            if d.summary.is_some() && cells.iter().any(|(c, v)| c == "status" && v == "done") {
                done_now.push(task.id.clone());
            }
            summaries.extend(d.summary);
            if let Some(entry) = d.learning {
                learnings.push(crate::git::Learning {
                    path: crate::policy::path_string(&policy.tasks.learnings),
                    entry,
                });
            }
            if !cells.is_empty() {
                changes.push(RowChange {
                    id: task.id.clone(),
                    cells: cells.clone(),
                });
            }
            // The sticky comment is refreshed where something changed or an event pointed.
            if !cells.is_empty() || !d.effects.is_empty() || pulls.contains(&n) {
                stickies.push((pr, task.clone(), cells, head, landed));
            }
        }
        if !changes.is_empty() {
            let message = if summaries.is_empty() {
                "chore(tasks): update task rows".to_owned()
            } else {
                format!("chore(tasks): {}", summaries.join("; "))
            };
            let who = Identity {
                name: policy.bot.name.clone(),
                email: policy.bot.email.clone(),
            };
            let attempts = self.config.push_attempts;
            report.commit = tokio::task::block_in_place(|| {
                mirror.update(&tasks_path, &changes, &learnings, &message, &who, attempts)
            })?;
        }
        for (pr, task, cells, head, landed) in stickies {
            let body = sticky(
                &task,
                &cells,
                &pr,
                &head,
                landed.as_ref(),
                &tasks,
                &done_now,
            );
            self.forge
                .upsert_comment(repo, Thread::Pull(pr.number), "task", &body)
                .await?;
        }
        Ok(report)
    }

    /// The trunk's required status contexts from branch protection (the bot's own excluded),
    /// cached for five minutes; none when the forge will not say.
    async fn protected_contexts(&self, repo: &RepoRef, branch: &str) -> Vec<String> {
        let key = repo.to_string();
        if let Ok(cache) = self.protection.lock()
            && let Some((at, contexts)) = cache.get(&key)
            && at.elapsed() < std::time::Duration::from_secs(300)
        {
            return contexts.clone();
        }
        let contexts: Vec<String> = match self.forge.settings(repo, branch).await {
            Ok(s) => s
                .protection
                .map(|p| p.required_contexts)
                .unwrap_or_default()
                .into_iter()
                .filter(|c| !c.starts_with("trunkwarden/"))
                .collect(),
            Err(e) => {
                tracing::debug!(repo = %repo, error = %e, "branch protection not readable; every reported context counts");
                Vec::new()
            }
        };
        if let Ok(mut cache) = self.protection.lock() {
            cache.insert(key, (std::time::Instant::now(), contexts.clone()));
        }
        contexts
    }

    /// Posts `trunkwarden/policy` and `trunkwarden/secrets` on a pull request's head, once
    /// per head commit.
    async fn post_checks(
        &self,
        repo: &RepoRef,
        mirror: &Mirror,
        tip: git2::Oid,
        policy: &RepoPolicy,
        pr: &crate::forge::PullRequest,
        task: Option<&str>,
    ) -> Result<(), EngineError> {
        let key = format!("{repo}:checks:{}", pr.head_sha);
        if self.recorded(Ledger::Checked, &key).await? {
            return Ok(());
        }
        let checks = tokio::task::block_in_place(|| -> Result<Vec<checks::Check>, EngineError> {
            let head = mirror.fetch_ref(
                &format!("refs/heads/{}", pr.head_ref),
                &format!("pr/{}", pr.number),
            )?;
            let git = mirror.repository()?;
            checks::run(
                &git,
                policy,
                tip,
                head,
                &pr.head_ref,
                &pr.author.login,
                task,
            )
            .map_err(EngineError::Other)
        })?;
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
            self.forge.set_status(repo, &pr.head_sha, &status).await?;
        }
        self.record(Ledger::Checked, &key).await
    }

    /// A ledger statement as this engine's database takes it: tables carry the engine's prefix,
    /// `?` placeholders become `$1, $2, …` (which SQLite reads too).
    fn q(&self, sql: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(ledger_sql(sql, &self.prefix))
    }

    /// Whether `key` is in `table` (`effects` or `checked`).
    async fn recorded(&self, table: Ledger, key: &str) -> Result<bool, EngineError> {
        let q = format!("SELECT key FROM {} WHERE key = ?", table.name());
        let seen: Option<String> = sqlx::query_scalar(self.q(&q))
            .bind(key)
            .fetch_optional(&self.effects)
            .await?;
        Ok(seen.is_some())
    }

    async fn record(&self, table: Ledger, key: &str) -> Result<(), EngineError> {
        let q = format!(
            "INSERT INTO {} (key, done_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            table.name()
        );
        sqlx::query(self.q(&q))
            .bind(key)
            .bind(now_rfc3339())
            .execute(&self.effects)
            .await?;
        Ok(())
    }

    /// Performs one effect unless its key is recorded; returns whether it ran now.
    async fn perform(
        &self,
        repo: &RepoRef,
        pull: u64,
        key: &str,
        effect: &Effect,
    ) -> Result<bool, EngineError> {
        if self.recorded(Ledger::Effects, key).await? {
            return Ok(false);
        }
        match effect {
            Effect::CloseIssue { issue, comment } => {
                let marker = format!("done-{key}");
                self.forge
                    .upsert_comment(repo, Thread::Issue(*issue), &marker, comment)
                    .await?;
                self.forge.set_issue_open(repo, *issue, false).await?;
            }
            Effect::ReopenIssue { issue, comment } => {
                self.forge.set_issue_open(repo, *issue, true).await?;
                let marker = format!("reopen-{key}");
                self.forge
                    .upsert_comment(repo, Thread::Issue(*issue), &marker, comment)
                    .await?;
            }
            Effect::PullComment { marker, body } => {
                self.forge
                    .upsert_comment(repo, Thread::Pull(pull), marker, body)
                    .await?;
            }
        }
        self.record(Ledger::Effects, key).await?;
        tracing::info!(effect = key, "effect performed");
        Ok(true)
    }
}

/// Parents of a merge commit on the trunk, and a later trunk commit that reverts it; `None`
/// when the commit is not on the trunk.
fn landed_facts(mirror: &Mirror, tip: git2::Oid, sha: &str) -> Option<(usize, Option<String>)> {
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
    Some((commit.parent_count(), reverted_by))
}

/// The sticky comment on a task's pull request.
fn sticky(
    task: &Task,
    cells: &[(String, String)],
    pr: &crate::forge::PullRequest,
    head: &Verdict,
    landed: Option<&Landed>,
    tasks: &[Task],
    done_now: &[String],
) -> String {
    let get = |k: &str, old: String| {
        cells
            .iter()
            .find(|(c, _)| c == k)
            .map(|(_, v)| v.clone())
            .unwrap_or(old)
    };
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
        pr.head_sha.get(..7).unwrap_or(&pr.head_sha),
        head
    ));
    if let Some(l) = landed {
        out.push_str(&format!(
            "- CI on the merge commit `{}`: {}\n",
            l.sha.get(..7).unwrap_or(&l.sha),
            l.ci
        ));
    }
    let missing = match (pr.state, landed.map(|l| &l.ci)) {
        _ if status == Status::Done.as_str() => None,
        (PrState::Open, _) => {
            Some("squash-merge into the trunk, then CI green on the merge commit")
        }
        (PrState::Merged, Some(Verdict::Pending(_))) => Some("CI green on the merge commit"),
        (PrState::Merged, Some(Verdict::Red(_))) => Some("a fix: CI on the merge commit failed"),
        (PrState::Closed, _) => Some("a merged pull request"),
        _ => None,
    };
    if let Some(m) = missing {
        out.push_str(&format!("- Missing before done: {m}\n"));
    }
    if status == Status::Done.as_str() {
        let done: BTreeSet<&str> = tasks
            .iter()
            .filter(|t| t.is_done())
            .map(|t| t.id.as_str())
            .chain(done_now.iter().map(String::as_str))
            .collect();
        let ready: Vec<&str> = tasks
            .iter()
            .filter(|t| t.status == Some(Status::NotStarted) && t.depends_on.contains(&task.id))
            .filter(|t| t.depends_on.iter().all(|d| done.contains(d.as_str())))
            .map(|t| t.id.as_str())
            .collect();
        if !ready.is_empty() {
            out.push_str(&format!("- Ready to start now: {}\n", ready.join(", ")));
        }
    }
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
            Err(EngineError::Forge(e))
                if e.status()
                    .is_some_and(|s| (400..500).contains(&s) && s != 429 && s != 409) =>
            {
                Err(HandlerError::Permanent(e.to_string()))
            }
            Err(e) => Err(HandlerError::Transient(e.to_string())),
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
                None if kind == Kind::Github => "https://github.com/{repo}.git".to_owned(),
                None => {
                    let base = env(&format!("TRUNKWARDEN_{upper}_URL")).unwrap_or_default();
                    format!("{}/{{repo}}.git", base.trim_end_matches('/'))
                }
            };
            if !template.contains("{repo}") {
                return Err(format!(
                    "{clone_var} must contain {{repo}}, e.g. https://git.example/{{repo}}.git"
                ));
            }
            let config = EngineConfig {
                data_dir: data_dir.join("engine").join(kind.name()),
                db: db.map(str::to_owned),
                clone_url: Box::new(move |r| template.replace("{repo}", &r.to_string())),
                git_token: token,
                push_attempts: 16,
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

    /// Reconciles every known repository of every forge every `every`, so missed deliveries
    /// are repaired.
    pub fn spawn_resync(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                for (forge, engine) in &me.by_forge {
                    for (repo, result) in engine.resync().await {
                        if let Err(e) = result {
                            tracing::warn!(forge, repo, error = %e, "resync failed");
                        }
                    }
                }
            }
        })
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
}

#[cfg(test)]
mod tests {
    use super::ledger_sql;

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
