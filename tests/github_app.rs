//! trunkwarden as a GitHub App against the fake GitHub, which issues installation tokens only
//! for a JWT signed by the App's key and holds each token to its installation's repositories
//! and its hour: first use, refresh before expiry, two installations, a suspended one, a
//! revoked key — and the engine's story (open → merge → green → done) acting as the App, its
//! commit by the App's bot user.

mod support;

use std::sync::Arc;

use support::fake_app::key_pair;
use support::fake_forge::{FakeForge, Happening};
use support::git::{Sandbox, TOKEN as LEAKED};
use support::story::Story;
use trunkwarden::forge::github::Github;
use trunkwarden::forge::github_app::App;
use trunkwarden::forge::{Forge, RepoRef, Retry};

const APP_ID: u64 = 4242;

fn app(private: &str, url: &str) -> Arc<App> {
    let now = Arc::new(|| chrono::Utc::now().timestamp());
    Arc::new(App::new(APP_ID, private.as_bytes(), url, Retry::default(), now).unwrap())
}

fn quick() -> Retry {
    Retry {
        attempts: 1,
        ..Retry::default()
    }
}

/// A fake GitHub with the App registered on `acme/app` (installation 1).
async fn fake_with_app() -> (Sandbox, FakeForge, String) {
    let sb = Sandbox::new();
    let work = sb.repo("w");
    support::git::write(&work, "README.md", "app\n");
    sb.ok(&work, &["add", "-A"]);
    sb.ok(&work, &["commit", "-q", "-m", "chore: start"]);
    let origin = sb.bare("origin.git");
    sb.ok(
        &work,
        &[
            "push",
            "-q",
            origin.to_str().unwrap(),
            "HEAD:refs/heads/main",
        ],
    );
    let fake = FakeForge::start("github", "unused-pat", origin).await;
    let (private, public) = key_pair();
    fake.register_app(APP_ID, "tw-app", &public);
    fake.add_pull(7, "alice", "main", "feat: x", "");
    (sb, fake, private)
}

