//! The PPP link: the phases of [RFC 1661] 3 (Dead, Establish, Authenticate,
//! Network, Terminate) tying LCP, the authentication machines of
//! [`crate::proto::auth`], IPCP and IPv6CP together, in either role.
//!
//! Sans-IO: frames and `now` in ([`PppLink::handle_frame`],
//! [`PppLink::handle_timeout`]); frames, events and a timer deadline out
//! ([`PppLink::poll_transmit`], [`PppLink::poll_event`],
//! [`PppLink::poll_timeout`]). IP packets are handed to a callback borrowing
//! the input and encapsulated into the caller's buffer, without allocation.
//!
//! # The authentication phase (server)
//!
//! * **Answers are bound to their request.** Every [`PppEvent::AuthRequest`]
//!   carries an [`AuthRequestId`], numbered by the link and never reused on
//!   it; [`PppLink::auth_decision`] applies an answer only if it names the
//!   request the running machine waits for. Anything else is a
//!   [`StaleAuthDecision`]: dropped, never applied to whichever request is
//!   pending when it arrives.
//! * **LCP renegotiation while authenticating** (RFC 1661 allows it) ends
//!   the phase: the machine is dropped with its state, the request it was
//!   waiting on is abandoned (its answer will be stale) and counted as a
//!   failed attempt, and the next phase starts from nothing (a new machine,
//!   new challenge, no verdict inherited).
//! * **LCP renegotiation after a successful authentication** ends the link
//!   ([`PppCloseReason::RenegotiatedAfterAuthentication`]): the SSTP crypto
//!   binding ties the session to that authentication, and the identity of a
//!   session never changes.
//! * **The attempt limit is per connection**: failed attempts (refused,
//!   abandoned, timed out) are counted on the link across renegotiations,
//!   new machines start with the count so far, and reaching
//!   [`AuthConfig::max_attempts`] ends the link
//!   ([`PppCloseReason::AuthAttemptsExhausted`]).
//! * **Every failed attempt is reported** as [`PppEvent::AuthAttemptFailed`]
//!   with the claimed name and the method, for the owner to log and count.
//!
//! [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use crate::proto::rng::SessionRng;

use super::frame::{
    parse_frame, write_header, FrameError, HeaderFormat, PROTO_CHAP, PROTO_EAP, PROTO_IPCP,
    PROTO_IPV4, PROTO_IPV6, PROTO_IPV6CP, PROTO_LCP, PROTO_PAP,
};
use super::fsm::{
    ControlDrop, Ctx, Fsm, FsmConfig, LayerSignal, NegotiationFailure, OptionHandler, State,
};
use super::ipcp::{Ipcp, IpcpConfig, Ipv4Params};
use super::ipv6cp::{Ipv6Params, Ipv6cp, Ipv6cpConfig};
use super::lcp::{Lcp, LcpConfig};
use super::outbox::Outbox;
use crate::proto::auth::{
    AttemptOutcome, AuthClient, AuthConfig, AuthDecision, AuthEvent, AuthFailure, AuthPacketError,
    AuthProtocol, AuthRequest, AuthRequestId, AuthServer, FailedAuthAttempt, RejectReason,
    ZERO_HLAK,
};
use crate::proto::Role;

/// Drop reports kept queued before further ones are only counted (the
/// owner drains events after every call; this bounds a flood it does not).
const MAX_QUEUED_DROP_EVENTS: usize = 64;

/// Everything a link needs to know, shared by all links of a server.
#[derive(Clone)]
pub struct PppConfig {
    /// Restart timer and counters of every automaton ([RFC 1661] 4.6).
    pub fsm: FsmConfig,
    /// LCP: the options it requests and accepts, and its keepalive.
    pub lcp: LcpConfig,
    /// Server: the methods offered, most preferred first (default MS-CHAPv2,
    /// CHAP-MD5, PAP). Client: the methods it will use, most preferred first
    /// (suggested when the server offers one it does not speak). Empty: the
    /// server does not authenticate; the client refuses to authenticate.
    pub auth_protocols: Vec<AuthProtocol>,
    /// Timers and limits of the authentication machines.
    pub auth: AuthConfig,
    /// IPCP ([RFC 1332]): whether it runs, the addresses it offers or asks
    /// for.
    pub ipcp: IpcpConfig,
    /// IPv6CP ([RFC 5072]): whether it runs.
    pub ipv6cp: Ipv6cpConfig,
}

impl Default for PppConfig {
    fn default() -> Self {
        PppConfig {
            fsm: FsmConfig::default(),
            lcp: LcpConfig::default(),
            auth_protocols: vec![
                AuthProtocol::MsChapV2,
                AuthProtocol::ChapMd5,
                AuthProtocol::Pap,
            ],
            auth: AuthConfig::default(),
            ipcp: IpcpConfig::default(),
            ipv6cp: Ipv6cpConfig::default(),
        }
    }
}

impl fmt::Debug for PppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PppConfig")
            .field("fsm", &self.fsm)
            .field("lcp", &self.lcp)
            .field("auth_protocols", &self.auth_protocols)
            .field("auth", &self.auth)
            .field("ipcp", &self.ipcp)
            .field("ipv6cp", &self.ipv6cp)
            .finish()
    }
}

/// The IP version of a data packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4, PPP protocol 0x0021.
    V4,
    /// IPv6, PPP protocol 0x0057.
    V6,
}

impl IpVersion {
    /// The PPP protocol number carrying this version.
    pub fn ppp_protocol(self) -> u16 {
        match self {
            IpVersion::V4 => PROTO_IPV4,
            IpVersion::V6 => PROTO_IPV6,
        }
    }

    /// Short name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            IpVersion::V4 => "ipv4",
            IpVersion::V6 => "ipv6",
        }
    }
}

/// Link phases ([RFC 1661] 3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Not started, or finished.
    Dead,
    /// LCP negotiating.
    Establish,
    /// LCP open, authentication running.
    Authenticate,
    /// NCPs negotiating or open; IP flows where an NCP is open.
    Network,
    /// LCP terminating.
    Terminate,
}

impl Phase {
    /// Short snake_case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dead => "dead",
            Phase::Establish => "establish",
            Phase::Authenticate => "authenticate",
            Phase::Network => "network",
            Phase::Terminate => "terminate",
        }
    }
}

/// Why the link finished.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PppCloseReason {
    /// The peer sent an LCP Terminate-Request.
    PeerTerminated,
    /// [`PppLink::close`] was called.
    LocalClose,
    /// Authentication failed (server: after the Failure packet was sent).
    AuthFailed(AuthFailure),
    /// A control protocol gave up: Max-Configure, Max-Failure, a required
    /// option or code rejected by the peer.
    NegotiationFailed {
        /// LCP, IPCP or IPv6CP.
        protocol: u16,
        /// Why it gave up.
        failure: NegotiationFailure,
    },
    /// The peer accepts none of the authentication methods offered (or
    /// refuses to authenticate at all).
    NoCommonAuthProtocol,
    /// Our own Magic-Number kept coming back ([RFC 1661] 6.4).
    LoopbackDetected,
    /// No IPv4 address for the peer (pool exhausted, pinned address taken)
    /// or, as a client, none obtained from the server.
    NoAddress,
    /// The LCP keepalive got no Echo-Reply.
    EchoTimeout,
    /// Every network control protocol was rejected or terminated by the
    /// peer.
    NoNetworkProtocol,
    /// Server: the connection's failed authentication attempts reached
    /// [`AuthConfig::max_attempts`] (counted across LCP renegotiations).
    AuthAttemptsExhausted,
    /// Server: the peer renegotiated LCP after it had authenticated. The
    /// SSTP crypto binding ties the session to that one authentication, so
    /// the link ends rather than authenticate anew.
    RenegotiatedAfterAuthentication,
}

