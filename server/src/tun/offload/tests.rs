//! Packets built and checked with etherparse, an implementation of the
//! headers and checksums independent of this module's.

use std::ops::Range;

use etherparse::{
    IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, NetHeaders, PacketHeaders, TcpHeader,
    TcpOptionElement, TransportHeader, UdpHeader,
};
use proptest::prelude::*;

use super::*;

const SOURCE4: [u8; 4] = [10, 99, 0, 10];
const DESTINATION4: [u8; 4] = [192, 0, 2, 7];
const SOURCE6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
const DESTINATION6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];

/// One packet's headers; `payload` follows.
#[derive(Debug, Clone)]
struct Spec {
    v6: bool,
    udp: bool,
    ttl: u8,
    dont_fragment: bool,
    id: u16,
    seq: u32,
    ack: u32,
    window: u16,
    timestamps: bool,
    psh: bool,
    fin: bool,
    cwr: bool,
    ports: (u16, u16),
}

impl Spec {
    fn tcp4() -> Spec {
        Spec {
            v6: false,
            udp: false,
            ttl: 64,
            dont_fragment: true,
            id: 0x1234,
            seq: 0xffff_f000,
            ack: 77,
            window: 502,
            timestamps: true,
            psh: false,
            fin: false,
            cwr: false,
            ports: (40_000, 5201),
        }
    }

    fn tcp6() -> Spec {
        Spec {
            v6: true,
            ..Spec::tcp4()
        }
    }

    fn udp4() -> Spec {
        Spec {
            udp: true,
            ..Spec::tcp4()
        }
    }

    fn udp6() -> Spec {
        Spec {
            udp: true,
            v6: true,
            ..Spec::tcp4()
        }
    }

    /// The `index`th of consecutive segments of `segment_len` payload bytes.
    fn nth(&self, index: usize, segment_len: usize) -> Spec {
        Spec {
            id: self.id.wrapping_add(index as u16),
            seq: self.seq.wrapping_add((index * segment_len) as u32),
            ..self.clone()
        }
    }

    fn header_len(&self) -> usize {
        let ip = if self.v6 { 40 } else { 20 };
        let transport = match (self.udp, self.timestamps) {
            (true, _) => 8,
            (false, true) => 32,
            (false, false) => 20,
        };
        ip + transport
    }

    /// The packet, its checksums right.
    fn build(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let protocol = if self.udp {
            IpNumber::UDP
        } else {
            IpNumber::TCP
        };
        let transport_len = self.header_len() - if self.v6 { 40 } else { 20 } + payload.len();
        enum Ip {
            V4(Ipv4Header),
            V6(Ipv6Header),
        }
        let ip = if self.v6 {
            let header = Ipv6Header {
                traffic_class: 0x20,
                flow_label: Ipv6FlowLabel::try_new(0x12345).unwrap(),
                payload_length: transport_len as u16,
                next_header: protocol,
                hop_limit: self.ttl,
                source: SOURCE6,
                destination: DESTINATION6,
            };
            header.write(&mut out).unwrap();
            Ip::V6(header)
        } else {
            let mut header = Ipv4Header::new(
                transport_len as u16,
                self.ttl,
                protocol,
                SOURCE4,
                DESTINATION4,
            )
            .unwrap();
            header.identification = self.id;
            header.dont_fragment = self.dont_fragment;
            header.header_checksum = header.calc_header_checksum();
            header.write(&mut out).unwrap();
            Ip::V4(header)
        };
        if self.udp {
            let header = match &ip {
                Ip::V4(ip) => {
                    UdpHeader::with_ipv4_checksum(self.ports.0, self.ports.1, ip, payload).unwrap()
                }
                Ip::V6(ip) => {
                    UdpHeader::with_ipv6_checksum(self.ports.0, self.ports.1, ip, payload).unwrap()
                }
            };
            header.write(&mut out).unwrap();
        } else {
            let mut header = TcpHeader::new(self.ports.0, self.ports.1, self.seq, self.window);
            header.ack = true;
            header.acknowledgment_number = self.ack;
            header.psh = self.psh;
            header.fin = self.fin;
            header.cwr = self.cwr;
            if self.timestamps {
                header
                    .set_options(&[
                        TcpOptionElement::Noop,
                        TcpOptionElement::Noop,
                        TcpOptionElement::Timestamp(1000, 2000),
                    ])
                    .unwrap();
            }
            header.checksum = match &ip {
                Ip::V4(ip) => header.calc_checksum_ipv4(ip, payload).unwrap(),
                Ip::V6(ip) => header.calc_checksum_ipv6(ip, payload).unwrap(),
            };
            header.write(&mut out).unwrap();
        }
        out.extend_from_slice(payload);
        out
    }

