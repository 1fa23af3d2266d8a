//! A scripted SSTP client for hostile sequences: it builds exactly the
//! bytes a test wants a client to send (any PPP frame, in any order, many
//! in one TLS record) and reads what the server answers, with no client
//! state machine of its own that would refuse to misbehave.
//!
//! [`ScriptedClient`] is transport-agnostic: the end-to-end tests write its
//! bytes to the real server over TLS; [`LoneServer`] makes it the client
//! endpoint of the common [`Pair`] harness against a server [`Session`] in
//! memory, on a virtual clock, holding the authenticator's answers until
//! the test delivers them (so that a test decides when an answer arrives,
//! as a slow RADIUS server would).
//!
//! Not a stable API: for tests, fuzz targets and benchmarks.

use crate::proto::sstp::Transmit;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use super::pair::{Delivery, Duty, Endpoint, Pair, Services, SessionEnd, TEST_CERTIFICATE};
use crate::proto::auth::chap::{md5_response, CODE_CHALLENGE, CODE_FAILURE, CODE_RESPONSE};
use crate::proto::auth::eap;
use crate::proto::auth::mschapv2::{self, FailureMessage, ResponseValue};
use crate::proto::auth::pap::CODE_AUTHENTICATE_REQUEST;
use crate::proto::auth::{AuthDecision, AuthRequest, PROTO_CHAP, PROTO_EAP, PROTO_PAP};
use crate::proto::ppp::frame::{parse_frame, write_header, HeaderFormat, PROTO_LCP};
use crate::proto::ppp::lcp::OPT_MAGIC_NUMBER;
use crate::proto::ppp::packet::{
    parse_control, write_control, write_option, CONFIGURE_ACK, CONFIGURE_REQUEST,
};
use crate::proto::session::{Session, SessionConfig, SessionEvent};
use crate::proto::sstp::wire::{packet_header, MAX_PACKET_LEN};
use crate::proto::sstp::{CertHashes, ControlMessage, Deframer, Packet};

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
            protocol_id: crate::proto::sstp::wire::PROTOCOL_PPP,
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
        let value = mschapv2_value(&challenge, user, password);
        Self::ppp(
            PROTO_CHAP,
            CODE_RESPONSE,
            identifier,
            &[&[value.len() as u8], &value, user.as_bytes()],
        )
    }

    /// The server's latest EAP Request: its Identifier, Type and
    /// Type-Data.
    pub fn eap_request(&self) -> Option<(u8, u8, Vec<u8>)> {
        let latest = self.latest(PROTO_EAP, eap::CODE_REQUEST)?;
        let (&kind, data) = latest.data.split_first()?;
        Some((latest.identifier, kind, data.to_vec()))
    }

    /// What an EAP-MSCHAPv2 Response must answer now: the Identifier and
    /// challenge of the server's latest EAP Request, if it is an
    /// EAP-MSCHAPv2 Challenge.
    pub fn eap_mschapv2_challenge(&self) -> Option<(u8, Vec<u8>)> {
        let (identifier, kind, data) = self.eap_request()?;
        match eap::MsChapV2Data::parse(&data, true) {
            Ok(eap::MsChapV2Data::Challenge { challenge, .. }) if kind == eap::TYPE_MSCHAPV2 => {
                Some((identifier, challenge.to_vec()))
            }
            _ => None,
        }
    }

    /// An EAP Response/Identity.
    pub fn eap_identity(identifier: u8, name: &str) -> Vec<u8> {
        Self::ppp(
            PROTO_EAP,
            eap::CODE_RESPONSE,
            identifier,
            &[&[eap::TYPE_IDENTITY], name.as_bytes()],
        )
    }

    /// An EAP-MSCHAPv2 Response to `(identifier, challenge)`.
    pub fn eap_mschapv2_response(
        (identifier, challenge): (u8, Vec<u8>),
        user: &str,
        password: &str,
    ) -> Vec<u8> {
        let value =
            ResponseValue::parse(&mschapv2_value(&challenge, user, password)).expect("49 octets");
        let data = eap::MsChapV2Data::Response {
            ms_id: identifier,
            value,
            name: user.as_bytes(),
        }
        .to_vec();
        Self::ppp(
            PROTO_EAP,
            eap::CODE_RESPONSE,
            identifier,
            &[&[eap::TYPE_MSCHAPV2], &data],
        )
    }
}

