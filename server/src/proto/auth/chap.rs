//! CHAP ([RFC 1994]) with MD5 (algorithm 5) and MS-CHAPv2 ([RFC 2759],
//! algorithm 0x81): the packet codec and the authenticator and peer
//! machines behind [`super::AuthServer`] and [`super::AuthClient`].
//!
//! Behaviour worth knowing:
//!
//! * The authenticator repeats the *same* Challenge (Identifier and value)
//!   on the restart timer until a Response for it arrives, as pppd does, so
//!   a late Response to an earlier transmission still counts.
//! * A Response is judged once. Copies with the same Identifier that arrive
//!   while the decision is pending are dropped; copies after it get the very
//!   same Success/Failure packet again ([RFC 1994] 4.1, "MUST return the
//!   same reply Code previously returned for that specific Identifier").
//! * The peer repeats its Response on the restart timer until Success or
//!   Failure arrives, so a lost reply is recovered by the rule above.
//! * CHAP-MD5 has no retry: Failure ends the phase. MS-CHAPv2 offers
//!   retries ([RFC 2759] 6): after an `E=691` failure the server sends
//!   `R=1` with a new challenge in `C=` until `max_attempts` failures, the
//!   last one with `R=0`. The peer answers a retry with a Response whose
//!   Identifier is the Failure's plus one, computed over the `C=` challenge
//!   (the rule Windows and RFC 2433 follow); other reasons (646..649) are
//!   final at once since trying again cannot help.
//! * The server does not re-challenge during the network phase (allowed by
//!   [RFC 1994] 4.1, not needed over TLS); the peer does answer such
//!   re-challenges from other servers, and reports a failed one.
//! * There is no MS-CHAPv2 Change-Password (code 7, [RFC 2759] 7): an
//!   `E=648` failure is final, and code 7 from a peer is an
//!   [`AuthPacketError::UnexpectedCode`]. The peer never acknowledges
//!   Success: in PPP, MS-CHAPv2 ends with the Success packet ([RFC 2759] 5;
//!   the acknowledging Success Response exists only in EAP-MSCHAPv2).
//!
//! [RFC 1994]: https://www.rfc-editor.org/rfc/rfc1994
//! [RFC 2759]: https://www.rfc-editor.org/rfc/rfc2759

use std::fmt;
use std::time::Instant;

use crate::proto::rng::SessionRng;
use md5::{Digest as _, Md5};
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::machine::{AuthConfig, AuthEvent, AuthFailure, AuthPacketError};
use super::mschapv2::{self, FailureMessage, ResponseValue, CHALLENGE_LEN};
use super::outbox::{Limits, Outbox};
use super::packet::{bounded_bytes, bounded_text, peer_text, write_packet, RawPacket};
use super::{
    mppe, AuthDecision, AuthProtocol, AuthReject, AuthRequest, Credentials, MppeKeys, RejectReason,
    ZERO_HLAK,
};
use crate::proto::Role;

/// [RFC 1994] 4: Code of Challenge.
pub const CODE_CHALLENGE: u8 = 1;
/// [RFC 1994] 4: Code of Response.
pub const CODE_RESPONSE: u8 = 2;
/// [RFC 1994] 4: Code of Success.
pub const CODE_SUCCESS: u8 = 3;
/// [RFC 1994] 4: Code of Failure.
pub const CODE_FAILURE: u8 = 4;

/// The Name this authenticator puts into its Challenges.
pub const AUTHENTICATOR_NAME: &[u8] = b"sstpd";

const SUCCESS_TEXT: &str = "Access granted";
/// Sent when an authenticator accepts MS-CHAPv2 credentials without the
/// proof needed to build the Success packet (a backend bug).
const MISSING_PROOF_TEXT: &str = "Authentication service unavailable";

/// A CHAP packet ([RFC 1994] 4), borrowed from the information field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ChapPacket<'a> {
    /// [RFC 1994] 4.1.
    Challenge {
        /// Matches the Response to this Challenge.
        identifier: u8,
        /// The challenge value (16 octets for MS-CHAPv2).
        value: &'a [u8],
        /// The authenticator's name (the rest of the packet).
        name: &'a [u8],
    },
    /// [RFC 1994] 4.1.
    Response {
        /// Copied from the Challenge being answered.
        identifier: u8,
        /// The MD5 digest, or the MS-CHAPv2 Response value ([RFC 2759] 4).
        value: &'a [u8],
        /// The peer's user name (the rest of the packet).
        name: &'a [u8],
    },
    /// [RFC 1994] 4.2.
    Success {
        /// Copied from the Response being answered.
        identifier: u8,
        /// Free text, or the MS-CHAPv2 `S=` message ([RFC 2759] 5).
        message: &'a [u8],
    },
    /// [RFC 1994] 4.2.
    Failure {
        /// Copied from the Response being answered.
        identifier: u8,
        /// Free text, or the MS-CHAPv2 `E=… R=… C=… V=… M=…` message
        /// ([RFC 2759] 6).
        message: &'a [u8],
    },
}

