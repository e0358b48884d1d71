//! Report tables for people (`--format table` and `markdown`), laid out to fit a terminal.
//!
//! The report SQL names its columns for programs (`duration_ns`, `remote_addr`, `remote_port`),
//! and JSON and CSV keep them as they are. A person reading a terminal wants something else, so
//! this module presents the same values differently, and only here:
//!
//! - Times are `HH:MM:SS.mmm` UTC, with the date said once in the line above the reports, when
//!   every time shown falls on one day; a window over several days keeps the date in each time.
//! - A unit that changes with the magnitude is in the cell (`1.51 s`, `340 µs`, `20.4 KiB`); one
//!   that never changes is in the header (`failed %`). So a header never carries a unit suffix
//!   its cells contradict (`duration_ns` holding seconds): `duration_ns` is shown as `duration`.
//! - An address and its port (`remote_addr`, `remote_port`) are one column, `remote`, written
//!   `addr:port`, an IPv6 address as `[addr]:port`.
//! - The `source` column (the input file) only when there are several inputs, each named below
//!   their common directory, which the line above the reports names.
//! - With a width (the terminal's), a table never wraps a cell: when its columns do not fit,
//!   long text is cut with `…` and the columns of [`DROP_ORDER`] are left out, first first, and a
//!   line under the table names them. `--wide` ([`Layout::wide`]) turns all of this off but the
//!   units: every column of the SQL, each whole, as wide as it is.

use std::collections::BTreeSet;
use std::io::Write;

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use unicode_width::UnicodeWidthStr;

use crate::render::{Cell, Section, cell, civil, clock_time, human, human_time};

/// How tables for people are laid out.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// Characters per line (the terminal's); `None`: no limit (output to a file or a pipe).
    pub width: Option<u16>,
    /// Every column, each whole (`--wide`).
    pub wide: bool,
    /// The inputs' names (`source` values), for the line above the reports and the `source`
    /// column.
    pub sources: Vec<String>,
}

impl Layout {
    /// The width to lay out for: `COLUMNS` when set to a number, else that of the terminal
    /// stdout is, else none.
    pub fn detect_width() -> Option<u16> {
        if let Some(w) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<u16>().ok())
            && w > 0
        {
            return Some(w);
        }
        terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| w.0)
    }
}

/// Report columns left out, in this order (a group at once), when a table is wider than the terminal (the others
/// are kept, their text cut). Each says something another column says too, or matters less when
/// space is short; `--wide` shows them all.
pub const DROP_ORDER: &[&[&str]] = &[
    &["loss"],
    &["kernel"],
    &["conn_id"],
    &["pid"],
    &["first_process"],
    &["processes"],
    &["preexisting"],
    &["containers"],
    &["kind"],
    &["packets_sent", "packets_received"],
    &["reset_local", "reset_remote"],
    &["rtt_max_us"],
    &["handshake_p99_us"],
    &["bytes_sent", "bytes_received"],
    &["events_lost"],
    &["protocol"],
    &["hostname"],
    &["last_at"],
    &["last_activity_at"],
    &["unanswered"],
    &["open_at_end"],
    &["share_of_protocol_pct"],
    &["failed_before_pct", "failed_after_pct"],
    &["bucket_ns"],
    &["attempts"],
    &["role"],
    &["idle_ns"],
];

/// Text columns are cut to this width first, before any column is left out.
const COMFORTABLE_TEXT: usize = 40;
/// And to no less than this (or their header) as a last resort.
const NARROWEST_TEXT: usize = 10;

/// How times are written: all on one day, or not.
#[derive(Clone, Debug, PartialEq)]
pub enum Times {
    /// `HH:MM:SS.mmm`; the date (`YYYY-MM-DD`) is said once.
    OneDay(String),
    /// `YYYY-MM-DD HH:MM:SS.mmm`.
    SeveralDays,
    /// No time in any table.
    None,
}

/// The days of every time cell of `sections`.
pub fn times_of(sections: &[Section]) -> Times {
    let mut days = BTreeSet::new();
    for s in sections {
        for b in &s.batches {
            for col in b.columns() {
                for i in 0..b.num_rows() {
                    if let Cell::Time(ns) = cell(col, i) {
                        days.insert(civil(ns).0);
                    }
                }
            }
        }
    }
    match days.len() {
        0 => Times::None,
        1 => Times::OneDay(days.pop_first().unwrap_or_default()),
        _ => Times::SeveralDays,
    }
}

/// The directory every source is in (with its trailing `/`), when there are several.
fn common_dir(sources: &[String]) -> String {
    let Some(first) = sources.first() else { return String::new() };
    if sources.len() < 2 {
        return String::new();
    }
    let mut prefix = first.as_str();
    for s in &sources[1..] {
        let n = prefix.char_indices().zip(s.chars()).take_while(|((_, a), b)| a == b).count();
        prefix = &prefix[..prefix.char_indices().nth(n).map_or(prefix.len(), |(i, _)| i)];
    }
    match prefix.rfind('/') {
        Some(i) => first[..=i].to_string(),
        None => String::new(),
    }
}

