#![cfg(feature = "runtime")]
//! sstpd behind a real HAProxy (Debian 12's 2.6, TCP mode) that sends the
//! PROXY protocol header, `send-proxy-v2` to one listener and
//! `send-proxy` (v1) to the other, all inside one network namespace:
//!
//! * clients (the protocol core's client role over real TLS) bound to
//!   their own loopback addresses connect through HAProxy, which connects
//!   to sstpd from yet another address; sstpd's session registry (what a
//!   Disconnect-Request's Calling-Station-Id finds) and its counters see
//!   the clients' addresses, never HAProxy's, and `max_preauth_per_source`
//!   counts each client, not the balancer (a silent client holding its
//!   address's one place does not lock the others out);
//! * a connection to a PROXY listener from outside `proxy_from`, one from
//!   the balancer's address without a header, and one that never sends
//!   the header are closed and counted, while the proxied sessions keep
//!   passing traffic.
//! * `sstpctl drain` with HAProxy's `option httpchk` on the metrics
//!   endpoint's `/health`: HAProxy marks the drained node down and sends
//!   new connections to the other server, and takes it back after
//!   `drain --cancel`.
//!
//! Needs `haproxy` (scripts/test installs it) and root, like every
//! end-to-end test.

mod common;

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use sstpd::aaa::dae::Selector;
use sstpd::config::{DaeClient, ListenerSection, ProxyProtocol, RadiusServer, Secret, UserBackend};
use sstpd::testing::freeradius::{FreeRadius, FreeRadiusConfig, RadiusUser};
use sstpd::tls::certs::SelfSignedKey;

/// HAProxy's address towards sstpd (the only one in `proxy_from`).
const BALANCER: &str = "127.0.0.2";
/// Where HAProxy listens for clients.
const FRONTEND: &str = "127.0.0.3";
/// The clients' source addresses (v2 path, v1 path).
const CLIENT_V2: &str = "127.0.0.5";
const CLIENT_V1: &str = "127.0.0.6";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn proxy_listener(mode: ProxyProtocol) -> ListenerSection {
    ListenerSection {
        proxy_protocol: mode,
        proxy_from: vec![BALANCER.parse().unwrap()],
        proxy_header_timeout: Duration::from_secs(1),
        ..ListenerSection::plain("127.0.0.1:0".parse().unwrap())
    }
}

fn haproxy_cfg(v2_front: u16, v2_back: SocketAddr, v1_front: u16, v1_back: SocketAddr) -> String {
    format!(
        "global\n    maxconn 256\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\
         frontend sstp_v2\n    bind {FRONTEND}:{v2_front}\n    default_backend sstpd_v2\n\
         backend sstpd_v2\n    server s1 {v2_back} send-proxy-v2 source {BALANCER}\n\
         frontend sstp_v1\n    bind {FRONTEND}:{v1_front}\n    default_backend sstpd_v1\n\
         backend sstpd_v1\n    server s1 {v1_back} send-proxy source {BALANCER}\n"
    )
}

fn by_calling_station(address: &str) -> Selector {
    Selector {
        calling_station_id: Some(address.to_string()),
        ..Selector::default()
    }
}

fn options(
    target: SocketAddr,
    bind: &str,
    user: &str,
    password: &str,
) -> sstpd::client::ClientOptions {
    let mut o = mschapv2_options(target, user, password);
    o.bind = Some(ip(bind));
    o
}

/// A TCP connection from `source` to `target`, inside the caller's
/// namespace.
fn connect_from(source: &str, target: SocketAddr) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(ip(source), 0).into()).unwrap();
    socket.connect(&target.into()).unwrap();
    socket.into()
}

