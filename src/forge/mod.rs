//! What the bot asks of a forge, in forge-neutral types, and one thin adapter per forge.
//!
//! The engine and the comment commands speak only [`Forge`]; forge dialects (field names, state
//! vocabularies, permission models) stay in `github.rs`, `gitea.rs` and `gitlab.rs`.

pub mod gitea;
pub mod github;
pub mod github_app;
pub mod gitlab;
pub mod http;
pub mod woodpecker;

use std::fmt;

use serde::Serialize;

pub use crate::webhook::event::CiState;
pub use http::{Budget, ForgeError, Retry, Token};

pub use crate::event::ForgeKind;

/// A repository: `owner/name` (on GitLab `owner` may hold subgroups: `group/sub`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RepoRef {
    pub owner: String,
    pub name: String,
}

impl RepoRef {
    /// Parses `OWNER/NAME` (the last `/` splits, so GitLab subgroups work).
    pub fn parse(s: &str) -> Option<RepoRef> {
        let (owner, name) = s.trim_matches('/').rsplit_once('/')?;
        (!owner.is_empty() && !name.is_empty() && !owner.starts_with('/')).then(|| RepoRef {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// A forge account, by the numeric id that survives renames and the login people see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: u64,
    pub login: String,
}

/// Where a pull or merge request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrState {
    Open,
    Closed,
    Merged,
}

/// A pull request (a merge request on GitLab), as far as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    pub number: u64,
    pub state: PrState,
    pub title: String,
    pub body: String,
    pub author: User,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    /// The base branch's tip as the forge last computed it (may lag behind).
    pub base_sha: Option<String>,
    /// The commit the merge produced on the base branch.
    pub merge_commit_sha: Option<String>,
    pub labels: Vec<String>,
}

/// Where a CI result comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CiSource {
    CommitStatus,
    CheckRun,
    Pipeline,
}

/// One CI context's latest result on a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CiResult {
    pub context: String,
    pub state: CiState,
    /// The app (check runs) or account (statuses) that reported it, so the bot can ignore its own.
    pub reporter: Option<String>,
    pub target_url: Option<String>,
    pub source: CiSource,
}

/// A failed CI job's log as far as the bot reads it: the end, where failures are reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobLog {
    /// The last bytes of the log, at most [`http::LOG_TAIL`], starting on a whole line.
    pub tail: Vec<u8>,
    /// How long the whole log is, in bytes, as far as the server said or sent.
    pub total: u64,
}

/// A finding at a file and line, shown on the pull request's diff (a check run annotation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Annotation {
    pub path: String,
    /// 1-based.
    pub line: usize,
    /// A refusal (else a warning).
    pub failure: bool,
    /// The rule.
    pub title: String,
    /// What is wrong; a secret only masked.
    pub message: String,
}

/// The bot's result on a commit as a check run, where the forge has them for the bot.
#[derive(Debug, Clone, Copy)]
pub struct CheckRun<'a> {
    pub name: &'a str,
    pub passed: bool,
    pub summary: &'a str,
    pub annotations: &'a [Annotation],
}

/// A commit status to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusSpec {
    pub context: String,
    /// One of `Pending`, `Success`, `Failure`, `Error`.
    pub state: CiState,
    pub description: String,
    pub target_url: Option<String>,
}

/// Where a comment goes: GitHub and Gitea number pull requests and issues together, GitLab
/// keeps merge requests and issues apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Thread {
    Pull(u64),
    Issue(u64),
}

impl Thread {
    /// The number, whatever the kind.
    pub fn number(self) -> u64 {
        match self {
            Thread::Pull(n) | Thread::Issue(n) => n,
        }
    }
}

/// What the sticky-comment call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CommentOutcome {
    pub id: u64,
    /// `false` when the bot's earlier comment was edited in place.
    pub created: bool,
}

/// A repository permission level; ordered, so `>= Write` reads as a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    None,
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

/// The events the bot consumes, as a webhook subscribes to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookSpec {
    pub url: String,
    /// Signing secret (GitHub, Gitea) or token (GitLab).
    pub secret: Token,
}