impl PppCloseReason {
    /// Short snake_case name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            PppCloseReason::PeerTerminated => "peer_terminated",
            PppCloseReason::LocalClose => "local_close",
            PppCloseReason::AuthFailed(_) => "auth_failed",
            PppCloseReason::NegotiationFailed { failure, .. } => match failure {
                NegotiationFailure::MaxConfigure => "max_configure",
                NegotiationFailure::MaxFailure => "max_failure",
                NegotiationFailure::Rejected => "rejected_by_peer",
                _ => "negotiation_failed",
            },
            PppCloseReason::NoCommonAuthProtocol => "no_common_auth_protocol",
            PppCloseReason::LoopbackDetected => "loopback_detected",
            PppCloseReason::NoAddress => "no_address",
            PppCloseReason::EchoTimeout => "echo_timeout",
            PppCloseReason::NoNetworkProtocol => "no_network_protocol",
            PppCloseReason::AuthAttemptsExhausted => "auth_attempts_exhausted",
            PppCloseReason::RenegotiatedAfterAuthentication => "renegotiated_after_auth",
        }
    }

    fn from_failure(protocol: u16, failure: NegotiationFailure) -> Self {
        match failure {
            NegotiationFailure::NoCommonAuthProtocol => PppCloseReason::NoCommonAuthProtocol,
            NegotiationFailure::LoopbackDetected => PppCloseReason::LoopbackDetected,
            NegotiationFailure::NoAddress => PppCloseReason::NoAddress,
            failure => PppCloseReason::NegotiationFailed { protocol, failure },
        }
    }
}

impl fmt::Display for PppCloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A received frame that was dropped (counted, non-fatal).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PppDropReason {
    /// Unparseable frame header, or an empty IP packet.
    Frame(FrameError),
    /// A control packet discarded by (or Code-Rejected by) an automaton.
    Control {
        /// The automaton's PPP protocol (LCP, IPCP, IPv6CP).
        protocol: u16,
        /// Why it did not take the packet.
        reason: ControlDrop,
    },
    /// A protocol this link does not run; answered with Protocol-Reject.
    UnknownProtocol(u16),
    /// A protocol not allowed in the current phase, silently discarded
    /// ([RFC 1661] 3.3-3.5).
    NotInPhase {
        /// The frame's PPP protocol.
        protocol: u16,
        /// The phase the link was in.
        phase: Phase,
    },
    /// An IP packet while its NCP is not open.
    IpNotOpen(IpVersion),
    /// An authentication packet the machine refused.
    Auth(AuthPacketError),
    /// The link has finished.
    LinkDead,
    /// An IPCP packet held while the address request waited, replaced by
    /// a newer one (only the latest is kept).
    HeldIpcpReplaced,
}

impl PppDropReason {
    /// Short snake_case name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            PppDropReason::Frame(_) => "malformed_frame",
            PppDropReason::Control { reason, .. } => reason.as_str(),
            PppDropReason::UnknownProtocol(_) => "unknown_protocol",
            PppDropReason::NotInPhase { .. } => "not_in_phase",
            PppDropReason::IpNotOpen(_) => "ip_not_open",
            PppDropReason::Auth(_) => "bad_auth_packet",
            PppDropReason::LinkDead => "link_dead",
            PppDropReason::HeldIpcpReplaced => "held_ipcp_replaced",
        }
    }
}

/// What the link reports to its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PppEvent {
    /// Server: judge these credentials and answer with
    /// [`PppLink::auth_decision`] (now or later), naming `request.id`.
    AuthRequest(AuthRequest),
    /// Server: a set of credentials failed (refused, abandoned by an LCP
    /// renegotiation, or timed out while judged). One per attempt.
    AuthAttemptFailed(FailedAuthAttempt),
    /// Authentication succeeded (both roles). `hlak` is this role's
    /// Higher-Layer Authentication Key for the SSTP crypto binding
    /// ([MS-SSTP] 3.2.5.2). Also emitted, with an empty `username` (server)
    /// and 32 zero octets, when no authentication was negotiated, so that
    /// the owner always learns the HLAK the same way.
    Authenticated {
        /// Server: the peer's authenticated name. Client: our own.
        username: String,
        /// The Higher-Layer Authentication Key described above.
        hlak: [u8; 32],
    },
    /// Server: IPCP needs the peer's address; answer with
    /// [`PppLink::assign_ipv4`].
    Ipv4AddressRequest(Ipv4AddressRequest),
    /// Server: the address assigned earlier is no longer used (the link
    /// left the Network phase); the owner may give it to someone else.
    Ipv4AddressReleased(Ipv4Addr),
    /// IPCP opened.
    Ipv4Up(Ipv4Params),
    /// IPv6CP opened.
    Ipv6Up(Ipv6Params),
    /// IPCP left Opened. On a server the address stays assigned until
    /// [`PppEvent::Ipv4AddressReleased`].
    Ipv4Down,
    /// IPv6CP left Opened.
    Ipv6Down,
    /// The link finished; nothing more will happen on it.
    Closed(PppCloseReason),
    /// A received frame was dropped.
    Dropped(PppDropReason),
}

/// Counters for the owner's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PppStats {
    /// Every frame passed to [`PppLink::handle_frame`].
    pub frames_received: u64,
    /// Frames dropped, each reported as a [`PppDropReason`] (or suppressed).
    pub frames_dropped: u64,
    /// IP packets handed to the owner.
    pub ip_packets_received: u64,
    /// Frames with a 1-octet Protocol field although PFC was not agreed
    /// (accepted anyway).
    pub unnegotiated_pfc: u64,
    /// Frames without `FF 03` although ACFC was not agreed (accepted
    /// anyway).
    pub unnegotiated_acfc: u64,
    /// LCP Protocol-Rejects sent for protocols this link does not run
    /// ([RFC 1661] 5.7).
    pub protocol_rejects_sent: u64,
    /// Drop reports not queued because too many were pending.
    pub drop_events_suppressed: u64,
}

/// The parts of an authenticator's [`crate::proto::auth::SessionPolicy`]
/// the link applies.
#[derive(Clone, Copy, Debug, Default)]
struct LinkPolicy {
    /// DNS servers IPCP offers instead of the configured ones.
    dns: Option<[Option<Ipv4Addr>; 2]>,
    /// Framed-MTU.
    mtu: Option<u16>,
}

/// Names one [`Ipv4AddressRequest`], so that its answer is applied to that
/// request and no other (a renegotiation may have made a new one since).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressRequestId(u64);

/// Server: IPCP needs an address for the peer. The owner answers with
/// [`PppLink::assign_ipv4`]: an address it reserved (from its pool, or the
/// `wanted` one), or none (the link then closes with `no_address`). The
/// owner keeps the address reserved until [`PppEvent::Ipv4AddressReleased`]
/// names it, or until it drops the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4AddressRequest {
    /// Quote it in the answer.
    pub id: AddressRequestId,
    /// The authenticated user.
    pub username: String,
    /// The address the authenticator pinned for this user (Framed-IP), to be
    /// honoured or refused, never replaced by another.
    pub wanted: Option<Ipv4Addr>,
}

