//! `trunkwarden tasks …`: lint, next, show, set and variance over a TASKS.md file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{Format, emit, json, write_atomically};
use crate::Outcome;
use trunkwarden::config::{RepoPolicy, find_repo_root};
use trunkwarden::tasks::{
    self, Diagnostic, Status, TableError, TaskTable, is_valid_id, parse_id_list, validate_cell,
};

/// Arguments shared by every `tasks` subcommand.
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// The task table; default: `tasks.path` of .trunkwarden.toml (docs/TASKS.md) at the
    /// repository root.
    #[arg(long, short, global = true, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(subcommand)]
    command: TasksCommand,
}

#[derive(Debug, Subcommand)]
enum TasksCommand {
    /// Check every protocol rule; exit 1 when the table breaks one.
    Lint {
        /// The task table (same as --file).
        #[arg(value_name = "FILE")]
        path: Option<PathBuf>,
        /// Rewrite `blocks` so it mirrors `depends_on`.
        #[arg(long)]
        fix: bool,
    },
    /// The tasks that may start now, what the others wait on, or the deadlock and why.
    Next,
    /// Print one task's row.
    Show {
        /// Task id, e.g. MS-SEC-001.
        id: String,
    },
    /// Change cells of one task (validated; only that row's line changes).
    Set {
        /// Task id, e.g. MS-SEC-001.
        id: String,
        /// `column=value` pairs; an empty value clears the cell; `now` fills a timestamp.
        #[arg(value_name = "KEY=VALUE", required = true)]
        assignments: Vec<String>,
    },
    /// Variance of `used` against `estimate`, flagged beyond ±50% and ±100%.
    Variance,
    /// The task board as one self-contained HTML page, to publish without running the server.
    Board {
        /// Directory to write `index.html` into (created if missing); default: stdout.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The repository's web address (https://github.com/acme/app), for links to issues,
        /// pull requests and branches.
        #[arg(long, value_name = "URL")]
        web_url: Option<String>,
        /// The forge whose link paths the web address follows.
        #[arg(long, value_enum, default_value_t = trunkwarden::event::ForgeKind::Github)]
        forge: trunkwarden::event::ForgeKind,
        /// The learnings file; default: `tasks.learnings` of .trunkwarden.toml, if present.
        #[arg(long, value_name = "FILE")]
        learnings: Option<PathBuf>,
    },
}

/// Runs a `tasks` subcommand.
pub fn run(args: TasksArgs) -> anyhow::Result<Outcome> {
    let format = args.format;
    match args.command {
        TasksCommand::Lint { path, fix } => lint(&resolve(path.or(args.file))?, fix, format),
        TasksCommand::Next => next(&resolve(args.file)?, format),
        TasksCommand::Show { id } => show(&resolve(args.file)?, &id, format),
        TasksCommand::Set { id, assignments } => {
            set(&resolve(args.file)?, &id, &assignments, format)
        }
        TasksCommand::Variance => variance(&resolve(args.file)?, format),
        TasksCommand::Board {
            out,
            web_url,
            forge,
            learnings,
        } => board(
            &resolve(args.file)?,
            out.as_deref(),
            web_url.as_deref(),
            forge,
            learnings,
        ),
    }
}

/// Writes the board page for a local table.
fn board(
    path: &Path,
    out: Option<&Path>,
    web_url: Option<&str>,
    forge: trunkwarden::event::ForgeKind,
    learnings: Option<PathBuf>,
) -> anyhow::Result<Outcome> {
    let table = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let learnings = learnings.or_else(|| {
        let cwd = std::env::current_dir().ok()?;
        let root = find_repo_root(&cwd)?;
        Some(root.join(RepoPolicy::load(&root).ok()?.tasks.learnings))
    });
    let learnings = learnings.and_then(|p| std::fs::read(p).ok());
    let links = match web_url {
        Some(u) => trunkwarden::ui::Links::from_clone_url(forge, u),
        None => trunkwarden::ui::Links::default(),
    };
    let title = web_url
        .map(|u| {
            let parts: Vec<&str> = u.trim_end_matches('/').rsplit('/').take(2).collect();
            parts.into_iter().rev().collect::<Vec<_>>().join("/")
        })
        .unwrap_or_else(|| path.display().to_string());
    let input = trunkwarden::ui::BoardInput {
        repo: &title,
        links: &links,
        table: &table,
        learnings: learnings.as_deref(),
        waits: &[],
        merged: &[],
        required: &[],
        now_ms: trunkwarden::queue::now_ms(),
        status: None,
        page: 0,
        href: None,
    };
    let html = trunkwarden::ui::render_board_file(&input)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    match out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let file = dir.join("index.html");
            write_atomically(&file, &html)?;
            emit(&format!("wrote {}\n", file.display()))?;
        }
        None => emit(&html)?,
    }
    Ok(Outcome::Clean)
}

/// The file to work on: the one given, else the policy's path from the repository root.
fn resolve(file: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(f) = file {
        return Ok(f);
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let Some(root) = find_repo_root(&cwd) else {
        bail!("not inside a git repository; pass --file PATH to name the task table");
    };
    let policy = RepoPolicy::load(&root)?;
    Ok(root.join(policy.tasks.path))
}

fn read(path: &Path) -> anyhow::Result<Result<TaskTable, TableError>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(TaskTable::parse_bytes(&bytes))
}

