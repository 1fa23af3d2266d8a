//! The NAS's RADIUS client as a sans-IO state machine (in the manner of
//! quinn-proto): requests and datagrams come in with `now`; datagrams to
//! send, events and the next timer deadline go out. The runtime owns the
//! sockets and the clock:
//!
//! ```text
//! let handle = client.send(now, Request::access_with_password(attrs, pw), tag)?;
//! while let Some(t) = client.poll_transmit() { sockets[t.server][t.socket].send(t.payload) }
//! client.handle_datagram(now, from, socket_index, bytes)?;   // Err: drop, count reason.as_str()
//! while let Some(event) = client.poll_event() { /* Response, Failed, ServerDown, ServerUp */ }
//! client.handle_timeout(now);                                // when now >= client.poll_timeout()
//! ```
//!
//! # What it does for each request
//!
//! * Picks a server of the request's kind (authentication or accounting,
//!   each with its own list and timeout): the first one alive in
//!   configuration order; a dead one again once `dead_time` has passed
//!   since its last failure, with one request as a probe while the others
//!   go elsewhere; and when every server is dead, the one whose last
//!   failure is oldest rather than failing at once.
//! * Takes a free identifier on one of the server's sockets (256 per
//!   socket and server: [RFC 2865] 3 matches by source address and port),
//!   builds the authenticator, hides User-Password ([RFC 2865] 5.2), adds a
//!   Message-Authenticator to every request ([RFC 3579] 3.2) as the first
//!   attribute, and the configured NAS-Identifier / NAS-IP-Address /
//!   NAS-IPv6-Address when the request has none.
//! * Retransmits after the timeout, which doubles on each retry up to
//!   `max_timeout`. An Access-Request goes again byte for byte (same
//!   identifier and authenticator, so the server can spot the duplicate);
//!   an Accounting-Request gets its Acct-Delay-Time updated, hence a new
//!   identifier and authenticator ([RFC 2866] 5.2) — the earlier
//!   transmissions' identifiers stay reserved, so a late answer to any of
//!   them still completes the request.
//! * After `retries` retransmissions fails over to the next server; the
//!   server is marked dead (`Event::ServerDown`) unless it answered
//!   anything since this request reached it. A verified answer from a dead
//!   server brings it back (`Event::ServerUp`). With every server tried,
//!   the request fails (`FailReason::Timeout`).
//!
//! # Responses
//!
//! A datagram is matched by (server address, socket, identifier), then
//! must carry the expected code, the right Response Authenticator
//! ([RFC 2865] 3) and a right Message-Authenticator. Access-Accept,
//! -Reject and -Challenge without a Message-Authenticator are dropped
//! unless `require_message_authenticator` is off (the BlastRADIUS
//! defence); an Accounting-Response's is checked when present (over the
//! request's authenticator or over zero, as FreeRADIUS computes it) and
//! required only with `require_message_authenticator_accounting` (RFC
//! 3579 does not cover accounting, and servers send none by default).
//! Everything else is dropped with a [`DropReason`]: the runtime logs and
//! counts it; nothing a datagram holds can make the client panic or grow.
//!
//! # Bounds
//!
//! Each kind (authentication, accounting) may have `max_outstanding`
//! requests in flight and `max_queued` waiting (in order) for a slot or an
//! identifier; beyond that `send` fails with [`SendError::QueueFull`] and
//! the runtime counts it. Accounting cannot starve authentication. The
//! transmit queue holds each in-flight request at most once; the events
//! are at most one per request plus server transitions. At most
//! [`MAX_SERVERS`] servers per list are used.
//!
//! Request Authenticators come from a CSPRNG seeded from the operating
//! system ([`Client::new`]) or from a seed for reproducible tests
//! ([`Client::with_seed`]).
//!
//! [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
//! [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
//! [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::attr::{self, ms, AttrError, Attribute, Attributes};
use super::crypt::{self, CryptError, VerifyError};
use super::packet::{frame, Code, DecodeError, Packet, HEADER_LEN, MAX_PACKET_LEN};
use crate::proto::auth::{Credentials, MppeKeys};

/// Servers per list the client uses; more are ignored (the configuration
/// should refuse them).
pub const MAX_SERVERS: usize = 64;

/// Identifiers per socket ([RFC 2865] 3: one octet).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
const IDS: usize = 256;

/// Shortest timeout the client uses, whatever the configuration says (a
/// zero timeout would retransmit in a loop).
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// One RADIUS server: where and the shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub secret: Vec<u8>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("ServerConfig")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// What the client needs to know; see the [module documentation](self)
/// for how each setting is used.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Servers for Access-Requests, in order of preference.
    pub auth_servers: Vec<ServerConfig>,
    /// Servers for Accounting-Requests, in order of preference.
    pub acct_servers: Vec<ServerConfig>,
    /// Wait for an Access-Request's first answer; doubles on each retry.
    pub auth_timeout: Duration,
    /// Wait for an Accounting-Request's first answer; doubles on each retry.
    pub acct_timeout: Duration,
    /// Cap of the doubled timeout.
    pub max_timeout: Duration,
    /// Retransmissions to one server before failing over to the next.
    pub retries: u32,
    /// How long a server that stopped answering is left alone.
    pub dead_time: Duration,
    /// Drop Access-Accept/-Reject/-Challenge without Message-Authenticator.
    pub require_message_authenticator: bool,
    /// Drop Accounting-Responses without Message-Authenticator (servers
    /// do not send one unless configured to).
    pub require_message_authenticator_accounting: bool,
    /// Access-Requests in flight at once.
    pub max_outstanding: usize,
    /// Accounting-Requests in flight at once. Lower than for
    /// authentication: when many sessions end together, a burst of Stops
    /// larger than the server's receive buffer is dropped by its kernel
    /// and only arrives after a retransmission timeout.
    pub max_outstanding_accounting: usize,
    /// Requests of each kind waiting to be sent; beyond: `QueueFull`.
    pub max_queued: usize,
    /// Sockets the runtime has for each server (identifiers are per socket).
    pub sockets_per_server: usize,
    /// NAS-Identifier added to requests that carry none.
    pub nas_identifier: Option<String>,
    /// NAS-IP-Address added to requests that carry none.
    pub nas_ip_address: Option<Ipv4Addr>,
    /// NAS-IPv6-Address added to requests that carry none.
    pub nas_ipv6_address: Option<Ipv6Addr>,
}

