//! `trunkwarden webhook install` and `trunkwarden protect` against the fake forge, as an
//! operator runs them: the binary, with tokens and URLs in the environment.

mod support;

use std::process::Output;

use support::fake_forge::FakeForge;
use support::git::{BIN, Sandbox, text};

const TOKEN: &str = "cli-forge-token";
const KINDS: [&str; 4] = ["github", "gitea", "forgejo", "gitlab"];

async fn run(sb: &Sandbox, fake: &FakeForge, args: &[&str]) -> Output {
    let upper = fake.kind.to_ascii_uppercase();
    let secret_var = match fake.kind {
        "github" => "TRUNKWARDEN_GITHUB_WEBHOOK_SECRET",
        "gitlab" => "TRUNKWARDEN_GITLAB_WEBHOOK_TOKEN",
        _ => "TRUNKWARDEN_GITEA_WEBHOOK_SECRET",
    };
    let mut c = sb.command(BIN, sb.dir.path());
    c.args(args)
        .env(format!("TRUNKWARDEN_{upper}_TOKEN"), TOKEN)
        .env(format!("TRUNKWARDEN_{upper}_URL"), &fake.url)
        .env(secret_var, "hook-secret,older-secret");
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_install_twice_leaves_one_hook_and_says_so() {
    for kind in KINDS {
        let sb = Sandbox::new();
        let bare = sb.bare("app.git");
        let fake = FakeForge::start(kind, TOKEN, bare).await;
        let args = [
            "webhook",
            "install",
            "--forge",
            kind,
            "--repo",
            "acme/app",
            "--url",
            "https://bot.example/webhook",
        ];
        let first = run(&sb, &fake, &args).await;
        assert!(first.status.success(), "{kind}: {}", text(&first));
        assert!(
            stdout(&first).starts_with("created the webhook"),
            "{kind}: {}",
            text(&first)
        );
        let second = run(&sb, &fake, &args).await;
        assert!(
            stdout(&second).contains("already as it should be; nothing changed"),
            "{kind}: {}",
            text(&second)
        );
        assert_eq!(fake.state.lock().unwrap().hooks.len(), 1, "{kind}");
        // The secret sent is the first of the rotation list serve accepts.
        let sent = fake
            .requests()
            .into_iter()
            .find(|r| r.method == "POST")
            .unwrap()
            .body
            .unwrap();
        let secret = if kind == "gitlab" {
            &sent["token"]
        } else {
            &sent["config"]["secret"]
        };
        assert_eq!(secret, "hook-secret", "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protect_shows_then_applies_then_has_nothing_to_do() {
    for kind in KINDS {
        let sb = Sandbox::new();
        let bare = sb.bare("app.git");
        let fake = FakeForge::start(kind, TOKEN, bare).await;
        let base = [
            "protect",
            "--forge",
            kind,
            "--repo",
            "acme/app",
            "--context",
            "ci/build",
        ];
        let mut dry = base.to_vec();
        dry.push("--dry-run");
        let out = run(&sb, &fake, &dry).await;
        assert!(out.status.success(), "{kind}: {}", text(&out));
        let said = stdout(&out);
        assert!(
            said.contains("would change merge commits: true → false"),
            "{kind}: {said}"
        );
        assert!(
            said.contains("would change branch protection: none → on"),
            "{kind}: {said}"
        );
        assert!(
            fake.state.lock().unwrap().protection.is_none(),
            "{kind}: a dry run changes nothing"
        );
        assert!(
            !fake.requests().iter().any(|r| r.method != "GET"),
            "{kind}: a dry run only reads"
        );
        if kind == "gitlab" {
            assert!(
                said.contains("note: GitLab cannot require status contexts"),
                "{said}"
            );
        }
        let out = run(&sb, &fake, &base).await;
        assert!(stdout(&out).contains("applied"), "{kind}: {}", text(&out));
        let out = run(&sb, &fake, &base).await;
        assert!(
            stdout(&out).contains("no changes"),
            "{kind}: {}",
            text(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forge_refusing_a_setting_says_what_and_why() {
    for kind in KINDS {
        let sb = Sandbox::new();
        let bare = sb.bare("app.git");
        let fake = FakeForge::start(kind, TOKEN, bare).await;
        let (method, suffix) = match kind {
            "gitlab" => ("PUT", "/projects/acme%2Fapp"),
            _ => ("PATCH", "/repos/acme/app"),
        };
        fake.fail(method, suffix, 403, &[], 1);
        let out = run(
            &sb,
            &fake,
            &["protect", "--forge", kind, "--repo", "acme/app"],
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{kind}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("HTTP 403") && err.contains("lacks the permission"),
            "{kind}: {err}"
        );
        assert!(!err.contains(TOKEN), "{kind}: token leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_what_is_wrong_and_how_to_fix_it() {
    let sb = Sandbox::new();
    let bare = sb.bare("app.git");
    let fake = FakeForge::start("github", TOKEN, bare).await;
    let data = sb.path("data");
    let reset = chrono::Utc::now().timestamp() + 3600;
    fake.state.lock().unwrap().budget = Some((5000, 4321, reset));
    let args = [
        "doctor",
        "--repo",
        "acme/app",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let out = run(&sb, &fake, &args).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = stdout(&out);
    assert!(
        said.contains("ok   github: the token works as @trunkwarden"),
        "{said}"
    );
    // The budget the forge announced, as the calls just made left it.
    assert!(
        said.contains("ok   github: API budget 43") && said.contains(" of 5000 requests left"),
        "{said}"
    );
    assert!(said.contains("FAIL github: @trunkwarden has none access to acme/app — fix: give @trunkwarden write access"), "{said}");
    assert!(
        said.contains(&format!(
            "ok   data directory {} does not exist yet; serve creates it",
            data.display()
        )),
        "{said}"
    );
    fake.state
        .lock()
        .unwrap()
        .permissions
        .insert("trunkwarden".into(), "admin".into());
    fake.state.lock().unwrap().rules = vec![serde_json::json!({
        "type": "required_status_checks",
        "parameters": {
            "strict_required_status_checks_policy": false,
            "required_status_checks": [{ "context": "ci/e2e" }, { "context": "trunkwarden/policy" }]
        }
    })];
    let out = run(&sb, &fake, &args).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout(&out).contains(
            "ok   github: acme/app: the trunk is `main` (the forge's default branch); green on it means ci/e2e (ruleset)"
        ),
        "{}",
        text(&out)
    );
    // A wrong token is named, with the hint, and never printed.
    let mut c = sb.command(BIN, sb.dir.path());
    c.args(args)
        .env("TRUNKWARDEN_GITHUB_TOKEN", "wrong-token-value")
        .env("TRUNKWARDEN_GITHUB_URL", &fake.url)
        .env("TRUNKWARDEN_GITHUB_WEBHOOK_SECRET", "s");
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let said = stdout(&out);
    assert!(
        said.contains("FAIL github: github get authenticated user: HTTP 401"),
        "{said}"
    );
    assert!(!said.contains("wrong-token-value"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisation_hook_installed_once_and_doctor_reads_its_deliveries() {
    let sb = Sandbox::new();
    let bare = sb.bare("app.git");
    let fake = FakeForge::start("github", TOKEN, bare).await;
    fake.state
        .lock()
        .unwrap()
        .permissions
        .insert("trunkwarden".into(), "admin".into());
    let url = "https://bot.example/webhook";
    let install = [
        "webhook", "install", "--forge", "github", "--org", "acme", "--url", url,
    ];
    let first = run(&sb, &fake, &install).await;
    assert!(
        stdout(&first).starts_with(&format!(
            "created the webhook for {url} on organisation acme"
        )),
        "{}",
        text(&first)
    );
    let second = run(&sb, &fake, &install).await;
    assert!(
        stdout(&second).contains("nothing changed"),
        "{}",
        text(&second)
    );
    assert_eq!(fake.state.lock().unwrap().org_hooks.len(), 1);
    let both = run(
        &sb,
        &fake,
        &[
            "webhook", "install", "--forge", "github", "--org", "acme", "--repo", "acme/app",
            "--url", url,
        ],
    )
    .await;
    assert_eq!(both.status.code(), Some(2), "{}", text(&both));

    let data = sb.path("data");
    let doctor = [
        "doctor",
        "--org",
        "acme",
        "--url",
        url,
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let out = run(&sb, &fake, &doctor).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout(&out)
            .contains("ok   github: the webhook on organisation acme works: no deliveries yet"),
        "{}",
        text(&out)
    );
    {
        let mut f = fake.state.lock().unwrap();
        let id = f.org_hooks[0]["id"].as_u64().unwrap();
        f.hook_deliveries.insert(
            id,
            vec![serde_json::json!({ "id": 9, "status_code": 401, "event": "pull_request", "delivered_at": "2026-11-22T08:30:00Z" })],
        );
    }
    let out = run(&sb, &fake, &doctor).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("FAIL github: the webhook on organisation acme fails: 1 of the last 1 deliveries failed; the latest failure: pull_request at 2026-11-22T08:30:00Z got HTTP 401 — fix:"),
        "{}",
        text(&out)
    );
    // Another URL: no such hook, and the command that makes one.
    let other = [
        "doctor",
        "--repo",
        "acme/app",
        "--url",
        "https://elsewhere.example/hook",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let out = run(&sb, &fake, &other).await;
    assert!(
        stdout(&out).contains("FAIL github: no webhook on acme/app sends to https://elsewhere.example/hook — fix: trunkwarden webhook install --forge github --repo acme/app --url https://elsewhere.example/hook"),
        "{}",
        text(&out)
    );
}

#[test]
fn doctor_on_a_laptop_without_a_token_passes_and_creates_nothing() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    let installed = sb.tw(&repo, &["hooks", "install"], None, &[]);
    assert!(installed.status.success());
    let out = sb.tw(&repo, &["doctor"], None, &[]);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(".trunkwarden.toml: the defaults apply"),
        "{said}"
    );
    assert!(said.contains("forge checks skipped"), "{said}");
    assert!(
        said.contains("does not exist yet; serve creates it"),
        "{said}"
    );
    assert!(
        !repo.join("trunkwarden-data").exists(),
        "doctor created the data directory"
    );
}
