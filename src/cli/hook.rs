//! `trunkwarden hook NAME` (what the shims run) and `trunkwarden hooks install|uninstall|status`.

use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use trunkwarden::hook::{self, Host, install};

use crate::Outcome;

/// The hooks trunkwarden implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HookName {
    PreCommit,
    CommitMsg,
    PrePush,
    PreReceive,
}

#[derive(Debug, clap::Args)]
pub struct HookArgs {
    /// The hook git is running.
    #[arg(value_enum)]
    name: HookName,
    /// A pre-existing hook to run first, with the same arguments and input; skipped when absent.
    #[arg(long, value_name = "PATH")]
    chain: Option<PathBuf>,
    /// The git host a pre-receive hook runs under (where the pusher's identity comes from).
    #[arg(long, value_enum, default_value = "bare")]
    host: Host,
    /// The arguments git passes the hook.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs the chained hook with our arguments and the given input; its output goes to the user.
fn run_chained(path: &Path, args: &[OsString], input: Option<&[u8]>) -> anyhow::Result<bool> {
    let mut cmd = Command::new(path);
    cmd.args(args).stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run the chained hook {}", path.display()))?;
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        // A hook that exits without reading its input closes the pipe; that is its right.
        let _ = stdin.write_all(bytes);
    }
    let status = child.wait().context("waiting for the chained hook")?;
    if !status.success() {
        eprintln!(
            "trunkwarden: the chained hook {} failed ({status}); refused",
            path.display()
        );
    }
    Ok(status.success())
}

/// Runs one hook: the chained hook first (it may still change the index or the message), then
/// the rules. Exit 0 clean, 1 refused, 2 when the hook could not judge (git refuses on both).
pub fn run(a: HookArgs) -> anyhow::Result<Outcome> {
    let prefix = if a.name == HookName::PreReceive {
        a.host.prefix()
    } else {
        ""
    };
    let reads_stdin = matches!(a.name, HookName::PrePush | HookName::PreReceive);
    let chain = a.chain.as_deref().filter(|p| is_executable(p));
    let mut buffered = None;
    if let Some(path) = chain {
        if reads_stdin {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .context("cannot read the hook's input")?;
            buffered = Some(bytes);
        }
        if !run_chained(path, &a.args, buffered.as_deref())? {
            return Ok(Outcome::Violation);
        }
    }
    let stdin = std::io::stdin();
    let input: Box<dyn BufRead> = match buffered {
        Some(b) => Box::new(std::io::Cursor::new(b)),
        None => Box::new(stdin.lock()),
    };
    let report = match a.name {
        HookName::PreCommit => hook::pre_commit(),
        HookName::CommitMsg => {
            let Some(file) = a.args.first() else {
                bail!("commit-msg needs the message file as its argument, as git passes it");
            };
            hook::commit_msg(Path::new(file))
        }
        HookName::PrePush => hook::pre_push(input),
        HookName::PreReceive => hook::pre_receive(a.host, input),
    };
    match report {
        Ok(r) => {
            eprint!("{}", r.render(prefix));
            Ok(if r.refused() {
                Outcome::Violation
            } else {
                Outcome::Clean
            })
        }
        Err(e) => {
            eprintln!(
                "{prefix}trunkwarden: error: {e}; refused because the rules could not be checked"
            );
            Ok(Outcome::Failed)
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct HooksArgs {
    #[command(subcommand)]
    action: HooksAction,
}

#[derive(Debug, clap::Subcommand)]
enum HooksAction {
    /// Install pre-commit, commit-msg and pre-push into this repository (or, with --server,
    /// pre-receive into server repositories); existing hooks are kept and run first.
    Install(Target),
    /// Remove what install added and restore the hooks it kept.
    Uninstall(Target),
    /// Show which hooks are installed in this repository.
    Status,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// Install the server-side pre-receive hook instead of the local hooks.
    #[arg(long, requires = "host")]
    server: bool,
    /// The git host of the server-side repositories.
    #[arg(long, value_enum, requires = "server")]
    host: Option<Host>,
    /// Repositories (or GitLab's global custom hooks directory) to install into, with --server.
    #[arg(requires = "server")]
    paths: Vec<PathBuf>,
}

fn print_steps(steps: &[install::Step]) -> anyhow::Result<()> {
    let mut out = String::new();
    for s in steps {
        out.push_str(&format!("{}: {} ({})\n", s.hook, s.what, s.path.display()));
    }
    super::emit(&out)
}

/// `hooks install|uninstall|status`.
pub fn run_hooks(a: HooksArgs) -> anyhow::Result<Outcome> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let steps = match a.action {
        HooksAction::Install(t) if t.server => {
            let (Some(host), false) = (t.host, t.paths.is_empty()) else {
                bail!("--server needs --host and at least one repository path");
            };
            Some(install::install_server(
                host,
                &t.paths,
                &install::current_binary()?,
            )?)
        }
        HooksAction::Uninstall(t) if t.server => {
            let (Some(host), false) = (t.host, t.paths.is_empty()) else {
                bail!("--server needs --host and at least one repository path");
            };
            Some(install::uninstall_server(host, &t.paths)?)
        }
        HooksAction::Install(_) => install::install_local(&cwd, &install::current_binary()?)?,
        HooksAction::Uninstall(_) => install::uninstall_local(&cwd)?,
        HooksAction::Status => install::status_local(&cwd)?,
    };
    match steps {
        Some(steps) => print_steps(&steps)?,
        None => super::emit("not inside a git repository; nothing to do\n")?,
    }
    Ok(Outcome::Clean)
}
