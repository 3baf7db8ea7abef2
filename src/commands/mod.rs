//! Comment commands: `@trunkwarden <command> [args]`, one per line, read from the comment as
//! Markdown so that code, quotes, links, images, HTML and headings never trigger anything.
//!
//! One table of declarations drives the parser, the permission check and `help`.

use std::fmt;

use pulldown_cmark::{Event as Md, Options, Parser, Tag, TagEnd};

use crate::tasks::Tokens;

/// The default mention that starts a command.
pub const DEFAULT_PREFIX: &str = "@trunkwarden";

/// One command's declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub name: &'static str,
    /// Argument synopsis for help and errors; empty for none.
    pub args: &'static str,
    /// Whether running it needs write access to the repository.
    pub write: bool,
    pub help: &'static str,
}

/// Every command, in help order.
pub const COMMANDS: &[Spec] = &[
    Spec {
        name: "help",
        args: "",
        write: false,
        help: "this table",
    },
    Spec {
        name: "status",
        args: "",
        write: false,
        help: "the linked task's row, CI on the current head, what is missing before done, what may start next",
    },
    Spec {
        name: "claim",
        args: "ID",
        write: true,
        help: "link this pull request to task ID (not-started or blocked, dependencies done): in-progress, agent, started_at, branch",
    },
    Spec {
        name: "unclaim",
        args: "",
        write: true,
        help: "undo the claim: the task goes back to not-started",
    },
    Spec {
        name: "block",
        args: "REASON…",
        write: true,
        help: "set the task blocked, with the reason in notes",
    },
    Spec {
        name: "unblock",
        args: "",
        write: true,
        help: "set the task back to what it was before block",
    },
    Spec {
        name: "estimate",
        args: "TOKENS",
        write: true,
        help: "set estimate (e.g. 8K)",
    },
    Spec {
        name: "used",
        args: "TOKENS",
        write: true,
        help: "set used (e.g. 12.5K); reports the variance and records a learning beyond ±50%",
    },
    Spec {
        name: "merge",
        args: "[cancel]",
        write: true,
        help: "squash-merge into the trunk once CI on the current head is green (cancelled by a new push); `merge cancel` withdraws it",
    },
    Spec {
        name: "recheck",
        args: "",
        write: true,
        help: "rerun trunkwarden/policy and trunkwarden/secrets on the current head",
    },
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
        let name = match self {
            Command::Help => "help",
            Command::Status => "status",
            Command::Claim(_) => "claim",
            Command::Unclaim => "unclaim",
            Command::Block(_) => "block",
            Command::Unblock => "unblock",
            Command::Estimate(_) => "estimate",
            Command::Used(_) => "used",
            Command::Merge | Command::MergeCancel => "merge",
            Command::Recheck => "recheck",
        };
        COMMANDS
            .iter()
            .find(|s| s.name == name)
            .unwrap_or(&COMMANDS[0])
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
    let none = |c: Command| match args.first() {
        None => Ok(c),
        Some(extra) => Err(Problem::ExtraArgument {
            command: spec.name,
            extra: extra.chars().take(40).collect(),
        }),
    };
    let missing = || Problem::MissingArgument {
        command: spec.name,
        args: spec.args,
    };
    match spec.name {
        "help" => none(Command::Help),
        "status" => none(Command::Status),
        "unclaim" => none(Command::Unclaim),
        "unblock" => none(Command::Unblock),
        "recheck" => none(Command::Recheck),
        "claim" => {
            let id = args.first().ok_or_else(missing)?;
            if args.len() > 1 {
                return Err(Problem::ExtraArgument {
                    command: "claim",
                    extra: args[1].chars().take(40).collect(),
                });
            }
            if !crate::tasks::is_valid_id(id) {
                return Err(Problem::BadArgument {
                    command: "claim",
                    message: format!(
                        "`{}` is not a task id (like MS-SEC-001)",
                        id.chars().take(40).collect::<String>()
                    ),
                });
            }
            Ok(Command::Claim((*id).to_owned()))
        }
        "block" => {
            if args.is_empty() {
                return Err(missing());
            }
            Ok(Command::Block(args.join(" ").chars().take(200).collect()))
        }
        "estimate" | "used" => {
            let n = args.first().ok_or_else(missing)?;
            if args.len() > 1 {
                return Err(Problem::ExtraArgument {
                    command: spec.name,
                    extra: args[1].chars().take(40).collect(),
                });
            }
            let t: Tokens = n.parse().map_err(|e: String| Problem::BadArgument {
                command: spec.name,
                message: e,
            })?;
            Ok(if spec.name == "used" {
                Command::Used(t)
            } else {
                Command::Estimate(t)
            })
        }
        "merge" => match args.as_slice() {
            [] => Ok(Command::Merge),
            [c] if c.eq_ignore_ascii_case("cancel") => Ok(Command::MergeCancel),
            [other, ..] => Err(Problem::ExtraArgument {
                command: "merge",
                extra: other.chars().take(40).collect(),
            }),
        },
        _ => Err(Problem::Unknown {
            word: name,
            suggestion: None,
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
    let mut out = format!(
        "Commands, one per line, as `{prefix} <command>`:\n\n| command | who | what it does |\n|---|---|---|\n"
    );
    for s in COMMANDS {
        let synopsis = if s.args.is_empty() {
            s.name.to_owned()
        } else {
            format!("{} {}", s.name, s.args)
        };
        let who = if s.write { "write access" } else { "anyone" };
        out.push_str(&format!("| `{synopsis}` | {who} | {} |\n", s.help));
    }
    out.push_str(
        "\nName a task's issues with `Refs #N`: trunkwarden closes them once the pull request is \
         squash-merged and CI on the squash commit is green. A closing keyword (`Closes #N`, \
         `Fixes #N`) lets the forge close them at merge, before CI has run; trunkwarden/policy \
         fails on it, and an issue closed that way is reopened until green.\n",
    );
    out
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
