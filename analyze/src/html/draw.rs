//! Drawing a chart's [`Data`] as an SVG document, with plotters' SVG backend.
//!
//! Pure: data in, SVG text out, no session and no files, so the drawing is tested on its own.
//! Text is SVG `<text>` in the generic `sans-serif` family, laid out by whatever renders the
//! page (plotters is built without font loading: nothing is read from the system). Every point
//! of a line is also marked by one `<circle>` and every bar segment is one `<rect>` of its own
//! class of colour, so what was plotted can be counted in the SVG itself.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::charts::{Bar, Data, Kind, Panel, Series, Spec, Unit};
use crate::render::{human_bytes, human_duration_ns, human_time};

/// Pixels of one chart; a distribution chart is twice as wide (two panels).
pub const WIDTH: u32 = 680;
pub const HEIGHT: u32 = 360;

type DrawResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The SVG of `data` drawn as `spec` says. The `xmlns` attribute is left out: inline in HTML,
/// an `<svg>` element is SVG without it, and the page then names no URL at all.
pub fn svg(spec: &Spec, data: &Data) -> DrawResult<String> {
    let size = match spec.kind {
        Kind::Distribution => (2 * WIDTH, HEIGHT),
        Kind::Rate(_) | Kind::Bars => (WIDTH, HEIGHT),
    };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE)?;
        match (spec.kind, data) {
            (Kind::Rate(unit), Data::Rate(series, width)) => rate(&root, spec, unit, series, *width)?,
            (Kind::Distribution, Data::Distribution(panels)) => distribution(&root, spec, panels)?,
            (Kind::Bars, Data::Bars(bars)) => bars_chart(&root, spec, bars)?,
            _ => return Err(format!("chart `{}`: data of another kind of chart", spec.name).into()),
        }
        root.present()?;
    }
    Ok(out.replacen(r#" xmlns="http://www.w3.org/2000/svg""#, "", 1))
}

/// Colours people read the same way everywhere in the page: a failure is red, a clean close
/// green; anything else takes the next colour of a palette for light backgrounds.
fn colour(name: &str, index: usize) -> RGBColor {
    const PALETTE: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    match name {
        "closed" => PALETTE[2],
        "reset" | "remote" => PALETTE[1],
        "failed" | "retransmits" => PALETTE[3],
        "open_at_end" | "sent" | "local" => PALETTE[0],
        "received" => PALETTE[4],
        _ => PALETTE[index % PALETTE.len()],
    }
}

const GRID: RGBColor = RGBColor(232, 232, 232);
const AXIS: RGBColor = RGBColor(90, 90, 90);

fn font(size: u32) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&RGBColor(40, 40, 40))
}

/// The title, and "nothing recorded" in the middle of an empty chart.
fn empty(area: &DrawingArea<SVGBackend<'_>, Shift>, title: &str, what: &str) -> DrawResult {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let (w, h) = area.dim_in_pixel();
    // Where a chart's caption goes: centred at the top.
    area.draw(&Text::new(title.to_string(), (w as i32 / 2, 14), font(17).pos(Pos::new(HPos::Center, VPos::Top))))?;
    area.draw(&Text::new(
        what.to_string(),
        (w as i32 / 2, h as i32 / 2),
        font(14).pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    Ok(())
}

/// A wall-clock tick label: the time of day, with the month and day when the axis spans days.
fn clock(unix_s: f64, span_s: f64) -> String {
    let full = human_time((unix_s * 1e9) as i64);
    if span_s >= 86_400.0 { full[5..19].to_string() } else { full[11..19].to_string() }
}

/// `1200` as `1.2k`: short tick labels.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn legend_box(c: RGBColor) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled())
}

/// The time axis of a rate chart: the distinct bucket starts of all series, in order. A point
/// sits at its bucket's position, so the time between two recordings' windows takes no room: a
/// dashed line marks each such gap, with how long it was.
struct TimeAxis {
    starts: Vec<f64>,
    /// Bucket width, seconds.
    width: f64,
}

impl TimeAxis {
    fn new(series: &[Series], width: f64) -> Self {
        let mut starts: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
        starts.sort_by(f64::total_cmp);
        starts.dedup();
        TimeAxis { starts, width: if width > 0.0 { width } else { 1.0 } }
    }

    fn position(&self, t: f64) -> f64 {
        self.starts.partition_point(|s| *s < t) as f64
    }

    /// Whether time was skipped between bucket `i - 1` and bucket `i`.
    fn gap_before(&self, i: usize) -> bool {
        i > 0 && self.starts[i] - self.starts[i - 1] > self.width * 1.5
    }

    /// The wall-clock time at axis position `x`.
    fn time(&self, x: f64) -> f64 {
        let last = self.starts.len().saturating_sub(1);
        let i = (x.max(0.0).floor() as usize).min(last);
        self.starts.get(i).map_or(0.0, |s| s + (x - i as f64) * self.width)
    }

    fn span(&self) -> f64 {
        match (self.starts.first(), self.starts.last()) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        }
    }
}

