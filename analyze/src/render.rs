//! Rendering results: terminal tables with readable units, JSON, CSV, Markdown.
//!
//! Tables and Markdown are for people, so numbers get units from their column names (the report
//! SQL follows the convention): `*bytes*` columns are sizes (KiB, MiB), `*_us` microseconds and
//! `*_ns` nanoseconds are durations, `*_pct` percentages, timestamps are UTC times to the
//! millisecond. JSON and CSV are for programs and carry the raw values. How a report's table
//! is laid out for people (which columns, in what form, to fit what width) is [`crate::tables`].
//!
//! A report's column named in [`OPTIONAL_COLUMNS`] (the container or pod, `workload`) is left
//! out of every format when no row has a value in it ([`drop_unset_optional`]): a recording of a
//! host without containers, or one of schema version 1, gets its reports exactly as narrow as
//! before those columns existed. `--sql` results are never narrowed: they have the columns asked
//! for.

use std::io::Write;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    LargeStringArray, StringArray, StringViewArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use comfy_table::{CellAlignment, ContentArrangement, Table, presets};

use crate::tables;
pub use crate::tables::Layout;

/// Output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables sized to the terminal, with readable units.
    #[default]
    Table,
    /// One JSON document: an array of row objects for `--sql`, an object keyed by report name
    /// for reports.
    Json,
    /// Comma-separated values with a header row; several reports are separated by a blank line
    /// and a `# report` line.
    Csv,
    /// Markdown tables with readable units, one section per report.
    Markdown,
}

/// One value, typed enough to render it either for people or for programs.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    /// Unix nanoseconds, UTC.
    Time(i64),
    /// Anything else, as Arrow displays it.
    Other(String),
}

macro_rules! get {
    ($a:expr, $t:ty, $i:expr, $v:ident => $e:expr) => {{
        let arr = $a.as_any().downcast_ref::<$t>()?;
        let $v = arr.value($i);
        Some($e)
    }};
}

fn typed_cell(a: &ArrayRef, i: usize) -> Option<Cell> {
    use DataType::*;
    match a.data_type() {
        Boolean => get!(a, BooleanArray, i, v => Cell::Bool(v)),
        Int8 => get!(a, Int8Array, i, v => Cell::Int(v.into())),
        Int16 => get!(a, Int16Array, i, v => Cell::Int(v.into())),
        Int32 => get!(a, Int32Array, i, v => Cell::Int(v.into())),
        Int64 => get!(a, Int64Array, i, v => Cell::Int(v)),
        UInt8 => get!(a, UInt8Array, i, v => Cell::UInt(v.into())),
        UInt16 => get!(a, UInt16Array, i, v => Cell::UInt(v.into())),
        UInt32 => get!(a, UInt32Array, i, v => Cell::UInt(v.into())),
        UInt64 => get!(a, UInt64Array, i, v => Cell::UInt(v)),
        Float32 => get!(a, Float32Array, i, v => Cell::Float(v.into())),
        Float64 => get!(a, Float64Array, i, v => Cell::Float(v)),
        Utf8 => get!(a, StringArray, i, v => Cell::Str(v.to_string())),
        LargeUtf8 => get!(a, LargeStringArray, i, v => Cell::Str(v.to_string())),
        Utf8View => get!(a, StringViewArray, i, v => Cell::Str(v.to_string())),
        Timestamp(TimeUnit::Nanosecond, _) => {
            get!(a, TimestampNanosecondArray, i, v => Cell::Time(v))
        }
        Timestamp(TimeUnit::Microsecond, _) => {
            get!(a, TimestampMicrosecondArray, i, v => Cell::Time(v.saturating_mul(1_000)))
        }
        Timestamp(TimeUnit::Millisecond, _) => {
            get!(a, TimestampMillisecondArray, i, v => Cell::Time(v.saturating_mul(1_000_000)))
        }
        Timestamp(TimeUnit::Second, _) => {
            get!(a, TimestampSecondArray, i, v => Cell::Time(v.saturating_mul(1_000_000_000)))
        }
        _ => None,
    }
}

