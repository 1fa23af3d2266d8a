//! The link end to end: a client and a server wired back to back
//! ([`LinkPair`]), and single links fed hand-made frames (Windows-like
//! requests, probes, loops).

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::proto::auth::{AuthAccept, AuthReject, Credentials as AuthCredentials, RejectReason};
use crate::proto::ppp::frame::{PROTO_CCP, PROTO_IPV6CP};
use crate::proto::ppp::packet::{parse_control, write_control, ControlPacket};
use crate::routing::ServerPools;
use crate::testing::link_pair::{client_in_network, open_lcp, server_in_network};
use crate::testing::pair::{authenticator_fn, Direction, LinkPair};

// ---- A scripted stand-in for the authentication machines ----

/// A PAP-shaped exchange driving the link's authentication plumbing exactly
/// as `AuthServer`/`AuthClient` do (packets in, packets/events out), so that
/// tests of the Authenticate phase's plumbing do not depend on a real method.
/// Codes: 1 request (name), 2 success, 3 failure.
#[derive(Debug)]
pub(crate) struct ScriptedAuth {
    username: String,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<AuthEvent>,
    pending: Option<u8>,
}

impl ScriptedAuth {
    pub(crate) fn server() -> Self {
        ScriptedAuth {
            username: String::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            pending: None,
        }
    }

    pub(crate) fn client(username: &str) -> Self {
        let mut packet = Vec::new();
        write_control(1, 1, &[username.as_bytes()], &mut packet);
        ScriptedAuth {
            username: username.to_owned(),
            transmit: VecDeque::from([packet]),
            events: VecDeque::new(),
            pending: None,
        }
    }

    pub(crate) fn handle_packet(
        &mut self,
        _now: Instant,
        info: &[u8],
    ) -> Result<(), AuthPacketError> {
        let packet = parse_control(info).map_err(|_| AuthPacketError::Malformed)?;
        match packet.code {
            1 => {
                self.username = String::from_utf8_lossy(packet.data).into_owned();
                self.pending = Some(packet.identifier);
                self.events.push_back(AuthEvent::Request(AuthRequest {
                    id: crate::proto::auth::AuthRequestId::UNASSIGNED,
                    username: self.username.clone(),
                    credentials: AuthCredentials::Pap {
                        password: Vec::new(),
                    },
                }));
            }
            2 => self.events.push_back(AuthEvent::Success {
                username: self.username.clone(),
                hlak: [7; 32],
                framed_ipv4: None,
            }),
            3 => self
                .events
                .push_back(AuthEvent::Failure(AuthFailure::Rejected {
                    reason: RejectReason::AuthenticationFailure,
                    code: None,
                    message: String::new(),
                })),
            code => return Err(AuthPacketError::UnexpectedCode(code)),
        }
        Ok(())
    }

    pub(crate) fn decide(&mut self, _now: Instant, decision: AuthDecision) {
        let Some(identifier) = self.pending.take() else {
            return;
        };
        let mut packet = Vec::new();
        match decision.refusing_challenge() {
            AuthDecision::Accept(accept) => {
                write_control(2, identifier, &[], &mut packet);
                self.events.push_back(AuthEvent::Success {
                    username: self.username.clone(),
                    hlak: [7; 32],
                    framed_ipv4: accept.framed_ipv4,
                });
            }
            AuthDecision::Reject(reject) => {
                write_control(3, identifier, &[], &mut packet);
                self.events
                    .push_back(AuthEvent::Failure(AuthFailure::Rejected {
                        reason: reject.reason,
                        code: None,
                        message: reject.message,
                    }));
            }
            AuthDecision::Challenge(_) => return,
        }
        self.transmit.push_back(packet);
    }

    pub(crate) fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        match self.transmit.pop_front() {
            Some(packet) => {
                buf.extend_from_slice(&packet);
                true
            }
            None => false,
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<AuthEvent> {
        self.events.pop_front()
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    pub(crate) fn handle_timeout(&mut self, _now: Instant) {}
}

// ---- Configurations and helpers ----

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DNS1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 53);
const DNS2: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 53);

fn range_pool(first: [u8; 4], last: [u8; 4]) -> Arc<ServerPools> {
    crate::testing::ipv4_pools(first, last)
}

/// Addresses of the pool not given out.
fn free(pool: &ServerPools) -> usize {
    pool.ipv4.usage().free
}

/// A server without authentication (LCP opens straight to Network).
fn server_config() -> PppConfig {
    PppConfig {
        auth_protocols: vec![],
        ipcp: IpcpConfig {
            local_address: Some(GATEWAY),
            dns: [Some(DNS1), Some(DNS2)],
            ..IpcpConfig::default()
        },
        ..PppConfig::default()
    }
}

fn client_config() -> PppConfig {
    PppConfig::default()
}

/// Virtual time a pair gets to reach what a test waits for (the slowest,
/// a keepalive timing out, needs under a minute).
const LIMIT: Duration = Duration::from_secs(300);

fn pair_with(server: PppConfig, client: PppConfig) -> LinkPair {
    let mut pair = LinkPair::new(Arc::new(server), Arc::new(client), "alice", b"secret", 1);
    pair.open();
    pair
}

fn pair() -> (LinkPair, Arc<ServerPools>) {
    let pair = pair_with(server_config(), client_config());
    let pool = pair.server.services.addresses.clone();
    (pair, pool)
}

/// [`pair_with`], the server's addresses from `pool`.
fn pair_with_pool(server: PppConfig, client: PppConfig, pool: &Arc<ServerPools>) -> LinkPair {
    let mut pair = LinkPair::new(Arc::new(server), Arc::new(client), "alice", b"secret", 1)
        .with_addresses(pool.clone());
    pair.open();
    pair
}

fn both_ncps_up(pair: &LinkPair) -> bool {
    pair.server.ipv4().is_some()
        && pair.client.ipv4().is_some()
        && pair.server.ipv6().is_some()
        && pair.client.ipv6().is_some()
}

/// A frame `FF 03 protocol code id length data`.
fn control_frame(protocol: u16, code: u8, identifier: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = vec![0xff, 0x03];
    frame.extend_from_slice(&protocol.to_be_bytes());
    write_control(code, identifier, &[data], &mut frame);
    frame
}

/// A sent control frame, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sent {
    protocol: u16,
    code: u8,
    identifier: u8,
    data: Vec<u8>,
}

fn drain(link: &mut PppLink) -> Vec<Sent> {
    let mut sent = Vec::new();
    let mut buf = Vec::new();
    while link.poll_transmit(&mut buf) {
        let frame = parse_frame(&buf).unwrap();
        assert!(
            frame.has_address_control && !frame.compressed_protocol,
            "control frames are uncompressed"
        );
        let packet: ControlPacket<'_> = parse_control(frame.information).unwrap();
        sent.push(Sent {
            protocol: frame.protocol,
            code: packet.code,
            identifier: packet.identifier,
            data: packet.data.to_vec(),
        });
        buf.clear();
    }
    sent
}

fn assert_no_drops(events: &[PppEvent]) {
    assert!(
        !events.iter().any(|e| matches!(e, PppEvent::Dropped(_))),
        "{events:?}"
    );
}

fn events(link: &mut PppLink) -> Vec<PppEvent> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

fn feed(link: &mut PppLink, now: Instant, frame: &[u8]) -> Vec<(IpVersion, Vec<u8>)> {
    let mut delivered = Vec::new();
    link.handle_frame(now, frame, &mut |v, p| delivered.push((v, p.to_vec())));
    delivered
}

fn option(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![kind, u8::try_from(data.len() + 2).unwrap()];
    out.extend_from_slice(data);
    out
}

/// A lone server, LCP opened by a minimal peer: the frames it sent since.
fn lone_server_in_network(config: PppConfig) -> (PppLink, Instant, Vec<Sent>) {
    let now = Instant::now();
    let mut link = server_in_network(Arc::new(config), now, [9; 32]);
    assert_eq!(link.phase(), Phase::Network);
    let sent = drain(&mut link);
    (link, now, sent)
}

// ---- A client and a server, authentication disabled ----

