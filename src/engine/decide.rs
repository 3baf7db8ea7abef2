//! The pure heart of the engine: from a task, its pull request and the CI verdicts on the
//! relevant commits, the row the task table should have and the effects owed to the forge.

use crate::config::CiPolicy;
use crate::forge::{CiResult, CiState, PrState, PullRequest};
use crate::tasks::{IssueRef, Status, Task, Tokens};

/// Whether a commit is green, as the repository defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CiVerdict {
    /// Every counted context passed; the contexts are named for the evidence.
    Green(Vec<String>),
    /// Some counted context failed.
    Red(Vec<String>),
    /// Still running, or nothing reported yet (or a required context not seen).
    Pending(Vec<String>),
}

/// The verdict over CI results: the required contexts when there are any, else every context
/// reported; the bot's own results (its login, its App's slug for a `<slug>[bot]`, or a
/// `trunkwarden/` context) never count.
pub fn verdict(results: &[CiResult], policy: &CiPolicy, bot_login: &str) -> CiVerdict {
    let app = bot_login.strip_suffix("[bot]");
    let counted: Vec<&CiResult> = results
        .iter()
        .filter(|r| {
            let own = r.reporter.as_deref() == Some(bot_login)
                || (app.is_some() && r.reporter.as_deref() == app);
            !own && !r.context.starts_with("trunkwarden/")
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
        CiVerdict::Red(red)
    } else if !waiting.is_empty() {
        CiVerdict::Pending(waiting)
    } else {
        green.sort();
        CiVerdict::Green(green)
    }
}

impl std::fmt::Display for CiVerdict {
    /// `green (a, b)`, `failing: a`, `pending: a` — as comments and replies say it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CiVerdict::Green(c) => write!(f, "green ({})", c.join(", ")),
            CiVerdict::Red(c) => write!(f, "failing: {}", c.join(", ")),
            CiVerdict::Pending(c) => write!(f, "pending: {}", c.join(", ")),
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
    pub ci: CiVerdict,
}

/// A linked issue as the forge has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueFact {
    pub number: u64,
    /// `None` when the state was not read (nothing to do with it).
    pub open: Option<bool>,
    /// Named with the forge's own closing keyword: the forge closes it at merge.
    pub forge_closes: bool,
    /// How often the bot closed it, and reopened it, for this squash commit so far (CI can go
    /// green, red and green again on one commit): each round is a cause of its own.
    pub closes: u32,
    pub reopens: u32,
    /// A close the bot began for this squash commit and never recorded: it may have reached
    /// the forge before the bot died, so a closed issue may be the bot's own doing.
    pub closing: bool,
}

/// The key of a round of an effect: the first round keeps the plain key.
fn round(key: String, n: u32) -> String {
    if n == 0 { key } else { format!("{key}:{n}") }
}

/// Something owed to the forge, with the key that makes it happen once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Close an issue (when `open`; a closed one only gets the comment).
    CloseIssue {
        issue: u64,
        open: bool,
        comment: String,
    },
    ReopenIssue {
        issue: u64,
        comment: String,
    },
    PullComment {
        marker: String,
        body: String,
    },
}

/// The decision for one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Cells to set (only columns the table has are kept by the caller).
    pub cells: Vec<(String, String)>,
    /// Effects, each with its idempotency key.
    pub effects: Vec<(String, Effect)>,
    /// The cells hold only once every effect is performed (a task is done only once its
    /// issues are closed); otherwise the caller writes why not instead.
    pub gated: bool,
    /// One phrase for the commit message, when the row changes in a way worth saying.
    pub summary: Option<String>,
    /// A learning to record: the task finished beyond ±50% of its estimate.
    pub learning: Option<serde_json::Value>,
    /// Only notes of a wait changed: worth a commit of its own to no one (each bot commit
    /// runs the trunk's CI), so they ride along with the next commit that happens anyway.
    pub quiet: bool,
}

