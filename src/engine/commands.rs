//! Running comment commands: each command line is planned by its own file under
//! [`crate::commands`] from the facts gathered here (permission by numeric user id, the linked
//! task, what one command needs), recorded, applied — ledger updates, one commit — and
//! answered. Merges wait for green on the head they were asked for.
//!
//! A line's plan is recorded before anything of it is done. A process that dies in between
//! finds the plan and completes it (every step repeats safely); a line answered once never runs
//! again.

use std::time::{Duration, Instant};

use super::decide::{self, short};
use super::trunk::Trunk;
use super::{Engine, EngineError};
use crate::commands::{self, Command, Found, Op, Plan};
use crate::forge::{Permission, PullRequest, RepoRef, Thread, User};
use crate::git::{Identity, Learning, RowChange};
use crate::webhook::event::{Comment, CommentAction};

impl Engine {
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
        let r = repo.to_string();
        let prefix = trunk.policy.commands.prefix.clone();
        // The body this process last acted on, for forges whose edit events do not carry the
        // old body (GitLab) and for redeliveries: only lines new since then run.
        let seen = self.ledger.seen_comment(&r, c.comment_id).await?;
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
        let (mut recheck, mut changed) = (false, false);
        for (i, f) in found.iter().enumerate() {
            let key = format!("{}:{}:{i}", c.comment_id, &against[..16]);
            // A plan made now has never been answered: its reply is posted without a search.
            let (plan, fresh) = match self.ledger.command_line(&r, &key).await? {
                Some((_, true)) => continue,
                Some((json, false)) => (
                    serde_json::from_str::<Plan>(&json)
                        .map_err(|e| EngineError::Other(format!("a recorded command plan: {e}")))?,
                    false,
                ),
                None => {
                    if i > 0 {
                        // Each command sees what the previous ones committed.
                        match self.load(repo).await? {
                            Some(t) => trunk = t,
                            None => break,
                        }
                    }
                    let plan = self
                        .plan_line(repo, &trunk, pr.as_ref(), &user, f, &prefix)
                        .await?;
                    let json = serde_json::to_string(&plan)
                        .map_err(|e| EngineError::Other(e.to_string()))?;
                    self.ledger.plan_command_line(&r, &key, &json).await?;
                    (plan, true)
                }
            };
            recheck |= plan.recheck;
            changed |= plan.recheck || !plan.rows.is_empty() || !plan.ops.is_empty();
            self.apply_plan(repo, &trunk, &plan).await?;
            let reply = format!("@{} {}", user.login, plan.reply);
            self.say(repo, thread, &format!("reply-{key}"), &reply, fresh)
                .await?;
            self.ledger.command_line_done(&r, &key).await?;
        }
        // Only now is the body "seen": a crash before here runs the lines again, and the
        // ledger makes each one run once.
        self.ledger.see_comment(&r, c.comment_id, &c.body).await?;
        // A command that only answered changed nothing a reconcile would see — unless the
        // bot never saw the pull request before (every delivery of it lost).
        let unseen = match pr.as_ref() {
            Some(pr) if !changed => {
                let place = format!("pull-{}", pr.number);
                self.ledger.said(&r, &place, "task").await?.is_none()
            }
            _ => false,
        };
        if let Some(pr) = pr.as_ref().filter(|_| changed || unseen) {
            drop(trunk);
            if recheck {
                self.ledger
                    .forget(&super::checks::checks_key(repo, pr))
                    .await?;
            }
            self.reconcile_locked(repo, &[pr.number], &[]).await?;
        }
        Ok(())
    }

    /// Gathers what a command line's plan needs and plans it. A forge that refuses a read is
    /// the reply; one that fails is retried with the delivery.
    async fn plan_line(
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
        match self.facts_and_plan(repo, t, pr, user, cmd, prefix).await {
            Err(EngineError::Forge(e)) if e.is_permanent() => {
                Ok(Plan::reply(format!("could not do that: {e}")))
            }
            other => other,
        }
    }

    async fn facts_and_plan(
        &self,
        repo: &RepoRef,
        t: &Trunk,
        pr: Option<&PullRequest>,
        user: &User,
        cmd: &Command,
        prefix: &str,
    ) -> Result<Plan, EngineError> {
        let r = repo.to_string();
        let permission = if cmd.spec().write {
            Some(self.permission_of(repo, user).await?)
        } else {
            None
        };
        let linked = match pr {
            Some(pr) => self.task_of(repo, t, pr).await?,
            None => None,
        };
        let blocked_before = match (cmd, linked) {
            (Command::Unblock, Some(task)) => self.ledger.blocked_before(&r, &task.id).await?,
            _ => None,
        };
        let merge_pending = match (cmd, pr) {
            (Command::MergeCancel, Some(pr)) => {
                self.ledger.pending_merge(&r, pr.number).await?.is_some()
            }
            _ => false,
        };
        let head = match (cmd, pr, linked) {
            (Command::Status, Some(pr), Some(_)) => {
                let bot = self.forge.me().await?;
                let mut ci = t.policy.ci.clone();
                ci.required = self.required_contexts(repo, &t.policy).await.contexts;
                let v = decide::verdict(
                    &self.forge.ci_results(repo, &pr.head_sha).await?,
                    &ci,
                    &bot.login,
                );
                Some((v.to_string(), matches!(v, decide::CiVerdict::Green(_))))
            }
            _ => None,
        };
        let now = self.now();
        let learnings = crate::policy::path_string(&t.policy.tasks.learnings);
        let ctx = commands::Context {
            pr,
            user: &user.login,
            permission,
            linked,
            tasks: &t.tasks,
            tasks_path: &t.tasks_path,
            columns: t.table.columns(),
            learnings_path: &learnings,
            trunk: t.name(),
            prefix,
            now: &now,
            blocked_before: blocked_before.as_deref(),
            merge_pending,
            head_ci: head.as_ref().map(|(s, g)| (s.as_str(), *g)),
        };
        Ok(commands::plan(cmd, &ctx))
    }

    /// Applies a plan; every step may be repeated: ledger rows are upserts, the table changes
    /// commit nothing once they are there, learnings are not appended twice.
    async fn apply_plan(&self, repo: &RepoRef, t: &Trunk, plan: &Plan) -> Result<(), EngineError> {
        let r = repo.to_string();
        for op in &plan.ops {
            match op {
                Op::Claim { pr, task } => self.ledger.claim_pull(&r, *pr, task).await?,
                Op::Blocked { task, previous } => {
                    self.ledger.remember_blocked(&r, task, previous).await?
                }
                Op::Merge { pr, head, by } => self.ledger.request_merge(&r, *pr, head, by).await?,
                Op::CancelMerge { pr } => self.clear_merge(repo, *pr).await?,
            }
        }
        if plan.rows.is_empty() && plan.learning.is_none() {
            return Ok(());
        }
        let changes: Vec<RowChange> = plan
            .rows
            .iter()
            .map(|r| RowChange {
                id: r.task.clone(),
                cells: r.cells.clone(),
                // A person's explicit command applies whatever the row says.
                expect: Vec::new(),
            })
            .collect();
        let learnings: Vec<Learning> = plan
            .learning
            .iter()
            .map(|entry| Learning {
                path: crate::policy::path_string(&t.policy.tasks.learnings),
                entry: entry.clone(),
            })
            .collect();
        let who = Identity {
            name: t.policy.bot.name.clone(),
            email: t.policy.bot.email.clone(),
        };
        let pushed = tokio::task::block_in_place(|| {
            t.mirror.update(
                &t.tasks_path,
                &changes,
                &learnings,
                &super::skip_ci(&plan.message),
                &who,
                self.config.push_attempts,
            )
        })?;
        if let Some(commit) = &pushed {
            self.keep_view(t, commit);
        }
        Ok(())
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
        let Some((head, by)) = self
            .ledger
            .pending_merge(&repo.to_string(), pr.number)
            .await?
        else {
            return Ok(());
        };
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
            decide::CiVerdict::Green(_) => {
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
            decide::CiVerdict::Red(ctx) => {
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
            decide::CiVerdict::Pending(_) => {}
        }
        Ok(())
    }

    async fn clear_merge(&self, repo: &RepoRef, pr: u64) -> Result<(), EngineError> {
        Ok(self.ledger.clear_merge(&repo.to_string(), pr).await?)
    }

    async fn merge_say(
        &self,
        repo: &RepoRef,
        pr: u64,
        head: &str,
        by: &str,
        text: String,
    ) -> Result<(), EngineError> {
        let body = format!("@{by} {text}");
        self.say(
            repo,
            Thread::Pull(pr),
            &format!("merge-{head}"),
            &body,
            false,
        )
        .await
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
        let ids = crate::git::read::new_commits(&git, head, [t.tip]).ok()?;
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
