//! `struct virtio_net_hdr` (Linux `include/uapi/linux/virtio_net.h`,
//! virtio 1.2 section 5.1.6): the 10 bytes a TUN device opened with
//! `IFF_VNET_HDR` puts before every packet it hands over and expects before
//! every packet it is given.
//!
//! The fields are in the device's byte order, which for TUN is the host's
//! unless `TUNSETVNETBE` says otherwise: little-endian on the machines
//! sstpd runs on. A header read from the device is checked against its
//! packet before anything trusts it ([`VirtioNetHdr::layout`]).

use super::{OffloadError, IPPROTO_TCP, IPPROTO_UDP, MAX_PACKET_LEN};

/// Bytes of `struct virtio_net_hdr`.
pub const VIRTIO_NET_HDR_LEN: usize = 10;

/// `flags`: the transport checksum is partial; the sum of the bytes from
/// `csum_start` to the end goes at `csum_start + csum_offset`.
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum has been verified (the kernel's
/// `CHECKSUM_UNNECESSARY`).
pub const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;
/// `gso_type`: not a GSO packet.
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4, segmented by `gso_size` bytes of payload.
pub const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
/// `gso_type`: UDP fragmentation offload (UFO), retired by Linux; refused.
pub const VIRTIO_NET_HDR_GSO_UDP: u8 = 3;
/// `gso_type`: TCP over IPv6.
pub const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
/// `gso_type`: UDP segmentation (USO), IPv4 or IPv6: one datagram per
/// `gso_size` bytes of payload.
pub const VIRTIO_NET_HDR_GSO_UDP_L4: u8 = 5;
/// `gso_type` bit: the first TCP segment carries CWR (ECN).
pub const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// TCP's checksum field, from the start of its header.
pub(crate) const TCP_CSUM_OFFSET: usize = 16;
/// UDP's checksum field, from the start of its header.
pub(crate) const UDP_CSUM_OFFSET: usize = 6;

/// `struct virtio_net_hdr`, as decoded: no field has been checked yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtioNetHdr {
    /// `VIRTIO_NET_HDR_F_*`.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`, with [`VIRTIO_NET_HDR_GSO_ECN`] or'ed in.
    pub gso_type: u8,
    /// Bytes of IP and transport headers. Advisory only: on the forwarding
    /// path the kernel may report a whole first segment here, so
    /// [`VirtioNetHdr::layout`] takes the lengths from the headers.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where the checksummed part begins (the transport header).
    pub csum_start: u16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
}

/// IP version of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    /// [RFC 791](https://www.rfc-editor.org/rfc/rfc791).
    V4,
    /// [RFC 8200](https://www.rfc-editor.org/rfc/rfc8200).
    V6,
}

/// Transport protocol of a segmented packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// [RFC 9293](https://www.rfc-editor.org/rfc/rfc9293).
    Tcp,
    /// [RFC 768](https://www.rfc-editor.org/rfc/rfc768).
    Udp,
}

impl Transport {
    /// The IP protocol number.
    pub(crate) fn protocol(self) -> u8 {
        match self {
            Transport::Tcp => IPPROTO_TCP,
            Transport::Udp => IPPROTO_UDP,
        }
    }

    /// Where the checksum field is, from the start of the transport header.
    pub(crate) fn checksum_offset(self) -> usize {
        match self {
            Transport::Tcp => TCP_CSUM_OFFSET,
            Transport::Udp => UDP_CSUM_OFFSET,
        }
    }
}

/// What a header asks of the packet it came with, checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offload {
    /// A whole packet whose checksums are complete.
    Complete,
    /// A whole packet whose transport checksum is to be completed.
    ChecksumPartial {
        /// Where the summed part begins.
        start: usize,
        /// Where the checksum field is, from `start`.
        offset: usize,
    },
    /// A super-packet to cut into segments.
    Segment(GsoLayout),
}

/// The shape of a GSO super-packet, taken from its own headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsoLayout {
    /// IP version.
    pub ip: IpVersion,
    /// TCP or UDP.
    pub transport: Transport,
    /// Bytes of IP header (the transport header starts here).
    pub ip_header_len: usize,
    /// Bytes of IP and transport headers (the payload starts here).
    pub header_len: usize,
    /// Payload bytes per segment (`gso_size`).
    pub segment_payload_len: usize,
}

