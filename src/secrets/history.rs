//! Secrets in git: the lines the index adds, the lines each commit of a range adds, and every
//! blob of the whole history, each read once.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use git2::{Oid, Repository};

use super::BlobScanner;
use super::{Finding, Scanner};
use crate::git::read as git;

/// A git scan that could not run; says which step failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GitScanError(String);

fn fail(what: impl std::fmt::Display) -> impl FnOnce(git2::Error) -> GitScanError {
    move |e| GitScanError(format!("{what}: {}", e.message()))
}

/// Findings on the lines the index adds against HEAD: what `git commit` would record.
pub fn staged(repo: &Repository, scanner: &Scanner) -> Result<Vec<Finding>, GitScanError> {
    let changes = git::staged(repo).map_err(GitScanError)?;
    let mut blobs = BlobScanner::new(repo, scanner);
    let mut out = Vec::new();
    for c in &changes {
        let path = String::from_utf8_lossy(&c.path).into_owned();
        out.extend(
            blobs
                .added(c)
                .map_err(fail(format!("cannot read the staged {path}")))?,
        );
    }
    Ok(out)
}

/// Findings on the lines each commit of `spec` (`A..B`, or `B` for all its history) adds to its
/// first parent, named by commit: a secret removed again later is still found.
pub fn range(
    repo: &Repository,
    scanner: &Scanner,
    spec: &str,
) -> Result<Vec<Finding>, GitScanError> {
    let (tip, hide) = match spec.split_once("..") {
        Some((_, to)) if to.starts_with('.') => {
            return Err(GitScanError(format!(
                "`{spec}`: symmetric ranges (A...B) are not supported; use A..B"
            )));
        }
        Some((from, to)) => {
            let to = if to.is_empty() { "HEAD" } else { to };
            let from = if from.is_empty() { "HEAD" } else { from };
            (commit(repo, to)?, Some(commit(repo, from)?))
        }
        None => (commit(repo, spec)?, None),
    };
    let ids = git::new_commits(repo, tip, hide).map_err(fail(format!("cannot walk `{spec}`")))?;
    let mut blobs = BlobScanner::new(repo, scanner);
    let mut out = Vec::new();
    for id in ids {
        let c = repo
            .find_commit(id)
            .map_err(fail(format!("cannot read commit {id}")))?;
        let changes =
            git::commit_changes(repo, &c).map_err(fail(format!("cannot diff commit {id}")))?;
        for ch in &changes {
            for mut f in blobs
                .added(ch)
                .map_err(fail(format!("cannot read a blob of commit {id}")))?
            {
                f.commit = Some(id.to_string());
                out.push(f);
            }
        }
    }
    Ok(out)
}

fn commit(repo: &Repository, rev: &str) -> Result<Oid, GitScanError> {
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .map_err(fail(format!("`{rev}` is not a commit")))
}

/// One blob to scan: where it first appeared.
struct Blob {
    id: Oid,
    path: String,
    commit: Oid,
}

/// Every blob reachable from any ref, each scanned once, in parallel. A finding names the first
/// commit (oldest first) that added the blob; the same secret in the same file is reported once,
/// however many versions of the file carry it.
pub fn history(git_dir: &Path, scanner: &Scanner) -> Result<Vec<Finding>, GitScanError> {
    let blobs = history_blobs(git_dir)?;
    // Reading an object re-hashes it with collision-detecting SHA-1 by default: a third of a
    // history scan's CPU (measured). A scan reads objects, it does not vouch for them
    // (`git fsck` does), so this process skips the check.
    git2::opts::strict_hash_verification(false);
    let next = AtomicUsize::new(0);
    let found: Mutex<Vec<(usize, Finding)>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let repo = match Repository::open(git_dir) {
                    Ok(r) => r,
                    Err(e) => {
                        if let Ok(mut errs) = errors.lock() {
                            errs.push(format!(
                                "cannot open {}: {}",
                                git_dir.display(),
                                e.message()
                            ));
                        }
                        return;
                    }
                };
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = blobs.get(i) else { break };
                    let blob = match repo.find_blob(b.id) {
                        Ok(blob) => blob,
                        Err(e) => {
                            if let Ok(mut errs) = errors.lock() {
                                errs.push(format!("cannot read blob {}: {}", b.id, e.message()));
                            }
                            continue;
                        }
                    };
                    let content = blob.content();
                    if content.len() as u64 > scanner.max_file_size() || Scanner::is_binary(content)
                    {
                        continue;
                    }
                    for mut f in scanner.scan(&b.path, content) {
                        f.commit = Some(b.commit.to_string());
                        mine.push((i, f));
                    }
                }
                if let Ok(mut all) = found.lock() {
                    all.extend(mine);
                }
            });
        }
    });
    if let Some(e) = errors.into_inner().ok().and_then(|e| e.into_iter().next()) {
        return Err(GitScanError(e));
    }
    let mut found = found.into_inner().unwrap_or_default();
    found.sort_by_key(|(i, f)| (*i, f.offset));
    let mut seen = HashSet::new();
    Ok(found
        .into_iter()
        .map(|(_, f)| f)
        .filter(|f| seen.insert(f.fingerprint.clone()))
        .collect())
}

