//! What broke in a CI job, read from its log: a class (`lint`, `type`, `test`, `build`,
//! `security`, `infra`, `unknown`), the failing tests by name and the first error lines with
//! their `file:line`, in a few lines fit for a task's notes and a PR comment.
//!
//! The log is read as a stream, line by line, in bounded memory whatever its size: lines are
//! cut at 4 KiB, only the first errors and failing tests are kept, and a short tail for logs
//! that say nothing recognisable. ANSI codes, CI timestamps and GitLab's section markers are
//! stripped, and every secret the scanner knows is masked before a line is kept.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::secrets::Scanner;

/// What kind of failure a log shows, most telling first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// A secret scanner refused the change.
    Security,
    /// The runner, not the code: lost, out of memory, out of disk, out of time.
    Infra,
    /// Tests ran and some failed.
    Test,
    /// A type checker (tsc, mypy) refused the code.
    Type,
    /// A linter or formatter (clippy, rustfmt, eslint, ruff, golangci-lint) refused it.
    Lint,
    /// It did not compile or its dependencies did not resolve.
    Build,
    /// Nothing recognisable.
    Unknown,
}

impl Class {
    /// The name notes and comments use.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Security => "security",
            Class::Infra => "infra",
            Class::Test => "test",
            Class::Type => "type",
            Class::Lint => "lint",
            Class::Build => "build",
            Class::Unknown => "unknown",
        }
    }
}

/// A log's diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub class: Class,
    /// Failing tests by name, first ones only.
    pub failing: Vec<String>,
    /// How many failing tests the log named in all.
    pub failing_total: usize,
    /// The first error lines, secrets masked.
    pub errors: Vec<String>,
    /// The last lines, when no error line was recognised.
    pub tail: Vec<String>,
    pub lines_read: u64,
}

impl Diagnosis {
    /// One line for a task's notes: `CI red (test): 2 failing — a, b`.
    pub fn summary(&self) -> String {
        let class = self.class.as_str();
        if !self.failing.is_empty() {
            let more = if self.failing_total > self.failing.len() {
                ", …"
            } else {
                ""
            };
            let shown: Vec<&str> = self.failing.iter().take(3).map(String::as_str).collect();
            return format!(
                "CI red ({class}): {} failing — {}{more}",
                self.failing_total,
                shown.join(", ")
            );
        }
        match self.errors.first() {
            Some(e) => format!("CI red ({class}): {}", clip(e, 160)),
            None => format!("CI red ({class})"),
        }
    }
}

impl Diagnosis {
    /// The lines worth showing under the summary: the errors, else the last lines.
    pub fn excerpt(&self) -> Vec<String> {
        if self.errors.is_empty() {
            let skip = self.tail.len().saturating_sub(10);
            self.tail[skip..].to_vec()
        } else {
            self.errors.clone()
        }
    }
}

const MAX_LINE: usize = 4096;
const MAX_ERRORS: usize = 8;
const MAX_FAILING: usize = 20;
const TAIL: usize = 20;

/// Reads a log to its end and says what broke. Read errors end the log where they happen.
pub fn diagnose(mut log: impl BufRead, scanner: Option<&Scanner>) -> Diagnosis {
    let mut d = Diagnoser::new(scanner);
    loop {
        let n = match log.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(chunk) => {
                d.feed(chunk);
                chunk.len()
            }
        };
        log.consume(n);
    }
    d.finish()
}

/// A log read as it arrives, in pieces of any size: a line is kept up to [`MAX_LINE`] bytes
/// (a log with no line breaks is not held whole), cleaned and masked, then read.
pub struct Diagnoser<'a> {
    reader: Reader,
    scanner: Option<&'a Scanner>,
    line: Vec<u8>,
}