#[test]
fn pair_opens_ipcp_and_ipv6cp_and_passes_ip_both_ways() {
    let (mut pair, pool) = pair();
    assert!(pair.run_until(LIMIT, both_ncps_up));
    assert_eq!(pair.now, pair.base, "no retransmission needed");

    let assigned = Ipv4Addr::new(10, 0, 0, 2);
    let server_v4 = pair.server.ipv4().unwrap();
    assert_eq!(
        server_v4,
        Ipv4Params {
            local: GATEWAY,
            peer: assigned,
            dns: [Some(DNS1), Some(DNS2)]
        }
    );
    let client_v4 = pair.client.ipv4().unwrap();
    assert_eq!(
        client_v4,
        Ipv4Params {
            local: assigned,
            peer: GATEWAY,
            dns: [Some(DNS1), Some(DNS2)]
        }
    );
    assert_eq!(free(&pool), 252);

    let server_v6 = pair.server.ipv6().unwrap();
    let client_v6 = pair.client.ipv6().unwrap();
    assert_eq!(server_v6.local_ifid, client_v6.peer_ifid);
    assert_eq!(server_v6.peer_ifid, client_v6.local_ifid);
    assert_ne!(server_v6.local_ifid, server_v6.peer_ifid);
    assert_ne!(server_v6.local_ifid, 0);

    // Events, in order, without authentication: zero HLAK, then the NCPs.
    let server_events: Vec<_> = pair
        .server
        .events
        .iter()
        .filter(|e| !matches!(e, PppEvent::Dropped(_)))
        .cloned()
        .collect();
    assert_eq!(
        server_events[0],
        PppEvent::Authenticated {
            username: String::new(),
            hlak: ZERO_HLAK
        }
    );
    assert!(server_events.contains(&PppEvent::Ipv4Up(server_v4)));
    assert!(server_events.contains(&PppEvent::Ipv6Up(server_v6)));
    assert!(pair.client.events.contains(&PppEvent::Authenticated {
        username: "alice".into(),
        hlak: ZERO_HLAK
    }));
    assert_no_drops(&pair.server.events);
    assert_no_drops(&pair.client.events);
    assert_eq!(pair.server.phase(), Phase::Network);
    assert_eq!(
        pair.server.poll_timeout(),
        None,
        "nothing pending once open"
    );

    // IP both ways through the data path.
    let v4_packet = [0x45, 0x00, 0x00, 0x14, 1, 2, 3, 4];
    let mut wire = Vec::new();
    pair.server
        .encapsulate_ip(IpVersion::V4, &v4_packet, &mut wire);
    assert_eq!(&wire[..4], [0xff, 0x03, 0x00, 0x21]);
    let delivered = feed(&mut pair.client, pair.now, &wire);
    assert_eq!(delivered, [(IpVersion::V4, v4_packet.to_vec())]);

    let v6_packet = [0x60, 0, 0, 0, 0, 0, 0x3b, 0x40];
    wire.clear();
    pair.client
        .encapsulate_ip(IpVersion::V6, &v6_packet, &mut wire);
    assert_eq!(&wire[..4], [0xff, 0x03, 0x00, 0x57]);
    let delivered = feed(&mut pair.server, pair.now, &wire);
    assert_eq!(delivered, [(IpVersion::V6, v6_packet.to_vec())]);
    assert_eq!(pair.server.stats().ip_packets_received, 1);
}

#[test]
fn data_frames_with_and_without_compression_are_accepted_and_counted() {
    let (mut pair, _) = pair();
    assert!(pair.run_until(LIMIT, both_ncps_up));
    let now = pair.now;
    // No FF 03, 1-octet protocol: neither compression was agreed.
    assert_eq!(
        feed(&mut pair.server, now, &[0x21, 0x45, 0x01]),
        [(IpVersion::V4, vec![0x45, 0x01])]
    );
    // FF 03 with a 1-octet protocol.
    assert_eq!(
        feed(&mut pair.server, now, &[0xff, 0x03, 0x57, 0x60]),
        [(IpVersion::V6, vec![0x60])]
    );
    // No FF 03, 2-octet protocol.
    assert_eq!(
        feed(&mut pair.server, now, &[0x00, 0x21, 0x45]),
        [(IpVersion::V4, vec![0x45])]
    );
    let stats = pair.server.stats();
    assert_eq!(stats.unnegotiated_pfc, 2);
    assert_eq!(stats.unnegotiated_acfc, 2);
    // Empty and broken frames are dropped.
    assert!(feed(&mut pair.server, now, &[0x00, 0x21]).is_empty());
    assert!(feed(&mut pair.server, now, &[0xff, 0x05, 0x00, 0x21]).is_empty());
    assert_eq!(
        events(&mut pair.server),
        [
            PppEvent::Dropped(PppDropReason::Frame(FrameError::Truncated)),
            PppEvent::Dropped(PppDropReason::Frame(FrameError::BadControl)),
        ]
    );
}

#[test]
fn compressed_transmit_when_enabled_and_agreed() {
    let mut server = server_config();
    server.lcp.compress_transmit = true;
    server.lcp.request_compression = true;
    let mut client = client_config();
    client.lcp.request_compression = true;
    let mut pair = pair_with(server, client);
    assert!(pair.run_until(LIMIT, both_ncps_up));
    let mut wire = Vec::new();
    pair.server
        .encapsulate_ip(IpVersion::V4, &[0x45], &mut wire);
    assert_eq!(wire, [0x21, 0x45]);
    // The client did not enable compress_transmit: full headers.
    wire.clear();
    pair.client
        .encapsulate_ip(IpVersion::V4, &[0x45], &mut wire);
    assert_eq!(wire, [0xff, 0x03, 0x00, 0x21, 0x45]);
    // The server asked for compression too: a compressed frame from the
    // client is nothing unusual.
    feed(&mut pair.server, pair.now, &[0x21, 0x45]);
    assert_eq!(pair.server.stats().unnegotiated_pfc, 0);
}

#[test]
fn ip_is_dropped_until_its_ncp_is_open() {
    let (mut server, now, _) = lone_server_in_network(server_config());
    assert!(feed(&mut server, now, &[0xff, 0x03, 0x00, 0x21, 0x45]).is_empty());
    assert!(feed(&mut server, now, &[0xff, 0x03, 0x00, 0x57, 0x60]).is_empty());
    assert_eq!(
        events(&mut server)
            .into_iter()
            .filter(|e| matches!(e, PppEvent::Dropped(_)))
            .collect::<Vec<_>>(),
        [
            PppEvent::Dropped(PppDropReason::IpNotOpen(IpVersion::V4)),
            PppEvent::Dropped(PppDropReason::IpNotOpen(IpVersion::V6)),
        ]
    );
}

#[test]
fn frame_loss_is_recovered_by_retransmission() {
    let (mut pair, _) = pair();
    // Lose the first two frames each way, then every third frame.
    pair.loss = Some(Box::new(|_direction, n, _frame| n < 2 || n % 3 == 0));
    assert!(pair.run_until(LIMIT, both_ncps_up));
    assert!(pair.dropped >= 6, "lost {}", pair.dropped);
    let elapsed = pair.now - pair.base;
    assert!(
        elapsed >= Duration::from_secs(3),
        "recovered through the restart timer: {elapsed:?}"
    );
    assert!(elapsed <= Duration::from_secs(60), "{elapsed:?}");
    assert_eq!(
        pair.client.ipv4().unwrap().local,
        Ipv4Addr::new(10, 0, 0, 2)
    );
}

#[test]
fn unanswered_link_gives_up_after_max_configure() {
    let now = Instant::now();
    let mut server = PppLink::server(Arc::new(server_config()), now, [1; 32]);
    server.open(now);
    let mut requests = drain(&mut server).len();
    let mut clock = now;
    while let Some(deadline) = server.poll_timeout() {
        clock = deadline;
        server.handle_timeout(clock);
        requests += drain(&mut server).len();
    }
    assert_eq!(requests, 10);
    assert_eq!(clock - now, Duration::from_secs(30));
    assert_eq!(server.phase(), Phase::Dead);
    assert_eq!(
        events(&mut server),
        [PppEvent::Closed(PppCloseReason::NegotiationFailed {
            protocol: PROTO_LCP,
            failure: NegotiationFailure::MaxConfigure,
        })]
    );
    // A dead link drops everything.
    feed(&mut server, clock, &control_frame(PROTO_LCP, 1, 1, &[]));
    assert_eq!(
        events(&mut server),
        [PppEvent::Dropped(PppDropReason::LinkDead)]
    );
    assert!(drain(&mut server).is_empty());
}

#[test]
fn close_terminates_both_sides_and_returns_the_address() {
    let (mut pair, pool) = pair();
    assert!(pair.run_until(LIMIT, both_ncps_up));
    assert_eq!(free(&pool), 252);
    pair.client.close(pair.now);
    assert_eq!(pair.client.phase(), Phase::Terminate);
    assert!(pair.run_until(LIMIT, |p| p.server.phase() == Phase::Dead
        && p.client.phase() == Phase::Dead));
    assert_eq!(free(&pool), 253);
    assert!(pair
        .client
        .events
        .contains(&PppEvent::Closed(PppCloseReason::LocalClose)));
    assert!(pair
        .server
        .events
        .contains(&PppEvent::Ipv4AddressReleased(Ipv4Addr::new(10, 0, 0, 2))));
    let kept: Vec<_> = pair
        .server
        .events
        .iter()
        .filter(|e| !matches!(e, PppEvent::Ipv4AddressReleased(_)))
        .cloned()
        .collect();
    let tail = &kept[kept.len() - 3..];
    assert_eq!(
        tail,
        [
            PppEvent::Ipv4Down,
            PppEvent::Ipv6Down,
            PppEvent::Closed(PppCloseReason::PeerTerminated)
        ]
    );
    // The server waited one restart interval after acknowledging (zrc).
    assert_eq!(pair.now - pair.base, Duration::from_secs(3));
    assert_eq!(pair.server.ipv4(), None);
}

#[test]
fn closing_while_the_peer_terminates_keeps_the_peer_as_the_reason() {
    let (mut pair, _) = pair();
    assert!(pair.run_until(LIMIT, both_ncps_up));
    pair.client.close(pair.now);
    pair.step();
    assert_eq!(pair.server.lcp_state(), State::Stopping);
    pair.server.close(pair.now);
    assert!(pair.run_until(LIMIT, |p| p.server.phase() == Phase::Dead));
    assert_eq!(
        pair.server.events.last(),
        Some(&PppEvent::Closed(PppCloseReason::PeerTerminated))
    );
}

