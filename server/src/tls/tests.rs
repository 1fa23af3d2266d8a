//! TLS tests: identities (RSA and ECDSA, every PEM key encoding), server and
//! client configurations, real loopback handshakes for every suite, and kTLS
//! probing, decisions and the switch-over.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ConnectionTrafficSecrets, ProtocolVersion, SupportedCipherSuite};
use sha2::{Digest, Sha256};

use super::certs::{self, IdentityOrigin};
use super::client::{self, ClientOptions, ServerVerification};
use super::ktls::{self, *};
use super::*;
use crate::config::{Config, KtlsMode, TlsSection, TlsVersion};

struct TestIdentity {
    identity: ServerIdentity,
    generated: certs::GeneratedCert,
}

fn make_identity(kind: SelfSignedKey) -> TestIdentity {
    let generated = certs::generate_self_signed(kind, &["localhost", "127.0.0.1"]).unwrap();
    let identity = ServerIdentity::from_der(
        vec![generated.cert_der.clone()],
        generated.key_der.clone_key(),
        PathBuf::from("memory"),
        IdentityOrigin::Files,
    )
    .unwrap();
    TestIdentity {
        identity,
        generated,
    }
}

/// RSA key generation is slow in debug builds: one of each per test run.
fn rsa() -> &'static TestIdentity {
    static RSA: OnceLock<TestIdentity> = OnceLock::new();
    RSA.get_or_init(|| make_identity(SelfSignedKey::Rsa2048))
}

fn ecdsa() -> &'static TestIdentity {
    static ECDSA: OnceLock<TestIdentity> = OnceLock::new();
    ECDSA.get_or_init(|| make_identity(SelfSignedKey::EcdsaP256))
}

fn server_config(
    tls: &TlsSection,
    identity: &ServerIdentity,
    secret_extraction: bool,
) -> Arc<rustls::ServerConfig> {
    let suites = cipher_suites(tls.cipher_suites.as_deref()).unwrap();
    build_server_config(
        tls,
        identity,
        suites,
        ServerTlsOptions { secret_extraction },
    )
    .unwrap()
}

fn client_config(version: TlsVersion, suite: &str) -> Arc<rustls::ClientConfig> {
    client::build_client_config(&ClientOptions {
        min_version: version,
        max_version: version,
        cipher_suites: Some(vec![suite.to_owned()]),
        secret_extraction: true,
        ..ClientOptions::default()
    })
    .unwrap()
}

/// One side of a finished loopback handshake.
struct Established<C> {
    conn: C,
    sock: TcpStream,
}

/// Runs a real handshake over loopback TCP: the server in a thread, the
/// client here. Each side writes `client_hello`/reads it as the first
/// application data; returns both ends, handshakes complete, or the
/// client's and server's errors.
#[allow(clippy::type_complexity)]
fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    sni: &str,
) -> Result<
    (
        Established<rustls::ServerConnection>,
        Established<rustls::ClientConnection>,
    ),
    (String, String),
> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let server_thread = thread::spawn(move || -> Result<_, String> {
        let (mut sock, _) = listener.accept().map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut conn = rustls::ServerConnection::new(server).map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
        }
        // Flush whatever the handshake left (TLS 1.2: the server Finished
        // goes out inside complete_io already).
        while conn.wants_write() {
            conn.write_tls(&mut sock).map_err(|e| e.to_string())?;
        }
        Ok(Established { conn, sock })
    });
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(client, name).unwrap();
    let client_result = (|| {
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    })();
    if client_result.is_err() {
        // Unblock the server if it still waits.
        let _ = sock.shutdown(std::net::Shutdown::Both);
    }
    let server_result = server_thread.join().unwrap();
    match (client_result, server_result) {
        (Ok(()), Ok(server)) => Ok((server, Established { conn, sock })),
        (c, s) => Err((c.err().unwrap_or_default(), s.err().unwrap_or_default())),
    }
}

/// Sends `data` from the client and reads it on the server, and back.
fn exchange(
    server: &mut Established<rustls::ServerConnection>,
    client: &mut Established<rustls::ClientConnection>,
) {
    rustls::Stream::new(&mut client.conn, &mut client.sock)
        .write_all(b"SSTP_DUPLEX_POST")
        .unwrap();
    let mut buf = [0u8; 16];
    rustls::Stream::new(&mut server.conn, &mut server.sock)
        .read_exact(&mut buf)
        .unwrap();
    assert_eq!(&buf, b"SSTP_DUPLEX_POST");
    rustls::Stream::new(&mut server.conn, &mut server.sock)
        .write_all(b"HTTP/1.1 200 OK\r\n")
        .unwrap();
    let mut buf = [0u8; 17];
    rustls::Stream::new(&mut client.conn, &mut client.sock)
        .read_exact(&mut buf)
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200 OK\r\n");
}

fn traffic_key(secrets: &ConnectionTrafficSecrets) -> (&'static str, Vec<u8>, Vec<u8>) {
    match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
            ("aes128gcm", key.as_ref().to_vec(), iv.as_ref().to_vec())
        }
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
            ("aes256gcm", key.as_ref().to_vec(), iv.as_ref().to_vec())
        }
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            ("chacha20", key.as_ref().to_vec(), iv.as_ref().to_vec())
        }
        _ => panic!("unexpected secrets variant"),
    }
}

// ---------------------------------------------------------------------------
// Identities

