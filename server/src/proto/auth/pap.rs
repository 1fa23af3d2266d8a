//! Password Authentication Protocol ([RFC 1334] 2): the packet codec and
//! the authenticator and peer machines behind [`super::AuthServer`] and
//! [`super::AuthClient`].
//!
//! [RFC 1334]: https://www.rfc-editor.org/rfc/rfc1334

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Instant;

use super::machine::{AuthConfig, AuthEvent, AuthFailure, AuthPacketError};
use super::outbox::{Limits, Outbox};
use super::packet::{bounded_bytes, bounded_text, peer_text, write_packet, RawPacket};
use super::{AuthDecision, AuthRequest, Credentials, RejectReason, ZERO_HLAK};

/// [RFC 1334] 2.2: Code of Authenticate-Request.
pub const CODE_AUTHENTICATE_REQUEST: u8 = 1;
/// [RFC 1334] 2.2: Code of Authenticate-Ack.
pub const CODE_AUTHENTICATE_ACK: u8 = 2;
/// [RFC 1334] 2.2: Code of Authenticate-Nak.
pub const CODE_AUTHENTICATE_NAK: u8 = 3;

/// Message of the Authenticate-Ack this server sends.
const ACK_MESSAGE: &str = "Authentication succeeded";

/// A PAP packet ([RFC 1334] 2.2), borrowed from the information field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PapPacket<'a> {
    /// [RFC 1334] 2.2.1.
    AuthenticateRequest {
        /// Changes with each new request; copied into the Ack/Nak.
        identifier: u8,
        /// The name of the peer authenticating.
        peer_id: &'a [u8],
        /// The cleartext password.
        password: &'a [u8],
    },
    /// [RFC 1334] 2.2.2.
    AuthenticateAck {
        /// Copied from the Authenticate-Request being answered.
        identifier: u8,
        /// Free text for the peer.
        message: &'a [u8],
    },
    /// [RFC 1334] 2.2.2.
    AuthenticateNak {
        /// Copied from the Authenticate-Request being answered.
        identifier: u8,
        /// Free text for the peer.
        message: &'a [u8],
    },
}

impl fmt::Debug for PapPacket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.code() {
            CODE_AUTHENTICATE_REQUEST => "AuthenticateRequest",
            CODE_AUTHENTICATE_ACK => "AuthenticateAck",
            _ => "AuthenticateNak",
        };
        let mut out = f.debug_struct(name);
        out.field("identifier", &self.identifier());
        match *self {
            // Never the password.
            PapPacket::AuthenticateRequest { peer_id, .. } => {
                out.field("peer_id", &String::from_utf8_lossy(peer_id))
            }
            PapPacket::AuthenticateAck { message, .. }
            | PapPacket::AuthenticateNak { message, .. } => {
                out.field("message", &String::from_utf8_lossy(message))
            }
        };
        out.finish()
    }
}

impl<'a> PapPacket<'a> {
    /// Parses a PAP information field. A field overrunning the Length is
    /// [`AuthPacketError::Malformed`]; an unknown Code is
    /// [`AuthPacketError::UnexpectedCode`]. An Ack/Nak without even the
    /// Msg-Length octet is accepted with an empty message, as some peers
    /// send it that way.
    pub fn parse(info: &'a [u8]) -> Result<Self, AuthPacketError> {
        let raw = RawPacket::parse(info)?;
        let identifier = raw.identifier;
        match raw.code {
            CODE_AUTHENTICATE_REQUEST => {
                let (peer_id, rest) = length_prefixed(raw.data)?;
                let (password, _) = length_prefixed(rest)?;
                Ok(PapPacket::AuthenticateRequest {
                    identifier,
                    peer_id,
                    password,
                })
            }
            CODE_AUTHENTICATE_ACK | CODE_AUTHENTICATE_NAK => {
                let message = if raw.data.is_empty() {
                    raw.data
                } else {
                    length_prefixed(raw.data)?.0
                };
                Ok(if raw.code == CODE_AUTHENTICATE_ACK {
                    PapPacket::AuthenticateAck {
                        identifier,
                        message,
                    }
                } else {
                    PapPacket::AuthenticateNak {
                        identifier,
                        message,
                    }
                })
            }
            code => Err(AuthPacketError::UnexpectedCode(code)),
        }
    }