/// Whether the server closed `stream` (EOF or reset) within `timeout`.
fn closed_by_server(stream: &mut std::net::TcpStream, timeout: Duration) -> bool {
    use std::io::{ErrorKind, Read as _};
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Starts HAProxy in `server`'s namespace in front of its two PROXY
/// listeners (`send-proxy-v2` to `v2_back`, `send-proxy` to `v1_back`);
/// returns its two frontends once it listens. Killed with the namespace.
fn start_haproxy(
    server: &TestServer,
    dir: &std::path::Path,
    v2_back: SocketAddr,
    v1_back: SocketAddr,
) -> (SocketAddr, SocketAddr) {
    let fronts = start_haproxy_in(&server.ns, dir, ip(FRONTEND), 2, |fronts| {
        haproxy_cfg(fronts[0].port(), v2_back, fronts[1].port(), v1_back)
    });
    (fronts[0], fronts[1])
}

#[test]
fn behind_haproxy_sstpd_sees_the_clients_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    config.server.listen = Vec::new();
    config.server.listener = vec![
        proxy_listener(ProxyProtocol::V2),
        proxy_listener(ProxyProtocol::V1),
    ];
    // Counted by the client's address, each client has its own place; by
    // HAProxy's, the second would be refused.
    config.server.max_preauth_per_source = 1;
    // The registry of live sessions by Calling-Station-Id runs with the
    // dynamic authorization listener.
    config.radius.dae.client = vec![DaeClient {
        address: "127.0.0.1".parse().unwrap(),
        secret: Secret("testing123".into()),
    }];
    // sstpctl lists the clients too.
    let socket = dir.path().join("control.sock");
    config.control.socket = Some(socket.clone());
    let server = TestServer::start(config);
    let (v2_back, v1_back) = (
        server.handle().local_addrs()[0],
        server.handle().local_addrs()[1],
    );
    let (v2_front, v1_front) = start_haproxy(&server, dir.path(), v2_back, v1_back);

    let handle = server.handle();
    let outcome = server.ns.run(|| {
        tokio_uring::start(async {
            // A client that connects through HAProxy and stays silent holds
            // its address's one place in the pre-auth window
            // (max_preauth_per_source = 1). Counted by HAProxy's address,
            // nobody else could log in meanwhile.
            let holder = connect_from("127.0.0.7", v2_front);
            let held = {
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while handle.admission_counts().1 == 0 && std::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                handle.admission_counts()
            };
            let (alice_options, bob_options) = (
                options(v2_front, CLIENT_V2, "alice", "alice-secret"),
                options(v1_front, CLIENT_V1, "bob", "bob-secret"),
            );
            let (a, b) = tokio::join!(connect(&alice_options), connect(&bob_options));
            let (alice, inbox_a) = a.expect("alice through send-proxy-v2");
            let (bob, inbox_b) = b.expect("bob through send-proxy");
            drop(holder);
            let registry = [CLIENT_V2, CLIENT_V1, BALANCER, "127.0.0.1"].map(|a| {
                handle
                    .find_sessions(&by_calling_station(a))
                    .into_iter()
                    .map(|s| s.user)
                    .collect::<Vec<_>>()
            });
            let listed = std::process::Command::new(env!("CARGO_BIN_EXE_sstpctl"))
                .arg("--socket")
                .arg(&socket)
                .args(["sessions", "--json"])
                .output()
                .expect("sstpctl");
            let listed: serde_json::Value = serde_json::from_slice(&listed.stdout)
                .unwrap_or_else(|e| panic!("{e}: {listed:?}"));
            let clients: Vec<(String, String)> = listed["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| {
                    let client: SocketAddr = s["client"].as_str()?.parse().ok()?;
                    Some((s["user"].as_str()?.to_owned(), client.ip().to_string()))
                })
                .collect();
            let pinged = ping_gateway(&alice, &inbox_a, 1, b"alice").await
                && ping_gateway(&bob, &inbox_b, 2, b"bob").await;
            // Hostile and broken connections to the PROXY listeners, on a
            // thread of their own (it inherits this thread's namespace)
            // while this runtime keeps the sessions going.
            let misbehaving = std::thread::spawn(move || misbehave(v2_back, v1_back));
            while !misbehaving.is_finished() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let refused = misbehaving.join().unwrap();
            // The proxied sessions were not disturbed.
            let still = ping_gateway(&alice, &inbox_a, 3, b"alice again").await
                && ping_gateway(&bob, &inbox_b, 4, b"bob again").await;
            alice.close(Duration::from_secs(5)).await;
            bob.close(Duration::from_secs(5)).await;
            (held, registry, clients, pinged, refused, still)
        })
    });
    let (held, registry, clients, pinged, refused, still) = outcome;
    let stats = handle.metrics();
    assert_eq!(held, (1, 1), "the silent client is in the window");
    assert_eq!(registry[0], ["alice"], "{stats}");
    assert_eq!(registry[1], ["bob"], "{stats}");
    assert!(registry[2].is_empty(), "HAProxy's address is no session's");
    assert!(registry[3].is_empty());
    let mut clients = clients;
    clients.sort();
    assert_eq!(
        clients,
        [
            ("alice".to_owned(), CLIENT_V2.to_owned()),
            ("bob".to_owned(), CLIENT_V1.to_owned())
        ],
        "sstpctl shows the clients' addresses, not HAProxy's"
    );
    assert!(pinged, "{stats}");
    // Alice, Bob and the silent holder.
    assert_eq!(stats.event("proxy_header_accepted"), 3, "{stats}");
    assert_eq!(stats.event("refused_preauth_per_source"), 0, "{stats}");
    assert_eq!(
        refused, [true; 4],
        "each hostile connection closed: {stats}"
    );
    assert!(still, "{stats}");
    assert_eq!(stats.event("proxy_source_not_allowed"), 1, "{stats}");
    assert_eq!(stats.event("proxy_header_missing"), 1, "{stats}");
    assert_eq!(stats.event("proxy_header_timeout"), 1, "{stats}");
    assert_eq!(stats.event("proxy_header_wrong_version"), 1, "{stats}");
    assert!(server.wait_idle(Duration::from_secs(10)), "{stats}");
}

