//! `sstp-bench compare OLD NEW`: which figures moved beyond their noise
//! band, and whether for the worse.
//!
//! How the band is chosen, per metric (all relative to the OLD value):
//!
//! * Figures measured beside a same-run reference (throughput, rates,
//!   latencies of scenarios) are judged by their **ratio to the
//!   reference**, not by their absolute value: a busier machine slows the
//!   scenario and its reference alike, so the ratio keeps what the code
//!   did and drops most of what the neighbours did. Band: `time` (default
//!   ±10%, about twice the ratio spread seen between back-to-back runs
//!   here). The absolute change is shown for information.
//! * p99 latencies move more than medians between runs: band `tail`
//!   (default ±20%). p99.9 is shown but not judged: on a shared machine one
//!   descheduling decides it (262 µs and 3,074 µs in back-to-back runs of
//!   the same reference here).
//! * Other time-based figures without a reference (server CPU s/GB, CPU
//!   per 1,000 sessions): `time`.
//! * Memory (RSS, unit `B`): `memory` (default ±10%).
//! * Instruction counts (the gate section): `instructions` (default
//!   ±1%): they repeat to the instruction, so 1% is already a real change
//!   of code path, not noise.
//! * References themselves are never judged: they describe the machine
//!   on that day. Their changes are listed so a reader can tell a slower
//!   machine from slower code.
//! * Counts recorded for context (`better: neither`) are not judged.

use crate::results::{Better, Figure, Results};

/// Noise bands in percent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bands {
    pub time: f64,
    pub tail: f64,
    pub memory: f64,
    pub instructions: f64,
}

impl Default for Bands {
    fn default() -> Self {
        Bands {
            time: 10.0,
            tail: 20.0,
            memory: 10.0,
            instructions: 1.0,
        }
    }
}

impl Bands {
    /// The band for a figure (by metric name and unit).
    pub fn for_metric(&self, metric: &str, unit: &str) -> f64 {
        if unit == "Ir" {
            self.instructions
        } else if metric.starts_with("latency_p99") {
            self.tail
        } else if unit == "B" {
            self.memory
        } else {
            self.time
        }
    }
}

/// What happened to one figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Within the band.
    Same,
    /// Beyond the band, for the better.
    Better,
    /// Beyond the band, for the worse: a regression.
    Worse,
    /// Not judged (references, context counts).
    Info,
    /// Only in NEW.
    New,
    /// Only in OLD.
    Gone,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Same => "same",
            Change::Better => "better",
            Change::Worse => "WORSE",
            Change::Info => "info",
            Change::New => "new",
            Change::Gone => "gone",
        }
    }
}

/// One compared figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `scenario bulk`, `reference tls_stream`, `gate`.
    pub section: String,
    /// The metric; `throughput/ref` for a ratio to the reference.
    pub metric: String,
    pub unit: String,
    pub old: Option<f64>,
    pub new: Option<f64>,
    /// (new - old) / old in percent.
    pub change_percent: Option<f64>,
    /// The band applied (None when not judged).
    pub band_percent: Option<f64>,
    pub change: Change,
}

/// Metrics shown but never judged: too noisy on a shared machine.
pub const UNJUDGED_METRICS: &[&str] = &["latency_p999"];

/// Judges `new` against `old` with `band` and `better`.
pub fn judge(old: f64, new: f64, band: f64, better: Better) -> (Option<f64>, Change) {
    let change = if old == 0.0 {
        if new == 0.0 {
            Some(0.0)
        } else {
            None
        }
    } else {
        Some((new - old) / old.abs() * 100.0)
    };
    let verdict = match (better, change) {
        (Better::Neither, _) => Change::Info,
        // From zero to something: a direction without a size.
        (Better::Higher, None) => Change::Better,
        (Better::Lower, None) => Change::Worse,
        (_, Some(c)) if c.abs() <= band => Change::Same,
        (Better::Higher, Some(c)) if c > 0.0 => Change::Better,
        (Better::Lower, Some(c)) if c < 0.0 => Change::Better,
        (_, Some(_)) => Change::Worse,
    };
    (change, verdict)
}

