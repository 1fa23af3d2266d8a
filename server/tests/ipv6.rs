#![cfg(feature = "runtime")]
//! IPv6 through the tunnel, end to end (issue 20): the real server (TLS,
//! io_uring workers, the TUN device) in a network namespace with
//! `[ipv6]` enabled, and dual-stack clients of the protocol core's client
//! role that solicit the Router Advertisement and form their address by
//! SLAAC. A host behind the server is a UDP socket in the server's
//! namespace; packets are built and checked with etherparse.

mod common;

use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use sstpd::client::Client;
use sstpd::config::{ClientToClient, Config};
use sstpd::tls::certs::SelfSignedKey;

/// sstpd's default `ipv6.gateway`: the first host of `fd99::/48`.
const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1);
const HOST_PORT: u16 = 7007;
const SLAAC: Duration = Duration::from_secs(5);

fn dual_stack(dir: &std::path::Path, adjust: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = test_config(dir, SelfSignedKey::EcdsaP256, 2);
    config.ipv6.enabled = true;
    adjust(&mut config);
    TestServer::start(config)
}

fn icmpv6_echo_request(src: Ipv6Addr, dst: Ipv6Addr, seq: u16, payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ipv6(src.octets(), dst.octets(), 64).icmpv6_echo_request(7, seq);
    let mut packet = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut packet, payload).unwrap();
    packet
}

fn udp6(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let (SocketAddr::V6(s), SocketAddr::V6(d)) = (src, dst) else {
        panic!("IPv6 addresses only");
    };
    let builder = PacketBuilder::ipv6(s.ip().octets(), d.ip().octets(), 64).udp(s.port(), d.port());
    let mut packet = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut packet, payload).unwrap();
    packet
}

/// An ICMPv6 echo reply from `from` to `to` carrying `payload`, with a
/// checksum etherparse verifies.
fn is_echo_reply(p: &[u8], from: Ipv6Addr, to: Ipv6Addr, payload: &[u8]) -> bool {
    let Ok(sliced) = SlicedPacket::from_ip(p) else {
        return false;
    };
    let (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Icmpv6(icmp))) =
        (sliced.net, sliced.transport)
    else {
        return false;
    };
    let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
    let checksum_ok = icmp
        .icmp_type()
        .calc_checksum(src.octets(), dst.octets(), icmp.payload())
        .is_ok_and(|c| c == icmp.checksum());
    icmp.type_u8() == 129 && src == from && dst == to && icmp.payload() == payload && checksum_ok
}

/// A UDP datagram from `from` to `to` carrying `payload`.
fn is_udp(p: &[u8], from: SocketAddr, to: SocketAddr, payload: &[u8]) -> bool {
    let Ok(sliced) = SlicedPacket::from_ip(p) else {
        return false;
    };
    let (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Udp(udp))) = (sliced.net, sliced.transport)
    else {
        return false;
    };
    let h = ip.header();
    SocketAddr::from((h.source_addr(), udp.source_port())) == from
        && SocketAddr::from((h.destination_addr(), udp.destination_port())) == to
        && udp.payload() == payload
}

/// A UDP echo host in the server's namespace on `[::]:HOST_PORT`; stops
/// when the flag is set.
fn start_udp_host(server: &TestServer) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = server.ns.run(move || {
        let socket = UdpSocket::bind(("::", HOST_PORT)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        std::thread::spawn(move || {
            let mut echoed = 0;
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let mut reply = b"echo:".to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    if socket.send_to(&reply, from).is_ok() {
                        echoed += 1;
                    }
                }
            }
            echoed
        })
    });
    (stop, handle)
}

/// Pings `dst` from `src` up to five times; whether a reply came.
async fn ping6(client: &Client, inbox: &Inbox, src: Ipv6Addr, dst: Ipv6Addr, tag: &[u8]) -> bool {
    for seq in 0..5 {
        client
            .send_ip(&icmpv6_echo_request(src, dst, seq, tag))
            .unwrap();
        if wait_for(inbox, Duration::from_secs(1), |p| {
            is_echo_reply(p, dst, src, tag)
        })
        .await
        {
            return true;
        }
    }
    false
}

