//! The trunk rules as pure functions over forge-neutral facts, so a local hook, the server's
//! `pre-receive` and the webhook path judge a change the same way.
//!
//! Gathering the facts (index, stdin, environment, git objects) is the caller's job; nothing here
//! touches git, the filesystem or the network.

pub mod commits;
pub mod message;

use crate::config::{Mode, RepoPolicy};
use crate::secrets::Finding;

pub use crate::config::Rule;

/// One broken rule, with enough context to find and fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    /// What is wrong, one line; secrets only ever masked.
    pub message: String,
    /// Repository path as raw bytes (git paths need not be UTF-8).
    pub path: Option<Vec<u8>>,
    /// 1-based line in `path`.
    pub line: Option<usize>,
    /// Full commit id, where the violation belongs to a commit.
    pub commit: Option<String>,
    /// What to do about it.
    pub fix: String,
}

impl Violation {
    /// A violation of no particular place.
    pub fn new(rule: Rule, message: impl Into<String>, fix: impl Into<String>) -> Violation {
        Violation {
            rule,
            message: message.into(),
            path: None,
            line: None,
            commit: None,
            fix: fix.into(),
        }
    }

    fn in_commit(mut self, id: &str) -> Violation {
        self.commit = Some(id.to_owned());
        self
    }
}

/// What a commit being pushed changes, as far as the rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitFacts {
    pub id: String,
    pub parents: usize,
    pub author_email: String,
    /// Paths the commit changes against its first parent (all paths for a root commit).
    pub paths: Vec<Vec<u8>>,
}

/// How a ref moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Create,
    Update { fast_forward: bool },
    Delete,
}

/// One ref update of a push, with the commits it brings that the receiver does not have yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    /// Full ref name on the receiving side (`refs/heads/main`).
    pub refname: String,
    pub change: Change,
    pub commits: Vec<CommitFacts>,
}

/// Who is pushing, as far as the enforcement point can know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pusher {
    /// A local hook: the person at the keyboard; bot commits are recognised by author email.
    Local,
    /// A server-side hook: the authenticated account (`None` when the host did not say), and
    /// whether the host reports this push as its own merge of a pull request.
    Server {
        login: Option<String>,
        forge_merge: bool,
    },
}

/// Where a pull request names an issue with a forge closing keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Naming {
    /// The pull request's title or description.
    Description,
    /// A commit's message (its full id), which the squash commit may carry.
    Commit(String),
}

/// Violations of the closing-keywords rule: each issue named with a closing keyword of `forge`
/// lets the forge close it as soon as the pull request merges, before CI on the squash commit.
pub fn closing_keywords(forge: &str, named: &[(Naming, u64)]) -> Vec<Violation> {
    named
        .iter()
        .map(|(at, issue)| {
            let v = Violation::new(
                Rule::ClosingKeywords,
                match at {
                    Naming::Description => format!(
                        "the description names #{issue} with a closing keyword: {forge} would close it at merge, before CI on the trunk"
                    ),
                    Naming::Commit(_) => format!(
                        "a commit message names #{issue} with a closing keyword: {forge} would close it at merge, before CI on the trunk"
                    ),
                },
                format!(
                    "write `Refs #{issue}` instead; trunkwarden closes #{issue} once CI on the squash commit is green"
                ),
            );
            match at {
                Naming::Commit(id) => v.in_commit(id),
                Naming::Description => v,
            }
        })
        .collect()
}

