//! The authentication phase against a hostile client, on the virtual
//! clock: a server [`Session`] driven by a scripted client that
//! renegotiates LCP while its credentials are being judged, with the
//! authenticator's answers delivered when the test says (as a slow RADIUS
//! server would deliver them).
//!
//! [`Session`]: sstpd::proto::session::Session

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use sstpd::proto::auth::chap::{CODE_FAILURE, CODE_SUCCESS};
use sstpd::proto::auth::eap;
use sstpd::proto::auth::pap::{CODE_AUTHENTICATE_ACK, CODE_AUTHENTICATE_NAK};
use sstpd::proto::auth::LocalAuthenticator;
use sstpd::proto::auth::{
    AuthAccept, AuthChallenge, AuthDecision, AuthProtocol, AuthRequestId, Credentials,
    FailedAuthAttempt, Msk, PROTO_CHAP, PROTO_EAP, PROTO_PAP,
};
use sstpd::proto::ppp::frame::{PROTO_IPCP, PROTO_LCP};
use sstpd::proto::ppp::packet::CONFIGURE_REQUEST;
use sstpd::proto::ppp::{IpcpConfig, PppConfig};
use sstpd::proto::session::{SessionConfig, SessionEvent};
use sstpd::proto::sstp::SstpConfig;
use sstpd::testing::hostile::{LoneServer, ScriptedClient};
use sstpd::testing::StaticPasswords;

fn config(method: AuthProtocol) -> SessionConfig {
    let ppp = PppConfig {
        auth_protocols: vec![method],
        ipcp: IpcpConfig {
            local_address: Some(Ipv4Addr::new(10, 99, 0, 1)),
            ..IpcpConfig::default()
        },
        ..PppConfig::default()
    };
    SessionConfig::new(SstpConfig::default(), ppp)
}

fn users() -> LocalAuthenticator<StaticPasswords> {
    let mut users = StaticPasswords::new();
    users.insert("alice", "alice-secret");
    users.insert("bob", "bob-secret");
    LocalAuthenticator::new(users)
}

/// Answers the `index`-th request as the local user table does; whether
/// the session applied the answer.
fn answer(server: &mut LoneServer, index: usize) -> bool {
    let decision = users().decide(&server.requests()[index]);
    server.decide(index, decision)
}

/// An LCP renegotiation the way the attacker sends it: a Configure-Request,
/// and the Ack of the Configure-Request the server will send in answer
/// (its Identifier and options are predictable). Each has an Identifier of
/// its own: a copy of the request acknowledged (same Identifier and
/// options, [RFC 1661] 5.1) gets the same Ack, not a renegotiation.
fn renegotiation(server: &LoneServer) -> Vec<u8> {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0x20);
    let request = server.client.lcp_request().expect("server's LCP request");
    let identifier = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut bytes = ScriptedClient::lcp_configure_request(identifier.max(2));
    bytes.extend_from_slice(&ScriptedClient::ack_next(request));
    bytes
}

/// The record of the report over PAP: `first`'s request, an LCP
/// renegotiation and its predicted Ack, then `second`'s request, all in one
/// read; then the two answers, in order, once both were asked for.
fn pap_attack(seed: u8, first: (&str, &str), second: (&str, &str)) -> LoneServer {
    let mut server = LoneServer::in_authentication(&config(AuthProtocol::Pap), seed);
    let mut record = ScriptedClient::pap_request(1, first.0, first.1);
    record.extend_from_slice(&renegotiation(&server));
    record.extend_from_slice(&ScriptedClient::pap_request(2, second.0, second.1));
    server.send(&record);
    let names: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.username.clone())
        .collect();
    assert_eq!(names, [first.0, second.0], "both reached the authenticator");
    assert!(
        !answer(&mut server, 0),
        "the answer to the request renegotiated away is not applied"
    );
    assert!(answer(&mut server, 1), "the live request's answer is");
    server
}