impl fmt::Debug for ChapPacket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.code() {
            CODE_CHALLENGE => "Challenge",
            CODE_RESPONSE => "Response",
            CODE_SUCCESS => "Success",
            _ => "Failure",
        };
        let mut out = f.debug_struct(name);
        out.field("identifier", &self.identifier());
        match *self {
            // Values are secret-derived: only their size is shown.
            ChapPacket::Challenge { value, name, .. }
            | ChapPacket::Response { value, name, .. } => out
                .field("value_size", &value.len())
                .field("name", &String::from_utf8_lossy(name)),
            ChapPacket::Success { message, .. } | ChapPacket::Failure { message, .. } => {
                out.field("message", &String::from_utf8_lossy(message))
            }
        };
        out.finish()
    }
}

impl<'a> ChapPacket<'a> {
    /// Parses a CHAP information field. A Value-Size of zero or beyond the
    /// data is [`AuthPacketError::Malformed`]; Codes other than 1 to 4 are
    /// [`AuthPacketError::UnexpectedCode`].
    pub fn parse(info: &'a [u8]) -> Result<Self, AuthPacketError> {
        let raw = RawPacket::parse(info)?;
        let identifier = raw.identifier;
        match raw.code {
            CODE_CHALLENGE | CODE_RESPONSE => {
                let (&size, rest) = raw.data.split_first().ok_or(AuthPacketError::Malformed)?;
                if size == 0 {
                    return Err(AuthPacketError::Malformed);
                }
                let (value, name) = rest
                    .split_at_checked(usize::from(size))
                    .ok_or(AuthPacketError::Malformed)?;
                Ok(if raw.code == CODE_CHALLENGE {
                    ChapPacket::Challenge {
                        identifier,
                        value,
                        name,
                    }
                } else {
                    ChapPacket::Response {
                        identifier,
                        value,
                        name,
                    }
                })
            }
            CODE_SUCCESS => Ok(ChapPacket::Success {
                identifier,
                message: raw.data,
            }),
            CODE_FAILURE => Ok(ChapPacket::Failure {
                identifier,
                message: raw.data,
            }),
            code => Err(AuthPacketError::UnexpectedCode(code)),
        }
    }

    /// The packet's Code ([`CODE_CHALLENGE`] to [`CODE_FAILURE`]).
    pub fn code(&self) -> u8 {
        match self {
            ChapPacket::Challenge { .. } => CODE_CHALLENGE,
            ChapPacket::Response { .. } => CODE_RESPONSE,
            ChapPacket::Success { .. } => CODE_SUCCESS,
            ChapPacket::Failure { .. } => CODE_FAILURE,
        }
    }

    /// The packet's Identifier.
    pub fn identifier(&self) -> u8 {
        match *self {
            ChapPacket::Challenge { identifier, .. }
            | ChapPacket::Response { identifier, .. }
            | ChapPacket::Success { identifier, .. }
            | ChapPacket::Failure { identifier, .. } => identifier,
        }
    }

    /// Appends the packet to `buf`. Values are cut to 255 octets (one-octet
    /// Value-Size); a packet is cut at 65535 octets (16-bit Length).
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match *self {
            ChapPacket::Challenge { value, name, .. }
            | ChapPacket::Response { value, name, .. } => {
                let value = bounded_bytes(value);
                write_packet(
                    buf,
                    self.code(),
                    self.identifier(),
                    &[&[value.len() as u8], value, name],
                );
            }
            ChapPacket::Success { message, .. } | ChapPacket::Failure { message, .. } => {
                write_packet(buf, self.code(), self.identifier(), &[message]);
            }
        }
    }

    /// The packet encoded into a new buffer, as [`Self::encode`] writes it.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.encode(&mut buf);
        buf
    }
}

