//! Lossless reading and writing of the task table inside `TASKS.md`.
//!
//! The file is split into three parts: the bytes before the table, the table's lines, and the bytes
//! after it. The parts outside the table are kept verbatim; each table line keeps its original text
//! and is re-rendered only when one of its cells changes, so an update is a one-line diff whatever
//! the table's padding, alignment, pipe style or line endings.
//!
//! Cell text follows the GitHub-flavoured Markdown table rule: a `|` directly preceded by `\` is part
//! of the cell, and `\|` reads as `|`. Every other character, other backslashes included, stands for
//! itself.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// Why a file holds no usable task table; each variant names the line it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error(
        "line {line}: the file is not valid UTF-8 (byte {byte} of that line); TASKS.md must be UTF-8 text"
    )]
    NotUtf8 { line: usize, byte: usize },
    #[error(
        "no task table found: expected a Markdown table with `id` and `status` columns, under a `# Tasks` heading"
    )]
    NoTable,
    #[error("line {line}: the task table has no `{column}` column")]
    MissingColumn { line: usize, column: &'static str },
    #[error("line {line}: column `{column}` appears twice in the table header")]
    DuplicateColumn { line: usize, column: String },
    #[error("line {line}: column `{column}`: a newline is not allowed inside a cell")]
    NewlineInCell { line: usize, column: String },
    #[error("line {line}: the table has no column `{column}`; add it to the header first")]
    UnknownColumn { line: usize, column: String },
}

/// How a line ended in the source, so it is written back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eol {
    None,
    Lf,
    CrLf,
}

impl Eol {
    fn as_str(self) -> &'static str {
        match self {
            Eol::None => "",
            Eol::Lf => "\n",
            Eol::CrLf => "\r\n",
        }
    }
}

/// One table line: its text without the line ending and the byte ranges of its cells.
#[derive(Debug, Clone)]
struct TableLine {
    text: String,
    eol: Eol,
    /// 1-based line number in the source file.
    number: usize,
    /// Raw cell text between pipes, padding included. Never empty: a table line has a cell.
    cells: Vec<Range<usize>>,
}

impl TableLine {
    fn parse(text: &str, eol: Eol, number: usize) -> Option<TableLine> {
        let cells = split_cells(text)?;
        Some(TableLine {
            text: text.to_owned(),
            eol,
            number,
            cells,
        })
    }

    fn raw(&self, cell: usize) -> Option<&str> {
        self.cells.get(cell).map(|r| &self.text[r.clone()])
    }

    /// Rebuilds the line with new raw cell texts, keeping what stands before the first and after
    /// the last cell (outer pipes, indentation, trailing spaces) byte for byte.
    fn rebuild(&mut self, raw_cells: &[String]) {
        let (Some(first), Some(last)) = (self.cells.first(), self.cells.last()) else {
            return;
        };
        let prefix = &self.text[..first.start];
        let suffix = &self.text[last.end..];
        let mut text = String::with_capacity(self.text.len() + 16);
        text.push_str(prefix);
        // Without a leading pipe, a blank first cell would read as one: add the pipe.
        if !prefix.contains('|') && raw_cells.first().is_some_and(|c| is_blank(c)) {
            text.push('|');
        }
        let mut cells = Vec::with_capacity(raw_cells.len());
        for (i, raw) in raw_cells.iter().enumerate() {
            if i > 0 {
                text.push('|');
            }
            let start = text.len();
            text.push_str(raw);
            // A cell that ended the line may now be followed by a pipe, which its trailing
            // backslash would escape.
            if i + 1 < raw_cells.len() && raw.ends_with('\\') {
                text.push(' ');
            }
            cells.push(start..text.len());
        }
        text.push_str(suffix);
        self.text = text;
        self.cells = cells;
    }
}