fn authenticated(server: &LoneServer) -> Vec<String> {
    server
        .events()
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Authenticated { username } => Some(username.clone()),
            _ => None,
        })
        .collect()
}

fn failures(server: &LoneServer) -> Vec<&FailedAuthAttempt> {
    server
        .events()
        .iter()
        .filter_map(|e| match e {
            SessionEvent::AuthAttemptFailed(attempt) => Some(attempt),
            _ => None,
        })
        .collect()
}

/// (name, method label, outcome, attempt) of each reported failure.
fn failure_summary(server: &LoneServer) -> Vec<(String, &'static str, &'static str, u32)> {
    failures(server)
        .into_iter()
        .map(|f| {
            (
                f.username.clone(),
                sstpd::metrics::Event::from(f).label(),
                f.outcome.as_str(),
                f.attempt,
            )
        })
        .collect()
}

fn stale_answers(server: &LoneServer) -> usize {
    server
        .events()
        .iter()
        .filter(|e| matches!(e, SessionEvent::Dropped { reason, .. } if reason.as_str() == "stale_auth_decision"))
        .count()
}

fn ipcp_requested(server: &LoneServer) -> bool {
    server.client.saw(PROTO_IPCP, CONFIGURE_REQUEST)
}

/// The close reason once the server's LCP terminate and SSTP disconnect
/// have run their course without the client's help.
fn close_reason(server: &mut LoneServer) -> Option<&'static str> {
    server.advance_by(Duration::from_secs(120));
    server.events().iter().find_map(|e| match e {
        SessionEvent::Closed(reason) => Some(reason.as_str()),
        _ => None,
    })
}

// ---- Defect 1: an answer is applied to its own request only ----

#[test]
fn pap_accept_for_a_request_renegotiated_away_does_not_authenticate_the_next_name() {
    let server = pap_attack(3, ("alice", "alice-secret"), ("bob", "wrong"));
    assert!(
        !server.client.saw(PROTO_PAP, CODE_AUTHENTICATE_ACK),
        "no Authenticate-Ack: {:?}",
        server.client.received
    );
    assert!(authenticated(&server).is_empty(), "{:?}", server.events());
    assert!(!ipcp_requested(&server), "IPCP never starts");
    assert!(
        server.client.saw(PROTO_PAP, CODE_AUTHENTICATE_NAK),
        "bob is refused"
    );
    assert_eq!(stale_answers(&server), 1, "{:?}", server.events());
}

/// CHAP-MD5 and MS-CHAPv2: the second Response must wait for the new
/// Challenge, so a slow authenticator is what opens the window.
fn chap_binding(method: AuthProtocol) {
    let respond = |challenge, user: &str, password: &str| match method {
        AuthProtocol::ChapMd5 => ScriptedClient::chap_md5_response(challenge, user, password),
        _ => ScriptedClient::mschapv2_response(challenge, user, password),
    };
    let mut server = LoneServer::in_authentication(&config(method), 4);
    let challenge = server.client.chap_challenge().expect("first Challenge");
    let mut record = respond(challenge, "alice", "alice-secret");
    record.extend_from_slice(&renegotiation(&server));
    server.send(&record);
    let challenge = server
        .client
        .chap_challenge()
        .expect("the new phase's Challenge");
    server.send(&respond(challenge, "bob", "wrong"));
    let names: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.username.clone())
        .collect();
    assert_eq!(names, ["alice", "bob"], "{method}");

    answer(&mut server, 0);
    answer(&mut server, 1);
    assert!(
        !server.client.saw(PROTO_CHAP, CODE_SUCCESS),
        "{method}: no Success for bob: {:?}",
        server.client.received
    );
    assert!(
        authenticated(&server).is_empty(),
        "{method}: {:?}",
        server.events()
    );
    assert!(!ipcp_requested(&server), "{method}");
    assert!(
        server.client.saw(PROTO_CHAP, CODE_FAILURE),
        "{method}: bob is refused"
    );
    assert_eq!(stale_answers(&server), 1, "{method}: {:?}", server.events());
}

