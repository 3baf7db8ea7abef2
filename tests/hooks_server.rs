//! The server-side `pre-receive` as a self-hosted git server runs it: installed with
//! `trunkwarden hooks install --server`, invoked by the real `git receive-pack` on pushes over
//! the file transport, with the pusher's identity in the environment as each host sets it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::git::{BIN, Sandbox, TOKEN, stderr, text, write};

const BOT_EMAIL: &str = "trunkwarden@users.noreply.invalid";
const TABLE: &str = "# Tasks\n\n| id | status | description | depends_on | blocks |\n|---|---|---|---|---|\n| A-1 | not-started | a | | |\n";

fn chmod_x(p: &Path) {
    assert!(
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(p)
            .status()
            .unwrap()
            .success()
    );
}

/// A bare server repository whose `main` carries a policy naming `TW_PUSHER` as the pusher
/// variable, and a clone of it without local hooks (as after `--no-verify`).
struct Server {
    sb: Sandbox,
    bare: PathBuf,
    clone: PathBuf,
}

impl Server {
    fn new(host: &str, policy: &str) -> Server {
        let sb = Sandbox::new();
        let seed = sb.repo("seed");
        write(&seed, ".trunkwarden.toml", policy);
        sb.ok(&seed, &["add", ".trunkwarden.toml"]);
        sb.ok(&seed, &["commit", "-q", "-m", "chore: policy"]);
        let bare = sb.bare("server.git");
        sb.ok(&seed, &["push", "-q", bare.to_str().unwrap(), "main"]);
        let out = install_server(&sb, host, &[&bare]);
        assert!(out.status.success(), "{}", text(&out));
        let clone = sb.path("clone");
        sb.ok(
            sb.dir.path(),
            &[
                "clone",
                "-q",
                bare.to_str().unwrap(),
                clone.to_str().unwrap(),
            ],
        );
        Server { sb, bare, clone }
    }

    fn commit(&self, file: &str, content: &str, msg: &str, env: &[(&str, &str)]) -> String {
        write(&self.clone, file, content);
        self.sb.ok(&self.clone, &["add", file]);
        let out = self
            .sb
            .git_env(&self.clone, &["commit", "-q", "-m", msg], env);
        assert!(out.status.success(), "{}", text(&out));
        self.sb.ok(&self.clone, &["rev-parse", "HEAD"])
    }

    fn push(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut all = vec!["push", "origin"];
        all.extend(args);
        self.sb.git_env(&self.clone, &all, env)
    }

