//! GitHub (and GitHub Enterprise Server) through octocrab. octocrab carries authentication,
//! the base URL and the HTTP client; responses are decoded into the few fields the engine
//! uses, because octocrab's full models insist on fields older GHES versions and other
//! GitHub-compatible servers leave out.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{CallState, Reply, segment, with_state};
use super::{
    CiResult, CiSource, CiState, CommentOutcome, Forge, ForgeError, ForgeKind, HookHealth,
    HookOutcome, HookSpec, HookTarget, JobLog, Permission, PrState, Protection, PullRequest,
    RepoRef, RepoSettings, Retry, StatusSpec, Thread, Token, User, number_after,
};

const KIND: ForgeKind = ForgeKind::Github;

/// A GitHub or GHES API endpoint.
pub struct Github {
    octo: octocrab::Octocrab,
    /// The API root, for the one call octocrab would read whole: a job's log.
    base: String,
    /// Streams job logs, following GitHub's redirect to their storage.
    logs: reqwest::Client,
    token: Token,
    /// With a GitHub App, every call carries the token of the installation that covers it.
    app: Option<std::sync::Arc<super::github_app::App>>,
    retry: Retry,
    me: tokio::sync::OnceCell<User>,
    /// What this adapter remembers between calls.
    pub state: CallState,
}

impl Github {
    /// `base` is `https://api.github.com` or a GHES API root (`https://ghe.example/api/v3`).
    pub fn new(base: &str, token: Token, retry: Retry) -> Result<Github, ForgeError> {
        Github::build(base, Some(token), None, retry)
    }

    /// An adapter acting as a GitHub App: each call with its installation's token.
    pub fn with_app(
        base: &str,
        app: std::sync::Arc<super::github_app::App>,
        retry: Retry,
    ) -> Result<Github, ForgeError> {
        Github::build(base, None, Some(app), retry)
    }

    fn build(
        base: &str,
        token: Option<Token>,
        app: Option<std::sync::Arc<super::github_app::App>>,
        retry: Retry,
    ) -> Result<Github, ForgeError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let err = |message: String| ForgeError::Transport {
            forge: KIND,
            call: "client",
            message,
        };
        let mut builder = octocrab::Octocrab::builder()
            .base_uri(base.trim_end_matches('/'))
            .map_err(|e| err(format!("base URL {base}: {e}")))?
            .set_connect_timeout(Some(std::time::Duration::from_secs(10)))
            .set_read_timeout(Some(std::time::Duration::from_secs(30)));
        if let Some(t) = &token {
            builder = builder.personal_token(t.expose().to_owned());
        }
        let octo = builder.build().map_err(|e| err(e.to_string()))?;
        let logs = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("trunkwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| err(e.to_string()))?;
        Ok(Github {
            octo,
            base: base.trim_end_matches('/').to_owned(),
            logs,
            token: token.unwrap_or_else(|| Token::new("")),
            app,
            retry,
            me: tokio::sync::OnceCell::new(),
            state: CallState::default(),
        })
    }

    fn repo_path(repo: &RepoRef) -> String {
        format!("/repos/{}/{}", segment(&repo.owner), segment(&repo.name))
    }

    fn hooks_path(target: &HookTarget) -> String {
        match target {
            HookTarget::Repo(r) => format!("{}/hooks", Self::repo_path(r)),
            HookTarget::Org(o) => format!("/orgs/{}/hooks", segment(o)),
        }
    }

    /// The token a call carries: the adapter's, or the installation's that covers the
    /// repository or organisation the path names.
    async fn token_for_path(&self, path: &str) -> Result<Token, ForgeError> {
        let Some(app) = &self.app else {
            return Ok(self.token.clone());
        };
        let p = path.split('?').next().unwrap_or(path);
        let segs: Vec<&str> = p.trim_start_matches('/').split('/').collect();
        let installation = match segs.as_slice() {
            ["repos", owner, name, ..] => app.installation(owner, Some(name)).await?,
            ["orgs", org, ..] => app.installation(org, None).await?,
            _ => {
                return Err(ForgeError::Unsupported {
                    forge: KIND,
                    call: "installation token",
                    message: format!("{p} is not a repository's or an organisation's"),
                });
            }
        };
        app.token(installation).await
    }

