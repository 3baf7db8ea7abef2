//! `pre-receive` on the server: the authority nobody can skip. It reads the pushed objects from
//! git's quarantine, identifies the pusher from the host, and never mutates a ref.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use git2::Repository;

use super::{Context, HookError, Report, oid, open_repo, read_lines};
use crate::config::{POLICY_FILE, RepoPolicy};
use crate::git::read as git;
use crate::policy::commits::judge_commits;
use crate::policy::{self, Change, Pusher, RefUpdate};
use crate::secrets::BlobScanner;
use crate::secrets::repo::scanner_at;

/// The git host the hook runs under; it decides where the pusher's identity comes from and how
/// messages reach the pusher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Host {
    /// A plain bare repository (ssh, http-backend); the pusher comes from `hooks.pusher-env`.
    Bare,
    /// Gitea or Forgejo: `GITEA_PUSHER_NAME`, and `GITEA_PR_ID` for the forge's own merges.
    Gitea,
    /// GitLab (Gitaly custom hooks): `GL_USERNAME`, and `GL_PROTOCOL=web` with a merge
    /// request's tree for merges made in GitLab; messages carry `GL-HOOK-ERR: `.
    Gitlab,
}

impl Host {
    /// What starts every message line.
    pub fn prefix(self) -> &'static str {
        match self {
            Host::Gitlab => "GL-HOOK-ERR: ",
            Host::Bare | Host::Gitea => "",
        }
    }

    /// The name `--host` takes.
    pub fn name(self) -> &'static str {
        match self {
            Host::Bare => "bare",
            Host::Gitea => "gitea",
            Host::Gitlab => "gitlab",
        }
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The pusher's login as the host reports it. Only the host's own variables count for a host,
/// so a pusher cannot pose as the bot by exporting another host's variable.
fn pusher_login(host: Host, policy: &RepoPolicy) -> Option<String> {
    let from_host = match host {
        Host::Gitea => var("GITEA_PUSHER_NAME").or_else(|| var("FORGEJO_PUSHER_NAME")),
        Host::Gitlab => var("GL_USERNAME"),
        Host::Bare => None,
    };
    from_host.or_else(|| policy.hooks.pusher_env.as_deref().and_then(var))
}

/// Whether the host reports this ref update as its own merge of a pull request.
///
/// Gitea sets `GITEA_PR_ID` for its merges. GitLab runs every change made in its web UI with
/// `GL_PROTOCOL=web` — merge request merges, but also web-editor and API commits — so a `web`
/// update counts as a merge only when it is one: a fast-forward by one single-parent commit
/// whose tree is the tree of a merge request's head (`refs/merge-requests/N/head`), which is
/// what GitLab's squash (and fast-forward) merge writes. A web-editor commit on the trunk has no
/// merge request behind it and is judged as the direct push it is.
fn forge_merge(host: Host, repo: &Repository, old: git2::Oid, new: git2::Oid) -> bool {
    match host {
        Host::Gitea => var("GITEA_PR_ID")
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|id| id > 0),
        Host::Gitlab => {
            var("GL_PROTOCOL").is_some_and(|p| p == "web") && merge_request_squash(repo, old, new)
        }
        Host::Bare => false,
    }
}

/// `new` is one commit on top of `old` with the tree of a merge request's head.
fn merge_request_squash(repo: &Repository, old: git2::Oid, new: git2::Oid) -> bool {
    let Ok(commit) = repo.find_commit(new) else {
        return false;
    };
    if commit.parent_count() != 1 || commit.parent_id(0).ok() != Some(old) {
        return false;
    }
    let tree = commit.tree_id();
    let Ok(refs) = repo.references_glob("refs/merge-requests/*/head") else {
        return false;
    };
    refs.flatten()
        .filter_map(|r| r.peel_to_commit().ok())
        .any(|c| c.tree_id() == tree)
}

