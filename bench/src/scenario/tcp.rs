//! TCP through the tunnels: what users measure. `sstp-loadgen tun` puts
//! each session behind a TUN device in the clients' namespace (joined to
//! sstpd's by a veth pair, [`Testbed::local_with_tunnel_clients`]);
//! iperf3 servers listen on the tunnel gateway in sstpd's namespace, and
//! iperf3 clients bound to the tunnel addresses run real kernel TCP
//! through the tunnels, upstream or (`-R`) downstream. The figure is
//! iperf3's received throughput (`end.sum_received`), beside the same
//! bare-TLS stream reference as the bulk scenarios of that direction.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use sstp_loadgen::config::TunNames;
use sstp_loadgen::report::Tunnel;
use sstp_loadgen::{Direction, Mode};
use sstpd::testing::netns::NetNs;

use super::catalog::{
    check_sessions, cpu_context, cpu_per_gb, direction_stream, fig, server_usage, BenchOptions,
    Outcome, BULK_PAYLOAD,
};
use super::loadgen::{ChildGuard, LoadSpec};
use super::process::tail_of_file;
use super::sampler::unix_seconds;
use super::testbed::Testbed;
use super::ScenarioError;
use crate::results::{Better, ScenarioResult};

/// The first iperf3 server's port; session `i`'s server listens on
/// `IPERF_PORT + i`.
pub const IPERF_PORT: u16 = 5201;
/// How long an iperf3 client may take beyond its test time.
const IPERF_GRACE: Duration = Duration::from_secs(20);
/// Bound on an iperf3 server's start.
const IPERF_START: Duration = Duration::from_secs(10);

/// What iperf3 measured, summed over the clients of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Iperf {
    /// Bytes the receivers got (`end.sum_received.bytes`).
    pub bytes: u64,
    /// Sum of the clients' received rates (`end.sum_received.bits_per_second`).
    pub bits_per_second: f64,
    /// Sender retransmits (`end.sum_sent.retransmits`), when reported.
    pub retransmits: Option<u64>,
    pub clients: usize,
}

/// Adds one iperf3 client's `--json` output to `total`.
pub fn add_iperf_json(total: &mut Iperf, json: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("iperf3 --json: {e}"))?;
    if let Some(error) = v.get("error").and_then(Value::as_str) {
        return Err(format!("iperf3: {error}"));
    }
    let received = &v["end"]["sum_received"];
    let bytes = received["bytes"]
        .as_u64()
        .ok_or("iperf3 --json: no end.sum_received.bytes")?;
    let rate = received["bits_per_second"]
        .as_f64()
        .ok_or("iperf3 --json: no end.sum_received.bits_per_second")?;
    total.bytes += bytes;
    total.bits_per_second += rate;
    if let Some(r) = v["end"]["sum_sent"]["retransmits"].as_u64() {
        total.retransmits = Some(total.retransmits.unwrap_or(0) + r);
    }
    total.clients += 1;
    Ok(())
}

