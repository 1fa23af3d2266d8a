//! The whole protocol core, client and server, over an in-memory stream on
//! a virtual clock: SSTP, PPP, authentication and the crypto binding
//! together.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use sstpd::proto::auth::LocalAuthenticator;
use sstpd::proto::auth::{AttemptOutcome, AuthFailure, AuthProtocol, RejectReason};
use sstpd::proto::ndp;
use sstpd::proto::ppp::{IpcpConfig, Ipv6cpConfig, PppCloseReason, PppConfig};
use sstpd::proto::session::{CloseReason, DropReason, SessionConfig, SessionEvent};
use sstpd::proto::sstp::{HashProtocol, HashProtocols, SstpConfig, Transmit};
use sstpd::testing::pair::{control_message_type, is_data_packet, Direction, SessionPair};
use sstpd::testing::StaticPasswords;

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

fn server_config(methods: &[AuthProtocol], hashes: HashProtocols) -> SessionConfig {
    let ppp = PppConfig {
        auth_protocols: methods.to_vec(),
        ipcp: IpcpConfig {
            local_address: Some(GATEWAY),
            dns: [Some(Ipv4Addr::new(10, 99, 0, 53)), None],
            ..IpcpConfig::default()
        },
        ipv6cp: Ipv6cpConfig { enabled: true },
        ..PppConfig::default()
    };
    let sstp = SstpConfig {
        server_hash_protocols: hashes,
        ..SstpConfig::default()
    };
    SessionConfig::new(sstp, ppp)
}

fn client_config(methods: &[AuthProtocol]) -> SessionConfig {
    let ppp = PppConfig {
        auth_protocols: methods.to_vec(),
        ipv6cp: Ipv6cpConfig { enabled: true },
        ..PppConfig::default()
    };
    SessionConfig::new(SstpConfig::default(), ppp)
}

fn authenticator() -> Arc<LocalAuthenticator<StaticPasswords>> {
    let mut users = StaticPasswords::new();
    users.insert("alice", "correct horse");
    Arc::new(LocalAuthenticator::new(users))
}

fn pair_with(method: AuthProtocol, hashes: HashProtocols, password: &str) -> SessionPair {
    SessionPair::new(
        &server_config(&[method], hashes),
        &client_config(&[
            AuthProtocol::MsChapV2,
            AuthProtocol::ChapMd5,
            AuthProtocol::Pap,
        ]),
        authenticator(),
        "alice",
        password.as_bytes(),
        7,
    )
}

/// A minimal IPv4/UDP packet (checksums are not the core's business).
fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[
        0x30,
        0x39,
        0x30,
        0x39,
        ((8 + payload.len()) >> 8) as u8,
        (8 + payload.len()) as u8,
        0,
        0,
    ]);
    p.extend_from_slice(payload);
    p
}

fn assert_up(pair: &SessionPair, hash: HashProtocol) {
    let server = &pair.server.session;
    let client = &pair.client.session;
    assert!(server.is_established(), "server verified Call Connected");
    assert!(client.is_established());
    assert_eq!(server.sstp().hash_protocol(), Some(hash));
    let s4 = server.ipv4().expect("server IPCP up");
    let c4 = client.ipv4().expect("client IPCP up");
    assert_eq!(s4.local, GATEWAY);
    assert_eq!(
        c4.local, s4.peer,
        "client got the address the server assigned"
    );
    assert_eq!(c4.peer, GATEWAY);
    assert_eq!(c4.dns[0], Some(Ipv4Addr::new(10, 99, 0, 53)));
    assert!(
        server.ipv6().is_some() && client.ipv6().is_some(),
        "IPv6CP up"
    );
    assert_eq!(server.username(), Some("alice"));
    assert!(pair.server.saw(|e| matches!(e, SessionEvent::Established)));
    assert!(pair
        .client
        .saw(|e| matches!(e, SessionEvent::HttpHandshake { .. })));
    assert!(pair.server.saw(|e| matches!(e,
        SessionEvent::HttpHandshake { correlation_id } if correlation_id == "{6BAA1E45-9937-77B0-567472AB}")));
}