    /// The super-packet the kernel would hand over for `payload` cut at
    /// `segment_len`: its transport checksum field holds the folded
    /// pseudo-header sum (`CHECKSUM_PARTIAL`).
    fn super_packet(&self, payload: &[u8], segment_len: usize) -> (VirtioNetHdr, Vec<u8>) {
        let mut packet = self.build(payload);
        let ip_len = if self.v6 { 40 } else { 20 };
        let (field, gso_type) = match (self.udp, self.v6) {
            (true, _) => (6, VIRTIO_NET_HDR_GSO_UDP_L4),
            (false, false) => (16, VIRTIO_NET_HDR_GSO_TCPV4),
            (false, true) => (16, VIRTIO_NET_HDR_GSO_TCPV6),
        };
        let partial = reference_pseudo_sum(self, packet.len() - ip_len);
        packet[ip_len + field..ip_len + field + 2].copy_from_slice(&partial.to_be_bytes());
        let header = VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type,
            hdr_len: self.header_len() as u16,
            gso_size: segment_len as u16,
            csum_start: ip_len as u16,
            csum_offset: field as u16,
        };
        (header, packet)
    }
}

/// The folded pseudo-header sum, 16 bits at a time (RFC 1071 as written).
fn reference_pseudo_sum(spec: &Spec, transport_len: usize) -> u16 {
    let mut bytes = Vec::new();
    if spec.v6 {
        bytes.extend_from_slice(&SOURCE6);
        bytes.extend_from_slice(&DESTINATION6);
    } else {
        bytes.extend_from_slice(&SOURCE4);
        bytes.extend_from_slice(&DESTINATION4);
    }
    bytes.extend_from_slice(&[0, if spec.udp { 17 } else { 6 }]);
    bytes.extend_from_slice(&(transport_len as u16).to_be_bytes());
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A packet's headers, with its checksums checked by etherparse.
fn parse_checked(packet: &[u8]) -> (NetHeaders, TransportHeader, Vec<u8>) {
    let headers = PacketHeaders::from_ip_slice(packet).expect("a well-formed packet");
    let payload = headers.payload.slice().to_vec();
    let net = headers.net.expect("an IP header");
    let transport = headers.transport.expect("a transport header");
    let expected = match (&net, &transport) {
        (NetHeaders::Ipv4(ip, _), TransportHeader::Tcp(tcp)) => {
            assert_eq!(
                ip.header_checksum,
                ip.calc_header_checksum(),
                "IPv4 header checksum"
            );
            assert_eq!(usize::from(ip.total_len), packet.len());
            tcp.calc_checksum_ipv4(ip, &payload).unwrap()
        }
        (NetHeaders::Ipv6(ip, _), TransportHeader::Tcp(tcp)) => {
            assert_eq!(usize::from(ip.payload_length) + 40, packet.len());
            tcp.calc_checksum_ipv6(ip, &payload).unwrap()
        }
        (NetHeaders::Ipv4(ip, _), TransportHeader::Udp(udp)) => {
            assert_eq!(
                ip.header_checksum,
                ip.calc_header_checksum(),
                "IPv4 header checksum"
            );
            udp.calc_checksum_ipv4(ip, &payload).unwrap()
        }
        (NetHeaders::Ipv6(ip, _), TransportHeader::Udp(udp)) => {
            udp.calc_checksum_ipv6(ip, &payload).unwrap()
        }
        other => panic!("unexpected headers {other:?}"),
    };
    let actual = match &transport {
        TransportHeader::Tcp(tcp) => tcp.checksum,
        TransportHeader::Udp(udp) => {
            assert_eq!(usize::from(udp.length), 8 + payload.len());
            udp.checksum
        }
        _ => unreachable!(),
    };
    assert_eq!(actual, expected, "transport checksum");
    (net, transport, payload)
}

/// What a split gave: how, the output buffer, and the segments' spans in it.
type Segmented = (Split, Vec<u8>, Vec<Range<usize>>);

fn split(
    segmenter: &Segmenter,
    header: &VirtioNetHdr,
    packet: &mut [u8],
) -> Result<Segmented, OffloadError> {
    let mut out = vec![0u8; 4 * 65_536];
    let mut spans = Vec::new();
    let split = segmenter.split(header, packet, &mut out, &mut spans)?;
    Ok((split, out, spans))
}

/// A segmenter to `max_packet_len`, without headroom.
fn limit(max_packet_len: usize) -> Segmenter {
    Segmenter {
        max_packet_len,
        headroom: 0,
    }
}

fn coalesce_all(limits: CoalesceLimits, packets: &[Vec<u8>]) -> (Vec<Pushed>, Vec<Vec<u8>>) {
    let mut coalescer = Coalescer::new(limits);
    let pushed = packets
        .iter()
        .map(|packet| coalescer.push(packet).expect("room in the batch"))
        .collect();
    (pushed, coalescer.packets().map(<[u8]>::to_vec).collect())
}

fn udp_too() -> CoalesceLimits {
    CoalesceLimits {
        udp: true,
        ..CoalesceLimits::default()
    }
}

#[test]
fn header_round_trips_little_endian() {
    let header = VirtioNetHdr {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
        gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
        hdr_len: 0x0102,
        gso_size: 0x0304,
        csum_start: 0x0506,
        csum_offset: 0x0708,
    };
    let bytes = header.encode();
    assert_eq!(bytes, [1, 1, 2, 1, 4, 3, 6, 5, 8, 7]);
    assert_eq!(VirtioNetHdr::decode(&bytes), Ok(header));
    assert_eq!(
        VirtioNetHdr::decode(&bytes[..9]),
        Err(OffloadError::ShortHeader { len: 9 })
    );
}

#[test]
fn layout_refuses_headers_the_packet_contradicts() {
    let spec = Spec::tcp4();
    let (good, packet) = spec.super_packet(&payload(3000, 1), 1000);
    assert!(matches!(good.layout(&packet), Ok(Offload::Segment(_))));
    let with = |change: fn(&mut VirtioNetHdr)| {
        let mut header = good;
        change(&mut header);
        header.layout(&packet)
    };
    assert_eq!(
        with(|h| h.flags |= 0x04),
        Err(OffloadError::UnknownFlags(5))
    );
    assert_eq!(
        with(|h| h.gso_type = VIRTIO_NET_HDR_GSO_UDP),
        Err(OffloadError::UnsupportedGsoType(VIRTIO_NET_HDR_GSO_UDP))
    );
    assert_eq!(
        with(|h| h.gso_type = VIRTIO_NET_HDR_GSO_UDP_L4 | VIRTIO_NET_HDR_GSO_ECN),
        Err(OffloadError::UnsupportedGsoType(0x85))
    );
    assert!(matches!(
        with(|h| h.gso_type = VIRTIO_NET_HDR_GSO_TCPV6),
        Err(OffloadError::GsoTypeMismatch { .. })
    ));
    assert!(matches!(
        with(|h| h.gso_type = VIRTIO_NET_HDR_GSO_UDP_L4),
        Err(OffloadError::GsoTypeMismatch { .. })
    ));
    assert_eq!(with(|h| h.gso_size = 0), Err(OffloadError::ZeroSegmentSize));
    assert!(matches!(
        with(|h| h.csum_offset = 6),
        Err(OffloadError::ChecksumNotTransport { .. })
    ));
    assert!(matches!(
        with(|h| h.csum_start = 0),
        Err(OffloadError::ChecksumNotTransport { .. })
    ));
    // hdr_len is advisory: the headers say where the payload starts.
    assert!(matches!(with(|h| h.hdr_len = 1500), Ok(Offload::Segment(l)) if l.header_len == 52));

    let mutated = |change: fn(&mut Vec<u8>)| {
        let mut packet = packet.clone();
        change(&mut packet);
        good.layout(&packet)
    };
    assert_eq!(
        mutated(|p| p.truncate(p.len() - 1)),
        Err(OffloadError::BadIpHeader)
    );
    assert_eq!(mutated(|p| p[6] |= 0x20), Err(OffloadError::BadIpHeader));
    assert_eq!(mutated(|p| p[0] = 0x44), Err(OffloadError::BadIpHeader));
    assert!(matches!(
        mutated(|p| p[9] = 17),
        Err(OffloadError::GsoTypeMismatch { .. })
    ));
    assert_eq!(
        mutated(|p| p[32] = 0x40),
        Err(OffloadError::BadTransportHeader)
    );
    assert_eq!(
        mutated(|p| p[32] = 0x10),
        Err(OffloadError::BadTransportHeader)
    );

    let (header, bare) = spec.super_packet(&[], 1000);
    assert_eq!(header.layout(&bare), Err(OffloadError::EmptyPayload));
    let partial = VirtioNetHdr {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
        csum_start: 20,
        csum_offset: 16,
        ..VirtioNetHdr::NONE
    };
    assert_eq!(
        partial.layout(&packet[..37]),
        Err(OffloadError::ChecksumOutOfPacket {
            start: 20,
            offset: 16
        })
    );
    assert_eq!(
        partial.layout(&packet[..38]),
        Ok(Offload::ChecksumPartial {
            start: 20,
            offset: 16
        })
    );
    assert_eq!(VirtioNetHdr::NONE.layout(&[]), Ok(Offload::Complete));
}

#[test]
fn tcp4_super_packet_becomes_segments_with_their_own_headers() {
    let spec = Spec {
        psh: true,
        fin: true,
        cwr: true,
        ..Spec::tcp4()
    };
    let data = payload(3 * 1000 + 500, 7);
    let (mut header, mut packet) = spec.super_packet(&data, 1000);
    header.gso_type |= VIRTIO_NET_HDR_GSO_ECN;
    let segmenter = Segmenter {
        max_packet_len: 1500,
        headroom: 4,
    };
    let (split, out, spans) = split(&segmenter, &header, &mut packet).unwrap();
    assert_eq!(split, Split::Segments(4));
    assert_eq!(spans.len(), 4);
    let mut rebuilt = Vec::new();
    let mut previous_end = 0;
    for (index, span) in spans.iter().enumerate() {
        assert_eq!(span.start, previous_end + 4, "headroom before each segment");
        previous_end = span.end;
        let (net, transport, body) = parse_checked(&out[span.clone()]);
        let NetHeaders::Ipv4(ip, _) = net else {
            panic!("IPv4")
        };
        let TransportHeader::Tcp(tcp) = transport else {
            panic!("TCP")
        };
        let last = index == 3;
        assert_eq!(ip.identification, 0x1234 + index as u16);
        assert!(ip.dont_fragment);
        assert_eq!(
            tcp.sequence_number,
            spec.seq.wrapping_add(index as u32 * 1000)
        );
        assert_eq!(tcp.acknowledgment_number, spec.ack);
        assert_eq!(
            (tcp.psh, tcp.fin),
            (last, last),
            "PSH and FIN only on the last"
        );
        assert_eq!(tcp.cwr, index == 0, "CWR only on the first");
        assert!(tcp.ack);
        assert_eq!(body.len(), if last { 500 } else { 1000 });
        rebuilt.extend_from_slice(&body);
    }
    assert_eq!(rebuilt, data);
}

#[test]
fn tcp6_is_cut_finer_than_gso_size_when_the_client_takes_less() {
    let spec = Spec::tcp6();
    let data = payload(5000, 3);
    let (header, mut packet) = spec.super_packet(&data, 1428);
    let segmenter = limit(1000);
    let per_segment = 1000 - 72;
    let count = data.len().div_ceil(per_segment);
    assert_eq!(
        segmenter.count(&header, &packet),
        Ok(count),
        "counted uncut"
    );
    let (split, out, spans) = split(&segmenter, &header, &mut packet).unwrap();
    assert_eq!(split, Split::Segments(count));
    let mut rebuilt = Vec::new();
    for (index, span) in spans.iter().enumerate() {
        assert!(span.len() <= 1000);
        let (_, transport, body) = parse_checked(&out[span.clone()]);
        let TransportHeader::Tcp(tcp) = transport else {
            panic!("TCP")
        };
        assert_eq!(
            tcp.sequence_number,
            spec.seq.wrapping_add((index * per_segment) as u32)
        );
        rebuilt.extend_from_slice(&body);
    }
    assert_eq!(rebuilt, data);
}

#[test]
fn uso_super_packet_becomes_datagrams_and_is_never_cut_finer() {
    for spec in [Spec::udp4(), Spec::udp6()] {
        let data = payload(4 * 1200 + 1, 9);
        let (header, mut packet) = spec.super_packet(&data, 1200);
        let segmenter = limit(1400);
        let (split, out, spans) = split(&segmenter, &header, &mut packet.clone()).unwrap();
        assert_eq!(split, Split::Segments(5));
        let bodies: Vec<Vec<u8>> = spans
            .iter()
            .map(|span| parse_checked(&out[span.clone()]).2)
            .collect();
        assert_eq!(bodies.concat(), data);
        assert_eq!(bodies[4].len(), 1);

        let small = limit(1000);
        assert_eq!(
            small.split(&header, &mut packet, &mut [0; 65_536], &mut Vec::new()),
            Err(OffloadError::DatagramTooLarge {
                len: spec.header_len() + 1200,
                max: 1000
            })
        );
    }
}

#[test]
fn segmenting_refuses_limits_and_outputs_too_small() {
    let (header, mut packet) = Spec::tcp4().super_packet(&payload(3000, 1), 1000);
    let tiny = limit(52);
    assert_eq!(
        tiny.split(&header, &mut packet, &mut [0; 65_536], &mut Vec::new()),
        Err(OffloadError::LimitBelowHeaders {
            header_len: 52,
            max: 52
        })
    );
    let segmenter = limit(1500);
    let mut spans = vec![0..1, 1..2];
    assert_eq!(
        segmenter.split(&header, &mut packet, &mut [0; 2000], &mut spans),
        Err(OffloadError::OutputTooSmall { needed: 2104 })
    );
    assert!(spans.is_empty());
}

#[test]
fn a_partial_checksum_of_a_whole_packet_is_completed() {
    for spec in [Spec::tcp4(), Spec::tcp6(), Spec::udp4(), Spec::udp6()] {
        let data = payload(333, 5);
        let (gso, mut packet) = spec.super_packet(&data, 1000);
        let header = VirtioNetHdr {
            gso_type: VIRTIO_NET_HDR_GSO_NONE,
            gso_size: 0,
            hdr_len: 0,
            ..gso
        };
        let segmenter = limit(1500);
        let (split, _, spans) = split(&segmenter, &header, &mut packet).unwrap();
        assert_eq!(split, Split::Whole);
        assert!(spans.is_empty());
        assert_eq!(packet, spec.build(&data));
        parse_checked(&packet);
    }
}

#[test]
fn consecutive_tcp_segments_become_one_super_packet() {
    for base in [Spec::tcp4(), Spec::tcp6()] {
        let segments: Vec<Vec<u8>> = (0..4)
            .map(|i| {
                let spec = Spec {
                    psh: i == 3,
                    ..base.nth(i, 1000)
                };
                spec.build(&payload(if i == 3 { 10 } else { 1000 }, i as u8))
            })
            .collect();
        let (pushed, out) = coalesce_all(CoalesceLimits::default(), &segments);
        assert_eq!(
            pushed,
            [
                Pushed::Started,
                Pushed::Merged,
                Pushed::Merged,
                Pushed::Merged
            ]
        );
        assert_eq!(out.len(), 1);
        let header = VirtioNetHdr::decode(&out[0]).unwrap();
        let ip_len = if base.v6 { 40 } else { 20 };
        assert_eq!(
            header,
            VirtioNetHdr {
                flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
                gso_type: if base.v6 {
                    VIRTIO_NET_HDR_GSO_TCPV6
                } else {
                    VIRTIO_NET_HDR_GSO_TCPV4
                },
                hdr_len: base.header_len() as u16,
                gso_size: 1000,
                csum_start: ip_len,
                csum_offset: 16,
            }
        );
        let expected = Spec {
            psh: true,
            ..base.clone()
        }
        .super_packet(
            &[
                payload(1000, 0),
                payload(1000, 1),
                payload(1000, 2),
                payload(10, 3),
            ]
            .concat(),
            1000,
        );
        assert_eq!(header, expected.0);
        assert_eq!(&out[0][VIRTIO_NET_HDR_LEN..], &expected.1[..]);
    }
}

#[test]
fn segments_that_do_not_qualify_are_not_merged() {
    let base = Spec::tcp4();
    let first = base.build(&payload(1000, 0));
    let second = |change: fn(&mut Spec)| {
        let mut spec = base.nth(1, 1000);
        change(&mut spec);
        spec.build(&payload(1000, 1))
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a gap in the sequence",
            second(|s| s.seq = s.seq.wrapping_add(1000)),
        ),
        ("another TTL", second(|s| s.ttl = 63)),
        ("another acknowledgment", second(|s| s.ack = 78)),
        ("another window", second(|s| s.window = 1)),
        ("other options", second(|s| s.timestamps = false)),
        (
            "a larger payload",
            base.nth(1, 1000).build(&payload(1001, 1)),
        ),
        ("FIN", second(|s| s.fin = true)),
        ("no payload", base.nth(1, 1000).build(&[])),
        ("another DF", second(|s| s.dont_fragment = false)),
    ];
    for (case, second) in cases {
        let (pushed, out) =
            coalesce_all(CoalesceLimits::default(), &[first.clone(), second.clone()]);
        assert_ne!(pushed[1], Pushed::Merged, "{case}");
        assert_eq!(out.len(), 2, "{case}");
        assert_eq!(
            out[1][..VIRTIO_NET_HDR_LEN],
            [0; VIRTIO_NET_HDR_LEN],
            "{case}"
        );
        assert_eq!(&out[1][VIRTIO_NET_HDR_LEN..], &second[..], "{case}");
    }

    let without_df = |index: usize, id: u16| {
        let spec = Spec {
            dont_fragment: false,
            id,
            ..base.nth(index, 1000)
        };
        spec.build(&payload(1000, index as u8))
    };
    for (id, merged) in [(base.id + 1, true), (base.id + 2, false), (base.id, false)] {
        let (pushed, _) = coalesce_all(
            CoalesceLimits::default(),
            &[without_df(0, base.id), without_df(1, id)],
        );
        assert_eq!(
            pushed[1] == Pushed::Merged,
            merged,
            "without DF, IDs follow on"
        );
    }

    let mut corrupt = base.nth(1, 1000).build(&payload(1000, 1));
    *corrupt.last_mut().unwrap() ^= 1;
    let (pushed, _) = coalesce_all(CoalesceLimits::default(), &[first.clone(), corrupt]);
    assert_eq!(
        pushed[1],
        Pushed::Single,
        "a wrong checksum is left for the kernel to drop"
    );

    let pushed_first = Spec {
        psh: true,
        ..base.clone()
    }
    .build(&payload(1000, 0));
    let (pushed, _) = coalesce_all(
        CoalesceLimits::default(),
        &[pushed_first, base.nth(1, 1000).build(&payload(1000, 1))],
    );
    assert_eq!(pushed[1], Pushed::Started, "nothing follows PSH");

    let short_first = base.build(&payload(500, 0));
    let (pushed, _) = coalesce_all(
        CoalesceLimits::default(),
        &[
            short_first,
            base.nth(1, 500).build(&payload(500, 1)),
            base.nth(2, 500).build(&payload(500, 2)),
        ],
    );
    assert_eq!(pushed, [Pushed::Started, Pushed::Merged, Pushed::Merged]);
    let (pushed, _) = coalesce_all(
        CoalesceLimits::default(),
        &[
            base.build(&payload(500, 0)),
            base.nth(1, 500).build(&payload(400, 1)),
            Spec {
                seq: base.seq.wrapping_add(900),
                ..base.nth(2, 0)
            }
            .build(&payload(400, 2)),
        ],
    );
    assert_eq!(
        pushed[2],
        Pushed::Started,
        "nothing follows a shorter segment"
    );
}