#[test]
fn dual_stack_sessions_exchange_icmpv6_and_udp_with_a_host_behind_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = dual_stack(dir.path(), |_| {});
    let (stop, host) = start_udp_host(&server);
    let addr = server.addr;
    let results = server.run_clients(move || async move {
        let mut results = Vec::new();
        let mut sessions = Vec::new();
        for (user, password) in USERS {
            sessions.push(
                connect(&mschapv2_options(addr, user, password))
                    .await
                    .unwrap(),
            );
        }
        for ((client, inbox), (user, _)) in sessions.iter().zip(USERS) {
            let me = client.autoconfigure_ipv6(SLAAC).await.expect("SLAAC");
            let pinged6 = ping6(client, inbox, me, GATEWAY6, user.as_bytes()).await;
            let pinged4 = ping_gateway(client, inbox, 3, user.as_bytes()).await;
            let from = SocketAddr::from((me, 40_000));
            let to = SocketAddr::from((GATEWAY6, HOST_PORT));
            let mut udp_echoed = false;
            for _ in 0..5 {
                client.send_ip(&udp6(from, to, user.as_bytes())).unwrap();
                let want = [b"echo:".as_slice(), user.as_bytes()].concat();
                if wait_for(inbox, Duration::from_secs(1), |p| {
                    is_udp(p, to, from, &want)
                })
                .await
                {
                    udp_echoed = true;
                    break;
                }
            }
            results.push((me, pinged6, pinged4, udp_echoed));
        }
        for (client, _) in &sessions {
            client.close(Duration::from_secs(5)).await;
        }
        results
    });
    stop.store(true, Ordering::Relaxed);
    let echoed = host.join().unwrap();
    let stats = server.handle().metrics();
    assert_ne!(
        u128::from(results[0].0) >> 64,
        u128::from(results[1].0) >> 64,
        "each session has a /64 of its own"
    );
    for (me, pinged6, pinged4, udp_echoed) in results {
        assert_eq!(
            u128::from(me) >> 80,
            u128::from(GATEWAY6) >> 80,
            "{me} is inside fd99::/48"
        );
        assert!(pinged6, "{me}: no ICMPv6 echo reply: {stats}");
        assert!(pinged4, "{me}: the same session's IPv4 stopped: {stats}");
        assert!(udp_echoed, "{me}: no UDP echo from the host: {stats}");
    }
    assert!(echoed >= 2, "the host echoed {echoed} datagrams");
    assert_eq!(stats.event("spoofed_source"), 0, "{stats}");
    assert_eq!(stats.event("client_to_client_denied"), 0, "{stats}");
}

#[test]
fn router_solicitations_are_answered_and_spoofed_ipv6_sources_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = dual_stack(dir.path(), |_| {});
    let addr = server.addr;
    let outcome = server.run_clients(move || async move {
        let (a, inbox_a) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
            .await
            .unwrap();
        let (b, _inbox_b) = connect(&mschapv2_options(addr, "bob", "bob-secret"))
            .await
            .unwrap();
        let me = a.autoconfigure_ipv6(SLAAC).await.expect("SLAAC for alice");
        let bobs = b.autoconfigure_ipv6(SLAAC).await.expect("SLAAC for bob");

        // A Router Solicitation from our link-local address is answered.
        let before = a.router_advertisements();
        let mut rs = Vec::new();
        sstpd::proto::ndp::encode_router_solicitation(a.ipv6_link_local().unwrap(), &mut rs);
        a.send_ip(&rs).unwrap();
        let answered = wait_until_async(Duration::from_secs(2), || {
            a.router_advertisements() > before
        })
        .await;

        // Three forged sources: outside our /64, in bob's /64, and a
        // link-local address that is not ours. And one forged RS.
        let outside = Ipv6Addr::from(u128::from(me) ^ (0xffff << 64));
        let in_bobs = Ipv6Addr::from(u128::from(bobs) ^ 1);
        let other_link_local: Ipv6Addr = "fe80::dead:beef".parse().unwrap();
        for forged in [outside, in_bobs, other_link_local] {
            a.send_ip(&icmpv6_echo_request(forged, GATEWAY6, 1, b"forged"))
                .unwrap();
        }
        let mut forged_rs = Vec::new();
        sstpd::proto::ndp::encode_router_solicitation(other_link_local, &mut forged_rs);
        let ras = a.router_advertisements();
        a.send_ip(&forged_rs).unwrap();
        let forged_answered = wait_for(&inbox_a, Duration::from_millis(500), |p| {
            p.len() > 40 && p[6] == 58 && p[40] == 129
        })
        .await
            || a.router_advertisements() > ras;
        // The honest address still gets through.
        let honest = ping6(&a, &inbox_a, me, GATEWAY6, b"honest").await;
        (answered, forged_answered, honest)
    });
    let (answered, forged_answered, honest) = outcome;
    let stats = server.handle().metrics();
    assert!(
        answered,
        "no Router Advertisement answered the solicitation"
    );
    assert!(!forged_answered, "a forged packet got an answer: {stats}");
    assert!(honest, "{stats}");
    assert_eq!(stats.event("spoofed_source"), 4, "{stats}");
}

