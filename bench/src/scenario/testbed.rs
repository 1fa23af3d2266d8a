//! The server under test and the load runs against it.
//!
//! Locally ([`Testbed::local`]): a fresh sstpd in a network namespace of
//! its own, the traffic peer (`sstp-loadgen peer`) in the same namespace,
//! where tunnel traffic to the gateway address reaches it, and every load
//! run in that namespace too, over its loopback. Loopback, because that is
//! where the bare-TLS references run: scenario and reference then pay for
//! the same TCP path, and the ratio isolates what the tunnel adds (a veth
//! pair would add its own per-packet cost to one side only).
//!
//! Remotely ([`Testbed::remote`], `--target`): no sstpd of ours; the load
//! runs from this host's namespace and the server's cost is not measured.
//!
//! With RADIUS ([`Testbed::local_with_radius`]): a real FreeRADIUS in
//! the same namespace, started before sstpd, sstpd's authentication and
//! accounting server on that namespace's loopback.
//!
//! Each load run is sampled ([`Sampler`]): sstpd, the peer, the load
//! generator and FreeRADIUS are separate processes, so /proc tells whose
//! CPU a figure cost and which one was the limit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use sstp_loadgen::report::Tunnel;
use sstp_loadgen::Report;
use sstpd::testing::freeradius::{FreeRadius, FreeRadiusConfig};
use sstpd::testing::netns::{create_veth_pair, NetNs, VethEnd};

use super::binaries::Binaries;
use super::loadgen::{
    load_args, Connection, LoadChild, LoadSpec, PeerProcess, Placement, SETUP_TIMEOUT,
};
use super::process::{new_namespace, ProcessSample, SstpdOptions, SstpdProcess};
use super::sampler::{CpuUse, Sampler, Samples};
use super::ScenarioError;
use crate::reference::tls::CertSource;

/// Where the peer listens in the server's namespace (sstp-loadgen's
/// default destination is the tunnel gateway on this port).
pub const PEER_PORT: u16 = sstp_loadgen::config::DEFAULT_PEER_PORT;

/// How the local machine is shared out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Logical cores of the machine.
    pub cores: usize,
    /// sstpd workers, pinned to cores 0..server_workers (sstpd pins worker
    /// n to core n).
    pub server_workers: usize,
    /// Load generator workers, pinned to the cores after sstpd's (modulo
    /// the core count).
    pub loadgen_workers: usize,
    /// Peer threads (not pinned).
    pub peer_threads: usize,
    /// Pin the load generator's workers to the cores after sstpd's.
    pub pin_loadgen: bool,
}

impl Topology {
    /// Half the cores for sstpd, the rest for the load generator (one
    /// each on a two-core machine), one peer thread.
    pub fn for_cores(cores: usize) -> Topology {
        let cores = cores.max(1);
        let server_workers = (cores / 2).max(1);
        Topology {
            cores,
            server_workers,
            loadgen_workers: cores.saturating_sub(server_workers).max(1),
            peer_threads: 1,
            pin_loadgen: true,
        }
    }

    /// This machine.
    pub fn current() -> Topology {
        Topology::for_cores(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The load generator's placement: its cores follow sstpd's.
    pub fn placement(&self) -> Placement {
        Placement {
            workers: self.loadgen_workers,
            cpus: self.pin_loadgen.then(|| {
                (0..self.loadgen_workers)
                    .map(|i| (self.server_workers + i) % self.cores)
                    .collect()
            }),
        }
    }
}

/// The processes a load run watches, by their index in the samples.
const SERVER: usize = 0;
const PEER: usize = 1;
const LOADGEN: usize = 2;
const RADIUS: usize = 3;

/// A finished load run: the load generator's report and who used the CPU
/// meanwhile.
#[derive(Clone, Debug)]
pub struct LoadOutcome {
    pub report: Report,
    pub samples: Samples,
    /// Whether sstpd and the peer were ours (and sampled).
    pub local: bool,
}

/// An interval of a run in Unix seconds.
pub type Interval = (f64, f64);

/// An interval the CPU is read over, and how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    pub from: f64,
    pub to: f64,
    /// The processes were idle just before `from` and after `to` (a ramp
    /// of setups): the CPU is read at the samples around the interval
    /// ([`Samples::around`]). Otherwise (a steady window) it is
    /// interpolated between the samples at each end.
    pub idle_edges: bool,
}

impl Span {
    pub fn seconds(&self) -> f64 {
        (self.to - self.from).max(0.0)
    }
}

impl From<Interval> for Span {
    fn from((from, to): Interval) -> Span {
        Span {
            from,
            to,
            idle_edges: false,
        }
    }
}

/// CPU use of everything in an interval, in cores (CPU seconds per
/// second).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuShares {
    pub seconds: f64,
    pub server: Option<CpuUse>,
    pub peer: Option<CpuUse>,
    pub loadgen: Option<CpuUse>,
    /// FreeRADIUS, when the testbed has one.
    pub radius: Option<CpuUse>,
    /// The whole machine's busy time.
    pub machine: Option<f64>,
}

