//! `trunkwarden ci diagnose` on real logs: a small crate is broken in each way the real tools
//! report (cargo test, clippy, rustfmt, rustc), their output is captured as a CI job would, and
//! the diagnosis must name the class, the failing tests and the errors — with a token printed in
//! the log masked, also inside a GitHub Actions envelope (timestamps, ANSI colours).

mod support;

use std::path::Path;
use std::process::Command;

use support::diagnose;
use support::git::{BIN, TOKEN};

/// A one-file library crate in `dir` whose `src/lib.rs` is `lib`.
fn crate_with(dir: &Path, lib: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), lib).unwrap();
}

/// What a CI job's log holds for `cargo <args>`: stdout and stderr, in one stream.
fn cargo_log(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("CARGO_TERM_COLOR", "always")
        .output()
        .unwrap();
    assert!(!out.status.success(), "cargo {args:?} was meant to fail");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn real_cargo_logs_are_classified_with_their_tests_and_locations() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path();

    // Tests that fail, one printing a token as a careless test might.
    crate_with(
        c,
        &format!(
            "pub fn add(a: u32, b: u32) -> u32 {{ a + b }}\n\n#[cfg(test)]\nmod tests {{\n    #[test]\n    fn adds() {{ assert_eq!(super::add(1, 1), 3); }}\n    #[test]\n    fn leaks() {{ println!(\"token {TOKEN}\"); panic!(\"boom\"); }}\n    #[test]\n    fn passes() {{ assert_eq!(super::add(1, 1), 2); }}\n}}\n"
        ),
    );
    let log = cargo_log(c, &["test", "--offline", "--color", "always"]);
    let d = diagnose(&log);
    assert_eq!(d["class"], "test", "{d:#}\n{log}");
    let mut failing: Vec<&str> = d["failing"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    failing.sort();
    assert_eq!(failing, ["tests::adds", "tests::leaks"], "{d:#}");
    assert!(
        d["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("panicked at src/lib.rs:6")),
        "{d:#}"
    );
    // The same log as GitHub Actions stores it: a timestamp before every line.
    let github: String = log
        .lines()
        .map(|l| format!("2026-12-07T10:00:00.1234567Z {l}\n"))
        .collect();
    let d2 = diagnose(&github);
    assert_eq!(d2["failing"], d["failing"]);
    // A log that says nothing recognisable is shown by its last lines: masked too.
    let d3 = diagnose(&format!(
        "2026-12-07T10:00:01.0000000Z remote: using GITHUB_TOKEN={TOKEN}\nfatal: authentication failed\n"
    ));
    assert_eq!(d3["class"], "unknown");
    assert!(d3["tail"].to_string().contains("ghp_…FLh2"), "{d3:#}");
    let all = format!("{d:#}{d2:#}{d3:#}");
    assert!(
        !all.contains(TOKEN),
        "a token reached the diagnosis:\n{all}"
    );

    // It does not compile.
    crate_with(c, "pub fn n() -> u32 { \"one\" }\n");
    let d = diagnose(&cargo_log(c, &["build", "--offline"]));
    assert_eq!(d["class"], "build", "{d:#}");
    let first = d["errors"][0].as_str().unwrap();
    assert!(
        first.starts_with("error[E0308]") && first.contains("src/lib.rs:1:"),
        "{d:#}"
    );

    // Clippy refuses it.
    crate_with(c, "pub fn n(v: &Vec<u8>) -> usize { v.len() }\n");
    let d = diagnose(&cargo_log(
        c,
        &["clippy", "--offline", "--", "-D", "warnings"],
    ));
    assert_eq!(d["class"], "lint", "{d:#}");

    // rustfmt refuses it.
    crate_with(c, "pub fn n( )->u32{1}\n");
    let d = diagnose(&cargo_log(c, &["fmt", "--check"]));
    assert_eq!(d["class"], "lint", "{d:#}");
    assert!(
        d["errors"][0].as_str().unwrap().contains("src/lib.rs"),
        "{d:#}"
    );
}

#[test]
fn a_file_that_is_not_there_is_a_clear_error() {
    let out = Command::new(BIN)
        .args(["ci", "diagnose", "/nonexistent/job.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/job.log"));
}
