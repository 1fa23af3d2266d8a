//! The results file: one JSON document per run, versioned.
//!
//! ```json
//! {
//!   "schema": "sstp-bench/results", "schema_version": 1,
//!   "tool_version": "0.1.0", "timestamp": "2026-11-22T01:23:45Z",
//!   "git_commit": "4a4c85a…", "git_dirty": false,
//!   "machine": { "kernel": "6.1.0-…", "cpu_model": "…", "logical_cores": 2, … },
//!   "scenarios": [ { "name": "bulk", "params": {…},
//!                    "figures": [ { "metric": "throughput", "unit": "Gbit/s",
//!                                   "value": 2.1, "better": "higher",
//!                                   "reference": { "name": "tls_stream",
//!                                                  "metric": "throughput",
//!                                                  "value": 6.3, "ratio": 0.33 } } ],
//!                    "server": { "cpu_seconds": …, "cpu_s_per_gb": …,
//!                                "cpu_s_per_1000_sessions": …, "rss_bytes_peak": … },
//!                    "latency": { "unit": "us", "points": [ … ] } } ],
//!   "references": [ { "name": "tls_stream", "params": {…}, "figures": […] } ],
//!   "gate": [ { "part": "data", "instructions": 123, "units": 200000, "unit": "packet" } ],
//!   "series": [ { "scenario": "soak", "chart": "soak-rss", "name": "sstpd RSS",
//!                 "unit": "MiB", "points": [ { "t_s": 60.0, "value": 41.2 } ] } ]
//! }
//! ```
//!
//! Readers accept files of this or an older `schema_version`; a newer one
//! is refused with a message instead of being half understood. Fields
//! added later get `#[serde(default)]` so old files still load.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The `schema` value of every results file.
pub const SCHEMA: &str = "sstp-bench/results";
/// The version this build writes (and the newest it reads).
pub const SCHEMA_VERSION: u32 = 1;

/// Free-form parameters of a measurement (suite, sizes, durations).
pub type Params = BTreeMap<String, String>;

/// One run's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema: String,
    pub schema_version: u32,
    /// The sstp-bench version that wrote the file.
    pub tool_version: String,
    /// When the run started, RFC 3339 in UTC.
    pub timestamp: String,
    pub git_commit: Option<String>,
    /// Whether the work tree had uncommitted changes.
    pub git_dirty: Option<bool>,
    pub machine: Machine,
    #[serde(default)]
    pub scenarios: Vec<ScenarioResult>,
    #[serde(default)]
    pub references: Vec<ReferenceResult>,
    /// Instruction counts of the regression gate, when the run included it.
    #[serde(default)]
    pub gate: Vec<GateCount>,
    /// Figures over time (the soak scenario's, one point per interval).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Series>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One figure over time: its points and the chart it is drawn in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The scenario that measured it.
    pub scenario: String,
    /// The chart (and SVG file name) it belongs to, e.g. `soak-rss`;
    /// series of one chart share its unit.
    pub chart: String,
    /// The line's name in the chart, e.g. `p99`.
    pub name: String,
    pub unit: String,
    pub points: Vec<SeriesPoint>,
}

/// A value at `t_s` seconds after the series' start.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub t_s: f64,
    pub value: f64,
}

/// Where the run happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub kernel: String,
    pub cpu_model: String,
    pub logical_cores: usize,
    pub memory_bytes: Option<u64>,
    pub arch: String,
}

impl Machine {
    /// This machine, from /proc.
    pub fn current() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_bytes = read("/proc/meminfo").lines().find_map(|l| {
            let rest = l.strip_prefix("MemTotal:")?;
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib * 1024)
        });
        Machine {
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            cpu_model,
            logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            arch: std::env::consts::ARCH.to_owned(),
        }
    }
}

/// Which way a figure improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
    /// A count or size recorded for context, never judged.
    Neither,
}