/// Violations of the ref-level rules (trunk, squash-only, single-writer) by one ref update.
/// Rules whose mode is `off` are not evaluated.
pub fn check_ref_update(
    policy: &RepoPolicy,
    update: &RefUpdate,
    pusher: &Pusher,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let trunk = policy.trunk.name();
    let on_trunk = update.refname == format!("refs/heads/{trunk}");
    let tasks = path_bytes(&policy.tasks.path);
    let learnings = path_bytes(&policy.tasks.learnings);
    let bot_only_paths = |c: &CommitFacts| {
        !c.paths.is_empty() && c.paths.iter().all(|p| *p == tasks || *p == learnings)
    };
    let is_bot_commit = |c: &CommitFacts| c.author_email.eq_ignore_ascii_case(&policy.bot.email);
    let unknown_pusher = || {
        Violation::new(
            Rule::Trunk,
            "cannot tell who is pushing, and this update needs to know",
            "run the hook under Gitea/Forgejo or GitLab, or name the variable that carries the \
             pusher's login in `hooks.pusher-env` of .trunkwarden.toml",
        )
    };
    let active = |rule| policy.rules.get(rule) != Mode::Off;
    // The push that creates the trunk is how a repository starts: it brings whatever history
    // the project has (merges, a hand-written task table) and is taken whole, secrets still
    // scanned. From then on the trunk exists and only the bot and the forge's merges move it.
    if on_trunk && update.change == Change::Create {
        return out;
    }

    if on_trunk && active(Rule::Trunk) {
        match update.change {
            Change::Delete => out.push(Violation::new(
                Rule::Trunk,
                format!("deleting `{trunk}` is refused"),
                "the trunk is never deleted; push to a branch of your own instead",
            )),
            Change::Update {
                fast_forward: false,
            } => out.push(Violation::new(
                Rule::Trunk,
                format!("non-fast-forward update of `{trunk}` rewrites published history"),
                format!(
                    "fetch and rebase your work onto origin/{trunk}, push it to a branch and open a PR"
                ),
            )),
            Change::Create | Change::Update { .. } => match pusher {
                Pusher::Local => {
                    let all_bot = !update.commits.is_empty()
                        && update
                            .commits
                            .iter()
                            .all(|c| is_bot_commit(c) && bot_only_paths(c));
                    if !all_bot {
                        out.push(direct_push(trunk, None));
                    }
                }
                Pusher::Server { login: None, forge_merge } => {
                    if !(*forge_merge && policy.trunk.allow_forge_merges) {
                        out.push(unknown_pusher());
                    }
                }
                Pusher::Server {
                    login: Some(login),
                    forge_merge,
                } => {
                    if *login == policy.bot.login {
                        for c in update.commits.iter().filter(|c| !bot_only_paths(c)) {
                            out.push(
                                Violation::new(
                                    Rule::Trunk,
                                    format!(
                                        "a bot commit to `{trunk}` may touch only {} and {}",
                                        policy.tasks.path.display(),
                                        policy.tasks.learnings.display()
                                    ),
                                    "bring other changes through a pull request",
                                )
                                .in_commit(&c.id),
                            );
                        }
                    } else if !(*forge_merge && policy.trunk.allow_forge_merges) {
                        out.push(direct_push(trunk, Some(login)));
                    }
                }
            },
        }
    }

    if on_trunk && update.change != Change::Delete && active(Rule::SquashOnly) {
        for c in update.commits.iter().filter(|c| c.parents > 1) {
            out.push(
                Violation::new(
                    Rule::SquashOnly,
                    format!(
                        "merge commit ({} parents) on `{trunk}`; changes land as one squash commit",
                        c.parents
                    ),
                    "merge the pull request with \"squash and merge\"",
                )
                .in_commit(&c.id),
            );
        }
    }

    if update.change != Change::Delete && active(Rule::SingleWriter) {
        let touching: Vec<&CommitFacts> = update
            .commits
            .iter()
            .filter(|c| c.paths.contains(&tasks))
            .collect();
        let fix = format!(
            "only the bot writes {}; drop the change (git restore --source=origin/{trunk} -- {}) \
             and drive tasks through the bot's comment commands",
            policy.tasks.path.display(),
            policy.tasks.path.display()
        );
        match pusher {
            Pusher::Local => {
                for c in touching.into_iter().filter(|c| !is_bot_commit(c)) {
                    out.push(single_writer(policy, c, &fix));
                }
            }
            Pusher::Server { login: None, .. } if !touching.is_empty() => {
                let mut v = unknown_pusher();
                v.rule = Rule::SingleWriter;
                out.push(v);
            }
            Pusher::Server {
                login: Some(login), ..
            } if *login != policy.bot.login => {
                for c in touching {
                    out.push(single_writer(policy, c, &fix));
                }
            }
            Pusher::Server { .. } => {}
        }
    }
    out
}