impl<'a> Diagnoser<'a> {
    /// A reader that masks what `scanner` finds before a line is kept.
    pub fn new(scanner: Option<&'a Scanner>) -> Diagnoser<'a> {
        Diagnoser {
            reader: Reader::default(),
            scanner,
            line: Vec::new(),
        }
    }

    /// The next piece of the log.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let room = MAX_LINE.saturating_sub(self.line.len());
            let piece = &chunk[..used];
            let piece = piece.strip_suffix(b"\n").unwrap_or(piece);
            self.line.extend_from_slice(&piece[..piece.len().min(room)]);
            chunk = &chunk[used..];
            if done {
                self.end_line();
            }
        }
    }

    fn end_line(&mut self) {
        let line = clean(&String::from_utf8_lossy(&self.line));
        self.line.clear();
        let line = match self.scanner {
            Some(s) => mask_secrets(s, &line),
            None => line,
        };
        self.reader.line(&line);
    }

    /// The diagnosis of everything fed.
    pub fn finish(mut self) -> Diagnosis {
        if !self.line.is_empty() {
            self.end_line();
        }
        self.reader.finish()
    }
}

/// A line without ANSI escapes, carriage-return overwrites, a leading CI timestamp, or
/// GitLab's section markers.
pub fn clean(line: &str) -> String {
    // A progress line redrawn with \r shows its last state.
    let line = line.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("");
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte; other escapes: ESC and one more char.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
            continue;
        }
        out.push(c);
    }
    let mut s = out.as_str();
    // GitLab: section_start:1700000000:step_script[collapsed=true]
    if let Some(rest) = s
        .strip_prefix("section_start:")
        .or_else(|| s.strip_prefix("section_end:"))
    {
        s = rest.split_once(':').map_or("", |(_, r)| {
            r.split_once(char::is_whitespace).map_or("", |(_, t)| t)
        });
    }
    // GitHub Actions: 2024-05-01T12:00:00.1234567Z at the start of every line.
    if s.len() > 20
        && s.as_bytes()[4] == b'-'
        && s.as_bytes()[10] == b'T'
        && let Some((stamp, rest)) = s.split_once(' ')
        && stamp.ends_with('Z')
    {
        s = rest;
    }
    s.trim_end().to_owned()
}

/// The line with each secret the scanner finds replaced by its masked form.
pub fn mask_secrets(scanner: &Scanner, line: &str) -> String {
    let found = scanner.scan("ci.log", line.as_bytes());
    if found.is_empty() {
        return line.to_owned();
    }
    let mut out = String::with_capacity(line.len());
    let mut at = 0;
    for f in &found {
        if f.offset < at || f.end > line.len() {
            continue;
        }
        out.push_str(line.get(at..f.offset).unwrap_or(""));
        out.push_str(&f.masked);
        at = f.end;
    }
    out.push_str(line.get(at..).unwrap_or(""));
    out
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}

/// The evidence gathered so far.
#[derive(Default)]
struct Reader {
    seen: Vec<Class>,
    failing: Vec<String>,
    failing_total: usize,
    errors: Vec<String>,
    tail: std::collections::VecDeque<String>,
    lines: u64,
    /// The last error kept, for what is printed on the line after it (rustc's ` --> `, a
    /// panic's message).
    last_error: Option<usize>,
    /// A ruff rule line (`F401 [*] …`) waiting for the location ruff ≥ 0.12 prints under it.
    ruff_head: Option<String>,
    /// The GitHub Actions step being read: what was kept before it, and whether it failed.
    step: Option<Step>,
    /// Whether a step of the log is known to have failed.
    step_failed: bool,
}

/// Where a step began in what the reader kept, so a step that passed can be forgotten.
#[derive(Clone, Copy)]
struct Step {
    errors: usize,
    failing: usize,
    failing_total: usize,
    seen: usize,
    failed: bool,
}

impl Reader {
    fn saw(&mut self, class: Class) {
        if !self.seen.contains(&class) {
            self.seen.push(class);
        }
    }

    fn error(&mut self, line: &str) {
        if self.errors.len() < MAX_ERRORS && !self.errors.iter().any(|e| e == line) {
            self.errors.push(clip(line.trim(), 300));
            self.last_error = Some(self.errors.len() - 1);
        }
    }