/// The 49-octet MS-CHAPv2 Response value for `challenge` ([RFC 2759] 4),
/// with a fixed Peer-Challenge.
///
/// [RFC 2759]: https://www.rfc-editor.org/rfc/rfc2759
fn mschapv2_value(challenge: &[u8], user: &str, password: &str) -> [u8; 49] {
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
    ResponseValue {
        peer_challenge,
        nt_response,
        flags: 0,
    }
    .to_bytes()
}

impl Endpoint for ScriptedClient {
    type Event = Infallible;
    type Delivered = Infallible;
    const STREAM: bool = true;

    /// What the test put in the side's outbox, as one write.
    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) -> bool {
        !out.is_empty()
    }

    fn receive(&mut self, _now: Instant, input: &[u8], _: &mut Delivery<'_, Infallible>) {
        ScriptedClient::receive(self, input);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_event(&mut self) -> Option<Infallible> {
        None
    }
}

/// A server [`Session`] talking to a [`ScriptedClient`] on the common
/// harness, on a virtual clock. Authentication requests are collected, not
/// answered: the test delivers each decision when it wants. Address
/// requests are answered as the runtime does (default: 10.99.0.2 to
/// 10.99.0.9). What the server delivers to the network is only counted
/// (`server.delivered_count`).
pub type LoneServer = Pair<SessionEnd, ScriptedClient>;

impl Pair<SessionEnd, ScriptedClient> {
    /// A server session with `config`; nothing sent yet.
    pub fn new(config: &SessionConfig, seed: u8) -> Self {
        let base = Instant::now();
        let cert = CertHashes::of_der(TEST_CERTIFICATE);
        let session = Session::server(config, base, cert, [seed; 32]);
        let addresses = super::ipv4_pools([10, 99, 0, 2], [10, 99, 0, 9]);
        let mut pair = Pair::between(
            SessionEnd::new(session, Services::new(None, addresses)),
            ScriptedClient::new(),
            base,
        );
        pair.server.keep_delivered = false;
        pair
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
        self.client.outbox.unit().extend_from_slice(bytes);
        self.drive_now();
    }

    /// Delivers the answer to the `index`-th authentication request;
    /// whether the session applied it (false: stale).
    pub fn decide(&mut self, index: usize, decision: AuthDecision) -> bool {
        let id = self.requests()[index].id;
        let now = self.now;
        let applied = self.server.session.auth_decision(now, id, decision);
        self.drive_now();
        applied
    }

    /// The server session.
    pub fn session(&self) -> &Session {
        &self.server.session
    }

    /// Every event the server reported, in order.
    pub fn events(&self) -> &[SessionEvent] {
        &self.server.events
    }

    /// Every authentication request, in order.
    pub fn requests(&self) -> &[AuthRequest] {
        &self.server.services.requests
    }
}

// ---- Fuzz target `session`: a whole client and server on arbitrary input ----

/// Users the fuzzed server knows.
const FUZZ_USERS: &[(&str, &str)] = &[("alice", "alice-secret"), ("bob", "bob-secret")];

/// Fuzz target `session`: a real client [`Session`] and a server
/// [`Session`] (with a [`ScriptedClient`] beside the real client, injecting
/// hostile frames into the same stream), driven by `data`, asserting the
/// invariants that must hold whatever the peer does:
///
/// * no IP packet is delivered (server to the network, client to the
///   application) before that side reported [`SessionEvent::Established`]
///   (Call Connected verified, [MS-SSTP] 3.3.5.2.3);
/// * the server reports [`SessionEvent::Authenticated`] only right after
///   an accepting answer to the request it names, with that request's
///   name, and at most once;
/// * an answer to a request already answered, or never made, is reported
///   stale and changes nothing;
/// * what one step queues stays bounded; nothing panics.
///
/// Input: the first octet picks the server's methods (`& 3`: MS-CHAPv2,
/// CHAP-MD5, PAP, all three; `& 8`: EAP-MSCHAPv2 instead) and whether the
/// real client knows alice's password (`& 4`); the rest is a list of operations, one octet each
/// (`op % 8`), some with operands:
/// 0: relay the client's output to the server, SSTP packet by packet;
/// 1: relay the server's output to both clients;
/// 2: answer request `a % (n + 1)` (`n`: a forged id) in manner `b % 4`
///    (0 the user table, 1 accept, 2 reject, 3 accept with an MS-CHAPv2
///    proof of zeros);
/// 3: a length octet and that many octets, sent as one PPP frame;
/// 4: a scripted frame `a % 8` (LCP Configure-Request, the Ack of the
///    server's latest or next Configure-Request, PAP as alice or as bob,
///    CHAP-MD5 or MS-CHAPv2 Responses to the latest challenge, an IPv4
///    packet);
/// 5: run both sides' timers at the earliest deadline;
/// 6: advance the clock by `op / 8` seconds;
/// 7: the real client sends an IPv4 packet.
///
/// [MS-SSTP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstp/
pub fn fuzz_session(data: &[u8]) -> FuzzSummary {
    let Some((&flags, mut ops)) = data.split_first() else {
        return FuzzSummary::default();
    };
    let mut run = FuzzRun::new(flags);
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        let mut operand = || {
            let (&value, rest) = ops.split_first().unwrap_or((&0, &[]));
            ops = rest;
            value
        };
        match op % 8 {
            0 => run.relay_to_server(),
            1 => run.relay_to_clients(),
            2 => {
                let (which, manner) = (operand(), operand());
                run.answer(which, manner);
            }
            3 => {
                let len = usize::from(operand());
                let frame: Vec<u8> = (0..len).map(|_| operand()).collect();
                run.inject(&ScriptedClient::data_packet(&frame));
            }
            4 => {
                let kind = operand();
                if let Some(bytes) = run.scripted(kind) {
                    run.inject(&bytes);
                }
            }
            5 => run.timers(),
            6 => {
                run.now += Duration::from_secs(u64::from(op / 8));
                run.timers();
            }
            _ => run.client_sends_ip(),
        }
    }
    FuzzSummary {
        requests: run.requests.len(),
        authenticated: run.authenticated,
        server_established: run.server_established,
        server_ip: run.server_ip,
    }
}

