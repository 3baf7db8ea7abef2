//! One repository's task table as people would rather look at it: counts, what may start, a
//! deadlock named, the done-gate pipeline, a board by status, the dependency graph, and the
//! variance of `used` against `estimate` with the learnings.

use std::collections::HashMap;

use maud::{Markup, html};

use super::layout::{Frame, ago, page};
use super::{Links, Wait, graph};
use crate::engine::decide::current_pr;
use crate::tasks::{self, Level, Status, Task, TaskTable};

/// Cards shown per status column before the rest move to a page of their own.
const CARDS_PER_COLUMN: usize = 100;
/// Rows per page of one status listed in full.
const ROWS_PER_PAGE: usize = 500;
/// Done tasks shown in the pipeline: the latest.
const PIPELINE_DONE: usize = 20;
/// Tasks in the variance chart: the largest variances.
const CHART_BARS: usize = 40;

/// The board's columns, in the order work moves.
pub(super) const COLUMNS: [Status; 7] = [
    Status::NotStarted,
    Status::InProgress,
    Status::NeedsQa,
    Status::Blocked,
    Status::Failed,
    Status::Done,
    Status::Deferred,
];

/// What a board is drawn from.
#[derive(Debug, Clone, Copy)]
pub struct BoardInput<'a> {
    /// `owner/name`, or a file name for a local board.
    pub repo: &'a str,
    pub links: &'a Links,
    pub table: &'a [u8],
    pub learnings: Option<&'a [u8]>,
    /// Squash commits whose CI is awaited.
    pub waits: &'a [Wait],
    /// Pull requests known merged, with their merge commits: the notes of a task whose CI
    /// is still awaited may not say so yet (the bot commits a wait only with other news).
    pub merged: &'a [(u64, String)],
    /// The contexts green waits for, if known.
    pub required: &'a [String],
    pub now_ms: i64,
    /// List this status in full, a page at a time, instead of the board.
    pub status: Option<Status>,
    pub page: usize,
    /// The board's own address, for the links to full columns (`None`: a static file).
    pub href: Option<&'a str>,
}

/// Where a pull request with a task is on its way to done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Open,
    /// Squash-merged; CI on the squash commit not yet terminal.
    Waiting,
    Done,
    /// Failed, or needs QA: the gate refused it.
    Refused,
}

/// The pipeline stage of a task that tracks a pull request, read from its status and notes,
/// and from the pull requests known `merged`.
pub fn stage(task: &Task, merged: &[(u64, String)]) -> Option<(Stage, u64)> {
    let pr = current_pr(task)?;
    let stage = match task.status {
        Some(Status::Done) => Stage::Done,
        Some(Status::Failed | Status::NeedsQa) => Stage::Refused,
        _ if task.notes.contains("squash-merged") => Stage::Waiting,
        _ if merged.iter().any(|(n, _)| *n == pr) => Stage::Waiting,
        Some(Status::InProgress | Status::Blocked) => Stage::Open,
        _ => return None,
    };
    Some((stage, pr))
}

/// What a failed job's log said, as the notes carry it (`…; CI red (test): 2 failing — a`).
fn diagnosis_of(notes: &str) -> Option<&str> {
    notes.find("CI red (").map(|at| &notes[at..])
}

/// The squash commit a task's notes name (`… squash-merged as 9f1c2ab …`).
fn merged_as(notes: &str) -> Option<&str> {
    let at = notes.find("squash-merged as ")? + "squash-merged as ".len();
    let rest = &notes[at..];
    let end = rest
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(rest.len());
    (end >= 7).then(|| &rest[..end])
}

/// The contexts a note says were green (`CI green (ci/test, ci/lint)`).
fn green_contexts(notes: &str) -> Option<&str> {
    let at = notes.find("CI green (")? + "CI green (".len();
    let end = notes[at..].find(')')?;
    Some(&notes[at..at + end])
}

fn link_or_text(href: Option<String>, text: &str) -> Markup {
    html! {
        @match href {
            Some(h) => a href=(h) { (text) },
            None => span { (text) },
        }
    }
}

fn status_name(s: Option<Status>) -> &'static str {
    s.map_or("unknown", Status::as_str)
}

