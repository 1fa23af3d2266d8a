#![cfg(feature = "runtime")]
//! rustls over tokio-uring: a real loopback handshake and a byte-exact echo,
//! for TLS 1.2 and TLS 1.3.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sstpd::net::uring_tls::{Offload, ReadOutcome, TlsConn};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn configs(
    version: &'static rustls::SupportedProtocolVersion,
) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_der: CertificateDer<'static> = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let server = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let client = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// Accepts one connection on `listener` (a tokio-uring runtime must be
/// running) and wraps it in a server `TlsConn`, handshake not yet done.
async fn accept_tls(listener: std::net::TcpListener, config: Arc<ServerConfig>) -> TlsConn {
    let listener = tokio_uring::net::TcpListener::from_std(listener);
    let (tcp, _) = listener.accept().await.unwrap();
    let conn = rustls::server::UnbufferedServerConnection::new(config).unwrap();
    TlsConn::new(tcp, conn)
}

/// Connects to `addr` as "localhost" and completes the handshake; what
/// arrived with it is in the returned buffer.
async fn connect_tls(addr: std::net::SocketAddr, config: Arc<ClientConfig>) -> (TlsConn, Vec<u8>) {
    let tcp = tokio_uring::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::client::UnbufferedClientConnection::new(config, name).unwrap();
    let tls = TlsConn::new(tcp, conn);
    let mut received = Vec::new();
    tls.handshake(Duration::from_secs(5), &mut received)
        .await
        .unwrap();
    (tls, received)
}

/// Echoes everything the client sends until it closes; returns the byte
/// count and the negotiated version.
fn run_echo(
    version: &'static rustls::SupportedProtocolVersion,
    payload: Vec<u8>,
    try_kernel_tls: bool,
) {
    let (server_cfg, client_cfg) = configs(version);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();

    let server = std::thread::spawn(move || {
        tokio_uring::start(async move {
            let tls = accept_tls(listener, server_cfg).await;
            if try_kernel_tls {
                tls.read_exact_records_during_handshake();
            }
            let mut plain = Vec::new();
            tls.handshake(Duration::from_secs(5), &mut plain)
                .await
                .unwrap();
            let negotiated = tls.with_tls(|c| c.protocol_version()).flatten();
            if try_kernel_tls {
                match tls
                    .offload_to_kernel()
                    .expect("a refused offload is not fatal")
                {
                    // This kernel has no TLS ULP: the connection must carry
                    // on in userspace, losing nothing.
                    Offload::StayedInUserspace(reason) => {
                        assert!(!tls.is_kernel_tls(), "{reason:?}");
                    }
                    // A kernel with kTLS: the records are the kernel's now.
                    Offload::Kernel { early_plaintext } => {
                        assert!(tls.is_kernel_tls());
                        plain.extend_from_slice(&early_plaintext);
                    }
                }
            }
            let mut echoed = 0usize;
            loop {
                if !plain.is_empty() {
                    tls.write_plaintext(&plain).await.unwrap();
                    echoed += plain.len();
                    plain.clear();
                }
                match tls.read_plaintext(&mut plain).await.unwrap() {
                    ReadOutcome::Closed => break,
                    ReadOutcome::Data(_) => {}
                }
            }
            tls.close().await.unwrap();
            (echoed, negotiated)
        })
    });

    let expected = payload.clone();
    let client = std::thread::spawn(move || {
        tokio_uring::start(async move {
            let (tls, mut received) = connect_tls(addr, client_cfg).await;
            // Send in uneven pieces so records and reads do not line up.
            for chunk in payload.chunks(7_777) {
                tls.write_plaintext(chunk).await.unwrap();
            }
            while received.len() < payload.len() {
                match tls.read_plaintext(&mut received).await.unwrap() {
                    ReadOutcome::Closed => panic!("server closed early"),
                    ReadOutcome::Data(_) => {}
                }
            }
            // Graceful TLS close: send close_notify, then wait for the
            // server's before dropping the socket.
            tls.close().await.unwrap();
            let mut rest = Vec::new();
            loop {
                match tls.read_plaintext(&mut rest).await.unwrap() {
                    ReadOutcome::Closed => break,
                    ReadOutcome::Data(_) => assert!(rest.is_empty(), "data after close"),
                }
            }
            received
        })
    });

    let received = client.join().unwrap();
    let (echoed, negotiated) = server.join().unwrap();
    assert_eq!(received, expected, "echoed bytes differ");
    assert_eq!(echoed, expected.len());
    assert_eq!(negotiated, Some(version.version));
}