    async fn send(
        &self,
        call: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ForgeError> {
        if self.app.is_some() {
            return self.send_as_installation(call, method, path, body).await;
        }
        let conditional = (method == Method::GET).then_some(path);
        let method = &method;
        with_state(
            KIND,
            call,
            &self.retry,
            &self.token,
            Some(&self.state),
            conditional,
            |etag| async move {
                let o = &self.octo;
                let resp = match *method {
                    Method::GET => {
                        let mut h = reqwest::header::HeaderMap::new();
                        if let Some(v) =
                            etag.and_then(|e| reqwest::header::HeaderValue::from_str(&e).ok())
                        {
                            h.insert(reqwest::header::IF_NONE_MATCH, v);
                        }
                        o._get_with_headers(path, Some(h)).await
                    }
                    Method::POST => o._post(path, body).await,
                    Method::PATCH => o._patch(path, body).await,
                    Method::PUT => o._put(path, body).await,
                    _ => o._delete(path, body).await,
                }
                .map_err(|e| e.to_string())?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let text = o.body_to_string(resp).await.map_err(|e| e.to_string())?;
                Ok(Reply {
                    status,
                    headers,
                    body: text.into_bytes(),
                })
            },
        )
        .await
    }

    /// [`Github::send`] with the installation's token in the request.
    async fn send_as_installation(
        &self,
        call: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ForgeError> {
        let token = self.token_for_path(path).await?;
        let conditional = (method == Method::GET).then_some(path);
        let (method, token) = (&method, &token);
        with_state(
            KIND,
            call,
            &self.retry,
            token,
            Some(&self.state),
            conditional,
            |etag| async move {
                let o = &self.octo;
                let mut req = http::Request::builder()
                    .method(method.clone())
                    .uri(path)
                    .header(
                        reqwest::header::AUTHORIZATION,
                        format!("Bearer {}", token.expose()),
                    );
                if let Some(e) = etag {
                    req = req.header(reqwest::header::IF_NONE_MATCH, e);
                }
                let req = o.build_request(req, body).map_err(|e| e.to_string())?;
                let resp = o.execute(req).await.map_err(|e| e.to_string())?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let text = o.body_to_string(resp).await.map_err(|e| e.to_string())?;
                Ok(Reply {
                    status,
                    headers,
                    body: text.into_bytes(),
                })
            },
        )
        .await
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        call: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ForgeError> {
        self.send(call, method, path, body).await?.json(KIND, call)
    }
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
    sha: String,
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
    merged_at: Option<String>,
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
    state: String,
    target_url: Option<String>,
    creator: Option<ApiUser>,
}

#[derive(Deserialize)]
struct App {
    slug: Option<String>,
}

#[derive(Deserialize)]
struct ApiCheckRun {
    name: String,
    status: String,
    conclusion: Option<String>,
    details_url: Option<String>,
    html_url: Option<String>,
    app: Option<App>,
}

#[derive(Deserialize)]
struct CheckRuns {
    check_runs: Vec<ApiCheckRun>,
}

#[derive(Deserialize)]
struct ApiComment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    user: Option<ApiUser>,
}

#[derive(Deserialize)]
struct ApiHook {
    id: u64,
    #[serde(default)]
    config: serde_json::Map<String, Value>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    active: bool,
}

const EVENTS: [&str; 7] = [
    "push",
    "pull_request",
    "issue_comment",
    "status",
    "check_run",
    "check_suite",
    "workflow_run",
];

fn state_name(s: CiState) -> &'static str {
    match s {
        CiState::Success => "success",
        CiState::Failure => "failure",
        CiState::Error | CiState::Cancelled => "error",
        CiState::Pending | CiState::Neutral | CiState::Skipped => "pending",
    }
}

fn status_state(s: &str) -> CiState {
    match s {
        "success" => CiState::Success,
        "failure" => CiState::Failure,
        "error" => CiState::Error,
        _ => CiState::Pending,
    }
}

fn check_state(status: &str, conclusion: Option<&str>) -> CiState {
    if status != "completed" {
        return CiState::Pending;
    }
    match conclusion {
        Some("success") => CiState::Success,
        Some("neutral") => CiState::Neutral,
        Some("skipped") => CiState::Skipped,
        Some("cancelled") => CiState::Cancelled,
        Some("failure" | "timed_out" | "action_required" | "startup_failure" | "stale") => {
            CiState::Failure
        }
        _ => CiState::Error,
    }
}

/// A pull request as the engine reads it.
fn pull(p: ApiPull) -> PullRequest {
    let merged = p.merged || p.merged_at.is_some();
    PullRequest {
        number: p.number,
        state: match (merged, p.state.as_str()) {
            (true, _) => PrState::Merged,
            (false, "open") => PrState::Open,
            _ => PrState::Closed,
        },
        title: p.title,
        body: p.body.unwrap_or_default(),
        author: p.user.into(),
        head_ref: p.head.name,
        head_sha: p.head.sha,
        base_ref: p.base.name,
        base_sha: Some(p.base.sha),
        // Before a merge, GitHub fills this with a test merge commit; it means nothing then.
        merge_commit_sha: p.merge_commit_sha.filter(|_| merged),
        labels: p.labels.into_iter().map(|l| l.name).collect(),
    }
}

#[async_trait::async_trait]
impl Forge for Github {
    fn kind(&self) -> ForgeKind {
        KIND
    }