#[test]
fn an_address_answer_is_applied_only_to_the_waiting_request() {
    let pool = range_pool([10, 0, 0, 2], [10, 0, 0, 9]);
    let now = Instant::now();
    let mut server = PppLink::server(Arc::new(server_config()), now, [9; 32]);
    server.open(now);
    assert!(crate::testing::link_pair::open_lcp(
        &mut server,
        now,
        0x1122_3344
    ));
    let request = events(&mut server)
        .into_iter()
        .find_map(|e| match e {
            PppEvent::Ipv4AddressRequest(request) => Some(request),
            _ => None,
        })
        .expect("the server asks for an address in the Network phase");
    assert_eq!(request.wanted, None);
    assert_eq!(server.ipv4(), None);
    // No IPCP request before the answer: nothing to offer the peer yet.
    assert!(drain(&mut server).iter().all(|s| s.protocol != PROTO_IPCP));
    // A forged id is refused; the owner keeps its address.
    let forged = crate::proto::ppp::AddressRequestId::clone(&request.id);
    let address = pool.allocate_ipv4("alice", None).unwrap();
    server.handle_frame(
        now,
        &control_frame(PROTO_LCP, 1, 0x77, &option(5, &[9, 9, 9, 9])),
        &mut |_, _| {},
    );
    assert_eq!(
        server.assign_ipv4(now, forged, Some(address)),
        Err(crate::proto::ppp::StaleAddressAnswer(forged)),
        "a renegotiation abandoned the request"
    );
    assert_eq!(server.phase(), Phase::Establish);
}

#[test]
fn pool_exhaustion_terminates_the_link_with_no_address() {
    let pool = range_pool([10, 0, 0, 2], [10, 0, 0, 2]);
    let mut first = pair_with_pool(server_config(), client_config(), &pool);
    assert!(first.run_until(LIMIT, both_ncps_up));
    assert_eq!(free(&pool), 0);

    let mut second = pair_with_pool(server_config(), client_config(), &pool);
    assert!(second.run_until(LIMIT, |p| p.server.phase() == Phase::Dead
        && p.client.phase() == Phase::Dead));
    assert_eq!(
        second.server.events.last(),
        Some(&PppEvent::Closed(PppCloseReason::NoAddress))
    );
    assert_eq!(
        second.client.events.last(),
        Some(&PppEvent::Closed(PppCloseReason::PeerTerminated))
    );
    assert!(!second
        .server
        .events
        .iter()
        .any(|e| matches!(e, PppEvent::Ipv4Up(_))));
    assert_eq!(
        first.server.ipv4().unwrap().peer,
        Ipv4Addr::new(10, 0, 0, 2),
        "first link unaffected"
    );
    first.client.close(first.now);
    assert!(first.run_until(LIMIT, |p| p.server.phase() == Phase::Dead));
    assert_eq!(free(&pool), 1, "the owner got the address back");
}

#[test]
fn renegotiation_from_opened_goes_down_and_comes_back() {
    let (mut pair, pool) = pair();
    assert!(pair.run_until(LIMIT, both_ncps_up));
    // The client's LCP starts over (as after a peer's restart).
    let now = pair.now;
    feed(
        &mut pair.server,
        now,
        &control_frame(PROTO_LCP, 1, 0x99, &option(5, &[1, 2, 3, 4])),
    );
    assert_eq!(pair.server.phase(), Phase::Establish);
    assert_eq!(pair.server.ipv4(), None);
    pair.collect_events();
    assert_eq!(free(&pool), 253, "address released when leaving Network");
    assert!(pair.server.events.ends_with(&[
        PppEvent::Ipv4Down,
        PppEvent::Ipv6Down,
        PppEvent::Ipv4AddressReleased(Ipv4Addr::new(10, 0, 0, 2))
    ]));
    assert!(pair.run_until(LIMIT, both_ncps_up));
    let ups = pair
        .server
        .events
        .iter()
        .filter(|e| matches!(e, PppEvent::Ipv4Up(_)))
        .count();
    assert_eq!(ups, 2);
    assert_eq!(free(&pool), 252);
}

// ---- LCP against hand-made peers ----

/// A Windows-like first LCP request: MRU 4091, ACCM, Magic-Number, PFC,
/// ACFC, Callback (MS-CBCP), MRRU and an Endpoint-Discriminator.
fn windows_lcp_request() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mru = option(1, &4091u16.to_be_bytes());
    let accm = option(2, &[0, 0, 0, 0]);
    let magic = option(5, &[0x2f, 0x5a, 0x43, 0x19]);
    let pfc = option(7, &[]);
    let acfc = option(8, &[]);
    let callback = option(13, &[6]);
    let mrru = option(17, &1614u16.to_be_bytes());
    let mut discriminator = vec![1];
    discriminator.extend_from_slice(&[0xab; 20]);
    let endpoint = option(19, &discriminator);
    let full = [
        &mru[..],
        &accm,
        &magic,
        &pfc,
        &acfc,
        &callback,
        &mrru,
        &endpoint,
    ]
    .concat();
    let rejected = [&accm[..], &callback, &mrru, &endpoint].concat();
    let accepted = [&mru[..], &magic, &pfc, &acfc].concat();
    (full, rejected, accepted)
}

#[test]
fn windows_like_lcp_request_converges() {
    let now = Instant::now();
    let mut server = PppLink::server(Arc::new(server_config()), now, [2; 32]);
    server.open(now);
    let ours = drain(&mut server);
    assert_eq!(ours.len(), 1);

    let (full, rejected, accepted) = windows_lcp_request();
    feed(&mut server, now, &control_frame(PROTO_LCP, 1, 0x01, &full));
    assert_eq!(
        drain(&mut server),
        [Sent {
            protocol: PROTO_LCP,
            code: 4,
            identifier: 0x01,
            data: rejected
        }]
    );
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 1, 0x02, &accepted),
    );
    assert_eq!(
        drain(&mut server),
        [Sent {
            protocol: PROTO_LCP,
            code: 2,
            identifier: 0x02,
            data: accepted.clone()
        }]
    );
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 2, ours[0].identifier, &ours[0].data),
    );
    assert_eq!(server.lcp_state(), State::Opened);
    assert_eq!(server.phase(), Phase::Network);
    assert_eq!(server.peer_mru(), 4091, "4091 acknowledged");
    assert_eq!(server.transmit_mtu(), 4087, "what fits an SSTP packet");
    assert_eq!(server.local_mru(), 1500);
    assert_no_drops(&events(&mut server));
}

#[test]
fn small_peer_mru_is_naked_up_to_the_floor() {
    let now = Instant::now();
    for (ipv6, floor) in [(false, 576u16), (true, 1280)] {
        let mut config = server_config();
        config.ipv6cp.enabled = ipv6;
        let mut server = PppLink::server(Arc::new(config), now, [2; 32]);
        server.open(now);
        drain(&mut server);
        feed(
            &mut server,
            now,
            &control_frame(PROTO_LCP, 1, 5, &option(1, &296u16.to_be_bytes())),
        );
        assert_eq!(
            drain(&mut server),
            [Sent {
                protocol: PROTO_LCP,
                code: 3,
                identifier: 5,
                data: option(1, &floor.to_be_bytes())
            }]
        );
        // Exactly the floor is fine; so is a malformed MRU rejected.
        feed(
            &mut server,
            now,
            &control_frame(PROTO_LCP, 1, 6, &option(1, &floor.to_be_bytes())),
        );
        assert_eq!(drain(&mut server)[0].code, 2);
        feed(
            &mut server,
            now,
            &control_frame(PROTO_LCP, 1, 7, &option(1, &[5])),
        );
        assert_eq!(drain(&mut server)[0].code, 4);
    }
}

#[test]
fn zero_magic_is_naked_and_peer_auth_request_rejected_by_server() {
    let now = Instant::now();
    let mut server = PppLink::server(Arc::new(server_config()), now, [2; 32]);
    server.open(now);
    drain(&mut server);
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 1, 5, &option(5, &[0, 0, 0, 0])),
    );
    let sent = drain(&mut server);
    assert_eq!(sent[0].code, 3);
    assert_eq!(sent[0].data[..2], [5, 6]);
    assert_ne!(sent[0].data[2..], [0, 0, 0, 0]);
    // A client asking the server to authenticate itself.
    let pap = option(3, &[0xc0, 0x23]);
    feed(&mut server, now, &control_frame(PROTO_LCP, 1, 6, &pap));
    assert_eq!(
        drain(&mut server),
        [Sent {
            protocol: PROTO_LCP,
            code: 4,
            identifier: 6,
            data: pap
        }]
    );
}

#[test]
fn client_naks_an_eap_offer_toward_its_preferred_method() {
    let now = Instant::now();
    let mut client = PppLink::client(Arc::new(client_config()), now, "alice", b"pw", [3; 32]);
    client.open(now);
    let ours = drain(&mut client);
    assert_eq!(ours.len(), 1);
    // Only a Magic-Number: the client never asks the server to
    // authenticate, and 1500 (the default MRU) goes unsaid.
    let kinds: Vec<u8> = crate::proto::ppp::packet::parse_options(&ours[0].data)
        .unwrap()
        .map(|o| o.kind)
        .collect();
    assert_eq!(kinds, [5]);

    let eap = option(3, &[0xc2, 0x27]);
    let magic = option(5, &[9, 9, 9, 9]);
    feed(
        &mut client,
        now,
        &control_frame(PROTO_LCP, 1, 0x10, &[eap, magic.clone()].concat()),
    );
    assert_eq!(
        drain(&mut client),
        [Sent {
            protocol: PROTO_LCP,
            code: 3,
            identifier: 0x10,
            data: option(3, &[0xc2, 0x23, 0x81])
        }]
    );
    // MS-CHAPv1 (algorithm 0x80) is not spoken either.
    feed(
        &mut client,
        now,
        &control_frame(PROTO_LCP, 1, 0x11, &option(3, &[0xc2, 0x23, 0x80])),
    );
    assert_eq!(drain(&mut client)[0].data, option(3, &[0xc2, 0x23, 0x81]));
    // CHAP-MD5 is.
    let chap = [option(3, &[0xc2, 0x23, 0x05]), magic].concat();
    feed(&mut client, now, &control_frame(PROTO_LCP, 1, 0x12, &chap));
    assert_eq!(
        drain(&mut client),
        [Sent {
            protocol: PROTO_LCP,
            code: 2,
            identifier: 0x12,
            data: chap
        }]
    );

    // A client configured with PAP only suggests PAP.
    let config = PppConfig {
        auth_protocols: vec![AuthProtocol::Pap],
        ..client_config()
    };
    let mut pap_only = PppLink::client(Arc::new(config), now, "alice", b"pw", [3; 32]);
    pap_only.open(now);
    drain(&mut pap_only);
    feed(
        &mut pap_only,
        now,
        &control_frame(PROTO_LCP, 1, 0x20, &option(3, &[0xc2, 0x23, 0x81])),
    );
    assert_eq!(drain(&mut pap_only)[0].data, option(3, &[0xc0, 0x23]));
}

