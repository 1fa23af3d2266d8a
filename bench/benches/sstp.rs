//! SSTP layer microbenchmarks: the wire codec (parse and encode of data and
//! control packets), the deframer, and the crypto binding (CMK and Compound
//! MAC, compute and verify). Quick run: `cargo bench -p sstp-bench --bench
//! sstp -- --quick`.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sstp_bench::workload::{imix_packets, push_sstp_data_packet, GATEWAY, IMIX};
use sstpd::proto::sstp::binding::{
    build_call_connected, compound_mac, compound_mac_key, verify_call_connected, BindingExpectation,
};
use sstpd::proto::sstp::wire::{encode_call_connect_ack, encode_call_connect_request, Packet};
use sstpd::proto::sstp::{CertHashes, Deframer, HashProtocol, HashProtocols};

fn codec(c: &mut Criterion) {
    let ips = imix_packets(GATEWAY, Ipv4Addr::new(10, 64, 0, 2), 1);
    let large = ips.iter().find(|p| p.len() == 1400).expect("IMIX has 1400");
    let mut data_packet = Vec::new();
    push_sstp_data_packet(large, &mut data_packet);
    let mut ack = Vec::new();
    encode_call_connect_ack(HashProtocols::from_bits(3), &[7; 32], &mut ack);

    let mut g = c.benchmark_group("sstp_codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_data_1400", |b| {
        b.iter(|| matches!(Packet::parse(black_box(&data_packet)), Ok(Packet::Data(_))))
    });
    g.bench_function("parse_control_call_connect_ack", |b| {
        b.iter(|| match Packet::parse(black_box(&ack)) {
            Ok(Packet::Control(control)) => control.message().is_ok(),
            _ => false,
        })
    });
    let mut out = Vec::with_capacity(2048);
    g.bench_function("encode_data_1400", |b| {
        b.iter(|| {
            out.clear();
            push_sstp_data_packet(black_box(large), &mut out);
            out.len()
        })
    });
    g.bench_function("encode_call_connect_request", |b| {
        b.iter(|| {
            out.clear();
            encode_call_connect_request(black_box(1), &mut out);
            out.len()
        })
    });
    g.finish();

    // A stream of IMIX data packets read in 16 KiB chunks.
    let mut stream = Vec::new();
    for i in 0..1200 {
        push_sstp_data_packet(&ips[i % IMIX.len()], &mut stream);
    }
    let mut g = c.benchmark_group("sstp_deframer");
    g.throughput(Throughput::Elements(1200));
    g.bench_function("imix_16k_chunks", |b| {
        b.iter(|| {
            let mut deframer = Deframer::new(4095);
            let mut n = 0u32;
            for chunk in black_box(&stream).chunks(16 * 1024) {
                let mut feed = deframer.feed(chunk);
                while let Some(Ok(_)) = feed.next() {
                    n += 1;
                }
            }
            n
        })
    });
    g.finish();
}

fn binding(c: &mut Criterion) {
    let cert = CertHashes::of_der(b"sstp-bench certificate");
    let hlak = [0x42u8; 32];
    let nonce = [0x17u8; 32];
    let mut g = c.benchmark_group("crypto_binding");
    for protocol in [HashProtocol::Sha256, HashProtocol::Sha1] {
        let name = protocol.as_str();
        let message = build_call_connected(protocol, &nonce, &cert, &hlak);
        g.bench_function(format!("cmk_{name}"), |b| {
            b.iter(|| compound_mac_key(protocol, black_box(&hlak)))
        });
        g.bench_function(format!("compound_mac_{name}"), |b| {
            b.iter(|| compound_mac(protocol, black_box(&hlak), black_box(&message)))
        });
        g.bench_function(format!("build_call_connected_{name}"), |b| {
            b.iter(|| build_call_connected(protocol, black_box(&nonce), &cert, &hlak))
        });
        let expected = BindingExpectation {
            offered: HashProtocols::from_bits(3),
            nonce: &nonce,
            cert: &cert,
            hlak: &hlak,
        };
        g.bench_function(format!("verify_call_connected_{name}"), |b| {
            b.iter(|| verify_call_connected(black_box(&message), &expected).is_ok())
        });
    }
    g.finish();
}

criterion_group!(benches, codec, binding);
criterion_main!(benches);
