//! A team moving from gitleaks keeps its tuning: `.gitleaks.toml` (its `[[rules]]`, global and
//! per-rule allowlists, `[extend]`) becomes trunkwarden rules and allowlists, and
//! `.gitleaksignore` the places whose findings were accepted. What cannot be carried over is
//! said in a note, not dropped in silence.

use serde::Deserialize;

use super::RuleError;
use crate::config::{Allow, SecretRule};

/// The gitleaks configuration file at a repository's root.
pub const CONFIG_FILE: &str = ".gitleaks.toml";
/// The gitleaks ignore file at a repository's root.
pub const IGNORE_FILE: &str = ".gitleaksignore";

/// What a gitleaks configuration becomes.
#[derive(Debug, Default)]
pub struct Imported {
    pub rules: Vec<SecretRule>,
    pub allow: Vec<Allow>,
    /// What could not be carried over, one line each.
    pub notes: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Config {
    extend: Option<Extend>,
    #[serde(default)]
    rules: Vec<Rule>,
    allowlist: Option<AllowList>,
    #[serde(default)]
    allowlists: Vec<AllowList>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Extend {
    use_default: Option<bool>,
    path: Option<String>,
    #[serde(default)]
    disabled_rules: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Rule {
    id: String,
    description: Option<String>,
    regex: Option<String>,
    secret_group: Option<usize>,
    entropy: Option<f64>,
    #[serde(default)]
    keywords: Vec<String>,
    path: Option<String>,
    allowlist: Option<AllowList>,
    #[serde(default)]
    allowlists: Vec<AllowList>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct AllowList {
    description: Option<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    #[serde(default)]
    commits: Vec<String>,
    regex_target: Option<String>,
}

/// Translates a `.gitleaks.toml`.
pub fn import(text: &str) -> Result<Imported, RuleError> {
    let config: Config = toml::from_str(text)
        .map_err(|e| RuleError::Tuning(format!("{CONFIG_FILE}: {}", e.to_string().trim())))?;
    let mut out = Imported::default();
    if let Some(e) = &config.extend {
        if e.use_default == Some(true) {
            out.notes.push(
                "[extend] useDefault: gitleaks' default rules are replaced by trunkwarden's built-in ones".into(),
            );
        }
        if let Some(p) = &e.path {
            out.notes.push(format!(
                "[extend] path `{p}`: not read; merge its rules into {CONFIG_FILE}"
            ));
        }
        if !e.disabled_rules.is_empty() {
            out.notes.push(format!(
                "[extend] disabledRules {:?}: gitleaks' rule ids; turn trunkwarden's off with [secrets] disable",
                e.disabled_rules
            ));
        }
    }
    for list in config.allowlist.iter().chain(&config.allowlists) {
        if let Some(a) = allow(list, None, &mut out.notes) {
            out.allow.push(a);
        }
    }
    for r in config.rules {
        let Some(regex) = r.regex.as_deref().filter(|x| !x.is_empty()) else {
            out.notes.push(format!(
                "rule `{}`: a rule on file paths only{} is not carried over",
                r.id,
                r.path.map(|p| format!(" (`{p}`)")).unwrap_or_default()
            ));
            continue;
        };
        let regex = match secret_named(regex, r.secret_group) {
            Ok(x) => x,
            Err(why) => {
                out.notes
                    .push(format!("rule `{}`: {why}; not carried over", r.id));
                continue;
            }
        };
        if r.path.is_some() {
            out.notes.push(format!(
                "rule `{}`: its `path` condition is dropped; the rule runs on every file",
                r.id
            ));
        }
        for list in r.allowlist.iter().chain(&r.allowlists) {
            if let Some(a) = allow(list, Some(&r.id), &mut out.notes) {
                out.allow.push(a);
            }
        }
        out.rules.push(SecretRule {
            id: r.id.clone(),
            description: r
                .description
                .unwrap_or_else(|| format!("{} (from {CONFIG_FILE})", r.id)),
            keywords: r.keywords,
            regex,
            entropy: r.entropy,
            checksum: None,
            window: None,
            stopwords: Vec::new(),
            reject_identifiers: false,
            context: false,
            fixture_in_tests: false,
            examples: Vec::new(),
            negatives: Vec::new(),
        });
    }
    Ok(out)
}

fn allow(list: &AllowList, rule: Option<&str>, notes: &mut Vec<String>) -> Option<Allow> {
    let whose = rule.map_or("[allowlist]".to_owned(), |r| {
        format!("rule `{r}` allowlist")
    });
    if !list.commits.is_empty() {
        notes.push(format!(
            "{whose}: commits are not carried over; accept their findings with `scan --update-baseline`"
        ));
    }
    if list.regex_target.as_deref().is_some_and(|t| t != "secret") {
        notes.push(format!(
            "{whose}: regexTarget `{}` is read as `secret`",
            list.regex_target.as_deref().unwrap_or_default()
        ));
    }
    if list.paths.is_empty() && list.regexes.is_empty() && list.stopwords.is_empty() {
        return None;
    }
    Some(Allow {
        description: list.description.clone(),
        rules: rule.map(|r| vec![r.to_owned()]).unwrap_or_default(),
        paths: Vec::new(),
        path_regexes: list.paths.clone(),
        regexes: list.regexes.clone(),
        stopwords: list.stopwords.clone(),
    })
}

/// The regex with the group gitleaks reports as the secret named `secret`: group `group` when
/// given, else the only group when there is exactly one, else the whole match.
fn secret_named(regex: &str, group: Option<usize>) -> Result<String, String> {
    let opens = capture_opens(regex);
    let n = match group {
        Some(0) | None if opens.len() == 1 => 1,
        Some(0) | None => return Ok(regex.to_owned()),
        Some(n) => n,
    };
    let Some(&(at, named_len)) = opens.get(n - 1) else {
        return Err(format!(
            "secretGroup {n}, but the regex has {} groups",
            opens.len()
        ));
    };
    // `(` or `(?P<name>` / `(?<name>` becomes `(?P<secret>`.
    Ok(format!(
        "{}(?P<secret>{}",
        &regex[..at],
        &regex[at + named_len..]
    ))
}

/// Byte offsets of the capturing groups' openings, in order, with the length of the opening
/// (`(` is 1; a named group's `(?P<name>` its whole length). Escapes and classes are skipped.
fn capture_opens(regex: &str) -> Vec<(usize, usize)> {
    let b = regex.as_bytes();
    let (mut i, mut class, mut out) = (0, false, Vec::new());
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' if !class => class = true,
            b']' if class => class = false,
            b'(' if !class => {
                if b.get(i + 1) != Some(&b'?') {
                    out.push((i, 1));
                } else if let Some(rest) = regex[i..]
                    .strip_prefix("(?P<")
                    .or_else(|| regex[i..].strip_prefix("(?<"))
                    && let Some(end) = rest.find('>')
                {
                    let len = regex[i..].len() - rest.len() + end + 1;
                    out.push((i, len));
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The places a `.gitleaksignore` accepts: `[commit:]path:rule:line` lines, as (path, line).
/// gitleaks' rule ids are not trunkwarden's, so a place is accepted whatever rule finds it.
pub fn ignored_places(text: &str) -> Vec<(String, usize)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.rsplitn(3, ':');
            let line = parts.next()?.parse::<usize>().ok()?;
            let _rule = parts.next()?;
            let rest = parts.next()?;
            let path = match rest.split_once(':') {
                Some((commit, path))
                    if commit.len() >= 7 && commit.bytes().all(|c| c.is_ascii_hexdigit()) =>
                {
                    path
                }
                _ => rest,
            };
            Some((path.trim_start_matches("./").to_owned(), line))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_group_is_named() {
        assert_eq!(
            secret_named(r"key=([a-z]+)-(\d+)", Some(2)).unwrap(),
            r"key=([a-z]+)-(?P<secret>\d+)"
        );
        assert_eq!(
            secret_named(r"k=(?:x|y)([a-z]+)", None).unwrap(),
            r"k=(?:x|y)(?P<secret>[a-z]+)"
        );
        assert_eq!(
            secret_named(r"[(]a(?P<v>b)", Some(1)).unwrap(),
            r"[(]a(?P<secret>b)"
        );
        assert_eq!(secret_named(r"\(a\)", None).unwrap(), r"\(a\)");
        assert!(secret_named(r"(a)", Some(3)).is_err());
    }

    #[test]
    fn ignore_lines_name_places() {
        let places = ignored_places(
            "# accepted\ncafe1234cafe1234cafe1234cafe1234cafe1234:src/a.rs:generic-api-key:12\nconfig/b.env:aws-access-token:3\nnot a line\n",
        );
        assert_eq!(
            places,
            vec![("src/a.rs".to_owned(), 12), ("config/b.env".to_owned(), 3)]
        );
    }
}