/// How far a [`fuzz_session`] run got (for tests of the seed corpus).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuzzSummary {
    /// Authentication requests the server made.
    pub requests: usize,
    /// The name the server authenticated, if any.
    pub authenticated: Option<String>,
    pub server_established: bool,
    /// IP packets the server delivered to the network.
    pub server_ip: usize,
}

struct FuzzRun {
    server: Session,
    /// Answers the server's address requests, as the runtime does.
    services: Services,
    client: Session,
    /// Watches what the server sends, to build scripted frames.
    observer: ScriptedClient,
    now: Instant,
    /// The real client's bytes not yet relayed, and its HTTP head state.
    client_out: Transmit,
    client_head_sent: bool,
    client_deframer: Deframer,
    server_out: Transmit,
    /// Every request the server made, and whether it was answered.
    requests: Vec<(AuthRequest, bool)>,
    server_established: bool,
    client_established: bool,
    authenticated: Option<String>,
    /// The request whose accepting answer was applied while the method
    /// waits for the peer's acknowledgement (EAP).
    confirming: Option<usize>,
    server_ip: usize,
    local: crate::proto::auth::LocalAuthenticator<crate::testing::StaticPasswords>,
}

/// Events or output beyond these in one step would mean a queue without
/// a bound.
const MAX_EVENTS_PER_STEP: usize = 1024;
const MAX_OUTPUT_PER_STEP: usize = 1 << 20;

impl FuzzRun {
    fn new(flags: u8) -> FuzzRun {
        use crate::proto::auth::{AuthProtocol, LocalAuthenticator};
        use crate::proto::ppp::{IpcpConfig, PppConfig};
        use crate::proto::sstp::SstpConfig;
        use crate::testing::StaticPasswords;
        use std::net::Ipv4Addr;

        let methods = match flags & 3 {
            _ if flags & 8 != 0 => vec![AuthProtocol::EapMsChapV2],
            0 => vec![AuthProtocol::MsChapV2],
            1 => vec![AuthProtocol::ChapMd5],
            2 => vec![AuthProtocol::Pap],
            _ => vec![
                AuthProtocol::MsChapV2,
                AuthProtocol::ChapMd5,
                AuthProtocol::Pap,
            ],
        };
        let server_ppp = PppConfig {
            auth_protocols: methods,
            ipcp: IpcpConfig {
                local_address: Some(Ipv4Addr::new(10, 0, 0, 1)),
                ..IpcpConfig::default()
            },
            ..PppConfig::default()
        };
        let server_config = SessionConfig::new(SstpConfig::default(), server_ppp);
        let client_ppp = PppConfig {
            auth_protocols: vec![
                AuthProtocol::MsChapV2,
                AuthProtocol::EapMsChapV2,
                AuthProtocol::ChapMd5,
                AuthProtocol::Pap,
            ],
            ..PppConfig::default()
        };
        let client_config = SessionConfig::new(SstpConfig::default(), client_ppp);
        let now = Instant::now();
        let cert = CertHashes::of_der(TEST_CERTIFICATE);
        let server = Session::server(&server_config, now, cert, [flags; 32]);
        let password = if flags & 4 == 0 {
            "alice-secret"
        } else {
            "wrong"
        };
        let client = Session::client(
            &client_config,
            now,
            crate::proto::session::ClientParams {
                handshake: crate::proto::sstp::ClientHandshake::new("127.0.0.1", "{fuzz}")
                    .expect("static handshake values are valid"),
                server_cert: cert,
                username: "alice".into(),
                password: password.as_bytes().to_vec(),
            },
            [flags ^ 0x5a; 32],
        );
        let mut users = StaticPasswords::new();
        for (name, password) in FUZZ_USERS {
            users.insert(*name, *password);
        }
        let mut run = FuzzRun {
            server,
            services: Services::new(None, super::ipv4_pools([10, 0, 0, 2], [10, 0, 0, 3])),
            client,
            observer: ScriptedClient::new(),
            now,
            client_out: Transmit::new(),
            client_head_sent: false,
            client_deframer: Deframer::new(MAX_PACKET_LEN as u16),
            server_out: Transmit::new(),
            requests: Vec::new(),
            server_established: false,
            client_established: false,
            authenticated: None,
            confirming: None,
            server_ip: 0,
            local: LocalAuthenticator::new(users),
        };
        run.collect(None);
        run
    }

