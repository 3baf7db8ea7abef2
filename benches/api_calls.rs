//! What the forge's API pays for 20 pull requests: each is opened, commented on, goes green on
//! its head, is squash-merged, pushed to the trunk and goes pending then green there — against
//! the fake forge of every dialect. Prints the calls per pull request, by cause, and how many
//! re-reads the forge answered `304 Not Modified` (free against GitHub's budget), and the bot's
//! commits per task. Run with `cargo bench --bench api_calls`.

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use support::fake_forge::{Ci, FakeForge, Happening};
use support::git::{Sandbox, write};
use support::story::{SECRET, TOKEN, open_engine_with};
use trunkwarden::queue::worker::Handler as _;

const PRS: u64 = 20;

/// A request's cause: its method and path with numbers and commit ids generalized.
fn cause(method: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let generic: Vec<String> = path
        .split('/')
        .map(|seg| {
            if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                "{n}".to_owned()
            } else if seg.len() == 40 && seg.bytes().all(|b| b.is_ascii_hexdigit()) {
                "{sha}".to_owned()
            } else {
                seg.to_owned()
            }
        })
        .collect();
    format!("{method} {}", generic.join("/"))
}

fn table() -> String {
    let mut s = String::from(
        "# Tasks\n\n| id | status | description | issue | depends_on | blocks | branch | agent | started_at | completed_at | notes |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for i in 1..=PRS {
        s.push_str(&format!(
            "| T-{i} | not-started | work {i} | #{} | | | | | | | |\n",
            100 + i
        ));
    }
    s
}

struct Run {
    calls: usize,
    not_modified: usize,
    causes: BTreeMap<String, usize>,
    bot_commits: usize,
    done: usize,
}

async fn run(kind: &'static str) -> Run {
    let sb = Sandbox::in_memory();
    let work = sb.repo("w");
    write(&work, "docs/TASKS.md", &table());
    sb.ok(&work, &["add", "-A"]);
    sb.ok(&work, &["commit", "-q", "-m", "chore: tasks"]);
    let origin = sb.bare("origin.git");
    let o = origin.to_str().unwrap();
    sb.ok(&work, &["push", "-q", o, "HEAD:refs/heads/main"]);
    for i in 1..=PRS {
        sb.ok(&work, &["checkout", "-q", "-B", &format!("t-{i}"), "main"]);
        write(
            &work,
            format!("src/t{i}.rs"),
            &format!("pub fn t{i}() {{}}\n"),
        );
        sb.ok(&work, &["add", "-A"]);
        sb.ok(
            &work,
            &["commit", "-q", "-m", &format!("feat(T-{i}): work")],
        );
        sb.ok(&work, &["push", "-q", o, &format!("t-{i}")]);
    }
    let fake = FakeForge::start(kind, TOKEN, origin.clone()).await;
    {
        let mut f = fake.state.lock().unwrap();
        for i in 1..=PRS {
            f.issues.insert(100 + i, true);
        }
    }
    let clock = Arc::new(support::ManualClock::now());
    let engine = open_engine_with(
        kind,
        &fake,
        &sb,
        &origin,
        None,
        clock,
        TOKEN,
        Default::default(),
    )
    .await;
    let engine = &engine;
    let handle = |what: Happening| {
        let fx = fake.delivery(&what, SECRET);
        async move {
            if let Some((d, event)) = support::delivery_event(&fx) {
                engine.handle(&d, &event).await.expect("handled");
            }
        }
    };
    let ci = |sha: &str, state: &str| {
        fake.state.lock().unwrap().ci.push(Ci {
            sha: sha.into(),
            context: "ci/build".into(),
            state: state.into(),
            conclusion: None,
            reporter: "ci-bot".into(),
            target_url: None,
            check_run: false,
        });
    };
    let status = |sha: &str, success: bool| Happening::Status {
        sha: sha.into(),
        context: "ci/build".into(),
        success,
    };
    let (success, pending) = ("success", "pending");

    for i in 1..=PRS {
        fake.add_pull(
            i,
            "alice",
            &format!("t-{i}"),
            &format!("feat(T-{i}): work"),
            &format!("Refs #{}", 100 + i),
        );
        handle(Happening::PrOpened(i)).await;
    }
    for i in 1..=PRS {
        handle(Happening::Comment {
            number: i,
            comment_id: 9000 + i,
            body: "@trunkwarden status".into(),
            author: "alice".into(),
            previous: None,
        })
        .await;
    }
    for i in 1..=PRS {
        let head = fake.state.lock().unwrap().pulls[&i].head_sha.clone();
        ci(&head, success);
        handle(status(&head, true)).await;
    }
    for i in 1..=PRS {
        let before = sb.ok(&origin, &["rev-parse", "main"]);
        let merge = fake.merge_pull(i, &format!("feat(T-{i}): work (#{i})"));
        handle(Happening::PrMerged(i)).await;
        handle(Happening::Push {
            before,
            after: merge.clone(),
        })
        .await;
        ci(&merge, pending);
        handle(status(&merge, false)).await;
        ci(&merge, success);
        handle(status(&merge, true)).await;
    }

    let f = fake.state.lock().unwrap();
    if let Ok(path) = std::env::var("API_CALLS_DUMP") {
        let lines: Vec<String> = f
            .requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        std::fs::write(format!("{path}.{kind}"), lines.join("\n")).unwrap();
    }
    let mut causes = BTreeMap::new();
    for r in &f.requests {
        *causes.entry(cause(&r.method, &r.path)).or_default() += 1;
    }
    let log = sb.ok(&origin, &["log", "--format=%ae", "main"]);
    let table = sb.ok(&origin, &["show", "main:docs/TASKS.md"]);
    Run {
        calls: f.requests.len(),
        not_modified: f.not_modified,
        causes,
        bot_commits: log
            .lines()
            .filter(|l| *l == "trunkwarden@users.noreply.invalid")
            .count(),
        done: table.lines().filter(|l| l.contains("| done |")).count(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "{PRS} pull requests: open → comment → green head → squash-merge → push → pending → green on the trunk\n"
    );
    for kind in ["github", "gitea", "gitlab"] {
        let r = run(kind).await;
        assert_eq!(r.done as u64, PRS, "{kind}: every task done");
        let charged = r.calls - r.not_modified;
        println!(
            "{kind:>7}: {:>5} calls, {:>5.1} per PR, {:>4} answered 304; {:>5.1} per PR charged to the rate limit; {:.1} bot commits per task",
            r.calls,
            r.calls as f64 / PRS as f64,
            r.not_modified,
            charged as f64 / PRS as f64,
            r.bot_commits as f64 / PRS as f64
        );
        let mut by: Vec<_> = r.causes.into_iter().collect();
        by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (cause, n) in by {
            println!(
                "         {n:>5}  {:>5.1}/PR  {cause}",
                n as f64 / PRS as f64
            );
        }
        println!();
    }
}