#[test]
fn generated_identities_have_the_right_key_kind_and_fingerprint() {
    for (t, kind) in [(rsa(), KeyKind::Rsa), (ecdsa(), KeyKind::Ecdsa)] {
        assert_eq!(t.identity.key_kind(), kind);
        let digest: [u8; 32] = Sha256::digest(t.generated.cert_der.as_ref()).into();
        assert_eq!(t.identity.leaf_sha256(), digest);
        assert_eq!(t.identity.leaf().as_ref(), t.generated.cert_der.as_ref());
        let fp = t.identity.fingerprint();
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert_eq!(fp, colon_hex(&digest));
        assert!(fp
            .split(':')
            .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit())));
    }
}

#[test]
fn colon_hex_format() {
    assert_eq!(colon_hex(&[]), "");
    assert_eq!(colon_hex(&[0x0a]), "0a");
    assert_eq!(colon_hex(&[0xde, 0xad, 0x00, 0xff]), "de:ad:00:ff");
}

/// Reads one DER TLV: (tag, content, rest).
fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = match input[1] {
        n if n < 0x80 => (usize::from(n), 2),
        0x81 => (usize::from(input[2]), 3),
        0x82 => (usize::from(u16::from_be_bytes([input[2], input[3]])), 4),
        other => panic!("unexpected DER length form {other:#x}"),
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// The inner key of a PKCS#8 PrivateKeyInfo (RFC 5208): PKCS#1 for RSA,
/// SEC1 for EC.
fn pkcs8_inner(pkcs8: &[u8]) -> Vec<u8> {
    let (tag, info, _) = der_tlv(pkcs8);
    assert_eq!(tag, 0x30);
    let (_, _version, rest) = der_tlv(info);
    let (_, _algorithm, rest) = der_tlv(rest);
    let (tag, key, _) = der_tlv(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64_lines::encode;
    format!(
        "-----BEGIN {label}-----\n{}-----END {label}-----\n",
        encode(der)
    )
}

/// Minimal base64 for PEM bodies (test helper; no crate needed).
mod base64_lines {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(data: &[u8]) -> String {
        let mut out = String::new();
        for (i, chunk) in data.chunks(3).enumerate() {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for j in 0..4 {
                if j <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * j)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
            if (i + 1) % 16 == 0 {
                out.push('\n');
            }
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }
}

fn write_files(dir: &Path, cert_pem: &str, key_pem: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, key_pem).unwrap();
    (cert, key)
}

#[test]
fn pem_files_in_every_key_encoding() {
    let dir = tempfile::tempdir().unwrap();
    for (t, kind, traditional_label) in [
        (rsa(), KeyKind::Rsa, "RSA PRIVATE KEY"),
        (ecdsa(), KeyKind::Ecdsa, "EC PRIVATE KEY"),
    ] {
        let pkcs8 = t.generated.key_der.secret_der().to_vec();
        let encodings = [
            t.generated.key_pem.clone(),
            pem("PRIVATE KEY", &pkcs8),
            pem(traditional_label, &pkcs8_inner(&pkcs8)),
        ];
        for key_pem in encodings {
            let (cert, key) = write_files(dir.path(), &t.generated.cert_pem, &key_pem);
            let identity = ServerIdentity::from_pem_files(&cert, &key, IdentityOrigin::Files)
                .unwrap_or_else(|e| panic!("{kind:?} {key_pem}: {e}"));
            assert_eq!(identity.key_kind(), kind);
            assert_eq!(identity.leaf_sha256(), t.identity.leaf_sha256());
            assert_eq!(identity.cert_path(), cert.as_path());
        }
    }
}

#[test]
fn chains_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let chain = format!("{}{}", ecdsa().generated.cert_pem, rsa().generated.cert_pem);
    let (cert, key) = write_files(dir.path(), &chain, &ecdsa().generated.key_pem);
    let identity = ServerIdentity::from_pem_files(&cert, &key, IdentityOrigin::Files).unwrap();
    assert_eq!(identity.certified_key().cert.len(), 2);
    assert_eq!(identity.leaf_sha256(), ecdsa().identity.leaf_sha256());
}

#[test]
fn identity_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = |cert: &str, key: &str| {
        let (c, k) = write_files(dir.path(), cert, key);
        ServerIdentity::from_pem_files(&c, &k, IdentityOrigin::Files)
            .unwrap_err()
            .to_string()
    };
    let cert = &ecdsa().generated.cert_pem;
    let key = &ecdsa().generated.key_pem;
    // The RSA key does not belong to the ECDSA certificate.
    let msg = e(cert, &rsa().generated.key_pem);
    assert!(
        msg.starts_with("tls.private_key: does not belong to the certificate"),
        "{msg}"
    );
    let msg = e("", key);
    assert!(
        msg.starts_with("tls.certificate: ") && msg.ends_with("no CERTIFICATE block in the file"),
        "{msg}"
    );
    let msg = e(cert, "garbage");
    assert!(
        msg.starts_with("tls.private_key: ") && msg.contains("no private key block"),
        "{msg}"
    );
    let msg = e(
        cert,
        "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
    );
    assert!(
        msg.starts_with("tls.private_key: ") && msg.contains("malformed PEM"),
        "{msg}"
    );
    let msg = e(cert, &pem("PRIVATE KEY", b"\x30\x03\x02\x01\x00"));
    assert!(
        msg.starts_with("tls.private_key: not a usable RSA or ECDSA key"),
        "{msg}"
    );
    // Ed25519 works in TLS but not with Windows' SSTP client.
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let msg = e(cert, &ed.serialize_pem());
    assert!(msg.contains("ED25519 keys are not supported"), "{msg}");

    let missing = ServerIdentity::from_pem_files(
        &dir.path().join("nope.pem"),
        &dir.path().join("key.pem"),
        IdentityOrigin::Files,
    )
    .unwrap_err();
    assert_eq!(missing.as_str(), "read");
    assert!(missing
        .to_string()
        .starts_with("tls.certificate: cannot read "));
}

