//! The fake forge's CI jobs and their logs, served the way each forge serves them: GitHub
//! answers a job's log with a redirect to its storage (which honours `Range`), GitLab sends the
//! trace whole with its section markers, Gitea lists a commit's runs and their jobs and sends
//! a job's log whole. Woodpecker is a server of its own (`FakeWoodpecker`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};

use super::fake_forge::{Ci, FakeForge};

/// A CI job the fake ran.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub run: u64,
    pub sha: String,
    /// The job's name (Gitea: the part of the status context between `/ ` and ` (`).
    pub name: String,
    pub failed: bool,
    pub log: Arc<Vec<u8>>,
}

/// The job name in a Gitea Actions context: `CI / test (pull_request)` → `test`.
fn job_name(context: &str) -> String {
    let after = context.rsplit_once("/ ").map_or(context, |(_, r)| r);
    after.split(" (").next().unwrap_or(after).to_owned()
}

impl FakeForge {
    /// A job of the forge's own CI that ran on `sha` and failed with `log`, reported as
    /// `context` the way that CI reports it; returns the job id.
    pub fn fail_job(&self, sha: &str, context: &str, log: impl Into<Vec<u8>>) -> u64 {
        self.job(sha, context, false, log.into())
    }

    /// The same job rerun on the same commit, passing.
    pub fn pass_job(&self, sha: &str, context: &str) -> u64 {
        self.job(sha, context, true, b"ok\n".to_vec())
    }

    fn job(&self, sha: &str, context: &str, passed: bool, log: Vec<u8>) -> u64 {
        let mut f = self.state.lock().unwrap();
        let kind = f.kind;
        let id = 7000 + f.jobs.len() as u64;
        let run = 500 + f.jobs.len() as u64;
        let (state, conclusion, url, check_run) = match (kind, passed) {
            ("github", p) => (
                "completed",
                Some(if p { "success" } else { "failure" }),
                format!("https://github.com/acme/app/actions/runs/{run}/job/{id}"),
                true,
            ),
            ("gitlab", p) => (
                if p { "success" } else { "failed" },
                None,
                format!("https://gitlab.example/acme/app/-/jobs/{id}"),
                false,
            ),
            (_, p) => (
                if p { "success" } else { "failure" },
                None,
                format!("https://gitea.example/acme/app/actions/runs/{run}/jobs/0"),
                false,
            ),
        };
        f.jobs.push(Job {
            id,
            run,
            sha: sha.to_owned(),
            name: job_name(context),
            failed: !passed,
            log: Arc::new(log),
        });
        f.ci.push(Ci {
            sha: sha.to_owned(),
            context: context.to_owned(),
            state: state.to_owned(),
            conclusion: conclusion.map(str::to_owned),
            reporter: if kind == "github" {
                "github-actions".into()
            } else {
                "ci-bot".into()
            },
            target_url: Some(url),
            check_run,
        });
        id
    }
}

/// Text as a forge sends a log.
fn text(status: u16, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    r
}

/// `GET /repos/{o}/{r}/actions/…` on GitHub and Gitea.
pub fn github_like_routes(
    jobs: &[Job],
    kind: &str,
    method: &str,
    rest: &[&str],
    q: &HashMap<String, String>,
) -> Option<Response> {
    let job = |id: &str| jobs.iter().find(|j| id.parse() == Ok(j.id));
    Some(match (method, rest, kind) {
        ("GET", ["actions", "jobs", id, "logs"], "github") => match job(id) {
            Some(j) => {
                let mut r = text(302, Vec::new());
                let to = format!("/_blob/job/{}?sig=short-lived", j.id);
                r.headers_mut()
                    .insert("location", HeaderValue::from_str(&to).unwrap());
                r
            }
            None => text(404, b"{\"message\":\"Not Found\"}".to_vec()),
        },
        ("GET", ["actions", "jobs", id, "logs"], "gitea") => match job(id) {
            Some(j) => text(200, j.log.to_vec()),
            None => text(404, b"{\"message\":\"not found\"}".to_vec()),
        },
        ("GET", ["actions", "runs"], "gitea") => {
            let sha = q.get("head_sha");
            let mut runs: Vec<Value> = jobs
                .iter()
                .filter(|j| sha.is_none_or(|s| *s == j.sha))
                .map(|j| json!({ "id": j.run, "head_sha": j.sha, "status": "completed", "conclusion": if j.failed { "failure" } else { "success" } }))
                .collect();
            runs.dedup_by(|a, b| a["id"] == b["id"]);
            super::fake_forge::reply(
                200,
                json!({ "total_count": runs.len(), "workflow_runs": runs }),
            )
        }
        ("GET", ["actions", "runs", run, "jobs"], "gitea") => {
            let failed_only = q.get("status").is_some_and(|s| s == "failure");
            let list: Vec<Value> = jobs
                .iter()
                .filter(|j| run.parse() == Ok(j.run) && (!failed_only || j.failed))
                .map(|j| json!({ "id": j.id, "run_id": j.run, "name": j.name, "head_sha": j.sha, "status": "completed", "conclusion": if j.failed { "failure" } else { "success" } }))
                .collect();
            super::fake_forge::reply(200, json!({ "total_count": list.len(), "jobs": list }))
        }
        _ => return None,
    })
}

