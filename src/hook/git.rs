//! Facts from git objects for the rules: what a commit or the index changes, which commits a
//! push brings, and which secrets sit on the lines a change adds.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
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

/// What the index changes against HEAD, from `git diff-index`: git reads its own index best
/// (split index, sparse index, cache-tree, fsmonitor; `GIT_INDEX_FILE` is inherited), and its
/// cache-tree skips unchanged directories, which in a large repository is most of the work.
pub fn staged_changes(workdir: &Path) -> Result<Vec<Changed>, String> {
    let out = Command::new("git")
        .current_dir(workdir)
        .args([
            "diff-index",
            "--cached",
            "--no-renames",
            "--no-abbrev",
            "--ignore-submodules=all",
            "-z",
            "HEAD",
            "--",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git diff-index: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git diff-index failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_raw_diff(&out.stdout)
}

/// Parses `--raw -z` records: `:<mode> <mode> <oid> <oid> <status>\0<path>\0`.
fn parse_raw_diff(raw: &[u8]) -> Result<Vec<Changed>, String> {
    let mut out = Vec::new();
    let mut fields = raw.split(|&b| b == 0);
    while let Some(meta) = fields.next() {
        if meta.is_empty() {
            continue;
        }
        let bad = || {
            format!(
                "unexpected git diff-index output `{}`",
                String::from_utf8_lossy(meta)
            )
        };
        let meta = std::str::from_utf8(meta).map_err(|_| bad())?;
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        let [_, new_mode, old_id, new_id, status] = parts[..] else {
            return Err(bad());
        };
        let path = fields.next().ok_or_else(bad)?.to_vec();
        let id = |s: &str| Oid::from_str(s).map_err(|_| bad());
        let (old_id, new_id) = (id(old_id)?, id(new_id)?);
        if new_mode == "160000" {
            continue;
        }
        out.push(Changed {
            path,
            old: (!old_id.is_zero()).then_some(old_id),
            new: (!status.starts_with('D') && !new_id.is_zero()).then_some(new_id),
        });
    }
    Ok(out)
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
    // From buffers, not blobs: a patch of blobs looks up the diff driver in .gitattributes, which
    // reads the whole index (40% of a one-file `scan --staged` in a 23,000-file repository).
    let patch =
        git2::Patch::from_buffers(old.content(), None, new.content(), None, Some(&mut opts))?;
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
pub fn blob_at(repo: &Repository, tree: &Tree<'_>, path: &Path) -> Option<Vec<u8>> {
    let entry = tree.get_path(path).ok()?;
    let blob = repo.find_blob(entry.id()).ok()?;
    Some(blob.content().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_diff_records() {
        let z = "0".repeat(40);
        let (a, b) = ("1".repeat(40), "2".repeat(40));
        let raw = format!(
            ":100644 100644 {a} {b} M\0src/a b.rs\0:000000 100644 {z} {b} A\0new\nline\0\
             :100644 000000 {a} {z} D\0gone\0:000000 160000 {z} {b} A\0sub\0"
        );
        let c = parse_raw_diff(raw.as_bytes()).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].path, b"src/a b.rs");
        assert_eq!((c[0].old.is_some(), c[0].new.is_some()), (true, true));
        assert_eq!(
            (c[1].old.is_some(), c[1].path.as_slice()),
            (false, &b"new\nline"[..])
        );
        assert_eq!((c[2].old.is_some(), c[2].new.is_some()), (true, false));
        assert!(parse_raw_diff(b":100644 M\0x\0").is_err());
        assert!(parse_raw_diff(format!(":100644 100644 {a} {b} M").as_bytes()).is_err());
    }
}
