//! `pre-commit`, `commit-msg` and `pre-push` in a working repository: fast feedback before
//! anything leaves the machine.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::Path;

use git2::Repository;

use super::{
    Context, HookError, Report, active, apply_skip, lint_table, local_policy, oid, open_repo,
    read_lines,
};
use crate::config::RepoPolicy;
use crate::git::read::{self as git, head_tree, staged};
use crate::policy::commits::judge_commits;
use crate::policy::{
    self, Change, Pusher, RefUpdate, Rule, Violation,
    message::{self, Cleanup},
};
use crate::secrets::BlobScanner;
use crate::secrets::repo::local_scanner;

/// The policy of the repository, with the local escape hatch applied.
fn prepare(repo: &Repository) -> Result<(RepoPolicy, Vec<Rule>, Vec<String>), HookError> {
    let mut policy = local_policy(repo)?;
    let skip = std::env::var("TRUNKWARDEN_SKIP").ok();
    let (skipped, unknown) = apply_skip(&mut policy, skip.as_deref());
    Ok((policy, skipped, unknown))
}

fn finish(
    policy: &RepoPolicy,
    v: Vec<Violation>,
    skipped: Vec<Rule>,
    unknown: Vec<String>,
) -> Report {
    let mut r = Report::new(policy, v);
    r.skipped = skipped;
    r.unknown_skips = unknown;
    r
}

/// `pre-commit`: what the index adds, exactly as it will be committed.
pub fn pre_commit() -> Result<Report, HookError> {
    let repo = open_repo()?;
    let (policy, skipped, unknown) = prepare(&repo)?;
    let changes = staged(&repo)?;
    let mut violations = Vec::new();
    violations.extend(commit_on_trunk(&repo, &policy));
    if let Some(sc) = local_scanner(&repo, &policy)? {
        let mut blobs = BlobScanner::new(&repo, &sc);
        for c in &changes {
            let found = blobs
                .added(c)
                .ctx(|| format!("cannot read the staged {}", super::quote_path(&c.path)))?;
            violations.extend(
                found
                    .iter()
                    .map(|f| policy::secret_violation(f, &c.path, None)),
            );
        }
    }
    let tasks = policy::path_bytes(&policy.tasks.path);
    if let Some(c) = changes.iter().find(|c| c.path == tasks) {
        if active(&policy, Rule::SingleWriter) {
            violations.extend(policy::staged_task_table(&policy, &author_email(&repo)));
        }
        if active(&policy, Rule::TasksLint)
            && let Some(new) = c.new
        {
            let blob = repo
                .find_blob(new)
                .ctx(|| format!("cannot read the staged {}", policy.tasks.path.display()))?;
            violations.extend(lint_table(&tasks, blob.content(), None));
        }
    }
    Ok(finish(&policy, violations, skipped, unknown))
}

/// A commit on the trunk, refused where it is made rather than at its push (as pre-commit's
/// `no-commit-to-branch`): the bot's own, a repository's first, and a policy that allows them
/// pass.
fn commit_on_trunk(repo: &Repository, policy: &RepoPolicy) -> Option<Violation> {
    if !policy.trunk.refuse_commits || !active(policy, Rule::Trunk) {
        return None;
    }
    let branch = branch_name(repo)?;
    let trunk = policy.trunk.name();
    if branch != trunk || repo.head().is_err() {
        return None;
    }
    if author_email(repo).eq_ignore_ascii_case(&policy.bot.email) {
        return None;
    }
    Some(Violation::new(
        Rule::Trunk,
        format!("committing on `{trunk}` is refused: the trunk changes through pull requests"),
        "move the work to a branch of its own — `git switch -c <task-branch>` keeps the staged \
         changes — and commit there (`[trunk] refuse-commits = false` in .trunkwarden.toml \
         allows such commits locally; their push is still refused)",
    ))
}

/// The author of the commit being made: `GIT_AUTHOR_EMAIL` (set by `--author` and by callers),
/// else `user.email`.
fn author_email(repo: &Repository) -> String {
    std::env::var("GIT_AUTHOR_EMAIL").ok().unwrap_or_else(|| {
        repo.config()
            .and_then(|c| c.get_string("user.email"))
            .unwrap_or_default()
    })
}

