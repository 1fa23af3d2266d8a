//! The client state machine against servers built from this codec, on the
//! common harness (`testing::pair`, [`RadiusNas`] and [`RadiusServers`])
//! with its virtual clock: loss, timeouts and back-off, failover, dead
//! servers and their recovery, duplicate, late, forged and unsigned
//! answers, the identifier space and the queue bound.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::proto::auth::Credentials;
use crate::radius::attr::{self, ms, Attributes};
use crate::radius::crypt;
use crate::testing::pair::{
    accept_all, Answer, Direction, Pair, RadiusNas, RadiusServers, Received, Responder,
};

type RadiusPair = Pair<RadiusServers, RadiusNas<u32>>;

const SECRET: &[u8] = b"s3cret";
const AUTH1: u16 = 1812;
const AUTH2: u16 = 2812;
const ACCT1: u16 = 1813;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn servers(ports: &[u16]) -> Vec<ServerConfig> {
    ports
        .iter()
        .map(|&port| ServerConfig {
            addr: addr(port),
            secret: SECRET.to_vec(),
        })
        .collect()
}

fn config(auth: &[u16], acct: &[u16]) -> ClientConfig {
    ClientConfig {
        auth_servers: servers(auth),
        acct_servers: servers(acct),
        ..ClientConfig::default()
    }
}

fn responders(ports: &[u16]) -> Vec<Responder> {
    ports
        .iter()
        .map(|&port| Responder::new(addr(port), SECRET))
        .collect()
}

fn pair(config: ClientConfig, responders: Vec<Responder>) -> RadiusPair {
    let servers = RadiusServers::new(responders);
    let addresses = servers.addresses();
    let client = Client::with_seed(config, [7; 32]);
    Pair::between(servers, RadiusNas::new(client, addresses), Instant::now())
}

fn pap(user: &str) -> Request {
    let mut attributes = Attributes::new();
    attributes.push_string(attr::USER_NAME, user).unwrap();
    Request::access_with_password(attributes, b"password")
}

fn acct_start(session: &str) -> Request {
    let mut attributes = Attributes::new();
    attributes.push_u32(attr::ACCT_STATUS_TYPE, attr::AcctStatusType::Start.value());
    attributes
        .push_string(attr::ACCT_SESSION_ID, session)
        .unwrap();
    Request::accounting(attributes)
}

/// Sends a request at the pair's time.
fn send(pair: &mut RadiusPair, request: Request, tag: u32) -> RequestHandle {
    let now = pair.now;
    pair.client.send(now, request, tag).unwrap()
}

/// Runs until `n` requests have ended (a minute at most).
fn run_to(pair: &mut RadiusPair, n: usize) {
    assert!(
        pair.run_until(Duration::from_secs(60), |p| outcomes(p).len() >= n),
        "{:?}",
        pair.client.events
    );
}

/// Authentication servers at `ports` with a 1 s timeout and `retries`;
/// those whose index is in `silent_ones` never answer.
fn auth_pair(ports: &[u16], silent_ones: &[usize], retries: u32) -> RadiusPair {
    let mut config = config(ports, &[]);
    config.auth_timeout = Duration::from_secs(1);
    config.retries = retries;
    let mut responders = responders(ports);
    for &i in silent_ones {
        responders[i].answer = silent();
    }
    pair(config, responders)
}

fn silent() -> Answer {
    Box::new(|_, _| None)
}

/// Each request's outcome, in order: the response code or the failure.
fn outcomes(pair: &RadiusPair) -> Vec<(u32, &'static str)> {
    pair.client
        .events
        .iter()
        .filter_map(|event| match event {
            Event::Response { tag, response, .. } => Some((*tag, response.code().as_str())),
            Event::Failed { tag, reason, .. } => Some((*tag, reason.as_str())),
            _ => None,
        })
        .collect()
}

/// Server transitions, in order.
fn transitions(pair: &RadiusPair) -> Vec<(&'static str, u16)> {
    pair.client
        .events
        .iter()
        .filter_map(|event| match event {
            Event::ServerDown { addr, .. } => Some(("down", addr.port())),
            Event::ServerUp { addr, .. } => Some(("up", addr.port())),
            _ => None,
        })
        .collect()
}

fn drops(pair: &RadiusPair) -> Vec<&'static str> {
    pair.client
        .delivered
        .iter()
        .map(DropReason::as_str)
        .collect()
}

