//! The facts a decision is made on, beyond the pull request itself: CI history, the issues a
//! task closes and their state, what green waits for, and what the trunk's commits say (merge
//! commits, reverts, the pull request a squash commit names).

use std::time::{Duration, Instant};

use super::decide::{CiVerdict, IssueFact, Landed};
use super::{Engine, EngineError, link};
use crate::config::RepoPolicy;
use crate::forge::{PrState, PullRequest, RepoRef};
use crate::git::Mirror;
use crate::tasks::Task;

/// The contexts green waits for, and where they were learned.
#[derive(Debug, Clone, Default)]
pub(super) struct Required {
    pub contexts: Vec<String>,
    pub source: String,
}

impl Engine {
    /// Counts the heads of a pull request CI failed on; `Some(count)` once it reaches a
    /// configured `fail_after`.
    pub(super) async fn failures(
        &self,
        repo: &RepoRef,
        pr: &PullRequest,
        head: &CiVerdict,
        fail_after: u32,
    ) -> Result<Option<usize>, EngineError> {
        if fail_after == 0 || !matches!(head, CiVerdict::Red(_)) || pr.state != PrState::Open {
            return Ok(None);
        }
        let n = self
            .ledger
            .red_head(&repo.to_string(), pr.number, &pr.head_sha)
            .await?;
        Ok((n >= i64::from(fail_after)).then_some(n as usize))
    }

    /// Turns a merge commit's missing contexts into failures once they have been awaited
    /// longer than `[ci] timeout-mins` (counted from the first reconcile that saw it pending).
    pub(super) async fn time_out(
        &self,
        repo: &RepoRef,
        l: &mut Landed,
        timeout_mins: f64,
    ) -> Result<(), EngineError> {
        let CiVerdict::Pending(waiting) = &l.ci else {
            return Ok(());
        };
        if timeout_mins <= 0.0 {
            return Ok(());
        }
        let since = self.ledger.pending_since(&repo.to_string(), &l.sha).await?;
        if (self.ledger.now_ms() - since) as f64 >= timeout_mins * 60_000.0 {
            l.ci = CiVerdict::Red(
                waiting
                    .iter()
                    .map(|c| format!("{c} (no result after {timeout_mins} min)"))
                    .collect(),
            );
        }
        Ok(())
    }

    /// The issues a task's completion closes, and which of them the forge's own keywords name
    /// (in the pull request or its squash commit), with their state read where a decision
    /// needs it: on a squash commit on the trunk, unless CI there is still pending — then only
    /// an issue the forge may have closed at merge.
    pub(super) async fn issue_facts(
        &self,
        repo: &RepoRef,
        task: &Task,
        pr: &PullRequest,
        squash_message: &str,
        landed: Option<&Landed>,
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
            let (mut open, mut closes, mut reopens, mut closing) = (None, 0, 0, false);
            let by_forge = forge_closes.contains(&number);
            if let Some(l) = landed {
                let rounds = |what: &str| format!("{repo}:{what}:{number}:{}", l.sha);
                closes = self.ledger.rounds_done(&rounds("close")).await?;
                reopens = self.ledger.rounds_done(&rounds("reopen")).await?
                    + self.ledger.rounds_done(&rounds("reopen-early")).await?;
                closing = self.ledger.rounds_begun(&rounds("close")).await? > 0;
                let waiting = matches!(l.ci, CiVerdict::Pending(_)) && l.reverted_by.is_none();
                if !waiting || by_forge || closes > 0 || closing {
                    open = match self.forge.issue_open(repo, number).await {
                        Ok(open) => Some(open),
                        // An issue that is gone (or a pull request number) has nothing to close.
                        Err(e) if e.status() == Some(404) => continue,
                        Err(e) => return Err(e.into()),
                    };
                }
            }
            out.push(IssueFact {
                number,
                open,
                forge_closes: by_forge,
                closes,
                reopens,
                closing,
            });
        }
        Ok(out)
    }

    /// The contexts green waits for: `[ci] required` of the policy, else what the forge
    /// requires on the trunk (branch protection, GitHub rulesets; the bot's own excluded),
    /// kept for five minutes; else every context reported.
    pub(super) async fn required_contexts(&self, repo: &RepoRef, policy: &RepoPolicy) -> Required {
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
}

pub(super) fn pr_numbers(notes: &str) -> Vec<u64> {
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

/// The pull request a squash or merge commit's message names: `… (#7)` at the end of its
/// subject (GitHub, Gitea, Forgejo), or `See merge request group/project!7` (GitLab).
pub(super) fn pull_named_by(message: &str) -> Option<u64> {
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
pub(super) fn reverted_on_trunk(mirror: &Mirror, tip: git2::Oid) -> Vec<String> {
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
pub(super) struct LandedFacts {
    pub parents: usize,
    /// A later trunk commit that reverts it.
    pub reverted_by: Option<String>,
    pub message: String,
}

/// Parents and message of a merge commit on the trunk, and a later trunk commit that reverts
/// it; `None` when the commit is not on the trunk.
pub(super) fn landed_facts(mirror: &Mirror, tip: git2::Oid, sha: &str) -> Option<LandedFacts> {
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

#[cfg(test)]
mod tests {
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
}
