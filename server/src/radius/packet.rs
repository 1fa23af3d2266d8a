//! The RADIUS packet ([RFC 2865] 3): Code, Identifier, Length,
//! Authenticator, attributes; with the codes of [RFC 2866] 4 and
//! [RFC 5176] 2.
//!
//! [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
//! [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
//! [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176

use std::fmt;

use super::attr::{Attribute, Attributes};

/// Octets before the attributes: Code, Identifier, Length, Authenticator.
pub const HEADER_LEN: usize = 20;
/// The largest packet ([RFC 2865] 3).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
pub const MAX_PACKET_LEN: usize = 4096;

/// The packet type ([RFC 2865] 3, [RFC 2866] 4, [RFC 5176] 2).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
/// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
/// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    AccessRequest,
    AccessAccept,
    AccessReject,
    AccountingRequest,
    AccountingResponse,
    AccessChallenge,
    DisconnectRequest,
    DisconnectAck,
    DisconnectNak,
    CoaRequest,
    CoaAck,
    CoaNak,
    /// A code not named above ([`Code::from`] never makes one of those).
    Other(u8),
}

impl From<u8> for Code {
    fn from(code: u8) -> Code {
        match code {
            1 => Code::AccessRequest,
            2 => Code::AccessAccept,
            3 => Code::AccessReject,
            4 => Code::AccountingRequest,
            5 => Code::AccountingResponse,
            11 => Code::AccessChallenge,
            40 => Code::DisconnectRequest,
            41 => Code::DisconnectAck,
            42 => Code::DisconnectNak,
            43 => Code::CoaRequest,
            44 => Code::CoaAck,
            45 => Code::CoaNak,
            other => Code::Other(other),
        }
    }
}

impl From<Code> for u8 {
    fn from(code: Code) -> u8 {
        code.to_u8()
    }
}

impl Code {
    /// The code on the wire.
    pub fn to_u8(self) -> u8 {
        match self {
            Code::AccessRequest => 1,
            Code::AccessAccept => 2,
            Code::AccessReject => 3,
            Code::AccountingRequest => 4,
            Code::AccountingResponse => 5,
            Code::AccessChallenge => 11,
            Code::DisconnectRequest => 40,
            Code::DisconnectAck => 41,
            Code::DisconnectNak => 42,
            Code::CoaRequest => 43,
            Code::CoaAck => 44,
            Code::CoaNak => 45,
            Code::Other(code) => code,
        }
    }

    /// Whether packets of this code are requests, answered by a response
    /// that carries their authenticator in its hash.
    pub fn is_request(self) -> bool {
        matches!(
            self,
            Code::AccessRequest
                | Code::AccountingRequest
                | Code::DisconnectRequest
                | Code::CoaRequest
        )
    }

    /// Short lowercase name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::AccessRequest => "access_request",
            Code::AccessAccept => "access_accept",
            Code::AccessReject => "access_reject",
            Code::AccountingRequest => "accounting_request",
            Code::AccountingResponse => "accounting_response",
            Code::AccessChallenge => "access_challenge",
            Code::DisconnectRequest => "disconnect_request",
            Code::DisconnectAck => "disconnect_ack",
            Code::DisconnectNak => "disconnect_nak",
            Code::CoaRequest => "coa_request",
            Code::CoaAck => "coa_ack",
            Code::CoaNak => "coa_nak",
            Code::Other(_) => "other",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::Other(code) => write!(f, "code {code}"),
            named => f.write_str(named.as_str()),
        }
    }
}

/// Why a datagram is not a RADIUS packet ([RFC 2865] 3 says to drop it
/// silently; the caller logs and counts it).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer octets than the 20 of a header.
    TooShort,
    /// The Length field is under 20 or over 4096.
    BadLength(u16),
    /// The datagram is shorter than its Length field.
    Truncated {
        /// The Length field.
        length: u16,
        /// The datagram's size.
        datagram: usize,
    },
    /// An attribute's Length is under 2 or runs past the packet's end.
    BadAttribute {
        /// Where the attribute starts in the packet.
        offset: usize,
    },
}

