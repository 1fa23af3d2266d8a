//! One SSTP session: the SSTP connection and the PPP link that runs inside
//! it, wired together for either role. This is what the server runtime and
//! the load generator drive.
//!
//! The wiring follows [MS-SSTP] 3.2.5/3.3.5:
//!
//! * SSTP's "lower link up" (`PppReady`: Call Connect Acknowledge sent or
//!   received) opens the PPP link;
//! * PPP authentication yields the HLAK, which the SSTP layer needs to send
//!   (client) or verify (server) the crypto binding in Call Connected
//!   ([MS-SSTP] 3.2.5.2);
//! * network-layer traffic (IPv4, IPv6) passes only once the call is
//!   established, i.e. Call Connected was verified ([MS-SSTP] 3.3.5.2.3),
//!   judged per frame;
//! * when the PPP link finishes, SSTP sends Call Disconnect; when SSTP
//!   closes, the session is over;
//! * an authenticator's answer is delivered with the id of the request it
//!   answers ([`Session::auth_decision`]) and applied to that request only
//!   (see [`crate::proto::ppp::link`] for the authentication phase's rules:
//!   renegotiation, the per-connection attempt limit, failure reports).
//!
//! The server also polices the source addresses of client traffic
//! (anti-spoofing) and answers IPv6 Router Solicitations with the
//! session's delegated prefix ([`crate::proto::ndp`]).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::auth::{AuthDecision, AuthRequest, AuthRequestId, FailedAuthAttempt};
use super::ndp::{self, RouterAdvertisement};
use super::ppp::{
    AddressRequestId, IpVersion, Ipv4AddressRequest, Ipv4Params, Ipv6Params, PppCloseReason,
    PppConfig, PppDropReason, PppEvent, PppLink, StaleAddressAnswer,
};
use super::route::Ipv4Prefix;
use super::sstp::connection::CloseReason as SstpCloseReason;
use super::sstp::connection::DropReason as SstpDropReason;
use super::sstp::wire::packet_header;
use super::sstp::{CertHashes, ClientHandshake, SstpConfig, SstpConnection, SstpEvent, Transmit};
use super::Role;

/// Largest SSTP packet ([MS-SSTP] 2.2.1: 12-bit length).
const MAX_SSTP_PACKET: usize = 4095;
/// SSTP packet header length.
const SSTP_HEADER_LEN: usize = 4;

/// Configuration of both layers, shared by many sessions.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The SSTP layer's timers and limits.
    pub sstp: Arc<SstpConfig>,
    /// The PPP link's negotiation, authentication and NCP settings.
    pub ppp: Arc<PppConfig>,
    /// Server: DNS servers announced to IPv6 clients ([RFC 8106]).
    ///
    /// [RFC 8106]: https://www.rfc-editor.org/rfc/rfc8106
    pub ipv6_dns: Vec<Ipv6Addr>,
    /// Server: link MTU announced in Router Advertisements.
    pub ipv6_mtu: Option<u32>,
}

impl SessionConfig {
    /// Both layers' configuration, without IPv6 DNS servers or MTU.
    pub fn new(sstp: SstpConfig, ppp: PppConfig) -> Self {
        SessionConfig {
            sstp: Arc::new(sstp),
            ppp: Arc::new(ppp),
            ipv6_dns: Vec::new(),
            ipv6_mtu: None,
        }
    }
}

/// What the client role needs to connect.
#[derive(Clone, Debug)]
pub struct ClientParams {
    /// The HTTP request's Host and SSTPCORRELATIONID.
    pub handshake: ClientHandshake,
    /// Hashes of the server's leaf certificate as seen in the TLS handshake.
    pub server_cert: CertHashes,
    /// The name to authenticate as.
    pub username: String,
    /// The password (PAP sends it; CHAP and MS-CHAPv2 prove knowing it).
    pub password: Vec<u8>,
}

