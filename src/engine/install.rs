//! A GitHub App's own events: its installation's repositories are watched from the moment
//! they are added (each reconciled at once), and no longer once removed, uninstalled or
//! suspended — no resync, no effects, no errors piling up for them; a re-run asked on one of
//! its check runs is `@trunkwarden recheck`.

use super::{Engine, EngineError};
use crate::forge::PrState;
use crate::forge::RepoRef;
use crate::webhook::event::{Installation, InstallationAction, Recheck};

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

    /// Runs the bot's checks again on the pull requests a re-run check run names (or those
    /// whose head it is).
    pub(super) async fn on_recheck(&self, r: &Recheck) -> Result<(), EngineError> {
        let Some(repo) = RepoRef::parse(&r.repo.full_name) else {
            return Ok(());
        };
        let mut pulls = Vec::new();
        for n in &r.pulls {
            pulls.push(self.forge.pull_request(&repo, *n).await?);
        }
        if pulls.is_empty() {
            pulls = self.forge.open_pulls(&repo).await?;
        }
        let mut numbers = Vec::new();
        for pr in pulls
            .iter()
            .filter(|p| p.head_sha == r.sha && p.state == PrState::Open)
        {
            self.ledger
                .forget(&super::checks::checks_key(&repo, pr))
                .await?;
            numbers.push(pr.number);
        }
        if !numbers.is_empty() {
            self.reconcile(&repo, &numbers, &[]).await?;
        }
        Ok(())
    }
}
