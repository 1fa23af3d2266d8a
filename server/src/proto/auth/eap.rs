//! EAP in PPP ([RFC 3748], PPP protocol 0xC227) with EAP-MSCHAPv2
//! ([draft-kamath-pppext-eap-mschapv2]) as its one method: the packet
//! codec and the authenticator and peer machines behind
//! [`super::AuthServer`] and [`super::AuthClient`].
//!
//! The exchange, server first:
//!
//! ```text
//! Request/Identity            → Response/Identity
//! Request/MSCHAPv2 Challenge  → Response/MSCHAPv2 Response   (judged by the Authenticator)
//! Request/MSCHAPv2 Success    → Response/MSCHAPv2 Success    → EAP-Success
//!   or Request/MSCHAPv2 Failure → Response/MSCHAPv2 Failure  → EAP-Failure
//!                                                             (or, R=1, a new Challenge)
//! ```
//!
//! Behaviour worth knowing:
//!
//! * The authenticator retransmits its outstanding Request unchanged on the
//!   restart timer ([RFC 3748] 4.3); Success and Failure are never
//!   retransmitted (4.2). A Response is matched to the outstanding Request
//!   by Identifier; a Response to an earlier Request is stale
//!   ([`EapError::StaleIdentifier`]). A copy of the Response that ended the
//!   exchange gets the same EAP-Success or EAP-Failure again.
//! * The peer answers a repeated Request (same Identifier) with the same
//!   Response ([RFC 3748] 4.1). Because Success is not retransmitted, the
//!   peer repeats its MSCHAPv2 Success or Failure Response on the restart
//!   timer until Success or Failure arrives, which the rule above answers.
//! * The verdict on the MS-CHAPv2 Response comes from the same
//!   [`super::Authenticator`] as plain MS-CHAPv2 (as [`super::Credentials::MsChapV2`]
//!   with the MS-CHAPv2-ID as identifier), so local users and RADIUS
//!   (MS-CHAP2-Response) verify it alike.
//! * Retries ([RFC 2759] 6): a refusal with `E=691` before the attempt
//!   limit is a Failure Request with `R=1`; after the peer's Failure
//!   Response the authenticator sends a fresh Challenge. Other codes, and
//!   the last attempt, end with EAP-Failure.
//! * A peer asked for any other method answers with a Nak proposing
//!   MSCHAPv2 ([RFC 3748] 5.3.1); a peer that Naks MSCHAPv2 ends the
//!   exchange (no common method). A peer never accepts EAP-Success before
//!   it has verified the authenticator's MS-CHAPv2 proof ([RFC 3748] 7.2:
//!   no success without the method's mutual authentication).
//! * Keys: the MSK is `MasterReceiveKey ‖ MasterSendKey ‖ 32 zero octets`
//!   from the authenticator's view ([MS-CHAP] 3.1.5.1, the same octets at
//!   both ends), and the HLAK of the SSTP crypto binding is its first 32
//!   octets ([MS-SSTP] 3.2.5.2.2, "EAP other than EAP-TLS": the MSK, cut
//!   to 32 octets). For EAP-MSCHAPv2 these are the same 32 octets as the
//!   plain MS-CHAPv2 rule of that section gives; the rule differs for
//!   methods whose MSK is longer (a RADIUS-side method returns its MSK as
//!   MS-MPPE-Recv-Key ‖ MS-MPPE-Send-Key, [RFC 5216] 2.3).
//!
//! [RFC 3748]: https://www.rfc-editor.org/rfc/rfc3748
//! [RFC 2759]: https://www.rfc-editor.org/rfc/rfc2759
//! [RFC 5216]: https://www.rfc-editor.org/rfc/rfc5216
//! [draft-kamath-pppext-eap-mschapv2]: https://datatracker.ietf.org/doc/html/draft-kamath-pppext-eap-mschapv2-02
//! [MS-CHAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-chap/
//! [MS-SSTP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstp/

use std::fmt;
use std::time::Instant;

use crate::proto::rng::SessionRng;
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::chap::AUTHENTICATOR_NAME;
use super::machine::{AuthConfig, AuthEvent, AuthFailure, AuthPacketError};
use super::mschapv2::{self, FailureMessage, ResponseValue, CHALLENGE_LEN, RESPONSE_VALUE_LEN};
use super::outbox::{Limits, Outbox};
use super::packet::{bounded_text, peer_text, write_packet, RawPacket};
use super::{
    mppe, AuthDecision, AuthReject, AuthRequest, AuthRequestId, Credentials, MppeKeys, RejectReason,
};
use crate::proto::Role;

/// PPP protocol number of EAP ([RFC 3748] 3).
pub const PROTO_EAP: u16 = 0xc227;

/// [RFC 3748] 4: Code of Request.
pub const CODE_REQUEST: u8 = 1;
/// [RFC 3748] 4: Code of Response.
pub const CODE_RESPONSE: u8 = 2;
/// [RFC 3748] 4.2: Code of Success.
pub const CODE_SUCCESS: u8 = 3;
/// [RFC 3748] 4.2: Code of Failure.
pub const CODE_FAILURE: u8 = 4;

/// [RFC 3748] 5.1: Type of Identity.
pub const TYPE_IDENTITY: u8 = 1;
/// [RFC 3748] 5.2: Type of Notification.
pub const TYPE_NOTIFICATION: u8 = 2;
/// [RFC 3748] 5.3: Type of Nak (Response only).
pub const TYPE_NAK: u8 = 3;
/// EAP-MSCHAPv2's Type (IANA EAP method type 26).
pub const TYPE_MSCHAPV2: u8 = 26;

/// EAP-MSCHAPv2 OpCode of Challenge.
pub const OP_CHALLENGE: u8 = 1;
/// EAP-MSCHAPv2 OpCode of Response.
pub const OP_RESPONSE: u8 = 2;
/// EAP-MSCHAPv2 OpCode of Success.
pub const OP_SUCCESS: u8 = 3;
/// EAP-MSCHAPv2 OpCode of Failure.
pub const OP_FAILURE: u8 = 4;
/// EAP-MSCHAPv2 OpCode of Change-Password (not supported).
pub const OP_CHANGE_PASSWORD: u8 = 7;

