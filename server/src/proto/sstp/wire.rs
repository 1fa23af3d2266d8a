//! The SSTP wire format ([MS-SSTP] 2.2): packet header, control messages,
//! attributes and status values.
//!
//! Parsing borrows from the input slice and never copies; encoding appends
//! to a caller-provided `Vec<u8>`. Parsing happens in two steps so that a
//! receiver can answer each defect the way the spec prescribes:
//!
//! 1. [`Packet::parse`] checks the framing: header, version, message type,
//!    and that the attribute list has exactly `Num Attributes` well-framed
//!    attributes ([MS-SSTP] 2.2.1 to 2.2.4).
//! 2. [`ControlPacket::message`] checks what each message may carry
//!    (2.2.9 to 2.2.15) and yields a typed [`ControlMessage`].
//!
//! Every defect is a [`WireError`] that knows the [`Status`] describing it
//! ([`WireError::status`]) and the status a Call Abort sent because of it
//! must carry ([`WireError::abort_status`]).

use std::fmt;

/// The only version on the wire: major 1, minor 0 ([MS-SSTP] 2.2.1).
pub const VERSION: u8 = 0x10;
/// Size of the SSTP packet header ([MS-SSTP] 2.2.1).
pub const HEADER_LEN: usize = 4;
/// Size of a control packet's fixed part: header, Message Type, Num
/// Attributes ([MS-SSTP] 2.2.2).
pub const CONTROL_HEADER_LEN: usize = 8;
/// Size of an attribute header ([MS-SSTP] 2.2.4).
pub const ATTRIBUTE_HEADER_LEN: usize = 4;
/// The largest SSTP packet: the Length field has 12 bits ([MS-SSTP] 2.2.1).
pub const MAX_PACKET_LEN: usize = 0x0fff;
/// The largest PPP frame a data packet can carry: 4095 − 4 = 4091, the SSTP
/// MRU of [MS-SSTP] 3.1.5.2.
pub const MAX_PPP_FRAME_LEN: usize = MAX_PACKET_LEN - HEADER_LEN;
/// SSTP_ENCAPSULATED_PROTOCOL_PPP ([MS-SSTP] 2.2.5).
pub const PROTOCOL_PPP: u16 = 0x0001;
/// Length of every nonce ([MS-SSTP] 2.2.6, 2.2.7).
pub const NONCE_LEN: usize = 32;
/// Length of a Call Connected message ([MS-SSTP] 2.2.11).
pub const CALL_CONNECTED_LEN: usize = 112;
/// Length of a Call Connect Acknowledge message ([MS-SSTP] 2.2.10).
pub const CALL_CONNECT_ACK_LEN: usize = 48;
/// Largest AttribValue a Status Info attribute may echo ([MS-SSTP] 2.2.8).
pub const STATUS_INFO_MAX_VALUE_LEN: usize = 64;
/// AttribID `SSTP_ATTRIB_NO_ERROR` of a Status Info attribute that refers
/// to no attribute ([MS-SSTP] 2.2.8, 2.2.14).
pub const ATTRIB_NO_ERROR: u8 = 0x00;

/// The 12-bit length inside a LengthPacket field; the 4 high bits are
/// reserved and ignored on receipt ([MS-SSTP] 2.2.1, 2.2.4).
const LENGTH_MASK: u16 = 0x0fff;
/// Fixed lengths of the attributes that have one ([MS-SSTP] 2.2.5 to 2.2.7).
const ENCAPSULATED_PROTOCOL_ID_LEN: usize = 6;
const CRYPTO_BINDING_REQ_LEN: usize = 40;
const CRYPTO_BINDING_LEN: usize = 104;
/// A Status Info attribute without AttribValue ([MS-SSTP] 2.2.8).
const STATUS_INFO_MIN_LEN: usize = 12;

/// Control message types ([MS-SSTP] 2.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum MessageType {
    /// SSTP_MSG_CALL_CONNECT_REQUEST, 2.2.9.
    CallConnectRequest = 0x0001,
    /// SSTP_MSG_CALL_CONNECT_ACK, 2.2.10.
    CallConnectAck = 0x0002,
    /// SSTP_MSG_CALL_CONNECT_NAK, 2.2.12.
    CallConnectNak = 0x0003,
    /// SSTP_MSG_CALL_CONNECTED, 2.2.11.
    CallConnected = 0x0004,
    /// SSTP_MSG_CALL_ABORT, 2.2.13.
    CallAbort = 0x0005,
    /// SSTP_MSG_CALL_DISCONNECT, 2.2.14.
    CallDisconnect = 0x0006,
    /// SSTP_MSG_CALL_DISCONNECT_ACK, 2.2.15.
    CallDisconnectAck = 0x0007,
    /// SSTP_MSG_ECHO_REQUEST, 2.2.15.
    EchoRequest = 0x0008,
    /// SSTP_MSG_ECHO_RESPONSE, 2.2.15.
    EchoResponse = 0x0009,
}

