//! What broke, read from a failed CI job's log: each red context of a commit is diagnosed once
//! (its log read once, whatever the passes and replicas), recorded in the ledger, and said in
//! the task's notes and the sticky comment. A context that failed and then passed on the same
//! commit is flaky, and goes to the learnings once.

use serde::{Deserialize, Serialize};

use super::decide::CiVerdict;
use super::{Engine, EngineError};
use crate::diagnose::{Class, Diagnoser};
use crate::forge::{CiResult, CiState, JobLog, RepoRef};

/// What one failed context's log says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Diagnosed {
    pub context: String,
    pub class: Class,
    /// One line for the task's notes: `CI red (test): 2 failing — a, b`.
    pub summary: String,
    /// The failing tests and first errors (or the last lines), secrets masked.
    pub excerpt: Vec<String>,
    /// Where people read the whole log.
    pub url: Option<String>,
    /// Bytes read from the log's end, and the log's length.
    pub read: u64,
    pub total: u64,
}

/// A diagnosis and the commit it was made on, as the pass collects them.
#[derive(Debug, Default)]
pub(super) struct CiNotes {
    /// Red contexts' diagnoses, per commit looked at.
    pub red: Vec<Diagnosed>,
    /// Contexts that failed on a commit and then passed on it: `(sha, what it said)`.
    pub flaky: Vec<(String, Diagnosed)>,
}

/// Red contexts diagnosed per commit, at most: the rest are named in the verdict.
const MAX_CONTEXTS: usize = 3;

impl Engine {
    /// Diagnoses the red contexts of `sha` (reading each log once, ever) and notes contexts
    /// that failed before and pass now.
    pub(super) async fn read_ci(
        &self,
        repo: &RepoRef,
        sha: &str,
        results: &[CiResult],
        verdict: &CiVerdict,
        notes: &mut CiNotes,
    ) -> Result<(), EngineError> {
        let name = repo.to_string();
        let known = self.ledger.diagnoses(&name, sha).await?;
        let red: &[String] = match verdict {
            CiVerdict::Red(c) => c,
            _ => &[],
        };
        for context in red.iter().take(MAX_CONTEXTS) {
            let recorded = known.iter().find(|(c, _, _)| c == context);
            let detail = match recorded {
                Some((_, detail, _)) => detail.clone(),
                None => {
                    let Some(ci) = results.iter().find(|r| &r.context == context) else {
                        continue;
                    };
                    let detail = match self.diagnose_log(repo, sha, ci).await {
                        Some(d) => serde_json::to_string(&d).unwrap_or_default(),
                        None => String::new(),
                    };
                    self.ledger
                        .record_diagnosis(&name, sha, context, &detail)
                        .await?;
                    detail
                }
            };
            notes
                .red
                .extend(serde_json::from_str::<Diagnosed>(&detail).ok());
        }
        notes.red.sort_by_key(|d| d.class);
        for (context, detail, flaky) in &known {
            let passes = results
                .iter()
                .any(|r| &r.context == context && r.state == CiState::Success);
            if *flaky || !passes || detail.is_empty() {
                continue;
            }
            if self.ledger.note_flaky(&name, sha, context).await?
                && let Ok(d) = serde_json::from_str::<Diagnosed>(detail)
            {
                notes.flaky.push((sha.to_owned(), d));
            }
        }
        Ok(())
    }

    /// Reads and diagnoses one failed context's log; `None` when there is no log to read or
    /// it could not be read (that is said in the bot's log, the reconcile goes on).
    async fn diagnose_log(&self, repo: &RepoRef, sha: &str, ci: &CiResult) -> Option<Diagnosed> {
        let read = match &self.config.woodpecker {
            Some(w) if w.links(ci) => w.job_log(ci).await,
            _ => self.forge.job_log(repo, sha, ci).await,
        };
        let log: JobLog = match read {
            Ok(Some(log)) => log,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(%repo, sha, context = %ci.context, error = %e, "cannot read the failed job's log");
                return None;
            }
        };
        // Nothing is kept from a log that could not be masked.
        let scanner = self.scanner()?;
        let d = tokio::task::block_in_place(|| {
            let mut r = Diagnoser::new(Some(scanner));
            r.feed(&log.tail);
            r.finish()
        });
        Some(Diagnosed {
            context: ci.context.clone(),
            class: d.class,
            summary: d.summary(),
            excerpt: d.excerpt(),
            url: ci.target_url.clone(),
            read: log.tail.len() as u64,
            total: log.total,
        })
    }

    /// The secret rules logs are masked with, compiled on first use.
    fn scanner(&self) -> Option<&crate::secrets::Scanner> {
        self.scanner
            .get_or_init(|| match crate::secrets::Scanner::builtin() {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "the secret rules do not compile; logs are not read");
                    None
                }
            })
            .as_ref()
    }
}
