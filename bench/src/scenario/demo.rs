//! `sstp-bench demo`: the ten-second tour the README opens with.
//!
//! sstpd runs exactly as a first-time user starts it, with no
//! configuration file (its embedded defaults: 127.0.0.1:4443, user `demo`,
//! a self-signed certificate it generates), in a network namespace of its
//! own with the traffic peer next to it; its state directory is a
//! temporary directory. Then, each beside bare TLS measured a moment
//! earlier on the same machine with the same certificate:
//!
//! 1. sessions coming up: 200 set up as fast as they complete;
//! 2. echo latency: ICMP echo through 10 sessions, answered by the
//!    server host's kernel;
//! 3. bulk throughput: 4 sessions upstream at full speed.
//!
//! Everything it started or created (processes, namespace, files) is
//! removed when it ends, fails or is interrupted: each lives in a guard
//! that removes it when dropped.

use std::io::Read as _;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use sstp_loadgen::Mode;

use super::catalog::{
    cpu_context, fig, handshakes, hist_profile, load_checked, ping_pong, server_usage, stream,
    BenchOptions, IP_UDP_OVERHEAD, SSTP_PPP_OVERHEAD, UPSTREAM_RECORD,
};
use super::loadgen::{bulk, LoadSpec};
use super::process::SstpdOptions;
use super::testbed::{Testbed, Topology};
use super::{Binaries, ScenarioError};
use crate::results::{Better, Params, Results, ScenarioResult};
use crate::units::{quantity, ratio, significant};

/// Sessions brought up in the first step.
pub const SESSIONS: u64 = 200;
/// Sessions pinging in the second step, and their rate each.
pub const ECHO_SESSIONS: u64 = 10;
pub const ECHO_PPS: f64 = 50.0;
/// ICMP payload of the echo requests (as `ping`).
const ECHO_PAYLOAD: usize = 56;
/// ICMP header: 8 bytes, after the 20-byte IPv4 header.
const ICMP_OVERHEAD: usize = 28;
/// Sessions of the bulk step.
pub const BULK_SESSIONS: u64 = 4;
/// How long each reference runs.
const REFERENCE: Duration = Duration::from_millis(700);

/// What the demo measured, as a results document (scenarios `demo_setup`,
/// `demo_echo`, `demo_bulk` and their references) and the table shown.
#[derive(Clone, Debug)]
pub struct DemoReport {
    pub results: Results,
    pub table: String,
    /// The namespace that was used (and removed).
    pub namespace: String,
}

