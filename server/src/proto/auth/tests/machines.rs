//! Server and client machines talking to each other on a virtual clock,
//! with loss, late decisions and hostile input.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::proto::auth::chap::{ChapPacket, CODE_FAILURE, CODE_SUCCESS};
use crate::proto::auth::mschapv2::FailureMessage;
use crate::proto::auth::pap::PapPacket;
use crate::proto::auth::verify::REJECT_MESSAGE;
use crate::proto::auth::{
    AuthAccept, AuthClient, AuthConfig, AuthDecision, AuthEvent, AuthFailure, AuthPacketError,
    AuthProtocol, AuthReject, AuthRequest, AuthServer, LocalAuthenticator, LocalUser,
    MsChapV2Proof, RejectReason, ZERO_HLAK,
};
use crate::testing::pair::{self, AuthClientEnd, AuthServerEnd, Direction};
use crate::testing::StaticPasswords;

const ALL: [AuthProtocol; 3] = [
    AuthProtocol::Pap,
    AuthProtocol::ChapMd5,
    AuthProtocol::MsChapV2,
];

fn config() -> AuthConfig {
    AuthConfig::default()
}

fn local() -> LocalAuthenticator<StaticPasswords> {
    let mut store = StaticPasswords::new();
    store.insert("alice", "correct horse");
    store.insert_user(
        "bob",
        LocalUser {
            password: b"battery staple".to_vec(),
            framed_ipv4: Some(Ipv4Addr::new(192, 0, 2, 9)),
        },
    );
    LocalAuthenticator::new(store)
}

/// Both machines on the common harness, every packet recorded
/// (delivered or lost). The server's requests wait in
/// `pair.server.requests` until decided.
type Pair = pair::Pair<AuthServerEnd, AuthClientEnd>;

impl Pair {
    fn new(protocol: AuthProtocol, config: &AuthConfig, username: &str, password: &[u8]) -> Self {
        let start = Instant::now();
        let mut rng = StdRng::seed_from_u64(7);
        let server = AuthServer::new(protocol, config, start, &mut rng);
        let client = AuthClient::new(protocol, config, username, password, start, &mut rng);
        pair::Pair::between(
            AuthServerEnd::new(server),
            AuthClientEnd { machine: client },
            start,
        )
        .recording()
    }

    /// Delivers queued packets both ways until the wire is quiet; `lose`
    /// picks packets to drop (it sees each packet once).
    fn exchange(&mut self, lose: &mut dyn FnMut(Direction, &[u8]) -> bool) {
        self.drive_now_with_loss(&mut |direction, _, packet| lose(direction, packet));
    }

    /// Moves the clock to the earliest deadline and fires it. False when
    /// neither machine waits for anything.
    fn tick(&mut self) -> bool {
        if let Some(next) = self.next_timeout() {
            assert!(next >= self.now, "a deadline in the past");
        }
        self.fire_next_timer(Duration::MAX)
    }

    fn decide_all(&mut self, decide: &mut dyn FnMut(&AuthRequest) -> AuthDecision) {
        while let Some(request) = self.server.requests.pop_front() {
            let decision = decide(&request);
            self.server.decide(self.now, decision);
        }
        self.collect_events();
    }

    /// Runs to the end: exchange, decide, advance, until both are done or
    /// time runs out.
    fn run(
        &mut self,
        decide: &mut dyn FnMut(&AuthRequest) -> AuthDecision,
        lose: &mut dyn FnMut(Direction, &[u8]) -> bool,
    ) {
        for _ in 0..1000 {
            self.exchange(lose);
            if !self.server.requests.is_empty() {
                self.decide_all(decide);
                continue;
            }
            if !self.tick() {
                return;
            }
        }
        panic!("no end after 1000 steps");
    }

    /// Every packet sent `direction`, delivered or lost.
    fn packets(&self, direction: Direction) -> Vec<&[u8]> {
        match direction {
            Direction::ClientToServer => self.client.sent.transmissions().collect(),
            Direction::ServerToClient => self.server.sent.transmissions().collect(),
        }
    }

    /// Errors the machines returned for delivered packets.
    fn errors(&self) -> Vec<(Direction, &AuthPacketError)> {
        let to_server = self.server.delivered.iter();
        let to_client = self.client.delivered.iter();
        to_server
            .map(|e| (Direction::ClientToServer, e))
            .chain(to_client.map(|e| (Direction::ServerToClient, e)))
            .collect()
    }
}

/// A lone client for "alice"/"pw" at a fresh instant.
fn lone_client(protocol: AuthProtocol, config: &AuthConfig, seed: u64) -> (Instant, AuthClient) {
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let client = AuthClient::new(protocol, config, "alice", b"pw", start, &mut rng);
    (start, client)
}

/// A lone server at a fresh instant.
fn lone_server(protocol: AuthProtocol, seed: u64) -> (Instant, AuthServer) {
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    (start, AuthServer::new(protocol, &config(), start, &mut rng))
}

fn challenge_packet(identifier: u8, value: &[u8]) -> Vec<u8> {
    ChapPacket::Challenge {
        identifier,
        value,
        name: b"srv",
    }
    .to_vec()
}

fn no_loss() -> impl FnMut(Direction, &[u8]) -> bool {
    |_, _| false
}

fn with_local() -> impl FnMut(&AuthRequest) -> AuthDecision {
    let auth = local();
    move |request| auth.decide(request)
}

fn single_success(events: &[AuthEvent]) -> (String, [u8; 32], Option<Ipv4Addr>) {
    match events {
        [AuthEvent::Success {
            username,
            hlak,
            framed_ipv4,
        }] => (username.clone(), *hlak, *framed_ipv4),
        other => panic!("expected one Success, got {other:?}"),
    }
}

fn single_failure(events: &[AuthEvent]) -> AuthFailure {
    match events {
        [AuthEvent::Failure(failure)] => failure.clone(),
        other => panic!("expected one Failure, got {other:?}"),
    }
}

fn failure_messages(pair: &Pair) -> Vec<(u8, FailureMessage)> {
    pair.packets(Direction::ServerToClient)
        .into_iter()
        .filter_map(|p| match ChapPacket::parse(p) {
            Ok(ChapPacket::Failure {
                identifier,
                message,
            }) => Some((identifier, FailureMessage::parse(message).unwrap())),
            _ => None,
        })
        .collect()
}

fn response_identifiers(pair: &Pair) -> Vec<u8> {
    pair.packets(Direction::ClientToServer)
        .into_iter()
        .filter_map(|p| match ChapPacket::parse(p) {
            Ok(ChapPacket::Response { identifier, .. }) => Some(identifier),
            _ => None,
        })
        .collect()
}