/// Makes quarantined objects readable: git receives a push into a temporary object directory
/// and names it (and the repository's own) in the environment.
fn add_object_dirs(repo: &Repository) -> Result<(), HookError> {
    let odb = repo
        .odb()
        .ctx(|| "cannot open the object database".into())?;
    let base = repo.path().to_path_buf();
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = var("GIT_OBJECT_DIRECTORY") {
        dirs.push(resolve(&d));
    }
    if let Some(list) = var("GIT_ALTERNATE_OBJECT_DIRECTORIES") {
        dirs.extend(list.split(':').filter(|s| !s.is_empty()).map(resolve));
    }
    for d in dirs {
        let shown = d.display().to_string();
        odb.add_disk_alternate(&shown)
            .ctx(|| format!("cannot read pushed objects in {shown}"))?;
    }
    Ok(())
}

/// The policy on the default branch as it is before this push: a push cannot relax the rules
/// it is judged by. A policy that does not parse falls back to the defaults, where every rule
/// is enforced.
fn server_policy(repo: &Repository) -> (RepoPolicy, Option<String>) {
    let Ok(tree) = repo.head().and_then(|h| h.peel_to_tree()) else {
        return (RepoPolicy::default(), None);
    };
    let Some(bytes) = git::blob_at(repo, &tree, Path::new(POLICY_FILE)) else {
        return (RepoPolicy::default(), None);
    };
    let origin = Path::new("HEAD:.trunkwarden.toml");
    let parsed = std::str::from_utf8(&bytes)
        .map_err(|e| format!("{}: not UTF-8: {e}", origin.display()))
        .and_then(|t| RepoPolicy::parse(t, origin).map_err(|e| e.to_string()));
    match parsed {
        Ok(p) => (p, None),
        Err(e) => (
            RepoPolicy::default(),
            Some(format!(
                "{e}; using the default policy, every rule enforced"
            )),
        ),
    }
}

/// `pre-receive`: every `<old> <new> <ref>` line of stdin, read as a stream.
pub fn pre_receive(host: Host, input: impl BufRead) -> Result<Report, HookError> {
    const WHAT: &str = "pre-receive input";
    let repo = open_repo()?;
    add_object_dirs(&repo)?;
    let (mut policy, note) = server_policy(&repo);
    // The bare repository's HEAD names its default branch (forges keep it so).
    policy.trunk.default_branch = repo
        .find_reference("HEAD")
        .ok()
        .and_then(|r| r.symbolic_target().ok().flatten().map(str::to_owned))
        .and_then(|t| t.strip_prefix("refs/heads/").map(str::to_owned));
    let login = pusher_login(host, &policy);
    let mut lines = Vec::new();
    for (i, parts) in read_lines(input, WHAT, 3).enumerate() {
        let parts = parts?;
        let (old, new) = (oid(&parts[0], WHAT, i + 1)?, oid(&parts[1], WHAT, i + 1)?);
        let [_, _, refname] = <[String; 3]>::try_from(parts).map_err(|_| HookError::Input {
            what: WHAT,
            line: i + 1,
            message: "expected `<old> <new> <ref>`".into(),
        })?;
        // A missing object is an error, never "no commits": the hook fails closed.
        let tip = if new.is_zero() {
            None
        } else {
            let object = repo
                .find_object(new, None)
                .ctx(|| format!("cannot read the pushed object {new} for {refname}"))?;
            object.peel_to_commit().ok().map(|c| c.id())
        };
        lines.push((old, new, refname, tip));
    }
    // The whole push's new commits in one walk (each read and judged once), then each ref's
    // share of them: the cost follows what was pushed, not pushed refs × existing refs.
    let tips: Vec<git2::Oid> = lines.iter().filter_map(|l| l.3).collect();
    let pushed = NewCommits::walk(&repo, &tips).ctx(|| "cannot list the pushed commits".into())?;
    let head_tree = repo.head().and_then(|h| h.peel_to_tree()).ok();
    let (sc, scanner_note) = scanner_at(&repo, head_tree.as_ref(), &policy)?;
    let mut blobs = sc.as_ref().map(|s| BlobScanner::new(&repo, s));
    let mut violations = Vec::new();
    let facts = judge_commits(
        &repo,
        pushed.order.clone(),
        blobs.as_mut(),
        &mut HashSet::new(),
        &mut violations,
    )?;
    for (old, new, refname, tip) in lines {
        let change = if new.is_zero() {
            Change::Delete
        } else if old.is_zero() {
            Change::Create
        } else {
            Change::Update {
                fast_forward: old == new
                    || repo
                        .graph_descendant_of(new, old)
                        .ctx(|| format!("cannot compare {old} and {new} for {refname}"))?,
            }
        };
        let commits = match tip {
            Some(tip) => pushed.reachable(tip).map(|i| facts[i].clone()).collect(),
            None => Vec::new(),
        };
        let update = RefUpdate {
            refname,
            change,
            commits,
        };
        let pusher = Pusher::Server {
            login: login.clone(),
            forge_merge: forge_merge(host, &repo, old, new),
        };
        violations.extend(policy::check_ref_update(&policy, &update, &pusher));
    }
    let mut report = Report::new(&policy, violations);
    report.notes.extend(note);
    report.notes.extend(scanner_note);
    Ok(report)
}

