//! Gitea and Forgejo over their REST API (`/api/v1`), with plain reqwest. The two differ where
//! Forgejo renamed fields: the merge style is `do` on Gitea and `Do` on Forgejo, and Forgejo
//! has its own hook type.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Auth, Rest, segment};
use super::{
    CiResult, CiSource, CiState, CommentOutcome, Forge, ForgeError, ForgeKind, HookHealth,
    HookOutcome, HookSpec, HookTarget, JobLog, Permission, PrState, Protection, PullRequest,
    RepoRef, RepoSettings, Retry, StatusSpec, Thread, Token, User,
};

/// A Gitea or Forgejo instance.
pub struct Gitea {
    kind: ForgeKind,
    rest: Rest,
    me: tokio::sync::OnceCell<User>,
}

impl Gitea {
    /// `base` is the instance URL (`https://git.example`) or its API root (`…/api/v1`).
    pub fn new(
        kind: ForgeKind,
        base: &str,
        token: Token,
        retry: Retry,
    ) -> Result<Gitea, ForgeError> {
        let base = base.trim_end_matches('/');
        let api = if base.ends_with("/api/v1") {
            base.to_owned()
        } else {
            format!("{base}/api/v1")
        };
        Ok(Gitea {
            kind,
            rest: Rest::new(kind, &api, token, Auth::TokenScheme, retry)?,
            me: tokio::sync::OnceCell::new(),
        })
    }

    fn repo_path(repo: &RepoRef) -> String {
        format!("/repos/{}/{}", segment(&repo.owner), segment(&repo.name))
    }

    /// The hooks path of `target` and the hook there that sends to `url`.
    async fn find_hook(
        &self,
        target: &HookTarget,
        url: &str,
    ) -> Result<(String, Option<ApiHook>), ForgeError> {
        let list = Self::hooks_path(target);
        let hooks: Vec<ApiHook> = self
            .rest
            .json("list hooks", Method::GET, &list, None)
            .await?;
        let found = hooks
            .into_iter()
            .find(|h| h.config.get("url").map(String::as_str) == Some(url));
        Ok((list, found))
    }

    fn hooks_path(target: &HookTarget) -> String {
        match target {
            HookTarget::Repo(r) => format!("{}/hooks", Self::repo_path(r)),
            HookTarget::Org(o) => format!("/orgs/{}/hooks", segment(o)),
        }
    }
}

/// `GET /repos/{owner}/{repo}/actions/runs`.
#[derive(Deserialize)]
struct ApiRuns {
    #[serde(default)]
    workflow_runs: Vec<ApiRun>,
}

#[derive(Deserialize)]
struct ApiRun {
    id: u64,
    #[serde(default)]
    head_sha: String,
}

/// `GET /repos/{owner}/{repo}/actions/runs/{run}/jobs`.
#[derive(Deserialize)]
struct ApiJobs {
    #[serde(default)]
    jobs: Vec<ApiJob>,
}

#[derive(Deserialize)]
struct ApiJob {
    id: u64,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct ApiUser {
    id: u64,
    login: String,
}

impl From<ApiUser> for User {
    fn from(u: ApiUser) -> User {
        User {
            id: u.id,
            login: u.login,
        }
    }
}

#[derive(Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    name: String,
    sha: Option<String>,
}

#[derive(Deserialize)]
struct Label {
    name: String,
}

#[derive(Deserialize)]
struct ApiPull {
    number: u64,
    state: String,
    #[serde(default)]
    merged: bool,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: Option<String>,
    user: ApiUser,
    head: Branch,
    base: Branch,
    merge_commit_sha: Option<String>,
    #[serde(default)]
    labels: Vec<Label>,
}

#[derive(Deserialize)]
struct ApiStatus {
    context: String,
    status: Option<String>,
    state: Option<String>,
    target_url: Option<String>,
    creator: Option<ApiUser>,
}

#[derive(Deserialize)]
struct ApiComment {
    id: u64,
    #[serde(default)]
    body: String,
    user: Option<ApiUser>,
}

#[derive(Deserialize)]
struct ApiHook {
    id: u64,
    #[serde(default)]
    config: std::collections::HashMap<String, String>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    active: bool,
}

#[derive(Deserialize)]
struct ApiRepo {
    #[serde(default)]
    allow_squash_merge: bool,
    #[serde(default)]
    allow_merge_commits: bool,
    #[serde(default)]
    allow_rebase: bool,
}

