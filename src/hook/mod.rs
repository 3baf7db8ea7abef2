//! Hook entry points: gather the input (index, stdin, environment, git objects), ask `policy`,
//! report. Local hooks give fast feedback and can be skipped; `pre-receive` is the authority.

pub mod install;
pub(crate) mod local;
pub mod managers;
mod server;
mod steps;

use std::io::BufRead;
use std::path::Path;

use git2::Repository;

use crate::config::{ConfigError, Mode, RepoPolicy};
use crate::policy::{Rule, Verdict, Violation};

pub use local::{commit_msg, pre_commit, pre_push};
pub use server::{Host, pre_receive};

/// Why a hook could not judge; a hook that cannot judge refuses.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{context}: {source}")]
    Git {
        context: String,
        #[source]
        source: git2::Error,
    },
    #[error("{what}, line {line}: {message}")]
    Input {
        what: &'static str,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Other(String),
}

impl From<String> for HookError {
    fn from(message: String) -> HookError {
        HookError::Other(message)
    }
}

impl From<crate::secrets::RuleError> for HookError {
    fn from(e: crate::secrets::RuleError) -> HookError {
        HookError::Other(e.to_string())
    }
}

/// Adds what was being done to a git error.
trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, HookError>;
}

impl<T> Context<T> for Result<T, git2::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, HookError> {
        self.map_err(|source| HookError::Git {
            context: what(),
            source,
        })
    }
}

/// What a hook found, ready to print.
#[derive(Debug, Default)]
pub struct Report {
    pub verdict: Verdict,
    /// Rules skipped through `TRUNKWARDEN_SKIP`.
    pub skipped: Vec<Rule>,
    /// Names in `TRUNKWARDEN_SKIP` that are no rule.
    pub unknown_skips: Vec<String>,
    /// Non-fatal remarks (a policy file that did not parse, …).
    pub notes: Vec<String>,
}

impl Report {
    fn new(policy: &RepoPolicy, violations: Vec<Violation>) -> Report {
        Report {
            verdict: Verdict::judge(policy, violations),
            ..Report::default()
        }
    }

    /// Whether the hook must refuse.
    pub fn refused(&self) -> bool {
        !self.verdict.refused.is_empty()
    }

    /// The report as stderr lines; `prefix` starts every line (GitLab shows only lines that
    /// start with `GL-HOOK-ERR: ` to the pusher).
    pub fn render(&self, prefix: &str) -> String {
        let mut out = String::new();
        let mut line = |s: &str| {
            out.push_str(prefix);
            out.push_str(s);
            out.push('\n');
        };
        for n in &self.notes {
            line(&format!("trunkwarden: note: {n}"));
        }
        if !self.unknown_skips.is_empty() {
            let names: Vec<_> = Rule::ALL.iter().map(|r| r.name()).collect();
            line(&format!(
                "trunkwarden: TRUNKWARDEN_SKIP names no rule `{}`; rules are {} (or `all`)",
                self.unknown_skips.join("`, `"),
                names.join(", ")
            ));
        }
        if !self.skipped.is_empty() {
            let names: Vec<_> = self.skipped.iter().map(|r| r.name()).collect();
            line(&format!(
                "trunkwarden: !!! TRUNKWARDEN_SKIP is set: NOT checking {} !!!",
                names.join(", ")
            ));
            line(
                "trunkwarden: !!! the server and CI still check; say in the pull request why you skipped !!!",
            );
        }
        for (label, list) in [
            ("refused", &self.verdict.refused),
            ("warning", &self.verdict.warned),
        ] {
            let mut last_fix: Option<&str> = None;
            for v in list.iter() {
                line(&format!("trunkwarden: {label}: {}", describe(v)));
                if last_fix != Some(&v.fix) {
                    line(&format!("    fix: {}", v.fix));
                    last_fix = Some(&v.fix);
                }
            }
        }
        if self.refused() {
            let n = self.verdict.refused.len();
            line(&format!(
                "trunkwarden: {n} problem{} — refused",
                if n == 1 { "" } else { "s" }
            ));
        }
        out
    }
}

/// `[rule] path:line (commit 1a2b3c4d5e): message`, with the path quoted as git quotes it.
fn describe(v: &Violation) -> String {
    let mut s = format!("[{}]", v.rule.name());
    if let Some(p) = &v.path {
        s.push(' ');
        s.push_str(&quote_path(p));
        if let Some(l) = v.line {
            s.push_str(&format!(":{l}"));
        }
    }
    if let Some(c) = &v.commit {
        s.push_str(&format!(" (commit {})", &c[..c.len().min(10)]));
    }
    s.push_str(if v.path.is_some() || v.commit.is_some() {
        ": "
    } else {
        " "
    });
    s.push_str(&v.message);
    s
}

