//! Comment commands end to end on every forge dialect: signed comment deliveries through the
//! real router and ledger, the engine answering on the fake forge and writing the task table
//! in a real bare repository.

mod support;

use support::fake_forge::Happening;
use support::story::Story;

const KINDS: [&str; 3] = ["github", "gitea", "gitlab"];

fn comment(n: u64, id: u64, author: &str, body: &str) -> Happening {
    Happening::Comment {
        number: n,
        comment_id: id,
        body: body.into(),
        author: author.into(),
        previous: None,
    }
}

/// A story with PR 9 from branch `misc` (which names no task), alice with write access and
/// bob with read access.
async fn story(kind: &'static str) -> Story {
    let s = Story::new(kind).await;
    let work = s.sb.path("w");
    s.sb.ok(&work, &["checkout", "-q", "-b", "misc", "main"]);
    support::git::write(&work, "src/misc.rs", "pub fn misc() {}\n");
    s.sb.ok(&work, &["add", "-A"]);
    s.sb.ok(&work, &["commit", "-q", "-m", "feat(T-1): misc"]);
    s.sb.ok(&work, &["push", "-q", s.origin.to_str().unwrap(), "misc"]);
    s.fake.add_pull(9, "alice", "misc", "Miscellaneous", "");
    {
        let mut f = s.fake.state.lock().unwrap();
        let (write, read) = if kind == "gitlab" {
            ("30", "20")
        } else {
            ("write", "read")
        };
        f.permissions.insert("alice".into(), write.into());
        f.permissions.insert("bob".into(), read.into());
    }
    s
}

