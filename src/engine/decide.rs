//! The pure heart of the engine: from a task, its pull request and the CI verdicts on the
//! relevant commits, the row the task table should have and the effects owed to the forge.

use crate::config::CiPolicy;
use crate::forge::{CiResult, CiState, PrState, PullRequest};
use crate::tasks::{IssueRef, Status, Task, Tokens};

/// Whether a commit is green, as the repository defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every counted context passed; the contexts are named for the evidence.
    Green(Vec<String>),
    /// Some counted context failed.
    Red(Vec<String>),
    /// Still running, or nothing reported yet (or a required context not seen).
    Pending(Vec<String>),
}

/// The verdict over CI results: the required contexts when there are any, else every context
/// reported; the bot's own statuses (its login, or a `trunkwarden/` context) never count.
pub fn verdict(results: &[CiResult], policy: &CiPolicy, bot_login: &str) -> Verdict {
    let counted: Vec<&CiResult> = results
        .iter()
        .filter(|r| {
            r.reporter.as_deref() != Some(bot_login) && !r.context.starts_with("trunkwarden/")
        })
        .collect();
    let passes = |s: CiState| match s {
        CiState::Success => true,
        CiState::Neutral => policy.neutral_passes,
        CiState::Skipped => policy.skipped_passes,
        _ => false,
    };
    let (mut red, mut waiting, mut green) = (Vec::new(), Vec::new(), Vec::new());
    if policy.required.is_empty() {
        for r in &counted {
            match r.state {
                s if passes(s) => green.push(r.context.clone()),
                CiState::Pending => waiting.push(r.context.clone()),
                _ => red.push(r.context.clone()),
            }
        }
        if counted.is_empty() {
            waiting.push("(no CI reported yet)".into());
        }
    } else {
        for ctx in &policy.required {
            match counted.iter().find(|r| &r.context == ctx).map(|r| r.state) {
                Some(s) if passes(s) => green.push(ctx.clone()),
                Some(CiState::Pending) | None => waiting.push(ctx.clone()),
                Some(_) => red.push(ctx.clone()),
            }
        }
    }
    if !red.is_empty() {
        Verdict::Red(red)
    } else if !waiting.is_empty() {
        Verdict::Pending(waiting)
    } else {
        green.sort();
        Verdict::Green(green)
    }
}

impl std::fmt::Display for Verdict {
    /// `green (a, b)`, `failing: a`, `pending: a` — as comments and replies say it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Green(c) => write!(f, "green ({})", c.join(", ")),
            Verdict::Red(c) => write!(f, "failing: {}", c.join(", ")),
            Verdict::Pending(c) => write!(f, "pending: {}", c.join(", ")),
        }
    }
}

/// What landed on the trunk for a merged pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    pub sha: String,
    pub parents: usize,
    /// A later trunk commit that reverts it.
    pub reverted_by: Option<String>,
    pub ci: Verdict,
}

/// Something owed to the forge, with the key that makes it happen once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    CloseIssue { issue: u64, comment: String },
    ReopenIssue { issue: u64, comment: String },
    PullComment { marker: String, body: String },
}

/// The decision for one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Cells to set (only columns the table has are kept by the caller).
    pub cells: Vec<(String, String)>,
    /// Effects, each with its idempotency key.
    pub effects: Vec<(String, Effect)>,
    /// One phrase for the commit message, when the row changes in a way worth saying.
    pub summary: Option<String>,
    /// A learning to record: the task finished beyond ±50% of its estimate.
    pub learning: Option<serde_json::Value>,
}

/// A commit id as people read it.
pub(crate) fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

/// A learning entry when `used` is beyond ±50% of `estimate`, as the protocol asks.
fn learning(task: &Task, now: &str) -> Option<serde_json::Value> {
    learning_entry(&task.id, task.estimate?, task.used?, now)
}

/// The learnings-file entry for a task that used `used` against `estimate`, when the variance
/// is beyond ±50%; `None` within it.
pub(crate) fn learning_entry(
    id: &str,
    estimate: Tokens,
    used: Tokens,
    now: &str,
) -> Option<serde_json::Value> {
    let variance = crate::tasks::ratio(estimate, used)?;
    (variance.abs() > 0.5).then(|| {
        serde_json::json!({
            "task": id,
            "estimate": estimate.0,
            "actual": used.0,
            "variance": (variance * 1000.0).round() / 1000.0,
            "when": now,
        })
    })
}

