//! Performing what a decision owes the forge, once: each effect's key is claimed in the ledger
//! first, the forge is called, and the key recorded as done — or backed off when the forge
//! refuses, or given back when it fails for now.

use super::decide::Effect;
use super::ledger::{self, Claim};
use super::{Engine, EngineError};
use crate::forge::{ForgeError, RepoRef, Thread};

/// How an owed effect went this time.
pub(super) enum Performed {
    /// Performed now.
    Now,
    /// Performed before.
    Before,
    /// Another replica is performing it; it decides the row.
    Elsewhere,
    /// The forge refused it: why, and when it is tried again.
    NotYet(String),
}

impl Engine {
    /// Performs one effect unless it was performed before, claiming its key first so no other
    /// replica performs it too. A refusal by the forge is backed off and reported, not retried
    /// at every delivery.
    pub(super) async fn perform(
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