/// A random password for the run's `demo` user.
fn password() -> String {
    let mut bytes = [0u8; 12];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Never reached on Linux; a fixed password is fine for a
        // server that only exists inside a private namespace.
        return "sstp-bench-demo".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the demo; `print` receives the progress lines.
pub fn run(
    binaries: &Binaries,
    interrupt: &AtomicBool,
    print: &mut dyn FnMut(&str),
) -> Result<DemoReport, ScenarioError> {
    let started = Instant::now();
    let mut step = |text: &str| {
        print(&format!(
            "[{:>4.1}s] {text}",
            started.elapsed().as_secs_f64()
        ))
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The embedded defaults run one worker per core; the load generator
    // gets one worker, not pinned.
    let topology = Topology {
        cores,
        server_workers: cores,
        loadgen_workers: 1,
        peer_threads: 1,
        pin_loadgen: false,
    };
    let mut options = BenchOptions::new(binaries.clone());
    options.topology = topology.clone();
    options.reference_duration = REFERENCE;
    options.concurrency = 32;
    let server = SstpdOptions::embedded_defaults(binaries.sstpd.clone(), password());
    let mut bed = Testbed::local(binaries, &server, topology.clone())?;
    let namespace = bed
        .server()
        .map(|s| s.namespace().name().to_owned())
        .unwrap_or_default();
    step(&format!(
        "sstpd is up in network namespace {namespace}: no configuration file (embedded \
         defaults: {}, user demo, {cores} worker(s)), state in a temporary directory; \
         sstp-loadgen's peer beside it",
        server.listen
    ));

    step(&format!(
        "bare TLS on this machine, same certificate ({:.1} s each): handshakes, ping-pong, stream",
        REFERENCE.as_secs_f64()
    ));
    let mut quiet = |_: &str| {};
    let hs = handshakes(&bed, &options, &mut quiet)?;
    let echo_record = ECHO_PAYLOAD + ICMP_OVERHEAD + SSTP_PPP_OVERHEAD;
    let pp = ping_pong(&bed, &options, echo_record, &mut quiet)?;
    let st = stream(&bed, &options, UPSTREAM_RECORD, &mut quiet)?;
    let mut results = Results::new_run();
    results.notes.push(
        "sstp-bench demo: sstpd with its embedded defaults; short runs, for a first look \
         (sstp-bench run all for the scenarios)"
            .into(),
    );

    // 1. Sessions coming up.
    step(&format!("{SESSIONS} sessions coming up ..."));
    let mut spec = LoadSpec::new(Mode::Idle, SESSIONS, Duration::from_millis(500));
    spec.setup_concurrency = Some(options.concurrency);
    spec.drain = Duration::from_millis(300);
    let (setup, mut figures) = load_checked(&mut bed, &spec, interrupt)?;
    let r = &setup.report;
    let rate = if r.timing.ramp_s > 0.0 {
        r.sessions.established as f64 / r.timing.ramp_s
    } else {
        0.0
    };
    let window = setup.window();
    let rss = setup.server_rss_near((window.0 + window.1) / 2.0);
    let mut setup_figures = vec![
        fig("setup_rate", "sessions/s", rate, Better::Higher).beside(&hs, "handshake_rate"),
        fig(
            "setup_latency_p50",
            "us",
            r.setup.total.p50_us as f64,
            Better::Lower,
        ),
    ];
    if let Some(rss) = rss {
        setup_figures.push(fig("server_rss_held", "B", rss as f64, Better::Lower));
    }
    setup_figures.append(&mut figures);
    let mut params = Params::new();
    params.insert("sessions".into(), SESSIONS.to_string());
    let usage = server_usage(&setup, setup.ramp(), 0, r.sessions.established);
    cpu_context(
        &setup,
        setup.ramp(),
        &topology,
        &mut setup_figures,
        &mut params,
    );
    results.scenarios.push(ScenarioResult {
        name: "demo_setup".into(),
        params,
        figures: setup_figures,
        server: usage,
        latency: None,
    });
    step(&format!(
        "{} up in {:.2} s, {} failed",
        r.sessions.established,
        r.timing.ramp_s,
        r.sessions.failed + r.sessions.dropped
    ));

    // 2. Echo latency.
    step(&format!(
        "ICMP echo through {ECHO_SESSIONS} sessions, {ECHO_PPS} per second each, 2 s ..."
    ));
    let mut spec = LoadSpec::new(
        Mode::Echo { to: None },
        ECHO_SESSIONS,
        Duration::from_secs(2),
    );
    spec.pps = Some(ECHO_PPS);
    spec.payload = Some(ECHO_PAYLOAD);
    spec.drain = Duration::from_millis(300);
    let (echo, mut figures) = load_checked(&mut bed, &spec, interrupt)?;
    let r = &echo.report;
    let profile = hist_profile(&r.rtt);
    let mut echo_figures: Vec<_> = profile
        .figures()
        .into_iter()
        .map(|f| {
            let metric = f.metric.clone();
            f.beside(&pp, &metric)
        })
        .collect();
    echo_figures.append(&mut figures);
    if let Some(loss) = &r.loss.round_trip {
        echo_figures.push(fig("loss", "ratio", loss.ratio, Better::Neither));
    }
    let mut params = Params::new();
    params.insert("sessions".into(), ECHO_SESSIONS.to_string());
    params.insert("pps_per_session".into(), ECHO_PPS.to_string());
    results.scenarios.push(ScenarioResult {
        name: "demo_echo".into(),
        params,
        figures: echo_figures,
        server: None,
        latency: Some(profile),
    });
    step(&format!(
        "{} round trips, {} lost",
        r.rtt.count,
        r.loss.round_trip.as_ref().map_or(0, |l| l.lost)
    ));

    // 3. Bulk throughput.
    step(&format!(
        "bulk upstream through {BULK_SESSIONS} sessions, 1,400-byte packets, 2.5 s ..."
    ));
    let mut spec = LoadSpec::new(
        bulk(sstp_loadgen::Direction::Up, 1, false),
        BULK_SESSIONS,
        Duration::from_millis(2500),
    );
    spec.drain = Duration::from_millis(300);
    let (bulk_run, mut figures) = load_checked(&mut bed, &spec, interrupt)?;
    let r = &bulk_run.report;
    let (packets, bytes) = if r.peer.answered_flows == r.peer.queried_flows {
        (r.peer.rx_packets, r.peer.rx_bytes)
    } else {
        (r.traffic.up.packets, r.traffic.up.bytes)
    };
    let seconds = r.timing.window_s.max(1e-9);
    let window = bulk_run.window();
    let usage = server_usage(&bulk_run, window, bytes, 0);
    let mut bulk_figures = vec![fig(
        "throughput",
        "Gbit/s",
        bytes as f64 * 8.0 / seconds / 1e9,
        Better::Higher,
    )
    .beside(&st, "throughput")];
    bulk_figures.push(fig(
        "packets_per_s",
        "packets/s",
        packets as f64 / seconds,
        Better::Higher,
    ));
    if let Some(per_gb) = usage.as_ref().and_then(|u| u.cpu_s_per_gb) {
        bulk_figures.push(
            fig("server_cpu_per_gb", "s/GB", per_gb, Better::Lower)
                .beside(&st, "server_cpu_per_gb"),
        );
    }
    bulk_figures.append(&mut figures);
    let mut params = Params::new();
    params.insert("sessions".into(), BULK_SESSIONS.to_string());
    params.insert("direction".into(), "up".into());
    params.insert(
        "ip_packet_bytes".into(),
        (super::catalog::BULK_PAYLOAD + IP_UDP_OVERHEAD).to_string(),
    );
    cpu_context(&bulk_run, window, &topology, &mut bulk_figures, &mut params);
    results.scenarios.push(ScenarioResult {
        name: "demo_bulk".into(),
        params,
        figures: bulk_figures,
        server: usage,
        latency: None,
    });
    results.references = vec![hs, pp, st];
    step("stopping sstpd (SIGTERM), removing the namespace and the temporary files ...");
    bed.stop()?;
    Ok(DemoReport {
        table: table(&results),
        results,
        namespace,
    })
}

fn find<'a>(
    results: &'a Results,
    scenario: &str,
    metric: &str,
) -> Option<&'a crate::results::Figure> {
    results
        .scenarios
        .iter()
        .find(|s| s.name == scenario)?
        .figures
        .iter()
        .find(|f| f.metric == metric)
}

