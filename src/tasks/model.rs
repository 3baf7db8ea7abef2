//! Typed view of task rows: what each protocol column means, parsed with errors that name the line
//! and the column.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::Serialize;

use super::table::TaskTable;

/// A task's state, as the protocol spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    NotStarted,
    InProgress,
    Done,
    Failed,
    Blocked,
    NeedsQa,
    Deferred,
}

impl Status {
    /// Every status, in the protocol's order, for error messages and help.
    pub const ALL: [Status; 7] = [
        Status::NotStarted,
        Status::InProgress,
        Status::Done,
        Status::Failed,
        Status::Blocked,
        Status::NeedsQa,
        Status::Deferred,
    ];

    /// The protocol's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotStarted => "not-started",
            Status::InProgress => "in-progress",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Blocked => "blocked",
            Status::NeedsQa => "needs-qa",
            Status::Deferred => "deferred",
        }
    }

    /// Terminal states are the only ones that may carry `completed_at`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Done | Status::Failed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status `{s}`; expected one of {}", all.join(", "))
            })
    }
}

/// A token count such as `8K`, `12.5K`, `1.2M` or `900`, kept in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Tokens(pub u64);

impl FromStr for Tokens {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a token count; expected a number like 900, 8K or 12.5K");
        let (num, scale) = match s.as_bytes().last() {
            Some(b'k' | b'K') => (&s[..s.len() - 1], 1_000u64),
            Some(b'm' | b'M') => (&s[..s.len() - 1], 1_000_000u64),
            _ => (s, 1u64),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || (num.contains('.') && frac.is_empty())
        {
            return Err(bad());
        }
        // Exact decimal arithmetic: 12.5K is 12,500, never 12,499.
        let int: u64 = int.parse().map_err(|_| bad())?;
        let mut value = int.checked_mul(scale).ok_or_else(bad)?;
        let mut unit = scale;
        for d in frac.bytes() {
            unit /= 10;
            if unit == 0 {
                if d != b'0' {
                    return Err(format!("`{s}` has more decimals than whole tokens"));
                }
                continue;
            }
            value = value
                .checked_add(u64::from(d - b'0') * unit)
                .ok_or_else(bad)?;
        }
        Ok(Tokens(value))
    }
}

impl fmt::Display for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n >= 1_000 && n.is_multiple_of(100) {
            let whole = n / 1_000;
            let tenth = (n % 1_000) / 100;
            if tenth == 0 {
                write!(f, "{whole}K")
            } else {
                write!(f, "{whole}.{tenth}K")
            }
        } else {
            write!(f, "{n}")
        }
    }
}

/// The `issue` column: a forge issue number or an internal `TASKS:` reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum IssueRef {
    Forge(u64),
    Internal(String),
}

impl FromStr for IssueRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(n) = s.strip_prefix('#')
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            return n
                .parse()
                .map(IssueRef::Forge)
                .map_err(|_| format!("issue number `{s}` is too large"));
        }
        if let Some(r) = s.strip_prefix("TASKS:")
            && !r.is_empty()
            && !r.contains(char::is_whitespace)
        {
            return Ok(IssueRef::Internal(r.to_owned()));
        }
        Err(format!(
            "`{s}` is not an issue reference; expected `#123` or `TASKS:P1`"
        ))
    }
}

impl fmt::Display for IssueRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IssueRef::Forge(n) => write!(f, "#{n}"),
            IssueRef::Internal(r) => write!(f, "TASKS:{r}"),
        }
    }
}

/// Parses an ISO 8601 timestamp: RFC 3339 (`2026-02-05T10:00:00Z`, offsets, fractions) or a date.
pub fn parse_timestamp(s: &str) -> Result<DateTime<FixedOffset>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc().fixed_offset());
    }
    Err(format!(
        "`{s}` is not an ISO 8601 timestamp; expected e.g. 2026-02-05T10:00:00Z"
    ))
}

