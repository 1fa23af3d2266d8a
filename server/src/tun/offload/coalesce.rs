//! Coalescing (upstream, client → TUN): the packets one socket read of a
//! session yields, merged per flow into GSO super-packets that the kernel
//! takes in one TUN write each, as its own GRO does for a NIC
//! (`tcp_gro_receive`, `udp_gro_receive`; wireguard-go's
//! `tun/offload_linux.go` applies the same rules to a TUN device).
//!
//! A TCP segment ([RFC 9293]) joins the flow's open super-packet when its
//! sequence number follows it, its flags are ACK or ACK+PSH and the open
//! one has no PSH yet, its TCP header equals the first's but for sequence
//! number, PSH and checksum (same acknowledgment, window and options), its
//! IP header agrees (IPv4 [RFC 791]: TOS, DF, TTL, no options, no fragment,
//! the identification one more than the last's unless DF; IPv6 [RFC 8200]:
//! traffic class, flow label, hop limit, no extension header), its payload
//! is no larger than the first's and the one before was not smaller, and
//! its checksum is right (the kernel trusts the merged packet's checksum,
//! so a corrupt segment must not be merged into it). UDP datagrams ([RFC 768])
//! likewise, when the kernel takes USO, at most [`MAX_UDP_SEGMENTS`] a
//! super-packet. Anything else of the flow closes its open super-packet,
//! so a flow's packets stay in order; packets of no flow pass as they are.
//!
//! A merged packet leaves with `VIRTIO_NET_HDR_F_NEEDS_CSUM`, its
//! `gso_type`, `hdr_len`, `gso_size` and `csum_start`/`csum_offset` naming
//! the transport checksum, which holds the pseudo-header's folded sum (the
//! kernel's `CHECKSUM_PARTIAL`); its IP lengths (and UDP length) are the
//! whole super-packet's. A packet left alone leaves with a zeroed header
//! and its own checksums.
//!
//! [RFC 9293]: https://www.rfc-editor.org/rfc/rfc9293
//! [RFC 791]: https://www.rfc-editor.org/rfc/rfc791
//! [RFC 8200]: https://www.rfc-editor.org/rfc/rfc8200
//! [RFC 768]: https://www.rfc-editor.org/rfc/rfc768

use std::fmt;

use super::checksum;
use super::segment::addresses;
use super::virtio::{
    IpVersion, Transport, VirtioNetHdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_UDP_L4, VIRTIO_NET_HDR_LEN,
};
use super::{IPPROTO_TCP, IPPROTO_UDP, MAX_PACKET_LEN, TCP_FLAG_ACK, TCP_FLAG_PSH};

/// Datagrams in one UDP super-packet at most (the kernel's
/// `UDP_MAX_SEGMENTS`).
pub const MAX_UDP_SEGMENTS: usize = 64;

/// Bounds of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoalesceLimits {
    /// Packets (merged or not) a batch holds before [`Coalescer::push`]
    /// refuses a packet that would need a new one.
    pub max_packets: usize,
    /// Flows with an open super-packet at a time; a new flow beyond them
    /// closes the oldest entry's.
    pub max_flows: usize,
    /// Whether UDP is merged too (the kernel took `TUN_F_USO4|TUN_F_USO6`).
    pub udp: bool,
}

impl Default for CoalesceLimits {
    fn default() -> Self {
        CoalesceLimits {
            max_packets: 64,
            max_flows: 16,
            udp: false,
        }
    }
}

/// What [`Coalescer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Appended to an open super-packet of its flow.
    Merged,
    /// Opened a new packet of its flow that later ones may join.
    Started,
    /// Passes as it is.
    Single,
}

/// The batch has no room for another packet: write it out, clear it, and
/// push the packet again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFull;

impl fmt::Display for BatchFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the coalescing batch is full")
    }
}

impl std::error::Error for BatchFull {}

