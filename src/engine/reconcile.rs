//! One pass over a repository, in short steps: which pull requests to look at → their facts →
//! the pure [`decide`](super::decide::decide) → the effects owed to the forge → one commit of
//! the task table → the sticky comments.

use std::collections::BTreeSet;

use super::decide::{self, CiVerdict, Decision, Landed};
use super::diagnosis::{CiNotes, Diagnosed};
use super::effects::Performed;
use super::facts::{landed_facts, pr_numbers, pull_named_by, reverted_on_trunk};
use super::sticky::{Sticky, sticky};
use super::trunk::Trunk;
use super::{Engine, EngineError, ReconcileReport, link};
use crate::forge::{PrState, PullRequest, RepoRef, Thread};
use crate::git::{Identity, Learning, RowChange};
use crate::tasks::Task;

/// What one pass collects for its commit and its sticky comments.
#[derive(Default)]
struct Pass {
    report: ReconcileReport,
    changes: Vec<RowChange>,
    /// Notes of waits, committed only along with a change worth a commit.
    quiet: Vec<RowChange>,
    summaries: Vec<String>,
    learnings: Vec<Learning>,
    /// Tasks that became done in this pass (their dependents may start).
    done_now: Vec<String>,
    stickies: Vec<Decided>,
}

/// One task's decision, waiting for the commit and the sticky comment.
struct Decided {
    pr: PullRequest,
    task: Task,
    cells: Vec<(String, String)>,
    head: CiVerdict,
    landed: Option<Landed>,
    /// Effects the forge refused, and why.
    blocked: Vec<String>,
    /// What the failed jobs' logs said.
    diagnoses: Vec<Diagnosed>,
}

/// A decision after its effects: what the row becomes.
struct Settled {
    cells: Vec<(String, String)>,
    summary: Option<String>,
    learning: Option<serde_json::Value>,
    blocked: Vec<String>,
    acted: bool,
    quiet: bool,
    /// Another replica holds one of the effects: it says what became of them.
    elsewhere: bool,
}

impl Engine {
    pub(super) async fn reconcile_once(
        &self,
        repo: &RepoRef,
        pulls: &[u64],
        shas: &[String],
    ) -> Result<ReconcileReport, EngineError> {
        let Some(mut t) = self.load(repo).await? else {
            return Ok(ReconcileReport::default());
        };
        let numbers = self.pulls_to_read(repo, &t, pulls, shas).await?;
        let bot = self.forge.me().await?;
        let required = self.required_contexts(repo, &t.policy).await;
        t.policy.ci.required = required.contexts.clone();
        // A pull request an event names, and every one on the resync, is read afresh.
        let resync = pulls.is_empty() && shas.is_empty();
        let prs = self
            .read_pulls(repo, &mut t, numbers, |n| resync || pulls.contains(&n))
            .await?;
        let mut pass = Pass::default();
        for pr in prs {
            let hinted = pulls.contains(&pr.number);
            self.reconcile_pull(repo, &t, &bot.login, pr, hinted, &mut pass)
                .await?;
        }
        pass.report.commit = self.commit(&t, &pass)?;
        for x in &pass.stickies {
            let body = sticky(&Sticky {
                task: &x.task,
                cells: &x.cells,
                pr: &x.pr,
                head: &x.head,
                landed: x.landed.as_ref(),
                tasks: &t.tasks,
                done_now: &pass.done_now,
                required: &required,
                blocked: &x.blocked,
                diagnoses: &x.diagnoses,
                trunk: t.name(),
            });
            self.say(repo, Thread::Pull(x.pr.number), "task", &body, false)
                .await?;
        }
        Ok(pass.report)
    }