fn replies(s: &Story) -> Vec<String> {
    let f = s.fake.state.lock().unwrap();
    f.comments
        .iter()
        .filter(|c| c.author.0 == 1 && !c.body.contains("trunkwarden:task -->"))
        .map(|c| c.body.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_needs_write_access_and_respects_dependencies() {
    for kind in KINDS {
        let s = story(kind).await;
        let before = s.table();
        s.send(&comment(9, 501, "bob", "@trunkwarden claim T-1"))
            .await;
        s.until("a refusal", |s| {
            replies(s)
                .iter()
                .any(|r| r.contains("needs write access; @bob has"))
        })
        .await;
        s.idle().await;
        assert_eq!(
            s.table(),
            before,
            "{kind}: a refused command changes nothing"
        );
        s.send(&comment(9, 502, "alice", "@trunkwarden claim T-2"))
            .await;
        s.until("dependency refusal", |s| {
            replies(s).iter().any(|r| r.contains("T-2 depends on T-1"))
        })
        .await;
        s.send(&comment(9, 503, "alice", "@trunkwarden claim T-1"))
            .await;
        s.until("claimed", |s| s.row("T-1").contains("in-progress"))
            .await;
        let row = s.row("T-1");
        assert!(
            row.contains("| misc ") && row.contains("| alice ") && row.contains("PR #9"),
            "{kind}: {row}"
        );
        s.until("reply", |s| {
            replies(s).iter().any(|r| r.contains("claimed T-1"))
        })
        .await;
        s.server.unwrap().shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_waits_for_green_then_squash_merges() {
    for kind in KINDS {
        let s = story(kind).await;
        s.fake.state.lock().unwrap().pulls.get_mut(&9).unwrap().body =
            "Adds the misc module.\n\nRefs #4".into();
        let head = s.sb.ok(&s.origin, &["rev-parse", "misc"]);
        s.send(&comment(
            9,
            601,
            "alice",
            "@trunkwarden claim T-1\n\n@trunkwarden merge",
        ))
        .await;
        s.until("merge acknowledged", |s| {
            replies(s)
                .iter()
                .any(|r| r.contains("will squash-merge once CI"))
        })
        .await;
        s.idle().await;
        assert!(
            !s.fake.state.lock().unwrap().pulls[&9].merged,
            "{kind}: not before green"
        );
        s.ci(&head, "ci/build", "success");
        s.send(&Happening::Status {
            sha: head.clone(),
            context: "ci/build".into(),
            success: true,
        })
        .await;
        s.until("merged", |s| s.fake.state.lock().unwrap().pulls[&9].merged)
            .await;
        s.until("said so", |s| {
            replies(s).iter().any(|r| r.contains("squash-merged as"))
        })
        .await;
        let merge = s.fake.state.lock().unwrap().pulls[&9]
            .merge_sha
            .clone()
            .unwrap();
        assert_eq!(s.sb.ok(&s.origin, &["rev-parse", "main"]), merge, "{kind}");
        // The squash commit says what the forge's button would: title, description, and the
        // other authors of the pull request's commits.
        let message = s.sb.ok(&s.origin, &["log", "-1", "--format=%B", "main"]);
        assert!(
            message.starts_with("Miscellaneous (#9)"),
            "{kind}: {message}"
        );
        assert!(
            message.contains("Adds the misc module.\n\nRefs #4")
                && message.contains("Co-authored-by: Dev <dev@example.test>"),
            "{kind}: {message}"
        );
        s.server.unwrap().shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_cancels_a_pending_merge() {
    for kind in KINDS {
        let s = story(kind).await;
        s.send(&comment(9, 701, "alice", "@trunkwarden merge"))
            .await;
        s.until("acknowledged", |s| {
            replies(s).iter().any(|r| r.contains("will squash-merge"))
        })
        .await;
        // A new commit on the branch.
        let work = s.sb.path("w");
        s.sb.ok(&work, &["checkout", "-q", "misc"]);
        support::git::write(&work, "src/misc.rs", "pub fn misc() { /* more */ }\n");
        s.sb.ok(&work, &["commit", "-q", "-am", "feat(T-1): more"]);
        s.sb.ok(&work, &["push", "-q", s.origin.to_str().unwrap(), "misc"]);
        let new_head = s.sb.ok(&s.origin, &["rev-parse", "misc"]);
        s.fake
            .state
            .lock()
            .unwrap()
            .pulls
            .get_mut(&9)
            .unwrap()
            .head_sha = new_head.clone();
        s.ci(&new_head, "ci/build", "success");
        s.send(&Happening::PrOpened(9)).await;
        s.until("cancelled", |s| {
            replies(s).iter().any(|r| r.contains("is cancelled"))
        })
        .await;
        s.idle().await;
        assert!(
            !s.fake.state.lock().unwrap().pulls[&9].merged,
            "{kind}: the new head was never asked to merge"
        );
        s.server.unwrap().shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_runs_only_what_it_added_and_the_bot_ignores_itself() {
    // GitLab's note events carry no previous body: the bot remembers what it acted on.
    for kind in KINDS {
        let s = story(kind).await;
        s.send(&comment(9, 801, "alice", "@trunkwarden claim T-1"))
            .await;
        s.until("claimed", |s| s.row("T-1").contains("in-progress"))
            .await;
        s.idle().await;
        let edit = Happening::Comment {
            number: 9,
            comment_id: 801,
            body: "@trunkwarden claim T-1\n\n@trunkwarden status".into(),
            author: "alice".into(),
            previous: Some("@trunkwarden claim T-1".into()),
        };
        s.send(&edit).await;
        s.until("status", |s| {
            replies(s)
                .iter()
                .any(|r| r.contains("T-1 is **in-progress**"))
        })
        .await;
        s.idle().await;
        let claims = replies(&s)
            .iter()
            .filter(|r| r.contains("claimed T-1"))
            .count();
        assert_eq!(claims, 1, "{kind}: the claim did not run again");
        // The bot's own comment, even one that reads like a command, does nothing.
        let before = s.table();
        s.send(&comment(9, 802, "trunkwarden", "@trunkwarden unclaim"))
            .await;
        s.idle().await;
        assert_eq!(s.table(), before, "{kind}");
        assert!(
            !replies(&s).iter().any(|r| r.contains("unclaimed")),
            "{kind}"
        );
        s.server.unwrap().shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_unknown_commands_and_row_edits() {
    for kind in KINDS {
        let s = story(kind).await;
        s.send(&comment(
            9,
            901,
            "bob",
            "@trunkwarden help\n\n@trunkwarden stauts",
        ))
        .await;
        s.until("help", |s| {
            replies(s).iter().any(|r| {
                r.contains("| `claim ID` | write access |") && r.contains("with `Refs #N`")
            })
        })
        .await;
        s.until("did you mean", |s| {
            replies(s)
                .iter()
                .any(|r| r.contains("did you mean `status`?"))
        })
        .await;
        s.send(&comment(
            9,
            902,
            "alice",
            "@trunkwarden claim T-1\n\n@trunkwarden block waiting for the vendor",
        ))
        .await;
        s.until("blocked", |s| s.row("T-1").contains("| blocked "))
            .await;
        assert!(
            s.row("T-1").contains("blocked: waiting for the vendor"),
            "{}",
            s.row("T-1")
        );
        s.send(&comment(9, 903, "alice", "@trunkwarden unblock"))
            .await;
        s.until("unblocked", |s| s.row("T-1").contains("| in-progress "))
            .await;
        s.server.unwrap().shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_row_commands_on_every_forge() {
    for kind in KINDS {
        let s = story(kind).await;
        s.send(&comment(
            9,
            1001,
            "alice",
            "@trunkwarden claim T-1\n\n@trunkwarden estimate 8K",
        ))
        .await;
        s.until("estimate", |s| s.row("T-1").contains("in-progress"))
            .await;
        s.until("estimate reply", |s| {
            replies(s)
                .iter()
                .any(|r| r.contains("has no `estimate` column"))
        })
        .await;
        // This table has no estimate/used columns: nothing is written, and the replies say why.
        s.send(&comment(9, 1002, "alice", "@trunkwarden used 20K"))
            .await;
        s.until("used reply", |s| {
            replies(s)
                .iter()
                .any(|r| r.contains("has no `used` column"))
        })
        .await;
        s.send(&comment(
            9,
            1003,
            "alice",
            "@trunkwarden merge\n\n@trunkwarden merge cancel",
        ))
        .await;
        s.until("withdrawn", |s| {
            replies(s)
                .iter()
                .any(|r| r.contains("the pending merge is withdrawn"))
        })
        .await;
        let head = s.sb.ok(&s.origin, &["rev-parse", "misc"]);
        s.ci(&head, "ci/build", "success");
        s.send(&Happening::Status {
            sha: head.clone(),
            context: "ci/build".into(),
            success: true,
        })
        .await;
        s.idle().await;
        assert!(
            !s.fake.state.lock().unwrap().pulls[&9].merged,
            "{kind}: the cancelled merge did not happen"
        );
        let checks_before = s
            .fake
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.contains("/statuses/"))
            .count();
        s.send(&comment(9, 1004, "alice", "@trunkwarden recheck"))
            .await;
        s.until("rechecked", |s| {
            replies(s).iter().any(|r| r.contains("rechecking"))
        })
        .await;
        s.idle().await;
        let checks_after = s
            .fake
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.contains("/statuses/"))
            .count();
        assert_eq!(
            checks_after,
            checks_before + 2,
            "{kind}: policy and secrets posted again"
        );
        s.send(&comment(9, 1005, "alice", "@trunkwarden unclaim"))
            .await;
        s.until("unclaimed", |s| s.row("T-1").contains("| not-started "))
            .await;
        // Unclaimed stays unclaimed: the next event does not relink the PR by its title or branch.
        s.send(&Happening::PrOpened(9)).await;
        s.idle().await;
        assert!(
            s.row("T-1").contains("| not-started "),
            "{kind}: {}",
            s.row("T-1")
        );
        s.server.unwrap().shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_reports_the_variance_and_records_a_learning() {
    let s = story("github").await;
    let work = s.sb.path("w");
    s.sb.ok(&work, &["checkout", "-q", "main"]);
    support::git::write(
        &work,
        "docs/TASKS.md",
        "# Tasks\n\n| id | status | description | depends_on | blocks | branch | agent | started_at | estimate | used | notes |\n|---|---|---|---|---|---|---|---|---|---|---|\n| T-1 | not-started | a | | | | | | | | |\n",
    );
    s.sb.ok(&work, &["commit", "-q", "-am", "chore: columns"]);
    s.sb.ok(&work, &["push", "-q", s.origin.to_str().unwrap(), "main"]);
    s.send(&comment(
        9,
        1101,
        "alice",
        "@trunkwarden claim T-1\n\n@trunkwarden estimate 8K\n\n@trunkwarden used 20K",
    ))
    .await;
    s.until("used", |s| s.row("T-1").contains("| 20K |")).await;
    assert!(s.row("T-1").contains("| 8K | 20K |"), "{}", s.row("T-1"));
    s.until("variance", |s| {
        replies(s)
            .iter()
            .any(|r| r.contains("+150%") && r.contains("recorded as a learning"))
    })
    .await;
    let learnings = s.sb.ok(
        &s.origin,
        &["show", "main:docs/tasks/orchestrator-learnings.json"],
    );
    assert!(
        learnings.contains("\"task\": \"T-1\"") && learnings.contains("\"variance\": 1.5"),
        "{learnings}"
    );
    let log = s.sb.ok(&s.origin, &["log", "--format=%s", "-3", "main"]);
    assert_eq!(log.lines().count(), 3, "one commit per command:\n{log}");
    s.server.unwrap().shutdown().await;
}
