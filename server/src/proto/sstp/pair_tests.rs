//! A server and a client wired back to back in memory, on a virtual clock
//! (the common harness, [`crate::testing::pair`]): each side's
//! `poll_transmit` output goes into the other's `handle_input`, and time
//! jumps to the earliest `poll_timeout`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::binding::CertHashes;
use super::config::{SstpConfig, UNSUPPORTED_TEST_PROTOCOL};
use super::connection::*;
use super::http::{ClientHandshake, HttpError, HttpResponseError};
use super::test_vectors::*;
use super::transmit::Transmit;
use super::wire::*;
use super::BindingError;
use crate::testing::pair::{self, Direction, SstpEnd, TamperFn};

const NONCE: [u8; 32] = [0x5a; 32];
const CERT_DER: &[u8] = b"0\x82 a server certificate, DER-encoded";
const CORRELATION_ID: &str = "{6BAA1E45-9937-77B0-567472AB}";

fn cert() -> CertHashes {
    CertHashes::of_der(CERT_DER)
}

/// Both connections on the common harness, every transmission recorded
/// (`pair.server.sent`, `pair.client.sent`).
type Pair = pair::Pair<SstpEnd, SstpEnd>;

impl Pair {
    fn new(server_config: SstpConfig, client_config: SstpConfig) -> Self {
        Self::with_client_view(server_config, client_config, cert())
    }

    /// `client_cert`: the certificate hashes the client believes it saw.
    fn with_client_view(
        server_config: SstpConfig,
        client_config: SstpConfig,
        client_cert: CertHashes,
    ) -> Self {
        let base = Instant::now();
        let server = SstpConnection::server(Arc::new(server_config), base, cert(), NONCE);
        let handshake = ClientHandshake::new("127.0.0.1", CORRELATION_ID).unwrap();
        let client = SstpConnection::client(Arc::new(client_config), base, handshake, client_cert);
        pair::Pair::between(SstpEnd { conn: server }, SstpEnd { conn: client }, base).recording()
    }

    fn default() -> Self {
        Self::new(SstpConfig::default(), SstpConfig::default())
    }

    /// Runs timers until both sides are closed (bounded).
    fn run_to_close(&mut self) {
        self.drive_now();
        for _ in 0..100 {
            if self.server.conn.is_closed() && self.client.conn.is_closed() {
                return;
            }
            if !self.advance() {
                break;
            }
        }
        assert!(
            self.server.conn.is_closed(),
            "server: {:?}",
            self.server.conn
        );
        assert!(
            self.client.conn.is_closed(),
            "client: {:?}",
            self.client.conn
        );
    }

    /// Runs timers until the server is closed (bounded).
    fn run_server_to_close(&mut self) {
        for _ in 0..100 {
            if self.server.conn.is_closed() {
                return;
            }
            assert!(self.advance(), "no timer left: {:?}", self.server.conn);
        }
        panic!("the server never closed");
    }

    /// HTTP, Call Connect Request and Acknowledge.
    fn connect(&mut self) {
        self.drive_now();
        assert_eq!(
            self.server.conn.state(),
            SstpState::ServerCallConnectedPending
        );
        assert_eq!(
            self.client.conn.state(),
            SstpState::ClientConnectAckReceived
        );
    }

    /// Connects, then hands each side its HLAK.
    fn connect_with_hlaks(&mut self, server: [u8; 32], client: [u8; 32]) {
        self.connect();
        self.server.conn.set_hlak(self.now, server);
        self.client.conn.set_hlak(self.now, client);
        self.drive_now();
    }

    /// Through Call Connected, both sides with `hlak`.
    fn establish(&mut self, hlak: [u8; 32]) {
        self.connect_with_hlaks(hlak, hlak);
        assert!(
            self.server.conn.is_established(),
            "{:?}",
            self.server.events
        );
        assert!(
            self.client.conn.is_established(),
            "{:?}",
            self.client.events
        );
    }
}

/// The default configuration with `change` applied.
fn config(change: impl FnOnce(&mut SstpConfig)) -> SstpConfig {
    let mut config = SstpConfig::default();
    change(&mut config);
    config
}

fn abort_bytes(attrib_id: u8, status: Status) -> Vec<u8> {
    let mut out = Vec::new();
    encode_call_abort(Some(StatusInfo::new(attrib_id, status)), &mut out);
    out
}

