//! The vocabulary at the bottom of the house: which forge a thing is about.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which forge: where a delivery comes from and which dialect an adapter speaks. Forgejo is
/// Gitea's dialect with its own header names; it is kept apart for metrics and the ledger.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    Github,
    Gitea,
    Forgejo,
    Gitlab,
}

impl ForgeKind {
    /// Every forge, for configuration and help.
    pub const ALL: [ForgeKind; 4] = [
        ForgeKind::Github,
        ForgeKind::Gitea,
        ForgeKind::Forgejo,
        ForgeKind::Gitlab,
    ];

    /// Lower-case name used in configuration, URLs, metrics and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitea => "gitea",
            ForgeKind::Forgejo => "forgejo",
            ForgeKind::Gitlab => "gitlab",
        }
    }
}

impl ForgeKind {
    /// The same as [`ForgeKind::as_str`]: the name people and settings use.
    pub fn name(self) -> &'static str {
        self.as_str()
    }
}

impl fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ForgeKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ForgeKind::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!("unknown forge `{s}`; expected github, gitea, forgejo or gitlab")
            })
    }
}