/// The value at row `i` of `a`.
pub fn cell(a: &ArrayRef, i: usize) -> Cell {
    if a.is_null(i) {
        return Cell::Null;
    }
    if let Some(c) = typed_cell(a, i) {
        return c;
    }
    let opts = FormatOptions::default();
    match ArrayFormatter::try_new(a.as_ref(), &opts) {
        Ok(f) => Cell::Other(f.value(i).to_string()),
        Err(_) => Cell::Other(String::from("?")),
    }
}

/// A result to render: a report's rows, or those of `--sql`.
#[derive(Clone, Debug)]
pub struct Section {
    pub name: String,
    /// The question the report answers (empty for `--sql`).
    pub answers: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Rows left out by `--top` (the report had more), if known.
    pub truncated: bool,
}

impl Section {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Report columns that are left out when every row's value is NULL (see the module doc).
pub const OPTIONAL_COLUMNS: &[&str] = &["workload"];

/// `section` without its [`OPTIONAL_COLUMNS`] that hold only NULLs (all of them, when it has no
/// rows).
pub fn drop_unset_optional(section: Section) -> Section {
    let schema = section.schema.clone();
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&j| {
            !OPTIONAL_COLUMNS.contains(&schema.field(j).name().as_str())
                || section.batches.iter().any(|b| b.column(j).null_count() < b.num_rows())
        })
        .collect();
    if keep.len() == schema.fields().len() {
        return section;
    }
    let Ok(narrow) = schema.project(&keep) else { return section };
    let batches: Result<Vec<RecordBatch>, _> = section.batches.iter().map(|b| b.project(&keep)).collect();
    match batches {
        Ok(batches) => Section { schema: std::sync::Arc::new(narrow), batches, ..section },
        Err(_) => section,
    }
}

/// RFC 3339 UTC with nanoseconds (for JSON and CSV).
pub fn rfc3339_ns(ns: i64) -> String {
    let (date, secs_of_day) = civil(ns);
    format!(
        "{date}T{:02}:{:02}:{:02}.{:09}Z",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60,
        ns.rem_euclid(1_000_000_000)
    )
}

/// `YYYY-MM-DD HH:MM:SS.mmm` UTC (for people).
pub fn human_time(ns: i64) -> String {
    format!("{} {}", civil(ns).0, clock_time(ns))
}

/// `HH:MM:SS.mmm` UTC (for people, when the date is said elsewhere).
pub fn clock_time(ns: i64) -> String {
    let (_, s) = civil(ns);
    format!("{:02}:{:02}:{:02}.{:03}", s / 3600, s % 3600 / 60, s % 60, ns.rem_euclid(1_000_000_000) / 1_000_000)
}

/// The UTC date (`YYYY-MM-DD`) of Unix nanoseconds `ns`, and the seconds into that day.
pub(crate) fn civil(ns: i64) -> (String, i64) {
    let secs = ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (format!("{y:04}-{m:02}-{d:02}"), secs.rem_euclid(86_400))
}

/// `1.5 KiB`, `3.2 MiB`.
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b;
    let mut u = 0;
    while v.abs() >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{} B", b.round() as i64) } else { format!("{v:.1} {}", UNITS[u]) }
}

/// A duration in nanoseconds: `850 µs`, `12.3 ms`, `4.20 s`, `3m 12s`, `2h 03m`, `1d 04h`.
pub fn human_duration_ns(ns: f64) -> String {
    let a = ns.abs();
    let sign = if ns < 0.0 { "-" } else { "" };
    if a < 1_000.0 {
        format!("{sign}{a:.0} ns")
    } else if a < 1_000_000.0 {
        format!("{sign}{:.0} µs", a / 1e3)
    } else if a < 1e9 {
        format!("{sign}{:.1} ms", a / 1e6)
    } else if a < 60e9 {
        format!("{sign}{:.2} s", a / 1e9)
    } else {
        let s = (a / 1e9).round() as u64;
        if s < 3600 {
            format!("{sign}{}m {:02}s", s / 60, s % 60)
        } else if s < 86_400 {
            format!("{sign}{}h {:02}m", s / 3600, s % 3600 / 60)
        } else {
            format!("{sign}{}d {:02}h", s / 86_400, s % 86_400 / 3600)
        }
    }
}

