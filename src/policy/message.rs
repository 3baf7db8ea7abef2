//! The commit message convention `type(scope): summary`, checked on the message as git will
//! store it rather than as the editor left it.

use super::{Rule, Violation};

/// How git cleans a message before storing it (`commit.cleanup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Drop comment lines and everything below the scissors line (git's default when editing).
    Strip,
    /// Keep comment lines; only whitespace is tidied.
    Whitespace,
    /// Keep the message as written.
    Verbatim,
    /// Cut at the scissors line, keep comments above it.
    Scissors,
}

impl Cleanup {
    /// The mode for a `commit.cleanup` value; unknown and `default` mean `Strip`.
    pub fn from_config(value: Option<&str>) -> Cleanup {
        match value {
            Some("verbatim") => Cleanup::Verbatim,
            Some("whitespace") => Cleanup::Whitespace,
            Some("scissors") => Cleanup::Scissors,
            _ => Cleanup::Strip,
        }
    }
}

const SCISSORS: &str = " ------------------------ >8 ------------------------";

/// The message as git stores it: BOM dropped, CRLF read as LF, cut at the scissors line that
/// `commit -v` adds, comment lines (starting with `comment`) removed, surrounding blank lines
/// and trailing spaces trimmed. Invalid UTF-8 is replaced, never an error.
pub fn stored(raw: &[u8], comment: &str, cleanup: Cleanup) -> String {
    let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    let text = String::from_utf8_lossy(raw);
    if cleanup == Cleanup::Verbatim {
        return text.into_owned();
    }
    let comment = if comment.is_empty() { "#" } else { comment };
    let scissors = format!("{comment}{SCISSORS}");
    let mut lines = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line == scissors {
            break;
        }
        if cleanup == Cleanup::Strip && line.starts_with(comment) {
            continue;
        }
        lines.push(line.trim_end());
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    lines[start..].join("\n")
}

/// Git's own message forms that are accepted as they are.
const ACCEPTED_PREFIXES: [&str; 5] = ["Merge ", "Revert \"", "fixup! ", "squash! ", "amend! "];

/// Checks a stored message's subject against the convention. `task` is the task the current
/// branch belongs to; its id must then be the scope. An empty message is git's to refuse.
pub fn check(message: &str, types: &[String], task: Option<&str>) -> Option<Violation> {
    let subject = message.lines().next().unwrap_or("").trim();
    if subject.is_empty() || ACCEPTED_PREFIXES.iter().any(|p| subject.starts_with(p)) {
        return None;
    }
    let example_scope = task.unwrap_or("scope");
    let shown = shorten(subject);
    let violation = |message: String, fix: String| {
        Some(Violation {
            rule: Rule::Message,
            message,
            path: None,
            line: None,
            commit: None,
            fix,
        })
    };
    let Some(parsed) = parse_subject(subject) else {
        let (problems, fixed) = diagnose(subject, types, example_scope);
        let what = if problems.is_empty() {
            String::new()
        } else {
            format!(": {}", problems.join("; "))
        };
        let fix = match fixed.as_deref().and_then(parse_subject) {
            Some(_) => format!("write `{}`", fixed.unwrap_or_default()),
            None => format!("write it like `fix({example_scope}): validate the OIDC issuer`"),
        };
        return violation(
            format!("subject `{shown}` does not follow `type(scope): summary`{what}"),
            fix,
        );
    };
    if !types.iter().any(|t| t == parsed.kind) {
        return violation(
            format!(
                "type `{}` in `{shown}` is not one of {}",
                parsed.kind,
                types.join(", ")
            ),
            format!(
                "start the subject with one of them, e.g. `fix({example_scope}): {}`",
                parsed.summary
            ),
        );
    }
    let (problems, fixed) = style(subject, &parsed);
    if !problems.is_empty() {
        return violation(
            format!("subject `{shown}`: {}", problems.join("; ")),
            format!("write `{fixed}`"),
        );
    }
    if let Some(task) = task
        && parsed.scope != Some(task)
    {
        return violation(
            format!(
                "this branch belongs to task {task}, but the subject's scope is {}",
                match parsed.scope {
                    Some(s) => format!("`{s}`"),
                    None => "missing".into(),
                }
            ),
            format!("write `{}({task}): {}`", parsed.kind, parsed.summary),
        );
    }
    None
}

/// The longest subject accepted, as commitlint's conventional preset has it.
pub const MAX_SUBJECT: usize = 100;

