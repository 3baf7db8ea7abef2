//! Secrets in git objects: each blob scanned once however many commits carry it, and only the
//! findings on the lines a change adds kept.

use std::collections::HashMap;
use std::rc::Rc;

use git2::{Oid, Repository};

use super::{Finding, Scanner};
use crate::git::read::Changed;

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
        let added = crate::git::read::added_lines(self.repo, old, new)?;
        Ok(found
            .iter()
            .filter(|f| added.contains(&f.line))
            .cloned()
            .collect())
    }
}
