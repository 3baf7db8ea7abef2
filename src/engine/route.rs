//! Which engine a delivery goes to: one per forge whose token is set, each built from the
//! environment (`TRUNKWARDEN_<FORGE>_TOKEN`, `_URL`, `_CLONE_URL`).

use std::collections::HashMap;
use std::sync::Arc;

use super::{Engine, EngineConfig, EngineError, ReconcileReport, SystemClock};
use crate::forge::RepoRef;
use crate::queue::Delivery;
use crate::queue::worker::{Handler, HandlerError};
use crate::webhook::Event;

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
        let mut by_forge = HashMap::new();
        for (kind, token) in crate::forge::forges_with_token(env)? {
            let forge = crate::forge::from_env(kind, env)?;
            let clone_var = crate::forge::env_var(kind, "CLONE_URL");
            let template = match env(&clone_var).filter(|t| !t.is_empty()) {
                Some(t) => t,
                None => {
                    let api = env(&crate::forge::env_var(kind, "URL")).unwrap_or_default();
                    default_clone_template(kind, &api)
                }
            };
            let config = EngineConfig {
                data_dir: data_dir.join("engine").join(kind.name()),
                db: db.map(str::to_owned),
                clone_url: Box::new(move |r| template.replace("{repo}", &r.to_string())),
                // A GitHub App's git token comes per installation from its adapter.
                git_token: Some(token).filter(|t| !t.expose().is_empty()),
                push_attempts: 16,
                clock: Arc::new(SystemClock),
                woodpecker: crate::forge::woodpecker::Woodpecker::from_env(kind, env)?
                    .map(Arc::new),
            };
            let engine = Engine::open(forge, config)
                .await
                .map_err(|e| e.to_string())?;
            by_forge.insert(kind.name().to_owned(), Arc::new(engine));
        }
        Ok(Engines { by_forge })
    }

    /// Engines already opened, one per forge (a later one for the same forge wins).
    pub fn of(engines: impl IntoIterator<Item = Arc<Engine>>) -> Engines {
        Engines {
            by_forge: engines
                .into_iter()
                .map(|e| (e.kind().name().to_owned(), e))
                .collect(),
        }
    }

    /// The engine of a forge, by its name.
    pub fn get(&self, forge: &str) -> Option<&Arc<Engine>> {
        self.by_forge.get(forge)
    }

    /// Every engine, in the forges' name order.
    pub fn all(&self) -> Vec<&Arc<Engine>> {
        let mut v: Vec<_> = self.by_forge.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v.into_iter().map(|(_, e)| e).collect()
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
fn default_clone_template(kind: crate::forge::ForgeKind, api: &str) -> String {
    let api = api.trim_end_matches('/');
    if kind == crate::forge::ForgeKind::Github {
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

/// An App event's result as the queue takes it.
pub(super) fn outcome_of(result: Result<(), EngineError>) -> Result<(), HandlerError> {
    result.map_err(|e| match e {
        EngineError::Forge(e) if e.is_permanent() => HandlerError::Permanent(e.to_string()),
        e => HandlerError::Transient(e.to_string()),
    })
}

/// A reconcile's result as the queue takes it.
pub(super) fn outcome(
    repo: &RepoRef,
    result: Result<ReconcileReport, EngineError>,
) -> Result<(), HandlerError> {
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

#[cfg(test)]
mod tests {
    use super::default_clone_template;
    use crate::forge::ForgeKind;

    #[test]
    fn clone_urls_follow_the_api_url() {
        assert_eq!(
            default_clone_template(ForgeKind::Github, ""),
            "https://github.com/{repo}.git"
        );
        assert_eq!(
            default_clone_template(ForgeKind::Github, "https://api.github.com"),
            "https://github.com/{repo}.git"
        );
        assert_eq!(
            default_clone_template(ForgeKind::Github, "https://ghe.example/api/v3/"),
            "https://ghe.example/{repo}.git"
        );
        assert_eq!(
            default_clone_template(ForgeKind::Gitea, "https://git.example/"),
            "https://git.example/{repo}.git"
        );
    }
}
