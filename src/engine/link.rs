//! Which task a pull request works on, and which issues it names — the ones the bot closes
//! after green, and the ones the forge would close by itself at merge time.

use std::sync::OnceLock;

use pulldown_cmark::{Event as Md, Options, Parser, Tag, TagEnd};
use regex::Regex;

use crate::forge::{ForgeKind, PullRequest};
use crate::policy::message::names_id;
use crate::tasks::{IssueRef, Task};

/// The task a pull request belongs to: its head branch is the task's `branch`; or its body has a
/// `Task: ID` line; or its branch, then its title, names the task id as a word.
pub fn task_for_pull<'a>(tasks: &'a [Task], pr: &PullRequest) -> Option<&'a Task> {
    if let Some(t) = tasks
        .iter()
        .find(|t| !t.branch.is_empty() && t.branch == pr.head_ref)
    {
        return Some(t);
    }
    for line in pr.body.lines() {
        let line = line.trim();
        if let Some(rest) = line.get(..5).filter(|h| h.eq_ignore_ascii_case("task:")) {
            let id = line[rest.len()..].trim();
            if let Some(t) = tasks.iter().find(|t| t.id.eq_ignore_ascii_case(id)) {
                return Some(t);
            }
        }
    }
    let named = |s: &str| tasks.iter().find(|t| names_id(s, &t.id));
    named(&pr.head_ref).or_else(|| named(&pr.title))
}

/// An issue a pull request names, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mention {
    pub issue: u64,
    /// Named with one of the forge's own closing keywords (`Closes #3`): the forge closes the
    /// issue at merge time, before CI on the trunk has run.
    pub forge_closes: bool,
}

/// The issues a task's completion closes: its `issue` column, and every issue the pull request
/// body names with `Refs #N` or with a closing keyword of the forge (whose intent is the same:
/// close it when the work is done — which the bot does after green).
pub fn issues_for(task: &Task, pr: &PullRequest, forge: ForgeKind) -> Vec<u64> {
    let mut out = Vec::new();
    if let Some(IssueRef::Forge(n)) = &task.issue {
        out.push(*n);
    }
    for m in mentions(&pr.body, forge) {
        if !out.contains(&m.issue) {
            out.push(m.issue);
        }
    }
    out
}

/// Every `Refs #N` and closing-keyword reference in Markdown `text`, in order, as `forge`
/// reads its closing keywords. Text in code spans and code blocks names nothing.
///
/// - GitHub: `close[sd]`, `fix(es|ed)`, `resolve[sd]`, any case, an optional colon, then one
///   reference; each further issue needs its own keyword.
/// - Gitea and Forgejo: the same words (their default `CLOSE_KEYWORDS`), directly before the
///   reference.
/// - GitLab (its default `issue_closing_pattern`): also `closing`, `fixing`, `resolving` and
///   `implement(s|ed|ing)`, optionally `issue(s)`, and lists: `Closes #1, #2 and #3`.
///
/// The bot's own, `Refs #N` (also `Ref`, `References`), takes lists on every forge.
pub fn mentions(text: &str, forge: ForgeKind) -> Vec<Mention> {
    let mut out: Vec<Mention> = Vec::new();
    let mut add = |issue: u64, forge_closes: bool| match out.iter_mut().find(|m| m.issue == issue) {
        Some(m) => m.forge_closes |= forge_closes,
        None => out.push(Mention {
            issue,
            forge_closes,
        }),
    };
    for chunk in prose(text) {
        for cap in ours().captures_iter(&chunk) {
            for n in numbers(&cap[1]) {
                add(n, false);
            }
        }
        let closing = match forge {
            ForgeKind::Gitlab => gitlab_closing(),
            ForgeKind::Github | ForgeKind::Gitea | ForgeKind::Forgejo => github_closing(),
        };
        for cap in closing.captures_iter(&chunk) {
            for n in numbers(&cap[1]) {
                add(n, true);
            }
        }
    }
    out
}

