//! Which task a pull request works on, and which issues a task closes.

use crate::forge::PullRequest;
use crate::policy::message::names_id;
use crate::tasks::{IssueRef, Task};

/// The task a pull request belongs to: its head branch is the task's `branch`; or its body has a
/// `Task: ID` line; or its branch, then its title, names the task id as a word.
pub fn task_for_pull<'a>(tasks: &'a [Task], pr: &PullRequest) -> Option<&'a Task> {
    if let Some(t) = tasks
        .iter()
        .find(|t| !t.branch.is_empty() && t.branch == pr.head_ref)
    {
        return Some(t);
    }
    for line in pr.body.lines() {
        let line = line.trim();
        if line.len() > 5 && line[..5].eq_ignore_ascii_case("task:") {
            let id = line[5..].trim();
            if let Some(t) = tasks.iter().find(|t| t.id.eq_ignore_ascii_case(id)) {
                return Some(t);
            }
        }
    }
    let named = |s: &str| tasks.iter().find(|t| names_id(s, &t.id));
    named(&pr.head_ref).or_else(|| named(&pr.title))
}

/// The forge issues a task's completion closes: its `issue` column and `Refs #N` (or the
/// forge's own `Closes`/`Fixes`/`Resolves #N`) lines in the pull request body.
pub fn issues_for(task: &Task, pr: &PullRequest) -> Vec<u64> {
    let mut out = Vec::new();
    if let Some(IssueRef::Forge(n)) = &task.issue {
        out.push(*n);
    }
    for word in ["refs", "closes", "fixes", "resolves"] {
        let lower = pr.body.to_ascii_lowercase();
        for (i, _) in lower.match_indices(word) {
            let rest = pr.body[i + word.len()..]
                .trim_start_matches(':')
                .trim_start();
            if let Some(num) = rest.strip_prefix('#') {
                let digits: String = num.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(n) = digits.parse::<u64>()
                    && !out.contains(&n)
                {
                    out.push(n);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::{PrState, User};

    fn pr(head: &str, title: &str, body: &str) -> PullRequest {
        PullRequest {
            number: 7,
            state: PrState::Open,
            title: title.into(),
            body: body.into(),
            author: User {
                id: 2,
                login: "alice".into(),
            },
            head_ref: head.into(),
            head_sha: "a".repeat(40),
            base_ref: "main".into(),
            base_sha: None,
            merge_commit_sha: None,
            labels: vec![],
        }
    }

    fn tasks() -> Vec<Task> {
        let text = "# Tasks\n\n| id | status | description | depends_on | blocks | branch | issue |\n|---|---|---|---|---|---|---|\n| MS-1 | not-started | a | | | agent/oidc | #5 |\n| MS-11 | not-started | b | | | | |\n| MS-2 | not-started | c | | | | TASKS:X-1 |\n";
        crate::tasks::read_tasks(&crate::tasks::TaskTable::parse(text).unwrap()).0
    }

    #[test]
    fn pulls_link_by_branch_body_branch_name_then_title() {
        let t = tasks();
        let id = |p: &PullRequest| task_for_pull(&t, p).map(|t| t.id.clone());
        assert_eq!(id(&pr("agent/oidc", "x", "")), Some("MS-1".into()));
        assert_eq!(
            id(&pr("x", "y", "Something\nTask: ms-11\n")),
            Some("MS-11".into())
        );
        assert_eq!(id(&pr("feat/ms-2-thing", "y", "")), Some("MS-2".into()));
        assert_eq!(
            id(&pr("feature", "fix(MS-11): y", "")),
            Some("MS-11".into())
        );
        assert_eq!(id(&pr("ms-111", "MS-1x", "Task: MS-9")), None);
    }

    #[test]
    fn issues_come_from_the_row_and_the_body() {
        let t = tasks();
        assert_eq!(
            issues_for(&t[0], &pr("a", "b", "Refs #3\nCloses: #9, refs #3")),
            [5, 3, 9]
        );
        assert_eq!(
            issues_for(&t[2], &pr("a", "b", "no refs here #4")),
            Vec::<u64>::new()
        );
    }
}
