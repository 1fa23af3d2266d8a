//! The packet layout PAP ([RFC 1334] 2.2) and CHAP ([RFC 1994] 4) share:
//! Code (1), Identifier (1), Length (2), then the data.
//!
//! [RFC 1334]: https://www.rfc-editor.org/rfc/rfc1334
//! [RFC 1994]: https://www.rfc-editor.org/rfc/rfc1994

use super::AuthPacketError;

/// Octets of Code, Identifier and Length.
pub const HEADER_LEN: usize = 4;

/// Longest text this implementation puts into a packet (names, messages).
/// PAP length fields are one octet, so 255 is its natural bound; CHAP uses
/// the same so that every packet stays far below any MRU.
pub const MAX_TEXT_LEN: usize = 255;

/// A PAP or CHAP packet with its data borrowed from the information field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPacket<'a> {
    /// The packet's kind (PAP's and CHAP's values differ).
    pub code: u8,
    /// Matches requests and replies.
    pub identifier: u8,
    /// Exactly the octets the Length field covers after the header.
    pub data: &'a [u8],
}

impl<'a> RawPacket<'a> {
    /// Splits the header off `info`. Octets beyond Length are link padding
    /// and ignored ([RFC 1661] 5); a Length below the header size or beyond
    /// the received octets is [`AuthPacketError::Malformed`].
    ///
    /// [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661
    pub fn parse(info: &'a [u8]) -> Result<Self, AuthPacketError> {
        let [code, identifier, len_hi, len_lo, ..] = *info else {
            return Err(AuthPacketError::Malformed);
        };
        let length = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        let data = info
            .get(HEADER_LEN..length)
            .ok_or(AuthPacketError::Malformed)?;
        Ok(RawPacket {
            code,
            identifier,
            data,
        })
    }
}

/// Appends one packet built from `parts` (concatenated as the data) to
/// `buf`. Callers bound every part by [`MAX_TEXT_LEN`] or a fixed size, so
/// the total always fits the 16-bit Length.
pub(crate) fn write_packet(buf: &mut Vec<u8>, code: u8, identifier: u8, parts: &[&[u8]]) {
    let data_len: usize = parts.iter().map(|part| part.len()).sum();
    let length = u16::try_from(HEADER_LEN + data_len).unwrap_or(u16::MAX);
    buf.reserve(usize::from(length));
    buf.push(code);
    buf.push(identifier);
    buf.extend_from_slice(&length.to_be_bytes());
    let mut room = usize::from(length) - HEADER_LEN;
    for part in parts {
        let take = part.len().min(room);
        buf.extend_from_slice(&part[..take]);
        room -= take;
    }
}

/// Cuts `text` to at most [`MAX_TEXT_LEN`] octets without splitting a UTF-8
/// character.
pub(crate) fn bounded_text(text: &str) -> &[u8] {
    if text.len() <= MAX_TEXT_LEN {
        return text.as_bytes();
    }
    let mut end = MAX_TEXT_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text.as_bytes()[..end]
}

/// Cuts raw octets to at most [`MAX_TEXT_LEN`].
pub(crate) fn bounded_bytes(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(MAX_TEXT_LEN)]
}

/// Text the peer sent, for events and logs (never trusted as UTF-8).
pub(crate) fn peer_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_takes_exactly_the_length_field() {
        let packet = RawPacket::parse(&[2, 7, 0, 6, 0xaa, 0xbb, 0xcc, 0xdd]).unwrap();
        assert_eq!(
            packet,
            RawPacket {
                code: 2,
                identifier: 7,
                data: &[0xaa, 0xbb]
            }
        );
    }

    #[test]
    fn parse_rejects_short_and_lying_lengths() {
        assert_eq!(RawPacket::parse(&[]), Err(AuthPacketError::Malformed));
        assert_eq!(
            RawPacket::parse(&[1, 2, 0]),
            Err(AuthPacketError::Malformed)
        );
        // Length below the header.
        assert_eq!(
            RawPacket::parse(&[1, 2, 0, 3, 0]),
            Err(AuthPacketError::Malformed)
        );
        // Length beyond the octets received.
        assert_eq!(
            RawPacket::parse(&[1, 2, 0, 9, 0, 0]),
            Err(AuthPacketError::Malformed)
        );
        assert_eq!(RawPacket::parse(&[1, 2, 0, 4]).unwrap().data, &[] as &[u8]);
    }

    #[test]
    fn write_packet_sets_length() {
        let mut buf = vec![0xee];
        write_packet(&mut buf, 3, 9, &[b"ab", b"", b"c"]);
        assert_eq!(buf, [0xee, 3, 9, 0, 7, b'a', b'b', b'c']);
    }

    #[test]
    fn bounded_text_keeps_char_boundaries() {
        let long = "é".repeat(200); // 400 octets
        let cut = bounded_text(&long);
        assert_eq!(cut.len(), 254);
        assert!(std::str::from_utf8(cut).is_ok());
        assert_eq!(bounded_text("short"), b"short");
        assert_eq!(bounded_bytes(&[7u8; 300]).len(), 255);
    }
}