    /// The packet's Code ([`CODE_AUTHENTICATE_REQUEST`] to
    /// [`CODE_AUTHENTICATE_NAK`]).
    pub fn code(&self) -> u8 {
        match self {
            PapPacket::AuthenticateRequest { .. } => CODE_AUTHENTICATE_REQUEST,
            PapPacket::AuthenticateAck { .. } => CODE_AUTHENTICATE_ACK,
            PapPacket::AuthenticateNak { .. } => CODE_AUTHENTICATE_NAK,
        }
    }

    /// The packet's Identifier.
    pub fn identifier(&self) -> u8 {
        match *self {
            PapPacket::AuthenticateRequest { identifier, .. }
            | PapPacket::AuthenticateAck { identifier, .. }
            | PapPacket::AuthenticateNak { identifier, .. } => identifier,
        }
    }

    /// Appends the packet to `buf`. Each text field is cut to 255 octets,
    /// the most its one-octet length can say.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match *self {
            PapPacket::AuthenticateRequest {
                identifier,
                peer_id,
                password,
            } => {
                let peer_id = bounded_bytes(peer_id);
                let password = bounded_bytes(password);
                write_packet(
                    buf,
                    CODE_AUTHENTICATE_REQUEST,
                    identifier,
                    &[
                        &[peer_id.len() as u8],
                        peer_id,
                        &[password.len() as u8],
                        password,
                    ],
                );
            }
            PapPacket::AuthenticateAck { message, .. }
            | PapPacket::AuthenticateNak { message, .. } => {
                let message = bounded_bytes(message);
                write_packet(
                    buf,
                    self.code(),
                    self.identifier(),
                    &[&[message.len() as u8], message],
                );
            }
        }
    }

    /// The Message of an Ack or Nak.
    pub fn message(&self) -> Option<&'a [u8]> {
        match *self {
            PapPacket::AuthenticateRequest { .. } => None,
            PapPacket::AuthenticateAck { message, .. }
            | PapPacket::AuthenticateNak { message, .. } => Some(message),
        }
    }

    fn to_vec(self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.encode(&mut buf);
        buf
    }
}

/// Splits a one-octet-length-prefixed field off `data`.
fn length_prefixed(data: &[u8]) -> Result<(&[u8], &[u8]), AuthPacketError> {
    let (&len, rest) = data.split_first().ok_or(AuthPacketError::Malformed)?;
    rest.split_at_checked(usize::from(len))
        .ok_or(AuthPacketError::Malformed)
}

/// The authenticator's side of PAP ([RFC 1334] 2.1): waits for the peer's
/// Authenticate-Request, asks the owner to judge it, answers Ack or Nak.
///
/// The verdict is given once. Requests repeated while it is pending (the
/// peer retransmits, with the same or, as [RFC 1334] 2.2.1 asks, a new
/// Identifier) are not judged again: the answer goes to the newest
/// identifier of the judged credentials. Requests after the verdict get the
/// same verdict again, echoing their identifier (the Ack may have been lost).
/// PAP has no retry: a Nak ends the phase.
pub(crate) struct PapServer {
    pub(super) outbox: Outbox,
    state: PapServerState,
}

enum PapServerState {
    Waiting,
    Deciding {
        /// Identifier of the newest request carrying these credentials.
        identifier: u8,
        peer_id: Vec<u8>,
        password: Vec<u8>,
    },
    Decided {
        code: u8,
        message: Vec<u8>,
    },
    /// The phase timed out before a verdict.
    Abandoned,
}

impl fmt::Debug for PapServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            PapServerState::Waiting => "waiting",
            PapServerState::Deciding { .. } => "deciding",
            PapServerState::Decided { .. } => "decided",
            PapServerState::Abandoned => "abandoned",
        };
        f.debug_struct("PapServer")
            .field("state", &state)
            .field("outbox", &self.outbox)
            .finish()
    }
}

impl PapServer {
    pub(crate) fn new(config: &AuthConfig, now: Instant) -> Self {
        PapServer {
            outbox: Outbox::new(now + config.phase_timeout),
            state: PapServerState::Waiting,
        }
    }

