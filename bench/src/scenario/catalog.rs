//! The scenarios: what each one loads sstpd with, which bare-TLS
//! reference it measures right before (with sstpd's own certificate), and
//! the figures it records.
//!
//! Every reference does the TLS work the server does in the scenario,
//! with the record sizes the server sees:
//!
//! * upstream, the load generator's client batches packets into full
//!   16 KiB records, so upstream figures stand beside `tls_stream_16384`
//!   (the server decrypts records of that size);
//! * downstream, sstpd seals one record per SSTP packet (sstp-client needs
//!   it), so downstream figures stand beside a stream of records of the
//!   packet's size plus 8 bytes of SSTP and PPP headers (`tls_stream_1408`
//!   for 1,400-byte packets, `tls_stream_100` for 92-byte ones), and the
//!   server's CPU beside the reference's *sender* CPU;
//! * session setup beside `tls_handshake` (same certificate, as many
//!   concurrent clients as the load generator has setups in flight);
//! * round trips beside `tls_ping_pong` with the tunnel's record size.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sstp_loadgen::report::{HistSummary, Sessions};
use sstp_loadgen::{Direction, Mode, Report};

use super::loadgen::{bulk, Connection, LoadChild, LoadSpec};
use super::process::{SstpdOptions, SstpdProcess, SECOND_RESOLVER};
use super::testbed::{CpuShares, LoadOutcome, Span, Testbed, Topology};
use super::{binaries::Binaries, ScenarioError};
use crate::reference::{self, tls};
use crate::results::{
    Better, Figure, LatencyProfile, Params, Percentile, ReferenceResult, ScenarioResult, Series,
    ServerUsage,
};
pub(crate) use crate::units::per_second;
use crate::units::{quantity, ratio};

/// IPv4 and UDP headers around the load generator's payload.
pub const IP_UDP_OVERHEAD: usize = 28;
/// What sstpd adds to an IP packet in its TLS record: the SSTP data
/// header (4 octets, [MS-SSTP] 2.2.2) and the PPP address, control and
/// protocol fields (4 octets, [RFC 1661] 2).
pub const SSTP_PPP_OVERHEAD: usize = 8;
/// UDP payload of the bulk scenarios: 1,400-byte IP packets, sstpd's
/// default tunnel MTU.
pub const BULK_PAYLOAD: usize = 1372;
/// UDP payload of the small-packet scenarios: 92-byte IP packets.
pub const SMALL_PAYLOAD: usize = 64;
/// The load generator's upstream TLS records (full ones).
pub const UPSTREAM_RECORD: usize = 16 * 1024;
/// Plaintext per write in the stream references.
const STREAM_WRITE: usize = 64 * 1024;
/// The suite sstpd and sstp-loadgen negotiate by default.
pub const SUITE: &str = "TLS13_AES_128_GCM_SHA256";
/// Sessions in the latency scenario and the small-packet scenarios.
const SMALL_PACKET_SESSIONS: u64 = 8;
/// Flows per session each way in the small-packet scenarios: consecutive
/// datagrams of a session belong to different flows (more than sstpd's
/// coalescer keeps open), so none travel in super-packets and the
/// scenarios stay the measure of the per-packet path.
pub const SMALL_PACKET_FLOWS: u16 = 64;
/// Offered rate per session when measuring the maximum round-trip rate:
/// far above what any tunnel here carries, so the tunnel sets the pace.
const SATURATING_PPS: f64 = 200_000.0;

/// The TLS record sstpd seals around an IP packet carrying `payload`
/// bytes of UDP payload.
pub fn downstream_record(payload: usize) -> usize {
    payload + IP_UDP_OVERHEAD + SSTP_PPP_OVERHEAD
}

/// What a scenario does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Full-speed 1,400-byte packets through `sessions` sessions.
    Bulk { direction: Direction, sessions: u64 },
    /// Kernel TCP (iperf3) through `sessions` tunnels of
    /// `sstp-loadgen tun`, `streams` streams in each.
    Tcp {
        direction: Direction,
        sessions: u64,
        streams: usize,
    },
    /// Full-speed 92-byte packets through 8 sessions.
    SmallPackets { direction: Direction },
    /// The maximum reflected round-trip rate, then round trips at 10% and
    /// 50% of it, each answered by `reflector`.
    Latency { reflector: Reflector },
    /// Sessions set up as fast as they complete.
    Setup,
    /// Many sessions held without traffic.
    Idle,
    /// Connect, disconnect, again, in concurrent loops.
    Churn,
    /// Many sessions dropped at once (the load generator killed) and set
    /// up again by a new one.
    Storm,
    /// Sessions set up as fast as they complete, authenticated and
    /// accounted through FreeRADIUS, beside the same load against local
    /// users.
    SetupRadius,
    /// Held, talking and churning sessions for a long time, the server
    /// sampled every interval ([`super::soak`]).
    Soak,
}

/// What answers the latency scenarios' probes behind sstpd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reflector {
    /// `sstp-loadgen peer`: UDP datagrams, each sent back by a process.
    Peer,
    /// The kernel: ICMP echo requests to the tunnel's gateway, answered
    /// where sstpd's TUN device is, with no process to wake. The round trip
    /// is then the tunnel's alone, as an operator's ping through it.
    Kernel,
}

/// The group of the IPv6 scenarios; `run ipv6` runs each beside its IPv4
/// twin (the same name without `_v6`).
pub const IPV6_GROUP: &str = "ipv6";
/// How much longer IPv6's header is than IPv4's: the IPv6 scenarios send
/// this much less payload, so their packets and TLS records are the same
/// size as their IPv4 twins'.
pub const IPV6_EXTRA_HEADER: usize = 20;
/// The group of the soak scenario: run only by name (`run soak`), never
/// by `run all`, which it would make half an hour longer.
pub const SOAK_GROUP: &str = "soak";

/// A scenario's name and what it will measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScenarioSpec {
    pub name: &'static str,
    /// `run GROUP` runs every scenario of the group.
    pub group: &'static str,
    pub kind: Kind,
    /// What the load is (`{concurrency}` stands for `--concurrency`).
    pub load: &'static str,
    /// Its figures and the reference each stands beside.
    pub figures: &'static str,
}

impl ScenarioSpec {
    /// Whether the scenario's traffic runs over IPv6.
    pub fn ipv6(&self) -> bool {
        self.group == IPV6_GROUP
    }
}

