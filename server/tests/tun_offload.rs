//! `tun::offload` against the real kernel: a TUN device with
//! `IFF_VNET_HDR` and TSO, in a network namespace of its own, carrying one
//! TCP connection between a kernel socket and a peer this test plays
//! through the device. The kernel's super-packets are cut by the
//! `Segmenter` (every segment checked with etherparse), and a super-packet
//! made by the `Coalescer` is taken by the kernel's TCP as the bytes it
//! carries.

#![cfg(feature = "runtime")]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

mod common;

use common::read_queue;

use etherparse::{IpNumber, Ipv4Header, PacketHeaders, TcpHeader, TcpOptionElement, UdpHeader};
use etherparse::{NetHeaders, TransportHeader};
use sstpd::testing::netns::NetNs;
use sstpd::tun::offload::{
    CoalesceLimits, Coalescer, Segmenter, Split, VirtioNetHdr, VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_UDP_L4, VIRTIO_NET_HDR_LEN,
};
use sstpd::tun::{TunDevice, TunOptions};

const PREFIX: &str = "sstpd-tunoffload";
const TUN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const PEER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const SERVER_PORT: u16 = 5201;
const PEER_PORT: u16 = 40_000;
const PEER_ISN: u32 = 0xffff_0000;
const TIMEOUT: Duration = Duration::from_secs(10);

/// The IPv4 header of a packet from the peer (DF set).
fn peer_ip_header(protocol: IpNumber, transport_len: usize, id: u16) -> Ipv4Header {
    let mut ip = Ipv4Header::new(
        transport_len as u16,
        64,
        protocol,
        PEER_ADDR.octets(),
        TUN_ADDR.octets(),
    )
    .unwrap();
    ip.identification = id;
    ip.dont_fragment = true;
    ip.header_checksum = ip.calc_header_checksum();
    ip
}

/// A segment from the peer to the kernel's socket, checksums by etherparse.
fn peer_segment(
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    psh: bool,
    id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut tcp = TcpHeader::new(PEER_PORT, SERVER_PORT, seq, 65_535);
    tcp.syn = syn;
    tcp.psh = psh;
    if let Some(ack) = ack {
        tcp.ack = true;
        tcp.acknowledgment_number = ack;
    }
    if syn {
        tcp.set_options(&[TcpOptionElement::MaximumSegmentSize(1460)])
            .unwrap();
    }
    let ip = peer_ip_header(IpNumber::TCP, tcp.header_len() + payload.len(), id);
    tcp.checksum = tcp.calc_checksum_ipv4(&ip, payload).unwrap();
    let mut packet = Vec::new();
    ip.write(&mut packet).unwrap();
    tcp.write(&mut packet).unwrap();
    packet.extend_from_slice(payload);
    packet
}

/// Writes one IP packet behind a zeroed virtio-net header.
fn write_whole(queue: &File, packet: &[u8]) {
    let framed = [&VirtioNetHdr::NONE.encode()[..], packet].concat();
    assert_eq!((&*queue).write(&framed).unwrap(), framed.len());
}

/// A TCP segment or UDP datagram from the kernel's socket to the peer,
/// its checksums checked by etherparse: its transport header and payload.
fn checked_from_server(packet: &[u8]) -> Option<(TransportHeader, Vec<u8>)> {
    let headers = PacketHeaders::from_ip_slice(packet).ok()?;
    let (Some(NetHeaders::Ipv4(ip, _)), Some(transport)) = (headers.net, headers.transport) else {
        return None;
    };
    let payload = headers.payload.slice().to_vec();
    let (ports, checksum, expected) = match &transport {
        TransportHeader::Tcp(tcp) => (
            (tcp.source_port, tcp.destination_port),
            tcp.checksum,
            tcp.calc_checksum_ipv4(&ip, &payload).unwrap(),
        ),
        TransportHeader::Udp(udp) => {
            assert_eq!(usize::from(udp.length), 8 + payload.len());
            (
                (udp.source_port, udp.destination_port),
                udp.checksum,
                udp.calc_checksum_ipv4(&ip, &payload).unwrap(),
            )
        }
        _ => return None,
    };
    if ip.source != TUN_ADDR.octets() || ports != (SERVER_PORT, PEER_PORT) {
        return None;
    }
    assert_eq!(
        ip.header_checksum,
        ip.calc_header_checksum(),
        "IPv4 header checksum"
    );
    assert_eq!(usize::from(ip.total_len), packet.len());
    assert_eq!(checksum, expected, "transport checksum");
    Some((transport, payload))
}

/// A TCP segment of the connection, checked.
fn checked_server_segment(packet: &[u8]) -> Option<(TcpHeader, Vec<u8>)> {
    match checked_from_server(packet)? {
        (TransportHeader::Tcp(tcp), payload) => Some((tcp, payload)),
        _ => None,
    }
}