/// Quotes a path the way git does with `core.quotePath` on: control characters, `"`, `\` and
/// bytes outside ASCII as C escapes, the whole in double quotes; plain paths as they are.
pub fn quote_path(path: &[u8]) -> String {
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
    if path.iter().all(|&b| plain(b)) {
        return String::from_utf8_lossy(path).into_owned();
    }
    let mut s = String::from("\"");
    for &b in path {
        match b {
            0x07 => s.push_str("\\a"),
            0x08 => s.push_str("\\b"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            0x0b => s.push_str("\\v"),
            0x0c => s.push_str("\\f"),
            b'\r' => s.push_str("\\r"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b if plain(b) => s.push(b as char),
            b => s.push_str(&format!("\\{b:03o}")),
        }
    }
    s.push('"');
    s
}

/// Applies the local escape hatch `TRUNKWARDEN_SKIP=rule[,rule…]|all` to a policy; returns
/// the rules skipped and the names that are no rule. Server-side hooks never call this.
fn apply_skip(policy: &mut RepoPolicy, value: Option<&str>) -> (Vec<Rule>, Vec<String>) {
    let (mut skipped, mut unknown) = (Vec::new(), Vec::new());
    for name in value
        .unwrap_or("")
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let rules: Vec<Rule> = match name {
            "all" => Rule::ALL.to_vec(),
            n => match Rule::from_name(n) {
                Some(r) => vec![r],
                None => {
                    unknown.push(n.to_owned());
                    continue;
                }
            },
        };
        for r in rules {
            if policy.rules.get(r) != Mode::Off && !skipped.contains(&r) {
                skipped.push(r);
            }
            policy.rules.set(r, Mode::Off);
        }
    }
    skipped.sort();
    (skipped, unknown)
}

/// Whether a rule is evaluated at all.
fn active(policy: &RepoPolicy, rule: Rule) -> bool {
    policy.rules.get(rule) != Mode::Off
}

/// Parses and lints a task table blob into `tasks-lint` violations.
fn lint_table(path: &[u8], bytes: &[u8], commit: Option<&str>) -> Vec<Violation> {
    match crate::tasks::TaskTable::parse_bytes(bytes) {
        Ok(table) => {
            let (_, diagnostics) = crate::tasks::lint(&table);
            crate::policy::tasks_violations(path, &diagnostics, commit)
        }
        Err(e) => vec![Violation {
            rule: Rule::TasksLint,
            message: e.to_string(),
            path: Some(path.to_vec()),
            line: None,
            commit: commit.map(str::to_owned),
            fix: "run `trunkwarden tasks lint` and correct the table".into(),
        }],
    }
}

/// Reads `<a> <b> <c>[ <d>]` hook input lines, naming the line of anything malformed.
fn read_lines(
    input: impl BufRead,
    what: &'static str,
    fields: usize,
) -> impl Iterator<Item = Result<Vec<String>, HookError>> {
    input.split(b'\n').enumerate().filter_map(move |(i, line)| {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                return Some(Err(HookError::Input {
                    what,
                    line: i + 1,
                    message: format!("cannot read: {e}"),
                }));
            }
        };
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            return None;
        }
        let parts: Vec<String> = text.split(' ').map(str::to_owned).collect();
        if parts.len() != fields || parts.iter().any(String::is_empty) {
            let shown: String = text.chars().take(120).collect();
            return Some(Err(HookError::Input {
                what,
                line: i + 1,
                message: format!("expected {fields} space-separated fields, got `{shown}`"),
            }));
        }
        Some(Ok(parts))
    })
}

/// Parses an object id from hook input.
fn oid(s: &str, what: &'static str, line: usize) -> Result<git2::Oid, HookError> {
    let hex = s.len() == 40 || s.len() == 64;
    match git2::Oid::from_str(s) {
        Ok(o) if hex => Ok(o),
        _ => Err(HookError::Input {
            what,
            line,
            message: format!(
                "`{}` is not an object id",
                s.chars().take(80).collect::<String>()
            ),
        }),
    }
}

