//! trunkwarden beside the hook managers teams already run, each the real one from its
//! registry: husky (npm) keeps the team's hooks and gains trunkwarden's line; lefthook (npm) and
//! pre-commit (PyPI) get a refusal with the exact snippet, and the snippet, added, works.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::git::{BIN, Sandbox, TOKEN, stderr, text, write};

/// PATH with the trunkwarden under test first, as a developer who installed it has.
fn path_with_trunkwarden(extra: &[&Path]) -> String {
    let bin = Path::new(BIN).parent().unwrap();
    let mut parts: Vec<PathBuf> = vec![bin.to_owned()];
    parts.extend(extra.iter().map(|p| p.to_path_buf()));
    parts.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(parts)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn run(sb: &Sandbox, dir: &Path, program: &str, args: &[&str], path: &str) -> Output {
    let mut c = sb.command(program, dir);
    c.args(args).env("PATH", path);
    // The registry client's cache outlives the sandbox: one download per machine.
    if let Some(home) = std::env::var_os("HOME") {
        c.env("npm_config_cache", Path::new(&home).join(".npm"));
        c.env("PIP_CACHE_DIR", Path::new(&home).join(".cache/pip"));
    }
    c.output().unwrap()
}

fn ok(sb: &Sandbox, dir: &Path, program: &str, args: &[&str], path: &str) -> String {
    let out = run(sb, dir, program, args, path);
    assert!(out.status.success(), "{program} {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn npm_project(sb: &Sandbox, repo: &Path, package: &str, path: &str) {
    write(
        repo,
        "package.json",
        "{\"name\":\"app\",\"version\":\"1.0.0\",\"private\":true}\n",
    );
    ok(
        sb,
        repo,
        "npm",
        &[
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            "-D",
            package,
        ],
        path,
    );
    write(repo, ".gitignore", "node_modules/\n");
}

/// pre-commit from PyPI in a virtual environment of the sandbox; the PATH that finds it.
fn with_pre_commit(sb: &Sandbox, repo: &Path) -> String {
    let venv = sb.path("venv");
    let py = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", text(&py));
    let path = path_with_trunkwarden(&[&venv.join("bin")]);
    ok(sb, repo, "pip", &["install", "-q", "pre-commit"], &path);
    path
}

#[test]
fn husky_keeps_the_teams_hooks_and_runs_trunkwarden_first() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    let path = path_with_trunkwarden(&[]);
    npm_project(&sb, &repo, "husky@9", &path);
    ok(&sb, &repo, "npx", &["husky"], &path);
    let log = sb.path("team.log");
    write(
        &repo,
        ".husky/pre-commit",
        &format!("echo team >> '{}'\n", log.display()),
    );
    sb.ok(&repo, &["switch", "-q", "-c", "work"]);

    let out = run(&sb, &repo, BIN, &["hooks", "install"], &path);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("husky: trunkwarden's line added first"),
        "{said}"
    );
    // husky's own directory is untouched: its next `npm install` keeps trunkwarden.
    assert!(
        !std::fs::read_to_string(repo.join(".husky/_/pre-commit"))
            .unwrap_or_default()
            .contains("trunkwarden")
    );

    // A secret is refused through husky; the team's hook did not run after the refusal.
    write(&repo, "config.py", &format!("token = \"{TOKEN}\"\n"));
    sb.ok(&repo, &["add", "config.py"]);
    let refused = run(&sb, &repo, "git", &["commit", "-m", "feat: config"], &path);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(stderr(&refused).contains("[secrets]"), "{}", text(&refused));
    assert!(!stderr(&refused).contains(TOKEN));

    // A clean commit passes both, the team's hook included.
    write(&repo, "config.py", "token = os.environ['TOKEN']\n");
    sb.ok(&repo, &["add", "-A"]);
    let clean = run(
        &sb,
        &repo,
        "git",
        &["commit", "-q", "-m", "feat: config"],
        &path,
    );
    assert!(clean.status.success(), "{}", text(&clean));
    assert!(std::fs::read_to_string(&log).unwrap().contains("team"));

    // The team's hook still refuses when it fails.
    let mut script = std::fs::read_to_string(repo.join(".husky/pre-commit")).unwrap();
    script.push_str("exit 1\n");
    write(&repo, ".husky/pre-commit", &script);
    write(&repo, "b.txt", "b\n");
    sb.ok(&repo, &["add", "b.txt"]);
    let blocked = run(&sb, &repo, "git", &["commit", "-q", "-m", "feat: b"], &path);
    assert!(
        !blocked.status.success(),
        "the team's failing hook was disabled"
    );

    // After `npm install` runs husky again, trunkwarden is still called.
    ok(&sb, &repo, "npx", &["husky"], &path);
    let status = ok(&sb, &repo, BIN, &["hooks", "status"], &path);
    assert!(status.contains("installed through husky"), "{status}");
    let removed = ok(&sb, &repo, BIN, &["hooks", "uninstall"], &path);
    assert!(removed.contains("trunkwarden's line removed"), "{removed}");
    assert!(
        std::fs::read_to_string(repo.join(".husky/pre-commit"))
            .unwrap()
            .contains("echo team")
    );
}

