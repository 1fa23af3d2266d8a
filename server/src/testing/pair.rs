//! An in-memory client↔server [`Session`] pair on a virtual clock, in the
//! manner of quinn-proto's test `Pair`: what one side transmits is fed to
//! the other, authentication requests are answered by a real
//! [`Authenticator`], and time jumps straight to the next timer deadline.
//!
//! It is public because the instruction-count benchmarks drive the same
//! workload (session setup, then data both ways) through it.
//!
//! Loss can be injected per SSTP packet: dropping data packets (the PPP
//! frames inside, see [`is_data_packet`]) exercises PPP retransmission
//! across the whole stack; dropping a control packet lets a test hold back,
//! say, the client's Call Connected.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::net::Ipv4Addr;

use crate::proto::auth::{AuthDecision, AuthReply, AuthRequestId, Authenticator};
use crate::proto::ppp::AddressRequestId;
use crate::proto::session::{ClientParams, Session, SessionConfig, SessionEvent};
use crate::proto::sstp::{CertHashes, ClientHandshake, Deframer};
use crate::routing::ServerPools;

/// Which way bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// Decides whether to drop an SSTP packet (its bytes, header included).
pub type LossFn = Box<dyn FnMut(Direction, &[u8]) -> bool>;

/// One end of the pair and what it has seen.
pub struct Side {
    pub session: Session,
    pub events: Vec<SessionEvent>,
    /// IP packets delivered to this side.
    pub received_ip: Vec<Vec<u8>>,
    /// Keep every delivered packet in `received_ip` (tests) or only count
    /// them (benchmarks).
    pub keep_ip: bool,
    pub received_ip_count: u64,
    outbox: Vec<u8>,
    deframer: Deframer,
    /// The HTTP head this side sends first has not been seen on the wire.
    http_head_pending: bool,
}

impl fmt::Debug for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Side")
            .field("established", &self.session.is_established())
            .field("closed", &self.session.is_closed())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Side {
    fn new(session: Session) -> Side {
        Side {
            session,
            events: Vec::new(),
            received_ip: Vec::new(),
            keep_ip: true,
            received_ip_count: 0,
            outbox: Vec::new(),
            deframer: Deframer::new(4095),
            http_head_pending: true,
        }
    }

    /// Whether an event matching `predicate` has been seen.
    pub fn saw(&self, predicate: impl Fn(&SessionEvent) -> bool) -> bool {
        self.events.iter().any(predicate)
    }

    /// The close event, if the session ended.
    pub fn closed_reason(&self) -> Option<&crate::proto::session::CloseReason> {
        self.events.iter().find_map(|e| match e {
            SessionEvent::Closed(reason) => Some(reason),
            _ => None,
        })
    }
}

/// A client and a server session connected by an in-memory stream.
pub struct Pair {
    pub client: Side,
    pub server: Side,
    pub base: Instant,
    pub now: Instant,
    pub authenticator: Arc<dyn Authenticator>,
    pub loss: Option<LossFn>,
    /// SSTP data packets dropped by `loss`.
    pub dropped: u64,
    /// Bytes moved each way (index 0: client to server).
    pub bytes: [u64; 2],
    /// Where the server's address requests are answered from, as the
    /// runtime does (default: 10.99.0.2 to 10.99.0.254).
    pub addresses: Arc<ServerPools>,
    decisions: Arc<Mutex<Vec<(AuthRequestId, AuthDecision)>>>,
    address_answers: Vec<(AddressRequestId, Option<Ipv4Addr>)>,
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair")
            .field("client", &self.client)
            .field("server", &self.server)
            .field("elapsed", &(self.now - self.base))
            .finish_non_exhaustive()
    }
}

/// The stand-in certificate whose hashes both ends use.
pub const TEST_CERTIFICATE: &[u8] = b"sstpd pair harness certificate";

