//! PPP frames ([RFC 1661] 2, [RFC 1662] 3): the optional HDLC address and
//! control octets, the Protocol field and the Information field.
//!
//! SSTP carries de-framed PPP frames (no flags, no FCS), so a frame here is
//! `[FF 03] protocol information`. Parsing borrows from the input; emitting
//! writes into a caller-provided buffer.
//!
//! [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661
//! [RFC 1662]: https://www.rfc-editor.org/rfc/rfc1662

use std::fmt;

/// HDLC All-Stations address ([RFC 1662] 3.1).
pub const ADDRESS: u8 = 0xff;
/// HDLC Unnumbered Information control octet ([RFC 1662] 3.1).
pub const CONTROL: u8 = 0x03;

/// Internet Protocol version 4 ([RFC 1332] 3).
pub const PROTO_IPV4: u16 = 0x0021;
/// Internet Protocol version 6 ([RFC 5072] 2).
pub const PROTO_IPV6: u16 = 0x0057;
/// IP Control Protocol ([RFC 1332] 2).
pub const PROTO_IPCP: u16 = 0x8021;
/// IPv6 Control Protocol ([RFC 5072] 3).
pub const PROTO_IPV6CP: u16 = 0x8057;
/// Compression Control Protocol ([RFC 1962]); Windows probes it for MPPE.
pub const PROTO_CCP: u16 = 0x80fd;
/// Link Control Protocol ([RFC 1661] 5).
pub const PROTO_LCP: u16 = 0xc021;
/// Password Authentication Protocol ([RFC 1334] 2).
pub const PROTO_PAP: u16 = crate::proto::auth::PROTO_PAP;
/// Challenge-Handshake Authentication Protocol ([RFC 1994] 4).
pub const PROTO_CHAP: u16 = crate::proto::auth::PROTO_CHAP;
/// Extensible Authentication Protocol ([RFC 3748] 3).
pub const PROTO_EAP: u16 = crate::proto::auth::PROTO_EAP;

/// The Maximum Receive Unit assumed until another is negotiated: the
/// largest Information field (padding included) an implementation must
/// accept ([RFC 1661] 2, 6.1).
pub const DEFAULT_MRU: u16 = 1500;

/// The longest PPP header this module writes: address, control, 2-octet
/// protocol.
pub const MAX_HEADER_LEN: usize = 4;

/// A parsed frame, borrowing its Information field from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The PPP protocol number ([RFC 1661] 2).
    pub protocol: u16,
    /// The Information field (and any padding).
    pub information: &'a [u8],
    /// `true` when the frame started with `FF 03`.
    pub has_address_control: bool,
    /// `true` when the Protocol field was one octet (PFC, [RFC 1661] 6.5).
    pub compressed_protocol: bool,
}

/// Why a frame could not be parsed. Such frames are dropped and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameError {
    /// Too short to hold a Protocol field.
    Truncated,
    /// The address octet `FF` was not followed by the control octet `03`
    /// ([RFC 1662] 3.1).
    BadControl,
    /// The Protocol field does not follow the ISO 3309 extension rule:
    /// the last octet must be odd, the first even ([RFC 1661] 2).
    InvalidProtocol,
}

impl FrameError {
    /// Short snake_case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            FrameError::Truncated => "truncated",
            FrameError::BadControl => "bad_control",
            FrameError::InvalidProtocol => "invalid_protocol",
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for FrameError {}

/// Parses a de-framed PPP frame: with or without `FF 03` ([RFC 1661] 6.6,
/// ACFC) and with a one- or two-octet Protocol field ([RFC 1661] 6.5, PFC).
///
/// Both compressions are accepted whether or not they were negotiated, as
/// most stacks do; the caller counts the unnegotiated cases.
pub fn parse_frame(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    let (has_address_control, rest) = match bytes {
        [ADDRESS, CONTROL, rest @ ..] => (true, rest),
        // 0xff cannot start a Protocol field in practice (0x00ff is
        // reserved), so an FF without 03 is a broken header.
        [ADDRESS, ..] => return Err(FrameError::BadControl),
        rest => (false, rest),
    };
    match rest {
        [] => Err(FrameError::Truncated),
        [low, information @ ..] if low & 1 == 1 => Ok(Frame {
            protocol: u16::from(*low),
            information,
            has_address_control,
            compressed_protocol: true,
        }),
        [_] => Err(FrameError::Truncated),
        [high, low, information @ ..] => {
            if low & 1 == 0 {
                return Err(FrameError::InvalidProtocol);
            }
            Ok(Frame {
                protocol: u16::from_be_bytes([*high, *low]),
                information,
                has_address_control,
                compressed_protocol: false,
            })
        }
    }
}

/// How this end writes frame headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderFormat {
    /// Omit `FF 03` (only when the peer agreed to ACFC, and never for LCP:
    /// [RFC 1661] 6.6).
    pub omit_address_control: bool,
    /// Use one-octet Protocol fields where possible (only when the peer
    /// agreed to PFC: [RFC 1661] 6.5).
    pub compress_protocol: bool,
}

impl HeaderFormat {
    /// The uncompressed form: `FF 03` and a two-octet protocol.
    pub const FULL: HeaderFormat = HeaderFormat {
        omit_address_control: false,
        compress_protocol: false,
    };
}