    async fn me(&self) -> Result<User, ForgeError> {
        if let Some(app) = &self.app {
            return app.identity().await;
        }
        self.me
            .get_or_try_init(|| async {
                let u: ApiUser = self
                    .json("get authenticated user", Method::GET, "/user", None)
                    .await?;
                Ok(u.into())
            })
            .await
            .cloned()
    }

    async fn pull_request(&self, repo: &RepoRef, number: u64) -> Result<PullRequest, ForgeError> {
        let path = format!("{}/pulls/{number}", Self::repo_path(repo));
        let p: ApiPull = self
            .json("get pull request", Method::GET, &path, None)
            .await?;
        Ok(pull(p))
    }

    async fn open_pulls(&self, repo: &RepoRef) -> Result<Vec<PullRequest>, ForgeError> {
        let mut out = Vec::new();
        for page in 1..=10 {
            let path = format!(
                "{}/pulls?state=open&per_page=100&page={page}",
                Self::repo_path(repo)
            );
            let batch: Vec<ApiPull> = self
                .json("list pull requests", Method::GET, &path, None)
                .await?;
            let n = batch.len();
            out.extend(batch.into_iter().map(pull));
            if n < 100 {
                break;
            }
        }
        Ok(out)
    }

    async fn ci_results(&self, repo: &RepoRef, sha: &str) -> Result<Vec<CiResult>, ForgeError> {
        let base = format!("{}/commits/{}", Self::repo_path(repo), segment(sha));
        let mut all = Vec::new();
        for page in 1..=10 {
            let path = format!("{base}/statuses?per_page=100&page={page}");
            let batch: Vec<ApiStatus> = self
                .json("list commit statuses", Method::GET, &path, None)
                .await?;
            let n = batch.len();
            all.extend(batch.into_iter().map(|s| CiResult {
                state: status_state(&s.state),
                context: s.context,
                reporter: s.creator.map(|c| c.login),
                target_url: s.target_url,
                source: CiSource::CommitStatus,
            }));
            if n < 100 {
                break;
            }
        }
        for page in 1..=10 {
            let path = format!("{base}/check-runs?per_page=100&page={page}");
            let runs: CheckRuns = self
                .json("list check runs", Method::GET, &path, None)
                .await?;
            let n = runs.check_runs.len();
            all.extend(runs.check_runs.into_iter().map(|r| CiResult {
                state: check_state(&r.status, r.conclusion.as_deref()),
                context: r.name,
                reporter: r.app.and_then(|a| a.slug),
                target_url: r.details_url.or(r.html_url),
                source: CiSource::CheckRun,
            }));
            if n < 100 {
                break;
            }
        }
        Ok(super::latest_per_context(all))
    }

    async fn installed_repositories(&self) -> Result<Vec<String>, ForgeError> {
        match &self.app {
            Some(app) => app.repositories().await,
            None => Ok(Vec::new()),
        }
    }

    async fn installation_changed(
        &self,
        installation: u64,
        removed: &[String],
        stopped: bool,
    ) -> Vec<String> {
        let mut gone = removed.to_vec();
        if let Some(app) = &self.app {
            for r in removed {
                app.forget(Some(r), installation).await;
            }
            // A suspension names no repositories: those the App knew of go.
            if stopped {
                gone.extend(app.forget(None, installation).await);
            }
        }
        gone.sort();
        gone.dedup();
        gone
    }

