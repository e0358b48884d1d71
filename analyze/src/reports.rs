//! The reports: SQL files from `queries/`, embedded in the binary, plus a user's own
//! (`--queries DIR`). Each file starts with a header comment:
//!
//! ```sql
//! -- name: failures
//! -- answers: Which destinations could not be connected to, and why?
//! SELECT ... ORDER BY ...
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::AnalyzeError;

/// The `connections` view (not a report).
pub const CONNECTIONS_VIEW: &str = include_str!("../../queries/views/connections.sql");

/// The two queries of `--diff`.
pub const DIFF_SUMMARY: &str = include_str!("../../queries/diff/summary.sql");
pub const DIFF_DESTINATIONS: &str = include_str!("../../queries/diff/destinations.sql");

/// The data of the charts of `--html` (`queries/charts/`), in the order the page shows them. Each
/// result has the columns its chart kind reads ([`crate::html::charts`]).
pub const CHARTS: &[(&str, &str)] = &[
    ("connections_per_second", include_str!("../../queries/charts/connections_per_second.sql")),
    ("failures_per_second", include_str!("../../queries/charts/failures_per_second.sql")),
    ("resets_per_second", include_str!("../../queries/charts/resets_per_second.sql")),
    ("retransmits_per_second", include_str!("../../queries/charts/retransmits_per_second.sql")),
    ("bytes_per_second", include_str!("../../queries/charts/bytes_per_second.sql")),
    ("top_talkers", include_str!("../../queries/charts/top_talkers.sql")),
    ("latency_distribution", include_str!("../../queries/charts/latency_distribution.sql")),
];

/// Every built-in report, in the order `--list-reports` shows them.
pub const BUILTIN: &[(&str, &str)] = &[
    ("summary", include_str!("../../queries/summary.sql")),
    ("outcomes", include_str!("../../queries/outcomes.sql")),
    ("containers", include_str!("../../queries/containers.sql")),
    ("failures", include_str!("../../queries/failures.sql")),
    ("resets", include_str!("../../queries/resets.sql")),
    ("talkers", include_str!("../../queries/talkers.sql")),
    ("latency", include_str!("../../queries/latency.sql")),
    ("durations", include_str!("../../queries/durations.sql")),
    ("idle", include_str!("../../queries/idle.sql")),
    ("timeline", include_str!("../../queries/timeline.sql")),
    ("udp", include_str!("../../queries/udp.sql")),
    ("processes", include_str!("../../queries/processes.sql")),
    ("retransmits", include_str!("../../queries/retransmits.sql")),
];

/// The pseudo-report `default`: what an SRE in the middle of an incident wants first.
pub const DEFAULT_NAME: &str = "default";
pub const DEFAULT: &[&str] =
    &["summary", "outcomes", "failures", "resets", "talkers", "latency", "durations", "idle", "timeline", "udp"];
/// Part of `default`, after `outcomes`, when some input has a container or a pod
/// ([`crate::inputs::Recording::has_workloads`]): on a host without them it would be one line.
pub const DEFAULT_WITH_WORKLOADS: &str = "containers";

/// The reports `default` runs: [`DEFAULT`], with [`DEFAULT_WITH_WORKLOADS`] when `workloads`.
pub fn default_reports(workloads: bool) -> Vec<&'static str> {
    let mut v = DEFAULT.to_vec();
    if workloads {
        let at = v.iter().position(|n| *n == "outcomes").map_or(v.len(), |i| i + 1);
        v.insert(at, DEFAULT_WITH_WORKLOADS);
    }
    v
}

/// One report.
#[derive(Clone, Debug)]
pub struct Report {
    pub name: String,
    /// The question it answers, from the `-- answers:` header (continuation lines joined).
    pub answers: String,
    pub sql: String,
    /// `None` for a built-in report.
    pub file: Option<PathBuf>,
}

/// The header of a query file: `(name, answers)`.
pub fn parse_header(sql: &str) -> (Option<String>, Option<String>) {
    let mut name = None;
    let mut answers: Option<String> = None;
    let mut in_answers = false;
    for line in sql.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let Some(comment) = t.strip_prefix("--") else {
            break;
        };
        if let Some(v) = comment.trim().strip_prefix("name:") {
            name = Some(v.trim().to_string());
            in_answers = false;
        } else if let Some(v) = comment.trim().strip_prefix("answers:") {
            answers = Some(v.trim().to_string());
            in_answers = true;
        } else if in_answers && comment.starts_with("   ") {
            if let Some(a) = answers.as_mut() {
                a.push(' ');
                a.push_str(comment.trim());
            }
        } else {
            in_answers = false;
        }
    }
    (name, answers)
}

