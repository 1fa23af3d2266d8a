//! `sstp-bench cluster`: several sstpd nodes behind HAProxy with a shared
//! FreeRADIUS, on one machine ([`topology`]), and what scale-out must
//! prove, measured in one run:
//!
//! 1. **Setup rate, one node and N nodes**, both through HAProxy (its
//!    one-node frontend, then the balanced one), the same load
//!    (`--sessions` set up, `--concurrency` in flight), and the ratio. On
//!    a machine with fewer cores than roles the ratio says what the
//!    machine allows, not what the nodes could: every figure carries the
//!    core count.
//! 2. **Spread and addresses**, from the N-node run while its sessions
//!    are held: the sessions each node holds (its control socket), every
//!    tunnel address each node holds, and every lease of the RADIUS pool
//!    that has not expired with its NAS ([`pool`]). No address may be held
//!    twice (by two nodes, or twice on one), and each node's addresses
//!    must be exactly the leases of its NAS.
//! 3. **Latency**: ICMP echo through sessions set up through HAProxy,
//!    beside the same through a node's plain listener (direct).
//! 4. **Failover**: sessions held on every node, one node killed with
//!    SIGKILL. Its sessions drop; the others' must not. It is started
//!    again: its Accounting-On must close its open `radacct` rows and free
//!    its leases; a further load must reach it again (`leastconn` sends
//!    new sessions to the emptiest node).
//! 5. **Drain**: sessions held, `sstpctl drain --over D` on one node: its
//!    `/health` turns 503 and HAProxy takes it out of rotation, its
//!    sessions are disconnected one by one over D (a Call Disconnect and an
//!    accounting Stop each, their leases freed) and reconnect to the
//!    others without failed attempts; the others lose nothing.
//!
//! Results go to a results file like `sstp-bench run`'s (scenarios
//! `cluster_*`, references `cluster_setup_one_node` and
//! `cluster_latency_direct`), which `sstp-bench report` renders.

pub mod pool;
pub mod topology;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sstp_loadgen::{Mode, Report};

use self::topology::{Cluster, ClusterSpec, FRONTEND_ALL, FRONTEND_ONE};
use super::catalog::{fig, per_second, pool_for};
use super::loadgen::{load_args, Connection, LoadChild, LoadSpec, Placement};
use super::radius::{users, PASSWORD_PATTERN, USER_PATTERN};
use super::{Binaries, Sampler, ScenarioError};
use crate::results::{Better, Figure, Params, ReferenceResult, Results, ScenarioResult};
use crate::units::significant;

/// How a cluster run is set up.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub binaries: Binaries,
    pub nodes: usize,
    /// Sessions of each load run (and users in FreeRADIUS).
    pub sessions: u64,
    /// Setups in flight.
    pub concurrency: usize,
    /// How long the N-node run holds its sessions once they are all up.
    pub hold: Duration,
    /// sstpd workers per node.
    pub workers: usize,
    /// Sessions of the echo runs, and their rate each.
    pub echo_sessions: u64,
    pub echo_pps: f64,
    pub echo_duration: Duration,
    /// Also run the failover and drain phases.
    pub failover: bool,
    /// `sstpctl drain --over` in the drain phase.
    pub drain_over: Duration,
}

impl ClusterOptions {
    pub fn new(binaries: Binaries) -> ClusterOptions {
        ClusterOptions {
            binaries,
            nodes: 2,
            sessions: 200,
            concurrency: 32,
            hold: Duration::from_secs(2),
            workers: 1,
            echo_sessions: 10,
            echo_pps: 50.0,
            echo_duration: Duration::from_secs(2),
            failover: true,
            drain_over: Duration::from_secs(2),
        }
    }
}

/// The tunnel gateway on every node.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// Bound on waiting for sessions to come up, for accounting to land.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a restarted node's Accounting-On closing its rows and
/// freeing its leases.
const ACCOUNTING_ON_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the held runs last at most (they are ended early with
/// SIGINT once a phase is done).
const HELD_RUN: Duration = Duration::from_secs(300);

/// What a run found: the results document, and the facts the test and
/// the summary check.
#[derive(Debug, Clone)]
pub struct ClusterReport {
    pub results: Results,
    pub namespaces: Vec<String>,
    /// Every process the cluster ran (HAProxy, FreeRADIUS, each sstpd
    /// before and after its restart), all gone when the report is made.
    pub pids: Vec<u32>,
    pub facts: Facts,
}

/// The checked facts of a run.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Sessions each node held in the N-node run, by node name.
    pub sessions_per_node: BTreeMap<String, u64>,
    pub sessions_established: u64,
    /// Addresses held by more than one session over all nodes.
    pub duplicate_addresses: u64,
    /// Addresses a node holds without a lease of its NAS, plus leases a
    /// NAS has without the node holding the address.
    pub lease_mismatches: u64,
    pub failover: Option<FailoverFacts>,
    pub drain: Option<DrainFacts>,
}