#[test]
fn chap_md5_accept_for_a_request_renegotiated_away_does_not_authenticate_the_next_name() {
    chap_binding(AuthProtocol::ChapMd5);
}

#[test]
fn mschapv2_accept_for_a_request_renegotiated_away_does_not_authenticate_the_next_name() {
    chap_binding(AuthProtocol::MsChapV2);
}

/// EAP-MSCHAPv2: the same attack inside EAP. Each phase asks for the
/// identity, then challenges; alice's Response, a renegotiation, then bob's
/// Response to the new phase's Challenge; alice's Accept arrives for a
/// request renegotiated away.
#[test]
fn eap_mschapv2_accept_for_a_request_renegotiated_away_does_not_authenticate_the_next_name() {
    let mut server = LoneServer::in_authentication(&config(AuthProtocol::EapMsChapV2), 4);
    let identify = |server: &mut LoneServer, name: &str| {
        let (identifier, kind, _) = server.client.eap_request().expect("Identity Request");
        assert_eq!(kind, eap::TYPE_IDENTITY);
        server.send(&ScriptedClient::eap_identity(identifier, name));
        server
            .client
            .eap_mschapv2_challenge()
            .expect("EAP-MSCHAPv2 Challenge")
    };
    let challenge = identify(&mut server, "alice");
    let mut record = ScriptedClient::eap_mschapv2_response(challenge, "alice", "alice-secret");
    record.extend_from_slice(&renegotiation(&server));
    server.send(&record);
    let challenge = identify(&mut server, "bob");
    server.send(&ScriptedClient::eap_mschapv2_response(
        challenge, "bob", "wrong",
    ));
    let names: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.username.clone())
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    answer(&mut server, 0);
    answer(&mut server, 1);
    // No MSCHAPv2 Success Request (OpCode 3) and no EAP-Success for bob.
    let success_request = server.client.received.iter().any(|r| {
        r.protocol == PROTO_EAP
            && r.code == eap::CODE_REQUEST
            && r.data.first() == Some(&eap::TYPE_MSCHAPV2)
            && r.data.get(1) == Some(&eap::OP_SUCCESS)
    });
    assert!(!success_request, "{:?}", server.client.received);
    assert!(!server.client.saw(PROTO_EAP, eap::CODE_SUCCESS));
    assert!(authenticated(&server).is_empty(), "{:?}", server.events());
    assert!(!ipcp_requested(&server));
    // bob is refused with a Failure Request offering a retry.
    let (_, kind, data) = server.client.eap_request().expect("Failure Request");
    assert_eq!((kind, data[0]), (eap::TYPE_MSCHAPV2, eap::OP_FAILURE));
    assert_eq!(stale_answers(&server), 1, "{:?}", server.events());
}

