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

/// Everything the fake knows.
#[derive(Debug)]
pub struct Forge {
    pub kind: &'static str,
    pub token: String,
    pub users: Vec<(u64, String)>,
    pub bot: (u64, String),
    pub pulls: BTreeMap<u64, Pull>,
    pub issues: BTreeMap<u64, bool>,
    pub comments: Vec<Comment>,
    pub ci: Vec<Ci>,
    /// Login → the dialect's permission word (GitHub `role_name`, Gitea `permission`, GitLab
    /// access level as a number).
    pub permissions: HashMap<String, String>,
    pub hooks: Vec<Value>,
    /// Hooks of the organisation (GitLab: group) `OWNER`.
    pub org_hooks: Vec<Value>,
    /// GitHub's recorded deliveries per hook id, newest first.
    pub hook_deliveries: HashMap<u64, Vec<Value>>,
    pub repo: Value,
    pub protection: Option<Value>,
    pub faults: VecDeque<Fault>,
    pub requests: Vec<Recorded>,
    pub git: PathBuf,
    next_id: u64,
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
        let repo = match kind {
            "github" => {
                json!({ "allow_squash_merge": true, "allow_merge_commit": true, "allow_rebase_merge": true })
            }
            "gitlab" => {
                json!({ "merge_method": "merge", "squash_option": "default_off", "autoclose_referenced_issues": true })
            }
            _ => {
                json!({ "allow_squash_merge": true, "allow_merge_commits": true, "allow_rebase": true })
            }
        };
        let state = Arc::new(Mutex::new(Forge {
            kind,
            token: token.to_owned(),
            users: vec![
                (1, "trunkwarden".into()),
                (2, "alice".into()),
                (3, "bob".into()),
            ],
            bot: (1, "trunkwarden".into()),
            pulls: BTreeMap::new(),
            issues: BTreeMap::new(),
            comments: Vec::new(),
            ci: Vec::new(),
            permissions: HashMap::new(),
            hooks: Vec::new(),
            org_hooks: Vec::new(),
            hook_deliveries: HashMap::new(),
            repo,
            protection: None,
            faults: VecDeque::new(),
            requests: Vec::new(),
            git,
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

    /// Adds an open pull request from `head_ref` (which must exist in the bare repository).
    pub fn add_pull(&self, number: u64, author: &str, head_ref: &str, title: &str, body: &str) {
        let mut f = self.state.lock().unwrap();
        let head_sha = git(&f.git, &["rev-parse", &format!("refs/heads/{head_ref}")]);
        let author = f
            .users
            .iter()
            .find(|u| u.1 == author)
            .cloned()
            .expect("known user");
        f.pulls.insert(
            number,
            Pull {
                number,
                title: title.into(),
                body: body.into(),
                author,
                head_ref: head_ref.into(),
                head_sha,
                base_ref: "main".into(),
                open: true,
                merged: false,
                merge_sha: None,
                labels: vec!["task".into()],
            },
        );
    }

    /// Merges a pull request as the forge's squash button would; returns the merge commit.
    pub fn merge_pull(&self, number: u64, message: &str) -> String {
        self.state.lock().unwrap().squash(number, message)
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

fn reply(status: u16, body: Value) -> Response {
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
    let bytes = axum::body::to_bytes(req.into_body(), 10 << 20)
        .await
        .unwrap_or_default();
    let body: Option<Value> = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(&bytes).ok()
    };
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
    f.requests.push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        body: body.clone(),
        headers: headers.clone(),
    });
    let token = f.token.clone();
    let auth_ok = match f.kind {
        "gitlab" => {
            headers.get("private-token").and_then(|v| v.to_str().ok()) == Some(token.as_str())
        }
        _ => headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("token {token}") || v == format!("Bearer {token}")),
    };
    if !auth_ok {
        return reply(401, json!({ "message": "Bad credentials" }));
    }
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
    let q = parse_query(query.as_deref());
    match f.kind {
        "gitlab" => gitlab(&mut f, &method, &segs, &q, body),
        kind => github_like(&mut f, kind, &method, &segs, &q, body),
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

    fn pull_json(&self, p: &Pull) -> Value {
        let base_sha = git(
            &self.git,
            &["rev-parse", &format!("refs/heads/{}", p.base_ref)],
        );
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

    /// The real squash merge: one commit on top of the base with the pull request's changes.
    fn squash(&mut self, number: u64, message: &str) -> String {
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
        let p = self.pulls.get_mut(&number).unwrap();
        p.merged = true;
        p.open = false;
        p.merge_sha = Some(sha.clone());
        sha
    }
}

/// Hooks of the repository or the organisation (GitLab: project or group), each dialect's way:
/// GitHub and Gitea edit with PATCH and keep the secret in `config`, GitLab edits with PUT, keeps
/// it as `token` and marks a new hook `executable`. Secrets are never read back. GitHub lists a
/// hook's deliveries. `None` when `rest` is not a hooks route.
fn hook_routes(
    f: &mut Forge,
    org: bool,
    method: &str,
    rest: &[&str],
    body: &Value,
) -> Option<Response> {
    let fresh_id = f.next_id + 1;
    let (github, gitlab) = (f.kind == "github", f.kind == "gitlab");
    let edit = if gitlab { "PUT" } else { "PATCH" };
    let hooks = if org { &mut f.org_hooks } else { &mut f.hooks };
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
    let github = kind == "github";
    if let ["orgs", org, rest @ ..] = segs {
        if *org != OWNER {
            return not_found();
        }
        return hook_routes(f, true, method, rest, &body).unwrap_or_else(not_found);
    }
    let ["repos", owner, name, rest @ ..] = segs else {
        return not_found();
    };
    if (*owner, *name) != (OWNER, NAME) {
        return not_found();
    }
    if let Some(r) = hook_routes(f, false, method, rest, &body) {
        return r;
    }
    match (method, rest) {
        ("GET", []) => reply(200, f.repo.clone()),
        ("PATCH", []) => {
            for (k, v) in body.as_object().cloned().unwrap_or_default() {
                f.repo[k] = v;
            }
            reply(200, f.repo.clone())
        }
        ("GET", ["pulls", n]) => match n.parse().ok().and_then(|n: u64| f.pulls.get(&n).cloned()) {
            Some(p) => reply(200, f.pull_json(&p)),
            None => not_found(),
        },
        (m, ["pulls", n, "merge"]) if (github && m == "PUT") || (!github && m == "POST") => {
            let Some(p) = n.parse().ok().and_then(|n: u64| f.pulls.get(&n).cloned()) else {
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
            let sha = f.squash(p.number, &format!("{title}\n\n{msg}"));
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
            let list: Vec<Value> = f
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
            let runs: Vec<Value> = f
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
        ("POST", ["statuses", sha]) => {
            let reporter = f.bot.1.clone();
            f.ci.push(Ci {
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
            let list: Vec<Value> = f
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
            f.comments.push(c);
            reply(201, json)
        }
        ("PATCH", ["issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let text = body["body"].as_str().unwrap_or("").to_owned();
            let Some(c) = f.comments.iter_mut().find(|c| c.id == id) else {
                return not_found();
            };
            c.body = text;
            let c = c.clone();
            reply(200, f.comment_json(&c))
        }
        ("PATCH", ["issues", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let Some(open) = f.issues.get_mut(&n) else {
                return not_found();
            };
            *open = body["state"] == "open";
            reply(200, json!({ "number": n, "state": body["state"] }))
        }
        ("GET", ["collaborators", login, "permission"]) => match f.permissions.get(*login) {
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
        ("GET", ["branches", _, "protection"]) if github => match &f.protection {
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
            f.protection = Some(p.clone());
            reply(200, p)
        }
        ("GET", ["branch_protections", _]) if !github => match &f.protection {
            Some(p) => reply(200, p.clone()),
            None => not_found(),
        },
        ("PATCH", ["branch_protections", _]) if !github => match f.protection.as_mut() {
            Some(p) => {
                for (k, v) in body.as_object().cloned().unwrap_or_default() {
                    p[k] = v;
                }
                reply(200, p.clone())
            }
            None => not_found(),
        },
        ("POST", ["branch_protections"]) if !github => {
            f.protection = Some(body.clone());
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
        return hook_routes(f, true, method, rest, &body).unwrap_or_else(not_found);
    }
    let ["projects", project, rest @ ..] = segs else {
        return not_found();
    };
    if *project != format!("{OWNER}/{NAME}") {
        return reply(404, json!({ "message": "404 Project Not Found" }));
    }
    let thread = |kind: &str, n: &str| -> Option<(bool, u64)> {
        Some((kind == "merge_requests", n.parse().ok()?))
    };
    if let Some(r) = hook_routes(f, false, method, rest, &body) {
        return r;
    }
    match (method, rest) {
        ("GET", []) => reply(200, f.repo.clone()),
        ("PUT", []) => {
            for (k, v) in body.as_object().cloned().unwrap_or_default() {
                f.repo[k] = v;
            }
            reply(200, f.repo.clone())
        }
        ("GET", ["merge_requests", n]) => {
            match n.parse().ok().and_then(|n: u64| f.pulls.get(&n).cloned()) {
                Some(p) => reply(200, f.pull_json(&p)),
                None => reply(404, json!({ "message": "404 Not found" })),
            }
        }
        ("PUT", ["merge_requests", n, "merge"]) => {
            let Some(p) = n.parse().ok().and_then(|n: u64| f.pulls.get(&n).cloned()) else {
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
            f.squash(p.number, &msg);
            let p = f.pulls.get(&p.number).cloned().unwrap();
            reply(200, f.pull_json(&p))
        }
        ("GET", [kind @ ("merge_requests" | "issues"), n, "notes"]) => {
            let Some(t) = thread(kind, n) else {
                return not_found();
            };
            let list: Vec<Value> = f
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
            f.comments.push(c);
            reply(201, json)
        }
        ("PUT", [kind @ ("merge_requests" | "issues"), n, "notes", id]) => {
            let Some(t) = thread(kind, n) else {
                return not_found();
            };
            let id: u64 = id.parse().unwrap_or(0);
            let text = body["body"].as_str().unwrap_or("").to_owned();
            let Some(c) = f.comments.iter_mut().find(|c| c.id == id && c.thread == t) else {
                return not_found();
            };
            c.body = text;
            let c = c.clone();
            reply(200, f.comment_json(&c))
        }
        ("PUT", ["issues", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let Some(open) = f.issues.get_mut(&n) else {
                return not_found();
            };
            *open = body["state_event"] == "reopen";
            reply(
                200,
                json!({ "iid": n, "state": if *open { "opened" } else { "closed" } }),
            )
        }
        ("GET", ["repository", "commits", sha, "statuses"]) => {
            let list: Vec<Value> = f
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
            f.ci.push(Ci {
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
            match login.and_then(|l| f.permissions.get(&l).cloned()) {
                Some(level) => reply(
                    200,
                    json!({ "id": uid, "access_level": level.parse::<u32>().unwrap_or(0) }),
                ),
                None => reply(404, json!({ "message": "404 Not found" })),
            }
        }
        ("GET", ["protected_branches", _]) => match &f.protection {
            Some(p) => reply(200, p.clone()),
            None => reply(404, json!({ "message": "404 Not found" })),
        },
        ("DELETE", ["protected_branches", _]) => match f.protection.take() {
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
            f.protection = Some(p.clone());
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

impl FakeForge {
    /// A signed delivery announcing `what`, built from the forge's real payload in
    /// `webhook-fixtures/` (imported from the forge corpus) with this fake's values filled in.
    pub fn delivery(
        &self,
        what: &Happening,
        secret: &str,
    ) -> trunkwarden::webhook::fixture::Fixture {
        use trunkwarden::webhook::{Forge as Wf, fixture};
        let f = self.state.lock().unwrap();
        let dialect = if f.kind == "forgejo" { "gitea" } else { f.kind };
        let template = match (dialect, what) {
            ("github", Happening::PrOpened(_)) => "pull_request.opened.0",
            ("github", Happening::PrMerged(_)) => "pull_request.closed-merged.woodpecker",
            ("github", Happening::Status { .. }) => "status.none.0",
            (
                "github",
                Happening::Comment {
                    previous: Some(_), ..
                },
            ) => "issue_comment.edited.7",
            ("github", Happening::Comment { .. }) => "issue_comment.created-on-pr.go-scm",
            ("gitea", Happening::PrOpened(_)) => "pull_request.opened.go-scm",
            ("gitea", Happening::PrMerged(_)) => "pull_request.closed-merged.woodpecker",
            ("gitea", Happening::Status { .. }) => "status.success.RECONSTRUCTED",
            (
                "gitea",
                Happening::Comment {
                    previous: Some(_), ..
                },
            ) => "issue_comment.edited.go-scm",
            ("gitea", Happening::Comment { .. }) => "issue_comment.created-on-pr.go-scm",
            (_, Happening::PrOpened(_)) => "merge_request",
            (_, Happening::PrMerged(_)) => "merge_request.merge.woodpecker",
            (_, Happening::Status { .. }) => "pipeline",
            (_, Happening::Comment { .. }) => "note",
        };
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("webhook-fixtures")
            .join(dialect)
            .join(format!("{template}.json"));
        let mut fx = fixture::read(&path).expect("template");
        let mut v: Value = serde_json::from_slice(&fx.body).expect("template JSON");
        let full = format!("{OWNER}/{NAME}");
        let user = |login: &str| {
            f.users
                .iter()
                .find(|u| u.1 == login)
                .cloned()
                .expect("known user")
        };
        if dialect == "gitlab" {
            set(&mut v, "/project/path_with_namespace", json!(full));
            match what {
                Happening::PrOpened(n) | Happening::PrMerged(n) => {
                    let p = &f.pulls[n];
                    let merged = matches!(what, Happening::PrMerged(_));
                    let a = "/object_attributes";
                    set(&mut v, &format!("{a}/iid"), json!(p.number));
                    set(&mut v, &format!("{a}/title"), json!(p.title));
                    set(&mut v, &format!("{a}/description"), json!(p.body));
                    set(&mut v, &format!("{a}/source_branch"), json!(p.head_ref));
                    set(&mut v, &format!("{a}/target_branch"), json!(p.base_ref));
                    set(&mut v, &format!("{a}/last_commit/id"), json!(p.head_sha));
                    set(&mut v, &format!("{a}/author_id"), json!(p.author.0));
                    set(
                        &mut v,
                        &format!("{a}/state"),
                        json!(if merged { "merged" } else { "opened" }),
                    );
                    set(
                        &mut v,
                        &format!("{a}/action"),
                        json!(if merged { "merge" } else { "open" }),
                    );
                    set(&mut v, &format!("{a}/merge_commit_sha"), json!(p.merge_sha));
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
            }
        } else {
            set(&mut v, "/repository/full_name", json!(full));
            set(&mut v, "/repository/name", json!(NAME));
            set(&mut v, "/repository/owner/login", json!(OWNER));
            match what {
                Happening::PrOpened(n) | Happening::PrMerged(n) => {
                    let p = &f.pulls[n];
                    let merged = matches!(what, Happening::PrMerged(_));
                    set(
                        &mut v,
                        "/action",
                        json!(if merged { "closed" } else { "opened" }),
                    );
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
