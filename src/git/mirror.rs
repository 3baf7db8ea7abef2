//! The bot's writes to the task table: a bare mirror per repository, row-level changes applied
//! by task id to the table as it is on the trunk now, one commit, a push — and on a
//! non-fast-forward, a refetch and the same changes reapplied, so concurrent writers never lose
//! a row.
//!
//! Objects are read and written with git2; fetch and push go through the `git` binary, whose
//! transports (file, http(s), ssh with the user's agent and known hosts) are the ones operators
//! already configure. libgit2's own https and ssh need OpenSSL and libssh2 builds. A token
//! reaches git through the environment (`GIT_CONFIG_*` → `http.extraHeader`), never argv.

use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{FileMode, Oid, Repository, Signature};

use crate::forge::Token;
use crate::tasks::{TableError, TaskTable};

/// Why the task table could not be updated.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{context}: {message}")]
    Git { context: String, message: String },
    #[error("{path} on the trunk: {source}")]
    Table { path: String, source: TableError },
    #[error("{path} is not on the trunk; the bot only updates an existing task table")]
    NoTable { path: String },
    #[error("task {0} is not in the task table")]
    UnknownTask(String),
    #[error("the trunk kept moving: {0} attempts to push the task table were overtaken")]
    Overtaken(u32),
    #[error("task {0}'s row changed since it was read; the change is decided again")]
    Stale(String),
}

fn git_err(context: impl Into<String>) -> impl FnOnce(git2::Error) -> CommitError {
    let context = context.into();
    move |e| CommitError::Git {
        context,
        message: e.message().to_owned(),
    }
}

/// Cells to set on one task row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowChange {
    pub id: String,
    pub cells: Vec<(String, String)>,
    /// The row's cells as the change was decided on; if the row no longer has them when the
    /// change is applied (another writer moved it), the change is stale and nothing is
    /// written. Empty: applies whatever the row says (a person's explicit command).
    #[serde(default)]
    pub expect: Vec<(String, String)>,
}

/// Author and committer of the bot's commits.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

/// An append to the learnings file (a JSON array), made in the same commit.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Learning {
    pub path: String,
    pub entry: serde_json::Value,
}

/// A bare mirror of one repository's trunk.
pub struct Mirror {
    dir: PathBuf,
    url: String,
    token: Option<Token>,
    branch: String,
}

impl Mirror {
    /// Opens (creating if needed) the mirror at `dir` for the repository at `url`.
    pub fn open(
        dir: &Path,
        url: &str,
        token: Option<Token>,
        branch: &str,
    ) -> Result<Mirror, CommitError> {
        if !dir.join("HEAD").exists() {
            std::fs::create_dir_all(dir).map_err(|e| CommitError::Git {
                context: format!("cannot create {}", dir.display()),
                message: e.to_string(),
            })?;
            Repository::init_bare(dir).map_err(git_err(format!(
                "cannot create a mirror in {}",
                dir.display()
            )))?;
        }
        Ok(Mirror {
            dir: dir.to_owned(),
            url: url.to_owned(),
            token,
            branch: branch.to_owned(),
        })
    }

