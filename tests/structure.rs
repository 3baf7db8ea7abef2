//! The shape the code keeps, checked on every run: SQL lives only in the ledgers, the engine's
//! front file stays short, and every comment command is one file with a pure plan and its
//! tests.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn sql_lives_only_in_the_ledgers() {
    let mut files = Vec::new();
    sources(&root().join("src"), &mut files);
    let allowed = ["src/engine/ledger.rs", "src/queue/"];
    let words = [
        "sqlx::query",
        "SELECT ",
        "INSERT INTO",
        "UPDATE engine",
        "DELETE FROM",
    ];
    let mut found = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if allowed.iter().any(|a| rel.starts_with(a)) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for w in words {
            if text.contains(w) {
                found.push(format!("{rel}: {w}"));
            }
        }
    }
    assert!(found.is_empty(), "SQL outside the ledgers: {found:#?}");
}

#[test]
fn the_engine_front_file_stays_short() {
    let text = std::fs::read_to_string(root().join("src/engine/mod.rs")).unwrap();
    let lines = text.lines().count();
    assert!(lines < 400, "src/engine/mod.rs has {lines} lines");
}

#[test]
fn every_command_is_one_file_with_a_pure_plan_and_its_tests() {
    let dir = root().join("src/commands");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|f| f == "mod.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display();
        assert!(text.contains("fn plan("), "{name}: no `fn plan`");
        assert!(text.contains("#[cfg(test)]"), "{name}: no tests");
        // Pure: a plan reads what it is given, it does not call the forge or git.
        assert!(
            !text.contains(".await") && !text.contains("git2::"),
            "{name}: a plan does I/O"
        );
        n += 1;
    }
    assert!(n >= 10, "only {n} command files");
}
