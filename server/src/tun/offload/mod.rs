//! Segmentation and checksum offload between sstpd and its TUN device:
//! the packets exchanged with the kernel become 64 KiB super-packets, each
//! with the `struct virtio_net_hdr` a TUN device opened with
//! `IFF_VNET_HDR` puts before it (Linux `include/uapi/linux/virtio_net.h`,
//! `Documentation/networking/segmentation-offloads.rst`).
//!
//! Sans-IO: pure functions and a batch over byte buffers, no IO, no clock,
//! and no panic on any input (a header the packet contradicts is an
//! [`OffloadError`]).
//!
//! - [`VirtioNetHdr`]: the 10-byte header's codec and its check against the
//!   packet ([`VirtioNetHdr::layout`]).
//! - [`Segmenter`] (downstream, TUN → client): a TCPv4, TCPv6 or UDP (USO)
//!   super-packet cut into packets that fit the client's MRU, IP and
//!   transport headers and checksums rebuilt, into the caller's buffer; a
//!   partial checksum of a whole packet completed.
//! - [`Coalescer`] (upstream, client → TUN): the packets of one socket read
//!   merged per TCP (and UDP) flow into super-packets, the rest passed as
//!   they are.
//!
//! Checksums are the Internet checksum ([RFC 1071]) over the TCP ([RFC 9293])
//! and UDP ([RFC 768]) pseudo-headers of IPv4 ([RFC 791]) and IPv6
//! ([RFC 8200]).
//!
//! [RFC 1071]: https://www.rfc-editor.org/rfc/rfc1071
//! [RFC 9293]: https://www.rfc-editor.org/rfc/rfc9293
//! [RFC 768]: https://www.rfc-editor.org/rfc/rfc768
//! [RFC 791]: https://www.rfc-editor.org/rfc/rfc791
//! [RFC 8200]: https://www.rfc-editor.org/rfc/rfc8200

#![forbid(unsafe_code)]

mod checksum;
mod coalesce;
mod segment;
mod virtio;

#[cfg(test)]
mod tests;

use std::fmt;

pub use coalesce::{BatchFull, CoalesceLimits, Coalescer, Pushed, MAX_UDP_SEGMENTS};
pub use segment::{Segmenter, Split};
pub use virtio::{
    GsoLayout, IpVersion, Offload, Transport, VirtioNetHdr, VIRTIO_NET_HDR_F_DATA_VALID,
    VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN, VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_UDP,
    VIRTIO_NET_HDR_GSO_UDP_L4, VIRTIO_NET_HDR_LEN,
};

/// The largest IP packet handled, super-packets included: what IPv4's
/// total length can say (IPv6 jumbograms are not used on TUN).
pub const MAX_PACKET_LEN: usize = 65_535;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

const TCP_FLAG_FIN: u8 = 0x01;
const TCP_FLAG_PSH: u8 = 0x08;
const TCP_FLAG_ACK: u8 = 0x10;
const TCP_FLAG_CWR: u8 = 0x80;

