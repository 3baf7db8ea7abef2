//! The forge adapters against a fake forge per dialect: every trait operation, the unhappy
//! paths (404, 403, 409 head moved, 429 and secondary limits, 5xx then success), and a
//! contract check of every request against the forge's published API description.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use support::fake_forge::{Ci, FakeForge};
use support::git::Sandbox;
use trunkwarden::forge::{
    self, CiSource, CiState, Forge, ForgeError, ForgeKind, HookHealth, HookOutcome, HookSpec,
    HookTarget, Permission, PrState, Prior, Protection, RepoRef, RepoSettings, Retry, StatusSpec,
    Thread, Token, User,
};

const TOKEN: &str = "tw-test-token-RECOGNISABLE-7f3a9c";
const KINDS: [&str; 4] = ["github", "gitea", "forgejo", "gitlab"];

struct Setup {
    sb: Sandbox,
    bare: PathBuf,
    fake: FakeForge,
    forge: Box<dyn Forge>,
    repo: RepoRef,
}

fn retry() -> Retry {
    Retry {
        attempts: 4,
        backoff: Duration::from_millis(5),
        max_wait: Duration::from_secs(3),
    }
}

fn adapter(kind: &str, url: &str, token: &str) -> Box<dyn Forge> {
    let t = Token::new(token);
    match kind {
        "github" => Box::new(forge::github::Github::new(url, t, retry()).unwrap()),
        "gitea" => Box::new(forge::gitea::Gitea::new(ForgeKind::Gitea, url, t, retry()).unwrap()),
        "forgejo" => {
            Box::new(forge::gitea::Gitea::new(ForgeKind::Forgejo, url, t, retry()).unwrap())
        }
        _ => Box::new(forge::gitlab::Gitlab::new(url, t, retry()).unwrap()),
    }
}