#[test]
fn success_for_every_method() {
    for protocol in ALL {
        let mut pair = Pair::new(protocol, &config(), "bob", b"battery staple");
        pair.run(&mut with_local(), &mut no_loss());
        let (server_user, server_hlak, framed) = single_success(&pair.server.events);
        let (client_user, client_hlak, client_framed) = single_success(&pair.client.events);
        assert_eq!(server_user, "bob", "{protocol}");
        assert_eq!(client_user, "bob", "{protocol}");
        assert_eq!(framed, Some(Ipv4Addr::new(192, 0, 2, 9)), "{protocol}");
        assert_eq!(client_framed, None);
        // [MS-SSTP] 3.2.5.2.2: the two HLAKs of one session are equal.
        assert_eq!(server_hlak, client_hlak, "{protocol}");
        if protocol == AuthProtocol::MsChapV2 {
            assert_ne!(server_hlak, ZERO_HLAK);
            let server_keys = pair.server.mppe_keys().unwrap();
            let client_keys = pair.client.mppe_keys().unwrap();
            assert_eq!(server_keys.send, client_keys.receive);
            assert_eq!(server_keys.receive, client_keys.send);
            assert_eq!(client_hlak[..16], client_keys.send);
        } else {
            assert_eq!(server_hlak, ZERO_HLAK, "{protocol}");
            assert_eq!(pair.server.mppe_keys(), None);
        }
        assert!(pair.errors().is_empty(), "{protocol}: {:?}", pair.errors());
        // Done: no timers left, nothing more to send.
        assert_eq!(pair.server.poll_timeout(), None, "{protocol}");
        assert_eq!(pair.client.poll_timeout(), None, "{protocol}");
        assert_eq!(pair.server.protocol(), protocol);
        assert_eq!(pair.client.protocol(), protocol);
        // One packet each way is all a clean exchange takes (plus the
        // Challenge for CHAP).
        let to_server = pair.packets(Direction::ClientToServer).len();
        let to_client = pair.packets(Direction::ServerToClient).len();
        assert_eq!(to_server, 1, "{protocol}");
        assert_eq!(
            to_client,
            if protocol == AuthProtocol::Pap { 1 } else { 2 },
            "{protocol}"
        );
    }
}