impl Default for ClientConfig {
    /// No servers; 3 s / 5 s timeouts doubling to at most 12 s, 2 retries
    /// per server, servers left alone for 30 s, Message-Authenticator
    /// required in Access responses (not in Accounting-Responses), 1024
    /// Access-Requests and 128 Accounting-Requests in flight, 4096 queued
    /// per kind, 4 sockets per server.
    fn default() -> ClientConfig {
        ClientConfig {
            auth_servers: Vec::new(),
            acct_servers: Vec::new(),
            auth_timeout: Duration::from_secs(3),
            acct_timeout: Duration::from_secs(5),
            max_timeout: Duration::from_secs(12),
            retries: 2,
            dead_time: Duration::from_secs(30),
            require_message_authenticator: true,
            require_message_authenticator_accounting: false,
            max_outstanding: 1024,
            max_outstanding_accounting: 128,
            max_queued: 4096,
            sockets_per_server: 4,
            nas_identifier: None,
            nas_ip_address: None,
            nas_ipv6_address: None,
        }
    }
}

/// The two kinds of request, each with its own servers, timeout and
/// bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerRole {
    /// Access-Request to an authentication server.
    Auth,
    /// Accounting-Request to an accounting server.
    Acct,
}

impl ServerRole {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerRole::Auth => "auth",
            ServerRole::Acct => "acct",
        }
    }

    fn index(self) -> usize {
        match self {
            ServerRole::Auth => 0,
            ServerRole::Acct => 1,
        }
    }
}

/// A request to send: an Access-Request (optionally with a cleartext
/// password to hide as User-Password) or an Accounting-Request.
#[derive(Clone)]
pub struct Request {
    attributes: Attributes,
    kind: RequestKind,
}

#[derive(Clone)]
enum RequestKind {
    Access { password: Option<Vec<u8>> },
    Accounting,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Request");
        s.field("code", &self.code());
        if let RequestKind::Access { password: Some(_) } = self.kind {
            s.field("password", &"..");
        }
        s.field("attributes", &self.attributes).finish()
    }
}

impl Request {
    /// An Access-Request with these attributes (CHAP-Password, MS-CHAP2,
    /// State, ...: whatever proves the user).
    pub fn access(attributes: Attributes) -> Request {
        Request {
            attributes,
            kind: RequestKind::Access { password: None },
        }
    }

    /// An Access-Request carrying `password` as User-Password, hidden for
    /// each server with its secret ([RFC 2865] 5.2); any User-Password in
    /// `attributes` is replaced.
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub fn access_with_password(attributes: Attributes, password: &[u8]) -> Request {
        Request {
            attributes,
            kind: RequestKind::Access {
                password: Some(password.to_vec()),
            },
        }
    }

    /// The Access-Request for a PPP peer's credentials: User-Name, then
    /// PAP's password as User-Password, CHAP-MD5's CHAP-Password and
    /// CHAP-Challenge ([RFC 2865] 5.3, 5.40), MS-CHAPv2's
    /// MS-CHAP-Challenge and MS-CHAP2-Response ([RFC 2548] 2.3.2), or
    /// relayed EAP's EAP-Message attributes and the State to echo ([RFC
    /// 3579] 3.1; the client adds Message-Authenticator to every
    /// Access-Request, 3.2), after the `attributes` given (Service-Type,
    /// NAS-Port-Type, ...).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    /// [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
    pub fn authenticate(
        mut attributes: Attributes,
        username: &str,
        credentials: &Credentials,
    ) -> Result<Request, AttrError> {
        attributes.push_string(attr::USER_NAME, username)?;
        match credentials {
            Credentials::Pap { password } => {
                return Ok(Request::access_with_password(attributes, password));
            }
            Credentials::ChapMd5 {
                identifier,
                challenge,
                response,
            } => {
                let mut value = Vec::with_capacity(17);
                value.push(*identifier);
                value.extend_from_slice(response);
                attributes.push(attr::CHAP_PASSWORD, &value)?;
                attributes.push(attr::CHAP_CHALLENGE, challenge)?;
            }
            Credentials::MsChapV2 {
                identifier,
                authenticator_challenge,
                peer_challenge,
                nt_response,
            } => {
                attributes.push_ms(ms::CHAP_CHALLENGE, authenticator_challenge)?;
                let response = ms::chap2_response(*identifier, peer_challenge, nt_response);
                attributes.push_ms(ms::CHAP2_RESPONSE, &response)?;
            }
            Credentials::Eap { packet, state } => {
                attributes.push_eap_message(packet);
                if let Some(state) = state {
                    attributes.push(attr::STATE, state)?;
                }
            }
        }
        Ok(Request::access(attributes))
    }

    /// An Accounting-Request with these attributes. An Acct-Delay-Time in
    /// them is where the delay starts (a record from a spool); the client
    /// adds the time it has been trying.
    pub fn accounting(attributes: Attributes) -> Request {
        Request {
            attributes,
            kind: RequestKind::Accounting,
        }
    }

    /// Access-Request or Accounting-Request.
    pub fn code(&self) -> Code {
        match self.kind {
            RequestKind::Access { .. } => Code::AccessRequest,
            RequestKind::Accounting => Code::AccountingRequest,
        }
    }

    /// Which servers it goes to.
    pub fn role(&self) -> ServerRole {
        match self.kind {
            RequestKind::Access { .. } => ServerRole::Auth,
            RequestKind::Accounting => ServerRole::Acct,
        }
    }

    /// The attributes as given.
    pub fn attributes(&self) -> &Attributes {
        &self.attributes
    }
}

/// Names one request sent with [`Client::send`]; unique for the client's
/// lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestHandle(u64);

/// A datagram to send: from the runtime's socket number `socket` for
/// this server, to the server.
#[derive(Clone, PartialEq, Eq)]
pub struct Transmit {
    pub server: SocketAddr,
    pub socket: usize,
    pub payload: Vec<u8>,
}