#[derive(Deserialize)]
struct ApiProtection {
    #[serde(default)]
    enable_push: bool,
    #[serde(default)]
    enable_push_whitelist: bool,
    #[serde(default)]
    push_whitelist_usernames: Option<Vec<String>>,
    #[serde(default)]
    enable_status_check: bool,
    #[serde(default)]
    status_check_contexts: Option<Vec<String>>,
}

/// The events the bot consumes, in Gitea's names.
const EVENTS: [&str; 6] = [
    "push",
    "pull_request",
    "pull_request_sync",
    "issue_comment",
    "pull_request_comment",
    "status",
];

fn ci_state(s: &str) -> CiState {
    match s {
        "success" => CiState::Success,
        "failure" => CiState::Failure,
        "error" => CiState::Error,
        "warning" => CiState::Neutral,
        "skipped" => CiState::Skipped,
        _ => CiState::Pending,
    }
}

fn state_name(s: CiState) -> &'static str {
    match s {
        CiState::Success => "success",
        CiState::Failure => "failure",
        CiState::Error | CiState::Cancelled => "error",
        CiState::Skipped => "skipped",
        CiState::Neutral => "warning",
        CiState::Pending => "pending",
    }
}

/// A pull request as the engine reads it.
fn pull(p: ApiPull) -> PullRequest {
    PullRequest {
        number: p.number,
        state: match (p.merged, p.state.as_str()) {
            (true, _) => PrState::Merged,
            (false, "open") => PrState::Open,
            _ => PrState::Closed,
        },
        title: p.title,
        body: p.body.unwrap_or_default(),
        author: p.user.into(),
        head_ref: p.head.name,
        head_sha: p.head.sha.unwrap_or_default(),
        base_ref: p.base.name,
        base_sha: p.base.sha,
        merge_commit_sha: p.merge_commit_sha.filter(|s| p.merged && !s.is_empty()),
        labels: p.labels.into_iter().map(|l| l.name).collect(),
    }
}

#[async_trait::async_trait]
impl Forge for Gitea {
    fn kind(&self) -> ForgeKind {
        self.kind
    }

    async fn me(&self) -> Result<User, ForgeError> {
        self.me
            .get_or_try_init(|| async {
                let u: ApiUser = self
                    .rest
                    .json("get user", Method::GET, "/user", None)
                    .await?;
                Ok(u.into())
            })
            .await
            .cloned()
    }

    async fn pull_request(&self, repo: &RepoRef, number: u64) -> Result<PullRequest, ForgeError> {
        let path = format!("{}/pulls/{number}", Self::repo_path(repo));
        let p: ApiPull = self
            .rest
            .json("get pull request", Method::GET, &path, None)
            .await?;
        Ok(pull(p))
    }

    async fn open_pulls(&self, repo: &RepoRef) -> Result<Vec<PullRequest>, ForgeError> {
        let mut out = Vec::new();
        for page in 1..=20 {
            let path = format!(
                "{}/pulls?state=open&limit=50&page={page}",
                Self::repo_path(repo)
            );
            let batch: Vec<ApiPull> = self
                .rest
                .json("list pull requests", Method::GET, &path, None)
                .await?;
            let n = batch.len();
            out.extend(batch.into_iter().map(pull));
            if n < 50 {
                break;
            }
        }
        Ok(out)
    }

    async fn ci_results(&self, repo: &RepoRef, sha: &str) -> Result<Vec<CiResult>, ForgeError> {
        let mut all = Vec::new();
        for page in 1..=10 {
            let path = format!(
                "{}/commits/{}/statuses?sort=recentupdate&limit=50&page={page}",
                Self::repo_path(repo),
                segment(sha)
            );
            let batch: Vec<ApiStatus> = self
                .rest
                .json("list commit statuses", Method::GET, &path, None)
                .await?;
            let n = batch.len();
            all.extend(batch.into_iter().map(|s| CiResult {
                context: s.context,
                state: ci_state(s.status.or(s.state).as_deref().unwrap_or("pending")),
                reporter: s.creator.map(|c| c.login),
                target_url: s.target_url.filter(|u| !u.is_empty()),
                source: CiSource::CommitStatus,
            }));
            if n < 50 {
                break;
            }
        }
        Ok(super::latest_per_context(all))
    }