/// EAP pass-through: every relayed round is a request of its own, so an
/// answer to an earlier round (a RADIUS server answering a retransmission,
/// or answering late) is stale: dropped, counted, never sent on to the
/// client, and an old Accept cannot end a later round.
#[test]
fn relayed_eap_binds_each_answer_to_its_own_round() {
    let mut relay = config(AuthProtocol::EapMsChapV2);
    Arc::make_mut(&mut relay.ppp).auth.eap_relay = true;
    let mut server = LoneServer::in_authentication(&relay, 12);
    let (identifier, kind, _) = server.client.eap_request().expect("Identity Request");
    assert_eq!(kind, eap::TYPE_IDENTITY);
    server.send(&ScriptedClient::eap_identity(identifier, "carol"));
    let challenge = |data: &[u8], state: &[u8]| {
        AuthDecision::Challenge(AuthChallenge {
            eap_request: eap::EapPacket::Request {
                identifier: 0x42,
                kind: eap::TYPE_MSCHAPV2,
                data,
            }
            .to_vec(),
            state: Some(state.to_vec()),
        })
    };
    let accept = || {
        AuthDecision::Accept(AuthAccept {
            eap_msk: Some(Msk(vec![7; 64])),
            ..AuthAccept::default()
        })
    };
    assert!(server.decide(0, challenge(b"round one", b"s1")));
    assert_eq!(
        server.client.eap_request(),
        Some((0x42, eap::TYPE_MSCHAPV2, b"round one".to_vec()))
    );
    assert!(
        !server.decide(0, challenge(b"again", b"s1")),
        "answered already"
    );
    server.send(&ScriptedClient::eap_identity(0x42, "carol"));
    let second = &server.requests()[1];
    assert_eq!(second.username, "carol");
    assert!(matches!(
        &second.credentials,
        Credentials::Eap { state: Some(state), .. } if state == b"s1"
    ));
    assert!(!server.decide(0, accept()), "an accept for the first round");
    assert!(!server.client.saw(PROTO_EAP, eap::CODE_SUCCESS));
    assert!(authenticated(&server).is_empty());
    assert!(server.decide(1, accept()));
    assert!(server.client.saw(PROTO_EAP, eap::CODE_SUCCESS));
    assert_eq!(authenticated(&server), ["carol"]);
    assert_eq!(stale_answers(&server), 2, "{:?}", server.events());
}

#[test]
fn the_answer_to_the_current_request_still_authenticates_after_a_renegotiation() {
    // Renegotiating during authentication is allowed; only the old
    // request's answer is void.
    let server = pap_attack(5, ("alice", "wrong"), ("bob", "bob-secret"));
    assert_eq!(authenticated(&server), ["bob"]);
    assert!(server.client.saw(PROTO_PAP, CODE_AUTHENTICATE_ACK));
    assert!(ipcp_requested(&server));
}

// ---- Defect 2: the attempt limit is per connection ----

#[test]
fn mschapv2_renegotiation_does_not_reset_the_attempt_limit() {
    // Default ppp.auth_max_attempts: 3. Guess, and whenever the server
    // offers a retry, renegotiate LCP after the second failure to start a
    // fresh machine.
    let mut server = LoneServer::in_authentication(&config(AuthProtocol::MsChapV2), 6);
    for guess in 0..12 {
        let Some(challenge) = server.client.chap_challenge() else {
            break;
        };
        let before = server.requests().len();
        server.send(&ScriptedClient::mschapv2_response(
            challenge,
            "alice",
            &format!("guess-{guess}"),
        ));
        if server.requests().len() == before {
            break;
        }
        answer(&mut server, before);
        if guess % 2 == 1 && server.client.chap_challenge().is_some() {
            let renegotiate = renegotiation(&server);
            server.send(&renegotiate);
        }
    }
    assert_eq!(
        server.requests().len(),
        3,
        "three guesses per connection, renegotiation or not"
    );
    assert_eq!(close_reason(&mut server), Some("auth_attempts_exhausted"));
}

/// PAP and CHAP-MD5 end the phase at the first failure; renegotiating
/// while a request is being judged must not buy more guesses either.
fn renegotiating_while_judged(method: AuthProtocol) {
    let mut server = LoneServer::in_authentication(&config(method), 7);
    for guess in 0..12u8 {
        let password = format!("guess-{guess}");
        let bytes = match method {
            AuthProtocol::Pap => ScriptedClient::pap_request(guess, "alice", &password),
            _ => match server.client.chap_challenge() {
                Some(challenge) => ScriptedClient::chap_md5_response(challenge, "alice", &password),
                None => break,
            },
        };
        let mut record = bytes;
        record.extend_from_slice(&renegotiation(&server));
        server.send(&record);
        if server.client.saw(PROTO_LCP, 5) {
            break; // Terminate-Request: the server gave up.
        }
    }
    // Whatever the answers say, they come too late for their machine.
    for index in 0..server.requests().len() {
        answer(&mut server, index);
    }
    assert!(
        server.requests().len() <= 3,
        "{method}: {} guesses judged on one connection",
        server.requests().len()
    );
    assert_eq!(
        close_reason(&mut server),
        Some("auth_attempts_exhausted"),
        "{method}"
    );
}