#[test]
fn flows_are_kept_apart_and_in_order() {
    let a = Spec::tcp4();
    let b = Spec {
        ports: (40_001, 5201),
        ..Spec::tcp4()
    };
    let packets = vec![
        a.nth(0, 100).build(&payload(100, 0)),
        b.nth(0, 100).build(&payload(100, 1)),
        a.nth(1, 100).build(&payload(100, 2)),
        b.nth(1, 100).build(&payload(100, 3)),
        // A pure ACK of flow a closes its super-packet: what follows may
        // not overtake it.
        a.nth(2, 100).build(&[]),
        a.nth(2, 100).build(&payload(100, 4)),
        vec![0x45, 0, 0],
        vec![],
    ];
    let (pushed, out) = coalesce_all(CoalesceLimits::default(), &packets);
    use Pushed::*;
    assert_eq!(
        pushed,
        [Started, Started, Merged, Merged, Single, Started, Single, Single]
    );
    assert_eq!(out.len(), 6);
    assert_eq!(&out[2][VIRTIO_NET_HDR_LEN..], &packets[4][..]);
    assert_eq!(&out[3][VIRTIO_NET_HDR_LEN..], &packets[5][..]);
    assert_eq!(&out[4][VIRTIO_NET_HDR_LEN..], &[0x45, 0, 0]);
    assert_eq!(out[5], [0; VIRTIO_NET_HDR_LEN]);
}

