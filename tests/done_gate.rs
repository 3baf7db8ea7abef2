//! The done-gate in real repositories: any trunk name, forges that close issues themselves,
//! closing keywords read as the forges read them, a merge racing a reconcile, a crash between
//! a command and its reply, replicas, refusals that back off — on every forge dialect.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::fake_forge::{Act, Happening, PrChange, Recorded};
use support::story::{Layout, Story, TOKEN};

const KINDS: [&str; 3] = ["github", "gitea", "gitlab"];

fn status(sha: &str, success: bool) -> Happening {
    Happening::Status {
        sha: sha.into(),
        context: "ci/build".into(),
        success,
    }
}

impl Story {
    fn head(&self) -> String {
        self.sb.ok(&self.origin, &["rev-parse", "t-1-oidc"])
    }

    /// Every bot comment on an issue.
    fn said_on_issue(&self, n: u64) -> Vec<String> {
        let f = self.fake.state.lock().unwrap();
        f.comments
            .iter()
            .filter(|c| c.thread == (false, n) && c.author.0 == 1)
            .map(|c| c.body.clone())
            .collect()
    }

    /// Requests that changed an issue's state (GitHub/Gitea PATCH, GitLab PUT).
    fn issue_edits(&self, n: u64) -> Vec<serde_json::Value> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| {
                (r.method == "PATCH" || r.method == "PUT")
                    && r.path.ends_with(&format!("/issues/{n}"))
            })
            .filter_map(|r| r.body)
            .collect()
    }

    /// Every version of a task's row the trunk has had.
    fn row_history(&self, id: &str) -> Vec<String> {
        let log = self.sb.ok(
            &self.origin,
            &["log", "-p", "--format=", self.trunk, "--", "docs/TASKS.md"],
        );
        log.lines()
            .filter(|l| l.starts_with(&format!("+| {id} ")))
            .map(str::to_owned)
            .collect()
    }

    /// Open → CI green on the head → squash merge → CI pending, then green on the squash
    /// commit; returns the squash commit.
    async fn through_green(&self) -> String {
        let head = self.head();
        self.ci(&head, "ci/build", "success");
        self.send(&Happening::PrOpened(7)).await;
        self.until("in progress", |s| s.row("T-1").contains("in-progress"))
            .await;
        let merge = self.merge().await;
        self.ci(&merge, "ci/build", "pending");
        self.send(&Happening::PrMerged(7)).await;
        self.until("waiting for CI", |s| s.sticky(7).contains("waiting for CI"))
            .await;
        self.idle().await;
        assert!(self.issue_open(3), "closed before green");
        self.ci(&merge, "ci/build", "success");
        self.send(&status(&merge, true)).await;
        self.until("done", |s| {
            s.row("T-1").contains("| done ") && !s.issue_open(3)
        })
        .await;
        merge
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_named_master_by_the_policy_on_every_forge() {
    for kind in KINDS {
        let s = Story::build(
            kind,
            None,
            Layout {
                trunk: "master",
                head: "develop",
                policy: Some("[trunk]\nbranch = \"master\"\n"),
                tick: None,
            },
        )
        .await;
        s.open_pull(
            7,
            "alice",
            "t-1-oidc",
            "feat(T-1): check the issuer",
            "Refs #3",
        );
        let merge = s.through_green().await;
        let row = s.row("T-1");
        assert!(
            row.contains(&format!("squash-merged as {}", &merge[..7])),
            "{kind}: {row}"
        );
        assert!(s.sticky(7).contains("`master`"), "{kind}: {}", s.sticky(7));
        // The bot never wrote to the default branch.
        let develop = s.sb.ok(&s.origin, &["log", "--format=%ae", "develop"]);
        assert!(!develop.contains("trunkwarden@"), "{kind}: {develop}");
        s.server.unwrap().shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_that_is_the_forges_default_branch_needs_no_policy() {
    for kind in KINDS {
        let s = Story::build(
            kind,
            None,
            Layout {
                trunk: "trunk",
                head: "trunk",
                policy: None,
                tick: None,
            },
        )
        .await;
        s.open_pull(
            7,
            "alice",
            "t-1-oidc",
            "feat(T-1): check the issuer",
            "Refs #3",
        );
        s.through_green().await;
        assert!(s.said_on_issue(3).iter().any(|c| c.contains("Done: T-1")));
        s.server.unwrap().shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyword_inside_a_word_closes_nothing() {
    let s = Story::new("github").await;
    s.fake.state.lock().unwrap().issues.insert(2, true);
    s.open_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "The router prefixes #2 anchors, and unfixed #2 ones too.\n\nRefs #3",
    );
    s.through_green().await;
    assert!(s.issue_open(2), "#2 belongs to nobody here");
    let row = s.row("T-1");
    assert!(
        row.contains("closed #3 ") || row.contains("closed #3|"),
        "{row}"
    );
    assert!(!row.contains("#2"), "{row}");
    assert!(s.issue_edits(2).is_empty());
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_while_the_pull_request_is_read_is_not_a_missing_commit() {
    for kind in KINDS {
        let s = Story::new(kind).await;
        s.open_pull(
            7,
            "alice",
            "t-1-oidc",
            "feat(T-1): check the issuer",
            "Refs #3",
        );
        let head = s.head();
        s.ci(&head, "ci/build", "success");
        // The engine fetches the trunk, then reads the pull request: the merge lands between.
        let merged = Arc::new(Mutex::new(None::<String>));
        let seen = merged.clone();
        s.fake.on_request(move |f, r: &Recorded| {
            let pull = r.path.ends_with("/pulls/7") || r.path.ends_with("/merge_requests/7");
            if r.method == "GET" && pull && seen.lock().unwrap().is_none() {
                let kind = f.kind;
                let sha = f.squash(kind, 7, "feat(T-1): check the issuer (#7)");
                *seen.lock().unwrap() = Some(sha);
            }
            Act::Proceed
        });
        s.send(&Happening::PrOpened(7)).await;
        s.until("the merge noted", |s| {
            s.sticky(7).contains("waiting for CI")
        })
        .await;
        let merge = merged.lock().unwrap().clone().unwrap();
        s.ci(&merge, "ci/build", "success");
        s.send(&status(&merge, true)).await;
        s.until("done", |s| s.row("T-1").contains("| done ")).await;
        let history = s.row_history("T-1");
        assert!(
            history.iter().all(|r| !r.contains("needs-qa")),
            "{kind}: {history:#?}"
        );
        s.server.unwrap().shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_the_forge_closes_at_merge_is_reopened_until_green() {
    for kind in KINDS {
        let s = Story::new(kind).await;
        s.open_pull(
            7,
            "alice",
            "t-1-oidc",
            "feat(T-1): check the issuer",
            "Closes #3",
        );
        let head = s.head();
        s.ci(&head, "ci/build", "success");
        s.send(&Happening::PrOpened(7)).await;
        s.until("in progress", |s| s.row("T-1").contains("in-progress"))
            .await;
        s.idle().await;
        // The policy status is red before the merge, and says what to write.
        let policy = {
            let f = s.fake.state.lock().unwrap();
            f.ci.iter()
                .find(|c| c.sha == head && c.context == "trunkwarden/policy")
                .map(|c| c.state.clone())
        };
        assert_eq!(
            policy.as_deref(),
            Some(if kind == "gitlab" {
                "failed"
            } else {
                "failure"
            }),
            "{kind}"
        );
        let described: Vec<String> = s
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
            described
                .iter()
                .any(|d| d.contains("#3") && d.contains("closing keyword")),
            "{kind}: {described:?}"
        );
        // Merged anyway: the forge closes #3 at once; the bot reopens it while CI runs.
        let merge = s.merge().await;
        assert!(
            !s.issue_open(3),
            "{kind}: the fake forge closes it as the forge does"
        );
        s.ci(&merge, "ci/build", "pending");
        s.send(&Happening::PrMerged(7)).await;
        s.until("reopened, with why", |s| {
            s.issue_open(3)
                && s.said_on_issue(3)
                    .iter()
                    .any(|c| c.contains("closes it once CI on the trunk is green"))
        })
        .await;
        assert!(s.row("T-1").contains("in-progress"));
        s.ci(&merge, "ci/build", "success");
        s.send(&status(&merge, true)).await;
        s.until("done", |s| {
            s.row("T-1").contains("| done ") && !s.issue_open(3)
        })
        .await;
        s.server.unwrap().shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_ci_on_the_trunk_leaves_an_open_issue_alone() {
    let s = Story::new("gitea").await;
    s.open_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    let head = s.head();
    s.ci(&head, "ci/build", "success");
    s.send(&Happening::PrOpened(7)).await;
    s.until("in progress", |s| s.row("T-1").contains("in-progress"))
        .await;
    let merge = s.merge().await;
    s.ci(&merge, "ci/build", "failure");
    s.send(&Happening::PrMerged(7)).await;
    s.until("failed", |s| s.row("T-1").contains("| failed "))
        .await;
    s.idle().await;
    assert!(s.row("T-1").contains("#3 stays open"), "{}", s.row("T-1"));
    assert!(s.issue_edits(3).is_empty(), "{:?}", s.issue_edits(3));
    assert!(s.said_on_issue(3).is_empty());
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_unmerged_gives_the_task_back_whole() {
    let s = Story::new("github").await;
    s.open_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    s.send(&Happening::PrOpened(7)).await;
    s.until("in progress", |s| s.row("T-1").contains("| alice "))
        .await;
    {
        let mut f = s.fake.state.lock().unwrap();
        f.pulls.get_mut(&7).unwrap().open = false;
    }
    s.send(&Happening::Pr(7, PrChange::Closed)).await;
    s.until("not started", |s| s.row("T-1").contains("not-started"))
        .await;
    let row = s.row("T-1");
    assert!(
        !row.contains("alice") && !row.contains("t-1-oidc") && !row.contains("Z |"),
        "{row}"
    );
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_close_backs_off_says_why_and_is_not_done() {
    let s = Story::new("github").await;
    s.open_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    s.fake.fail("PATCH", "/issues/3", 403, &[], 1000);
    let head = s.head();
    s.ci(&head, "ci/build", "success");
    let merge = s.merge().await;
    s.ci(&merge, "ci/build", "success");
    s.send(&Happening::PrMerged(7)).await;
    s.until("the refusal noted", |s| {
        s.row("T-1").contains("cannot close #3")
    })
    .await;
    s.idle().await;
    let row = s.row("T-1");
    assert!(!row.contains("| done "), "{row}");
    assert!(row.contains("403"), "{row}");
    assert!(s.sticky(7).contains("cannot close #3"), "{}", s.sticky(7));
    // The resync does not hammer the forge with the same refused call.
    let patches = || {
        s.fake
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with("/issues/3"))
            .count()
    };
    assert_eq!(patches(), 1);
    for _ in 0..3 {
        s.engine.resync().await;
    }
    assert_eq!(patches(), 1, "backed off");
    // The permission is granted; after the back-off the close goes through.
    s.fake.state.lock().unwrap().faults.clear();
    s.clock.advance(Duration::from_secs(61));
    s.engine.resync().await;
    assert_eq!(patches(), 2);
    assert!(!s.issue_open(3));
    assert!(s.row("T-1").contains("| done "), "{}", s.row("T-1"));
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_is_filled_at_done_from_what_the_worker_reported() {
    let s = Story::new("github").await;
    // The table gets estimate and used columns.
    let work = s.sb.path("w");
    s.sb.ok(&work, &["checkout", "-q", "main"]);
    s.sb.ok(&work, &["pull", "-q", s.origin.to_str().unwrap(), "main"]);
    let table = support::story::TABLE
        .replace("| notes |", "| estimate | used | notes |")
        .replace("|-------|\n", "|-------|---|---|\n")
        .replace(
            "| T-1 | not-started | OIDC issuer check | #3    |            | T-2    |        |       |            |              |       |",
            "| T-1 | not-started | OIDC issuer check | #3    |            | T-2    |        |       |            |              | 8K | | |",
        );
    support::git::write(&work, "docs/TASKS.md", &table);
    s.sb.ok(&work, &["commit", "-q", "-am", "chore: estimates"]);
    s.sb.ok(&work, &["push", "-q", s.origin.to_str().unwrap(), "main"]);
    s.open_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3\n\nUsed: 20K",
    );
    s.through_green().await;
    let row = s.row("T-1");
    assert!(row.contains("| 8K | 20K |"), "{row}");
    let learnings = s.sb.ok(
        &s.origin,
        &["show", "main:docs/tasks/orchestrator-learnings.json"],
    );
    assert!(
        learnings.contains("\"task\": \"T-1\"") && learnings.contains("20000"),
        "{learnings}"
    );
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_waits_for_what_a_ruleset_requires() {
    let s = Story::new("github").await;
    s.fake.state.lock().unwrap().rules = vec![json!({
        "type": "required_status_checks",
        "ruleset_source_type": "Repository",
        "ruleset_source": "acme/app",
        "ruleset_id": 42,
        "parameters": {
            "strict_required_status_checks_policy": false,
            "required_status_checks": [{ "context": "ci/e2e" }, { "context": "ci/build" }]
        }
    })];
    s.open_pull(
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
    s.idle().await;
    assert!(s.issue_open(3), "ci/e2e is required by the ruleset");
    assert!(
        s.sticky(7)
            .contains("ci/e2e, ci/build, from the forge's ruleset"),
        "{}",
        s.sticky(7)
    );
    s.ci(&merge, "ci/e2e", "success");
    s.send(&status(&merge, true)).await;
    s.until("done", |s| s.row("T-1").contains("| done ")).await;
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_survives_a_crash_before_its_reply() {
    for kind in KINDS {
        let s = Story::new(kind).await;
        s.open_pull(
            7,
            "alice",
            "t-1-oidc",
            "feat(T-1): check the issuer",
            "Refs #3",
        );
        let write = if kind == "gitlab" { "30" } else { "write" };
        s.fake
            .state
            .lock()
            .unwrap()
            .permissions
            .insert("alice".into(), write.into());
        // The first reply is posted, and the process dies before it hears so: the reply is on
        // the forge, the ledger does not know its id.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let parked = Arc::new(Mutex::new(Some(rx)));
        let hit = Arc::new(tokio::sync::Notify::new());
        let (p, h) = (parked.clone(), hit.clone());
        s.fake.on_request(move |_, r| {
            let posting = r.method == "POST"
                && (r.path.ends_with("/issues/7/comments")
                    || r.path.ends_with("/merge_requests/7/notes"));
            let mut slot = p.lock().unwrap();
            match slot.take() {
                Some(rx) if posting => {
                    h.notify_one();
                    Act::ApplyThenPark(rx)
                }
                other => {
                    *slot = other;
                    Act::Proceed
                }
            }
        });
        let comment = Happening::Comment {
            number: 7,
            comment_id: 900,
            body: "@trunkwarden claim T-1\n@trunkwarden estimate 8K".into(),
            author: "alice".into(),
            previous: None,
        };
        let first = s.engine_again(TOKEN).await;
        let running = {
            let fx = s.fake.delivery(&comment, support::story::SECRET);
            let (d, event) = support::delivery_of(&fx);
            tokio::spawn(async move {
                use trunkwarden::queue::worker::Handler as _;
                first.handle(&d, &event).await
            })
        };
        tokio::time::timeout(Duration::from_secs(20), hit.notified())
            .await
            .expect("the reply is reached");
        running.abort(); // kill -9 at this await point
        let _ = running.await;
        drop(tx);
        // Restarted on the same ledger, the same delivery is handled again.
        let again = s.engine_again(TOKEN).await;
        s.handle(&again, &comment).await.unwrap();
        let replies: Vec<String> = {
            let f = s.fake.state.lock().unwrap();
            f.comments
                .iter()
                .filter(|c| c.author.0 == 1 && c.body.starts_with("<!-- trunkwarden:reply-"))
                .map(|c| c.body.clone())
                .collect()
        };
        assert_eq!(replies.len(), 2, "{kind}: {replies:#?}");
        assert!(
            replies[0].contains("claimed T-1 for this pull request"),
            "{kind}: {replies:#?}"
        );
        assert!(replies[1].contains("estimate"), "{kind}: {replies:#?}");
        let row = s.row("T-1");
        assert!(row.contains("in-progress"), "{kind}: {row}");
        // And once more (a redelivery): nothing runs twice.
        s.handle(&again, &comment).await.unwrap();
        let count = s
            .fake
            .state
            .lock()
            .unwrap()
            .comments
            .iter()
            .filter(|c| c.body.starts_with("<!-- trunkwarden:reply-"))
            .count();
        assert_eq!(count, 2, "{kind}");
        s.server.unwrap().shutdown().await;
    }
}
