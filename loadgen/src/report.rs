//! The result of a run: [`Report`] is what `--json` writes (schema
//! [`SCHEMA`], version [`SCHEMA_VERSION`]; every field is documented in
//! docs/loadgen.md) and what the final table shows.
//!
//! Units are in the field names: `_us` microseconds, `_ns` nanoseconds,
//! `_s` seconds, `_per_s` per second, `gbit_per_s` 10^9 bits per second.
//! Bytes are IP bytes: the packets carried inside the tunnel, headers
//! included (not TLS or TCP overhead).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use sstpd::proto::auth::AuthProtocol;

use crate::config::{LoadConfig, Mode};
use crate::stats::{Counters, Histo, IpFamily, WorkerStats};

/// Identifies the JSON document.
pub const SCHEMA: &str = "sstp-loadgen/report";
/// Bumped on any incompatible change (a field removed, renamed or
/// retyped); new fields may appear within a version.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub schema_version: u32,
    pub tool: Tool,
    pub mode: String,
    pub config: ReportConfig,
    pub timing: Timing,
    pub sessions: Sessions,
    pub setup: Setup,
    /// Graceful closes: from our close until the session ended.
    pub teardown: HistSummary,
    pub churn: Churn,
    pub traffic: Traffic,
    pub loss: Loss,
    pub rtt: HistSummary,
    pub peer: PeerFigures,
    pub cpu: Cpu,
    pub failures: Failures,
    /// Tun mode: the devices and what crossed them (null in other modes).
    #[serde(default)]
    pub tun: Option<TunFigures>,
    /// Echo, udp and bulk: `traffic`, `loss`, `rtt` and `peer` again for
    /// each IP version that ran (`ipv4`, `ipv6`); the top-level figures
    /// are their sums.
    #[serde(default)]
    pub families: BTreeMap<String, FamilyFigures>,
    /// `--reconnect`: sessions lost and re-established (null without it).
    #[serde(default)]
    pub reconnect: Option<ReconnectFigures>,
}

/// What `--reconnect` did. Every loss is either `reconnected` or
/// `unrecovered`; the attempts' setups are also in `sessions` and `setup`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReconnectFigures {
    /// `--reconnect-delay`, `--reconnect-max-delay` and the jitter's seed.
    pub delay_s: f64,
    pub max_delay_s: f64,
    pub seed: u64,
    /// Sessions that ended unexpectedly (a session lost twice counts twice).
    pub lost: u64,
    pub reconnected: u64,
    pub attempts: u64,
    pub failed_attempts: u64,
    /// Still down when the run ended.
    pub unrecovered: u64,
    /// Losses by cause: `transport_closed` (TCP reset or EOF, TLS error),
    /// `call_disconnect`, `call_abort`, `lcp_terminate`, `echo_timeout`,
    /// `hello_timeout`, ...
    pub causes: BTreeMap<String, u64>,
    /// From each loss until its session was up again.
    pub recovery: HistSummary,
    /// From the first loss until every lost session was back (null when
    /// nothing was lost or some never came back).
    pub all_back_after_s: Option<f64>,
}

