//! Facts from git objects for the rules: what a commit or the index changes, which commits a
//! push brings, and which secrets sit on the lines a change adds.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use git2::{Delta, DiffOptions, FileMode, Oid, Repository, Sort, Tree};

use crate::policy::CommitFacts;
use crate::secrets::{Finding, Scanner};

/// One changed path of a diff.
pub struct Changed {
    /// The path after the change (before it, for a deletion).
    pub path: Vec<u8>,
    /// The blob before the change; `None` for an addition or a submodule.
    pub old: Option<Oid>,
    /// The blob after the change; `None` for a deletion or a submodule.
    pub new: Option<Oid>,
}

/// The paths a diff touches.
pub fn changes(diff: &git2::Diff<'_>) -> Vec<Changed> {
    diff.deltas()
        .map(|d| {
            let deleted = d.status() == Delta::Deleted;
            let side = if deleted { d.old_file() } else { d.new_file() };
            let blob = |f: git2::DiffFile<'_>| {
                (!f.id().is_zero() && f.mode() != FileMode::Commit).then(|| f.id())
            };
            Changed {
                path: side.path_bytes().unwrap_or_default().to_vec(),
                old: blob(d.old_file()),
                new: if deleted { None } else { blob(d.new_file()) },
            }
        })
        .collect()
}

/// Diff options for rule checks: no rename detection (a renamed file is scanned whole), no
/// content loaded until a finding needs it.
pub fn diff_options() -> DiffOptions {
    let mut o = DiffOptions::new();
    o.ignore_submodules(true).include_typechange(true);
    o
}

/// The changes of a commit against its first parent, or everything for a root commit.
pub fn commit_changes(
    repo: &Repository,
    commit: &git2::Commit<'_>,
) -> Result<Vec<Changed>, git2::Error> {
    let tree = commit.tree()?;
    let parent: Option<Tree<'_>> = match commit.parent_count() {
        0 => None,
        _ => Some(commit.parent(0)?.tree()?),
    };
    let diff = repo.diff_tree_to_tree(parent.as_ref(), Some(&tree), Some(&mut diff_options()))?;
    Ok(changes(&diff))
}

/// The facts the ref rules need about one commit.
pub fn commit_facts(commit: &git2::Commit<'_>, changes: &[Changed]) -> CommitFacts {
    CommitFacts {
        id: commit.id().to_string(),
        parents: commit.parent_count(),
        author_email: String::from_utf8_lossy(commit.author().email_bytes()).into_owned(),
        paths: changes.iter().map(|c| c.path.clone()).collect(),
    }
}

/// Commits reachable from `tip` and from none of `hide`, oldest first.
pub fn new_commits(
    repo: &Repository,
    tip: Oid,
    hide: impl IntoIterator<Item = Oid>,
) -> Result<Vec<Oid>, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    walk.push(tip)?;
    for h in hide {
        // A hidden tip we cannot read (a ref to a tree, a pruned object) hides nothing.
        let _ = walk.hide(h);
    }
    walk.collect()
}

/// The commit tips of refs matching `glob` (every ref for `None`), peeled through tags.
pub fn ref_tips(repo: &Repository, glob: Option<&str>) -> Result<Vec<Oid>, git2::Error> {
    let refs = match glob {
        Some(g) => repo.references_glob(g)?,
        None => repo.references()?,
    };
    Ok(refs
        .flatten()
        .filter_map(|r| r.peel_to_commit().ok().map(|c| c.id()))
        .collect())
}

/// Scans blobs for secrets, each blob once however many commits carry it, and keeps the
/// findings on lines a change adds.
pub struct BlobScanner<'a> {
    repo: &'a Repository,
    scanner: &'a Scanner,
    cache: HashMap<Oid, Rc<Vec<Finding>>>,
}

impl<'a> BlobScanner<'a> {
    /// A scanner over one repository's objects.
    pub fn new(repo: &'a Repository, scanner: &'a Scanner) -> BlobScanner<'a> {
        BlobScanner {
            repo,
            scanner,
            cache: HashMap::new(),
        }
    }

    fn findings(&mut self, path: &[u8], blob: Oid) -> Result<Rc<Vec<Finding>>, git2::Error> {
        if let Some(f) = self.cache.get(&blob) {
            return Ok(f.clone());
        }
        let b = self.repo.find_blob(blob)?;
        let content = b.content();
        let found =
            if content.len() as u64 > self.scanner.max_file_size() || Scanner::is_binary(content) {
                Vec::new()
            } else {
                self.scanner.scan(&String::from_utf8_lossy(path), content)
            };
        let found = Rc::new(found);
        self.cache.insert(blob, found.clone());
        Ok(found)
    }

    /// Findings in `change.new` on lines that are not in `change.old`.
    pub fn added(&mut self, change: &Changed) -> Result<Vec<Finding>, git2::Error> {
        let Some(new) = change.new else {
            return Ok(Vec::new());
        };
        let found = self.findings(&change.path, new)?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let Some(old) = change.old else {
            return Ok(found.to_vec());
        };
        let added = added_lines(self.repo, old, new)?;
        Ok(found
            .iter()
            .filter(|f| added.contains(&f.line))
            .cloned()
            .collect())
    }
}

/// 1-based line numbers of `new` that a diff from `old` adds.
fn added_lines(repo: &Repository, old: Oid, new: Oid) -> Result<HashSet<usize>, git2::Error> {
    let (old, new) = (repo.find_blob(old)?, repo.find_blob(new)?);
    let mut opts = DiffOptions::new();
    opts.context_lines(0).force_text(true);
    let patch = git2::Patch::from_blobs(&old, None, &new, None, Some(&mut opts))?;
    let mut lines = HashSet::new();
    for h in 0..patch.num_hunks() {
        for l in 0..patch.num_lines_in_hunk(h)? {
            let line = patch.line_in_hunk(h, l)?;
            if line.origin() == '+'
                && let Some(n) = line.new_lineno()
            {
                lines.insert(n as usize);
            }
        }
    }
    Ok(lines)
}

/// The content of `path` in `tree`, if it is a blob there.
pub fn blob_at(repo: &Repository, tree: &Tree<'_>, path: &std::path::Path) -> Option<Vec<u8>> {
    let entry = tree.get_path(path).ok()?;
    let blob = repo.find_blob(entry.id()).ok()?;
    Some(blob.content().to_vec())
}
