//! Round-trip identity and one-line updates over the example tables in tests/fixtures/tasks.

use std::path::PathBuf;

use trunkwarden::tasks::{TaskTable, lint};

fn fixtures() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tasks");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("fixture is UTF-8"))
        })
        .collect();
    out.sort();
    assert!(out.len() >= 5, "fixtures missing: {out:?}");
    out
}

/// Lines with their endings, so a CRLF→LF change counts as a changed line.
fn lines(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

fn changed_lines(a: &str, b: &str) -> Vec<usize> {
    let (la, lb) = (lines(a), lines(b));
    assert_eq!(la.len(), lb.len(), "line count changed");
    (0..la.len()).filter(|&i| la[i] != lb[i]).collect()
}

#[test]
fn every_fixture_round_trips_byte_for_byte() {
    for (name, text) in fixtures() {
        let table = TaskTable::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(table.to_string(), text, "{name}");
    }
}

#[test]
fn changing_one_cell_changes_one_line_in_every_fixture() {
    for (name, text) in fixtures() {
        let mut table = TaskTable::parse(&text).unwrap();
        let last = table.len() - 1;
        let before_line = table.line_of(last);
        assert!(table.set(last, "status", "blocked").unwrap(), "{name}");
        let out = table.to_string();
        let changed = changed_lines(&text, &out);
        assert_eq!(changed, vec![before_line - 1], "{name}: {out}");
        // The new value reads back, and everything else reads as before.
        let again = TaskTable::parse(&out).unwrap();
        let status = again.column("status").unwrap();
        assert_eq!(again.get(last, status), "blocked", "{name}");
        for col in 0..again.columns().len() {
            if col != status {
                assert_eq!(again.get(last, col), table.get(last, col), "{name}");
            }
        }
    }
}

#[test]
fn crlf_file_keeps_crlf_on_the_changed_line() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tasks/crlf-compact.md"),
    )
    .unwrap();
    let mut t = TaskTable::parse(&text).unwrap();
    t.set(0, "notes", "PR #3 merged").unwrap();
    let out = t.to_string();
    assert!(
        out.contains("|API-DB-001|in-progress|migrate schema|||PR #3 merged|\r\n"),
        "{out:?}"
    );
    assert_eq!(out.matches('\n').count(), out.matches("\r\n").count());
}

#[test]
fn aligned_table_stays_aligned_when_the_value_fits() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tasks/extra-columns-aligned.md");
    let text = std::fs::read_to_string(path).unwrap();
    let mut t = TaskTable::parse(&text).unwrap();
    let row = t.find("WEB-UI-002").unwrap();
    t.set(row, "status", "done").unwrap();
    t.set(row, "notes", "PR #9").unwrap();
    let out = t.to_string();
    let old_line = text
        .lines()
        .find(|l| l.contains("| WEB-UI-002  |        2"))
        .unwrap();
    let new_line = out
        .lines()
        .find(|l| l.contains("| WEB-UI-002  |        2"))
        .unwrap();
    assert_eq!(
        new_line,
        "| done        | WEB-UI-002  |        2 | dark mode            | WEB-UI-001  |             | bo       | PR #9                 |"
    );
    assert_eq!(old_line.len(), new_line.len());
    // Unknown columns are still there and readable.
    assert_eq!(t.get(row, t.column("reviewer").unwrap()), "bo");
    assert_eq!(t.get(row, t.column("priority").unwrap()), "2");
}

#[test]
fn escaped_pipe_in_prose_and_cells_survives() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tasks/extra-columns-aligned.md");
    let t = TaskTable::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let desc = t.column("description").unwrap();
    assert_eq!(t.get(0, desc), "header | footer");
}

#[test]
fn table_under_tasks_heading_wins_over_earlier_tables() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tasks/no-notes.md");
    let text = std::fs::read_to_string(path).unwrap();
    let t = TaskTable::parse(&text).unwrap();
    assert_eq!(t.get(0, 0), "OPS-CI-001");
    assert!(!text.ends_with('\n'));
    assert!(t.column("notes").is_none());
    let (tasks, diags) = lint(&t);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(tasks.len(), 2);
}

#[test]
fn short_row_gains_the_missing_cell_on_its_line_only() {
    let text = "# Tasks\n\n| id | status | notes |\n|---|---|---|\n| A-B-1 | done |\n| A-B-2 | done | x |\n";
    let mut t = TaskTable::parse(text).unwrap();
    assert_eq!(t.get(0, 2), "");
    t.set(0, "notes", "late").unwrap();
    let out = t.to_string();
    assert_eq!(
        out,
        "# Tasks\n\n| id | status | notes |\n|---|---|---|\n| A-B-1 | done | late |\n| A-B-2 | done | x |\n"
    );
}

#[test]
fn structural_errors_are_reported_with_lines() {
    use trunkwarden::tasks::TableError;
    assert_eq!(
        TaskTable::parse("# Tasks\n\nno table").unwrap_err(),
        TableError::NoTable
    );
    assert_eq!(
        TaskTable::parse("# Tasks\n\n| id | name |\n|---|---|\n").unwrap_err(),
        TableError::MissingColumn {
            line: 3,
            column: "status"
        }
    );
    assert_eq!(
        TaskTable::parse("# Tasks\n\n| id | status | ID |\n|---|---|---|\n").unwrap_err(),
        TableError::DuplicateColumn {
            line: 3,
            column: "id".into()
        }
    );
    let mut t =
        TaskTable::parse("# Tasks\n\n| id | status |\n|---|---|\n| A-B-1 | done |\n").unwrap();
    assert_eq!(
        t.set(0, "notes", "x").unwrap_err(),
        TableError::UnknownColumn {
            line: 3,
            column: "notes".into()
        }
    );
    assert_eq!(
        t.set(0, "status", "a\nb").unwrap_err(),
        TableError::NewlineInCell {
            line: 5,
            column: "status".into()
        }
    );
}