/// Where a webhook lives: one repository, or every repository of an organisation (on GitLab, a
/// group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookTarget {
    Repo(RepoRef),
    Org(String),
}

impl std::fmt::Display for HookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookTarget::Repo(r) => write!(f, "{r}"),
            HookTarget::Org(o) => write!(f, "organisation {o}"),
        }
    }
}

/// How a webhook has been doing, as far as the forge tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookHealth {
    /// No hook sends to the URL.
    Missing,
    /// The hook exists and its recent deliveries succeeded; says how many.
    Healthy(String),
    /// The hook's recent deliveries failed, or the forge disabled it; says how.
    Failing(String),
    /// The hook exists; the forge does not expose how its deliveries went.
    Unknown(String),
}

/// Judges a hook by its recent deliveries, newest first: `(HTTP status, event, when)`; a status
/// of 0 means the forge could not connect.
pub fn judge_deliveries<'a>(recent: impl Iterator<Item = (u16, &'a str, &'a str)>) -> HookHealth {
    let recent: Vec<_> = recent.collect();
    if recent.is_empty() {
        return HookHealth::Healthy("no deliveries yet".into());
    }
    let failed: Vec<_> = recent
        .iter()
        .filter(|(status, _, _)| !(200..300).contains(status))
        .collect();
    match failed.first() {
        None => HookHealth::Healthy(format!("the last {} deliveries succeeded", recent.len())),
        Some((status, event, at)) => HookHealth::Failing(format!(
            "{} of the last {} deliveries failed; the latest failure: {event} at {at} got {}",
            failed.len(),
            recent.len(),
            if *status == 0 {
                "no answer".to_owned()
            } else {
                format!("HTTP {status}")
            }
        )),
    }
}

/// What `upsert_webhook` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HookOutcome {
    Created,
    Updated,
    Unchanged,
}

/// The repository settings the trunk rules depend on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RepoSettings {
    pub allow_squash: bool,
    pub allow_merge_commit: bool,
    pub allow_rebase: bool,
    /// Protection of the trunk branch; `None` when unprotected.
    pub protection: Option<Protection>,
}

/// Branch protection, reduced to what the trunk rules need.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Protection {
    pub require_pull_request: bool,
    pub required_contexts: Vec<String>,
    /// Logins allowed to push directly; empty means nobody beyond what the forge always allows.
    pub push_allowlist: Vec<String>,
}

/// A status context the forge requires before a merge, and where it is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Required {
    pub context: String,
    /// `branch protection`, `ruleset`, …
    pub source: &'static str,
}

/// The talking points of the engine with a forge.
#[async_trait::async_trait]
pub trait Forge: Send + Sync {
    /// Which dialect this adapter speaks.
    fn kind(&self) -> ForgeKind;

    /// The account the adapter acts as (the bot).
    async fn me(&self) -> Result<User, ForgeError>;

    /// A pull request by number.
    async fn pull_request(&self, repo: &RepoRef, number: u64) -> Result<PullRequest, ForgeError>;

    /// The repository's open pull requests (at most a thousand), for the resync to find one
    /// whose every delivery was lost.
    async fn open_pulls(&self, repo: &RepoRef) -> Result<Vec<PullRequest>, ForgeError>;

    /// Every CI result on a commit, commit statuses and check runs combined, latest per context.
    async fn ci_results(&self, repo: &RepoRef, sha: &str) -> Result<Vec<CiResult>, ForgeError>;

    /// Reports the bot's result as a check run with its findings annotated; `false` when the
    /// bot has no check runs here (then it sets a commit status).
    async fn set_check_run(
        &self,
        repo: &RepoRef,
        sha: &str,
        run: &CheckRun<'_>,
    ) -> Result<bool, ForgeError> {
        let _ = (repo, sha, run);
        Ok(false)
    }

    /// The token git fetches and pushes a repository with, when it is not the one the bot
    /// was given (a GitHub App's installation token).
    async fn git_token(&self, repo: &RepoRef) -> Result<Option<Token>, ForgeError> {
        let _ = repo;
        Ok(None)
    }