/// Splits a line into raw cells at unescaped pipes; `None` when the line has no unescaped pipe.
///
/// A leading pipe (only blanks before it) and a trailing pipe (only blanks after it) are delimiters,
/// not cell boundaries, as in GitHub-flavoured Markdown.
fn split_cells(text: &str) -> Option<Vec<Range<usize>>> {
    let bytes = text.as_bytes();
    let mut pipes = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'|' && (i == 0 || bytes[i - 1] != b'\\') {
            pipes.push(i);
        }
    }
    if pipes.is_empty() {
        return None;
    }
    let mut segments: Vec<Range<usize>> = Vec::with_capacity(pipes.len() + 1);
    let mut start = 0;
    for &p in &pipes {
        segments.push(start..p);
        start = p + 1;
    }
    segments.push(start..text.len());
    if is_blank(&text[segments[0].clone()]) {
        segments.remove(0);
    }
    if segments.len() > 1 && segments.last().is_some_and(|r| is_blank(&text[r.clone()])) {
        segments.pop();
    }
    Some(segments)
}

fn is_blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// Reads a raw cell as its value: padding trimmed, `\|` turned into `|`.
fn unescape(raw: &str) -> Cow<'_, str> {
    let t = raw.trim();
    if t.contains("\\|") {
        Cow::Owned(t.replace("\\|", "|"))
    } else {
        Cow::Borrowed(t)
    }
}

/// Renders a value into a cell, reusing the old raw cell's leading padding. In an aligned column
/// (`pad_to` is the column's width) the cell is padded to it, so the table stays aligned whenever
/// the new value fits.
fn render_cell(old_raw: &str, value: &str, pad_to: Option<usize>) -> String {
    let escaped = value.replace('|', "\\|");
    let old_trimmed = old_raw.trim();
    let (lead, min_trail): (&str, usize) = if old_trimmed.is_empty() {
        if old_raw.is_empty() {
            ("", 0)
        } else {
            (" ", 1)
        }
    } else {
        let lead_len = old_raw.len() - old_raw.trim_start().len();
        let trail_len = old_raw.len() - old_raw.trim_end().len();
        (&old_raw[..lead_len], usize::from(trail_len > 0))
    };
    // A value ending in `\` must not touch the closing pipe, or the pipe would read as escaped.
    let min_trail = if escaped.ends_with('\\') {
        min_trail.max(1)
    } else {
        min_trail
    };
    let used = lead.chars().count() + escaped.chars().count();
    let trail = pad_to.map_or(0, |w| w.saturating_sub(used)).max(min_trail);
    let mut out = String::with_capacity(lead.len() + escaped.len() + trail);
    out.push_str(lead);
    out.push_str(&escaped);
    out.extend(std::iter::repeat_n(' ', trail));
    out
}

/// Whether a line is a table delimiter row (`| --- | :-: |`) with `n` cells.
fn is_delimiter(line: &TableLine, n: usize) -> bool {
    line.cells.len() == n
        && line.cells.iter().all(|r| {
            let c = line.text[r.clone()].trim();
            let c = c.strip_prefix(':').unwrap_or(c);
            let c = c.strip_suffix(':').unwrap_or(c);
            !c.is_empty() && c.bytes().all(|b| b == b'-')
        })
}

/// Cheap pre-check for a delimiter row: only pipes, colons, dashes and blanks, with a dash.
fn looks_like_delimiter(line: &str) -> bool {
    line.contains('-')
        && line
            .bytes()
            .all(|b| matches!(b, b'|' | b':' | b'-' | b' ' | b'\t'))
}

/// Whether a line is an ATX heading whose text is "Tasks" (any level, any case).
fn is_tasks_heading(line: &str) -> bool {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return false;
    }
    let rest = line[indent..].trim_start_matches('#');
    let level = line.len() - indent - rest.len();
    if !(1..=6).contains(&level) || !rest.starts_with([' ', '\t']) {
        return false;
    }
    rest.trim()
        .trim_end_matches('#')
        .trim()
        .eq_ignore_ascii_case("tasks")
}

