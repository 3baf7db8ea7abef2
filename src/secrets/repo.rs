//! The scanner a repository asks for: tuned by its policy and its baseline, read from the work
//! tree (local hooks) or from the trunk before a change (the server and the bot).

use git2::Repository;

use std::path::Path;

use super::{RuleError, Scanner, gitleaks};
use crate::config::{Mode, POLICY_FILE, RepoPolicy, Rule, SecretsPolicy};
use crate::git::read::blob_at;

/// A repository's gitleaks files, where it has them: a team moving over keeps its tuning.
#[derive(Debug, Default)]
pub struct Gitleaks {
    pub config: Option<Vec<u8>>,
    pub ignore: Option<Vec<u8>>,
}

impl Gitleaks {
    /// Read from a work tree's root.
    pub fn in_dir(root: &Path) -> Gitleaks {
        Gitleaks {
            config: std::fs::read(root.join(gitleaks::CONFIG_FILE)).ok(),
            ignore: std::fs::read(root.join(gitleaks::IGNORE_FILE)).ok(),
        }
    }

    /// Read from a commit's tree.
    pub fn in_tree(repo: &Repository, tree: Option<&git2::Tree<'_>>) -> Gitleaks {
        let read = |name: &str| tree.and_then(|t| blob_at(repo, t, Path::new(name)));
        Gitleaks {
            config: read(gitleaks::CONFIG_FILE),
            ignore: read(gitleaks::IGNORE_FILE),
        }
    }
}

/// The tuning in force: the policy's `[secrets]` with a `.gitleaks.toml`'s rules and
/// allowlists added, the places a `.gitleaksignore` accepts, and notes on what could not be
/// carried over.
#[derive(Debug)]
pub struct Tuned {
    pub secrets: SecretsPolicy,
    pub ignored: Vec<(String, usize)>,
    pub notes: Vec<String>,
}

/// Reads the gitleaks files into the policy's tuning.
pub fn tuned(secrets: &SecretsPolicy, gl: &Gitleaks) -> Result<Tuned, RuleError> {
    let mut policy = secrets.clone();
    let mut notes = Vec::new();
    if let Some(bytes) = &gl.config {
        let imported = gitleaks::import(&String::from_utf8_lossy(bytes))?;
        notes = imported.notes;
        let builtin = Scanner::builtin_rules()?;
        for r in imported.rules {
            if builtin.iter().any(|b| b.id == r.id) {
                // A copy of gitleaks' own rule: the built-in one (checksums, examples) stays.
                notes.push(format!(
                    "rule `{}`: trunkwarden's built-in rule of that id is used",
                    r.id
                ));
            } else if !policy.rule.iter().any(|own| own.id == r.id) {
                // The repository's own policy wins over what it brought from gitleaks.
                policy.rule.push(r);
            }
        }
        policy.allow.extend(imported.allow);
    }
    let places = gl
        .ignore
        .as_deref()
        .map(|b| gitleaks::ignored_places(&String::from_utf8_lossy(b)))
        .unwrap_or_default();
    Ok(Tuned {
        secrets: policy,
        ignored: places,
        notes,
    })
}

/// The scanner as the policy (and a gitleaks configuration beside it) tunes it, built only
/// when the secrets rule is on; `baseline` is the baseline file's content where the caller
/// found one.
pub fn scanner(
    policy: &RepoPolicy,
    baseline: Option<&[u8]>,
    gl: &Gitleaks,
) -> Result<Option<Scanner>, RuleError> {
    if policy.rules.get(Rule::Secrets) == Mode::Off {
        return Ok(None);
    }
    let origin = policy.secrets.baseline.display().to_string();
    let t = tuned(&policy.secrets, gl)?;
    for n in &t.notes {
        tracing::debug!("{}: {n}", gitleaks::CONFIG_FILE);
    }
    let mut scanner = Scanner::for_policy(&t.secrets, baseline.map(|b| (b, origin.as_str())))
        .map_err(|e| RuleError::Tuning(format!("{POLICY_FILE} [secrets]: {e}")))?;
    scanner.ignore_places(t.ignored);
    Ok(Some(scanner))
}

/// The scanner for a working repository: its baseline and gitleaks files are read from the
/// work tree.
pub fn local_scanner(repo: &Repository, policy: &RepoPolicy) -> Result<Option<Scanner>, RuleError> {
    let baseline = repo
        .workdir()
        .and_then(|w| std::fs::read(w.join(&policy.secrets.baseline)).ok());
    let gl = repo.workdir().map(Gitleaks::in_dir).unwrap_or_default();
    scanner(policy, baseline.as_deref(), &gl)
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
    match scanner(policy, baseline.as_deref(), &Gitleaks::in_tree(repo, tree)) {
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