/// The scenarios, in the order `run all` runs them (all but `soak`).
pub const SCENARIOS: [ScenarioSpec; 22] = [
    ScenarioSpec {
        name: "bulk_up_1",
        group: "bulk",
        kind: Kind::Bulk {
            direction: Direction::Up,
            sessions: 1,
        },
        load: "1 session, 1,400-byte packets upstream at full speed",
        figures: "throughput beside tls_stream_16384; server CPU per GB beside its receiver's",
    },
    ScenarioSpec {
        name: "bulk_up_64",
        group: "bulk",
        kind: Kind::Bulk {
            direction: Direction::Up,
            sessions: 64,
        },
        load: "64 sessions, 1,400-byte packets upstream at full speed",
        figures: "throughput beside tls_stream_16384; server CPU per GB beside its receiver's",
    },
    ScenarioSpec {
        name: "bulk_down_1",
        group: "bulk",
        kind: Kind::Bulk {
            direction: Direction::Down,
            sessions: 1,
        },
        load: "1 session, 1,400-byte packets downstream at full speed",
        figures: "throughput beside tls_stream_1408; server CPU per GB beside its sender's",
    },
    ScenarioSpec {
        name: "bulk_down_64",
        group: "bulk",
        kind: Kind::Bulk {
            direction: Direction::Down,
            sessions: 64,
        },
        load: "64 sessions, 1,400-byte packets downstream at full speed",
        figures: "throughput beside tls_stream_1408; server CPU per GB beside its sender's",
    },
    ScenarioSpec {
        name: "tcp_up_1",
        group: "tcp",
        kind: Kind::Tcp {
            direction: Direction::Up,
            sessions: 1,
            streams: 1,
        },
        load: "1 session behind a TUN device, 1 iperf3 TCP stream upstream",
        figures: "iperf3's received throughput beside tls_stream_16384; server CPU per GB; \
                  retransmits",
    },
    ScenarioSpec {
        name: "tcp_up_8",
        group: "tcp",
        kind: Kind::Tcp {
            direction: Direction::Up,
            sessions: 1,
            streams: 8,
        },
        load: "1 session behind a TUN device, 8 iperf3 TCP streams upstream",
        figures: "iperf3's received throughput beside tls_stream_16384; server CPU per GB; \
                  retransmits",
    },
    ScenarioSpec {
        name: "tcp_up_64",
        group: "tcp",
        kind: Kind::Tcp {
            direction: Direction::Up,
            sessions: 64,
            streams: 1,
        },
        load: "64 sessions behind TUN devices, one iperf3 TCP stream upstream in each",
        figures: "iperf3's received throughput (summed) beside tls_stream_16384; server CPU \
                  per GB; retransmits",
    },
    ScenarioSpec {
        name: "tcp_down_1",
        group: "tcp",
        kind: Kind::Tcp {
            direction: Direction::Down,
            sessions: 1,
            streams: 1,
        },
        load: "1 session behind a TUN device, 1 iperf3 TCP stream downstream (-R)",
        figures: "iperf3's received throughput beside tls_stream_1408; server CPU per GB \
                  beside its sender's; retransmits",
    },
    ScenarioSpec {
        name: "tcp_down_8",
        group: "tcp",
        kind: Kind::Tcp {
            direction: Direction::Down,
            sessions: 1,
            streams: 8,
        },
        load: "1 session behind a TUN device, 8 iperf3 TCP streams downstream (-R)",
        figures: "iperf3's received throughput beside tls_stream_1408; server CPU per GB \
                  beside its sender's; retransmits",
    },
    ScenarioSpec {
        name: "pps_up",
        group: "pps",
        kind: Kind::SmallPackets {
            direction: Direction::Up,
        },
        load: "8 sessions of 64 flows each, 92-byte packets upstream at full speed",
        figures: "packets/s and server CPU per packet; throughput beside tls_stream_16384",
    },
    ScenarioSpec {
        name: "pps_down",
        group: "pps",
        kind: Kind::SmallPackets {
            direction: Direction::Down,
        },
        load: "8 sessions of 64 flows each, 92-byte packets downstream at full speed",
        figures: "packets/s beside tls_stream_100 records/s; server CPU per packet beside its \
                  sender's per record",
    },
    ScenarioSpec {
        name: "latency",
        group: "latency",
        kind: Kind::Latency {
            reflector: Reflector::Peer,
        },
        load: "8 sessions of 92-byte UDP round trips (64 flows each) reflected by the peer: at full speed \
               (the maximum), then paced at 10% and 50% of it",
        figures: "latency_max: round trips/s; latency_10pct, latency_50pct: percentiles \
                  beside tls_ping_pong with 100-byte messages, and the share of probes sent late",
    },
    ScenarioSpec {
        name: "latency_icmp",
        group: "latency_icmp",
        kind: Kind::Latency {
            reflector: Reflector::Kernel,
        },
        load: "latency's load as ICMP echo requests to the tunnel's gateway, answered by the \
               kernel where sstpd's TUN device is (no process reflects them): at full speed, \
               then paced at 10% and 50% of it",
        figures: "latency_icmp_max, latency_icmp_10pct, latency_icmp_50pct: as latency's",
    },
    ScenarioSpec {
        name: "setup",
        group: "setup",
        kind: Kind::Setup,
        load: "sessions set up as fast as they complete, {concurrency} in flight",
        figures: "sessions/s beside tls_handshake ({concurrency} clients); server CPU per 1,000 sessions \
                  beside its server's per 1,000 handshakes",
    },
    ScenarioSpec {
        name: "setup_radius",
        group: "setup_radius",
        kind: Kind::SetupRadius,
        load: "sessions set up as fast as they complete, {concurrency} in flight, MS-CHAPv2 \
               through FreeRADIUS with accounting, after the same load against local users",
        figures: "sessions/s beside setup_local_users (same run; issue 13's target: 0.8); server \
                  CPU per 1,000 sessions beside its; FreeRADIUS CPU; Start/Stop records",
    },
    ScenarioSpec {
        name: "idle",
        group: "idle",
        kind: Kind::Idle,
        load: "thousands of sessions held, keepalives only",
        figures: "server RSS with them and per session; server CPU while they idle",
    },
    ScenarioSpec {
        name: "churn",
        group: "churn",
        kind: Kind::Churn,
        load: "{concurrency} loops connecting and disconnecting at once (no hold)",
        figures: "cycles/s beside tls_handshake; server CPU per 1,000 sessions; RSS growth",
    },
    ScenarioSpec {
        name: "storm",
        group: "storm",
        kind: Kind::Storm,
        load: "--idle-sessions held, the load generator killed (every socket closed at once), \
               a new one setting them all up again, {concurrency} in flight",
        figures: "time until all are back and reconnect rate beside tls_handshake; failures; \
                  server RSS held, and after the storm against held (growth)",
    },
    ScenarioSpec {
        name: "bulk_up_1_v6",
        group: IPV6_GROUP,
        kind: Kind::Bulk {
            direction: Direction::Up,
            sessions: 1,
        },
        load: "bulk_up_1 over IPv6: 1 session, 1,400-byte IPv6 packets upstream at full speed",
        figures: "as bulk_up_1, beside the same tls_stream_16384",
    },
    ScenarioSpec {
        name: "pps_up_v6",
        group: IPV6_GROUP,
        kind: Kind::SmallPackets {
            direction: Direction::Up,
        },
        load: "pps_up over IPv6: 8 sessions of 64 flows each, 92-byte IPv6 packets upstream at full speed",
        figures: "as pps_up",
    },
    ScenarioSpec {
        name: "latency_v6",
        group: IPV6_GROUP,
        kind: Kind::Latency {
            reflector: Reflector::Peer,
        },
        load: "latency over IPv6: 8 sessions of 92-byte UDP/IPv6 round trips reflected by the \
               peer, at full speed, then paced at 10% and 50% of it",
        figures: "latency_v6_max, latency_v6_10pct, latency_v6_50pct: as latency's",
    },
    ScenarioSpec {
        name: "soak",
        group: SOAK_GROUP,
        kind: Kind::Soak,
        load: "not part of `run all`: --soak-sessions for --soak-duration (default 2,000 for \
               30 minutes): most held idle, some with bulk traffic, echo and churn runs every \
               --soak-interval",
        figures: "per interval: sstpd RSS, open fds, sessions and pool addresses in use, CPU, \
                  setup and echo p50/p99 (table, series, SVGs); flat at the end or not",
    },
];

/// Settings common to the scenarios of a run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub binaries: Binaries,
    pub topology: Topology,
    /// The traffic (or hold) window of each load run.
    pub duration: Duration,
    /// How long each reference runs.
    pub reference_duration: Duration,
    /// Sessions of the idle scenario.
    pub idle_sessions: u64,
    /// Sessions of the setup scenario.
    pub setup_sessions: u64,
    /// Setups in flight (setup), loops (churn), clients (tls_handshake).
    pub concurrency: usize,
    /// Another SSTP server to measure instead of a local sstpd.
    pub remote: Option<Connection>,
    /// The local sstpd's `tun.offload`, if not its default.
    pub tun_offload: Option<String>,
    /// The local sstpd's `tls.ktls`.
    pub ktls: sstpd::config::KtlsMode,
    /// Downstream bulk scenarios: the peer's rate follows what arrives
    /// (`sstp-loadgen bulk --follow`) instead of flooding.
    pub follow: bool,
    /// The latency scenarios also measure at this fixed rate (round trips
    /// a second), beside the shares of the maximum.
    pub latency_rate: Option<f64>,
    /// The soak scenario's load and intervals.
    pub soak: super::soak::SoakOptions,
}

