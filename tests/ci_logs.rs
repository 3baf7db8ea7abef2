//! Failed CI jobs' logs, read from each forge's own CI and from Woodpecker. A real `cargo test`
//! failure, wrapped in the envelope each CI writes its logs in, goes red on a pull request's
//! head → the diagnosis is in the task's notes and in the sticky comment → a rerun on the same
//! commit passes (flaky, noted once in the learnings) → merged, green on the squash commit →
//! done. A token the failing test printed never reaches the notes, the comments or the bot's
//! own log.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use support::fake_ci::FakeWoodpecker;
use support::fake_forge::Happening;
use support::git::TOKEN as LEAKED;
use support::story::Story;
use trunkwarden::forge::Token;
use trunkwarden::forge::woodpecker::Woodpecker;

/// The bot's own log, as every test in this binary writes it.
fn bot_log() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || Writer(log))
            .try_init();
        log
    })
}

struct Writer(&'static Mutex<Vec<u8>>);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What `cargo test` prints for a crate with a failing test and a test that prints a token
/// before it panics: run once, for real.
fn cargo_failure() -> &'static str {
    static LOG: OnceLock<String> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        std::fs::create_dir_all(c.join("src")).unwrap();
        std::fs::write(
            c.join("Cargo.toml"),
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
        )
        .unwrap();
        std::fs::write(
            c.join("src/lib.rs"),
            format!(
                "pub fn add(a: u32, b: u32) -> u32 {{ a + b }}\n\n#[cfg(test)]\nmod tests {{\n    #[test]\n    fn adds() {{ assert_eq!(super::add(1, 1), 3); }}\n    #[test]\n    fn talks() {{ println!(\"using {LEAKED}\"); panic!(\"the issuer rejected {LEAKED}\"); }}\n}}\n"
            ),
        )
        .unwrap();
        run_cargo(c)
    })
}

