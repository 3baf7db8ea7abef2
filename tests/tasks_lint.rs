//! Every lint rule and the planner, each with a table that breaks it and one that does not.

use trunkwarden::tasks::{Diagnostic, TaskTable, fix_blocks, lint, plan};

const HEADER: &str = "# Tasks\n\n| id | status | issue | depends_on | blocks | started_at | completed_at | estimate | used |\n|---|---|---|---|---|---|---|---|---|\n";

/// Builds a table from rows of cells; the first row is on line 5.
fn doc(rows: &[[&str; 9]]) -> String {
    let mut s = HEADER.to_owned();
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

fn diags(text: &str) -> Vec<Diagnostic> {
    lint(&TaskTable::parse(text).expect("table parses")).1
}

fn rules(text: &str) -> Vec<(usize, &'static str)> {
    diags(text).into_iter().map(|d| (d.line, d.rule)).collect()
}

const A: [&str; 9] = [
    "T-A-1",
    "done",
    "#1",
    "",
    "T-A-2",
    "2026-01-01T00:00:00Z",
    "2026-01-02T00:00:00Z",
    "8K",
    "9K",
];
const B: [&str; 9] = [
    "T-A-2",
    "in-progress",
    "TASKS:P2",
    "T-A-1",
    "",
    "2026-01-03T00:00:00Z",
    "",
    "4K",
    "",
];

#[test]
fn a_consistent_table_has_no_problems() {
    assert_eq!(rules(&doc(&[A, B])), vec![]);
}

#[test]
fn cell_formats_name_line_and_column() {
    let mut b = B;
    b[1] = "inprogress";
    let d = diags(&doc(&[A, b]));
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].to_string(),
        "line 6, column `status`: unknown status `inprogress`; expected one of not-started, in-progress, done, failed, blocked, needs-qa, deferred [cell-format]"
    );
    for (col, bad) in [
        (0, "t-a-2x"),
        (2, "P2"),
        (5, "tomorrow"),
        (7, "4KB"),
        (3, "T-A-1;T-A-3"),
    ] {
        let mut b = B;
        b[col] = bad;
        let d = diags(&doc(&[A, b]));
        assert!(
            d.iter().any(|d| d.rule == "cell-format" && d.line == 6),
            "{bad}: {d:?}"
        );
    }
}

#[test]
fn extra_cells_are_reported() {
    let text = format!("{}| T-A-9 | done | | | | | | | | oops |\n", HEADER);
    assert_eq!(rules(&text), vec![(5, "cell-count")]);
}

#[test]
fn duplicate_ids() {
    let mut b = B;
    b[0] = "T-A-1";
    b[3] = "";
    let mut a = A;
    a[4] = "";
    assert_eq!(rules(&doc(&[a, b])), vec![(6, "duplicate-id")]);
}

#[test]
fn unknown_references() {
    let mut b = B;
    b[3] = "T-A-1, T-A-7";
    assert_eq!(rules(&doc(&[A, b])), vec![(6, "unknown-reference")]);
}

#[test]
fn blocks_must_mirror_depends_on_both_ways() {
    let mut a = A;
    a[4] = "";
    assert_eq!(rules(&doc(&[a, B])), vec![(5, "blocks-mirror")]);
    let mut b = B;
    b[3] = "";
    assert_eq!(rules(&doc(&[A, b])), vec![(5, "blocks-mirror")]);
}

#[test]
fn cycles_are_named_in_order() {
    let c1 = ["T-C-1", "not-started", "", "T-C-3", "T-C-2", "", "", "", ""];
    let c2 = ["T-C-2", "not-started", "", "T-C-1", "T-C-3", "", "", "", ""];
    let c3 = ["T-C-3", "not-started", "", "T-C-2", "T-C-1", "", "", "", ""];
    let d = diags(&doc(&[c1, c2, c3]));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].rule, "cycle");
    assert_eq!(d[0].line, 5);
    assert!(
        d[0].message.ends_with("T-C-1 → T-C-3 → T-C-2 → T-C-1"),
        "{}",
        d[0].message
    );

    let selfdep = ["T-C-4", "not-started", "", "T-C-4", "T-C-4", "", "", "", ""];
    let d = diags(&doc(&[selfdep]));
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].message.ends_with("T-C-4 → T-C-4"));
}

#[test]
fn completed_at_only_on_terminal_states() {
    let mut b = B;
    b[6] = "2026-01-04T00:00:00Z";
    assert_eq!(rules(&doc(&[A, b])), vec![(6, "completed-at-non-terminal")]);
    b[1] = "failed";
    assert_eq!(rules(&doc(&[A, b])), vec![]);
}

#[test]
fn completed_not_before_started() {
    let mut a = A;
    a[6] = "2025-12-31T23:59:59Z";
    assert_eq!(rules(&doc(&[a, B])), vec![(5, "completed-before-started")]);
}

#[test]
fn fix_rewrites_blocks_on_changed_rows_only() {
    let c = [
        "T-A-3",
        "not-started",
        "",
        "T-A-1, T-A-2",
        "",
        "",
        "",
        "",
        "",
    ];
    let mut a = A;
    a[4] = "T-A-9, T-A-2"; // stale entry and a missing one
    let text = doc(&[a, B, c]);
    let mut t = TaskTable::parse(&text).unwrap();
    let (tasks, before) = lint(&t);
    assert!(!before.is_empty());
    let changed = fix_blocks(&mut t, &tasks).unwrap();
    assert_eq!(changed, vec!["T-A-1", "T-A-2"]);
    let (_, after) = lint(&t);
    assert_eq!(after, vec![]);
    assert_eq!(t.get(0, 4), "T-A-2, T-A-3");
    assert_eq!(t.get(1, 4), "T-A-3");
    assert_eq!(t.get(2, 4), "");
}

fn planned(rows: &[[&str; 9]]) -> trunkwarden::tasks::NextTasks {
    let t = TaskTable::parse(&doc(rows)).unwrap();
    plan(&lint(&t).0)
}

#[test]
fn next_task_needs_every_dependency_done() {
    let c = ["T-A-3", "not-started", "", "T-A-1", "", "", "", "", ""];
    let d = [
        "T-A-4",
        "not-started",
        "",
        "T-A-1, T-A-2",
        "",
        "",
        "",
        "",
        "",
    ];
    let p = planned(&[A, B, c, d]);
    assert_eq!(p.ready, vec!["T-A-3"]);
    assert_eq!(p.in_progress, vec!["T-A-2"]);
    assert_eq!(p.waiting.len(), 1);
    assert_eq!(p.waiting[0].id, "T-A-4");
    assert_eq!(p.waiting[0].blocked_by[0].id, "T-A-2");
    assert!(!p.deadlock);
}

#[test]
fn deadlock_when_nothing_can_move() {
    let mut b = B;
    b[1] = "failed";
    let c = ["T-A-3", "not-started", "", "T-A-2", "", "", "", "", ""];
    let p = planned(&[A, b, c]);
    assert!(p.deadlock);
    assert_eq!(p.open, vec!["T-A-2", "T-A-3"]);
    // A missing dependency deadlocks too, and says so.
    let lone = ["T-A-5", "not-started", "", "T-A-8", "", "", "", "", ""];
    let p = planned(&[lone]);
    assert!(p.deadlock);
    assert!(!p.waiting[0].blocked_by[0].exists);
}

#[test]
fn deferred_and_done_are_not_open_work() {
    let mut b = B;
    b[1] = "deferred";
    let p = planned(&[A, b]);
    assert!(p.open.is_empty());
    assert!(!p.deadlock);
}
