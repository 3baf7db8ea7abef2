//! `trunkwarden tasks …` as a user runs it: the real binary, real files, a real git repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tasks")
        .join(name)
}

fn tw(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trunkwarden"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run trunkwarden")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scratch copy of a fixture, so commands that write cannot touch the originals.
fn scratch(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("TASKS.md");
    std::fs::copy(fixture(name), &path).unwrap();
    (dir, path)
}

fn differing_lines(a: &str, b: &str) -> Vec<usize> {
    let (la, lb): (Vec<&str>, Vec<&str>) = (
        a.split_inclusive('\n').collect(),
        b.split_inclusive('\n').collect(),
    );
    assert_eq!(la.len(), lb.len());
    (0..la.len())
        .filter(|&i| la[i] != lb[i])
        .map(|i| i + 1)
        .collect()
}

#[test]
fn next_on_the_protocol_example_says_nothing_may_start() {
    let f = fixture("protocol-example.md");
    let o = tw(
        Path::new("."),
        &["tasks", "next", "--file", f.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "nothing may start now; in progress: MS-SEC-002\nMS-SEC-003 is blocked by MS-SEC-002 (in-progress)\n"
    );
    let o = tw(
        Path::new("."),
        &[
            "tasks",
            "next",
            "-f",
            f.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ready"], serde_json::json!([]));
    assert_eq!(v["waiting"][0]["id"], "MS-SEC-003");
    assert_eq!(v["waiting"][0]["blocked_by"][0]["id"], "MS-SEC-002");
    assert_eq!(v["deadlock"], false);
}

#[test]
fn next_exits_1_on_deadlock_and_explains() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("T.md");
    std::fs::write(
        &f,
        "# Tasks\n\n| id | status | depends_on |\n|---|---|---|\n| D-X-1 | failed | |\n| D-X-2 | not-started | D-X-1 |\n",
    )
    .unwrap();
    let o = tw(dir.path(), &["tasks", "next", "-f", "T.md"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        "deadlock: nothing may start and nothing is in progress, yet 2 tasks are open\nD-X-2 is blocked by D-X-1 (failed)\nD-X-1 is failed\n"
    );
}

#[test]
fn next_refuses_a_table_with_unreadable_cells() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("T.md"),
        "# Tasks\n\n| id | status |\n|---|---|\n| D-X-1 | inprogress |\n",
    )
    .unwrap();
    let o = tw(dir.path(), &["tasks", "next", "-f", "T.md"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("T.md: line 5, column `status`: unknown status `inprogress`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn lint_reports_fixes_and_exits_by_outcome() {
    let (dir, path) = scratch("protocol-example.md");
    let before = std::fs::read_to_string(&path).unwrap();
    let o = tw(dir.path(), &["tasks", "lint", "TASKS.md"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o)
            .contains("TASKS.md: line 6, column `blocks`: `MS-SEC-002` should list `MS-SEC-003`")
    );

    let o = tw(dir.path(), &["tasks", "lint", "TASKS.md", "--fix"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).starts_with("fixed blocks of MS-SEC-002\n"));
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(differing_lines(&before, &after), vec![6]);
    assert!(after.contains("| fix/security | MS-SEC-001 | MS-SEC-003 | worker-2 |"));

    let o = tw(
        dir.path(),
        &["tasks", "lint", "TASKS.md", "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["tasks"], 3);
    assert_eq!(v["diagnostics"], serde_json::json!([]));
}

#[test]
fn lint_on_broken_input_says_where_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bin.md"),
        b"# Tasks\n\n\x00\xff\xfe garbage",
    )
    .unwrap();
    let o = tw(dir.path(), &["tasks", "lint", "bin.md"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("bin.md: line 3: the file is not valid UTF-8"),
        "{}",
        stdout(&o)
    );

    std::fs::write(dir.path().join("none.md"), "just prose\n").unwrap();
    let o = tw(dir.path(), &["tasks", "lint", "none.md"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("no task table found"));

    let o = tw(dir.path(), &["tasks", "lint", "missing.md"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read missing.md"));
}

#[test]
fn set_changes_one_line_and_validates() {
    let (dir, path) = scratch("protocol-example.md");
    let before = std::fs::read_to_string(&path).unwrap();
    let o = tw(
        dir.path(),
        &[
            "tasks",
            "set",
            "MS-SEC-003",
            "status=in-progress",
            "agent=worker-3",
            "started_at=now",
            "-f",
            "TASKS.md",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("MS-SEC-003: status `not-started` → `in-progress`"));
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(differing_lines(&before, &after), vec![7]);
    let line = after.lines().nth(6).unwrap();
    assert!(
        line.starts_with("| MS-SEC-003 | in-progress | SEC-API-4: rate-limit login |"),
        "{line}"
    );
    assert!(line.contains("| worker-3 | 20"), "{line}");

    // Refusals leave the file untouched and exit 2.
    for (args, msg) in [
        (vec!["status=bogus"], "unknown status `bogus`"),
        (
            vec!["depends_on=MS-SEC-404"],
            "`MS-SEC-404` is not a task in this table",
        ),
        (vec!["depends_on=MS-SEC-003"], "cannot refer to itself"),
        (
            vec!["colour=red"],
            "no column `colour`; columns are: id, status",
        ),
        (vec!["id=MS-SEC-009"], "renaming a task is not supported"),
        (vec!["estimate=lots"], "is not a token count"),
        (vec!["notes"], "is not KEY=VALUE"),
    ] {
        let mut all = vec!["tasks", "set", "MS-SEC-003"];
        all.extend(args);
        all.extend(["-f", "TASKS.md"]);
        let o = tw(dir.path(), &all);
        assert_eq!(o.status.code(), Some(2), "{all:?}");
        assert!(stderr(&o).contains(msg), "{all:?}: {}", stderr(&o));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            after,
            "{all:?} changed the file"
        );
    }

    let o = tw(
        dir.path(),
        &[
            "tasks",
            "set",
            "MS-SEC-003",
            "agent=worker-3",
            "-f",
            "TASKS.md",
        ],
    );
    assert_eq!(stdout(&o), "MS-SEC-003: no change\n");
}

#[test]
fn set_warns_when_a_change_breaks_a_rule() {
    let (dir, _path) = scratch("extra-columns-aligned.md");
    let o = tw(
        dir.path(),
        &[
            "tasks",
            "set",
            "WEB-UI-003",
            "depends_on=WEB-UI-002",
            "-f",
            "TASKS.md",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("warning: the table now breaks a rule"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("[blocks-mirror]"));
}

#[test]
fn show_and_variance() {
    let f = fixture("no-notes.md");
    let f = f.to_str().unwrap();
    let o = tw(Path::new("."), &["tasks", "show", "OPS-CI-002", "-f", f]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).starts_with("id            OPS-CI-002\nstatus        not-started\n"),
        "{}",
        stdout(&o)
    );
    let o = tw(Path::new("."), &["tasks", "show", "OPS-CI-404", "-f", f]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no task with id `OPS-CI-404`"));

    let o = tw(Path::new("."), &["tasks", "variance", "-f", f]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("OPS-CI-001        5K        9K    +80.0%  learning (beyond ±50%)"),
        "{}",
        stdout(&o)
    );
    let o = tw(
        Path::new("."),
        &["tasks", "variance", "-f", f, "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["level"], "learning");
    assert_eq!(v[0]["variance"], 0.8);
}

fn git(dir: &Path, args: &[&str]) {
    let s = Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git");
    assert!(s.success(), "git {args:?}");
}

#[test]
fn default_file_is_found_from_the_repository_root() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    std::fs::create_dir_all(repo.path().join("docs")).unwrap();
    std::fs::create_dir_all(repo.path().join("src/deep")).unwrap();
    std::fs::copy(
        fixture("protocol-example.md"),
        repo.path().join("docs/TASKS.md"),
    )
    .unwrap();
    let o = tw(&repo.path().join("src/deep"), &["tasks", "next"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("MS-SEC-003 is blocked by MS-SEC-002"));

    // .trunkwarden.toml moves the table.
    std::fs::create_dir_all(repo.path().join("plan")).unwrap();
    std::fs::copy(fixture("no-notes.md"), repo.path().join("plan/work.md")).unwrap();
    std::fs::write(
        repo.path().join(".trunkwarden.toml"),
        "[tasks]\npath = \"plan/work.md\"\n",
    )
    .unwrap();
    let o = tw(&repo.path().join("src"), &["tasks", "next"]);
    assert_eq!(stdout(&o), "may start: OPS-CI-002 — split test shards\n");

    // A typo in the policy is an error naming the file and the key.
    std::fs::write(
        repo.path().join(".trunkwarden.toml"),
        "[tasks]\npaht = \"x\"\n",
    )
    .unwrap();
    let o = tw(repo.path(), &["tasks", "next"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(".trunkwarden.toml") && stderr(&o).contains("paht"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn outside_a_repository_without_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = tw(dir.path(), &["tasks", "next"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not inside a git repository; pass --file"));
    let o = tw(dir.path(), &["tasks", "frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}