/// Opening or closing fence of a fenced code block: the fence character and its run length.
fn fence(line: &str) -> Option<(u8, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line.as_bytes()[indent..];
    let ch = *rest.first()?;
    if ch != b'`' && ch != b'~' {
        return None;
    }
    let run = rest.iter().take_while(|&&b| b == ch).count();
    (run >= 3).then_some((ch, run))
}

/// Splits text into lines with their endings; a lone `\r` is not a line ending.
fn lines(text: &str) -> impl Iterator<Item = (Range<usize>, Eol)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= text.len() {
            return None;
        }
        let start = pos;
        match text[start..].find('\n') {
            Some(off) => {
                let nl = start + off;
                pos = nl + 1;
                if nl > start && text.as_bytes()[nl - 1] == b'\r' {
                    Some((start..nl - 1, Eol::CrLf))
                } else {
                    Some((start..nl, Eol::Lf))
                }
            }
            None => {
                pos = text.len();
                Some((start..text.len(), Eol::None))
            }
        }
    })
}

/// Normalizes a header cell to a column name: trimmed, lower case.
fn column_name(raw: &str) -> String {
    unescape(raw).to_lowercase()
}

/// The task table of a `TASKS.md` file, with everything around it, ready to be edited in place.
#[derive(Debug, Clone)]
pub struct TaskTable {
    before: String,
    header: TableLine,
    delimiter: TableLine,
    rows: Vec<TableLine>,
    after: String,
    columns: Vec<String>,
}

