//! Comment commands: `@trunkwarden <command> [args]`, one per line, read from the comment as
//! Markdown so that code, quotes, links, images, HTML and headings never trigger anything.
//!
//! Each command lives in a file of its own — its declaration (name, arguments, who may run it,
//! its help line), its parser, and a pure [`plan`] from the facts the engine gathered to what
//! it does (a reply, row changes, ledger updates) — with its tests. This file holds what they
//! share: reading a comment, the table of declarations that drives parsing, the permission
//! check and `help`, and the plan's vocabulary.

mod block;
mod claim;
mod estimate;
mod help;
mod merge;
mod recheck;
mod status;
mod unblock;
mod unclaim;
mod used;

use std::fmt;

use pulldown_cmark::{Event as Md, Options, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};

use crate::forge::{Permission, PullRequest};
use crate::tasks::{Task, Tokens};

pub use crate::config::DEFAULT_PREFIX;

/// One command's declaration.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    /// Argument synopsis for help and errors; empty for none.
    pub args: &'static str,
    /// Whether running it needs write access to the repository.
    pub write: bool,
    pub help: &'static str,
    /// Reads the words after the name.
    parse: fn(&Spec, &[&str]) -> Result<Command, Problem>,
}

/// Every command, in help order.
pub const COMMANDS: &[Spec] = &[
    help::SPEC,
    status::SPEC,
    claim::SPEC,
    unclaim::SPEC,
    block::SPEC,
    unblock::SPEC,
    estimate::SPEC,
    used::SPEC,
    merge::SPEC,
    recheck::SPEC,
];

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Status,
    Claim(String),
    Unclaim,
    Block(String),
    Unblock,
    Estimate(Tokens),
    Used(Tokens),
    Merge,
    MergeCancel,
    Recheck,
}

impl Command {
    /// The declaration it comes from.
    pub fn spec(&self) -> &'static Spec {
        let s = match self {
            Command::Help => &help::SPEC,
            Command::Status => &status::SPEC,
            Command::Claim(_) => &claim::SPEC,
            Command::Unclaim => &unclaim::SPEC,
            Command::Block(_) => &block::SPEC,
            Command::Unblock => &unblock::SPEC,
            Command::Estimate(_) => &estimate::SPEC,
            Command::Used(_) => &used::SPEC,
            Command::Merge | Command::MergeCancel => &merge::SPEC,
            Command::Recheck => &recheck::SPEC,
        };
        COMMANDS.iter().find(|c| c.name == s.name).unwrap_or(s)
    }
}

/// Why a command line could not be used; the reply names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Unknown {
        word: String,
        suggestion: Option<&'static str>,
    },
    MissingArgument {
        command: &'static str,
        args: &'static str,
    },
    BadArgument {
        command: &'static str,
        message: String,
    },
    ExtraArgument {
        command: &'static str,
        extra: String,
    },
    NoCommand,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unknown {
                word,
                suggestion: Some(s),
            } => {
                write!(f, "unknown command `{word}` — did you mean `{s}`?")
            }
            Problem::Unknown {
                word,
                suggestion: None,
            } => {
                write!(f, "unknown command `{word}`; `help` lists the commands")
            }
            Problem::MissingArgument { command, args } => {
                write!(f, "`{command}` needs {args}")
            }
            Problem::BadArgument { command, message } => write!(f, "`{command}`: {message}"),
            Problem::ExtraArgument { command, extra } => {
                write!(f, "`{command}` takes no `{extra}`")
            }
            Problem::NoCommand => {
                write!(f, "a mention without a command; `help` lists the commands")
            }
        }
    }
}

/// One command line found in a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The line as written after the prefix, for replies and for telling edits apart.
    pub text: String,
    pub parsed: Result<Command, Problem>,
}

/// The prose lines of a Markdown comment: paragraph and list text, with code, quotes, links,
/// images, HTML and headings left out (inline code and links become a placeholder, so a line
/// that starts with one does not start with the mention).
pub fn prose_lines(markdown: &str) -> Vec<String> {
    let mut lines = vec![String::new()];
    let mut hidden = 0usize;
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    for ev in Parser::new_ext(markdown, opts) {
        match ev {
            Md::Start(
                Tag::BlockQuote(_)
                | Tag::CodeBlock(_)
                | Tag::Heading { .. }
                | Tag::HtmlBlock
                | Tag::Table(_),
            ) => {
                hidden += 1;
            }
            Md::End(
                TagEnd::BlockQuote(_)
                | TagEnd::CodeBlock
                | TagEnd::Heading(_)
                | TagEnd::HtmlBlock
                | TagEnd::Table,
            ) => {
                hidden = hidden.saturating_sub(1);
                lines.push(String::new());
            }
            Md::Start(Tag::Link { .. } | Tag::Image { .. }) => {
                if hidden == 0
                    && let Some(l) = lines.last_mut()
                {
                    l.push('\u{1}');
                }
                hidden += 1;
            }
            Md::End(TagEnd::Link | TagEnd::Image) => hidden = hidden.saturating_sub(1),
            Md::Text(t) if hidden == 0 => {
                if let Some(l) = lines.last_mut() {
                    l.push_str(&t);
                }
            }
            Md::Code(_) | Md::InlineHtml(_) | Md::Html(_) if hidden == 0 => {
                if let Some(l) = lines.last_mut() {
                    l.push('\u{1}');
                }
            }
            Md::SoftBreak | Md::HardBreak | Md::End(TagEnd::Paragraph | TagEnd::Item) => {
                lines.push(String::new())
            }
            _ => {}
        }
    }
    lines.retain(|l| !l.trim().is_empty());
    lines
}

