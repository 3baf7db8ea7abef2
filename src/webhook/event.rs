//! The forge-neutral vocabulary every handler speaks, and the accessors that build it from JSON
//! with errors that name the missing path.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A repository as the forge names it (`owner/name`, GitLab's `group/sub/project`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    pub full_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

/// A user by the forge's numeric id (stable) and login (for display).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: u64,
    pub login: String,
}

/// What happened, after the forge's own words have been translated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Ping(Ping),
    Push(Push),
    PullRequest(PullRequestEvent),
    Comment(Comment),
    CiStatus(CiStatus),
    Installation(Installation),
    Recheck(Recheck),
}

/// Someone asked the forge to run one of the bot's own checks again (GitHub's "Re-run" on a
/// `trunkwarden/…` check run): as `@trunkwarden recheck` on its pull requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recheck {
    pub repo: Repo,
    pub sha: String,
    /// The pull requests the check run names (may be none: then those whose head is `sha`).
    pub pulls: Vec<u64>,
}

/// A GitHub App's installation changed: which repositories it covers, or whether it acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installation {
    pub id: u64,
    pub action: InstallationAction,
    /// Repositories the installation now covers (created, added, unsuspended).
    pub added: Vec<Repo>,
    /// Repositories it no longer covers, or no longer acts on (removed, deleted, suspended).
    pub removed: Vec<Repo>,
}

/// What happened to an installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallationAction {
    /// Installed, unsuspended, or new permissions accepted: it acts on `added`.
    Active,
    /// Repositories added to or removed from it.
    Repositories,
    /// Uninstalled or suspended: nothing it covered is acted on.
    Stopped,
}

impl Event {
    /// The repository the event is about, which decides the processing lane.
    pub fn repo(&self) -> Option<&Repo> {
        match self {
            Event::Ping(p) => p.repo.as_ref(),
            Event::Push(p) => Some(&p.repo),
            Event::PullRequest(p) => Some(&p.repo),
            Event::Comment(c) => Some(&c.repo),
            Event::CiStatus(c) => Some(&c.repo),
            Event::Installation(_) => None,
            Event::Recheck(r) => Some(&r.repo),
        }
    }

    /// A one-line summary for logs: never a body or a secret.
    pub fn summary(&self) -> String {
        let repo = self.repo().map_or("-", |r| r.full_name.as_str());
        match self {
            Event::Ping(_) => format!("ping {repo}"),
            Event::Push(p) => format!("push {repo} {} → {}", p.git_ref, short(&p.after)),
            Event::PullRequest(p) => {
                format!(
                    "pull_request {repo}#{} {:?} head {}",
                    p.number,
                    p.action,
                    short(&p.head_sha)
                )
            }
            Event::Comment(c) => format!(
                "comment {repo}#{} {:?} by {}",
                c.number, c.action, c.author.login
            ),
            Event::CiStatus(c) => {
                format!("ci {repo} {} {} {:?}", short(&c.sha), c.context, c.state)
            }
            Event::Recheck(r) => format!("recheck {repo} {}", short(&r.sha)),
            Event::Installation(i) => format!(
                "installation {} {:?} +{} -{}",
                i.id,
                i.action,
                i.added.len(),
                i.removed.len()
            ),
        }
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// A hook was created or tested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    pub repo: Option<Repo>,
    pub hook_id: Option<u64>,
}

/// A ref moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    pub repo: Repo,
    pub actor: Actor,
    /// Full ref name, e.g. `refs/heads/main`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub before: String,
    pub after: String,
    pub created: bool,
    pub deleted: bool,
    /// Only GitHub reports force pushes; elsewhere `false`.
    pub forced: bool,
    /// Number of commits the forge listed (it may cap the list).
    pub commits: u64,
}

/// What happened to a pull or merge request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrAction {
    Opened,
    /// New commits on the head.
    Updated,
    /// Closed without merging.
    Closed,
    Merged,
    Reopened,
    /// Title, body or base changed.
    Edited,
}

/// A pull request (GitHub, Gitea) or merge request (GitLab) event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestEvent {
    pub repo: Repo,
    pub actor: Actor,
    pub action: PrAction,
    pub number: u64,
    pub title: String,
    pub body: String,
    /// Author by id; GitLab merge request payloads carry only the id, so the login may be empty.
    pub author: Actor,
    pub head_sha: String,
    pub head_ref: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_sha: Option<String>,
    pub base_ref: String,
    pub merged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_commit_sha: Option<String>,
}

/// What happened to a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommentAction {
    Created,
    Edited,
    Deleted,
}

/// A comment on an issue or a pull/merge request conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub repo: Repo,
    pub actor: Actor,
    pub action: CommentAction,
    /// Issue or pull/merge request number (GitLab: iid).
    pub number: u64,
    pub on_pull_request: bool,
    pub comment_id: u64,
    pub body: String,
    /// The body before an edit, where the forge sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_body: Option<String>,
    pub author: Actor,
}

/// A CI result for one context on one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CiState {
    Pending,
    Success,
    Failure,
    Error,
    Cancelled,
    Skipped,
    Neutral,
}

impl CiState {
    /// Terminal states will not change without a new run.
    pub fn is_terminal(self) -> bool {
        !matches!(self, CiState::Pending)
    }
}

/// One CI context's state on a commit: a commit status, a check run or suite, a workflow run, a
/// GitLab pipeline or job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiStatus {
    pub repo: Repo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    pub sha: String,
    pub context: String,
    pub state: CiState,
    /// The forge's own word for the state, kept for the audit trail.
    pub raw_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    /// The app or CI system that reported it, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A payload that does not have the shape its event promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the payload is not JSON: {0}")]
    NotJson(String),
    #[error("the form-encoded body has no `payload` field")]
    NoFormPayload,
    #[error("`{path}` is missing")]
    Missing { path: String },
    #[error("`{path}` should be {expected}")]
    WrongType {
        path: String,
        expected: &'static str,
    },
}

/// Looks up a dotted path; `None` when absent or null.
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    super::payload::check_read(path);
    path.split('.')
        .try_fold(v, |v, key| v.get(key))
        .filter(|v| !v.is_null())
}

/// A required string at a path.
pub fn str_at<'a>(v: &'a Value, path: &str) -> Result<&'a str, PayloadError> {
    match at(v, path) {
        None => Err(PayloadError::Missing { path: path.into() }),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(PayloadError::WrongType {
            path: path.into(),
            expected: "a string",
        }),
    }
}

/// An optional string at a path (absent, null or empty is `None`).
pub fn opt_str(v: &Value, path: &str) -> Option<String> {
    at(v, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A required non-negative integer at a path.
pub fn u64_at(v: &Value, path: &str) -> Result<u64, PayloadError> {
    match at(v, path) {
        None => Err(PayloadError::Missing { path: path.into() }),
        Some(x) => x.as_u64().ok_or_else(|| PayloadError::WrongType {
            path: path.into(),
            expected: "a non-negative integer",
        }),
    }
}

/// A boolean at a path; absent means `false`.
pub fn bool_at(v: &Value, path: &str) -> bool {
    at(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// A SHA of all zeros marks a created or deleted ref.
pub fn is_zero_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}
