//! What installing hooks reports and how it fails, shared by the installer and the hook-manager
//! integrations (a leaf, so neither imports the other back).

use std::path::PathBuf;

/// The hooks a working repository gets.
pub const LOCAL_HOOKS: [&str; 3] = ["pre-commit", "commit-msg", "pre-push"];

/// Why hooks could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{0}")]
    Git(String),
    #[error("{0}")]
    Refused(String),
}

/// What happened to one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub hook: String,
    pub path: PathBuf,
    pub what: String,
}