/// Everything [`decide`] reads about one task and its pull request.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub task: &'a Task,
    pub pr: &'a PullRequest,
    /// The trunk's branch name.
    pub trunk: &'a str,
    /// CI on the pull request's head.
    pub head: &'a CiVerdict,
    /// The merge commit, when the pull request merged and the commit is on the trunk.
    pub landed: Option<&'a Landed>,
    /// The issues the task's completion closes.
    pub issues: &'a [IssueFact],
    /// Heads CI failed on, once that reached `[ci] fail-after`.
    pub gave_up: Option<usize>,
    /// What the worker reported it used (a `Used:` trailer), if anything.
    pub used: Option<Tokens>,
    /// What broke, read from the failed job's log where CI is red (on the head while the
    /// pull request is open, on the squash commit after).
    pub diagnosis: Option<&'a str>,
    /// RFC 3339.
    pub now: &'a str,
}

/// A commit id as people read it.
pub(crate) fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

fn issue_list(issues: &[u64]) -> String {
    issues
        .iter()
        .map(|i| format!("#{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pull request a task's notes name first (`PR #7 …`): the one it tracks now.
pub fn current_pr(task: &Task) -> Option<u64> {
    let at = task.notes.find("PR #")?;
    let digits: String = task.notes[at + 4..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The value of a `Used: 12.5K` trailer line in a commit message or pull request body.
pub fn used_trailer(text: &str) -> Option<Tokens> {
    text.lines().rev().find_map(|l| {
        let (key, value) = l.trim().split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case("used")
            .then(|| value.trim().parse::<Tokens>().ok())
            .flatten()
    })
}

/// `; CI red (test): …` after a note that names failing contexts, when the log said why.
fn because(diagnosis: Option<&str>) -> String {
    diagnosis.map_or(String::new(), |d| format!("; {d}"))
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

/// Decides a task's row and the effects owed to the forge.
pub fn decide(f: &Facts<'_>) -> Decision {
    let (task, pr, head, now) = (f.task, f.pr, f.head, f.now);
    let mut d = Decision::default();
    let n = pr.number;
    let status = task.status;
    let set = |d: &mut Decision, k: &str, v: String| d.cells.push((k.to_owned(), v));
    // A pull request the task no longer tracks (it moved on to another one) changes nothing.
    let elsewhere = current_pr(task).is_some_and(|m| m != n);
    let why = because(f.diagnosis);
    match pr.state {
        PrState::Open => {
            if task.is_done() || status == Some(Status::Deferred) {
                return d;
            }
            if elsewhere && status == Some(Status::InProgress) {
                return d;
            }
            if matches!(status, None | Some(Status::NotStarted | Status::Blocked)) {
                set(&mut d, "status", Status::InProgress.as_str().into());
                d.summary = Some(format!("{} in-progress — PR #{n} opened", task.id));
            }
            claim(&mut d, task, pr, now);
            let note = match head {
                CiVerdict::Red(ctx) => format!(
                    "PR #{n}: CI failing on {}: {}{why}",
                    short(&pr.head_sha),
                    list(ctx)
                ),
                _ => format!("PR #{n}"),
            };
            if let (CiVerdict::Red(ctx), Some(k)) = (head, f.gave_up) {
                let note = format!(
                    "PR #{n}: CI failed on {k} pushes, last on {}: {}{why}",
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
                if let (CiVerdict::Red(ctx), None) = (head, &d.summary) {
                    d.summary = Some(format!("{} — PR #{n} CI failing ({})", task.id, list(ctx)));
                }
                set(&mut d, "notes", note);
            }
        }
        PrState::Closed => {
            if task.is_done() || elsewhere || status == Some(Status::Deferred) {
                return d;
            }
            // The claim goes with the pull request: who, since when and where.
            let claimed =
                !task.agent.is_empty() || task.started_at.is_some() || task.branch == pr.head_ref;
            if status != Some(Status::NotStarted) || claimed {
                set(&mut d, "status", Status::NotStarted.as_str().into());
                set(&mut d, "notes", format!("PR #{n} closed without merging"));
                for c in ["agent", "started_at"] {
                    set(&mut d, c, String::new());
                }
                if task.branch == pr.head_ref {
                    set(&mut d, "branch", String::new());
                }
                d.summary = Some(format!(
                    "{} not-started — PR #{n} closed without merging",
                    task.id
                ));
            }
        }
        PrState::Merged => merged(f, &mut d),
    }
    d
}

/// A merged pull request: done only after green on its squash commit on the trunk.
fn merged(f: &Facts<'_>, d: &mut Decision) {
    let (task, pr, now) = (f.task, f.pr, f.now);
    let n = pr.number;
    let status = task.status;
    let set = |d: &mut Decision, k: &str, v: String| d.cells.push((k.to_owned(), v));
    let note_only = |d: &mut Decision, note: String| {
        if !task.is_done() && task.notes != note {
            d.quiet = d.cells.is_empty();
            d.cells.push(("notes".to_owned(), note));
        }
    };
    if pr.base_ref != f.trunk {
        return note_only(
            d,
            format!(
                "PR #{n} merged into `{}`, not the trunk `{}`",
                pr.base_ref, f.trunk
            ),
        );
    }
    let Some(l) = f.landed else {
        // Read after the pull request, a missing commit is one not fetched yet (or a forge
        // that names none), never evidence of a violation.
        let note = match &pr.merge_commit_sha {
            Some(sha) => format!(
                "PR #{n} merged as {}; waiting for it on the trunk `{}`",
                short(sha),
                f.trunk
            ),
            None => format!("PR #{n} merged; the forge names no merge commit yet"),
        };
        return note_only(d, note);
    };
    // A task whose opening was missed still gets its agent, start and branch.
    if !task.is_done() {
        claim(d, task, pr, now);
    }
    let s = short(&l.sha);
    let closed: Vec<&IssueFact> = f.issues.iter().filter(|i| i.open == Some(false)).collect();
    let still_open: Vec<u64> = f
        .issues
        .iter()
        .filter(|i| i.open == Some(true))
        .map(|i| i.number)
        .collect();
    let reopen = |d: &mut Decision, why: &str| {
        for i in &closed {
            d.effects.push((
                round(format!("reopen:{}:{}", i.number, l.sha), i.closes),
                Effect::ReopenIssue {
                    issue: i.number,
                    comment: format!("Reopened: {} is not done — {why}.", task.id),
                },
            ));
        }
    };
    let stays_open = if still_open.is_empty() {
        String::new()
    } else {
        format!("; {} stays open", issue_list(&still_open))
    };
    // What the forge's keywords closed at merge, or the bot itself on green before CI reran
    // (with the row never written: the bot died between), is reopened while the task is not
    // done.
    let reopen_early = |d: &mut Decision| {
        if task.is_done() {
            return;
        }
        for i in f
            .issues
            .iter()
            .filter(|i| i.open == Some(false) && (i.forge_closes || i.closes > 0 || i.closing))
        {
            d.effects.push((
                format!("reopen-early:{}:{}", i.number, l.sha),
                Effect::ReopenIssue {
                    issue: i.number,
                    comment: format!(
                        "Reopened: the forge closed #{} when PR #{n} merged, before CI on its squash commit {s} finished. trunkwarden closes it once CI on the trunk is green ({} is not done yet).",
                        i.number, task.id
                    ),
                },
            ));
        }
    };
    if l.parents > 1 {
        let note = format!(
            "PR #{n} merged with a merge commit {s} ({} parents); the trunk is squash-only",
            l.parents
        );
        if task.notes != note || status != Some(Status::NeedsQa) {
            set(d, "status", Status::NeedsQa.as_str().into());
            set(d, "notes", note);
            d.summary = Some(format!(
                "{} needs-qa — PR #{n} merged with a merge commit",
                task.id
            ));
        }
        reopen_early(d);
        d.effects.push((
            format!("squash-only:{n}:{}", l.sha),
            Effect::PullComment {
                marker: "squash-only".into(),
                body: format!("This pull request reached `{}` as the merge commit {s}, not as one squash commit. The trunk is squash-only, so {} needs QA before it can be done.", pr.base_ref, task.id),
            },
        ));
        return;
    }
    if let Some(rev) = &l.reverted_by {
        let note = format!(
            "PR #{n} squash-merged as {s}, reverted on the trunk by {}{stays_open}",
            short(rev)
        );
        if task.notes != note || status != Some(Status::Failed) {
            set(d, "status", Status::Failed.as_str().into());
            set(d, "notes", note);
            d.summary = Some(format!("{} failed — {s} reverted", task.id));
        }
        reopen(
            d,
            &format!("its merge commit {s} was reverted by {}", short(rev)),
        );
        return;
    }
    match &l.ci {
        CiVerdict::Green(ctx) => {
            let all: Vec<u64> = f.issues.iter().map(|i| i.number).collect();
            for i in f.issues {
                d.effects.push((
                    round(format!("close:{}:{}", i.number, l.sha), i.reopens),
                    Effect::CloseIssue {
                        issue: i.number,
                        open: i.open != Some(false),
                        comment: format!(
                            "Done: {} — PR #{n} squash-merged as {s}; CI on the merge commit is green ({}).",
                            task.id,
                            list(ctx)
                        ),
                    },
                ));
            }
            if task.is_done() {
                return;
            }
            d.gated = true;
            set(d, "status", Status::Done.as_str().into());
            if task.completed_at.is_none() {
                set(d, "completed_at", now.to_owned());
            }
            let mut note = format!("PR #{n} squash-merged as {s}; CI green ({})", list(ctx));
            if !all.is_empty() {
                note.push_str(&format!("; closed {}", issue_list(&all)));
            }
            if let Some(IssueRef::Internal(r)) = &task.issue {
                note.push_str(&format!("; TASKS:{r} closed"));
            }
            set(d, "notes", note);
            let closed_text = if all.is_empty() {
                String::new()
            } else {
                format!(", {} closed", issue_list(&all))
            };
            d.summary = Some(format!(
                "{} done — PR #{n} squash-merged as {s}, CI green{closed_text}",
                task.id
            ));
            // What the worker reported wins over an earlier `used` command.
            let used = f.used.or(task.used);
            if let Some(u) = f.used
                && task.used != Some(u)
            {
                set(d, "used", u.to_string());
            }
            d.learning = match (task.estimate, used) {
                (Some(e), Some(u)) => crate::tasks::learning_entry(&task.id, e, u, now),
                _ => None,
            };
        }
        CiVerdict::Pending(_) => {
            // The forge closed what its keywords named at merge time, before CI on the trunk:
            // open it again until green.
            reopen_early(d);
            // Merged, not green yet: in progress (also after a rerun of red CI, or when the
            // bot first hears of the pull request merged).
            if status != Some(Status::InProgress) && !task.is_done() {
                set(d, "status", Status::InProgress.as_str().into());
                if task.completed_at.is_some() {
                    set(d, "completed_at", String::new());
                }
            }
            note_only(
                d,
                format!("PR #{n} squash-merged as {s}; waiting for CI on the trunk"),
            );
        }
        CiVerdict::Red(ctx) => {
            let note = format!(
                "PR #{n} squash-merged as {s}; CI on the trunk failed: {}{}{stays_open}",
                list(ctx),
                because(f.diagnosis)
            );
            if task.notes != note || status != Some(Status::Failed) {
                set(d, "status", Status::Failed.as_str().into());
                set(d, "notes", note);
                d.summary = Some(format!(
                    "{} failed — CI on {s} failed ({})",
                    task.id,
                    list(ctx)
                ));
            }
            reopen(
                d,
                &format!("CI on its merge commit {s} failed ({})", list(ctx)),
            );
        }
    }
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

    /// Decides with issue #5 open, named with `Refs`.
    fn decide(
        t: &Task,
        p: &PullRequest,
        head: &CiVerdict,
        landed: Option<&Landed>,
        issues: &[u64],
        now: &str,
    ) -> Decision {
        decide_with(t, p, head, landed, issues, now, None)
    }

    fn decide_with(
        t: &Task,
        p: &PullRequest,
        head: &CiVerdict,
        landed: Option<&Landed>,
        issues: &[u64],
        now: &str,
        gave_up: Option<usize>,
    ) -> Decision {
        let facts: Vec<IssueFact> = issues
            .iter()
            .map(|&number| IssueFact {
                number,
                open: Some(true),
                forge_closes: false,
                closes: 0,
                reopens: 0,
                closing: false,
            })
            .collect();
        super::decide(&Facts {
            task: t,
            pr: p,
            trunk: "main",
            head,
            landed,
            issues: &facts,
            gave_up,
            used: None,
            diagnosis: None,
            now,
        })
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
            CiVerdict::Green(vec!["build".into()])
        );
        assert!(matches!(verdict(&[], &p, "bot"), CiVerdict::Pending(_)));
        // The bot's own statuses never make anything green or red.
        let own = ci("trunkwarden/policy", CiState::Failure, "bot");
        assert!(matches!(
            verdict(std::slice::from_ref(&own), &p, "bot"),
            CiVerdict::Pending(_)
        ));
        assert_eq!(
            verdict(&[ok.clone(), own], &p, "bot"),
            CiVerdict::Green(vec!["build".into()])
        );
        let bad = ci("lint", CiState::Failure, "ci");
        assert_eq!(
            verdict(&[ok.clone(), bad], &p, "bot"),
            CiVerdict::Red(vec!["lint".into()])
        );
        let req = CiPolicy {
            required: vec!["build".into(), "e2e".into()],
            ..CiPolicy::default()
        };
        assert_eq!(
            verdict(std::slice::from_ref(&ok), &req, "bot"),
            CiVerdict::Pending(vec!["e2e".into()])
        );
        let strict = CiPolicy {
            neutral_passes: false,
            ..CiPolicy::default()
        };
        assert!(matches!(
            verdict(&[ci("x", CiState::Neutral, "ci")], &strict, "bot"),
            CiVerdict::Red(_)
        ));
    }

    #[test]
    fn opening_starts_the_task_and_failures_are_noted() {
        let d = decide(
            &task("not-started", ""),
            &pr(PrState::Open),
            &CiVerdict::Pending(vec![]),
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
            &CiVerdict::Red(vec!["build".into()]),
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
        let landed = |ci: CiVerdict| Landed {
            sha: "b".repeat(40),
            parents: 1,
            reverted_by: None,
            ci,
        };
        let pending = decide(
            &t,
            &pr(PrState::Merged),
            &CiVerdict::Green(vec![]),
            Some(&landed(CiVerdict::Pending(vec![]))),
            &[5],
            NOW,
        );
        assert_eq!(cell(&pending, "status"), None);
        assert!(pending.effects.is_empty());
        let green = decide(
            &t,
            &pr(PrState::Merged),
            &CiVerdict::Green(vec![]),
            Some(&landed(CiVerdict::Green(vec!["build".into()]))),
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
            &CiVerdict::Green(vec![]),
            Some(&landed(CiVerdict::Red(vec!["e2e".into()]))),
            &[5],
            NOW,
        );
        assert_eq!(cell(&red, "status"), Some("failed"));
        // #5 was never closed: nothing to reopen, and the notes say it stays open.
        assert!(red.effects.is_empty(), "{:?}", red.effects);
        assert_eq!(
            cell(&red, "notes"),
            Some("PR #7 squash-merged as bbbbbbb; CI on the trunk failed: e2e; #5 stays open")
        );
        let t = task("done", "x");
        let p = pr(PrState::Merged);
        let l = landed(CiVerdict::Red(vec!["e2e".into()]));
        let red = with_issues(
            &t,
            &p,
            Some(&l),
            &[IssueFact {
                number: 5,
                open: Some(false),
                forge_closes: false,
                closes: 0,
                reopens: 0,
                closing: false,
            }],
        );
        assert!(matches!(
            &red.effects[..],
            [(_, Effect::ReopenIssue { issue: 5, .. })]
        ));
    }

    fn with_issues(
        t: &Task,
        p: &PullRequest,
        landed: Option<&Landed>,
        issues: &[IssueFact],
    ) -> Decision {
        super::decide(&Facts {
            task: t,
            pr: p,
            trunk: "main",
            head: &CiVerdict::Green(vec![]),
            landed,
            issues,
            gave_up: None,
            used: None,
            diagnosis: None,
            now: NOW,
        })
    }

    #[test]
    fn an_issue_the_forge_closed_at_merge_is_reopened_until_green() {
        let t = task("in-progress", "PR #7");
        let p = pr(PrState::Merged);
        let l = Landed {
            sha: "b".repeat(40),
            parents: 1,
            reverted_by: None,
            ci: CiVerdict::Pending(vec!["ci".into()]),
        };
        let issues = [
            IssueFact {
                number: 5,
                open: Some(false),
                forge_closes: true,
                closes: 0,
                reopens: 0,
                closing: false,
            },
            IssueFact {
                number: 6,
                open: Some(false),
                forge_closes: false,
                closes: 0,
                reopens: 0,
                closing: false,
            },
        ];
        let d = with_issues(&t, &p, Some(&l), &issues);
        // Only what the forge's keyword closed; a person may have closed #6 on purpose.
        assert!(
            matches!(&d.effects[..], [(k, Effect::ReopenIssue { issue: 5, .. })] if k.starts_with("reopen-early:5:")),
            "{:?}",
            d.effects
        );
        assert_eq!(cell(&d, "status"), None);
        // Green: closed again by the bot — #5 and #6 are already closed, so only commented.
        let green = Landed {
            ci: CiVerdict::Green(vec!["ci".into()]),
            ..l
        };
        let d = with_issues(&t, &p, Some(&green), &issues);
        assert!(d.gated);
        assert!(
            d.effects
                .iter()
                .all(|(_, e)| matches!(e, Effect::CloseIssue { open: false, .. }))
        );
    }

    #[test]
    fn a_merge_commit_not_fetched_yet_is_no_violation() {
        let t = task("in-progress", "PR #7");
        let mut p = pr(PrState::Merged);
        p.merge_commit_sha = Some("c".repeat(40));
        let d = with_issues(&t, &p, None, &[]);
        assert_eq!(cell(&d, "status"), None);
        assert_eq!(
            cell(&d, "notes"),
            Some("PR #7 merged as ccccccc; waiting for it on the trunk `main`")
        );
        p.base_ref = "release".into();
        let d = with_issues(&t, &p, None, &[]);
        assert_eq!(
            cell(&d, "notes"),
            Some("PR #7 merged into `release`, not the trunk `main`")
        );
    }

    #[test]
    fn closing_unmerged_takes_the_claim_back_unless_another_pull_request_has_it() {
        let text = "# Tasks\n\n| id | status | description | depends_on | blocks | branch | agent | started_at | notes |\n|---|---|---|---|---|---|---|---|---|\n| T-1 | in-progress | a | | | feature | alice | 2026-11-22T05:00:00Z | PR #7 |\n| T-2 | in-progress | b | | | feature | bob | 2026-11-22T05:00:00Z | PR #9 |\n";
        let tasks = crate::tasks::read_tasks(&crate::tasks::TaskTable::parse(text).unwrap()).0;
        let p = pr(PrState::Closed);
        let d = with_issues(&tasks[0], &p, None, &[]);
        assert_eq!(cell(&d, "status"), Some("not-started"));
        assert_eq!(cell(&d, "agent"), Some(""));
        assert_eq!(cell(&d, "started_at"), Some(""));
        assert_eq!(cell(&d, "branch"), Some(""));
        // PR #7 closing says nothing about a task PR #9 works on now.
        assert_eq!(with_issues(&tasks[1], &p, None, &[]), Decision::default());
    }

    #[test]
    fn used_is_what_the_worker_reported() {
        assert_eq!(
            used_trailer("feat(T-1): x\n\nbody\n\nUsed: 12.5K\nCo-authored-by: a <a@b>"),
            Some(Tokens(12_500))
        );
        assert_eq!(used_trailer("nothing used here"), None);
        let text = "# Tasks\n\n| id | status | description | depends_on | blocks | estimate | used | notes |\n|---|---|---|---|---|---|---|---|\n| T-1 | in-progress | a | | | 8K | 9K | |\n";
        let t = crate::tasks::read_tasks(&crate::tasks::TaskTable::parse(text).unwrap())
            .0
            .remove(0);
        let p = pr(PrState::Merged);
        let l = Landed {
            sha: "b".repeat(40),
            parents: 1,
            reverted_by: None,
            ci: CiVerdict::Green(vec!["ci".into()]),
        };
        let d = super::decide(&Facts {
            task: &t,
            pr: &p,
            trunk: "main",
            head: &CiVerdict::Green(vec![]),
            landed: Some(&l),
            issues: &[],
            gave_up: None,
            used: Some(Tokens(20_000)),
            diagnosis: None,
            now: NOW,
        });
        assert_eq!(cell(&d, "used"), Some("20K"));
        assert_eq!(
            d.learning.as_ref().and_then(|l| l["actual"].as_u64()),
            Some(20_000)
        );
    }

    #[test]
    fn finishing_far_from_the_estimate_is_a_learning() {
        let text = "# Tasks\n\n| id | status | description | depends_on | blocks | estimate | used | notes |\n|---|---|---|---|---|---|---|---|\n| T-1 | in-progress | a | | | 8K | 20K | |\n| T-2 | in-progress | b | | | 8K | 9K | |\n";
        let tasks = crate::tasks::read_tasks(&crate::tasks::TaskTable::parse(text).unwrap()).0;
        let l = Landed {
            sha: "b".repeat(40),
            parents: 1,
            reverted_by: None,
            ci: CiVerdict::Green(vec!["ci".into()]),
        };
        let far = decide(
            &tasks[0],
            &pr(PrState::Merged),
            &CiVerdict::Green(vec![]),
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
            &CiVerdict::Green(vec![]),
            Some(&l),
            &[],
            NOW,
        );
        assert_eq!(near.learning, None);
    }

    #[test]
    fn repeated_failures_give_up_when_configured() {
        let t = task("in-progress", "PR #7");
        let red = CiVerdict::Red(vec!["build".into()]);
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
            ci: CiVerdict::Green(vec![]),
        };
        let d = decide(
            &t,
            &pr(PrState::Merged),
            &CiVerdict::Green(vec![]),
            Some(&l),
            &[5],
            NOW,
        );
        assert_eq!(cell(&d, "status"), Some("needs-qa"));
        assert!(matches!(&d.effects[..], [(_, Effect::PullComment { .. })]));
        let d = decide(
            &t,
            &pr(PrState::Closed),
            &CiVerdict::Green(vec![]),
            None,
            &[5],
            NOW,
        );
        assert_eq!(cell(&d, "status"), Some("not-started"));
        let d = decide(
            &task("done", "x"),
            &pr(PrState::Closed),
            &CiVerdict::Green(vec![]),
            None,
            &[5],
            NOW,
        );
        assert!(d.cells.is_empty());
    }
}
