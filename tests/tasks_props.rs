//! Property tests: generated tables round-trip and update in one line; hostile input never panics.

mod support;

use proptest::prelude::*;
use support::cases;
use trunkwarden::tasks::{TaskTable, lint, plan, variances};

/// How a generated table is written.
#[derive(Debug, Clone)]
struct Style {
    outer_pipes: bool,
    pad: usize,
    crlf: bool,
    final_newline: bool,
}

#[derive(Debug, Clone)]
struct Generated {
    text: String,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn value() -> impl Strategy<Value = String> {
    // Pipes, backslashes and non-ASCII on purpose; no newline, no padding of its own.
    "[a-zA-Z0-9 |\\\\:#.,é✓-]{0,12}".prop_map(|s| s.trim().to_owned())
}

fn style() -> impl Strategy<Value = Style> {
    (any::<bool>(), 0usize..3, any::<bool>(), any::<bool>()).prop_map(
        |(outer_pipes, pad, crlf, final_newline)| Style {
            outer_pipes,
            pad,
            crlf,
            final_newline,
        },
    )
}

fn prose() -> impl Strategy<Value = Vec<String>> {
    // No dashes or fences, so prose can never form a delimiter row or hide the table.
    prop::collection::vec("[a-zA-Z .|*]{0,30}", 0..4)
}

fn render_line(cells: &[String], st: &Style) -> String {
    let pad = " ".repeat(st.pad);
    let rendered: Vec<String> = cells
        .iter()
        .map(|c| {
            let esc = c.replace('|', "\\|");
            // A value ending in `\` needs a blank before the next pipe, or the pipe is escaped.
            let right = if esc.ends_with('\\') && st.pad == 0 {
                " ".to_owned()
            } else {
                pad.clone()
            };
            format!("{pad}{esc}{right}")
        })
        .collect();
    if st.outer_pipes {
        format!("|{}|", rendered.join("|"))
    } else {
        rendered.join("|")
    }
}

fn table() -> impl Strategy<Value = Generated> {
    let known = prop::sample::subsequence(
        vec![
            "description",
            "issue",
            "depends_on",
            "notes",
            "agent",
            "estimate",
        ],
        0..=6,
    );
    let unknown = prop::collection::btree_set("x[a-z]{1,6}", 0..3);
    (known, unknown, style(), prose(), prose(), 0usize..8)
        .prop_flat_map(|(known, unknown, st, before, after, nrows)| {
            let mut columns: Vec<String> = vec!["id".into(), "status".into()];
            columns.extend(known.into_iter().map(str::to_owned));
            columns.extend(unknown);
            let ncols = columns.len();
            let rows = prop::collection::vec(prop::collection::vec(value(), ncols), nrows);
            (
                Just(columns).prop_shuffle(),
                rows,
                Just(st),
                Just(before),
                Just(after),
            )
        })
        .prop_map(|(columns, mut rows, st, before, after)| {
            // Every row needs a non-empty first cell, or a pipe-less row would lose it.
            for (i, r) in rows.iter_mut().enumerate() {
                if r[0].is_empty() {
                    r[0] = format!("c{i}");
                }
            }
            let eol = if st.crlf { "\r\n" } else { "\n" };
            let mut lines: Vec<String> = before;
            lines.extend(["".into(), "# Tasks".into(), "".into()]);
            lines.push(render_line(&columns, &st));
            lines.push(render_line(&vec!["---".to_owned(); columns.len()], &st));
            for r in &rows {
                lines.push(render_line(r, &st));
            }
            if !after.is_empty() {
                lines.push(String::new());
                lines.extend(after);
            }
            let mut text = lines.join(eol);
            if st.final_newline {
                text.push_str(eol);
            }
            Generated {
                text,
                columns,
                rows,
            }
        })
}

/// Lines with their endings, so a changed line ending counts as a change.
fn changed_lines(a: &str, b: &str) -> usize {
    let (la, lb): (Vec<&str>, Vec<&str>) = (
        a.split_inclusive('\n').collect(),
        b.split_inclusive('\n').collect(),
    );
    assert_eq!(la.len(), lb.len());
    la.iter().zip(&lb).filter(|(x, y)| x != y).count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(400)))]

    #[test]
    fn generated_tables_round_trip_and_read_back(g in table()) {
        let t = TaskTable::parse(&g.text).map_err(|e| TestCaseError::fail(format!("{e}\n{}", g.text)))?;
        prop_assert_eq!(t.to_string(), g.text.clone());
        prop_assert_eq!(t.len(), g.rows.len());
        for (r, row) in g.rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                let col = t.column(&g.columns[c]).expect("column");
                prop_assert_eq!(t.get(r, col).into_owned(), v.clone());
            }
        }
    }

    #[test]
    fn one_update_changes_exactly_one_line(g in table(), pick in any::<prop::sample::Index>(), col in any::<prop::sample::Index>(), v in value()) {
        if g.rows.is_empty() {
            return Ok(());
        }
        let mut t = TaskTable::parse(&g.text).unwrap();
        let row = pick.index(g.rows.len());
        let name = col.get(g.columns.as_slice()).clone();
        let c = t.column(&name).unwrap();
        let old = t.get(row, c).into_owned();
        let changed = t.set(row, &name, &v).unwrap();
        prop_assert_eq!(changed, old != v);
        let out = t.to_string();
        prop_assert_eq!(changed_lines(&g.text, &out), usize::from(changed));
        let again = TaskTable::parse(&out).unwrap();
        prop_assert_eq!(again.get(row, c).into_owned(), v.clone());
        for other in 0..g.columns.len() {
            if other != c {
                prop_assert_eq!(again.get(row, other), t.get(row, other));
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(t) = TaskTable::parse_bytes(&bytes) {
            prop_assert_eq!(t.to_string().into_bytes(), bytes.clone());
            let (tasks, _) = lint(&t);
            let _ = plan(&tasks);
            let _ = variances(&tasks);
        }
    }

    #[test]
    fn table_shaped_garbage_never_panics(
        body in "[|\\\\:\\- \t\r\n#`~a-zA-Z0-9,é]{0,600}",
        v in "[|\\\\a-z \t]{0,10}",
        r in any::<prop::sample::Index>(),
        c in any::<prop::sample::Index>(),
    ) {
        for head in ["", "# Tasks\n| id | status | depends_on | blocks |\n|---|---|---|---|\n"] {
            let text = format!("{head}{body}");
            if let Ok(mut t) = TaskTable::parse(&text) {
                prop_assert_eq!(t.to_string(), text.clone());
                let (tasks, _) = lint(&t);
                let _ = plan(&tasks);
                if !t.is_empty() {
                    let row = r.index(t.len());
                    let name = c.get(t.columns()).clone();
                    let col = t.column(&name).unwrap();
                    if t.set(row, &name, &v).is_ok() {
                        let again = TaskTable::parse(&t.to_string()).unwrap();
                        prop_assert_eq!(again.get(row, col).into_owned(), v.trim().to_owned());
                    }
                }
            }
        }
    }
}

#[test]
fn fifty_megabytes_of_pipes_is_an_error_not_a_hang() {
    let line = "| prose | with | pipes | but | no | delimiter |\n";
    let text = line.repeat(50 * 1024 * 1024 / line.len());
    let err = TaskTable::parse(&text).unwrap_err();
    assert!(err.to_string().contains("no task table found"));
}

#[test]
fn ten_thousand_chained_rows_lint_without_overflow() {
    let mut text =
        String::from("# Tasks\n\n| id | status | depends_on | blocks |\n|---|---|---|---|\n");
    let n = 10_000;
    for i in 0..n {
        let dep = if i == 0 {
            format!("C-X-{}", n - 1)
        } else {
            format!("C-X-{}", i - 1)
        };
        let blocks = format!("C-X-{}", (i + 1) % n);
        text.push_str(&format!("| C-X-{i} | not-started | {dep} | {blocks} |\n"));
    }
    let t = TaskTable::parse(&text).unwrap();
    let (tasks, diags) = lint(&t);
    assert_eq!(tasks.len(), n);
    // One cycle through all 10,000 tasks, reported once.
    assert_eq!(diags.len(), 1, "{:?}", &diags[..diags.len().min(3)]);
    assert_eq!(diags[0].rule, "cycle");
    assert!(plan(&tasks).deadlock);
}