/// The two CHAP algorithms spoken here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChapAlgorithm {
    Md5,
    MsChapV2,
}

impl ChapAlgorithm {
    pub(crate) fn protocol(self) -> AuthProtocol {
        match self {
            ChapAlgorithm::Md5 => AuthProtocol::ChapMd5,
            ChapAlgorithm::MsChapV2 => AuthProtocol::MsChapV2,
        }
    }
}

/// [RFC 1994] 4.1: `MD5(Identifier ‖ secret ‖ Challenge)`.
pub fn md5_response(identifier: u8, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    Md5::new()
        .chain_update([identifier])
        .chain_update(secret)
        .chain_update(challenge)
        .finalize()
        .into()
}

/// The authenticator's side of CHAP-MD5 and MS-CHAPv2.
pub(crate) struct ChapServer {
    pub(super) algorithm: ChapAlgorithm,
    limits: Limits,
    /// Challenges for retries are drawn here (decide() gets no rng).
    rng: SessionRng,
    pub(super) outbox: Outbox,
    /// Identifier and value of the outstanding challenge.
    identifier: u8,
    challenge: [u8; CHALLENGE_LEN],
    transmissions: u32,
    failed_attempts: u32,
    state: ChapServerState,
    /// The last Success/Failure sent and the Identifier it answered.
    last_reply: Option<(u8, Vec<u8>)>,
    /// MS-CHAPv2 after success.
    pub(super) keys: Option<MppeKeys>,
}

#[derive(Debug)]
enum ChapServerState {
    /// Waiting for a Response to `identifier` (after a Challenge, or after
    /// an MS-CHAPv2 Failure with `R=1`, whose `C=` is the challenge).
    Challenging,
    /// The Response was handed to the owner as [`AuthEvent::Request`].
    Deciding {
        username: String,
    },
    Succeeded,
    Failed,
}

impl fmt::Debug for ChapServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChapServer")
            .field("algorithm", &self.algorithm)
            .field("identifier", &self.identifier)
            .field("transmissions", &self.transmissions)
            .field("failed_attempts", &self.failed_attempts)
            .field("state", &self.state)
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

impl ChapServer {
    pub(crate) fn new(
        algorithm: ChapAlgorithm,
        config: &AuthConfig,
        now: Instant,
        rng: &mut dyn RngCore,
    ) -> Self {
        let mut rng = SessionRng::from_rng(rng);
        let mut challenge = [0u8; CHALLENGE_LEN];
        rng.fill_bytes(&mut challenge);
        let identifier = rng.next_u32() as u8;
        let mut server = ChapServer {
            algorithm,
            limits: Limits::new(config),
            rng,
            outbox: Outbox::new(now + config.phase_timeout),
            identifier,
            challenge,
            transmissions: 0,
            failed_attempts: 0,
            state: ChapServerState::Challenging,
            last_reply: None,
            keys: None,
        };
        server.send_challenge(now);
        server
    }

    /// Failures earlier authentication phases of this connection already
    /// spent: an LCP renegotiation starts a new machine but the
    /// connection's attempt limit goes on counting.
    pub(crate) fn set_failed_attempts(&mut self, failed: u32) {
        self.failed_attempts = failed;
    }

    fn send_challenge(&mut self, now: Instant) {
        self.outbox.send(
            ChapPacket::Challenge {
                identifier: self.identifier,
                value: &self.challenge,
                name: AUTHENTICATOR_NAME,
            }
            .to_vec(),
        );
        self.transmissions += 1;
        self.outbox.retransmit_at = Some(now + self.limits.restart_interval);
    }