/// Longest identity kept from a Response/Identity, and sent by the peer:
/// what a RADIUS User-Name can carry ([RFC 2865] 5.1). A longer identity
/// is cut, never refused: the MS-CHAPv2 Name is what authenticates.
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
pub const MAX_IDENTITY_LEN: usize = 253;

/// Relayed EAP ([`AuthConfig::eap_relay`]): the most Responses one
/// authentication hands to the authenticator. EAP-MSCHAPv2 takes three,
/// PEAP with FreeRADIUS eight for a two-certificate chain (one more per
/// KiB of certificates: its fragments are 1 KiB), EAP-TLS a dozen or so;
/// a conversation beyond this is ended with EAP-Failure.
pub const MAX_RELAY_ROUND_TRIPS: u32 = 50;

const TOO_MANY_ROUND_TRIPS_TEXT: &str = "too many EAP round trips";
const SUCCESS_TEXT: &str = "Access granted";
const MISSING_PROOF_TEXT: &str = "Authentication service unavailable";
const NO_COMMON_METHOD_TEXT: &str = "the peer refused EAP-MSCHAPv2";

/// A malformed or unexpected EAP packet: dropped and counted under its
/// label (a [`AuthPacketError::Eap`] for the link).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EapError {
    /// Shorter than the header, or a Length below the header or beyond
    /// the octets received.
    Truncated,
    /// A Request or Response without a Type, or a Success or Failure with
    /// data.
    BadLength,
    /// A Code other than 1 to 4.
    UnknownCode(u8),
    /// An EAP-MSCHAPv2 packet whose MS-Length, Value-Size or value does
    /// not fit its OpCode.
    BadMsChapV2,
    /// An EAP-MSCHAPv2 OpCode this role does not take.
    UnexpectedOpCode(u8),
    /// A Type this role does not take here (a Nak sent to a peer, a
    /// Response to an Identity Request of another Type, ...).
    UnexpectedType(u8),
    /// A Code this role does not take (a Request sent to an
    /// authenticator, a Response to a peer).
    UnexpectedCode(u8),
    /// An Identifier matching no outstanding Request.
    StaleIdentifier(u8),
}

impl EapError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            EapError::Truncated => "eap_truncated",
            EapError::BadLength => "eap_bad_length",
            EapError::UnknownCode(_) => "eap_unknown_code",
            EapError::BadMsChapV2 => "eap_bad_mschapv2",
            EapError::UnexpectedOpCode(_) => "eap_unexpected_opcode",
            EapError::UnexpectedType(_) => "eap_unexpected_type",
            EapError::UnexpectedCode(_) => "eap_unexpected_code",
            EapError::StaleIdentifier(_) => "eap_stale_identifier",
        }
    }
}

impl fmt::Display for EapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EapError::UnknownCode(v)
            | EapError::UnexpectedOpCode(v)
            | EapError::UnexpectedType(v)
            | EapError::UnexpectedCode(v)
            | EapError::StaleIdentifier(v) => write!(f, "{} ({v})", self.as_str()),
            _ => f.write_str(self.as_str()),
        }
    }
}

impl From<EapError> for AuthPacketError {
    fn from(error: EapError) -> Self {
        AuthPacketError::Eap(error)
    }
}

/// An EAP packet ([RFC 3748] 4), borrowed from the information field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum EapPacket<'a> {
    /// Code 1: Type and Type-Data.
    Request {
        /// Matches the Response to this Request.
        identifier: u8,
        /// The method or Identity/Notification.
        kind: u8,
        /// Everything after the Type.
        data: &'a [u8],
    },
    /// Code 2: Type and Type-Data.
    Response {
        /// Copied from the Request being answered.
        identifier: u8,
        /// The Type of the Request answered, or Nak.
        kind: u8,
        /// Everything after the Type.
        data: &'a [u8],
    },
    /// Code 3, no data.
    Success {
        /// The Identifier of the Response that ended the method.
        identifier: u8,
    },
    /// Code 4, no data.
    Failure {
        /// The Identifier of the Response that ended the method.
        identifier: u8,
    },
}

impl fmt::Debug for EapPacket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EapPacket::Request {
                identifier,
                kind,
                data,
            }
            | EapPacket::Response {
                identifier,
                kind,
                data,
            } => f
                .debug_struct(if self.code() == CODE_REQUEST {
                    "Request"
                } else {
                    "Response"
                })
                .field("identifier", &identifier)
                .field("kind", &kind)
                .field("data_len", &data.len())
                .finish(),
            EapPacket::Success { identifier } => f
                .debug_struct("Success")
                .field("identifier", &identifier)
                .finish(),
            EapPacket::Failure { identifier } => f
                .debug_struct("Failure")
                .field("identifier", &identifier)
                .finish(),
        }
    }
}

impl<'a> EapPacket<'a> {
    /// Parses an EAP information field. Octets beyond Length are link
    /// padding and ignored ([RFC 3748] 4).
    pub fn parse(info: &'a [u8]) -> Result<Self, EapError> {
        // The header is PAP's and CHAP's.
        let RawPacket {
            code,
            identifier,
            data: body,
        } = RawPacket::parse(info).map_err(|_| EapError::Truncated)?;
        match code {
            CODE_REQUEST | CODE_RESPONSE => {
                let (&kind, data) = body.split_first().ok_or(EapError::BadLength)?;
                Ok(if code == CODE_REQUEST {
                    EapPacket::Request {
                        identifier,
                        kind,
                        data,
                    }
                } else {
                    EapPacket::Response {
                        identifier,
                        kind,
                        data,
                    }
                })
            }
            CODE_SUCCESS | CODE_FAILURE if !body.is_empty() => Err(EapError::BadLength),
            CODE_SUCCESS => Ok(EapPacket::Success { identifier }),
            CODE_FAILURE => Ok(EapPacket::Failure { identifier }),
            code => Err(EapError::UnknownCode(code)),
        }
    }

    /// The packet's Code.
    pub fn code(&self) -> u8 {
        match self {
            EapPacket::Request { .. } => CODE_REQUEST,
            EapPacket::Response { .. } => CODE_RESPONSE,
            EapPacket::Success { .. } => CODE_SUCCESS,
            EapPacket::Failure { .. } => CODE_FAILURE,
        }
    }