impl Pair {
    /// A pair whose client authenticates as `username`/`password` against
    /// `authenticator`. Seeds derive from `seed`, so runs are reproducible.
    pub fn new(
        server_config: &SessionConfig,
        client_config: &SessionConfig,
        authenticator: Arc<dyn Authenticator>,
        username: &str,
        password: &[u8],
        seed: u8,
    ) -> Pair {
        let base = Instant::now();
        let cert = CertHashes::of_der(TEST_CERTIFICATE);
        let server = Session::server(server_config, base, cert, [seed; 32]);
        let handshake = ClientHandshake::new("127.0.0.1", "{6BAA1E45-9937-77B0-567472AB}")
            .expect("static handshake values are valid");
        let client = Session::client(
            client_config,
            base,
            ClientParams {
                handshake,
                server_cert: cert,
                username: username.to_string(),
                password: password.to_vec(),
            },
            [seed.wrapping_add(1); 32],
        );
        Pair {
            client: Side::new(client),
            server: Side::new(server),
            base,
            now: base,
            authenticator,
            loss: None,
            dropped: 0,
            bytes: [0, 0],
            addresses: super::ipv4_pools([10, 99, 0, 2], [10, 99, 0, 254]),
            decisions: Arc::new(Mutex::new(Vec::new())),
            address_answers: Vec::new(),
        }
    }

    /// Answers the server's address requests from `addresses` instead.
    pub fn with_addresses(mut self, addresses: Arc<ServerPools>) -> Pair {
        self.addresses = addresses;
        self
    }

    /// Moves bytes both ways and handles events until nothing moves, without
    /// advancing time. Returns whether anything moved.
    pub fn drive_now(&mut self) -> bool {
        let mut any = false;
        for _ in 0..10_000 {
            let mut moved = false;
            moved |= self.transfer(Direction::ClientToServer);
            moved |= self.transfer(Direction::ServerToClient);
            moved |= self.collect_events();
            moved |= self.apply_decisions();
            if !moved {
                return any;
            }
            any = true;
        }
        panic!("pair did not settle: {self:?}");
    }

