//! The HTML document: a header, the lost-events banner, the recordings' metadata, the charts
//! (inline SVG) and the report tables, in one string.
//!
//! Self-contained by construction: the only markup is written here, the style is one inline
//! `<style>` element, there is no script, and no attribute names a URL, so the file opens the
//! same offline, from a mail attachment or years later. Every value from a recording (a process
//! name, a command line) is escaped. Cells are shown as the terminal tables show them, with the
//! same units ([`crate::render::human`]).

use std::fmt::Write as _;

use crate::render::{Section, cell, human};

/// One chart, drawn.
pub struct Figure {
    /// Its query's name: the figure's `id` is `chart-<name>`.
    pub name: String,
    pub title: String,
    pub answers: String,
    pub svg: String,
    /// Points or bars plotted (rows of its query): the `data-points` attribute.
    pub points: usize,
    /// Spans both columns of the grid.
    pub wide: bool,
}

/// A heading and the charts under it (one group per side of a diff, one otherwise).
pub struct ChartGroup {
    pub heading: Option<String>,
    /// Set when the page has several groups: figure ids are then `chart-<key>-<name>`.
    pub key: Option<String>,
    pub figures: Vec<Figure>,
}

/// What the page shows.
pub struct Page<'a> {
    pub title: String,
    /// The lost-events lines ([`crate::output::lost_banner`]).
    pub banner: &'a [String],
    /// The `recordings` table.
    pub recordings: &'a Section,
    pub charts: Vec<ChartGroup>,
    pub sections: &'a [Section],
    /// The heading above the report tables.
    pub tables_heading: &'a str,
}