    fn server_ref(&self, name: &str) -> Option<String> {
        let out = self
            .sb
            .git(&self.bare, &["rev-parse", "--verify", "-q", name]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

fn install_server(sb: &Sandbox, host: &str, paths: &[&Path]) -> Output {
    let mut args = vec!["hooks", "install", "--server", "--host", host];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    sb.tw(sb.dir.path(), &args, None, &[])
}

fn refused(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected refusal:\n{}", text(out));
    assert!(err.contains(needle), "missing `{needle}`:\n{}", text(out));
    assert!(!err.contains(TOKEN), "secret printed whole:\n{err}");
}

fn accepted(out: &Output) {
    assert!(out.status.success(), "expected acceptance:\n{}", text(out));
}

const BARE_POLICY: &str = "[hooks]\npusher-env = \"TW_PUSHER\"\n";
const DEV: [(&str, &str); 1] = [("TW_PUSHER", "dev")];
const BOT: [(&str, &str); 1] = [("TW_PUSHER", "trunkwarden")];
const BOT_AUTHOR: [(&str, &str); 2] = [
    ("GIT_AUTHOR_EMAIL", BOT_EMAIL),
    ("GIT_AUTHOR_NAME", "trunkwarden"),
];

#[test]
fn server_install_is_idempotent_and_chains() {
    let sb = Sandbox::new();
    let bare = sb.bare("b.git");
    write(&bare, "hooks/pre-receive", "#!/bin/sh\nexit 0\n");
    chmod_x(&bare.join("hooks/pre-receive"));
    let first = install_server(&sb, "bare", &[&bare]);
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("kept as pre-receive.trunkwarden-chained"),
        "{}",
        text(&first)
    );
    let second = install_server(&sb, "bare", &[&bare]);
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("unchanged"),
        "{}",
        text(&second)
    );
    let gitea = sb.bare("g.git");
    let out = install_server(&sb, "gitea", &[&gitea]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(gitea.join("hooks/pre-receive.d/trunkwarden").exists());
    let gitlab = sb.bare("l.git");
    let global = sb.path("gitlab-global-hooks");
    std::fs::create_dir(&global).unwrap();
    let out = install_server(&sb, "gitlab", &[&gitlab, &global]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        gitlab
            .join("custom_hooks/pre-receive.d/trunkwarden")
            .exists()
    );
    assert!(global.join("pre-receive.d/trunkwarden").exists());
    let out = install_server(&sb, "bare", &[&global]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("not a bare git repository"),
        "{}",
        text(&out)
    );
}

#[test]
fn no_verify_secrets_are_refused_and_no_ref_moves() {
    let s = Server::new("bare", BARE_POLICY);
    s.sb.ok(&s.clone, &["checkout", "-q", "-b", "feature"]);
    s.commit("leak.env", &format!("TOKEN={TOKEN}\n"), "feat: leak", &[]);
    let out = s.push(&["feature"], &DEV);
    refused(&out, "[secrets] leak.env:1");
    assert_eq!(s.server_ref("refs/heads/feature"), None);
    // The local escape hatch is no authority on the server.
    refused(
        &s.push(
            &["feature"],
            &[("TW_PUSHER", "dev"), ("TRUNKWARDEN_SKIP", "all")],
        ),
        "[secrets]",
    );
}

#[test]
fn main_takes_only_the_bots_task_table_commits() {
    let s = Server::new("bare", BARE_POLICY);
    let before = s.server_ref("refs/heads/main");
    s.commit("src.rs", "fn main() {}\n", "feat: code", &[]);
    refused(
        &s.push(&["HEAD:main"], &DEV),
        "[trunk] direct push to `main` by dev",
    );
    // Authored as the bot, pushed by someone else: refused.
    s.sb.ok(&s.clone, &["reset", "-q", "--hard", "origin/main"]);
    s.commit("docs/TASKS.md", TABLE, "chore(tasks): add A-1", &BOT_AUTHOR);
    let out = s.push(&["HEAD:main"], &DEV);
    refused(&out, "[trunk] direct push");
    refused(&out, "[single-writer] docs/TASKS.md");
    assert_eq!(s.server_ref("refs/heads/main"), before);
    // Pushed by the bot: accepted.
    accepted(&s.push(&["HEAD:main"], &BOT));
    // The bot cannot rewrite or delete main, nor push code or merge commits to it.
    s.sb.ok(&s.clone, &["reset", "-q", "--hard", "HEAD~1"]);
    s.commit(
        "docs/TASKS.md",
        &TABLE.replace("| a |", "| b |"),
        "chore(tasks): b",
        &BOT_AUTHOR,
    );
    refused(&s.push(&["+HEAD:main"], &BOT), "non-fast-forward");
    refused(&s.push(&[":main"], &BOT), "deleting `main`");
    s.sb.ok(&s.clone, &["reset", "-q", "--hard", "origin/main"]);
    s.commit("src.rs", "fn main() {}\n", "feat: code", &BOT_AUTHOR);
    refused(
        &s.push(&["HEAD:main"], &BOT),
        "may touch only docs/TASKS.md",
    );
    s.sb.ok(&s.clone, &["reset", "-q", "--hard", "origin/main"]);
    s.sb.ok(&s.clone, &["checkout", "-q", "-b", "side"]);
    s.commit(
        "docs/tasks/orchestrator-learnings.json",
        "[]\n",
        "chore(tasks): learn",
        &BOT_AUTHOR,
    );
    s.sb.ok(&s.clone, &["checkout", "-q", "main"]);
    s.commit(
        "docs/TASKS.md",
        &TABLE.replace("| a |", "| c |"),
        "chore(tasks): c",
        &BOT_AUTHOR,
    );
    let out = s.sb.git_env(
        &s.clone,
        &["merge", "-q", "--no-ff", "--no-edit", "side"],
        &BOT_AUTHOR,
    );
    accepted(&out);
    refused(
        &s.push(&["HEAD:main"], &BOT),
        "merge commit (2 parents) on `main`",
    );
}

#[test]
fn task_table_changes_need_the_bot_on_every_branch_and_an_identity() {
    let s = Server::new("bare", BARE_POLICY);
    s.sb.ok(&s.clone, &["checkout", "-q", "-b", "feature"]);
    s.commit("docs/TASKS.md", TABLE, "chore: sneak", &[]);
    refused(&s.push(&["feature"], &DEV), "[single-writer] docs/TASKS.md");
    // Nobody named: fail closed where identity matters ...
    refused(&s.push(&["feature"], &[]), "cannot tell who is pushing");
    // ... and only there.
    s.sb.ok(&s.clone, &["checkout", "-q", "-b", "code", "origin/main"]);
    s.commit("src.rs", "fn main() {}\n", "feat: code", &[]);
    accepted(&s.push(&["code"], &[]));
}

#[test]
fn quarantined_objects_are_read_and_without_them_the_hook_fails_closed() {
    let sb = Sandbox::new();
    let bare = sb.bare("q.git");
    // A pre-existing hook, chained by install, runs trunkwarden with git's quarantine variables
    // removed: the pushed objects are then invisible, and the hook must refuse, not pass.
    let log = sb.path("control.log");
    write(
        &bare,
        "hooks/pre-receive",
        &format!(
            "#!/bin/sh\nenv -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES -u GIT_QUARANTINE_PATH \
             '{BIN}' hook pre-receive --host bare 2> '{0}'\necho \"exit=$?\" >> '{0}'\nexit 0\n",
            log.display()
        ),
    );
    chmod_x(&bare.join("hooks/pre-receive"));
    let out = install_server(&sb, "bare", &[&bare]);
    assert!(out.status.success(), "{}", text(&out));
    let repo = sb.repo("w");
    sb.ok(&repo, &["checkout", "-q", "-b", "feature"]);
    write(&repo, "leak.env", &format!("TOKEN={TOKEN}\n"));
    sb.ok(&repo, &["add", "leak.env"]);
    sb.ok(&repo, &["commit", "-q", "-m", "feat: leak"]);
    let out = sb.git(&repo, &["push", bare.to_str().unwrap(), "feature"]);
    refused(&out, "[secrets] leak.env:1");
    let control = std::fs::read_to_string(&log).unwrap();
    assert!(
        control.contains("cannot read the pushed object"),
        "{control}"
    );
    assert!(control.contains("exit=2"), "{control}");
}

/// Gitea's own `hooks/pre-receive`, which runs every executable in `pre-receive.d/`.
const GITEA_DISPATCHER: &str = "#!/bin/sh\ndata=$(cat)\nexitcodes=\"\"\nhookname=$(basename \"$0\")\nGIT_DIR=${GIT_DIR:-$(dirname \"$0\")/..}\nfor hook in \"${GIT_DIR}\"/hooks/${hookname}.d/*; do\n  test -x \"${hook}\" && test -f \"${hook}\" || continue\n  echo \"${data}\" | \"${hook}\"\n  exitcodes=\"${exitcodes} $?\"\ndone\nfor i in ${exitcodes}; do\n  [ \"${i}\" -eq 0 ] || exit \"${i}\"\ndone\n";

#[test]
fn gitea_identity_and_its_own_squash_merges() {
    let s = Server::new("gitea", "");
    write(&s.bare, "hooks/pre-receive", GITEA_DISPATCHER);
    chmod_x(&s.bare.join("hooks/pre-receive"));
    s.commit("src.rs", "fn main() {}\n", "feat: code", &[]);
    refused(
        &s.push(&["HEAD:main"], &[("GITEA_PUSHER_NAME", "dev")]),
        "direct push to `main` by dev",
    );
    // Another host's variable does not make anyone the bot here.
    refused(
        &s.push(
            &["HEAD:main"],
            &[("GITEA_PUSHER_NAME", "dev"), ("GL_USERNAME", "trunkwarden")],
        ),
        "by dev",
    );
    // Gitea merging a pull request (GITEA_PR_ID) lands a squash commit.
    accepted(&s.push(
        &["HEAD:main"],
        &[("GITEA_PUSHER_NAME", "dev"), ("GITEA_PR_ID", "7")],
    ));
}

#[test]
fn gitlab_messages_carry_the_prefix() {
    let s = Server::new("gitlab", "");
    let hook = s.bare.join("custom_hooks/pre-receive.d/trunkwarden");
    assert!(hook.exists());
    // Gitaly runs custom hooks itself; here the objects are already in the repository.
    s.sb.ok(&s.clone, &["checkout", "-q", "-b", "x"]);
    let new = s.commit("src.rs", "fn main() {}\n", "feat: code", &[]);
    accepted(&s.push(&["x"], &[]));
    let old = s.server_ref("refs/heads/main").unwrap();
    let input = format!("{old} {new} refs/heads/main\n");
    let run = |protocol: &str| {
        let mut c = s.sb.command(&hook, &s.bare);
        c.env("GL_USERNAME", "dev")
            .env("GL_ID", "user-2")
            .env("GL_PROTOCOL", protocol);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run("ssh");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.lines().all(|l| l.starts_with("GL-HOOK-ERR: ")), "{err}");
    assert!(err.contains("direct push to `main` by dev"), "{err}");
    // `web` alone is no merge: GitLab's web editor and API commits arrive over it too.
    let out = run("web");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("direct push to `main` by dev"),
        "{}",
        text(&out)
    );
    // A merge request merged in GitLab: one commit with the tree of the merge request's head.
    s.sb.ok(&s.bare, &["update-ref", "refs/merge-requests/1/head", &new]);
    let out = run("web");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run("ssh");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn a_broken_policy_on_main_falls_back_to_enforcing_everything() {
    let s = Server::new("bare", "[rules]\ntrunk = \"of\"\n");
    s.commit("src.rs", "fn main() {}\n", "feat: code", &[]);
    let out = s.push(&["HEAD:main"], &DEV);
    refused(&out, "note: HEAD:.trunkwarden.toml");
    refused(&out, "[trunk]");
}

#[test]
fn the_trunk_is_the_bare_repositorys_default_branch() {
    let s = Server::new("bare", BARE_POLICY);
    // The server's HEAD names `trunk`; `main` is an ordinary branch there.
    s.sb.ok(&s.bare, &["branch", "trunk", "main"]);
    s.sb.ok(&s.bare, &["symbolic-ref", "HEAD", "refs/heads/trunk"]);
    s.commit("src.rs", "fn main() {}\n", "feat: code", &[]);
    refused(&s.push(&["HEAD:trunk"], &DEV), "direct push to `trunk`");
    accepted(&s.push(&["HEAD:main"], &DEV));
}

#[test]
fn a_push_of_hundreds_of_refs_is_judged_in_one_walk() {
    let s = Server::new("bare", BARE_POLICY);
    // 300 branches over a shared history of 30 commits; one commit in the middle leaks.
    s.sb.ok(&s.clone, &["checkout", "-q", "-b", "base"]);
    let mut shas = Vec::new();
    for i in 0..30 {
        let content = if i == 17 {
            format!("TOKEN={TOKEN}\n")
        } else {
            format!("n = {i}\n")
        };
        let file = if i == 17 { "leak.env" } else { "n.txt" };
        shas.push(s.commit(file, &content, &format!("feat: step {i}"), &[]));
    }
    let mut args: Vec<String> = (0..300)
        .map(|i| format!("{}:refs/heads/b{i:03}", shas[i % 30]))
        .collect();
    args.push("--atomic".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.push(&refs, &DEV);
    refused(&out, "[secrets] leak.env:1");
    // The leak is reported once, at its commit, however many refs reach it.
    let err = stderr(&out);
    assert!(
        err.contains(&format!("(commit {})", &shas[17][..10])),
        "{err}"
    );
    assert!(err.contains("trunkwarden: 1 problem"), "{err}");
    assert_eq!(s.server_ref("refs/heads/b000"), None);
    // Without the leak the same shape is accepted whole.
    let clean: Vec<String> = (0..300)
        .map(|i| format!("{}:refs/heads/c{i:03}", shas[i % 17]))
        .collect();
    let refs: Vec<&str> = clean.iter().map(String::as_str).collect();
    accepted(&s.push(&refs, &DEV));
    assert_eq!(s.server_ref("refs/heads/c016"), Some(shas[16].clone()));
}

#[test]
fn an_empty_bare_repository_takes_the_push_that_creates_its_trunk_and_no_other() {
    let sb = Sandbox::new();
    let bare = sb.bare("new.git");
    accepted(&install_server(&sb, "bare", &[&bare]));
    let work = sb.repo("project");
    write(&work, ".trunkwarden.toml", BARE_POLICY);
    write(&work, "docs/TASKS.md", TABLE);
    sb.ok(&work, &["add", "."]);
    sb.ok(&work, &["commit", "-q", "-m", "chore: start"]);
    // History with a merge, as an existing project brings it.
    sb.ok(&work, &["checkout", "-q", "-b", "side"]);
    write(&work, "a.txt", "a\n");
    sb.ok(&work, &["add", "a.txt"]);
    sb.ok(&work, &["commit", "-q", "-m", "feat: a"]);
    sb.ok(&work, &["checkout", "-q", "main"]);
    sb.ok(&work, &["merge", "-q", "--no-ff", "--no-edit", "side"]);
    let url = bare.to_str().unwrap();
    // A secret in the first push is refused all the same.
    write(&work, "leak.env", &format!("TOKEN={TOKEN}\n"));
    sb.ok(&work, &["add", "leak.env"]);
    sb.ok(&work, &["commit", "-q", "-m", "chore: env"]);
    refused(
        &sb.git_env(&work, &["push", url, "main"], &DEV),
        "[secrets] leak.env:1",
    );
    sb.ok(&work, &["reset", "-q", "--hard", "HEAD~1"]);
    accepted(&sb.git_env(&work, &["push", url, "main"], &DEV));
    // From then on the trunk exists and moves only through the bot.
    write(&work, "b.txt", "b\n");
    sb.ok(&work, &["add", "b.txt"]);
    sb.ok(&work, &["commit", "-q", "-m", "feat: b"]);
    refused(
        &sb.git_env(&work, &["push", url, "main"], &DEV),
        "direct push to `main` by dev",
    );
}
