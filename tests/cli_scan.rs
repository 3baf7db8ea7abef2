//! `trunkwarden scan` as a user runs it: real files, a real git repository for .gitignore.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const TOKEN: &str = "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";

fn tw(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trunkwarden"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// (path, rule) of each finding of a `--format json` scan, sorted.
fn found(o: &Output) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut got: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap().trim_start_matches("./");
            (path.to_owned(), f["rule"].as_str().unwrap().to_owned())
        })
        .collect();
    got.sort();
    got
}

fn repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let ok = Command::new("git")
        .args(["init", "-q"])
        .current_dir(d.path())
        .status()
        .unwrap();
    assert!(ok.success());
    d
}

#[test]
fn clean_tree_exits_0_and_a_secret_exits_1() {
    let d = repo();
    std::fs::write(
        d.path().join("main.rs"),
        "fn main() { println!(\"hi\"); }\n",
    )
    .unwrap();
    let o = tw(d.path(), &["scan"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(stdout(&o), "");

    std::fs::create_dir(d.path().join("conf")).unwrap();
    std::fs::write(d.path().join("conf/.env"), format!("GH={TOKEN}\n")).unwrap();
    let o = tw(d.path(), &["scan"], None);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.starts_with("conf/.env:1:4: github-pat: "), "{out}");
    assert!(!out.contains(TOKEN), "whole secret printed");
}

#[test]
fn gitignored_and_binary_files_are_skipped_unless_asked() {
    let d = repo();
    std::fs::write(d.path().join(".gitignore"), "build/\n").unwrap();
    std::fs::create_dir(d.path().join("build")).unwrap();
    std::fs::write(d.path().join("build/out.txt"), TOKEN).unwrap();
    let mut bin = b"\x7fELF\x00\x00".to_vec();
    bin.extend_from_slice(TOKEN.as_bytes());
    std::fs::write(d.path().join("tool.bin"), bin).unwrap();
    assert_eq!(tw(d.path(), &["scan"], None).status.code(), Some(0));
    let o = tw(d.path(), &["scan", "--no-ignore"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("build/out.txt"));
    assert!(!stdout(&o).contains("tool.bin"));
    // Oversized files are skipped and said so.
    let o = tw(
        d.path(),
        &["scan", "--no-ignore", "--max-file-size", "10"],
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("skipped"));
}

#[test]
fn stdin_json_and_sarif() {
    let d = tempfile::tempdir().unwrap();
    let input = format!("token: {TOKEN}\n");
    let o = tw(d.path(), &["scan", "-", "--format", "json"], Some(&input));
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["rule"], "github-pat");
    assert_eq!(v[0]["path"], "-");
    assert_eq!(v[0]["line"], 1);
    assert!(!String::from_utf8_lossy(&o.stdout).contains(TOKEN));

    let o = tw(d.path(), &["scan", "-", "--format", "sarif"], Some(&input));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["rules"][0]["id"], "github-pat");
    assert_eq!(
        run["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        1
    );
    assert!(run["results"][0]["partialFingerprints"]["trunkwarden/v1"].is_string());

    let o = tw(d.path(), &["scan", "missing-file"], None);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn list_rules_says_what_is_in_force_and_where_it_came_from() {
    let d = repo();
    std::fs::write(
        d.path().join(".trunkwarden.toml"),
        r#"
[secrets]
disable = ["jwt"]

[[secrets.rule]]
id = "acme-token"
description = "ACME internal API token"
keywords = ["acme_"]
regex = '''\b(?P<secret>acme_[A-Za-z0-9]{18})\b'''
examples = ["ACME_TOKEN=acme_Zk38QpLm20XvBn71Rt"]
negatives = ["acme_short"]

[[secrets.rule]]
id = "github-pat"
description = "GitHub token after GH="
keywords = ["GH=ghp_"]
regex = '''GH=(?P<secret>ghp_[A-Za-z0-9]{36})\b'''
checksum = "github-crc32"
"#,
    )
    .unwrap();
    let o = tw(d.path(), &["scan", "--list-rules"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    let line = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("acme-token").contains(".trunkwarden.toml"), "{text}");
    assert!(line("github-pat").contains("replaces built-in"), "{text}");
    assert!(line("aws-access-key-id").contains("built-in"));
    assert!(line("jwt").contains("off"), "{text}");
    let o = tw(
        d.path(),
        &["scan", "--list-rules", "--format", "json"],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"acme-token") && !ids.contains(&"jwt"));
    assert_eq!(v["disabled"][0], "jwt");
}

#[test]
fn a_gitleaks_configuration_and_ignore_file_carry_over() {
    let d = repo();
    let w = |name: &str, text: &str| {
        let p = d.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        ".gitleaks.toml",
        r#"
title = "team rules"
[extend]
useDefault = true

[allowlist]
description = "test fixtures"
paths = ['''^fixtures/''']

[[rules]]
id = "acme-key"
description = "ACME key"
regex = '''acme_key\s*=\s*"([A-Za-z0-9]{20})"'''
secretGroup = 1
keywords = ["acme_key"]

[[rules]]
id = "internal-host-token"
regex = '''iht-[0-9a-f]{16}'''
[rules.allowlist]
stopwords = ["0000"]
"#,
    );
    w("app.cfg", "acme_key = \"Zk38QpLm20XvBn71RtQa\"\n");
    w("fixtures/app.cfg", "acme_key = \"Zk38QpLm20XvBn71RtQa\"\n");
    w(
        "hosts.txt",
        "a iht-9f1c2ab37d4e5f60\nb iht-00001234abcdef00\n",
    );
    w("legacy.env", &format!("GH={TOKEN}\n"));
    w(".gitleaksignore", "legacy.env:github-pat:1\n");
    let o = tw(d.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        found(&o),
        vec![
            ("app.cfg".to_owned(), "acme-key".to_owned()),
            ("hosts.txt".to_owned(), "internal-host-token".to_owned()),
        ],
        "the fixture path, the stop-word and the ignored place are not reported"
    );
    let masked = v[0]["masked"].as_str().unwrap().to_owned() + v[1]["masked"].as_str().unwrap();
    assert!(
        !masked.contains("Zk38QpLm20XvBn71RtQa"),
        "the secret group is what is masked"
    );
    let notes = String::from_utf8_lossy(&o.stderr);
    assert!(notes.contains("useDefault"), "{notes}");
    let o = tw(d.path(), &["scan", "--list-rules"], None);
    let list = stdout(&o);
    assert!(
        list.lines()
            .any(|l| l.starts_with("acme-key ") && l.contains(".gitleaks.toml")),
        "{list}"
    );
}

#[test]
fn keys_in_test_data_are_fixtures_unless_the_policy_asks() {
    let d = repo();
    let key = {
        let body: String = (0..8)
            .map(|i| format!("mqmALOR2HcSGKgVP8Kd0d3mS8gBlKv3azKgaS+m+x/SHuKBD/vok+nPTmZY{i:05}\n"))
            .collect();
        format!("-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----\n")
    };
    for p in [
        "tests/certs/server.key",
        "crypto/dsa_test.cc",
        "deploy/server.key",
    ] {
        let path = d.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &key).unwrap();
    }
    let paths = |o: &Output| -> Vec<String> { found(o).into_iter().map(|(p, _)| p).collect() };
    let o = tw(d.path(), &["scan", "--format", "json"], None);
    assert_eq!(paths(&o), vec!["deploy/server.key"]);
    std::fs::write(
        d.path().join(".trunkwarden.toml"),
        "[secrets]\nreport-test-keys = true\n",
    )
    .unwrap();
    let o = tw(d.path(), &["scan", "--format", "json"], None);
    assert_eq!(
        paths(&o),
        vec![
            "crypto/dsa_test.cc",
            "deploy/server.key",
            "tests/certs/server.key"
        ]
    );
}