#[test]
fn pap_renegotiating_while_judged_does_not_buy_more_guesses() {
    renegotiating_while_judged(AuthProtocol::Pap);
}

#[test]
fn chap_md5_renegotiating_while_judged_does_not_buy_more_guesses() {
    renegotiating_while_judged(AuthProtocol::ChapMd5);
}

// ---- Defect 3: every failed attempt is reported ----

#[test]
fn every_failed_attempt_is_reported_with_the_claimed_name_and_the_method() {
    // The attack of defect 1: alice's request abandoned by the
    // renegotiation, bob's refused. Both are attempts of this connection.
    let mut server = pap_attack(8, ("alice", "alice-secret"), ("bob", "wrong"));
    assert_eq!(
        failure_summary(&server),
        [
            (
                "alice".into(),
                "auth_failure_pap",
                "abandoned_by_renegotiation",
                1
            ),
            (
                "bob".into(),
                "auth_failure_pap",
                "authentication_failure",
                2
            ),
        ]
    );
    assert_eq!(stale_answers(&server), 1);
    let bob = failures(&server)[1];
    assert_eq!(bob.request, server.requests()[1].id);
    assert_eq!(bob.max_attempts, 3);
    // PAP has no retry: bob's refusal ends the phase.
    assert_eq!(close_reason(&mut server), Some("auth_failed"));
    assert_eq!(server.session().claimed_username(), Some("bob"));
    assert_eq!(server.session().username(), None);
}

#[test]
fn chap_md5_refusal_is_reported_once() {
    let mut server = LoneServer::in_authentication(&config(AuthProtocol::ChapMd5), 9);
    let challenge = server.client.chap_challenge().unwrap();
    server.send(&ScriptedClient::chap_md5_response(
        challenge, "bob", "wrong",
    ));
    answer(&mut server, 0);
    assert_eq!(
        failure_summary(&server),
        [(
            "bob".into(),
            "auth_failure_chap_md5",
            "authentication_failure",
            1
        )]
    );
    assert_eq!(close_reason(&mut server), Some("auth_failed"));
}

#[test]
fn a_request_left_unanswered_is_reported_when_the_phase_times_out() {
    let mut server = LoneServer::in_authentication(&config(AuthProtocol::Pap), 10);
    server.send(&ScriptedClient::pap_request(1, "carol", "whatever"));
    assert_eq!(server.requests().len(), 1);
    // The authenticator never answers; the phase bound (30 s) passes.
    server.advance_by(Duration::from_secs(31));
    assert_eq!(
        failure_summary(&server),
        [("carol".into(), "auth_failure_pap", "timed_out", 1)]
    );
    // A late answer is stale, and changes nothing.
    answer(&mut server, 0);
    assert_eq!(stale_answers(&server), 1);
    assert!(authenticated(&server).is_empty());
    assert!(!server.client.saw(PROTO_PAP, CODE_AUTHENTICATE_ACK));
}

// ---- Answers that name no request, and renegotiation after success ----

#[test]
fn answers_are_applied_once_and_forged_ids_never() {
    let mut server = LoneServer::in_authentication(&config(AuthProtocol::Pap), 11);
    server.send(&ScriptedClient::pap_request(1, "alice", "alice-secret"));
    let now = server.now;
    let accept = || AuthDecision::Accept(AuthAccept::default());
    for forged in [0, 2, u64::MAX] {
        server
            .server
            .session
            .auth_decision(now, AuthRequestId::from_raw(forged), accept());
        server.drive_now();
    }
    assert_eq!(stale_answers(&server), 3);
    assert!(authenticated(&server).is_empty());
    answer(&mut server, 0);
    assert_eq!(authenticated(&server), ["alice"]);
    // The same answer again: stale, not a second verdict.
    answer(&mut server, 0);
    assert_eq!(stale_answers(&server), 4);
    assert_eq!(authenticated(&server), ["alice"]);
}

