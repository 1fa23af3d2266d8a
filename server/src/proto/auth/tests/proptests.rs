//! Property tests: every parser and both machines take arbitrary octets
//! without panicking, and what the codecs parse they encode back.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::proto::auth::chap::ChapPacket;
use crate::proto::auth::eap::EapPacket;
use crate::proto::auth::mschapv2::{parse_success_message, FailureMessage, ResponseValue};
use crate::proto::auth::pap::PapPacket;
use crate::proto::auth::{
    AuthAccept, AuthClient, AuthConfig, AuthDecision, AuthProtocol, AuthReject, AuthServer,
    MppeKeys, MsChapV2Proof, RejectReason,
};

fn protocol() -> impl Strategy<Value = AuthProtocol> {
    prop_oneof![
        Just(AuthProtocol::Pap),
        Just(AuthProtocol::ChapMd5),
        Just(AuthProtocol::MsChapV2),
        Just(AuthProtocol::EapMsChapV2),
    ]
}

/// Packets with a consistent header around arbitrary data, so that the
/// machines get past the length check most of the time.
fn packet() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        (
            0u8..9,
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..80)
        )
            .prop_map(|(code, identifier, data)| {
                let mut packet = vec![code, identifier];
                packet.extend_from_slice(&((data.len() + 4) as u16).to_be_bytes());
                packet.extend_from_slice(&data);
                packet
            }),
    ]
}

#[derive(Clone, Debug)]
enum Step {
    Packet(Vec<u8>),
    Wait(u16),
    Decide(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => packet().prop_map(Step::Packet),
        1 => any::<u16>().prop_map(Step::Wait),
        1 => any::<u8>().prop_map(Step::Decide),
    ]
}

fn decision(kind: u8) -> AuthDecision {
    match kind % 4 {
        0 => AuthDecision::Accept(AuthAccept::default()),
        1 => AuthDecision::Accept(AuthAccept {
            mschapv2: Some(MsChapV2Proof {
                authenticator_response: [kind; 20],
                keys: MppeKeys {
                    send: [1; 16],
                    receive: [2; 16],
                },
            }),
            framed_ipv4: None,
            ..AuthAccept::default()
        }),
        2 => AuthDecision::Reject(AuthReject {
            reason: RejectReason::AuthenticationFailure,
            message: "no".into(),
        }),
        _ => AuthDecision::Reject(AuthReject {
            reason: RejectReason::AccountDisabled,
            message: "x".repeat(usize::from(kind)),
        }),
    }
}

proptest! {
    #[test]
    fn pap_parse_round_trips(bytes in packet()) {
        if let Ok(packet) = PapPacket::parse(&bytes) {
            let mut encoded = Vec::new();
            packet.encode(&mut encoded);
            prop_assert_eq!(PapPacket::parse(&encoded), Ok(packet));
        }
    }

    #[test]
    fn chap_parse_round_trips(bytes in packet()) {
        if let Ok(packet) = ChapPacket::parse(&bytes) {
            let encoded = packet.to_vec();
            prop_assert_eq!(ChapPacket::parse(&encoded), Ok(packet));
        }
    }

    #[test]
    fn mschapv2_message_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let _ = parse_success_message(&bytes);
        let _ = ResponseValue::parse(&bytes);
        if let Ok(failure) = FailureMessage::parse(&bytes) {
            // What parses formats to something that parses the same way
            // (with C= and V= filled in).
            let again = FailureMessage::parse(&failure.to_bytes()).unwrap();
            prop_assert_eq!(again.error_code, failure.error_code);
            prop_assert_eq!(again.retry, failure.retry);
        }
    }

    #[test]
    fn failure_messages_round_trip(
        error_code in any::<u32>(),
        retry in any::<bool>(),
        challenge in any::<[u8; 16]>(),
        message in "[ -~]{0,60}",
    ) {
        let failure = FailureMessage {
            error_code,
            retry,
            challenge: Some(challenge),
            version: Some(3),
            message,
        };
        prop_assert_eq!(FailureMessage::parse(&failure.to_bytes()), Ok(failure));
    }

    #[test]
    fn machines_never_panic(
        protocol in protocol(),
        seed in any::<u64>(),
        steps in proptest::collection::vec(step(), 0..24),
    ) {
        let start = Instant::now();
        let mut now = start;
        let mut rng = StdRng::seed_from_u64(seed);
        let config = AuthConfig::default();
        let mut server = AuthServer::new(protocol, &config, now, &mut rng);
        let mut client = AuthClient::new(protocol, &config, "user", b"pw", now, &mut rng);
        let mut buf = Vec::new();
        for step in steps {
            match step {
                Step::Packet(packet) => {
                    let _ = server.handle_packet(now, &packet);
                    let _ = client.handle_packet(now, &packet);
                }
                Step::Wait(millis) => {
                    now += Duration::from_millis(u64::from(millis));
                    server.handle_timeout(now);
                    client.handle_timeout(now);
                }
                Step::Decide(kind) => server.decide(now, decision(kind)),
            }
            // Deadlines never lie in the past of a handled timeout.
            for deadline in [server.poll_timeout(), client.poll_timeout()].into_iter().flatten() {
                prop_assert!(deadline > start);
            }
            while server.poll_transmit(&mut buf) {}
            while client.poll_transmit(&mut buf) {}
            while server.poll_event().is_some() {}
            while client.poll_event().is_some() {}
            buf.clear();
        }
    }

    #[test]
    fn client_replies_parse(protocol in protocol(), seed in any::<u64>(), challenge in packet()) {
        // Whatever a client sends in answer to anything is a packet its own
        // codec accepts.
        let now = Instant::now();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut client = AuthClient::new(protocol, &AuthConfig::default(), "user", b"pw", now, &mut rng);
        let _ = client.handle_packet(now, &challenge);
        let mut buf = Vec::new();
        while client.poll_transmit(&mut buf) {
            match protocol {
                AuthProtocol::Pap => prop_assert!(PapPacket::parse(&buf).is_ok()),
                AuthProtocol::EapMsChapV2 => prop_assert!(EapPacket::parse(&buf).is_ok()),
                _ => prop_assert!(ChapPacket::parse(&buf).is_ok()),
            }
            buf.clear();
        }
    }
}