fn payload() -> Vec<u8> {
    (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

#[test]
fn echo_over_tls13() {
    run_echo(&rustls::version::TLS13, payload(), false);
}

#[test]
fn echo_over_tls12() {
    run_echo(&rustls::version::TLS12, payload(), false);
}

/// The kernel-TLS path as far as this kernel allows: the handshake is read
/// record by record (nothing beyond it may sit in userspace), then the
/// switch is attempted; refused, the session continues in userspace.
#[test]
fn kernel_tls_attempt_reads_records_exactly_and_falls_back_cleanly() {
    run_echo(&rustls::version::TLS13, payload(), true);
    run_echo(&rustls::version::TLS12, payload(), true);
}

/// A connection that read little (a keepalive) waits for its next data
/// without a read buffer in the kernel (an idle session then holds none);
/// what arrives after a silence, a byte and then a burst much larger than
/// one read, is read whole.
#[test]
fn a_quiet_connection_waits_without_a_buffer_and_reads_what_comes_after() {
    const PAUSE: Duration = Duration::from_millis(1_300);
    let (server_cfg, client_cfg) = configs(&rustls::version::TLS13);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let burst = payload();
    let expected = burst.len() + 1;

    let server = std::thread::spawn(move || {
        tokio_uring::start(async move {
            let tls = accept_tls(listener, server_cfg).await;
            tls.small_reads_are_quiet(true);
            let mut plain = Vec::new();
            tls.handshake(Duration::from_secs(5), &mut plain)
                .await
                .unwrap();
            // The handshake's flight left a write buffer behind; a quiet
            // session gives it back, and the echo below still goes out.
            assert!(tls.write_buffer_capacity() > 0);
            tls.release_write_buffer();
            assert_eq!(tls.write_buffer_capacity(), 0);
            // The first byte comes after a pause.
            while plain.is_empty() {
                tls.read_plaintext(&mut plain).await.unwrap();
            }
            assert!(
                tls.is_quiet(),
                "a read that waited {PAUSE:?} marks it quiet"
            );
            // The burst comes after another pause: the first read of it
            // follows a wait without a buffer, the rest come back to back.
            while plain.len() < expected {
                match tls.read_plaintext(&mut plain).await.unwrap() {
                    ReadOutcome::Closed => panic!("client closed early"),
                    ReadOutcome::Data(_) => {}
                }
            }
            tls.write_plaintext(&plain).await.unwrap();
            plain
        })
    });
    let client = std::thread::spawn(move || {
        tokio_uring::start(async move {
            let (tls, mut received) = connect_tls(addr, client_cfg).await;
            tokio::time::sleep(PAUSE).await;
            tls.write_plaintext(&[0x5a]).await.unwrap();
            tokio::time::sleep(PAUSE).await;
            tls.write_plaintext(&burst).await.unwrap();
            while received.len() < expected {
                match tls.read_plaintext(&mut received).await.unwrap() {
                    ReadOutcome::Closed => panic!("server closed early"),
                    ReadOutcome::Data(_) => {}
                }
            }
            let mut sent = vec![0x5a];
            sent.extend_from_slice(&burst);
            assert_eq!(received, sent, "echoed bytes differ");
        })
    });
    client.join().unwrap();
    let read = server.join().unwrap();
    assert_eq!(read.len(), expected);
}
