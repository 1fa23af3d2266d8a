//! Whole sessions: [`SessionEnd`] and [`SessionPair`], the workload of the
//! core's end-to-end tests, the benchmarks and the instruction-count gate.
//!
//! Loss is decided per SSTP packet (the HTTP head counting as one):
//! dropping data packets (the PPP frames inside, see [`is_data_packet`])
//! exercises PPP retransmission across the whole stack; dropping a control
//! packet lets a test hold back, say, the client's Call Connected.

use crate::proto::sstp::Transmit;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Delivery, Direction, Duty, Endpoint, Pair, Services, Side};
use crate::proto::auth::Authenticator;
use crate::proto::session::{
    ClientParams, CloseReason, SendIpError, Session, SessionConfig, SessionEvent,
};
use crate::proto::sstp::{CertHashes, ClientHandshake, Deframer};
use crate::routing::ServerPools;

/// A [`Session`] as a harness endpoint (a byte stream), with the runtime's
/// [`Services`]. Dereferences to the session.
pub struct SessionEnd {
    pub session: Session,
    pub services: Services,
    /// Cuts the stream into SSTP packets for loss.
    deframer: Deframer,
    /// The HTTP head this side sends first has not been cut off yet.
    http_head_pending: bool,
}

impl SessionEnd {
    pub fn new(session: Session, services: Services) -> Self {
        SessionEnd {
            session,
            services,
            deframer: Deframer::new(4095),
            http_head_pending: true,
        }
    }
}

impl fmt::Debug for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionEnd")
            .field("established", &self.session.is_established())
            .field("closed", &self.session.is_closed())
            .finish_non_exhaustive()
    }
}

derefs_to!(SessionEnd => session: Session);

/// What the runtime is asked to do by a session event.
fn duty(event: &SessionEvent) -> Option<Duty<'_>> {
    match event {
        SessionEvent::AuthRequest(request) => Some(Duty::Authenticate(request)),
        SessionEvent::Ipv4AddressRequest(request) => Some(Duty::Allocate(request)),
        SessionEvent::Ipv4AddressReleased(address) => Some(Duty::Release(*address)),
        _ => None,
    }
}

impl Endpoint for SessionEnd {
    type Event = SessionEvent;
    /// IP packets.
    type Delivered = Vec<u8>;
    const STREAM: bool = true;

    fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) -> bool {
        self.session.poll_transmit(now, out);
        if cfg!(debug_assertions) {
            // What the core promises its owner (release builds, the
            // benchmarks and the gate, count no check).
            out.assert_whole_units();
        }
        !out.is_empty()
    }

    fn receive(&mut self, now: Instant, input: &[u8], delivered: &mut Delivery<'_, Vec<u8>>) {
        self.session.handle_input(now, input, &mut |packet| {
            delivered.deliver_with(|| packet.to_vec())
        });
    }

    timers_and_events_of!(session: SessionEvent);

    fn serve(&mut self, _now: Instant, event: SessionEvent) -> Option<SessionEvent> {
        self.services.perform(duty(&event));
        Some(event)
    }

    fn answer(&mut self, now: Instant) -> bool {
        self.services.apply(now, &mut self.session)
    }

    /// The HTTP head at the start of the first transmission, then SSTP
    /// packets.
    fn pieces(&mut self, transmission: &[u8], piece: &mut dyn FnMut(&[u8])) {
        let head = if self.http_head_pending {
            self.http_head_pending = false;
            http_head_len(transmission)
        } else {
            0
        };
        if head > 0 {
            piece(&transmission[..head]);
        }
        let mut feed = self.deframer.feed(&transmission[head..]);
        while let Some(Ok(packet)) = feed.next() {
            piece(packet);
        }
    }
}

/// Length of the HTTP head at the start of a side's first transmission.
fn http_head_len(bytes: &[u8]) -> usize {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |p| p + 4)
}

impl Side<SessionEnd> {
    /// Whether an event matching `predicate` has been seen.
    pub fn saw(&self, predicate: impl Fn(&SessionEvent) -> bool) -> bool {
        self.events.iter().any(predicate)
    }

    /// The close event, if the session ended.
    pub fn closed_reason(&self) -> Option<&CloseReason> {
        self.events.iter().find_map(|e| match e {
            SessionEvent::Closed(reason) => Some(reason),
            _ => None,
        })
    }
}

/// A client and a server [`Session`] on the harness: the server's
/// authentication requests are answered by a real [`Authenticator`], its
/// address requests from [`ServerPools`].
pub type SessionPair = Pair<SessionEnd, SessionEnd>;

/// The stand-in certificate whose hashes both ends use.
pub const TEST_CERTIFICATE: &[u8] = b"sstpd pair harness certificate";

impl Pair<SessionEnd, SessionEnd> {
    /// A pair whose client authenticates as `username`/`password` against
    /// `authenticator`, addresses from 10.99.0.2 to 10.99.0.254. Seeds
    /// derive from `seed`, so runs are reproducible.
    pub fn new(
        server_config: &SessionConfig,
        client_config: &SessionConfig,
        authenticator: Arc<dyn Authenticator>,
        username: &str,
        password: &[u8],
        seed: u8,
    ) -> Self {
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
        let addresses = super::super::ipv4_pools([10, 99, 0, 2], [10, 99, 0, 254]);
        Pair::between(
            SessionEnd::new(
                server,
                Services::new(Some(authenticator), addresses.clone()),
            ),
            SessionEnd::new(client, Services::new(None, addresses)),
            base,
        )
    }

    /// Answers the server's address requests from `addresses` instead.
    pub fn with_addresses(mut self, addresses: Arc<ServerPools>) -> Self {
        // The client's services hold the pools too (it never asks): swap
        // both, so that the default pools are freed here rather than with
        // the pair (the gate's setup part counts the allocator's work,
        // which depends on that order).
        self.client.services.addresses = addresses.clone();
        self.server.services.addresses = addresses;
        self
    }

    /// Runs until both calls are established and IPCP is up on both sides.
    /// Without loss this needs no timer at all; see
    /// [`connect_without_timers`](Self::connect_without_timers).
    pub fn connect(&mut self) -> bool {
        self.run_until(Duration::from_secs(120), Self::is_up)
    }

    /// Connects without advancing the virtual clock: on a lossless stream
    /// every step of the setup must follow from the previous one, never
    /// from a retransmission timer. Returns whether the session came up.
    pub fn connect_without_timers(&mut self) -> bool {
        self.drive_now();
        self.is_up()
    }

    fn is_up(&self) -> bool {
        self.client.session.is_established()
            && self.server.session.is_established()
            && self.client.session.ipv4().is_some()
            && self.server.session.ipv4().is_some()
    }

    /// Sends an IP packet from one side; the caller drives delivery.
    pub fn send_ip(&mut self, from: Direction, packet: &[u8]) -> Result<(), SendIpError> {
        let side = match from {
            Direction::ClientToServer => &mut self.client,
            Direction::ServerToClient => &mut self.server,
        };
        side.endpoint.session.send_ip(packet, &mut side.outbox)
    }
}

/// Whether an SSTP packet is a data packet (C bit clear, [MS-SSTP] 2.2.1).
///
/// [MS-SSTP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstp/
pub fn is_data_packet(packet: &[u8]) -> bool {
    packet.get(1).is_some_and(|b| b & 1 == 0)
}

/// The message type of an SSTP control packet ([MS-SSTP] 2.2.2).
///
/// [MS-SSTP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstp/
pub fn control_message_type(packet: &[u8]) -> Option<u16> {
    if is_data_packet(packet) {
        return None;
    }
    Some(u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]))
}
