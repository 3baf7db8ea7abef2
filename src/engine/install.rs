//! A GitHub App's installation events: the repositories it covers are watched from the moment
//! they are added (each reconciled at once), and no longer once removed, uninstalled or
//! suspended — no resync, no effects, no errors piling up for them.

use super::{Engine, EngineError};
use crate::forge::RepoRef;
use crate::webhook::event::{Installation, InstallationAction};

impl Engine {
    /// Starts and stops watching what an installation event names.
    pub(super) async fn on_installation(&self, i: &Installation) -> Result<(), EngineError> {
        let named: Vec<String> = i.removed.iter().map(|r| r.full_name.clone()).collect();
        let removed = self
            .forge
            .installation_changed(i.id, &named, i.action == InstallationAction::Stopped)
            .await;
        for name in &removed {
            if let Ok(mut k) = self.known.lock() {
                k.remove(name);
            }
            self.ledger.forget_repo(name).await?;
            tracing::info!(installation = i.id, repo = %name, "no longer watched");
        }
        for r in &i.added {
            let Some(repo) = RepoRef::parse(&r.full_name) else {
                continue;
            };
            tracing::info!(installation = i.id, repo = %repo, "watched");
            // A repository without a task table has nothing to reconcile; that is not an error.
            if let Err(e) = self.reconcile(&repo, &[], &[]).await {
                tracing::warn!(installation = i.id, repo = %repo, error = %e, "first reconcile failed; the resync tries again");
            }
        }
        Ok(())
    }
}
