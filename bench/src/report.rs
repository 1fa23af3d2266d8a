//! `sstp-bench report RESULTS.json [--out DIR]`: a Markdown report with
//! SVG charts (plotters' SVG backend only: text is left to the viewer's
//! fonts, so no font or system library is needed to draw).
//!
//! Charts:
//!
//! * one bar chart per rate unit (`throughput-gbit-s.svg`,
//!   `rate-handshakes-s.svg`, …): each scenario's figure with its same-run
//!   reference beside it, and references on their own;
//! * `latency.svg`: latency percentile curves of every distribution in the
//!   file, on a "nines" axis (50, 90, 99, 99.9, 99.99);
//! * one line chart per chart of the file's series (`soak-rss.svg`, …):
//!   figures over time, one point per interval.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::gate::thousands;
use crate::results::{Better, LatencyProfile, Results, Series};

/// Why the report could not be written.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReportError {
    Io(std::io::Error),
    /// plotters failed to draw.
    Chart(String),
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportError::Io(e) => write!(f, "{e}"),
            ReportError::Chart(e) => write!(f, "drawing a chart: {e}"),
        }
    }
}

impl std::error::Error for ReportError {}

impl From<std::io::Error> for ReportError {
    fn from(e: std::io::Error) -> Self {
        ReportError::Io(e)
    }
}

fn chart_error<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Chart(e.to_string())
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub markdown: PathBuf,
    pub charts: Vec<PathBuf>,
}

/// One bar of a rate chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// Group label (scenario or reference name).
    pub group: String,
    /// `scenario` or `reference`.
    pub kind: BarKind,
    pub label: String,
    pub value: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    Scenario,
    Reference,
}

/// A file-name-safe slug of a unit: `Gbit/s` → `gbit-s`.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// The bars of every rate chart, by unit: higher-is-better figures in a
/// per-second unit. A reference shown beside a scenario is not shown again
/// on its own.
pub fn rate_bars(results: &Results) -> BTreeMap<String, Vec<Bar>> {
    let mut charts: BTreeMap<String, Vec<Bar>> = BTreeMap::new();
    let mut shown: Vec<(String, String)> = Vec::new();
    let is_rate = |unit: &str| unit.ends_with("/s");
    for s in &results.scenarios {
        for f in s
            .figures
            .iter()
            .filter(|f| f.better == Better::Higher && is_rate(&f.unit))
        {
            let bars = charts.entry(f.unit.clone()).or_default();
            bars.push(Bar {
                group: s.name.clone(),
                kind: BarKind::Scenario,
                label: format!("{} {}", s.name, f.metric),
                value: f.value,
            });
            if let Some(r) = &f.reference {
                shown.push((r.name.clone(), r.metric.clone()));
                bars.push(Bar {
                    group: s.name.clone(),
                    kind: BarKind::Reference,
                    label: format!("{} (ratio {:.2})", r.name, r.ratio),
                    value: r.value,
                });
            }
        }
    }
    for r in &results.references {
        for f in r.figures.iter().filter(|f| {
            f.better == Better::Higher
                && is_rate(&f.unit)
                && !shown.contains(&(r.name.clone(), f.metric.clone()))
        }) {
            charts.entry(f.unit.clone()).or_default().push(Bar {
                group: r.name.clone(),
                kind: BarKind::Reference,
                label: format!("{} {}", r.name, f.metric),
                value: f.value,
            });
        }
    }
    charts
}