/// Splits a comma-separated id list, ignoring blanks.
pub fn parse_id_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether an id has the protocol's shape: `PREFIX-CAT-NNN`, optionally `-QA`.
pub fn is_valid_id(id: &str) -> bool {
    let base = id.strip_suffix("-QA").unwrap_or(id);
    let parts: Vec<&str> = base.split('-').collect();
    let alnum = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric());
    parts.len() >= 2
        && parts.iter().all(alnum)
        && parts[0].as_bytes()[0].is_ascii_alphabetic()
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// A problem found in the table, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// 1-based line in the file.
    pub line: usize,
    /// Column name the problem is in, when it is about one cell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Stable rule name, for suppression and scripts.
    pub rule: &'static str,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(
                f,
                "line {}, column `{c}`: {} [{}]",
                self.line, self.message, self.rule
            ),
            None => write!(f, "line {}: {} [{}]", self.line, self.message, self.rule),
        }
    }
}

/// One task row, typed. Cells that failed to parse are `None` (or empty) and reported separately.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    /// Index of the row in the table.
    #[serde(skip)]
    pub row: usize,
    pub line: usize,
    pub id: String,
    pub status: Option<Status>,
    pub description: String,
    pub issue: Option<IssueRef>,
    pub repo: String,
    pub branch: String,
    pub depends_on: Vec<String>,
    pub blocks: Vec<String>,
    pub agent: String,
    pub started_at: Option<DateTime<FixedOffset>>,
    pub completed_at: Option<DateTime<FixedOffset>>,
    pub estimate: Option<Tokens>,
    pub used: Option<Tokens>,
    pub notes: String,
}

impl Task {
    /// Whether the task counts as done for its dependents.
    pub fn is_done(&self) -> bool {
        self.status == Some(Status::Done)
    }
}

/// Checks one cell value against its column's type; `Ok` for free-text and unknown columns.
pub fn validate_cell(column: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return if column == "id" || column == "status" {
            Err(format!("`{column}` must not be empty"))
        } else {
            Ok(())
        };
    }
    match column {
        "id" if !is_valid_id(value) => Err(format!(
            "`{value}` is not a task id; expected PREFIX-CAT-NNN such as MS-SEC-001 (optionally -QA)"
        )),
        "status" => value.parse::<Status>().map(drop),
        "issue" => value.parse::<IssueRef>().map(drop),
        "started_at" | "completed_at" => parse_timestamp(value).map(drop),
        "estimate" | "used" => value.parse::<Tokens>().map(drop),
        "depends_on" | "blocks" => parse_id_list(value)
            .iter()
            .find(|id| !is_valid_id(id))
            .map_or(Ok(()), |id| {
                Err(format!("`{id}` is not a task id; ids are comma-separated"))
            }),
        _ => Ok(()),
    }
}

