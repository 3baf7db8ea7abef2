//! The task engine end to end: signed deliveries from the fake forge through the real router
//! and ledger to the engine, which reads the fake forge and a real bare repository, closes
//! issues, and pushes the task table.

mod support;

use std::time::Instant;

use support::fake_forge::Happening;
use support::git::write;
use support::story::{SECRET, Story, TOKEN};
use trunkwarden::forge::{self, Forge, RepoRef, Retry, Token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_happy_path_closes_the_issue_only_after_green_on_main() {
    let s = Story::new("github").await;
    let head = s.sb.ok(&s.origin, &["rev-parse", "t-1-oidc"]);
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );

    // PR opened → in-progress, agent, started_at, branch.
    s.send(&Happening::PrOpened(7)).await;
    s.until("T-1 in progress", |s| s.row("T-1").contains("in-progress"))
        .await;
    let row = s.row("T-1");
    assert!(
        row.contains("| alice ") && row.contains("| t-1-oidc ") && row.contains("| PR #7 "),
        "{row}"
    );

    // CI fails on the head → noted, still in progress.
    s.ci(&head, "ci/build", "failure");
    s.send(&Happening::Status {
        sha: head.clone(),
        context: "ci/build".into(),
        success: false,
    })
    .await;
    s.until("failure noted", |s| s.row("T-1").contains("CI failing"))
        .await;
    assert!(s.row("T-1").contains("in-progress"));

    // CI passes → the note clears.
    s.ci(&head, "ci/build", "success");
    s.send(&Happening::Status {
        sha: head.clone(),
        context: "ci/build".into(),
        success: true,
    })
    .await;
    s.until("failure cleared", |s| !s.row("T-1").contains("CI failing"))
        .await;

    // Squash merge; CI on main pending → the issue stays open, the task is not done.
    let gh = forge::github::Github::new(&s.fake.url, Token::new(TOKEN), Retry::default()).unwrap();
    let repo = RepoRef::parse("acme/app").unwrap();
    let merge = gh
        .squash_merge(&repo, 7, &head, "feat(T-1): check the issuer (#7)", "")
        .await
        .unwrap();
    s.ci(&merge, "ci/build", "pending");
    s.send(&Happening::PrMerged(7)).await;
    s.send(&Happening::Status {
        sha: merge.clone(),
        context: "ci/build".into(),
        success: false,
    })
    .await;
    s.until("merge noted", |s| s.sticky(7).contains("waiting for CI"))
        .await;
    s.idle().await;
    assert!(s.issue_open(3), "closed before CI on main was green");
    assert!(s.row("T-1").contains("in-progress"), "{}", s.row("T-1"));

    // CI green on the merge commit → issue closed, task done with evidence, T-2 ready.
    s.ci(&merge, "ci/build", "success");
    let t = Instant::now();
    s.send(&Happening::Status {
        sha: merge.clone(),
        context: "ci/build".into(),
        success: true,
    })
    .await;
    s.until("done", |s| {
        s.row("T-1").contains("| done ") && !s.issue_open(3)
    })
    .await;
    eprintln!(
        "CI-green delivery → TASKS.md pushed and issue closed: {:?}",
        t.elapsed()
    );
    let row = s.row("T-1");
    assert!(
        row.contains(&format!(
            "squash-merged as {}; CI green (ci/build); closed #3",
            &merge[..7]
        )),
        "{row}"
    );
    // The sticky comment follows the commit: wait for it rather than race it.
    s.until("the sticky comment names T-2 as ready", |s| {
        s.fake.state.lock().unwrap().comments.iter().any(|c| {
            c.thread == (false, 7)
                && c.body.contains("trunkwarden:task")
                && c.body.contains("Ready to start now: T-2")
        })
    })
    .await;
    let closing = s
        .fake
        .state
        .lock()
        .unwrap()
        .comments
        .iter()
        .any(|c| c.thread == (false, 3) && c.body.contains("CI on the merge commit is green"));
    assert!(closing, "the issue got a closing comment");

    // History: one bot commit per change, each touching only T-1's row.
    let log = s.sb.ok(
        &s.origin,
        &["log", "--format=%H %ae %s", "--", "docs/TASKS.md"],
    );
    let bot_commits: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("trunkwarden@users.noreply.invalid"))
        .collect();
    // In progress, the head's failure, its clearing, done: the wait for CI on the trunk is in
    // the sticky comment, not a commit of its own (each commit runs the trunk's CI).
    assert_eq!(bot_commits.len(), 4, "{log}");
    for c in &bot_commits {
        let sha = c.split(' ').next().unwrap();
        let body = s.sb.ok(&s.origin, &["log", "-1", "--format=%B", sha]);
        assert!(body.contains("\n\n[skip ci]"), "no CI skip marker: {body}");
        let diff = s.sb.ok(
            &s.origin,
            &[
                "diff",
                "-U0",
                &format!("{sha}~1"),
                sha,
                "--",
                "docs/TASKS.md",
            ],
        );
        let lines: Vec<&str> = diff
            .lines()
            .filter(|l| {
                (l.starts_with('+') || l.starts_with('-'))
                    && !l.starts_with("+++")
                    && !l.starts_with("---")
            })
            .collect();
        assert_eq!(lines.len(), 2, "{diff}");
        assert!(lines.iter().all(|l| l[1..].starts_with("| T-1 ")), "{diff}");
    }
    let effects = s.engine.effects_done().await.unwrap();
    assert_eq!(effects, 1, "one issue closed");
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_shuffled_deliveries_converge_to_the_same_state_and_effects() {
    let s = Story::new("github").await;
    let head = s.sb.ok(&s.origin, &["rev-parse", "t-1-oidc"]);
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    s.ci(&head, "ci/build", "success");
    let merge = s.merge().await;
    s.ci(&merge, "ci/build", "success");
    let mut all = vec![
        Happening::PrOpened(7),
        Happening::Status {
            sha: head.clone(),
            context: "ci/build".into(),
            success: false,
        },
        Happening::Status {
            sha: head.clone(),
            context: "ci/build".into(),
            success: true,
        },
        Happening::PrMerged(7),
        Happening::Status {
            sha: merge.clone(),
            context: "ci/build".into(),
            success: false,
        },
        Happening::Status {
            sha: merge.clone(),
            context: "ci/build".into(),
            success: true,
        },
    ];
    all.extend(all.clone());
    // A fixed shuffle, so a failure reproduces.
    let order = [7, 2, 11, 0, 5, 9, 3, 10, 1, 8, 4, 6];
    let mut fixtures = Vec::new();
    for i in order {
        let fx = s.fake.delivery(&all[i], SECRET);
        fixtures.push(fx.clone());
        if i % 3 == 0 {
            fixtures.push(fx); // the very same delivery again: the ledger answers 200, once
        }
    }
    for fx in &fixtures {
        let (status, body) = support::post(&s.client, &s.url, fx).await;
        assert!(status == 202 || status == 200, "{status} {body}");
    }
    s.until("done", |s| s.row("T-1").contains("| done ")).await;
    s.idle().await;
    assert!(!s.issue_open(3));
    assert_eq!(
        s.engine.effects_done().await.unwrap(),
        1,
        "one closure, however many deliveries"
    );
    assert_eq!(
        s.bot_commits(),
        1,
        "one commit: straight to done with evidence"
    );
    let row = s.row("T-1");
    assert!(
        row.contains("| alice ")
            && row.contains("| t-1-oidc ")
            && row.contains("CI green (ci/build); closed #3"),
        "{row}"
    );
    let closing_comments = s
        .fake
        .state
        .lock()
        .unwrap()
        .comments
        .iter()
        .filter(|c| c.thread == (false, 3))
        .count();
    assert_eq!(closing_comments, 1);
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_after_merge_reopens_the_issue_the_forge_closed() {
    let s = Story::new("gitea").await;
    let head = s.sb.ok(&s.origin, &["rev-parse", "t-1-oidc"]);
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Closes #3",
    );
    s.ci(&head, "ci/build", "success");
    s.send(&Happening::PrOpened(7)).await;
    s.until("in progress", |s| s.row("T-1").contains("in-progress"))
        .await;
    let merge = s.merge().await;
    // The forge honours its closing keyword at merge time, before CI on main has run.
    s.fake.state.lock().unwrap().issues.insert(3, false);
    s.ci(&merge, "ci/build", "failure");
    s.send(&Happening::PrMerged(7)).await;
    s.send(&Happening::Status {
        sha: merge.clone(),
        context: "ci/build".into(),
        success: false,
    })
    .await;
    s.until("failed", |s| s.row("T-1").contains("| failed "))
        .await;
    s.until("reopened", |s| s.issue_open(3)).await;
    assert!(
        s.row("T-1").contains("CI on the trunk failed: ci/build"),
        "{}",
        s.row("T-1")
    );
    let said = s
        .fake
        .state
        .lock()
        .unwrap()
        .comments
        .iter()
        .any(|c| c.thread == (false, 3) && c.body.contains("Reopened: T-1 is not done"));
    assert!(said);
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_commit_needs_qa_and_says_so_on_the_pull_request() {
    let s = Story::new("github").await;
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    // Someone merged with a merge commit, outside the forge's squash button.
    let work = s.sb.path("w");
    s.sb.ok(&work, &["checkout", "-q", "main"]);
    s.sb.ok(&work, &["pull", "-q", s.origin.to_str().unwrap(), "main"]);
    s.sb.ok(&work, &["merge", "-q", "--no-ff", "--no-edit", "t-1-oidc"]);
    s.sb.ok(&work, &["push", "-q", s.origin.to_str().unwrap(), "main"]);
    let merge = s.sb.ok(&work, &["rev-parse", "HEAD"]);
    {
        let mut f = s.fake.state.lock().unwrap();
        let p = f.pulls.get_mut(&7).unwrap();
        p.open = false;
        p.merged = true;
        p.merge_sha = Some(merge.clone());
    }
    s.ci(&merge, "ci/build", "success");
    s.send(&Happening::PrMerged(7)).await;
    s.until("needs-qa", |s| s.row("T-1").contains("| needs-qa "))
        .await;
    s.idle().await;
    assert!(s.issue_open(3), "not done, so not closed");
    let comment = s
        .fake
        .state
        .lock()
        .unwrap()
        .comments
        .iter()
        .any(|c| c.thread == (false, 7) && c.body.contains("squash-only"));
    assert!(comment);
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_resync_repairs_what_missed_webhooks_left_behind() {
    let s = Story::new("github").await;
    let head = s.sb.ok(&s.origin, &["rev-parse", "t-1-oidc"]);
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    s.send(&Happening::PrOpened(7)).await;
    s.until("in progress", |s| s.row("T-1").contains("in-progress"))
        .await;
    // Everything else happens without a single delivery reaching the bot.
    s.ci(&head, "ci/build", "success");
    let merge = s.merge().await;
    s.ci(&merge, "ci/build", "success");
    let results = s.engine.resync().await;
    assert_eq!(results.len(), 1);
    assert!(results[0].1.is_ok(), "{:?}", results[0].1);
    assert!(s.row("T-1").contains("| done "), "{}", s.row("T-1"));
    assert!(!s.issue_open(3));
    // A second resync finds nothing to do.
    let again = s.engine.resync().await;
    assert_eq!(again[0].1.as_ref().unwrap().commit, None);
    assert_eq!(s.engine.effects_done().await.unwrap(), 1);
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_pull_requests_at_once_update_fifty_rows_without_losing_one() {
    const N: u64 = 50;
    let s = Story::new("github").await;
    let work = s.sb.path("w");
    let mut table = String::from(
        "# Tasks\n\n| id | status | description | depends_on | blocks | branch | agent | started_at | notes |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for i in 1..=N {
        table.push_str(&format!("| P-{i} | not-started | part {i} | | | | | | |\n"));
    }
    s.sb.ok(&work, &["checkout", "-q", "main"]);
    s.sb.ok(&work, &["pull", "-q", s.origin.to_str().unwrap(), "main"]);
    write(&work, "docs/TASKS.md", &table);
    s.sb.ok(&work, &["commit", "-q", "-am", "chore: fifty tasks"]);
    for i in 1..=N {
        s.sb.ok(&work, &["checkout", "-q", "-b", &format!("p-{i}"), "main"]);
        write(&work, format!("src/p{i}.rs"), "pub fn p() {}\n");
        s.sb.ok(&work, &["add", "-A"]);
        s.sb.ok(
            &work,
            &["commit", "-q", "-m", &format!("feat(P-{i}): part")],
        );
    }
    s.sb.ok(&work, &["push", "-q", s.origin.to_str().unwrap(), "--all"]);
    for i in 1..=N {
        s.fake.add_pull(
            i,
            if i % 2 == 0 { "alice" } else { "bob" },
            &format!("p-{i}"),
            &format!("feat(P-{i}): part"),
            "",
        );
    }
    let fixtures: Vec<_> = (1..=N)
        .map(|i| s.fake.delivery(&Happening::PrOpened(i), SECRET))
        .collect();
    let sends: Vec<_> = fixtures
        .into_iter()
        .map(|fx| {
            let (client, url) = (s.client.clone(), s.url.clone());
            tokio::spawn(async move { support::post(&client, &url, &fx).await })
        })
        .collect();
    for h in sends {
        let (status, body) = h.await.unwrap();
        assert_eq!(status, 202, "{body}");
    }
    s.until("all fifty in progress", |s| {
        s.table().matches("| in-progress |").count() == N as usize
    })
    .await;
    let table = s.table();
    for i in 1..=N {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| P-{i} |")))
            .unwrap();
        assert!(
            row.contains(&format!("| p-{i} |")) && row.contains(&format!("| PR #{i} |")),
            "{row}"
        );
    }
    let parents = s.sb.ok(&s.origin, &["log", "--format=%p", "main"]);
    assert!(parents.lines().all(|p| !p.contains(' ')), "linear history");
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bots_own_checks_are_posted_on_the_pull_request_head() {
    let s = Story::new("gitea").await;
    let work = s.sb.path("w");
    s.sb.ok(&work, &["checkout", "-q", "-b", "t-2-refresh", "main"]);
    write(
        &work,
        "src/refresh.rs",
        &format!("const TOKEN: &str = \"{}\";\n", support::git::TOKEN),
    );
    s.sb.ok(&work, &["add", "-A"]);
    s.sb.ok(&work, &["commit", "-q", "-m", "added refresh"]);
    s.sb.ok(
        &work,
        &["push", "-q", s.origin.to_str().unwrap(), "t-2-refresh"],
    );
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    s.fake
        .add_pull(8, "bob", "t-2-refresh", "feat(T-2): refresh", "");
    s.send(&Happening::PrOpened(7)).await;
    s.send(&Happening::PrOpened(8)).await;
    s.until("T-2 in progress", |s| s.row("T-2").contains("in-progress"))
        .await;
    s.idle().await;
    let statuses = |sha: &str| -> Vec<(String, String)> {
        let f = s.fake.state.lock().unwrap();
        f.ci.iter()
            .filter(|c| c.sha == sha)
            .map(|c| (c.context.clone(), c.state.clone()))
            .collect()
    };
    let good = s.sb.ok(&s.origin, &["rev-parse", "t-1-oidc"]);
    let bad = s.sb.ok(&s.origin, &["rev-parse", "t-2-refresh"]);
    let mut g = statuses(&good);
    g.sort();
    assert_eq!(
        g,
        [
            ("trunkwarden/policy".to_owned(), "success".to_owned()),
            ("trunkwarden/secrets".to_owned(), "success".to_owned())
        ]
    );
    let mut b = statuses(&bad);
    b.sort();
    assert_eq!(
        b,
        [
            ("trunkwarden/policy".to_owned(), "failure".to_owned()),
            ("trunkwarden/secrets".to_owned(), "failure".to_owned())
        ]
    );
    let posted: Vec<String> = s
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.contains("/statuses/"))
        .filter_map(|r| {
            r.body
                .map(|b| b["description"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    assert!(
        posted
            .iter()
            .any(|d| d.contains("src/refresh.rs:1") && d.contains("ghp_…FLh2")),
        "{posted:?}"
    );
    assert!(posted.iter().all(|d| !d.contains(support::git::TOKEN)));
    assert!(
        posted
            .iter()
            .any(|d| d.contains("does not follow `type(scope): summary`")),
        "{posted:?}"
    );
    // Their own statuses never make the bot's CI verdict: T-2 is not "failing".
    assert!(!s.row("T-2").contains("CI failing"), "{}", s.row("T-2"));
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_waits_for_every_context_branch_protection_requires() {
    let s = Story::new("github").await;
    s.fake.state.lock().unwrap().protection = Some(serde_json::json!({
        "required_status_checks": { "strict": false, "contexts": ["ci/build", "ci/e2e", "trunkwarden/policy"] },
        "required_pull_request_reviews": { "required_approving_review_count": 0 },
        "restrictions": { "users": [{ "login": "trunkwarden", "id": 1 }], "teams": [] },
    }));
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    let merge = s.merge().await;
    s.ci(&merge, "ci/build", "success");
    s.send(&Happening::PrMerged(7)).await;
    s.until("merge noted", |s| s.sticky(7).contains("waiting for CI"))
        .await;
    s.idle().await;
    assert!(s.issue_open(3), "ci/e2e has not reported: not green yet");
    s.ci(&merge, "ci/e2e", "success");
    s.send(&Happening::Status {
        sha: merge.clone(),
        context: "ci/e2e".into(),
        success: true,
    })
    .await;
    s.until("done", |s| s.row("T-1").contains("| done ")).await;
    assert!(
        s.row("T-1").contains("CI green (ci/build, ci/e2e)"),
        "{}",
        s.row("T-1")
    );
    s.server.unwrap().shutdown().await;
}

impl Story {
    /// Puts a `.trunkwarden.toml` on main (as a person would, before the bot runs).
    fn policy(&self, toml: &str) {
        let work = self.sb.path("w");
        self.sb.ok(&work, &["checkout", "-q", "main"]);
        self.sb.ok(
            &work,
            &["pull", "-q", self.origin.to_str().unwrap(), "main"],
        );
        write(&work, ".trunkwarden.toml", toml);
        self.sb.ok(&work, &["add", ".trunkwarden.toml"]);
        self.sb.ok(&work, &["commit", "-q", "-m", "chore: policy"]);
        self.sb.ok(
            &work,
            &["push", "-q", self.origin.to_str().unwrap(), "main"],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_fail_after_red_pushes_the_task_is_failed() {
    let s = Story::new("github").await;
    s.policy("[ci]\nfail-after = 2\n");
    let head = s.sb.ok(&s.origin, &["rev-parse", "t-1-oidc"]);
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    s.ci(&head, "ci/build", "failure");
    s.send(&Happening::PrOpened(7)).await;
    s.until("first failure noted", |s| {
        s.row("T-1").contains("CI failing")
    })
    .await;
    assert!(s.row("T-1").contains("in-progress"));
    // A second push, red again: two strikes.
    let work = s.sb.path("w");
    s.sb.ok(&work, &["checkout", "-q", "t-1-oidc"]);
    write(&work, "src/oidc.rs", "pub fn issuer() { /* again */ }\n");
    s.sb.ok(&work, &["commit", "-q", "-am", "fix(T-1): again"]);
    s.sb.ok(
        &work,
        &["push", "-q", s.origin.to_str().unwrap(), "t-1-oidc"],
    );
    let second = s.sb.ok(&s.origin, &["rev-parse", "t-1-oidc"]);
    s.fake
        .state
        .lock()
        .unwrap()
        .pulls
        .get_mut(&7)
        .unwrap()
        .head_sha = second.clone();
    s.ci(&second, "ci/build", "failure");
    s.send(&Happening::Status {
        sha: second,
        context: "ci/build".into(),
        success: false,
    })
    .await;
    s.until("failed", |s| s.row("T-1").contains("| failed "))
        .await;
    assert!(
        s.row("T-1").contains("CI failed on 2 pushes"),
        "{}",
        s.row("T-1")
    );
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_context_that_never_reports_times_out() {
    let s = Story::new("github").await;
    s.policy("[ci]\nrequired = [\"ci/build\", \"ci/e2e\"]\ntimeout-mins = 0.01\n");
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    let merge = s.merge().await;
    s.ci(&merge, "ci/build", "success");
    s.send(&Happening::PrMerged(7)).await;
    s.until("waiting", |s| s.sticky(7).contains("waiting for CI"))
        .await;
    s.clock.advance(std::time::Duration::from_millis(800));
    s.send(&Happening::Status {
        sha: merge.clone(),
        context: "ci/build".into(),
        success: true,
    })
    .await;
    s.until("timed out", |s| s.row("T-1").contains("| failed "))
        .await;
    assert!(
        s.row("T-1").contains("ci/e2e (no result after 0.01 min)"),
        "{}",
        s.row("T-1")
    );
    assert!(s.issue_open(3));
    s.server.unwrap().shutdown().await;
}

/// CI results for several tasks queued behind a slow reconcile are one reconcile and one
/// commit: each bot commit runs the trunk's CI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_arriving_together_are_one_commit() {
    use std::sync::{Arc, Mutex};
    use support::fake_forge::Act;
    let s = Story::new("gitea").await;
    for (n, id, branch) in [
        (7, "T-1", "t-1-oidc"),
        (8, "T-2", "t-2-refresh"),
        (9, "T-3", "t-3-audit"),
    ] {
        if n != 7 {
            // Branched from the trunk, as a worker would.
            let w = s.sb.repo(branch);
            let o = s.origin.to_str().unwrap();
            s.sb.ok(&w, &["fetch", "-q", o, "main"]);
            s.sb.ok(&w, &["checkout", "-q", "-B", branch, "FETCH_HEAD"]);
            write(&w, format!("src/{branch}.rs"), "pub fn f() {}\n");
            s.sb.ok(&w, &["add", "-A"]);
            s.sb.ok(&w, &["commit", "-q", "-m", &format!("feat({id}): work")]);
            s.sb.ok(&w, &["push", "-q", o, &format!("HEAD:refs/heads/{branch}")]);
        }
        s.open_pull(n, "alice", branch, &format!("feat({id}): work"), "");
        s.send(&Happening::PrOpened(n)).await;
    }
    s.until("all in progress", |s| {
        ["T-1", "T-2", "T-3"]
            .iter()
            .all(|id| s.row(id).contains("in-progress"))
    })
    .await;
    let mut merges = Vec::new();
    for (n, id) in [(7, "T-1"), (8, "T-2"), (9, "T-3")] {
        let sha = s.fake.merge_pull(n, &format!("feat({id}): work (#{n})"));
        s.ci(&sha, "ci/build", "pending");
        s.send(&Happening::PrMerged(n)).await;
        merges.push(sha);
    }
    s.idle().await;
    let before = s.bot_commits();
    // The first green result's reconcile stalls on its CI read while the others queue up.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let parked = Arc::new(Mutex::new(Some(rx)));
    let hit = Arc::new(tokio::sync::Notify::new());
    let (p, h, first) = (parked.clone(), hit.clone(), merges[0].clone());
    s.fake.on_request(move |_, r| {
        let mut slot = p.lock().unwrap();
        match slot.take() {
            Some(rx) if r.method == "GET" && r.path.contains(&format!("/{first}/")) => {
                h.notify_one();
                Act::Park(rx)
            }
            other => {
                *slot = other;
                Act::Proceed
            }
        }
    });
    for sha in &merges {
        s.ci(sha, "ci/build", "success");
    }
    let green = |sha: &str| Happening::Status {
        sha: sha.into(),
        context: "ci/build".into(),
        success: true,
    };
    s.send(&green(&merges[0])).await;
    tokio::time::timeout(std::time::Duration::from_secs(20), hit.notified())
        .await
        .expect("the first reconcile reads CI");
    s.send(&green(&merges[1])).await;
    s.send(&green(&merges[2])).await;
    tx.send(()).unwrap();
    s.until("all done", |s| {
        ["T-1", "T-2", "T-3"]
            .iter()
            .all(|id| s.row(id).contains("| done "))
    })
    .await;
    s.idle().await;
    assert_eq!(
        s.bot_commits() - before,
        2,
        "T-1's own pass, then one for T-2 and T-3 together"
    );
    s.server.unwrap().shutdown().await;
}
