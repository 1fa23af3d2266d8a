//! The sans-IO authentication state machines owned by the PPP link.
//!
//! [`AuthServer`] and [`AuthClient`] dispatch to the per-method machines in
//! [`super::pap`], [`super::chap`] and [`super::eap`]; the module documentation there says
//! how each treats retransmissions, duplicates and retries.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::chap::{ChapAlgorithm, ChapClient, ChapServer};
use super::eap::{EapClient, EapError, EapServer};
use super::eap_tls::EapTlsClient;
use super::outbox::Outbox;
use super::pap::{PapClient, PapServer};
use super::peap::PeapClient;
use super::tls_framing::{EapTlsError, TlsTunnel};
use super::{AuthDecision, AuthProtocol, MppeKeys, RejectReason};

/// Timers and limits of the authentication phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// Retransmission interval for CHAP Challenge (server) and PAP
    /// Authenticate-Request / CHAP Response (client): the restart timer of
    /// [RFC 1994] 4.1 and [RFC 1334] 2.1. Default 3 s.
    pub restart_interval: Duration,
    /// Transmissions of one packet before giving up. Default 10.
    pub max_transmissions: u32,
    /// MS-CHAPv2 and CHAP: failed attempts after which the server stops
    /// offering retries ([RFC 2759] 6, `R=0`). Default 3.
    pub max_attempts: u32,
    /// Bound on the whole authentication phase, from start to verdict. This
    /// includes the time an [`super::Authenticator`] takes. Default 30 s.
    pub phase_timeout: Duration,
    /// EAP: relay every Response after Identity to the
    /// [`super::Authenticator`] ([`super::Credentials::Eap`]) instead of
    /// running EAP-MSCHAPv2 here. Default off.
    pub eap_relay: bool,
    /// Client role, EAP: the method the peer answers with. Default
    /// EAP-MSCHAPv2.
    pub eap_peer: EapPeerMethod,
}

/// The client role's EAP method.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum EapPeerMethod {
    /// EAP-MSCHAPv2 with the password ([`super::eap`]).
    #[default]
    MsChapV2,
    /// PEAPv0 with EAP-MSCHAPv2 inside ([`super::peap`]), through TLS
    /// tunnels this starts.
    Peap(TlsTunnel),
    /// EAP-TLS ([`super::eap_tls`]): the certificate is the one the TLS
    /// this starts presents; the password is not used.
    Tls(TlsTunnel),
}

impl EapPeerMethod {
    /// Short lowercase name for logs and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            EapPeerMethod::MsChapV2 => "eap-mschapv2",
            EapPeerMethod::Peap(_) => "peap",
            EapPeerMethod::Tls(_) => "eap-tls",
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            restart_interval: Duration::from_secs(3),
            max_transmissions: 10,
            max_attempts: 3,
            phase_timeout: Duration::from_secs(30),
            eap_relay: false,
            eap_peer: EapPeerMethod::MsChapV2,
        }
    }
}

/// What an authentication machine reports to its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthEvent {
    /// Server only: judge these credentials, then call
    /// [`AuthServer::decide`] (now or later).
    Request(super::AuthRequest),
    /// Authentication succeeded. `hlak` is this role's Higher-Layer
    /// Authentication Key for the SSTP crypto binding ([MS-SSTP] 3.2.5.2):
    /// derived from the MPPE master keys for MS-CHAPv2, 32 zero octets for
    /// PAP and CHAP-MD5.
    Success {
        /// The name authenticated: the peer's (server) or our own (client).
        username: String,
        /// The Higher-Layer Authentication Key described above.
        hlak: [u8; 32],
        /// Server only: the address the authenticator pinned for this user.
        framed_ipv4: Option<Ipv4Addr>,
    },
    /// Authentication failed for good; the link must terminate.
    Failure(AuthFailure),
}

/// Why authentication ended without success.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthFailure {
    /// Server: the authenticator rejected the peer (after the last attempt).
    /// Client: the server sent Failure/Nak; for MS-CHAPv2 with the `E=` code.
    Rejected {
        /// Server: the authenticator's reason. Client: mapped from the
        /// MS-CHAPv2 `E=` code, else [`RejectReason::AuthenticationFailure`].
        reason: RejectReason,
        /// MS-CHAPv2 `E=` code as received or sent.
        code: Option<u32>,
        /// The text of the Failure/Nak message, as sent or received.
        message: String,
    },
    /// No verdict within the phase timeout, or retransmissions exhausted.
    Timeout,
    /// Client: the server's MS-CHAPv2 AuthenticatorResponse did not verify
    /// (the server does not know our password: [RFC 2759] 8.8).
    ServerNotAuthenticated,
}

