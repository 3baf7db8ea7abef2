//! What operators and shells get from the binary: completions a real shell loads, a man page,
//! JSON logs with the span fields, and one line saying which forges are heard.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::git::{BIN, Sandbox, text};

#[test]
fn bash_loads_the_completions_and_they_name_the_subcommands() {
    let sb = Sandbox::new();
    let out = sb.tw(sb.dir.path(), &["completions", "bash"], None, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let script = sb.path("tw.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    // Loaded by bash itself, then asked to complete `trunkwarden ho`.
    let probe = format!(
        "source '{}'; COMP_WORDS=(trunkwarden ho); COMP_CWORD=1; COMP_LINE='trunkwarden ho'; COMP_POINT=14; _trunkwarden trunkwarden ho trunkwarden; echo \"${{COMPREPLY[*]}}\"",
        script.display()
    );
    let done = Command::new("bash").args(["-c", &probe]).output().unwrap();
    let words = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(words.contains("hook") && words.contains("hooks"), "{words}");
    let bad = sb.tw(sb.dir.path(), &["completions", "tcsh"], None, &[]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

#[test]
fn the_man_page_is_roff_naming_every_subcommand() {
    let sb = Sandbox::new();
    let out = sb.tw(sb.dir.path(), &["man"], None, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH trunkwarden 1"), "{page}");
    for sub in ["serve", "scan", "hooks", "doctor", "completions"] {
        assert!(page.contains(sub), "{sub} missing");
    }
}

#[test]
fn serve_logs_json_lines_and_names_the_forges_it_hears_once() {
    let sb = Sandbox::new();
    let mut child = sb
        .command(BIN, sb.dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(sb.path("data"))
        .env("TRUNKWARDEN_LOG_FORMAT", "json")
        .env("TRUNKWARDEN_GITHUB_WEBHOOK_SECRET", "s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let listening = line.contains("serve listening");
        lines.push(line);
        if listening {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
    }
    let heard: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("accepting signed"))
        .collect();
    assert_eq!(heard.len(), 1, "{lines:#?}");
    assert!(
        heard[0].contains("\"refusing\":\"gitea, forgejo, gitlab\""),
        "{}",
        heard[0]
    );
    assert!(
        !lines.iter().any(|l| l.contains("no secret configured")),
        "{lines:#?}"
    );
}
