//! Running comment commands: permission by numeric user id, one reply per command line,
//! task-table changes through the committer (one commit per command), merges that wait for
//! green on the head they were asked for.
//!
//! Each command line is first *planned* — its reply, row changes and ledger updates decided
//! and recorded — and only then applied and answered. A process that dies in between finds
//! the plan and completes it (every step repeats safely); a line answered once is never run
//! again.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::decide::{self, short};
use super::{Engine, EngineError, Trunk};
use crate::commands::{self, Command, Found};
use crate::forge::{Permission, PrState, PullRequest, RepoRef, Thread, User};
use crate::git::{Identity, Learning, RowChange};
use crate::tasks::{Status, Task};
use crate::webhook::event::{Comment, CommentAction};

/// A ledger update a command makes besides the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Op {
    /// Link a pull request to a task (an empty task: explicitly unlinked).
    Claim { pr: u64, task: String },
    /// Remember the status a task had before it was blocked.
    Blocked { task: String, previous: String },
    /// Merge once the head is green.
    Merge { pr: u64, head: String, by: String },
    /// Withdraw a pending merge.
    CancelMerge { pr: u64 },
}

/// What one command line does, decided before any of it is done.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Plan {
    reply: String,
    changes: Vec<RowChange>,
    learnings: Vec<Learning>,
    /// The commit message, when there are changes.
    message: String,
    ops: Vec<Op>,
    /// Rerun the bot's checks on the head.
    recheck: bool,
}

impl Plan {
    fn reply(text: impl Into<String>) -> Plan {
        Plan {
            reply: text.into(),
            ..Plan::default()
        }
    }
}

impl Engine {
    /// The task a PR was claimed for (`Some("")`: explicitly unclaimed).
    pub(super) async fn claimed(
        &self,
        repo: &RepoRef,
        pr: u64,
    ) -> Result<Option<String>, EngineError> {
        Ok(
            sqlx::query_scalar(self.q("SELECT task FROM claims WHERE repo = ? AND pr = ?"))
                .bind(repo.to_string())
                .bind(pr as i64)
                .fetch_optional(&self.ledger.pool)
                .await?,
        )
    }

    /// A user's permission, asked of the forge by numeric id and kept for a minute.
    async fn permission_of(&self, repo: &RepoRef, user: &User) -> Result<Permission, EngineError> {
        let key = (repo.to_string(), user.id);
        if let Ok(cache) = self.permissions.lock()
            && let Some((at, p)) = cache.get(&key)
            && at.elapsed() < Duration::from_secs(60)
        {
            return Ok(*p);
        }
        let p = self.forge.permission(repo, user).await?;
        if let Ok(mut cache) = self.permissions.lock() {
            cache.insert(key, (Instant::now(), p));
        }
        Ok(p)
    }

