//! PEAP: the framing parser (what it parses it encodes back), the
//! bounded reassembly over fuzzed fragments, and the peer machine driven
//! with fuzzed EAP Requests through a transparent tunnel (the "TLS" passes
//! records through as plaintext), so that phase 2's compressed packets,
//! Extensions and Result TLVs are reached without a real handshake.
//!
//! Input: chunks, each a length octet and that many octets. A chunk whose
//! first octet is even is a PEAP Request's Type-Data (the next
//! Identifier); an odd one goes to the machine as a whole EAP packet.
//! Every chunk also goes to the parser and the reassembly.

#![no_main]

use std::sync::Arc;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sstpd::proto::auth::eap::EapPacket;
use sstpd::proto::auth::peap::{
    PeapError, PeapMessage, PeapTunnel, Reassembler, TunnelTls, TunnelTlsConnector,
    MAX_TLS_MESSAGE_LEN, TYPE_PEAP,
};
use sstpd::proto::auth::{seeded_rng, AuthClient, AuthConfig, AuthProtocol};

#[derive(Default)]
struct Transparent {
    received: Vec<u8>,
    sent: Vec<u8>,
    done: bool,
}

impl TunnelTls for Transparent {
    fn receive(&mut self, records: &[u8]) -> Result<(), PeapError> {
        if records.first() == Some(&0xff) {
            return Err(PeapError::Tls);
        }
        self.done = true;
        self.received.extend_from_slice(records);
        Ok(())
    }
    fn transmit(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.sent);
    }
    fn is_handshaking(&self) -> bool {
        !self.done
    }
    fn read_plaintext(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.received);
    }
    fn write_plaintext(&mut self, plaintext: &[u8]) {
        self.sent.extend_from_slice(plaintext);
    }
    fn export_msk(&self) -> Option<[u8; 64]> {
        self.done.then_some([7; 64])
    }
}

struct TransparentConnector;

impl TunnelTlsConnector for TransparentConnector {
    fn connect(&self) -> Result<Box<dyn TunnelTls>, PeapError> {
        let mut tunnel = Transparent::default();
        tunnel.sent.extend_from_slice(b"hello");
        Ok(Box::new(tunnel))
    }
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let config = AuthConfig {
        eap_peap: Some(PeapTunnel(Arc::new(TransparentConnector))),
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
        if let Ok(message) = PeapMessage::parse(chunk) {
            let mut out = Vec::new();
            message.encode(&mut out);
            assert_eq!(PeapMessage::parse(&out), Ok(message));
            if let Ok(Some(whole)) = reassembly.push(&message) {
                assert!(whole.len() <= MAX_TLS_MESSAGE_LEN);
            }
        }
        let packet = if chunk.first().is_some_and(|b| b % 2 == 0) {
            identifier = identifier.wrapping_add(1);
            EapPacket::Request {
                identifier,
                kind: TYPE_PEAP,
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
