//! What each chart of the page shows and where its data comes from: one SQL file of
//! `queries/charts/` per chart ([`crate::reports::CHARTS`]), run through the analyzer session,
//! and its rows read into plain series, one point per row.
//!
//! The SQL decides every number; this module only reads the result's columns by name (each
//! [`Kind`] states the columns it reads) and groups rows into series in the order they come.
//! Nothing is dropped, merged or resampled on the way, so a chart holds exactly as many points
//! (or bars) as its query returns rows: [`Data::points`] says how many, and the page writes it
//! next to the chart for a reader or a test to check.

use arrow::array::{Array, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;

use crate::AnalyzeError;
use crate::reports::CHARTS;
use crate::session::Analyzer;

/// How a chart is drawn, and so which columns its query returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Lines over wall-clock time: `t` (timestamp), `series` (text), `value` (number),
    /// `bucket_ns` (the buckets' width), one row per series and time bucket.
    Rate(Unit),
    /// Cumulative distributions on a logarithmic time axis, in panels side by side: `panel`,
    /// `series`, `x` (µs), `value` (share, 0 to 1).
    Distribution,
    /// Horizontal bars, each split into the bytes sent and received: `label`, `bytes_sent`,
    /// `bytes_received`, one row per bar, the largest first.
    Bars,
}

/// The unit of a rate chart's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Things per second (connections, failures, segments).
    PerSecond,
    /// Bytes per second.
    BytesPerSecond,
}

/// One chart of the page.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Its query's name in [`CHARTS`] (`queries/charts/<name>.sql`).
    pub name: &'static str,
    pub title: &'static str,
    /// What the value axis counts.
    pub axis: &'static str,
    pub kind: Kind,
}

/// The charts, in the order of [`CHARTS`] (a test checks they match).
pub const SPECS: &[Spec] = &[
    Spec {
        name: "connections_per_second",
        title: "Connections started per second, by outcome",
        axis: "connections / s",
        kind: Kind::Rate(Unit::PerSecond),
    },
    Spec {
        name: "failures_per_second",
        title: "Failed attempts per second, by errno",
        axis: "failures / s",
        kind: Kind::Rate(Unit::PerSecond),
    },
    Spec {
        name: "resets_per_second",
        title: "Resets per second, by the side that sent the RST",
        axis: "resets / s",
        kind: Kind::Rate(Unit::PerSecond),
    },
    Spec {
        name: "retransmits_per_second",
        title: "TCP retransmitted segments per second",
        axis: "segments / s",
        kind: Kind::Rate(Unit::PerSecond),
    },
    Spec {
        name: "bytes_per_second",
        title: "Payload bytes per second, each way",
        axis: "bytes / s",
        kind: Kind::Rate(Unit::BytesPerSecond),
    },
    Spec { name: "top_talkers", title: "Top talkers by bytes", axis: "bytes", kind: Kind::Bars },
    Spec {
        name: "latency_distribution",
        title: "RTT and handshake time of the busiest TCP destinations (cumulative)",
        axis: "share of connections",
        kind: Kind::Distribution,
    },
];

impl Spec {
    /// The chart's SQL (`queries/charts/<name>.sql`).
    pub fn sql(&self) -> &'static str {
        CHARTS.iter().find(|(n, _)| *n == self.name).map_or("", |(_, sql)| sql)
    }

    /// The question the chart answers, from its query's `-- answers:` header.
    pub fn answers(&self) -> String {
        crate::reports::parse_header(self.sql()).1.unwrap_or_default()
    }
}

/// A named line: `(x, y)` points in the order of the query's rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel of a distribution chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    pub name: String,
    pub series: Vec<Series>,
}

/// One bar of a bar chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub label: String,
    pub sent: f64,
    pub received: f64,
}

/// A chart's data, as its query returned it.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// x: Unix time in seconds; the buckets' width in seconds.
    Rate(Vec<Series>, f64),
    /// x: microseconds.
    Distribution(Vec<Panel>),
    Bars(Vec<Bar>),
}

impl Data {
    /// Points (or bars) held: the number of rows the query returned.
    pub fn points(&self) -> usize {
        let lines = |s: &[Series]| s.iter().map(|s| s.points.len()).sum::<usize>();
        match self {
            Data::Rate(s, _) => lines(s),
            Data::Distribution(p) => p.iter().map(|p| lines(&p.series)).sum(),
            Data::Bars(b) => b.len(),
        }
    }
}

/// Runs the chart's query in `analyzer` and reads its rows.
pub async fn load(analyzer: &Analyzer, spec: &Spec) -> Result<Data, AnalyzeError> {
    let query = format!("chart query `{}`", spec.name);
    let batches =
        analyzer.sql(&query, spec.sql()).await?.collect().await.map_err(|e| AnalyzeError::query(query.as_str(), e))?;
    read(spec, &batches)
}