/// The issue numbers in a matched reference list (`#1, #2 and issue #3`).
fn numbers(list: &str) -> Vec<u64> {
    static NUM: OnceLock<Regex> = OnceLock::new();
    NUM.get_or_init(|| Regex::new(r"#(\d{1,18})").expect("number pattern"))
        .captures_iter(list)
        .filter_map(|c| c[1].parse().ok())
        .collect()
}

/// A list of references: `#1`, `#1, #2`, `#1 and #2`, `#1, #2, and #3`.
const LIST: &str = r"#\d{1,18}\b(?:(?:[ \t]*,[ \t]*(?:and[ \t]+)?|[ \t]+and[ \t]+)#\d{1,18}\b)*";

/// After a keyword: a colon, spaces, or both.
const GAP: &str = r"(?::[ \t]*|[ \t]+)";

fn ours() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(&format!(r"(?i)\b(?:refs|ref|references){GAP}({LIST})")).expect("refs pattern")
    })
}

fn github_closing() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(&format!(
            r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?){GAP}(#\d{{1,18}})\b"
        ))
        .expect("closing pattern")
    })
}

fn gitlab_closing() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let one = r"(?:issues?[ \t]+)?#\d{1,18}\b";
        Regex::new(&format!(
            r"(?i)\b(?:clos(?:e[sd]?|ing)|fix(?:e[sd]|ing)?|resolv(?:e[sd]?|ing)|implement(?:s|ed|ing)?){GAP}({one}(?:(?:[ \t]*,[ \t]*(?:and[ \t]+)?|[ \t]+and[ \t]+){one})*)"
        ))
        .expect("closing pattern")
    })
}