/// [`PppLink::assign_ipv4`]'s refusal: the link waits for no such request
/// (a renegotiation or the end of the link abandoned it). The owner keeps
/// the address it offered and should release it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaleAddressAnswer(pub AddressRequestId);

/// The client's credentials.
struct Credentials {
    username: String,
    password: Vec<u8>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The authentication machine of the running Authenticate phase.
#[derive(Debug)]
enum AuthMachine {
    Server(AuthServer),
    Client(AuthClient),
    #[cfg(test)]
    Scripted(tests::ScriptedAuth),
}

impl AuthMachine {
    fn release_idle_capacity(&mut self) {
        match self {
            AuthMachine::Server(m) => m.release_idle_capacity(),
            AuthMachine::Client(m) => m.release_idle_capacity(),
            #[cfg(test)]
            AuthMachine::Scripted(_) => {}
        }
    }

    fn handle_packet(&mut self, now: Instant, info: &[u8]) -> Result<(), AuthPacketError> {
        match self {
            AuthMachine::Server(m) => m.handle_packet(now, info),
            AuthMachine::Client(m) => m.handle_packet(now, info),
            #[cfg(test)]
            AuthMachine::Scripted(m) => m.handle_packet(now, info),
        }
    }

    #[must_use]
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        match self {
            AuthMachine::Server(m) => m.poll_transmit(buf),
            AuthMachine::Client(m) => m.poll_transmit(buf),
            #[cfg(test)]
            AuthMachine::Scripted(m) => m.poll_transmit(buf),
        }
    }

    #[must_use]
    fn poll_event(&mut self) -> Option<AuthEvent> {
        match self {
            AuthMachine::Server(m) => m.poll_event(),
            AuthMachine::Client(m) => m.poll_event(),
            #[cfg(test)]
            AuthMachine::Scripted(m) => m.poll_event(),
        }
    }

    #[must_use]
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            AuthMachine::Server(m) => m.poll_timeout(),
            AuthMachine::Client(m) => m.poll_timeout(),
            #[cfg(test)]
            AuthMachine::Scripted(m) => m.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            AuthMachine::Server(m) => m.handle_timeout(now),
            AuthMachine::Client(m) => m.handle_timeout(now),
            #[cfg(test)]
            AuthMachine::Scripted(m) => m.handle_timeout(now),
        }
    }
}

/// The running authentication: the machine and its PPP protocol.
#[derive(Debug)]
struct AuthSession {
    protocol: u16,
    /// The negotiated method (for counting: EAP-MSCHAPv2's credentials
    /// are MS-CHAPv2's).
    method: AuthProtocol,
    machine: AuthMachine,
    /// Server: the request this machine waits an answer for. At most one:
    /// a machine asks again only after the previous answer.
    outstanding: Option<Outstanding>,
}

/// A request handed to the owner and not answered yet.
#[derive(Debug)]
struct Outstanding {
    id: AuthRequestId,
    username: String,
    protocol: AuthProtocol,
}

/// [`PppLink::auth_decision`]'s refusal: the answer names no request the
/// link is waiting for (its phase was ended by an LCP renegotiation or a
/// timeout, it was answered already, or it never existed). The answer was
/// dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaleAuthDecision(pub AuthRequestId);

/// What every automaton event needs besides the automaton: the outgoing
/// queue and the link's randomness.
#[derive(Debug)]
struct Effects {
    out: Outbox,
    rng: SessionRng,
}

impl Effects {
    fn at(&mut self, now: Instant) -> Ctx<'_> {
        Ctx {
            now,
            out: &mut self.out,
            rng: &mut self.rng,
        }
    }
}

/// Feeds a control packet to an automaton; a discarded one becomes a drop
/// report.
fn receive_control<H: OptionHandler>(
    fsm: &mut Fsm<H>,
    effects: &mut Effects,
    now: Instant,
    information: &[u8],
) -> Result<(), PppDropReason> {
    fsm.receive(&mut effects.at(now), information)
        .map_err(|reason| PppDropReason::Control {
            protocol: H::PROTOCOL,
            reason,
        })
}

/// LCP keepalive state.
#[derive(Clone, Copy, Debug, Default)]
struct Keepalive {
    deadline: Option<Instant>,
    unanswered: u32,
    /// When the peer was last heard from (any frame).
    last_heard: Option<Instant>,
}

/// What every session carries inline, idle or not, stays small: the
/// link's random numbers are a key and a position, and IPv6CP and the
/// running authentication are boxed (docs/benchmarking.md, "Where an idle
/// session's memory goes"). A field that makes the link grow past this is
/// boxed too, or the bound raised on purpose. (Test builds carry a
/// scripted authentication machine besides.)
#[cfg(not(test))]
const _: () = assert!(std::mem::size_of::<PppLink>() <= 1_216);

/// One PPP link, server or client.
#[derive(Debug)]
pub struct PppLink {
    role: Role,
    config: Arc<PppConfig>,
    effects: Effects,
    phase: Phase,
    finished: bool,
    lcp: Fsm<Lcp>,
    ipcp: Option<Fsm<Ipcp>>,
    /// Boxed: most links run without IPv6, and then this is one word. It
    /// goes once the peer has Protocol-Rejected IPv6CP (see
    /// `ipv6cp_signal`).
    ipv6cp: Option<Box<Fsm<Ipv6cp>>>,
    /// Boxed: one word for a link that is not authenticating.
    auth: Option<Box<AuthSession>>,
    /// The number of the next authentication request (never reused on
    /// this link).
    next_auth_request: u64,
    /// Failed authentication attempts on this connection, across LCP
    /// renegotiations.
    auth_failures: u32,
    /// An authentication machine reported success (either role).
    auth_succeeded: bool,
    credentials: Option<Credentials>,
    /// The authenticated user name (server) once known.
    username: Option<String>,
    framed_ipv4: Option<Ipv4Addr>,
    /// Server: the authenticator's per-session settings the link applies
    /// (DNS servers for IPCP, an MTU cap), from the accepted decision.
    policy: LinkPolicy,
    /// Server: the peer's address, as the owner assigned it.
    lease: Option<Ipv4Addr>,
    /// Server: the address request waiting for its answer.
    address_request: Option<AddressRequestId>,
    /// The number of the last address request (never reused).
    address_requests: u64,
    /// The peer's latest IPCP packet while the address request waits.
    held_ipcp: Option<Vec<u8>>,
    ipv4: Option<Ipv4Params>,
    ipv6: Option<Ipv6Params>,
    transmit_format: HeaderFormat,
    keepalive: Keepalive,
    events: VecDeque<PppEvent>,
    queued_drops: usize,
    close_reason: Option<PppCloseReason>,
    stats: PppStats,
    #[cfg(test)]
    scripted_auth: Option<tests::ScriptedAuth>,
}

impl PppLink {
    /// A server link (the authenticator). `seed` feeds the link's RNG
    /// (Magic-Numbers, interface identifiers, challenges).
    pub fn server(config: Arc<PppConfig>, now: Instant, seed: [u8; 32]) -> Self {
        let _ = now;
        Self::new(Role::Server, config, seed, None)
    }

    /// A client link authenticating as `username` with `password`.
    pub fn client(
        config: Arc<PppConfig>,
        now: Instant,
        username: &str,
        password: &[u8],
        seed: [u8; 32],
    ) -> Self {
        let _ = now;
        let credentials = Credentials {
            username: username.to_owned(),
            password: password.to_vec(),
        };
        Self::new(Role::Client, config, seed, Some(credentials))
    }