/// Appends the PPP header for `protocol` to `out`.
///
/// LCP is always sent with `FF 03` ([RFC 1661] 6.6); a protocol number is
/// only compressed when its high octet is zero ([RFC 1661] 6.5).
///
/// `protocol` is never 0x00ff, which IANA reserves ("compression
/// inefficient"): compressed and without Address and Control it would be a
/// lone 0xff that reads back as the Address field ([RFC 1662] 3.2). The link
/// only writes the protocols it runs, so this is checked in debug builds
/// only, off the data path.
///
/// Inline: it runs for every packet sent, and the compiler stopped inlining
/// it into `Session::send_ip` after unrelated changes elsewhere in the
/// crate (the gate's `data` part, +4.2%).
#[inline]
pub fn write_header(protocol: u16, format: HeaderFormat, out: &mut Vec<u8>) {
    debug_assert_ne!(protocol, 0x00ff, "reserved PPP protocol number");
    if !format.omit_address_control || protocol == PROTO_LCP {
        out.extend_from_slice(&[ADDRESS, CONTROL]);
    }
    let [high, low] = protocol.to_be_bytes();
    if format.compress_protocol && high == 0 {
        out.push(low);
    } else {
        out.extend_from_slice(&[high, low]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_full_header() {
        let bytes = [0xff, 0x03, 0xc0, 0x21, 0x01, 0x02];
        let frame = parse_frame(&bytes).unwrap();
        assert_eq!(
            frame,
            Frame {
                protocol: PROTO_LCP,
                information: &[0x01, 0x02],
                has_address_control: true,
                compressed_protocol: false,
            }
        );
    }

    #[test]
    fn parses_without_address_control() {
        let bytes = [0x80, 0x21, 0x01];
        let frame = parse_frame(&bytes).unwrap();
        assert_eq!(frame.protocol, PROTO_IPCP);
        assert_eq!(frame.information, &[0x01]);
        assert!(!frame.has_address_control);
        assert!(!frame.compressed_protocol);
    }

    #[test]
    fn parses_compressed_protocol_with_and_without_address_control() {
        let with = [0xff, 0x03, 0x21, 0x45, 0x00];
        let frame = parse_frame(&with).unwrap();
        assert_eq!(frame.protocol, PROTO_IPV4);
        assert_eq!(frame.information, &[0x45, 0x00]);
        assert!(frame.has_address_control);
        assert!(frame.compressed_protocol);

        let without = [0x57, 0x60];
        let frame = parse_frame(&without).unwrap();
        assert_eq!(frame.protocol, PROTO_IPV6);
        assert_eq!(frame.information, &[0x60]);
        assert!(!frame.has_address_control);
        assert!(frame.compressed_protocol);
    }

    #[test]
    fn empty_information_is_a_valid_frame() {
        let frame = parse_frame(&[0x00, 0x21]).unwrap();
        assert_eq!(frame.protocol, PROTO_IPV4);
        assert!(frame.information.is_empty());
    }

    #[test]
    fn rejects_broken_headers() {
        assert_eq!(parse_frame(&[]), Err(FrameError::Truncated));
        assert_eq!(parse_frame(&[0xff, 0x03]), Err(FrameError::Truncated));
        assert_eq!(parse_frame(&[0xff, 0x03, 0xc0]), Err(FrameError::Truncated));
        assert_eq!(parse_frame(&[0xc0]), Err(FrameError::Truncated));
        assert_eq!(parse_frame(&[0xff]), Err(FrameError::BadControl));
        assert_eq!(
            parse_frame(&[0xff, 0x13, 0xc0, 0x21]),
            Err(FrameError::BadControl)
        );
        // Second octet even: not a valid two-octet protocol.
        assert_eq!(
            parse_frame(&[0xc0, 0x20, 0x01]),
            Err(FrameError::InvalidProtocol)
        );
        assert_eq!(
            parse_frame(&[0xff, 0x03, 0x00, 0x00]),
            Err(FrameError::InvalidProtocol)
        );
    }

    #[test]
    fn writes_headers() {
        let mut out = Vec::new();
        write_header(PROTO_IPV4, HeaderFormat::FULL, &mut out);
        assert_eq!(out, [0xff, 0x03, 0x00, 0x21]);

        let compressed = HeaderFormat {
            omit_address_control: true,
            compress_protocol: true,
        };
        out.clear();
        write_header(PROTO_IPV4, compressed, &mut out);
        assert_eq!(out, [0x21]);
        out.clear();
        write_header(PROTO_IPCP, compressed, &mut out);
        assert_eq!(out, [0x80, 0x21], "high octet non-zero: never compressed");
        out.clear();
        write_header(PROTO_LCP, compressed, &mut out);
        assert_eq!(out, [0xff, 0x03, 0xc0, 0x21], "LCP always has FF 03");
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_frame(&bytes);
        }

        #[test]
        fn header_round_trips(
            high in (0u8..=0xff).prop_map(|h| h & 0xfe),
            // 0x00ff is reserved and never written (see write_header).
            low in (0u8..=0xff).prop_map(|l| l | 1).prop_filter("0x00ff", |l| *l != 0xff),
            omit in any::<bool>(),
            compress in any::<bool>(),
            info in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let protocol = u16::from_be_bytes([high, low]);
            let format = HeaderFormat { omit_address_control: omit, compress_protocol: compress };
            let mut out = Vec::new();
            write_header(protocol, format, &mut out);
            out.extend_from_slice(&info);
            let frame = parse_frame(&out).unwrap();
            prop_assert_eq!(frame.protocol, protocol);
            prop_assert_eq!(frame.information, &info[..]);
        }
    }
}