impl AuthFailure {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthFailure::Rejected { .. } => "rejected",
            AuthFailure::Timeout => "timeout",
            AuthFailure::ServerNotAuthenticated => "server_not_authenticated",
        }
    }
}

/// A malformed or unexpected authentication packet. The machines ignore such
/// packets (after counting them); the owner logs and counts the error.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthPacketError {
    /// Too short, or a length field disagreeing with the packet.
    Malformed,
    /// A code this role does not expect (e.g. a Challenge sent to a server).
    UnexpectedCode(u8),
    /// An identifier not matching the outstanding request.
    StaleIdentifier(u8),
    /// An EAP packet refused for the reason named.
    Eap(EapError),
    /// A PEAP or EAP-TLS packet or tunnel refused for the reason named.
    EapTls(EapTlsError),
}

impl AuthPacketError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthPacketError::Malformed => "malformed",
            AuthPacketError::UnexpectedCode(_) => "unexpected_code",
            AuthPacketError::StaleIdentifier(_) => "stale_identifier",
            AuthPacketError::Eap(error) => error.as_str(),
            AuthPacketError::EapTls(error) => error.as_str(),
        }
    }
}

impl std::fmt::Display for AuthPacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthPacketError::Malformed => f.write_str("malformed authentication packet"),
            AuthPacketError::UnexpectedCode(code) => write!(f, "unexpected code {code}"),
            AuthPacketError::StaleIdentifier(id) => write!(f, "stale identifier {id}"),
            AuthPacketError::Eap(error) => write!(f, "EAP: {error}"),
            AuthPacketError::EapTls(error) => write!(f, "EAP-TLS family: {error}"),
        }
    }
}

impl std::error::Error for AuthPacketError {}

/// Server side of one authentication exchange (the authenticator of
/// [RFC 1994] / [RFC 1334] / [RFC 2759]).
///
/// [RFC 1334]: https://www.rfc-editor.org/rfc/rfc1334
/// [RFC 1994]: https://www.rfc-editor.org/rfc/rfc1994
/// [RFC 2759]: https://www.rfc-editor.org/rfc/rfc2759
#[derive(Debug)]
pub struct AuthServer {
    inner: ServerInner,
}

#[derive(Debug)]
enum ServerInner {
    Pap(PapServer),
    /// Boxed: the CHAP machines carry a ChaCha generator.
    Chap(Box<ChapServer>),
    /// Boxed like CHAP.
    Eap(Box<EapServer>),
}

impl AuthServer {
    /// Starts authenticating the peer with `protocol`. For CHAP-MD5 and
    /// MS-CHAPv2 the first Challenge is queued at once; PAP waits for the
    /// peer's Authenticate-Request.
    pub fn new(
        protocol: AuthProtocol,
        config: &AuthConfig,
        now: Instant,
        rng: &mut dyn RngCore,
    ) -> Self {
        let inner = match protocol {
            AuthProtocol::Pap => ServerInner::Pap(PapServer::new(config, now)),
            AuthProtocol::ChapMd5 => ServerInner::Chap(Box::new(ChapServer::new(
                ChapAlgorithm::Md5,
                config,
                now,
                rng,
            ))),
            AuthProtocol::MsChapV2 => ServerInner::Chap(Box::new(ChapServer::new(
                ChapAlgorithm::MsChapV2,
                config,
                now,
                rng,
            ))),
            AuthProtocol::EapMsChapV2 => {
                ServerInner::Eap(Box::new(EapServer::new(config, now, rng)))
            }
        };
        AuthServer { inner }
    }

    /// Counts `failed` attempts that earlier authentication phases of the
    /// same connection spent against [`AuthConfig::max_attempts`]: the
    /// MS-CHAPv2 retry offer (`R=1`) ends when the connection's total
    /// reaches the limit, however many machines it took.
    #[must_use]
    pub fn with_failed_attempts(mut self, failed: u32) -> Self {
        match &mut self.inner {
            ServerInner::Chap(machine) => machine.set_failed_attempts(failed),
            ServerInner::Eap(machine) => machine.set_failed_attempts(failed),
            ServerInner::Pap(_) => {}
        }
        self
    }

    /// Feeds the information field of a received packet of this method's
    /// PPP protocol.
    pub fn handle_packet(&mut self, now: Instant, info: &[u8]) -> Result<(), AuthPacketError> {
        match &mut self.inner {
            ServerInner::Pap(machine) => machine.handle_packet(info),
            ServerInner::Chap(machine) => machine.handle_packet(info),
            ServerInner::Eap(machine) => Ok(machine.handle_packet(now, info)?),
        }
    }