/// A bare repository with `main` and a `feature` branch one commit ahead, a fake forge of
/// `kind` serving it with pull request 7 (feature → main) and issue 3, and an adapter.
async fn setup(kind: &'static str) -> Setup {
    let sb = Sandbox::new();
    let work = sb.repo("w");
    let bare = sb.bare("app.git");
    sb.ok(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    sb.ok(&work, &["checkout", "-q", "-b", "feature"]);
    support::git::write(&work, "src/lib.rs", "pub fn a() {}\n");
    sb.ok(&work, &["add", "-A"]);
    sb.ok(&work, &["commit", "-q", "-m", "feat(A-1): a"]);
    support::git::write(&work, "src/lib.rs", "pub fn a() {}\npub fn b() {}\n");
    sb.ok(&work, &["commit", "-q", "-am", "feat(A-1): b"]);
    sb.ok(&work, &["push", "-q", bare.to_str().unwrap(), "feature"]);
    let fake = FakeForge::start(kind, TOKEN, bare.clone()).await;
    fake.add_pull(
        7,
        "alice",
        "feature",
        "feat(A-1): a and b",
        "Task: A-1\nRefs #3",
    );
    fake.state.lock().unwrap().issues.insert(3, true);
    let forge = adapter(kind, &fake.url, TOKEN);
    Setup {
        sb,
        bare,
        fake,
        forge,
        repo: RepoRef::parse("acme/app").unwrap(),
    }
}

fn thread(kind: &str) -> Thread {
    if kind == "gitlab" {
        Thread::Pull(7)
    } else {
        Thread::Issue(7)
    }
}

#[tokio::test]
async fn pull_requests_and_the_bot_read_the_same_on_every_forge() {
    for kind in KINDS {
        let s = setup(kind).await;
        let me = s.forge.me().await.unwrap();
        assert_eq!(
            me,
            User {
                id: 1,
                login: "trunkwarden".into()
            },
            "{kind}"
        );
        let pr = s.forge.pull_request(&s.repo, 7).await.unwrap();
        let head = s.sb.ok(&s.bare, &["rev-parse", "feature"]);
        let base = s.sb.ok(&s.bare, &["rev-parse", "main"]);
        assert_eq!(pr.number, 7);
        assert_eq!(pr.state, PrState::Open, "{kind}");
        assert_eq!(
            (pr.head_ref.as_str(), pr.head_sha.as_str()),
            ("feature", head.as_str()),
            "{kind}"
        );
        assert_eq!(
            (pr.base_ref.as_str(), pr.base_sha.as_deref()),
            ("main", Some(base.as_str())),
            "{kind}"
        );
        assert_eq!(
            pr.author,
            User {
                id: 2,
                login: "alice".into()
            },
            "{kind}"
        );
        assert_eq!(pr.body, "Task: A-1\nRefs #3");
        assert_eq!(pr.labels, ["task"]);
        assert_eq!(
            pr.merge_commit_sha, None,
            "{kind}: GitHub's test merge commit is not a merge"
        );
        let e = s.forge.pull_request(&s.repo, 99).await.unwrap_err();
        assert_eq!(e.status(), Some(404), "{kind}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("{kind} get ")) && text.contains("does not exist"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn ci_results_combine_sources_and_keep_the_latest_per_context() {
    for kind in KINDS {
        let s = setup(kind).await;
        let sha = s.sb.ok(&s.bare, &["rev-parse", "feature"]);
        let (pending, ok) = match kind {
            "gitlab" => ("running", "success"),
            _ => ("pending", "success"),
        };
        {
            let mut f = s.fake.state.lock().unwrap();
            let ci = |context: &str, state: &str, check_run: bool, conclusion: Option<&str>| Ci {
                sha: sha.clone(),
                context: context.into(),
                state: state.into(),
                conclusion: conclusion.map(str::to_owned),
                reporter: "ci-bot".into(),
                target_url: Some("https://ci.example/1".into()),
                check_run,
            };
            f.ci.push(ci("ci/build", pending, false, None));
            f.ci.push(ci("ci/build", ok, false, None));
            if kind == "github" {
                f.ci.push(ci("tests", "completed", true, Some("failure")));
                f.ci.push(ci("lint", "in_progress", true, None));
            }
        }
        let status = StatusSpec {
            context: "trunkwarden/policy".into(),
            state: CiState::Success,
            description: "trunk rules hold".into(),
            target_url: None,
        };
        s.forge.set_status(&s.repo, &sha, &status).await.unwrap();
        let mut r = s.forge.ci_results(&s.repo, &sha).await.unwrap();
        r.sort_by(|a, b| a.context.cmp(&b.context));
        let got: Vec<(&str, CiState)> = r.iter().map(|c| (c.context.as_str(), c.state)).collect();
        let mut want = vec![
            ("ci/build", CiState::Success),
            ("trunkwarden/policy", CiState::Success),
        ];
        if kind == "github" {
            want = vec![
                ("ci/build", CiState::Success),
                ("lint", CiState::Pending),
                ("tests", CiState::Failure),
                ("trunkwarden/policy", CiState::Success),
            ];
            assert_eq!(
                r.iter().find(|c| c.context == "tests").unwrap().source,
                CiSource::CheckRun
            );
        }
        assert_eq!(got, want, "{kind}");
        let build = r.iter().find(|c| c.context == "ci/build").unwrap();
        assert_eq!(build.reporter.as_deref(), Some("ci-bot"), "{kind}");
        assert_eq!(
            build.target_url.as_deref(),
            Some("https://ci.example/1"),
            "{kind}"
        );
        let ours = r
            .iter()
            .find(|c| c.context == "trunkwarden/policy")
            .unwrap();
        assert_eq!(
            ours.reporter.as_deref(),
            Some("trunkwarden"),
            "{kind}: the bot's own statuses are recognisable"
        );
    }
}

#[tokio::test]
async fn the_sticky_comment_is_edited_not_duplicated_across_three_updates() {
    for kind in KINDS {
        let s = setup(kind).await;
        // Someone quoting the marker does not make their comment the bot's.
        {
            let mut f = s.fake.state.lock().unwrap();
            let t = if kind == "gitlab" {
                (true, 7)
            } else {
                (false, 7)
            };
            f.comments.push(support::fake_forge::Comment {
                id: 5,
                thread: t,
                body: format!("> {}\n> old status", forge::marker_line("status")),
                author: (2, "alice".into()),
            });
        }
        let mut outcomes = Vec::new();
        for text in ["CI pending", "CI green", "CI green, merged"] {
            outcomes.push(
                s.forge
                    .upsert_comment(&s.repo, thread(kind), "status", text, Prior::Unknown)
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(
            outcomes.iter().map(|o| o.created).collect::<Vec<_>>(),
            [true, false, false],
            "{kind}"
        );
        assert!(outcomes.iter().all(|o| o.id == outcomes[0].id), "{kind}");
        // The same text again changes nothing.
        s.forge
            .upsert_comment(
                &s.repo,
                thread(kind),
                "status",
                "CI green, merged",
                Prior::Unknown,
            )
            .await
            .unwrap();
        let f = s.fake.state.lock().unwrap();
        let bots: Vec<_> = f.comments.iter().filter(|c| c.author.0 == 1).collect();
        assert_eq!(bots.len(), 1, "{kind}");
        assert_eq!(
            bots[0].body,
            forge::sticky_body("status", "CI green, merged")
        );
        assert!(
            f.comments
                .iter()
                .any(|c| c.id == 5 && c.body.contains("old status")),
            "{kind}"
        );
        let writes: Vec<&str> = f
            .requests
            .iter()
            .filter(|r| r.method != "GET")
            .map(|r| r.method.as_str())
            .collect();
        let edit = if kind == "gitlab" { "PUT" } else { "PATCH" };
        assert_eq!(writes, ["POST", edit, edit], "{kind}");
    }
}

#[tokio::test]
async fn issues_close_and_reopen() {
    for kind in KINDS {
        let s = setup(kind).await;
        assert!(s.forge.issue_open(&s.repo, 3).await.unwrap(), "{kind}");
        s.forge.set_issue_open(&s.repo, 3, false).await.unwrap();
        assert!(!s.fake.state.lock().unwrap().issues[&3], "{kind}");
        assert!(!s.forge.issue_open(&s.repo, 3).await.unwrap(), "{kind}");
        s.forge.set_issue_open(&s.repo, 3, true).await.unwrap();
        assert!(s.fake.state.lock().unwrap().issues[&3], "{kind}");
        let e = s.forge.set_issue_open(&s.repo, 4, false).await.unwrap_err();
        assert_eq!(e.status(), Some(404), "{kind}");
        assert!(e.is_permanent(), "{kind}");
        let e = s.forge.issue_open(&s.repo, 4).await.unwrap_err();
        assert_eq!(e.status(), Some(404), "{kind}");
    }
}

#[tokio::test]
async fn default_branch_and_the_contexts_the_forge_requires() {
    for kind in KINDS {
        let s = setup(kind).await;
        assert_eq!(
            s.forge.default_branch(&s.repo).await.unwrap(),
            "main",
            "{kind}"
        );
        assert!(
            s.forge
                .required_contexts(&s.repo, "main")
                .await
                .unwrap()
                .is_empty(),
            "{kind}: nothing required"
        );
    }
    let s = setup("github").await;
    {
        let mut f = s.fake.state.lock().unwrap();
        f.protection = Some(serde_json::json!({
            "required_status_checks": { "strict": false, "contexts": ["ci/build"] },
        }));
        f.rules = vec![
            serde_json::json!({ "type": "deletion" }),
            serde_json::json!({
                "type": "required_status_checks",
                "parameters": {
                    "strict_required_status_checks_policy": true,
                    "required_status_checks": [{ "context": "ci/e2e" }, { "context": "ci/build" }]
                }
            }),
        ];
    }
    let required = s.forge.required_contexts(&s.repo, "main").await.unwrap();
    let got: Vec<(&str, &str)> = required
        .iter()
        .map(|r| (r.context.as_str(), r.source))
        .collect();
    assert_eq!(
        got,
        [("ci/build", "branch protection"), ("ci/e2e", "ruleset")]
    );
    // A token that may not read protection (404 or 403) still learns the rulesets.
    s.fake.fail("GET", "/protection", 403, &[], 1);
    let required = s.forge.required_contexts(&s.repo, "main").await.unwrap();
    assert_eq!(required.len(), 2);
}

#[tokio::test]
async fn two_writers_creating_one_sticky_comment_leave_one() {
    for kind in KINDS {
        let s = setup(kind).await;
        // Another writer (a stalled replica) posts the same sticky comment between this
        // writer's look and its post.
        let t = if kind == "gitlab" {
            (true, 7)
        } else {
            (false, 7)
        };
        let raced = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let once = raced.clone();
        s.fake.on_request(move |f, r| {
            let posting = r.method == "POST"
                && (r.path.ends_with("/issues/7/comments") || r.path.ends_with("/notes"));
            if posting && !once.swap(true, std::sync::atomic::Ordering::SeqCst) {
                f.comments.push(support::fake_forge::Comment {
                    id: 50,
                    thread: t,
                    body: format!("{}\nfrom the other writer", forge::marker_line("task")),
                    author: (1, "trunkwarden".into()),
                });
            }
            support::fake_forge::Act::Proceed
        });
        let out = s
            .forge
            .upsert_comment(
                &s.repo,
                thread(kind),
                "task",
                "from this writer",
                Prior::Unknown,
            )
            .await
            .unwrap();
        assert_eq!((out.id, out.created), (50, false), "{kind}");
        let f = s.fake.state.lock().unwrap();
        let bots: Vec<_> = f.comments.iter().filter(|c| c.author.0 == 1).collect();
        assert_eq!(bots.len(), 1, "{kind}: {bots:?}");
        assert!(bots[0].body.ends_with("from this writer"), "{kind}");
    }
}

#[tokio::test]
async fn squash_merge_lands_one_real_commit_and_refuses_a_moved_head() {
    for kind in KINDS {
        let s = setup(kind).await;
        let main_before = s.sb.ok(&s.bare, &["rev-parse", "main"]);
        let head = s.sb.ok(&s.bare, &["rev-parse", "feature"]);
        let stale = s.sb.ok(&s.bare, &["rev-parse", "feature~1"]);
        let e = s
            .forge
            .squash_merge(&s.repo, 7, &stale, "feat(A-1): a and b (#7)", "Task: A-1")
            .await
            .unwrap_err();
        assert!(matches!(e, ForgeError::HeadMoved { .. }), "{kind}: {e}");
        assert_eq!(
            s.sb.ok(&s.bare, &["rev-parse", "main"]),
            main_before,
            "{kind}: nothing merged"
        );
        let sha = s
            .forge
            .squash_merge(&s.repo, 7, &head, "feat(A-1): a and b (#7)", "Task: A-1")
            .await
            .unwrap();
        assert_eq!(s.sb.ok(&s.bare, &["rev-parse", "main"]), sha, "{kind}");
        assert_eq!(
            s.sb.ok(&s.bare, &["rev-parse", &format!("{sha}^@")]),
            main_before,
            "{kind}: one parent"
        );
        assert_eq!(
            s.sb.ok(&s.bare, &["rev-parse", &format!("{sha}^{{tree}}")]),
            s.sb.ok(&s.bare, &["rev-parse", "feature^{tree}"]),
            "{kind}"
        );
        assert!(
            s.sb.ok(&s.bare, &["log", "-1", "--format=%s", &sha])
                .starts_with("feat(A-1): a and b"),
            "{kind}"
        );
        let pr = s.forge.pull_request(&s.repo, 7).await.unwrap();
        assert_eq!(
            (pr.state, pr.merge_commit_sha.as_deref()),
            (PrState::Merged, Some(sha.as_str())),
            "{kind}"
        );
        let again = s
            .forge
            .squash_merge(&s.repo, 7, &head, "x", "y")
            .await
            .unwrap_err();
        assert_eq!(again.status(), Some(405), "{kind}: {again}");
    }
}

#[tokio::test]
async fn permissions_by_user_and_403_without_one() {
    for kind in KINDS {
        let s = setup(kind).await;
        let (write, low, low_level) = match kind {
            "github" => ("write", "triage", Permission::Triage),
            "gitlab" => ("30", "20", Permission::Triage),
            _ => ("write", "read", Permission::Read),
        };
        {
            let mut f = s.fake.state.lock().unwrap();
            f.permissions.insert("alice".into(), write.into());
            f.permissions.insert("bob".into(), low.into());
        }
        let alice = User {
            id: 2,
            login: "alice".into(),
        };
        let bob = User {
            id: 3,
            login: "bob".into(),
        };
        let carol = User {
            id: 4,
            login: "carol".into(),
        };
        assert_eq!(
            s.forge.permission(&s.repo, &alice).await.unwrap(),
            Permission::Write,
            "{kind}"
        );
        assert_eq!(
            s.forge.permission(&s.repo, &bob).await.unwrap(),
            low_level,
            "{kind}"
        );
        assert_eq!(
            s.forge.permission(&s.repo, &carol).await.unwrap(),
            Permission::None,
            "{kind}"
        );
        let path = if kind == "gitlab" {
            "/members/all/2"
        } else {
            "/collaborators/alice/permission"
        };
        s.fake.fail("GET", path, 403, &[], 1);
        let e = s.forge.permission(&s.repo, &alice).await.unwrap_err();
        assert_eq!(e.status(), Some(403), "{kind}");
        assert!(e.to_string().contains("lacks the permission"), "{e}");
    }
}

#[tokio::test]
async fn webhooks_are_created_once_and_repaired() {
    for kind in KINDS {
        let s = setup(kind).await;
        let target = HookTarget::Repo(s.repo.clone());
        let spec = HookSpec {
            url: "https://bot.example/webhook".into(),
            secret: Token::new("hook-secret"),
        };
        assert_eq!(
            s.forge.upsert_webhook(&target, &spec).await.unwrap(),
            HookOutcome::Created,
            "{kind}"
        );
        assert_eq!(
            s.forge.upsert_webhook(&target, &spec).await.unwrap(),
            HookOutcome::Unchanged,
            "{kind}"
        );
        {
            let mut f = s.fake.state.lock().unwrap();
            assert_eq!(f.hooks.len(), 1);
            let h = &mut f.hooks[0];
            if kind == "gitlab" {
                h["note_events"] = json!(false);
            } else {
                h["events"] = json!(["push"]);
            }
        }
        assert_eq!(
            s.forge.upsert_webhook(&target, &spec).await.unwrap(),
            HookOutcome::Updated,
            "{kind}"
        );
        assert_eq!(s.fake.state.lock().unwrap().hooks.len(), 1, "{kind}");
        let sent = s
            .fake
            .requests()
            .into_iter()
            .find(|r| r.method == "POST")
            .unwrap();
        let secret = if kind == "gitlab" {
            &sent.body.as_ref().unwrap()["token"]
        } else {
            &sent.body.as_ref().unwrap()["config"]["secret"]
        };
        assert_eq!(secret, "hook-secret", "{kind}");
    }
}

#[tokio::test]
async fn organisation_hooks_and_what_the_forge_tells_of_deliveries() {
    let url = "https://bot.example/webhook";
    for kind in KINDS {
        let s = setup(kind).await;
        let org = HookTarget::Org("acme".into());
        let spec = HookSpec {
            url: url.into(),
            secret: Token::new("hook-secret"),
        };
        assert_eq!(
            s.forge.webhook_health(&org, url).await.unwrap(),
            HookHealth::Missing,
            "{kind}"
        );
        assert_eq!(
            s.forge.upsert_webhook(&org, &spec).await.unwrap(),
            HookOutcome::Created,
            "{kind}"
        );
        assert_eq!(
            s.forge.upsert_webhook(&org, &spec).await.unwrap(),
            HookOutcome::Unchanged,
            "{kind}"
        );
        {
            let f = s.fake.state.lock().unwrap();
            assert_eq!((f.org_hooks.len(), f.hooks.len()), (1, 0), "{kind}");
        }
        let health = s.forge.webhook_health(&org, url).await.unwrap();
        match kind {
            "github" => assert_eq!(health, HookHealth::Healthy("no deliveries yet".into())),
            "gitlab" => assert!(matches!(health, HookHealth::Healthy(_)), "{health:?}"),
            _ => assert!(
                matches!(&health, HookHealth::Unknown(w) if w.contains("does not expose")),
                "{kind}: {health:?}"
            ),
        }
        // The forge reports failures: GitHub's delivery log, GitLab's disabled hook.
        {
            let mut f = s.fake.state.lock().unwrap();
            let id = f.org_hooks[0]["id"].as_u64().unwrap();
            f.hook_deliveries.insert(
                id,
                vec![
                    json!({ "id": 3, "status_code": 502, "status": "Bad Gateway", "event": "push", "delivered_at": "2026-11-22T08:00:00Z" }),
                    json!({ "id": 2, "status_code": 202, "status": "OK", "event": "push", "delivered_at": "2026-11-22T07:59:00Z" }),
                ],
            );
            f.org_hooks[0]["alert_status"] = json!("temporarily_disabled");
            f.org_hooks[0]["disabled_until"] = json!("2026-11-22T09:00:00Z");
        }
        let health = s.forge.webhook_health(&org, url).await.unwrap();
        match kind {
            "github" => assert_eq!(
                health,
                HookHealth::Failing(
                    "1 of the last 2 deliveries failed; the latest failure: push at 2026-11-22T08:00:00Z got HTTP 502".into()
                )
            ),
            "gitlab" => assert_eq!(
                health,
                HookHealth::Failing(
                    "GitLab temporarily disabled the hook after failed deliveries (until 2026-11-22T09:00:00Z)".into()
                )
            ),
            _ => assert!(matches!(health, HookHealth::Unknown(_)), "{kind}"),
        }
        // An organisation the token cannot administer: the forge's refusal, clearly.
        s.fake.fail("POST", "/hooks", 403, &[], 1);
        let e = s
            .forge
            .upsert_webhook(
                &org,
                &HookSpec {
                    url: "https://other.example/webhook".into(),
                    secret: Token::new("x"),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(403), "{kind}");
    }
}

#[tokio::test]
async fn settings_are_read_and_applied_to_the_desired_state() {
    for kind in KINDS {
        let s = setup(kind).await;
        let before = s.forge.settings(&s.repo, "main").await.unwrap();
        assert!(
            before.allow_merge_commit && before.protection.is_none(),
            "{kind}: {before:?}"
        );
        let contexts = if kind == "gitlab" {
            vec![]
        } else {
            vec!["ci/build".to_owned(), "trunkwarden/policy".to_owned()]
        };
        let pusher = if kind == "gitlab" { "1" } else { "trunkwarden" };
        let desired = RepoSettings {
            allow_squash: true,
            allow_merge_commit: false,
            allow_rebase: false,
            protection: Some(Protection {
                require_pull_request: true,
                required_contexts: contexts,
                push_allowlist: vec![pusher.into()],
            }),
        };
        s.forge
            .apply_settings(&s.repo, "main", &desired)
            .await
            .unwrap();
        let after = s.forge.settings(&s.repo, "main").await.unwrap();
        assert_eq!(after, desired, "{kind}");
        // Applying again is harmless and reads back the same.
        s.forge
            .apply_settings(&s.repo, "main", &desired)
            .await
            .unwrap();
        assert_eq!(
            s.forge.settings(&s.repo, "main").await.unwrap(),
            desired,
            "{kind}"
        );
        if kind == "gitlab" {
            assert_eq!(
                s.fake.state.lock().unwrap().repo["autoclose_referenced_issues"],
                false
            );
            let mut with_contexts = desired.clone();
            with_contexts.protection.as_mut().unwrap().required_contexts = vec!["ci".into()];
            let e = s
                .forge
                .apply_settings(&s.repo, "main", &with_contexts)
                .await
                .unwrap_err();
            assert!(matches!(e, ForgeError::Unsupported { .. }), "{e}");
        }
    }
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    for kind in KINDS {
        let s = setup(kind).await;
        let suffix = if kind == "gitlab" {
            "/merge_requests/7"
        } else {
            "/pulls/7"
        };
        s.fake.fail("GET", suffix, 502, &[], 2);
        assert_eq!(
            s.forge.pull_request(&s.repo, 7).await.unwrap().number,
            7,
            "{kind}"
        );
        let gets = s
            .fake
            .requests()
            .iter()
            .filter(|r| r.path.ends_with(suffix))
            .count();
        assert_eq!(gets, 3, "{kind}: two failures, then success");
        s.fake.fail("GET", suffix, 503, &[], 10);
        let e = s.forge.pull_request(&s.repo, 7).await.unwrap_err();
        assert_eq!(e.status(), Some(503), "{kind}");
        assert!(e.to_string().contains("after retries"), "{e}");
        let gets = s
            .fake
            .requests()
            .iter()
            .filter(|r| r.path.ends_with(suffix))
            .count();
        assert_eq!(gets, 3 + 4, "{kind}: four attempts in all");
        s.fake.state.lock().unwrap().faults.clear();
    }
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_the_forge_asks() {
    for kind in KINDS {
        let s = setup(kind).await;
        let suffix = if kind == "gitlab" {
            "/merge_requests/7"
        } else {
            "/pulls/7"
        };
        let t = Instant::now();
        s.fake.fail("GET", suffix, 429, &[("retry-after", "1")], 1);
        s.forge.pull_request(&s.repo, 7).await.unwrap();
        assert!(
            t.elapsed() >= Duration::from_secs(1),
            "{kind}: waited {:?}",
            t.elapsed()
        );
        // GitHub's secondary limit is a 403 with Retry-After; its primary limit is a 403 with
        // an exhausted X-RateLimit-Remaining and a reset time.
        let reset = (chrono::Utc::now().timestamp() + 1).to_string();
        s.fake.fail("GET", suffix, 403, &[("retry-after", "1")], 1);
        s.fake.fail(
            "GET",
            suffix,
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ],
            1,
        );
        s.forge.pull_request(&s.repo, 7).await.unwrap();
        // Longer than we are willing to wait: a clear error now, not a hung bot.
        s.fake
            .fail("GET", suffix, 429, &[("retry-after", "3600")], 1);
        let t = Instant::now();
        let e = s.forge.pull_request(&s.repo, 7).await.unwrap_err();
        assert!(
            matches!(
                e,
                ForgeError::RateLimited {
                    retry_after_secs: 3600,
                    ..
                }
            ),
            "{kind}: {e}"
        );
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}

#[tokio::test]
async fn a_spent_budget_is_waited_for_and_never_overdrawn() {
    for kind in KINDS {
        let s = setup(kind).await;
        // Three calls left, refilled two seconds from now.
        let reset = chrono::Utc::now().timestamp() + 2;
        s.fake.state.lock().unwrap().budget = Some((5000, 3, reset));
        let t = Instant::now();
        for i in 0..6 {
            // A changed answer each time: a 304 would cost nothing.
            s.fake
                .state
                .lock()
                .unwrap()
                .pulls
                .get_mut(&7)
                .unwrap()
                .title = format!("t{i}");
            let pr = s.forge.pull_request(&s.repo, 7).await.unwrap();
            assert_eq!(pr.number, 7);
        }
        let f = s.fake.state.lock().unwrap();
        assert_eq!(
            f.over_budget, 0,
            "{kind}: called while the budget was spent"
        );
        assert!(
            t.elapsed() >= Duration::from_secs(1),
            "{kind}: did not wait for the refill ({:?})",
            t.elapsed()
        );
        let b = s.forge.budget().expect("the announced budget is kept");
        assert_eq!(b.limit, Some(5000), "{kind}");
        assert_eq!(b.reset_at, reset, "{kind}");
    }
}

#[tokio::test]
async fn tokens_never_appear_in_errors_or_logs() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut errors = Vec::new();
    for kind in KINDS {
        let s = setup(kind).await;
        // A forge that echoes the token back in its error body, after a retried failure.
        let suffix = if kind == "gitlab" {
            "/merge_requests/7"
        } else {
            "/pulls/7"
        };
        s.fake.fail("GET", suffix, 500, &[], 1);
        s.fake
            .state
            .lock()
            .unwrap()
            .faults
            .push_back(support::fake_forge::Fault {
                method: "GET".into(),
                suffix: suffix.into(),
                status: 422,
                headers: vec![],
                body: json!({ "message": format!("token {TOKEN} is not allowed here") }),
                times: 1,
            });
        errors.push(
            s.forge
                .pull_request(&s.repo, 7)
                .await
                .unwrap_err()
                .to_string(),
        );
        // A wrong token: 401, with the hint.
        let wrong = adapter(kind, &s.fake.url, "tw-test-token-RECOGNISABLE-wrong");
        let e = wrong.me().await.unwrap_err();
        assert_eq!(e.status(), Some(401), "{kind}");
        errors.push(e.to_string());
        errors.push(format!("{:?}", Token::new(TOKEN)));
    }
    let logs = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    assert!(logs.contains("retrying"), "the retry was logged: {logs}");
    for text in errors.iter().chain([&logs]) {
        assert!(
            !text.contains(TOKEN) && !text.contains("RECOGNISABLE-wrong"),
            "token leaked: {text}"
        );
    }
    assert!(
        errors
            .iter()
            .any(|e| e.contains("token *** is not allowed")),
        "{errors:?}"
    );
}

#[test]
fn the_contract_check_refuses_what_the_descriptions_do_not_allow() {
    use support::contract::spec;
    let merge = "/repos/acme/app/pulls/7/merge";
    // Gitea's merge style is `do`, Forgejo's `Do`: each description refuses the other's.
    assert!(
        spec("gitea")
            .check("POST", merge, None, Some(&json!({ "do": "squash" })))
            .is_empty()
    );
    let v = spec("gitea").check("POST", merge, None, Some(&json!({ "Do": "squash" })));
    assert!(v.iter().any(|x| x.contains("body.do is required")), "{v:?}");
    assert!(
        v.iter()
            .any(|x| x.contains("body.Do is not a declared field")),
        "{v:?}"
    );
    assert!(
        spec("forgejo")
            .check("POST", merge, None, Some(&json!({ "Do": "squash" })))
            .is_empty()
    );
    let v = spec("gitea").check("POST", merge, None, Some(&json!({ "do": "octopus" })));
    assert!(v.iter().any(|x| x.contains("is not one of")), "{v:?}");
    // A path that does not exist, a method a path does not have, a non-integer number.
    let v = spec("github").check("GET", "/repos/acme/app/pull/7", None, None);
    assert!(v[0].contains("no such path"), "{v:?}");
    let v = spec("github").check("DELETE", "/repos/acme/app/pulls/7", None, None);
    assert!(v[0].contains("has no DELETE"), "{v:?}");
    let v = spec("github").check("PUT", "/repos/acme/app/pulls/seven/merge", None, None);
    assert!(v.iter().any(|x| x.contains("must be an integer")), "{v:?}");
    // A required field missing, a wrong JSON type, an undeclared query parameter.
    let v = spec("github").check(
        "POST",
        "/repos/acme/app/statuses/abc",
        None,
        Some(&json!({ "context": "x" })),
    );
    assert!(
        v.iter().any(|x| x.contains("body.state is required")),
        "{v:?}"
    );
    let v = spec("github").check(
        "PATCH",
        "/repos/acme/app/issues/3",
        Some("perpage=5"),
        Some(&json!({ "state": 1 })),
    );
    assert!(
        v.iter().any(|x| x.contains("body.state must be string")),
        "{v:?}"
    );
    assert!(
        v.iter().any(|x| x.contains("query parameter `perpage`")),
        "{v:?}"
    );
    // GitLab, from its documentation.
    let v = spec("gitlab").check(
        "PUT",
        "/projects/acme%2Fapp/merge_requests/7/merge",
        None,
        Some(&json!({ "squash": "yes" })),
    );
    assert!(
        v.iter().any(|x| x.contains("body.squash must be boolean")),
        "{v:?}"
    );
    let v = spec("gitlab").check(
        "POST",
        "/projects/acme%2Fapp/merge_requests/7/note",
        None,
        None,
    );
    assert!(v[0].contains("no such path"), "{v:?}");
}

#[tokio::test]
#[should_panic(expected = "requests the gitea API description does not allow")]
async fn a_fake_forge_fails_the_test_on_a_request_the_description_does_not_allow() {
    let s = setup("gitea").await;
    // A misspelt field the fake itself would shrug off; the contract check at drop refuses it.
    let client = support::client();
    let url = format!("{}/api/v1/repos/acme/app/statuses/abc", s.fake.url);
    let resp = client
        .post(url)
        .header("authorization", format!("token {TOKEN}"))
        .header("content-type", "application/json")
        .body(json!({ "contxt": "ci", "state": "success" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    drop(s);
}

#[tokio::test]
async fn the_fake_announces_what_happens_with_signed_real_payloads() {
    use support::fake_forge::Happening;
    use trunkwarden::webhook::{self, Event, Verifier};
    const SECRET: &str = "hook-secret";
    let verifier = Verifier::from_env(|name| match name {
        "TRUNKWARDEN_GITHUB_WEBHOOK_SECRET"
        | "TRUNKWARDEN_GITEA_WEBHOOK_SECRET"
        | "TRUNKWARDEN_GITLAB_WEBHOOK_TOKEN" => Some(SECRET.to_owned()),
        _ => None,
    })
    .unwrap();
    for kind in KINDS {
        let s = setup(kind).await;
        let head = s.sb.ok(&s.bare, &["rev-parse", "feature"]);
        let decode = |what: &Happening| {
            let fx = s.fake.delivery(what, SECRET);
            let forge = webhook::detect(&fx.headers).expect("forge detected");
            assert_eq!(forge.as_str(), kind);
            verifier
                .verify(forge, &fx.headers, &fx.body, chrono::Utc::now().timestamp())
                .expect("signature");
            let meta = webhook::meta(forge, &fx.headers, &fx.body).unwrap();
            assert!(
                meta.delivery_id.starts_with("fake-"),
                "{kind}: {}",
                meta.delivery_id
            );
            let ct = fx.headers.get("content-type").and_then(|v| v.to_str().ok());
            webhook::normalize(forge, &meta.event, ct, &fx.body)
                .unwrap()
                .expect("an event the bot acts on")
        };
        let Event::PullRequest(pr) = decode(&Happening::PrOpened(7)) else {
            panic!("{kind}")
        };
        assert_eq!(
            (pr.number, pr.head_sha.as_str(), pr.repo.full_name.as_str()),
            (7, head.as_str(), "acme/app"),
            "{kind}"
        );
        assert!(!pr.merged);
        let sha = s
            .forge
            .squash_merge(&s.repo, 7, &head, "feat(A-1): a and b (#7)", "")
            .await
            .unwrap();
        let Event::PullRequest(pr) = decode(&Happening::PrMerged(7)) else {
            panic!("{kind}")
        };
        assert!(pr.merged, "{kind}");
        assert_eq!(pr.merge_commit_sha.as_deref(), Some(sha.as_str()), "{kind}");
        let Event::CiStatus(ci) = decode(&Happening::Status {
            sha: sha.clone(),
            context: "ci/build".into(),
            success: true,
        }) else {
            panic!("{kind}")
        };
        assert_eq!(
            (ci.sha.as_str(), ci.state),
            (sha.as_str(), CiState::Success),
            "{kind}"
        );
        let comment = Happening::Comment {
            number: 7,
            comment_id: 901,
            body: "@trunkwarden status".into(),
            author: "bob".into(),
            previous: None,
        };
        let Event::Comment(c) = decode(&comment) else {
            panic!("{kind}")
        };
        assert_eq!(
            (
                c.number,
                c.comment_id,
                c.body.as_str(),
                c.author.login.as_str()
            ),
            (7, 901, "@trunkwarden status", "bob"),
            "{kind}"
        );
    }
}