/// Reads a table for a command that cannot work without one: a broken table is an error.
fn read_table(path: &Path) -> anyhow::Result<TaskTable> {
    read(path)?.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn render_diagnostics(path: &Path, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let _ = writeln!(out, "{}: {d}", path.display());
    }
    out
}

#[derive(Serialize)]
struct LintReport<'a> {
    file: String,
    tasks: usize,
    fixed: Vec<String>,
    diagnostics: &'a [Diagnostic],
}

fn lint(path: &Path, fix: bool, format: Format) -> anyhow::Result<Outcome> {
    let mut table = match read(path)? {
        Ok(t) => t,
        Err(e) => {
            // An unreadable table is a finding of lint, not a failure of it.
            let line = match &e {
                TableError::NotUtf8 { line, .. }
                | TableError::MissingColumn { line, .. }
                | TableError::DuplicateColumn { line, .. } => *line,
                _ => 0,
            };
            let diag = Diagnostic {
                line,
                column: None,
                rule: "table",
                message: e.to_string(),
            };
            emit(&match format {
                Format::Text => format!("{}: {e}\n", path.display()),
                Format::Json => json(&LintReport {
                    file: path.display().to_string(),
                    tasks: 0,
                    fixed: Vec::new(),
                    diagnostics: &[diag],
                })?,
            })?;
            return Ok(Outcome::Violation);
        }
    };
    let (mut task_rows, mut diags) = tasks::lint(&table);
    let mut fixed = Vec::new();
    if fix {
        fixed = tasks::fix_blocks(&mut table, &task_rows)?;
        if !fixed.is_empty() {
            write_atomically(path, &table.to_string())?;
            (task_rows, diags) = tasks::lint(&table);
        }
    }
    let out = match format {
        Format::Json => json(&LintReport {
            file: path.display().to_string(),
            tasks: task_rows.len(),
            fixed,
            diagnostics: &diags,
        })?,
        Format::Text => {
            let mut out = String::new();
            if !fixed.is_empty() {
                let _ = writeln!(out, "fixed blocks of {}", fixed.join(", "));
            }
            out.push_str(&render_diagnostics(path, &diags));
            let _ = match diags.len() {
                0 => writeln!(
                    out,
                    "{}: {} tasks, no problems",
                    path.display(),
                    task_rows.len()
                ),
                n => writeln!(out, "{}: {n} problem{}", path.display(), plural(n)),
            };
            out
        }
    };
    emit(&out)?;
    Ok(if diags.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Violation
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The typed rows, or `None` after printing the cell-level problems that would make `next` and
/// `variance` guess.
fn readable_tasks(path: &Path) -> anyhow::Result<Option<Vec<tasks::Task>>> {
    let table = read_table(path)?;
    let (task_rows, diags) = tasks::read_tasks(&table);
    let bad: Vec<Diagnostic> = diags
        .into_iter()
        .filter(|d| d.rule == "cell-format")
        .collect();
    if bad.is_empty() {
        return Ok(Some(task_rows));
    }
    eprintln!(
        "{}fix these cells first (trunkwarden tasks lint)",
        render_diagnostics(path, &bad)
    );
    Ok(None)
}

fn next(path: &Path, format: Format) -> anyhow::Result<Outcome> {
    let Some(task_rows) = readable_tasks(path)? else {
        return Ok(Outcome::Violation);
    };
    let plan = tasks::plan(&task_rows);
    let out = match format {
        Format::Json => json(&plan)?,
        Format::Text => {
            let mut out = String::new();
            let describe = |id: &str| {
                task_rows
                    .iter()
                    .find(|t| t.id == id)
                    .map(|t| t.description.as_str())
                    .filter(|d| !d.is_empty())
                    .map_or(String::new(), |d| format!(" — {d}"))
            };
            if plan.open.is_empty() {
                out.push_str("all tasks are done\n");
            } else if plan.deadlock {
                let _ = writeln!(
                    out,
                    "deadlock: nothing may start and nothing is in progress, yet {} task{} {} open",
                    plan.open.len(),
                    plural(plan.open.len()),
                    if plan.open.len() == 1 { "is" } else { "are" }
                );
            } else if plan.ready.is_empty() {
                let _ = writeln!(
                    out,
                    "nothing may start now; in progress: {}",
                    plan.in_progress.join(", ")
                );
            }
            for id in &plan.ready {
                let _ = writeln!(out, "may start: {id}{}", describe(id));
            }
            for w in &plan.waiting {
                let by: Vec<String> = w
                    .blocked_by
                    .iter()
                    .map(|b| match (b.exists, b.status) {
                        (false, _) => format!("{} (not in the table)", b.id),
                        (true, Some(s)) => format!("{} ({s})", b.id),
                        (true, None) => format!("{} (unreadable status)", b.id),
                    })
                    .collect();
                let _ = writeln!(out, "{} is blocked by {}", w.id, by.join(", "));
            }
            if plan.deadlock {
                for t in task_rows.iter().filter(|t| {
                    plan.open.contains(&t.id) && !plan.waiting.iter().any(|w| w.id == t.id)
                }) {
                    let status = t.status.map_or("unknown", Status::as_str);
                    let _ = writeln!(out, "{} is {status}", t.id);
                }
            }
            out
        }
    };
    emit(&out)?;
    Ok(if plan.deadlock {
        Outcome::Violation
    } else {
        Outcome::Clean
    })
}

fn find_row(table: &TaskTable, path: &Path, id: &str) -> anyhow::Result<usize> {
    table
        .find(id)
        .with_context(|| format!("{}: no task with id `{id}`", path.display()))
}

fn show(path: &Path, id: &str, format: Format) -> anyhow::Result<Outcome> {
    let table = read_table(path)?;
    let row = find_row(&table, path, id)?;
    let cells: Vec<(&str, String)> = table
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), table.get(row, i).into_owned()))
        .collect();
    let out = match format {
        Format::Json => {
            let mut map = serde_json::Map::new();
            map.insert("line".into(), table.line_of(row).into());
            for (c, v) in &cells {
                map.insert((*c).to_owned(), v.clone().into());
            }
            json(&map)?
        }
        Format::Text => {
            let width = cells.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
            let mut out = String::new();
            for (c, v) in &cells {
                let line = format!("{c:<width$}  {v}");
                let _ = writeln!(out, "{}", line.trim_end());
            }
            out
        }
    };
    emit(&out)?;
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
struct Change {
    column: String,
    from: String,
    to: String,
}