/// Reads every row as a [`Task`], collecting a diagnostic for every cell that does not parse.
pub fn read_tasks(table: &TaskTable) -> (Vec<Task>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let col = |name: &str| table.column(name);
    let (c_id, c_status) = (col("id"), col("status"));
    let cols = [
        "description",
        "issue",
        "repo",
        "branch",
        "depends_on",
        "blocks",
        "agent",
        "started_at",
        "completed_at",
        "estimate",
        "used",
        "notes",
    ]
    .map(col);
    let header_cells = table.columns().len();
    let mut tasks = Vec::with_capacity(table.len());

    for row in 0..table.len() {
        let line = table.line_of(row);
        let cell = |c: Option<usize>| {
            c.map(|c| table.get(row, c).into_owned())
                .unwrap_or_default()
        };
        let cells = table.cell_count(row);
        if cells > header_cells {
            diags.push(Diagnostic {
                line,
                column: None,
                rule: "cell-count",
                message: format!(
                    "row has {cells} cells but the header has {header_cells}; the extra cells are ignored (escape a literal `|` as `\\|`)"
                ),
            });
        }

        let mut check = |name: &'static str, value: &str| match validate_cell(name, value) {
            Ok(()) => true,
            Err(message) => {
                diags.push(Diagnostic {
                    line,
                    column: Some(name.to_owned()),
                    rule: "cell-format",
                    message,
                });
                false
            }
        };
        let id = cell(c_id);
        check("id", &id);
        let status_text = cell(c_status);
        let status = check("status", &status_text)
            .then(|| status_text.parse().ok())
            .flatten();
        let [
            description,
            issue,
            repo,
            branch,
            depends_on,
            blocks,
            agent,
            started_at,
            completed_at,
            estimate,
            used,
            notes,
        ] = cols.map(cell);

        let mut typed = |name: &'static str, v: &str| check(name, v) && !v.is_empty();
        let issue = typed("issue", &issue).then(|| issue.parse().ok()).flatten();
        let deps_ok = typed("depends_on", &depends_on);
        let blocks_ok = typed("blocks", &blocks);
        let started_at = typed("started_at", &started_at)
            .then(|| parse_timestamp(&started_at).ok())
            .flatten();
        let completed_at = typed("completed_at", &completed_at)
            .then(|| parse_timestamp(&completed_at).ok())
            .flatten();
        let estimate = typed("estimate", &estimate)
            .then(|| estimate.parse().ok())
            .flatten();
        let used = typed("used", &used).then(|| used.parse().ok()).flatten();

        tasks.push(Task {
            row,
            line,
            id,
            status,
            description,
            issue,
            repo,
            branch,
            depends_on: if deps_ok {
                parse_id_list(&depends_on)
            } else {
                Vec::new()
            },
            blocks: if blocks_ok {
                parse_id_list(&blocks)
            } else {
                Vec::new()
            },
            agent,
            started_at,
            completed_at,
            estimate,
            used,
            notes,
        });
    }
    (tasks, diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_exactly() {
        assert_eq!("8K".parse::<Tokens>(), Ok(Tokens(8_000)));
        assert_eq!("12.5K".parse::<Tokens>(), Ok(Tokens(12_500)));
        assert_eq!("6.1k".parse::<Tokens>(), Ok(Tokens(6_100)));
        assert_eq!("900".parse::<Tokens>(), Ok(Tokens(900)));
        assert_eq!("1.25M".parse::<Tokens>(), Ok(Tokens(1_250_000)));
        for bad in [
            "",
            "K",
            "1.",
            ".5K",
            "-3K",
            "1,5K",
            "8KB",
            "1.0001K",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Tokens>().is_err(), "{bad} should not parse");
        }
        assert_eq!(Tokens(12_500).to_string(), "12.5K");
        assert_eq!(Tokens(8_000).to_string(), "8K");
        assert_eq!(Tokens(950).to_string(), "950");
    }

    #[test]
    fn statuses_and_issue_refs() {
        assert_eq!("needs-qa".parse::<Status>(), Ok(Status::NeedsQa));
        let err = "inprogress".parse::<Status>().unwrap_err();
        assert!(err.starts_with("unknown status `inprogress`; expected one of not-started"));
        assert_eq!("#337".parse::<IssueRef>(), Ok(IssueRef::Forge(337)));
        assert_eq!(
            "TASKS:P1".parse::<IssueRef>(),
            Ok(IssueRef::Internal("P1".into()))
        );
        for bad in ["337", "#", "#12a", "TASKS:", "GH-12"] {
            assert!(bad.parse::<IssueRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_and_timestamps() {
        for ok in ["MS-SEC-001", "MS-SEC-001-QA", "T-1", "AB2-X-10"] {
            assert!(is_valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            "MS",
            "MS-SEC",
            "1-SEC-001",
            "MS--001",
            "MS-SEC-001 ",
            "MS-SEC-00a",
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
        assert!(parse_timestamp("2026-02-05T10:00:00Z").is_ok());
        assert!(parse_timestamp("2026-02-05T10:00:00.5+02:00").is_ok());
        assert!(parse_timestamp("2026-02-05").is_ok());
        assert!(parse_timestamp("2026-02-30").is_err());
        assert!(parse_timestamp("yesterday").is_err());
    }
}
