//! Scenarios: sstpd under load from sstp-loadgen, each figure reported
//! beside a reference measured in the same run.
//!
//! A scenario is: start the real `sstpd` binary with a generated
//! configuration in a network namespace ([`SstpdProcess`]), measure the
//! references it is compared with, sample the server's CPU and memory
//! ([`ProcessSample`]) around the load, and record figures, references and
//! ratios ([`ScenarioRun`]). The load itself comes from sstp-loadgen; until
//! the scenarios drive it, every scenario reports
//! [`ScenarioError::NeedsLoadgen`] instead of a number.

pub mod process;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use process::{locate_sstpd, ProcessSample, SstpdOptions, SstpdProcess};

use crate::results::{ReferenceResult, Results, ResultsError, ScenarioResult, ServerUsage};

/// Why a scenario produced no result.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The scenario is driven by sstp-loadgen, which is not available yet.
    NeedsLoadgen {
        scenario: String,
    },
    UnknownScenario(String),
    /// The sstpd binary does not exist.
    Binary(PathBuf),
    Io(std::io::Error),
    /// Namespace, certificate or configuration could not be prepared.
    Setup(String),
    /// sstpd exited during startup.
    Exited {
        status: String,
        log: String,
    },
    /// sstpd did not accept connections in time.
    NotListening {
        addr: SocketAddr,
        log: String,
    },
    /// sstpd did not stop after SIGTERM within the bound.
    StopTimeout {
        status: String,
        log: String,
    },
    Proc(String),
    Results(ResultsError),
}

impl ScenarioError {
    pub fn as_str(&self) -> &'static str {
        match self {
            ScenarioError::NeedsLoadgen { .. } => "needs_loadgen",
            ScenarioError::UnknownScenario(_) => "unknown_scenario",
            ScenarioError::Binary(_) => "binary_missing",
            ScenarioError::Io(_) => "io",
            ScenarioError::Setup(_) => "setup",
            ScenarioError::Exited { .. } => "sstpd_exited",
            ScenarioError::NotListening { .. } => "sstpd_not_listening",
            ScenarioError::StopTimeout { .. } => "sstpd_stop_timeout",
            ScenarioError::Proc(_) => "proc",
            ScenarioError::Results(_) => "results",
        }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::NeedsLoadgen { scenario } => write!(
                f,
                "scenario `{scenario}` is driven by sstp-loadgen, and sstp-bench does not \
                 drive it yet: nothing was measured (today: the gate, `sstp-bench reference`, \
                 and sstp-loadgen on its own, see docs/loadgen.md)"
            ),
            ScenarioError::UnknownScenario(name) => write!(
                f,
                "unknown scenario {name:?}; scenarios: {}, or all",
                SCENARIOS
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ScenarioError::Binary(path) => write!(
                f,
                "sstpd binary {} not found: build it with `cargo build --release -p sstpd` \
                 or set SSTPD_BIN",
                path.display()
            ),
            ScenarioError::Io(e) => write!(f, "{e}"),
            ScenarioError::Setup(e) => write!(f, "setup: {e}"),
            ScenarioError::Exited { status, log } => {
                write!(f, "sstpd exited during startup ({status}):\n{log}")
            }
            ScenarioError::NotListening { addr, log } => {
                write!(f, "sstpd is not accepting connections on {addr}:\n{log}")
            }
            ScenarioError::StopTimeout { status, log } => {
                write!(f, "sstpd ignored SIGTERM and was killed ({status}):\n{log}")
            }
            ScenarioError::Proc(e) => write!(f, "reading /proc: {e}"),
            ScenarioError::Results(e) => write!(f, "results: {e}"),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// A scenario's name and what it will measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScenarioSpec {
    pub name: &'static str,
    /// What the load is.
    pub load: &'static str,
    /// Its figures and the reference each stands beside.
    pub figures: &'static str,
}

/// The scenarios, in the order `run all` runs them.
pub const SCENARIOS: [ScenarioSpec; 6] = [
    ScenarioSpec {
        name: "bulk",
        load: "a few sessions moving bulk TCP-sized packets both ways",
        figures: "throughput (Gbit/s) beside tls_stream with 1,408-byte records (sstpd \
                  seals one SSTP packet per record); server CPU s/GB; RSS",
    },
    ScenarioSpec {
        name: "pps",
        load: "many sessions sending small packets",
        figures: "packets/s; server CPU s/GB beside tls_stream's; RSS",
    },
    ScenarioSpec {
        name: "latency",
        load: "one session, ICMP-sized ping-pong through the tunnel",
        figures: "round-trip percentiles beside tls_ping_pong",
    },
    ScenarioSpec {
        name: "setup",
        load: "sessions set up as fast as they complete, N concurrent",
        figures: "sessions/s beside tls_handshake; server CPU per 1,000 sessions",
    },
    ScenarioSpec {
        name: "idle",
        load: "thousands of established, idle sessions",
        figures: "RSS per session; server CPU s per hour idle",
    },
    ScenarioSpec {
        name: "churn",
        load: "sessions connecting and disconnecting continuously under traffic",
        figures: "sessions/s and throughput beside their references; RSS drift",
    },
];

/// Looks a scenario up by name.
pub fn spec(name: &str) -> Result<ScenarioSpec, ScenarioError> {
    SCENARIOS
        .iter()
        .copied()
        .find(|s| s.name == name)
        .ok_or_else(|| ScenarioError::UnknownScenario(name.into()))
}

/// The names `run NAME|all` selects.
pub fn select(name: &str) -> Result<Vec<ScenarioSpec>, ScenarioError> {
    if name == "all" {
        Ok(SCENARIOS.to_vec())
    } else {
        Ok(vec![spec(name)?])
    }
}

/// Runs one scenario: today every one of them reports that it is not
/// wired to sstp-loadgen yet.
///
/// The follow-up fills this in per scenario: start [`SstpdProcess`] (or
/// use `target`), measure the matching references (with the server's
/// certificate, [`SstpdProcess::certificate_files`]), [`Window::open`],
/// run sstp-loadgen, [`Window::close`], and build the [`ScenarioResult`]
/// with `Figure::beside`.
pub fn run(
    spec: ScenarioSpec,
    _target: Option<SocketAddr>,
) -> Result<ScenarioResult, ScenarioError> {
    Err(ScenarioError::NeedsLoadgen {
        scenario: spec.name.into(),
    })
}

/// The server's counters at the start of a measured window.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pid: u32,
    start: ProcessSample,
    opened: Instant,
}