    /// The earliest timer of either side.
    pub fn next_timeout(&self) -> Option<Instant> {
        match (
            self.client.session.poll_timeout(),
            self.server.session.poll_timeout(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Drives until `done` holds, jumping time from deadline to deadline,
    /// for at most `limit` of virtual time. Returns whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Pair) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.drive_now();
            if done(self) {
                return true;
            }
            match self.next_timeout() {
                Some(t) if t <= end => self.advance_to(t.max(self.now)),
                _ => return false,
            }
        }
    }

    /// Runs until both calls are established and IPCP is up on both sides.
    /// Without loss this needs no timer at all; see [`Pair::connect_without_timers`].
    pub fn connect(&mut self) -> bool {
        self.run_until(Duration::from_secs(120), |p| {
            p.client.session.is_established()
                && p.server.session.is_established()
                && p.client.session.ipv4().is_some()
                && p.server.session.ipv4().is_some()
        })
    }

    /// Virtual time since the pair was made.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// Connects without advancing the virtual clock: on a lossless stream
    /// every step of the setup must follow from the previous one, never
    /// from a retransmission timer. Returns whether the session came up.
    pub fn connect_without_timers(&mut self) -> bool {
        self.drive_now();
        self.client.session.is_established()
            && self.server.session.is_established()
            && self.client.session.ipv4().is_some()
            && self.server.session.ipv4().is_some()
    }

    /// Sets the clock to `t` and fires both sides' timers.
    pub fn advance_to(&mut self, t: Instant) {
        self.now = t;
        for side in [&mut self.client, &mut self.server] {
            if side.session.poll_timeout().is_some_and(|d| d <= t) {
                side.session.handle_timeout(t);
            }
        }
    }

    /// Sends an IP packet from one side; the caller drives delivery.
    pub fn send_ip(
        &mut self,
        from: Direction,
        packet: &[u8],
    ) -> Result<(), crate::proto::session::SendIpError> {
        let side = match from {
            Direction::ClientToServer => &mut self.client,
            Direction::ServerToClient => &mut self.server,
        };
        side.session.send_ip(packet, &mut side.outbox)
    }

    fn transfer(&mut self, direction: Direction) -> bool {
        let (from, to) = match direction {
            Direction::ClientToServer => (&mut self.client, &mut self.server),
            Direction::ServerToClient => (&mut self.server, &mut self.client),
        };
        from.session.poll_transmit(self.now, &mut from.outbox);
        if from.outbox.is_empty() {
            return false;
        }
        let bytes = std::mem::take(&mut from.outbox);
        self.bytes[direction as usize] += bytes.len() as u64;
        let now = self.now;
        let deliver = |to: &mut Side, chunk: &[u8]| {
            let Side {
                session,
                received_ip,
                keep_ip,
                received_ip_count,
                ..
            } = to;
            session.handle_input(now, chunk, &mut |packet| {
                *received_ip_count += 1;
                if *keep_ip {
                    received_ip.push(packet.to_vec());
                }
            });
        };
        match self.loss.as_mut() {
            None => deliver(to, &bytes),
            Some(loss) => {
                // Split into SSTP packets once the HTTP head is past, and
                // drop the packets `loss` picks.
                let head = if from.http_head_pending {
                    from.http_head_pending = false;
                    http_head_len(&bytes)
                } else {
                    0
                };
                if head > 0 {
                    deliver(to, &bytes[..head]);
                }
                let mut packets = Vec::new();
                let mut feed = from.deframer.feed(&bytes[head..]);
                while let Some(Ok(packet)) = feed.next() {
                    packets.push(packet.to_vec());
                }
                for packet in packets {
                    if loss(direction, &packet) {
                        self.dropped += 1;
                        continue;
                    }
                    deliver(to, &packet);
                }
            }
        }
        from.outbox = bytes;
        from.outbox.clear();
        true
    }

    fn collect_events(&mut self) -> bool {
        let mut any = false;
        for side in [&mut self.client, &mut self.server] {
            while let Some(event) = side.session.poll_event() {
                any = true;
                match &event {
                    SessionEvent::Ipv4AddressRequest(request) => {
                        let address = self
                            .addresses
                            .allocate_ipv4(&request.username, request.wanted);
                        self.address_answers.push((request.id, address));
                    }
                    SessionEvent::Ipv4AddressReleased(address) => {
                        self.addresses.release_ipv4(*address)
                    }
                    _ => {}
                }
                if let SessionEvent::AuthRequest(request) = &event {
                    let sink = self.decisions.clone();
                    let id = request.id;
                    self.authenticator.authenticate(
                        request.clone(),
                        AuthReply::new(move |d| {
                            sink.lock().unwrap_or_else(|e| e.into_inner()).push((id, d))
                        }),
                    );
                }
                side.events.push(event);
            }
        }
        any
    }

    fn apply_decisions(&mut self) -> bool {
        let decisions =
            std::mem::take(&mut *self.decisions.lock().unwrap_or_else(|e| e.into_inner()));
        let any = !decisions.is_empty() || !self.address_answers.is_empty();
        for (request, decision) in decisions {
            self.server
                .session
                .auth_decision(self.now, request, decision);
        }
        for (request, address) in std::mem::take(&mut self.address_answers) {
            let answer = self.server.session.assign_ipv4(self.now, request, address);
            if let (Err(_), Some(address)) = (answer, address) {
                self.addresses.release_ipv4(address);
            }
        }
        any
    }
}

/// Whether an SSTP packet is a data packet (C bit clear, [MS-SSTP] 2.2.1).
pub fn is_data_packet(packet: &[u8]) -> bool {
    packet.get(1).is_some_and(|b| b & 1 == 0)
}

/// The message type of an SSTP control packet ([MS-SSTP] 2.2.2).
pub fn control_message_type(packet: &[u8]) -> Option<u16> {
    if is_data_packet(packet) {
        return None;
    }
    Some(u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]))
}

/// Length of the HTTP head at the start of a side's first transfer.
fn http_head_len(bytes: &[u8]) -> usize {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |p| p + 4)
}