/// What `--reconnect` reported of a phase's held run.
#[derive(Debug, Clone, Default)]
pub struct Reconnects {
    /// Sessions that ended unexpectedly, and those set up again.
    pub lost: u64,
    pub reconnected: u64,
    pub attempts: u64,
    pub failed_attempts: u64,
    /// Still down when the run ended.
    pub unrecovered: u64,
    /// From the first loss until every lost session was back.
    pub all_back_after_s: Option<f64>,
    /// From each loss until its session was up again.
    pub recovery_p50_s: f64,
    pub recovery_p99_s: f64,
}

impl Reconnects {
    fn of(report: &Report) -> Reconnects {
        let Some(r) = &report.reconnect else {
            return Reconnects::default();
        };
        Reconnects {
            lost: r.lost,
            reconnected: r.reconnected,
            attempts: r.attempts,
            failed_attempts: r.failed_attempts,
            unrecovered: r.unrecovered,
            all_back_after_s: r.all_back_after_s,
            recovery_p50_s: r.recovery.p50_us as f64 / 1e6,
            recovery_p99_s: r.recovery.p99_us as f64 / 1e6,
        }
    }

    fn figures(&self) -> Vec<Figure> {
        let mut figures = vec![
            count("reconnect_lost", self.lost),
            count("reconnected", self.reconnected),
            count("reconnect_attempts", self.attempts),
            count("reconnect_failed_attempts", self.failed_attempts),
            count("reconnect_unrecovered", self.unrecovered),
            fig("recovery_p50", "s", self.recovery_p50_s, Better::Lower),
            fig("recovery_p99", "s", self.recovery_p99_s, Better::Lower),
        ];
        if let Some(all) = self.all_back_after_s {
            figures.push(fig("all_back_after", "s", all, Better::Lower));
        }
        figures
    }

    fn describe(&self) -> String {
        format!(
            "{} lost, {} reconnected through HAProxy ({} attempts, {} failed), {} not back; \
             recovery p50 {:.2} s, p99 {:.2} s{}",
            self.lost,
            self.reconnected,
            self.attempts,
            self.failed_attempts,
            self.unrecovered,
            self.recovery_p50_s,
            self.recovery_p99_s,
            self.all_back_after_s
                .map(|s| format!(", all back {s:.2} s after the first loss"))
                .unwrap_or_default()
        )
    }
}

/// The sessions of the nodes that stayed in service while one went out
/// (killed or drained).
#[derive(Debug, Clone, Copy, Default)]
pub struct Survivors {
    /// Sessions they held when the node went out.
    pub before: u64,
    /// Of those, the ones gone once the node's clients were back.
    pub lost: u64,
    /// Sessions they held once the node's clients were back.
    pub after: u64,
}

impl Survivors {
    fn figures(&self) -> [Figure; 3] {
        [
            count("survivor_sessions_before", self.before),
            count("survivor_sessions_lost", self.lost),
            count("survivor_sessions_after", self.after),
        ]
    }
}

/// What the failover phase found.
#[derive(Debug, Clone, Default)]
pub struct FailoverFacts {
    pub killed_node: String,
    /// Sessions the killed node held when it was killed.
    pub on_killed_node: u64,
    pub survivors: Survivors,
    pub reconnects: Reconnects,
    /// `radacct` rows of the killed node open after the kill, and after
    /// the restart's Accounting-On; rows it closed.
    pub open_rows_after_kill: u64,
    pub open_rows_after_restart: u64,
    pub rows_closed_by_accounting_on: u64,
    /// Leases of the killed node after the kill and after the restart.
    pub leases_after_kill: u64,
    pub leases_after_restart: u64,
    /// From the restart to its Accounting-On having closed everything.
    pub accounting_on_s: f64,
    /// From the kill until HAProxy's checks marked the node down, and
    /// from the restart until they marked it up.
    pub marked_down_s: f64,
    pub marked_up_s: f64,
    /// Sessions the restarted node took from a further load.
    pub restarted_node_sessions: u64,
}

/// What the drain phase found.
#[derive(Debug, Clone, Default)]
pub struct DrainFacts {
    pub drained_node: String,
    pub on_drained_node: u64,
    pub survivors: Survivors,
    pub reconnects: Reconnects,
    /// From the drain's start until HAProxy's checks marked the node
    /// down, and until its last session had ended.
    pub marked_down_s: f64,
    pub stop_s: f64,
    /// Leases the drained node still held afterwards, and its open rows.
    pub leases_after: u64,
    pub open_rows_after: u64,
}

/// The load generator's runs against the cluster.
struct Loads {
    loadgen: PathBuf,
    runs: u32,
}

impl Loads {
    fn start(
        &mut self,
        cluster: &Cluster,
        spec: &LoadSpec,
        target: SocketAddr,
    ) -> Result<LoadChild, ScenarioError> {
        self.runs += 1;
        let dir = cluster.dir();
        let json = dir.join(format!("run-{}.json", self.runs));
        let log = dir.join(format!("run-{}.log", self.runs));
        let connection = Connection {
            target,
            user: USER_PATTERN.into(),
            password: PASSWORD_PATTERN.into(),
            ca: None,
            sni: None,
            peer: None,
        };
        let placement = Placement {
            workers: 1,
            cpus: None,
        };
        let args = load_args(spec, &connection, &placement, &json);
        LoadChild::spawn(
            &self.loadgen,
            Some(cluster.client_ns()),
            &args,
            &json,
            &log,
            spec.deadline(),
        )
    }