/// Why a packet from TUN could not be handled as its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffloadError {
    /// Fewer than [`VIRTIO_NET_HDR_LEN`] bytes.
    ShortHeader {
        /// Bytes there were.
        len: usize,
    },
    /// `flags` has bits other than `NEEDS_CSUM` and `DATA_VALID`.
    UnknownFlags(u8),
    /// A `gso_type` other than none, TCPv4, TCPv6 and UDP_L4 (ECN only with TCP).
    UnsupportedGsoType(u8),
    /// The `gso_type` names another IP version or transport than the packet's.
    GsoTypeMismatch {
        /// The header's `gso_type`.
        gso_type: u8,
    },
    /// A GSO packet with `gso_size` 0.
    ZeroSegmentSize,
    /// A GSO packet whose IP header is short, disagrees with its length,
    /// or is a fragment.
    BadIpHeader,
    /// A GSO packet whose TCP or UDP header does not fit.
    BadTransportHeader,
    /// A GSO packet with no payload.
    EmptyPayload,
    /// A GSO packet whose `csum_start`/`csum_offset` is not its TCP or UDP checksum.
    ChecksumNotTransport {
        /// The header's `csum_start`.
        start: u16,
        /// The header's `csum_offset`.
        offset: u16,
    },
    /// A partial checksum whose field lies beyond the packet.
    ChecksumOutOfPacket {
        /// The header's `csum_start`.
        start: u16,
        /// The header's `csum_offset`.
        offset: u16,
    },
    /// The segment limit leaves no room for payload after the headers.
    LimitBelowHeaders {
        /// Bytes of IP and transport headers.
        header_len: usize,
        /// The segment limit.
        max: usize,
    },
    /// A UDP datagram of the super-packet is larger than the segment limit
    /// (datagrams are never cut).
    DatagramTooLarge {
        /// The datagram's IP packet length.
        len: usize,
        /// The segment limit.
        max: usize,
    },
    /// The output buffer is too small for the segments.
    OutputTooSmall {
        /// Bytes it would need at least.
        needed: usize,
    },
}

impl OffloadError {
    /// A short name, also the label of its counter.
    pub fn as_str(&self) -> &'static str {
        match self {
            OffloadError::ShortHeader { .. } => "short_header",
            OffloadError::UnknownFlags(_) => "unknown_flags",
            OffloadError::UnsupportedGsoType(_) => "unsupported_gso_type",
            OffloadError::GsoTypeMismatch { .. } => "gso_type_mismatch",
            OffloadError::ZeroSegmentSize => "zero_segment_size",
            OffloadError::BadIpHeader => "bad_ip_header",
            OffloadError::BadTransportHeader => "bad_transport_header",
            OffloadError::EmptyPayload => "empty_payload",
            OffloadError::ChecksumNotTransport { .. } => "checksum_not_transport",
            OffloadError::ChecksumOutOfPacket { .. } => "checksum_out_of_packet",
            OffloadError::LimitBelowHeaders { .. } => "limit_below_headers",
            OffloadError::DatagramTooLarge { .. } => "datagram_too_large",
            OffloadError::OutputTooSmall { .. } => "output_too_small",
        }
    }
}

impl fmt::Display for OffloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffloadError::ShortHeader { len } => {
                write!(
                    f,
                    "virtio-net header of {len} bytes, {VIRTIO_NET_HDR_LEN} needed"
                )
            }
            OffloadError::UnknownFlags(flags) => write!(f, "unknown virtio-net flags {flags:#04x}"),
            OffloadError::UnsupportedGsoType(kind) => write!(f, "unsupported gso_type {kind:#04x}"),
            OffloadError::GsoTypeMismatch { gso_type } => {
                write!(f, "gso_type {gso_type:#04x} does not match the packet")
            }
            OffloadError::ZeroSegmentSize => f.write_str("GSO packet with gso_size 0"),
            OffloadError::BadIpHeader => f.write_str("GSO packet with a bad IP header"),
            OffloadError::BadTransportHeader => {
                f.write_str("GSO packet with a bad TCP or UDP header")
            }
            OffloadError::EmptyPayload => f.write_str("GSO packet without payload"),
            OffloadError::ChecksumNotTransport { start, offset } => write!(
                f,
                "GSO checksum at {start}+{offset} is not the TCP or UDP checksum"
            ),
            OffloadError::ChecksumOutOfPacket { start, offset } => {
                write!(f, "checksum at {start}+{offset} lies beyond the packet")
            }
            OffloadError::LimitBelowHeaders { header_len, max } => write!(
                f,
                "segment limit {max} leaves no payload after {header_len} bytes of headers"
            ),
            OffloadError::DatagramTooLarge { len, max } => {
                write!(f, "UDP datagram of {len} bytes exceeds the limit {max}")
            }
            OffloadError::OutputTooSmall { needed } => {
                write!(f, "segments need an output of {needed} bytes at least")
            }
        }
    }
}

impl std::error::Error for OffloadError {}