    /// Runs the commands a comment (newly) carries.
    pub(super) async fn on_comment(&self, repo: &RepoRef, c: &Comment) -> Result<(), EngineError> {
        if c.action == CommentAction::Deleted {
            return Ok(());
        }
        let bot = self.forge.me().await?;
        if c.author.id == bot.id || c.author.login == bot.login {
            return Ok(());
        }
        let Some(mut trunk) = self.load(repo).await? else {
            return Ok(());
        };
        let prefix = trunk.policy.commands.prefix.clone();
        // The body this process last acted on, for forges whose edit events do not carry the
        // old body (GitLab) and for redeliveries: only lines new since then run.
        let seen: Option<String> =
            sqlx::query_scalar(self.q("SELECT body FROM comments WHERE repo = ? AND id = ?"))
                .bind(repo.to_string())
                .bind(c.comment_id as i64)
                .fetch_optional(&self.ledger.pool)
                .await?;
        let previous = match c.action {
            CommentAction::Edited => c.previous_body.clone().or(seen),
            _ => seen,
        };
        let found = commands::gained(&c.body, previous.as_deref(), &prefix);
        let user = User {
            id: c.author.id,
            login: c.author.login.clone(),
        };
        let thread = if c.on_pull_request {
            Thread::Pull(c.number)
        } else {
            Thread::Issue(c.number)
        };
        let pr = if c.on_pull_request && !found.is_empty() {
            Some(self.forge.pull_request(repo, c.number).await?)
        } else {
            None
        };
        // A line's key names the comment, the text it was new against, and its place.
        let against = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(previous.as_deref().unwrap_or("")))
        };
        let mut recheck = false;
        for (i, f) in found.iter().enumerate() {
            let key = format!("{}:{}:{i}", c.comment_id, &against[..16]);
            let plan = match self.ledger.command_line(&repo.to_string(), &key).await? {
                Some((_, true)) => continue,
                Some((json, false)) => serde_json::from_str::<Plan>(&json)
                    .map_err(|e| EngineError::Other(format!("a recorded command plan: {e}")))?,
                None => {
                    if i > 0 {
                        // Each command sees what the previous ones committed.
                        match self.load(repo).await? {
                            Some(t) => trunk = t,
                            None => break,
                        }
                    }
                    let plan = self
                        .plan_one(repo, &trunk, pr.as_ref(), &user, f, &prefix)
                        .await?;
                    let json = serde_json::to_string(&plan)
                        .map_err(|e| EngineError::Other(e.to_string()))?;
                    self.ledger
                        .plan_command_line(&repo.to_string(), &key, &json)
                        .await?;
                    plan
                }
            };
            recheck |= plan.recheck;
            self.apply_plan(repo, &trunk, &plan).await?;
            self.forge
                .upsert_comment(
                    repo,
                    thread,
                    &format!("reply-{key}"),
                    &format!("@{} {}", user.login, plan.reply),
                )
                .await?;
            self.ledger
                .command_line_done(&repo.to_string(), &key)
                .await?;
        }
        // Only now is the body "seen": a crash before here runs the lines again, and the
        // ledger makes each one run once.
        sqlx::query(self.q("INSERT INTO comments (repo, id, body) VALUES (?, ?, ?) ON CONFLICT (repo, id) DO UPDATE SET body = excluded.body"))
            .bind(repo.to_string())
            .bind(c.comment_id as i64)
            .bind(&c.body)
            .execute(&self.ledger.pool)
            .await?;
        if let Some(pr) = &pr {
            drop(trunk);
            if recheck {
                sqlx::query(self.q("DELETE FROM effects WHERE key = ?"))
                    .bind(super::checks_key(repo, pr))
                    .execute(&self.ledger.pool)
                    .await?;
            }
            self.reconcile_locked(repo, &[pr.number], &[]).await?;
        }
        Ok(())
    }

    /// Applies a plan; every step may be repeated: ledger rows are upserts, the table changes
    /// commit nothing once they are there, learnings are not appended twice.
    async fn apply_plan(&self, repo: &RepoRef, t: &Trunk, plan: &Plan) -> Result<(), EngineError> {
        let r = repo.to_string();
        for op in &plan.ops {
            match op {
                Op::Claim { pr, task } => {
                    sqlx::query(self.q("INSERT INTO claims (repo, pr, task) VALUES (?, ?, ?) ON CONFLICT (repo, pr) DO UPDATE SET task = excluded.task"))
                        .bind(&r)
                        .bind(*pr as i64)
                        .bind(task)
                        .execute(&self.ledger.pool)
                        .await?;
                }
                Op::Blocked { task, previous } => {
                    sqlx::query(self.q("INSERT INTO blocked (repo, task, previous) VALUES (?, ?, ?) ON CONFLICT (repo, task) DO UPDATE SET previous = excluded.previous"))
                        .bind(&r)
                        .bind(task)
                        .bind(previous)
                        .execute(&self.ledger.pool)
                        .await?;
                }
                Op::Merge { pr, head, by } => {
                    sqlx::query(self.q("INSERT INTO merges (repo, pr, head, requested_by) VALUES (?, ?, ?, ?) ON CONFLICT (repo, pr) DO UPDATE SET head = excluded.head, requested_by = excluded.requested_by"))
                        .bind(&r)
                        .bind(*pr as i64)
                        .bind(head)
                        .bind(by)
                        .execute(&self.ledger.pool)
                        .await?;
                }
                Op::CancelMerge { pr } => self.clear_merge(repo, *pr).await?,
            }
        }
        if !plan.changes.is_empty() || !plan.learnings.is_empty() {
            let who = Identity {
                name: t.policy.bot.name.clone(),
                email: t.policy.bot.email.clone(),
            };
            tokio::task::block_in_place(|| {
                t.mirror.update(
                    &t.tasks_path,
                    &plan.changes,
                    &plan.learnings,
                    &plan.message,
                    &who,
                    self.config.push_attempts,
                )
            })?;
        }
        Ok(())
    }

    /// Decides what one command line does, changing nothing. A forge that refuses a read is
    /// the reply; one that fails is retried with the delivery.
    async fn plan_one(
        &self,
        repo: &RepoRef,
        t: &Trunk,
        pr: Option<&PullRequest>,
        user: &User,
        f: &Found,
        prefix: &str,
    ) -> Result<Plan, EngineError> {
        match self.plan_inner(repo, t, pr, user, f, prefix).await {
            Err(EngineError::Forge(e)) if e.is_permanent() => {
                Ok(Plan::reply(format!("could not do that: {e}")))
            }
            other => other,
        }
    }

    async fn plan_inner(
        &self,
        repo: &RepoRef,
        t: &Trunk,
        pr: Option<&PullRequest>,
        user: &User,
        f: &Found,
        prefix: &str,
    ) -> Result<Plan, EngineError> {
        let cmd = match &f.parsed {
            Ok(c) => c,
            Err(p) => return Ok(Plan::reply(p.to_string())),
        };
        if cmd.spec().write {
            let p = self.permission_of(repo, user).await?;
            if p < Permission::Write {
                let has = format!("{p:?}").to_ascii_lowercase();
                return Ok(Plan::reply(format!(
                    "`{}` needs write access; @{} has {has}",
                    cmd.spec().name,
                    user.login
                )));
            }
        }
        if *cmd == Command::Help {
            return Ok(Plan::reply(format!("\n\n{}", commands::help(prefix))));
        }
        let Some(pr) = pr else {
            return Ok(Plan::reply(
                "commands other than `help` work on pull requests",
            ));
        };
        let claimed = self.claimed(repo, pr.number).await?;
        let linked: Option<&Task> = match &claimed {
            Some(id) => t.tasks.iter().find(|x| &x.id == id),
            None => super::link::task_for_pull(&t.tasks, pr),
        };
        let need_task =
            || Plan::reply("this pull request is linked to no task; `claim ID` links it");
        let now = self.now();
        // Only the columns the table has; a person's command applies whatever the row says.
        let row = |id: &str, cells: &[(&str, String)]| RowChange {
            id: id.to_owned(),
            cells: cells
                .iter()
                .filter(|(k, _)| t.has_column(k))
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            expect: Vec::new(),
        };
        let change = |reply: String, changes: Vec<RowChange>, message: String| Plan {
            reply,
            changes,
            message,
            ..Plan::default()
        };
        Ok(match cmd {
            Command::Help => Plan::reply(format!("\n\n{}", commands::help(prefix))),
            Command::Status => Plan::reply(self.status_reply(repo, t, pr, linked).await?),
            Command::Claim(id) => {
                let Some(task) = t.tasks.iter().find(|x| x.id.eq_ignore_ascii_case(id)) else {
                    return Ok(Plan::reply(format!(
                        "there is no task `{id}` in {}",
                        t.tasks_path
                    )));
                };
                if !matches!(task.status, Some(Status::NotStarted | Status::Blocked)) {
                    let s = task.status.map_or("?", |s| s.as_str());
                    return Ok(Plan::reply(format!(
                        "{} is {s}; only not-started or blocked tasks can be claimed",
                        task.id
                    )));
                }
                let open: Vec<&str> = task
                    .depends_on
                    .iter()
                    .filter(|d| !t.tasks.iter().any(|x| &x.id == *d && x.is_done()))
                    .map(String::as_str)
                    .collect();
                if !open.is_empty() {
                    return Ok(Plan::reply(format!(
                        "{} depends on {}, not done yet",
                        task.id,
                        open.join(", ")
                    )));
                }
                let mut cells = vec![
                    ("status", Status::InProgress.as_str().to_owned()),
                    ("notes", format!("PR #{}", pr.number)),
                ];
                if task.agent.is_empty() {
                    cells.push(("agent", pr.author.login.clone()));
                }
                if task.started_at.is_none() {
                    cells.push(("started_at", now.clone()));
                }
                cells.push(("branch", pr.head_ref.clone()));
                let mut plan = change(
                    format!("claimed {} for this pull request: in-progress", task.id),
                    vec![row(&task.id, &cells)],
                    format!(
                        "chore(tasks): {} in-progress — claimed for PR #{} by @{}",
                        task.id, pr.number, user.login
                    ),
                );
                plan.ops.push(Op::Claim {
                    pr: pr.number,
                    task: task.id.clone(),
                });
                plan
            }
            Command::Unclaim => {
                let Some(task) = linked else {
                    return Ok(need_task());
                };
                let cells = [
                    ("status", Status::NotStarted.as_str().to_owned()),
                    (
                        "notes",
                        format!("unclaimed from PR #{} by @{}", pr.number, user.login),
                    ),
                ];
                let mut plan = change(
                    format!("unclaimed {}: not-started again", task.id),
                    vec![row(&task.id, &cells)],
                    format!(
                        "chore(tasks): {} not-started — unclaimed from PR #{}",
                        task.id, pr.number
                    ),
                );
                plan.ops.push(Op::Claim {
                    pr: pr.number,
                    task: String::new(),
                });
                plan
            }
            Command::Block(reason) => {
                let Some(task) = linked else {
                    return Ok(need_task());
                };
                let cells = [
                    ("status", Status::Blocked.as_str().to_owned()),
                    ("notes", format!("blocked: {reason} (@{})", user.login)),
                ];
                let mut plan = change(
                    format!("{} is blocked: {reason}", task.id),
                    vec![row(&task.id, &cells)],
                    format!("chore(tasks): {} blocked — {reason}", task.id),
                );
                if task.status != Some(Status::Blocked) {
                    plan.ops.push(Op::Blocked {
                        task: task.id.clone(),
                        previous: task.status.map_or("not-started", |s| s.as_str()).to_owned(),
                    });
                }
                plan
            }
            Command::Unblock => {
                let Some(task) = linked else {
                    return Ok(need_task());
                };
                if task.status != Some(Status::Blocked) {
                    return Ok(Plan::reply(format!("{} is not blocked", task.id)));
                }
                let previous: Option<String> = sqlx::query_scalar(
                    self.q("SELECT previous FROM blocked WHERE repo = ? AND task = ?"),
                )
                .bind(repo.to_string())
                .bind(&task.id)
                .fetch_optional(&self.ledger.pool)
                .await?;
                let back = previous.unwrap_or_else(|| Status::InProgress.as_str().to_owned());
                let cells = [
                    ("status", back.clone()),
                    ("notes", format!("PR #{}", pr.number)),
                ];
                change(
                    format!("{} is {back} again", task.id),
                    vec![row(&task.id, &cells)],
                    format!(
                        "chore(tasks): {} {back} — unblocked by @{}",
                        task.id, user.login
                    ),
                )
            }
            Command::Estimate(n) => {
                let Some(task) = linked else {
                    return Ok(need_task());
                };
                if !t.has_column("estimate") {
                    return Ok(Plan::reply(format!(
                        "{} has no `estimate` column; add one to record estimates",
                        t.tasks_path
                    )));
                }
                change(
                    format!("{} estimate is {n}", task.id),
                    vec![row(&task.id, &[("estimate", n.to_string())])],
                    format!("chore(tasks): {} estimate {n}", task.id),
                )
            }
            Command::Used(n) => {
                let Some(task) = linked else {
                    return Ok(need_task());
                };
                if !t.has_column("used") {
                    return Ok(Plan::reply(format!(
                        "{} has no `used` column; add one to record usage",
                        t.tasks_path
                    )));
                }
                let variance = task.estimate.and_then(|e| crate::tasks::ratio(e, *n));
                let mut learnings = Vec::new();
                let said = match (task.estimate, variance) {
                    (Some(e), Some(v)) => {
                        if let Some(entry) = decide::learning_entry(&task.id, e, *n, &now) {
                            learnings.push(Learning {
                                path: crate::policy::path_string(&t.policy.tasks.learnings),
                                entry,
                            });
                        }
                        format!(
                            "{} used {n} against an estimate of {e}: {:+.0}%{}",
                            task.id,
                            v * 100.0,
                            if v.abs() > 0.5 {
                                " — recorded as a learning"
                            } else {
                                ""
                            }
                        )
                    }
                    _ => format!("{} used {n} (no estimate to compare with)", task.id),
                };
                let mut plan = change(
                    said,
                    vec![row(&task.id, &[("used", n.to_string())])],
                    format!("chore(tasks): {} used {n}", task.id),
                );
                plan.learnings = learnings;
                plan
            }
            Command::Merge => {
                if pr.state != PrState::Open {
                    return Ok(Plan::reply("this pull request is not open"));
                }
                if pr.base_ref != t.name() {
                    return Ok(Plan::reply(format!(
                        "this pull request targets `{}`; the bot merges only into `{}`",
                        pr.base_ref,
                        t.name()
                    )));
                }
                let mut plan = Plan::reply(format!(
                    "will squash-merge once CI on `{}` is green; a new push cancels this",
                    short(&pr.head_sha)
                ));
                plan.ops.push(Op::Merge {
                    pr: pr.number,
                    head: pr.head_sha.clone(),
                    by: user.login.clone(),
                });
                plan
            }
            Command::MergeCancel => {
                let pending: Option<String> =
                    sqlx::query_scalar(self.q("SELECT head FROM merges WHERE repo = ? AND pr = ?"))
                        .bind(repo.to_string())
                        .bind(pr.number as i64)
                        .fetch_optional(&self.ledger.pool)
                        .await?;
                let mut plan = Plan::reply(if pending.is_some() {
                    "the pending merge is withdrawn"
                } else {
                    "there was no pending merge"
                });
                plan.ops.push(Op::CancelMerge { pr: pr.number });
                plan
            }
            Command::Recheck => {
                let mut plan = Plan::reply(format!("rechecking `{}`", short(&pr.head_sha)));
                plan.recheck = true;
                plan
            }
        })
    }

    async fn status_reply(
        &self,
        repo: &RepoRef,
        t: &Trunk,
        pr: &PullRequest,
        task: Option<&Task>,
    ) -> Result<String, EngineError> {
        let Some(task) = task else {
            return Ok("this pull request is linked to no task; `claim ID` links it".into());
        };
        let bot = self.forge.me().await?;
        let mut ci = t.policy.ci.clone();
        ci.required = self.required_contexts(repo, &t.policy).await.contexts;
        let head = decide::verdict(
            &self.forge.ci_results(repo, &pr.head_sha).await?,
            &ci,
            &bot.login,
        );
        let status = task.status.map_or("?", |s| s.as_str());
        let trunk = t.name();
        let missing = match (pr.state, &head) {
            _ if task.is_done() => "nothing".to_owned(),
            (PrState::Open, decide::Verdict::Green(_)) => {
                format!("a squash merge into `{trunk}`, then CI green on the merge commit")
            }
            (PrState::Open, _) => format!(
                "CI green on the head, a squash merge into `{trunk}`, then CI green on the merge commit"
            ),
            (PrState::Merged, _) => "CI green on the merge commit".into(),
            (PrState::Closed, _) => "a merged pull request".into(),
        };
        let plan = crate::tasks::plan(&t.tasks);
        let ready = if plan.ready.is_empty() {
            "none".to_owned()
        } else {
            plan.ready.join(", ")
        };
        Ok(format!(
            "{} is **{status}** (agent {}, notes: {})\n\n- CI on `{}`: {head}\n- missing before done: {missing}\n- may start now: {ready}\n- issues: write `Refs #N`; trunkwarden closes them once CI on the squash commit is green",
            task.id,
            if task.agent.is_empty() {
                "-"
            } else {
                &task.agent
            },
            if task.notes.is_empty() {
                "-"
            } else {
                &task.notes
            },
            short(&pr.head_sha),
        ))
    }

    /// Acts on a pending `merge` for an open pull request: cancelled by a new head, carried out
    /// once the head it was asked for is green.
    pub(super) async fn pending_merge(
        &self,
        repo: &RepoRef,
        t: &Trunk,
        pr: &PullRequest,
        bot: &str,
    ) -> Result<(), EngineError> {
        let row: Option<(String, String)> = sqlx::query_as(
            self.q("SELECT head, requested_by FROM merges WHERE repo = ? AND pr = ?"),
        )
        .bind(repo.to_string())
        .bind(pr.number as i64)
        .fetch_optional(&self.ledger.pool)
        .await?;
        let Some((head, by)) = row else { return Ok(()) };
        if pr.head_sha != head {
            self.clear_merge(repo, pr.number).await?;
            self.merge_say(
                repo,
                pr.number,
                &head,
                &by,
                format!(
                    "a push moved the head to `{}`; the merge asked for `{}` is cancelled",
                    short(&pr.head_sha),
                    short(&head)
                ),
            )
            .await?;
            return Ok(());
        }
        let verdict = decide::verdict(
            &self.forge.ci_results(repo, &head).await?,
            &t.policy.ci,
            bot,
        );
        match verdict {
            decide::Verdict::Green(_) => {
                let title = format!("{} (#{})", pr.title, pr.number);
                let message = squash_message(t, pr);
                let result = self
                    .forge
                    .squash_merge(repo, pr.number, &head, &title, &message)
                    .await;
                self.clear_merge(repo, pr.number).await?;
                let said = match result {
                    Ok(sha) => format!("squash-merged as `{}`", short(&sha)),
                    Err(e) => format!("the merge failed: {e}"),
                };
                self.merge_say(repo, pr.number, &head, &by, said).await?;
            }
            decide::Verdict::Red(ctx) => {
                self.clear_merge(repo, pr.number).await?;
                self.merge_say(
                    repo,
                    pr.number,
                    &head,
                    &by,
                    format!(
                        "CI failed on `{}` ({}); the merge is cancelled",
                        short(&head),
                        ctx.join(", ")
                    ),
                )
                .await?;
            }
            decide::Verdict::Pending(_) => {}
        }
        Ok(())
    }

    async fn clear_merge(&self, repo: &RepoRef, pr: u64) -> Result<(), EngineError> {
        sqlx::query(self.q("DELETE FROM merges WHERE repo = ? AND pr = ?"))
            .bind(repo.to_string())
            .bind(pr as i64)
            .execute(&self.ledger.pool)
            .await?;
        Ok(())
    }

    async fn merge_say(
        &self,
        repo: &RepoRef,
        pr: u64,
        head: &str,
        by: &str,
        text: String,
    ) -> Result<(), EngineError> {
        self.forge
            .upsert_comment(
                repo,
                Thread::Pull(pr),
                &format!("merge-{head}"),
                &format!("@{by} {text}"),
            )
            .await?;
        Ok(())
    }
}