impl MessageType {
    /// The message type for a wire value, `None` for values [MS-SSTP] 2.2.2
    /// does not define.
    pub fn from_u16(value: u16) -> Option<Self> {
        Some(match value {
            0x0001 => MessageType::CallConnectRequest,
            0x0002 => MessageType::CallConnectAck,
            0x0003 => MessageType::CallConnectNak,
            0x0004 => MessageType::CallConnected,
            0x0005 => MessageType::CallAbort,
            0x0006 => MessageType::CallDisconnect,
            0x0007 => MessageType::CallDisconnectAck,
            0x0008 => MessageType::EchoRequest,
            0x0009 => MessageType::EchoResponse,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// Short snake_case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::CallConnectRequest => "call_connect_request",
            MessageType::CallConnectAck => "call_connect_ack",
            MessageType::CallConnectNak => "call_connect_nak",
            MessageType::CallConnected => "call_connected",
            MessageType::CallAbort => "call_abort",
            MessageType::CallDisconnect => "call_disconnect",
            MessageType::CallDisconnectAck => "call_disconnect_ack",
            MessageType::EchoRequest => "echo_request",
            MessageType::EchoResponse => "echo_response",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Attribute IDs ([MS-SSTP] 2.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AttributeId {
    /// SSTP_ATTRIB_ENCAPSULATED_PROTOCOL_ID, 2.2.5.
    EncapsulatedProtocolId = 0x01,
    /// SSTP_ATTRIB_STATUS_INFO, 2.2.8.
    StatusInfo = 0x02,
    /// SSTP_ATTRIB_CRYPTO_BINDING, 2.2.7.
    CryptoBinding = 0x03,
    /// SSTP_ATTRIB_CRYPTO_BINDING_REQ, 2.2.6.
    CryptoBindingReq = 0x04,
}

impl AttributeId {
    /// The attribute for a wire value, `None` for undefined IDs.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0x01 => AttributeId::EncapsulatedProtocolId,
            0x02 => AttributeId::StatusInfo,
            0x03 => AttributeId::CryptoBinding,
            0x04 => AttributeId::CryptoBindingReq,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The fixed length of the whole attribute (header included), or the
    /// allowed range for Status Info ([MS-SSTP] 2.2.5 to 2.2.8).
    fn allowed_len(self) -> std::ops::RangeInclusive<usize> {
        match self {
            AttributeId::EncapsulatedProtocolId => {
                ENCAPSULATED_PROTOCOL_ID_LEN..=ENCAPSULATED_PROTOCOL_ID_LEN
            }
            AttributeId::StatusInfo => {
                STATUS_INFO_MIN_LEN..=STATUS_INFO_MIN_LEN + STATUS_INFO_MAX_VALUE_LEN
            }
            AttributeId::CryptoBinding => CRYPTO_BINDING_LEN..=CRYPTO_BINDING_LEN,
            AttributeId::CryptoBindingReq => CRYPTO_BINDING_REQ_LEN..=CRYPTO_BINDING_REQ_LEN,
        }
    }
}

/// The Status field of a Status Info attribute ([MS-SSTP] 2.2.8), one
/// variant per value the spec defines. A value the spec does not define,
/// received from a peer, is kept in [`Status::Unknown`];
/// [`Status::from_u32`] never puts a defined value there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// ATTRIB_STATUS_NO_ERROR (0x00000000).
    NoError,
    /// ATTRIB_STATUS_DUPLICATE_ATTRIBUTE (0x00000001).
    DuplicateAttribute,
    /// ATTRIB_STATUS_UNRECOGNIZED_ATTRIBUTE (0x00000002).
    UnrecognizedAttribute,
    /// ATTRIB_STATUS_INVALID_ATTRIB_VALUE_LENGTH (0x00000003).
    InvalidAttribValueLength,
    /// ATTRIB_STATUS_VALUE_NOT_SUPPORTED (0x00000004).
    ValueNotSupported,
    /// ATTRIB_STATUS_UNACCEPTED_FRAME_RECEIVED (0x00000005).
    UnacceptedFrameReceived,
    /// ATTRIB_STATUS_RETRY_COUNT_EXCEEDED (0x00000006).
    RetryCountExceeded,
    /// ATTRIB_STATUS_INVALID_FRAME_RECEIVED (0x00000007).
    InvalidFrameReceived,
    /// ATTRIB_STATUS_NEGOTIATION_TIMEOUT (0x00000008).
    NegotiationTimeout,
    /// ATTRIB_STATUS_ATTRIB_NOT_SUPPORTED_IN_MSG (0x00000009).
    AttribNotSupportedInMsg,
    /// ATTRIB_STATUS_REQUIRED_ATTRIBUTE_MISSING (0x0000000a).
    RequiredAttributeMissing,
    /// ATTRIB_STATUS_STATUS_INFO_NOT_SUPPORTED_IN_MSG (0x0000000b).
    StatusInfoNotSupportedInMsg,
    /// A value [MS-SSTP] 2.2.8 does not define, as received.
    Unknown(u32),
}

impl Status {
    /// The status for a wire value.
    pub fn from_u32(value: u32) -> Self {
        match value {
            0x0000_0000 => Status::NoError,
            0x0000_0001 => Status::DuplicateAttribute,
            0x0000_0002 => Status::UnrecognizedAttribute,
            0x0000_0003 => Status::InvalidAttribValueLength,
            0x0000_0004 => Status::ValueNotSupported,
            0x0000_0005 => Status::UnacceptedFrameReceived,
            0x0000_0006 => Status::RetryCountExceeded,
            0x0000_0007 => Status::InvalidFrameReceived,
            0x0000_0008 => Status::NegotiationTimeout,
            0x0000_0009 => Status::AttribNotSupportedInMsg,
            0x0000_000a => Status::RequiredAttributeMissing,
            0x0000_000b => Status::StatusInfoNotSupportedInMsg,
            other => Status::Unknown(other),
        }
    }

    /// The wire value.
    pub fn as_u32(self) -> u32 {
        match self {
            Status::NoError => 0x0000_0000,
            Status::DuplicateAttribute => 0x0000_0001,
            Status::UnrecognizedAttribute => 0x0000_0002,
            Status::InvalidAttribValueLength => 0x0000_0003,
            Status::ValueNotSupported => 0x0000_0004,
            Status::UnacceptedFrameReceived => 0x0000_0005,
            Status::RetryCountExceeded => 0x0000_0006,
            Status::InvalidFrameReceived => 0x0000_0007,
            Status::NegotiationTimeout => 0x0000_0008,
            Status::AttribNotSupportedInMsg => 0x0000_0009,
            Status::RequiredAttributeMissing => 0x0000_000a,
            Status::StatusInfoNotSupportedInMsg => 0x0000_000b,
            Status::Unknown(value) => value,
        }
    }

    /// Short snake_case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NoError => "no_error",
            Status::DuplicateAttribute => "duplicate_attribute",
            Status::UnrecognizedAttribute => "unrecognized_attribute",
            Status::InvalidAttribValueLength => "invalid_attrib_value_length",
            Status::ValueNotSupported => "value_not_supported",
            Status::UnacceptedFrameReceived => "unaccepted_frame_received",
            Status::RetryCountExceeded => "retry_count_exceeded",
            Status::InvalidFrameReceived => "invalid_frame_received",
            Status::NegotiationTimeout => "negotiation_timeout",
            Status::AttribNotSupportedInMsg => "attrib_not_supported_in_msg",
            Status::RequiredAttributeMissing => "required_attribute_missing",
            Status::StatusInfoNotSupportedInMsg => "status_info_not_supported_in_msg",
            Status::Unknown(_) => "unknown",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Unknown(value) => write!(f, "unknown({value:#010x})"),
            known => f.write_str(known.as_str()),
        }
    }
}

/// A hash protocol for the certificate hash and the Compound MAC
/// ([MS-SSTP] 2.2.7 Hash Protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HashProtocol {
    /// CERT_HASH_PROTOCOL_SHA1: SHA-1 certificate hash, HMAC-SHA1-160.
    Sha1 = 0x01,
    /// CERT_HASH_PROTOCOL_SHA256: SHA-256 certificate hash, HMAC-SHA256-256.
    Sha256 = 0x02,
}

impl HashProtocol {
    /// The protocol for a Hash Protocol field value, `None` for other values.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0x01 => Some(HashProtocol::Sha1),
            0x02 => Some(HashProtocol::Sha256),
            _ => None,
        }
    }

    /// The wire value (also its bit in a [`HashProtocols`] bitmask).
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Length of the certificate hash and of the Compound MAC: 20 or 32.
    pub fn output_len(self) -> usize {
        match self {
            HashProtocol::Sha1 => 20,
            HashProtocol::Sha256 => 32,
        }
    }

    /// Short snake_case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            HashProtocol::Sha1 => "sha1",
            HashProtocol::Sha256 => "sha256",
        }
    }
}