    /// The packet's Identifier.
    pub fn identifier(&self) -> u8 {
        match *self {
            EapPacket::Request { identifier, .. }
            | EapPacket::Response { identifier, .. }
            | EapPacket::Success { identifier }
            | EapPacket::Failure { identifier } => identifier,
        }
    }

    /// Appends the packet to `buf`; data is cut so that the packet fits
    /// the 16-bit Length.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match *self {
            EapPacket::Request { kind, data, .. } | EapPacket::Response { kind, data, .. } => {
                let data = &data[..data.len().min(usize::from(u16::MAX) - 5)];
                write_packet(buf, self.code(), self.identifier(), &[&[kind], data]);
            }
            EapPacket::Success { .. } | EapPacket::Failure { .. } => {
                write_packet(buf, self.code(), self.identifier(), &[]);
            }
        }
    }

    /// The packet encoded into a new buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.encode(&mut buf);
        buf
    }
}

/// The Type-Data of an EAP-MSCHAPv2 packet ([draft-kamath-pppext-eap-mschapv2] 2).
///
/// [draft-kamath-pppext-eap-mschapv2]: https://datatracker.ietf.org/doc/html/draft-kamath-pppext-eap-mschapv2-02
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum MsChapV2Data<'a> {
    /// OpCode 1 (Request): MS-CHAPv2-ID, the 16-octet challenge, the
    /// authenticator's name.
    Challenge {
        /// The MS-CHAPv2-ID the Response copies.
        ms_id: u8,
        /// The Authenticator Challenge.
        challenge: [u8; CHALLENGE_LEN],
        /// The authenticator's name.
        name: &'a [u8],
    },
    /// OpCode 2 (Response): the 49-octet Response value and the peer's
    /// user name.
    Response {
        /// Copied from the Challenge.
        ms_id: u8,
        /// Peer-Challenge, NT-Response, Flags ([RFC 2759] 4).
        value: ResponseValue,
        /// The user name that authenticates.
        name: &'a [u8],
    },
    /// OpCode 3 (Request): the `S=... M=...` message.
    SuccessRequest {
        /// The MS-CHAPv2-ID of the Response judged.
        ms_id: u8,
        /// [RFC 2759] 5's Success message.
        message: &'a [u8],
    },
    /// OpCode 3 (Response): the OpCode alone.
    SuccessResponse,
    /// OpCode 4 (Request): the `E=... R=... C=...` message.
    FailureRequest {
        /// The MS-CHAPv2-ID of the Response judged.
        ms_id: u8,
        /// [RFC 2759] 6's Failure message.
        message: &'a [u8],
    },
    /// OpCode 4 (Response): the OpCode alone.
    FailureResponse,
}

impl fmt::Debug for MsChapV2Data<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Challenges and responses are secret-derived: left out.
        match self {
            MsChapV2Data::Challenge { ms_id, .. } => write!(f, "Challenge({ms_id})"),
            MsChapV2Data::Response { ms_id, name, .. } => {
                write!(f, "Response({ms_id}, {:?})", String::from_utf8_lossy(name))
            }
            MsChapV2Data::SuccessRequest { ms_id, .. } => write!(f, "SuccessRequest({ms_id})"),
            MsChapV2Data::SuccessResponse => f.write_str("SuccessResponse"),
            MsChapV2Data::FailureRequest { ms_id, .. } => write!(f, "FailureRequest({ms_id})"),
            MsChapV2Data::FailureResponse => f.write_str("FailureResponse"),
        }
    }
}

impl<'a> MsChapV2Data<'a> {
    /// Parses the Type-Data of a Request (`request`) or Response. The
    /// MS-Length must equal the Type-Data's length (it counts from the
    /// OpCode); Challenge and Response values must have their fixed sizes.
    pub fn parse(data: &'a [u8], request: bool) -> Result<Self, EapError> {
        let (&opcode, rest) = data.split_first().ok_or(EapError::BadMsChapV2)?;
        match (request, opcode) {
            (false, OP_SUCCESS) => return Ok(MsChapV2Data::SuccessResponse),
            (false, OP_FAILURE) => return Ok(MsChapV2Data::FailureResponse),
            (true, OP_CHALLENGE | OP_SUCCESS | OP_FAILURE) | (false, OP_RESPONSE) => {}
            (_, opcode) => return Err(EapError::UnexpectedOpCode(opcode)),
        }
        let [ms_id, len_hi, len_lo, ref body @ ..] = *rest else {
            return Err(EapError::BadMsChapV2);
        };
        if usize::from(u16::from_be_bytes([len_hi, len_lo])) != data.len() {
            return Err(EapError::BadMsChapV2);
        }
        match opcode {
            OP_CHALLENGE | OP_RESPONSE => {
                let (&size, rest) = body.split_first().ok_or(EapError::BadMsChapV2)?;
                let (value, name) = rest
                    .split_at_checked(usize::from(size))
                    .ok_or(EapError::BadMsChapV2)?;
                if opcode == OP_CHALLENGE {
                    let challenge = value.try_into().map_err(|_| EapError::BadMsChapV2)?;
                    Ok(MsChapV2Data::Challenge {
                        ms_id,
                        challenge,
                        name,
                    })
                } else {
                    let value = ResponseValue::parse(value).map_err(|_| EapError::BadMsChapV2)?;
                    Ok(MsChapV2Data::Response { ms_id, value, name })
                }
            }
            OP_SUCCESS => Ok(MsChapV2Data::SuccessRequest {
                ms_id,
                message: body,
            }),
            _ => Ok(MsChapV2Data::FailureRequest {
                ms_id,
                message: body,
            }),
        }
    }