/// The squash commit's message as the forge's button writes it: the description, then a
/// `Co-authored-by` trailer for each other author of the pull request's commits.
fn squash_message(t: &Trunk, pr: &PullRequest) -> String {
    let authors = tokio::task::block_in_place(|| -> Option<Vec<(String, String)>> {
        let head = t
            .mirror
            .fetch_ref(
                &format!("refs/heads/{}", pr.head_ref),
                &format!("pr/{}", pr.number),
            )
            .ok()?;
        let git = t.mirror.repository().ok()?;
        let ids = crate::hook::git::new_commits(&git, head, [t.tip]).ok()?;
        let mut out: Vec<(String, String)> = Vec::new();
        for id in ids {
            let c = git.find_commit(id).ok()?;
            let a = c.author();
            let who = (
                String::from_utf8_lossy(a.name_bytes()).into_owned(),
                String::from_utf8_lossy(a.email_bytes()).into_owned(),
            );
            if !out.contains(&who) {
                out.push(who);
            }
        }
        Some(out)
    })
    .unwrap_or_default();
    co_authored(&pr.body, &pr.author.login, &authors)
}

/// `body`, then a trailer for each author who is not the pull request's author (known to the
/// forge only by login, so matched by name or by the email's local part).
fn co_authored(body: &str, login: &str, authors: &[(String, String)]) -> String {
    let is_author = |(name, email): &(String, String)| {
        let local = email.split('@').next().unwrap_or("");
        let local = local.rsplit('+').next().unwrap_or(local);
        name.eq_ignore_ascii_case(login) || local.eq_ignore_ascii_case(login)
    };
    let trailers: Vec<String> = authors
        .iter()
        .filter(|a| !is_author(a))
        .map(|(name, email)| format!("Co-authored-by: {name} <{email}>"))
        .filter(|line| !body.contains(line.as_str()))
        .collect();
    let mut out = body.trim_end().to_owned();
    if !trailers.is_empty() {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&trailers.join("\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::co_authored;

    #[test]
    fn other_authors_become_co_author_trailers() {
        let authors = [
            (
                "Alice".to_owned(),
                "123+alice@users.noreply.github.com".to_owned(),
            ),
            ("Bob Builder".to_owned(), "bob@example.com".to_owned()),
        ];
        assert_eq!(
            co_authored("Adds the check.\n", "alice", &authors),
            "Adds the check.\n\nCo-authored-by: Bob Builder <bob@example.com>"
        );
        assert_eq!(co_authored("", "alice", &authors[..1]), "");
        assert_eq!(
            co_authored("", "carol", &authors[1..]),
            "Co-authored-by: Bob Builder <bob@example.com>"
        );
    }
}