/// What a session reports to its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The HTTP exchange is over (server: request accepted, with the
    /// client's SSTPCORRELATIONID; client: 200 received).
    HttpHandshake {
        /// The SSTPCORRELATIONID ([MS-SSTP] 3.2.4.1); empty if the request
        /// had none.
        correlation_id: String,
    },
    /// SSTP's lower link is up and PPP has started (server: Call Connect
    /// Acknowledge sent; client: received).
    PppStarted,
    /// Server: judge these credentials and answer with
    /// [`Session::auth_decision`], now or later, naming `request.id`.
    AuthRequest(AuthRequest),
    /// Server: an authentication attempt failed. Log it (with the peer's
    /// address: the name is only what the peer claimed) and count it under
    /// `auth_failure_<method>`.
    AuthAttemptFailed(FailedAuthAttempt),
    /// PPP authentication succeeded.
    Authenticated {
        /// Server: the peer's authenticated name (empty when no
        /// authentication was negotiated). Client: our own.
        username: String,
    },
    /// The SSTP call is established (server: Call Connected verified;
    /// client: Call Connected sent). IP traffic may flow once an NCP is up.
    Established,
    /// Server: the client needs an IPv4 address. Reserve one (the
    /// `wanted` one if set, else from a pool) and answer with
    /// [`Session::assign_ipv4`], naming `request.id`.
    Ipv4AddressRequest(Ipv4AddressRequest),
    /// Server: the address assigned with [`Session::assign_ipv4`] is no
    /// longer used; return it to its pool.
    Ipv4AddressReleased(Ipv4Addr),
    /// IPCP opened: route `peer` to this session.
    Ipv4Up(Ipv4Params),
    /// IPv6CP opened. A server should delegate a prefix with
    /// [`Session::set_ipv6_prefix`].
    Ipv6Up(Ipv6Params),
    /// Client: the server announced this prefix (Router Advertisement).
    Ipv6Prefix {
        /// The prefix from the Prefix Information option.
        prefix: Ipv6Addr,
        /// Its length in bits.
        len: u8,
    },
    /// IPCP left Opened: stop routing to this session. A server's address
    /// stays reserved until [`SessionEvent::Ipv4AddressReleased`].
    Ipv4Down,
    /// IPv6CP left Opened: stop routing the delegated prefix to this
    /// session.
    Ipv6Down,
    /// Input was discarded `count` times; count it under `reason.as_str()`.
    Dropped {
        /// Why it was discarded.
        reason: DropReason,
        /// How many times (SSTP reports repeats in one event).
        count: u32,
    },
    /// The session is over; the last event. The reason is the first cause.
    Closed(CloseReason),
}

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The SSTP layer ended the session (abort, disconnect, timeouts,
    /// transport loss, HTTP refusal).
    Sstp(SstpCloseReason),
    /// The PPP link finished first (authentication failure, negotiation
    /// failure, terminate).
    Ppp(PppCloseReason),
}

impl CloseReason {
    /// Short name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            CloseReason::Sstp(r) => r.as_str(),
            CloseReason::Ppp(r) => r.as_str(),
        }
    }
}

/// Why input was discarded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Discarded by the SSTP layer.
    Sstp(SstpDropReason),
    /// Discarded by the PPP link.
    Ppp(PppDropReason),
    /// An IP packet before Call Connected was verified ([MS-SSTP] 3.3.5.2.3).
    IpBeforeCallConnected,
    /// Server: an IP packet whose source is not the client's address.
    SpoofedSource,
    /// A packet too short to carry an IP header.
    MalformedIpPacket,
    /// Server: an IP packet longer than the MRU the client agreed to (or
    /// the authenticator's Framed-MTU, when smaller): [RFC 1661] 6.1 says
    /// the peer must not send more.
    ///
    /// [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661
    IpExceedsMru,
    /// Server: an authenticator's answer to a request the session no
    /// longer waits for (see [`AuthRequestId`]); not applied.
    StaleAuthDecision,
    /// Server: an address answer to a request the session no longer
    /// waits for; not applied.
    StaleAddressAnswer,
}

impl DropReason {
    /// Short name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::Sstp(r) => r.as_str(),
            DropReason::Ppp(r) => r.as_str(),
            DropReason::IpBeforeCallConnected => "ip_before_call_connected",
            DropReason::SpoofedSource => "spoofed_source",
            DropReason::MalformedIpPacket => "malformed_ip_packet",
            DropReason::IpExceedsMru => "ip_exceeds_mru",
            DropReason::StaleAuthDecision => "stale_auth_decision",
            DropReason::StaleAddressAnswer => "stale_address_answer",
        }
    }
}