/// The Hash Protocol Bitmask of a Crypto Binding Request ([MS-SSTP] 2.2.6):
/// bit A (0x01) SHA-1, bit B (0x02) SHA-256. Bits the spec does not define
/// are kept as received and never match a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HashProtocols(u8);

impl HashProtocols {
    /// SHA-1 only.
    pub const SHA1: HashProtocols = HashProtocols(0x01);
    /// SHA-256 only.
    pub const SHA256: HashProtocols = HashProtocols(0x02);
    /// SHA-1 and SHA-256.
    pub const BOTH: HashProtocols = HashProtocols(0x03);

    /// The bitmask as received or configured.
    pub fn from_bits(bits: u8) -> Self {
        HashProtocols(bits)
    }

    /// The raw bitmask.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Only the bits [MS-SSTP] 2.2.6 defines.
    pub fn known(self) -> Self {
        HashProtocols(self.0 & Self::BOTH.0)
    }

    /// Whether `protocol`'s bit is set.
    pub fn contains(self, protocol: HashProtocol) -> bool {
        self.0 & protocol.as_u8() != 0
    }

    /// Whether no defined protocol is selected.
    pub fn is_empty(self) -> bool {
        self.known().0 == 0
    }

    /// The protocol both sets allow, SHA-256 when both do ([MS-SSTP] 1.7,
    /// 2.2.10, 3.2.5.3.2).
    pub fn strongest_common(self, other: HashProtocols) -> Option<HashProtocol> {
        [HashProtocol::Sha256, HashProtocol::Sha1]
            .into_iter()
            .find(|&p| self.contains(p) && other.contains(p))
    }
}

/// A Status Info attribute ([MS-SSTP] 2.2.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusInfo<'a> {
    /// AttribID: the attribute this status is about, or
    /// [`ATTRIB_NO_ERROR`]. Kept raw: a NAK may name an attribute ID that is
    /// not defined.
    pub attrib_id: u8,
    /// The reason.
    pub status: Status,
    /// AttribValue: the offending attribute's value, at most 64 bytes.
    pub value: &'a [u8],
}

impl<'a> StatusInfo<'a> {
    /// A Status Info without AttribValue.
    pub fn new(attrib_id: u8, status: Status) -> Self {
        StatusInfo {
            attrib_id,
            status,
            value: &[],
        }
    }

    /// Parses the value part of a Status Info attribute (after the 4-byte
    /// attribute header); the caller has checked its length.
    fn from_value(value: &'a [u8]) -> Option<Self> {
        let (fixed, rest) = value.split_first_chunk::<8>()?;
        Some(StatusInfo {
            attrib_id: fixed[3],
            status: Status::from_u32(u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]])),
            value: rest,
        })
    }

    /// Length on the wire, header included (AttribValue truncated to 64
    /// bytes as [MS-SSTP] 2.2.8 requires).
    pub fn encoded_len(&self) -> usize {
        STATUS_INFO_MIN_LEN + self.value.len().min(STATUS_INFO_MAX_VALUE_LEN)
    }

    /// Appends the attribute.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let value = &self.value[..self.value.len().min(STATUS_INFO_MAX_VALUE_LEN)];
        put_attribute_header(out, AttributeId::StatusInfo, self.encoded_len());
        out.extend_from_slice(&[0, 0, 0, self.attrib_id]);
        out.extend_from_slice(&self.status.as_u32().to_be_bytes());
        out.extend_from_slice(value);
    }
}

/// The Crypto Binding Request attribute of a Call Connect Acknowledge
/// ([MS-SSTP] 2.2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CryptoBindingRequest<'a> {
    /// The hash protocols the server allows.
    pub hash_protocols: HashProtocols,
    /// The server's nonce.
    pub nonce: &'a [u8; NONCE_LEN],
}