    /// The Type-Data octets (cut at the 16-bit MS-Length; the machines
    /// send names of at most [`MAX_IDENTITY_LEN`] octets).
    pub fn to_vec(&self) -> Vec<u8> {
        fn with_header(opcode: u8, ms_id: u8, parts: &[&[u8]]) -> Vec<u8> {
            let body: usize = parts.iter().map(|p| p.len()).sum();
            let length = u16::try_from(4 + body).unwrap_or(u16::MAX);
            let mut out = Vec::with_capacity(usize::from(length));
            out.push(opcode);
            out.push(ms_id);
            out.extend_from_slice(&length.to_be_bytes());
            for part in parts {
                out.extend_from_slice(part);
            }
            out.truncate(usize::from(length));
            out
        }
        match *self {
            MsChapV2Data::Challenge {
                ms_id,
                challenge,
                name,
            } => with_header(
                OP_CHALLENGE,
                ms_id,
                &[&[CHALLENGE_LEN as u8], &challenge, name],
            ),
            MsChapV2Data::Response { ms_id, value, name } => with_header(
                OP_RESPONSE,
                ms_id,
                &[&[RESPONSE_VALUE_LEN as u8], &value.to_bytes(), name],
            ),
            MsChapV2Data::SuccessRequest { ms_id, message } => {
                with_header(OP_SUCCESS, ms_id, &[message])
            }
            MsChapV2Data::FailureRequest { ms_id, message } => {
                with_header(OP_FAILURE, ms_id, &[message])
            }
            MsChapV2Data::SuccessResponse => vec![OP_SUCCESS],
            MsChapV2Data::FailureResponse => vec![OP_FAILURE],
        }
    }
}

/// The EAP-MSCHAPv2 Master Session Key ([MS-CHAP] 3.1.5.1):
/// `MasterReceiveKey ‖ MasterSendKey ‖ 32 zero octets`, the keys as the
/// authenticator names them, so both ends hold the same MSK. `keys` is
/// this end's view.
///
/// [MS-CHAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-chap/
pub fn mschapv2_msk(keys: &MppeKeys, role: Role) -> [u8; 64] {
    let (authenticator_receive, authenticator_send) = match role {
        Role::Server => (keys.receive, keys.send),
        Role::Client => (keys.send, keys.receive),
    };
    let mut msk = [0u8; 64];
    msk[..16].copy_from_slice(&authenticator_receive);
    msk[16..32].copy_from_slice(&authenticator_send);
    msk
}

/// The HLAK of an EAP method other than EAP-TLS ([MS-SSTP] 3.2.5.2.2): the
/// first 32 octets of the MSK, padded with zeros if it is shorter.
///
/// [MS-SSTP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstp/
pub fn hlak_from_msk(msk: &[u8]) -> [u8; 32] {
    let mut hlak = [0u8; 32];
    let take = msk.len().min(32);
    hlak[..take].copy_from_slice(&msk[..take]);
    hlak
}

fn request(identifier: u8, kind: u8, data: &[u8]) -> Vec<u8> {
    EapPacket::Request {
        identifier,
        kind,
        data,
    }
    .to_vec()
}

fn response(identifier: u8, kind: u8, data: &[u8]) -> Vec<u8> {
    EapPacket::Response {
        identifier,
        kind,
        data,
    }
    .to_vec()
}

/// The authenticator's side of EAP with EAP-MSCHAPv2.
pub(crate) struct EapServer {
    limits: Limits,
    /// Challenges are drawn here (decide() gets no rng).
    rng: SessionRng,
    pub(super) outbox: Outbox,
    /// Identifier of the outstanding Request (or of the Response being
    /// judged).
    identifier: u8,
    /// The outstanding Request, repeated on the restart timer.
    pending: Option<Vec<u8>>,
    transmissions: u32,
    /// The identity from Response/Identity (cut to [`MAX_IDENTITY_LEN`]).
    identity: Option<String>,
    challenge: [u8; CHALLENGE_LEN],
    failed_attempts: u32,
    state: ServerState,
    /// EAP-Success or EAP-Failure as sent, with the Identifier it
    /// answered, for repeated Responses.
    last_reply: Option<(u8, Vec<u8>)>,
    /// After success: the authenticator's MPPE master keys.
    pub(super) keys: Option<MppeKeys>,
    /// Relay every Response after Identity ([`AuthConfig::eap_relay`]).
    relay: bool,
    /// The State of the last relayed Challenge, echoed with the next
    /// Response.
    relay_state: Option<Vec<u8>>,
    /// Responses relayed so far (at most [`MAX_RELAY_ROUND_TRIPS`]).
    round_trips: u32,
}

#[derive(Debug)]
enum ServerState {
    Identity,
    Challenge,
    Deciding {
        username: String,
    },
    /// Relaying: a Response is with the authenticator.
    Relaying {
        username: String,
    },
    /// Relaying: the authenticator's Request was sent; its Response is
    /// awaited.
    Relayed,
    /// Success Request sent; the peer's Success Response ends the method.
    ConfirmingSuccess {
        username: String,
        keys: MppeKeys,
        framed_ipv4: Option<std::net::Ipv4Addr>,
    },
    /// Failure Request sent; the peer's Failure Response is awaited.
    ConfirmingFailure {
        retry: bool,
        reject: AuthReject,
        code: u32,
    },
    Done,
}

impl fmt::Debug for EapServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            ServerState::Identity => "identity",
            ServerState::Challenge => "challenge",
            ServerState::Deciding { .. } => "deciding",
            ServerState::Relaying { .. } => "relaying",
            ServerState::Relayed => "relayed",
            ServerState::ConfirmingSuccess { .. } => "confirming_success",
            ServerState::ConfirmingFailure { .. } => "confirming_failure",
            ServerState::Done => "done",
        };
        f.debug_struct("EapServer")
            .field("identifier", &self.identifier)
            .field("identity", &self.identity)
            .field("failed_attempts", &self.failed_attempts)
            .field("state", &state)
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

impl EapServer {
    pub(crate) fn new(config: &AuthConfig, now: Instant, rng: &mut dyn RngCore) -> Self {
        let mut rng = SessionRng::from_rng(rng);
        let identifier = rng.next_u32() as u8;
        let mut server = EapServer {
            limits: Limits::new(config),
            rng,
            outbox: Outbox::new(now + config.phase_timeout),
            identifier,
            pending: None,
            transmissions: 0,
            identity: None,
            challenge: [0; CHALLENGE_LEN],
            failed_attempts: 0,
            state: ServerState::Identity,
            last_reply: None,
            keys: None,
            relay: config.eap_relay,
            relay_state: None,
            round_trips: 0,
        };
        let packet = request(identifier, TYPE_IDENTITY, b"");
        server.send_request(now, packet);
        server
    }

    pub(crate) fn set_failed_attempts(&mut self, failed: u32) {
        self.failed_attempts = failed;
    }

