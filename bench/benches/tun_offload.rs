//! `tun::offload` microbenchmarks: a 64 KiB TCPv4 super-packet from the
//! kernel cut into 1,500-byte segments (the downstream cost per TUN read),
//! and the same segments merged back into one super-packet (the upstream
//! cost per TUN write). Quick run: `cargo bench -p sstp-bench --bench
//! tun_offload -- --quick`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sstp_bench::workload::{
    tcp4_super_packet, SUPER_PACKET_SEGMENTS, SUPER_PACKET_SEGMENT_PAYLOAD,
};
use sstpd::tun::offload::{CoalesceLimits, Coalescer, Segmenter};

const SEGMENTS: usize = SUPER_PACKET_SEGMENTS;
const SEGMENT_PAYLOAD: usize = SUPER_PACKET_SEGMENT_PAYLOAD;

fn offload(c: &mut Criterion) {
    let (header, mut packet) = tcp4_super_packet();
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