fn exchange_traffic(pair: &mut SessionPair) {
    let client_ip = pair.client.session.ipv4().unwrap().local;
    for i in 0..50u32 {
        let up = ipv4_packet(client_ip, GATEWAY, &i.to_be_bytes());
        pair.send_ip(Direction::ClientToServer, &up).unwrap();
        let down = ipv4_packet(GATEWAY, client_ip, &(1000 + i).to_be_bytes());
        pair.send_ip(Direction::ServerToClient, &down).unwrap();
    }
    pair.drive_now();
    assert_eq!(pair.server.delivered.len(), 50);
    assert_eq!(pair.client.delivered.len(), 50);
    for (i, p) in pair.server.delivered.iter().enumerate() {
        assert_eq!(
            p,
            &ipv4_packet(client_ip, GATEWAY, &(i as u32).to_be_bytes())
        );
    }
    for (i, p) in pair.client.delivered.iter().enumerate() {
        assert_eq!(
            p,
            &ipv4_packet(GATEWAY, client_ip, &(1000 + i as u32).to_be_bytes())
        );
    }
}

/// Runs the pair (bounded) until the server's IPv6CP is up, the last
/// step of a full setup.
fn server_ipv6_up(pair: &mut SessionPair) -> bool {
    pair.run_until(Duration::from_secs(30), |p| {
        p.server.session.ipv6().is_some()
    })
}

#[test]
fn setup_needs_no_retransmission_on_a_lossless_stream() {
    for method in [
        AuthProtocol::MsChapV2,
        AuthProtocol::ChapMd5,
        AuthProtocol::Pap,
    ] {
        let mut pair = pair_with(method, HashProtocols::BOTH, "correct horse");
        assert!(
            pair.connect_without_timers(),
            "{method}: setup waited for a timer: {pair:?}"
        );
        assert_eq!(pair.elapsed(), Duration::ZERO);
    }
}

#[test]
fn mschapv2_session_comes_up_with_crypto_binding_from_mppe_keys() {
    let mut pair = pair_with(AuthProtocol::MsChapV2, HashProtocols::BOTH, "correct horse");
    assert!(pair.connect(), "{pair:?}");
    assert!(server_ipv6_up(&mut pair));
    assert_up(&pair, HashProtocol::Sha256);
    exchange_traffic(&mut pair);
}

#[test]
fn mschapv2_binding_with_a_sha1_only_server() {
    let mut pair = pair_with(AuthProtocol::MsChapV2, HashProtocols::SHA1, "correct horse");
    assert!(pair.connect());
    assert!(server_ipv6_up(&mut pair));
    assert_up(&pair, HashProtocol::Sha1);
}

#[test]
fn pap_session_comes_up_with_the_zero_hlak() {
    let mut pair = pair_with(AuthProtocol::Pap, HashProtocols::SHA256, "correct horse");
    assert!(pair.connect());
    assert!(server_ipv6_up(&mut pair));
    assert_up(&pair, HashProtocol::Sha256);
    exchange_traffic(&mut pair);
}

#[test]
fn chap_md5_session_comes_up() {
    let mut pair = pair_with(
        AuthProtocol::ChapMd5,
        HashProtocols::SHA256,
        "correct horse",
    );
    assert!(pair.connect());
    assert!(server_ipv6_up(&mut pair));
    assert_up(&pair, HashProtocol::Sha256);
}

#[test]
fn lost_ppp_frames_are_recovered_by_retransmission() {
    for method in [
        AuthProtocol::MsChapV2,
        AuthProtocol::ChapMd5,
        AuthProtocol::Pap,
    ] {
        let mut pair = pair_with(method, HashProtocols::SHA256, "correct horse");
        // Drop every third of the first 15 PPP frames in each direction
        // during setup: a loss on every frame of a fixed period can keep
        // both ends' NCPs restarting each other for ever.
        let mut counter = [0u32; 2];
        pair.loss = Some(Box::new(move |dir, _, packet| {
            if !is_data_packet(packet) {
                return false;
            }
            let c = &mut counter[dir as usize];
            *c += 1;
            *c <= 15 && *c % 3 == 0
        }));
        assert!(pair.connect(), "{method}: {pair:?}");
        assert!(
            pair.dropped >= 3,
            "{method}: loss was injected ({} dropped)",
            pair.dropped
        );
        pair.loss = None;
        assert_up(&pair, HashProtocol::Sha256);
        assert!(
            pair.elapsed() >= Duration::from_secs(3),
            "{method}: a restart timer fired"
        );
    }
}