/// `1,234,567`.
fn thousands(s: &str) -> String {
    let (sign, digits) = s.strip_prefix('-').map_or(("", s), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn num(c: &Cell) -> Option<f64> {
    match c {
        Cell::Int(v) => Some(*v as f64),
        Cell::UInt(v) => Some(*v as f64),
        Cell::Float(v) => Some(*v),
        _ => None,
    }
}

/// How a column is shown to people, from its name (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Unit {
    Bytes,
    Micros,
    Nanos,
    Percent,
    /// Identifiers: no thousands separators.
    Plain,
    Count,
}

fn unit_of(column: &str) -> Unit {
    let c = column.to_ascii_lowercase();
    if c.contains("bytes") {
        Unit::Bytes
    } else if c.ends_with("_us") {
        Unit::Micros
    } else if c.ends_with("_ns") {
        Unit::Nanos
    } else if c.ends_with("_pct") {
        Unit::Percent
    } else if c.ends_with("port") || c.ends_with("pid") || c.ends_with("_id") || c == "family" || c.contains("version")
    {
        Unit::Plain
    } else {
        Unit::Count
    }
}

/// A cell for people.
pub fn human(column: &str, c: &Cell) -> String {
    let unit = unit_of(column);
    match (c, unit) {
        (Cell::Null, _) => String::new(),
        (Cell::Time(ns), _) => human_time(*ns),
        (Cell::Bool(b), _) => if *b { "yes" } else { "no" }.to_string(),
        (Cell::Str(s) | Cell::Other(s), _) => s.clone(),
        (_, Unit::Bytes) => human_bytes(num(c).unwrap_or(0.0)),
        (_, Unit::Micros) => human_duration_ns(num(c).unwrap_or(0.0) * 1e3),
        (_, Unit::Nanos) => human_duration_ns(num(c).unwrap_or(0.0)),
        (_, Unit::Percent) => format!("{:.1}%", num(c).unwrap_or(0.0)),
        (Cell::Int(v), Unit::Plain) => v.to_string(),
        (Cell::UInt(v), Unit::Plain) => v.to_string(),
        (Cell::Int(v), _) => thousands(&v.to_string()),
        (Cell::UInt(v), _) => thousands(&v.to_string()),
        (Cell::Float(f), _) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                thousands(&format!("{f:.0}"))
            } else {
                format!("{f:.2}")
            }
        }
    }
}

/// A cell for programs (CSV): raw values, RFC 3339 times.
pub fn raw(c: &Cell) -> String {
    match c {
        Cell::Null => String::new(),
        Cell::Bool(b) => b.to_string(),
        Cell::Int(v) => v.to_string(),
        Cell::UInt(v) => v.to_string(),
        Cell::Float(f) => f.to_string(),
        Cell::Str(s) | Cell::Other(s) => s.clone(),
        Cell::Time(ns) => rfc3339_ns(*ns),
    }
}

