//! `sstp-loadgen tun` end to end: the binary in a namespace of its own,
//! joined to sstpd's by a veth pair, puts two sessions behind TUN devices;
//! kernel TCP connections bound to each tunnel address carry every byte
//! intact both ways through their own tunnel; at SIGINT the sessions
//! close, and the devices and source rules are gone.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use sstpd::config::TunOffload;
use sstpd::testing::netns::{create_veth_pair, NetNs, VethEnd};
use support::*;

const SERVER_VETH: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 1);
const CLIENT_VETH: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 2);
/// Bytes each connection carries each way.
const TRANSFER: usize = 3 << 20;
/// Where the test's TCP server listens (on the gateway, in sstpd's
/// namespace).
const ECHO_PORT: u16 = 7000;

/// The byte at `offset` of the stream of connection `seed`: a pattern
/// that a lost, duplicated or reordered segment would break.
fn pattern(seed: u8, offset: usize) -> u8 {
    (offset as u32)
        .wrapping_mul(2_654_435_761)
        .rotate_right(13)
        .to_le_bytes()[0]
        ^ seed
}

/// A tunnel line of the binary's standard error:
/// `tunnel sstpc0 10.99.0.2 -> 10.99.0.1 mtu 1400 (session 0)`.
fn tunnels_announced(log: &Path) -> Vec<(String, Ipv4Addr)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut words = l.strip_prefix("tunnel ")?.split_whitespace();
            let name = words.next()?.to_string();
            let address = words.next()?.parse().ok()?;
            Some((name, address))
        })
        .collect()
}

/// Echoes one connection: every byte read is written back.
fn echo_one(listener: &TcpListener) {
    let (mut stream, _) = listener.accept().expect("accept");
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).expect("echo read");
        if n == 0 {
            return;
        }
        stream.write_all(&buf[..n]).expect("echo write");
    }
}

/// Connects from `source` to the echo server, sends [`TRANSFER`] bytes of
/// the pattern and checks that exactly they come back.
fn transfer_through(source: Ipv4Addr, seed: u8) {
    transfer_between(source.into(), GATEWAY.into(), TRANSFER, seed)
}

/// Connects from `source` to the echo server at `gateway`, sends
/// `transfer` bytes of the pattern and checks that exactly they come back.
fn transfer_between(source: IpAddr, gateway: IpAddr, transfer: usize, seed: u8) {
    let socket = Socket::new(
        Domain::for_address(SocketAddr::new(source, 0)),
        Type::STREAM,
        None,
    )
    .unwrap();
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .expect("bind the tunnel address");
    socket
        .connect_timeout(
            &SocketAddr::from((gateway, ECHO_PORT)).into(),
            Duration::from_secs(10),
        )
        .expect("connect through the tunnel");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(stream.local_addr().unwrap().ip(), source);
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let data: Vec<u8> = (0..transfer).map(|i| pattern(seed, i)).collect();
        writer.write_all(&data).expect("send");
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut received = Vec::with_capacity(transfer);
    let mut reader = stream;
    reader.read_to_end(&mut received).expect("receive");
    sender.join().unwrap();
    assert_eq!(received.len(), transfer, "every byte came back");
    let first_bad = received
        .iter()
        .enumerate()
        .position(|(i, &b)| b != pattern(seed, i));
    assert_eq!(first_bad, None, "the bytes came back intact");
}