/// Why an IP packet could not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendIpError {
    /// The call is not established or no NCP for this IP version is up.
    NotReady,
    /// The session is closing or closed.
    Closed,
    /// Larger than an SSTP packet can carry.
    TooLarge,
    /// Not an IPv4 or IPv6 packet.
    NotIp,
}

impl SendIpError {
    /// Short name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            SendIpError::NotReady => "send_not_ready",
            SendIpError::Closed => "send_closed",
            SendIpError::TooLarge => "send_too_large",
            SendIpError::NotIp => "send_not_ip",
        }
    }
}

/// Per-session counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// IP packets received from the peer and passed on.
    pub ip_packets_in: u64,
    /// Their octets (IP headers included).
    pub ip_bytes_in: u64,
    /// IP packets sent with [`Session::send_ip`].
    pub ip_packets_out: u64,
    /// Their octets (IP headers included).
    pub ip_bytes_out: u64,
    /// Server: packets dropped for a source address not the client's.
    pub spoofed_drops: u64,
}

impl SessionStats {
    /// IP packets both ways: whether, and how much, the session has
    /// carried IP.
    pub fn ip_packets(&self) -> u64 {
        self.ip_packets_in + self.ip_packets_out
    }
}

/// One SSTP session, either role.
#[derive(Debug)]
pub struct Session {
    role: Role,
    sstp: SstpConnection,
    ppp: PppLink,
    config: SessionConfig,
    events: VecDeque<SessionEvent>,
    /// Scratch for outgoing PPP control frames.
    frame: Vec<u8>,
    ipv4: Option<Ipv4Params>,
    ipv6: Option<Ipv6Params>,
    ipv6_prefix: Option<(Ipv6Addr, u8)>,
    /// Server: IPv4 prefixes routed to this client (RADIUS Framed-Route),
    /// whose addresses it may send from while IPCP is up.
    routed_ipv4: Vec<Ipv4Prefix>,
    username: Option<String>,
    /// Server: the name of the latest authentication request.
    claimed_username: Option<String>,
    http_reported: bool,
    /// The authenticator's Framed-MTU for this peer (`usize::MAX`: none):
    /// larger IP packets are not sent. Kept here so the data path reads
    /// one integer.
    ip_send_limit: usize,
    /// The first cause of the end, reported in `Closed`.
    close_cause: Option<CloseReason>,
    closed_reported: bool,
    stats: SessionStats,
    /// Replies the session itself generates (Router Advertisements), sent
    /// as PPP data frames.
    ip_replies: Vec<u8>,
}

impl Session {
    /// A server session for a connection accepted at `now`.
    pub fn server(
        config: &SessionConfig,
        now: Instant,
        cert: CertHashes,
        seed: [u8; 32],
    ) -> Session {
        let mut rng = StdRng::from_seed(seed);
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let mut ppp_seed = [0u8; 32];
        rng.fill_bytes(&mut ppp_seed);
        Session::new(
            Role::Server,
            SstpConnection::server(config.sstp.clone(), now, cert, nonce),
            PppLink::server(config.ppp.clone(), now, ppp_seed),
            config,
            now,
        )
    }

    /// A client session; the HTTP request is queued at once.
    pub fn client(
        config: &SessionConfig,
        now: Instant,
        params: ClientParams,
        seed: [u8; 32],
    ) -> Session {
        let ClientParams {
            handshake,
            server_cert,
            username,
            password,
        } = params;
        Session::new(
            Role::Client,
            SstpConnection::client(config.sstp.clone(), now, handshake, server_cert),
            PppLink::client(config.ppp.clone(), now, &username, &password, seed),
            config,
            now,
        )
    }

    fn new(
        role: Role,
        sstp: SstpConnection,
        ppp: PppLink,
        config: &SessionConfig,
        now: Instant,
    ) -> Session {
        let mut session = Session {
            role,
            sstp,
            ppp,
            config: config.clone(),
            events: VecDeque::new(),
            frame: Vec::with_capacity(256),
            ipv4: None,
            ipv6: None,
            ipv6_prefix: None,
            routed_ipv4: Vec::new(),
            username: None,
            claimed_username: None,
            http_reported: false,
            ip_send_limit: usize::MAX,
            close_cause: None,
            closed_reported: false,
            stats: SessionStats::default(),
            ip_replies: Vec::new(),
        };
        session.settle(now);
        session
    }