/// The figures of one IP version's traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FamilyFigures {
    pub traffic: Traffic,
    pub loss: Loss,
    pub rtt: HistSummary,
    pub peer: PeerFigures,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportConfig {
    pub target: String,
    pub server_name: String,
    pub sessions: u64,
    pub rate_per_s: Option<f64>,
    pub setup_concurrency: u64,
    pub duration_s: f64,
    pub workers: u64,
    pub payload: u64,
    pub pps: f64,
    pub to: Option<String>,
    pub direction: Option<String>,
    pub reflect: Option<bool>,
    /// bulk: whether the peer's rate followed what arrived (`--follow`).
    #[serde(default)]
    pub follow: Option<bool>,
    pub hold_s: Option<f64>,
    pub source_range: Option<String>,
    pub auth: Vec<String>,
    pub setup_timeout_s: f64,
    pub max_failures: Option<String>,
    /// `4`, `6` or `both`: the IP versions of the traffic.
    #[serde(default)]
    pub family: String,
    /// The IPv6 destination, when given.
    #[serde(default)]
    pub to6: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Wall clock at the start, seconds since the Unix epoch.
    pub started_unix_s: f64,
    /// From the start until every setup had finished.
    pub ramp_s: f64,
    /// The traffic (or hold) window the rates are computed over.
    pub window_s: f64,
    pub total_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sessions {
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    pub dropped: u64,
    pub held: u64,
    pub closed: u64,
    pub close_timeouts: u64,
    pub failure_reasons: BTreeMap<String, u64>,
    /// The first error message seen for each failure reason.
    pub failure_examples: BTreeMap<String, String>,
    pub drop_reasons: BTreeMap<String, u64>,
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistSummary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p99_9_us: u64,
    pub max_us: u64,
    /// Exact sum of the recorded values, nanoseconds.
    pub sum_ns: u64,
}

impl HistSummary {
    pub fn of(h: &Histo) -> HistSummary {
        let hist = &h.hist;
        if hist.is_empty() {
            return EMPTY;
        }
        HistSummary {
            count: hist.len(),
            min_us: hist.min(),
            mean_us: round3(h.sum_ns as f64 / hist.len() as f64 / 1000.0),
            p50_us: hist.value_at_quantile(0.50),
            p90_us: hist.value_at_quantile(0.90),
            p99_us: hist.value_at_quantile(0.99),
            p99_9_us: hist.value_at_quantile(0.999),
            max_us: hist.max(),
            sum_ns: u64::try_from(h.sum_ns).unwrap_or(u64::MAX),
        }
    }
}

/// An empty histogram's summary.
const EMPTY: HistSummary = HistSummary {
    count: 0,
    min_us: 0,
    mean_us: 0.0,
    p50_us: 0,
    p90_us: 0,
    p99_us: 0,
    p99_9_us: 0,
    max_us: 0,
    sum_ns: 0,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    pub tcp: HistSummary,
    pub tls: HistSummary,
    pub http: HistSummary,
    pub sstp: HistSummary,
    pub ppp_auth: HistSummary,
    pub network: HistSummary,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// Sessions established per second (over the ramp; churn: over the run).
    pub per_s: f64,
    pub total: HistSummary,
    pub phases: Phases,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Churn {
    pub cycles: u64,
    pub cycles_per_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowFigures {
    pub packets: u64,
    pub bytes: u64,
    pub packets_per_s: f64,
    pub gbit_per_s: f64,
}

impl FlowFigures {
    fn new(packets: u64, bytes: u64, window: Duration) -> FlowFigures {
        let s = window.as_secs_f64();
        let rate = |v: f64| if s > 0.0 { v / s } else { 0.0 };
        FlowFigures {
            packets,
            bytes,
            packets_per_s: round3(rate(packets as f64)),
            gbit_per_s: round6(rate(bytes as f64 * 8.0) / 1e9),
        }
    }
}

/// One session's TUN device in tun mode: bind to `address` to send
/// through this tunnel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunnel {
    pub session: u64,
    pub ifname: String,
    /// The address IPCP assigned (the device's, /32).
    pub address: String,
    /// The server's end of the link.
    pub gateway: String,
    pub mtu: u32,
    /// The IPv6 address formed by SLAAC (a /64 on the device), with IPv6.
    #[serde(default)]
    pub address6: Option<String>,
    /// The device's segmentation offload (`tso`, `tso+uso`), or none.
    #[serde(default)]
    pub offload: Option<String>,
}

/// Tun mode: the devices (by session) and the packets they dropped.
/// Packets and bytes through them are in `traffic` (up: read from the
/// devices and sent; down: received and written to them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TunFigures {
    pub tunnels: Vec<Tunnel>,
    /// Read from a device, refused by the session.
    pub up_dropped: u64,
    /// From the server, dropped because the queue to the device was full.
    pub down_dropped: u64,
    pub read_errors: u64,
    pub write_errors: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Traffic {
    pub up: FlowFigures,
    pub down: FlowFigures,
    pub probes_sent: u64,
    pub probes_answered: u64,
    pub reordered: u64,
    pub foreign: u64,
    pub payload_mismatches: u64,
    pub backpressure_waits: u64,
    /// Paced packets sent a whole period or more late ([`Counters::late_sends`]).
    #[serde(default)]
    pub late_sends: u64,
    pub send_errors: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossFigures {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub ratio: f64,
}

impl LossFigures {
    fn new(sent: u64, received: u64) -> LossFigures {
        let lost = sent.saturating_sub(received);
        LossFigures {
            sent,
            received,
            lost,
            ratio: if sent == 0 {
                0.0
            } else {
                round6(lost as f64 / sent as f64)
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    /// Probes and their replies (echo; udp with a reflector).
    pub round_trip: Option<LossFigures>,
    /// Sent by us, counted by the peer (udp, bulk up).
    pub up: Option<LossFigures>,
    /// Sent by the peer, received by us (bulk down).
    pub down: Option<LossFigures>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerFigures {
    pub queried_flows: u64,
    pub answered_flows: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub streams_unanswered: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    /// CPU time of the worker threads within the window.
    pub workers_s: f64,
    /// The whole process over the whole run (user and system).
    pub process_user_s: f64,
    pub process_system_s: f64,
    /// `workers_s` per 10^9 bytes moved (up plus down) in the window.
    pub per_gb_s: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failures {
    /// Failed setups plus dropped sessions.
    pub count: u64,
    pub limit: Option<String>,
    pub exceeded: bool,
}

/// Run-level facts the workers do not know.
#[derive(Clone, Copy, Debug)]
pub struct RunTiming {
    pub started_unix_s: f64,
    pub ramp: Duration,
    pub window: Duration,
    pub total: Duration,
    pub process_cpu: (Duration, Duration),
}

impl FamilyFigures {
    /// Traffic, loss, round trips and peer figures from counters.
    fn build(config: &LoadConfig, c: &Counters, rtt: &Histo, window: Duration) -> FamilyFigures {
        let peer_complete = c.peer_queried > 0 && c.peer_answered == c.peer_queried;
        let round_trip = match &config.mode {
            Mode::Echo { .. } | Mode::Udp { reflect: true, .. } => {
                Some(LossFigures::new(c.probes_sent, c.probes_answered))
            }
            _ => None,
        };
        let (measures_up, measures_down) = match &config.mode {
            Mode::Udp { .. } => (true, false),
            Mode::Bulk { direction, .. } => (direction.up(), direction.down()),
            _ => (false, false),
        };
        let up = (measures_up && peer_complete)
            .then(|| LossFigures::new(c.peer_flow_up_sent, c.peer_rx_packets));
        let down = (measures_down && peer_complete)
            .then(|| LossFigures::new(c.peer_tx_packets, c.peer_flow_down_received));
        FamilyFigures {
            traffic: Traffic {
                up: FlowFigures::new(c.up_packets, c.up_bytes, window),
                down: FlowFigures::new(c.down_packets, c.down_bytes, window),
                probes_sent: c.probes_sent,
                probes_answered: c.probes_answered,
                reordered: c.reordered,
                foreign: c.foreign,
                payload_mismatches: c.payload_mismatches,
                backpressure_waits: c.backpressure_waits,
                late_sends: c.late_sends,
                send_errors: c.send_errors,
            },
            loss: Loss {
                round_trip,
                up,
                down,
            },
            rtt: HistSummary::of(rtt),
            peer: PeerFigures {
                queried_flows: c.peer_queried,
                answered_flows: c.peer_answered,
                rx_packets: c.peer_rx_packets,
                rx_bytes: c.peer_rx_bytes,
                tx_packets: c.peer_tx_packets,
                tx_bytes: c.peer_tx_bytes,
                streams_unanswered: c.streams_unanswered,
            },
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

impl Report {
    pub fn build(config: &LoadConfig, stats: &WorkerStats, t: RunTiming) -> Report {
        let c = &stats.counters;
        let (to, direction, reflect, follow, hold) = match &config.mode {
            Mode::Echo { to } => (to.map(|a| a.to_string()), None, None, None, None),
            Mode::Udp { to, reflect, .. } => {
                (to.map(|a| a.to_string()), None, Some(*reflect), None, None)
            }
            Mode::Bulk {
                to,
                direction,
                follow,
                ..
            } => (
                to.map(|a| a.to_string()),
                Some(direction.as_str().to_string()),
                None,
                Some(*follow),
                None,
            ),
            Mode::Idle | Mode::Tun { .. } => (None, None, None, None, None),
            Mode::Churn { hold } => (None, None, None, None, Some(hold.as_secs_f64())),
        };
        let totals = FamilyFigures::build(config, c, &stats.rtt, t.window);
        let families = if config.mode.has_traffic() {
            IpFamily::ALL
                .into_iter()
                .filter(|f| match f {
                    IpFamily::V4 => config.family.v4(),
                    IpFamily::V6 => config.family.v6(),
                })
                .map(|f| {
                    let s = &stats.families[f.index()];
                    let figures = FamilyFigures::build(config, &s.counters, &s.rtt, t.window);
                    (f.label().to_string(), figures)
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        let moved = c.up_bytes + c.down_bytes;
        let setup_span = match config.mode {
            Mode::Churn { .. } => t.total,
            _ => t.ramp,
        };
        let failures = c.failed + c.dropped;
        let tun = matches!(config.mode, Mode::Tun { .. }).then(|| {
            let mut tunnels = stats.tunnels.clone();
            tunnels.sort_by_key(|t| t.session);
            TunFigures {
                tunnels,
                up_dropped: c.tun_up_dropped,
                down_dropped: c.tun_down_dropped,
                read_errors: c.tun_read_errors,
                write_errors: c.tun_write_errors,
            }
        });
        Report {
            schema: SCHEMA.into(),
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: "sstp-loadgen".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            mode: config.mode.name().into(),
            config: ReportConfig {
                target: config.target.to_string(),
                server_name: config.server_name.clone(),
                sessions: config.sessions,
                rate_per_s: config.rate,
                setup_concurrency: config.setup_concurrency as u64,
                duration_s: config.duration.as_secs_f64(),
                workers: config.workers as u64,
                payload: config.payload() as u64,
                pps: config.pps(),
                to,
                direction,
                reflect,
                follow,
                hold_s: hold,
                source_range: config.source_range.map(|r| r.to_string()),
                auth: config
                    .auth
                    .iter()
                    .map(|a| match a {
                        AuthProtocol::EapMsChapV2 => config.eap_peer.as_str().into(),
                        a => a.as_str().to_string(),
                    })
                    .collect(),
                setup_timeout_s: config.setup_timeout.as_secs_f64(),
                max_failures: config.max_failures.map(|l| l.to_string()),
                family: config.family.as_str().to_string(),
                to6: config.to6.map(|a| a.to_string()),
            },
            timing: Timing {
                started_unix_s: round3(t.started_unix_s),
                ramp_s: round6(t.ramp.as_secs_f64()),
                window_s: round6(t.window.as_secs_f64()),
                total_s: round6(t.total.as_secs_f64()),
            },
            sessions: Sessions {
                attempted: c.attempted,
                established: c.established,
                failed: c.failed,
                dropped: c.dropped,
                held: c.held,
                closed: c.closed,
                close_timeouts: c.close_timeouts,
                failure_reasons: stats.failure_reasons.clone(),
                failure_examples: stats.failure_examples.clone(),
                drop_reasons: stats.drop_reasons.clone(),
            },
            setup: Setup {
                per_s: round3(per_second(c.established, setup_span)),
                total: HistSummary::of(&stats.setup.total),
                phases: Phases {
                    tcp: HistSummary::of(&stats.setup.tcp),
                    tls: HistSummary::of(&stats.setup.tls),
                    http: HistSummary::of(&stats.setup.http),
                    sstp: HistSummary::of(&stats.setup.sstp),
                    ppp_auth: HistSummary::of(&stats.setup.ppp_auth),
                    network: HistSummary::of(&stats.setup.network),
                },
            },
            teardown: HistSummary::of(&stats.teardown),
            churn: Churn {
                cycles: c.cycles,
                cycles_per_s: round3(per_second(c.cycles, t.total)),
            },
            traffic: totals.traffic,
            loss: totals.loss,
            rtt: totals.rtt,
            peer: totals.peer,
            cpu: Cpu {
                workers_s: round6(stats.cpu.as_secs_f64()),
                process_user_s: round6(t.process_cpu.0.as_secs_f64()),
                process_system_s: round6(t.process_cpu.1.as_secs_f64()),
                per_gb_s: (moved > 0)
                    .then(|| round6(stats.cpu.as_secs_f64() / (moved as f64 / 1e9))),
            },
            failures: Failures {
                count: failures,
                limit: config.max_failures.map(|l| l.to_string()),
                exceeded: config
                    .max_failures
                    .is_some_and(|l| l.exceeded(failures, c.attempted)),
            },
            tun,
            families,
            reconnect: config.reconnect.map(|policy| {
                let r = &stats.reconnect;
                ReconnectFigures {
                    delay_s: policy.initial.as_secs_f64(),
                    max_delay_s: policy.max.as_secs_f64(),
                    seed: policy.seed,
                    lost: r.lost,
                    reconnected: r.reconnected,
                    attempts: r.attempts,
                    failed_attempts: r.failed_attempts,
                    unrecovered: r.unrecovered,
                    causes: r.causes.clone(),
                    recovery: HistSummary::of(&r.recovery),
                    all_back_after_s: r.all_back_after().map(|d| round6(d.as_secs_f64())),
                }
            }),
        }
    }

    /// Whether the run failed: too many failures, nothing worked, or a
    /// payload arrived altered.
    pub fn failed(&self) -> bool {
        self.failures.exceeded
            || (self.sessions.attempted > 0 && self.sessions.established == 0)
            || self.traffic.payload_mismatches > 0
    }

    /// The final human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let s = &self.sessions;
        let _ = writeln!(
            out,
            "sstp-loadgen {} {} -> {}: {} sessions, {} worker{}, window {:.2}s (ramp {:.2}s, total {:.2}s)",
            self.tool.version,
            self.mode,
            self.config.target,
            self.config.sessions,
            self.config.workers,
            if self.config.workers == 1 { "" } else { "s" },
            self.timing.window_s,
            self.timing.ramp_s,
            self.timing.total_s
        );
        let _ = writeln!(
            out,
            "sessions   attempted {}  established {}  failed {}  dropped {}  held {}  closed {}  close timeouts {}",
            s.attempted, s.established, s.failed, s.dropped, s.held, s.closed, s.close_timeouts
        );
        for (reason, n) in &s.failure_reasons {
            let example = s.failure_examples.get(reason).map_or("", String::as_str);
            let _ = writeln!(out, "  failed {reason}: {n} (e.g. {example})");
        }
        for (reason, n) in &s.drop_reasons {
            let _ = writeln!(out, "  dropped {reason}: {n}");
        }
        let p = &self.setup.phases;
        let rows = [
            ("setup", &self.setup.total),
            ("  tcp", &p.tcp),
            ("  tls", &p.tls),
            ("  http", &p.http),
            ("  sstp", &p.sstp),
            ("  ppp auth", &p.ppp_auth),
            ("  network", &p.network),
            ("teardown", &self.teardown),
            ("rtt", &self.rtt),
            (
                "recovery",
                self.reconnect.as_ref().map_or(&EMPTY, |r| &r.recovery),
            ),
        ];
        if rows.iter().any(|(_, h)| h.count > 0) {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "{:<14}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
                "latency (ms)", "count", "min", "p50", "p90", "p99", "p99.9", "max"
            );
        }
        for (name, h) in rows {
            if h.count == 0 {
                continue;
            }
            let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
            let _ = writeln!(
                out,
                "{:<14}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
                name,
                h.count,
                ms(h.min_us),
                ms(h.p50_us),
                ms(h.p90_us),
                ms(h.p99_us),
                ms(h.p99_9_us),
                ms(h.max_us)
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "setup rate  {:.1}/s", self.setup.per_s);
        if self.mode == "churn" {
            let _ = writeln!(
                out,
                "churn       {} cycles, {:.1}/s",
                self.churn.cycles, self.churn.cycles_per_s
            );
        }
        let t = &self.traffic;
        if t.up.packets > 0 || t.down.packets > 0 {
            for (name, f) in [("up", &t.up), ("down", &t.down)] {
                let _ = writeln!(
                    out,
                    "{:<12}{}  {:.0} packets/s  ({} packets, {} bytes)",
                    name,
                    bit_rate(f.gbit_per_s * 1e9),
                    f.packets_per_s,
                    f.packets,
                    f.bytes
                );
            }
        }
        for (name, loss) in [
            ("loss rtt", &self.loss.round_trip),
            ("loss up", &self.loss.up),
            ("loss down", &self.loss.down),
        ] {
            if let Some(l) = loss {
                let _ = writeln!(
                    out,
                    "{:<12}{:.4}%  ({} of {} lost)",
                    name,
                    l.ratio * 100.0,
                    l.lost,
                    l.sent
                );
            }
        }
        if let Some(r) = &self.reconnect {
            let _ = write!(
                out,
                "reconnect   lost {}  reconnected {}  unrecovered {}  attempts {} ({} failed)",
                r.lost, r.reconnected, r.unrecovered, r.attempts, r.failed_attempts
            );
            if let Some(all) = r.all_back_after_s {
                let _ = write!(out, "  all back after {all:.3}s");
            }
            let _ = writeln!(out, "  (seed {})", r.seed);
            for (cause, n) in &r.causes {
                let _ = writeln!(out, "  lost {cause}: {n}");
            }
        }
        if let Some(tun) = &self.tun {
            for d in &tun.tunnels {
                let _ = writeln!(
                    out,
                    "tunnel      {} {} -> {} mtu {} (session {})",
                    d.ifname, d.address, d.gateway, d.mtu, d.session
                );
            }
            let _ = writeln!(
                out,
                "tun drops   up {}  down {}  read errors {}  write errors {}",
                tun.up_dropped, tun.down_dropped, tun.read_errors, tun.write_errors
            );
        }
        if t.payload_mismatches > 0 {
            let _ = writeln!(
                out,
                "MISMATCHES  {} packets arrived with a payload other than the one sent",
                t.payload_mismatches
            );
        }
        if t.late_sends > 0 {
            let _ = writeln!(
                out,
                "pacing      {} of {} packets sent a period or more late (the pace was not kept)",
                t.late_sends, t.up.packets
            );
        }
        if t.reordered + t.foreign + t.send_errors + t.backpressure_waits > 0 {
            let _ = writeln!(
                out,
                "anomalies   reordered {}  foreign {}  send errors {}  backpressure waits {}",
                t.reordered, t.foreign, t.send_errors, t.backpressure_waits
            );
        }
        let _ = write!(
            out,
            "cpu         workers {:.2}s  process {:.2}s user {:.2}s system",
            self.cpu.workers_s, self.cpu.process_user_s, self.cpu.process_system_s
        );
        // Per GB only means something once a fair amount has moved.
        if let Some(per_gb) = self
            .cpu
            .per_gb_s
            .filter(|_| t.up.bytes + t.down.bytes >= 100_000_000)
        {
            let _ = write!(out, "  ({per_gb:.2} s per GB)");
        }
        let _ = writeln!(out);
        if let Some(limit) = &self.failures.limit {
            let _ = writeln!(
                out,
                "failures    {} (limit {}){}",
                self.failures.count,
                limit,
                if self.failures.exceeded {
                    ": EXCEEDED"
                } else {
                    ""
                }
            );
        }
        out
    }
}

/// `bits_per_s` with a unit that keeps three significant figures readable:
/// `2.318 Gbit/s`, `920.0 kbit/s`.
pub fn bit_rate(bits_per_s: f64) -> String {
    if bits_per_s >= 1e9 {
        format!("{:.3} Gbit/s", bits_per_s / 1e9)
    } else if bits_per_s >= 1e6 {
        format!("{:.1} Mbit/s", bits_per_s / 1e6)
    } else {
        format!("{:.1} kbit/s", bits_per_s / 1e3)
    }
}

fn per_second(n: u64, span: Duration) -> f64 {
    let s = span.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Credentials, Direction};

    fn config(mode: Mode) -> LoadConfig {
        LoadConfig::new(
            mode,
            "127.0.0.1:4443".parse().unwrap(),
            Credentials::single("demo", "pw"),
        )
    }

    fn timing() -> RunTiming {
        RunTiming {
            started_unix_s: 1.0,
            ramp: Duration::from_secs(1),
            window: Duration::from_secs(2),
            total: Duration::from_secs(4),
            process_cpu: (Duration::from_millis(300), Duration::from_millis(100)),
        }
    }

    #[test]
    fn rates_loss_and_cpu_per_gb_follow_the_counters() {
        let mut stats = WorkerStats::default();
        let c = &mut stats.counters;
        c.attempted = 10;
        c.established = 9;
        c.failed = 1;
        c.up_packets = 2000;
        c.up_bytes = 250_000_000;
        c.down_packets = 1000;
        c.down_bytes = 0;
        c.peer_queried = 9;
        c.peer_answered = 9;
        c.peer_flow_up_sent = 2000;
        c.peer_rx_packets = 1990;
        c.peer_tx_packets = 1000;
        c.peer_flow_down_received = 1000;
        stats.cpu = Duration::from_millis(500);
        let mut cfg = config(Mode::Bulk {
            to: None,
            direction: Direction::Up,
            flows: 1,
            follow: false,
        });
        cfg.max_failures = Some("0".parse().unwrap());
        let r = Report::build(&cfg, &stats, timing());
        assert_eq!(r.traffic.up.packets_per_s, 1000.0);
        assert_eq!(r.traffic.up.gbit_per_s, 1.0);
        assert_eq!(
            r.loss.up,
            Some(LossFigures {
                sent: 2000,
                received: 1990,
                lost: 10,
                ratio: 0.005
            })
        );
        assert_eq!(r.loss.down, None, "direction up only");
        assert_eq!(r.loss.round_trip, None);
        assert_eq!(r.cpu.per_gb_s, Some(2.0));
        assert_eq!(r.setup.per_s, 9.0);
        assert!(r.failures.exceeded && r.failed());
        assert!(r.table().contains("EXCEEDED"));
    }

    #[test]
    fn reconnections_are_reported_only_when_asked_for() {
        let mut stats = WorkerStats::default();
        stats.counters.attempted = 5;
        stats.counters.established = 5;
        let r = &mut stats.reconnect;
        r.lost = 2;
        r.reconnected = 2;
        r.attempts = 3;
        r.failed_attempts = 1;
        r.recovery.record(Duration::from_millis(1200));
        r.recovery.record(Duration::from_millis(2500));
        r.first_loss_ns = Some(1_000_000_000);
        r.last_recovery_ns = Some(3_500_000_000);
        crate::stats::count_reason(&mut r.causes, "call_disconnect");
        crate::stats::count_reason(&mut r.causes, "call_disconnect");
        let without = Report::build(&config(Mode::Idle), &stats, timing());
        assert_eq!(without.reconnect, None);
        assert!(!without.table().contains("reconnect"));
        let mut cfg = config(Mode::Idle);
        cfg.reconnect = Some(crate::backoff::ReconnectPolicy {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(4),
            seed: 11,
        });
        let with = Report::build(&cfg, &stats, timing());
        let figures = with.reconnect.as_ref().unwrap();
        assert_eq!(
            (figures.lost, figures.reconnected, figures.unrecovered),
            (2, 2, 0)
        );
        assert_eq!((figures.attempts, figures.failed_attempts), (3, 1));
        assert_eq!(figures.recovery.count, 2);
        assert_eq!(figures.all_back_after_s, Some(2.5));
        assert_eq!(
            (figures.delay_s, figures.max_delay_s, figures.seed),
            (0.5, 4.0, 11)
        );
        let table = with.table();
        assert!(
            table.contains("reconnect   lost 2  reconnected 2"),
            "{table}"
        );
        assert!(table.contains("lost call_disconnect: 2"), "{table}");
        assert!(
            table.contains("all back after 2.500s  (seed 11)"),
            "{table}"
        );
        assert!(table.contains("recovery"), "{table}");
        let back: Report = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(back, with);
    }

    #[test]
    fn bit_rates_pick_a_readable_unit() {
        assert_eq!(bit_rate(2.318e9), "2.318 Gbit/s");
        assert_eq!(bit_rate(224e6), "224.0 Mbit/s");
        assert_eq!(bit_rate(33_600.0), "33.6 kbit/s");
        assert_eq!(bit_rate(0.0), "0.0 kbit/s");
    }

    #[test]
    fn partial_peer_answers_give_no_loss_figure() {
        let mut stats = WorkerStats::default();
        stats.counters.attempted = 2;
        stats.counters.established = 2;
        stats.counters.peer_queried = 2;
        stats.counters.peer_answered = 1;
        let r = Report::build(
            &config(Mode::Udp {
                to: None,
                reflect: false,
                flows: 1,
            }),
            &stats,
            timing(),
        );
        assert_eq!(r.loss.up, None);
        assert!(!r.failed());
    }

    #[test]
    fn nothing_established_is_a_failed_run_even_without_a_limit() {
        let mut stats = WorkerStats::default();
        stats.counters.attempted = 3;
        stats.counters.failed = 3;
        let r = Report::build(&config(Mode::Idle), &stats, timing());
        assert!(!r.failures.exceeded);
        assert!(r.failed());
        assert_eq!(r.rtt.count, 0);
        assert_eq!(r.cpu.per_gb_s, None);
    }

    #[test]
    fn reports_survive_a_json_round_trip() {
        let mut stats = WorkerStats::default();
        stats.counters.attempted = 1;
        stats.counters.established = 1;
        stats.rtt.record(Duration::from_micros(150));
        crate::stats::count_reason(&mut stats.drop_reasons, "hello_timeout");
        let r = Report::build(&config(Mode::Echo { to: None }), &stats, timing());
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.rtt.p50_us, 150);
        assert_eq!(back.rtt.sum_ns, 150_000);
        assert_eq!(back.schema_version, SCHEMA_VERSION);
    }
}