    pub(crate) fn handle_packet(&mut self, info: &[u8]) -> Result<(), AuthPacketError> {
        let packet = ChapPacket::parse(info)?;
        let ChapPacket::Response {
            identifier,
            value,
            name,
        } = packet
        else {
            return Err(AuthPacketError::UnexpectedCode(packet.code()));
        };
        if let Some((answered, reply)) = &self.last_reply {
            if *answered == identifier {
                self.outbox.send(reply.clone());
                return Ok(());
            }
        }
        if identifier != self.identifier {
            return Err(AuthPacketError::StaleIdentifier(identifier));
        }
        match self.state {
            ChapServerState::Challenging => {}
            // A copy of the Response being judged: the verdict answers it.
            ChapServerState::Deciding { .. } => return Ok(()),
            ChapServerState::Succeeded | ChapServerState::Failed => {
                return Err(AuthPacketError::StaleIdentifier(identifier))
            }
        }
        let credentials = match self.algorithm {
            ChapAlgorithm::Md5 => Credentials::ChapMd5 {
                identifier,
                challenge: self.challenge.to_vec(),
                response: value.try_into().map_err(|_| AuthPacketError::Malformed)?,
            },
            ChapAlgorithm::MsChapV2 => {
                let response = ResponseValue::parse(value)?;
                Credentials::MsChapV2 {
                    identifier,
                    authenticator_challenge: self.challenge,
                    peer_challenge: response.peer_challenge,
                    nt_response: response.nt_response,
                }
            }
        };
        let username = peer_text(name);
        self.outbox.retransmit_at = None;
        self.state = ChapServerState::Deciding {
            username: username.clone(),
        };
        self.outbox.emit(AuthEvent::Request(AuthRequest {
            id: super::AuthRequestId::UNASSIGNED,
            username,
            credentials,
        }));
        Ok(())
    }

    pub(crate) fn decide(&mut self, decision: AuthDecision) {
        let ChapServerState::Deciding { username } =
            std::mem::replace(&mut self.state, ChapServerState::Challenging)
        else {
            return;
        };
        match (decision, self.algorithm) {
            (AuthDecision::Accept(accept), ChapAlgorithm::Md5) => {
                self.reply(CODE_SUCCESS, SUCCESS_TEXT.as_bytes().to_vec());
                self.state = ChapServerState::Succeeded;
                self.outbox.succeed(AuthEvent::Success {
                    username,
                    hlak: ZERO_HLAK,
                    framed_ipv4: accept.framed_ipv4,
                });
            }
            (AuthDecision::Accept(accept), ChapAlgorithm::MsChapV2) => match accept.mschapv2 {
                Some(proof) => {
                    let message = mschapv2::success_message(
                        &proof.authenticator_response,
                        SUCCESS_TEXT.as_bytes(),
                    );
                    self.reply(CODE_SUCCESS, message);
                    self.keys = Some(proof.keys);
                    self.state = ChapServerState::Succeeded;
                    self.outbox.succeed(AuthEvent::Success {
                        username,
                        hlak: proof.keys.server_hlak(),
                        framed_ipv4: accept.framed_ipv4,
                    });
                }
                None => self.send_failure(
                    AuthReject {
                        reason: RejectReason::ServiceUnavailable,
                        message: MISSING_PROOF_TEXT.into(),
                    },
                    false,
                ),
            },
            (AuthDecision::Reject(reject), _) => self.reject(reject),
            (challenge @ AuthDecision::Challenge(_), _) => {
                self.state = ChapServerState::Deciding { username };
                self.decide(challenge.refusing_challenge());
            }
        }
    }

    fn reject(&mut self, reject: AuthReject) {
        self.failed_attempts += 1;
        let retry = self.algorithm == ChapAlgorithm::MsChapV2
            && reject.reason.mschapv2_error_code() == 691
            && self.failed_attempts < self.limits.max_attempts;
        self.send_failure(reject, retry);
    }

    /// Sends Failure. With `retry` (MS-CHAPv2 only) the phase goes on with
    /// the `C=` challenge; otherwise it ends.
    fn send_failure(&mut self, reject: AuthReject, retry: bool) {
        let text = bounded_text(&reject.message);
        let (message, code) = match self.algorithm {
            ChapAlgorithm::Md5 => (text.to_vec(), None),
            ChapAlgorithm::MsChapV2 => {
                // "C= ... MUST be present", also when no retry is offered.
                let mut challenge = [0u8; CHALLENGE_LEN];
                self.rng.fill_bytes(&mut challenge);
                if retry {
                    self.challenge = challenge;
                }
                let failure = FailureMessage {
                    error_code: reject.reason.mschapv2_error_code(),
                    retry,
                    challenge: Some(challenge),
                    version: None,
                    message: String::from_utf8_lossy(text).into_owned(),
                };
                (failure.to_bytes(), Some(failure.error_code))
            }
        };
        self.reply(CODE_FAILURE, message);
        if retry {
            // [RFC 2759] 6: the retry answers `C=` with the next Identifier.
            self.identifier = self.identifier.wrapping_add(1);
            self.state = ChapServerState::Challenging;
        } else {
            self.state = ChapServerState::Failed;
            self.outbox.fail(AuthFailure::Rejected {
                reason: reject.reason,
                code,
                message: reject.message,
            });
        }
    }