const WIDTH: u32 = 900;
const HEIGHT: u32 = 480;
const SCENARIO_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const REFERENCE_COLOR: RGBColor = RGBColor(0xaa, 0xaa, 0xaa);
const LINE_COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// Draws one bar chart into `path`.
pub fn draw_bars(path: &Path, unit: &str, bars: &[Bar]) -> Result<(), ReportError> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let max = bars.iter().map(|b| b.value).fold(0.0f64, f64::max);
    let top = if max > 0.0 { max * 1.15 } else { 1.0 };
    let n = bars.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Rates ({unit}): scenarios beside same-run references"),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(10)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)
        .map_err(chart_error)?;
    // Bars are labelled above themselves, so no x labels.
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(unit)
        .draw()
        .map_err(chart_error)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let color = match b.kind {
                BarKind::Scenario => SCENARIO_COLOR,
                BarKind::Reference => REFERENCE_COLOR,
            };
            Rectangle::new(
                [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, b.value)],
                color.filled(),
            )
        }))
        .map_err(chart_error)?;
    let above = |i: usize, value: f64, lift: f64, text: String, size: u32| {
        Text::new(
            text,
            (i as f64 + 0.5, value + top * lift),
            ("sans-serif", size)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom)),
        )
    };
    chart
        .draw_series(
            bars.iter()
                .enumerate()
                .map(|(i, b)| above(i, b.value, 0.01, format!("{:.3}", b.value), 14)),
        )
        .map_err(chart_error)?;
    chart
        .draw_series(
            bars.iter()
                .enumerate()
                .map(|(i, b)| above(i, b.value, 0.055, b.label.clone(), 13)),
        )
        .map_err(chart_error)?;
    root.present().map_err(chart_error)
}

/// x position of a percentile on the "nines" axis: -log10(1 - p/100),
/// so 0 → 0, 90 → 1, 99 → 2, 99.9 → 3.
pub fn nines(percentile: f64) -> f64 {
    -(1.0 - percentile / 100.0).max(1e-6).log10()
}

/// Every latency distribution in the file: (label, profile).
pub fn latency_curves(results: &Results) -> Vec<(String, &LatencyProfile)> {
    let mut out = Vec::new();
    for s in &results.scenarios {
        if let Some(l) = &s.latency {
            out.push((format!("scenario {}", s.name), l));
        }
    }
    for r in &results.references {
        if let Some(l) = &r.latency {
            out.push((format!("reference {}", r.name), l));
        }
    }
    out
}

/// Draws the latency percentile curves into `path`.
pub fn draw_latency(path: &Path, curves: &[(String, &LatencyProfile)]) -> Result<(), ReportError> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let points = |l: &LatencyProfile| -> Vec<(f64, f64)> {
        l.points
            .iter()
            .filter(|p| p.percentile < 100.0)
            .map(|p| (nines(p.percentile), p.value))
            .collect()
    };
    let max_x = curves
        .iter()
        .flat_map(|(_, l)| points(l))
        .map(|p| p.0)
        .fold(1.0f64, f64::max);
    let values = || curves.iter().flat_map(|(_, l)| points(l)).map(|p| p.1);
    let max_y = values().fold(0.0f64, f64::max).max(1e-3);
    let min_y = values().fold(max_y, f64::min).max(1e-3);
    let unit = curves.first().map_or("us", |(_, l)| l.unit.as_str());
    // Log scale: tails are often 100 times the median.
    let mut chart = ChartBuilder::on(&root)
        .caption("Round-trip latency by percentile", ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            0f64..max_x.ceil(),
            ((min_y * 0.8)..(max_y * 1.25)).log_scale(),
        )
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_labels(max_x.ceil() as usize + 1)
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            format!("p{}", trim_float(p))
        })
        .y_label_formatter(&|y| trim_float(*y))
        .x_desc("percentile")
        .y_desc(format!("round trip ({unit}, log scale)"))
        .draw()
        .map_err(chart_error)?;
    for (i, (label, profile)) in curves.iter().enumerate() {
        let color = LINE_COLORS[i % LINE_COLORS.len()];
        chart
            .draw_series(LineSeries::new(points(profile), color.stroke_width(2)))
            .map_err(chart_error)?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(
                points(profile)
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(chart_error)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(chart_error)?;
    root.present().map_err(chart_error)
}

/// Series grouped by chart, in the order they first appear.
pub fn series_charts(series: &[Series]) -> Vec<(String, Vec<&Series>)> {
    let mut charts: Vec<(String, Vec<&Series>)> = Vec::new();
    for series in series {
        match charts.iter_mut().find(|(chart, _)| *chart == series.chart) {
            Some((_, lines)) => lines.push(series),
            None => charts.push((series.chart.clone(), vec![series])),
        }
    }
    charts
}

/// Draws `lines` (series of one chart, one unit) over time into `path`.
pub fn draw_series(path: &Path, title: &str, lines: &[&Series]) -> Result<(), ReportError> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let points = || lines.iter().flat_map(|s| s.points.iter());
    let max_t = points().map(|p| p.t_s).fold(0.0f64, f64::max).max(1.0);
    let max_y = points().map(|p| p.value).fold(0.0f64, f64::max);
    // From zero: a flat line must look flat, not magnified noise.
    let top = if max_y > 0.0 { max_y * 1.15 } else { 1.0 };
    let unit = lines.first().map_or("", |s| s.unit.as_str());
    let minutes = max_t >= 180.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_t * 1.02, 0f64..top)
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|t| {
            if minutes {
                trim_float(t / 60.0)
            } else {
                trim_float(*t)
            }
        })
        .y_label_formatter(&|y| trim_float(*y))
        .x_desc(if minutes { "minutes" } else { "seconds" })
        .y_desc(unit)
        .draw()
        .map_err(chart_error)?;
    for (i, series) in lines.iter().enumerate() {
        let color = LINE_COLORS[i % LINE_COLORS.len()];
        let line: Vec<(f64, f64)> = series.points.iter().map(|p| (p.t_s, p.value)).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(chart_error)?
            .label(series.name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(chart_error)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(chart_error)?;
    root.present().map_err(chart_error)
}

/// Writes the charts of `series` (`<chart>.svg`) into `out`; returns
/// their paths.
pub fn write_series(series: &[Series], out: &Path) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(out)?;
    let mut charts = Vec::new();
    for (chart, lines) in series_charts(series) {
        let scenario = lines.first().map_or("", |s| s.scenario.as_str());
        let unit = lines.first().map_or("", |s| s.unit.as_str());
        let path = out.join(format!("{}.svg", slug(&chart)));
        let title = format!("{scenario}: {} ({unit}) over time", chart_topic(&chart));
        draw_series(&path, &title, &lines)?;
        charts.push(path);
    }
    Ok(charts)
}