impl TaskTable {
    /// Parses raw file bytes; non-UTF-8 input is an error that names the line.
    pub fn parse_bytes(bytes: &[u8]) -> Result<TaskTable, TableError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => TaskTable::parse(text),
            Err(e) => {
                let good = &bytes[..e.valid_up_to()];
                let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
                let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                Err(TableError::NotUtf8 {
                    line,
                    byte: e.valid_up_to() - line_start + 1,
                })
            }
        }
    }

    /// Finds the task table: the first table with an `id` column after a `# Tasks` heading, else
    /// the first table anywhere with both `id` and `status` columns. Fenced code is skipped.
    pub fn parse(text: &str) -> Result<TaskTable, TableError> {
        let mut fenced: Option<(u8, usize)> = None;
        let mut after_heading = false;
        let mut chosen: Option<(usize, TableLine, TableLine)> = None; // (byte offset of header, ...)
        let mut fallback: Option<(usize, TableLine, TableLine)> = None;
        // The previous line, while it could still be a table header: (range, ending, number).
        let mut prev: Option<(Range<usize>, Eol, usize)> = None;

        for (number, (range, eol)) in (1..).zip(lines(text)) {
            let line = &text[range.clone()];
            if let Some((ch, run)) = fenced {
                if fence(line).is_some_and(|(c, r)| c == ch && r >= run)
                    && line
                        .trim_start()
                        .trim_start_matches(ch as char)
                        .trim()
                        .is_empty()
                {
                    fenced = None;
                }
                prev = None;
                continue;
            }
            if let Some(f) = fence(line) {
                fenced = Some(f);
                prev = None;
                continue;
            }
            if is_tasks_heading(line) {
                after_heading = true;
                prev = None;
                continue;
            }
            // Cells are split only for a header candidate followed by a delimiter-shaped line, so
            // prose full of pipes costs one byte scan per line.
            if let Some((h_range, h_eol, h_number)) = prev.take()
                && looks_like_delimiter(line)
                && let Some(header) = TableLine::parse(&text[h_range.clone()], h_eol, h_number)
                && let Some(delim) = TableLine::parse(line, eol, number)
                && is_delimiter(&delim, header.cells.len())
            {
                let names: Vec<String> = (0..header.cells.len())
                    .map(|i| column_name(header.raw(i).unwrap_or_default()))
                    .collect();
                let has = |n: &str| names.iter().any(|c| c == n);
                if after_heading && has("id") {
                    chosen = Some((h_range.start, header, delim));
                    break;
                }
                if fallback.is_none() && has("id") && has("status") {
                    fallback = Some((h_range.start, header, delim));
                }
                continue;
            }
            prev = line.contains('|').then_some((range, eol, number));
        }

        let (offset, header, delimiter) = chosen.or(fallback).ok_or(TableError::NoTable)?;
        TaskTable::from_parts(text, offset, header, delimiter)
    }

    fn from_parts(
        text: &str,
        header_offset: usize,
        header: TableLine,
        delimiter: TableLine,
    ) -> Result<TaskTable, TableError> {
        let mut columns = Vec::with_capacity(header.cells.len());
        for i in 0..header.cells.len() {
            let name = column_name(header.raw(i).unwrap_or_default());
            if columns.contains(&name) {
                return Err(TableError::DuplicateColumn {
                    line: header.number,
                    column: name,
                });
            }
            columns.push(name);
        }
        for required in ["id", "status"] {
            if !columns.iter().any(|c| c == required) {
                return Err(TableError::MissingColumn {
                    line: header.number,
                    column: required,
                });
            }
        }

        // Body rows start after the delimiter line and run until a blank line or a line
        // without a cell boundary.
        let body_start = header_offset
            + header.text.len()
            + header.eol.as_str().len()
            + delimiter.text.len()
            + delimiter.eol.as_str().len();
        let mut rows = Vec::new();
        let mut end = body_start;
        let mut number = delimiter.number;
        for (range, eol) in lines(&text[body_start..]) {
            number += 1;
            let line = &text[body_start + range.start..body_start + range.end];
            if is_blank(line) {
                break;
            }
            match TableLine::parse(line, eol, number) {
                Some(row) => {
                    end = body_start + range.end + eol.as_str().len();
                    rows.push(row);
                }
                None => break,
            }
        }
        // The delimiter may be the last line of a file without a final newline; then so is `end`.
        Ok(TaskTable {
            before: text[..header_offset].to_owned(),
            header,
            delimiter,
            rows,
            after: text[end..].to_owned(),
            columns,
        })
    }

    /// Column names in table order, normalized to lower case.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Index of a column by (case-insensitive) name.
    pub fn column(&self, name: &str) -> Option<usize> {
        let name = name.trim().to_lowercase();
        self.columns.iter().position(|c| *c == name)
    }

    /// Number of task rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// 1-based source line of the header row.
    pub fn header_line(&self) -> usize {
        self.header.number
    }

    /// 1-based source line of a row, for diagnostics.
    pub fn line_of(&self, row: usize) -> usize {
        self.rows.get(row).map_or(0, |r| r.number)
    }

    /// Number of cells a row actually has (it may differ from the header).
    pub fn cell_count(&self, row: usize) -> usize {
        self.rows.get(row).map_or(0, |r| r.cells.len())
    }

    /// The value of a cell, unescaped and trimmed; an absent cell reads as empty.
    pub fn get(&self, row: usize, column: usize) -> Cow<'_, str> {
        self.rows
            .get(row)
            .and_then(|r| r.raw(column))
            .map_or(Cow::Borrowed(""), unescape)
    }

    /// Row index of the first row whose `id` cell equals `id`.
    pub fn find(&self, id: &str) -> Option<usize> {
        let col = self.column("id")?;
        (0..self.rows.len()).find(|&r| self.get(r, col) == id)
    }

    /// Sets one cell by column name. Returns whether anything changed; only that row's line is
    /// rewritten, and a value equal to the current one leaves the line untouched.
    pub fn set(&mut self, row: usize, column: &str, value: &str) -> Result<bool, TableError> {
        let line = self.line_of(row);
        let Some(col) = self.column(column) else {
            return Err(TableError::UnknownColumn {
                line: self.header.number,
                column: column.to_owned(),
            });
        };
        if value.contains(['\n', '\r']) {
            return Err(TableError::NewlineInCell {
                line,
                column: self.columns[col].clone(),
            });
        }
        let value = value.trim();
        if self.get(row, col) == value {
            return Ok(false);
        }
        let Some(target) = self.rows.get_mut(row) else {
            return Ok(false);
        };
        let mut raw: Vec<String> = (0..target.cells.len())
            .map(|i| target.raw(i).unwrap_or_default().to_owned())
            .collect();
        // A short row gains the missing cells, styled like its last one.
        while raw.len() <= col {
            raw.push(" ".to_owned());
        }
        // A column is aligned when this cell is exactly as wide as the header's cell.
        let header_width = self.header.raw(col).map(|r| r.chars().count());
        let pad_to = header_width.filter(|&w| w == raw[col].chars().count());
        raw[col] = render_cell(&raw[col], value, pad_to);
        target.rebuild(&raw);
        Ok(true)
    }

    /// Writes the whole file back: untouched bytes verbatim, changed rows re-rendered.
    pub fn write_to(&self, out: &mut String) {
        out.push_str(&self.before);
        for line in [&self.header, &self.delimiter]
            .into_iter()
            .chain(self.rows.iter())
        {
            out.push_str(&line.text);
            out.push_str(line.eol.as_str());
        }
        out.push_str(&self.after);
    }
}