    /// Sends Success or Failure for the current Identifier and remembers it
    /// for repeated Responses.
    fn reply(&mut self, code: u8, message: Vec<u8>) {
        let identifier = self.identifier;
        let packet = if code == CODE_SUCCESS {
            ChapPacket::Success {
                identifier,
                message: &message,
            }
        } else {
            ChapPacket::Failure {
                identifier,
                message: &message,
            }
        }
        .to_vec();
        self.outbox.send(packet.clone());
        self.last_reply = Some((identifier, packet));
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if matches!(
            self.state,
            ChapServerState::Succeeded | ChapServerState::Failed
        ) {
            return;
        }
        if self.outbox.phase_expired(now) {
            self.state = ChapServerState::Failed;
            self.outbox.fail(AuthFailure::Timeout);
        } else if self.outbox.retransmit_due(now) {
            if self.transmissions < self.limits.max_transmissions {
                self.send_challenge(now);
            } else {
                self.state = ChapServerState::Failed;
                self.outbox.fail(AuthFailure::Timeout);
            }
        }
    }
}

/// What the peer needs to check an MS-CHAPv2 Success.
struct MsChapV2Pending {
    authenticator_response: [u8; 20],
    keys: MppeKeys,
}

/// The peer's side of CHAP-MD5 and MS-CHAPv2.
pub(crate) struct ChapClient {
    pub(super) algorithm: ChapAlgorithm,
    limits: Limits,
    /// Peer-Challenges are drawn here (handle_packet() gets no rng).
    rng: SessionRng,
    pub(super) outbox: Outbox,
    username: Vec<u8>,
    password: Vec<u8>,
    failed_attempts: u32,
    state: ChapClientState,
    /// MS-CHAPv2 after a verified success.
    pub(super) keys: Option<MppeKeys>,
}

enum ChapClientState {
    WaitingChallenge,
    /// A Response went out; Success or Failure is awaited.
    Responded {
        identifier: u8,
        challenge: Vec<u8>,
        packet: Vec<u8>,
        transmissions: u32,
        mschapv2: Option<MsChapV2Pending>,
    },
    /// Nothing outstanding (after the verdict).
    Idle,
}

impl fmt::Debug for ChapClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            ChapClientState::WaitingChallenge => "waiting_challenge",
            ChapClientState::Responded { .. } => "responded",
            ChapClientState::Idle => "idle",
        };
        f.debug_struct("ChapClient")
            .field("algorithm", &self.algorithm)
            .field("username", &String::from_utf8_lossy(&self.username))
            .field("failed_attempts", &self.failed_attempts)
            .field("state", &state)
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

impl ChapClient {
    pub(crate) fn new(
        algorithm: ChapAlgorithm,
        config: &AuthConfig,
        username: &[u8],
        password: &[u8],
        now: Instant,
        rng: &mut dyn RngCore,
    ) -> Self {
        ChapClient {
            algorithm,
            limits: Limits::new(config),
            rng: SessionRng::from_rng(rng),
            outbox: Outbox::new(now + config.phase_timeout),
            username: bounded_bytes(username).to_vec(),
            password: password.to_vec(),
            failed_attempts: 0,
            state: ChapClientState::WaitingChallenge,
            keys: None,
        }
    }

    pub(crate) fn handle_packet(
        &mut self,
        now: Instant,
        info: &[u8],
    ) -> Result<(), AuthPacketError> {
        if self.outbox.failed() {
            // The link is going down; nothing more to say.
            return Ok(());
        }
        match ChapPacket::parse(info)? {
            ChapPacket::Challenge {
                identifier, value, ..
            } => self.on_challenge(now, identifier, value),
            ChapPacket::Success {
                identifier,
                message,
            } => self.on_success(identifier, message),
            ChapPacket::Failure {
                identifier,
                message,
            } => self.on_failure(now, identifier, message),
            ChapPacket::Response { .. } => Err(AuthPacketError::UnexpectedCode(CODE_RESPONSE)),
        }
    }