/// The text of a Markdown document outside code, one chunk per paragraph-like block, with
/// code spans as a break (a reference never continues across one).
fn prose(markdown: &str) -> Vec<String> {
    let mut chunks = vec![String::new()];
    let mut in_code = 0usize;
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    let brk = |chunks: &mut Vec<String>| {
        if chunks.last().is_some_and(|c| !c.is_empty()) {
            chunks.push(String::new());
        }
    };
    for ev in Parser::new_ext(markdown, opts) {
        match ev {
            Md::Start(Tag::CodeBlock(_)) => {
                in_code += 1;
                brk(&mut chunks);
            }
            Md::End(TagEnd::CodeBlock) => in_code = in_code.saturating_sub(1),
            Md::Text(t) if in_code == 0 => {
                if let Some(c) = chunks.last_mut() {
                    c.push_str(&t);
                }
            }
            Md::Code(_) => brk(&mut chunks),
            Md::SoftBreak | Md::HardBreak => {
                if let Some(c) = chunks.last_mut() {
                    c.push('\n');
                }
            }
            Md::End(_) => {
                if let Some(c) = chunks.last_mut()
                    && !c.is_empty()
                    && !c.ends_with(' ')
                {
                    c.push(' ');
                }
            }
            Md::Start(Tag::Paragraph | Tag::Item | Tag::Heading { .. } | Tag::TableCell) => {
                brk(&mut chunks)
            }
            _ => {}
        }
    }
    chunks.retain(|c| !c.trim().is_empty());
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::{PrState, User};

    fn pr(head: &str, title: &str, body: &str) -> PullRequest {
        PullRequest {
            number: 7,
            state: PrState::Open,
            title: title.into(),
            body: body.into(),
            author: User {
                id: 2,
                login: "alice".into(),
            },
            head_ref: head.into(),
            head_sha: "a".repeat(40),
            base_ref: "main".into(),
            base_sha: None,
            merge_commit_sha: None,
            labels: vec![],
        }
    }

    fn tasks() -> Vec<Task> {
        let text = "# Tasks\n\n| id | status | description | depends_on | blocks | branch | issue |\n|---|---|---|---|---|---|---|\n| MS-1 | not-started | a | | | agent/oidc | #5 |\n| MS-11 | not-started | b | | | | |\n| MS-2 | not-started | c | | | | TASKS:X-1 |\n";
        crate::tasks::read_tasks(&crate::tasks::TaskTable::parse(text).unwrap()).0
    }

    #[test]
    fn pulls_link_by_branch_body_branch_name_then_title() {
        let t = tasks();
        let id = |p: &PullRequest| task_for_pull(&t, p).map(|t| t.id.clone());
        assert_eq!(id(&pr("agent/oidc", "x", "")), Some("MS-1".into()));
        assert_eq!(
            id(&pr("x", "y", "Something\nTask: ms-11\n")),
            Some("MS-11".into())
        );
        assert_eq!(id(&pr("feat/ms-2-thing", "y", "")), Some("MS-2".into()));
        assert_eq!(
            id(&pr("feature", "fix(MS-11): y", "")),
            Some("MS-11".into())
        );
        assert_eq!(id(&pr("ms-111", "MS-1x", "Task: MS-9")), None);
        // A multi-byte character where `Task:` would end is not a panic.
        assert_eq!(id(&pr("x", "y", "Tasé: MS-1")), None);
    }

    #[test]
    fn issues_come_from_the_row_and_the_body() {
        let t = tasks();
        assert_eq!(
            issues_for(
                &t[0],
                &pr("a", "b", "Refs #3\nCloses: #9, refs #3"),
                ForgeKind::Github
            ),
            [5, 3, 9]
        );
        assert_eq!(
            issues_for(&t[2], &pr("a", "b", "no refs here #4"), ForgeKind::Github),
            Vec::<u64>::new()
        );
    }

    fn closed(text: &str, forge: ForgeKind) -> Vec<u64> {
        mentions(text, forge)
            .into_iter()
            .filter(|m| m.forge_closes)
            .map(|m| m.issue)
            .collect()
    }

    fn named(text: &str, forge: ForgeKind) -> Vec<u64> {
        mentions(text, forge).into_iter().map(|m| m.issue).collect()
    }

    #[test]
    fn keywords_are_whole_words() {
        for forge in [ForgeKind::Github, ForgeKind::Gitea, ForgeKind::Gitlab] {
            assert!(
                named("The router prefixes #2 anchors", forge).is_empty(),
                "{forge}"
            );
            assert!(named("unfixed #2, preresolved #3, disclosed #4", forge).is_empty());
            assert!(named("prefs #2 and xrefs #3", forge).is_empty());
            assert!(named("Fixes #2abc", forge).is_empty(), "not a reference");
            assert_eq!(closed("Fixes #2.", forge), [2], "{forge}");
            assert_eq!(closed("(closes #2)", forge), [2], "{forge}");
            assert_eq!(closed("RESOLVED: #12", forge), [12], "{forge}");
        }
    }

    #[test]
    fn each_forge_reads_its_own_keywords() {
        let text = "Closes #1, #2 and #3; closing #4; implements #5; fixes issue #6";
        assert_eq!(closed(text, ForgeKind::Github), [1]);
        assert_eq!(closed(text, ForgeKind::Gitea), [1]);
        assert_eq!(closed(text, ForgeKind::Gitlab), [1, 2, 3, 4, 5, 6]);
        assert_eq!(closed("Fixes #1, fixes #2", ForgeKind::Github), [1, 2]);
        // `Refs` never makes the forge close anything, and takes a list everywhere.
        let refs = mentions("Refs #7, #8 and #9", ForgeKind::Github);
        assert_eq!(
            refs.iter()
                .map(|m| (m.issue, m.forge_closes))
                .collect::<Vec<_>>(),
            [(7, false), (8, false), (9, false)]
        );
    }

    #[test]
    fn code_names_nothing() {
        let body = "Use `Fixes #2` in commits.\n\n```\nCloses #3\n```\n\n    fixes #4\n\nRefs #5";
        for forge in [ForgeKind::Github, ForgeKind::Gitlab] {
            assert_eq!(named(body, forge), [5], "{forge}");
        }
        // Quotes and links still count: the forges read them too.
        assert_eq!(closed("> Closes #6", ForgeKind::Github), [6]);
        assert_eq!(
            closed("Closes [#7](https://x/issues/7)", ForgeKind::Github),
            [7]
        );
    }
}