/// Seconds since the pair started at which `responder` received requests.
fn arrivals(pair: &RadiusPair, responder: usize) -> Vec<u64> {
    pair.server[responder]
        .received
        .iter()
        .map(|r| (r.at - pair.base).as_secs())
        .collect()
}

fn user_of(received: &Received) -> &str {
    received.packet.attributes.string(attr::USER_NAME).unwrap()
}

#[test]
fn pap_request_is_hidden_signed_and_answered() {
    let mut config = config(&[AUTH1], &[]);
    config.nas_identifier = Some("sstpd".into());
    config.nas_ip_address = Some([10, 0, 0, 1].into());
    let mut pair = pair(config, responders(&[AUTH1]));
    send(&mut pair, pap("nemo"), 1);
    pair.drive_now();

    assert_eq!(outcomes(&pair), [(1, "access_accept")]);
    let server = &pair.server[0];
    assert!(server.refused.is_empty(), "{:?}", server.refused);
    let request = &server.received[0];
    assert_eq!(request.password.as_deref(), Some(&b"password"[..]));
    let attributes = &request.packet.attributes;
    assert_eq!(
        attributes.iter().next().unwrap().kind(),
        attr::MESSAGE_AUTHENTICATOR,
        "the Message-Authenticator goes first"
    );
    assert_eq!(attributes.string(attr::NAS_IDENTIFIER), Some("sstpd"));
    assert_eq!(
        attributes.ipv4(attr::NAS_IP_ADDRESS),
        Some([10, 0, 0, 1].into())
    );
    let stats = pair.client.stats();
    assert_eq!((stats.auth_outstanding, stats.auth_queued), (0, 0));
    assert!(stats.servers[0].alive);
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn a_request_keeps_its_own_nas_identity() {
    let mut config = config(&[AUTH1], &[]);
    config.nas_identifier = Some("sstpd".into());
    let mut pair = pair(config, responders(&[AUTH1]));
    let mut attributes = Attributes::new();
    attributes
        .push_string(attr::NAS_IDENTIFIER, "mine")
        .unwrap();
    let now = pair.now;
    pair.client
        .send(now, Request::access(attributes), 1)
        .unwrap();
    pair.drive_now();
    let received = &pair.server[0].received[0].packet.attributes;
    let ids: Vec<&[u8]> = received.get_all(attr::NAS_IDENTIFIER).collect();
    assert_eq!(ids, [b"mine"]);
}

#[test]
fn mschapv2_accept_yields_the_mppe_keys() {
    let mut responders = responders(&[AUTH1]);
    responders[0].answer = Box::new(|request, secret| {
        let ra = &request.authenticator;
        let mut attributes = Attributes::new();
        let mut success = vec![1];
        success.extend_from_slice(b"S=407A5589115FD0D6209F510FE9C04566932CDA56");
        attributes.push_ms(ms::CHAP2_SUCCESS, &success).unwrap();
        let send = crypt::encrypt_mppe_key(&[0x11; 16], secret, ra, [1, 2]).unwrap();
        // Some servers send 32 octets; the first 16 are the key.
        let mut long = [0x22u8; 32];
        long[16..].fill(0);
        let receive = crypt::encrypt_mppe_key(&long, secret, ra, [3, 4]).unwrap();
        attributes.push_ms(ms::MPPE_SEND_KEY, &send).unwrap();
        attributes.push_ms(ms::MPPE_RECV_KEY, &receive).unwrap();
        Some((Code::AccessAccept, attributes))
    });
    let mut pair = pair(config(&[AUTH1], &[]), responders);
    let credentials = Credentials::MsChapV2 {
        identifier: 1,
        authenticator_challenge: [5; 16],
        peer_challenge: [6; 16],
        nt_response: [7; 24],
    };
    let request = Request::authenticate(Attributes::new(), "User", &credentials).unwrap();
    send(&mut pair, request, 1);
    pair.drive_now();

    let sent = &pair.server[0].received[0].packet.attributes;
    assert_eq!(sent.string(attr::USER_NAME), Some("User"));
    assert_eq!(sent.ms(ms::CHAP_CHALLENGE), Some(&[5u8; 16][..]));
    assert_eq!(
        sent.ms(ms::CHAP2_RESPONSE),
        Some(&ms::chap2_response(1, &[6; 16], &[7; 24])[..])
    );
    let Some(Event::Response { response, .. }) = pair.client.events.first() else {
        panic!("no response: {:?}", pair.client.events);
    };
    assert_eq!(
        response.mppe_keys(),
        Some(Ok(MppeKeys {
            send: [0x11; 16],
            receive: [0x22; 16]
        }))
    );
    let (ident, authenticator_response) = response.mschap2_success().unwrap();
    assert_eq!((ident, authenticator_response[0]), (1, 0x40));
    assert_eq!(response.server(), addr(AUTH1));
}

#[test]
fn credentials_become_their_attributes() {
    let pap = Request::authenticate(
        Attributes::new(),
        "u",
        &Credentials::Pap {
            password: b"pw".to_vec(),
        },
    )
    .unwrap();
    assert_eq!(pap.code(), Code::AccessRequest);
    assert_eq!(pap.attributes().string(attr::USER_NAME), Some("u"));
    assert!(format!("{pap:?}").contains("password: \"..\""));
    assert!(!format!("{pap:?}").contains("pw\""));

    let chap = Request::authenticate(
        Attributes::new(),
        "u",
        &Credentials::ChapMd5 {
            identifier: 9,
            challenge: vec![1, 2, 3],
            response: [4; 16],
        },
    )
    .unwrap();
    let password = chap.attributes().get(attr::CHAP_PASSWORD).unwrap();
    assert_eq!((password.len(), password[0], password[1]), (17, 9, 4));
    assert_eq!(
        chap.attributes().get(attr::CHAP_CHALLENGE),
        Some(&[1, 2, 3][..])
    );
    assert_eq!(chap.role(), ServerRole::Auth);
    assert_eq!(acct_start("s").role(), ServerRole::Acct);
}

#[test]
fn a_lost_access_request_goes_again_unchanged() {
    let mut pair = pair(config(&[AUTH1], &[]), responders(&[AUTH1])).recording();
    pair.loss = Some(Box::new(|direction, n, _| {
        direction == Direction::ClientToServer && n == 0
    }));
    send(&mut pair, pap("nemo"), 1);
    pair.drive_now();
    assert!(outcomes(&pair).is_empty());
    assert_eq!(
        pair.client.poll_timeout(),
        Some(pair.base + Duration::from_secs(3))
    );

    run_to(&mut pair, 1);
    assert_eq!(pair.elapsed(), Duration::from_secs(3));
    assert_eq!(outcomes(&pair), [(1, "access_accept")]);
    let sent: Vec<&[u8]> = pair.client.sent.transmissions().collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1], "same identifier and authenticator");
}