    fn failed(&mut self, name: &str) {
        let name = name.trim();
        if name.is_empty() || self.failing.iter().any(|f| f == name) {
            return;
        }
        self.failing_total += 1;
        if self.failing.len() < MAX_FAILING {
            self.failing.push(name.to_owned());
        }
    }

    fn line(&mut self, line: &str) {
        self.lines += 1;
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(clip(line, 300));
        let t = line.trim();
        // Rust prints a panic's message on the line after `panicked at file:line:col:`.
        if let Some(i) = self.last_error
            && !t.is_empty()
            && !t.starts_with("note:")
            && let Some(e) = self.errors.get_mut(i)
            && e.contains("panicked at")
            && e.ends_with(':')
        {
            e.push(' ');
            e.push_str(&clip(t, 200));
            self.last_error = None;
            return;
        }
        // GitHub Actions: a step begins with `##[group]Run …` and, when it fails, ends with
        // `##[error]Process completed with exit code N.`; what a passing step printed is noise.
        if t.starts_with("##[group]Run ") || t == "Post job cleanup." {
            self.end_step();
            self.step = Some(Step {
                errors: self.errors.len(),
                failing: self.failing.len(),
                failing_total: self.failing_total,
                seen: self.seen.len(),
                failed: false,
            });
            return;
        }
        if t.starts_with("##[error]Process completed with exit code") {
            if let Some(s) = self.step.as_mut() {
                s.failed = true;
            }
            self.step_failed = true;
            return;
        }
        if let Some(head) = self.ruff_head.take()
            && let Some(at) = t.strip_prefix("--> ").filter(|at| at.contains(".py:"))
        {
            self.saw(Class::Lint);
            self.error(&format!("{at}: {head}"));
            return;
        }
        // A location on the line after an error belongs to it.
        if let Some(rest) = t.strip_prefix("--> ")
            && let Some(i) = self.last_error.take()
            && let Some(e) = self.errors.get_mut(i)
        {
            e.push_str(&format!(" ({rest})"));
            return;
        }
        self.last_error = None;
        self.cargo(t);
        self.python(t);
        self.javascript(t);
        self.go(t);
        self.security(t);
        self.infra(t);
        self.build(t);
    }

    fn cargo(&mut self, t: &str) {
        // Each failing test has its `---- name stdout ----` section, output or not.
        if let Some(name) = t
            .strip_prefix("---- ")
            .and_then(|r| r.strip_suffix(" stdout ----"))
        {
            self.saw(Class::Test);
            self.failed(name);
        } else if t.starts_with("test result: FAILED") {
            self.saw(Class::Test);
        } else if t.starts_with("thread '") && t.contains("panicked at") {
            self.error(t);
        } else if t.starts_with("error[E") || t.starts_with("error: could not compile") {
            self.saw(Class::Build);
            self.error(t);
        } else if t.starts_with("error: ")
            && (t.contains("clippy::") || t.contains("`-D warnings`"))
        {
            self.saw(Class::Lint);
            self.error(t);
        } else if t.contains("implied by `-D warnings`") || t.contains("rust-clippy") {
            // Clippy names itself in the notes under its error.
            self.saw(Class::Lint);
        } else if t.starts_with("error: ") && self.errors.is_empty() {
            self.error(t);
        } else if let Some(rest) = t.strip_prefix("Diff in ") {
            // `cargo fmt --check`.
            self.saw(Class::Lint);
            self.error(&format!("rustfmt: {rest}"));
        } else if t.starts_with("failed to select a version") || t.contains("failed to load source")
        {
            self.saw(Class::Build);
            self.error(t);
        }
    }

