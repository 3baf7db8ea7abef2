//! Secret scanning: rules as data (`rules.toml`, compiled in), one prefilter pass over every
//! rule's keywords, and each rule's regex run only in a window around a keyword hit.
//!
//! A [`Finding`] never holds the secret itself, only a masked form and a fingerprint, so no
//! report, log line or error can print it whole.

pub mod blobs;
pub mod history;
pub mod repo;
pub mod report;
pub mod tuning;

use std::collections::HashSet;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use tuning::{Baseline, CompiledAllow, SecretsPolicy, normal_path};

/// The built-in rules.
const RULES_TOML: &str = include_str!("rules.toml");

/// Bytes of a file's start checked for NUL to call it binary.
const BINARY_PROBE: usize = 8 * 1024;

/// Lines carrying either marker are not reported (the second eases migration from gitleaks).
const ALLOW_MARKERS: [&str; 2] = ["trunkwarden:allow", "gitleaks:allow"];

/// Substrings that mark a value as a placeholder, not a secret (compared in lower case).
const PLACEHOLDERS: [&str; 15] = [
    "example",
    // A value that names what it stands for: `password123`, `secure%20password`.
    "password",
    "passwd",
    "sample",
    "dummy",
    "placeholder",
    "your_",
    "your-",
    "****",
    "${",
    "{{",
    "<",
    "changeme",
    "redacted",
    "%s",
];

/// A rule set that cannot be used; names the rule.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rules: {0}")]
    Parse(String),
    /// The repository's tuning (`[secrets]`, the baseline) is wrong; says where.
    #[error("{0}")]
    Tuning(String),
    #[error("rule `{id}`: {message}")]
    Invalid { id: String, message: String },
}

pub use crate::config::SecretRule;
pub use blobs::BlobScanner;

pub mod gitleaks;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
struct RulesFile {
    #[serde(default)]
    published_examples: Vec<String>,
    rule: Vec<SecretRule>,
}

/// A detected secret: where, which rule, and a masked form — never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: String,
    pub description: String,
    pub path: String,
    /// 1-based line and column (in bytes) of the secret's first byte.
    pub line: usize,
    pub column: usize,
    /// Start of the secret as a byte offset in the scanned content.
    #[serde(skip)]
    pub offset: usize,
    /// End of the secret (exclusive), so a text can be masked where it is.
    #[serde(skip)]
    pub end: usize,
    pub masked: String,
    /// Stable identity of this secret at this path under this rule, for baselines.
    pub fingerprint: String,
    /// The commit that added it, for scans of git history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// The compiled rules and their prefilter. Regexes compile on a rule's first keyword hit, so a
/// one-file scan pays only for the rules it touches.
pub struct Scanner {
    rules: Vec<SecretRule>,
    regexes: Vec<OnceLock<Result<Regex, String>>>,
    prefilter: AhoCorasick,
    /// Prefilter pattern index → rule index.
    owner: Vec<usize>,
    /// Rules without keywords: their regex runs over the whole content.
    always: Vec<usize>,
    /// (path, line) pairs a `.gitleaksignore` accepted, whatever the rule.
    ignored_places: HashSet<(String, usize)>,
    /// Private keys in test data are fixtures: not reported unless the policy asks.
    skip_test_keys: bool,
    max_file_size: u64,
    allow: Vec<CompiledAllow>,
    /// Fingerprints of accepted findings.
    baseline: HashSet<String>,
    /// Documentation example values, never secrets.
    published: HashSet<Vec<u8>>,
}

fn rules_file() -> Result<RulesFile, RuleError> {
    toml::from_str(RULES_TOML).map_err(|e| RuleError::Parse(e.to_string()))
}

fn published(values: &[String]) -> HashSet<Vec<u8>> {
    values.iter().map(|v| v.as_bytes().to_vec()).collect()
}

impl Scanner {
    /// The built-in rule set.
    pub fn builtin() -> Result<Scanner, RuleError> {
        Scanner::for_policy(&SecretsPolicy::default(), None)
    }

    /// The built-in rules as written, without compiling a scanner: for callers that only
    /// need their ids.
    pub fn builtin_rules() -> Result<Vec<SecretRule>, RuleError> {
        Ok(rules_file()?.rule)
    }