#[test]
fn a_silent_server_gets_backed_off_retries_then_is_dead() {
    let mut config = config(&[AUTH1], &[]);
    config.max_timeout = Duration::from_secs(8);
    let mut responders = responders(&[AUTH1]);
    responders[0].answer = silent();
    let mut pair = pair(config, responders);
    send(&mut pair, pap("nemo"), 1);
    run_to(&mut pair, 1);

    // 3 s, doubled to 6 s, capped at 8 s.
    assert_eq!(arrivals(&pair, 0), [0, 3, 9]);
    assert_eq!(pair.elapsed(), Duration::from_secs(17));
    assert_eq!(outcomes(&pair), [(1, "timeout")]);
    assert_eq!(transitions(&pair), [("down", AUTH1)]);
    assert!(!pair.client.stats().servers[0].alive);

    // The only server is dead: the next request is still sent to it.
    send(&mut pair, pap("again"), 2);
    pair.drive_now();
    assert_eq!(pair.server[0].received.len(), 4);
}

#[test]
fn fails_over_and_probes_the_dead_server_after_dead_time() {
    let mut pair = auth_pair(&[AUTH1, AUTH2], &[0], 1);

    send(&mut pair, pap("r1"), 1);
    run_to(&mut pair, 1);
    // Twice to the first (1 s, then 2 s), then the second answers.
    assert_eq!(arrivals(&pair, 0), [0, 1]);
    assert_eq!(arrivals(&pair, 1), [3]);
    assert_eq!(outcomes(&pair), [(1, "access_accept")]);
    assert_eq!(transitions(&pair), [("down", AUTH1)]);

    // While the first is dead, requests go straight to the second.
    send(&mut pair, pap("r2"), 2);
    pair.drive_now();
    assert_eq!(pair.server[0].received.len(), 2);
    assert_eq!(pair.server[1].received.len(), 2);

    // After dead_time (30 s) one request probes it, the other does not
    // wait on the probe.
    pair.advance_by(Duration::from_secs(30));
    pair.server[0].answer = accept_all();
    send(&mut pair, pap("r3"), 3);
    send(&mut pair, pap("r4"), 4);
    pair.drive_now();
    assert_eq!(user_of(pair.server[0].received.last().unwrap()), "r3");
    assert_eq!(user_of(pair.server[1].received.last().unwrap()), "r4");
    assert_eq!(transitions(&pair), [("down", AUTH1), ("up", AUTH1)]);
    assert_eq!(
        outcomes(&pair)[2..],
        [(3, "access_accept"), (4, "access_accept")]
    );

    // Back in first place.
    send(&mut pair, pap("r5"), 5);
    pair.drive_now();
    assert_eq!(user_of(pair.server[0].received.last().unwrap()), "r5");
    assert!(pair.client.stats().servers.iter().all(|s| s.alive));
}

