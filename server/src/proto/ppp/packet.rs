//! Control packets shared by LCP and the NCPs ([RFC 1661] 5) and the
//! Configuration Option list they carry ([RFC 1661] 6).
//!
//! [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661

use std::fmt;

/// Configure-Request ([RFC 1661] 5.1).
pub const CONFIGURE_REQUEST: u8 = 1;
/// Configure-Ack ([RFC 1661] 5.2).
pub const CONFIGURE_ACK: u8 = 2;
/// Configure-Nak ([RFC 1661] 5.3).
pub const CONFIGURE_NAK: u8 = 3;
/// Configure-Reject ([RFC 1661] 5.4).
pub const CONFIGURE_REJECT: u8 = 4;
/// Terminate-Request ([RFC 1661] 5.5).
pub const TERMINATE_REQUEST: u8 = 5;
/// Terminate-Ack ([RFC 1661] 5.5).
pub const TERMINATE_ACK: u8 = 6;
/// Code-Reject ([RFC 1661] 5.6).
pub const CODE_REJECT: u8 = 7;

/// Code, Identifier and Length: the header of every control packet.
pub const HEADER_LEN: usize = 4;

/// A control packet, borrowing its Data field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlPacket<'a> {
    /// The Code ([RFC 1661] 5): [`CONFIGURE_REQUEST`] to [`CODE_REJECT`], or
    /// one of a protocol's own (LCP's 8 to 11).
    pub code: u8,
    /// Matches replies to requests ([RFC 1661] 5).
    pub identifier: u8,
    /// The Data field: exactly `Length - 4` octets; padding beyond Length is
    /// not included ([RFC 1661] 5).
    pub data: &'a [u8],
}

/// Why a control packet or its option list was refused. Such packets are
/// silently discarded without affecting the automaton ([RFC 1661] 5, 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PacketError {
    /// Shorter than the 4-octet header.
    Truncated,
    /// The Length field is below 4 or beyond the Information field.
    BadLength,
    /// An option's Length is below 2 or runs past the end of the list.
    BadOption,
}

impl PacketError {
    /// Short snake_case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            PacketError::Truncated => "truncated",
            PacketError::BadLength => "bad_length",
            PacketError::BadOption => "bad_option",
        }
    }
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for PacketError {}

/// Parses the Information field of an LCP, IPCP or IPv6CP frame
/// ([RFC 1661] 5): octets past the Length field are padding and ignored.
pub fn parse_control(information: &[u8]) -> Result<ControlPacket<'_>, PacketError> {
    let [code, identifier, len_hi, len_lo, ..] = *information else {
        return Err(PacketError::Truncated);
    };
    let length = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if length < HEADER_LEN || length > information.len() {
        return Err(PacketError::BadLength);
    }
    Ok(ControlPacket {
        code,
        identifier,
        data: information
            .get(HEADER_LEN..length)
            .ok_or(PacketError::BadLength)?,
    })
}

/// Appends a control packet (header and the concatenation of `parts`) to
/// `out`. The caller keeps the total within 65535 octets.
pub fn write_control(code: u8, identifier: u8, parts: &[&[u8]], out: &mut Vec<u8>) {
    let data_len: usize = parts.iter().map(|p| p.len()).sum();
    let length = u16::try_from(HEADER_LEN + data_len).unwrap_or(u16::MAX);
    out.push(code);
    out.push(identifier);
    out.extend_from_slice(&length.to_be_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// One Configuration Option ([RFC 1661] 6): Type, Length, Data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigOption<'a> {
    /// The Type octet.
    pub kind: u8,
    /// The Data field (Length - 2 octets).
    pub data: &'a [u8],
    /// The whole option as received, for Configure-Reject and for matching.
    pub raw: &'a [u8],
}

/// A validated Configuration Option list. Iterating cannot fail.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    rest: &'a [u8],
}

/// Validates an option list ([RFC 1661] 6): every Length at least 2 and
/// none running past the end. A bad list discards the whole packet.
pub fn parse_options(list: &[u8]) -> Result<Options<'_>, PacketError> {
    let mut rest = list;
    while !rest.is_empty() {
        let (_, tail) = split_option(rest)?;
        rest = tail;
    }
    Ok(Options { rest: list })
}

fn split_option(bytes: &[u8]) -> Result<(ConfigOption<'_>, &[u8]), PacketError> {
    let [kind, len, ..] = *bytes else {
        return Err(PacketError::BadOption);
    };
    let len = usize::from(len);
    if len < 2 || len > bytes.len() {
        return Err(PacketError::BadOption);
    }
    let (raw, tail) = bytes.split_at(len);
    Ok((
        ConfigOption {
            kind,
            data: raw.get(2..).unwrap_or_default(),
            raw,
        },
        tail,
    ))
}

impl<'a> Iterator for Options<'a> {
    type Item = ConfigOption<'a>;

    fn next(&mut self) -> Option<ConfigOption<'a>> {
        // The list was validated by `parse_options`; a failure here cannot
        // happen and simply ends the iteration.
        let (option, tail) = split_option(self.rest).ok()?;
        self.rest = tail;
        Some(option)
    }
}