fn json_value(c: &Cell) -> serde_json::Value {
    use serde_json::Value;
    match c {
        Cell::Null => Value::Null,
        Cell::Bool(b) => Value::Bool(*b),
        Cell::Int(v) => Value::from(*v),
        Cell::UInt(v) => Value::from(*v),
        Cell::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Cell::Str(s) | Cell::Other(s) => Value::String(s.clone()),
        Cell::Time(ns) => Value::String(rfc3339_ns(*ns)),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// Writes the header row of a CSV table.
pub fn write_csv_header(out: &mut dyn Write, schema: &SchemaRef) -> std::io::Result<()> {
    let names: Vec<String> = schema.fields().iter().map(|f| csv_field(f.name())).collect();
    writeln!(out, "{}", names.join(","))
}

/// Writes the rows of `batch` as CSV.
pub fn write_csv_rows(out: &mut dyn Write, batch: &RecordBatch) -> std::io::Result<()> {
    let mut line = String::new();
    for i in 0..batch.num_rows() {
        line.clear();
        for (j, col) in batch.columns().iter().enumerate() {
            if j > 0 {
                line.push(',');
            }
            line.push_str(&csv_field(&raw(&cell(col, i))));
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Writes the rows of `batch` as JSON objects, each preceded by `,` unless `*first`.
pub fn write_json_rows(out: &mut dyn Write, batch: &RecordBatch, first: &mut bool) -> std::io::Result<()> {
    let schema = batch.schema();
    for i in 0..batch.num_rows() {
        let mut obj = String::from("{");
        for (j, col) in batch.columns().iter().enumerate() {
            if j > 0 {
                obj.push(',');
            }
            obj.push_str(&serde_json::Value::String(schema.field(j).name().clone()).to_string());
            obj.push(':');
            obj.push_str(&json_value(&cell(col, i)).to_string());
        }
        obj.push('}');
        if !*first {
            out.write_all(b",\n")?;
        }
        *first = false;
        out.write_all(obj.as_bytes())?;
    }
    Ok(())
}

fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric()
}

/// A comfy-table of a `--sql` result, for people: every column asked for, wrapped to `width`.
/// Reports are laid out by [`crate::tables`] instead.
pub fn table(section: &Section, markdown: bool, width: Option<u16>) -> Table {
    let mut t = Table::new();
    if markdown {
        t.load_preset(presets::ASCII_MARKDOWN);
    } else {
        t.load_preset(presets::UTF8_FULL_CONDENSED);
        t.set_content_arrangement(ContentArrangement::Dynamic);
        if let Some(w) = width {
            t.set_width(w);
        }
    }
    t.set_header(section.schema.fields().iter().map(|f| f.name().clone()));
    for batch in &section.batches {
        for i in 0..batch.num_rows() {
            let row: Vec<String> = batch
                .columns()
                .iter()
                .enumerate()
                .map(|(j, col)| {
                    let s = human(section.schema.field(j).name(), &cell(col, i));
                    if markdown { s.replace('|', "\\|") } else { s }
                })
                .collect();
            t.add_row(row);
        }
    }
    for (j, f) in section.schema.fields().iter().enumerate() {
        if is_numeric(f.data_type())
            && let Some(c) = t.column_mut(j)
        {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// Writes complete sections. `bare` (the `--sql` case): no titles, JSON is a bare array, and a
/// table has every column asked for (`layout` gives it only its width); reports' tables are
/// laid out by [`crate::tables`].
pub fn write_sections(
    out: &mut dyn Write,
    format: Format,
    sections: &[Section],
    bare: bool,
    layout: &Layout,
) -> std::io::Result<()> {
    match format {
        Format::Table | Format::Markdown => {
            let md = format == Format::Markdown;
            let width = layout.width.filter(|_| !md);
            let times = tables::times_of(sections);
            if !bare {
                for line in tables::wrap(&tables::heading(layout, &times), width) {
                    writeln!(out, "{line}")?;
                }
                writeln!(out)?;
            }
            for (k, s) in sections.iter().enumerate() {
                if k > 0 {
                    writeln!(out)?;
                }
                if !bare {
                    if md {
                        writeln!(out, "## {}\n", s.name)?;
                        if !s.answers.is_empty() {
                            writeln!(out, "{}\n", s.answers)?;
                        }
                    } else {
                        writeln!(out, "== {} ==", s.name)?;
                        for line in tables::wrap(&s.answers, width).iter().filter(|l| !l.is_empty()) {
                            writeln!(out, "{line}")?;
                        }
                    }
                }
                if s.num_rows() == 0 {
                    writeln!(out, "(no rows)")?;
                    continue;
                }
                if bare {
                    writeln!(out, "{}", table(s, md, layout.width))?;
                } else {
                    tables::write_table(out, s, md, layout, &times)?;
                }
                if s.truncated {
                    writeln!(out, "(first {} rows; `--top 0` shows all)", s.num_rows())?;
                }
            }
            Ok(())
        }
        Format::Csv => {
            for (k, s) in sections.iter().enumerate() {
                if k > 0 {
                    writeln!(out)?;
                }
                if !bare {
                    writeln!(out, "# {}", s.name)?;
                }
                write_csv_header(out, &s.schema)?;
                for b in &s.batches {
                    write_csv_rows(out, b)?;
                }
            }
            Ok(())
        }
        Format::Json => {
            if bare {
                let mut first = true;
                out.write_all(b"[\n")?;
                for s in sections {
                    for b in &s.batches {
                        write_json_rows(out, b, &mut first)?;
                    }
                }
                out.write_all(b"\n]\n")?;
            } else {
                out.write_all(b"{\n")?;
                for (k, s) in sections.iter().enumerate() {
                    if k > 0 {
                        out.write_all(b",\n")?;
                    }
                    writeln!(out, "{}: [", serde_json::Value::String(s.name.clone()))?;
                    let mut first = true;
                    for b in &s.batches {
                        write_json_rows(out, b, &mut first)?;
                    }
                    out.write_all(b"\n]")?;
                }
                out.write_all(b"\n}\n")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_readable() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
        assert_eq!(human_bytes(5.0 * 1024.0 * 1024.0 * 1024.0), "5.0 GiB");
        assert_eq!(human_duration_ns(850_000.0), "850 µs");
        assert_eq!(human_duration_ns(12_340_000.0), "12.3 ms");
        assert_eq!(human_duration_ns(4.2e9), "4.20 s");
        assert_eq!(human_duration_ns(192e9), "3m 12s");
        assert_eq!(human_duration_ns(7380e9), "2h 03m");
        assert_eq!(human("rtt_p50_us", &Cell::Float(1500.0)), "1.5 ms");
        assert_eq!(human("connections", &Cell::UInt(1234567)), "1,234,567");
        assert_eq!(human("remote_port", &Cell::UInt(44301)), "44301");
        assert_eq!(human("failed_pct", &Cell::Float(12.34)), "12.3%");
    }

    #[test]
    fn times_render_in_utc() {
        let ns = 1_767_225_600_000_000_000 + 1_234_000_000;
        assert_eq!(human_time(ns), "2026-01-01 00:00:01.234");
        assert_eq!(rfc3339_ns(ns), "2026-01-01T00:00:01.234000000Z");
    }

    fn section(workload: Vec<Option<&str>>) -> Section {
        use arrow::datatypes::{Field, Schema};
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("workload", DataType::Utf8, true),
            Field::new("remote_addr", DataType::Utf8, true),
            Field::new("error", DataType::Utf8, true),
        ]));
        let n = workload.len();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                std::sync::Arc::new(StringArray::from(workload)),
                std::sync::Arc::new(StringArray::from(vec![Some("10.0.0.1"); n])),
                std::sync::Arc::new(StringArray::from(vec![None::<&str>; n])),
            ],
        )
        .unwrap();
        Section { name: "r".into(), answers: String::new(), schema, batches: vec![batch], truncated: false }
    }

    fn names(s: &Section) -> Vec<String> {
        s.schema.fields().iter().map(|f| f.name().clone()).collect()
    }

    #[test]
    fn an_optional_column_without_values_is_left_out_in_every_format() {
        let s = drop_unset_optional(section(vec![None, None]));
        // `error` is NULL everywhere too, but not optional: it stays.
        assert_eq!(names(&s), ["remote_addr", "error"]);
        assert_eq!(s.batches[0].num_columns(), 2);
        for format in [Format::Csv, Format::Json, Format::Table, Format::Markdown] {
            let mut out = Vec::new();
            write_sections(&mut out, format, std::slice::from_ref(&s), false, &Layout::default()).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(!text.contains("workload") && text.contains("remote_addr"), "{format:?}: {text}");
        }
        let empty = drop_unset_optional(section(vec![]));
        assert_eq!(names(&empty), ["remote_addr", "error"]);
    }

    #[test]
    fn an_optional_column_with_one_value_stays_with_its_nulls() {
        let s = drop_unset_optional(section(vec![None, Some("prod/web-0")]));
        assert_eq!(names(&s), ["workload", "remote_addr", "error"]);
        let mut out = Vec::new();
        write_sections(&mut out, Format::Csv, &[s], false, &Layout::default()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# r\nworkload,remote_addr,error\n,10.0.0.1,\nprod/web-0,10.0.0.1,\n"
        );
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }
}
