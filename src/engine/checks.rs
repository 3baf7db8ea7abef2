//! The bot's own checks on a pull request's head, posted as commit statuses so branch
//! protection can require them: `trunkwarden/policy` (message convention, task-table single
//! writer) and `trunkwarden/secrets` (secrets in the lines the pull request adds).

use git2::{Oid, Repository};

use super::ledger::Claim;
use super::trunk::Trunk;
use super::{Engine, EngineError};
use crate::config::RepoPolicy;
use crate::forge::{PullRequest, RepoRef};
use crate::policy::{self, Change, Pusher, RefUpdate, Rule, Verdict, message};

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub context: &'static str,
    pub passed: bool,
    /// At most 140 characters (GitHub's limit); secrets only masked.
    pub description: String,
    /// Each finding at its file and line, for a check run's annotations.
    pub annotations: Vec<crate::forge::Annotation>,
}

/// The findings of a verdict that have a place, refused ones as failures.
fn annotations(v: &Verdict) -> Vec<crate::forge::Annotation> {
    let placed = |x: &crate::policy::Violation, failure: bool| {
        let path = String::from_utf8_lossy(x.path.as_deref()?).into_owned();
        Some(crate::forge::Annotation {
            path,
            line: x.line.unwrap_or(1),
            failure,
            message: x.message.clone(),
            title: x.rule.name().to_owned(),
        })
    };
    v.refused
        .iter()
        .filter_map(|x| placed(x, true))
        .chain(v.warned.iter().filter_map(|x| placed(x, false)))
        .collect()
}

fn describe(v: &Verdict, clean: &str) -> (bool, String) {
    let first = v.refused.first().or(v.warned.first());
    let text = match first {
        None => clean.to_owned(),
        Some(x) => {
            let at = match (&x.path, x.line) {
                (Some(p), Some(l)) => format!("{}:{l} ", String::from_utf8_lossy(p)),
                (Some(p), None) => format!("{} ", String::from_utf8_lossy(p)),
                _ => String::new(),
            };
            let more = v.refused.len() + v.warned.len() - 1;
            let more = if more > 0 {
                format!(" (+{more} more)")
            } else {
                String::new()
            };
            let warn = if v.refused.is_empty() {
                "warning: "
            } else {
                ""
            };
            format!("{warn}{at}{}{more}", x.message)
        }
    };
    (v.refused.is_empty(), text.chars().take(140).collect())
}

/// What the checks know of the pull request besides its commits.
#[derive(Debug, Clone, Copy)]
pub struct PullFacts<'a> {
    pub branch: &'a str,
    pub author: &'a str,
    /// The task it is linked to, if any.
    pub task: Option<&'a str>,
    /// Title and description.
    pub text: &'a str,
    /// Whose closing keywords to look for.
    pub forge: crate::forge::ForgeKind,
}