    fn run(
        &mut self,
        cluster: &Cluster,
        spec: &LoadSpec,
        target: SocketAddr,
        interrupt: &AtomicBool,
    ) -> Result<Report, ScenarioError> {
        self.start(cluster, spec, target)?.wait(interrupt)
    }

    /// [`run`](Self::run) with every process sampled: the cores each
    /// used during the ramp (every setup), by name, and the machine's.
    fn run_sampled(
        &mut self,
        cluster: &Cluster,
        spec: &LoadSpec,
        target: SocketAddr,
        interrupt: &AtomicBool,
    ) -> Result<(Report, Vec<(String, f64)>), ScenarioError> {
        let run = self.start(cluster, spec, target)?;
        let mut processes = cluster.processes();
        processes.push(("sstp-loadgen".into(), run.pid()));
        let sampler = Sampler::start(processes.iter().map(|(_, pid)| *pid).collect());
        let report = run.wait(interrupt);
        let samples = sampler.finish();
        let report = report?;
        let from = report.timing.started_unix_s;
        let seconds = report.timing.ramp_s;
        let to = from + seconds;
        let mut cores = Vec::new();
        if seconds > 0.0 {
            for (i, (name, _)) in processes.iter().enumerate() {
                if let Some(cpu) = samples.cpu(i, from, to) {
                    cores.push((name.clone(), cpu.seconds() / seconds));
                }
            }
            if let Some(busy) = samples.machine_busy(from, to) {
                cores.push(("machine".into(), busy / seconds));
            }
        }
        Ok((report, cores))
    }
}

fn setup_spec(options: &ClusterOptions, hold: Duration) -> LoadSpec {
    let mut spec = LoadSpec::new(Mode::Idle, options.sessions, hold);
    spec.setup_concurrency = Some(options.concurrency);
    spec.drain = Duration::from_millis(200);
    spec
}

/// Established sessions per node now.
fn held(cluster: &Cluster) -> Result<Vec<u64>, ScenarioError> {
    cluster
        .nodes
        .iter()
        .map(|n| {
            Ok(n.sstpd
                .sessions()?
                .iter()
                .filter(|s| s.established && s.ipv4.is_some())
                .count() as u64)
        })
        .collect()
}

