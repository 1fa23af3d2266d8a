//! The packets the load generator sends through the tunnel, and the small
//! protocol it speaks with `sstp-loadgen peer` on the server side.
//!
//! Every probe (ICMP echo data, UDP payload) starts with a 32-octet
//! [`Header`]: a magic number, a kind, a per-session flow id, a sequence
//! number and the send time. Replies carry the header back, so the round
//! trip time is `now - timestamp` and loss is `sent - received`, with no
//! per-packet state on the sending side.
//!
//! A [`Template`] is one complete IPv4 or IPv6 packet built once per
//! session; [`Template::stamp`] patches the sequence number and the
//! timestamp in place and fixes the ICMP, ICMPv6 or UDP
//! checksum incrementally ([RFC 1624]), so the data path neither
//! allocates nor re-checksums the payload.
//!
//! [RFC 1624]: https://www.rfc-editor.org/rfc/rfc1624
//! [RFC 768]: https://www.rfc-editor.org/rfc/rfc768
//! [RFC 8200]: https://www.rfc-editor.org/rfc/rfc8200

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// "SLG1": marks load generator probes and peer messages.
pub const MAGIC: u32 = 0x534c_4731;
/// Length of [`Header`] on the wire.
pub const HEADER_LEN: usize = 32;
pub const IPV4_HEADER_LEN: usize = 20;
pub const IPV6_HEADER_LEN: usize = 40;
pub const UDP_HEADER_LEN: usize = 8;
pub const ICMP_HEADER_LEN: usize = 8;
/// IPv4 + UDP headers: what the peer adds to a datagram's payload length
/// to count IP bytes, the unit the load generator counts in.
pub const IPV4_UDP_OVERHEAD: usize = IPV4_HEADER_LEN + UDP_HEADER_LEN;
/// IPv6 + UDP headers.
pub const IPV6_UDP_OVERHEAD: usize = IPV6_HEADER_LEN + UDP_HEADER_LEN;
/// Length of a [`StreamRequest`] body.
pub const STREAM_REQUEST_LEN: usize = 16;
/// Length of a [`FlowStats`] body.
pub const FLOW_STATS_LEN: usize = 32;
/// The largest IP packet an SSTP data packet carries: 4095 (12-bit SSTP
/// length, [MS-SSTP] 2.2.1) minus the SSTP and PPP headers.
pub const MAX_IP_PACKET: usize = 4095 - 4 - 4;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_UDP: u8 = 17;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const IPPROTO_ICMPV6: u8 = 58;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// What a message is. Numbers are the wire values (octet 4 of the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A probe to be answered: ICMP echo data, or a UDP datagram the peer
    /// reflects back to its sender.
    Echo = 1,
    /// The peer's reflection of an [`Kind::Echo`] (header and payload
    /// unchanged but for this octet).
    EchoReply = 2,
    /// Counted by the peer and discarded (bulk upstream).
    Discard = 3,
    /// Asks the peer to stream [`Kind::StreamData`] back to the sender
    /// (body: [`StreamRequest`]).
    StreamStart = 4,
    /// A datagram of a stream (bulk downstream).
    StreamData = 5,
    /// Ends the sender's stream early.
    StreamStop = 6,
    /// Asks the peer for its counters of this flow.
    StatsRequest = 7,
    /// The answer to [`Kind::StatsRequest`] (body: [`FlowStats`]).
    StatsReply = 8,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Echo,
            2 => Kind::EchoReply,
            3 => Kind::Discard,
            4 => Kind::StreamStart,
            5 => Kind::StreamData,
            6 => Kind::StreamStop,
            7 => Kind::StatsRequest,
            8 => Kind::StatsReply,
            _ => return None,
        })
    }
}

/// The header every probe and peer message starts with (all fields big
/// endian):
///
/// ```text
///  0..4   magic 0x534c4731 ("SLG1")
///  4      kind
///  5      flags (0)
///  6..8   header length (32; receivers skip longer headers' extra octets)
///  8..12  flow: identifies one session's traffic within a run
/// 12..16  aux: free for the kind (0)
/// 16..24  sequence number, from 0 per flow and kind
/// 24..32  timestamp: the sender's clock, nanoseconds since its run began
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub flow: u32,
    pub aux: u32,
    pub seq: u64,
    pub timestamp_ns: u64,
}

const SEQ_AT: usize = 16;
const TIMESTAMP_AT: usize = 24;

impl Header {
    pub fn new(kind: Kind, flow: u32) -> Header {
        Header {
            kind,
            flow,
            aux: 0,
            seq: 0,
            timestamp_ns: 0,
        }
    }

