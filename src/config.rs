//! Repository policy from `.trunkwarden.toml`, found at the repository root.
//!
//! Unknown keys are errors, so a typo never silently turns a rule off.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The policy file's name at the repository root.
pub const POLICY_FILE: &str = ".trunkwarden.toml";

/// Why the policy file could not be used; says which file and, for syntax, where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Per-repository policy; every section has defaults, so an absent file is the default policy.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RepoPolicy {
    #[serde(default)]
    pub tasks: TasksPolicy,
    #[serde(default)]
    pub bot: BotPolicy,
    #[serde(default)]
    pub trunk: TrunkPolicy,
    #[serde(default)]
    pub rules: RuleModes,
    #[serde(default)]
    pub message: MessagePolicy,
    #[serde(default)]
    pub hooks: HooksPolicy,
    #[serde(default)]
    pub ci: CiPolicy,
    #[serde(default)]
    pub commands: CommandsPolicy,
    #[serde(default)]
    pub secrets: SecretsPolicy,
}

/// How people address the bot in comments.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CommandsPolicy {
    /// The mention that starts a command line.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

impl Default for CommandsPolicy {
    fn default() -> Self {
        CommandsPolicy {
            prefix: default_prefix(),
        }
    }
}

fn default_prefix() -> String {
    DEFAULT_PREFIX.to_owned()
}

/// The default mention that starts a comment command.
pub const DEFAULT_PREFIX: &str = "@trunkwarden";

/// What "green" means for a commit.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CiPolicy {
    /// Contexts that must succeed; empty means every context reported (the bot's own excepted).
    #[serde(default)]
    pub required: Vec<String>,
    /// Whether `neutral` counts as passing.
    #[serde(default = "yes")]
    pub neutral_passes: bool,
    /// Whether `skipped` counts as passing.
    #[serde(default = "yes")]
    pub skipped_passes: bool,
    /// After CI failed on this many heads of one pull request, the task is `failed`; 0 never.
    #[serde(default)]
    pub fail_after: u32,
    /// Minutes (fractions allowed) a merge commit waits for its contexts before the missing
    /// ones count as failed; 0 waits forever.
    #[serde(default)]
    pub timeout_mins: f64,
}

impl Default for CiPolicy {
    fn default() -> Self {
        CiPolicy {
            required: Vec::new(),
            neutral_passes: true,
            skipped_passes: true,
            fail_after: 0,
            timeout_mins: 0.0,
        }
    }
}

/// How strictly a rule is applied: `enforce` refuses, `warn` reports and lets it pass, `off` skips.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Warn,
    Off,
}

/// One mode per rule, so a team can relax one rule without losing the others.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuleModes {
    #[serde(default)]
    pub trunk: Mode,
    #[serde(default)]
    pub squash_only: Mode,
    #[serde(default)]
    pub secrets: Mode,
    #[serde(default)]
    pub single_writer: Mode,
    #[serde(default)]
    pub tasks_lint: Mode,
    #[serde(default)]
    pub message: Mode,
    #[serde(default)]
    pub closing_keywords: Mode,
}

/// The bot's identity: the only writer of the task table and the only pusher to the trunk.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BotPolicy {
    /// Author and committer name of the bot's commits.
    #[serde(default = "default_bot_name")]
    pub name: String,
    /// Author and committer email of the bot's commits; local hooks recognise the bot by it.
    #[serde(default = "default_bot_email")]
    pub email: String,
    /// The forge account the bot pushes as; server-side hooks recognise the bot by it.
    #[serde(default = "default_bot_login")]
    pub login: String,
}

impl Default for BotPolicy {
    fn default() -> Self {
        BotPolicy {
            name: default_bot_name(),
            email: default_bot_email(),
            login: default_bot_login(),
        }
    }
}

fn default_bot_name() -> String {
    "trunkwarden".into()
}
fn default_bot_email() -> String {
    "trunkwarden@users.noreply.invalid".into()
}
fn default_bot_login() -> String {
    "trunkwarden".into()
}

