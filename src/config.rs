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
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RepoPolicy {
    #[serde(default)]
    pub tasks: TasksPolicy,
}

/// Where the task table lives.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TasksPolicy {
    /// Path of the task table relative to the repository root.
    #[serde(default = "default_tasks_path")]
    pub path: PathBuf,
}

impl Default for TasksPolicy {
    fn default() -> Self {
        TasksPolicy {
            path: default_tasks_path(),
        }
    }
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
        if policy.tasks.path.is_absolute()
            || policy
                .tasks
                .path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(ConfigError::Parse {
                path: origin.to_owned(),
                message: format!(
                    "tasks.path `{}` must be a relative path inside the repository",
                    policy.tasks.path.display()
                ),
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

/// The settings file of `trunkwarden serve` (`--config`). Every key is optional; command-line
/// flags and `TRUNKWARDEN_*` variables win over it. Secrets never live here.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub queue: QueueSection,
    #[serde(default)]
    pub webhook: WebhookSection,
}

/// `[server]`: where to listen and keep data.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub max_body_bytes: Option<usize>,
    pub request_timeout_secs: Option<u64>,
}

/// `[queue]`: how deliveries are processed and retried.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueSection {
    /// Deliveries processed at once; 0 runs ingest only.
    pub workers: Option<usize>,
    pub max_attempts: Option<u32>,
    pub retry_base_ms: Option<u64>,
    pub retry_max_ms: Option<u64>,
    /// `full` (fsync every commit, the default) or `normal`.
    pub sync: Option<crate::queue::Sync>,
}

/// `[webhook]`: which forges may send unsigned deliveries, and signature tolerances.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    #[serde(default)]
    pub allow_unsigned: Vec<crate::webhook::Forge>,
    pub gitlab_timestamp_tolerance_secs: Option<i64>,
}

impl ServerFile {
    /// Reads and parses a settings file; errors name the file, line and key.
    pub fn load(path: &Path) -> Result<ServerFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }
}