/// Finds the command lines of a comment: lines that start with `prefix` (case-insensitive),
/// each parsed or with the problem it has. At most `limit` lines are returned.
pub fn find(markdown: &str, prefix: &str) -> Vec<Found> {
    const LIMIT: usize = 20;
    let mut out = Vec::new();
    for line in prose_lines(markdown) {
        let line = line.trim();
        let Some(head) = line.get(..prefix.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(prefix) {
            continue;
        }
        let rest = &line[prefix.len()..];
        // `@trunkwarden-bot` or `@trunkwardens` are other accounts.
        if rest
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
        {
            continue;
        }
        let rest = rest.trim_start_matches([':', ',']).trim();
        out.push(Found {
            text: rest.to_owned(),
            parsed: parse(rest),
        });
        if out.len() == LIMIT {
            break;
        }
    }
    out
}

/// The commands an edited comment newly gained: lines not in the previous text.
pub fn gained(current: &str, previous: Option<&str>, prefix: &str) -> Vec<Found> {
    let before: Vec<String> = previous
        .map(|p| find(p, prefix))
        .unwrap_or_default()
        .into_iter()
        .map(|f| f.text)
        .collect();
    find(current, prefix)
        .into_iter()
        .filter(|f| !before.contains(&f.text))
        .collect()
}

/// Parses one command line (without the prefix).
pub fn parse(line: &str) -> Result<Command, Problem> {
    let mut words = line.split_whitespace();
    let Some(word) = words.next() else {
        return Err(Problem::NoCommand);
    };
    let name = word.to_ascii_lowercase();
    let args: Vec<&str> = words.collect();
    let spec = COMMANDS
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| Problem::Unknown {
            word: word.chars().take(40).collect(),
            suggestion: suggest(&name),
        })?;
    (spec.parse)(spec, &args)
}

/// For a command that takes no arguments.
fn no_args(spec: &Spec, args: &[&str], c: Command) -> Result<Command, Problem> {
    match args.first() {
        None => Ok(c),
        Some(extra) => Err(Problem::ExtraArgument {
            command: spec.name,
            extra: extra.chars().take(40).collect(),
        }),
    }
}

/// For a command that takes exactly one argument.
fn one_arg<'a>(spec: &Spec, args: &[&'a str]) -> Result<&'a str, Problem> {
    match args {
        [] => Err(Problem::MissingArgument {
            command: spec.name,
            args: spec.args,
        }),
        [one] => Ok(one),
        [_, extra, ..] => Err(Problem::ExtraArgument {
            command: spec.name,
            extra: extra.chars().take(40).collect(),
        }),
    }
}

/// The closest command name, if one is close enough to be a typo.
fn suggest(word: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .map(|s| (strsim::damerau_levenshtein(word, s.name), s.name))
        .filter(|(d, name)| *d <= 2 && *d < name.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// The `help` reply, generated from the declarations.
pub fn help(prefix: &str) -> String {
    help::text(prefix)
}

/// A ledger update a command makes besides the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Link a pull request to a task (an empty task: explicitly unlinked).
    Claim { pr: u64, task: String },
    /// Remember the status a task had before it was blocked.
    Blocked { task: String, previous: String },
    /// Merge once the head is green.
    Merge { pr: u64, head: String, by: String },
    /// Withdraw a pending merge.
    CancelMerge { pr: u64 },
}

/// Cells to set on one task's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCells {
    pub task: String,
    pub cells: Vec<(String, String)>,
}

/// What one command line does, decided before any of it is done. It is recorded as it is and
/// applied (and answered) afterwards, so a crash in between completes it rather than redoing
/// or dropping it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub reply: String,
    pub rows: Vec<RowCells>,
    /// An entry for the learnings file.
    pub learning: Option<serde_json::Value>,
    /// The commit message, when rows change.
    pub message: String,
    pub ops: Vec<Op>,
    /// Rerun the bot's checks on the head.
    pub recheck: bool,
}