/// The Crypto Binding attribute of a Call Connected message
/// ([MS-SSTP] 2.2.7). The three 32-byte fields are kept whole, padding
/// included; [`CryptoBinding::cert_hash`] and
/// [`CryptoBinding::compound_mac`] cut them to the protocol's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CryptoBinding<'a> {
    /// The Hash Protocol field as received.
    pub hash_protocol: u8,
    /// The nonce the client echoes.
    pub nonce: &'a [u8; NONCE_LEN],
    /// Cert Hash followed by Padding.
    pub cert_hash_field: &'a [u8; 32],
    /// Compound MAC followed by Padding1.
    pub compound_mac_field: &'a [u8; 32],
}

impl<'a> CryptoBinding<'a> {
    /// The hash protocol, `None` when the field holds an undefined value.
    pub fn protocol(&self) -> Option<HashProtocol> {
        HashProtocol::from_u8(self.hash_protocol)
    }

    /// The certificate hash (20 or 32 bytes), `None` for an undefined
    /// protocol.
    pub fn cert_hash(&self) -> Option<&'a [u8]> {
        let len = self.protocol()?.output_len();
        self.cert_hash_field.get(..len)
    }

    /// The Compound MAC (20 or 32 bytes), `None` for an undefined protocol.
    pub fn compound_mac(&self) -> Option<&'a [u8]> {
        let len = self.protocol()?.output_len();
        self.compound_mac_field.get(..len)
    }
}

/// The Status Info attributes of a Call Connect NAK, validated, kept as the
/// raw attribute list ([MS-SSTP] 2.2.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusInfos<'a> {
    raw: &'a [u8],
    count: u16,
}

impl<'a> StatusInfos<'a> {
    /// How many Status Info attributes there are (at least one).
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Always false for a parsed NAK.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The attributes in order.
    pub fn iter(&self) -> impl Iterator<Item = StatusInfo<'a>> + 'a {
        Attributes::new(self.raw, self.count).filter_map(|attr| StatusInfo::from_value(attr.value))
    }

    /// The first attribute.
    pub fn first(&self) -> Option<StatusInfo<'a>> {
        self.iter().next()
    }
}

/// A control message, validated against [MS-SSTP] 2.2.9 to 2.2.15.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlMessage<'a> {
    /// 2.2.9: the client proposes an encapsulated protocol.
    CallConnectRequest {
        /// The Encapsulated Protocol ID attribute's value (2.2.5):
        /// [`PROTOCOL_PPP`] is the only one defined.
        protocol_id: u16,
    },
    /// 2.2.10: the server accepts and asks for the crypto binding.
    CallConnectAck(CryptoBindingRequest<'a>),
    /// 2.2.12: the server refuses the request's attributes.
    CallConnectNak(StatusInfos<'a>),
    /// 2.2.11: the client completes the crypto binding.
    CallConnected(CryptoBinding<'a>),
    /// 2.2.13: abnormal teardown.
    CallAbort(Option<StatusInfo<'a>>),
    /// 2.2.14: graceful teardown.
    CallDisconnect(Option<StatusInfo<'a>>),
    /// 2.2.15.
    CallDisconnectAck,
    /// 2.2.15.
    EchoRequest,
    /// 2.2.15.
    EchoResponse,
}

impl ControlMessage<'_> {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            ControlMessage::CallConnectRequest { .. } => MessageType::CallConnectRequest,
            ControlMessage::CallConnectAck(_) => MessageType::CallConnectAck,
            ControlMessage::CallConnectNak(_) => MessageType::CallConnectNak,
            ControlMessage::CallConnected(_) => MessageType::CallConnected,
            ControlMessage::CallAbort(_) => MessageType::CallAbort,
            ControlMessage::CallDisconnect(_) => MessageType::CallDisconnect,
            ControlMessage::CallDisconnectAck => MessageType::CallDisconnectAck,
            ControlMessage::EchoRequest => MessageType::EchoRequest,
            ControlMessage::EchoResponse => MessageType::EchoResponse,
        }
    }

    /// Appends the whole control packet.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ControlMessage::CallConnectRequest { protocol_id } => {
                encode_call_connect_request(*protocol_id, out)
            }
            ControlMessage::CallConnectAck(request) => {
                encode_call_connect_ack(request.hash_protocols, request.nonce, out)
            }
            ControlMessage::CallConnectNak(infos) => {
                put_control_header(
                    out,
                    MessageType::CallConnectNak,
                    infos.count,
                    infos.raw.len(),
                );
                out.extend_from_slice(infos.raw);
            }
            ControlMessage::CallConnected(binding) => {
                put_control_header(out, MessageType::CallConnected, 1, CRYPTO_BINDING_LEN);
                put_attribute_header(out, AttributeId::CryptoBinding, CRYPTO_BINDING_LEN);
                out.extend_from_slice(&[0, 0, 0, binding.hash_protocol]);
                out.extend_from_slice(binding.nonce);
                out.extend_from_slice(binding.cert_hash_field);
                out.extend_from_slice(binding.compound_mac_field);
            }
            ControlMessage::CallAbort(info) => {
                encode_with_status_info(MessageType::CallAbort, info.as_ref(), out)
            }
            ControlMessage::CallDisconnect(info) => {
                encode_with_status_info(MessageType::CallDisconnect, info.as_ref(), out)
            }
            ControlMessage::CallDisconnectAck
            | ControlMessage::EchoRequest
            | ControlMessage::EchoResponse => {
                put_control_header(out, self.message_type(), 0, 0);
            }
        }
    }
}