/// One measured number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// snake_case name, unique within its scenario or reference.
    pub metric: String,
    pub unit: String,
    pub value: f64,
    pub better: Better,
    /// The same-run reference this figure stands beside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<FigureReference>,
}

/// A reference value and the ratio figure / reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FigureReference {
    /// The reference's name (e.g. `tls_stream`).
    pub name: String,
    pub metric: String,
    pub value: f64,
    pub ratio: f64,
}

impl Figure {
    pub fn new(metric: &str, unit: &str, value: f64, better: Better) -> Figure {
        Figure {
            metric: metric.into(),
            unit: unit.into(),
            value,
            better,
            reference: None,
        }
    }

    /// Attaches `reference`'s figure named `metric` (same unit) and the
    /// ratio to it. A zero reference leaves the ratio at 0.
    pub fn beside(mut self, reference: &ReferenceResult, metric: &str) -> Figure {
        if let Some(r) = reference.figure(metric) {
            self.reference = Some(FigureReference {
                name: reference.name.clone(),
                metric: metric.into(),
                value: r.value,
                ratio: if r.value != 0.0 {
                    self.value / r.value
                } else {
                    0.0
                },
            });
        }
        self
    }
}

/// One scenario of a run (sstpd driven by sstp-loadgen).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    #[serde(default)]
    pub params: Params,
    pub figures: Vec<Figure>,
    /// What the server process used, when it ran under the harness.
    #[serde(default)]
    pub server: Option<ServerUsage>,
    #[serde(default)]
    pub latency: Option<LatencyProfile>,
}

/// The server process's cost over a scenario's measured window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerUsage {
    /// User + system CPU time of all sstpd threads.
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
    /// Tunnel payload bytes moved through the server in the window.
    pub bytes: u64,
    pub sessions_set_up: u64,
    /// CPU seconds per 10^9 payload bytes, when bytes moved.
    pub cpu_s_per_gb: Option<f64>,
    /// CPU seconds per 1,000 sessions set up, when sessions were set up.
    pub cpu_s_per_1000_sessions: Option<f64>,
    /// Resident set size: the peak (VmHWM) and at the end of the window.
    pub rss_bytes_peak: u64,
    pub rss_bytes_end: u64,
}

impl ServerUsage {
    /// Derives the per-GB and per-1,000-session figures.
    pub fn new(
        cpu_seconds: f64,
        wall_seconds: f64,
        bytes: u64,
        sessions_set_up: u64,
        rss_bytes_peak: u64,
        rss_bytes_end: u64,
    ) -> ServerUsage {
        ServerUsage {
            cpu_seconds,
            wall_seconds,
            bytes,
            sessions_set_up,
            cpu_s_per_gb: (bytes > 0).then(|| cpu_seconds / (bytes as f64 / 1e9)),
            cpu_s_per_1000_sessions: (sessions_set_up > 0)
                .then(|| cpu_seconds * 1000.0 / sessions_set_up as f64),
            rss_bytes_peak,
            rss_bytes_end,
        }
    }

    /// The usage as judged figures (for compare).
    pub fn figures(&self) -> Vec<Figure> {
        let mut out = vec![Figure::new(
            "server_rss_peak",
            "B",
            self.rss_bytes_peak as f64,
            Better::Lower,
        )];
        if let Some(v) = self.cpu_s_per_gb {
            out.push(Figure::new("server_cpu_per_gb", "s/GB", v, Better::Lower));
        }
        if let Some(v) = self.cpu_s_per_1000_sessions {
            out.push(Figure::new(
                "server_cpu_per_1000_sessions",
                "s/1000 sessions",
                v,
                Better::Lower,
            ));
        }
        out
    }
}

/// A reference measured in the same run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceResult {
    pub name: String,
    #[serde(default)]
    pub params: Params,
    pub figures: Vec<Figure>,
    #[serde(default)]
    pub latency: Option<LatencyProfile>,
}