    /// Feeds TLS plaintext from the peer. IP packets for the network (server)
    /// or for the application (client) are passed to `on_ip`, borrowed.
    pub fn handle_input(&mut self, now: Instant, data: &[u8], on_ip: &mut impl FnMut(&[u8])) {
        let Session {
            role,
            sstp,
            ppp,
            events,
            ipv4,
            ipv6,
            ipv6_prefix,
            routed_ipv4,
            stats,
            ip_replies,
            ..
        } = self;
        let role = *role;
        // The largest IP packet the client may send: our MRU, or the
        // authenticator's Framed-MTU when smaller.
        let receive_limit = usize::from(
            ppp.framed_mtu()
                .map_or(ppp.local_mru(), |mtu| mtu.min(ppp.local_mru())),
        );
        sstp.handle_input_with_state(now, data, &mut |frame, established| {
            // PPP frames are only passed once SSTP's lower link is up. The
            // peer's first LCP frame often shares a read with the Call
            // Connect Acknowledge that brought the link up: open PPP here,
            // before the frame, or it would be dropped and cost a restart
            // interval. (`open` does nothing on an open link.)
            ppp.open(now);
            ppp.handle_frame(now, frame, &mut |version, packet| {
                if !established {
                    events.push_back(SessionEvent::Dropped {
                        reason: DropReason::IpBeforeCallConnected,
                        count: 1,
                    });
                    return;
                }
                if role == Role::Server {
                    if packet.len() > receive_limit {
                        events.push_back(SessionEvent::Dropped {
                            reason: DropReason::IpExceedsMru,
                            count: 1,
                        });
                        return;
                    }
                    match check_source(
                        version,
                        packet,
                        ipv4.as_ref(),
                        routed_ipv4,
                        ipv6.as_ref(),
                        *ipv6_prefix,
                    ) {
                        SourceCheck::Allowed => {}
                        SourceCheck::RouterSolicitation => {
                            ip_replies.push(1);
                            return;
                        }
                        SourceCheck::Spoofed => {
                            stats.spoofed_drops += 1;
                            events.push_back(SessionEvent::Dropped {
                                reason: DropReason::SpoofedSource,
                                count: 1,
                            });
                            return;
                        }
                        SourceCheck::Malformed => {
                            events.push_back(SessionEvent::Dropped {
                                reason: DropReason::MalformedIpPacket,
                                count: 1,
                            });
                            return;
                        }
                    }
                } else if version == IpVersion::V6 {
                    if let Some(ra) = RouterAdvertisement::parse(packet) {
                        events.push_back(SessionEvent::Ipv6Prefix {
                            prefix: ra.prefix,
                            len: ra.prefix_len,
                        });
                        return;
                    }
                }
                stats.ip_packets_in += 1;
                stats.ip_bytes_in += packet.len() as u64;
                on_ip(packet);
            });
        });
        if !self.ip_replies.is_empty() {
            // A Router Solicitation arrived: answer with our advertisement.
            self.ip_replies.clear();
            self.queue_router_advertisement(None);
        }
        self.settle(now);
    }

    /// Appends the SSTP data packet carrying `packet` (an IPv4 or IPv6
    /// packet) to `out`, the caller's TLS plaintext, as one unit. This is
    /// the data path: one header write and one copy.
    pub fn send_ip(&mut self, packet: &[u8], out: &mut Transmit) -> Result<(), SendIpError> {
        self.send_ip_pieces(packet, None, out)
    }

    /// [`Session::send_ip`] for a packet in two pieces, `head` then
    /// `rest`: a segment cut from a super-packet, its headers rebuilt
    /// apart from its payload, which stays where it was read
    /// (`tun::offload::Segmenter::for_each_segment`). Each byte is copied
    /// once, straight behind the SSTP and PPP headers.
    pub fn send_ip_gathered(
        &mut self,
        head: &[u8],
        rest: &[u8],
        out: &mut Transmit,
    ) -> Result<(), SendIpError> {
        self.send_ip_pieces(head, Some(rest), out)
    }

