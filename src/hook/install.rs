//! Installing the hook shims: into a working repository's hooks directory (found as git finds
//! it), or next to a git server's own hooks. An existing hook is kept and chained, never
//! overwritten, and comes back on uninstall.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Host;
pub use super::steps::{InstallError, LOCAL_HOOKS, Step};

/// Recognises our own shims.
const MARKER: &str = "# trunkwarden hook shim";

/// Suffix under which a pre-existing hook is kept and chained.
pub const CHAINED_SUFFIX: &str = ".trunkwarden-chained";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |e| InstallError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shim for one hook: a few lines of POSIX sh that exec the binary by absolute path and
/// fall back to `PATH`. `binary` is `None` for the committed `hooks/` copies. A missing binary
/// skips a local hook loudly (the server still checks) but refuses a server-side push.
pub fn shim(hook: &str, binary: Option<&Path>, host: Option<Host>) -> String {
    let server = hook == "pre-receive";
    let lookup = match binary {
        Some(b) => format!(
            "tw={}\n[ -x \"$tw\" ] || tw=$(command -v trunkwarden) || tw=\n",
            sh_quote(&b.display().to_string())
        ),
        None => "tw=$(command -v trunkwarden) || tw=\n".to_owned(),
    };
    let missing = if server {
        "\techo \"trunkwarden: binary not found; refusing the push until it is installed\" >&2\n\texit 1\n"
            .to_owned()
    } else {
        format!(
            "\techo \"trunkwarden: binary not found; {hook} checks skipped (the server still checks)\" >&2\n\texit 0\n"
        )
    };
    let mut args = format!("hook {hook}");
    if let Some(h) = host {
        args.push_str(&format!(" --host {}", h.name()));
    }
    if binary.is_some() && (!server || host == Some(Host::Bare)) {
        args.push_str(&format!(" --chain \"$0{CHAINED_SUFFIX}\""));
    }
    format!(
        "#!/bin/sh\n{MARKER} (see `trunkwarden hooks --help`)\n{lookup}if [ -z \"$tw\" ]; then\n{missing}fi\nexec \"$tw\" {args} -- \"$@\"\n"
    )
}

fn git(dir: &Path, args: &[&str]) -> Result<Option<String>, InstallError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| InstallError::Git(format!("cannot run git: {e}")))?;
    Ok(out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim_end_matches('\n')
            .to_owned()
    }))
}

/// The hooks directory git uses for the repository at `dir` (linked worktrees, submodules,
/// bare repositories and a repository-scoped `core.hooksPath` included); `None` outside a
/// repository. A `core.hooksPath` from global or system config is shared by every repository,
/// so it is refused rather than written into.
pub fn hooks_dir(dir: &Path) -> Result<Option<PathBuf>, InstallError> {
    if git(dir, &["rev-parse", "--git-dir"])?.is_none() {
        return Ok(None);
    }
    if let Some(scoped) = git(dir, &["config", "--show-scope", "--get", "core.hooksPath"])? {
        let (scope, value) = scoped.split_once('\t').unwrap_or(("", &scoped));
        if !matches!(scope, "local" | "worktree") {
            return Err(InstallError::Refused(format!(
                "core.hooksPath is set to {value} in {scope} config, shared by every repository; \
                 set it for this repository (git config core.hooksPath .git/hooks) or point it at \
                 the shims in trunkwarden's hooks/ directory instead"
            )));
        }
    }
    let hooks = git(dir, &["rev-parse", "--git-path", "hooks"])?
        .ok_or_else(|| InstallError::Git("git rev-parse --git-path hooks failed".into()))?;
    let hooks = PathBuf::from(hooks);
    Ok(Some(if hooks.is_absolute() {
        hooks
    } else {
        dir.join(hooks)
    }))
}

fn is_ours(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()))
}

fn chained(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(CHAINED_SUFFIX);
    PathBuf::from(s)
}

fn write_executable(path: &Path, content: &str) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(".trunkwarden-{}.tmp", std::process::id()));
    std::fs::write(&tmp, content).map_err(io(&tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Installs one shim at `path`, keeping a foreign hook there as the chained one.
fn install_at(hook: &str, path: &Path, content: &str, chain: bool) -> Result<Step, InstallError> {
    let step = |what: &str| Step {
        hook: hook.to_owned(),
        path: path.to_owned(),
        what: what.to_owned(),
    };
    let kept = chained(path);
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_executable(path, content)?;
            Ok(step("installed"))
        }
        Err(e) => Err(io(path)(e)),
        Ok(_) if is_ours(path) => {
            if std::fs::read_to_string(path).is_ok_and(|c| c == content) {
                Ok(step("already installed, unchanged"))
            } else {
                write_executable(path, content)?;
                Ok(step("updated"))
            }
        }
        Ok(_) if !chain => Err(InstallError::Refused(format!(
            "{} exists and is not trunkwarden's; move it aside or call trunkwarden from it",
            path.display()
        ))),
        Ok(_) if kept.exists() => Err(InstallError::Refused(format!(
            "both {} and {} exist and neither is trunkwarden's; resolve by hand",
            path.display(),
            kept.display()
        ))),
        Ok(_) => {
            std::fs::rename(path, &kept).map_err(io(path))?;
            write_executable(path, content)?;
            Ok(step(&format!(
                "installed; the existing hook is kept as {} and runs first",
                kept.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            )))
        }
    }
}