    /// Writes the header into the first [`HEADER_LEN`] octets of `out`.
    /// Panics if `out` is shorter (callers size their buffers).
    pub fn write(&self, out: &mut [u8]) {
        let out = &mut out[..HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        out[4] = self.kind as u8;
        out[5] = 0;
        out[6..8].copy_from_slice(&(HEADER_LEN as u16).to_be_bytes());
        out[8..12].copy_from_slice(&self.flow.to_be_bytes());
        out[12..16].copy_from_slice(&self.aux.to_be_bytes());
        out[SEQ_AT..SEQ_AT + 8].copy_from_slice(&self.seq.to_be_bytes());
        out[TIMESTAMP_AT..TIMESTAMP_AT + 8].copy_from_slice(&self.timestamp_ns.to_be_bytes());
    }

    /// Parses a header and returns it with the body after it.
    pub fn parse(data: &[u8]) -> Option<(Header, &[u8])> {
        let fixed: &[u8; HEADER_LEN] = data.get(..HEADER_LEN)?.try_into().ok()?;
        if u32::from_be_bytes(word4(fixed, 0)) != MAGIC {
            return None;
        }
        let kind = Kind::from_u8(fixed[4])?;
        let header_len = usize::from(u16::from_be_bytes([fixed[6], fixed[7]]));
        if header_len < HEADER_LEN {
            return None;
        }
        let body = data.get(header_len..)?;
        Some((
            Header {
                kind,
                flow: u32::from_be_bytes(word4(fixed, 8)),
                aux: u32::from_be_bytes(word4(fixed, 12)),
                seq: u64::from_be_bytes(word8(fixed, SEQ_AT)),
                timestamp_ns: u64::from_be_bytes(word8(fixed, TIMESTAMP_AT)),
            },
            body,
        ))
    }
}

fn word4(b: &[u8; HEADER_LEN], at: usize) -> [u8; 4] {
    [b[at], b[at + 1], b[at + 2], b[at + 3]]
}

fn word8(b: &[u8; HEADER_LEN], at: usize) -> [u8; 8] {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    w
}

/// Body of [`Kind::StreamStart`]: stream `payload_len`-octet datagrams
/// back to the sender at `pps` (0: as fast as the peer can) for
/// `duration_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamRequest {
    pub pps: u64,
    pub duration_ms: u32,
    /// UDP payload length of each datagram, header included.
    pub payload_len: u16,
    /// Destination ports the datagrams cycle through, from the
    /// requester's (0 and 1: one flow, which the peer may send in
    /// `UDP_SEGMENT` batches; more: one datagram per send).
    pub flows: u16,
}

impl StreamRequest {
    pub fn write(&self, out: &mut [u8]) {
        let out = &mut out[..STREAM_REQUEST_LEN];
        out[0..8].copy_from_slice(&self.pps.to_be_bytes());
        out[8..12].copy_from_slice(&self.duration_ms.to_be_bytes());
        out[12..14].copy_from_slice(&self.payload_len.to_be_bytes());
        out[14..16].copy_from_slice(&self.flows.to_be_bytes());
    }

    pub fn parse(body: &[u8]) -> Option<StreamRequest> {
        let b = body.get(..STREAM_REQUEST_LEN)?;
        Some(StreamRequest {
            pps: u64::from_be_bytes(b[0..8].try_into().ok()?),
            duration_ms: u32::from_be_bytes(b[8..12].try_into().ok()?),
            payload_len: u16::from_be_bytes(b[12..14].try_into().ok()?),
            flows: u16::from_be_bytes(b[14..16].try_into().ok()?),
        })
    }
}

/// Body of [`Kind::StatsReply`]: what the peer saw of one flow. Bytes are
/// IP bytes (UDP payload + 28 for IPv4), the unit the load generator
/// counts in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Datagrams received from the flow (echo, discard).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Datagrams sent to the flow (reflections, stream data).
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl FlowStats {
    pub fn write(&self, out: &mut [u8]) {
        let out = &mut out[..FLOW_STATS_LEN];
        for (i, v) in [
            self.rx_packets,
            self.rx_bytes,
            self.tx_packets,
            self.tx_bytes,
        ]
        .into_iter()
        .enumerate()
        {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
        }
    }

    pub fn parse(body: &[u8]) -> Option<FlowStats> {
        let b = body.get(..FLOW_STATS_LEN)?;
        let at = |i: usize| b[i * 8..i * 8 + 8].try_into().ok().map(u64::from_be_bytes);
        Some(FlowStats {
            rx_packets: at(0)?,
            rx_bytes: at(1)?,
            tx_packets: at(2)?,
            tx_bytes: at(3)?,
        })
    }
}