/// The commits a push brings, found in one walk from every pushed tip, hiding every ref the
/// server already has.
struct NewCommits {
    /// Parents first.
    order: Vec<git2::Oid>,
    /// Each new commit's place in `order`, and its parents among the new ones.
    graph: HashMap<git2::Oid, (usize, Vec<git2::Oid>)>,
}

impl NewCommits {
    fn walk(repo: &Repository, tips: &[git2::Oid]) -> Result<NewCommits, git2::Error> {
        let order = if tips.is_empty() {
            Vec::new()
        } else {
            match rev_list(repo, tips) {
                Some(order) => order,
                None => {
                    let mut known: Vec<git2::Oid> = git::ref_tips(repo, None)?;
                    known.sort_unstable();
                    known.dedup();
                    git::new_commits_of(repo, tips, known)?
                }
            }
        };
        let mut graph = HashMap::with_capacity(order.len());
        for (i, id) in order.iter().enumerate() {
            graph.insert(*id, (i, Vec::new()));
        }
        for id in &order {
            let parents: Vec<git2::Oid> = repo
                .find_commit(*id)?
                .parent_ids()
                .filter(|p| graph.contains_key(p))
                .collect();
            if let Some(e) = graph.get_mut(id) {
                e.1 = parents;
            }
        }
        Ok(NewCommits { order, graph })
    }

    /// The places in `order` of the new commits `tip` reaches, parents first.
    fn reachable(&self, tip: git2::Oid) -> impl Iterator<Item = usize> {
        let mut seen = HashSet::new();
        let mut stack = vec![tip];
        let mut places = Vec::new();
        while let Some(id) = stack.pop() {
            if let Some((i, parents)) = self.graph.get(&id)
                && seen.insert(id)
            {
                places.push(*i);
                stack.extend(parents);
            }
        }
        places.sort_unstable();
        places.into_iter()
    }
}

/// git's own walk, `rev-list --topo-order --reverse <tips> --not --all`: it sees the
/// quarantined objects through the environment git gave the hook, and hides thousands of refs
/// far faster than a revwalk told each one. `None` when git cannot be run here.
fn rev_list(repo: &Repository, tips: &[git2::Oid]) -> Option<Vec<git2::Oid>> {
    use std::io::Write;
    let mut child = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo.path())
        .args([
            "rev-list",
            "--topo-order",
            "--reverse",
            "--stdin",
            "--not",
            "--all",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input: String = tips.iter().map(|t| format!("{t}\n")).collect();
    // Written from a thread: a long answer fills stdout while the tips are still going in.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    if !out.status.success() {
        return None;
    }
    std::str::from_utf8(&out.stdout)
        .ok()?
        .lines()
        .map(|l| git2::Oid::from_str(l.trim()).ok())
        .collect()
}