    async fn set_check_run(
        &self,
        repo: &RepoRef,
        sha: &str,
        run: &super::CheckRun<'_>,
    ) -> Result<bool, ForgeError> {
        // Check runs are an App's: a token's results stay commit statuses.
        if self.app.is_none() {
            return Ok(false);
        }
        // GitHub takes at most 50 annotations per request.
        let annotations: Vec<Value> = run
            .annotations
            .iter()
            .take(50)
            .map(|a| {
                json!({
                    "path": a.path,
                    "start_line": a.line,
                    "end_line": a.line,
                    "annotation_level": if a.failure { "failure" } else { "warning" },
                    "title": a.title,
                    "message": a.message,
                })
            })
            .collect();
        let more = run.annotations.len().saturating_sub(annotations.len());
        let summary = if more > 0 {
            format!("{}\n\n{more} more findings are not annotated.", run.summary)
        } else {
            run.summary.to_owned()
        };
        let body = json!({
            "name": run.name,
            "head_sha": sha,
            "status": "completed",
            "conclusion": if run.passed { "success" } else { "failure" },
            "output": {
                "title": run.summary,
                "summary": summary,
                "annotations": annotations,
            },
        });
        let path = format!("{}/check-runs", Self::repo_path(repo));
        self.send("create a check run", Method::POST, &path, Some(&body))
            .await?;
        Ok(true)
    }

    async fn git_token(&self, repo: &RepoRef) -> Result<Option<Token>, ForgeError> {
        match &self.app {
            Some(app) => app.token_for(repo).await.map(Some),
            None => Ok(None),
        }
    }

    async fn commit_identity(&self) -> Result<Option<(String, String)>, ForgeError> {
        let Some(app) = &self.app else {
            return Ok(None);
        };
        let u = app.identity().await?;
        // GitHub's noreply address for a user id: the commit shows as the bot's.
        let email = format!("{}+{}@users.noreply.github.com", u.id, u.login);
        Ok(Some((u.login, email)))
    }

    async fn job_log(
        &self,
        repo: &RepoRef,
        _sha: &str,
        ci: &CiResult,
    ) -> Result<Option<JobLog>, ForgeError> {
        // An Actions job links to `…/actions/runs/{run}/job/{job}`; the job id is the check
        // run's id. Other apps' checks and statuses name no log GitHub keeps.
        let Some(job) = ci
            .target_url
            .as_deref()
            .and_then(|u| number_after(u, "/job/"))
        else {
            return Ok(None);
        };
        let path = format!("{}/actions/jobs/{job}/logs", Self::repo_path(repo));
        let token = self.token_for_path(&path).await?;
        let req = self
            .logs
            .get(format!("{}{path}", self.base))
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/vnd.github+json");
        super::http::read_log(KIND, "download job logs", &token, req).await
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
        let body = if open {
            json!({ "state": "open" })
        } else {
            json!({ "state": "closed", "state_reason": "completed" })
        };
        self.send("update issue", Method::PATCH, &path, Some(&body))
            .await
            .map(drop)
    }

    async fn issue_open(&self, repo: &RepoRef, issue: u64) -> Result<bool, ForgeError> {
        #[derive(Deserialize)]
        struct I {
            state: String,
        }
        let path = format!("{}/issues/{issue}", Self::repo_path(repo));
        let i: I = self.json("get issue", Method::GET, &path, None).await?;
        Ok(i.state == "open")
    }

    async fn default_branch(&self, repo: &RepoRef) -> Result<String, ForgeError> {
        #[derive(Deserialize)]
        struct R {
            default_branch: String,
        }
        let r: R = self
            .json("get repository", Method::GET, &Self::repo_path(repo), None)
            .await?;
        Ok(r.default_branch)
    }