#[test]
fn self_signed_is_generated_once_then_reused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut config = Config::embedded_defaults_with(Some("x".into()), &mut rand::rng());
    config.server.state_dir = Some(state.clone());

    let first = ServerIdentity::load(&config).unwrap();
    assert_eq!(*first.origin(), IdentityOrigin::SelfSignedGenerated);
    assert_eq!(first.key_kind(), KeyKind::Ecdsa);
    assert_eq!(first.cert_path(), state.join(certs::SELF_SIGNED_CERT_FILE));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join(certs::SELF_SIGNED_KEY_FILE)), 0o600);

    let second = ServerIdentity::load(&config).unwrap();
    assert_eq!(*second.origin(), IdentityOrigin::SelfSignedReused);
    assert_eq!(second.leaf_sha256(), first.leaf_sha256());

    // A lone certificate (key deleted) is an error, not a silent regenerate.
    std::fs::remove_file(state.join(certs::SELF_SIGNED_KEY_FILE)).unwrap();
    let err = ServerIdentity::load(&config).unwrap_err().to_string();
    assert!(err.contains("only one of"), "{err}");
}

#[test]
fn self_signed_certificate_is_valid_for_localhost() {
    // Verified with a real CA-checking client for both key types.
    for t in [rsa(), ecdsa()] {
        let server = server_config(&TlsSection::default(), &t.identity, false);
        let client = client::build_client_config(&ClientOptions {
            verification: ServerVerification::CaCertificates(vec![t.generated.cert_der.clone()]),
            ..ClientOptions::default()
        })
        .unwrap();
        let (mut s, mut c) = handshake(server.clone(), client.clone(), "localhost").unwrap();
        exchange(&mut s, &mut c);
        handshake(server.clone(), client.clone(), "127.0.0.1").unwrap();
        let (client_err, _) = handshake(server, client, "vpn.example.com").err().unwrap();
        assert!(
            client_err.contains("certificate not valid for name \"vpn.example.com\""),
            "{client_err}"
        );
    }
}

// ---------------------------------------------------------------------------
// Server configuration

#[test]
fn cipher_suite_names() {
    assert_eq!(DEFAULT_CIPHER_SUITE_NAMES.len(), 9);
    for name in DEFAULT_CIPHER_SUITE_NAMES {
        let suite = cipher_suite_by_name(name).unwrap();
        assert_eq!(cipher_suite_name(suite), *name);
        assert!(ktls::KtlsCipher::of_suite(suite).is_some(), "{name}");
    }
    assert_eq!(
        cipher_suite_by_name("tls13_aes_256_gcm_sha384").unwrap(),
        rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384
    );
    assert!(cipher_suite_by_name("TLS_RSA_WITH_AES_128_CBC_SHA")
        .unwrap_err()
        .starts_with("unknown cipher suite"));
    // Every suite rustls (aws-lc-rs) has is in the default list.
    assert_eq!(
        rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES.len(),
        DEFAULT_CIPHER_SUITE_NAMES.len()
    );
}

#[test]
fn server_config_settings() {
    let t = ecdsa();
    let config = server_config(&TlsSection::default(), &t.identity, true);
    assert!(config.enable_secret_extraction);
    assert_eq!(config.send_tls13_tickets, 0);
    assert!(!config.session_storage.can_cache());
    assert!(config.alpn_protocols.is_empty());
    assert_eq!(config.crypto_provider().cipher_suites.len(), 9);

    let tickets = TlsSection {
        session_tickets: true,
        ktls: KtlsMode::Off,
        ..TlsSection::default()
    };
    let config = server_config(&tickets, &t.identity, false);
    assert!(!config.enable_secret_extraction);
    assert_eq!(config.send_tls13_tickets, 2);
    assert!(config.ticketer.enabled());

    let tls13 = TlsSection {
        min_version: TlsVersion::Tls13,
        ..TlsSection::default()
    };
    let config = server_config(&tls13, &t.identity, false);
    assert_eq!(suite_names(&config), DEFAULT_CIPHER_SUITE_NAMES[..3]);

    let tls12 = TlsSection {
        max_version: TlsVersion::Tls12,
        ..TlsSection::default()
    };
    let config = server_config(&tls12, &t.identity, false);
    assert_eq!(suite_names(&config), DEFAULT_CIPHER_SUITE_NAMES[3..]);
}

/// The names of the suites a server configuration offers, in order.
fn suite_names(config: &rustls::ServerConfig) -> Vec<String> {
    config
        .crypto_provider()
        .cipher_suites
        .iter()
        .map(|s| cipher_suite_name(*s))
        .collect()
}

#[test]
fn max_version_pins_what_a_client_offering_both_gets() {
    let t = ecdsa();
    for (max, expected) in [
        (TlsVersion::Tls12, ProtocolVersion::TLSv1_2),
        (TlsVersion::Tls13, ProtocolVersion::TLSv1_3),
    ] {
        let server = server_config(
            &TlsSection {
                max_version: max,
                ..TlsSection::default()
            },
            &t.identity,
            false,
        );
        let client = client::build_client_config(&ClientOptions::default()).unwrap();
        let (server, client) = handshake(server, client, "localhost").unwrap();
        assert_eq!(server.conn.protocol_version(), Some(expected), "{max:?}");
        assert_eq!(client.conn.protocol_version(), Some(expected), "{max:?}");
    }
}