/// Waits until the nodes hold `sessions` in all (or the run exits, or
/// the bound passes); the counts per node then.
fn wait_held(
    cluster: &Cluster,
    sessions: u64,
    run: &mut LoadChild,
    interrupt: &AtomicBool,
) -> Result<Vec<u64>, ScenarioError> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let counts = held(cluster)?;
        if counts.iter().sum::<u64>() >= sessions
            || Instant::now() >= deadline
            || run.try_wait()?.is_some()
        {
            return Ok(counts);
        }
        if interrupt.load(Ordering::Acquire) {
            return Err(ScenarioError::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `condition` every 50 ms for at most `timeout`: whether it came
/// true, and when.
fn wait_for(
    timeout: Duration,
    mut condition: impl FnMut() -> Result<bool, ScenarioError>,
) -> Result<Option<Duration>, ScenarioError> {
    let start = Instant::now();
    loop {
        if condition()? {
            return Ok(Some(start.elapsed()));
        }
        if start.elapsed() >= timeout {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The address check: every tunnel address the nodes hold against every
/// lease RADIUS has not let expire.
#[derive(Debug, Clone, Default)]
struct AddressCheck {
    held: u64,
    leases: u64,
    duplicates: u64,
    mismatches: u64,
    /// A few of the mismatches, said in words.
    examples: Vec<String>,
}

fn check_addresses(cluster: &Cluster) -> Result<AddressCheck, ScenarioError> {
    let mut by_address: BTreeMap<Ipv4Addr, Vec<Ipv4Addr>> = BTreeMap::new();
    for node in &cluster.nodes {
        for session in node.sstpd.sessions()? {
            if let Some(address) = session.ipv4 {
                by_address.entry(address).or_default().push(node.addr);
            }
        }
    }
    let leases = cluster.db.leases()?;
    let held: u64 = by_address.values().map(|v| v.len() as u64).sum();
    let duplicates = by_address
        .values()
        .map(|nodes| nodes.len().saturating_sub(1) as u64)
        .sum();
    let leased: BTreeSet<(Ipv4Addr, Ipv4Addr)> =
        leases.iter().map(|l| (l.address, l.nas)).collect();
    let holding: BTreeSet<(Ipv4Addr, Ipv4Addr)> = by_address
        .iter()
        .flat_map(|(address, nodes)| nodes.iter().map(move |nas| (*address, *nas)))
        .collect();
    let mismatched: Vec<String> = leased
        .difference(&holding)
        .map(|(a, nas)| format!("lease {a} of {nas} without a session"))
        .chain(
            holding
                .difference(&leased)
                .map(|(a, nas)| format!("{a} on {nas} without a lease")),
        )
        .collect();
    Ok(AddressCheck {
        held,
        leases: leases.len() as u64,
        duplicates,
        mismatches: mismatched.len() as u64,
        examples: mismatched.into_iter().take(5).collect(),
    })
}

fn describe_cores(cores: &[(String, f64)]) -> String {
    cores
        .iter()
        .map(|(name, c)| format!("{name} {c:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cores_figures(cores: &[(String, f64)]) -> Vec<Figure> {
    cores
        .iter()
        .map(|(name, c)| fig(&format!("cores_{name}"), "cores", *c, Better::Neither))
        .collect()
}

fn count(metric: &str, value: u64) -> Figure {
    fig(metric, "count", value as f64, Better::Neither)
}

fn params(options: &ClusterOptions) -> Params {
    let mut p = Params::new();
    p.insert("nodes".into(), options.nodes.to_string());
    p.insert("sessions".into(), options.sessions.to_string());
    p.insert("concurrency".into(), options.concurrency.to_string());
    p.insert("workers_per_node".into(), options.workers.to_string());
    p.insert(
        "cores".into(),
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .to_string(),
    );
    p.insert(
        "balancer".into(),
        "HAProxy, TCP mode, send-proxy-v2, leastconn".into(),
    );
    p.insert(
        "aaa".into(),
        "FreeRADIUS 3.2 (files, MS-CHAPv2), SQLite radacct and sqlippool".into(),
    );
    p
}

/// Runs the cluster and every phase; `print` gets the progress lines.
pub fn run(
    options: &ClusterOptions,
    interrupt: &AtomicBool,
    print: &mut dyn FnMut(&str),
) -> Result<ClusterReport, ScenarioError> {
    let started = Instant::now();
    let mut step = |text: &str| {
        print(&format!(
            "[{:>5.1}s] {text}",
            started.elapsed().as_secs_f64()
        ))
    };
    let (pool, _) = pool_for(options.sessions * 2);
    let spec = ClusterSpec {
        nodes: options.nodes,
        users: users(options.sessions),
        pool: pool.into(),
        gateway: GATEWAY,
        workers: options.workers,
    };
    let mut cluster = Cluster::start(&options.binaries, &spec)?;
    let namespaces = cluster.namespaces();
    step(&format!(
        "cluster up: {} node(s) behind HAProxy ({}), FreeRADIUS with {} users and the shared \
         pool {pool} in SQLite; namespaces {}",
        options.nodes,
        FRONTEND_ALL,
        options.sessions,
        namespaces.join(", ")
    ));
    let mut pids = cluster.pids();
    let outcome = phases(&mut cluster, options, interrupt, &mut step);
    pids.extend(cluster.pids());
    pids.sort_unstable();
    pids.dedup();
    if outcome.is_err() {
        let log = cluster.radius_log();
        let tail: Vec<&str> = log
            .lines()
            .rev()
            .filter(|l| !l.contains("Login OK"))
            .take(15)
            .collect();
        step(&format!(
            "FreeRADIUS's log ends with:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    drop(cluster);
    let (results, facts) = outcome?;
    Ok(ClusterReport {
        results,
        namespaces,
        pids,
        facts,
    })
}

fn phases(
    cluster: &mut Cluster,
    options: &ClusterOptions,
    interrupt: &AtomicBool,
    step: &mut dyn FnMut(&str),
) -> Result<(Results, Facts), ScenarioError> {
    let mut loads = Loads {
        loadgen: options.binaries.loadgen.clone(),
        runs: 0,
    };
    let mut results = Results::new_run();
    let mut facts = Facts::default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    results.notes.push(format!(
        "sstp-bench cluster: {} node(s), each sstpd {} worker(s) unpinned, HAProxy, FreeRADIUS \
         and sstp-loadgen on the same {cores}-core machine, each in a network namespace on one \
         bridge",
        options.nodes, options.workers
    ));

    // 1. One node through HAProxy.
    step(&format!(
        "setup through HAProxy to node-1 alone: {} sessions, {} in flight ...",
        options.sessions, options.concurrency
    ));
    let (one, one_cores) = loads.run_sampled(
        cluster,
        &setup_spec(options, Duration::from_millis(300)),
        FRONTEND_ONE,
        interrupt,
    )?;
    let one_rate = per_second(one.sessions.established, one.timing.ramp_s);
    step(&format!(
        "  {} up, {} failed, {} sessions/s",
        one.sessions.established,
        one.sessions.failed,
        significant(one_rate)
    ));
    let one_node = ReferenceResult {
        name: "cluster_setup_one_node".into(),
        params: params(options),
        figures: vec![
            fig("setup_rate", "sessions/s", one_rate, Better::Higher),
            fig(
                "setup_latency_p50",
                "us",
                one.setup.total.p50_us as f64,
                Better::Lower,
            ),
        ],
        latency: None,
    };
    step(&format!(
        "  cores used while setting up: {}",
        describe_cores(&one_cores)
    ));
    let mut one_node = one_node;
    one_node.figures.extend(cores_figures(&one_cores));
    settle(cluster, step)?;

    // 2. N nodes through HAProxy, held: spread and addresses.
    step(&format!(
        "setup through HAProxy to all {} nodes, held {:.1} s: spread and addresses ...",
        options.nodes,
        options.hold.as_secs_f64()
    ));
    let mut run = loads.start(cluster, &setup_spec(options, options.hold), FRONTEND_ALL)?;
    let counts = wait_held(cluster, options.sessions, &mut run, interrupt)?;
    let addresses = check_addresses(cluster)?;
    let all = run.wait(interrupt)?;
    let all_cores = {
        // The spread run is watched, not sampled: sample a second,
        // identical one for where the cores went.
        settle(cluster, step)?;
        let spec = setup_spec(options, Duration::from_millis(300));
        loads
            .run_sampled(cluster, &spec, FRONTEND_ALL, interrupt)?
            .1
    };
    let all_rate = per_second(all.sessions.established, all.timing.ramp_s);
    for (node, n) in cluster.nodes.iter().zip(&counts) {
        facts.sessions_per_node.insert(node.name.clone(), *n);
    }
    facts.sessions_established = all.sessions.established;
    facts.duplicate_addresses = addresses.duplicates;
    facts.lease_mismatches = addresses.mismatches;
    step(&format!(
        "  {} up, {} failed, {} sessions/s ({} of one node's); per node: {}",
        all.sessions.established,
        all.sessions.failed,
        significant(all_rate),
        significant(if one_rate > 0.0 {
            all_rate / one_rate
        } else {
            0.0
        }),
        facts
            .sessions_per_node
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    step(&format!(
        "  addresses: {} held by the nodes, {} leases in the RADIUS pool, {} held twice, {} \
         without their lease (or leases without their session)",
        addresses.held, addresses.leases, addresses.duplicates, addresses.mismatches
    ));
    if !addresses.examples.is_empty() {
        step(&format!("  e.g. {}", addresses.examples.join("; ")));
    }
    step(&format!(
        "  cores used while setting up (a second, identical run): {}",
        describe_cores(&all_cores)
    ));
    let mut setup_figures = vec![
        fig("setup_rate", "sessions/s", all_rate, Better::Higher).beside(&one_node, "setup_rate"),
        fig(
            "setup_latency_p50",
            "us",
            all.setup.total.p50_us as f64,
            Better::Lower,
        )
        .beside(&one_node, "setup_latency_p50"),
        count("setup_failed", all.sessions.failed),
    ];
    setup_figures.extend(cores_figures(&all_cores));
    let total: u64 = counts.iter().sum();
    for (node, n) in cluster.nodes.iter().zip(&counts) {
        setup_figures.push(count(&format!("sessions_{}", node.name), *n));
    }
    if total > 0 {
        let smallest = counts.iter().min().copied().unwrap_or(0);
        setup_figures.push(fig(
            "smallest_node_share",
            "ratio",
            smallest as f64 / total as f64,
            Better::Higher,
        ));
    }
    results.scenarios.push(ScenarioResult {
        name: "cluster_setup".into(),
        params: params(options),
        figures: setup_figures,
        server: None,
        latency: None,
    });
    results.scenarios.push(ScenarioResult {
        name: "cluster_addresses".into(),
        params: params(options),
        figures: vec![
            count("addresses_held_by_nodes", addresses.held),
            count("leases_in_radius_pool", addresses.leases),
            count("duplicate_addresses", addresses.duplicates),
            count("lease_mismatches", addresses.mismatches),
        ],
        server: None,
        latency: None,
    });
    results.references.push(one_node);

    // 3. Latency, through HAProxy and direct.
    let mut echo = LoadSpec::new(
        Mode::Echo { to: None },
        options.echo_sessions,
        options.echo_duration,
    );
    echo.pps = Some(options.echo_pps);
    echo.payload = Some(56);
    echo.drain = Duration::from_millis(300);
    step(&format!(
        "ICMP echo through {} sessions at {} per second each, {:.1} s: direct to node-1, then \
         through HAProxy ...",
        options.echo_sessions,
        options.echo_pps,
        options.echo_duration.as_secs_f64()
    ));
    let direct = loads.run(cluster, &echo, cluster.nodes[0].plain(), interrupt)?;
    let balanced = loads.run(cluster, &echo, FRONTEND_ALL, interrupt)?;
    let rtt = |r: &Report| {
        vec![
            fig("rtt_p50", "us", r.rtt.p50_us as f64, Better::Lower),
            fig("rtt_p99", "us", r.rtt.p99_us as f64, Better::Lower),
        ]
    };
    let direct_ref = ReferenceResult {
        name: "cluster_latency_direct".into(),
        params: params(options),
        figures: rtt(&direct),
        latency: None,
    };
    step(&format!(
        "  round trip p50/p99: direct {}/{} us, through HAProxy {}/{} us",
        direct.rtt.p50_us, direct.rtt.p99_us, balanced.rtt.p50_us, balanced.rtt.p99_us
    ));
    results.scenarios.push(ScenarioResult {
        name: "cluster_latency".into(),
        params: params(options),
        figures: rtt(&balanced)
            .into_iter()
            .map(|f| {
                let metric = f.metric.clone();
                f.beside(&direct_ref, &metric)
            })
            .collect(),
        server: None,
        latency: None,
    });
    results.references.push(direct_ref);

    if options.failover && cluster.nodes.len() >= 2 {
        let failover = failover(cluster, &mut loads, options, interrupt, step)?;
        let mut figures = vec![count("sessions_on_killed_node", failover.on_killed_node)];
        figures.extend(failover.survivors.figures());
        figures.extend([
            fig(
                "balancer_marked_down_after",
                "s",
                failover.marked_down_s,
                Better::Lower,
            ),
            count("open_acct_rows_after_kill", failover.open_rows_after_kill),
            count("leases_after_kill", failover.leases_after_kill),
            count(
                "acct_rows_closed_by_accounting_on",
                failover.rows_closed_by_accounting_on,
            ),
            count(
                "open_acct_rows_after_restart",
                failover.open_rows_after_restart,
            ),
            count("leases_after_restart", failover.leases_after_restart),
            fig(
                "accounting_on_closed_after",
                "s",
                failover.accounting_on_s,
                Better::Lower,
            ),
            fig(
                "balancer_marked_up_after_restart",
                "s",
                failover.marked_up_s,
                Better::Lower,
            ),
            count("restarted_node_sessions", failover.restarted_node_sessions),
        ]);
        figures.extend(failover.reconnects.figures());
        results.scenarios.push(ScenarioResult {
            name: "cluster_failover".into(),
            params: params(options),
            figures,
            server: None,
            latency: None,
        });
        facts.failover = Some(failover);
        let drain = drain(cluster, &mut loads, options, interrupt, step)?;
        let mut figures = vec![count("sessions_on_drained_node", drain.on_drained_node)];
        figures.extend(drain.survivors.figures());
        figures.extend([
            fig(
                "balancer_marked_down_after",
                "s",
                drain.marked_down_s,
                Better::Lower,
            ),
            fig("emptied_after", "s", drain.stop_s, Better::Neither),
            count("open_acct_rows_after", drain.open_rows_after),
            count("leases_after", drain.leases_after),
        ]);
        figures.extend(drain.reconnects.figures());
        results.scenarios.push(ScenarioResult {
            name: "cluster_drain".into(),
            params: params(options),
            figures,
            server: None,
            latency: None,
        });
        facts.drain = Some(drain);
    }
    Ok((results, facts))
}

/// Waits until every lease of the runs before has been freed by its
/// accounting Stop (sstpd sends it when the session has closed; under
/// load it may trail the load generator's exit), so that a run's address
/// check sees its own sessions only.
fn settle(cluster: &Cluster, step: &mut dyn FnMut(&str)) -> Result<(), ScenarioError> {
    let settled = wait_for(SETTLE_TIMEOUT, || Ok(cluster.db.leases()?.is_empty()))?;
    match settled {
        Some(after) if after > Duration::from_millis(500) => step(&format!(
            "  (the last accounting Stops freed their leases {:.1} s after the run)",
            after.as_secs_f64()
        )),
        Some(_) => {}
        None => step(&format!(
            "  {} leases still held {} s after the run",
            cluster.db.leases()?.len(),
            SETTLE_TIMEOUT.as_secs()
        )),
    }
    Ok(())
}

/// Leases of the NAS at `nas` now.
fn leases_of(cluster: &Cluster, nas: Ipv4Addr) -> Result<u64, ScenarioError> {
    Ok(cluster.db.leases()?.iter().filter(|l| l.nas == nas).count() as u64)
}

/// The held load for the failover and drain phases: the sessions, held
/// until ended, each set up again through HAProxy when it ends
/// unexpectedly (after 200 ms, backing off to 2 s).
fn held_spec(options: &ClusterOptions) -> LoadSpec {
    let mut spec = setup_spec(options, HELD_RUN);
    spec.drain = Duration::from_millis(200);
    spec.reconnect = Some((Duration::from_millis(200), Duration::from_secs(2)));
    spec
}

/// Starts the held load through HAProxy once the pool has settled, and
/// waits until its sessions are up and their Accounting-Starts recorded: the run,
/// and the established sessions by node (their Acct-Session-Ids).
fn hold_through_balancer(
    cluster: &Cluster,
    loads: &mut Loads,
    options: &ClusterOptions,
    interrupt: &AtomicBool,
    step: &mut dyn FnMut(&str),
) -> Result<(LoadChild, Vec<BTreeSet<String>>), ScenarioError> {
    settle(cluster, step)?;
    let mut run = loads.start(cluster, &held_spec(options), FRONTEND_ALL)?;
    wait_held(cluster, options.sessions, &mut run, interrupt)?;
    let ids = session_ids(cluster, None)?;
    started(cluster, &ids, step)?;
    Ok((run, ids))
}

/// Waits, bounded, until each node's open accounting rows number the
/// sessions it holds: a session is up before its Accounting-Start has
/// reached the database (sstpd sends it once IPCP opens, and under load
/// FreeRADIUS records it later), and a kill in between would leave no
/// row for that session, which is not what failover measures.
fn started(
    cluster: &Cluster,
    ids: &[BTreeSet<String>],
    step: &mut dyn FnMut(&str),
) -> Result<(), ScenarioError> {
    let caught_up = || -> Result<bool, ScenarioError> {
        for (node, held) in cluster.nodes.iter().zip(ids) {
            if cluster.db.accounting(node.addr)?.open < held.len() as u64 {
                return Ok(false);
            }
        }
        Ok(true)
    };
    match wait_for(SETTLE_TIMEOUT, caught_up)? {
        Some(after) if after > Duration::from_millis(500) => step(&format!(
            "  (the last Accounting-Starts were recorded {:.1} s after the sessions were up)",
            after.as_secs_f64()
        )),
        Some(_) => {}
        None => step(&format!(
            "  some Accounting-Starts still unrecorded {} s after the sessions were up",
            SETTLE_TIMEOUT.as_secs()
        )),
    }
    Ok(())
}

/// The established sessions' Acct-Session-Ids by node (empty for node
/// `skip`, which may be down).
fn session_ids(
    cluster: &Cluster,
    skip: Option<usize>,
) -> Result<Vec<BTreeSet<String>>, ScenarioError> {
    cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if Some(i) == skip {
                return Ok(BTreeSet::new());
            }
            Ok(n.sstpd
                .sessions()?
                .into_iter()
                .filter(|s| s.established && s.ipv4.is_some())
                .map(|s| s.id)
                .collect())
        })
        .collect()
}

/// Waits until the nodes other than `index` hold `sessions` (the lost
/// ones back), bounded; then what they held in `before`, how many of
/// those sessions are gone, and how many they hold.
fn survivors_after(
    cluster: &Cluster,
    index: usize,
    before: &[BTreeSet<String>],
    sessions: u64,
) -> Result<Survivors, ScenarioError> {
    let others = |ids: &[BTreeSet<String>]| -> u64 { ids.iter().map(|s| s.len() as u64).sum() };
    wait_for(SETTLE_TIMEOUT, || {
        Ok(others(&session_ids(cluster, Some(index))?) >= sessions)
    })?;
    let after = session_ids(cluster, Some(index))?;
    let lost = before
        .iter()
        .zip(&after)
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, (b, a))| b.difference(a).count() as u64)
        .sum();
    Ok(Survivors {
        before: held_by_others(before, index),
        lost,
        after: others(&after),
    })
}

/// Ends a held run (SIGINT: its sessions close) and reads its report.
fn end(mut run: LoadChild, interrupt: &AtomicBool) -> Result<Report, ScenarioError> {
    run.signal(libc::SIGINT);
    run.wait(interrupt)
}

/// Sessions the nodes other than `node` held, from per-node lists.
fn held_by_others(per_node: &[BTreeSet<String>], node: usize) -> u64 {
    per_node
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != node)
        .map(|(_, s)| s.len() as u64)
        .sum()
}

fn failover(
    cluster: &mut Cluster,
    loads: &mut Loads,
    options: &ClusterOptions,
    interrupt: &AtomicBool,
    step: &mut dyn FnMut(&str),
) -> Result<FailoverFacts, ScenarioError> {
    let victim = cluster.nodes.len() - 1;
    let (name, addr) = (
        cluster.nodes[victim].name.clone(),
        cluster.nodes[victim].addr,
    );
    step(&format!(
        "failover: {} sessions held through HAProxy (--reconnect), then {name} killed \
         (SIGKILL) ...",
        options.sessions
    ));
    let (run, before) = hold_through_balancer(cluster, loads, options, interrupt, step)?;
    let mut facts = FailoverFacts {
        killed_node: name.clone(),
        on_killed_node: before[victim].len() as u64,
        ..FailoverFacts::default()
    };
    let closed_before = cluster.db.accounting(addr)?.closed;
    cluster.nodes[victim].sstpd.kill_hard()?;
    let down = wait_for(SETTLE_TIMEOUT, || {
        Ok(cluster.balancer_status(&name)?.starts_with("DOWN"))
    })?;
    facts.marked_down_s = down.map_or(f64::NAN, |d| d.as_secs_f64());
    facts.survivors = survivors_after(cluster, victim, &before, options.sessions)?;
    facts.open_rows_after_kill = cluster.db.accounting(addr)?.open;
    facts.leases_after_kill = leases_of(cluster, addr)?;
    step(&format!(
        "  {name} held {}, the others {}; HAProxy marked {name} down {:.2} s after the kill; \
         the others now hold {} and lost {} of theirs; {name} left {} accounting rows open \
         and {} leases held",
        facts.on_killed_node,
        facts.survivors.before,
        facts.marked_down_s,
        facts.survivors.after,
        facts.survivors.lost,
        facts.open_rows_after_kill,
        facts.leases_after_kill
    ));
    let restarted = Instant::now();
    cluster.nodes[victim].sstpd.restart()?;
    // Both watched from the restart on, each timed when it first holds.
    let (mut up, mut closed) = (None, None);
    wait_for(SETTLE_TIMEOUT, || {
        let now = restarted.elapsed().as_secs_f64();
        if up.is_none() && cluster.balancer_status(&name)? == "UP" {
            up = Some(now);
        }
        if closed.is_none()
            && now < ACCOUNTING_ON_TIMEOUT.as_secs_f64()
            && cluster.db.accounting(addr)?.open == 0
            && leases_of(cluster, addr)? == 0
        {
            closed = Some(now);
        }
        Ok(up.is_some() && (closed.is_some() || now >= ACCOUNTING_ON_TIMEOUT.as_secs_f64()))
    })?;
    facts.marked_up_s = up.unwrap_or(f64::NAN);
    facts.accounting_on_s = closed.unwrap_or(f64::NAN);
    let rows = cluster.db.accounting(addr)?;
    facts.open_rows_after_restart = rows.open;
    facts.rows_closed_by_accounting_on = rows.closed - closed_before;
    facts.leases_after_restart = leases_of(cluster, addr)?;
    step(&format!(
        "  restarted: its Accounting-On closed {} rows and freed its leases within {:.2} s \
         ({} open rows, {} leases left); HAProxy marked it up {:.2} s after the restart",
        facts.rows_closed_by_accounting_on,
        facts.accounting_on_s,
        facts.open_rows_after_restart,
        facts.leases_after_restart,
        facts.marked_up_s
    ));
    let report = end(run, interrupt)?;
    facts.reconnects = Reconnects::of(&report);
    step(&format!(
        "  the load generator: {}",
        facts.reconnects.describe()
    ));
    // A further load: the restarted node, the emptiest, takes its share.
    settle(cluster, step)?;
    let mut again = loads.start(cluster, &setup_spec(options, HELD_RUN), FRONTEND_ALL)?;
    let counts = wait_held(cluster, options.sessions, &mut again, interrupt)?;
    facts.restarted_node_sessions = counts[victim];
    end(again, interrupt)?;
    step(&format!(
        "  a further load put {} of {} sessions on the restarted {name}",
        facts.restarted_node_sessions,
        counts.iter().sum::<u64>(),
    ));
    Ok(facts)
}

fn drain(
    cluster: &mut Cluster,
    loads: &mut Loads,
    options: &ClusterOptions,
    interrupt: &AtomicBool,
    step: &mut dyn FnMut(&str),
) -> Result<DrainFacts, ScenarioError> {
    let target = 0;
    let (name, addr) = (
        cluster.nodes[target].name.clone(),
        cluster.nodes[target].addr,
    );
    step(&format!(
        "drain: {} sessions held through HAProxy (--reconnect), then `sstpctl drain --over \
         {:.1}s` on {name} ...",
        options.sessions,
        options.drain_over.as_secs_f64()
    ));
    let (run, before) = hold_through_balancer(cluster, loads, options, interrupt, step)?;
    let mut facts = DrainFacts {
        drained_node: name.clone(),
        on_drained_node: before[target].len() as u64,
        ..DrainFacts::default()
    };
    let started = Instant::now();
    cluster.nodes[target].sstpd.drain(options.drain_over)?;
    let mut down = None;
    let emptied = wait_for(options.drain_over + SETTLE_TIMEOUT, || {
        if down.is_none() && cluster.balancer_status(&name)?.starts_with("DOWN") {
            down = Some(started.elapsed().as_secs_f64());
        }
        Ok(held(cluster)?[target] == 0)
    })?;
    facts.marked_down_s = down.unwrap_or(f64::NAN);
    facts.stop_s = emptied.map_or(f64::NAN, |d| d.as_secs_f64());
    facts.survivors = survivors_after(cluster, target, &before, options.sessions)?;
    wait_for(SETTLE_TIMEOUT, || {
        Ok(cluster.db.accounting(addr)?.open == 0 && leases_of(cluster, addr)? == 0)
    })?;
    facts.leases_after = leases_of(cluster, addr)?;
    facts.open_rows_after = cluster.db.accounting(addr)?.open;
    let report = end(run, interrupt)?;
    facts.reconnects = Reconnects::of(&report);
    step(&format!(
        "  {name} held {}; HAProxy marked it down {:.2} s after the drain began, its last \
         session ended after {:.2} s ({} open rows, {} leases left); the others held {} and \
         now {}, {} of theirs lost",
        facts.on_drained_node,
        facts.marked_down_s,
        facts.stop_s,
        facts.open_rows_after,
        facts.leases_after,
        facts.survivors.before,
        facts.survivors.after,
        facts.survivors.lost
    ));
    step(&format!(
        "  the load generator: {}",
        facts.reconnects.describe()
    ));
    Ok(facts)
}

/// The run's figures as a table: each one, its same-run reference and
/// the ratio.
pub fn table(results: &Results) -> String {
    let mut rows = vec![vec![
        "figure".to_string(),
        "value".to_string(),
        "reference, same run".to_string(),
        "ratio".to_string(),
    ]];
    let value = |v: f64, unit: &str| match unit {
        "count" => format!("{v:.0}"),
        "ratio" => significant(v),
        unit => format!("{} {unit}", significant(v)),
    };
    for scenario in &results.scenarios {
        for f in &scenario.figures {
            let (reference, ratio) = match &f.reference {
                Some(r) => (
                    format!("{} ({})", value(r.value, &f.unit), r.name),
                    significant(r.ratio),
                ),
                None => (String::new(), String::new()),
            };
            rows.push(vec![
                format!("{} {}", scenario.name, f.metric),
                value(f.value, &f.unit),
                reference,
                ratio,
            ]);
        }
    }
    crate::table::render(&rows, |i| i == 1 || i == 3)
}
