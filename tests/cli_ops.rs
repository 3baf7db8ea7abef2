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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_in_json_says_times_in_rfc3339() {
    use trunkwarden::event::ForgeKind;
    use trunkwarden::queue::{NewDelivery, Store, Sync, now_ms};
    let sb = Sandbox::new();
    let data = sb.path("data");
    std::fs::create_dir_all(&data).unwrap();
    {
        let store = Store::connect(None, &data, Sync::Full).await.unwrap();
        store
            .insert(NewDelivery {
                forge: ForgeKind::Github,
                hook_id: "1".into(),
                delivery_id: "d-1".into(),
                event: "push".into(),
                headers: r#"{"x-github-event":"push"}"#.into(),
                body: b"{}".to_vec().into(),
                received_at: now_ms(),
            })
            .await
            .unwrap();
    }
    let d = data.to_str().unwrap();
    let out = sb.tw(
        sb.dir.path(),
        &["deliveries", "list", "--format", "json", "--data-dir", d],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let at = rows[0]["received_at"].as_str().expect("a string");
    let parsed = chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339");
    let age = chrono::Utc::now().signed_duration_since(parsed);
    assert!(age.num_seconds().abs() < 60, "{at}");
}

#[test]
fn an_unreachable_postgres_is_named_with_its_cause_not_a_pool_timeout() {
    let sb = Sandbox::new();
    // A port nothing listens on: refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://trunkwarden@127.0.0.1:{port}/test");
    let started = std::time::Instant::now();
    let out = sb.tw(
        sb.dir.path(),
        &["deliveries", "list", "--db", &url],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused") && !err.contains("timed out"),
        "{err}"
    );
    // The pool's 30 s acquire timeout is not waited out.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