#[test]
fn server_config_errors() {
    let only_ecdsa_tls12 = TlsSection {
        cipher_suites: Some(vec![
            "TLS13_AES_128_GCM_SHA256".into(),
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
        ]),
        ..TlsSection::default()
    };
    let suites = cipher_suites(only_ecdsa_tls12.cipher_suites.as_deref()).unwrap();
    let err = build_server_config(
        &only_ecdsa_tls12,
        &rsa().identity,
        suites.clone(),
        ServerTlsOptions {
            secret_extraction: false,
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tls.cipher_suites: no TLS 1.2 suite in tls.cipher_suites works with the RSA key of the certificate"
    );
    build_server_config(
        &only_ecdsa_tls12,
        &ecdsa().identity,
        suites,
        ServerTlsOptions {
            secret_extraction: false,
        },
    )
    .unwrap();

    let tls13_only_suites_missing = TlsSection {
        min_version: TlsVersion::Tls13,
        ..TlsSection::default()
    };
    let tls12_suites = vec![cipher_suite_by_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256").unwrap()];
    let err = build_server_config(
        &tls13_only_suites_missing,
        &rsa().identity,
        tls12_suites,
        ServerTlsOptions {
            secret_extraction: false,
        },
    )
    .unwrap_err();
    assert_eq!(err.as_str(), "cipher_suite");
    assert!(err.to_string().contains("no cipher suite left for TLS 1.3"));

    let inverted = TlsSection {
        min_version: TlsVersion::Tls13,
        max_version: TlsVersion::Tls12,
        ..TlsSection::default()
    };
    let err = build_server_config(
        &inverted,
        &rsa().identity,
        cipher_suites(None).unwrap(),
        ServerTlsOptions {
            secret_extraction: false,
        },
    )
    .unwrap_err();
    assert_eq!(err.as_str(), "versions");
}

// ---------------------------------------------------------------------------
// Handshakes

/// Every suite with each key type it works with, over real TCP, with TLS 1.2-
/// and 1.3-only clients: the negotiated parameters match on both ends, data
/// flows both ways, the client sees the server's leaf, and the extracted
/// traffic secrets pair up (what kTLS would be given) and convert to kernel
/// crypto_info.
#[test]
fn loopback_handshakes_for_every_suite_and_key_type() {
    let mut handshakes = 0;
    for t in [rsa(), ecdsa()] {
        let server = server_config(&TlsSection::default(), &t.identity, true);
        for name in DEFAULT_CIPHER_SUITE_NAMES {
            let suite = cipher_suite_by_name(name).unwrap();
            if !suite_usable_with_key(suite, t.identity.key_kind()) {
                continue;
            }
            let version = suite_version(suite);
            let (mut s, mut c) =
                handshake(server.clone(), client_config(version, name), "localhost")
                    .unwrap_or_else(|e| panic!("{name} with {:?}: {e:?}", t.identity.key_kind()));
            let expected_version = match version {
                TlsVersion::Tls12 => ProtocolVersion::TLSv1_2,
                TlsVersion::Tls13 => ProtocolVersion::TLSv1_3,
            };
            assert_eq!(s.conn.protocol_version(), Some(expected_version));
            assert_eq!(c.conn.protocol_version(), Some(expected_version));
            assert_eq!(s.conn.negotiated_cipher_suite(), Some(suite));
            assert_eq!(c.conn.negotiated_cipher_suite(), Some(suite));
            assert_eq!(s.conn.alpn_protocol(), None);
            assert_eq!(
                client::peer_leaf(&c.conn).map(|l| l.as_ref()),
                Some(t.identity.leaf().as_ref())
            );
            assert_eq!(s.conn.server_name(), Some("localhost"));
            exchange(&mut s, &mut c);

            let server_secrets = s.conn.dangerous_extract_secrets().unwrap();
            let client_secrets = c.conn.dangerous_extract_secrets().unwrap();
            // Two application records each way were exchanged.
            assert_eq!(server_secrets.tx.0, client_secrets.rx.0);
            assert_eq!(server_secrets.rx.0, client_secrets.tx.0);
            let (kind, key, iv) = traffic_key(&server_secrets.tx.1);
            assert_eq!((kind, key.clone(), iv), traffic_key(&client_secrets.rx.1));
            let expected_key_len = match ktls::KtlsCipher::of_suite(suite).unwrap() {
                KtlsCipher::AesGcm128 => 16,
                _ => 32,
            };
            assert_eq!(key.len(), expected_key_len, "{name}");
            assert_eq!(
                traffic_key(&server_secrets.rx.1),
                traffic_key(&client_secrets.tx.1)
            );
            let info = ::ktls::CryptoInfo::from_rustls(suite, server_secrets.tx).unwrap();
            let expected_info = match ktls::KtlsCipher::of_suite(suite).unwrap() {
                KtlsCipher::AesGcm128 => matches!(info, ::ktls::CryptoInfo::AesGcm128(_)),
                KtlsCipher::AesGcm256 => matches!(info, ::ktls::CryptoInfo::AesGcm256(_)),
                KtlsCipher::Chacha20Poly1305 => {
                    matches!(info, ::ktls::CryptoInfo::Chacha20Poly1305(_))
                }
            };
            assert!(expected_info, "{name}");
            ::ktls::CryptoInfo::from_rustls(suite, server_secrets.rx).unwrap();
            handshakes += 1;
        }
    }
    // RSA: 3 TLS 1.3 + 3 ECDHE-RSA; ECDSA: 3 TLS 1.3 + 3 ECDHE-ECDSA.
    assert_eq!(handshakes, 12);
}

#[test]
fn version_and_suite_mismatches_fail() {
    let t = ecdsa();
    let tls13_server = server_config(
        &TlsSection {
            min_version: TlsVersion::Tls13,
            ..TlsSection::default()
        },
        &t.identity,
        false,
    );
    let (client_err, server_err) = handshake(
        tls13_server,
        client_config(TlsVersion::Tls12, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
        "localhost",
    )
    .err()
    .unwrap();
    assert_eq!(client_err, "received fatal alert: ProtocolVersion");
    assert_eq!(server_err, "peer is incompatible: Tls12NotOfferedOrEnabled");

    // An RSA certificate cannot serve a client that only offers ECDSA suites.
    let server = server_config(&TlsSection::default(), &rsa().identity, false);
    let err = handshake(
        server,
        client_config(TlsVersion::Tls12, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
        "localhost",
    )
    .err()
    .unwrap();
    assert_eq!(err.1, "peer is incompatible: NoCipherSuitesInCommon");
}

#[test]
fn client_options() {
    let err = client::build_client_config(&ClientOptions {
        min_version: TlsVersion::Tls13,
        max_version: TlsVersion::Tls12,
        ..ClientOptions::default()
    })
    .unwrap_err();
    assert!(err
        .to_string()
        .contains("min version 1.3 is above max version 1.2"));
    let err = client::build_client_config(&ClientOptions {
        min_version: TlsVersion::Tls13,
        max_version: TlsVersion::Tls13,
        cipher_suites: Some(vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()]),
        ..ClientOptions::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("no cipher suite left"));
    let config = client::build_client_config(&ClientOptions {
        send_sni: false,
        ..ClientOptions::default()
    })
    .unwrap();
    assert!(!config.enable_sni);
    assert!(matches!(
        client::server_name("10.0.0.1").unwrap(),
        ServerName::IpAddress(_)
    ));
    assert!(matches!(
        client::server_name("vpn.example.com").unwrap(),
        ServerName::DnsName(_)
    ));
    assert!(client::server_name("not a name").is_err());

    // A CA file.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &rsa().generated.cert_pem).unwrap();
    let config = client::build_client_config(&ClientOptions {
        verification: ServerVerification::CaFile(ca),
        ..ClientOptions::default()
    })
    .unwrap();
    let server = server_config(&TlsSection::default(), &rsa().identity, false);
    handshake(server.clone(), config, "localhost").unwrap();
    // ... that does not hold the server's certificate.
    std::fs::write(dir.path().join("other.pem"), &ecdsa().generated.cert_pem).unwrap();
    let config = client::build_client_config(&ClientOptions {
        verification: ServerVerification::CaFile(dir.path().join("other.pem")),
        ..ClientOptions::default()
    })
    .unwrap();
    let (client_err, _) = handshake(server, config, "localhost").err().unwrap();
    // Same subject as the server's certificate, different key: the
    // signature does not verify.
    assert!(
        client_err.starts_with("invalid peer certificate"),
        "{client_err}"
    );
    let missing = client::build_client_config(&ClientOptions {
        verification: ServerVerification::CaFile(dir.path().join("missing.pem")),
        ..ClientOptions::default()
    })
    .unwrap_err();
    assert_eq!(missing.as_str(), "read");
}

// ---------------------------------------------------------------------------
// kTLS

#[test]
fn ktls_probe_matches_the_kernel() {
    let support = ktls::probe();
    let available_ulps =
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp").unwrap_or_default();
    match &support {
        KtlsSupport::Unavailable(KtlsUnavailable::Ulp(KernelRefusal::TlsModuleMissing)) => {
            // This machine: no TLS ULP, setsockopt says ENOENT.
            assert!(!available_ulps.split_whitespace().any(|u| u == "tls"));
        }
        KtlsSupport::Available(ciphers) => {
            assert!(available_ulps.split_whitespace().any(|u| u == "tls"));
            assert!(ciphers.contains(TlsVersion::Tls12, KtlsCipher::AesGcm128));
        }
        other => panic!("unexpected probe result {other:?}"),
    }
}

#[test]
fn kernel_refusals_from_errno() {
    let cases = [
        (
            libc::ENOENT,
            KernelRefusal::TlsModuleMissing,
            "tls_module_missing",
        ),
        (
            libc::ENOPROTOOPT,
            KernelRefusal::NotSupported,
            "not_supported",
        ),
        (
            libc::EOPNOTSUPP,
            KernelRefusal::NotSupported,
            "not_supported",
        ),
        (
            libc::EEXIST,
            KernelRefusal::AlreadyAttached,
            "already_attached",
        ),
        (libc::ENOTCONN, KernelRefusal::NotConnected, "not_connected"),
        (
            libc::EBUSY,
            KernelRefusal::KeysAlreadySet,
            "keys_already_set",
        ),
        (
            libc::EINVAL,
            KernelRefusal::InvalidParameters,
            "invalid_parameters",
        ),
        (libc::ENOMEM, KernelRefusal::Other(libc::ENOMEM), "other"),
    ];
    for (errno, refusal, name) in cases {
        assert_eq!(KernelRefusal::from_errno(errno), refusal);
        assert_eq!(refusal.as_str(), name);
    }
    assert!(KernelRefusal::TlsModuleMissing
        .to_string()
        .contains("modprobe tls"));
    assert_eq!(
        KtlsUnavailable::Ulp(KernelRefusal::TlsModuleMissing).to_string(),
        "setsockopt(TCP_ULP, \"tls\"): the kernel has no TLS upper-layer protocol (ENOENT): \
         `modprobe tls`, or a kernel built with CONFIG_TLS"
    );
}

fn all_suites() -> Vec<SupportedCipherSuite> {
    DEFAULT_CIPHER_SUITE_NAMES
        .iter()
        .map(|n| cipher_suite_by_name(n).unwrap())
        .collect()
}

/// The expected kernel cipher, by name, independent of `KtlsCipher::of_suite`.
fn cipher_by_name(suite: SupportedCipherSuite) -> KtlsCipher {
    let name = cipher_suite_name(suite);
    if name.contains("AES_128_GCM") {
        KtlsCipher::AesGcm128
    } else if name.contains("AES_256_GCM") {
        KtlsCipher::AesGcm256
    } else {
        assert!(name.contains("CHACHA20_POLY1305"));
        KtlsCipher::Chacha20Poly1305
    }
}

#[test]
fn ktls_decision_table() {
    let unavailable =
        KtlsSupport::Unavailable(KtlsUnavailable::Ulp(KernelRefusal::TlsModuleMissing));
    let mut tls12_aes128_only = KernelCiphers::default();
    tls12_aes128_only.insert(TlsVersion::Tls12, KtlsCipher::AesGcm128);
    let partial = KtlsSupport::Available(tls12_aes128_only);
    let full = KtlsSupport::Available(KernelCiphers::ALL);

    // `require` without kernel support does not start.
    let err = KtlsPlan::resolve(KtlsMode::Require, unavailable.clone()).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("tls.ktls: \"require\" but kernel TLS is unavailable: "));

    for suite in all_suites() {
        let cipher = cipher_by_name(suite);
        let is_tls12_aes128 =
            suite_version(suite) == TlsVersion::Tls12 && cipher == KtlsCipher::AesGcm128;
        let table = [
            (
                KtlsMode::Off,
                &unavailable,
                KtlsDecision::Userspace(UserspaceReason::Disabled),
            ),
            (
                KtlsMode::Off,
                &full,
                KtlsDecision::Userspace(UserspaceReason::Disabled),
            ),
            (
                KtlsMode::Off,
                &partial,
                KtlsDecision::Userspace(UserspaceReason::Disabled),
            ),
            (
                KtlsMode::Auto,
                &unavailable,
                KtlsDecision::Userspace(UserspaceReason::KernelUnavailable),
            ),
            (KtlsMode::Auto, &full, KtlsDecision::Kernel(cipher)),
            (
                KtlsMode::Auto,
                &partial,
                if is_tls12_aes128 {
                    KtlsDecision::Kernel(cipher)
                } else {
                    KtlsDecision::Userspace(UserspaceReason::CipherNotInKernel)
                },
            ),
            (KtlsMode::Require, &full, KtlsDecision::Kernel(cipher)),
            (
                KtlsMode::Require,
                &partial,
                if is_tls12_aes128 {
                    KtlsDecision::Kernel(cipher)
                } else {
                    KtlsDecision::Refuse(UserspaceReason::CipherNotInKernel)
                },
            ),
        ];
        for (mode, support, expected) in table {
            let plan = KtlsPlan::resolve(mode, support.clone()).unwrap();
            assert_eq!(
                plan.decide(suite),
                expected,
                "{mode:?} {support:?} {}",
                cipher_suite_name(suite)
            );
        }
    }

    // Secret extraction only where offload may happen.
    let may = |mode, support: &KtlsSupport| {
        KtlsPlan::resolve(mode, support.clone())
            .unwrap()
            .may_offload()
    };
    assert!(!may(KtlsMode::Off, &full));
    assert!(!may(KtlsMode::Auto, &unavailable));
    assert!(may(KtlsMode::Auto, &partial));
    assert!(may(KtlsMode::Require, &full));

    // One startup line (and metric reason) only for auto + unavailable.
    let plan = KtlsPlan::resolve(KtlsMode::Auto, unavailable.clone()).unwrap();
    let (reason, line) = plan.startup_notice().unwrap();
    assert_eq!(reason.as_str(), "ktls_unavailable");
    assert!(line.starts_with("kernel TLS unavailable, encrypting in userspace: setsockopt(TCP_ULP"));
    assert_eq!(
        KtlsPlan::resolve(KtlsMode::Off, unavailable.clone())
            .unwrap()
            .startup_notice(),
        None
    );
    assert_eq!(
        KtlsPlan::resolve(KtlsMode::Auto, full.clone())
            .unwrap()
            .startup_notice(),
        None
    );

    // `require` offers only what the kernel can take over.
    let plan = KtlsPlan::resolve(KtlsMode::Require, partial.clone()).unwrap();
    let offered: Vec<String> = plan
        .offerable_suites(all_suites())
        .into_iter()
        .map(cipher_suite_name)
        .collect();
    assert_eq!(
        offered,
        [
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        ]
    );
    let plan = KtlsPlan::resolve(KtlsMode::Auto, partial).unwrap();
    assert_eq!(plan.offerable_suites(all_suites()).len(), 9);

    assert_eq!(UserspaceReason::Disabled.as_str(), "ktls_disabled");
    assert_eq!(
        UserspaceReason::CipherNotInKernel.as_str(),
        "ktls_cipher_unsupported"
    );
}

#[test]
fn kernel_cipher_set() {
    let mut set = KernelCiphers::default();
    assert!(set.is_empty());
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        for cipher in KtlsCipher::ALL {
            assert!(!set.contains(version, cipher));
            set.insert(version, cipher);
            assert!(set.contains(version, cipher));
        }
    }
    assert_eq!(set, KernelCiphers::ALL);
    for suite in all_suites() {
        assert_eq!(KtlsCipher::of_suite(suite), Some(cipher_by_name(suite)));
        assert!(KernelCiphers::ALL.supports_suite(suite));
        assert!(!KernelCiphers::default().supports_suite(suite));
    }
}

#[test]
fn record_lengths() {
    assert_eq!(ktls::record_len([23, 3, 3, 0x00, 0x00]), 5);
    assert_eq!(ktls::record_len([23, 3, 3, 0x40, 0x11]), 5 + 0x4011);
    assert_eq!(ktls::record_len([0xff; 5]), 5 + 0xffff);
}

#[test]
fn control_records() {
    use ktls::{control_record_action as act, ControlAction as A};
    let v12 = TlsVersion::Tls12;
    let v13 = TlsVersion::Tls13;
    assert_eq!(act(v13, 21, &[1, 0]), A::PeerClosed);
    assert_eq!(act(v12, 21, &[2, 0]), A::PeerClosed);
    assert_eq!(act(v13, 21, &[1, 90]), A::Ignore);
    assert_eq!(act(v12, 21, &[1, 100]), A::Ignore); // no_renegotiation warning
    assert_eq!(act(v13, 21, &[1, 100]), A::PeerAborted { description: 100 });
    assert_eq!(act(v12, 21, &[2, 40]), A::PeerAborted { description: 40 });
    assert_eq!(act(v13, 21, &[2]), A::PeerAborted { description: 50 });
    assert_eq!(act(v13, 21, &[]), A::PeerAborted { description: 50 });
    assert_eq!(
        act(v13, 21, &[2, 40, 0]),
        A::PeerAborted { description: 50 }
    );
    // KeyUpdate (handshake type 24, TLS 1.3 only) and anything else of
    // type handshake.
    assert_eq!(act(v13, 22, &[24, 0, 0, 1, 0]), A::KeyUpdate);
    assert_eq!(act(v12, 22, &[24, 0, 0, 1, 0]), A::UnsupportedHandshake);
    assert_eq!(act(v13, 22, &[4, 0, 0, 0]), A::UnsupportedHandshake);
    assert_eq!(act(v13, 22, &[]), A::UnsupportedHandshake);
    assert_eq!(act(v12, 22, &[0, 0, 0, 0]), A::UnsupportedHandshake);
    assert_eq!(act(v13, 20, &[1]), A::Unexpected { record_type: 20 });
    assert_eq!(act(v13, 99, &[]), A::Unexpected { record_type: 99 });
    assert_eq!(A::UnsupportedHandshake.as_str(), "post_handshake_message");
    // Each way a record ends a session is counted apart; a close_notify
    // and an ignored warning are not failures.
    assert_eq!(
        A::KeyUpdate.close_event(),
        Some(crate::metrics::Event::KtlsPeerKeyUpdate)
    );
    assert_eq!(
        A::UnsupportedHandshake.close_event(),
        Some(crate::metrics::Event::KtlsPeerPostHandshake)
    );
    assert_eq!(
        A::PeerAborted { description: 40 }.close_event(),
        Some(crate::metrics::Event::KtlsPeerFatalAlert)
    );
    assert_eq!(
        A::Unexpected { record_type: 20 }.close_event(),
        Some(crate::metrics::Event::KtlsPeerUnexpectedRecord)
    );
    assert_eq!(A::PeerClosed.close_event(), None);
    assert_eq!(A::Ignore.close_event(), None);
}

/// The switch-over on a real connection. Where the kernel lacks kTLS (this
/// machine), `enable` fails at the ULP step — before taking the secrets — and
/// hands the connection back, which keeps working in userspace. Where kTLS
/// exists, the kernel takes over and data flows through it.
#[test]
fn ktls_enable_on_a_real_connection() {
    let t = ecdsa();
    let server = server_config(&TlsSection::default(), &t.identity, true);
    for suite_name in [
        "TLS13_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ] {
        let version = suite_version(cipher_suite_by_name(suite_name).unwrap());
        let (s, mut c) = handshake(
            server.clone(),
            client_config(version, suite_name),
            "localhost",
        )
        .unwrap();
        let Established { conn, mut sock } = s;
        match ktls::enable(sock.as_raw_fd(), conn) {
            Err(EnableFailure { error, connection }) => {
                assert_eq!(error.as_str(), "ulp_refused");
                assert!(matches!(
                    error,
                    KtlsError::Kernel {
                        step: KtlsStep::Ulp,
                        refusal: KernelRefusal::TlsModuleMissing
                    }
                ));
                let conn = *connection.expect("nothing irreversible happened");
                let mut s = Established { conn, sock };
                exchange(&mut s, &mut c);
            }
            Ok(enabled) => {
                assert_eq!(enabled.version, version);
                assert!(enabled.early_plaintext.is_empty());
                // The kernel now decrypts what the client sends.
                rustls::Stream::new(&mut c.conn, &mut c.sock)
                    .write_all(b"ping")
                    .unwrap();
                let mut buf = [0u8; 4];
                sock.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"ping");
            }
        }
    }
}

#[test]
fn ktls_enable_preconditions() {
    let t = ecdsa();
    let server = server_config(&TlsSection::default(), &t.identity, true);
    let (_listener, sock) = {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        (l, s)
    };
    // Before any handshake.
    let fresh = rustls::ServerConnection::new(server.clone()).unwrap();
    let failure = ktls::enable(sock.as_raw_fd(), fresh).unwrap_err();
    assert_eq!(failure.error.as_str(), "handshake_not_complete");
    assert!(failure.connection.is_some());

    // With unwritten TLS output.
    let (mut s, _c) = handshake(
        server.clone(),
        client_config(TlsVersion::Tls13, "TLS13_AES_128_GCM_SHA256"),
        "localhost",
    )
    .unwrap();
    s.conn.writer().write_all(b"queued").unwrap();
    let failure = ktls::enable(s.sock.as_raw_fd(), s.conn).unwrap_err();
    assert_eq!(failure.error.as_str(), "pending_output");
    assert!(failure.connection.is_some());
}

/// Plaintext rustls already decrypted is handed over, not lost.
#[test]
fn ktls_drain_returns_early_plaintext() {
    let t = ecdsa();
    let server = server_config(&TlsSection::default(), &t.identity, true);
    let (mut s, mut c) = handshake(
        server,
        client_config(TlsVersion::Tls13, "TLS13_AES_128_GCM_SHA256"),
        "localhost",
    )
    .unwrap();
    rustls::Stream::new(&mut c.conn, &mut c.sock)
        .write_all(b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n")
        .unwrap();
    // Read exactly one record, as the runtime would while switching.
    let mut header = [0u8; ktls::RECORD_HEADER_LEN];
    s.sock.read_exact(&mut header).unwrap();
    let mut record = vec![0u8; ktls::record_len(header)];
    record[..5].copy_from_slice(&header);
    s.sock.read_exact(&mut record[5..]).unwrap();
    s.conn.read_tls(&mut record.as_slice()).unwrap();
    let plaintext = ktls::drain_plaintext(&mut s.conn).unwrap();
    assert!(plaintext.starts_with(b"SSTP_DUPLEX_POST /sra_{BA195980"));
    assert!(plaintext.ends_with(b"HTTP/1.1\r\n"));

    // A close_notify is reported as such.
    c.conn.send_close_notify();
    c.conn.write_tls(&mut c.sock).unwrap();
    let mut buf = [0u8; 64];
    let n = s.sock.read(&mut buf).unwrap();
    s.conn.read_tls(&mut &buf[..n]).unwrap();
    assert!(matches!(
        ktls::drain_plaintext(&mut s.conn),
        Err(KtlsError::PeerClosed)
    ));
}

#[test]
fn prepare_server_tls_follows_the_ktls_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded_defaults_with(Some("x".into()), &mut rand::rng());
    config.server.state_dir = Some(dir.path().to_owned());
    let kernel_has_ktls = matches!(ktls::probe(), KtlsSupport::Available(_));

    config.tls.ktls = KtlsMode::Off;
    let off = prepare_server_tls(&config).unwrap();
    // Established connections leave rustls in every mode: to the kernel,
    // or to `net::established`; not when neither may have them.
    assert!(off.config.enable_secret_extraction);
    config.tls.take_over_records = false;
    let kept = prepare_server_tls(&config).unwrap();
    assert!(!kept.config.enable_secret_extraction);
    config.tls.take_over_records = true;
    assert_eq!(
        off.ktls
            .decide(cipher_suite_by_name("TLS13_AES_128_GCM_SHA256").unwrap()),
        KtlsDecision::Userspace(UserspaceReason::Disabled)
    );
    assert_eq!(off.ktls.startup_notice(), None);
    assert_eq!(off.config.crypto_provider().cipher_suites.len(), 9);
    assert_eq!(off.identity.key_kind(), KeyKind::Ecdsa);

    config.tls.ktls = KtlsMode::Auto;
    let auto = prepare_server_tls(&config).unwrap();
    assert!(auto.config.enable_secret_extraction);
    assert_eq!(auto.ktls.startup_notice().is_some(), !kernel_has_ktls);
    assert_eq!(auto.identity.leaf_sha256(), off.identity.leaf_sha256());

    config.tls.ktls = KtlsMode::Require;
    match prepare_server_tls(&config) {
        Ok(required) => {
            assert!(kernel_has_ktls);
            assert!(required.config.enable_secret_extraction);
        }
        Err(e) => {
            assert!(!kernel_has_ktls);
            assert_eq!(e.as_str(), "ktls_required");
            assert!(e
                .to_string()
                .starts_with("tls.ktls: \"require\" but kernel TLS is unavailable: "));
        }
    }
}

#[test]
fn every_default_cipher_suite_is_counted_under_its_own_name_and_version() {
    for name in DEFAULT_CIPHER_SUITE_NAMES {
        let suite = cipher_suite_by_name(name).unwrap();
        let [version, counted] = handshake_events(suite);
        assert_eq!(counted.label(), name.to_ascii_lowercase(), "{name}");
        let expected = match suite_version(suite) {
            crate::config::TlsVersion::Tls12 => "tls12",
            crate::config::TlsVersion::Tls13 => "tls13",
        };
        assert_eq!(version.label(), expected, "{name}");
    }
}

/// A random source that always fails, as a broken `getrandom` would.
#[derive(Debug)]
struct BrokenRandom;

impl rustls::crypto::SecureRandom for BrokenRandom {
    fn fill(&self, _: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        Err(rustls::crypto::GetRandomFailed)
    }
}

#[test]
fn the_random_generator_is_seeded_before_any_handshake_or_the_start_fails() {
    let t = ecdsa();
    let config = server_config(&TlsSection::default(), &t.identity, false);
    seed_random(config.crypto_provider()).unwrap();

    static BROKEN: BrokenRandom = BrokenRandom;
    let broken = rustls::crypto::CryptoProvider {
        secure_random: &BROKEN,
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    let error = seed_random(&broken).unwrap_err();
    assert!(
        matches!(
            error,
            TlsError::Rustls(rustls::Error::FailedToGetRandomBytes)
        ),
        "{error:?}"
    );
    assert_eq!(error.as_str(), "rustls");
    assert_eq!(error.to_string(), "tls: failed to get random bytes");
}
