//! Running comment commands: permission by numeric user id, one reply per command line,
//! task-table changes through the committer (one commit per command), merges that wait for
//! green on the head they were asked for.

use std::time::{Duration, Instant};

use super::decide::{self, short};
use super::{Engine, EngineError, Trunk};
use crate::commands::{self, Command, Found};
use crate::config::RepoPolicy;
use crate::forge::{Permission, PrState, PullRequest, RepoRef, Thread, User};
use crate::git::{Identity, Learning, RowChange};
use crate::tasks::{Status, Task};
use crate::webhook::event::{Comment, CommentAction};

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
                .fetch_optional(&self.effects)
                .await?,
        )
    }

    async fn set_claim(&self, repo: &RepoRef, pr: u64, task: &str) -> Result<(), EngineError> {
        sqlx::query(self.q("INSERT INTO claims (repo, pr, task) VALUES (?, ?, ?) ON CONFLICT (repo, pr) DO UPDATE SET task = excluded.task"))
            .bind(repo.to_string())
            .bind(pr as i64)
            .bind(task)
            .execute(&self.effects)
            .await?;
        Ok(())
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
        let trunk_name = "main";
        let Some(trunk) = self.load(repo, trunk_name).await? else {
            return Ok(());
        };
        let prefix = trunk.policy.commands.prefix.clone();
        // The body this process last acted on, for forges whose edit events do not carry the
        // old body (GitLab) and for redeliveries: only lines new since then run.
        let seen: Option<String> =
            sqlx::query_scalar(self.q("SELECT body FROM comments WHERE repo = ? AND id = ?"))
                .bind(repo.to_string())
                .bind(c.comment_id as i64)
                .fetch_optional(&self.effects)
                .await?;
        let previous = match c.action {
            CommentAction::Edited => c.previous_body.clone().or(seen),
            _ => seen,
        };
        let found = commands::gained(&c.body, previous.as_deref(), &prefix);
        sqlx::query(self.q("INSERT INTO comments (repo, id, body) VALUES (?, ?, ?) ON CONFLICT (repo, id) DO UPDATE SET body = excluded.body"))
            .bind(repo.to_string())
            .bind(c.comment_id as i64)
            .bind(&c.body)
            .execute(&self.effects)
            .await?;
        if found.is_empty() {
            return Ok(());
        }
        let user = User {
            id: c.author.id,
            login: c.author.login.clone(),
        };
        let thread = if c.on_pull_request {
            Thread::Pull(c.number)
        } else {
            Thread::Issue(c.number)
        };
        let pr = if c.on_pull_request {
            Some(self.forge.pull_request(repo, c.number).await?)
        } else {
            None
        };
        let mut recheck = false;
        let mut trunk = trunk;
        for (i, f) in found.iter().enumerate() {
            if i > 0 {
                // Each command sees what the previous ones committed.
                match self.load(repo, trunk_name).await? {
                    Some(t) => trunk = t,
                    None => break,
                }
            }
            let reply = match self
                .run_one(repo, &trunk, pr.as_ref(), &user, f, &prefix)
                .await
            {
                Ok((text, again)) => {
                    recheck |= again;
                    text
                }
                Err(EngineError::Forge(e)) => format!("could not do that: {e}"),
                Err(e) => return Err(e),
            };
            let key = format!("reply-{}-{i}-{}", c.comment_id, f.text.len());
            self.forge
                .upsert_comment(repo, thread, &key, &format!("@{} {reply}", user.login))
                .await?;
        }
        if let Some(pr) = &pr {
            drop(trunk);
            if recheck {
                sqlx::query(self.q("DELETE FROM checked WHERE key = ?"))
                    .bind(format!("{repo}:checks:{}", pr.head_sha))
                    .execute(&self.effects)
                    .await?;
            }
            self.reconcile_locked(repo, &[pr.number], &[]).await?;
        }
        Ok(())
    }

    async fn run_one(
        &self,
        repo: &RepoRef,
        t: &Trunk,
        pr: Option<&PullRequest>,
        user: &User,
        f: &Found,
        prefix: &str,
    ) -> Result<(String, bool), EngineError> {
        let cmd = match &f.parsed {
            Ok(c) => c,
            Err(p) => return Ok((p.to_string(), false)),
        };
        if cmd.spec().write {
            let p = self.permission_of(repo, user).await?;
            if p < Permission::Write {
                let has = format!("{p:?}").to_ascii_lowercase();
                return Ok((
                    format!(
                        "`{}` needs write access; @{} has {has}",
                        cmd.spec().name,
                        user.login
                    ),
                    false,
                ));
            }
        }
        if *cmd == Command::Help {
            return Ok((format!("\n\n{}", commands::help(prefix)), false));
        }
        let Some(pr) = pr else {
            return Ok((
                "commands other than `help` work on pull requests".into(),
                false,
            ));
        };
        let claimed = self.claimed(repo, pr.number).await?;
        let linked: Option<&Task> = match &claimed {
            Some(id) => t.tasks.iter().find(|x| &x.id == id),
            None => super::link::task_for_pull(&t.tasks, pr),
        };
        let need_task = || "this pull request is linked to no task; `claim ID` links it".to_owned();
        let now = super::now_rfc3339();
        let commit = |changes: Vec<RowChange>, learnings: Vec<Learning>, message: String| {
            let who = Identity {
                name: t.policy.bot.name.clone(),
                email: t.policy.bot.email.clone(),
            };
            let changes: Vec<RowChange> = changes
                .into_iter()
                .map(|mut c| {
                    c.cells.retain(|(k, _)| t.columns.contains(k));
                    c
                })
                .collect();
            tokio::task::block_in_place(|| {
                t.mirror.update(
                    &t.tasks_path,
                    &changes,
                    &learnings,
                    &message,
                    &who,
                    self.config.push_attempts,
                )
            })
        };
        let row = |id: &str, cells: &[(&str, String)]| RowChange {
            id: id.to_owned(),
            cells: cells
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        };
        Ok(match cmd {
            Command::Help => unreachable!("answered above"),
            Command::Status => (self.status_reply(repo, t, pr, linked).await?, false),
            Command::Claim(id) => {
                let Some(task) = t.tasks.iter().find(|x| x.id.eq_ignore_ascii_case(id)) else {
                    return Ok((
                        format!("there is no task `{id}` in {}", t.tasks_path),
                        false,
                    ));
                };
                if !matches!(task.status, Some(Status::NotStarted | Status::Blocked)) {
                    let s = task.status.map_or("?", |s| s.as_str());
                    return Ok((
                        format!(
                            "{} is {s}; only not-started or blocked tasks can be claimed",
                            task.id
                        ),
                        false,
                    ));
                }
                let open: Vec<&str> = task
                    .depends_on
                    .iter()
                    .filter(|d| !t.tasks.iter().any(|x| &x.id == *d && x.is_done()))
                    .map(String::as_str)
                    .collect();
                if !open.is_empty() {
                    return Ok((
                        format!("{} depends on {}, not done yet", task.id, open.join(", ")),
                        false,
                    ));
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
                self.set_claim(repo, pr.number, &task.id).await?;
                let msg = format!(
                    "chore(tasks): {} in-progress — claimed for PR #{} by @{}",
                    task.id, pr.number, user.login
                );
                commit(vec![row(&task.id, &cells)], vec![], msg)?;
                (
                    format!("claimed {} for this pull request: in-progress", task.id),
                    false,
                )
            }
            Command::Unclaim => {
                let Some(task) = linked else {
                    return Ok((need_task(), false));
                };
                self.set_claim(repo, pr.number, "").await?;
                let cells = [
                    ("status", Status::NotStarted.as_str().to_owned()),
                    (
                        "notes",
                        format!("unclaimed from PR #{} by @{}", pr.number, user.login),
                    ),
                ];
                commit(
                    vec![row(&task.id, &cells)],
                    vec![],
                    format!(
                        "chore(tasks): {} not-started — unclaimed from PR #{}",
                        task.id, pr.number
                    ),
                )?;
                (format!("unclaimed {}: not-started again", task.id), false)
            }
            Command::Block(reason) => {
                let Some(task) = linked else {
                    return Ok((need_task(), false));
                };
                let previous = task.status.map_or("not-started", |s| s.as_str());
                if task.status != Some(Status::Blocked) {
                    sqlx::query(self.q("INSERT INTO blocked (repo, task, previous) VALUES (?, ?, ?) ON CONFLICT (repo, task) DO UPDATE SET previous = excluded.previous"))
                        .bind(repo.to_string())
                        .bind(&task.id)
                        .bind(previous)
                        .execute(&self.effects)
                        .await?;
                }
                let cells = [
                    ("status", Status::Blocked.as_str().to_owned()),
                    ("notes", format!("blocked: {reason} (@{})", user.login)),
                ];
                commit(
                    vec![row(&task.id, &cells)],
                    vec![],
                    format!("chore(tasks): {} blocked — {reason}", task.id),
                )?;
                (format!("{} is blocked: {reason}", task.id), false)
            }
            Command::Unblock => {
                let Some(task) = linked else {
                    return Ok((need_task(), false));
                };
                if task.status != Some(Status::Blocked) {
                    return Ok((format!("{} is not blocked", task.id), false));
                }
                let previous: Option<String> = sqlx::query_scalar(
                    self.q("SELECT previous FROM blocked WHERE repo = ? AND task = ?"),
                )
                .bind(repo.to_string())
                .bind(&task.id)
                .fetch_optional(&self.effects)
                .await?;
                let back = previous.unwrap_or_else(|| Status::InProgress.as_str().to_owned());
                let cells = [
                    ("status", back.clone()),
                    ("notes", format!("PR #{}", pr.number)),
                ];
                commit(
                    vec![row(&task.id, &cells)],
                    vec![],
                    format!(
                        "chore(tasks): {} {back} — unblocked by @{}",
                        task.id, user.login
                    ),
                )?;
                (format!("{} is {back} again", task.id), false)
            }
            Command::Estimate(n) => {
                let Some(task) = linked else {
                    return Ok((need_task(), false));
                };
                if !t.columns.iter().any(|c| c == "estimate") {
                    let why = format!(
                        "{} has no `estimate` column; add one to record estimates",
                        t.tasks_path
                    );
                    return Ok((why, false));
                }
                commit(
                    vec![row(&task.id, &[("estimate", n.to_string())])],
                    vec![],
                    format!("chore(tasks): {} estimate {n}", task.id),
                )?;
                (format!("{} estimate is {n}", task.id), false)
            }
            Command::Used(n) => {
                let Some(task) = linked else {
                    return Ok((need_task(), false));
                };
                if !t.columns.iter().any(|c| c == "used") {
                    let why = format!(
                        "{} has no `used` column; add one to record usage",
                        t.tasks_path
                    );
                    return Ok((why, false));
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
                commit(
                    vec![row(&task.id, &[("used", n.to_string())])],
                    learnings,
                    format!("chore(tasks): {} used {n}", task.id),
                )?;
                (said, false)
            }
            Command::Merge => {
                if pr.state != PrState::Open {
                    return Ok(("this pull request is not open".into(), false));
                }
                if pr.base_ref != t.policy.trunk.name() {
                    return Ok((
                        format!(
                            "this pull request targets `{}`; the bot merges only into `{}`",
                            pr.base_ref,
                            t.policy.trunk.name()
                        ),
                        false,
                    ));
                }
                sqlx::query(self.q("INSERT INTO merges (repo, pr, head, requested_by) VALUES (?, ?, ?, ?) ON CONFLICT (repo, pr) DO UPDATE SET head = excluded.head, requested_by = excluded.requested_by"))
                    .bind(repo.to_string())
                    .bind(pr.number as i64)
                    .bind(&pr.head_sha)
                    .bind(&user.login)
                    .execute(&self.effects)
                    .await?;
                (
                    format!(
                        "will squash-merge once CI on `{}` is green; a new push cancels this",
                        short(&pr.head_sha)
                    ),
                    false,
                )
            }
            Command::MergeCancel => {
                let gone = sqlx::query(self.q("DELETE FROM merges WHERE repo = ? AND pr = ?"))
                    .bind(repo.to_string())
                    .bind(pr.number as i64)
                    .execute(&self.effects)
                    .await?
                    .rows_affected();
                (
                    if gone > 0 {
                        "the pending merge is withdrawn".into()
                    } else {
                        "there was no pending merge".into()
                    },
                    false,
                )
            }
            Command::Recheck => (format!("rechecking `{}`", short(&pr.head_sha)), true),
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
        let head = decide::verdict(
            &self.forge.ci_results(repo, &pr.head_sha).await?,
            &t.policy.ci,
            &bot.login,
        );
        let ci = head.to_string();
        let status = task.status.map_or("?", |s| s.as_str());
        let missing = match (pr.state, &head) {
            _ if task.is_done() => "nothing".to_owned(),
            (PrState::Open, decide::Verdict::Green(_)) => {
                "a squash merge into main, then CI green on the merge commit".into()
            }
            (PrState::Open, _) => {
                "CI green on the head, a squash merge, then CI green on the merge commit".into()
            }
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
            "{} is **{status}** (agent {}, notes: {})\n\n- CI on `{}`: {ci}\n- missing before done: {missing}\n- may start now: {ready}",
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
        pr: &PullRequest,
        policy: &RepoPolicy,
        bot: &str,
    ) -> Result<(), EngineError> {
        let row: Option<(String, String)> = sqlx::query_as(
            self.q("SELECT head, requested_by FROM merges WHERE repo = ? AND pr = ?"),
        )
        .bind(repo.to_string())
        .bind(pr.number as i64)
        .fetch_optional(&self.effects)
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
        let verdict = decide::verdict(&self.forge.ci_results(repo, &head).await?, &policy.ci, bot);
        match verdict {
            decide::Verdict::Green(_) => {
                let title = format!("{} (#{})", pr.title, pr.number);
                match self
                    .forge
                    .squash_merge(repo, pr.number, &head, &title, &pr.body)
                    .await
                {
                    Ok(sha) => {
                        self.clear_merge(repo, pr.number).await?;
                        self.merge_say(
                            repo,
                            pr.number,
                            &head,
                            &by,
                            format!("squash-merged as `{}`", short(&sha)),
                        )
                        .await?;
                    }
                    Err(e) => {
                        self.clear_merge(repo, pr.number).await?;
                        self.merge_say(
                            repo,
                            pr.number,
                            &head,
                            &by,
                            format!("the merge failed: {e}"),
                        )
                        .await?;
                    }
                }
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
            .execute(&self.effects)
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