/// Polls `condition` every 10 ms, at most `timeout`.
async fn wait_until_async(timeout: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

#[test]
fn a_prefix_returns_to_the_pool_when_its_session_ends() {
    let dir = tempfile::tempdir().unwrap();
    // A /63 holds two /64s; the gateway's is never delegated: one left.
    let server = dual_stack(dir.path(), |c| c.ipv6.prefix.len = 63);
    let addr = server.addr;
    let (first, second_while_taken, after) = server.run_clients(move || async move {
        let (a, _) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
            .await
            .unwrap();
        let first = a.autoconfigure_ipv6(SLAAC).await;
        let (b, _) = connect(&mschapv2_options(addr, "bob", "bob-secret"))
            .await
            .unwrap();
        let second_while_taken = b.autoconfigure_ipv6(Duration::from_secs(2)).await;
        a.close(Duration::from_secs(5)).await;
        b.close(Duration::from_secs(5)).await;
        let (c, _) = connect(&mschapv2_options(addr, "bob", "bob-secret"))
            .await
            .unwrap();
        let after = c.autoconfigure_ipv6(SLAAC).await;
        c.close(Duration::from_secs(5)).await;
        (first, second_while_taken, after)
    });
    let stats = server.handle().metrics();
    let first = first.expect("the first session gets the /64");
    assert_eq!(second_while_taken, None, "the pool had one /64: {stats}");
    let after = after.expect("the /64 came back to the pool");
    assert_eq!(u128::from(after) >> 64, u128::from(first) >> 64, "{stats}");
    assert_eq!(stats.event("exhausted"), 1, "{stats}");
}

#[test]
fn ipv6_client_to_client_follows_the_ipv4_policy() {
    for policy in [ClientToClient::Deny, ClientToClient::Allow] {
        let dir = tempfile::tempdir().unwrap();
        let server = dual_stack(dir.path(), |c| c.ipv4.client_to_client = policy);
        let addr = server.addr;
        let (b_saw, gateway) = server.run_clients(move || async move {
            let (a, inbox_a) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
                .await
                .unwrap();
            let (b, inbox_b) = connect(&mschapv2_options(addr, "bob", "bob-secret"))
                .await
                .unwrap();
            let ip_a = a.autoconfigure_ipv6(SLAAC).await.unwrap();
            let ip_b = b.autoconfigure_ipv6(SLAAC).await.unwrap();
            for seq in 0..3 {
                a.send_ip(&icmpv6_echo_request(ip_a, ip_b, seq, b"a to b"))
                    .unwrap();
            }
            let b_saw = wait_for(&inbox_b, Duration::from_secs(1), |p| {
                p.len() > 40 && p[6] == 58 && p[40] == 128 && p[8..24] == ip_a.octets()
            })
            .await;
            let gateway = ping6(&a, &inbox_a, ip_a, GATEWAY6, b"gateway").await;
            a.close(Duration::from_secs(5)).await;
            b.close(Duration::from_secs(5)).await;
            (b_saw, gateway)
        });
        let stats = server.handle().metrics();
        let denied = stats.event("client_to_client_denied");
        assert!(gateway, "{policy:?}: {stats}");
        match policy {
            ClientToClient::Deny => {
                assert!(!b_saw, "a packet reached another client: {stats}");
                assert_eq!(denied, 3, "{stats}");
            }
            _ => {
                assert!(b_saw, "{stats}");
                assert_eq!(denied, 0, "{stats}");
            }
        }
    }
}