/// What is wrong with a received packet.
///
/// [`WireError::status`] is the Status Info status that describes the
/// defect ([MS-SSTP] 2.2.8); a Call Connect NAK carries it as is.
/// [`WireError::abort_status`] is the status a Call Abort sent because of
/// the defect carries, restricted to the values [MS-SSTP] 2.2.13 allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The Length field does not match the packet handed over, or is under 4.
    BadPacketLength {
        /// The 12-bit Length (0 when not even the header arrived).
        length: u16,
        /// The size of the packet handed over.
        actual: usize,
    },
    /// The Version field is not 0x10 ([MS-SSTP] 2.2.1).
    UnsupportedVersion(u8),
    /// A control packet shorter than its 8-byte fixed part.
    ControlPacketTooShort {
        /// The packet's 12-bit Length.
        length: u16,
    },
    /// A Message Type [MS-SSTP] 2.2.2 does not define.
    UnknownMessageType(u16),
    /// Num Attributes does not describe the attribute bytes exactly.
    AttributeCountMismatch {
        /// The Num Attributes field.
        declared: u16,
    },
    /// An attribute's Length is under 4 or runs past the packet.
    TruncatedAttribute {
        /// The attribute's AttribID.
        attribute: u8,
    },
    /// An attribute's Length differs from what its section prescribes.
    InvalidAttributeLength {
        /// The attribute's AttribID.
        attribute: u8,
        /// Its 12-bit Length.
        length: u16,
    },
    /// An attribute occurs more than once.
    DuplicateAttribute {
        /// The repeated AttribID.
        attribute: u8,
    },
    /// An attribute ID [MS-SSTP] 2.2.4 does not define.
    UnrecognizedAttribute {
        /// The undefined AttribID.
        attribute: u8,
    },
    /// A defined attribute this message must not carry.
    AttributeNotAllowed {
        /// The message that carried it.
        message: MessageType,
        /// The attribute's AttribID.
        attribute: u8,
    },
    /// A mandatory attribute is absent.
    MissingAttribute {
        /// The message missing it.
        message: MessageType,
        /// The AttribID it must carry.
        attribute: u8,
    },
    /// A Call Connect Request proposing a protocol other than PPP.
    UnsupportedProtocol(u16),
    /// A Call Connect Request carrying a Status Info whose status is not
    /// ATTRIB_STATUS_NO_ERROR ([MS-SSTP] 3.3.5.2.2).
    StatusInfoInRequest {
        /// The status it carried.
        status: Status,
    },
}

impl WireError {
    /// The status describing the defect ([MS-SSTP] 2.2.8).
    pub fn status(&self) -> Status {
        match self {
            WireError::BadPacketLength { .. }
            | WireError::UnsupportedVersion(_)
            | WireError::ControlPacketTooShort { .. }
            | WireError::UnknownMessageType(_)
            | WireError::AttributeCountMismatch { .. } => Status::InvalidFrameReceived,
            WireError::TruncatedAttribute { .. } | WireError::InvalidAttributeLength { .. } => {
                Status::InvalidAttribValueLength
            }
            WireError::DuplicateAttribute { .. } => Status::DuplicateAttribute,
            WireError::UnrecognizedAttribute { .. } => Status::UnrecognizedAttribute,
            WireError::AttributeNotAllowed { .. } => Status::AttribNotSupportedInMsg,
            WireError::MissingAttribute { .. } => Status::RequiredAttributeMissing,
            WireError::UnsupportedProtocol(_) => Status::ValueNotSupported,
            WireError::StatusInfoInRequest { .. } => Status::StatusInfoNotSupportedInMsg,
        }
    }

    /// The status a Call Abort sent because of this defect carries: one of
    /// the values [MS-SSTP] 2.2.13 allows. Frame-format defects map to
    /// ATTRIB_STATUS_INVALID_FRAME_RECEIVED, attribute defects to
    /// ATTRIB_STATUS_ATTRIB_NOT_SUPPORTED_IN_MSG (2.2.8: "the attribute that
    /// is received from the far end is not supported in the specified
    /// message or the expected attribute is not received").
    pub fn abort_status(&self) -> Status {
        match self.status() {
            Status::DuplicateAttribute
            | Status::UnrecognizedAttribute
            | Status::InvalidAttribValueLength
            | Status::RequiredAttributeMissing
            | Status::StatusInfoNotSupportedInMsg => Status::AttribNotSupportedInMsg,
            allowed => allowed,
        }
    }

    /// The attribute ID the defect is about, if it is about one.
    pub fn attribute(&self) -> Option<u8> {
        match *self {
            WireError::TruncatedAttribute { attribute }
            | WireError::InvalidAttributeLength { attribute, .. }
            | WireError::DuplicateAttribute { attribute }
            | WireError::UnrecognizedAttribute { attribute }
            | WireError::AttributeNotAllowed { attribute, .. }
            | WireError::MissingAttribute { attribute, .. } => Some(attribute),
            WireError::UnsupportedProtocol(_) => Some(AttributeId::EncapsulatedProtocolId.as_u8()),
            WireError::StatusInfoInRequest { .. } => Some(AttributeId::StatusInfo.as_u8()),
            _ => None,
        }
    }

    /// Short snake_case name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            WireError::BadPacketLength { .. } => "bad_packet_length",
            WireError::UnsupportedVersion(_) => "unsupported_version",
            WireError::ControlPacketTooShort { .. } => "control_packet_too_short",
            WireError::UnknownMessageType(_) => "unknown_message_type",
            WireError::AttributeCountMismatch { .. } => "attribute_count_mismatch",
            WireError::TruncatedAttribute { .. } => "truncated_attribute",
            WireError::InvalidAttributeLength { .. } => "invalid_attribute_length",
            WireError::DuplicateAttribute { .. } => "duplicate_attribute",
            WireError::UnrecognizedAttribute { .. } => "unrecognized_attribute",
            WireError::AttributeNotAllowed { .. } => "attribute_not_allowed",
            WireError::MissingAttribute { .. } => "missing_attribute",
            WireError::UnsupportedProtocol(_) => "unsupported_protocol",
            WireError::StatusInfoInRequest { .. } => "status_info_in_request",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.as_str(), self)
    }
}

impl std::error::Error for WireError {}

