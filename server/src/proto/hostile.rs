//! A scripted SSTP client for hostile sequences: it builds exactly the
//! bytes a test wants a client to send (any PPP frame, in any order, many
//! in one TLS record) and reads what the server answers, with no client
//! state machine of its own that would refuse to misbehave.
//!
//! [`ScriptedClient`] is transport-agnostic: the end-to-end tests write its
//! bytes to the real server over TLS; [`LoneServer`] feeds them to a server
//! [`Session`] in memory, on a virtual clock, holding the authenticator's
//! answers until the test delivers them (so that a test decides when an
//! answer arrives, as a slow RADIUS server would).
//!
//! Not a stable API: for tests, fuzz targets and benchmarks.

use std::time::{Duration, Instant};

use super::auth::chap::{md5_response, CODE_CHALLENGE, CODE_FAILURE, CODE_RESPONSE};
use super::auth::mschapv2::{self, FailureMessage, ResponseValue};
use super::auth::pap::CODE_AUTHENTICATE_REQUEST;
use super::auth::{AuthDecision, AuthRequest, PROTO_CHAP, PROTO_PAP};
use super::ppp::frame::{parse_frame, write_header, HeaderFormat, PROTO_LCP};
use super::ppp::lcp::OPT_MAGIC_NUMBER;
use super::ppp::packet::{
    parse_control, write_control, write_option, CONFIGURE_ACK, CONFIGURE_REQUEST,
};
use super::session::{Session, SessionConfig, SessionEvent};
use super::sstp::wire::{packet_header, MAX_PACKET_LEN};
use super::sstp::{CertHashes, ControlMessage, Deframer, Packet};

/// An `SSTP_DUPLEX_POST` request head that passes every check of
/// [MS-SSTP] 3.2.4.1 (what sstp-client sends).
pub const REQUEST_HEAD: &[u8] =
    b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n\
Host: localhost\r\n\
Content-Length: 18446744073709551615\r\n\
SSTPCORRELATIONID: {B0F4A4BE-7E84-4A4F-A4F6-0C5D4F2E1B63}\r\n\r\n";

/// The Magic-Number a [`ScriptedClient`] puts in its LCP requests.
pub const CLIENT_MAGIC: u32 = 0x5eed_0001;

/// A PPP control packet (LCP, PAP, CHAP, IPCP, ...) the server sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub protocol: u16,
    pub code: u8,
    pub identifier: u8,
    /// Everything after the Length field.
    pub data: Vec<u8>,
}

/// The client half of a hostile conversation: builders for what it sends,
/// and a record of what the server sent back.
#[derive(Debug)]
pub struct ScriptedClient {
    deframer: Deframer,
    head: Vec<u8>,
    head_done: bool,
    /// The status code of the server's HTTP reply, once read.
    pub http_status: Option<u16>,
    /// Every PPP control packet the server sent, in order.
    pub received: Vec<Received>,
    /// The message type of every SSTP control packet the server sent.
    pub control: Vec<u16>,
    /// PPP frames that were not control packets (IP), counted.
    pub data_frames: usize,
}

impl Default for ScriptedClient {
    fn default() -> Self {
        ScriptedClient::new()
    }
}

impl ScriptedClient {
    pub fn new() -> Self {
        ScriptedClient {
            deframer: Deframer::new(MAX_PACKET_LEN as u16),
            head: Vec::new(),
            head_done: false,
            http_status: None,
            received: Vec::new(),
            control: Vec::new(),
            data_frames: 0,
        }
    }

    /// The HTTP request and the Call Connect Request, as a client opens.
    pub fn opening() -> Vec<u8> {
        let mut out = REQUEST_HEAD.to_vec();
        ControlMessage::CallConnectRequest {
            protocol_id: super::sstp::wire::PROTOCOL_PPP,
        }
        .encode(&mut out);
        out
    }

    /// Reads bytes from the server: the HTTP head first, then SSTP packets.
    pub fn receive(&mut self, bytes: &[u8]) {
        if !self.head_done {
            self.head.extend_from_slice(bytes);
            let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            let head = std::mem::take(&mut self.head);
            self.head_done = true;
            self.http_status = std::str::from_utf8(&head[..end])
                .ok()
                .and_then(|h| h.split(' ').nth(1))
                .and_then(|code| code.parse().ok());
            let rest = head[end + 4..].to_vec();
            return self.receive_packets(&rest);
        }
        self.receive_packets(bytes);
    }

    fn receive_packets(&mut self, bytes: &[u8]) {
        let mut packets = Vec::new();
        let mut feed = self.deframer.feed(bytes);
        while let Some(Ok(packet)) = feed.next() {
            packets.push(packet.to_vec());
        }
        for packet in packets {
            match Packet::parse(&packet) {
                Ok(Packet::Data(frame)) => self.receive_frame(frame),
                Ok(Packet::Control(control)) => {
                    self.control.push(control.message_type().as_u16());
                }
                Err(_) => {}
            }
        }
    }