/// Runs both checks over the commits `head` adds to `base`.
pub fn run(
    repo: &Repository,
    policy: &RepoPolicy,
    base: Oid,
    head: Oid,
    pr: &PullFacts<'_>,
) -> Result<Vec<Check>, String> {
    let ids = crate::git::read::new_commits(repo, head, [base]).map_err(|e| e.to_string())?;
    let base_tree = repo.find_commit(base).and_then(|c| c.tree()).ok();
    let (scanner, note) = crate::secrets::repo::scanner_at(repo, base_tree.as_ref(), policy)
        .map_err(|e| e.to_string())?;
    if let Some(note) = note {
        tracing::warn!("{note}");
    }
    let mut blobs = scanner
        .as_ref()
        .map(|s| crate::secrets::BlobScanner::new(repo, s));
    let mut scanned = std::collections::HashSet::new();
    let mut secret_findings = Vec::new();
    let facts = crate::policy::commits::judge_commits(
        repo,
        ids.clone(),
        blobs.as_mut(),
        &mut scanned,
        &mut secret_findings,
    )
    .map_err(|e| e.to_string())?;
    let mut rules = policy::check_ref_update(
        policy,
        &RefUpdate {
            refname: format!("refs/heads/{}", pr.branch),
            change: Change::Update { fast_forward: true },
            commits: facts,
        },
        &Pusher::Server {
            login: Some(pr.author.to_owned()),
            forge_merge: false,
        },
    );
    let mut named = Vec::new();
    if pr.task.is_some() {
        let closing = |text: &str| -> Vec<u64> {
            crate::engine::link::mentions(text, pr.forge)
                .into_iter()
                .filter(|m| m.forge_closes)
                .map(|m| m.issue)
                .collect()
        };
        named.extend(
            closing(pr.text)
                .into_iter()
                .map(|i| (policy::Naming::Description, i)),
        );
        for id in &ids {
            if let Ok(c) = repo.find_commit(*id) {
                let text = String::from_utf8_lossy(c.message_bytes());
                named.extend(
                    closing(&text)
                        .into_iter()
                        .map(|i| (policy::Naming::Commit(id.to_string()), i)),
                );
            }
        }
    }
    rules.extend(policy::closing_keywords(pr.forge.name(), &named));
    if policy.rules.get(Rule::Message) != crate::config::Mode::Off {
        for id in &ids {
            let Ok(c) = repo.find_commit(*id) else {
                continue;
            };
            let text = message::stored(c.message_bytes(), "#", message::Cleanup::Verbatim);
            if let Some(mut v) = message::check(&text, &policy.message.types, pr.task) {
                v.commit = Some(id.to_string());
                rules.push(v);
            }
        }
    }
    let rules = Verdict::judge(policy, rules);
    let secrets = Verdict::judge(policy, secret_findings);
    let (ok, text) = describe(&rules, "trunk rules hold");
    let (clean, found) = describe(&secrets, "no secrets in the added lines");
    Ok(vec![
        Check {
            context: "trunkwarden/policy",
            passed: ok,
            description: text,
            annotations: annotations(&rules),
        },
        Check {
            context: "trunkwarden/secrets",
            passed: clean,
            description: found,
            annotations: annotations(&secrets),
        },
    ])
}

impl Engine {
    /// Posts `trunkwarden/policy` and `trunkwarden/secrets` on a pull request's head, once
    /// per head commit and pull request text (the text may name issues the forge would close
    /// at merge).
    pub(super) async fn post_checks(
        &self,
        repo: &RepoRef,
        t: &Trunk,
        pr: &PullRequest,
        task: Option<&str>,
    ) -> Result<(), EngineError> {
        let key = checks_key(repo, pr);
        if !matches!(self.ledger.claim(&key).await?, Claim::Mine { .. }) {
            return Ok(());
        }
        let kind = self.forge.kind();
        let checks = tokio::task::block_in_place(|| -> Result<Vec<Check>, EngineError> {
            let head = t.mirror.fetch_ref(
                &format!("refs/heads/{}", pr.head_ref),
                &format!("pr/{}", pr.number),
            )?;
            let git = t.mirror.repository()?;
            run(
                &git,
                &t.policy,
                t.tip,
                head,
                &PullFacts {
                    branch: &pr.head_ref,
                    author: &pr.author.login,
                    task,
                    text: &format!("{}\n\n{}", pr.title, pr.body),
                    forge: kind,
                },
            )
            .map_err(EngineError::Other)
        });
        let checks = match checks {
            Ok(c) => c,
            Err(e) => {
                self.ledger.release(&key).await?;
                return Err(e);
            }
        };
        for c in checks {
            // A GitHub App reports check runs, with each finding at its line.
            let run = crate::forge::CheckRun {
                name: c.context,
                passed: c.passed,
                summary: &c.description,
                annotations: &c.annotations,
            };
            match self.forge.set_check_run(repo, &pr.head_sha, &run).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    self.ledger.release(&key).await?;
                    return Err(e.into());
                }
            }
            let status = crate::forge::StatusSpec {
                context: c.context.to_owned(),
                state: if c.passed {
                    crate::forge::CiState::Success
                } else {
                    crate::forge::CiState::Failure
                },
                description: c.description,
                target_url: None,
            };
            if let Err(e) = self.forge.set_status(repo, &pr.head_sha, &status).await {
                self.ledger.release(&key).await?;
                return Err(e.into());
            }
        }
        self.ledger.done(&key).await?;
        Ok(())
    }
}

/// The once-only key of the bot's checks on a pull request: its head and its text.
pub(super) fn checks_key(repo: &RepoRef, pr: &PullRequest) -> String {
    use sha2::Digest;
    let text = sha2::Sha256::digest(format!("{}\n{}", pr.title, pr.body).as_bytes());
    format!("{repo}:checks:{}:{}", pr.head_sha, &hex::encode(text)[..16])
}
