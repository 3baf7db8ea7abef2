//! The task-table committer against real bare repositories: row-level updates, one-line diffs,
//! learnings in the same commit, and concurrent writers that never lose a row.

mod support;

use std::path::Path;

use support::git::{Sandbox, write};
use trunkwarden::git::{Identity, Learning, Mirror, RowChange};

fn table(rows: usize) -> String {
    let mut t = String::from(
        "# Tasks\n\n| id | status | description | depends_on | blocks | notes |\n|----|--------|-------------|------------|--------|-------|\n",
    );
    for i in 1..=rows {
        t.push_str(&format!("| T-{i} | not-started | task {i} | | | |\n"));
    }
    t
}

fn bot() -> Identity {
    Identity {
        name: "trunkwarden".into(),
        email: "trunkwarden@users.noreply.invalid".into(),
    }
}

fn origin(sb: &Sandbox, rows: usize) -> std::path::PathBuf {
    let work = sb.repo("w");
    write(&work, "docs/TASKS.md", &table(rows));
    sb.ok(&work, &["add", "-A"]);
    sb.ok(&work, &["commit", "-q", "-m", "chore: tasks"]);
    let bare = sb.bare("origin.git");
    sb.ok(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    bare
}

fn set(id: &str, cells: &[(&str, &str)]) -> RowChange {
    RowChange {
        id: id.into(),
        cells: cells
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        expect: Vec::new(),
    }
}

fn mirror(sb: &Sandbox, name: &str, origin: &Path) -> Mirror {
    Mirror::open(&sb.path(name), origin.to_str().unwrap(), None, "main").unwrap()
}

#[test]
fn a_row_update_is_one_commit_with_a_one_line_diff_by_the_bot() {
    let sb = Sandbox::new();
    let origin = origin(&sb, 3);
    let m = mirror(&sb, "m.git", &origin);
    let change = set("T-2", &[("status", "in-progress"), ("notes", "PR #7")]);
    let sha = m
        .update(
            "docs/TASKS.md",
            std::slice::from_ref(&change),
            &[],
            "chore(tasks): T-2 in-progress — PR #7",
            &bot(),
            3,
        )
        .unwrap()
        .unwrap();
    assert_eq!(sb.ok(&origin, &["rev-parse", "main"]), sha);
    assert_eq!(
        sb.ok(&origin, &["log", "-1", "--format=%an <%ae>|%s", "main"]),
        "trunkwarden <trunkwarden@users.noreply.invalid>|chore(tasks): T-2 in-progress — PR #7"
    );
    assert_eq!(
        sb.ok(&origin, &["diff", "--name-only", "main~1", "main"]),
        "docs/TASKS.md"
    );
    let diff = sb.ok(&origin, &["diff", "-U0", "main~1", "main"]);
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        changed,
        [
            "-| T-2 | not-started | task 2 | | | |",
            "+| T-2 | in-progress | task 2 | | | PR #7 |"
        ]
    );
    // The same change again commits nothing.
    assert_eq!(
        m.update("docs/TASKS.md", &[change], &[], "x", &bot(), 3)
            .unwrap(),
        None
    );
    assert_eq!(sb.ok(&origin, &["rev-parse", "main"]), sha);
}

#[test]
fn unknown_tasks_and_missing_tables_are_errors_not_guesses() {
    let sb = Sandbox::new();
    let origin = origin(&sb, 1);
    let m = mirror(&sb, "m.git", &origin);
    let e = m
        .update(
            "docs/TASKS.md",
            &[set("T-9", &[("status", "done")])],
            &[],
            "x",
            &bot(),
            1,
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "task T-9 is not in the task table");
    let e = m
        .update(
            "docs/OTHER.md",
            &[set("T-1", &[("status", "done")])],
            &[],
            "x",
            &bot(),
            1,
        )
        .unwrap_err();
    assert!(e.to_string().contains("not on the trunk"), "{e}");
    let e = m
        .update(
            "docs/TASKS.md",
            &[set("T-1", &[("owner", "x")])],
            &[],
            "x",
            &bot(),
            1,
        )
        .unwrap_err();
    assert!(e.to_string().contains("owner"), "{e}");
}

#[test]
fn a_learning_lands_in_the_same_commit() {
    let sb = Sandbox::new();
    let origin = origin(&sb, 1);
    let m = mirror(&sb, "m.git", &origin);
    let learning = Learning {
        path: "docs/tasks/orchestrator-learnings.json".into(),
        entry: serde_json::json!({ "task": "T-1", "estimate": 8000, "actual": 20000, "variance": 1.5 }),
    };
    m.update(
        "docs/TASKS.md",
        &[set("T-1", &[("status", "done")])],
        std::slice::from_ref(&learning),
        "chore(tasks): T-1 done",
        &bot(),
        1,
    )
    .unwrap()
    .unwrap();
    let files = sb.ok(&origin, &["diff", "--name-only", "main~1", "main"]);
    assert_eq!(
        files,
        "docs/TASKS.md\ndocs/tasks/orchestrator-learnings.json"
    );
    let json = sb.ok(
        &origin,
        &["show", "main:docs/tasks/orchestrator-learnings.json"],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["task"], "T-1");
}

#[test]
fn concurrent_writers_to_different_rows_lose_nothing_and_keep_history_linear() {
    const WRITERS: usize = 16;
    let sb = Sandbox::new();
    let origin = origin(&sb, WRITERS);
    let handles: Vec<_> = (1..=WRITERS)
        .map(|i| {
            let m = mirror(&sb, &format!("m{i}.git"), &origin);
            std::thread::spawn(move || {
                let id = format!("T-{i}");
                let c = set(
                    &id,
                    &[("status", "in-progress"), ("notes", &format!("PR #{i}"))],
                );
                m.update(
                    "docs/TASKS.md",
                    &[c],
                    &[],
                    &format!("chore(tasks): {id} in-progress"),
                    &bot(),
                    64,
                )
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap().expect("a commit");
    }
    let text = sb.ok(&origin, &["show", "main:docs/TASKS.md"]);
    for i in 1..=WRITERS {
        assert!(
            text.contains(&format!("| T-{i} | in-progress | task {i} | | | PR #{i} |")),
            "T-{i} lost:\n{text}"
        );
    }
    let parents = sb.ok(&origin, &["log", "--format=%p", "main"]);
    assert!(
        parents.lines().all(|p| !p.contains(' ')),
        "history is linear"
    );
    let log = sb.ok(&origin, &["log", "--format=%s", "main"]);
    assert_eq!(
        log.lines().count(),
        WRITERS + 2,
        "one commit per writer:\n{log}"
    );
}