/// Fills `payload` (after the header and any body) with a fixed pattern,
/// so captures show where the padding starts and receivers can check
/// every byte ([`payload_intact`]).
pub(crate) fn fill_pattern(payload: &mut [u8]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b = i as u8;
    }
}

/// One period of the [`fill_pattern`] pattern.
const PATTERN_PERIOD: [u8; 256] = {
    let mut period = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        period[i] = i as u8;
        i += 1;
    }
    period
};

/// Whether `payload` (what follows the header of an echo, echo reply or
/// stream datagram) is exactly the pattern the sender wrote (octet i is
/// i mod 256): the load generator's byte-for-byte check of what crossed
/// the tunnel.
pub fn payload_intact(payload: &[u8]) -> bool {
    payload
        .chunks(PATTERN_PERIOD.len())
        .all(|chunk| chunk == &PATTERN_PERIOD[..chunk.len()])
}

/// One's-complement sum of 16-bit big-endian words, unfolded ([RFC 1071]).
fn sum_words(data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    let mut sum: u32 = chunks
        .by_ref()
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `data` ([RFC 1071]).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum_words(data))
}

fn ipv4_header(out: &mut [u8], total_len: usize, protocol: u8, src: Ipv4Addr, dst: Ipv4Addr) {
    let h = &mut out[..IPV4_HEADER_LEN];
    h.fill(0);
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(total_len as u16).to_be_bytes());
    h[6] = 0x40; // DF: the tunnel never fragments our probes
    h[8] = 64;
    h[9] = protocol;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Why a template could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateError {
    /// The payload cannot hold the header (and body).
    PayloadTooSmall { min: usize },
    /// The IP packet would not fit one SSTP data packet.
    PacketTooLarge { max_payload: usize },
    /// Source and destination are of different IP versions.
    MixedFamilies,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::PayloadTooSmall { min } => {
                write!(f, "payload must be at least {min} bytes")
            }
            TemplateError::PacketTooLarge { max_payload } => write!(
                f,
                "payload must be at most {max_payload} bytes (one SSTP packet)"
            ),
            TemplateError::MixedFamilies => {
                f.write_str("source and destination must both be IPv4 or both IPv6")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

/// A complete IPv4 or IPv6 packet carrying a [`Header`], built once and
/// re-stamped for every send.
#[derive(Clone, Debug)]
pub struct Template {
    packet: Vec<u8>,
    header_at: usize,
    /// ICMP and ICMPv6: where the echo sequence number lies.
    echo_seq_at: Option<usize>,
    /// Where the transport checksum lies and the sum of the words it
    /// covers (pseudo-header included) with the stamped fields zeroed.
    checksum: Option<(usize, u32)>,
    /// UDP: a computed zero is sent as all ones ([RFC 768]).
    udp: bool,
    /// UDP: where the source port lies.
    source_port_at: Option<usize>,
    /// [`Template::cycle_source_ports`]: the first port and how many.
    source_ports: Option<(u16, u16)>,
}

/// The IP header length and the sum of the pseudo-header for an upper
/// layer of `upper_len` octets ([RFC 8200] 8.1; IPv4 ICMP has none).
fn ip_header(
    packet: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    protocol_v4: u8,
    next_header_v6: u8,
) -> Result<(usize, u32), TemplateError> {
    let total = packet.len();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            ipv4_header(packet, total, protocol_v4, s, d);
            let pseudo = if protocol_v4 == IPPROTO_UDP {
                sum_words(&s.octets())
                    + sum_words(&d.octets())
                    + u32::from(IPPROTO_UDP)
                    + (total - IPV4_HEADER_LEN) as u32
            } else {
                0
            };
            Ok((IPV4_HEADER_LEN, pseudo))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let upper = total - IPV6_HEADER_LEN;
            let h = &mut packet[..IPV6_HEADER_LEN];
            h.fill(0);
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(upper as u16).to_be_bytes());
            h[6] = next_header_v6;
            h[7] = 64;
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&d.octets());
            let pseudo = sum_words(&s.octets())
                + sum_words(&d.octets())
                + upper as u32
                + u32::from(next_header_v6);
            Ok((IPV6_HEADER_LEN, pseudo))
        }
        _ => Err(TemplateError::MixedFamilies),
    }
}

fn ip_header_len(addr: IpAddr) -> usize {
    match addr {
        IpAddr::V4(_) => IPV4_HEADER_LEN,
        IpAddr::V6(_) => IPV6_HEADER_LEN,
    }
}