    /// Both of the above: inlined into each, so that a whole packet pays
    /// nothing for the second piece it does not have.
    #[inline(always)]
    fn send_ip_pieces(
        &mut self,
        head: &[u8],
        rest: Option<&[u8]>,
        out: &mut Transmit,
    ) -> Result<(), SendIpError> {
        let version = match head.first().map(|b| b >> 4) {
            Some(4) => IpVersion::V4,
            Some(6) => IpVersion::V6,
            _ => return Err(SendIpError::NotIp),
        };
        if !self.sstp.is_established() {
            return Err(if self.close_cause.is_some() || self.sstp.is_closed() {
                SendIpError::Closed
            } else {
                SendIpError::NotReady
            });
        }
        let up = match version {
            IpVersion::V4 => self.ipv4.is_some(),
            IpVersion::V6 => self.ipv6.is_some(),
        };
        if !up {
            return Err(SendIpError::NotReady);
        }
        let packet_len = head.len() + rest.map_or(0, <[u8]>::len);
        if packet_len > self.ip_send_limit {
            return Err(SendIpError::TooLarge);
        }
        // Queued control bytes go first so the stream stays in order.
        self.sstp.write_queued(out);
        let mut unit = out.unit();
        let start = unit.start();
        unit.extend_from_slice(&[0; SSTP_HEADER_LEN]);
        self.ppp.encapsulate_ip(version, head, &mut unit);
        if let Some(rest) = rest {
            unit.extend_from_slice(rest);
        }
        let len = unit.len() - start;
        if len > MAX_SSTP_PACKET {
            unit.truncate(start);
            return Err(SendIpError::TooLarge);
        }
        unit[start..start + SSTP_HEADER_LEN].copy_from_slice(&packet_header(false, len));
        self.stats.ip_packets_out += 1;
        self.stats.ip_bytes_out += packet_len as u64;
        Ok(())
    }

