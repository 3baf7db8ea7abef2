//! GitLab over REST v4 with plain reqwest. Projects are addressed by their URL-encoded path, so
//! subgroups need no id lookup; merge requests and issues are separate threads.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Auth, Rest, segment};
use super::{
    CiResult, CiSource, CiState, CommentOutcome, Forge, ForgeError, ForgeKind, HookHealth,
    HookOutcome, HookSpec, HookTarget, JobLog, Permission, PrState, Protection, PullRequest,
    RepoRef, RepoSettings, Retry, StatusSpec, Thread, Token, User, number_after,
};

const KIND: ForgeKind = ForgeKind::Gitlab;

/// A GitLab instance.
pub struct Gitlab {
    rest: Rest,
    me: tokio::sync::OnceCell<User>,
}

impl Gitlab {
    /// `base` is the instance URL (`https://gitlab.example`) or its API root (`…/api/v4`).
    pub fn new(base: &str, token: Token, retry: Retry) -> Result<Gitlab, ForgeError> {
        let base = base.trim_end_matches('/');
        let api = if base.ends_with("/api/v4") {
            base.to_owned()
        } else {
            format!("{base}/api/v4")
        };
        Ok(Gitlab {
            rest: Rest::new(KIND, &api, token, Auth::PrivateToken, retry)?,
            me: tokio::sync::OnceCell::new(),
        })
    }

    fn project(repo: &RepoRef) -> String {
        format!("/projects/{}", segment(&repo.to_string()))
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
        Ok((list, hooks.into_iter().find(|h| h.url == url)))
    }

    fn hooks_path(target: &HookTarget) -> String {
        match target {
            HookTarget::Repo(r) => format!("{}/hooks", Self::project(r)),
            HookTarget::Org(g) => format!("/groups/{}/hooks", segment(g)),
        }
    }

    fn thread_path(repo: &RepoRef, thread: Thread) -> String {
        match thread {
            Thread::Pull(n) => format!("{}/merge_requests/{n}", Self::project(repo)),
            Thread::Issue(n) => format!("{}/issues/{n}", Self::project(repo)),
        }
    }
}

#[derive(Deserialize)]
struct ApiUser {
    id: u64,
    username: String,
}

impl From<ApiUser> for User {
    fn from(u: ApiUser) -> User {
        User {
            id: u.id,
            login: u.username,
        }
    }
}

#[derive(Deserialize)]
struct DiffRefs {
    base_sha: Option<String>,
}

#[derive(Deserialize)]
struct ApiMr {
    iid: u64,
    state: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: Option<String>,
    author: ApiUser,
    source_branch: String,
    target_branch: String,
    sha: Option<String>,
    diff_refs: Option<DiffRefs>,
    merge_commit_sha: Option<String>,
    squash_commit_sha: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Deserialize)]
struct ApiStatus {
    name: String,
    status: String,
    target_url: Option<String>,
    author: Option<ApiUser>,
}

#[derive(Deserialize)]
struct ApiNote {
    id: u64,
    #[serde(default)]
    body: String,
    author: Option<ApiUser>,
}

#[derive(Deserialize)]
struct ApiHook {
    id: u64,
    url: String,
    #[serde(default)]
    alert_status: Option<String>,
    #[serde(default)]
    disabled_until: Option<String>,
    #[serde(default)]
    push_events: bool,
    #[serde(default)]
    merge_requests_events: bool,
    #[serde(default)]
    note_events: bool,
    #[serde(default)]
    pipeline_events: bool,
    #[serde(default)]
    job_events: bool,
    #[serde(default)]
    enable_ssl_verification: bool,
}

fn ci_state(s: &str) -> CiState {
    match s {
        "success" => CiState::Success,
        "failed" => CiState::Failure,
        "canceled" => CiState::Cancelled,
        "skipped" => CiState::Skipped,
        _ => CiState::Pending,
    }
}

fn state_name(s: CiState) -> &'static str {
    match s {
        CiState::Success => "success",
        CiState::Failure | CiState::Error => "failed",
        CiState::Cancelled => "canceled",
        CiState::Skipped => "skipped",
        CiState::Pending | CiState::Neutral => "pending",
    }
}

fn mr(m: ApiMr) -> PullRequest {
    PullRequest {
        number: m.iid,
        state: match m.state.as_str() {
            "merged" => PrState::Merged,
            "opened" | "locked" => PrState::Open,
            _ => PrState::Closed,
        },
        title: m.title,
        body: m.description.unwrap_or_default(),
        author: m.author.into(),
        head_ref: m.source_branch,
        head_sha: m.sha.unwrap_or_default(),
        base_ref: m.target_branch,
        base_sha: m.diff_refs.and_then(|d| d.base_sha),
        // A fast-forward squash leaves no merge commit; the squash commit is then what landed.
        merge_commit_sha: m.merge_commit_sha.or(m.squash_commit_sha),
        labels: m.labels,
    }
}

