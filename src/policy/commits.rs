//! The facts the ref rules judge, gathered from git: what each new commit changes, who wrote
//! it, and the secrets on the lines it adds — each commit scanned once however many refs carry it.

use git2::Repository;

use super::{CommitFacts, Violation};
use crate::git::read::{Changed, commit_changes};
use crate::secrets::BlobScanner;

/// Facts about pushed commits for the ref rules; each commit's added lines are scanned for
/// secrets once, however many refs carry it.
pub fn judge_commits(
    repo: &Repository,
    ids: Vec<git2::Oid>,
    mut blobs: Option<&mut BlobScanner<'_>>,
    scanned: &mut std::collections::HashSet<git2::Oid>,
    violations: &mut Vec<Violation>,
) -> Result<Vec<CommitFacts>, String> {
    let mut facts = Vec::with_capacity(ids.len());
    for id in ids {
        let commit = repo
            .find_commit(id)
            .map_err(|e| format!("cannot read commit {id}: {}", e.message()))?;
        let changes = commit_changes(repo, &commit)
            .map_err(|e| format!("cannot diff commit {id}: {}", e.message()))?;
        if let Some(b) = blobs.as_deref_mut()
            && scanned.insert(id)
        {
            let cid = id.to_string();
            for c in &changes {
                let found = b
                    .added(c)
                    .map_err(|e| format!("cannot scan commit {id}: {}", e.message()))?;
                violations.extend(
                    found
                        .iter()
                        .map(|f| super::secret_violation(f, &c.path, Some(&cid))),
                );
            }
        }
        facts.push(commit_facts(&commit, &changes));
    }
    Ok(facts)
}

/// The facts the ref rules need about one commit.
fn commit_facts(commit: &git2::Commit<'_>, changes: &[Changed]) -> CommitFacts {
    CommitFacts {
        id: commit.id().to_string(),
        parents: commit.parent_count(),
        author_email: String::from_utf8_lossy(commit.author().email_bytes()).into_owned(),
        paths: changes.iter().map(|c| c.path.clone()).collect(),
    }
}