impl Window {
    /// Starts measuring process `pid`.
    pub fn open(pid: u32) -> Result<Window, ScenarioError> {
        Ok(Window {
            pid,
            start: ProcessSample::read(pid)?,
            opened: Instant::now(),
        })
    }

    /// Ends the window: CPU seconds spent in it, RSS now and at peak, with
    /// the payload `bytes` and `sessions` the load reported.
    pub fn close(self, bytes: u64, sessions: u64) -> Result<ServerUsage, ScenarioError> {
        let end = ProcessSample::read(self.pid)?;
        Ok(ServerUsage::new(
            (end.cpu_seconds() - self.start.cpu_seconds()).max(0.0),
            self.opened.elapsed().as_secs_f64(),
            bytes,
            sessions,
            end.rss_peak_bytes,
            end.rss_bytes,
        ))
    }
}

/// One `sstp-bench run`: the results document being filled and where it
/// is written.
#[derive(Debug)]
pub struct ScenarioRun {
    pub results: Results,
    out: PathBuf,
}

impl ScenarioRun {
    pub fn new(out: &Path) -> ScenarioRun {
        ScenarioRun {
            results: Results::new_run(),
            out: out.to_owned(),
        }
    }

    /// Adds references (replacing ones of the same name: the latest
    /// measurement is the one the next scenario stands beside).
    pub fn add_references(&mut self, references: Vec<ReferenceResult>) {
        for r in references {
            self.results.references.retain(|old| old.name != r.name);
            self.results.references.push(r);
        }
    }

    pub fn add_scenario(&mut self, scenario: ScenarioResult) {
        self.results.scenarios.push(scenario);
    }

    /// Writes the results file (also after a partial run, so what was
    /// measured is kept).
    pub fn save(&self) -> Result<&Path, ScenarioError> {
        self.results
            .save(&self.out)
            .map_err(ScenarioError::Results)?;
        Ok(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Better, Figure};

    #[test]
    fn scenarios_are_selected_by_name_or_all() {
        assert_eq!(select("all").unwrap().len(), 6);
        assert_eq!(select("latency").unwrap()[0].name, "latency");
        let error = select("nope").unwrap_err();
        assert_eq!(error.as_str(), "unknown_scenario");
        assert_eq!(
            error.to_string(),
            "unknown scenario \"nope\"; scenarios: bulk, pps, latency, setup, idle, churn, or all"
        );
    }

    #[test]
    fn every_scenario_says_it_needs_the_load_generator() {
        for spec in SCENARIOS {
            let error = run(spec, None).unwrap_err();
            assert_eq!(error.as_str(), "needs_loadgen");
            assert!(error.to_string().contains("sstp-loadgen"));
            assert!(error.to_string().contains("nothing was measured"));
        }
    }

    #[test]
    fn a_run_records_references_and_scenarios() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("results.json");
        let mut run = ScenarioRun::new(&out);
        let reference = |v: f64| ReferenceResult {
            name: "tls_stream".into(),
            params: Default::default(),
            figures: vec![Figure::new("throughput", "Gbit/s", v, Better::Higher)],
            latency: None,
        };
        run.add_references(vec![reference(4.0)]);
        run.add_references(vec![reference(5.0)]);
        let stream = run.results.reference("tls_stream").unwrap().clone();
        run.add_scenario(ScenarioResult {
            name: "bulk".into(),
            params: Default::default(),
            figures: vec![Figure::new("throughput", "Gbit/s", 2.0, Better::Higher)
                .beside(&stream, "throughput")],
            server: None,
            latency: None,
        });
        assert_eq!(run.save().unwrap(), out);
        let saved = Results::load(&out).unwrap();
        assert_eq!(
            saved.references.len(),
            1,
            "the later reference replaced the earlier"
        );
        let figure = &saved.scenarios[0].figures[0];
        assert!((figure.reference.as_ref().unwrap().ratio - 0.4).abs() < 1e-12);
    }

    #[test]
    fn a_window_measures_our_own_cpu() {
        let window = Window::open(std::process::id()).unwrap();
        // Burn a little CPU; the window must not go backwards.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let usage = window.close(1_000_000_000, 10).unwrap();
        assert!(usage.cpu_seconds >= 0.0);
        assert!(usage.rss_bytes_peak >= usage.rss_bytes_end);
        assert_eq!(usage.bytes, 1_000_000_000);
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.max(1.0));
        assert!(close(usage.cpu_s_per_gb, usage.cpu_seconds), "{usage:?}");
        assert!(
            close(usage.cpu_s_per_1000_sessions, usage.cpu_seconds * 100.0),
            "{usage:?}"
        );
    }
}