#[async_trait::async_trait]
impl Forge for Gitlab {
    fn kind(&self) -> ForgeKind {
        KIND
    }

    async fn me(&self) -> Result<User, ForgeError> {
        self.me
            .get_or_try_init(|| async {
                let u: ApiUser = self
                    .rest
                    .json("get current user", Method::GET, "/user", None)
                    .await?;
                Ok(u.into())
            })
            .await
            .cloned()
    }

    async fn pull_request(&self, repo: &RepoRef, number: u64) -> Result<PullRequest, ForgeError> {
        let path = Self::thread_path(repo, Thread::Pull(number));
        let m: ApiMr = self
            .rest
            .json("get merge request", Method::GET, &path, None)
            .await?;
        Ok(mr(m))
    }

    async fn open_pulls(&self, repo: &RepoRef) -> Result<Vec<PullRequest>, ForgeError> {
        let mut out = Vec::new();
        for page in 1..=10 {
            let path = format!(
                "{}/merge_requests?state=opened&per_page=100&page={page}",
                Self::project(repo)
            );
            let batch: Vec<ApiMr> = self
                .rest
                .json("list merge requests", Method::GET, &path, None)
                .await?;
            let n = batch.len();
            out.extend(batch.into_iter().map(mr));
            if n < 100 {
                break;
            }
        }
        Ok(out)
    }

    async fn ci_results(&self, repo: &RepoRef, sha: &str) -> Result<Vec<CiResult>, ForgeError> {
        let mut all = Vec::new();
        for page in 1..=10 {
            let path = format!(
                "{}/repository/commits/{}/statuses?per_page=100&page={page}",
                Self::project(repo),
                segment(sha)
            );
            let batch: Vec<ApiStatus> = self
                .rest
                .json("list commit statuses", Method::GET, &path, None)
                .await?;
            let n = batch.len();
            all.extend(batch.into_iter().map(|s| CiResult {
                state: ci_state(&s.status),
                context: s.name,
                reporter: s.author.map(|a| a.username),
                target_url: s.target_url,
                source: CiSource::CommitStatus,
            }));
            if n < 100 {
                break;
            }
        }
        Ok(super::latest_per_context(all))
    }

