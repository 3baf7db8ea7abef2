//! GitHub payloads → [`Event`]. Gitea and Forgejo send GitHub-shaped payloads for pushes, pull
//! requests, comments and statuses, so the shared shapes live here and `gitea.rs` reuses them.

use serde_json::Value;

use super::event::{
    Actor, CiState, CiStatus, Comment, CommentAction, Event, Installation, InstallationAction,
    PayloadError, Ping, PrAction, PullRequestEvent, Push, Recheck, Repo, at, bool_at, is_zero_sha,
    opt_str, str_at, u64_at,
};

/// Normalizes one GitHub delivery; `Ok(None)` for events and actions the bot does not act on.
pub fn normalize(event: &str, v: &Value) -> Result<Option<Event>, PayloadError> {
    let action = at(v, "action").and_then(Value::as_str).unwrap_or("");
    Ok(Some(match (event, action) {
        ("ping", _) => Event::Ping(Ping {
            repo: repo(v).ok(),
            hook_id: at(v, "hook_id").and_then(Value::as_u64),
        }),
        ("push", _) => Event::Push(push(v, bool_at(v, "forced"))?),
        ("pull_request", _) => match pr_action(action, v) {
            Some(a) => Event::PullRequest(pull_request(v, a)?),
            None => return Ok(None),
        },
        ("issue_comment", _) => match comment_action(action) {
            Some(a) => Event::Comment(comment(v, a)?),
            None => return Ok(None),
        },
        ("status", _) => Event::CiStatus(commit_status(v)?),
        ("check_run", "created" | "completed") => Event::CiStatus(check(v, "check_run")?),
        ("check_run", "rerequested") => {
            if !str_at(v, "check_run.name")?.starts_with("trunkwarden/") {
                return Ok(None);
            }
            let pulls = at(v, "check_run.pull_requests")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|p| p.get("number")?.as_u64()).collect())
                .unwrap_or_default();
            Event::Recheck(Recheck {
                repo: repo(v)?,
                sha: str_at(v, "check_run.head_sha")?.to_owned(),
                pulls,
            })
        }
        ("check_suite", "completed") => Event::CiStatus(check(v, "check_suite")?),
        ("workflow_run", "requested" | "in_progress" | "completed") => {
            Event::CiStatus(workflow_run(v)?)
        }
        ("installation", _) | ("installation_repositories", _) => {
            match installation(event, action, v)? {
                Some(i) => Event::Installation(i),
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    }))
}