    /// Builds the prefilter over every rule's keywords.
    pub fn new(rules: Vec<SecretRule>) -> Result<Scanner, RuleError> {
        let mut patterns = Vec::new();
        let mut owner = Vec::new();
        let mut always = Vec::new();
        let mut ids = HashSet::new();
        for (i, r) in rules.iter().enumerate() {
            let invalid = |message: &str| RuleError::Invalid {
                id: r.id.clone(),
                message: message.to_owned(),
            };
            if !ids.insert(r.id.as_str()) {
                return Err(invalid("duplicate id"));
            }
            if r.keywords.iter().all(|k| k.is_empty()) {
                // No anchor: the rule's regex runs over every file (imported gitleaks rules
                // often have none).
                always.push(i);
            }
            if let Some(c) = &r.checksum
                && c != "github-crc32"
            {
                return Err(invalid("unknown checksum scheme"));
            }
            for k in r.keywords.iter().filter(|k| !k.is_empty()) {
                patterns.push(k.as_bytes().to_vec());
                owner.push(i);
            }
        }
        // A full DFA: one table lookup per byte. With ~180 case-insensitive keywords the
        // default (a contiguous NFA) took twice as long over the same tree; the table costs
        // a few hundred KiB once.
        let prefilter = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&patterns)
            .map_err(|e| RuleError::Parse(e.to_string()))?;
        Ok(Scanner {
            regexes: rules.iter().map(|_| OnceLock::new()).collect(),
            rules,
            prefilter,
            owner,
            always,
            ignored_places: HashSet::new(),
            skip_test_keys: false,
            max_file_size: 10 << 20,
            allow: Vec::new(),
            baseline: HashSet::new(),
            published: HashSet::new(),
        })
    }

    /// The built-in rules as a repository tunes them, and its baseline (file bytes and a name for
    /// errors) when it has one. Custom rules must find their examples and miss their negatives.
    pub fn for_policy(
        policy: &SecretsPolicy,
        baseline: Option<(&[u8], &str)>,
    ) -> Result<Scanner, RuleError> {
        let file = rules_file()?;
        let mut rules = file.rule;
        for id in &policy.disable {
            if !rules.iter().any(|r| &r.id == id) {
                return Err(RuleError::Tuning(format!(
                    "secrets.disable: no built-in rule `{id}`"
                )));
            }
        }
        rules.retain(|r| !policy.disable.contains(&r.id));
        for custom in &policy.rule {
            match rules.iter_mut().find(|r| r.id == custom.id) {
                Some(slot) => *slot = custom.clone(),
                None => rules.push(custom.clone()),
            }
        }
        let mut scanner = Scanner::new(rules)?;
        scanner.published = published(&file.published_examples);
        let mut own_examples = HashSet::new();
        for custom in &policy.rule {
            scanner.check_examples(&custom.id)?;
            // The examples sit in the policy file itself; they are not leaks.
            for ex in &custom.examples {
                let found = scanner.scan(crate::config::POLICY_FILE, ex.as_bytes());
                own_examples.extend(found.into_iter().map(|f| f.fingerprint));
            }
        }
        let known: HashSet<&str> = scanner.rules.iter().map(|r| r.id.as_str()).collect();
        scanner.allow = policy
            .allow
            .iter()
            .enumerate()
            .map(|(i, a)| CompiledAllow::new(i, a, &known))
            .collect::<Result<_, _>>()?;
        scanner.max_file_size = policy.max_file_size;
        scanner.skip_test_keys = !policy.report_test_keys;
        if let Some((bytes, origin)) = baseline {
            scanner.baseline = Baseline::parse(bytes, origin)?.fingerprints();
        }
        scanner.baseline.extend(own_examples);
        Ok(scanner)
    }

    /// Proves one rule on its own examples: each is found, no negative is.
    pub fn check_examples(&self, id: &str) -> Result<(), RuleError> {
        let Some(i) = self.rules.iter().position(|r| r.id == id) else {
            return Err(RuleError::Parse(format!("no rule `{id}`")));
        };
        self.compiled(i)?;
        let rule = &self.rules[i];
        let invalid = |message: String| RuleError::Invalid {
            id: id.to_owned(),
            message,
        };
        for (n, ex) in rule.examples.iter().enumerate() {
            if !self
                .scan("example", ex.as_bytes())
                .iter()
                .any(|f| f.rule == id)
            {
                return Err(invalid(format!("example {} is not found", n + 1)));
            }
        }
        for (n, ex) in rule.negatives.iter().enumerate() {
            if self
                .scan("example", ex.as_bytes())
                .iter()
                .any(|f| f.rule == id)
            {
                return Err(invalid(format!("negative {} is reported", n + 1)));
            }
        }
        Ok(())
    }

    /// Files larger than this are skipped (and reported as skipped by the caller).
    pub fn with_max_file_size(mut self, bytes: u64) -> Scanner {
        self.max_file_size = bytes;
        self
    }

    /// The configured size cap.
    pub fn max_file_size(&self) -> u64 {
        self.max_file_size
    }

    /// The rules, for reports.
    pub fn rules(&self) -> &[SecretRule] {
        &self.rules
    }

    /// SecretRule `i`'s regex, compiled on its first use; the error names the rule.
    fn compiled(&self, i: usize) -> Result<&Regex, RuleError> {
        self.regexes[i]
            .get_or_init(|| compile(&self.rules[i].regex))
            .as_ref()
            .map_err(|e| RuleError::Invalid {
                id: self.rules[i].id.clone(),
                message: format!("regex: {e}"),
            })
    }

    /// Compiles every rule's regex now, returning the first that does not compile.
    pub fn check_all(&self) -> Result<(), RuleError> {
        (0..self.rules.len()).try_for_each(|i| self.compiled(i).map(|_| ()))
    }

    /// Accepts every finding at these (path, line) places, whatever the rule (a
    /// `.gitleaksignore`).
    pub fn ignore_places(&mut self, places: impl IntoIterator<Item = (String, usize)>) {
        self.ignored_places.extend(places);
    }

    /// Whether content looks binary (a NUL in its first 8 KiB).
    pub fn is_binary(content: &[u8]) -> bool {
        content[..content.len().min(BINARY_PROBE)].contains(&0)
    }

    /// Scans one piece of content; `path` only labels the findings.
    pub fn scan(&self, path: &str, content: &[u8]) -> Vec<Finding> {
        if self.allow.iter().any(|a| a.covers_path(path)) {
            return Vec::new();
        }
        let test_data = self.skip_test_keys && is_test_path(path);
        let mut seen: HashSet<(usize, usize)> = HashSet::new();
        let mut found = Vec::new();
        let mut ends = Vec::new();
        // 0: knows the secret's shape, 1: only its surroundings, 2: generic.
        let mut rank = Vec::new();
        // Per rule, the end of the last window searched: a hit inside it needs no new search.
        let mut searched_to: Vec<usize> = vec![0; self.rules.len()];
        let hits = self.prefilter.find_overlapping_iter(content).map(|m| {
            let ri = self.owner[m.pattern().as_usize()];
            let w = self.rules[ri].window.unwrap_or(512);
            let (start, end) = (
                m.start().saturating_sub(w),
                (m.end() + w).min(content.len()),
            );
            (ri, start, end, w)
        });
        let whole = self.always.iter().map(|&ri| (ri, 0, content.len(), 0));
        for (ri, start, end, w) in hits.chain(whole) {
            let rule = &self.rules[ri];
            if test_data && rule.fixture_in_tests {
                continue;
            }
            if searched_to[ri] >= end {
                continue;
            }
            let from = start.max(searched_to[ri].saturating_sub(w));
            searched_to[ri] = end;
            let Ok(re) = self.compiled(ri) else {
                continue;
            };
            for caps in re.captures_iter(&content[from..end]) {
                let Some(s) = caps.name("secret").or_else(|| caps.get(0)) else {
                    continue;
                };
                let (s_start, s_end) = (from + s.start(), from + s.end());
                if !seen.insert((ri, s_start)) {
                    continue;
                }
                let secret = &content[s_start..s_end];
                if !self.valid(rule, secret)
                    || allowed_inline(content, s_start)
                    || self.allow.iter().any(|a| a.allows(&rule.id, path, secret))
                {
                    continue;
                }
                let fingerprint = fingerprint(path, &rule.id, secret);
                if self.baseline.contains(&fingerprint) {
                    continue;
                }
                let (line, column) = line_col(content, s_start);
                if !self.ignored_places.is_empty()
                    && self
                        .ignored_places
                        .contains(&(normal_path(path).to_owned(), line))
                {
                    continue;
                }
                found.push(Finding {
                    rule: rule.id.clone(),
                    description: rule.description.clone(),
                    path: path.to_owned(),
                    line,
                    column,
                    offset: s_start,
                    end: s_end,
                    masked: mask(secret),
                    fingerprint,
                    commit: None,
                });
                ends.push(s_end);
                rank.push(if rule.id.starts_with("generic-") {
                    2
                } else {
                    u8::from(rule.context)
                });
            }
        }
        let mut found = one_per_secret(found, &ends, &rank);
        found.sort_by(|a, b| (a.offset, &a.rule).cmp(&(b.offset, &b.rule)));
        found
    }

    fn valid(&self, rule: &SecretRule, secret: &[u8]) -> bool {
        if is_placeholder(secret) || self.published.contains(secret) {
            return false;
        }
        // A GitHub or npm token caught by a broader rule is still held to its checksum: one that
        // fails it is a made-up example (GitHub's docs are full of them), whatever rule saw it.
        if rule.checksum.is_none() && has_checksummed_shape(secret) && !github_crc32_ok(secret) {
            return false;
        }
        if !rule.stopwords.is_empty() {
            let lower = String::from_utf8_lossy(secret).to_lowercase();
            if rule
                .stopwords
                .iter()
                .any(|w| w.eq_ignore_ascii_case(&lower))
            {
                return false;
            }
        }
        if rule.reject_identifiers && looks_like_identifier(secret) {
            return false;
        }
        if let Some(min) = rule.entropy
            && entropy(secret) < min
        {
            return false;
        }
        match rule.checksum.as_deref() {
            Some("github-crc32") => github_crc32_ok(secret),
            _ => true,
        }
    }
}