    fn on_challenge(
        &mut self,
        now: Instant,
        identifier: u8,
        value: &[u8],
    ) -> Result<(), AuthPacketError> {
        if self.algorithm == ChapAlgorithm::MsChapV2 && value.len() != CHALLENGE_LEN {
            return Err(AuthPacketError::Malformed);
        }
        if let ChapClientState::Responded {
            identifier: answered,
            challenge,
            packet,
            ..
        } = &self.state
        {
            if *answered == identifier && challenge[..] == *value {
                // The authenticator repeated its Challenge: our Response
                // was lost or is late. Repeat it unchanged.
                self.outbox.send(packet.clone());
                return Ok(());
            }
        }
        self.respond(now, identifier, value);
        Ok(())
    }

    /// Sends a Response to `challenge` under `identifier`.
    fn respond(&mut self, now: Instant, identifier: u8, challenge: &[u8]) {
        let (value, mschapv2) = match self.algorithm {
            ChapAlgorithm::Md5 => (
                md5_response(identifier, &self.password, challenge).to_vec(),
                None,
            ),
            ChapAlgorithm::MsChapV2 => {
                let mut authenticator_challenge = [0u8; CHALLENGE_LEN];
                authenticator_challenge.copy_from_slice(challenge);
                let mut peer_challenge = [0u8; CHALLENGE_LEN];
                self.rng.fill_bytes(&mut peer_challenge);
                let password_hash = mschapv2::nt_password_hash(&self.password);
                let nt_response = mschapv2::generate_nt_response_from_hash(
                    &authenticator_challenge,
                    &peer_challenge,
                    &self.username,
                    &password_hash,
                );
                let pending = MsChapV2Pending {
                    authenticator_response: mschapv2::generate_authenticator_response(
                        &password_hash,
                        &nt_response,
                        &peer_challenge,
                        &authenticator_challenge,
                        &self.username,
                    ),
                    keys: mppe::master_keys(&password_hash, &nt_response, Role::Client),
                };
                let value = ResponseValue {
                    peer_challenge,
                    nt_response,
                    flags: 0,
                };
                (value.to_bytes().to_vec(), Some(pending))
            }
        };
        let packet = ChapPacket::Response {
            identifier,
            value: &value,
            name: &self.username,
        }
        .to_vec();
        self.outbox.send(packet.clone());
        self.outbox.retransmit_at = Some(now + self.limits.restart_interval);
        self.state = ChapClientState::Responded {
            identifier,
            challenge: challenge.to_vec(),
            packet,
            transmissions: 1,
            mschapv2,
        };
    }

    /// Checks that a Success/Failure answers our outstanding Response.
    fn answers_response(&self, identifier: u8, code: u8) -> Result<(), AuthPacketError> {
        match &self.state {
            ChapClientState::Responded {
                identifier: answered,
                ..
            } if *answered == identifier => Ok(()),
            ChapClientState::Responded { .. } => Err(AuthPacketError::StaleIdentifier(identifier)),
            ChapClientState::WaitingChallenge => Err(AuthPacketError::UnexpectedCode(code)),
            ChapClientState::Idle => Err(AuthPacketError::StaleIdentifier(identifier)),
        }
    }

    fn on_success(&mut self, identifier: u8, message: &[u8]) -> Result<(), AuthPacketError> {
        if self.outbox.succeeded() && matches!(self.state, ChapClientState::Idle) {
            // A repeated Success (our Response was retransmitted).
            return Ok(());
        }
        self.answers_response(identifier, CODE_SUCCESS)?;
        let ChapClientState::Responded { mschapv2, .. } =
            std::mem::replace(&mut self.state, ChapClientState::Idle)
        else {
            return Ok(());
        };
        let hlak = match mschapv2 {
            None => ZERO_HLAK,
            Some(pending) => {
                // [RFC 2759] 8.8: the server must prove it knows the password.
                let proven = mschapv2::parse_success_message(message).is_ok_and(|received| {
                    bool::from(received.ct_eq(&pending.authenticator_response))
                });
                if !proven {
                    self.outbox.fail(AuthFailure::ServerNotAuthenticated);
                    return Ok(());
                }
                self.keys = Some(pending.keys);
                pending.keys.client_hlak()
            }
        };
        if self.outbox.succeeded() {
            // A passed re-challenge: nothing new to report.
            self.outbox.retransmit_at = None;
        } else {
            self.outbox.succeed(AuthEvent::Success {
                username: peer_text(&self.username),
                hlak,
                framed_ipv4: None,
            });
        }
        Ok(())
    }