impl CpuShares {
    pub fn cores(&self, used: Option<CpuUse>) -> Option<f64> {
        (self.seconds > 0.0).then_some(used?.seconds() / self.seconds)
    }

    /// Busy cores of processes other than ours (other people's work on a
    /// shared machine, kernel threads).
    pub fn others_cores(&self) -> Option<f64> {
        let ours: f64 = [self.server, self.peer, self.loadgen, self.radius]
            .iter()
            .flatten()
            .map(CpuUse::seconds)
            .sum();
        (self.seconds > 0.0).then_some((self.machine? - ours).max(0.0) / self.seconds)
    }

    /// Which process was the limit: the first one close to all the cores
    /// it may use. Against a remote server (`local` false) a load
    /// generator with CPU to spare means the server or the path to it.
    pub fn limit(&self, topology: &Topology, local: bool) -> Limit {
        match self.local_limit(topology) {
            Limit::NotCpu if !local => Limit::ServerOrNetwork,
            limit => limit,
        }
    }

    fn local_limit(&self, topology: &Topology) -> Limit {
        let near = |used: Option<CpuUse>, threads: usize| {
            self.cores(used)
                .is_some_and(|c| c >= 0.85 * threads.max(1) as f64)
        };
        if near(self.server, topology.server_workers) {
            Limit::Server
        } else if near(self.loadgen, topology.loadgen_workers) {
            Limit::Loadgen
        } else if near(self.peer, topology.peer_threads) {
            Limit::Peer
        } else if near(self.radius, 1) {
            Limit::Radius
        } else if self.machine.is_some_and(|busy| {
            self.seconds > 0.0 && busy / self.seconds >= 0.9 * topology.cores as f64
        }) {
            Limit::Machine
        } else {
            Limit::NotCpu
        }
    }
}

/// What held a figure down, from the CPU shares of its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// sstpd's worker cores were busy.
    Server,
    /// The load generator's cores were busy.
    Loadgen,
    /// The traffic peer was busy.
    Peer,
    /// FreeRADIUS used a core's worth of CPU (it is not pinned; its
    /// thread pool may use more).
    Radius,
    /// Every core of the machine was busy, no one process alone.
    Machine,
    /// No CPU was saturated: latency, pacing or a lock-step exchange.
    NotCpu,
    /// A remote server, and the load generator had CPU to spare.
    ServerOrNetwork,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Server => "sstpd",
            Limit::Loadgen => "sstp_loadgen",
            Limit::Peer => "peer",
            Limit::Radius => "freeradius",
            Limit::Machine => "machine",
            Limit::NotCpu => "not_cpu",
            Limit::ServerOrNetwork => "server_or_network",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Limit::Server => "sstpd (its worker cores were busy)",
            Limit::Loadgen => "the load generator (its cores were busy)",
            Limit::Peer => "the traffic peer (its thread was busy)",
            Limit::Radius => "FreeRADIUS (a core's worth of CPU busy)",
            Limit::Machine => "the machine (every core busy, no single process saturated)",
            Limit::NotCpu => "no CPU saturated (round trips, pacing)",
            Limit::ServerOrNetwork => {
                "the server or the network (the load generator had CPU to spare)"
            }
        }
    }
}