/// The protected trunk branch.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrunkPolicy {
    /// Branch name without `refs/heads/`; unset, the trunk is the repository's default branch.
    #[serde(default)]
    pub branch: Option<String>,
    /// Accept a squash merge the hosting forge performs for a PR (Gitea's `GITEA_PR_ID`) from
    /// whoever pressed the button; the squash-only and secrets rules still apply.
    #[serde(default = "yes")]
    pub allow_forge_merges: bool,
    /// Refuse a commit made on the trunk at `pre-commit` already, not only its push (the bot's
    /// own commits and a repository's first commit pass).
    #[serde(default = "yes")]
    pub refuse_commits: bool,
    /// The repository's default branch as the reader of the policy found it (the remote's
    /// `HEAD`, the bare repository's `HEAD`, the forge's setting); never read from the file.
    #[serde(skip)]
    pub default_branch: Option<String>,
}

impl Default for TrunkPolicy {
    fn default() -> Self {
        TrunkPolicy {
            branch: None,
            allow_forge_merges: true,
            refuse_commits: true,
            default_branch: None,
        }
    }
}

impl TrunkPolicy {
    /// The trunk: the configured branch, else the repository's default branch, else `main`
    /// (what `git init` and the forges create).
    pub fn name(&self) -> &str {
        self.branch
            .as_deref()
            .or(self.default_branch.as_deref())
            .unwrap_or(FALLBACK_TRUNK)
    }

    /// Where the trunk's name came from, for messages that explain it.
    pub fn source(&self) -> &'static str {
        match (&self.branch, &self.default_branch) {
            (Some(_), _) => "`[trunk] branch` of .trunkwarden.toml",
            (None, Some(_)) => "the repository's default branch",
            (None, None) => "the default name, as no default branch is known",
        }
    }
}

/// The trunk when neither the policy nor the repository names one.
pub const FALLBACK_TRUNK: &str = "main";

fn yes() -> bool {
    true
}

/// The commit message convention `type(scope): summary`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MessagePolicy {
    /// Accepted types.
    #[serde(default = "default_types")]
    pub types: Vec<String>,
}

impl Default for MessagePolicy {
    fn default() -> Self {
        MessagePolicy {
            types: default_types(),
        }
    }
}

fn default_types() -> Vec<String> {
    [
        "feat", "fix", "docs", "style", "refactor", "perf", "test", "build", "ci", "chore",
        "revert", "bench",
    ]
    .map(String::from)
    .to_vec()
}

/// Server-side hook settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HooksPolicy {
    /// Environment variable that names the pusher on a host that is neither Gitea/Forgejo nor
    /// GitLab (for example `REMOTE_USER` behind an authenticating HTTP server).
    pub pusher_env: Option<String>,
}

impl RuleModes {
    /// The mode of one rule.
    pub fn get(&self, rule: Rule) -> Mode {
        match rule {
            Rule::Trunk => self.trunk,
            Rule::SquashOnly => self.squash_only,
            Rule::Secrets => self.secrets,
            Rule::SingleWriter => self.single_writer,
            Rule::TasksLint => self.tasks_lint,
            Rule::Message => self.message,
            Rule::ClosingKeywords => self.closing_keywords,
        }
    }

    /// Changes the mode of one rule (the local escape hatch turns rules off).
    pub fn set(&mut self, rule: Rule, mode: Mode) {
        let slot = match rule {
            Rule::Trunk => &mut self.trunk,
            Rule::SquashOnly => &mut self.squash_only,
            Rule::Secrets => &mut self.secrets,
            Rule::SingleWriter => &mut self.single_writer,
            Rule::TasksLint => &mut self.tasks_lint,
            Rule::Message => &mut self.message,
            Rule::ClosingKeywords => &mut self.closing_keywords,
        };
        *slot = mode;
    }
}