#[test]
fn a_failed_probe_keeps_the_server_dead_without_a_second_event() {
    let mut pair = auth_pair(&[AUTH1, AUTH2], &[0], 0);
    send(&mut pair, pap("r1"), 1);
    run_to(&mut pair, 1);
    pair.advance_by(Duration::from_secs(30));
    send(&mut pair, pap("probe"), 2);
    run_to(&mut pair, 2);
    assert_eq!(
        outcomes(&pair),
        [(1, "access_accept"), (2, "access_accept")]
    );
    assert_eq!(transitions(&pair), [("down", AUTH1)]);
    // Its failure restarted the dead time: no probe right away.
    send(&mut pair, pap("r3"), 3);
    pair.drive_now();
    assert_eq!(pair.server[0].received.len(), 2);
}

#[test]
fn with_every_server_dead_the_one_dead_longest_is_tried() {
    let mut pair = auth_pair(&[AUTH1, AUTH2], &[0, 1], 0);
    send(&mut pair, pap("r1"), 1);
    run_to(&mut pair, 1);
    assert_eq!(outcomes(&pair), [(1, "timeout")]);
    assert_eq!(pair.elapsed(), Duration::from_secs(2));
    assert_eq!(transitions(&pair), [("down", AUTH1), ("down", AUTH2)]);

    // The first failed at 1 s, the second at 2 s.
    send(&mut pair, pap("r2"), 2);
    pair.drive_now();
    assert_eq!(user_of(pair.server[0].received.last().unwrap()), "r2");
}

#[test]
fn a_server_that_answers_others_is_not_declared_dead() {
    let mut pair = auth_pair(&[AUTH1, AUTH2], &[], 0);
    // It ignores one user only.
    pair.server[0].answer = Box::new(|request, _| {
        (request.attributes.string(attr::USER_NAME) != Some("ignored"))
            .then(|| (Code::AccessReject, Attributes::new()))
    });
    send(&mut pair, pap("ignored"), 1);
    send(&mut pair, pap("other"), 2);
    run_to(&mut pair, 2);
    assert_eq!(
        outcomes(&pair),
        [(2, "access_reject"), (1, "access_accept")]
    );
    assert!(transitions(&pair).is_empty());
}

#[test]
fn accounting_retransmissions_update_the_delay_and_take_a_late_answer() {
    let mut responders = responders(&[ACCT1]);
    responders[0].delay = Duration::from_secs(7);
    let mut pair = pair(config(&[], &[ACCT1]), responders);
    send(&mut pair, acct_start("s-1"), 1);
    run_to(&mut pair, 1);
    // Sent at 0 s and 5 s; the answer to the first arrives at 7 s.
    assert_eq!(pair.elapsed(), Duration::from_secs(7));
    assert_eq!(outcomes(&pair), [(1, "accounting_response")]);
    let received = &pair.server[0].received;
    assert_eq!(arrivals(&pair, 0), [0, 5]);
    let delay: Vec<Option<u32>> = received
        .iter()
        .map(|r| r.packet.attributes.u32(attr::ACCT_DELAY_TIME))
        .collect();
    assert_eq!(delay, [Some(0), Some(5)]);
    let slot = |r: &Received| (r.socket, r.packet.identifier);
    assert_ne!(slot(&received[0]), slot(&received[1]));
    assert_ne!(
        received[0].packet.authenticator,
        received[1].packet.authenticator
    );
    assert!(pair.server[0].refused.is_empty());

    // The answer to the second transmission is a duplicate.
    pair.advance_by(Duration::from_secs(10));
    assert_eq!(drops(&pair), ["duplicate"]);
    assert_eq!(pair.client.stats().acct_outstanding, 0);
}