    /// Who the bot's commits are by when the forge decides it — a GitHub App's bot user, as
    /// `(name, email)`; `None` keeps `[bot]` of the policy.
    async fn commit_identity(&self) -> Result<Option<(String, String)>, ForgeError> {
        Ok(None)
    }

    /// The repositories the bot is installed on, where the forge says (a GitHub App's
    /// installations): the resync covers them before their first event.
    async fn installed_repositories(&self) -> Result<Vec<String>, ForgeError> {
        Ok(Vec::new())
    }

    /// A GitHub App's installation stopped acting (`stopped`) or lost `removed`: what was
    /// cached for them is dropped; returns the repositories known to be covered no longer.
    async fn installation_changed(
        &self,
        installation: u64,
        removed: &[String],
        stopped: bool,
    ) -> Vec<String> {
        let _ = (installation, stopped);
        removed.to_vec()
    }

    /// The log of the job behind a failed CI result, where the forge runs the CI itself
    /// (GitHub Actions, GitLab CI, Gitea Actions); `None` when the result names no job the
    /// forge keeps a log of.
    async fn job_log(
        &self,
        repo: &RepoRef,
        sha: &str,
        ci: &CiResult,
    ) -> Result<Option<JobLog>, ForgeError> {
        let _ = (repo, sha, ci);
        Ok(None)
    }

    /// Creates the bot's comment carrying `marker` on a thread, or edits it in place.
    async fn upsert_comment(
        &self,
        repo: &RepoRef,
        thread: Thread,
        marker: &str,
        body: &str,
        prior: Prior,
    ) -> Result<CommentOutcome, ForgeError>;

    /// Deletes the bot's comment: a duplicate another writer's comment stands for.
    async fn delete_comment(
        &self,
        repo: &RepoRef,
        thread: Thread,
        id: u64,
    ) -> Result<(), ForgeError>;

    /// Closes (`open == false`) or reopens an issue.
    async fn set_issue_open(
        &self,
        repo: &RepoRef,
        issue: u64,
        open: bool,
    ) -> Result<(), ForgeError>;

    /// Whether an issue is open (read before closing or reopening it, so neither is sent for
    /// nothing and a reply never says "reopened" of an issue that was open).
    async fn issue_open(&self, repo: &RepoRef, issue: u64) -> Result<bool, ForgeError>;

    /// The repository's default branch.
    async fn default_branch(&self, repo: &RepoRef) -> Result<String, ForgeError>;

    /// The status contexts the forge requires on `branch` before a merge, each with where the
    /// forge says so. Only branch protection by default; GitHub adds its rulesets.
    async fn required_contexts(
        &self,
        repo: &RepoRef,
        branch: &str,
    ) -> Result<Vec<Required>, ForgeError> {
        let s = self.settings(repo, branch).await?;
        Ok(s.protection
            .map(|p| p.required_contexts)
            .unwrap_or_default()
            .into_iter()
            .map(|context| Required {
                context,
                source: "branch protection",
            })
            .collect())
    }

    /// Sets a commit status.
    async fn set_status(
        &self,
        repo: &RepoRef,
        sha: &str,
        status: &StatusSpec,
    ) -> Result<(), ForgeError>;

    /// Squash-merges a pull request if its head is still `head_sha`; returns the merge commit.
    async fn squash_merge(
        &self,
        repo: &RepoRef,
        number: u64,
        head_sha: &str,
        title: &str,
        message: &str,
    ) -> Result<String, ForgeError>;

    /// A user's permission on the repository.
    async fn permission(&self, repo: &RepoRef, user: &User) -> Result<Permission, ForgeError>;

    /// Creates the webhook for `spec.url`, or brings an existing one up to date.
    async fn upsert_webhook(
        &self,
        target: &HookTarget,
        spec: &HookSpec,
    ) -> Result<HookOutcome, ForgeError>;

    /// Whether a webhook sends to `url`, and how its last deliveries went.
    async fn webhook_health(
        &self,
        target: &HookTarget,
        url: &str,
    ) -> Result<HookHealth, ForgeError>;

    /// Merge settings and the protection of `branch`.
    async fn settings(&self, repo: &RepoRef, branch: &str) -> Result<RepoSettings, ForgeError>;