/// `GET /projects/{id}/jobs/{job}/trace` on GitLab: the trace whole.
pub fn gitlab_routes(jobs: &[Job], method: &str, rest: &[&str]) -> Option<Response> {
    let ("GET", ["jobs", id, "trace"]) = (method, rest) else {
        return None;
    };
    Some(match jobs.iter().find(|j| id.parse() == Ok(j.id)) {
        Some(j) => text(200, j.log.to_vec()),
        None => text(404, b"{\"message\":\"404 Not found\"}".to_vec()),
    })
}

/// The log storage GitHub redirects to: no token needed (the URL is signed), `Range`
/// honoured, so a client can read a log's tail only.
pub fn blob(jobs: &[Job], path: &str, headers: &HeaderMap) -> Response {
    let id = path.trim_start_matches("/_blob/job/");
    let Some(j) = jobs.iter().find(|j| id.parse() == Ok(j.id)) else {
        return text(404, Vec::new());
    };
    let len = j.log.len();
    let suffix = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes=-"))
        .and_then(|n| n.parse::<usize>().ok());
    match suffix {
        Some(n) if n < len => {
            let start = len - n;
            let mut r = text(206, j.log[start..].to_vec());
            r.headers_mut().insert(
                "content-range",
                HeaderValue::from_str(&format!("bytes {start}-{}/{len}", len - 1)).unwrap(),
            );
            r
        }
        _ => text(200, j.log.to_vec()),
    }
}

/// Woodpecker on loopback: pipelines with workflows and steps, each step's log as the JSON
/// array of base64 lines its API serves; requests need the bearer token.
pub struct FakeWoodpecker {
    pub url: String,
    pub state: Arc<Mutex<Woodpecker>>,
    task: tokio::task::JoinHandle<()>,
}

/// A step: its id, its state, the lines of its log.
pub type Step = (u64, String, Vec<String>);

/// A workflow: its name and steps.
pub type Workflow = (String, Vec<Step>);

#[derive(Default)]
pub struct Woodpecker {
    pub token: String,
    /// `(repo id, pipeline number)` → workflows: `(name, [(step id, state, log lines)])`.
    pub pipelines: HashMap<(u64, u64), Vec<Workflow>>,
    pub requests: Vec<String>,
}

impl FakeWoodpecker {
    pub async fn start(token: &str) -> FakeWoodpecker {
        let state = Arc::new(Mutex::new(Woodpecker {
            token: token.to_owned(),
            ..Woodpecker::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(woodpecker)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeWoodpecker {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// A pipeline whose workflow `workflow` has a failed step printing `log`; returns the
    /// status `target_url` Woodpecker would set.
    pub fn failed_pipeline(&self, repo: u64, number: u64, workflow: &str, log: &str) -> String {
        let lines = log.lines().map(str::to_owned).collect();
        self.state.lock().unwrap().pipelines.insert(
            (repo, number),
            vec![(
                workflow.to_owned(),
                vec![
                    (90, "success".into(), vec!["+ git clone".into()]),
                    (91, "failure".into(), lines),
                ],
            )],
        );
        format!("{}/repos/{repo}/pipeline/{number}", self.url)
    }
}

impl Drop for FakeWoodpecker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn woodpecker(State(state): State<Arc<Mutex<Woodpecker>>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut w = state.lock().unwrap();
    w.requests.push(path.clone());
    if auth != Some(format!("Bearer {}", w.token)) {
        return text(401, b"Unauthorized".to_vec());
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let num = |s: &str| s.parse::<u64>().unwrap_or(0);
    match segs.as_slice() {
        ["api", "repos", repo, "pipelines", n] => match w.pipelines.get(&(num(repo), num(n))) {
            Some(workflows) => {
                let wf: Vec<Value> = workflows
                    .iter()
                    .enumerate()
                    .map(|(i, (name, steps))| {
                        let children: Vec<Value> = steps
                            .iter()
                            .map(|(id, state, _)| json!({ "id": id, "pid": id, "ppid": i + 1, "name": format!("step-{id}"), "state": state }))
                            .collect();
                        json!({ "id": i + 1, "name": name, "state": "failure", "children": children })
                    })
                    .collect();
                super::fake_forge::reply(
                    200,
                    json!({ "id": 1, "number": num(n), "status": "failure", "workflows": wf }),
                )
            }
            None => text(404, Vec::new()),
        },
        ["api", "repos", repo, "logs", n, step] => {
            let step_id = num(step);
            let lines = w.pipelines.get(&(num(repo), num(n))).and_then(|wfs| {
                wfs.iter()
                    .flat_map(|(_, s)| s)
                    .find(|(id, _, _)| *id == step_id)
                    .map(|(_, _, l)| l.clone())
            });
            match lines {
                Some(lines) => {
                    let entries: Vec<Value> = lines
                        .iter()
                        .enumerate()
                        .map(|(i, l)| json!({ "id": i + 1, "step_id": step_id, "time": i, "line": i, "data": base64::engine::general_purpose::STANDARD.encode(l), "type": 0 }))
                        .collect();
                    super::fake_forge::reply(200, Value::Array(entries))
                }
                None => text(404, Vec::new()),
            }
        }
        _ => text(404, Vec::new()),
    }
}