impl fmt::Debug for Transmit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transmit")
            .field("server", &self.server)
            .field("socket", &self.socket)
            .field("len", &self.payload.len())
            .finish()
    }
}

/// Why [`Client::send`] refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// `max_outstanding` in flight and `max_queued` waiting already.
    QueueFull,
    /// A password over 128 octets ([RFC 2865] 5.2).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    PasswordTooLong(usize),
    /// The packet would exceed 4096 octets.
    TooLong(usize),
}

impl SendError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            SendError::QueueFull => "queue_full",
            SendError::PasswordTooLong(_) => "password_too_long",
            SendError::TooLong(_) => "too_long",
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::QueueFull => f.write_str("RADIUS request queue full"),
            SendError::PasswordTooLong(len) => write!(f, "{len}-octet password over 128"),
            SendError::TooLong(len) => write!(f, "{len}-octet request over 4096"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why [`Client::handle_datagram`] dropped a datagram ([RFC 2865] 3 says
/// silently; the runtime logs and counts it by `as_str`).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a RADIUS packet.
    Malformed(DecodeError),
    /// From an address that is no configured server.
    UnknownServer,
    /// On a socket index out of `0..sockets_per_server`.
    UnknownSocket,
    /// No request with this identifier on this socket was ever sent, or
    /// its slot has been reused since.
    UnknownIdentifier,
    /// A second answer to a request already answered.
    Duplicate,
    /// An answer to a transmission given up on (failed over, timed out,
    /// cancelled); it still shows the server is alive.
    Late,
    /// A response code that does not answer the request's.
    UnexpectedCode,
    /// A wrong Response Authenticator: another secret, or forged.
    BadAuthenticator,
    /// An Access response without Message-Authenticator though one is
    /// required.
    MissingMessageAuthenticator,
    /// A wrong Message-Authenticator.
    BadMessageAuthenticator,
}

impl DropReason {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::Malformed(_) => "malformed",
            DropReason::UnknownServer => "unknown_server",
            DropReason::UnknownSocket => "unknown_socket",
            DropReason::UnknownIdentifier => "unknown_identifier",
            DropReason::Duplicate => "duplicate",
            DropReason::Late => "late",
            DropReason::UnexpectedCode => "unexpected_code",
            DropReason::BadAuthenticator => "bad_authenticator",
            DropReason::MissingMessageAuthenticator => "missing_message_authenticator",
            DropReason::BadMessageAuthenticator => "bad_message_authenticator",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Malformed(error) => write!(f, "malformed: {error}"),
            other => f.write_str(other.as_str()),
        }
    }
}

impl From<VerifyError> for DropReason {
    fn from(error: VerifyError) -> DropReason {
        match error {
            VerifyError::BadAuthenticator => DropReason::BadAuthenticator,
            VerifyError::MissingMessageAuthenticator => DropReason::MissingMessageAuthenticator,
            VerifyError::BadMessageAuthenticator => DropReason::BadMessageAuthenticator,
        }
    }
}

/// Why a request ended without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailReason {
    /// Every server was tried, with all retries, and none answered.
    Timeout,
    /// No server of the request's kind is configured.
    NoServer,
}

impl FailReason {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            FailReason::Timeout => "timeout",
            FailReason::NoServer => "no_server",
        }
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the MPPE keys of a response could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MppeKeyError {
    /// One of MS-MPPE-Send-Key and MS-MPPE-Recv-Key without the other.
    Missing,
    /// The attribute does not decrypt ([RFC 2548] 2.4.3).
    ///
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    Crypt(CryptError),
    /// A key shorter than the 16 octets of 128-bit MPPE.
    TooShort(usize),
}

impl MppeKeyError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            MppeKeyError::Missing => "missing",
            MppeKeyError::Crypt(error) => error.as_str(),
            MppeKeyError::TooShort(_) => "too_short",
        }
    }
}

impl fmt::Display for MppeKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MppeKeyError::Missing => f.write_str("only one of the MPPE keys"),
            MppeKeyError::Crypt(error) => write!(f, "MPPE key: {error}"),
            MppeKeyError::TooShort(len) => write!(f, "{len}-octet MPPE key under 16"),
        }
    }
}

impl std::error::Error for MppeKeyError {}

/// A verified answer, with what it takes to decrypt its keys.
#[derive(Clone)]
pub struct Response {
    packet: Packet,
    request_authenticator: [u8; 16],
    secret: Arc<[u8]>,
    server: SocketAddr,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("server", &self.server)
            .field("packet", &self.packet)
            .finish_non_exhaustive()
    }
}

impl Response {
    /// A response as the client would report it (tests of code that
    /// handles responses).
    #[cfg(any(test, feature = "testing"))]
    pub fn for_tests(packet: Packet, request_authenticator: [u8; 16], secret: &[u8]) -> Response {
        Response {
            packet,
            request_authenticator,
            secret: Arc::from(secret),
            server: SocketAddr::from(([127, 0, 0, 1], 1812)),
        }
    }

    /// The decoded packet.
    pub fn packet(&self) -> &Packet {
        &self.packet
    }

    /// The decoded packet, by value.
    pub fn into_packet(self) -> Packet {
        self.packet
    }

    /// Access-Accept, -Reject, -Challenge or Accounting-Response.
    pub fn code(&self) -> Code {
        self.packet.code
    }

    /// The response's attributes.
    pub fn attributes(&self) -> &Attributes {
        &self.packet.attributes
    }

    /// The server that answered.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The authenticator of the request this answers (the salt-encryption
    /// of [RFC 2548] 2.4.2 is keyed with it).
    ///
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    pub fn request_authenticator(&self) -> &[u8; 16] {
        &self.request_authenticator
    }

    /// Decrypts a salt-encrypted Microsoft attribute of the response
    /// ([RFC 2548] 2.4.3), e.g. MS-MPPE-Send-Key.
    ///
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    pub fn decrypt_ms_key(&self, ms_type: u8) -> Option<Result<Vec<u8>, CryptError>> {
        let value = self.packet.attributes.ms(ms_type)?;
        Some(crypt::decrypt_mppe_key(
            value,
            &self.secret,
            &self.request_authenticator,
        ))
    }

