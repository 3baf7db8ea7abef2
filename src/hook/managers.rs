//! Other hook managers in a repository (husky, lefthook, pre-commit/prek): trunkwarden joins
//! them the way each expects instead of writing over the hooks they own — a line in husky's
//! hook scripts, or, where that means editing the team's YAML, a refusal that prints the exact
//! snippet to add.

use std::path::{Path, PathBuf};

use super::steps::{InstallError, LOCAL_HOOKS, Step};

/// Marks the line trunkwarden adds to a husky hook.
const HUSKY_MARK: &str = "# trunkwarden";

/// A hook manager found in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manager {
    /// husky (v9: `core.hooksPath=.husky/_`): the team's hooks are `.husky/<hook>` scripts.
    Husky { scripts: PathBuf },
    /// lefthook, configured by this file.
    Lefthook { config: PathBuf },
    /// pre-commit or prek, configured by this file.
    PreCommit { config: PathBuf },
}

impl Manager {
    /// The manager's name as its users know it.
    pub fn name(&self) -> &'static str {
        match self {
            Manager::Husky { .. } => "husky",
            Manager::Lefthook { .. } => "lefthook",
            Manager::PreCommit { .. } => "pre-commit",
        }
    }
}

/// The manager that owns the hooks of the working tree at `top`, whose hooks directory git
/// reports as `hooks`.
pub fn find(top: &Path, hooks: &Path) -> Option<Manager> {
    let husky = top.join(".husky");
    if hooks.ends_with(".husky/_") || hooks.ends_with(".husky") || husky.join("_").is_dir() {
        return Some(Manager::Husky { scripts: husky });
    }
    for name in [
        "lefthook.yml",
        ".lefthook.yml",
        "lefthook.yaml",
        ".lefthook.yaml",
    ] {
        if top.join(name).is_file() {
            return Some(Manager::Lefthook {
                config: top.join(name),
            });
        }
    }
    let pc = top.join(".pre-commit-config.yaml");
    pc.is_file().then_some(Manager::PreCommit { config: pc })
}

/// The line a husky hook script gets: trunkwarden from `PATH` (the script is shared by the
/// team), skipped with a note where it is not installed.
fn husky_line(hook: &str) -> String {
    let args = if hook == "pre-commit" { "" } else { " \"$@\"" };
    format!(
        "if command -v trunkwarden >/dev/null 2>&1; then trunkwarden hook {hook}{args}; else echo \"trunkwarden: not installed; {hook} checks skipped\" >&2; fi {HUSKY_MARK}\n"
    )
}

/// Joins husky: each `.husky/<hook>` script starts with trunkwarden's line (first, so a
/// pre-push still has git's input), the team's lines kept as they are.
pub fn install_husky(scripts: &Path) -> Result<Vec<Step>, InstallError> {
    let mut steps = Vec::new();
    for hook in LOCAL_HOOKS {
        let path = scripts.join(hook);
        let io = |e: std::io::Error| InstallError::Io {
            path: path.clone(),
            message: e.to_string(),
        };
        let old = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        let line = husky_line(hook);
        let what = match &old {
            Some(text) if text.lines().any(|l| l.ends_with(HUSKY_MARK)) => {
                "husky: already calls trunkwarden, unchanged".to_owned()
            }
            Some(text) => {
                // After a shebang, if the script has one.
                let (head, rest) = match text.strip_prefix("#!") {
                    Some(_) => text.split_at(text.find('\n').map_or(text.len(), |i| i + 1)),
                    None => ("", text.as_str()),
                };
                write_script(&path, &format!("{head}{line}{rest}")).map_err(io)?;
                "husky: trunkwarden's line added first; the team's lines kept".to_owned()
            }
            None => {
                write_script(&path, &line).map_err(io)?;
                "husky: created with trunkwarden's line".to_owned()
            }
        };
        steps.push(Step {
            hook: hook.to_owned(),
            path,
            what,
        });
    }
    Ok(steps)
}

/// Removes trunkwarden's line from husky's scripts, leaving the team's.
pub fn uninstall_husky(scripts: &Path) -> Result<Vec<Step>, InstallError> {
    let mut steps = Vec::new();
    for hook in LOCAL_HOOKS {
        let path = scripts.join(hook);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if !text.lines().any(|l| l.ends_with(HUSKY_MARK)) {
            continue;
        }
        let kept: String = text
            .split_inclusive('\n')
            .filter(|l| !l.trim_end().ends_with(HUSKY_MARK))
            .collect();
        write_script(&path, &kept).map_err(|e| InstallError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        steps.push(Step {
            hook: hook.to_owned(),
            path,
            what: "husky: trunkwarden's line removed".to_owned(),
        });
    }
    Ok(steps)
}

fn write_script(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// What to add to a manager's YAML, refused rather than written: the file is the team's.
pub fn refusal(m: &Manager) -> Option<InstallError> {
    let (config, snippet) = match m {
        Manager::Husky { .. } => return None,
        Manager::Lefthook { config } => (
            config,
            "pre-commit:\n  commands:\n    trunkwarden:\n      run: trunkwarden hook pre-commit\ncommit-msg:\n  commands:\n    trunkwarden:\n      run: trunkwarden hook commit-msg {1}\npre-push:\n  commands:\n    trunkwarden:\n      run: trunkwarden hook pre-push {1} {2}\n      use_stdin: true\n",
        ),
        Manager::PreCommit { config } => (
            config,
            "repos:\n  - repo: local\n    hooks:\n      - id: trunkwarden\n        name: trunkwarden (trunk, secrets, task table)\n        entry: trunkwarden hook pre-commit\n        language: system\n        pass_filenames: false\n        always_run: true\n        stages: [pre-commit]\n      - id: trunkwarden-commit-msg\n        name: trunkwarden (commit message)\n        entry: trunkwarden hook commit-msg\n        language: system\n        stages: [commit-msg]\n",
        ),
    };
    Some(InstallError::Refused(format!(
        "{} manages this repository's hooks ({}); writing into git's hooks would be undone by it, \
         so nothing was installed. Add trunkwarden to {} instead:\n\n{snippet}\nthen run `{}`.",
        m.name(),
        config.display(),
        config.display(),
        match m {
            Manager::Lefthook { .. } => "lefthook install",
            _ => "pre-commit install --hook-type pre-commit --hook-type commit-msg",
        }
    )))
}