const STYLE: &str = "
body { font-family: sans-serif; margin: 20px; color: #222; background: #fafafa; }
h1 { font-size: 24px; margin: 0 0 6px 0; }
h2 { font-size: 19px; margin: 28px 0 8px 0; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 4px 0; }
p.answers { margin: 0 0 6px 0; color: #555; font-size: 13px; max-width: 1100px; }
div.lost { background: #b00020; color: #fff; font-weight: bold; padding: 10px 14px; margin: 10px 0;
  border-radius: 4px; }
div.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 680px)); gap: 14px; }
figure { margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 4px; padding: 4px; }
figure.wide { grid-column: 1 / span 2; }
figure svg { display: block; max-width: 100%; height: auto; }
/* plotters sizes legend boxes for a narrow font; a condensed face, where there is one, fits them. */
figure svg text { font-stretch: condensed; }
div.scroll { overflow-x: auto; max-width: 100%; }
figcaption { font-size: 12px; color: #555; padding: 4px 6px; }
table { border-collapse: collapse; font-size: 12px; background: #fff; margin-bottom: 6px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; white-space: nowrap; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap { white-space: normal; min-width: 220px; max-width: 520px; word-break: break-all; }
p.note { font-size: 12px; color: #777; margin: 0; }
";

/// `s` safe inside HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole document.
pub fn render(page: &Page<'_>) -> String {
    let mut h = String::with_capacity(256 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&page.title),
        escape(&page.title)
    );
    for line in page.banner {
        // The terminal's banner, without the marks that make it stand out on a terminal.
        let text = line.trim_matches(|c| c == '!' || c == ' ');
        let _ = writeln!(h, "<div class=\"lost\" role=\"alert\">{}</div>", escape(text));
    }
    h.push_str("<h2>Recordings</h2>\n");
    // The command lines are long: a table of their own keeps the metadata one line per file.
    let (meta, commands) = split_off(page.recordings, "command_line");
    h.push_str(&table(&meta, "recordings"));
    if let Some(commands) = commands {
        h.push_str(&table(&commands, "command-lines"));
    }
    for group in &page.charts {
        let _ = writeln!(h, "<h2>{}</h2>", escape(group.heading.as_deref().unwrap_or("Charts")));
        h.push_str("<div class=\"grid\">\n");
        for f in &group.figures {
            let id = match &group.key {
                Some(k) => format!("{k}-{}", f.name),
                None => f.name.clone(),
            };
            let _ = writeln!(
                h,
                "<figure id=\"chart-{}\" class=\"chart{}\" data-chart=\"{}\" data-points=\"{}\" aria-label=\"{}\">\n{}\n<figcaption>{} ({} {}; query <code>queries/charts/{}.sql</code>)</figcaption>\n</figure>",
                escape(&id),
                if f.wide { " wide" } else { "" },
                escape(&f.name),
                f.points,
                escape(&f.title),
                f.svg,
                escape(&f.answers),
                f.points,
                if f.points == 1 { "row" } else { "rows" },
                escape(&f.name),
            );
        }
        h.push_str("</div>\n");
    }
    let _ = writeln!(h, "<h2>{}</h2>", escape(page.tables_heading));
    for s in page.sections {
        let _ = writeln!(h, "<h3 id=\"report-{}\">{}</h3>", escape(&s.name), escape(&s.name));
        if !s.answers.is_empty() {
            let _ = writeln!(h, "<p class=\"answers\">{}</p>", escape(&s.answers));
        }
        if s.num_rows() == 0 {
            h.push_str("<p class=\"note\">(no rows)</p>\n");
            continue;
        }
        h.push_str(&table(s, &format!("table-{}", s.name)));
        if s.truncated {
            let _ = writeln!(h, "<p class=\"note\">(first {} rows; <code>--top 0</code> shows all)</p>", s.num_rows());
        }
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// `section` without its column `name`, and that column after the row's key (`source`, or a
/// diff's `side, source`); `None` when there is no such column.
fn split_off(section: &Section, name: &str) -> (Section, Option<Section>) {
    let fields = section.schema.fields();
    let Some(at) = fields.iter().position(|f| f.name() == name) else {
        return (section.clone(), None);
    };
    let keys = if fields.first().is_some_and(|f| f.name() == "side") { 2 } else { 1 };
    let project = |columns: Vec<usize>| -> Option<Section> {
        let schema = std::sync::Arc::new(section.schema.project(&columns).ok()?);
        let batches = section.batches.iter().map(|b| b.project(&columns)).collect::<Result<Vec<_>, _>>().ok()?;
        Some(Section { schema, batches, ..section.clone() })
    };
    let rest: Vec<usize> = (0..fields.len()).filter(|&j| j != at).collect();
    let mut picked: Vec<usize> = (0..keys).filter(|&j| j != at).collect();
    picked.push(at);
    match (project(rest), project(picked)) {
        (Some(rest), Some(picked)) => (rest, Some(picked)),
        _ => (section.clone(), None),
    }
}

/// Long free text (command lines, cgroup paths) wraps instead of widening the table.
const WRAPPED_COLUMNS: &[&str] = &["command_line", "cgroup"];

/// A section as an HTML table, cells as the terminal shows them.
pub fn table(section: &Section, id: &str) -> String {
    let mut h = String::new();
    let _ = write!(h, "<div class=\"scroll\"><table id=\"{}\">\n<thead><tr>", escape(id));
    for f in section.schema.fields() {
        let _ = write!(h, "<th>{}</th>", escape(f.name()));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for batch in &section.batches {
        for i in 0..batch.num_rows() {
            h.push_str("<tr>");
            for (j, col) in batch.columns().iter().enumerate() {
                let field = section.schema.field(j);
                let class = if field.data_type().is_numeric() {
                    " class=\"num\""
                } else if WRAPPED_COLUMNS.contains(&field.name().as_str()) {
                    " class=\"wrap\""
                } else {
                    ""
                };
                let _ = write!(h, "<td{class}>{}</td>", escape(&human(field.name(), &cell(col, i))));
            }
            h.push_str("</tr>\n");
        }
    }
    h.push_str("</tbody>\n</table></div>\n");
    h
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{StringArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;

    fn section(name: &str, comm: &str) -> Section {
        let schema = Arc::new(Schema::new(vec![
            Field::new("comm", DataType::Utf8, false),
            Field::new("bytes_total", DataType::UInt64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![comm])), Arc::new(UInt64Array::from(vec![2048]))],
        )
        .unwrap();
        Section { name: name.into(), answers: "Who?".into(), schema, batches: vec![batch], truncated: false }
    }

    #[test]
    fn values_from_a_recording_are_escaped_and_shown_with_their_units() {
        let t = table(&section("talkers", "<script>x</script>"), "t");
        assert!(t.contains("&lt;script&gt;x&lt;/script&gt;") && !t.contains("<script"), "{t}");
        assert!(t.contains("<td class=\"num\">2.0 KiB</td>"), "{t}");
    }

    #[test]
    fn the_page_has_the_banner_figures_and_tables_and_no_script() {
        let recordings = section("recordings", "curl");
        let sections = [section("talkers", "curl")];
        let banner = ["!!! WARNING: 3 events were LOST !!!".to_string()];
        let page = Page {
            title: "t".into(),
            banner: &banner,
            recordings: &recordings,
            charts: vec![ChartGroup {
                heading: None,
                key: None,
                figures: vec![Figure {
                    name: "x".into(),
                    title: "X".into(),
                    answers: "a".into(),
                    svg: "<svg></svg>".into(),
                    points: 4,
                    wide: false,
                }],
            }],
            sections: &sections,
            tables_heading: "Reports",
        };
        let html = render(&page);
        assert!(html.contains("<div class=\"lost\" role=\"alert\">WARNING: 3 events were LOST</div>"), "{html}");
        assert!(html.contains("id=\"chart-x\"") && html.contains("data-points=\"4\""), "{html}");
        assert!(html.contains("<table id=\"table-talkers\">") && html.contains("<table id=\"recordings\">"));
        assert!(!html.contains("<script") && !html.contains("http"), "{html}");
    }
}