/// Reads a chart query's result into its [`Data`].
pub fn read(spec: &Spec, batches: &[RecordBatch]) -> Result<Data, AnalyzeError> {
    let bad = |what: String| AnalyzeError::ChartData { chart: spec.name.to_string(), what };
    match spec.kind {
        Kind::Rate(_) => {
            let mut series = Vec::new();
            let mut width = 1.0;
            for b in batches {
                let bucket = numbers(b, "bucket_ns").map_err(bad)?;
                if !bucket.is_empty() {
                    width = bucket.value(0) / 1e9;
                }
                let (t, name, value) =
                    (times(b, "t").map_err(bad)?, texts(b, "series").map_err(bad)?, numbers(b, "value").map_err(bad)?);
                for i in 0..b.num_rows() {
                    let x = t.value(i) as f64 / 1e9;
                    push(&mut series, name.value(i), (x, value.value(i)));
                }
            }
            Ok(Data::Rate(series, width))
        }
        Kind::Distribution => {
            let mut panels: Vec<Panel> = Vec::new();
            for b in batches {
                let panel = texts(b, "panel").map_err(bad)?;
                let name = texts(b, "series").map_err(bad)?;
                let (x, value) = (numbers(b, "x").map_err(bad)?, numbers(b, "value").map_err(bad)?);
                for i in 0..b.num_rows() {
                    let p = match panels.iter().position(|p| p.name == panel.value(i)) {
                        Some(k) => k,
                        None => {
                            panels.push(Panel { name: panel.value(i).to_string(), series: Vec::new() });
                            panels.len() - 1
                        }
                    };
                    push(&mut panels[p].series, name.value(i), (x.value(i), value.value(i)));
                }
            }
            Ok(Data::Distribution(panels))
        }
        Kind::Bars => {
            let mut bars = Vec::new();
            for b in batches {
                let label = texts(b, "label").map_err(bad)?;
                let (sent, received) =
                    (numbers(b, "bytes_sent").map_err(bad)?, numbers(b, "bytes_received").map_err(bad)?);
                for i in 0..b.num_rows() {
                    bars.push(Bar {
                        label: label.value(i).to_string(),
                        sent: sent.value(i),
                        received: received.value(i),
                    });
                }
            }
            Ok(Data::Bars(bars))
        }
    }
}

/// Appends `p` to the series named `name`, creating it at the end when new.
fn push(series: &mut Vec<Series>, name: &str, p: (f64, f64)) {
    match series.iter_mut().find(|s| s.name == name) {
        Some(s) => s.points.push(p),
        None => series.push(Series { name: name.to_string(), points: vec![p] }),
    }
}

/// Column `name` of `b` cast to `to`, with no NULLs (a chart cannot place one).
fn column(b: &RecordBatch, name: &str, to: &DataType) -> Result<std::sync::Arc<dyn Array>, String> {
    let c = b.column_by_name(name).ok_or_else(|| format!("the query returns no `{name}` column"))?;
    let c = arrow::compute::cast(c, to).map_err(|e| format!("column `{name}` cannot be read as {to}: {e}"))?;
    if c.null_count() > 0 {
        return Err(format!("column `{name}` has NULLs"));
    }
    Ok(c)
}

fn numbers(b: &RecordBatch, name: &str) -> Result<Float64Array, String> {
    let c = column(b, name, &DataType::Float64)?;
    c.as_any().downcast_ref::<Float64Array>().cloned().ok_or_else(|| format!("column `{name}` is not a number"))
}

fn texts(b: &RecordBatch, name: &str) -> Result<StringArray, String> {
    let c = column(b, name, &DataType::Utf8)?;
    c.as_any().downcast_ref::<StringArray>().cloned().ok_or_else(|| format!("column `{name}` is not text"))
}

/// A timestamp column as Unix nanoseconds.
fn times(b: &RecordBatch, name: &str) -> Result<Int64Array, String> {
    let ns = column(b, name, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
    let c = arrow::compute::cast(&ns, &DataType::Int64).map_err(|e| format!("column `{name}`: {e}"))?;
    c.as_any().downcast_ref::<Int64Array>().cloned().ok_or_else(|| format!("column `{name}` is not a time"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::TimestampNanosecondArray;
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn specs_and_embedded_chart_queries_are_the_same_list_in_the_same_order() {
        let specs: Vec<&str> = SPECS.iter().map(|s| s.name).collect();
        let queries: Vec<&str> = CHARTS.iter().map(|(n, _)| *n).collect();
        assert_eq!(specs, queries);
        assert!(SPECS.iter().all(|s| !s.sql().is_empty() && !s.answers().is_empty()));
    }

    #[test]
    fn every_row_is_one_point_of_the_series_it_names_in_row_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false),
            Field::new("series", DataType::Utf8, false),
            Field::new("value", DataType::Int64, false),
            Field::new("bucket_ns", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(
                    TimestampNanosecondArray::from(vec![1_000_000_000, 1_000_000_000, 2_000_000_000])
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec!["closed", "reset", "closed"])),
                Arc::new(Int64Array::from(vec![3, 1, 4])),
                Arc::new(Int64Array::from(vec![1_000_000_000; 3])),
            ],
        )
        .unwrap();
        let data = read(&SPECS[0], &[batch]).unwrap();
        assert_eq!(data.points(), 3);
        let Data::Rate(series, width) = data else { panic!("a rate chart") };
        assert_eq!(width, 1.0);
        assert_eq!(series[0], Series { name: "closed".into(), points: vec![(1.0, 3.0), (2.0, 4.0)] });
        assert_eq!(series[1], Series { name: "reset".into(), points: vec![(1.0, 1.0)] });
    }

    #[test]
    fn a_missing_column_names_the_chart_and_the_column() {
        let schema = Arc::new(Schema::new(vec![Field::new("label", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["a"]))]).unwrap();
        let bars = SPECS.iter().find(|s| s.kind == Kind::Bars).unwrap();
        let e = read(bars, &[batch]).unwrap_err().to_string();
        assert!(e.contains("top_talkers") && e.contains("`bytes_sent`"), "{e}");
    }
}