/// Removes one shim, restoring a chained hook; leaves foreign hooks alone.
fn uninstall_at(hook: &str, path: &Path) -> Result<Step, InstallError> {
    let step = |what: &str| Step {
        hook: hook.to_owned(),
        path: path.to_owned(),
        what: what.to_owned(),
    };
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(step("not installed"));
    }
    if !is_ours(path) {
        return Ok(step("not trunkwarden's; left alone"));
    }
    std::fs::remove_file(path).map_err(io(path))?;
    let kept = chained(path);
    if kept.exists() {
        std::fs::rename(&kept, path).map_err(io(&kept))?;
        return Ok(step("removed; the previous hook is restored"));
    }
    Ok(step("removed"))
}

/// The binary the shims exec: this executable, by absolute path.
pub fn current_binary() -> Result<PathBuf, InstallError> {
    std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| InstallError::Git(format!("cannot find this executable's path: {e}")))
}

/// Another hook manager owning the repository's hooks, if one does.
fn manager(dir: &Path, hooks: &Path) -> Result<Option<super::managers::Manager>, InstallError> {
    Ok(git(dir, &["rev-parse", "--show-toplevel"])?
        .and_then(|top| super::managers::find(Path::new(&top), hooks)))
}

/// Installs the local hooks into the repository at `dir`; `None` outside a repository. With
/// husky, trunkwarden joins its scripts; with lefthook or pre-commit, it refuses and prints
/// what to add to their configuration — never writing over hooks another manager owns.
pub fn install_local(dir: &Path, binary: &Path) -> Result<Option<Vec<Step>>, InstallError> {
    let Some(hooks) = hooks_dir(dir)? else {
        return Ok(None);
    };
    if let Some(m) = manager(dir, &hooks)? {
        if let Some(refused) = super::managers::refusal(&m) {
            return Err(refused);
        }
        if let super::managers::Manager::Husky { scripts } = &m {
            return super::managers::install_husky(scripts).map(Some);
        }
    }
    LOCAL_HOOKS
        .iter()
        .map(|h| install_at(h, &hooks.join(h), &shim(h, Some(binary), None), true))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Removes the local hooks from the repository at `dir`.
pub fn uninstall_local(dir: &Path) -> Result<Option<Vec<Step>>, InstallError> {
    let Some(hooks) = hooks_dir(dir)? else {
        return Ok(None);
    };
    if let Some(super::managers::Manager::Husky { scripts }) = manager(dir, &hooks)? {
        return super::managers::uninstall_husky(&scripts).map(Some);
    }
    LOCAL_HOOKS
        .iter()
        .map(|h| uninstall_at(h, &hooks.join(h)))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Reports which local hooks are installed, and which manager took them over.
pub fn status_local(dir: &Path) -> Result<Option<Vec<Step>>, InstallError> {
    let Some(hooks) = hooks_dir(dir)? else {
        return Ok(None);
    };
    let owner = manager(dir, &hooks)?;
    Ok(Some(
        LOCAL_HOOKS
            .iter()
            .map(|h| {
                let path = hooks.join(h);
                let what = if let Some(m) = &owner {
                    use super::managers::Manager;
                    let configured = match m {
                        Manager::Husky { scripts } => std::fs::read_to_string(scripts.join(h))
                            .is_ok_and(|t| t.contains("trunkwarden hook")),
                        Manager::Lefthook { config } | Manager::PreCommit { config } => {
                            std::fs::read_to_string(config).is_ok_and(|t| {
                                t.contains("trunkwarden hook") || t.contains("id: trunkwarden")
                            })
                        }
                    };
                    // pre-commit keeps a hook it replaced as `.legacy` and runs it: trunkwarden's
                    // shim there and in the config runs every check twice. (lefthook keeps one as
                    // `.old` and does not run it.)
                    let legacy = {
                        let mut p = path.as_os_str().to_owned();
                        p.push(".legacy");
                        PathBuf::from(p)
                    };
                    let twice = matches!(m, Manager::PreCommit { .. }) && is_ours(&legacy);
                    match (configured, twice.then_some(&legacy)) {
                        (true, Some(old)) => format!(
                            "runs twice: through {} and as {} — fix: rm {}",
                            m.name(),
                            old.display(),
                            old.display()
                        ),
                        (true, _) => format!("installed through {}", m.name()),
                        (false, _) => format!(
                            "not installed: {} owns the hooks — `trunkwarden hooks install` says how to add trunkwarden to it",
                            m.name()
                        ),
                    }
                } else if std::fs::symlink_metadata(&path).is_err() {
                    "not installed".to_owned()
                } else if !is_ours(&path) {
                    "another hook, not trunkwarden's".to_owned()
                } else if chained(&path).exists() {
                    format!("installed, chaining {h}{CHAINED_SUFFIX}")
                } else {
                    "installed".to_owned()
                };
                Step {
                    hook: (*h).to_owned(),
                    path,
                    what,
                }
            })
            .collect(),
    ))
}

/// Where the server-side hook goes for `host` and repository (or global hooks directory) `path`.
fn server_target(host: Host, path: &Path) -> Result<PathBuf, InstallError> {
    let is_repo = path.join("HEAD").is_file() && path.join("objects").is_dir();
    match host {
        Host::Bare => {
            if !is_repo {
                return Err(InstallError::Refused(format!(
                    "{} is not a bare git repository",
                    path.display()
                )));
            }
            let hooks = hooks_dir(path)?.unwrap_or_else(|| path.join("hooks"));
            Ok(hooks.join("pre-receive"))
        }
        Host::Gitea if is_repo => Ok(path.join("hooks/pre-receive.d/trunkwarden")),
        Host::Gitea => Err(InstallError::Refused(format!(
            "{} is not a Gitea/Forgejo repository directory (…/repositories/OWNER/NAME.git)",
            path.display()
        ))),
        // A repository gets its own custom hook; any other directory is GitLab's global
        // custom hooks directory (gitaly `hooks.custom_hooks_dir`).
        Host::Gitlab if is_repo => Ok(path.join("custom_hooks/pre-receive.d/trunkwarden")),
        Host::Gitlab => Ok(path.join("pre-receive.d/trunkwarden")),
    }
}

/// Installs `pre-receive` for each path, idempotently, next to the host's own hooks.
pub fn install_server(
    host: Host,
    paths: &[PathBuf],
    binary: &Path,
) -> Result<Vec<Step>, InstallError> {
    paths
        .iter()
        .map(|p| {
            let target = server_target(host, p)?;
            let content = shim("pre-receive", Some(binary), Some(host));
            install_at("pre-receive", &target, &content, host == Host::Bare)
        })
        .collect()
}

/// Removes the server-side hook from each path, restoring a chained one.
pub fn uninstall_server(host: Host, paths: &[PathBuf]) -> Result<Vec<Step>, InstallError> {
    paths
        .iter()
        .map(|p| uninstall_at("pre-receive", &server_target(host, p)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shims_are_small_posix_sh_with_lf_only() {
        let s = shim("pre-commit", Some(Path::new("/opt/it's/trunkwarden")), None);
        assert!(!s.contains('\r'));
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(r"tw='/opt/it'\''s/trunkwarden'"), "{s}");
        assert!(s.contains("--chain \"$0.trunkwarden-chained\""), "{s}");
        assert!(s.contains("exit 0"), "{s}");
        assert!(s.lines().count() <= 9, "{s}");
        let s = shim("pre-receive", Some(Path::new("/x")), Some(Host::Gitea));
        assert!(
            s.contains("--host gitea") && s.contains("exit 1") && !s.contains("--chain"),
            "{s}"
        );
        let s = shim("pre-receive", Some(Path::new("/x")), Some(Host::Bare));
        assert!(s.contains("--host bare") && s.contains("--chain"), "{s}");
        let s = shim("pre-push", None, None);
        assert!(
            !s.contains("--chain") && s.contains("command -v trunkwarden"),
            "{s}"
        );
    }

    #[test]
    fn committed_shims_match_the_generator() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks");
        for h in LOCAL_HOOKS.iter().chain(&["pre-receive"]) {
            let host = (*h == "pre-receive").then_some(Host::Bare);
            let fresh = shim(h, None, host);
            if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
                write_executable(&root.join(h), &fresh).unwrap();
            }
            let committed = std::fs::read_to_string(root.join(h)).unwrap();
            assert_eq!(
                committed, fresh,
                "hooks/{h} is stale (UPDATE_SNAPSHOTS=1 rewrites it)"
            );
        }
    }
}