/// A batch of packets for TUN, merged where they qualify.
///
/// Buffers are kept across batches ([`Coalescer::clear`]), so the steady
/// state allocates nothing; each holds at most [`VIRTIO_NET_HDR_LEN`] +
/// 65,535 bytes.
#[derive(Debug)]
pub struct Coalescer {
    limits: CoalesceLimits,
    /// The first `used` hold this batch: a virtio-net header, then an IP packet.
    slots: Vec<Vec<u8>>,
    used: usize,
    flows: Vec<OpenFlow>,
    next_evicted: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    ip: IpVersion,
    protocol: u8,
    addresses: [u8; 32],
    ports: [u8; 4],
}

/// A flow's super-packet that may still grow.
#[derive(Debug, Clone, Copy)]
struct OpenFlow {
    key: FlowKey,
    slot: usize,
    transport: Transport,
    ip_header_len: usize,
    header_len: usize,
    segment_payload_len: usize,
    segments: usize,
    next_seq: u32,
    next_ip_id: u16,
    closed: bool,
}

/// A packet that may join or open a super-packet.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    key: FlowKey,
    transport: Transport,
    ip_header_len: usize,
    header_len: usize,
    payload_len: usize,
    seq: u32,
    push: bool,
    ip_id: u16,
}

enum Parsed {
    /// Not TCP or UDP, or too short to name its flow.
    NoFlow,
    /// Of a flow, but not to be merged.
    Ineligible(FlowKey),
    Candidate(Candidate),
}

impl Coalescer {
    /// An empty batch.
    pub fn new(limits: CoalesceLimits) -> Self {
        Coalescer {
            limits,
            slots: Vec::new(),
            used: 0,
            flows: Vec::with_capacity(limits.max_flows),
            next_evicted: 0,
        }
    }

    /// Adds one IP packet to the batch (copied). Never fails for a packet
    /// that merges; [`BatchFull`] when it needs a packet of its own and
    /// [`CoalesceLimits::max_packets`] are taken.
    pub fn push(&mut self, packet: &[u8]) -> Result<Pushed, BatchFull> {
        match parse(packet, self.limits.udp) {
            Parsed::NoFlow => {
                self.store(packet)?;
                Ok(Pushed::Single)
            }
            Parsed::Ineligible(key) => {
                self.store(packet)?;
                if let Some(index) = self.flow_of(&key) {
                    self.flows.swap_remove(index);
                }
                Ok(Pushed::Single)
            }
            Parsed::Candidate(candidate) => {
                let existing = self.flow_of(&candidate.key);
                if let Some(index) = existing {
                    if self.can_merge(&self.flows[index], &candidate, packet) {
                        self.merge(index, &candidate, packet);
                        return Ok(Pushed::Merged);
                    }
                }
                let slot = self.store(packet)?;
                let flow = OpenFlow {
                    key: candidate.key,
                    slot,
                    transport: candidate.transport,
                    ip_header_len: candidate.ip_header_len,
                    header_len: candidate.header_len,
                    segment_payload_len: candidate.payload_len,
                    segments: 1,
                    next_seq: candidate.seq.wrapping_add(candidate.payload_len as u32),
                    next_ip_id: candidate.ip_id.wrapping_add(1),
                    closed: candidate.push,
                };
                if let Some(index) = existing {
                    self.flows[index] = flow;
                } else if self.flows.len() < self.limits.max_flows {
                    self.flows.push(flow);
                } else if self.limits.max_flows > 0 {
                    self.flows[self.next_evicted % self.limits.max_flows] = flow;
                    self.next_evicted = self.next_evicted.wrapping_add(1);
                }
                Ok(Pushed::Started)
            }
        }
    }

    /// The batch's packets in order, each a [`VIRTIO_NET_HDR_LEN`]-byte
    /// virtio-net header followed by the IP packet: one TUN write each.
    pub fn packets(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.slots[..self.used].iter().map(Vec::as_slice)
    }

