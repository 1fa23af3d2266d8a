//! Segmentation (downstream, TUN → client): a GSO super-packet from the
//! kernel cut into packets that each fit the client's MRU, the way the
//! kernel's own software GSO does (`tcp_gso_segment`, `__udp_gso_segment`).
//!
//! Every segment gets a copy of the super-packet's headers, then:
//! IPv4 ([RFC 791]) total length, identification (the first segment's plus
//! its index) and header checksum; IPv6 ([RFC 8200]) payload length; TCP
//! ([RFC 9293]) sequence number (advanced by the payload before it), FIN
//! and PSH only on the last segment, CWR only on the first; UDP ([RFC 768])
//! length; the TCP or UDP checksum over its pseudo-header.
//!
//! TCP is cut finer than `gso_size` when the client's limit asks for it
//! (sequence numbers carry no message boundaries); a UDP datagram is never
//! cut, so a USO super-packet whose datagrams do not fit is an error.
//!
//! [RFC 791]: https://www.rfc-editor.org/rfc/rfc791
//! [RFC 8200]: https://www.rfc-editor.org/rfc/rfc8200
//! [RFC 9293]: https://www.rfc-editor.org/rfc/rfc9293
//! [RFC 768]: https://www.rfc-editor.org/rfc/rfc768

use std::ops::Range;

use super::checksum;
use super::virtio::{GsoLayout, IpVersion, Offload, Transport, VirtioNetHdr};
use super::{OffloadError, TCP_FLAG_CWR, TCP_FLAG_FIN, TCP_FLAG_PSH};

/// How a packet read from TUN came out of [`Segmenter::split`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The packet stays whole (its checksum completed in place if the
    /// header asked for it); nothing was written to the output.
    Whole,
    /// The packet was cut into this many segments, written to the output
    /// at the spans given.
    Segments(usize),
}

/// Cuts GSO super-packets into segments of at most `max_packet_len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segmenter {
    /// Largest IP packet a segment may be (the client's MRU).
    pub max_packet_len: usize,
    /// Bytes left free before every segment in the output, for the
    /// caller's own framing (SSTP and PPP headers).
    pub headroom: usize,
}

/// The headers of one segment at most: an IPv4 header with options and a
/// TCP header with options (an IPv6 segment's are at most 100 bytes).
const MAX_HEADERS_LEN: usize = 60 + 60;

impl Segmenter {
    /// Handles one packet read from TUN: `header` is its virtio-net
    /// header, `packet` the IP packet after it.
    ///
    /// Without GSO the packet stays whole ([`Split::Whole`]); a partial
    /// checksum is completed in place. A GSO packet is written to `out` as
    /// segments, each after `headroom` free bytes, and `spans` (cleared
    /// first) gets where each segment begins and ends in `out`. Nothing is
    /// allocated besides `spans` growing to its high-water mark.
    pub fn split(
        &self,
        header: &VirtioNetHdr,
        packet: &mut [u8],
        out: &mut [u8],
        spans: &mut Vec<Range<usize>>,
    ) -> Result<Split, OffloadError> {
        spans.clear();
        let mut end_of_previous = 0;
        let mut too_small = None;
        let split = self.for_each_segment(header, packet, |headers, payload| {
            if too_small.is_some() {
                return;
            }
            let start = end_of_previous + self.headroom;
            let end = start + headers.len() + payload.len();
            let Some(segment) = out.get_mut(start..end) else {
                too_small = Some(end);
                return;
            };
            segment[..headers.len()].copy_from_slice(headers);
            segment[headers.len()..].copy_from_slice(payload);
            spans.push(start..end);
            end_of_previous = end;
        })?;
        if let Some(needed) = too_small {
            spans.clear();
            return Err(OffloadError::OutputTooSmall { needed });
        }
        Ok(split)
    }

    /// Like [`Segmenter::split`], but hands each segment to `each` in two
    /// pieces instead of writing it out: its headers (rebuilt for it, in a
    /// buffer of the segmenter's, checksums complete) and its payload
    /// (borrowed from `packet`). The segment is the two back to back, so a
    /// caller that frames it copies each byte once, straight to where it
    /// goes (`headroom` is not used). `each` is not called for a packet
    /// that stays whole.
    pub fn for_each_segment(
        &self,
        header: &VirtioNetHdr,
        packet: &mut [u8],
        mut each: impl FnMut(&[u8], &[u8]),
    ) -> Result<Split, OffloadError> {
        match header.layout(packet)? {
            Offload::Complete => Ok(Split::Whole),
            Offload::ChecksumPartial { start, offset } => {
                complete_checksum(packet, start, offset);
                Ok(Split::Whole)
            }
            Offload::Segment(layout) => self.segment(&layout, packet, &mut each),
        }
    }

    /// How many packets [`Segmenter::split`] would hand over for this
    /// packet (1 for a packet that stays whole), without cutting it: what
    /// a caller that must drop it counts.
    pub fn count(&self, header: &VirtioNetHdr, packet: &[u8]) -> Result<usize, OffloadError> {
        match header.layout(packet)? {
            Offload::Complete | Offload::ChecksumPartial { .. } => Ok(1),
            Offload::Segment(layout) => {
                let per_segment = self.payload_per_segment(&layout)?;
                Ok((packet.len() - layout.header_len).div_ceil(per_segment))
            }
        }
    }