impl ReferenceResult {
    pub fn figure(&self, metric: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.metric == metric)
    }
}

/// One point of a latency distribution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    /// 0 to 100.
    pub percentile: f64,
    pub value: f64,
}

/// A latency distribution in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyProfile {
    pub unit: String,
    pub samples: u64,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    pub points: Vec<Percentile>,
}

/// The percentiles recorded for every latency distribution.
pub const PERCENTILES: [f64; 12] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0,
];

/// The percentiles judged by compare (and shown in tables).
pub const JUDGED_PERCENTILES: [(f64, &str); 4] = [
    (50.0, "latency_p50"),
    (90.0, "latency_p90"),
    (99.0, "latency_p99"),
    (99.9, "latency_p999"),
];

impl LatencyProfile {
    /// From a histogram of nanosecond samples.
    pub fn from_histogram_ns(h: &Histogram<u64>) -> LatencyProfile {
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencyProfile {
            unit: "us".into(),
            samples: h.len(),
            min: us(h.min()),
            mean: h.mean() / 1000.0,
            max: us(h.max()),
            points: PERCENTILES
                .iter()
                .map(|&p| Percentile {
                    percentile: p,
                    value: us(h.value_at_quantile(p / 100.0)),
                })
                .collect(),
        }
    }

    /// The value at `percentile`, if recorded.
    pub fn at(&self, percentile: f64) -> Option<f64> {
        self.points
            .iter()
            .find(|p| (p.percentile - percentile).abs() < 1e-9)
            .map(|p| p.value)
    }

    /// The judged percentiles as figures (lower is better).
    pub fn figures(&self) -> Vec<Figure> {
        JUDGED_PERCENTILES
            .iter()
            .filter_map(|&(p, name)| {
                Some(Figure::new(name, &self.unit, self.at(p)?, Better::Lower))
            })
            .collect()
    }
}

/// One part's count from the instruction-count gate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateCount {
    pub part: String,
    pub instructions: u64,
    pub units: u64,
    pub unit: String,
}

/// Why a results file could not be read or written.
#[derive(Debug)]
#[non_exhaustive]
pub enum ResultsError {
    Io(std::io::Error),
    Json(serde_json::Error),
    /// Not a results file.
    WrongSchema(String),
    /// Written by a newer sstp-bench.
    NewerVersion(u32),
}

impl ResultsError {
    pub fn as_str(&self) -> &'static str {
        match self {
            ResultsError::Io(_) => "io",
            ResultsError::Json(_) => "json",
            ResultsError::WrongSchema(_) => "wrong_schema",
            ResultsError::NewerVersion(_) => "newer_version",
        }
    }
}

impl fmt::Display for ResultsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResultsError::Io(e) => write!(f, "{e}"),
            ResultsError::Json(e) => write!(f, "not valid results JSON: {e}"),
            ResultsError::WrongSchema(s) => {
                write!(
                    f,
                    "schema is {s:?}, not {SCHEMA:?}: not an sstp-bench results file"
                )
            }
            ResultsError::NewerVersion(v) => write!(
                f,
                "schema_version {v} is newer than this sstp-bench understands ({SCHEMA_VERSION}); \
                 use a newer sstp-bench"
            ),
        }
    }
}

impl std::error::Error for ResultsError {}

