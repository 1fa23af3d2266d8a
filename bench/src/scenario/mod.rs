//! Scenarios: sstpd under load from sstp-loadgen, each figure reported
//! beside a reference measured in the same run.
//!
//! A scenario ([`catalog`]) starts the real `sstpd` binary with a
//! generated configuration in a network namespace ([`SstpdProcess`],
//! [`Testbed`]) with the traffic peer next to it, measures the references
//! it is compared with (with sstpd's own certificate), runs
//! `sstp-loadgen` ([`loadgen`]) while [`Sampler`] watches every process's
//! CPU and memory, and records figures, references and ratios
//! ([`ScenarioRun`]). [`demo`] is the short tour the README opens with.

pub mod binaries;
pub mod catalog;
pub mod cluster;
pub mod demo;
pub mod loadgen;
pub mod process;
pub mod radius;
pub mod sampler;
pub mod soak;
pub mod tcp;
pub mod testbed;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use binaries::{ensure_built, Binaries};
pub use catalog::{BenchOptions, Kind, Outcome, ScenarioSpec, SCENARIOS};
pub use process::{locate_sstpd, ProcessSample, SstpdOptions, SstpdProcess};
pub use sampler::Sampler;
pub use testbed::{Testbed, Topology};

use crate::reference::ReferenceError;
use crate::results::{ReferenceResult, Results, ResultsError, ScenarioResult, ServerUsage};

/// Why a scenario produced no result.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScenarioError {
    UnknownScenario(String),
    /// A binary does not exist.
    Binary(PathBuf),
    /// Building the binaries failed.
    Build(String),
    Io(std::io::Error),
    /// Namespace, certificate, configuration or peer could not be
    /// prepared.
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
    /// A reference could not be measured.
    Reference(ReferenceError),
    /// The load generator failed, hung, or brought no session up.
    Loadgen(String),
    /// SIGINT or SIGTERM: the run stopped early.
    Interrupted,
}

impl ScenarioError {
    pub fn as_str(&self) -> &'static str {
        match self {
            ScenarioError::UnknownScenario(_) => "unknown_scenario",
            ScenarioError::Binary(_) => "binary_missing",
            ScenarioError::Build(_) => "build_failed",
            ScenarioError::Io(_) => "io",
            ScenarioError::Setup(_) => "setup",
            ScenarioError::Exited { .. } => "sstpd_exited",
            ScenarioError::NotListening { .. } => "sstpd_not_listening",
            ScenarioError::StopTimeout { .. } => "sstpd_stop_timeout",
            ScenarioError::Proc(_) => "proc",
            ScenarioError::Results(_) => "results",
            ScenarioError::Reference(_) => "reference",
            ScenarioError::Loadgen(_) => "loadgen",
            ScenarioError::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::UnknownScenario(name) => {
                let groups: Vec<&str> =
                    SCENARIOS
                        .iter()
                        .map(|s| s.group)
                        .fold(Vec::new(), |mut all, g| {
                            if !all.contains(&g) {
                                all.push(g);
                            }
                            all
                        });
                let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
                write!(
                    f,
                    "unknown scenario {name:?}; scenarios: {}, or all (groups: {})",
                    names.join(", "),
                    groups.join(", ")
                )
            }
            ScenarioError::Binary(path) => write!(
                f,
                "{} not found: build it with `cargo build --release -p sstpd -p sstp-loadgen` \
                 (or set SSTPD_BIN / SSTP_LOADGEN_BIN)",
                path.display()
            ),
            ScenarioError::Build(e) => write!(f, "build: {e}"),
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
            ScenarioError::Reference(e) => write!(f, "reference: {e}"),
            ScenarioError::Loadgen(e) => write!(f, "sstp-loadgen: {e}"),
            ScenarioError::Interrupted => write!(f, "interrupted"),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// Looks a scenario up by name.
pub fn spec(name: &str) -> Result<ScenarioSpec, ScenarioError> {
    SCENARIOS
        .iter()
        .copied()
        .find(|s| s.name == name)
        .ok_or_else(|| ScenarioError::UnknownScenario(name.into()))
}

/// What `run NAME` selects: `all` (every scenario but `soak`), a group
/// (`bulk`: its four), or one scenario by name (`bulk_up_64`).
pub fn select(name: &str) -> Result<Vec<ScenarioSpec>, ScenarioError> {
    if name == "all" {
        return Ok(SCENARIOS
            .iter()
            .copied()
            .filter(|s| s.group != catalog::SOAK_GROUP)
            .collect());
    }
    if name == catalog::IPV6_GROUP {
        // Each IPv6 scenario right after its IPv4 twin, in the same run.
        let mut both = Vec::new();
        for v6 in SCENARIOS.iter().filter(|s| s.ipv6()) {
            both.push(spec(v6.name.trim_end_matches("_v6"))?);
            both.push(*v6);
        }
        return Ok(both);
    }
    let group: Vec<ScenarioSpec> = SCENARIOS
        .iter()
        .copied()
        .filter(|s| s.group == name)
        .collect();
    if group.is_empty() {
        Ok(vec![spec(name)?])
    } else {
        Ok(group)
    }
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
            end.cpu_since(&self.start),
            self.opened.elapsed().as_secs_f64(),
            bytes,
            sessions,
            end.rss_peak_bytes.unwrap_or(end.rss_bytes),
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
    fn scenarios_are_selected_by_name_group_or_all() {
        let all = select("all").unwrap();
        assert_eq!(all.len(), SCENARIOS.len() - 1);
        assert!(all.iter().all(|s| s.name != "soak"), "soak is not in all");
        assert_eq!(select("soak").unwrap()[0].kind, Kind::Soak);
        let bulk: Vec<&str> = select("bulk").unwrap().iter().map(|s| s.name).collect();
        assert_eq!(
            bulk,
            ["bulk_up_1", "bulk_up_64", "bulk_down_1", "bulk_down_64"]
        );
        assert_eq!(select("latency").unwrap()[0].name, "latency");
        assert_eq!(select("bulk_down_64").unwrap().len(), 1);
        assert_eq!(select("pps").unwrap().len(), 2);
        assert_eq!(select("tcp").unwrap().len(), 5);
        let ipv6: Vec<&str> = select("ipv6").unwrap().iter().map(|s| s.name).collect();
        assert_eq!(
            ipv6,
            [
                "bulk_up_1",
                "bulk_up_1_v6",
                "pps_up",
                "pps_up_v6",
                "latency",
                "latency_v6"
            ]
        );
        let error = select("nope").unwrap_err();
        assert_eq!(error.as_str(), "unknown_scenario");
        assert_eq!(
            error.to_string(),
            "unknown scenario \"nope\"; scenarios: bulk_up_1, bulk_up_64, bulk_down_1, \
             bulk_down_64, tcp_up_1, tcp_up_8, tcp_up_64, tcp_down_1, tcp_down_8, pps_up, \
             pps_down, latency, latency_icmp, setup, setup_radius, idle, churn, storm, \
             bulk_up_1_v6, pps_up_v6, latency_v6, soak, or all \
             (groups: bulk, tcp, pps, latency, latency_icmp, setup, setup_radius, idle, churn, \
             storm, ipv6, soak)"
        );
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