    fn new(
        role: Role,
        config: Arc<PppConfig>,
        seed: [u8; 32],
        credentials: Option<Credentials>,
    ) -> Self {
        let lcp = Fsm::new(Lcp::new(role, config.clone()), config.fsm);
        let ipcp = config
            .ipcp
            .enabled
            .then(|| Fsm::new(Ipcp::new(role, config.clone()), config.fsm));
        let ipv6cp = config
            .ipv6cp
            .enabled
            .then(|| Box::new(Fsm::new(Ipv6cp::new(), config.fsm)));
        PppLink {
            role,
            config,
            effects: Effects {
                out: Outbox::default(),
                rng: SessionRng::from_seed(seed),
            },
            phase: Phase::Dead,
            finished: false,
            lcp,
            ipcp,
            ipv6cp,
            auth: None,
            next_auth_request: 1,
            auth_failures: 0,
            auth_succeeded: false,
            credentials,
            username: None,
            framed_ipv4: None,
            policy: LinkPolicy::default(),
            lease: None,
            address_request: None,
            address_requests: 0,
            held_ipcp: None,
            ipv4: None,
            ipv6: None,
            transmit_format: HeaderFormat::FULL,
            keepalive: Keepalive::default(),
            events: VecDeque::new(),
            queued_drops: 0,
            close_reason: None,
            stats: PppStats::default(),
            #[cfg(test)]
            scripted_auth: None,
        }
    }

    // ---- Public API ----

    /// The lower layer is up and the link may negotiate: LCP Up and Open
    /// ([RFC 1661] 3.2, Dead -> Establish). Ignored once started.
    #[inline]
    pub fn open(&mut self, now: Instant) {
        // Called for every received frame (the session cannot tell the
        // first one): the check stays inline, the opening does not.
        if self.finished || self.phase != Phase::Dead {
            return;
        }
        self.open_dead_link(now);
    }

    #[inline(never)]
    fn open_dead_link(&mut self, now: Instant) {
        self.phase = Phase::Establish;
        let mut ctx = self.effects.at(now);
        self.lcp.open(&mut ctx);
        self.lcp.up(&mut ctx);
        self.settle(now);
    }

    /// Terminates the link: LCP Close (Terminate-Request). When the peer
    /// is already terminating the link, its reason stands.
    pub fn close(&mut self, now: Instant) {
        if self.lcp.state() == State::Stopping && self.lcp.peer_terminated() {
            self.lcp.close(&mut self.effects.at(now));
        } else {
            self.close_link(now, PppCloseReason::LocalClose);
        }
        self.settle(now);
    }

    /// Processes one received PPP frame (with or without `FF 03`). IP
    /// packets for an open NCP are passed to `on_ip`, borrowing `frame`.
    #[inline]
    pub fn handle_frame(
        &mut self,
        now: Instant,
        frame: &[u8],
        on_ip: &mut impl FnMut(IpVersion, &[u8]),
    ) {
        self.stats.frames_received += 1;
        if self.finished {
            self.dropped(PppDropReason::LinkDead);
            return;
        }
        // Proof of life for the keepalive, whatever the frame.
        self.keepalive.last_heard = Some(now);
        let frame = match parse_frame(frame) {
            Ok(frame) => frame,
            Err(error) => {
                self.dropped(PppDropReason::Frame(error));
                return;
            }
        };
        let local = self.lcp.handler().local();
        if frame.compressed_protocol && !local.pfc {
            self.stats.unnegotiated_pfc += 1;
        }
        if !frame.has_address_control && !local.acfc {
            self.stats.unnegotiated_acfc += 1;
        }
        let information = frame.information;
        match frame.protocol {
            // The data path: no automaton is touched, nothing to settle.
            PROTO_IPV4 => self.deliver_ip(IpVersion::V4, information, on_ip),
            PROTO_IPV6 => self.deliver_ip(IpVersion::V6, information, on_ip),
            protocol => self.receive_control_frame(now, protocol, information),
        }
    }

    /// Everything but IP: kept out of line, so that the data path above
    /// stays small enough to inline into the session's input loop (the
    /// gate's `data` part counts the difference).
    #[inline(never)]
    fn receive_control_frame(&mut self, now: Instant, protocol: u16, information: &[u8]) {
        match protocol {
            PROTO_LCP => self.receive_lcp(now, information),
            protocol if self.auth.as_ref().is_some_and(|a| a.protocol == protocol) => {
                self.receive_auth(now, information);
            }
            protocol @ (PROTO_PAP | PROTO_CHAP | PROTO_EAP) => {
                // Not the negotiated method (or none): silently discarded.
                self.dropped(PppDropReason::NotInPhase {
                    protocol,
                    phase: self.phase,
                });
            }
            protocol if self.phase != Phase::Network => {
                // "All other packets received during this phase MUST be
                // silently discarded" ([RFC 1661] 3.3, 3.5).
                self.dropped(PppDropReason::NotInPhase {
                    protocol,
                    phase: self.phase,
                });
            }
            protocol @ (PROTO_IPCP | PROTO_IPV6CP) if self.runs_ncp(protocol) => {
                self.peer_left_authentication();
                if protocol == PROTO_IPCP && self.address_request.is_some() {
                    self.hold_ipcp(information);
                    return;
                }
                let effects = &mut self.effects;
                let result = match protocol {
                    PROTO_IPCP => self
                        .ipcp
                        .as_mut()
                        .map(|fsm| receive_control(fsm, effects, now, information)),
                    _ => self
                        .ipv6cp
                        .as_mut()
                        .map(|fsm| receive_control(fsm, effects, now, information)),
                };
                if let Some(Err(reason)) = result {
                    self.dropped(reason);
                }
            }
            protocol => {
                // CCP (Windows' MPPE probe), disabled NCPs and anything
                // unknown ([RFC 1661] 5.7).
                self.lcp.handler_mut().send_protocol_reject(
                    &mut self.effects.out,
                    protocol,
                    information,
                );
                self.stats.protocol_rejects_sent += 1;
                self.dropped(PppDropReason::UnknownProtocol(protocol));
            }
        }
        self.settle(now);
    }