#[test]
fn a_spooled_record_keeps_its_delay() {
    let mut pair = pair(config(&[], &[ACCT1]), responders(&[ACCT1]));
    let mut request = acct_start("s-1");
    request.attributes.push_u32(attr::ACCT_DELAY_TIME, 100);
    send(&mut pair, request, 1);
    pair.drive_now();
    let sent = &pair.server[0].received[0].packet.attributes;
    assert_eq!(sent.get_all(attr::ACCT_DELAY_TIME).count(), 1);
    assert_eq!(sent.u32(attr::ACCT_DELAY_TIME), Some(100));
}

#[test]
fn duplicate_answers_are_dropped() {
    let mut responders = responders(&[AUTH1]);
    responders[0].duplicate = true;
    let mut pair = pair(config(&[AUTH1], &[]), responders);
    send(&mut pair, pap("nemo"), 1);
    pair.drive_now();
    assert_eq!(outcomes(&pair), [(1, "access_accept")]);
    assert_eq!(drops(&pair), ["duplicate"]);
}

#[test]
fn answers_signed_with_another_secret_are_forgeries() {
    let mut config = config(&[AUTH1], &[]);
    config.retries = 0;
    let mut responders = responders(&[AUTH1]);
    responders[0].signing_secret = Some(b"guess".to_vec());
    let mut pair = pair(config, responders);
    send(&mut pair, pap("nemo"), 1);
    run_to(&mut pair, 1);
    assert_eq!(drops(&pair), ["bad_authenticator"]);
    assert_eq!(outcomes(&pair), [(1, "timeout")]);
}

#[test]
fn a_tampered_answer_is_dropped_and_the_retry_succeeds() {
    let mut pair = pair(config(&[AUTH1], &[]), responders(&[AUTH1]));
    let mut first = true;
    pair.tamper = Some(Box::new(move |direction, message| {
        if direction == Direction::ServerToClient && std::mem::take(&mut first) {
            // Inside the Message-Authenticator's value.
            message[2 + 25] ^= 0x40;
        }
    }));
    send(&mut pair, pap("nemo"), 1);
    run_to(&mut pair, 1);
    assert_eq!(drops(&pair), ["bad_authenticator"]);
    assert_eq!(outcomes(&pair), [(1, "access_accept")]);
    assert_eq!(pair.elapsed(), Duration::from_secs(3));
}

#[test]
fn access_answers_need_a_message_authenticator() {
    let mut config = config(&[AUTH1], &[]);
    config.retries = 0;
    let mut responders = responders(&[AUTH1]);
    responders[0].message_authenticator = false;
    let mut pair = pair(config.clone(), responders);
    send(&mut pair, pap("nemo"), 1);
    run_to(&mut pair, 1);
    assert_eq!(drops(&pair), ["missing_message_authenticator"]);
    assert_eq!(outcomes(&pair), [(1, "timeout")]);

    // Unless the operator allows it.
    config.require_message_authenticator = false;
    let mut responders = self::responders(&[AUTH1]);
    responders[0].message_authenticator = false;
    let mut pair = self::pair(config, responders);
    send(&mut pair, pap("nemo"), 1);
    pair.drive_now();
    assert_eq!(outcomes(&pair), [(1, "access_accept")]);
}

#[test]
fn accounting_answers_need_one_only_if_configured() {
    let mut responders = responders(&[ACCT1]);
    responders[0].message_authenticator = false;
    let mut config = config(&[], &[ACCT1]);
    let mut pair = pair(config.clone(), responders);
    send(&mut pair, acct_start("s"), 1);
    pair.drive_now();
    assert_eq!(outcomes(&pair), [(1, "accounting_response")]);

    config.require_message_authenticator_accounting = true;
    config.retries = 0;
    let mut responders = self::responders(&[ACCT1]);
    responders[0].message_authenticator = false;
    let mut pair = self::pair(config, responders);
    send(&mut pair, acct_start("s"), 1);
    pair.drive_now();
    assert_eq!(drops(&pair), ["missing_message_authenticator"]);
}