    /// Classic branch protection and the rules of every ruleset that applies to the branch;
    /// either may be unreadable (404 without admin rights, or none set), which adds nothing.
    async fn required_contexts(
        &self,
        repo: &RepoRef,
        branch: &str,
    ) -> Result<Vec<super::Required>, ForgeError> {
        #[derive(Deserialize)]
        struct Checks {
            #[serde(default)]
            contexts: Vec<String>,
        }
        #[derive(Deserialize)]
        struct P {
            required_status_checks: Option<Checks>,
        }
        #[derive(Deserialize)]
        struct Check {
            context: String,
        }
        #[derive(Deserialize, Default)]
        struct Params {
            #[serde(default)]
            required_status_checks: Vec<Check>,
        }
        #[derive(Deserialize)]
        struct Rule {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            parameters: Option<Params>,
        }
        let unreadable = |e: &ForgeError| matches!(e.status(), Some(403 | 404));
        let mut out = Vec::new();
        let path = format!(
            "{}/branches/{}/protection",
            Self::repo_path(repo),
            segment(branch)
        );
        match self
            .json::<P>("get branch protection", Method::GET, &path, None)
            .await
        {
            Ok(p) => out.extend(
                p.required_status_checks
                    .map(|c| c.contexts)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|context| super::Required {
                        context,
                        source: "branch protection",
                    }),
            ),
            Err(e) if unreadable(&e) => {}
            Err(e) => return Err(e),
        }
        let path = format!(
            "{}/rules/branches/{}?per_page=100",
            Self::repo_path(repo),
            segment(branch)
        );
        match self
            .json::<Vec<Rule>>("get rules for a branch", Method::GET, &path, None)
            .await
        {
            Ok(rules) => {
                for r in rules
                    .into_iter()
                    .filter(|r| r.kind == "required_status_checks")
                {
                    for c in r.parameters.unwrap_or_default().required_status_checks {
                        if !out.iter().any(|x: &super::Required| x.context == c.context) {
                            out.push(super::Required {
                                context: c.context,
                                source: "ruleset",
                            });
                        }
                    }
                }
            }
            Err(e) if unreadable(&e) => {}
            Err(e) => return Err(e),
        }
        Ok(out)
    }

    fn budget(&self) -> Option<super::Budget> {
        self.state.budget()
    }