/// What is wrong with a subject that does not parse, and the subject corrected where that is
/// clear: a capitalized type, a missing type, no space after the colon, a space before it.
fn diagnose(subject: &str, types: &[String], scope: &str) -> (Vec<String>, Option<String>) {
    let mut problems = Vec::new();
    let Some(colon) = subject.find(':') else {
        problems.push("missing the type".to_owned());
        let first = types.first().map_or("fix", String::as_str);
        let line = format!("{first}({scope}): {}", lower_first(subject));
        return (problems, Some(line));
    };
    let (head, rest) = (&subject[..colon], &subject[colon + 1..]);
    let mut head = head.to_owned();
    if head.ends_with(' ') {
        problems.push("a space before the colon".to_owned());
        head = head.trim_end().to_owned();
    }
    let kind_end = head.find(['(', '!']).unwrap_or(head.len());
    let kind = &head[..kind_end];
    if kind.is_empty() {
        problems.push("missing type before the scope".to_owned());
    } else if kind.chars().any(|c| c.is_ascii_uppercase()) {
        problems.push(format!("the type `{kind}` has a capital letter"));
        head = format!("{}{}", kind.to_ascii_lowercase(), &head[kind_end..]);
    }
    if rest.trim().is_empty() {
        problems.push("nothing after the colon".to_owned());
        return (problems, None);
    }
    if !rest.starts_with(' ') {
        problems.push("no space after the colon".to_owned());
    }
    let line = format!("{head}: {}", rest.trim_start());
    let fixed = match parse_subject(&line) {
        Some(p) => style(&line, &p).1,
        None => line,
    };
    (problems, Some(fixed))
}

/// Style of a subject that parses: a summary in sentence case, a trailing period, length.
fn style(subject: &str, parsed: &Subject<'_>) -> (Vec<String>, String) {
    let mut problems = Vec::new();
    let mut summary = parsed.summary.to_owned();
    let first_word = summary.split_whitespace().next().unwrap_or("");
    let mut chars = first_word.chars();
    // `Add` is sentence case; `GitHub`, `OIDC` and `README` are names.
    if chars.next().is_some_and(|c| c.is_uppercase()) && chars.all(|c| c.is_lowercase()) {
        problems.push(format!(
            "the summary starts with a capital letter (`{first_word}`)"
        ));
        summary = lower_first(&summary);
    }
    if summary.ends_with('.') && !summary.ends_with("..") {
        problems.push("a period at the end".to_owned());
        summary.pop();
    }
    let head = &subject[..subject.len() - parsed.summary.len()];
    let fixed = format!("{head}{summary}");
    let n = fixed.chars().count();
    if n > MAX_SUBJECT {
        problems.push(format!(
            "{n} characters, more than {MAX_SUBJECT}: say the rest in the body"
        ));
    }
    (problems, fixed)
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

struct Subject<'a> {
    kind: &'a str,
    scope: Option<&'a str>,
    summary: &'a str,
}

fn parse_subject(s: &str) -> Option<Subject<'_>> {
    let kind_end = s
        .find(|c: char| !c.is_ascii_lowercase())
        .filter(|&i| i > 0)?;
    let kind = &s[..kind_end];
    let mut rest = &s[kind_end..];
    let mut scope = None;
    if let Some(after) = rest.strip_prefix('(') {
        let close = after.find(')')?;
        let inner = &after[..close];
        if inner.is_empty() || inner.contains(|c: char| c.is_whitespace() || c == '(') {
            return None;
        }
        scope = Some(inner);
        rest = &after[close + 1..];
    }
    rest = rest.strip_prefix('!').unwrap_or(rest);
    let summary = rest.strip_prefix(": ")?.trim();
    (!summary.is_empty()).then_some(Subject {
        kind,
        scope,
        summary,
    })
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(72) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The task a branch belongs to: the task whose `branch` is this branch, else the first task
/// whose id appears in the branch name as a whole word (`ms-sec-001-oidc` does not name
/// `MS-SEC-0011`; ids match case-insensitively because branch names are often lowercased).
pub fn task_for_branch<'a>(branch: &str, tasks: &'a [crate::tasks::Task]) -> Option<&'a str> {
    if let Some(t) = tasks
        .iter()
        .find(|t| !t.branch.is_empty() && t.branch == branch)
    {
        return Some(&t.id);
    }
    tasks
        .iter()
        .find(|t| names_id(branch, &t.id))
        .map(|t| t.id.as_str())
}