/// The server's reports of failed authentication attempts.
fn failed_attempts(pair: &SessionPair) -> Vec<&sstpd::proto::auth::FailedAuthAttempt> {
    pair.server
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::AuthAttemptFailed(attempt) => Some(attempt),
            _ => None,
        })
        .collect()
}

#[test]
fn wrong_password_fails_with_691_then_lcp_terminate_and_sstp_disconnect() {
    let mut pair = pair_with(AuthProtocol::MsChapV2, HashProtocols::SHA256, "wrong");
    let done = pair.run_until(Duration::from_secs(120), |p| {
        p.server.session.is_closed() && p.client.session.is_closed()
    });
    assert!(done, "{pair:?}");
    assert!(!pair.server.session.is_established());
    assert!(
        pair.server.session.ipv4().is_none(),
        "no address handed out"
    );
    // The server gave up once the connection had spent its attempts
    // (ppp.auth_max_attempts, 3), and told the client so with E=691.
    assert_eq!(
        pair.server.closed_reason(),
        Some(&CloseReason::Ppp(PppCloseReason::AuthAttemptsExhausted))
    );
    // Each failed attempt was reported, not only the last, with the name
    // and the method.
    let failures = failed_attempts(&pair);
    assert_eq!(failures.len(), 3, "{:?}", pair.server.events);
    for (i, attempt) in failures.iter().enumerate() {
        assert_eq!(attempt.username, "alice");
        assert_eq!(attempt.protocol, AuthProtocol::MsChapV2);
        assert_eq!(
            attempt.outcome,
            AttemptOutcome::Rejected(RejectReason::AuthenticationFailure)
        );
        assert_eq!((attempt.attempt, attempt.max_attempts), (i as u32 + 1, 3));
        assert_eq!(
            sstpd::metrics::Event::from(*attempt).label(),
            "auth_failure_mschapv2"
        );
    }
    match pair.client.closed_reason() {
        Some(CloseReason::Ppp(PppCloseReason::AuthFailed(AuthFailure::Rejected {
            code, ..
        }))) => {
            assert_eq!(*code, Some(691));
        }
        // Not the server's Call Disconnect that followed: the first cause.
        other => panic!("client closed with {other:?}"),
    }
    let authenticated = |e: &SessionEvent| matches!(e, SessionEvent::Authenticated { .. });
    assert!(!pair.server.saw(authenticated) && !pair.client.saw(authenticated));
}

#[test]
fn spoofed_sources_are_dropped() {
    let mut pair = pair_with(AuthProtocol::Pap, HashProtocols::SHA256, "correct horse");
    assert!(pair.connect());
    let client_ip = pair.client.session.ipv4().unwrap().local;

    let spoofed = ipv4_packet(Ipv4Addr::new(10, 99, 0, 200), GATEWAY, b"spoof");
    pair.send_ip(Direction::ClientToServer, &spoofed).unwrap();
    let honest = ipv4_packet(client_ip, GATEWAY, b"honest");
    pair.send_ip(Direction::ClientToServer, &honest).unwrap();
    pair.drive_now();
    assert_eq!(pair.server.delivered, vec![honest]);
    assert_eq!(pair.server.session.stats().spoofed_drops, 1);
    assert!(pair.server.saw(|e| matches!(
        e,
        SessionEvent::Dropped {
            reason: DropReason::SpoofedSource,
            ..
        }
    )));
}

#[test]
fn packets_above_the_servers_mru_are_dropped() {
    let mut pair = pair_with(AuthProtocol::Pap, HashProtocols::SHA256, "correct horse");
    assert!(pair.connect());
    let client_ip = pair.client.session.ipv4().unwrap().local;
    let mru = usize::from(pair.server.session.ppp().local_mru());
    let fits = ipv4_packet(client_ip, GATEWAY, &vec![7; mru - 28]);
    assert_eq!(fits.len(), mru);
    let oversized = ipv4_packet(client_ip, GATEWAY, &vec![8; mru - 27]);
    pair.send_ip(Direction::ClientToServer, &oversized).unwrap();
    pair.send_ip(Direction::ClientToServer, &fits).unwrap();
    pair.drive_now();
    assert_eq!(pair.server.delivered, vec![fits]);
    assert!(pair.server.saw(|e| matches!(
        e,
        SessionEvent::Dropped {
            reason: DropReason::IpExceedsMru,
            count: 1
        }
    )));
}