#[test]
fn mschapv2_success_packet_carries_the_authenticator_response() {
    let mut pair = Pair::new(AuthProtocol::MsChapV2, &config(), "alice", b"correct horse");
    pair.run(&mut with_local(), &mut no_loss());
    let success = pair.packets(Direction::ServerToClient)[1].to_vec();
    let Ok(ChapPacket::Success { message, .. }) = ChapPacket::parse(&success) else {
        panic!("second server packet is not Success");
    };
    let text = std::str::from_utf8(message).unwrap();
    assert!(text.starts_with("S="), "{text}");
    assert_eq!(text.len(), 2 + 40 + " M=Access granted".len());
    assert!(text[2..42]
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
    assert!(text.ends_with(" M=Access granted"));
}

#[test]
fn wrong_password_pap_and_md5_fail_at_once() {
    for protocol in [AuthProtocol::Pap, AuthProtocol::ChapMd5] {
        let mut pair = Pair::new(protocol, &config(), "alice", b"wrong");
        pair.run(&mut with_local(), &mut no_loss());
        let expected = AuthFailure::Rejected {
            reason: RejectReason::AuthenticationFailure,
            code: None,
            message: REJECT_MESSAGE.into(),
        };
        assert_eq!(single_failure(&pair.server.events), expected, "{protocol}");
        assert_eq!(single_failure(&pair.client.events), expected, "{protocol}");
        // The Nak/Failure carries the message.
        let last = *pair.packets(Direction::ServerToClient).last().unwrap();
        let message: &[u8] = match protocol {
            AuthProtocol::Pap => match PapPacket::parse(last).unwrap() {
                PapPacket::AuthenticateNak { message, .. } => message,
                other => panic!("{other:?}"),
            },
            _ => match ChapPacket::parse(last).unwrap() {
                ChapPacket::Failure { message, .. } => message,
                other => panic!("{other:?}"),
            },
        };
        assert_eq!(message, REJECT_MESSAGE.as_bytes());
    }
}

#[test]
fn unknown_user_fails_like_a_wrong_password() {
    let mut pair = Pair::new(
        AuthProtocol::ChapMd5,
        &config(),
        "mallory",
        b"correct horse",
    );
    pair.run(&mut with_local(), &mut no_loss());
    assert_eq!(
        single_failure(&pair.client.events),
        AuthFailure::Rejected {
            reason: RejectReason::AuthenticationFailure,
            code: None,
            message: REJECT_MESSAGE.into(),
        }
    );
}

#[test]
fn mschapv2_wrong_password_exhausts_attempts() {
    let config = AuthConfig {
        max_attempts: 3,
        ..config()
    };
    let mut pair = Pair::new(AuthProtocol::MsChapV2, &config, "alice", b"wrong");
    let mut judged = 0;
    let auth = local();
    pair.run(
        &mut |request| {
            judged += 1;
            auth.decide(request)
        },
        &mut no_loss(),
    );
    assert_eq!(judged, 3);
    let failures = failure_messages(&pair);
    assert_eq!(failures.len(), 3);
    for (index, (_, failure)) in failures.iter().enumerate() {
        assert_eq!(failure.error_code, 691);
        assert_eq!(failure.retry, index < 2, "R= of failure {index}");
        assert!(failure.challenge.is_some());
        assert_eq!(failure.version, Some(3));
        assert_eq!(failure.message, REJECT_MESSAGE);
    }
    // Each retry answers the Failure's Identifier plus one, over C=.
    let responses = response_identifiers(&pair);
    assert_eq!(responses.len(), 3);
    for (failure, response) in failures.iter().zip(&responses[1..]) {
        assert_eq!(*response, failure.0.wrapping_add(1));
    }
    let expected = AuthFailure::Rejected {
        reason: RejectReason::AuthenticationFailure,
        code: Some(691),
        message: REJECT_MESSAGE.into(),
    };
    assert_eq!(single_failure(&pair.server.events), expected);
    assert_eq!(single_failure(&pair.client.events), expected);
    assert!(pair.errors().is_empty(), "{:?}", pair.errors());
}

#[test]
fn mschapv2_retry_with_new_challenge_succeeds() {
    // The backend fails once (as a flaky RADIUS would), then accepts: the
    // peer answers the C= challenge and both ends agree on the HLAK.
    let mut pair = Pair::new(AuthProtocol::MsChapV2, &config(), "alice", b"correct horse");
    let auth = local();
    let mut first = true;
    let mut challenges = Vec::new();
    let mut identifiers = Vec::new();
    pair.run(
        &mut |request| {
            if let crate::proto::auth::Credentials::MsChapV2 {
                identifier,
                authenticator_challenge,
                ..
            } = &request.credentials
            {
                challenges.push(*authenticator_challenge);
                identifiers.push(*identifier);
            }
            if std::mem::take(&mut first) {
                AuthDecision::Reject(AuthReject {
                    reason: RejectReason::ServiceUnavailable,
                    message: "try again".into(),
                })
            } else {
                auth.decide(request)
            }
        },
        &mut no_loss(),
    );
    let failures = failure_messages(&pair);
    assert_eq!(failures.len(), 1);
    assert!(failures[0].1.retry);
    assert_eq!(failures[0].1.error_code, 691);
    // The second attempt was computed over the C= challenge.
    assert_eq!(challenges.len(), 2);
    assert_eq!(Some(challenges[1]), failures[0].1.challenge);
    assert_ne!(challenges[0], challenges[1]);
    // Each request names the Response it came from (RADIUS needs it).
    assert_eq!(identifiers, response_identifiers(&pair));
    let (_, server_hlak, _) = single_success(&pair.server.events);
    let (_, client_hlak, _) = single_success(&pair.client.events);
    assert_eq!(server_hlak, client_hlak);
    assert_ne!(server_hlak, ZERO_HLAK);
}

#[test]
fn mschapv2_non_retryable_reasons_end_at_once() {
    for (reason, code) in [
        (RejectReason::RestrictedLogonHours, 646),
        (RejectReason::AccountDisabled, 647),
        (RejectReason::PasswordExpired, 648),
        (RejectReason::NoDialinPermission, 649),
    ] {
        let mut pair = Pair::new(AuthProtocol::MsChapV2, &config(), "alice", b"correct horse");
        pair.run(
            &mut |_| {
                AuthDecision::Reject(AuthReject {
                    reason,
                    message: "no".into(),
                })
            },
            &mut no_loss(),
        );
        let failures = failure_messages(&pair);
        assert_eq!(failures.len(), 1, "{reason:?}");
        assert_eq!(failures[0].1.error_code, code);
        assert!(!failures[0].1.retry);
        let expected = AuthFailure::Rejected {
            reason,
            code: Some(code),
            message: "no".into(),
        };
        assert_eq!(single_failure(&pair.server.events), expected);
        assert_eq!(single_failure(&pair.client.events), expected);
    }
}

#[test]
fn mschapv2_server_without_the_password_is_caught() {
    // The authenticator accepts but its proof is not derived from the
    // password ([RFC 2759] 8.8): the peer must refuse the Success.
    let mut pair = Pair::new(AuthProtocol::MsChapV2, &config(), "alice", b"correct horse");
    let auth = local();
    pair.run(
        &mut |request| match auth.decide(request) {
            AuthDecision::Accept(mut accept) => {
                let proof = accept.mschapv2.as_mut().unwrap();
                proof.authenticator_response[0] ^= 1;
                AuthDecision::Accept(accept)
            }
            reject => reject,
        },
        &mut no_loss(),
    );
    assert!(matches!(
        single_success(&pair.server.events),
        (ref name, _, _) if name == "alice"
    ));
    assert_eq!(
        single_failure(&pair.client.events),
        AuthFailure::ServerNotAuthenticated
    );
    assert_eq!(pair.client.mppe_keys(), None);
}

#[test]
fn mschapv2_success_without_proof_is_refused() {
    let mut pair = Pair::new(AuthProtocol::MsChapV2, &config(), "alice", b"correct horse");
    pair.exchange(&mut no_loss());
    let request = pair.server.requests.pop_front().unwrap();
    assert_eq!(request.username, "alice");
    // Forge a Success with a bare message for the client's Response.
    let identifier = response_identifiers(&pair)[0];
    let forged = ChapPacket::Success {
        identifier,
        message: b"M=welcome",
    }
    .to_vec();
    pair.client.handle_packet(pair.now, &forged).unwrap();
    pair.collect_events();
    assert_eq!(
        single_failure(&pair.client.events),
        AuthFailure::ServerNotAuthenticated
    );
}

#[test]
fn accept_without_mschapv2_proof_is_a_service_failure() {
    let mut pair = Pair::new(AuthProtocol::MsChapV2, &config(), "alice", b"correct horse");
    pair.run(
        &mut |_| AuthDecision::Accept(AuthAccept::default()),
        &mut no_loss(),
    );
    let failures = failure_messages(&pair);
    assert_eq!(failures.len(), 1);
    assert!(!failures[0].1.retry);
    assert!(matches!(
        single_failure(&pair.server.events),
        AuthFailure::Rejected {
            reason: RejectReason::ServiceUnavailable,
            code: Some(691),
            ..
        }
    ));
}

#[test]
fn late_decision_after_retransmissions() {
    for protocol in ALL {
        let config = config();
        let mut pair = Pair::new(protocol, &config, "alice", b"correct horse");
        pair.exchange(&mut no_loss());
        assert_eq!(pair.server.requests.len(), 1, "{protocol}");
        let request = pair.server.requests.pop_front().unwrap();
        // The backend takes 10 s: the peer retransmits meanwhile.
        while pair.elapsed() < Duration::from_secs(10) {
            assert!(pair.tick());
            pair.exchange(&mut no_loss());
        }
        let sent = pair.packets(Direction::ClientToServer).len();
        assert!(sent >= 4, "{protocol}: only {sent} transmissions");
        // Judged once.
        assert!(pair.server.requests.is_empty(), "{protocol}: re-judged");
        assert!(pair.server.events.is_empty());
        pair.server.decide(pair.now, local().decide(&request));
        pair.collect_events();
        pair.exchange(&mut no_loss());
        let (_, server_hlak, _) = single_success(&pair.server.events);
        let (_, client_hlak, _) = single_success(&pair.client.events);
        assert_eq!(server_hlak, client_hlak, "{protocol}");
        // A second decision is ignored.
        pair.server
            .decide(pair.now, AuthDecision::Accept(AuthAccept::default()));
        pair.collect_events();
        assert_eq!(pair.server.events.len(), 1);
        // Exactly one reply went out for all those copies, since they
        // arrived while the decision was pending.
        let replies = pair
            .packets(Direction::ServerToClient)
            .iter()
            .filter(|p| p[0] == CODE_SUCCESS || (protocol == AuthProtocol::Pap && p[0] == 2))
            .count();
        assert_eq!(replies, 1, "{protocol}");
    }
}

#[test]
fn lost_packets_are_recovered() {
    for protocol in ALL {
        // Lose the first packet each way and the first verdict.
        let mut lost_to_server = false;
        let mut lost_to_client = false;
        let mut lost_verdict = false;
        let mut pair = Pair::new(protocol, &config(), "alice", b"correct horse");
        pair.run(
            &mut with_local(),
            &mut |direction, packet: &[u8]| match direction {
                Direction::ClientToServer => !std::mem::replace(&mut lost_to_server, true),
                Direction::ServerToClient => {
                    let verdict = packet[0] == CODE_SUCCESS
                        || (protocol == AuthProtocol::Pap && packet[0] == 2);
                    if verdict {
                        !std::mem::replace(&mut lost_verdict, true)
                    } else {
                        !std::mem::replace(&mut lost_to_client, true)
                    }
                }
            },
        );
        assert!(lost_to_server && lost_verdict, "{protocol}");
        let (_, server_hlak, _) = single_success(&pair.server.events);
        let (_, client_hlak, _) = single_success(&pair.client.events);
        assert_eq!(server_hlak, client_hlak, "{protocol}");
        // The repeated verdict is byte-identical to the lost one (CHAP) or
        // the same code (PAP, which echoes each request's identifier).
        let verdicts: Vec<&[u8]> = pair
            .packets(Direction::ServerToClient)
            .into_iter()
            .filter(|p| p[0] == CODE_SUCCESS || (protocol == AuthProtocol::Pap && p[0] == 2))
            .collect();
        assert_eq!(verdicts.len(), 2, "{protocol}");
        if protocol != AuthProtocol::Pap {
            assert_eq!(verdicts[0], verdicts[1]);
        }
        assert!(pair.elapsed() < config().phase_timeout);
    }
}

#[test]
fn lost_failure_is_answered_again() {
    // MS-CHAPv2 R=1 Failure lost: the peer repeats its Response, the server
    // repeats the same Failure (not judging again), and the retry proceeds.
    let mut pair = Pair::new(AuthProtocol::MsChapV2, &config(), "alice", b"correct horse");
    let auth = local();
    let mut judged = 0;
    let mut lost = false;
    pair.run(
        &mut |request| {
            judged += 1;
            if judged == 1 {
                AuthDecision::Reject(AuthReject {
                    reason: RejectReason::AuthenticationFailure,
                    message: "no".into(),
                })
            } else {
                auth.decide(request)
            }
        },
        &mut |direction, packet: &[u8]| {
            direction == Direction::ServerToClient
                && packet[0] == CODE_FAILURE
                && !std::mem::replace(&mut lost, true)
        },
    );
    assert_eq!(judged, 2);
    let failures = failure_messages(&pair);
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0], failures[1]);
    single_success(&pair.client.events);
    single_success(&pair.server.events);
}