    /// Sends a new Request (its Identifier set by the caller) and arms
    /// the restart timer.
    fn send_request(&mut self, now: Instant, packet: Vec<u8>) {
        self.outbox.send(packet.clone());
        self.pending = Some(packet);
        self.transmissions = 1;
        self.outbox.retransmit_at = Some(now + self.limits.restart_interval);
    }

    /// The next Request's Identifier ([RFC 3748] 4: a new one per Request).
    fn next_identifier(&mut self) -> u8 {
        self.identifier = self.identifier.wrapping_add(1);
        self.identifier
    }

    fn send_challenge(&mut self, now: Instant) {
        self.rng.fill_bytes(&mut self.challenge);
        let identifier = self.next_identifier();
        let data = MsChapV2Data::Challenge {
            ms_id: identifier,
            challenge: self.challenge,
            name: AUTHENTICATOR_NAME,
        }
        .to_vec();
        self.send_request(now, request(identifier, TYPE_MSCHAPV2, &data));
        self.state = ServerState::Challenge;
    }

    pub(crate) fn handle_packet(&mut self, now: Instant, info: &[u8]) -> Result<(), EapError> {
        let packet = EapPacket::parse(info)?;
        let EapPacket::Response {
            identifier,
            kind,
            data,
        } = packet
        else {
            return Err(EapError::UnexpectedCode(packet.code()));
        };
        if let Some((answered, reply)) = &self.last_reply {
            if *answered == identifier {
                self.outbox.send(reply.clone());
                return Ok(());
            }
        }
        if identifier != self.identifier || matches!(self.state, ServerState::Done) {
            return Err(EapError::StaleIdentifier(identifier));
        }
        if matches!(
            self.state,
            ServerState::Deciding { .. } | ServerState::Relaying { .. }
        ) {
            // A copy of the Response being judged: the verdict answers it.
            return Ok(());
        }
        if self.relay {
            return self.on_relayed_response(identifier, kind, data, packet);
        }
        if kind == TYPE_NAK {
            // [RFC 3748] 5.3.1: the peer wants other methods. MSCHAPv2 is
            // the only one here.
            if data.contains(&TYPE_MSCHAPV2) && matches!(self.state, ServerState::Challenge) {
                return Ok(());
            }
            self.finish_failure(
                identifier,
                AuthFailure::Rejected {
                    reason: RejectReason::AuthenticationFailure,
                    code: None,
                    message: NO_COMMON_METHOD_TEXT.into(),
                },
            );
            return Ok(());
        }
        match (&self.state, kind) {
            (ServerState::Identity, TYPE_IDENTITY) => {
                let identity = &data[..data.len().min(MAX_IDENTITY_LEN)];
                self.identity = Some(peer_text(identity));
                self.send_challenge(now);
                Ok(())
            }
            (ServerState::Identity, other) => Err(EapError::UnexpectedType(other)),
            (_, TYPE_MSCHAPV2) => self.on_mschapv2(now, identifier, data),
            (_, other) => Err(EapError::UnexpectedType(other)),
        }
    }

    /// Relaying: the Identity Response, then every Response, goes to the
    /// authenticator whole.
    fn on_relayed_response(
        &mut self,
        identifier: u8,
        kind: u8,
        data: &[u8],
        packet: EapPacket<'_>,
    ) -> Result<(), EapError> {
        match (&self.state, kind) {
            (ServerState::Identity, TYPE_IDENTITY) => {
                let identity = &data[..data.len().min(MAX_IDENTITY_LEN)];
                self.identity = Some(peer_text(identity));
            }
            (ServerState::Identity, other) => return Err(EapError::UnexpectedType(other)),
            (ServerState::Relayed, _) => {}
            (_, other) => return Err(EapError::UnexpectedType(other)),
        }
        let username = self.identity.clone().unwrap_or_default();
        if self.round_trips >= MAX_RELAY_ROUND_TRIPS {
            self.finish_failure(
                identifier,
                AuthFailure::Rejected {
                    reason: RejectReason::AuthenticationFailure,
                    code: None,
                    message: TOO_MANY_ROUND_TRIPS_TEXT.into(),
                },
            );
            return Ok(());
        }
        self.round_trips += 1;
        self.outbox.retransmit_at = None;
        self.pending = None;
        self.state = ServerState::Relaying {
            username: username.clone(),
        };
        self.outbox.emit(AuthEvent::Request(AuthRequest {
            id: AuthRequestId::UNASSIGNED,
            username,
            credentials: Credentials::Eap {
                packet: packet.to_vec(),
                state: self.relay_state.clone(),
            },
        }));
        Ok(())
    }

    /// Relaying: the authenticator's answer to the relayed Response.
    fn decide_relayed(&mut self, now: Instant, username: String, decision: AuthDecision) {
        let unavailable = AuthFailure::Rejected {
            reason: RejectReason::ServiceUnavailable,
            code: None,
            message: MISSING_PROOF_TEXT.into(),
        };
        let identifier = self.identifier;
        match decision {
            AuthDecision::Challenge(challenge) => {
                match EapPacket::parse(&challenge.eap_request) {
                    Ok(request @ EapPacket::Request { identifier, .. }) => {
                        self.identifier = identifier;
                        self.relay_state = challenge.state;
                        self.send_request(now, request.to_vec());
                        self.state = ServerState::Relayed;
                    }
                    // Not a Request the peer could answer.
                    _ => self.finish_failure(identifier, unavailable),
                }
            }
            AuthDecision::Accept(accept) => match accept.eap_msk {
                Some(msk) => {
                    self.reply(identifier, EapPacket::Success { identifier }.to_vec());
                    self.state = ServerState::Done;
                    self.outbox.succeed(AuthEvent::Success {
                        username,
                        hlak: hlak_from_msk(&msk.0),
                        framed_ipv4: accept.framed_ipv4,
                    });
                }
                // No keys: no crypto binding the client could pass.
                None => self.finish_failure(identifier, unavailable),
            },
            AuthDecision::Reject(reject) => {
                self.failed_attempts += 1;
                self.finish_failure(
                    identifier,
                    AuthFailure::Rejected {
                        reason: reject.reason,
                        code: None,
                        message: reject.message,
                    },
                );
            }
        }
    }

