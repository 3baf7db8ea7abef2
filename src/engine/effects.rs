//! Performing what a decision owes the forge, once: each effect's key is claimed in the ledger
//! first, the forge is called, and the key recorded as done — or backed off when the forge
//! refuses, or given back when it fails for now.

use super::decide::Effect;
use super::ledger::{self, Claim};
use super::{Engine, EngineError};
use crate::forge::{Prior, RepoRef, Thread};

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
        let first = match self.ledger.claim(&key).await? {
            Claim::Done => return Ok(Performed::Before),
            Claim::Busy => return Ok(Performed::Elsewhere),
            Claim::Deferred { retry_at, error } => {
                return Ok(Performed::NotYet(format!(
                    "{error} (next attempt {})",
                    ledger::rfc3339(retry_at)
                )));
            }
            Claim::Mine { first } => first,
        };
        match self.apply(repo, pull, &key, effect, first).await {
            Ok(()) => {
                self.ledger.done(&key).await?;
                tracing::info!(effect = key, "effect performed");
                Ok(Performed::Now)
            }
            Err(EngineError::Forge(e)) if e.is_permanent() => {
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
                Err(e)
            }
        }
    }

    /// The forge calls of one effect. Each is safe to repeat after a crash: the state is read
    /// before it is changed, and comments are found again by their marker. `fresh` when no
    /// earlier attempt of the effect can have posted its comment.
    async fn apply(
        &self,
        repo: &RepoRef,
        pull: u64,
        key: &str,
        effect: &Effect,
        fresh: bool,
    ) -> Result<(), EngineError> {
        match effect {
            Effect::CloseIssue {
                issue,
                open,
                comment,
            } => {
                if *open {
                    self.forge.set_issue_open(repo, *issue, false).await?;
                }
                let marker = format!("done-{key}");
                self.say(repo, Thread::Issue(*issue), &marker, comment, fresh)
                    .await?;
            }
            Effect::ReopenIssue { issue, comment } => {
                self.forge.set_issue_open(repo, *issue, true).await?;
                let marker = format!("reopen-{key}");
                self.say(repo, Thread::Issue(*issue), &marker, comment, fresh)
                    .await?;
            }
            Effect::PullComment { marker, body } => {
                self.say(repo, Thread::Pull(pull), marker, body, fresh)
                    .await?;
            }
        }
        Ok(())
    }

    /// Writes the bot's comment carrying `marker`, spending as few calls as the ledger allows:
    /// none when it already says `body`, one edit when its id is known, one post when it was
    /// never written (`fresh`, or a ledger that records every comment has no record of it), a
    /// search of the thread only when unsure (a ledger older than its record of comments).
    pub(super) async fn say(
        &self,
        repo: &RepoRef,
        thread: Thread,
        marker: &str,
        body: &str,
        fresh: bool,
    ) -> Result<(), EngineError> {
        let r = repo.to_string();
        let place = match thread {
            Thread::Pull(n) => format!("pull-{n}"),
            Thread::Issue(n) => format!("issue-{n}"),
        };
        let digest = digest(body);
        let (prior, expect) = match self.ledger.said(&r, &place, marker).await? {
            Some((id, d)) if id > 0 && d == digest => return Ok(()),
            Some((id, _)) if id > 0 => (Prior::Id(id), id),
            Some(_) => (Prior::Unknown, 0),
            None if self.ledger.begin_saying(&r, &place, marker).await?
                && (fresh || self.ledger.knows_all_comments()) =>
            {
                (Prior::None, 0)
            }
            None => (Prior::Unknown, 0),
        };
        let out = self
            .forge
            .upsert_comment(repo, thread, marker, body, prior)
            .await?;
        let recorded = self
            .ledger
            .said_as(&r, &place, marker, expect, out.id, &digest)
            .await?;
        // Another writer (a replica that stalled past its lease, or its successor) recorded
        // its comment first: a comment this one just posted is a duplicate.
        if let Some(theirs) = recorded
            && theirs != out.id
            && out.created
        {
            match self.forge.delete_comment(repo, thread, out.id).await {
                Ok(()) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// A short digest of a comment's body, to know it unchanged without reading it back.
fn digest(body: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(body.as_bytes())[..12])
}
