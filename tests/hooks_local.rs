//! Local hooks as a developer meets them: installed with `trunkwarden hooks install`, run by
//! the real `git commit` and `git push`.

mod support;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use support::git::{Sandbox, TOKEN, stderr, text, write};

fn install(sb: &Sandbox, dir: &Path) -> String {
    let out = sb.tw(dir, &["hooks", "install"], None, &[]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &std::process::Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected refusal:\n{}", text(out));
    assert!(err.contains(needle), "missing `{needle}`:\n{}", text(out));
    assert!(!err.contains(TOKEN), "secret printed whole:\n{err}");
}

fn secret_line() -> String {
    format!("token = \"{TOKEN}\"\n")
}

#[test]
fn install_is_idempotent_chains_an_existing_hook_and_restores_it() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    let hooks = repo.join(".git/hooks");
    // A pre-existing pre-push hook that records its arguments and input.
    let log = sb.path("chained.log");
    write(
        &hooks,
        "pre-push",
        &format!(
            "#!/bin/sh\necho \"args: $*\" >> '{0}'\ncat >> '{0}'\nexit 0\n",
            log.display()
        ),
    );
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(hooks.join("pre-push"))
        .status()
        .unwrap();
    let original = std::fs::read(hooks.join("pre-push")).unwrap();

    let first = install(&sb, &repo);
    assert!(first.contains("pre-commit: installed"), "{first}");
    assert!(
        first.contains(
            "pre-push: installed; the existing hook is kept as pre-push.trunkwarden-chained"
        ),
        "{first}"
    );
    let second = install(&sb, &repo);
    assert_eq!(
        second.matches("already installed, unchanged").count(),
        3,
        "{second}"
    );
    let status = sb.tw(&repo, &["hooks", "status"], None, &[]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("pre-push: installed, chaining"),
        "{}",
        text(&status)
    );
    for h in ["pre-commit", "commit-msg", "pre-push"] {
        let shim = std::fs::read_to_string(hooks.join(h)).unwrap();
        assert!(
            !shim.contains('\r') && shim.starts_with("#!/bin/sh\n"),
            "{shim}"
        );
    }

    // The chained hook sees git's arguments and the whole input, then ours runs.
    let remote = sb.bare("remote.git");
    sb.ok(
        &repo,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    sb.ok(&repo, &["push", "-q", "origin", "HEAD:refs/heads/topic"]);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(&format!("args: origin {}", remote.display())),
        "{logged}"
    );
    assert!(logged.contains("refs/heads/topic"), "{logged}");

    let out = sb.tw(&repo, &["hooks", "uninstall"], None, &[]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("pre-push: removed; the previous hook is restored"),
        "{said}"
    );
    assert_eq!(std::fs::read(hooks.join("pre-push")).unwrap(), original);
    assert!(!hooks.join("pre-commit").exists());
    assert!(!hooks.join("pre-push.trunkwarden-chained").exists());
}

#[test]
fn a_failing_chained_hook_refuses() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    write(
        &repo.join(".git/hooks"),
        "pre-commit",
        "#!/bin/sh\necho lint failed >&2\nexit 3\n",
    );
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(repo.join(".git/hooks/pre-commit"))
        .status()
        .unwrap();
    install(&sb, &repo);
    write(&repo, "a.txt", "fine\n");
    sb.ok(&repo, &["add", "a.txt"]);
    let out = sb.git(&repo, &["commit", "-m", "feat: a"]);
    refused(&out, "lint failed");
    assert!(stderr(&out).contains("chained hook"), "{}", text(&out));
}