    fn on_failure(
        &mut self,
        now: Instant,
        identifier: u8,
        message: &[u8],
    ) -> Result<(), AuthPacketError> {
        self.answers_response(identifier, CODE_FAILURE)?;
        self.failed_attempts += 1;
        let rejected = match self.algorithm {
            ChapAlgorithm::Md5 => AuthFailure::Rejected {
                reason: RejectReason::AuthenticationFailure,
                code: None,
                message: peer_text(message),
            },
            ChapAlgorithm::MsChapV2 => match FailureMessage::parse(message) {
                Ok(failure) => {
                    if let (true, Some(challenge)) = (failure.retry, failure.challenge) {
                        if self.failed_attempts < self.limits.max_attempts
                            && !self.outbox.succeeded()
                        {
                            // [RFC 2759] 6: answer the new challenge.
                            self.respond(now, identifier.wrapping_add(1), &challenge);
                            return Ok(());
                        }
                    }
                    AuthFailure::Rejected {
                        reason: RejectReason::from_mschapv2_error_code(failure.error_code),
                        code: Some(failure.error_code),
                        message: failure.message,
                    }
                }
                Err(_) => AuthFailure::Rejected {
                    reason: RejectReason::AuthenticationFailure,
                    code: None,
                    message: peer_text(message),
                },
            },
        };
        self.state = ChapClientState::Idle;
        self.outbox.fail(rejected);
        Ok(())
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.outbox.failed() {
            return;
        }
        if self.outbox.phase_expired(now) {
            self.state = ChapClientState::Idle;
            self.outbox.fail(AuthFailure::Timeout);
            return;
        }
        if !self.outbox.retransmit_due(now) {
            return;
        }
        let ChapClientState::Responded {
            packet,
            transmissions,
            ..
        } = &mut self.state
        else {
            self.outbox.retransmit_at = None;
            return;
        };
        if *transmissions < self.limits.max_transmissions {
            *transmissions += 1;
            self.outbox.send(packet.clone());
            self.outbox.retransmit_at = Some(now + self.limits.restart_interval);
        } else {
            self.state = ChapClientState::Idle;
            if self.outbox.succeeded() {
                // An unanswered re-challenge: the link layer notices a dead
                // peer by itself.
                self.outbox.retransmit_at = None;
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
    fn challenge_bytes() {
        let packet = ChapPacket::Challenge {
            identifier: 0x42,
            value: &[1, 2, 3],
            name: b"srv",
        };
        let bytes = packet.to_vec();
        assert_eq!(bytes, [1, 0x42, 0, 11, 3, 1, 2, 3, b's', b'r', b'v']);
        assert_eq!(ChapPacket::parse(&bytes), Ok(packet));
    }

    #[test]
    fn success_failure_bytes() {
        let success = ChapPacket::Success {
            identifier: 1,
            message: b"ok",
        };
        assert_eq!(success.to_vec(), [3, 1, 0, 6, b'o', b'k']);
        assert_eq!(ChapPacket::parse(&success.to_vec()), Ok(success));
        let failure = ChapPacket::Failure {
            identifier: 2,
            message: b"",
        };
        assert_eq!(failure.to_vec(), [4, 2, 0, 4]);
        assert_eq!(ChapPacket::parse(&failure.to_vec()), Ok(failure));
    }

    #[test]
    fn malformed_chap_packets() {
        // Value-Size zero.
        assert_eq!(
            ChapPacket::parse(&[1, 1, 0, 5, 0]),
            Err(AuthPacketError::Malformed)
        );
        // Value-Size beyond the data.
        assert_eq!(
            ChapPacket::parse(&[2, 1, 0, 6, 4, 0]),
            Err(AuthPacketError::Malformed)
        );
        // No Value-Size octet.
        assert_eq!(
            ChapPacket::parse(&[1, 1, 0, 4]),
            Err(AuthPacketError::Malformed)
        );
        assert_eq!(
            ChapPacket::parse(&[7, 1, 0, 4]),
            Err(AuthPacketError::UnexpectedCode(7))
        );
    }

    #[test]
    fn md5_response_is_rfc1994() {
        // MD5(0x01 ‖ "secret" ‖ 00 01 .. 0f), computed independently with
        // Python's hashlib.
        let challenge: Vec<u8> = (0..16).collect();
        assert_eq!(
            md5_response(1, b"secret", &challenge),
            [
                0x74, 0x0e, 0x86, 0x46, 0x3b, 0xda, 0x3a, 0x4d, 0x70, 0x17, 0xd6, 0xe0, 0xfb, 0xa0,
                0x69, 0x9d
            ]
        );
    }
}
