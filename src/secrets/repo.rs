//! The scanner a repository asks for: tuned by its policy and its baseline, read from the work
//! tree (local hooks) or from the trunk before a change (the server and the bot).

use git2::Repository;

use super::{RuleError, Scanner};
use crate::config::{Mode, POLICY_FILE, RepoPolicy, Rule};
use crate::git::read::blob_at;

/// The scanner as the policy tunes it, built only when the secrets rule is on; `baseline` is
/// the baseline file's content where the caller found one.
pub fn scanner(policy: &RepoPolicy, baseline: Option<&[u8]>) -> Result<Option<Scanner>, RuleError> {
    if policy.rules.get(Rule::Secrets) == Mode::Off {
        return Ok(None);
    }
    let origin = policy.secrets.baseline.display().to_string();
    Scanner::for_policy(&policy.secrets, baseline.map(|b| (b, origin.as_str())))
        .map(Some)
        .map_err(|e| RuleError::Tuning(format!("{POLICY_FILE} [secrets]: {e}")))
}

/// The scanner for a working repository: its baseline is read from the work tree.
pub fn local_scanner(repo: &Repository, policy: &RepoPolicy) -> Result<Option<Scanner>, RuleError> {
    let baseline = repo
        .workdir()
        .and_then(|w| std::fs::read(w.join(&policy.secrets.baseline)).ok());
    scanner(policy, baseline.as_deref())
}

/// The scanner on the server side, where the policy and the baseline come from `tree` (the trunk
/// before the change). Tuning that does not build falls back to every built-in rule with nothing
/// allowed, and the note says why: a broken allowlist must not let secrets through.
pub fn scanner_at(
    repo: &Repository,
    tree: Option<&git2::Tree<'_>>,
    policy: &RepoPolicy,
) -> Result<(Option<Scanner>, Option<String>), RuleError> {
    let baseline = tree.and_then(|t| blob_at(repo, t, &policy.secrets.baseline));
    match scanner(policy, baseline.as_deref()) {
        Ok(s) => Ok((s, None)),
        Err(e) => {
            let builtin = Scanner::builtin()?;
            Ok((
                Some(builtin),
                Some(format!(
                    "{e}; scanning with every built-in rule and no allowlist"
                )),
            ))
        }
    }
}
