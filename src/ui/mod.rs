//! The status page: what the bot knows, drawn for people — the task board, the done-gate
//! pipeline, the ledger of deliveries. Server-rendered HTML from compile-time templates (maud),
//! one stylesheet and one small script embedded in the binary, no CDN; every page works
//! without JavaScript and the script only refreshes what is shown.
//!
//! - `board.rs` — one repository's task table as a board, a graph, a chart and a pipeline;
//!   also what `trunkwarden tasks board` writes to disk;
//! - `graph.rs` — the dependency graph laid out in layers, as inline SVG;
//! - `pages.rs` — the overview and the deliveries pages, over the ledger;
//! - `layout.rs` — the frame every page shares;
//! - `http.rs` — the routes, the access rule (loopback, or a token) and the security headers;
//! - `source.rs` — the engines as what the pages read.
//!
//! Read-only: no page changes anything, and nothing a page shows is a secret (webhook
//! signatures and tokens are never kept in the ledger's headers, and are dropped again here).

mod board;
mod graph;
mod http;
mod layout;
mod pages;
mod source;

use std::sync::Arc;

pub use crate::engine::TrunkView;

pub use board::{BoardInput, render_board_file};
pub use http::{UiSettings, routes};

use crate::event::ForgeKind;
use crate::forge::Budget;

/// What the engine tells the status page; the page never calls the forge itself.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// Every repository the bot watches, by forge.
    async fn repos(&self) -> Vec<Watched>;
    /// One repository's trunk as the bot last read it; `None` for a repository not watched.
    async fn snapshot(&self, forge: &str, repo: &str) -> Option<Snapshot>;
    /// The rate-limit budget each forge announced last (`None`: not announced yet).
    fn budgets(&self) -> Vec<(ForgeKind, Option<Budget>)>;
    /// The newest effects the bot performed on issues and pull requests, newest first.
    async fn actions(&self, limit: usize) -> Vec<Action>;
    /// A number that moves whenever a pass may have changed what the pages show.
    fn generation(&self) -> u64;
}

/// A repository the bot watches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Watched {
    pub forge: ForgeKind,
    pub repo: String,
}

/// One repository's trunk as last read by a pass, with the engine's memory of its waits.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Forge web links for issues, pull requests, commits and branches.
    pub links: Links,
    /// The trunk as the last pass read it (all empty, `read_at_ms` 0, before the first).
    pub view: Arc<TrunkView>,
    /// Squash commits whose CI is awaited.
    pub waits: Vec<Wait>,
    /// Pull requests known merged, with their merge commits.
    pub merged: Vec<(u64, String)>,
    /// The contexts green waits for, when known (policy or forge protection).
    pub required: Vec<String>,
}

/// A squash commit on the trunk whose CI is not yet terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub sha: String,
    /// The contexts not yet green (empty: none has reported).
    pub missing: Vec<String>,
    /// Since when the bot has seen it waiting (Unix ms).
    pub since_ms: i64,
}

/// Something the bot did on the forge.
#[derive(Debug, Clone)]
pub struct Action {
    pub forge: ForgeKind,
    pub repo: String,
    /// The effect's key as recorded (`close:5:<sha>`, `reopen:5:<sha>`, …).
    pub what: String,
    /// RFC 3339.
    pub at: String,
    pub links: Links,
}

/// Where a repository's pages live on its forge; no links without one (a local path clone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    pub forge: Option<ForgeKind>,
    /// `https://github.com/acme/app`, without a trailing slash.
    pub web: Option<String>,
}

impl Links {
    /// Links for a repository whose clone URL is `clone` (only http(s) URLs give links).
    pub fn from_clone_url(forge: ForgeKind, clone: &str) -> Links {
        let web = (clone.starts_with("https://") || clone.starts_with("http://")).then(|| {
            clone
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .to_owned()
        });
        Links {
            forge: Some(forge),
            web,
        }
    }

    fn join(&self, github_gitea: &str, gitlab: &str) -> Option<String> {
        let web = self.web.as_deref()?;
        Some(match self.forge? {
            ForgeKind::Gitlab => format!("{web}/-/{gitlab}"),
            _ => format!("{web}/{github_gitea}"),
        })
    }

    /// The repository's page.
    pub fn repo(&self) -> Option<String> {
        self.web.clone()
    }

    /// An issue's page.
    pub fn issue(&self, n: u64) -> Option<String> {
        self.join(&format!("issues/{n}"), &format!("issues/{n}"))
    }

    /// A pull (merge) request's page.
    pub fn pull(&self, n: u64) -> Option<String> {
        let github_gitea = match self.forge {
            Some(ForgeKind::Github) => format!("pull/{n}"),
            _ => format!("pulls/{n}"),
        };
        self.join(&github_gitea, &format!("merge_requests/{n}"))
    }

    /// A commit's page.
    pub fn commit(&self, sha: &str) -> Option<String> {
        self.join(&format!("commit/{sha}"), &format!("commit/{sha}"))
    }

    /// A branch's tree.
    pub fn branch(&self, name: &str) -> Option<String> {
        let github_gitea = match self.forge {
            Some(ForgeKind::Github) => format!("tree/{name}"),
            _ => format!("src/branch/{name}"),
        };
        self.join(&github_gitea, &format!("tree/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_follow_each_forges_paths() {
        let gh = Links::from_clone_url(ForgeKind::Github, "https://github.com/acme/app.git");
        assert_eq!(gh.pull(7).unwrap(), "https://github.com/acme/app/pull/7");
        assert_eq!(
            gh.branch("b").unwrap(),
            "https://github.com/acme/app/tree/b"
        );
        let gl = Links::from_clone_url(ForgeKind::Gitlab, "https://gl.example/acme/app.git");
        assert_eq!(
            gl.pull(7).unwrap(),
            "https://gl.example/acme/app/-/merge_requests/7"
        );
        let gt = Links::from_clone_url(ForgeKind::Gitea, "https://gt.example/acme/app.git");
        assert_eq!(gt.pull(7).unwrap(), "https://gt.example/acme/app/pulls/7");
        assert_eq!(gt.issue(3).unwrap(), "https://gt.example/acme/app/issues/3");
        let local = Links::from_clone_url(ForgeKind::Gitea, "/srv/git/app.git");
        assert_eq!(local.issue(3), None);
    }
}