    pub(crate) fn handle_packet(&mut self, info: &[u8]) -> Result<(), AuthPacketError> {
        let packet = PapPacket::parse(info)?;
        let PapPacket::AuthenticateRequest {
            identifier,
            peer_id,
            password,
        } = packet
        else {
            return Err(AuthPacketError::UnexpectedCode(packet.code()));
        };
        match &mut self.state {
            PapServerState::Waiting => {
                self.outbox.emit(AuthEvent::Request(AuthRequest {
                    id: super::AuthRequestId::UNASSIGNED,
                    username: peer_text(peer_id),
                    credentials: Credentials::Pap {
                        password: password.to_vec(),
                    },
                }));
                self.state = PapServerState::Deciding {
                    identifier,
                    peer_id: peer_id.to_vec(),
                    password: password.to_vec(),
                };
            }
            PapServerState::Deciding {
                identifier: newest,
                peer_id: judged_peer_id,
                password: judged_password,
            } => {
                // A retransmission: answered with the pending verdict. Other
                // credentials while one set is being judged are dropped.
                if peer_id == &judged_peer_id[..] && password == &judged_password[..] {
                    *newest = identifier;
                }
            }
            PapServerState::Decided { code, message } => {
                self.outbox.send(reply(*code, identifier, message));
            }
            PapServerState::Abandoned => {}
        }
        Ok(())
    }

    pub(crate) fn decide(&mut self, decision: AuthDecision) {
        let PapServerState::Deciding {
            identifier,
            peer_id,
            ..
        } = &self.state
        else {
            return;
        };
        let (identifier, username) = (*identifier, peer_text(peer_id));
        let (code, message) = match decision {
            challenge @ AuthDecision::Challenge(_) => {
                return self.decide(challenge.refusing_challenge());
            }
            AuthDecision::Accept(accept) => {
                self.outbox.succeed(AuthEvent::Success {
                    username,
                    hlak: ZERO_HLAK,
                    framed_ipv4: accept.framed_ipv4,
                });
                (CODE_AUTHENTICATE_ACK, ACK_MESSAGE.as_bytes().to_vec())
            }
            AuthDecision::Reject(reject) => {
                let message = bounded_text(&reject.message).to_vec();
                self.outbox.fail(AuthFailure::Rejected {
                    reason: reject.reason,
                    code: None,
                    message: reject.message,
                });
                (CODE_AUTHENTICATE_NAK, message)
            }
        };
        self.outbox.send(reply(code, identifier, &message));
        self.state = PapServerState::Decided { code, message };
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.outbox.phase_expired(now) {
            self.state = PapServerState::Abandoned;
            self.outbox.fail(AuthFailure::Timeout);
        }
    }
}

fn reply(code: u8, identifier: u8, message: &[u8]) -> Vec<u8> {
    if code == CODE_AUTHENTICATE_ACK {
        PapPacket::AuthenticateAck {
            identifier,
            message,
        }
        .to_vec()
    } else {
        PapPacket::AuthenticateNak {
            identifier,
            message,
        }
        .to_vec()
    }
}

/// The peer's side of PAP ([RFC 1334] 2.1): sends Authenticate-Request and
/// repeats it on the restart timer, with a new Identifier each time
/// ([RFC 1334] 2.2.1), until an Ack or Nak for any of them arrives or
/// `max_transmissions` are spent.
pub(crate) struct PapClient {
    pub(super) outbox: Outbox,
    limits: Limits,
    username: Vec<u8>,
    password: Vec<u8>,
    first_identifier: u8,
    transmissions: u32,
}

impl fmt::Debug for PapClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PapClient")
            .field("username", &String::from_utf8_lossy(&self.username))
            .field("transmissions", &self.transmissions)
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

impl PapClient {
    pub(crate) fn new(
        config: &AuthConfig,
        username: &[u8],
        password: &[u8],
        now: Instant,
        first_identifier: u8,
    ) -> Self {
        let mut client = PapClient {
            outbox: Outbox::new(now + config.phase_timeout),
            limits: Limits::new(config),
            username: bounded_bytes(username).to_vec(),
            password: bounded_bytes(password).to_vec(),
            first_identifier,
            transmissions: 0,
        };
        client.transmit(now);
        client
    }

    fn transmit(&mut self, now: Instant) {
        let identifier = self.first_identifier.wrapping_add(self.transmissions as u8);
        self.outbox.send(
            PapPacket::AuthenticateRequest {
                identifier,
                peer_id: &self.username,
                password: &self.password,
            }
            .to_vec(),
        );
        self.transmissions += 1;
        self.outbox.retransmit_at = Some(now + self.limits.restart_interval);
    }