    /// Runs git on the mirror; the token travels in the environment.
    fn git(&self, args: &[&str]) -> Result<std::process::Output, CommitError> {
        let mut c = Command::new("git");
        c.arg("--git-dir").arg(&self.dir).args(args);
        c.env("GIT_TERMINAL_PROMPT", "0");
        if let Some(t) = &self.token {
            // Basic with the token as password is what every forge's git endpoint takes: GitHub
            // (personal and App installation tokens, user `x-access-token`), Gitea, Forgejo and
            // GitLab (any user name with a token).
            use base64::Engine as _;
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("x-access-token:{}", t.expose()));
            c.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {basic}"),
                );
        }
        c.output().map_err(|e| CommitError::Git {
            context: "cannot run git".into(),
            message: e.to_string(),
        })
    }

    fn failed(&self, what: &str, out: &std::process::Output) -> CommitError {
        let text = String::from_utf8_lossy(&out.stderr);
        let text = match &self.token {
            Some(t) => t.redact(text.trim()),
            None => text.trim().to_owned(),
        };
        CommitError::Git {
            context: format!("git {what} {}", self.url),
            message: text,
        }
    }

    /// Fetches the trunk; returns its tip.
    pub fn fetch(&self) -> Result<Oid, CommitError> {
        let refspec = format!("+refs/heads/{0}:refs/heads/{0}", self.branch);
        let out = self.git(&["fetch", "--quiet", "--no-tags", &self.url, &refspec])?;
        if !out.status.success() {
            return Err(self.failed("fetch", &out));
        }
        let repo = self.repo()?;
        let r = repo
            .refname_to_id(&format!("refs/heads/{}", self.branch))
            .map_err(git_err("the fetched trunk"))?;
        Ok(r)
    }

    /// The remote's default branch: what its `HEAD` points at (`git ls-remote --symref`),
    /// which every forge keeps as the repository's default branch.
    pub fn default_branch(&self) -> Result<Option<String>, CommitError> {
        let out = self.git(&["ls-remote", "--symref", &self.url, "HEAD"])?;
        if !out.status.success() {
            return Err(self.failed("ls-remote", &out));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.lines().find_map(|l| {
            let target = l.strip_prefix("ref:")?.split_whitespace().next()?;
            target.strip_prefix("refs/heads/").map(str::to_owned)
        }))
    }

    /// A commit's message, if the mirror holds the commit.
    pub fn message(&self, sha: &str) -> Option<String> {
        let oid = Oid::from_str(sha).ok()?;
        let repo = self.repo().ok()?;
        let c = repo.find_commit(oid).ok()?;
        Some(String::from_utf8_lossy(c.message_bytes()).into_owned())
    }

    /// Whether the mirror holds a commit (as fetched so far).
    pub fn has_commit(&self, sha: &str) -> bool {
        let Ok(oid) = Oid::from_str(sha) else {
            return false;
        };
        self.repo().is_ok_and(|r| r.find_commit(oid).is_ok())
    }

    /// The trunk as last fetched, if it was.
    fn local_tip(&self) -> Option<Oid> {
        self.repo()
            .ok()?
            .refname_to_id(&format!("refs/heads/{}", self.branch))
            .ok()
    }

    /// Fetches one remote ref (a pull request's branch) into `refs/trunkwarden/<name>`;
    /// returns its tip.
    pub fn fetch_ref(&self, remote: &str, name: &str) -> Result<Oid, CommitError> {
        let local = format!("refs/trunkwarden/{name}");
        let refspec = format!("+{remote}:{local}");
        let out = self.git(&["fetch", "--quiet", "--no-tags", &self.url, &refspec])?;
        if !out.status.success() {
            return Err(self.failed("fetch", &out));
        }
        self.repo()?
            .refname_to_id(&local)
            .map_err(git_err("the fetched ref"))
    }

    /// The mirror as a git2 repository, for reading what was fetched.
    pub fn repository(&self) -> Result<Repository, CommitError> {
        self.repo()
    }

    fn repo(&self) -> Result<Repository, CommitError> {
        Repository::open_bare(&self.dir).map_err(git_err(format!(
            "cannot open the mirror {}",
            self.dir.display()
        )))
    }

    /// A file at a commit the mirror holds (`None`: no such commit or file).
    pub fn read_at(&self, commit: &str, path: &str) -> Option<Vec<u8>> {
        let repo = self.repo().ok()?;
        let oid = Oid::from_str(commit).ok()?;
        let tree = repo.find_commit(oid).and_then(|c| c.tree()).ok()?;
        super::read::blob_at(&repo, &tree, Path::new(path))
    }

    /// A file on the trunk as last fetched.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, CommitError> {
        let repo = self.repo()?;
        let tip = repo
            .refname_to_id(&format!("refs/heads/{}", self.branch))
            .map_err(git_err("the trunk"))?;
        let tree = repo
            .find_commit(tip)
            .and_then(|c| c.tree())
            .map_err(git_err("the trunk's tree"))?;
        Ok(super::read::blob_at(&repo, &tree, Path::new(path)))
    }

    /// Applies `changes` to the task table at `path` on the trunk (and appends `learnings`),
    /// commits as `who` with
    /// `message`, and pushes; refetches and reapplies after a non-fast-forward, up to
    /// `attempts` times. `None` when the table already says all of it (nothing committed).
    pub fn update(
        &self,
        path: &str,
        changes: &[RowChange],
        learnings: &[Learning],
        message: &str,
        who: &Identity,
        attempts: u32,
    ) -> Result<Option<String>, CommitError> {
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                // Concurrent writers that collided once should not collide again in lockstep.
                let ms = rand::random_range(5..(20 + 10 * attempt.min(10) as u64));
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            // The first attempt builds on the trunk as this reconcile fetched it; only a lost
            // race costs another fetch.
            let tip = match self.local_tip() {
                Some(tip) if attempt == 0 => tip,
                _ => self.fetch()?,
            };
            let Some(oid) = self.commit_on(tip, path, changes, learnings, message, who)? else {
                return Ok(None);
            };
            let spec = format!("{oid}:refs/heads/{}", self.branch);
            let out = self.git(&["push", "--porcelain", "--quiet", &self.url, &spec])?;
            if out.status.success() {
                return Ok(Some(oid.to_string()));
            }
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // Lost the compare-and-swap: rejected before (non-fast-forward, fetch first) or
            // while (another push locked or moved the ref first) the server updated it.
            let overtaken = [
                "non-fast-forward",
                "fetch first",
                "stale info",
                "cannot lock ref",
                "failed to update ref",
            ]
            .iter()
            .any(|m| said.contains(m));
            if !overtaken {
                return Err(self.failed("push", &out));
            }
            tracing::debug!(url = %self.url, "the trunk moved under the task table update; reapplying");
        }
        Err(CommitError::Overtaken(attempts))
    }

    fn commit_on(
        &self,
        tip: Oid,
        path: &str,
        changes: &[RowChange],
        learnings: &[Learning],
        message: &str,
        who: &Identity,
    ) -> Result<Option<Oid>, CommitError> {
        let repo = self.repo()?;
        let parent = repo.find_commit(tip).map_err(git_err("the trunk's tip"))?;
        let tree = parent.tree().map_err(git_err("the trunk's tree"))?;
        let before = super::read::blob_at(&repo, &tree, Path::new(path)).ok_or_else(|| {
            CommitError::NoTable {
                path: path.to_owned(),
            }
        })?;
        let table_err = |source| CommitError::Table {
            path: path.to_owned(),
            source,
        };
        let mut table = TaskTable::parse_bytes(&before).map_err(table_err)?;
        for ch in changes {
            let row = table
                .find(&ch.id)
                .ok_or_else(|| CommitError::UnknownTask(ch.id.clone()))?;
            let moved = ch.expect.iter().any(|(column, value)| {
                table
                    .column(column)
                    .is_some_and(|c| table.get(row, c) != value.as_str())
            });
            if moved {
                return Err(CommitError::Stale(ch.id.clone()));
            }
            for (column, value) in &ch.cells {
                table.set(row, column, value).map_err(table_err)?;
            }
        }
        let mut after = String::new();
        table.write_to(&mut after);
        let mut update = git2::build::TreeUpdateBuilder::new();
        let mut changed = after.as_bytes() != before.as_slice();
        if changed {
            let blob = repo
                .blob(after.as_bytes())
                .map_err(git_err("writing the task table"))?;
            update.upsert(path, blob, FileMode::Blob);
        }
        let mut paths: Vec<&str> = learnings.iter().map(|l| l.path.as_str()).collect();
        paths.dedup();
        for lpath in paths {
            let old = super::read::blob_at(&repo, &tree, Path::new(lpath));
            let mut list: Vec<serde_json::Value> = old
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            let before = list.len();
            for l in learnings.iter().filter(|l| l.path == lpath) {
                if !list.contains(&l.entry) {
                    list.push(l.entry.clone());
                }
            }
            if list.len() > before {
                let mut text = serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".into());
                text.push('\n');
                let blob = repo
                    .blob(text.as_bytes())
                    .map_err(git_err("writing the learnings"))?;
                update.upsert(lpath, blob, FileMode::Blob);
                changed = true;
            }
        }
        if !changed {
            return Ok(None);
        }
        let new_tree = update
            .create_updated(&repo, &tree)
            .map_err(git_err("building the tree"))?;
        let new_tree = repo
            .find_tree(new_tree)
            .map_err(git_err("reading the new tree"))?;
        let sig = Signature::now(&who.name, &who.email).map_err(git_err("the bot's identity"))?;
        let oid = repo
            .commit(None, &sig, &sig, message, &new_tree, &[&parent])
            .map_err(git_err("committing the task table"))?;
        Ok(Some(oid))
    }
}