fn rate(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    spec: &Spec,
    unit: Unit,
    series: &[Series],
    width: f64,
) -> DrawResult {
    if series.iter().all(|s| s.points.is_empty()) {
        return empty(area, spec.title, "nothing of this kind in these recordings");
    }
    let axis = TimeAxis::new(series, width);
    let n = axis.starts.len();
    let ymax = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.15 } else { 1.0 };
    let span = axis.span();
    let mut chart = ChartBuilder::on(area)
        .caption(spec.title, font(17))
        .margin(12)
        // Room for the label of the last tick, centred on the right edge.
        .margin_right(36)
        .x_label_area_size(40)
        .y_label_area_size(78)
        .build_cartesian_2d(0.0..n as f64, 0.0..ymax)?;
    let x_fmt = |x: &f64| clock(axis.time(*x), span);
    let y_fmt = |y: &f64| match unit {
        Unit::BytesPerSecond => human_bytes(*y),
        Unit::PerSecond => short(*y),
    };
    let bucket =
        if axis.width == 1.0 { String::new() } else { format!(", {} buckets", human_duration_ns(axis.width * 1e9)) };
    chart
        .configure_mesh()
        // Never more ticks than bucket edges: ticks inside a bucket would repeat its second.
        .x_labels(7.min(n + 1))
        .y_labels(6)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc(format!("{}{bucket}", if span >= 86_400.0 { "time (UTC)" } else { "time of day (UTC)" }))
        .y_desc(spec.axis)
        .label_style(font(12))
        .axis_desc_style(font(13))
        .light_line_style(GRID)
        .bold_line_style(GRID)
        .axis_style(AXIS)
        .draw()?;
    for i in (1..n).filter(|&i| axis.gap_before(i)) {
        let x = i as f64 - 0.5;
        chart.draw_series(DashedLineSeries::new([(x, 0.0), (x, ymax)], 5, 4, AXIS.stroke_width(1)))?;
        let skipped = (axis.starts[i] - axis.starts[i - 1] - axis.width) * 1e9;
        // Along the line, clear of the legend (upper right) and of the lines at zero.
        chart.draw_series(std::iter::once(Text::new(
            format!("+{} later", human_duration_ns(skipped)),
            (x + 0.15, ymax * 0.3),
            font(11).transform(FontTransform::Rotate270),
        )))?;
    }
    for (k, s) in series.iter().enumerate() {
        let c = colour(&s.name, k);
        // One line per run of buckets without a gap; every point is one circle.
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        for &(t, v) in &s.points {
            let x = axis.position(t);
            let starts_run = runs.last().is_none_or(|r| {
                let prev = r.last().map_or(0.0, |p| p.0) as usize;
                (prev + 1..=x as usize).any(|i| axis.gap_before(i))
            });
            if starts_run {
                runs.push(Vec::new());
            }
            if let Some(r) = runs.last_mut() {
                r.push((x, v));
            }
        }
        for (j, run) in runs.into_iter().enumerate() {
            let anno = chart.draw_series(LineSeries::new(run, c.stroke_width(2)).point_size(2))?;
            if j == 0 {
                anno.label(s.name.as_str()).legend(legend_box(c));
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(190, 190, 190))
        .label_font(font(12))
        .draw()?;
    Ok(())
}

fn distribution(area: &DrawingArea<SVGBackend<'_>, Shift>, spec: &Spec, panels: &[Panel]) -> DrawResult {
    if panels.iter().all(|p| p.series.iter().all(|s| s.points.is_empty())) {
        return empty(area, spec.title, "no TCP connection with an RTT in these recordings");
    }
    let titled = area.titled(spec.title, font(17))?;
    // Each destination keeps its colour in both panels.
    let mut names: Vec<&str> = Vec::new();
    for s in panels.iter().flat_map(|p| &p.series) {
        if !names.contains(&s.name.as_str()) {
            names.push(&s.name);
        }
    }
    let halves = titled.split_evenly((1, 2));
    for (k, half) in halves.iter().enumerate() {
        // RTT on the left, the handshake on the right, whatever order the rows came in.
        let want = if k == 0 { "rtt" } else { "handshake" };
        let caption = if k == 0 { "smoothed RTT (average per connection)" } else { "TCP handshake" };
        let series = panels.iter().find(|p| p.name == want).map_or(&[][..], |p| &p.series[..]);
        let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let (lo, hi) = xs.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
        if series.iter().all(|s| s.points.is_empty()) {
            empty(half, caption, "no values")?;
            continue;
        }
        let (lo, hi) = ((lo / 2.0).max(0.5), hi * 2.0);
        let mut chart = ChartBuilder::on(half)
            .caption(caption, font(14))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.05)?;
        let x_fmt = |x: &f64| human_duration_ns(*x * 1e3);
        let y_fmt = |y: &f64| format!("{:.0}%", y * 100.0);
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .x_desc("at or below (log scale)")
            .y_desc(spec.axis)
            .label_style(font(12))
            .axis_desc_style(font(13))
            .light_line_style(GRID)
            .bold_line_style(GRID)
            .axis_style(AXIS)
            .draw()?;
        for s in series {
            let i = names.iter().position(|n| *n == s.name).unwrap_or(0);
            let c = colour(&s.name, i);
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)).point_size(2))?
                .label(s.name.as_str())
                .legend(legend_box(c));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(190, 190, 190))
            .label_font(font(12))
            .draw()?;
    }
    Ok(())
}