impl DecodeError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            DecodeError::TooShort => "too_short",
            DecodeError::BadLength(_) => "bad_length",
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::BadAttribute { .. } => "bad_attribute",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort => f.write_str("shorter than a RADIUS header"),
            DecodeError::BadLength(length) => write!(f, "length field {length} out of 20..=4096"),
            DecodeError::Truncated { length, datagram } => {
                write!(f, "length field {length} but only {datagram} octets")
            }
            DecodeError::BadAttribute { offset } => write!(f, "bad attribute at offset {offset}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a packet cannot be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// Header and attributes would exceed 4096 octets.
    TooLong(usize),
}

impl EncodeError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            EncodeError::TooLong(_) => "too_long",
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLong(len) => write!(f, "{len}-octet packet over 4096"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Checks the framing of a datagram ([RFC 2865] 3) and returns the packet
/// it holds: the first Length octets (octets past Length are padding and
/// ignored), each attribute's Length at least 2 and inside the packet.
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
pub fn frame(datagram: &[u8]) -> Result<&[u8], DecodeError> {
    let header = datagram
        .first_chunk::<HEADER_LEN>()
        .ok_or(DecodeError::TooShort)?;
    let length = u16::from_be_bytes([header[2], header[3]]);
    let len = usize::from(length);
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&len) {
        return Err(DecodeError::BadLength(length));
    }
    let packet = datagram.get(..len).ok_or(DecodeError::Truncated {
        length,
        datagram: datagram.len(),
    })?;
    let mut offset = HEADER_LEN;
    while offset < len {
        let attr_len = packet.get(offset + 1).map_or(0, |&l| usize::from(l));
        if attr_len < 2 || offset + attr_len > len {
            return Err(DecodeError::BadAttribute { offset });
        }
        offset += attr_len;
    }
    Ok(packet)
}

/// The attributes of a framed packet (see [`frame`]) as (type, offset of
/// the value, value), in order.
pub(crate) fn raw_attributes(packet: &[u8]) -> impl Iterator<Item = (u8, usize, &[u8])> {
    let mut offset = HEADER_LEN;
    std::iter::from_fn(move || {
        let kind = *packet.get(offset)?;
        let len = usize::from(*packet.get(offset + 1)?);
        let value = packet.get(offset + 2..offset + len)?;
        let at = offset + 2;
        offset += len;
        Some((kind, at, value))
    })
}

/// A RADIUS packet ([RFC 2865] 3).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub code: Code,
    /// Matches a response to its request (per source address and port).
    pub identifier: u8,
    /// Request or Response Authenticator, per the code.
    pub authenticator: [u8; 16],
    pub attributes: Attributes,
}