impl LoadOutcome {
    fn start(&self) -> f64 {
        self.report.timing.started_unix_s
    }

    /// From the start until every setup had finished. sstpd is idle just
    /// before (no client yet) and just after (its sessions held quiet), so
    /// the CPU is read at the samples around the ramp: interpolating inside
    /// the 100 ms between samples at each end would spread the ramp's CPU
    /// over the idle time beside it, and undercount a ramp of a third of a
    /// second by up to a quarter (docs/benchmarking.md, "How a ramp's CPU
    /// is read").
    pub fn ramp(&self) -> Span {
        Span {
            from: self.start(),
            to: self.start() + self.report.timing.ramp_s,
            idle_edges: true,
        }
    }

    /// The traffic (or hold) window the rates are computed over.
    pub fn window(&self) -> Interval {
        let from = self.start() + self.report.timing.ramp_s;
        (from, from + self.report.timing.window_s)
    }

    /// The whole run, closing included.
    pub fn whole(&self) -> Interval {
        (self.start(), self.start() + self.report.timing.total_s)
    }

    pub fn shares(&self, span: impl Into<Span>) -> CpuShares {
        let span = span.into();
        let (from, to) = if span.idle_edges {
            self.samples.around(span.from, span.to)
        } else {
            (span.from, span.to)
        };
        let cpu = |i| self.samples.cpu(i, from, to);
        CpuShares {
            // Cores are over the interval itself: outside it, idle.
            seconds: span.seconds(),
            server: if self.local { cpu(SERVER) } else { None },
            peer: if self.local { cpu(PEER) } else { None },
            loadgen: cpu(LOADGEN),
            radius: if self.local { cpu(RADIUS) } else { None },
            machine: self.samples.machine_busy(from, to),
        }
    }

    /// sstpd's resident memory near `at`.
    pub fn server_rss_near(&self, at: f64) -> Option<u64> {
        self.local
            .then(|| self.samples.rss_near(SERVER, at))
            .flatten()
    }

    /// sstpd's last reading.
    pub fn server_last(&self) -> Option<ProcessSample> {
        self.local.then(|| self.samples.last(SERVER)).flatten()
    }

    /// sstpd's peak resident memory in the run.
    pub fn server_rss_peak(&self) -> Option<u64> {
        self.local.then(|| self.samples.rss_peak(SERVER)).flatten()
    }
}

/// sstpd's end of the veth pair to the tunnel clients' namespace.
pub const SERVER_VETH: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
/// The tunnel clients' end.
pub const CLIENT_VETH: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);

/// The server under test, its peer, and where the load runs' files go.
#[derive(Debug)]
pub struct Testbed {
    // Dropped first: the peer and FreeRADIUS must be gone before the
    // namespace (sstpd's).
    peer: Option<PeerProcess>,
    radius: Option<FreeRadius>,
    /// The namespace of the tunnel clients (`tunnels`), when there is one.
    client: Option<NetNs>,
    server: Option<SstpdProcess>,
    pub connection: Connection,
    pub topology: Topology,
    loadgen: PathBuf,
    dir: tempfile::TempDir,
    runs: u32,
}

impl Testbed {
    /// A fresh sstpd (`options`) in its own namespace with the peer next to
    /// it.
    pub fn local(
        binaries: &Binaries,
        options: &SstpdOptions,
        topology: Topology,
    ) -> Result<Testbed, ScenarioError> {
        let user = options
            .users
            .first()
            .cloned()
            .ok_or_else(|| ScenarioError::Setup("sstpd has no user".into()))?;
        let server = SstpdProcess::start(options)?;
        Testbed::around(binaries, server, None, user, topology)
    }