/// One SSTP packet, framing checked ([MS-SSTP] 2.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// A data packet (C = 0) and its PPP frame ([MS-SSTP] 2.2.3).
    Data(&'a [u8]),
    /// A control packet (C = 1) ([MS-SSTP] 2.2.2).
    Control(ControlPacket<'a>),
}

impl<'a> Packet<'a> {
    /// Parses one whole packet: `bytes` must be exactly the packet (as the
    /// deframer yields it). The reserved bits are ignored ([MS-SSTP] 2.2.1).
    #[inline]
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let header = PacketHeader::parse(bytes).ok_or(WireError::BadPacketLength {
            length: 0,
            actual: bytes.len(),
        })?;
        if usize::from(header.length) != bytes.len() || usize::from(header.length) < HEADER_LEN {
            return Err(WireError::BadPacketLength {
                length: header.length,
                actual: bytes.len(),
            });
        }
        if header.version != VERSION {
            return Err(WireError::UnsupportedVersion(header.version));
        }
        let body = &bytes[HEADER_LEN..];
        if !header.control {
            return Ok(Packet::Data(body));
        }
        let Some((fixed, attributes)) = body.split_first_chunk::<4>() else {
            return Err(WireError::ControlPacketTooShort {
                length: header.length,
            });
        };
        let raw_type = u16::from_be_bytes([fixed[0], fixed[1]]);
        let message_type =
            MessageType::from_u16(raw_type).ok_or(WireError::UnknownMessageType(raw_type))?;
        let num_attributes = u16::from_be_bytes([fixed[2], fixed[3]]);
        check_attribute_framing(attributes, num_attributes)?;
        Ok(Packet::Control(ControlPacket {
            packet: bytes,
            message_type,
            num_attributes,
            attributes,
        }))
    }
}

/// The fields of the 4-byte packet header ([MS-SSTP] 2.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketHeader {
    /// The Version field.
    pub version: u8,
    /// The C bit: control (true) or data (false).
    pub control: bool,
    /// The 12-bit Length: the whole packet, header included.
    pub length: u16,
}

impl PacketHeader {
    /// Reads the header at the start of `bytes`; `None` if fewer than 4
    /// bytes. The 7 reserved bits and the 4 R bits are ignored.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let header = bytes.first_chunk::<HEADER_LEN>()?;
        Some(PacketHeader {
            version: header[0],
            control: header[1] & 0x01 != 0,
            length: u16::from_be_bytes([header[2], header[3]]) & LENGTH_MASK,
        })
    }
}

/// A control packet whose attribute list is well framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlPacket<'a> {
    packet: &'a [u8],
    message_type: MessageType,
    num_attributes: u16,
    attributes: &'a [u8],
}

impl<'a> ControlPacket<'a> {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// The whole packet as received, header included.
    pub fn bytes(&self) -> &'a [u8] {
        self.packet
    }

    /// The attributes in order.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.attributes, self.num_attributes)
    }

    /// Checks what this message may carry ([MS-SSTP] 2.2.9 to 2.2.15) and
    /// returns it typed. For a Call Connect Request the first defect is
    /// returned; [`connect_request_defects`] lists them all.
    pub fn message(&self) -> Result<ControlMessage<'a>, WireError> {
        let message = self.message_type;
        Ok(match message {
            MessageType::CallConnectRequest => {
                let mut first = None;
                let protocol_id = connect_request_defects(self, |error, _| {
                    first.get_or_insert(error);
                });
                match first {
                    Some(error) => return Err(error),
                    None => ControlMessage::CallConnectRequest {
                        protocol_id: protocol_id.unwrap_or(PROTOCOL_PPP),
                    },
                }
            }
            MessageType::CallConnectAck => {
                let value = self.single_attribute(AttributeId::CryptoBindingReq)?;
                let (fixed, nonce) = value
                    .split_first_chunk::<4>()
                    .ok_or(self.bad_length(AttributeId::CryptoBindingReq))?;
                ControlMessage::CallConnectAck(CryptoBindingRequest {
                    hash_protocols: HashProtocols::from_bits(fixed[3]),
                    nonce: nonce
                        .try_into()
                        .map_err(|_| self.bad_length(AttributeId::CryptoBindingReq))?,
                })
            }
            MessageType::CallConnected => {
                let value = self.single_attribute(AttributeId::CryptoBinding)?;
                let bad = || self.bad_length(AttributeId::CryptoBinding);
                let (fixed, rest) = value.split_first_chunk::<4>().ok_or_else(bad)?;
                let (nonce, rest) = rest.split_first_chunk::<NONCE_LEN>().ok_or_else(bad)?;
                let (cert_hash_field, rest) = rest.split_first_chunk::<32>().ok_or_else(bad)?;
                let compound_mac_field = rest.try_into().map_err(|_| bad())?;
                ControlMessage::CallConnected(CryptoBinding {
                    hash_protocol: fixed[3],
                    nonce,
                    cert_hash_field,
                    compound_mac_field,
                })
            }
            MessageType::CallConnectNak => {
                for attr in self.attributes() {
                    self.check_only_status_info(attr)?;
                }
                if self.num_attributes == 0 {
                    return Err(WireError::MissingAttribute {
                        message,
                        attribute: AttributeId::StatusInfo.as_u8(),
                    });
                }
                ControlMessage::CallConnectNak(StatusInfos {
                    raw: self.attributes,
                    count: self.num_attributes,
                })
            }
            MessageType::CallAbort => ControlMessage::CallAbort(self.optional_status_info()?),
            MessageType::CallDisconnect => {
                ControlMessage::CallDisconnect(self.optional_status_info()?)
            }
            MessageType::CallDisconnectAck
            | MessageType::EchoRequest
            | MessageType::EchoResponse => {
                if let Some(attr) = self.attributes().next() {
                    return Err(self.not_allowed(attr.id));
                }
                match message {
                    MessageType::CallDisconnectAck => ControlMessage::CallDisconnectAck,
                    MessageType::EchoRequest => ControlMessage::EchoRequest,
                    _ => ControlMessage::EchoResponse,
                }
            }
        })
    }

    fn bad_length(&self, id: AttributeId) -> WireError {
        WireError::InvalidAttributeLength {
            attribute: id.as_u8(),
            length: 0,
        }
    }

    /// An attribute this message must not carry: unrecognized if the ID is
    /// undefined, not allowed otherwise.
    fn not_allowed(&self, id: u8) -> WireError {
        match AttributeId::from_u8(id) {
            Some(_) => WireError::AttributeNotAllowed {
                message: self.message_type,
                attribute: id,
            },
            None => WireError::UnrecognizedAttribute { attribute: id },
        }
    }

    /// The value of the one attribute a message must carry, with its length
    /// checked ([MS-SSTP] 2.2.10, 2.2.11: Num Attributes MUST be 1).
    fn single_attribute(&self, expected: AttributeId) -> Result<&'a [u8], WireError> {
        let mut found = None;
        for attr in self.attributes() {
            if attr.id != expected.as_u8() {
                return Err(self.not_allowed(attr.id));
            }
            if found.is_some() {
                return Err(WireError::DuplicateAttribute { attribute: attr.id });
            }
            check_length(expected, attr)?;
            found = Some(attr.value);
        }
        found.ok_or(WireError::MissingAttribute {
            message: self.message_type,
            attribute: expected.as_u8(),
        })
    }

    fn check_only_status_info(&self, attr: RawAttribute<'a>) -> Result<StatusInfo<'a>, WireError> {
        if attr.id != AttributeId::StatusInfo.as_u8() {
            return Err(self.not_allowed(attr.id));
        }
        check_length(AttributeId::StatusInfo, attr)?;
        StatusInfo::from_value(attr.value).ok_or(self.bad_length(AttributeId::StatusInfo))
    }

    /// At most one Status Info and nothing else ([MS-SSTP] 2.2.13, 2.2.14).
    fn optional_status_info(&self) -> Result<Option<StatusInfo<'a>>, WireError> {
        let mut found = None;
        for attr in self.attributes() {
            let info = self.check_only_status_info(attr)?;
            if found.replace(info).is_some() {
                return Err(WireError::DuplicateAttribute { attribute: attr.id });
            }
        }
        Ok(found)
    }
}

