//! A stateful fake forge on loopback that speaks the GitHub, Gitea/Forgejo or GitLab dialect
//! for the calls the adapters make. It holds repositories' pull requests, issues, comments,
//! statuses, permissions, hooks and settings; merges make real squash commits in a real bare
//! repository; every request is recorded and checked against the forge's published API
//! description when the fake is dropped.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::contract;

/// The repository every fake serves.
pub const OWNER: &str = "acme";
pub const NAME: &str = "app";

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Relative to the API root, still percent-encoded.
    pub path: String,
    pub query: Option<String>,
    pub body: Option<Value>,
    pub headers: HeaderMap,
}

/// A pull or merge request.
#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub author: (u64, String),
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub open: bool,
    pub merged: bool,
    pub merge_sha: Option<String>,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    /// `(is_merge_request, number)`: GitLab keeps MRs and issues apart, the others do not.
    pub thread: (bool, u64),
    pub body: String,
    pub author: (u64, String),
}

#[derive(Debug, Clone)]
pub struct Ci {
    pub sha: String,
    pub context: String,
    /// The dialect's own state word (`success`, `failed`, …); for check runs, the status.
    pub state: String,
    pub conclusion: Option<String>,
    pub reporter: String,
    pub target_url: Option<String>,
    pub check_run: bool,
}

/// An injected failure: the next `times` requests whose path ends with `suffix` get it.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: String,
    pub suffix: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub times: usize,
}

/// What a test hook says about one request, before the fake answers it.
pub enum Act {
    /// Answer as the forge would.
    Proceed,
    /// Answer this instead, changing nothing.
    Respond(u16, Value),
    /// Wait until the receiver fires (or its sender is dropped), then answer as the forge would.
    Park(tokio::sync::oneshot::Receiver<()>),
    /// Apply the request, then wait as for `Park` before answering: the change happened, the
    /// answer is late (or never arrives).
    ApplyThenPark(tokio::sync::oneshot::Receiver<()>),
}

/// A test's look at every request after it is recorded and authenticated; it may change the
/// forge (a merge happening between two reads) or delay or replace the answer.
pub type RequestHook = Arc<dyn Fn(&mut Forge, &Recorded) -> Act + Send + Sync>;

/// One repository the fake serves.
#[derive(Debug)]
pub struct Repo {
    /// `owner/name`.
    pub full_name: String,
    pub pulls: BTreeMap<u64, Pull>,
    /// Issue number → open.
    pub issues: BTreeMap<u64, bool>,
    pub comments: Vec<Comment>,
    pub ci: Vec<Ci>,
    /// Login → the dialect's permission word (GitHub `role_name`, Gitea `permission`, GitLab
    /// access level as a number).
    pub permissions: HashMap<String, String>,
    pub hooks: Vec<Value>,
    pub repo: Value,
    pub protection: Option<Value>,
    /// GitHub rules that apply to the trunk (`GET /rules/branches/{branch}`).
    pub rules: Vec<Value>,
    /// Issues the forge closed by itself when a pull request merged: `(issue, pull)`.
    pub auto_closed: Vec<(u64, u64)>,
    /// Check runs created, as their request bodies.
    pub check_runs: Vec<Value>,
    pub git: PathBuf,
}

/// Everything the fake knows.
pub struct Forge {
    pub kind: &'static str,
    /// Tokens accepted; all act as the bot.
    pub tokens: Vec<String>,
    pub users: Vec<(u64, String)>,
    pub bot: (u64, String),
    /// Every repository by `owner/name`; `OWNER/NAME` is the primary one, which the forge
    /// state derefs to.
    pub repos: BTreeMap<String, Repo>,
    /// Hooks of the organisation (GitLab: group) `OWNER`.
    pub org_hooks: Vec<Value>,
    /// GitHub's recorded deliveries per hook id (repository or organisation), newest first.
    pub hook_deliveries: HashMap<u64, Vec<Value>>,
    pub faults: VecDeque<Fault>,
    pub requests: Vec<Recorded>,
    pub hook: Option<RequestHook>,
    /// GET answers sent as `304 Not Modified`.
    pub not_modified: usize,
    /// CI jobs run, with their logs (`fake_ci`).
    pub jobs: Vec<super::fake_ci::Job>,
    /// The GitHub App registered, if any (`fake_app`).
    pub app: Option<super::fake_app::FakeApp>,
    /// A rate-limit budget announced on every answer: `(limit, remaining, reset epoch)`.
    pub budget: Option<(u64, u64, i64)>,
    /// Requests made while the announced budget was spent.
    pub over_budget: usize,
    next_id: u64,
}

impl std::ops::Deref for Forge {
    type Target = Repo;
    fn deref(&self) -> &Repo {
        &self.repos[&format!("{OWNER}/{NAME}")]
    }
}

impl std::ops::DerefMut for Forge {
    fn deref_mut(&mut self) -> &mut Repo {
        self.repos
            .get_mut(&format!("{OWNER}/{NAME}"))
            .expect("the primary repository")
    }
}