#[test]
fn udp_merges_only_when_the_kernel_takes_uso() {
    for base in [Spec::udp4(), Spec::udp6()] {
        let packets: Vec<Vec<u8>> = (0..3)
            .map(|i| base.nth(i, 0).build(&payload(800, i as u8)))
            .collect();
        let (pushed, out) = coalesce_all(CoalesceLimits::default(), &packets);
        assert_eq!(pushed, [Pushed::Single; 3]);
        assert_eq!(out.len(), 3);
        let (pushed, out) = coalesce_all(udp_too(), &packets);
        assert_eq!(pushed, [Pushed::Started, Pushed::Merged, Pushed::Merged]);
        let header = VirtioNetHdr::decode(&out[0]).unwrap();
        assert_eq!(header.gso_type, VIRTIO_NET_HDR_GSO_UDP_L4);
        assert_eq!((header.gso_size, header.csum_offset), (800, 6));
    }
    let base = Spec::udp4();
    let many: Vec<Vec<u8>> = (0..MAX_UDP_SEGMENTS + 1)
        .map(|i| base.nth(i, 0).build(&payload(10, i as u8)))
        .collect();
    let (pushed, out) = coalesce_all(
        CoalesceLimits {
            max_packets: 100,
            ..udp_too()
        },
        &many,
    );
    assert_eq!(pushed[MAX_UDP_SEGMENTS], Pushed::Started);
    assert_eq!(out.len(), 2);
}