#[test]
fn client_drops_its_magic_number_when_the_server_rejects_it() {
    // Some servers Configure-Reject the Magic-Number ([RFC 1661] 6.4: "it
    // can only mean that the link is not looped-back"); the client must
    // carry on without one rather than give up, and must not insist on it.
    let now = Instant::now();
    let mut client = PppLink::client(Arc::new(client_config()), now, "alice", b"pw", [4; 32]);
    client.open(now);
    let first = drain(&mut client).remove(0);
    assert_eq!(first.data[..2], [5, 6], "a Magic-Number request");
    feed(
        &mut client,
        now,
        &control_frame(PROTO_LCP, 4, first.identifier, &first.data),
    );
    let second = drain(&mut client).remove(0);
    assert_eq!((second.code, second.data.as_slice()), (1, &[][..]));
    assert_ne!(second.identifier, first.identifier);
    // The server's own request carries no Magic-Number either.
    let pap = option(3, &[0xc0, 0x23]);
    feed(&mut client, now, &control_frame(PROTO_LCP, 1, 0x31, &pap));
    assert_eq!(
        drain(&mut client),
        [Sent {
            protocol: PROTO_LCP,
            code: 2,
            identifier: 0x31,
            data: pap
        }]
    );
    feed(
        &mut client,
        now,
        &control_frame(PROTO_LCP, 2, second.identifier, &[]),
    );
    assert_eq!(client.lcp_state(), State::Opened);
    assert_eq!(client.phase(), Phase::Authenticate);
    assert_no_drops(&events(&mut client));
}

#[test]
fn server_moves_through_its_auth_list_on_naks() {
    let now = Instant::now();
    let config = PppConfig {
        ..PppConfig::default()
    };
    let mut server = PppLink::server(Arc::new(config), now, [4; 32]);
    server.open(now);
    let auth_option = |sent: &Sent| {
        let options: Vec<_> = crate::proto::ppp::packet::parse_options(&sent.data)
            .unwrap()
            .filter(|o| o.kind == 3)
            .map(|o| o.data.to_vec())
            .collect();
        options
    };
    let request = drain(&mut server).remove(0);
    assert_eq!(
        auth_option(&request),
        [vec![0xc2, 0x23, 0x81]],
        "MS-CHAPv2 first"
    );

    // The client suggests PAP, which is in the list: jump to it.
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 3, request.identifier, &option(3, &[0xc0, 0x23])),
    );
    let request = drain(&mut server).remove(0);
    assert_eq!(auth_option(&request), [vec![0xc0, 0x23]]);

    // Now EAP (not in the list): the next untried method, CHAP-MD5.
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 3, request.identifier, &option(3, &[0xc2, 0x27])),
    );
    let request = drain(&mut server).remove(0);
    assert_eq!(auth_option(&request), [vec![0xc2, 0x23, 0x05]]);

    // Refused too, with a suggestion already refused: nothing is left.
    feed(
        &mut server,
        now,
        &control_frame(
            PROTO_LCP,
            3,
            request.identifier,
            &option(3, &[0xc2, 0x23, 0x81]),
        ),
    );
    let sent = drain(&mut server);
    assert_eq!(
        sent.iter().map(|s| s.code).collect::<Vec<_>>(),
        [5],
        "Terminate-Request"
    );
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 6, sent[0].identifier, &[]),
    );
    assert_eq!(
        events(&mut server),
        [PppEvent::Closed(PppCloseReason::NoCommonAuthProtocol)]
    );
}

#[test]
fn client_refusing_to_authenticate_closes_the_server() {
    let server = PppConfig {
        ..PppConfig::default()
    };
    let client = PppConfig {
        auth_protocols: vec![],
        ..client_config()
    };
    let mut pair = pair_with(server, client);
    assert!(pair.run_until(LIMIT, |p| p.server.phase() == Phase::Dead));
    assert_eq!(
        pair.server.events.last(),
        Some(&PppEvent::Closed(PppCloseReason::NoCommonAuthProtocol))
    );
}

#[test]
fn ccp_probe_gets_a_protocol_reject_in_network_phase_only() {
    let now = Instant::now();
    let ccp = control_frame(PROTO_CCP, 1, 5, &option(18, &[0x01, 0x00, 0x00, 0x60]));

    // Before LCP is open: silently discarded.
    let mut early = PppLink::server(Arc::new(server_config()), now, [5; 32]);
    early.open(now);
    drain(&mut early);
    feed(&mut early, now, &ccp);
    assert!(drain(&mut early).is_empty());
    assert_eq!(
        events(&mut early),
        [PppEvent::Dropped(PppDropReason::NotInPhase {
            protocol: PROTO_CCP,
            phase: Phase::Establish
        })]
    );

    let (mut server, now, _) = lone_server_in_network(server_config());
    events(&mut server);
    feed(&mut server, now, &ccp);
    let sent = drain(&mut server);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].protocol, sent[0].code), (PROTO_LCP, 8));
    // Rejected-Protocol, then the rejected Information field.
    assert_eq!(sent[0].data, [&[0x80, 0xfd][..], &ccp[4..]].concat());
    assert_eq!(
        events(&mut server),
        [PppEvent::Dropped(PppDropReason::UnknownProtocol(PROTO_CCP))]
    );
    assert_eq!(server.stats().protocol_rejects_sent, 1);
}

/// The peer Protocol-Rejects IPv6CP: its automaton goes (a client without
/// IPv6 leaves nothing of it in an idle session), IPCP carries on, and the
/// peer's later IPv6CP is Protocol-Rejected like a disabled NCP's.
#[test]
fn a_protocol_rejected_ipv6cp_is_dropped() {
    let (mut server, now, _) = lone_server_in_network(server_config());
    assert!(server.holds_ipv6cp());
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 8, 1, &[0x80, 0x57, 1, 1, 0, 4]),
    );
    assert!(!server.holds_ipv6cp());
    assert_eq!(server.phase(), Phase::Network, "IPCP still runs");
    drain(&mut server);
    let ipv6cp = control_frame(PROTO_IPV6CP, 1, 1, &option(1, &[1, 2, 3, 4, 5, 6, 7, 8]));
    feed(&mut server, now, &ipv6cp);
    let sent = drain(&mut server);
    assert_eq!((sent[0].code, &sent[0].data[..2]), (8, &[0x80, 0x57][..]));
}

#[test]
fn disabled_ncp_is_protocol_rejected_and_peer_protocol_reject_stops_an_ncp() {
    let pool = range_pool([10, 0, 0, 2], [10, 0, 0, 9]);
    let mut config = server_config();
    config.ipv6cp.enabled = false;
    {
        let (mut server, now, _) = lone_server_in_network(config);
        let ipv6cp = control_frame(PROTO_IPV6CP, 1, 1, &option(1, &[1, 2, 3, 4, 5, 6, 7, 8]));
        feed(&mut server, now, &ipv6cp);
        let sent = drain(&mut server);
        assert_eq!((sent[0].code, &sent[0].data[..2]), (8, &[0x80, 0x57][..]));
    }

    // The peer Protocol-Rejects our IPCP: nothing left, the link closes.
    let (mut server, now, _) = lone_server_in_network(server_config());
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 8, 1, &[0x80, 0x57, 1, 1, 0, 4]),
    );
    assert_eq!(server.phase(), Phase::Network, "IPCP still runs");
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 8, 2, &[0x80, 0x21, 1, 1, 0, 4]),
    );
    assert_eq!(server.phase(), Phase::Terminate);
    let terminate = drain(&mut server)
        .into_iter()
        .find(|s| s.code == 5)
        .expect("Terminate-Request");
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 6, terminate.identifier, &[]),
    );
    assert_eq!(
        events(&mut server).last(),
        Some(&PppEvent::Closed(PppCloseReason::NoNetworkProtocol))
    );
    assert_eq!(free(&pool), 8);
}

#[test]
fn unknown_lcp_code_gets_a_code_reject() {
    let (mut server, now, _) = lone_server_in_network(server_config());
    events(&mut server);
    let odd = control_frame(PROTO_LCP, 0x20, 7, &[0xab, 0xcd]);
    feed(&mut server, now, &odd);
    let sent = drain(&mut server);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].protocol, sent[0].code), (PROTO_LCP, 7));
    assert_eq!(sent[0].data, [0x20, 7, 0, 6, 0xab, 0xcd]);
    assert_eq!(
        events(&mut server),
        [PppEvent::Dropped(PppDropReason::Control {
            protocol: PROTO_LCP,
            reason: ControlDrop::UnknownCode(0x20)
        })]
    );
    assert_eq!(server.lcp_state(), State::Opened);
}