    async fn job_log(
        &self,
        repo: &RepoRef,
        _sha: &str,
        ci: &CiResult,
    ) -> Result<Option<JobLog>, ForgeError> {
        // A CI job's status links to `…/-/jobs/{id}`; external statuses link elsewhere.
        let Some(job) = ci
            .target_url
            .as_deref()
            .and_then(|u| number_after(u, "/-/jobs/"))
        else {
            return Ok(None);
        };
        self.rest
            .log(
                "get job log",
                &format!("{}/jobs/{job}/trace", Self::project(repo)),
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
        let path = Self::thread_path(repo, Thread::Issue(issue));
        let event = if open { "reopen" } else { "close" };
        self.rest
            .send(
                "edit issue",
                Method::PUT,
                &path,
                Some(&json!({ "state_event": event })),
            )
            .await
            .map(drop)
    }

    async fn issue_open(&self, repo: &RepoRef, issue: u64) -> Result<bool, ForgeError> {
        #[derive(Deserialize)]
        struct I {
            state: String,
        }
        let path = Self::thread_path(repo, Thread::Issue(issue));
        let i: I = self
            .rest
            .json("get issue", Method::GET, &path, None)
            .await?;
        Ok(i.state == "opened")
    }

    async fn default_branch(&self, repo: &RepoRef) -> Result<String, ForgeError> {
        #[derive(Deserialize)]
        struct P {
            default_branch: String,
        }
        let p: P = self
            .rest
            .json("get project", Method::GET, &Self::project(repo), None)
            .await?;
        Ok(p.default_branch)
    }

    /// GitLab requires no single contexts outside its paid external status checks: "pipelines
    /// must succeed" is the whole pipeline, which every reported context already covers.
    async fn required_contexts(
        &self,
        _repo: &RepoRef,
        _branch: &str,
    ) -> Result<Vec<super::Required>, ForgeError> {
        Ok(Vec::new())
    }

    /// GitLab requires no single contexts ("Pipelines must succeed" is the project's own
    /// setting), and protected branches name who may push by user id.
    fn trunk_guards(&self, contexts: Vec<String>, bot: &User) -> (RepoSettings, Vec<String>) {
        let mut notes = Vec::new();
        if !contexts.is_empty() {
            notes.push(format!(
                "GitLab cannot require status contexts ({}); enable \"Pipelines must succeed\" in the project's merge request settings",
                contexts.join(", ")
            ));
        }
        (
            RepoSettings {
                allow_squash: true,
                allow_merge_commit: false,
                allow_rebase: false,
                protection: Some(Protection {
                    require_pull_request: true,
                    required_contexts: Vec::new(),
                    push_allowlist: vec![bot.id.to_string()],
                }),
            },
            notes,
        )
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
        let path = format!("{}/statuses/{}", Self::project(repo), segment(sha));
        let mut body = json!({
            "state": state_name(s.state),
            "name": s.context,
            "description": s.description,
        });
        if let Some(u) = &s.target_url {
            body["target_url"] = Value::String(u.clone());
        }
        self.rest
            .send("set commit status", Method::POST, &path, Some(&body))
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
        const CALL: &str = "merge merge request";
        let path = format!("{}/merge", Self::thread_path(repo, Thread::Pull(number)));
        let body = json!({
            "squash": true,
            "sha": head_sha,
            "squash_commit_message": format!("{title}\n\n{message}"),
        });
        match self
            .rest
            .json::<ApiMr>(CALL, Method::PUT, &path, Some(&body))
            .await
        {
            Ok(m) => mr(m).merge_commit_sha.ok_or(ForgeError::Decode {
                forge: KIND,
                call: CALL,
                message: "merged, but the merge request names no merge or squash commit".into(),
            }),
            // 409: "SHA does not match HEAD of source branch".
            Err(e) if e.status() == Some(409) => Err(ForgeError::HeadMoved {
                forge: KIND,
                call: CALL,
                expected: head_sha.to_owned(),
            }),
            Err(e) => Err(e),
        }
    }

    async fn permission(&self, repo: &RepoRef, user: &User) -> Result<Permission, ForgeError> {
        #[derive(Deserialize)]
        struct Member {
            access_level: u32,
        }
        let path = format!("{}/members/all/{}", Self::project(repo), user.id);
        match self
            .rest
            .json::<Member>("get member", Method::GET, &path, None)
            .await
        {
            Ok(m) => Ok(match m.access_level {
                50.. => Permission::Admin,
                40..=49 => Permission::Maintain,
                30..=39 => Permission::Write,
                20..=29 => Permission::Triage,
                10..=19 => Permission::Read,
                _ => Permission::None,
            }),
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
        let body = json!({
            "url": spec.url,
            "token": spec.secret.expose(),
            "push_events": true,
            "merge_requests_events": true,
            "note_events": true,
            "pipeline_events": true,
            "job_events": true,
            "enable_ssl_verification": true,
        });
        match &found {
            None => {
                self.rest
                    .send("add hook", Method::POST, &list, Some(&body))
                    .await?;
                Ok(HookOutcome::Created)
            }
            Some(h) => {
                if h.push_events
                    && h.merge_requests_events
                    && h.note_events
                    && h.pipeline_events
                    && h.job_events
                    && h.enable_ssl_verification
                {
                    return Ok(HookOutcome::Unchanged);
                }
                let path = format!("{list}/{}", h.id);
                self.rest
                    .send("edit hook", Method::PUT, &path, Some(&body))
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
        // GitLab disables a hook that keeps failing and says so in `alert_status`.
        Ok(match found {
            None => HookHealth::Missing,
            Some(h) => match h.alert_status.as_deref() {
                Some("executable") => {
                    HookHealth::Healthy("GitLab reports the hook executable".into())
                }
                Some(s @ ("disabled" | "temporarily_disabled")) => HookHealth::Failing(format!(
                    "GitLab {} the hook after failed deliveries{}",
                    s.replace('_', " "),
                    h.disabled_until
                        .as_deref()
                        .map(|u| format!(" (until {u})"))
                        .unwrap_or_default()
                )),
                _ => HookHealth::Unknown("this GitLab does not report hook status".into()),
            },
        })
    }

    async fn settings(&self, repo: &RepoRef, branch: &str) -> Result<RepoSettings, ForgeError> {
        #[derive(Deserialize)]
        struct Project {
            merge_method: Option<String>,
            squash_option: Option<String>,
        }
        #[derive(Deserialize)]
        struct Level {
            access_level: Option<u32>,
            user_id: Option<u64>,
        }
        #[derive(Deserialize)]
        struct Protected {
            #[serde(default)]
            push_access_levels: Vec<Level>,
        }
        let p: Project = self
            .rest
            .json("get project", Method::GET, &Self::project(repo), None)
            .await?;
        let squash = p.squash_option.as_deref().unwrap_or("default_off");
        let method = p.merge_method.as_deref().unwrap_or("merge");
        let path = format!(
            "{}/protected_branches/{}",
            Self::project(repo),
            segment(branch)
        );
        let protection = match self
            .rest
            .json::<Protected>("get protected branch", Method::GET, &path, None)
            .await
        {
            Ok(b) => Some(Protection {
                // Nobody may push (level 0) unless listed by user: changes arrive as merges.
                require_pull_request: b
                    .push_access_levels
                    .iter()
                    .all(|l| l.user_id.is_some() || l.access_level == Some(0)),
                required_contexts: Vec::new(),
                push_allowlist: b
                    .push_access_levels
                    .iter()
                    .filter_map(|l| l.user_id.map(|id| id.to_string()))
                    .collect(),
            }),
            Err(e) if e.status() == Some(404) => None,
            Err(e) => return Err(e),
        };
        Ok(RepoSettings {
            allow_squash: squash != "never",
            // Squash "always" with fast-forward merges leaves exactly one commit per MR.
            allow_merge_commit: squash != "always" || method == "merge",
            allow_rebase: method == "rebase_merge" && squash != "always",
            protection,
        })
    }

    async fn apply_settings(
        &self,
        repo: &RepoRef,
        branch: &str,
        desired: &RepoSettings,
    ) -> Result<(), ForgeError> {
        let squash_only =
            desired.allow_squash && !desired.allow_merge_commit && !desired.allow_rebase;
        let body = json!({
            "squash_option": if squash_only { "always" } else { "default_off" },
            "merge_method": if squash_only { "ff" } else { "merge" },
            // The bot closes issues after CI on the merge commit is green, not GitLab at merge.
            "autoclose_referenced_issues": false,
        });
        self.rest
            .send(
                "edit project",
                Method::PUT,
                &Self::project(repo),
                Some(&body),
            )
            .await?;
        let Some(p) = &desired.protection else {
            return Ok(());
        };
        if !p.required_contexts.is_empty() {
            return Err(ForgeError::Unsupported {
                forge: KIND,
                call: "protect branch",
                message: "GitLab has no required status contexts; enable \"Pipelines must succeed\" in the project's merge request settings".into(),
            });
        }
        let path = format!(
            "{}/protected_branches/{}",
            Self::project(repo),
            segment(branch)
        );
        match self
            .rest
            .send("unprotect branch", Method::DELETE, &path, None)
            .await
        {
            Err(e) if e.status() != Some(404) => return Err(e),
            _ => {}
        }
        let mut body = json!({
            "name": branch,
            "push_access_level": 0,
            "merge_access_level": 30,
        });
        let users: Vec<Value> = p
            .push_allowlist
            .iter()
            .filter_map(|u| u.parse::<u64>().ok())
            .map(|id| json!({ "user_id": id }))
            .collect();
        if !users.is_empty() {
            body["allowed_to_push"] = Value::Array(users);
        }
        let create = format!("{}/protected_branches", Self::project(repo));
        self.rest
            .send("protect branch", Method::POST, &create, Some(&body))
            .await
            .map(drop)
    }
}

#[async_trait::async_trait]
impl super::Comments for Gitlab {
    async fn comments_page(
        &self,
        repo: &RepoRef,
        thread: Thread,
        page: u32,
    ) -> Result<Vec<super::Posted>, ForgeError> {
        let path = format!(
            "{}/notes?per_page={}&page={page}",
            Self::thread_path(repo, thread),
            super::PAGE
        );
        let list: Vec<ApiNote> = self
            .rest
            .json("list notes", Method::GET, &path, None)
            .await?;
        Ok(list
            .into_iter()
            .map(|c| super::Posted {
                id: c.id,
                author: c.author.map(|u| u.id),
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
        let path = format!("{}/notes", Self::thread_path(repo, thread));
        let c: ApiNote = self
            .rest
            .json(
                "create note",
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
        thread: Thread,
        id: u64,
        body: &str,
    ) -> Result<(), ForgeError> {
        let path = format!("{}/notes/{id}", Self::thread_path(repo, thread));
        self.rest
            .send(
                "update note",
                Method::PUT,
                &path,
                Some(&json!({ "body": body })),
            )
            .await
            .map(drop)
    }

    async fn delete_comment(
        &self,
        repo: &RepoRef,
        thread: Thread,
        id: u64,
    ) -> Result<(), ForgeError> {
        let path = format!("{}/notes/{id}", Self::thread_path(repo, thread));
        self.rest
            .send("delete note", Method::DELETE, &path, None)
            .await
            .map(drop)
    }
}