impl VirtioNetHdr {
    /// The header of a packet that asks for nothing.
    pub const NONE: VirtioNetHdr = VirtioNetHdr {
        flags: 0,
        gso_type: VIRTIO_NET_HDR_GSO_NONE,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Reads the header from the first [`VIRTIO_NET_HDR_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<VirtioNetHdr, OffloadError> {
        let Some(bytes) = bytes.get(..VIRTIO_NET_HDR_LEN) else {
            return Err(OffloadError::ShortHeader { len: bytes.len() });
        };
        let field = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        Ok(VirtioNetHdr {
            flags: bytes[0],
            gso_type: bytes[1],
            hdr_len: field(2),
            gso_size: field(4),
            csum_start: field(6),
            csum_offset: field(8),
        })
    }

    /// The header's wire form.
    pub fn encode(&self) -> [u8; VIRTIO_NET_HDR_LEN] {
        let mut out = [0u8; VIRTIO_NET_HDR_LEN];
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        out
    }

    /// Checks every field against `packet` (the IP packet after the
    /// header) and says what is to be done with it.
    ///
    /// A GSO packet must be TCP or UDP straight over IPv4 (no fragment) or
    /// IPv6 (no extension header), its IP length must be its length, its
    /// transport header must fit, and if it asks for a checksum that must
    /// be the transport checksum.
    pub fn layout(&self, packet: &[u8]) -> Result<Offload, OffloadError> {
        let known_flags = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID;
        if self.flags & !known_flags != 0 {
            return Err(OffloadError::UnknownFlags(self.flags));
        }
        let needs_csum = self.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0;
        let ecn = self.gso_type & VIRTIO_NET_HDR_GSO_ECN != 0;
        let (transport, version) = match self.gso_type & !VIRTIO_NET_HDR_GSO_ECN {
            VIRTIO_NET_HDR_GSO_NONE if !ecn => return self.whole_packet(packet, needs_csum),
            VIRTIO_NET_HDR_GSO_TCPV4 => (Transport::Tcp, Some(IpVersion::V4)),
            VIRTIO_NET_HDR_GSO_TCPV6 => (Transport::Tcp, Some(IpVersion::V6)),
            VIRTIO_NET_HDR_GSO_UDP_L4 if !ecn => (Transport::Udp, None),
            _ => return Err(OffloadError::UnsupportedGsoType(self.gso_type)),
        };
        if self.gso_size == 0 {
            return Err(OffloadError::ZeroSegmentSize);
        }
        let (ip, ip_header_len, protocol) = ip_header(packet)?;
        if version.is_some_and(|version| version != ip) {
            return Err(OffloadError::GsoTypeMismatch {
                gso_type: self.gso_type,
            });
        }
        if protocol != transport.protocol() {
            return Err(OffloadError::GsoTypeMismatch {
                gso_type: self.gso_type,
            });
        }
        let transport_header_len = match transport {
            Transport::Tcp => {
                let data_offset = packet
                    .get(ip_header_len + 12)
                    .ok_or(OffloadError::BadTransportHeader)?;
                usize::from(data_offset >> 4) * 4
            }
            Transport::Udp => 8,
        };
        let minimum = match transport {
            Transport::Tcp => 20,
            Transport::Udp => 8,
        };
        let header_len = ip_header_len + transport_header_len;
        if transport_header_len < minimum || header_len > packet.len() {
            return Err(OffloadError::BadTransportHeader);
        }
        if header_len == packet.len() {
            return Err(OffloadError::EmptyPayload);
        }
        if needs_csum
            && (usize::from(self.csum_start) != ip_header_len
                || usize::from(self.csum_offset) != transport.checksum_offset())
        {
            return Err(OffloadError::ChecksumNotTransport {
                start: self.csum_start,
                offset: self.csum_offset,
            });
        }
        Ok(Offload::Segment(GsoLayout {
            ip,
            transport,
            ip_header_len,
            header_len,
            segment_payload_len: usize::from(self.gso_size),
        }))
    }

    fn whole_packet(&self, packet: &[u8], needs_csum: bool) -> Result<Offload, OffloadError> {
        if !needs_csum {
            return Ok(Offload::Complete);
        }
        let start = usize::from(self.csum_start);
        let offset = usize::from(self.csum_offset);
        if start + offset + 2 > packet.len() {
            return Err(OffloadError::ChecksumOutOfPacket {
                start: self.csum_start,
                offset: self.csum_offset,
            });
        }
        Ok(Offload::ChecksumPartial { start, offset })
    }
}

/// The IP version, header length and protocol of a packet whose length
/// fields agree with its length and which is not a fragment.
fn ip_header(packet: &[u8]) -> Result<(IpVersion, usize, u8), OffloadError> {
    if packet.len() > MAX_PACKET_LEN {
        return Err(OffloadError::BadIpHeader);
    }
    match packet.first().map(|b| b >> 4) {
        Some(4) if packet.len() >= 20 => {
            let header_len = usize::from(packet[0] & 0x0f) * 4;
            let total_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
            if header_len < 20 || header_len > packet.len() || total_len != packet.len() {
                return Err(OffloadError::BadIpHeader);
            }
            let more_fragments = packet[6] & 0x20 != 0;
            let fragment_offset = u16::from_be_bytes([packet[6] & 0x1f, packet[7]]);
            if more_fragments || fragment_offset != 0 {
                return Err(OffloadError::BadIpHeader);
            }
            Ok((IpVersion::V4, header_len, packet[9]))
        }
        Some(6) if packet.len() >= 40 => {
            let payload_len = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
            if payload_len + 40 != packet.len() {
                return Err(OffloadError::BadIpHeader);
            }
            Ok((IpVersion::V6, 40, packet[6]))
        }
        _ => Err(OffloadError::BadIpHeader),
    }
}