/// Connections sstpd must close: from outside `proxy_from`; from the
/// balancer without a header (TLS straight away); a header that never
/// comes (closed after `proxy_header_timeout`, 1 s); a v1 header on the v2
/// listener. Whether each was closed by the server, in that order.
fn misbehave(v2_back: SocketAddr, v1_back: SocketAddr) -> [bool; 4] {
    let limit = Duration::from_secs(5);
    let mut direct = connect_from(CLIENT_V2, v2_back);
    let mut headerless = connect_from(BALANCER, v1_back);
    headerless
        .write_all(&[
            0x16, 0x03, 0x01, 0x00, 0x20, 0x01, 0x00, 0x00, 0x1c, 0x03, 0x03, 0, 0, 0, 0, 0,
        ])
        .unwrap();
    let mut wrong = connect_from(BALANCER, v2_back);
    wrong
        .write_all(b"PROXY TCP4 192.0.2.7 10.0.0.1 50123 443\r\n")
        .unwrap();
    let mut silent = connect_from(BALANCER, v2_back);
    let started = std::time::Instant::now();
    let silent_closed =
        closed_by_server(&mut silent, limit) && started.elapsed() >= Duration::from_millis(900);
    [
        closed_by_server(&mut direct, limit),
        closed_by_server(&mut headerless, limit),
        silent_closed,
        closed_by_server(&mut wrong, limit),
    ]
}

/// RADIUS sees the client too: Calling-Station-Id in FreeRADIUS's
/// accounting records of a session through `send-proxy-v2` is the
/// client's address.
#[test]
fn behind_haproxy_radius_calling_station_id_is_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    config.server.listen = Vec::new();
    config.server.listener = vec![
        proxy_listener(ProxyProtocol::V2),
        proxy_listener(ProxyProtocol::V1),
    ];
    config.users.backends = vec![UserBackend::Radius];
    let radius_server = |address: &str| RadiusServer {
        address: address.parse().unwrap(),
        secret: Secret("testing123".into()),
    };
    config.radius.auth_server = vec![radius_server("127.0.0.1:1812")];
    config.radius.acct_server = vec![radius_server("127.0.0.1:1813")];
    let server = TestServer::start(config);
    let radius = FreeRadius::start_in(
        &server.ns,
        &FreeRadiusConfig {
            users: vec![RadiusUser::new("carol", "carol-secret")],
            ..Default::default()
        },
    )
    .expect("FreeRADIUS starts in the namespace");
    let (v2_back, v1_back) = (
        server.handle().local_addrs()[0],
        server.handle().local_addrs()[1],
    );
    let (v2_front, _) = start_haproxy(&server, dir.path(), v2_back, v1_back);
    server.run_clients(move || async move {
        let (client, _) = connect(&options(v2_front, CLIENT_V2, "carol", "carol-secret"))
            .await
            .expect("carol through send-proxy-v2 and FreeRADIUS");
        client.close(Duration::from_secs(5)).await;
    });
    let records = radius
        .wait_for_records(
            |records| records.iter().any(|r| r.status_type() == Some("Stop")),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", radius.log()));
    let sessions: Vec<_> = records
        .iter()
        .filter(|r| matches!(r.status_type(), Some("Start" | "Stop")))
        .collect();
    // A retransmission (FreeRADIUS slow to answer) is recorded again.
    for kind in ["Start", "Stop"] {
        assert!(
            sessions.iter().any(|r| r.status_type() == Some(kind)),
            "no {kind}: {records:?}"
        );
    }
    for record in sessions {
        assert_eq!(record.get("User-Name"), Some("carol"), "{record:?}");
        assert_eq!(
            record.get("Calling-Station-Id"),
            Some(CLIENT_V2),
            "{record:?}"
        );
    }
    // The server first: its shutdown waits for FreeRADIUS to answer the
    // Accounting-Off.
    drop(server);
}