fn set(path: &Path, id: &str, assignments: &[String], format: Format) -> anyhow::Result<Outcome> {
    let mut table = read_table(path)?;
    let row = find_row(&table, path, id)?;
    let (_, before) = tasks::lint(&table);

    let mut changes = Vec::new();
    for a in assignments {
        let Some((key, value)) = a.split_once('=') else {
            bail!("`{a}` is not KEY=VALUE");
        };
        let Some(col) = table.column(key) else {
            bail!(
                "{}: the table has no column `{}`; columns are: {}",
                path.display(),
                key.trim(),
                table.columns().join(", ")
            );
        };
        let column = table.columns()[col].clone();
        let value = value.trim();
        if column == "id" {
            bail!("renaming a task is not supported: other rows and branches refer to its id");
        }
        let value = if value == "now" && column.ends_with("_at") {
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
        } else {
            value.to_owned()
        };
        validate_cell(&column, &value).map_err(|m| anyhow::anyhow!("column `{column}`: {m}"))?;
        if column == "depends_on" || column == "blocks" {
            for other in parse_id_list(&value) {
                if other == id {
                    bail!("column `{column}`: a task cannot refer to itself");
                }
                if !is_valid_id(&other) || table.find(&other).is_none() {
                    bail!("column `{column}`: `{other}` is not a task in this table");
                }
            }
        }
        let from = table.get(row, col).into_owned();
        if table.set(row, &column, &value)? {
            changes.push(Change {
                column,
                from,
                to: value,
            });
        }
    }
    if !changes.is_empty() {
        write_atomically(path, &table.to_string())?;
    }
    let (_, after) = tasks::lint(&table);
    let introduced: Vec<Diagnostic> = after
        .into_iter()
        .filter(|d| {
            !before
                .iter()
                .any(|b| b.rule == d.rule && b.message == d.message)
        })
        .collect();
    if !introduced.is_empty() {
        eprint!(
            "warning: the table now breaks a rule:\n{}",
            render_diagnostics(path, &introduced)
        );
    }
    let out = match format {
        Format::Json => json(&changes)?,
        Format::Text if changes.is_empty() => format!("{id}: no change\n"),
        Format::Text => changes.iter().fold(String::new(), |mut s, c| {
            let _ = writeln!(s, "{id}: {} `{}` → `{}`", c.column, c.from, c.to);
            s
        }),
    };
    emit(&out)?;
    Ok(Outcome::Clean)
}

fn variance(path: &Path, format: Format) -> anyhow::Result<Outcome> {
    let Some(task_rows) = readable_tasks(path)? else {
        return Ok(Outcome::Violation);
    };
    let rows = tasks::variances(&task_rows);
    let out = match format {
        Format::Json => json(&rows)?,
        Format::Text => {
            let width = rows.iter().map(|v| v.id.len()).max().unwrap_or(2).max(2);
            let mut out = format!("{:<width$}  estimate      used  variance  level\n", "id");
            for v in &rows {
                let level = match v.level {
                    tasks::Level::Ok => "ok",
                    tasks::Level::Learning => "learning (beyond ±50%)",
                    tasks::Level::Critical => "critical (beyond ±100%)",
                };
                let _ = writeln!(
                    out,
                    "{:<width$}  {:>8}  {:>8}  {:>+7.1}%  {level}",
                    v.id,
                    v.estimate.to_string(),
                    v.used.to_string(),
                    v.variance * 100.0
                );
            }
            out
        }
    };
    emit(&out)?;
    Ok(Outcome::Clean)
}
