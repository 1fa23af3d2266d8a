//! PAP, CHAP-MD5, MS-CHAPv2 and EAP with EAP-MSCHAPv2: every packet parser
//! on the raw input (EAP and EAP-MSCHAPv2 must encode back what they parse), then
//! a server and a client of the method the first octet picks (bit 6: EAP
//! relayed to the authenticator), driven by the
//! rest: fuzzed packets, relayed genuine packets (optionally corrupted),
//! decisions and clock jumps, so that the fuzzer reaches every state.
//!
//! Input after the selector octet is a list of operations, one octet each
//! (`op % 8`), some followed by operands:
//! 0: advance the clock by `op / 8` seconds and fire both timers;
//! 1: decide the oldest pending request (kind `op / 8`: the local users,
//!    accept, reject, or relayed EAP's Challenge and keyed accept);
//! 2: relay everything queued both ways;
//! 3: relay, flipping bit `op / 8` of the next octet-indexed position;
//! 4..=7: a length octet and that many octets, fed to both machines.

#![no_main]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sstpd::proto::auth::chap::ChapPacket;
use sstpd::proto::auth::eap::{EapPacket, MsChapV2Data};
use sstpd::proto::auth::mschapv2::{self, FailureMessage, ResponseValue};
use sstpd::proto::auth::packet::RawPacket;
use sstpd::proto::auth::pap::PapPacket;
use sstpd::proto::auth::{
    seeded_rng, AuthAccept, AuthChallenge, AuthClient, AuthConfig, AuthDecision, AuthEvent,
    AuthProtocol, AuthReject, AuthRequest, AuthServer, LocalAuthenticator, Msk, RejectReason,
};
use sstpd::testing::StaticPasswords;

fn parsers(data: &[u8]) {
    let _ = RawPacket::parse(data);
    if let Ok(packet) = PapPacket::parse(data) {
        let mut out = Vec::new();
        packet.encode(&mut out);
        assert_eq!(PapPacket::parse(&out), Ok(packet));
    }
    if let Ok(packet) = ChapPacket::parse(data) {
        let out = packet.to_vec();
        assert_eq!(ChapPacket::parse(&out), Ok(packet));
    }
    if let Ok(packet) = EapPacket::parse(data) {
        assert_eq!(EapPacket::parse(&packet.to_vec()), Ok(packet));
    }
    for request in [true, false] {
        if let Ok(parsed) = MsChapV2Data::parse(data, request) {
            assert_eq!(MsChapV2Data::parse(&parsed.to_vec(), request), Ok(parsed));
        }
    }
    let _ = mschapv2::parse_success_message(data);
    let _ = ResponseValue::parse(data);
    if let Ok(failure) = FailureMessage::parse(data) {
        let again = FailureMessage::parse(&failure.to_bytes()).expect("own failure message");
        assert_eq!(again.error_code, failure.error_code);
        assert_eq!(again.retry, failure.retry);
    }
}

fn decision(
    kind: u8,
    request: &AuthRequest,
    local: &LocalAuthenticator<StaticPasswords>,
) -> AuthDecision {
    match kind % 6 {
        0 => local.decide(request),
        // Relayed EAP's answers (any other method refuses a Challenge).
        4 => AuthDecision::Challenge(AuthChallenge {
            eap_request: EapPacket::Request {
                identifier: kind,
                kind: 1,
                data: b"",
            }
            .to_vec(),
            state: Some(vec![kind]),
        }),
        5 => AuthDecision::Accept(AuthAccept {
            eap_msk: Some(Msk(vec![kind; 64])),
            ..AuthAccept::default()
        }),
        1 => AuthDecision::Accept(AuthAccept::default()),
        2 => AuthDecision::Reject(AuthReject {
            reason: RejectReason::AuthenticationFailure,
            message: "denied".into(),
        }),
        _ => AuthDecision::Reject(AuthReject {
            reason: RejectReason::PasswordExpired,
            message: "expired".into(),
        }),
    }
}

fn relay(
    server: &mut AuthServer,
    client: &mut AuthClient,
    now: Instant,
    corrupt: Option<(usize, u8)>,
) {
    let mut buf = Vec::new();
    for _ in 0..8 {
        let mut moved = false;
        while client.poll_transmit(&mut buf) {
            moved = true;
            if let Some((at, bit)) = corrupt {
                let len = buf.len();
                if len > 0 {
                    buf[at % len] ^= 1 << (bit % 8);
                }
            }
            let _ = server.handle_packet(now, &buf);
            buf.clear();
        }
        while server.poll_transmit(&mut buf) {
            moved = true;
            let _ = client.handle_packet(now, &buf);
            buf.clear();
        }
        if !moved {
            break;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    parsers(data);

    let Some((&selector, mut input)) = data.split_first() else {
        return;
    };
    let protocol = match selector % 4 {
        0 => AuthProtocol::Pap,
        1 => AuthProtocol::ChapMd5,
        2 => AuthProtocol::MsChapV2,
        _ => AuthProtocol::EapMsChapV2,
    };
    let mut store = StaticPasswords::new();
    store.insert("user", "password");
    let local = LocalAuthenticator::new(store);
    // Bit 6 of the selector: EAP relayed to the authenticator.
    let config = AuthConfig {
        eap_relay: selector & 0x40 != 0,
        ..AuthConfig::default()
    };
    let start = Instant::now();
    let mut now = start;
    let mut rng = seeded_rng(u64::from(selector));
    let mut server = AuthServer::new(protocol, &config, now, &mut rng);
    let password: &[u8] = if selector & 0x80 == 0 {
        b"password"
    } else {
        b"wrong"
    };
    let mut client = AuthClient::new(protocol, &config, "user", password, now, &mut rng);
    let mut requests = VecDeque::new();

    while let Some((&op, rest)) = input.split_first() {
        input = rest;
        let operand = op / 8;
        match op % 8 {
            0 => {
                now += Duration::from_secs(u64::from(operand));
                server.handle_timeout(now);
                client.handle_timeout(now);
            }
            1 => {
                if let Some(request) = requests.pop_front() {
                    server.decide(now, decision(operand, &request, &local));
                }
            }
            2 => relay(&mut server, &mut client, now, None),
            3 => {
                let Some((&at, rest)) = input.split_first() else {
                    break;
                };
                input = rest;
                relay(
                    &mut server,
                    &mut client,
                    now,
                    Some((usize::from(at), operand)),
                );
            }
            _ => {
                let Some((&len, rest)) = input.split_first() else {
                    break;
                };
                let (packet, rest) = rest.split_at(usize::from(len).min(rest.len()));
                input = rest;
                let _ = server.handle_packet(now, packet);
                let _ = client.handle_packet(now, packet);
            }
        }
        for deadline in [server.poll_timeout(), client.poll_timeout()]
            .into_iter()
            .flatten()
        {
            assert!(deadline > start);
        }
        while let Some(event) = server.poll_event() {
            if let AuthEvent::Request(request) = event {
                requests.push_back(request);
            }
        }
        while let Some(event) = client.poll_event() {
            if let AuthEvent::Success { hlak, .. } = event {
                // The HLAK a client reports is the one of its own keys
                // (MS-CHAPv2; EAP-MSCHAPv2's MSK gives the same octets),
                // or zero for methods without keys.
                match client.mppe_keys() {
                    Some(keys) => assert_eq!(hlak, keys.client_hlak()),
                    None => assert_eq!(hlak, [0u8; 32]),
                }
            }
        }
    }
});