/// Appends one option (Type, Length, Data) to `out`. `data` is at most 253
/// octets for every option this crate writes.
pub fn write_option(kind: u8, data: &[u8], out: &mut Vec<u8>) {
    let len = u8::try_from(data.len() + 2).unwrap_or(u8::MAX);
    out.push(kind);
    out.push(len);
    out.extend_from_slice(data.get(..usize::from(len) - 2).unwrap_or(data));
}

/// The option's data as a big-endian `u16` when it is exactly 2 octets.
pub fn data_u16(data: &[u8]) -> Option<u16> {
    <[u8; 2]>::try_from(data).ok().map(u16::from_be_bytes)
}

/// The option's data as a big-endian `u32` when it is exactly 4 octets.
pub fn data_u32(data: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(data).ok().map(u32::from_be_bytes)
}

/// The option's data as a big-endian `u64` when it is exactly 8 octets.
pub fn data_u64(data: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(data).ok().map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_control_packet_and_ignores_padding() {
        let info = [0x01, 0x07, 0x00, 0x08, 0x05, 0x06, 0xaa, 0xbb, 0x00, 0x00];
        let packet = parse_control(&info).unwrap();
        assert_eq!(packet.code, CONFIGURE_REQUEST);
        assert_eq!(packet.identifier, 7);
        assert_eq!(packet.data, &[0x05, 0x06, 0xaa, 0xbb]);
    }

    #[test]
    fn rejects_bad_control_lengths() {
        assert_eq!(
            parse_control(&[0x01, 0x01, 0x00]),
            Err(PacketError::Truncated)
        );
        assert_eq!(
            parse_control(&[0x01, 0x01, 0x00, 0x03]),
            Err(PacketError::BadLength)
        );
        assert_eq!(
            parse_control(&[0x01, 0x01, 0x00, 0x05]),
            Err(PacketError::BadLength)
        );
        assert_eq!(
            parse_control(&[0x01, 0x01, 0x00, 0x04]).unwrap().data,
            &[] as &[u8]
        );
    }

    #[test]
    fn iterates_options() {
        let list = [0x01, 0x04, 0x0f, 0xfb, 0x07, 0x02, 0x0d, 0x03, 0x06];
        let options: Vec<_> = parse_options(&list).unwrap().collect();
        assert_eq!(options.len(), 3);
        assert_eq!(options[0].kind, 1);
        assert_eq!(options[0].data, &[0x0f, 0xfb]);
        assert_eq!(options[0].raw, &[0x01, 0x04, 0x0f, 0xfb]);
        assert_eq!(options[1].kind, 7);
        assert!(options[1].data.is_empty());
        assert_eq!(options[2].raw, &[0x0d, 0x03, 0x06]);
    }

    #[test]
    fn rejects_bad_option_lists() {
        assert_eq!(parse_options(&[0x01]).unwrap_err(), PacketError::BadOption);
        assert_eq!(
            parse_options(&[0x01, 0x01]).unwrap_err(),
            PacketError::BadOption
        );
        assert_eq!(
            parse_options(&[0x01, 0x00]).unwrap_err(),
            PacketError::BadOption
        );
        assert_eq!(
            parse_options(&[0x01, 0x05, 0x00, 0x00]).unwrap_err(),
            PacketError::BadOption
        );
        assert_eq!(parse_options(&[]).unwrap().count(), 0);
    }

    #[test]
    fn writes_packets_and_options() {
        let mut options = Vec::new();
        write_option(1, &4091u16.to_be_bytes(), &mut options);
        write_option(7, &[], &mut options);
        assert_eq!(options, [0x01, 0x04, 0x0f, 0xfb, 0x07, 0x02]);
        let mut out = Vec::new();
        write_control(CONFIGURE_REQUEST, 9, &[&options], &mut out);
        assert_eq!(
            out,
            [0x01, 0x09, 0x00, 0x0a, 0x01, 0x04, 0x0f, 0xfb, 0x07, 0x02]
        );
    }

    #[test]
    fn fixed_width_data() {
        assert_eq!(data_u16(&[0x05, 0xdc]), Some(1500));
        assert_eq!(data_u16(&[0x05]), None);
        assert_eq!(data_u32(&[0, 0, 1, 0]), Some(256));
        assert_eq!(data_u32(&[0, 0, 1]), None);
        assert_eq!(data_u64(&[0, 0, 0, 0, 0, 0, 0, 1]), Some(1));
        assert_eq!(data_u64(&[0; 9]), None);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(packet) = parse_control(&bytes) {
                prop_assert!(packet.data.len() + HEADER_LEN <= bytes.len());
            }
            if let Ok(options) = parse_options(&bytes) {
                let total: usize = options.map(|o| o.raw.len()).sum();
                prop_assert_eq!(total, bytes.len());
            }
        }

        #[test]
        fn options_round_trip(
            items in proptest::collection::vec(
                (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..12)), 0..8)
        ) {
            let mut list = Vec::new();
            for (kind, data) in &items {
                write_option(*kind, data, &mut list);
            }
            let parsed: Vec<_> = parse_options(&list).unwrap().map(|o| (o.kind, o.data.to_vec())).collect();
            prop_assert_eq!(parsed, items);
        }
    }
}