fn issued(fake: &FakeForge) -> Vec<(String, u64)> {
    let f = fake.state.lock().unwrap();
    f.app
        .as_ref()
        .unwrap()
        .issued
        .iter()
        .map(|(t, i, _)| (t.clone(), *i))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_bought_with_a_signed_jwt_and_bought_again_before_it_expires() {
    let (_sb, fake, private) = fake_with_app().await;
    // Tokens that last 302 s: kept while more than five minutes are left, then bought again.
    fake.state.lock().unwrap().app.as_mut().unwrap().ttl = 302;
    let gh = Github::with_app(&fake.url, app(&private, &fake.url), quick()).unwrap();
    let repo = RepoRef::parse("acme/app").unwrap();
    assert_eq!(gh.pull_request(&repo, 7).await.unwrap().number, 7);
    gh.pull_request(&repo, 7).await.unwrap();
    assert_eq!(
        issued(&fake).len(),
        1,
        "the token is kept while it is fresh"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    gh.pull_request(&repo, 7).await.unwrap();
    assert_eq!(issued(&fake).len(), 2, "bought again before it expires");
    // The App's identity is its bot user, found without a user token.
    let me = gh.me().await.unwrap();
    assert_eq!(me.login, "tw-app[bot]");
    assert_eq!(
        gh.commit_identity().await.unwrap(),
        Some((
            "tw-app[bot]".to_owned(),
            format!(
                "{}+tw-app[bot]@users.noreply.github.com",
                41_000_000 + APP_ID
            )
        ))
    );
    assert!(
        fake.contract_violations().is_empty(),
        "{:?}",
        fake.contract_violations()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_installations_each_use_their_own_token() {
    let (sb, fake, private) = fake_with_app().await;
    let other = sb.path("origin.git");
    fake.add_repo("acme", "lib", other);
    fake.state
        .lock()
        .unwrap()
        .app
        .as_mut()
        .unwrap()
        .installations
        .push((2, vec!["acme/lib".into()], false));
    let gh = Github::with_app(&fake.url, app(&private, &fake.url), quick()).unwrap();
    let (a, b) = (
        RepoRef::parse("acme/app").unwrap(),
        RepoRef::parse("acme/lib").unwrap(),
    );
    gh.ci_results(&a, "0123456789abcdef0123456789abcdef01234567")
        .await
        .unwrap();
    gh.ci_results(&b, "0123456789abcdef0123456789abcdef01234567")
        .await
        .unwrap();
    let tokens = issued(&fake);
    assert_eq!(tokens.iter().map(|(_, i)| *i).collect::<Vec<_>>(), [1, 2]);
    // The resync walks every repository of every installation.
    let mut all = gh.installed_repositories().await.unwrap();
    all.sort();
    assert_eq!(all, ["acme/app", "acme/lib"]);
    // Each repository's calls carried its own installation's token.
    let f = fake.state.lock().unwrap();
    for (repo, (token, _)) in ["/repos/acme/app/", "/repos/acme/lib/"].iter().zip(&tokens) {
        let auths: Vec<String> = f
            .requests
            .iter()
            .filter(|r| r.path.starts_with(repo) && !r.path.ends_with("/installation"))
            .filter_map(|r| {
                r.headers
                    .get("authorization")?
                    .to_str()
                    .ok()
                    .map(str::to_owned)
            })
            .collect();
        assert!(!auths.is_empty());
        assert!(
            auths.iter().all(|a| *a == format!("Bearer {token}")),
            "{repo}: {auths:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_installation_and_a_revoked_key_fail_with_what_github_said() {
    let (_sb, fake, private) = fake_with_app().await;
    let repo = RepoRef::parse("acme/app").unwrap();
    fake.state
        .lock()
        .unwrap()
        .app
        .as_mut()
        .unwrap()
        .installations[0]
        .2 = true;
    let gh = Github::with_app(&fake.url, app(&private, &fake.url), quick()).unwrap();
    let e = gh.pull_request(&repo, 7).await.unwrap_err().to_string();
    assert!(e.contains("403") && e.contains("suspended"), "{e}");

    // A key GitHub no longer knows (revoked, or another App's).
    fake.state
        .lock()
        .unwrap()
        .app
        .as_mut()
        .unwrap()
        .installations[0]
        .2 = false;
    let (stranger, _) = key_pair();
    let gh = Github::with_app(&fake.url, app(&stranger, &fake.url), quick()).unwrap();
    let e = gh.pull_request(&repo, 7).await.unwrap_err().to_string();
    assert!(e.contains("401") && e.contains("JSON web token"), "{e}");
    assert!(
        issued(&fake).is_empty(),
        "no token for a bad key or a suspended installation"
    );

    // A key that is not a key is refused before any call.
    let bad = App::new(
        APP_ID,
        b"-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n",
        &fake.url,
        quick(),
        Arc::new(|| 0),
    );
    assert!(bad.err().unwrap().contains("not an RSA key in PEM form"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_acts_as_the_app_and_commits_as_its_bot_user() {
    let (private, public) = key_pair();
    let holder = Arc::new(std::sync::Mutex::new(String::new()));
    let url = holder.clone();
    // The App needs the fake's URL, which exists only once the story starts it.
    let s = Story::with_app_from(move |fake| {
        fake.register_app(APP_ID, "tw-app", &public);
        *url.lock().unwrap() = fake.url.clone();
        app(&private, &fake.url)
    })
    .await;
    // The pull request carries a secret: the App's check run annotates it at its line.
    let work = s.sb.path("w");
    support::git::write(&work, "config.py", &format!("token = \"{LEAKED}\"\n"));
    s.sb.ok(&work, &["add", "-A"]);
    s.sb.ok(&work, &["commit", "-q", "-m", "feat(T-1): configure"]);
    s.sb.ok(
        &work,
        &["push", "-q", s.origin.to_str().unwrap(), "t-1-oidc"],
    );
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
    s.until("check runs", |s| {
        s.fake.state.lock().unwrap().check_runs.len() == 2
    })
    .await;
    {
        let f = s.fake.state.lock().unwrap();
        let secrets = f
            .check_runs
            .iter()
            .find(|c| c["name"] == "trunkwarden/secrets")
            .unwrap();
        assert_eq!(secrets["head_sha"], head.as_str());
        assert_eq!(secrets["conclusion"], "failure");
        let a = &secrets["output"]["annotations"][0];
        assert_eq!(
            (a["path"].as_str(), a["start_line"].as_u64()),
            (Some("config.py"), Some(1))
        );
        assert_eq!(a["annotation_level"], "failure");
        let all = serde_json::to_string(&f.check_runs).unwrap();
        assert!(
            !all.contains(LEAKED),
            "the secret is only ever masked: {all}"
        );
        // No commit statuses of the bot's own: an App reports check runs.
        assert!(
            !f.ci
                .iter()
                .any(|c| !c.check_run && c.context.starts_with("trunkwarden/"))
        );
    }
    // "Re-run" on the check run: the checks run again on that head.
    {
        use trunkwarden::queue::worker::Handler as _;
        use trunkwarden::webhook::event::{Event, Recheck, Repo};
        let fx = s
            .fake
            .delivery(&Happening::PrOpened(7), support::story::SECRET);
        let (d, _) = support::delivery_of(&fx);
        let again = Event::Recheck(Recheck {
            repo: Repo {
                full_name: "acme/app".into(),
                id: None,
            },
            sha: head.clone(),
            pulls: Vec::new(),
        });
        s.engine.handle(&d, &again).await.unwrap();
        assert_eq!(s.fake.state.lock().unwrap().check_runs.len(), 4);
    }
    let merge = s.merge().await;
    s.ci(&head, "ci/build", "success");
    s.send(&Happening::PrMerged(7)).await;
    s.ci(&merge, "ci/build", "success");
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
    let authors = s.sb.ok(
        &s.origin,
        &["log", "--format=%an <%ae> / %cn <%ce>", "-1", "main"],
    );
    let bot = format!(
        "tw-app[bot] <{}+tw-app[bot]@users.noreply.github.com>",
        41_000_000 + APP_ID
    );
    assert_eq!(authors, format!("{bot} / {bot}"));
    // Every call carried an installation token; the sticky comment is the bot user's.
    {
        let f = s.fake.state.lock().unwrap();
        assert!(!f.app.as_ref().unwrap().issued.is_empty());
        let sticky = f
            .comments
            .iter()
            .find(|c| c.body.contains("trunkwarden:task"))
            .unwrap();
        assert_eq!(sticky.author.1, "tw-app[bot]");
    }
    assert!(!holder.lock().unwrap().is_empty());

    // Suspended: the repositories the App knew of are no longer watched — no resync of them.
    use trunkwarden::queue::worker::Handler as _;
    use trunkwarden::webhook::event::{Event, Installation, InstallationAction, Repo};
    let fx = s
        .fake
        .delivery(&Happening::PrOpened(7), support::story::SECRET);
    let (d, _) = support::delivery_of(&fx);
    let change = |action, added: &[&str]| {
        Event::Installation(Installation {
            id: 1,
            action,
            added: added
                .iter()
                .map(|n| Repo {
                    full_name: (*n).to_owned(),
                    id: None,
                })
                .collect(),
            removed: Vec::new(),
        })
    };
    assert_eq!(s.engine.resync().await.len(), 1);
    s.fake
        .state
        .lock()
        .unwrap()
        .app
        .as_mut()
        .unwrap()
        .installations[0]
        .2 = true;
    s.engine
        .handle(&d, &change(InstallationAction::Stopped, &[]))
        .await
        .unwrap();
    assert!(
        s.engine.resync().await.is_empty(),
        "a suspended installation's repositories rest"
    );
    // Added again: watched, and reconciled at once.
    s.fake
        .state
        .lock()
        .unwrap()
        .app
        .as_mut()
        .unwrap()
        .installations[0]
        .2 = false;
    s.engine
        .handle(&d, &change(InstallationAction::Repositories, &["acme/app"]))
        .await
        .unwrap();
    let again = s.engine.resync().await;
    assert_eq!(again.len(), 1);
    assert!(again[0].1.is_ok(), "{:?}", again[0].1);
    // Removed from the installation (GitHub lists it no more): no longer resynced.
    s.fake
        .state
        .lock()
        .unwrap()
        .app
        .as_mut()
        .unwrap()
        .installations[0]
        .1
        .clear();
    let removed = Event::Installation(Installation {
        id: 1,
        action: InstallationAction::Repositories,
        added: Vec::new(),
        removed: vec![Repo {
            full_name: "acme/app".into(),
            id: None,
        }],
    });
    s.engine.handle(&d, &removed).await.unwrap();
    assert!(
        s.engine.resync().await.is_empty(),
        "a removed repository rests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_is_made_from_a_manifest_and_its_code_traded_for_files() {
    use std::os::unix::fs::PermissionsExt;
    use support::git::{BIN, text};
    let (sb, fake, _) = fake_with_app().await;
    let page = sb.path("app.html");
    let out = std::process::Command::new(BIN)
        .args([
            "github-app",
            "manifest",
            "--url",
            "https://bot.example",
            "--org",
            "acme",
            "--out",
        ])
        .arg(&page)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["hook_attributes"]["url"], "https://bot.example/webhook");
    assert_eq!(m["default_permissions"]["contents"], "write");
    assert_eq!(m["default_permissions"]["actions"], "read");
    assert!(
        m["default_events"]
            .as_array()
            .unwrap()
            .contains(&"issue_comment".into())
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("action=\"https://github.com/organizations/acme/settings/apps/new\""));
    assert!(html.contains("&quot;default_permissions&quot;"), "{html}");
    assert!(text(&out).contains("actions: read — read a failed job's log"));

    let (key, secret) = (sb.path("app.pem"), sb.path("secret"));
    let out = std::process::Command::new(BIN)
        .args([
            "github-app",
            "convert",
            "good-code",
            "--api",
            &fake.url,
            "--key-out",
        ])
        .arg(&key)
        .arg("--secret-out")
        .arg(&secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("TRUNKWARDEN_GITHUB_APP_ID=4242"), "{said}");
    assert!(
        !said.contains("whsec-from-github") && !said.contains("PRIVATE KEY"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "whsec-from-github"
    );
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A used or wrong code is a clear error.
    let out = std::process::Command::new(BIN)
        .args([
            "github-app",
            "convert",
            "spent",
            "--api",
            &fake.url,
            "--key-out",
        ])
        .arg(&key)
        .arg("--secret-out")
        .arg(&secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("single-use"), "{}", text(&out));
    assert!(
        fake.contract_violations().is_empty(),
        "{:?}",
        fake.contract_violations()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_apps_key_and_its_installations_permissions() {
    use support::git::{BIN, text};
    let (sb, fake, private) = fake_with_app().await;
    let key = sb.path("app.pem");
    std::fs::write(&key, &private).unwrap();
    let cwd = sb.path("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    let doctor = || {
        let out = std::process::Command::new(BIN)
            .args(["doctor", "--repo", "acme/app"])
            .current_dir(&cwd)
            .env_remove("TRUNKWARDEN_GITHUB_TOKEN")
            .env("TRUNKWARDEN_GITHUB_APP_ID", APP_ID.to_string())
            .env("TRUNKWARDEN_GITHUB_APP_KEY_FILE", &key)
            .env("TRUNKWARDEN_GITHUB_URL", &fake.url)
            .env("TRUNKWARDEN_GITHUB_WEBHOOK_SECRET", "s")
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    };
    let (code, said) = doctor();
    assert!(
        said.contains("ok   github app 4242: the key parses and GitHub accepts its JWT; it acts as @tw-app[bot]"),
        "{said}"
    );
    assert!(
        said.contains("installation 1 on acme/app has every permission the bot needs"),
        "{said}"
    );
    assert_eq!(code, Some(0), "{said}");
    // The owner declined new permissions: doctor names them and the fix.
    fake.state.lock().unwrap().app.as_mut().unwrap().permissions = serde_json::json!({ "contents": "write", "pull_requests": "write", "issues": "read", "metadata": "read" });
    let (code, said) = doctor();
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("lacks issues: write (read)") && said.contains("actions: read (none)"),
        "{said}"
    );
    // A key GitHub does not know.
    let (stranger, _) = key_pair();
    std::fs::write(&key, stranger).unwrap();
    let (code, said) = doctor();
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("a revoked one is refused"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_the_installation_lacks_is_said_in_the_sticky_comment() {
    let (private, public) = key_pair();
    let s = Story::with_app_from(move |fake| {
        fake.register_app(APP_ID, "tw-app", &public);
        app(&private, &fake.url)
    })
    .await;
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    // The owner did not grant issues: write — GitHub refuses closing the issue.
    s.fake.fail("PATCH", "/issues/3", 403, &[], 100);
    let merge = s.merge().await;
    s.send(&Happening::PrMerged(7)).await;
    s.ci(&merge, "ci/build", "success");
    s.send(&Happening::Status {
        sha: merge.clone(),
        context: "ci/build".into(),
        success: true,
    })
    .await;
    s.until("the refusal in the sticky comment", |s| {
        s.sticky(7).contains("Not done yet: cannot close #3")
    })
    .await;
    let sticky = s.sticky(7);
    assert!(
        sticky.contains("HTTP 403")
            && sticky.contains("GitHub App's installation lacks the permission")
            && sticky.contains("trunkwarden doctor --repo"),
        "{sticky}"
    );
    assert!(
        !s.row("T-1").contains("| done "),
        "done before its issue closed"
    );
}