#[test]
fn lefthook_gets_the_snippet_and_the_snippet_works() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    let path = path_with_trunkwarden(&[]);
    npm_project(&sb, &repo, "lefthook@1", &path);
    write(
        &repo,
        "lefthook.yml",
        "pre-commit:\n  commands:\n    team:\n      run: echo team\n",
    );
    let out = run(&sb, &repo, BIN, &["hooks", "install"], &path);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("lefthook manages this repository's hooks"),
        "{err}"
    );
    assert!(
        !repo.join(".git/hooks/pre-commit").exists()
            || !std::fs::read_to_string(repo.join(".git/hooks/pre-commit"))
                .unwrap()
                .contains("trunkwarden hook shim"),
        "wrote into git's hooks anyway"
    );
    // The snippet, as printed, merged into the team's file by hand.
    let snippet: String = err
        .lines()
        .skip_while(|l| !l.starts_with("pre-commit:"))
        .take_while(|l| !l.starts_with("then run"))
        .collect::<Vec<_>>()
        .join("\n");
    let merged = snippet.replace(
        "pre-commit:\n  commands:\n",
        "pre-commit:\n  commands:\n    team:\n      run: echo team\n",
    );
    write(&repo, "lefthook.yml", &format!("{merged}\n"));
    ok(&sb, &repo, "npx", &["lefthook", "install"], &path);
    sb.ok(&repo, &["switch", "-q", "-c", "work"]);
    write(&repo, "config.py", &format!("token = \"{TOKEN}\"\n"));
    sb.ok(&repo, &["add", "config.py"]);
    let refused = run(&sb, &repo, "git", &["commit", "-m", "feat: config"], &path);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("[secrets]"), "{}", text(&refused));
    // Status sees trunkwarden in the team's lefthook.yml: installed, through lefthook.
    let status = ok(&sb, &repo, BIN, &["hooks", "status"], &path);
    assert!(
        status.contains("pre-commit: installed through lefthook"),
        "{status}"
    );
}

#[test]
fn pre_commit_gets_the_snippet_and_the_snippet_works() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    let path = with_pre_commit(&sb, &repo);
    write(&repo, ".pre-commit-config.yaml", "repos: []\n");
    let out = run(&sb, &repo, BIN, &["hooks", "install"], &path);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    let snippet: String = err
        .lines()
        .skip_while(|l| !l.starts_with("repos:"))
        .take_while(|l| !l.starts_with("then run"))
        .collect::<Vec<_>>()
        .join("\n");
    write(&repo, ".pre-commit-config.yaml", &format!("{snippet}\n"));
    sb.ok(&repo, &["add", ".pre-commit-config.yaml"]);
    ok(
        &sb,
        &repo,
        "pre-commit",
        &[
            "install",
            "--hook-type",
            "pre-commit",
            "--hook-type",
            "commit-msg",
        ],
        &path,
    );
    sb.ok(&repo, &["switch", "-q", "-c", "work"]);
    write(&repo, "config.py", &format!("token = \"{TOKEN}\"\n"));
    sb.ok(&repo, &["add", "config.py"]);
    let refused = run(&sb, &repo, "git", &["commit", "-m", "feat: config"], &path);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("[secrets]"), "{}", text(&refused));
    // And the message rule through the commit-msg stage.
    write(&repo, "config.py", "token = os.environ['TOKEN']\n");
    sb.ok(&repo, &["add", "-A"]);
    let bad = run(&sb, &repo, "git", &["commit", "-m", "Update config"], &path);
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(text(&bad).contains("missing the type"), "{}", text(&bad));
    let good = run(
        &sb,
        &repo,
        "git",
        &["commit", "-q", "-m", "feat: config"],
        &path,
    );
    assert!(good.status.success(), "{}", text(&good));
}

