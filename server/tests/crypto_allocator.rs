//! aws-lc's allocations go to mimalloc once `main` switches them
//! (`sstpd::sys::memory::crypto_allocations_to_mimalloc`). A test binary of
//! its own: the switch is for the whole process and must come before
//! aws-lc allocates anything, which no other test here can promise.

use std::io::{Read, Write};

use sstpd::config::TlsSection;
use sstpd::sys::memory::crypto_allocations_to_mimalloc;
use sstpd::tls::certs::{generate_self_signed, IdentityOrigin, SelfSignedKey};
use sstpd::tls::client::{build_client_config, server_name, ClientOptions};
use sstpd::tls::{build_server_config, cipher_suites, ServerIdentity, ServerTlsOptions};

#[test]
fn aws_lc_allocates_from_mimalloc_once_switched_and_a_second_switch_is_refused() {
    // Under nextest the first switch of this process; under plain `cargo
    // test` the other test may have made it.
    let _ = crypto_allocations_to_mimalloc();
    // SAFETY: aws-lc's own allocation functions; the block is used within
    // its size and freed once.
    unsafe {
        let p = aws_lc_sys::OPENSSL_malloc(100);
        assert!(!p.is_null());
        assert!(libmimalloc_sys::mi_is_in_heap_region(p.cast_const()));
        std::ptr::write_bytes(p.cast::<u8>(), 0xa5, 100);
        let q = aws_lc_sys::OPENSSL_realloc(p, 5000);
        assert!(!q.is_null());
        assert!(libmimalloc_sys::mi_is_in_heap_region(q.cast_const()));
        let kept = std::slice::from_raw_parts(q.cast::<u8>(), 100);
        assert!(kept.iter().all(|&b| b == 0xa5));
        aws_lc_sys::OPENSSL_free(q);
    }
    assert!(!crypto_allocations_to_mimalloc());
}

#[test]
fn tls_handshakes_and_records_run_on_the_switched_allocations() {
    // The same process as the test above may have switched already (plain
    // `cargo test` runs both in one); either way aws-lc is on mimalloc.
    let _ = crypto_allocations_to_mimalloc();
    let cert = generate_self_signed(SelfSignedKey::EcdsaP256, &["localhost"]).unwrap();
    let identity = ServerIdentity::from_der(
        vec![cert.cert_der],
        cert.key_der,
        "generated".into(),
        IdentityOrigin::SelfSignedGenerated,
    )
    .unwrap();
    let server_config = build_server_config(
        &TlsSection::default(),
        &identity,
        cipher_suites(None).unwrap(),
        ServerTlsOptions {
            secret_extraction: false,
        },
    )
    .unwrap();
    let client_config = build_client_config(&ClientOptions::default()).unwrap();
    // Several connections, so that what one frees another allocates.
    for _ in 0..20 {
        let mut server = rustls::ServerConnection::new(server_config.clone()).unwrap();
        let name = server_name("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(client_config.clone(), name).unwrap();
        client.writer().write_all(b"through the tunnel").unwrap();
        let mut wire = Vec::new();
        for _ in 0..10 {
            wire.clear();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            wire.clear();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        let mut got = Vec::new();
        let _ = server.reader().read_to_end(&mut got);
        assert_eq!(got, b"through the tunnel");
    }
}