/// `commit-msg`: the message as git will store it follows the convention, with the task id as
/// scope on a task's branch.
pub fn commit_msg(message_file: &Path) -> Result<Report, HookError> {
    let repo = open_repo()?;
    let (policy, skipped, unknown) = prepare(&repo)?;
    let mut violations = Vec::new();
    if active(&policy, Rule::Message) {
        let raw = std::fs::read(message_file).map_err(|e| {
            HookError::Other(format!(
                "cannot read the commit message {}: {e}",
                message_file.display()
            ))
        })?;
        let config = repo.config().ctx(|| "cannot read git config".into())?;
        let comment = config
            .get_string("core.commentString")
            .or_else(|_| config.get_string("core.commentChar"))
            .ok()
            .filter(|c| c != "auto" && !c.is_empty())
            .unwrap_or_else(|| "#".into());
        let cleanup = Cleanup::from_config(config.get_string("commit.cleanup").ok().as_deref());
        let text = message::stored(&raw, &comment, cleanup);
        let tasks = branch_name(&repo)
            .map(|b| (b, head_tasks(&repo, &policy)))
            .unwrap_or_default();
        let task = message::task_for_branch(&tasks.0, &tasks.1);
        violations.extend(message::check(&text, &policy.message.types, task));
    }
    Ok(finish(&policy, violations, skipped, unknown))
}

/// The checked-out branch, also on an unborn branch; `None` when HEAD is detached.
fn branch_name(repo: &Repository) -> Option<String> {
    let head = repo.find_reference("HEAD").ok()?;
    let target = head.symbolic_target().ok()??;
    target.strip_prefix("refs/heads/").map(str::to_owned)
}

/// The tasks in HEAD's task table; none when it is absent or unreadable (the table's own rule
/// reports that). HEAD, not the index: a large index costs milliseconds to read, and a branch's
/// task row is on the trunk before the branch has commits.
fn head_tasks(repo: &Repository, policy: &RepoPolicy) -> Vec<crate::tasks::Task> {
    let Ok(Some(tree)) = head_tree(repo) else {
        return Vec::new();
    };
    let Some(bytes) = git::blob_at(repo, &tree, &policy.tasks.path) else {
        return Vec::new();
    };
    match crate::tasks::TaskTable::parse_bytes(&bytes) {
        Ok(table) => crate::tasks::read_tasks(&table).0,
        Err(_) => Vec::new(),
    }
}

/// `pre-push`: every ref update on stdin, judged on the remote's ref names, and every commit
/// the remote does not have yet scanned for secrets.
pub fn pre_push(input: impl BufRead) -> Result<Report, HookError> {
    let repo = open_repo()?;
    let (policy, skipped, unknown) = prepare(&repo)?;
    const WHAT: &str = "pre-push input";
    // Commits on any remote-tracking ref were pushed before; everything else is new.
    let known = git::ref_tips(&repo, Some("refs/remotes/*"))
        .ctx(|| "cannot list remote-tracking refs".into())?;
    let sc = local_scanner(&repo, &policy)?;
    let mut blobs = sc.as_ref().map(|s| BlobScanner::new(&repo, s));
    let mut scanned = HashSet::new();
    let mut violations = Vec::new();
    for (i, parts) in read_lines(input, WHAT, 4).enumerate() {
        let parts = parts?;
        let line = i + 1;
        let (local, remote_ref, remote) = (
            oid(&parts[1], WHAT, line)?,
            &parts[2],
            oid(&parts[3], WHAT, line)?,
        );
        let change = if local.is_zero() {
            Change::Delete
        } else if remote.is_zero() {
            Change::Create
        } else {
            Change::Update {
                fast_forward: local == remote
                    || repo.graph_descendant_of(local, remote).unwrap_or(false),
            }
        };
        let facts = match commit_of(&repo, local) {
            Some(tip) => {
                let hide = known
                    .iter()
                    .copied()
                    .chain((!remote.is_zero()).then_some(remote));
                let ids = git::new_commits(&repo, tip, hide)
                    .ctx(|| format!("cannot list the commits pushed to {remote_ref}"))?;
                judge_commits(&repo, ids, blobs.as_mut(), &mut scanned, &mut violations)?
            }
            None => Vec::new(),
        };
        let update = RefUpdate {
            refname: remote_ref.clone(),
            change,
            commits: facts,
        };
        violations.extend(policy::check_ref_update(&policy, &update, &Pusher::Local));
    }
    Ok(finish(&policy, violations, skipped, unknown))
}

/// The commit an object id names, through annotated tags; `None` for zero ids and non-commits.
pub(super) fn commit_of(repo: &Repository, id: git2::Oid) -> Option<git2::Oid> {
    if id.is_zero() {
        return None;
    }
    repo.find_object(id, None)
        .and_then(|o| o.peel_to_commit())
        .ok()
        .map(|c| c.id())
}