/// The cells a pull request claims on its task: who works on it, since when, on which branch.
fn claim(d: &mut Decision, task: &Task, pr: &PullRequest, now: &str) {
    if task.agent.is_empty() {
        d.cells.push(("agent".into(), pr.author.login.clone()));
    }
    if task.started_at.is_none() {
        d.cells.push(("started_at".into(), now.to_owned()));
    }
    if task.branch.is_empty() {
        d.cells.push(("branch".into(), pr.head_ref.clone()));
    }
}

/// Decides a task's row and effects. `now` is an RFC 3339 timestamp; `issues` are the forge
/// issues the task closes.
pub fn decide(
    task: &Task,
    pr: &PullRequest,
    head: &Verdict,
    landed: Option<&Landed>,
    issues: &[u64],
    now: &str,
) -> Decision {
    decide_with(task, pr, head, landed, issues, now, None)
}

/// [`decide`], where `gave_up` is the number of heads CI failed on once it reached
/// `[ci] fail-after`: the task is then `failed` rather than still in progress.
pub fn decide_with(
    task: &Task,
    pr: &PullRequest,
    head: &Verdict,
    landed: Option<&Landed>,
    issues: &[u64],
    now: &str,
    gave_up: Option<usize>,
) -> Decision {
    let mut d = Decision::default();
    let n = pr.number;
    let status = task.status;
    let set = |d: &mut Decision, k: &str, v: String| d.cells.push((k.to_owned(), v));
    let internal = match &task.issue {
        Some(IssueRef::Internal(r)) => Some(format!("TASKS:{r}")),
        _ => None,
    };
    let issue_list = |issues: &[u64]| {
        issues
            .iter()
            .map(|i| format!("#{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match pr.state {
        PrState::Open => {
            if task.is_done() {
                return d;
            }
            if matches!(status, None | Some(Status::NotStarted | Status::Blocked)) {
                set(&mut d, "status", Status::InProgress.as_str().into());
                d.summary = Some(format!("{} in-progress — PR #{n} opened", task.id));
            }
            claim(&mut d, task, pr, now);
            let note = match head {
                Verdict::Red(ctx) => format!(
                    "PR #{n}: CI failing on {}: {}",
                    short(&pr.head_sha),
                    list(ctx)
                ),
                _ => format!("PR #{n}"),
            };
            if let (Verdict::Red(ctx), Some(k)) = (head, gave_up) {
                let note = format!(
                    "PR #{n}: CI failed on {k} pushes, last on {}: {}",
                    short(&pr.head_sha),
                    list(ctx)
                );
                if task.status != Some(Status::Failed) || task.notes != note {
                    d.cells.retain(|(c, _)| c != "status");
                    set(&mut d, "status", Status::Failed.as_str().into());
                    set(&mut d, "notes", note);
                    d.summary = Some(format!(
                        "{} failed — CI failed on {k} pushes of PR #{n}",
                        task.id
                    ));
                }
                return d;
            }
            if task.notes != note {
                if let (Verdict::Red(ctx), None) = (head, &d.summary) {
                    d.summary = Some(format!("{} — PR #{n} CI failing ({})", task.id, list(ctx)));
                }
                set(&mut d, "notes", note);
            }
        }
        PrState::Closed => {
            if !task.is_done() && status != Some(Status::NotStarted) {
                set(&mut d, "status", Status::NotStarted.as_str().into());
                set(&mut d, "notes", format!("PR #{n} closed without merging"));
                d.summary = Some(format!(
                    "{} not-started — PR #{n} closed without merging",
                    task.id
                ));
            }
        }
        PrState::Merged => {
            let Some(l) = landed else {
                if status != Some(Status::NeedsQa) {
                    set(&mut d, "status", Status::NeedsQa.as_str().into());
                    set(
                        &mut d,
                        "notes",
                        format!("PR #{n} merged, but its merge commit is not on the trunk"),
                    );
                    d.summary = Some(format!(
                        "{} needs-qa — PR #{n} merge commit not found",
                        task.id
                    ));
                }
                return d;
            };
            // A task whose opening was missed still gets its agent, start and branch.
            if !task.is_done() {
                claim(&mut d, task, pr, now);
            }
            let s = short(&l.sha);
            let reopen = |d: &mut Decision, why: &str| {
                for i in issues {
                    d.effects.push((
                        format!("reopen:{i}:{}", l.sha),
                        Effect::ReopenIssue {
                            issue: *i,
                            comment: format!("Reopened: {} is not done — {why}.", task.id),
                        },
                    ));
                }
            };
            if l.parents > 1 {
                let note = format!(
                    "PR #{n} merged with a merge commit {s} ({} parents); the trunk is squash-only",
                    l.parents
                );
                if task.notes != note {
                    set(&mut d, "status", Status::NeedsQa.as_str().into());
                    set(&mut d, "notes", note.clone());
                    d.summary = Some(format!(
                        "{} needs-qa — PR #{n} merged with a merge commit",
                        task.id
                    ));
                }
                d.effects.push((
                    format!("squash-only:{n}:{}", l.sha),
                    Effect::PullComment {
                        marker: "squash-only".into(),
                        body: format!("This pull request reached `{}` as the merge commit {s}, not as one squash commit. The trunk is squash-only, so {} needs QA before it can be done.", pr.base_ref, task.id),
                    },
                ));
                return d;
            }
            if let Some(rev) = &l.reverted_by {
                let note = format!(
                    "PR #{n} squash-merged as {s}, reverted on the trunk by {}",
                    short(rev)
                );
                if task.notes != note {
                    set(&mut d, "status", Status::Failed.as_str().into());
                    set(&mut d, "notes", note);
                    d.summary = Some(format!("{} failed — {s} reverted", task.id));
                }
                reopen(
                    &mut d,
                    &format!("its merge commit {s} was reverted by {}", short(rev)),
                );
                return d;
            }
            match &l.ci {
                Verdict::Green(ctx) => {
                    for i in issues {
                        d.effects.push((
                            format!("close:{i}:{}", l.sha),
                            Effect::CloseIssue {
                                issue: *i,
                                comment: format!(
                                    "Done: {} — PR #{n} squash-merged as {s}; CI on the merge commit is green ({}).",
                                    task.id,
                                    list(ctx)
                                ),
                            },
                        ));
                    }
                    if !task.is_done() {
                        set(&mut d, "status", Status::Done.as_str().into());
                        if task.completed_at.is_none() {
                            set(&mut d, "completed_at", now.to_owned());
                        }
                        let mut note =
                            format!("PR #{n} squash-merged as {s}; CI green ({})", list(ctx));
                        if !issues.is_empty() {
                            note.push_str(&format!("; closed {}", issue_list(issues)));
                        }
                        if let Some(r) = &internal {
                            note.push_str(&format!("; {r} closed"));
                        }
                        set(&mut d, "notes", note);
                        let closed = if issues.is_empty() {
                            String::new()
                        } else {
                            format!(", {} closed", issue_list(issues))
                        };
                        d.summary = Some(format!(
                            "{} done — PR #{n} squash-merged as {s}, CI green{closed}",
                            task.id
                        ));
                        d.learning = learning(task, now);
                    }
                }
                Verdict::Pending(_) => {
                    let note = format!("PR #{n} squash-merged as {s}; waiting for CI on the trunk");
                    if !task.is_done() && task.notes != note {
                        set(&mut d, "notes", note);
                        d.summary = Some(format!(
                            "{} — PR #{n} squash-merged as {s}, CI pending",
                            task.id
                        ));
                    }
                }
                Verdict::Red(ctx) => {
                    let note = format!(
                        "PR #{n} squash-merged as {s}; CI on the trunk failed: {}",
                        list(ctx)
                    );
                    if task.notes != note {
                        set(&mut d, "status", Status::Failed.as_str().into());
                        set(&mut d, "notes", note);
                        d.summary = Some(format!(
                            "{} failed — CI on {s} failed ({})",
                            task.id,
                            list(ctx)
                        ));
                    }
                    reopen(
                        &mut d,
                        &format!("CI on its merge commit {s} failed ({})", list(ctx)),
                    );
                }
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::{CiSource, User};

    fn ci(context: &str, state: CiState, reporter: &str) -> CiResult {
        CiResult {
            context: context.into(),
            state,
            reporter: Some(reporter.into()),
            target_url: None,
            source: CiSource::CommitStatus,
        }
    }

    fn task(status: &str, notes: &str) -> Task {
        let text = format!(
            "# Tasks\n\n| id | status | description | depends_on | blocks | issue | agent | notes |\n|---|---|---|---|---|---|---|---|\n| T-1 | {status} | a | | | #5 | | {notes} |\n"
        );
        crate::tasks::read_tasks(&crate::tasks::TaskTable::parse(&text).unwrap())
            .0
            .remove(0)
    }

    fn pr(state: PrState) -> PullRequest {
        PullRequest {
            number: 7,
            state,
            title: "t".into(),
            body: String::new(),
            author: User {
                id: 2,
                login: "alice".into(),
            },
            head_ref: "feature".into(),
            head_sha: "a".repeat(40),
            base_ref: "main".into(),
            base_sha: None,
            merge_commit_sha: None,
            labels: vec![],
        }
    }

    fn cell<'a>(d: &'a Decision, k: &str) -> Option<&'a str> {
        d.cells
            .iter()
            .find(|(c, _)| c == k)
            .map(|(_, v)| v.as_str())
    }

    const NOW: &str = "2026-11-22T06:00:00Z";

    #[test]
    fn verdicts() {
        let p = CiPolicy::default();
        let ok = ci("build", CiState::Success, "ci");
        assert_eq!(
            verdict(std::slice::from_ref(&ok), &p, "bot"),
            Verdict::Green(vec!["build".into()])
        );
        assert!(matches!(verdict(&[], &p, "bot"), Verdict::Pending(_)));
        // The bot's own statuses never make anything green or red.
        let own = ci("trunkwarden/policy", CiState::Failure, "bot");
        assert!(matches!(
            verdict(std::slice::from_ref(&own), &p, "bot"),
            Verdict::Pending(_)
        ));
        assert_eq!(
            verdict(&[ok.clone(), own], &p, "bot"),
            Verdict::Green(vec!["build".into()])
        );
        let bad = ci("lint", CiState::Failure, "ci");
        assert_eq!(
            verdict(&[ok.clone(), bad], &p, "bot"),
            Verdict::Red(vec!["lint".into()])
        );
        let req = CiPolicy {
            required: vec!["build".into(), "e2e".into()],
            ..CiPolicy::default()
        };
        assert_eq!(
            verdict(std::slice::from_ref(&ok), &req, "bot"),
            Verdict::Pending(vec!["e2e".into()])
        );
        let strict = CiPolicy {
            neutral_passes: false,
            ..CiPolicy::default()
        };
        assert!(matches!(
            verdict(&[ci("x", CiState::Neutral, "ci")], &strict, "bot"),
            Verdict::Red(_)
        ));
    }

    #[test]
    fn opening_starts_the_task_and_failures_are_noted() {
        let d = decide(
            &task("not-started", ""),
            &pr(PrState::Open),
            &Verdict::Pending(vec![]),
            None,
            &[5],
            NOW,
        );
        assert_eq!(cell(&d, "status"), Some("in-progress"));
        assert_eq!(cell(&d, "agent"), Some("alice"));
        assert_eq!(cell(&d, "started_at"), Some(NOW));
        assert_eq!(cell(&d, "branch"), Some("feature"));
        assert_eq!(cell(&d, "notes"), Some("PR #7"));
        assert!(d.effects.is_empty());
        let d = decide(
            &task("in-progress", "PR #7"),
            &pr(PrState::Open),
            &Verdict::Red(vec!["build".into()]),
            None,
            &[5],
            NOW,
        );
        assert_eq!(cell(&d, "status"), None);
        assert_eq!(
            cell(&d, "notes"),
            Some("PR #7: CI failing on aaaaaaa: build")
        );
    }

    #[test]
    fn done_only_after_green_on_the_merge_commit() {
        let t = task("in-progress", "PR #7");
        let landed = |ci: Verdict| Landed {
            sha: "b".repeat(40),
            parents: 1,
            reverted_by: None,
            ci,
        };
        let pending = decide(
            &t,
            &pr(PrState::Merged),
            &Verdict::Green(vec![]),
            Some(&landed(Verdict::Pending(vec![]))),
            &[5],
            NOW,
        );
        assert_eq!(cell(&pending, "status"), None);
        assert!(pending.effects.is_empty());
        let green = decide(
            &t,
            &pr(PrState::Merged),
            &Verdict::Green(vec![]),
            Some(&landed(Verdict::Green(vec!["build".into()]))),
            &[5],
            NOW,
        );
        assert_eq!(cell(&green, "status"), Some("done"));
        assert_eq!(
            cell(&green, "notes"),
            Some("PR #7 squash-merged as bbbbbbb; CI green (build); closed #5")
        );
        assert!(
            matches!(&green.effects[..], [(k, Effect::CloseIssue { issue: 5, .. })] if k == &format!("close:5:{}", "b".repeat(40)))
        );
        let red = decide(
            &task("done", "x"),
            &pr(PrState::Merged),
            &Verdict::Green(vec![]),
            Some(&landed(Verdict::Red(vec!["e2e".into()]))),
            &[5],
            NOW,
        );
        assert_eq!(cell(&red, "status"), Some("failed"));
        assert!(matches!(
            &red.effects[..],
            [(_, Effect::ReopenIssue { issue: 5, .. })]
        ));
    }

    #[test]
    fn finishing_far_from_the_estimate_is_a_learning() {
        let text = "# Tasks\n\n| id | status | description | depends_on | blocks | estimate | used | notes |\n|---|---|---|---|---|---|---|---|\n| T-1 | in-progress | a | | | 8K | 20K | |\n| T-2 | in-progress | b | | | 8K | 9K | |\n";
        let tasks = crate::tasks::read_tasks(&crate::tasks::TaskTable::parse(text).unwrap()).0;
        let l = Landed {
            sha: "b".repeat(40),
            parents: 1,
            reverted_by: None,
            ci: Verdict::Green(vec!["ci".into()]),
        };
        let far = decide(
            &tasks[0],
            &pr(PrState::Merged),
            &Verdict::Green(vec![]),
            Some(&l),
            &[],
            NOW,
        );
        let entry = far.learning.expect("a learning");
        assert_eq!(
            (
                entry["task"].as_str(),
                entry["estimate"].as_u64(),
                entry["actual"].as_u64()
            ),
            (Some("T-1"), Some(8000), Some(20000))
        );
        assert_eq!(entry["variance"].as_f64(), Some(1.5));
        let near = decide(
            &tasks[1],
            &pr(PrState::Merged),
            &Verdict::Green(vec![]),
            Some(&l),
            &[],
            NOW,
        );
        assert_eq!(near.learning, None);
    }

    #[test]
    fn repeated_failures_give_up_when_configured() {
        let t = task("in-progress", "PR #7");
        let red = Verdict::Red(vec!["build".into()]);
        let d = decide_with(&t, &pr(PrState::Open), &red, None, &[5], NOW, None);
        assert_eq!(cell(&d, "status"), None);
        let d = decide_with(&t, &pr(PrState::Open), &red, None, &[5], NOW, Some(3));
        assert_eq!(cell(&d, "status"), Some("failed"));
        assert_eq!(
            cell(&d, "notes"),
            Some("PR #7: CI failed on 3 pushes, last on aaaaaaa: build")
        );
    }

    #[test]
    fn merge_commits_need_qa_and_closing_unmerged_resets() {
        let t = task("in-progress", "PR #7");
        let l = Landed {
            sha: "c".repeat(40),
            parents: 2,
            reverted_by: None,
            ci: Verdict::Green(vec![]),
        };
        let d = decide(
            &t,
            &pr(PrState::Merged),
            &Verdict::Green(vec![]),
            Some(&l),
            &[5],
            NOW,
        );
        assert_eq!(cell(&d, "status"), Some("needs-qa"));
        assert!(matches!(&d.effects[..], [(_, Effect::PullComment { .. })]));
        let d = decide(
            &t,
            &pr(PrState::Closed),
            &Verdict::Green(vec![]),
            None,
            &[5],
            NOW,
        );
        assert_eq!(cell(&d, "status"), Some("not-started"));
        let d = decide(
            &task("done", "x"),
            &pr(PrState::Closed),
            &Verdict::Green(vec![]),
            None,
            &[5],
            NOW,
        );
        assert!(d.cells.is_empty());
    }
}