    /// The MPPE keys of an MS-CHAPv2 Access-Accept ([RFC 2548] 2.4.2,
    /// 2.4.3), in the NAS's view: `send` is MS-MPPE-Send-Key (NAS to
    /// peer), `receive` is MS-MPPE-Recv-Key; the first 16 octets of each
    /// (servers pad some keys to 32). `None` when the response has
    /// neither key.
    ///
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    pub fn mppe_keys(&self) -> Option<Result<MppeKeys, MppeKeyError>> {
        let send = self.decrypt_ms_key(ms::MPPE_SEND_KEY);
        let receive = self.decrypt_ms_key(ms::MPPE_RECV_KEY);
        if send.is_none() && receive.is_none() {
            return None;
        }
        let key = |key: Option<Result<Vec<u8>, CryptError>>| -> Result<[u8; 16], MppeKeyError> {
            let key = key
                .ok_or(MppeKeyError::Missing)?
                .map_err(MppeKeyError::Crypt)?;
            key.get(..16)
                .and_then(|k| k.try_into().ok())
                .ok_or(MppeKeyError::TooShort(key.len()))
        };
        Some(key(send).and_then(|send| {
            Ok(MppeKeys {
                send,
                receive: key(receive)?,
            })
        }))
    }

    /// The Ident and authenticator response of MS-CHAP2-Success ([RFC
    /// 2548] 2.3.3), if the response has a well-formed one.
    ///
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    pub fn mschap2_success(&self) -> Option<(u8, [u8; 20])> {
        ms::parse_chap2_success(self.packet.attributes.ms(ms::CHAP2_SUCCESS)?)
    }
}

/// What the client reports.
#[derive(Debug)]
pub enum Event<T> {
    /// A verified answer to a request.
    Response {
        handle: RequestHandle,
        tag: T,
        response: Response,
    },
    /// A request ended without an answer.
    Failed {
        handle: RequestHandle,
        tag: T,
        reason: FailReason,
    },
    /// A server stopped answering: left alone for `dead_time`.
    ServerDown { addr: SocketAddr, role: ServerRole },
    /// A dead server answered again.
    ServerUp { addr: SocketAddr, role: ServerRole },
}

/// One server's state in [`ClientStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerStats {
    pub addr: SocketAddr,
    pub role: ServerRole,
    pub alive: bool,
    /// Requests in flight to it.
    pub in_flight: usize,
}

/// The client's load and its servers' states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientStats {
    /// Access-Requests in flight.
    pub auth_outstanding: usize,
    /// Access-Requests waiting.
    pub auth_queued: usize,
    /// Accounting-Requests in flight.
    pub acct_outstanding: usize,
    /// Accounting-Requests waiting.
    pub acct_queued: usize,
    /// Authentication servers, then accounting servers, in order.
    pub servers: Vec<ServerStats>,
}

/// Whether a server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Up,
    /// Stopped answering; `last_failure` is when a request last gave up on
    /// it (it is tried again `dead_time` after).
    Down {
        last_failure: Instant,
    },
}

#[derive(Debug)]
struct Server {
    addr: SocketAddr,
    secret: Arc<[u8]>,
    status: Status,
    /// When it last answered anything verifiable.
    last_response: Option<Instant>,
    /// Whether a request is probing it while it is down.
    probing: bool,
    /// The socket the next request to it tries first.
    next_socket: usize,
    in_flight: usize,
}

/// One identifier of one socket towards one server address.
#[derive(Clone, Debug)]
enum Slot {
    Free,
    /// A transmission of request `handle` waiting for its answer.
    InUse {
        handle: u64,
        authenticator: [u8; 16],
    },
    /// A transmission that is over; kept (until reused) to tell duplicates
    /// and late answers from strangers.
    Closed {
        authenticator: [u8; 16],
        role: ServerRole,
        server: usize,
        answered: bool,
    },
}

/// The identifiers of one socket towards one server address.
#[derive(Debug)]
struct IdSpace {
    slots: Vec<Slot>,
    /// Where the search for a free identifier starts: reuse is as late as
    /// possible, so a late answer rarely meets a new request.
    next: usize,
}

impl IdSpace {
    fn new() -> IdSpace {
        IdSpace {
            slots: vec![Slot::Free; IDS],
            next: 0,
        }
    }

    /// Takes a free identifier for `handle`.
    fn take(&mut self, handle: u64) -> Option<u8> {
        for step in 0..IDS {
            let id = (self.next + step) % IDS;
            if !matches!(self.slots[id], Slot::InUse { .. }) {
                self.slots[id] = Slot::InUse {
                    handle,
                    authenticator: [0; 16],
                };
                self.next = (id + 1) % IDS;
                return Some(id as u8);
            }
        }
        None
    }
}

/// One transmission of a request: where it went and what it said.
#[derive(Clone, Copy, Debug)]
struct Sent {
    socket: usize,
    id: u8,
    authenticator: [u8; 16],
}

/// A request on its way to a server.
#[derive(Debug)]
struct Flight {
    server: usize,
    /// Servers of the role this request has given up on (bit per index).
    tried: u64,
    /// Transmissions to this server so far.
    transmissions: u32,
    timeout: Duration,
    deadline: Instant,
    /// When it first went to this server.
    since: Instant,
    /// Every transmission to this server whose identifier it holds; the
    /// last is the current one.
    sent: Vec<Sent>,
    payload: Vec<u8>,
    /// Waiting in the transmit queue.
    pending: bool,
    /// Probing a dead server.
    probe: bool,
    /// Its identifiers and its place in the server's count are given
    /// back (it is between servers, or finished).
    released: bool,
}

#[derive(Debug)]
enum State {
    Queued,
    InFlight(Flight),
}

struct Entry<T> {
    tag: T,
    role: ServerRole,
    /// The attributes to send, without the ones the client computes.
    attributes: Attributes,
    password: Option<Vec<u8>>,
    /// Acct-Delay-Time the request came with.
    delay_base: u32,
    created: Instant,
    state: State,
}