#[test]
fn renegotiation_after_authentication_ends_the_session() {
    for method in [
        AuthProtocol::Pap,
        AuthProtocol::ChapMd5,
        AuthProtocol::MsChapV2,
    ] {
        let mut server = LoneServer::in_authentication(&config(method), 12);
        let bytes = match method {
            AuthProtocol::Pap => ScriptedClient::pap_request(1, "alice", "alice-secret"),
            AuthProtocol::ChapMd5 => ScriptedClient::chap_md5_response(
                server.client.chap_challenge().unwrap(),
                "alice",
                "alice-secret",
            ),
            _ => ScriptedClient::mschapv2_response(
                server.client.chap_challenge().unwrap(),
                "alice",
                "alice-secret",
            ),
        };
        server.send(&bytes);
        answer(&mut server, 0);
        assert_eq!(authenticated(&server), ["alice"], "{method}");
        assert!(ipcp_requested(&server), "{method}");
        // Now the client renegotiates and tries to authenticate as bob.
        let mut record = renegotiation(&server);
        record.extend_from_slice(&ScriptedClient::pap_request(9, "bob", "bob-secret"));
        server.send(&record);
        assert!(
            server.client.saw(PROTO_LCP, 5),
            "{method}: Terminate-Request"
        );
        assert_eq!(server.requests().len(), 1, "{method}: nothing judged after");
        assert_eq!(authenticated(&server), ["alice"], "{method}");
        assert_eq!(
            close_reason(&mut server),
            Some("renegotiated_after_auth"),
            "{method}"
        );
    }
}

#[test]
fn an_attempt_limit_of_one_ends_the_connection_at_the_first_failure() {
    let mut config = config(AuthProtocol::MsChapV2);
    let mut ppp = (*config.ppp).clone();
    ppp.auth.max_attempts = 1;
    config.ppp = Arc::new(ppp);
    let mut server = LoneServer::in_authentication(&config, 13);
    let challenge = server.client.chap_challenge().unwrap();
    server.send(&ScriptedClient::mschapv2_response(
        challenge, "alice", "wrong",
    ));
    answer(&mut server, 0);
    assert_eq!(
        server.client.chap_challenge(),
        None,
        "the Failure offers no retry (R=0)"
    );
    assert_eq!(close_reason(&mut server), Some("auth_attempts_exhausted"));
}

// ---- The `session` fuzz target's seeds ----

/// Runs every seed of fuzz/corpus/session through the fuzz driver (its
/// invariants are asserts), and checks that the seeds reach what they are
/// named for, so that the fuzzer starts from deep states.
#[test]
fn session_fuzz_seeds_hold_the_invariants_and_reach_their_states() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/session");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("seed_") {
            continue;
        }
        seen += 1;
        let summary = sstpd::testing::hostile::fuzz_session(&std::fs::read(&path).unwrap());
        if name.ends_with("_connect") {
            assert!(summary.server_established, "{name}: {summary:?}");
            assert_eq!(summary.authenticated.as_deref(), Some("alice"), "{name}");
            assert!(summary.server_ip > 0, "{name}: {summary:?}");
        }
        if name == "seed_pap_attack" {
            assert!(summary.requests >= 2, "{name}: {summary:?}");
            assert_ne!(summary.authenticated.as_deref(), Some("bob"), "{name}");
        }
        if name == "seed_mschapv2_wrong_password" {
            assert_eq!(summary.authenticated, None, "{name}");
            assert!(summary.requests >= 2, "{name}: {summary:?}");
        }
    }
    assert!(seen >= 5, "seeds in {}", dir.display());
}
