//! One TLS record per SSTP packet.
//!
//! [MS-SSTP] 2.2.1 lets SSTP packets share TLS records, but sstp-client
//! (1.0.18) reads a packet with two `SSL_read` calls (the 4-octet header,
//! then the rest) and then waits for its socket to become readable again:
//! a second packet of the same record stays in OpenSSL's buffer until
//! more bytes arrive. Observed against sstpd: the first LCP
//! Configure-Request, written together with the Call Connect Acknowledge,
//! waited for its 3-second retransmission, and a Call Disconnect written
//! together with an LCP Terminate-Ack waited for the next packet. Windows'
//! own server writes one packet per record, so this is what every client
//! copes with.
//!
//! [`record_units`] splits what a session transmits (the HTTP response
//! head, then whole SSTP packets, as
//! [`crate::proto::session::Session::poll_transmit`] produces them) into
//! the pieces the owner encrypts as one TLS record each.

use super::wire::{HEADER_LEN, VERSION};

/// The end of an HTTP head.
const HTTP_HEAD_END: &[u8] = b"\r\n\r\n";
/// How a response head starts.
const HTTP_RESPONSE_START: &[u8] = b"HTTP/";
/// The 12 length bits of an SSTP packet header ([MS-SSTP] 2.2.1).
const LENGTH_MASK: u16 = 0x0fff;

/// Splits `buf` into units to send as one TLS record each: an HTTP head
/// (through its blank line), then one SSTP packet per unit. Anything that
/// does not parse as either (never produced by the session) is yielded
/// whole, so the units always concatenate to `buf`.
pub fn record_units(buf: &[u8]) -> RecordUnits<'_> {
    RecordUnits { rest: buf }
}

/// Iterator of [`record_units`].
#[derive(Clone, Debug)]
pub struct RecordUnits<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RecordUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let len = sstp_packet_len(self.rest)
            .or_else(|| http_head_len(self.rest))
            .unwrap_or(self.rest.len());
        let (unit, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(unit)
    }
}

/// The length of the SSTP packet at the start of `buf`, if it is whole.
fn sstp_packet_len(buf: &[u8]) -> Option<usize> {
    let header = buf.get(..HEADER_LEN)?;
    if header[0] != VERSION {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]) & LENGTH_MASK);
    (len >= HEADER_LEN && len <= buf.len()).then_some(len)
}

/// The length of the HTTP response head at the start of `buf`, blank line
/// included.
fn http_head_len(buf: &[u8]) -> Option<usize> {
    if !buf.starts_with(HTTP_RESPONSE_START) {
        return None;
    }
    buf.windows(HTTP_HEAD_END.len())
        .position(|window| window == HTTP_HEAD_END)
        .map(|end| end + HTTP_HEAD_END.len())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n";
    /// An SSTP Echo Request (control packet, no attributes).
    const ECHO_REQUEST: [u8; 8] = [0x10, 0x01, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00];
    /// A data packet with an LCP Terminate-Request.
    const LCP: [u8; 12] = [
        0x10, 0x00, 0x00, 0x0c, 0xff, 0x03, 0xc0, 0x21, 0x05, 0x01, 0x00, 0x04,
    ];

    fn units(buf: &[u8]) -> Vec<&[u8]> {
        record_units(buf).collect()
    }

    #[test]
    fn head_then_one_unit_per_packet() {
        let mut buf = HEAD.to_vec();
        buf.extend_from_slice(&ECHO_REQUEST);
        buf.extend_from_slice(&LCP);
        buf.extend_from_slice(&ECHO_REQUEST);
        assert_eq!(
            units(&buf),
            [HEAD, &ECHO_REQUEST[..], &LCP[..], &ECHO_REQUEST[..]]
        );
        assert_eq!(units(&LCP), [&LCP[..]]);
        assert!(units(&[]).is_empty());
    }

    #[test]
    fn reserved_length_bits_are_ignored() {
        let mut packet = LCP;
        packet[2] |= 0xf0;
        let mut buf = packet.to_vec();
        buf.extend_from_slice(&ECHO_REQUEST);
        assert_eq!(units(&buf), [&packet[..], &ECHO_REQUEST[..]]);
    }

    #[test]
    fn what_does_not_parse_stays_whole() {
        // A truncated packet, a length below the header, another version,
        // an unterminated head: each is one unit with what follows.
        let truncated = &LCP[..LCP.len() - 1];
        assert_eq!(units(truncated), [truncated]);
        let mut short = ECHO_REQUEST;
        short[3] = 0x02;
        assert_eq!(units(&short), [&short[..]]);
        let mut other_version = LCP;
        other_version[0] = 0x11;
        assert_eq!(units(&other_version), [&other_version[..]]);
        let unterminated = &HEAD[..HEAD.len() - 2];
        assert_eq!(units(unterminated), [unterminated]);
        let mut buf = ECHO_REQUEST.to_vec();
        buf.extend_from_slice(truncated);
        assert_eq!(units(&buf), [&ECHO_REQUEST[..], truncated]);
    }

    proptest! {
        #[test]
        fn units_are_nonempty_and_concatenate_to_the_input(
            buf in proptest::collection::vec(any::<u8>(), 0..600)
        ) {
            let units = units(&buf);
            prop_assert!(units.iter().all(|u| !u.is_empty()));
            prop_assert_eq!(units.concat(), buf);
        }

        #[test]
        fn packets_come_back_one_by_one(
            lens in proptest::collection::vec(4usize..300, 0..12)
        ) {
            let packets: Vec<Vec<u8>> = lens
                .iter()
                .map(|&len| {
                    let mut p = vec![0xab; len];
                    p[..4].copy_from_slice(&[VERSION, 0, (len >> 8) as u8, len as u8]);
                    p
                })
                .collect();
            let buf = packets.concat();
            let units: Vec<Vec<u8>> = record_units(&buf).map(<[u8]>::to_vec).collect();
            prop_assert_eq!(units, packets);
        }
    }
}