/// An App's installation event: `installation` (created, deleted, suspend, unsuspend,
/// new_permissions_accepted) or `installation_repositories` (added, removed).
fn installation(
    event: &str,
    action: &str,
    v: &Value,
) -> Result<Option<Installation>, PayloadError> {
    let id = u64_at(v, "installation.id")?;
    let list = |key: &str| -> Vec<Repo> {
        at(v, key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| {
                        Some(Repo {
                            full_name: r.get("full_name")?.as_str()?.to_owned(),
                            id: r.get("id").and_then(Value::as_u64),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (action, added, removed) = match (event, action) {
        ("installation", "created" | "unsuspend" | "new_permissions_accepted") => {
            (InstallationAction::Active, list("repositories"), Vec::new())
        }
        ("installation", "deleted" | "suspend") => (
            InstallationAction::Stopped,
            Vec::new(),
            list("repositories"),
        ),
        ("installation_repositories", "added" | "removed") => (
            InstallationAction::Repositories,
            list("repositories_added"),
            list("repositories_removed"),
        ),
        _ => return Ok(None),
    };
    Ok(Some(Installation {
        id,
        action,
        added,
        removed,
    }))
}

/// The repository of a GitHub-shaped payload.
pub fn repo(v: &Value) -> Result<Repo, PayloadError> {
    Ok(Repo {
        full_name: str_at(v, "repository.full_name")?.to_owned(),
        id: at(v, "repository.id").and_then(Value::as_u64),
    })
}

/// A user object (`{id, login}`); Gitea's older payloads name the login `username`.
pub fn user(v: &Value, path: &str) -> Result<Actor, PayloadError> {
    let id = u64_at(v, &format!("{path}.id"))?;
    let login = opt_str(v, &format!("{path}.login"))
        .or_else(|| opt_str(v, &format!("{path}.username")))
        .ok_or_else(|| PayloadError::Missing {
            path: format!("{path}.login"),
        })?;
    Ok(Actor { id, login })
}

/// A push; `forced` comes from the caller because only GitHub reports it.
pub fn push(v: &Value, forced: bool) -> Result<Push, PayloadError> {
    let before = str_at(v, "before")?.to_owned();
    let after = str_at(v, "after")?.to_owned();
    let commits = at(v, "commits")
        .and_then(Value::as_array)
        .map_or(0, |c| c.len() as u64);
    Ok(Push {
        repo: repo(v)?,
        actor: user(v, "sender")?,
        git_ref: str_at(v, "ref")?.to_owned(),
        created: bool_at(v, "created") || is_zero_sha(&before),
        deleted: bool_at(v, "deleted") || is_zero_sha(&after),
        forced,
        commits: at(v, "total_commits")
            .and_then(Value::as_u64)
            .unwrap_or(commits),
        before,
        after,
    })
}

/// Maps GitHub's and Gitea's pull request actions; `None` for ones the bot ignores.
pub fn pr_action(action: &str, v: &Value) -> Option<PrAction> {
    Some(match action {
        "opened" => PrAction::Opened,
        // GitHub says `synchronize`, Gitea `synchronized`.
        "synchronize" | "synchronized" => PrAction::Updated,
        "edited" => PrAction::Edited,
        "reopened" => PrAction::Reopened,
        "closed" if bool_at(v, "pull_request.merged") => PrAction::Merged,
        "closed" => PrAction::Closed,
        _ => return None,
    })
}

/// A pull request payload.
pub fn pull_request(v: &Value, action: PrAction) -> Result<PullRequestEvent, PayloadError> {
    let merged = bool_at(v, "pull_request.merged");
    Ok(PullRequestEvent {
        repo: repo(v)?,
        actor: user(v, "sender")?,
        action,
        number: u64_at(v, "pull_request.number")?,
        title: opt_str(v, "pull_request.title").unwrap_or_default(),
        body: opt_str(v, "pull_request.body").unwrap_or_default(),
        author: user(v, "pull_request.user")?,
        head_sha: str_at(v, "pull_request.head.sha")?.to_owned(),
        head_ref: str_at(v, "pull_request.head.ref")?.to_owned(),
        base_sha: opt_str(v, "pull_request.base.sha"),
        base_ref: str_at(v, "pull_request.base.ref")?.to_owned(),
        merged,
        // GitHub fills this with a test merge before merging; it only means something once merged.
        merge_commit_sha: opt_str(v, "pull_request.merge_commit_sha").filter(|_| merged),
    })
}

/// Maps comment actions.
pub fn comment_action(action: &str) -> Option<CommentAction> {
    Some(match action {
        "created" => CommentAction::Created,
        "edited" => CommentAction::Edited,
        "deleted" => CommentAction::Deleted,
        _ => return None,
    })
}

/// An `issue_comment` payload; it is on a pull request iff `issue.pull_request` is present.
pub fn comment(v: &Value, action: CommentAction) -> Result<Comment, PayloadError> {
    Ok(Comment {
        repo: repo(v)?,
        actor: user(v, "sender")?,
        action,
        number: u64_at(v, "issue.number")?,
        on_pull_request: at(v, "issue.pull_request").is_some(),
        comment_id: u64_at(v, "comment.id")?,
        body: opt_str(v, "comment.body").unwrap_or_default(),
        previous_body: at(v, "changes.body.from")
            .and_then(Value::as_str)
            .map(str::to_owned),
        author: user(v, "comment.user")?,
    })
}

/// A commit status (`status` event): one context on one SHA.
pub fn commit_status(v: &Value) -> Result<CiStatus, PayloadError> {
    let raw = str_at(v, "state")?;
    Ok(CiStatus {
        repo: repo(v)?,
        actor: user(v, "sender").ok(),
        sha: str_at(v, "sha")?.to_owned(),
        context: str_at(v, "context")?.to_owned(),
        state: status_state(raw),
        raw_state: raw.to_owned(),
        target_url: opt_str(v, "target_url"),
        app: None,
        description: opt_str(v, "description"),
    })
}

/// Commit status states of GitHub (`pending|success|failure|error`) and Gitea (`warning`, too).
pub fn status_state(raw: &str) -> CiState {
    match raw {
        "success" => CiState::Success,
        "failure" | "warning" => CiState::Failure,
        "error" => CiState::Error,
        "skipped" => CiState::Skipped,
        _ => CiState::Pending,
    }
}

/// Checks API conclusions; no conclusion yet means pending.
fn conclusion_state(conclusion: Option<&str>) -> CiState {
    match conclusion {
        Some("success") => CiState::Success,
        Some("failure" | "timed_out" | "startup_failure") => CiState::Failure,
        Some("cancelled" | "stale") => CiState::Cancelled,
        Some("neutral") => CiState::Neutral,
        Some("skipped") => CiState::Skipped,
        // `action_required` waits for a person: not terminal.
        _ => CiState::Pending,
    }
}

/// A `check_run` or `check_suite`; the context is the run's name, or the suite's app.
fn check(v: &Value, kind: &str) -> Result<CiStatus, PayloadError> {
    let conclusion = opt_str(v, &format!("{kind}.conclusion"));
    let app =
        opt_str(v, &format!("{kind}.app.slug")).or_else(|| opt_str(v, &format!("{kind}.app.name")));
    let context = if kind == "check_run" {
        str_at(v, "check_run.name")?.to_owned()
    } else {
        format!("check_suite/{}", app.as_deref().unwrap_or("unknown"))
    };
    let sha = opt_str(v, &format!("{kind}.head_sha"))
        .or_else(|| opt_str(v, &format!("{kind}.after")))
        .ok_or_else(|| PayloadError::Missing {
            path: format!("{kind}.head_sha"),
        })?;
    Ok(CiStatus {
        repo: repo(v)?,
        actor: user(v, "sender").ok(),
        sha,
        context,
        state: conclusion_state(conclusion.as_deref()),
        raw_state: conclusion
            .or_else(|| opt_str(v, &format!("{kind}.status")))
            .unwrap_or_default(),
        target_url: opt_str(v, &format!("{kind}.details_url"))
            .or_else(|| opt_str(v, &format!("{kind}.html_url"))),
        app,
        description: opt_str(v, &format!("{kind}.output.title")),
    })
}

/// A GitHub Actions `workflow_run`; the context is the workflow's name.
fn workflow_run(v: &Value) -> Result<CiStatus, PayloadError> {
    let conclusion = opt_str(v, "workflow_run.conclusion");
    let context = opt_str(v, "workflow_run.name")
        .or_else(|| opt_str(v, "workflow.name"))
        .or_else(|| opt_str(v, "workflow_run.path"))
        .unwrap_or_else(|| {
            let id = at(v, "workflow_run.workflow_id").and_then(Value::as_u64);
            format!("workflow/{}", id.unwrap_or(0))
        });
    Ok(CiStatus {
        repo: repo(v)?,
        actor: user(v, "sender").ok(),
        sha: str_at(v, "workflow_run.head_sha")?.to_owned(),
        context,
        state: conclusion_state(conclusion.as_deref()),
        raw_state: conclusion
            .or_else(|| opt_str(v, "workflow_run.status"))
            .unwrap_or_default(),
        target_url: opt_str(v, "workflow_run.html_url"),
        app: Some("github-actions".into()),
        description: None,
    })
}