    /// The settings that guard a trunk: squash merges only, pull requests required, the
    /// contexts required, pushes by the bot alone — as far as this forge can say them, with a
    /// note for each part it cannot.
    fn trunk_guards(&self, contexts: Vec<String>, bot: &User) -> (RepoSettings, Vec<String>) {
        (
            RepoSettings {
                allow_squash: true,
                allow_merge_commit: false,
                allow_rebase: false,
                protection: Some(Protection {
                    require_pull_request: true,
                    required_contexts: contexts,
                    push_allowlist: vec![bot.login.clone()],
                }),
            },
            Vec::new(),
        )
    }

    /// The rate-limit budget the forge announced last, where it announces one.
    fn budget(&self) -> Option<Budget> {
        None
    }

    /// Applies merge settings and protection of `branch`.
    async fn apply_settings(
        &self,
        repo: &RepoRef,
        branch: &str,
        desired: &RepoSettings,
    ) -> Result<(), ForgeError>;
}

/// The number after the last `marker` in a URL (`…/job/123?x` → 123): where CI pages name
/// their job.
pub(crate) fn number_after(url: &str, marker: &str) -> Option<u64> {
    let (_, rest) = url.rsplit_once(marker)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `TRUNKWARDEN_<FORGE>_<what>`: where a forge's settings live in the environment.
pub fn env_var(kind: ForgeKind, what: &str) -> String {
    format!("TRUNKWARDEN_{}_{what}", kind.name().to_ascii_uppercase())
}

/// The forges whose token is set, with it, in `ForgeKind::ALL` order.
pub fn forges_with_token(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(ForgeKind, Token)>, String> {
    let mut out = Vec::new();
    for kind in ForgeKind::ALL {
        if let Some(token) = Token::lookup(&env_var(kind, "TOKEN"), env)? {
            out.push((kind, token));
        } else if kind == ForgeKind::Github
            && env("TRUNKWARDEN_GITHUB_APP_ID").is_some_and(|v| !v.is_empty())
        {
            // A GitHub App buys its tokens per installation: none is given.
            out.push((kind, Token::new("")));
        }
    }
    Ok(out)
}

/// Builds the adapter for `kind` from the environment: `TRUNKWARDEN_<FORGE>_TOKEN` (or
/// `…_TOKEN_FILE`) and `TRUNKWARDEN_<FORGE>_URL` (GitHub defaults to api.github.com; a
/// self-hosted forge has no default); for GitHub without a token, a GitHub App
/// (`TRUNKWARDEN_GITHUB_APP_ID`, `TRUNKWARDEN_GITHUB_APP_KEY_FILE`).
pub fn from_env(
    kind: ForgeKind,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<std::sync::Arc<dyn Forge>, String> {
    let token_var = env_var(kind, "TOKEN");
    let url_var = env_var(kind, "URL");
    if kind == ForgeKind::Github && Token::lookup(&token_var, env)?.is_none() {
        let url = env(&url_var)
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "https://api.github.com".to_owned());
        if let Some(app) = github_app::App::from_env(env, &url)? {
            let gh = github::Github::with_app(&url, std::sync::Arc::new(app), Retry::default())
                .map_err(|e| e.to_string())?;
            return Ok(std::sync::Arc::new(gh));
        }
    }
    let token = Token::lookup(&token_var, env)?.ok_or_else(|| {
        format!(
            "{token_var} (or {token_var}_FILE) is not set; the bot needs a token to act on {kind}"
        )
    })?;
    let url = match (env(&url_var).filter(|u| !u.is_empty()), kind) {
        (Some(u), _) => u,
        (None, ForgeKind::Github) => "https://api.github.com".to_owned(),
        (None, _) => {
            return Err(format!(
                "{url_var} is not set; name the {kind} instance, e.g. https://git.example.com"
            ));
        }
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("{url_var}: `{url}` is not an http(s) URL"));
    }
    let retry = Retry::default();
    let forge: std::sync::Arc<dyn Forge> = match kind {
        ForgeKind::Github => {
            std::sync::Arc::new(github::Github::new(&url, token, retry).map_err(|e| e.to_string())?)
        }
        ForgeKind::Gitea | ForgeKind::Forgejo => std::sync::Arc::new(
            gitea::Gitea::new(kind, &url, token, retry).map_err(|e| e.to_string())?,
        ),
        ForgeKind::Gitlab => {
            std::sync::Arc::new(gitlab::Gitlab::new(&url, token, retry).map_err(|e| e.to_string())?)
        }
    };
    Ok(forge)
}

/// One posted comment, as the sticky-comment logic needs it.
pub(crate) struct Posted {
    pub id: u64,
    pub author: Option<u64>,
    pub body: String,
}

/// Comments per page the adapters ask for; a shorter page is the last.
pub(crate) const PAGE: usize = 100;

/// The three comment calls each adapter provides; sticky comments are built on them once.
#[async_trait::async_trait]
pub(crate) trait Comments {
    /// One page (1-based) of a thread's comments.
    async fn comments_page(
        &self,
        repo: &RepoRef,
        thread: Thread,
        page: u32,
    ) -> Result<Vec<Posted>, ForgeError>;
    /// Posts a comment; returns its id.
    async fn create_comment(
        &self,
        repo: &RepoRef,
        thread: Thread,
        body: &str,
    ) -> Result<u64, ForgeError>;
    /// Deletes a comment (a duplicate of the bot's own).
    async fn delete_comment(
        &self,
        repo: &RepoRef,
        thread: Thread,
        id: u64,
    ) -> Result<(), ForgeError>;
    /// Replaces a comment's body.
    async fn edit_comment(
        &self,
        repo: &RepoRef,
        thread: Thread,
        id: u64,
        body: &str,
    ) -> Result<(), ForgeError>;
}

/// What the caller knows of a marked comment before writing it: each answer but `Unknown`
/// spares a listing of the thread's comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// Nothing known: search the thread.
    Unknown,
    /// Known never posted (the ledger holds the only right to post it).
    None,
    /// Posted before with this id.
    Id(u64),
}