#[test]
fn echo_request_is_answered_with_our_magic_and_rfc1570_codes_are_accepted() {
    let (mut server, now, _) = lone_server_in_network(server_config());
    events(&mut server);
    let our_magic = server.lcp.handler().local().magic;
    assert_ne!(our_magic, 0);
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 9, 0x42, &[0x11, 0x22, 0x33, 0x44, b'h', b'i']),
    );
    let mut expected = our_magic.to_be_bytes().to_vec();
    expected.extend_from_slice(b"hi");
    assert_eq!(
        drain(&mut server),
        [Sent {
            protocol: PROTO_LCP,
            code: 10,
            identifier: 0x42,
            data: expected
        }]
    );
    // Identification (Windows sends "MSRASV5.20"), Time-Remaining, Discard:
    // no answer, no complaint.
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 12, 1, b"\x11\x22\x33\x44MSRASV5.20"),
    );
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 13, 2, &[0x11, 0x22, 0x33, 0x44, 0, 0, 0, 60]),
    );
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 11, 3, &[0x11, 0x22, 0x33, 0x44]),
    );
    assert!(drain(&mut server).is_empty());
    assert!(events(&mut server).is_empty());
    // A truncated Echo-Request is discarded.
    feed(&mut server, now, &control_frame(PROTO_LCP, 9, 4, &[0x11]));
    assert!(drain(&mut server).is_empty());
    assert_eq!(events(&mut server).len(), 1);
}

#[test]
fn looped_back_link_is_detected() {
    for role in [Role::Client, Role::Server] {
        let now = Instant::now();
        let config = Arc::new(PppConfig {
            ..PppConfig::default()
        });
        let mut link = match role {
            Role::Server => PppLink::server(config, now, [6; 32]),
            Role::Client => PppLink::client(config, now, "alice", b"pw", [6; 32]),
        };
        link.open(now);
        // The wire returns whatever the link sends.
        let mut frame = Vec::new();
        for _ in 0..100 {
            frame.clear();
            if !link.poll_transmit(&mut frame) {
                break;
            }
            let looped = frame.clone();
            feed(&mut link, now, &looped);
        }
        assert_eq!(link.phase(), Phase::Dead, "{role:?}");
        let closed: Vec<_> = events(&mut link)
            .into_iter()
            .filter(|e| matches!(e, PppEvent::Closed(_)))
            .collect();
        assert_eq!(
            closed,
            [PppEvent::Closed(PppCloseReason::LoopbackDetected)],
            "{role:?}"
        );
    }
}

#[test]
fn colliding_magic_numbers_still_converge() {
    let now = Instant::now();
    let mut server = PppLink::server(Arc::new(server_config()), now, [8; 32]);
    server.open(now);
    let ours = drain(&mut server).remove(0);
    let magic: Vec<u8> = ours.data.windows(6).find(|w| w[..2] == [5, 6]).unwrap()[2..].to_vec();
    // A peer that happened to pick the same number gets a different one.
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 1, 1, &option(5, &magic)),
    );
    let nak = drain(&mut server).remove(0);
    assert_eq!(nak.code, 3);
    let suggested = nak.data[2..].to_vec();
    assert_ne!(suggested, magic);
    // The peer adopts it; meanwhile it Naks ours with a fresh one, which we
    // adopt (different from the one we suggested: no loop).
    feed(
        &mut server,
        now,
        &control_frame(
            PROTO_LCP,
            3,
            ours.identifier,
            &option(5, &[0x0b, 0xad, 0xf0, 0x0d]),
        ),
    );
    let request = drain(&mut server).remove(0);
    assert_eq!(request.data, option(5, &[0x0b, 0xad, 0xf0, 0x0d]));
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 1, 2, &option(5, &suggested)),
    );
    feed(
        &mut server,
        now,
        &control_frame(PROTO_LCP, 2, request.identifier, &request.data),
    );
    assert_eq!(server.lcp_state(), State::Opened);
}

// ---- IPCP and IPv6CP against hand-made peers ----

/// Feeds `code id data` of `protocol` and returns the link's one answer
/// in that protocol, as (code, identifier, data).
fn answer(
    link: &mut PppLink,
    now: Instant,
    protocol: u16,
    code: u8,
    identifier: u8,
    data: &[u8],
) -> (u8, u8, Vec<u8>) {
    feed(link, now, &control_frame(protocol, code, identifier, data));
    let mut replies: Vec<_> = drain(link)
        .into_iter()
        .filter(|s| s.protocol == protocol)
        .collect();
    assert_eq!(replies.len(), 1, "one answer expected: {replies:?}");
    let reply = replies.remove(0);
    (reply.code, reply.identifier, reply.data)
}

#[test]
fn ipcp_server_assigns_naks_and_rejects() {
    let mut config = server_config();
    config.ipcp.dns = [Some(DNS1), None];
    config.ipcp.nbns = [Some(Ipv4Addr::new(10, 0, 0, 139)), None];
    let (mut server, now, sent) = lone_server_in_network(config);
    let request = sent
        .iter()
        .find(|s| s.protocol == PROTO_IPCP)
        .cloned()
        .unwrap();
    assert_eq!(
        request.data,
        option(3, &GATEWAY.octets()),
        "the server's own address"
    );

    let ask = |kind| option(kind, &[0, 0, 0, 0]);
    let assigned = option(3, &[10, 0, 0, 2]);
    let vj = option(2, &[0x00, 0x2d, 0x0f, 0x01]);
    let addresses = option(1, &[10, 0, 0, 2, 10, 0, 0, 1]);
    let cases: [(Vec<u8>, u8, Vec<u8>); 5] = [
        // The client's usual first request: no secondary DNS configured,
        // so that one is rejected (Rejects go before Naks).
        ([ask(3), ask(129), ask(131)].concat(), 4, ask(131)),
        // Address and DNS Nak'd with the assigned and configured values;
        // NBNS handed out because it is configured.
        (
            [ask(3), ask(129), ask(130)].concat(),
            3,
            [
                assigned.clone(),
                option(129, &DNS1.octets()),
                option(130, &[10, 0, 0, 139]),
            ]
            .concat(),
        ),
        // VJ compression, the deprecated IP-Addresses and an unconfigured
        // NBNS: rejected verbatim.
        (
            [ask(3), vj.clone(), addresses.clone(), ask(132)].concat(),
            4,
            [vj, addresses, ask(132)].concat(),
        ),
        // A wrong address is Nak'd with the assigned one...
        (option(3, &[10, 0, 0, 7]), 3, assigned.clone()),
        // ... and a missing one asked for.
        (Vec::new(), 3, assigned.clone()),
    ];
    for (identifier, (options, code, expected)) in (1..).zip(cases) {
        let reply = answer(&mut server, now, PROTO_IPCP, 1, identifier, &options);
        assert_eq!(reply, (code, identifier, expected), "case {identifier}");
    }

    // Converged: Ack, then the Ack of our request opens IPCP.
    let good = [assigned, option(129, &DNS1.octets())].concat();
    assert_eq!(
        answer(&mut server, now, PROTO_IPCP, 1, 9, &good),
        (2, 9, good.clone())
    );
    feed(
        &mut server,
        now,
        &control_frame(PROTO_IPCP, 2, request.identifier, &request.data),
    );
    assert_eq!(
        server.ipv4(),
        Some(Ipv4Params {
            local: GATEWAY,
            peer: Ipv4Addr::new(10, 0, 0, 2),
            dns: [Some(DNS1), None]
        })
    );
}

#[test]
fn ipcp_client_drops_rejected_options_and_fails_without_an_address() {
    let now = Instant::now();
    let mut config = client_config();
    config.ipv6cp.enabled = false;
    let mut client = client_in_network(Arc::new(config), now, [4; 32]);
    let request = drain(&mut client)
        .into_iter()
        .find(|s| s.protocol == PROTO_IPCP)
        .unwrap();
    let zero = [0, 0, 0, 0];
    let dns = [option(129, &zero), option(131, &zero)].concat();
    assert_eq!(request.data, [option(3, &zero), dns.clone()].concat());

    // The server has no name servers: the next request asks for none.
    let (code, identifier, data) =
        answer(&mut client, now, PROTO_IPCP, 4, request.identifier, &dns);
    assert_eq!((code, data.as_slice()), (1, &option(3, &zero)[..]));
    // Nor will it talk about addresses: no way to get one.
    let (code, identifier, _) = answer(
        &mut client,
        now,
        PROTO_IPCP,
        4,
        identifier,
        &option(3, &zero),
    );
    assert_eq!(code, 5, "IPCP Terminate-Request");
    feed(
        &mut client,
        now,
        &control_frame(PROTO_IPCP, 6, identifier, &[]),
    );
    // No NCP left: LCP terminates with the reason.
    let terminate = drain(&mut client)
        .into_iter()
        .find(|s| s.protocol == PROTO_LCP && s.code == 5);
    let terminate = terminate.expect("LCP Terminate-Request");
    feed(
        &mut client,
        now,
        &control_frame(PROTO_LCP, 6, terminate.identifier, &[]),
    );
    assert_eq!(
        events(&mut client).last(),
        Some(&PppEvent::Closed(PppCloseReason::NoAddress))
    );
}