    /// Payload bytes per segment: `gso_size`, or less for TCP when the
    /// client's limit asks for it.
    fn payload_per_segment(&self, layout: &GsoLayout) -> Result<usize, OffloadError> {
        let header_len = layout.header_len;
        let payload_per_segment = match layout.transport {
            Transport::Tcp => layout
                .segment_payload_len
                .min(self.max_packet_len.saturating_sub(header_len)),
            Transport::Udp if header_len + layout.segment_payload_len > self.max_packet_len => {
                return Err(OffloadError::DatagramTooLarge {
                    len: header_len + layout.segment_payload_len,
                    max: self.max_packet_len,
                });
            }
            Transport::Udp => layout.segment_payload_len,
        };
        if payload_per_segment == 0 {
            return Err(OffloadError::LimitBelowHeaders {
                header_len,
                max: self.max_packet_len,
            });
        }
        Ok(payload_per_segment)
    }

    fn segment(
        &self,
        layout: &GsoLayout,
        packet: &[u8],
        each: &mut impl FnMut(&[u8], &[u8]),
    ) -> Result<Split, OffloadError> {
        let header_len = layout.header_len;
        let ip_header_len = layout.ip_header_len;
        let payload_per_segment = self.payload_per_segment(layout)?;
        let mut buffer = [0u8; MAX_HEADERS_LEN];
        let Some(headers) = buffer.get_mut(..header_len) else {
            // Not reached: the layout's headers fit by their own limits.
            return Err(OffloadError::OutputTooSmall { needed: header_len });
        };
        let (source, destination) = addresses(layout.ip, packet);
        let protocol = layout.transport.protocol();
        let checksum_at = ip_header_len + layout.transport.checksum_offset();
        let first_id = u16::from_be_bytes([packet[4], packet[5]]);
        let tcp = &packet[ip_header_len..];
        let (first_seq, flags) = match layout.transport {
            Transport::Tcp => (
                u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
                tcp[13],
            ),
            Transport::Udp => (0, 0),
        };
        let payload = &packet[header_len..];
        let count = payload.len().div_ceil(payload_per_segment);

        // Copied once: every field a segment changes is written for each.
        headers.copy_from_slice(&packet[..header_len]);
        for (index, data) in payload.chunks(payload_per_segment).enumerate() {
            let len = header_len + data.len();
            match layout.ip {
                IpVersion::V4 => {
                    headers[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                    let id = first_id.wrapping_add(index as u16);
                    headers[4..6].copy_from_slice(&id.to_be_bytes());
                    headers[10..12].fill(0);
                    let sum = checksum::finish(checksum::add(0, &headers[..ip_header_len]));
                    headers[10..12].copy_from_slice(&sum.to_be_bytes());
                }
                IpVersion::V6 => {
                    headers[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
                }
            }
            let transport = &mut headers[ip_header_len..];
            match layout.transport {
                Transport::Tcp => {
                    let offset = (index * payload_per_segment) as u32;
                    transport[4..8].copy_from_slice(&first_seq.wrapping_add(offset).to_be_bytes());
                    let mut segment_flags = flags;
                    if index + 1 < count {
                        segment_flags &= !(TCP_FLAG_FIN | TCP_FLAG_PSH);
                    }
                    if index > 0 {
                        segment_flags &= !TCP_FLAG_CWR;
                    }
                    transport[13] = segment_flags;
                }
                Transport::Udp => {
                    transport[4..6].copy_from_slice(&((len - ip_header_len) as u16).to_be_bytes());
                }
            }
            headers[checksum_at..checksum_at + 2].fill(0);
            // The transport header's length is even (TCP's a multiple of
            // 4, UDP's 8), so the payload's words line up after it.
            let sum = checksum::add(
                checksum::add(
                    checksum::pseudo_header(source, destination, protocol, len - ip_header_len),
                    &headers[ip_header_len..],
                ),
                data,
            );
            let value = match (layout.transport, checksum::finish(sum)) {
                (Transport::Udp, 0) => 0xffff,
                (_, value) => value,
            };
            headers[checksum_at..checksum_at + 2].copy_from_slice(&value.to_be_bytes());
            each(headers, data);
        }
        Ok(Split::Segments(count))
    }
}

/// Source and destination addresses of an IP packet whose header was checked.
pub(crate) fn addresses(ip: IpVersion, packet: &[u8]) -> (&[u8], &[u8]) {
    match ip {
        IpVersion::V4 => (&packet[12..16], &packet[16..20]),
        IpVersion::V6 => (&packet[8..24], &packet[24..40]),
    }
}

/// Completes a partial checksum (`VIRTIO_NET_HDR_F_NEEDS_CSUM` without
/// GSO): the field holds the pseudo-header's sum, and gets the complement
/// of the sum of everything from `start` on. UDP's (its field 6 bytes in)
/// is never 0, which would mean "no checksum" ([RFC 768]).
///
/// [RFC 768]: https://www.rfc-editor.org/rfc/rfc768
fn complete_checksum(packet: &mut [u8], start: usize, offset: usize) {
    let at = start + offset;
    let value = checksum::finish(checksum::add(0, &packet[start..]));
    let value = if value == 0 && offset == 6 {
        0xffff
    } else {
        value
    };
    packet[at..at + 2].copy_from_slice(&value.to_be_bytes());
}
