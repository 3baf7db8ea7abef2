//! `trunkwarden scan`: secrets in files, directories (respecting .gitignore) or stdin.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use clap::Args;

use super::emit;
use crate::Outcome;
use trunkwarden::secrets::{Finding, Scanner, report};

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
    /// Output format.
    #[arg(long, value_enum, default_value_t = ScanFormat::Text)]
    format: ScanFormat,
    /// Skip files larger than this many bytes.
    #[arg(long, default_value_t = 10 << 20)]
    max_file_size: u64,
    /// Also scan files that .gitignore and .ignore exclude.
    #[arg(long)]
    no_ignore: bool,
}

/// Scans and reports; exit 1 when anything is found.
pub fn run(args: ScanArgs) -> anyhow::Result<Outcome> {
    let scanner = Scanner::builtin()?.with_max_file_size(args.max_file_size);
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths
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
                let label = path.display().to_string();
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
    let mut findings = findings
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    findings.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    for s in skipped
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
    {
        eprintln!("trunkwarden: skipped {s}");
    }
    emit(&match args.format {
        ScanFormat::Text => {
            let mut out = report::text(&findings);
            if !findings.is_empty() {
                out.push_str(&format!(
                    "{} secret{} found; remove {} from history, rotate {}, or mark a false positive with `trunkwarden:allow` on its line\n",
                    findings.len(),
                    if findings.len() == 1 { "" } else { "s" },
                    if findings.len() == 1 { "it" } else { "them" },
                    if findings.len() == 1 { "it" } else { "them" },
                ));
            }
            out
        }
        ScanFormat::Json => report::json(&findings),
        ScanFormat::Sarif => report::sarif(&findings, scanner.rules()),
    })?;
    Ok(if findings.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Violation
    })
}