#[test]
fn pair_with_only_a_primary_dns_and_without_dns_requests() {
    let mut server = server_config();
    server.ipcp.dns = [Some(DNS1), None];
    let mut pair = pair_with(server, client_config());
    assert!(pair.run_until(LIMIT, both_ncps_up));
    assert_eq!(pair.client.ipv4().unwrap().dns, [Some(DNS1), None]);

    let mut client = client_config();
    client.ipcp.request_dns = false;
    let mut pair = pair_with(server_config(), client);
    assert!(pair.run_until(LIMIT, both_ncps_up));
    assert_eq!(pair.client.ipv4().unwrap().dns, [None, None]);
}

#[test]
fn ipv6cp_identifier_collisions_are_naked_with_fresh_identifiers() {
    let (mut server, now, sent) = lone_server_in_network(server_config());
    let request = sent
        .iter()
        .find(|s| s.protocol == PROTO_IPV6CP)
        .cloned()
        .unwrap();
    assert_eq!(request.data.len(), 10);
    let ours = u64::from_be_bytes(request.data[2..].try_into().unwrap());
    assert_ne!(ours, 0);
    assert_eq!(ours & 0x0200_0000_0000_0000, 0, "u bit clear");
    let suggestion = |data: &[u8]| u64::from_be_bytes(data[2..].try_into().unwrap());

    // Equal to ours: Nak with a different, non-zero identifier.
    let (code, _, nak) = answer(
        &mut server,
        now,
        PROTO_IPV6CP,
        1,
        1,
        &option(1, &ours.to_be_bytes()),
    );
    assert_eq!((code, nak.len()), (3, 10));
    assert!(suggestion(&nak) != 0 && suggestion(&nak) != ours);
    // Zero: Nak with a non-zero one.
    let (code, _, nak) = answer(&mut server, now, PROTO_IPV6CP, 1, 2, &option(1, &[0; 8]));
    assert_eq!(code, 3);
    assert_ne!(suggestion(&nak), 0);
    // Missing: asked for once, then accepted without.
    let (code, _, last_nak) = answer(&mut server, now, PROTO_IPV6CP, 1, 3, &[]);
    assert_eq!((code, last_nak.len()), (3, 10));
    assert_eq!(
        answer(&mut server, now, PROTO_IPV6CP, 1, 4, &[]),
        (2, 4, vec![])
    );
    // IPv6-Compression-Protocol is rejected.
    let compression = option(2, &[0x00, 0x4f]);
    let both = [option(1, &[1; 8]), compression.clone()].concat();
    assert_eq!(
        answer(&mut server, now, PROTO_IPV6CP, 1, 5, &both),
        (4, 5, compression)
    );

    // The peer Naks ours with the value we last suggested to it (our own
    // Nak looped back): choose a new one, neither that nor the old.
    let (code, retry_id, retry) = answer(
        &mut server,
        now,
        PROTO_IPV6CP,
        3,
        request.identifier,
        &last_nak,
    );
    assert_eq!(code, 1);
    assert!(suggestion(&retry) != suggestion(&last_nak) && suggestion(&retry) != ours);
    // The peer Naks with a fresh value: adopt it.
    let fresh = option(1, &0x0011_2233_4455_6677u64.to_be_bytes());
    let (code, adopted_id, adopted) = answer(&mut server, now, PROTO_IPV6CP, 3, retry_id, &fresh);
    assert_eq!((code, &adopted), (1, &fresh));
    // Open with a peer identifier.
    let peer = option(1, &9u64.to_be_bytes());
    assert_eq!(answer(&mut server, now, PROTO_IPV6CP, 1, 6, &peer).0, 2);
    feed(
        &mut server,
        now,
        &control_frame(PROTO_IPV6CP, 2, adopted_id, &adopted),
    );
    assert_eq!(
        server.ipv6(),
        Some(Ipv6Params {
            local_ifid: 0x0011_2233_4455_6677,
            peer_ifid: 9
        })
    );
}

// ---- Authentication plumbing (scripted machines) ----

fn auth_pair(
    decide: impl Fn(&AuthRequest) -> AuthDecision + Send + Sync + 'static,
) -> (LinkPair, Arc<ServerPools>) {
    let pool = range_pool([10, 0, 0, 2], [10, 0, 0, 9]);
    let server = PppConfig {
        auth_protocols: vec![AuthProtocol::Pap],
        ..server_config()
    };
    let mut pair = LinkPair::new(
        Arc::new(server),
        Arc::new(client_config()),
        "alice",
        b"secret",
        1,
    )
    .with_authenticator(authenticator_fn(decide))
    .with_addresses(pool.clone());
    pair.server.script_auth(ScriptedAuth::server());
    pair.client.script_auth(ScriptedAuth::client("alice"));
    pair.open();
    (pair, pool)
}

#[test]
fn authentication_success_enters_network_with_the_pinned_address() {
    let pinned = Ipv4Addr::new(10, 0, 0, 7);
    let (mut pair, pool) = auth_pair(move |request| {
        assert_eq!(request.username, "alice");
        AuthDecision::Accept(AuthAccept {
            mschapv2: None,
            framed_ipv4: Some(pinned),
            ..AuthAccept::default()
        })
    });
    assert!(pair.run_until(LIMIT, both_ncps_up));
    assert_eq!(pair.client.ipv4().unwrap().local, pinned);
    assert_eq!(pair.server.username(), Some("alice"));
    let authenticated = PppEvent::Authenticated {
        username: "alice".into(),
        hlak: [7; 32],
    };
    let position = |events: &[PppEvent], wanted: &PppEvent| events.iter().position(|e| e == wanted);
    let server_events = pair.server.events.clone();
    let request_at = server_events
        .iter()
        .position(|e| matches!(e, PppEvent::AuthRequest(_)))
        .unwrap();
    let authenticated_at = position(&server_events, &authenticated).unwrap();
    let up_at = server_events
        .iter()
        .position(|e| matches!(e, PppEvent::Ipv4Up(_)))
        .unwrap();
    assert!(request_at < authenticated_at && authenticated_at < up_at);
    assert!(pair.client.events.contains(&authenticated));
    assert_no_drops(&pair.server.events);
    assert_eq!(free(&pool), 7, "pinned address taken from the pool");
}

#[test]
fn the_authenticators_dns_servers_and_mtu_apply_to_this_link() {
    let dns = [
        Some(Ipv4Addr::new(192, 0, 2, 53)),
        Some(Ipv4Addr::new(192, 0, 2, 54)),
    ];
    let (mut pair, _pool) = auth_pair(move |_| {
        AuthDecision::Accept(AuthAccept {
            policy: crate::proto::auth::SessionPolicy {
                dns,
                mtu: Some(1200),
                ..Default::default()
            },
            ..AuthAccept::default()
        })
    });
    assert!(pair.run_until(LIMIT, both_ncps_up));
    // IPCP offered the authenticator's servers, not the configured ones.
    assert_eq!(pair.client.ipv4().unwrap().dns, dns);
    assert_eq!(pair.server.ipv4().unwrap().dns, dns);
    assert_eq!(pair.server.framed_mtu(), Some(1200));
    assert_eq!(pair.server.transmit_mtu(), 1200);
    assert_no_drops(&pair.server.events);
}

#[test]
fn authentication_failure_sends_failure_then_terminates() {
    let (mut pair, pool) = auth_pair(|_| {
        AuthDecision::Reject(AuthReject {
            reason: RejectReason::AuthenticationFailure,
            message: "no".into(),
        })
    });
    // Run by hand to observe the server's frame order.
    for _ in 0..10 {
        pair.step();
        if pair.server.phase() == Phase::Terminate {
            break;
        }
    }
    assert_eq!(pair.server.phase(), Phase::Terminate);
    assert!(pair.run_until(LIMIT, |p| p.server.phase() == Phase::Dead));
    let expected = PppCloseReason::AuthFailed(AuthFailure::Rejected {
        reason: RejectReason::AuthenticationFailure,
        code: None,
        message: "no".into(),
    });
    assert_eq!(pair.server.events.last(), Some(&PppEvent::Closed(expected)));
    assert!(!pair
        .server
        .events
        .iter()
        .any(|e| matches!(e, PppEvent::Authenticated { .. })));
    assert_eq!(free(&pool), 8, "no address was taken");
}

#[test]
fn failure_packet_precedes_the_terminate_request() {
    let config = PppConfig {
        auth_protocols: vec![AuthProtocol::Pap],
        ..server_config()
    };
    let now = Instant::now();
    let mut server = PppLink::server(Arc::new(config), now, [1; 32]);
    server.script_auth(ScriptedAuth::server());
    server.open(now);
    assert!(open_lcp(&mut server, now, 0x0102_0304));
    assert_eq!(server.phase(), Phase::Authenticate);
    drain(&mut server);
    feed(
        &mut server,
        now,
        &control_frame(PROTO_PAP, 1, 0x33, b"mallory"),
    );
    let request = events(&mut server).into_iter().find_map(|e| match e {
        PppEvent::AuthRequest(request) => Some(request),
        _ => None,
    });
    let request = request.unwrap();
    assert_eq!(request.username, "mallory");
    // The decision arrives later (an asynchronous authenticator).
    let decided = server.auth_decision(
        now + Duration::from_millis(200),
        request.id,
        AuthDecision::Reject(AuthReject {
            reason: RejectReason::AccountDisabled,
            message: String::new(),
        }),
    );
    assert_eq!(decided, Ok(()));
    let sent = drain(&mut server);
    let order: Vec<_> = sent.iter().map(|s| (s.protocol, s.code)).collect();
    assert_eq!(order, [(PROTO_PAP, 3), (PROTO_LCP, 5)]);
    assert_eq!(sent[0].identifier, 0x33);
    // Non-auth packets during Authenticate are silently discarded.
    feed(&mut server, now, &control_frame(PROTO_IPCP, 1, 1, &[]));
    assert!(drain(&mut server).is_empty());
}