fn direct_push(trunk: &str, login: Option<&str>) -> Violation {
    let who = login.map_or_else(String::new, |l| format!(" by {l}"));
    Violation::new(
        Rule::Trunk,
        format!("direct push to `{trunk}`{who}; the trunk changes only through pull requests"),
        format!(
            "push to a branch of your own (git push origin HEAD:refs/heads/<topic>) and open a PR against {trunk}"
        ),
    )
}

fn single_writer(policy: &RepoPolicy, c: &CommitFacts, fix: &str) -> Violation {
    let mut v = Violation::new(
        Rule::SingleWriter,
        format!(
            "{} is edited by {}, not the bot",
            policy.tasks.path.display(),
            c.author_email
        ),
        fix,
    )
    .in_commit(&c.id);
    v.path = Some(path_bytes(&policy.tasks.path));
    v
}

/// Single writer, before the commit exists: the task table is staged by `author_email`.
pub fn staged_task_table(policy: &RepoPolicy, author_email: &str) -> Option<Violation> {
    if author_email.eq_ignore_ascii_case(&policy.bot.email) {
        return None;
    }
    let table = policy.tasks.path.display();
    let who = if author_email.is_empty() {
        "an unknown author"
    } else {
        author_email
    };
    let mut v = Violation::new(
        Rule::SingleWriter,
        format!(
            "{table} is written by the bot ({}) alone; this commit is by {who}",
            policy.bot.email
        ),
        format!("unstage it (git restore --staged -- {table}) and drive tasks through the bot"),
    );
    v.path = Some(path_bytes(&policy.tasks.path));
    Some(v)
}

/// A secret finding as a violation; the finding carries only the masked value.
pub fn secret_violation(finding: &Finding, path: &[u8], commit: Option<&str>) -> Violation {
    Violation {
        rule: Rule::Secrets,
        message: format!(
            "{} {} (rule `{}`, column {})",
            finding.description, finding.masked, finding.rule, finding.column
        ),
        path: Some(path.to_vec()),
        line: Some(finding.line),
        commit: commit.map(str::to_owned),
        fix: format!(
            "remove it from the commit, rotate the credential (it may already be exposed), and \
             amend or rewrite the unpushed commits; a false alarm takes `trunkwarden:allow` in a \
             comment on that line, or `disable = [\"{}\"]` under `[secrets]` in .trunkwarden.toml",
            finding.rule
        ),
    }
}

/// Task-table diagnostics as violations of `tasks-lint`.
pub fn tasks_violations(
    path: &[u8],
    diagnostics: &[crate::tasks::Diagnostic],
    commit: Option<&str>,
) -> Vec<Violation> {
    diagnostics
        .iter()
        .map(|d| Violation {
            rule: Rule::TasksLint,
            message: match &d.column {
                Some(c) => format!("{} (column {c}): {}", d.rule, d.message),
                None => format!("{}: {}", d.rule, d.message),
            },
            path: Some(path.to_vec()),
            line: Some(d.line),
            commit: commit.map(str::to_owned),
            fix: "run `trunkwarden tasks lint` and correct the table".into(),
        })
        .collect()
}

/// A repository path as git stores it: `/`-separated bytes.
pub fn path_bytes(path: &std::path::Path) -> Vec<u8> {
    path_string(path).into_bytes()
}

/// A repository path as git names it: `/`-separated.
pub fn path_string(path: &std::path::Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

/// Violations split by the mode of their rule.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Rules in `enforce` mode: the hook refuses.
    pub refused: Vec<Violation>,
    /// Rules in `warn` mode: reported, not refused.
    pub warned: Vec<Violation>,
}