#[test]
fn an_answer_of_the_wrong_kind_is_dropped() {
    let mut responders = responders(&[AUTH1]);
    responders[0].answer = Box::new(|_, _| Some((Code::AccountingResponse, Attributes::new())));
    let mut pair = pair(config(&[AUTH1], &[]), responders);
    send(&mut pair, pap("nemo"), 1);
    pair.drive_now();
    assert_eq!(drops(&pair), ["unexpected_code"]);
    assert!(outcomes(&pair).is_empty());
}

#[test]
fn strangers_are_dropped() {
    let mut responders = responders(&[AUTH1]);
    responders[0].answer = silent();
    let mut pair = pair(config(&[AUTH1], &[]), responders);
    send(&mut pair, pap("nemo"), 1);
    pair.drive_now();
    let now = pair.now;
    let request = pair.server[0].received[0].packet.clone();
    // A genuine answer, but for an identifier never used.
    let mut answer = Packet {
        code: Code::AccessAccept,
        identifier: request.identifier.wrapping_add(1),
        authenticator: [0; 16],
        attributes: Attributes::new(),
    }
    .encode()
    .unwrap();
    crypt::sign_response(&mut answer, &request.authenticator, SECRET);
    let socket = usize::from(pair.server[0].received[0].socket);
    let client = &mut pair.client;
    assert_eq!(
        client.handle_datagram(now, addr(AUTH1), socket, &answer),
        Err(DropReason::UnknownIdentifier)
    );
    assert_eq!(
        client.handle_datagram(now, addr(9999), socket, &answer),
        Err(DropReason::UnknownServer)
    );
    assert_eq!(
        client.handle_datagram(now, addr(AUTH1), 4, &answer),
        Err(DropReason::UnknownSocket)
    );
    assert_eq!(
        client.handle_datagram(now, addr(AUTH1), socket, &answer[..19]),
        Err(DropReason::Malformed(
            crate::radius::packet::DecodeError::TooShort
        ))
    );
    assert_eq!(
        DropReason::Malformed(crate::radius::packet::DecodeError::TooShort).as_str(),
        "malformed"
    );
    assert_eq!(client.stats().auth_outstanding, 1);
}

#[test]
fn the_queue_is_bounded_and_drains_in_order() {
    let mut config = config(&[AUTH1], &[ACCT1]);
    config.max_outstanding = 2;
    config.max_queued = 3;
    let mut responders = responders(&[AUTH1, ACCT1]);
    responders[0].delay = Duration::from_secs(1);
    let mut pair = pair(config, responders);
    let now = pair.now;
    for tag in 1..=5 {
        pair.client.send(now, pap(&format!("u{tag}")), tag).unwrap();
    }
    assert!(!pair.client.has_room(ServerRole::Auth));
    assert_eq!(
        pair.client.send(now, pap("u6"), 6),
        Err(SendError::QueueFull)
    );
    let stats = pair.client.stats();
    assert_eq!((stats.auth_outstanding, stats.auth_queued), (2, 3));
    // Accounting has a budget of its own.
    assert!(pair.client.has_room(ServerRole::Acct));
    send(&mut pair, acct_start("s"), 7);

    run_to(&mut pair, 6);
    let users: Vec<&str> = pair.server[0].received.iter().map(user_of).collect();
    assert_eq!(users, ["u1", "u2", "u3", "u4", "u5"]);
    assert_eq!(arrivals(&pair, 0), [0, 0, 1, 1, 2]);
    let stats = pair.client.stats();
    assert_eq!((stats.auth_outstanding, stats.auth_queued), (0, 0));
    assert!(pair.client.has_room(ServerRole::Auth));
}

