//! GitLab payloads → [`Event`], by `X-Gitlab-Event` (`Push Hook`, `Merge Request Hook`,
//! `Note Hook`, `Pipeline Hook`, `Job Hook`).

use serde_json::Value;

use super::event::{
    Actor, CiState, CiStatus, Comment, CommentAction, Event, PayloadError, PrAction,
    PullRequestEvent, Push, Repo, at, bool_at, is_zero_sha, opt_str, str_at, u64_at,
};

/// Normalizes one GitLab delivery; `Ok(None)` for hooks and actions the bot does not act on.
pub fn normalize(event: &str, v: &Value) -> Result<Option<Event>, PayloadError> {
    Ok(Some(match event {
        "Push Hook" => Event::Push(push(v)?),
        "Merge Request Hook" => match mr_action(v) {
            Some(a) => Event::PullRequest(merge_request(v, a)?),
            None => return Ok(None),
        },
        "Note Hook" => match note(v)? {
            Some(c) => Event::Comment(c),
            None => return Ok(None),
        },
        "Pipeline Hook" => Event::CiStatus(pipeline(v)?),
        "Job Hook" => Event::CiStatus(job(v)?),
        _ => return Ok(None),
    }))
}

fn project(v: &Value) -> Result<Repo, PayloadError> {
    Ok(Repo {
        full_name: str_at(v, "project.path_with_namespace")?.to_owned(),
        id: at(v, "project.id")
            .or_else(|| at(v, "project_id"))
            .and_then(Value::as_u64),
    })
}

/// The `user` object: who acted. Its `username` may be absent in job payloads.
fn user(v: &Value) -> Result<Actor, PayloadError> {
    Ok(Actor {
        id: u64_at(v, "user.id")?,
        login: opt_str(v, "user.username").unwrap_or_default(),
    })
}

fn push(v: &Value) -> Result<Push, PayloadError> {
    let before = str_at(v, "before")?.to_owned();
    let after = str_at(v, "after")?.to_owned();
    Ok(Push {
        repo: project(v)?,
        actor: Actor {
            id: u64_at(v, "user_id")?,
            login: opt_str(v, "user_username").unwrap_or_default(),
        },
        git_ref: str_at(v, "ref")?.to_owned(),
        created: is_zero_sha(&before),
        deleted: is_zero_sha(&after),
        forced: false,
        // `commits` holds at most 20 entries; the count is the real number.
        commits: at(v, "total_commits_count")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        before,
        after,
    })
}

/// GitLab's `update` means new commits only when `oldrev` is present; a title or description
/// change is an edit; other updates (labels, assignees) are ignored.
fn mr_action(v: &Value) -> Option<PrAction> {
    Some(match at(v, "object_attributes.action")?.as_str()? {
        "open" => PrAction::Opened,
        "reopen" => PrAction::Reopened,
        "close" => PrAction::Closed,
        "merge" => PrAction::Merged,
        "update" if at(v, "object_attributes.oldrev").is_some() => PrAction::Updated,
        "update" if at(v, "changes.title").is_some() || at(v, "changes.description").is_some() => {
            PrAction::Edited
        }
        _ => return None,
    })
}

fn merge_request(v: &Value, action: PrAction) -> Result<PullRequestEvent, PayloadError> {
    let actor = user(v)?;
    let author_id = u64_at(v, "object_attributes.author_id")?;
    let merged = action == PrAction::Merged
        || at(v, "object_attributes.state").and_then(Value::as_str) == Some("merged");
    Ok(PullRequestEvent {
        repo: project(v)?,
        action,
        number: u64_at(v, "object_attributes.iid")?,
        title: opt_str(v, "object_attributes.title").unwrap_or_default(),
        body: opt_str(v, "object_attributes.description").unwrap_or_default(),
        // The payload names the author only by id; the login is known when the author acted.
        author: Actor {
            id: author_id,
            login: if actor.id == author_id {
                actor.login.clone()
            } else {
                String::new()
            },
        },
        head_sha: str_at(v, "object_attributes.last_commit.id")?.to_owned(),
        head_ref: str_at(v, "object_attributes.source_branch")?.to_owned(),
        base_sha: None,
        base_ref: str_at(v, "object_attributes.target_branch")?.to_owned(),
        merged,
        merge_commit_sha: opt_str(v, "object_attributes.merge_commit_sha").filter(|_| merged),
        actor,
    })
}

/// A note on a merge request or issue; system notes and notes on commits or snippets are ignored.
fn note(v: &Value) -> Result<Option<Comment>, PayloadError> {
    if bool_at(v, "object_attributes.system") {
        return Ok(None);
    }
    let (on_pull_request, number) = match str_at(v, "object_attributes.noteable_type")? {
        "MergeRequest" => (true, u64_at(v, "merge_request.iid")?),
        "Issue" => (false, u64_at(v, "issue.iid")?),
        _ => return Ok(None),
    };
    // `action` exists since GitLab 16.11; older payloads are creations.
    let action = match at(v, "object_attributes.action").and_then(Value::as_str) {
        None | Some("create") => CommentAction::Created,
        Some("update") => CommentAction::Edited,
        Some(_) => return Ok(None),
    };
    let actor = user(v)?;
    Ok(Some(Comment {
        repo: project(v)?,
        action,
        number,
        on_pull_request,
        comment_id: u64_at(v, "object_attributes.id")?,
        body: opt_str(v, "object_attributes.note").unwrap_or_default(),
        previous_body: None,
        author: Actor {
            id: at(v, "object_attributes.author_id")
                .and_then(Value::as_u64)
                .unwrap_or(actor.id),
            login: actor.login.clone(),
        },
        actor,
    }))
}

/// Pipeline and job statuses: `success`, `failed`, `canceled`, `skipped` are terminal.
fn ci_state(raw: &str) -> CiState {
    match raw {
        "success" => CiState::Success,
        "failed" => CiState::Failure,
        "canceled" | "cancelled" => CiState::Cancelled,
        "skipped" => CiState::Skipped,
        _ => CiState::Pending,
    }
}

fn pipeline(v: &Value) -> Result<CiStatus, PayloadError> {
    let raw = str_at(v, "object_attributes.status")?;
    Ok(CiStatus {
        repo: project(v)?,
        actor: user(v).ok(),
        sha: str_at(v, "object_attributes.sha")?.to_owned(),
        context: "pipeline".into(),
        state: ci_state(raw),
        raw_state: raw.to_owned(),
        target_url: opt_str(v, "object_attributes.url").or_else(|| {
            let id = at(v, "object_attributes.id")?.as_u64()?;
            Some(format!(
                "{}/-/pipelines/{id}",
                opt_str(v, "project.web_url")?
            ))
        }),
        app: Some("gitlab-ci".into()),
        description: opt_str(v, "object_attributes.name"),
    })
}

fn job(v: &Value) -> Result<CiStatus, PayloadError> {
    let raw = str_at(v, "build_status")?;
    Ok(CiStatus {
        repo: project(v)?,
        actor: user(v).ok(),
        sha: str_at(v, "sha")?.to_owned(),
        context: str_at(v, "build_name")?.to_owned(),
        state: ci_state(raw),
        raw_state: raw.to_owned(),
        target_url: (|| {
            let id = at(v, "build_id")?.as_u64()?;
            Some(format!(
                "{}/-/jobs/{id}",
                opt_str(v, "repository.homepage")?
            ))
        })(),
        app: Some("gitlab-ci".into()),
        description: opt_str(v, "build_stage").map(|s| format!("stage {s}")),
    })
}