    /// Appends everything queued for the peer (HTTP, SSTP control, PPP
    /// control frames) to `out`, one unit per HTTP message or SSTP packet.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) {
        self.flush_ppp();
        self.sstp.poll_transmit(now, out);
    }

    /// Gives back the memory of the session's empty queues, the PPP
    /// link's included (the runtime calls this once the session has been
    /// quiet for a while; nothing it holds is lost).
    pub fn release_idle_capacity(&mut self) {
        crate::proto::release_if_empty(&mut self.events);
        // Scratch for control frames only: empty between calls.
        self.frame = Vec::new();
        self.sstp.release_idle_capacity();
        self.ppp.release_idle_capacity();
    }

    /// The next event for the owner, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The next instant [`Session::handle_timeout`] must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.sstp.poll_timeout(), self.ppp.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires both layers' timers due at `now` (retransmissions, echo,
    /// negotiation and phase limits).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.sstp.handle_timeout(now);
        self.ppp.handle_timeout(now);
        self.settle(now);
    }

    /// Server: the answer to the [`SessionEvent::Ipv4AddressRequest`] whose
    /// `id` is `request`: the address reserved for the client, or none
    /// (the session then closes with `no_address`). A stale answer (the
    /// request was abandoned by a renegotiation or the end of the link) is
    /// refused and reported as [`DropReason::StaleAddressAnswer`]; the
    /// caller keeps the address and must release it.
    pub fn assign_ipv4(
        &mut self,
        now: Instant,
        request: AddressRequestId,
        address: Option<Ipv4Addr>,
    ) -> Result<(), StaleAddressAnswer> {
        let result = self.ppp.assign_ipv4(now, request, address);
        if result.is_err() {
            self.events.push_back(SessionEvent::Dropped {
                reason: DropReason::StaleAddressAnswer,
                count: 1,
            });
        }
        self.settle(now);
        result
    }

    /// Server: the answer to the [`SessionEvent::AuthRequest`] whose
    /// `id` is `request`. Applied only to that very request, and only
    /// while the session still waits for it: any other answer is stale,
    /// dropped, and reported as [`DropReason::StaleAuthDecision`].
    ///
    /// Returns whether the answer was applied: the owner acts on an answer
    /// (policy, the password-guessing throttle) only when the core did.
    pub fn auth_decision(
        &mut self,
        now: Instant,
        request: AuthRequestId,
        decision: AuthDecision,
    ) -> bool {
        let applied = self.ppp.auth_decision(now, request, decision).is_ok();
        if !applied {
            self.events.push_back(SessionEvent::Dropped {
                reason: DropReason::StaleAuthDecision,
                count: 1,
            });
        }
        self.ip_send_limit = self.ppp.framed_mtu().map_or(usize::MAX, usize::from);
        self.settle(now);
        applied
    }

    /// Server: the IPv6 prefix delegated to this client; announced at once
    /// and in answer to Router Solicitations. Traffic from addresses in it
    /// is accepted.
    pub fn set_ipv6_prefix(&mut self, now: Instant, prefix: Ipv6Addr, len: u8) {
        self.ipv6_prefix = Some((prefix, len));
        self.queue_router_advertisement(Some(ndp::ALL_NODES));
        self.settle(now);
    }

    /// Server: the IPv4 prefixes routed to this client (RADIUS
    /// Framed-Route, [RFC 2865] 5.22, as far as the runtime installed
    /// them). Traffic from addresses in them is accepted besides the
    /// client's own address, until IPCP goes down (which forgets them) or
    /// the next call replaces them.
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub fn set_ipv4_routes(&mut self, prefixes: &[Ipv4Prefix]) {
        self.routed_ipv4.clear();
        self.routed_ipv4.extend_from_slice(prefixes);
    }

    /// Graceful close: LCP Terminate, then Call Disconnect.
    pub fn close(&mut self, now: Instant) {
        if self.ppp_finished() {
            self.sstp.close(now);
        } else {
            self.ppp.close(now);
        }
        self.settle(now);
    }

    /// The TLS/TCP connection is gone.
    pub fn transport_closed(&mut self, now: Instant) {
        self.sstp.transport_closed();
        self.settle(now);
    }

    /// Nothing more will be sent; the owner may close the connection.
    pub fn is_closed(&self) -> bool {
        self.sstp.is_closed()
    }

    /// Whether the SSTP call is established (crypto binding done).
    pub fn is_established(&self) -> bool {
        self.sstp.is_established()
    }

    /// Which end this session plays.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The SSTPCORRELATIONID: the client's own, or the one the server
    /// received.
    pub fn correlation_id(&self) -> Option<&str> {
        self.sstp.correlation_id()
    }

    /// The authenticated user name, once authentication succeeded.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Server: the name the peer last tried to authenticate as, whether or
    /// not it succeeded (for the log line of a session that failed).
    pub fn claimed_username(&self) -> Option<&str> {
        self.claimed_username.as_deref()
    }

    /// The IPv4 addresses, while IPCP is open.
    pub fn ipv4(&self) -> Option<Ipv4Params> {
        self.ipv4
    }

    /// The interface identifiers, while IPv6CP is open.
    pub fn ipv6(&self) -> Option<Ipv6Params> {
        self.ipv6
    }

    /// The counters so far.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// The SSTP connection (read-only: state, hash protocol).
    pub fn sstp(&self) -> &SstpConnection {
        &self.sstp
    }

    /// The PPP link (read-only: phase, MRU, counters).
    pub fn ppp(&self) -> &PppLink {
        &self.ppp
    }

    fn ppp_finished(&self) -> bool {
        self.close_cause.is_some()
    }

    /// Moves PPP output into SSTP data packets.
    fn flush_ppp(&mut self) {
        loop {
            self.frame.clear();
            if !self.ppp.poll_transmit(&mut self.frame) {
                return;
            }
            // Before the Call Connect Acknowledge PPP has not been opened, and
            // after Closing it may not send: either way the frame is moot.
            let _ = self.sstp.send_ppp_queued(&self.frame);
        }
    }

    fn queue_router_advertisement(&mut self, destination: Option<Ipv6Addr>) {
        let (Some((prefix, len)), Some(ipv6)) = (self.ipv6_prefix, self.ipv6) else {
            return;
        };
        if !self.sstp.is_established() {
            // Like any IP traffic, not before Call Connected is verified;
            // sent on `Established` instead.
            return;
        }
        let ra = RouterAdvertisement {
            prefix,
            prefix_len: len,
            router_lifetime: 1800,
            mtu: self.config.ipv6_mtu,
            dns: self.config.ipv6_dns.clone(),
        };
        let mut packet = Vec::with_capacity(128);
        let destination = destination.unwrap_or(ndp::ALL_NODES);
        ra.encode(ndp::link_local(ipv6.local_ifid), destination, &mut packet);
        self.frame.clear();
        self.ppp
            .encapsulate_ip(IpVersion::V6, &packet, &mut self.frame);
        let _ = self.sstp.send_ppp_queued(&self.frame);
    }

    /// Routes events between the layers and translates them for the owner.
    fn settle(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.ppp.poll_event() {
                progressed = true;
                self.on_ppp_event(now, event);
            }
            while let Some(event) = self.sstp.poll_event() {
                progressed = true;
                self.on_sstp_event(now, event);
            }
            if !self.http_reported && self.http_done() {
                self.http_reported = true;
                let correlation_id = self.sstp.correlation_id().unwrap_or_default().to_string();
                // Keep the order: HTTP happened before anything else seen.
                self.events
                    .push_front(SessionEvent::HttpHandshake { correlation_id });
            }
            self.flush_ppp();
            if !progressed {
                break;
            }
        }
        if self.sstp.is_closed() && !self.closed_reported {
            self.closed_reported = true;
            let reason = self
                .close_cause
                .clone()
                .unwrap_or(CloseReason::Sstp(SstpCloseReason::TransportClosed));
            self.events.push_back(SessionEvent::Closed(reason));
        }
    }

    fn http_done(&self) -> bool {
        use super::sstp::SstpState::*;
        !matches!(self.sstp.state(), ServerHttpPending | ClientHttpPending)
            && self.sstp.state() != Closed
    }

    fn on_ppp_event(&mut self, now: Instant, event: PppEvent) {
        match event {
            PppEvent::AuthRequest(request) => {
                self.claimed_username = Some(request.username.clone());
                self.events.push_back(SessionEvent::AuthRequest(request))
            }
            PppEvent::AuthAttemptFailed(attempt) => self
                .events
                .push_back(SessionEvent::AuthAttemptFailed(attempt)),
            PppEvent::Authenticated { username, hlak } => {
                self.sstp.set_hlak(now, hlak);
                self.username = Some(username.clone());
                self.events
                    .push_back(SessionEvent::Authenticated { username });
            }
            PppEvent::Ipv4AddressRequest(request) => self
                .events
                .push_back(SessionEvent::Ipv4AddressRequest(request)),
            PppEvent::Ipv4AddressReleased(address) => self
                .events
                .push_back(SessionEvent::Ipv4AddressReleased(address)),
            PppEvent::Ipv4Up(params) => {
                self.ipv4 = Some(params);
                self.events.push_back(SessionEvent::Ipv4Up(params));
            }
            PppEvent::Ipv6Up(params) => {
                self.ipv6 = Some(params);
                self.events.push_back(SessionEvent::Ipv6Up(params));
            }
            PppEvent::Ipv4Down => {
                self.ipv4 = None;
                self.routed_ipv4.clear();
                self.events.push_back(SessionEvent::Ipv4Down);
            }
            PppEvent::Ipv6Down => {
                self.ipv6 = None;
                self.ipv6_prefix = None;
                self.events.push_back(SessionEvent::Ipv6Down);
            }
            PppEvent::Closed(reason) => {
                if self.close_cause.is_none() {
                    self.close_cause = Some(CloseReason::Ppp(reason));
                }
                // The PPP link is done: end the call ([MS-SSTP] 3.1.7.3).
                self.sstp.close(now);
            }
            PppEvent::Dropped(reason) => self.events.push_back(SessionEvent::Dropped {
                reason: DropReason::Ppp(reason),
                count: 1,
            }),
        }
    }

    fn on_sstp_event(&mut self, now: Instant, event: SstpEvent) {
        match event {
            SstpEvent::PppReady => {
                self.events.push_back(SessionEvent::PppStarted);
                self.ppp.open(now);
            }
            SstpEvent::Established { .. } => {
                self.events.push_back(SessionEvent::Established);
                // A prefix delegated before the call was verified is
                // announced now.
                self.queue_router_advertisement(Some(ndp::ALL_NODES));
            }
            SstpEvent::Dropped { reason, count } => self.events.push_back(SessionEvent::Dropped {
                reason: DropReason::Sstp(reason),
                count,
            }),
            SstpEvent::Closing(reason) | SstpEvent::Closed(reason) => {
                if self.close_cause.is_none() {
                    // PPP may have begun terminating first (the peer
                    // rejected our credentials) and the peer's Call
                    // Disconnect overtaken the Terminate exchange: that
                    // earlier cause is the one to report.
                    self.close_cause = Some(match self.ppp.closing_reason() {
                        Some(ppp) => CloseReason::Ppp(ppp),
                        None => CloseReason::Sstp(reason),
                    });
                }
            }
            SstpEvent::NakSent { .. } | SstpEvent::NakReceived { .. } => {}
        }
    }
}