/// A running fake forge.
pub struct FakeForge {
    pub kind: &'static str,
    /// The base URL to give the adapter.
    pub url: String,
    pub state: Arc<Mutex<Forge>>,
    task: tokio::task::JoinHandle<()>,
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Forge")
        .env("GIT_AUTHOR_EMAIL", "forge@example.test")
        .env("GIT_COMMITTER_NAME", "Forge")
        .env("GIT_COMMITTER_EMAIL", "forge@example.test")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl FakeForge {
    /// Starts a fake of `kind` (`github`, `gitea`, `forgejo`, `gitlab`) accepting `token`,
    /// with a bare repository at `git` whose `main` and feature branches the test prepared.
    pub async fn start(kind: &'static str, token: &str, git: PathBuf) -> FakeForge {
        let mut repos = BTreeMap::new();
        repos.insert(format!("{OWNER}/{NAME}"), Repo::new(kind, OWNER, NAME, git));
        let state = Arc::new(Mutex::new(Forge {
            kind,
            tokens: vec![token.to_owned()],
            users: vec![
                (1, "trunkwarden".into()),
                (2, "alice".into()),
                (3, "bob".into()),
            ],
            bot: (1, "trunkwarden".into()),
            repos,
            org_hooks: Vec::new(),
            hook_deliveries: HashMap::new(),
            faults: VecDeque::new(),
            requests: Vec::new(),
            hook: None,
            not_modified: 0,
            jobs: Vec::new(),
            app: None,
            budget: None,
            over_budget: 0,
            next_id: 100,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeForge {
            kind,
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// Adds an open pull request from `head_ref` (which must exist in the bare repository) to
    /// the default branch of the primary repository.
    pub fn add_pull(&self, number: u64, author: &str, head_ref: &str, title: &str, body: &str) {
        self.add_pull_to(
            &format!("{OWNER}/{NAME}"),
            number,
            author,
            head_ref,
            title,
            body,
        );
    }

    /// [`FakeForge::add_pull`] in the repository `full_name`.
    pub fn add_pull_to(
        &self,
        full_name: &str,
        number: u64,
        author: &str,
        head_ref: &str,
        title: &str,
        body: &str,
    ) {
        let mut f = self.state.lock().unwrap();
        let author = f
            .users
            .iter()
            .find(|u| u.1 == author)
            .cloned()
            .expect("known user");
        let r = f.repos.get_mut(full_name).expect("known repository");
        let head_sha = git(&r.git, &["rev-parse", &format!("refs/heads/{head_ref}")]);
        let base_ref = r.default_branch();
        r.pulls.insert(
            number,
            Pull {
                number,
                title: title.into(),
                body: body.into(),
                author,
                head_ref: head_ref.into(),
                head_sha,
                base_ref,
                open: true,
                merged: false,
                merge_sha: None,
                labels: vec!["task".into()],
            },
        );
    }

    /// Serves another repository, backed by the bare repository at `git`.
    pub fn add_repo(&self, owner: &str, name: &str, git: PathBuf) {
        let mut f = self.state.lock().unwrap();
        let kind = f.kind;
        f.repos
            .insert(format!("{owner}/{name}"), Repo::new(kind, owner, name, git));
    }

    /// Merges a pull request as the forge's squash button would; returns the merge commit.
    pub fn merge_pull(&self, number: u64, message: &str) -> String {
        let mut f = self.state.lock().unwrap();
        let kind = f.kind;
        f.squash(kind, number, message)
    }

    /// Accepts another token (as the bot): replicas can be told apart by theirs.
    pub fn accept_token(&self, token: &str) {
        self.state.lock().unwrap().tokens.push(token.to_owned());
    }

    /// Looks at every request from now on; see [`Act`].
    pub fn on_request(&self, hook: impl Fn(&mut Forge, &Recorded) -> Act + Send + Sync + 'static) {
        self.state.lock().unwrap().hook = Some(Arc::new(hook));
    }

    /// Injects a failure for the next `times` matching requests.
    pub fn fail(
        &self,
        method: &str,
        suffix: &str,
        status: u16,
        headers: &[(&str, &str)],
        times: usize,
    ) {
        self.state.lock().unwrap().faults.push_back(Fault {
            method: method.into(),
            suffix: suffix.into(),
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            body: json!({ "message": format!("injected {status}") }),
            times,
        });
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Contract violations among all requests so far.
    pub fn contract_violations(&self) -> Vec<String> {
        let spec = contract::spec(self.kind);
        self.requests()
            .iter()
            .flat_map(|r| spec.check(&r.method, &r.path, r.query.as_deref(), r.body.as_ref()))
            .collect()
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        self.task.abort();
        if std::thread::panicking() {
            return;
        }
        let v = self.contract_violations();
        assert!(
            v.is_empty(),
            "requests the {} API description does not allow:\n{}",
            self.kind,
            v.join("\n")
        );
    }
}

pub fn reply(status: u16, body: Value) -> Response {
    let mut r = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    r.headers_mut()
        .insert("x-fake-forge", HeaderValue::from_static("1"));
    r
}

fn decode(seg: &str) -> String {
    percent_decode(seg)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(State(state): State<Arc<Mutex<Forge>>>, req: Request) -> Response {
    let method = req.method().as_str().to_owned();
    let raw_path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let headers = req.headers().clone();
    // The storage GitHub redirects a job's log to: a signed URL, no token, not the API.
    if raw_path.starts_with("/_blob/") {
        return super::fake_ci::blob(&state.lock().unwrap().jobs, &raw_path, &headers);
    }
    let bytes = axum::body::to_bytes(req.into_body(), 10 << 20)
        .await
        .unwrap_or_default();
    let body: Option<Value> = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(&bytes).ok()
    };
    let (path, act) = {
        let mut f = state.lock().unwrap();
        let path = match f.kind {
            "gitea" | "forgejo" => raw_path
                .strip_prefix("/api/v1")
                .unwrap_or(&raw_path)
                .to_owned(),
            "gitlab" => raw_path
                .strip_prefix("/api/v4")
                .unwrap_or(&raw_path)
                .to_owned(),
            _ => raw_path.clone(),
        };
        let recorded = Recorded {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
            headers: headers.clone(),
        };
        f.requests.push(recorded.clone());
        if let Some(resp) = super::fake_app::route(&mut f, &method, &path, &headers) {
            return resp;
        }
        if let Some(refused) = super::fake_app::installation_allows(&f, &path, &headers) {
            return refused;
        }
        let issued = f.app.as_ref().is_some_and(|a| {
            a.issued.iter().any(|(t, ..)| {
                Some(t.as_str())
                    == headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
            })
        });
        let auth_ok = issued
            || f.tokens.iter().any(|token| match f.kind {
                "gitlab" => {
                    headers.get("private-token").and_then(|v| v.to_str().ok())
                        == Some(token.as_str())
                }
                _ => headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| {
                        v == format!("token {token}") || v == format!("Bearer {token}")
                    }),
            });
        if !auth_ok {
            return reply(401, json!({ "message": "Bad credentials" }));
        }
        let act = match f.hook.clone() {
            Some(hook) => hook(&mut f, &recorded),
            None => Act::Proceed,
        };
        (path, act)
    };
    // A spent budget is refused as GitHub refuses it, and counted: the bot must wait.
    {
        let mut f = state.lock().unwrap();
        if let Some((limit, 0, reset)) = f.budget
            && reset > chrono::Utc::now().timestamp()
        {
            f.over_budget += 1;
            let mut r = reply(403, json!({ "message": "API rate limit exceeded" }));
            for (k, v) in [
                ("x-ratelimit-limit", limit.to_string()),
                ("x-ratelimit-remaining", "0".to_owned()),
                ("x-ratelimit-reset", reset.to_string()),
            ] {
                r.headers_mut()
                    .insert(k, HeaderValue::from_str(&v).unwrap());
            }
            return r;
        }
    }
    let late = match act {
        Act::Proceed => None,
        Act::Respond(status, body) => return reply(status, body),
        Act::Park(rx) => {
            let _ = rx.await;
            None
        }
        Act::ApplyThenPark(rx) => Some(rx),
    };
    let resp = serve(
        &mut state.lock().unwrap(),
        &method,
        &path,
        query.as_deref(),
        body,
    );
    if let Some(rx) = late {
        let _ = rx.await;
    }
    // Conditional reads, as GitHub (and GitLab's API) answer them: an unchanged answer is a
    // 304 without a body, which does not count against the budget. Gitea and Forgejo send no
    // ETag on their JSON API.
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let etags = matches!(state.lock().unwrap().kind, "github" | "gitlab");
    if method == "GET" && parts.status == StatusCode::OK && etags {
        use sha2::Digest;
        let etag = format!("W/\"{}\"", hex::encode(&sha2::Sha256::digest(&bytes)[..12]));
        parts
            .headers
            .insert("etag", HeaderValue::from_str(&etag).unwrap());
        let asked = headers.get("if-none-match").and_then(|v| v.to_str().ok());
        if asked == Some(etag.as_str()) {
            state.lock().unwrap().not_modified += 1;
            parts.status = StatusCode::NOT_MODIFIED;
            return Response::from_parts(parts, Body::empty());
        }
    }
    let mut f = state.lock().unwrap();
    if let Some(b) = f.budget.as_mut() {
        b.1 = b.1.saturating_sub(1);
        let (limit, remaining, reset) = *b;
        for (k, v) in [
            ("x-ratelimit-limit", limit.to_string()),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-reset", reset.to_string()),
        ] {
            parts.headers.insert(k, HeaderValue::from_str(&v).unwrap());
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Answers one authenticated request: an injected fault, else the forge's own answer.
fn serve(
    f: &mut Forge,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: Option<Value>,
) -> Response {
    if let Some(i) = f
        .faults
        .iter()
        .position(|x| x.method == method && path.ends_with(&x.suffix))
    {
        let fault = f.faults[i].clone();
        if fault.times <= 1 {
            f.faults.remove(i);
        } else {
            f.faults[i].times -= 1;
        }
        let mut r = reply(fault.status, fault.body);
        for (k, v) in &fault.headers {
            r.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        return r;
    }
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let q = parse_query(query);
    match f.kind {
        "gitlab" => gitlab(f, method, &segs, &q, body),
        kind => github_like(f, kind, method, &segs, &q, body),
    }
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect()
}

/// `page`/`per_page` (or Gitea's `limit`) slicing.
fn page<T: Clone>(items: &[T], q: &HashMap<String, String>) -> Vec<T> {
    let per = q
        .get("per_page")
        .or_else(|| q.get("limit"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(30usize);
    let page = q
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    items
        .iter()
        .skip((page - 1) * per)
        .take(per)
        .cloned()
        .collect()
}

impl Forge {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn user_json(&self, u: &(u64, String)) -> Value {
        match self.kind {
            "gitlab" => json!({ "id": u.0, "username": u.1, "name": u.1 }),
            _ => json!({ "id": u.0, "login": u.1 }),
        }
    }

    fn pull_json(&self, r: &Repo, p: &Pull) -> Value {
        let base_sha = git2::Repository::open_bare(&r.git)
            .and_then(|g| g.refname_to_id(&format!("refs/heads/{}", p.base_ref)))
            .map(|o| o.to_string())
            .unwrap_or_default();
        match self.kind {
            "gitlab" => json!({
                "iid": p.number,
                "state": if p.merged { "merged" } else if p.open { "opened" } else { "closed" },
                "title": p.title,
                "description": p.body,
                "author": self.user_json(&p.author),
                "source_branch": p.head_ref,
                "target_branch": p.base_ref,
                "sha": p.head_sha,
                "diff_refs": { "base_sha": base_sha, "head_sha": p.head_sha, "start_sha": base_sha },
                "merge_commit_sha": Value::Null,
                "squash_commit_sha": p.merge_sha,
                "labels": p.labels,
            }),
            _ => json!({
                "number": p.number,
                "state": if p.open { "open" } else { "closed" },
                "merged": p.merged,
                "merged_at": if p.merged { json!("2026-11-22T06:00:00Z") } else { Value::Null },
                "title": p.title,
                "body": p.body,
                "user": self.user_json(&p.author),
                "head": { "ref": p.head_ref, "sha": p.head_sha },
                "base": { "ref": p.base_ref, "sha": base_sha },
                // GitHub fills this with a test merge before merging; Gitea leaves it null.
                "merge_commit_sha": match (&p.merge_sha, self.kind) {
                    (Some(s), _) => json!(s),
                    (None, "github") => json!("0".repeat(40)),
                    (None, _) => Value::Null,
                },
                "labels": p.labels.iter().map(|l| json!({ "name": l })).collect::<Vec<_>>(),
            }),
        }
    }

    fn comment_json(&self, c: &Comment) -> Value {
        match self.kind {
            "gitlab" => json!({ "id": c.id, "body": c.body, "author": self.user_json(&c.author) }),
            _ => json!({ "id": c.id, "body": c.body, "user": self.user_json(&c.author) }),
        }
    }

    fn issue_json(&self, n: u64, open: bool) -> Value {
        match self.kind {
            "gitlab" => json!({ "iid": n, "state": if open { "opened" } else { "closed" } }),
            _ => json!({ "number": n, "state": if open { "open" } else { "closed" } }),
        }
    }
}

/// The issue numbers a pull request body closes by the forge's own keywords, as the forge reads
/// them: GitHub and Gitea `close[sd]`/`fix(es|ed)`/`resolve[sd]` (optional colon), GitLab also
/// `closing`, `fixing`, `resolving` and `implement(s|ed|ing)`. Written for the fake, apart
/// from the engine's own reader.
pub fn forge_closes(kind: &str, text: &str) -> Vec<u64> {
    let words = if kind == "gitlab" {
        r"(?i)\b(?:clos(?:e[sd]?|ing)|fix(?:e[sd]|ing)?|resolv(?:e[sd]?|ing)|implement(?:s|ed|ing)?):? +(?:issues? +)?#(\d+)"
    } else {
        r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):? *#(\d+)\b"
    };
    regex::Regex::new(words)
        .unwrap()
        .captures_iter(text)
        .filter_map(|c| c[1].parse().ok())
        .collect()
}

impl Repo {
    /// A repository served by a fake of `kind`, backed by the bare repository at `git`.
    pub fn new(kind: &str, owner: &str, name: &str, git: PathBuf) -> Repo {
        let default_branch = self::git(&git, &["symbolic-ref", "--short", "HEAD"]);
        let repo = match kind {
            "github" => {
                json!({ "allow_squash_merge": true, "allow_merge_commit": true, "allow_rebase_merge": true, "default_branch": default_branch })
            }
            "gitlab" => {
                json!({ "merge_method": "merge", "squash_option": "default_off", "autoclose_referenced_issues": true, "default_branch": default_branch })
            }
            _ => {
                json!({ "allow_squash_merge": true, "allow_merge_commits": true, "allow_rebase": true, "default_branch": default_branch })
            }
        };
        Repo {
            full_name: format!("{owner}/{name}"),
            pulls: BTreeMap::new(),
            issues: BTreeMap::new(),
            comments: Vec::new(),
            ci: Vec::new(),
            permissions: HashMap::new(),
            hooks: Vec::new(),
            repo,
            protection: None,
            rules: Vec::new(),
            auto_closed: Vec::new(),
            check_runs: Vec::new(),
            git,
        }
    }

    /// The default branch, as the repository settings name it.
    pub fn default_branch(&self) -> String {
        self.repo["default_branch"]
            .as_str()
            .unwrap_or("main")
            .to_owned()
    }

    /// The real squash merge: one commit on top of the base with the pull request's changes.
    /// Like the forges, a merge into the default branch closes the issues its body names with
    /// a closing keyword (on GitLab only while `autoclose_referenced_issues` is on).
    pub fn squash(&mut self, kind: &str, number: u64, message: &str) -> String {
        let p = self.pulls.get(&number).unwrap().clone();
        let base = git(
            &self.git,
            &["rev-parse", &format!("refs/heads/{}", p.base_ref)],
        );
        // The pull request's changes applied to the base as it is now, as forges merge.
        let merged = git(
            &self.git,
            &["merge-tree", "--write-tree", &base, &p.head_sha],
        );
        let tree = merged.lines().next().unwrap_or_default().to_owned();
        let sha = git(
            &self.git,
            &["commit-tree", &tree, "-p", &base, "-m", message],
        );
        git(
            &self.git,
            &[
                "update-ref",
                &format!("refs/heads/{}", p.base_ref),
                &sha,
                &base,
            ],
        );
        let default_branch = self.default_branch();
        let p = self.pulls.get_mut(&number).unwrap();
        p.merged = true;
        p.open = false;
        p.merge_sha = Some(sha.clone());
        let p = p.clone();
        let autoclose = kind != "gitlab" || self.repo["autoclose_referenced_issues"] == true;
        if autoclose && p.base_ref == default_branch {
            let text = format!("{}\n{}\n{message}", p.title, p.body);
            for i in forge_closes(kind, &text) {
                if let Some(open) = self.issues.get_mut(&i)
                    && *open
                {
                    *open = false;
                    self.auto_closed.push((i, number));
                }
            }
        }
        sha
    }
}

/// Hooks of the repository or the organisation (GitLab: project or group), each dialect's way:
/// GitHub and Gitea edit with PATCH and keep the secret in `config`, GitLab edits with PUT, keeps
/// it as `token` and marks a new hook `executable`. Secrets are never read back. GitHub lists a
/// hook's deliveries. `None` when `rest` is not a hooks route.
fn hook_routes(
    f: &mut Forge,
    repo: Option<&mut Repo>,
    method: &str,
    rest: &[&str],
    body: &Value,
) -> Option<Response> {
    let fresh_id = f.next_id + 1;
    let (github, gitlab) = (f.kind == "github", f.kind == "gitlab");
    let edit = if gitlab { "PUT" } else { "PATCH" };
    let hooks = match repo {
        Some(r) => &mut r.hooks,
        None => &mut f.org_hooks,
    };
    let forget_secret = |h: &mut Value| {
        if gitlab {
            if let Some(o) = h.as_object_mut() {
                o.remove("token");
            }
        } else if let Some(cfg) = h.get_mut("config").and_then(Value::as_object_mut) {
            cfg.remove("secret");
        }
    };
    Some(match (method, rest) {
        ("GET", ["hooks"]) => reply(200, Value::Array(hooks.clone())),
        ("POST", ["hooks"]) => {
            let mut h = body.clone();
            h["id"] = json!(fresh_id);
            if gitlab {
                h["alert_status"] = json!("executable");
            }
            forget_secret(&mut h);
            hooks.push(h.clone());
            f.next_id = fresh_id;
            reply(201, h)
        }
        (m, ["hooks", id]) if m == edit => {
            let id: u64 = id.parse().unwrap_or(0);
            let Some(h) = hooks.iter_mut().find(|h| h["id"] == id) else {
                return Some(not_found());
            };
            for (k, v) in body.as_object().cloned().unwrap_or_default() {
                h[k] = v;
            }
            forget_secret(h);
            reply(200, h.clone())
        }
        ("GET", ["hooks", id, "deliveries"]) if github => {
            let id: u64 = id.parse().unwrap_or(0);
            if !hooks.iter().any(|h| h["id"] == id) {
                return Some(not_found());
            }
            let list = f.hook_deliveries.get(&id).cloned().unwrap_or_default();
            reply(200, Value::Array(list))
        }
        _ => return None,
    })
}

fn not_found() -> Response {
    reply(404, json!({ "message": "Not Found" }))
}

fn github_like(
    f: &mut Forge,
    kind: &str,
    method: &str,
    segs: &[&str],
    q: &HashMap<String, String>,
    body: Option<Value>,
) -> Response {
    let body = body.unwrap_or(Value::Null);
    if segs == ["user"] && method == "GET" {
        return reply(200, f.user_json(&f.bot.clone()));
    }
    if let ["orgs", org, rest @ ..] = segs {
        if *org != OWNER {
            return not_found();
        }
        return hook_routes(f, None, method, rest, &body).unwrap_or_else(not_found);
    }
    let ["repos", owner, name, rest @ ..] = segs else {
        return not_found();
    };
    let Some(mut r) = f.repos.remove(&format!("{owner}/{name}")) else {
        return not_found();
    };
    let resp = github_repo(f, &mut r, kind, method, rest, q, body);
    f.repos.insert(r.full_name.clone(), r);
    resp
}

fn github_repo(
    f: &mut Forge,
    r: &mut Repo,
    kind: &str,
    method: &str,
    rest: &[&str],
    q: &HashMap<String, String>,
    body: Value,
) -> Response {
    let github = kind == "github";
    if let Some(resp) = hook_routes(f, Some(r), method, rest, &body) {
        return resp;
    }
    if let Some(resp) = super::fake_ci::github_like_routes(&f.jobs, kind, method, rest, q) {
        return resp;
    }
    match (method, rest) {
        ("GET", []) => reply(200, r.repo.clone()),
        ("PATCH", []) => {
            for (k, v) in body.as_object().cloned().unwrap_or_default() {
                r.repo[k] = v;
            }
            reply(200, r.repo.clone())
        }
        ("GET", ["pulls"]) => {
            let open = q.get("state").is_none_or(|s| s == "open");
            let list: Vec<Value> = r
                .pulls
                .values()
                .filter(|p| !open || p.open)
                .map(|p| f.pull_json(r, p))
                .collect();
            reply(200, Value::Array(page(&list, q)))
        }
        ("GET", ["pulls", n]) => match n.parse().ok().and_then(|n: u64| r.pulls.get(&n).cloned()) {
            Some(p) => reply(200, f.pull_json(r, &p)),
            None => not_found(),
        },
        (m, ["pulls", n, "merge"]) if (github && m == "PUT") || (!github && m == "POST") => {
            let Some(p) = n.parse().ok().and_then(|n: u64| r.pulls.get(&n).cloned()) else {
                return not_found();
            };
            let style = if github {
                &body["merge_method"]
            } else if kind == "forgejo" {
                &body["Do"]
            } else {
                &body["do"]
            };
            if style != "squash" {
                return reply(405, json!({ "message": "merge style not allowed" }));
            }
            let expected = if github {
                &body["sha"]
            } else {
                &body["head_commit_id"]
            };
            if p.merged || !p.open {
                return reply(405, json!({ "message": "Pull Request is not mergeable" }));
            }
            if expected.as_str().is_some_and(|s| s != p.head_sha) {
                return reply(
                    409,
                    json!({ "message": "Head branch was modified. Review and try the merge again." }),
                );
            }
            let (title, msg) = if github {
                (
                    body["commit_title"].as_str().unwrap_or(&p.title).to_owned(),
                    body["commit_message"].as_str().unwrap_or("").to_owned(),
                )
            } else {
                let (t, m) = if kind == "forgejo" {
                    ("MergeTitleField", "MergeMessageField")
                } else {
                    ("merge_title_field", "merge_message_field")
                };
                (
                    body[t].as_str().unwrap_or(&p.title).to_owned(),
                    body[m].as_str().unwrap_or("").to_owned(),
                )
            };
            let sha = r.squash(f.kind, p.number, &format!("{title}\n\n{msg}"));
            if github {
                reply(
                    200,
                    json!({ "sha": sha, "merged": true, "message": "Pull Request successfully merged" }),
                )
            } else {
                reply(200, Value::Null)
            }
        }
        ("GET", ["commits", sha, "statuses"]) => {
            let list: Vec<Value> = r
                .ci
                .iter()
                .rev()
                .filter(|c| c.sha == *sha && !c.check_run)
                .map(|c| {
                    let state_key = if github { "state" } else { "status" };
                    json!({ "context": c.context, state_key: c.state, "target_url": c.target_url, "creator": { "id": 9, "login": c.reporter } })
                })
                .collect();
            reply(200, Value::Array(page(&list, q)))
        }
        ("GET", ["commits", sha, "check-runs"]) if github => {
            let runs: Vec<Value> = r
                .ci
                .iter()
                .rev()
                .filter(|c| c.sha == *sha && c.check_run)
                .map(|c| json!({ "name": c.context, "status": c.state, "conclusion": c.conclusion, "details_url": c.target_url, "html_url": c.target_url, "app": { "slug": c.reporter } }))
                .collect();
            let page = page(&runs, q);
            reply(
                200,
                json!({ "total_count": runs.len(), "check_runs": page }),
            )
        }
        ("POST", ["check-runs"]) if github => {
            let slug = f.app.as_ref().map_or("app".to_owned(), |a| a.slug.clone());
            r.ci.push(Ci {
                sha: body["head_sha"].as_str().unwrap_or("").to_owned(),
                context: body["name"].as_str().unwrap_or("").to_owned(),
                state: body["status"].as_str().unwrap_or("queued").to_owned(),
                conclusion: body["conclusion"].as_str().map(str::to_owned),
                reporter: slug,
                target_url: None,
                check_run: true,
            });
            r.check_runs.push(body.clone());
            reply(
                201,
                json!({ "id": f.id(), "name": body["name"], "head_sha": body["head_sha"] }),
            )
        }
        ("POST", ["statuses", sha]) => {
            let reporter = f.bot.1.clone();
            r.ci.push(Ci {
                sha: (*sha).to_owned(),
                context: body["context"].as_str().unwrap_or("default").to_owned(),
                state: body["state"].as_str().unwrap_or("pending").to_owned(),
                conclusion: None,
                reporter,
                target_url: body["target_url"].as_str().map(str::to_owned),
                check_run: false,
            });
            reply(
                201,
                json!({ "id": f.id(), "context": body["context"], "state": body["state"] }),
            )
        }
        ("GET", ["issues", n, "comments"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let list: Vec<Value> = r
                .comments
                .iter()
                .filter(|c| c.thread == (false, n))
                .map(|c| f.comment_json(c))
                .collect();
            reply(
                200,
                Value::Array(if github { page(&list, q) } else { list }),
            )
        }
        ("POST", ["issues", n, "comments"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let c = Comment {
                id: f.id(),
                thread: (false, n),
                body: body["body"].as_str().unwrap_or("").to_owned(),
                author: f.bot.clone(),
            };
            let json = f.comment_json(&c);
            r.comments.push(c);
            reply(201, json)
        }
        ("DELETE", ["issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let before = r.comments.len();
            r.comments.retain(|c| c.id != id);
            if r.comments.len() == before {
                return not_found();
            }
            (StatusCode::NO_CONTENT, Body::empty()).into_response()
        }
        ("PATCH", ["issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let text = body["body"].as_str().unwrap_or("").to_owned();
            let Some(c) = r.comments.iter_mut().find(|c| c.id == id) else {
                return not_found();
            };
            c.body = text;
            let c = c.clone();
            reply(200, f.comment_json(&c))
        }
        ("GET", ["issues", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            match r.issues.get(&n) {
                Some(open) => reply(200, f.issue_json(n, *open)),
                None => not_found(),
            }
        }
        ("GET", ["rules", "branches", _]) if github => reply(200, Value::Array(r.rules.clone())),
        ("PATCH", ["issues", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let Some(open) = r.issues.get_mut(&n) else {
                return not_found();
            };
            *open = body["state"] == "open";
            reply(200, json!({ "number": n, "state": body["state"] }))
        }
        ("GET", ["collaborators", login, "permission"]) => match r.permissions.get(*login) {
            Some(p) if github => {
                let folded = match p.as_str() {
                    "maintain" => "write",
                    "triage" => "read",
                    other => other,
                };
                reply(
                    200,
                    json!({ "permission": folded, "role_name": p, "user": { "login": login } }),
                )
            }
            Some(p) => reply(200, json!({ "permission": p, "role_name": p })),
            None if github => reply(
                200,
                json!({ "permission": "none", "role_name": "none", "user": { "login": login } }),
            ),
            None => reply(404, json!({ "message": "user is not a collaborator" })),
        },
        ("GET", ["branches", _, "protection"]) if github => match &r.protection {
            Some(p) => reply(200, p.clone()),
            None => reply(404, json!({ "message": "Branch not protected" })),
        },
        ("PUT", ["branches", _, "protection"]) if github => {
            let users: Vec<Value> = body["restrictions"]["users"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|l| json!({ "login": l, "id": 1 }))
                .collect();
            let mut p = json!({
                "required_status_checks": { "strict": body["required_status_checks"]["strict"], "contexts": body["required_status_checks"]["contexts"] },
                "restrictions": { "users": users, "teams": [] },
                "enforce_admins": { "enabled": body["enforce_admins"] },
            });
            if !body["required_pull_request_reviews"].is_null() {
                p["required_pull_request_reviews"] = body["required_pull_request_reviews"].clone();
            }
            r.protection = Some(p.clone());
            reply(200, p)
        }
        ("GET", ["branch_protections", _]) if !github => match &r.protection {
            Some(p) => reply(200, p.clone()),
            None => not_found(),
        },
        ("PATCH", ["branch_protections", _]) if !github => match r.protection.as_mut() {
            Some(p) => {
                for (k, v) in body.as_object().cloned().unwrap_or_default() {
                    p[k] = v;
                }
                reply(200, p.clone())
            }
            None => not_found(),
        },
        ("POST", ["branch_protections"]) if !github => {
            r.protection = Some(body.clone());
            reply(201, body)
        }
        _ => not_found(),
    }
}

fn gitlab(
    f: &mut Forge,
    method: &str,
    segs: &[&str],
    q: &HashMap<String, String>,
    body: Option<Value>,
) -> Response {
    let body = body.unwrap_or(Value::Null);
    if segs == ["user"] && method == "GET" {
        return reply(200, f.user_json(&f.bot.clone()));
    }
    if let ["groups", group, rest @ ..] = segs {
        if *group != OWNER {
            return reply(404, json!({ "message": "404 Group Not Found" }));
        }
        return hook_routes(f, None, method, rest, &body).unwrap_or_else(not_found);
    }
    let ["projects", project, rest @ ..] = segs else {
        return not_found();
    };
    let Some(mut r) = f.repos.remove(*project) else {
        return reply(404, json!({ "message": "404 Project Not Found" }));
    };
    let resp = gitlab_project(f, &mut r, method, rest, q, body);
    f.repos.insert(r.full_name.clone(), r);
    resp
}

fn gitlab_project(
    f: &mut Forge,
    r: &mut Repo,
    method: &str,
    rest: &[&str],
    q: &HashMap<String, String>,
    body: Value,
) -> Response {
    let thread = |kind: &str, n: &str| -> Option<(bool, u64)> {
        Some((kind == "merge_requests", n.parse().ok()?))
    };
    if let Some(resp) = hook_routes(f, Some(r), method, rest, &body) {
        return resp;
    }
    if let Some(resp) = super::fake_ci::gitlab_routes(&f.jobs, method, rest) {
        return resp;
    }
    match (method, rest) {
        ("GET", []) => reply(200, r.repo.clone()),
        ("PUT", []) => {
            for (k, v) in body.as_object().cloned().unwrap_or_default() {
                r.repo[k] = v;
            }
            reply(200, r.repo.clone())
        }
        ("GET", ["merge_requests"]) => {
            let open = q.get("state").is_none_or(|s| s == "opened");
            let list: Vec<Value> = r
                .pulls
                .values()
                .filter(|p| !open || (p.open && !p.merged))
                .map(|p| f.pull_json(r, p))
                .collect();
            reply(200, Value::Array(page(&list, q)))
        }
        ("GET", ["merge_requests", n]) => {
            match n.parse().ok().and_then(|n: u64| r.pulls.get(&n).cloned()) {
                Some(p) => reply(200, f.pull_json(r, &p)),
                None => reply(404, json!({ "message": "404 Not found" })),
            }
        }
        ("PUT", ["merge_requests", n, "merge"]) => {
            let Some(p) = n.parse().ok().and_then(|n: u64| r.pulls.get(&n).cloned()) else {
                return not_found();
            };
            if p.merged || !p.open {
                return reply(405, json!({ "message": "405 Method Not Allowed" }));
            }
            if body["sha"].as_str().is_some_and(|s| s != p.head_sha) {
                return reply(
                    409,
                    json!({ "message": "SHA does not match HEAD of source branch" }),
                );
            }
            if body["squash"] != true {
                return reply(405, json!({ "message": "squash required" }));
            }
            let msg = body["squash_commit_message"]
                .as_str()
                .unwrap_or(&p.title)
                .to_owned();
            r.squash(f.kind, p.number, &msg);
            let p = r.pulls.get(&p.number).cloned().unwrap();
            reply(200, f.pull_json(r, &p))
        }
        ("GET", [kind @ ("merge_requests" | "issues"), n, "notes"]) => {
            let Some(t) = thread(kind, n) else {
                return not_found();
            };
            let list: Vec<Value> = r
                .comments
                .iter()
                .filter(|c| c.thread == t)
                .map(|c| f.comment_json(c))
                .collect();
            reply(200, Value::Array(page(&list, q)))
        }
        ("POST", [kind @ ("merge_requests" | "issues"), n, "notes"]) => {
            let Some(t) = thread(kind, n) else {
                return not_found();
            };
            let c = Comment {
                id: f.id(),
                thread: t,
                body: body["body"].as_str().unwrap_or("").to_owned(),
                author: f.bot.clone(),
            };
            let json = f.comment_json(&c);
            r.comments.push(c);
            reply(201, json)
        }
        ("DELETE", [kind @ ("merge_requests" | "issues"), n, "notes", id]) => {
            let Some(t) = thread(kind, n) else {
                return not_found();
            };
            let id: u64 = id.parse().unwrap_or(0);
            let before = r.comments.len();
            r.comments.retain(|c| !(c.id == id && c.thread == t));
            if r.comments.len() == before {
                return not_found();
            }
            (StatusCode::NO_CONTENT, Body::empty()).into_response()
        }
        ("PUT", [kind @ ("merge_requests" | "issues"), n, "notes", id]) => {
            let Some(t) = thread(kind, n) else {
                return not_found();
            };
            let id: u64 = id.parse().unwrap_or(0);
            let text = body["body"].as_str().unwrap_or("").to_owned();
            let Some(c) = r.comments.iter_mut().find(|c| c.id == id && c.thread == t) else {
                return not_found();
            };
            c.body = text;
            let c = c.clone();
            reply(200, f.comment_json(&c))
        }
        ("GET", ["issues", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            match r.issues.get(&n) {
                Some(open) => reply(200, f.issue_json(n, *open)),
                None => reply(404, json!({ "message": "404 Not found" })),
            }
        }
        ("PUT", ["issues", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let Some(open) = r.issues.get_mut(&n) else {
                return not_found();
            };
            *open = body["state_event"] == "reopen";
            reply(
                200,
                json!({ "iid": n, "state": if *open { "opened" } else { "closed" } }),
            )
        }
        ("GET", ["repository", "commits", sha, "statuses"]) => {
            let list: Vec<Value> = r
                .ci
                .iter()
                .rev()
                .filter(|c| c.sha == *sha)
                .map(|c| json!({ "name": c.context, "status": c.state, "target_url": c.target_url, "author": { "id": 9, "username": c.reporter } }))
                .collect();
            reply(200, Value::Array(page(&list, q)))
        }
        ("POST", ["statuses", sha]) => {
            let reporter = f.bot.1.clone();
            r.ci.push(Ci {
                sha: (*sha).to_owned(),
                context: body["name"].as_str().unwrap_or("default").to_owned(),
                state: body["state"].as_str().unwrap_or("pending").to_owned(),
                conclusion: None,
                reporter,
                target_url: body["target_url"].as_str().map(str::to_owned),
                check_run: false,
            });
            reply(
                201,
                json!({ "id": f.id(), "status": body["state"], "name": body["name"] }),
            )
        }
        ("GET", ["members", "all", uid]) => {
            let uid: u64 = uid.parse().unwrap_or(0);
            let login = f.users.iter().find(|u| u.0 == uid).map(|u| u.1.clone());
            match login.and_then(|l| r.permissions.get(&l).cloned()) {
                Some(level) => reply(
                    200,
                    json!({ "id": uid, "access_level": level.parse::<u32>().unwrap_or(0) }),
                ),
                None => reply(404, json!({ "message": "404 Not found" })),
            }
        }
        ("GET", ["protected_branches", _]) => match &r.protection {
            Some(p) => reply(200, p.clone()),
            None => reply(404, json!({ "message": "404 Not found" })),
        },
        ("DELETE", ["protected_branches", _]) => match r.protection.take() {
            Some(_) => (StatusCode::NO_CONTENT, Body::empty()).into_response(),
            None => reply(404, json!({ "message": "404 Not found" })),
        },
        ("POST", ["protected_branches"]) => {
            let mut push =
                vec![json!({ "access_level": body["push_access_level"], "user_id": Value::Null })];
            for u in body["allowed_to_push"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                push.push(json!({ "access_level": Value::Null, "user_id": u["user_id"] }));
            }
            let p = json!({ "name": body["name"], "push_access_levels": push, "merge_access_levels": [{ "access_level": body["merge_access_level"] }] });
            r.protection = Some(p.clone());
            reply(201, p)
        }
        _ => not_found(),
    }
}

/// Something that happened in the fake, to be announced as a webhook delivery.
#[derive(Debug, Clone)]
pub enum Happening {
    PrOpened(u64),
    PrMerged(u64),
    /// Any other change of a pull request: closed unmerged, reopened, pushed to, edited.
    Pr(u64, PrChange),
    Status {
        sha: String,
        context: String,
        success: bool,
    },
    Comment {
        number: u64,
        comment_id: u64,
        body: String,
        author: String,
        /// The body before an edit: the delivery is then an edit.
        previous: Option<String>,
    },
    /// A push to the default branch, from `before` to `after`.
    Push {
        before: String,
        after: String,
    },
}

/// How a pull request changed, for [`Happening::Pr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrChange {
    Closed,
    Reopened,
    Synchronized,
    Edited,
}

fn set(v: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() {
        Some(&mut *v)
    } else {
        v.pointer_mut(parent)
    };
    match target.and_then(Value::as_object_mut) {
        Some(obj) => {
            obj.insert(key.to_owned(), value);
        }
        None => panic!("template has no object at {parent}"),
    }
}

/// The recorded payload each dialect's delivery is built from.
fn template(dialect: &str, what: &Happening) -> &'static str {
    use Happening as H;
    use PrChange as C;
    match (dialect, what) {
        ("github", H::PrOpened(_)) => "pull_request.opened.0",
        ("github", H::PrMerged(_)) => "pull_request.closed-merged.woodpecker",
        ("github", H::Pr(_, C::Closed)) => "pull_request.closed.3",
        ("github", H::Pr(_, C::Reopened)) => "pull_request.reopened.18",
        ("github", H::Pr(_, C::Synchronized)) => "pull_request.synchronize.22",
        ("github", H::Pr(_, C::Edited)) => "pull_request.edited.woodpecker",
        ("github", H::Status { .. }) => "status.none.0",
        (
            "github",
            H::Comment {
                previous: Some(_), ..
            },
        ) => "issue_comment.edited.7",
        ("github", H::Comment { .. }) => "issue_comment.created-on-pr.go-scm",
        ("github", H::Push { .. }) => "push.none.0",
        ("gitea", H::PrOpened(_)) => "pull_request.opened.go-scm",
        ("gitea", H::PrMerged(_)) => "pull_request.closed-merged.woodpecker",
        ("gitea", H::Pr(_, C::Closed)) => "pull_request.closed-unmerged.woodpecker",
        ("gitea", H::Pr(_, C::Reopened)) => "pull_request.reopened.woodpecker",
        ("gitea", H::Pr(_, C::Synchronized)) => "pull_request.synchronized.woodpecker",
        ("gitea", H::Pr(_, C::Edited)) => "pull_request.edited.woodpecker",
        ("gitea", H::Status { .. }) => "status.success.RECONSTRUCTED",
        (
            "gitea",
            H::Comment {
                previous: Some(_), ..
            },
        ) => "issue_comment.edited.go-scm",
        ("gitea", H::Comment { .. }) => "issue_comment.created-on-pr.go-scm",
        ("gitea", H::Push { .. }) => "push.branch.woodpecker",
        (_, H::PrOpened(_) | H::Pr(_, C::Reopened | C::Edited)) => "merge_request",
        (_, H::Pr(_, C::Synchronized)) => "merge_request.update-push.go-gitlab",
        (_, H::Pr(_, C::Closed)) => "merge_request.close.woodpecker",
        (_, H::PrMerged(_)) => "merge_request.merge.woodpecker",
        (_, H::Status { .. }) => "pipeline",
        (_, H::Comment { .. }) => "note",
        (_, H::Push { .. }) => "push",
    }
}

impl FakeForge {
    /// A signed delivery announcing `what` in the primary repository.
    pub fn delivery(
        &self,
        what: &Happening,
        secret: &str,
    ) -> trunkwarden::webhook::fixture::Fixture {
        self.delivery_for(&format!("{OWNER}/{NAME}"), what, secret)
    }

    /// A signed delivery announcing `what` in the repository `full`, built from the forge's
    /// real payload in `webhook-fixtures/` (imported from the forge corpus) with this fake's
    /// values filled in.
    pub fn delivery_for(
        &self,
        full: &str,
        what: &Happening,
        secret: &str,
    ) -> trunkwarden::webhook::fixture::Fixture {
        use trunkwarden::webhook::{ForgeKind as Wf, fixture};
        let f = self.state.lock().unwrap();
        let r = &f.repos[full];
        let dialect = if f.kind == "forgejo" { "gitea" } else { f.kind };
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("webhook-fixtures")
            .join(dialect)
            .join(format!("{}.json", template(dialect, what)));
        let mut fx = fixture::read(&path).expect("template");
        let mut v: Value = serde_json::from_slice(&fx.body).expect("template JSON");
        let (owner, name) = full.rsplit_once('/').unwrap();
        let user = |login: &str| {
            f.users
                .iter()
                .find(|u| u.1 == login)
                .cloned()
                .expect("known user")
        };
        let pr_state = |what: &Happening| match what {
            Happening::PrOpened(n) => Some((*n, "open", "opened", "opened")),
            Happening::PrMerged(n) => Some((*n, "merge", "merged", "closed")),
            Happening::Pr(n, PrChange::Closed) => Some((*n, "close", "closed", "closed")),
            Happening::Pr(n, PrChange::Reopened) => Some((*n, "reopen", "opened", "reopened")),
            Happening::Pr(n, PrChange::Synchronized) => Some((*n, "update", "opened", "")),
            Happening::Pr(n, PrChange::Edited) => Some((*n, "update", "opened", "edited")),
            _ => None,
        };
        if dialect == "gitlab" {
            set(&mut v, "/project/path_with_namespace", json!(full));
            match what {
                Happening::PrOpened(_) | Happening::PrMerged(_) | Happening::Pr(..) => {
                    let (n, action, state, _) = pr_state(what).unwrap();
                    let p = &r.pulls[&n];
                    let a = "/object_attributes";
                    set(&mut v, &format!("{a}/iid"), json!(p.number));
                    set(&mut v, &format!("{a}/title"), json!(p.title));
                    set(&mut v, &format!("{a}/description"), json!(p.body));
                    set(&mut v, &format!("{a}/source_branch"), json!(p.head_ref));
                    set(&mut v, &format!("{a}/target_branch"), json!(p.base_ref));
                    set(&mut v, &format!("{a}/last_commit/id"), json!(p.head_sha));
                    set(&mut v, &format!("{a}/author_id"), json!(p.author.0));
                    set(&mut v, &format!("{a}/state"), json!(state));
                    set(&mut v, &format!("{a}/action"), json!(action));
                    set(&mut v, &format!("{a}/merge_commit_sha"), json!(p.merge_sha));
                    // GitLab's `update` says what changed: new commits (`oldrev`) or text.
                    match what {
                        Happening::Pr(_, PrChange::Edited) => set(
                            &mut v,
                            "/changes",
                            json!({ "description": { "previous": "", "current": p.body } }),
                        ),
                        Happening::Pr(_, PrChange::Synchronized) => {
                            set(&mut v, &format!("{a}/oldrev"), json!("0".repeat(40)))
                        }
                        _ => {}
                    }
                }
                Happening::Status { sha, success, .. } => {
                    set(&mut v, "/object_attributes/sha", json!(sha));
                    set(
                        &mut v,
                        "/object_attributes/status",
                        json!(if *success { "success" } else { "failed" }),
                    );
                }
                Happening::Comment {
                    number,
                    comment_id,
                    body,
                    author,
                    ..
                } => {
                    let u = user(author);
                    set(&mut v, "/object_attributes/note", json!(body));
                    set(&mut v, "/object_attributes/author_id", json!(u.0));
                    set(&mut v, "/object_attributes/id", json!(comment_id));
                    set(&mut v, "/merge_request/iid", json!(number));
                    set(&mut v, "/user/id", json!(u.0));
                    set(&mut v, "/user/username", json!(u.1));
                }
                Happening::Push { before, after } => {
                    set(&mut v, "/before", json!(before));
                    set(&mut v, "/after", json!(after));
                    set(&mut v, "/checkout_sha", json!(after));
                    set(
                        &mut v,
                        "/ref",
                        json!(format!("refs/heads/{}", r.default_branch())),
                    );
                }
            }
        } else {
            set(&mut v, "/repository/full_name", json!(full));
            set(&mut v, "/repository/name", json!(name));
            set(&mut v, "/repository/owner/login", json!(owner));
            match what {
                Happening::PrOpened(_) | Happening::PrMerged(_) | Happening::Pr(..) => {
                    let (n, _, _, action) = pr_state(what).unwrap();
                    let p = &r.pulls[&n];
                    let merged = matches!(what, Happening::PrMerged(_));
                    let action = match (what, dialect) {
                        (Happening::Pr(_, PrChange::Synchronized), "github") => "synchronize",
                        (Happening::Pr(_, PrChange::Synchronized), _) => "synchronized",
                        _ => action,
                    };
                    set(&mut v, "/action", json!(action));
                    set(&mut v, "/number", json!(p.number));
                    let pr = "/pull_request";
                    set(&mut v, &format!("{pr}/number"), json!(p.number));
                    set(&mut v, &format!("{pr}/title"), json!(p.title));
                    set(&mut v, &format!("{pr}/body"), json!(p.body));
                    set(&mut v, &format!("{pr}/head/sha"), json!(p.head_sha));
                    set(&mut v, &format!("{pr}/head/ref"), json!(p.head_ref));
                    set(&mut v, &format!("{pr}/base/ref"), json!(p.base_ref));
                    set(&mut v, &format!("{pr}/merged"), json!(merged));
                    set(
                        &mut v,
                        &format!("{pr}/state"),
                        json!(if p.open { "open" } else { "closed" }),
                    );
                    set(
                        &mut v,
                        &format!("{pr}/merge_commit_sha"),
                        json!(p.merge_sha),
                    );
                    set(&mut v, &format!("{pr}/user/id"), json!(p.author.0));
                    set(&mut v, &format!("{pr}/user/login"), json!(p.author.1));
                }
                Happening::Status {
                    sha,
                    context,
                    success,
                } => {
                    set(&mut v, "/sha", json!(sha));
                    set(&mut v, "/context", json!(context));
                    set(
                        &mut v,
                        "/state",
                        json!(if *success { "success" } else { "failure" }),
                    );
                }
                Happening::Comment {
                    number,
                    comment_id,
                    body,
                    author,
                    previous,
                } => {
                    let u = user(author);
                    if let Some(p) = previous {
                        set(&mut v, "/action", json!("edited"));
                        set(&mut v, "/changes", json!({ "body": { "from": p } }));
                    }
                    set(
                        &mut v,
                        "/issue/pull_request",
                        json!({ "merged": false, "url": "https://forge.example/pulls" }),
                    );
                    set(&mut v, "/issue/number", json!(number));
                    set(&mut v, "/comment/id", json!(comment_id));
                    set(&mut v, "/comment/body", json!(body));
                    set(&mut v, "/comment/user/id", json!(u.0));
                    set(&mut v, "/comment/user/login", json!(u.1));
                    set(&mut v, "/sender/id", json!(u.0));
                    set(&mut v, "/sender/login", json!(u.1));
                }
                Happening::Push { before, after } => {
                    set(&mut v, "/before", json!(before));
                    set(&mut v, "/after", json!(after));
                    set(
                        &mut v,
                        "/ref",
                        json!(format!("refs/heads/{}", r.default_branch())),
                    );
                }
            }
        }
        fx.body = serde_json::to_vec(&v).unwrap();
        // A fresh delivery id; Forgejo sends its own headers beside Gitea's.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = format!(
            "fake-{}-{}",
            f.kind,
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let names: Vec<_> = fx.headers.keys().cloned().collect();
        for name in names {
            let n = name.as_str();
            if n.ends_with("-delivery") || n == "idempotency-key" || n == "x-gitlab-event-uuid" {
                fx.headers
                    .insert(name.clone(), HeaderValue::from_str(&id).unwrap());
            }
            if f.kind == "forgejo"
                && let Some(rest) = n.strip_prefix("x-gitea-")
            {
                let value = fx.headers[&name].clone();
                let twin =
                    axum::http::HeaderName::from_bytes(format!("x-forgejo-{rest}").as_bytes())
                        .unwrap();
                fx.headers.insert(twin, value);
            }
        }
        let forge = match f.kind {
            "github" => Wf::Github,
            "gitea" => Wf::Gitea,
            "forgejo" => Wf::Forgejo,
            _ => Wf::Gitlab,
        };
        fx.sign(forge, secret, &id).unwrap();
        fx
    }
}