#[test]
fn identifiers_are_per_socket_and_never_shared() {
    let mut config = config(&[AUTH1], &[]);
    config.sockets_per_server = 2;
    config.max_outstanding = 1000;
    let mut responders = responders(&[AUTH1]);
    responders[0].answer = silent();
    let mut pair = pair(config, responders);
    let now = pair.now;
    let mut handles = Vec::new();
    for tag in 0..513 {
        handles.push(pair.client.send(now, pap("u"), tag).unwrap());
    }
    pair.drive_now();
    let stats = pair.client.stats();
    assert_eq!((stats.auth_outstanding, stats.auth_queued), (512, 1));
    let received = &pair.server[0].received;
    assert_eq!(received.len(), 512);
    let mut seen = std::collections::HashSet::new();
    for r in received {
        assert!(seen.insert((r.socket, r.packet.identifier)));
    }
    assert_eq!(received[0].socket, 0);
    assert_eq!(received[1].socket, 1, "spread over the sockets");

    // Cancelling one frees its identifier for the one waiting.
    let cancelled = &received[10];
    let freed = (cancelled.socket, cancelled.packet.identifier);
    assert!(pair.client.cancel(handles[10]));
    pair.drive_now();
    let last = pair.server[0].received.last().unwrap();
    assert_eq!((last.socket, last.packet.identifier), freed);
    assert_eq!(pair.client.stats().auth_queued, 0);
}

#[test]
fn cancelled_requests_stay_quiet_and_their_answers_are_late() {
    let mut config = config(&[AUTH1], &[]);
    config.max_outstanding = 1;
    let mut responders = responders(&[AUTH1]);
    responders[0].delay = Duration::from_secs(2);
    let mut pair = pair(config, responders);
    let now = pair.now;
    let first = pair.client.send(now, pap("first"), 1).unwrap();
    let second = pair.client.send(now, pap("second"), 2).unwrap();
    let third = pair.client.send(now, pap("third"), 3).unwrap();
    pair.drive_now();
    // Cancel one in flight and one queued.
    assert!(pair.client.cancel(first));
    assert!(pair.client.cancel(third));
    assert!(!pair.client.cancel(third));
    pair.drive_now();
    assert_eq!(pair.client.stats().auth_queued, 0);
    run_to(&mut pair, 1);
    assert_eq!(outcomes(&pair), [(2, "access_accept")]);
    assert_eq!(drops(&pair), ["late"]);
    let users: Vec<&str> = pair.server[0].received.iter().map(user_of).collect();
    assert_eq!(users, ["first", "second"]);
    let _ = second;
}

#[test]
fn without_servers_a_request_fails_at_once() {
    let mut pair = pair(config(&[AUTH1], &[]), responders(&[AUTH1]));
    send(&mut pair, acct_start("s"), 1);
    pair.collect_events();
    assert_eq!(outcomes(&pair), [(1, "no_server")]);
    assert_eq!(pair.client.stats().acct_outstanding, 0);
}

#[test]
fn send_refuses_what_cannot_be_encoded() {
    let mut client: Client<u32> = Client::with_seed(config(&[AUTH1], &[]), [1; 32]);
    let now = Instant::now();
    assert_eq!(
        client
            .send(
                now,
                Request::access_with_password(Attributes::new(), &[b'p'; 129]),
                1
            )
            .unwrap_err()
            .as_str(),
        "password_too_long"
    );
    let mut attributes = Attributes::new();
    for _ in 0..16 {
        attributes.push(attr::CLASS, &[0; 253]).unwrap();
    }
    assert!(matches!(
        client.send(now, Request::access(attributes), 2),
        Err(SendError::TooLong(_))
    ));
    assert_eq!(client.poll_transmit(), None);
}

#[test]
fn mppe_key_errors() {
    let ra = [3; 16];
    let with = |types: &[(u8, usize)]| {
        let mut attributes = Attributes::new();
        for &(kind, len) in types {
            let value = crypt::encrypt_mppe_key(&vec![9; len], SECRET, &ra, [0, 1]).unwrap();
            attributes.push_ms(kind, &value).unwrap();
        }
        let packet = Packet {
            code: Code::AccessAccept,
            identifier: 0,
            authenticator: [0; 16],
            attributes,
        };
        Response::for_tests(packet, ra, SECRET)
    };
    assert_eq!(with(&[]).mppe_keys(), None);
    assert_eq!(
        with(&[(ms::MPPE_SEND_KEY, 16)]).mppe_keys(),
        Some(Err(MppeKeyError::Missing))
    );
    assert_eq!(
        with(&[(ms::MPPE_SEND_KEY, 16), (ms::MPPE_RECV_KEY, 8)]).mppe_keys(),
        Some(Err(MppeKeyError::TooShort(8)))
    );
    let mut salt_cleared = with(&[(ms::MPPE_SEND_KEY, 16), (ms::MPPE_RECV_KEY, 16)]).into_packet();
    salt_cleared.attributes = Attributes::new();
    salt_cleared
        .attributes
        .push_ms(ms::MPPE_SEND_KEY, &[0; 18])
        .unwrap();
    salt_cleared
        .attributes
        .push_ms(ms::MPPE_RECV_KEY, &[0x80; 18])
        .unwrap();
    let response = Response::for_tests(salt_cleared, ra, SECRET);
    assert_eq!(
        response.mppe_keys().unwrap().unwrap_err().as_str(),
        "bad_salt"
    );
}