/// The known reports, by name.
#[derive(Clone, Debug)]
pub struct Catalog {
    reports: BTreeMap<String, Report>,
    order: Vec<String>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Catalog {
    pub fn builtin() -> Self {
        let mut c = Catalog { reports: BTreeMap::new(), order: Vec::new() };
        for (name, sql) in BUILTIN {
            let (_, answers) = parse_header(sql);
            c.insert(Report {
                name: (*name).to_string(),
                answers: answers.unwrap_or_default(),
                sql: (*sql).to_string(),
                file: None,
            });
        }
        c
    }

    fn insert(&mut self, r: Report) {
        if !self.reports.contains_key(&r.name) {
            self.order.push(r.name.clone());
        }
        self.reports.insert(r.name.clone(), r);
    }

    /// Adds every `*.sql` file of `dir`; a report named like a built-in one replaces it.
    pub fn add_dir(&mut self, dir: &Path) -> Result<(), AnalyzeError> {
        let read_err = |cause| AnalyzeError::Read { path: dir.to_owned(), cause };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let p = entry.map_err(read_err)?.path();
            if p.extension().is_some_and(|e| e == "sql") && p.is_file() {
                files.push(p);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(AnalyzeError::BadReportFile {
                path: dir.to_owned(),
                what: "no `.sql` file in this directory".into(),
            });
        }
        for p in files {
            let sql = std::fs::read_to_string(&p).map_err(|cause| AnalyzeError::Read { path: p.clone(), cause })?;
            let (name, answers) = parse_header(&sql);
            let name = match name {
                Some(n) => n,
                None => p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            };
            if name.is_empty() || name == DEFAULT_NAME || name.contains(char::is_whitespace) {
                return Err(AnalyzeError::BadReportFile { path: p, what: format!("`{name}` cannot be a report name") });
            }
            if sql_body(&sql).is_empty() {
                return Err(AnalyzeError::BadReportFile { path: p, what: "no SQL after the header".into() });
            }
            tracing::debug!(report = %name, file = %p.display(), "added report");
            self.insert(Report { name, answers: answers.unwrap_or_default(), sql, file: Some(p) });
        }
        Ok(())
    }

    /// All reports, built-in first, then a user's in file order.
    pub fn all(&self) -> impl Iterator<Item = &Report> {
        self.order.iter().filter_map(|n| self.reports.get(n))
    }

    pub fn known(&self) -> String {
        let mut v: Vec<&str> = vec![DEFAULT_NAME];
        v.extend(self.order.iter().map(String::as_str));
        v.join(", ")
    }

    /// The reports named (`default` expands to its list, see [`default_reports`]), in the order
    /// given, without repeats. `workloads`: some input has a container or a pod.
    pub fn resolve(&self, names: &[String], workloads: bool) -> Result<Vec<&Report>, AnalyzeError> {
        let mut out: Vec<&Report> = Vec::new();
        let default = [DEFAULT_NAME.to_string()];
        let names = if names.is_empty() { &default[..] } else { names };
        for name in names {
            let expanded: Vec<&str> =
                if name == DEFAULT_NAME { default_reports(workloads) } else { vec![name.as_str()] };
            for n in expanded {
                let r = self
                    .reports
                    .get(n)
                    .ok_or_else(|| AnalyzeError::UnknownReport { name: n.to_string(), known: self.known() })?;
                if !out.iter().any(|o| o.name == r.name) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }
}

/// The SQL of a query file without its comments and trailing `;`.
pub fn sql_body(sql: &str) -> String {
    let mut out = String::new();
    for line in sql.lines() {
        let code = match line.find("--") {
            Some(i) => &line[..i],
            None => line,
        };
        if !code.trim().is_empty() {
            out.push_str(code.trim_end());
            out.push('\n');
        }
    }
    out.trim().trim_end_matches(';').trim().to_string()
}

/// Whether the statement ends in a top-level `ORDER BY` (optionally followed by `LIMIT`).
pub fn ends_in_order_by(sql: &str) -> bool {
    let body = sql_body(sql).to_ascii_uppercase();
    let bytes = body.as_bytes();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut last_order = None;
    let mut last_other = None;
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'\'' => in_str = !in_str,
            b'(' if !in_str => depth += 1,
            b')' if !in_str => depth -= 1,
            _ if !in_str && depth == 0 => {
                let rest = &body[i..];
                let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
                if boundary && rest.starts_with("ORDER BY") {
                    last_order = Some(i);
                }
                for kw in ["FROM ", "FROM\n", "UNION", "WHERE", "GROUP BY", "HAVING"] {
                    if boundary && rest.starts_with(kw) {
                        last_other = Some(i);
                    }
                }
            }
            _ => {}
        }
    }
    match (last_order, last_other) {
        (Some(o), Some(x)) => o > x,
        (Some(_), None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_report_has_a_header_naming_it_and_ends_in_order_by() {
        for (name, sql) in BUILTIN {
            let (n, answers) = parse_header(sql);
            assert_eq!(n.as_deref(), Some(*name), "header name of {name}");
            assert!(answers.is_some_and(|a| a.len() > 20), "{name} needs an `-- answers:` header");
            assert!(ends_in_order_by(sql), "{name} must end in ORDER BY");
        }
        for sql in [DIFF_SUMMARY, DIFF_DESTINATIONS] {
            assert!(ends_in_order_by(sql));
        }
    }

    #[test]
    fn every_sql_file_in_queries_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../queries");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "sql") {
                let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
                assert!(BUILTIN.iter().any(|(n, _)| *n == stem), "{} is not embedded in reports::BUILTIN", p.display());
            }
        }
        for n in DEFAULT {
            assert!(BUILTIN.iter().any(|(b, _)| b == n), "{n}");
        }
    }