/// Compiles a rule's regex with ASCII classes: secrets are ASCII, and Unicode-aware `(?i)`,
/// `\b` and `\s` made compiling the generic rule 2.4× slower (1.6 ms against 0.66 ms), a cost
/// every one-file pre-commit scan pays.
fn compile(pattern: &str) -> Result<Regex, String> {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .map_err(|e| e.to_string())
}

fn line_col(content: &[u8], offset: usize) -> (usize, usize) {
    let before = &content[..offset];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (line, offset - line_start + 1)
}

fn allowed_inline(content: &[u8], offset: usize) -> bool {
    let start = content[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let end = content[offset..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(content.len(), |p| offset + p);
    let line = &content[start..end];
    ALLOW_MARKERS
        .iter()
        .any(|m| line.windows(m.len()).any(|w| w == m.as_bytes()))
}

fn is_placeholder(secret: &[u8]) -> bool {
    let lower = String::from_utf8_lossy(secret).to_lowercase();
    // `xxxx` in one case: random key material contains `XxXx` often enough to matter.
    secret.windows(4).any(|w| w == b"xxxx" || w == b"XXXX")
        || PLACEHOLDERS.iter().any(|p| lower.contains(p))
        || [
            "password", "passwd", "secret", "token", "null", "none", "true", "false",
        ]
        .contains(&lower.as_str())
}

/// `SCREAMING_SNAKE`, `snake_case`, `kebab-case` or `camelCase` words without digits: names in
/// code, not credentials.
fn looks_like_identifier(s: &[u8]) -> bool {
    let words_only = s
        .iter()
        .all(|b| b.is_ascii_alphabetic() || *b == b'_' || *b == b'-');
    let separated = s.contains(&b'_') || s.contains(&b'-');
    let upper = s.iter().filter(|b| b.is_ascii_uppercase()).count();
    let lower = s.iter().filter(|b| b.is_ascii_lowercase()).count();
    let camel = s.first().is_some_and(u8::is_ascii_lowercase) && upper > 0 && upper * 4 <= lower;
    (words_only && (separated || camel || upper == 0 || lower == 0))
        || attribute_path(s)
        || compound_name(s)
}

/// `utf8_percent_encode`, `setAttr-Token-B0Prime`: three or more words joined by `_` or `-`,
/// each a letter followed by letters and digits — a name, however many digits it carries.
fn compound_name(s: &[u8]) -> bool {
    let parts: Vec<&[u8]> = s.split(|b| *b == b'_' || *b == b'-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            p.first().is_some_and(u8::is_ascii_alphabetic)
                && p.iter().all(u8::is_ascii_alphanumeric)
        })
}

/// Whether a path is test data: a directory named for tests or fixtures, or a file named as a
/// test (`dsa_test.cc`, `test_tls.py`, `auth.spec.ts`).
fn is_test_path(path: &str) -> bool {
    let p = normal_path(path).to_ascii_lowercase();
    let mut parts: Vec<&str> = p.split(['/', '\\']).collect();
    let file = parts.pop().unwrap_or_default();
    let dirs = [
        "test",
        "tests",
        "testdata",
        "test-data",
        "test_data",
        "testing",
        "fixtures",
        "fixture",
        "__tests__",
        "spec",
        "testfiles",
    ];
    if parts.iter().any(|d| dirs.contains(d)) {
        return true;
    }
    let stem = file.split('.').next().unwrap_or_default();
    stem.ends_with("_test")
        || stem.ends_with("-test")
        || stem.ends_with("_tests")
        || stem.starts_with("test_")
        || file.contains(".test.")
        || file.contains(".spec.")
}

/// `req.body.password2`, `self.config.db_pass`: a path of names through objects, read from
/// code, not a credential written into it.
fn attribute_path(s: &[u8]) -> bool {
    let mut parts = s.split(|b| *b == b'.');
    let ident = |p: &[u8]| {
        p.first()
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
            && p.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    };
    let (Some(first), Some(second)) = (parts.next(), parts.next()) else {
        return false;
    };
    ident(first) && ident(second) && parts.all(ident)
}

/// Shannon entropy in bits per byte.
pub fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Prefixes of the token formats whose last six characters are a CRC32.
const CHECKSUMMED_PREFIXES: [&[u8]; 6] = [b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"npm_"];

/// A four-character checksummed prefix and 36 base62 characters.
fn has_checksummed_shape(s: &[u8]) -> bool {
    s.len() == 40
        && CHECKSUMMED_PREFIXES.iter().any(|p| s.starts_with(p))
        && s[4..].iter().all(u8::is_ascii_alphanumeric)
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// GitHub's and npm's token checksum: after a four-character prefix (`ghp_`, `npm_`, …), thirty
/// random characters and six base62 digits (0-9A-Za-z) that spell their CRC32.
pub fn github_crc32_ok(token: &[u8]) -> bool {
    if token.len() != 40 {
        return false;
    }
    let (body, check) = (&token[4..34], &token[34..]);
    let mut value: u64 = 0;
    for &c in check {
        let Some(d) = BASE62.iter().position(|&x| x == c) else {
            return false;
        };
        value = value * 62 + d as u64;
    }
    value == u64::from(crc32fast::hash(body))
}

/// Shows enough of a secret to recognise it and never the whole: at most a quarter at each end.
pub fn mask(secret: &[u8]) -> String {
    let s = String::from_utf8_lossy(secret);
    let chars: Vec<char> = s.chars().filter(|c| !c.is_control()).collect();
    let keep = (chars.len() / 4).min(4);
    if keep == 0 {
        return "…".to_owned();
    }
    let head: String = chars[..keep].iter().collect();
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("{head}…{tail}")
}

/// Path (without a leading `./`), rule and secret, hashed: the same secret in the same file is
/// the same finding on every line, in every commit and from any scan root.
/// One finding per secret: where spans overlap, a rule that knows the secret's shape wins over
/// one that knows only its surroundings (`context`), which wins over a generic one; of two
/// alike, the one found first.
fn one_per_secret(found: Vec<Finding>, ends: &[usize], rank: &[u8]) -> Vec<Finding> {
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_by_key(|&i| (rank[i], i));
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut keep = vec![false; found.len()];
    for i in order {
        let (start, end) = (found[i].offset, ends[i]);
        if kept.iter().all(|&(s, e)| end <= s || e <= start) {
            kept.push((start, end));
            keep[i] = true;
        }
    }
    found
        .into_iter()
        .zip(keep)
        .filter_map(|(f, k)| k.then_some(f))
        .collect()
}

fn fingerprint(path: &str, rule: &str, secret: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(normal_path(path).as_bytes());
    h.update([0]);
    h.update(rule.as_bytes());
    h.update([0]);
    h.update(secret);
    hex::encode(&h.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_reveal_at_most_a_quarter_at_each_end() {
        assert_eq!(
            mask(b"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"),
            "ghp_…FLh2"
        );
        assert_eq!(mask(b"abcdefgh"), "ab…gh");
        assert_eq!(mask(b"abc"), "…");
    }

    #[test]
    fn one_secret_is_one_finding_under_its_provider_rule() {
        let s = Scanner::builtin().unwrap();
        let line = b"GITHUB_TOKEN = \"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\"\n";
        let found = s.scan("ci.env", line);
        assert_eq!(
            found.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(),
            ["github-pat"]
        );
        // Without a provider rule for the value, the generic one still reports it.
        let found = s.scan("ci.env", b"DB_PASSWORD = \"LhFz9KjA2Yr3NMhy2CSDsUws\"\n");
        assert_eq!(
            found.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(),
            ["generic-secret-assignment"]
        );
    }

    #[test]
    fn github_checksum() {
        assert!(github_crc32_ok(b"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"));
        assert!(!github_crc32_ok(
            b"ghp_aWFeOgd23eOp1ARVjVEeNJPXGyijpX1TFLh3"
        ));
        assert!(!github_crc32_ok(b"ghp_short"));
    }

    #[test]
    fn broader_rules_hold_known_formats_to_their_checksum() {
        let s = Scanner::builtin().unwrap();
        // GitHub's documentation example: right shape, wrong checksum.
        let fake = br#"{"access_token": "gho_16C7e42F292c6912E7710c838347Ae178B4a"}"#;
        assert_eq!(s.scan("a.json", fake), vec![]);
        let real = br#"{"access_token": "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"}"#;
        assert!(!s.scan("a.json", real).is_empty());
        let published = br#""temp_clone_token": "ABTLWHOULUVAXGTRYU7OC2876QJ2O","#;
        assert_eq!(s.scan("a.json", published), vec![]);
        let other = br#""temp_clone_token": "QBTLWHOULUVAXGTRYU7OC2876QJ2Q","#;
        assert!(!s.scan("a.json", other).is_empty());
    }

    #[test]
    fn test_data_is_told_by_its_path() {
        for p in [
            "aws-lc/crypto/dsa/dsa_test.cc",
            "sqlx/tests/certs/keys/ca.key",
            "./testdata/key.pem",
            "web/src/__tests__/auth.js",
            "app/auth.spec.ts",
            "py/test_tls.py",
        ] {
            assert!(is_test_path(p), "{p}");
        }
        for p in [
            "deploy/prod.key",
            "src/contest.rs",
            "latest/key.pem",
            "attestation.pem",
        ] {
            assert!(!is_test_path(p), "{p}");
        }
    }

    #[test]
    fn attribute_paths_are_code() {
        assert!(looks_like_identifier(b"req.body.password2"));
        assert!(looks_like_identifier(b"self.db_pass"));
        assert!(!looks_like_identifier(b"Zr4!pL9#qW2x"));
        assert!(!looks_like_identifier(b"abc.1def"));
        assert!(!looks_like_identifier(b"x9Lq2"));
        assert!(looks_like_identifier(b"utf8_percent_encode"));
        assert!(looks_like_identifier(b"setAttr-Token-B0Prime"));
        assert!(
            !looks_like_identifier(b"9Zr-4pL-2qW"),
            "parts must start with a letter"
        );
    }

    #[test]
    fn placeholder_runs_are_case_sensitive() {
        assert!(is_placeholder(b"sk_live_xxxxxxxxxxxxxxxx"));
        assert!(is_placeholder(b"AKIAXXXXXXXXXXXXXXXX"));
        // Found by the recall benchmark: random key material that happens to hold `XxXx`.
        assert!(!is_placeholder(
            b"MIIEpAIBAAKCAQEAXxXxk0Y4patMg9XKh1oz3Ser5ZpDoN"
        ));
    }

    #[test]
    fn identifiers_are_not_secrets() {
        for id in [
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "passwordInput",
            "api-key-header",
            "abcdefghij",
        ] {
            assert!(looks_like_identifier(id.as_bytes()), "{id}");
        }
        for secret in [
            "LhFz9KjA2Yr3NMhy2CSDsUws",
            "Tr0ub4dor&3",
            "hunterTWOhunterTWO",
        ] {
            assert!(!looks_like_identifier(secret.as_bytes()), "{secret}");
        }
    }

    #[test]
    fn entropy_orders_strings() {
        assert!(entropy(b"aaaaaaaa") < 0.1);
        assert!(entropy(b"LhFz9KjA2Yr3NMhy2CSDsUws") > 4.0);
    }
}