    /// Drains both sides' events and output, checking the invariants.
    /// `answered`: the request an answer was just delivered for, and
    /// whether it could be applied.
    fn collect(&mut self, answered: Option<(usize, bool)>) {
        let mut count = 0;
        let mut stale = 0;
        while let Some(event) = self.server.poll_event() {
            count += 1;
            match event {
                SessionEvent::AuthRequest(request) => {
                    assert!(
                        self.requests.iter().all(|(r, _)| r.id != request.id),
                        "request ids are never reused"
                    );
                    self.requests.push((request, false));
                    self.confirming = None;
                }
                SessionEvent::Authenticated { username } => {
                    // EAP-MSCHAPv2 succeeds on the peer's Success Response,
                    // after the accepting answer to the latest request.
                    let Some(index) = answered
                        .and_then(|(index, accepts)| accepts.then_some(index))
                        .or(self.confirming.take())
                    else {
                        panic!("authenticated as {username:?} without an accepting answer");
                    };
                    assert_eq!(
                        username, self.requests[index].0.username,
                        "the name of the request the answer was for"
                    );
                    assert!(self.authenticated.is_none(), "authenticated twice");
                    self.authenticated = Some(username);
                }
                SessionEvent::Established => self.server_established = true,
                SessionEvent::Ipv4AddressRequest(request) => {
                    self.services.perform(Some(Duty::Allocate(&request)));
                    self.services.apply(self.now, &mut self.server);
                }
                SessionEvent::Ipv4AddressReleased(address) => {
                    self.services.perform(Some(Duty::Release(address)))
                }
                SessionEvent::Dropped { reason, .. }
                    if reason.as_str() == "stale_auth_decision" =>
                {
                    stale += 1
                }
                _ => {}
            }
        }
        if let Some((index, accepts)) = answered {
            let fresh = index < self.requests.len() && !self.requests[index].1;
            if !fresh {
                assert_eq!(stale, 1, "an answer to no waiting request is stale");
            } else if accepts && self.authenticated.is_none() {
                self.confirming = Some(index);
            }
            if index < self.requests.len() {
                self.requests[index].1 = true;
            }
        } else {
            assert_eq!(stale, 0);
        }
        while let Some(event) = self.client.poll_event() {
            count += 1;
            if event == SessionEvent::Established {
                self.client_established = true;
            }
        }
        assert!(count <= MAX_EVENTS_PER_STEP, "{count} events in one step");
        let before = (self.client_out.len(), self.server_out.len());
        self.client.poll_transmit(self.now, &mut self.client_out);
        self.server.poll_transmit(self.now, &mut self.server_out);
        if cfg!(debug_assertions) {
            // What the core promises the owner that seals each unit as a
            // record of its own.
            self.client_out.assert_whole_units();
            self.server_out.assert_whole_units();
        }
        assert!(self.client_out.len() - before.0 <= MAX_OUTPUT_PER_STEP);
        assert!(self.server_out.len() - before.1 <= MAX_OUTPUT_PER_STEP);
    }

    /// Feeds the server one read's worth, checking that no IP reaches the
    /// network before the call is established.
    fn feed_server(&mut self, bytes: &[u8]) {
        let mut delivered = 0usize;
        self.server
            .handle_input(self.now, bytes, &mut |_| delivered += 1);
        self.collect(None);
        assert!(
            delivered == 0 || self.server_established,
            "IP forwarded before Call Connected was verified"
        );
        self.server_ip += delivered;
    }