#[test]
fn install_outside_a_repository_is_a_no_op() {
    let sb = Sandbox::new();
    let out = sb.tw(sb.dir.path(), &["hooks", "install"], None, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not inside a git repository"));
}

#[test]
fn worktrees_submodules_and_hooks_path_install_where_git_looks() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    // Linked worktree: hooks live in the common directory, and they run there.
    sb.ok(&repo, &["worktree", "add", "-q", "-b", "wt", "../wt"]);
    let wt = sb.path("wt");
    install(&sb, &wt);
    assert!(repo.join(".git/hooks/pre-commit").exists());
    write(&wt, "leak.txt", &secret_line());
    sb.ok(&wt, &["add", "leak.txt"]);
    refused(
        &sb.git(&wt, &["commit", "-m", "feat: leak"]),
        "[secrets] leak.txt:1",
    );

    // Submodule: its hooks are under the superproject's .git/modules.
    let sub_src = sb.repo("subsrc");
    sb.ok(
        &repo,
        &["submodule", "add", "-q", sub_src.to_str().unwrap(), "sub"],
    );
    let sub = repo.join("sub");
    install(&sb, &sub);
    assert!(repo.join(".git/modules/sub/hooks/commit-msg").exists());
    write(&sub, "leak.txt", &secret_line());
    sb.ok(&sub, &["add", "leak.txt"]);
    refused(
        &sb.git(&sub, &["commit", "-m", "feat: leak"]),
        "[secrets] leak.txt:1",
    );

    // A repository-scoped core.hooksPath is where git looks, so that is where we install.
    let other = sb.repo("o");
    sb.ok(&other, &["config", "core.hooksPath", "githooks"]);
    install(&sb, &other);
    assert!(other.join("githooks/pre-push").exists());
    // A global one is shared by every repository: refused, not written into.
    let shared = sb.repo("s");
    sb.ok(
        &shared,
        &[
            "config",
            "--global",
            "core.hooksPath",
            sb.path("global-hooks").to_str().unwrap(),
        ],
    );
    let out = sb.tw(&shared, &["hooks", "install"], None, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("global config"), "{}", text(&out));
    assert!(!sb.path("global-hooks/pre-commit").exists());
}

#[test]
fn pre_commit_scans_the_index_not_the_working_tree() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    install(&sb, &repo);
    sb.ok(&repo, &["switch", "-q", "-c", "work"]);
    // Staged secret, working copy cleaned afterwards: what would be committed is the secret.
    write(&repo, "config.py", &secret_line());
    sb.ok(&repo, &["add", "config.py"]);
    write(&repo, "config.py", "token = os.environ['TOKEN']\n");
    let out = sb.git(&repo, &["commit", "-m", "feat: config"]);
    refused(&out, "[secrets] config.py:1: GitHub");
    assert!(stderr(&out).contains("ghp_…FLh2"), "{}", text(&out));
    // Named by rule and column, so it can be found, disabled or allowed.
    assert!(
        stderr(&out).contains("(rule `github-pat`, column 10)")
            && stderr(&out).contains("disable = [\"github-pat\"]"),
        "{}",
        text(&out)
    );
    // Staging the clean version makes the commit clean.
    sb.ok(&repo, &["add", "config.py"]);
    sb.ok(&repo, &["commit", "-q", "-m", "feat: config"]);

    // Unstaged secret, clean index: nothing secret is committed, so the commit passes.
    write(&repo, "config.py", &secret_line());
    write(&repo, "other.txt", "x\n");
    sb.ok(&repo, &["add", "other.txt"]);
    sb.ok(&repo, &["commit", "-q", "-m", "feat: other"]);

    // `commit -a` and `commit <path>` commit the working copy through a temporary index.
    refused(
        &sb.git(&repo, &["commit", "-a", "-m", "feat: all"]),
        "[secrets] config.py:1",
    );
    refused(
        &sb.git(&repo, &["commit", "-m", "feat: path", "config.py"]),
        "[secrets] config.py:1",
    );

    // A secret already committed is not "added" by an unrelated change to the same file.
    let out = sb.git_env(
        &repo,
        &["commit", "-q", "-a", "-m", "feat: x"],
        &[("TRUNKWARDEN_SKIP", "secrets")],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("NOT checking secrets"),
        "{}",
        text(&out)
    );
    std::fs::write(
        repo.join("config.py"),
        format!("# header\n{}", secret_line()),
    )
    .unwrap();
    sb.ok(&repo, &["add", "config.py"]);
    let out = sb.git(&repo, &["commit", "-q", "-m", "docs: header"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn odd_file_names_are_scanned_and_quoted_like_git() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    install(&sb, &repo);
    let names: [(&[u8], &str); 3] = [
        (b"bad\xffname.txt", "\"bad\\377name.txt\""),
        (b"new\nline.txt", "\"new\\nline.txt\""),
        (b"-rf.txt", "-rf.txt"),
    ];
    for (raw, shown) in names {
        let name = PathBuf::from(std::ffi::OsStr::from_bytes(raw));
        std::fs::write(repo.join(&name), secret_line()).unwrap();
        let mut add = sb.command("git", &repo);
        add.args(["add", "--"]).arg(&name);
        assert!(add.status().unwrap().success());
        let out = sb.git(&repo, &["commit", "-m", "feat: odd"]);
        refused(&out, &format!("[secrets] {shown}:1"));
        let mut rm = sb.command("git", &repo);
        rm.args(["rm", "-q", "--cached", "--"]).arg(&name);
        assert!(rm.status().unwrap().success());
    }
}

#[test]
fn task_table_edits_are_for_the_bot_and_must_be_valid() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    install(&sb, &repo);
    let table = "# Tasks\n\n| id | status | description | depends_on | blocks |\n|---|---|---|---|---|\n| A-1 | not-started | a | | |\n";
    write(&repo, "docs/TASKS.md", table);
    sb.ok(&repo, &["add", "docs/TASKS.md"]);
    refused(
        &sb.git(&repo, &["commit", "-m", "chore: tasks"]),
        "[single-writer] docs/TASKS.md",
    );
    let bot = [("GIT_AUTHOR_EMAIL", "trunkwarden@users.noreply.invalid")];
    let out = sb.git_env(
        &repo,
        &["commit", "-q", "-m", "chore(tasks): add A-1"],
        &bot,
    );
    assert!(out.status.success(), "{}", text(&out));
    write(
        &repo,
        "docs/TASKS.md",
        &table.replace("not-started", "finished"),
    );
    sb.ok(&repo, &["add", "docs/TASKS.md"]);
    let out = sb.git_env(&repo, &["commit", "-m", "chore(tasks): x"], &bot);
    refused(
        &out,
        "[tasks-lint] docs/TASKS.md:5: cell-format (column status)",
    );
}