/// The line above the reports: which recordings, and the day their times are on.
pub fn heading(layout: &Layout, times: &Times) -> String {
    let what = match layout.sources.as_slice() {
        [] => String::from("No recording"),
        [one] => format!("Recording {one}"),
        many => {
            let dir = common_dir(many);
            if dir.is_empty() {
                format!("{} recordings", many.len())
            } else {
                format!("{} recordings in {dir}", many.len())
            }
        }
    };
    match times {
        Times::OneDay(day) => format!("{what}; times are UTC, on {day}."),
        Times::SeveralDays => format!("{what}; times are UTC."),
        Times::None => format!("{what}."),
    }
}

/// The header people see for the column `name` (see the module doc).
pub fn header(name: &str) -> String {
    if let Some(base) = name.strip_suffix("_pct") {
        format!("{base} %")
    } else if let Some(base) = name.strip_suffix("_ns").or_else(|| name.strip_suffix("_us")) {
        base.to_string()
    } else {
        name.to_string()
    }
}

/// `addr:port`, `[v6]:port`.
pub fn endpoint(addr: &str, port: &str) -> String {
    if addr.is_empty() && port.is_empty() {
        String::new()
    } else if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// A value as people see it in a table (see the module doc).
pub fn people(name: &str, c: &Cell, times: &Times) -> String {
    match c {
        Cell::Time(ns) => match times {
            Times::OneDay(_) => clock_time(*ns),
            _ => human_time(*ns),
        },
        Cell::Int(_) | Cell::UInt(_) | Cell::Float(_) if name.ends_with("_pct") => {
            human(name, c).trim_end_matches('%').to_string()
        }
        _ => human(name, c),
    }
}

/// One column as shown.
#[derive(Debug)]
struct Column {
    /// The SQL column's name (the address's, for an endpoint).
    name: String,
    header: String,
    cells: Vec<String>,
    right: bool,
    /// Text that may be cut to fit.
    text: bool,
}

impl Column {
    fn width(&self) -> usize {
        self.cells.iter().map(|c| c.width()).chain([self.header.width()]).max().unwrap_or(0)
    }

    fn cut_to(&mut self, w: usize) {
        for c in &mut self.cells {
            if c.width() > w {
                let mut out = String::new();
                for ch in c.chars() {
                    if out.width() + ch.to_string().width() + 1 > w {
                        break;
                    }
                    out.push(ch);
                }
                out.push('…');
                *c = out;
            }
        }
    }
}

/// The columns of `section` as people see them, before fitting.
fn columns(section: &Section, layout: &Layout, times: &Times, dir: &str) -> Vec<Column> {
    let fields = section.schema.fields();
    let index = |n: &str| fields.iter().position(|f| f.name() == n);
    let value = |j: usize, i: usize, b: &arrow::record_batch::RecordBatch| {
        people(fields[j].name(), &cell(b.column(j), i), times)
    };
    let mut taken = vec![false; fields.len()];
    let mut out = Vec::new();
    for (j, f) in fields.iter().enumerate() {
        if taken[j] {
            continue;
        }
        let name = f.name().as_str();
        if name == "source" && layout.sources.len() < 2 && !layout.wide {
            continue;
        }
        let port = name.strip_suffix("_addr").filter(|_| !layout.wide).and_then(|p| index(&format!("{p}_port")));
        let mut col = Column {
            name: name.to_string(),
            header: header(name),
            cells: Vec::new(),
            right: f.data_type().is_numeric(),
            text: matches!(
                f.data_type(),
                arrow::datatypes::DataType::Utf8
                    | arrow::datatypes::DataType::LargeUtf8
                    | arrow::datatypes::DataType::Utf8View
            ),
        };
        if let Some(p) = port {
            // An address cut short is no address: endpoints are left out whole or not at all.
            taken[p] = true;
            col.header = name.trim_end_matches("_addr").to_string();
            col.text = false;
        }
        for b in &section.batches {
            for i in 0..b.num_rows() {
                let s = match port {
                    Some(p) => endpoint(&value(j, i, b), &value(p, i, b)),
                    None if name == "source" && !layout.wide => {
                        let v = value(j, i, b);
                        v.strip_prefix(dir).map_or(v.clone(), str::to_string)
                    }
                    None => value(j, i, b),
                };
                col.cells.push(s);
            }
        }
        out.push(col);
    }
    out
}

/// The width of a UTF8_FULL_CONDENSED table of these columns: each padded by a space either
/// side, with a border between and around them.
fn table_width(cols: &[Column]) -> usize {
    cols.iter().map(Column::width).sum::<usize>() + 3 * cols.len() + 1
}

/// Makes `cols` fit in `width` (see the module doc); returns the headers of the columns left out.
fn fit(cols: &mut Vec<Column>, width: usize) -> Vec<String> {
    let mut dropped = Vec::new();
    let shrink = |cols: &mut Vec<Column>, floor: usize| -> bool {
        let over = table_width(cols).saturating_sub(width);
        let widest = cols
            .iter_mut()
            .filter(|c| c.text)
            .map(|c| {
                let w = c.width();
                let min = floor.max(c.header.width());
                (w, min, c)
            })
            .filter(|(w, min, _)| w > min)
            .max_by_key(|(w, _, _)| *w);
        match widest {
            Some((w, min, c)) if over > 0 => {
                c.cut_to(min.max(w.saturating_sub(over)));
                true
            }
            _ => false,
        }
    };
    // Cut very long text first; then leave columns out in DROP_ORDER; then cut text to its
    // narrowest; then leave out the rightmost columns.
    while table_width(cols) > width && shrink(cols, COMFORTABLE_TEXT) {}
    for group in DROP_ORDER {
        if table_width(cols) <= width {
            break;
        }
        for name in *group {
            if let Some(k) = cols.iter().position(|c| c.name == *name) {
                dropped.push(cols.remove(k).header);
            }
        }
    }
    while table_width(cols) > width && shrink(cols, NARROWEST_TEXT) {}
    while table_width(cols) > width && cols.len() > 1 {
        if let Some(c) = cols.pop() {
            dropped.push(c.header);
        }
    }
    dropped
}

/// Words of `text` in lines of at most `width` (a longer word has a line of its own).
pub fn wrap(text: &str, width: Option<u16>) -> Vec<String> {
    let Some(width) = width.map(usize::from) else { return vec![text.to_string()] };
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.width() + 1 + word.width() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Writes a report section's table (and, under it, which columns did not fit).
pub fn write_table(
    out: &mut dyn Write,
    section: &Section,
    markdown: bool,
    layout: &Layout,
    times: &Times,
) -> std::io::Result<()> {
    let dir = common_dir(&layout.sources);
    let mut cols = columns(section, layout, times, &dir);
    let width = layout.width.filter(|_| !markdown && !layout.wide);
    let dropped = width.map(|w| fit(&mut cols, usize::from(w))).unwrap_or_default();
    let mut t = Table::new();
    t.load_preset(if markdown { presets::ASCII_MARKDOWN } else { presets::UTF8_FULL_CONDENSED });
    t.set_content_arrangement(ContentArrangement::Disabled);
    let esc = |s: &str| if markdown { s.replace('|', "\\|") } else { s.to_string() };
    t.set_header(cols.iter().map(|c| esc(&c.header)));
    for i in 0..section.num_rows() {
        t.add_row(cols.iter().map(|c| esc(&c.cells[i])));
    }
    for (j, c) in cols.iter().enumerate() {
        if c.right
            && let Some(col) = t.column_mut(j)
        {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    writeln!(out, "{t}")?;
    if !dropped.is_empty() {
        let w = width.unwrap_or(u16::MAX);
        let note = format!("(left out at {w} columns: {}; `--wide` shows every column)", dropped.join(", "));
        for line in wrap(&note, width) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_no_unit_their_cells_contradict() {
        assert_eq!(header("duration_ns"), "duration");
        assert_eq!(header("rtt_p50_us"), "rtt_p50");
        assert_eq!(header("failed_pct"), "failed %");
        assert_eq!(header("bytes_total"), "bytes_total");
        assert_eq!(people("failed_pct", &Cell::Float(12.34), &Times::None), "12.3");
    }

    #[test]
    fn endpoints_bracket_ipv6() {
        assert_eq!(endpoint("127.0.0.1", "443"), "127.0.0.1:443");
        assert_eq!(endpoint("::1", "46077"), "[::1]:46077");
        assert_eq!(endpoint("", ""), "");
    }

    #[test]
    fn sources_are_named_below_their_common_directory() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(common_dir(&s(&["samples/a.parquet", "samples/ab.parquet"])), "samples/");
        assert_eq!(common_dir(&s(&["a/x/1.parquet", "a/y/2.parquet"])), "a/");
        assert_eq!(common_dir(&s(&["x.parquet", "y.parquet"])), "");
        assert_eq!(common_dir(&s(&["samples/a.parquet"])), "");
    }

    #[test]
    fn wrapping_keeps_words_whole() {
        assert_eq!(wrap("aa bb cc", Some(5)), ["aa bb", "cc"]);
        assert_eq!(wrap("aaaaaaa b", Some(5)), ["aaaaaaa", "b"]);
        assert_eq!(wrap("aa bb", None), ["aa bb"]);
    }

    #[test]
    fn cut_text_ends_in_an_ellipsis() {
        let mut c = Column {
            name: "x".into(),
            header: "x".into(),
            cells: vec!["abcdefghij".into(), "abc".into()],
            right: false,
            text: true,
        };
        c.cut_to(5);
        assert_eq!(c.cells, ["abcd…", "abc"]);
    }
}