#[test]
fn trunkwarden_is_a_pre_commit_hook_repository() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    let path = with_pre_commit(&sb, &repo);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join(".pre-commit-hooks.yaml");
    ok(
        &sb,
        &repo,
        "pre-commit",
        &["validate-manifest", manifest.to_str().unwrap()],
        &path,
    );
    // A hook repository carrying this checkout's manifest (the checkout itself need not be a
    // git repository), its system hook on a staged secret.
    let hooks_repo = sb.repo("hooks-repo");
    std::fs::copy(&manifest, hooks_repo.join(".pre-commit-hooks.yaml")).unwrap();
    sb.ok(&hooks_repo, &["add", "-A"]);
    sb.ok(&hooks_repo, &["commit", "-q", "-m", "chore: the manifest"]);
    let here = hooks_repo.to_str().unwrap();
    sb.ok(&repo, &["switch", "-q", "-c", "work"]);
    write(&repo, "config.py", &format!("token = \"{TOKEN}\"\n"));
    sb.ok(&repo, &["add", "config.py"]);
    let out = run(
        &sb,
        &repo,
        "pre-commit",
        &["try-repo", here, "trunkwarden-system"],
        &path,
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("[secrets]"), "{}", text(&out));
    assert!(!text(&out).contains(TOKEN), "secret printed whole");
    write(&repo, "config.py", "token = os.environ['TOKEN']\n");
    sb.ok(&repo, &["add", "config.py"]);
    let clean = run(
        &sb,
        &repo,
        "pre-commit",
        &["try-repo", here, "trunkwarden-system"],
        &path,
    );
    assert!(clean.status.success(), "{}", text(&clean));
}

#[test]
fn husky_installed_after_trunkwarden_is_reported_and_joined_on_the_next_install() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    let path = path_with_trunkwarden(&[]);
    let first = run(&sb, &repo, BIN, &["hooks", "install"], &path);
    assert!(first.status.success(), "{}", text(&first));
    // husky arrives afterwards and points git at its own directory.
    npm_project(&sb, &repo, "husky@9", &path);
    ok(&sb, &repo, "npx", &["husky"], &path);
    let doctor = run(&sb, &repo, BIN, &["doctor"], &path);
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(1), "{said}");
    assert!(
        said.contains("FAIL hook pre-commit: not installed: husky owns the hooks"),
        "{said}"
    );
    // The fix doctor names joins husky; a secret is refused again.
    let again = ok(&sb, &repo, BIN, &["hooks", "install"], &path);
    assert!(again.contains("husky:"), "{again}");
    sb.ok(&repo, &["switch", "-q", "-c", "work"]);
    write(&repo, "config.py", &format!("token = \"{TOKEN}\"\n"));
    sb.ok(&repo, &["add", "config.py"]);
    let refused = run(&sb, &repo, "git", &["commit", "-m", "feat: config"], &path);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(stderr(&refused).contains("[secrets]"), "{}", text(&refused));
}