impl Verdict {
    /// Sorts violations by the mode of their rule; `off` rules are dropped.
    pub fn judge(policy: &RepoPolicy, violations: Vec<Violation>) -> Verdict {
        let mut v = Verdict::default();
        for x in violations {
            match policy.rules.get(x.rule) {
                Mode::Enforce => v.refused.push(x),
                Mode::Warn => v.warned.push(x),
                Mode::Off => {}
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(id: &str, parents: usize, email: &str, paths: &[&str]) -> CommitFacts {
        CommitFacts {
            id: id.into(),
            parents,
            author_email: email.into(),
            paths: paths.iter().map(|p| p.as_bytes().to_vec()).collect(),
        }
    }

    fn update(refname: &str, change: Change, commits: Vec<CommitFacts>) -> RefUpdate {
        RefUpdate {
            refname: refname.into(),
            change,
            commits,
        }
    }

    fn server(login: Option<&str>) -> Pusher {
        Pusher::Server {
            login: login.map(str::to_owned),
            forge_merge: false,
        }
    }

    fn rules(v: &[Violation]) -> Vec<Rule> {
        v.iter().map(|v| v.rule).collect()
    }

    const FF: Change = Change::Update { fast_forward: true };

    #[test]
    fn trunk_refuses_direct_pushes_rewrites_and_deletion() {
        let p = RepoPolicy::default();
        let c = vec![commit("a", 1, "dev@x", &["src/lib.rs"])];
        let main = "refs/heads/main";
        assert_eq!(
            rules(&check_ref_update(
                &p,
                &update(main, FF, c.clone()),
                &Pusher::Local
            )),
            [Rule::Trunk]
        );
        assert_eq!(
            rules(&check_ref_update(
                &p,
                &update(main, FF, c.clone()),
                &server(Some("dev"))
            )),
            [Rule::Trunk]
        );
        assert_eq!(
            rules(&check_ref_update(
                &p,
                &update(main, Change::Delete, vec![]),
                &server(Some("trunkwarden"))
            )),
            [Rule::Trunk]
        );
        let rewrite = Change::Update {
            fast_forward: false,
        };
        assert_eq!(
            rules(&check_ref_update(
                &p,
                &update(main, rewrite, vec![]),
                &server(Some("trunkwarden"))
            )),
            [Rule::Trunk]
        );
        // Branches other than the trunk are free.
        assert!(
            check_ref_update(
                &p,
                &update("refs/heads/topic", FF, c.clone()),
                &server(Some("dev"))
            )
            .is_empty()
        );
        assert!(
            check_ref_update(
                &p,
                &update("refs/heads/topic", Change::Delete, vec![]),
                &Pusher::Local
            )
            .is_empty()
        );
        // A branch merely named like the trunk elsewhere is not the trunk.
        assert!(
            check_ref_update(&p, &update("refs/heads/x/main", FF, c), &Pusher::Local).is_empty()
        );
    }

    #[test]
    fn the_bot_may_push_task_table_commits_only() {
        let p = RepoPolicy::default();
        let bot = &p.bot.email;
        let main = "refs/heads/main";
        let table = vec![commit(
            "a",
            1,
            bot,
            &["docs/TASKS.md", "docs/tasks/orchestrator-learnings.json"],
        )];
        assert!(
            check_ref_update(
                &p,
                &update(main, FF, table.clone()),
                &server(Some("trunkwarden"))
            )
            .is_empty()
        );
        assert!(check_ref_update(&p, &update(main, FF, table.clone()), &Pusher::Local).is_empty());
        // Authored as the bot, pushed by someone else: refused on the server.
        let v = check_ref_update(&p, &update(main, FF, table), &server(Some("mallory")));
        assert_eq!(rules(&v), [Rule::Trunk, Rule::SingleWriter]);
        // The bot touching code on main is refused, naming the commit.
        let code = vec![commit("b", 1, bot, &["docs/TASKS.md", "src/x.rs"])];
        let v = check_ref_update(
            &p,
            &update(main, FF, code.clone()),
            &server(Some("trunkwarden")),
        );
        assert_eq!(rules(&v), [Rule::Trunk]);
        assert_eq!(v[0].commit.as_deref(), Some("b"));
        assert_eq!(
            rules(&check_ref_update(
                &p,
                &update(main, FF, code),
                &Pusher::Local
            )),
            [Rule::Trunk]
        );
    }

    #[test]
    fn unknown_pusher_fails_closed_only_where_identity_matters() {
        let p = RepoPolicy::default();
        let code = vec![commit("a", 1, "dev@x", &["src/x.rs"])];
        let table = vec![commit("b", 1, "dev@x", &["docs/TASKS.md"])];
        assert!(
            check_ref_update(&p, &update("refs/heads/t", FF, code.clone()), &server(None))
                .is_empty()
        );
        assert_eq!(
            rules(&check_ref_update(
                &p,
                &update("refs/heads/t", FF, table),
                &server(None)
            )),
            [Rule::SingleWriter]
        );
        assert_eq!(
            rules(&check_ref_update(
                &p,
                &update("refs/heads/main", FF, code),
                &server(None)
            )),
            [Rule::Trunk]
        );
    }

    #[test]
    fn forge_merges_pass_trunk_but_not_squash_only() {
        let p = RepoPolicy::default();
        let merge = Pusher::Server {
            login: Some("dev".into()),
            forge_merge: true,
        };
        let squash = vec![commit("a", 1, "dev@x", &["src/x.rs"])];
        assert!(check_ref_update(&p, &update("refs/heads/main", FF, squash), &merge).is_empty());
        let two = vec![commit("m", 2, "dev@x", &["src/x.rs"])];
        let v = check_ref_update(&p, &update("refs/heads/main", FF, two), &merge);
        assert_eq!(rules(&v), [Rule::SquashOnly]);
        assert_eq!(v[0].commit.as_deref(), Some("m"));
        let mut strict = RepoPolicy::default();
        strict.trunk.allow_forge_merges = false;
        let squash = vec![commit("a", 1, "dev@x", &["src/x.rs"])];
        assert_eq!(
            rules(&check_ref_update(
                &strict,
                &update("refs/heads/main", FF, squash),
                &merge
            )),
            [Rule::Trunk]
        );
    }

    #[test]
    fn single_writer_on_every_branch_and_modes() {
        let p = RepoPolicy::default();
        let table = vec![commit("b", 1, "dev@x", &["docs/TASKS.md"])];
        let v = check_ref_update(
            &p,
            &update("refs/heads/t", FF, table.clone()),
            &Pusher::Local,
        );
        assert_eq!(rules(&v), [Rule::SingleWriter]);
        assert_eq!(v[0].path.as_deref(), Some(&b"docs/TASKS.md"[..]));
        let relaxed = RepoPolicy::parse(
            "[rules]\nsingle-writer = \"warn\"\n",
            std::path::Path::new("t"),
        )
        .unwrap();
        let verdict = Verdict::judge(
            &relaxed,
            check_ref_update(
                &relaxed,
                &update("refs/heads/t", FF, table.clone()),
                &Pusher::Local,
            ),
        );
        assert!(verdict.refused.is_empty());
        assert_eq!(verdict.warned.len(), 1);
        let off = RepoPolicy::parse(
            "[rules]\nsingle-writer = \"off\"\n",
            std::path::Path::new("t"),
        )
        .unwrap();
        assert!(
            check_ref_update(&off, &update("refs/heads/t", FF, table), &Pusher::Local).is_empty()
        );
    }

    #[test]
    fn rule_names_round_trip() {
        for r in Rule::ALL {
            assert_eq!(Rule::from_name(r.name()), Some(r));
        }
        assert_eq!(Rule::from_name("secret"), None);
    }
}
