//! A repository's tuning of the scanner: `[secrets]` in `.trunkwarden.toml` (custom rules, rules
//! turned off, allowlists) and the baseline file of findings accepted on purpose.

use std::collections::HashSet;

use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::bytes::Regex;
use serde::{Deserialize, Serialize};

use super::{Finding, RuleError};

pub use crate::config::{Allow, DEFAULT_BASELINE, SecretsPolicy};

/// An allowlist entry ready to match.
#[derive(Debug)]
pub(super) struct CompiledAllow {
    /// Rule ids; empty means every rule.
    rules: HashSet<String>,
    paths: GlobSet,
    path_regexes: Vec<regex::Regex>,
    regexes: Vec<Regex>,
    stopwords: Vec<String>,
}

impl CompiledAllow {
    /// Compiles entry `i`; `known` are the rule ids in force, so a typo is an error.
    pub(super) fn new(i: usize, a: &Allow, known: &HashSet<&str>) -> Result<Self, RuleError> {
        let bad = |what: String| RuleError::Tuning(format!("secrets.allow[{i}]: {what}"));
        if a.paths.is_empty()
            && a.path_regexes.is_empty()
            && a.regexes.is_empty()
            && a.stopwords.is_empty()
        {
            return Err(bad(
                "needs at least one of paths, path_regexes, regexes or stopwords".into(),
            ));
        }
        for r in &a.rules {
            if !known.contains(r.as_str()) {
                return Err(bad(format!("rules: no rule `{r}`")));
            }
        }
        let mut globs = GlobSetBuilder::new();
        for p in &a.paths {
            let g = Glob::new(p.trim_start_matches("./"))
                .map_err(|e| bad(format!("paths `{p}`: {e}")))?;
            globs.add(g);
        }
        let paths = globs.build().map_err(|e| bad(format!("paths: {e}")))?;
        let regexes = a
            .regexes
            .iter()
            .map(|r| Regex::new(r).map_err(|e| bad(format!("regexes `{r}`: {}", last_line(&e)))))
            .collect::<Result<_, _>>()?;
        let path_regexes = a
            .path_regexes
            .iter()
            .map(|r| {
                regex::Regex::new(r)
                    .map_err(|e| bad(format!("path_regexes `{r}`: {}", last_line(&e))))
            })
            .collect::<Result<_, _>>()?;
        Ok(CompiledAllow {
            rules: a.rules.iter().cloned().collect(),
            paths,
            path_regexes,
            regexes,
            stopwords: a.stopwords.iter().map(|s| s.to_lowercase()).collect(),
        })
    }

    /// Whether the entry covers every rule in this path, so the file need not be read.
    pub(super) fn covers_path(&self, path: &str) -> bool {
        self.rules.is_empty() && self.path_matches(path)
    }

    fn path_matches(&self, path: &str) -> bool {
        let p = normal_path(path);
        self.paths.is_match(p) || self.path_regexes.iter().any(|r| r.is_match(p))
    }

    /// Whether the entry allows this secret, found by `rule` in `path`.
    pub(super) fn allows(&self, rule: &str, path: &str, secret: &[u8]) -> bool {
        if !self.rules.is_empty() && !self.rules.contains(rule) {
            return false;
        }
        if self.path_matches(path) || self.regexes.iter().any(|r| r.is_match(secret)) {
            return true;
        }
        if self.stopwords.is_empty() {
            return false;
        }
        let lower = String::from_utf8_lossy(secret).to_lowercase();
        self.stopwords.iter().any(|w| lower.contains(w.as_str()))
    }
}

/// The last line of a multi-line error (a regex error's own message follows a caret drawing).
fn last_line(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    text.lines().last().unwrap_or_default().trim().to_owned()
}

/// A path as the allowlists and fingerprints see it: no leading `./`.
pub fn normal_path(path: &str) -> &str {
    let mut p = path;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p
}

/// The baseline file: findings a team looked at and accepted, by fingerprint.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    #[serde(default)]
    pub note: String,
    pub findings: Vec<Accepted>,
}

/// One accepted finding; everything but the fingerprint is there for people reading the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    pub fingerprint: String,
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub line: usize,
    #[serde(default)]
    pub masked: String,
}

impl Baseline {
    /// Parses a baseline; `origin` names the file in the error.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Baseline, RuleError> {
        serde_json::from_slice(bytes).map_err(|e| {
            RuleError::Tuning(format!(
                "{origin}: not a baseline file (line {}, column {}): {e}",
                e.line(),
                e.column()
            ))
        })
    }

    /// The baseline that accepts exactly these findings.
    pub fn of(findings: &[Finding]) -> Baseline {
        let mut findings: Vec<Accepted> = findings
            .iter()
            .map(|f| Accepted {
                fingerprint: f.fingerprint.clone(),
                rule: f.rule.clone(),
                path: f.path.clone(),
                line: f.line,
                masked: f.masked.clone(),
            })
            .collect();
        findings.sort_by(|a, b| (&a.path, a.line, &a.rule).cmp(&(&b.path, b.line, &b.rule)));
        findings.dedup_by(|a, b| a.fingerprint == b.fingerprint);
        Baseline {
            note: "Findings accepted on purpose, by fingerprint (path, rule, secret). Regenerate with `trunkwarden scan --update-baseline`.".into(),
            findings,
        }
    }

    /// The file's text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// The accepted fingerprints.
    pub fn fingerprints(&self) -> HashSet<String> {
        self.findings
            .iter()
            .map(|a| a.fingerprint.clone())
            .collect()
    }
}