fn row_for(
    section: &str,
    old: Option<&Figure>,
    new: Option<&Figure>,
    bands: &Bands,
    judged: bool,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let any = new.or(old).expect("at least one side");
    let (old_value, new_value) = (old.map(|f| f.value), new.map(|f| f.value));
    let ratios = (
        old.and_then(|f| f.reference.as_ref()).map(|r| r.ratio),
        new.and_then(|f| f.reference.as_ref()).map(|r| r.ratio),
    );
    let has_reference = ratios.0.is_some() && ratios.1.is_some();
    let judged = judged && !UNJUDGED_METRICS.contains(&any.metric.as_str());
    let mut push =
        |metric: String, unit: &str, old: Option<f64>, new: Option<f64>, judge_it: bool| {
            let band = bands.for_metric(&any.metric, unit);
            let (change_percent, change, band_percent) = match (old, new) {
                (Some(o), Some(n)) => {
                    let better = if judge_it {
                        any.better
                    } else {
                        Better::Neither
                    };
                    let (c, v) = judge(o, n, band, better);
                    (c, v, (v != Change::Info).then_some(band))
                }
                (None, Some(_)) => (None, Change::New, None),
                _ => (None, Change::Gone, None),
            };
            rows.push(Row {
                section: section.to_owned(),
                metric,
                unit: unit.to_owned(),
                old,
                new,
                change_percent,
                band_percent,
                change,
            });
        };
    // With a reference on both sides the ratio is judged and the absolute
    // value only shown.
    push(
        any.metric.clone(),
        &any.unit,
        old_value,
        new_value,
        judged && !has_reference,
    );
    if has_reference {
        push(
            format!("{}/ref", any.metric),
            "ratio",
            ratios.0,
            ratios.1,
            judged,
        );
    }
    rows
}

fn compare_figures(
    section: &str,
    old: &[Figure],
    new: &[Figure],
    bands: &Bands,
    judged: bool,
    rows: &mut Vec<Row>,
) {
    for o in old {
        let n = new.iter().find(|f| f.metric == o.metric);
        rows.extend(row_for(section, Some(o), n, bands, judged));
    }
    for n in new {
        if !old.iter().any(|f| f.metric == n.metric) {
            rows.extend(row_for(section, None, Some(n), bands, judged));
        }
    }
}

/// Compares two runs.
pub fn compare(old: &Results, new: &Results, bands: &Bands) -> Vec<Row> {
    let mut rows = Vec::new();
    let scenario_figures = |s: &crate::results::ScenarioResult| {
        let mut figures = s.figures.clone();
        if let Some(server) = &s.server {
            figures.extend(server.figures());
        }
        figures
    };
    for o in &old.scenarios {
        let section = format!("scenario {}", o.name);
        let n = new.scenarios.iter().find(|s| s.name == o.name);
        let new_figures = n.map(scenario_figures).unwrap_or_default();
        compare_figures(
            &section,
            &scenario_figures(o),
            &new_figures,
            bands,
            true,
            &mut rows,
        );
    }
    for n in &new.scenarios {
        if !old.scenarios.iter().any(|s| s.name == n.name) {
            let section = format!("scenario {}", n.name);
            compare_figures(&section, &[], &scenario_figures(n), bands, true, &mut rows);
        }
    }
    for o in &old.references {
        let section = format!("reference {}", o.name);
        let n = new.reference(&o.name).map(|r| r.figures.clone());
        compare_figures(
            &section,
            &o.figures,
            &n.unwrap_or_default(),
            bands,
            false,
            &mut rows,
        );
    }
    for n in &new.references {
        if old.reference(&n.name).is_none() {
            let section = format!("reference {}", n.name);
            compare_figures(&section, &[], &n.figures, bands, false, &mut rows);
        }
    }
    let gate_figures = |r: &Results| -> Vec<Figure> {
        r.gate
            .iter()
            .map(|g| Figure::new(&g.part, "Ir", g.instructions as f64, Better::Lower))
            .collect()
    };
    compare_figures(
        "gate",
        &gate_figures(old),
        &gate_figures(new),
        bands,
        true,
        &mut rows,
    );
    rows
}

/// Whether any row is a regression.
pub fn regressed(rows: &[Row]) -> bool {
    rows.iter().any(|r| r.change == Change::Worse)
}