#[test]
fn pre_commit_installed_after_trunkwarden_keeps_it_and_doctor_says_when_it_runs_twice() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    let path = with_pre_commit(&sb, &repo);
    // trunkwarden first, then the team adopts pre-commit: pre-commit keeps the hook it found
    // as `pre-commit.legacy` and runs it, so the secret is still refused.
    ok(&sb, &repo, BIN, &["hooks", "install"], &path);
    write(&repo, ".pre-commit-config.yaml", "repos: []\n");
    sb.ok(&repo, &["add", ".pre-commit-config.yaml"]);
    ok(&sb, &repo, "pre-commit", &["install"], &path);
    assert!(repo.join(".git/hooks/pre-commit.legacy").exists());
    sb.ok(&repo, &["switch", "-q", "-c", "work"]);
    write(&repo, "config.py", &format!("token = \"{TOKEN}\"\n"));
    sb.ok(&repo, &["add", "config.py"]);
    let refused = run(&sb, &repo, "git", &["commit", "-m", "feat: config"], &path);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("[secrets]"), "{}", text(&refused));
    // Adding trunkwarden to the config as well would run every check twice: doctor says so,
    // and how to stop it — not to install once more.
    write(
        &repo,
        ".pre-commit-config.yaml",
        "repos:\n  - repo: local\n    hooks:\n      - id: trunkwarden\n        name: trunkwarden\n        entry: trunkwarden hook pre-commit\n        language: system\n        pass_filenames: false\n        always_run: true\n",
    );
    let doctor = run(&sb, &repo, BIN, &["doctor"], &path);
    let report = text(&doctor);
    assert!(
        report.contains("hook pre-commit: runs twice: through pre-commit and as")
            && report.contains("fix: rm ")
            && report.contains("pre-commit.legacy"),
        "{report}"
    );
    assert!(
        !report.contains("fix: trunkwarden hooks install"),
        "{report}"
    );
    // Following the fix leaves it running once, through pre-commit.
    std::fs::remove_file(repo.join(".git/hooks/pre-commit.legacy")).unwrap();
    let report = text(&run(&sb, &repo, BIN, &["doctor"], &path));
    assert!(
        report.contains("hook pre-commit: installed through pre-commit"),
        "{report}"
    );
}

#[test]
fn lefthook_installed_after_trunkwarden_is_reported_and_the_snippet_restores_the_check() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    let path = path_with_trunkwarden(&[]);
    ok(&sb, &repo, BIN, &["hooks", "install"], &path);
    // lefthook arrives afterwards and installs its own hooks over git's (keeping trunkwarden's
    // as `.old`, which it does not run).
    npm_project(&sb, &repo, "lefthook@1", &path);
    write(
        &repo,
        "lefthook.yml",
        "pre-commit:\n  commands:\n    team:\n      run: echo team\n",
    );
    ok(&sb, &repo, "npx", &["lefthook", "install"], &path);
    // doctor says who took the hooks over, and the fix.
    let doctor = run(&sb, &repo, BIN, &["doctor"], &path);
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(1), "{said}");
    for hook in ["pre-commit", "commit-msg", "pre-push"] {
        assert!(
            said.contains(&format!(
                "FAIL hook {hook}: not installed: lefthook owns the hooks"
            )),
            "{said}"
        );
    }
    // The fix: install again prints the snippet for the team's file, writes nothing.
    let again = run(&sb, &repo, BIN, &["hooks", "install"], &path);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    let err = stderr(&again);
    let snippet: String = err
        .lines()
        .skip_while(|l| !l.starts_with("pre-commit:"))
        .take_while(|l| !l.starts_with("then run"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        snippet.contains("run: trunkwarden hook pre-commit"),
        "{err}"
    );
    let merged = snippet.replace(
        "pre-commit:\n  commands:\n",
        "pre-commit:\n  commands:\n    team:\n      run: echo team\n",
    );
    write(&repo, "lefthook.yml", &format!("{merged}\n"));
    ok(&sb, &repo, "npx", &["lefthook", "install"], &path);
    // A secret is refused again, and the team's command still runs.
    sb.ok(&repo, &["switch", "-q", "-c", "work"]);
    write(&repo, "config.py", &format!("token = \"{TOKEN}\"\n"));
    sb.ok(&repo, &["add", "config.py"]);
    let refused = run(&sb, &repo, "git", &["commit", "-m", "feat: config"], &path);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("[secrets]"), "{}", text(&refused));
    assert!(text(&refused).contains("team"), "{}", text(&refused));
    // A clean commit passes through both.
    sb.ok(&repo, &["reset", "-q"]);
    write(&repo, "ok.txt", "fine\n");
    sb.ok(&repo, &["add", "ok.txt"]);
    let clean = run(&sb, &repo, "git", &["commit", "-m", "feat: fine"], &path);
    assert!(clean.status.success(), "{}", text(&clean));
    let report = text(&run(&sb, &repo, BIN, &["doctor"], &path));
    assert!(
        report.contains("hook pre-commit: installed through lefthook"),
        "{report}"
    );
}