impl Plan {
    /// A plan that only answers.
    pub fn reply(text: impl Into<String>) -> Plan {
        Plan {
            reply: text.into(),
            ..Plan::default()
        }
    }

    /// A plan that sets cells of one row, in one commit.
    fn row(
        ctx: &Context<'_>,
        reply: String,
        task: &str,
        cells: &[(&str, String)],
        message: String,
    ) -> Plan {
        Plan {
            reply,
            rows: vec![RowCells {
                task: task.to_owned(),
                // Only the columns the table has.
                cells: cells
                    .iter()
                    .filter(|(k, _)| ctx.columns.iter().any(|c| c == k))
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
            }],
            message,
            ..Plan::default()
        }
    }
}

/// What the engine knows when a command is planned. Facts only one command needs are filled
/// for that command alone.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The pull request commented on (`None` on an issue).
    pub pr: Option<&'a PullRequest>,
    /// Who asked.
    pub user: &'a str,
    /// Their permission, read for commands that need write access.
    pub permission: Option<Permission>,
    /// The task the pull request works on.
    pub linked: Option<&'a Task>,
    pub tasks: &'a [Task],
    pub tasks_path: &'a str,
    pub columns: &'a [String],
    pub learnings_path: &'a str,
    pub trunk: &'a str,
    pub prefix: &'a str,
    /// RFC 3339.
    pub now: &'a str,
    /// `unblock`: the status the task had before it was blocked.
    pub blocked_before: Option<&'a str>,
    /// `merge cancel`: whether a merge is pending.
    pub merge_pending: bool,
    /// `status`: CI on the head, as said, and whether it is green.
    pub head_ci: Option<(&'a str, bool)>,
}

impl Context<'_> {
    fn has_column(&self, c: &str) -> bool {
        self.columns.iter().any(|x| x == c)
    }
}

/// What a command line does: the permission it needs, then the command's own plan.
pub fn plan(cmd: &Command, ctx: &Context<'_>) -> Plan {
    let spec = cmd.spec();
    if spec.write
        && let Some(p) = ctx.permission
        && p < Permission::Write
    {
        let has = format!("{p:?}").to_ascii_lowercase();
        return Plan::reply(format!(
            "`{}` needs write access; @{} has {has}",
            spec.name, ctx.user
        ));
    }
    if *cmd == Command::Help {
        return help::plan(ctx);
    }
    let Some(pr) = ctx.pr else {
        return Plan::reply("commands other than `help` work on pull requests");
    };
    let need_task = || Plan::reply("this pull request is linked to no task; `claim ID` links it");
    match (cmd, ctx.linked) {
        (Command::Help, _) => help::plan(ctx),
        (Command::Status, _) => status::plan(ctx, pr),
        (Command::Claim(id), _) => claim::plan(ctx, pr, id),
        (Command::Merge, _) => merge::plan(ctx, pr),
        (Command::MergeCancel, _) => merge::cancel(ctx, pr),
        (Command::Recheck, _) => recheck::plan(pr),
        (_, None) => need_task(),
        (Command::Unclaim, Some(t)) => unclaim::plan(ctx, pr, t),
        (Command::Block(reason), Some(t)) => block::plan(ctx, t, reason),
        (Command::Unblock, Some(t)) => unblock::plan(ctx, pr, t),
        (Command::Estimate(n), Some(t)) => estimate::plan(ctx, t, *n),
        (Command::Used(n), Some(t)) => used::plan(ctx, t, *n),
    }
}

/// Shared by the command files' tests: a table, a pull request and a context over them.
#[cfg(test)]
pub(crate) mod testing {
    use super::Context;
    use crate::forge::{PrState, PullRequest, User};
    use crate::tasks::Task;

    pub const TABLE: &str = "# Tasks\n\n| id | status | description | depends_on | blocks | branch | agent | started_at | estimate | used | notes |\n|---|---|---|---|---|---|---|---|---|---|---|\n| T-1 | not-started | a | | T-2 | | | | 8K | | |\n| T-2 | not-started | b | T-1 | | | | | | | |\n| T-3 | blocked | c | | | | | | | | blocked: vendor (@bob) |\n";

    pub fn tasks(text: &str) -> (Vec<Task>, Vec<String>) {
        let table = crate::tasks::TaskTable::parse(text).unwrap();
        (crate::tasks::read_tasks(&table).0, table.columns().to_vec())
    }

    pub fn pr() -> PullRequest {
        PullRequest {
            number: 9,
            state: PrState::Open,
            title: "Miscellaneous".into(),
            body: String::new(),
            author: User {
                id: 2,
                login: "alice".into(),
            },
            head_ref: "misc".into(),
            head_sha: "a".repeat(40),
            base_ref: "main".into(),
            base_sha: None,
            merge_commit_sha: None,
            labels: vec![],
        }
    }