    /// Delivers the [`super::Authenticator`]'s answer to the last
    /// [`AuthEvent::Request`]. Ignored if no request is outstanding. The
    /// owner checks that the answer is for that request (the PPP link does,
    /// by [`super::AuthRequestId`]): this machine cannot tell.
    pub fn decide(&mut self, now: Instant, decision: AuthDecision) {
        match &mut self.inner {
            ServerInner::Pap(machine) => machine.decide(decision),
            ServerInner::Chap(machine) => machine.decide(decision),
            ServerInner::Eap(machine) => machine.decide(now, decision),
        }
    }

    /// Appends the information field of the next packet to send to `buf`;
    /// returns `false` when nothing is queued.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        self.outbox().poll_transmit(buf)
    }

    /// The next event for the owner, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<AuthEvent> {
        self.outbox().poll_event()
    }

    /// Gives back the memory of the machine's empty queues: a machine is
    /// kept after success (to answer a repeated Response), for the
    /// session's life.
    pub fn release_idle_capacity(&mut self) {
        self.outbox().release_idle_capacity();
    }

    /// When [`Self::handle_timeout`] is due next: the retransmission timer
    /// or the phase bound, whichever is earlier.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.inner {
            ServerInner::Pap(machine) => &machine.outbox,
            ServerInner::Chap(machine) => &machine.outbox,
            ServerInner::Eap(machine) => &machine.outbox,
        }
        .poll_timeout()
    }

    /// Fires the timers due at `now`: repeats a CHAP Challenge, or fails
    /// with [`AuthFailure::Timeout`] when the transmissions or the phase
    /// bound are spent.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.inner {
            ServerInner::Pap(machine) => machine.handle_timeout(now),
            ServerInner::Chap(machine) => machine.handle_timeout(now),
            ServerInner::Eap(machine) => machine.handle_timeout(now),
        }
    }

    /// The method this exchange uses.
    pub fn protocol(&self) -> AuthProtocol {
        match &self.inner {
            ServerInner::Pap(_) => AuthProtocol::Pap,
            ServerInner::Chap(machine) => machine.algorithm.protocol(),
            ServerInner::Eap(_) => AuthProtocol::EapMsChapV2,
        }
    }

    /// True while the answer has been given to the peer but the method
    /// waits for the peer's acknowledgement before its verdict
    /// (EAP-MSCHAPv2's Success and Failure Responses).
    pub fn awaits_peer_confirmation(&self) -> bool {
        match &self.inner {
            ServerInner::Eap(machine) => machine.confirming(),
            ServerInner::Pap(_) | ServerInner::Chap(_) => false,
        }
    }

    /// MS-CHAPv2 after success: the server's MPPE master keys (as the
    /// decision's [`super::MsChapV2Proof`] gave them).
    pub fn mppe_keys(&self) -> Option<MppeKeys> {
        match &self.inner {
            ServerInner::Pap(_) => None,
            ServerInner::Chap(machine) => machine.keys,
            ServerInner::Eap(machine) => machine.keys,
        }
    }

    fn outbox(&mut self) -> &mut Outbox {
        match &mut self.inner {
            ServerInner::Pap(machine) => &mut machine.outbox,
            ServerInner::Chap(machine) => &mut machine.outbox,
            ServerInner::Eap(machine) => &mut machine.outbox,
        }
    }
}

/// Client side of one authentication exchange (the peer).
#[derive(Debug)]
pub struct AuthClient {
    inner: ClientInner,
}

#[derive(Debug)]
enum ClientInner {
    Pap(PapClient),
    /// Boxed: the CHAP machines carry a ChaCha generator.
    Chap(Box<ChapClient>),
    /// Boxed like CHAP.
    Eap(Box<EapClient>),
    /// EAP with PEAP ([`EapPeerMethod::Peap`]).
    Peap(Box<PeapClient>),
    /// EAP-TLS ([`EapPeerMethod::Tls`]).
    EapTls(Box<EapTlsClient>),
}