/// A counter of a link in `ns` (`/sys/class/net/NAME/statistics/FIELD`).
fn link_counter(ns: &NetNs, name: &str, field: &str) -> u64 {
    let out = ns
        .command("cat")
        .arg(format!("/sys/class/net/{name}/statistics/{field}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn ip_output(ns: &NetNs, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("ip")
        .args(["-n", ns.name()])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sstp-loadgen tun` in `ns` against the server's `port`: `sessions`
/// sessions on as many workers, for at most a minute, `extra` arguments
/// added, its standard error in `log`.
fn start_tun(ns: &NetNs, port: u16, sessions: u32, extra: &[&str], log: &Path) -> Killed {
    let (user, password) = USERS[0];
    let target = format!("{SERVER_VETH}:{port}");
    let sessions = sessions.to_string();
    let child = ns
        .command(env!("CARGO_BIN_EXE_sstp-loadgen"))
        .args(["tun", "--target", &target, "--insecure", "--user", user])
        .args([
            "--password",
            password,
            "--sessions",
            &sessions,
            "--workers",
            &sessions,
        ])
        .args(["--no-pin", "--duration", "60s", "--progress", "never"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("sstp-loadgen starts");
    Killed(child)
}

/// A namespace for the load generator, joined to the server's by a veth
/// pair.
fn client_namespace(server: &TestServer) -> NetNs {
    let client_ns = NetNs::new("sstp-loadgen-tun").expect("client namespace");
    create_veth_pair(
        VethEnd {
            ns: &server.ns,
            name: "lg-s",
            addresses: &[(IpAddr::V4(SERVER_VETH), 24)],
        },
        VethEnd {
            ns: &client_ns,
            name: "lg-c",
            addresses: &[(IpAddr::V4(CLIENT_VETH), 24)],
        },
    )
    .expect("veth pair");
    client_ns
}

#[test]
fn tcp_through_two_tunnels_arrives_intact_and_the_devices_go_away() {
    let server = tcp_through_two_tunnels(TunOffload::Off);
    let stats = server.handle().metrics();
    assert_eq!(stats.event("segments_cut"), 0, "{stats}");
    assert_eq!(stats.event("packets_coalesced"), 0, "{stats}");
}

/// The same with `tun.offload = "auto"`: the kernel takes TSO on sstpd's
/// device, so its TCP hands over super-packets that sstpd cuts to the
/// client's MRU, and the segments of each client read are merged into
/// super-packets before they reach the kernel; every byte still arrives.
#[test]
fn tcp_through_two_tunnels_with_tun_offload_uses_super_packets_both_ways() {
    let server = tcp_through_two_tunnels(TunOffload::Auto);
    let stats = server.handle().metrics();
    assert_eq!(
        stats.event("vnet_hdr") + stats.event("tunsetoffload"),
        0,
        "the kernel took the offloads: {stats}"
    );
    assert!(stats.event("super_packets_read") > 0, "{stats}");
    assert!(
        stats.event("segments_cut") > stats.event("super_packets_read"),
        "{stats}"
    );
    assert!(stats.event("packets_coalesced") > 0, "{stats}");
    assert!(stats.event("super_packets_written") > 0, "{stats}");
    let dropped: u64 = [
        "short_header",
        "bad_ip_header",
        "checksum_not_transport",
        "limit_below_headers",
        "output_too_small",
    ]
    .iter()
    .map(|label| stats.event(label))
    .sum();
    assert_eq!(dropped, 0, "{stats}");
    assert!(
        stats.rx_packets >= 2 * (TRANSFER as u64 / 1400),
        "the merged packets are counted one by one: {stats}"
    );
}

/// Two sessions of `sstp-loadgen tun` against sstpd with `offload`, TCP
/// both ways through each; the devices and rules are gone after SIGINT.
fn tcp_through_two_tunnels(offload: TunOffload) -> Harness {
    let server = server_with(|c| {
        c.server.listen = vec!["0.0.0.0:0".parse().unwrap()];
        c.tun.offload = offload;
    });
    let port = server.addr.port();
    let client_ns = client_namespace(&server);

    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("tun.json");
    let log = dir.path().join("tun.log");
    let json_arg = json.to_str().unwrap();
    let mut child = start_tun(&client_ns, port, 2, &["--json", json_arg], &log);

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut tunnels = tunnels_announced(&log);
    while tunnels.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "two tunnels announced: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
        tunnels = tunnels_announced(&log);
    }
    tunnels.sort();
    assert_eq!(tunnels[0].0, "sstpc0");
    assert_eq!(tunnels[1].0, "sstpc1");
    assert_ne!(tunnels[0].1, tunnels[1].1, "each its own address");

    let listener = server
        .ns
        .run(|| TcpListener::bind((GATEWAY, ECHO_PORT)))
        .expect("listen on the gateway");
    for (seed, (name, address)) in tunnels.iter().enumerate() {
        let sent_before = link_counter(&client_ns, name, "tx_bytes");
        std::thread::scope(|scope| {
            scope.spawn(|| echo_one(&listener));
            client_ns.run(|| transfer_through(*address, seed as u8 + 1));
        });
        let sent = link_counter(&client_ns, name, "tx_bytes") - sent_before;
        let received = link_counter(&client_ns, name, "rx_bytes");
        assert!(
            sent >= TRANSFER as u64 && received >= TRANSFER as u64,
            "{name} carried its own connection: {sent} bytes out, {received} in"
        );
        // A queue deep enough that TCP through the tunnel does not lose
        // packets at the device while the session catches up.
        let out = client_ns
            .command("cat")
            .arg(format!("/sys/class/net/{name}/tx_queue_len"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "4096",
            "{name}"
        );
    }

    // SIGINT: the run ends early, closes its sessions and reports.
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGINT) };
    let status = child.0.wait().expect("sstp-loadgen exits");
    assert!(
        status.success(),
        "{status}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let report: sstp_loadgen::Report =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_consistent(&report);
    let s = &report.sessions;
    assert_eq!((s.established, s.held, s.closed), (2, 2, 2), "{s:?}");
    let tun = report.tun.as_ref().expect("tun figures");
    let names: Vec<&str> = tun.tunnels.iter().map(|t| t.ifname.as_str()).collect();
    assert_eq!(names, ["sstpc0", "sstpc1"]);
    assert!(tun.tunnels.iter().all(|t| t.gateway == GATEWAY.to_string()));
    assert_eq!((tun.read_errors, tun.write_errors), (0, 0), "{tun:?}");
    // This kernel takes TSO on a TUN device: the load generator's devices
    // read super-packets and are written merged ones, and the bytes below
    // still count every packet.
    assert!(
        tun.tunnels
            .iter()
            .all(|t| t.offload.as_deref().is_some_and(|o| o.starts_with("tso"))),
        "{tun:?}"
    );
    let both = 2 * TRANSFER as u64;
    assert!(report.traffic.up.bytes >= both, "{:?}", report.traffic);
    assert!(report.traffic.down.bytes >= both, "{:?}", report.traffic);

    for (name, _) in &tunnels {
        let (exists, _) = ip_output(&client_ns, &["link", "show", "dev", name]);
        assert!(!exists, "{name} was removed");
    }
    let (_, rules) = ip_output(&client_ns, &["rule", "show"]);
    assert!(
        !rules.contains("lookup 2000"),
        "the source rules were removed: {rules}"
    );
    assert!(server.wait_idle(Duration::from_secs(10)));
    server
}

/// The global IPv6 address of `name` in `ns`, once it has one.
fn global_ipv6(ns: &NetNs, name: &str) -> Option<std::net::Ipv6Addr> {
    let (_, out) = ip_output(
        ns,
        &["-6", "-o", "addr", "show", "dev", name, "scope", "global"],
    );
    let word = out
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)?;
    word.split('/').next()?.parse().ok()
}

#[test]
fn kernel_tcp_over_ipv6_runs_through_a_tunnel_device() {
    let server = server_with(|c| {
        c.server.listen = vec!["0.0.0.0:0".parse().unwrap()];
        c.ipv6.enabled = true;
    });
    let gateway6: std::net::Ipv6Addr = "fd99::1".parse().unwrap();
    let port = server.addr.port();
    let client_ns = client_namespace(&server);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tun.log");
    let extra = ["--family", "both", "--ifname", "sstp6c0"];
    let mut child = start_tun(&client_ns, port, 1, &extra, &log);
    // Configured when the source rule, the last step, is in place.
    let configured = || {
        let (_, rules) = ip_output(&client_ns, &["-6", "rule", "show"]);
        global_ipv6(&client_ns, "sstp6c0").is_some_and(|a| rules.contains(&format!("from {a}")))
    };
    assert!(
        wait_until(Duration::from_secs(30), configured),
        "no IPv6 address on the device: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let address = global_ipv6(&client_ns, "sstp6c0").unwrap();
    assert_eq!(
        u128::from(address) >> 80,
        u128::from(gateway6) >> 80,
        "{address} is in the server's fd99::/48"
    );

    let listener = server
        .ns
        .run(|| TcpListener::bind((gateway6, ECHO_PORT)))
        .expect("listen on the IPv6 gateway");
    std::thread::scope(|scope| {
        scope.spawn(|| echo_one(&listener));
        client_ns.run(|| transfer_between(address.into(), gateway6.into(), 256 << 10, 9));
    });

    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGINT) };
    let status = child.0.wait().expect("sstp-loadgen exits");
    assert!(status.success(), "{status}");
    let (_, rules) = ip_output(&client_ns, &["-6", "rule", "show"]);
    assert!(
        !rules.contains("lookup 2000"),
        "the IPv6 source rule was removed: {rules}"
    );
    assert!(server.wait_idle(Duration::from_secs(10)));
}