/// Whether a read was a GSO super-packet, and its segments.
type ServerSegments = (bool, Vec<(TcpHeader, Vec<u8>)>);

/// Reads from TUN until a segment of the connection comes, cut and
/// completed by the segmenter. Returns whether it was a GSO super-packet
/// and its segments.
fn next_server_segments(
    queue: &File,
    segmenter: &Segmenter,
    deadline: Instant,
) -> Option<ServerSegments> {
    let mut out = vec![0u8; 1 << 18];
    let mut spans = Vec::new();
    loop {
        let mut framed = read_queue(queue, deadline)?;
        let header = VirtioNetHdr::decode(&framed).unwrap();
        let packet = &mut framed[VIRTIO_NET_HDR_LEN..];
        let split = match segmenter.split(&header, packet, &mut out, &mut spans) {
            Ok(split) => split,
            // Not IPv4 TCP of ours (an IPv6 router solicitation, say).
            Err(_) => continue,
        };
        let segments: Vec<_> = match split {
            Split::Whole => checked_server_segment(packet).into_iter().collect(),
            Split::Segments(_) => spans
                .iter()
                .filter_map(|span| checked_server_segment(&out[span.clone()]))
                .collect(),
        };
        if !segments.is_empty() {
            return Some((header.gso_type != VIRTIO_NET_HDR_GSO_NONE, segments));
        }
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

/// The device of these tests, TSO (and USO where the kernel has it) taken.
fn offloading_device() -> (TunDevice, bool) {
    let options = TunOptions {
        vnet_hdr: true,
        ..TunOptions::new("sstptoff", 1)
    };
    let device = TunDevice::create(&options).unwrap();
    let offloads = device.set_offloads(true).unwrap();
    assert!(offloads.tso);
    device.set_mtu(1500).unwrap();
    device.set_ipv4(TUN_ADDR, 24).unwrap();
    device.set_up(true).unwrap();
    (device, offloads.uso)
}

#[test]
fn kernel_tcp_takes_coalesced_super_packets_and_its_own_are_cut_right() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let (device, _) = offloading_device();
        let queue = &device.queues()[0];
        let listener = TcpListener::bind((TUN_ADDR, SERVER_PORT)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let segmenter = Segmenter {
            max_packet_len: 1500,
            headroom: 0,
        };
        let deadline = Instant::now() + TIMEOUT;

        // The handshake, the peer's side written by hand.
        write_whole(queue, &peer_segment(PEER_ISN, None, true, false, 1, &[]));
        let (_, segments) = next_server_segments(queue, &segmenter, deadline).expect("SYN-ACK");
        let (syn_ack, _) = &segments[0];
        assert!(syn_ack.syn && syn_ack.ack);
        assert_eq!(syn_ack.acknowledgment_number, PEER_ISN.wrapping_add(1));
        let server_next = syn_ack.sequence_number.wrapping_add(1);
        let peer_next = PEER_ISN.wrapping_add(1);
        write_whole(
            queue,
            &peer_segment(peer_next, Some(server_next), false, false, 2, &[]),
        );
        let stream: TcpStream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the handshake did not complete");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();

        // Upstream: 20 segments of the peer in one super-packet.
        let upstream = pattern(20 * 1000, 3);
        let mut coalescer = Coalescer::new(CoalesceLimits::default());
        for (index, chunk) in upstream.chunks(1000).enumerate() {
            let segment = peer_segment(
                peer_next.wrapping_add((index * 1000) as u32),
                Some(server_next),
                false,
                index == 19,
                3 + index as u16,
                chunk,
            );
            coalescer.push(&segment).unwrap();
        }
        assert_eq!(coalescer.len(), 1, "one super-packet");
        let merged = coalescer.packets().next().unwrap();
        assert_eq!(
            VirtioNetHdr::decode(merged).unwrap().gso_type,
            VIRTIO_NET_HDR_GSO_TCPV4
        );
        assert_eq!((&*queue).write(merged).unwrap(), merged.len());
        let mut received = vec![0u8; upstream.len()];
        (&stream).read_exact(&mut received).unwrap();
        assert_eq!(
            received, upstream,
            "the kernel's socket reads the segments' bytes"
        );
        let peer_next = peer_next.wrapping_add(upstream.len() as u32);

        // Downstream: the kernel sends super-packets (TSO), cut to 1,500
        // bytes and acknowledged as they come.
        let downstream = pattern(200_000, 11);
        let mut writer = stream.try_clone().unwrap();
        let sent = downstream.clone();
        let sender = std::thread::spawn(move || writer.write_all(&sent).unwrap());
        let mut got = Vec::with_capacity(downstream.len());
        let mut super_packets = 0;
        while got.len() < downstream.len() {
            let (gso, segments) = next_server_segments(queue, &segmenter, deadline)
                .unwrap_or_else(|| panic!("stalled after {} bytes", got.len()));
            super_packets += usize::from(gso);
            for (tcp, payload) in segments {
                let expected = server_next.wrapping_add(got.len() as u32);
                if tcp.sequence_number == expected {
                    got.extend_from_slice(&payload);
                }
            }
            let ack = server_next.wrapping_add(got.len() as u32);
            write_whole(
                queue,
                &peer_segment(peer_next, Some(ack), false, false, 30, &[]),
            );
        }
        sender.join().unwrap();
        assert_eq!(got, downstream);
        assert!(super_packets > 0, "the kernel used TSO on the device");
    });
}