/// `soak-rss` → `rss`: the chart's subject after its scenario prefix.
fn chart_topic(chart: &str) -> &str {
    chart.split_once('-').map_or(chart, |(_, topic)| topic)
}

fn trim_float(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn number(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn bytes(v: u64) -> String {
    format!("{:.1} MiB", v as f64 / (1u64 << 20) as f64)
}

/// The Markdown text (charts referenced by file name).
pub fn markdown(results: &Results, charts: &[PathBuf]) -> String {
    let mut md = String::new();
    let m = &results.machine;
    let _ = writeln!(md, "# sstpd benchmark report\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| run | {} |", results.timestamp);
    let commit = results.git_commit.as_deref().unwrap_or("unknown");
    let dirty = if results.git_dirty == Some(true) {
        " (uncommitted changes)"
    } else {
        ""
    };
    let _ = writeln!(md, "| commit | `{commit}`{dirty} |");
    let _ = writeln!(
        md,
        "| CPU | {} ({} logical cores, {}) |",
        m.cpu_model, m.logical_cores, m.arch
    );
    let _ = writeln!(md, "| kernel | {} |", m.kernel);
    if let Some(mem) = m.memory_bytes {
        let _ = writeln!(
            md,
            "| memory | {:.1} GiB |",
            mem as f64 / (1u64 << 30) as f64
        );
    }
    let _ = writeln!(
        md,
        "| sstp-bench | {} (results schema {}) |\n",
        results.tool_version, results.schema_version
    );
    let _ = writeln!(
        md,
        "Every scenario figure stands beside a reference measured in the same run on the same \
         machine; the ratio is the number to compare across runs (see docs/benchmarking.md).\n"
    );

    let _ = writeln!(md, "## Scenarios\n");
    if results.scenarios.is_empty() {
        let _ = writeln!(
            md,
            "No scenario results in this file (the scenarios are driven by sstp-loadgen).\n"
        );
    } else {
        let _ = writeln!(
            md,
            "| scenario | metric | value | reference | ratio |\n|---|---|---:|---:|---:|"
        );
        for s in &results.scenarios {
            for f in &s.figures {
                let (reference, ratio) = match &f.reference {
                    Some(r) => (
                        format!("{} {} {}", r.name, number(r.value), f.unit),
                        format!("{:.3}", r.ratio),
                    ),
                    None => ("-".into(), "-".into()),
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} {} | {} | {} |",
                    s.name,
                    f.metric,
                    number(f.value),
                    f.unit,
                    reference,
                    ratio
                );
            }
        }
        let _ = writeln!(md);
        let with_server: Vec<_> = results
            .scenarios
            .iter()
            .filter(|s| s.server.is_some())
            .collect();
        if !with_server.is_empty() {
            let _ = writeln!(md, "### Server cost\n");
            let _ = writeln!(md, "| scenario | CPU s | CPU s/GB | CPU s/1000 sessions | RSS peak | RSS end |\n|---|---:|---:|---:|---:|---:|");
            for s in with_server {
                let u = s.server.as_ref().expect("filtered");
                let opt = |v: Option<f64>| v.map_or("-".into(), number);
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    s.name,
                    number(u.cpu_seconds),
                    opt(u.cpu_s_per_gb),
                    opt(u.cpu_s_per_1000_sessions),
                    bytes(u.rss_bytes_peak),
                    bytes(u.rss_bytes_end)
                );
            }
            let _ = writeln!(md);
        }
    }

    let _ = writeln!(md, "## References\n");
    if results.references.is_empty() {
        let _ = writeln!(md, "No reference in this file.\n");
    } else {
        let _ = writeln!(
            md,
            "| reference | parameters | metric | value |\n|---|---|---|---:|"
        );
        for r in &results.references {
            let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            for (i, f) in r.figures.iter().enumerate() {
                let shown = if i == 0 {
                    params.join(", ")
                } else {
                    String::new()
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} {} |",
                    if i == 0 { r.name.as_str() } else { "" },
                    shown,
                    f.metric,
                    number(f.value),
                    f.unit
                );
            }
        }
        let _ = writeln!(md);
    }

    if !results.gate.is_empty() {
        let _ = writeln!(md, "## Instruction counts (regression gate)\n");
        let _ = writeln!(
            md,
            "| part | instructions | units | per unit |\n|---|---:|---:|---:|"
        );
        for g in &results.gate {
            let per = if g.units > 0 {
                g.instructions as f64 / g.units as f64
            } else {
                0.0
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} {}s | {:.1} |",
                g.part,
                thousands(g.instructions),
                thousands(g.units),
                g.unit,
                per
            );
        }
        let _ = writeln!(md);
    }

    if !charts.is_empty() {
        let _ = writeln!(md, "## Charts\n");
        for chart in charts {
            let name = chart
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let _ = writeln!(md, "![{}]({name})\n", name.trim_end_matches(".svg"));
        }
    }
    if !results.notes.is_empty() {
        let _ = writeln!(md, "## Notes\n");
        for note in &results.notes {
            let _ = writeln!(md, "- {note}");
        }
    }
    md
}