/// The policy in force for a working repository: `.trunkwarden.toml` in its work tree.
fn local_policy(repo: &Repository) -> Result<RepoPolicy, HookError> {
    let mut policy = match repo.workdir() {
        Some(dir) => RepoPolicy::load(dir)?,
        None => RepoPolicy::default(),
    };
    policy.trunk.default_branch = local_default_branch(repo);
    Ok(policy)
}

/// The default branch as a clone knows it: what `origin/HEAD` points at (set by `git clone`
/// and `git remote set-head`), else `init.defaultBranch`.
fn local_default_branch(repo: &Repository) -> Option<String> {
    let from_remote = repo
        .find_reference("refs/remotes/origin/HEAD")
        .ok()
        .and_then(|r| r.symbolic_target().ok().flatten().map(str::to_owned))
        .and_then(|t| t.strip_prefix("refs/remotes/origin/").map(str::to_owned));
    from_remote.or_else(|| {
        repo.config()
            .ok()
            .and_then(|c| c.get_string("init.defaultBranch").ok())
            .filter(|b| !b.is_empty())
    })
}

/// Opens the repository a hook runs in: `GIT_DIR` when git exported it, else discovered from
/// the working directory.
fn open_repo() -> Result<Repository, HookError> {
    // Objects are read as git reads them, without hashing each one again on the way: a quarter
    // of a long pre-push went to SHA-1 (with collision detection) of blobs git already named —
    // its index-pack hashed every pushed object before pre-receive, and a local object was
    // hashed when it was written.
    git2::opts::strict_hash_verification(false);
    match std::env::var_os("GIT_DIR") {
        Some(dir) => Repository::open(&dir).ctx(|| {
            format!(
                "cannot open the repository at GIT_DIR={}",
                Path::new(&dir).display()
            )
        }),
        None => Repository::discover(".").ctx(|| "cannot find the repository".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_like_git() {
        assert_eq!(quote_path(b"src/a b.rs"), "src/a b.rs");
        assert_eq!(quote_path(b"-rf"), "-rf");
        assert_eq!(quote_path(b"a\nb"), "\"a\\nb\"");
        assert_eq!(quote_path("é".as_bytes()), "\"\\303\\251\"");
        assert_eq!(quote_path(b"\xff\"\\"), "\"\\377\\\"\\\\\"");
    }

    #[test]
    fn skip_names_rules_and_reports_unknown_ones() {
        let mut p = RepoPolicy::default();
        let (skipped, unknown) = apply_skip(&mut p, Some("secrets, mesage"));
        assert_eq!(skipped, [Rule::Secrets]);
        assert_eq!(unknown, ["mesage"]);
        assert_eq!(p.rules.get(Rule::Secrets), Mode::Off);
        assert_eq!(p.rules.get(Rule::Message), Mode::Enforce);
        let mut p = RepoPolicy::default();
        assert_eq!(apply_skip(&mut p, Some("all")).0.len(), Rule::ALL.len());
        assert_eq!(apply_skip(&mut RepoPolicy::default(), None).0, []);
    }

    #[test]
    fn malformed_input_names_the_line() {
        let input = b"a b c\n\nx y\n";
        let r: Vec<_> = read_lines(&input[..], "pre-receive input", 3).collect();
        assert!(r[0].is_ok());
        let e = r[1].as_ref().unwrap_err().to_string();
        assert_eq!(
            e,
            "pre-receive input, line 3: expected 3 space-separated fields, got `x y`"
        );
        assert!(oid("zz", "x", 1).is_err());
        assert!(oid("0123", "x", 1).is_err());
        assert!(oid(&"0".repeat(40), "x", 1).unwrap().is_zero());
    }

    #[test]
    fn report_prints_fix_once_per_run_and_prefixes() {
        let p = RepoPolicy::default();
        let v = |line| Violation {
            rule: Rule::Secrets,
            message: "AWS access key AKIA…MNOP".into(),
            path: Some(b"a\tb".to_vec()),
            line: Some(line),
            commit: Some("0123456789abcdef".into()),
            fix: "remove it".into(),
        };
        let r = Report::new(&p, vec![v(1), v(2)]);
        let text = r.render("GL-HOOK-ERR: ");
        assert!(
            text.lines().all(|l| l.starts_with("GL-HOOK-ERR: ")),
            "{text}"
        );
        assert_eq!(text.matches("fix: remove it").count(), 1, "{text}");
        assert!(
            text.contains("[secrets] \"a\\tb\":2 (commit 0123456789): AWS access key AKIA…MNOP"),
            "{text}"
        );
        assert!(text.contains("2 problems — refused"), "{text}");
    }
}