    fn on_mschapv2(&mut self, now: Instant, identifier: u8, data: &[u8]) -> Result<(), EapError> {
        let data = MsChapV2Data::parse(data, false)?;
        match (&self.state, data) {
            (ServerState::Challenge, MsChapV2Data::Response { ms_id, value, name }) => {
                if ms_id != identifier {
                    return Err(EapError::BadMsChapV2);
                }
                let username = peer_text(name);
                self.outbox.retransmit_at = None;
                self.pending = None;
                self.state = ServerState::Deciding {
                    username: username.clone(),
                };
                self.outbox.emit(AuthEvent::Request(AuthRequest {
                    id: AuthRequestId::UNASSIGNED,
                    username,
                    credentials: Credentials::MsChapV2 {
                        identifier: ms_id,
                        authenticator_challenge: self.challenge,
                        peer_challenge: value.peer_challenge,
                        nt_response: value.nt_response,
                    },
                }));
                Ok(())
            }
            (ServerState::ConfirmingSuccess { .. }, MsChapV2Data::SuccessResponse) => {
                let ServerState::ConfirmingSuccess {
                    username,
                    keys,
                    framed_ipv4,
                } = std::mem::replace(&mut self.state, ServerState::Done)
                else {
                    return Ok(());
                };
                self.reply(identifier, EapPacket::Success { identifier }.to_vec());
                self.keys = Some(keys);
                self.outbox.succeed(AuthEvent::Success {
                    username,
                    hlak: hlak_from_msk(&mschapv2_msk(&keys, Role::Server)),
                    framed_ipv4,
                });
                Ok(())
            }
            (ServerState::ConfirmingFailure { .. }, MsChapV2Data::FailureResponse) => {
                let ServerState::ConfirmingFailure {
                    retry,
                    reject,
                    code,
                } = std::mem::replace(&mut self.state, ServerState::Done)
                else {
                    return Ok(());
                };
                if retry {
                    self.send_challenge(now);
                } else {
                    self.finish_failure(
                        identifier,
                        AuthFailure::Rejected {
                            reason: reject.reason,
                            code: Some(code),
                            message: reject.message,
                        },
                    );
                }
                Ok(())
            }
            (_, MsChapV2Data::Response { .. }) => Err(EapError::UnexpectedOpCode(OP_RESPONSE)),
            (_, MsChapV2Data::SuccessResponse) => Err(EapError::UnexpectedOpCode(OP_SUCCESS)),
            (_, MsChapV2Data::FailureResponse) => Err(EapError::UnexpectedOpCode(OP_FAILURE)),
            (_, _) => Err(EapError::BadMsChapV2),
        }
    }

    /// Ends the method with EAP-Failure answering `identifier`.
    fn finish_failure(&mut self, identifier: u8, failure: AuthFailure) {
        self.reply(identifier, EapPacket::Failure { identifier }.to_vec());
        self.state = ServerState::Done;
        self.pending = None;
        self.outbox.fail(failure);
    }

    fn reply(&mut self, identifier: u8, packet: Vec<u8>) {
        self.outbox.send(packet.clone());
        self.last_reply = Some((identifier, packet));
    }

    pub(crate) fn decide(&mut self, now: Instant, decision: AuthDecision) {
        let username = match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::Deciding { username } => username,
            ServerState::Relaying { username } => {
                return self.decide_relayed(now, username, decision);
            }
            other => {
                self.state = other;
                return;
            }
        };

        let ms_id = self.identifier;
        match decision {
            AuthDecision::Accept(accept) => match accept.mschapv2 {
                Some(proof) => {
                    let message = mschapv2::success_message(
                        &proof.authenticator_response,
                        SUCCESS_TEXT.as_bytes(),
                    );
                    let identifier = self.next_identifier();
                    let data = MsChapV2Data::SuccessRequest {
                        ms_id,
                        message: &message,
                    }
                    .to_vec();
                    self.send_request(now, request(identifier, TYPE_MSCHAPV2, &data));
                    self.state = ServerState::ConfirmingSuccess {
                        username,
                        keys: proof.keys,
                        framed_ipv4: accept.framed_ipv4,
                    };
                }
                None => self.send_failure(
                    now,
                    ms_id,
                    AuthReject {
                        reason: RejectReason::ServiceUnavailable,
                        message: MISSING_PROOF_TEXT.into(),
                    },
                    false,
                ),
            },
            refused => {
                let AuthDecision::Reject(reject) = refused.refusing_challenge() else {
                    return;
                };
                self.failed_attempts += 1;
                let retry = reject.reason.mschapv2_error_code() == 691
                    && self.failed_attempts < self.limits.max_attempts;
                self.send_failure(now, ms_id, reject, retry);
            }
        }
    }

    fn send_failure(&mut self, now: Instant, ms_id: u8, reject: AuthReject, retry: bool) {
        let mut challenge = [0u8; CHALLENGE_LEN];
        self.rng.fill_bytes(&mut challenge);
        let failure = FailureMessage {
            error_code: reject.reason.mschapv2_error_code(),
            retry,
            challenge: Some(challenge),
            version: None,
            message: String::from_utf8_lossy(bounded_text(&reject.message)).into_owned(),
        };
        let message = failure.to_bytes();
        let identifier = self.next_identifier();
        let data = MsChapV2Data::FailureRequest {
            ms_id,
            message: &message,
        }
        .to_vec();
        self.send_request(now, request(identifier, TYPE_MSCHAPV2, &data));
        self.state = ServerState::ConfirmingFailure {
            retry,
            reject,
            code: failure.error_code,
        };
    }

    /// Judged, and waiting for the peer's Success or Failure Response
    /// before the verdict.
    pub(crate) fn confirming(&self) -> bool {
        matches!(
            self.state,
            ServerState::ConfirmingSuccess { .. } | ServerState::ConfirmingFailure { .. }
        )
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, ServerState::Done) || self.outbox.failed() {
            return;
        }
        if self.outbox.phase_expired(now) {
            self.state = ServerState::Done;
            self.outbox.fail(AuthFailure::Timeout);
        } else if self.outbox.retransmit_due(now) {
            match &self.pending {
                Some(packet) if self.transmissions < self.limits.max_transmissions => {
                    self.outbox.send(packet.clone());
                    self.transmissions += 1;
                    self.outbox.retransmit_at = Some(now + self.limits.restart_interval);
                }
                Some(_) => {
                    self.state = ServerState::Done;
                    self.outbox.fail(AuthFailure::Timeout);
                }
                None => self.outbox.retransmit_at = None,
            }
        }
    }
}