#[test]
fn auth_packets_outside_authentication_are_discarded() {
    let (mut server, now, _) = lone_server_in_network(server_config());
    events(&mut server);
    feed(
        &mut server,
        now,
        &control_frame(PROTO_CHAP, 2, 1, &[16; 17]),
    );
    assert!(
        drain(&mut server).is_empty(),
        "no Protocol-Reject for a known protocol"
    );
    assert_eq!(
        events(&mut server),
        [PppEvent::Dropped(PppDropReason::NotInPhase {
            protocol: PROTO_CHAP,
            phase: Phase::Network
        })]
    );
}

// ---- Keepalive and robustness ----

#[test]
fn lcp_keepalive_closes_a_silent_link() {
    let mut server = server_config();
    server.lcp.echo_interval = Some(Duration::from_secs(10));
    server.lcp.echo_failures = 2;
    let mut pair = pair_with(server, client_config());
    assert!(pair.run_until(LIMIT, both_ncps_up));
    // A busy link needs no echo: the client's traffic is proof of life.
    let echoes_sent = |pair: &LinkPair| pair.units[1];
    let before = echoes_sent(&pair);
    for _ in 0..12 {
        let mut wire = Vec::new();
        pair.client
            .encapsulate_ip(IpVersion::V4, &[0x45, 0], &mut wire);
        feed(&mut pair.server, pair.now, &wire);
        pair.advance_by(Duration::from_secs(5));
    }
    assert_eq!(
        echoes_sent(&pair),
        before,
        "no Echo-Request while traffic flows"
    );
    // Silence: echoes go out and their answers keep the link up.
    pair.advance_by(Duration::from_secs(60));
    assert_eq!(pair.server.phase(), Phase::Network);
    assert!(
        echoes_sent(&pair) >= before + 5,
        "one echo per 10 s of silence"
    );
    let opened_at = pair.now;
    // Then the client goes silent.
    pair.loss = Some(Box::new(|direction, _, _| {
        direction == Direction::ClientToServer
    }));
    assert!(pair.run_until(LIMIT, |p| p.server.phase() == Phase::Dead));
    assert!(pair
        .server
        .events
        .contains(&PppEvent::Closed(PppCloseReason::EchoTimeout)));
    let silent_for = pair.now - opened_at;
    // Two unanswered echoes 10 s apart, then the third tick closes;
    // Max-Terminate (2 x 3 s) runs out.
    assert!(
        silent_for >= Duration::from_secs(30) && silent_for <= Duration::from_secs(40),
        "{silent_for:?}"
    );
}

#[test]
fn drop_reports_are_bounded() {
    let (mut server, now, _) = lone_server_in_network(server_config());
    events(&mut server);
    for _ in 0..100 {
        feed(&mut server, now, &[0xff]);
    }
    assert_eq!(events(&mut server).len(), MAX_QUEUED_DROP_EVENTS);
    let stats = server.stats();
    assert_eq!(stats.frames_dropped, 100);
    assert_eq!(stats.drop_events_suppressed, 36);
}

#[test]
fn reasons_have_metric_names() {
    assert_eq!(PppCloseReason::PeerTerminated.as_str(), "peer_terminated");
    assert_eq!(
        PppCloseReason::NegotiationFailed {
            protocol: PROTO_LCP,
            failure: NegotiationFailure::MaxConfigure
        }
        .as_str(),
        "max_configure"
    );
    assert_eq!(
        PppCloseReason::AuthFailed(AuthFailure::Timeout).as_str(),
        "auth_failed"
    );
    assert_eq!(
        PppDropReason::UnknownProtocol(PROTO_CCP).as_str(),
        "unknown_protocol"
    );
    assert_eq!(
        PppDropReason::Control {
            protocol: PROTO_LCP,
            reason: ControlDrop::UnknownCode(1)
        }
        .as_str(),
        "unknown_code"
    );
    assert_eq!(Phase::Authenticate.as_str(), "authenticate");
    assert_eq!(IpVersion::V6.as_str(), "ipv6");
}

// ---- Arbitrary input never panics ----

mod arbitrary_input {
    use super::*;
    use crate::proto::ppp::packet::write_option;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Option lists: mostly well-formed options of the types the handlers
    /// know (and some they do not), sometimes raw bytes.
    fn option_list() -> impl Strategy<Value = Vec<u8>> {
        let kinds = prop::sample::select(vec![
            1u8, 2, 3, 4, 5, 7, 8, 13, 17, 19, 129, 130, 131, 132, 200,
        ]);
        let structured = vec((kinds, vec(any::<u8>(), 0..10)), 0..6).prop_map(|options| {
            let mut list = Vec::new();
            for (kind, data) in options {
                write_option(kind, &data, &mut list);
            }
            list
        });
        prop_oneof![3 => structured, 1 => vec(any::<u8>(), 0..24)]
    }

    fn frame() -> impl Strategy<Value = Vec<u8>> {
        let protocols = prop::sample::select(vec![
            PROTO_LCP,
            PROTO_IPCP,
            PROTO_IPV6CP,
            PROTO_CCP,
            PROTO_PAP,
            PROTO_IPV4,
            PROTO_IPV6,
        ]);
        (
            protocols,
            0u8..16,
            0u8..4,
            option_list(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(protocol, code, identifier, body, honest_length, address_control)| {
                    let mut frame = Vec::new();
                    if address_control {
                        frame.extend_from_slice(&[0xff, 0x03]);
                    }
                    frame.extend_from_slice(&protocol.to_be_bytes());
                    if honest_length {
                        write_control(code, identifier, &[&body], &mut frame);
                    } else {
                        frame.extend_from_slice(&[code, identifier]);
                        frame.extend_from_slice(&body);
                    }
                    frame
                },
            )
    }

    fn no_auth() -> PppConfig {
        PppConfig {
            auth_protocols: vec![],
            ..server_config()
        }
    }

    proptest! {
        #[test]
        fn links_survive_arbitrary_frames(
            start in 0usize..4,
            frames in vec((frame(), any::<bool>()), 0..32),
        ) {
            let now = Instant::now();
            let config = Arc::new(no_auth());
            let mut link = match start {
                0 => {
                    let mut link = PppLink::server(config, now, [1; 32]);
                    link.open(now);
                    link
                }
                1 => {
                    let mut link = PppLink::client(config, now, "u", b"p", [1; 32]);
                    link.open(now);
                    link
                }
                2 => server_in_network(config, now, [1; 32]),
                _ => client_in_network(config, now, [1; 32]),
            };
            let mut clock = now;
            for (frame, tick) in frames {
                let (v4, v6) = (link.ipv4().is_some(), link.ipv6().is_some());
                link.handle_frame(clock, &frame, &mut |version, packet| {
                    assert!(!packet.is_empty());
                    assert!(match version { IpVersion::V4 => v4, IpVersion::V6 => v6 });
                });
                let mut out = Vec::new();
                while link.poll_transmit(&mut out) {
                    let sent = parse_frame(&out).unwrap();
                    if sent.protocol != PROTO_IPV4 && sent.protocol != PROTO_IPV6 {
                        prop_assert!(parse_control(sent.information).is_ok());
                    }
                    out.clear();
                }
                while link.poll_event().is_some() {}
                if tick {
                    if let Some(deadline) = link.poll_timeout() {
                        clock = clock.max(deadline);
                        link.handle_timeout(clock);
                    }
                }
            }
        }
    }
}

// ---- The fuzz targets' seed corpora ----

mod seed_corpora {
    use super::*;
    use crate::testing::link_pair::{
        fuzz_ipcp_options, fuzz_ipv6cp_options, fuzz_lcp_options, fuzz_ppp_frame,
    };
    use std::path::Path;