    fn python(&mut self, t: &str) {
        if let Some(rest) = t.strip_prefix("FAILED ") {
            // pytest: FAILED tests/test_x.py::test_y - AssertionError
            let name = rest.split(" - ").next().unwrap_or(rest);
            if name.contains("::") {
                self.saw(Class::Test);
                self.failed(name);
                return;
            }
            if name.starts_with("(failures=") || name.starts_with("(errors=") {
                self.saw(Class::Test);
            }
        }
        if let Some(rest) = t
            .strip_prefix("FAIL: ")
            .or_else(|| t.strip_prefix("ERROR: "))
        {
            // unittest: FAIL: test_x (module.Class.test_x)
            if rest.contains('(') {
                self.saw(Class::Test);
                self.failed(rest);
                return;
            }
        }
        // mypy: path.py:3: error: Incompatible types … [assignment]
        if t.contains(".py:") && t.contains(": error: ") && t.ends_with(']') {
            self.saw(Class::Type);
            self.error(t);
        } else if t.starts_with("Found ") && t.contains(" error") && t.contains(" in ") {
            // mypy's closing line; ruff says "Found N errors." without "in".
            self.saw(Class::Type);
        } else if t.starts_with("Found ") && t.contains(" error") {
            self.saw(Class::Lint);
        } else if is_ruff(t) {
            self.saw(Class::Lint);
            self.error(t);
        } else if is_ruff_code(t.split(' ').next().unwrap_or("")) && t.contains(' ') {
            self.ruff_head = Some(t.to_owned());
        } else if t.contains("ResolutionImpossible")
            || t.starts_with("ERROR: No matching distribution")
            || t.starts_with("ERROR: Could not find a version")
        {
            self.saw(Class::Build);
            self.error(t);
        }
    }

    fn javascript(&mut self, t: &str) {
        // tsc: src/a.ts(3,7): error TS2322: … or src/a.ts:3:7 - error TS2322: …
        if t.contains("error TS") {
            self.saw(Class::Type);
            self.error(t);
        } else if let Some(name) = t.strip_prefix("● ") {
            // jest / vitest failure headers: ● Suite › test name
            if name.contains(" › ") {
                self.saw(Class::Test);
                self.failed(name);
            }
        } else if (t.starts_with("FAIL ")
            && (t.ends_with(".js")
                || t.ends_with(".ts")
                || t.contains(".test.")
                || t.contains(".spec.")))
            || (t.starts_with("Tests:") && t.contains(" failed"))
        {
            // jest / vitest: a failed file, or the closing count.
            self.saw(Class::Test);
        } else if t.starts_with('✖') && t.contains(" problem") {
            // eslint: ✖ 2 problems (2 errors, 0 warnings)
            self.saw(Class::Lint);
        } else if is_eslint_row(t) {
            self.saw(Class::Lint);
            self.error(t);
        } else if t.starts_with("npm ERR!") || t.starts_with("npm error") {
            if t.contains("ERESOLVE") || t.contains("notarget") || t.contains("404") {
                self.saw(Class::Build);
            }
            self.error(t);
        }
    }

    fn go(&mut self, t: &str) {
        if let Some(rest) = t.strip_prefix("--- FAIL: ") {
            self.saw(Class::Test);
            self.failed(rest.split(" (").next().unwrap_or(rest));
        } else if t.starts_with("FAIL\t") || t == "FAIL" {
            self.saw(Class::Test);
        } else if t.ends_with(')') && t.contains(".go:") && golangci_linter(t) {
            self.saw(Class::Lint);
            self.error(t);
        }
    }

    fn security(&mut self, t: &str) {
        if t.contains("trunkwarden: refused: [secrets]")
            || t.starts_with("leaks found:")
            || t.contains("WRN leaks found")
        {
            self.saw(Class::Security);
            self.error(t);
        }
    }

    fn infra(&mut self, t: &str) {
        const SIGNS: [&str; 10] = [
            "The runner has received a shutdown signal",
            "lost communication with the server",
            "exceeded the maximum execution time",
            "The job exceeded the maximum time limit",
            "ERROR: Job failed: execution took longer than",
            "No space left on device",
            "OOMKilled",
            "out of memory",
            "Could not resolve host",
            "signal: killed",
        ];
        if SIGNS.iter().any(|s| t.contains(s)) {
            self.saw(Class::Infra);
            self.error(t);
        }
    }