/// What the peer needs to check the Success Request.
struct PeerPending {
    authenticator_response: [u8; 20],
    keys: MppeKeys,
}

/// The peer's side of EAP with EAP-MSCHAPv2.
pub(crate) struct EapClient {
    limits: Limits,
    /// Peer-Challenges are drawn here.
    rng: SessionRng,
    pub(super) outbox: Outbox,
    username: Vec<u8>,
    password: Vec<u8>,
    /// The last Request answered and our Response, for repeats.
    last: Option<(u8, Vec<u8>)>,
    /// After our MS-CHAPv2 Response: what the Success Request must prove.
    proof: Option<PeerPending>,
    /// The authenticator proved itself; EAP-Success is awaited.
    verified: Option<MppeKeys>,
    /// Our Success or Failure Response is repeated on the restart timer
    /// (the authenticator does not retransmit what answers it).
    transmissions: u32,
    failed_attempts: u32,
    /// After success: the peer's MPPE master keys.
    pub(super) keys: Option<MppeKeys>,
}

impl fmt::Debug for EapClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EapClient")
            .field("username", &String::from_utf8_lossy(&self.username))
            .field("failed_attempts", &self.failed_attempts)
            .field("verified", &self.verified.is_some())
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

impl EapClient {
    pub(crate) fn new(
        config: &AuthConfig,
        username: &[u8],
        password: &[u8],
        now: Instant,
        rng: &mut dyn RngCore,
    ) -> Self {
        EapClient {
            limits: Limits::new(config),
            rng: SessionRng::from_rng(rng),
            outbox: Outbox::new(now + config.phase_timeout),
            username: username[..username.len().min(MAX_IDENTITY_LEN)].to_vec(),
            password: password.to_vec(),
            last: None,
            proof: None,
            verified: None,
            transmissions: 0,
            failed_attempts: 0,
            keys: None,
        }
    }