/// A datagram from the peer to the kernel's socket, checksums by etherparse.
fn peer_datagram(id: u16, payload: &[u8]) -> Vec<u8> {
    let ip = peer_ip_header(IpNumber::UDP, 8 + payload.len(), id);
    let udp = UdpHeader::with_ipv4_checksum(PEER_PORT, SERVER_PORT, &ip, payload).unwrap();
    let mut packet = Vec::new();
    ip.write(&mut packet).unwrap();
    udp.write(&mut packet).unwrap();
    packet.extend_from_slice(payload);
    packet
}

/// A UDP datagram of the socket, checked: its payload.
fn checked_server_datagram(packet: &[u8]) -> Option<Vec<u8>> {
    match checked_from_server(packet)? {
        (TransportHeader::Udp(_), payload) => Some(payload),
        _ => None,
    }
}

#[test]
fn kernel_udp_takes_coalesced_datagrams_and_its_uso_is_cut_right() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let (device, uso) = offloading_device();
        let queue = &device.queues()[0];
        let socket = UdpSocket::bind((TUN_ADDR, SERVER_PORT)).unwrap();
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();

        // Upstream: three datagrams of the peer, one super-packet when the
        // kernel takes USO; the socket still reads three datagrams.
        let datagrams: Vec<Vec<u8>> = [700, 700, 500]
            .iter()
            .enumerate()
            .map(|(i, &len)| pattern(len, i as u8))
            .collect();
        let mut coalescer = Coalescer::new(CoalesceLimits {
            udp: uso,
            ..CoalesceLimits::default()
        });
        for (index, datagram) in datagrams.iter().enumerate() {
            coalescer
                .push(&peer_datagram(index as u16, datagram))
                .unwrap();
        }
        if uso {
            assert_eq!(coalescer.len(), 1, "one super-packet");
        }
        for packet in coalescer.packets() {
            let header = VirtioNetHdr::decode(packet).unwrap();
            assert_eq!(header.gso_type == VIRTIO_NET_HDR_GSO_UDP_L4, uso);
            assert_eq!((&*queue).write(packet).unwrap(), packet.len());
        }
        let mut buf = [0u8; 2048];
        for datagram in &datagrams {
            let (len, from) = socket.recv_from(&mut buf).unwrap();
            assert_eq!(from, (PEER_ADDR, PEER_PORT).into());
            assert_eq!(&buf[..len], &datagram[..]);
        }

        // Downstream: one send with UDP_SEGMENT, cut into 1,000-byte datagrams.
        common::set_udp_segment(&socket, 1000);
        let message = pattern(4500, 42);
        socket.send_to(&message, (PEER_ADDR, PEER_PORT)).unwrap();
        let segmenter = Segmenter {
            max_packet_len: 1500,
            headroom: 0,
        };
        let deadline = Instant::now() + TIMEOUT;
        let mut out = vec![0u8; 1 << 17];
        let mut spans = Vec::new();
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut super_packets = 0;
        while got.len() < 5 {
            let mut framed = read_queue(queue, deadline).expect("the datagrams");
            let header = VirtioNetHdr::decode(&framed).unwrap();
            let packet = &mut framed[VIRTIO_NET_HDR_LEN..];
            match segmenter.split(&header, packet, &mut out, &mut spans) {
                Ok(Split::Whole) => got.extend(checked_server_datagram(packet)),
                Ok(Split::Segments(_)) => {
                    super_packets += 1;
                    got.extend(
                        spans
                            .iter()
                            .filter_map(|span| checked_server_datagram(&out[span.clone()])),
                    );
                }
                Err(_) => continue,
            }
        }
        let expected: Vec<Vec<u8>> = message.chunks(1000).map(<[u8]>::to_vec).collect();
        assert_eq!(got, expected);
        assert_eq!(super_packets > 0, uso, "the kernel used USO on the device");
    });
}