    /// Which pull requests to look at: the hinted ones; those whose head or squash commit a
    /// hinted sha is (known from earlier passes, or named in the squash commit's message);
    /// those of tasks a revert on the trunk undid; every one a live task tracks when there is
    /// no hint (the resync) or a sha this process cannot place; and, on the resync, the open
    /// pull requests of tasks whose deliveries were all lost.
    async fn pulls_to_read(
        &self,
        repo: &RepoRef,
        t: &Trunk,
        pulls: &[u64],
        shas: &[String],
    ) -> Result<BTreeSet<u64>, EngineError> {
        let mut numbers: BTreeSet<u64> = pulls.iter().copied().collect();
        let mut unknown = Vec::new();
        if let Ok(seen) = self.shas.lock() {
            for sha in shas {
                match seen.get(&(repo.to_string(), sha.clone())) {
                    Some(n) => {
                        numbers.insert(*n);
                    }
                    None => unknown.push(sha),
                }
            }
        }
        let unknown_sha = !unknown.is_empty();
        for sha in unknown {
            if let Some(n) = tokio::task::block_in_place(|| t.mirror.message(sha))
                .as_deref()
                .and_then(pull_named_by)
            {
                numbers.insert(n);
            }
        }
        let resync = pulls.is_empty() && shas.is_empty();
        if resync || unknown_sha {
            let now = self.ledger.now_ms();
            for task in &t.tasks {
                let live = !task.is_done()
                    || shas
                        .iter()
                        .any(|s| task.notes.contains(s.get(..7).unwrap_or(s)))
                    // A context that reports late, and red, on a squash commit the bot found
                    // green may have been lost on the way: the resync looks again for a while.
                    || (resync && done_lately(task, now));
                if live {
                    numbers.extend(pr_numbers(&task.notes));
                }
            }
        }
        if pulls.is_empty() {
            let reverted = tokio::task::block_in_place(|| reverted_on_trunk(&t.mirror, t.tip));
            for task in &t.tasks {
                if reverted
                    .iter()
                    .any(|sha| task.notes.contains(sha.get(..7).unwrap_or(sha)))
                {
                    numbers.extend(pr_numbers(&task.notes));
                }
            }
        }
        if resync {
            for pr in self.forge.open_pulls(repo).await? {
                if self
                    .task_of(repo, t, &pr)
                    .await?
                    .is_some_and(|x| !x.is_done())
                {
                    numbers.insert(pr.number);
                }
            }
        }
        Ok(numbers)
    }