enum SourceCheck {
    Allowed,
    Spoofed,
    Malformed,
    RouterSolicitation,
}

/// Anti-spoofing ([MS-SSTP] leaves it to the server; every VPN server
/// must): IPv4 from the assigned address or a prefix routed to the client
/// (Framed-Route); IPv6 from the link-local address IPv6CP agreed or from
/// the delegated prefix.
#[inline]
fn check_source(
    version: IpVersion,
    packet: &[u8],
    ipv4: Option<&Ipv4Params>,
    routed_ipv4: &[Ipv4Prefix],
    ipv6: Option<&Ipv6Params>,
    prefix: Option<(Ipv6Addr, u8)>,
) -> SourceCheck {
    match version {
        IpVersion::V4 => {
            let Some(src) = packet.get(12..16) else {
                return SourceCheck::Malformed;
            };
            if packet[0] >> 4 != 4 {
                return SourceCheck::Malformed;
            }
            let src = Ipv4Addr::new(src[0], src[1], src[2], src[3]);
            match ipv4 {
                Some(p) if p.peer == src => SourceCheck::Allowed,
                // The common case has no routes: an empty scan.
                Some(_) if routed_ipv4.iter().any(|r| r.contains(src)) => SourceCheck::Allowed,
                _ => SourceCheck::Spoofed,
            }
        }
        IpVersion::V6 => {
            let Some(src) = packet.get(8..24) else {
                return SourceCheck::Malformed;
            };
            if packet[0] >> 4 != 6 {
                return SourceCheck::Malformed;
            }
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(src).unwrap_or([0; 16]));
            let link_local_ok = ipv6.is_some_and(|p| src == ndp::link_local(p.peer_ifid));
            let prefix_ok = prefix.is_some_and(|(prefix, len)| in_prefix(src, prefix, len));
            if ndp::is_router_solicitation(packet) && (link_local_ok || src.is_unspecified()) {
                return SourceCheck::RouterSolicitation;
            }
            if link_local_ok || prefix_ok {
                SourceCheck::Allowed
            } else {
                SourceCheck::Spoofed
            }
        }
    }
}