/// Applies `change` to what the server sends, in flight.
fn to_client(mut change: impl FnMut(&mut Vec<u8>) + 'static) -> TamperFn {
    Box::new(move |direction, bytes| {
        if direction == Direction::ServerToClient {
            change(bytes)
        }
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The happy path, checked byte for byte on both directions.
#[test]
fn happy_path_with_zero_hlak() {
    let mut pair = Pair::default();
    pair.establish([0; 32]);

    let mut client_expected = SSTPC_REQUEST.to_vec();
    client_expected.extend_from_slice(&hex(CONNECT_REQUEST));
    let call_connected =
        super::binding::build_call_connected(HashProtocol::Sha256, &NONCE, &cert(), &[0; 32]);
    client_expected.extend_from_slice(&call_connected);
    assert_eq!(pair.client.sent, client_expected);

    let mut server_expected = b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\nServer: Microsoft-HTTPAPI/2.0\r\n\r\n".to_vec();
    server_expected.extend_from_slice(&hex("10 01 00 30 00 02 00 01 00 04 00 28 00 00 00 03"));
    server_expected.extend_from_slice(&NONCE);
    assert_eq!(pair.server.sent, server_expected);

    assert_eq!(
        pair.server.events,
        vec![
            SstpEvent::PppReady,
            SstpEvent::Established {
                hash_protocol: HashProtocol::Sha256
            }
        ]
    );
    assert_eq!(pair.client.events, pair.server.events);
    assert_eq!(pair.server.conn.correlation_id(), Some(CORRELATION_ID));
    assert_eq!(pair.client.conn.correlation_id(), Some(CORRELATION_ID));
    assert_eq!(pair.server.conn.hash_protocol(), Some(HashProtocol::Sha256));
    assert_eq!(pair.server.conn.role(), crate::proto::Role::Server);
    // The Hello timer runs.
    assert_eq!(
        pair.server.conn.poll_timeout(),
        Some(pair.now + Duration::from_secs(60))
    );
}

#[test]
fn call_connected_before_the_servers_hlak_is_kept_and_verified_later() {
    let hlak = [0x42; 32];
    let mut pair = Pair::default();
    pair.connect();
    pair.client.conn.set_hlak(pair.now, hlak);
    pair.drive_now();
    assert!(pair.client.conn.is_established());
    assert!(!pair.server.conn.is_established(), "no HLAK yet");
    assert_eq!(
        pair.server.conn.state(),
        SstpState::ServerCallConnectedPending
    );
    pair.server.conn.set_hlak(pair.now, hlak);
    pair.drive_now();
    assert!(pair.server.conn.is_established());
    assert!(pair.server.events.contains(&SstpEvent::Established {
        hash_protocol: HashProtocol::Sha256
    }));
}

#[test]
fn non_zero_hlak_known_to_the_server_first() {
    let hlak = [0x17; 32];
    let mut pair = Pair::default();
    pair.connect();
    pair.server.conn.set_hlak(pair.now, hlak);
    pair.client.conn.set_hlak(pair.now, hlak);
    pair.drive_now();
    assert!(pair.server.conn.is_established());
    assert!(pair.client.conn.is_established());
}

#[test]
fn client_with_hlak_before_the_ack_sends_call_connected_on_the_ack() {
    let mut pair = Pair::default();
    pair.client.conn.set_hlak(pair.now, [0; 32]);
    pair.server.conn.set_hlak(pair.now, [0; 32]);
    pair.drive_now();
    assert!(pair.client.conn.is_established());
    assert!(pair.server.conn.is_established());
}

#[test]
fn sha1_only_server() {
    let server_config = config(|c| c.server_hash_protocols = HashProtocols::SHA1);
    let mut pair = Pair::new(server_config, SstpConfig::default());
    pair.establish([0x33; 32]);
    assert_eq!(pair.server.conn.hash_protocol(), Some(HashProtocol::Sha1));
    assert_eq!(pair.client.conn.hash_protocol(), Some(HashProtocol::Sha1));
    // The ACK offers SHA-1 only; the Call Connected says SHA-1 and carries
    // the 20-byte certificate hash followed by 12 zero bytes.
    let ack_at = pair.server.sent.len() - 48;
    assert_eq!(pair.server.sent[ack_at + 15], 0x01);
    let call_connected = &pair.client.sent[pair.client.sent.len() - 112..];
    assert_eq!(call_connected[15], 0x01);
    assert_eq!(&call_connected[48..68], &cert().sha1);
    assert_eq!(&call_connected[68..80], &[0; 12]);
    assert_eq!(&call_connected[100..112], &[0; 12]);
}

#[test]
fn sha256_only_server() {
    let server_config = config(|c| c.server_hash_protocols = HashProtocols::SHA256);
    let mut pair = Pair::new(server_config, SstpConfig::default());
    pair.establish([0x33; 32]);
    assert_eq!(pair.server.conn.hash_protocol(), Some(HashProtocol::Sha256));
    let ack_at = pair.server.sent.len() - 48;
    assert_eq!(pair.server.sent[ack_at + 15], 0x02);
    let call_connected = &pair.client.sent[pair.client.sent.len() - 112..];
    assert_eq!(&call_connected[48..80], &cert().sha256);
}

#[test]
fn sha1_only_client_against_a_sha256_only_server_aborts() {
    let server_config = config(|c| c.server_hash_protocols = HashProtocols::SHA256);
    let client_config = config(|c| c.client_hash_protocols = HashProtocols::SHA1);
    let mut pair = Pair::new(server_config, client_config);
    pair.run_to_close();
    assert_eq!(
        pair.client.closed_reason(),
        Some(&CloseReason::LocalAbort(AbortReason::NoCommonHashProtocol))
    );
    assert!(pair.client.sent.ends_with(&abort_bytes(
        AttributeId::CryptoBindingReq.as_u8(),
        Status::ValueNotSupported
    )));
    assert_eq!(
        pair.server.closed_reason(),
        Some(&CloseReason::PeerAbort {
            status: Some(Status::ValueNotSupported)
        })
    );
}

/// The three crypto binding failures, each with its own reason and the
/// Call Abort of [MS-SSTP] 3.3.5.2.3.
fn assert_binding_rejected(pair: &mut Pair, error: BindingError) {
    assert!(!pair.server.conn.is_established());
    let expected_abort = abort_bytes(
        AttributeId::CryptoBinding.as_u8(),
        Status::ValueNotSupported,
    );
    assert_eq!(
        expected_abort,
        hex("10 01 00 14 00 05 00 01 00 02 00 0c 00 00 00 03 00 00 00 04")
    );
    assert!(pair.server.sent.ends_with(&expected_abort));
    assert!(pair
        .server
        .events
        .contains(&SstpEvent::Closing(CloseReason::LocalAbort(
            AbortReason::CryptoBinding(error)
        ))));
    assert_eq!(AbortReason::CryptoBinding(error).as_str(), error.as_str());
    pair.run_to_close();
    assert_eq!(
        pair.server.closed_reason(),
        Some(&CloseReason::LocalAbort(AbortReason::CryptoBinding(error)))
    );
    assert_eq!(
        pair.client.closed_reason(),
        Some(&CloseReason::PeerAbort {
            status: Some(Status::ValueNotSupported)
        })
    );
    // The peer answered with its Call Abort, so the server waited 1 s, not 3.
    assert_eq!(pair.elapsed(), Duration::from_secs(1));
}

#[test]
fn wrong_nonce_is_rejected() {
    let mut pair = Pair::default();
    // Change the nonce of the Call Connect Acknowledge in flight: the client
    // echoes a nonce the server never sent.
    pair.tamper = Some(to_client(|bytes: &mut Vec<u8>| {
        if let Some(at) = bytes
            .windows(6)
            .position(|w| w == [0x10, 0x01, 0x00, 0x30, 0x00, 0x02])
        {
            bytes[at + 47] ^= 0xff;
        }
    }));
    pair.connect_with_hlaks([0; 32], [0; 32]);
    assert_binding_rejected(&mut pair, BindingError::WrongNonce);
}

#[test]
fn wrong_certificate_hash_is_rejected() {
    // The client saw another certificate (a man in the middle's).
    let mut pair = Pair::with_client_view(
        SstpConfig::default(),
        SstpConfig::default(),
        CertHashes::of_der(b"the attacker's certificate"),
    );
    pair.connect_with_hlaks([0; 32], [0; 32]);
    assert_binding_rejected(&mut pair, BindingError::WrongCertHash);
}

#[test]
fn wrong_mac_is_rejected() {
    let mut pair = Pair::default();
    pair.connect_with_hlaks([0x01; 32], [0x02; 32]);
    assert_binding_rejected(&mut pair, BindingError::WrongMac);
}

#[test]
fn hash_protocol_not_offered_is_rejected() {
    let server_config = config(|c| c.server_hash_protocols = HashProtocols::SHA256);
    let mut pair = Pair::new(server_config, SstpConfig::default());
    // Rewrite the offer in flight to SHA-1: the client answers with SHA-1,
    // which the server did not offer.
    pair.tamper = Some(to_client(|bytes: &mut Vec<u8>| {
        if let Some(at) = bytes
            .windows(6)
            .position(|w| w == [0x10, 0x01, 0x00, 0x30, 0x00, 0x02])
        {
            bytes[at + 15] = 0x01;
        }
    }));
    pair.establish_client_only();
    assert_binding_rejected(&mut pair, BindingError::HashProtocolNotOffered);
}

impl Pair {
    fn establish_client_only(&mut self) {
        self.connect_with_hlaks([0; 32], [0; 32]);
        // The client sent Call Connected (and then got the server's abort).
        assert!(self.client.events.contains(&SstpEvent::Established {
            hash_protocol: HashProtocol::Sha1
        }));
    }
}

#[test]
fn nak_and_retry() {
    let client_config = config(|c| c.client_unsupported_proposals = 1);
    let mut pair = Pair::new(SstpConfig::default(), client_config);
    pair.establish([0; 32]);
    // The first request proposed protocol 2; the NAK names the attribute,
    // the status and echoes the value ([MS-SSTP] 2.2.8, 2.2.12).
    let mut first_request = Vec::new();
    encode_call_connect_request(UNSUPPORTED_TEST_PROTOCOL, &mut first_request);
    assert!(contains(&pair.client.sent, &first_request));
    assert!(contains(
        &pair.server.sent,
        &hex("10 01 00 16 00 03 00 01 00 02 00 0e 00 00 00 01 00 00 00 04 00 02")
    ));
    assert!(pair.server.events.contains(&SstpEvent::NakSent {
        status: Status::ValueNotSupported
    }));
    assert!(pair.client.events.contains(&SstpEvent::NakReceived {
        status: Status::ValueNotSupported
    }));
}

#[test]
fn server_aborts_after_three_naks() {
    let client_config = config(|c| c.client_unsupported_proposals = 10);
    let mut pair = Pair::new(SstpConfig::default(), client_config);
    pair.run_to_close();
    let naks = pair
        .server
        .events
        .iter()
        .filter(|e| matches!(e, SstpEvent::NakSent { .. }))
        .count();
    assert_eq!(naks, 3);
    assert!(pair.server.sent.ends_with(&abort_bytes(
        AttributeId::StatusInfo.as_u8(),
        Status::RetryCountExceeded
    )));
    assert_eq!(
        pair.server.closed_reason(),
        Some(&CloseReason::LocalAbort(AbortReason::RetryCountExceeded))
    );
    assert_eq!(
        pair.client.closed_reason(),
        Some(&CloseReason::PeerAbort {
            status: Some(Status::RetryCountExceeded)
        })
    );
}

#[test]
fn client_gives_up_after_its_retries() {
    let server_config = config(|c| c.server_max_naks = 10);
    let client_config = config(|c| {
        c.client_unsupported_proposals = 10;
        c.client_connect_retries = 2;
    });
    let mut pair = Pair::new(server_config, client_config);
    pair.run_to_close();
    let requests = pair
        .client
        .sent
        .windows(6)
        .filter(|w| *w == [0x10, 0x01, 0x00, 0x0e, 0x00, 0x01])
        .count();
    assert_eq!(requests, 3, "the first request and 2 retries");
    assert_eq!(
        pair.client.closed_reason(),
        Some(&CloseReason::LocalAbort(AbortReason::RetryCountExceeded))
    );
}

#[test]
fn ppp_frames_pass_both_ways_once_ppp_may_run() {
    let mut pair = Pair::default();
    let mut out = Transmit::new();
    // Before the ACK: not ready.
    assert_eq!(
        pair.client.conn.send_ppp(&[0xc0, 0x21, 1], &mut out),
        Err(SendError::NotReady)
    );
    assert!(!pair.server.conn.ppp_ready());
    pair.connect();
    assert!(pair.server.conn.ppp_ready() && pair.client.conn.ppp_ready());
    assert!(!pair.server.conn.is_established());
    // LCP before Call Connected: control frames flow.
    let lcp = [0xff, 0x03, 0xc0, 0x21, 0x01, 0x01, 0x00, 0x04];
    pair.client.conn.send_ppp(&lcp, &mut out).unwrap();
    assert_eq!(out[..4], [0x10, 0x00, 0x00, 0x0c]);
    pair.server.receive(pair.now, &out);
    assert_eq!(pair.server.delivered, vec![lcp.to_vec()]);

    pair.server.conn.set_hlak(pair.now, [0; 32]);
    pair.client.conn.set_hlak(pair.now, [0; 32]);
    pair.drive_now();
    let big = vec![0x21; MAX_PPP_FRAME_LEN];
    let mut out = Transmit::new();
    pair.server.conn.send_ppp(&big, &mut out).unwrap();
    pair.server.conn.send_ppp(&[0x21, 0x45], &mut out).unwrap();
    assert_eq!(out[..4], [0x10, 0x00, 0x0f, 0xff]);
    pair.client.receive(pair.now, &out);
    assert_eq!(pair.client.delivered, vec![big.clone(), vec![0x21, 0x45]]);

    assert_eq!(
        pair.server
            .conn
            .send_ppp(&vec![0; MAX_PPP_FRAME_LEN + 1], &mut out),
        Err(SendError::FrameTooLarge {
            len: MAX_PPP_FRAME_LEN + 1
        })
    );
    assert_eq!(
        pair.server.conn.send_ppp(&[], &mut out),
        Err(SendError::EmptyFrame)
    );
    pair.server.conn.close(pair.now);
    assert_eq!(
        pair.server.conn.send_ppp(&[1], &mut out),
        Err(SendError::Closed)
    );
}

#[test]
fn send_ppp_flushes_queued_control_bytes_first() {
    let mut pair = Pair::default();
    // Deliver the request only: the server queues the 200 and the ACK.
    let mut request = Transmit::new();
    pair.client.conn.poll_transmit(pair.now, &mut request);
    pair.server.receive(pair.now, &request);
    let mut to_server = Transmit::new();
    pair.client.receive(pair.now, b"HTTP/1.1 200 OK\r\n\r\n");
    pair.client.conn.poll_transmit(pair.now, &mut to_server);
    pair.server.receive(pair.now, &to_server);
    assert!(pair.server.conn.state().ppp_ready());
    let mut out = Transmit::new();
    pair.server
        .conn
        .send_ppp(&[0xc0, 0x21, 0x01], &mut out)
        .unwrap();
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(out.ends_with(&[0x10, 0x00, 0x00, 0x07, 0xc0, 0x21, 0x01]));
    let mut rest = Transmit::new();
    pair.server.conn.poll_transmit(pair.now, &mut rest);
    assert!(rest.is_empty());
}

#[test]
fn everything_delivered_one_byte_at_a_time() {
    let mut pair = Pair::default();
    pair.chunk = 1;
    pair.establish([0x99; 32]);
    let frames = [
        vec![0xc0, 0x21, 0x09, 0x01, 0x00, 0x08, 1, 2, 3, 4],
        vec![0x21; 1500],
    ];
    let mut out = Transmit::new();
    for frame in &frames {
        pair.client.conn.send_ppp(frame, &mut out).unwrap();
    }
    pair.server.receive_in_chunks(pair.now, &out, 1);
    assert_eq!(pair.server.delivered, frames.to_vec());
    let mut out = Transmit::new();
    for frame in &frames {
        pair.server.conn.send_ppp(frame, &mut out).unwrap();
    }
    pair.client.receive_in_chunks(pair.now, &out, 1);
    assert_eq!(pair.client.delivered, frames.to_vec());
}

#[test]
fn echo_keeps_an_idle_connection_alive() {
    let mut pair = Pair::default();
    pair.establish([0; 32]);
    let established_at = pair.now;
    // Both Hello timers expire at +60 s: both send an Echo Request, both
    // answer, the timers restart.
    assert!(pair.advance());
    assert_eq!(pair.now - established_at, Duration::from_secs(60));
    let echo_request = hex("10 01 00 08 00 08 00 00");
    let echo_response = hex("10 01 00 08 00 09 00 00");
    assert!(contains(&pair.server.sent, &echo_request));
    assert!(contains(&pair.server.sent, &echo_response));
    assert!(contains(&pair.client.sent, &echo_request));
    assert!(contains(&pair.client.sent, &echo_response));
    for _ in 0..5 {
        assert!(pair.advance());
    }
    assert!(pair.server.conn.is_established());
    assert!(pair.client.conn.is_established());
}

#[test]
fn hello_timeout_sends_an_echo_then_closes_without_call_abort() {
    let mut pair = Pair::default();
    pair.establish([0; 32]);
    // Nothing reaches either side any more.
    pair.loss = Some(Box::new(|_, _, _| true));
    let established_at = pair.now;
    let sent_before = pair.server.sent.len();
    assert!(pair.advance());
    assert_eq!(
        &pair.server.sent[sent_before..],
        &hex("10 01 00 08 00 08 00 00")[..]
    );
    assert!(pair.server.conn.is_established());
    assert!(pair.advance());
    assert_eq!(pair.now - established_at, Duration::from_secs(120));
    assert!(pair.server.conn.is_closed());
    assert_eq!(
        pair.server.closed_reason(),
        Some(&CloseReason::HelloTimeout)
    );
    assert_eq!(
        pair.server.sent.len(),
        sent_before + 8,
        "no Call Abort ([MS-SSTP] 3.1.2.3)"
    );
    assert_eq!(
        pair.client.closed_reason(),
        Some(&CloseReason::HelloTimeout)
    );
}

#[test]
fn any_packet_restarts_the_hello_timer() {
    let mut pair = Pair::default();
    pair.establish([0; 32]);
    pair.now += Duration::from_secs(59);
    let mut out = Transmit::new();
    pair.client.conn.send_ppp(&[0x21, 0x45], &mut out).unwrap();
    pair.server.receive(pair.now, &out);
    assert_eq!(
        pair.server.conn.poll_timeout(),
        Some(pair.now + Duration::from_secs(60))
    );
}

#[test]
fn abort_answered_by_the_peer_takes_one_second() {
    let mut pair = Pair::default();
    pair.establish([0; 32]);
    let start = pair.now;
    pair.server.conn.abort(pair.now, Status::NegotiationTimeout);
    assert!(!pair.server.conn.is_established());
    assert_eq!(pair.server.conn.state(), SstpState::CallAbortPending);
    pair.drive_now();
    // The client answered with its own Call Abort (Call_Abort_In_Progress_2).
    assert!(pair
        .client
        .sent
        .ends_with(&abort_bytes(2, Status::NegotiationTimeout)));
    assert_eq!(pair.server.conn.state(), SstpState::CallAbortTimeoutPending);
    assert_eq!(pair.client.conn.state(), SstpState::CallAbortTimeoutPending);
    pair.run_to_close();
    assert_eq!(pair.now - start, Duration::from_secs(1));
    assert_eq!(
        pair.server.closed_reason(),
        Some(&CloseReason::LocalAbort(AbortReason::Local(
            Status::NegotiationTimeout
        )))
    );
    assert_eq!(
        pair.client.closed_reason(),
        Some(&CloseReason::PeerAbort {
            status: Some(Status::NegotiationTimeout)
        })
    );
    assert!(pair
        .client
        .events
        .contains(&SstpEvent::Closing(CloseReason::PeerAbort {
            status: Some(Status::NegotiationTimeout)
        })));
}

#[test]
fn unanswered_abort_waits_three_seconds() {
    let mut pair = Pair::default();
    pair.establish([0; 32]);
    pair.loss = Some(Box::new(|direction, _, _| {
        direction == Direction::ServerToClient
    }));
    let start = pair.now;
    pair.server
        .conn
        .abort(pair.now, Status::InvalidFrameReceived);
    pair.drive_now();
    pair.run_server_to_close();
    assert_eq!(pair.now - start, Duration::from_secs(3));
}

#[test]
fn disconnect_acknowledged_closes_at_once_and_the_peer_after_one_second() {
    let mut pair = Pair::default();
    pair.establish([0; 32]);
    let start = pair.now;
    pair.server.conn.close(pair.now);
    pair.drive_now();
    // With a Status Info (sstp-client needs one), then the peer's ACK.
    assert!(pair.server.sent.ends_with(&hex(
        "10 01 00 14 00 06 00 01 00 02 00 0c 00 00 00 00 00 00 00 00"
    )));
    assert!(pair.client.sent.ends_with(&hex("10 01 00 08 00 07 00 00")));
    assert!(pair.server.conn.is_closed());
    assert_eq!(
        pair.server.closed_reason(),
        Some(&CloseReason::LocalDisconnect)
    );
    assert_eq!(
        pair.client.conn.state(),
        SstpState::CallDisconnectTimeoutPending
    );
    pair.run_to_close();
    assert_eq!(pair.now - start, Duration::from_secs(1));
    assert_eq!(
        pair.client.closed_reason(),
        Some(&CloseReason::PeerDisconnect {
            status: Some(Status::NoError)
        })
    );
}

#[test]
fn unacknowledged_disconnect_waits_five_seconds() {
    let mut pair = Pair::default();
    pair.establish([0; 32]);
    pair.loss = Some(Box::new(|direction, _, _| {
        direction == Direction::ServerToClient
    }));
    let start = pair.now;
    pair.server.conn.close(pair.now);
    pair.drive_now();
    pair.run_server_to_close();
    assert_eq!(pair.now - start, Duration::from_secs(5));
    assert_eq!(
        pair.server.closed_reason(),
        Some(&CloseReason::LocalDisconnect)
    );
}

#[test]
fn disconnect_collision_is_acknowledged_by_both() {
    let mut pair = Pair::default();
    pair.establish([0; 32]);
    pair.server.conn.close(pair.now);
    pair.client.conn.close(pair.now);
    pair.run_to_close();
    assert_eq!(
        pair.server.closed_reason(),
        Some(&CloseReason::LocalDisconnect)
    );
    assert_eq!(
        pair.client.closed_reason(),
        Some(&CloseReason::LocalDisconnect)
    );
    assert!(pair.server.sent.ends_with(&hex("10 01 00 08 00 07 00 00")));
}

#[test]
fn timers_are_configurable() {
    let config = config(|c| {
        c.abort_timer_1 = Duration::from_millis(300);
        c.disconnect_timer_1 = Duration::from_millis(700);
    });
    let mut pair = Pair::new(config.clone(), config);
    pair.establish([0; 32]);
    pair.loss = Some(Box::new(|direction, _, _| {
        direction == Direction::ServerToClient
    }));
    let start = pair.now;
    pair.server.conn.close(pair.now);
    pair.drive_now();
    pair.run_server_to_close();
    assert_eq!(pair.now - start, Duration::from_millis(700));
}

#[test]
fn negotiation_timeout_waiting_for_call_connected() {
    let mut pair = Pair::default();
    pair.connect();
    let ack_at = pair.now;
    // PPP authentication never completes: no HLAK on either side.
    assert!(pair.advance());
    assert_eq!(pair.now - ack_at, Duration::from_secs(60));
    // Both negotiation timers expire together: each sends a Call Abort.
    assert!(pair.server.sent.ends_with(&abort_bytes(
        AttributeId::StatusInfo.as_u8(),
        Status::NegotiationTimeout
    )));
    pair.run_to_close();
    assert_eq!(
        pair.server.closed_reason(),
        Some(&CloseReason::LocalAbort(AbortReason::NegotiationTimeout))
    );
}

#[test]
fn negotiation_timeout_counts_from_accept() {
    let config = config(|c| c.negotiation_timeout = Duration::from_secs(10));
    let base = Instant::now();
    let mut server = SstpConnection::server(Arc::new(config), base, cert(), NONCE);
    assert_eq!(server.poll_timeout(), Some(base + Duration::from_secs(10)));
    // The HTTP request arrives, the Call Connect Request does not.
    let t = base + Duration::from_secs(4);
    server.handle_input(t, SSTPC_REQUEST, &mut |_| {});
    assert_eq!(server.state(), SstpState::ServerConnectRequestPending);
    assert_eq!(server.poll_timeout(), Some(base + Duration::from_secs(10)));
    server.handle_timeout(base + Duration::from_secs(9));
    assert_eq!(server.state(), SstpState::ServerConnectRequestPending);
    server.handle_timeout(base + Duration::from_secs(10));
    assert_eq!(server.state(), SstpState::CallAbortPending);
    let mut out = Transmit::new();
    server.poll_transmit(t, &mut out);
    assert!(out.ends_with(&abort_bytes(2, Status::NegotiationTimeout)));
}

#[test]
fn http_request_that_never_completes_gets_408() {
    let base = Instant::now();
    let mut server = SstpConnection::server(Arc::new(SstpConfig::default()), base, cert(), NONCE);
    server.handle_input(base, b"SSTP_DUPLEX_POST /sra_", &mut |_| {});
    server.handle_timeout(base + Duration::from_secs(60));
    let mut out = Transmit::new();
    server.poll_transmit(base, &mut out);
    assert!(out.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"));
    assert!(server.is_closed());
    assert_eq!(
        server.poll_event(),
        Some(SstpEvent::Closed(CloseReason::HttpRequestRejected(
            HttpError::Timeout
        )))
    );
}

#[test]
fn client_gives_up_without_a_reply() {
    let base = Instant::now();
    let handshake = ClientHandshake::new("vpn", CORRELATION_ID).unwrap();
    let mut client =
        SstpConnection::client(Arc::new(SstpConfig::default()), base, handshake, cert());
    assert_eq!(client.poll_timeout(), Some(base + Duration::from_secs(60)));
    client.handle_timeout(base + Duration::from_secs(60));
    assert!(client.is_closed(), "the request is not sent any more");
    assert_eq!(
        client.poll_event(),
        Some(SstpEvent::Closed(CloseReason::HttpResponseRejected(
            HttpResponseError::Timeout
        )))
    );
}

/// A server fed raw bytes, for the rejection paths.
struct RawServer {
    conn: SstpConnection,
    now: Instant,
    ppp: Vec<Vec<u8>>,
}

impl RawServer {
    fn new() -> Self {
        let now = Instant::now();
        RawServer {
            conn: SstpConnection::server(Arc::new(SstpConfig::default()), now, cert(), NONCE),
            now,
            ppp: Vec::new(),
        }
    }

    /// Past HTTP (and the Call Connect Request when `connect`).
    fn connected(connect: bool) -> Self {
        let mut server = Self::new();
        server.input(SSTPC_REQUEST);
        if connect {
            server.input(&hex(CONNECT_REQUEST));
            assert_eq!(server.conn.state(), SstpState::ServerCallConnectedPending);
        }
        server.output();
        server.events();
        server
    }

    fn input(&mut self, bytes: &[u8]) {
        let ppp = &mut self.ppp;
        self.conn
            .handle_input(self.now, bytes, &mut |frame: &[u8]| {
                ppp.push(frame.to_vec())
            });
    }

    fn output(&mut self) -> Vec<u8> {
        let mut out = Transmit::new();
        self.conn.poll_transmit(self.now, &mut out);
        out.assert_whole_units();
        out.into_bytes()
    }

    fn events(&mut self) -> Vec<SstpEvent> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }
}

#[test]
fn request_and_connect_request_in_one_chunk() {
    let mut server = RawServer::new();
    let mut bytes = SSTPC_REQUEST.to_vec();
    bytes.extend_from_slice(&hex(CONNECT_REQUEST));
    server.input(&bytes);
    assert_eq!(server.conn.state(), SstpState::ServerCallConnectedPending);
    let out = server.output();
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(out.ends_with(&NONCE));
    assert_eq!(server.events(), vec![SstpEvent::PppReady]);
}

#[test]
fn http_errors_are_answered_and_close() {
    for (request, error) in [
        (
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            HttpError::NotFound,
        ),
        (
            &b"POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            HttpError::MethodNotAllowed,
        ),
        (
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
            HttpError::Malformed,
        ),
    ] {
        let mut server = RawServer::new();
        server.input(request);
        // Whatever follows is ignored.
        server.input(&hex(CONNECT_REQUEST));
        assert!(!server.conn.is_closed(), "the response is still queued");
        let out = server.output();
        let status_line = format!("HTTP/1.1 {} ", error.status_code());
        assert!(out.starts_with(status_line.as_bytes()), "{error:?}");
        assert!(server.conn.is_closed());
        let events = server.events();
        assert_eq!(
            events.last(),
            Some(&SstpEvent::Closed(CloseReason::HttpRequestRejected(error)))
        );
    }
}

#[test]
fn client_refuses_a_non_200_reply() {
    let mut pair = Pair::default();
    let mut request = Transmit::new();
    pair.client.conn.poll_transmit(pair.now, &mut request);
    pair.client
        .receive(pair.now, b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
    pair.client.collect_events(pair.now);
    assert!(pair.client.conn.is_closed());
    assert_eq!(
        pair.client.closed_reason(),
        Some(&CloseReason::HttpResponseRejected(
            HttpResponseError::Status(503)
        ))
    );
}

#[test]
fn framing_error_closes_without_sending() {
    let mut server = RawServer::connected(true);
    server.input(&[0x10, 0x01, 0x00, 0x02]);
    assert!(server.output().is_empty());
    assert!(server.conn.is_closed());
    assert_eq!(
        server.events(),
        vec![SstpEvent::Closed(CloseReason::Framing(
            super::DeframeError::LengthTooSmall { length: 2 }
        ))]
    );
    // Later input is ignored; Closed stays the last event.
    server.input(&hex("10 01 00 08 00 08 00 00"));
    assert!(server.output().is_empty());
    assert_eq!(server.events(), vec![]);
}

#[test]
fn connect_request_with_defects_gets_a_nak_listing_them() {
    let mut server = RawServer::connected(false);
    // Protocol 2, unknown attribute 9.
    server.input(&hex(
        "10 01 00 14 00 01 00 02 00 01 00 06 00 02 00 09 00 06 ab cd",
    ));
    assert_eq!(
        server.output(),
        hex("10 01 00 22 00 03 00 02
             00 02 00 0e 00 00 00 01 00 00 00 04 00 02
             00 02 00 0c 00 00 00 09 00 00 00 02")
    );
    assert_eq!(server.conn.state(), SstpState::ServerConnectRequestPending);
    // A request with a truncated attribute is refused the same way.
    server.input(&hex("10 01 00 0e 00 01 00 01 00 01 00 0f 00 01"));
    assert_eq!(
        server.output(),
        hex("10 01 00 14 00 03 00 01 00 02 00 0c 00 00 00 01 00 00 00 03")
    );
    // Then an acceptable one.
    server.input(&hex(CONNECT_REQUEST));
    assert_eq!(server.conn.state(), SstpState::ServerCallConnectedPending);
    let events = server.events();
    assert_eq!(
        events,
        vec![
            SstpEvent::NakSent {
                status: Status::ValueNotSupported
            },
            SstpEvent::NakSent {
                status: Status::InvalidAttribValueLength
            },
            SstpEvent::PppReady
        ]
    );
}

/// Feeds `input` to a server past HTTP (and past the Call Connect Request
/// when `connected`, with the HLAK known); checks that it answers with the
/// Call Abort `reason` calls for, and reports `reason`.
fn assert_server_aborts(connected: bool, input: &[u8], reason: AbortReason) {
    let mut server = RawServer::connected(connected);
    server.conn.set_hlak(server.now, [0; 32]);
    server.input(input);
    assert_eq!(
        server.output(),
        abort_bytes(reason.attrib_id(), reason.status()),
        "{reason:?}"
    );
    assert_eq!(
        server.events(),
        vec![SstpEvent::Closing(CloseReason::LocalAbort(reason))]
    );
    assert_eq!(server.conn.state(), SstpState::CallAbortPending);
}

#[test]
fn malformed_call_connected_aborts_with_attrib_not_supported() {
    // A Call Connected whose Crypto Binding attribute is 8 bytes long
    // ([MS-SSTP] 3.3.5.2.3: STATUS_INFO, ATTRIB_NOT_SUPPORTED_IN_MSG).
    let reason = AbortReason::InvalidCallConnected(WireError::InvalidAttributeLength {
        attribute: 3,
        length: 8,
    });
    assert_eq!(reason.status(), Status::AttribNotSupportedInMsg);
    assert_eq!(reason.attrib_id(), AttributeId::StatusInfo.as_u8());
    assert_server_aborts(
        true,
        &hex("10 01 00 10 00 04 00 01 00 03 00 08 00 00 00 02"),
        reason,
    );
}

#[test]
fn unexpected_messages_abort_with_unaccepted_frame() {
    let mut ack = Vec::new();
    encode_call_connect_ack(HashProtocols::BOTH, &NONCE, &mut ack);
    for (connected, input, message) in [
        // An Echo Request before Call Connected ([MS-SSTP] 3.3.5.2.7).
        (
            true,
            hex("10 01 00 08 00 08 00 00"),
            MessageType::EchoRequest,
        ),
        // A Call Connect Acknowledge sent to a server.
        (false, ack, MessageType::CallConnectAck),
        // A second Call Connect Request ([MS-SSTP] 3.3.5.2.2).
        (true, hex(CONNECT_REQUEST), MessageType::CallConnectRequest),
        // A Call Connected before the Call Connect Request.
        (
            false,
            hex(SHA256_CALL_CONNECTED),
            MessageType::CallConnected,
        ),
        // A Call Disconnect Acknowledge without a Call Disconnect.
        (
            true,
            hex("10 01 00 08 00 07 00 00"),
            MessageType::CallDisconnectAck,
        ),
    ] {
        let reason = AbortReason::UnexpectedMessage(message);
        assert_eq!(reason.status(), Status::UnacceptedFrameReceived);
        assert_server_aborts(connected, &input, reason);
    }
}

#[test]
fn malformed_packets_abort_with_the_errors_abort_status() {
    for (input, error) in [
        (
            "20 01 00 08 00 08 00 00",
            WireError::UnsupportedVersion(0x20),
        ),
        (
            "10 01 00 08 00 0c 00 00",
            WireError::UnknownMessageType(0x0c),
        ),
        (
            "10 01 00 08 00 08 00 01",
            WireError::AttributeCountMismatch { declared: 1 },
        ),
    ] {
        assert_server_aborts(true, &hex(input), AbortReason::InvalidPacket(error));
    }
}

#[test]
fn control_messages_during_abort_are_ignored_and_counted() {
    let mut server = RawServer::connected(true);
    server.conn.abort(server.now, Status::InvalidFrameReceived);
    server.output();
    server.events();
    server.input(&hex("10 01 00 08 00 08 00 00"));
    server.input(&hex("10 00 00 06 c0 21"));
    server.input(&hex("10 01 00 08 00 08 00 00"));
    assert!(server.output().is_empty());
    assert_eq!(
        server.events(),
        vec![
            SstpEvent::Dropped {
                reason: DropReason::IgnoredWhileClosing,
                count: 2
            },
            SstpEvent::Dropped {
                reason: DropReason::PppWhileClosing,
                count: 1
            }
        ]
    );
    assert!(server.ppp.is_empty());
}

#[test]
fn data_before_the_ack_is_dropped() {
    let mut server = RawServer::connected(false);
    server.input(&hex("10 00 00 06 c0 21"));
    server.input(&hex("10 00 00 04"));
    assert!(server.ppp.is_empty());
    assert_eq!(
        server.events(),
        vec![
            SstpEvent::Dropped {
                reason: DropReason::PppBeforeConnect,
                count: 1
            },
            SstpEvent::Dropped {
                reason: DropReason::EmptyDataPacket,
                count: 1
            }
        ]
    );
}

#[test]
fn peer_disconnect_without_status_info_is_acknowledged() {
    let mut server = RawServer::connected(true);
    server.input(&hex("10 01 00 08 00 06 00 00"));
    assert_eq!(server.output(), hex("10 01 00 08 00 07 00 00"));
    assert_eq!(
        server.events(),
        vec![SstpEvent::Closing(CloseReason::PeerDisconnect {
            status: None
        })]
    );
}

#[test]
fn transport_closed_cleans_up_at_once() {
    let mut pair = Pair::default();
    pair.establish([0; 32]);
    pair.server.conn.transport_closed();
    assert!(pair.server.conn.is_closed());
    assert_eq!(pair.server.conn.poll_timeout(), None);
    pair.server.collect_events(pair.now);
    assert_eq!(
        pair.server.closed_reason(),
        Some(&CloseReason::TransportClosed)
    );
    // During an abort the abort's reason is kept.
    pair.client
        .conn
        .abort(pair.now, Status::InvalidFrameReceived);
    pair.client.conn.transport_closed();
    pair.client.collect_events(pair.now);
    assert_eq!(
        pair.client.closed_reason(),
        Some(&CloseReason::LocalAbort(AbortReason::Local(
            Status::InvalidFrameReceived
        )))
    );
}

#[test]
fn close_before_http_completes_is_immediate() {
    let mut pair = Pair::default();
    pair.client.conn.close(pair.now);
    assert!(pair.client.conn.is_closed());
    pair.server
        .conn
        .abort(pair.now, Status::InvalidFrameReceived);
    assert!(pair.server.conn.is_closed());
}

#[test]
fn http_date_is_sent_when_given() {
    let mut server = RawServer::new();
    server.conn.set_http_date("Thu, 09 Nov 2006 00:51:09 GMT");
    server.input(SSTPC_REQUEST);
    let out = server.output();
    assert!(contains(
        &out,
        b"\r\nDate: Thu, 09 Nov 2006 00:51:09 GMT\r\n"
    ));
}

#[test]
fn echo_requests_are_answered_at_a_bounded_rate_and_the_excess_counted() {
    let mut pair = Pair::default();
    pair.establish([0; 32]);
    let echo_request = hex("10 01 00 08 00 08 00 00");
    let echo_response = hex("10 01 00 08 00 09 00 00");
    let responses = |bytes: &[u8]| bytes.chunks(8).filter(|c| *c == echo_response).count();
    let config = SstpConfig::default();
    let burst = config.echo_reply_burst as usize;
    let mut sent = Transmit::new();
    pair.server.conn.poll_transmit(pair.now, &mut sent);
    sent.clear();
    pair.server.events.clear();
    // A flood at one instant: the burst is answered, the rest dropped and
    // counted.
    let flood = echo_request.repeat(100);
    pair.server.receive(pair.now, &flood);
    pair.server.conn.poll_transmit(pair.now, &mut sent);
    pair.server.collect_events(pair.now);
    assert_eq!(responses(&sent), burst);
    assert_eq!(
        pair.server.events,
        [SstpEvent::Dropped {
            reason: DropReason::EchoRateLimited,
            count: (100 - burst) as u32
        }]
    );
    // The budget comes back with time; a peer within the rate is never
    // refused.
    pair.server.events.clear();
    for _ in 0..20 {
        pair.now += config.echo_reply_interval;
        sent.clear();
        pair.server.receive(pair.now, &echo_request);
        pair.server.conn.poll_transmit(pair.now, &mut sent);
        assert_eq!(responses(&sent), 1);
    }
    pair.server.collect_events(pair.now);
    assert!(pair.server.events.is_empty(), "{:?}", pair.server.events);
    assert!(pair.server.conn.is_established());
}

#[test]
fn output_the_owner_never_collects_is_bounded_and_ends_the_connection() {
    let mut pair = Pair::default();
    pair.connect();
    let mut sent = Transmit::new();
    pair.server.conn.poll_transmit(pair.now, &mut sent);
    pair.server.events.clear();
    // What a PPP link answers to a flood (quoted Code-Rejects), queued
    // behind the connection's control output while the owner never calls
    // poll_transmit; one input packet (an empty data packet) per answer.
    let answer = vec![0xc0; 1400];
    let input = hex("10 00 00 04");
    let mut answers = 0;
    for _ in 0..10_000 {
        pair.server.receive(pair.now, &input);
        if pair.server.conn.state() == SstpState::Closed {
            break;
        }
        pair.server.conn.send_ppp_queued(&answer).unwrap();
        answers += 1;
    }
    // Each answer is a 4-byte header and the frame.
    assert_eq!(answers, MAX_QUEUED_OUTPUT.div_ceil(4 + answer.len()));
    pair.server.collect_events(pair.now);
    assert_eq!(
        pair.server.closed_reason(),
        Some(&CloseReason::OutputQueueOverflow),
        "{:?}",
        pair.server.conn
    );
    assert_eq!(
        CloseReason::OutputQueueOverflow.as_str(),
        "output_queue_overflow"
    );
    // Closed at once, nothing more to send.
    assert!(pair.server.conn.is_closed());
}