    /// A fresh sstpd (`options`, which point its `[radius]` at
    /// 127.0.0.1:1812/1813) with FreeRADIUS (`radius`, ports 0: 1812 and
    /// 1813) started first in its namespace, and the peer. The load
    /// generator connects as `radius`'s first user until told otherwise.
    pub fn local_with_radius(
        binaries: &Binaries,
        options: &SstpdOptions,
        radius: &FreeRadiusConfig,
        topology: Topology,
    ) -> Result<Testbed, ScenarioError> {
        let user = radius
            .users
            .first()
            .map(|u| (u.name.clone(), u.password.clone()))
            .ok_or_else(|| ScenarioError::Setup("FreeRADIUS has no user".into()))?;
        if !options.binary.exists() {
            return Err(ScenarioError::Binary(options.binary.clone()));
        }
        let ns = new_namespace()?;
        let freeradius = FreeRadius::start_in(&ns, radius)
            .map_err(|e| ScenarioError::Setup(format!("FreeRADIUS: {e}")))?;
        // An sstpd that does not start takes its namespace's name with it;
        // FreeRADIUS, still inside, is killed here, which frees the
        // namespace itself.
        let server = match SstpdProcess::start_in(ns, options) {
            Ok(server) => server,
            Err(e) => {
                drop(freeradius);
                return Err(e);
            }
        };
        Testbed::around(binaries, server, Some(freeradius), user, topology)
    }

    /// A fresh sstpd (`options`, its listen address replaced by
    /// [`SERVER_VETH`]) in its own namespace with the peer next to it, and
    /// a second namespace joined to it by a veth pair, where
    /// [`tunnels`](Self::tunnels) runs the load generator's TUN devices:
    /// in sstpd's own namespace the tunnel addresses and the gateway would
    /// all be local, and the kernel would never use the tunnels.
    pub fn local_with_tunnel_clients(
        binaries: &Binaries,
        options: &SstpdOptions,
        topology: Topology,
    ) -> Result<Testbed, ScenarioError> {
        if !options.binary.exists() {
            return Err(ScenarioError::Binary(options.binary.clone()));
        }
        let user = options
            .users
            .first()
            .cloned()
            .ok_or_else(|| ScenarioError::Setup("sstpd has no user".into()))?;
        let server_ns = new_namespace()?;
        let client_ns = new_namespace()?;
        create_veth_pair(
            VethEnd {
                ns: &server_ns,
                name: "bench-s",
                addresses: &[(IpAddr::V4(SERVER_VETH), 24)],
            },
            VethEnd {
                ns: &client_ns,
                name: "bench-c",
                addresses: &[(IpAddr::V4(CLIENT_VETH), 24)],
            },
        )
        .map_err(|e| ScenarioError::Setup(format!("veth pair: {e}")))?;
        let mut options = options.clone();
        options.listen = SocketAddr::from((SERVER_VETH, options.listen.port()));
        let server = SstpdProcess::start_in(server_ns, &options)?;
        let mut bed = Testbed::around(binaries, server, None, user, topology)?;
        bed.client = Some(client_ns);
        Ok(bed)
    }