/// Where the task table and the bot's learnings live.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TasksPolicy {
    /// Path of the task table relative to the repository root.
    #[serde(default = "default_tasks_path")]
    pub path: PathBuf,
    /// Path of the learnings file, the only other file a bot commit may touch.
    #[serde(default = "default_learnings_path")]
    pub learnings: PathBuf,
}

impl Default for TasksPolicy {
    fn default() -> Self {
        TasksPolicy {
            path: default_tasks_path(),
            learnings: default_learnings_path(),
        }
    }
}

fn default_learnings_path() -> PathBuf {
    PathBuf::from("docs/tasks/orchestrator-learnings.json")
}

fn default_tasks_path() -> PathBuf {
    PathBuf::from("docs/TASKS.md")
}

impl RepoPolicy {
    /// Parses policy text; `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<RepoPolicy, ConfigError> {
        let policy: RepoPolicy = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        for (key, path) in [
            ("tasks.path", &policy.tasks.path),
            ("tasks.learnings", &policy.tasks.learnings),
            ("secrets.baseline", &policy.secrets.baseline),
        ] {
            if path.is_absolute()
                || path
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(ConfigError::Parse {
                    path: origin.to_owned(),
                    message: format!(
                        "{key} `{}` must be a relative path inside the repository",
                        path.display()
                    ),
                });
            }
        }
        if let Some(b) = &policy.trunk.branch
            && (b.is_empty() || b.starts_with("refs/") || b.contains(char::is_whitespace))
        {
            return Err(ConfigError::Parse {
                path: origin.to_owned(),
                message: "trunk.branch must be a branch name such as `main`, without `refs/heads/`"
                    .into(),
            });
        }
        Ok(policy)
    }

    /// Loads `.trunkwarden.toml` from a repository root; a missing file is the default policy.
    pub fn load(root: &Path) -> Result<RepoPolicy, ConfigError> {
        let path = root.join(POLICY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => RepoPolicy::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RepoPolicy::default()),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }
}

/// The working tree root containing `start`: the nearest ancestor with a `.git` entry (a
/// directory, or a file as in linked worktrees and submodules).
pub fn find_repo_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_path_buf)
}

/// A rule of the trunk workflow; its kebab-case name is the key under `[rules]` in
/// `.trunkwarden.toml` and the name `TRUNKWARDEN_SKIP` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// Nobody pushes to the trunk directly; it is never rewritten or deleted.
    Trunk,
    /// A change reaches the trunk as one squash commit, never a merge commit.
    SquashOnly,
    /// No credential enters history.
    Secrets,
    /// The task table is written by the bot alone.
    SingleWriter,
    /// A task table that is committed is a valid one.
    TasksLint,
    /// Commit messages follow `type(scope): summary`.
    Message,
    /// A task's pull request never lets the forge close an issue at merge, before CI on the
    /// trunk has run (`Closes #N`); it names issues with `Refs #N` and the bot closes them.
    ClosingKeywords,
}

impl Rule {
    /// Every rule, in report order.
    pub const ALL: [Rule; 7] = [
        Rule::Trunk,
        Rule::SquashOnly,
        Rule::Secrets,
        Rule::SingleWriter,
        Rule::TasksLint,
        Rule::Message,
        Rule::ClosingKeywords,
    ];

    /// The configuration and report name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Trunk => "trunk",
            Rule::SquashOnly => "squash-only",
            Rule::Secrets => "secrets",
            Rule::SingleWriter => "single-writer",
            Rule::TasksLint => "tasks-lint",
            Rule::Message => "message",
            Rule::ClosingKeywords => "closing-keywords",
        }
    }

    /// The rule with this name, if any.
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// The baseline's default path, relative to the repository root.
pub const DEFAULT_BASELINE: &str = ".trunkwarden-baseline.json";