/// One attribute as framed ([MS-SSTP] 2.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    /// Attribute ID.
    pub id: u8,
    /// The 12-bit Length field (header included).
    pub length: u16,
    /// Value: the bytes after the 4-byte header.
    pub value: &'a [u8],
}

/// Iterator over a framed attribute list.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    rest: &'a [u8],
    remaining: u16,
}

impl<'a> Attributes<'a> {
    fn new(rest: &'a [u8], remaining: u16) -> Self {
        Attributes { rest, remaining }
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<RawAttribute<'a>> {
        if self.remaining == 0 {
            return None;
        }
        let (attribute, rest) = split_attribute(self.rest).ok()?;
        self.rest = rest;
        self.remaining -= 1;
        Some(attribute)
    }
}

/// Splits the first attribute off `bytes`.
fn split_attribute(bytes: &[u8]) -> Result<(RawAttribute<'_>, &[u8]), WireError> {
    let header =
        bytes
            .first_chunk::<ATTRIBUTE_HEADER_LEN>()
            .ok_or(WireError::TruncatedAttribute {
                attribute: bytes.get(1).copied().unwrap_or(0),
            })?;
    let id = header[1];
    let length = u16::from_be_bytes([header[2], header[3]]) & LENGTH_MASK;
    let len = usize::from(length);
    if len < ATTRIBUTE_HEADER_LEN || len > bytes.len() {
        return Err(WireError::TruncatedAttribute { attribute: id });
    }
    let (attribute, rest) = bytes.split_at(len);
    Ok((
        RawAttribute {
            id,
            length,
            value: &attribute[ATTRIBUTE_HEADER_LEN..],
        },
        rest,
    ))
}

/// Checks that `bytes` holds exactly `count` well-framed attributes.
fn check_attribute_framing(mut bytes: &[u8], count: u16) -> Result<(), WireError> {
    for _ in 0..count {
        if bytes.is_empty() {
            return Err(WireError::AttributeCountMismatch { declared: count });
        }
        bytes = split_attribute(bytes)?.1;
    }
    if bytes.is_empty() {
        Ok(())
    } else {
        Err(WireError::AttributeCountMismatch { declared: count })
    }
}

fn check_length(id: AttributeId, attr: RawAttribute<'_>) -> Result<(), WireError> {
    if id.allowed_len().contains(&usize::from(attr.length)) {
        Ok(())
    } else {
        Err(WireError::InvalidAttributeLength {
            attribute: attr.id,
            length: attr.length,
        })
    }
}

/// Walks a Call Connect Request's attributes the way [MS-SSTP] 3.3.5.2.2
/// describes and reports every defect, in attribute order, together with
/// the value a NAK echoes in AttribValue (empty when 2.2.8 says the field
/// is absent: unrecognized or missing attributes). Returns the proposed
/// protocol ID, if there is one.
///
/// Attributes other than Encapsulated Protocol ID and Status Info are
/// reported as unrecognized: the NAK statuses of 2.2.12 have no "not
/// allowed in this message".
pub fn connect_request_defects<'a>(
    packet: &ControlPacket<'a>,
    mut report: impl FnMut(WireError, &'a [u8]),
) -> Option<u16> {
    let mut protocol_id = None;
    let mut seen = [false; 256];
    for attr in packet.attributes() {
        let duplicate = std::mem::replace(&mut seen[usize::from(attr.id)], true);
        let value = attr.value;
        let defect = match AttributeId::from_u8(attr.id) {
            Some(id @ AttributeId::EncapsulatedProtocolId) => {
                if duplicate {
                    Some(WireError::DuplicateAttribute { attribute: attr.id })
                } else if let Err(error) = check_length(id, attr) {
                    Some(error)
                } else {
                    let id = value
                        .first_chunk::<2>()
                        .map_or(0, |b| u16::from_be_bytes(*b));
                    protocol_id = Some(id);
                    (id != PROTOCOL_PPP).then_some(WireError::UnsupportedProtocol(id))
                }
            }
            Some(id @ AttributeId::StatusInfo) => {
                if duplicate {
                    Some(WireError::DuplicateAttribute { attribute: attr.id })
                } else if let Err(error) = check_length(id, attr) {
                    Some(error)
                } else {
                    StatusInfo::from_value(value)
                        .filter(|info| info.status != Status::NoError)
                        .map(|info| WireError::StatusInfoInRequest {
                            status: info.status,
                        })
                }
            }
            _ => Some(WireError::UnrecognizedAttribute { attribute: attr.id }),
        };
        if let Some(error) = defect {
            let echoed = match error {
                WireError::UnrecognizedAttribute { .. } => &[][..],
                _ => value,
            };
            report(error, echoed);
        }
    }
    if !seen[usize::from(AttributeId::EncapsulatedProtocolId.as_u8())] {
        // [MS-SSTP] 2.2.8 names the AttribID: SSTP_ATTRIB_ENCAPSULATED_PROTOCOL_ID.
        report(
            WireError::MissingAttribute {
                message: MessageType::CallConnectRequest,
                attribute: AttributeId::EncapsulatedProtocolId.as_u8(),
            },
            &[],
        );
    }
    protocol_id
}

