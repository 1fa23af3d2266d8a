//! `tun::offload` microbenchmarks: a 64 KiB TCPv4 super-packet from the
//! kernel cut into 1,500-byte segments (the downstream cost per TUN read),
//! and the same segments merged back into one super-packet (the upstream
//! cost per TUN write). Quick run: `cargo bench -p sstp-bench --bench
//! tun_offload -- --quick`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sstpd::tun::offload::{
    CoalesceLimits, Coalescer, Segmenter, VirtioNetHdr, VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_TCPV4,
};

/// IPv4 (20 bytes) and TCP with timestamps (32 bytes), as Linux sends them.
const HEADER_LEN: usize = 52;
const SEGMENT_PAYLOAD: usize = 1448;
const SEGMENTS: usize = 45;

/// A TSO super-packet as the kernel hands it over: ACK|PSH, DF, 45 full
/// segments' worth of payload. Its TCP checksum field is not looked at.
fn super_packet() -> (VirtioNetHdr, Vec<u8>) {
    let len = HEADER_LEN + SEGMENTS * SEGMENT_PAYLOAD;
    let mut packet = vec![0u8; len];
    packet[0] = 0x45;
    packet[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    packet[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    packet[6] = 0x40;
    packet[8] = 64;
    packet[9] = 6;
    packet[12..16].copy_from_slice(&[192, 0, 2, 7]);
    packet[16..20].copy_from_slice(&[10, 99, 0, 10]);
    let tcp = &mut packet[20..HEADER_LEN];
    tcp[0..4].copy_from_slice(&[0x14, 0x51, 0x9c, 0x40]);
    tcp[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    tcp[8..12].copy_from_slice(&77u32.to_be_bytes());
    tcp[12] = 8 << 4;
    tcp[13] = 0x18;
    tcp[14..16].copy_from_slice(&502u16.to_be_bytes());
    tcp[20..32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 3, 232, 0, 0, 7, 208]);
    for (i, byte) in packet[HEADER_LEN..].iter_mut().enumerate() {
        *byte = (i as u8).wrapping_mul(31);
    }
    let header = VirtioNetHdr {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
        gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
        hdr_len: HEADER_LEN as u16,
        gso_size: SEGMENT_PAYLOAD as u16,
        csum_start: 20,
        csum_offset: 16,
    };
    (header, packet)
}

fn offload(c: &mut Criterion) {
    let (header, mut packet) = super_packet();
    let segmenter = Segmenter {
        max_packet_len: 1500,
        headroom: 0,
    };
    let mut out = vec![0u8; 1 << 17];
    let mut spans = Vec::new();
    let mut g = c.benchmark_group("tun_offload");
    g.throughput(Throughput::Bytes((SEGMENTS * SEGMENT_PAYLOAD) as u64));
    g.bench_function("segment_64k_tcp4", |b| {
        b.iter(|| {
            segmenter
                .split(black_box(&header), &mut packet, &mut out, &mut spans)
                .unwrap()
        })
    });

    // The segments, with the checksums the segmenter gave them.
    segmenter
        .split(&header, &mut packet, &mut out, &mut spans)
        .unwrap();
    let segments: Vec<Vec<u8>> = spans
        .iter()
        .map(|span| out[span.clone()].to_vec())
        .collect();
    let mut coalescer = Coalescer::new(CoalesceLimits::default());
    g.bench_function("coalesce_64k_tcp4", |b| {
        b.iter(|| {
            coalescer.clear();
            for segment in &segments {
                coalescer.push(black_box(segment)).unwrap();
            }
            assert_eq!(coalescer.len(), 1);
        })
    });
    g.finish();
}

criterion_group!(benches, offload);
criterion_main!(benches);
