//! The sans-IO authentication state machines owned by the PPP link.
//!
//! CONTRACT (shared by the PPP-link and the authentication work): the public
//! signatures in this file are what `ppp::link` builds against. Bodies are
//! filled in by the authentication work.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::{AuthDecision, AuthProtocol, RejectReason};

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
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            restart_interval: Duration::from_secs(3),
            max_transmissions: 10,
            max_attempts: 3,
            phase_timeout: Duration::from_secs(30),
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
        username: String,
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
        reason: RejectReason,
        /// MS-CHAPv2 `E=` code as received or sent.
        code: Option<u32>,
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
}

/// Server side of one authentication exchange (the authenticator of
/// [RFC 1994] / [RFC 1334] / [RFC 2759]).
#[derive(Debug)]
pub struct AuthServer {
    _private: (),
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
        let _ = (protocol, config, now, rng);
        todo!("authentication work")
    }

    /// Feeds the information field of a received packet of this method's
    /// PPP protocol.
    pub fn handle_packet(&mut self, now: Instant, info: &[u8]) -> Result<(), AuthPacketError> {
        let _ = (now, info);
        todo!("authentication work")
    }

    /// Delivers the [`super::Authenticator`]'s answer to the last
    /// [`AuthEvent::Request`]. Ignored if no request is outstanding.
    pub fn decide(&mut self, now: Instant, decision: AuthDecision) {
        let _ = (now, decision);
        todo!("authentication work")
    }

    /// Appends the information field of the next packet to send to `buf`;
    /// returns `false` when nothing is queued.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        let _ = buf;
        todo!("authentication work")
    }

    pub fn poll_event(&mut self) -> Option<AuthEvent> {
        todo!("authentication work")
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!("authentication work")
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!("authentication work")
    }
}

/// Client side of one authentication exchange (the peer).
#[derive(Debug)]
pub struct AuthClient {
    _private: (),
}

impl AuthClient {
    /// Prepares to authenticate as `username`. PAP queues its
    /// Authenticate-Request at once; CHAP waits for the Challenge.
    pub fn new(
        protocol: AuthProtocol,
        config: &AuthConfig,
        username: &str,
        password: &[u8],
        now: Instant,
        rng: &mut dyn RngCore,
    ) -> Self {
        let _ = (protocol, config, username, password, now, rng);
        todo!("authentication work")
    }

    pub fn handle_packet(&mut self, now: Instant, info: &[u8]) -> Result<(), AuthPacketError> {
        let _ = (now, info);
        todo!("authentication work")
    }

    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        let _ = buf;
        todo!("authentication work")
    }

    pub fn poll_event(&mut self) -> Option<AuthEvent> {
        todo!("authentication work")
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!("authentication work")
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!("authentication work")
    }
}