/// The sans-IO RADIUS client; see the [module documentation](self).
/// `T` is the caller's tag for a request, handed back in its event.
pub struct Client<T> {
    config: ClientConfig,
    servers: [Vec<Server>; 2],
    ids: HashMap<SocketAddr, Vec<IdSpace>>,
    entries: HashMap<u64, Entry<T>>,
    next_handle: u64,
    queue: [VecDeque<u64>; 2],
    outstanding: [usize; 2],
    timers: BTreeSet<(Instant, u64)>,
    transmits: VecDeque<u64>,
    events: VecDeque<Event<T>>,
    rng: StdRng,
    /// The latest `now` the caller passed in (for [`Client::cancel`],
    /// which has none).
    last_now: Option<Instant>,
}

impl<T> fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("servers", &self.servers)
            .field("outstanding", &self.outstanding)
            .field("queued", &[self.queue[0].len(), self.queue[1].len()])
            .finish_non_exhaustive()
    }
}

impl<T> Client<T> {
    /// A client with Request Authenticators from a CSPRNG seeded by the
    /// operating system.
    pub fn new(config: ClientConfig) -> Self {
        Self::with_rng(config, StdRng::from_os_rng())
    }

    /// A client whose random choices follow `seed` (tests, benchmarks).
    /// Predictable Request Authenticators weaken User-Password hiding:
    /// never in production.
    pub fn with_seed(config: ClientConfig, seed: [u8; 32]) -> Self {
        Self::with_rng(config, StdRng::from_seed(seed))
    }

    fn with_rng(mut config: ClientConfig, rng: StdRng) -> Self {
        config.auth_servers.truncate(MAX_SERVERS);
        config.acct_servers.truncate(MAX_SERVERS);
        config.sockets_per_server = config.sockets_per_server.max(1);
        config.max_outstanding = config.max_outstanding.max(1);
        config.max_outstanding_accounting = config.max_outstanding_accounting.max(1);
        config.auth_timeout = config.auth_timeout.max(MIN_TIMEOUT);
        config.acct_timeout = config.acct_timeout.max(MIN_TIMEOUT);
        config.max_timeout = config.max_timeout.max(MIN_TIMEOUT);
        let servers = |list: &[ServerConfig]| -> Vec<Server> {
            list.iter()
                .map(|s| Server {
                    addr: s.addr,
                    secret: Arc::from(s.secret.as_slice()),
                    status: Status::Up,
                    last_response: None,
                    probing: false,
                    next_socket: 0,
                    in_flight: 0,
                })
                .collect()
        };
        let servers = [servers(&config.auth_servers), servers(&config.acct_servers)];
        let mut ids = HashMap::new();
        for server in servers.iter().flatten() {
            ids.entry(server.addr).or_insert_with(|| {
                (0..config.sockets_per_server)
                    .map(|_| IdSpace::new())
                    .collect()
            });
        }
        Client {
            config,
            servers,
            ids,
            entries: HashMap::new(),
            next_handle: 0,
            queue: [VecDeque::new(), VecDeque::new()],
            outstanding: [0; 2],
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rng,
            last_now: None,
        }
    }

    /// The configuration in use (lists truncated to [`MAX_SERVERS`],
    /// zero sizes and timeouts raised to their minimum).
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// How many requests of this kind may be in flight at once.
    fn max_outstanding(&self, role: ServerRole) -> usize {
        match role {
            ServerRole::Auth => self.config.max_outstanding,
            ServerRole::Acct => self.config.max_outstanding_accounting,
        }
    }

    /// Whether a request of this kind would be taken now rather than
    /// refused with [`SendError::QueueFull`].
    pub fn has_room(&self, role: ServerRole) -> bool {
        let r = role.index();
        (self.outstanding[r] < self.max_outstanding(role) && self.queue[r].is_empty())
            || self.queue[r].len() < self.config.max_queued
    }

    /// Takes a request: sends it at once if there is room (see
    /// [`poll_transmit`](Self::poll_transmit)), else queues it. Its answer
    /// or failure comes as an [`Event`] carrying `tag`.
    pub fn send(
        &mut self,
        now: Instant,
        request: Request,
        tag: T,
    ) -> Result<RequestHandle, SendError> {
        self.tick(now);
        let role = request.role();
        let r = role.index();
        let (mut attributes, password) = match request.kind {
            RequestKind::Access { password } => (request.attributes, password),
            RequestKind::Accounting => (request.attributes, None),
        };
        let delay_base = match role {
            ServerRole::Acct => attributes.u32(attr::ACCT_DELAY_TIME).unwrap_or(0),
            ServerRole::Auth => 0,
        };
        attributes.remove(attr::MESSAGE_AUTHENTICATOR);
        attributes.remove(attr::ACCT_DELAY_TIME);
        if password.is_some() {
            attributes.remove(attr::USER_PASSWORD);
        }
        self.add_nas_identity(&mut attributes);

        // Check the size now: later encodings only change values of
        // fixed size.
        let mut len = HEADER_LEN + 18 + attributes.encoded_len();
        if let Some(password) = &password {
            if password.len() > crypt::MAX_PASSWORD_LEN {
                return Err(SendError::PasswordTooLong(password.len()));
            }
            len += 2 + password.len().div_ceil(16).max(1) * 16;
        }
        if role == ServerRole::Acct {
            len += 6;
        }
        if len > MAX_PACKET_LEN {
            return Err(SendError::TooLong(len));
        }

        let queue_now =
            self.outstanding[r] >= self.max_outstanding(role) || !self.queue[r].is_empty();
        if queue_now && self.queue[r].len() >= self.config.max_queued {
            return Err(SendError::QueueFull);
        }

        let handle = self.next_handle;
        self.next_handle += 1;
        let entry = Entry {
            tag,
            role,
            attributes,
            password,
            delay_base,
            created: now,
            state: State::Queued,
        };
        if self.servers[r].is_empty() {
            self.events.push_back(Event::Failed {
                handle: RequestHandle(handle),
                tag: entry.tag,
                reason: FailReason::NoServer,
            });
            return Ok(RequestHandle(handle));
        }
        self.entries.insert(handle, entry);
        if queue_now || !self.start(now, handle, 0) {
            if self.queue[r].len() >= self.config.max_queued {
                // No identifier free and no room to wait for one.
                self.entries.remove(&handle);
                return Err(SendError::QueueFull);
            }
            self.queue[r].push_back(handle);
        }
        Ok(RequestHandle(handle))
    }