    fn receive_frame(&mut self, frame: &[u8]) {
        let Ok(frame) = parse_frame(frame) else {
            return;
        };
        match parse_control(frame.information) {
            Ok(packet) if !matches!(frame.protocol, 0x0021 | 0x0057) => {
                self.received.push(Received {
                    protocol: frame.protocol,
                    code: packet.code,
                    identifier: packet.identifier,
                    data: packet.data.to_vec(),
                })
            }
            _ => self.data_frames += 1,
        }
    }

    /// Whether the server sent a packet of `protocol` with `code`.
    pub fn saw(&self, protocol: u16, code: u8) -> bool {
        self.received
            .iter()
            .any(|r| r.protocol == protocol && r.code == code)
    }

    /// The latest packet of `protocol` with `code` the server sent.
    pub fn latest(&self, protocol: u16, code: u8) -> Option<&Received> {
        self.received
            .iter()
            .rev()
            .find(|r| r.protocol == protocol && r.code == code)
    }

    /// The server's latest LCP Configure-Request.
    pub fn lcp_request(&self) -> Option<&Received> {
        self.latest(PROTO_LCP, CONFIGURE_REQUEST)
    }

    /// What an MS-CHAPv2 or CHAP-MD5 Response must answer now: the
    /// Identifier and challenge of the server's latest Challenge, or of
    /// its latest MS-CHAPv2 Failure offering a retry (`R=1`: the
    /// Identifier plus one and the `C=` challenge, [RFC 2759] 6).
    ///
    /// [RFC 2759]: https://www.rfc-editor.org/rfc/rfc2759
    pub fn chap_challenge(&self) -> Option<(u8, Vec<u8>)> {
        let latest = self.received.iter().rev().find(|r| {
            r.protocol == PROTO_CHAP && matches!(r.code, CODE_CHALLENGE | CODE_FAILURE)
        })?;
        if latest.code == CODE_CHALLENGE {
            let size = usize::from(*latest.data.first()?);
            return Some((latest.identifier, latest.data.get(1..1 + size)?.to_vec()));
        }
        let failure = FailureMessage::parse(&latest.data).ok()?;
        if !failure.retry {
            return None;
        }
        Some((
            latest.identifier.wrapping_add(1),
            failure.challenge?.to_vec(),
        ))
    }

    // ---- What the client sends: each an SSTP data packet ----

    /// An SSTP data packet carrying a PPP control packet (`FF 03` header).
    pub fn ppp(protocol: u16, code: u8, identifier: u8, parts: &[&[u8]]) -> Vec<u8> {
        let mut frame = Vec::new();
        write_header(protocol, HeaderFormat::FULL, &mut frame);
        write_control(code, identifier, parts, &mut frame);
        Self::data_packet(&frame)
    }

    /// An SSTP data packet carrying `frame` (cut to what one can carry).
    pub fn data_packet(frame: &[u8]) -> Vec<u8> {
        let frame = &frame[..frame.len().min(MAX_PACKET_LEN - 4)];
        let mut out = packet_header(false, 4 + frame.len()).to_vec();
        out.extend_from_slice(frame);
        out
    }

    /// An LCP Configure-Request with only a Magic-Number.
    pub fn lcp_configure_request(identifier: u8) -> Vec<u8> {
        let mut magic = Vec::new();
        write_option(OPT_MAGIC_NUMBER, &CLIENT_MAGIC.to_be_bytes(), &mut magic);
        Self::ppp(PROTO_LCP, CONFIGURE_REQUEST, identifier, &[&magic])
    }

    /// A Configure-Ack of `request` (same protocol, Identifier and
    /// options).
    pub fn ack(request: &Received) -> Vec<u8> {
        Self::ppp(
            request.protocol,
            CONFIGURE_ACK,
            request.identifier,
            &[&request.data],
        )
    }

    /// A Configure-Ack of the request the server will send next when the
    /// link renegotiates: Identifier plus one, the same options (the
    /// server keeps what it had agreed). What an attacker predicts.
    pub fn ack_next(request: &Received) -> Vec<u8> {
        Self::ppp(
            request.protocol,
            CONFIGURE_ACK,
            request.identifier.wrapping_add(1),
            &[&request.data],
        )
    }

    /// A PAP Authenticate-Request.
    pub fn pap_request(identifier: u8, user: &str, password: &str) -> Vec<u8> {
        Self::ppp(
            PROTO_PAP,
            CODE_AUTHENTICATE_REQUEST,
            identifier,
            &[
                &[user.len() as u8],
                user.as_bytes(),
                &[password.len() as u8],
                password.as_bytes(),
            ],
        )
    }