impl Results {
    /// An empty results document for a run starting now, on this machine,
    /// at the git commit of the current directory (if any).
    pub fn new_run() -> Results {
        let (git_commit, git_dirty) = git_state();
        Results {
            schema: SCHEMA.into(),
            schema_version: SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            timestamp: rfc3339_utc(SystemTime::now()),
            git_commit,
            git_dirty,
            machine: Machine::current(),
            scenarios: Vec::new(),
            references: Vec::new(),
            gate: Vec::new(),
            series: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn reference(&self, name: &str) -> Option<&ReferenceResult> {
        self.references.iter().find(|r| r.name == name)
    }

    pub fn to_json(&self) -> String {
        // Only strings, numbers and maps with string keys: cannot fail.
        serde_json::to_string_pretty(self).expect("results serialize")
    }

    /// Parses and checks the schema and version.
    pub fn from_json(text: &str) -> Result<Results, ResultsError> {
        #[derive(Deserialize)]
        struct Head {
            schema: String,
            schema_version: u32,
        }
        let head: Head = serde_json::from_str(text).map_err(ResultsError::Json)?;
        if head.schema != SCHEMA {
            return Err(ResultsError::WrongSchema(head.schema));
        }
        if head.schema_version > SCHEMA_VERSION {
            return Err(ResultsError::NewerVersion(head.schema_version));
        }
        serde_json::from_str(text).map_err(ResultsError::Json)
    }

    pub fn load(path: &Path) -> Result<Results, ResultsError> {
        let text = std::fs::read_to_string(path).map_err(ResultsError::Io)?;
        Results::from_json(&text)
    }

    pub fn save(&self, path: &Path) -> Result<(), ResultsError> {
        let mut text = self.to_json();
        text.push('\n');
        std::fs::write(path, text).map_err(ResultsError::Io)
    }
}

/// `git rev-parse HEAD` and whether `git status --porcelain` is non-empty,
/// in the current directory.
pub fn git_state() -> (Option<String>, Option<bool>) {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run(&["rev-parse", "HEAD"]);
    let dirty = commit
        .as_ref()
        .and_then(|_| run(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    (commit, dirty)
}

/// `YYYY-MM-DDThh:mm:ssZ` for `time` (proleptic Gregorian, UTC).
pub fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    /// A results document with one of everything, for round trips and the
    /// report and compare tests.
    pub(crate) fn sample() -> Results {
        let stream = ReferenceResult {
            name: "tls_stream".into(),
            params: [("suite".to_string(), "TLS13_AES_128_GCM_SHA256".to_string())]
                .into_iter()
                .collect(),
            figures: vec![
                Figure::new("throughput", "Gbit/s", 6.0, Better::Higher),
                Figure::new("server_cpu_per_gb", "s/GB", 1.25, Better::Lower),
            ],
            latency: None,
        };
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for i in 1..=1000u64 {
            h.record(20_000 + i * 10).unwrap();
        }
        let ping = ReferenceResult {
            name: "tls_ping_pong".into(),
            params: Params::new(),
            figures: LatencyProfile::from_histogram_ns(&h).figures(),
            latency: Some(LatencyProfile::from_histogram_ns(&h)),
        };
        let mut h2 = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for i in 1..=1000u64 {
            h2.record(45_000 + i * 30).unwrap();
        }
        let bulk = ScenarioResult {
            name: "bulk".into(),
            params: Params::new(),
            figures: vec![Figure::new("throughput", "Gbit/s", 2.4, Better::Higher)
                .beside(&stream, "throughput")],
            server: Some(ServerUsage::new(
                3.0,
                10.0,
                3_000_000_000,
                0,
                50 << 20,
                40 << 20,
            )),
            latency: None,
        };
        let latency = ScenarioResult {
            name: "latency".into(),
            params: Params::new(),
            figures: LatencyProfile::from_histogram_ns(&h2).figures(),
            server: None,
            latency: Some(LatencyProfile::from_histogram_ns(&h2)),
        };
        Results {
            schema: SCHEMA.into(),
            schema_version: SCHEMA_VERSION,
            tool_version: "0.1.0".into(),
            timestamp: rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            git_commit: Some("0123456789abcdef".into()),
            git_dirty: Some(false),
            machine: Machine {
                kernel: "6.1.0-test".into(),
                cpu_model: "Test CPU <x> & \"y\"".into(),
                logical_cores: 2,
                memory_bytes: Some(24 << 30),
                arch: "x86_64".into(),
            },
            scenarios: vec![bulk, latency],
            references: vec![stream, ping],
            gate: vec![GateCount {
                part: "data".into(),
                instructions: 123_456_789,
                units: 200_000,
                unit: "packet".into(),
            }],
            series: vec![Series {
                scenario: "soak".into(),
                chart: "soak-rss".into(),
                name: "sstpd RSS".into(),
                unit: "MiB".into(),
                points: vec![
                    SeriesPoint {
                        t_s: 60.0,
                        value: 40.0,
                    },
                    SeriesPoint {
                        t_s: 120.0,
                        value: 41.5,
                    },
                ],
            }],
            notes: vec!["sample".into()],
        }
    }

    #[test]
    fn json_round_trip_is_lossless() {
        let results = sample();
        let text = results.to_json();
        assert_eq!(Results::from_json(&text).unwrap(), results);
        let bulk = &results.scenarios[0].figures[0];
        let reference = bulk.reference.as_ref().unwrap();
        assert_eq!(reference.name, "tls_stream");
        assert!((reference.ratio - 0.4).abs() < 1e-12);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["schema"], "sstp-bench/results");
        assert_eq!(value["schema_version"], 1);
        assert_eq!(value["scenarios"][0]["figures"][0]["better"], "higher");
        assert_eq!(value["scenarios"][0]["server"]["cpu_s_per_gb"], 1.0);
        assert_eq!(value["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(value["series"][0]["points"][1]["value"], 41.5);
    }

    #[test]
    fn missing_optional_sections_default_to_empty() {
        let mut value: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        let object = value.as_object_mut().unwrap();
        for key in ["scenarios", "references", "gate", "series", "notes"] {
            object.remove(key);
        }
        let results = Results::from_json(&value.to_string()).unwrap();
        assert!(results.scenarios.is_empty() && results.references.is_empty());
        assert!(results.gate.is_empty() && results.notes.is_empty());
        assert!(results.series.is_empty());
    }

    #[test]
    fn other_schemas_and_newer_versions_are_refused() {
        let text = sample().to_json();
        let other = text.replace("sstp-bench/results", "something-else");
        assert_eq!(
            Results::from_json(&other).unwrap_err().as_str(),
            "wrong_schema"
        );
        let newer = text.replace("\"schema_version\": 1", "\"schema_version\": 2");
        let error = Results::from_json(&newer).unwrap_err();
        assert_eq!(error.as_str(), "newer_version");
        assert!(error.to_string().contains("schema_version 2 is newer"));
        assert_eq!(
            Results::from_json("{\"schema\": 1}").unwrap_err().as_str(),
            "json"
        );
    }

    #[test]
    fn server_usage_derives_per_gb_and_per_thousand_sessions() {
        let u = ServerUsage::new(2.0, 5.0, 4_000_000_000, 500, 1, 1);
        assert_eq!(u.cpu_s_per_gb, Some(0.5));
        assert_eq!(u.cpu_s_per_1000_sessions, Some(4.0));
        let idle = ServerUsage::new(0.1, 5.0, 0, 0, 1, 1);
        assert_eq!(idle.cpu_s_per_gb, None);
        assert_eq!(idle.cpu_s_per_1000_sessions, None);
        assert_eq!(idle.figures().len(), 1);
    }

    #[test]
    fn latency_profile_percentiles_are_in_microseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for ns in [10_000u64, 20_000, 30_000, 40_000] {
            h.record(ns).unwrap();
        }
        let p = LatencyProfile::from_histogram_ns(&h);
        assert_eq!(p.samples, 4);
        assert!((p.at(50.0).unwrap() - 20.0).abs() < 0.05, "{p:?}");
        assert!((p.max - 40.0).abs() < 0.05);
        let names: Vec<_> = p.figures().iter().map(|f| f.metric.clone()).collect();
        assert_eq!(
            names,
            ["latency_p50", "latency_p90", "latency_p99", "latency_p999"]
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661);
        assert_eq!(rfc3339_utc(leap), "2000-02-29T01:01:01Z");
    }
}
