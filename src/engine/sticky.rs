//! The sticky comment on a task's pull request: where the task stands, what CI says on the
//! head and the squash commit, what green waits for, what is missing before done.

use std::collections::BTreeSet;

use super::decide::{self, CiVerdict, Landed};
use super::diagnosis::Diagnosed;
use super::facts::Required;
use crate::forge::{PrState, PullRequest};
use crate::tasks::{Status, Task};

/// What the sticky comment on a task's pull request shows.
pub(super) struct Sticky<'a> {
    pub task: &'a Task,
    /// The cells this reconcile set.
    pub cells: &'a [(String, String)],
    pub pr: &'a PullRequest,
    pub head: &'a CiVerdict,
    pub landed: Option<&'a Landed>,
    pub tasks: &'a [Task],
    pub done_now: &'a [String],
    pub required: &'a Required,
    /// Effects the forge refused (or another replica holds), with why.
    pub blocked: &'a [String],
    /// What the failed jobs' logs said.
    pub diagnoses: &'a [Diagnosed],
    pub trunk: &'a str,
}

/// The sticky comment on a task's pull request.
pub(super) fn sticky(s: &Sticky<'_>) -> String {
    let get = |k: &str, old: String| {
        s.cells
            .iter()
            .find(|(c, _)| c == k)
            .map(|(_, v)| v.clone())
            .unwrap_or(old)
    };
    let task = s.task;
    let status = get(
        "status",
        task.status.map_or("?".into(), |s| s.as_str().to_owned()),
    );
    let notes = get("notes", task.notes.clone());
    let mut out = format!(
        "**trunkwarden** · task `{}` is **{status}**\n\n> {notes}\n\n",
        task.id
    );
    // CI on the head is read while the pull request is open; after, the trunk's CI counts.
    if s.pr.state == PrState::Open {
        out.push_str(&format!(
            "- CI on the head `{}`: {}\n",
            decide::short(&s.pr.head_sha),
            s.head
        ));
    }
    if let Some(l) = s.landed {
        out.push_str(&format!(
            "- CI on the merge commit `{}`: {}\n",
            decide::short(&l.sha),
            l.ci
        ));
    }
    for d in s.diagnoses {
        out.push_str(&excerpt(d));
    }
    let waits = if s.required.contexts.is_empty() {
        String::new()
    } else {
        format!("{}, from ", s.required.contexts.join(", "))
    };
    out.push_str(&format!("- Green means: {waits}{}\n", s.required.source));
    let missing = match (s.pr.state, s.landed.map(|l| &l.ci)) {
        _ if status == Status::Done.as_str() => None,
        (PrState::Open, _) => Some(format!(
            "squash-merge into `{}`, then CI green on the merge commit",
            s.trunk
        )),
        (PrState::Merged, Some(CiVerdict::Pending(_))) => {
            Some("CI green on the merge commit".into())
        }
        (PrState::Merged, Some(CiVerdict::Red(_))) => {
            Some("a fix: CI on the merge commit failed".into())
        }
        (PrState::Merged, None) => Some(format!("the merge commit on `{}`", s.trunk)),
        (PrState::Closed, _) => Some("a merged pull request".into()),
        _ => None,
    };
    if let Some(m) = missing {
        out.push_str(&format!("- Missing before done: {m}\n"));
    }
    for b in s.blocked {
        out.push_str(&format!("- Not done yet: {b}\n"));
    }
    if status == Status::Done.as_str() {
        let done: BTreeSet<&str> = s
            .tasks
            .iter()
            .filter(|t| t.is_done())
            .map(|t| t.id.as_str())
            .chain(s.done_now.iter().map(String::as_str))
            .collect();
        let ready: Vec<&str> = s
            .tasks
            .iter()
            .filter(|t| t.status == Some(Status::NotStarted) && t.depends_on.contains(&task.id))
            .filter(|t| t.depends_on.iter().all(|d| done.contains(d.as_str())))
            .map(|t| t.id.as_str())
            .collect();
        if !ready.is_empty() {
            out.push_str(&format!("- Ready to start now: {}\n", ready.join(", ")));
        }
    }
    out.push_str(&format!(
        "\n<sub>Write `Refs #N` for the task's issues: trunkwarden closes them once CI on the squash commit on `{}` is green. A closing keyword (`Closes #N`) would let the forge close them at merge, before CI has run.</sub>\n",
        s.trunk
    ));
    out
}

/// A failed job's diagnosis, folded: the summary, the lines that say why, a link to the log.
fn excerpt(d: &Diagnosed) -> String {
    let html = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    // A fence longer than any run of backticks in the lines keeps them inside it.
    let longest = d
        .excerpt
        .iter()
        .flat_map(|l| l.split(|c| c != '`'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let mut out = format!(
        "\n<details><summary><code>{}</code>: {}</summary>\n\n{fence}text\n",
        html(&d.context),
        html(&d.summary)
    );
    for line in &d.excerpt {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("{fence}\n\n"));
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let read = if d.read < d.total {
        format!(
            " (its last {:.1} MiB of {:.1} MiB read)",
            mib(d.read),
            mib(d.total)
        )
    } else {
        String::new()
    };
    match &d.url {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
            out.push_str(&format!("[The job's log]({u}){read}\n"));
        }
        _ if !read.is_empty() => out.push_str(&format!("The job's log{read}\n")),
        _ => {}
    }
    out.push_str("</details>\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::Class;

    #[test]
    fn an_excerpt_keeps_backticks_and_markup_inside_its_fold() {
        let d = Diagnosed {
            context: "ci/<test>".into(),
            class: Class::Test,
            summary: "CI red (test): 1 failing — a".into(),
            excerpt: vec!["error: ``` <b>".into()],
            url: Some("https://ci.example/job/1".into()),
            read: 1 << 20,
            total: 4 << 20,
        };
        let e = excerpt(&d);
        assert!(e.contains("<code>ci/&lt;test&gt;</code>"), "{e}");
        assert!(e.contains("````text\nerror: ``` <b>\n````"), "{e}");
        assert!(e.contains(
            "[The job's log](https://ci.example/job/1) (its last 1.0 MiB of 4.0 MiB read)"
        ));
    }
}