    /// Appends the next outgoing control frame (header included) to `buf`;
    /// `false` when none is waiting.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        self.effects.out.pop_into(buf)
    }

    /// Appends the PPP header and `packet` to `out`: the data path. Uses
    /// `FF 03` and a 2-octet protocol unless compression was enabled in
    /// [`LcpConfig::compress_transmit`] and agreed by the peer. The caller
    /// sends only while the version's NCP is up (see [`PppEvent::Ipv4Up`]).
    /// Always inlined into `Session::send_ip` (the gate's `data` part: 499
    /// Ir per packet with it, 526 when LLVM chose a call after unrelated
    /// changes).
    #[inline(always)]
    pub fn encapsulate_ip(&self, version: IpVersion, packet: &[u8], out: &mut Vec<u8>) {
        write_header(version.ppp_protocol(), self.transmit_format, out);
        out.extend_from_slice(packet);
    }

    /// Server: delivers the answer to the [`PppEvent::AuthRequest`] named
    /// `request`. It is applied only if that request is the one the
    /// running authentication waits for; otherwise it is stale, dropped,
    /// and `Err` says so (the owner reports it). See
    /// [`AuthRequestId`] and the module documentation.
    pub fn auth_decision(
        &mut self,
        now: Instant,
        request: AuthRequestId,
        decision: AuthDecision,
    ) -> Result<(), StaleAuthDecision> {
        let stale = StaleAuthDecision(request);
        let Some(auth) = self.auth.as_mut() else {
            return Err(stale);
        };
        if auth.outstanding.as_ref().map(|o| o.id) != Some(request) {
            return Err(stale);
        }
        let outstanding = auth.outstanding.take().ok_or(stale)?;
        if matches!(decision, AuthDecision::Challenge(_)) {
            // Relayed EAP: the next round; the machine asks again (a new
            // request id) when the peer answers.
            match &mut auth.machine {
                AuthMachine::Server(server) => server.decide(now, decision),
                #[cfg(test)]
                AuthMachine::Scripted(scripted) => scripted.decide(now, decision),
                AuthMachine::Client(_) => return Err(stale),
            }
            self.pump_auth(now);
            self.settle(now);
            return Ok(());
        }
        let proven = matches!(&decision, AuthDecision::Accept(accept) if accept.mschapv2.is_some());
        let rejected = match &decision {
            AuthDecision::Challenge(_) => None,
            AuthDecision::Reject(reject) => Some(reject.reason),
            AuthDecision::Accept(accept) => {
                self.policy = LinkPolicy {
                    dns: accept
                        .policy
                        .dns
                        .iter()
                        .any(Option::is_some)
                        .then_some(accept.policy.dns),
                    mtu: accept.policy.mtu,
                };
                None
            }
        };
        let confirming = match &mut auth.machine {
            AuthMachine::Server(server) => {
                server.decide(now, decision);
                server.awaits_peer_confirmation()
            }
            #[cfg(test)]
            AuthMachine::Scripted(scripted) => {
                scripted.decide(now, decision);
                false
            }
            AuthMachine::Client(_) => return Err(stale),
        };
        if let Some(reason) = rejected {
            // Counted before the machine's verdict is acted on, so that a
            // final failure already knows the connection's total.
            self.auth_failed(outstanding, AttemptOutcome::Rejected(reason));
            self.pump_auth(now);
        } else {
            self.pump_auth(now);
            // EAP-MSCHAPv2 succeeds only once the peer has acknowledged.
            let succeeding = self.auth_succeeded || (confirming && proven);
            if !succeeding {
                // Accepted, yet the machine could not use the answer
                // (MS-CHAPv2 without its proof): the peer got a Failure.
                let reason = RejectReason::ServiceUnavailable;
                self.auth_failed(outstanding, AttemptOutcome::Rejected(reason));
            }
        }
        if !confirming {
            // EAP: the peer acknowledges the Failure first; the machine's
            // verdict then ends the link.
            self.enforce_attempt_limit(now);
        }
        self.settle(now);
        Ok(())
    }

    /// Gives back the memory of empty queues (events, outgoing frames):
    /// what the setup grew them to is not needed while the link is idle.
    pub fn release_idle_capacity(&mut self) {
        crate::proto::release_if_empty(&mut self.events);
        self.effects.out.release_idle_capacity();
        if let Some(auth) = &mut self.auth {
            auth.machine.release_idle_capacity();
        }
    }

    /// The next event for the owner.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PppEvent> {
        let event = self.events.pop_front()?;
        if matches!(event, PppEvent::Dropped(_)) {
            self.queued_drops = self.queued_drops.saturating_sub(1);
        }
        Some(event)
    }

    /// When [`PppLink::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        [
            self.lcp.poll_timeout(),
            self.auth.as_ref().and_then(|a| a.machine.poll_timeout()),
            self.ipcp.as_ref().and_then(Fsm::poll_timeout),
            self.ipv6cp.as_deref().and_then(Fsm::poll_timeout),
            self.keepalive.deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        let due = |deadline: Option<Instant>| deadline.is_some_and(|d| d <= now);
        // The automata check their own deadline.
        self.lcp.handle_timeout(&mut self.effects.at(now));
        if let Some(auth) = &mut self.auth {
            if due(auth.machine.poll_timeout()) {
                auth.machine.handle_timeout(now);
                self.pump_auth(now);
            }
        }
        if let Some(ipcp) = &mut self.ipcp {
            ipcp.handle_timeout(&mut self.effects.at(now));
        }
        if let Some(ipv6cp) = &mut self.ipv6cp {
            ipv6cp.handle_timeout(&mut self.effects.at(now));
        }
        if due(self.keepalive.deadline) {
            self.keepalive_tick(now);
        }
        self.settle(now);
    }

    /// The IPv4 parameters while IPCP is open.
    pub fn ipv4(&self) -> Option<Ipv4Params> {
        self.ipv4
    }

    /// The IPv6 parameters while IPv6CP is open.
    pub fn ipv6(&self) -> Option<Ipv6Params> {
        self.ipv6
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Why the link is terminating, while the Terminate exchange that will
    /// end in [`PppEvent::Closed`] with this reason is still under way:
    /// our own reason, or the peer's Terminate-Request (LCP then waits a
    /// restart interval in Stopping before it finishes, [RFC 1661] 4.2, and
    /// the peer's Call Disconnect usually arrives first).
    pub fn closing_reason(&self) -> Option<PppCloseReason> {
        if let Some(reason) = &self.close_reason {
            return Some(reason.clone());
        }
        (self.lcp.peer_terminated() && self.lcp.state() != State::Opened)
            .then_some(PppCloseReason::PeerTerminated)
    }

    /// Which end this link plays.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The authenticated user (server) or our own name (client), once
    /// authentication succeeded.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The MRU we advertised and the peer accepted: the largest Information
    /// field the peer should send us (valid once LCP is open).
    pub fn local_mru(&self) -> u16 {
        self.lcp.handler().local().mru
    }

    /// The peer's MRU (valid once LCP is open).
    pub fn peer_mru(&self) -> u16 {
        self.lcp.handler().peer().mru
    }

    /// The largest IP packet to send: the peer's MRU capped by the
    /// transport ([`LcpConfig::max_transmit_unit`]) and by the
    /// authenticator's MTU for this peer (RADIUS Framed-MTU).
    pub fn transmit_mtu(&self) -> u16 {
        let negotiated = self.lcp.handler().transmit_mtu();
        self.policy
            .mtu
            .map_or(negotiated, |mtu| mtu.min(negotiated))
    }

    /// Server: the authenticator's MTU for this peer (RADIUS Framed-MTU,
    /// [RFC 2865] 5.12), if it set one: IP packets above it are neither
    /// sent to nor accepted from the peer.
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub fn framed_mtu(&self) -> Option<u16> {
        self.policy.mtu
    }

    /// The authentication protocol LCP negotiated ([RFC 1661] 6.2), once
    /// it has.
    ///
    /// [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661
    pub fn auth_protocol(&self) -> Option<AuthProtocol> {
        self.lcp.handler().negotiated_auth()
    }

    /// LCP's automaton state, for diagnostics.
    pub fn lcp_state(&self) -> State {
        self.lcp.state()
    }

    /// Counters for metrics.
    pub fn stats(&self) -> PppStats {
        self.stats
    }

    /// Frames not queued because the owner stopped draining
    /// [`PppLink::poll_transmit`].
    pub fn transmit_overflows(&self) -> u64 {
        self.effects.out.overflowed()
    }

    // ---- Receiving ----

    fn deliver_ip(
        &mut self,
        version: IpVersion,
        packet: &[u8],
        on_ip: &mut impl FnMut(IpVersion, &[u8]),
    ) {
        let open = match version {
            IpVersion::V4 => self.ipv4.is_some(),
            IpVersion::V6 => self.ipv6.is_some(),
        };
        if !open {
            self.dropped(PppDropReason::IpNotOpen(version));
        } else if packet.is_empty() {
            self.dropped(PppDropReason::Frame(FrameError::Truncated));
        } else {
            self.stats.ip_packets_received += 1;
            on_ip(version, packet);
        }
    }

    /// Whether the NCP of `protocol` is enabled.
    fn runs_ncp(&self, protocol: u16) -> bool {
        match protocol {
            PROTO_IPCP => self.ipcp.is_some(),
            PROTO_IPV6CP => self.ipv6cp.is_some(),
            _ => false,
        }
    }

    fn receive_lcp(&mut self, now: Instant, information: &[u8]) {
        if let Err(reason) = receive_control(&mut self.lcp, &mut self.effects, now, information) {
            self.dropped(reason);
        }
        if self.lcp.handler_mut().take_echo_replies() > 0 {
            self.keepalive.unanswered = 0;
        }
        for protocol in self.lcp.handler_mut().take_protocol_rejects() {
            self.peer_rejected_protocol(now, protocol);
        }
    }

    fn receive_auth(&mut self, now: Instant, information: &[u8]) {
        if !matches!(self.phase, Phase::Authenticate | Phase::Network) {
            let protocol = self.auth.as_ref().map_or(0, |a| a.protocol);
            self.dropped(PppDropReason::NotInPhase {
                protocol,
                phase: self.phase,
            });
            return;
        }
        if let Some(auth) = &mut self.auth {
            // The machine stays alive in the Network phase to answer a
            // retransmitted Response whose Success was lost, until
            // `peer_left_authentication`.
            if let Err(error) = auth.machine.handle_packet(now, information) {
                self.dropped(PppDropReason::Auth(error));
            }
        }
        self.pump_auth(now);
    }

    /// Whether the authentication machine is still kept (tests).
    #[cfg(test)]
    pub(crate) fn holds_auth_machine(&self) -> bool {
        self.auth.is_some()
    }

    /// Whether IPv6CP's automaton is kept (tests).
    #[cfg(test)]
    pub(crate) fn holds_ipv6cp(&self) -> bool {
        self.ipv6cp.is_some()
    }

    /// An NCP packet from the peer after authentication succeeded: the
    /// peer has left its Authentication phase, so it has the Success
    /// ([RFC 1661] 3.5, [RFC 1994] 4.1) and will not retransmit what it
    /// answered. The machine (with the packets kept to answer
    /// retransmissions) goes; later authentication packets are dropped as
    /// out of phase. An idle session holds some 600 bytes less.
    ///
    /// [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661
    /// [RFC 1994]: https://www.rfc-editor.org/rfc/rfc1994
    fn peer_left_authentication(&mut self) {
        if self.auth_succeeded && self.auth.as_ref().is_some_and(|a| a.outstanding.is_none()) {
            self.auth = None;
        }
    }

    /// The peer's Protocol-Reject of `protocol` ([RFC 1661] 5.7): RXJ- for
    /// the NCP carrying it.
    fn peer_rejected_protocol(&mut self, now: Instant, protocol: u16) {
        let mut ctx = self.effects.at(now);
        match protocol {
            PROTO_IPCP | PROTO_IPV4 => {
                if let Some(ipcp) = &mut self.ipcp {
                    ipcp.protocol_rejected(&mut ctx);
                }
            }
            PROTO_IPV6CP | PROTO_IPV6 => {
                if let Some(ipv6cp) = &mut self.ipv6cp {
                    ipv6cp.protocol_rejected(&mut ctx);
                }
            }
            protocol
                if self.phase == Phase::Authenticate
                    && self.auth.as_ref().is_some_and(|a| a.protocol == protocol) =>
            {
                self.close_link(now, PppCloseReason::NoCommonAuthProtocol);
            }
            // Something we never send, or sent only as an answer.
            _ => {}
        }
    }

    // ---- Authentication ----

    fn start_auth(&mut self, now: Instant, protocol: AuthProtocol) {
        let machine = self.new_auth_machine(now, protocol);
        self.auth = Some(Box::new(AuthSession {
            protocol: protocol.ppp_protocol(),
            method: protocol,
            machine,
            outstanding: None,
        }));
        self.phase = Phase::Authenticate;
        self.pump_auth(now);
    }

    fn new_auth_machine(&mut self, now: Instant, protocol: AuthProtocol) -> AuthMachine {
        #[cfg(test)]
        if let Some(scripted) = self.scripted_auth.take() {
            return AuthMachine::Scripted(scripted);
        }
        match (self.role, &self.credentials) {
            (Role::Client, Some(credentials)) => AuthMachine::Client(AuthClient::new(
                protocol,
                &self.config.auth,
                &credentials.username,
                &credentials.password,
                now,
                &mut self.effects.rng,
            )),
            _ => AuthMachine::Server(
                AuthServer::new(protocol, &self.config.auth, now, &mut self.effects.rng)
                    .with_failed_attempts(self.auth_failures),
            ),
        }
    }

    /// Frames what the machine wants to send, then acts on its events.
    fn pump_auth(&mut self, now: Instant) {
        let Some(auth) = &mut self.auth else {
            return;
        };
        let mut events = Vec::new();
        // Bounded: a machine queues a packet or two per input.
        for _ in 0..16 {
            let machine = &mut auth.machine;
            if !self
                .effects
                .out
                .push_frame_if(auth.protocol, |buf| machine.poll_transmit(buf))
            {
                break;
            }
        }
        for _ in 0..16 {
            match auth.machine.poll_event() {
                Some(event) => events.push(event),
                None => break,
            }
        }
        for event in events {
            match event {
                AuthEvent::Request(mut request) => {
                    request.id = AuthRequestId::from_raw(self.next_auth_request);
                    self.next_auth_request += 1;
                    if let Some(auth) = &mut self.auth {
                        auth.outstanding = Some(Outstanding {
                            id: request.id,
                            username: request.username.clone(),
                            protocol: auth.method,
                        });
                    }
                    self.events.push_back(PppEvent::AuthRequest(request))
                }
                AuthEvent::Success {
                    username,
                    hlak,
                    framed_ipv4,
                } => {
                    self.auth_succeeded = true;
                    self.username = Some(username.clone());
                    self.framed_ipv4 = framed_ipv4;
                    self.events
                        .push_back(PppEvent::Authenticated { username, hlak });
                    if self.phase == Phase::Authenticate {
                        self.enter_network(now);
                    }
                }
                AuthEvent::Failure(failure) => {
                    let judged = self.auth.as_mut().and_then(|a| a.outstanding.take());
                    if let (AuthFailure::Timeout, Some(outstanding)) = (&failure, judged) {
                        self.auth_failed(outstanding, AttemptOutcome::TimedOut);
                    }
                    let reason = match failure {
                        AuthFailure::Rejected { .. } if self.attempts_exhausted() => {
                            PppCloseReason::AuthAttemptsExhausted
                        }
                        failure => PppCloseReason::AuthFailed(failure),
                    };
                    // The Failure packet was queued above, ahead of the
                    // Terminate-Request this sends.
                    self.close_link(now, reason);
                }
            }
        }
    }

    // ---- Phases ----

    /// Processes This-Layer signals until every automaton is quiet.
    fn settle(&mut self, now: Instant) {
        // Each pass handles the signals raised by the previous one; a
        // handful of passes covers the longest chain (LCP down -> NCPs
        // down -> link close).
        for _ in 0..8 {
            let mut quiet = true;
            while let Some(signal) = self.lcp.poll_signal() {
                quiet = false;
                match signal {
                    LayerSignal::Up => self.lcp_up(now),
                    LayerSignal::Down => self.lcp_down(now),
                    LayerSignal::Started => {}
                    LayerSignal::Finished => self.lcp_finished(),
                }
            }
            while let Some(signal) = self.ipcp.as_mut().and_then(Fsm::poll_signal) {
                quiet = false;
                self.ipcp_signal(now, signal);
            }
            while let Some(signal) = self.ipv6cp.as_deref_mut().and_then(Fsm::poll_signal) {
                quiet = false;
                self.ipv6cp_signal(now, signal);
            }
            if quiet {
                break;
            }
        }
        if !self.finished && matches!(self.lcp.state(), State::Closing | State::Stopping) {
            self.phase = Phase::Terminate;
        }
    }

    /// LCP tlu: on to Authenticate, or straight to Network.
    fn lcp_up(&mut self, now: Instant) {
        let lcp = self.lcp.handler();
        let peer = *lcp.peer();
        self.effects.out.set_peer_mru(peer.mru);
        self.transmit_format = if self.config.lcp.compress_transmit {
            HeaderFormat {
                omit_address_control: peer.acfc,
                compress_protocol: peer.pfc,
            }
        } else {
            HeaderFormat::FULL
        };
        if let Some(interval) = self.config.lcp.echo_interval {
            self.keepalive = Keepalive {
                deadline: Some(now + interval),
                unanswered: 0,
                last_heard: Some(now),
            };
        }
        match lcp.negotiated_auth() {
            Some(protocol) => self.start_auth(now, protocol),
            None => {
                // No authentication negotiated (server configured without
                // it, or a server that does not ask): the HLAK is zero.
                let username = match self.role {
                    Role::Client => self.credentials.as_ref().map(|c| c.username.clone()),
                    Role::Server => None,
                };
                self.events.push_back(PppEvent::Authenticated {
                    username: username.unwrap_or_default(),
                    hlak: ZERO_HLAK,
                });
                self.enter_network(now);
            }
        }
    }

    /// Counts a failed attempt and reports it.
    fn auth_failed(&mut self, outstanding: Outstanding, outcome: AttemptOutcome) {
        self.auth_failures = self.auth_failures.saturating_add(1);
        self.events
            .push_back(PppEvent::AuthAttemptFailed(FailedAuthAttempt {
                request: outstanding.id,
                username: outstanding.username,
                protocol: outstanding.protocol,
                outcome,
                attempt: self.auth_failures,
                max_attempts: self.max_attempts(),
            }));
    }

    fn max_attempts(&self) -> u32 {
        self.config.auth.max_attempts.max(1)
    }

    fn attempts_exhausted(&self) -> bool {
        self.role == Role::Server && self.auth_failures >= self.max_attempts()
    }

    /// Ends the link once the connection has spent its attempts, whatever
    /// the running machine thinks (it may be one of several this
    /// connection went through).
    fn enforce_attempt_limit(&mut self, now: Instant) {
        if self.attempts_exhausted() && !self.auth_succeeded {
            self.close_link(now, PppCloseReason::AuthAttemptsExhausted);
        }
    }

    /// LCP tld: everything above LCP goes down.
    ///
    /// When the peer renegotiates (LCP left Opened for Req-Sent or
    /// Ack-Sent, not for a terminate), a server applies its policy:
    /// a request being judged is abandoned (counted as a failed attempt;
    /// its answer will be stale) and the next authentication phase starts
    /// from nothing; a peer that had already authenticated is refused (the
    /// link ends: the crypto binding was made for that authentication).
    fn lcp_down(&mut self, now: Instant) {
        let renegotiating = matches!(
            self.lcp.state(),
            State::ReqSent | State::AckSent | State::AckRcvd
        );
        if let Some(outstanding) = self.auth.take().and_then(|a| a.outstanding) {
            if renegotiating {
                self.auth_failed(outstanding, AttemptOutcome::Abandoned);
            }
        }
        self.keepalive = Keepalive::default();
        self.transmit_format = HeaderFormat::FULL;
        if let Some(ipcp) = &mut self.ipcp {
            ipcp.down();
        }
        if let Some(ipv6cp) = &mut self.ipv6cp {
            ipv6cp.down();
        }
        // Report the NCPs down before their address goes back to the pool.
        while let Some(signal) = self.ipcp.as_mut().and_then(Fsm::poll_signal) {
            self.ipcp_signal(now, signal);
        }
        while let Some(signal) = self.ipv6cp.as_deref_mut().and_then(Fsm::poll_signal) {
            self.ipv6cp_signal(now, signal);
        }
        self.release_lease();
        self.phase = Phase::Establish;
        if renegotiating && self.role == Role::Server {
            if self.auth_succeeded {
                self.close_link(now, PppCloseReason::RenegotiatedAfterAuthentication);
            } else {
                self.enforce_attempt_limit(now);
            }
        }
    }

    /// LCP tlf: the link is finished.
    fn lcp_finished(&mut self) {
        self.phase = Phase::Dead;
        self.finished = true;
        self.auth = None;
        self.keepalive = Keepalive::default();
        self.release_lease();
        let reason = self.close_reason.take().unwrap_or_else(|| {
            let failure = self.lcp.failure();
            match failure {
                Some(failure) if failure != NegotiationFailure::MaxConfigure => {
                    PppCloseReason::from_failure(PROTO_LCP, failure)
                }
                _ if self.lcp.peer_terminated() => PppCloseReason::PeerTerminated,
                Some(failure) => PppCloseReason::from_failure(PROTO_LCP, failure),
                None => PppCloseReason::LocalClose,
            }
        });
        self.events.push_back(PppEvent::Closed(reason));
    }

    /// Authentication done (or skipped): start the enabled NCPs.
    fn enter_network(&mut self, now: Instant) {
        self.phase = Phase::Network;
        if self.ipcp.is_some() && self.role == Role::Server {
            match self.lease {
                Some(address) => self.start_ipcp(now, Some(address)),
                // IPCP starts when the owner answers.
                None => self.request_address(),
            }
        } else {
            self.start_ipcp(now, None);
        }
        let mut ctx = self.effects.at(now);
        if let Some(ipv6cp) = &mut self.ipv6cp {
            ipv6cp.open(&mut ctx);
            ipv6cp.up(&mut ctx);
        }
    }

    /// Opens IPCP (server: offering `assigned` to the peer).
    fn start_ipcp(&mut self, now: Instant, assigned: Option<Ipv4Addr>) {
        let mut ctx = self.effects.at(now);
        if let Some(ipcp) = &mut self.ipcp {
            if assigned.is_some() {
                ipcp.handler_mut().set_assigned(assigned);
            }
            if let Some(dns) = self.policy.dns {
                ipcp.handler_mut().set_dns(dns);
            }
            ipcp.open(&mut ctx);
            ipcp.up(&mut ctx);
        }
    }

    fn ipcp_signal(&mut self, now: Instant, signal: LayerSignal) {
        match signal {
            LayerSignal::Up => {
                let params = self.ipcp.as_ref().and_then(|ipcp| ipcp.handler().params());
                match params {
                    Some(params) => {
                        self.ipv4 = Some(params);
                        self.events.push_back(PppEvent::Ipv4Up(params));
                    }
                    None => self.fail_ncp(now, PROTO_IPCP, NegotiationFailure::NoAddress),
                }
            }
            LayerSignal::Down => {
                if self.ipv4.take().is_some() {
                    self.events.push_back(PppEvent::Ipv4Down);
                }
            }
            LayerSignal::Started => {}
            LayerSignal::Finished => self.ncp_finished(now),
        }
    }

    fn ipv6cp_signal(&mut self, now: Instant, signal: LayerSignal) {
        match signal {
            LayerSignal::Up => {
                if let Some(ipv6cp) = &self.ipv6cp {
                    let params = ipv6cp.handler().params();
                    self.ipv6 = Some(params);
                    self.events.push_back(PppEvent::Ipv6Up(params));
                }
            }
            LayerSignal::Down => {
                if self.ipv6.take().is_some() {
                    self.events.push_back(PppEvent::Ipv6Down);
                }
            }
            LayerSignal::Started => {}
            LayerSignal::Finished => {
                self.ncp_finished(now);
                // The peer Protocol-Rejected IPv6CP ([RFC 1661] 5.7): it
                // does not do IPv6, and the automaton (280 bytes) would
                // wait for the rest of the session. Without it IPv6CP is
                // disabled: the peer's later IPv6CP is Protocol-Rejected.
                let rejected = self.ipv6cp.as_deref().and_then(Fsm::failure)
                    == Some(NegotiationFailure::Rejected);
                if rejected {
                    self.ipv6cp = None;
                }
            }
        }
    }

    fn fail_ncp(&mut self, now: Instant, protocol: u16, failure: NegotiationFailure) {
        let mut ctx = self.effects.at(now);
        match protocol {
            PROTO_IPCP => {
                if let Some(ipcp) = &mut self.ipcp {
                    ipcp.fail(&mut ctx, failure);
                }
            }
            _ => {
                if let Some(ipv6cp) = &mut self.ipv6cp {
                    ipv6cp.fail(&mut ctx, failure);
                }
            }
        }
    }

    /// An NCP finished: when none is left running, the link has no purpose
    /// and terminates.
    fn ncp_finished(&mut self, now: Instant) {
        if self.phase != Phase::Network {
            return;
        }
        fn running<H: OptionHandler>(ncp: Option<&Fsm<H>>) -> bool {
            ncp.is_some_and(|fsm| {
                !matches!(
                    fsm.state(),
                    State::Initial | State::Starting | State::Closed | State::Stopped
                )
            })
        }
        if running(self.ipcp.as_ref()) || running(self.ipv6cp.as_deref()) {
            return;
        }
        let reason = [
            (PROTO_IPCP, self.ipcp.as_ref().and_then(Fsm::failure)),
            (PROTO_IPV6CP, self.ipv6cp.as_deref().and_then(Fsm::failure)),
        ]
        .into_iter()
        .find_map(|(protocol, failure)| match failure? {
            NegotiationFailure::Rejected => None,
            failure => Some(PppCloseReason::from_failure(protocol, failure)),
        })
        .unwrap_or(PppCloseReason::NoNetworkProtocol);
        self.close_link(now, reason);
    }

    /// Records why (first cause wins) and starts LCP termination.
    fn close_link(&mut self, now: Instant, reason: PppCloseReason) {
        if self.finished {
            return;
        }
        if self.phase == Phase::Dead {
            // Never opened: finish at once.
            self.finished = true;
            self.events.push_back(PppEvent::Closed(reason));
            return;
        }
        self.close_reason.get_or_insert(reason);
        let mut ctx = self.effects.at(now);
        self.lcp.close(&mut ctx);
    }

    /// The keepalive timer: quiet for an interval? Echo, or give up after
    /// [`LcpConfig::echo_failures`] unanswered ones.
    fn keepalive_tick(&mut self, now: Instant) {
        let Some(interval) = self.config.lcp.echo_interval else {
            self.keepalive.deadline = None;
            return;
        };
        if self.lcp.state() != State::Opened {
            self.keepalive.deadline = None;
            return;
        }
        if let Some(heard) = self.keepalive.last_heard {
            if heard + interval > now {
                // Heard from within the interval: nothing to ask.
                self.keepalive.unanswered = 0;
                self.keepalive.deadline = Some(heard + interval);
                return;
            }
        }
        if self.keepalive.unanswered >= self.config.lcp.echo_failures {
            self.keepalive.deadline = None;
            self.close_link(now, PppCloseReason::EchoTimeout);
            return;
        }
        self.lcp
            .handler_mut()
            .send_echo_request(&mut self.effects.out);
        self.keepalive.unanswered += 1;
        self.keepalive.deadline = Some(now + interval);
    }

    // ---- Addresses ----

    /// IPCP waits for the owner's address answer: keeps the peer's latest
    /// packet (one, so the wait is bounded) to hand to IPCP once it starts,
    /// instead of making the peer wait for its restart timer.
    #[cold]
    fn hold_ipcp(&mut self, information: &[u8]) {
        if self.held_ipcp.replace(information.to_vec()).is_some() {
            self.dropped(PppDropReason::HeldIpcpReplaced);
        }
    }

    /// Server: asks the owner for the peer's address.
    fn request_address(&mut self) {
        self.address_requests += 1;
        let id = AddressRequestId(self.address_requests);
        self.address_request = Some(id);
        self.events
            .push_back(PppEvent::Ipv4AddressRequest(Ipv4AddressRequest {
                id,
                username: self.username.clone().unwrap_or_default(),
                wanted: self.framed_ipv4,
            }));
    }

    /// Server: the owner's answer to the address request `id`: the
    /// address it reserved for the peer, or none (the link closes with
    /// `no_address`). Applied only while the link waits for that very
    /// request; any other answer is refused, and the owner keeps (and
    /// should release) what it offered.
    pub fn assign_ipv4(
        &mut self,
        now: Instant,
        id: AddressRequestId,
        address: Option<Ipv4Addr>,
    ) -> Result<(), StaleAddressAnswer> {
        if self.address_request != Some(id) || self.phase != Phase::Network {
            return Err(StaleAddressAnswer(id));
        }
        self.address_request = None;
        match address {
            Some(address) => {
                self.lease = Some(address);
                self.start_ipcp(now, Some(address));
                if let (Some(held), Some(ipcp)) = (self.held_ipcp.take(), self.ipcp.as_mut()) {
                    if let Err(reason) = receive_control(ipcp, &mut self.effects, now, &held) {
                        self.dropped(reason);
                    }
                }
                self.settle(now);
            }
            None => self.close_link(now, PppCloseReason::NoAddress),
        }
        Ok(())
    }

    /// The peer's address goes back to the owner, and a request still
    /// unanswered is abandoned (its answer will be stale).
    fn release_lease(&mut self) {
        self.address_request = None;
        self.held_ipcp = None;
        if let Some(address) = self.lease.take() {
            self.events
                .push_back(PppEvent::Ipv4AddressReleased(address));
        }
        if let Some(ipcp) = &mut self.ipcp {
            ipcp.handler_mut().set_assigned(None);
        }
    }

    // ---- Reports ----

    fn dropped(&mut self, reason: PppDropReason) {
        self.stats.frames_dropped += 1;
        if self.queued_drops >= MAX_QUEUED_DROP_EVENTS {
            self.stats.drop_events_suppressed += 1;
            return;
        }
        self.queued_drops += 1;
        self.events.push_back(PppEvent::Dropped(reason));
    }

    /// Makes the next authentication run `scripted` instead of an
    /// [`AuthServer`]/[`AuthClient`], so that tests drive the Authenticate
    /// phase's plumbing packet by packet.
    #[cfg(test)]
    pub(crate) fn script_auth(&mut self, scripted: tests::ScriptedAuth) {
        self.scripted_auth = Some(scripted);
    }
}

#[cfg(test)]
mod tests;