    pub(crate) fn handle_packet(&mut self, now: Instant, info: &[u8]) -> Result<(), EapError> {
        if self.outbox.failed() {
            return Ok(());
        }
        match EapPacket::parse(info)? {
            EapPacket::Request {
                identifier,
                kind,
                data,
            } => self.on_request(now, identifier, kind, data),
            EapPacket::Success { .. } => {
                if self.outbox.succeeded() {
                    return Ok(());
                }
                match self.verified.take() {
                    Some(keys) => {
                        self.keys = Some(keys);
                        self.outbox.succeed(AuthEvent::Success {
                            username: peer_text(&self.username),
                            hlak: hlak_from_msk(&mschapv2_msk(&keys, Role::Client)),
                            framed_ipv4: None,
                        });
                    }
                    // Success before the method proved the authenticator
                    // ([RFC 3748] 7.2): not accepted.
                    None => self.outbox.fail(AuthFailure::ServerNotAuthenticated),
                }
                Ok(())
            }
            EapPacket::Failure { .. } => {
                self.outbox.fail(AuthFailure::Rejected {
                    reason: RejectReason::AuthenticationFailure,
                    code: None,
                    message: String::new(),
                });
                Ok(())
            }
            EapPacket::Response { .. } => Err(EapError::UnexpectedCode(CODE_RESPONSE)),
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        identifier: u8,
        kind: u8,
        data: &[u8],
    ) -> Result<(), EapError> {
        if let Some((answered, packet)) = &self.last {
            if *answered == identifier {
                // A repeated Request: the same Response ([RFC 3748] 4.1).
                self.outbox.send(packet.clone());
                return Ok(());
            }
        }
        let packet = match kind {
            TYPE_IDENTITY => response(identifier, TYPE_IDENTITY, &self.username),
            TYPE_NOTIFICATION => response(identifier, TYPE_NOTIFICATION, b""),
            TYPE_NAK => return Err(EapError::UnexpectedType(TYPE_NAK)),
            TYPE_MSCHAPV2 => match self.on_mschapv2(now, MsChapV2Data::parse(data, true)?)? {
                Some(data) => response(identifier, TYPE_MSCHAPV2, &data),
                None => return Ok(()),
            },
            // Any other method: propose ours ([RFC 3748] 5.3.1).
            _ => response(identifier, TYPE_NAK, &[TYPE_MSCHAPV2]),
        };
        self.outbox.send(packet.clone());
        self.last = Some((identifier, packet));
        Ok(())
    }

    /// The Type-Data answering an EAP-MSCHAPv2 Request; `None` when the
    /// method fails without an answer.
    fn on_mschapv2(
        &mut self,
        now: Instant,
        data: MsChapV2Data<'_>,
    ) -> Result<Option<Vec<u8>>, EapError> {
        match data {
            MsChapV2Data::Challenge {
                ms_id, challenge, ..
            } => {
                let mut peer_challenge = [0u8; CHALLENGE_LEN];
                self.rng.fill_bytes(&mut peer_challenge);
                let password_hash = mschapv2::nt_password_hash(&self.password);
                let nt_response = mschapv2::generate_nt_response_from_hash(
                    &challenge,
                    &peer_challenge,
                    &self.username,
                    &password_hash,
                );
                self.proof = Some(PeerPending {
                    authenticator_response: mschapv2::generate_authenticator_response(
                        &password_hash,
                        &nt_response,
                        &peer_challenge,
                        &challenge,
                        &self.username,
                    ),
                    keys: mppe::master_keys(&password_hash, &nt_response, Role::Client),
                });
                self.outbox.retransmit_at = None;
                let value = ResponseValue {
                    peer_challenge,
                    nt_response,
                    flags: 0,
                };
                Ok(Some(
                    MsChapV2Data::Response {
                        ms_id,
                        value,
                        name: &self.username,
                    }
                    .to_vec(),
                ))
            }
            MsChapV2Data::SuccessRequest { message, .. } => {
                let Some(pending) = self.proof.take() else {
                    return Err(EapError::UnexpectedOpCode(OP_SUCCESS));
                };
                // [RFC 2759] 8.8: the authenticator must know the password.
                let proven = mschapv2::parse_success_message(message).is_ok_and(|received| {
                    bool::from(received.ct_eq(&pending.authenticator_response))
                });
                if !proven {
                    self.outbox.fail(AuthFailure::ServerNotAuthenticated);
                    return Ok(None);
                }
                self.verified = Some(pending.keys);
                self.arm_repeat(now);
                Ok(Some(MsChapV2Data::SuccessResponse.to_vec()))
            }
            MsChapV2Data::FailureRequest { message, .. } => {
                self.proof = None;
                self.failed_attempts += 1;
                let failure = FailureMessage::parse(message);
                let rejection = match &failure {
                    Ok(failure) => AuthFailure::Rejected {
                        reason: RejectReason::from_mschapv2_error_code(failure.error_code),
                        code: Some(failure.error_code),
                        message: failure.message.clone(),
                    },
                    Err(_) => AuthFailure::Rejected {
                        reason: RejectReason::AuthenticationFailure,
                        code: None,
                        message: peer_text(message),
                    },
                };
                let retry = failure.is_ok_and(|f| f.retry)
                    && self.failed_attempts < self.limits.max_attempts;
                if retry {
                    self.arm_repeat(now);
                } else {
                    // Final: the Failure Response goes out ahead of the
                    // verdict, and the EAP-Failure that follows changes
                    // nothing.
                    self.outbox.fail(rejection);
                }
                Ok(Some(MsChapV2Data::FailureResponse.to_vec()))
            }
            MsChapV2Data::Response { .. }
            | MsChapV2Data::SuccessResponse
            | MsChapV2Data::FailureResponse => Err(EapError::BadMsChapV2),
        }
    }

    /// The authenticator proved it knows the password (its MS-CHAPv2
    /// Success Request verified): PEAP's Result TLV may report success.
    pub(super) fn server_proven(&self) -> bool {
        self.verified.is_some()
    }

    fn arm_repeat(&mut self, now: Instant) {
        self.transmissions = 1;
        self.outbox.retransmit_at = Some(now + self.limits.restart_interval);
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.outbox.failed() || self.outbox.succeeded() {
            return;
        }
        if self.outbox.phase_expired(now) {
            self.outbox.fail(AuthFailure::Timeout);
            return;
        }
        if !self.outbox.retransmit_due(now) {
            return;
        }
        match &self.last {
            Some((_, packet)) if self.transmissions < self.limits.max_transmissions => {
                self.transmissions += 1;
                self.outbox.send(packet.clone());
                self.outbox.retransmit_at = Some(now + self.limits.restart_interval);
            }
            Some(_) => self.outbox.fail(AuthFailure::Timeout),
            None => self.outbox.retransmit_at = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_request_bytes() {
        let packet = EapPacket::Request {
            identifier: 7,
            kind: TYPE_IDENTITY,
            data: b"",
        };
        assert_eq!(packet.to_vec(), [1, 7, 0, 5, 1]);
        assert_eq!(EapPacket::parse(&[1, 7, 0, 5, 1, 0xee]), Ok(packet));
        assert_eq!(
            EapPacket::parse(&[3, 9, 0, 4]),
            Ok(EapPacket::Success { identifier: 9 })
        );
    }

    #[test]
    fn hostile_headers_are_errors() {
        assert_eq!(EapPacket::parse(&[]), Err(EapError::Truncated));
        assert_eq!(EapPacket::parse(&[1, 1, 0, 9, 1]), Err(EapError::Truncated));
        assert_eq!(EapPacket::parse(&[1, 1, 0, 3, 1]), Err(EapError::Truncated));
        assert_eq!(EapPacket::parse(&[1, 1, 0, 4]), Err(EapError::BadLength));
        assert_eq!(EapPacket::parse(&[3, 1, 0, 5, 0]), Err(EapError::BadLength));
        assert_eq!(
            EapPacket::parse(&[9, 1, 0, 4]),
            Err(EapError::UnknownCode(9))
        );
    }

    #[test]
    fn mschapv2_challenge_round_trip_and_ms_length() {
        let data = MsChapV2Data::Challenge {
            ms_id: 3,
            challenge: [0xab; 16],
            name: b"sstpd",
        };
        let bytes = data.to_vec();
        // OpCode, MS-CHAPv2-ID, MS-Length = 4 + 1 + 16 + 5.
        assert_eq!(bytes[..5], [OP_CHALLENGE, 3, 0, 26, 16]);
        assert_eq!(MsChapV2Data::parse(&bytes, true), Ok(data));
        // A lying MS-Length.
        let mut lying = bytes.clone();
        lying[3] = 27;
        assert_eq!(
            MsChapV2Data::parse(&lying, true),
            Err(EapError::BadMsChapV2)
        );
        // A Value-Size that is not 16.
        let mut short = bytes;
        short[4] = 15;
        assert_eq!(
            MsChapV2Data::parse(&short, true),
            Err(EapError::BadMsChapV2)
        );
        // A Challenge is not a Response's OpCode.
        assert_eq!(
            MsChapV2Data::parse(&[OP_CHALLENGE], false),
            Err(EapError::UnexpectedOpCode(OP_CHALLENGE))
        );
        assert_eq!(
            MsChapV2Data::parse(&[OP_SUCCESS], false),
            Ok(MsChapV2Data::SuccessResponse)
        );
        assert_eq!(
            MsChapV2Data::parse(&[OP_CHANGE_PASSWORD, 1, 0, 4], false),
            Err(EapError::UnexpectedOpCode(OP_CHANGE_PASSWORD))
        );
    }

    #[test]
    fn msk_is_the_same_at_both_ends_and_gives_the_hlak() {
        let password_hash = mschapv2::nt_password_hash(b"clientPass");
        let nt_response = [0x5a; 24];
        let server = mppe::master_keys(&password_hash, &nt_response, Role::Server);
        let client = mppe::master_keys(&password_hash, &nt_response, Role::Client);
        let msk = mschapv2_msk(&server, Role::Server);
        assert_eq!(msk, mschapv2_msk(&client, Role::Client));
        assert_eq!(msk[32..], [0; 32]);
        // [MS-SSTP] 3.2.5.2.2: for EAP-MSCHAPv2 the EAP rule gives the
        // octets the MS-CHAPv2 rule gives.
        assert_eq!(hlak_from_msk(&msk), server.server_hlak());
        assert_eq!(hlak_from_msk(&msk), client.client_hlak());
        // A short MSK is padded.
        assert_eq!(hlak_from_msk(&[1, 2])[..3], [1, 2, 0]);
    }
}