#[test]
fn phase_timeout_without_decision() {
    for protocol in ALL {
        let config = config();
        let mut pair = Pair::new(protocol, &config, "alice", b"correct horse");
        // Requests pile up undecided.
        for _ in 0..100 {
            pair.exchange(&mut no_loss());
            if !pair.tick() {
                break;
            }
        }
        assert_eq!(
            pair.server.requests.len(),
            1,
            "{protocol}: judged more than once"
        );
        assert_eq!(single_failure(&pair.server.events), AuthFailure::Timeout);
        assert_eq!(single_failure(&pair.client.events), AuthFailure::Timeout);
        assert!(pair.elapsed() <= config.phase_timeout, "{protocol}");
        assert_eq!(pair.server.poll_timeout(), None);
        assert_eq!(pair.client.poll_timeout(), None);
    }
}

#[test]
fn silent_peer_times_out() {
    for protocol in ALL {
        let config = AuthConfig {
            restart_interval: Duration::from_secs(1),
            max_transmissions: 4,
            phase_timeout: Duration::from_secs(60),
            ..config()
        };
        let mut pair = Pair::new(protocol, &config, "alice", b"correct horse");
        // Everything is lost: each side gives up after its transmissions
        // (PAP's server, which never transmits, waits for the phase bound).
        pair.run(&mut with_local(), &mut |_, _| true);
        assert_eq!(single_failure(&pair.client.events), AuthFailure::Timeout);
        assert_eq!(single_failure(&pair.server.events), AuthFailure::Timeout);
        let expected_client = if protocol == AuthProtocol::Pap { 4 } else { 0 };
        assert_eq!(
            pair.packets(Direction::ClientToServer).len(),
            expected_client,
            "{protocol}"
        );
        let expected_server = if protocol == AuthProtocol::Pap { 0 } else { 4 };
        assert_eq!(
            pair.packets(Direction::ServerToClient).len(),
            expected_server,
            "{protocol}"
        );
    }
}

#[test]
fn pap_duplicates_are_answered_consistently() {
    let (start, mut server) = lone_server(AuthProtocol::Pap, 1);
    let request = |identifier, password: &[u8]| {
        let mut buf = Vec::new();
        PapPacket::AuthenticateRequest {
            identifier,
            peer_id: b"alice",
            password,
        }
        .encode(&mut buf);
        buf
    };
    server.handle_packet(start, &request(5, b"wrong")).unwrap();
    let Some(AuthEvent::Request(judged)) = server.poll_event() else {
        panic!("no request");
    };
    // Retransmissions while pending: same id, a new id, other credentials.
    server.handle_packet(start, &request(5, b"wrong")).unwrap();
    server.handle_packet(start, &request(6, b"wrong")).unwrap();
    server
        .handle_packet(start, &request(7, b"correct horse"))
        .unwrap();
    assert_eq!(server.poll_event(), None, "re-judged");
    let mut buf = Vec::new();
    assert!(!server.poll_transmit(&mut buf));
    server.decide(start, local().decide(&judged));
    // The verdict answers the newest copy of the judged credentials.
    assert!(server.poll_transmit(&mut buf));
    assert_eq!(
        PapPacket::parse(&buf),
        Ok(PapPacket::AuthenticateNak {
            identifier: 6,
            message: REJECT_MESSAGE.as_bytes()
        })
    );
    assert!(matches!(
        server.poll_event(),
        Some(AuthEvent::Failure(AuthFailure::Rejected { .. }))
    ));
    // After the verdict: the same verdict again, even for other credentials.
    for identifier in [6, 9] {
        server
            .handle_packet(start, &request(identifier, b"correct horse"))
            .unwrap();
        buf.clear();
        assert!(server.poll_transmit(&mut buf));
        assert_eq!(
            PapPacket::parse(&buf),
            Ok(PapPacket::AuthenticateNak {
                identifier,
                message: REJECT_MESSAGE.as_bytes()
            })
        );
    }
    assert_eq!(server.poll_event(), None);
}