/// Runs `sstpctl ARGS` (the real binary) on the control socket `socket`.
fn sstpctl(socket: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sstpctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run sstpctl")
}

/// `sstpctl drain` behind a real HAProxy checking `GET /health` on the
/// metrics port (the backend lines of docs/operations.md "Draining a
/// node"): HAProxy marks the drained node down and sends new connections to
/// the other server (here a bare TCP listener standing in for a second
/// node), and marks it up again after `drain --cancel`.
#[test]
fn haproxy_health_checks_see_a_drain_and_move_new_clients_away() {
    use std::io::{ErrorKind, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    config.server.listen = Vec::new();
    config.server.listener = vec![proxy_listener(ProxyProtocol::V2)];
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let socket = dir.path().join("control.sock");
    config.control.socket = Some(socket.clone());
    let server = TestServer::start(config);
    let back = server.handle().local_addrs()[0];
    let health = server.handle().metrics_addr().unwrap();
    let other_node = server
        .ns
        .run(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    other_node.set_nonblocking(true).unwrap();
    let other = other_node.local_addr().unwrap();
    let health_port = health.port();
    let front = start_haproxy_in(&server.ns, dir.path(), ip(FRONTEND), 1, |fronts| {
        format!(
            "global\n    maxconn 256\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\
             frontend sstp\n    bind {}\n    default_backend sstpd\n\
             backend sstpd\n    option httpchk\n    http-check send meth GET uri /health\n\
             \x20   http-check expect status 200\n    default-server inter 100ms fall 1 rise 1\n\
             \x20   server s1 {back} send-proxy-v2 source {BALANCER} check port {health_port}\n\
             \x20   server s2 {other} backup\n",
            fronts[0]
        )
    })[0];

    // Whether a new connection through HAProxy lands on the other node.
    let lands_on_the_other_node = || {
        let mut stream = server.ns.run(move || connect_from(CLIENT_V2, front));
        let _ = stream.write_all(b"\x16\x03\x01");
        std::thread::sleep(Duration::from_millis(50));
        match other_node.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("{e}"),
        }
    };
    let session_through_haproxy = || {
        server.ns.run(move || {
            tokio_uring::start(async move {
                connect(&options(front, CLIENT_V2, "alice", "alice-secret"))
                    .await
                    .map(|(client, _)| !client.is_closed())
                    .unwrap_or(false)
            })
        })
    };

    assert!(session_through_haproxy(), "no session through HAProxy");
    let drained = sstpctl(&socket, &["drain", "--over", "1s"]);
    assert!(drained.status.success(), "{drained:?}");
    assert!(
        wait_until(Duration::from_secs(5), lands_on_the_other_node),
        "HAProxy kept sending new connections to the drained node"
    );
    let resumed = sstpctl(&socket, &["drain", "--cancel"]);
    assert!(resumed.status.success(), "{resumed:?}");
    assert!(
        wait_until(Duration::from_secs(5), || !lands_on_the_other_node()),
        "HAProxy did not take the node back after drain --cancel"
    );
    assert!(
        session_through_haproxy(),
        "no session through HAProxy after drain --cancel"
    );
    let metrics = server.handle().metrics();
    assert!(metrics.event("metrics_health_checked") >= 3, "{metrics}");
}