/// IP and UDP headers of a datagram to `addr`: what the peer adds to a
/// payload's length to count IP bytes.
pub fn udp_overhead(addr: IpAddr) -> usize {
    ip_header_len(addr) + UDP_HEADER_LEN
}

impl Template {
    /// An ICMP (IPv4) or ICMPv6 echo request from `src` to `dst` with
    /// `payload_len` octets of echo data (the header first). The echo
    /// identifier is the flow's low 16 bits; the echo sequence number
    /// follows the header's.
    pub fn icmp_echo(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        flow: u32,
        payload_len: usize,
    ) -> Result<Template, TemplateError> {
        let (src, dst) = (src.into(), dst.into());
        let ip_len = ip_header_len(src);
        check_sizes(payload_len, HEADER_LEN, ip_len + ICMP_HEADER_LEN)?;
        let mut packet = vec![0u8; ip_len + ICMP_HEADER_LEN + payload_len];
        let (icmp, pseudo) = ip_header(&mut packet, src, dst, IPPROTO_ICMP, IPPROTO_ICMPV6)?;
        packet[icmp] = if src.is_ipv4() {
            ICMP_ECHO_REQUEST
        } else {
            ICMPV6_ECHO_REQUEST
        };
        packet[icmp + 4..icmp + 6].copy_from_slice(&(flow as u16).to_be_bytes());
        let header_at = icmp + ICMP_HEADER_LEN;
        Header::new(Kind::Echo, flow).write(&mut packet[header_at..]);
        fill_pattern(&mut packet[header_at + HEADER_LEN..]);
        // Checksum and stamped fields are zero here.
        let base = pseudo + sum_words(&packet[icmp..]);
        let mut template = Template {
            packet,
            header_at,
            echo_seq_at: Some(icmp + 6),
            checksum: Some((icmp + 2, base)),
            udp: false,
            source_port_at: None,
            source_ports: None,
        };
        template.stamp(0, 0);
        Ok(template)
    }

    /// A UDP datagram from `src` to `dst` whose `payload_len`-octet payload
    /// starts with `header` and `body`. The UDP checksum is kept right
    /// incrementally, as for ICMP: mandatory over IPv6 ([RFC 8200] 8.1),
    /// optional over IPv4 ([RFC 768]) but set there by every real stack,
    /// and sstpd coalesces only datagrams whose checksum it can verify.
    pub fn udp(
        src: impl Into<SocketAddr>,
        dst: impl Into<SocketAddr>,
        header: Header,
        body: &[u8],
        payload_len: usize,
    ) -> Result<Template, TemplateError> {
        let (src, dst) = (src.into(), dst.into());
        let ip_len = ip_header_len(src.ip());
        check_sizes(
            payload_len,
            HEADER_LEN + body.len(),
            ip_len + UDP_HEADER_LEN,
        )?;
        let mut packet = vec![0u8; ip_len + UDP_HEADER_LEN + payload_len];
        let (udp, pseudo) = ip_header(&mut packet, src.ip(), dst.ip(), IPPROTO_UDP, IPPROTO_UDP)?;
        packet[udp..udp + 2].copy_from_slice(&src.port().to_be_bytes());
        packet[udp + 2..udp + 4].copy_from_slice(&dst.port().to_be_bytes());
        packet[udp + 4..udp + 6]
            .copy_from_slice(&((UDP_HEADER_LEN + payload_len) as u16).to_be_bytes());
        let header_at = udp + UDP_HEADER_LEN;
        Header {
            seq: 0,
            timestamp_ns: 0,
            ..header
        }
        .write(&mut packet[header_at..]);
        let body_at = header_at + HEADER_LEN;
        packet[body_at..body_at + body.len()].copy_from_slice(body);
        fill_pattern(&mut packet[body_at + body.len()..]);
        let checksum = Some((udp + 6, pseudo + sum_words(&packet[udp..])));
        let mut template = Template {
            packet,
            header_at,
            echo_seq_at: None,
            checksum,
            udp: true,
            source_port_at: Some(udp),
            source_ports: None,
        };
        template.stamp(header.seq, header.timestamp_ns);
        Ok(template)
    }

    /// UDP: from now on, packet `seq` leaves from source port
    /// `first + seq % count`, so consecutive datagrams belong to different
    /// flows (as the traffic of many hosts does) and nothing along the
    /// way can merge them. A count below 2, or an ICMP template, changes
    /// nothing.
    pub fn cycle_source_ports(&mut self, count: u16) {
        let (Some(at), true) = (self.source_port_at, count > 1) else {
            return;
        };
        let first = u16::from_be_bytes([self.packet[at], self.packet[at + 1]]);
        if let Some((_, base)) = &mut self.checksum {
            // The base sum leaves the port out from now on: subtract it
            // (one's complement: add its complement).
            *base += u32::from(!first);
        }
        self.source_ports = Some((first, count));
    }

