#![cfg(feature = "runtime")]
//! RADIUS Framed-Route (RFC 2865 5.22) end to end: a real FreeRADIUS
//! hands out the routes, the real server (TLS, io_uring workers, TUN) in
//! a network namespace installs them as kernel routes with sstpd's
//! protocol number, `ping` from the namespace reaches the client through
//! them (the test answers as the network behind the client would), and
//! the routes go with the session.

mod common;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use sstpd::config::{Config, RadiusServer, Secret, UserBackend};
use sstpd::metrics::Event;
use sstpd::proto::auth::AuthProtocol;
use sstpd::testing::freeradius::{FreeRadius, FreeRadiusConfig, RadiusUser};
use sstpd::testing::netns::NetNs;
use sstpd::tls::certs::SelfSignedKey;
use sstpd::tun::routes::{shown_routes as own_routes, ROUTE_PROTOCOL};

/// frank has a network behind him (and, to be refused: a malformed route
/// and one over the client pool); grace wants part of the same network.
fn users() -> Vec<RadiusUser> {
    vec![
        RadiusUser::new("frank", "frank-secret")
            .with_reply("Framed-Route", "\"192.0.2.0/24 0.0.0.0 5\"")
            .with_reply("Framed-Route", "\"198.51.100.0 255.255.255.128\"")
            .with_reply("Framed-Route", "\"not a route\"")
            .with_reply("Framed-Route", "\"10.99.0.128/25\""),
        RadiusUser::new("grace", "grace-secret").with_reply("Framed-Route", "\"192.0.2.128/25\""),
    ]
}

/// A server authenticating through FreeRADIUS on 127.0.0.1:1812 in its
/// namespace.
fn radius_config(dir: &std::path::Path) -> Config {
    let mut config = test_config(dir, SelfSignedKey::EcdsaP256, 2);
    config.ppp.auth = vec![AuthProtocol::MsChapV2, AuthProtocol::Pap];
    config.users.backends = vec![UserBackend::Radius];
    config.radius.auth_server = vec![RadiusServer {
        address: "127.0.0.1:1812".parse().unwrap(),
        secret: Secret("testing123".into()),
    }];
    config.radius.auth_timeout = Duration::from_millis(500);
    config.radius.retries = 1;
    config
}

fn freeradius(ns: &NetNs) -> FreeRadius {
    FreeRadius::start_in(
        ns,
        &FreeRadiusConfig {
            users: users(),
            ..Default::default()
        },
    )
    .expect("FreeRADIUS starts in the namespace")
}

/// [`own_routes`] in `ns`.
fn own_routes_in(ns: &NetNs) -> Vec<String> {
    ns.run(own_routes)
}