/// The board's main content.
pub fn board(input: &BoardInput<'_>) -> Result<Markup, tasks::TableError> {
    let table = TaskTable::parse_bytes(input.table)?;
    let (all, diagnostics) = tasks::read_tasks(&table);
    let plan = tasks::plan(&all);
    let mut counts: HashMap<Option<Status>, usize> = HashMap::new();
    for t in &all {
        *counts.entry(t.status).or_default() += 1;
    }
    Ok(html! {
        section.summary {
            h1 { (input.repo) }
            ul.counts {
                @for s in COLUMNS {
                    li class={ "chip " (s.as_str()) } data-status=(s.as_str()) {
                        span.n { (counts.get(&Some(s)).copied().unwrap_or(0)) } " " (s.as_str())
                    }
                }
            }
            @if !diagnostics.is_empty() {
                details.problems {
                    summary { "The table breaks " (diagnostics.len()) " protocol rule(s)" }
                    ul { @for d in diagnostics.iter().take(20) { li { "line " (d.line) ": " (d.message) } } }
                }
            }
            @if plan.deadlock {
                div.deadlock role="alert" {
                    strong { "Deadlock: " }
                    "nothing may start and nothing is in progress. "
                    @for w in &plan.waiting {
                        span.waits { (w.id) " waits on "
                            @for (i, b) in w.blocked_by.iter().enumerate() {
                                @if i > 0 { ", " }
                                (b.id) " (" @if b.exists { (status_name(b.status)) } @else { "missing" } ")"
                            }
                            "; "
                        }
                    }
                }
            }
            p.ready {
                strong { "May start now: " }
                @if plan.ready.is_empty() { "none" }
                @for (i, id) in plan.ready.iter().enumerate() {
                    @if i > 0 { ", " }
                    a href={ "#task-" (id) } { (id) }
                }
            }
        }
        @match input.status {
            Some(s) => (full_list(input, &all, s)),
            None => {
                (pipeline(input, &all))
                (columns(input, &all, &counts))
                section.graph-section {
                    h2 { "Dependencies" }
                    p.legend { span.key.met { "met" } " " span.key.blocking { "blocking" } " " span.key.cycle { "cycle" } }
                    (graph::svg(&all))
                }
                (variance(&all))
                (learnings(input.learnings))
            }
        }
    })
}