    /// Sets the sequence number and timestamp and returns the packet.
    pub fn stamp(&mut self, seq: u64, timestamp_ns: u64) -> &[u8] {
        let h = self.header_at;
        self.packet[h + SEQ_AT..h + SEQ_AT + 8].copy_from_slice(&seq.to_be_bytes());
        self.packet[h + TIMESTAMP_AT..h + TIMESTAMP_AT + 8]
            .copy_from_slice(&timestamp_ns.to_be_bytes());
        let mut stamped = 0;
        if let Some(at) = self.echo_seq_at {
            let seq16 = seq as u16;
            self.packet[at..at + 2].copy_from_slice(&seq16.to_be_bytes());
            stamped += u32::from(seq16);
        }
        if let (Some(at), Some((first, count))) = (self.source_port_at, self.source_ports) {
            let port = first.wrapping_add((seq % u64::from(count)) as u16);
            self.packet[at..at + 2].copy_from_slice(&port.to_be_bytes());
            stamped += u32::from(port);
        }
        if let Some((at, base)) = self.checksum {
            // RFC 1624: add the new words to the sum of everything else.
            let sum = base + stamped + sum_words(&self.packet[h + SEQ_AT..h + TIMESTAMP_AT + 8]);
            let mut c = !fold(sum);
            if self.udp && c == 0 {
                c = 0xffff;
            }
            self.packet[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        &self.packet
    }

    /// The packet as last stamped.
    pub fn packet(&self) -> &[u8] {
        &self.packet
    }

    /// IP packet length.
    pub fn len(&self) -> usize {
        self.packet.len()
    }

    /// Never true: a template holds at least the headers.
    pub fn is_empty(&self) -> bool {
        false
    }
}

fn check_sizes(payload_len: usize, min: usize, overhead: usize) -> Result<(), TemplateError> {
    if payload_len < min {
        return Err(TemplateError::PayloadTooSmall { min });
    }
    if payload_len + overhead > MAX_IP_PACKET {
        return Err(TemplateError::PacketTooLarge {
            max_payload: MAX_IP_PACKET - overhead,
        });
    }
    Ok(())
}

/// How a received probe travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// An ICMP or ICMPv6 echo reply.
    IcmpEchoReply,
    /// A UDP datagram from this address.
    Udp { from: SocketAddr },
}

/// A load generator message found in an IP packet from the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received<'a> {
    pub header: Header,
    /// What follows the header in the payload.
    pub body: &'a [u8],
    pub transport: Transport,
}

