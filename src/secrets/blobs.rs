//! Secrets in git objects: each blob scanned once however many commits carry it, and only the
//! findings on the lines a change adds kept.

use std::collections::HashMap;
use std::rc::Rc;

use git2::{Oid, Repository};

use super::{Finding, Scanner};
use crate::git::read::Changed;

/// Unchanged lines scanned around added ones: a rule may need a name on the line before.
const ADDED_CONTEXT: u32 = 2;

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
        let cached = self.cache.get(&new).cloned();
        let (Some(old), None) = (change.old, &cached) else {
            // A new file is scanned whole, and a blob scanned before costs nothing.
            let found = match cached {
                Some(f) => f,
                None => self.findings(&change.path, new)?,
            };
            if found.is_empty() {
                return Ok(Vec::new());
            }
            let Some(old) = change.old else {
                return Ok(found.to_vec());
            };
            let added = crate::git::read::added_lines(self.repo, old, new)?;
            return Ok(found
                .iter()
                .filter(|f| added.contains(&f.line))
                .cloned()
                .collect());
        };
        // A changed file: only what the change adds is scanned (with a little context), as
        // `git log -p` shows it — not the whole file again at every commit that touches it.
        let (old, new) = (self.repo.find_blob(old)?, self.repo.find_blob(new)?);
        let content = new.content();
        if content.len() as u64 > self.scanner.max_file_size() || Scanner::is_binary(content) {
            return Ok(Vec::new());
        }
        let (text, lines) = crate::git::read::added_text(&old, &new, ADDED_CONTEXT)?;
        let path = String::from_utf8_lossy(&change.path);
        Ok(self
            .scanner
            .scan(&path, &text)
            .into_iter()
            .filter_map(|mut f| {
                f.line = lines.get(f.line.checked_sub(1)?).copied().flatten()?;
                Some(f)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GitHub token whose checksum holds (the tests' usual one).
    const TOKEN: &str = "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";

    fn lines(n: usize, at: &[(usize, &str)]) -> Vec<u8> {
        let mut out = String::new();
        for i in 1..=n {
            match at.iter().find(|(l, _)| *l == i) {
                Some((_, text)) => out.push_str(text),
                None => out.push_str(&format!("let v{i} = {i};")),
            }
            out.push('\n');
        }
        out.into_bytes()
    }

    #[test]
    fn a_changed_file_reports_what_the_change_adds_at_its_line_in_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let kept = format!("const OLD = \"{TOKEN}\";");
        let added = format!("    token = \"{TOKEN}\"");
        let old = repo.blob(&lines(1000, &[(10, &kept)])).unwrap();
        // The name sits on the line before the added value: the context carries it.
        let new = repo
            .blob(&lines(
                1001,
                &[(10, &kept), (500, "config = {"), (501, &added)],
            ))
            .unwrap();
        let scanner = Scanner::builtin().unwrap();
        let mut blobs = BlobScanner::new(&repo, &scanner);
        let change = Changed {
            path: b"src/config.rs".to_vec(),
            old: Some(old),
            new: Some(new),
        };
        let found = blobs.added(&change).unwrap();
        assert_eq!(found.len(), 1, "one finding per secret: {found:?}");
        assert_eq!(found[0].rule, "github-pat");
        assert_eq!((found[0].line, found[0].column), (501, 14));
        // A new file is scanned whole.
        let fresh = Changed {
            old: None,
            ..change
        };
        let mut at: Vec<usize> = blobs
            .added(&fresh)
            .unwrap()
            .iter()
            .map(|f| f.line)
            .collect();
        at.dedup();
        assert_eq!(at, [10, 501]);
    }
}