#[test]
fn commit_messages_follow_the_convention_as_git_stores_them() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    install(&sb, &repo);
    sb.ok(&repo, &["switch", "-q", "-c", "work"]);
    let commit = |msg: &[u8], extra: &[&str]| {
        std::fs::write(sb.path("msg"), msg).unwrap();
        let n = std::fs::read_dir(&repo).unwrap().count();
        write(&repo, format!("f{n}.txt"), "x\n");
        sb.ok(&repo, &["add", "-A"]);
        let mut args = vec![
            "commit",
            "-q",
            "-F",
            sb.path("msg").to_str().unwrap().to_owned().leak(),
        ];
        args.extend(extra);
        sb.git(&repo, &args)
    };
    refused(
        &commit(b"added stuff\n", &[]),
        "[message] subject `added stuff`",
    );
    assert!(
        commit(b"\xEF\xBB\xBFfeat: bom and crlf\r\n\r\nbody\r\n", &[])
            .status
            .success()
    );
    assert!(
        commit(b"# a comment first\nfix(core): x\n", &["--cleanup=strip"])
            .status
            .success()
    );
    // Warn mode reports and lets it through.
    write(&repo, ".trunkwarden.toml", "[rules]\nmessage = \"warn\"\n");
    let out = commit(b"whatever\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("warning: [message]"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(repo.join(".trunkwarden.toml")).unwrap();

    // git's own forms pass.
    sb.ok(&repo, &["commit", "-q", "--allow-empty", "--fixup", "HEAD"]);
    sb.ok(&repo, &["revert", "--no-edit", "HEAD~1"]);
    sb.ok(&repo, &["checkout", "-q", "-b", "side"]);
    assert!(commit(b"feat: side\n", &[]).status.success());
    sb.ok(&repo, &["checkout", "-q", "work"]);
    sb.ok(&repo, &["merge", "-q", "--no-ff", "--no-edit", "side"]);

    // `commit -v`: the editor sees a scissors line and a diff below it; only the part above counts.
    let editor = sb.path("editor.sh");
    write(
        sb.dir.path(),
        "editor.sh",
        "#!/bin/sh\n{ printf '%s\\n' \"$SUBJECT\"; cat \"$1\"; } > \"$1.new\" && mv \"$1.new\" \"$1\"\n",
    );
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .unwrap();
    write(&repo, "v.txt", "feat: not a subject\n");
    sb.ok(&repo, &["add", "v.txt"]);
    let ed = editor.to_str().unwrap();
    let out = sb.git_env(
        &repo,
        &["commit", "-v"],
        &[("GIT_EDITOR", ed), ("SUBJECT", "no convention here")],
    );
    refused(&out, "[message]");
    let out = sb.git_env(
        &repo,
        &["commit", "-q", "-v"],
        &[("GIT_EDITOR", ed), ("SUBJECT", "test: verbose")],
    );
    assert!(out.status.success(), "{}", text(&out));

    // On a task's branch the task id is the scope.
    sb.ok(&repo, &["checkout", "-q", "-b", "ms-sec-001-oidc"]);
    let table = "# Tasks\n\n| id | status | description | depends_on | blocks |\n|---|---|---|---|---|\n| MS-SEC-001 | in-progress | a | | |\n";
    write(&repo, "docs/TASKS.md", table);
    sb.ok(&repo, &["add", "docs/TASKS.md"]);
    sb.ok(
        &repo,
        &[
            "-c",
            "core.hooksPath=/dev/null",
            "commit",
            "-q",
            "-m",
            "chore: table",
        ],
    );
    let out = commit(b"fix(core): validate issuer\n", &[]);
    refused(&out, "belongs to task MS-SEC-001");
    assert!(
        stderr(&out).contains("write `fix(MS-SEC-001): validate issuer`"),
        "{}",
        text(&out)
    );
    assert!(
        commit(b"fix(MS-SEC-001): validate issuer\n", &[])
            .status
            .success()
    );
}