#[test]
fn pap_client_changes_identifier_and_accepts_any_sent_one() {
    let (start, mut client) = lone_client(AuthProtocol::Pap, &config(), 3);
    let mut identifiers = Vec::new();
    let mut now = start;
    for _ in 0..3 {
        let mut buf = Vec::new();
        assert!(client.poll_transmit(&mut buf));
        identifiers.push(PapPacket::parse(&buf).unwrap().identifier());
        now = client.poll_timeout().unwrap();
        client.handle_timeout(now);
    }
    assert_eq!(identifiers[1], identifiers[0].wrapping_add(1));
    assert_eq!(identifiers[2], identifiers[0].wrapping_add(2));
    let ack = |identifier| {
        let mut buf = Vec::new();
        PapPacket::AuthenticateAck {
            identifier,
            message: b"",
        }
        .encode(&mut buf);
        buf
    };
    // An identifier never sent is stale.
    let unsent = identifiers[0].wrapping_add(100);
    assert_eq!(
        client.handle_packet(now, &ack(unsent)),
        Err(AuthPacketError::StaleIdentifier(unsent))
    );
    // A late Ack for the first transmission counts.
    client.handle_packet(now, &ack(identifiers[0])).unwrap();
    assert_eq!(
        client.poll_event(),
        Some(AuthEvent::Success {
            username: "alice".into(),
            hlak: ZERO_HLAK,
            framed_ipv4: None
        })
    );
    // Further Acks are quietly absorbed.
    client.handle_packet(now, &ack(identifiers[1])).unwrap();
    assert_eq!(client.poll_event(), None);
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn chap_client_answers_a_repeated_challenge_unchanged() {
    for protocol in [AuthProtocol::ChapMd5, AuthProtocol::MsChapV2] {
        let (start, mut client) = lone_client(protocol, &config(), 4);
        let challenge = challenge_packet(1, &[7; 16]);
        client.handle_packet(start, &challenge).unwrap();
        let mut first = Vec::new();
        assert!(client.poll_transmit(&mut first));
        client.handle_packet(start, &challenge).unwrap();
        let mut second = Vec::new();
        assert!(client.poll_transmit(&mut second));
        assert_eq!(first, second, "{protocol}");
        // A new Challenge gets a new Response.
        let new_challenge = challenge_packet(2, &[8; 16]);
        client.handle_packet(start, &new_challenge).unwrap();
        let mut third = Vec::new();
        assert!(client.poll_transmit(&mut third));
        assert_eq!(ChapPacket::parse(&third).unwrap().identifier(), 2);
        // Verdicts for the old Identifier are stale now.
        let old_success = ChapPacket::Success {
            identifier: 1,
            message: b"",
        }
        .to_vec();
        assert_eq!(
            client.handle_packet(start, &old_success),
            Err(AuthPacketError::StaleIdentifier(1))
        );
    }
}

#[test]
fn md5_client_answers_a_rechallenge_after_success() {
    let (start, mut client) = lone_client(AuthProtocol::ChapMd5, &config(), 5);
    let challenge = |identifier| {
        ChapPacket::Challenge {
            identifier,
            value: &[identifier; 8],
            name: b"srv",
        }
        .to_vec()
    };
    let verdict = |code, identifier| {
        if code == CODE_SUCCESS {
            ChapPacket::Success {
                identifier,
                message: b"",
            }
        } else {
            ChapPacket::Failure {
                identifier,
                message: b"bye",
            }
        }
        .to_vec()
    };
    client.handle_packet(start, &challenge(1)).unwrap();
    client
        .handle_packet(start, &verdict(CODE_SUCCESS, 1))
        .unwrap();
    assert!(matches!(
        client.poll_event(),
        Some(AuthEvent::Success { .. })
    ));
    // The duplicate Success is absorbed.
    client
        .handle_packet(start, &verdict(CODE_SUCCESS, 1))
        .unwrap();
    // A re-challenge in the network phase is answered ...
    client.handle_packet(start, &challenge(2)).unwrap();
    let mut last = Vec::new();
    let mut buf = Vec::new();
    while client.poll_transmit(&mut buf) {
        last = std::mem::take(&mut buf);
    }
    assert_eq!(
        ChapPacket::parse(&last).unwrap(),
        ChapPacket::Response {
            identifier: 2,
            value: &crate::proto::auth::chap::md5_response(2, b"pw", &[2; 8]),
            name: b"alice"
        }
    );
    // ... a passed one reports nothing new, a failed one ends the link.
    client
        .handle_packet(start, &verdict(CODE_SUCCESS, 2))
        .unwrap();
    assert_eq!(client.poll_event(), None);
    client.handle_packet(start, &challenge(3)).unwrap();
    client
        .handle_packet(start, &verdict(CODE_FAILURE, 3))
        .unwrap();
    assert_eq!(
        client.poll_event(),
        Some(AuthEvent::Failure(AuthFailure::Rejected {
            reason: RejectReason::AuthenticationFailure,
            code: None,
            message: "bye".into()
        }))
    );
}

#[test]
fn server_rejects_malformed_and_unexpected_packets() {
    for protocol in [AuthProtocol::ChapMd5, AuthProtocol::MsChapV2] {
        let (start, mut server) = lone_server(protocol, 6);
        let mut challenge = Vec::new();
        assert!(server.poll_transmit(&mut challenge));
        let Ok(ChapPacket::Challenge {
            identifier, value, ..
        }) = ChapPacket::parse(&challenge)
        else {
            panic!("first packet is not a Challenge");
        };
        assert_eq!(value.len(), 16);
        let response = |identifier, value: &[u8]| {
            ChapPacket::Response {
                identifier,
                value,
                name: b"alice",
            }
            .to_vec()
        };
        let good_size = if protocol == AuthProtocol::MsChapV2 {
            49
        } else {
            16
        };
        let cases: Vec<(Vec<u8>, AuthPacketError)> = vec![
            (vec![], AuthPacketError::Malformed),
            (vec![2, identifier, 0], AuthPacketError::Malformed),
            (vec![2, identifier, 0, 200, 1], AuthPacketError::Malformed),
            (vec![2, identifier, 0, 5, 0], AuthPacketError::Malformed),
            (
                response(identifier, &vec![0; good_size + 1]),
                AuthPacketError::Malformed,
            ),
            (
                response(identifier, &vec![0; good_size - 1]),
                AuthPacketError::Malformed,
            ),
            (
                response(identifier.wrapping_add(1), &vec![0; good_size]),
                AuthPacketError::StaleIdentifier(identifier.wrapping_add(1)),
            ),
            (challenge.clone(), AuthPacketError::UnexpectedCode(1)),
            (
                ChapPacket::Success {
                    identifier,
                    message: b"",
                }
                .to_vec(),
                AuthPacketError::UnexpectedCode(3),
            ),
            // MS-CHAPv2 Change-Password is not spoken.
            (
                vec![7, identifier, 0, 4],
                AuthPacketError::UnexpectedCode(7),
            ),
        ];
        for (packet, error) in cases {
            assert_eq!(
                server.handle_packet(start, &packet),
                Err(error.clone()),
                "{protocol}: {packet:?}"
            );
            assert_eq!(server.poll_event(), None);
            let mut buf = Vec::new();
            assert!(
                !server.poll_transmit(&mut buf),
                "{protocol}: answered {packet:?}"
            );
            assert!(!error.as_str().is_empty());
        }
        // Still works afterwards.
        server
            .handle_packet(start, &response(identifier, &vec![0; good_size]))
            .unwrap();
        assert!(matches!(server.poll_event(), Some(AuthEvent::Request(_))));
    }
}

#[test]
fn pap_server_rejects_malformed_and_unexpected_packets() {
    let (start, mut server) = lone_server(AuthProtocol::Pap, 8);
    for (packet, error) in [
        (&[][..], AuthPacketError::Malformed),
        (&[1, 1, 0, 5, 9][..], AuthPacketError::Malformed),
        (&[1, 1, 0, 9, 0, 0][..], AuthPacketError::Malformed),
        (&[2, 1, 0, 5, 0][..], AuthPacketError::UnexpectedCode(2)),
        (&[3, 1, 0, 5, 0][..], AuthPacketError::UnexpectedCode(3)),
        (&[9, 1, 0, 4][..], AuthPacketError::UnexpectedCode(9)),
    ] {
        assert_eq!(server.handle_packet(start, packet), Err(error));
        assert_eq!(server.poll_event(), None);
    }
}

#[test]
fn clients_reject_malformed_and_unexpected_packets() {
    // MS-CHAPv2 challenges must be 16 octets.
    let (start, mut client) = lone_client(AuthProtocol::MsChapV2, &config(), 9);
    let short = challenge_packet(1, &[1; 8]);
    assert_eq!(
        client.handle_packet(start, &short),
        Err(AuthPacketError::Malformed)
    );
    // Success or Failure before any Challenge.
    assert_eq!(
        client.handle_packet(start, &[3, 1, 0, 4]),
        Err(AuthPacketError::UnexpectedCode(3))
    );
    assert_eq!(
        client.handle_packet(start, &[4, 1, 0, 4]),
        Err(AuthPacketError::UnexpectedCode(4))
    );
    // A Response sent to a peer.
    assert_eq!(
        client.handle_packet(start, &[2, 1, 0, 6, 1, 0]),
        Err(AuthPacketError::UnexpectedCode(2))
    );
    let mut buf = Vec::new();
    assert!(!client.poll_transmit(&mut buf));
    assert_eq!(client.poll_event(), None);

    // PAP: a Request sent to a peer; lying lengths.
    let (start, mut pap) = lone_client(AuthProtocol::Pap, &config(), 9);
    assert_eq!(
        pap.handle_packet(start, &[1, 1, 0, 6, 0, 0]),
        Err(AuthPacketError::UnexpectedCode(1))
    );
    assert_eq!(
        pap.handle_packet(start, &[2, 1, 0, 6, 5, 0]),
        Err(AuthPacketError::Malformed)
    );
    assert_eq!(pap.poll_event(), None);
}

#[test]
fn mschapv2_malformed_failure_message_is_a_plain_rejection() {
    let (start, mut client) = lone_client(AuthProtocol::MsChapV2, &config(), 10);
    let challenge = challenge_packet(1, &[1; 16]);
    client.handle_packet(start, &challenge).unwrap();
    let failure = ChapPacket::Failure {
        identifier: 1,
        message: b"go away",
    }
    .to_vec();
    client.handle_packet(start, &failure).unwrap();
    assert_eq!(
        client.poll_event(),
        Some(AuthEvent::Failure(AuthFailure::Rejected {
            reason: RejectReason::AuthenticationFailure,
            code: None,
            message: "go away".into()
        }))
    );
}

#[test]
fn client_respects_its_own_attempt_bound() {
    // A server that keeps offering R=1 forever is cut off by the peer's
    // max_attempts.
    let config = AuthConfig {
        max_attempts: 2,
        ..config()
    };
    let (start, mut client) = lone_client(AuthProtocol::MsChapV2, &config, 11);
    let challenge = challenge_packet(1, &[1; 16]);
    client.handle_packet(start, &challenge).unwrap();
    let retry = FailureMessage {
        error_code: 691,
        retry: true,
        challenge: Some([2; 16]),
        version: Some(3),
        message: "again".into(),
    }
    .to_bytes();
    for identifier in [1u8, 2] {
        let failure = ChapPacket::Failure {
            identifier,
            message: &retry,
        }
        .to_vec();
        client.handle_packet(start, &failure).unwrap();
    }
    let mut sent = Vec::new();
    let mut buf = Vec::new();
    while client.poll_transmit(&mut buf) {
        sent.push(ChapPacket::parse(&buf).unwrap().identifier());
        buf.clear();
    }
    assert_eq!(sent, [1, 2]);
    assert_eq!(
        client.poll_event(),
        Some(AuthEvent::Failure(AuthFailure::Rejected {
            reason: RejectReason::AuthenticationFailure,
            code: Some(691),
            message: "again".into()
        }))
    );
}

#[test]
fn decide_without_request_is_ignored() {
    for protocol in ALL {
        let (start, mut server) = lone_server(protocol, 12);
        let mut buf = Vec::new();
        while server.poll_transmit(&mut buf) {}
        server.decide(start, AuthDecision::Accept(AuthAccept::default()));
        assert_eq!(server.poll_event(), None, "{protocol}");
        buf.clear();
        assert!(!server.poll_transmit(&mut buf), "{protocol}");
    }
}

#[test]
fn proof_type_is_what_the_server_uses() {
    // A decision built by hand (as a RADIUS backend would) drives the
    // Success packet and the HLAK.
    let mut pair = Pair::new(AuthProtocol::MsChapV2, &config(), "alice", b"correct horse");
    let auth = local();
    let mut proof_seen = None;
    pair.run(
        &mut |request| {
            let decision = auth.decide(request);
            if let AuthDecision::Accept(AuthAccept {
                mschapv2: Some(proof),
                ..
            }) = &decision
            {
                proof_seen = Some(*proof);
            }
            decision
        },
        &mut no_loss(),
    );
    let proof: MsChapV2Proof = proof_seen.unwrap();
    let (_, hlak, _) = single_success(&pair.server.events);
    assert_eq!(hlak, proof.keys.server_hlak());
    assert_eq!(pair.server.mppe_keys(), Some(proof.keys));
}

/// EAP with EAP-MSCHAPv2 ([RFC 3748], draft-kamath-pppext-eap-mschapv2).
mod eap {
    use super::*;
    use crate::proto::auth::eap::{
        hlak_from_msk, mschapv2_msk, EapError, EapPacket, MsChapV2Data,
        CODE_FAILURE as EAP_FAILURE, CODE_SUCCESS as EAP_SUCCESS, OP_SUCCESS, TYPE_IDENTITY,
        TYPE_MSCHAPV2, TYPE_NAK,
    };
    use crate::proto::Role;

    const EAP: AuthProtocol = AuthProtocol::EapMsChapV2;

    /// The EAP-MSCHAPv2 Type-Data of every MSCHAPv2 Request the server
    /// sent, parsed, with its EAP Identifier.
    fn server_mschapv2(pair: &Pair) -> Vec<(u8, Vec<u8>)> {
        pair.packets(Direction::ServerToClient)
            .into_iter()
            .filter_map(|p| match EapPacket::parse(p) {
                Ok(EapPacket::Request {
                    identifier,
                    kind: TYPE_MSCHAPV2,
                    data,
                }) => Some((identifier, data.to_vec())),
                _ => None,
            })
            .collect()
    }

    fn failure_requests(pair: &Pair) -> Vec<FailureMessage> {
        server_mschapv2(pair)
            .iter()
            .filter_map(|(_, data)| match MsChapV2Data::parse(data, true) {
                Ok(MsChapV2Data::FailureRequest { message, .. }) => {
                    Some(FailureMessage::parse(message).unwrap())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn success_derives_the_msk_hlak_at_both_ends() {
        let mut pair = Pair::new(EAP, &config(), "bob", b"battery staple");
        pair.run(&mut with_local(), &mut no_loss());
        let (server_user, server_hlak, framed) = single_success(&pair.server.events);
        let (client_user, client_hlak, _) = single_success(&pair.client.events);
        assert_eq!((server_user.as_str(), client_user.as_str()), ("bob", "bob"));
        assert_eq!(framed, Some(Ipv4Addr::new(192, 0, 2, 9)));
        assert_ne!(server_hlak, ZERO_HLAK);
        assert_eq!(server_hlak, client_hlak);
        let server_keys = pair.server.mppe_keys().unwrap();
        let client_keys = pair.client.mppe_keys().unwrap();
        assert_eq!(server_keys.send, client_keys.receive);
        assert_eq!(
            server_hlak,
            hlak_from_msk(&mschapv2_msk(&server_keys, Role::Server))
        );
        assert!(pair.errors().is_empty(), "{:?}", pair.errors());
        assert_eq!(pair.server.poll_timeout(), None);
        assert_eq!(pair.client.poll_timeout(), None);
        // Identity, Challenge, Success Request, EAP-Success; and the
        // peer's three Responses.
        let to_client = pair.packets(Direction::ServerToClient);
        assert_eq!(to_client.len(), 4);
        assert_eq!(to_client[0][..5], [1, to_client[0][1], 0, 5, TYPE_IDENTITY]);
        assert_eq!(to_client[3][0], EAP_SUCCESS);
        let to_server = pair.packets(Direction::ClientToServer);
        assert_eq!(to_server.len(), 3);
        // The Identity Response carries the name.
        assert_eq!(&to_server[0][5..], b"bob");
        // EAP-Success answers the Success Response's Identifier.
        assert_eq!(to_client[3][1], to_server[2][1]);
        assert_eq!(&to_server[2][4..], &[TYPE_MSCHAPV2, OP_SUCCESS]);
    }

    #[test]
    fn wrong_password_exhausts_attempts_with_retries() {
        let mut pair = Pair::new(EAP, &config(), "alice", b"wrong");
        pair.run(&mut with_local(), &mut no_loss());
        let retries: Vec<bool> = failure_requests(&pair).iter().map(|f| f.retry).collect();
        assert_eq!(retries, [true, true, false]);
        assert!(failure_requests(&pair).iter().all(|f| f.error_code == 691));
        for events in [&pair.server.events, &pair.client.events] {
            match single_failure(events) {
                AuthFailure::Rejected { code, .. } => assert_eq!(code, Some(691)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            pair.packets(Direction::ServerToClient).last().unwrap()[0],
            EAP_FAILURE
        );
        // Three Challenges, each answered.
        let challenges = server_mschapv2(&pair)
            .iter()
            .filter(|(_, d)| d[0] == 1)
            .count();
        assert_eq!(challenges, 3);
        assert!(pair.errors().is_empty(), "{:?}", pair.errors());
    }

    #[test]
    fn retry_after_a_refusal_succeeds() {
        let mut pair = Pair::new(EAP, &config(), "alice", b"correct horse");
        let auth = local();
        let mut first = true;
        pair.run(
            &mut |request| {
                if std::mem::take(&mut first) {
                    AuthDecision::Reject(AuthReject {
                        reason: RejectReason::AuthenticationFailure,
                        message: REJECT_MESSAGE.into(),
                    })
                } else {
                    auth.decide(request)
                }
            },
            &mut no_loss(),
        );
        let (_, server_hlak, _) = single_success(&pair.server.events);
        let (_, client_hlak, _) = single_success(&pair.client.events);
        assert_eq!(server_hlak, client_hlak);
        assert_eq!(failure_requests(&pair).len(), 1);
    }

    #[test]
    fn non_retryable_refusal_ends_at_once() {
        let mut pair = Pair::new(EAP, &config(), "alice", b"correct horse");
        pair.run(
            &mut |_| {
                AuthDecision::Reject(AuthReject {
                    reason: RejectReason::AccountDisabled,
                    message: "disabled".into(),
                })
            },
            &mut no_loss(),
        );
        match single_failure(&pair.client.events) {
            AuthFailure::Rejected { reason, code, .. } => {
                assert_eq!(reason, RejectReason::AccountDisabled);
                assert_eq!(code, Some(647));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(failure_requests(&pair).len(), 1);
    }

    #[test]
    fn lost_packets_and_a_lost_success_are_recovered() {
        // Lose the Identity Request, the first MSCHAPv2 Response and the
        // EAP-Success: the server repeats its Requests, the peer its
        // Success Response, and the server answers that with EAP-Success
        // again.
        let mut pair = Pair::new(EAP, &config(), "alice", b"correct horse");
        let mut lost_identity = false;
        let mut lost_response = false;
        let mut lost_success = false;
        pair.run(&mut with_local(), &mut |direction, packet| {
            let flag = match (direction, packet[0], packet.get(4)) {
                (Direction::ServerToClient, 1, Some(&TYPE_IDENTITY)) => &mut lost_identity,
                (Direction::ClientToServer, 2, Some(&TYPE_MSCHAPV2)) if packet[5] == 2 => {
                    &mut lost_response
                }
                (Direction::ServerToClient, EAP_SUCCESS, _) => &mut lost_success,
                _ => return false,
            };
            !std::mem::replace(flag, true)
        });
        assert!(lost_identity && lost_response && lost_success);
        let (_, server_hlak, _) = single_success(&pair.server.events);
        let (_, client_hlak, _) = single_success(&pair.client.events);
        assert_eq!(server_hlak, client_hlak);
        let successes = pair
            .packets(Direction::ServerToClient)
            .iter()
            .filter(|p| p[0] == EAP_SUCCESS)
            .count();
        assert_eq!(successes, 2);
        // Judged once, despite the repeats.
        assert!(pair.errors().is_empty(), "{:?}", pair.errors());
    }

    #[test]
    fn late_decision_and_stale_responses() {
        let mut pair = Pair::new(EAP, &config(), "alice", b"correct horse");
        pair.exchange(&mut no_loss());
        let request = pair.server.requests.pop_front().unwrap();
        // A copy of the Response being judged is not judged again.
        let response = pair
            .packets(Direction::ClientToServer)
            .last()
            .unwrap()
            .to_vec();
        let now = pair.now;
        pair.server.handle_packet(now, &response).unwrap();
        pair.collect_events();
        assert!(pair.server.requests.is_empty());
        // A Response with an Identifier no Request had is stale.
        let stale = EapPacket::Response {
            identifier: pair.packets(Direction::ServerToClient)[0][1],
            kind: TYPE_IDENTITY,
            data: b"alice",
        }
        .to_vec();
        assert!(matches!(
            pair.server.handle_packet(now, &stale),
            Err(AuthPacketError::Eap(EapError::StaleIdentifier(_)))
        ));
        pair.server.decide(pair.now, local().decide(&request));
        pair.collect_events();
        pair.run(&mut with_local(), &mut no_loss());
        single_success(&pair.server.events);
        single_success(&pair.client.events);
    }

    #[test]
    fn server_without_the_password_is_caught() {
        let mut pair = Pair::new(EAP, &config(), "alice", b"correct horse");
        pair.run(
            &mut |_| {
                AuthDecision::Accept(AuthAccept {
                    mschapv2: Some(MsChapV2Proof {
                        authenticator_response: [0x11; 20],
                        keys: crate::proto::auth::MppeKeys {
                            send: [1; 16],
                            receive: [2; 16],
                        },
                    }),
                    ..AuthAccept::default()
                })
            },
            &mut no_loss(),
        );
        assert_eq!(
            single_failure(&pair.client.events),
            AuthFailure::ServerNotAuthenticated
        );
    }

    #[test]
    fn peer_refuses_success_before_the_method_completes() {
        let (now, mut client) = lone_client(EAP, &config(), 3);
        client
            .handle_packet(now, &[1, 1, 0, 5, TYPE_IDENTITY])
            .unwrap();
        client.handle_packet(now, &[EAP_SUCCESS, 2, 0, 4]).unwrap();
        let mut buf = Vec::new();
        assert!(client.poll_transmit(&mut buf));
        assert_eq!(
            buf,
            [2, 1, 0, 10, TYPE_IDENTITY, b'a', b'l', b'i', b'c', b'e']
        );
        assert_eq!(
            client.poll_event(),
            Some(AuthEvent::Failure(AuthFailure::ServerNotAuthenticated))
        );
    }

    #[test]
    fn peer_naks_other_methods_and_server_ends_on_a_nak_without_mschapv2() {
        let (now, mut client) = lone_client(EAP, &config(), 4);
        // EAP-MD5 (Type 4) is proposed: the peer Naks with MSCHAPv2.
        client.handle_packet(now, &[1, 9, 0, 6, 4, 0]).unwrap();
        let mut buf = Vec::new();
        assert!(client.poll_transmit(&mut buf));
        assert_eq!(buf, [2, 9, 0, 6, TYPE_NAK, TYPE_MSCHAPV2]);

        let (now, mut server) = lone_server(EAP, 5);
        let mut identity = Vec::new();
        assert!(server.poll_transmit(&mut identity));
        let id = identity[1];
        server
            .handle_packet(now, &[2, id, 0, 6, TYPE_IDENTITY, b'x'])
            .unwrap();
        let mut challenge = Vec::new();
        assert!(server.poll_transmit(&mut challenge));
        let id = challenge[1];
        // The peer wants EAP-TLS (13) only.
        server
            .handle_packet(now, &[2, id, 0, 6, TYPE_NAK, 13])
            .unwrap();
        let mut failure = Vec::new();
        assert!(server.poll_transmit(&mut failure));
        assert_eq!(failure, [EAP_FAILURE, id, 0, 4]);
        assert!(matches!(
            server.poll_event(),
            Some(AuthEvent::Failure(AuthFailure::Rejected { .. }))
        ));
    }

    #[test]
    fn long_identity_is_cut_and_hostile_packets_are_errors() {
        let (now, mut server) = lone_server(EAP, 6);
        let mut identity = Vec::new();
        assert!(server.poll_transmit(&mut identity));
        let id = identity[1];
        for (packet, error) in [
            (&[1u8, id, 0, 5, 1][..], EapError::UnexpectedCode(1)),
            (&[2, id, 0, 4], EapError::BadLength),
            (&[2, id, 0, 40, 1], EapError::Truncated),
            (&[3, id, 0, 4], EapError::UnexpectedCode(3)),
            (
                &[2, id.wrapping_add(9), 0, 5, 1],
                EapError::StaleIdentifier(id.wrapping_add(9)),
            ),
            (
                &[2, id, 0, 5, TYPE_MSCHAPV2],
                EapError::UnexpectedType(TYPE_MSCHAPV2),
            ),
        ] {
            assert_eq!(
                server.handle_packet(now, packet),
                Err(AuthPacketError::Eap(error)),
                "{packet:?}"
            );
        }
        // An identity of 1400 octets (beyond RADIUS' 253): taken, cut.
        let mut long = vec![2, id, 0, 0, TYPE_IDENTITY];
        long.extend(std::iter::repeat_n(b'n', 1400));
        let len = long.len() as u16;
        long[2..4].copy_from_slice(&len.to_be_bytes());
        server.handle_packet(now, &long).unwrap();
        let mut challenge = Vec::new();
        assert!(server.poll_transmit(&mut challenge));
        assert_eq!(challenge[4], TYPE_MSCHAPV2);
        // The peer cuts its own identity the same way.
        let long_name = "n".repeat(1400);
        let mut rng = StdRng::seed_from_u64(1);
        let mut client = AuthClient::new(EAP, &config(), &long_name, b"pw", now, &mut rng);
        client
            .handle_packet(now, &[1, 1, 0, 5, TYPE_IDENTITY])
            .unwrap();
        let mut buf = Vec::new();
        assert!(client.poll_transmit(&mut buf));
        assert_eq!(buf.len(), 5 + 253);
    }
}

/// EAP relayed to an authenticator ([`AuthConfig::eap_relay`]): the
/// authenticator here is a second [`AuthServer`] running EAP-MSCHAPv2
/// against local users, playing the RADIUS server's EAP module, so the
/// relay carries a real conversation both ways.
mod eap_relay {
    use super::*;
    use crate::proto::auth::eap::{
        hlak_from_msk, mschapv2_msk, EapPacket, CODE_FAILURE as EAP_FAILURE,
        CODE_SUCCESS as EAP_SUCCESS, MAX_RELAY_ROUND_TRIPS, TYPE_IDENTITY,
    };
    use crate::proto::auth::{AuthChallenge, Credentials, Msk};
    use crate::proto::Role;

    const EAP: AuthProtocol = AuthProtocol::EapMsChapV2;

    fn relay_config() -> AuthConfig {
        AuthConfig {
            eap_relay: true,
            ..AuthConfig::default()
        }
    }

    /// The backend: an EAP-MSCHAPv2 authenticator whose Identity Request
    /// the relay's stands for, and the States it handed out.
    struct Backend {
        machine: AuthServer,
        now: Instant,
        identity_id: u8,
        states: Vec<Option<Vec<u8>>>,
    }

    impl Backend {
        fn new() -> Backend {
            let now = Instant::now();
            let mut machine = AuthServer::new(EAP, &config(), now, &mut StdRng::seed_from_u64(99));
            let mut first = Vec::new();
            assert!(machine.poll_transmit(&mut first));
            Backend {
                machine,
                now,
                identity_id: EapPacket::parse(&first).unwrap().identifier(),
                states: Vec::new(),
            }
        }

        /// What a RADIUS server's answer to one relayed Response would say.
        fn answer(&mut self, request: &AuthRequest) -> AuthDecision {
            let Credentials::Eap { packet, state } = &request.credentials else {
                panic!("relayed EAP expected, got {:?}", request.credentials);
            };
            self.states.push(state.clone());
            let mut packet = packet.clone();
            if let Ok(EapPacket::Response {
                kind: TYPE_IDENTITY,
                ..
            }) = EapPacket::parse(&packet)
            {
                packet[1] = self.identity_id;
            }
            self.machine.handle_packet(self.now, &packet).unwrap();
            while let Some(event) = self.machine.poll_event() {
                match event {
                    AuthEvent::Request(request) => {
                        let decision = local().decide(&request);
                        self.machine.decide(self.now, decision);
                    }
                    AuthEvent::Success { framed_ipv4, .. } => {
                        let keys = self.machine.mppe_keys().unwrap();
                        return AuthDecision::Accept(AuthAccept {
                            eap_msk: Some(Msk(mschapv2_msk(&keys, Role::Server).to_vec())),
                            framed_ipv4,
                            ..AuthAccept::default()
                        });
                    }
                    AuthEvent::Failure(_) => {
                        return AuthDecision::Reject(AuthReject {
                            reason: RejectReason::AuthenticationFailure,
                            message: REJECT_MESSAGE.into(),
                        })
                    }
                }
            }
            let mut next = Vec::new();
            assert!(self.machine.poll_transmit(&mut next), "the backend answers");
            AuthDecision::Challenge(AuthChallenge {
                eap_request: next,
                state: Some(format!("state-{}", self.states.len()).into_bytes()),
            })
        }
    }

    #[test]
    fn every_response_goes_to_the_authenticator_and_its_msk_gives_the_hlak() {
        let mut pair = Pair::new(EAP, &relay_config(), "bob", b"battery staple");
        let mut backend = Backend::new();
        pair.run(&mut |request| backend.answer(request), &mut no_loss());
        let (server_user, server_hlak, framed) = single_success(&pair.server.events);
        let (_, client_hlak, _) = single_success(&pair.client.events);
        assert_eq!(server_user, "bob", "the EAP identity names the user");
        assert_eq!(framed, Some(Ipv4Addr::new(192, 0, 2, 9)));
        assert_ne!(server_hlak, ZERO_HLAK);
        assert_eq!(server_hlak, client_hlak);
        let backend_keys = backend.machine.mppe_keys().unwrap();
        assert_eq!(
            server_hlak,
            hlak_from_msk(&mschapv2_msk(&backend_keys, Role::Server))
        );
        // Identity, the MSCHAPv2 Response and the Success Response, each
        // with the State of the Challenge it answered.
        assert_eq!(
            backend.states,
            [None, Some(b"state-1".to_vec()), Some(b"state-2".to_vec())]
        );
        assert!(pair.errors().is_empty(), "{:?}", pair.errors());
        let last = *pair.packets(Direction::ServerToClient).last().unwrap();
        assert_eq!(EapPacket::parse(last).unwrap().code(), EAP_SUCCESS);
    }

    #[test]
    fn a_wrong_password_ends_with_eap_failure_after_the_authenticators_reject() {
        let mut pair = Pair::new(EAP, &relay_config(), "bob", b"wrong");
        let mut backend = Backend::new();
        pair.run(&mut |request| backend.answer(request), &mut no_loss());
        assert!(matches!(
            pair.server.events.last(),
            Some(AuthEvent::Failure(AuthFailure::Rejected { .. }))
        ));
        let last = *pair.packets(Direction::ServerToClient).last().unwrap();
        assert_eq!(EapPacket::parse(last).unwrap().code(), EAP_FAILURE);
    }

    #[test]
    fn an_accept_without_keys_or_a_challenge_without_a_request_fails() {
        for decision in [
            AuthDecision::Accept(AuthAccept::default()),
            AuthDecision::Challenge(AuthChallenge {
                eap_request: EapPacket::Success { identifier: 1 }.to_vec(),
                state: None,
            }),
        ] {
            let mut pair = Pair::new(EAP, &relay_config(), "bob", b"battery staple");
            let mut decision = Some(decision);
            pair.run(&mut |_| decision.take().unwrap(), &mut no_loss());
            assert!(
                matches!(
                    pair.server.events.last(),
                    Some(AuthEvent::Failure(AuthFailure::Rejected {
                        reason: RejectReason::ServiceUnavailable,
                        ..
                    }))
                ),
                "{:?}",
                pair.server.events
            );
        }
    }

    #[test]
    fn an_endless_conversation_stops_at_the_round_trip_limit() {
        // The authenticator asks for the identity again and again.
        let mut pair = Pair::new(EAP, &relay_config(), "bob", b"battery staple");
        let mut asked = 0u32;
        pair.run(
            &mut |_| {
                asked += 1;
                AuthDecision::Challenge(AuthChallenge {
                    eap_request: EapPacket::Request {
                        identifier: asked as u8,
                        kind: TYPE_IDENTITY,
                        data: b"",
                    }
                    .to_vec(),
                    state: None,
                })
            },
            &mut no_loss(),
        );
        assert_eq!(asked, MAX_RELAY_ROUND_TRIPS);
        assert!(matches!(
            pair.server.events.last(),
            Some(AuthEvent::Failure(AuthFailure::Rejected { .. }))
        ));
    }
}