/// Finds a load generator message in an IPv4 or IPv6 packet: an ICMP or
/// ICMPv6 echo reply or a UDP datagram whose payload starts with a
/// [`Header`]. Anything else (fragments, IPv6 extension headers) is
/// `None`. Borrows from `packet`.
pub fn parse_ip(packet: &[u8]) -> Option<Received<'_>> {
    let (src, protocol, l4) = match *packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
            if ihl < IPV4_HEADER_LEN || total < ihl || total > packet.len() {
                return None;
            }
            // Fragment offset or More Fragments set: not ours to reassemble.
            if u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0 {
                return None;
            }
            let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
            (IpAddr::V4(src), packet[9], &packet[ihl..total])
        }
        6 => {
            let fixed = packet.get(..IPV6_HEADER_LEN)?;
            let payload = usize::from(u16::from_be_bytes([fixed[4], fixed[5]]));
            let l4 = packet.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload)?;
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&fixed[8..24]).ok()?);
            (IpAddr::V6(src), fixed[6], l4)
        }
        _ => return None,
    };
    match (src, protocol) {
        (IpAddr::V4(_), IPPROTO_ICMP) | (IpAddr::V6(_), IPPROTO_ICMPV6) => {
            let reply = if src.is_ipv4() {
                ICMP_ECHO_REPLY
            } else {
                ICMPV6_ECHO_REPLY
            };
            if *l4.first()? != reply {
                return None;
            }
            let (header, body) = Header::parse(l4.get(ICMP_HEADER_LEN..)?)?;
            Some(Received {
                header,
                body,
                transport: Transport::IcmpEchoReply,
            })
        }
        (_, IPPROTO_UDP) => {
            let port = u16::from_be_bytes([*l4.first()?, *l4.get(1)?]);
            let (header, body) = Header::parse(l4.get(UDP_HEADER_LEN..)?)?;
            Some(Received {
                header,
                body,
                transport: Transport::Udp {
                    from: SocketAddr::new(src, port),
                },
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV4;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 7);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

    #[test]
    fn payloads_are_checked_byte_for_byte() {
        let t = Template::icmp_echo(SRC, DST, 3, 1372).unwrap();
        let reply = reply_of(&t.packet);
        let received = parse_ip(&reply).unwrap();
        assert_eq!(received.body.len(), 1372 - HEADER_LEN);
        assert!(payload_intact(received.body));
        assert!(payload_intact(&[]));
        for at in [0, 255, 256, 1339] {
            let mut altered = received.body.to_vec();
            altered[at] ^= 0x40;
            assert!(!payload_intact(&altered), "byte {at} altered");
        }
        // Two packets' payloads swapped at a period boundary still differ.
        assert!(!payload_intact(&received.body[1..]));
    }

    /// `packet` (an ICMP echo request) as the kernel answers it.
    fn reply_of(packet: &[u8]) -> Vec<u8> {
        let mut reply = packet.to_vec();
        reply[IPV4_HEADER_LEN] = ICMP_ECHO_REPLY;
        reply
    }

    #[test]
    fn header_round_trips_and_has_the_documented_layout() {
        let h = Header {
            kind: Kind::StreamData,
            flow: 0x0102_0304,
            aux: 9,
            seq: 0x1122_3344_5566_7788,
            timestamp_ns: 42,
        };
        let mut buf = [0u8; HEADER_LEN + 3];
        h.write(&mut buf);
        buf[HEADER_LEN..].copy_from_slice(b"abc");
        assert_eq!(
            buf[..HEADER_LEN],
            [
                0x53, 0x4c, 0x47, 0x31, 5, 0, 0, 32, 1, 2, 3, 4, 0, 0, 0, 9, 0x11, 0x22, 0x33,
                0x44, 0x55, 0x66, 0x77, 0x88, 0, 0, 0, 0, 0, 0, 0, 42
            ]
        );
        assert_eq!(Header::parse(&buf), Some((h, &b"abc"[..])));
        // Wrong magic, unknown kind, short, header length below 32.
        let mut bad = buf;
        bad[0] = 0;
        assert_eq!(Header::parse(&bad), None);
        let mut bad = buf;
        bad[4] = 99;
        assert_eq!(Header::parse(&bad), None);
        assert_eq!(Header::parse(&buf[..31]), None);
        let mut bad = buf;
        bad[7] = 31;
        assert_eq!(Header::parse(&bad), None);
        // A longer header skips its extension.
        let mut long = buf;
        long[7] = 34;
        assert_eq!(Header::parse(&long).unwrap().1, b"c");
    }

    #[test]
    fn stamped_icmp_echo_has_valid_checksums_for_every_sequence() {
        let mut t = Template::icmp_echo(SRC, DST, 0xabcd_1234, 56).unwrap();
        assert_eq!(t.len(), 20 + 8 + 56);
        for (seq, ts) in [(0, 0), (1, 7), (0xffff, u64::MAX), (0x1_0001, 123_456_789)] {
            let p = t.stamp(seq, ts).to_vec();
            assert_eq!(checksum(&p[..20]), 0, "IP header checksum");
            assert_eq!(checksum(&p[20..]), 0, "ICMP checksum at seq {seq}");
            assert_eq!(p[20], 8);
            assert_eq!(&p[24..26], &[0x12, 0x34], "identifier = low flow bits");
            assert_eq!(&p[26..28], &(seq as u16).to_be_bytes());
            let (h, body) = Header::parse(&p[28..]).unwrap();
            assert_eq!(
                (h.kind, h.flow, h.seq, h.timestamp_ns),
                (Kind::Echo, 0xabcd_1234, seq, ts)
            );
            assert_eq!(body.len(), 56 - 32);
            assert_eq!(body[..3], [0, 1, 2]);
        }
    }

    #[test]
    fn odd_icmp_payloads_still_checksum() {
        let mut t = Template::icmp_echo(SRC, DST, 1, 33).unwrap();
        let p = t.stamp(5, 5).to_vec();
        assert_eq!(checksum(&p[20..]), 0);
    }

    /// What the kernel sends back for an echo request: same data, type 0,
    /// addresses swapped.
    fn as_reply(request: &[u8]) -> Vec<u8> {
        let mut p = request.to_vec();
        p[12..16].copy_from_slice(&request[16..20]);
        p[16..20].copy_from_slice(&request[12..16]);
        p[20] = 0;
        p[22..24].fill(0);
        let c = checksum(&p[20..]);
        p[22..24].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn echo_replies_and_udp_datagrams_parse() {
        let mut t = Template::icmp_echo(SRC, DST, 77, 40).unwrap();
        let reply = as_reply(t.stamp(3, 99));
        let r = parse_ip(&reply).unwrap();
        assert_eq!(r.transport, Transport::IcmpEchoReply);
        assert_eq!(
            (r.header.flow, r.header.seq, r.header.timestamp_ns),
            (77, 3, 99)
        );
        // The request itself is not a reply.
        assert_eq!(parse_ip(t.packet()), None);

        let src = SocketAddrV4::new(SRC, 40000);
        let dst = SocketAddrV4::new(DST, 9000);
        let request = StreamRequest {
            pps: 1000,
            duration_ms: 5000,
            payload_len: 1200,
            flows: 3,
        };
        let mut body = [0u8; STREAM_REQUEST_LEN];
        request.write(&mut body);
        let mut u = Template::udp(src, dst, Header::new(Kind::StreamStart, 5), &body, 64).unwrap();
        let p = u.stamp(1, 2).to_vec();
        assert_eq!(p.len(), 28 + 64);
        assert_eq!(checksum(&p[..20]), 0);
        assert_eq!(&p[20..26], &[0x9c, 0x40, 0x23, 0x28, 0, 72]);
        // The UDP checksum is set over IPv4 too, as real stacks set it
        // (sstpd only coalesces datagrams whose checksum it can verify).
        assert_ne!(&p[26..28], &[0, 0]);
        assert!(ipv4_udp_checksum_verifies(&p));
        let r = parse_ip(&p).unwrap();
        assert_eq!(r.transport, Transport::Udp { from: src.into() });
        assert_eq!(r.header.kind, Kind::StreamStart);
        assert_eq!(StreamRequest::parse(r.body), Some(request));
    }

    #[test]
    fn parse_ip_refuses_fragments_truncation_and_other_protocols() {
        let mut t = Template::udp(
            SocketAddrV4::new(SRC, 1),
            SocketAddrV4::new(DST, 2),
            Header::new(Kind::Discard, 1),
            &[],
            40,
        )
        .unwrap();
        let p = t.stamp(0, 0).to_vec();
        assert!(parse_ip(&p).is_some());
        let mut frag = p.clone();
        frag[6] = 0x20; // More Fragments
        assert_eq!(parse_ip(&frag), None);
        assert_eq!(
            parse_ip(&p[..p.len() - 1]),
            None,
            "shorter than total length"
        );
        let mut tcp = p.clone();
        tcp[9] = 6;
        assert_eq!(parse_ip(&tcp), None);
        let mut v6 = p.clone();
        v6[0] = 0x60;
        assert_eq!(parse_ip(&v6), None);
        for n in 0..p.len() {
            let _ = parse_ip(&p[..n]);
        }
        assert_eq!(parse_ip(&[]), None);
    }

    #[test]
    fn sizes_are_bounded_by_the_header_and_one_sstp_packet() {
        assert_eq!(
            Template::icmp_echo(SRC, DST, 1, 31).unwrap_err(),
            TemplateError::PayloadTooSmall { min: 32 }
        );
        assert!(Template::icmp_echo(SRC, DST, 1, MAX_IP_PACKET - 28).is_ok());
        assert_eq!(
            Template::icmp_echo(SRC, DST, 1, MAX_IP_PACKET - 27).unwrap_err(),
            TemplateError::PacketTooLarge {
                max_payload: MAX_IP_PACKET - 28
            }
        );
        let a = SocketAddrV4::new(SRC, 1);
        assert_eq!(
            Template::udp(a, a, Header::new(Kind::StreamStart, 1), &[0; 16], 47).unwrap_err(),
            TemplateError::PayloadTooSmall { min: 48 }
        );
    }

    /// Verifies an IPv4 packet's UDP checksum (the sum over the
    /// pseudo-header and the datagram folds to all ones, RFC 768).
    fn ipv4_udp_checksum_verifies(p: &[u8]) -> bool {
        let upper = &p[IPV4_HEADER_LEN..];
        let sum = sum_words(&p[12..20]) + upper.len() as u32 + 17 + sum_words(upper);
        fold(sum) == 0xffff
    }

    /// Verifies an IPv6 packet's ICMPv6 or UDP checksum (the sum over the
    /// pseudo-header and the upper layer folds to all ones).
    fn ipv6_checksum_verifies(p: &[u8]) -> bool {
        let upper = &p[IPV6_HEADER_LEN..];
        let sum = sum_words(&p[8..40]) + upper.len() as u32 + u32::from(p[6]) + sum_words(upper);
        fold(sum) == 0xffff
    }

    /// Cycling source ports: every datagram's port follows its sequence
    /// number, and its checksum stays right, over IPv4 and IPv6.
    #[test]
    fn cycled_source_ports_keep_the_checksum_right() {
        let v6: (Ipv6Addr, Ipv6Addr) = ("fd99::7".parse().unwrap(), "fd99::1".parse().unwrap());
        let pairs: [(SocketAddr, SocketAddr); 2] = [
            (
                SocketAddrV4::new(SRC, 65530).into(),
                SocketAddrV4::new(DST, 9000).into(),
            ),
            (
                SocketAddr::new(v6.0.into(), 65530),
                SocketAddr::new(v6.1.into(), 9000),
            ),
        ];
        for (src, dst) in pairs {
            let mut t = Template::udp(src, dst, Header::new(Kind::Discard, 4), &[], 64).unwrap();
            t.cycle_source_ports(10);
            let at = if src.is_ipv4() { 20 } else { 40 };
            for seq in [0u64, 1, 5, 9, 10, 11, 12_345] {
                let p = t.stamp(seq, seq * 3).to_vec();
                let port = 65530u16.wrapping_add((seq % 10) as u16);
                assert_eq!(&p[at..at + 2], &port.to_be_bytes(), "seq {seq}");
                let verifies = if src.is_ipv4() {
                    ipv4_udp_checksum_verifies(&p)
                } else {
                    ipv6_checksum_verifies(&p)
                };
                assert!(verifies, "{src} seq {seq}");
            }
        }
    }

    #[test]
    fn ipv6_echo_and_udp_templates_checksum_and_parse_back() {
        let src: Ipv6Addr = "fd99:0:0:7::42".parse().unwrap();
        let dst: Ipv6Addr = "fd99::1".parse().unwrap();
        let mut echo = Template::icmp_echo(src, dst, 0x0102_0304, 57).unwrap();
        assert_eq!(echo.len(), 40 + 8 + 57);
        let mut udp = Template::udp(
            SocketAddr::new(src.into(), 40000),
            SocketAddr::new(dst.into(), 9000),
            Header::new(Kind::Echo, 9),
            &[],
            100,
        )
        .unwrap();
        for (seq, ts) in [(0, 0), (1, 7), (0xffff, u64::MAX), (0x1_0001, 123_456_789)] {
            let p = echo.stamp(seq, ts).to_vec();
            assert_eq!((p[0] >> 4, p[6], p[40]), (6, 58, 128));
            assert!(ipv6_checksum_verifies(&p), "ICMPv6 at seq {seq}");
            assert_eq!(&p[46..48], &(seq as u16).to_be_bytes());
            // The reply the kernel would send parses as ours.
            let mut reply = p.clone();
            reply[8..24].copy_from_slice(&dst.octets());
            reply[24..40].copy_from_slice(&src.octets());
            reply[40] = 129;
            let r = parse_ip(&reply).unwrap();
            assert_eq!(r.transport, Transport::IcmpEchoReply);
            assert_eq!((r.header.seq, r.header.timestamp_ns), (seq, ts));

            let p = udp.stamp(seq, ts).to_vec();
            assert_eq!((p[6], p.len()), (17, 40 + 8 + 100));
            assert!(ipv6_checksum_verifies(&p), "UDP at seq {seq}");
            assert_ne!(&p[46..48], &[0, 0], "UDP over IPv6 always has a checksum");
            let r = parse_ip(&p).unwrap();
            assert_eq!(
                r.transport,
                Transport::Udp {
                    from: SocketAddr::new(src.into(), 40000)
                }
            );
            assert_eq!((r.header.kind, r.header.seq), (Kind::Echo, seq));
        }
        assert_eq!(
            Template::icmp_echo(src, SRC, 1, 56).unwrap_err(),
            TemplateError::MixedFamilies
        );
        // Truncated IPv6 packets are refused without panicking.
        let p = echo.packet().to_vec();
        for cut in 0..p.len() {
            let _ = parse_ip(&p[..cut]);
        }
    }

    #[test]
    fn stats_bodies_round_trip() {
        let s = FlowStats {
            rx_packets: 1,
            rx_bytes: 2,
            tx_packets: 3,
            tx_bytes: u64::MAX,
        };
        let mut b = [0u8; FLOW_STATS_LEN];
        s.write(&mut b);
        assert_eq!(FlowStats::parse(&b), Some(s));
        assert_eq!(FlowStats::parse(&b[..31]), None);
        assert_eq!(StreamRequest::parse(&b[..15]), None);
    }
}