impl BenchOptions {
    pub fn new(binaries: Binaries) -> BenchOptions {
        BenchOptions {
            binaries,
            topology: Topology::current(),
            duration: Duration::from_secs(5),
            reference_duration: Duration::from_secs(3),
            idle_sessions: 4000,
            setup_sessions: 1000,
            concurrency: 64,
            remote: None,
            tun_offload: None,
            ktls: sstpd::config::KtlsMode::Auto,
            follow: false,
            latency_rate: None,
            soak: super::soak::SoakOptions::default(),
        }
    }
}

/// What one scenario produced: its results (the latency scenario has
/// three) and the references they stand beside.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub results: Vec<ScenarioResult>,
    pub references: Vec<ReferenceResult>,
    /// Figures over time (the soak's).
    pub series: Vec<Series>,
}

impl Outcome {
    /// One result, printed as it is recorded.
    pub(crate) fn single(
        result: ScenarioResult,
        references: Vec<ReferenceResult>,
        print: &mut dyn FnMut(&str),
    ) -> Outcome {
        print(&render(&result));
        Outcome {
            results: vec![result],
            references,
            series: Vec::new(),
        }
    }
}

/// For a `--target` run whose traffic went unanswered: where the load
/// generator expected `sstp-loadgen peer`.
fn peer_hint(options: &BenchOptions) -> String {
    match &options.remote {
        Some(c) => {
            let at = c.peer.map_or_else(
                || {
                    format!(
                        "the tunnel gateway, port {}",
                        sstp_loadgen::config::DEFAULT_PEER_PORT
                    )
                },
                |p| p.to_string(),
            );
            format!(
                " (is `sstp-loadgen peer` running behind {}, at {at}?)",
                c.target
            )
        }
        None => String::new(),
    }
}

/// Most sessions a local run asks of sstpd (the largest pool it gives it).
pub const MAX_LOCAL_SESSIONS: u64 = 130_000;

/// The largest IPv4 pool sstpd is given, and its size in clients.
pub(crate) fn pool_for(sessions: u64) -> (&'static str, usize) {
    if sessions <= 4000 {
        ("10.99.0.0/20", 4093)
    } else if sessions <= 65_000 {
        ("10.99.0.0/16", 65_533)
    } else {
        ("10.98.0.0/15", 131_069)
    }
}

pub(crate) fn testbed(options: &BenchOptions) -> Result<Testbed, ScenarioError> {
    if let Some(connection) = &options.remote {
        return Testbed::remote(
            &options.binaries,
            connection.clone(),
            options.topology.clone(),
        );
    }
    Testbed::local(
        &options.binaries,
        &sstpd_options(options),
        options.topology.clone(),
    )
}

/// The local sstpd of a run: workers, a pool for its largest load.
fn sstpd_options(options: &BenchOptions) -> SstpdOptions {
    let mut server = SstpdOptions::new(options.binaries.sstpd.clone());
    server.workers = options.topology.server_workers;
    let (pool, clients) = pool_for(
        options
            .idle_sessions
            .max(options.setup_sessions)
            .max(options.soak.sessions),
    );
    server.ipv4_pool = pool.into();
    server.max_sessions = clients.max(10_000);
    server.tun_offload = options.tun_offload.clone();
    server.ktls = options.ktls;
    // IPv6 on for every scenario: an IPv4 scenario and its IPv6 twin
    // measure the same server configuration (IPv6CP runs only for load
    // generators that ask for it).
    server.ipv6 = true;
    server
}

/// Runs one scenario: a fresh sstpd (or the remote target), its
/// references, its load, its figures. `print` receives the lines to show.
pub fn run(
    spec: &ScenarioSpec,
    options: &BenchOptions,
    interrupt: &AtomicBool,
    print: &mut dyn FnMut(&str),
) -> Result<Outcome, ScenarioError> {
    if spec.kind == Kind::SetupRadius {
        // Two servers of its own, one after the other.
        return super::radius::setup_radius(options, interrupt, print);
    }
    let mut bed = match spec.kind {
        Kind::Tcp { .. } if options.remote.is_some() => {
            return Err(ScenarioError::Setup(format!(
                "{} needs iperf3 beside the server: run it against a local sstpd",
                spec.name
            )))
        }
        Kind::Tcp { .. } => Testbed::local_with_tunnel_clients(
            &options.binaries,
            &sstpd_options(options),
            options.topology.clone(),
        )?,
        _ => testbed(options)?,
    };
    let outcome = match spec.kind {
        Kind::Bulk {
            direction,
            sessions,
        } => throughput(
            &mut bed,
            spec,
            direction,
            sessions,
            BULK_PAYLOAD,
            options,
            interrupt,
            print,
        ),
        Kind::Tcp {
            direction,
            sessions,
            streams,
        } => super::tcp::tcp(
            &mut bed, spec.name, direction, sessions, streams, options, interrupt, print,
        ),
        Kind::SmallPackets { direction } => throughput(
            &mut bed,
            spec,
            direction,
            SMALL_PACKET_SESSIONS,
            SMALL_PAYLOAD,
            options,
            interrupt,
            print,
        ),
        Kind::Latency { reflector } => {
            latency(&mut bed, spec, reflector, options, interrupt, print)
        }
        Kind::Setup => setup(&mut bed, options, interrupt, print),
        Kind::Idle => idle(&mut bed, options, interrupt, print),
        Kind::Churn => churn(&mut bed, options, interrupt, print),
        Kind::Storm => storm(&mut bed, options, interrupt, print),
        Kind::Soak => super::soak::soak(
            &mut bed,
            &options.soak,
            options.concurrency,
            interrupt,
            print,
        ),
        Kind::SetupRadius => unreachable!("run above"),
    }?;
    bed.stop()?;
    Ok(outcome)
}

// ------------------------------------------------------------ references

pub(crate) fn stream(
    bed: &Testbed,
    options: &BenchOptions,
    record_size: usize,
    print: &mut dyn FnMut(&str),
) -> Result<ReferenceResult, ScenarioError> {
    let name = reference::stream_name(record_size);
    print(&format!(
        "  reference {name}: bare TLS, {record_size}-byte records ..."
    ));
    let r = reference::stream_reference(
        &name,
        &tls::StreamParams {
            suite: SUITE.into(),
            record_size,
            write_size: STREAM_WRITE,
            duration: options.reference_duration,
            cert: bed.certificate(),
            ..Default::default()
        },
    )
    .map_err(ScenarioError::Reference)?;
    Ok(r)
}

/// Where a reference's server and client threads run: on sstpd's first
/// worker core and the load generator's, as the scenario beside it does
/// (`None`s where the bench does not pin the load generator). Unpinned,
/// each reference thread moved between both cores, where the scenario's
/// processes each stay on their own (docs/benchmarking.md, "The handshake
/// references where the scenario runs").
fn reference_cores(options: &BenchOptions) -> (Option<usize>, Option<usize>) {
    let topology = &options.topology;
    let server = topology.pin_loadgen.then_some(0);
    let client = topology
        .placement()
        .cpus
        .and_then(|cpus| cpus.first().copied());
    (server, client)
}

pub(crate) fn handshakes(
    bed: &Testbed,
    options: &BenchOptions,
    print: &mut dyn FnMut(&str),
) -> Result<ReferenceResult, ScenarioError> {
    print(&format!(
        "  reference {}: bare TLS handshakes, {} clients ...",
        reference::TLS_HANDSHAKE,
        options.concurrency
    ));
    let (server_core, client_core) = reference_cores(options);
    reference::handshake_reference(&tls::HandshakeParams {
        clients: options.concurrency,
        duration: options.reference_duration,
        cert: bed.certificate(),
        server_core,
        client_core,
        ..Default::default()
    })
    .map_err(ScenarioError::Reference)
}

/// The plaintext bytes of each message of [`handshake_exchanges`]: about
/// an SSTP setup message's (20 to 150 bytes).
const EXCHANGE_MESSAGE: usize = 100;

/// The request/response exchanges after the TLS handshake in the set-up
/// of a session with the bench's sstpd (two DNS servers): what
/// [`handshake_exchanges`] repeats.
pub(crate) fn setup_exchanges() -> usize {
    // Only how many servers there are matters to the count.
    let gateway = crate::workload::GATEWAY;
    crate::workload::setup_server_flights([Some(gateway), SECOND_RESOLVER.parse().ok()])
}