fn run_cargo(dir: &Path) -> String {
    let out = Command::new(env!("CARGO"))
        .args(["test", "--offline"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("CARGO_TERM_COLOR", "always")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the crate's tests were meant to fail"
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// The log as each CI writes it around a step's output.
fn envelope(kind: &str, output: &str) -> String {
    match kind {
        // GitHub and Gitea Actions: a timestamp on every line, the step in a group.
        "github" | "gitea" => {
            let mut out = String::from("2026-12-07T10:00:00.0000000Z ##[group]Run cargo test\n");
            for l in output.lines() {
                out.push_str(&format!("2026-12-07T10:00:01.1234567Z {l}\n"));
            }
            out.push_str(
                "2026-12-07T10:00:02.0000000Z ##[error]Process completed with exit code 101.\n",
            );
            out
        }
        // GitLab: collapsible sections with their markers, ANSI colours.
        _ => format!(
            "\u{1b}[0KRunning with gitlab-runner 17.5.0\nsection_start:1765101600:step_script\r\u{1b}[0K\u{1b}[0K\u{1b}[36;1mExecuting \"step_script\" stage of the job script\u{1b}[0;m\n\u{1b}[32;1m$ cargo test\u{1b}[0;m\n{output}section_end:1765101660:step_script\r\u{1b}[0K\n\u{1b}[31;1mERROR: Job failed: exit code 101\n\u{1b}[0;m\n"
        ),
    }
}

/// The story: red with a diagnosis, a rerun that passes (flaky), merged, green, done. `fail`
/// makes the job fail with a log and returns its context; `pass` reruns it, passing.
async fn red_diagnosed_then_done(
    s: &Story,
    fail: impl Fn(&Story, &str) -> String,
    pass: impl Fn(&Story, &str, &str),
) {
    let _ = bot_log();
    let head = s.sb.ok(&s.origin, &["rev-parse", "t-1-oidc"]);
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    s.send(&Happening::PrOpened(7)).await;
    s.until("T-1 in progress", |s| s.row("T-1").contains("in-progress"))
        .await;

    let context = fail(s, &head);
    s.send(&Happening::Status {
        sha: head.clone(),
        context: context.clone(),
        success: false,
    })
    .await;
    s.until("the diagnosis in the notes", |s| {
        s.row("T-1").contains("CI red (test): 2 failing")
    })
    .await;
    let row = s.row("T-1");
    assert!(
        row.contains("tests::adds") && row.contains("tests::talks"),
        "{row}"
    );
    s.until("the excerpt in the sticky comment", |s| {
        s.sticky(7).contains("<details>")
    })
    .await;
    let sticky = s.sticky(7);
    assert!(sticky.contains("the issuer rejected ghp_…"), "{sticky}");
    assert!(!sticky.contains(LEAKED), "{sticky}");
    assert!(sticky.contains("[The job's log]("), "{sticky}");

    // The same commit passes on a rerun: the note clears, the flake is learned once.
    pass(s, &head, &context);
    s.send(&Happening::Status {
        sha: head.clone(),
        context: context.clone(),
        success: true,
    })
    .await;
    s.until("the failure cleared", |s| !s.row("T-1").contains("CI red"))
        .await;
    let learnings = s.sb.ok(
        &s.origin,
        &["show", "main:docs/tasks/orchestrator-learnings.json"],
    );
    assert!(
        learnings.contains("\"flaky\"") && learnings.contains(&context),
        "{learnings}"
    );
    s.send(&Happening::Status {
        sha: head.clone(),
        context: context.clone(),
        success: true,
    })
    .await;
    s.idle().await;
    let learnings = s.sb.ok(
        &s.origin,
        &["show", "main:docs/tasks/orchestrator-learnings.json"],
    );
    assert_eq!(learnings.matches("\"flaky\"").count(), 1, "{learnings}");

    let merge = s.merge().await;
    s.send(&Happening::PrMerged(7)).await;
    pass(s, &merge, &context);
    s.send(&Happening::Status {
        sha: merge.clone(),
        context: context.clone(),
        success: true,
    })
    .await;
    s.until("done", |s| {
        s.row("T-1").contains("| done ") && !s.issue_open(3)
    })
    .await;

    // The token the test printed is masked everywhere the bot wrote.
    s.idle().await;
    let comments: String = {
        let f = s.fake.state.lock().unwrap();
        f.comments.iter().map(|c| c.body.clone()).collect()
    };
    let history = s.sb.ok(&s.origin, &["log", "-p", "main"]);
    let log = String::from_utf8_lossy(&bot_log().lock().unwrap()).into_owned();
    for (what, text) in [
        ("comments", &comments),
        ("history", &history),
        ("bot log", &log),
    ] {
        assert!(!text.contains(LEAKED), "the token reached the {what}");
    }
    assert!(
        s.fake.contract_violations().is_empty(),
        "{:?}",
        s.fake.contract_violations()
    );
}

fn forge_job(s: &Story, sha: &str) -> String {
    let context = match s.fake.kind {
        "github" => "test",
        "gitlab" => "test",
        _ => "CI / test (pull_request)",
    };
    let kind = if s.fake.kind == "gitlab" {
        "gitlab"
    } else {
        "github"
    };
    s.fake
        .fail_job(sha, context, envelope(kind, cargo_failure()));
    context.to_owned()
}

fn forge_pass(s: &Story, sha: &str, context: &str) {
    s.fake.pass_job(sha, context);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_actions_job_logs_are_followed_through_their_redirect() {
    let s = Story::new("github").await;
    red_diagnosed_then_done(&s, forge_job, forge_pass).await;
    let f = s.fake.state.lock().unwrap();
    assert!(
        f.requests.iter().any(|r| r.path.ends_with("/logs")),
        "the job's log was asked for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_job_traces_are_read_with_their_section_markers() {
    let s = Story::new("gitlab").await;
    red_diagnosed_then_done(&s, forge_job, forge_pass).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_actions_jobs_are_found_among_the_commits_runs() {
    let s = Story::new("gitea").await;
    red_diagnosed_then_done(&s, forge_job, forge_pass).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woodpecker_steps_are_read_through_its_api_with_its_token() {
    let wp = FakeWoodpecker::start("woodpecker-token").await;
    let reader = Woodpecker::new(
        trunkwarden::forge::ForgeKind::Gitea,
        &wp.url,
        Token::new("woodpecker-token"),
    )
    .unwrap();
    let s = Story::with_woodpecker("gitea", Arc::new(reader)).await;
    let wp = Arc::new(wp);
    let (w1, w2) = (wp.clone(), wp.clone());
    red_diagnosed_then_done(
        &s,
        move |s, sha| {
            let url = w1.failed_pipeline(12, 40, "test", cargo_failure());
            let context = "ci/woodpecker/pr/test";
            s.fake
                .state
                .lock()
                .unwrap()
                .ci
                .push(support::fake_forge::Ci {
                    sha: sha.to_owned(),
                    context: context.into(),
                    state: "failure".into(),
                    conclusion: None,
                    reporter: "woodpecker".into(),
                    target_url: Some(url),
                    check_run: false,
                });
            context.to_owned()
        },
        move |s, sha, context| {
            let _ = &w2;
            s.ci(sha, context, "success");
        },
    )
    .await;
    let asked = wp.state.lock().unwrap().requests.clone();
    assert!(
        asked.iter().any(|p| p == "/api/repos/12/logs/40/91"),
        "the failed step's log was read: {asked:?}"
    );
    assert!(
        !asked.iter().any(|p| p.ends_with("/90")),
        "only failed steps are read: {asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_larger_than_the_tail_is_read_from_its_end() {
    let _ = bot_log();
    let s = Story::new("github").await;
    let head = s.sb.ok(&s.origin, &["rev-parse", "t-1-oidc"]);
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    // 24 MiB of noise, then the real failure.
    let mut log = String::with_capacity(25 << 20);
    while log.len() < 24 << 20 {
        log.push_str(
            "2026-12-07T10:00:00.0000000Z    Compiling a-crate v1.0.0 (noise noise noise)\n",
        );
    }
    log.push_str(&envelope("github", cargo_failure()));
    s.fake.fail_job(&head, "test", log);
    s.send(&Happening::PrOpened(7)).await;
    s.until("the diagnosis in the notes", |s| {
        s.row("T-1").contains("CI red (test): 2 failing")
    })
    .await;
    s.until("the excerpt", |s| s.sticky(7).contains("<details>"))
        .await;
    assert!(
        s.sticky(7).contains("(its last 8.0 MiB of 24."),
        "{}",
        s.sticky(7)
    );
    let f = s.fake.state.lock().unwrap();
    let asked = f
        .requests
        .iter()
        .filter(|r| r.path.ends_with("/logs"))
        .count();
    assert_eq!(asked, 1, "one log read, however many passes");
}