/// Differences between the two machines worth a warning.
pub fn machine_differences(old: &Results, new: &Results) -> Vec<String> {
    let (a, b) = (&old.machine, &new.machine);
    let mut out = Vec::new();
    if a.cpu_model != b.cpu_model {
        out.push(format!("CPU: {} -> {}", a.cpu_model, b.cpu_model));
    }
    if a.logical_cores != b.logical_cores {
        out.push(format!("cores: {} -> {}", a.logical_cores, b.logical_cores));
    }
    if a.kernel != b.kernel {
        out.push(format!("kernel: {} -> {}", a.kernel, b.kernel));
    }
    out
}

fn number(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-3) => format!("{v:.4e}"),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.4}"),
    }
}

/// The table `compare` prints.
pub fn render(rows: &[Row]) -> String {
    let mut cells = vec![vec![
        "section".to_string(),
        "metric".into(),
        "unit".into(),
        "old".into(),
        "new".into(),
        "change".into(),
        "band".into(),
        "verdict".into(),
    ]];
    for r in rows {
        cells.push(vec![
            r.section.clone(),
            r.metric.clone(),
            r.unit.clone(),
            number(r.old),
            number(r.new),
            r.change_percent.map_or("-".into(), |c| format!("{c:+.1}%")),
            r.band_percent.map_or("-".into(), |b| format!("±{b}%")),
            r.change.as_str().into(),
        ]);
    }
    crate::table::render(&cells, |i| (3..=6).contains(&i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::sample;
    use crate::results::GateCount;

    #[test]
    fn judging_respects_direction_and_band() {
        let b = 10.0;
        assert_eq!(
            judge(100.0, 109.0, b, Better::Higher),
            (Some(9.0), Change::Same)
        );
        assert_eq!(judge(100.0, 110.0, b, Better::Higher).1, Change::Same);
        assert_eq!(judge(100.0, 111.0, b, Better::Higher).1, Change::Better);
        assert_eq!(judge(100.0, 89.0, b, Better::Higher).1, Change::Worse);
        assert_eq!(judge(100.0, 111.0, b, Better::Lower).1, Change::Worse);
        assert_eq!(judge(100.0, 89.0, b, Better::Lower).1, Change::Better);
        assert_eq!(judge(100.0, 50.0, b, Better::Neither).1, Change::Info);
        assert_eq!(judge(0.0, 0.0, b, Better::Lower), (Some(0.0), Change::Same));
        assert_eq!(judge(0.0, 1.0, b, Better::Lower), (None, Change::Worse));
        assert_eq!(judge(0.0, 1.0, b, Better::Higher), (None, Change::Better));
    }

    #[test]
    fn bands_depend_on_the_metric() {
        let bands = Bands::default();
        assert_eq!(bands.for_metric("throughput", "Gbit/s"), 10.0);
        assert_eq!(bands.for_metric("latency_p50", "us"), 10.0);
        assert_eq!(bands.for_metric("latency_p99", "us"), 20.0);
        assert_eq!(bands.for_metric("latency_p999", "us"), 20.0);
        assert_eq!(bands.for_metric("server_rss_peak", "B"), 10.0);
        assert_eq!(bands.for_metric("data", "Ir"), 1.0);
    }

    #[test]
    fn identical_runs_have_no_change() {
        let rows = compare(&sample(), &sample(), &Bands::default());
        assert!(!rows.is_empty());
        assert!(rows
            .iter()
            .all(|r| matches!(r.change, Change::Same | Change::Info)));
        assert!(!regressed(&rows));
    }

    #[test]
    fn ratio_is_judged_when_a_reference_is_beside_the_figure() {
        let old = sample();
        let mut new = sample();
        // The machine got 20% slower: scenario and reference alike.
        new.references[0].figures[0].value *= 0.8;
        let bulk = &mut new.scenarios[0].figures[0];
        bulk.value *= 0.8;
        let reference = bulk.reference.as_mut().unwrap();
        reference.value *= 0.8;
        let rows = compare(&old, &new, &Bands::default());
        let find = |section: &str, metric: &str| {
            rows.iter()
                .find(|r| r.section == section && r.metric == metric)
                .unwrap()
                .clone()
        };
        let absolute = find("scenario bulk", "throughput");
        assert_eq!(absolute.change, Change::Info);
        assert!((absolute.change_percent.unwrap() + 20.0).abs() < 1e-9);
        assert_eq!(find("scenario bulk", "throughput/ref").change, Change::Same);
        assert_eq!(
            find("reference tls_stream", "throughput").change,
            Change::Info
        );
        assert!(!regressed(&rows));

        // Now only the scenario got slower: the ratio drops 25%.
        let mut worse = sample();
        let bulk = &mut worse.scenarios[0].figures[0];
        bulk.value *= 0.75;
        bulk.reference.as_mut().unwrap().ratio *= 0.75;
        let rows = compare(&old, &worse, &Bands::default());
        let ratio = rows.iter().find(|r| r.metric == "throughput/ref").unwrap();
        assert_eq!(ratio.change, Change::Worse);
        assert!(regressed(&rows));
    }

    #[test]
    fn latency_tails_get_the_wider_band() {
        let old = sample();
        let mut new = sample();
        for f in &mut new.scenarios[1].figures {
            f.value *= 1.15;
        }
        let rows = compare(&old, &new, &Bands::default());
        let verdict = |metric: &str| {
            rows.iter()
                .find(|r| r.section == "scenario latency" && r.metric == metric)
                .unwrap()
                .change
        };
        assert_eq!(verdict("latency_p50"), Change::Worse);
        assert_eq!(verdict("latency_p99"), Change::Same);
        assert_eq!(verdict("latency_p999"), Change::Info);

        // A p99.9 ten times higher alone is no regression.
        let mut spiky = sample();
        for f in &mut spiky.scenarios[1].figures {
            if f.metric == "latency_p999" {
                f.value *= 10.0;
            }
        }
        assert!(!regressed(&compare(&old, &spiky, &Bands::default())));
    }

    #[test]
    fn memory_cpu_and_instruction_counts_are_judged() {
        let old = sample();
        let mut new = sample();
        let server = new.scenarios[0].server.as_mut().unwrap();
        server.rss_bytes_peak = server.rss_bytes_peak * 12 / 10;
        server.cpu_s_per_gb = Some(server.cpu_s_per_gb.unwrap() * 0.5);
        new.gate[0].instructions += new.gate[0].instructions / 50;
        new.gate.push(GateCount {
            part: "hdlc".into(),
            instructions: 1,
            units: 1,
            unit: "frame".into(),
        });
        let rows = compare(&old, &new, &Bands::default());
        let get = |section: &str, metric: &str| {
            rows.iter()
                .find(|r| r.section == section && r.metric == metric)
                .unwrap()
                .change
        };
        assert_eq!(get("scenario bulk", "server_rss_peak"), Change::Worse);
        assert_eq!(get("scenario bulk", "server_cpu_per_gb"), Change::Better);
        assert_eq!(get("gate", "data"), Change::Worse);
        assert_eq!(get("gate", "hdlc"), Change::New);
    }

    #[test]
    fn scenarios_present_on_one_side_are_new_or_gone() {
        let old = sample();
        let mut new = sample();
        new.scenarios.remove(1);
        new.scenarios[0].name = "pps".into();
        let rows = compare(&old, &new, &Bands::default());
        assert!(rows
            .iter()
            .filter(|r| r.section == "scenario latency" || r.section == "scenario bulk")
            .all(|r| r.change == Change::Gone));
        assert!(rows
            .iter()
            .filter(|r| r.section == "scenario pps")
            .all(|r| r.change == Change::New));
        assert!(!regressed(&rows));
    }

    #[test]
    fn table_and_machine_warnings() {
        let old = sample();
        let mut new = sample();
        new.machine.cpu_model = "Other CPU".into();
        let diffs = machine_differences(&old, &new);
        assert_eq!(diffs, ["CPU: Test CPU <x> & \"y\" -> Other CPU"]);
        let table = render(&compare(&old, &new, &Bands::default()));
        let header = table.lines().next().unwrap();
        assert!(header.starts_with("section"), "{header}");
        assert!(table.contains("scenario bulk"));
        assert!(table.contains("throughput/ref"));
        assert!(table
            .lines()
            .any(|l| l.starts_with("gate") && l.contains("1.2346e8")));
    }
}