#[test]
fn server_config_debug_hides_the_secret() {
    let shown = format!("{:?}", servers(&[AUTH1]));
    assert!(!shown.contains("115"), "{shown}"); // b's' = 115
    assert!(shown.contains("127.0.0.1:1812"));
}

proptest! {
    /// Whatever arrives, from wherever, the client neither panics nor
    /// loses count of its requests.
    #[test]
    fn hostile_datagrams_never_panic(
        datagrams in prop::collection::vec(
            (any::<bool>(), 0usize..6, prop::collection::vec(any::<u8>(), 0..120)),
            1..40,
        ),
    ) {
        let mut responders = responders(&[AUTH1]);
        responders[0].answer = silent();
        let mut pair = pair(config(&[AUTH1], &[ACCT1]), responders);
        let now = pair.now;
        for tag in 0..4 {
            pair.client.send(now, pap("u"), tag).unwrap();
        }
        pair.drive_now();
        let known: Vec<Packet> = pair.server[0].received.iter().map(|r| r.packet.clone()).collect();
        for (from_server, socket, mut bytes) in datagrams {
            // Aim some at identifiers in use, with a plausible header.
            if bytes.len() >= 20 && from_server {
                let target = &known[bytes[0] as usize % known.len()];
                bytes[0] = 2;
                bytes[1] = target.identifier;
                let len = bytes.len() as u16;
                bytes[2..4].copy_from_slice(&len.to_be_bytes());
            }
            let from = if from_server { addr(AUTH1) } else { addr(ACCT1) };
            let result = pair.client.handle_datagram(now, from, socket, &bytes);
            prop_assert!(result.is_err(), "a forgery was accepted");
        }
        let stats = pair.client.stats();
        prop_assert_eq!(stats.auth_outstanding, 4);
        prop_assert!(outcomes(&pair).is_empty());
    }
}

#[test]
fn per_server_counts_follow_failures() {
    let mut pair = auth_pair(&[AUTH1], &[0], 0);
    send(&mut pair, pap("r1"), 1);
    pair.advance_by(Duration::from_millis(500));
    send(&mut pair, pap("r2"), 2);
    pair.advance_by(Duration::from_millis(600));
    assert_eq!(outcomes(&pair), [(1, "timeout")]);
    let stats = pair.client.stats();
    assert_eq!(stats.auth_outstanding, 1);
    assert_eq!(stats.servers[0].in_flight, 1);
    pair.advance_by(Duration::from_secs(1));
    assert_eq!(pair.client.stats().servers[0].in_flight, 0);
}

#[test]
fn accounting_has_a_lower_in_flight_bound_of_its_own() {
    // Many sessions ending together: the Stops go out at most
    // `max_outstanding_accounting` at a time, the rest wait in order.
    let mut config = config(&[AUTH1], &[ACCT1]);
    config.max_outstanding_accounting = 4;
    let mut responders = responders(&[AUTH1, ACCT1]);
    responders[1].delay = Duration::from_secs(1);
    let mut pair = pair(config, responders);
    let now = pair.now;
    for tag in 0..10 {
        pair.client
            .send(now, acct_start(&format!("s{tag}")), tag)
            .unwrap();
    }
    pair.drive_now();
    let stats = pair.client.stats();
    assert_eq!((stats.acct_outstanding, stats.acct_queued), (4, 6));
    assert_eq!(pair.server[1].received.len(), 4);
    // Authentication keeps its own, larger budget meanwhile.
    assert!(pair.client.has_room(ServerRole::Auth));
    run_to(&mut pair, 10);
    assert_eq!(pair.server[1].received.len(), 10);
    let stats = pair.client.stats();
    assert_eq!((stats.acct_outstanding, stats.acct_queued), (0, 0));
}