/// Labels longer than this are cut (the full label is in the talkers table below the charts).
const LABEL_CHARS: usize = 34;

fn bars_chart(area: &DrawingArea<SVGBackend<'_>, Shift>, spec: &Spec, bars: &[Bar]) -> DrawResult {
    if bars.is_empty() {
        return empty(area, spec.title, "no connections in these recordings");
    }
    let n = bars.len();
    let max = bars.iter().map(|b| b.sent + b.received).fold(0.0, f64::max);
    let max = if max > 0.0 { max * 1.08 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(spec.title, font(17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(230)
        .build_cartesian_2d(0.0..max, (0..n).into_segmented())?;
    // The first row (the most bytes) at the top.
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) if *i < n => {
            let l = &bars[n - 1 - i].label;
            if l.chars().count() > LABEL_CHARS {
                format!("{}…", l.chars().take(LABEL_CHARS - 1).collect::<String>())
            } else {
                l.clone()
            }
        }
        _ => String::new(),
    };
    let x_fmt = |x: &f64| human_bytes(*x);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_labels(6)
        .y_labels(n)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&label)
        .x_desc(spec.axis)
        .label_style(font(12))
        .axis_desc_style(font(13))
        .light_line_style(GRID)
        .bold_line_style(GRID)
        .axis_style(AXIS)
        .draw()?;
    let at = |k: usize| (SegmentValue::Exact(n - 1 - k), SegmentValue::Exact(n - k));
    let (sent, received) = (colour("sent", 0), colour("received", 0));
    chart
        .draw_series(bars.iter().enumerate().map(|(k, b)| {
            let (top, bottom) = at(k);
            let mut r = Rectangle::new([(0.0, top), (b.sent, bottom)], sent.filled());
            r.set_margin(4, 4, 0, 0);
            r
        }))?
        .label("sent")
        .legend(legend_box(sent));
    chart
        .draw_series(bars.iter().enumerate().map(|(k, b)| {
            let (top, bottom) = at(k);
            let mut r = Rectangle::new([(b.sent, top), (b.sent + b.received, bottom)], received.filled());
            r.set_margin(4, 4, 0, 0);
            r
        }))?
        .label("received")
        .legend(legend_box(received));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(190, 190, 190))
        .label_font(font(12))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::charts::SPECS;
    use super::*;

    fn spec(kind: fn(&Kind) -> bool) -> &'static Spec {
        SPECS.iter().find(|s| kind(&s.kind)).unwrap()
    }

    #[test]
    fn every_point_of_a_line_is_one_circle_and_no_url_is_named() {
        let series = vec![
            Series { name: "closed".into(), points: vec![(100.0, 1.0), (101.0, 3.0), (102.0, 0.0)] },
            Series { name: "reset".into(), points: vec![(100.0, 0.0), (101.0, 2.0), (102.0, 1.0)] },
        ];
        let svg = svg(spec(|k| matches!(k, Kind::Rate(_))), &Data::Rate(series, 1.0)).unwrap();
        assert_eq!(svg.matches("<circle").count(), 6, "{svg}");
        assert!(svg.starts_with("<svg") && !svg.contains("http"), "{svg}");
        assert!(svg.contains("\nclosed\n</text>") && svg.contains("\nreset\n</text>"), "legend: {svg}");
    }

    #[test]
    fn time_between_two_recordings_takes_no_room_and_is_marked() {
        // Two windows of two one-second buckets, a day apart.
        let day = 86_400.0;
        let series = vec![Series {
            name: "closed".into(),
            points: vec![(100.0, 1.0), (101.0, 2.0), (100.0 + day, 3.0), (101.0 + day, 4.0)],
        }];
        let axis = TimeAxis::new(&series, 1.0);
        assert_eq!([axis.position(101.0), axis.position(100.0 + day)], [1.0, 2.0]);
        assert!(axis.gap_before(2) && !axis.gap_before(1) && !axis.gap_before(3));
        let svg = svg(spec(|k| matches!(k, Kind::Rate(_))), &Data::Rate(series, 1.0)).unwrap();
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("\n+23h 59m later\n</text>"), "gap label: {svg}");
    }

    #[test]
    fn an_empty_chart_says_so_instead_of_drawing_axes() {
        let svg = svg(spec(|k| matches!(k, Kind::Rate(_))), &Data::Rate(Vec::new(), 1.0)).unwrap();
        assert!(svg.contains("nothing of this kind"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 0);
    }

    #[test]
    fn a_bar_chart_has_two_segments_per_bar() {
        let bars = vec![
            Bar { label: "curl -> 192.0.2.1:443 tcp".into(), sent: 10.0, received: 2000.0 },
            Bar { label: "nginx <- 192.0.2.2:80 tcp".into(), sent: 500.0, received: 5.0 },
        ];
        let spec = spec(|k| *k == Kind::Bars);
        let svg = svg(spec, &Data::Bars(bars)).unwrap();
        assert!(svg.contains("curl -&gt; 192.0.2.1:443 tcp\n</text>"), "{svg}");
        // Two segments per bar, plus the background and the two legend boxes (and its frame).
        assert!(svg.matches("<rect").count() >= 4 + 3, "{svg}");
    }
}