/// The short results table: each figure, its same-run reference, the
/// ratio.
pub fn table(results: &Results) -> String {
    let mut rows = vec![vec![
        String::new(),
        "through sstpd".to_string(),
        "bare TLS, same run".to_string(),
        "ratio".to_string(),
    ]];
    let mut row =
        |label: String, metric: Option<&crate::results::Figure>, reference_label: &str| {
            let Some(f) = metric else { return };
            let (reference, r) = match &f.reference {
                Some(r) => (
                    format!("{}{reference_label}", quantity(r.value, unit_of(&f.unit))),
                    ratio(r.ratio),
                ),
                None => (String::new(), String::new()),
            };
            rows.push(vec![
                label,
                quantity(f.value, unit_of(&f.unit)),
                reference,
                r,
            ]);
        };
    row(
        format!("sessions set up ({SESSIONS})"),
        find(results, "demo_setup", "setup_rate"),
        " (handshakes)",
    );
    row(
        "  setup time p50".into(),
        find(results, "demo_setup", "setup_latency_p50"),
        "",
    );
    row(
        "echo round trip p50".into(),
        find(results, "demo_echo", "latency_p50"),
        " (ping-pong)",
    );
    row(
        "echo round trip p99".into(),
        find(results, "demo_echo", "latency_p99"),
        "",
    );
    row(
        format!("bulk upstream ({BULK_SESSIONS} sessions)"),
        find(results, "demo_bulk", "throughput"),
        " (stream)",
    );
    row(
        "  sstpd CPU per GB".into(),
        find(results, "demo_bulk", "server_cpu_per_gb"),
        "",
    );
    row(
        format!("sstpd memory, {SESSIONS} sessions up"),
        find(results, "demo_setup", "server_rss_held"),
        "",
    );
    let mut out = crate::table::render(&rows, |i| i == 1 || i == 3);
    if let Some(cores) = find(results, "demo_bulk", "server_cores") {
        let loadgen = find(results, "demo_bulk", "loadgen_cores").map_or(0.0, |f| f.value);
        let peer = find(results, "demo_bulk", "peer_cores").map_or(0.0, |f| f.value);
        out.push_str(&format!(
            "bulk used {} cores in sstpd, {} in sstp-loadgen, {} in its peer\n",
            significant(cores.value),
            significant(loadgen),
            significant(peer)
        ));
    }
    out
}

/// `s/GB` reads better as seconds here ("1.31 s").
fn unit_of(unit: &str) -> &str {
    match unit {
        "s/GB" => "s",
        "sessions/s" => "/s",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Figure, ReferenceResult};

    #[test]
    fn passwords_are_random_hex() {
        let (a, b) = (password(), password());
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_table_shows_figures_beside_references() {
        let reference = |name: &str, metric: &str, unit: &str, value: f64| ReferenceResult {
            name: name.into(),
            params: Params::new(),
            figures: vec![Figure::new(metric, unit, value, Better::Higher)],
            latency: None,
        };
        let hs = reference("tls_handshake", "handshake_rate", "handshakes/s", 2000.0);
        let st = reference("tls_stream_16384", "throughput", "Gbit/s", 6.0);
        let mut results = Results::new_run();
        results.scenarios.push(ScenarioResult {
            name: "demo_setup".into(),
            params: Params::new(),
            figures: vec![
                fig("setup_rate", "sessions/s", 500.0, Better::Higher)
                    .beside(&hs, "handshake_rate"),
                fig("server_rss_held", "B", 20.0 * 1048576.0, Better::Lower),
            ],
            server: None,
            latency: None,
        });
        results.scenarios.push(ScenarioResult {
            name: "demo_bulk".into(),
            params: Params::new(),
            figures: vec![
                fig("throughput", "Gbit/s", 1.5, Better::Higher).beside(&st, "throughput")
            ],
            server: None,
            latency: None,
        });
        let text = table(&results);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].starts_with("sessions set up (200)"), "{text}");
        assert!(lines[1].contains("500/s"), "{text}");
        assert!(lines[1].contains("2,000/s (handshakes)"), "{text}");
        assert!(lines[1].ends_with("0.25"), "{text}");
        assert!(
            lines[2].contains("1.50 Gbit/s") && lines[2].ends_with("0.25"),
            "{text}"
        );
        assert!(lines[3].contains("20.0 MiB"), "{text}");
    }
}