// ---- Encoding ----

/// Appends a packet header ([MS-SSTP] 2.2.1). `len` is the whole packet.
pub fn put_packet_header(out: &mut Vec<u8>, control: bool, len: usize) {
    out.extend_from_slice(&packet_header(control, len));
}

/// A packet header ([MS-SSTP] 2.2.1), for writing over a placeholder once
/// the packet's length is known. `len` is the whole packet.
pub fn packet_header(control: bool, len: usize) -> [u8; 4] {
    debug_assert!(len <= MAX_PACKET_LEN);
    let [hi, lo] = (len as u16 & LENGTH_MASK).to_be_bytes();
    [VERSION, u8::from(control), hi, lo]
}

/// Appends a control packet's fixed part for a message whose attributes
/// take `attributes_len` bytes.
fn put_control_header(
    out: &mut Vec<u8>,
    message: MessageType,
    num_attributes: u16,
    attributes_len: usize,
) {
    out.reserve(CONTROL_HEADER_LEN + attributes_len);
    put_packet_header(out, true, CONTROL_HEADER_LEN + attributes_len);
    out.extend_from_slice(&message.as_u16().to_be_bytes());
    out.extend_from_slice(&num_attributes.to_be_bytes());
}

fn put_attribute_header(out: &mut Vec<u8>, id: AttributeId, len: usize) {
    out.push(0);
    out.push(id.as_u8());
    out.extend_from_slice(&(len as u16 & LENGTH_MASK).to_be_bytes());
}

/// Appends a Call Connect Request proposing `protocol_id` ([MS-SSTP] 2.2.9).
pub fn encode_call_connect_request(protocol_id: u16, out: &mut Vec<u8>) {
    put_control_header(
        out,
        MessageType::CallConnectRequest,
        1,
        ENCAPSULATED_PROTOCOL_ID_LEN,
    );
    put_attribute_header(
        out,
        AttributeId::EncapsulatedProtocolId,
        ENCAPSULATED_PROTOCOL_ID_LEN,
    );
    out.extend_from_slice(&protocol_id.to_be_bytes());
}

/// Appends a Call Connect Acknowledge ([MS-SSTP] 2.2.10).
pub fn encode_call_connect_ack(
    hash_protocols: HashProtocols,
    nonce: &[u8; NONCE_LEN],
    out: &mut Vec<u8>,
) {
    put_control_header(out, MessageType::CallConnectAck, 1, CRYPTO_BINDING_REQ_LEN);
    put_attribute_header(out, AttributeId::CryptoBindingReq, CRYPTO_BINDING_REQ_LEN);
    out.extend_from_slice(&[0, 0, 0, hash_protocols.bits()]);
    out.extend_from_slice(nonce);
}

/// Appends a Call Connect NAK with the given Status Info attributes
/// ([MS-SSTP] 2.2.12). Attributes that would push the packet past 4095
/// bytes are left out.
pub fn encode_call_connect_nak(infos: &[StatusInfo<'_>], out: &mut Vec<u8>) {
    let mut kept = 0;
    let mut len = 0;
    for info in infos {
        if CONTROL_HEADER_LEN + len + info.encoded_len() > MAX_PACKET_LEN {
            break;
        }
        len += info.encoded_len();
        kept += 1;
    }
    put_control_header(out, MessageType::CallConnectNak, kept as u16, len);
    for info in &infos[..kept] {
        info.encode(out);
    }
}

/// Appends a Call Abort or Call Disconnect with an optional Status Info
/// ([MS-SSTP] 2.2.13, 2.2.14).
fn encode_with_status_info(message: MessageType, info: Option<&StatusInfo<'_>>, out: &mut Vec<u8>) {
    match info {
        Some(info) => {
            put_control_header(out, message, 1, info.encoded_len());
            info.encode(out);
        }
        None => {
            put_control_header(out, message, 0, 0);
        }
    }
}

/// Appends a Call Abort ([MS-SSTP] 2.2.13).
pub fn encode_call_abort(info: Option<StatusInfo<'_>>, out: &mut Vec<u8>) {
    encode_with_status_info(MessageType::CallAbort, info.as_ref(), out)
}

/// Appends a Call Disconnect ([MS-SSTP] 2.2.14).
pub fn encode_call_disconnect(info: Option<StatusInfo<'_>>, out: &mut Vec<u8>) {
    encode_with_status_info(MessageType::CallDisconnect, info.as_ref(), out)
}

/// Appends a message without attributes: Call Disconnect Acknowledge, Echo
/// Request or Echo Response ([MS-SSTP] 2.2.15).
pub fn encode_bare(message: MessageType, out: &mut Vec<u8>) {
    put_control_header(out, message, 0, 0);
}