    fn build(&mut self, t: &str) {
        if t.starts_with("ERROR: failed to solve") || t.contains("failed to build: ") {
            self.saw(Class::Build);
            self.error(t);
        }
    }

    /// Forgets what a step that passed printed.
    fn end_step(&mut self) {
        if let Some(s) = self.step.take().filter(|s| !s.failed) {
            self.errors.truncate(s.errors);
            self.failing.truncate(s.failing);
            self.failing_total = s.failing_total;
            self.seen.truncate(s.seen);
            self.last_error = None;
        }
    }

    fn finish(mut self) -> Diagnosis {
        // A log that names its failed step is read for that step; one cut short (the runner
        // died in the middle of a step) keeps what its last step printed.
        if self.step_failed {
            self.end_step();
        }
        // Tests that ran and failed explain more than the compile errors around them; the
        // runner's own death explains more than anything it cut short.
        let class = self.seen.iter().copied().min().unwrap_or(Class::Unknown);
        let tail = if self.errors.is_empty() && self.failing.is_empty() {
            self.tail.into_iter().collect()
        } else {
            Vec::new()
        };
        Diagnosis {
            class,
            failing: self.failing,
            failing_total: self.failing_total,
            errors: self.errors,
            tail,
            lines_read: self.lines,
        }
    }
}