#[test]
fn a_batch_is_bounded_in_packets_flows_and_bytes() {
    let base = Spec::tcp4();
    let limits = CoalesceLimits {
        max_packets: 2,
        max_flows: 1,
        udp: false,
    };
    let mut coalescer = Coalescer::new(limits);
    let a = |i: usize| base.nth(i, 100).build(&payload(100, 0));
    let b = |i: usize| {
        Spec {
            ports: (1, 2),
            ..base.nth(i, 100)
        }
        .build(&payload(100, 0))
    };
    assert_eq!(coalescer.push(&a(0)), Ok(Pushed::Started));
    assert_eq!(coalescer.push(&b(0)), Ok(Pushed::Started), "evicts flow a");
    assert_eq!(coalescer.push(&a(1)), Err(BatchFull));
    assert_eq!(
        coalescer.push(&b(1)),
        Ok(Pushed::Merged),
        "a full batch still merges"
    );
    assert_eq!(coalescer.len(), 2);
    coalescer.clear();
    assert!(coalescer.is_empty());
    assert_eq!(coalescer.push(&a(1)), Ok(Pushed::Started));

    let big: Vec<Vec<u8>> = (0..70)
        .map(|i| base.nth(i, 1000).build(&payload(1000, 0)))
        .collect();
    let (_, out) = coalesce_all(CoalesceLimits::default(), &big);
    assert!(out
        .iter()
        .all(|p| p.len() - VIRTIO_NET_HDR_LEN <= MAX_PACKET_LEN));
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].len() - VIRTIO_NET_HDR_LEN, 52 + 65 * 1000);
}