    /// The testbed around a started sstpd: the peer beside it.
    fn around(
        binaries: &Binaries,
        server: SstpdProcess,
        radius: Option<FreeRadius>,
        (user, password): (String, String),
        topology: Topology,
    ) -> Result<Testbed, ScenarioError> {
        let dir = temp_dir()?;
        let peer = PeerProcess::start(
            &binaries.loadgen,
            server.namespace(),
            // `[::]`: the IPv4 and the IPv6 scenarios' traffic.
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, PEER_PORT)),
            topology.peer_threads,
            &dir.path().join("peer.log"),
        )?;
        Ok(Testbed {
            peer: Some(peer),
            radius,
            client: None,
            connection: Connection {
                target: server.listen_addr(),
                user,
                password,
                ca: None,
                sni: None,
                peer: None,
            },
            server: Some(server),
            topology,
            loadgen: binaries.loadgen.clone(),
            dir,
            runs: 0,
        })
    }

    /// Another SSTP server, reached from this host's namespace. The load
    /// generator is not pinned (the cores are all ours).
    pub fn remote(
        binaries: &Binaries,
        connection: Connection,
        topology: Topology,
    ) -> Result<Testbed, ScenarioError> {
        Ok(Testbed {
            peer: None,
            radius: None,
            client: None,
            server: None,
            connection,
            topology,
            loadgen: binaries.loadgen.clone(),
            dir: temp_dir()?,
            runs: 0,
        })
    }

    pub fn is_local(&self) -> bool {
        self.server.is_some()
    }

    pub fn server(&self) -> Option<&SstpdProcess> {
        self.server.as_ref()
    }

    /// FreeRADIUS, when the testbed has one.
    pub fn radius(&self) -> Option<&FreeRadius> {
        self.radius.as_ref()
    }

    /// The certificate the references use: sstpd's own, or (remote) a
    /// generated one of the kind sstpd generates.
    pub fn certificate(&self) -> CertSource {
        match &self.server {
            Some(server) => {
                let (certificate, private_key) = server.certificate_files();
                CertSource::Files {
                    certificate,
                    private_key,
                }
            }
            None => CertSource::default(),
        }
    }

    /// Starts the load generator with `spec` and returns it running,
    /// unsampled: for scenarios that act on a run while it is under way.
    pub fn start_load(&mut self, spec: &LoadSpec) -> Result<LoadChild, ScenarioError> {
        self.runs += 1;
        let json = self.dir.path().join(format!("run-{}.json", self.runs));
        let log = self.dir.path().join(format!("run-{}.log", self.runs));
        let placement = match &self.server {
            Some(_) => self.topology.placement(),
            None => Placement {
                workers: self.topology.cores,
                cpus: None,
            },
        };
        let args = load_args(spec, &self.connection, &placement, &json);
        let ns = self.server.as_ref().map(SstpdProcess::namespace);
        LoadChild::spawn(&self.loadgen, ns, &args, &json, &log, spec.deadline())
    }

    /// Runs the load generator once and samples everything meanwhile.
    pub fn load(
        &mut self,
        spec: &LoadSpec,
        interrupt: &AtomicBool,
    ) -> Result<LoadOutcome, ScenarioError> {
        let child = self.start_load(spec)?;
        // Absent processes get a pid that cannot exist (above pid_max),
        // so their samples stay empty and the indices stay fixed.
        let absent = u32::MAX;
        let sampler = Sampler::start(vec![
            self.server.as_ref().map_or(absent, SstpdProcess::pid),
            self.peer.as_ref().map_or(absent, PeerProcess::pid),
            child.pid(),
            self.radius
                .as_ref()
                .and_then(FreeRadius::pid)
                .unwrap_or(absent),
        ]);
        let report = child.wait(interrupt);
        let samples = sampler.finish();
        Ok(LoadOutcome {
            report: report?,
            samples,
            local: self.is_local(),
        })
    }

    /// Runs the load generator's `tun` mode (`spec`) in the clients'
    /// namespace, waits until it has announced every session's device,
    /// calls `during` with the devices and that namespace, then ends the
    /// run (SIGINT: the sessions close) and reads its report. Sampled like
    /// [`load`](Self::load), with `peer_pid` (e.g. an iperf3 server) in
    /// the peer's place.
    pub fn tunnels<T>(
        &mut self,
        spec: &LoadSpec,
        peer_pid: Option<u32>,
        interrupt: &AtomicBool,
        during: impl FnOnce(&[Tunnel], &NetNs) -> Result<T, ScenarioError>,
    ) -> Result<(LoadOutcome, T), ScenarioError> {
        let (Some(server), Some(client_ns)) = (&self.server, &self.client) else {
            return Err(ScenarioError::Setup(
                "TCP through the tunnels needs a local sstpd with a clients' namespace".into(),
            ));
        };
        self.runs += 1;
        let json = self.dir.path().join(format!("run-{}.json", self.runs));
        let log = self.dir.path().join(format!("run-{}.log", self.runs));
        let args = load_args(spec, &self.connection, &self.topology.placement(), &json);
        let mut child = LoadChild::spawn(
            &self.loadgen,
            Some(client_ns),
            &args,
            &json,
            &log,
            spec.deadline(),
        )?;
        let absent = u32::MAX;
        let sampler = Sampler::start(vec![
            server.pid(),
            peer_pid.unwrap_or(absent),
            child.pid(),
            absent,
        ]);
        let tunnels = child.wait_for_tunnels(spec.sessions, SETUP_TIMEOUT, interrupt)?;
        let during = during(&tunnels, client_ns);
        child.signal(libc::SIGINT);
        let report = child.wait(interrupt);
        let samples = sampler.finish();
        let outcome = LoadOutcome {
            report: report?,
            samples,
            local: true,
        };
        Ok((outcome, during?))
    }

    /// Stops the peer and sstpd (SIGTERM; an sstpd that does not stop in
    /// time is an error), then FreeRADIUS (after sstpd: its last
    /// accounting goes there), and removes the namespace.
    pub fn stop(mut self) -> Result<(), ScenarioError> {
        drop(self.peer.take());
        drop(self.client.take());
        let stopped = match self.server.as_mut() {
            Some(server) => server.terminate().map(drop),
            None => Ok(()),
        };
        drop(self.radius.take());
        drop(self.server.take());
        stopped
    }
}