/// The `tls_handshake_exchanges` reference: bare TLS handshakes, each
/// followed by as many request/response exchanges of small messages as a
/// session's setup makes ([`setup_exchanges`]), one write per answer.
/// Beside it, a setup figure says what sstpd costs on top of TLS and of
/// the round trips the protocol cannot avoid; beside `tls_handshake`, what
/// it costs on top of TLS alone.
pub(crate) fn handshake_exchanges(
    bed: &Testbed,
    options: &BenchOptions,
    print: &mut dyn FnMut(&str),
) -> Result<ReferenceResult, ScenarioError> {
    let exchanges = setup_exchanges();
    print(&format!(
        "  reference {}: bare TLS handshakes, then {exchanges} exchanges of \
         {EXCHANGE_MESSAGE}-byte messages (as many as a session's setup), {} clients ...",
        reference::TLS_HANDSHAKE_EXCHANGES,
        options.concurrency
    ));
    let (server_core, client_core) = reference_cores(options);
    reference::handshake_reference(&tls::HandshakeParams {
        clients: options.concurrency,
        duration: options.reference_duration,
        cert: bed.certificate(),
        exchanges,
        message_size: EXCHANGE_MESSAGE,
        server_core,
        client_core,
        ..Default::default()
    })
    .map_err(ScenarioError::Reference)
}

pub(crate) fn ping_pong(
    bed: &Testbed,
    options: &BenchOptions,
    message_size: usize,
    print: &mut dyn FnMut(&str),
) -> Result<ReferenceResult, ScenarioError> {
    print(&format!(
        "  reference {}: bare TLS, {message_size}-byte messages ...",
        reference::TLS_PING_PONG
    ));
    let (server_core, client_core) = reference_cores(options);
    reference::ping_pong_reference(&tls::PingPongParams {
        suite: SUITE.into(),
        message_size,
        duration: options.reference_duration,
        cert: bed.certificate(),
        server_core,
        client_core,
        ..Default::default()
    })
    .map_err(ScenarioError::Reference)
}

/// The latency point `point`'s own reference: `message_size`-byte
/// messages over bare TLS, sent at `rate` a second over as many
/// connections as the point has sessions, paced as the load generator
/// paces them.
pub(crate) fn paced_ping_pong(
    bed: &Testbed,
    options: &BenchOptions,
    message_size: usize,
    rate: f64,
    point: &str,
    print: &mut dyn FnMut(&str),
) -> Result<ReferenceResult, ScenarioError> {
    let name = format!("{}_{point}", reference::TLS_PING_PONG_PACED);
    print(&format!(
        "  reference {name}: bare TLS, {message_size}-byte messages, {} a second over {SMALL_PACKET_SESSIONS} connections ...",
        crate::units::significant(rate)
    ));
    let (server_core, client_core) = reference_cores(options);
    let reference = reference::paced_ping_pong_reference(
        &name,
        &tls::PacedPingPongParams {
            suite: SUITE.into(),
            message_size,
            connections: SMALL_PACKET_SESSIONS as usize,
            rate,
            duration: options.reference_duration,
            cert: bed.certificate(),
            server_core,
            client_core,
            ..Default::default()
        },
    )
    .map_err(ScenarioError::Reference)?;
    if let Some(late) = reference.figure("sent_late") {
        // As for the load generator: a reference that could not keep its
        // pace measured its own catch-up.
        print(&format!(
            "    {name}: {:.2}% of its messages sent late",
            late.value * 100.0
        ));
    }
    Ok(reference)
}

/// The stream reference of traffic in `direction` carrying `payload`
/// bytes of UDP payload per packet (see the module documentation), and
/// its record size.
pub(crate) fn direction_stream(
    bed: &Testbed,
    options: &BenchOptions,
    direction: Direction,
    payload: usize,
    print: &mut dyn FnMut(&str),
) -> Result<(ReferenceResult, usize), ScenarioError> {
    let record = if direction == Direction::Up {
        UPSTREAM_RECORD
    } else {
        downstream_record(payload)
    };
    Ok((stream(bed, options, record, print)?, record))
}

// -------------------------------------------------------------- figures

/// The server's CPU per GB carried in `direction`, beside the stream
/// reference's receiver (upstream: sstpd decrypts) or sender (downstream:
/// sstpd encrypts).
pub(crate) fn cpu_per_gb(
    usage: Option<&ServerUsage>,
    reference: &ReferenceResult,
    direction: Direction,
) -> Option<Figure> {
    let per_gb = usage?.cpu_s_per_gb?;
    let side = if direction == Direction::Up {
        "server_cpu_per_gb"
    } else {
        "sender_cpu_per_gb"
    };
    Some(fig("server_cpu_per_gb", "s/GB", per_gb, Better::Lower).beside(reference, side))
}

pub(crate) fn fig(metric: &str, unit: &str, value: f64, better: Better) -> Figure {
    Figure::new(metric, unit, value, better)
}

/// The server's cost over `interval`, with the payload bytes and the
/// sessions set up in it (a local server only).
pub(crate) fn server_usage(
    outcome: &LoadOutcome,
    interval: impl Into<Span>,
    bytes: u64,
    sessions: u64,
) -> Option<ServerUsage> {
    let interval = interval.into();
    let cpu = outcome.shares(interval).server?;
    let last = outcome.server_last()?;
    Some(ServerUsage::new(
        cpu.seconds(),
        interval.seconds(),
        bytes,
        sessions,
        outcome.server_rss_peak().unwrap_or(last.rss_bytes),
        outcome
            .server_rss_near(interval.to)
            .unwrap_or(last.rss_bytes),
    ))
}

/// Who used the CPU in `interval` (in cores), and what that says the
/// limit was.
pub(crate) fn cpu_context(
    outcome: &LoadOutcome,
    interval: impl Into<Span>,
    topology: &Topology,
    figures: &mut Vec<Figure>,
    params: &mut Params,
) -> CpuShares {
    let shares = outcome.shares(interval);
    let mut add = |metric: &str, value: Option<f64>| {
        if let Some(v) = value {
            figures.push(fig(metric, "cores", v, Better::Neither));
        }
    };
    add("server_cores", shares.cores(shares.server));
    add("loadgen_cores", shares.cores(shares.loadgen));
    add("peer_cores", shares.cores(shares.peer));
    add("radius_cores", shares.cores(shares.radius));
    add("other_cores", shares.others_cores());
    if let Some(server) = shares.server {
        figures.push(fig(
            "server_kernel_share",
            "ratio",
            server.system_share(),
            Better::Neither,
        ));
    }
    let limit = shares.limit(topology, outcome.local);
    params.insert("limited_by".into(), limit.as_str().into());
    shares
}

pub(crate) fn base_params(report: &Report, topology: &Topology, local: bool) -> Params {
    let mut p = Params::new();
    p.insert("mode".into(), report.mode.clone());
    p.insert("sessions".into(), report.config.sessions.to_string());
    p.insert("window_s".into(), format!("{:.2}", report.timing.window_s));
    p.insert("target".into(), report.config.target.clone());
    p.insert(
        "server".into(),
        if local {
            format!("sstpd, {} worker(s)", topology.server_workers)
        } else {
            "remote (not measured)".into()
        },
    );
    p.insert("loadgen_workers".into(), report.config.workers.to_string());
    if let Some(failures) = failure_summary(&report.sessions) {
        p.insert("failures".into(), failures);
    }
    p
}