#[test]
fn sources_in_routed_prefixes_pass_until_ipcp_goes_down() {
    use sstpd::proto::route::Ipv4Prefix;
    let mut pair = pair_with(AuthProtocol::Pap, HashProtocols::SHA256, "correct horse");
    assert!(pair.connect());
    // A network behind the client (RADIUS Framed-Route 192.0.2.0/24).
    let behind = Ipv4Addr::new(192, 0, 2, 7);
    let before = ipv4_packet(behind, GATEWAY, b"before");
    pair.send_ip(Direction::ClientToServer, &before).unwrap();
    pair.drive_now();
    assert!(pair.server.delivered.is_empty(), "not routed yet: spoofed");
    let routed = Ipv4Prefix::new(Ipv4Addr::new(192, 0, 2, 0), 24).unwrap();
    pair.server.session.set_ipv4_routes(&[routed]);
    let from_behind = ipv4_packet(behind, GATEWAY, b"behind");
    let outside = ipv4_packet(Ipv4Addr::new(192, 0, 3, 1), GATEWAY, b"outside");
    pair.send_ip(Direction::ClientToServer, &from_behind)
        .unwrap();
    pair.send_ip(Direction::ClientToServer, &outside).unwrap();
    pair.drive_now();
    assert_eq!(pair.server.delivered, vec![from_behind]);
    assert_eq!(pair.server.session.stats().spoofed_drops, 2);
    // Replacing the routes with none withdraws them.
    pair.server.session.set_ipv4_routes(&[]);
    pair.send_ip(Direction::ClientToServer, &before).unwrap();
    pair.drive_now();
    assert_eq!(pair.server.delivered.len(), 1);
    assert_eq!(pair.server.session.stats().spoofed_drops, 3);
}

#[test]
fn no_ip_traffic_passes_until_the_crypto_binding_is_verified() {
    // Hold back the client's Call Connected (message type 4): PPP completes,
    // but the server never sees the crypto binding.
    let mut pair = pair_with(AuthProtocol::Pap, HashProtocols::SHA256, "correct horse");
    pair.loss = Some(Box::new(|dir, _, packet| {
        dir == Direction::ClientToServer && control_message_type(packet) == Some(4)
    }));
    assert!(pair.run_until(Duration::from_secs(30), |p| p
        .server
        .session
        .ipv4()
        .is_some()
        && p.client.session.ipv4().is_some()));
    assert!(!pair.server.session.is_established());
    let client_ip = pair.client.session.ipv4().unwrap().local;

    // A PPP IPv4 frame in an SSTP data packet, as a client that ignores the
    // binding would send it.
    let packet = ipv4_packet(client_ip, GATEWAY, b"too early");
    let mut frame = vec![0xff, 0x03, 0x00, 0x21];
    frame.extend_from_slice(&packet);
    let len = 4 + frame.len();
    let mut sstp = vec![0x10, 0x00, (len >> 8) as u8, len as u8];
    sstp.extend_from_slice(&frame);
    let now = pair.now;
    let mut delivered = 0;
    pair.server
        .session
        .handle_input(now, &sstp, &mut |_| delivered += 1);
    pair.drive_now();
    assert_eq!(
        delivered, 0,
        "nothing reaches the network before Call Connected"
    );
    assert!(pair.server.saw(|e| matches!(
        e,
        SessionEvent::Dropped {
            reason: DropReason::IpBeforeCallConnected,
            ..
        }
    )));
    assert_eq!(
        pair.server
            .session
            .send_ip(&ipv4_packet(GATEWAY, client_ip, b"x"), &mut Transmit::new()),
        Err(sstpd::proto::session::SendIpError::NotReady),
        "nor from the network to the client"
    );

    // Then the negotiation timer ends the call.
    assert!(pair.run_until(Duration::from_secs(120), |p| p.server.session.is_closed()));
    let reason = pair.server.closed_reason().expect("closed").as_str();
    assert_eq!(
        reason,
        "negotiation_timeout",
        "{:?}",
        pair.server.closed_reason()
    );
}

