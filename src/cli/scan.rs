//! `trunkwarden scan`: secrets in files, directories (respecting .gitignore) or stdin.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use clap::Args;

use super::emit;
use crate::Outcome;
use trunkwarden::config::{POLICY_FILE, RepoPolicy, find_repo_root};
use trunkwarden::secrets::tuning::{Baseline, normal_path};
use trunkwarden::secrets::{Finding, Scanner, history, report};

/// Output formats of `scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScanFormat {
    Text,
    Json,
    Sarif,
}

/// Arguments of `scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan; `-` reads standard input [default: .].
    paths: Vec<PathBuf>,
    /// Scan the lines the index adds against HEAD (what `git commit` would record).
    #[arg(long, conflicts_with_all = ["range", "history", "paths"])]
    staged: bool,
    /// Scan the lines each commit of `A..B` adds, including secrets removed again later.
    #[arg(long, value_name = "A..B", conflicts_with_all = ["history", "paths"])]
    range: Option<String>,
    /// Scan every blob of the repository's whole history, each once.
    #[arg(long, conflicts_with = "paths")]
    history: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ScanFormat::Text)]
    format: ScanFormat,
    /// Skip files larger than this many bytes [default: `[secrets] max-file-size`, else 10 MiB].
    #[arg(long)]
    max_file_size: Option<u64>,
    /// Also scan files that .gitignore and .ignore exclude.
    #[arg(long)]
    no_ignore: bool,
    /// Baseline of accepted findings [default: `[secrets] baseline` in the repository].
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Report findings the baseline accepts, too.
    #[arg(long, conflicts_with = "baseline")]
    no_baseline: bool,
    /// Write every finding of this scan to the baseline, accepting them, and exit 0.
    #[arg(long)]
    update_baseline: bool,
    /// Print the rules in force (built-in, replaced or added by .trunkwarden.toml, turned off)
    /// and exit, scanning nothing.
    #[arg(long, conflicts_with_all = ["staged", "range", "history", "paths", "update_baseline"])]
    list_rules: bool,
}

/// One rule as `--list-rules` shows it.
#[derive(serde::Serialize)]
struct ListedRule<'a> {
    id: &'a str,
    description: &'a str,
    /// `built-in`, `.trunkwarden.toml` (added), `.trunkwarden.toml (replaces built-in)`.
    source: String,
    keywords: &'a [String],
}

/// `--list-rules`: what is active and where each rule came from; turned-off built-ins last.
fn list_rules(scanner: &Scanner, policy: &RepoPolicy, format: ScanFormat) -> anyhow::Result<()> {
    let builtin = Scanner::builtin_rules().map_err(|e| anyhow::anyhow!("{e}"))?;
    let is_builtin = |id: &str| builtin.iter().any(|r| r.id == id);
    let custom = |id: &str| policy.secrets.rule.iter().any(|r| r.id == id);
    let from_gitleaks = |id: &str| !custom(id) && !is_builtin(id);
    let rows: Vec<ListedRule<'_>> = scanner
        .rules()
        .iter()
        .map(|r| ListedRule {
            id: &r.id,
            description: &r.description,
            source: match (custom(&r.id), is_builtin(&r.id)) {
                (true, true) => format!("{POLICY_FILE} (replaces built-in)"),
                (true, false) => POLICY_FILE.to_owned(),
                _ if from_gitleaks(&r.id) => ".gitleaks.toml".to_owned(),
                _ => "built-in".to_owned(),
            },
            keywords: &r.keywords,
        })
        .collect();
    let out = match format {
        ScanFormat::Json | ScanFormat::Sarif => {
            let off = &policy.secrets.disable;
            serde_json::to_string_pretty(&serde_json::json!({ "rules": rows, "disabled": off }))?
                + "\n"
        }
        ScanFormat::Text => {
            let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(2);
            let mut out = String::new();
            for r in &rows {
                out.push_str(&format!(
                    "{:<width$}  {:<10}  {}\n",
                    r.id, r.source, r.description
                ));
            }
            for id in &policy.secrets.disable {
                out.push_str(&format!(
                    "{id:<width$}  off         turned off by {POLICY_FILE} [secrets] disable\n"
                ));
            }
            out.push_str(&format!("{} rules in force\n", rows.len()));
            out
        }
    };
    emit(&out)
}