    /// Packets in the batch.
    pub fn len(&self) -> usize {
        self.used
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Hands each of the batch's packets (header, then IP packet) to
    /// `take` in order, then empties the batch. `take` may swap the buffer
    /// for another (an empty one, to be reused for a later batch), which
    /// moves the packet out without a copy.
    pub fn drain_buffers(&mut self, mut take: impl FnMut(&mut Vec<u8>)) {
        for slot in &mut self.slots[..self.used] {
            take(slot);
        }
        self.clear();
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.used = 0;
        self.flows.clear();
    }

    fn flow_of(&self, key: &FlowKey) -> Option<usize> {
        self.flows.iter().position(|flow| flow.key == *key)
    }

    /// Copies `packet` into a new slot behind a zeroed header.
    fn store(&mut self, packet: &[u8]) -> Result<usize, BatchFull> {
        if self.used >= self.limits.max_packets {
            return Err(BatchFull);
        }
        if self.used == self.slots.len() {
            self.slots.push(Vec::new());
        }
        let slot = &mut self.slots[self.used];
        slot.clear();
        slot.extend_from_slice(&VirtioNetHdr::NONE.encode());
        slot.extend_from_slice(packet);
        self.used += 1;
        Ok(self.used - 1)
    }

    fn can_merge(&self, flow: &OpenFlow, candidate: &Candidate, packet: &[u8]) -> bool {
        let head = &self.slots[flow.slot][VIRTIO_NET_HDR_LEN..];
        if flow.closed
            || flow.transport != candidate.transport
            || flow.header_len != candidate.header_len
            || candidate.payload_len > flow.segment_payload_len
            || head.len() + candidate.payload_len > MAX_PACKET_LEN
        {
            return false;
        }
        let ip_fields_agree = match flow.key.ip {
            IpVersion::V4 => {
                let dont_fragment = packet[6] & 0x40 != 0;
                head[1] == packet[1]
                    && head[6..8] == packet[6..8]
                    && head[8] == packet[8]
                    && (dont_fragment || candidate.ip_id == flow.next_ip_id)
            }
            IpVersion::V6 => head[..4] == packet[..4] && head[7] == packet[7],
        };
        if !ip_fields_agree {
            return false;
        }
        match flow.transport {
            Transport::Tcp => {
                let (first, next) = (
                    &head[flow.ip_header_len..flow.header_len],
                    &packet[flow.ip_header_len..flow.header_len],
                );
                candidate.seq == flow.next_seq
                    && first[8..13] == next[8..13]
                    && first[14..16] == next[14..16]
                    && first[18..] == next[18..]
            }
            Transport::Udp => flow.segments < MAX_UDP_SEGMENTS,
        }
    }

    fn merge(&mut self, index: usize, candidate: &Candidate, packet: &[u8]) {
        let flow = &mut self.flows[index];
        let slot = &mut self.slots[flow.slot];
        slot.extend_from_slice(&packet[candidate.header_len..]);
        flow.segments += 1;
        flow.next_seq = candidate.seq.wrapping_add(candidate.payload_len as u32);
        flow.next_ip_id = candidate.ip_id.wrapping_add(1);
        if candidate.payload_len < flow.segment_payload_len {
            flow.closed = true;
        }
        if candidate.push {
            slot[VIRTIO_NET_HDR_LEN + flow.ip_header_len + 13] |= TCP_FLAG_PSH;
            flow.closed = true;
        }
        write_super_packet_headers(flow, slot);
    }
}

/// Makes a merged slot's headers describe the whole super-packet.
fn write_super_packet_headers(flow: &OpenFlow, slot: &mut [u8]) {
    let ip = flow.key.ip;
    let ip_header_len = flow.ip_header_len;
    let (header, packet) = slot.split_at_mut(VIRTIO_NET_HDR_LEN);
    let len = packet.len();
    match ip {
        IpVersion::V4 => {
            packet[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            packet[10..12].fill(0);
            let sum = checksum::finish(checksum::add(0, &packet[..ip_header_len]));
            packet[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        IpVersion::V6 => packet[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes()),
    }
    if flow.transport == Transport::Udp {
        packet[ip_header_len + 4..ip_header_len + 6]
            .copy_from_slice(&((len - ip_header_len) as u16).to_be_bytes());
    }
    let (source, destination) = addresses(ip, packet);
    let protocol = flow.transport.protocol();
    let partial = checksum::fold(checksum::pseudo_header(
        source,
        destination,
        protocol,
        len - ip_header_len,
    ));
    let checksum_at = ip_header_len + flow.transport.checksum_offset();
    packet[checksum_at..checksum_at + 2].copy_from_slice(&partial.to_be_bytes());
    let gso_type = match (flow.transport, ip) {
        (Transport::Tcp, IpVersion::V4) => VIRTIO_NET_HDR_GSO_TCPV4,
        (Transport::Tcp, IpVersion::V6) => VIRTIO_NET_HDR_GSO_TCPV6,
        (Transport::Udp, _) => VIRTIO_NET_HDR_GSO_UDP_L4,
    };
    let virtio = VirtioNetHdr {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
        gso_type,
        hdr_len: flow.header_len as u16,
        gso_size: flow.segment_payload_len as u16,
        csum_start: ip_header_len as u16,
        csum_offset: flow.transport.checksum_offset() as u16,
    };
    header.copy_from_slice(&virtio.encode());
}

/// Sorts a packet into no flow, a flow's packet to pass alone, or a
/// candidate for merging (whose checksum has been verified).
fn parse(packet: &[u8], udp: bool) -> Parsed {
    let len = packet.len();
    let (ip, ip_header_len, protocol, plain) = match packet.first().map(|b| b >> 4) {
        Some(4) if len >= 20 => {
            let fragment = packet[6] & 0x3f != 0 || packet[7] != 0;
            if fragment {
                return Parsed::NoFlow;
            }
            let header_len = usize::from(packet[0] & 0x0f) * 4;
            let total_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
            (
                IpVersion::V4,
                header_len,
                packet[9],
                header_len == 20 && total_len == len,
            )
        }
        Some(6) if len >= 40 => {
            let payload_len = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
            (IpVersion::V6, 40, packet[6], payload_len + 40 == len)
        }
        _ => return Parsed::NoFlow,
    };
    let transport = match protocol {
        IPPROTO_TCP => Transport::Tcp,
        IPPROTO_UDP => Transport::Udp,
        _ => return Parsed::NoFlow,
    };
    if ip_header_len < 20 || len < ip_header_len + 4 {
        return Parsed::NoFlow;
    }
    let (source, destination) = addresses(ip, packet);
    let mut key = FlowKey {
        ip,
        protocol,
        addresses: [0; 32],
        ports: [0; 4],
    };
    key.addresses[..source.len()].copy_from_slice(source);
    key.addresses[16..16 + destination.len()].copy_from_slice(destination);
    key.ports
        .copy_from_slice(&packet[ip_header_len..ip_header_len + 4]);
    if !plain || len > MAX_PACKET_LEN || (transport == Transport::Udp && !udp) {
        return Parsed::Ineligible(key);
    }
    let segment = &packet[ip_header_len..];
    let (header_len, seq, push) = match transport {
        Transport::Tcp => {
            if segment.len() < 20 {
                return Parsed::Ineligible(key);
            }
            let tcp_header_len = usize::from(segment[12] >> 4) * 4;
            let flags = segment[13];
            if tcp_header_len < 20
                || tcp_header_len > segment.len()
                || (flags != TCP_FLAG_ACK && flags != TCP_FLAG_ACK | TCP_FLAG_PSH)
            {
                return Parsed::Ineligible(key);
            }
            let seq = u32::from_be_bytes([segment[4], segment[5], segment[6], segment[7]]);
            (
                ip_header_len + tcp_header_len,
                seq,
                flags & TCP_FLAG_PSH != 0,
            )
        }
        Transport::Udp => {
            if segment.len() < 8 {
                return Parsed::Ineligible(key);
            }
            let udp_len = usize::from(u16::from_be_bytes([segment[4], segment[5]]));
            let no_checksum = segment[6..8] == [0, 0];
            if udp_len != segment.len() || no_checksum {
                return Parsed::Ineligible(key);
            }
            (ip_header_len + 8, 0, false)
        }
    };
    if header_len == len {
        return Parsed::Ineligible(key);
    }
    let sum = checksum::add(
        checksum::pseudo_header(source, destination, protocol, segment.len()),
        segment,
    );
    if !checksum::verifies(sum) {
        return Parsed::Ineligible(key);
    }
    Parsed::Candidate(Candidate {
        key,
        transport,
        ip_header_len,
        header_len,
        payload_len: len - header_len,
        seq,
        push,
        ip_id: u16::from_be_bytes([packet[4], packet[5]]),
    })
}