#[test]
fn router_solicitation_gets_the_delegated_prefix() {
    let mut pair = pair_with(
        AuthProtocol::MsChapV2,
        HashProtocols::SHA256,
        "correct horse",
    );
    assert!(pair.connect());
    assert!(pair.run_until(Duration::from_secs(30), |p| p
        .server
        .session
        .ipv6()
        .is_some()
        && p.client.session.ipv6().is_some()));
    let prefix: std::net::Ipv6Addr = "fd99:0:0:42::".parse().unwrap();
    let now = pair.now;
    pair.server.session.set_ipv6_prefix(now, prefix, 64);
    pair.drive_now();
    assert!(pair
        .client
        .saw(|e| matches!(e, SessionEvent::Ipv6Prefix { prefix: p, len: 64 } if *p == prefix)));

    // A solicitation from the client's link-local address is answered by
    // the server itself (not passed to the network).
    let before = pair.client.events.len();
    let ifid = pair.client.session.ipv6().unwrap().local_ifid;
    let rs = router_solicitation(ndp::link_local(ifid));
    pair.send_ip(Direction::ClientToServer, &rs).unwrap();
    pair.drive_now();
    assert!(pair.server.delivered.is_empty(), "RS is not forwarded");
    assert!(pair.client.events[before..]
        .iter()
        .any(|e| matches!(e, SessionEvent::Ipv6Prefix { .. })));

    // Traffic from the delegated prefix passes; from elsewhere it does not.
    let inside: std::net::Ipv6Addr = "fd99:0:0:42::abcd".parse().unwrap();
    let outside: std::net::Ipv6Addr = "fd99:0:0:43::abcd".parse().unwrap();
    pair.send_ip(Direction::ClientToServer, &ipv6_packet(inside))
        .unwrap();
    pair.send_ip(Direction::ClientToServer, &ipv6_packet(outside))
        .unwrap();
    pair.drive_now();
    assert_eq!(pair.server.delivered, vec![ipv6_packet(inside)]);
}

fn router_solicitation(src: std::net::Ipv6Addr) -> Vec<u8> {
    let dst: std::net::Ipv6Addr = "ff02::2".parse().unwrap();
    let mut p = vec![0x60, 0, 0, 0, 0, 8, 58, 255];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[133, 0, 0, 0, 0, 0, 0, 0]);
    p
}

fn ipv6_packet(src: std::net::Ipv6Addr) -> Vec<u8> {
    let dst: std::net::Ipv6Addr = "fd99::1".parse().unwrap();
    let mut p = vec![0x60, 0, 0, 0, 0, 4, 17, 64];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(b"data");
    p
}

#[test]
fn graceful_close_terminates_lcp_then_disconnects_sstp() {
    let mut pair = pair_with(
        AuthProtocol::MsChapV2,
        HashProtocols::SHA256,
        "correct horse",
    );
    assert!(pair.connect());
    let now = pair.now;
    pair.server.session.close(now);
    let done = pair.run_until(Duration::from_secs(30), |p| {
        p.server.session.is_closed() && p.client.session.is_closed()
    });
    assert!(done, "{pair:?}");
    assert_eq!(
        pair.server.closed_reason(),
        Some(&CloseReason::Ppp(PppCloseReason::LocalClose))
    );
    // The client saw LCP terminate first (or the disconnect): either way a
    // clean end, not a timeout or abort.
    let client = pair.client.closed_reason().expect("client closed").as_str();
    assert!(
        ["peer_terminated", "peer_disconnect"].contains(&client),
        "client closed with {client}"
    );
    assert!(
        pair.elapsed() < Duration::from_secs(10),
        "no timer had to expire"
    );
}

#[test]
fn a_client_that_terminates_lcp_is_reported_as_peer_terminated_by_the_server() {
    let mut pair = pair_with(
        AuthProtocol::MsChapV2,
        HashProtocols::SHA256,
        "correct horse",
    );
    assert!(pair.connect());
    let now = pair.now;
    pair.client.session.close(now);
    assert!(
        pair.run_until(Duration::from_secs(30), |p| p.server.session.is_closed()
            && p.client.session.is_closed())
    );
    assert_eq!(
        pair.server.closed_reason().map(|r| r.as_str()),
        Some("peer_terminated")
    );
    assert_eq!(
        pair.client.closed_reason().map(|r| r.as_str()),
        Some("local_close")
    );
}