impl Packet {
    /// Decodes a datagram (see [`frame`] for what is checked). Never
    /// panics, whatever the input.
    pub fn decode(datagram: &[u8]) -> Result<Packet, DecodeError> {
        let packet = frame(datagram)?;
        let mut attributes = Attributes::new();
        for (kind, _, value) in raw_attributes(packet) {
            // `frame` checked every length: values are at most 253 octets.
            if let Ok(attribute) = Attribute::new(kind, value) {
                attributes.push_attribute(attribute);
            }
        }
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&packet[4..HEADER_LEN]);
        Ok(Packet {
            code: Code::from(packet[0]),
            identifier: packet[1],
            authenticator,
            attributes,
        })
    }

    /// Octets on the wire.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.attributes.encoded_len()
    }

    /// Appends the packet in wire format to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let len = self.encoded_len();
        if len > MAX_PACKET_LEN {
            return Err(EncodeError::TooLong(len));
        }
        out.reserve(len);
        out.push(self.code.to_u8());
        out.push(self.identifier);
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(&self.authenticator);
        self.attributes.encode_into(out);
        Ok(())
    }

    /// The packet in wire format.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::attr;

    /// [RFC 2865] 7.1: Access-Request of user "nemo" from NAS
    /// 192.168.1.16 port 3.
    const RFC_7_1_REQUEST: &str = "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
        98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d
        93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8
        01 10 05 06 00 00 00 03";

    pub(crate) fn unhex(text: &str) -> Vec<u8> {
        let digits: String = text.split_whitespace().collect();
        hex::decode(digits).expect("hex")
    }

    #[test]
    fn decodes_the_rfc_example_and_encodes_it_back() {
        let bytes = unhex(RFC_7_1_REQUEST);
        let packet = Packet::decode(&bytes).unwrap();
        assert_eq!(packet.code, Code::AccessRequest);
        assert_eq!(packet.identifier, 0);
        assert_eq!(packet.authenticator[..4], [0x0f, 0x40, 0x3f, 0x94]);
        assert_eq!(packet.attributes.len(), 4);
        assert_eq!(packet.attributes.string(attr::USER_NAME), Some("nemo"));
        assert_eq!(
            packet.attributes.ipv4(attr::NAS_IP_ADDRESS),
            Some(std::net::Ipv4Addr::new(192, 168, 1, 16))
        );
        assert_eq!(packet.attributes.u32(attr::NAS_PORT), Some(3));
        assert_eq!(packet.encode().unwrap(), bytes);
    }

    #[test]
    fn framing_rules_of_rfc_2865_section_3() {
        let bytes = unhex(RFC_7_1_REQUEST);
        assert_eq!(Packet::decode(&bytes[..19]), Err(DecodeError::TooShort));
        // A datagram shorter than Length.
        assert_eq!(
            Packet::decode(&bytes[..55]),
            Err(DecodeError::Truncated {
                length: 56,
                datagram: 55
            })
        );
        // Octets past Length are padding.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0xee; 10]);
        assert_eq!(frame(&padded).unwrap(), &bytes[..]);
        assert_eq!(Packet::decode(&padded), Packet::decode(&bytes));
        // Length out of 20..=4096.
        let mut short = bytes.clone();
        short[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Packet::decode(&short), Err(DecodeError::BadLength(19)));
        let mut long = vec![0u8; 5000];
        long[2..4].copy_from_slice(&4097u16.to_be_bytes());
        assert_eq!(Packet::decode(&long), Err(DecodeError::BadLength(4097)));
        // A Length that cuts an attribute in two.
        let mut cut = bytes.clone();
        cut[2..4].copy_from_slice(&54u16.to_be_bytes());
        assert_eq!(
            Packet::decode(&cut),
            Err(DecodeError::BadAttribute { offset: 50 })
        );
        // An attribute Length under 2.
        let mut zero = bytes.clone();
        zero[21] = 1;
        assert_eq!(
            Packet::decode(&zero),
            Err(DecodeError::BadAttribute { offset: 20 })
        );
        // A lone type octet at the end.
        let mut lone = bytes.clone();
        lone.push(attr::CLASS);
        lone[2..4].copy_from_slice(&57u16.to_be_bytes());
        assert_eq!(
            Packet::decode(&lone),
            Err(DecodeError::BadAttribute { offset: 56 })
        );
        // A bare header is a packet without attributes.
        let mut bare = bytes[..20].to_vec();
        bare[2..4].copy_from_slice(&20u16.to_be_bytes());
        assert!(Packet::decode(&bare).unwrap().attributes.is_empty());
    }

    #[test]
    fn codes_round_trip() {
        for byte in 0..=255u8 {
            let code = Code::from(byte);
            assert_eq!(code.to_u8(), byte);
            assert_eq!(Code::from(u8::from(code)), code);
        }
        assert_eq!(Code::from(43), Code::CoaRequest);
        assert!(Code::DisconnectRequest.is_request());
        assert!(!Code::CoaAck.is_request());
        assert_eq!(Code::Other(99).to_string(), "code 99");
        assert_eq!(Code::AccessChallenge.to_string(), "access_challenge");
    }

    #[test]
    fn encoding_refuses_more_than_4096_octets() {
        let mut packet = Packet {
            code: Code::AccountingRequest,
            identifier: 1,
            authenticator: [0; 16],
            attributes: Attributes::new(),
        };
        for _ in 0..15 {
            packet.attributes.push(attr::CLASS, &[0; 253]).unwrap();
        }
        packet.attributes.push(attr::CLASS, &[0; 249]).unwrap();
        assert_eq!(packet.encoded_len(), 4096);
        assert_eq!(packet.encode().unwrap().len(), 4096);
        packet.attributes.push(attr::CLASS, &[]).unwrap();
        assert_eq!(packet.encode(), Err(EncodeError::TooLong(4098)));
    }
}