/// Finds `me`'s comment carrying `marker` and edits it (only when its text differs), or
/// creates it; what the caller knows (`prior`) spares the search.
pub(crate) async fn upsert_sticky<C: Comments + Sync + ?Sized>(
    c: &C,
    me: &User,
    repo: &RepoRef,
    thread: Thread,
    marker: &str,
    body: &str,
    prior: Prior,
) -> Result<CommentOutcome, ForgeError> {
    let line = marker_line(marker);
    let text = sticky_body(marker, body);
    match prior {
        Prior::None => {
            let id = c.create_comment(repo, thread, &text).await?;
            return Ok(CommentOutcome { id, created: true });
        }
        Prior::Id(id) => match c.edit_comment(repo, thread, id, &text).await {
            Ok(()) => return Ok(CommentOutcome { id, created: false }),
            // Deleted by someone: look for it again, else post it anew.
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e),
        },
        Prior::Unknown => {}
    }
    for page in 1..=30 {
        let batch = c.comments_page(repo, thread, page).await?;
        let n = batch.len();
        if let Some(p) = batch
            .into_iter()
            .find(|p| p.author == Some(me.id) && p.body.contains(&line))
        {
            if p.body != text {
                c.edit_comment(repo, thread, p.id, &text).await?;
            }
            return Ok(CommentOutcome {
                id: p.id,
                created: false,
            });
        }
        if n < PAGE {
            break;
        }
    }
    let id = c.create_comment(repo, thread, &text).await?;
    // Two writers that both found no comment (a stalled replica beside its successor) both
    // create one: the later ones give way to the oldest, so a marker stays one comment.
    let mut mine = Vec::new();
    for page in 1..=30 {
        let batch = c.comments_page(repo, thread, page).await?;
        let n = batch.len();
        mine.extend(
            batch
                .into_iter()
                .filter(|p| p.author == Some(me.id) && p.body.contains(&line))
                .map(|p| p.id),
        );
        if n < PAGE {
            break;
        }
    }
    mine.sort_unstable();
    match mine.first() {
        Some(&oldest) if oldest != id => {
            c.delete_comment(repo, thread, id).await?;
            c.edit_comment(repo, thread, oldest, &text).await?;
            Ok(CommentOutcome {
                id: oldest,
                created: false,
            })
        }
        _ => Ok(CommentOutcome { id, created: true }),
    }
}