impl fmt::Display for TaskTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(
            self.before.len() + self.after.len() + self.rows.len() * 160 + 512,
        );
        self.write_to(&mut s);
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "# Tasks\n\n| id | status | notes |\n|---|---|---|\n| A-B-001 | done | a \\| b |\n| A-B-002 | not-started | |\n";

    #[test]
    fn round_trips_and_reads_cells() {
        let t = TaskTable::parse(EXAMPLE).unwrap();
        assert_eq!(t.to_string(), EXAMPLE);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(0, 2), "a | b");
        assert_eq!(t.get(1, 2), "");
        assert_eq!(t.find("A-B-002"), Some(1));
        assert_eq!(t.line_of(1), 6);
    }

    #[test]
    fn set_rewrites_one_line_and_escapes_pipes() {
        let mut t = TaskTable::parse(EXAMPLE).unwrap();
        assert!(t.set(1, "notes", "x | y").unwrap());
        let out = t.to_string();
        assert!(
            out.ends_with("| A-B-002 | not-started | x \\| y |\n"),
            "{out}"
        );
        let again = TaskTable::parse(&out).unwrap();
        assert_eq!(again.get(1, 2), "x | y");
        assert!(
            !t.set(1, "notes", "x | y").unwrap(),
            "same value is no change"
        );
    }

    #[test]
    fn value_with_backslash_before_pipe_round_trips() {
        let mut t = TaskTable::parse(EXAMPLE).unwrap();
        for v in ["a\\|b", "ends with \\", "\\\\|", "C:\\path"] {
            t.set(1, "notes", v).unwrap();
            let again = TaskTable::parse(&t.to_string()).unwrap();
            assert_eq!(again.get(1, 2), v);
            assert_eq!(again.cell_count(1), 3);
        }
    }

    #[test]
    fn aligned_cell_keeps_its_width() {
        assert_eq!(
            render_cell(" done        ", "blocked", Some(13)),
            " blocked     "
        );
        assert_eq!(render_cell(" done        ", "blocked", None), " blocked ");
        assert_eq!(render_cell("", "x", None), "x");
        assert_eq!(render_cell(" ", "x", None), " x ");
        assert_eq!(
            render_cell(" short ", "much longer", Some(7)),
            " much longer "
        );
        assert_eq!(render_cell("  ", "", Some(2)), "  ");
    }

    #[test]
    fn skips_tables_in_fenced_code() {
        let text = "```\n| id | status |\n|---|---|\n| X-1 | done |\n```\n\n| id | status |\n|---|---|\n| Y-1 | done |\n";
        let t = TaskTable::parse(text).unwrap();
        assert_eq!(t.get(0, 0), "Y-1");
        assert_eq!(t.to_string(), text);
    }

    #[test]
    fn rejects_invalid_utf8_with_line() {
        let err = TaskTable::parse_bytes(b"# Tasks\nok\nbad \xff here\n").unwrap_err();
        assert_eq!(err, TableError::NotUtf8 { line: 3, byte: 5 });
    }
}
