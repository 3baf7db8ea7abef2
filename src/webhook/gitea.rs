//! Gitea and Forgejo payloads → [`Event`]. The shapes are GitHub's (see `github.rs`); the
//! differences are the action names, the absence of a `forced` flag, and `X-Gitea-Event` being
//! coarse (`pull_request` also covers label and assignment changes, ignored by action here).

use serde_json::Value;

use super::event::{Event, PayloadError, Ping, at};
use super::github;

/// Normalizes one Gitea/Forgejo delivery by its coarse event name.
pub fn normalize(event: &str, v: &Value) -> Result<Option<Event>, PayloadError> {
    let action = at(v, "action").and_then(Value::as_str).unwrap_or("");
    Ok(Some(match event {
        "ping" => Event::Ping(Ping {
            repo: github::repo(v).ok(),
            hook_id: at(v, "hook_id").and_then(Value::as_u64),
        }),
        // Gitea has no force-push flag in its push payload.
        "push" => Event::Push(github::push(v, false)?),
        "pull_request" => match github::pr_action(action, v) {
            Some(a) => Event::PullRequest(github::pull_request(v, a)?),
            None => return Ok(None),
        },
        "issue_comment" => match github::comment_action(action) {
            Some(a) => Event::Comment(github::comment(v, a)?),
            None => return Ok(None),
        },
        "status" => Event::CiStatus(github::commit_status(v)?),
        _ => return Ok(None),
    }))
}
