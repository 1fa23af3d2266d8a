//! MS-CHAPv2 microbenchmarks (RFC 2759, RFC 3079): the NT-Response, the
//! authenticator response and the MPPE master keys, i.e. the per-session
//! authentication cost of the server. Quick run: `cargo bench -p
//! sstp-bench --bench auth -- --quick`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sstpd::proto::auth::{mppe, mschapv2};
use sstpd::proto::Role;

fn mschapv2_benches(c: &mut Criterion) {
    let authenticator_challenge = [0x5bu8; 16];
    let peer_challenge = [0x21u8; 16];
    let username = b"bench";
    let password = b"bench-password";
    let hash = mschapv2::nt_password_hash(password);
    let nt_response = mschapv2::generate_nt_response(
        &authenticator_challenge,
        &peer_challenge,
        username,
        password,
    );
    let mut g = c.benchmark_group("mschapv2");
    g.bench_function("nt_password_hash", |b| {
        b.iter(|| mschapv2::nt_password_hash(black_box(password)))
    });
    g.bench_function("nt_response", |b| {
        b.iter(|| {
            mschapv2::generate_nt_response(
                black_box(&authenticator_challenge),
                &peer_challenge,
                username,
                password,
            )
        })
    });
    g.bench_function("authenticator_response", |b| {
        b.iter(|| {
            mschapv2::generate_authenticator_response(
                black_box(&hash),
                &nt_response,
                &peer_challenge,
                &authenticator_challenge,
                username,
            )
        })
    });
    g.bench_function("mppe_master_keys", |b| {
        b.iter(|| mppe::master_keys(black_box(&hash), &nt_response, Role::Server))
    });
    g.finish();
}

criterion_group!(benches, mschapv2_benches);
criterion_main!(benches);