#[test]
fn the_authenticators_mtu_and_dns_servers_apply_to_the_session() {
    // An authenticator that accepts like the local one and adds a policy,
    // as RADIUS does with Framed-MTU and MS-Primary-DNS-Server.
    let local = authenticator();
    let with_policy =
        sstpd::testing::pair::authenticator_fn(move |request| match local.decide(request) {
            sstpd::proto::auth::AuthDecision::Accept(mut accept) => {
                accept.policy.mtu = Some(600);
                accept.policy.dns = [Some(Ipv4Addr::new(192, 0, 2, 53)), None];
                sstpd::proto::auth::AuthDecision::Accept(accept)
            }
            reject => reject,
        });
    let mut pair = SessionPair::new(
        &server_config(&[AuthProtocol::MsChapV2], HashProtocols::BOTH),
        &client_config(&[AuthProtocol::MsChapV2]),
        with_policy,
        "alice",
        b"correct horse",
        7,
    );
    assert!(pair.connect(), "{pair:?}");
    let client = pair.client.session.ipv4().unwrap();
    assert_eq!(
        client.dns,
        [Some(Ipv4Addr::new(192, 0, 2, 53)), None],
        "not the configured 10.99.0.53"
    );
    let server = &mut pair.server.session;
    let fits = ipv4_packet(GATEWAY, client.local, &[0; 600 - 28]);
    let too_large = ipv4_packet(GATEWAY, client.local, &[0; 601 - 28]);
    assert_eq!(server.send_ip(&fits, &mut Transmit::new()), Ok(()));
    assert_eq!(
        server.send_ip(&too_large, &mut Transmit::new()),
        Err(sstpd::proto::session::SendIpError::TooLarge)
    );
    assert_eq!(server.ppp().framed_mtu(), Some(600));
}

/// EAP-MSCHAPv2 ([RFC 3748], [MS-SSTP] 3.2.5.2.2): the HLAK is the first
/// 32 octets of the MSK at both ends.
mod eap {
    use super::*;
    use sstpd::proto::auth::{
        AuthContext, AuthDecision, AuthReply, AuthRequest, Authenticator, MppeKeys,
    };

    fn eap_pair(server: &[AuthProtocol], client: &[AuthProtocol], password: &str) -> SessionPair {
        SessionPair::new(
            &server_config(server, HashProtocols::BOTH),
            &client_config(client),
            authenticator(),
            "alice",
            password.as_bytes(),
            9,
        )
    }

    #[test]
    fn eap_mschapv2_session_comes_up_with_crypto_binding_from_the_msk() {
        let mut pair = eap_pair(
            &[AuthProtocol::EapMsChapV2],
            &[AuthProtocol::EapMsChapV2],
            "correct horse",
        );
        assert!(pair.connect_without_timers(), "{pair:?}");
        assert!(server_ipv6_up(&mut pair));
        assert_up(&pair, HashProtocol::Sha256);
        assert_eq!(
            pair.server.session.ppp().auth_protocol(),
            Some(AuthProtocol::EapMsChapV2)
        );
        exchange_traffic(&mut pair);
    }

    #[test]
    fn lcp_moves_to_eap_when_the_client_naks_mschapv2() {
        // The server prefers MS-CHAPv2; a client that speaks only EAP
        // Naks it with EAP, and the server offers EAP next.
        let mut pair = eap_pair(
            &[AuthProtocol::MsChapV2, AuthProtocol::EapMsChapV2],
            &[AuthProtocol::EapMsChapV2],
            "correct horse",
        );
        assert!(pair.connect(), "{pair:?}");
        assert_up(&pair, HashProtocol::Sha256);
        assert_eq!(
            pair.server.session.ppp().auth_protocol(),
            Some(AuthProtocol::EapMsChapV2)
        );
        // And a client that speaks both takes the server's first choice.
        let mut pair = eap_pair(
            &[AuthProtocol::EapMsChapV2, AuthProtocol::MsChapV2],
            &[AuthProtocol::MsChapV2, AuthProtocol::EapMsChapV2],
            "correct horse",
        );
        assert!(pair.connect(), "{pair:?}");
        assert_eq!(
            pair.server.session.ppp().auth_protocol(),
            Some(AuthProtocol::EapMsChapV2)
        );
    }