/// A working repository with hooks, a bare remote with `main`, and `topic` checked out.
fn pushing(sb: &Sandbox) -> PathBuf {
    let repo = sb.repo("r");
    let remote = sb.bare("remote.git");
    sb.ok(
        &repo,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    sb.ok(&repo, &["push", "-q", "origin", "main"]);
    install(sb, &repo);
    sb.ok(&repo, &["checkout", "-q", "-b", "topic"]);
    write(&repo, "a.txt", "a\n");
    sb.ok(&repo, &["add", "a.txt"]);
    sb.ok(&repo, &["commit", "-q", "-m", "feat: a"]);
    repo
}

#[test]
fn pre_push_guards_the_remote_main_by_its_remote_name() {
    let sb = Sandbox::new();
    let repo = pushing(&sb);
    for spec in ["HEAD:main", "+topic:main", "topic:refs/heads/main", ":main"] {
        let out = sb.git(&repo, &["push", "origin", spec]);
        refused(&out, "[trunk]");
    }
    let out = sb.git(&repo, &["push", "origin", "topic"]);
    assert!(out.status.success(), "{}", text(&out));
    // The bot's task-table commits may go to main.
    sb.ok(&repo, &["checkout", "-q", "main"]);
    let table = "# Tasks\n\n| id | status | description | depends_on | blocks |\n|---|---|---|---|---|\n| A-1 | not-started | a | | |\n";
    write(&repo, "docs/TASKS.md", table);
    sb.ok(&repo, &["add", "docs/TASKS.md"]);
    let bot = [
        ("GIT_AUTHOR_EMAIL", "trunkwarden@users.noreply.invalid"),
        ("GIT_AUTHOR_NAME", "trunkwarden"),
    ];
    let out = sb.git_env(
        &repo,
        &["commit", "-q", "-m", "chore(tasks): add A-1"],
        &bot,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = sb.git(&repo, &["push", "origin", "main"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn pre_push_scans_every_pushed_commit_of_every_ref() {
    let sb = Sandbox::new();
    let repo = pushing(&sb);
    // Only the branch that is not checked out carries a secret.
    sb.ok(&repo, &["branch", "other", "main"]);
    sb.ok(&repo, &["checkout", "-q", "other"]);
    write(&repo, "leak.env", &secret_line());
    sb.ok(&repo, &["add", "leak.env"]);
    sb.ok(&repo, &["commit", "-q", "--no-verify", "-m", "feat: leak"]);
    let leak = sb.ok(&repo, &["rev-parse", "--short=10", "HEAD"]);
    // ... and a later commit removes it again: history still holds it.
    sb.ok(&repo, &["rm", "-q", "leak.env"]);
    sb.ok(&repo, &["commit", "-q", "-m", "fix: remove leak"]);
    sb.ok(&repo, &["checkout", "-q", "topic"]);
    let out = sb.git(&repo, &["push", "origin", "topic", "other"]);
    refused(&out, &format!("[secrets] leak.env:1 (commit {leak})"));
    let out = sb.git(&repo, &["push", "origin", "topic"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn hostile_hook_input_is_refused_with_the_line() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    let out = sb.tw(
        &repo,
        &["hook", "pre-push", "--", "origin", "x"],
        Some(b"refs/heads/a 123 refs/heads/a\n"),
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("pre-push input, line 1: expected 4"),
        "{}",
        text(&out)
    );
    let z = "0".repeat(40);
    let input = format!("refs/heads/a nothex refs/heads/a {z}\n");
    let out = sb.tw(
        &repo,
        &["hook", "pre-push", "--", "origin", "x"],
        Some(input.as_bytes()),
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("`nothex` is not an object id"),
        "{}",
        text(&out)
    );
    let out = sb.tw(&repo, &["hook", "commit-msg"], None, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    write(
        &repo,
        ".trunkwarden.toml",
        "[rules]\nsecrets = \"sometimes\"\n",
    );
    let out = sb.tw(&repo, &["hook", "pre-commit"], None, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains(".trunkwarden.toml"), "{}", text(&out));
}

#[test]
fn a_large_index_is_read_by_git_with_the_same_result() {
    // Past 64 KiB of index the staged changes come from `git diff-index`, not libgit2.
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    for i in 0..1200 {
        write(
            &repo,
            format!("d{}/file-{i}.txt", i % 10),
            &format!("{i}\n"),
        );
    }
    sb.ok(&repo, &["add", "-A"]);
    sb.ok(&repo, &["commit", "-q", "-m", "chore: many files"]);
    assert!(std::fs::metadata(repo.join(".git/index")).unwrap().len() > 64 << 10);
    install(&sb, &repo);
    sb.ok(&repo, &["switch", "-q", "-c", "work"]);
    write(&repo, "d3/file-3.txt", &format!("3\n{}", secret_line()));
    refused(
        &sb.git(&repo, &["commit", "-a", "-m", "feat: leak"]),
        "[secrets] d3/file-3.txt:2",
    );
    sb.ok(&repo, &["add", "d3/file-3.txt"]);
    write(&repo, "d3/file-3.txt", "3\n");
    refused(
        &sb.git(&repo, &["commit", "-m", "feat: leak"]),
        "[secrets] d3/file-3.txt:2",
    );
    sb.ok(&repo, &["add", "d3/file-3.txt"]);
    sb.ok(
        &repo,
        &["commit", "-q", "--allow-empty", "-m", "feat: clean"],
    );
}

#[test]
fn pre_push_guards_the_default_branch_the_clone_knows() {
    let sb = Sandbox::new();
    let repo = pushing(&sb);
    // The remote's default branch is `master` (origin/HEAD, as `git clone` sets it): that is
    // the trunk, and `main` is an ordinary branch.
    sb.ok(&repo, &["push", "-q", "origin", "main:master"]);
    sb.ok(&repo, &["fetch", "-q", "origin"]);
    sb.ok(
        &repo,
        &[
            "symbolic-ref",
            "refs/remotes/origin/HEAD",
            "refs/remotes/origin/master",
        ],
    );
    let out = sb.git(&repo, &["push", "origin", "topic:master"]);
    refused(&out, "direct push to `master`");
    let out = sb.git(&repo, &["push", "origin", "topic:main"]);
    assert!(out.status.success(), "{}", text(&out));
    // The policy's `[trunk] branch` wins over what the clone knows.
    write(&repo, ".trunkwarden.toml", "[trunk]\nbranch = \"main\"\n");
    let out = sb.git(&repo, &["push", "origin", "+topic~1:main"]);
    refused(&out, "`main`");
}

#[test]
fn a_commit_on_the_trunk_is_refused_where_it_is_made() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    install(&sb, &repo);
    write(&repo, "a.txt", "a\n");
    sb.ok(&repo, &["add", "a.txt"]);
    let out = sb.git(&repo, &["commit", "-m", "feat: a"]);
    refused(&out, "committing on `main` is refused");
    assert!(stderr(&out).contains("git switch -c"), "{}", text(&out));
    // Moved to a branch, the staged change commits.
    sb.ok(&repo, &["switch", "-q", "-c", "t-1-a"]);
    sb.ok(&repo, &["commit", "-q", "-m", "feat: a"]);
    // The bot's own commits on the trunk pass.
    sb.ok(&repo, &["switch", "-q", "main"]);
    write(&repo, "b.txt", "b\n");
    sb.ok(&repo, &["add", "b.txt"]);
    let bot = sb.git_env(
        &repo,
        &["commit", "-q", "-m", "chore(tasks): b"],
        &[("GIT_AUTHOR_EMAIL", "trunkwarden@users.noreply.invalid")],
    );
    assert!(bot.status.success(), "{}", text(&bot));
    // A repository that allows local commits on the trunk gets them (their push stays refused).
    write(
        &repo,
        ".trunkwarden.toml",
        "[trunk]\nrefuse-commits = false\n",
    );
    sb.ok(&repo, &["add", ".trunkwarden.toml"]);
    sb.ok(&repo, &["commit", "-q", "-m", "chore: allow local commits"]);
}