    /// The `seed_*` files of a target, by name.
    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target);
        let mut seeds: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                path.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("seed_"))
            })
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect();
        seeds.sort();
        seeds
    }

    fn seed<'a>(seeds: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
        &seeds
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .1
    }

    #[test]
    fn ppp_frame_seeds() {
        let seeds = seeds("ppp_frame");
        assert!(seeds.len() >= 10);
        for (name, data) in &seeds {
            let mut link = fuzz_ppp_frame(data);
            let phase = match name.as_str() {
                // A new LCP request renegotiates; a Terminate-Request ends.
                "seed_lcp_windows_request" | "seed_lcp_pppd_request" => Phase::Establish,
                "seed_lcp_terminate_request" => Phase::Terminate,
                _ => Phase::Network,
            };
            assert_eq!(link.phase(), phase, "{name}");
            let dropped: Vec<_> = events(&mut link)
                .into_iter()
                .filter(|e| matches!(e, PppEvent::Dropped(_)))
                .collect();
            let expected_drops = match name.as_str() {
                // IP before the NCPs are open, probes answered with
                // Protocol-/Code-Reject, auth without authentication.
                "seed_ipv4_compressed_protocol" | "seed_ipv4_full_header" | "seed_ipv6" => 1,
                "seed_ccp_mppe_probe" | "seed_lcp_unknown_code" | "seed_chap_response" => 1,
                _ => 0,
            };
            assert_eq!(dropped.len(), expected_drops, "{name}: {dropped:?}");
        }
    }

    #[test]
    fn lcp_options_seeds() {
        let seeds = seeds("lcp_options");
        for (_, data) in &seeds {
            fuzz_lcp_options(data).unwrap();
        }
        let windows = fuzz_lcp_options(seed(&seeds, "seed_server_windows")).unwrap();
        assert_eq!(
            (windows.lcp_state(), windows.peer_mru()),
            (State::Opened, 4091)
        );
        let pppd = fuzz_lcp_options(seed(&seeds, "seed_server_pppd")).unwrap();
        assert_eq!(pppd.phase(), Phase::Network);
        let small = fuzz_lcp_options(seed(&seeds, "seed_server_small_mru")).unwrap();
        assert_eq!((small.lcp_state(), small.peer_mru()), (State::Opened, 576));
        let eap = fuzz_lcp_options(seed(&seeds, "seed_client_eap_offer")).unwrap();
        assert_eq!(
            eap.lcp_state(),
            State::AckSent,
            "MS-CHAPv2 accepted after EAP was Nak'd"
        );
        let unanswered = fuzz_lcp_options(seed(&seeds, "seed_server_unanswered")).unwrap();
        assert_eq!(unanswered.phase(), Phase::Dead);
    }

    #[test]
    fn ipcp_options_seeds() {
        let seeds = seeds("ipcp_options");
        for (_, data) in &seeds {
            fuzz_ipcp_options(data).unwrap();
        }
        let dns = [Some(DNS1), Some(DNS2)];
        let server = fuzz_ipcp_options(seed(&seeds, "seed_server_windows")).unwrap();
        assert_eq!(
            server.ipv4(),
            Some(Ipv4Params {
                local: GATEWAY,
                peer: Ipv4Addr::new(10, 0, 0, 2),
                dns
            })
        );
        let client = fuzz_ipcp_options(seed(&seeds, "seed_client_nak")).unwrap();
        assert_eq!(
            client.ipv4(),
            Some(Ipv4Params {
                local: Ipv4Addr::new(10, 0, 0, 2),
                peer: GATEWAY,
                dns
            })
        );
    }

    #[test]
    fn ipv6cp_options_seeds() {
        let seeds = seeds("ipv6cp_options");
        for (_, data) in &seeds {
            fuzz_ipv6cp_options(data).unwrap();
        }
        let client = fuzz_ipv6cp_options(seed(&seeds, "seed_client_nak_then_open")).unwrap();
        assert_eq!(
            client.ipv6(),
            Some(Ipv6Params {
                local_ifid: 0x0011_2233_4455_6677,
                peer_ifid: 0x0211_22ff_fe33_4455
            })
        );
        let server = fuzz_ipv6cp_options(seed(&seeds, "seed_server_zero_identifier")).unwrap();
        assert_eq!(
            server.ipv6().map(|p| p.peer_ifid),
            Some(0x0211_22ff_fe33_4455)
        );
    }
}

#[test]
fn echo_requests_are_answered_at_a_bounded_rate_and_the_excess_counted() {
    let (mut server, now, _) = lone_server_in_network(server_config());
    events(&mut server);
    let echo = |id: u8| control_frame(PROTO_LCP, 9, id, &[0x11, 0x22, 0x33, 0x44]);
    let flood = |server: &mut PppLink, at: Instant, ids: std::ops::Range<u8>| {
        let mut answered = 0;
        let mut dropped = 0;
        for id in ids {
            feed(server, at, &echo(id));
            answered += drain(server).len();
            for event in events(server) {
                assert_eq!(
                    event,
                    PppEvent::Dropped(PppDropReason::Control {
                        protocol: PROTO_LCP,
                        reason: ControlDrop::RateLimited,
                    })
                );
                dropped += 1;
            }
        }
        (answered, dropped)
    };
    let lcp = LcpConfig::default();
    let burst = lcp.echo_reply_burst as usize;
    // A flood at one instant: the burst is answered, the rest dropped.
    assert_eq!(flood(&mut server, now, 0..100), (burst, 100 - burst));
    // The budget comes back with time, one reply per interval.
    let later = now + lcp.echo_reply_interval * 3;
    assert_eq!(flood(&mut server, later, 100..110), (3, 7));
    // A peer within the rate is never refused.
    let mut at = later;
    for id in 110..130 {
        at += lcp.echo_reply_interval;
        assert_eq!(flood(&mut server, at, id..id + 1), (1, 0));
    }
    assert_eq!(server.lcp_state(), State::Opened);
}

// ---- A slow path: every frame takes longer than the restart timer ----

/// Client and server links (no authentication, IPCP only) wired with
/// `latency` each way; the server's address requests are answered at
/// once. Runs until both have IPv4 up or either closed, at most `limit`
/// of virtual time. Returns the client's events.
fn converge_with_latency(latency: Duration, limit: Duration) -> (PppLink, PppLink, Vec<PppEvent>) {
    let start = Instant::now();
    let mut now = start;
    let mut server_config = server_config();
    server_config.ipv6cp.enabled = false;
    let mut client_config = client_config();
    client_config.ipv6cp.enabled = false;
    let mut server = PppLink::server(Arc::new(server_config), now, [9; 32]);
    let mut client = PppLink::client(Arc::new(client_config), now, "alice", b"secret", [4; 32]);
    server.open(now);
    client.open(now);
    // (due, to the server?, frame), in the order sent: the latency is the
    // same both ways, so this is also the order due.
    let mut wire: VecDeque<(Instant, bool, Vec<u8>)> = VecDeque::new();
    let mut client_events = Vec::new();
    let mut buf = Vec::new();
    while now - start < limit {
        while server.poll_transmit(&mut buf) {
            wire.push_back((now + latency, false, std::mem::take(&mut buf)));
        }
        while client.poll_transmit(&mut buf) {
            wire.push_back((now + latency, true, std::mem::take(&mut buf)));
        }
        while let Some(event) = server.poll_event() {
            if let PppEvent::Ipv4AddressRequest(request) = event {
                server
                    .assign_ipv4(now, request.id, Some(Ipv4Addr::new(10, 0, 0, 2)))
                    .unwrap();
            }
        }
        client_events.extend(std::iter::from_fn(|| client.poll_event()));
        let up = server.ipv4().is_some() && client.ipv4().is_some();
        if up || server.phase() == Phase::Dead || client.phase() == Phase::Dead {
            break;
        }
        let next = [
            wire.front().map(|(due, _, _)| *due),
            server.poll_timeout(),
            client.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { break };
        now = now.max(next);
        while wire.front().is_some_and(|(due, _, _)| *due <= now) {
            let (_, to_server, frame) = wire.pop_front().unwrap();
            let target = if to_server { &mut server } else { &mut client };
            target.handle_frame(now, &frame, &mut |_, _| {});
        }
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        }
        if client.poll_timeout().is_some_and(|t| t <= now) {
            client.handle_timeout(now);
        }
    }
    (server, client, client_events)
}

/// A path slower than the restart timer (3 s) both ways, as on a node
/// swamped by a reconnect storm: every request is sent again before its
/// answer can arrive, so the answers the peer gets are to requests it has
/// replaced. The negotiation still converges, and the client gets its
/// address.
#[test]
fn a_path_slower_than_the_restart_timer_still_assigns_an_address() {
    for latency in [
        Duration::from_millis(3500),
        Duration::from_secs(5),
        Duration::from_secs(8),
    ] {
        let (server, client, events) = converge_with_latency(latency, Duration::from_secs(600));
        assert_eq!(
            client.ipv4().map(|p| p.local),
            Some(Ipv4Addr::new(10, 0, 0, 2)),
            "latency {latency:?}: {events:?}"
        );
        assert!(server.ipv4().is_some(), "latency {latency:?}");
    }
}

#[test]
fn the_authentication_machine_goes_once_the_peers_ncp_shows_it_has_the_success() {
    let (mut pair, _pool) = auth_pair(|_| AuthDecision::Accept(AuthAccept::default()));
    // The client's NCP packets are lost until `ncp_lost` is cleared.
    let ncp_lost = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let losing = ncp_lost.clone();
    pair.loss = Some(Box::new(move |direction, _, frame| {
        let protocol = match frame {
            [0xff, 0x03, high, low, ..] | [high, low, ..] => u16::from_be_bytes([*high, *low]),
            _ => 0,
        };
        losing.load(std::sync::atomic::Ordering::Relaxed)
            && direction == Direction::ClientToServer
            && matches!(protocol, PROTO_IPCP | PROTO_IPV6CP)
    }));
    // Both ends are in the Network phase; none of the client's NCP
    // packets has arrived.
    assert!(pair.run_until(LIMIT, |p| {
        p.server.endpoint.link.phase() == Phase::Network
            && p.client.endpoint.link.phase() == Phase::Network
    }));
    assert!(
        pair.server.endpoint.link.auth.is_some(),
        "kept to answer a retransmitted request whose Success was lost"
    );
    ncp_lost.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(pair.run_until(LIMIT, both_ncps_up));
    assert!(pair.server.endpoint.link.auth.is_none());
    // An authentication packet now is out of phase, as with no method.
    let server = &mut pair.server.endpoint.link;
    events(server);
    feed(server, pair.now, &control_frame(PROTO_PAP, 1, 1, b"alice"));
    assert!(drain(server).is_empty());
    assert_eq!(
        events(server),
        [PppEvent::Dropped(PppDropReason::NotInPhase {
            protocol: PROTO_PAP,
            phase: Phase::Network
        })]
    );
}