    /// Accepts as the local users do, with MPPE keys not derived from the
    /// password: the server's HLAK differs from the client's.
    struct WrongKeys(Arc<LocalAuthenticator<StaticPasswords>>);

    impl Authenticator for WrongKeys {
        fn authenticate(&self, request: AuthRequest, _: AuthContext, reply: AuthReply) {
            let mut decision = self.0.decide(&request);
            if let AuthDecision::Accept(accept) = &mut decision {
                if let Some(proof) = &mut accept.mschapv2 {
                    proof.keys = MppeKeys {
                        send: [0x5a; 16],
                        receive: [0xa5; 16],
                    };
                }
            }
            reply.send(decision);
        }
    }

    #[test]
    fn eap_binding_fails_with_keys_other_than_the_clients() {
        let mut pair = SessionPair::new(
            &server_config(&[AuthProtocol::EapMsChapV2], HashProtocols::BOTH),
            &client_config(&[AuthProtocol::EapMsChapV2]),
            Arc::new(WrongKeys(authenticator())),
            "alice",
            b"correct horse",
            9,
        );
        assert!(pair.run_until(Duration::from_secs(60), |p| p.server.session.is_closed()));
        assert!(!pair.server.session.is_established());
        assert_eq!(pair.server.closed_reason().unwrap().as_str(), "wrong_mac");
        // Both ends had authenticated: the binding alone caught it.
        let authenticated = |e: &SessionEvent| matches!(e, SessionEvent::Authenticated { .. });
        assert!(pair.server.saw(authenticated) && pair.client.saw(authenticated));
    }

    #[test]
    fn eap_wrong_password_spends_the_attempts_then_terminates() {
        let mut pair = eap_pair(
            &[AuthProtocol::EapMsChapV2],
            &[AuthProtocol::EapMsChapV2],
            "wrong",
        );
        let done = pair.run_until(Duration::from_secs(120), |p| {
            p.server.session.is_closed() && p.client.session.is_closed()
        });
        assert!(done, "{pair:?}");
        assert_eq!(
            pair.server.closed_reason(),
            Some(&CloseReason::Ppp(PppCloseReason::AuthAttemptsExhausted))
        );
        let failures = failed_attempts(&pair);
        assert_eq!(failures.len(), 3, "{:?}", pair.server.events);
        for attempt in failures {
            assert_eq!(attempt.protocol, AuthProtocol::EapMsChapV2);
            assert_eq!(
                sstpd::metrics::Event::from(attempt).label(),
                "auth_failure_eap_mschapv2"
            );
        }
        match pair.client.closed_reason() {
            Some(CloseReason::Ppp(PppCloseReason::AuthFailed(AuthFailure::Rejected {
                code,
                ..
            }))) => assert_eq!(*code, Some(691)),
            other => panic!("client closed with {other:?}"),
        }
    }
}

/// An idle session gives back its queues' memory (the runtime asks once
/// it has been quiet for a second) and goes on: traffic, then a minute of
/// keepalives, then traffic again.
#[test]
fn a_session_that_gave_back_its_idle_capacity_goes_on() {
    let mut pair = pair_with(AuthProtocol::MsChapV2, HashProtocols::BOTH, "correct horse");
    assert!(pair.connect(), "{pair:?}");
    assert!(server_ipv6_up(&mut pair));
    pair.server.session.release_idle_capacity();
    pair.client.session.release_idle_capacity();
    exchange_traffic(&mut pair);
    pair.server.session.release_idle_capacity();
    // A minute with no traffic: echoes both ways through the given-back
    // queues, and nothing closes.
    assert!(
        !pair.run_until(Duration::from_secs(60), |p| p.server.session.is_closed()
            || p.client.session.is_closed())
    );
    pair.server.delivered.clear();
    pair.client.delivered.clear();
    exchange_traffic(&mut pair);
}