/// The blobs of all history, each once, oldest first: git's own tree diffs (`git log --raw`)
/// list what each commit adds or changes, far faster than walking every tree.
fn history_blobs(git_dir: &Path) -> Result<Vec<Blob>, GitScanError> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args([
            "log",
            "--all",
            "--reverse",
            "--raw",
            "-z",
            "--no-renames",
            "--no-abbrev",
            "--diff-merges=first-parent",
            "--ignore-submodules=all",
            "--format=%x01%H",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| GitScanError(format!("cannot run git log: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // A repository without commits has no history to scan.
        if err.contains("does not have any commits") || out.stdout.is_empty() && err.is_empty() {
            return Ok(Vec::new());
        }
        return Err(GitScanError(format!("git log failed: {}", err.trim())));
    }
    parse_log(&out.stdout)
}

/// Parses `--format=%x01%H --raw -z`: `\x01<commit>\0` then `\n:<modes> <oids> <status>\0<path>\0`
/// records.
fn parse_log(raw: &[u8]) -> Result<Vec<Blob>, GitScanError> {
    let mut seen: HashMap<Oid, ()> = HashMap::new();
    let mut out = Vec::new();
    let mut commit: Option<Oid> = None;
    let mut fields = raw.split(|&b| b == 0);
    let bad = |f: &[u8]| {
        GitScanError(format!(
            "unexpected git log output `{}`",
            String::from_utf8_lossy(&f[..f.len().min(120)])
        ))
    };
    while let Some(field) = fields.next() {
        let field = field.strip_prefix(b"\n").unwrap_or(field);
        if field.is_empty() {
            continue;
        }
        if let Some(id) = field.strip_prefix(b"\x01") {
            let id = std::str::from_utf8(id).map_err(|_| bad(field))?;
            commit = Some(Oid::from_str(id.trim()).map_err(|_| bad(field))?);
            continue;
        }
        let meta = std::str::from_utf8(field).map_err(|_| bad(field))?;
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        let [_, new_mode, _, new_id, status] = parts[..] else {
            return Err(bad(field));
        };
        let path = fields.next().ok_or_else(|| bad(field))?;
        let Some(commit) = commit else {
            return Err(bad(field));
        };
        if status.starts_with('D') || new_mode == "160000" || new_mode == "120000" {
            continue;
        }
        let id = Oid::from_str(new_id).map_err(|_| bad(field))?;
        if seen.insert(id, ()).is_none() {
            out.push(Blob {
                id,
                path: String::from_utf8_lossy(path).into_owned(),
                commit,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_records() {
        let (c1, c2) = ("a".repeat(40), "b".repeat(40));
        let (z, x, y) = ("0".repeat(40), "1".repeat(40), "2".repeat(40));
        let raw = format!(
            "\x01{c1}\0\n:000000 100644 {z} {x} A\0a.txt\0\x01{c2}\0\n:100644 100644 {x} {y} M\0a.txt\0\
             :000000 100644 {z} {x} A\0copy.txt\0:100644 000000 {y} {z} D\0gone\0:000000 160000 {z} {y} A\0sub\0"
        );
        let blobs = parse_log(raw.as_bytes()).unwrap();
        let got: Vec<(String, String)> = blobs
            .iter()
            .map(|b| (b.path.clone(), b.commit.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![("a.txt".into(), c1.clone()), ("a.txt".into(), c2.clone())]
        );
        assert!(parse_log(b"\n:100644 100644 x M\0p\0").is_err());
        assert!(parse_log(format!(":000000 100644 {z} {x} A\0p\0").as_bytes()).is_err());
    }
}