/// `[secrets]`: what a team adds to or takes from the built-in rules.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SecretsPolicy {
    /// Built-in rule ids to turn off.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Repository-relative path of the baseline of accepted findings.
    #[serde(default = "default_baseline")]
    pub baseline: PathBuf,
    /// Files larger than this many bytes are not scanned.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: u64,
    /// Findings that are not secrets: by path, by a regex over the secret, or by a stop-word.
    #[serde(default)]
    pub allow: Vec<Allow>,
    /// Rules of the team's own; one with a built-in rule's id replaces it.
    #[serde(default)]
    pub rule: Vec<SecretRule>,
    /// Report private keys in test data too (`tests/`, `testdata/`, `fixtures/`, `*_test.*`):
    /// off by default, since nearly every key there is a fixture of a TLS or crypto test.
    #[serde(default)]
    pub report_test_keys: bool,
}

impl Default for SecretsPolicy {
    fn default() -> Self {
        SecretsPolicy {
            disable: Vec::new(),
            baseline: default_baseline(),
            max_file_size: default_max_file_size(),
            allow: Vec::new(),
            rule: Vec::new(),
            report_test_keys: false,
        }
    }
}

fn default_max_file_size() -> u64 {
    10 << 20
}

fn default_baseline() -> PathBuf {
    PathBuf::from(DEFAULT_BASELINE)
}

/// One `[[secrets.allow]]` entry. A finding is allowed when the entry applies to its rule and
/// any one of the entry's paths, regexes or stop-words matches.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    /// Why these are not secrets, for the next reader.
    pub description: Option<String>,
    /// Rule ids the entry applies to; empty means every rule.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Path globs (`**` crosses directories), relative to the repository root.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Regexes over the repository-relative path (what a gitleaks allowlist's `paths` are).
    #[serde(default)]
    pub path_regexes: Vec<String>,
    /// Regexes searched in the secret.
    #[serde(default)]
    pub regexes: Vec<String>,
    /// Substrings (any case) that mark a secret as a fake.
    #[serde(default)]
    pub stopwords: Vec<String>,
}

/// One secret detection rule, as written in the built-in `rules.toml` and in a repository's
/// `[[secrets.rule]]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretRule {
    pub id: String,
    pub description: String,
    pub keywords: Vec<String>,
    pub regex: String,
    /// Minimum Shannon entropy (bits per character) of the secret.
    pub entropy: Option<f64>,
    /// Checksum scheme the secret must satisfy.
    pub checksum: Option<String>,
    /// Bytes searched on each side of a keyword hit.
    pub window: Option<usize>,
    /// Values that are never secrets for this rule (exact, case-insensitive): `pass`, `root`, …
    #[serde(default)]
    pub stopwords: Vec<String>,
    /// Skip values shaped like code identifiers (`CLIENT_TRAFFIC_SECRET`, `passwordInput`).
    #[serde(default)]
    pub reject_identifiers: bool,
    /// The rule knows a secret by what surrounds it (a variable name, a file's syntax), not by
    /// its own shape: where a rule that knows the shape finds the same secret, that one is
    /// reported.
    #[serde(default)]
    pub context: bool,
    /// What the rule finds in test data is a fixture (a test's key pair), reported only with
    /// `[secrets] report-test-keys`.
    #[serde(default)]
    pub fixture_in_tests: bool,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub negatives: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let p = RepoPolicy::parse("", Path::new("x")).unwrap();
        assert_eq!(p.tasks.path, PathBuf::from("docs/TASKS.md"));
        let p = RepoPolicy::parse("[tasks]\npath = \"plan/T.md\"\n", Path::new("x")).unwrap();
        assert_eq!(p.tasks.path, PathBuf::from("plan/T.md"));
    }

    #[test]
    fn errors_name_file_and_place() {
        let e = RepoPolicy::parse("[tasks]\npaht = \"x\"\n", Path::new(".trunkwarden.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(".trunkwarden.toml: "), "{e}");
        assert!(e.contains("paht") && e.contains("line 2"), "{e}");
        let e = RepoPolicy::parse("[tasks]\npath = \"../etc\"\n", Path::new("p"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("inside the repository"), "{e}");
    }
}