    fn relay_to_server(&mut self) {
        let bytes = std::mem::take(&mut self.client_out);
        let mut rest = &bytes[..];
        if !self.client_head_sent {
            let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
                self.feed_server(&bytes);
                return;
            };
            self.client_head_sent = true;
            self.feed_server(&bytes[..end + 4]);
            rest = &bytes[end + 4..];
        }
        // Packet by packet, so that "established before IP" is judged at
        // the granularity the core must honour.
        let mut packets = Vec::new();
        let mut feed = self.client_deframer.feed(rest);
        while let Some(Ok(packet)) = feed.next() {
            packets.push(packet.to_vec());
        }
        for packet in packets {
            self.feed_server(&packet);
        }
    }

    fn relay_to_clients(&mut self) {
        let bytes = std::mem::take(&mut self.server_out);
        self.observer.receive(&bytes);
        let mut delivered = 0usize;
        self.client
            .handle_input(self.now, &bytes, &mut |_| delivered += 1);
        self.collect(None);
        assert!(
            delivered == 0 || self.client_established,
            "client delivered IP before the call was established"
        );
    }

    /// Hostile bytes into the server, between the real client's packets.
    fn inject(&mut self, packet: &[u8]) {
        if !self.client_head_sent {
            // Before the HTTP head they would only be part of the head.
            return;
        }
        self.feed_server(packet);
    }

    fn answer(&mut self, which: u8, manner: u8) {
        use crate::proto::auth::{
            AuthAccept, AuthDecision, AuthReject, AuthRequestId, MppeKeys, MsChapV2Proof,
            RejectReason,
        };
        let index = usize::from(which) % (self.requests.len() + 1);
        let id = self
            .requests
            .get(index)
            .map_or(AuthRequestId::from_raw(u64::MAX), |(r, _)| r.id);
        let decision = match manner % 4 {
            0 => match self.requests.get(index) {
                Some((request, _)) => self.local.decide(request),
                None => AuthDecision::Accept(AuthAccept::default()),
            },
            1 => AuthDecision::Accept(AuthAccept::default()),
            2 => AuthDecision::Reject(AuthReject {
                reason: RejectReason::AuthenticationFailure,
                message: "no".into(),
            }),
            _ => AuthDecision::Accept(AuthAccept {
                mschapv2: Some(MsChapV2Proof {
                    authenticator_response: [0; 20],
                    keys: MppeKeys {
                        send: [0; 16],
                        receive: [0; 16],
                    },
                }),
                framed_ipv4: None,
                ..AuthAccept::default()
            }),
        };
        let accepts = matches!(decision, AuthDecision::Accept(_));
        self.server.auth_decision(self.now, id, decision);
        self.collect(Some((index, accepts)));
    }

    fn scripted(&self, kind: u8) -> Option<Vec<u8>> {
        let observer = &self.observer;
        Some(match kind % 8 {
            0 => ScriptedClient::lcp_configure_request(kind),
            1 => ScriptedClient::ack(observer.lcp_request()?),
            2 => ScriptedClient::ack_next(observer.lcp_request()?),
            3 => ScriptedClient::pap_request(kind, "alice", "alice-secret"),
            4 => ScriptedClient::pap_request(kind, "bob", "wrong"),
            5 => ScriptedClient::chap_md5_response(observer.chap_challenge()?, "bob", "bob-secret"),
            6 => ScriptedClient::mschapv2_response(
                observer.chap_challenge()?,
                "alice",
                "alice-secret",
            ),
            _ => {
                // An IPv4 packet from the pool's first address.
                let mut frame = vec![0xff, 0x03, 0x00, 0x21, 0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17];
                frame.extend_from_slice(&[0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
                ScriptedClient::data_packet(&frame)
            }
        })
    }

    fn timers(&mut self) {
        let next = [self.server.poll_timeout(), self.client.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        if let Some(deadline) = next {
            self.now = self.now.max(deadline);
        }
        self.server.handle_timeout(self.now);
        self.client.handle_timeout(self.now);
        self.collect(None);
    }

    fn client_sends_ip(&mut self) {
        let Some(v4) = self.client.ipv4() else {
            return;
        };
        let mut packet = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0];
        packet.extend_from_slice(&v4.local.octets());
        packet.extend_from_slice(&v4.peer.octets());
        let _ = self.client.send_ip(&packet, &mut self.client_out);
        self.collect(None);
    }
}