    async fn job_log(
        &self,
        repo: &RepoRef,
        sha: &str,
        ci: &CiResult,
    ) -> Result<Option<JobLog>, ForgeError> {
        // Gitea Actions link their statuses to `…/actions/runs/{n}/jobs/{i}` (indexes, not
        // ids): the failed job is found among the runs of the commit. Forgejo's API serves no
        // job logs; other CI systems' statuses link elsewhere.
        let actions = ci
            .target_url
            .as_deref()
            .is_some_and(|u| u.contains("/actions/runs/"));
        if self.kind != ForgeKind::Gitea || !actions {
            return Ok(None);
        }
        let base = Self::repo_path(repo);
        let path = format!("{base}/actions/runs?head_sha={}&limit=20", segment(sha));
        let runs: ApiRuns = match self
            .rest
            .json("list workflow runs", Method::GET, &path, None)
            .await
        {
            Ok(r) => r,
            // A Gitea before the Actions API.
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut failed = Vec::new();
        for run in runs.workflow_runs.iter().filter(|r| r.head_sha == sha) {
            let path = format!(
                "{base}/actions/runs/{}/jobs?status=failure&limit=50",
                run.id
            );
            let jobs: ApiJobs = self
                .rest
                .json("list workflow jobs", Method::GET, &path, None)
                .await?;
            failed.extend(jobs.jobs);
        }
        // The status context reads `workflow / job (event)`.
        let named = failed
            .iter()
            .find(|j| ci.context.contains(&format!("/ {} (", j.name)) || ci.context == j.name);
        let Some(job) = named.or(failed.first().filter(|_| failed.len() == 1)) else {
            return Ok(None);
        };
        self.rest
            .log(
                "download job logs",
                &format!("{base}/actions/jobs/{}/logs", job.id),
            )
            .await
    }

    async fn upsert_comment(
        &self,
        repo: &RepoRef,
        thread: Thread,
        marker: &str,
        body: &str,
        prior: super::Prior,
    ) -> Result<CommentOutcome, ForgeError> {
        let me = self.me().await?;
        super::upsert_sticky(self, &me, repo, thread, marker, body, prior).await
    }

    async fn delete_comment(
        &self,
        repo: &RepoRef,
        thread: Thread,
        id: u64,
    ) -> Result<(), ForgeError> {
        super::Comments::delete_comment(self, repo, thread, id).await
    }

    async fn set_issue_open(
        &self,
        repo: &RepoRef,
        issue: u64,
        open: bool,
    ) -> Result<(), ForgeError> {
        let path = format!("{}/issues/{issue}", Self::repo_path(repo));
        let state = if open { "open" } else { "closed" };
        self.rest
            .send(
                "edit issue",
                Method::PATCH,
                &path,
                Some(&json!({ "state": state })),
            )
            .await
            .map(drop)
    }

    async fn issue_open(&self, repo: &RepoRef, issue: u64) -> Result<bool, ForgeError> {
        #[derive(Deserialize)]
        struct I {
            state: String,
        }
        let path = format!("{}/issues/{issue}", Self::repo_path(repo));
        let i: I = self
            .rest
            .json("get issue", Method::GET, &path, None)
            .await?;
        Ok(i.state == "open")
    }

    async fn default_branch(&self, repo: &RepoRef) -> Result<String, ForgeError> {
        #[derive(Deserialize)]
        struct R {
            default_branch: String,
        }
        let r: R = self
            .rest
            .json("get repository", Method::GET, &Self::repo_path(repo), None)
            .await?;
        Ok(r.default_branch)
    }

    fn budget(&self) -> Option<super::Budget> {
        self.rest.state.budget()
    }

    async fn set_status(
        &self,
        repo: &RepoRef,
        sha: &str,
        s: &StatusSpec,
    ) -> Result<(), ForgeError> {
        let path = format!("{}/statuses/{}", Self::repo_path(repo), segment(sha));
        let mut body = json!({
            "context": s.context,
            "state": state_name(s.state),
            "description": s.description,
        });
        if let Some(u) = &s.target_url {
            body["target_url"] = Value::String(u.clone());
        }
        self.rest
            .send("create commit status", Method::POST, &path, Some(&body))
            .await
            .map(drop)
    }

    async fn squash_merge(
        &self,
        repo: &RepoRef,
        number: u64,
        head_sha: &str,
        title: &str,
        message: &str,
    ) -> Result<String, ForgeError> {
        const CALL: &str = "merge pull request";
        let path = format!("{}/pulls/{number}/merge", Self::repo_path(repo));
        let body = match self.kind {
            ForgeKind::Forgejo => json!({
                "Do": "squash",
                "head_commit_id": head_sha,
                "MergeTitleField": title,
                "MergeMessageField": message,
            }),
            _ => json!({
                "do": "squash",
                "head_commit_id": head_sha,
                "merge_title_field": title,
                "merge_message_field": message,
            }),
        };
        if let Err(e) = self.rest.send(CALL, Method::POST, &path, Some(&body)).await {
            // 405/409: not mergeable as it stands; a moved head is the case worth naming.
            if matches!(e.status(), Some(405 | 409)) {
                let now = self.pull_request(repo, number).await?;
                if now.head_sha != head_sha {
                    return Err(ForgeError::HeadMoved {
                        forge: self.kind,
                        call: CALL,
                        expected: head_sha.to_owned(),
                    });
                }
            }
            return Err(e);
        }
        let merged = self.pull_request(repo, number).await?;
        merged.merge_commit_sha.ok_or(ForgeError::Decode {
            forge: self.kind,
            call: CALL,
            message: "merged, but the pull request names no merge commit".into(),
        })
    }

    async fn permission(&self, repo: &RepoRef, user: &User) -> Result<Permission, ForgeError> {
        #[derive(Deserialize)]
        struct P {
            permission: String,
        }
        let path = format!(
            "{}/collaborators/{}/permission",
            Self::repo_path(repo),
            segment(&user.login)
        );
        match self
            .rest
            .json::<P>("get permission", Method::GET, &path, None)
            .await
        {
            Ok(p) => Ok(match p.permission.as_str() {
                "owner" | "admin" => Permission::Admin,
                "write" => Permission::Write,
                "read" => Permission::Read,
                _ => Permission::None,
            }),
            // Gitea answers 404 for someone who is no collaborator.
            Err(e) if e.status() == Some(404) => Ok(Permission::None),
            Err(e) => Err(e),
        }
    }

    async fn upsert_webhook(
        &self,
        target: &HookTarget,
        spec: &HookSpec,
    ) -> Result<HookOutcome, ForgeError> {
        let (list, found) = self.find_hook(target, &spec.url).await?;
        let config = json!({
            "url": spec.url,
            "content_type": "json",
            "secret": spec.secret.expose(),
        });
        let events: Vec<&str> = EVENTS.to_vec();
        match &found {
            None => {
                let hook_type = if self.kind == ForgeKind::Forgejo {
                    "forgejo"
                } else {
                    "gitea"
                };
                let body = json!({ "type": hook_type, "config": config, "events": events, "active": true });
                self.rest
                    .send("create hook", Method::POST, &list, Some(&body))
                    .await?;
                Ok(HookOutcome::Created)
            }
            Some(h) => {
                // The secret cannot be read back, so it is rewritten only with other changes.
                let same_events = EVENTS.iter().all(|e| h.events.iter().any(|x| x == e));
                if same_events
                    && h.active
                    && h.config.get("content_type").map(String::as_str) == Some("json")
                {
                    return Ok(HookOutcome::Unchanged);
                }
                let path = format!("{list}/{}", h.id);
                let body = json!({ "config": config, "events": events, "active": true });
                self.rest
                    .send("edit hook", Method::PATCH, &path, Some(&body))
                    .await?;
                Ok(HookOutcome::Updated)
            }
        }
    }

    async fn webhook_health(
        &self,
        target: &HookTarget,
        url: &str,
    ) -> Result<HookHealth, ForgeError> {
        let (_, found) = self.find_hook(target, url).await?;
        Ok(match found {
            None => HookHealth::Missing,
            Some(h) if !h.active => HookHealth::Failing("the hook is inactive".into()),
            Some(_) => HookHealth::Unknown(format!(
                "{} does not expose delivery results in its API; see the hook's Recent Deliveries page",
                self.kind
            )),
        })
    }

    async fn settings(&self, repo: &RepoRef, branch: &str) -> Result<RepoSettings, ForgeError> {
        let r: ApiRepo = self
            .rest
            .json("get repository", Method::GET, &Self::repo_path(repo), None)
            .await?;
        let path = format!(
            "{}/branch_protections/{}",
            Self::repo_path(repo),
            segment(branch)
        );
        let protection = match self
            .rest
            .json::<ApiProtection>("get branch protection", Method::GET, &path, None)
            .await
        {
            Ok(p) => Some(Protection {
                // Gitea protects a branch from direct pushes unless `enable_push` is set.
                require_pull_request: !p.enable_push || p.enable_push_whitelist,
                required_contexts: if p.enable_status_check {
                    p.status_check_contexts.unwrap_or_default()
                } else {
                    Vec::new()
                },
                push_allowlist: if p.enable_push && p.enable_push_whitelist {
                    p.push_whitelist_usernames.unwrap_or_default()
                } else {
                    Vec::new()
                },
            }),
            Err(e) if e.status() == Some(404) => None,
            Err(e) => return Err(e),
        };
        Ok(RepoSettings {
            allow_squash: r.allow_squash_merge,
            allow_merge_commit: r.allow_merge_commits,
            allow_rebase: r.allow_rebase,
            protection,
        })
    }

    async fn apply_settings(
        &self,
        repo: &RepoRef,
        branch: &str,
        desired: &RepoSettings,
    ) -> Result<(), ForgeError> {
        let body = json!({
            "allow_squash_merge": desired.allow_squash,
            "allow_merge_commits": desired.allow_merge_commit,
            "allow_rebase": desired.allow_rebase,
            "allow_rebase_explicit": desired.allow_rebase,
        });
        self.rest
            .send(
                "edit repository",
                Method::PATCH,
                &Self::repo_path(repo),
                Some(&body),
            )
            .await?;
        let Some(p) = &desired.protection else {
            return Ok(());
        };
        let allow = !p.push_allowlist.is_empty();
        let mut body = json!({
            "enable_push": allow,
            "enable_push_whitelist": allow,
            "push_whitelist_usernames": p.push_allowlist,
            "enable_status_check": !p.required_contexts.is_empty(),
            "status_check_contexts": p.required_contexts,
        });
        let path = format!(
            "{}/branch_protections/{}",
            Self::repo_path(repo),
            segment(branch)
        );
        match self
            .rest
            .send("edit branch protection", Method::PATCH, &path, Some(&body))
            .await
        {
            Err(e) if e.status() == Some(404) => {
                body["rule_name"] = Value::String(branch.to_owned());
                let create = format!("{}/branch_protections", Self::repo_path(repo));
                self.rest
                    .send(
                        "create branch protection",
                        Method::POST,
                        &create,
                        Some(&body),
                    )
                    .await
                    .map(drop)
            }
            other => other.map(drop),
        }
    }
}

#[async_trait::async_trait]
impl super::Comments for Gitea {
    async fn comments_page(
        &self,
        repo: &RepoRef,
        thread: Thread,
        page: u32,
    ) -> Result<Vec<super::Posted>, ForgeError> {
        // Gitea lists a thread's comments whole, without pages.
        if page > 1 {
            return Ok(Vec::new());
        }
        let path = format!(
            "{}/issues/{}/comments",
            Self::repo_path(repo),
            thread.number()
        );
        let list: Vec<ApiComment> = self
            .rest
            .json("list comments", Method::GET, &path, None)
            .await?;
        Ok(list
            .into_iter()
            .map(|c| super::Posted {
                id: c.id,
                author: c.user.map(|u| u.id),
                body: c.body,
            })
            .collect())
    }

    async fn create_comment(
        &self,
        repo: &RepoRef,
        thread: Thread,
        body: &str,
    ) -> Result<u64, ForgeError> {
        let path = format!(
            "{}/issues/{}/comments",
            Self::repo_path(repo),
            thread.number()
        );
        let c: ApiComment = self
            .rest
            .json(
                "create comment",
                Method::POST,
                &path,
                Some(&json!({ "body": body })),
            )
            .await?;
        Ok(c.id)
    }

    async fn edit_comment(
        &self,
        repo: &RepoRef,
        _thread: Thread,
        id: u64,
        body: &str,
    ) -> Result<(), ForgeError> {
        let path = format!("{}/issues/comments/{id}", Self::repo_path(repo));
        self.rest
            .send(
                "edit comment",
                Method::PATCH,
                &path,
                Some(&json!({ "body": body })),
            )
            .await
            .map(drop)
    }

    async fn delete_comment(
        &self,
        repo: &RepoRef,
        _thread: Thread,
        id: u64,
    ) -> Result<(), ForgeError> {
        let path = format!("{}/issues/comments/{id}", Self::repo_path(repo));
        self.rest
            .send("delete comment", Method::DELETE, &path, None)
            .await
            .map(drop)
    }
}