/// PRs open → merged, waiting for CI on the squash commit → done, or refused.
fn pipeline(input: &BoardInput<'_>, all: &[Task]) -> Markup {
    let mut by: [Vec<(&Task, u64)>; 4] = Default::default();
    for t in all {
        if let Some((s, pr)) = stage(t, input.merged) {
            by[s as usize].push((t, pr));
        }
    }
    // Latest done first, a few of them.
    by[Stage::Done as usize].sort_by_key(|b| std::cmp::Reverse(b.0.completed_at));
    let done_total = by[Stage::Done as usize].len();
    by[Stage::Done as usize].truncate(PIPELINE_DONE);
    let titles = [
        "Pull request open",
        "Merged — waiting for CI on the squash commit",
        "Done",
        "Failed or needs QA",
    ];
    let classes = ["open", "waiting", "done", "refused"];
    let wait_of = |sha: &str| {
        input
            .waits
            .iter()
            .find(|w| w.sha.starts_with(sha) || sha.starts_with(w.sha.as_str()))
    };
    html! {
        section.pipeline {
            h2 { "Done gate" }
            div.stages {
                @for (i, items) in by.iter().enumerate() {
                    div class={ "stage " (classes[i]) } data-stage=(classes[i]) {
                        h3 { (titles[i]) " " span.n { (if i == 2 { done_total } else { items.len() }) } }
                        @for (t, pr) in items {
                            div.item data-task=(t.id) {
                                a href={ "#task-" (t.id) } { (t.id) } " · "
                                (link_or_text(input.links.pull(*pr), &format!("PR #{pr}")))
                                @if i == 0 {
                                    @if let Some(s) = t.started_at {
                                        " · open " (ago(input.now_ms - s.timestamp_millis()))
                                    }
                                    @if t.notes.contains("failing") { " · " span.red { "CI failing" } }
                                    @if let Some(why) = diagnosis_of(&t.notes) { div.missing { (why) } }
                                }
                                @if i == 1 {
                                    @let known = input.merged.iter().find(|(n, _)| n == pr).map(|(_, s)| s.as_str());
                                    @if let Some(sha) = merged_as(&t.notes).or(known).filter(|s| s.len() >= 7) {
                                        " · " (link_or_text(input.links.commit(sha), &sha[..7]))
                                        @if let Some(w) = wait_of(sha) {
                                            " · waiting " (ago(input.now_ms - w.since_ms))
                                        }
                                    }
                                    @let missing = merged_as(&t.notes).or(known).and_then(wait_of).map(|w| &w.missing);
                                    div.missing {
                                        @match missing {
                                            Some(m) if !m.is_empty() => { "waiting on: " (m.join(", ")) }
                                            _ if !input.required.is_empty() => { "waiting on: " (input.required.join(", ")) }
                                            _ => { "waiting for the contexts the forge reports to end green" }
                                        }
                                    }
                                }
                                @if i == 2 {
                                    @if let Some(ctx) = green_contexts(&t.notes) { " · green: " (ctx) }
                                }
                                @if i == 3 { div.missing { (t.notes) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn card(input: &BoardInput<'_>, t: &Task) -> Markup {
    html! {
        article.card id={ "task-" (t.id) } data-id=(t.id) {
            div.head { strong { (t.id) } @if !t.agent.is_empty() { span.agent { (t.agent) } } }
            p.desc { (t.description) }
            p.meta {
                @if let Some(issue) = &t.issue {
                    @match issue {
                        tasks::IssueRef::Forge(n) => (link_or_text(input.links.issue(*n), &format!("#{n}"))),
                        other => span { (other.to_string()) },
                    }
                    " "
                }
                @if let Some(pr) = current_pr(t) { (link_or_text(input.links.pull(pr), &format!("PR #{pr}"))) " " }
                @if !t.branch.is_empty() { br; code { (link_or_text(input.links.branch(&t.branch), &t.branch)) } }
            }
            @if !t.depends_on.is_empty() { p.deps { "after " (t.depends_on.join(", ")) } }
            @if t.estimate.is_some() || t.used.is_some() {
                p.tokens {
                    @if let Some(e) = t.estimate { "est " (e.to_string()) }
                    @if let Some(u) = t.used { " · used " (u.to_string()) }
                }
            }
            // Notes that only name the pull request say nothing the links above do not.
            @if !t.notes.is_empty() && current_pr(t).is_none_or(|n| t.notes.trim() != format!("PR #{n}")) {
                p.notes { (t.notes) }
            }
        }
    }
}

fn columns(
    input: &BoardInput<'_>,
    all: &[Task],
    counts: &HashMap<Option<Status>, usize>,
) -> Markup {
    html! {
        section.board-section {
            h2 { "Board" }
            div.board {
                @for s in COLUMNS {
                    @let n = counts.get(&Some(s)).copied().unwrap_or(0);
                    div class={ "column " (s.as_str()) } data-status=(s.as_str()) {
                        h3 { (s.as_str()) " " span.n { (n) } }
                        @for t in all.iter().filter(|t| t.status == Some(s)).take(CARDS_PER_COLUMN) {
                            (card(input, t))
                        }
                        @if n > CARDS_PER_COLUMN {
                            @match input.href {
                                Some(h) => a.more href={ (h) "?status=" (s.as_str()) } { (n - CARDS_PER_COLUMN) " more — list all" },
                                None => p.more { (n - CARDS_PER_COLUMN) " more not shown" },
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One status in full, a page at a time.
fn full_list(input: &BoardInput<'_>, all: &[Task], s: Status) -> Markup {
    let rows: Vec<&Task> = all.iter().filter(|t| t.status == Some(s)).collect();
    let pages = rows.len().div_ceil(ROWS_PER_PAGE).max(1);
    let page = input.page.min(pages - 1);
    let href = input.href.unwrap_or("");
    html! {
        section.list {
            h2 { (s.as_str()) " — " (rows.len()) " task(s)" }
            p { a href=(href) { "back to the board" } }
            table.tasks {
                thead { tr { th { "id" } th { "description" } th { "issue" } th { "agent" } th { "notes" } } }
                tbody {
                    @for t in rows.iter().skip(page * ROWS_PER_PAGE).take(ROWS_PER_PAGE) {
                        tr id={ "task-" (t.id) } {
                            td { (t.id) } td { (t.description) }
                            td { @if let Some(i) = &t.issue { (i.to_string()) } }
                            td { (t.agent) } td { (t.notes) }
                        }
                    }
                }
            }
            @if pages > 1 {
                nav.pages {
                    @if page > 0 { a href={ (href) "?status=" (s.as_str()) "&page=" (page - 1) } { "newer" } " " }
                    "page " (page + 1) " of " (pages)
                    @if page + 1 < pages { " " a href={ (href) "?status=" (s.as_str()) "&page=" (page + 1) } { "more" } }
                }
            }
        }
    }
}

/// Variance of `used` against `estimate` as bars around zero, clamped at ±200%.
fn variance(all: &[Task]) -> Markup {
    let mut v = tasks::variances(all);
    if v.is_empty() {
        return html! {};
    }
    let beyond = v.iter().filter(|x| x.level != Level::Ok).count();
    v.sort_by(|a, b| b.variance.abs().total_cmp(&a.variance.abs()));
    v.truncate(CHART_BARS);
    v.sort_by(|a, b| a.id.cmp(&b.id));
    let (label, half, row) = (130.0, 200.0, 18.0);
    let height = row * v.len() as f64 + 24.0;
    let width = label + 2.0 * half + 70.0;
    let mid = label + half;
    html! {
        section.variance {
            h2 { "Used against estimate" }
            p { (beyond) " task(s) beyond ±50% (worth a learning); bars clamp at ±200%." }
            svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Variance chart" width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) } {
                line.axis x1=(mid) y1="0" x2=(mid) y2=(height - 18.0) {}
                text.tick x=(mid) y=(height - 4.0) { "0%" }
                text.tick x=(mid - half) y=(height - 4.0) { "−200%" }
                text.tick x=(mid + half) y=(height - 4.0) { "+200%" }
                @for (i, x) in v.iter().enumerate() {
                    @let y = i as f64 * row;
                    @let w = (x.variance.clamp(-2.0, 2.0) / 2.0 * half).abs();
                    @let left = if x.variance < 0.0 { mid - w } else { mid };
                    g class={ "bar " (match x.level { Level::Ok => "ok", Level::Learning => "learning", Level::Critical => "critical" }) } data-id=(x.id) {
                        title { (x.id) ": estimate " (x.estimate.to_string()) ", used " (x.used.to_string()) }
                        text.label x="0" y=(y + 13.0) { (x.id) }
                        rect x=(left) y=(y + 3.0) width=(w.max(1.0)) height=(row - 6.0) {}
                        text.value x=(mid + half + 6.0) y=(y + 13.0) { (format!("{:+.0}%", x.variance * 100.0)) }
                    }
                }
            }
        }
    }
}

/// The learnings file's entries, newest first; a file that is not what the protocol says is
/// reported, not hidden.
fn learnings(bytes: Option<&[u8]>) -> Markup {
    let Some(bytes) = bytes else {
        return html! {};
    };
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(bytes);
    let entries: Vec<serde_json::Value> = match parsed {
        Ok(serde_json::Value::Array(a)) => a,
        Ok(serde_json::Value::Object(mut o)) => match o.remove("learnings") {
            Some(serde_json::Value::Array(a)) => a,
            _ => vec![serde_json::Value::Object(o)],
        },
        Ok(_) => Vec::new(),
        Err(e) => {
            return html! { section.learnings { h2 { "Learnings" } p.problem { "The learnings file is not JSON: " (e.to_string()) } } };
        }
    };
    let cell = |e: &serde_json::Value, k: &str| match e.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    html! {
        section.learnings {
            h2 { "Learnings" }
            table {
                thead { tr { th { "task" } th { "estimate" } th { "actual" } th { "variance" } th { "when" } } }
                tbody {
                    @for e in entries.iter().rev().take(100) {
                        tr { td { (cell(e, "task")) } td { (cell(e, "estimate")) } td { (cell(e, "actual")) } td { (cell(e, "variance")) } td { (cell(e, "when")) } }
                    }
                }
            }
        }
    }
}

/// A board as one self-contained HTML file (style inline, no script): what
/// `trunkwarden tasks board` writes.
pub fn render_board_file(input: &BoardInput<'_>) -> Result<String, tasks::TableError> {
    Ok(page(input.repo, Frame::Static, board(input)?).into_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "# Tasks

| id | status | description | issue | depends_on | notes | estimate | used |
|---|---|---|---|---|---|---|---|
| A-X-001 | done | <script>alert(1)</script> | #3 | | PR #7 squash-merged as 9f1c2ab0; CI green (ci/test); closed #3 | 8K | 20K |
| A-X-002 | in-progress | second | #4 | A-X-001 | PR #8 squash-merged as abcdef12; waiting for CI on the trunk | | |
| A-X-003 | not-started | third | | A-X-002 | | | |
| A-X-004 | in-progress | fourth | | | PR #9: CI failing on 1234567: test; CI red (test): 1 failing — tests::adds | | |
";

    fn render(table: &str) -> String {
        let links = Links::from_clone_url(
            crate::event::ForgeKind::Github,
            "https://github.com/a/b.git",
        );
        let input = BoardInput {
            repo: "a/b",
            links: &links,
            table: table.as_bytes(),
            learnings: Some(br#"[{"task":"A-X-001","estimate":8000,"actual":20000,"variance":1.5,"when":"2026-01-01T00:00:00Z"}]"#),
            waits: &[Wait {
                sha: "abcdef1234".to_owned(),
                missing: vec!["ci/lint".to_owned()],
                since_ms: 0,
            }],
            merged: &[],
            required: &["ci/test".to_owned()],
            now_ms: 120_000,
            status: None,
            page: 0,
            href: Some("/repos/a/b"),
        };
        render_board_file(&input).unwrap()
    }

    #[test]
    fn the_board_escapes_what_the_table_says() {
        let html = render(TABLE);
        assert!(
            !html.contains("<script>alert"),
            "a description is text, not markup"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn the_pipeline_places_a_merged_pr_waiting_for_ci() {
        let html = render(TABLE);
        let waiting = html.split("data-stage=\"waiting\"").nth(1).unwrap();
        let waiting = waiting.split("data-stage=\"done\"").next().unwrap();
        assert!(waiting.contains("data-task=\"A-X-002\""));
        assert!(waiting.contains("waiting 2 min"), "{waiting}");
        assert!(
            waiting.contains("waiting on: ci/lint"),
            "the context still missing"
        );
        assert!(waiting.contains("https://github.com/a/b/commit/abcdef12"));
        assert!(html.contains("https://github.com/a/b/pull/7"));
    }

    #[test]
    fn an_open_pull_request_shows_what_broke_its_ci() {
        let html = render(TABLE);
        let open = html.split("data-stage=\"open\"").nth(1).unwrap();
        let open = open.split("data-stage=").next().unwrap();
        assert!(
            open.contains("CI red (test): 1 failing — tests::adds"),
            "{open}"
        );
    }

    #[test]
    fn merged_shas_and_green_contexts_are_read_from_notes() {
        assert_eq!(
            merged_as("PR #1 squash-merged as 9f1c2ab; CI"),
            Some("9f1c2ab")
        );
        assert_eq!(merged_as("PR #1 squash-merged as 9f1"), None);
        assert_eq!(green_contexts("CI green (a, b); closed"), Some("a, b"));
    }

    #[test]
    fn a_table_that_is_not_a_table_is_an_error() {
        let links = Links::default();
        let input = BoardInput {
            repo: "x",
            links: &links,
            table: b"no table here",
            learnings: None,
            waits: &[],
            merged: &[],
            required: &[],
            now_ms: 0,
            status: None,
            page: 0,
            href: None,
        };
        assert!(render_board_file(&input).is_err());
    }
}
