//! PPP microbenchmarks: the data-frame demux of an open link
//! (`PppLink::handle_frame` on IPv4 frames, the per-packet path of every
//! session) and HDLC-like framing (RFC 1662 encode and decode). Quick run:
//! `cargo bench -p sstp-bench --bench ppp -- --quick`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sstp_bench::workload::{authenticator, client_config, imix_ppp_frames, server_config};
use sstpd::proto::ppp::IpVersion;
use sstpd::testing::hdlc::{HdlcDecoder, HdlcEncoder};
use sstpd::testing::pair::LinkPair;

fn demux(c: &mut Criterion) {
    let auth = authenticator();
    let mut pair = LinkPair::new(
        server_config().ppp,
        client_config().ppp,
        sstp_bench::workload::USERNAME,
        sstp_bench::workload::PASSWORD,
        3,
    )
    .with_authenticator(auth);
    pair.open();
    assert!(
        pair.run_until(Duration::from_secs(60), |p| p.server.ipv4().is_some()
            && p.client.ipv4().is_some()),
        "IPCP did not come up: {pair:?}"
    );
    let peer = pair.server.ipv4().expect("IPCP up").peer;
    let frames = imix_ppp_frames(5)
        .into_iter()
        .map(|mut f| {
            // Source = the client's address, as the server expects.
            f[4 + 12..4 + 16].copy_from_slice(&peer.octets());
            f
        })
        .collect::<Vec<_>>();
    let now = pair.now;
    let mut g = c.benchmark_group("ppp_demux");
    for size in [64usize, 1400] {
        let frame = frames
            .iter()
            .find(|f| f.len() == size + 4)
            .expect("IMIX size")
            .clone();
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("ipv4_{size}"), |b| {
            b.iter(|| {
                let mut delivered = 0usize;
                pair.server
                    .handle_frame(now, black_box(&frame), &mut |v: IpVersion, p: &[u8]| {
                        if v == IpVersion::V4 {
                            delivered += p.len();
                        }
                    });
                delivered
            })
        });
    }
    g.finish();
}

fn hdlc(c: &mut Criterion) {
    let frames = imix_ppp_frames(9);
    let bytes: usize = frames.iter().map(Vec::len).sum();
    let encoder = HdlcEncoder::default();
    let mut stream = Vec::new();
    for f in &frames {
        encoder.encode(f, &mut stream);
    }
    let mut g = c.benchmark_group("hdlc");
    g.throughput(Throughput::Bytes(bytes as u64));
    let mut out = Vec::with_capacity(stream.len());
    g.bench_function("encode_imix", |b| {
        b.iter(|| {
            out.clear();
            for f in black_box(&frames) {
                encoder.encode(f, &mut out);
            }
            out.len()
        })
    });
    let mut decoder = HdlcDecoder::default();
    g.bench_function("decode_imix", |b| {
        b.iter(|| {
            let mut input = black_box(&stream[..]);
            let mut n = 0usize;
            while let Some(result) = decoder.decode(&mut input) {
                n += result.map_or(0, <[u8]>::len);
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, demux, hdlc);
criterion_main!(benches);
