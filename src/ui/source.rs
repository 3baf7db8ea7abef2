//! The engines as the status page's source: each forge's watched repositories, trunks as last
//! read, waits, effects and budgets.

use super::{Action, Links, Snapshot, Source, Wait, Watched};
use crate::engine::Engines;
use crate::event::ForgeKind;
use crate::forge::{Budget, RepoRef};

fn links(engine: &crate::engine::Engine, repo: &str) -> Links {
    match RepoRef::parse(repo) {
        Some(r) => Links::from_clone_url(engine.kind(), &engine.clone_url(&r)),
        None => Links::default(),
    }
}

#[async_trait::async_trait]
impl Source for Engines {
    async fn repos(&self) -> Vec<Watched> {
        let mut out = Vec::new();
        for engine in self.all() {
            match engine.watched().await {
                Ok(names) => out.extend(names.into_iter().map(|repo| Watched {
                    forge: engine.kind(),
                    repo,
                })),
                Err(e) => tracing::warn!(error = %e, "cannot list the watched repositories"),
            }
        }
        out.sort();
        out
    }

    async fn snapshot(&self, forge: &str, repo: &str) -> Option<Snapshot> {
        let engine = self.get(forge)?;
        // A trunk a pass read is watched; only others cost a look at the ledger.
        if engine.view(repo).is_none() && !engine.watched().await.ok()?.iter().any(|w| w == repo) {
            return None;
        }
        let view = engine.view(repo).unwrap_or_default();
        let required = if view.required.is_empty() {
            engine.required_cached(repo)
        } else {
            view.required.clone()
        };
        Some(Snapshot {
            links: links(engine, repo),
            view,
            waits: engine
                .waits(repo)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|(sha, missing, since_ms)| Wait {
                    sha,
                    missing,
                    since_ms,
                })
                .collect(),
            merged: engine.merged_pulls(repo),
            required,
        })
    }

    fn budgets(&self) -> Vec<(ForgeKind, Option<Budget>)> {
        self.all().iter().map(|e| (e.kind(), e.budget())).collect()
    }

    async fn actions(&self, limit: usize) -> Vec<Action> {
        let mut out = Vec::new();
        for engine in self.all() {
            let Ok(effects) = engine.recent_effects(limit).await else {
                continue;
            };
            for (key, at) in effects {
                // `owner/name:what…`: the repository is everything before the first `:`.
                let (repo, what) = key.split_once(':').unwrap_or(("", key.as_str()));
                out.push(Action {
                    forge: engine.kind(),
                    links: links(engine, repo),
                    repo: repo.to_owned(),
                    what: what.to_owned(),
                    at,
                });
            }
        }
        out.sort_by(|a, b| b.at.cmp(&a.at));
        out.truncate(limit);
        out
    }

    fn generation(&self) -> u64 {
        self.all().iter().map(|e| e.generation()).sum()
    }
}