    async fn set_status(
        &self,
        repo: &RepoRef,
        sha: &str,
        s: &StatusSpec,
    ) -> Result<(), ForgeError> {
        let path = format!("{}/statuses/{}", Self::repo_path(repo), segment(sha));
        let mut body = json!({
            "state": state_name(s.state),
            "context": s.context,
            "description": s.description.chars().take(140).collect::<String>(),
        });
        if let Some(u) = &s.target_url {
            body["target_url"] = Value::String(u.clone());
        }
        self.send("create commit status", Method::POST, &path, Some(&body))
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
        #[derive(Deserialize)]
        struct Merged {
            sha: String,
        }
        let path = format!("{}/pulls/{number}/merge", Self::repo_path(repo));
        let body = json!({
            "merge_method": "squash",
            "sha": head_sha,
            "commit_title": title,
            "commit_message": message,
        });
        match self
            .json::<Merged>(CALL, Method::PUT, &path, Some(&body))
            .await
        {
            Ok(m) => Ok(m.sha),
            // 409: "Head branch was modified. Review and try the merge again."
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
        struct P {
            permission: String,
            role_name: Option<String>,
        }
        let path = format!(
            "{}/collaborators/{}/permission",
            Self::repo_path(repo),
            segment(&user.login)
        );
        let p: P = self
            .json("get repository permission", Method::GET, &path, None)
            .await?;
        // `permission` folds maintain into write and triage into read; `role_name` keeps them.
        Ok(match (p.role_name.as_deref(), p.permission.as_str()) {
            (Some("admin"), _) | (_, "admin") => Permission::Admin,
            (Some("maintain"), _) => Permission::Maintain,
            (_, "write") => Permission::Write,
            (Some("triage"), _) => Permission::Triage,
            (_, "read") => Permission::Read,
            _ => Permission::None,
        })
    }

    async fn upsert_webhook(
        &self,
        target: &HookTarget,
        spec: &HookSpec,
    ) -> Result<HookOutcome, ForgeError> {
        let list = Self::hooks_path(target);
        let hooks: Vec<ApiHook> = self.json("list webhooks", Method::GET, &list, None).await?;
        let config = json!({
            "url": spec.url,
            "content_type": "json",
            "secret": spec.secret.expose(),
            "insecure_ssl": "0",
        });
        let url = Value::String(spec.url.clone());
        match hooks.iter().find(|h| h.config.get("url") == Some(&url)) {
            None => {
                let body =
                    json!({ "name": "web", "config": config, "events": EVENTS, "active": true });
                self.send("create webhook", Method::POST, &list, Some(&body))
                    .await?;
                Ok(HookOutcome::Created)
            }
            Some(h) => {
                let same = EVENTS.iter().all(|e| h.events.iter().any(|x| x == e))
                    && h.active
                    && h.config.get("content_type") == Some(&json!("json"))
                    && h.config.get("insecure_ssl") == Some(&json!("0"));
                if same {
                    return Ok(HookOutcome::Unchanged);
                }
                let path = format!("{list}/{}", h.id);
                let body = json!({ "config": config, "events": EVENTS, "active": true });
                self.send("update webhook", Method::PATCH, &path, Some(&body))
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
        #[derive(Deserialize)]
        struct Delivery {
            #[serde(default)]
            status_code: u16,
            #[serde(default)]
            event: String,
            #[serde(default)]
            delivered_at: String,
        }
        let list = Self::hooks_path(target);
        let hooks: Vec<ApiHook> = self.json("list webhooks", Method::GET, &list, None).await?;
        let want = Value::String(url.to_owned());
        let Some(h) = hooks.iter().find(|h| h.config.get("url") == Some(&want)) else {
            return Ok(HookHealth::Missing);
        };
        let path = format!("{list}/{}/deliveries?per_page=10", h.id);
        let recent: Vec<Delivery> = self
            .json("list webhook deliveries", Method::GET, &path, None)
            .await?;
        Ok(super::judge_deliveries(recent.iter().map(|d| {
            (d.status_code, d.event.as_str(), d.delivered_at.as_str())
        })))
    }

    async fn settings(&self, repo: &RepoRef, branch: &str) -> Result<RepoSettings, ForgeError> {
        #[derive(Deserialize)]
        struct R {
            #[serde(default)]
            allow_squash_merge: bool,
            #[serde(default)]
            allow_merge_commit: bool,
            #[serde(default)]
            allow_rebase_merge: bool,
        }
        #[derive(Deserialize)]
        struct Checks {
            #[serde(default)]
            contexts: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Restrictions {
            #[serde(default)]
            users: Vec<ApiUser>,
        }
        #[derive(Deserialize)]
        struct P {
            required_status_checks: Option<Checks>,
            required_pull_request_reviews: Option<Value>,
            restrictions: Option<Restrictions>,
        }
        let r: R = self
            .json("get repository", Method::GET, &Self::repo_path(repo), None)
            .await?;
        let path = format!(
            "{}/branches/{}/protection",
            Self::repo_path(repo),
            segment(branch)
        );
        let protection = match self
            .json::<P>("get branch protection", Method::GET, &path, None)
            .await
        {
            Ok(p) => Some(Protection {
                require_pull_request: p.required_pull_request_reviews.is_some(),
                required_contexts: p
                    .required_status_checks
                    .map(|c| c.contexts)
                    .unwrap_or_default(),
                push_allowlist: p
                    .restrictions
                    .map(|r| r.users.into_iter().map(|u| u.login).collect())
                    .unwrap_or_default(),
            }),
            Err(e) if e.status() == Some(404) => None,
            Err(e) => return Err(e),
        };
        Ok(RepoSettings {
            allow_squash: r.allow_squash_merge,
            allow_merge_commit: r.allow_merge_commit,
            allow_rebase: r.allow_rebase_merge,
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
            "allow_merge_commit": desired.allow_merge_commit,
            "allow_rebase_merge": desired.allow_rebase,
        });
        self.send(
            "update repository",
            Method::PATCH,
            &Self::repo_path(repo),
            Some(&body),
        )
        .await?;
        let Some(p) = &desired.protection else {
            return Ok(());
        };
        let body = json!({
            "required_status_checks": { "strict": false, "contexts": p.required_contexts },
            "enforce_admins": true,
            "required_pull_request_reviews": if p.require_pull_request {
                json!({ "required_approving_review_count": 0 })
            } else {
                Value::Null
            },
            "restrictions": { "users": p.push_allowlist, "teams": [] },
        });
        let path = format!(
            "{}/branches/{}/protection",
            Self::repo_path(repo),
            segment(branch)
        );
        self.send("update branch protection", Method::PUT, &path, Some(&body))
            .await
            .map(drop)
    }
}

#[async_trait::async_trait]
impl super::Comments for Github {
    async fn comments_page(
        &self,
        repo: &RepoRef,
        thread: Thread,
        page: u32,
    ) -> Result<Vec<super::Posted>, ForgeError> {
        let path = format!(
            "{}/issues/{}/comments?per_page={}&page={page}",
            Self::repo_path(repo),
            thread.number(),
            super::PAGE
        );
        let list: Vec<ApiComment> = self.json("list comments", Method::GET, &path, None).await?;
        Ok(list
            .into_iter()
            .map(|c| super::Posted {
                id: c.id,
                author: c.user.map(|u| u.id),
                body: c.body.unwrap_or_default(),
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
        self.send(
            "update comment",
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
        self.send("delete comment", Method::DELETE, &path, None)
            .await
            .map(drop)
    }
}