    /// Adds the configured NAS identity attributes the request lacks.
    fn add_nas_identity(&self, attributes: &mut Attributes) {
        if let Some(id) = &self.config.nas_identifier {
            if !attributes.contains(attr::NAS_IDENTIFIER) {
                if let Ok(attribute) = Attribute::new(attr::NAS_IDENTIFIER, id.as_bytes()) {
                    attributes.push_attribute(attribute);
                }
            }
        }
        if let Some(addr) = self.config.nas_ip_address {
            if !attributes.contains(attr::NAS_IP_ADDRESS) {
                attributes.push_ipv4(attr::NAS_IP_ADDRESS, addr);
            }
        }
        if let Some(addr) = self.config.nas_ipv6_address {
            if !attributes.contains(attr::NAS_IPV6_ADDRESS) {
                attributes.push_ipv6(attr::NAS_IPV6_ADDRESS, addr);
            }
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        while let Some(handle) = self.transmits.pop_front() {
            let Some(entry) = self.entries.get_mut(&handle) else {
                continue;
            };
            let State::InFlight(flight) = &mut entry.state else {
                continue;
            };
            if !flight.pending {
                continue;
            }
            flight.pending = false;
            let server = &self.servers[entry.role.index()][flight.server];
            let socket = flight.sent.last().map_or(0, |s| s.socket);
            return Some(Transmit {
                server: server.addr,
                socket,
                payload: flight.payload.clone(),
            });
        }
        None
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event<T>> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(deadline, _)| deadline)
    }