/// Whether `text` names task `id` as a whole word, case-insensitively (`ms-sec-001-oidc`
/// names `MS-SEC-001`, not `MS-SEC-0011`).
pub fn names_id(text: &str, id: &str) -> bool {
    if id.is_empty() {
        return false;
    }
    let (text, id) = (text.to_ascii_lowercase(), id.to_ascii_lowercase());
    text.match_indices(&id).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + id.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types() -> Vec<String> {
        crate::config::MessagePolicy::default().types
    }

    #[test]
    fn stored_message_is_what_git_keeps() {
        let raw = b"\xEF\xBB\xBFfix(A-1): x\r\n\r\n# Please enter the commit message\r\nbody  \r\n# ------------------------ >8 ------------------------\r\ndiff --git a/x b/x\r\n+feat: no\r\n";
        assert_eq!(stored(raw, "#", Cleanup::Strip), "fix(A-1): x\n\nbody");
        assert_eq!(
            stored(b"\n\n# c\nfeat: y\n\n\n", "#", Cleanup::Strip),
            "feat: y"
        );
        assert_eq!(
            stored(b"; c\n#1 is a tag\n", ";", Cleanup::Strip),
            "#1 is a tag"
        );
        assert_eq!(
            stored(b"# keep\nfeat: y", "#", Cleanup::Whitespace),
            "# keep\nfeat: y"
        );
        assert_eq!(stored(b"a\r\n", "#", Cleanup::Verbatim), "a\r\n");
        assert_eq!(stored(b"\xff\xfe", "#", Cleanup::Strip), "\u{fffd}\u{fffd}");
    }

    #[test]
    fn convention_accepts_and_refuses() {
        let t = types();
        for ok in [
            "feat: add x",
            "fix(MS-1): y",
            "refactor(core)!: drop z",
            "Merge branch 'x' into y",
            "Revert \"feat: add x\"",
            "fixup! feat: add x",
            "squash! fix(MS-1): y",
            "amend! feat: add x",
            "",
        ] {
            assert_eq!(check(ok, &t, None), None, "{ok}");
        }
        for bad in [
            "add x",
            "Feat: x",
            "feat:x",
            "feat(): x",
            "feat(a b): x",
            "feat: ",
            "(x): y",
            "feat(x: y",
        ] {
            let v = check(bad, &t, None).unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(v.rule, Rule::Message);
            assert!(
                v.message.contains("type(scope): summary"),
                "{bad}: {}",
                v.message
            );
        }
        let v = check("feature: x", &t, None).unwrap();
        assert!(
            v.message.contains("`feature`") && v.fix.contains("fix(scope): x"),
            "{v:?}"
        );
    }

    #[test]
    fn task_branch_requires_the_task_id_as_scope() {
        let t = types();
        assert_eq!(check("fix(MS-SEC-001): y", &t, Some("MS-SEC-001")), None);
        let v = check("fix(core): y", &t, Some("MS-SEC-001")).unwrap();
        assert!(
            v.message.contains("MS-SEC-001") && v.message.contains("`core`"),
            "{v:?}"
        );
        assert_eq!(v.fix, "write `fix(MS-SEC-001): y`");
        let v = check("fix: y", &t, Some("MS-SEC-001")).unwrap();
        assert!(v.message.contains("missing"), "{v:?}");
    }

    #[test]
    fn branches_map_to_tasks() {
        let text = "# Tasks\n\n| id | status | description | depends_on | blocks | branch |\n|---|---|---|---|---|---|\n| MS-SEC-001 | in-progress | a | | | agent/oidc |\n| MS-SEC-0011 | not-started | b | | | |\n";
        let table = crate::tasks::TaskTable::parse(text).unwrap();
        let (tasks, _) = crate::tasks::read_tasks(&table);
        assert_eq!(task_for_branch("agent/oidc", &tasks), Some("MS-SEC-001"));
        assert_eq!(
            task_for_branch("ms-sec-001-oidc", &tasks),
            Some("MS-SEC-001")
        );
        assert_eq!(
            task_for_branch("feat/MS-SEC-0011", &tasks),
            Some("MS-SEC-0011")
        );
        assert_eq!(task_for_branch("ms-sec-0012", &tasks), None);
        assert_eq!(task_for_branch("main", &tasks), None);
    }

    #[test]
    fn each_mistake_is_named_and_the_line_corrected() {
        let t = types();
        for (bad, named, fixed) in [
            (
                "update readme",
                "missing the type",
                "feat(scope): update readme",
            ),
            ("Fix: the parser", "capital letter", "fix: the parser"),
            (
                "fix:the parser",
                "no space after the colon",
                "fix: the parser",
            ),
            (
                "fix : the parser",
                "a space before the colon",
                "fix: the parser",
            ),
            (
                "fix: Add the parser",
                "starts with a capital letter",
                "fix: add the parser",
            ),
            (
                "fix(core): the parser.",
                "a period at the end",
                "fix(core): the parser",
            ),
            ("Feat:Add x.", "no space after the colon", "feat: add x"),
        ] {
            let v = check(bad, &t, None).unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(v.message.contains(named), "{bad}: {}", v.message);
            assert_eq!(v.fix, format!("write `{fixed}`"), "{bad}");
        }
        // Names are not sentence case.
        for ok in [
            "fix: GitHub answers 304",
            "docs: OIDC notes",
            "feat: README",
        ] {
            assert_eq!(check(ok, &t, None), None, "{ok}");
        }
        let long = format!("feat: {}", "word ".repeat(30));
        let v = check(long.trim(), &t, None).unwrap();
        assert!(v.message.contains("more than 100"), "{}", v.message);
    }

    #[test]
    fn long_subjects_are_shortened_in_messages() {
        let s = "x".repeat(200);
        let v = check(&s, &types(), None).unwrap();
        assert!(
            v.message.len() < 160 && v.message.contains('…'),
            "{}",
            v.message
        );
    }
}