    /// The task a pull request works on: the one it was claimed for, else the one it names.
    pub(super) async fn task_of<'a>(
        &self,
        repo: &RepoRef,
        t: &'a Trunk,
        pr: &PullRequest,
    ) -> Result<Option<&'a Task>, EngineError> {
        Ok(
            match self.ledger.claimed(&repo.to_string(), pr.number).await? {
                Some(id) => t.tasks.iter().find(|x| x.id == id && !id.is_empty()),
                None => link::task_for_pull(&t.tasks, pr),
            },
        )
    }

    /// Reads the pull requests — before the trunk's commits are trusted: a merge that lands
    /// while this pass runs is then either not seen at all, or seen with its commit fetched.
    /// A merged one is read once, then kept: merged is final.
    async fn read_pulls(
        &self,
        repo: &RepoRef,
        t: &mut Trunk,
        numbers: BTreeSet<u64>,
        fresh: impl Fn(u64) -> bool,
    ) -> Result<Vec<PullRequest>, EngineError> {
        let mut prs = Vec::new();
        for n in numbers {
            let key = (repo.to_string(), n);
            let known = self.merged.lock().ok().and_then(|m| m.get(&key).cloned());
            if let Some(pr) = known.filter(|_| !fresh(n)) {
                prs.push(pr);
                continue;
            }
            match self.forge.pull_request(repo, n).await {
                Ok(pr) => {
                    // Merged is final: the pull request is not read again but by the resync.
                    if pr.state == PrState::Merged
                        && pr.merge_commit_sha.is_some()
                        && let Ok(mut m) = self.merged.lock()
                    {
                        m.insert(key, pr.clone());
                    }
                    prs.push(pr);
                }
                Err(e) if e.status() == Some(404) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let unfetched = prs.iter().any(|p| {
            p.state == PrState::Merged
                && p.merge_commit_sha
                    .as_ref()
                    .is_some_and(|sha| !t.mirror.has_commit(sha))
        });
        if unfetched {
            t.tip = tokio::task::block_in_place(|| t.mirror.fetch())?;
        }
        Ok(prs)
    }

    /// One pull request: the bot's work on an open one, then its task's facts, decision and
    /// effects, collected into the pass.
    async fn reconcile_pull(
        &self,
        repo: &RepoRef,
        t: &Trunk,
        bot: &str,
        pr: PullRequest,
        hinted: bool,
        pass: &mut Pass,
    ) -> Result<(), EngineError> {
        let n = pr.number;
        if let Ok(mut seen) = self.shas.lock() {
            for sha in std::iter::once(&pr.head_sha).chain(pr.merge_commit_sha.as_ref()) {
                seen.insert((repo.to_string(), sha.clone()), n);
            }
        }
        let task = self.task_of(repo, t, &pr).await?;
        if pr.state == PrState::Open {
            self.pending_merge(repo, t, &pr, bot).await?;
            self.post_checks(repo, t, &pr, task.map(|x| x.id.as_str()))
                .await?;
        }
        let Some(task) = task else {
            return Ok(());
        };
        pass.report.pulls.push(n);
        // CI on the head matters only while the pull request is open.
        let mut ci = CiNotes::default();
        let head = if pr.state == PrState::Open {
            let results = self.forge.ci_results(repo, &pr.head_sha).await?;
            let head = decide::verdict(&results, &t.policy.ci, bot);
            self.read_ci(repo, &pr.head_sha, &results, &head, &mut ci)
                .await?;
            head
        } else {
            CiVerdict::Pending(Vec::new())
        };
        let (landed, message) = self.landed(repo, t, bot, &pr, &mut ci).await?;
        let gave_up = self
            .failures(repo, &pr, &head, t.policy.ci.fail_after)
            .await?;
        let issues = self
            .issue_facts(repo, task, &pr, &message, landed.as_ref())
            .await?;
        let used = decide::used_trailer(&message).or_else(|| decide::used_trailer(&pr.body));
        let now = self.now();
        let d = decide::decide(&decide::Facts {
            task,
            pr: &pr,
            trunk: t.name(),
            head: &head,
            landed: landed.as_ref(),
            issues: &issues,
            gave_up,
            used,
            diagnosis: ci.red.first().map(|d| d.summary.as_str()),
            now: &now,
        });
        tracing::debug!(
            task = %task.id, pr = n, state = ?pr.state,
            landed = ?landed.as_ref().map(|l| (&l.sha, &l.ci)),
            issues = ?issues.iter().map(|i| (i.number, i.open, i.closes)).collect::<Vec<_>>(),
            cells = ?d.cells, effects = ?d.effects.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "decided"
        );
        let s = self.settle(repo, t, task, &pr, d, pass).await?;
        if s.summary.is_some() && s.cells.iter().any(|(c, v)| c == "status" && v == "done") {
            pass.done_now.push(task.id.clone());
        }
        for (sha, d) in &ci.flaky {
            pass.summaries.push(format!(
                "{} — {} flaky on {}",
                task.id,
                d.context,
                decide::short(sha)
            ));
            pass.learnings.push(Learning {
                path: crate::policy::path_string(&t.policy.tasks.learnings),
                entry: serde_json::json!({
                    "task": task.id,
                    "flaky": d.context,
                    "sha": sha,
                    "pr": n,
                    "class": d.class,
                    "diagnosis": d.summary,
                    "when": now,
                }),
            });
        }
        if !s.cells.is_empty() {
            pass.summaries.extend(s.summary);
            if let Some(entry) = s.learning {
                pass.learnings.push(Learning {
                    path: crate::policy::path_string(&t.policy.tasks.learnings),
                    entry,
                });
            }
            let change = RowChange {
                id: task.id.clone(),
                cells: s.cells.clone(),
                expect: t.row_cells(task),
            };
            if s.quiet {
                pass.quiet.push(change);
            } else {
                pass.changes.push(change);
            }
        }
        // The sticky comment is refreshed where something changed or an event pointed — not
        // while another replica holds an effect (a reopen it has not made yet would make the
        // comment's "waiting for CI" untrue): that replica refreshes it.
        if (!s.cells.is_empty() || s.acted || !s.blocked.is_empty() || hinted) && !s.elsewhere {
            pass.stickies.push(Decided {
                pr,
                task: task.clone(),
                cells: s.cells,
                head,
                landed,
                blocked: s.blocked,
                diagnoses: ci.red,
            });
        }
        Ok(())
    }

    /// The squash commit of a merged pull request, if it is on the trunk: its parents, a
    /// revert, CI on it (timed out where `[ci] timeout-mins` says); and its message.
    async fn landed(
        &self,
        repo: &RepoRef,
        t: &Trunk,
        bot: &str,
        pr: &PullRequest,
        notes: &mut CiNotes,
    ) -> Result<(Option<Landed>, String), EngineError> {
        let (PrState::Merged, Some(sha)) = (&pr.state, &pr.merge_commit_sha) else {
            return Ok((None, String::new()));
        };
        if pr.base_ref != t.name() {
            return Ok((None, String::new()));
        }
        let Some(f) = tokio::task::block_in_place(|| landed_facts(&t.mirror, t.tip, sha)) else {
            return Ok((None, String::new()));
        };
        if let Ok(mut seen) = self.on_trunk.lock() {
            seen.insert((repo.to_string(), sha.clone()));
        }
        let results = self.forge.ci_results(repo, sha).await?;
        let ci = decide::verdict(&results, &t.policy.ci, bot);
        let mut l = Landed {
            sha: sha.clone(),
            parents: f.parents,
            reverted_by: f.reverted_by,
            ci,
        };
        self.time_out(repo, &mut l, t.policy.ci.timeout_mins)
            .await?;
        self.read_ci(repo, sha, &results, &l.ci, notes).await?;
        self.note_landed(repo, &l);
        Ok((Some(l), f.message))
    }

    /// Performs a decision's effects; a row that may change only once they are done (a task is
    /// done only once its issues are closed) says why it did not, instead.
    async fn settle(
        &self,
        repo: &RepoRef,
        t: &Trunk,
        task: &Task,
        pr: &PullRequest,
        d: Decision,
        pass: &mut Pass,
    ) -> Result<Settled, EngineError> {
        let mut blocked = Vec::new();
        let mut elsewhere = false;
        for (key, effect) in &d.effects {
            match self.perform(repo, pr.number, key, effect).await? {
                Performed::Now => pass.report.effects.push(format!("{repo}:{key}")),
                Performed::Before => {}
                Performed::Elsewhere => elsewhere = true,
                Performed::NotYet(why) => blocked.push(why),
            }
        }
        let mut s = Settled {
            cells: d.cells,
            summary: d.summary,
            learning: d.learning,
            blocked,
            acted: !d.effects.is_empty(),
            quiet: d.quiet,
            elsewhere,
        };
        if d.gated && elsewhere {
            // The replica performing the effects writes the row.
            s.cells.clear();
        } else if d.gated && !s.blocked.is_empty() {
            let note = format!(
                "PR #{}: CI green on the trunk, but not done: {}",
                pr.number,
                s.blocked.join("; ")
            );
            s.cells = if task.notes == note {
                Vec::new()
            } else {
                vec![("notes".into(), note)]
            };
            s.summary = None;
            s.learning = None;
        }
        s.cells.retain(|(c, _)| t.has_column(c));
        Ok(s)
    }

    /// One commit for every row the pass changed; none when nothing did.
    fn commit(&self, t: &Trunk, pass: &Pass) -> Result<Option<String>, EngineError> {
        if pass.changes.is_empty() && pass.learnings.is_empty() {
            return Ok(None);
        }
        let changes: Vec<RowChange> = pass.changes.iter().chain(&pass.quiet).cloned().collect();
        let message = if pass.summaries.is_empty() {
            "chore(tasks): update task rows".to_owned()
        } else {
            format!("chore(tasks): {}", pass.summaries.join("; "))
        };
        let message = super::skip_ci(&message);
        let who = Identity {
            name: t.policy.bot.name.clone(),
            email: t.policy.bot.email.clone(),
        };
        let attempts = self.config.push_attempts;
        let pushed = tokio::task::block_in_place(|| {
            t.mirror.update(
                &t.tasks_path,
                &changes,
                &pass.learnings,
                &message,
                &who,
                attempts,
            )
        })?;
        if let Some(commit) = &pushed {
            self.keep_view(t, commit);
        }
        Ok(pushed)
    }
}

/// How long after a task became done the resync still reads CI on its squash commit.
const RECHECK_DONE_MS: i64 = 24 * 3600 * 1000;

/// Whether a done task finished recently enough for a late red context to undo it.
fn done_lately(task: &Task, now_ms: i64) -> bool {
    task.is_done()
        && task
            .completed_at
            .is_some_and(|at| now_ms - at.timestamp_millis() < RECHECK_DONE_MS)
}