/// ruff: `path.py:1:8: F401 [*] `os` imported but unused`
fn is_ruff(t: &str) -> bool {
    let mut parts = t.splitn(4, ':');
    let (Some(path), Some(line), Some(col), Some(rest)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let code = rest.trim_start().split(' ').next().unwrap_or("");
    path.ends_with(".py")
        && line.parse::<u32>().is_ok()
        && col.parse::<u32>().is_ok()
        && is_ruff_code(code)
}

/// A ruff rule code: one to three capitals, then digits (`F401`, `UP006`, `PLR0913`).
fn is_ruff_code(code: &str) -> bool {
    let letters = code.chars().take_while(char::is_ascii_uppercase).count();
    let digits = &code[letters..];
    (1..=3).contains(&letters)
        && (1..=4).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
}

/// eslint's stylish rows: `  3:7  error  'x' is assigned a value but never used  no-unused-vars`
fn is_eslint_row(t: &str) -> bool {
    let mut words = t.split_whitespace();
    let (Some(pos), Some(level)) = (words.next(), words.next()) else {
        return false;
    };
    level == "error"
        && pos
            .split_once(':')
            .is_some_and(|(l, c)| l.parse::<u32>().is_ok() && c.parse::<u32>().is_ok())
}

/// golangci-lint rows end with the linter's name: `main.go:5:2: … (errcheck)`.
fn golangci_linter(t: &str) -> bool {
    const LINTERS: [&str; 8] = [
        "(errcheck)",
        "(govet)",
        "(staticcheck)",
        "(unused)",
        "(gosimple)",
        "(ineffassign)",
        "(revive)",
        "(gofmt)",
    ];
    LINTERS.iter().any(|l| t.ends_with(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(log: &str) -> Diagnosis {
        diagnose(log.as_bytes(), None)
    }

    #[test]
    fn cleaning_strips_escapes_timestamps_and_section_markers() {
        assert_eq!(
            clean("2024-05-01T12:00:00.1234567Z \u{1b}[31merror\u{1b}[0m: x"),
            "error: x"
        );
        assert_eq!(
            clean("section_start:1700000000:step_script[collapsed=true]\r\u{1b}[0KRunning"),
            "Running"
        );
        assert_eq!(clean("50%\r100%"), "100%");
    }

    #[test]
    fn python_javascript_and_go_tools_are_told_apart() {
        let d = of("FAILED tests/test_a.py::test_one - AssertionError: 1 != 2\n1 failed in 0.1s\n");
        assert_eq!(
            (d.class, d.failing.clone()),
            (Class::Test, vec!["tests/test_a.py::test_one".to_owned()])
        );
        let d =
            of("src/a.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'.\n");
        assert_eq!(d.class, Class::Type);
        let d = of(
            "app.py:3: error: Incompatible types in assignment (expression has type \"str\", variable has type \"int\")  [assignment]\nFound 1 error in 1 file (checked 1 source file)\n",
        );
        assert_eq!(d.class, Class::Type);
        let d = of("app.py:1:8: F401 [*] `os` imported but unused\nFound 1 error.\n");
        assert_eq!(d.class, Class::Lint);
        // ruff ≥ 0.12 prints the location under the rule.
        let d = of("F401 [*] `os` imported but unused\n --> app.py:1:8\n  |\nFound 1 error.\n");
        assert_eq!(d.errors, ["app.py:1:8: F401 [*] `os` imported but unused"]);
        let d = of(
            "/src/a.js\n  3:7  error  'x' is assigned a value but never used  no-unused-vars\n\n✖ 1 problem (1 error, 0 warnings)\n",
        );
        assert_eq!(d.class, Class::Lint);
        let d = of("  ● math › adds\n\nTests:       1 failed, 1 passed, 2 total\n");
        assert_eq!(d.failing, ["math › adds"]);
        let d = of(
            "--- FAIL: TestAdd (0.00s)\n    add_test.go:9: got 3\nFAIL\nFAIL\texample.com/m\t0.002s\n",
        );
        assert_eq!(
            (d.class, d.failing.clone()),
            (Class::Test, vec!["TestAdd".to_owned()])
        );
        let d = of(
            "ERROR: failed to solve: process \"/bin/sh -c make\" did not complete successfully: exit code: 2\n",
        );
        assert_eq!(d.class, Class::Build);
        let d =
            of("npm error code ERESOLVE\nnpm error ERESOLVE unable to resolve dependency tree\n");
        assert_eq!(d.class, Class::Build);
    }

    #[test]
    fn only_the_github_step_that_failed_is_read() {
        let log = "##[group]Run cargo clippy\nwarning: unused\nerror: used `unwrap()` on a `Result` value\n = help: for further information visit https://rust-lang.github.io/rust-clippy\n##[group]Run cargo test\n---- tests::adds stdout ----\nthread 'tests::adds' panicked at src/lib.rs:6:17:\nboom\n##[error]Process completed with exit code 101.\nPost job cleanup.\nerror: could not remove the cache\n";
        let d = of(log);
        assert_eq!(d.class, Class::Test, "{d:?}");
        assert_eq!(d.failing, ["tests::adds"]);
        assert_eq!(
            d.errors,
            ["thread 'tests::adds' panicked at src/lib.rs:6:17: boom"]
        );
        // Without a failure marker (the runner died), the last step is what there is.
        let d = of("##[group]Run cargo test\nerror[E0308]: mismatched types\n");
        assert_eq!(d.class, Class::Build);
    }

    #[test]
    fn the_runner_dying_is_infra_and_an_empty_log_is_unknown() {
        let d = of("running tests\n##[error]The runner has received a shutdown signal.\n");
        assert_eq!(d.class, Class::Infra);
        let d = of("step 1\nstep 2\n");
        assert_eq!((d.class, d.tail.len()), (Class::Unknown, 2));
    }

    #[test]
    fn a_line_without_end_is_read_in_bounded_pieces() {
        let long = "x".repeat(10 * MAX_LINE);
        let d = of(&format!("{long}\nerror[E0308]: mismatched types\n"));
        assert_eq!(d.class, Class::Build);
        assert!(d.tail.is_empty() && d.errors[0].starts_with("error[E0308]"));
    }

    #[test]
    fn secrets_in_a_log_are_masked_before_anything_is_kept() {
        let s = Scanner::builtin().unwrap();
        let token = "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";
        let d = diagnose(
            format!("error: could not push with {token}\n").as_bytes(),
            Some(&s),
        );
        let all = serde_json::to_string(&d).unwrap();
        assert!(!all.contains(token), "{all}");
        assert!(all.contains("ghp_…FLh2"), "{all}");
    }
}