/// Scans and reports; exit 1 when anything is found.
pub fn run(args: ScanArgs) -> anyhow::Result<Outcome> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let root = find_repo_root(&cwd);
    let policy = match &root {
        Some(r) => RepoPolicy::load(r)?,
        None => RepoPolicy::default(),
    };
    let baseline_path = args.baseline.clone().or_else(|| {
        root.as_ref()
            .map(|r| r.join(&policy.secrets.baseline))
            .filter(|p| p.exists() || args.update_baseline)
    });
    let baseline_bytes = match &baseline_path {
        Some(p) if !args.no_baseline && !args.update_baseline => Some(
            std::fs::read(p)
                .with_context(|| format!("cannot read the baseline {}", p.display()))?,
        ),
        _ => None,
    };
    let origin = baseline_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    // A team coming from gitleaks keeps its .gitleaks.toml and .gitleaksignore.
    let gl = root
        .as_deref()
        .map(trunkwarden::secrets::repo::Gitleaks::in_dir)
        .unwrap_or_default();
    let t = trunkwarden::secrets::repo::tuned(&policy.secrets, &gl)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for n in &t.notes {
        eprintln!("trunkwarden: .gitleaks.toml: {n}");
    }
    let mut scanner = Scanner::for_policy(
        &t.secrets,
        baseline_bytes.as_deref().map(|b| (b, origin.as_str())),
    )
    .map_err(|e| anyhow::anyhow!("{POLICY_FILE} [secrets]: {e}"))?;
    scanner.ignore_places(t.ignored);
    if let Some(max) = args.max_file_size {
        scanner = scanner.with_max_file_size(max);
    }
    if args.list_rules {
        list_rules(&scanner, &policy, args.format)?;
        return Ok(Outcome::Clean);
    }
    let git_source = args.staged || args.range.is_some() || args.history;
    let mut findings = if git_source {
        scan_git(&args, &scanner, &cwd)?
    } else {
        scan_paths(&args, &scanner)?
    };
    findings.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    if args.update_baseline {
        let Some(path) = baseline_path else {
            anyhow::bail!("--update-baseline needs a repository or --baseline FILE");
        };
        std::fs::write(&path, Baseline::of(&findings).to_json())
            .with_context(|| format!("cannot write the baseline {}", path.display()))?;
        eprintln!(
            "trunkwarden: {} finding{} accepted in {}",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" },
            path.display()
        );
        return Ok(Outcome::Clean);
    }
    report(&args, &scanner, &findings)?;
    Ok(if findings.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Violation
    })
}

/// `--staged`, `--range` and `--history`: the repository around the current directory.
fn scan_git(
    args: &ScanArgs,
    scanner: &Scanner,
    cwd: &std::path::Path,
) -> anyhow::Result<Vec<Finding>> {
    let repo = git2::Repository::discover(cwd)
        .map_err(|e| anyhow::anyhow!("not in a git repository: {}", e.message()))?;
    Ok(if args.staged {
        history::staged(&repo, scanner)?
    } else if let Some(spec) = &args.range {
        history::range(&repo, scanner, spec)?
    } else {
        history::history(repo.path(), scanner)?
    })
}

/// Files, directories (respecting .gitignore) and standard input.
fn scan_paths(args: &ScanArgs, scanner: &Scanner) -> anyhow::Result<Vec<Finding>> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let findings = Mutex::new(Vec::<Finding>::new());
    let skipped = Mutex::new(Vec::<String>::new());
    let mut files = Vec::new();
    for p in &paths {
        if p.as_os_str() == "-" {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read standard input")?;
            findings
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .extend(scanner.scan("-", &buf));
        } else if !p.exists() {
            anyhow::bail!("{}: no such file or directory", p.display());
        } else {
            files.push(p.clone());
        }
    }
    if let Some((first, rest)) = files.split_first() {
        let mut walk = ignore::WalkBuilder::new(first);
        for p in rest {
            walk.add(p);
        }
        walk.hidden(false)
            .git_ignore(!args.no_ignore)
            .git_exclude(!args.no_ignore)
            .ignore(!args.no_ignore)
            .parents(!args.no_ignore)
            .filter_entry(|e| e.file_name() != ".git");
        walk.build_parallel().run(|| {
            Box::new(|entry| {
                let Ok(entry) = entry else {
                    return ignore::WalkState::Continue;
                };
                if !entry.file_type().is_some_and(|t| t.is_file()) {
                    return ignore::WalkState::Continue;
                }
                let path = entry.path();
                let label = normal_path(&path.display().to_string()).to_owned();
                let too_big = entry
                    .metadata()
                    .map(|m| m.len() > scanner.max_file_size())
                    .unwrap_or(false);
                if too_big {
                    if let Ok(mut s) = skipped.lock() {
                        s.push(format!(
                            "{label}: larger than {} bytes",
                            scanner.max_file_size()
                        ));
                    }
                    return ignore::WalkState::Continue;
                }
                match std::fs::read(path) {
                    Ok(bytes) if Scanner::is_binary(&bytes) => {}
                    Ok(bytes) => {
                        let found = scanner.scan(&label, &bytes);
                        if !found.is_empty()
                            && let Ok(mut f) = findings.lock()
                        {
                            f.extend(found);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut s) = skipped.lock() {
                            s.push(format!("{label}: {e}"));
                        }
                    }
                }
                ignore::WalkState::Continue
            })
        });
    }
    let findings = findings
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    for s in skipped
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
    {
        eprintln!("trunkwarden: skipped {s}");
    }
    Ok(findings)
}

fn report(args: &ScanArgs, scanner: &Scanner, findings: &[Finding]) -> anyhow::Result<()> {
    emit(&match args.format {
        ScanFormat::Text => {
            let mut out = report::text(findings);
            if !findings.is_empty() {
                out.push_str(&format!(
                    "{} secret{} found; remove {} from history, rotate {}, or mark a false positive with `trunkwarden:allow` on its line, an allowlist in {POLICY_FILE} or `trunkwarden scan --update-baseline`\n",
                    findings.len(),
                    if findings.len() == 1 { "" } else { "s" },
                    if findings.len() == 1 { "it" } else { "them" },
                    if findings.len() == 1 { "it" } else { "them" },
                ));
            }
            out
        }
        ScanFormat::Json => report::json(findings),
        ScanFormat::Sarif => report::sarif(findings, scanner.rules()),
    })?;
    Ok(())
}
