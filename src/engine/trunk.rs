//! The trunk as one reconcile or command reads it: which branch it is, its policy and task
//! table, and a mirror fetched for the pass.

use std::time::{Duration, Instant};

use super::{Engine, EngineError};
use crate::config::{POLICY_FILE, RepoPolicy};
use crate::forge::RepoRef;
use crate::git::Mirror;
use crate::tasks::{Task, TaskTable};

/// The trunk, fetched.
pub(super) struct Trunk {
    pub repo: RepoRef,
    pub mirror: Mirror,
    pub tip: git2::Oid,
    pub policy: RepoPolicy,
    pub tasks_path: String,
    pub tasks: Vec<Task>,
    pub table: TaskTable,
}

impl Trunk {
    /// The trunk's branch name.
    pub fn name(&self) -> &str {
        self.policy.trunk.name()
    }

    /// A task's row cells as read: what a change decided on them expects to find.
    pub fn row_cells(&self, task: &Task) -> Vec<(String, String)> {
        self.table
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), self.table.get(task.row, i).into_owned()))
            .collect()
    }

    pub fn has_column(&self, c: &str) -> bool {
        self.table.column(c).is_some()
    }
}

impl Engine {
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
    pub(super) async fn load(&self, repo: &RepoRef) -> Result<Option<Trunk>, EngineError> {
        let token = match self.forge.git_token(repo).await? {
            Some(t) => Some(t),
            None => self.config.git_token.clone(),
        };
        let probe = self.mirror(repo, "HEAD", token.clone())?;
        let default = self.default_branch(repo, &probe).await?;
        let mut mirror = self.mirror(repo, &default, token.clone())?;
        let mut tip = tokio::task::block_in_place(|| mirror.fetch())?;
        let mut policy = tokio::task::block_in_place(|| Self::policy_on(&mirror))?;
        if let Some(configured) = policy.trunk.branch.clone()
            && configured != default
        {
            // The policy that governs is the one on the trunk itself.
            mirror = self.mirror(repo, &configured, token)?;
            tip = tokio::task::block_in_place(|| mirror.fetch())?;
            policy = tokio::task::block_in_place(|| Self::policy_on(&mirror))?;
            policy.trunk.branch = Some(configured);
        }
        policy.trunk.default_branch = Some(default);
        // A GitHub App commits as its bot user, whatever `[bot]` says.
        if let Some((name, email)) = self.forge.commit_identity().await? {
            policy.bot.name = name;
            policy.bot.email = email;
        }
        let tasks_path = crate::policy::path_string(&policy.tasks.path);
        let Some(table_bytes) = tokio::task::block_in_place(|| mirror.read(&tasks_path))? else {
            return Ok(None);
        };
        let table = TaskTable::parse_bytes(&table_bytes)
            .map_err(|e| EngineError::Other(format!("{tasks_path}: {e}")))?;
        let (tasks, _) = crate::tasks::read_tasks(&table);
        let trunk = Trunk {
            repo: repo.clone(),
            mirror,
            tip,
            policy,
            tasks_path,
            tasks,
            table,
        };
        self.keep_view(&trunk, &tip.to_string());
        Ok(Some(trunk))
    }
}

impl Engine {
    /// Whether a push can move a task: not a tag, not the bot's own commit of the task table,
    /// nor a push ending at a squash commit a pass already saw on the trunk (that pass fetched
    /// everything before it).
    pub(super) async fn push_is_news(
        &self,
        repo: &RepoRef,
        p: &crate::webhook::event::Push,
    ) -> bool {
        if !p.git_ref.starts_with("refs/heads/") {
            return false;
        }
        if p.forced || p.deleted {
            return true;
        }
        if self
            .forge
            .me()
            .await
            .is_ok_and(|me| me.id == p.actor.id && me.login == p.actor.login)
        {
            return false;
        }
        !self
            .on_trunk
            .lock()
            .is_ok_and(|s| s.contains(&(repo.to_string(), p.after.clone())))
    }
}