    /// Runs the timers due by `now`: retransmissions, failovers, failures.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        while let Some(&(deadline, handle)) = self.timers.first() {
            if deadline > now {
                break;
            }
            self.timers.pop_first();
            self.expire(now, handle);
        }
    }

    /// Takes a datagram that arrived from `from` on the runtime's socket
    /// number `socket` for that server. `Err` says why it was dropped.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        socket: usize,
        data: &[u8],
    ) -> Result<(), DropReason> {
        self.tick(now);
        let packet = frame(data).map_err(DropReason::Malformed)?;
        let sockets = self.ids.get(&from).ok_or(DropReason::UnknownServer)?;
        let space = sockets.get(socket).ok_or(DropReason::UnknownSocket)?;
        let id = usize::from(packet[1]);
        let (handle, authenticator) = match space.slots[id] {
            Slot::Free => return Err(DropReason::UnknownIdentifier),
            Slot::Closed {
                authenticator,
                role,
                server,
                answered,
            } => {
                let secret = self.servers[role.index()][server].secret.clone();
                return match crypt::verify_response(packet, &authenticator, &secret, false) {
                    Ok(()) => {
                        self.server_answered(now, role, server);
                        Err(if answered {
                            DropReason::Duplicate
                        } else {
                            DropReason::Late
                        })
                    }
                    Err(_) => Err(DropReason::UnknownIdentifier),
                };
            }
            Slot::InUse {
                handle,
                authenticator,
            } => (handle, authenticator),
        };
        let Some(entry) = self.entries.get(&handle) else {
            return Err(DropReason::UnknownIdentifier);
        };
        let State::InFlight(flight) = &entry.state else {
            return Err(DropReason::UnknownIdentifier);
        };
        let role = entry.role;
        let server = flight.server;
        let code = Code::from(packet[0]);
        let expected = match role {
            ServerRole::Auth => matches!(
                code,
                Code::AccessAccept | Code::AccessReject | Code::AccessChallenge
            ),
            ServerRole::Acct => code == Code::AccountingResponse,
        };
        if !expected {
            return Err(DropReason::UnexpectedCode);
        }
        let secret = self.servers[role.index()][server].secret.clone();
        let require = match role {
            ServerRole::Auth => self.config.require_message_authenticator,
            ServerRole::Acct => self.config.require_message_authenticator_accounting,
        };
        crypt::verify_response(packet, &authenticator, &secret, require)?;
        let decoded = Packet::decode(packet).map_err(DropReason::Malformed)?;

        self.server_answered(now, role, server);
        let entry = self.finish(handle, true);
        if let Some(entry) = entry {
            self.events.push_back(Event::Response {
                handle: RequestHandle(handle),
                tag: entry.tag,
                response: Response {
                    packet: decoded,
                    request_authenticator: authenticator,
                    secret,
                    server: from,
                },
            });
        }
        self.dequeue(now, role);
        Ok(())
    }

    /// Forgets a request (its session ended, say): no event comes for it,
    /// its identifiers are freed. Returns whether it was still pending.
    pub fn cancel(&mut self, handle: RequestHandle) -> bool {
        let Some(entry) = self.finish(handle.0, false) else {
            return false;
        };
        if let (State::InFlight(_), Some(now)) = (entry.state, self.last_now) {
            self.dequeue(now, entry.role);
        }
        true
    }

    /// Notes the caller's clock.
    fn tick(&mut self, now: Instant) {
        self.last_now = Some(self.last_now.map_or(now, |last| last.max(now)));
    }

    /// No request left, in flight or waiting, and nothing to transmit or
    /// report: a client being replaced (a reload) may be dropped.
    pub fn is_idle(&self) -> bool {
        self.entries.is_empty() && self.transmits.is_empty() && self.events.is_empty()
    }

    /// Each server's state: authentication servers, then accounting
    /// servers, in order.
    pub fn servers(&self) -> impl Iterator<Item = ServerStats> + '_ {
        [ServerRole::Auth, ServerRole::Acct]
            .into_iter()
            .flat_map(|role| {
                self.servers[role.index()].iter().map(move |s| ServerStats {
                    addr: s.addr,
                    role,
                    alive: s.status == Status::Up,
                    in_flight: s.in_flight,
                })
            })
    }

    /// Requests in flight and waiting, and each server's state.
    pub fn stats(&self) -> ClientStats {
        let servers = self.servers().collect();
        ClientStats {
            auth_outstanding: self.outstanding[0],
            auth_queued: self.queue[0].len(),
            acct_outstanding: self.outstanding[1],
            acct_queued: self.queue[1].len(),
            servers,
        }
    }

    /// The server a request should try next among those it has not given
    /// up on (`tried`), and whether it goes as a probe of a dead one.
    fn pick(&self, now: Instant, role: ServerRole, tried: u64) -> Option<(usize, bool)> {
        let servers = &self.servers[role.index()];
        let untried = || {
            servers
                .iter()
                .enumerate()
                .filter(move |&(i, _)| tried & (1 << i) == 0)
        };
        // In order of preference, the first alive, or dead but due a probe.
        let due = |s: &Server| match s.status {
            Status::Down { last_failure } => {
                !s.probing && now.saturating_duration_since(last_failure) >= self.config.dead_time
            }
            Status::Up => false,
        };
        if let Some((i, s)) = untried().find(|(_, s)| s.status == Status::Up || due(s)) {
            return Some((i, s.status != Status::Up));
        }
        untried()
            .min_by_key(|(_, s)| match s.status {
                Status::Down { last_failure } => last_failure,
                Status::Up => now,
            })
            .map(|(i, _)| (i, false))
    }

    /// Sends a queued request (or one failing over) to the best server it
    /// has not tried; `false` if that server has no identifier free (it
    /// stays queued). The caller checked there is room in flight.
    fn start(&mut self, now: Instant, handle: u64, tried: u64) -> bool {
        let Some(role) = self.entries.get(&handle).map(|e| e.role) else {
            return false;
        };
        let Some((server, probe)) = self.pick(now, role, tried) else {
            return false;
        };
        let Some((socket, id)) = self.take_id(role, server, handle) else {
            return false;
        };
        let timeout = match role {
            ServerRole::Auth => self.config.auth_timeout,
            ServerRole::Acct => self.config.acct_timeout,
        };
        let (payload, authenticator) = self.build(now, handle, role, server, id);
        self.set_slot_authenticator(role, server, socket, id, authenticator);
        let srv = &mut self.servers[role.index()][server];
        srv.in_flight += 1;
        if probe {
            srv.probing = true;
        }
        let deadline = now + timeout;
        let Some(entry) = self.entries.get_mut(&handle) else {
            return false;
        };
        if matches!(entry.state, State::Queued) {
            self.outstanding[role.index()] += 1;
        }
        entry.state = State::InFlight(Flight {
            server,
            tried,
            transmissions: 1,
            timeout,
            deadline,
            since: now,
            sent: vec![Sent {
                socket,
                id,
                authenticator,
            }],
            payload,
            pending: true,
            probe,
            released: false,
        });
        self.timers.insert((deadline, handle));
        self.transmits.push_back(handle);
        true
    }

    /// A free identifier for `handle` on one of the server's sockets,
    /// starting with the one after the last used.
    fn take_id(&mut self, role: ServerRole, server: usize, handle: u64) -> Option<(usize, u8)> {
        let srv = &mut self.servers[role.index()][server];
        let sockets = self.ids.get_mut(&srv.addr)?;
        let count = sockets.len();
        for step in 0..count {
            let socket = (srv.next_socket + step) % count;
            if let Some(id) = sockets[socket].take(handle) {
                srv.next_socket = (socket + 1) % count;
                return Some((socket, id));
            }
        }
        None
    }

    fn set_slot_authenticator(
        &mut self,
        role: ServerRole,
        server: usize,
        socket: usize,
        id: u8,
        authenticator: [u8; 16],
    ) {
        let addr = self.servers[role.index()][server].addr;
        if let Some(Slot::InUse {
            authenticator: slot,
            ..
        }) = self
            .ids
            .get_mut(&addr)
            .and_then(|s| s.get_mut(socket))
            .map(|s| &mut s.slots[usize::from(id)])
        {
            *slot = authenticator;
        }
    }

    /// Encodes and signs one transmission of a request to `server` with
    /// identifier `id`; returns it and its Request Authenticator.
    fn build(
        &mut self,
        now: Instant,
        handle: u64,
        role: ServerRole,
        server: usize,
        id: u8,
    ) -> (Vec<u8>, [u8; 16]) {
        let secret = self.servers[role.index()][server].secret.clone();
        let Some(entry) = self.entries.get(&handle) else {
            return (Vec::new(), [0; 16]);
        };
        let mut authenticator = [0u8; 16];
        let code = match role {
            ServerRole::Auth => {
                self.rng.fill_bytes(&mut authenticator);
                Code::AccessRequest
            }
            ServerRole::Acct => Code::AccountingRequest,
        };
        let mut attributes = Attributes::new();
        if let Ok(placeholder) = Attribute::new(attr::MESSAGE_AUTHENTICATOR, [0u8; 16]) {
            attributes.push_attribute(placeholder);
        }
        for attribute in &entry.attributes {
            attributes.push_attribute(attribute.clone());
        }
        if let Some(password) = &entry.password {
            if let Ok(hidden) = crypt::hide_password(password, &secret, &authenticator) {
                let _ = attributes.push(attr::USER_PASSWORD, &hidden);
            }
        }
        if role == ServerRole::Acct {
            let waited = now.saturating_duration_since(entry.created).as_secs();
            let delay = u64::from(entry.delay_base).saturating_add(waited);
            attributes.push_u32(
                attr::ACCT_DELAY_TIME,
                u32::try_from(delay).unwrap_or(u32::MAX),
            );
        }
        let packet = Packet {
            code,
            identifier: id,
            authenticator,
            attributes,
        };
        // `send` checked the size.
        let mut bytes = packet.encode().unwrap_or_default();
        crypt::sign_request(&mut bytes, &secret);
        if let Some(hashed) = bytes.get(4..HEADER_LEN) {
            authenticator.copy_from_slice(hashed);
        }
        (bytes, authenticator)
    }

    /// A request's timer fired: retransmit, fail over, or fail.
    fn expire(&mut self, now: Instant, handle: u64) {
        let Some(entry) = self.entries.get_mut(&handle) else {
            return;
        };
        let role = entry.role;
        let State::InFlight(flight) = &mut entry.state else {
            return;
        };
        if flight.transmissions <= self.config.retries {
            flight.transmissions += 1;
            flight.timeout = (flight.timeout * 2).min(self.config.max_timeout);
            flight.deadline = now + flight.timeout;
            let queued = std::mem::replace(&mut flight.pending, true);
            let deadline = flight.deadline;
            let server = flight.server;
            if role == ServerRole::Acct {
                self.retransmit_accounting(now, handle, server);
            }
            self.timers.insert((deadline, handle));
            if !queued {
                self.transmits.push_back(handle);
            }
            return;
        }

        // This server had its chances.
        let (server, since, probe, tried) =
            (flight.server, flight.since, flight.probe, flight.tried);
        self.release(handle, false);
        self.server_failed(now, role, server, since, probe);
        let tried = tried | (1 << server);
        // No server left untried (or, rarely, none of the next one's
        // identifiers free): the request has failed.
        if !self.start(now, handle, tried) {
            let reason = FailReason::Timeout;
            if let Some(entry) = self.finish(handle, false) {
                self.events.push_back(Event::Failed {
                    handle: RequestHandle(handle),
                    tag: entry.tag,
                    reason,
                });
            }
            self.dequeue(now, role);
        }
    }

    /// Rebuilds an Accounting-Request for its retransmission: a new
    /// Acct-Delay-Time, so a new identifier and authenticator ([RFC 2866]
    /// 5.2). Keeps the earlier identifiers (a late answer to them counts);
    /// without a free one, reuses the current identifier.
    ///
    /// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
    fn retransmit_accounting(&mut self, now: Instant, handle: u64, server: usize) {
        let role = ServerRole::Acct;
        let current = match self.entries.get(&handle).map(|e| &e.state) {
            Some(State::InFlight(flight)) => flight.sent.last().copied(),
            _ => None,
        };
        let Some(current) = current else {
            return;
        };
        let (socket, id, fresh) = match self.take_id(role, server, handle) {
            Some((socket, id)) => (socket, id, true),
            None => (current.socket, current.id, false),
        };
        let (payload, authenticator) = self.build(now, handle, role, server, id);
        self.set_slot_authenticator(role, server, socket, id, authenticator);
        if let Some(Entry {
            state: State::InFlight(flight),
            ..
        }) = self.entries.get_mut(&handle)
        {
            flight.payload = payload;
            let sent = Sent {
                socket,
                id,
                authenticator,
            };
            if fresh {
                flight.sent.push(sent);
            } else if let Some(last) = flight.sent.last_mut() {
                *last = sent;
            }
        }
    }

    /// Frees the identifiers a request holds on its current server
    /// (closing their slots), and its place in that server's count.
    fn release(&mut self, handle: u64, answered: bool) {
        let Some(entry) = self.entries.get_mut(&handle) else {
            return;
        };
        let role = entry.role;
        let State::InFlight(flight) = &mut entry.state else {
            return;
        };
        if std::mem::replace(&mut flight.released, true) {
            return;
        }
        self.timers.remove(&(flight.deadline, handle));
        let server = flight.server;
        let srv = &mut self.servers[role.index()][server];
        srv.in_flight = srv.in_flight.saturating_sub(1);
        if flight.probe {
            srv.probing = false;
        }
        if let Some(sockets) = self.ids.get_mut(&srv.addr) {
            for sent in flight.sent.drain(..) {
                if let Some(space) = sockets.get_mut(sent.socket) {
                    let slot = &mut space.slots[usize::from(sent.id)];
                    if matches!(slot, Slot::InUse { handle: h, .. } if *h == handle) {
                        *slot = Slot::Closed {
                            authenticator: sent.authenticator,
                            role,
                            server,
                            answered,
                        };
                    }
                }
            }
        }
        flight.pending = false;
    }

    /// Removes a request for good (answered, failed or cancelled) and
    /// returns it.
    fn finish(&mut self, handle: u64, answered: bool) -> Option<Entry<T>> {
        self.release(handle, answered);
        let entry = self.entries.remove(&handle)?;
        let r = entry.role.index();
        match entry.state {
            State::InFlight(_) => self.outstanding[r] = self.outstanding[r].saturating_sub(1),
            State::Queued => self.queue[r].retain(|&h| h != handle),
        }
        Some(entry)
    }

    /// Sends waiting requests while there is room.
    fn dequeue(&mut self, now: Instant, role: ServerRole) {
        let r = role.index();
        while self.outstanding[r] < self.max_outstanding(role) {
            let Some(handle) = self.queue[r].pop_front() else {
                return;
            };
            if !self.start(now, handle, 0) {
                self.queue[r].push_front(handle);
                return;
            }
        }
    }

    /// A server gave a verified answer: it is alive.
    fn server_answered(&mut self, now: Instant, role: ServerRole, server: usize) {
        let srv = &mut self.servers[role.index()][server];
        srv.last_response = Some(now);
        if srv.status != Status::Up {
            srv.status = Status::Up;
            srv.probing = false;
            self.events.push_back(Event::ServerUp {
                addr: srv.addr,
                role,
            });
        }
    }

    /// A request gave up on a server it reached at `since`: the server is
    /// dead unless it answered something since.
    fn server_failed(
        &mut self,
        now: Instant,
        role: ServerRole,
        server: usize,
        since: Instant,
        probe: bool,
    ) {
        let srv = &mut self.servers[role.index()][server];
        if probe {
            srv.probing = false;
        }
        if srv.last_response.is_some_and(|t| t >= since) {
            return;
        }
        match srv.status {
            Status::Up => {
                srv.status = Status::Down { last_failure: now };
                self.events.push_back(Event::ServerDown {
                    addr: srv.addr,
                    role,
                });
            }
            Status::Down { .. } => srv.status = Status::Down { last_failure: now },
        }
    }
}

#[cfg(test)]
mod tests;