    pub fn ctx<'a>(
        tasks: &'a [Task],
        columns: &'a [String],
        pr: &'a PullRequest,
        linked: Option<&'a Task>,
    ) -> Context<'a> {
        Context {
            pr: Some(pr),
            user: "alice",
            permission: None,
            linked,
            tasks,
            tasks_path: "docs/TASKS.md",
            columns,
            learnings_path: "docs/tasks/orchestrator-learnings.json",
            trunk: "main",
            prefix: "@trunkwarden",
            now: "2026-12-07T06:00:00Z",
            blocked_before: None,
            merge_pending: false,
            head_ci: None,
        }
    }

    pub fn cell<'a>(p: &'a super::Plan, k: &str) -> Option<&'a str> {
        p.rows
            .first()?
            .cells
            .iter()
            .find(|(c, _)| c == k)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmds(md: &str) -> Vec<Result<Command, Problem>> {
        find(md, DEFAULT_PREFIX)
            .into_iter()
            .map(|f| f.parsed)
            .collect()
    }

    #[test]
    fn each_command_parses() {
        let md = "@trunkwarden help\n\n@trunkwarden status\n\n@TrunkWarden claim MS-SEC-001\n\n@trunkwarden unclaim\n\n@trunkwarden block waiting on  the vendor\n\n@trunkwarden unblock\n\n@trunkwarden estimate 8K\n\n@trunkwarden used 12.5K\n\n@trunkwarden merge\n\n@trunkwarden merge cancel\n\n@trunkwarden: recheck\n";
        assert_eq!(
            cmds(md),
            [
                Ok(Command::Help),
                Ok(Command::Status),
                Ok(Command::Claim("MS-SEC-001".into())),
                Ok(Command::Unclaim),
                Ok(Command::Block("waiting on the vendor".into())),
                Ok(Command::Unblock),
                Ok(Command::Estimate(Tokens(8000))),
                Ok(Command::Used(Tokens(12500))),
                Ok(Command::Merge),
                Ok(Command::MergeCancel),
                Ok(Command::Recheck),
            ]
        );
    }

    #[test]
    fn each_problem_is_named() {
        let one = |s: &str| parse(s).unwrap_err().to_string();
        assert_eq!(
            one("stauts"),
            "unknown command `stauts` — did you mean `status`?"
        );
        assert_eq!(
            one("deploy"),
            "unknown command `deploy`; `help` lists the commands"
        );
        assert_eq!(one("claim"), "`claim` needs ID");
        assert_eq!(one("claim not an id"), "`claim` takes no `an`");
        assert!(one("claim x").contains("is not a task id"));
        assert_eq!(one("block"), "`block` needs REASON…");
        assert!(one("estimate lots").starts_with("`estimate`: "));
        assert_eq!(one("help me"), "`help` takes no `me`");
        assert_eq!(one("merge now"), "`merge` takes no `now`");
        assert_eq!(
            one(""),
            "a mention without a command; `help` lists the commands"
        );
    }

    #[test]
    fn markdown_that_is_not_prose_never_triggers() {
        let md = "```\n@trunkwarden claim A-1\n```\n\n    @trunkwarden claim A-2\n\n`@trunkwarden claim A-3`\n\n> @trunkwarden claim A-4\n\n[@trunkwarden claim A-5](https://x)\n\n![@trunkwarden claim A-6](i.png)\n\n<div>\n@trunkwarden claim A-7\n</div>\n\n# @trunkwarden claim A-8\n\n<!-- @trunkwarden claim A-9 -->\n\nsay @trunkwarden claim A-10 mid-line\n\n@trunkwarden-bot claim A-11\n\n| a |\n|---|\n| @trunkwarden claim A-12 |\n";
        assert_eq!(cmds(md), []);
        // But a list item or a plain paragraph does.
        assert_eq!(
            cmds("- @trunkwarden status\n\nthanks!\n@trunkwarden help"),
            [Ok(Command::Status), Ok(Command::Help)]
        );
    }

    #[test]
    fn an_edit_runs_only_what_it_added() {
        let before = "@trunkwarden claim A-1";
        let after = "@trunkwarden claim A-1\n\n@trunkwarden status";
        let g: Vec<_> = gained(after, Some(before), DEFAULT_PREFIX)
            .into_iter()
            .map(|f| f.parsed)
            .collect();
        assert_eq!(g, [Ok(Command::Status)]);
        assert!(gained(before, Some(before), DEFAULT_PREFIX).is_empty());
    }

    #[test]
    fn the_prefix_is_configurable_and_help_lists_every_command() {
        assert_eq!(find("/bot status", "/bot")[0].parsed, Ok(Command::Status));
        let h = help("@trunkwarden");
        for s in COMMANDS {
            assert!(h.contains(&format!("`{}", s.name)), "{}", s.name);
        }
    }
}