/// Why sessions failed or dropped, most frequent first: `reason ×count
/// (example)`; `None` when none did.
fn failure_summary(s: &Sessions) -> Option<String> {
    let mut counts: Vec<(&String, u64)> = s
        .failure_reasons
        .iter()
        .chain(&s.drop_reasons)
        .map(|(reason, &count)| (reason, count))
        .filter(|&(_, count)| count > 0)
        .collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = counts
        .into_iter()
        .map(|(reason, count)| match s.failure_examples.get(reason) {
            Some(example) => format!("{reason} ×{count} ({example})"),
            None => format!("{reason} ×{count}"),
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Runs `spec` on the testbed and checks its sessions
/// ([`check_sessions`]): the load's outcome and its first figure.
pub(crate) fn load_checked(
    bed: &mut Testbed,
    spec: &LoadSpec,
    interrupt: &AtomicBool,
) -> Result<(LoadOutcome, Vec<Figure>), ScenarioError> {
    let outcome = bed.load(spec, interrupt)?;
    let mut figures = Vec::new();
    check_sessions(&outcome.report, &mut figures)?;
    Ok((outcome, figures))
}

/// Fails the scenario when no session came up; otherwise the number of
/// failed or dropped sessions becomes a figure.
pub(crate) fn check_sessions(
    report: &Report,
    figures: &mut Vec<Figure>,
) -> Result<(), ScenarioError> {
    let s = &report.sessions;
    if s.established == 0 {
        let reasons: Vec<String> = s
            .failure_examples
            .iter()
            .map(|(reason, example)| format!("{reason}: {example}"))
            .collect();
        return Err(ScenarioError::Loadgen(format!(
            "no session came up ({} attempted): {}",
            s.attempted,
            reasons.join("; ")
        )));
    }
    figures.push(fig(
        "failed_sessions",
        "count",
        (s.failed + s.dropped) as f64,
        Better::Neither,
    ));
    Ok(())
}

pub(crate) fn hist_profile(h: &HistSummary) -> LatencyProfile {
    let point = |percentile: f64, value: u64| Percentile {
        percentile,
        value: value as f64,
    };
    LatencyProfile {
        unit: "us".into(),
        samples: h.count,
        min: h.min_us as f64,
        mean: h.mean_us,
        max: h.max_us as f64,
        points: vec![
            point(0.0, h.min_us),
            point(50.0, h.p50_us),
            point(90.0, h.p90_us),
            point(99.0, h.p99_us),
            point(99.9, h.p99_9_us),
            point(100.0, h.max_us),
        ],
    }
}

// ------------------------------------------------------------ scenarios

/// Bulk and small-packet throughput in one direction.
#[allow(clippy::too_many_arguments)]
fn throughput(
    bed: &mut Testbed,
    scenario: &ScenarioSpec,
    direction: Direction,
    sessions: u64,
    payload: usize,
    options: &BenchOptions,
    interrupt: &AtomicBool,
    print: &mut dyn FnMut(&str),
) -> Result<Outcome, ScenarioError> {
    let name = scenario.name;
    let up = direction == Direction::Up;
    let (reference, record) = direction_stream(bed, options, direction, payload, print)?;
    let small_packets = matches!(scenario.kind, Kind::SmallPackets { .. });
    let flows = if small_packets { SMALL_PACKET_FLOWS } else { 1 };
    // `--follow`: downstream, the peer's stream follows what arrives, as a
    // sender with congestion control would, rather than flooding. The
    // small-packet scenario keeps the flood: 64 flows go one datagram per
    // call either way, and it measures packets per second.
    let follow = options.follow && !up && !small_packets;
    let mut spec = LoadSpec::new(bulk(direction, flows, follow), sessions, options.duration);
    spec.payload = Some(ip_payload(scenario, payload));
    spec.ipv6 = scenario.ipv6();
    spec.setup_concurrency = Some(options.concurrency);
    let (outcome, mut figures) = load_checked(bed, &spec, interrupt)?;
    let r = &outcome.report;
    let window = outcome.window();
    let seconds = r.timing.window_s;
    // What came out of the tunnel: the peer's count upstream (when every
    // flow answered), what we received downstream.
    let counted_by_peer =
        up && r.peer.answered_flows == r.peer.queried_flows && r.peer.queried_flows > 0;
    let (packets, bytes, loss) = if counted_by_peer {
        (r.peer.rx_packets, r.peer.rx_bytes, r.loss.up.as_ref())
    } else if up {
        print(&format!(
            "  note: the peer did not report what it received{}; the throughput is what \
             the load generator sent",
            peer_hint(options)
        ));
        (r.traffic.up.packets, r.traffic.up.bytes, None)
    } else {
        (
            r.traffic.down.packets,
            r.traffic.down.bytes,
            r.loss.down.as_ref(),
        )
    };
    if !up && packets == 0 {
        return Err(ScenarioError::Loadgen(format!(
            "no traffic came down the tunnels{}",
            peer_hint(options)
        )));
    }
    let gbit = per_second(bytes, seconds) * 8.0 / 1e9;
    let pps = per_second(packets, seconds);
    let small = payload == SMALL_PAYLOAD;
    if small {
        let f = fig("packets_per_s", "packets/s", pps, Better::Higher);
        figures.push(if up {
            f
        } else {
            f.beside(&reference, "records_per_s")
        });
    }
    figures
        .push(fig("throughput", "Gbit/s", gbit, Better::Higher).beside(&reference, "throughput"));
    if !small {
        figures.push(fig("packets_per_s", "packets/s", pps, Better::Higher));
    }
    let usage = server_usage(&outcome, window, bytes, 0);
    figures.extend(cpu_per_gb(usage.as_ref(), &reference, direction));
    if let Some(u) = usage.as_ref().filter(|_| packets > 0) {
        let ns = u.cpu_seconds * 1e9 / packets as f64;
        let f = fig("server_cpu_per_packet", "ns", ns, Better::Lower);
        figures.push(if small && !up {
            f.beside(&reference, "sender_cpu_per_record")
        } else {
            f
        });
    }
    if let Some(l) = loss {
        figures.push(fig("loss", "ratio", l.ratio, Better::Neither));
    }
    if up {
        let offered = r.traffic.up.gbit_per_s;
        figures.push(fig("offered", "Gbit/s", offered, Better::Neither));
    }
    let mut params = base_params(r, &options.topology, outcome.local);
    params.insert("direction".into(), direction.as_str().into());
    if follow {
        params.insert("follow".into(), "true".into());
    }
    params.insert("payload".into(), payload.to_string());
    params.insert(
        "ip_packet_bytes".into(),
        (payload + IP_UDP_OVERHEAD).to_string(),
    );
    params.insert("server_record_bytes".into(), record.to_string());
    if up {
        let counted_by = if counted_by_peer { "peer" } else { "sender" };
        params.insert("counted_by".into(), counted_by.into());
    }
    cpu_context(
        &outcome,
        window,
        &options.topology,
        &mut figures,
        &mut params,
    );
    let result = ScenarioResult {
        name: name.into(),
        params,
        figures,
        server: usage,
        latency: None,
    };
    Ok(Outcome::single(result, vec![reference], print))
}

/// The maximum reflected round-trip rate, then latency at 10% and 50% of
/// it.
/// The payload that makes a scenario's packets the size its IPv4
/// version's `payload` gives.
fn ip_payload(scenario: &ScenarioSpec, payload: usize) -> usize {
    if scenario.ipv6() {
        payload - IPV6_EXTRA_HEADER
    } else {
        payload
    }
}

fn latency(
    bed: &mut Testbed,
    scenario: &ScenarioSpec,
    reflector: Reflector,
    options: &BenchOptions,
    interrupt: &AtomicBool,
    print: &mut dyn FnMut(&str),
) -> Result<Outcome, ScenarioError> {
    let message = downstream_record(SMALL_PAYLOAD);
    let reference = ping_pong(bed, options, message, print)?;
    let mode = match reflector {
        Reflector::Peer => Mode::Udp {
            to: None,
            reflect: true,
            // As the small-packet scenarios: every probe on the per-packet
            // path, so the maximum (and the 10% and 50% of it) is a rate
            // of packets, not of super-packets.
            flows: SMALL_PACKET_FLOWS,
        },
        // ICMP has no ports, and nothing merges echo requests.
        Reflector::Kernel => Mode::Echo { to: None },
    };
    let probes = |pps: f64| {
        let mut spec = LoadSpec::new(mode.clone(), SMALL_PACKET_SESSIONS, options.duration);
        spec.payload = Some(ip_payload(scenario, SMALL_PAYLOAD));
        spec.ipv6 = scenario.ipv6();
        spec.pps = Some(pps);
        spec.setup_concurrency = Some(options.concurrency);
        spec
    };
    print(&format!(
        "  {}_max: {SMALL_PACKET_SESSIONS} sessions, round trips at full speed ...",
        scenario.name
    ));
    let (outcome, mut figures) = load_checked(bed, &probes(SATURATING_PPS), interrupt)?;
    let r = &outcome.report;
    // Replies received in the window: what the loop carried.
    let max = r.traffic.down.packets_per_s;
    if max <= 0.0 {
        let hint = match reflector {
            Reflector::Peer => peer_hint(options),
            Reflector::Kernel => String::new(),
        };
        return Err(ScenarioError::Loadgen(format!(
            "no round trip completed at full speed{hint}"
        )));
    }
    figures.insert(
        0,
        fig("round_trip_rate", "round trips/s", max, Better::Higher),
    );
    let result = round_trip_result(
        &format!("{}_max", scenario.name),
        &outcome,
        figures,
        Params::new(),
        &options.topology,
    );
    print(&render(&result));
    let mut results = vec![result];
    let mut references = vec![reference.clone()];
    let mut points: Vec<(String, f64, Option<f64>)> = [("10pct", 0.10), ("50pct", 0.50)]
        .into_iter()
        .map(|(suffix, share)| (suffix.to_string(), max * share, Some(share)))
        .collect();
    if let Some(rate) = options.latency_rate {
        points.push((format!("at_{rate:.0}"), rate, None));
    }
    for (suffix, rate, share) in points {
        let name = format!("{}_{suffix}", scenario.name);
        let of_max = match share {
            Some(share) => format!("{:.0}% of the maximum", share * 100.0),
            None => format!("{:.0}% of the maximum, fixed", 100.0 * rate / max),
        };
        print(&format!(
            "  {name}: {} round trips/s ({of_max}) ...",
            crate::units::significant(rate),
        ));
        let paced = paced_ping_pong(bed, options, message, rate, &suffix, print)?;
        let (outcome, mut figures) =
            load_checked(bed, &probes(rate / SMALL_PACKET_SESSIONS as f64), interrupt)?;
        let r = &outcome.report;
        let profile = hist_profile(&r.rtt).figures();
        let mut latency: Vec<Figure> = profile
            .iter()
            .cloned()
            .map(|f| {
                let metric = f.metric.clone();
                f.beside(&reference, &metric)
            })
            .collect();
        // The same percentiles beside bare TLS paced at this point's rate.
        for f in profile {
            if matches!(f.metric.as_str(), "latency_p50" | "latency_p99") {
                let metric = f.metric.clone();
                let mut paced_figure = f.beside(&paced, &metric);
                paced_figure.metric = format!("{metric}_paced");
                latency.push(paced_figure);
            }
        }
        references.push(paced);
        latency.append(&mut figures);
        let mut figures = latency;
        figures.push(fig(
            "round_trip_rate",
            "round trips/s",
            r.traffic.down.packets_per_s,
            Better::Neither,
        ));
        if let Some(l) = &r.loss.round_trip {
            figures.push(fig("loss", "ratio", l.ratio, Better::Neither));
        }
        if r.traffic.up.packets > 0 {
            // A point whose load generator fell behind its pace measured
            // the load generator's catch-up bursts too.
            let late = r.traffic.late_sends as f64 / r.traffic.up.packets as f64;
            figures.push(fig("sent_late", "ratio", late, Better::Lower));
        }
        let mut params = Params::new();
        match share {
            Some(share) => params.insert("rate_of_max".into(), format!("{share}")),
            None => params.insert("fixed_rate".into(), format!("{rate:.0}")),
        };
        params.insert("max_round_trip_rate".into(), format!("{max:.0}"));
        let result = round_trip_result(&name, &outcome, figures, params, &options.topology);
        print(&render(&result));
        results.push(result);
    }
    Ok(Outcome {
        results,
        references,
        series: Vec::new(),
    })
}

/// Session setup rate and its server cost, over the ramp.
fn setup(
    bed: &mut Testbed,
    options: &BenchOptions,
    interrupt: &AtomicBool,
    print: &mut dyn FnMut(&str),
) -> Result<Outcome, ScenarioError> {
    let reference = handshakes(bed, options, print)?;
    let shaped = handshake_exchanges(bed, options, print)?;
    let (outcome, mut figures) = load_checked(bed, &setup_spec(options), interrupt)?;
    let r = &outcome.report;
    let ramp = outcome.ramp();
    let established = r.sessions.established;
    let rate = per_second(established, r.timing.ramp_s);
    let mut all =
        vec![fig("setup_rate", "sessions/s", rate, Better::Higher)
            .beside(&reference, "handshake_rate")];
    let usage = server_usage(&outcome, ramp, 0, established);
    all.extend(cpu_per_1000_sessions(
        "server_cpu_per_1000_sessions",
        usage.as_ref(),
        &reference,
    ));
    // The same two figures beside the reference with the setup's round
    // trips: what sstpd adds to what any server of this protocol pays.
    all.push(
        fig("setup_rate_shaped", "sessions/s", rate, Better::Higher)
            .beside(&shaped, "handshake_rate"),
    );
    all.extend(cpu_per_1000_sessions(
        "server_cpu_per_1000_sessions_shaped",
        usage.as_ref(),
        &shaped,
    ));
    all.push(fig(
        "setup_latency_p50",
        "us",
        r.setup.total.p50_us as f64,
        Better::Lower,
    ));
    all.push(fig(
        "setup_latency_p99",
        "us",
        r.setup.total.p99_us as f64,
        Better::Lower,
    ));
    all.append(&mut figures);
    let mut params = base_params(r, &options.topology, outcome.local);
    params.insert(
        "setup_concurrency".into(),
        r.config.setup_concurrency.to_string(),
    );
    params.insert("ramp_s".into(), format!("{:.2}", r.timing.ramp_s));
    cpu_context(&outcome, ramp, &options.topology, &mut all, &mut params);
    let result = ScenarioResult {
        name: "setup".into(),
        params,
        figures: all,
        server: usage,
        latency: None,
    };
    Ok(Outcome::single(result, vec![reference, shaped], print))
}

/// The load of the setup scenarios: `--setup-sessions` sessions set up
/// with `--concurrency` in flight, held half a second, closed.
pub(crate) fn setup_spec(options: &BenchOptions) -> LoadSpec {
    let mut spec = LoadSpec::new(
        Mode::Idle,
        options.setup_sessions,
        Duration::from_millis(500),
    );
    spec.setup_concurrency = Some(options.concurrency);
    spec
}

/// A result of the latency scenario's UDP round trips: `extra` params on
/// top of the common ones, the server's CPU, and the round-trip profile.
fn round_trip_result(
    name: &str,
    outcome: &LoadOutcome,
    mut figures: Vec<Figure>,
    extra: Params,
    topology: &Topology,
) -> ScenarioResult {
    let r = &outcome.report;
    let window = outcome.window();
    let mut params = base_params(r, topology, outcome.local);
    params.insert("payload".into(), SMALL_PAYLOAD.to_string());
    params.extend(extra);
    cpu_context(outcome, window, topology, &mut figures, &mut params);
    let usage = server_usage(
        outcome,
        window,
        r.traffic.up.bytes + r.traffic.down.bytes,
        0,
    );
    ScenarioResult {
        name: name.into(),
        params,
        figures,
        server: usage,
        latency: Some(hist_profile(&r.rtt)),
    }
}

/// The server's CPU seconds per 1,000 sessions set up, as `metric`,
/// beside the reference server's per 1,000 handshakes.
fn cpu_per_1000_sessions(
    metric: &str,
    usage: Option<&ServerUsage>,
    reference: &ReferenceResult,
) -> Option<Figure> {
    let per_1000 = usage?.cpu_s_per_1000_sessions?;
    Some(
        fig(metric, "s/1000 sessions", per_1000, Better::Lower)
            .beside(reference, "server_cpu_per_1000"),
    )
}

/// Many idle sessions: what they cost the server in memory and CPU.
fn idle(
    bed: &mut Testbed,
    options: &BenchOptions,
    interrupt: &AtomicBool,
    print: &mut dyn FnMut(&str),
) -> Result<Outcome, ScenarioError> {
    let before = match bed.server() {
        Some(server) => Some(server.sample()?),
        None => None,
    };
    let mut spec = LoadSpec::new(Mode::Idle, options.idle_sessions, options.duration);
    spec.setup_concurrency = Some(options.concurrency);
    print(&format!(
        "  {} sessions coming up, then held for {:.0} s ...",
        options.idle_sessions,
        options.duration.as_secs_f64()
    ));
    let (outcome, mut figures) = load_checked(bed, &spec, interrupt)?;
    let r = &outcome.report;
    figures.insert(
        0,
        fig(
            "sessions_held",
            "sessions",
            r.sessions.held as f64,
            Better::Higher,
        ),
    );
    let window = outcome.window();
    let middle = (window.0 + window.1) / 2.0;
    if let (Some(before), Some(held)) = (before, outcome.server_rss_near(middle)) {
        figures.push(fig("server_rss_held", "B", held as f64, Better::Lower));
        if r.sessions.held > 0 {
            let per = held.saturating_sub(before.rss_bytes) as f64 / r.sessions.held as f64;
            figures.push(fig("server_rss_per_session", "B", per, Better::Lower));
        }
        figures.push(fig(
            "server_rss_empty",
            "B",
            before.rss_bytes as f64,
            Better::Neither,
        ));
        if let Some(after) = rss_once_empty(bed, interrupt)? {
            figures.push(fig(
                "server_rss_after_close",
                "B",
                after as f64,
                Better::Lower,
            ));
        }
    }
    let mut params = base_params(r, &options.topology, outcome.local);
    params.insert("ramp_s".into(), format!("{:.2}", r.timing.ramp_s));
    let usage = server_usage(&outcome, window, 0, 0);
    cpu_context(
        &outcome,
        window,
        &options.topology,
        &mut figures,
        &mut params,
    );
    // Nothing limits an idle hold.
    params.remove("limited_by");
    let result = ScenarioResult {
        name: "idle".into(),
        params,
        figures,
        server: usage,
        latency: None,
    };
    Ok(Outcome::single(result, Vec::new(), print))
}

/// How long after its last session ended the server's RSS is sampled: a
/// worker gives freed memory back within 2 s of its sessions ending
/// (`worker::return_freed_memory`).
const MEMORY_RETURN_WAIT: Duration = Duration::from_secs(3);

/// The local server's RSS once every session has ended and its workers
/// have given the freed memory back (`None` without a local server).
fn rss_once_empty(bed: &Testbed, interrupt: &AtomicBool) -> Result<Option<u64>, ScenarioError> {
    if bed.server().is_none() {
        return Ok(None);
    }
    wait_for_active(
        bed,
        None,
        STORM_WAIT,
        interrupt,
        "the server emptied",
        |a| a == 0,
    )?;
    std::thread::sleep(MEMORY_RETURN_WAIT);
    Ok(bed
        .server()
        .map(SstpdProcess::sample)
        .transpose()?
        .map(|s| s.rss_bytes))
}

/// Connect and disconnect in concurrent loops.
fn churn(
    bed: &mut Testbed,
    options: &BenchOptions,
    interrupt: &AtomicBool,
    print: &mut dyn FnMut(&str),
) -> Result<Outcome, ScenarioError> {
    let reference = handshakes(bed, options, print)?;
    let before = match bed.server() {
        Some(server) => Some(server.sample()?),
        None => None,
    };
    let spec = LoadSpec::new(
        Mode::Churn {
            hold: Duration::ZERO,
        },
        options.concurrency as u64,
        options.duration,
    );
    let (outcome, mut figures) = load_checked(bed, &spec, interrupt)?;
    let r = &outcome.report;
    let whole = outcome.whole();
    let mut all = vec![fig(
        "cycles_per_s",
        "cycles/s",
        r.churn.cycles_per_s,
        Better::Higher,
    )
    .beside(&reference, "handshake_rate")];
    let usage = server_usage(&outcome, whole, 0, r.sessions.established);
    all.extend(cpu_per_1000_sessions(
        "server_cpu_per_1000_sessions",
        usage.as_ref(),
        &reference,
    ));
    if let (Some(before), Some(after)) = (before, outcome.server_last()) {
        figures.push(fig(
            "server_rss_growth",
            "B",
            after.rss_bytes as f64 - before.rss_bytes as f64,
            Better::Neither,
        ));
    }
    all.push(fig(
        "teardown_latency_p50",
        "us",
        r.teardown.p50_us as f64,
        Better::Neither,
    ));
    all.append(&mut figures);
    let mut params = base_params(r, &options.topology, outcome.local);
    params.insert("cycles".into(), r.churn.cycles.to_string());
    cpu_context(&outcome, whole, &options.topology, &mut all, &mut params);
    let result = ScenarioResult {
        name: "churn".into(),
        params,
        figures: all,
        server: usage,
        latency: None,
    };
    Ok(Outcome::single(result, vec![reference], print))
}

/// How long the storm scenario waits for the server to see a number of
/// sessions (all up, or all gone), beyond the setup's own bound.
const STORM_WAIT: Duration = Duration::from_secs(60);

/// The server's active sessions, through its control socket.
fn active_sessions(bed: &Testbed) -> Result<i64, ScenarioError> {
    let server = bed
        .server()
        .ok_or_else(|| ScenarioError::Setup("no local sstpd".into()))?;
    Ok(server
        .stats()?
        .gauges
        .get("sessions_active")
        .copied()
        .unwrap_or_default())
}

/// Waits (at most `bound`) until `done` holds for the server's active
/// sessions; a run in `child` that exits first is an error.
fn wait_for_active(
    bed: &Testbed,
    mut child: Option<&mut LoadChild>,
    bound: Duration,
    interrupt: &AtomicBool,
    what: &str,
    done: impl Fn(i64) -> bool,
) -> Result<(), ScenarioError> {
    let deadline = Instant::now() + bound;
    loop {
        let active = active_sessions(bed)?;
        if done(active) {
            return Ok(());
        }
        if interrupt.load(Ordering::Acquire) {
            return Err(ScenarioError::Interrupted);
        }
        if let Some(child) = child.as_deref_mut() {
            if let Some(status) = child.try_wait()? {
                return Err(ScenarioError::Loadgen(format!(
                    "sstp-loadgen exited ({status}) before {what}:\n{}",
                    child.log_tail(20)
                )));
            }
        }
        if Instant::now() >= deadline {
            return Err(ScenarioError::Loadgen(format!(
                "{what} did not happen within {:.0} s ({active} sessions active)",
                bound.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A reconnect storm: `--idle-sessions` sessions held, the load generator
/// killed with SIGKILL (every socket closes at once, no Call Disconnect:
/// what a client-side outage looks like to the server), and a new load
/// generator setting them all up again at once.
fn storm(
    bed: &mut Testbed,
    options: &BenchOptions,
    interrupt: &AtomicBool,
    print: &mut dyn FnMut(&str),
) -> Result<Outcome, ScenarioError> {
    let Some(server) = bed.server() else {
        return Err(ScenarioError::Setup(
            "storm needs a local sstpd: it reads the server's sessions through its control socket"
                .into(),
        ));
    };
    let empty = server.sample()?;
    let reference = handshakes(bed, options, print)?;
    let n = options.idle_sessions;
    print(&format!("  {n} sessions coming up ..."));
    let mut hold = LoadSpec::new(Mode::Idle, n, STORM_WAIT * 10);
    hold.setup_concurrency = Some(options.concurrency);
    let bound = hold.deadline();
    let mut first = bed.start_load(&hold)?;
    wait_for_active(
        bed,
        Some(&mut first),
        bound,
        interrupt,
        "all sessions came up",
        |a| a >= n as i64,
    )?;
    let held = bed.server().map(SstpdProcess::sample).transpose()?;
    first.kill()?;
    print("  the load generator killed; a new one sets them all up again ...");
    let mut again = LoadSpec::new(Mode::Idle, n, Duration::from_secs(1));
    again.setup_concurrency = Some(options.concurrency);
    let (outcome, mut figures) = load_checked(bed, &again, interrupt)?;
    // Its own sessions ended with its run: the server must come back to
    // empty, with nothing left of either generation.
    let after = rss_once_empty(bed, interrupt)?;
    let r = &outcome.report;
    let mut all = vec![
        fig("sessions_dropped", "sessions", n as f64, Better::Neither),
        fig("recovery_s", "s", r.timing.ramp_s, Better::Lower),
        fig(
            "reconnect_rate",
            "sessions/s",
            per_second(r.sessions.established, r.timing.ramp_s),
            Better::Higher,
        )
        .beside(&reference, "handshake_rate"),
        fig(
            "reconnected",
            "sessions",
            r.sessions.established as f64,
            Better::Higher,
        ),
    ];
    all.append(&mut figures);
    if let (Some(held), Some(after)) = (held, after) {
        all.push(fig(
            "server_rss_held",
            "B",
            held.rss_bytes as f64,
            Better::Neither,
        ));
        all.push(fig("server_rss_after", "B", after as f64, Better::Neither));
        // What the storm left beyond holding the sessions once: the
        // dropped generation must be gone entirely.
        all.push(fig(
            "server_rss_growth",
            "B",
            after as f64 - held.rss_bytes as f64,
            Better::Lower,
        ));
        all.push(fig(
            "server_rss_empty",
            "B",
            empty.rss_bytes as f64,
            Better::Neither,
        ));
    }
    let ramp = outcome.ramp();
    let usage = server_usage(&outcome, ramp, 0, r.sessions.established);
    let mut params = base_params(r, &options.topology, outcome.local);
    cpu_context(&outcome, ramp, &options.topology, &mut all, &mut params);
    let result = ScenarioResult {
        name: "storm".into(),
        params,
        figures: all,
        server: usage,
        latency: None,
    };
    Ok(Outcome::single(result, vec![reference], print))
}

// -------------------------------------------------------------- display

/// A scenario's figures as a short table: value, the reference beside it
/// and the ratio; then who used the CPU.
pub fn render(result: &ScenarioResult) -> String {
    let mut rows = vec![vec![
        format!("  {}", result.name),
        String::new(),
        "same-run reference".to_string(),
        "ratio".to_string(),
    ]];
    let mut cores = Vec::new();
    for f in &result.figures {
        if f.unit == "cores" {
            cores.push(format!(
                "{} {}",
                f.metric.trim_end_matches("_cores"),
                crate::units::significant(f.value)
            ));
            continue;
        }
        if f.metric == "server_kernel_share" {
            continue;
        }
        let (reference, r) = match &f.reference {
            Some(r) => (
                format!("{} {}", r.name, quantity(r.value, &f.unit)),
                ratio(r.ratio),
            ),
            None => (String::new(), String::new()),
        };
        rows.push(vec![
            format!("    {}", f.metric),
            quantity(f.value, &f.unit),
            reference,
            r,
        ]);
    }
    let mut out = crate::table::render(&rows, |i| i == 1 || i == 3);
    if !cores.is_empty() {
        let kernel = result
            .figures
            .iter()
            .find(|f| f.metric == "server_kernel_share")
            .map(|f| format!(" (sstpd {:.0}% in the kernel)", f.value * 100.0))
            .unwrap_or_default();
        let _ = writeln!(out, "    CPU cores used: {}{kernel}", cores.join(", "));
    }
    if let Some(failures) = result.params.get("failures") {
        let _ = writeln!(out, "    failures: {failures}");
    }
    if let Some(limit) = result.params.get("limited_by") {
        let _ = writeln!(out, "    limited by: {}", describe_limit(limit));
    }
    out.trim_end().to_owned()
}

fn describe_limit(label: &str) -> String {
    use super::testbed::Limit;
    [
        Limit::Server,
        Limit::Loadgen,
        Limit::Peer,
        Limit::Radius,
        Limit::Machine,
        Limit::NotCpu,
        Limit::ServerOrNetwork,
    ]
    .into_iter()
    .find(|l| l.as_str() == label)
    .map_or_else(|| label.to_owned(), |l| l.describe().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downstream_records_are_packet_plus_sstp_and_ppp_headers() {
        assert_eq!(downstream_record(BULK_PAYLOAD), 1408);
        assert_eq!(downstream_record(SMALL_PAYLOAD), 100);
    }

    #[test]
    fn scenario_names_are_unique_and_grouped() {
        let mut names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len());
        let groups: Vec<&str> = SCENARIOS.iter().map(|s| s.group).collect();
        for group in [
            "bulk",
            "tcp",
            "pps",
            "latency",
            "setup",
            "idle",
            "churn",
            "setup_radius",
        ] {
            assert!(groups.contains(&group), "{group}");
        }
    }

    #[test]
    fn failures_are_summarized_most_frequent_first_with_an_example() {
        let mut sessions = Sessions {
            attempted: 10,
            established: 6,
            failed: 3,
            dropped: 1,
            held: 5,
            closed: 0,
            close_timeouts: 0,
            failure_reasons: Default::default(),
            failure_examples: Default::default(),
            drop_reasons: Default::default(),
        };
        assert_eq!(failure_summary(&sessions), None);
        sessions.failure_reasons.insert("tcp_connect".into(), 1);
        sessions.failure_reasons.insert("tls".into(), 2);
        sessions
            .failure_examples
            .insert("tls".into(), "handshake timed out".into());
        sessions.drop_reasons.insert("peer_abort".into(), 1);
        assert_eq!(
            failure_summary(&sessions).as_deref(),
            Some("tls ×2 (handshake timed out); peer_abort ×1; tcp_connect ×1")
        );
    }

    #[test]
    fn the_pool_grows_with_the_sessions() {
        assert_eq!(pool_for(4000), ("10.99.0.0/20", 4093));
        assert_eq!(pool_for(4001).0, "10.99.0.0/16");
        assert_eq!(pool_for(100_000), ("10.98.0.0/15", 131_069));
    }

    #[test]
    fn a_histogram_summary_becomes_a_profile_with_the_judged_percentiles() {
        let h = HistSummary {
            count: 100,
            min_us: 10,
            mean_us: 20.5,
            p50_us: 19,
            p90_us: 30,
            p99_us: 45,
            p99_9_us: 60,
            max_us: 70,
            sum_ns: 2_050_000,
        };
        let p = hist_profile(&h);
        assert_eq!(p.samples, 100);
        assert_eq!(p.at(50.0), Some(19.0));
        assert_eq!(p.at(99.9), Some(60.0));
        let names: Vec<String> = p.figures().into_iter().map(|f| f.metric).collect();
        assert_eq!(
            names,
            ["latency_p50", "latency_p90", "latency_p99", "latency_p999"]
        );
    }

    #[test]
    fn a_result_renders_with_reference_ratio_and_cpu() {
        let reference = ReferenceResult {
            name: "tls_stream_16384".into(),
            params: Params::new(),
            figures: vec![fig("throughput", "Gbit/s", 6.0, Better::Higher)],
            latency: None,
        };
        let mut params = Params::new();
        params.insert("limited_by".into(), "sstpd".into());
        let result = ScenarioResult {
            name: "bulk_up_1".into(),
            params,
            figures: vec![
                fig("throughput", "Gbit/s", 2.0, Better::Higher).beside(&reference, "throughput"),
                fig("server_cores", "cores", 0.98, Better::Neither),
                fig("loadgen_cores", "cores", 0.5, Better::Neither),
                fig("server_kernel_share", "ratio", 0.6, Better::Neither),
            ],
            server: None,
            latency: None,
        };
        let text = render(&result);
        assert_eq!(
            text,
            "  bulk_up_1                  same-run reference            ratio\n\
             \x20   throughput  2.00 Gbit/s  tls_stream_16384 6.00 Gbit/s   0.33\n\
             \x20   CPU cores used: server 0.980, loadgen 0.500 (sstpd 60% in the kernel)\n\
             \x20   limited by: sstpd (its worker cores were busy)"
        );
    }
}