fn in_prefix(addr: Ipv6Addr, prefix: Ipv6Addr, len: u8) -> bool {
    if len == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(len.min(128)));
    u128::from(addr) & mask == u128::from(prefix) & mask
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use crate::proto::auth::{AuthProtocol, LocalAuthenticator};
    use crate::proto::ppp::{IpcpConfig, PppConfig};
    use crate::proto::session::SessionConfig;
    use crate::proto::sstp::SstpConfig;
    use crate::testing::pair::SessionPair;
    use crate::testing::StaticPasswords;

    fn config(local_address: Option<Ipv4Addr>) -> SessionConfig {
        let ppp = PppConfig {
            auth_protocols: vec![AuthProtocol::MsChapV2],
            ipcp: IpcpConfig {
                local_address,
                ..IpcpConfig::default()
            },
            ..PppConfig::default()
        };
        SessionConfig::new(SstpConfig::default(), ppp)
    }

    /// What an idle session keeps: no queue or scratch buffer the setup
    /// grew, no authentication machine once the peer is past it.
    #[test]
    fn an_idle_session_keeps_nothing_its_setup_grew() {
        let mut users = StaticPasswords::new();
        users.insert("alice", "correct horse");
        let mut pair = SessionPair::new(
            &config(Some(Ipv4Addr::new(10, 99, 0, 1))),
            &config(None),
            Arc::new(LocalAuthenticator::new(users)),
            "alice",
            b"correct horse",
            7,
        );
        assert!(pair.connect(), "{pair:?}");
        let server = &mut pair.server.session;
        assert!(
            !server.ppp.holds_auth_machine(),
            "the client's IPCP came after its Success"
        );
        assert!(server.frame.capacity() > 0 && server.sstp.queue_capacity() > 0);
        server.release_idle_capacity();
        assert_eq!(server.frame.capacity(), 0);
        assert_eq!(server.events.capacity(), 0);
        assert_eq!(server.sstp.queue_capacity(), 0);
    }
}