/// The hidden marker that makes a comment the bot's sticky comment of one kind.
pub fn marker_line(marker: &str) -> String {
    format!("<!-- trunkwarden:{marker} -->")
}

/// A sticky comment body: the marker, then the text.
pub fn sticky_body(marker: &str, body: &str) -> String {
    format!("{}\n{body}", marker_line(marker))
}

/// Keeps the latest result per context (inputs newest first, as forges list them).
pub fn latest_per_context(results: Vec<CiResult>) -> Vec<CiResult> {
    let mut seen = std::collections::HashSet::new();
    results
        .into_iter()
        .filter(|r| seen.insert((r.source, r.context.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn adapters_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let f = from_env(
            ForgeKind::Github,
            &env(&[("TRUNKWARDEN_GITHUB_TOKEN", "t")]),
        )
        .unwrap();
        assert_eq!(f.kind(), ForgeKind::Github);
        let e = from_env(ForgeKind::Gitea, &env(&[("TRUNKWARDEN_GITEA_TOKEN", "t")]))
            .err()
            .unwrap();
        assert!(e.contains("TRUNKWARDEN_GITEA_URL"), "{e}");
        let e = from_env(ForgeKind::Gitlab, &env(&[])).err().unwrap();
        assert!(e.contains("TRUNKWARDEN_GITLAB_TOKEN"), "{e}");
        let e = from_env(
            ForgeKind::Forgejo,
            &env(&[
                ("TRUNKWARDEN_FORGEJO_TOKEN", "t"),
                ("TRUNKWARDEN_FORGEJO_URL", "git.example"),
            ]),
        )
        .err()
        .unwrap();
        assert!(e.contains("not an http(s) URL"), "{e}");
        let e = from_env(
            ForgeKind::Gitea,
            &env(&[("TRUNKWARDEN_GITEA_TOKEN_FILE", "/nonexistent/t")]),
        )
        .err()
        .unwrap();
        assert!(
            e.contains("TRUNKWARDEN_GITEA_TOKEN_FILE: cannot read /nonexistent/t"),
            "{e}"
        );
        // A GitHub App instead of a token: its id and key, each checked.
        let e = from_env(
            ForgeKind::Github,
            &env(&[("TRUNKWARDEN_GITHUB_APP_ID", "12")]),
        )
        .err()
        .unwrap();
        assert!(e.contains("TRUNKWARDEN_GITHUB_APP_KEY_FILE"), "{e}");
        let e = from_env(
            ForgeKind::Github,
            &env(&[
                ("TRUNKWARDEN_GITHUB_APP_ID", "12"),
                ("TRUNKWARDEN_GITHUB_APP_KEY", "not a key"),
            ]),
        )
        .err()
        .unwrap();
        assert!(e.contains("not an RSA key in PEM form"), "{e}");
        let e = from_env(
            ForgeKind::Github,
            &env(&[("TRUNKWARDEN_GITHUB_APP_ID", "twelve")]),
        )
        .err()
        .unwrap();
        assert!(e.contains("is not a number"), "{e}");
        let with_app = forges_with_token(&env(&[("TRUNKWARDEN_GITHUB_APP_ID", "12")])).unwrap();
        assert_eq!(with_app.len(), 1);
    }

    #[test]
    fn repo_refs() {
        assert_eq!(RepoRef::parse("acme/app").unwrap().to_string(), "acme/app");
        let g = RepoRef::parse("group/sub/app").unwrap();
        assert_eq!((g.owner.as_str(), g.name.as_str()), ("group/sub", "app"));
        for bad in ["", "app", "/app", "acme/", "//"] {
            assert_eq!(RepoRef::parse(bad), None, "{bad}");
        }
        assert!(Permission::Admin > Permission::Write && Permission::Triage < Permission::Write);
    }
}