impl AuthClient {
    /// Prepares to authenticate as `username`. PAP queues its
    /// Authenticate-Request at once; CHAP waits for the Challenge.
    ///
    /// Names longer than 255 octets are cut to 255 (what PAP can carry).
    pub fn new(
        protocol: AuthProtocol,
        config: &AuthConfig,
        username: &str,
        password: &[u8],
        now: Instant,
        rng: &mut dyn RngCore,
    ) -> Self {
        let username = username.as_bytes();
        let inner =
            match protocol {
                AuthProtocol::Pap => {
                    let first_identifier = rng.next_u32() as u8;
                    ClientInner::Pap(PapClient::new(
                        config,
                        username,
                        password,
                        now,
                        first_identifier,
                    ))
                }
                AuthProtocol::ChapMd5 => ClientInner::Chap(Box::new(ChapClient::new(
                    ChapAlgorithm::Md5,
                    config,
                    username,
                    password,
                    now,
                    rng,
                ))),
                AuthProtocol::MsChapV2 => ClientInner::Chap(Box::new(ChapClient::new(
                    ChapAlgorithm::MsChapV2,
                    config,
                    username,
                    password,
                    now,
                    rng,
                ))),
                AuthProtocol::EapMsChapV2 => {
                    match &config.eap_peer {
                        EapPeerMethod::Peap(tunnel) => ClientInner::Peap(Box::new(
                            PeapClient::new(config, tunnel.clone(), username, password, now, rng),
                        )),
                        EapPeerMethod::Tls(tunnel) => ClientInner::EapTls(Box::new(
                            EapTlsClient::new(config, tunnel.clone(), username, now),
                        )),
                        EapPeerMethod::MsChapV2 => ClientInner::Eap(Box::new(EapClient::new(
                            config, username, password, now, rng,
                        ))),
                    }
                }
            };
        AuthClient { inner }
    }

    /// Feeds the information field of a received packet of this method's
    /// PPP protocol.
    pub fn handle_packet(&mut self, now: Instant, info: &[u8]) -> Result<(), AuthPacketError> {
        match &mut self.inner {
            ClientInner::Pap(machine) => machine.handle_packet(info),
            ClientInner::Chap(machine) => machine.handle_packet(now, info),
            ClientInner::Eap(machine) => Ok(machine.handle_packet(now, info)?),
            ClientInner::Peap(machine) => machine
                .handle_packet(now, info)
                .map_err(AuthPacketError::EapTls),
            ClientInner::EapTls(machine) => machine
                .handle_packet(now, info)
                .map_err(AuthPacketError::EapTls),
        }
    }

    /// Appends the information field of the next packet to send to `buf`;
    /// returns `false` when nothing is queued.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        self.outbox().poll_transmit(buf)
    }

    /// The next event for the owner, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<AuthEvent> {
        self.outbox().poll_event()
    }

    /// Gives back the memory of the machine's empty queues: a machine is
    /// kept after success (to answer a repeated Response), for the
    /// session's life.
    pub fn release_idle_capacity(&mut self) {
        self.outbox().release_idle_capacity();
    }

    /// When [`Self::handle_timeout`] is due next: the retransmission timer
    /// or the phase bound, whichever is earlier.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.inner {
            ClientInner::Pap(machine) => &machine.outbox,
            ClientInner::Chap(machine) => &machine.outbox,
            ClientInner::Eap(machine) => &machine.outbox,
            ClientInner::Peap(machine) => &machine.outer.outbox,
            ClientInner::EapTls(machine) => &machine.outer.outbox,
        }
        .poll_timeout()
    }

    /// Fires the timers due at `now`: repeats the Authenticate-Request or
    /// Response, or fails with [`AuthFailure::Timeout`] when the phase bound
    /// or (before success) the transmissions are spent.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.inner {
            ClientInner::Pap(machine) => machine.handle_timeout(now),
            ClientInner::Chap(machine) => machine.handle_timeout(now),
            ClientInner::Eap(machine) => machine.handle_timeout(now),
            ClientInner::Peap(machine) => machine.handle_timeout(now),
            ClientInner::EapTls(machine) => machine.handle_timeout(now),
        }
    }

    /// The method this exchange uses.
    pub fn protocol(&self) -> AuthProtocol {
        match &self.inner {
            ClientInner::Pap(_) => AuthProtocol::Pap,
            ClientInner::Chap(machine) => machine.algorithm.protocol(),
            ClientInner::Eap(_) | ClientInner::Peap(_) | ClientInner::EapTls(_) => {
                AuthProtocol::EapMsChapV2
            }
        }
    }

    /// MS-CHAPv2 after a verified Success: the client's MPPE master keys
    /// (`send` is the client's MasterSendKey), e.g. for the sstp-client
    /// plugin socket. The HLAK in [`AuthEvent::Success`] is
    /// `send ‖ receive` of these.
    pub fn mppe_keys(&self) -> Option<MppeKeys> {
        match &self.inner {
            ClientInner::Pap(_) => None,
            ClientInner::Chap(machine) => machine.keys,
            ClientInner::Eap(machine) => machine.keys,
            ClientInner::Peap(_) | ClientInner::EapTls(_) => None,
        }
    }

    fn outbox(&mut self) -> &mut Outbox {
        match &mut self.inner {
            ClientInner::Pap(machine) => &mut machine.outbox,
            ClientInner::Chap(machine) => &mut machine.outbox,
            ClientInner::Eap(machine) => &mut machine.outbox,
            ClientInner::Peap(machine) => &mut machine.outer.outbox,
            ClientInner::EapTls(machine) => &mut machine.outer.outbox,
        }
    }
}