/// Writes `report.md` and the charts into `out`.
pub fn write(results: &Results, out: &Path) -> Result<Written, ReportError> {
    std::fs::create_dir_all(out)?;
    let mut charts = Vec::new();
    for (unit, bars) in rate_bars(results) {
        let kind = if unit == "Gbit/s" {
            "throughput"
        } else {
            "rate"
        };
        let path = out.join(format!("{kind}-{}.svg", slug(&unit)));
        draw_bars(&path, &unit, &bars)?;
        charts.push(path);
    }
    let curves = latency_curves(results);
    if !curves.is_empty() {
        let path = out.join("latency.svg");
        draw_latency(&path, &curves)?;
        charts.push(path);
    }
    charts.extend(write_series(&results.series, out)?);
    let markdown_path = out.join("report.md");
    std::fs::write(&markdown_path, markdown(results, &charts))?;
    Ok(Written {
        markdown: markdown_path,
        charts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::sample;

    #[test]
    fn slugs_are_file_name_safe() {
        assert_eq!(slug("Gbit/s"), "gbit-s");
        assert_eq!(slug("handshakes/s"), "handshakes-s");
        assert_eq!(slug("s/1000 handshakes"), "s-1000-handshakes");
    }

    #[test]
    fn nines_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn bars_pair_each_scenario_with_its_reference() {
        let bars = rate_bars(&sample());
        let gbit = &bars["Gbit/s"];
        let labels: Vec<_> = gbit
            .iter()
            .map(|b| (b.kind, b.label.as_str(), b.value))
            .collect();
        assert_eq!(
            labels,
            [
                (BarKind::Scenario, "bulk throughput", 2.4),
                (BarKind::Reference, "tls_stream (ratio 0.40)", 6.0),
            ]
        );
        // Without the scenario the reference stands on its own.
        let mut alone = sample();
        alone.scenarios.clear();
        let bars = rate_bars(&alone);
        assert_eq!(bars["Gbit/s"].len(), 1);
        assert_eq!(bars["Gbit/s"][0].label, "tls_stream throughput");
        assert_eq!(bars.len(), 1, "no other rate unit in the sample");
    }

    fn parse_svg(path: &Path) -> String {
        let text = std::fs::read_to_string(path).unwrap();
        let doc = roxmltree::Document::parse(&text)
            .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}", path.display()));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        text
    }

    #[test]
    fn report_writes_markdown_and_well_formed_svg_charts() {
        let dir = tempfile::tempdir().unwrap();
        let written = write(&sample(), dir.path()).unwrap();
        let names: Vec<String> = written
            .charts
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["throughput-gbit-s.svg", "latency.svg", "soak-rss.svg"]
        );
        let over_time = parse_svg(&written.charts[2]);
        assert!(over_time.contains("<polyline"), "the series is drawn");
        assert!(over_time.contains("soak: rss (MiB) over time"));
        assert!(over_time.contains("sstpd RSS"));
        let bars = parse_svg(&written.charts[0]);
        // One scenario bar beside its reference bar (colours as drawn).
        assert_eq!(bars.matches("fill=\"#1F77B4\"").count(), 1, "{bars}");
        assert_eq!(bars.matches("fill=\"#AAAAAA\"").count(), 1, "{bars}");
        assert!(bars.contains("bulk throughput"));
        assert!(bars.contains("tls_stream (ratio 0.40)"));
        let latency = parse_svg(&written.charts[1]);
        assert!(latency.contains("<polyline"), "curves are drawn");
        assert!(latency.contains("scenario latency"));
        assert!(latency.contains("reference tls_ping_pong"));
        assert!(latency.contains("p99.9"));

        let md = std::fs::read_to_string(&written.markdown).unwrap();
        assert!(md.starts_with("# sstpd benchmark report\n"));
        assert!(md.contains("| commit | `0123456789abcdef` |"));
        assert!(
            md.contains("| bulk | throughput | 2.400 Gbit/s | tls_stream 6.000 Gbit/s | 0.400 |")
        );
        assert!(md.contains("| bulk | 3.000 | 1.000 | - | 50.0 MiB | 40.0 MiB |"));
        assert!(md.contains("| data | 123,456,789 | 200,000 packets | 617.3 |"));
        assert!(md.contains("![throughput-gbit-s](throughput-gbit-s.svg)"));
        assert!(md.contains("![latency](latency.svg)"));
    }

    #[test]
    fn special_characters_in_labels_stay_well_formed() {
        let mut results = sample();
        results.scenarios[0].name = "a<b>&\"c\"".into();
        let dir = tempfile::tempdir().unwrap();
        let written = write(&results, dir.path()).unwrap();
        for chart in &written.charts {
            parse_svg(chart);
        }
    }

    #[test]
    fn a_file_without_scenarios_still_reports_its_references() {
        let mut results = sample();
        results.scenarios.clear();
        results.gate.clear();
        results.series.clear();
        let dir = tempfile::tempdir().unwrap();
        let written = write(&results, dir.path()).unwrap();
        assert_eq!(written.charts.len(), 2);
        let md = std::fs::read_to_string(&written.markdown).unwrap();
        assert!(md.contains("No scenario results in this file"));
        assert!(md.contains(
            "| tls_stream | suite=TLS13_AES_128_GCM_SHA256 | throughput | 6.000 Gbit/s |"
        ));
        assert!(!md.contains("Instruction counts"));
    }
}