    pub(crate) fn handle_packet(&mut self, info: &[u8]) -> Result<(), AuthPacketError> {
        let packet = PapPacket::parse(info)?;
        let identifier = packet.identifier();
        let message = packet
            .message()
            .ok_or(AuthPacketError::UnexpectedCode(packet.code()))?;
        if self.outbox.verdict.is_some() {
            // A repeated answer to one of our retransmissions.
            return Ok(());
        }
        // Identifiers sent so far: first, first+1, ..., first+transmissions-1.
        let sent = u32::from(identifier.wrapping_sub(self.first_identifier)) < self.transmissions;
        if !sent {
            return Err(AuthPacketError::StaleIdentifier(identifier));
        }
        match packet {
            PapPacket::AuthenticateAck { .. } => self.outbox.succeed(AuthEvent::Success {
                username: peer_text(&self.username),
                hlak: ZERO_HLAK,
                framed_ipv4: None::<Ipv4Addr>,
            }),
            _ => self.outbox.fail(AuthFailure::Rejected {
                reason: RejectReason::AuthenticationFailure,
                code: None,
                message: peer_text(message),
            }),
        }
        Ok(())
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.outbox.verdict.is_some() {
            return;
        }
        if self.outbox.phase_expired(now) {
            self.outbox.fail(AuthFailure::Timeout);
        } else if self.outbox.retransmit_due(now) {
            if self.transmissions < self.limits.max_transmissions && self.transmissions < 256 {
                self.transmit(now);
            } else {
                self.outbox.fail(AuthFailure::Timeout);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        let packet = PapPacket::AuthenticateRequest {
            identifier: 0x11,
            peer_id: b"bob",
            password: b"pw",
        };
        let bytes = packet.to_vec();
        assert_eq!(bytes, [1, 0x11, 0, 11, 3, b'b', b'o', b'b', 2, b'p', b'w']);
        assert_eq!(PapPacket::parse(&bytes), Ok(packet));
    }

    #[test]
    fn ack_and_nak_bytes() {
        let ack = PapPacket::AuthenticateAck {
            identifier: 4,
            message: b"ok",
        };
        assert_eq!(ack.to_vec(), [2, 4, 0, 7, 2, b'o', b'k']);
        let nak = PapPacket::AuthenticateNak {
            identifier: 5,
            message: b"",
        };
        assert_eq!(nak.to_vec(), [3, 5, 0, 5, 0]);
        assert_eq!(PapPacket::parse(&nak.to_vec()), Ok(nak));
        // Without the Msg-Length octet: an empty message.
        assert_eq!(
            PapPacket::parse(&[2, 9, 0, 4]),
            Ok(PapPacket::AuthenticateAck {
                identifier: 9,
                message: b""
            })
        );
    }

    #[test]
    fn malformed_requests_are_rejected() {
        // Peer-ID length beyond the data.
        assert_eq!(
            PapPacket::parse(&[1, 1, 0, 6, 5, b'a']),
            Err(AuthPacketError::Malformed)
        );
        // Passwd-Length missing.
        assert_eq!(
            PapPacket::parse(&[1, 1, 0, 6, 1, b'a']),
            Err(AuthPacketError::Malformed)
        );
        // Password shorter than Passwd-Length.
        assert_eq!(
            PapPacket::parse(&[1, 1, 0, 8, 1, b'a', 3, b'x']),
            Err(AuthPacketError::Malformed)
        );
        // Empty request data.
        assert_eq!(
            PapPacket::parse(&[1, 1, 0, 4]),
            Err(AuthPacketError::Malformed)
        );
        // Message length beyond the data.
        assert_eq!(
            PapPacket::parse(&[3, 1, 0, 6, 9, b'x']),
            Err(AuthPacketError::Malformed)
        );
        assert_eq!(
            PapPacket::parse(&[4, 1, 0, 4]),
            Err(AuthPacketError::UnexpectedCode(4))
        );
    }

    #[test]
    fn long_fields_are_cut_to_their_length_octet() {
        let long = [b'x'; 300];
        let bytes = PapPacket::AuthenticateRequest {
            identifier: 1,
            peer_id: &long,
            password: b"p",
        }
        .to_vec();
        let Ok(PapPacket::AuthenticateRequest { peer_id, .. }) = PapPacket::parse(&bytes) else {
            panic!("request did not parse back");
        };
        assert_eq!(peer_id.len(), 255);
    }

    #[test]
    fn debug_hides_the_password() {
        let packet = PapPacket::AuthenticateRequest {
            identifier: 1,
            peer_id: b"bob",
            password: b"hunter2",
        };
        let text = format!("{packet:?}");
        assert!(text.contains("bob"));
        assert!(!text.contains("hunter2"));
    }
}