fn temp_dir() -> Result<tempfile::TempDir, ScenarioError> {
    tempfile::Builder::new()
        .prefix("sstp-bench-runs-")
        .tempdir()
        .map_err(ScenarioError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_are_shared_between_server_and_load_generator() {
        let two = Topology::for_cores(2);
        assert_eq!((two.server_workers, two.loadgen_workers), (1, 1));
        assert_eq!(two.placement().cpus, Some(vec![1]));
        let eight = Topology::for_cores(8);
        assert_eq!((eight.server_workers, eight.loadgen_workers), (4, 4));
        assert_eq!(eight.placement().cpus, Some(vec![4, 5, 6, 7]));
        let one = Topology::for_cores(1);
        assert_eq!((one.server_workers, one.loadgen_workers), (1, 1));
        assert_eq!(one.placement().cpus, Some(vec![0]));
    }

    fn used(seconds: f64) -> Option<CpuUse> {
        Some(CpuUse {
            user_seconds: seconds,
            system_seconds: 0.0,
        })
    }

    #[test]
    fn the_limit_is_the_process_whose_cores_were_busy() {
        let topology = Topology::for_cores(2);
        let shares = |server, loadgen, peer, machine| CpuShares {
            seconds: 10.0,
            server: used(server),
            peer: used(peer),
            loadgen: used(loadgen),
            radius: None,
            machine: Some(machine),
        };
        let limit = |s: CpuShares| s.limit(&topology, true);
        assert_eq!(limit(shares(9.7, 6.0, 2.0, 19.0)), Limit::Server);
        assert_eq!(limit(shares(5.0, 9.0, 2.0, 18.0)), Limit::Loadgen);
        assert_eq!(limit(shares(5.0, 5.0, 9.0, 19.5)), Limit::Peer);
        assert_eq!(limit(shares(7.0, 7.0, 2.0, 19.0)), Limit::Machine);
        assert_eq!(limit(shares(1.0, 1.0, 0.5, 4.0)), Limit::NotCpu);
        let remote = shares(1.0, 1.0, 0.5, 4.0).limit(&topology, false);
        assert_eq!(remote, Limit::ServerOrNetwork);
        let s = shares(7.0, 7.0, 2.0, 19.0);
        assert_eq!(s.cores(s.server), Some(0.7));
        assert!((s.others_cores().unwrap() - 0.3).abs() < 1e-9);
        assert_eq!(Limit::Server.as_str(), "sstpd");
        // FreeRADIUS beside them: its core's worth makes it the limit,
        // and its CPU is not counted as other people's.
        let with_radius = |radius| CpuShares {
            radius: used(radius),
            ..shares(5.0, 5.0, 1.0, 19.5)
        };
        assert_eq!(limit(with_radius(9.0)), Limit::Radius);
        assert_eq!(limit(with_radius(3.0)), Limit::Machine);
        let s = with_radius(3.0);
        assert!((s.others_cores().unwrap() - 0.55).abs() < 1e-9);
        assert_eq!(Limit::Radius.as_str(), "freeradius");
    }
}
