//! What the engine shows the status page: each trunk as the last pass read it, the waits and
//! effects in the ledger, the forge's budget — all read-only, none of it a forge call.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::decide::CiVerdict;
use super::trunk::Trunk;
use super::{Engine, EngineError};
use crate::forge::{Budget, RepoRef};

/// A trunk as one pass read it.
#[derive(Debug, Clone, Default)]
pub struct TrunkView {
    pub trunk: String,
    pub tasks_path: String,
    pub tip: String,
    /// Unix ms.
    pub read_at_ms: i64,
    pub table: Option<Arc<[u8]>>,
    pub learnings: Option<Arc<[u8]>>,
    /// `[ci] required` of the policy (empty: the forge's protection, if cached).
    pub required: Vec<String>,
}

impl Engine {
    /// Keeps the trunk at `commit` (the tip a pass read, or the bot's own commit on it) for
    /// the pages: its table and learnings as they are there.
    pub(super) fn keep_view(&self, t: &Trunk, commit: &str) {
        let learnings_path = crate::policy::path_string(&t.policy.tasks.learnings);
        let (table, learnings) = tokio::task::block_in_place(|| {
            (
                t.mirror.read_at(commit, &t.tasks_path),
                t.mirror.read_at(commit, &learnings_path),
            )
        });
        let view = TrunkView {
            trunk: t.name().to_owned(),
            tasks_path: t.tasks_path.clone(),
            tip: commit.to_owned(),
            read_at_ms: self.ledger.now_ms(),
            table: table.map(Into::into),
            learnings: learnings.map(Into::into),
            required: t.policy.ci.required.clone(),
        };
        if let Ok(mut v) = self.views.lock() {
            v.insert(t.repo.to_string(), Arc::new(view));
        }
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Remembers what a landed squash commit's CI still waits on, or forgets it once the
    /// verdict is in.
    pub(super) fn note_landed(&self, repo: &RepoRef, l: &super::decide::Landed) {
        let Ok(mut w) = self.waiting.lock() else {
            return;
        };
        let key = (repo.to_string(), l.sha.clone());
        match &l.ci {
            CiVerdict::Pending(contexts) => {
                let since = w.get(&key).map_or(self.ledger.now_ms(), |(_, s)| *s);
                // Bounded: a commit nobody reports on must not grow this forever.
                if w.len() >= 10_000 && !w.contains_key(&key) {
                    w.clear();
                }
                w.insert(key, (contexts.clone(), since));
            }
            _ => {
                w.remove(&key);
            }
        }
    }

    /// Squash commits whose CI is awaited: sha, the contexts still missing, since when (Unix
    /// ms) — from this process's passes, and from the ledger for those a timeout watches.
    pub async fn waits(&self, repo: &str) -> Result<Vec<(String, Vec<String>, i64)>, EngineError> {
        let mut out: Vec<(String, Vec<String>, i64)> = self
            .waiting
            .lock()
            .map(|w| {
                w.iter()
                    .filter(|((r, _), _)| r == repo)
                    .map(|((_, sha), (c, since))| (sha.clone(), c.clone(), *since))
                    .collect()
            })
            .unwrap_or_default();
        for (sha, since) in self.ledger.waits(repo).await? {
            if let Some(w) = out.iter_mut().find(|(s, _, _)| *s == sha) {
                w.2 = w.2.min(since);
            }
        }
        Ok(out)
    }

    /// The trunk as the last pass read it; `None` before the first pass since the start.
    pub fn view(&self, repo: &str) -> Option<Arc<TrunkView>> {
        self.views.lock().ok()?.get(repo).cloned()
    }

    /// Every repository watched: seen by this process or recorded by any replica.
    pub async fn watched(&self) -> Result<Vec<String>, EngineError> {
        let mut all: std::collections::BTreeSet<String> = self
            .known
            .lock()
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default();
        all.extend(self.ledger.repos().await?);
        Ok(all.into_iter().collect())
    }

    /// Pull requests this process saw merged, with their merge commits (no forge call).
    pub fn merged_pulls(&self, repo: &str) -> Vec<(u64, String)> {
        self.merged
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|((r, _), _)| r == repo)
                    .filter_map(|((_, n), pr)| Some((*n, pr.merge_commit_sha.clone()?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The contexts green waits for, as last read from the forge's protection (no call).
    pub fn required_cached(&self, repo: &str) -> Vec<String> {
        self.required
            .lock()
            .ok()
            .and_then(|c| c.get(repo).map(|(_, r)| r.contexts.clone()))
            .unwrap_or_default()
    }

    /// The newest effects on issues and pull requests (`repo:what`, RFC 3339), newest first.
    pub async fn recent_effects(&self, limit: usize) -> Result<Vec<(String, String)>, EngineError> {
        Ok(self.ledger.recent_effects(limit as i64).await?)
    }

    /// The rate-limit budget the forge announced last.
    pub fn budget(&self) -> Option<Budget> {
        self.forge.budget()
    }

    /// Which forge this engine speaks to.
    pub fn kind(&self) -> crate::forge::ForgeKind {
        self.forge.kind()
    }

    /// The clone URL of a repository, for links to its forge pages.
    pub fn clone_url(&self, repo: &RepoRef) -> String {
        (self.config.clone_url)(repo)
    }

    /// Moves whenever a pass read a trunk.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
}