    /// A CHAP-MD5 Response to `(identifier, challenge)`.
    pub fn chap_md5_response(
        (identifier, challenge): (u8, Vec<u8>),
        user: &str,
        password: &str,
    ) -> Vec<u8> {
        let value = md5_response(identifier, password.as_bytes(), &challenge);
        Self::ppp(
            PROTO_CHAP,
            CODE_RESPONSE,
            identifier,
            &[&[16], &value, user.as_bytes()],
        )
    }

    /// An MS-CHAPv2 Response to `(identifier, challenge)` ([RFC 2759] 4).
    ///
    /// [RFC 2759]: https://www.rfc-editor.org/rfc/rfc2759
    pub fn mschapv2_response(
        (identifier, challenge): (u8, Vec<u8>),
        user: &str,
        password: &str,
    ) -> Vec<u8> {
        let mut authenticator_challenge = [0u8; 16];
        let n = challenge.len().min(16);
        authenticator_challenge[..n].copy_from_slice(&challenge[..n]);
        let peer_challenge = [0x42; 16];
        let nt_response = mschapv2::generate_nt_response(
            &authenticator_challenge,
            &peer_challenge,
            user.as_bytes(),
            password.as_bytes(),
        );
        let value = ResponseValue {
            peer_challenge,
            nt_response,
            flags: 0,
        }
        .to_bytes();
        Self::ppp(
            PROTO_CHAP,
            CODE_RESPONSE,
            identifier,
            &[&[value.len() as u8], &value, user.as_bytes()],
        )
    }
}

/// A server [`Session`] talking to a [`ScriptedClient`] in memory, on a
/// virtual clock. Authentication requests are collected, not answered:
/// the test delivers each decision when it wants.
#[derive(Debug)]
pub struct LoneServer {
    pub session: Session,
    pub client: ScriptedClient,
    pub base: Instant,
    pub now: Instant,
    /// Every event the server reported, in order.
    pub events: Vec<SessionEvent>,
    /// Every authentication request, in order.
    pub requests: Vec<AuthRequest>,
    /// IP packets the server delivered to the network.
    pub ip_delivered: usize,
}

impl LoneServer {
    /// A server session with `config`; nothing sent yet.
    pub fn new(config: &SessionConfig, seed: u8) -> Self {
        let base = Instant::now();
        let cert = CertHashes::of_der(super::pair::TEST_CERTIFICATE);
        LoneServer {
            session: Session::server(config, base, cert, [seed; 32]),
            client: ScriptedClient::new(),
            base,
            now: base,
            events: Vec::new(),
            requests: Vec::new(),
            ip_delivered: 0,
        }
    }

    /// A server whose LCP is open with the scripted client: the HTTP
    /// exchange, Call Connect Request/Acknowledge, then LCP both ways.
    /// The server is then in the Authenticate phase (if it authenticates).
    pub fn in_authentication(config: &SessionConfig, seed: u8) -> Self {
        let mut server = LoneServer::new(config, seed);
        server.send(&ScriptedClient::opening());
        let request = server
            .client
            .lcp_request()
            .expect("the server asks for LCP once PPP starts")
            .clone();
        let mut bytes = ScriptedClient::lcp_configure_request(1);
        bytes.extend_from_slice(&ScriptedClient::ack(&request));
        server.send(&bytes);
        server
    }

    /// Feeds `bytes` (one read's worth) to the server, then moves
    /// everything it answers to the client.
    pub fn send(&mut self, bytes: &[u8]) {
        let delivered = &mut self.ip_delivered;
        self.session
            .handle_input(self.now, bytes, &mut |_| *delivered += 1);
        self.flush();
    }

    /// Moves the server's output to the client and collects its events.
    pub fn flush(&mut self) {
        let mut out = Vec::new();
        self.session.poll_transmit(self.now, &mut out);
        self.client.receive(&out);
        while let Some(event) = self.session.poll_event() {
            if let SessionEvent::AuthRequest(request) = &event {
                self.requests.push(request.clone());
            }
            self.events.push(event);
        }
    }

    /// Delivers the answer to the `index`-th authentication request.
    pub fn decide(&mut self, index: usize, decision: AuthDecision) {
        let id = self.requests[index].id;
        self.session.auth_decision(self.now, id, decision);
        self.flush();
    }

    /// Runs the server's timers up to `now + by`.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(deadline) = self.session.poll_timeout() {
            if deadline > end {
                break;
            }
            self.now = self.now.max(deadline);
            self.session.handle_timeout(self.now);
            self.flush();
        }
        self.now = end;
        self.flush();
    }

    /// Whether the server reported an event matching `predicate`.
    pub fn saw(&self, predicate: impl Fn(&SessionEvent) -> bool) -> bool {
        self.events.iter().any(predicate)
    }
}