/// Waits (bounded, without blocking the client's runtime) for
/// [`own_routes`] to satisfy `want`; the routes last seen.
async fn routes_when(want: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let routes = own_routes();
        if want(&routes) || tokio::time::Instant::now() >= deadline {
            return routes;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `ping -c 1` from the namespace to `target` (behind the client), while
/// the client answers the echo request as a host at `target` would.
/// Returns whether the request reached the client and ping got its reply.
async fn ping_behind_client(
    client: &sstpd::client::Client,
    inbox: &Inbox,
    target: Ipv4Addr,
) -> (bool, bool) {
    let mut ping = Command::new(require_tool("ping", "iputils-ping"))
        .args(["-n", "-c", "1", "-W", "5", &target.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ping");
    let request = |p: &[u8]| parse_echo(p).is_some_and(|e| e.kind == 8 && e.dst == target);
    let arrived = wait_for(inbox, Duration::from_secs(5), request).await;
    if arrived {
        let echo = inbox
            .borrow()
            .iter()
            .find_map(|p| parse_echo(p).filter(|e| e.kind == 8 && e.dst == target))
            .unwrap();
        // The host behind the client answers from its own address.
        let reply = icmp_echo(0, target, echo.src, echo.id, echo.seq, &echo.payload);
        client.send_ip(&reply).expect("send the reply");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let answered = loop {
        if let Some(status) = ping.try_wait().expect("ping status") {
            break status.success();
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = ping.kill();
            let _ = ping.wait();
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (arrived, answered)
}

/// Pings the gateway from `src` (an address behind the client): the
/// server must accept the source, and the kernel's answer must find its
/// way back through the route.
async fn ping_gateway_from(
    client: &sstpd::client::Client,
    inbox: &Inbox,
    src: Ipv4Addr,
    id: u16,
) -> bool {
    for seq in 0..3u16 {
        client
            .send_ip(&icmp_echo(8, src, GATEWAY, id, seq, b"behind"))
            .expect("send");
        let answered = wait_for(inbox, Duration::from_secs(2), |p| {
            parse_echo(p).is_some_and(|e| e.kind == 0 && e.id == id && e.dst == src)
        })
        .await;
        if answered {
            return true;
        }
    }
    false
}

#[derive(Debug)]
struct Seen {
    frank_routes: Vec<String>,
    ping: (bool, bool),
    from_behind: bool,
    from_behind_second: bool,
    grace_refused_while_frank_holds: Vec<String>,
    grace_pinged: bool,
    after_frank: Vec<String>,
}

#[test]
fn freeradius_framed_routes_are_installed_carry_traffic_and_go_with_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(radius_config(dir.path()));
    let radius = freeradius(&server.ns);
    let tun = server.handle().tun_name().to_owned();
    let addr = server.addr;
    let seen = server.run_clients(move || async move {
        let (frank, frank_inbox) = connect(&mschapv2_options(addr, "frank", "frank-secret"))
            .await
            .expect("frank connects");
        let frank_routes = routes_when(|r| r.len() == 2).await;
        let ping = ping_behind_client(&frank, &frank_inbox, Ipv4Addr::new(192, 0, 2, 77)).await;
        let from_behind =
            ping_gateway_from(&frank, &frank_inbox, Ipv4Addr::new(192, 0, 2, 9), 1).await;
        let from_behind_second =
            ping_gateway_from(&frank, &frank_inbox, Ipv4Addr::new(198, 51, 100, 100), 2).await;

        // grace's route overlaps frank's: refused while his session lives;
        // her session itself is fine.
        let (grace, grace_inbox) = connect(&mschapv2_options(addr, "grace", "grace-secret"))
            .await
            .expect("grace connects");
        let grace_pinged = ping_gateway(&grace, &grace_inbox, 3, b"grace").await;
        let grace_refused_while_frank_holds = own_routes();
        grace.close(Duration::from_secs(5)).await;

        frank.close(Duration::from_secs(5)).await;
        let after_frank = routes_when(|r| r.is_empty()).await;
        Seen {
            frank_routes,
            ping,
            from_behind,
            from_behind_second,
            grace_refused_while_frank_holds,
            grace_pinged,
            after_frank,
        }
    });
    let stats = server.handle().metrics();
    let context = format!("{seen:?}\n{stats}\n{}", radius.log());
    assert_eq!(
        seen.frank_routes,
        [
            format!("192.0.2.0/24 dev {tun} scope link metric 5"),
            format!("198.51.100.0/25 dev {tun} scope link"),
        ],
        "{context}"
    );
    assert_eq!(
        seen.ping,
        (true, true),
        "ping from the namespace reached the client and got its answer: {context}"
    );
    assert!(
        seen.from_behind,
        "source in 192.0.2.0/24 accepted: {context}"
    );
    assert!(
        seen.from_behind_second,
        "source in 198.51.100.0/25 accepted: {context}"
    );
    assert!(seen.grace_pinged, "{context}");
    assert_eq!(
        seen.grace_refused_while_frank_holds.len(),
        2,
        "grace's overlapping route is not installed: {context}"
    );
    assert!(
        seen.after_frank.is_empty(),
        "routes gone with the session: {context}"
    );
    let count = |e| stats.count(e);
    assert_eq!(count(Event::FramedRouteInstalled), 2, "{context}");
    assert_eq!(count(Event::FramedRouteInPool), 1, "{context}");
    assert_eq!(count(Event::FramedRouteOverlap), 1, "{context}");
    assert_eq!(count(Event::KernelRouteAdded), 2, "{context}");
    assert_eq!(count(Event::KernelRouteAddFailed), 0, "{context}");
    assert!(
        count(Event::RadiusAttributeIgnored) >= 1,
        "the malformed route is counted: {context}"
    );
    assert_eq!(count(Event::SpoofedSource), 0, "{context}");
}

#[test]
fn stale_routes_are_removed_at_start_and_live_ones_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let ns = NetNs::new("sstpd-e2e").expect("namespace");
    // A route with sstpd's protocol number left from before (on a device
    // that outlived the run), and one of the operator's.
    ns.ip(&[
        "link", "add", "old0", "type", "veth", "peer", "name", "old1",
    ])
    .unwrap();
    ns.ip(&["link", "set", "old0", "up"]).unwrap();
    ns.ip(&[
        "route",
        "add",
        "203.0.113.0/24",
        "dev",
        "old0",
        "proto",
        &ROUTE_PROTOCOL.to_string(),
    ])
    .unwrap();
    ns.ip(&["route", "add", "203.0.114.0/24", "dev", "old0"])
        .unwrap();
    let radius = freeradius(&ns);
    let config = radius_config(dir.path());
    let server = ns
        .run(move || sstpd::app::start(config))
        .expect("server starts");
    assert_eq!(
        server.metrics().count(Event::KernelRouteStaleRemoved),
        1,
        "{}",
        server.metrics()
    );
    assert!(own_routes_in(&ns).is_empty());
    let addr = server.local_addrs()[0];
    // A session holding its routes when the server shuts down: the client
    // runs (and answers the server's Terminate) on a thread of its own
    // until the server has stopped.
    let connected = std::sync::atomic::AtomicUsize::new(0);
    let stopped = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            ns.run(|| {
                tokio_uring::start(async {
                    let (client, _inbox) =
                        connect(&mschapv2_options(addr, "frank", "frank-secret"))
                            .await
                            .expect("frank connects");
                    let routes = routes_when(|r| r.len() == 2).await;
                    connected.store(routes.len() + 1, std::sync::atomic::Ordering::SeqCst);
                    while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    drop(client);
                })
            })
        });
        assert!(wait_until(Duration::from_secs(30), || {
            connected.load(std::sync::atomic::Ordering::SeqCst) > 0
        }));
        assert_eq!(
            connected.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "frank's two routes were installed: {}",
            radius.log()
        );
        let stats = server.metrics();
        server.shutdown();
        assert!(server.join(Duration::from_secs(10)));
        stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        client.join().unwrap();
        assert_eq!(stats.sessions_active, 1, "the session was live at shutdown");
    });
    // The TUN device is gone too, which would take its routes; the
    // operator's route on another device shows nothing else was touched.
    assert!(own_routes_in(&ns).is_empty());
    let others = ns.run(|| {
        let out = Command::new("ip")
            .args(["-4", "route", "show", "203.0.114.0/24"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    assert!(others.contains("203.0.114.0/24 dev old0"), "{others}");
}

/// The TUN device's `tx_dropped` (the kernel's drops: its drop filter, a
/// full queue).
fn kernel_drops(tun: &str) -> u64 {
    sstpd::tun::DeviceStats::open(tun)
        .ok()
        .and_then(|stats| stats.tx_dropped())
        .expect("the device's counters")
}

/// A client that stops reading while its routed network is flooded: once
/// its queue is full, the kernel's drop filter drops the packets to its
/// Framed-Route prefixes too (not only to its address), so sstpd stops
/// reading what it would drop; once it reads again the marks are gone and
/// the network behind it is reached.
#[test]
fn a_congested_sessions_routed_prefixes_are_dropped_by_the_kernel_until_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(radius_config(dir.path()));
    let radius = freeradius(&server.ns);
    let tun = server.handle().tun_name().to_owned();
    let addr = server.addr;
    let counters = server.handle().counters();
    let behind = Ipv4Addr::new(192, 0, 2, 77);
    const ENOUGH: u64 = 1_000;
    let (routes, kernel, sstpd, own, ping) = server.run_clients(move || async move {
        let (frank, inbox) = connect(&mschapv2_options(addr, "frank", "frank-secret"))
            .await
            .expect("frank connects");
        let routes = routes_when(|r| r.len() == 2).await;
        frank.pause_reading();
        // Flooded until the kernel drops (its filter, once the queue is
        // full and stays full: the client's socket buffers fill first).
        let (kernel_before, sstpd_before) = (kernel_drops(&tun), counters.snapshot().tx_queue_full);
        flood_until(behind, || kernel_drops(&tun) - kernel_before >= ENOUGH).await;
        let kernel = kernel_drops(&tun) - kernel_before;
        let sstpd = counters.snapshot().tx_queue_full - sstpd_before;
        frank.resume_reading();
        // Answered once the client has read its backlog and the writer has
        // taken the queue, which clears the address's mark and the routes'.
        let own = ping_gateway(&frank, &inbox, 5, b"own").await;
        let ping = ping_behind_client(&frank, &inbox, behind).await;
        frank.close(Duration::from_secs(5)).await;
        (routes, kernel, sstpd, own, ping)
    });
    let stats = server.handle().metrics();
    let context = format!("kernel {kernel}, sstpd {sstpd}\n{stats}\n{}", radius.log());
    assert_eq!(routes.len(), 2, "{context}");
    assert!(stats.event("marked") >= 1, "{context}");
    // The device counts a super-packet once, sstpd every datagram.
    assert!(
        kernel >= ENOUGH,
        "the kernel dropped what went to the congested route: {context}"
    );
    assert!(own, "the address's mark is gone: {context}");
    assert_eq!(ping, (true, true), "and the routes': {context}");
    assert_eq!(
        stats.event("mark_failed") + stats.event("clear_failed"),
        0,
        "{context}"
    );
}

/// Sends of a probe of [`probe`].
const PROBE: usize = 10;

/// [`PROBE`] sends to `to`: how many the kernel dropped.
async fn probe(tun: &str, to: Ipv4Addr) -> u64 {
    let before = kernel_drops(tun);
    flood_sends(to, PROBE);
    tokio::time::sleep(Duration::from_millis(50)).await;
    kernel_drops(tun) - before
}

/// A newer session of the user takes the routes over from an older one
/// whose queue is full (its prefixes marked in the drop filter): the mark
/// goes with the old owner, so the network behind the new session is
/// reached at once, while the old session is still stalled.
#[test]
fn a_route_taken_over_from_a_congested_session_is_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(radius_config(dir.path()));
    let radius = freeradius(&server.ns);
    let tun = server.handle().tun_name().to_owned();
    let addr = server.addr;
    let behind = Ipv4Addr::new(192, 0, 2, 77);
    let (before, after, ping) = server.run_clients(move || async move {
        let frank = mschapv2_options(addr, "frank", "frank-secret");
        let (old, _old_inbox) = connect(&frank).await.expect("frank connects");
        routes_when(|r| r.len() == 2).await;
        old.pause_reading();
        // Until the client's socket buffers are full too and the mark
        // stays: its writer no longer takes the queue.
        let start = kernel_drops(&tun);
        flood_until(behind, || kernel_drops(&tun) - start >= 3_000).await;
        let before = probe(&tun, behind).await;
        let (new, inbox) = connect(&frank).await.expect("frank again");
        let after = probe(&tun, behind).await;
        let ping = ping_behind_client(&new, &inbox, behind).await;
        new.close(Duration::from_secs(5)).await;
        (before, after, ping)
    });
    let stats = server.handle().metrics();
    let context = format!("probes {before} {after}\n{stats}\n{}", radius.log());
    assert_eq!(before, PROBE as u64, "the old owner's mark: {context}");
    assert!(stats.count(Event::FramedRouteTakenOver) >= 1, "{context}");
    assert_eq!(after, 0, "no mark inherited: {context}");
    assert_eq!(ping, (true, true), "{context}");
}