fn arbitrary_spec() -> impl Strategy<Value = Spec> {
    (
        (
            any::<bool>(),
            any::<bool>(),
            1u8..,
            any::<bool>(),
            any::<u16>(),
        ),
        (
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((v6, udp, ttl, dont_fragment, id), (seq, ack, window, timestamps, psh))| Spec {
                v6,
                udp,
                ttl,
                dont_fragment,
                id,
                seq,
                ack,
                window,
                timestamps,
                psh,
                fin: false,
                cwr: false,
                ports: (40_000, 443),
            },
        )
}

proptest! {
    #[test]
    fn coalescing_then_segmenting_gives_back_the_segments(
        spec in arbitrary_spec(),
        segment_len in 1usize..1400,
        count in 2usize..20,
        last_len in 1usize..1400,
        seed in any::<u8>(),
    ) {
        let last_len = last_len.min(segment_len);
        let segments: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let last = i + 1 == count;
                let spec = Spec { psh: spec.psh && last, ..spec.nth(i, segment_len) };
                let len = if last { last_len } else { segment_len };
                spec.build(&payload(len, seed.wrapping_add(i as u8)))
            })
            .collect();
        let (pushed, out) = coalesce_all(udp_too(), &segments);
        prop_assert!(pushed[1..].iter().all(|p| *p == Pushed::Merged));
        prop_assert_eq!(out.len(), 1);
        let header = VirtioNetHdr::decode(&out[0]).unwrap();
        let mut packet = out[0][VIRTIO_NET_HDR_LEN..].to_vec();
        let segmenter = Segmenter { max_packet_len: spec.header_len() + segment_len, headroom: 3 };
        let (split, buffer, spans) = split(&segmenter, &header, &mut packet).unwrap();
        prop_assert_eq!(split, Split::Segments(count));
        for (span, original) in spans.iter().zip(&segments) {
            prop_assert_eq!(&buffer[span.clone()], &original[..]);
        }
    }

    #[test]
    fn segmenting_then_coalescing_gives_back_the_super_packet(
        spec in arbitrary_spec(),
        segment_len in 1usize..1400,
        len in 2usize..30_000,
        slack in 0usize..100,
        seed in any::<u8>(),
    ) {
        let segment_len = segment_len.min(len - 1).max(len.div_ceil(MAX_UDP_SEGMENTS));
        let (header, super_packet) = spec.super_packet(&payload(len, seed), segment_len);
        let mut packet = super_packet.clone();
        let segmenter = Segmenter { max_packet_len: spec.header_len() + segment_len + slack, headroom: 0 };
        prop_assert_eq!(segmenter.count(&header, &packet), Ok(len.div_ceil(segment_len)));
        let (split, buffer, spans) = split(&segmenter, &header, &mut packet).unwrap();
        prop_assert_eq!(split, Split::Segments(len.div_ceil(segment_len)));
        let segments: Vec<Vec<u8>> = spans.iter().map(|span| buffer[span.clone()].to_vec()).collect();
        for segment in &segments {
            parse_checked(segment);
        }
        // In pieces (rebuilt headers, payload borrowed from the packet),
        // the same segments.
        let mut pieces = Vec::new();
        let mut again = super_packet.clone();
        let start = again.as_ptr() as usize;
        let end = start + again.len();
        let in_pieces = segmenter.for_each_segment(&header, &mut again, |headers, payload| {
            let at = payload.as_ptr() as usize;
            assert!(payload.is_empty() || (at >= start && at + payload.len() <= end), "payload not borrowed");
            pieces.push([headers, payload].concat());
        });
        prop_assert_eq!(in_pieces, Ok(split));
        prop_assert_eq!(&pieces, &segments);
        let (_, out) = coalesce_all(udp_too(), &segments);
        prop_assert_eq!(out.len(), 1);
        prop_assert_eq!(&out[0][..VIRTIO_NET_HDR_LEN], &header.encode()[..]);
        prop_assert_eq!(&out[0][VIRTIO_NET_HDR_LEN..], &super_packet[..]);
    }

    #[test]
    fn any_header_and_packet_is_an_answer_not_a_panic(
        header in proptest::array::uniform10(any::<u8>()),
        mut packet in proptest::collection::vec(any::<u8>(), 0..200),
        max_packet_len in 0usize..300,
    ) {
        let header = VirtioNetHdr::decode(&header).unwrap();
        let segmenter = Segmenter { max_packet_len, headroom: 2 };
        let mut out = [0u8; 4096];
        let mut spans = Vec::new();
        let count = segmenter.count(&header, &packet);
        match segmenter.split(&header, &mut packet, &mut out, &mut spans) {
            Ok(Split::Segments(n)) => {
                prop_assert_eq!(spans.len(), n);
                prop_assert!(spans.iter().all(|span| span.len() <= max_packet_len));
                prop_assert_eq!(count, Ok(n));
            }
            Ok(Split::Whole) => prop_assert_eq!(count, Ok(1)),
            Err(_) => {}
        }
        let mut coalescer = Coalescer::new(udp_too());
        let _ = coalescer.push(&packet);
        let _ = coalescer.push(&packet);
        prop_assert!(coalescer.len() <= 2);
    }
}
