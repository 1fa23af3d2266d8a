//! The EAP-TLS family (PEAP, EAP-TLS): the framing parser (what it parses
//! it encodes back), the bounded reassembly over fuzzed fragments, and the
//! peer machines driven with fuzzed EAP Requests through a transparent
//! tunnel (the "TLS" passes records through as plaintext; records starting
//! 0x15 are the authenticator's alert, 0xff our refusal), so that PEAP's
//! phase 2 (compressed packets, Extensions and Result TLVs) and EAP-TLS's
//! alerts and Success are reached without a real handshake.
//!
//! Input: a method octet (even: PEAP, odd: EAP-TLS), then chunks, each a
//! length octet and that many octets. A chunk whose first octet is even is
//! a Request's Type-Data of the method (the next Identifier); an odd one
//! goes to the machine as a whole EAP packet. Every chunk also goes to the
//! parser and the reassembly.

#![no_main]

use std::sync::Arc;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sstpd::proto::auth::eap::EapPacket;
use sstpd::proto::auth::eap_tls::TYPE_EAP_TLS;
use sstpd::proto::auth::peap::TYPE_PEAP;
use sstpd::proto::auth::tls_framing::{EapTlsMessage, Reassembler, TlsTunnel, MAX_TLS_MESSAGE_LEN};
use sstpd::proto::auth::{seeded_rng, AuthClient, AuthConfig, AuthProtocol, EapPeerMethod};
use sstpd::testing::tunnel_tls::TransparentConnector;

fuzz_target!(|data: &[u8]| {
    // The first octet picks the method: PEAP or EAP-TLS, on the same
    // framing.
    let Some((&method, data)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let tunnel = TlsTunnel(Arc::new(TransparentConnector::default()));
    let (eap_peer, kind) = if method % 2 == 0 {
        (EapPeerMethod::Peap(tunnel), TYPE_PEAP)
    } else {
        (EapPeerMethod::Tls(tunnel), TYPE_EAP_TLS)
    };
    let config = AuthConfig {
        eap_peer,
        ..AuthConfig::default()
    };
    let mut rng = seeded_rng(3);
    let mut client = AuthClient::new(
        AuthProtocol::EapMsChapV2,
        &config,
        "alice",
        b"pw",
        now,
        &mut rng,
    );
    let mut reassembly = Reassembler::default();
    let mut identifier = 0u8;
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let (chunk, next) = tail.split_at(tail.len().min(usize::from(len)));
        rest = next;
        if let Ok(message) = EapTlsMessage::parse(chunk) {
            let mut out = Vec::new();
            message.encode(&mut out);
            assert_eq!(EapTlsMessage::parse(&out), Ok(message));
            if let Ok(Some(whole)) = reassembly.push(&message) {
                assert!(whole.len() <= MAX_TLS_MESSAGE_LEN);
            }
        }
        let packet = if chunk.first().is_some_and(|b| b % 2 == 0) {
            identifier = identifier.wrapping_add(1);
            EapPacket::Request {
                identifier,
                kind,
                data: chunk,
            }
            .to_vec()
        } else {
            chunk.to_vec()
        };
        let _ = client.handle_packet(now, &packet);
        let mut out = Vec::new();
        while client.poll_transmit(&mut out) {
            assert!(EapPacket::parse(&out).is_ok());
            out.clear();
        }
        while client.poll_event().is_some() {}
    }
});