    #[test]
    fn every_chart_query_is_embedded_has_a_header_naming_it_and_ends_in_order_by() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../queries/charts");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut embedded: Vec<String> = CHARTS.iter().map(|(n, _)| (*n).to_string()).collect();
        embedded.sort();
        assert_eq!(files, embedded, "queries/charts/*.sql and reports::CHARTS differ");
        for (name, sql) in CHARTS {
            let (n, answers) = parse_header(sql);
            assert_eq!(n.as_deref(), Some(*name), "header name of {name}");
            assert!(answers.is_some_and(|a| a.len() > 20), "{name} needs an `-- answers:` header");
            assert!(ends_in_order_by(sql), "{name} must end in ORDER BY");
        }
    }

    #[test]
    fn order_by_check_rejects_order_by_only_in_a_subquery() {
        assert!(!ends_in_order_by("SELECT * FROM (SELECT a FROM t ORDER BY a) x"));
        assert!(!ends_in_order_by("SELECT a FROM t ORDER BY a UNION ALL SELECT b FROM u"));
        assert!(ends_in_order_by("-- c\nSELECT a FROM t ORDER BY a LIMIT 3;"));
    }

    #[test]
    fn unknown_report_lists_the_known_ones() {
        let c = Catalog::builtin();
        let e = c.resolve(&["nope".into()], false).unwrap_err().to_string();
        assert!(e.contains("`nope`") && e.contains("failures") && e.contains("default"), "{e}");
    }

    #[test]
    fn default_expands_and_repeats_are_dropped() {
        let c = Catalog::builtin();
        let r = c.resolve(&["failures".into(), "default".into()], false).unwrap();
        assert_eq!(r[0].name, "failures");
        assert_eq!(r.len(), DEFAULT.len());
    }

    #[test]
    fn default_has_the_containers_report_only_with_containers_or_pods() {
        let c = Catalog::builtin();
        let names = |w| c.resolve(&["default".into()], w).unwrap().iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert!(!names(false).contains(&"containers".to_string()));
        let with = names(true);
        assert_eq!(with.len(), DEFAULT.len() + 1);
        assert_eq!(with[..3], ["summary", "outcomes", "containers"]);
    }

    #[test]
    fn continuation_lines_join_the_answer() {
        let (n, a) = parse_header("-- name: x\n-- answers: one\n--   two\nSELECT 1");
        assert_eq!(n.as_deref(), Some("x"));
        assert_eq!(a.as_deref(), Some("one two"));
    }
}