/// iperf3 servers in sstpd's namespace, one per session (on every
/// address there: the clients connect to the tunnel gateway).
fn start_servers(ns: &NetNs, count: usize, dir: &Path) -> Result<Vec<ChildGuard>, ScenarioError> {
    let mut servers = Vec::with_capacity(count);
    for i in 0..count {
        let log = dir.join(format!("iperf3-server-{i}.log"));
        let file = std::fs::File::create(&log).map_err(ScenarioError::Io)?;
        let port = (IPERF_PORT + i as u16).to_string();
        let child = ns
            .command("iperf3")
            .args(["-s", "-p", &port, "--forceflush"])
            .stdin(Stdio::null())
            .stdout(file.try_clone().map_err(ScenarioError::Io)?)
            .stderr(file)
            .spawn()
            .map_err(|e| ScenarioError::Setup(format!("iperf3 (apt-get install iperf3): {e}")))?;
        let mut child = ChildGuard::new(child);
        let deadline = Instant::now() + IPERF_START;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server listening") {
                break;
            }
            if child.try_wait()?.is_some() || Instant::now() >= deadline {
                return Err(ScenarioError::Setup(format!(
                    "iperf3 -s did not start:\n{}",
                    tail_of_file(&log, 10)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        servers.push(child);
    }
    Ok(servers)
}

/// One iperf3 client per tunnel (each bound to its tunnel address, to
/// its own server), `streams` parallel streams each, for `seconds`;
/// returns their sum and the interval they ran (Unix seconds).
fn run_clients(
    ns: &NetNs,
    dir: &Path,
    tunnels: &[Tunnel],
    streams: usize,
    seconds: u64,
    reverse: bool,
    interrupt: &AtomicBool,
) -> Result<(Iperf, (f64, f64)), ScenarioError> {
    let start = unix_seconds(SystemTime::now());
    let mut children = Vec::with_capacity(tunnels.len());
    for (i, t) in tunnels.iter().enumerate() {
        let mut command: Command = ns.command("iperf3");
        command
            .args(["-c", &t.gateway, "-B", &t.address])
            .args(["-p", &(IPERF_PORT + i as u16).to_string()])
            .args(["-t", &seconds.to_string(), "-P", &streams.to_string()])
            .arg("--json");
        if reverse {
            command.arg("-R");
        }
        // To a file: the report comes at the end, larger than a pipe holds.
        let out = std::fs::File::create(dir.join(format!("iperf3-client-{i}.json")))
            .map_err(ScenarioError::Io)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ScenarioError::Setup(format!("iperf3 (apt-get install iperf3): {e}")))?;
        children.push(ChildGuard::new(child));
    }
    let deadline = Instant::now() + Duration::from_secs(seconds) + IPERF_GRACE;
    let mut total = Iperf::default();
    for (i, child) in children.iter_mut().enumerate() {
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if interrupt.load(Ordering::Acquire) {
                return Err(ScenarioError::Interrupted);
            }
            if Instant::now() >= deadline {
                return Err(ScenarioError::Loadgen(
                    "iperf3 did not finish in time".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = std::fs::read_to_string(dir.join(format!("iperf3-client-{i}.json")))
            .unwrap_or_default();
        add_iperf_json(&mut total, &out)
            .map_err(|e| ScenarioError::Loadgen(format!("{e} (exit {status})")))?;
    }
    Ok((total, (start, unix_seconds(SystemTime::now()))))
}

/// `tcp_*`: iperf3 through `sessions` tunnels, `streams` streams each.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tcp(
    bed: &mut Testbed,
    name: &str,
    direction: Direction,
    sessions: u64,
    streams: usize,
    options: &BenchOptions,
    interrupt: &AtomicBool,
    print: &mut dyn FnMut(&str),
) -> Result<Outcome, ScenarioError> {
    let up = direction == Direction::Up;
    // The same TLS work as bulk in this direction: the load generator
    // fills 16 KiB records upstream; sstpd seals one record per packet of
    // the tunnel's MTU (1,400 bytes, as bulk's packets) downstream.
    let (reference, record) = direction_stream(bed, options, direction, BULK_PAYLOAD, print)?;
    let server = bed
        .server()
        .ok_or_else(|| ScenarioError::Setup("TCP scenarios need a local sstpd".into()))?;
    let dir = tempfile::tempdir().map_err(ScenarioError::Io)?;
    let servers = start_servers(server.namespace(), sessions as usize, dir.path())?;
    let peer_pid = (servers.len() == 1).then(|| servers[0].pid());
    let seconds = options.duration.as_secs_f64().ceil().max(1.0) as u64;
    let mut spec = LoadSpec::new(
        Mode::Tun {
            names: TunNames::default(),
        },
        sessions,
        // Ended by SIGINT when iperf3 is done.
        Duration::from_secs(seconds) + IPERF_GRACE + Duration::from_secs(60),
    );
    spec.setup_concurrency = Some(options.concurrency);
    print(&format!(
        "  {name}: {sessions} tunnel(s), iperf3 {} stream(s) each, {seconds} s ...",
        streams
    ));
    let (outcome, (iperf, interval)) = bed.tunnels(&spec, peer_pid, interrupt, |tunnels, ns| {
        run_clients(ns, dir.path(), tunnels, streams, seconds, !up, interrupt)
    })?;
    drop(servers);
    let mut figures = Vec::new();
    check_sessions(&outcome.report, &mut figures)?;
    let r = &outcome.report;
    let gbit = iperf.bits_per_second / 1e9;
    let mut all =
        vec![fig("throughput", "Gbit/s", gbit, Better::Higher).beside(&reference, "throughput")];
    let usage = server_usage(&outcome, interval, iperf.bytes, 0);
    all.extend(cpu_per_gb(usage.as_ref(), &reference, direction));
    if let Some(retransmits) = iperf.retransmits {
        all.push(fig(
            "retransmits",
            "count",
            retransmits as f64,
            Better::Neither,
        ));
    }
    if let Some(tun) = &r.tun {
        all.push(fig(
            "tun_drops",
            "count",
            (tun.up_dropped + tun.down_dropped) as f64,
            Better::Neither,
        ));
    }
    all.append(&mut figures);
    let mut params = super::catalog::base_params(r, &options.topology, true);
    params.insert("direction".into(), direction.as_str().into());
    params.insert("streams_per_session".into(), streams.to_string());
    params.insert("iperf3_seconds".into(), seconds.to_string());
    params.insert("iperf3_clients".into(), iperf.clients.to_string());
    if let Some(t) = r.tun.as_ref().and_then(|t| t.tunnels.first()) {
        params.insert("tunnel_mtu".into(), t.mtu.to_string());
    }
    params.insert("server_record_bytes".into(), record.to_string());
    params.insert(
        "path".into(),
        "loadgen namespace -> veth -> sstpd namespace (the reference: loopback)".into(),
    );
    params.insert("window_s".into(), format!("{:.2}", interval.1 - interval.0));
    cpu_context(&outcome, interval, &options.topology, &mut all, &mut params);
    let result = ScenarioResult {
        name: name.into(),
        params,
        figures: all,
        server: usage,
        latency: None,
    };
    Ok(Outcome::single(result, vec![reference], print))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf3_json_is_summed_over_clients() {
        let one = r#"{"end":{"sum_sent":{"bytes":1000,"retransmits":3},
                      "sum_received":{"bytes":900,"bits_per_second":7200.5}}}"#;
        let reverse = r#"{"end":{"sum_sent":{"bytes":500},
                      "sum_received":{"bytes":400,"bits_per_second":3200}}}"#;
        let mut total = Iperf::default();
        add_iperf_json(&mut total, one).unwrap();
        add_iperf_json(&mut total, reverse).unwrap();
        assert_eq!(total.bytes, 1300);
        assert!((total.bits_per_second - 10_400.5).abs() < 1e-9);
        assert_eq!(total.retransmits, Some(3));
        assert_eq!(total.clients, 2);
        let error = add_iperf_json(&mut total, r#"{"error":"unable to connect"}"#).unwrap_err();
        assert!(error.contains("unable to connect"), "{error}");
        assert!(add_iperf_json(&mut total, "not json").is_err());
        assert!(add_iperf_json(&mut total, "{}").is_err());
    }
}
